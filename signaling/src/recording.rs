//! Where recordings go: the media plane's [`RecordingSink`], implemented with the encrypted
//! object store. Every closed segment is sealed (a data key per object, wrapped by the active
//! KEK) before it touches any disk, then stored and catalogued; at the end of a participant's
//! recording the seekable archive copy and the manifest follow. One worker task handles the
//! events in order, so a recording is marked complete only after all its segments are stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cunneng_media_recorder::record::{ClosedSegment, FinishedRecording, Manifest, RecordingSink};
use cunneng_storage::{KeyRing, ObjectClass, ObjectId, ObjectStore};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::db::Db;
use crate::error::Error;

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
    /// Start the worker. Recordings cut off by a crash are marked incomplete first.
    pub fn start(db: Db, store: Arc<dyn ObjectStore>, keys: Arc<KeyRing>) -> Result<Arc<Recordings>, Error> {
        let interrupted = db.mark_interrupted_recordings(crate::now_ms())?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "recordings cut off by a stop of the server are marked incomplete");
        }
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(db, store, keys, rx));
        Ok(Arc::new(Recordings { rooms: Mutex::new(HashMap::new()), jobs }))
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
        if self.jobs.send(Job::Segment(info, segment)).is_err() {
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

async fn worker(db: Db, store: Arc<dyn ObjectStore>, keys: Arc<KeyRing>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // Segment keys of each recording so far, for its manifest.
    let mut segment_keys: HashMap<i64, Vec<String>> = HashMap::new();
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Segment(info, seg) => {
                let base = base_key(&info, &seg.room, &seg.participant);
                let key = format!("media/{base}/seg-{:05}.{}", seg.info.index, seg.info.container.extension());
                let result = async {
                    let rec = blocking(&db, {
                        let (room, participant) = (seg.room.clone(), seg.participant.clone());
                        move |db| db.recording_for(&room, info.take, &participant, info.case_id, info.take)
                    })
                    .await?;
                    let size = put_sealed(&store, &keys, ObjectClass::MEDIA, &key, &seg.data).await?;
                    let (k, i) = (key.clone(), seg.info.clone());
                    blocking(&db, move |db| {
                        db.add_recording_segment(rec, i.index, &k, &i.sha256, i.bytes, i.start_ms, i.duration_ms)?;
                        db.catalog_object(&k, "media", info.case_id, size, crate::now_ms())
                    })
                    .await?;
                    Ok::<i64, Error>(rec)
                }
                .await;
                match result {
                    Ok(rec) => segment_keys.entry(rec).or_default().push(key),
                    Err(e) => tracing::error!(error = %e, %key, "storing a recording segment failed"),
                }
            }
            Job::Finished(info, room, participant, finished) => {
                let base = base_key(&info, &room, &participant);
                let result = async {
                    let rec = blocking(&db, {
                        let (room, participant) = (room.clone(), participant.clone());
                        move |db| db.recording_for(&room, info.take, &participant, info.case_id, info.take)
                    })
                    .await?;
                    let segs = segment_keys.remove(&rec).unwrap_or_default();
                    let mut note = finished.manifest.archive_error.clone();
                    let archive_key = match &finished.archive {
                        Some(archive) => {
                            let key = format!("media/{base}/archive.{}", archive.container.extension());
                            let bytes =
                                archive.to_vec().map_err(|e| Error::Tool(format!("reading the archive copy: {e}")))?;
                            let size = put_sealed(&store, &keys, ObjectClass::MEDIA, &key, &bytes).await?;
                            let k = key.clone();
                            blocking(&db, move |db| {
                                db.catalog_object(&k, "media", info.case_id, size, crate::now_ms())
                            })
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
                    let size = put_sealed(&store, &keys, ObjectClass::MANIFEST, &manifest_key, &json).await?;
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
                    blocking(&db, move |db| {
                        db.catalog_object(&mk, "manifest", info.case_id, size, crate::now_ms())?;
                        db.finish_recording(
                            rec,
                            complete,
                            archive_key.as_deref(),
                            Some(&mk),
                            note.as_deref(),
                            crate::now_ms(),
                        )
                    })
                    .await?;
                    Ok::<(), Error>(())
                }
                .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, %room, "finishing a recording failed");
                }
            }
        }
    }
}

/// Seal `plaintext` under the active KEK and store it; returns the stored size.
async fn put_sealed(
    store: &Arc<dyn ObjectStore>,
    keys: &KeyRing,
    class: ObjectClass,
    key: &str,
    plaintext: &[u8],
) -> Result<u64, Error> {
    let sealed = cunneng_storage::seal(keys.active(), class, ObjectId::new(key)?, plaintext)?;
    let mut body = std::io::Cursor::new(sealed);
    let receipt = store.put(key, &mut body, None).await?;
    Ok(receipt.size)
}

async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&Db) -> Result<T, crate::db::DataError> + Send + 'static,
) -> Result<T, Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| Error::Tool(format!("database task: {e}")))?
        .map_err(Error::from)
}

/// `cunneng verify` for manifests: every segment a manifest lists must decrypt to the bytes
/// whose SHA-256 it records.
pub async fn verify_manifests(store: &dyn ObjectStore, ring: &KeyRing) -> Result<Vec<crate::tools::Verdict>, Error> {
    let mut out = Vec::new();
    for meta in store.list("manifest/").await? {
        let json = match crate::tools::decrypt_to_vec(ring, store, &meta.key).await {
            Ok(j) => j,
            Err(_) => continue, // reported by the object pass
        };
        let v: serde_json::Value = match serde_json::from_slice(&json) {
            Ok(v) => v,
            Err(e) => {
                out.push(crate::tools::Verdict {
                    key: meta.key.clone(),
                    problem: Some(format!("manifest is not JSON: {e}")),
                });
                continue;
            }
        };
        let keys = v["segment_keys"].as_array().cloned().unwrap_or_default();
        let infos = v["segments"].as_array().cloned().unwrap_or_default();
        for (k, info) in keys.iter().zip(infos.iter()) {
            let (Some(k), Some(want)) = (k.as_str(), info["sha256"].as_str()) else { continue };
            let problem = match crate::tools::decrypt_to_vec(ring, store, k).await {
                Ok(plain) if cunneng_media_recorder::record::sha256_hex(&plain) == want => None,
                Ok(_) => Some(format!("does not match the hash in {}", meta.key)),
                Err(e) => Some(format!("listed in {} but unreadable: {e}", meta.key)),
            };
            if problem.is_some() {
                out.push(crate::tools::Verdict { key: k.to_string(), problem });
            }
        }
    }
    Ok(out)
}
