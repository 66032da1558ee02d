//! The one rate limiter of the server: token buckets for a socket's message rate, and keyed
//! limits (per client address and per account: the public progress lookup, logins). A refusal
//! says how long until the next token (`Retry-After`). Time is passed in, so the logic is
//! tested without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate_per_sec: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: f64::from(burst), rate: rate_per_sec, burst: f64::from(burst), last: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Take one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.take(now).is_ok()
    }

    /// Take one token, or say how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(86_400.0)))
        } else {
            Err(Duration::from_secs(86_400))
        }
    }

    /// Would the bucket be full at `now` (nothing to remember about it)?
    fn is_full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + dt * self.rate >= self.burst
    }
}

/// One bucket per key (client address), remembering at most `max_keys`: past that, the keys
/// whose buckets are full again are forgotten, and if none are, the least recently used half.
pub struct KeyedLimiter<K> {
    rate: f64,
    burst: u32,
    max_keys: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    pub fn new(rate_per_sec: f64, burst: u32, max_keys: usize) -> KeyedLimiter<K> {
        KeyedLimiter { rate: rate_per_sec, burst, max_keys: max_keys.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take one token from `key`'s bucket.
    pub fn allow(&self, key: &K, now: Instant) -> bool {
        self.take(key, now).is_ok()
    }

    /// Take one token from `key`'s bucket, or say how long until there is one.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max_keys && !map.contains_key(key) {
            map.retain(|_, b| !b.is_full(now));
            if map.len() >= self.max_keys {
                let mut times: Vec<Instant> = map.values().map(|b| b.last).collect();
                times.sort();
                let cut = times[times.len() / 2];
                map.retain(|_, b| b.last > cut);
            }
        }
        map.entry(key.clone()).or_insert_with(|| TokenBucket::new(self.rate, self.burst, now)).take(now)
    }

    /// Is there a token for `key`, without taking it? (To check several limits before
    /// taking from any.)
    pub fn would_allow(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            None => Ok(()),
            Some(b) => b.clone().take(now),
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// At most `max` things (connections, sockets) open at once per key (client address). A
/// slot is given back when its [`Slot`] is dropped; memory is one entry per key with a slot.
pub struct KeyedSlots<K: Eq + Hash + Clone> {
    max: usize,
    open: std::sync::Arc<Mutex<HashMap<K, usize>>>,
}

/// One open thing of a key; dropping it frees the slot.
pub struct Slot<K: Eq + Hash + Clone> {
    key: K,
    open: std::sync::Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash + Clone> KeyedSlots<K> {
    pub fn new(max: usize) -> KeyedSlots<K> {
        KeyedSlots { max: max.max(1), open: Default::default() }
    }

    /// A slot for `key`, or `None` when it has `max` open already.
    pub fn try_take(&self, key: &K) -> Option<Slot<K>> {
        let mut map = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot { key: key.clone(), open: self.open.clone() })
    }

    /// Slots open for `key` now.
    pub fn open(&self, key: &K) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut map = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// At most one log line per `every` for each kind of event: a flood of refusals makes one
/// line per interval that says how many there were, instead of one line each.
pub struct LogGate {
    every: Duration,
    /// Per kind: when a line was last due, and the events held back since.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogGate {
    pub fn new(every: Duration) -> LogGate {
        LogGate { every, last: Mutex::new(HashMap::new()) }
    }

    /// One event of `kind` at `now`. `Some(n)` when a line is due: `n` events (this one
    /// included) since the last line; `None` while within `every` of it.
    pub fn event(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut map = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(kind) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held + 1;
                (*at, *held) = (now, 0);
                Some(n)
            }
            None => {
                map.insert(kind, (now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn bucket_bursts_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3, t0);
        assert!(b.allow(t0) && b.allow(t0) && b.allow(t0));
        assert!(!b.allow(t0));
        assert!(b.allow(t0 + Duration::from_millis(500)));
        assert!(!b.allow(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long it waited.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.allow(later) && b.allow(later) && b.allow(later));
        assert!(!b.allow(later));
        // A clock that goes back does not mint tokens.
        assert!(!b.allow(t0));
    }

    #[test]
    fn per_address_limits() {
        // Five lookups in a burst, one more every six seconds.
        let l: KeyedLimiter<IpAddr> = KeyedLimiter::new(1.0 / 6.0, 5, 10_000);
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.allow(&ip, t0));
        }
        assert!(!l.allow(&ip, t0));
        assert!(l.allow(&ip, t0 + Duration::from_secs(7)));
        assert!(!l.allow(&ip, t0 + Duration::from_secs(7)));
        // Another address is not affected.
        assert!(l.allow(&"192.0.2.78".parse().unwrap(), t0));
        // A refusal says when to come back: the next token in six seconds at most.
        let wait = l.take(&ip, t0 + Duration::from_secs(7)).unwrap_err();
        assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(6), "{wait:?}");
        assert_eq!(l.would_allow(&ip, t0 + Duration::from_secs(7)), Err(wait));
        assert_eq!(l.would_allow(&"192.0.2.99".parse().unwrap(), t0), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let l: KeyedLimiter<u32> = KeyedLimiter::new(1.0, 2, 100);
        let t0 = Instant::now();
        for k in 0..1000u32 {
            l.allow(&k, t0 + Duration::from_millis(u64::from(k)));
            assert!(l.len() <= 100);
        }
        // A key that is still limited survives the forgetting while it is recent.
        let hot = 5000u32;
        let t = t0 + Duration::from_secs(2);
        assert!(l.allow(&hot, t) && l.allow(&hot, t));
        assert!(!l.allow(&hot, t));
    }

    #[test]
    fn slots_per_key() {
        let slots: KeyedSlots<u8> = KeyedSlots::new(2);
        let a = slots.try_take(&1).unwrap();
        let b = slots.try_take(&1).unwrap();
        assert!(slots.try_take(&1).is_none());
        assert!(slots.try_take(&2).is_some(), "another key has its own slots");
        drop(a);
        assert_eq!(slots.open(&1), 1);
        let _c = slots.try_take(&1).unwrap();
        drop(b);
        assert_eq!(slots.open(&1), 1);
        assert_eq!(slots.open(&2), 0, "a key without open slots is forgotten");
    }

    #[test]
    fn a_flood_makes_one_line_per_interval_with_its_count() {
        let gate = LogGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(gate.event("connection_limit", t0), Some(1), "the first event is logged at once");
        for i in 1..=99 {
            assert_eq!(gate.event("connection_limit", t0 + Duration::from_millis(i * 50)), None);
        }
        assert_eq!(gate.event("open_connections", t0), Some(1), "another kind has its own line");
        // The first event after the interval says how many there were since the last line.
        assert_eq!(gate.event("connection_limit", t0 + Duration::from_secs(10)), Some(100));
        assert_eq!(gate.event("connection_limit", t0 + Duration::from_secs(11)), None);
        assert_eq!(gate.event("connection_limit", t0 + Duration::from_secs(25)), Some(2));
    }
}
