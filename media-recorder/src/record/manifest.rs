//! The manifest: what was recorded of one participant, segment by segment, and the checksums
//! it carries.

use serde::{Deserialize, Serialize};

use super::format::{CodecKind, Container};
use super::timeline::Gap;

/// One segment in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// 0, 1, 2, ... in timeline order.
    pub index: u32,
    /// Start on the participant timeline (ms); the segment's own timestamps start at 0.
    pub start_ms: i64,
    /// Media duration (ms).
    pub duration_ms: i64,
    /// Container.
    pub container: Container,
    /// Audio codec, if the segment has audio.
    pub audio: Option<CodecKind>,
    /// Video codec, if the segment has video.
    pub video: Option<CodecKind>,
    /// Whether its video starts on a keyframe (false after a forced cut, see docs).
    pub starts_with_keyframe: bool,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
}

/// Counters of one participant's recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStats {
    /// RTP packets received from the tee.
    pub packets: u64,
    /// RTCP sender reports received (they align audio and video).
    pub sender_reports: u64,
    /// Packets dropped at the tee because the recorder was behind.
    pub overflow_drops: u64,
    /// Packets declared lost by the reordering buffer.
    pub lost_packets: u64,
    /// Frames written.
    pub frames: u64,
    /// Frames dropped (loss, waiting for a keyframe, undecodable payload, late).
    pub dropped_frames: u64,
    /// Keyframe requests sent to the publisher.
    pub keyframe_requests: u64,
    /// Segments that could not be written (ffmpeg errors).
    pub failed_segments: u64,
}

/// The archive copy in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// Container.
    pub container: Container,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Duration (ms).
    pub duration_ms: i64,
}

/// What was recorded of one participant of one call. The glue adds the case id and the object
/// keys it stored things under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this struct.
    pub version: u32,
    /// Room (call) id as given to the SFU.
    pub room: String,
    /// Participant label as given to the SFU.
    pub participant: String,
    /// Wall clock (Unix ms) of the timeline's 0.
    pub started_at_unix_ms: u64,
    /// Wall clock (Unix ms) of the end of the last frame.
    pub ended_at_unix_ms: u64,
    /// Timeline length (ms).
    pub duration_ms: i64,
    /// Audio codec (of the last segment with audio).
    pub audio: Option<CodecKind>,
    /// Video codec (of the last segment with video).
    pub video: Option<CodecKind>,
    /// Segments, in order.
    pub segments: Vec<SegmentInfo>,
    /// Stretches without media, per track.
    pub gaps: Vec<Gap>,
    /// The archive copy, if it was made.
    pub archive: Option<ArchiveInfo>,
    /// Why there is no archive copy, if there is none.
    pub archive_error: Option<String>,
    /// Counters.
    pub stats: RecordingStats,
}

/// SHA-256 of `data` in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
