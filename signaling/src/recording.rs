//! Where recordings go: the media plane's [`RecordingSink`], implemented with the encrypted
//! object store. Every closed segment is sealed (a data key per object, wrapped by the active
//! KEK) before it touches any disk, then stored and catalogued; at the end of a participant's
//! recording the seekable archive copy and the manifest follow. One worker task handles the
//! events in order, so a recording is marked complete only after all its segments are stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cunneng_media_recorder::record::{ClosedSegment, FinishedRecording, Manifest, RecordingSink};
use cunneng_storage::ObjectClass;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::db::Db;
use crate::error::Error;
use crate::jobs::{JobContext, Jobs, Phase};
use crate::objects::Vault;

/// What the glue knows about a recorded room: which opening of it (take), which case.
#[derive(Debug, Clone)]
struct RoomInfo {
    take: u64,
    case_id: Option<i64>,
    /// Case number, or `group` for group calls: the first part of every object key.
    case_no: String,
}

enum Job {
    Segment(RoomInfo, ClosedSegment),
    Finished(RoomInfo, String, String, Box<FinishedRecording>),
}

/// The recording sink of the server. Cheap to share.
pub struct Recordings {
    rooms: Mutex<HashMap<String, RoomInfo>>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Segments handed to the worker and not stored yet, at most `max_queued` (each holds a
    /// segment in memory); past that a segment is dropped and its recording ends incomplete.
    /// Finished recordings always queue (one per participant: bounded by the media plane).
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// Segments dropped so far because the queue was full (`/metrics`).
    dropped: AtomicU64,
}

/// The manifest as stored: the recorder's manifest plus where everything went.
#[derive(Serialize)]
struct StoredManifest<'a> {
    case_id: Option<i64>,
    case_no: &'a str,
    take: u64,
    segment_keys: &'a [String],
    archive_key: Option<&'a str>,
    #[serde(flatten)]
    manifest: &'a Manifest,
}

impl Recordings {
    /// Start the worker (a job that stops after the media plane, once it stored what it was
    /// handed). Recordings cut off by a crash are marked incomplete first.
    pub async fn start(db: Db, vault: Vault, runner: &Jobs, max_queued: usize) -> Result<Arc<Recordings>, Error> {
        let interrupted = db.run(|db| db.mark_interrupted_recordings(crate::now_ms())).await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "recordings cut off by a stop of the server are marked incomplete");
        }
        let (jobs, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        runner.spawn("recording-store", Phase::Drain, move |ctx| worker(db, vault, rx, ctx, q));
        Ok(Arc::new(Recordings::new(jobs, queued, max_queued)))
    }

    fn new(jobs: mpsc::UnboundedSender<Job>, queued: Arc<AtomicUsize>, max_queued: usize) -> Recordings {
        Recordings {
            rooms: Mutex::new(HashMap::new()),
            jobs,
            queued,
            max_queued: max_queued.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Segments waiting to be stored, the most that may (`limits.recording_queue`), and the
    /// segments dropped since start because the queue was full.
    pub fn queue_figures(&self) -> (usize, usize, u64) {
        (self.queued.load(Ordering::SeqCst), self.max_queued, self.dropped.load(Ordering::SeqCst))
    }

    /// A room is about to be recorded (call it before turning recording on in the media plane).
    pub fn begin(&self, room: &str, case_id: Option<i64>, case_no: Option<String>) {
        let info = RoomInfo { take: crate::now_ms(), case_id, case_no: case_no.unwrap_or_else(|| "group".into()) };
        if let Ok(mut rooms) = self.rooms.lock() {
            // Keep the map small: a day-old take is long finished.
            let horizon = info.take.saturating_sub(24 * 3600 * 1000);
            rooms.retain(|_, r| r.take >= horizon);
            rooms.insert(room.to_string(), info);
        }
    }

    fn info(&self, room: &str) -> RoomInfo {
        self.rooms.lock().ok().and_then(|r| r.get(room).cloned()).unwrap_or_else(|| RoomInfo {
            take: crate::now_ms(),
            case_id: None,
            case_no: "unknown".into(),
        })
    }
}

impl RecordingSink for Recordings {
    fn segment_closed(&self, segment: ClosedSegment) {
        let info = self.info(&segment.room);
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::SeqCst);
            tracing::error!(
                room = %segment.room,
                "the recording store is behind ({} segments waiting); a segment was dropped",
                self.max_queued
            );
            return;
        }
        if self.jobs.send(Job::Segment(info, segment)).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            tracing::error!("recording worker stopped; a segment was not stored");
        }
    }

    fn recording_finished(&self, recording: FinishedRecording) {
        let room = recording.manifest.room.clone();
        let participant = recording.manifest.participant.clone();
        let info = self.info(&room);
        if self.jobs.send(Job::Finished(info, room, participant, Box::new(recording))).is_err() {
            tracing::error!("recording worker stopped; a recording was not finished");
        }
    }
}

/// `call:3` → `call-3`: object keys keep to plain characters.
fn key_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

fn base_key(info: &RoomInfo, room: &str, participant: &str) -> String {
    format!("{}/{}-{}/{}", key_part(&info.case_no), key_part(room), info.take, key_part(participant))
}

async fn worker(
    db: Db,
    vault: Vault,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    ctx: JobContext,
    queued: Arc<AtomicUsize>,
) -> Result<(), Error> {
    // Segment keys of each recording so far, for its manifest.
    let mut segment_keys: HashMap<i64, Vec<String>> = HashMap::new();
    loop {
        // At shutdown (after the media plane stopped) store what is queued, then stop.
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(j) => j, None => return Ok(()) },
            _ = ctx.stopped() => match jobs.try_recv() { Ok(j) => j, Err(_) => return Ok(()) },
        };
        if matches!(job, Job::Segment(..)) {
            queued.fetch_sub(1, Ordering::SeqCst);
        }
        match job {
            Job::Segment(info, seg) => {
                let base = base_key(&info, &seg.room, &seg.participant);
                let key = format!("media/{base}/seg-{:05}.{}", seg.info.index, seg.info.container.extension());
                let result = async {
                    let (room, participant, k) = (seg.room.clone(), seg.participant.clone(), key.clone());
                    let rec = db
                        .run(move |db| {
                            // Named before it is written: the reconcile sweep finds it after a crash.
                            db.record_intent(&k, "media", info.case_id, crate::now_ms())?;
                            db.recording_for(&room, info.take, &participant, info.case_id, info.take)
                        })
                        .await?;
                    let size = vault.put(ObjectClass::MEDIA, &key, &seg.data).await?;
                    let (k, i) = (key.clone(), seg.info.clone());
                    db.run(move |db| {
                        db.add_recording_segment(rec, i.index, &k, &i.sha256, i.bytes, i.start_ms, i.duration_ms)?;
                        db.catalog_object(&k, "media", info.case_id, size, crate::now_ms())
                    })
                    .await?;
                    Ok::<i64, Error>(rec)
                }
                .await;
                match result {
                    Ok(rec) => segment_keys.entry(rec).or_default().push(key),
                    Err(e) => {
                        tracing::error!(error = %e, %key, "storing a recording segment failed");
                        ctx.report_error(&e);
                    }
                }
            }
            Job::Finished(info, room, participant, finished) => {
                let base = base_key(&info, &room, &participant);
                let result = async {
                    let (r, p) = (room.clone(), participant.clone());
                    let rec = db.run(move |db| db.recording_for(&r, info.take, &p, info.case_id, info.take)).await?;
                    let segs = segment_keys.remove(&rec).unwrap_or_default();
                    let mut note = finished.manifest.archive_error.clone();
                    let archive_key = match &finished.archive {
                        Some(archive) => {
                            let key = format!("media/{base}/archive.{}", archive.container.extension());
                            let bytes =
                                archive.to_vec().map_err(|e| Error::Tool(format!("reading the archive copy: {e}")))?;
                            let k = key.clone();
                            db.run(move |db| db.record_intent(&k, "media", info.case_id, crate::now_ms())).await?;
                            let size = vault.put(ObjectClass::MEDIA, &key, &bytes).await?;
                            let k = key.clone();
                            db.run(move |db| db.catalog_object(&k, "media", info.case_id, size, crate::now_ms()))
                                .await?;
                            Some(key)
                        }
                        None => None,
                    };
                    let manifest_key = format!("manifest/{base}.json");
                    let stored = StoredManifest {
                        case_id: info.case_id,
                        case_no: &info.case_no,
                        take: info.take,
                        segment_keys: &segs,
                        archive_key: archive_key.as_deref(),
                        manifest: &finished.manifest,
                    };
                    let json = serde_json::to_vec_pretty(&stored).map_err(|e| Error::Tool(format!("manifest: {e}")))?;
                    let mk = manifest_key.clone();
                    db.run(move |db| db.record_intent(&mk, "manifest", info.case_id, crate::now_ms())).await?;
                    let size = vault.put(ObjectClass::MANIFEST, &manifest_key, &json).await?;
                    let all_segments = segs.len() == finished.manifest.segments.len();
                    if !all_segments {
                        note = Some(format!(
                            "{} of {} segments were stored",
                            segs.len(),
                            finished.manifest.segments.len()
                        ));
                    }
                    let complete =
                        archive_key.is_some() && all_segments && finished.manifest.stats.failed_segments == 0;
                    let mk = manifest_key.clone();
                    let archive = finished.manifest.archive.clone();
                    let timeline_start_ms = finished.manifest.started_at_unix_ms;
                    let gaps = serde_json::to_value(&finished.manifest.gaps).unwrap_or_default();
                    db.run(move |db| {
                        db.catalog_object(&mk, "manifest", info.case_id, size, crate::now_ms())?;
                        let end = crate::db::RecordingEnd {
                            complete,
                            archive_key: archive_key.as_deref(),
                            archive_sha256: archive.as_ref().map(|a| a.sha256.as_str()),
                            archive_bytes: archive.as_ref().map(|a| a.bytes),
                            manifest_key: Some(&mk),
                            timeline_start_ms: Some(timeline_start_ms),
                            gaps,
                            note: note.as_deref(),
                        };
                        db.finish_recording(rec, &end, crate::now_ms())
                    })
                    .await?;
                    Ok::<(), Error>(())
                }
                .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, %room, "finishing a recording failed");
                    ctx.report_error(&e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cunneng_media_recorder::record::{Container, SegmentInfo};

    use super::*;

    fn segment(index: u32) -> ClosedSegment {
        ClosedSegment {
            room: "call:1".into(),
            participant: "kiosk:1".into(),
            info: SegmentInfo {
                index,
                start_ms: 0,
                duration_ms: 1000,
                container: Container::Webm,
                audio: None,
                video: None,
                starts_with_keyframe: true,
                bytes: 3,
                sha256: String::new(),
            },
            data: bytes::Bytes::from_static(b"abc"),
        }
    }

    #[test]
    fn a_full_queue_drops_segments_and_counts_them() {
        // A worker that takes nothing: the store is behind.
        let (jobs, mut rx) = mpsc::unbounded_channel();
        let r = Recordings::new(jobs, Arc::new(AtomicUsize::new(0)), 2);
        for i in 0..5 {
            r.segment_closed(segment(i));
        }
        assert_eq!(r.queue_figures(), (2, 2, 3), "two wait, three were dropped");
        let mut handed = 0;
        while rx.try_recv().is_ok() {
            handed += 1;
        }
        assert_eq!(handed, 2, "only what fits the bound was handed to the worker");
    }
}
