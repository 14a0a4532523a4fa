//! The write-through: every accepted object goes to the object store, and every DELETE
//! comes off it, in background tasks that never hold up a packager's request.
//!
//! Operations on one key run one at a time, in the order they were asked for, and an
//! operation that a later one on the same key supersedes is skipped. Without that, a
//! slow PUT still being written could land after the DELETE that followed it and bring
//! the object back, or an older version could overwrite a newer one.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use starling_store::ObjectStore;
use starling_sync::lock;
use tokio::{sync::Notify, task::JoinHandle};

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put(Bytes),
    Delete,
    /// A delete by the retention sweep: tried once (the next sweep tries again), and
    /// not counted in [`Writer::failures`] (the sweep counts its own).
    Expire,
}

/// How a scheduled operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Done {
    Ok,
    Failed,
    /// A newer operation on the key superseded it before it ran (or between tries).
    Superseded,
}

/// What is pending on one key.
#[derive(Debug)]
struct KeyState {
    /// Number of the newest operation asked for.
    generation: u64,
    /// Whether the newest is a delete (the object must no longer be read back).
    deleting: bool,
    /// Operations asked for and not finished (the entry goes when this reaches 0).
    tasks: usize,
    /// Taken by the operation running; tokio's mutex queues waiters in order.
    turn: Arc<tokio::sync::Mutex<()>>,
}

pub(crate) struct Writer {
    store: Arc<dyn ObjectStore>,
    attempts: u32,
    backoff: Duration,
    keys: Mutex<HashMap<String, KeyState>>,
    pending: AtomicUsize,
    idle: Notify,
    failures: AtomicU64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("attempts", &self.attempts)
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, attempts: u32, backoff: Duration) -> Self {
        Self {
            store,
            attempts: attempts.max(1),
            backoff,
            keys: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Queues `op` on `key` behind whatever is pending there; the handle tells how it
    /// ended (callers that need not know drop it). Must be called from within a Tokio
    /// runtime.
    pub(crate) fn schedule(self: &Arc<Self>, key: String, op: Op) -> JoinHandle<Done> {
        let (generation, turn) = {
            let mut keys = lock(&self.keys);
            let st = keys.entry(key.clone()).or_insert_with(|| KeyState {
                generation: 0,
                deleting: false,
                tasks: 0,
                turn: Arc::new(tokio::sync::Mutex::new(())),
            });
            st.generation += 1;
            st.deleting = matches!(op, Op::Delete | Op::Expire);
            st.tasks += 1;
            (st.generation, st.turn.clone())
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            let done = {
                let _turn = turn.lock().await;
                if me.is_current(&key, generation) {
                    me.run(&key, generation, op).await
                } else {
                    Done::Superseded
                }
            };
            {
                let mut keys = lock(&me.keys);
                if let Some(st) = keys.get_mut(&key) {
                    st.tasks -= 1;
                    if st.tasks == 0 {
                        keys.remove(&key);
                    }
                }
            }
            if me.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
            done
        })
    }

    fn is_current(&self, key: &str, generation: u64) -> bool {
        lock(&self.keys)
            .get(key)
            .is_some_and(|st| st.generation == generation)
    }

    /// Whether the newest operation asked for on `key` is a delete not yet done: the
    /// store may still hold the object, but it must not be served.
    pub(crate) fn deleting(&self, key: &str) -> bool {
        lock(&self.keys).get(key).is_some_and(|st| st.deleting)
    }

    async fn run(&self, key: &str, generation: u64, op: Op) -> Done {
        let mut delay = self.backoff;
        let attempts = match op {
            Op::Expire => 1,
            _ => self.attempts,
        };
        for attempt in 1..=attempts {
            let result = match &op {
                Op::Put(body) => self.store.put(key, vec![body.clone()]).await,
                Op::Delete | Op::Expire => self.store.delete(key).await,
            };
            let e = match result {
                Ok(()) => return Done::Ok,
                Err(e) => e,
            };
            let what = if matches!(op, Op::Put(_)) {
                "write"
            } else {
                "delete"
            };
            if matches!(op, Op::Expire) {
                tracing::debug!(key, error = %e, "pushed object: retention delete failed; the next sweep tries again");
                return Done::Failed;
            }
            if attempt == attempts {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, attempts = attempt, error = %e, "pushed object: store {what} failed; giving up");
                return Done::Failed;
            }
            tracing::debug!(key, attempt, error = %e, "pushed object: store {what} failed; retrying");
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
            if !self.is_current(key, generation) {
                // A newer PUT or DELETE of the key will do the work that matters.
                return Done::Superseded;
            }
        }
        Done::Failed
    }

    /// Operations that gave up after every attempt.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Returns once nothing is pending (at shutdown, and for tests).
    pub(crate) async fn flushed(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending() == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_store::{BoxFuture, StoreError};

    /// A store whose writes take a while and can fail on demand, recording the order.
    #[derive(Default)]
    struct SlowStore {
        objects: Mutex<HashMap<String, Bytes>>,
        log: Mutex<Vec<String>>,
        fail_next: AtomicUsize,
    }

    impl ObjectStore for SlowStore {
        fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
            let key = key.to_owned();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if self.fail_next.load(Ordering::SeqCst) > 0 {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                    return Err(StoreError::Config("down".into()));
                }
                lock(&self.log).push(format!("put {key} {}", parts[0].len()));
                lock(&self.objects).insert(key, parts.concat().into());
                Ok(())
            })
        }
        fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
            let v = lock(&self.objects).get(key).cloned();
            Box::pin(async move { Ok(v) })
        }
        fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
            lock(&self.log).push(format!("delete {key}"));
            lock(&self.objects).remove(key);
            Box::pin(async { Ok(()) })
        }
        fn children(&self, _: &str, _: usize) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn delete_prefix(&self, _: &str) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn operations_on_a_key_keep_their_order_and_superseded_ones_are_skipped() {
        let store = Arc::new(SlowStore::default());
        let w = Arc::new(Writer::new(store.clone(), 3, Duration::from_millis(1)));
        w.schedule("a".into(), Op::Put(Bytes::from_static(b"1")));
        tokio::time::sleep(Duration::from_millis(5)).await; // the first put is running
        w.schedule("a".into(), Op::Put(Bytes::from_static(b"22")));
        w.schedule("a".into(), Op::Delete);
        assert!(w.deleting("a"));
        w.schedule("b".into(), Op::Put(Bytes::from_static(b"333")));
        w.flushed().await;
        let log = lock(&store.log).clone();
        // The second put of "a" was superseded by the delete before its turn came.
        assert_eq!(
            log.iter().filter(|l| l.contains(" a")).collect::<Vec<_>>(),
            ["put a 1", "delete a"]
        );
        assert!(log.contains(&"put b 3".to_owned()));
        assert!(lock(&store.objects).get("a").is_none());
        assert!(!w.deleting("a"));
        assert!(lock(&w.keys).is_empty(), "no entry outlives its operations");
    }

    #[tokio::test]
    async fn failed_writes_are_retried_then_counted() {
        let store = Arc::new(SlowStore::default());
        let w = Arc::new(Writer::new(store.clone(), 3, Duration::from_millis(1)));
        store.fail_next.store(2, Ordering::SeqCst);
        w.schedule("a".into(), Op::Put(Bytes::from_static(b"x")));
        w.flushed().await;
        assert!(
            lock(&store.objects).contains_key("a"),
            "third attempt succeeded"
        );
        assert_eq!(w.failures(), 0);
        store.fail_next.store(3, Ordering::SeqCst);
        w.schedule("b".into(), Op::Put(Bytes::from_static(b"x")));
        w.flushed().await;
        assert!(!lock(&store.objects).contains_key("b"));
        assert_eq!(w.failures(), 1);
    }
}
