//! Papers (docs/cases-api.md "Papers"): resumable chunked uploads that are stored encrypted
//! from the first byte, type checks by magic bytes, name checks, serving papers decrypted on
//! the fly to the principals in scope, re-scan requests, and clean-up of abandoned uploads.
//!
//! An upload is a row in `paper_uploads` plus one sealed object per chunk
//! (`uploads/<upload id>/<chunk index>`, class `papers`). When the last byte arrives the
//! chunks are opened one by one and re-sealed as one object `papers/<case id>/<random>`; only
//! then is the paper written to the database and acknowledged. Plaintext never touches a disk.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cunneng_storage::{Decryptor, Encryptor, ObjectClass, ObjectId};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::cases::{Viewer, blocking, body, conflict, event, load_case, notify_village, paper_json, text};
use crate::db::{CaseRecord, DataError, PaperRow, UploadRow};
use crate::error::ApiError;
use crate::http::Authed;
use crate::queue::Party;
use crate::state::AppState;
use crate::wire::ServerMsg;

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

/// Papers being assembled at once (each holds up to two copies of a paper in memory).
static ASSEMBLING: Semaphore = Semaphore::const_new(2);
/// Chunk bodies being received at once (each up to `CHUNK_MAX` in memory); others wait.
static RECEIVING: Semaphore = Semaphore::const_new(16);
/// Papers being decrypted for viewing at once (each up to `limits.paper_max_bytes` in memory).
static SERVING: Semaphore = Semaphore::const_new(8);
/// Uploads with a chunk being written right now: a second concurrent PUT is refused.
static BUSY: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
/// When abandoned uploads were last looked for (Unix ms).
static LAST_CLEANUP_MS: AtomicU64 = AtomicU64::new(0);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/cases/{case_no}/papers", post(start_upload))
        .route("/api/cases/{case_no}/papers/{paper_id}", get(serve_paper))
        .route("/api/cases/{case_no}/uploads/{upload_id}", get(upload_status).put(put_chunk).delete(abandon))
        .route("/api/cases/{case_no}/rescan", post(rescan))
}

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

fn plausible_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub fn chunk_key(upload_id: &str, index: u32) -> String {
    format!("uploads/{upload_id}/{index:06}")
}

/// `Content-Disposition: inline` with the name percent-encoded (RFC 5987): no header tricks.
fn content_disposition(name: &str) -> HeaderValue {
    let mut enc = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!("inline; filename*=UTF-8''{enc}")).unwrap_or(HeaderValue::from_static("inline"))
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

// ---------------------------------------------------------------------------------------------
// Access.

/// May the viewer add papers of `kind` to this case now?
fn check_may_upload(viewer: &Viewer, case: &CaseRecord, kind: &str) -> Result<(), ApiError> {
    viewer.check(case)?;
    match (kind, viewer) {
        ("scan", Viewer::Kiosk { .. }) => {
            if matches!(case.status.as_str(), "open" | "missing") {
                Ok(())
            } else {
                Err(conflict("case_closed", "案件已不再接收材料 (the case takes no more papers)"))
            }
        }
        ("result", Viewer::Approver { .. } | Viewer::Chief { .. }) => {
            if case.is_final() {
                Err(conflict("case_closed", "案件已办结 (the case is closed)"))
            } else {
                Ok(())
            }
        }
        ("scan" | "result", _) => {
            Err(ApiError::forbidden("scans come from the village room, result papers from the town"))
        }
        _ => Err(ApiError::bad_request("kind 应为 scan 或 result")),
    }
}

fn too_large(what: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", what)
}

fn unsupported_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_type",
        "只能上传 PDF、JPEG 或 PNG 文件 (only PDF, JPEG or PNG, judged by the content)",
    )
}

fn storage_error(what: &str, e: cunneng_storage::StorageError) -> ApiError {
    tracing::error!(error = %e, what, "object store");
    ApiError::internal()
}

// ---------------------------------------------------------------------------------------------
// Handlers.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    name: String,
    size: u64,
    #[serde(default)]
    checklist_item: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

fn upload_url(case_no: &str, id: &str) -> String {
    format!("/api/cases/{case_no}/uploads/{id}")
}

async fn start_upload(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<StartBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let b = body(b)?;
    let kind = match b.kind.as_deref().unwrap_or("scan") {
        "scan" => "scan",
        "result" => "result",
        _ => return Err(ApiError::bad_request("kind 应为 scan 或 result")),
    };
    let case = load_case(&state, &viewer, case_no).await?;
    check_may_upload(&viewer, &case, kind)?;
    let name = clean_name(&b.name).map_err(|why| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_name", format!("文件名不合适 (bad paper name: {why})"))
    })?;
    let max = state.config.limits.paper_max_bytes as u64;
    if b.size > max {
        return Err(too_large(format!("文件太大,最大 {} MB (over the limit of {max} bytes)", max / (1024 * 1024))));
    }
    if b.size < MIN_PAPER_BYTES {
        return Err(ApiError::bad_request("文件是空的或太小 (the paper is empty or too small)"));
    }
    let checklist_item = match b.checklist_item.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(item) if case.required_papers.iter().any(|r| r == item) => Some(item.to_string()),
        Some(_) => return Err(ApiError::bad_request("checklist_item 不是这个事项要的材料 (not on the checklist)")),
        None => None,
    };
    maybe_cleanup(&state);
    let actor = viewer.actor();
    let now = crate::now_ms();
    let row = UploadRow {
        id: random_id(),
        case_id: case.id,
        kind: kind.to_string(),
        name,
        checklist_item,
        size: b.size,
        received: 0,
        chunks: 0,
        content_type: None,
        by_kind: actor.kind.to_string(),
        by_id: actor.id.unwrap_or_default(),
        by_name: actor.name,
        created_at_ms: now,
        updated_at_ms: now,
        paper_id: None,
    };
    let db = state.db.clone();
    let r = row.clone();
    blocking(move || {
        db.create_upload(&r, MAX_OPEN_UPLOADS).map_err(|e| match e {
            DataError::Conflict(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_uploads",
                "未完成的上传太多,请先完成或取消 (too many unfinished uploads on this case)",
            ),
            e => e.into(),
        })
    })
    .await?;
    let v = json!({
        "upload_id": row.id,
        "offset": 0,
        "size": row.size,
        "chunk_max": CHUNK_MAX.min(state.config.limits.paper_max_bytes),
        "url": upload_url(&case.case_no, &row.id),
    });
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// The case and upload of a request, checked: 404 unless the upload is the case's.
async fn load_upload(
    state: &AppState,
    viewer: &Viewer,
    case_no: String,
    upload_id: String,
) -> Result<(CaseRecord, UploadRow), ApiError> {
    if !plausible_upload_id(&upload_id) {
        return Err(ApiError::not_found("upload"));
    }
    let case = load_case(state, viewer, case_no).await?;
    let db = state.db.clone();
    let upload = blocking(move || Ok(db.upload(&upload_id)?)).await?;
    match upload {
        Some(u) if u.case_id == case.id => Ok((case, u)),
        _ => Err(ApiError::not_found("upload")),
    }
}

/// The answer about an upload: 200 while incomplete, 201 with the paper once complete.
async fn upload_answer(state: &AppState, case_no: &str, u: &UploadRow) -> Result<Response, ApiError> {
    let mut v = json!({"upload_id": u.id, "offset": u.received, "size": u.size, "complete": u.paper_id.is_some()});
    if let Some(pid) = u.paper_id {
        let db = state.db.clone();
        let paper = blocking(move || db.paper(pid)?.ok_or_else(ApiError::internal)).await?;
        v["paper"] = paper_json(case_no, &paper);
        return Ok((StatusCode::CREATED, Json(v)).into_response());
    }
    Ok(Json(v).into_response())
}

async fn upload_status(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((case_no, upload_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let (case, u) = load_upload(&state, &viewer, case_no, upload_id).await?;
    let mut resp = upload_answer(&state, &case.case_no, &u).await?;
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// Held while a chunk of an upload is being written.
struct BusyGuard(String);

impl BusyGuard {
    fn take(id: &str) -> Option<BusyGuard> {
        let mut set = BUSY.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_string()).then(|| BusyGuard(id.to_string()))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        BUSY.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.0);
    }
}

#[derive(Deserialize)]
struct OffsetQuery {
    offset: Option<u64>,
}

async fn put_chunk(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((case_no, upload_id)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let offset = q.offset.ok_or_else(|| ApiError::bad_request("缺少 offset 参数 (offset is required)"))?;
    let content_length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length 不正确"))?,
        ),
    };
    let (case, u) = load_upload(&state, &viewer, case_no, upload_id).await?;
    check_may_upload(&viewer, &case, &u.kind)?;
    if u.paper_id.is_some() {
        // A retry of the last chunk whose answer was lost: it is done.
        return upload_answer(&state, &case.case_no, &u).await;
    }
    let limit = match check_chunk(&u, offset, content_length) {
        ChunkCheck::Accept { limit } => limit,
        ChunkCheck::OffsetMismatch { offset } => {
            let mut e =
                conflict("offset_mismatch", "上传位置不对,请从服务器记录的位置继续 (resume at the given offset)")
                    .into_response();
            let v = json!({"error": {"code": "offset_mismatch", "message": "请从 offset 继续 (resume at offset)"},
                           "offset": offset});
            *e.body_mut() = Body::from(v.to_string());
            return Ok(e);
        }
        ChunkCheck::TooLarge => {
            return Err(too_large(format!(
                "这一块太大 (a chunk may carry at most {} bytes and not go past the declared size)",
                CHUNK_MAX
            )));
        }
    };
    let Some(_busy) = BusyGuard::take(&u.id) else {
        return Err(conflict("upload_busy", "这个文件正在上传中 (another request is writing this upload)"));
    };
    let receiving = RECEIVING.acquire().await.map_err(|_| ApiError::internal())?;
    let bytes = match axum::body::to_bytes(request_body, limit).await {
        Ok(b) => b,
        Err(_) if content_length.is_some() => {
            return Err(ApiError::bad_request("上传中断 (the body was broken off; resume with GET)"));
        }
        Err(_) => return Err(too_large("这一块太大 (chunk over the limit)")),
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request("空的上传块 (empty chunk)"));
    }
    let mut content_type = None;
    if u.received == 0 {
        if (bytes.len() as u64) < MIN_PAPER_BYTES {
            return Err(ApiError::bad_request("第一块至少 8 个字节 (the first chunk needs at least 8 bytes)"));
        }
        match sniff(&bytes) {
            Some(t) => content_type = Some(t),
            None => {
                let db = state.db.clone();
                let id = u.id.clone();
                blocking(move || Ok(db.delete_upload(&id)?)).await?;
                tracing::info!(case_id = case.id, "paper upload refused: not PDF, JPEG or PNG");
                return Err(unsupported_type());
            }
        }
    }
    // Seal the chunk as its own object, then advance the upload.
    let chunk_len = bytes.len() as u64;
    let key = chunk_key(&u.id, u.chunks);
    let kek_ring = state.keys.clone();
    let k = key.clone();
    let sealed = blocking(move || {
        let oid = ObjectId::new(k).map_err(|_| ApiError::internal())?;
        cunneng_storage::seal(kek_ring.active(), ObjectClass::PAPERS, oid, &bytes).map_err(|e| storage_error("seal", e))
    })
    .await?;
    state.objects.put_bytes(&key, &sealed).await.map_err(|e| storage_error("put chunk", e))?;
    drop((sealed, receiving));
    let db = state.db.clone();
    let id = u.id.clone();
    let stored = blocking(move || {
        db.upload_chunk_stored(&id, offset, chunk_len, content_type, crate::now_ms()).map_err(|e| match e {
            DataError::Conflict(_) => conflict("offset_mismatch", "上传位置已变化 (the upload moved on; ask GET)"),
            e => e.into(),
        })
    })
    .await;
    stored?;
    let received = offset + chunk_len;
    if received < u.size {
        return Ok(
            Json(json!({"upload_id": u.id, "offset": received, "size": u.size, "complete": false})).into_response()
        );
    }
    let db = state.db.clone();
    let id = u.id.clone();
    let u = blocking(move || db.upload(&id)?.ok_or_else(|| ApiError::not_found("upload"))).await?;
    let paper = assemble(&state, &viewer, &case, &u).await?;
    if paper.kind == "scan" {
        announce(&state, &case, &paper).await;
    }
    let v = json!({"upload_id": u.id, "offset": u.size, "size": u.size, "complete": true,
                   "paper": paper_json(&case.case_no, &paper)});
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Open the chunks one by one, seal them again as one object, store it, then record the
/// paper. Nothing is acknowledged before the paper object is stored.
async fn assemble(state: &AppState, viewer: &Viewer, case: &CaseRecord, u: &UploadRow) -> Result<PaperRow, ApiError> {
    let _permit = ASSEMBLING.acquire().await.map_err(|_| ApiError::internal())?;
    // The case may have closed while the upload ran.
    let db = state.db.clone();
    let case_id = case.id;
    let fresh = blocking(move || db.case_record(case_id)?.ok_or_else(|| ApiError::not_found("case"))).await?;
    check_may_upload(viewer, &fresh, &u.kind)?;

    let mut sealed_chunks = Vec::with_capacity(u.chunks as usize);
    for i in 0..u.chunks {
        let key = chunk_key(&u.id, i);
        sealed_chunks
            .push((key.clone(), state.objects.get_bytes(&key, None).await.map_err(|e| storage_error("get chunk", e))?));
    }
    let final_key = format!("papers/{}/{}", case.id, random_id());
    let ring = state.keys.clone();
    let fk = final_key.clone();
    let size = u.size;
    let (sealed, sha256, content_type) = blocking(move || {
        let oid = ObjectId::new(fk).map_err(|_| ApiError::internal())?;
        let mut enc =
            Encryptor::new(ring.active(), ObjectClass::PAPERS, oid).map_err(|e| storage_error("encrypt", e))?;
        let mut out = Vec::with_capacity(size as usize + 4096);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut content_type = None;
        for (key, chunk) in sealed_chunks {
            let oid = ObjectId::new(key).map_err(|_| ApiError::internal())?;
            let mut dec = Decryptor::new(&ring).expect(ObjectClass::PAPERS, oid);
            let mut plain = Vec::with_capacity(chunk.len());
            dec.update(&chunk, &mut plain).map_err(|e| storage_error("open chunk", e))?;
            dec.finish().map_err(|e| storage_error("open chunk", e))?;
            if total == 0 {
                content_type = sniff(&plain);
            }
            total += plain.len() as u64;
            hasher.update(&plain);
            enc.update(&plain, &mut out).map_err(|e| storage_error("encrypt", e))?;
        }
        enc.finish(&mut out).map_err(|e| storage_error("encrypt", e))?;
        if total != size {
            tracing::error!(total, size, "assembled paper has the wrong size");
            return Err(ApiError::internal());
        }
        let content_type = content_type.ok_or_else(unsupported_type)?;
        Ok((out, hex::encode(hasher.finalize()), content_type))
    })
    .await?;
    state.objects.put_bytes(&final_key, &sealed).await.map_err(|e| storage_error("put paper", e))?;
    drop(sealed);

    let now = crate::now_ms();
    let paper = PaperRow {
        id: 0,
        case_id: case.id,
        kind: u.kind.clone(),
        name: u.name.clone(),
        checklist_item: u.checklist_item.clone(),
        content_type: content_type.to_string(),
        size: u.size,
        sha256,
        object_key: final_key.clone(),
        by_kind: u.by_kind.clone(),
        by_id: u.by_id,
        by_name: u.by_name.clone(),
        created_at_ms: now,
    };
    let ev = event(
        viewer.actor(),
        "paper.added",
        json!({"kind": paper.kind, "checklist_item": paper.checklist_item, "size": paper.size,
               "content_type": paper.content_type}),
        paper.kind == "scan",
    );
    let db = state.db.clone();
    let p = paper.clone();
    let upload_id = u.id.clone();
    let recorded = blocking(move || Ok(db.complete_upload(&upload_id, &p, &ev)?)).await;
    let paper_id = match recorded {
        Ok(id) => id,
        Err(e) => {
            let _ = state.objects.delete(&final_key).await;
            return Err(e);
        }
    };
    for i in 0..u.chunks {
        if let Err(e) = state.objects.delete(&chunk_key(&u.id, i)).await {
            tracing::warn!(error = %e, "removing an upload chunk");
        }
    }
    tracing::info!(case_id = case.id, paper_id, size = u.size, "paper stored");
    Ok(PaperRow { id: paper_id, ..paper })
}

/// A scan arrived: the approver in the case's live call sees it at once.
async fn announce(state: &AppState, case: &CaseRecord, paper: &PaperRow) {
    if let Some(staff) = state.engine.case_parties(case.id).await.and_then(|p| p.staff) {
        let msg = ServerMsg::PaperAdded { case_no: case.case_no.clone(), paper: paper_json(&case.case_no, paper) };
        state.engine.notify(Party::Staff(staff), msg).await;
    }
}

async fn abandon(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((case_no, upload_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let viewer = Viewer::of(&p)?;
    let (case, u) = load_upload(&state, &viewer, case_no, upload_id).await?;
    if u.paper_id.is_none() {
        check_may_upload(&viewer, &case, &u.kind)
            .or_else(|e| if e.status == StatusCode::CONFLICT { Ok(()) } else { Err(e) })?;
    }
    let Some(_busy) = BusyGuard::take(&u.id) else {
        return Err(conflict("upload_busy", "这个文件正在上传中 (another request is writing this upload)"));
    };
    remove_upload(&state, &u).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an upload's chunks and row.
async fn remove_upload(state: &AppState, u: &UploadRow) -> Result<(), ApiError> {
    let prefix = format!("uploads/{}/", u.id);
    let objects = state.objects.list(&prefix).await.map_err(|e| storage_error("list chunks", e))?;
    for o in objects {
        state.objects.delete(&o.key).await.map_err(|e| storage_error("delete chunk", e))?;
    }
    let db = state.db.clone();
    let id = u.id.clone();
    blocking(move || Ok(db.delete_upload(&id)?)).await
}

/// Remove uploads idle for longer than `idle` (finished ones keep their paper). Returns how
/// many were removed. Called now and then from `start_upload`; callable from a timer.
pub async fn cleanup_abandoned(state: &AppState, idle: Duration) -> usize {
    let cutoff = crate::now_ms().saturating_sub(idle.as_millis() as u64);
    let db = state.db.clone();
    let stale = match blocking(move || Ok(db.uploads_idle_since(cutoff)?)).await {
        Ok(s) => s,
        Err(_) => return 0,
    };
    let mut removed = 0;
    for u in stale {
        let Some(_busy) = BusyGuard::take(&u.id) else { continue };
        if remove_upload(state, &u).await.is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed abandoned paper uploads");
    }
    removed
}

/// At most every ten minutes, look for abandoned uploads in the background.
fn maybe_cleanup(state: &AppState) {
    let now = crate::now_ms();
    let last = LAST_CLEANUP_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 600_000
        || LAST_CLEANUP_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        cleanup_abandoned(&state, UPLOAD_IDLE).await;
    });
}

async fn serve_paper(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((case_no, paper_id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let case = load_case(&state, &viewer, case_no).await?;
    let db = state.db.clone();
    let paper = blocking(move || Ok(db.paper(paper_id)?)).await?;
    let paper = match paper {
        Some(p) if p.case_id == case.id => p,
        _ => return Err(ApiError::not_found("paper")),
    };
    // The village sees a result paper only once the outcome is final.
    if viewer.is_village() && paper.kind == "result" && !(case.is_final() && case.result_paper_id == Some(paper.id)) {
        return Err(ApiError::not_found("paper"));
    }
    let _serving = SERVING.acquire().await.map_err(|_| ApiError::internal())?;
    // A paper of a case under legal hold lives in the hold area.
    let sealed = match state.objects.get_bytes(&paper.object_key, None).await {
        Err(cunneng_storage::StorageError::NotFound(_)) => {
            state.objects.get_bytes(&cunneng_storage::retention::hold_key(&paper.object_key), None).await
        }
        other => other,
    }
    .map_err(|e| storage_error("get paper", e))?;
    let ring = state.keys.clone();
    let key = paper.object_key.clone();
    let plain = blocking(move || {
        let oid = ObjectId::new(key).map_err(|_| ApiError::internal())?;
        let mut dec = Decryptor::new(&ring).expect(ObjectClass::PAPERS, oid);
        let mut out = Vec::with_capacity(sealed.len());
        dec.update(&sealed, &mut out).map_err(|e| storage_error("open paper", e))?;
        dec.finish().map_err(|e| storage_error("open paper", e))?;
        Ok(out)
    })
    .await?;
    if !viewer.is_village() {
        // Who looked (one event per viewer and paper per ten minutes).
        let ev = event(viewer.actor(), "paper.viewed", json!({"paper_id": paper.id}), false);
        let db = state.db.clone();
        let case_id = case.id;
        let since = ev.at_ms.saturating_sub(600_000);
        if let Err(e) = blocking(move || Ok(db.add_case_event_once(case_id, &ev, since)?)).await {
            tracing::warn!(code = e.code, "recording a paper view");
        }
    }
    let content_type =
        HeaderValue::from_str(&paper.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, content_disposition(&paper.name)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        plain,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescanBody {
    #[serde(default)]
    paper_id: Option<i64>,
    note: String,
}

async fn rescan(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<RescanBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let viewer = Viewer::of(&p)?;
    if !matches!(viewer, Viewer::Approver { .. } | Viewer::Chief { .. }) {
        return Err(ApiError::forbidden("re-scans are asked for by the window"));
    }
    let b = body(b)?;
    let note = text(&b.note, 500, "note")?;
    let case = load_case(&state, &viewer, case_no).await?;
    if case.is_final() {
        return Err(conflict("case_closed", "案件已办结 (the case is closed)"));
    }
    if let Some(pid) = b.paper_id {
        let db = state.db.clone();
        let case_id = case.id;
        blocking(move || match db.paper(pid)? {
            Some(p) if p.case_id == case_id => Ok(()),
            _ => Err(ApiError::not_found("paper")),
        })
        .await?;
    }
    let ev = event(viewer.actor(), "rescan.requested", json!({"paper_id": b.paper_id, "note": note}), true);
    let db = state.db.clone();
    let case_id = case.id;
    blocking(move || Ok(db.add_case_event(case_id, &ev)?)).await?;
    let msg = ServerMsg::PaperRescanRequested { case_no: case.case_no.clone(), paper_id: b.paper_id, note };
    notify_village(&state, case.village_id, msg).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            kind: "scan".into(),
            name: "a.pdf".into(),
            checklist_item: None,
            size,
            received,
            chunks: 0,
            content_type: None,
            by_kind: "kiosk".into(),
            by_id: 1,
            by_name: "k".into(),
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

    #[test]
    fn content_disposition_is_encoded() {
        let v = content_disposition("身份证\r\nSet-Cookie: x.pdf");
        let s = v.to_str().unwrap();
        assert!(s.starts_with("inline; filename*=UTF-8''"));
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert_eq!(s.matches(' ').count(), 1); // only the one after "inline;"
        assert!(s.contains("%0D%0A"));
    }
}
