//! cunneng server: signaling, the queue that pairs village kiosks with town windows, identity,
//! the REST API and the WebSocket protocol. See ARCHITECTURE.md for the map.

pub mod api;
pub mod audit;
pub mod auth;
pub mod case;
pub mod clients;
pub mod config;
pub mod db;
pub mod engine;
pub mod error;
pub mod identity;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod metrics_access;
pub mod objects;
pub mod queue;
pub mod ratelimit;
pub mod recording;
pub mod retention;
pub mod server;
pub mod service;
pub mod state;
pub mod tls;
pub mod tools;
pub mod wire;

pub use error::Error;

/// Wall-clock now in Unix milliseconds: the one place the server reads the clock for the queue
/// and sessions (the state machines take `now` as input).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
