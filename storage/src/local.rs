//! Local-directory object store: the embedded default.
//!
//! Key `a/b/c` is the file `ROOT/a/b/c`. A put streams into `ROOT/.tmp/put-<random>`, fsyncs
//! it, renames it onto the final name (atomic on POSIX file systems) and fsyncs the directory,
//! so a crash leaves either the old object, the new one, or a stray temp file, never a partial
//! object under its key. Keys cannot name anything outside ROOT or inside `.tmp`
//! ([`validate_key`] rejects `..`, absolute paths, NUL and segments starting with `.`).
//!
//! One difference from S3: a key cannot be both an object and a prefix of other keys
//! (`a` and `a/b`), since `a` cannot be both a file and a directory; that is
//! [`StorageError::KeyConflict`]. Keys made of fixed-depth paths never hit it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Result, StorageError};
use crate::store::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt, validate_key};

const TMP_DIR: &str = ".tmp";
const COPY_BUF: usize = 256 * 1024;

/// An [`ObjectStore`] in a directory of the local file system.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Use (and create if needed) the directory `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        let mut dirs = tokio::fs::DirBuilder::new();
        dirs.recursive(true).mode(0o700);
        dirs.create(&tmp)
            .await
            .map_err(|e| StorageError::io(format!("creating store directory {}", tmp.display()), e))?;
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Delete temp files of puts that never finished (a crash, a killed task) and are older
    /// than `older_than`. Run at start-up; returns how many were removed.
    pub async fn remove_stale_temp(&self, older_than: Duration) -> Result<usize> {
        let dir = self.root.join(TMP_DIR);
        blocking(move || {
            let mut removed = 0;
            let now = SystemTime::now();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
                if meta.is_file() && age >= older_than {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| StorageError::io("removing stale temp files", e))
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// fsync a directory, making renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(std::io::Error::other)?
}

/// Create the missing directories between `root` and `dir`, fsyncing each parent.
fn create_dirs(root: &Path, dir: &Path, key: &str) -> Result<()> {
    let rel = dir.strip_prefix(root).expect("dir is under root");
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&cur) {
            Ok(()) => sync_dir(&parent).map_err(|e| StorageError::io(format!("syncing {}", parent.display()), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !cur.is_dir() {
                    return Err(StorageError::KeyConflict(key.to_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(StorageError::KeyConflict(key.to_owned()));
            }
            Err(e) => return Err(StorageError::io(format!("creating {}", cur.display()), e)),
        }
    }
    Ok(())
}

/// Move a complete temp file onto its final name.
fn install(root: &Path, tmp: &Path, dest: &Path, key: &str) -> Result<()> {
    let parent = dest.parent().expect("a key path has a parent");
    let mut attempt = 0;
    loop {
        create_dirs(root, parent, key)?;
        match std::fs::rename(tmp, dest) {
            Ok(()) => {
                return sync_dir(parent).map_err(|e| StorageError::io(format!("syncing {}", parent.display()), e));
            }
            // A concurrent delete pruned the (empty) directory in between: create it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::DirectoryNotEmpty
                        | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(StorageError::KeyConflict(key.to_owned()));
            }
            Err(e) => return Err(StorageError::io(format!("renaming onto {}", dest.display()), e)),
        }
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<PutReceipt> {
        let dest = self.path_of(key)?;
        let tmp = self.root.join(TMP_DIR).join(format!("put-{}", hex::encode(rand::random::<[u8; 12]>())));
        let result = async {
            let ctx = |what: &str| format!("{what} {}", tmp.display());
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .await
                .map_err(|e| StorageError::io(ctx("creating"), e))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; COPY_BUF];
            loop {
                let n =
                    body.read(&mut buf).await.map_err(|e| StorageError::io(format!("reading body for `{key}`"), e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).await.map_err(|e| StorageError::io(ctx("writing"), e))?;
                size += n as u64;
            }
            file.flush().await.map_err(|e| StorageError::io(ctx("writing"), e))?;
            file.sync_all().await.map_err(|e| StorageError::io(ctx("syncing"), e))?;
            drop(file);
            let sha256: [u8; 32] = hasher.finalize().into();
            crate::store::check_sha256(key, expected_sha256, sha256)?;
            let (root, tmp2, dest2, key2) = (self.root.clone(), tmp.clone(), dest.clone(), key.to_owned());
            tokio::task::spawn_blocking(move || install(&root, &tmp2, &dest2, &key2))
                .await
                .map_err(|e| StorageError::io("installing object", std::io::Error::other(e)))??;
            Ok(PutReceipt { size, sha256 })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Err(StorageError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(StorageError::io(format!("opening {}", path.display()), e)),
        };
        let meta = file.metadata().await.map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound(key.to_owned()));
        }
        let size = meta.len();
        let range = ByteRange::resolve(range, key, size)?;
        if range.start > 0 {
            file.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| StorageError::io(format!("seeking in {}", path.display()), e))?;
        }
        let body = Box::pin(file.take(range.end - range.start));
        Ok(GetObject { size, range, body })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => {
                Ok(ObjectMeta { key: key.to_owned(), size: m.len(), modified: m.modified().ok(), sha256: None })
            }
            Ok(_) => Err(StorageError::NotFound(key.to_owned())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            Err(e) => Err(StorageError::io(format!("reading {}", path.display()), e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        blocking(move || {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if !m.is_dir() => match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    // A concurrent delete of the same key got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                },
                Ok(_) => return Ok(()), // a "directory key" holds no object
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            let parent = path.parent().expect("key path has a parent");
            match sync_dir(parent) {
                // A concurrent delete of a sibling pruned the (then empty) directory.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                r => r?,
            }
            // Prune directories left empty, up to the root.
            let mut dir = parent.to_path_buf();
            while dir != root && std::fs::remove_dir(&dir).is_ok() {
                dir.pop();
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageError::io(format!("deleting `{key}`"), e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the deepest directory the prefix names.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        if !dir_part.is_empty() {
            validate_key(dir_part).map_err(|_| StorageError::InvalidKey {
                key: prefix.to_owned(),
                reason: "prefix is not a valid key path",
            })?;
        }
        let start = if dir_part.is_empty() { self.root.clone() } else { self.root.join(dir_part) };
        let base = dir_part.to_owned();
        let prefix = prefix.to_owned();
        let mut out = blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(start, base)];
            while let Some((dir, rel)) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                    if name.starts_with('.') {
                        continue; // .tmp and anything that is not a valid key
                    }
                    let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                    let ft = entry.file_type()?;
                    if ft.is_dir() {
                        // Only descend where keys with the prefix can be.
                        if key.starts_with(&prefix) || prefix.starts_with(&format!("{key}/")) {
                            stack.push((entry.path(), key));
                        }
                    } else if ft.is_file() && key.starts_with(&prefix) {
                        let meta = entry.metadata()?;
                        out.push(ObjectMeta { key, size: meta.len(), modified: meta.modified().ok(), sha256: None });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::io("listing objects", e))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn cleanup_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        Ok(self.remove_stale_temp(older_than).await? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("objects")).await.unwrap();
        crate::contract::run(&store, "contract/").await;
        // The contract cleans up after itself; so does the store (no temp files, no empty dirs).
        assert_eq!(std::fs::read_dir(store.root().join(TMP_DIR)).unwrap().count(), 0);
        let left: Vec<_> = std::fs::read_dir(store.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(TMP_DIR)]);
    }

    #[tokio::test]
    async fn interrupted_put_leaves_nothing_under_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        store.put_bytes("calls/c1/seg", b"old version").await.unwrap();
        let (mut tx, mut rx) = tokio::io::duplex(1024);
        let s2 = store.clone();
        let task = tokio::spawn(async move { s2.put("calls/c1/seg", &mut rx, None).await });
        tx.write_all(&[1u8; 4096][..1000]).await.unwrap();
        // The half-written object is in .tmp only; the key still holds the old version.
        for _ in 0..100 {
            if std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(store.get_bytes("calls/c1/seg", None).await.unwrap(), b"old version");
        task.abort(); // like a crash mid-upload
        let _ = task.await;
        assert_eq!(store.get_bytes("calls/c1/seg", None).await.unwrap(), b"old version");
        assert_eq!(store.list("").await.unwrap().len(), 1, "temp files are never listed");
        // After a "restart", stale temp files are swept.
        let reopened = LocalStore::open(dir.path()).await.unwrap();
        assert_eq!(reopened.remove_stale_temp(Duration::ZERO).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_deletes_in_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        for round in 0..20 {
            let keys: Vec<String> = (0..8).map(|i| format!("d{round}/k{i}")).collect();
            for k in &keys {
                store.put_bytes(k, b"x").await.unwrap();
            }
            // Each key twice, all at once: siblings prune the directory under each other.
            let tasks: Vec<_> = keys
                .iter()
                .chain(keys.iter())
                .map(|k| {
                    let (s, k) = (store.clone(), k.clone());
                    tokio::spawn(async move { s.delete(&k).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            assert!(store.list("").await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn key_and_prefix_conflict_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        store.put_bytes("a", b"1").await.unwrap();
        assert!(matches!(store.put_bytes("a/b", b"2").await, Err(StorageError::KeyConflict(_))));
        store.put_bytes("c/d", b"3").await.unwrap();
        assert!(matches!(store.put_bytes("c", b"4").await, Err(StorageError::KeyConflict(_))));
        assert!(matches!(store.get("c", None).await, Err(StorageError::NotFound(_))));
        store.delete("c").await.unwrap();
        assert_eq!(store.get_bytes("c/d", None).await.unwrap(), b"3");
        assert_eq!(std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }
}
