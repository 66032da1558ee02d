//! The sealed-object reader (storage/src/format.rs): whole-object `open`, the streaming
//! `Decryptor` fed in pieces, and the random-access `SeekableReader` must agree on every input,
//! and a sealed object with any byte changed must never open.
//!
//! Input, first byte even: the rest is an object, read with the keys of the checked-in
//! vectors (storage/tests/vectors/keys.toml). First byte odd: a plan (fuzz/README.md): chunks
//! sealed with the real chunk key, in any order and with any final flags, then byte edits.
#![no_main]

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use cunneng_fuzz::Input;
use cunneng_storage::format::{self, Decryptor, MIN_CHUNK_LOG2, testing};
use cunneng_storage::{KeyRing, ObjectClass, ObjectId, SeekableReader};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let text = include_str!("../../storage/tests/vectors/keys.toml");
    KeyRing::from_toml(text, std::path::Path::new("keys.toml")).expect("the vectors' keys")
});

/// Reads `obj` three ways; they must agree. Returns the plaintext if it opened.
fn read_all_ways(obj: &[u8], pieces: u8) -> Option<Vec<u8>> {
    let ring = &*RING;
    let whole = format::open(ring, obj);

    // Streaming, in pieces of 1..=pieces+1 bytes, cycling.
    let mut dec = Decryptor::new(ring);
    let mut streamed = Vec::new();
    let mut rest = obj;
    let mut step = 0usize;
    let mut failed = None;
    while !rest.is_empty() {
        let n = (step % (usize::from(pieces) + 1) + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        step += 1;
        if let Err(e) = dec.update(piece, &mut streamed) {
            failed = Some(e);
            break;
        }
    }
    let streamed = match failed {
        Some(e) => Err(e),
        None => dec.finish().map(|info| (info, streamed)),
    };
    match (&whole, &streamed) {
        (Ok((a, pa)), Ok((b, pb))) => {
            assert_eq!(pa, pb, "streamed plaintext differs");
            assert_eq!((a.plaintext_len, a.chunks), (b.plaintext_len, b.chunks));
            assert_eq!(a.plaintext_len, pa.len() as u64);
        }
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "the error depends on the pieces"),
        (a, b) => panic!("whole {:?} but streamed {:?}", a.as_ref().err(), b.as_ref().err()),
    }

    // Random access: opening checks the final chunk; reading everything checks the rest.
    let seekable = SeekableReader::new(ring, Cursor::new(obj)).map_err(|e| format!("{e:?}")).and_then(|mut r| {
        let mut all = Vec::new();
        r.read_to_end(&mut all).map_err(|e| format!("{e:?}"))?;
        Ok((r, all))
    });
    match (&whole, seekable) {
        (Ok((_, plain)), Ok((mut r, all))) => {
            assert_eq!(&all, plain, "random-access plaintext differs");
            assert_eq!(r.len(), plain.len() as u64);
            // One seek and read somewhere inside.
            if !plain.is_empty() {
                let at = (usize::from(pieces) * 37) % plain.len();
                r.seek(SeekFrom::Start(at as u64)).expect("seek");
                let mut buf = vec![0u8; 100];
                let n = r.read(&mut buf).expect("read");
                assert!(n > 0);
                assert_eq!(&buf[..n], &plain[at..at + n]);
            }
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("opens whole but not for random access: {e:?}"),
        (Err(e), Ok(_)) => panic!("opens for random access but not whole: {e:?}"),
    }
    whole.ok().map(|(_, p)| p)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let Some(mode) = input.byte() else { return };
    if mode & 1 == 0 {
        read_all_ways(input.rest(), mode >> 1);
        return;
    }

    // A plan: chunk size, chunks, edits.
    let (Some(size), Some(seed), Some(count)) = (input.byte(), input.byte(), input.byte()) else { return };
    let chunk_log2 = MIN_CHUNK_LOG2 + size % 3;
    let chunk = 1usize << chunk_log2;
    let mut chunks: Vec<(u32, bool, Vec<u8>)> = Vec::new();
    for j in 0..u32::from(count % 6) {
        let Some(c) = input.byte() else { break };
        let index = if c & 0x80 != 0 { u32::from((c >> 4) & 0x07) } else { j };
        let last = c & 0x01 != 0;
        // Non-final chunks are full (the writer never makes others); a final one any length.
        let len = if last { usize::from(input.byte().unwrap_or(0)) % (chunk + 1) } else { chunk };
        let plain = (0..len).map(|k| (k as u8).wrapping_mul(31).wrapping_add(j as u8)).collect();
        chunks.push((index, last, plain));
    }
    let kek = RING.get("kek-test-1").expect("kek-test-1");
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(seed));
    let plan: Vec<(u32, bool, &[u8])> = chunks.iter().map(|(i, l, p)| (*i, *l, p.as_slice())).collect();
    let id = ObjectId::new("fuzz/object").expect("an id");
    let sealed = testing::craft(kek, ObjectClass::MEDIA, id, chunk_log2, &mut rng, &plan);

    // Well formed: chunks 0, 1, ... in order, only the last one final.
    let n = chunks.len();
    let valid = n > 0 && chunks.iter().enumerate().all(|(j, (i, last, _))| *i as usize == j && *last == (j + 1 == n));
    let opened = read_all_ways(&sealed, seed);
    if valid {
        let plain: Vec<u8> = chunks.iter().flat_map(|(_, _, p)| p.iter().copied()).collect();
        assert_eq!(opened.as_ref(), Some(&plain), "a well-formed object opens to its plaintext");
    } else {
        assert!(opened.is_none(), "an ill-formed object opened");
    }

    // Edits: (op, offset u16, value).
    let mut edited = sealed.clone();
    while let (Some(op), Some(offset), Some(value)) = (input.byte(), input.u16(), input.byte()) {
        let at = usize::from(offset) % (edited.len() + 1);
        match op % 4 {
            0 if at < edited.len() => edited[at] ^= value | 1,
            1 => edited.truncate(at),
            2 => edited.insert(at, value),
            3 if at < edited.len() => {
                edited.remove(at);
            }
            _ => {}
        }
    }
    if edited != sealed {
        let opened = read_all_ways(&edited, seed);
        if valid {
            assert!(opened.is_none(), "a changed object opened");
        }
    }
});
