//! Known-answer vectors for the object format (storage/tests/vectors/).
//!
//! Every vector is made from fixed keys and a fixed deterministic random source, so the files
//! are reproducible: `vectors_are_reproducible` regenerates them in memory and fails if a single
//! byte differs (the format changed: that needs a new format version, not new vectors).
//! After an intended change, regenerate with
//! `CUNNENG_REGEN_VECTORS=1 cargo test -p cunneng-storage --test vectors`.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::TestRng;
use cunneng_storage::format::{self, EncryptOptions, Header, LINK_LEN, RECORD_OVERHEAD, testing};
use cunneng_storage::{Encryptor, KeyRing, ObjectClass, ObjectId, SeekableReader};

const CHUNK_LOG2: u8 = 7; // 128-byte chunks: several chunks in a small file
const CHUNK: usize = 1 << CHUNK_LOG2;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn key_bytes(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn key_file(entries: &[(&str, &str, [u8; 32])]) -> String {
    let mut s =
        String::from("# Test keys for the checked-in vectors. NOT SECRET: never use them for real data.\nformat = 1\n");
    for (id, status, key) in entries {
        s.push_str(&format!(
            "\n[[key]]\nid = \"{id}\"\ncreated_at = \"2025-01-01T00:00:00Z\"\nstatus = \"{status}\"\nkey = \"{}\"\n",
            hex::encode(key)
        ));
    }
    s
}

/// kek-test-1 (retired) and kek-test-2 (active): the ring after one rotation.
fn keys_toml() -> String {
    key_file(&[("kek-test-1", "retired", key_bytes(0x00)), ("kek-test-2", "active", key_bytes(0x20))])
}

/// kek-test-1 with the wrong 32 bytes.
fn wrong_keys_toml() -> String {
    key_file(&[("kek-test-1", "active", key_bytes(0xA0))])
}

fn ring(text: &str) -> KeyRing {
    KeyRing::from_toml(text, std::path::Path::new("vectors")).unwrap()
}

fn plaintext() -> Vec<u8> {
    let line = "村能办 cunneng test vector: a village service room, a town office, one case.\n";
    line.repeat(5).into_bytes()[..300].to_vec() // chunks of 128 + 128 + 44 bytes
}

fn seal_with(ring: &KeyRing, kek_id: &str, id: &str, data: &[u8], seed: u64) -> Vec<u8> {
    let kek = ring.get(kek_id).unwrap();
    let opts = EncryptOptions { chunk_log2: CHUNK_LOG2 };
    let mut enc =
        Encryptor::with_options(kek, ObjectClass::MEDIA, ObjectId::new(id).unwrap(), opts, &mut TestRng::new(seed))
            .unwrap();
    let mut out = Vec::new();
    enc.update(data, &mut out).unwrap();
    enc.finish(&mut out).unwrap();
    out
}

/// Byte offset where record `i` of an object starts (records before the last are full).
fn record_start(obj: &[u8], i: usize) -> usize {
    let (_, hlen) = Header::parse(obj).unwrap();
    hlen + LINK_LEN + i * (CHUNK + RECORD_OVERHEAD)
}

enum Expect {
    Plain(Vec<u8>),
    Error(&'static str),
}

struct Vector {
    file: &'static str,
    keys: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
    about: &'static str,
}

/// All vectors, generated from scratch.
fn generate() -> (Vec<Vector>, Vec<(&'static str, String)>) {
    let keys = ring(&keys_toml());
    let pt = plaintext();
    let good = seal_with(&keys, "kek-test-1", "vectors/good", &pt, 1);
    let (h, hlen) = Header::parse(&good).unwrap();
    assert_eq!(h.key_id, "kek-test-1");
    let r1 = record_start(&good, 1);
    let r2 = record_start(&good, 2);

    let truncated = good[..r2].to_vec();
    let truncated_mid = good[..r1 + 60].to_vec();
    let two_final = testing::craft(
        keys.get("kek-test-1").unwrap(),
        ObjectClass::MEDIA,
        ObjectId::new("vectors/two-final").unwrap(),
        CHUNK_LOG2,
        &mut TestRng::new(2),
        &[(0, true, &pt[..CHUNK]), (1, true, &pt[CHUNK..2 * CHUNK])],
    );
    let mut bad_tag = good.clone();
    bad_tag[r1 + 9 + 5] ^= 0x01; // one ciphertext bit of chunk 1
    let other = seal_with(&keys, "kek-test-1", "vectors/other", b"another object", 3);
    let (_, other_hlen) = Header::parse(&other).unwrap();
    let mut swapped = other[..other_hlen].to_vec();
    swapped.extend_from_slice(&good[hlen..]);
    let r0 = record_start(&good, 0);
    let mut reordered = good[..r0].to_vec();
    reordered.extend_from_slice(&good[r1..r2]);
    reordered.extend_from_slice(&good[r0..r1]);
    reordered.extend_from_slice(&good[r2..]);
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"GARBAGE!");
    let mut bad_commitment = good.clone();
    let commitment_at = hlen - 48 - 12 - 1 - h.key_id.len() - 32;
    bad_commitment[commitment_at] ^= 0x80;
    let (new_header, old_len) =
        format::rewrap_header(&keys, keys.get("kek-test-2").unwrap(), &good, &mut TestRng::new(4)).unwrap();
    let mut rewrapped = new_header;
    rewrapped.extend_from_slice(&good[old_len..]);
    let empty = seal_with(&keys, "kek-test-1", "vectors/empty", b"", 5);

    use Expect::*;
    let v = |file, keys, bytes, expect, about| Vector { file, keys, bytes, expect, about };
    let vectors = vec![
        v(
            "good.cne",
            "keys.toml",
            good.clone(),
            Plain(pt.clone()),
            "valid object, 3 chunks (128+128+44 bytes), kek-test-1",
        ),
        v("empty.cne", "keys.toml", empty, Plain(Vec::new()), "valid empty object: one empty final chunk"),
        v(
            "rewrapped.cne",
            "keys.toml",
            rewrapped,
            Plain(pt.clone()),
            "good.cne rewrapped to kek-test-2: same body bytes",
        ),
        v(
            "good.cne",
            "wrong-keys.toml",
            good.clone(),
            Error("WrongKek { key_id: \"kek-test-1\" }"),
            "good.cne with a different key under the same id",
        ),
        v(
            "truncated.cne",
            "keys.toml",
            truncated,
            Error("Truncated { at: 463 }"),
            "good.cne without its final chunk (cut at a chunk boundary)",
        ),
        v(
            "truncated-mid.cne",
            "keys.toml",
            truncated_mid,
            Error("Truncated { at: 370 }"),
            "good.cne cut inside chunk 1",
        ),
        v(
            "two-final.cne",
            "keys.toml",
            two_final,
            Error("FinalChunkNotLast { index: 0 }"),
            "chunks 0 and 1 both sealed as final",
        ),
        v(
            "bad-tag.cne",
            "keys.toml",
            bad_tag,
            Error("ChunkAuthFailed { index: 1 }"),
            "good.cne with one ciphertext bit of chunk 1 flipped",
        ),
        v(
            "swapped-header.cne",
            "keys.toml",
            swapped,
            Error("HeaderMismatch"),
            "header of another object (vectors/other) on good.cne's body",
        ),
        v(
            "reordered.cne",
            "keys.toml",
            reordered,
            Error("ChunkOutOfOrder { expected: 0, found: 1 }"),
            "good.cne with chunks 0 and 1 swapped",
        ),
        v(
            "trailing.cne",
            "keys.toml",
            trailing,
            Error("TrailingData { at: 532 }"),
            "good.cne followed by 8 bytes of garbage",
        ),
        v(
            "bad-commitment.cne",
            "keys.toml",
            bad_commitment,
            Error("KeyCommitmentMismatch"),
            "good.cne with one bit of the key commitment flipped",
        ),
    ];
    let keyfiles = vec![("keys.toml", keys_toml()), ("wrong-keys.toml", wrong_keys_toml())];
    (vectors, keyfiles)
}

fn readme(vectors: &[Vector]) -> String {
    let mut s = String::from(
        "# Object format test vectors (format version 1)\n\n\
         Generated by `storage/tests/vectors.rs` from fixed keys and a fixed deterministic random\n\
         source; checked by the same file. Regenerate only for a deliberate format change:\n\
         `CUNNENG_REGEN_VECTORS=1 cargo test -p cunneng-storage --test vectors`.\n\
         Class `media`, chunk size 128 bytes. Keys: `keys.toml` (kek-test-1 retired, kek-test-2\n\
         active), `wrong-keys.toml` (kek-test-1 with other bytes). Test keys only.\n\n\
         | file | keys | expected | what |\n|---|---|---|---|\n",
    );
    for v in vectors {
        let expect = match &v.expect {
            Expect::Plain(p) => format!("plaintext, {} bytes", p.len()),
            Expect::Error(e) => format!("`{e}`"),
        };
        s.push_str(&format!("| {} | {} | {} | {} |\n", v.file, v.keys, expect, v.about));
    }
    s
}

#[test]
fn vectors_are_reproducible() {
    let (vectors, keyfiles) = generate();
    let regen = std::env::var_os("CUNNENG_REGEN_VECTORS").is_some();
    let mut files: Vec<(String, Vec<u8>)> = keyfiles.into_iter().map(|(n, t)| (n.to_owned(), t.into_bytes())).collect();
    for v in &vectors {
        if !files.iter().any(|(n, _)| n == v.file) {
            files.push((v.file.to_owned(), v.bytes.clone()));
        }
    }
    files.push(("README.md".to_owned(), readme(&vectors).into_bytes()));
    for (name, bytes) in files {
        let path = dir().join(&name);
        if regen {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            on_disk == bytes,
            "{name} differs from what this build generates: the object format changed. \
             A format change needs a new version (docs/storage-format.md), then regenerated vectors."
        );
    }
}

#[test]
fn vectors_decrypt_as_expected() {
    for v in generate().0 {
        let bytes = std::fs::read(dir().join(v.file)).unwrap();
        let ring = ring(&std::fs::read_to_string(dir().join(v.keys)).unwrap());
        let got = format::open(&ring, &bytes);
        match (&v.expect, got) {
            (Expect::Plain(want), Ok((info, plain))) => {
                assert_eq!(&plain, want, "{}", v.file);
                assert_eq!(info.plaintext_len, want.len() as u64);
                // Random access agrees.
                let mut r = SeekableReader::new(&ring, std::io::Cursor::new(&bytes)).unwrap();
                let mut all = Vec::new();
                r.read_to_end(&mut all).unwrap();
                assert_eq!(&all, want, "{} via SeekableReader", v.file);
            }
            (Expect::Error(want), Err(e)) => {
                assert_eq!(format!("{e:?}"), *want, "{} with {}", v.file, v.keys);
                assert!(e.is_integrity_error(), "{e:?} is an integrity error");
                // Random access must fail too (the error may be less specific).
                let ra = SeekableReader::new(&ring, std::io::Cursor::new(&bytes)).and_then(|mut r| {
                    let mut all = Vec::new();
                    r.read_to_end(&mut all).map_err(cunneng_storage::StorageError::from_io)
                });
                assert!(ra.is_err(), "{}: random access accepted a bad object", v.file);
            }
            (Expect::Plain(_), Err(e)) => panic!("{}: expected plaintext, got {e:?}", v.file),
            (Expect::Error(want), Ok(_)) => panic!("{}: expected {want}, got plaintext", v.file),
        }
    }
}

#[test]
fn rewrapped_vector_shares_the_body() {
    let good = std::fs::read(dir().join("good.cne")).unwrap();
    let re = std::fs::read(dir().join("rewrapped.cne")).unwrap();
    let (_, a) = Header::parse(&good).unwrap();
    let (h, b) = Header::parse(&re).unwrap();
    assert_eq!(h.key_id, "kek-test-2");
    assert_eq!(good[a..], re[b..]);
    // Without the old key, only the rewrapped copy opens.
    let only_new = ring(&key_file(&[("kek-test-2", "active", key_bytes(0x20))]));
    assert!(format::open(&only_new, &re).is_ok());
    let e = format::open(&only_new, &good).unwrap_err();
    assert_eq!(format!("{e:?}"), "UnknownKeyId(\"kek-test-1\")");
    assert_eq!(e.to_string(), "no key-encryption key with id `kek-test-1` in the key ring");
}
