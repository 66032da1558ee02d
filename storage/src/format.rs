//! The encrypted object format, version 1. The normative description, with the reasons, is
//! docs/storage-format.md; this module is its implementation.
//!
//! ```text
//! object = header ‖ link ‖ record_0 ‖ … ‖ record_{n-1}
//! header = magic "CUNNENG\0" ‖ version 1 ‖ suite 1 ‖ chunk_log2 ‖ class_len u8 ‖ class
//!          ‖ object_id_len u16be ‖ object_id ‖ nonce_prefix[7] ‖ commitment[32]
//!          ‖ key_id_len u8 ‖ key_id ‖ wrap_nonce[12] ‖ wrapped_data_key[48]
//! link   = commitment[0..16]
//! record = index u32be ‖ final u8 ‖ plaintext_len u32be ‖ ciphertext ‖ tag[16]
//! ```
//!
//! Everything up to and including `nonce_prefix` is the object *context*: it is bound into the
//! associated data of the key wrap and of every chunk, and into the HKDF info of the chunk key
//! and of the key commitment. A rewrap changes only `key_id`, `wrap_nonce` and
//! `wrapped_data_key`.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, StorageError};
use crate::keys::{Kek, KeyRing, MAX_KEY_ID_LEN, validate_key_id};

/// First 8 bytes of every object.
pub const MAGIC: [u8; 8] = *b"CUNNENG\0";
/// Format version written by this build.
pub const VERSION: u8 = 1;
/// Suite 1: AES-256-GCM key wrap, HKDF-SHA-256, AES-256-GCM STREAM chunks.
pub const SUITE_AES256GCM_HKDF_SHA256: u8 = 1;
/// Default plaintext chunk size: 2^16 = 64 KiB.
pub const DEFAULT_CHUNK_LOG2: u8 = 16;
/// Smallest allowed chunk size (2^6 = 64 bytes; only useful in tests).
pub const MIN_CHUNK_LOG2: u8 = 6;
/// Largest allowed chunk size (2^24 = 16 MiB).
pub const MAX_CHUNK_LOG2: u8 = 24;
pub const MAX_CLASS_LEN: usize = 32;
pub const MAX_OBJECT_ID_LEN: usize = 1024;
pub const NONCE_PREFIX_LEN: usize = 7;
pub const COMMITMENT_LEN: usize = 32;
pub const WRAP_NONCE_LEN: usize = 12;
pub const WRAPPED_KEY_LEN: usize = DATA_KEY_LEN + TAG_LEN;
pub const DATA_KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
/// Bytes after the header that tie the body to it: the first 16 bytes of the commitment.
pub const LINK_LEN: usize = 16;
/// `index u32 ‖ final u8 ‖ plaintext_len u32`.
pub const RECORD_HEADER_LEN: usize = 9;
/// Per-chunk overhead: record header and tag.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;
/// Longest possible header.
pub const MAX_HEADER_LEN: usize = 12
    + MAX_CLASS_LEN
    + 2
    + MAX_OBJECT_ID_LEN
    + NONCE_PREFIX_LEN
    + COMMITMENT_LEN
    + 1
    + MAX_KEY_ID_LEN
    + WRAP_NONCE_LEN
    + WRAPPED_KEY_LEN;
/// Read this many bytes (or the whole object if shorter) to open an object for random access.
pub const MAX_PRELUDE_LEN: usize = MAX_HEADER_LEN + LINK_LEN;

const LABEL_WRAP: &[u8] = b"cunneng-storage/v1/wrap\0";
const LABEL_CHUNK: &[u8] = b"cunneng-storage/v1/chunk\0";
const LABEL_CHUNK_KEY: &[u8] = b"cunneng-storage/v1/chunk-key\0";
const LABEL_COMMITMENT: &[u8] = b"cunneng-storage/v1/commitment\0";
const LABEL_PLAINTEXT_TAG: &[u8] = b"cunneng-storage/v1/plaintext-tag\0";

const FLAG_MORE: u8 = 0;
const FLAG_FINAL: u8 = 1;

/// What kind of object this is; it decides retention and is bound into the ciphertext.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectClass(Cow<'static, str>);

impl ObjectClass {
    /// Call media (recording segments and archive copies).
    pub const MEDIA: ObjectClass = ObjectClass(Cow::Borrowed("media"));
    /// Papers: documents and photos handed in for a case.
    pub const PAPERS: ObjectClass = ObjectClass(Cow::Borrowed("papers"));
    /// Recording manifests.
    pub const MANIFEST: ObjectClass = ObjectClass(Cow::Borrowed("manifest"));

    /// 1..=32 bytes of `[a-z0-9_-]`.
    pub fn new(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= MAX_CLASS_LEN
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(StorageError::InvalidName {
                what: "object class",
                value: name.to_owned(),
                reason: "must be 1 to 32 bytes of a-z, 0-9, '-' and '_'",
            });
        }
        Ok(ObjectClass(Cow::Owned(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of an object (typically its store key): 1..=1024 bytes of UTF-8 without
/// control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let reason = if id.is_empty() || id.len() > MAX_OBJECT_ID_LEN {
            "must be 1 to 1024 bytes"
        } else if id.chars().any(char::is_control) {
            "must not contain control characters"
        } else {
            return Ok(ObjectId(id));
        };
        Err(StorageError::InvalidName { what: "object id", value: id, reason })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed object header. Nothing in it is secret (the data key is wrapped).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    pub class: ObjectClass,
    pub object_id: ObjectId,
    pub chunk_log2: u8,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub commitment: [u8; COMMITMENT_LEN],
    pub key_id: String,
    pub wrap_nonce: [u8; WRAP_NONCE_LEN],
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("class", &self.class)
            .field("object_id", &self.object_id)
            .field("chunk_size", &self.chunk_size())
            .field("key_id", &self.key_id)
            .field("commitment", &hex::encode(&self.commitment[..8]))
            .finish_non_exhaustive()
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos + n;
        if end > self.buf.len() {
            return Err(StorageError::Truncated { at: self.buf.len() as u64 });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
}

impl Header {
    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_log2
    }

    /// A public name for this object's plaintext, 32 lower-case hex digits:
    /// `SHA-256("cunneng-storage/v1/plaintext-tag\0" ‖ commitment)[0..16]`. Two objects with the
    /// same tag have the same data key and context, so their bodies open to the same plaintext;
    /// every newly sealed object has its own (random data key); a rewrap keeps it (the
    /// commitment stays). It says nothing about the data key. An HTTP entity tag (strong
    /// validator) for the plaintext, for instance.
    pub fn plaintext_tag(&self) -> String {
        use sha2::Digest;
        let digest = Sha256::new().chain_update(LABEL_PLAINTEXT_TAG).chain_update(self.commitment).finalize();
        hex::encode(&digest[..16])
    }

    /// Parse a header from the start of `buf`; returns it and its length. A `buf` too short
    /// gives [`StorageError::Truncated`] (a streaming reader then waits for more bytes).
    pub fn parse(buf: &[u8]) -> Result<(Header, usize)> {
        let mut c = Cursor { buf, pos: 0 };
        // Check the magic on what is there, so that a short non-object is not "truncated".
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Err(StorageError::NotAnObject);
        }
        c.take(MAGIC.len())?;
        let version = c.u8()?;
        if version != VERSION {
            return Err(StorageError::UnsupportedVersion(version));
        }
        let suite = c.u8()?;
        if suite != SUITE_AES256GCM_HKDF_SHA256 {
            return Err(StorageError::UnsupportedSuite(suite));
        }
        let chunk_log2 = c.u8()?;
        if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&chunk_log2) {
            return Err(StorageError::MalformedHeader("chunk size out of range"));
        }
        let class_len = c.u8()? as usize;
        if class_len == 0 || class_len > MAX_CLASS_LEN {
            return Err(StorageError::MalformedHeader("class length out of range"));
        }
        let class = std::str::from_utf8(c.take(class_len)?)
            .ok()
            .and_then(|s| ObjectClass::new(s).ok())
            .ok_or(StorageError::MalformedHeader("invalid class"))?;
        let id_len = u16::from_be_bytes(c.array()?) as usize;
        if id_len == 0 || id_len > MAX_OBJECT_ID_LEN {
            return Err(StorageError::MalformedHeader("object id length out of range"));
        }
        let object_id = std::str::from_utf8(c.take(id_len)?)
            .ok()
            .and_then(|s| ObjectId::new(s).ok())
            .ok_or(StorageError::MalformedHeader("invalid object id"))?;
        let nonce_prefix = c.array()?;
        let commitment = c.array()?;
        let key_id_len = c.u8()? as usize;
        if key_id_len == 0 || key_id_len > MAX_KEY_ID_LEN {
            return Err(StorageError::MalformedHeader("key id length out of range"));
        }
        let key_id = std::str::from_utf8(c.take(key_id_len)?)
            .ok()
            .filter(|s| validate_key_id(s).is_ok())
            .ok_or(StorageError::MalformedHeader("invalid key id"))?
            .to_owned();
        let wrap_nonce = c.array()?;
        let wrapped_key = c.array()?;
        Ok((Header { class, object_id, chunk_log2, nonce_prefix, commitment, key_id, wrap_nonce, wrapped_key }, c.pos))
    }

    /// Bytes from the magic through the nonce prefix: the object context.
    fn context(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.object_id.0.len());
        v.extend_from_slice(&MAGIC);
        v.extend_from_slice(&[VERSION, SUITE_AES256GCM_HKDF_SHA256, self.chunk_log2, self.class.0.len() as u8]);
        v.extend_from_slice(self.class.0.as_bytes());
        v.extend_from_slice(&(self.object_id.0.len() as u16).to_be_bytes());
        v.extend_from_slice(self.object_id.0.as_bytes());
        v.extend_from_slice(&self.nonce_prefix);
        v
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.context();
        v.extend_from_slice(&self.commitment);
        v.push(self.key_id.len() as u8);
        v.extend_from_slice(self.key_id.as_bytes());
        v.extend_from_slice(&self.wrap_nonce);
        v.extend_from_slice(&self.wrapped_key);
        v
    }

    pub fn encoded_len(&self) -> usize {
        12 + self.class.0.len()
            + 2
            + self.object_id.0.len()
            + NONCE_PREFIX_LEN
            + COMMITMENT_LEN
            + 1
            + self.key_id.len()
            + WRAP_NONCE_LEN
            + WRAPPED_KEY_LEN
    }

    fn wrap_aad(&self, ctx: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(LABEL_WRAP.len() + ctx.len() + 1 + self.key_id.len());
        aad.extend_from_slice(LABEL_WRAP);
        aad.extend_from_slice(ctx);
        aad.push(self.key_id.len() as u8);
        aad.extend_from_slice(self.key_id.as_bytes());
        aad
    }

    /// Wrap `data_key` under `kek` into this header (sets key id, wrap nonce, wrapped key).
    fn wrap<R: RngCore + CryptoRng + ?Sized>(&mut self, kek: &Kek, data_key: &[u8; DATA_KEY_LEN], rng: &mut R) {
        self.key_id = kek.id().to_owned();
        rng.fill_bytes(&mut self.wrap_nonce);
        let aad = self.wrap_aad(&self.context());
        let mut buf = Zeroizing::new(*data_key);
        let tag = Aes256Gcm::new(&(*kek.key_bytes()).into())
            .encrypt_inout_detached(&Nonce::from(self.wrap_nonce), &aad, (&mut buf[..]).into())
            .expect("32-byte message fits AES-GCM limits");
        self.wrapped_key[..DATA_KEY_LEN].copy_from_slice(&buf[..]);
        self.wrapped_key[DATA_KEY_LEN..].copy_from_slice(&tag);
    }

    /// Unwrap the data key with the ring's KEK for this header, check the key commitment,
    /// and derive the chunk cipher.
    fn unlock(&self, ring: &KeyRing) -> Result<(Zeroizing<[u8; DATA_KEY_LEN]>, ChunkCipher)> {
        let kek = ring.unwrapping_key(&self.key_id)?;
        let ctx = self.context();
        let aad = self.wrap_aad(&ctx);
        let mut dk = Zeroizing::new([0u8; DATA_KEY_LEN]);
        dk.copy_from_slice(&self.wrapped_key[..DATA_KEY_LEN]);
        let tag = Tag::try_from(&self.wrapped_key[DATA_KEY_LEN..]).expect("16 bytes");
        Aes256Gcm::new(&(*kek.key_bytes()).into())
            .decrypt_inout_detached(&Nonce::from(self.wrap_nonce), &aad, (&mut dk[..]).into(), &tag)
            .map_err(|_| StorageError::WrongKek { key_id: self.key_id.clone() })?;
        let (cipher, commitment) = ChunkCipher::derive(&dk, self, &ctx);
        if !constant_time_eq(&commitment, &self.commitment) {
            return Err(StorageError::KeyCommitmentMismatch);
        }
        Ok((dk, cipher))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The per-object chunk key, nonce prefix and associated data.
struct ChunkCipher {
    aead: Aes256Gcm,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
    chunk_size: usize,
}

impl ChunkCipher {
    /// HKDF-SHA-256 from the data key: (chunk cipher, commitment).
    fn derive(dk: &[u8; DATA_KEY_LEN], h: &Header, ctx: &[u8]) -> (ChunkCipher, [u8; COMMITMENT_LEN]) {
        let hk = Hkdf::<Sha256>::new(None, dk);
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[LABEL_CHUNK_KEY, ctx], &mut key[..]).expect("32 bytes is a valid HKDF length");
        let mut commitment = [0u8; COMMITMENT_LEN];
        hk.expand_multi_info(&[LABEL_COMMITMENT, ctx], &mut commitment).expect("32 bytes is a valid HKDF length");
        let mut aad = Vec::with_capacity(LABEL_CHUNK.len() + ctx.len() + COMMITMENT_LEN);
        aad.extend_from_slice(LABEL_CHUNK);
        aad.extend_from_slice(ctx);
        aad.extend_from_slice(&commitment);
        let aead = Aes256Gcm::new(&(*key).into());
        (ChunkCipher { aead, nonce_prefix: h.nonce_prefix, aad, chunk_size: h.chunk_size() }, commitment)
    }

    fn nonce(&self, index: u32, flag: u8) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[7..11].copy_from_slice(&index.to_be_bytes());
        n[11] = flag;
        Nonce::from(n)
    }

    /// Append the record for `plaintext` to `out`.
    fn seal_record(&self, index: u32, last: bool, plaintext: &[u8], out: &mut Vec<u8>) {
        debug_assert!(plaintext.len() <= self.chunk_size && (last || plaintext.len() == self.chunk_size));
        let flag = if last { FLAG_FINAL } else { FLAG_MORE };
        out.extend_from_slice(&index.to_be_bytes());
        out.push(flag);
        out.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_inout_detached(&self.nonce(index, flag), &self.aad, (&mut out[start..]).into())
            .expect("chunk fits AES-GCM limits");
        out.extend_from_slice(&tag);
    }

    /// Authenticate `ct ‖ tag` for (index, flag) and append the plaintext to `out`.
    /// On failure `out` is left as it was.
    fn try_open(&self, index: u32, flag: u8, ct_and_tag: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(ct_len) = ct_and_tag.len().checked_sub(TAG_LEN) else { return false };
        let tag = Tag::try_from(&ct_and_tag[ct_len..]).expect("16 bytes");
        let start = out.len();
        out.extend_from_slice(&ct_and_tag[..ct_len]);
        match self.aead.decrypt_inout_detached(&self.nonce(index, flag), &self.aad, (&mut out[start..]).into(), &tag) {
            Ok(()) => true,
            Err(_) => {
                out.truncate(start);
                false
            }
        }
    }
}

/// A record header: `index ‖ flag ‖ plaintext_len`.
#[derive(Clone, Copy, Debug)]
struct RecordHeader {
    index: u32,
    flag: u8,
    len: usize,
}

impl RecordHeader {
    fn parse(b: &[u8]) -> RecordHeader {
        RecordHeader {
            index: u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")),
            flag: b[4],
            len: u32::from_be_bytes(b[5..9].try_into().expect("4 bytes")) as usize,
        }
    }

    /// Framing rules that need no key.
    fn check(&self, position: u32, chunk_size: usize) -> Result<()> {
        let reason = if self.flag != FLAG_MORE && self.flag != FLAG_FINAL {
            "flag byte is neither 0 nor 1"
        } else if self.len > chunk_size {
            "length exceeds the chunk size"
        } else if self.flag == FLAG_MORE && self.len != chunk_size {
            "a non-final chunk must be full"
        } else {
            return Ok(());
        };
        Err(StorageError::MalformedChunk { index: position, reason })
    }

    /// Could these 9 bytes start a record of this object? (Used to tell a second final chunk
    /// from trailing garbage.)
    fn plausible(&self, chunk_size: usize) -> bool {
        (self.flag == FLAG_FINAL && self.len <= chunk_size) || (self.flag == FLAG_MORE && self.len == chunk_size)
    }
}

impl ChunkCipher {
    /// Check and decrypt one whole record that should be chunk `expected`. `must_be_final`:
    /// `Some(true)` for the last record of the object, `Some(false)` for the others, `None`
    /// when the stream decides (sequential decryption). Returns the flag.
    fn open_record(
        &self,
        expected: u32,
        rh: RecordHeader,
        ct_and_tag: &[u8],
        must_be_final: Option<bool>,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        rh.check(expected, self.chunk_size)?;
        if ct_and_tag.len() != rh.len + TAG_LEN {
            return Err(StorageError::MalformedChunk { index: expected, reason: "length does not match the record" });
        }
        if rh.index != expected {
            // A genuine chunk of this object at the wrong place, or a damaged index field?
            let mut scratch = Vec::new();
            if self.try_open(rh.index, rh.flag, ct_and_tag, &mut scratch) {
                return Err(StorageError::ChunkOutOfOrder { expected, found: rh.index });
            }
            return Err(StorageError::ChunkAuthFailed { index: expected });
        }
        if !self.try_open(expected, rh.flag, ct_and_tag, out) {
            return Err(StorageError::ChunkAuthFailed { index: expected });
        }
        let is_final = rh.flag == FLAG_FINAL;
        match must_be_final {
            Some(true) if !is_final => Err(StorageError::Truncated { at: 0 }), // caller fills `at`
            Some(false) if is_final => Err(StorageError::FinalChunkNotLast { index: expected }),
            _ => Ok(is_final),
        }
    }
}

/// Options for new objects.
#[derive(Clone, Copy, Debug)]
pub struct EncryptOptions {
    /// Plaintext chunk size as a power of two, [`MIN_CHUNK_LOG2`]..=[`MAX_CHUNK_LOG2`].
    pub chunk_log2: u8,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions { chunk_log2: DEFAULT_CHUNK_LOG2 }
    }
}

/// Streaming encryption of one object: feed plaintext in pieces of any size with
/// [`Encryptor::update`], end with [`Encryptor::finish`]. Holds at most one chunk of
/// plaintext; each call appends the ciphertext that is ready to `out` (the first call also
/// the header). The output is deterministic given the RNG, whatever the piece sizes.
pub struct Encryptor {
    header: Header,
    cipher: ChunkCipher,
    pending: Vec<u8>,
    next_index: u32,
    prelude_written: bool,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor").field("header", &self.header).field("next_index", &self.next_index).finish()
    }
}

impl Encryptor {
    /// A new object under `kek` with the default chunk size and the OS random generator.
    pub fn new(kek: &Kek, class: ObjectClass, object_id: ObjectId) -> Result<Self> {
        Self::with_options(kek, class, object_id, EncryptOptions::default(), &mut rand::rngs::OsRng)
    }

    /// Full control: chunk size and the random source (the data key, nonce prefix and wrap
    /// nonce all come from `rng`; tests pass a seeded generator for reproducible vectors).
    pub fn with_options<R: RngCore + CryptoRng + ?Sized>(
        kek: &Kek,
        class: ObjectClass,
        object_id: ObjectId,
        options: EncryptOptions,
        rng: &mut R,
    ) -> Result<Self> {
        if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&options.chunk_log2) {
            return Err(StorageError::InvalidName {
                what: "chunk_log2",
                value: options.chunk_log2.to_string(),
                reason: "must be 6 to 24",
            });
        }
        let mut dk = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rng.fill_bytes(&mut dk[..]);
        let mut header = Header {
            class,
            object_id,
            chunk_log2: options.chunk_log2,
            nonce_prefix: [0; NONCE_PREFIX_LEN],
            commitment: [0; COMMITMENT_LEN],
            key_id: String::new(),
            wrap_nonce: [0; WRAP_NONCE_LEN],
            wrapped_key: [0; WRAPPED_KEY_LEN],
        };
        rng.fill_bytes(&mut header.nonce_prefix);
        let (cipher, commitment) = ChunkCipher::derive(&dk, &header, &header.context());
        header.commitment = commitment;
        header.wrap(kek, &dk, rng);
        let chunk = header.chunk_size();
        Ok(Encryptor { header, cipher, pending: Vec::with_capacity(chunk), next_index: 0, prelude_written: false })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn write_prelude(&mut self, out: &mut Vec<u8>) {
        if !self.prelude_written {
            out.extend_from_slice(&self.header.encode());
            out.extend_from_slice(&self.header.commitment[..LINK_LEN]);
            self.prelude_written = true;
        }
    }

    /// Encrypt more plaintext; complete chunks are appended to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.write_prelude(out);
        let chunk = self.cipher.chunk_size;
        while !data.is_empty() {
            if self.pending.len() == chunk {
                // More data follows, so the pending full chunk is not the last one.
                if self.next_index == u32::MAX {
                    return Err(StorageError::TooLarge);
                }
                self.cipher.seal_record(self.next_index, false, &self.pending, out);
                self.next_index += 1;
                self.pending.clear();
            }
            if self.pending.is_empty() && data.len() > chunk {
                // Fast path: whole chunks straight from the input.
                if self.next_index == u32::MAX {
                    return Err(StorageError::TooLarge);
                }
                self.cipher.seal_record(self.next_index, false, &data[..chunk], out);
                self.next_index += 1;
                data = &data[chunk..];
                continue;
            }
            let take = (chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Encrypt what is pending as the final chunk (empty if the object is empty).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Header> {
        self.write_prelude(out);
        self.cipher.seal_record(self.next_index, true, &self.pending, out);
        Ok(self.header)
    }
}

/// Encrypt a whole object in memory under `kek` (normally `ring.active()`).
pub fn seal(kek: &Kek, class: ObjectClass, object_id: ObjectId, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut enc = Encryptor::new(kek, class, object_id)?;
    let mut out = Vec::with_capacity(sealed_len(plaintext.len() as u64, DEFAULT_CHUNK_LOG2, enc.header()) as usize);
    enc.update(plaintext, &mut out)?;
    enc.finish(&mut out)?;
    Ok(out)
}

/// Size of the object that `plaintext_len` bytes encrypt to with this header.
pub fn sealed_len(plaintext_len: u64, chunk_log2: u8, header: &Header) -> u64 {
    let chunk = 1u64 << chunk_log2;
    let chunks = plaintext_len.div_ceil(chunk).max(1);
    header.encoded_len() as u64 + LINK_LEN as u64 + plaintext_len + chunks * RECORD_OVERHEAD as u64
}

/// What a completed decryption saw.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    pub header: Header,
    pub plaintext_len: u64,
    pub chunks: u32,
}

enum DecState {
    Prelude(Vec<u8>),
    Body { pending: Option<RecordHeader> },
    Final,
    Failed,
}

/// Streaming decryption and verification of one object. Feed ciphertext in pieces of any size
/// with [`Decryptor::update`]; each authenticated chunk's plaintext is appended to `out`.
/// **The stream is complete and authentic only when [`Decryptor::finish`] returns `Ok`**:
/// truncation at a chunk boundary is detected there. Holds at most one record.
pub struct Decryptor<'k> {
    ring: &'k KeyRing,
    expect: Option<(ObjectClass, ObjectId)>,
    state: DecState,
    header: Option<Header>,
    cipher: Option<ChunkCipher>,
    buf: Vec<u8>,
    next_index: u32,
    consumed: u64,
    plaintext_len: u64,
}

impl fmt::Debug for Decryptor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor").field("header", &self.header).field("next_index", &self.next_index).finish()
    }
}

impl<'k> Decryptor<'k> {
    pub fn new(ring: &'k KeyRing) -> Self {
        Decryptor {
            ring,
            expect: None,
            state: DecState::Prelude(Vec::new()),
            header: None,
            cipher: None,
            buf: Vec::new(),
            next_index: 0,
            consumed: 0,
            plaintext_len: 0,
        }
    }

    /// Fail with [`StorageError::WrongObject`] unless the header names this class and id.
    pub fn expect(mut self, class: ObjectClass, object_id: ObjectId) -> Self {
        self.expect = Some((class, object_id));
        self
    }

    /// The header, once it has been read and unlocked.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let r = self.update_inner(data, out);
        if r.is_err() {
            self.state = DecState::Failed;
        }
        r
    }

    fn update_inner(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                DecState::Failed => return Err(StorageError::DecryptorPoisoned),
                DecState::Prelude(buf) => {
                    let take = (MAX_PRELUDE_LEN - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let buf = std::mem::take(buf);
                    match open_prelude(self.ring, &buf, self.expect.as_ref()) {
                        Ok((header, cipher, used)) => {
                            self.consumed = used as u64;
                            self.header = Some(header);
                            self.cipher = Some(cipher);
                            self.state = DecState::Body { pending: None };
                            self.update_inner(&buf[used..], out)?;
                        }
                        Err(StorageError::Truncated { .. }) if buf.len() < MAX_PRELUDE_LEN => {
                            self.state = DecState::Prelude(buf);
                        }
                        Err(e) => return Err(e),
                    }
                }
                DecState::Body { pending } => {
                    let cipher = self.cipher.as_ref().expect("set with the header");
                    let want = match pending {
                        None => RECORD_HEADER_LEN,
                        Some(rh) => rh.len.min(cipher.chunk_size) + TAG_LEN,
                    };
                    let unit: &[u8] = if self.buf.is_empty() && data.len() >= want {
                        let (u, rest) = data.split_at(want);
                        data = rest;
                        u
                    } else {
                        let take = (want - self.buf.len()).min(data.len());
                        self.buf.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if self.buf.len() < want {
                            continue;
                        }
                        &self.buf
                    };
                    match *pending {
                        None => {
                            let rh = RecordHeader::parse(unit);
                            rh.check(self.next_index, cipher.chunk_size)?;
                            *pending = Some(rh);
                        }
                        Some(rh) => {
                            let before = out.len();
                            let is_final = cipher.open_record(self.next_index, rh, unit, None, out)?;
                            self.plaintext_len += (out.len() - before) as u64;
                            *pending = None;
                            if is_final {
                                self.state = DecState::Final;
                            } else {
                                self.next_index += 1;
                            }
                        }
                    }
                    self.consumed += want as u64;
                    self.buf.clear();
                }
                DecState::Final => {
                    // Anything after the final chunk is an error; look at up to one record
                    // header's worth to say which.
                    let take = (RECORD_HEADER_LEN - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.buf.len() == RECORD_HEADER_LEN {
                        return Err(self.after_final_error());
                    }
                }
            }
        }
        Ok(())
    }

    fn after_final_error(&self) -> StorageError {
        let chunk = self.cipher.as_ref().map_or(0, |c| c.chunk_size);
        if self.buf.len() == RECORD_HEADER_LEN && RecordHeader::parse(&self.buf).plausible(chunk) {
            StorageError::FinalChunkNotLast { index: self.next_index }
        } else {
            StorageError::TrailingData { at: self.consumed }
        }
    }

    /// End of input: succeeds only if the final chunk was seen and nothing follows it.
    pub fn finish(self) -> Result<ObjectInfo> {
        match self.state {
            DecState::Failed => Err(StorageError::DecryptorPoisoned),
            DecState::Prelude(buf) => match open_prelude(self.ring, &buf, self.expect.as_ref()) {
                Ok(_) => Err(StorageError::Truncated { at: buf.len() as u64 }),
                Err(StorageError::Truncated { .. }) => Err(StorageError::Truncated { at: buf.len() as u64 }),
                Err(e) => Err(e),
            },
            DecState::Body { .. } => Err(StorageError::Truncated { at: self.consumed + self.buf.len() as u64 }),
            DecState::Final if !self.buf.is_empty() => Err(self.after_final_error()),
            DecState::Final => Ok(ObjectInfo {
                header: self.header.expect("set with the header"),
                plaintext_len: self.plaintext_len,
                chunks: self.next_index + 1,
            }),
        }
    }
}

/// Parse the header and link at the start of `buf`, unlock the data key.
fn open_prelude(
    ring: &KeyRing,
    buf: &[u8],
    expect: Option<&(ObjectClass, ObjectId)>,
) -> Result<(Header, ChunkCipher, usize)> {
    let (header, hlen) = Header::parse(buf)?;
    if let Some((class, id)) = expect
        && (class != &header.class || id != &header.object_id)
    {
        return Err(StorageError::WrongObject {
            expected: format!("{class}/{id}"),
            found: format!("{}/{}", header.class, header.object_id),
        });
    }
    let (_dk, cipher) = header.unlock(ring)?;
    let link = buf.get(hlen..hlen + LINK_LEN).ok_or(StorageError::Truncated { at: buf.len() as u64 })?;
    if link != &header.commitment[..LINK_LEN] {
        return Err(StorageError::HeaderMismatch);
    }
    Ok((header, cipher, hlen + LINK_LEN))
}

/// Decrypt and verify a whole object in memory.
pub fn open(ring: &KeyRing, object: &[u8]) -> Result<(ObjectInfo, Vec<u8>)> {
    let mut dec = Decryptor::new(ring);
    let mut out = Vec::with_capacity(object.len());
    dec.update(object, &mut out)?;
    let info = dec.finish()?;
    Ok((info, out))
}

/// An object opened for random access: the header is unlocked and the layout computed from
/// the object's total length, so any chunk can be fetched (e.g. by a range read) and
/// decrypted on its own with [`OpenedObject::decrypt_chunk`].
pub struct OpenedObject {
    header: Header,
    cipher: ChunkCipher,
    body_offset: u64,
    total_len: u64,
    chunk_count: u32,
    last_record_len: u64,
}

impl fmt::Debug for OpenedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedObject")
            .field("header", &self.header)
            .field("total_len", &self.total_len)
            .field("chunk_count", &self.chunk_count)
            .finish()
    }
}

impl OpenedObject {
    /// `prelude`: the first `min(total_len, MAX_PRELUDE_LEN)` bytes of the object.
    pub fn open(ring: &KeyRing, prelude: &[u8], total_len: u64) -> Result<Self> {
        Self::open_expecting(ring, prelude, total_len, None)
    }

    pub fn open_expecting(
        ring: &KeyRing,
        prelude: &[u8],
        total_len: u64,
        expect: Option<(&ObjectClass, &ObjectId)>,
    ) -> Result<Self> {
        let expect = expect.map(|(c, i)| (c.clone(), i.clone()));
        let (header, cipher, used) = open_prelude(ring, prelude, expect.as_ref())?;
        let body_offset = used as u64;
        let body = total_len.checked_sub(body_offset).ok_or(StorageError::Truncated { at: total_len })?;
        let full = (cipher.chunk_size + RECORD_OVERHEAD) as u64;
        if body == 0 {
            return Err(StorageError::Truncated { at: total_len });
        }
        let (count, last) = if body % full == 0 { (body / full, full) } else { (body / full + 1, body % full) };
        if last < RECORD_OVERHEAD as u64 {
            // Part of a record header only: cut inside a record, or a few stray bytes after a
            // full final chunk. Sequential decryption tells which; here, say truncated.
            return Err(StorageError::Truncated { at: total_len });
        }
        let chunk_count = u32::try_from(count).map_err(|_| StorageError::TooLarge)?;
        Ok(OpenedObject { header, cipher, body_offset, total_len, chunk_count, last_record_len: last })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn chunk_size(&self) -> usize {
        self.cipher.chunk_size
    }

    pub fn chunk_count(&self) -> u32 {
        self.chunk_count
    }

    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Plaintext length implied by the layout. It is authentic once the last chunk has been
    /// decrypted (its final flag is checked); [`SeekableReader::new`] does that on open.
    pub fn plaintext_len(&self) -> u64 {
        (self.chunk_count as u64 - 1) * self.cipher.chunk_size as u64 + self.last_record_len - RECORD_OVERHEAD as u64
    }

    /// Byte range of chunk `index`'s record within the object.
    pub fn record_range(&self, index: u32) -> Result<std::ops::Range<u64>> {
        if index >= self.chunk_count {
            return Err(StorageError::ChunkIndexOutOfRange { index: index.into(), count: self.chunk_count });
        }
        let full = (self.cipher.chunk_size + RECORD_OVERHEAD) as u64;
        let start = self.body_offset + index as u64 * full;
        let len = if index + 1 == self.chunk_count { self.last_record_len } else { full };
        Ok(start..start + len)
    }

    /// The chunk holding plaintext byte `offset`.
    pub fn chunk_of(&self, offset: u64) -> u32 {
        (offset / self.cipher.chunk_size as u64).min(self.chunk_count as u64 - 1) as u32
    }

    /// The plaintext bytes chunk `index` holds (empty for the empty object's one record).
    pub fn chunk_plaintext_range(&self, index: u32) -> Result<std::ops::Range<u64>> {
        self.record_range(index)?;
        let chunk = self.cipher.chunk_size as u64;
        let start = index as u64 * chunk;
        let end = (start + chunk).min(self.plaintext_len());
        Ok(start.min(end)..end)
    }

    /// The chunks that hold the plaintext bytes `range` (`start..end`, end exclusive), as
    /// `first..last + 1`. The range must be non-empty and within [`Self::plaintext_len`]; else
    /// [`StorageError::InvalidRange`], naming the object id.
    pub fn chunks_for(&self, range: std::ops::Range<u64>) -> Result<std::ops::Range<u32>> {
        let len = self.plaintext_len();
        if range.start >= range.end || range.end > len {
            return Err(StorageError::InvalidRange {
                key: self.header.object_id.to_string(),
                start: range.start,
                end: Some(range.end),
                size: len,
            });
        }
        Ok(self.chunk_of(range.start)..self.chunk_of(range.end - 1) + 1)
    }

    /// The bytes of the object that hold the records of `chunks` (`first..last + 1`, non-empty):
    /// what to fetch with one ranged read to decrypt those chunks.
    pub fn records_span(&self, chunks: std::ops::Range<u32>) -> Result<std::ops::Range<u64>> {
        if chunks.start >= chunks.end {
            return Err(StorageError::ChunkIndexOutOfRange { index: chunks.start.into(), count: self.chunk_count });
        }
        Ok(self.record_range(chunks.start)?.start..self.record_range(chunks.end - 1)?.end)
    }

    /// Verify and decrypt chunk `index` from its record bytes (exactly `record_range(index)`).
    pub fn decrypt_chunk(&self, index: u32, record: &[u8]) -> Result<Vec<u8>> {
        let range = self.record_range(index)?;
        let last = index + 1 == self.chunk_count;
        if record.len() as u64 != range.end - range.start {
            return Err(StorageError::Truncated { at: range.start + record.len() as u64 });
        }
        let rh = RecordHeader::parse(record);
        let body = &record[RECORD_HEADER_LEN..];
        if (rh.flag == FLAG_MORE || rh.flag == FLAG_FINAL) && rh.len <= self.cipher.chunk_size {
            // The layout fixes each record's length; the record header must agree with it.
            let claimed = rh.len + TAG_LEN;
            if claimed > body.len() {
                return Err(StorageError::Truncated { at: self.total_len }); // last record cut short
            }
            if claimed < body.len() && rh.flag == FLAG_FINAL {
                // A final chunk with more bytes after it.
                self.cipher.open_record(index, rh, &body[..claimed], None, &mut Vec::new())?;
                let extra = &body[claimed..];
                let chunk = self.cipher.chunk_size;
                if !last || (extra.len() >= RECORD_HEADER_LEN && RecordHeader::parse(extra).plausible(chunk)) {
                    return Err(StorageError::FinalChunkNotLast { index });
                }
                let at = range.start + (RECORD_HEADER_LEN + claimed) as u64;
                return Err(StorageError::TrailingData { at });
            }
        }
        let mut out = Vec::with_capacity(body.len());
        self.cipher.open_record(index, rh, body, Some(last), &mut out).map_err(|e| match e {
            StorageError::Truncated { .. } => StorageError::Truncated { at: self.total_len },
            e => e,
        })?;
        Ok(out)
    }
}

/// Random-access plaintext reader over an encrypted object in anything `Read + Seek` (a file,
/// a buffer). Opening reads the header and verifies the final chunk, so `len()` is
/// authentic; each read verifies the chunks it touches. Holds one decrypted chunk.
pub struct SeekableReader<R> {
    inner: R,
    object: OpenedObject,
    pos: u64,
    cached: Option<(u32, Vec<u8>)>,
}

impl<R> fmt::Debug for SeekableReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeekableReader").field("object", &self.object).field("pos", &self.pos).finish()
    }
}

impl<R: Read + Seek> SeekableReader<R> {
    pub fn new(ring: &KeyRing, mut inner: R) -> Result<Self> {
        let io_err = |e| StorageError::io("reading encrypted object", e);
        let total = inner.seek(SeekFrom::End(0)).map_err(io_err)?;
        inner.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut prelude = vec![0u8; total.min(MAX_PRELUDE_LEN as u64) as usize];
        inner.read_exact(&mut prelude).map_err(io_err)?;
        let object = OpenedObject::open(ring, &prelude, total)?;
        let mut r = SeekableReader { inner, object, pos: 0, cached: None };
        r.load(r.object.chunk_count - 1)?;
        Ok(r)
    }

    pub fn object(&self) -> &OpenedObject {
        &self.object
    }

    /// Authentic plaintext length.
    pub fn len(&self) -> u64 {
        self.object.plaintext_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn load(&mut self, index: u32) -> Result<()> {
        if self.cached.as_ref().is_some_and(|(i, _)| *i == index) {
            return Ok(());
        }
        let range = self.object.record_range(index)?;
        let io_err = |e| StorageError::io("reading encrypted object", e);
        self.inner.seek(SeekFrom::Start(range.start)).map_err(io_err)?;
        let mut record = vec![0u8; (range.end - range.start) as usize];
        self.inner.read_exact(&mut record).map_err(io_err)?;
        let plain = self.object.decrypt_chunk(index, &record)?;
        self.cached = Some((index, plain));
        Ok(())
    }
}

impl<R: Read + Seek> Read for SeekableReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len() {
            return Ok(0);
        }
        let chunk = self.object.chunk_size() as u64;
        let index = self.object.chunk_of(self.pos);
        self.load(index).map_err(StorageError::into_io)?;
        let plain = &self.cached.as_ref().expect("just loaded").1;
        let off = (self.pos - index as u64 * chunk) as usize;
        let n = (plain.len() - off).min(buf.len());
        buf[..n].copy_from_slice(&plain[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SeekableReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new = new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = new;
        Ok(new)
    }
}

/// `std::io::Write` adapter: plaintext in, ciphertext to the inner writer. Call
/// [`EncryptWriter::finish`]; dropping it without finishing leaves a truncated object.
pub struct EncryptWriter<W: Write> {
    inner: W,
    enc: Option<Encryptor>,
    out: Vec<u8>,
}

impl<W: Write> fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptWriter").field("enc", &self.enc).finish_non_exhaustive()
    }
}

impl<W: Write> EncryptWriter<W> {
    pub fn new(enc: Encryptor, inner: W) -> Self {
        let cap = enc.cipher.chunk_size + MAX_PRELUDE_LEN + RECORD_OVERHEAD;
        EncryptWriter { inner, enc: Some(enc), out: Vec::with_capacity(cap) }
    }

    fn flush_out(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Write the final chunk; returns the inner writer and the header.
    pub fn finish(mut self) -> Result<(W, Header)> {
        let enc = self.enc.take().expect("finish consumes the writer");
        let header = enc.finish(&mut self.out)?;
        self.flush_out().map_err(|e| StorageError::io("writing encrypted object", e))?;
        self.inner.flush().map_err(|e| StorageError::io("writing encrypted object", e))?;
        Ok((self.inner, header))
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let enc = self.enc.as_mut().expect("not finished");
        // Bound what is buffered: at most one chunk of input per call.
        let n = buf.len().min(enc.cipher.chunk_size);
        enc.update(&buf[..n], &mut self.out).map_err(StorageError::into_io)?;
        self.flush_out()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_out()?;
        self.inner.flush()
    }
}

/// Re-wrap an object's data key under `new_kek`, given the start of the object (at least its
/// header; [`MAX_PRELUDE_LEN`] bytes or the whole object is always enough). Returns the new
/// header and the length of the old one: the new object is `new_header ‖ object[old_len..]`,
/// the body (link and chunks) unchanged byte for byte. The old KEK must be in `ring`; the key
/// commitment is checked before anything is re-wrapped.
pub fn rewrap_header<R: RngCore + CryptoRng + ?Sized>(
    ring: &KeyRing,
    new_kek: &Kek,
    object_start: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, usize)> {
    let (mut header, old_len) = Header::parse(object_start)?;
    let (dk, _) = header.unlock(ring)?;
    header.wrap(new_kek, &dk, rng);
    Ok((header.encode(), old_len))
}

/// Stream an object from `input` to `output` with its data key re-wrapped under `new_kek`
/// (see [`rewrap_header`]). The chunks are copied, not decrypted. Returns bytes written.
pub fn rewrap<R: Read, W: Write>(ring: &KeyRing, new_kek: &Kek, mut input: R, mut output: W) -> Result<u64> {
    let io_err = |e| StorageError::io("rewrapping object", e);
    let mut start = Vec::with_capacity(MAX_HEADER_LEN);
    (&mut input).take(MAX_HEADER_LEN as u64).read_to_end(&mut start).map_err(io_err)?;
    let (new_header, old_len) = rewrap_header(ring, new_kek, &start, &mut rand::rngs::OsRng)?;
    output.write_all(&new_header).map_err(io_err)?;
    output.write_all(&start[old_len..]).map_err(io_err)?;
    let copied = io::copy(&mut input, &mut output).map_err(io_err)?;
    output.flush().map_err(io_err)?;
    Ok((new_header.len() + start.len() - old_len) as u64 + copied)
}

/// Build objects with arbitrary chunk sequences (bad flags, wrong counters) under a real key,
/// for tamper test vectors. Not for production use.
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// `chunks`: (counter, final flag, plaintext) written in this order after a valid header
    /// and link, each sealed with the object's real chunk key.
    pub fn craft<R: RngCore + CryptoRng + ?Sized>(
        kek: &Kek,
        class: ObjectClass,
        object_id: ObjectId,
        chunk_log2: u8,
        rng: &mut R,
        chunks: &[(u32, bool, &[u8])],
    ) -> Vec<u8> {
        let enc = Encryptor::with_options(kek, class, object_id, EncryptOptions { chunk_log2 }, rng).expect("valid");
        let mut out = enc.header.encode();
        out.extend_from_slice(&enc.header.commitment[..LINK_LEN]);
        for (index, last, plain) in chunks {
            enc.cipher.seal_record(*index, *last, plain, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::from_keys(vec![Kek::from_bytes("k1", [7; 32]).unwrap()]).unwrap()
    }

    fn small(chunk_log2: u8) -> EncryptOptions {
        EncryptOptions { chunk_log2 }
    }

    fn seal_small(ring: &KeyRing, data: &[u8], chunk_log2: u8) -> Vec<u8> {
        let mut enc = Encryptor::with_options(
            ring.active(),
            ObjectClass::MEDIA,
            ObjectId::new("calls/1/a.webm").unwrap(),
            small(chunk_log2),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let mut out = Vec::new();
        enc.update(data, &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trip_various_sizes() {
        let ring = ring();
        for len in [0usize, 1, 63, 64, 65, 128, 200, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let obj = seal_small(&ring, &data, 6);
            let (info, plain) = open(&ring, &obj).unwrap();
            assert_eq!(plain, data, "len {len}");
            assert_eq!(info.plaintext_len, len as u64);
            assert_eq!(info.chunks as usize, len.div_ceil(64).max(1));
            assert_eq!(obj.len() as u64, sealed_len(len as u64, 6, &info.header));
        }
    }

    #[test]
    fn header_round_trip_and_limits() {
        let ring = ring();
        let obj = seal(ring.active(), ObjectClass::PAPERS, ObjectId::new("x").unwrap(), b"hi").unwrap();
        let (h, n) = Header::parse(&obj).unwrap();
        assert_eq!(h.encode(), obj[..n]);
        assert_eq!(n, h.encoded_len());
        for cut in 0..n {
            assert!(matches!(Header::parse(&obj[..cut]), Err(StorageError::Truncated { .. })), "cut {cut}");
        }
        assert!(matches!(Header::parse(b"RIFF...."), Err(StorageError::NotAnObject)));
        let mut v = obj.clone();
        v[8] = 2;
        assert!(matches!(Header::parse(&v), Err(StorageError::UnsupportedVersion(2))));
        let mut v = obj.clone();
        v[9] = 9;
        assert!(matches!(Header::parse(&v), Err(StorageError::UnsupportedSuite(9))));
        let mut v = obj;
        v[10] = 40;
        assert!(matches!(Header::parse(&v), Err(StorageError::MalformedHeader(_))));
        assert!(ObjectClass::new("Media").is_err());
        assert!(ObjectId::new("a\nb").is_err());
        assert!(ObjectId::new("x".repeat(1025)).is_err());
    }

    #[test]
    fn expect_checks_class_and_id() {
        let ring = ring();
        let obj = seal(ring.active(), ObjectClass::PAPERS, ObjectId::new("x").unwrap(), b"hi").unwrap();
        let mut dec = Decryptor::new(&ring).expect(ObjectClass::MEDIA, ObjectId::new("x").unwrap());
        assert!(matches!(dec.update(&obj, &mut Vec::new()), Err(StorageError::WrongObject { .. })));
        assert!(matches!(dec.update(&obj, &mut Vec::new()), Err(StorageError::DecryptorPoisoned)));
    }

    #[test]
    fn altered_bound_fields_fail() {
        let ring = ring();
        let obj = seal(ring.active(), ObjectClass::PAPERS, ObjectId::new("xy").unwrap(), b"hello").unwrap();
        let (h, n) = Header::parse(&obj).unwrap();
        // object id "xy" -> "xz": unwrap fails (bound into the wrap's associated data)
        let mut v = obj.clone();
        let pos = obj.windows(2).position(|w| w == b"xy").unwrap();
        v[pos + 1] = b'z';
        assert!(matches!(open(&ring, &v), Err(StorageError::WrongKek { .. })));
        // commitment altered (and link altered to match): commitment check fails
        let mut v = obj.clone();
        let cpos = n - WRAPPED_KEY_LEN - WRAP_NONCE_LEN - 1 - h.key_id.len() - COMMITMENT_LEN;
        v[cpos + 20] ^= 1;
        assert!(matches!(open(&ring, &v), Err(StorageError::KeyCommitmentMismatch)));
        // key id not in ring
        let other = KeyRing::from_keys(vec![Kek::from_bytes("k2", [7; 32]).unwrap()]).unwrap();
        assert!(matches!(open(&other, &obj), Err(StorageError::UnknownKeyId(id)) if id == "k1"));
    }

    #[test]
    fn streaming_piece_sizes_do_not_matter() {
        let ring = ring();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let obj = seal_small(&ring, &data, 7);
        for piece in [1usize, 2, 9, 10, 100, 153, 4096] {
            let mut dec = Decryptor::new(&ring);
            let mut out = Vec::new();
            for p in obj.chunks(piece) {
                dec.update(p, &mut out).unwrap();
            }
            dec.finish().unwrap();
            assert_eq!(out, data, "piece {piece}");
        }
    }

    #[test]
    fn seekable_reader_and_chunks() {
        let ring = ring();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 13 % 256) as u8).collect();
        let obj = seal_small(&ring, &data, 6);
        let mut r = SeekableReader::new(&ring, io::Cursor::new(&obj)).unwrap();
        assert_eq!(r.len(), 1000);
        r.seek(SeekFrom::Start(130)).unwrap();
        let mut buf = vec![0u8; 300];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[130..430]);
        r.seek(SeekFrom::End(-5)).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, data[995..]);
        let o = r.object();
        let rr = o.record_range(3).unwrap();
        assert_eq!(o.decrypt_chunk(3, &obj[rr.start as usize..rr.end as usize]).unwrap(), data[192..256]);
        assert!(matches!(o.record_range(16), Err(StorageError::ChunkIndexOutOfRange { .. })));
    }

    #[test]
    fn plaintext_ranges_map_to_chunks_and_records() {
        let ring = ring();
        let data = vec![1u8; 1000];
        let obj = seal_small(&ring, &data, 6); // 16 chunks: 15 full, the last 40 bytes
        let (h, hlen) = Header::parse(&obj).unwrap();
        let o = OpenedObject::open(&ring, &obj[..MAX_PRELUDE_LEN.min(obj.len())], obj.len() as u64).unwrap();
        assert_eq!(o.chunks_for(0..1).unwrap(), 0..1);
        assert_eq!(o.chunks_for(63..65).unwrap(), 0..2);
        assert_eq!(o.chunks_for(64..128).unwrap(), 1..2);
        assert_eq!(o.chunks_for(0..1000).unwrap(), 0..16);
        assert_eq!(o.chunks_for(999..1000).unwrap(), 15..16);
        #[allow(clippy::reversed_empty_ranges)]
        let bad = [0..0, 5..4, 0..1001, 1000..1001];
        for bad in bad {
            assert!(matches!(o.chunks_for(bad.clone()), Err(StorageError::InvalidRange { .. })), "{bad:?}");
        }
        let body = (hlen + LINK_LEN) as u64;
        assert_eq!(o.records_span(1..3).unwrap(), body + 89..body + 3 * 89);
        assert_eq!(o.records_span(15..16).unwrap(), body + 15 * 89..obj.len() as u64);
        assert!(o.records_span(3..3).is_err() && o.records_span(15..17).is_err());
        assert_eq!(o.chunk_plaintext_range(15).unwrap(), 960..1000);
        assert_eq!(o.chunk_plaintext_range(2).unwrap(), 128..192);
        // The tag names the plaintext: kept by a rewrap, another for another sealing.
        assert_eq!(h.plaintext_tag().len(), 32);
        let mut ring2 = ring.clone();
        ring2.rotate(&mut rand::rngs::OsRng, std::time::SystemTime::now());
        let mut rewrapped = Vec::new();
        rewrap(&ring2, ring2.active(), &obj[..], &mut rewrapped).unwrap();
        assert_eq!(Header::parse(&rewrapped).unwrap().0.plaintext_tag(), h.plaintext_tag());
        let again = seal_small(&ring, &data, 6);
        assert_ne!(Header::parse(&again).unwrap().0.plaintext_tag(), h.plaintext_tag());
    }

    #[test]
    fn rewrap_changes_only_the_header() {
        let ring = ring();
        let data = vec![42u8; 3000];
        let obj = seal_small(&ring, &data, 8);
        let mut ring2 = ring.clone();
        ring2.rotate(&mut rand::rngs::OsRng, std::time::SystemTime::now());
        let mut out = Vec::new();
        let n = rewrap(&ring2, ring2.active(), &obj[..], &mut out).unwrap();
        assert_eq!(n as usize, out.len());
        let (old_h, old_len) = Header::parse(&obj).unwrap();
        let (new_h, new_len) = Header::parse(&out).unwrap();
        assert_eq!(obj[old_len..], out[new_len..], "body untouched");
        assert_eq!(new_h.key_id, ring2.active().id());
        assert_eq!(new_h.commitment, old_h.commitment);
        assert_eq!(open(&ring2, &out).unwrap().1, data);
        // Only the new key is needed now.
        let only_new = KeyRing::from_keys(vec![ring2.active().clone()]).unwrap();
        assert_eq!(open(&only_new, &out).unwrap().1, data);
        assert!(matches!(open(&only_new, &obj), Err(StorageError::UnknownKeyId(_))));
    }

    #[test]
    fn encrypt_writer_matches_update() {
        let ring = ring();
        let data = vec![5u8; 70_000];
        let mut w = EncryptWriter::new(
            Encryptor::new(ring.active(), ObjectClass::MEDIA, ObjectId::new("w").unwrap()).unwrap(),
            Vec::new(),
        );
        w.write_all(&data).unwrap();
        let (obj, _) = w.finish().unwrap();
        assert_eq!(open(&ring, &obj).unwrap().1, data);
    }
}
