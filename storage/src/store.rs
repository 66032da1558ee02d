//! The object store abstraction: where encrypted objects live.
//!
//! Stores hold opaque bytes (already-encrypted objects); they never see plaintext or keys.
//! The trait is async (`async-trait`, so that `&dyn ObjectStore` works): the S3 backend is
//! naturally async, and the local backend does its file I/O through tokio's blocking pool.
//!
//! The contract every backend keeps (checked by `cunneng_storage::contract::run`, feature
//! `test-support`):
//! - keys are validated by [`validate_key`] before any I/O; an invalid key is
//!   [`StorageError::InvalidKey`] on every method;
//! - `put` streams the body, computes its SHA-256, and if an expected digest was given and does
//!   not match, fails with [`StorageError::ChecksumMismatch`] storing nothing; an object
//!   becomes visible under its key only complete (no partial objects, even after a crash), and
//!   a failed put leaves any previous object under that key untouched;
//! - `get` of a missing key is [`StorageError::NotFound`]; a range is `start..end` with `end`
//!   clamped to the size; `start == size` gives an empty body, `start > size` or
//!   `start > end` is [`StorageError::InvalidRange`];
//! - `delete` is idempotent (deleting a missing key is `Ok`);
//! - `list(prefix)` is a plain string-prefix match (not a directory walk), sorted by key
//!   bytewise, with sizes.

use std::fmt;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, StorageError};

/// Longest allowed object key, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// A byte range `start..end` (end exclusive; `None` = to the end of the object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    pub fn new(start: u64, end: u64) -> Self {
        ByteRange { start, end: Some(end) }
    }

    pub fn from(start: u64) -> Self {
        ByteRange { start, end: None }
    }

    /// Resolve against an object size per the contract.
    pub fn resolve(range: Option<ByteRange>, key: &str, size: u64) -> Result<std::ops::Range<u64>> {
        let Some(r) = range else { return Ok(0..size) };
        let end = r.end.unwrap_or(size).min(size);
        if r.start > size || r.end.is_some_and(|e| r.start > e) {
            return Err(StorageError::InvalidRange { key: key.to_owned(), start: r.start, end: r.end, size });
        }
        Ok(r.start..end)
    }
}

/// What a store knows about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// SHA-256 of the whole object, where the store keeps it (the S3 backend stores the
    /// digest it verified in the object's metadata; [`ObjectStore::list`] never fills it).
    pub sha256: Option<[u8; 32]>,
}

/// The result of a successful put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    pub size: u64,
    /// SHA-256 of the stored bytes, computed while streaming them.
    pub sha256: [u8; 32],
}

/// A body being read.
pub struct GetObject {
    /// Size of the whole object.
    pub size: u64,
    /// The part of the object that `body` yields.
    pub range: std::ops::Range<u64>,
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

impl fmt::Debug for GetObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetObject").field("size", &self.size).field("range", &self.range).finish_non_exhaustive()
    }
}

impl GetObject {
    /// Read the whole body into memory.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity((self.range.end - self.range.start) as usize);
        self.body.read_to_end(&mut v).await.map_err(|e| StorageError::io("reading object body", e))?;
        Ok(v)
    }
}

/// [`StorageError::ChecksumMismatch`] unless `actual` is the `expected` digest (when one is
/// expected): every backend's check before an object becomes visible.
pub(crate) fn check_sha256(key: &str, expected: Option<[u8; 32]>, actual: [u8; 32]) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(StorageError::ChecksumMismatch {
            key: key.to_owned(),
            expected: hex::encode(e),
            actual: hex::encode(actual),
        }),
        _ => Ok(()),
    }
}

/// A place that keeps objects under string keys. See the module docs for the contract.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Store the bytes read from `body` under `key`, replacing any object there.
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<PutReceipt>;

    /// Read an object, or part of it.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject>;

    /// Size and time of an object; [`StorageError::NotFound`] if there is none.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Remove an object; `Ok` if it did not exist.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every object whose key starts with `prefix` (which may be empty), sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Copy the object `from` to `to` (replacing any object there). The default streams it
    /// through this process; backends with a server-side copy override it.
    async fn copy(&self, from: &str, to: &str) -> Result<PutReceipt> {
        validate_key(to)?;
        let src = self.get(from, None).await?;
        let mut body = src.body;
        let expected = self.head(from).await?.sha256;
        self.put(to, &mut body, expected).await
    }

    /// Remove what interrupted uploads left behind (incomplete multipart uploads, temp files)
    /// that is older than `older_than`; how many were removed. Run at start-up.
    async fn cleanup_incomplete_uploads(&self, older_than: std::time::Duration) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }

    /// Convenience: put a byte slice.
    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<PutReceipt> {
        let mut r = bytes;
        self.put(key, &mut r, Some(sha256(bytes))).await
    }

    /// Convenience: get a whole object or range into memory.
    async fn get_bytes(&self, key: &str, range: Option<ByteRange>) -> Result<Vec<u8>> {
        self.get(key, range).await?.bytes().await
    }
}

/// SHA-256 of a byte slice.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Check an object key: 1..=1024 bytes; `/`-separated segments, none empty and none starting
/// with `.` (so no `.`, `..`, hidden files or backend temp names); no leading or trailing `/`,
/// no backslash, no NUL or other control characters.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| Err(StorageError::InvalidKey { key: key.to_owned(), reason });
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if key.chars().any(char::is_control) {
        return bad("contains NUL or another control character");
    }
    if key.contains('\\') {
        return bad("contains a backslash");
    }
    if key.starts_with('/') {
        return bad("absolute (starts with '/')");
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return bad("empty path segment (\"//\" or trailing '/')");
        }
        if seg == "." || seg == ".." {
            return bad("'.' or '..' path segment");
        }
        if seg.starts_with('.') {
            return bad("path segment starts with '.'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for good in ["a", "calls/2025/03/01/c1/p1/seg-000001.cne", "a-b_c=d+e@f", "中文/名字", "x.y"] {
            validate_key(good).unwrap();
        }
        for bad in
            ["", "/abs", "../x", "a/../b", "a/./b", "a//b", "a/", ".hidden", "a/.tmp/x", "a\0b", "a\nb", "a\\b", ".."]
        {
            assert!(matches!(validate_key(bad), Err(StorageError::InvalidKey { .. })), "{bad:?} accepted");
        }
        assert!(validate_key(&"k".repeat(1025)).is_err());
        validate_key(&"k".repeat(1024)).unwrap();
    }

    #[test]
    fn ranges() {
        let r = |s, e| Some(ByteRange { start: s, end: e });
        assert_eq!(ByteRange::resolve(None, "k", 10).unwrap(), 0..10);
        assert_eq!(ByteRange::resolve(r(2, Some(5)), "k", 10).unwrap(), 2..5);
        assert_eq!(ByteRange::resolve(r(2, Some(50)), "k", 10).unwrap(), 2..10);
        assert_eq!(ByteRange::resolve(r(10, None), "k", 10).unwrap(), 10..10);
        assert!(ByteRange::resolve(r(11, None), "k", 10).is_err());
        assert!(ByteRange::resolve(r(5, Some(4)), "k", 10).is_err());
    }
}
