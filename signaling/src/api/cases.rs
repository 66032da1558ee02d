//! `/api/cases…`, `/api/signoffs`: opening and reading cases, the villager, the four outcomes,
//! 一审一核 sign-off, the receipt, ratings and the recordings of a case. Each handler parses,
//! calls `service::cases`, and delivers the notices it returns.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{CaseViewer, JsonBody, optional_text, text};
use super::push::deliver;
use super::{ApiError, Authed};
use crate::audit::AccessAction;
use crate::case::villager::Villager;
use crate::case::{Outcome, Rating, ShownStatus, SignoffDecision, Viewer};
use crate::service::audit::Access;
use crate::service::cases::{self as cases, DecisionInput, Notice};
use crate::service::views::{CaseSummary, CaseView, RatingView, Receipt, SignoffItem};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VillagerBody {
    name: String,
    phone: String,
    #[serde(default)]
    id_number: Option<String>,
}

fn villager(b: &VillagerBody) -> Result<Villager, ApiError> {
    Villager::parse(&b.name, &b.phone, b.id_number.as_deref()).map_err(|bad| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_villager",
            format!("{} ({} is not valid)", bad.words(), bad.field()),
        )
    })
}

/// The case `case_no`, checked against the viewer's scope.
async fn load(state: &AppState, viewer: &Viewer, case_no: String) -> Result<crate::case::CaseRecord, ApiError> {
    Ok(cases::load(&state.db, viewer, case_no).await?)
}

/// The case as the viewer sees it, read fresh.
async fn view(state: &AppState, viewer: &Viewer, case_id: i64) -> Result<CaseView, ApiError> {
    Ok(cases::view(&state.db, case_id, viewer.audience()).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenCaseBody {
    matter_id: i64,
    #[serde(default)]
    villager: Option<VillagerBody>,
}

pub(super) async fn open(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    JsonBody(b): JsonBody<OpenCaseBody>,
) -> Result<Response, ApiError> {
    if !viewer.is_village() {
        return Err(ApiError::forbidden("cases are opened by the village room"));
    }
    let v = b.villager.as_ref().map(villager).transpose()?;
    let case = cases::open(&state.db, &state.vault, &viewer, b.matter_id, v).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &viewer, case.id).await?)).into_response())
}

pub(super) async fn current(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
) -> Result<Json<CaseView>, ApiError> {
    let Viewer::Kiosk { kiosk_id, .. } = viewer else {
        return Err(ApiError::forbidden("the current case is the village room's"));
    };
    Ok(Json(cases::current_of_kiosk(&state.db, kiosk_id, state.config.limits.prepared_case_hours).await?))
}

/// `GET /api/cases/undecided`: the window's calls that ended without a decision.
pub(super) async fn undecided(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
) -> Result<Json<Vec<CaseSummary>>, ApiError> {
    Ok(Json(cases::undecided(&state.db, &viewer, 200).await?))
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<CaseSummary>>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(ShownStatus::parse(s).ok_or_else(|| ApiError::bad_request("未知的状态 (unknown status)"))?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    Ok(Json(cases::list(&state.db, &viewer, status, limit).await?))
}

pub(super) async fn get(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(case_no): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let case = load(&state, &viewer, case_no).await?;
    if !viewer.is_village() {
        // Who of the town or the county opened the case (once per viewer per ten minutes).
        let access = Access {
            action: AccessAction::CaseOpened,
            case_id: Some(case.id),
            detail: serde_json::json!({}),
            address: super::review::address(&peer),
        };
        state.audit.access_once(&viewer.stamp(), access, crate::service::review::OPEN_WINDOW_MS).await?;
    }
    Ok(Json(view(&state, &viewer, case.id).await?))
}

/// The case `case_no` as someone asking for its recordings sees it: town staff of its town and
/// supervisors (404 outside the viewer's scope); never the village room (403). The one rule
/// for the recordings list and their media (`api::media`).
pub(super) async fn recordings_case(
    state: &AppState,
    viewer: &Viewer,
    case_no: String,
) -> Result<crate::case::CaseRecord, ApiError> {
    if viewer.is_village() {
        return Err(ApiError::forbidden("recordings are for town staff and supervisors"));
    }
    load(state, viewer, case_no).await
}

/// One recording of a case: per participant and call, whether it is complete, its segments,
/// archive and manifest objects. `id` names it in the media URLs (`api::media`).
#[derive(serde::Serialize)]
pub(super) struct RecordingView {
    id: i64,
    participant: String,
    room: String,
    take: u64,
    status: String,
    started_at_ms: u64,
    ended_at_ms: Option<u64>,
    segments: Vec<String>,
    archive_key: Option<String>,
    manifest_key: Option<String>,
}

/// The recordings of a case (staff of its town and supervisors).
pub(super) async fn recordings(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let case = recordings_case(&state, &viewer, case_no).await?;
    let rows = state
        .db
        .run(move |db| -> Result<_, crate::db::DataError> {
            let mut out = Vec::new();
            for r in db.recordings_of_case(case.id)? {
                out.push(RecordingView {
                    id: r.id,
                    segments: db.recording_segment_keys(r.id)?,
                    participant: r.participant,
                    room: r.room,
                    take: r.take,
                    status: r.status,
                    started_at_ms: r.started_at_ms,
                    ended_at_ms: r.ended_at_ms,
                    archive_key: r.archive_key,
                    manifest_key: r.manifest_key,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(Json(rows))
}

pub(super) async fn set_villager(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<VillagerBody>,
) -> Result<Json<CaseView>, ApiError> {
    if !viewer.is_village() {
        return Err(ApiError::forbidden("the village room enters the villager"));
    }
    let case = load(&state, &viewer, case_no).await?;
    let v = villager(&b)?;
    let case = cases::set_villager(&state.db, &state.vault, &viewer, &case, v).await?;
    super::push::announce_case_updated(&state, case.id, &case.case_no).await;
    Ok(Json(view(&state, &viewer, case.id).await?))
}

pub(super) async fn receipt(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
) -> Result<Json<Receipt>, ApiError> {
    if matches!(viewer, Viewer::Supervisor { .. }) {
        return Err(ApiError::forbidden("receipts are printed by the village room and the window"));
    }
    let case = load(&state, &viewer, case_no).await?;
    let id = case.id;
    let code = state.db.run(move |db| db.lookup_code(id)).await?.unwrap_or_default();
    Ok(Json(Receipt::of(&case, &code, &state.config.base_url())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutcomeBody {
    outcome: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    missing_items: Vec<String>,
    #[serde(default)]
    result_paper_id: Option<i64>,
}

fn clean_items(items: &[String]) -> Result<Vec<String>, ApiError> {
    if items.len() > 20 {
        return Err(ApiError::bad_request("缺少的材料最多 20 项 (at most 20 missing items)"));
    }
    items.iter().map(|i| text(i, 200, "missing_items")).collect()
}

pub(super) async fn decide(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<OutcomeBody>,
) -> Result<Json<CaseView>, ApiError> {
    if !matches!(viewer, Viewer::Approver { .. }) {
        return Err(ApiError::forbidden("outcomes are decided by the approver"));
    }
    let case = load(&state, &viewer, case_no).await?;
    let outcome = Outcome::parse(&b.outcome)
        .ok_or_else(|| ApiError::bad_request("outcome 应为 done, missing, refused 或 later"))?;
    let missing_items = clean_items(&b.missing_items)?;
    let note = if b.note.trim().is_empty() && outcome == Outcome::Missing && !missing_items.is_empty() {
        String::new()
    } else {
        text(&b.note, 2000, "note (理由或说明)")?
    };
    let live = state.engine.case_parties(case.id).await.and_then(|l| l.staff).map(|s| s.0);
    let input = DecisionInput { outcome, note, missing_items, result_paper_id: b.result_paper_id };
    let (case, notices) = match cases::decide(&state.db, &viewer, &case, input, live).await {
        Err(crate::error::Error::Rejected(r)) if r.code == "villager_required" => {
            // In the call: the village room is asked for the villager there and then.
            if live.is_some() {
                let ask = Notice::VillagerRequested { village_id: case.village_id, case_no: case.case_no.clone() };
                deliver(&state, vec![ask]).await;
            }
            return Err(r.into());
        }
        r => r?,
    };
    tracing::info!(case_id = case.id, outcome = %outcome, status = %case.status(), "case decided");
    deliver(&state, notices).await;
    Ok(Json(view(&state, &viewer, case.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FinishBody {
    note: String,
    result_paper_id: i64,
}

pub(super) async fn finish(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<FinishBody>,
) -> Result<Json<CaseView>, ApiError> {
    if !matches!(viewer, Viewer::Approver { .. } | Viewer::Chief { .. }) {
        return Err(ApiError::forbidden("the town finishes its cases"));
    }
    let note = text(&b.note, 2000, "note")?;
    let case = load(&state, &viewer, case_no).await?;
    let (case, notices) = cases::finish(&state.db, &viewer, &case, note, b.result_paper_id).await?;
    deliver(&state, notices).await;
    Ok(Json(view(&state, &viewer, case.id).await?))
}

pub(super) async fn signoffs(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
) -> Result<Json<Vec<SignoffItem>>, ApiError> {
    let Viewer::Chief { town_id, .. } = viewer else {
        return Err(ApiError::forbidden("sign-off lists are for window chiefs"));
    };
    Ok(Json(cases::waiting_for_signoff(&state.db, town_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignoffBody {
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn sign_off(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<SignoffBody>,
) -> Result<Json<CaseView>, ApiError> {
    if !matches!(viewer, Viewer::Chief { .. }) {
        return Err(ApiError::forbidden("sign-off is for window chiefs"));
    }
    let case = load(&state, &viewer, case_no).await?;
    let decision = match b.decision.as_str() {
        "approve" => SignoffDecision::Approved,
        "return" => SignoffDecision::Returned,
        _ => return Err(ApiError::bad_request("decision 应为 approve 或 return")),
    };
    let reason = match (decision, b.reason.as_deref()) {
        (SignoffDecision::Returned, Some(r)) => Some(text(r, 2000, "reason (退回理由)")?),
        (SignoffDecision::Returned, None) => {
            return Err(ApiError::bad_request("退回需要写明理由 (a reason is required)"));
        }
        (SignoffDecision::Approved, r) => optional_text(r, 2000, "reason")?,
    };
    let (case, notices) = cases::sign_off(&state.db, &viewer, &case, decision, reason).await?;
    tracing::info!(case_id = case.id, decision = %decision, "case signed off");
    deliver(&state, notices).await;
    Ok(Json(view(&state, &viewer, case.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RatingBody {
    rating: String,
    #[serde(default)]
    comment: Option<String>,
}

pub(super) async fn rate(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    JsonBody(b): JsonBody<RatingBody>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p).ok_or_else(|| ApiError::forbidden("cases"))?;
    if !viewer.is_village() {
        return Err(ApiError::forbidden("ratings are given at the village room"));
    }
    let rating = Rating::parse(&b.rating).ok_or_else(|| ApiError::bad_request("rating 应为 good, fair 或 bad"))?;
    let comment = optional_text(b.comment.as_deref(), 500, "comment")?;
    let case = load(&state, &viewer, case_no).await?;
    let r: RatingView = cases::rate(&state.db, &viewer, &case, rating, comment).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}
