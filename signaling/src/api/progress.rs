//! `GET /api/progress`: the public progress lookup by case number, the lookup code printed on
//! the receipt and the last four digits of the villager's phone (the village room's own kiosk
//! needs no code: it sends its device token). Rate-limited per client address and per case
//! number; says nothing personal, and the same "not found" for every kind of mismatch. A kiosk
//! that sends its token (the clerk checks several villagers from the room) is counted per kiosk
//! (`limits.progress_kiosk_*`) instead of per address.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::ApiError;
use super::extract::bearer;
use crate::case::plausible_case_no;
use crate::identity::Principal;
use crate::service::views::Progress;
use crate::state::AppState;

#[derive(Deserialize)]
pub(super) struct ProgressQuery {
    case: Option<String>,
    phone4: Option<String>,
    code: Option<String>,
}

pub(super) async fn lookup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ProgressQuery>,
) -> Result<Json<Progress>, ApiError> {
    // A token that is not a kiosk's (or not valid) counts as no token: the lookup is public.
    let kiosk = match bearer(&headers) {
        Some(token) => match state.resolve_token(token.to_string()).await {
            Ok(Principal::Kiosk { kiosk_id, village_id, .. }) => Some((kiosk_id, village_id)),
            _ => None,
        },
        None => None,
    };
    let allowed = match kiosk {
        Some((k, _)) => state.progress_kiosk_limit.take(&k),
        None => state.progress_limit.take(&peer.ip()),
    };
    if let Err(wait) = allowed {
        state.metrics.inc_rejected("progress_rate");
        return Err(ApiError::rate_limited("查询太频繁,请稍后再试 (too many lookups)", wait));
    }
    let (Some(case_no), Some(phone4)) = (q.case, q.phone4) else {
        return Err(ApiError::bad_request("请输入案件编号和电话后四位 (case and phone4 are required)"));
    };
    let generic = || ApiError::not_found("case (check the number, the lookup code and the last four digits)");
    let case_no = case_no.trim().to_ascii_uppercase();
    let phone4 = phone4.trim().to_string();
    if !plausible_case_no(&case_no) || phone4.len() != 4 || !phone4.bytes().all(|b| b.is_ascii_digit()) {
        return Err(generic());
    }
    // Guesses on one case are limited wherever they come from (behind a proxy every citizen
    // shares one address).
    if let Err(wait) = state.progress_case_limit.take(&case_no) {
        state.metrics.inc_rejected("progress_case_rate");
        return Err(ApiError::rate_limited("这个案件查询太频繁,请稍后再试 (too many lookups of this case)", wait));
    }
    let kiosk_village = kiosk.map(|(_, v)| v);
    let no = case_no.clone();
    let case = state.db.run(move |db| db.case_by_no(&no)).await?.ok_or_else(generic)?;
    let id = case.id;
    let code = state.db.run(move |db| db.lookup_code(id)).await?;
    let own_kiosk = kiosk_village == Some(case.village_id);
    let code_matches = match (code, q.code) {
        (Some(want), Some(given)) => {
            let given: String = given.chars().filter(|c| c.is_ascii_digit()).collect();
            constant_time_eq(want.as_bytes(), given.as_bytes())
        }
        _ => false,
    };
    let phone_matches = case.villager_phone.as_deref().is_some_and(|p| p.len() >= 4 && p[p.len() - 4..] == phone4);
    if !phone_matches || !(code_matches || own_kiosk) {
        return Err(generic());
    }
    Ok(Json(Progress::of(&case)))
}

/// Equal bytes, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
