//! The Usher: where a viewer should play a channel from, and where a broadcaster should
//! publish to (docs/cluster.md). Served by nodes with the `api` role.
//!
//! - `GET /usher/play/CHANNEL[?region=R]`: JSON `{channel, url, node, region, local}`, the
//!   playlist URL on the edge chosen by [`starling_cluster::route_viewer`]: edges of the
//!   viewer's region first, a channel concentrated on few edges (rendezvous order) and
//!   spread over one more edge per `[cluster] viewers_per_edge` viewers sent to it in the
//!   last minute, so a hot channel reaches more edges at once, not after a poll.
//! - `GET /usher/live/CHANNEL/index.m3u8[?region=R&…]`: the same choice as a 302, for
//!   players that cannot ask an API first; other query parameters (a token) go along.
//! - `GET /usher/publish[?region=R]`: JSON `{rtmp, node, region}`, the least busy ingest
//!   node's RTMP URL (append `/live/STREAM_KEY`).
//!
//! Without a cluster, or with no edge (ingest node) heard from, the answer is this node.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;
use starling_cluster::{Cluster, NodeInfo};
use starling_sync::lock;

/// How far back the viewers sent to a channel count.
const WINDOW: Duration = Duration::from_secs(60);
/// Channels whose recent joins are kept at most (names come from requests).
const MAX_CHANNELS: usize = 10_000;

/// The Usher's state.
pub struct Usher {
    cluster: Option<Arc<Cluster>>,
    /// This node, as the answer of last resort.
    me: NodeInfo,
    per_edge: u64,
    /// Per channel: the viewers sent in the last [`WINDOW`].
    sent: Mutex<HashMap<String, Sent>>,
}

/// The viewers a channel was sent to lately: when and where, in order, and how many per
/// node (kept beside the window, so a routing decision never scans it).
#[derive(Debug, Default)]
struct Sent {
    window: VecDeque<(Instant, String)>,
    per_node: HashMap<String, u64>,
}

impl Sent {
    fn expire(&mut self, now: Instant) {
        while let Some((t, node)) = self.window.front() {
            if now.duration_since(*t) < WINDOW {
                break;
            }
            if let Some(n) = self.per_node.get_mut(node) {
                *n -= 1;
                if *n == 0 {
                    self.per_node.remove(node);
                }
            }
            self.window.pop_front();
        }
    }

    fn push(&mut self, now: Instant, node: &str) {
        self.window.push_back((now, node.to_owned()));
        *self.per_node.entry(node.to_owned()).or_default() += 1;
    }
}

impl std::fmt::Debug for Usher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usher")
            .field("me", &self.me.id)
            .finish_non_exhaustive()
    }
}

impl Usher {
    pub fn new(cluster: Option<Arc<Cluster>>, me: NodeInfo, per_edge: u64) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            me,
            per_edge,
            sent: Mutex::default(),
        })
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.cluster.as_ref().map(|c| c.nodes()).unwrap_or_default()
    }

    /// The node a viewer of `channel` is sent to, recorded as sent, and whether it is
    /// this node for want of a cluster or an edge (the answer of last resort).
    fn viewer(&self, channel: &str, region: &str) -> (NodeInfo, bool) {
        let nodes = self.nodes();
        let now = Instant::now();
        let mut sent = lock(&self.sent);
        if sent.len() >= MAX_CHANNELS && !sent.contains_key(channel) {
            sent.retain(|_, q| {
                q.window
                    .back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < WINDOW)
            });
        }
        let q = sent.entry(channel.to_owned()).or_default();
        q.expire(now);
        let routed = starling_cluster::route_viewer(
            channel,
            region,
            &nodes,
            q.window.len() as u64 + 1,
            self.per_edge,
            |id| q.per_node.get(id).copied().unwrap_or(0),
        )
        .cloned();
        let local = routed.is_none();
        let chosen = routed.unwrap_or_else(|| self.me.clone());
        // Bounded: past this many a channel is spread over every edge anyway.
        if q.window.len() < (self.per_edge as usize).saturating_mul(64) {
            q.push(now, &chosen.id);
        }
        (chosen, local)
    }
}

/// `/usher/…` on `usher`, to merge into a router of any state.
pub fn router<S: Clone + Send + Sync + 'static>(usher: Arc<Usher>) -> Router<S> {
    Router::new()
        .route("/usher/play/{channel}", get(play))
        .route("/usher/live/{channel}/index.m3u8", get(redirect))
        .route("/usher/publish", get(publish))
        .with_state(usher)
}

fn param<'a>(query: Option<&'a str>, name: &str) -> &'a str {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .filter(|v| {
            v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or("")
}

fn bad_channel() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        "malformed channel name\n",
    )
        .into_response()
}

/// The node a viewer of `channel` goes to, or the refusal of a malformed name.
#[allow(clippy::result_large_err)] // the Err is the response itself, built once per request
fn viewer_node(
    usher: &Usher,
    channel: &str,
    query: Option<&str>,
) -> Result<(NodeInfo, bool), Response> {
    if !crate::config::valid_channel_name(channel) {
        return Err(bad_channel());
    }
    Ok(usher.viewer(channel, param(query, "region")))
}

async fn play(
    State(usher): State<Arc<Usher>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (node, local) = match viewer_node(&usher, &channel, query.as_deref()) {
        Ok(n) => n,
        Err(refused) => return refused,
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "channel": channel,
            "url": format!("{}/live/{channel}/index.m3u8", node.http_url),
            "node": node.id,
            "region": node.region,
            // This node itself (no cluster, no edge): a page it served plays from here.
            "local": local,
        })),
    )
        .into_response()
}

async fn redirect(
    State(usher): State<Arc<Usher>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (node, _) = match viewer_node(&usher, &channel, query.as_deref()) {
        Ok(n) => n,
        Err(refused) => return refused,
    };
    // The rest of the query (a playback token) goes along; the region stays here.
    let rest: Vec<&str> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("region="))
        .collect();
    let mut location = format!("{}/live/{channel}/index.m3u8", node.http_url);
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest.join("&"));
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

async fn publish(State(usher): State<Arc<Usher>>, RawQuery(query): RawQuery) -> Response {
    let nodes = usher.nodes();
    let node = starling_cluster::route_broadcaster(param(query.as_deref(), "region"), &nodes)
        .cloned()
        .unwrap_or_else(|| usher.me.clone());
    match &node.rtmp_url {
        Some(rtmp) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "rtmp": format!("{rtmp}/live"),
                "node": node.id,
                "region": node.region,
            })),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            "no ingest node is known\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_per_node_and_forgets_what_is_older_than_it() {
        let t0 = Instant::now();
        let mut s = Sent::default();
        s.push(t0, "a");
        s.push(t0, "a");
        s.push(t0 + Duration::from_secs(30), "b");
        assert_eq!((s.per_node["a"], s.per_node["b"]), (2, 1));
        s.expire(t0 + WINDOW);
        assert_eq!(s.per_node.get("a"), None);
        assert_eq!(s.per_node["b"], 1);
        assert_eq!(s.window.len(), 1);
        s.expire(t0 + WINDOW + Duration::from_secs(30));
        assert!(s.per_node.is_empty() && s.window.is_empty());
    }
}
