//! cunneng storage: how recordings and papers are kept.
//!
//! - [`format`](mod@format): the encrypted object format (envelope encryption, key commitment, chunked
//!   AEAD in the STREAM construction with random access). Specified in docs/storage-format.md.
//! - [`keys`]: key-encryption keys, the KEK file, rotation.
//! - [`store`]: the [`ObjectStore`] trait for where objects live; [`local`] is the
//!   local-directory backend.
//!
//! Plaintext never goes through a store: callers encrypt with [`Encryptor`] and put the
//! ciphertext. This crate knows nothing of calls, WebRTC or signaling.

pub mod error;
pub mod format;
pub mod keys;
pub mod local;
pub mod store;

#[cfg(any(test, feature = "test-support"))]
pub mod contract;

pub use error::{Result, StorageError};
pub use format::{
    Decryptor, EncryptOptions, EncryptWriter, Encryptor, Header, ObjectClass, ObjectId, ObjectInfo, OpenedObject,
    SeekableReader, open, rewrap, rewrap_header, seal,
};
pub use keys::{Kek, KeyRing, KeyStatus};
pub use local::LocalStore;
pub use store::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt};
