//! Stores for tests of reads: an in-memory store, a wrapper that counts what is read through
//! another store, and a store that is down.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use cunneng_storage::store::sha256;
use cunneng_storage::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt, StorageError};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Objects in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
}

impl MemStore {
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        self.objects.lock().unwrap().insert(key.to_owned(), Arc::new(bytes));
    }
}

#[async_trait]
impl ObjectStore for MemStore {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> cunneng_storage::Result<PutReceipt> {
        let mut v = Vec::new();
        body.read_to_end(&mut v).await.unwrap();
        let digest = sha256(&v);
        assert!(expected_sha256.is_none_or(|e| e == digest));
        let size = v.len() as u64;
        self.insert(key, v);
        Ok(PutReceipt { size, sha256: digest })
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> cunneng_storage::Result<GetObject> {
        let obj = self.objects.lock().unwrap().get(key).cloned().ok_or(StorageError::NotFound(key.to_owned()))?;
        let size = obj.len() as u64;
        let range = ByteRange::resolve(range, key, size)?;
        let part = obj[range.start as usize..range.end as usize].to_vec();
        Ok(GetObject { size, range, body: Box::pin(std::io::Cursor::new(part)) })
    }

    async fn head(&self, key: &str) -> cunneng_storage::Result<ObjectMeta> {
        let size = self.objects.lock().unwrap().get(key).map(|o| o.len() as u64);
        let size = size.ok_or(StorageError::NotFound(key.to_owned()))?;
        Ok(ObjectMeta { key: key.to_owned(), size, modified: None, sha256: None })
    }

    async fn delete(&self, key: &str) -> cunneng_storage::Result<()> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> cunneng_storage::Result<Vec<ObjectMeta>> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta { key: k.clone(), size: v.len() as u64, modified: None, sha256: None })
            .collect())
    }
}

/// What a [`CountingStore`] saw.
#[derive(Debug, Default)]
pub struct Counts {
    /// `get` calls.
    pub gets: AtomicU64,
    /// Bytes those gets asked for (their resolved ranges): what a remote store sends.
    pub bytes_asked: AtomicU64,
    /// Bytes the callers actually read from the bodies of those gets.
    pub bytes_read: AtomicU64,
}

impl Counts {
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    pub fn bytes_asked(&self) -> u64 {
        self.bytes_asked.load(Ordering::SeqCst)
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::SeqCst)
    }
}

/// Another store, counting the gets and the bytes read through their bodies.
#[derive(Debug)]
pub struct CountingStore {
    pub inner: Arc<dyn ObjectStore>,
    pub counts: Arc<Counts>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> CountingStore {
        CountingStore { inner, counts: Arc::default() }
    }
}

struct CountingBody {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    counts: Arc<Counts>,
}

impl AsyncRead for CountingBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.counts.bytes_read.fetch_add(n as u64, Ordering::SeqCst);
        r
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> cunneng_storage::Result<PutReceipt> {
        self.inner.put(key, body, expected_sha256).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> cunneng_storage::Result<GetObject> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        let got = self.inner.get(key, range).await?;
        self.counts.bytes_asked.fetch_add(got.range.end - got.range.start, Ordering::SeqCst);
        let body = Box::pin(CountingBody { inner: got.body, counts: self.counts.clone() });
        Ok(GetObject { size: got.size, range: got.range, body })
    }

    async fn head(&self, key: &str) -> cunneng_storage::Result<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &str) -> cunneng_storage::Result<()> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> cunneng_storage::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
}

/// A store that does not answer: every call fails as unavailable (and is counted).
#[derive(Debug, Default)]
pub struct DownStore {
    pub calls: AtomicU64,
}

impl DownStore {
    fn down<T>(&self, op: &str) -> cunneng_storage::Result<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(StorageError::Unavailable { op: op.to_owned(), detail: "the store is down (test)".into() })
    }
}

#[async_trait]
impl ObjectStore for DownStore {
    async fn put(
        &self,
        _: &str,
        _: &mut (dyn AsyncRead + Send + Unpin),
        _: Option<[u8; 32]>,
    ) -> cunneng_storage::Result<PutReceipt> {
        self.down("PutObject")
    }

    async fn get(&self, _: &str, _: Option<ByteRange>) -> cunneng_storage::Result<GetObject> {
        self.down("GetObject")
    }

    async fn head(&self, _: &str) -> cunneng_storage::Result<ObjectMeta> {
        self.down("HeadObject")
    }

    async fn delete(&self, _: &str) -> cunneng_storage::Result<()> {
        self.down("DeleteObject")
    }

    async fn list(&self, _: &str) -> cunneng_storage::Result<Vec<ObjectMeta>> {
        self.down("ListObjectsV2")
    }
}
