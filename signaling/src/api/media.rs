//! `/api/cases/{case_no}/recordings/{recording_id}/archive` and `…/segments/{index}`: a
//! recording's media, decrypted on the fly, with range requests (`range`), for whoever may
//! see the case's recordings (`cases::recordings_case`); the same under
//! `/api/group-calls/{call}/recordings/…` for a group call's recordings (reviewers in whose
//! scope the call is, `service::group_calls::check`); `/api/playback-cookie`, so that a
//! `<video>` element can send the staff token. The work is `service::playback`.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::{CaseViewer, MEDIA_COOKIE, MediaViewer, bearer};
use super::range::{self, Plan};
use super::{ApiError, cases};
use crate::audit::AccessAction;
use crate::case::Viewer;
use crate::error::Error;
use crate::service::access::MediaPart;
use crate::service::audit::Access;
use crate::service::group_calls::{self, GroupCallId};
use crate::service::playback::{MediaOwner, MediaStream};
use crate::state::AppState;

/// `GET|HEAD …/recordings/{recording_id}/archive`: the seekable archive copy.
pub(super) async fn archive(
    State(state): State<AppState>,
    MediaViewer(viewer): MediaViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((case_no, recording_id)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let req = Request { method: &method, headers: &headers, address: super::review::address(&peer) };
    let owner = case_owner(&state, &viewer, case_no).await?;
    serve(&state, &viewer, owner, recording_id, MediaPart::Archive, req).await
}

/// `GET|HEAD …/recordings/{recording_id}/segments/{index}`: one segment (a complete file).
pub(super) async fn segment(
    State(state): State<AppState>,
    MediaViewer(viewer): MediaViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((case_no, recording_id, index)): Path<(String, i64, u32)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let req = Request { method: &method, headers: &headers, address: super::review::address(&peer) };
    let owner = case_owner(&state, &viewer, case_no).await?;
    serve(&state, &viewer, owner, recording_id, MediaPart::Segment(index), req).await
}

/// `GET|HEAD /api/group-calls/{call}/recordings/{recording_id}/archive`.
pub(super) async fn group_archive(
    State(state): State<AppState>,
    MediaViewer(viewer): MediaViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((call, recording_id)): Path<(String, i64)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let req = Request { method: &method, headers: &headers, address: super::review::address(&peer) };
    let owner = group_owner(&state, &viewer, &call).await?;
    serve(&state, &viewer, owner, recording_id, MediaPart::Archive, req).await
}

/// `GET|HEAD /api/group-calls/{call}/recordings/{recording_id}/segments/{index}`.
pub(super) async fn group_segment(
    State(state): State<AppState>,
    MediaViewer(viewer): MediaViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((call, recording_id, index)): Path<(String, i64, u32)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let req = Request { method: &method, headers: &headers, address: super::review::address(&peer) };
    let owner = group_owner(&state, &viewer, &call).await?;
    serve(&state, &viewer, owner, recording_id, MediaPart::Segment(index), req).await
}

/// Whose media is asked for, as the access record names it.
struct Owner {
    owner: MediaOwner,
    case_id: Option<i64>,
    /// The group call's id, for the access record.
    group_call: Option<String>,
}

/// A case the viewer may see the recordings of.
async fn case_owner(state: &AppState, viewer: &Viewer, case_no: String) -> Result<Owner, ApiError> {
    let case = cases::recordings_case(state, viewer, case_no).await?;
    Ok(Owner { owner: MediaOwner::Case(case.id), case_id: Some(case.id), group_call: None })
}

/// A group call in the viewer's review scope (403 for anyone but reviewers, 404 for a call
/// that does not exist or is of another town).
async fn group_owner(state: &AppState, viewer: &Viewer, call: &str) -> Result<Owner, ApiError> {
    crate::service::review::scope_of(viewer)?;
    let id =
        GroupCallId::parse(call).ok_or_else(|| ApiError::from(crate::error::Rejection::not_found("group call")))?;
    group_calls::check(&state.db, viewer, id).await?;
    Ok(Owner {
        owner: MediaOwner::GroupCall { room: id.room(), take: id.take },
        case_id: None,
        group_call: Some(id.to_string()),
    })
}

/// What `serve` needs of the request.
struct Request<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    address: Option<String>,
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values built here are ASCII")
}

async fn serve(
    state: &AppState,
    viewer: &Viewer,
    owner: Owner,
    recording_id: i64,
    part: MediaPart,
    req: Request<'_>,
) -> Result<Response, ApiError> {
    let Request { method, headers, address } = req;
    let Owner { owner, case_id, group_call } = owner;
    let media = match state.playback.open(owner, recording_id, part).await {
        Err(Error::Rejected(r)) if r.code == "streams_busy" => {
            let mut busy = ApiError::from(r).into_response();
            busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return Ok(busy);
        }
        other => other?,
    };
    let (len, etag) = (media.len(), media.etag());
    let plan = range::plan(
        len,
        headers.get(header::RANGE).map(HeaderValue::as_bytes),
        headers.get(header::IF_RANGE).map(HeaderValue::as_bytes),
        &etag,
    )
    .map_err(|why| ApiError::bad_request(format!("Range 格式不对 (bad Range header: {why})")))?;

    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    let (status, bytes) = match plan {
        Plan::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("请求的范围超出了录像的长度 (the range is outside the {len} bytes of this recording)"),
            )
            .into_response();
            h.insert(header::CONTENT_RANGE, value(&format!("bytes */{len}")));
            refused.headers_mut().extend(h);
            return Ok(refused);
        }
        Plan::Full => (StatusCode::OK, 0..len),
        Plan::Partial(r) => {
            h.insert(header::CONTENT_RANGE, value(&format!("bytes {}-{}/{len}", r.start, r.end - 1)));
            (StatusCode::PARTIAL_CONTENT, r)
        }
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type));
    h.insert(header::CONTENT_LENGTH, value(&(bytes.end - bytes.start).to_string()));
    if method == Method::HEAD {
        return Ok((status, h).into_response());
    }
    // The viewing is recorded before its first byte (one entry per viewer and recording per
    // ten minutes; how much was watched follows when the viewing ends).
    let detail = match group_call {
        Some(call) => serde_json::json!({"recording_id": recording_id, "group_call": call}),
        None => serde_json::json!({"recording_id": recording_id}),
    };
    let access = Access { action: AccessAction::RecordingPlayed, case_id, detail, address: address.clone() };
    state.audit.access_once(&viewer.stamp(), access, crate::service::review::OPEN_WINDOW_MS).await?;
    let stream = state.playback.stream(media, bytes, viewer.stamp(), address)?;
    Ok((status, h, Body::from_stream(pieces(stream))).into_response())
}

/// The stream's pieces as a body: an `Err` breaks the connection off, so that a response cut
/// short is never taken for a whole one.
fn pieces(stream: MediaStream) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(stream, |mut s| async move { s.next().await.map(|p| (p.map(Bytes::from), s)) })
}

/// The paths under which the media endpoints live: the cookie is set for each of them only.
const MEDIA_PATHS: [&str; 2] = ["/api/cases/", "/api/group-calls/"];

/// `POST /api/playback-cookie`: the staff token, in an `HttpOnly`, `SameSite=Strict` cookie
/// for the media endpoints only (one per path of [`MEDIA_PATHS`]), for `<video src>`. Town staff and
/// supervisors; it lasts as long as a session may, and dies with the session.
pub(super) async fn set_cookie(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if viewer.is_village() {
        return Err(ApiError::forbidden("recordings are for town staff and supervisors"));
    }
    let token = bearer(&headers).filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric()));
    let token = token.ok_or_else(ApiError::unauthorized)?;
    let secure = if state.config.base_url().starts_with("https://") { "; Secure" } else { "" };
    let max_age = state.config.auth.session_ttl_hours * 3600;
    let mut h = HeaderMap::new();
    for path in MEDIA_PATHS {
        let cookie =
            format!("{MEDIA_COOKIE}={token}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
        h.append(header::SET_COOKIE, value(&cookie));
    }
    Ok((StatusCode::NO_CONTENT, h).into_response())
}

/// `DELETE /api/playback-cookie`: forget it.
pub(super) async fn clear_cookie() -> Response {
    let mut h = HeaderMap::new();
    for path in MEDIA_PATHS {
        let cookie = format!("{MEDIA_COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict");
        h.append(header::SET_COOKIE, value(&cookie));
    }
    (StatusCode::NO_CONTENT, h).into_response()
}
