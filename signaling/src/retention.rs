//! Retention, server side: the catalog of stored objects feeds the storage crate's retention
//! policy (media 365 days, papers 3 years by default); a sweep destroys what expired
//! (deleting an object destroys its only wrapped data key: crypto-shredding) and records it;
//! a legal hold on a case blocks every deletion of its objects until lifted (its objects move
//! to the hold area, which no lifecycle rule covers). Holds are placed and lifted through the
//! API (`api::legal_hold`); the server sweeps as a job ([`start_sweeps`]).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cunneng_storage::{DestructionLog, ObjectClass, ObjectRecord, ObjectStore, RetentionPolicy};

use crate::db::{DataError, Db};
use crate::error::Error;

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
    let (catalog, holds) = db
        .run(|db| -> Result<_, DataError> {
            db.catalog_papers()?;
            Ok((db.catalog()?, db.legal_hold_cases()?))
        })
        .await?;
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
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    db.run(move |db| -> Result<(), DataError> {
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
    .await?;
    Ok(summary)
}

/// The destruction log file next to the database.
pub fn destruction_log(config: &crate::config::Config) -> Result<DestructionLog, Error> {
    Ok(DestructionLog::open(config.data_dir.join("destructions.log"))?)
}

/// Sweep at start and then every [`SWEEP_EVERY`], as a job of the server.
pub fn start_sweeps(
    config: &crate::config::Config,
    db: Db,
    store: std::sync::Arc<dyn ObjectStore>,
    jobs: &crate::jobs::Jobs,
) -> Result<(), Error> {
    let policy = std::sync::Arc::new(crate::objects::retention_policy(config)?);
    let log = std::sync::Arc::new(destruction_log(config)?);
    jobs.every("retention-sweep", SWEEP_EVERY, move || {
        let (db, store, policy, log) = (db.clone(), store.clone(), policy.clone(), log.clone());
        async move {
            let s = sweep(&db, store.as_ref(), &policy, &log, SystemTime::now()).await?;
            if s == SweepSummary::default() {
                tracing::debug!("retention sweep: nothing to do");
            } else {
                tracing::info!(summary = %s, "retention sweep");
            }
            Ok(())
        }
    });
    Ok(())
}
