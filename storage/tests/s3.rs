//! The S3 backend against a real S3 server: a one-node Garage on 127.0.0.1 started per test
//! (tests/src/garage.rs; the binary comes from scripts/test.sh, or GARAGE_BIN).

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cunneng_storage::s3::{LifecycleOutcome, LifecycleRule, MIN_PART_SIZE};
use cunneng_storage::store::sha256;
use cunneng_storage::{
    ByteRange, ObjectStore, RetentionConfig, RetentionPolicy, S3Config, S3Credentials, S3Store, StorageError,
};
use cunneng_tests::garage::Garage;
use tokio::io::{AsyncRead, ReadBuf};

fn config(g: &Garage, access_key_id: &str, secret: &str) -> S3Config {
    let mut c = S3Config::new(
        Some(g.endpoint()),
        g.region(),
        g.bucket(),
        S3Credentials::Static { access_key_id: access_key_id.into(), secret_access_key: secret.into() },
    );
    c.max_attempts = 2;
    c
}

async fn garage_and_store() -> (Garage, S3Store) {
    let g = Garage::start().await.expect("start garage");
    eprintln!("garage ready in {:?}", g.startup_time);
    let store = S3Store::connect(&config(&g, g.access_key_id(), g.secret_access_key())).await.expect("connect");
    store.check().await.expect("bucket reachable");
    (g, store)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1] ^ seed).collect()
}

async fn incomplete_uploads(store: &S3Store) -> usize {
    let out = store.client().list_multipart_uploads().bucket(store.bucket()).send().await.expect("list uploads");
    out.uploads().len()
}

/// Yields `ok` bytes of pattern, then fails.
struct FailAfter {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for FailAfter {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.pos == self.data.len() {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "producer died")));
        }
        let n = buf.remaining().min(self.data.len() - self.pos).min(64 * 1024);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn contract_holds_on_garage() {
    let (_g, store) = garage_and_store().await;
    cunneng_storage::contract::run(&store, "contract/").await;
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(incomplete_uploads(&store).await, 0);
}

#[tokio::test]
async fn the_store_checks_the_sha256_each_request_carries() {
    use base64::Engine as _;
    let (_g, store) = garage_and_store().await;
    let wrong = base64::engine::general_purpose::STANDARD.encode(sha256(b"something else"));
    let res = store
        .client()
        .put_object()
        .bucket(store.bucket())
        .key("media/tampered.cne")
        .checksum_sha256(wrong)
        .body(b"bytes altered on the way".to_vec().into())
        .send()
        .await;
    let e = res.expect_err("Garage must refuse a body that does not match x-amz-checksum-sha256");
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&e), Some("InvalidDigest"), "{e:?}");
    assert!(matches!(store.head("media/tampered.cne").await, Err(StorageError::NotFound(_))));
}

#[tokio::test]
async fn wrong_credentials_are_rejected_with_a_clear_error() {
    let g = Garage::start().await.unwrap();
    let wrong_secret = S3Store::connect(&config(&g, g.access_key_id(), &"0".repeat(64))).await.unwrap();
    let e = wrong_secret.check().await.unwrap_err();
    assert!(matches!(e, StorageError::AccessDenied { .. }), "{e:?}");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("rejected the credentials") && msg.contains("secret"), "{msg}");
    let e = wrong_secret.put_bytes("media/x", b"data").await.unwrap_err();
    assert!(matches!(e, StorageError::AccessDenied { .. }), "put: {e:?}");
    assert!(!e.is_transient(), "wrong credentials are not retried as an outage");

    let unknown_key = S3Store::connect(&config(&g, "GK000000000000000000000000", g.secret_access_key())).await.unwrap();
    let e = unknown_key.get("media/x", None).await.unwrap_err();
    assert!(matches!(e, StorageError::AccessDenied { .. }), "get: {e:?}");

    let mut other_bucket = config(&g, g.access_key_id(), g.secret_access_key());
    other_bucket.bucket = "no-such-bucket".into();
    let e = S3Store::connect(&other_bucket).await.unwrap().check().await.unwrap_err();
    assert!(matches!(e, StorageError::NoSuchBucket(_) | StorageError::AccessDenied { .. }), "{e:?}");

    // Credentials from the environment: none set here, so a clear failure, not a hang.
    let mut env = config(&g, "", "");
    env.credentials = S3Credentials::Environment;
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let e = S3Store::connect(&env).await.unwrap().check().await.unwrap_err();
        assert!(!matches!(e, StorageError::NotFound(_)), "{e:?}");
    }
}

#[tokio::test]
async fn unreachable_store_is_a_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = S3Config::new(
        Some(format!("http://127.0.0.1:{port}")),
        "us-east-1",
        "b-b-b",
        S3Credentials::Static { access_key_id: "GKx".into(), secret_access_key: "y".into() },
    );
    c.max_attempts = 1;
    let store = S3Store::connect(&c).await.unwrap();
    let e = store.put_bytes("media/x", b"x").await.unwrap_err();
    assert!(matches!(e, StorageError::Unavailable { .. }) && e.is_transient(), "{e:?}");
}

#[tokio::test]
async fn multipart_upload_streams_verifies_and_reads_back_by_range() {
    let (_g, store) = garage_and_store().await;
    let big = pattern(2 * MIN_PART_SIZE + 12_345, 7);
    let digest = sha256(&big);

    // Streamed from a pipe, with the expected digest: three parts.
    let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
    let data = big.clone();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for chunk in data.chunks(100_000) {
            tx.write_all(chunk).await.unwrap();
        }
    });
    let receipt = store.put("media/big.cne", &mut rx, Some(digest)).await.expect("multipart put");
    writer.await.unwrap();
    assert_eq!((receipt.size, receipt.sha256), (big.len() as u64, digest));
    let meta = store.head("media/big.cne").await.unwrap();
    assert_eq!((meta.size, meta.sha256), (big.len() as u64, Some(digest)), "digest kept in metadata");

    let b = MIN_PART_SIZE as u64;
    let got = store.get("media/big.cne", Some(ByteRange::new(b - 10, b + 10))).await.unwrap();
    assert_eq!((got.size, got.range.clone()), (big.len() as u64, b - 10..b + 10));
    assert_eq!(got.bytes().await.unwrap(), &big[(b - 10) as usize..(b + 10) as usize], "range across parts");
    assert!(store.get_bytes("media/big.cne", None).await.unwrap() == big);

    // Without an expected digest: no metadata digest, same bytes.
    let mut r: &[u8] = &big[..MIN_PART_SIZE + 1];
    let receipt = store.put("media/big2.cne", &mut r, None).await.unwrap();
    assert_eq!(receipt.sha256, sha256(&big[..MIN_PART_SIZE + 1]));
    assert_eq!(store.head("media/big2.cne").await.unwrap().sha256, None);

    // A big copy is server-side and keeps the digest.
    let copied = store.copy("media/big.cne", "legal-hold/media/big.cne").await.unwrap();
    assert_eq!(copied.sha256, digest);
    assert_eq!(store.head("legal-hold/media/big.cne").await.unwrap().sha256, Some(digest));
    assert_eq!(incomplete_uploads(&store).await, 0);
}

#[tokio::test]
async fn a_wrong_digest_or_a_failing_body_aborts_the_multipart_upload() {
    let (_g, store) = garage_and_store().await;
    let big = pattern(MIN_PART_SIZE + 5, 9);
    store.put_bytes("media/keep.cne", b"previous version").await.unwrap();

    let mut r: &[u8] = &big;
    let e = store.put("media/keep.cne", &mut r, Some([0; 32])).await.unwrap_err();
    assert!(matches!(e, StorageError::ChecksumMismatch { .. }), "{e:?}");
    assert_eq!(store.get_bytes("media/keep.cne", None).await.unwrap(), b"previous version", "nothing visible");
    assert_eq!(incomplete_uploads(&store).await, 0, "the multipart upload was aborted");

    let mut body = FailAfter { data: big.clone(), pos: 0 };
    let e = store.put("media/broken.cne", &mut body, None).await.unwrap_err();
    assert!(e.to_string().contains("producer died"), "{e}");
    assert!(matches!(store.head("media/broken.cne").await, Err(StorageError::NotFound(_))));
    assert_eq!(incomplete_uploads(&store).await, 0);
}

#[tokio::test]
async fn lifecycle_rules_are_set_and_incomplete_uploads_aborted() {
    let (_g, store) = garage_and_store().await;
    let policy = RetentionPolicy::new(&RetentionConfig::default()).unwrap();
    let rules = policy.lifecycle_rules();
    assert_eq!(store.ensure_lifecycle(&rules).await.unwrap(), LifecycleOutcome::Applied);
    assert_eq!(store.lifecycle().await.unwrap().as_deref(), Some(rules.as_slice()), "read back");
    assert_eq!(store.ensure_lifecycle(&rules).await.unwrap(), LifecycleOutcome::Applied, "idempotent");
    let only_abort = [LifecycleRule::abort_incomplete(2)];
    store.ensure_lifecycle(&only_abort).await.unwrap();
    assert_eq!(store.lifecycle().await.unwrap().as_deref(), Some(only_abort.as_slice()), "replaced");

    // What a crash mid-upload leaves: a started multipart upload with a part.
    let c = store.client();
    let up = c.create_multipart_upload().bucket(store.bucket()).key("media/crashed.cne").send().await.unwrap();
    let id = up.upload_id().unwrap();
    c.upload_part()
        .bucket(store.bucket())
        .key("media/crashed.cne")
        .upload_id(id)
        .part_number(1)
        .body(pattern(1000, 1).into())
        .send()
        .await
        .unwrap();
    assert_eq!(incomplete_uploads(&store).await, 1);
    assert_eq!(store.abort_incomplete_uploads(Duration::from_secs(3600)).await.unwrap(), 0, "too young");
    assert_eq!(store.cleanup_incomplete_uploads(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(incomplete_uploads(&store).await, 0);
    assert!(matches!(store.head("media/crashed.cne").await, Err(StorageError::NotFound(_))));
}

/// Ranged reads of an object's plaintext from the bucket: exact bytes, and only the header, the
/// final record and the records of the range are asked of the store (a multipart object of
/// 9 MiB, 64 KiB chunks); the object only in the legal-hold area is found there.
#[tokio::test]
async fn ranged_plaintext_reads_ask_the_bucket_for_the_records_they_need_only() {
    use common::stores::CountingStore;
    use cunneng_storage::format::{MAX_PRELUDE_LEN, OpenedObject};
    use cunneng_storage::{Kek, KeyRing, ObjectClass, ObjectId, RangeOptions, RangedObject};

    let (_g, store) = garage_and_store().await;
    let ring = KeyRing::from_keys(vec![Kek::from_bytes("kek-s3", [4; 32]).unwrap()]).unwrap();
    let key = "media/c1/call-1-1/kiosk-1/archive.webm";
    let data = pattern(9 * 1024 * 1024 + 321, 3);
    let obj = cunneng_storage::seal(ring.active(), ObjectClass::MEDIA, ObjectId::new(key).unwrap(), &data).unwrap();
    store.put_bytes(key, &obj).await.unwrap();
    let counting = Arc::new(CountingStore::new(Arc::new(store)));
    let counts = counting.counts.clone();
    let layout = OpenedObject::open(&ring, &obj[..MAX_PRELUDE_LEN], obj.len() as u64).unwrap();
    let id = ObjectId::new(key).unwrap();
    for range in [4_000_000..4_000_010, 0..1, 0..200_000, data.len() as u64 - 5..data.len() as u64] {
        let (gets, asked) = (counts.gets(), counts.bytes_asked());
        let o = RangedObject::open(
            counting.clone(),
            &ring,
            vec![key.to_owned()],
            Some((&ObjectClass::MEDIA, &id)),
            RangeOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(o.len(), data.len() as u64);
        let mut r = o.read(range.clone()).unwrap();
        let mut out = Vec::new();
        while let Some(piece) = r.next().await.unwrap() {
            out.extend_from_slice(&piece);
        }
        assert!(out == data[range.start as usize..range.end as usize], "{range:?}");
        let last = layout.record_range(layout.chunk_count() - 1).unwrap();
        let span = layout.records_span(layout.chunks_for(range.clone()).unwrap()).unwrap();
        let expected = MAX_PRELUDE_LEN as u64 + (last.end - last.start) + (span.end - span.start);
        assert_eq!(counts.bytes_asked() - asked, expected, "{range:?}");
        assert_eq!(counts.gets() - gets, 3, "the header, the final record, one window: {range:?}");
        eprintln!("{range:?}: {} bytes asked of a {} byte object", expected, obj.len());
    }

    // Only in the hold area (a case under legal hold): found there.
    let held = cunneng_storage::retention::hold_key(key);
    counting.copy(key, &held).await.unwrap();
    counting.delete(key).await.unwrap();
    let o = RangedObject::open(
        counting.clone(),
        &ring,
        vec![key.to_owned(), held.clone()],
        Some((&ObjectClass::MEDIA, &id)),
        RangeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(o.key(), held);
    let mut r = o.read(5_000_000..5_000_003).unwrap();
    assert_eq!(r.next().await.unwrap().unwrap(), data[5_000_000..5_000_003]);
}
