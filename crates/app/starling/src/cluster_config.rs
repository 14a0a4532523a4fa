//! The `[cluster]` section: the NATS a node shares with the other nodes of its cluster
//! (docs/cluster.md). Without `nats_url` the node is on its own, as always.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            nats_url: String::new(),
            node_id: String::new(),
            lease_secs: 6,
        }
    }
}

impl ClusterSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(2..=300).contains(&self.lease_secs) {
            bail!("cluster.lease_secs must be between 2 and 300");
        }
        if !self.node_id.is_empty() && !crate::config::valid_channel_name(&self.node_id) {
            bail!("cluster.node_id must be 1-64 characters of a-z, A-Z, 0-9, '-' and '_'");
        }
        Ok(())
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
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".to_owned());
            let host: String = host
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
