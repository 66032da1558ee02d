//! What the media plane reports: events the signaling side must act on, and counters.

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
