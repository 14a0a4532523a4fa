//! The P2P grid on this node: the tracker's WebSockets (`/p2p/{channel}`), the key piece
//! lists are signed with (`/p2p/key`), and the players' reports (`/p2p/{channel}/beacon`)
//! summed per channel into `/metrics`. The tracker itself is sans-IO
//! (`starling_p2p::tracker`); this module owns the sockets, the clock and the limits a
//! socket needs (a join deadline, an idle timeout, a bounded outbox).

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        ConnectInfo, Path, RawQuery, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use starling_origin::{Access, PlaybackGate};
use starling_p2p::signal::MAX_MESSAGE;
use starling_p2p::tracker::{Actions, ConnId, Refusal};
use starling_p2p::{PieceSigner, Tracker};
use starling_sync::lock;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// A connection must join within this time (an idle socket holds a slot).
const JOIN_WITHIN: Duration = Duration::from_secs(10);
/// The tracker pings this often; a connection silent for [`IDLE`] is closed.
const PING_EVERY: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(75);
/// Frames queued for one connection; a peer that does not read is dropped.
const OUTBOX: usize = 128;
/// The WebSocket layer's cap: frames between the tracker's limit and this get an error
/// frame that names the limit; larger ones close the socket (code 1009).
const WS_MAX: usize = 4 * MAX_MESSAGE;
/// Channels with reports kept (a flood of made-up names cannot grow it further).
const MAX_REPORTED_CHANNELS: usize = 4096;

enum Out {
    /// A message for the peer; `welcome` marks the answer that completes its join.
    Text { json: String, welcome: bool },
    /// Close after what was queued, with this reason.
    Close(String),
}

/// The node's tracker and reports.
pub struct P2p {
    tracker: Mutex<Tracker>,
    outboxes: Mutex<HashMap<ConnId, mpsc::Sender<Out>>>,
    next_conn: AtomicU64,
    ids: std::collections::hash_map::RandomState,
    gate: Option<Arc<dyn PlaybackGate>>,
    public_key: String,
    key_id: String,
    qoe: Mutex<HashMap<String, Qoe>>,
    joins_refused: AtomicU64,
    /// True once the node shuts down: every socket closes with 1001 (going away), and
    /// players reconnect elsewhere.
    closing: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for P2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2p")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A per-channel series of the reports: name, type, help, value.
type Series = (&'static str, &'static str, &'static str, fn(&Qoe) -> f64);

/// What players of one channel reported, summed.
#[derive(Debug, Default, Clone)]
struct Qoe {
    peer_bytes: u64,
    edge_bytes: u64,
    rebuffer_ms: u64,
    played_ms: u64,
    startup_ms: u64,
    startups: u64,
    reports: u64,
}

impl P2p {
    pub fn new(
        config: starling_p2p::TrackerConfig,
        signer: &PieceSigner,
        gate: Option<Arc<dyn PlaybackGate>>,
    ) -> Arc<Self> {
        let public_key = starling_p2p::pieces::hex(&signer.public_key());
        Arc::new(Self {
            tracker: Mutex::new(Tracker::new(config, public_key.clone())),
            outboxes: Mutex::default(),
            next_conn: AtomicU64::new(1),
            ids: Default::default(),
            gate,
            public_key,
            key_id: signer.key_id().to_owned(),
            qoe: Mutex::default(),
            joins_refused: AtomicU64::new(0),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// Closes every tracker socket (the node is shutting down).
    pub fn shutdown(&self) {
        // `send_replace`: the value changes even when no socket is subscribed.
        self.closing.send_replace(true);
    }

    /// Sends what the tracker decided: a peer whose outbox is full is dropped (it does
    /// not read; its slot is worth more to others).
    fn dispatch(&self, actions: Actions) {
        if actions.send.is_empty() && actions.close.is_empty() {
            return;
        }
        let mut boxes = lock(&self.outboxes);
        for (conn, msg) in actions.send {
            let full = boxes.get(&conn).is_some_and(|tx| {
                let welcome = matches!(msg, starling_p2p::signal::ServerMsg::Welcome { .. });
                let json = msg.to_json();
                tx.try_send(Out::Text { json, welcome }).is_err()
            });
            if full {
                debug!(conn, "p2p: a peer's outbox is full; dropping it");
                boxes.remove(&conn);
            }
        }
        for conn in actions.close {
            if let Some(tx) = boxes.remove(&conn) {
                let _ = tx.try_send(Out::Close("closed by the tracker".into()));
            }
        }
    }

    /// The metrics of the tracker and of the players' reports.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (conns, stats, refused, relayed) = {
            let t = lock(&self.tracker);
            (t.connections(), t.stats(), t.refused(), t.relayed())
        };
        out.push_str("# HELP starling_p2p_connections Tracker WebSockets open.\n# TYPE starling_p2p_connections gauge\n");
        let _ = writeln!(out, "starling_p2p_connections {conns}");
        out.push_str("# HELP starling_p2p_peers Peers in each swarm (channel and rendition).\n# TYPE starling_p2p_peers gauge\n");
        for s in &stats {
            let _ = writeln!(
                out,
                "starling_p2p_peers{{channel=\"{}\",rendition=\"{}\"}} {}",
                s.channel, s.rendition, s.peers
            );
        }
        out.push_str("# HELP starling_p2p_signals_relayed_total Signalling messages relayed between peers.\n# TYPE starling_p2p_signals_relayed_total counter\n");
        let _ = writeln!(out, "starling_p2p_signals_relayed_total {relayed}");
        out.push_str("# HELP starling_p2p_refused_total Tracker messages and connections refused, by cause.\n# TYPE starling_p2p_refused_total counter\n");
        for (code, n) in refused {
            let _ = writeln!(
                out,
                "starling_p2p_refused_total{{cause=\"{}\"}} {n}",
                code.as_str()
            );
        }
        let joins = self.joins_refused.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "starling_p2p_refused_total{{cause=\"connection\"}} {joins}"
        );
        let qoe: Vec<(String, Qoe)> = {
            let q = lock(&self.qoe);
            let mut v: Vec<_> = q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let series: [Series; 5] = [
            (
                "starling_p2p_rebuffer_seconds_total",
                "counter",
                "Time players reported stalled.",
                |q| q.rebuffer_ms as f64 / 1000.0,
            ),
            (
                "starling_p2p_played_seconds_total",
                "counter",
                "Time players reported playing.",
                |q| q.played_ms as f64 / 1000.0,
            ),
            (
                "starling_p2p_startup_seconds_total",
                "counter",
                "Sum of the startup times players reported.",
                |q| q.startup_ms as f64 / 1000.0,
            ),
            (
                "starling_p2p_startups_total",
                "counter",
                "Startups players reported.",
                |q| q.startups as f64,
            ),
            (
                "starling_p2p_reports_total",
                "counter",
                "Player reports received.",
                |q| q.reports as f64,
            ),
        ];
        out.push_str("# HELP starling_p2p_bytes_total Media bytes players reported, by where they came from (peers or the edge).\n# TYPE starling_p2p_bytes_total counter\n");
        for (ch, q) in &qoe {
            let _ = writeln!(
                out,
                "starling_p2p_bytes_total{{channel=\"{ch}\",source=\"peer\"}} {}",
                q.peer_bytes
            );
            let _ = writeln!(
                out,
                "starling_p2p_bytes_total{{channel=\"{ch}\",source=\"edge\"}} {}",
                q.edge_bytes
            );
        }
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (ch, q) in &qoe {
                let _ = writeln!(out, "{name}{{channel=\"{ch}\"}} {}", value(q));
            }
        }
    }
}

impl P2p {
    /// A channel's grid for the live list (`/api/v1/live`, the admin console): peers in
    /// its swarms now and what its players reported; None when it has neither.
    pub fn channel_summary(&self, channel: &str) -> Option<serde_json::Value> {
        let peers: usize = lock(&self.tracker)
            .stats()
            .iter()
            .filter(|s| s.channel == channel)
            .map(|s| s.peers)
            .sum();
        let q = lock(&self.qoe).get(channel).cloned();
        if peers == 0 && q.is_none() {
            return None;
        }
        let q = q.unwrap_or_default();
        let ratio = |a: u64, b: u64| {
            if a + b == 0 {
                0.0
            } else {
                a as f64 / (a + b) as f64
            }
        };
        Some(serde_json::json!({
            "peers": peers,
            "offload_ratio": ratio(q.peer_bytes, q.edge_bytes),
            "rebuffer_ratio": ratio(q.rebuffer_ms, q.played_ms),
            "mean_startup_ms": q.startup_ms.checked_div(q.startups),
            "reports": q.reports,
        }))
    }
}

/// `/p2p/key`, `/p2p/{channel}` and `/p2p/{channel}/beacon`.
pub fn router<S: Clone + Send + Sync + 'static>(p2p: Arc<P2p>) -> Router<S> {
    Router::new()
        .route("/p2p/key", get(key))
        .route("/p2p/{channel}", get(connect))
        .route("/p2p/{channel}/beacon", post(beacon))
        .with_state(p2p)
}

async fn key(State(p2p): State<Arc<P2p>>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(serde_json::json!({
            "alg": "Ed25519",
            "key": p2p.public_key,
            "id": p2p.key_id,
        })),
    )
        .into_response()
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (status, [(header::CACHE_CONTROL, "no-store")], m).into_response()
}

/// The gate's decision for `channel` with the request's token (query `token` or the
/// playback cookie, as for HLS), as a response when refused.
async fn admitted(
    p2p: &P2p,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Response> {
    if !starling_origin::http::valid_name(channel, 64) {
        return Err(refuse(StatusCode::BAD_REQUEST, "malformed channel name"));
    }
    if let Some(gate) = &p2p.gate {
        let token = starling_origin::gate::request_token(query, headers);
        if let Access::Refused(r) = gate.check(channel, token.as_deref()).await {
            return Err(r.response(channel));
        }
    }
    Ok(())
}

async fn connect(
    State(p2p): State<Arc<P2p>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(r) = admitted(&p2p, &channel, query.as_deref(), &headers).await {
        p2p.joins_refused.fetch_add(1, Ordering::Relaxed);
        return r;
    }
    let addr = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0 .0.ip());
    let conn = p2p.next_conn.fetch_add(1, Ordering::Relaxed);
    // Ids are random (not the connection's number): nothing about one peer tells
    // another who else is in the swarm.
    let id = format!("{:016x}", p2p.ids.hash_one(conn));
    let admitted = lock(&p2p.tracker).admit(conn, id, &channel, addr, Instant::now());
    if let Err(e) = admitted {
        p2p.joins_refused.fetch_add(1, Ordering::Relaxed);
        let status = match e {
            Refusal::TooManyFromAddress(_) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Banned => StatusCode::FORBIDDEN,
            Refusal::Duplicate(_) => StatusCode::CONFLICT,
        };
        return refuse(status, e.to_string());
    }
    let (tx, rx) = mpsc::channel(OUTBOX);
    lock(&p2p.outboxes).insert(conn, tx);
    let on_fail = p2p.clone();
    ws.max_message_size(WS_MAX)
        .max_frame_size(WS_MAX)
        .on_failed_upgrade(move |_| forget(&on_fail, conn))
        .on_upgrade(move |socket| async move {
            run(&p2p, conn, socket, rx).await;
            forget(&p2p, conn);
        })
}

fn forget(p2p: &P2p, conn: ConnId) {
    lock(&p2p.outboxes).remove(&conn);
    lock(&p2p.tracker).leave(conn);
}

async fn run(p2p: &P2p, conn: ConnId, mut socket: WebSocket, mut rx: mpsc::Receiver<Out>) {
    let opened = tokio::time::Instant::now();
    let mut heard = opened;
    let mut joined = false;
    let mut ping = tokio::time::interval_at(opened + PING_EVERY, PING_EVERY);
    let mut closing = p2p.closing.subscribe();
    loop {
        let deadline = if joined {
            heard + IDLE
        } else {
            opened + JOIN_WITHIN
        };
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text { json, welcome }) => {
                    joined |= welcome;
                    if socket.send(Message::Text(json.into())).await.is_err() {
                        return;
                    }
                }
                Some(Out::Close(reason)) => return close(socket, 1008, &reason).await,
                // Dropped by `dispatch` (outbox full).
                None => return close(socket, 1008, "not reading: the tracker's queue for this peer is full").await,
            },
            frame = socket.recv() => {
                heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        let actions = lock(&p2p.tracker).message(conn, t.as_str(), Instant::now());
                        p2p.dispatch(actions);
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let text = "binary frame: the tracker speaks JSON text frames";
                        let actions = lock(&p2p.tracker).message(conn, text, Instant::now());
                        p2p.dispatch(actions);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(e)) => {
                        debug!(conn, error = %e, "p2p: tracker socket failed");
                        return close(socket, 1009, &format!("{e}")).await;
                    }
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = closed(&mut closing) => {
                return close(socket, 1001, "the node is shutting down: reconnect").await;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let why = if joined { "idle: nothing heard for 75 s" } else { "no join within 10 s" };
                return close(socket, 1008, why).await;
            }
        }
    }
}

/// Resolves once the node shuts down. (`wait_for`'s guard is not `Send`: dropped here,
/// not held in a `select!` arm.)
async fn closed(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let reason: String = reason.chars().take(100).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// A player's report: what it got since its last report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Beacon {
    #[serde(default)]
    peer_bytes: u64,
    #[serde(default)]
    edge_bytes: u64,
    #[serde(default)]
    rebuffer_ms: u64,
    #[serde(default)]
    played_ms: u64,
    /// Once, in the first report.
    #[serde(default)]
    startup_ms: Option<u64>,
    /// Peers connected now (for the log only).
    #[serde(default)]
    peers: u32,
}

/// Most a single report may claim: players report every few seconds; a larger claim is
/// refused whole rather than skew the channel's figures.
const BEACON_MAX_BYTES: u64 = 1 << 30;
const BEACON_MAX_MS: u64 = 10 * 60 * 1000;

async fn beacon(
    State(p2p): State<Arc<P2p>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = admitted(&p2p, &channel, query.as_deref(), &headers).await {
        return r;
    }
    if body.len() > 4096 {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a report is at most 4096 bytes",
        );
    }
    let b: Beacon = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed report: {e}")),
    };
    if b.peer_bytes.saturating_add(b.edge_bytes) > BEACON_MAX_BYTES {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a report claims more than 1 GiB: report more often",
        );
    }
    if b.rebuffer_ms
        .max(b.played_ms)
        .max(b.startup_ms.unwrap_or(0))
        > BEACON_MAX_MS
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a report claims more than 10 minutes: report more often",
        );
    }
    {
        let mut q = lock(&p2p.qoe);
        if !q.contains_key(&channel) && q.len() >= MAX_REPORTED_CHANNELS {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many channels reported on this node",
            );
        }
        let e = q.entry(channel.clone()).or_default();
        e.peer_bytes += b.peer_bytes;
        e.edge_bytes += b.edge_bytes;
        e.rebuffer_ms += b.rebuffer_ms;
        e.played_ms += b.played_ms;
        if let Some(s) = b.startup_ms {
            e.startup_ms += s;
            e.startups += 1;
        }
        e.reports += 1;
    }
    debug!(channel, peers = b.peers, "p2p: player report");
    StatusCode::NO_CONTENT.into_response()
}

/// The piece signer of this node (the cluster's shared key), and the tracker, when
/// `[p2p] enabled`.
pub async fn start(
    section: &crate::p2p_config::P2pSection,
    ice: Vec<starling_p2p::signal::IceServer>,
    db: &starling_control::Db,
    gate: Option<Arc<dyn PlaybackGate>>,
) -> anyhow::Result<Option<(Arc<PieceSigner>, Arc<P2p>)>> {
    use anyhow::Context as _;
    if !section.enabled {
        return Ok(None);
    }
    let seed = db
        .p2p_piece_seed()
        .await
        .context("loading the P2P piece key")?;
    let signer = Arc::new(PieceSigner::from_seed(&seed)?);
    let p2p = P2p::new(section.tracker_config(ice), &signer, gate);
    info!(key = %signer.key_id(), "p2p: tracker at /p2p/{{channel}}, piece lists signed");
    Ok(Some((signer, p2p)))
}
