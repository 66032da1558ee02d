//! `/api/stats…`: the statistics of `service::stats` for supervisors and town chiefs, as JSON
//! for the `/stats` page and as CSV and Excel (`.xlsx`) for the offices.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiError;
use super::extract::CaseViewer;
use crate::case::stats::{By, Grouping};
use crate::service::bookings::{day_start, parse_day};
use crate::service::stats::{self, StatsQuery, StatsView};
use crate::state::AppState;

const DAY_MS: u64 = 86_400_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    /// `YYYY-MM-DD` (China time), inclusive; default 30 days before `to`.
    from: Option<String>,
    /// `YYYY-MM-DD` (China time), inclusive; default today.
    to: Option<String>,
    /// `day` (default), `week`, `month`.
    group: Option<String>,
    /// `town` (default), `village`, `window`, `matter`, `approver`.
    by: Option<String>,
    town: Option<i64>,
    /// CSV: `breakdown` (default) or `series`. (The Excel export has both, and refuses it.)
    table: Option<String>,
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("统计条件不正确 (bad {what})"))
}

fn query_of(p: &Params) -> Result<StatsQuery, ApiError> {
    let blank = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let today = crate::service::bookings::day_of(crate::now_ms());
    let to_day = match blank(&p.to) {
        Some(d) => parse_day(&d).ok_or_else(|| bad("to"))?,
        None => today,
    };
    let from_day = match blank(&p.from) {
        Some(d) => parse_day(&d).ok_or_else(|| bad("from"))?,
        None => to_day.saturating_sub(29),
    };
    let grouping = match blank(&p.group) {
        Some(g) => Grouping::parse(&g).ok_or_else(|| bad("group"))?,
        None => Grouping::Day,
    };
    let by = match blank(&p.by) {
        Some(b) => By::parse(&b).ok_or_else(|| bad("by"))?,
        None => By::Town,
    };
    Ok(StatsQuery { town: p.town, from_ms: day_start(from_day), to_ms: day_start(to_day + 1), grouping, by })
}

type ParamsResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

fn params(q: ParamsResult) -> Result<Params, ApiError> {
    q.map(|Query(p)| p).map_err(|e| ApiError::bad_request(format!("统计条件不正确 ({})", e.body_text())))
}

/// `GET /api/stats`: the report as JSON.
pub(super) async fn report(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    q: ParamsResult,
) -> Result<Json<StatsView>, ApiError> {
    let q = query_of(&params(q)?)?;
    Ok(Json(stats::report(&state.db, &viewer, q, crate::now_ms()).await?))
}

/// `attachment; filename="cunneng-stats-FROM-TO.EXT"` of a report.
fn attachment(view: &StatsView, ext: &str) -> HeaderValue {
    let label = |ms: u64| crate::case::stats::Grouping::Day.label(ms);
    let name = format!(
        "attachment; filename=\"cunneng-stats-{}-{}.{ext}\"",
        label(view.from_ms),
        label(view.to_ms.saturating_sub(DAY_MS).max(view.from_ms))
    );
    HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment"))
}

pub(super) fn download(content_type: &'static str, disposition: HeaderValue, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/stats/export.csv`: the breakdown (or the series) as CSV.
pub(super) async fn export_csv(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    q: ParamsResult,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let breakdown = match p.table.as_deref() {
        None | Some("breakdown") => true,
        Some("series") => false,
        Some(_) => return Err(bad("table")),
    };
    let q = query_of(&p)?;
    let view = stats::report(&state.db, &viewer, q, crate::now_ms()).await?;
    Ok(download("text/csv; charset=utf-8", attachment(&view, "csv"), stats::csv(&view, breakdown)))
}

/// The media type of an Excel workbook.
pub(super) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// `GET /api/stats/export.xlsx`: the breakdown and the series as two sheets of one workbook
/// (the same conditions as the JSON; `table` is not taken).
pub(super) async fn export_xlsx(
    State(state): State<AppState>,
    CaseViewer(viewer): CaseViewer,
    q: ParamsResult,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    if p.table.is_some() {
        return Err(bad("table"));
    }
    let q = query_of(&p)?;
    let view = stats::report(&state.db, &viewer, q, crate::now_ms()).await?;
    let town_name = match view.town {
        Some(id) => state.db.run(move |db| db.town(id)).await?.map(|t| t.name),
        None => None,
    };
    let disposition = attachment(&view, "xlsx");
    let bytes = tokio::task::spawn_blocking(move || stats::xlsx(&view, town_name.as_deref()))
        .await
        .map_err(|e| crate::error::Error::Tool(format!("xlsx: {e}")))??;
    Ok(download(XLSX, disposition, bytes))
}
