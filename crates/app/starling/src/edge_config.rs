//! The `[edge]` section: the origin an edge node fills from, and its cache
//! (docs/cluster.md).

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;
use starling_edge::EdgeConfig;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSection {
    /// `http://HOST:PORT` of the origin (or a parent edge) it fills from
    /// (`STARLING_EDGE_ORIGIN`).
    pub origin: String,
    /// Memory for cached responses.
    pub cache_mb: u64,
    /// A fill from the origin taking longer fails (above the origin's blocking wait).
    pub fill_timeout_secs: u64,
    /// How long past its TTL a copy may stand in while the origin fails.
    pub stale_if_error_secs: u64,
    /// Fills under way at once; more requests get 503 (or a stale copy).
    pub max_fills: usize,
}

impl Default for EdgeSection {
    fn default() -> Self {
        let d = EdgeConfig::default();
        Self {
            origin: String::new(),
            cache_mb: (d.cache_bytes >> 20) as u64,
            fill_timeout_secs: d.fill_timeout.as_secs(),
            stale_if_error_secs: d.stale_if_error.as_secs(),
            max_fills: d.max_fills,
        }
    }
}

impl EdgeSection {
    /// Checks the section for a node running `roles`, in a cluster or not.
    pub fn validate(&self, roles: &crate::roles::Roles, in_cluster: bool) -> anyhow::Result<()> {
        if roles.edge && !roles.origin && self.origin.is_empty() && !in_cluster {
            bail!("edge.origin must be set on an edge node (http://HOST:PORT of an origin), or STARLING_EDGE_ORIGIN, unless the node is in a cluster ([cluster] nats_url), whose directory names each channel's origin");
        }
        if roles.origin && !self.origin.is_empty() {
            bail!("edge.origin is for a node without the origin role (this node serves /live/ itself)");
        }
        if !(1..=65_536).contains(&self.cache_mb) {
            bail!("edge.cache_mb must be between 1 and 65536");
        }
        if !(1..=600).contains(&self.fill_timeout_secs) {
            bail!("edge.fill_timeout_secs must be between 1 and 600");
        }
        if self.stale_if_error_secs > 86_400 {
            bail!("edge.stale_if_error_secs must be at most 86400");
        }
        if !(1..=100_000).contains(&self.max_fills) {
            bail!("edge.max_fills must be between 1 and 100000");
        }
        if !self.origin.is_empty() {
            starling_edge::check_origin(&self.origin)?;
        }
        Ok(())
    }

    pub fn edge_config(&self) -> EdgeConfig {
        EdgeConfig {
            origin: self.origin.clone(),
            cache_bytes: (self.cache_mb as usize) << 20,
            fill_timeout: Duration::from_secs(self.fill_timeout_secs),
            stale_if_error: Duration::from_secs(self.stale_if_error_secs),
            max_fills: self.max_fills,
        }
    }
}
