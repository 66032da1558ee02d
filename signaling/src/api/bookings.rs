//! `/api/bookings…`: 预约 slots, booking, the day's bookings, cancelling (`service::bookings`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::extract::{CaseViewer, JsonBody, optional_text};
use crate::case::Viewer;
use crate::service::bookings::{self, Slots, parse_day};
use crate::service::views::BookingView;
use crate::state::AppState;

fn day(date: &str) -> Result<u64, ApiError> {
    parse_day(date).ok_or_else(|| ApiError::bad_request("日期格式应为 YYYY-MM-DD"))
}

#[derive(Deserialize)]
pub(super) struct SlotsQuery {
    matter_id: Option<i64>,
    date: Option<String>,
}

pub(super) async fn slots(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Query(q): Query<SlotsQuery>,
) -> Result<Json<Slots>, ApiError> {
    let Viewer::Kiosk { town_id, .. } = viewer else {
        return Err(ApiError::forbidden("bookings are made by the village room"));
    };
    let matter_id = q.matter_id.ok_or_else(|| ApiError::bad_request("缺少 matter_id (matter_id is required)"))?;
    let date = q.date.ok_or_else(|| ApiError::bad_request("缺少日期 (date=YYYY-MM-DD is required)"))?;
    let d = day(&date)?;
    Ok(Json(bookings::slots(&state.db, town_id, matter_id, d, date.trim().to_string()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BookBody {
    matter_id: i64,
    start_ms: u64,
    #[serde(default)]
    note: Option<String>,
}

pub(super) async fn book(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    JsonBody(b): JsonBody<BookBody>,
) -> Result<Response, ApiError> {
    if !viewer.is_village() {
        return Err(ApiError::forbidden("bookings are made by the village room"));
    }
    let note = optional_text(b.note.as_deref(), 200, "note")?;
    let max_open = state.config.limits.open_bookings_per_village;
    let booking = bookings::book(&state.db, &viewer, b.matter_id, b.start_ms, note, max_open).await?;
    Ok((StatusCode::CREATED, Json(booking)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    date: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<BookingView>>, ApiError> {
    let d = match q.date.as_deref() {
        Some(d) if !d.trim().is_empty() => Some(day(d)?),
        _ => None,
    };
    Ok(Json(bookings::list(&state.db, &viewer, d).await?))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let Viewer::Kiosk { village_id, .. } = viewer else {
        return Err(ApiError::forbidden("bookings are cancelled by the village room"));
    };
    bookings::cancel(&state.db, village_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
