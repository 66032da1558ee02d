//! Retention: how long each class of object is kept, legal holds, and destruction.
//!
//! [`RetentionPolicy::plan`] is pure: given the object records (key, class, case, creation
//! time), the cases under legal hold and `now`, it says which objects to destroy, which to
//! move into or out of the hold area, and which expired objects a hold keeps. [`execute`]
//! carries a plan out against an [`ObjectStore`] and appends a [`DestructionRecord`] per
//! destroyed object to an append-only [`DestructionLog`].
//!
//! - **Periods**: `media` 365 days, `papers` 3 years (1095 days), `manifest` as its media
//!   unless set; other classes can be configured. An object expires at
//!   `created_at + days × 86 400 s` and is destroyed by the first sweep at or after that.
//!   Objects of a class without a period are never destroyed (and reported).
//! - **Crypto-shredding**: an object's data key is wrapped by the retention-period key of its
//!   class and expiry month ([`crate::period`]), destroyed once the month has ended, so copies
//!   outside the store (backups, snapshots) are unreadable from then on; deleting the object
//!   removes the stored copy.
//! - **Legal hold** (per case): blocks every destruction of the case's objects until lifted.
//!   The store's own lifecycle rules cannot know about holds (Garage has no object lock and no
//!   tag filters; its rules filter by prefix and size only), so a held object is moved out of
//!   the prefixes the rules cover: from `KEY` to `legal-hold/KEY` (server-side copy, verify,
//!   delete). No rule covers `legal-hold/`. When the hold is lifted, objects whose period has
//!   not ended move back; the others are destroyed where they are.
//! - **Lifecycle backstop**: [`RetentionPolicy::lifecycle_rules`] gives one expiration rule
//!   per class prefix (`media/`, `papers/`, `manifest/`) at the period plus a grace
//!   (default 30 days), and the abort-incomplete-multipart rule. The sweep, which writes the
//!   destruction records, normally runs first; the rules only act if it stopped running. They
//!   cover objects stored under `CLASS/…` keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::format::ObjectClass;
use crate::keys::rfc3339;
use crate::s3::LifecycleRule;
use crate::store::ObjectStore;

/// Where held objects live: no lifecycle rule covers this prefix.
pub const HOLD_PREFIX: &str = "legal-hold/";
const DAY: u64 = 86_400;

/// The hold-area key of `key`.
pub fn hold_key(key: &str) -> String {
    format!("{HOLD_PREFIX}{key}")
}

/// The key prefix objects of `class` are stored under (and the lifecycle rule covers).
pub fn class_prefix(class: &ObjectClass) -> String {
    format!("{}/", class.as_str())
}

/// Retention periods (the `[storage.retention]` table of the server config).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default = "default_media_days")]
    pub media_days: u32,
    #[serde(default = "default_papers_days")]
    pub papers_days: u32,
    /// Manifests: as long as the media they describe unless set.
    #[serde(default)]
    pub manifest_days: Option<u32>,
    /// Periods of other classes, by class name.
    #[serde(default)]
    pub other_days: BTreeMap<String, u32>,
    /// Days the bucket's lifecycle rules wait beyond a period before deleting on their own.
    #[serde(default = "default_grace_days")]
    pub lifecycle_grace_days: u32,
}

fn default_media_days() -> u32 {
    365
}
fn default_papers_days() -> u32 {
    1095
}
fn default_grace_days() -> u32 {
    30
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            media_days: default_media_days(),
            papers_days: default_papers_days(),
            manifest_days: None,
            other_days: BTreeMap::new(),
            lifecycle_grace_days: default_grace_days(),
        }
    }
}

/// What the store knows about one object (kept by the caller's catalog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The object's key (and object id); its canonical location.
    pub key: String,
    pub class: ObjectClass,
    pub case_id: String,
    pub created_at: SystemTime,
    /// The object currently lives at [`hold_key`]`(key)` (moved there for a legal hold).
    pub in_hold_area: bool,
}

impl ObjectRecord {
    /// Where the object is now.
    pub fn location(&self) -> String {
        if self.in_hold_area { hold_key(&self.key) } else { self.key.clone() }
    }
}

/// An object to destroy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedDestruction {
    pub key: String,
    pub class: ObjectClass,
    pub case_id: String,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    pub retention_days: u32,
}

/// Move an object between its key and the hold area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub key: String,
    pub case_id: String,
    pub from: String,
    pub to: String,
}

/// An expired object a legal hold keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub key: String,
    pub case_id: String,
    pub expired_at: SystemTime,
}

/// What a sweep should do; see [`RetentionPolicy::plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub destroy: Vec<PlannedDestruction>,
    /// Objects of held cases to move into the hold area.
    pub move_to_hold: Vec<Move>,
    /// Objects of cases no longer held, not expired, to move back.
    pub release: Vec<Move>,
    /// Expired objects that a hold keeps.
    pub blocked: Vec<Blocked>,
    /// Keys whose class has no retention period (kept).
    pub unknown_class: Vec<String>,
    /// The earliest expiry after `now` among unheld objects (when a sweep next has work).
    pub next_expiry: Option<SystemTime>,
}

/// One line of the destruction log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionRecord {
    pub key: String,
    pub class: String,
    pub case_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub expired_at: String,
    pub destroyed_at: String,
    pub reason: String,
}

impl PlannedDestruction {
    pub fn record(&self, destroyed_at: SystemTime) -> DestructionRecord {
        DestructionRecord {
            key: self.key.clone(),
            class: self.class.as_str().to_owned(),
            case_id: self.case_id.clone(),
            created_at: rfc3339(self.created_at),
            expired_at: rfc3339(self.expires_at),
            destroyed_at: rfc3339(destroyed_at),
            reason: format!(
                "retention period of {} days for class {} ended; object and its wrapped data key deleted",
                self.retention_days, self.class
            ),
        }
    }
}

/// Retention periods per class; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    days: BTreeMap<ObjectClass, u32>,
    grace_days: u32,
}

impl RetentionPolicy {
    pub fn new(config: &RetentionConfig) -> Result<Self> {
        let mut days = BTreeMap::new();
        days.insert(ObjectClass::MEDIA, config.media_days);
        days.insert(ObjectClass::PAPERS, config.papers_days);
        days.insert(ObjectClass::MANIFEST, config.manifest_days.unwrap_or(config.media_days));
        for (name, d) in &config.other_days {
            days.insert(ObjectClass::new(name)?, *d);
        }
        if let Some((c, _)) = days.iter().find(|(_, d)| **d == 0) {
            return Err(StorageError::Config(format!("retention of class {c} must be at least one day")));
        }
        Ok(RetentionPolicy { days, grace_days: config.lifecycle_grace_days })
    }

    /// The period of `class` in days; `None`: kept forever.
    pub fn retention_days(&self, class: &ObjectClass) -> Option<u32> {
        self.days.get(class).copied()
    }

    /// When `record` expires.
    pub fn expires_at(&self, record: &ObjectRecord) -> Option<SystemTime> {
        let days = self.retention_days(&record.class)?;
        record.created_at.checked_add(Duration::from_secs(u64::from(days) * DAY))
    }

    /// Decide a sweep at `now` with the cases in `holds` under legal hold.
    pub fn plan(&self, records: &[ObjectRecord], holds: &BTreeSet<String>, now: SystemTime) -> RetentionPlan {
        let mut plan = RetentionPlan::default();
        for r in records {
            let held = holds.contains(&r.case_id);
            let Some(expires_at) = self.expires_at(r) else {
                plan.unknown_class.push(r.key.clone());
                continue;
            };
            let expired = now >= expires_at;
            if held {
                if !r.in_hold_area {
                    plan.move_to_hold.push(Move {
                        key: r.key.clone(),
                        case_id: r.case_id.clone(),
                        from: r.key.clone(),
                        to: hold_key(&r.key),
                    });
                }
                if expired {
                    plan.blocked.push(Blocked {
                        key: r.key.clone(),
                        case_id: r.case_id.clone(),
                        expired_at: expires_at,
                    });
                }
            } else if expired {
                plan.destroy.push(PlannedDestruction {
                    key: r.key.clone(),
                    class: r.class.clone(),
                    case_id: r.case_id.clone(),
                    created_at: r.created_at,
                    expires_at,
                    retention_days: self.retention_days(&r.class).unwrap_or_default(),
                });
            } else {
                if r.in_hold_area {
                    plan.release.push(Move {
                        key: r.key.clone(),
                        case_id: r.case_id.clone(),
                        from: hold_key(&r.key),
                        to: r.key.clone(),
                    });
                }
                plan.next_expiry = Some(plan.next_expiry.map_or(expires_at, |t: SystemTime| t.min(expires_at)));
            }
        }
        plan
    }

    /// The bucket lifecycle rules that back the sweep up: abort incomplete multipart uploads
    /// after a day, and expire `CLASS/…` objects after the period plus the grace days.
    pub fn lifecycle_rules(&self) -> Vec<LifecycleRule> {
        let mut rules = vec![LifecycleRule::abort_incomplete(1)];
        for (class, days) in &self.days {
            rules.push(LifecycleRule::expire(
                format!("expire-{class}"),
                class_prefix(class),
                days.saturating_add(self.grace_days),
            ));
        }
        rules
    }
}

/// The append-only destruction log: one JSON [`DestructionRecord`] per line, each fsynced
/// before [`DestructionLog::append`] returns.
#[derive(Debug)]
pub struct DestructionLog {
    path: PathBuf,
    file: std::sync::Mutex<std::fs::File>,
}

impl DestructionLog {
    /// Open (creating) the log for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(format!("opening destruction log {}", path.display()), e))?;
        Ok(DestructionLog { path, file: std::sync::Mutex::new(file) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record durably.
    pub fn append(&self, record: &DestructionRecord) -> Result<()> {
        use std::io::Write;
        let mut line = serde_json::to_string(record).map_err(|e| StorageError::io("encoding", e.into()))?;
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = || format!("appending to destruction log {}", self.path.display());
        f.write_all(line.as_bytes()).map_err(|e| StorageError::io(ctx(), e))?;
        f.sync_data().map_err(|e| StorageError::io(ctx(), e))
    }

    /// Every record in the log at `path`.
    pub fn read(path: &Path) -> Result<Vec<DestructionRecord>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io(format!("reading {}", path.display()), e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    StorageError::io(format!("destruction log {}", path.display()), std::io::Error::other(e))
                })
            })
            .collect()
    }
}

/// What [`execute`] did.
#[derive(Debug, Default)]
pub struct RetentionReport {
    pub destroyed: Vec<DestructionRecord>,
    /// Keys now in the hold area (set `in_hold_area` in the catalog).
    pub moved_to_hold: Vec<String>,
    /// Keys moved back out of it.
    pub released: Vec<String>,
    /// Steps that failed (they are retried by the next sweep).
    pub failed: Vec<(String, StorageError)>,
}

/// Carry out `plan`: holds first (so nothing held stays under a lifecycle prefix longer than
/// needed), then releases, then destructions. `holds` is checked again before each
/// destruction, so a hold placed after the plan was made still wins. A destruction deletes
/// the object at its key and in the hold area, then appends its record to `log`.
pub async fn execute(
    store: &dyn ObjectStore,
    plan: &RetentionPlan,
    holds: &BTreeSet<String>,
    log: &DestructionLog,
    now: SystemTime,
) -> RetentionReport {
    let mut report = RetentionReport::default();
    for m in &plan.move_to_hold {
        match move_object(store, &m.from, &m.to).await {
            Ok(()) => report.moved_to_hold.push(m.key.clone()),
            Err(e) => report.failed.push((m.key.clone(), e)),
        }
    }
    for m in &plan.release {
        if holds.contains(&m.case_id) {
            continue;
        }
        match move_object(store, &m.from, &m.to).await {
            Ok(()) => report.released.push(m.key.clone()),
            Err(e) => report.failed.push((m.key.clone(), e)),
        }
    }
    for d in &plan.destroy {
        if holds.contains(&d.case_id) {
            let e = StorageError::UnderLegalHold { key: d.key.clone(), case_id: d.case_id.clone() };
            report.failed.push((d.key.clone(), e));
            continue;
        }
        let deleted = async {
            store.delete(&d.key).await?;
            store.delete(&hold_key(&d.key)).await
        }
        .await;
        if let Err(e) = deleted {
            report.failed.push((d.key.clone(), e));
            continue;
        }
        let record = d.record(now);
        match log.append(&record) {
            Ok(()) => {
                tracing::info!(key = %d.key, case = %d.case_id, class = %d.class, "retention: object destroyed");
                report.destroyed.push(record);
            }
            Err(e) => {
                tracing::error!(key = %d.key, error = %e, record = ?record,
                    "retention: object destroyed but its record could not be written");
                report.failed.push((d.key.clone(), e));
            }
        }
    }
    report
}

/// Copy `from` to `to`, check the copy, delete `from`. If `from` is already gone but `to`
/// exists (an earlier move was interrupted after its delete), that is success too.
async fn move_object(store: &dyn ObjectStore, from: &str, to: &str) -> Result<()> {
    let src = match store.head(from).await {
        Ok(m) => m,
        Err(StorageError::NotFound(_)) => {
            store.head(to).await?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    store.copy(from, to).await?;
    let dst = store.head(to).await?;
    if dst.size != src.size || (src.sha256.is_some() && dst.sha256.is_some() && src.sha256 != dst.sha256) {
        return Err(StorageError::VerifyFailed {
            key: to.to_owned(),
            detail: format!("copy of `{from}` has {} bytes, the original {}", dst.size, src.size),
        });
    }
    store.delete(from).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalStore;
    use std::time::UNIX_EPOCH;

    fn day(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_689_600 + n * DAY) // 2025-01-01 + n days
    }

    fn rec(key: &str, class: ObjectClass, case: &str, created: SystemTime) -> ObjectRecord {
        ObjectRecord { key: key.into(), class, case_id: case.into(), created_at: created, in_hold_area: false }
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy::new(&RetentionConfig::default()).unwrap()
    }

    fn keys(v: &[PlannedDestruction]) -> Vec<&str> {
        v.iter().map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn default_periods() {
        let p = policy();
        assert_eq!(p.retention_days(&ObjectClass::MEDIA), Some(365));
        assert_eq!(p.retention_days(&ObjectClass::PAPERS), Some(1095));
        assert_eq!(p.retention_days(&ObjectClass::MANIFEST), Some(365), "manifest as its media");
        let custom: RetentionConfig = toml::from_str("media_days = 180\nother_days = { photos = 30 }").unwrap();
        let p = RetentionPolicy::new(&custom).unwrap();
        assert_eq!(p.retention_days(&ObjectClass::MANIFEST), Some(180));
        assert_eq!(p.retention_days(&ObjectClass::new("photos").unwrap()), Some(30));
        assert!(RetentionPolicy::new(&RetentionConfig { papers_days: 0, ..Default::default() }).is_err());
    }

    #[test]
    fn expiry_boundaries() {
        let p = policy();
        let none = BTreeSet::new();
        let records = vec![
            rec("media/a", ObjectClass::MEDIA, "c1", day(0)),
            rec("manifest/a", ObjectClass::MANIFEST, "c1", day(0)),
            rec("papers/a", ObjectClass::PAPERS, "c1", day(0)),
        ];
        let one_second = Duration::from_secs(1);
        let plan = p.plan(&records, &none, day(365) - one_second);
        assert!(plan.destroy.is_empty(), "a second before 365 days: kept");
        assert_eq!(plan.next_expiry, Some(day(365)));
        let plan = p.plan(&records, &none, day(365));
        assert_eq!(keys(&plan.destroy), vec!["media/a", "manifest/a"], "at exactly 365 days: destroyed");
        assert_eq!(plan.destroy[0].expires_at, day(365));
        assert_eq!(plan.next_expiry, Some(day(1095)));
        assert!(p.plan(&records, &none, day(1095) - one_second).destroy.iter().all(|d| d.key != "papers/a"));
        assert_eq!(keys(&p.plan(&records, &none, day(1095)).destroy), vec!["media/a", "manifest/a", "papers/a"]);
    }

    #[test]
    fn unknown_classes_are_kept() {
        let r = rec("misc/a", ObjectClass::new("misc").unwrap(), "c1", day(0));
        let plan = policy().plan(&[r], &BTreeSet::new(), day(10_000));
        assert!(plan.destroy.is_empty());
        assert_eq!(plan.unknown_class, vec!["misc/a".to_string()]);
    }

    #[test]
    fn a_hold_blocks_destruction_until_lifted() {
        let p = policy();
        let mut records = vec![
            rec("media/held", ObjectClass::MEDIA, "case-7", day(0)),
            rec("papers/held", ObjectClass::PAPERS, "case-7", day(0)),
            rec("media/free", ObjectClass::MEDIA, "case-8", day(0)),
        ];
        let holds: BTreeSet<String> = ["case-7".to_string()].into();

        // Placed before expiry: the held objects move to the hold area, nothing else.
        let plan = p.plan(&records, &holds, day(100));
        let moved: Vec<_> = plan.move_to_hold.iter().map(|m| (m.from.as_str(), m.to.as_str())).collect();
        assert_eq!(moved, vec![("media/held", "legal-hold/media/held"), ("papers/held", "legal-hold/papers/held")]);
        assert!(plan.destroy.is_empty() && plan.blocked.is_empty());
        for r in &mut records[..2] {
            r.in_hold_area = true;
        }

        // Expired while held: blocked, not destroyed; the unheld case goes.
        let plan = p.plan(&records, &holds, day(400));
        assert_eq!(keys(&plan.destroy), vec!["media/free"]);
        assert_eq!(
            plan.blocked,
            vec![Blocked { key: "media/held".into(), case_id: "case-7".into(), expired_at: day(365) }]
        );
        assert!(plan.move_to_hold.is_empty(), "already in the hold area");
        records.remove(2);

        // Years later, still held: still nothing.
        let plan = p.plan(&records, &holds, day(5000));
        assert!(plan.destroy.is_empty());
        assert_eq!(plan.blocked.len(), 2);

        // Lifted before the papers expire: the media goes, the papers move back.
        let plan = p.plan(&records, &BTreeSet::new(), day(500));
        assert_eq!(keys(&plan.destroy), vec!["media/held"]);
        let back: Vec<_> = plan.release.iter().map(|m| (m.from.as_str(), m.to.as_str())).collect();
        assert_eq!(back, vec![("legal-hold/papers/held", "papers/held")]);
        assert_eq!(plan.next_expiry, Some(day(1095)));
    }

    #[test]
    fn destruction_record() {
        let d = PlannedDestruction {
            key: "media/c1/p1.webm.cne".into(),
            class: ObjectClass::MEDIA,
            case_id: "c1".into(),
            created_at: day(0),
            expires_at: day(365),
            retention_days: 365,
        };
        let r = d.record(day(365) + Duration::from_secs(3600));
        assert_eq!(r.created_at, "2025-01-01T00:00:00Z");
        assert_eq!(r.expired_at, "2026-01-01T00:00:00Z");
        assert_eq!(r.destroyed_at, "2026-01-01T01:00:00Z");
        assert_eq!((r.class.as_str(), r.case_id.as_str()), ("media", "c1"));
        assert!(r.reason.contains("365 days"), "{}", r.reason);
    }

    #[test]
    fn lifecycle_rules_cover_class_prefixes_only() {
        let rules = policy().lifecycle_rules();
        assert_eq!(rules[0], LifecycleRule::abort_incomplete(1));
        let exp: Vec<_> = rules[1..].iter().map(|r| (r.prefix.as_str(), r.expire_after_days)).collect();
        assert_eq!(exp, vec![("manifest/", Some(395)), ("media/", Some(395)), ("papers/", Some(1125))]);
        assert!(rules.iter().all(|r| !HOLD_PREFIX.starts_with(&r.prefix) || r.prefix.is_empty()));
        assert!(rules.iter().filter(|r| r.prefix.is_empty()).all(|r| r.expire_after_days.is_none()));
    }

    #[tokio::test]
    async fn execute_against_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("store")).await.unwrap();
        let log = DestructionLog::open(dir.path().join("log/destroyed.jsonl")).unwrap();
        let p = policy();
        let mut records = vec![
            rec("media/c1/a", ObjectClass::MEDIA, "c1", day(0)),
            rec("media/c2/b", ObjectClass::MEDIA, "c2", day(0)),
            rec("papers/c2/p", ObjectClass::PAPERS, "c2", day(0)),
        ];
        for r in &records {
            store.put_bytes(&r.key, r.key.as_bytes()).await.unwrap();
        }
        let holds: BTreeSet<String> = ["c2".to_string()].into();

        let plan = p.plan(&records, &holds, day(10));
        let report = execute(&store, &plan, &holds, &log, day(10)).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.moved_to_hold, vec!["media/c2/b", "papers/c2/p"]);
        assert!(store.head("media/c2/b").await.is_err());
        assert_eq!(store.get_bytes("legal-hold/media/c2/b", None).await.unwrap(), b"media/c2/b");
        for r in &mut records[1..] {
            r.in_hold_area = true;
        }

        // A year on: c1's media is destroyed, c2's is kept.
        let plan = p.plan(&records, &holds, day(366));
        let report = execute(&store, &plan, &holds, &log, day(366)).await;
        assert_eq!(report.destroyed.len(), 1);
        assert!(matches!(store.head("media/c1/a").await, Err(StorageError::NotFound(_))));
        assert!(store.head("legal-hold/media/c2/b").await.is_ok());
        records.remove(0); // the catalog forgets destroyed objects

        // A hold placed between planning and execution still wins.
        let plan = p.plan(&records, &BTreeSet::new(), day(367));
        let report = execute(&store, &plan, &holds, &log, day(367)).await;
        assert!(report.destroyed.is_empty());
        assert!(matches!(report.failed[0].1, StorageError::UnderLegalHold { .. }));
        assert!(store.head("legal-hold/media/c2/b").await.is_ok());

        // Lifted: the media is destroyed from the hold area, the papers move back.
        let none = BTreeSet::new();
        let plan = p.plan(&records, &none, day(400));
        let report = execute(&store, &plan, &none, &log, day(400)).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.released, vec!["papers/c2/p"]);
        assert!(store.head("legal-hold/media/c2/b").await.is_err());
        assert_eq!(store.get_bytes("papers/c2/p", None).await.unwrap(), b"papers/c2/p");

        let logged = DestructionLog::read(log.path()).unwrap();
        let logged: Vec<_> =
            logged.iter().map(|r| (r.key.as_str(), r.case_id.as_str(), r.destroyed_at.as_str())).collect();
        assert_eq!(
            logged,
            vec![("media/c1/a", "c1", "2026-01-02T00:00:00Z"), ("media/c2/b", "c2", "2026-02-05T00:00:00Z")]
        );
    }
}
