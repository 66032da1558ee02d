//! `/api/cases/{case_no}/legal-hold`: supervisors and administrators place, show and lift a
//! legal hold on a case (retention then keeps all its objects until lifted).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::{ApiError, Authed};
use crate::audit::AccessAction;
use crate::case::EventActor;
use crate::db::{HoldHistoryRow, LegalHold};
use crate::identity::{Principal, Role};
use crate::service::audit::Access;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoldBody {
    reason: String,
}

#[derive(Serialize)]
pub(super) struct HoldAnswer {
    hold: Option<LegalHold>,
    history: Vec<HoldHistoryRow>,
}

/// Supervisors and administrators decide legal holds; a supervisor of one town only on his
/// town's cases.
fn holder(p: &Principal) -> Result<(i64, Option<i64>), ApiError> {
    match p {
        Principal::Staff { user_id, role: Role::Supervisor | Role::Admin, town_id, .. } => Ok((*user_id, *town_id)),
        _ => Err(ApiError::forbidden("legal holds are placed by supervisors and administrators")),
    }
}

/// The case's id, in the holder's scope.
async fn case_id(state: &AppState, case_no: String, town: Option<i64>) -> Result<i64, ApiError> {
    if case_no.len() > 64 {
        return Err(ApiError::not_found("case"));
    }
    let case = state.db.run(move |db| db.case_by_no(&case_no)).await?.ok_or_else(|| ApiError::not_found("case"))?;
    if town.is_some_and(|t| t != case.town_id) {
        return Err(ApiError::forbidden("this case belongs to another town"));
    }
    Ok(case.id)
}

fn reason_of(raw: &str) -> Result<String, ApiError> {
    let reason = raw.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request("请写明原因 (a reason of 1 to 500 characters is required)"));
    }
    Ok(reason)
}

async fn answer(state: &AppState, case: i64) -> Result<HoldAnswer, ApiError> {
    let (hold, history) = state
        .db
        .run(move |db| Ok::<_, crate::db::DataError>((db.legal_hold(case)?, db.legal_hold_history(case)?)))
        .await?;
    Ok(HoldAnswer { hold, history })
}

fn stamp(p: &Principal) -> EventActor {
    EventActor { kind: crate::case::ActorKind::Staff, id: Some(p.user_id()), name: p.name().to_string() }
}

pub(super) async fn place(
    State(state): State<AppState>,
    Authed(p): Authed,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(case_no): Path<String>,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<Json<HoldAnswer>, ApiError> {
    let (by, town) = holder(&p)?;
    let reason = reason_of(&body.reason)?;
    let case = case_id(&state, case_no, town).await?;
    let access = Access {
        action: AccessAction::HoldPlaced,
        case_id: Some(case),
        detail: serde_json::json!({"reason": reason}),
        address: super::review::address(&peer),
    };
    state.audit.access(&stamp(&p), access).await?;
    state.db.run(move |db| db.place_legal_hold(case, by, &reason, crate::now_ms())).await?;
    tracing::info!(case, by, "legal hold placed");
    Ok(Json(answer(&state, case).await?))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<HoldAnswer>, ApiError> {
    let (_, town) = holder(&p)?;
    let case = case_id(&state, case_no, town).await?;
    Ok(Json(answer(&state, case).await?))
}

/// Lift a hold, with a reason (`{"reason": ...}`; an empty body is lifted "without reason
/// given", as older clients do).
pub(super) async fn lift(
    State(state): State<AppState>,
    Authed(p): Authed,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(case_no): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (by, town) = holder(&p)?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        "未说明原因 (no reason given)".to_string()
    } else {
        let b: HoldBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("请求格式错误 (bad request body: {e})")))?;
        reason_of(&b.reason)?
    };
    let case = case_id(&state, case_no, town).await?;
    let access = Access {
        action: AccessAction::HoldLifted,
        case_id: Some(case),
        detail: serde_json::json!({"reason": reason}),
        address: super::review::address(&peer),
    };
    if state.db.run(move |db| db.legal_hold(case)).await?.is_none() {
        return Err(ApiError::not_found("legal hold"));
    }
    state.audit.access(&stamp(&p), access).await?;
    if !state.db.run(move |db| db.lift_legal_hold(case, by, &reason, crate::now_ms())).await? {
        return Err(ApiError::not_found("legal hold"));
    }
    tracing::info!(case, by, "legal hold lifted");
    Ok(StatusCode::NO_CONTENT)
}
