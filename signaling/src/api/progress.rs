//! `GET /api/progress`: the public progress lookup by case number and the last four digits of
//! the villager's phone. Rate-limited per client address; says nothing personal, and the same
//! "not found" for every kind of mismatch. A kiosk that sends its token (the clerk checks
//! several villagers from the room) is counted per kiosk (`limits.progress_kiosk_*`) instead.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ApiError;
use crate::case::plausible_case_no;
use crate::service::views::Progress;
use crate::state::AppState;

#[derive(Deserialize)]
pub(super) struct ProgressQuery {
    case: Option<String>,
    phone4: Option<String>,
}

pub(super) async fn lookup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ProgressQuery>,
) -> Result<Json<Progress>, ApiError> {
    // A token that is not a kiosk's (or not valid) counts as no token: the lookup is public.
    let kiosk = match super::extract::bearer(&headers) {
        Some(token) => match state.resolve_token(token.to_string()).await {
            Ok(crate::identity::Principal::Kiosk { kiosk_id, .. }) => Some(kiosk_id),
            _ => None,
        },
        None => None,
    };
    let allowed = match kiosk {
        Some(k) => state.progress_kiosk_limit.allow(&k, Instant::now()),
        None => state.progress_limit.allow(&peer.ip(), Instant::now()),
    };
    if !allowed {
        state.metrics.inc_rejected("progress_rate");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "查询太频繁,请稍后再试 (too many lookups)",
        ));
    }
    let (Some(case_no), Some(phone4)) = (q.case, q.phone4) else {
        return Err(ApiError::bad_request("请输入案件编号和电话后四位 (case and phone4 are required)"));
    };
    let generic = || ApiError::not_found("case (check the number and the last four digits)");
    let case_no = case_no.trim().to_ascii_uppercase();
    let phone4 = phone4.trim().to_string();
    if !plausible_case_no(&case_no) || phone4.len() != 4 || !phone4.bytes().all(|b| b.is_ascii_digit()) {
        return Err(generic());
    }
    let case = state.db.run(move |db| db.case_by_no(&case_no)).await?.ok_or_else(generic)?;
    let matches = case.villager_phone.as_deref().is_some_and(|p| p.len() >= 4 && p[p.len() - 4..] == phone4);
    if !matches {
        return Err(generic());
    }
    Ok(Json(Progress::of(&case)))
}
