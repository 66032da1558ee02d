//! `/api/matters`, `/api/windows`, `/api/villages`: the region as the principal's town sees it.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{ApiError, Authed};
use crate::db::{MatterRow, VillageRow, WindowRow};
use crate::identity::{Principal, Role};
use crate::state::AppState;

#[derive(Deserialize)]
pub(super) struct MatterQuery {
    q: Option<String>,
}

pub(super) async fn matters(
    State(state): State<AppState>,
    Authed(p): Authed,
    Query(q): Query<MatterQuery>,
) -> Result<Json<Vec<MatterRow>>, ApiError> {
    let town = p.town_id();
    if town.is_none() && !p.is_county_wide() {
        return Err(ApiError::forbidden("matters"));
    }
    let query = q.q.filter(|s| !s.trim().is_empty());
    if query.as_deref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::bad_request("搜索词过长 (query too long)"));
    }
    Ok(Json(state.db.run(move |db| db.matters_for_town(town, query.as_deref())).await?))
}

pub(super) async fn windows(
    State(state): State<AppState>,
    Authed(p): Authed,
) -> Result<Json<Vec<WindowRow>>, ApiError> {
    let town = p.town_id().ok_or_else(|| ApiError::forbidden("windows are listed per town"))?;
    Ok(Json(state.db.run(move |db| db.windows_of_town(town)).await?))
}

/// A village of the town, and whether one of its kiosks is connected now.
#[derive(Serialize)]
pub(super) struct VillageOnline {
    #[serde(flatten)]
    village: VillageRow,
    online: bool,
}

pub(super) async fn villages(
    State(state): State<AppState>,
    Authed(p): Authed,
) -> Result<Json<Vec<VillageOnline>>, ApiError> {
    let allowed = matches!(&p, Principal::Staff { role: Role::Dispatcher | Role::Chief | Role::Approver, .. });
    if !allowed {
        return Err(ApiError::forbidden("villages"));
    }
    let town = p.town_id().ok_or_else(|| ApiError::forbidden("villages are listed per town"))?;
    let list = state.db.run(move |db| db.villages_of_town(town)).await?;
    let online = state.engine.online_villages().await;
    Ok(Json(list.into_iter().map(|v| VillageOnline { online: online.contains(&v.id), village: v }).collect()))
}
