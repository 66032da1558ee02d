//! Who looked at what. For now one hook: a recording was played (served to a viewer). It logs
//! the non-personal facts; the audit record (issue 8, point 4) is to take them from here.

use std::ops::Range;

/// Which media of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaPart {
    /// The seekable archive copy.
    Archive,
    /// One segment, by index.
    Segment(u32),
}

impl std::fmt::Display for MediaPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaPart::Archive => f.write_str("archive"),
            MediaPart::Segment(i) => write!(f, "segment {i}"),
        }
    }
}

/// One response that served recording media: who, which recording, which bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackAccess {
    /// The staff user (town staff or supervisor) it was served to.
    pub user_id: Option<i64>,
    pub case_id: i64,
    pub recording_id: i64,
    pub part: MediaPart,
    /// The plaintext bytes the response was for (`start..end`), of `total`.
    pub range: Range<u64>,
    pub total: u64,
    /// Bytes actually handed to the connection, and whether the whole range went out (a
    /// player that seeks drops its request early; a stream can also end idle or on an error).
    pub sent: u64,
    pub complete: bool,
}

/// A recording was played: called once per media response, when it ends.
pub fn recording_played(access: &PlaybackAccess) {
    tracing::info!(
        user_id = access.user_id,
        case_id = access.case_id,
        recording_id = access.recording_id,
        part = %access.part,
        range_start = access.range.start,
        range_end = access.range.end,
        total = access.total,
        sent = access.sent,
        complete = access.complete,
        "recording played"
    );
}
