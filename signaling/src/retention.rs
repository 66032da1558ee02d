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
use crate::objects::Keys;

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
    /// Retention-period keys destroyed (every copy of their objects is now unreadable).
    pub keys_shredded: usize,
    /// Objects a hold keeps past their period, re-wrapped under the KEK before their period
    /// key went.
    pub rewrapped_for_hold: usize,
}

impl std::fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destroyed {}, moved to the legal-hold area {}, released {}, kept by a legal hold {}, failed {}, \
             period keys shredded {}, held objects moved off their period key {}",
            self.destroyed,
            self.moved_to_hold,
            self.released,
            self.blocked_by_hold,
            self.failed,
            self.keys_shredded,
            self.rewrapped_for_hold
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
    keys: &Keys,
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
    let mut summary = SweepSummary {
        destroyed: report.destroyed.len(),
        moved_to_hold: report.moved_to_hold.len(),
        released: report.released.len(),
        failed: report.failed.len(),
        blocked_by_hold: plan.blocked.len(),
        ..SweepSummary::default()
    };
    shred_period_keys(store, keys, &records, &holds, log, now, &mut summary).await;
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

/// Destroy the retention-period keys whose period has ended: every object under one has
/// expired and was destroyed above, or is kept by a legal hold; the kept ones are first
/// re-wrapped under the active KEK (header only), so that only they outlive the key. A key
/// whose held objects could not all be re-wrapped is kept for the next sweep. Each destroyed
/// key gets a line in the destruction log.
async fn shred_period_keys(
    store: &dyn ObjectStore,
    keys: &Keys,
    records: &[ObjectRecord],
    holds: &BTreeSet<String>,
    log: &DestructionLog,
    now: SystemTime,
    summary: &mut SweepSummary,
) {
    let due = match keys.periods.due(now) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "retention: period keys could not be read");
            summary.failed += 1;
            return;
        }
    };
    for key in due {
        let mut kept = true;
        let held = records.iter().filter(|r| {
            r.class.as_str() == key.class
                && keys.periods.period_of(&r.class, r.created_at) == Some(key.period)
                && (r.in_hold_area || holds.contains(&r.case_id))
        });
        for r in held {
            let mut done = false;
            for location in [cunneng_storage::retention::hold_key(&r.key), r.key.clone()] {
                let rewrap = cunneng_storage::period::rewrap_stored(
                    store,
                    &location,
                    &keys.ring,
                    keys.ring.active(),
                    Some(&key.id),
                );
                match rewrap.await {
                    Ok(rewrapped) => {
                        summary.rewrapped_for_hold += usize::from(rewrapped);
                        done = true;
                        break;
                    }
                    Err(cunneng_storage::StorageError::NotFound(_)) => continue,
                    Err(e) => {
                        tracing::warn!(key = %r.key, error = %e, "retention: a held object could not be re-wrapped");
                        break;
                    }
                }
            }
            // Not found anywhere: nothing to keep.
            let missing = !done
                && store.head(&r.key).await.is_err()
                && store.head(&cunneng_storage::retention::hold_key(&r.key)).await.is_err();
            kept &= done || missing;
        }
        if !kept {
            summary.failed += 1;
            continue;
        }
        if let Err(e) = keys.periods.destroy(&key.id, now) {
            tracing::warn!(key = %key.id, error = %e, "retention: a period key could not be destroyed");
            summary.failed += 1;
            continue;
        }
        let record = cunneng_storage::DestructionRecord {
            key: key.id.clone(),
            class: key.class.clone(),
            case_id: String::new(),
            created_at: String::new(),
            expired_at: rfc3339_ms(key.period.end()),
            destroyed_at: rfc3339_ms(now),
            reason: format!(
                "retention-period key of class {} for the objects expiring in {} destroyed: no copy of them decrypts",
                key.class, key.period
            ),
        };
        if let Err(e) = log.append(&record) {
            tracing::error!(key = %key.id, error = %e, "retention: period key destroyed but its record could not be written");
        }
        tracing::info!(key = %key.id, "retention: period key destroyed");
        summary.keys_shredded += 1;
    }
}

fn rfc3339_ms(t: SystemTime) -> String {
    cunneng_storage::keys::rfc3339(t)
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
    keys: Keys,
    jobs: &crate::jobs::Jobs,
) -> Result<(), Error> {
    let policy = std::sync::Arc::new(crate::objects::retention_policy(config)?);
    let log = std::sync::Arc::new(destruction_log(config)?);
    jobs.every("retention-sweep", SWEEP_EVERY, move || {
        let (db, store, policy, log, keys) = (db.clone(), store.clone(), policy.clone(), log.clone(), keys.clone());
        async move {
            let s = sweep(&db, store.as_ref(), &policy, &keys, &log, SystemTime::now()).await?;
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
