//! Key-encryption keys (KEKs) and the KEK file.
//!
//! A KEK file is TOML, mode 0600, holding every KEK still needed: exactly one `active` key
//! (wraps the data keys of new objects) and any number of `retired` keys (still unwrap older
//! objects until `cunneng keys rewrap` has moved them to the active key):
//!
//! ```toml
//! # cunneng key-encryption keys: secret, keep mode 0600, back it up offline.
//! format = 1
//!
//! [[key]]
//! id = "kek-20250301-3f9a1c07"
//! created_at = "2025-03-01T08:00:00Z"
//! status = "active"
//! key = "<64 hex digits>"
//! ```
//!
//! Key material never appears in `Debug` output or errors, and is zeroed when dropped.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, StorageError};

/// Length of a KEK in bytes (AES-256).
pub const KEK_LEN: usize = 32;
/// Longest key id the object header can hold.
pub const MAX_KEY_ID_LEN: usize = 64;
const FILE_FORMAT: u32 = 1;

/// Whether a KEK wraps new data keys (`Active`, exactly one per ring) or only unwraps old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Retired,
}

/// One key-encryption key. `Debug` never shows the key; the key is zeroed on drop.
#[derive(Clone)]
pub struct Kek {
    id: String,
    created_at: String,
    status: KeyStatus,
    key: Zeroizing<[u8; KEK_LEN]>,
}

impl Kek {
    /// A KEK from known bytes (tests, imports). The id must be 1..=64 of `[A-Za-z0-9._-]`.
    pub fn from_bytes(id: &str, key: [u8; KEK_LEN]) -> Result<Self> {
        validate_key_id(id)?;
        Ok(Kek {
            id: id.to_owned(),
            created_at: rfc3339(SystemTime::now()),
            status: KeyStatus::Active,
            key: Zeroizing::new(key),
        })
    }

    /// A fresh random KEK with an id of the form `kek-YYYYMMDD-xxxxxxxx`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, now: SystemTime) -> Self {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        rng.fill_bytes(&mut key[..]);
        let mut tag = [0u8; 4];
        rng.fill_bytes(&mut tag);
        let stamp = rfc3339(now);
        let day: String = stamp[..10].chars().filter(|c| *c != '-').collect();
        Kek { id: format!("kek-{day}-{}", hex::encode(tag)), created_at: stamp, status: KeyStatus::Active, key }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    pub fn status(&self) -> KeyStatus {
        self.status
    }

    pub(crate) fn key_bytes(&self) -> &[u8; KEK_LEN] {
        &self.key
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("status", &self.status)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Check a key id: 1..=64 bytes of `[A-Za-z0-9._-]`.
pub fn validate_key_id(id: &str) -> Result<()> {
    let bad = |reason| Err(StorageError::InvalidName { what: "key id", value: id.to_owned(), reason });
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return bad("must be 1 to 64 bytes");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Keys kept outside the KEK file that can unwrap data keys: the retention-period keys
/// ([`crate::period::PeriodKeys`]).
pub trait MoreKeys: fmt::Debug + Send + Sync {
    /// The key `id`: `None` if this source never had it; an error if it is gone for good.
    fn find(&self, id: &str) -> Result<Option<Kek>>;
}

/// The KEKs of one deployment: one active, others retired; and, if attached, the keys that
/// live beside them ([`MoreKeys`]: the retention-period keys).
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<Kek>,
    more: Option<Arc<dyn MoreKeys>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileToml {
    format: u32,
    #[serde(rename = "key", default)]
    keys: Vec<KeyEntryToml>,
}

// No Debug: it holds the key in hex.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntryToml {
    id: String,
    created_at: String,
    status: KeyStatus,
    key: String,
}

impl Drop for KeyEntryToml {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl KeyRing {
    /// A ring of the given keys: ids unique, exactly one active.
    pub fn from_keys(keys: Vec<Kek>) -> Result<Self> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(StorageError::KeyFile {
                    path: PathBuf::new(),
                    reason: format!("duplicate key id `{}`", k.id),
                });
            }
        }
        match keys.iter().filter(|k| k.status == KeyStatus::Active).count() {
            0 => Err(StorageError::NoActiveKey),
            1 => Ok(KeyRing { keys, more: None }),
            _ => Err(StorageError::KeyFile { path: PathBuf::new(), reason: "more than one active key".into() }),
        }
    }

    /// A ring holding one new random active key.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, now: SystemTime) -> Self {
        KeyRing { keys: vec![Kek::generate(rng, now)], more: None }
    }

    /// The key that wraps the data keys of new objects.
    pub fn active(&self) -> &Kek {
        self.keys.iter().find(|k| k.status == KeyStatus::Active).expect("a KeyRing always has one active key")
    }

    /// The KEK with this id, active or retired.
    pub fn get(&self, id: &str) -> Result<&Kek> {
        self.keys.iter().find(|k| k.id == id).ok_or_else(|| StorageError::UnknownKeyId(id.to_owned()))
    }

    /// This ring with `more` keys attached (the retention-period keys).
    pub fn with_periods(mut self, more: Arc<dyn MoreKeys>) -> Self {
        self.more = Some(more);
        self
    }

    /// The key named by an object header: a KEK, or one of the attached keys (a destroyed
    /// period key is [`StorageError::KeyDestroyed`]).
    pub fn unwrapping_key(&self, id: &str) -> Result<Cow<'_, Kek>> {
        if let Some(k) = self.keys.iter().find(|k| k.id == id) {
            return Ok(Cow::Borrowed(k));
        }
        match &self.more {
            Some(more) => more.find(id)?.map(Cow::Owned).ok_or_else(|| StorageError::UnknownKeyId(id.to_owned())),
            None => Err(StorageError::UnknownKeyId(id.to_owned())),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Kek> {
        self.keys.iter()
    }

    /// Start a new active key; the previous active key becomes retired and keeps decrypting.
    pub fn rotate<R: RngCore + CryptoRng + ?Sized>(&mut self, rng: &mut R, now: SystemTime) -> &Kek {
        let mut new = Kek::generate(rng, now);
        while self.keys.iter().any(|k| k.id == new.id) {
            new = Kek::generate(rng, now);
        }
        for k in &mut self.keys {
            k.status = KeyStatus::Retired;
        }
        self.keys.push(new);
        self.keys.last().expect("just pushed")
    }

    /// Drop a retired key (after every object wrapped by it was rewrapped). Objects still
    /// wrapped by it become unreadable: that is also how crypto-shredding by key works.
    pub fn remove(&mut self, id: &str) -> Result<Kek> {
        let i = self.keys.iter().position(|k| k.id == id).ok_or_else(|| StorageError::UnknownKeyId(id.to_owned()))?;
        if self.keys[i].status == KeyStatus::Active {
            return Err(StorageError::ActiveKeyRemoval(id.to_owned()));
        }
        Ok(self.keys.remove(i))
    }

    /// Parse a KEK file's text. `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let err = |reason: String| StorageError::KeyFile { path: path.to_owned(), reason };
        let file: KeyFileToml =
            toml::from_str(text).map_err(|e| err(format!("not a valid key file: {}", e.message())))?;
        if file.format != FILE_FORMAT {
            return Err(err(format!("unsupported key file format {} (this build reads {FILE_FORMAT})", file.format)));
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for e in &file.keys {
            validate_key_id(&e.id)?;
            let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
            hex::decode_to_slice(e.key.trim(), &mut bytes[..])
                .map_err(|_| err(format!("key `{}`: `key` must be {} hex digits", e.id, 2 * KEK_LEN)))?;
            keys.push(Kek { id: e.id.clone(), created_at: e.created_at.clone(), status: e.status, key: bytes });
        }
        KeyRing::from_keys(keys).map_err(|e| match e {
            StorageError::KeyFile { reason, .. } => err(reason),
            StorageError::NoActiveKey => err("no key has status \"active\"".into()),
            other => other,
        })
    }

    /// The KEK file text (contains the keys: handle as a secret).
    pub fn to_toml(&self) -> Zeroizing<String> {
        let file = KeyFileToml {
            format: FILE_FORMAT,
            keys: self
                .keys
                .iter()
                .map(|k| KeyEntryToml {
                    id: k.id.clone(),
                    created_at: k.created_at.clone(),
                    status: k.status,
                    key: hex::encode(&k.key[..]),
                })
                .collect(),
        };
        let body = Zeroizing::new(toml::to_string(&file).expect("key file serializes"));
        Zeroizing::new(format!(
            "# cunneng key-encryption keys: secret. Keep mode 0600 and an offline backup;\n\
             # losing a key loses every object it wraps.\n{}",
            body.as_str()
        ))
    }

    /// Read a KEK file. Refuses a file that group or others can access.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::KeyFile {
                path: path.to_owned(),
                reason: "does not exist (create it with `cunneng keys generate`)".into(),
            },
            _ => StorageError::io(format!("reading key file {}", path.display()), e),
        })?;
        check_mode(path, &meta)?;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| StorageError::io(format!("reading key file {}", path.display()), e))?,
        );
        KeyRing::from_toml(&text, path)
    }

    /// Write the KEK file atomically (temp file with mode 0600, fsync, rename, fsync dir).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_private(path, self.to_toml().as_bytes())
            .map_err(|e| StorageError::io(format!("writing key file {}", path.display()), e))
    }

    /// `cunneng keys generate`: a new KEK file with one active key. Fails if the file exists.
    pub fn generate_file(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(StorageError::KeyFileExists(path.to_owned()));
        }
        let ring = KeyRing::generate(&mut rand::rngs::OsRng, SystemTime::now());
        ring.save(path)?;
        Ok(ring)
    }

    /// `cunneng keys rotate`: add a new active key to the file; older keys stay, retired.
    pub fn rotate_file(path: &Path) -> Result<Self> {
        let mut ring = KeyRing::load(path)?;
        ring.rotate(&mut rand::rngs::OsRng, SystemTime::now());
        ring.save(path)?;
        Ok(ring)
    }
}

/// Write a secret file atomically: a temp file beside it with mode 0600, fsync, rename over
/// `path`, fsync of the directory. The temp file is removed if anything fails.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().ok_or_else(|| std::io::Error::other("not a file name"))?.to_owned();
    tmp_name.push(format!(".tmp-{}", hex::encode(rand::random::<[u8; 6]>())));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        crate::local::sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StorageError::InsecureKeyFile { path: path.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time (UTC; times before 1970 print as the epoch).
/// `t` as RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t.max(UNIX_EPOCH));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_740_816_000 + 61)), "2025-03-01T08:01:01Z");
    }

    #[test]
    fn debug_redacts_key_material() {
        let kek = Kek::from_bytes("k1", [0xab; 32]).unwrap();
        let ring = KeyRing::from_keys(vec![kek.clone()]).unwrap();
        for s in [format!("{kek:?}"), format!("{ring:?}"), format!("{ring:#?}")] {
            assert!(s.contains("<redacted>"), "{s}");
            assert!(!s.to_lowercase().contains("abab"), "key leaked: {s}");
            assert!(!s.contains("171"), "key leaked as decimal: {s}");
        }
    }

    #[test]
    fn rotate_keeps_old_keys_and_one_active() {
        let mut rng = rand::rngs::OsRng;
        let mut ring = KeyRing::generate(&mut rng, at(1_740_816_000));
        let first = ring.active().id().to_owned();
        assert!(first.starts_with("kek-20250301-"), "{first}");
        let second = ring.rotate(&mut rng, at(1_740_816_000)).id().to_owned();
        assert_ne!(first, second);
        assert_eq!(ring.active().id(), second);
        assert_eq!(ring.get(&first).unwrap().status(), KeyStatus::Retired);
        assert!(matches!(ring.remove(&second), Err(StorageError::ActiveKeyRemoval(_))));
        ring.remove(&first).unwrap();
        assert!(matches!(ring.get(&first), Err(StorageError::UnknownKeyId(id)) if id == first));
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let ring = KeyRing::from_keys(vec![Kek::from_bytes("a", [1; 32]).unwrap()]).unwrap();
        let text = ring.to_toml();
        let back = KeyRing::from_toml(&text, Path::new("x")).unwrap();
        assert_eq!(back.active().key_bytes(), &[1; 32]);
        let p = Path::new("k.toml");
        let bad_hex = text.replace(&"01".repeat(32), "zz");
        assert!(matches!(KeyRing::from_toml(&bad_hex, p), Err(StorageError::KeyFile { .. })));
        let none_active = text.replace("active", "retired");
        let e = KeyRing::from_toml(&none_active, p).unwrap_err().to_string();
        assert!(e.contains("no key has status"), "{e}");
        let bad_id = text.replace("id = \"a\"", "id = \"a/b\"");
        assert!(matches!(KeyRing::from_toml(&bad_id, p), Err(StorageError::InvalidName { .. })));
        let bad_format = text.replace("format = 1", "format = 9");
        assert!(KeyRing::from_toml(&bad_format, p).unwrap_err().to_string().contains("unsupported key file format"));
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_generate_rotate_work() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.toml");
        let missing = KeyRing::load(&path).unwrap_err().to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        let ring = KeyRing::generate_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(KeyRing::generate_file(&path), Err(StorageError::KeyFileExists(_))));
        let rotated = KeyRing::rotate_file(&path).unwrap();
        assert_eq!(rotated.keys().count(), 2);
        assert_eq!(rotated.get(ring.active().id()).unwrap().status(), KeyStatus::Retired);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = KeyRing::load(&path).unwrap();
        assert_eq!(loaded.active().id(), rotated.active().id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(StorageError::InsecureKeyFile { mode: 0o644, .. })));
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
