//! Property tests of the object format: cut points, splices, random-access reads, streaming.

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom};

use common::TestRng;
use cunneng_storage::format::{EncryptOptions, OpenedObject};
use cunneng_storage::{Decryptor, Encryptor, Kek, KeyRing, ObjectClass, ObjectId, SeekableReader, StorageError};
use proptest::prelude::*;

fn ring() -> KeyRing {
    KeyRing::from_keys(vec![Kek::from_bytes("kek-prop", [9; 32]).unwrap()]).unwrap()
}

fn seal(ring: &KeyRing, id: &str, data: &[u8], chunk_log2: u8, seed: u64, pieces: &[usize]) -> Vec<u8> {
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
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if pieces.is_empty() { rest.len() } else { pieces[i % pieces.len()].clamp(1, rest.len()) };
        enc.update(&rest[..n], &mut out).unwrap();
        rest = &rest[n..];
        i += 1;
    }
    enc.finish(&mut out).unwrap();
    out
}

/// Decrypt in pieces; returns what was emitted before any error, and the result.
fn stream_open(ring: &KeyRing, obj: &[u8], piece: usize) -> (Vec<u8>, Result<(), StorageError>) {
    let mut dec = Decryptor::new(ring);
    let mut out = Vec::new();
    for p in obj.chunks(piece.max(1)) {
        if let Err(e) = dec.update(p, &mut out) {
            return (out, Err(e));
        }
    }
    (out, dec.finish().map(|_| ()))
}

/// Read everything through random access.
fn random_access_all(ring: &KeyRing, obj: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut r = SeekableReader::new(ring, Cursor::new(obj))?;
    let mut all = Vec::new();
    r.read_to_end(&mut all).map_err(StorageError::from_io)?;
    Ok(all)
}

/// A way to damage an object.
#[derive(Debug, Clone)]
enum Splice {
    /// Remove bytes a..b.
    Delete(usize, usize),
    /// Insert bytes at a.
    Insert(usize, Vec<u8>),
    /// Copy bytes a..b to position c.
    Duplicate(usize, usize, usize),
    /// Swap the ranges a..a+n and b..b+n.
    Swap(usize, usize, usize),
    /// Prefix of this object up to a, then the other object from b.
    Join(usize, usize),
    /// XOR one byte.
    Flip(usize, u8),
}

fn apply(obj: &[u8], other: &[u8], s: &Splice) -> Vec<u8> {
    let n = obj.len();
    let c = |x: usize| x % (n + 1);
    match s {
        Splice::Delete(a, b) => {
            let (a, b) = (c(*a).min(c(*b)), c(*a).max(c(*b)));
            [&obj[..a], &obj[b..]].concat()
        }
        Splice::Insert(a, bytes) => [&obj[..c(*a)], bytes, &obj[c(*a)..]].concat(),
        Splice::Duplicate(a, b, at) => {
            let (a, b) = (c(*a).min(c(*b)), c(*a).max(c(*b)));
            let at = c(*at);
            [&obj[..at], &obj[a..b], &obj[at..]].concat()
        }
        Splice::Swap(a, b, len) => {
            let len = len % (n / 2 + 1);
            let (a, b) = (a % (n - len + 1), b % (n - len + 1));
            let (a, b) = (a.min(b), a.max(b));
            if a + len > b {
                return obj.to_vec();
            }
            [&obj[..a], &obj[b..b + len], &obj[a + len..b], &obj[a..a + len], &obj[b + len..]].concat()
        }
        Splice::Join(a, b) => [&obj[..c(*a)], &other[b % (other.len() + 1)..]].concat(),
        Splice::Flip(a, x) => {
            let mut v = obj.to_vec();
            if n > 0 {
                v[a % n] ^= x | 1;
            }
            v
        }
    }
}

fn splice() -> impl Strategy<Value = Splice> {
    let pos = || 0usize..4096;
    prop_oneof![
        (pos(), pos()).prop_map(|(a, b)| Splice::Delete(a, b)),
        (pos(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(a, v)| Splice::Insert(a, v)),
        (pos(), pos(), pos()).prop_map(|(a, b, c)| Splice::Duplicate(a, b, c)),
        (pos(), pos(), 1usize..400).prop_map(|(a, b, n)| Splice::Swap(a, b, n)),
        (pos(), pos()).prop_map(|(a, b)| Splice::Join(a, b)),
        (pos(), any::<u8>()).prop_map(|(a, x)| Splice::Flip(a, x)),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    // 48 cases by default (a few seconds); PROPTEST_CASES=5000 for a long run.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Every strict prefix of a valid object fails, sequentially and by random access, and the
    /// sequential decryptor never emits anything but a prefix of the true plaintext.
    #[test]
    fn every_truncation_fails(
        data in prop::collection::vec(any::<u8>(), 0..700),
        chunk_log2 in 6u8..=8,
        seed in any::<u64>(),
    ) {
        let ring = ring();
        let obj = seal(&ring, "p/trunc", &data, chunk_log2, seed, &[]);
        for cut in 0..obj.len() {
            let (emitted, res) = stream_open(&ring, &obj[..cut], 97);
            prop_assert!(res.is_err(), "cut {} of {} accepted", cut, obj.len());
            prop_assert!(data.starts_with(&emitted), "cut {}: emitted bytes are not a plaintext prefix", cut);
            prop_assert!(random_access_all(&ring, &obj[..cut]).is_err(), "random access accepted cut {}", cut);
        }
    }

    /// Any splice that changes the bytes makes the object fail; nothing but a prefix of the
    /// true plaintext is ever emitted; random access fails too or returns exactly the plaintext.
    #[test]
    fn splices_fail_and_never_yield_wrong_plaintext(
        data in prop::collection::vec(any::<u8>(), 0..1500),
        chunk_log2 in 6u8..=8,
        seed in any::<u64>(),
        piece in 1usize..300,
        splices in prop::collection::vec(splice(), 1..3),
    ) {
        let ring = ring();
        let obj = seal(&ring, "p/splice", &data, chunk_log2, seed, &[]);
        // Another object under the same key and id, for cross-object splices.
        let other_data: Vec<u8> = data.iter().map(|b| b ^ 0x5a).collect();
        let other = seal(&ring, "p/splice", &other_data, chunk_log2, seed ^ 1, &[]);
        let mut bad = obj.clone();
        for s in &splices {
            bad = apply(&bad, &other, s);
        }
        prop_assume!(bad != obj && bad != other);
        let (emitted, res) = stream_open(&ring, &bad, piece);
        prop_assert!(res.is_err(), "spliced object accepted: {:?}", splices);
        prop_assert!(data.starts_with(&emitted), "emitted bytes not a plaintext prefix: {:?}", splices);
        let e = res.unwrap_err();
        // A damaged key id reads as a key the ring does not have.
        let unknown_key = matches!(e, StorageError::UnknownKeyId(_));
        prop_assert!(e.is_integrity_error() || unknown_key, "{:?} is not an integrity error", e);
        if let Ok(all) = random_access_all(&ring, &bad) {
            prop_assert!(false, "random access accepted a spliced object ({} bytes): {:?}", all.len(), splices);
        }
    }

    /// Random seeks and reads return exactly the right bytes; any chunk decrypts on its own.
    #[test]
    fn random_reads_are_exact(
        data in prop::collection::vec(any::<u8>(), 1..3000),
        chunk_log2 in 6u8..=9,
        seed in any::<u64>(),
        reads in prop::collection::vec((any::<prop::sample::Index>(), 0usize..700), 1..20),
    ) {
        let ring = ring();
        let obj = seal(&ring, "p/seek", &data, chunk_log2, seed, &[]);
        let mut r = SeekableReader::new(&ring, Cursor::new(&obj)).unwrap();
        prop_assert_eq!(r.len(), data.len() as u64);
        for (at, len) in reads {
            let pos = at.index(data.len() + 1);
            r.seek(SeekFrom::Start(pos as u64)).unwrap();
            let mut buf = vec![0u8; len];
            let mut got = 0;
            loop {
                let n = r.read(&mut buf[got..]).unwrap();
                if n == 0 { break; }
                got += n;
            }
            let want = &data[pos..(pos + len).min(data.len())];
            prop_assert_eq!(&buf[..got], want);
        }
        let o: &OpenedObject = r.object();
        let chunk = 1usize << chunk_log2;
        for i in 0..o.chunk_count() {
            let range = o.record_range(i).unwrap();
            let plain = o.decrypt_chunk(i, &obj[range.start as usize..range.end as usize]).unwrap();
            let start = i as usize * chunk;
            prop_assert_eq!(&plain[..], &data[start..(start + chunk).min(data.len())]);
        }
    }

    /// The ciphertext does not depend on how the plaintext was split into pieces, and
    /// decryption in any piece size gives the plaintext back.
    #[test]
    fn streaming_is_piece_size_independent(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        chunk_log2 in 6u8..=8,
        seed in any::<u64>(),
        pieces in prop::collection::vec(1usize..300, 1..8),
        piece in 1usize..400,
    ) {
        let ring = ring();
        let whole = seal(&ring, "p/stream", &data, chunk_log2, seed, &[]);
        let split = seal(&ring, "p/stream", &data, chunk_log2, seed, &pieces);
        prop_assert!(whole == split, "ciphertext depends on piece sizes");
        let (out, res) = stream_open(&ring, &whole, piece);
        prop_assert!(res.is_ok(), "{:?}", res);
        prop_assert_eq!(out, data);
    }
}
