//! Test support for cunneng's end-to-end tests: the real binary ([`server`]), signaling clients
//! ([`client`]) and synthetic WebRTC peers ([`peer`]).

pub mod client;
pub mod peer;
pub mod server;
