//! Errors of the media plane.

/// Errors of the media plane.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The offer is not usable SDP (or not an offer this server can answer).
    #[error("invalid SDP offer: {0}")]
    InvalidOffer(String),
    /// An argument is out of bounds (empty or overlong room/participant/pc id).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The configured maximum of peer connections is reached.
    #[error("too many peer connections (limit {0})")]
    TooManyPeerConnections(usize),
    /// No UDP port of the configured range could be bound.
    #[error("no UDP port available in the configured range")]
    NoPortAvailable,
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    Webrtc(#[from] webrtc::error::Error),
    /// The connection was closed while the offer was being handled.
    #[error("connection closed during negotiation")]
    Closed,
}
