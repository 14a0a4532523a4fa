//! Channel leases in the KV bucket: claimed when a publish starts, renewed while it
//! lasts, released when it ends; lost when another node holds the key.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use bytes::Bytes;
use starling_sync::lock;
use tracing::{info, warn};

use crate::{Cluster, ClusterEvent, CLAIM_TIMEOUT, TAKEOVER_PREFIX};

/// How long a takeover waits for the holder to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

/// A publish's standing in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the channel's lease.
    Held,
    /// NATS could not be asked: accepted as on a single node, claimed once NATS is back.
    Unverified,
}

/// Why a publish may not go on here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("channel {channel:?} is live on node {node:?}")]
    HeldBy { channel: String, node: String },
}

/// The leases this node holds: publishes per channel (a reconnecting encoder overlaps
/// its old connection) and the KV revision it holds (None: not claimed in KV yet).
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, (usize, Option<u64>)>>,
}

impl Leases {
    pub(crate) fn holds(&self, channel: &str) -> bool {
        lock(&self.held).contains_key(channel)
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.held).len()
    }

    fn add(&self, channel: &str, revision: Option<u64>) {
        let mut held = lock(&self.held);
        let e = held.entry(channel.to_owned()).or_insert((0, None));
        e.0 += 1;
        if revision.is_some() {
            e.1 = revision;
        }
    }

    /// Records a renewal, if the lease is still held.
    fn renewed(&self, channel: &str, revision: u64) {
        if let Some(e) = lock(&self.held).get_mut(channel) {
            e.1 = Some(revision);
        }
    }
}

/// What the KV says about a channel's key.
enum Holder {
    Free,
    Us(u64),
    Other(String),
}

impl Cluster {
    /// Claims `channel` for a publish starting here. Held by another node: refused, unless
    /// `takeover`, in which case the holder is asked to end its publish and the lease is
    /// taken once it lets go (or refused after a few seconds). NATS unreachable within
    /// [`CLAIM_TIMEOUT`]: accepted, unverified.
    pub async fn claim(&self, channel: &str, takeover: bool) -> Result<Claim, ClaimError> {
        if self.leases.holds(channel) {
            self.leases.add(channel, None);
            return Ok(Claim::Held);
        }
        let attempt = tokio::time::timeout(CLAIM_TIMEOUT, self.try_create(channel)).await;
        let holder = match attempt {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Ok(self.unverified(channel, &e)),
            Err(_) => return Ok(self.unverified(channel, "NATS did not answer in time")),
        };
        let node = match holder {
            Holder::Free => unreachable!("try_create never answers Free"),
            Holder::Us(rev) => {
                self.leases.add(channel, Some(rev));
                self.metrics.claims.fetch_add(1, Relaxed);
                return Ok(Claim::Held);
            }
            Holder::Other(node) => node,
        };
        if takeover {
            self.metrics.takeovers_asked.fetch_add(1, Relaxed);
            info!(%channel, holder = %node, "cluster: asking the holder to hand the channel over");
            let _ = self
                .client
                .publish(
                    format!("{TAKEOVER_PREFIX}{channel}"),
                    Bytes::copy_from_slice(self.config.node_id.as_bytes()),
                )
                .await;
            let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(Ok(Holder::Us(rev))) =
                    tokio::time::timeout(CLAIM_TIMEOUT, self.try_create(channel)).await
                {
                    self.leases.add(channel, Some(rev));
                    self.metrics.claims.fetch_add(1, Relaxed);
                    return Ok(Claim::Held);
                }
            }
        }
        self.metrics.refused.fetch_add(1, Relaxed);
        Err(ClaimError::HeldBy {
            channel: channel.to_owned(),
            node,
        })
    }

    fn unverified(&self, channel: &str, why: &str) -> Claim {
        warn!(%channel, %why, "cluster: lease not checked; the publish goes on and is claimed once NATS answers");
        self.metrics.unverified.fetch_add(1, Relaxed);
        self.leases.add(channel, None);
        Claim::Unverified
    }

    /// Creates the key for this node, or says who holds it (this node, from an earlier
    /// process, is adopted).
    async fn try_create(&self, channel: &str) -> Result<Holder, String> {
        let kv = self.kv().await?;
        let me = Bytes::copy_from_slice(self.config.node_id.as_bytes());
        match kv.create(channel, me.clone()).await {
            Ok(rev) => return Ok(Holder::Us(rev)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.to_string()),
        }
        match self.holder(kv, channel).await? {
            Holder::Us(rev) => match kv.update(channel, me, rev).await {
                Ok(rev) => Ok(Holder::Us(rev)),
                Err(e) => Err(e.to_string()),
            },
            // Freed between the two calls: one more try.
            Holder::Free => match kv.create(channel, me).await {
                Ok(rev) => Ok(Holder::Us(rev)),
                Err(e) => Err(e.to_string()),
            },
            other => Ok(other),
        }
    }

    async fn holder(&self, kv: &kv::Store, channel: &str) -> Result<Holder, String> {
        let entry = kv.entry(channel).await.map_err(|e| e.to_string())?;
        Ok(match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                if e.value == self.config.node_id.as_bytes() {
                    Holder::Us(e.revision)
                } else {
                    Holder::Other(String::from_utf8_lossy(&e.value).into_owned())
                }
            }
            _ => Holder::Free,
        })
    }

    /// Ends one publish's claim on `channel`; the last one lets the lease go.
    pub fn release(self: &Arc<Self>, channel: &str) {
        let revision = {
            let mut held = lock(&self.leases.held);
            let Some(e) = held.get_mut(channel) else {
                return;
            };
            e.0 -= 1;
            if e.0 > 0 {
                return;
            }
            held.remove(channel).and_then(|(_, rev)| rev)
        };
        let Some(revision) = revision else { return };
        let this = self.clone();
        let channel = channel.to_owned();
        tokio::spawn(async move {
            let Ok(kv) = this.kv().await else { return };
            // Only the revision this node holds: never another node's lease.
            if let Err(e) = kv.delete_expect_revision(&channel, Some(revision)).await {
                tracing::debug!(%channel, error = %e, "cluster: lease not deleted (it expires by itself)");
            }
        });
    }

    /// Renews every held lease each third of the lease time; claims unverified ones; ends
    /// the publishes whose channel another node holds now.
    pub(crate) fn renew_forever(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.config.lease_ttl / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let held: Vec<(String, Option<u64>)> = lock(&self.leases.held)
                    .iter()
                    .map(|(c, (_, rev))| (c.clone(), *rev))
                    .collect();
                for (channel, revision) in held {
                    let renewed =
                        tokio::time::timeout(CLAIM_TIMEOUT, self.renew(&channel, revision)).await;
                    match renewed {
                        Ok(Ok(Holder::Us(rev))) => self.leases.renewed(&channel, rev),
                        Ok(Ok(Holder::Other(node))) => self.lost(&channel, node),
                        // NATS down or slow: try again next time; the publish goes on.
                        _ => {}
                    }
                }
            }
        });
    }

    async fn renew(&self, channel: &str, revision: Option<u64>) -> Result<Holder, String> {
        let Some(rev) = revision else {
            return self.try_create(channel).await;
        };
        let kv = self.kv().await?;
        let me = Bytes::copy_from_slice(self.config.node_id.as_bytes());
        match kv.update(channel, me, rev).await {
            Ok(rev) => Ok(Holder::Us(rev)),
            // Expired while NATS was away, or taken: look again.
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                self.try_create(channel).await
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn lost(&self, channel: &str, holder: String) {
        if lock(&self.leases.held).remove(channel).is_none() {
            return;
        }
        warn!(%channel, %holder, "cluster: the channel is live on another node now; ending the publish here");
        self.metrics.lost.fetch_add(1, Relaxed);
        let _ = self.events.send(ClusterEvent::LeaseLost {
            channel: channel.to_owned(),
            holder,
        });
    }
}
