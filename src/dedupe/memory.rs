//! The in-process dedupe store: accepted keys with their expiry, bounded by a number of entries
//! (the oldest evicted first). For one replica; several need the shared Redis store.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A key as the store keeps it: the first 128 bits of its SHA-256. 16 bytes whatever the id's
/// length, and a collision (which would suppress one delivery) is out of reach at any volume a
/// process sees.
pub type Fingerprint = u128;

pub fn fingerprint(key: &str) -> Fingerprint {
    let digest = Sha256::digest(key.as_bytes());
    u128::from_be_bytes(digest[..16].try_into().expect("a SHA-256 has 32 bytes"))
}

/// Keys accepted within the TTL. Every key lives exactly `ttl`, so insertion order is also
/// expiry order: one queue serves both the expiry and the cap, and the set holds exactly the
/// keys in the queue. About 80 bytes an entry (the set's and the queue's share, with their
/// spare capacity), so the default 100,000 take some 8 MB.
pub struct MemoryStore {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: HashSet<Fingerprint>,
    /// Oldest first, with its expiry; each key once (inserted only when absent from `keys`).
    order: VecDeque<(Fingerprint, Instant)>,
}

impl MemoryStore {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self { ttl, max_entries: max_entries.max(1), inner: Mutex::default() }
    }

    /// Whether every key was recorded and has not expired (none: `false`).
    pub fn seen_all(&self, keys: &[Fingerprint], now: Instant) -> bool {
        // Held for a purge and a few lookups; never across an await.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.purge(now);
        !keys.is_empty() && keys.iter().all(|k| inner.keys.contains(k))
    }

    /// Records the keys not yet present for `ttl` from `now` (a present key keeps its expiry, as
    /// Redis `SET NX` does), evicting the oldest beyond the cap.
    pub fn record(&self, keys: &[Fingerprint], now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.purge(now);
        let expires = now + self.ttl;
        for &key in keys {
            if inner.keys.insert(key) {
                inner.order.push_back((key, expires));
            }
        }
        while inner.order.len() > self.max_entries {
            let (key, _) = inner.order.pop_front().expect("longer than the cap");
            inner.keys.remove(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn purge(&mut self, now: Instant) {
        while let Some(&(key, expires)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_recorded_key_is_seen_until_its_ttl_has_passed() {
        let store = MemoryStore::new(TTL, 10);
        let t0 = Instant::now();
        let (a, b) = (fingerprint("p:harbor:a"), fingerprint("p:harbor:b"));
        assert!(!store.seen_all(&[a], t0));
        store.record(&[a], t0);
        assert!(store.seen_all(&[a], t0));
        assert!(store.seen_all(&[a], t0 + TTL - Duration::from_millis(1)));
        assert!(!store.seen_all(&[a, b], t0), "every key must have been seen");
        assert!(!store.seen_all(&[], t0), "no key: nothing to suppress");
        assert!(!store.seen_all(&[a], t0 + TTL), "expired");
        assert!(store.is_empty(), "expired entries are purged");
    }

    #[test]
    fn recording_again_keeps_the_first_expiry() {
        let store = MemoryStore::new(TTL, 10);
        let t0 = Instant::now();
        let a = fingerprint("a");
        store.record(&[a], t0);
        store.record(&[a], t0 + Duration::from_secs(30));
        assert_eq!(store.len(), 1);
        assert!(!store.seen_all(&[a], t0 + TTL), "the TTL counts from the first acceptance");
        store.record(&[a], t0 + TTL);
        assert!(store.seen_all(&[a], t0 + TTL), "recorded anew once expired");
    }

    #[test]
    fn beyond_the_cap_the_oldest_entries_go_first() {
        let store = MemoryStore::new(TTL, 3);
        let t0 = Instant::now();
        let keys: Vec<_> = (0..5).map(|i| fingerprint(&format!("k{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            store.record(&[*k], t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(store.len(), 3);
        assert!(!store.seen_all(&keys[..1], now));
        assert!(!store.seen_all(&keys[1..2], now));
        assert!(store.seen_all(&keys[2..], now));
        // One request's keys beyond the cap: the last ones stay.
        store.record(&keys[..2], now);
        assert!(store.seen_all(&keys[..2], now));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn fingerprints_differ_per_key() {
        assert_ne!(fingerprint("p:harbor:x"), fingerprint("p:harbor-eu:x"));
        assert_eq!(fingerprint("p:harbor:x"), fingerprint("p:harbor:x"));
    }
}
