//! RTP depacketizers: the payloads of the RTP packets of one frame (one RTP timestamp, in
//! sequence order) in, one codec frame out, ready to be muxed without decoding.
//!
//! Each depacketizer checks that the frame is whole (its first packet starts it, its last ends
//! it, where the payload format says so) and whether it is a keyframe; it never guesses: a
//! frame it cannot vouch for is an error and the caller drops it.

mod h264;
mod opus;
mod vp8;
mod vp9;

pub use h264::H264Depacketizer;
pub use opus::OpusDepacketizer;
pub use vp8::Vp8Depacketizer;
pub use vp9::Vp9Depacketizer;

use super::format::CodecKind;

/// Configuration a frame carries when it (re)defines the stream's decoder setup: a change
/// between two keyframes means new codec parameters (a new segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecConfig {
    /// Picture size from a VP8/VP9 keyframe header.
    Dimensions {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// H.264 parameter sets (NAL units without start codes) in force for this keyframe.
    H264 {
        /// Sequence parameter set.
        sps: Vec<u8>,
        /// Picture parameter set.
        pps: Vec<u8>,
    },
}

/// One depacketized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The codec frame: a VP8/VP9 frame (VP9 spatial layers joined into a superframe), an H.264
    /// access unit in Annex-B form (parameter sets in front of every IDR), an Opus packet.
    pub data: Vec<u8>,
    /// Decodable on its own (Opus: always).
    pub keyframe: bool,
    /// Set on video keyframes.
    pub config: Option<CodecConfig>,
}

/// Why a frame could not be depacketized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepackError {
    /// No packets, or an empty payload.
    #[error("empty payload")]
    Empty,
    /// A payload header runs past the end of the packet.
    #[error("truncated payload header")]
    Truncated,
    /// The first packet does not start the frame, or the last does not end it.
    #[error("incomplete frame")]
    Incomplete,
    /// The payload violates its format.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// An H.264 IDR arrived before any SPS/PPS.
    #[error("keyframe without parameter sets")]
    MissingParameterSets,
    /// A packetization this recorder does not handle (e.g. H.264 interleaved mode).
    #[error("unsupported packetization: {0}")]
    Unsupported(&'static str),
}

/// Turns the payloads of one frame's RTP packets into the frame.
pub trait Depacketizer: Send {
    /// `payloads`: every packet of one RTP timestamp, in sequence order, none missing.
    fn assemble(&mut self, payloads: &[&[u8]]) -> Result<Frame, DepackError>;
}

/// The depacketizer for `codec`.
pub fn for_codec(codec: CodecKind) -> Box<dyn Depacketizer> {
    match codec {
        CodecKind::Opus => Box::new(OpusDepacketizer),
        CodecKind::Vp8 => Box::new(Vp8Depacketizer),
        CodecKind::Vp9 => Box::new(Vp9Depacketizer),
        CodecKind::H264 => Box::new(H264Depacketizer::default()),
    }
}
