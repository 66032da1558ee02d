//! The rate limits of the server, on the `governor` crate (GCRA, the token bucket as arrival
//! times): a socket's message rate ([`MessageRate`]), keyed limits per client address, account
//! or kiosk ([`KeyedLimiter`]: the public progress lookup, logins, enrolment), and concurrency
//! slots per key ([`KeyedSlots`], which governor does not do). A refusal says how long until
//! the next token (`Retry-After`). The clock is governor's: [`MonotonicClock`] in the server,
//! `governor::clock::FakeRelativeClock` in the tests.
//!
//! Governor's check always takes a token when there is one. A login must pass two limits (its
//! address and its account) and a refusal by one must not spend the other's token, so the keyed
//! limiter keeps its states in a store of its own ([`Store`]) that can also be asked without
//! taking ([`KeyedLimiter::would_allow`]); the arithmetic stays governor's (its issues #15 and
//! #156 ask for this upstream).

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};

/// `burst` tokens at once, then one more every `one_every` (zero counts as a nanosecond,
/// a zero burst as one: the configuration refuses both before this).
pub fn quota(one_every: Duration, burst: u32) -> Quota {
    Quota::with_period(one_every.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// `per_sec` tokens a second, holding at most `burst`.
pub fn per_second(per_sec: u32, burst: u32) -> Quota {
    quota(Duration::from_secs(1) / per_sec.max(1), burst)
}

fn wait_of<C: Clock>(not_until: &NotUntil<C::Instant>, clock: &C) -> Duration {
    not_until.wait_time_from(clock.now())
}

/// One limit, not keyed: the message rate of one WebSocket.
pub struct MessageRate<C: Clock = MonotonicClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl MessageRate {
    /// A full bucket now.
    pub fn new(quota: Quota) -> MessageRate {
        MessageRate::with_clock(quota, MonotonicClock)
    }
}

impl<C: Clock> MessageRate<C> {
    pub fn with_clock(quota: Quota, clock: C) -> MessageRate<C> {
        MessageRate { limiter: RateLimiter::direct_with_clock(quota, clock) }
    }

    /// Take one token, or say how long until there is one.
    pub fn take(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|n| wait_of(&n, self.limiter.clock()))
    }

    /// Take one token if there is one.
    pub fn allow(&self) -> bool {
        self.take().is_ok()
    }
}

/// What a keyed check asks of the [`Store`]: the key, and whether a token is taken or only
/// looked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Probe<K> {
    key: K,
    take: bool,
}

/// The keyed states (governor's [`InMemoryState`], the arrival time of the next token) behind
/// one mutex. Asked with `take: false`, it runs governor's decision on the state and keeps
/// nothing (not even the key).
struct Store<K>(Arc<Mutex<HashMap<K, InMemoryState>>>);

fn lock<K>(map: &Mutex<HashMap<K, InMemoryState>>) -> MutexGuard<'_, HashMap<K, InMemoryState>> {
    // Nothing is left half-changed by a panic under this lock: a poisoned lock is reused.
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// The arrival time of the next token (`None`: as fresh), read without changing it (a
/// decision that refuses with what it was given).
fn arrival_of(state: &InMemoryState) -> Option<Nanos> {
    state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>).err().flatten()
}

impl<K: Eq + Hash + Clone> StateStore for Store<K> {
    type Key = Probe<K>;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe<K>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = lock(&self.0);
        if !probe.take {
            let tat = map.get(&probe.key).and_then(arrival_of);
            return f(tat).map(|(outcome, _)| outcome);
        }
        match map.get(&probe.key) {
            Some(state) => state.measure_and_replace(&NotKeyed::NonKey, f),
            None => map.entry(probe.key.clone()).or_default().measure_and_replace(&NotKeyed::NonKey, f),
        }
    }
}

impl<K: Eq + Hash + Clone> ShrinkableKeyedStateStore<Probe<K>> for Store<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        lock(&self.0).retain(|_, s| arrival_of(s).is_some_and(|tat| tat > drop_below));
    }

    fn shrink_to_fit(&self) {
        lock(&self.0).shrink_to_fit();
    }

    fn len(&self) -> usize {
        lock(&self.0).len()
    }

    fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }
}

/// One limit per key (client address, account, kiosk), remembering at most `max_keys`: past
/// that, the keys whose limit is as good as fresh are forgotten (governor's `retain_recent`),
/// and if that is not enough, the half nearest to fresh. (Checks running at that very moment
/// may add a key each beyond the bound until the next check.)
pub struct KeyedLimiter<K: Eq + Hash + Clone, C: Clock = MonotonicClock> {
    limiter: RateLimiter<Probe<K>, Store<K>, C, NoOpMiddleware<C::Instant>>,
    states: Arc<Mutex<HashMap<K, InMemoryState>>>,
    max_keys: usize,
}

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    pub fn new(quota: Quota, max_keys: usize) -> KeyedLimiter<K> {
        KeyedLimiter::with_clock(quota, max_keys, MonotonicClock)
    }
}

impl<K: Eq + Hash + Clone, C: Clock> KeyedLimiter<K, C> {
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> KeyedLimiter<K, C> {
        let states: Arc<Mutex<HashMap<K, InMemoryState>>> = Arc::default();
        let limiter = RateLimiter::new(quota, Store(states.clone()), clock);
        KeyedLimiter { limiter, states, max_keys: max_keys.max(1) }
    }

    /// Take one token from `key`'s limit, or say how long until there is one.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.make_room_for(key);
        self.check(key, true)
    }

    /// Take one token from `key`'s limit if there is one.
    pub fn allow(&self, key: &K) -> bool {
        self.take(key).is_ok()
    }

    /// Is there a token for `key`, without taking it? (To check several limits before taking
    /// from any.)
    pub fn would_allow(&self, key: &K) -> Result<(), Duration> {
        self.check(key, false)
    }

    fn check(&self, key: &K, take: bool) -> Result<(), Duration> {
        let probe = Probe { key: key.clone(), take };
        self.limiter.check_key(&probe).map_err(|n| wait_of(&n, self.limiter.clock()))
    }

    fn make_room_for(&self, key: &K) {
        let full = {
            let map = lock(&self.states);
            map.len() >= self.max_keys && !map.contains_key(key)
        };
        if !full {
            return;
        }
        self.limiter.retain_recent();
        {
            let mut map = lock(&self.states);
            if map.len() >= self.max_keys {
                let mut arrivals: Vec<Nanos> = map.values().map(|s| arrival_of(s).unwrap_or_default()).collect();
                arrivals.sort_unstable();
                let cut = arrivals[arrivals.len() / 2];
                map.retain(|_, s| arrival_of(s).is_some_and(|tat| tat > cut));
            }
        }
        self.limiter.shrink_to_fit();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
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

/// The place of one connection among `limits.open_connections`, in each request's
/// extensions. A WebSocket upgrade takes it ([`ConnectionPlace::take`]) so that the socket
/// keeps it after the HTTP connection has handed over; otherwise it goes with the connection.
#[derive(Clone)]
pub struct ConnectionPlace(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl ConnectionPlace {
    pub(crate) fn new(permit: tokio::sync::OwnedSemaphorePermit) -> ConnectionPlace {
        ConnectionPlace(Arc::new(std::sync::Mutex::new(Some(permit))))
    }

    /// The permit, once (None after it was taken).
    pub fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn bucket_bursts_then_refills() {
        let clock = FakeRelativeClock::default();
        let b = MessageRate::with_clock(per_second(2, 3), clock.clone());
        assert!(b.allow() && b.allow() && b.allow());
        assert!(!b.allow());
        clock.advance(Duration::from_millis(500));
        assert!(b.allow());
        assert!(!b.allow());
        // Never more than the burst, however long it waited.
        clock.advance(Duration::from_secs(3600));
        assert!(b.allow() && b.allow() && b.allow());
        assert!(!b.allow());
        let wait = b.take().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
    }

    #[test]
    fn per_address_limits() {
        // Five lookups in a burst, one more every six seconds.
        let clock = FakeRelativeClock::default();
        let l: KeyedLimiter<IpAddr, _> =
            KeyedLimiter::with_clock(quota(Duration::from_secs(6), 5), 10_000, clock.clone());
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        for _ in 0..5 {
            assert!(l.allow(&ip));
        }
        assert!(!l.allow(&ip));
        clock.advance(Duration::from_secs(7));
        assert!(l.allow(&ip));
        assert!(!l.allow(&ip));
        // Another address is not affected.
        assert!(l.allow(&"192.0.2.78".parse().unwrap()));
        // A refusal says when to come back: the next token in six seconds at most.
        let wait = l.take(&ip).unwrap_err();
        assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(6), "{wait:?}");
        assert_eq!(l.would_allow(&ip), Err(wait));
        assert_eq!(l.would_allow(&"192.0.2.99".parse().unwrap()), Ok(()));
    }

    #[test]
    fn asking_takes_no_token_and_remembers_no_key() {
        let clock = FakeRelativeClock::default();
        let l: KeyedLimiter<u8, _> = KeyedLimiter::with_clock(quota(Duration::from_secs(60), 1), 100, clock);
        for _ in 0..3 {
            assert_eq!(l.would_allow(&1), Ok(()));
        }
        assert!(l.is_empty(), "asking about a key does not remember it");
        assert_eq!(l.take(&1), Ok(()));
        assert!(l.would_allow(&1).is_err(), "the one token is taken");
        assert!(l.take(&1).is_err());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let clock = FakeRelativeClock::default();
        let l: KeyedLimiter<u32, _> = KeyedLimiter::with_clock(quota(Duration::from_secs(1), 2), 100, clock.clone());
        for k in 0..1000u32 {
            clock.advance(Duration::from_millis(1));
            l.allow(&k);
            assert!(l.len() <= 100, "{} keys", l.len());
        }
        // A key that is still limited survives the forgetting while it is recent.
        let hot = 5000u32;
        clock.advance(Duration::from_secs(1));
        assert!(l.allow(&hot) && l.allow(&hot));
        assert!(!l.allow(&hot));
        for k in 0..300u32 {
            l.allow(&(10_000 + k));
        }
        assert!(!l.allow(&hot), "the limited key was not forgotten");
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
