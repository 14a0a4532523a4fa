//! The `[cluster]` section: the NATS a node shares with the other nodes of its cluster
//! (docs/cluster.md). Without `nats_url` the node is on its own, as always.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `nats://HOST:4222` (comma-separated for a NATS cluster); empty: no cluster.
    pub nats_url: String,
    /// This node's id in leases and events, unique in the cluster and the same after a
    /// restart (so that a restarted node takes its channels back at once). Empty: the
    /// host name and the HTTP port.
    pub node_id: String,
    /// A channel's lease not renewed for this long (a node gone) is free for others.
    pub lease_secs: u64,
    /// Where viewers reach this node's HTTP (`http://host:port`), announced to the
    /// cluster for the Usher. Empty: the HTTP listen address (the host name when it
    /// listens on every interface).
    pub advertise_http: String,
    /// Where encoders reach this node's RTMP (`rtmp://host:port`). Empty: as above.
    pub advertise_rtmp: String,
    /// A free label the Usher matches viewers' `region=` against (`eu-west`).
    pub region: String,
    /// Viewers of one channel an edge takes (as sent by the Usher in the last minute)
    /// before the channel is spread over one more edge.
    pub viewers_per_edge: u64,
}

impl std::fmt::Debug for ClusterSection {
    // `check-config` prints it: the NATS URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSection")
            .field("nats_url", &starling_cluster::redact_url(&self.nats_url))
            .field("node_id", &self.node_id)
            .field("lease_secs", &self.lease_secs)
            .field("advertise_http", &self.advertise_http)
            .field("advertise_rtmp", &self.advertise_rtmp)
            .field("region", &self.region)
            .field("viewers_per_edge", &self.viewers_per_edge)
            .finish()
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            nats_url: String::new(),
            node_id: String::new(),
            lease_secs: 6,
            advertise_http: String::new(),
            advertise_rtmp: String::new(),
            region: String::new(),
            viewers_per_edge: 500,
        }
    }
}

impl ClusterSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(2..=300).contains(&self.lease_secs) {
            bail!("cluster.lease_secs must be between 2 and 300");
        }
        if self.viewers_per_edge == 0 {
            bail!("cluster.viewers_per_edge must be at least 1");
        }
        for (key, url, scheme) in [
            ("advertise_http", &self.advertise_http, "http://"),
            ("advertise_rtmp", &self.advertise_rtmp, "rtmp://"),
        ] {
            if !url.is_empty()
                && (!url.starts_with(scheme) || url.len() > 256 || url.ends_with('/'))
            {
                bail!("cluster.{key} must be {scheme}HOST:PORT (no trailing slash), not {url:?}");
            }
        }
        if self.region.len() > 64
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("cluster.region must be up to 64 characters of a-z, A-Z, 0-9, '-' and '_'");
        }
        if !self.node_id.is_empty() && !crate::config::valid_channel_name(&self.node_id) {
            bail!("cluster.node_id must be 1-64 characters of a-z, A-Z, 0-9, '-' and '_'");
        }
        Ok(())
    }

    /// `scheme://host:port` for a listen address: the host name when it listens on every
    /// interface.
    pub fn advertised(configured: &str, scheme: &str, listen: std::net::SocketAddr) -> String {
        if !configured.is_empty() {
            return configured.to_owned();
        }
        let host = if listen.ip().is_unspecified() {
            hostname()
        } else {
            listen.ip().to_string()
        };
        format!("{scheme}://{host}:{}", listen.port())
    }

    /// The cluster client's config, if the node is in a cluster. `http_port` names the
    /// node when `node_id` is empty.
    pub fn cluster_config(
        &self,
        http_port: u16,
    ) -> anyhow::Result<Option<starling_cluster::ClusterConfig>> {
        if self.nats_url.is_empty() {
            return Ok(None);
        }
        let node_id = if self.node_id.is_empty() {
            if http_port == 0 {
                bail!("cluster.node_id must be set when server.http_listen has port 0");
            }
            let host: String = hostname()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(56)
                .collect();
            format!("{host}-{http_port}")
        } else {
            self.node_id.clone()
        };
        Ok(Some(starling_cluster::ClusterConfig {
            nats_url: self.nats_url.clone(),
            node_id,
            lease_ttl: Duration::from_secs(self.lease_secs),
        }))
    }
}

/// This machine's name (`/etc/hostname`), or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
