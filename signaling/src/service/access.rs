//! How much of a recording was watched. The start of a viewing is an access entry written
//! before the first byte (`api::media`); every media response then reports what it served
//! here, and [`Viewings`] adds it up per viewer and recording, so that the audit record gets one
//! `recording.watched` entry per viewing (who, which recording, from where, how many bytes,
//! from when to when) once the viewing has been idle for a while, or at shutdown.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use serde_json::json;

use crate::audit::AccessAction;
use crate::case::EventActor;
use crate::db::{Db, NewAccess};
use crate::error::Error;

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
    /// Who, as the audit record names them, and from which address.
    pub viewer: EventActor,
    pub address: Option<String>,
    /// None for a group call's recording.
    pub case_id: Option<i64>,
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

/// A viewing so far.
#[derive(Debug, Clone)]
struct Tally {
    viewer: EventActor,
    address: Option<String>,
    case_id: Option<i64>,
    responses: u64,
    bytes: u64,
    first_ms: u64,
    last_ms: u64,
}

/// The viewings in progress, per (viewer, recording).
#[derive(Default)]
pub struct Viewings {
    open: Mutex<HashMap<(Option<i64>, i64), Tally>>,
}

impl Viewings {
    /// A media response ended: add what it served to its viewing.
    pub fn served(&self, access: &PlaybackAccess, now_ms: u64) {
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
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let t = open.entry((access.user_id, access.recording_id)).or_insert_with(|| Tally {
            viewer: access.viewer.clone(),
            address: access.address.clone(),
            case_id: access.case_id,
            responses: 0,
            bytes: 0,
            first_ms: now_ms,
            last_ms: now_ms,
        });
        t.responses += 1;
        t.bytes += access.sent;
        t.last_ms = now_ms;
    }

    /// Write the viewings idle since `idle_before_ms` (all of them with `u64::MAX`) as
    /// `recording.watched` entries; the ones that cannot be written stay for the next time.
    pub async fn flush(&self, db: &Db, idle_before_ms: u64) -> Result<usize, Error> {
        let done: Vec<((Option<i64>, i64), Tally)> = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = open.iter().filter(|(_, t)| t.last_ms < idle_before_ms).map(|(k, _)| *k).collect();
            keys.into_iter().filter_map(|k| open.remove(&k).map(|t| (k, t))).collect()
        };
        let mut written = 0;
        for ((user, recording), t) in done {
            let entry = NewAccess {
                at_ms: t.last_ms,
                case_id: t.case_id,
                actor: t.viewer.clone(),
                action: AccessAction::RecordingWatched,
                detail: json!({"recording_id": recording, "responses": t.responses, "bytes": t.bytes,
                               "from_ms": t.first_ms, "to_ms": t.last_ms}),
                address: t.address.clone(),
            };
            if let Err(e) = db.run(move |db| db.record_access(&entry)).await {
                self.open.lock().unwrap_or_else(|e| e.into_inner()).insert((user, recording), t);
                return Err(e.into());
            }
            written += 1;
        }
        Ok(written)
    }
}
