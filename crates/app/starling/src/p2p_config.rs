//! The `[p2p]` section: the P2P grid's tracker and piece lists on this node
//! (docs/p2p.md).

use anyhow::bail;
use serde::Deserialize;
use starling_p2p::TrackerConfig;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// Run the tracker (`/p2p/{channel}`) and sign piece lists (`…/pieces.txt`).
    pub enabled: bool,
    /// Tracker connections at once (WebSockets outlive the HTTP connection caps).
    pub max_connections: usize,
    /// Peers in one swarm (a channel's rendition); more play from the edge alone.
    pub max_swarm: usize,
    /// Tracker connections from one address at once (a NAT shares one among many).
    pub max_per_address: usize,
    /// Peers introduced per answer.
    pub peers_per_answer: usize,
}

impl Default for P2pSection {
    fn default() -> Self {
        let d = TrackerConfig::default();
        Self {
            enabled: true,
            max_connections: d.max_connections,
            max_swarm: d.max_swarm,
            max_per_address: d.max_per_address,
            peers_per_answer: d.peers_per_answer,
        }
    }
}

impl P2pSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=10_000_000).contains(&self.max_connections) {
            bail!("p2p.max_connections must be between 1 and 10000000");
        }
        if !(2..=1_000_000).contains(&self.max_swarm) {
            bail!("p2p.max_swarm must be between 2 and 1000000");
        }
        if !(1..=100_000).contains(&self.max_per_address) {
            bail!("p2p.max_per_address must be between 1 and 100000");
        }
        if !(1..=64).contains(&self.peers_per_answer) {
            bail!("p2p.peers_per_answer must be between 1 and 64");
        }
        Ok(())
    }

    /// The tracker's configuration; peers get `ice` (the node's `[webrtc] ice_servers`,
    /// the same STUN/TURN as WHEP) in their welcome.
    pub fn tracker_config(&self, ice: Vec<starling_p2p::signal::IceServer>) -> TrackerConfig {
        TrackerConfig {
            ice_servers: ice,
            max_connections: self.max_connections,
            max_swarm: self.max_swarm,
            max_per_address: self.max_per_address,
            peers_per_answer: self.peers_per_answer,
            ..TrackerConfig::default()
        }
    }
}
