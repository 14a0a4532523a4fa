//! The directory of nodes: each node announces itself on `starling.nodes.ID` every
//! second (roles, where it is reached, its region and load); every node keeps what it
//! heard for [`STALE_AFTER`]. The Usher routes viewers and broadcasters from it
//! ([`route_viewer`], [`route_broadcaster`], pure functions over a snapshot).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use starling_sync::lock;

/// A node not heard from for this long is left out of routing.
pub const STALE_AFTER: Duration = Duration::from_secs(3);
/// How often a node announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// The prefix of announcements (`starling.nodes.ID`).
pub const NODES_PREFIX: &str = "starling.nodes.";
/// Largest announcement read (bytes).
pub const MAX_ANNOUNCEMENT: usize = 16 * 1024;

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// `ingest`, `origin`, `edge`, `api`.
    pub roles: Vec<String>,
    /// Where viewers reach its HTTP (`http://host:port`).
    pub http_url: String,
    /// Where encoders reach its RTMP (`rtmp://host:port`), if it ingests.
    #[serde(default)]
    pub rtmp_url: Option<String>,
    /// Where encoders reach its SRT (`srt://host:port`), if it ingests over SRT.
    #[serde(default)]
    pub srt_url: Option<String>,
    /// A free label (`eu-west`); empty for none.
    #[serde(default)]
    pub region: String,
    /// Open HTTP connections (viewers, for an edge).
    #[serde(default)]
    pub connections: u64,
    /// Live publishes.
    #[serde(default)]
    pub publishers: u64,
}

impl NodeInfo {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The nodes heard from lately.
#[derive(Debug, Default)]
pub struct Directory {
    nodes: Mutex<HashMap<String, (NodeInfo, Instant)>>,
}

impl Directory {
    /// Records an announcement (a bounded map: one entry per node id).
    pub fn heard(&self, info: NodeInfo, now: Instant) {
        let mut nodes = lock(&self.nodes);
        // Forget nodes long gone so the map follows the cluster, not its history.
        nodes.retain(|_, (_, at)| now.duration_since(*at) < STALE_AFTER * 20);
        if nodes.len() < 10_000 || nodes.contains_key(&info.id) {
            nodes.insert(info.id.clone(), (info, now));
        }
    }

    /// The nodes heard from within [`STALE_AFTER`] of `now`, by id.
    pub fn live(&self, now: Instant) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> = lock(&self.nodes)
            .values()
            .filter(|(_, at)| now.duration_since(*at) < STALE_AFTER)
            .map(|(n, _)| n.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// Rendezvous (highest random weight) score of `node` for `channel`: every router
/// ranks a channel's edges in the same order without talking to the others, and a node
/// joining or leaving moves only the channels it ranks first.
fn score(channel: &str, node: &str) -> u64 {
    // FNV-1a over channel, a separator, node: stable across processes and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in channel
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(node.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix so that similar names do not score alike.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The edge a viewer of `channel` in `region` is sent to.
///
/// Edges of the viewer's region are preferred (all edges when the region has none). The
/// channel is spread over the first `k` edges of its rendezvous order, `k` growing with
/// the channel's recent viewers (`ceil(viewers / per_edge)`): a channel's viewers stay on
/// few edges (their caches stay hot, the origin fills few) until they need more. Among
/// those `k`, the one this channel sent fewest viewers to lately (`sent`), then the one
/// with the fewest connections, takes the viewer.
pub fn route_viewer<'a>(
    channel: &str,
    region: &str,
    nodes: &'a [NodeInfo],
    channel_viewers: u64,
    per_edge: u64,
    sent: impl Fn(&str) -> u64,
) -> Option<&'a NodeInfo> {
    let edges: Vec<&NodeInfo> = nodes.iter().filter(|n| n.has_role("edge")).collect();
    let local: Vec<&NodeInfo> = edges
        .iter()
        .copied()
        .filter(|n| !region.is_empty() && n.region == region)
        .collect();
    let mut pool = if local.is_empty() { edges } else { local };
    if pool.is_empty() {
        return None;
    }
    pool.sort_by_key(|n| std::cmp::Reverse(score(channel, &n.id)));
    let k = channel_viewers
        .div_ceil(per_edge.max(1))
        .clamp(1, pool.len() as u64) as usize;
    pool[..k]
        .iter()
        .copied()
        .min_by_key(|n| (sent(&n.id), n.connections))
}

/// The ingest node a broadcaster is sent to: the least busy of the region's (or any)
/// ingest nodes.
pub fn route_broadcaster<'a>(region: &str, nodes: &'a [NodeInfo]) -> Option<&'a NodeInfo> {
    let ingest: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.has_role("ingest") && n.rtmp_url.is_some())
        .collect();
    let local: Vec<&NodeInfo> = ingest
        .iter()
        .copied()
        .filter(|n| !region.is_empty() && n.region == region)
        .collect();
    let pool = if local.is_empty() { ingest } else { local };
    pool.into_iter()
        .min_by_key(|n| (n.publishers, n.connections, n.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: &str, region: &str, connections: u64) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            roles: vec!["edge".into()],
            http_url: format!("http://{id}:8080"),
            rtmp_url: None,
            srt_url: None,
            region: region.into(),
            connections,
            publishers: 0,
        }
    }

    #[test]
    fn a_channel_concentrates_on_few_edges_until_it_needs_more() {
        let nodes: Vec<NodeInfo> = (0..8).map(|i| edge(&format!("e{i}"), "", 0)).collect();
        let first = route_viewer("ch", "", &nodes, 1, 100, |_| 0)
            .unwrap()
            .id
            .clone();
        // Below the threshold every viewer of the channel goes to the same edge.
        for viewers in 1..=100 {
            assert_eq!(
                route_viewer("ch", "", &nodes, viewers, 100, |_| 0)
                    .unwrap()
                    .id,
                first
            );
        }
        // Past it a second edge is used: the less loaded of the top two.
        let mut loaded = nodes.clone();
        loaded
            .iter_mut()
            .find(|n| n.id == first)
            .unwrap()
            .connections = 500;
        let second = route_viewer("ch", "", &loaded, 150, 100, |_| 0)
            .unwrap()
            .id
            .clone();
        assert_ne!(second, first);
        // And it is the same second edge on every router (rendezvous order).
        assert_eq!(
            route_viewer("ch", "", &loaded, 150, 100, |_| 0).unwrap().id,
            second
        );
        // Viewers sent lately count first: past the threshold the top two share them.
        let sent_first = |id: &str| if id == first { 100 } else { 0 };
        let other = route_viewer("ch", "", &nodes, 101, 100, sent_first).unwrap();
        assert_ne!(other.id, first);
        assert_eq!(
            route_viewer("ch", "", &nodes, 101, 100, |_| 0).unwrap().id,
            first,
            "a tie goes to the channel's first edge"
        );
        // Channels spread over the edges.
        let firsts: std::collections::HashSet<String> = (0..64)
            .map(|i| {
                route_viewer(&format!("c{i}"), "", &nodes, 1, 100, |_| 0)
                    .unwrap()
                    .id
                    .clone()
            })
            .collect();
        assert!(firsts.len() >= 5, "{firsts:?}");
    }

    #[test]
    fn the_viewers_region_first_and_no_edge_no_route() {
        let nodes = vec![
            edge("eu1", "eu", 10),
            edge("us1", "us", 0),
            edge("us2", "us", 0),
        ];
        assert_eq!(
            route_viewer("ch", "eu", &nodes, 1, 100, |_| 0).unwrap().id,
            "eu1"
        );
        assert!(route_viewer("ch", "us", &nodes, 1, 100, |_| 0)
            .unwrap()
            .id
            .starts_with("us"));
        // A region without edges: any edge.
        assert!(route_viewer("ch", "ap", &nodes, 1, 100, |_| 0).is_some());
        assert!(route_viewer("ch", "eu", &[], 1, 100, |_| 0).is_none());
    }

    #[test]
    fn broadcasters_go_to_the_least_busy_ingest_node() {
        let mut a = edge("a", "eu", 0);
        a.roles = vec!["ingest".into(), "origin".into()];
        a.rtmp_url = Some("rtmp://a:1935".into());
        a.publishers = 5;
        let mut b = a.clone();
        b.id = "b".into();
        b.rtmp_url = Some("rtmp://b:1935".into());
        b.publishers = 2;
        let nodes = vec![a, b, edge("e", "eu", 0)];
        assert_eq!(route_broadcaster("eu", &nodes).unwrap().id, "b");
        assert!(route_broadcaster("eu", &nodes[2..]).is_none());
    }

    #[test]
    fn stale_nodes_leave_the_directory() {
        let d = Directory::default();
        let t0 = Instant::now();
        d.heard(edge("a", "", 0), t0);
        assert_eq!(d.live(t0).len(), 1);
        assert!(d.live(t0 + STALE_AFTER).is_empty());
    }
}
