//! Headless P2P viewers of one channel (the `p2p-peers` harness, and tests), speaking
//! the watch page's protocol (docs/p2p.md) with a real WebRTC stack (str0m data
//! channels): Chromium cannot run a hundred tabs on two cores.
//!
//! Each viewer joins the tracker (`/p2p/CHANNEL`), connects to the peers it is
//! introduced to (and accepts their offers: browsers and other headless peers alike),
//! follows the rendition's playlist as a player `--sync` seconds behind live would, and
//! gets every new segment the way p2p.js does: from the edge when urgent, else from a
//! peer that announced it (after a skewed random wait of up to 3 s), with the edge as the
//! booster once the deadline nears; every piece from a peer is checked against the
//! signed piece list. It serves what it holds (the last 40 segments). A virtual player
//! counts a stall when a segment arrives after it was due (and plays later from then
//! on, as a real one would).
//!
//! [`run`] sums up what they saw: offload (bytes from peers / all bytes), the rebuffering
//! ratio, startup times, bad pieces, boosts.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::http1::Http;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use starling_p2p::{
    pieces::{self, PieceList},
    wire::{chunks, Frame, PieceId, Transfers, WHOLE},
};
use starling_webrtc::str0m::{
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    channel::ChannelId,
    net::{Protocol, Receive},
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
};
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;

const URGENT: Duration = Duration::from_millis(2500);
const PEER_WAIT_MAX: Duration = Duration::from_millis(3000);
const BOOST_MARGIN: Duration = Duration::from_millis(1500);
const STORE: usize = 40;
const HIGH_WATER: usize = 1 << 20;
const MAX_CONNS: usize = 12;

#[derive(Debug, Clone)]
pub struct Args {
    /// The node (or edge) to play from.
    pub http: SocketAddr,
    pub channel: String,
    pub rendition: String,
    pub peers: usize,
    pub seconds: u64,
    pub sync: f64,
    pub token: Option<String>,
    pub p2p: bool,
    pub join_every: Duration,
}

/// Counters of all viewers.
#[derive(Debug, Default)]
struct Totals {
    peer_bytes: AtomicU64,
    edge_bytes: AtomicU64,
    uploaded: AtomicU64,
    bad_pieces: AtomicU64,
    boosted: AtomicU64,
    segments: AtomicU64,
    rebuffer_ms: AtomicU64,
    played_ms: AtomicU64,
    connected_peers: AtomicU64,
    startups_ms: Mutex<Vec<u64>>,
    notes: Mutex<Vec<String>>,
}

impl Totals {
    fn note(&self, s: String) {
        let mut n = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if n.len() < 30 {
            n.push(s);
        }
    }
}

mod driver;
mod viewer;

use driver::run_viewer;

/// Runs `args.peers` viewers for `args.seconds` (after the last joined) and sums up
/// what they saw.
pub async fn run(args: Args) -> Result<Value> {
    let args = Arc::new(args);
    let key: Value = {
        let mut h = Http::connect(args.http)
            .await
            .context("connecting to the node")?;
        let (status, body) = h.get("/p2p/key").await?;
        if status != 200 {
            bail!("/p2p/key: HTTP {status}");
        }
        serde_json::from_slice(&body)?
    };
    let key: [u8; 32] =
        pieces::unhex(key["key"].as_str().unwrap_or_default()).context("the node's key")?;
    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let stop = started + Duration::from_secs(args.seconds) + args.join_every * args.peers as u32;
    let mut tasks = Vec::new();
    for i in 0..args.peers {
        let (a, t) = (args.clone(), totals.clone());
        let seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = run_viewer(a, t.clone(), key, seed, stop).await {
                t.note(format!("viewer {i}: {e:#}"));
            }
        }));
        tokio::time::sleep(args.join_every).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let t = &totals;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (peer, edge) = (get(&t.peer_bytes), get(&t.edge_bytes));
    let mut startups = t
        .startups_ms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    startups.sort_unstable();
    let q = |f: f64| {
        startups
            .get(((startups.len() as f64 - 1.0) * f).round() as usize)
            .copied()
    };
    let (rebuffer, played) = (get(&t.rebuffer_ms), get(&t.played_ms));
    Ok(json!({
            "peers": args.peers,
            "p2p": args.p2p,
            "seconds": args.seconds,
            "offload": if peer + edge == 0 { 0.0 } else { peer as f64 / (peer + edge) as f64 },
            "ceiling": 1.0 - 1.0 / args.peers.max(1) as f64,
            "peer_bytes": peer,
            "edge_bytes": edge,
            "uploaded_bytes": get(&t.uploaded),
            "segments": get(&t.segments),
            "rebuffer_ratio": if played + rebuffer == 0 { 0.0 } else { rebuffer as f64 / (played + rebuffer) as f64 },
            "rebuffer_ms": rebuffer,
            "startup_ms_median": q(0.5),
            "startup_ms_p95": q(0.95),
            "bad_pieces": get(&t.bad_pieces),
            "boosted": get(&t.boosted),
            "open_connections_at_end": get(&t.connected_peers),
            "notes": *t.notes.lock().unwrap_or_else(|e| e.into_inner()),
    }))
}
