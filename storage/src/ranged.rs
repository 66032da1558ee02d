//! Reading part of an object's plaintext straight from a store, without reading the whole
//! object (docs/storage-format.md, "Ranged reads").
//!
//! [`RangedObject::open`] reads the object's first bytes (header and link, at most
//! [`MAX_PRELUDE_LEN`]) and its final record, two small ranged reads: the data key is unwrapped,
//! and the final chunk verified, so the plaintext length it reports is authentic.
//! [`RangedObject::read`] then hands out any byte range of the plaintext chunk by chunk: it
//! fetches only the records that hold the range, in windows of a few chunks (one ranged
//! `get` each), and verifies every chunk before any of its plaintext leaves.
//!
//! Memory per reader: one record being read (chunk size + 25 bytes), plus the plaintext chunk
//! the caller holds; chunk sizes above [`RangeOptions::max_chunk_size`] are refused. Nothing is
//! written anywhere. A read authenticates exactly the chunks it returns (and the final one):
//! damage elsewhere in the object is found by a full read (`cunneng verify`), not by this one.
//!
//! An object may live at more than one place (a case under legal hold moves its objects to
//! `legal-hold/KEY`): the caller names the places in order; the first that has the object is
//! used, and if the object moves in the middle of a read, the next window looks at the others.
//! Each window checks that the object still has the size it had at open
//! ([`StorageError::ObjectChanged`] otherwise); bytes that changed in any other way fail their
//! chunk's authentication.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, StorageError};
use crate::format::{MAX_PRELUDE_LEN, ObjectClass, ObjectId, OpenedObject, RECORD_OVERHEAD};
use crate::keys::KeyRing;
use crate::store::{ByteRange, GetObject, ObjectStore};

/// Bounds of one ranged reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeOptions {
    /// Sealed bytes one `get` asks the store for at most, rounded down to whole records (at
    /// least one). A reader that is dropped early has asked for at most this much in vain.
    pub window_bytes: u64,
    /// Largest chunk size accepted ([`StorageError::ChunkSizeOverLimit`] above it).
    pub max_chunk_size: usize,
}

impl Default for RangeOptions {
    /// 1 MiB windows (16 records of the default 64 KiB chunks); chunks up to 1 MiB.
    fn default() -> Self {
        RangeOptions { window_bytes: 1 << 20, max_chunk_size: 1 << 20 }
    }
}

/// An object in a store, opened for ranged reads of its plaintext.
pub struct RangedObject {
    store: Arc<dyn ObjectStore>,
    locations: Vec<String>,
    /// Index in `locations` of where the object was last found.
    at: usize,
    object: OpenedObject,
    options: RangeOptions,
    /// Sealed bytes asked of the store so far.
    fetched: u64,
}

impl fmt::Debug for RangedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangedObject")
            .field("key", &self.key())
            .field("object", &self.object)
            .field("fetched", &self.fetched)
            .finish_non_exhaustive()
    }
}

impl RangedObject {
    /// Open the object found at the first of `locations` that has it (a missing object:
    /// [`StorageError::NotFound`] naming the first). With `expect`, the header must name this
    /// class and object id ([`StorageError::WrongObject`]).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        ring: &KeyRing,
        locations: Vec<String>,
        expect: Option<(&ObjectClass, &ObjectId)>,
        options: RangeOptions,
    ) -> Result<RangedObject> {
        let Some(first) = locations.first().cloned() else {
            return Err(StorageError::InvalidKey { key: String::new(), reason: "no location given for the object" });
        };
        let mut found = None;
        for (i, key) in locations.iter().enumerate() {
            match store.get(key, Some(ByteRange::new(0, MAX_PRELUDE_LEN as u64))).await {
                Ok(got) => {
                    found = Some((i, got));
                    break;
                }
                Err(StorageError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let (at, got) = found.ok_or(StorageError::NotFound(first))?;
        let total = got.size;
        let prelude = got.bytes().await?;
        let object = OpenedObject::open_expecting(ring, &prelude, total, expect)?;
        if object.chunk_size() > options.max_chunk_size {
            return Err(StorageError::ChunkSizeOverLimit {
                object_id: object.header().object_id.to_string(),
                chunk_size: object.chunk_size(),
                limit: options.max_chunk_size,
            });
        }
        let fetched = prelude.len() as u64;
        let mut opened = RangedObject { store, locations, at, object, options, fetched };
        // The final record: verified, so that the plaintext length is authentic.
        let last = opened.object.chunk_count() - 1;
        let range = opened.object.record_range(last)?;
        let record = if range.end <= prelude.len() as u64 {
            prelude[range.start as usize..range.end as usize].to_vec()
        } else {
            let mut got = opened.fetch(range.clone()).await?;
            let mut record = vec![0u8; (range.end - range.start) as usize];
            read_record(&mut got.body, &mut record, opened.key()).await?;
            record
        };
        opened.object.decrypt_chunk(last, &record)?;
        Ok(opened)
    }

    /// Authentic plaintext length.
    pub fn len(&self) -> u64 {
        self.object.plaintext_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the object was (last) found.
    pub fn key(&self) -> &str {
        &self.locations[self.at]
    }

    pub fn object(&self) -> &OpenedObject {
        &self.object
    }

    /// The plaintext's tag ([`crate::Header::plaintext_tag`]): a strong validator.
    pub fn tag(&self) -> String {
        self.object.header().plaintext_tag()
    }

    /// Sealed bytes asked of the store so far (opening included).
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// A reader of the plaintext bytes `range` (end exclusive; empty is allowed and reads
    /// nothing). A range beyond [`Self::len`] is [`StorageError::InvalidRange`].
    pub fn read(self, range: Range<u64>) -> Result<RangeReader> {
        if range.start > range.end || range.end > self.len() {
            return Err(StorageError::InvalidRange {
                key: self.key().to_owned(),
                start: range.start,
                end: Some(range.end),
                size: self.len(),
            });
        }
        let chunks = if range.is_empty() { 0..0 } else { self.object.chunks_for(range.clone())? };
        let record = Vec::with_capacity(self.object.chunk_size() + RECORD_OVERHEAD);
        Ok(RangeReader { src: self, want: range, next: chunks.start, end: chunks.end, window: None, record })
    }

    /// One ranged `get` of sealed bytes, from where the object is (or has moved to).
    async fn fetch(&mut self, range: Range<u64>) -> Result<GetObject> {
        let n = self.locations.len();
        let total = self.object.total_len();
        for i in 0..n {
            let at = (self.at + i) % n;
            match self.store.get(&self.locations[at], Some(ByteRange::new(range.start, range.end))).await {
                Ok(got) => {
                    if got.size != total || got.range != range {
                        return Err(StorageError::ObjectChanged {
                            key: self.locations[at].clone(),
                            was: total,
                            now: got.size,
                        });
                    }
                    self.at = at;
                    self.fetched += range.end - range.start;
                    return Ok(got);
                }
                Err(StorageError::NotFound(_)) if i + 1 < n => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns on its last location")
    }
}

async fn read_record(body: &mut Pin<Box<dyn AsyncRead + Send>>, record: &mut [u8], key: &str) -> Result<()> {
    body.read_exact(record).await.map_err(|e| StorageError::io(format!("reading `{key}` from the store"), e))?;
    Ok(())
}

struct Window {
    body: Pin<Box<dyn AsyncRead + Send>>,
    /// First chunk after this window.
    end: u32,
}

/// Hands out a plaintext range chunk by chunk ([`RangeReader::next`]); see the module docs.
pub struct RangeReader {
    src: RangedObject,
    /// Plaintext still to hand out.
    want: Range<u64>,
    /// Next chunk to decrypt, and the first one not needed.
    next: u32,
    end: u32,
    window: Option<Window>,
    record: Vec<u8>,
}

impl fmt::Debug for RangeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeReader").field("src", &self.src).field("want", &self.want).finish_non_exhaustive()
    }
}

impl RangeReader {
    /// Plaintext bytes not handed out yet.
    pub fn remaining(&self) -> u64 {
        self.want.end - self.want.start
    }

    /// Sealed bytes asked of the store so far (opening included).
    pub fn fetched(&self) -> u64 {
        self.src.fetched
    }

    /// The next piece of the range (at most one chunk; together exactly the range), or `None`
    /// at its end. Each piece comes from a chunk that was verified. After an error the reader
    /// must not be used again.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        if self.want.is_empty() {
            self.window = None;
            return Ok(None);
        }
        let index = self.next;
        debug_assert!(index < self.end);
        if self.window.as_ref().is_none_or(|w| w.end <= index) {
            let record_len = (self.src.object.chunk_size() + RECORD_OVERHEAD) as u64;
            let per_window = u32::try_from(self.src.options.window_bytes / record_len).unwrap_or(u32::MAX).max(1);
            let end = index.saturating_add(per_window).min(self.end);
            let span = self.src.object.records_span(index..end)?;
            let got = self.src.fetch(span).await?;
            self.window = Some(Window { body: got.body, end });
        }
        let range = self.src.object.record_range(index)?;
        self.record.resize((range.end - range.start) as usize, 0);
        let window = self.window.as_mut().expect("opened above");
        read_record(&mut window.body, &mut self.record, &self.src.locations[self.src.at]).await?;
        let mut plain = self.src.object.decrypt_chunk(index, &self.record)?;
        let chunk = self.src.object.chunk_plaintext_range(index)?;
        let from = (self.want.start - chunk.start) as usize;
        let to = (self.want.end.min(chunk.end) - chunk.start) as usize;
        plain.truncate(to);
        plain.drain(..from);
        self.want.start += (to - from) as u64;
        self.next += 1;
        if self.want.is_empty() {
            // Let go of the store's body (a connection, a file) at once.
            self.window = None;
        }
        Ok(Some(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{EncryptOptions, Encryptor};
    use crate::keys::Kek;
    use crate::local::LocalStore;

    fn ring() -> KeyRing {
        KeyRing::from_keys(vec![Kek::from_bytes("k1", [3; 32]).unwrap()]).unwrap()
    }

    fn sealed(ring: &KeyRing, id: &str, data: &[u8], chunk_log2: u8) -> Vec<u8> {
        let mut enc = Encryptor::with_options(
            ring.active(),
            ObjectClass::MEDIA,
            ObjectId::new(id).unwrap(),
            EncryptOptions { chunk_log2 },
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let mut out = Vec::new();
        enc.update(data, &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        out
    }

    async fn read_all(r: &mut RangeReader) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = r.next().await? {
            assert!(!piece.is_empty() && piece.len() <= r.src.object.chunk_size());
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn ranges_hold_areas_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::open(dir.path()).await.unwrap());
        let ring = ring();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let key = "media/c/archive.webm";
        store.put_bytes(key, &sealed(&ring, key, &data, 8)).await.unwrap();
        let id = ObjectId::new(key).unwrap();
        let opts = RangeOptions { window_bytes: 1000, max_chunk_size: 1 << 20 };
        let open = |locations: Vec<String>| {
            let (store, ring, id) = (store.clone(), ring.clone(), id.clone());
            async move { RangedObject::open(store, &ring, locations, Some((&ObjectClass::MEDIA, &id)), opts).await }
        };
        for range in [0..10_000, 0..1, 9_999..10_000, 255..257, 256..512, 1000..9000, 5..5] {
            let o = open(vec![key.into()]).await.unwrap();
            assert_eq!((o.len(), o.key()), (10_000, key));
            let mut r = o.read(range.clone()).unwrap();
            assert_eq!(read_all(&mut r).await.unwrap(), data[range.start as usize..range.end as usize], "{range:?}");
        }
        let o = open(vec![key.into()]).await.unwrap();
        assert!(matches!(o.read(0..10_001), Err(StorageError::InvalidRange { .. })));
        // Another class or id than expected; a missing object; a chunk size over the limit.
        let other = ObjectId::new("media/c/other.webm").unwrap();
        let e = RangedObject::open(store.clone(), &ring, vec![key.into()], Some((&ObjectClass::MEDIA, &other)), opts)
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::WrongObject { .. }), "{e}");
        let e = open(vec!["media/c/missing".into()]).await.unwrap_err();
        assert!(matches!(e, StorageError::NotFound(k) if k == "media/c/missing"));
        let small = RangeOptions { window_bytes: 1000, max_chunk_size: 128 };
        let e = RangedObject::open(store.clone(), &ring, vec![key.into()], None, small).await.unwrap_err();
        assert!(matches!(e, StorageError::ChunkSizeOverLimit { chunk_size: 256, limit: 128, .. }), "{e}");

        // The object moves to the hold area in the middle of a read: the next window finds it.
        let held = crate::retention::hold_key(key);
        let o = open(vec![key.into(), held.clone()]).await.unwrap();
        let mut r = o.read(0..10_000).unwrap();
        let mut got = r.next().await.unwrap().unwrap();
        store.copy(key, &held).await.unwrap();
        store.delete(key).await.unwrap();
        got.extend(read_all(&mut r).await.unwrap());
        assert_eq!(got, data);
        assert_eq!(r.src.key(), held);
        // Only in the hold area: found there from the start.
        let o = open(vec![key.into(), held.clone()]).await.unwrap();
        assert_eq!(o.key(), held);

        // Replaced by an object of another size between two windows: said so.
        let o = open(vec![held.clone()]).await.unwrap();
        let mut r = o.read(0..10_000).unwrap();
        r.next().await.unwrap().unwrap();
        store.put_bytes(&held, &sealed(&ring, key, &data[..9000], 8)).await.unwrap();
        let e = read_all(&mut r).await.unwrap_err();
        assert!(matches!(e, StorageError::ObjectChanged { was, .. } if was > 10_000), "{e}");
    }

    #[tokio::test]
    async fn the_empty_object_and_tiny_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::open(dir.path()).await.unwrap());
        let ring = ring();
        for len in [0usize, 1, 64, 65] {
            let data = vec![9u8; len];
            let key = format!("media/tiny-{len}");
            store.put_bytes(&key, &sealed(&ring, &key, &data, 6)).await.unwrap();
            let o = RangedObject::open(store.clone(), &ring, vec![key.clone()], None, RangeOptions::default())
                .await
                .unwrap();
            assert_eq!(o.len(), len as u64);
            // The whole object fits in the first read: nothing else is fetched.
            assert_eq!(o.fetched(), store.head(&key).await.unwrap().size);
            let mut r = o.read(0..len as u64).unwrap();
            assert_eq!(read_all(&mut r).await.unwrap(), data);
        }
    }
}
