//! Test support for cunneng's end-to-end tests: the real binary ([`server`]), signaling clients
//! ([`client`]), synthetic WebRTC peers ([`peer`]), recorded calls ([`recorded`]) and a real S3
//! server ([`garage`]).

pub mod browser;
pub mod cases;
pub mod client;
pub mod garage;
pub mod peer;
pub mod recorded;
pub mod server;
