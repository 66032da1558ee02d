//! The server's encrypted object store: the key ring and the backend chosen by configuration.
//! Local directory (the embedded default), or S3 behind the durable spool, which acknowledges
//! an object once it is on local disk (encrypted) and uploads it when the store answers.
//!
//! [`Vault`] is the one place that seals and opens stored objects, for papers, recordings,
//! sealed personal data and the operator tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cunneng_storage::{
    Decryptor, KeyRing, LocalStore, ObjectClass, ObjectId, ObjectInfo, ObjectStore, PeriodKeys, RangeOptions,
    RangedObject, RetentionConfig, RetentionPolicy, S3Config, S3Credentials, S3Store, Spool, SpoolConfig, StorageError,
};
use tokio::io::AsyncReadExt;

use crate::config::{Config, StorageBackend};
use crate::error::Error;

/// Refuse to go on when the key file is missing although sealed data exists (`in_db` names
/// what the database holds, if anything; the object and spool directories are looked at
/// here): a new key would make every old object unreadable and hide the loss.
pub fn check_key_file(config: &Config, in_db: Option<&str>) -> Result<(), Error> {
    let path = config.kek_file();
    if path.exists() {
        return Ok(());
    }
    let on_disk = |dir: std::path::PathBuf| holds_a_file(&dir).then(|| dir.display().to_string());
    let what = match in_db {
        Some(w) => Some(format!("the database holds {w}")),
        None => on_disk(config.objects_dir())
            .or_else(|| on_disk(config.spool_dir()))
            .map(|d| format!("{d} holds sealed objects")),
    };
    match what {
        None => Ok(()),
        Some(what) => Err(Error::Tool(format!(
            "the key file {} is missing, but {what} sealed under it: restore the key file (and \
             audit-ed25519.key and period-keys.toml beside it) from the backup of the key files, or set storage.kek_file \
             to where it is. No new key is generated: objects sealed under the old one could never \
             be opened again",
            path.display()
        ))),
    }
}

/// Catalogued objects whose headers the period key check reads.
const PERIOD_CHECK_OBJECTS: usize = 16;
/// How long the period key check waits for the store, in all.
const PERIOD_CHECK_WAIT: Duration = Duration::from_secs(10);

/// Refuse to go on when the period key file is missing although stored objects are sealed
/// under retention-period keys: without it they never open again, and the new period keys the
/// server would make hide the loss. Reads the headers of the newest papers and catalogued
/// objects (a small ranged read each); a store that does not answer in time is not a reason to refuse (logged).
pub async fn check_period_key_file(config: &Config, db: &crate::db::Db, store: &dyn ObjectStore) -> Result<(), Error> {
    let path = period_keys_file(config);
    if path.exists() {
        return Ok(());
    }
    let newest = db.run(|db| db.newest_objects(PERIOD_CHECK_OBJECTS)).await?;
    let look = async {
        for key in newest {
            let Ok(meta) = store.head(&key).await else { continue };
            let end = meta.size.min(cunneng_storage::format::MAX_PRELUDE_LEN as u64);
            let Ok(object) = store.get(&key, Some(cunneng_storage::ByteRange::new(0, end))).await else { continue };
            let Ok(prelude) = object.bytes().await else { continue };
            if let Ok((header, _)) = cunneng_storage::Header::parse(&prelude)
                && cunneng_storage::is_period_key_id(&header.key_id)
            {
                return Some((key, header.key_id));
            }
        }
        None
    };
    match tokio::time::timeout(PERIOD_CHECK_WAIT, look).await {
        Ok(None) => Ok(()),
        Err(_) => {
            tracing::warn!(path = %path.display(), "the period key file is missing and the store did not answer in time: cannot tell whether objects need it");
            Ok(())
        }
        Ok(Some((key, key_id))) => Err(Error::Tool(format!(
            "the period key file {} is missing, but {key} is sealed under its key {key_id}: restore \
             period-keys.toml (beside {}) from the backup of the key files. No new period key is \
             made: objects sealed under the missing ones could never be opened again",
            path.display(),
            config.kek_file().display()
        ))),
    }
}

/// Whether `dir` (recursively) holds any regular file.
fn holds_a_file(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| match e.file_type() {
        Ok(t) if t.is_dir() => holds_a_file(&e.path()),
        Ok(t) => t.is_file(),
        Err(_) => false,
    })
}

/// Load the key-encryption keys; on the very first start (no file yet) generate one.
pub fn load_or_create_keys(path: &Path) -> Result<KeyRing, Error> {
    if path.exists() {
        return Ok(KeyRing::load(path)?);
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let ring = KeyRing::generate_file(path)?;
    tracing::warn!(
        path = %path.display(),
        "generated a new key-encryption key; back this file up: without it recordings and papers cannot be decrypted"
    );
    Ok(ring)
}

/// The retention-period key file: beside the KEK file, never in the store.
pub fn period_keys_file(config: &Config) -> PathBuf {
    config.kek_file().with_file_name("period-keys.toml")
}

/// The keys objects are sealed and opened with: the KEK file's ring with the retention-period
/// keys attached (`cunneng_storage::period`).
#[derive(Clone, Debug)]
pub struct Keys {
    /// KEKs and period keys: opens any object.
    pub ring: Arc<KeyRing>,
    /// Wraps the data keys of new objects whose class has a retention period.
    pub periods: Arc<PeriodKeys>,
}

impl Keys {
    /// Attach the period keys of `config` to `kek`.
    pub fn new(config: &Config, kek: KeyRing) -> Result<Keys, Error> {
        let periods = Arc::new(PeriodKeys::open(period_keys_file(config), kek.clone(), retention_policy(config)?)?);
        Ok(Keys { ring: Arc::new(kek.with_periods(periods.clone())), periods })
    }

    /// The keys of an existing KEK file (the tools).
    pub fn load(config: &Config) -> Result<Keys, Error> {
        Keys::new(config, KeyRing::load(&config.kek_file())?)
    }
}

/// Load the audit signing key; on the very first start (no file yet) generate one (mode 0600).
/// Without `create`, a missing file is an error that says what to restore.
pub fn load_or_create_audit_key(path: &Path, create: bool) -> Result<crate::audit::AuditKey, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => crate::audit::AuditKey::from_secret_hex(&text)
            .ok_or_else(|| Error::Tool(format!("{} does not hold an audit signing key", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            use std::io::Write as _;
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
            let key = crate::audit::AuditKey::generate();
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
            f.write_all(format!("{}\n", key.secret_hex()).as_bytes())?;
            f.sync_all()?;
            tracing::warn!(path = %path.display(), key_id = %key.key_id(), "generated the audit signing key; back it up with the key file");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Tool(format!(
            "the audit signing key {} is missing although the audit record was signed with it: restore it from \
             the backup of the key files (the record cannot be verified or continued without it)",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The store the server writes to, and the spool in front of it (S3 only).
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    pub spool: Option<Arc<Spool>>,
}

pub fn retention_policy(config: &Config) -> Result<RetentionPolicy, Error> {
    let cfg = RetentionConfig {
        media_days: config.storage.media_retention_days,
        papers_days: config.storage.papers_retention_days,
        ..RetentionConfig::default()
    };
    Ok(RetentionPolicy::new(&cfg)?)
}

/// Open the object store of `config.storage`. With S3 the server starts even when the store
/// does not answer: objects wait in the spool.
pub async fn open(config: &Config) -> Result<Objects, Error> {
    match config.storage.backend {
        StorageBackend::Local => Ok(Objects { store: Arc::new(local(config).await?), spool: None }),
        StorageBackend::S3 => {
            let s3 = s3(config).await?;
            match s3.check().await {
                Ok(()) => match s3.ensure_lifecycle(&retention_policy(config)?.lifecycle_rules()).await {
                    Ok(outcome) => tracing::info!(?outcome, "bucket lifecycle rules"),
                    Err(e) => tracing::warn!(error = %e, "could not set the bucket's lifecycle rules"),
                },
                Err(e) => tracing::warn!(error = %e, "the object store does not answer; objects wait in the spool"),
            }
            let spool_config =
                SpoolConfig { quota_bytes: config.storage.spool_quota_bytes, ..SpoolConfig::new(config.spool_dir()) };
            let spool = Arc::new(Spool::open(spool_config, s3).await?);
            Ok(Objects { store: spool.clone(), spool: Some(spool) })
        }
    }
}

/// The store itself, for the operator commands: the local directory, or the bucket (what the
/// running server's spool has uploaded; the spool belongs to the server process).
pub async fn open_store(config: &Config) -> Result<Arc<dyn ObjectStore>, Error> {
    Ok(match config.storage.backend {
        StorageBackend::Local => Arc::new(local(config).await?),
        StorageBackend::S3 => {
            let s3 = s3(config).await?;
            s3.check().await?;
            s3
        }
    })
}

async fn local(config: &Config) -> Result<LocalStore, Error> {
    let store = LocalStore::open(config.objects_dir()).await?;
    let removed = store.remove_stale_temp(Duration::from_secs(3600)).await?;
    if removed > 0 {
        tracing::info!(removed, "removed unfinished temporary objects");
    }
    Ok(store)
}

async fn s3(config: &Config) -> Result<Arc<S3Store>, Error> {
    let c = &config.storage.s3;
    let credentials = match (&c.access_key_id, &c.secret_access_key) {
        (Some(id), Some(secret)) => {
            S3Credentials::Static { access_key_id: id.clone(), secret_access_key: secret.clone() }
        }
        _ => S3Credentials::Environment,
    };
    let s3_config =
        S3Config { path_style: c.path_style, ..S3Config::new(c.endpoint.clone(), &c.region, &c.bucket, credentials) };
    Ok(Arc::new(S3Store::connect(&s3_config).await?))
}

// ---------------------------------------------------------------------------------------------
// Sealing and opening.

/// Seals objects under the active key-encryption key and opens them with any key of the ring,
/// in memory or straight from the store. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn ObjectStore>,
    keys: Arc<KeyRing>,
    periods: Arc<PeriodKeys>,
}

/// The class of sealed personal data kept in the database (the villager's ID number).
pub fn pii_class() -> Result<ObjectClass, Error> {
    Ok(ObjectClass::new("pii")?)
}

impl Vault {
    pub fn new(store: Arc<dyn ObjectStore>, keys: Keys) -> Vault {
        Vault { store, keys: keys.ring, periods: keys.periods }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn periods(&self) -> &Arc<PeriodKeys> {
        &self.periods
    }

    /// Seal `plaintext` as the object `id` of `class` (in memory; CPU-bound). The data key is
    /// wrapped by the class's retention-period key (destroyed when the period ends), or by the
    /// active KEK for a class kept without a period (the sealed personal data in the database).
    pub fn seal(&self, class: ObjectClass, id: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let period_key = self.periods.sealing_key(&class, SystemTime::now())?;
        let kek = period_key.as_ref().unwrap_or(self.keys.active());
        Ok(cunneng_storage::seal(kek, class, ObjectId::new(id)?, plaintext)?)
    }

    /// Open a sealed object held in memory, checking that it is the object `id` of `class`.
    pub fn open(&self, class: ObjectClass, id: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let mut dec = Decryptor::new(&self.keys).expect(class, ObjectId::new(id)?);
        let mut out = Vec::with_capacity(sealed.len());
        dec.update(sealed, &mut out)?;
        dec.finish()?;
        Ok(out)
    }

    /// Seal and store; returns the stored size. Acknowledged once durably stored.
    pub async fn put(&self, class: ObjectClass, key: &str, plaintext: &[u8]) -> Result<u64, Error> {
        let sealed = self.seal(class, key, plaintext)?;
        let mut body = std::io::Cursor::new(sealed);
        Ok(self.store.put(key, &mut body, None).await?.size)
    }

    /// Fetch and open the object `key` of `class`. An object of a case under legal hold is
    /// found in the hold area.
    pub async fn get(&self, class: ObjectClass, key: &str) -> Result<Vec<u8>, Error> {
        let sealed = match self.store.get_bytes(key, None).await {
            Err(StorageError::NotFound(_)) => {
                self.store.get_bytes(&cunneng_storage::retention::hold_key(key), None).await
            }
            other => other,
        }?;
        let vault = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || vault.open(class, &key, &sealed))
            .await
            .map_err(|e| Error::Tool(format!("opening an object: {e}")))?
    }

    /// Open the object `key` of `class` for ranged reads of its plaintext (playback): two
    /// small reads of the store (header, final record) now, then only the records a range
    /// needs, chunk by chunk (`cunneng_storage::ranged`; memory: about a chunk per reader). An
    /// object of a case under legal hold is found in the hold area, even if it moves there in
    /// the middle of a read.
    pub async fn open_range(&self, class: ObjectClass, key: &str) -> Result<RangedObject, Error> {
        let id = ObjectId::new(key)?;
        let locations = vec![key.to_string(), cunneng_storage::retention::hold_key(key)];
        let options = RangeOptions::default();
        Ok(RangedObject::open(self.store.clone(), &self.keys, locations, Some((&class, &id)), options).await?)
    }

    /// Open a sealed stream of any class chunk by chunk, handing each piece of plaintext to
    /// `sink`; the object is authentic only when this returns `Ok`.
    pub async fn open_stream(
        &self,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        mut sink: impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<ObjectInfo, Error> {
        let mut dec = Decryptor::new(&self.keys);
        let mut buf = vec![0u8; 256 * 1024];
        let mut out = Vec::new();
        loop {
            let n = body.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.clear();
            dec.update(&buf[..n], &mut out)?;
            sink(&out)?;
        }
        Ok(dec.finish()?)
    }

    /// Fetch and open a whole object of any class (the tools; manifests).
    pub async fn get_any(&self, key: &str) -> Result<Vec<u8>, Error> {
        let mut body = self.store.get(key, None).await?.body;
        let mut plain = Vec::new();
        self.open_stream(&mut body, |c| {
            plain.extend_from_slice(c);
            Ok(())
        })
        .await?;
        Ok(plain)
    }
}
