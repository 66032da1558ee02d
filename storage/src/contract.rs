//! The behaviour every [`ObjectStore`] backend must have, as one test function that any
//! backend's tests run: `cunneng_storage::contract::run(&store, "some/prefix/").await`
//! (feature `test-support`). It panics with a description of the first violation.
//!
//! Everything it writes is under `prefix` (which must end in `/`), and it deletes what it
//! wrote, so it can run against a shared bucket.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::error::StorageError;
use crate::store::{ByteRange, ObjectStore, sha256};

/// A body that yields some bytes, then fails: a client that disconnects mid-upload.
struct FailingBody {
    left: usize,
}

impl AsyncRead for FailingBody {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away")));
        }
        let n = self.left.min(buf.remaining()).min(1000);
        buf.put_slice(&vec![0xEE; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed).collect()
}

/// Run the contract against `store`, using keys under `prefix`.
pub async fn run(store: &dyn ObjectStore, prefix: &str) {
    assert!(prefix.ends_with('/'), "the contract needs a prefix ending in '/'");
    let k = |s: &str| format!("{prefix}{s}");

    // put / get / head round trip, receipt
    let small = pattern(1000, 1);
    let receipt = store.put_bytes(&k("obj/small"), &small).await.expect("put small");
    assert_eq!(receipt.size, 1000, "receipt size");
    assert_eq!(receipt.sha256, sha256(&small), "receipt sha256");
    assert_eq!(store.get_bytes(&k("obj/small"), None).await.expect("get small"), small, "get returns what was put");
    let meta = store.head(&k("obj/small")).await.expect("head small");
    assert_eq!((meta.key.as_str(), meta.size), (k("obj/small").as_str(), 1000), "head");

    // streaming put of a large body with no expected checksum
    let big = pattern(3 * 1024 * 1024 + 17, 2);
    let mut r: &[u8] = &big;
    let receipt = store.put(&k("obj/big"), &mut r, None).await.expect("put big");
    assert_eq!((receipt.size, receipt.sha256), (big.len() as u64, sha256(&big)), "big receipt");
    let got = store.get(&k("obj/big"), None).await.expect("get big");
    assert_eq!(got.size, big.len() as u64);
    assert!(got.bytes().await.expect("read big") == big, "big object round trip");

    // empty object
    store.put_bytes(&k("obj/empty"), b"").await.expect("put empty");
    assert_eq!(store.head(&k("obj/empty")).await.expect("head empty").size, 0);
    assert_eq!(store.get_bytes(&k("obj/empty"), None).await.expect("get empty"), b"");
    assert_eq!(store.get_bytes(&k("obj/empty"), Some(ByteRange::from(0))).await.expect("range of empty"), b"");

    // ranges
    let n = big.len() as u64;
    let cases = [
        (ByteRange::new(0, 1), 0..1),
        (ByteRange::new(65_536, 65_536 + 4_096), 65_536..69_632),
        (ByteRange::from(n - 10), n - 10..n),
        (ByteRange::new(n - 10, n + 1_000), n - 10..n),
        (ByteRange::from(n), n..n),
        (ByteRange::new(5, 5), 5..5),
    ];
    for (range, want) in cases {
        let got = store.get(&k("obj/big"), Some(range)).await.unwrap_or_else(|e| panic!("range {range:?}: {e}"));
        assert_eq!(got.range, want.clone(), "resolved range for {range:?}");
        assert_eq!(got.size, n, "size with range {range:?}");
        let bytes = got.bytes().await.expect("read range");
        assert!(bytes == big[want.start as usize..want.end as usize], "bytes of range {range:?}");
    }
    for range in [ByteRange::from(n + 1), ByteRange::new(10, 9)] {
        let e = store.get(&k("obj/big"), Some(range)).await.err();
        assert!(
            matches!(e, Some(StorageError::InvalidRange { .. })),
            "range {range:?} must be InvalidRange, got {e:?}"
        );
    }

    // copy: a complete, independent object under the new key; missing source is NotFound
    let receipt = store.copy(&k("obj/big"), &k("obj/copy")).await.expect("copy");
    assert_eq!((receipt.size, receipt.sha256), (big.len() as u64, sha256(&big)), "copy receipt");
    assert!(store.get_bytes(&k("obj/copy"), None).await.expect("get copy") == big, "copy has the same bytes");
    store.delete(&k("obj/copy")).await.expect("delete copy");
    assert!(store.get_bytes(&k("obj/big"), Some(ByteRange::new(0, 4))).await.is_ok(), "source kept");
    let e = store.copy(&k("obj/missing"), &k("obj/copy2")).await.err();
    assert!(matches!(e, Some(StorageError::NotFound(_))), "copy of a missing object, got {e:?}");

    // overwrite replaces
    let v2 = pattern(10, 3);
    store.put_bytes(&k("obj/small"), &v2).await.expect("overwrite");
    assert_eq!(store.get_bytes(&k("obj/small"), None).await.expect("get overwritten"), v2, "overwrite replaces");
    assert_eq!(store.head(&k("obj/small")).await.expect("head").size, 10);

    // a wrong checksum stores nothing and keeps the previous object
    let mut r: &[u8] = b"tampered in transit";
    let e = store.put(&k("obj/small"), &mut r, Some(sha256(b"what was sent"))).await.err();
    assert!(matches!(e, Some(StorageError::ChecksumMismatch { .. })), "checksum mismatch, got {e:?}");
    assert_eq!(store.get_bytes(&k("obj/small"), None).await.expect("get after bad put"), v2, "failed put keeps old");
    let mut r: &[u8] = b"new";
    let e = store.put(&k("obj/new"), &mut r, Some([0; 32])).await.err();
    assert!(matches!(e, Some(StorageError::ChecksumMismatch { .. })), "checksum mismatch, got {e:?}");
    assert!(matches!(store.head(&k("obj/new")).await, Err(StorageError::NotFound(_))), "nothing stored on mismatch");

    // a body that fails mid-stream stores nothing
    let e = store.put(&k("obj/broken"), &mut FailingBody { left: 300_000 }, None).await;
    assert!(e.is_err(), "put with a failing body must fail");
    assert!(matches!(store.head(&k("obj/broken")).await, Err(StorageError::NotFound(_))), "no partial object");

    // missing objects
    assert!(matches!(store.get(&k("obj/missing"), None).await, Err(StorageError::NotFound(_))), "get missing");
    assert!(matches!(store.head(&k("obj/missing")).await, Err(StorageError::NotFound(_))), "head missing");
    assert!(matches!(store.head(&k("obj")).await, Err(StorageError::NotFound(_))), "a prefix is not an object");
    store.delete(&k("obj/missing")).await.expect("delete of a missing object is Ok");

    // list: string-prefix semantics, sorted, sizes
    for (name, len) in [("list/a1", 1), ("list/a2", 2), ("list/a/x", 3), ("list/b", 4), ("list/a10/y", 5)] {
        store.put_bytes(&k(name), &pattern(len, 4)).await.expect("put for list");
    }
    let keys = |v: Vec<crate::store::ObjectMeta>| v.into_iter().map(|m| (m.key, m.size)).collect::<Vec<_>>();
    let all = keys(store.list(&k("list/")).await.expect("list"));
    let want: Vec<(String, u64)> = [("list/a/x", 3), ("list/a1", 1), ("list/a10/y", 5), ("list/a2", 2), ("list/b", 4)]
        .iter()
        .map(|(n, s)| (k(n), *s))
        .collect();
    assert_eq!(all, want, "list of a directory-like prefix");
    let a = keys(store.list(&k("list/a")).await.expect("list"));
    assert_eq!(a, want[..4].to_vec(), "list is a string prefix, not a directory");
    let a1 = keys(store.list(&k("list/a1")).await.expect("list"));
    assert_eq!(a1, vec![want[1].clone(), want[2].clone()], "list/a1 matches a1 and a10/y");
    assert!(store.list(&k("nothing-here/")).await.expect("empty list").is_empty());
    let whole = store.list("").await.expect("list everything");
    assert!(whole.iter().any(|m| m.key == k("list/b")), "empty prefix lists everything");

    // delete
    for (name, _) in &want {
        store.delete(name).await.expect("delete");
        assert!(matches!(store.head(name).await, Err(StorageError::NotFound(_))), "deleted object is gone");
    }
    assert!(store.list(&k("list/")).await.expect("list").is_empty(), "all deleted");

    // invalid keys are rejected by every method, before any I/O
    let bad = ["", "/etc/passwd", "../escape", "a/../../b", "a/./b", "a//b", "a/", ".tmp/x", "a\0b", "a\\b"];
    for key in bad {
        let full = if key.is_empty() || key.starts_with('/') { key.to_owned() } else { k(key) };
        for name in [key.to_owned(), full] {
            let check = |what: &str, e: Option<StorageError>| {
                assert!(
                    matches!(e, Some(StorageError::InvalidKey { .. })),
                    "{what}({name:?}) must be InvalidKey, got {e:?}"
                );
            };
            check("put", store.put_bytes(&name, b"x").await.err());
            check("get", store.get(&name, None).await.err());
            check("head", store.head(&name).await.err());
            check("delete", store.delete(&name).await.err());
        }
    }

    for name in ["obj/small", "obj/big", "obj/empty"] {
        store.delete(&k(name)).await.expect("cleanup");
    }
    assert!(store.list(prefix).await.expect("list").is_empty(), "contract leaves nothing behind");
}
