//! `/api/cases/{case_no}/papers…`, `/uploads…`, `/rescan`: resumable uploads, papers served
//! decrypted on the fly, the village room's corrections of its scans (re-tag, remove), re-scan
//! requests. The work is `service::papers`; this file reads
//! bodies within their bounds and writes the answers.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::extract::{CaseViewer, JsonBody, text};
use super::push::{announce_paper, announce_paper_changed, deliver};
use crate::audit::AccessAction;
use crate::case::{PaperKind, Viewer};
use crate::db::PaperChange;
use crate::service::audit::Access;
use crate::service::cases;
use crate::service::papers::{CHUNK_MAX, ChunkCheck, ChunkOutcome, StartUpload, UploadState, too_large};
use crate::service::views::PaperView;
use crate::state::AppState;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    name: String,
    size: u64,
    #[serde(default)]
    checklist_item: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

pub(super) async fn start(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    let kind = match b.kind.as_deref() {
        None => PaperKind::Scan,
        Some(k) => PaperKind::parse(k).ok_or_else(|| ApiError::bad_request("kind 应为 scan 或 result"))?,
    };
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let started = state
        .papers
        .start(&viewer, &case, StartUpload { name: b.name, size: b.size, checklist_item: b.checklist_item, kind })
        .await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

/// An upload's state: 201 with the paper once complete (the answer to its last chunk).
fn upload_answer(u: UploadState) -> Response {
    let status = if u.complete { StatusCode::CREATED } else { StatusCode::OK };
    (status, Json(u)).into_response()
}

pub(super) async fn status(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path((case_no, upload_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let u = state.papers.upload_of(&case, upload_id).await?;
    // Only the role that uploads papers of its kind follows (and finishes) an upload.
    crate::service::papers::check_uploader(&viewer, &case, u.kind)?;
    if let Some(done) = finish_stalled(&state, &viewer, &case, &u).await? {
        return Ok(Json(done).into_response());
    }
    Ok(Json(state.papers.state(&case.case_no, &u).await?).into_response())
}

/// Finish an upload whose bytes are all in but that has no paper yet, and announce its paper.
async fn finish_stalled(
    state: &AppState,
    viewer: &Viewer,
    case: &crate::case::CaseRecord,
    u: &crate::db::UploadRow,
) -> Result<Option<UploadState>, ApiError> {
    let done = state.papers.finish_stalled(viewer, case, u).await?;
    if let Some(p) = done.as_ref().and_then(|d| d.paper.as_ref())
        && p.kind == PaperKind::Scan
    {
        announce_paper(state, case.id, &case.case_no, p).await;
    }
    Ok(done)
}

#[derive(Deserialize)]
pub(super) struct OffsetQuery {
    offset: Option<u64>,
}

fn offset_mismatch(offset: u64) -> Response {
    let v = serde_json::json!({
        "error": {"code": "offset_mismatch", "message": "上传位置不对,请从服务器记录的位置继续 (resume at the given offset)"},
        "offset": offset,
    });
    (StatusCode::CONFLICT, Json(v)).into_response()
}

pub(super) async fn put_chunk(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path((case_no, upload_id)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
    headers: HeaderMap,
    request_body: Body,
) -> Result<Response, ApiError> {
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
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let papers = &state.papers;
    let u = papers.upload_of(&case, upload_id).await?;
    // All bytes in but no paper: this request finishes it (whatever its body).
    if let Some(done) = finish_stalled(&state, &viewer, &case, &u).await? {
        return Ok(upload_answer(done));
    }
    let limit = match papers.check_put(&viewer, &case, &u, offset, content_length).await? {
        // A retry of the last chunk whose answer was lost: it is done.
        Err(done) => return Ok(upload_answer(done)),
        Ok(ChunkCheck::Accept { limit }) => limit,
        Ok(ChunkCheck::OffsetMismatch { offset }) => return Ok(offset_mismatch(offset)),
        Ok(ChunkCheck::TooLarge) => return Err(too_large(format!("这一块太大 (at most {CHUNK_MAX} bytes)")).into()),
    };
    let _busy = papers.lock_upload(&u)?;
    // One client may send only a few bodies at once, and a body that stalls is broken off:
    // one kiosk cannot hold the receiving slots every other village's uploads need.
    let _slot = papers.client_slot(&viewer)?;
    let receiving = papers.receiving().await?;
    let l = &state.config.limits;
    let timing = BodyTiming {
        idle: std::time::Duration::from_secs(l.paper_body_idle_secs),
        total: std::time::Duration::from_secs(l.paper_body_max_secs),
        min_bytes_per_sec: l.paper_body_min_bytes_per_sec,
    };
    let bytes = match read_body(request_body, limit, timing).await {
        Ok(b) => b,
        Err(BodyError::Stalled) => {
            state.metrics.inc_rejected("paper_body_stalled");
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "上传太慢或中断了,请重试 (the body stalled; resume with GET)",
            ));
        }
        Err(BodyError::Broken) => {
            return Err(ApiError::bad_request("上传中断 (the body was broken off; resume with GET)"));
        }
        Err(BodyError::TooLarge) => return Err(too_large("这一块太大 (chunk over the limit)").into()),
    };
    let outcome = papers.put_chunk(&viewer, &case, &u, offset, bytes).await;
    drop(receiving);
    match outcome? {
        ChunkOutcome::OffsetMismatch { offset } => Ok(offset_mismatch(offset)),
        ChunkOutcome::Stored(s) => {
            if let Some(p) = &s.paper
                && p.kind == PaperKind::Scan
            {
                announce_paper(&state, case.id, &case.case_no, p).await;
            }
            Ok(upload_answer(*s))
        }
    }
}

/// How long a body may take: between two pieces, and in all; and how slowly it may come once
/// its first `idle` has passed (a trickle of a byte now and then holds a receiving place as
/// surely as silence: several kiosks doing it together would hold them all).
#[derive(Debug, Clone, Copy)]
struct BodyTiming {
    idle: std::time::Duration,
    total: std::time::Duration,
    min_bytes_per_sec: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// Nothing came for `idle`, the whole took longer than `total`, or it came slower than
    /// `min_bytes_per_sec` after its first `idle`.
    Stalled,
    /// The connection broke off.
    Broken,
    /// More than `limit` bytes.
    TooLarge,
}

/// Read a body of at most `limit` bytes within `timing`.
async fn read_body(body: Body, limit: usize, timing: BodyTiming) -> Result<Vec<u8>, BodyError> {
    use futures_util::StreamExt;
    let start = tokio::time::Instant::now();
    let deadline = start + timing.total;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    loop {
        let wait = timing.idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(piece))) => {
                if out.len() + piece.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&piece);
                let elapsed = start.elapsed();
                if elapsed > timing.idle && (out.len() as f64) < timing.min_bytes_per_sec as f64 * elapsed.as_secs_f64()
                {
                    return Err(BodyError::Stalled);
                }
            }
        }
    }
}

pub(super) async fn abandon(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path((case_no, upload_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let u = state.papers.upload_of(&case, upload_id).await?;
    state.papers.abandon(&viewer, &case, &u).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn serve(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((case_no, paper_id)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let (paper, plain) = state.papers.open(&viewer, &case, paper_id).await?;
    if !viewer.is_village() {
        // Recorded before it is shown (one entry per viewer and paper per ten minutes).
        let access = Access {
            action: AccessAction::PaperViewed,
            case_id: Some(case.id),
            detail: serde_json::json!({"paper_id": paper.id}),
            address: super::review::address(&peer),
        };
        state.audit.access_once(&viewer.stamp(), access, crate::service::review::OPEN_WINDOW_MS).await?;
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

/// `PATCH /api/cases/{case_no}/papers/{paper_id}`: which paper of the checklist a scan is
/// (`null`: 其他材料). Only the village room, while the case takes scans.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetagBody {
    /// Required; `null` is 其他材料 (a missing key is a mistake, not 其他材料).
    #[serde(default, deserialize_with = "present")]
    checklist_item: Option<Option<String>>,
}

/// A key that is there, whether `null` or a string.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The kiosk's corrections of its scans: checked here for the role before anything is read.
fn village_only(viewer: &Viewer) -> Result<(), ApiError> {
    if viewer.is_village() { Ok(()) } else { Err(ApiError::forbidden("the village room corrects its own scans")) }
}

pub(super) async fn retag(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path((case_no, paper_id)): Path<(String, i64)>,
    JsonBody(b): JsonBody<RetagBody>,
) -> Result<Json<PaperView>, ApiError> {
    village_only(&viewer)?;
    let Some(item) = b.checklist_item else {
        return Err(ApiError::bad_request("缺少 checklist_item (null 表示其他材料)"));
    };
    let item = item.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let paper = cases::change_paper(&state.db, &viewer, &case, paper_id, PaperChange::Retag(item)).await?;
    let view = PaperView::of(&case.case_no, &paper);
    announce_paper_changed(&state, case.id, &case.case_no, &view).await;
    Ok(Json(view))
}

/// `DELETE /api/cases/{case_no}/papers/{paper_id}`: the village room takes a scan back; it stays
/// stored for the record and its retention, marked removed.
pub(super) async fn remove(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path((case_no, paper_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    village_only(&viewer)?;
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let paper = cases::change_paper(&state.db, &viewer, &case, paper_id, PaperChange::Remove).await?;
    announce_paper_changed(&state, case.id, &case.case_no, &PaperView::of(&case.case_no, &paper)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RescanBody {
    #[serde(default)]
    paper_id: Option<i64>,
    note: String,
}

pub(super) async fn rescan(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<RescanBody>,
) -> Result<StatusCode, ApiError> {
    if !matches!(viewer, Viewer::Approver { .. } | Viewer::Chief { .. }) {
        return Err(ApiError::forbidden("re-scans are asked for by the window"));
    }
    let note = text(&b.note, 500, "note")?;
    let case = cases::load(&state.db, &viewer, case_no).await?;
    let notices = cases::request_rescan(&state.db, &viewer, &case, b.paper_id, note).await?;
    deliver(&state, notices).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `pieces` pieces of `size` bytes, one every `every`.
    fn trickle(pieces: usize, size: usize, every: std::time::Duration) -> Body {
        let stream = futures_util::stream::unfold(0, move |n| async move {
            if n == pieces {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; size])), n + 1))
        });
        Body::from_stream(stream)
    }

    // Real time, scaled down (the workspace's tokio has no paused clock): a grace of 200 ms.
    const TIMING: BodyTiming = BodyTiming {
        idle: std::time::Duration::from_millis(200),
        total: std::time::Duration::from_secs(30),
        min_bytes_per_sec: 2048,
    };

    #[tokio::test]
    async fn a_slow_honest_link_gets_through() {
        // Far above the minimum: 4 KiB every 10 ms, well past the grace.
        let body = trickle(60, 4096, std::time::Duration::from_millis(10));
        assert_eq!(read_body(body, 1 << 20, TIMING).await.map(|b| b.len()), Ok(60 * 4096));
    }

    #[tokio::test]
    async fn a_trickle_is_broken_off_once_its_grace_has_passed() {
        // A byte every 50 ms never trips the idle limit, but is far below 2 KiB/s.
        let t0 = std::time::Instant::now();
        let body = trickle(1000, 1, std::time::Duration::from_millis(50));
        assert_eq!(read_body(body, 1 << 20, TIMING).await, Err(BodyError::Stalled));
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "broken off only after {:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn silence_and_size_are_limits_too() {
        let silent = trickle(2, 10, std::time::Duration::from_millis(400));
        assert_eq!(read_body(silent, 1 << 20, TIMING).await, Err(BodyError::Stalled));
        let too_big = trickle(3, 600 * 1024, std::time::Duration::from_millis(1));
        assert_eq!(read_body(too_big, 1 << 20, TIMING).await, Err(BodyError::TooLarge));
        // No minimum: a trickle only has the idle and total limits.
        let slow = trickle(8, 1, std::time::Duration::from_millis(50));
        assert_eq!(
            read_body(slow, 1 << 20, BodyTiming { min_bytes_per_sec: 0, ..TIMING }).await.map(|b| b.len()),
            Ok(8)
        );
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
