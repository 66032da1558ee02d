//! `/api/inbox`: results that reached the village room after the call (the kiosk's).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;
use super::extract::CaseViewer;
use crate::case::Viewer;
use crate::service::cases;
use crate::service::views::InboxItemView;
use crate::state::AppState;

fn village_of(viewer: &Viewer) -> Result<i64, ApiError> {
    match viewer {
        Viewer::Kiosk { village_id, .. } => Ok(*village_id),
        _ => Err(ApiError::forbidden("the inbox is the village room's")),
    }
}

#[derive(Deserialize)]
pub(super) struct InboxQuery {
    unread: Option<bool>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Query(q): Query<InboxQuery>,
) -> Result<Json<Vec<InboxItemView>>, ApiError> {
    let village_id = village_of(&viewer)?;
    Ok(Json(cases::inbox(&state.db, village_id, q.unread.unwrap_or(false)).await?))
}

pub(super) async fn read(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let village_id = village_of(&viewer)?;
    state.db.run(move |db| db.mark_inbox_read(village_id, id, crate::now_ms())).await?;
    Ok(StatusCode::NO_CONTENT)
}
