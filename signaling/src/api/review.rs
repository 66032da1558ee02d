//! `/api/review/…`: the supervisors' and chiefs' review (`service::review`): the search, a
//! case's full record, the access report, the export for review, and the audit key.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::extract::CaseViewer;
use crate::case::{Outcome, Rating, ShownStatus};
use crate::db::{CaseFilter, CaseOrder, RatingFilter, SignoffFilter};
use crate::service::bookings::{day_start, parse_day};
use crate::service::group_calls::{self, GroupCallId, GroupCallPage, GroupCallReview};
use crate::service::review::{self, AccessReport, CaseReview, Choices, SearchPage};
use crate::state::AppState;

/// The client address, for the access record.
pub(super) fn address(peer: &SocketAddr) -> Option<String> {
    Some(peer.ip().to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    case_no: Option<String>,
    town: Option<i64>,
    village: Option<i64>,
    matter: Option<i64>,
    window: Option<i64>,
    approver: Option<i64>,
    /// `YYYY-MM-DD` (China time), inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD` (China time), inclusive.
    to: Option<String>,
    /// Shown statuses, comma-separated (`open,missing`, `reviewing`, `done`, ...).
    status: Option<String>,
    outcome: Option<String>,
    /// `not_required`, `pending`, `returned`, `approved`.
    signoff: Option<String>,
    /// `good`, `fair`, `bad`, `none`.
    rating: Option<String>,
    has_recording: Option<bool>,
    recording_incomplete: Option<bool>,
    legal_hold: Option<bool>,
    /// The villager's full name, or the last four digits of the phone or ID number.
    villager: Option<String>,
    /// `newest` (default) or `oldest`.
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("搜索条件不正确 (bad {what})"))
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn filter_of(q: &SearchQuery) -> Result<(CaseFilter, CaseOrder, Option<i64>, usize), ApiError> {
    let day = |s: &str, what: &str| parse_day(s).ok_or_else(|| bad(what));
    let mut f = CaseFilter {
        case_no: blank(&q.case_no).map(|s| s.to_ascii_uppercase()),
        town_id: q.town,
        village_id: q.village,
        matter_id: q.matter,
        window_id: q.window,
        approver_id: q.approver,
        from_ms: blank(&q.from).map(|s| day(s, "from").map(day_start)).transpose()?,
        to_ms: blank(&q.to).map(|s| day(s, "to").map(|d| day_start(d + 1))).transpose()?,
        has_recording: q.has_recording,
        recording_incomplete: q.recording_incomplete,
        legal_hold: q.legal_hold,
        ..CaseFilter::default()
    };
    if f.case_no.as_deref().is_some_and(|n| n.len() > 40 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(bad("case_no"));
    }
    if let Some(s) = blank(&q.status) {
        let mut statuses = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let shown = ShownStatus::parse(part).ok_or_else(|| bad("status"))?;
            statuses.extend_from_slice(shown.statuses(crate::case::Audience::Town).ok_or_else(|| bad("status"))?);
        }
        f.statuses = Some(statuses);
    }
    f.outcome = blank(&q.outcome).map(|s| Outcome::parse(s).ok_or_else(|| bad("outcome"))).transpose()?;
    f.signoff = match blank(&q.signoff) {
        None => None,
        Some("not_required") => Some(SignoffFilter::NotRequired),
        Some("pending") => Some(SignoffFilter::Pending),
        Some("returned") => Some(SignoffFilter::Returned),
        Some("approved") => Some(SignoffFilter::Approved),
        Some(_) => return Err(bad("signoff")),
    };
    f.rating = match blank(&q.rating) {
        None => None,
        Some("none") => Some(RatingFilter::None),
        Some(r) => Some(RatingFilter::Is(Rating::parse(r).ok_or_else(|| bad("rating"))?)),
    };
    if let Some(v) = blank(&q.villager) {
        if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit() || b == b'X' || b == b'x') {
            f.villager_last4 = Some(v.to_ascii_uppercase());
        } else if v.chars().count() <= 50 && !v.chars().any(char::is_control) {
            f.villager_name = Some(v.to_string());
        } else {
            return Err(bad("villager"));
        }
    }
    let order = match blank(&q.sort) {
        None | Some("newest") => CaseOrder::Newest,
        Some("oldest") => CaseOrder::Oldest,
        Some(_) => return Err(bad("sort")),
    };
    let cursor = blank(&q.cursor).map(|c| c.parse::<i64>().map_err(|_| bad("cursor"))).transpose()?;
    Ok((f, order, cursor, q.limit.unwrap_or(30)))
}

pub(super) async fn search(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    review::scope_of(&viewer)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("搜索条件不正确 ({})", e.body_text())))?;
    let (f, order, cursor, limit) = filter_of(&q)?;
    Ok(Json(review::search(&state.db, &state.audit, &viewer, f, order, cursor, limit, address(&peer)).await?))
}

pub(super) async fn case(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(case_no): Path<String>,
) -> Result<Json<CaseReview>, ApiError> {
    Ok(Json(review::case_review(&state.db, &state.audit, &viewer, case_no, address(&peer)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccessQuery {
    user: Option<i64>,
    from: Option<String>,
    to: Option<String>,
}

pub(super) async fn access(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    q: Result<Query<AccessQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccessReport>, ApiError> {
    review::scope_of(&viewer)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("查询条件不正确 ({})", e.body_text())))?;
    let from = match blank(&q.from) {
        Some(d) => day_start(parse_day(d).ok_or_else(|| bad("from"))?),
        None => 0,
    };
    let to = match blank(&q.to) {
        Some(d) => day_start(parse_day(d).ok_or_else(|| bad("to"))? + 1),
        None => u64::MAX,
    };
    let report = review::access_report(&state.db, &state.audit, &viewer, q.user, from, to, address(&peer)).await?;
    Ok(Json(report))
}

pub(super) async fn export(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(case_no): Path<String>,
) -> Result<Response, ApiError> {
    let stream = crate::service::export::export(&state, &viewer, case_no, address(&peer)).await?;
    let name = format!("attachment; filename=\"{}.cunneng-case.tar\"", stream.case_no);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        Body::from_stream(stream.body),
    )
        .into_response())
}

/// The audit record's public key (hex) and its id, for verifying exports elsewhere.
pub(super) async fn public_key(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
) -> Result<Json<serde_json::Value>, ApiError> {
    review::scope_of(&viewer)?;
    let key = state.audit.public_key();
    Ok(Json(serde_json::json!({"algorithm": "ed25519", "key_id": key.key_id(), "public_key": key.to_hex()})))
}

/// `GET /api/review/choices`: the search form's towns, villages, windows, staff and matters,
/// in the reviewer's scope.
pub(super) async fn choices(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
) -> Result<Json<Choices>, ApiError> {
    Ok(Json(review::choices(&state.db, &viewer).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupCallsQuery {
    /// `YYYY-MM-DD` (China time), inclusive.
    from: Option<String>,
    to: Option<String>,
    /// The last id of the page before.
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/review/group-calls`: the group calls (一对多) in the reviewer's scope, newest first.
pub(super) async fn group_calls(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    q: Result<Query<GroupCallsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GroupCallPage>, ApiError> {
    review::scope_of(&viewer)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("查询条件不正确 ({})", e.body_text())))?;
    let from = blank(&q.from).map(|d| parse_day(d).map(day_start).ok_or_else(|| bad("from"))).transpose()?;
    let to = blank(&q.to).map(|d| parse_day(d).map(|d| day_start(d + 1)).ok_or_else(|| bad("to"))).transpose()?;
    let cursor = blank(&q.cursor).map(|c| GroupCallId::parse(c).ok_or_else(|| bad("cursor"))).transpose()?;
    let page =
        group_calls::list(&state.db, &state.audit, &viewer, from, to, cursor, q.limit.unwrap_or(30), address(&peer))
            .await?;
    Ok(Json(page))
}

/// `GET /api/review/group-calls/{call}`: one group call with its recordings.
pub(super) async fn group_call(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(call): Path<String>,
) -> Result<Json<GroupCallReview>, ApiError> {
    review::scope_of(&viewer)?;
    let id =
        GroupCallId::parse(&call).ok_or_else(|| ApiError::from(crate::error::Rejection::not_found("group call")))?;
    Ok(Json(group_calls::review(&state.db, &state.audit, &viewer, id, address(&peer)).await?))
}
