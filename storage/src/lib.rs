//! cunneng storage: how recordings and papers are kept.
//!
//! - [`format`](mod@format): the encrypted object format (envelope encryption, key commitment, chunked
//!   AEAD in the STREAM construction with random access). Specified in docs/storage-format.md.
//! - [`keys`]: key-encryption keys, the KEK file, rotation.
//! - [`period`]: retention-period keys, destroyed at expiry so that no copy of an expired
//!   object decrypts.
//! - [`store`]: the [`ObjectStore`] trait for where objects live; [`local`] is the
//!   local-directory backend, [`s3`] the S3 backend (Garage, AWS, …).
//! - [`spool`]: the durable local spool in front of a store (outages, backoff, quota).
//! - [`ranged`]: reading a byte range of an object's plaintext from a store by ranged reads,
//!   chunk by chunk, without reading the whole object.
//! - [`retention`]: retention periods, legal holds, destruction records, lifecycle rules.
//!
//! Operating it: docs/storage-operations.md.
//!
//! Plaintext never goes through a store: callers encrypt with [`Encryptor`] and put the
//! ciphertext. This crate knows nothing of calls, WebRTC or signaling.

pub mod error;
pub mod format;
pub mod keys;
pub mod local;
pub mod period;
pub mod ranged;
pub mod retention;
pub mod s3;
pub mod spool;
pub mod store;

#[cfg(any(test, feature = "test-support"))]
pub mod contract;

pub use error::{Result, StorageError};
pub use format::{
    Decryptor, EncryptOptions, EncryptWriter, Encryptor, Header, ObjectClass, ObjectId, ObjectInfo, OpenedObject,
    SeekableReader, open, rewrap, rewrap_header, seal,
};
pub use keys::{Kek, KeyRing, KeyStatus, MoreKeys, write_private};
pub use local::LocalStore;
pub use period::{PeriodKeyInfo, PeriodKeys, is_period_key_id};
pub use ranged::{RangeOptions, RangeReader, RangedObject};
pub use retention::{DestructionLog, DestructionRecord, ObjectRecord, RetentionConfig, RetentionPlan, RetentionPolicy};
pub use s3::{LifecycleOutcome, LifecycleRule, S3Config, S3Credentials, S3Store};
pub use spool::{Spool, SpoolConfig, SpoolMetrics};
pub use store::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt};
