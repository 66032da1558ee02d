//! Retention-period keys: keys that can be destroyed at expiry.
//!
//! An object's data key is wrapped (in its header) by a *period key* rather than straight by a
//! KEK: one period key per class and per month in which the objects expire (`period-papers-202912`
//! wraps the data keys of every paper that expires in December 2029). The period keys live only
//! in the *period key file*, beside the KEK file (never in the store, never in the data dir),
//! each of them wrapped there by a KEK. When a period has ended (every object in it expired, plus
//! a day), the sweep destroys its key: the entry is removed from the file, which keeps a line
//! saying when. From then on no copy of those objects decrypts anywhere, whatever copy
//! survives: a copy of the bucket taken before the sweep, an old object version, a snapshot of
//! the data dir. Objects that a legal hold keeps are re-wrapped under the KEK before their
//! period key goes (the caller does that: [`crate::format::rewrap_header`]).
//!
//! The file is TOML, mode 0600, changed only under an exclusive lock on `FILE.lock` (the server
//! and `cunneng retention sweep` may both change it) and written atomically. Readers notice a
//! change by the file's modification time and length, so a key destroyed by another process is
//! gone for this one at its next use.
//!
//! Backups of the key directory must age out within the lifecycle grace period (30 days by
//! default): a backup taken before a destruction still holds the key. docs/storage-format.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, StorageError};
use crate::format::{Header, MAX_PRELUDE_LEN, ObjectClass, rewrap_header};
use crate::keys::{KEK_LEN, Kek, KeyRing, MoreKeys, rfc3339};
use crate::retention::RetentionPolicy;
use crate::store::{ByteRange, ObjectStore};

/// Every period key id starts with this.
pub const PERIOD_KEY_PREFIX: &str = "period-";
const FILE_FORMAT: u32 = 1;
const WRAP_LABEL: &[u8] = b"cunneng-storage/v1/period-key\0";
/// A period key is destroyed this long after its period's end.
pub const DESTROY_MARGIN: Duration = Duration::from_secs(86_400);

/// A calendar month (UTC) in which objects expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    pub month: u8,
}

impl Period {
    /// The month (UTC) of `t`.
    pub fn of(t: SystemTime) -> Period {
        let t = time::OffsetDateTime::from(t.max(UNIX_EPOCH));
        Period { year: t.year(), month: u8::from(t.month()) }
    }

    /// The first instant after the period.
    pub fn end(self) -> SystemTime {
        let (y, m) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        let month = time::Month::try_from(m).unwrap_or(time::Month::January);
        let date = time::Date::from_calendar_date(y, month, 1).unwrap_or(time::Date::MIN);
        let secs = date.midnight().assume_utc().unix_timestamp().max(0) as u64;
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(s: &str) -> Option<Period> {
        let (y, m) = s.split_once('-')?;
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (1..=12).contains(&month).then_some(Period { year, month })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The id of the period key of `class` for objects expiring in `period`.
pub fn period_key_id(class: &ObjectClass, period: Period) -> String {
    format!("{PERIOD_KEY_PREFIX}{class}-{:04}{:02}", period.year, period.month)
}

/// Whether a key id names a period key.
pub fn is_period_key_id(id: &str) -> bool {
    id.starts_with(PERIOD_KEY_PREFIX)
}

/// What is known of one period key (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodKeyInfo {
    pub id: String,
    pub class: String,
    pub period: Period,
    /// When it may be destroyed: the period's end plus [`DESTROY_MARGIN`].
    pub destroy_at: SystemTime,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileToml {
    format: u32,
    #[serde(rename = "key", default)]
    keys: Vec<EntryToml>,
    #[serde(default)]
    destroyed: Vec<DestroyedToml>,
}

// No Debug: it holds a wrapped key (harmless without the KEK, but still key material).
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct EntryToml {
    id: String,
    class: String,
    period: String,
    created_at: String,
    /// The KEK that wraps it.
    kek_id: String,
    /// hex(nonce 12 ‖ ciphertext 32 ‖ tag 16).
    wrapped: String,
}

impl Drop for EntryToml {
    fn drop(&mut self) {
        self.wrapped.zeroize();
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct DestroyedToml {
    id: String,
    destroyed_at: String,
}

#[derive(Default)]
struct Cache {
    /// Whether the file was read, and its (modification time, length) then (`None`: absent).
    read: Option<Option<(SystemTime, u64)>>,
    file: FileToml,
    /// Unwrapped keys, by id (filled lazily).
    open: BTreeMap<String, Kek>,
}

/// The period key file of one deployment. Cheap to share (`Arc`).
pub struct PeriodKeys {
    path: PathBuf,
    kek: KeyRing,
    policy: RetentionPolicy,
    cache: Mutex<Cache>,
}

impl fmt::Debug for PeriodKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodKeys").field("path", &self.path).finish_non_exhaustive()
    }
}

impl PeriodKeys {
    /// The period key file at `path` (created when the first key is), its keys wrapped by the
    /// KEKs of `kek`, periods after `policy`.
    pub fn open(path: impl Into<PathBuf>, kek: KeyRing, policy: RetentionPolicy) -> Result<PeriodKeys> {
        let keys = PeriodKeys { path: path.into(), kek, policy, cache: Mutex::new(Cache::default()) };
        keys.refresh(&mut keys.lock_cache())?;
        Ok(keys)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, reason: impl Into<String>) -> StorageError {
        StorageError::KeyFile { path: self.path.clone(), reason: reason.into() }
    }

    /// Re-read the file if it changed since it was read.
    fn refresh(&self, cache: &mut Cache) -> Result<()> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().unwrap_or(UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io(format!("reading {}", self.path.display()), e)),
        };
        if cache.read == Some(stamp) {
            return Ok(());
        }
        cache.file = self.read()?;
        cache.read = Some(stamp);
        let live: Vec<String> = cache.file.keys.iter().map(|e| e.id.clone()).collect();
        cache.open.retain(|id, _| live.contains(id));
        Ok(())
    }

    fn read(&self) -> Result<FileToml> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileToml { format: FILE_FORMAT, ..FileToml::default() });
            }
            Err(e) => return Err(StorageError::io(format!("reading {}", self.path.display()), e)),
        };
        let file: FileToml =
            toml::from_str(&text).map_err(|e| self.err(format!("not a valid period key file: {}", e.message())))?;
        if file.format != FILE_FORMAT {
            return Err(self.err(format!("unsupported period key file format {}", file.format)));
        }
        for e in &file.keys {
            if !is_period_key_id(&e.id) || Period::parse(&e.period).is_none() {
                return Err(self.err(format!("bad entry `{}`", e.id)));
            }
        }
        Ok(file)
    }

    /// Change the file under the exclusive lock: read it afresh, apply `change`, write it
    /// atomically (0600, fsync, rename, fsync dir).
    fn change<T>(&self, cache: &mut Cache, change: impl FnOnce(&mut FileToml) -> Result<T>) -> Result<T> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io(format!("opening {}", lock_path.display()), e))?;
        lock.lock().map_err(|e| StorageError::io(format!("locking {}", lock_path.display()), e))?;
        let mut file = self.read()?;
        let out = change(&mut file)?;
        let text = Zeroizing::new(format!(
            "# cunneng retention-period keys: secret, keep mode 0600 beside the KEK file.\n\
             # A key removed from here (at the end of its period) makes its objects unreadable.\n{}",
            toml::to_string(&file).map_err(|e| self.err(format!("cannot encode: {e}")))?
        ));
        crate::keys::write_private(&self.path, text.as_bytes())
            .map_err(|e| StorageError::io(format!("writing {}", self.path.display()), e))?;
        drop(lock);
        cache.read = None;
        self.refresh(cache)?;
        Ok(out)
    }

    fn unwrap_entry(&self, e: &EntryToml) -> Result<Kek> {
        let kek = self.kek.get(&e.kek_id)?;
        let raw = Zeroizing::new(hex::decode(e.wrapped.trim()).map_err(|_| self.err(format!("`{}`: bad hex", e.id)))?);
        if raw.len() != 12 + KEK_LEN + 16 {
            return Err(self.err(format!("`{}`: wrong length", e.id)));
        }
        let nonce = Nonce::try_from(&raw[..12]).expect("12 bytes");
        let tag = Tag::try_from(&raw[12 + KEK_LEN..]).expect("16 bytes");
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        key.copy_from_slice(&raw[12..12 + KEK_LEN]);
        Aes256Gcm::new(&(*kek.key_bytes()).into())
            .decrypt_inout_detached(&nonce, &wrap_aad(&e.id), (&mut key[..]).into(), &tag)
            .map_err(|_| StorageError::WrongKek { key_id: e.kek_id.clone() })?;
        Kek::from_bytes(&e.id, *key)
    }

    fn wrap_entry(&self, id: &str, key: &[u8; KEK_LEN]) -> (String, String) {
        let kek = self.kek.active();
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buf = Zeroizing::new(*key);
        let tag = Aes256Gcm::new(&(*kek.key_bytes()).into())
            .encrypt_inout_detached(&Nonce::from(nonce), &wrap_aad(id), (&mut buf[..]).into())
            .expect("32-byte message fits AES-GCM limits");
        let mut raw = Zeroizing::new(Vec::with_capacity(60));
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&buf[..]);
        raw.extend_from_slice(&tag);
        (kek.id().to_owned(), hex::encode(&raw[..]))
    }

    /// The period of an object of `class` created at `created_at`; `None` for a class kept
    /// forever (sealed under the KEK).
    pub fn period_of(&self, class: &ObjectClass, created_at: SystemTime) -> Option<Period> {
        let days = self.policy.retention_days(class)?;
        Some(Period::of(created_at + Duration::from_secs(u64::from(days) * 86_400)))
    }

    /// The key that wraps a new object of `class` sealed at `now`: its period key (made and
    /// durably written on first use), or `None` for a class without a retention period.
    pub fn sealing_key(&self, class: &ObjectClass, now: SystemTime) -> Result<Option<Kek>> {
        let Some(period) = self.period_of(class, now) else { return Ok(None) };
        let id = period_key_id(class, period);
        if let Some(k) = self.get(&id)? {
            return Ok(Some(k));
        }
        let mut cache = self.lock_cache();
        let class_name = class.as_str().to_owned();
        self.change(&mut cache, |file| {
            if file.destroyed.iter().any(|d| d.id == id) {
                return Err(self.err(format!("period key `{id}` was destroyed; its period has ended")));
            }
            if !file.keys.iter().any(|e| e.id == id) {
                let mut key = Zeroizing::new([0u8; KEK_LEN]);
                rand::rngs::OsRng.fill_bytes(&mut key[..]);
                let (kek_id, wrapped) = self.wrap_entry(&id, &key);
                file.keys.push(EntryToml {
                    id: id.clone(),
                    class: class_name,
                    period: period.to_string(),
                    created_at: rfc3339(now),
                    kek_id,
                    wrapped,
                });
            }
            Ok(())
        })?;
        drop(cache);
        self.get(&id)?.map(Some).ok_or_else(|| self.err(format!("`{id}` missing after it was written")))
    }

    /// The period key `id`: `None` if the file never had it; [`StorageError::KeyDestroyed`] if
    /// it was destroyed.
    pub fn get(&self, id: &str) -> Result<Option<Kek>> {
        let mut cache = self.lock_cache();
        self.refresh(&mut cache)?;
        if let Some(k) = cache.open.get(id) {
            return Ok(Some(k.clone()));
        }
        if let Some(d) = cache.file.destroyed.iter().find(|d| d.id == id) {
            return Err(StorageError::KeyDestroyed { key_id: id.to_owned(), destroyed_at: d.destroyed_at.clone() });
        }
        let Some(entry) = cache.file.keys.iter().find(|e| e.id == id).cloned() else { return Ok(None) };
        let key = self.unwrap_entry(&entry)?;
        cache.open.insert(id.to_owned(), key.clone());
        Ok(Some(key))
    }

    /// Every live period key.
    pub fn list(&self) -> Result<Vec<PeriodKeyInfo>> {
        let mut cache = self.lock_cache();
        self.refresh(&mut cache)?;
        Ok(cache
            .file
            .keys
            .iter()
            .filter_map(|e| {
                let period = Period::parse(&e.period)?;
                Some(PeriodKeyInfo {
                    id: e.id.clone(),
                    class: e.class.clone(),
                    period,
                    destroy_at: period.end() + DESTROY_MARGIN,
                })
            })
            .collect())
    }

    /// The live keys whose period ended (plus the margin) by `now`.
    pub fn due(&self, now: SystemTime) -> Result<Vec<PeriodKeyInfo>> {
        Ok(self.list()?.into_iter().filter(|k| k.destroy_at <= now).collect())
    }

    /// Destroy the period key `id`: removed from the file (durably), a line says when.
    pub fn destroy(&self, id: &str, now: SystemTime) -> Result<()> {
        let mut cache = self.lock_cache();
        self.change(&mut cache, |file| {
            file.keys.retain(|e| e.id != id);
            if !file.destroyed.iter().any(|d| d.id == id) {
                file.destroyed.push(DestroyedToml { id: id.to_owned(), destroyed_at: rfc3339(now) });
            }
            Ok(())
        })?;
        cache.open.remove(id);
        Ok(())
    }

    /// Re-wrap every period key under the active KEK (after a rotation); returns how many
    /// were under another KEK.
    pub fn rewrap(&self) -> Result<usize> {
        let mut cache = self.lock_cache();
        let active = self.kek.active().id().to_owned();
        self.change(&mut cache, |file| {
            let mut moved = 0;
            for i in 0..file.keys.len() {
                if file.keys[i].kek_id == active {
                    continue;
                }
                let key = self.unwrap_entry(&file.keys[i])?;
                let (kek_id, wrapped) = self.wrap_entry(&file.keys[i].id, key.key_bytes());
                file.keys[i].kek_id = kek_id;
                file.keys[i].wrapped = wrapped;
                moved += 1;
            }
            Ok(moved)
        })
    }
}

impl MoreKeys for PeriodKeys {
    fn find(&self, id: &str) -> Result<Option<Kek>> {
        if !is_period_key_id(id) {
            return Ok(None);
        }
        self.get(id)
    }
}

/// Re-wrap the data key of the stored object `key` under `new_kek`, if its header names the
/// key `from` (with `None`: any key but `new_kek`). Only the header is rewritten; the body is
/// copied byte for byte, unread. Returns whether the object was rewritten.
pub async fn rewrap_stored(
    store: &dyn ObjectStore,
    key: &str,
    ring: &KeyRing,
    new_kek: &Kek,
    from: Option<&str>,
) -> Result<bool> {
    use tokio::io::AsyncReadExt as _;
    let size = store.head(key).await?.size;
    let prelude = store.get(key, Some(ByteRange::new(0, size.min(MAX_PRELUDE_LEN as u64)))).await?.bytes().await?;
    let (header, _) = Header::parse(&prelude)?;
    let wanted = match from {
        Some(id) => header.key_id == id,
        None => header.key_id != new_kek.id(),
    };
    if !wanted {
        return Ok(false);
    }
    let (new_header, old_len) = rewrap_header(ring, new_kek, &prelude, &mut rand::rngs::OsRng)?;
    let rest = store.get(key, Some(ByteRange::from(old_len as u64))).await?;
    let mut body = std::io::Cursor::new(new_header).chain(rest.body);
    store.put(key, &mut body, None).await?;
    Ok(true)
}

fn wrap_aad(id: &str) -> Vec<u8> {
    let mut aad = WRAP_LABEL.to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ObjectId, open, seal};
    use crate::retention::RetentionConfig;

    const DAY: u64 = 86_400;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ring(b: u8) -> KeyRing {
        KeyRing::from_keys(vec![Kek::from_bytes(&format!("kek{b}"), [b; 32]).unwrap()]).unwrap()
    }

    fn keys(dir: &Path, ring: KeyRing) -> PeriodKeys {
        PeriodKeys::open(dir.join("period-keys.toml"), ring, RetentionPolicy::new(&RetentionConfig::default()).unwrap())
            .unwrap()
    }

    #[test]
    fn periods_are_calendar_months_of_the_expiry() {
        // 2025-03-01T00:00:00Z = 1_740_787_200.
        assert_eq!(Period::of(at(1_740_787_200)), Period { year: 2025, month: 3 });
        assert_eq!(Period::of(at(1_740_787_199)), Period { year: 2025, month: 2 });
        assert_eq!(Period { year: 2025, month: 2 }.end(), at(1_740_787_200));
        assert_eq!(Period { year: 2024, month: 12 }.end(), at(1_735_689_600)); // 2025-01-01
        assert_eq!(Period::parse("2029-12"), Some(Period { year: 2029, month: 12 }));
        assert_eq!(Period::parse("2029-13"), None);
        assert_eq!(period_key_id(&ObjectClass::PAPERS, Period { year: 2029, month: 1 }), "period-papers-202901");
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path(), ring(1));
        // A paper sealed on 2025-03-01 expires 1095 days later, in February 2028.
        assert_eq!(k.period_of(&ObjectClass::PAPERS, at(1_740_787_200)), Some(Period { year: 2028, month: 2 }));
        assert_eq!(k.period_of(&ObjectClass::new("pii").unwrap(), at(0)), None);
    }

    #[test]
    fn a_period_key_is_made_once_kept_durably_and_destroyed_for_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let now = at(1_740_787_200);
        let k = keys(dir.path(), ring(1));
        let kek = k.sealing_key(&ObjectClass::MEDIA, now).unwrap().unwrap();
        assert_eq!(kek.id(), "period-media-202603");
        assert_eq!(k.sealing_key(&ObjectClass::MEDIA, now + Duration::from_secs(60)).unwrap().unwrap().id(), kek.id());
        let object = seal(&kek, ObjectClass::MEDIA, ObjectId::new("media/a").unwrap(), b"village video").unwrap();
        let copy = object.clone();

        // Another process (a second handle on the same file) opens it too.
        let other = keys(dir.path(), ring(1));
        let full = ring(1).with_periods(std::sync::Arc::new(other));
        assert_eq!(open(&full, &object).unwrap().1, b"village video");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(k.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = std::fs::read_to_string(k.path()).unwrap();
        assert!(!text.contains(&hex::encode(kek.key_bytes())), "the period key is stored wrapped");

        // Not due before its period ended plus a day.
        assert!(k.due(Period { year: 2026, month: 3 }.end()).unwrap().is_empty());
        let due = k.due(Period { year: 2026, month: 3 }.end() + DESTROY_MARGIN).unwrap();
        assert_eq!(due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["period-media-202603"]);
        k.destroy(&due[0].id, now + Duration::from_secs(400 * DAY)).unwrap();
        // The other handle notices, and the copy made before no longer opens.
        match open(&full, &copy) {
            Err(StorageError::KeyDestroyed { key_id, destroyed_at }) => {
                assert_eq!(key_id, "period-media-202603");
                assert!(destroyed_at.starts_with("2026-04"), "{destroyed_at}");
            }
            other => panic!("{other:?}"),
        }
        // No key can be made again for a destroyed period.
        assert!(k.sealing_key(&ObjectClass::MEDIA, now).is_err());
        assert!(k.list().unwrap().is_empty());
    }

    #[test]
    fn rotation_rewraps_the_period_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = ring(1);
        let k = keys(dir.path(), old.clone());
        let kek = k.sealing_key(&ObjectClass::PAPERS, at(0)).unwrap().unwrap();
        let object = seal(&kek, ObjectClass::PAPERS, ObjectId::new("papers/x").unwrap(), b"hukou").unwrap();
        let mut rotated = old.clone();
        rotated.rotate(&mut rand::rngs::OsRng, at(10));
        let k2 = keys(dir.path(), rotated.clone());
        assert_eq!(k2.rewrap().unwrap(), 1);
        assert_eq!(k2.rewrap().unwrap(), 0);
        // Without the old KEK at all, the object still opens: only the period key moved.
        let new_only = KeyRing::from_keys(vec![rotated.active().clone()]).unwrap();
        let k3 = keys(dir.path(), new_only.clone());
        let full = new_only.with_periods(std::sync::Arc::new(k3));
        assert_eq!(open(&full, &object).unwrap().1, b"hukou");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys(dir.path(), ring(1));
        k.sealing_key(&ObjectClass::PAPERS, at(0)).unwrap();
        // Under another KEK the entry does not unwrap.
        let foreign = keys(dir.path(), KeyRing::from_keys(vec![Kek::from_bytes("kek1", [9; 32]).unwrap()]).unwrap());
        let id = k.list().unwrap()[0].id.clone();
        assert!(matches!(foreign.get(&id), Err(StorageError::WrongKek { .. })));
        std::fs::write(k.path(), "format = 1\n[[key]]\nid = \"x\"\n").unwrap();
        assert!(
            PeriodKeys::open(k.path(), ring(1), RetentionPolicy::new(&RetentionConfig::default()).unwrap()).is_err()
        );
    }
}
