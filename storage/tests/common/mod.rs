//! Shared test helpers: a deterministic "random" source for reproducible vectors.
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// Deterministic byte stream: SHA-256(seed ‖ counter) blocks. Stable forever (it does not
/// depend on any RNG crate's algorithm), so checked-in vectors stay reproducible. Claims
/// `CryptoRng` only so it can stand in for the OS generator in tests.
pub struct TestRng {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng { seed, counter: 0, block: [0; 32], used: 32 }
    }
}

impl rand::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            if self.used == 32 {
                let mut h = Sha256::new();
                h.update(b"cunneng test rng");
                h.update(self.seed.to_be_bytes());
                h.update(self.counter.to_be_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *d = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand::CryptoRng for TestRng {}

pub mod stores;
