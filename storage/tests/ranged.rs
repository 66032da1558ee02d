//! Ranged reads of an object's plaintext from a store (`cunneng_storage::ranged`): any range of
//! any object reads back exactly, from exactly the records that hold it; a damaged chunk in the
//! range is detected and nothing of it is handed out; an object still in the spool is read
//! from the spool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestRng;
use common::stores::{CountingStore, DownStore, MemStore};
use cunneng_storage::format::{EncryptOptions, MAX_PRELUDE_LEN, OpenedObject};
use cunneng_storage::{
    Encryptor, Kek, KeyRing, ObjectClass, ObjectId, ObjectStore, RangeOptions, RangedObject, Spool, SpoolConfig,
    StorageError,
};
use proptest::prelude::*;

fn ring() -> KeyRing {
    KeyRing::from_keys(vec![Kek::from_bytes("kek-ranged", [5; 32]).unwrap()]).unwrap()
}

fn seal(ring: &KeyRing, id: &str, data: &[u8], chunk_log2: u8, seed: u64) -> Vec<u8> {
    let opts = EncryptOptions { chunk_log2 };
    let mut enc = Encryptor::with_options(
        ring.active(),
        ObjectClass::MEDIA,
        ObjectId::new(id).unwrap(),
        opts,
        &mut TestRng::new(seed),
    )
    .unwrap();
    let mut out = Vec::new();
    enc.update(data, &mut out).unwrap();
    enc.finish(&mut out).unwrap();
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Open `key` in `store` and read `range`: the pieces handed out (each at most a chunk), and
/// how the read ended.
async fn read_range(
    store: Arc<dyn ObjectStore>,
    key: &str,
    range: std::ops::Range<u64>,
    options: RangeOptions,
) -> (Vec<u8>, Result<(), StorageError>) {
    let ring = ring();
    let id = ObjectId::new(key).unwrap();
    let mut out = Vec::new();
    let result = async {
        let o =
            RangedObject::open(store, &ring, vec![key.to_owned()], Some((&ObjectClass::MEDIA, &id)), options).await?;
        let chunk = o.object().chunk_size();
        let mut r = o.read(range)?;
        while let Some(piece) = r.next().await? {
            assert!(!piece.is_empty() && piece.len() <= chunk, "a piece of {} bytes", piece.len());
            out.extend_from_slice(&piece);
        }
        Ok(())
    }
    .await;
    (out, result)
}

/// The bytes a ranged read of `range` must fetch: the first read (header and link, at most
/// MAX_PRELUDE_LEN), the final record unless that read held it, and the records of the range.
fn expected_fetch(obj: &[u8], range: &std::ops::Range<u64>) -> u64 {
    let prelude = obj.len().min(MAX_PRELUDE_LEN);
    let o = OpenedObject::open(&ring(), &obj[..prelude], obj.len() as u64).unwrap();
    let last = o.record_range(o.chunk_count() - 1).unwrap();
    let last = if last.end <= prelude as u64 { 0 } else { last.end - last.start };
    let span = if range.is_empty() {
        0
    } else {
        let s = o.records_span(o.chunks_for(range.clone()).unwrap()).unwrap();
        s.end - s.start
    };
    prelude as u64 + last + span
}

fn range_in(len: usize, a: prop::sample::Index, b: prop::sample::Index) -> std::ops::Range<u64> {
    let (a, b) = (a.index(len + 1), b.index(len + 1));
    a.min(b) as u64..a.max(b) as u64
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Any range of any object reads back exactly, in pieces of at most one chunk, and the
    /// store is read for exactly the header, the final record and the records of the range.
    #[test]
    fn any_range_reads_exactly_its_bytes_from_exactly_its_records(
        data in prop::collection::vec(any::<u8>(), 0..6000),
        chunk_log2 in 6u8..=9,
        seed in any::<u64>(),
        window_bytes in 1u64..3000,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let key = "media/p/archive.webm";
        let obj = seal(&ring(), key, &data, chunk_log2, seed);
        let mem = Arc::new(MemStore::default());
        mem.insert(key, obj.clone());
        let store = Arc::new(CountingStore::new(mem));
        let counts = store.counts.clone();
        let range = range_in(data.len(), a, b);
        let options = RangeOptions { window_bytes, max_chunk_size: 1 << 20 };
        let (out, res) = runtime().block_on(read_range(store, key, range.clone(), options));
        prop_assert!(res.is_ok(), "{:?}", res);
        prop_assert_eq!(&out[..], &data[range.start as usize..range.end as usize]);
        prop_assert_eq!(counts.bytes_read(), expected_fetch(&obj, &range));
        prop_assert_eq!(counts.bytes_asked(), expected_fetch(&obj, &range));
    }

    /// One byte changed in the records of the range: the read fails with an integrity error,
    /// and what it handed out before is a prefix of the true range (never altered bytes).
    /// Changed outside the records it reads (and outside the header and final record), the
    /// read is exact: a range read authenticates what it reads.
    #[test]
    fn a_damaged_chunk_in_range_is_detected(
        data in prop::collection::vec(any::<u8>(), 1..6000),
        chunk_log2 in 6u8..=9,
        seed in any::<u64>(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = "media/p/seg-00001.webm";
        let obj = seal(&ring(), key, &data, chunk_log2, seed);
        let mut range = range_in(data.len(), a, b);
        if range.is_empty() {
            range = range.start.min(data.len() as u64 - 1)..range.start.min(data.len() as u64 - 1) + 1;
        }
        let prelude = obj.len().min(MAX_PRELUDE_LEN);
        let o = OpenedObject::open(&ring(), &obj[..prelude], obj.len() as u64).unwrap();
        let span = o.records_span(o.chunks_for(range.clone()).unwrap()).unwrap();
        let want = &data[range.start as usize..range.end as usize];

        let mut bad = obj.clone();
        let pos = span.start as usize + at.index((span.end - span.start) as usize);
        bad[pos] ^= flip;
        let mem = Arc::new(MemStore::default());
        mem.insert(key, bad);
        let (out, res) = runtime().block_on(read_range(mem, key, range.clone(), RangeOptions::default()));
        prop_assert!(res.is_err(), "a changed byte at {} in the records {:?} of {:?} was not noticed", pos, span, range);
        let e = res.unwrap_err();
        prop_assert!(e.is_integrity_error(), "{:?}", e);
        prop_assert!(want.starts_with(&out), "handed out bytes that are not the range's");

        // The same change outside what the read looks at: not seen, and the bytes are right.
        let last = o.record_range(o.chunk_count() - 1).unwrap();
        let outside: Vec<usize> = (prelude..obj.len())
            .filter(|&p| !(span.start as usize..span.end as usize).contains(&p) && (p as u64) < last.start)
            .collect();
        if !outside.is_empty() {
            let mut bad = obj.clone();
            bad[outside[at.index(outside.len())]] ^= flip;
            let mem = Arc::new(MemStore::default());
            mem.insert(key, bad);
            let (out, res) = runtime().block_on(read_range(mem, key, range.clone(), RangeOptions::default()));
            prop_assert!(res.is_ok(), "{:?}", res);
            prop_assert_eq!(&out[..], want);
        }
    }
}

/// A small range of a large object (16 MiB, 64 KiB chunks): three small reads of the store,
/// about 130 KiB in all; reading the whole object reads it once, in 1 MiB windows.
#[tokio::test]
async fn a_small_range_of_a_large_object_reads_a_small_part_of_it() {
    let key = "media/big/archive.webm";
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let obj = seal(&ring(), key, &data, 16, 1);
    let mem = Arc::new(MemStore::default());
    mem.insert(key, obj.clone());
    let store = Arc::new(CountingStore::new(mem));
    let counts = store.counts.clone();

    let range = 10_000_000..10_000_100;
    let (out, res) = read_range(store.clone(), key, range.clone(), RangeOptions::default()).await;
    res.unwrap();
    assert_eq!(out, data[10_000_000..10_000_100]);
    let read = counts.bytes_read();
    eprintln!("100 bytes of a {} byte object: {} gets, {read} bytes read", obj.len(), counts.gets());
    assert_eq!(counts.gets(), 3, "the header, the final record, the one record of the range");
    assert_eq!(read, expected_fetch(&obj, &range));
    assert_eq!(counts.bytes_asked(), read, "asked for no more than it read");
    assert!(read < 140_000, "{read}");

    let before = (counts.gets(), counts.bytes_read(), counts.bytes_asked());
    let (out, res) = read_range(store, key, 0..data.len() as u64, RangeOptions::default()).await;
    res.unwrap();
    assert!(out == data);
    let (gets, read) = (counts.gets() - before.0, counts.bytes_read() - before.1);
    assert_eq!(counts.bytes_asked() - before.2, read);
    eprintln!("the whole object: {gets} gets, {read} bytes read");
    // 256 records of 65 561 bytes: 15 per 1 MiB window, so 18 windows, plus the two at open.
    assert_eq!(gets, 2 + 256_u64.div_ceil(15));
    assert_eq!(read, expected_fetch(&obj, &(0..data.len() as u64)));
}

/// An object still waiting in the spool (its store is down) is read from the spool.
#[tokio::test]
async fn an_object_in_the_spool_is_read_from_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let down = Arc::new(CountingStore::new(Arc::new(DownStore::default())));
    let counts = down.counts.clone();
    let config = SpoolConfig { backoff_initial_ms: 50, backoff_max_ms: 100, ..SpoolConfig::new(dir.path()) };
    let spool: Arc<dyn ObjectStore> = Arc::new(Spool::open(config, down).await.unwrap());
    let key = "media/c9/call-1/kiosk-1/seg-00000.webm";
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let obj = seal(&ring(), key, &data, 16, 7);
    spool.put_bytes(key, &obj).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the uploader tries and fails
    for range in [0..300_000, 70_000..70_001, 131_071..131_073, 299_000..300_000] {
        let (out, res) = read_range(spool.clone(), key, range.clone(), RangeOptions::default()).await;
        res.unwrap();
        assert_eq!(out, data[range.start as usize..range.end as usize]);
    }
    assert_eq!(counts.gets(), 0, "the store behind the spool was never asked");
}
