//! Retention and legal hold, server side: the catalog of stored objects feeds the storage
//! crate's retention policy (media 365 days, papers 3 years by default); a sweep destroys what
//! expired (deleting an object destroys its only wrapped data key: crypto-shredding) and
//! records it; a legal hold on a case blocks every deletion of its objects until lifted (its
//! objects move to the hold area, which no lifecycle rule covers). Supervisors and
//! administrators place and lift holds.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use cunneng_storage::{DestructionLog, ObjectClass, ObjectRecord, ObjectStore, RetentionPolicy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, Role};
use crate::db::Db;
use crate::error::{ApiError, Error};
use crate::http::Authed;
use crate::state::AppState;

/// How often the server sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(6 * 3600);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepSummary {
    pub destroyed: usize,
    pub moved_to_hold: usize,
    pub released: usize,
    pub failed: usize,
    pub blocked_by_hold: usize,
}

impl std::fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destroyed {}, moved to the legal-hold area {}, released {}, kept by a legal hold {}, failed {}",
            self.destroyed, self.moved_to_hold, self.released, self.blocked_by_hold, self.failed
        )
    }
}

fn ms_to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// One sweep at `now`. Failed steps are retried by the next sweep.
pub async fn sweep(
    db: &Db,
    store: &dyn ObjectStore,
    policy: &RetentionPolicy,
    log: &DestructionLog,
    now: SystemTime,
) -> Result<SweepSummary, Error> {
    let (catalog, holds) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> Result<_, crate::db::DataError> {
            db.catalog_papers()?;
            Ok((db.catalog()?, db.legal_hold_cases()?))
        })
        .await
        .map_err(|e| Error::Tool(format!("database task: {e}")))??
    };
    let records: Vec<ObjectRecord> = catalog
        .iter()
        .filter_map(|c| {
            Some(ObjectRecord {
                key: c.key.clone(),
                class: ObjectClass::new(&c.class).ok()?,
                case_id: c.case_id.map(|i| i.to_string()).unwrap_or_default(),
                created_at: ms_to_time(c.created_at_ms),
                in_hold_area: c.in_hold_area,
            })
        })
        .collect();
    let holds: BTreeSet<String> = holds.into_iter().map(|c| c.to_string()).collect();
    let plan = policy.plan(&records, &holds, now);
    let report = cunneng_storage::retention::execute(store, &plan, &holds, log, now).await;
    let summary = SweepSummary {
        destroyed: report.destroyed.len(),
        moved_to_hold: report.moved_to_hold.len(),
        released: report.released.len(),
        failed: report.failed.len(),
        blocked_by_hold: plan.blocked.len(),
    };
    for (key, e) in &report.failed {
        tracing::warn!(%key, error = %e, "retention step failed; the next sweep retries it");
    }
    let db = db.clone();
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    tokio::task::spawn_blocking(move || -> Result<(), crate::db::DataError> {
        for k in &report.moved_to_hold {
            db.set_in_hold_area(k, true)?;
        }
        for k in &report.released {
            db.set_in_hold_area(k, false)?;
        }
        for d in &report.destroyed {
            let row = catalog.iter().find(|c| c.key == d.key);
            db.record_destruction(
                &d.key,
                &d.class,
                row.and_then(|r| r.case_id),
                row.map_or(0, |r| r.created_at_ms),
                now_ms,
                &d.reason,
            )?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Tool(format!("database task: {e}")))??;
    Ok(summary)
}

/// The destruction log file next to the database.
pub fn destruction_log(config: &crate::config::Config) -> Result<DestructionLog, Error> {
    Ok(DestructionLog::open(config.data_dir.join("destructions.log"))?)
}

/// Sweep now and then, for as long as the server runs.
pub fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let policy = match crate::objects::retention_policy(&state.config) {
            Ok(p) => p,
            Err(e) => return tracing::error!(error = %e, "retention policy; no sweeps"),
        };
        let log = match destruction_log(&state.config) {
            Ok(l) => l,
            Err(e) => return tracing::error!(error = %e, "destruction log; no sweeps"),
        };
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            match sweep(&state.db, state.objects.as_ref(), &policy, &log, SystemTime::now()).await {
                Ok(s) if s == SweepSummary::default() => tracing::debug!("retention sweep: nothing to do"),
                Ok(s) => tracing::info!(summary = %s, "retention sweep"),
                Err(e) => tracing::error!(error = %e, "retention sweep failed"),
            }
        }
    });
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/cases/{case_no}/legal-hold", put(place).get(show).delete(lift))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
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
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || db.case_by_no(&case_no))
        .await
        .map_err(|_| ApiError::internal())??
        .map(|c| c.id)
        .ok_or_else(|| ApiError::not_found("case"))
}

async fn place(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    body: Result<Json<HoldBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let by = holder(&p)?;
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("请求格式错误 (bad request body: {})", e.body_text())))?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request("请写明原因 (a reason of 1 to 500 characters is required)"));
    }
    let case = case_id(&state, case_no).await?;
    let db = state.db.clone();
    let hold = tokio::task::spawn_blocking(move || {
        db.place_legal_hold(case, by, &reason, crate::now_ms())?;
        db.legal_hold(case)
    })
    .await
    .map_err(|_| ApiError::internal())??;
    tracing::info!(case, by, "legal hold placed");
    Ok(Json(json!({ "hold": hold })))
}

async fn show(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    holder(&p)?;
    let case = case_id(&state, case_no).await?;
    let db = state.db.clone();
    let hold = tokio::task::spawn_blocking(move || db.legal_hold(case)).await.map_err(|_| ApiError::internal())??;
    Ok(Json(json!({ "hold": hold })))
}

async fn lift(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<StatusCode, ApiError> {
    let by = holder(&p)?;
    let case = case_id(&state, case_no).await?;
    let db = state.db.clone();
    let lifted =
        tokio::task::spawn_blocking(move || db.lift_legal_hold(case)).await.map_err(|_| ApiError::internal())??;
    if !lifted {
        return Err(ApiError::not_found("legal hold"));
    }
    tracing::info!(case, by, "legal hold lifted");
    Ok(StatusCode::NO_CONTENT)
}
