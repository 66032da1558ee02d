//! Throughput of the object format: `cargo bench -p cunneng-storage`.
//! Prints MB/s (10^6 bytes of plaintext per second) for seal, open and random-access reads.

use std::hint::black_box;
use std::io::{Cursor, Read};
use std::time::{Duration, Instant};

use cunneng_storage::{Decryptor, Encryptor, Kek, KeyRing, ObjectClass, ObjectId, SeekableReader, open, seal};

const SIZE: usize = 64 * 1024 * 1024;
const PIECE: usize = 1024 * 1024;

fn measure(name: &str, bytes: usize, mut f: impl FnMut()) {
    f(); // warm up
    let mut runs = Vec::new();
    let start = Instant::now();
    while runs.len() < 3 || (start.elapsed() < Duration::from_secs(3) && runs.len() < 20) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed());
    }
    let best = runs.iter().min().expect("ran");
    let mbps = bytes as f64 / best.as_secs_f64() / 1e6;
    println!("{name:<42} {mbps:>8.0} MB/s  (best of {}, {:.1} ms)", runs.len(), best.as_secs_f64() * 1e3);
}

fn main() {
    let ring = KeyRing::from_keys(vec![Kek::from_bytes("bench", [3; 32]).expect("kek")]).expect("ring");
    let data: Vec<u8> = (0..SIZE).map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8).collect();
    let id = || ObjectId::new("bench/object").expect("id");

    measure("seal (in memory, 64 KiB chunks)", SIZE, || {
        black_box(seal(ring.active(), ObjectClass::MEDIA, id(), &data).expect("seal"));
    });
    let mut out = Vec::with_capacity(PIECE + 4096);
    measure("Encryptor::update, 1 MiB pieces", SIZE, || {
        let mut enc = Encryptor::new(ring.active(), ObjectClass::MEDIA, id()).expect("enc");
        for piece in data.chunks(PIECE) {
            out.clear();
            enc.update(piece, &mut out).expect("update");
            black_box(&out);
        }
        out.clear();
        enc.finish(&mut out).expect("finish");
    });
    let obj = seal(ring.active(), ObjectClass::MEDIA, id(), &data).expect("seal");
    measure("open (in memory)", SIZE, || {
        black_box(open(&ring, &obj).expect("open"));
    });
    measure("Decryptor::update, 1 MiB pieces", SIZE, || {
        let mut dec = Decryptor::new(&ring);
        for piece in obj.chunks(PIECE) {
            out.clear();
            dec.update(piece, &mut out).expect("update");
            black_box(&out);
        }
        dec.finish().expect("finish");
    });
    let mut buf = vec![0u8; PIECE];
    measure("SeekableReader, sequential 1 MiB reads", SIZE, || {
        let mut r = SeekableReader::new(&ring, Cursor::new(&obj)).expect("reader");
        while r.read(&mut buf).expect("read") > 0 {}
    });
    let small = vec![7u8; 4096];
    let n = 2000;
    measure("seal+open of 4 KiB objects (per-object cost)", n * small.len(), || {
        for _ in 0..n {
            let o = seal(ring.active(), ObjectClass::MANIFEST, id(), &small).expect("seal");
            black_box(open(&ring, &o).expect("open"));
        }
    });
}
