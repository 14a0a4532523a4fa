//! Write-through to the object store, retention deletes, and waiting for both at a
//! graceful shutdown. Nothing here runs on the live path: every store call happens in a
//! task of its own.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tracing::{error, warn};

use crate::live::{lock, Channel, Origin};
use crate::window::release;

/// Store write attempts of one object, and the pause before each retry.
pub(crate) const WRITE_RETRIES: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

impl Origin {
    /// Retention: removes objects from the store in the background (a failure is logged
    /// and counted; the object is then simply left behind).
    pub(crate) fn delete_objects(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            for key in keys {
                match store.delete(&key).await {
                    Ok(()) => {
                        metrics
                            .store_deletes
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => warn!(error = %e, "origin: retention could not delete an object"),
                }
            }
        });
    }

    /// Writes an object to the store in the background, retrying a failed write (1, 2,
    /// 4, 8, 16 s apart); a segment whose every attempt failed is given up on (counted
    /// and logged) so that it no longer pins memory beyond the memory window.
    pub(crate) fn write_through(
        self: &Arc<Self>,
        ch: Arc<Channel>,
        key: String,
        data: Vec<Bytes>,
        segment: Option<(&'static str, u64, u64)>,
    ) {
        let origin = self.clone();
        origin.writes_in_flight.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let mut retries = WRITE_RETRIES.iter();
            let stored = loop {
                let started = std::time::Instant::now();
                match origin.store.put(&key, data.clone()).await {
                    Ok(()) => {
                        origin.metrics.store_write(started.elapsed(), true);
                        break true;
                    }
                    Err(e) => {
                        origin.metrics.store_write(started.elapsed(), false);
                        match retries.next() {
                            Some(pause) => {
                                warn!(channel = %ch.name, error = %e, retry_in_ms = pause.as_millis() as u64, "origin: write-through failed; retrying");
                                tokio::time::sleep(*pause).await;
                            }
                            None => {
                                error!(channel = %ch.name, error = %e, attempts = WRITE_RETRIES.len() + 1, "origin: write-through failed for good; the object is not in the store");
                                origin
                                    .metrics
                                    .store_writes_dropped
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                break false;
                            }
                        }
                    }
                }
            };
            if let Some((rendition, session, msn)) = segment {
                let mut st = lock(&ch.inner);
                let ended = st.ended;
                if let Some(seg) = st
                    .rendition_mut(rendition)
                    .and_then(|r| r.segment_mut(session, msn))
                {
                    seg.stored = stored;
                    seg.write_failed = !stored;
                    if ended && stored {
                        release(seg);
                    }
                }
                if stored {
                    origin.history_segment(&ch.name, &mut st, rendition, msn);
                }
            }
            origin.writes_in_flight.send_modify(|n| *n -= 1);
        });
    }

    /// Waits until every store write under way has finished, or `limit` passes; true
    /// when none is left.
    pub async fn drain(&self, limit: Duration) -> bool {
        let mut rx = self.writes_in_flight.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// For a graceful shutdown, once the publishers have been told to stop: waits
    /// (within `limit`) until every channel's packager has flushed its last parts and
    /// segments, then until they are in the store. True when nothing was left behind.
    pub async fn finish(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let any_live = || lock(&self.channels).values().any(|c| c.is_live());
        while any_live() {
            if tokio::time::Instant::now() >= deadline {
                warn!("origin: shutdown limit reached with channels still live");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let drained = self.drain(left).await;
        if !drained {
            warn!(
                writes = *self.writes_in_flight.borrow(),
                "origin: shutdown limit reached with store writes under way"
            );
        }
        drained
    }
}
