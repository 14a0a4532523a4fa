//! The edge's memory: responses by request key, least recently used first out, within a
//! byte budget. Sans-IO: every call takes `now`.
//!
//! An entry is fresh until its TTL runs out; after that it is kept (while the budget
//! allows) as a stale copy that may still be served while the origin fails, until its
//! stale-if-error window closes too. Hand-written rather than a cache crate: the policy is
//! a few lines over a map and an ordered index, and the budget counts bytes, not entries.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;

/// A response as the edge keeps it.
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    /// End-to-end headers of the origin's answer (hop-by-hop ones and the length dropped).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Served without asking the origin until then.
    pub fresh_until: Instant,
    /// Served while the origin fails until then (never before `fresh_until`).
    pub stale_until: Instant,
    /// The token the edge filled it with (a private channel's objects), which the edge
    /// swaps for each viewer's own in what it serves.
    pub fill_token: Option<Arc<str>>,
}

impl Stored {
    /// Bytes it counts against the budget: the body, its headers and some bookkeeping.
    fn cost(&self, key: &str) -> usize {
        const OVERHEAD: usize = 256;
        self.body.len()
            + key.len() * 2
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 32)
                .sum::<usize>()
            + OVERHEAD
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Fresh(Arc<Stored>),
    /// Past its TTL: ask the origin, and fall back to this if the origin fails.
    Stale(Arc<Stored>),
    Miss,
}

#[derive(Debug)]
struct Slot {
    stored: Arc<Stored>,
    cost: usize,
    /// Its place in `order` (the later, the more recently used).
    used: u64,
}

/// The byte-bounded LRU.
#[derive(Debug)]
pub struct Cache {
    budget: usize,
    bytes: usize,
    clock: u64,
    slots: HashMap<Arc<str>, Slot>,
    order: BTreeMap<u64, Arc<str>>,
    evictions: u64,
}

impl Cache {
    /// A cache of at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: 0,
            clock: 0,
            slots: HashMap::new(),
            order: BTreeMap::new(),
            evictions: 0,
        }
    }

    /// The largest object worth keeping: one object may not push out more than an
    /// eighth of everything else.
    pub fn max_object(&self) -> usize {
        self.budget / 8
    }

    /// Looks `key` up at `now`, marking it used. Entries past their stale window are
    /// dropped here.
    pub fn get(&mut self, key: &str, now: Instant) -> Lookup {
        let Some(slot) = self.slots.get_mut(key) else {
            return Lookup::Miss;
        };
        let stored = slot.stored.clone();
        if now >= stored.stale_until && now >= stored.fresh_until {
            self.remove(key);
            return Lookup::Miss;
        }
        self.clock += 1;
        let old = std::mem::replace(&mut slot.used, self.clock);
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(self.clock, k);
        }
        if now < stored.fresh_until {
            Lookup::Fresh(stored)
        } else {
            Lookup::Stale(stored)
        }
    }

    /// Keeps `stored` under `key` (replacing what was there), evicting the least recently
    /// used entries to stay within the budget. Objects over [`Cache::max_object`] are not
    /// kept. Returns whether it was kept.
    pub fn insert(&mut self, key: &str, stored: Arc<Stored>) -> bool {
        let cost = stored.cost(key);
        if cost > self.max_object() {
            self.remove(key);
            return false;
        }
        self.remove(key);
        while self.bytes + cost > self.budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&oldest) {
                self.bytes -= slot.cost;
                self.evictions += 1;
            }
        }
        self.clock += 1;
        let key: Arc<str> = key.into();
        self.order.insert(self.clock, key.clone());
        self.slots.insert(
            key,
            Slot {
                stored,
                cost,
                used: self.clock,
            },
        );
        self.bytes += cost;
        true
    }

    fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.used);
            self.bytes -= slot.cost;
        }
    }

    /// Bytes held (as counted against the budget).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entries pushed out by newer ones since the start.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stored(len: usize, now: Instant, ttl: u64, stale: u64) -> Arc<Stored> {
        Arc::new(Stored {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Bytes::from(vec![0u8; len]),
            fresh_until: now + Duration::from_secs(ttl),
            stale_until: now + Duration::from_secs(ttl + stale),
            fill_token: None,
        })
    }

    #[test]
    fn fresh_then_stale_then_gone() {
        let t0 = Instant::now();
        let mut c = Cache::new(1 << 20);
        assert!(c.insert("a", stored(100, t0, 1, 10)));
        assert!(matches!(c.get("a", t0), Lookup::Fresh(_)));
        assert!(matches!(
            c.get("a", t0 + Duration::from_secs(2)),
            Lookup::Stale(_)
        ));
        assert!(matches!(
            c.get("a", t0 + Duration::from_secs(12)),
            Lookup::Miss
        ));
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_budget_holds() {
        let t0 = Instant::now();
        let mut c = Cache::new(80_000);
        for k in ["a", "b", "c", "d"] {
            assert!(c.insert(k, stored(9_000, t0, 60, 0)));
        }
        // `a` used again: `b` is now the oldest.
        assert!(matches!(c.get("a", t0), Lookup::Fresh(_)));
        for k in ["e", "f", "g", "h", "i"] {
            c.insert(k, stored(9_000, t0, 60, 0));
        }
        assert!(c.bytes() <= 80_000, "{} bytes", c.bytes());
        assert!(matches!(c.get("a", t0), Lookup::Fresh(_)));
        assert!(matches!(c.get("b", t0), Lookup::Miss));
        assert!(matches!(c.get("i", t0), Lookup::Fresh(_)));
        assert!(c.evictions() >= 1);
    }

    #[test]
    fn an_object_too_large_is_not_kept_and_replaces_nothing() {
        let t0 = Instant::now();
        let mut c = Cache::new(80_000);
        assert!(c.insert("a", stored(1_000, t0, 60, 0)));
        assert!(!c.insert("big", stored(20_000, t0, 60, 0)));
        assert!(matches!(c.get("a", t0), Lookup::Fresh(_)));
        assert_eq!(c.len(), 1);
        // A key's replacement that is too large drops the old copy (it is outdated).
        assert!(!c.insert("a", stored(20_000, t0, 60, 0)));
        assert!(c.is_empty());
    }

    #[test]
    fn replacing_a_key_counts_its_bytes_once() {
        let t0 = Instant::now();
        let mut c = Cache::new(1 << 20);
        c.insert("a", stored(1_000, t0, 60, 0));
        let one = c.bytes();
        c.insert("a", stored(1_000, t0, 60, 0));
        assert_eq!(c.bytes(), one);
        assert_eq!(c.len(), 1);
    }
}
