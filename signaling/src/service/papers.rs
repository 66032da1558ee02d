//! Papers (docs/cases-api.md "Papers"): resumable chunked uploads that are stored encrypted
//! from the first byte, type checks by magic bytes, name checks, opening papers for the
//! principals in scope, and clean-up of abandoned uploads.
//!
//! An upload is a row in `paper_uploads` plus one sealed object per chunk
//! (`uploads/<upload id>/<chunk index>`, class `papers`). When the last byte arrives the
//! chunks are opened one by one and re-sealed as one object `papers/<case id>/<random>`; only
//! then is the paper written to the database and acknowledged. Plaintext never touches a disk.
//!
//! [`Papers`] holds the bounds: papers assembled, chunk bodies received and papers opened at
//! once, and the set of uploads with a chunk being written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cunneng_storage::ObjectClass;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::case::{CaseRecord, Command, PaperKind, Viewer};
use crate::config::LimitsConfig;
use crate::db::{DataError, Db, PaperRow, UploadRow};
use crate::error::{Error, RejectKind, Rejection};
use crate::objects::Vault;

use super::views::PaperView;

/// Most bytes one chunk (one PUT) may carry.
pub const CHUNK_MAX: usize = 4 * 1024 * 1024;
/// Unfinished uploads one case may have at once.
pub const MAX_OPEN_UPLOADS: usize = 8;
/// Uploads untouched this long are removed with their chunks.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(24 * 3600);
/// Fewest bytes a paper (and its first chunk) may have: enough to tell its type.
pub const MIN_PAPER_BYTES: u64 = 8;
/// Longest paper name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// Pure checks.

/// The type of a paper by its first bytes: PDF, JPEG or PNG; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else {
        None
    }
}

/// A paper's name is a label: trimmed, 1..=200 characters, no control or bidirectional
/// formatting characters, and nothing that looks like a path (`/`, `\`, `..`, a leading `.`).
pub fn clean_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("longer than 200 characters");
    }
    let bidi = |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if name.chars().any(|c| c.is_control() || bidi(c)) {
        return Err("control characters");
    }
    if name.contains('/') || name.contains('\\') {
        return Err("a path separator");
    }
    if name.contains("..") || name.starts_with('.') {
        return Err("'..' or a leading '.'");
    }
    Ok(name.to_string())
}

/// A random 128-bit id in hex (upload ids, object names).
fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub fn plausible_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub fn chunk_key(upload_id: &str, index: u32) -> String {
    format!("uploads/{upload_id}/{index:06}")
}

/// Where an upload stands, after each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkCheck {
    /// Take `limit` bytes at most.
    Accept { limit: usize },
    /// The client's offset is not ours: tell it ours.
    OffsetMismatch { offset: u64 },
    /// The body is larger than what may come.
    TooLarge,
}

/// Can a chunk declared as `content_length` bytes (if known) be taken at `offset`?
pub fn check_chunk(u: &UploadRow, offset: u64, content_length: Option<u64>) -> ChunkCheck {
    if offset != u.received {
        return ChunkCheck::OffsetMismatch { offset: u.received };
    }
    let remaining = u.size.saturating_sub(u.received);
    let limit = remaining.min(CHUNK_MAX as u64);
    match content_length {
        Some(n) if n > limit => ChunkCheck::TooLarge,
        _ => ChunkCheck::Accept { limit: usize::try_from(limit).unwrap_or(CHUNK_MAX) },
    }
}

pub fn too_large(what: impl Into<String>) -> Rejection {
    Rejection::new(RejectKind::TooLarge, "too_large", what)
}

fn unsupported_type() -> Rejection {
    Rejection::new(
        RejectKind::UnsupportedType,
        "unsupported_type",
        "只能上传 PDF、JPEG 或 PNG 文件 (only PDF, JPEG or PNG, judged by the content)",
    )
}

/// May the viewer see or abandon an upload of `kind`: the role that may add such a paper to
/// the case, whatever the case's status is now (a closed case's upload is still its own).
pub fn check_uploader(viewer: &Viewer, case: &CaseRecord, kind: PaperKind) -> Result<(), Error> {
    match check_may_upload(viewer, case, kind) {
        Ok(()) => Ok(()),
        Err(Error::Rejected(r)) if r.kind == RejectKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

/// May the viewer add a paper of `kind` to this case now? (The lifecycle decides.)
fn check_may_upload(viewer: &Viewer, case: &CaseRecord, kind: PaperKind) -> Result<(), Error> {
    if !viewer.may_read(case) {
        return Err(Rejection::forbidden("this case belongs to another village or town").into());
    }
    crate::case::apply(&case.state, viewer.actor(), Command::AddPaper(kind), crate::now_ms())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Answers.

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadStarted {
    pub upload_id: String,
    pub offset: u64,
    pub size: u64,
    pub chunk_max: usize,
    pub url: String,
}

/// Where an upload stands; with its paper once complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadState {
    pub upload_id: String,
    pub offset: u64,
    pub size: u64,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperView>,
}

/// What a chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored; the upload continues (or, with a paper, is complete).
    Stored(Box<UploadState>),
    /// The client's offset is not ours: it resumes at `offset`.
    OffsetMismatch { offset: u64 },
}

/// The start of an upload, as the edge parsed it.
#[derive(Debug, Clone)]
pub struct StartUpload {
    pub name: String,
    pub size: u64,
    pub checklist_item: Option<String>,
    pub kind: PaperKind,
}

// ---------------------------------------------------------------------------------------------
// The service.

/// Papers of cases, with the bounds of the server's memory (`[limits]`).
pub struct Papers {
    db: Db,
    vault: Vault,
    paper_max_bytes: usize,
    /// Papers being assembled at once (each holds up to two copies of a paper in memory).
    assembling: Semaphore,
    /// Chunk bodies being received at once (each up to `CHUNK_MAX` in memory); others wait.
    receiving: Semaphore,
    /// Papers being opened for viewing at once (each up to `paper_max_bytes` in memory).
    opening: Semaphore,
    /// Uploads with a chunk being written right now: a second concurrent PUT is refused.
    busy: Mutex<HashSet<String>>,
    /// Chunk bodies being received per client (kiosk or staff member), at most `per_client`.
    per_client: usize,
    clients: Mutex<HashMap<(&'static str, i64), usize>>,
    /// How long a chunk waits for a receiving slot.
    receive_wait: Duration,
}

/// Held while a client's chunk body is being received.
pub struct ClientSlot<'a> {
    map: &'a Mutex<HashMap<(&'static str, i64), usize>>,
    key: (&'static str, i64),
}

impl Drop for ClientSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Held while a chunk of an upload is being written.
pub struct BusyGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl Papers {
    pub fn new(db: Db, vault: Vault, limits: &LimitsConfig) -> Papers {
        Papers {
            db,
            vault,
            paper_max_bytes: limits.paper_max_bytes,
            assembling: Semaphore::new(limits.papers_assembling.max(1)),
            receiving: Semaphore::new(limits.paper_chunks_receiving.max(1)),
            opening: Semaphore::new(limits.papers_opening.max(1)),
            busy: Mutex::new(HashSet::new()),
            per_client: limits.paper_chunks_per_client.max(1),
            clients: Mutex::new(HashMap::new()),
            receive_wait: Duration::from_secs(limits.paper_receive_wait_secs),
        }
    }

    /// A slot for one more chunk body of this client, or `too_many_chunks` (429) when it
    /// sends `paper_chunks_per_client` already.
    pub fn client_slot(&self, viewer: &Viewer) -> Result<ClientSlot<'_>, Error> {
        let who = viewer.stamp();
        let key = (who.kind.as_str(), who.id.unwrap_or_default());
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_default();
        if *n >= self.per_client {
            return Err(Rejection::new(
                RejectKind::TooMany,
                "too_many_chunks",
                "同时上传的文件太多,请稍候 (too many chunks being sent at once by this client)",
            )
            .into());
        }
        *n += 1;
        Ok(ClientSlot { map: &self.clients, key })
    }

    fn busy(&self, id: &str) -> Option<BusyGuard<'_>> {
        let mut set = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_string()).then(|| BusyGuard { set: &self.busy, id: id.to_string() })
    }

    fn busy_rejection() -> Error {
        Rejection::conflict("upload_busy", "这个文件正在上传中 (another request is writing this upload)").into()
    }

    /// A permit to hold one chunk body in memory (waits while the bound is reached, at most
    /// `paper_receive_wait_secs`; then `busy`, 503).
    pub async fn receiving(&self) -> Result<SemaphorePermit<'_>, Error> {
        match tokio::time::timeout(self.receive_wait, self.receiving.acquire()).await {
            Ok(permit) => permit.map_err(|_| Error::Tool("the server is stopping".into())),
            Err(_) => Err(Rejection::new(
                RejectKind::Unavailable,
                "busy",
                "服务器正忙,请稍后再试 (every receiving slot is taken; retry)",
            )
            .into()),
        }
    }

    pub fn chunk_max(&self) -> usize {
        CHUNK_MAX.min(self.paper_max_bytes)
    }

    /// Register a new upload on the case.
    pub async fn start(&self, viewer: &Viewer, case: &CaseRecord, s: StartUpload) -> Result<UploadStarted, Error> {
        check_may_upload(viewer, case, s.kind)?;
        let name = clean_name(&s.name).map_err(|why| {
            Rejection::new(RejectKind::Invalid, "bad_name", format!("文件名不合适 (bad paper name: {why})"))
        })?;
        let max = self.paper_max_bytes as u64;
        if s.size > max {
            return Err(
                too_large(format!("文件太大,最大 {} MB (over the limit of {max} bytes)", max / (1024 * 1024))).into()
            );
        }
        if s.size < MIN_PAPER_BYTES {
            return Err(Rejection::invalid("文件是空的或太小 (the paper is empty or too small)").into());
        }
        let checklist_item = match s.checklist_item.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(item) if case.required_papers.iter().any(|r| r == item) => Some(item.to_string()),
            Some(_) => {
                return Err(Rejection::invalid("checklist_item 不是这个事项要的材料 (not on the checklist)").into());
            }
            None => None,
        };
        let now = crate::now_ms();
        let row = UploadRow {
            id: random_id(),
            case_id: case.id,
            kind: s.kind,
            name,
            checklist_item,
            size: s.size,
            received: 0,
            chunks: 0,
            content_type: None,
            by: viewer.stamp(),
            created_at_ms: now,
            updated_at_ms: now,
            paper_id: None,
        };
        let r = row.clone();
        self.db
            .run(move |db| {
                db.create_upload(&r, MAX_OPEN_UPLOADS).map_err(|e| match e {
                    DataError::Conflict(_) => Error::from(Rejection::new(
                        RejectKind::TooMany,
                        "too_many_uploads",
                        "未完成的上传太多,请先完成或取消 (too many unfinished uploads on this case)",
                    )),
                    e => e.into(),
                })
            })
            .await?;
        Ok(UploadStarted {
            url: format!("/api/cases/{}/uploads/{}", case.case_no, row.id),
            upload_id: row.id,
            offset: 0,
            size: row.size,
            chunk_max: self.chunk_max(),
        })
    }

    /// The upload `upload_id` of the case: 404 unless it is the case's.
    pub async fn upload_of(&self, case: &CaseRecord, upload_id: String) -> Result<UploadRow, Error> {
        if !plausible_upload_id(&upload_id) {
            return Err(Rejection::not_found("upload").into());
        }
        let upload = self.db.run(move |db| db.upload(&upload_id)).await?;
        match upload {
            Some(u) if u.case_id == case.id => Ok(u),
            _ => Err(Rejection::not_found("upload").into()),
        }
    }

    /// Where the upload stands (with its paper once complete).
    pub async fn state(&self, case_no: &str, u: &UploadRow) -> Result<UploadState, Error> {
        let paper = match u.paper_id {
            Some(pid) => {
                let p = self.db.run(move |db| db.paper(pid)).await?;
                let p = p.ok_or_else(|| Error::Tool(format!("upload {} names a missing paper", u.id)))?;
                Some(PaperView::of(case_no, &p))
            }
            None => None,
        };
        Ok(UploadState { upload_id: u.id.clone(), offset: u.received, size: u.size, complete: paper.is_some(), paper })
    }

    /// Before the body is read: is the chunk acceptable at `offset`? `Ok(Err(state))` when the
    /// upload is complete already (a retry of the last chunk whose answer was lost).
    pub async fn check_put(
        &self,
        viewer: &Viewer,
        case: &CaseRecord,
        u: &UploadRow,
        offset: u64,
        content_length: Option<u64>,
    ) -> Result<Result<ChunkCheck, UploadState>, Error> {
        check_may_upload(viewer, case, u.kind)?;
        if u.paper_id.is_some() {
            return Ok(Err(self.state(&case.case_no, u).await?));
        }
        match check_chunk(u, offset, content_length) {
            ChunkCheck::TooLarge => Err(too_large(format!(
                "这一块太大 (a chunk may carry at most {CHUNK_MAX} bytes and not go past the declared size)"
            ))
            .into()),
            check => Ok(Ok(check)),
        }
    }

    /// An upload whose bytes are all in but that has no paper (the store failed, the spool
    /// was full or the server died after its last chunk was counted) is finished now, by
    /// whichever request comes next (`GET` or `PUT`): the paper is assembled and recorded.
    /// `Some` with the complete state when this call finished it; `None` when there was
    /// nothing to finish. While another request writes the upload: `upload_busy`.
    pub async fn finish_stalled(
        &self,
        viewer: &Viewer,
        case: &CaseRecord,
        u: &UploadRow,
    ) -> Result<Option<UploadState>, Error> {
        if u.paper_id.is_some() || u.received < u.size {
            return Ok(None);
        }
        let _busy = self.lock_upload(u)?;
        let id = u.id.clone();
        let fresh = self.db.run(move |db| db.upload(&id)).await?.ok_or_else(|| Rejection::not_found("upload"))?;
        if fresh.paper_id.is_some() {
            return Ok(None);
        }
        tracing::info!(case_id = case.id, "finishing a paper upload whose bytes were all in");
        let paper = self.assemble(viewer, case, &fresh).await?;
        Ok(Some(UploadState {
            upload_id: fresh.id.clone(),
            offset: fresh.size,
            size: fresh.size,
            complete: true,
            paper: Some(PaperView::of(&case.case_no, &paper)),
        }))
    }

    /// Take a guard that no other request writes this upload meanwhile.
    pub fn lock_upload(&self, u: &UploadRow) -> Result<BusyGuard<'_>, Error> {
        self.busy(&u.id).ok_or_else(Self::busy_rejection)
    }

    /// Seal and store one chunk at `offset`, advance the upload, and once the last byte is in,
    /// assemble the paper. The caller holds the upload's [`BusyGuard`].
    pub async fn put_chunk(
        &self,
        viewer: &Viewer,
        case: &CaseRecord,
        u: &UploadRow,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<ChunkOutcome, Error> {
        if bytes.is_empty() {
            return Err(Rejection::invalid("空的上传块 (empty chunk)").into());
        }
        let mut content_type = None;
        if u.received == 0 {
            if (bytes.len() as u64) < MIN_PAPER_BYTES {
                return Err(Rejection::invalid("第一块至少 8 个字节 (the first chunk needs at least 8 bytes)").into());
            }
            match sniff(&bytes) {
                Some(t) => content_type = Some(t),
                None => {
                    let id = u.id.clone();
                    self.db.run(move |db| db.delete_upload(&id)).await?;
                    tracing::info!(case_id = case.id, "paper upload refused: not PDF, JPEG or PNG");
                    return Err(unsupported_type().into());
                }
            }
        }
        // Seal the chunk as its own object, then advance the upload.
        let chunk_len = bytes.len() as u64;
        let key = chunk_key(&u.id, u.chunks);
        self.vault.put(ObjectClass::PAPERS, &key, &bytes).await?;
        drop(bytes);
        let id = u.id.clone();
        self.db
            .run(move |db| {
                db.upload_chunk_stored(&id, offset, chunk_len, content_type, crate::now_ms()).map_err(|e| match e {
                    DataError::Conflict(_) => Error::from(Rejection::conflict(
                        "offset_mismatch",
                        "上传位置已变化 (the upload moved on; ask GET)",
                    )),
                    e => e.into(),
                })
            })
            .await?;
        let received = offset + chunk_len;
        if received < u.size {
            return Ok(ChunkOutcome::Stored(Box::new(UploadState {
                upload_id: u.id.clone(),
                offset: received,
                size: u.size,
                complete: false,
                paper: None,
            })));
        }
        let id = u.id.clone();
        let u = self.db.run(move |db| db.upload(&id)).await?.ok_or_else(|| Rejection::not_found("upload"))?;
        let paper = self.assemble(viewer, case, &u).await?;
        Ok(ChunkOutcome::Stored(Box::new(UploadState {
            upload_id: u.id.clone(),
            offset: u.size,
            size: u.size,
            complete: true,
            paper: Some(PaperView::of(&case.case_no, &paper)),
        })))
    }

    /// Open the chunks one by one, seal them again as one object, store it, then record the
    /// paper. Nothing is acknowledged before the paper object is stored.
    async fn assemble(&self, viewer: &Viewer, case: &CaseRecord, u: &UploadRow) -> Result<PaperRow, Error> {
        let _permit = self.assembling.acquire().await.map_err(|_| Error::Tool("the server is stopping".into()))?;
        // The case may have closed while the upload ran.
        let case_id = case.id;
        let fresh = self.db.run(move |db| db.case(case_id)).await?.ok_or_else(|| Rejection::not_found("case"))?;
        check_may_upload(viewer, &fresh, u.kind)?;

        let mut plain = Vec::with_capacity(u.size as usize);
        for i in 0..u.chunks {
            plain.extend_from_slice(&self.vault.get(ObjectClass::PAPERS, &chunk_key(&u.id, i)).await?);
        }
        if plain.len() as u64 != u.size {
            return Err(Error::Tool(format!("assembled paper has {} bytes, not {}", plain.len(), u.size)));
        }
        let content_type = sniff(&plain).ok_or_else(unsupported_type)?;
        let sha256 = hex::encode(Sha256::digest(&plain));
        let final_key = format!("papers/{}/{}", case.id, random_id());
        // Named before it is written: a crash before the paper's row leaves no object that
        // nothing accounts for (the reconcile sweep removes it; the chunks remain to finish).
        let (k, case_id) = (final_key.clone(), case.id);
        self.db.run(move |db| db.record_intent(&k, "papers", Some(case_id), crate::now_ms())).await?;
        self.vault.put(ObjectClass::PAPERS, &final_key, &plain).await?;
        drop(plain);

        let paper = PaperRow {
            id: 0,
            case_id: case.id,
            kind: u.kind,
            name: u.name.clone(),
            checklist_item: u.checklist_item.clone(),
            content_type: content_type.to_string(),
            size: u.size,
            sha256,
            object_key: final_key.clone(),
            by: u.by.clone(),
            created_at_ms: crate::now_ms(),
            removed_at_ms: None,
        };
        let p = paper.clone();
        let upload_id = u.id.clone();
        let actor = viewer.stamp();
        let recorded = self.db.run(move |db| db.complete_upload(&upload_id, &p, &actor)).await;
        let paper_id = match recorded {
            Ok(id) => id,
            Err(e) => {
                if self.vault.store().delete(&final_key).await.is_ok() {
                    let k = final_key.clone();
                    let _ = self.db.run(move |db| db.drop_intent(&k)).await;
                }
                return Err(match e {
                    DataError::Conflict(_) => Rejection::changed_meanwhile().into(),
                    e => e.into(),
                });
            }
        };
        for i in 0..u.chunks {
            if let Err(e) = self.vault.store().delete(&chunk_key(&u.id, i)).await {
                tracing::warn!(error = %e, "removing an upload chunk");
            }
        }
        tracing::info!(case_id = case.id, paper_id, size = u.size, "paper stored");
        Ok(PaperRow { id: paper_id, ..paper })
    }

    /// Give up an upload: its chunks and row are removed.
    pub async fn abandon(&self, viewer: &Viewer, case: &CaseRecord, u: &UploadRow) -> Result<(), Error> {
        if u.paper_id.is_none() {
            // A closed case's unfinished upload may still be removed; another's may not.
            check_uploader(viewer, case, u.kind)?;
        }
        let _busy = self.lock_upload(u)?;
        self.remove_upload(u).await
    }

    /// Delete an upload's chunks and row.
    async fn remove_upload(&self, u: &UploadRow) -> Result<(), Error> {
        let prefix = format!("uploads/{}/", u.id);
        for o in self.vault.store().list(&prefix).await? {
            self.vault.store().delete(&o.key).await?;
        }
        let id = u.id.clone();
        Ok(self.db.run(move |db| db.delete_upload(&id)).await?)
    }

    /// Remove uploads idle for longer than `idle` (finished ones keep their paper). Returns how
    /// many were removed. The job runner calls it now and then.
    pub async fn cleanup_abandoned(&self, idle: Duration) -> Result<usize, Error> {
        let cutoff = crate::now_ms().saturating_sub(idle.as_millis() as u64);
        let stale = self.db.run(move |db| db.uploads_idle_since(cutoff)).await?;
        let mut removed = 0;
        for u in stale {
            let Some(_busy) = self.busy(&u.id) else { continue };
            self.remove_upload(&u).await?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(removed, "removed abandoned paper uploads");
        }
        Ok(removed)
    }

    /// A paper of the case, opened, for a viewer in scope (who looked is recorded for the town
    /// and supervisors).
    pub async fn open(&self, viewer: &Viewer, case: &CaseRecord, paper_id: i64) -> Result<(PaperRow, Vec<u8>), Error> {
        let paper = self.db.run(move |db| db.paper(paper_id)).await?;
        let paper = match paper {
            Some(p) if p.case_id == case.id => p,
            _ => return Err(Rejection::not_found("paper").into()),
        };
        if !super::cases::may_open_paper(viewer, case, paper.kind, paper.id) {
            return Err(Rejection::not_found("paper").into());
        }
        // A scan the village took back is no paper of the case any more: only the review opens it.
        if paper.removed_at_ms.is_some() && !matches!(viewer, Viewer::Supervisor { .. }) {
            return Err(Rejection::new(
                RejectKind::Gone,
                "paper_removed",
                "村里已经删除了这份材料 (the village room removed this paper)",
            )
            .into());
        }
        let _opening = self.opening.acquire().await.map_err(|_| Error::Tool("the server is stopping".into()))?;
        let plain = match self.vault.get(ObjectClass::PAPERS, &paper.object_key).await {
            Ok(p) => p,
            // Gone from the store: destroyed by retention (已销毁), or lost.
            Err(Error::Storage(cunneng_storage::StorageError::NotFound(_))) => {
                let key = paper.object_key.clone();
                let destroyed = self.db.run(move |db| db.object_destroyed_at(&key)).await?;
                return Err(match destroyed {
                    Some(at) => Rejection::new(
                        RejectKind::Gone,
                        "destroyed",
                        format!("已销毁:保存期满,已于 {} 销毁 (destroyed by retention)", crate::db::china_date(at)),
                    ),
                    None => Rejection::new(
                        RejectKind::Unavailable,
                        "paper_missing",
                        "这份材料暂时取不到,请稍后再试或联系管理员 (the paper is not in the store)",
                    ),
                }
                .into());
            }
            Err(e) => return Err(e),
        };
        if !viewer.is_village() {
            super::cases::paper_viewed(&self.db, viewer, case.id, paper.id).await;
        }
        Ok((paper, plain))
    }
}

/// Shared with the API and the job runner.
pub type SharedPapers = Arc<Papers>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::EventActor;

    #[test]
    fn sniffing_by_magic_bytes() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F']), Some("image/jpeg"));
        assert_eq!(sniff(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0]), Some("image/png"));
        for bad in [
            &b"MZ\x90\x00\x03\x00\x00\x00"[..],
            b"<html><script>",
            b"GIF89a\x01\x00",
            b"%PD",
            b"\x89PNG\r\n",
            b"",
            b" %PDF-1.4",
            b"PK\x03\x04zipzip",
        ] {
            assert_eq!(sniff(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_are_labels() {
        assert_eq!(clean_name("  身份证 正面.jpg "), Ok("身份证 正面.jpg".to_string()));
        assert_eq!(clean_name("scan 2026-11-22 10:30.pdf"), Ok("scan 2026-11-22 10:30.pdf".to_string()));
        for bad in [
            "",
            "   ",
            "../../etc/passwd",
            "..\\..\\boot.ini",
            "a/b.pdf",
            "/abs.pdf",
            "C:\\x.pdf",
            ".hidden.pdf",
            "..",
            "a..pdf",
            "nul\0byte.pdf",
            "line\nbreak.pdf",
            "evil\u{202E}fdp.exe",
        ] {
            assert!(clean_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(clean_name(&"名".repeat(200)).is_ok());
        assert!(clean_name(&"名".repeat(201)).is_err());
    }

    fn upload(size: u64, received: u64) -> UploadRow {
        UploadRow {
            id: "0".repeat(32),
            case_id: 1,
            kind: PaperKind::Scan,
            name: "a.pdf".into(),
            checklist_item: None,
            size,
            received,
            chunks: 0,
            content_type: None,
            by: EventActor::kiosk(1, "k"),
            created_at_ms: 0,
            updated_at_ms: 0,
            paper_id: None,
        }
    }

    #[test]
    fn upload_state_checks() {
        let u = upload(10_000_000, 0);
        assert_eq!(check_chunk(&u, 0, Some(1000)), ChunkCheck::Accept { limit: CHUNK_MAX });
        assert_eq!(check_chunk(&u, 0, None), ChunkCheck::Accept { limit: CHUNK_MAX });
        assert_eq!(check_chunk(&u, 0, Some(CHUNK_MAX as u64 + 1)), ChunkCheck::TooLarge);
        assert_eq!(check_chunk(&u, 5, Some(10)), ChunkCheck::OffsetMismatch { offset: 0 });
        let u = upload(100, 60);
        assert_eq!(check_chunk(&u, 60, Some(40)), ChunkCheck::Accept { limit: 40 });
        assert_eq!(check_chunk(&u, 60, Some(41)), ChunkCheck::TooLarge); // past the declared size
        assert_eq!(check_chunk(&u, 0, Some(10)), ChunkCheck::OffsetMismatch { offset: 60 });
        assert_eq!(chunk_key(&u.id, 3), format!("uploads/{}/000003", u.id));
        cunneng_storage::store::validate_key(&chunk_key(&u.id, 3)).unwrap();
        assert!(plausible_upload_id(&random_id()));
        assert!(!plausible_upload_id("../../x") && !plausible_upload_id(&"A".repeat(32)));
    }
}
