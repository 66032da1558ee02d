//! Where recordings go: the sink the recorder hands closed segments and finished recordings to.

use std::sync::Arc;

use bytes::Bytes;

use super::archive::ArchiveFile;
use super::manifest::{Manifest, SegmentInfo};

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
