//! [`CachedStore`]: read coalescing and a memory cache bounded in bytes, over any store.
//!
//! When a DVR segment leaves the memory window, every viewer behind the live edge asks
//! for it at about the same time; against a bucket that would be one GET per viewer.
//! Here the first `get` of a key reads the backend and the others wait for its answer
//! (single flight), and the object is then kept, least recently used first out, within
//! `max_bytes`. A `put`, `delete` or `delete_prefix` drops what is cached for the keys it
//! touches once the backend has answered, and detaches a read still in flight so that
//! its (possibly older) bytes are handed to its waiters but not cached.
//!
//! Absence is not cached: a segment being written through appears a moment later. A
//! failed read is not shared either: each waiter then reads for itself, so that every
//! caller gets its own typed error.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use bytes::Bytes;
use starling_sync::lock;
use tokio::sync::watch;

use crate::{BoxFuture, ObjectStore, StoreError};

/// Counters since the store was built, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// `get`s that went to the backend.
    pub backend_reads: u64,
    /// `get`s answered from the cache.
    pub hits: u64,
    /// `get`s that waited for another's backend read of the same key.
    pub coalesced: u64,
    /// What the cache holds now.
    pub cached_objects: u64,
    pub cached_bytes: u64,
}

type Flight = watch::Receiver<Option<Option<Bytes>>>;

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Entries by last use, oldest first.
    by_use: BTreeMap<u64, String>,
    bytes: usize,
    tick: u64,
    /// Reads in flight, by key; the id tells a detached flight from its successor.
    flights: HashMap<String, (u64, Flight)>,
    next_flight: u64,
}

struct Entry {
    bytes: Bytes,
    used: u64,
}

/// `S` with single-flight reads and an LRU cache of at most `max_bytes`.
pub struct CachedStore<S> {
    inner: S,
    max_bytes: usize,
    state: Mutex<State>,
    backend_reads: AtomicU64,
    hits: AtomicU64,
    coalesced: AtomicU64,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Removes the flight when its leader ends, however it ends (a dropped future too).
struct Landing<'a> {
    state: &'a Mutex<State>,
    key: &'a str,
    id: u64,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut st = lock(self.state);
        if st
            .flights
            .get(self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            st.flights.remove(self.key);
        }
    }
}

impl<S: ObjectStore> CachedStore<S> {
    /// `max_bytes` 0 keeps nothing (reads are still coalesced).
    pub fn new(inner: S, max_bytes: usize) -> Self {
        Self {
            inner,
            max_bytes,
            state: Mutex::default(),
            backend_reads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn stats(&self) -> CacheStats {
        let st = lock(&self.state);
        CacheStats {
            backend_reads: self.backend_reads.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            cached_objects: st.entries.len() as u64,
            cached_bytes: st.bytes as u64,
        }
    }

    async fn get_now(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        // A waiter whose leader failed or was dropped goes round again: it may wait on
        // the next flight once more, then it reads for itself.
        let mut waits = 0;
        loop {
            enum Next {
                Wait(Flight),
                Lead(u64, watch::Sender<Option<Option<Bytes>>>),
            }
            let next = {
                let mut st = lock(&self.state);
                if let Some(hit) = self.touch(&mut st, key) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(hit));
                }
                match st.flights.get(key) {
                    Some((_, rx)) if waits < 2 => Next::Wait(rx.clone()),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        st.next_flight += 1;
                        let id = st.next_flight;
                        st.flights.insert(key.to_owned(), (id, rx));
                        Next::Lead(id, tx)
                    }
                }
            };
            match next {
                Next::Wait(mut rx) => {
                    self.coalesced.fetch_add(1, Ordering::Relaxed);
                    waits += 1;
                    if let Ok(v) = rx.wait_for(Option::is_some).await {
                        if let Some(v) = v.clone() {
                            return Ok(v);
                        }
                    }
                    // The leader failed: go round and read.
                }
                Next::Lead(id, tx) => {
                    let _landing = Landing {
                        state: &self.state,
                        key,
                        id,
                    };
                    self.backend_reads.fetch_add(1, Ordering::Relaxed);
                    let got = self.inner.get(key).await?;
                    {
                        let mut st = lock(&self.state);
                        let current = st.flights.get(key).is_some_and(|(i, _)| *i == id);
                        if let (true, Some(bytes)) = (current, &got) {
                            self.insert(&mut st, key, bytes.clone());
                        }
                    }
                    let _ = tx.send(Some(got.clone()));
                    return Ok(got);
                }
            }
        }
    }

    fn touch(&self, st: &mut State, key: &str) -> Option<Bytes> {
        st.tick += 1;
        let tick = st.tick;
        let e = st.entries.get_mut(key)?;
        let old = std::mem::replace(&mut e.used, tick);
        let bytes = e.bytes.clone();
        st.by_use.remove(&old);
        st.by_use.insert(tick, key.to_owned());
        Some(bytes)
    }

    fn insert(&self, st: &mut State, key: &str, bytes: Bytes) {
        // An object larger than a quarter of the cache would push out many others
        // for one reader's benefit.
        if bytes.len() > self.max_bytes / 4 {
            return;
        }
        Self::remove(st, key);
        while st.bytes + bytes.len() > self.max_bytes {
            let Some((_, oldest)) = st.by_use.pop_first() else {
                break;
            };
            if let Some(e) = st.entries.remove(&oldest) {
                st.bytes -= e.bytes.len();
            }
        }
        st.tick += 1;
        let used = st.tick;
        st.bytes += bytes.len();
        st.by_use.insert(used, key.to_owned());
        st.entries.insert(key.to_owned(), Entry { bytes, used });
    }

    fn remove(st: &mut State, key: &str) {
        if let Some(e) = st.entries.remove(key) {
            st.bytes -= e.bytes.len();
            st.by_use.remove(&e.used);
        }
    }

    /// Forgets `key` and detaches its flight.
    fn invalidate(&self, key: &str) {
        let mut st = lock(&self.state);
        Self::remove(&mut st, key);
        st.flights.remove(key);
    }

    fn invalidate_prefix(&self, prefix: &str) {
        let under = format!("{prefix}/");
        let mut st = lock(&self.state);
        let keys: Vec<String> = st
            .entries
            .keys()
            .filter(|k| k.starts_with(&under))
            .cloned()
            .collect();
        for k in keys {
            Self::remove(&mut st, &k);
        }
        st.flights.retain(|k, _| !k.starts_with(&under));
    }
}

impl<S: ObjectStore> ObjectStore for CachedStore<S> {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            // After the backend answered (or failed: then what it holds is unknown),
            // so that no read that began before the write can cache older bytes.
            let r = self.inner.put(&key, parts).await;
            self.invalidate(&key);
            r
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let key = key.to_owned();
        Box::pin(async move { self.get_now(&key).await })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let r = self.inner.delete(&key).await;
            self.invalidate(&key);
            r
        })
    }

    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.inner.children(prefix, limit)
    }

    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let r = self.inner.delete_prefix(&prefix).await;
            self.invalidate_prefix(&prefix);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalDirStore;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("starling-cache-{name}-{}", std::process::id()))
    }

    #[tokio::test]
    async fn evicts_the_least_recently_used_within_the_bound() {
        let dir = temp("lru");
        let s = CachedStore::new(LocalDirStore::new(&dir), 600);
        for k in ["a", "b", "c"] {
            s.put(k, vec![Bytes::from(vec![0u8; 100])]).await.unwrap();
        }
        for k in ["a", "b", "c"] {
            s.get(k).await.unwrap().unwrap();
        }
        assert_eq!(s.stats().cached_bytes, 300);
        s.get("a").await.unwrap();
        // "b" is now the oldest; five more of 100 push it and "c" out, not "a".
        for k in ["d", "e", "f", "g", "h"] {
            s.put(k, vec![Bytes::from(vec![1u8; 100])]).await.unwrap();
            s.get(k).await.unwrap();
        }
        let st = s.stats();
        assert!(st.cached_bytes <= 600, "{st:?}");
        let reads = st.backend_reads;
        s.get("a").await.unwrap();
        assert_eq!(s.stats().backend_reads, reads, "a stayed");
        s.get("b").await.unwrap();
        assert_eq!(s.stats().backend_reads, reads + 1, "b was evicted");
        // Too large for the cache (over a quarter): read through every time.
        s.put("big", vec![Bytes::from(vec![2u8; 200])])
            .await
            .unwrap();
        s.get("big").await.unwrap();
        s.get("big").await.unwrap();
        assert_eq!(s.stats().backend_reads, reads + 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
