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
mod format;
mod manifest;
pub mod mux;
pub mod recorder;
pub mod segmenter;
mod sink;
pub mod timeline;

pub use archive::{ArchiveFile, build_archive};
pub use format::{CodecKind, Container, TrackKind};
pub use manifest::{ArchiveInfo, Manifest, RecordingStats, SegmentInfo, sha256_hex};
pub use recorder::{Recorder, RecordingConfig};
pub use sink::{ClosedSegment, FinishedRecording, RecordingSink, SharedSink};
pub use timeline::{Gap, GapReason};
