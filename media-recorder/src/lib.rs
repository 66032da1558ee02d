//! cunneng media plane: a selective forwarding unit (SFU) on webrtc 0.21.
//!
//! Every browser negotiates with this server, never peer to peer: it offers, the server answers
//! (non-trickle: the answer carries every server candidate). The server forwards RTP between the
//! participants of a room without decoding it, rewriting SSRC, payload type, sequence numbers and
//! timestamps per receiving connection and stripping header extensions (their ids differ per
//! connection).
//!
//! The crate knows nothing of signaling: rooms and participants are opaque strings; the
//! participant string doubles as the `MediaStream.id` of every stream forwarded from that
//! participant, so a page can tell who is who.
//!
//! Shape of the forwarding path (one place per publisher, so a recorder can be attached later
//! at a cost that does not grow with receivers):
//!
//! ```text
//! browser ──RTP──▶ leg (PeerConnection) ─on_track─▶ reader task ─▶ Publisher (room, participant, kind)
//!                                                                   │  strip extensions, resolve codec
//!                                                                   ├─try_send─▶ Recorder of the participant (record/)
//!                                                                   ├─try_send─▶ Output writer ─▶ TrackLocalStaticRTP of leg B
//!                                                                   └─try_send─▶ Output writer ─▶ TrackLocalStaticRTP of leg C
//! ```
//!
//! Keyframe requests flow the other way: a PLI/FIR from a receiving browser reaches the output's
//! writer task (an interceptor marks them for delivery) and becomes a rate-limited PLI to the
//! publisher; the server also asks for a keyframe whenever a receiver starts receiving.

mod forward;
mod keyframe;
mod leg;
pub mod record;
mod sdp;
mod sfu;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub use sfu::Sfu;

/// Configuration of the media plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Where the UDP sockets bind: `0.0.0.0` in production (one socket per interface, loopback
    /// skipped), `127.0.0.1` in tests.
    pub bind_ip: IpAddr,
    /// ICE port range, inclusive. `0, 0` means ephemeral ports. webrtc 0.21.1 has no UDP mux:
    /// every peer connection binds its own socket, so the range bounds the number of
    /// connections too (and is the firewall rule to open).
    pub udp_port_min: u16,
    /// Upper end of the port range (inclusive).
    pub udp_port_max: u16,
    /// NAT 1:1 addresses: when non-empty, every host candidate of an answer is announced with
    /// these addresses (same family) instead of the bound one. List the private address too if
    /// some clients reach the server directly.
    pub announced_ips: Vec<IpAddr>,
    /// STUN/TURN URLs for clients, passed through untouched ([`Sfu::ice_servers`]); the server
    /// itself gathers host candidates only.
    pub ice_servers: Vec<String>,
    /// Most peer connections held at once; beyond it [`Sfu::handle_offer`] fails.
    pub max_peer_connections: usize,
    /// A connection that does not reach `connected` within this time after it is created (or
    /// after ICE failed) is closed.
    pub connect_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port_min: 0,
            udp_port_max: 0,
            announced_ips: Vec::new(),
            ice_servers: Vec::new(),
            max_peer_connections: 1000,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl MediaConfig {
    /// Loopback-only configuration with ephemeral ports, for tests.
    pub fn loopback() -> Self {
        MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), ..MediaConfig::default() }
    }
}

/// Something the signaling side must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The participant's connection has fewer receive slots than streams to receive (or a slot
    /// must be released): the client must add recv-only audio+video pairs up to `recv_slots`
    /// pairs in all (counting its send-receive pair) and offer again once its signaling state
    /// is stable. Protocol message `media.renegotiate`.
    NeedsRenegotiation {
        /// Room of the connection.
        room: String,
        /// Participant whose client must offer again.
        participant: String,
        /// Total audio+video pairs the connection should have.
        recv_slots: usize,
    },
    /// The participant's current connection reached `connected` (DTLS up, media can flow).
    Connected {
        /// Room of the connection.
        room: String,
        /// Participant whose connection came up.
        participant: String,
    },
    /// The participant's current connection failed (ICE failed, or never connected within
    /// `connect_timeout`). Not sent for connections closed on purpose (replaced, removed).
    Disconnected {
        /// Room of the connection.
        room: String,
        /// Participant whose connection went down.
        participant: String,
    },
}

/// Counters of the media plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Peer connections currently held (including ones being closed).
    pub peer_connections: u64,
    /// Rooms with at least one participant.
    pub rooms: u64,
    /// RTP packets handed to a receiving connection since start.
    pub forwarded_packets: u64,
    /// Bytes (RTP header + payload) of those packets.
    pub forwarded_bytes: u64,
}

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
