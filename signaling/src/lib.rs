//! cunneng server: signaling, the queue that pairs village kiosks with town windows, identity,
//! the REST API and the WebSocket protocol. See ARCHITECTURE.md for the map.

pub mod auth;
pub mod bookings;
pub mod cases;
pub mod config;
pub mod db;
pub mod engine;
pub mod error;
pub mod http;
pub mod import;
pub mod metrics;
pub mod objects;
pub mod papers;
pub mod queue;
pub mod recording;
pub mod retention;
pub mod server;
pub mod state;
pub mod tls;
pub mod tools;
pub mod wire;
pub mod ws;

pub use error::Error;

/// Wall-clock now in Unix milliseconds: the one place the server reads the clock for the queue
/// and sessions (the state machines take `now` as input).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
