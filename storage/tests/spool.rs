//! The durable spool: in front of a real S3 server (a one-node Garage per test, stopped and
//! started to simulate an outage) and in front of a local store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cunneng_storage::spool::SpoolConfig;
use cunneng_storage::{
    ByteRange, Kek, LocalStore, ObjectClass, ObjectStore, S3Config, S3Credentials, S3Store, Spool, StorageError,
    format::ObjectId, seal,
};
use cunneng_tests::garage::Garage;

fn kek() -> Kek {
    Kek::generate(&mut rand::rngs::OsRng, SystemTime::now())
}

/// An encrypted media object whose plaintext looks like a WebM file.
fn encrypted(kek: &Kek, key: &str, len: usize) -> Vec<u8> {
    let mut plain = vec![0x1A, 0x45, 0xDF, 0xA3]; // EBML magic
    plain.extend((0..len).map(|i| (i % 251) as u8));
    seal(kek, ObjectClass::MEDIA, ObjectId::new(key).unwrap(), &plain).unwrap()
}

async fn s3(g: &Garage) -> Arc<S3Store> {
    let mut c = S3Config::new(
        Some(g.endpoint()),
        g.region(),
        g.bucket(),
        S3Credentials::Static {
            access_key_id: g.access_key_id().into(),
            secret_access_key: g.secret_access_key().into(),
        },
    );
    c.max_attempts = 1;
    c.connect_timeout_secs = 1;
    Arc::new(S3Store::connect(&c).await.unwrap())
}

fn spool_config(dir: &Path) -> SpoolConfig {
    SpoolConfig { backoff_initial_ms: 50, backoff_max_ms: 400, ..SpoolConfig::new(dir) }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn outage_nothing_acknowledged_is_lost_and_the_spool_empties() {
    let mut g = Garage::start().await.unwrap();
    eprintln!("garage ready in {:?}", g.startup_time);
    let store = s3(&g).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_config(dir.path()), store.clone()).await.unwrap();
    let kek = kek();

    // Before the outage: straight through.
    let first = encrypted(&kek, "media/c1/p1/seg-000001.cne", 10_000);
    spool.put_bytes("media/c1/p1/seg-000001.cne", &first).await.unwrap();
    assert!(spool.wait_until_drained(Duration::from_secs(10)).await);

    g.stop().await.unwrap();
    let mut objects = Vec::new();
    for i in 2..=6 {
        let key = format!("media/c1/p1/seg-{i:06}.cne");
        let bytes = encrypted(&kek, &key, 200_000 * i);
        let receipt = spool.put_bytes(&key, &bytes).await.expect("acknowledged while the store is down");
        assert_eq!(receipt.size, bytes.len() as u64);
        objects.push((key, bytes));
    }
    // One larger than a multipart part.
    let key = "media/c1/p1/archive.webm.cne".to_string();
    let bytes = encrypted(&kek, &key, 9 * 1024 * 1024);
    spool.put_bytes(&key, &bytes).await.unwrap();
    objects.push((key, bytes));

    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = spool.metrics();
    assert_eq!(m.spooled_objects, 6, "{m:?}");
    assert!(m.upload_failures >= 1 && m.consecutive_failures >= 1, "{m:?}");
    assert!(m.last_error.as_deref().is_some_and(|e| e.contains("unavailable")), "{m:?}");
    assert!(m.oldest_spooled_at.is_some());
    // Readable from the spool during the outage, ranges too.
    let (k2, b2) = &objects[0];
    assert_eq!(&spool.get_bytes(k2, None).await.unwrap(), b2);
    assert_eq!(spool.get_bytes(k2, Some(ByteRange::new(100, 200))).await.unwrap(), &b2[100..200]);
    assert_eq!(spool.head(k2).await.unwrap().size, b2.len() as u64);
    // The spool holds only ciphertext.
    for entry in std::fs::read_dir(dir.path().join("queue")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(bytes.starts_with(b"CNSPOOL1"));
        let body_at = bytes.windows(8).position(|w| w == b"CUNNENG\0").expect("encrypted object inside");
        assert!(body_at < 1200);
    }

    let t = Instant::now();
    g.start_again().await.unwrap();
    eprintln!("garage restarted in {:?}", g.startup_time);
    assert!(spool.wait_until_drained(Duration::from_secs(30)).await, "spool did not drain: {:?}", spool.metrics());
    eprintln!("spool drained {:?} after garage returned", t.elapsed());
    assert_eq!(files_in(&dir.path().join("queue")), 0, "every spool file removed");
    let m = spool.metrics();
    assert_eq!((m.spooled_objects, m.spooled_bytes, m.consecutive_failures), (0, 0, 0), "{m:?}");
    assert_eq!(m.uploaded_objects, 7);
    for (key, bytes) in &objects {
        let stored = store.get_bytes(key, None).await.unwrap();
        assert!(&stored == bytes, "{key} differs in the bucket");
        assert_eq!(store.head(key).await.unwrap().sha256, Some(cunneng_storage::store::sha256(bytes)));
        assert!(stored.starts_with(b"CUNNENG\0"), "{key}: only ciphertext in the bucket");
        assert!(&spool.get_bytes(key, None).await.unwrap() == bytes, "read through the spool after upload");
    }
}

#[tokio::test]
async fn a_restarted_spool_resumes_pending_uploads_and_aborts_leftovers() {
    let mut g = Garage::start().await.unwrap();
    let store = s3(&g).await;
    let dir = tempfile::tempdir().unwrap();
    let kek = kek();

    // A multipart upload a crash interrupted.
    let c = store.client();
    let up = c.create_multipart_upload().bucket(store.bucket()).key("media/half.cne").send().await.unwrap();
    c.upload_part()
        .bucket(store.bucket())
        .key("media/half.cne")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(vec![7u8; 1000].into())
        .send()
        .await
        .unwrap();

    g.stop().await.unwrap();
    let mut objects = Vec::new();
    {
        let cfg = SpoolConfig { abort_incomplete_uploads_after_secs: None, ..spool_config(dir.path()) };
        let spool = Spool::open(cfg, store.clone()).await.unwrap();
        for i in 0..4 {
            let key = format!("papers/case-9/doc-{i}.cne");
            let bytes = encrypted(&kek, &key, 50_000);
            spool.put_bytes(&key, &bytes).await.unwrap();
            objects.push((key, bytes));
        }
        // Overwritten while waiting: the newer version wins.
        let newer = encrypted(&kek, &objects[0].0, 60_000);
        spool.put_bytes(&objects[0].0, &newer).await.unwrap();
        objects[0].1 = newer;
        assert_eq!(spool.metrics().spooled_objects, 4);
        spool.shutdown();
    } // dropped, like a process that exits
    // A put that was being written when the process died.
    std::fs::write(dir.path().join("tmp/00000000000000000099"), b"half a put").unwrap();
    assert_eq!(files_in(&dir.path().join("queue")), 4);

    g.start_again().await.unwrap();
    let spool = Spool::open(spool_config(dir.path()), store.clone()).await.unwrap();
    let e = Spool::open(spool_config(dir.path()), store.clone()).await.unwrap_err();
    assert!(e.to_string().contains("in use by another spool"), "{e}");
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "unacknowledged temp file removed");
    assert!(spool.wait_until_drained(Duration::from_secs(30)).await, "{:?}", spool.metrics());
    for (key, bytes) in &objects {
        assert!(&store.get_bytes(key, None).await.unwrap() == bytes, "{key}");
    }
    // The interrupted multipart upload was aborted once the store answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = c.list_multipart_uploads().bucket(store.bucket()).send().await.unwrap().uploads().len();
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "incomplete multipart upload not aborted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn contract_holds_through_the_spool_on_garage() {
    let g = Garage::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig { require_encrypted: false, ..spool_config(dir.path()) };
    let spool = Spool::open(cfg, s3(&g).await).await.unwrap();
    cunneng_storage::contract::run(&spool, "contract/").await;
    assert!(spool.wait_until_drained(Duration::from_secs(30)).await);
    assert!(spool.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn contract_holds_through_the_spool_on_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let backing = Arc::new(LocalStore::open(dir.path().join("store")).await.unwrap());
    let cfg = SpoolConfig { require_encrypted: false, ..spool_config(&dir.path().join("spool")) };
    let spool = Spool::open(cfg, backing).await.unwrap();
    cunneng_storage::contract::run(&spool, "contract/").await;
    assert!(spool.wait_until_drained(Duration::from_secs(10)).await);
}

/// A store that is always down.
async fn unreachable() -> Arc<S3Store> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = S3Config::new(
        Some(format!("http://127.0.0.1:{port}")),
        "us-east-1",
        "bucket",
        S3Credentials::Static { access_key_id: "GKx".into(), secret_access_key: "y".into() },
    );
    c.max_attempts = 1;
    Arc::new(S3Store::connect(&c).await.unwrap())
}

#[tokio::test]
async fn a_full_spool_refuses_with_a_clear_error_and_keeps_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig { quota_bytes: 1_000_000, max_objects: 3, ..spool_config(dir.path()) };
    let spool = Spool::open(cfg, unreachable().await).await.unwrap();
    let kek = kek();
    let a = encrypted(&kek, "media/a", 600_000);
    spool.put_bytes("media/a", &a).await.unwrap();
    let b = encrypted(&kek, "media/b", 600_000);
    let e = spool.put_bytes("media/b", &b).await.unwrap_err();
    assert!(matches!(e, StorageError::SpoolFull { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("spool full: cannot accept `media/b`") && msg.contains("of 1000000 bytes"), "{msg}");
    assert!(matches!(spool.head("media/b").await, Err(StorageError::Unavailable { .. })), "b was not stored");
    assert_eq!(&spool.get_bytes("media/a", None).await.unwrap(), &a, "a is kept");
    assert_eq!(files_in(&dir.path().join("tmp")), 0, "the refused put left nothing");
    // Object count quota.
    for k in ["media/c", "media/d"] {
        spool.put_bytes(k, &encrypted(&kek, k, 10)).await.unwrap();
    }
    let e = spool.put_bytes("media/e", &encrypted(&kek, "media/e", 10)).await.unwrap_err();
    assert!(matches!(e, StorageError::SpoolFull { objects: 3, max_objects: 3, .. }), "{e:?}");
    let m = spool.metrics();
    assert_eq!((m.rejected_puts, m.spooled_objects, m.reserved_bytes), (2, 3, 0), "{m:?}");
    assert!(m.fill_ratio >= 0.8);
}

#[tokio::test]
async fn plaintext_never_reaches_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_config(dir.path()), unreachable().await).await.unwrap();
    for body in [&b"%PDF-1.7 a paper"[..], &[0x1A, 0x45, 0xDF, 0xA3, 1, 2, 3, 4, 5], b"CUNNENG", b""] {
        let e = spool.put_bytes("papers/p.pdf", body).await.unwrap_err();
        assert!(matches!(e, StorageError::NotEncrypted { .. }), "{e:?}");
    }
    assert_eq!(files_in(&dir.path().join("queue")) + files_in(&dir.path().join("tmp")), 0);
    assert_eq!(spool.metrics().reserved_bytes, 0);
}
