//! Playing recordings: which stored object holds a recording's archive or one of its segments,
//! its media type (from the manifest), and a plaintext range of it streamed with bounded
//! memory, decrypted on the fly (`Vault::open_range`: only the records the range needs are
//! read from the store, local or S3, or from the spool while the object waits there).
//!
//! Bounds (`[limits]`): `media_streams` streams at once (a permit from opening to the stream's
//! end; one more is refused, `streams_busy`); per stream a reader (one record), one piece in
//! hand and one in the channel toward the connection: about four chunks (256 KiB). A stream
//! whose client takes nothing for `media_stream_idle_secs` ends, and every stream ends when
//! the server stops. Each stream is a task of its request (it ends with it); when it ends it
//! reports the playback to `access::recording_played`.
//!
//! Who may play what is decided before this (the API's recordings scope): this module is
//! handed the owner of the media, a case or a group call its caller may see.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use cunneng_media_recorder::record::{Container, Manifest};
use cunneng_storage::{ObjectClass, RangeReader, RangedObject, StorageError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::access::{MediaPart, PlaybackAccess, Viewings};
use crate::config::LimitsConfig;
use crate::db::{DataError, Db};
use crate::error::{Error, RejectKind, Rejection};
use crate::objects::Vault;

/// Pieces waiting in the channel toward the connection.
const CHANNEL_PIECES: usize = 1;

/// Recording playback, with its bounds.
pub struct Playback {
    db: Db,
    vault: Vault,
    streams: Arc<Semaphore>,
    limit: usize,
    idle: Duration,
    stopping: CancellationToken,
    /// What each viewing served, for the audit record.
    viewings: Arc<Viewings>,
}

/// Whose recordings: a case's, or one opening of a group call room (which belongs to no case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOwner {
    /// The case (by id) its caller may see.
    Case(i64),
    /// The group call (room `group:N`, take) its caller may see.
    GroupCall { room: String, take: u64 },
}

impl MediaOwner {
    fn owns(&self, r: &crate::db::RecordingRow) -> bool {
        match self {
            MediaOwner::Case(id) => r.case_id == Some(*id),
            MediaOwner::GroupCall { room, take } => r.case_id.is_none() && &r.room == room && r.take == *take,
        }
    }

    fn case_id(&self) -> Option<i64> {
        match self {
            MediaOwner::Case(id) => Some(*id),
            MediaOwner::GroupCall { .. } => None,
        }
    }
}

/// A recording's media, opened: where it is, what it is, and its authentic length.
pub struct OpenMedia {
    /// The case it belongs to (none for a group call).
    pub case_id: Option<i64>,
    pub recording_id: i64,
    pub part: MediaPart,
    /// `video/webm`, `audio/webm`, `video/x-matroska` or `audio/x-matroska`.
    pub content_type: &'static str,
    object: RangedObject,
    permit: OwnedSemaphorePermit,
}

impl OpenMedia {
    /// Plaintext length (authentic: the final chunk was verified).
    pub fn len(&self) -> u64 {
        self.object.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A strong entity tag of the plaintext, quoted (`"…"`): the object's plaintext tag.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.object.tag())
    }
}

/// The plaintext of a range, piece by piece (each at most a chunk). An `Err` piece means the
/// stream broke off (damaged object, store failure, idle, server stopping): the connection
/// must not pretend the response was whole.
pub struct MediaStream {
    rx: mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
}

impl MediaStream {
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        self.rx.recv().await
    }
}

impl Playback {
    pub fn new(db: Db, vault: Vault, limits: &LimitsConfig) -> Playback {
        let limit = limits.media_streams.max(1);
        Playback {
            db,
            vault,
            streams: Arc::new(Semaphore::new(limit)),
            limit,
            idle: Duration::from_secs(limits.media_stream_idle_secs.max(1)),
            stopping: CancellationToken::new(),
            viewings: Arc::new(Viewings::default()),
        }
    }

    /// The viewings in progress (the audit job writes them when they end).
    pub fn viewings(&self) -> Arc<Viewings> {
        self.viewings.clone()
    }

    /// End every stream (the server is stopping).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Streams being served (or opened) now.
    pub fn streams_open(&self) -> usize {
        self.limit - self.streams.available_permits()
    }

    /// Open `part` of recording `recording_id` of `owner` (a case or group call the caller may
    /// see): 404 for a recording of another owner or none, for a missing segment, (`no_archive`) for the archive
    /// of a recording that has none (incomplete: its segments still play); 410 (`destroyed`)
    /// for media destroyed by retention; 503 (`streams_busy`) when `limits.media_streams`
    /// streams are being served, (`media_missing`) for media not in the store although not
    /// destroyed, (`store_unavailable`) when the store does not answer and the object is not
    /// in the spool.
    pub async fn open(&self, owner: MediaOwner, recording_id: i64, part: MediaPart) -> Result<OpenMedia, Error> {
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Rejection::new(
                RejectKind::Unavailable,
                "streams_busy",
                "正在播放的录像太多,请稍后再试 (too many recordings are being played at once; try again shortly)",
            )
        })?;
        let case_id = owner.case_id();
        let found = self
            .db
            .run(move |db| -> Result<_, DataError> {
                let Some(rec) = db.recording(recording_id)?.filter(|r| owner.owns(r)) else {
                    return Ok(None);
                };
                let key = match part {
                    MediaPart::Archive => rec.archive_key.clone(),
                    MediaPart::Segment(i) => db.recording_segment_key(rec.id, i)?,
                };
                Ok(Some((rec.manifest_key, key)))
            })
            .await?;
        let (manifest_key, key) = match found {
            None => return Err(Rejection::not_found("recording").into()),
            Some((_, None)) if part == MediaPart::Archive => {
                return Err(Rejection::new(
                    RejectKind::NotFound,
                    "no_archive",
                    "这段录像没有完整的存档,请按分段播放 (this recording has no archive copy; play its segments)",
                )
                .into());
            }
            Some((_, None)) => return Err(Rejection::not_found("segment").into()),
            Some((manifest_key, Some(key))) => (manifest_key, key),
        };
        let content_type = self.media_type(manifest_key.as_deref(), part, &key).await;
        let object = match self.vault.open_range(ObjectClass::MEDIA, &key).await {
            // Gone from the store: destroyed by retention (已销毁), or lost.
            Err(Error::Storage(StorageError::NotFound(_))) => {
                let k = key.clone();
                let destroyed = self.db.run(move |db| db.object_destroyed_at(&k)).await?;
                return Err(match destroyed {
                    Some(at) => Rejection::new(
                        RejectKind::Gone,
                        "destroyed",
                        format!("已销毁:保存期满,已于 {} 销毁 (destroyed by retention)", crate::db::china_date(at)),
                    ),
                    None => {
                        tracing::warn!(key, recording_id, "a recording's media is not in the store");
                        Rejection::new(
                            RejectKind::Unavailable,
                            "media_missing",
                            "这段录像暂时取不到,请稍后再试或联系管理员 (the recording's media is not in the store)",
                        )
                    }
                }
                .into());
            }
            Err(Error::Storage(e @ StorageError::Unavailable { .. })) => {
                tracing::warn!(key, recording_id, error = %e, "a recording's media cannot be fetched");
                return Err(Rejection::new(
                    RejectKind::Unavailable,
                    "store_unavailable",
                    "存储暂时不可用,请稍后再试 (the object store does not answer; try again later)",
                )
                .into());
            }
            other => other?,
        };
        Ok(OpenMedia { case_id, recording_id, part, content_type, object, permit })
    }

    /// The media type: from the manifest (container, and whether there is video); without
    /// one (a recording cut off by a crash) from the key's extension, as video.
    async fn media_type(&self, manifest_key: Option<&str>, part: MediaPart, key: &str) -> &'static str {
        let by_key = || {
            let container = if key.ends_with(".mkv") { Container::Matroska } else { Container::Webm };
            mime(container, true)
        };
        let Some(manifest_key) = manifest_key else { return by_key() };
        let manifest = match self.vault.get(ObjectClass::MANIFEST, manifest_key).await {
            Ok(json) => serde_json::from_slice::<Manifest>(&json).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match manifest {
            Ok(m) => media_type_of(&m, part).unwrap_or_else(by_key),
            Err(e) => {
                tracing::warn!(error = %e, manifest_key, "cannot read a recording's manifest; media type from its key");
                by_key()
            }
        }
    }

    /// Stream the plaintext bytes `range` of `media` (within its length) to the connection.
    pub fn stream(
        &self,
        media: OpenMedia,
        range: Range<u64>,
        viewer: crate::case::EventActor,
        address: Option<String>,
    ) -> Result<MediaStream, Error> {
        let user_id = viewer.id;
        let OpenMedia { case_id, recording_id, part, object, permit, .. } = media;
        let total = object.len();
        let key = object.key().to_string();
        let reader = object.read(range.clone())?;
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let access = PlaybackAccess {
            user_id,
            viewer,
            address,
            case_id,
            recording_id,
            part,
            range,
            total,
            sent: 0,
            complete: false,
        };
        let (idle, stopping, viewings) = (self.idle, self.stopping.clone(), self.viewings.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let access = pump(reader, tx, access, &key, idle, stopping).await;
            viewings.served(&access, crate::now_ms());
        });
        Ok(MediaStream { rx })
    }
}

/// Move the reader's pieces into the channel until the range is out, the client is gone or
/// idle, the server stops, or the object fails; returns what was served.
async fn pump(
    mut reader: RangeReader,
    tx: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    mut access: PlaybackAccess,
    key: &str,
    idle: Duration,
    stopping: CancellationToken,
) -> PlaybackAccess {
    let broken = |why: &str| Err(std::io::Error::other(why.to_string()));
    loop {
        let piece = tokio::select! {
            biased;
            _ = stopping.cancelled() => {
                let _ = tx.try_send(broken("the server is stopping"));
                break;
            }
            piece = reader.next() => piece,
        };
        let piece = match piece {
            Ok(Some(p)) => p,
            Ok(None) => {
                access.complete = true;
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, key, recording_id = access.recording_id, "a recording being played cannot be read");
                let _ = tx.try_send(broken("the recording cannot be read"));
                break;
            }
        };
        let n = piece.len() as u64;
        tokio::select! {
            biased;
            _ = stopping.cancelled() => break,
            sent = tokio::time::timeout(idle, tx.send(Ok(piece))) => match sent {
                Ok(Ok(())) => access.sent += n,
                // The client went away (the player seeks elsewhere), or took nothing for too long.
                Ok(Err(_)) | Err(_) => break,
            },
        }
    }
    access
}

fn mime(container: Container, video: bool) -> &'static str {
    match (container, video) {
        (Container::Webm, true) => "video/webm",
        (Container::Webm, false) => "audio/webm",
        (Container::Matroska, true) => "video/x-matroska",
        (Container::Matroska, false) => "audio/x-matroska",
    }
}

/// What the manifest says `part` is (`None` if it does not know it). Public for the manifest
/// fuzz target (`fuzz/`), not an API.
#[doc(hidden)]
pub fn media_type_of(m: &Manifest, part: MediaPart) -> Option<&'static str> {
    match part {
        MediaPart::Archive => {
            let container = m.archive.as_ref()?.container;
            Some(mime(container, m.video.is_some() || m.segments.iter().any(|s| s.video.is_some())))
        }
        MediaPart::Segment(i) => {
            let s = m.segments.iter().find(|s| s.index == i)?;
            Some(mime(s.container, s.video.is_some()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cunneng_media_recorder::record::{ArchiveInfo, CodecKind, RecordingStats, SegmentInfo};

    fn segment(index: u32, video: Option<CodecKind>, container: Container) -> SegmentInfo {
        SegmentInfo {
            index,
            start_ms: 0,
            duration_ms: 10_000,
            container,
            audio: Some(CodecKind::Opus),
            video,
            starts_with_keyframe: true,
            bytes: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn media_types_follow_the_manifest() {
        let mut m = Manifest {
            version: 1,
            room: "call:1".into(),
            participant: "kiosk:1".into(),
            started_at_unix_ms: 0,
            ended_at_unix_ms: 0,
            duration_ms: 0,
            audio: Some(CodecKind::Opus),
            video: None,
            segments: vec![segment(0, None, Container::Webm), segment(1, Some(CodecKind::H264), Container::Matroska)],
            gaps: vec![],
            archive: None,
            archive_error: Some("containers differ".into()),
            stats: RecordingStats::default(),
        };
        assert_eq!(media_type_of(&m, MediaPart::Segment(0)), Some("audio/webm"));
        assert_eq!(media_type_of(&m, MediaPart::Segment(1)), Some("video/x-matroska"));
        assert_eq!(media_type_of(&m, MediaPart::Segment(2)), None);
        assert_eq!(media_type_of(&m, MediaPart::Archive), None);
        m.segments = vec![segment(0, None, Container::Webm)];
        m.archive = Some(ArchiveInfo { container: Container::Webm, bytes: 1, sha256: String::new(), duration_ms: 1 });
        assert_eq!(media_type_of(&m, MediaPart::Archive), Some("audio/webm"));
        m.video = Some(CodecKind::Vp8);
        assert_eq!(media_type_of(&m, MediaPart::Archive), Some("video/webm"));
    }
}
