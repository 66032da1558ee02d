//! The one error type of this crate.
//!
//! Every way an encrypted object can be damaged has its own variant, so that `cunneng verify`
//! and `cunneng decrypt` can say *what* is wrong (see docs/storage-format.md, "Errors").

use std::io;
use std::path::PathBuf;

/// Result with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    // ---- object format: header ----
    /// The bytes do not start with the object magic.
    #[error("not an encrypted cunneng object (bad magic)")]
    NotAnObject,
    #[error("unsupported object format version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("unsupported cipher suite {0} (this build knows suite 1)")]
    UnsupportedSuite(u8),
    #[error("malformed object header: {0}")]
    MalformedHeader(&'static str),
    /// A class, object id or key id that the format does not allow.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName { what: &'static str, value: String, reason: &'static str },
    /// The header names another object than the one the caller asked for.
    #[error("object is {found}, expected {expected}")]
    WrongObject { expected: String, found: String },

    // ---- object format: keys ----
    /// The header's key id is not in the key ring (retired and removed, or another ring).
    #[error("no key-encryption key with id `{0}` in the key ring")]
    UnknownKeyId(String),
    /// The header's key is a retention-period key destroyed at the end of its period: the
    /// object (any copy of it) can no longer be decrypted, by design.
    #[error("the key `{key_id}` of this object was destroyed on {destroyed_at} at the end of its retention period")]
    KeyDestroyed { key_id: String, destroyed_at: String },
    /// The KEK named by the header does not unwrap the data key: a different key under the
    /// same id, or the header's bound fields (class, object id, key id, wrapped key) altered.
    #[error(
        "wrong key-encryption key `{key_id}`: it does not unwrap this object's data key (or the header was altered)"
    )]
    WrongKek { key_id: String },
    /// The unwrapped data key does not match the header's key commitment.
    #[error("key commitment mismatch: the data key does not match the commitment in the header")]
    KeyCommitmentMismatch,
    /// The header is valid but belongs to another object body (swapped header).
    #[error("header does not belong to this object body (swapped header)")]
    HeaderMismatch,

    // ---- object format: chunks ----
    /// The object ends before its final chunk: it was cut short.
    #[error("object truncated: it ends at byte {at} before its final chunk")]
    Truncated { at: u64 },
    /// A valid chunk at the wrong position: reordered, duplicated or missing chunks.
    #[error("chunk out of order: position {expected} holds chunk {found}")]
    ChunkOutOfOrder { expected: u32, found: u32 },
    /// A chunk whose tag does not verify: its bytes were altered.
    #[error("chunk {index} failed authentication (bad tag: the object was altered)")]
    ChunkAuthFailed { index: u32 },
    /// A chunk whose framing is impossible (bad flag byte, length over the chunk size).
    #[error("malformed chunk {index}: {reason}")]
    MalformedChunk { index: u32, reason: &'static str },
    /// Chunk `index` is marked final, yet another chunk follows it (two final chunks, or
    /// objects spliced together).
    #[error("chunk {index} is marked final but another chunk follows it")]
    FinalChunkNotLast { index: u32 },
    /// Bytes after the final chunk that are not a chunk.
    #[error("trailing data after the final chunk, from byte {at}")]
    TrailingData { at: u64 },
    #[error("chunk {index} does not exist: the object has {count} chunks")]
    ChunkIndexOutOfRange { index: u64, count: u32 },
    #[error("object too large for the format (more than 2^32 chunks)")]
    TooLarge,
    #[error("decryptor used after it reported an error")]
    DecryptorPoisoned,
    /// A ranged reader refuses objects whose chunks are larger than it may hold in memory.
    #[error("chunk size {chunk_size} of `{object_id}` is over this reader's limit of {limit} bytes")]
    ChunkSizeOverLimit { object_id: String, chunk_size: usize, limit: usize },

    // ---- key files ----
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("key file {path} is accessible by other users (mode {mode:o}); run chmod 600 on it")]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error("key file {0} already exists; use rotate to add a key")]
    KeyFileExists(PathBuf),
    #[error("the key ring has no active key")]
    NoActiveKey,
    #[error("key `{0}` is the active key and cannot be removed")]
    ActiveKeyRemoval(String),

    // ---- object stores ----
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("object `{0}` not found")]
    NotFound(String),
    #[error("range {start}..{end:?} is not satisfiable for `{key}` of {size} bytes")]
    InvalidRange { key: String, start: u64, end: Option<u64>, size: u64 },
    #[error("checksum mismatch for `{key}`: expected sha256 {expected}, received bytes hash to {actual}")]
    ChecksumMismatch { key: String, expected: String, actual: String },
    /// The key collides with another object's key used as a prefix ("a" vs "a/b") on a
    /// backend that maps keys to directories.
    #[error("object key `{0}` conflicts with an existing object or prefix on this backend")]
    KeyConflict(String),
    /// The object under `key` changed size between two reads of one ranged read (replaced,
    /// rewrapped under a key id of another length): start the read again.
    #[error("object `{key}` changed while it was being read ({was} bytes, now {now})")]
    ObjectChanged { key: String, was: u64, now: u64 },

    // ---- remote stores (S3) ----
    /// The store refused the request's credentials or signature (wrong access key id or
    /// secret, a key without rights on the bucket, a clock far off).
    #[error(
        "the object store rejected the credentials during {op} ({detail}): check the access key id and secret \
         (storage config or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the key's rights on the bucket"
    )]
    AccessDenied { op: String, detail: String },
    #[error("bucket `{0}` does not exist on the object store")]
    NoSuchBucket(String),
    /// The store could not be reached, timed out, or failed with a server error: try again later.
    #[error("object store unavailable during {op}: {detail}")]
    Unavailable { op: String, detail: String },
    /// Any other error the store answered with.
    #[error("object store error during {op}: {detail}")]
    Backend { op: String, detail: String },
    /// A stored object is not what was uploaded (size or hash read back differ).
    #[error("verification of `{key}` failed after upload: {detail}")]
    VerifyFailed { key: String, detail: String },
    #[error("storage configuration: {0}")]
    Config(String),

    // ---- spool ----
    /// The spool has no room for another object: the store has been unreachable for a while
    /// (see the spool metrics), or the quota is too small. Nothing was stored.
    #[error(
        "spool full: cannot accept `{key}`: {used_bytes} of {quota_bytes} bytes and {objects} of {max_objects} \
         objects in use, waiting for the object store"
    )]
    SpoolFull { key: String, used_bytes: u64, quota_bytes: u64, objects: u64, max_objects: u64 },
    /// The spool only takes encrypted objects: plaintext never reaches the disk.
    #[error("refusing to spool `{key}`: it is not an encrypted cunneng object")]
    NotEncrypted { key: String },

    // ---- retention ----
    /// An object of a case under legal hold cannot be destroyed.
    #[error("`{key}` belongs to case `{case_id}`, which is under legal hold")]
    UnderLegalHold { key: String, case_id: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        StorageError::Io { context: context.into(), source }
    }

    /// An `io::Error` produced by this crate's readers and writers carries a `StorageError`:
    /// get it back, or wrap a plain I/O error.
    pub fn from_io(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<StorageError>().expect("checked above");
        }
        StorageError::io("I/O", e)
    }

    /// Wrap for the `std::io::Read`/`Write`/`Seek` adapters ([`StorageError::from_io`] undoes it).
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            StorageError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }

    /// True for failures that may go away by themselves (store unreachable, timeouts, server
    /// errors, local I/O): worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. } | StorageError::Io { .. })
    }

    /// True for the variants that mean "the object's bytes are damaged or not what they claim",
    /// as opposed to a missing key, a missing object or an I/O failure.
    pub fn is_integrity_error(&self) -> bool {
        use StorageError::*;
        matches!(
            self,
            NotAnObject
                | UnsupportedVersion(_)
                | UnsupportedSuite(_)
                | MalformedHeader(_)
                | WrongObject { .. }
                | WrongKek { .. }
                | KeyCommitmentMismatch
                | HeaderMismatch
                | Truncated { .. }
                | ChunkOutOfOrder { .. }
                | ChunkAuthFailed { .. }
                | MalformedChunk { .. }
                | FinalChunkNotLast { .. }
                | TrailingData { .. }
                | ChecksumMismatch { .. }
                | VerifyFailed { .. }
        )
    }
}
