//! `/api/ledger…`: a village room's ledger (台账, `service::ledger`) for one month, as JSON for
//! the page and as an Excel workbook. The room sees its own; the town's chief and supervisors
//! in scope name the village (`village_id`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;

use super::ApiError;
use super::extract::CaseViewer;
use super::stats::{XLSX, download};
use crate::service::ledger::{self, LedgerView, Month};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    /// `YYYY-MM` (China time); default this month.
    month: Option<String>,
    village_id: Option<i64>,
}

type ParamsResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

async fn view(state: &AppState, viewer: &crate::case::Viewer, q: ParamsResult) -> Result<LedgerView, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::bad_request(format!("台账条件不正确 ({})", e.body_text())))?;
    let month = match p.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Month::parse(m).ok_or_else(|| ApiError::bad_request("月份不正确,应为 2026-12 这样 (bad month)"))?,
        None => Month::of(crate::now_ms()),
    };
    Ok(ledger::ledger(&state.db, viewer, p.village_id, month).await?)
}

/// `GET /api/ledger`: the month's ledger as JSON.
pub(super) async fn show(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    q: ParamsResult,
) -> Result<Json<LedgerView>, ApiError> {
    Ok(Json(view(&state, &viewer, q).await?))
}

/// `GET /api/ledger/export.xlsx`: the same month as an Excel workbook.
pub(super) async fn export_xlsx(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    q: ParamsResult,
) -> Result<Response, ApiError> {
    let view = view(&state, &viewer, q).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", ledger::file_name(&view)))
        .unwrap_or(HeaderValue::from_static("attachment"));
    let bytes = tokio::task::spawn_blocking(move || ledger::xlsx(&view))
        .await
        .map_err(|e| crate::error::Error::Tool(format!("xlsx: {e}")))??;
    Ok(download(XLSX, disposition, bytes))
}
