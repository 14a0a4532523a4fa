//! The nodes of one cluster, over NATS (docs/cluster.md).
//!
//! - **One live ingest per channel, cluster-wide**: a node that accepts a publish claims
//!   the channel's lease, a key in the JetStream KV bucket `starling_ingest` whose value
//!   is the node's id ([`Cluster::claim`]). `create` succeeds for one node only; the holder
//!   renews it (`update` on the revision it holds) every third of the lease time, and the
//!   bucket's `max_age` ends a lease nobody renews: a node killed with `kill -9` frees its
//!   channels within one lease time. KV is the compare-and-set store NATS already has; no
//!   consensus of our own.
//! - **Events on plain subjects** (no persistence needed: a node that misses one while
//!   away has nothing to act on): `starling.revocations` (a key id: every node stops that
//!   key's live publish at once), `starling.takeover.CHANNEL` (a node asks the holder to
//!   end its publish, for channels whose rule is takeover).
//! - **NATS down**: the client reconnects by itself; publishes are still accepted, as on a
//!   single node, and counted as unverified; their lease is claimed as soon as NATS is
//!   back, and if another node got the channel meanwhile, this node's publish ends
//!   ([`ClusterEvent::LeaseLost`]). Revocations still reach other nodes through the
//!   database (the node's slower poll).
//!
//! - **The directory** ([`directory`]): each node announces its roles, addresses, region
//!   and load on `starling.nodes.ID` every second; the Usher routes viewers to edges and
//!   broadcasters to ingest nodes from what was heard in the last three seconds.
//!
//! Nothing here blocks a publish for longer than [`CLAIM_TIMEOUT`].

pub mod directory;
mod lease;

use std::{
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use async_nats::jetstream::kv;
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, OnceCell};
use tracing::{info, warn};

pub use directory::{route_broadcaster, route_viewer, NodeInfo};
pub use lease::{Claim, ClaimError};

/// The KV bucket of ingest leases.
pub const LEASE_BUCKET: &str = "starling_ingest";
/// The subject revocations are published on (payload: the key id).
pub const REVOCATIONS: &str = "starling.revocations";
/// The prefix of takeover requests (`starling.takeover.CHANNEL`, payload: the asking node).
pub const TAKEOVER_PREFIX: &str = "starling.takeover.";
/// The longest a claim waits on NATS before the publish goes on unverified.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// `url` with any user and password (`nats://user:pass@host`) replaced, for logs, errors
/// and debug prints.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}<redacted>{}", &u[..s + 3], &u[at..]),
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How a node joins the cluster.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `nats://host:4222` (a comma-separated list for a NATS cluster).
    pub nats_url: String,
    /// This node's id in leases and events (unique in the cluster).
    pub node_id: String,
    /// A lease not renewed for this long is free again.
    pub lease_ttl: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("nats_url", &redact_url(&self.nats_url))
            .field("node_id", &self.node_id)
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

/// Why the cluster client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS URL {0:?}: {1}")]
    Url(String, String),
    #[error("node id {0:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' and '_'")]
    NodeId(String),
}

/// What another node (or NATS) asks of this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A stream key was revoked: stop its live publish.
    Revoked { key_id: String },
    /// Another node takes a channel over: end its publish here.
    Takeover { channel: String, by: String },
    /// This node's lease on a channel is held by another node now: end its publish here.
    LeaseLost { channel: String, holder: String },
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    pub claims: AtomicU64,
    pub refused: AtomicU64,
    pub unverified: AtomicU64,
    pub lost: AtomicU64,
    pub takeovers_asked: AtomicU64,
    pub revocations_sent: AtomicU64,
    pub revocations_received: AtomicU64,
}

/// This node's membership of the cluster.
pub struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    kv: OnceCell<kv::Store>,
    events: broadcast::Sender<ClusterEvent>,
    leases: lease::Leases,
    directory: directory::Directory,
    /// Channels' origins as [`Cluster::origin_of`] last found them.
    origins:
        std::sync::Mutex<std::collections::HashMap<String, (Option<String>, std::time::Instant)>>,
    /// Counters for `/metrics`.
    pub metrics: ClusterMetrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster. Never waits for NATS: the client connects (and reconnects) in
    /// the background, and the node works as a single node meanwhile.
    pub async fn start(config: ClusterConfig) -> Result<Arc<Self>, ClusterError> {
        if config.node_id.is_empty()
            || config.node_id.len() > 64
            || !config
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClusterError::NodeId(config.node_id));
        }
        let client = async_nats::ConnectOptions::new()
            .name(format!("starling-{}", config.node_id))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => info!("cluster: connected to NATS"),
                    async_nats::Event::Disconnected => {
                        warn!("cluster: NATS connection lost; serving on, reconnecting")
                    }
                    other => tracing::debug!(event = %other, "cluster: NATS"),
                }
            })
            .connect(config.nats_url.as_str())
            .await
            .map_err(|e| ClusterError::Url(redact_url(&config.nats_url), e.to_string()))?;
        let (events, _) = broadcast::channel(256);
        let cluster = Arc::new(Self {
            leases: lease::Leases::default(),
            directory: directory::Directory::default(),
            origins: std::sync::Mutex::default(),
            config,
            client,
            kv: OnceCell::new(),
            events,
            metrics: ClusterMetrics::default(),
        });
        cluster.clone().listen();
        cluster.clone().renew_forever();
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Whether the NATS connection is up now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// What other nodes ask of this one.
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }

    /// Tells every node that `key_id` was revoked (fire and forget: with NATS down, the
    /// other nodes learn it from the database).
    pub async fn revoke(&self, key_id: &str) {
        self.metrics
            .revocations_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = tokio::time::timeout(
            CLAIM_TIMEOUT,
            self.client.publish(
                REVOCATIONS,
                bytes::Bytes::copy_from_slice(key_id.as_bytes()),
            ),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            warn!("cluster: a revocation could not be published (other nodes read it from the database)");
        }
    }

    /// Announces this node every second with what `info` says then (its load changes).
    pub fn announce(self: &Arc<Self>, info: impl Fn() -> NodeInfo + Send + 'static) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(directory::ANNOUNCE_EVERY);
            loop {
                tick.tick().await;
                let mut me = info();
                me.id = this.config.node_id.clone();
                let Ok(body) = serde_json::to_vec(&me) else {
                    continue;
                };
                let subject = format!("{}{}", directory::NODES_PREFIX, me.id);
                // NATS down: the client drops what it cannot send; the next second retries.
                let _ = this.client.publish(subject, body.into()).await;
            }
        });
    }

    /// The nodes heard from lately (this one included once its announcement came back).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.directory.live(std::time::Instant::now())
    }

    /// The HTTP URL of the node that ingests (and packages) `channel` now: its lease's
    /// holder, found in the directory. Kept for a second, so that an edge's fills do not
    /// each read the bucket; None when no node holds it (or NATS cannot say).
    pub async fn origin_of(&self, channel: &str) -> Option<String> {
        const FRESH: Duration = Duration::from_secs(1);
        let now = std::time::Instant::now();
        if let Some((url, at)) = starling_sync::lock(&self.origins).get(channel) {
            if now.duration_since(*at) < FRESH {
                return url.clone();
            }
        }
        let holder = tokio::time::timeout(Duration::from_secs(1), async {
            let kv = self.kv().await.ok()?;
            let entry = kv.entry(channel).await.ok()??;
            (entry.operation == kv::Operation::Put)
                .then(|| String::from_utf8_lossy(&entry.value).into_owned())
        })
        .await
        .ok()
        .flatten();
        let url = holder.and_then(|id| {
            self.nodes()
                .into_iter()
                .find(|n| n.id == id)
                .map(|n| n.http_url)
        });
        let mut origins = starling_sync::lock(&self.origins);
        if origins.len() >= 10_000 {
            origins.retain(|_, (_, at)| now.duration_since(*at) < FRESH);
        }
        origins.insert(channel.to_owned(), (url.clone(), now));
        url
    }

    /// The lease bucket, created on first use (NATS may be down when the node starts).
    async fn kv(&self) -> Result<&kv::Store, String> {
        self.kv
            .get_or_try_init(|| async {
                let js = async_nats::jetstream::new(self.client.clone());
                match js.get_key_value(LEASE_BUCKET).await {
                    Ok(store) => Ok(store),
                    Err(_) => js
                        .create_key_value(kv::Config {
                            bucket: LEASE_BUCKET.to_owned(),
                            description: "Starling: which node ingests which channel".to_owned(),
                            history: 1,
                            max_age: self.config.lease_ttl,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| format!("creating the lease bucket: {e}")),
                }
            })
            .await
    }

    /// Forwards revocations and takeover requests from NATS to [`Cluster::events`].
    fn listen(self: Arc<Self>) {
        tokio::spawn(async move {
            let subscribe = |subject: String| {
                let client = self.client.clone();
                async move {
                    loop {
                        match client.subscribe(subject.clone()).await {
                            Ok(s) => return s,
                            Err(e) => {
                                warn!(error = %e, %subject, "cluster: subscribing failed; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }
            };
            let mut revocations = subscribe(REVOCATIONS.to_owned()).await;
            let mut takeovers = subscribe(format!("{TAKEOVER_PREFIX}*")).await;
            let mut nodes = subscribe(format!("{}*", directory::NODES_PREFIX)).await;
            loop {
                let event = tokio::select! {
                    Some(m) = nodes.next() => {
                        if m.payload.len() <= directory::MAX_ANNOUNCEMENT {
                            if let Ok(info) = serde_json::from_slice::<NodeInfo>(&m.payload) {
                                self.directory.heard(info, std::time::Instant::now());
                            }
                        }
                        continue;
                    }
                    Some(m) = revocations.next() => {
                        self.metrics.revocations_received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        match std::str::from_utf8(&m.payload) {
                            Ok(k) if !k.is_empty() && k.len() <= 128 => ClusterEvent::Revoked { key_id: k.to_owned() },
                            _ => continue,
                        }
                    }
                    Some(m) = takeovers.next() => {
                        let channel = m.subject.as_str().trim_start_matches(TAKEOVER_PREFIX).to_owned();
                        let by = String::from_utf8_lossy(&m.payload).into_owned();
                        if by == self.config.node_id || !self.leases.holds(&channel) {
                            continue;
                        }
                        ClusterEvent::Takeover { channel, by }
                    }
                    else => return,
                };
                let _ = self.events.send(event);
            }
        });
    }
}

/// Renders the cluster's metrics (Prometheus text).
pub fn render_metrics(cluster: &Cluster, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let m = &cluster.metrics;
    let counters: [(&str, &str, &AtomicU64); 7] = [
        (
            "starling_cluster_claims_total",
            "Channel leases claimed by this node.",
            &m.claims,
        ),
        (
            "starling_cluster_claims_refused_total",
            "Publishes refused because another node holds the channel.",
            &m.refused,
        ),
        (
            "starling_cluster_claims_unverified_total",
            "Publishes accepted while NATS could not be asked.",
            &m.unverified,
        ),
        (
            "starling_cluster_leases_lost_total",
            "Leases found held by another node (the publish here was ended).",
            &m.lost,
        ),
        (
            "starling_cluster_takeovers_asked_total",
            "Takeovers this node asked of other nodes.",
            &m.takeovers_asked,
        ),
        (
            "starling_cluster_revocations_sent_total",
            "Revocations published to the other nodes.",
            &m.revocations_sent,
        ),
        (
            "starling_cluster_revocations_received_total",
            "Revocations received from NATS.",
            &m.revocations_received,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP starling_cluster_connected Whether the node's NATS connection is up.\n# TYPE starling_cluster_connected gauge\nstarling_cluster_connected {}\n# HELP starling_cluster_leases_held Channel leases this node holds.\n# TYPE starling_cluster_leases_held gauge\nstarling_cluster_leases_held {}",
        u8::from(cluster.connected()),
        cluster.leases.len()
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_nats_urls_are_redacted() {
        assert_eq!(
            super::redact_url("nats://user:secret@n1:4222,nats://n2:4222"),
            "nats://<redacted>@n1:4222,nats://n2:4222"
        );
    }
}
