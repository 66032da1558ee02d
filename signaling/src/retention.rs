//! Retention, server side: the catalog of stored objects feeds the storage crate's retention
//! policy (media 365 days, papers 3 years by default); a sweep destroys what expired
//! (deleting an object destroys its only wrapped data key: crypto-shredding) and records it;
//! a legal hold on a case blocks every deletion of its objects until lifted (its objects move
//! to the hold area, which no lifecycle rule covers). Holds are placed and lifted through the
//! API (`api::legal_hold`); the server sweeps as a job ([`start_sweeps`]).

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cunneng_storage::{DestructionLog, ObjectClass, ObjectRecord, ObjectStore, RetentionPolicy};

use crate::db::{DataError, Db, IntentRow};
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
    /// Cases whose villager's personal data was erased (with the papers' retention).
    pub erased_personal_data: usize,
    /// Objects nothing accounted for that the reconcile removed (a paper whose row never
    /// came, chunks of an upload that is gone)...
    pub orphans_removed: usize,
    /// ...and that it catalogued, so that retention covers them.
    pub orphans_catalogued: usize,
    /// Retention-period keys destroyed (every copy of their objects is now unreadable).
    pub keys_shredded: usize,
    /// Objects a hold keeps past their period, re-wrapped under the KEK before their period
    /// key went.
    pub rewrapped_for_hold: usize,
}

/// How old an object (or its intent) must be before the reconcile settles it: an object
/// being written now has its row a moment later.
pub const RECONCILE_GRACE: Duration = Duration::from_secs(3600);

/// One object of the store's listing, as the reconcile sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Last modified, Unix ms (unknown: treated as old).
    pub modified_ms: Option<u64>,
}

/// What the reconcile does about one object or intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Remove the object (and its intent): a paper whose row never came (never acknowledged;
    /// its upload keeps its chunks and is finished by the next request), chunks of an upload
    /// that no longer exists.
    Remove { key: String },
    /// Catalogue the object so that retention covers it: a segment, archive or manifest whose
    /// row never came (its recording is marked incomplete), or an object nothing knows of.
    Catalog { key: String, class: String, case_id: Option<i64>, created_at_ms: u64 },
    /// The intent of an object that was never written.
    DropIntent { key: String },
}

/// The reconcile, pure: the store's `listing` against what the database accounts for
/// (`known` catalogue and paper keys, the `uploads` that exist, the `intents`), at `now_ms`.
/// Objects and intents younger than `grace_ms` are left alone; so is the legal-hold area.
pub fn reconcile_plan(
    listing: &[Listed],
    known: &HashSet<String>,
    uploads: &HashSet<String>,
    intents: &[IntentRow],
    now_ms: u64,
    grace_ms: u64,
) -> Vec<Settle> {
    let old = |ms: Option<u64>| ms.is_none_or(|m| m.saturating_add(grace_ms) <= now_ms);
    let mut out = Vec::new();
    let mut listed = HashSet::new();
    for l in listing {
        let key = l.key.as_str();
        listed.insert(key);
        if key.starts_with("legal-hold/") || known.contains(key) {
            continue;
        }
        if let Some(rest) = key.strip_prefix("uploads/") {
            let id = rest.split('/').next().unwrap_or_default();
            if !uploads.contains(id) && old(l.modified_ms) {
                out.push(Settle::Remove { key: key.to_string() });
            }
            continue;
        }
        match intents.iter().find(|i| i.key == key) {
            Some(i) if !old(Some(i.created_at_ms)) => {}
            Some(i) if i.class == "papers" => out.push(Settle::Remove { key: key.to_string() }),
            Some(i) => out.push(Settle::Catalog {
                key: key.to_string(),
                class: i.class.clone(),
                case_id: i.case_id,
                created_at_ms: i.created_at_ms,
            }),
            None if old(l.modified_ms) => {
                let class = key.split('/').next().unwrap_or_default();
                if matches!(class, "papers" | "media" | "manifest") {
                    out.push(Settle::Catalog {
                        key: key.to_string(),
                        class: class.to_string(),
                        case_id: None,
                        created_at_ms: l.modified_ms.unwrap_or(now_ms),
                    });
                }
            }
            None => {}
        }
    }
    for i in intents {
        if known.contains(&i.key) || (!listed.contains(i.key.as_str()) && old(Some(i.created_at_ms))) {
            out.push(Settle::DropIntent { key: i.key.clone() });
        }
    }
    out
}

/// Reconcile the store's listing with the catalogue (see [`reconcile_plan`]); returns how
/// many objects were removed and catalogued. Failures are retried by the next sweep.
pub async fn reconcile(db: &Db, store: &dyn ObjectStore, now_ms: u64) -> Result<(usize, usize), Error> {
    let listing: Vec<Listed> = store
        .list("")
        .await?
        .into_iter()
        .map(|m| Listed {
            key: m.key,
            size: m.size,
            modified_ms: m.modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64),
        })
        .collect();
    let (known, uploads, intents) =
        db.run(|db| -> Result<_, DataError> { Ok((db.known_object_keys()?, db.upload_ids()?, db.intents()?)) }).await?;
    let plan = reconcile_plan(&listing, &known, &uploads, &intents, now_ms, RECONCILE_GRACE.as_millis() as u64);
    let (mut removed, mut catalogued) = (0, 0);
    for step in plan {
        match step {
            Settle::Remove { key } => match store.delete(&key).await {
                Ok(()) => {
                    tracing::info!(%key, "reconcile: removed an object nothing accounts for");
                    db.run(move |db| db.drop_intent(&key)).await?;
                    removed += 1;
                }
                Err(e) => tracing::warn!(%key, error = %e, "reconcile: removing an object failed"),
            },
            Settle::Catalog { key, class, case_id, created_at_ms } => {
                let size = listing.iter().find(|l| l.key == key).map_or(0, |l| l.size);
                tracing::warn!(%key, %class, "reconcile: catalogued an object whose row never came");
                db.run(move |db| db.catalog_object(&key, &class, case_id, size, created_at_ms)).await?;
                catalogued += 1;
            }
            Settle::DropIntent { key } => db.run(move |db| db.drop_intent(&key)).await?,
        }
    }
    Ok((removed, catalogued))
}

impl std::fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destroyed {}, moved to the legal-hold area {}, released {}, kept by a legal hold {}, failed {}, \
             period keys shredded {}, held objects moved off their period key {}, \
             personal data erased from {} cases, orphans removed {}, orphans catalogued {}",
            self.destroyed,
            self.moved_to_hold,
            self.released,
            self.blocked_by_hold,
            self.failed,
            self.keys_shredded,
            self.rewrapped_for_hold,
            self.erased_personal_data,
            self.orphans_removed,
            self.orphans_catalogued
        )
    }
}

fn ms_to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// One sweep at `now`: first the store's listing is reconciled with the catalogue, then
/// what expired is destroyed. Failed steps are retried by the next sweep.
pub async fn sweep(
    db: &Db,
    store: &dyn ObjectStore,
    policy: &RetentionPolicy,
    keys: &Keys,
    log: &DestructionLog,
    now: SystemTime,
) -> Result<SweepSummary, Error> {
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let (orphans_removed, orphans_catalogued) = reconcile(db, store, now_ms).await?;
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
        orphans_removed,
        orphans_catalogued,
        ..SweepSummary::default()
    };
    shred_period_keys(store, keys, &records, &holds, log, now, &mut summary).await;
    for (key, e) in &report.failed {
        tracing::warn!(%key, error = %e, "retention step failed; the next sweep retries it");
    }
    // The villager's personal data goes with the papers: a case untouched for the papers'
    // retention period keeps only its anonymous facts.
    let papers_ms = u64::from(policy.retention_days(&ObjectClass::new("papers")?).unwrap_or(u32::MAX)) * 86_400_000;
    let before_ms = now_ms.saturating_sub(papers_ms);
    summary.erased_personal_data = db.run(move |db| db.erase_expired_personal_data(before_ms)).await?;
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
            // The object's hold area first, then its own key; gone from both: nothing to keep.
            // Any other error (the store down) keeps the period key for the next sweep.
            let mut outcome = Ok(());
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
                        outcome = Ok(());
                        break;
                    }
                    Err(cunneng_storage::StorageError::NotFound(_)) => continue,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = outcome {
                tracing::warn!(key = %r.key, error = %e, "retention: a held object could not be re-wrapped");
                kept = false;
            }
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
            expired_at: cunneng_storage::keys::rfc3339(key.period.end()),
            destroyed_at: cunneng_storage::keys::rfc3339(now),
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

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn listed(key: &str, modified_ms: u64) -> Listed {
        Listed { key: key.into(), size: 10, modified_ms: Some(modified_ms) }
    }

    fn intent(key: &str, class: &str, at: u64) -> IntentRow {
        IntentRow { key: key.into(), class: class.into(), case_id: Some(7), created_at_ms: at }
    }

    #[test]
    fn reconcile_settles_what_a_crash_left() {
        let now = 100 * H;
        let known: HashSet<String> = ["papers/1/known".to_string()].into();
        let uploads: HashSet<String> = ["u1".to_string()].into();
        let listing = vec![
            listed("papers/1/known", 0),
            listed("papers/1/orphan", 0),          // intent, old: a paper never recorded
            listed("papers/1/young", now),         // intent, being written now
            listed("media/c/r/seg-00001.webm", 0), // intent, old: catalogued
            listed("papers/9/unknown", 0),         // no intent at all: catalogued
            listed("uploads/u1/000000", 0),        // its upload exists
            listed("uploads/u2/000000", 0),        // its upload is gone
            listed("uploads/u3/000000", now),      // too young to judge
            listed("legal-hold/papers/1/x", 0),
        ];
        let intents = vec![
            intent("papers/1/orphan", "papers", 0),
            intent("papers/1/young", "papers", now - 1),
            intent("media/c/r/seg-00001.webm", "media", 5),
            intent("papers/1/known", "papers", 0), // the row came: the intent goes
            intent("papers/1/never-written", "papers", 0),
            intent("papers/1/being-written", "papers", now),
        ];
        let plan = reconcile_plan(&listing, &known, &uploads, &intents, now, H);
        assert_eq!(
            plan,
            vec![
                Settle::Remove { key: "papers/1/orphan".into() },
                Settle::Catalog {
                    key: "media/c/r/seg-00001.webm".into(),
                    class: "media".into(),
                    case_id: Some(7),
                    created_at_ms: 5
                },
                Settle::Catalog {
                    key: "papers/9/unknown".into(),
                    class: "papers".into(),
                    case_id: None,
                    created_at_ms: 0
                },
                Settle::Remove { key: "uploads/u2/000000".into() },
                Settle::DropIntent { key: "papers/1/known".into() },
                Settle::DropIntent { key: "papers/1/never-written".into() },
            ]
        );
        // Nothing to do when everything is accounted for.
        assert!(reconcile_plan(&listing[..1], &known, &uploads, &[], now, H).is_empty());
    }
}
