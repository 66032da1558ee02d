//! `/api/cases/{case_no}/legal-hold`: supervisors and administrators place, show and lift a
//! legal hold on a case (retention then keeps all its objects until lifted).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::{ApiError, Authed};
use crate::db::LegalHold;
use crate::identity::{Principal, Role};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoldBody {
    reason: String,
}

#[derive(Serialize)]
pub(super) struct HoldAnswer {
    hold: Option<LegalHold>,
}

/// Supervisors and administrators (county-wide) decide legal holds.
fn holder(p: &Principal) -> Result<i64, ApiError> {
    match p {
        Principal::Staff { user_id, role: Role::Supervisor | Role::Admin, .. } => Ok(*user_id),
        _ => Err(ApiError::forbidden("legal holds are placed by supervisors and administrators")),
    }
}

async fn case_id(state: &AppState, case_no: String) -> Result<i64, ApiError> {
    if case_no.len() > 64 {
        return Err(ApiError::not_found("case"));
    }
    state.db.run(move |db| db.case_by_no(&case_no)).await?.map(|c| c.id).ok_or_else(|| ApiError::not_found("case"))
}

pub(super) async fn place(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<Json<HoldAnswer>, ApiError> {
    let by = holder(&p)?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request("请写明原因 (a reason of 1 to 500 characters is required)"));
    }
    let case = case_id(&state, case_no).await?;
    let hold = state
        .db
        .run(move |db| {
            db.place_legal_hold(case, by, &reason, crate::now_ms())?;
            db.legal_hold(case)
        })
        .await?;
    tracing::info!(case, by, "legal hold placed");
    Ok(Json(HoldAnswer { hold }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<HoldAnswer>, ApiError> {
    holder(&p)?;
    let case = case_id(&state, case_no).await?;
    let hold = state.db.run(move |db| db.legal_hold(case)).await?;
    Ok(Json(HoldAnswer { hold }))
}

pub(super) async fn lift(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<StatusCode, ApiError> {
    let by = holder(&p)?;
    let case = case_id(&state, case_no).await?;
    if !state.db.run(move |db| db.lift_legal_hold(case)).await? {
        return Err(ApiError::not_found("legal hold"));
    }
    tracing::info!(case, by, "legal hold lifted");
    Ok(StatusCode::NO_CONTENT)
}
