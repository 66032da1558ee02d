//! Recording: every participant's audio and video, teed from the forwarding path, depacketized
//! (no decoding), placed on one timeline, cut into playable WebM/Matroska segments and, at the
//! end of the call, joined into one seekable archive file with a manifest.
//!
//! ```text
//! Publisher::fan_out ─try_send─▶ Recorder task (one per participant, bounded queue)
//!   (audio, video)                 ├ Assembler per track: reorder, depacketize, loss policy
//!                                  ├ Timeline: RTP + sender reports → participant ms, gaps
//!                                  ├ Segmenter: ≤ 10 s segments cut on keyframes (PLI ahead)
//!                                  └ SegmentWriter (ffmpeg, in-memory file) ─▶ RecordingSink
//! call end: build_archive(segments) ─▶ one seekable WebM + Manifest ─▶ RecordingSink
//! ```
//!
//! Nothing here touches the disk: ffmpeg writes into anonymous in-memory files (memfd) and the
//! bytes leave through [`RecordingSink`], whose implementation encrypts and stores them.

pub mod archive;
pub mod assemble;
pub mod depack;
pub mod mux;
pub mod recorder;
pub mod segmenter;
pub mod timeline;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use archive::{ArchiveFile, build_archive};
pub use recorder::{Recorder, RecordingConfig};
pub use timeline::{Gap, GapReason};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio track.
    Audio,
    /// Video track.
    Video,
}

/// Codecs the recorder can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecKind {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video.
    H264,
}

impl CodecKind {
    /// From a lower- or upper-case MIME type such as `video/VP8`.
    pub fn from_mime(mime: &str) -> Option<CodecKind> {
        match mime.to_ascii_lowercase().as_str() {
            "audio/opus" => Some(CodecKind::Opus),
            "video/vp8" => Some(CodecKind::Vp8),
            "video/vp9" => Some(CodecKind::Vp9),
            "video/h264" => Some(CodecKind::H264),
            _ => None,
        }
    }

    /// Audio or video.
    pub fn kind(self) -> TrackKind {
        match self {
            CodecKind::Opus => TrackKind::Audio,
            _ => TrackKind::Video,
        }
    }

    /// Short name (`opus`, `vp8`, `vp9`, `h264`).
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Opus => "opus",
            CodecKind::Vp8 => "vp8",
            CodecKind::Vp9 => "vp9",
            CodecKind::H264 => "h264",
        }
    }
}

/// Container of segments and archive: WebM when every codec allows it, else Matroska.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// WebM (VP8/VP9 + Opus): plays in browsers.
    Webm,
    /// Matroska (H.264 + Opus).
    Matroska,
}

impl Container {
    /// The container for a video codec (or none).
    pub fn for_video(video: Option<CodecKind>) -> Container {
        if video == Some(CodecKind::H264) { Container::Matroska } else { Container::Webm }
    }

    /// ffmpeg muxer name.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Matroska => "matroska",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Matroska => "mkv",
        }
    }
}

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

/// A closed segment, handed to the sink as soon as it ends.
#[derive(Debug, Clone)]
pub struct ClosedSegment {
    /// Room.
    pub room: String,
    /// Participant label.
    pub participant: String,
    /// Its manifest entry (hash included).
    pub info: SegmentInfo,
    /// The complete, playable file.
    pub data: Bytes,
}

/// The end of one participant's recording.
#[derive(Debug)]
pub struct FinishedRecording {
    /// The manifest (the archive's hash included when there is one).
    pub manifest: Manifest,
    /// The seekable archive copy (an in-memory file), unless it could not be made.
    pub archive: Option<ArchiveFile>,
}

/// Where recordings go. The signaling glue implements it (encrypt, store). Called from the
/// recorder's own task: hand the work off rather than block for long.
pub trait RecordingSink: Send + Sync {
    /// A segment was closed (at most `max_ms` of media; a crash loses at most the open one).
    fn segment_closed(&self, segment: ClosedSegment);
    /// The participant's recording ended (room closed or recording turned off): the archive
    /// copy and the manifest.
    fn recording_finished(&self, recording: FinishedRecording);
}

/// A sink shared by the rooms that record into it.
pub type SharedSink = Arc<dyn RecordingSink>;

/// SHA-256 of `data` in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
