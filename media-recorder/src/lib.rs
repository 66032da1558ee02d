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

mod codec;
mod config;
mod error;
mod event;
mod forward;
mod keyframe;
mod leg;
pub mod record;
mod sdp;
mod sfu;

pub use config::MediaConfig;
pub use error::MediaError;
pub use event::{MediaEvent, MediaStats};
pub use sfu::Sfu;
