//! The durable spool: encrypted objects wait on local disk until the object store has them.
//!
//! [`Spool`] is an [`ObjectStore`] in front of a backing store (normally [`crate::S3Store`]).
//! A `put` writes the object to a spool file, fsyncs it, renames it into the queue and fsyncs
//! the directory, and only then returns: an acknowledged object survives a crash of the
//! process or the machine. A background uploader sends queued objects to the backing store in
//! order, retrying with exponential backoff while the store is unreachable; after each upload
//! it checks the stored object (size, and SHA-256 where the store reports it) and only then
//! deletes the spool file. Reads find an object in the spool while it waits and in the store
//! afterwards.
//!
//! The spool is bounded by a quota of bytes and of objects. When it is full, `put` fails with
//! [`StorageError::SpoolFull`] (and nothing is stored): it never drops an acknowledged object
//! to make room. Passing 80 % of the quota logs a warning; [`Spool::metrics`] tells how full
//! it is and how uploads are going.
//!
//! Only encrypted objects are accepted (the format's magic is checked while streaming, unless
//! [`SpoolConfig::require_encrypted`] is off): plaintext never reaches the spool directory.
//!
//! On start ([`Spool::open`]), every spool file left by a previous run is queued again (an
//! upload is idempotent: the same bytes under the same key), half-written temp files (never
//! acknowledged) are removed, and once the store answers, incomplete multipart uploads left
//! in the bucket by an interrupted upload are aborted
//! ([`ObjectStore::cleanup_incomplete_uploads`]; the bucket's lifecycle rule is the backstop).
//!
//! The decisions (what to upload next, when to retry, quota accounting, when to warn) are the
//! pure state machine [`SpoolCore`], driven with explicit times and unit-tested; [`Spool`] is
//! the file and tokio glue around it.
//!
//! ## Spool directory
//!
//! - `queue/<seq>.spool`: one acknowledged object each, `seq` a 20-digit sequence number
//!   (upload order). Layout: `CNSPOOL1` ‖ key_len u16 ‖ key ‖ size u64 ‖ sha256 (32) ‖
//!   spooled_at_ms u64 ‖ the object's bytes (integers big-endian).
//! - `tmp/`: puts being written (removed at start: they were never acknowledged).
//! - `damaged/`: queue files that could not be read at start (moved aside, never deleted).
//! - `lock`: held (flock) while a [`Spool`] has the directory open.

use std::collections::{BTreeMap, HashMap};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Result, StorageError};
use crate::format::MAGIC;
use crate::local::sync_dir;
use crate::store::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt, validate_key};

/// Fraction of the quota at which the spool warns.
pub const WARN_RATIO: f64 = 0.8;
/// Fraction below which the warning re-arms.
const REARM_RATIO: f64 = 0.7;

const FILE_MAGIC: &[u8; 8] = b"CNSPOOL1";
const QUEUE_DIR: &str = "queue";
const TMP_DIR: &str = "tmp";
const DAMAGED_DIR: &str = "damaged";
const COPY_BUF: usize = 256 * 1024;

/// A spool file's sequence number: upload order, and its name.
pub type Seq = u64;

// ================================================================================================
// The pure core
// ================================================================================================

/// Limits and timing of a spool.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolPolicy {
    /// Most bytes of objects the spool holds (waiting, uploading and being written).
    pub quota_bytes: u64,
    /// Most objects the spool holds.
    pub max_objects: u64,
    /// Delay after the first failed upload; doubled after each further failure...
    pub backoff_initial: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
}

/// One object the uploader should send now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadJob {
    pub seq: Seq,
    pub key: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// What the uploader should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Upload(UploadJob),
    /// Backing off after a failure: nothing before this time.
    RetryAt(Instant),
    /// Nothing to upload.
    Idle,
    /// An upload is already in flight.
    Busy,
}

/// What to do after an upload finished (either way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfterUpload {
    /// Spool files to delete (the uploaded one once verified, superseded or deleted ones).
    pub remove_files: Vec<Seq>,
    /// After a failure: the next attempt is not before this.
    pub retry_at: Option<Instant>,
}

/// The spool passed [`WARN_RATIO`] of its quota.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FillWarning {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub objects: u64,
    pub max_objects: u64,
    pub ratio: f64,
}

/// What committing a put means for the files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Committed {
    /// Spool files made obsolete by this put (older versions of the key), to delete now.
    pub remove_files: Vec<Seq>,
    pub warning: Option<FillWarning>,
}

/// Why a put was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub objects: u64,
    pub max_objects: u64,
}

impl Full {
    fn into_error(self, key: &str) -> StorageError {
        StorageError::SpoolFull {
            key: key.to_owned(),
            used_bytes: self.used_bytes,
            quota_bytes: self.quota_bytes,
            objects: self.objects,
            max_objects: self.max_objects,
        }
    }
}

/// A snapshot of the spool's state and counters (counters count since [`Spool::open`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolMetrics {
    /// Objects in the spool: waiting, being uploaded, or superseded but not yet removed.
    pub spooled_objects: u64,
    /// Their bytes.
    pub spooled_bytes: u64,
    /// Bytes of puts being written right now (they count against the quota).
    pub reserved_bytes: u64,
    pub quota_bytes: u64,
    pub max_objects: u64,
    /// max(bytes, objects) in use over the quota, 0.0..=1.0 (more if the quota was lowered).
    pub fill_ratio: f64,
    /// Objects uploaded and verified.
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
    /// Failed upload attempts (each retry counts).
    pub upload_failures: u64,
    /// Failures since the last successful upload (0 while the store is healthy).
    pub consecutive_failures: u32,
    /// Puts refused because the spool was full.
    pub rejected_puts: u64,
    /// Queue files found unreadable at start and moved to `damaged/`.
    pub damaged_files: u64,
    /// When the oldest waiting object was spooled.
    pub oldest_spooled_at: Option<SystemTime>,
    /// Time until the next attempt while backing off.
    pub retry_in: Option<Duration>,
    /// The last upload error, cleared by a success.
    pub last_error: Option<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    size: u64,
    sha256: [u8; 32],
    spooled_at: SystemTime,
    attempts: u32,
}

/// The spool's decisions as a pure state machine: no I/O, time passed in.
///
/// Files are identified by [`Seq`]; for each key the newest committed file is the *live* one
/// (reads and uploads use it), older ones are superseded and removed as soon as no upload
/// reads them. One upload at a time, oldest first among the files with the fewest failed
/// attempts (so one object the store keeps refusing does not hold up the others). After a
/// failure every upload waits `backoff_initial × 2^(failures−1)`, at most `backoff_max`; a
/// success resets it.
#[derive(Debug)]
pub struct SpoolCore {
    policy: SpoolPolicy,
    files: BTreeMap<Seq, Entry>,
    live: HashMap<String, Seq>,
    next_seq: Seq,
    used_bytes: u64,
    reserved_bytes: u64,
    reserved_objects: u64,
    /// The file being uploaded.
    in_flight: Option<Seq>,
    retry_at: Option<Instant>,
    consecutive_failures: u32,
    warned: bool,
    uploaded_objects: u64,
    uploaded_bytes: u64,
    upload_failures: u64,
    rejected_puts: u64,
    damaged_files: u64,
    last_error: Option<String>,
}

impl SpoolCore {
    pub fn new(policy: SpoolPolicy) -> Self {
        SpoolCore {
            policy,
            files: BTreeMap::new(),
            live: HashMap::new(),
            next_seq: 1,
            used_bytes: 0,
            reserved_bytes: 0,
            reserved_objects: 0,
            in_flight: None,
            retry_at: None,
            consecutive_failures: 0,
            warned: false,
            uploaded_objects: 0,
            uploaded_bytes: 0,
            upload_failures: 0,
            rejected_puts: 0,
            damaged_files: 0,
            last_error: None,
        }
    }

    /// Add a file found at start-up. Returns files it supersedes (or itself, if a newer file
    /// of the same key is already known), to delete.
    pub fn restore(&mut self, seq: Seq, key: &str, size: u64, sha256: [u8; 32], spooled_at: SystemTime) -> Vec<Seq> {
        self.next_seq = self.next_seq.max(seq + 1);
        let entry = Entry { key: key.to_owned(), size, sha256, spooled_at, attempts: 0 };
        self.insert(seq, entry)
    }

    /// Count a queue file that could not be read at start-up.
    pub fn note_damaged(&mut self) {
        self.damaged_files += 1;
    }

    /// Start a put: take an object slot and a sequence number.
    pub fn begin_put(&mut self) -> Result<Seq, Full> {
        let objects = self.files.len() as u64 + self.reserved_objects;
        if objects + 1 > self.policy.max_objects {
            self.rejected_puts += 1;
            return Err(self.full());
        }
        self.reserved_objects += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Count `n` more bytes of a put being written against the quota.
    pub fn reserve_bytes(&mut self, n: u64) -> Result<(), Full> {
        if self.used_bytes + self.reserved_bytes + n > self.policy.quota_bytes {
            return Err(self.full());
        }
        self.reserved_bytes += n;
        Ok(())
    }

    /// A put failed after [`SpoolCore::begin_put`]: give back its reservation. `rejected`
    /// counts it as refused for lack of room.
    pub fn abort_put(&mut self, reserved_bytes: u64, rejected: bool) {
        self.reserved_bytes -= reserved_bytes.min(self.reserved_bytes);
        self.reserved_objects = self.reserved_objects.saturating_sub(1);
        if rejected {
            self.rejected_puts += 1;
        }
    }

    /// A put's file is durable in the queue: it becomes the key's live version.
    pub fn commit_put(
        &mut self,
        seq: Seq,
        key: &str,
        size: u64,
        sha256: [u8; 32],
        reserved_bytes: u64,
        spooled_at: SystemTime,
    ) -> Committed {
        self.reserved_bytes -= reserved_bytes.min(self.reserved_bytes);
        self.reserved_objects = self.reserved_objects.saturating_sub(1);
        let remove_files = self.insert(seq, Entry { key: key.to_owned(), size, sha256, spooled_at, attempts: 0 });
        let warning = self.check_fill();
        Committed { remove_files, warning }
    }

    fn insert(&mut self, seq: Seq, entry: Entry) -> Vec<Seq> {
        self.used_bytes += entry.size;
        let key = entry.key.clone();
        self.files.insert(seq, entry);
        match self.live.get(&key).copied() {
            None => {
                self.live.insert(key, seq);
                Vec::new()
            }
            Some(old) if old < seq => {
                self.live.insert(key, seq);
                self.drop_unless_in_flight(old)
            }
            // A newer put of the same key committed first: this one is already obsolete.
            Some(_) => self.drop_unless_in_flight(seq),
        }
    }

    /// Forget a superseded or deleted file, unless an upload is reading it (then it goes
    /// when the upload finishes).
    fn drop_unless_in_flight(&mut self, seq: Seq) -> Vec<Seq> {
        if self.in_flight == Some(seq) {
            return Vec::new();
        }
        if let Some(e) = self.files.remove(&seq) {
            self.used_bytes -= e.size;
        }
        vec![seq]
    }

    /// What the uploader should do at `now`.
    pub fn next(&mut self, now: Instant) -> Next {
        if self.in_flight.is_some() {
            return Next::Busy;
        }
        if let Some(t) = self.retry_at
            && t > now
        {
            return Next::RetryAt(t);
        }
        let pick = self.live.values().filter_map(|&seq| self.files.get(&seq).map(|e| (e.attempts, seq))).min();
        let Some((_, seq)) = pick else { return Next::Idle };
        let e = &self.files[&seq];
        let job = UploadJob { seq, key: e.key.clone(), size: e.size, sha256: e.sha256 };
        self.in_flight = Some(seq);
        Next::Upload(job)
    }

    /// The upload of `seq` finished: `Ok` once the store has it and it was verified.
    pub fn upload_finished(&mut self, seq: Seq, now: Instant, outcome: Result<(), String>) -> AfterUpload {
        if self.in_flight != Some(seq) {
            return AfterUpload::default();
        }
        self.in_flight = None;
        let Some(entry) = self.files.get(&seq).cloned() else { return AfterUpload::default() };
        let is_live = self.live.get(&entry.key) == Some(&seq);
        let mut after = AfterUpload::default();
        match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.retry_at = None;
                self.last_error = None;
                self.uploaded_objects += 1;
                self.uploaded_bytes += entry.size;
                if is_live {
                    self.live.remove(&entry.key);
                }
                self.files.remove(&seq);
                self.used_bytes -= entry.size;
                after.remove_files.push(seq);
            }
            Err(error) => {
                self.upload_failures += 1;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_error = Some(error);
                let t = now + self.backoff(self.consecutive_failures);
                self.retry_at = Some(t);
                after.retry_at = Some(t);
                if is_live {
                    if let Some(e) = self.files.get_mut(&seq) {
                        e.attempts = e.attempts.saturating_add(1);
                    }
                } else {
                    // Superseded or deleted while in flight: nothing left to upload from it.
                    self.files.remove(&seq);
                    self.used_bytes -= entry.size;
                    after.remove_files.push(seq);
                }
            }
        }
        if self.fill_ratio() < REARM_RATIO {
            self.warned = false;
        }
        after
    }

    /// Delay before the next attempt after `failures` consecutive failures.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.policy.backoff_initial.saturating_mul(factor).min(self.policy.backoff_max)
    }

    /// Delete `key` from the spool. Returns the files to delete now. (An upload of the key
    /// already in flight may still land: the caller waits for it, see [`Self::in_flight_key`],
    /// before deleting the key from the store.)
    pub fn remove_key(&mut self, key: &str) -> Vec<Seq> {
        match self.live.remove(key) {
            Some(seq) => self.drop_unless_in_flight(seq),
            None => Vec::new(),
        }
    }

    /// The key of the file being uploaded, if any.
    pub fn in_flight_key(&self) -> Option<&str> {
        self.in_flight.and_then(|seq| self.files.get(&seq)).map(|e| e.key.as_str())
    }

    /// Forget any backoff: the next upload may start at once.
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }

    /// The live spooled version of `key`: (seq, size, sha256, spooled_at).
    pub fn lookup(&self, key: &str) -> Option<(Seq, u64, [u8; 32], SystemTime)> {
        let seq = *self.live.get(key)?;
        let e = self.files.get(&seq)?;
        Some((seq, e.size, e.sha256, e.spooled_at))
    }

    /// Live spooled objects whose key starts with `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<ObjectMeta> {
        let mut out: Vec<ObjectMeta> = self
            .live
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, seq)| {
                let e = self.files.get(seq)?;
                Some(ObjectMeta { key: k.clone(), size: e.size, modified: Some(e.spooled_at), sha256: Some(e.sha256) })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Nothing spooled, nothing being written.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.reserved_objects == 0
    }

    pub fn metrics(&self, now: Instant) -> SpoolMetrics {
        SpoolMetrics {
            spooled_objects: self.files.len() as u64,
            spooled_bytes: self.used_bytes,
            reserved_bytes: self.reserved_bytes,
            quota_bytes: self.policy.quota_bytes,
            max_objects: self.policy.max_objects,
            fill_ratio: self.fill_ratio(),
            uploaded_objects: self.uploaded_objects,
            uploaded_bytes: self.uploaded_bytes,
            upload_failures: self.upload_failures,
            consecutive_failures: self.consecutive_failures,
            rejected_puts: self.rejected_puts,
            damaged_files: self.damaged_files,
            oldest_spooled_at: self.live.values().filter_map(|s| self.files.get(s)).map(|e| e.spooled_at).min(),
            retry_in: self.retry_at.and_then(|t| t.checked_duration_since(now)).filter(|d| !d.is_zero()),
            last_error: self.last_error.clone(),
        }
    }

    fn fill_ratio(&self) -> f64 {
        let bytes = (self.used_bytes + self.reserved_bytes) as f64 / self.policy.quota_bytes.max(1) as f64;
        let objects = (self.files.len() as u64 + self.reserved_objects) as f64 / self.policy.max_objects.max(1) as f64;
        bytes.max(objects)
    }

    fn check_fill(&mut self) -> Option<FillWarning> {
        let ratio = self.fill_ratio();
        if ratio < REARM_RATIO {
            self.warned = false;
        }
        if ratio >= WARN_RATIO && !self.warned {
            self.warned = true;
            return Some(FillWarning {
                used_bytes: self.used_bytes + self.reserved_bytes,
                quota_bytes: self.policy.quota_bytes,
                objects: self.files.len() as u64 + self.reserved_objects,
                max_objects: self.policy.max_objects,
                ratio,
            });
        }
        None
    }

    fn full(&self) -> Full {
        Full {
            used_bytes: self.used_bytes + self.reserved_bytes,
            quota_bytes: self.policy.quota_bytes,
            objects: self.files.len() as u64 + self.reserved_objects,
            max_objects: self.policy.max_objects,
        }
    }
}

// ================================================================================================
// The tokio glue
// ================================================================================================

/// Configuration of a spool (the `[storage.spool]` table of the server config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// The spool directory (on a disk that survives a reboot; not tmpfs).
    pub dir: PathBuf,
    /// Quota in bytes (default 10 GiB: about a day of one busy window's calls).
    #[serde(default = "default_quota_bytes")]
    pub quota_bytes: u64,
    /// Quota in objects.
    #[serde(default = "default_max_objects")]
    pub max_objects: u64,
    /// First retry delay after a failed upload, milliseconds; doubles per failure.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Accept only encrypted cunneng objects (checks the format's magic while streaming).
    #[serde(default = "default_true")]
    pub require_encrypted: bool,
    /// At start, once the store answers, abort its incomplete multipart uploads older than
    /// this many seconds (0: all of them; right when this server is the bucket's only
    /// writer). Absent: leave them to the bucket's lifecycle rule.
    #[serde(default = "default_abort_after")]
    pub abort_incomplete_uploads_after_secs: Option<u64>,
}

fn default_quota_bytes() -> u64 {
    10 * 1024 * 1024 * 1024
}
fn default_max_objects() -> u64 {
    100_000
}
fn default_backoff_initial_ms() -> u64 {
    1_000
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_true() -> bool {
    true
}
fn default_abort_after() -> Option<u64> {
    Some(0)
}

impl SpoolConfig {
    /// Defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            quota_bytes: default_quota_bytes(),
            max_objects: default_max_objects(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            require_encrypted: true,
            abort_incomplete_uploads_after_secs: default_abort_after(),
        }
    }

    fn policy(&self) -> SpoolPolicy {
        SpoolPolicy {
            quota_bytes: self.quota_bytes,
            max_objects: self.max_objects,
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_initial_ms)),
        }
    }
}

struct Inner {
    config: SpoolConfig,
    backing: Arc<dyn ObjectStore>,
    core: Mutex<SpoolCore>,
    /// Wakes the uploader when a put is committed.
    wake: tokio::sync::Notify,
    /// Bumped whenever an upload finishes.
    finished: tokio::sync::watch::Sender<u64>,
}

/// Aborts the uploader when the last [`Spool`] handle goes, and holds the directory's lock
/// until then.
struct TaskGuard {
    task: tokio::task::AbortHandle,
    _lock: std::fs::File,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Create `dir` (and its parents) with mode 0700: only the server's user reads the spool.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Take the spool directory's lock file: two processes must never share a spool.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    private_dir(dir).map_err(|e| StorageError::io(format!("creating spool directory {}", dir.display()), e))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Config(format!(
            "spool directory {} is in use by another spool (another server process?)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io(format!("locking {}", path.display()), e)),
    }
}

/// The durable spool in front of a backing store; see the module docs. Cheap to clone; the
/// uploader stops when the last clone is dropped (or at [`Spool::shutdown`]).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    task: Arc<TaskGuard>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.inner.config.dir).field("backing", &self.inner.backing).finish()
    }
}

impl Spool {
    /// Open (creating if needed) the spool directory, queue again what a previous run left,
    /// and start the uploader. Must run inside a tokio runtime.
    pub async fn open(config: SpoolConfig, backing: Arc<dyn ObjectStore>) -> Result<Spool> {
        if config.quota_bytes == 0 || config.max_objects == 0 {
            return Err(StorageError::Config("spool quota_bytes and max_objects must be positive".into()));
        }
        let lock = lock_dir(&config.dir)?;
        let dir = config.dir.clone();
        let policy = config.policy();
        let core = tokio::task::spawn_blocking(move || recover(&dir, policy))
            .await
            .map_err(|e| StorageError::io("recovering the spool", std::io::Error::other(e)))??;
        {
            let m = core.metrics(Instant::now());
            if m.spooled_objects > 0 {
                tracing::info!(objects = m.spooled_objects, bytes = m.spooled_bytes, dir = %config.dir.display(),
                    "spool: resuming the uploads of a previous run");
            }
        }
        let inner = Arc::new(Inner {
            config,
            backing,
            core: Mutex::new(core),
            wake: tokio::sync::Notify::new(),
            finished: tokio::sync::watch::Sender::new(0),
        });
        let task = tokio::spawn(uploader(inner.clone()));
        Ok(Spool { inner, task: Arc::new(TaskGuard { task: task.abort_handle(), _lock: lock }) })
    }

    /// A snapshot of the spool's state and counters.
    pub fn metrics(&self) -> SpoolMetrics {
        self.core().metrics(Instant::now())
    }

    /// The store objects go to.
    pub fn backing(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.backing
    }

    /// Skip the current backoff and try the next upload now (e.g. the operator knows the
    /// store is back).
    pub fn retry_now(&self) {
        self.core().retry_now();
        self.inner.wake.notify_one();
    }

    /// Wait until every spooled object is uploaded (or `timeout` passes: `false`).
    pub async fn wait_until_drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.core().is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the uploader (an upload in flight is abandoned; it is redone at the next open).
    /// Acknowledged objects stay in the spool directory.
    pub fn shutdown(&self) {
        self.task.task.abort();
    }

    fn core(&self) -> std::sync::MutexGuard<'_, SpoolCore> {
        self.inner.core()
    }

    fn queue_path(&self, seq: Seq) -> PathBuf {
        queue_path(&self.inner.config.dir, seq)
    }

    /// Stream `body` into `tmp/<seq>`, then move it into the queue, durably.
    async fn write_spool_file(
        &self,
        seq: Seq,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected: Option<[u8; 32]>,
        reserved: &mut u64,
        tmp: &Path,
    ) -> Result<(u64, [u8; 32], SystemTime)> {
        let ctx = |what: &str| format!("{what} spool file {}", tmp.display());
        let spooled_at = SystemTime::now();
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .await
            .map_err(|e| StorageError::io(ctx("creating"), e))?;
        let header = encode_header(key, 0, &[0; 32], spooled_at);
        file.write_all(&header).await.map_err(|e| StorageError::io(ctx("writing"), e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::with_capacity(MAGIC.len());
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = body.read(&mut buf).await.map_err(|e| match StorageError::from_io(e) {
                StorageError::Io { source, .. } => StorageError::io(format!("reading body for `{key}`"), source),
                other => other,
            })?;
            if n == 0 {
                break;
            }
            self.core().reserve_bytes(n as u64).map_err(|f| f.into_error(key))?;
            *reserved += n as u64;
            if self.inner.config.require_encrypted && head.len() < MAGIC.len() {
                let take = (MAGIC.len() - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
                if !MAGIC.starts_with(&head) {
                    return Err(StorageError::NotEncrypted { key: key.to_owned() });
                }
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(|e| StorageError::io(ctx("writing"), e))?;
            size += n as u64;
        }
        if self.inner.config.require_encrypted && head.len() < MAGIC.len() {
            return Err(StorageError::NotEncrypted { key: key.to_owned() });
        }
        let sha256: [u8; 32] = hasher.finalize().into();
        crate::store::check_sha256(key, expected, sha256)?;
        // Fill in size and digest, then make it durable and visible.
        let header = encode_header(key, size, &sha256, spooled_at);
        file.seek(SeekFrom::Start(0)).await.map_err(|e| StorageError::io(ctx("seeking in"), e))?;
        file.write_all(&header).await.map_err(|e| StorageError::io(ctx("writing"), e))?;
        file.flush().await.map_err(|e| StorageError::io(ctx("writing"), e))?;
        file.sync_all().await.map_err(|e| StorageError::io(ctx("syncing"), e))?;
        drop(file);
        let dest = self.queue_path(seq);
        let queue = self.inner.config.dir.join(QUEUE_DIR);
        let tmp = tmp.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&tmp, &dest)?;
            sync_dir(&queue)
        })
        .await
        .map_err(|e| StorageError::io("spooling", std::io::Error::other(e)))?
        .map_err(|e| StorageError::io(format!("moving spool file into {QUEUE_DIR}/"), e))?;
        Ok((size, sha256, spooled_at))
    }
}

impl Inner {
    fn core(&self) -> std::sync::MutexGuard<'_, SpoolCore> {
        // The core has no invariant a panic elsewhere could break half-way.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove_files(&self, seqs: &[Seq]) {
        for &seq in seqs {
            let path = queue_path(&self.config.dir, seq);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "spool: could not remove a spool file");
            }
        }
    }

    /// Upload one spooled file and verify what the store then holds.
    async fn upload(&self, job: &UploadJob) -> Result<()> {
        let path = queue_path(&self.config.dir, job.seq);
        let (file, header) = open_spool_file(&path).await?;
        if header.key != job.key || header.size != job.size || header.sha256 != job.sha256 {
            return Err(StorageError::VerifyFailed {
                key: job.key.clone(),
                detail: format!("spool file {} does not match its queue entry", path.display()),
            });
        }
        let mut body = file.take(job.size);
        let receipt = self.backing.put(&job.key, &mut body, Some(job.sha256)).await?;
        if receipt.size != job.size || receipt.sha256 != job.sha256 {
            return Err(StorageError::VerifyFailed {
                key: job.key.clone(),
                detail: format!("the store received {} bytes, {} were spooled", receipt.size, job.size),
            });
        }
        let meta = self.backing.head(&job.key).await?;
        if meta.size != job.size || meta.sha256.is_some_and(|s| s != job.sha256) {
            return Err(StorageError::VerifyFailed {
                key: job.key.clone(),
                detail: format!(
                    "the store reports {} bytes and sha256 {:?}; spooled {} bytes, sha256 {}",
                    meta.size,
                    meta.sha256.map(hex::encode),
                    job.size,
                    hex::encode(job.sha256)
                ),
            });
        }
        Ok(())
    }
}

/// The uploader task.
async fn uploader(inner: Arc<Inner>) {
    let mut cleanup_pending = inner.config.abort_incomplete_uploads_after_secs;
    loop {
        if let Some(secs) = cleanup_pending {
            match inner.backing.cleanup_incomplete_uploads(Duration::from_secs(secs)).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(aborted = n, "spool: aborted incomplete uploads left by an earlier run");
                    }
                    cleanup_pending = None;
                }
                Err(e) => tracing::debug!(error = %e, "spool: cannot clean up incomplete uploads yet"),
            }
        }
        let next = inner.core().next(Instant::now());
        match next {
            Next::Upload(job) => {
                let result = inner.upload(&job).await;
                let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
                let after = inner.core().upload_finished(job.seq, Instant::now(), outcome);
                inner.finished.send_modify(|n| *n += 1);
                match &result {
                    Ok(()) => tracing::debug!(key = %job.key, size = job.size, "spool: uploaded"),
                    Err(e) => {
                        let m = inner.core().metrics(Instant::now());
                        let failures = m.consecutive_failures;
                        // Log the first failure of an outage and then ever more rarely.
                        if failures.is_power_of_two() {
                            tracing::warn!(key = %job.key, error = %e, consecutive_failures = failures,
                                spooled_objects = m.spooled_objects, spooled_bytes = m.spooled_bytes,
                                retry_in = ?m.retry_in, "spool: upload failed; will retry");
                        } else {
                            tracing::debug!(key = %job.key, error = %e, "spool: upload failed");
                        }
                    }
                }
                inner.remove_files(&after.remove_files);
            }
            Next::RetryAt(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(t)) => {}
                    // retry_now() wakes too; a put alone does not shorten the backoff.
                    _ = inner.wake.notified() => {}
                }
            }
            Next::Idle => {
                if cleanup_pending.is_some() {
                    let retry = Duration::from_millis(inner.config.backoff_max_ms);
                    let _ = tokio::time::timeout(retry, inner.wake.notified()).await;
                } else {
                    inner.wake.notified().await;
                }
            }
            Next::Busy => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn queue_path(dir: &Path, seq: Seq) -> PathBuf {
    dir.join(QUEUE_DIR).join(format!("{seq:020}.spool"))
}

#[derive(Debug)]
struct FileHeader {
    key: String,
    size: u64,
    sha256: [u8; 32],
    spooled_at: SystemTime,
    len: u64,
}

fn encode_header(key: &str, size: u64, sha256: &[u8; 32], spooled_at: SystemTime) -> Vec<u8> {
    let ms = spooled_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut h = Vec::with_capacity(FILE_MAGIC.len() + 2 + key.len() + 48);
    h.extend_from_slice(FILE_MAGIC);
    h.extend_from_slice(&(key.len() as u16).to_be_bytes());
    h.extend_from_slice(key.as_bytes());
    h.extend_from_slice(&size.to_be_bytes());
    h.extend_from_slice(sha256);
    h.extend_from_slice(&ms.to_be_bytes());
    h
}

fn decode_header(bytes: &[u8]) -> Option<FileHeader> {
    let rest = bytes.strip_prefix(FILE_MAGIC.as_slice())?;
    let key_len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(rest.get(2..2 + key_len)?).ok()?.to_owned();
    let rest = rest.get(2 + key_len..)?;
    let size = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let sha256: [u8; 32] = rest.get(8..40)?.try_into().ok()?;
    let ms = u64::from_be_bytes(rest.get(40..48)?.try_into().ok()?);
    validate_key(&key).ok()?;
    Some(FileHeader {
        key,
        size,
        sha256,
        spooled_at: UNIX_EPOCH + Duration::from_millis(ms),
        len: (FILE_MAGIC.len() + 2 + key_len + 48) as u64,
    })
}

const MAX_HEADER: usize = 8 + 2 + crate::store::MAX_KEY_LEN + 48;

/// Open a queue file positioned at the object's first byte.
async fn open_spool_file(path: &Path) -> Result<(tokio::fs::File, FileHeader)> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => return Err(StorageError::io(format!("opening spool file {}", path.display()), e)),
    };
    let mut buf = vec![0u8; MAX_HEADER];
    let mut n = 0;
    while n < buf.len() {
        let r = file.read(&mut buf[n..]).await.map_err(|e| StorageError::io("reading spool file", e))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let header = decode_header(&buf[..n]).ok_or_else(|| StorageError::VerifyFailed {
        key: path.display().to_string(),
        detail: "unreadable spool file header".into(),
    })?;
    file.seek(SeekFrom::Start(header.len)).await.map_err(|e| StorageError::io("seeking in spool file", e))?;
    Ok((file, header))
}

/// Read the spool directory at start-up (blocking).
fn recover(dir: &Path, policy: SpoolPolicy) -> Result<SpoolCore> {
    let mk =
        |d: &Path| private_dir(d).map_err(|e| StorageError::io(format!("creating spool directory {}", d.display()), e));
    let (queue, tmp, damaged) = (dir.join(QUEUE_DIR), dir.join(TMP_DIR), dir.join(DAMAGED_DIR));
    mk(&queue)?;
    mk(&tmp)?;
    mk(&damaged)?;
    let io = |what: String| move |e| StorageError::io(what, e);
    // Temp files are puts that were never acknowledged.
    for entry in std::fs::read_dir(&tmp).map_err(io(format!("reading {}", tmp.display())))? {
        let entry = entry.map_err(io(format!("reading {}", tmp.display())))?;
        std::fs::remove_file(entry.path()).map_err(io(format!("removing {}", entry.path().display())))?;
    }
    let mut core = SpoolCore::new(policy);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&queue).map_err(io(format!("reading {}", queue.display())))? {
        let entry = entry.map_err(io(format!("reading {}", queue.display())))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let seq = name.strip_suffix(".spool").and_then(|s| s.parse::<Seq>().ok());
        let header = seq.and_then(|_| {
            use std::io::Read;
            let mut f = std::fs::File::open(&path).ok()?;
            let mut buf = Vec::with_capacity(MAX_HEADER);
            f.by_ref().take(MAX_HEADER as u64).read_to_end(&mut buf).ok()?;
            let h = decode_header(&buf)?;
            let len = f.metadata().ok()?.len();
            (len == h.len + h.size).then_some(h)
        });
        match (seq, header) {
            (Some(seq), Some(h)) => found.push((seq, h)),
            _ => {
                let to = damaged.join(&name);
                tracing::warn!(file = %path.display(), moved_to = %to.display(),
                    "spool: unreadable queue file moved aside; inspect it by hand");
                std::fs::rename(&path, &to).map_err(io(format!("moving {} aside", path.display())))?;
                core.note_damaged();
            }
        }
    }
    found.sort_by_key(|(seq, _)| *seq);
    for (seq, h) in found {
        let obsolete = core.restore(seq, &h.key, h.size, h.sha256, h.spooled_at);
        for s in obsolete {
            let p = queue_path(dir, s);
            std::fs::remove_file(&p).map_err(io(format!("removing superseded {}", p.display())))?;
        }
    }
    sync_dir(&queue).map_err(io(format!("syncing {}", queue.display())))?;
    Ok(core)
}

#[async_trait]
impl ObjectStore for Spool {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<PutReceipt> {
        validate_key(key)?;
        let seq = self.core().begin_put().map_err(|f| {
            tracing::error!(
                key,
                used_bytes = f.used_bytes,
                quota_bytes = f.quota_bytes,
                objects = f.objects,
                "spool full: refusing an object"
            );
            f.into_error(key)
        })?;
        let tmp = self.inner.config.dir.join(TMP_DIR).join(format!("{seq:020}"));
        let mut reserved = 0u64;
        match self.write_spool_file(seq, key, body, expected_sha256, &mut reserved, &tmp).await {
            Ok((size, sha256, spooled_at)) => {
                let committed = self.core().commit_put(seq, key, size, sha256, reserved, spooled_at);
                self.inner.remove_files(&committed.remove_files);
                if let Some(w) = committed.warning {
                    tracing::warn!(
                        used_bytes = w.used_bytes,
                        quota_bytes = w.quota_bytes,
                        objects = w.objects,
                        max_objects = w.max_objects,
                        percent = (w.ratio * 100.0).round(),
                        "spool is filling up: the object store is not taking uploads fast enough (or is down)"
                    );
                }
                self.inner.wake.notify_one();
                Ok(PutReceipt { size, sha256 })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                let full = matches!(e, StorageError::SpoolFull { .. });
                self.core().abort_put(reserved, full);
                if full {
                    tracing::error!(key, error = %e, "spool full: refusing an object");
                }
                Err(e)
            }
        }
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        validate_key(key)?;
        let spooled = self.core().lookup(key);
        if let Some((seq, size, _, _)) = spooled {
            // The file may be uploaded and removed in between: then the store has it.
            if let Ok((mut file, header)) = open_spool_file(&self.queue_path(seq)).await {
                let range = ByteRange::resolve(range, key, size)?;
                if range.start > 0 {
                    file.seek(SeekFrom::Start(header.len + range.start))
                        .await
                        .map_err(|e| StorageError::io("seeking in spool file", e))?;
                }
                let body = Box::pin(file.take(range.end - range.start));
                return Ok(GetObject { size, range, body });
            }
        }
        self.inner.backing.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        if let Some((_, size, sha256, at)) = self.core().lookup(key) {
            return Ok(ObjectMeta { key: key.to_owned(), size, modified: Some(at), sha256: Some(sha256) });
        }
        self.inner.backing.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let files = self.core().remove_key(key);
        self.inner.remove_files(&files);
        // An upload of this key in flight could land after the delete: wait for it first.
        let mut finished = self.inner.finished.subscribe();
        while self.core().in_flight_key() == Some(key) {
            if finished.changed().await.is_err() {
                break;
            }
        }
        self.inner.backing.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // The spool first, then the store: an object that finishes its upload in between is
        // in one of the two (listing the store first could miss it in both).
        let spooled = self.core().list(prefix);
        let remote = self.inner.backing.list(prefix).await?;
        let mut all: BTreeMap<String, ObjectMeta> = remote.into_iter().map(|m| (m.key.clone(), m)).collect();
        // A spooled copy is newer than what the store holds under the same key.
        for m in spooled {
            all.insert(m.key.clone(), m);
        }
        Ok(all.into_values().collect())
    }

    async fn cleanup_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        self.inner.backing.cleanup_incomplete_uploads(older_than).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn policy() -> SpoolPolicy {
        SpoolPolicy {
            quota_bytes: 10 * MIB,
            max_objects: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// A put of `size` bytes, all reserved in one go.
    fn put(core: &mut SpoolCore, key: &str, size: u64, tag: u8) -> (Seq, Committed) {
        let seq = core.begin_put().expect("slot");
        core.reserve_bytes(size).expect("room");
        (seq, core.commit_put(seq, key, size, [tag; 32], size, at(seq)))
    }

    fn job(n: Next) -> UploadJob {
        match n {
            Next::Upload(j) => j,
            other => panic!("expected an upload, got {other:?}"),
        }
    }

    #[test]
    fn uploads_in_order_and_empties() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        put(&mut c, "a", 10, 1);
        put(&mut c, "b", 20, 2);
        let j = job(c.next(t0));
        assert_eq!((j.key.as_str(), j.size, j.sha256), ("a", 10, [1; 32]));
        assert_eq!(c.next(t0), Next::Busy, "one upload at a time");
        let after = c.upload_finished(j.seq, t0, Ok(()));
        assert_eq!(after.remove_files, vec![j.seq]);
        assert_eq!(c.lookup("a"), None);
        let j = job(c.next(t0));
        assert_eq!(j.key, "b");
        c.upload_finished(j.seq, t0, Ok(()));
        assert_eq!(c.next(t0), Next::Idle);
        assert!(c.is_empty());
        let m = c.metrics(t0);
        assert_eq!((m.uploaded_objects, m.uploaded_bytes, m.spooled_bytes, m.spooled_objects), (2, 30, 0, 0));
    }

    #[test]
    fn exponential_backoff_while_the_store_is_down() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        put(&mut c, "a", 10, 1);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let j = job(c.next(now));
            let after = c.upload_finished(j.seq, now, Err("connection refused".into()));
            let retry = after.retry_at.expect("retry time");
            delays.push((retry - now).as_secs());
            // Not before the retry time...
            assert_eq!(c.next(retry - Duration::from_millis(1)), Next::RetryAt(retry));
            now = retry;
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        let m = c.metrics(now);
        assert_eq!((m.upload_failures, m.consecutive_failures), (8, 8));
        assert_eq!(m.last_error.as_deref(), Some("connection refused"));
        assert_eq!(m.spooled_objects, 1, "nothing is dropped");
        // ...and the store comes back: success resets the backoff.
        let j = job(c.next(now));
        c.upload_finished(j.seq, now, Ok(()));
        put(&mut c, "b", 1, 2);
        assert!(matches!(c.next(now), Next::Upload(_)), "no backoff after a success");
        let m = c.metrics(now);
        assert_eq!((m.consecutive_failures, m.last_error, m.retry_in), (0, None, None));
    }

    #[test]
    fn retry_in_metric_and_retry_now() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        put(&mut c, "a", 10, 1);
        let j = job(c.next(t0));
        c.upload_finished(j.seq, t0, Err("down".into()));
        assert_eq!(c.metrics(t0).retry_in, Some(Duration::from_secs(1)));
        assert_eq!(c.metrics(t0 + Duration::from_secs(2)).retry_in, None);
        c.retry_now();
        assert!(matches!(c.next(t0), Next::Upload(_)));
    }

    #[test]
    fn an_object_the_store_refuses_does_not_block_the_others() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        put(&mut c, "bad", 10, 1);
        put(&mut c, "good1", 10, 2);
        put(&mut c, "good2", 10, 3);
        let j = job(c.next(t0));
        assert_eq!(j.key, "bad");
        let after = c.upload_finished(j.seq, t0, Err("rejected".into()));
        let t1 = after.retry_at.unwrap();
        for want in ["good1", "good2"] {
            let j = job(c.next(t1));
            assert_eq!(j.key, want, "fewest attempts first");
            c.upload_finished(j.seq, t1, Ok(()));
        }
        let j = job(c.next(t1));
        assert_eq!(j.key, "bad", "retried once the others are done");
        assert_eq!(c.metrics(t1).spooled_objects, 1);
    }

    #[test]
    fn quota_in_bytes_is_enforced_and_released() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        put(&mut c, "a", 6 * MIB, 1);
        let seq = c.begin_put().unwrap();
        c.reserve_bytes(3 * MIB).unwrap();
        let full = c.reserve_bytes(2 * MIB).unwrap_err();
        assert_eq!((full.used_bytes, full.quota_bytes), (9 * MIB, 10 * MIB));
        c.abort_put(3 * MIB, true);
        let m = c.metrics(t0);
        assert_eq!((m.reserved_bytes, m.rejected_puts, m.spooled_bytes), (0, 1, 6 * MIB));
        let _ = seq;
        // Uploading frees the room.
        let j = job(c.next(t0));
        c.upload_finished(j.seq, t0, Ok(()));
        put(&mut c, "b", 10 * MIB, 2);
        assert_eq!(c.metrics(t0).fill_ratio, 1.0);
    }

    #[test]
    fn quota_in_objects() {
        let mut c = SpoolCore::new(policy());
        for i in 0..5 {
            put(&mut c, &format!("k{i}"), 1, i);
        }
        let full = c.begin_put().unwrap_err();
        assert_eq!((full.objects, full.max_objects), (5, 5));
        assert_eq!(c.metrics(Instant::now()).rejected_puts, 1);
    }

    #[test]
    fn warns_once_when_passing_80_percent_and_rearms_below_70() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(SpoolPolicy { max_objects: 1000, ..policy() });
        assert_eq!(put(&mut c, "a", 7 * MIB, 1).1.warning, None);
        let w = put(&mut c, "b", MIB + MIB / 2, 2).1.warning.expect("warning at 85 %");
        assert!((w.ratio - 0.85).abs() < 1e-9, "{w:?}");
        assert_eq!(put(&mut c, "c", MIB / 4, 3).1.warning, None, "only once");
        // Drain below 70 %: the warning re-arms.
        let j = job(c.next(t0));
        assert_eq!(j.key, "a");
        c.upload_finished(j.seq, t0, Ok(()));
        assert!(put(&mut c, "d", 7 * MIB, 4).1.warning.is_some(), "warns again after re-arming");
    }

    #[test]
    fn overwrite_supersedes_the_older_file() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        let (s1, _) = put(&mut c, "k", 10, 1);
        let (s2, committed) = put(&mut c, "k", 20, 2);
        assert_eq!(committed.remove_files, vec![s1], "old version removed at once");
        assert_eq!(c.lookup("k").map(|l| (l.0, l.1)), Some((s2, 20)));
        assert_eq!(c.metrics(t0).spooled_bytes, 20);
        // Overwrite while the old version is uploading: removed when that upload ends, then
        // the new version is uploaded too.
        let j = job(c.next(t0));
        assert_eq!(j.seq, s2);
        let (s3, committed) = put(&mut c, "k", 30, 3);
        assert!(committed.remove_files.is_empty(), "in flight: not removed yet");
        assert_eq!(c.metrics(t0).spooled_bytes, 50);
        let after = c.upload_finished(j.seq, t0, Ok(()));
        assert_eq!(after.remove_files, vec![s2]);
        let j = job(c.next(t0));
        assert_eq!((j.seq, j.sha256), (s3, [3; 32]));
        c.upload_finished(j.seq, t0, Ok(()));
        assert!(c.is_empty());
    }

    #[test]
    fn concurrent_puts_of_one_key_keep_the_newest_sequence() {
        let mut c = SpoolCore::new(policy());
        let s1 = c.begin_put().unwrap();
        let s2 = c.begin_put().unwrap();
        c.reserve_bytes(2).unwrap();
        assert!(c.commit_put(s2, "k", 1, [2; 32], 1, at(2)).remove_files.is_empty());
        // The older put finishes last: it is obsolete at once (as it would be after a restart).
        assert_eq!(c.commit_put(s1, "k", 1, [1; 32], 1, at(1)).remove_files, vec![s1]);
        assert_eq!(c.lookup("k").unwrap().0, s2);
    }

    #[test]
    fn delete_while_waiting_and_while_uploading() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        let (s1, _) = put(&mut c, "a", 10, 1);
        assert_eq!(c.remove_key("a"), vec![s1]);
        assert!(c.is_empty());
        assert_eq!(c.remove_key("a"), Vec::<Seq>::new());

        let (s2, _) = put(&mut c, "b", 10, 2);
        let j = job(c.next(t0));
        assert!(c.remove_key("b").is_empty(), "in flight: removed when it ends");
        assert_eq!(c.in_flight_key(), Some("b"), "the deleter waits for this upload");
        assert_eq!(c.lookup("b"), None, "reads no longer see it");
        let after = c.upload_finished(j.seq, t0, Ok(()));
        assert_eq!(after.remove_files, vec![s2]);
        assert_eq!(c.in_flight_key(), None);
        assert!(c.is_empty());

        // Deleted during a failing upload: nothing to retry.
        put(&mut c, "c", 10, 3);
        let j = job(c.next(t0));
        c.remove_key("c");
        let after = c.upload_finished(j.seq, t0, Err("down".into()));
        assert_eq!(after.remove_files, vec![j.seq]);
        assert!(c.is_empty());
    }

    #[test]
    fn restore_resumes_in_sequence_order() {
        let t0 = Instant::now();
        let mut c = SpoolCore::new(policy());
        assert!(c.restore(7, "x", 5, [7; 32], at(7)).is_empty());
        assert!(c.restore(9, "y", 5, [9; 32], at(9)).is_empty());
        assert_eq!(c.restore(12, "x", 6, [12; 32], at(12)), vec![7], "older version of x dropped");
        assert_eq!(c.begin_put().unwrap(), 13, "sequence numbers continue");
        c.abort_put(0, false);
        let m = c.metrics(t0);
        assert_eq!((m.spooled_objects, m.spooled_bytes, m.oldest_spooled_at), (2, 11, Some(at(9))));
        assert_eq!(job(c.next(t0)).key, "y");
    }

    #[test]
    fn header_round_trip() {
        let h = encode_header("media/a/b.cne", 1234, &[9; 32], at(5));
        let d = decode_header(&h).unwrap();
        assert_eq!((d.key.as_str(), d.size, d.sha256, d.len), ("media/a/b.cne", 1234, [9; 32], h.len() as u64));
        assert_eq!(d.spooled_at, at(5));
        assert!(decode_header(&h[..h.len() - 1]).is_none());
        let mut bad = h.clone();
        bad[0] = b'X';
        assert!(decode_header(&bad).is_none());
    }
}
