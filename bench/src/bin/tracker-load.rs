//! `tracker-load`: the P2P tracker's capacity on one core, without sockets (the sans-IO
//! `starling_p2p::Tracker` fed the frames a swarm sends): how many joins, signalling
//! relays and position updates per second it handles, and the memory per peer. The
//! WebSocket driver (`crates/app/starling/src/p2p.rs`) adds a JSON parse (already in
//! these figures), a frame write per answer and a task per socket.
//!
//! Usage: tracker-load [--peers 100000] [--swarms 10]
//! Prints one JSON line: {"peers":…,"joins_per_s":…,"signals_per_s":…,
//! "positions_per_s":…,"bytes_per_peer":…}

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde_json::json;
use starling_bench::args::Flags;
use starling_p2p::{signal::ServerMsg, Tracker, TrackerConfig};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() -> Result<()> {
    let (mut peers, mut swarms) = (100_000usize, 10usize);
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--peers" => peers = flags.parsed()?,
            "--swarms" => swarms = flags.parsed()?,
            other => bail!("unknown flag {other}"),
        }
    }
    let config = TrackerConfig {
        max_connections: usize::MAX,
        max_swarm: usize::MAX,
        max_per_address: usize::MAX,
        // The rate limit is per connection; the load here is many connections, each at
        // a normal pace, so the clock below moves on a second between rounds.
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config, "00".repeat(32));
    let mut now = Instant::now();
    let rss0 = rss_bytes();
    let addr = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32));
    let join = |i: usize| {
        format!(
            r#"{{"t":"join","rendition":"r{}","region":"eu","upload_kbps":4000,"position":{}}}"#,
            i % swarms,
            i % 50
        )
    };

    // Joins: admit and join every peer (each answer scores a sample of its swarm).
    let t = Instant::now();
    let mut introduced = 0usize;
    for i in 0..peers {
        tracker
            .admit(i as u64, format!("{i:016x}"), "load", addr(i), now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (_, m) in tracker.message(i as u64, &join(i), now).send {
            if let ServerMsg::Welcome { peers, .. } = m {
                introduced += peers.len();
            }
        }
    }
    let joins = peers as f64 / t.elapsed().as_secs_f64();
    let bytes_per_peer = rss_bytes().saturating_sub(rss0) / peers.max(1) as u64;
    now += Duration::from_secs(10);

    // Signals: every peer sends an offer-sized message to a peer of its swarm.
    let sdp = "x".repeat(2500);
    let t = Instant::now();
    let mut relayed = 0usize;
    for i in 0..peers {
        let to = (i + swarms) % peers;
        let msg =
            format!(r#"{{"t":"signal","to":"{to:016x}","data":{{"type":"offer","sdp":"{sdp}"}}}}"#);
        relayed += tracker.message(i as u64, &msg, now).send.len();
    }
    let signals = peers as f64 / t.elapsed().as_secs_f64();
    now += Duration::from_secs(10);

    // Position updates: the frame every viewer sends once a segment.
    let t = Instant::now();
    for i in 0..peers {
        tracker.message(i as u64, r#"{"t":"position","position":51}"#, now);
    }
    let positions = peers as f64 / t.elapsed().as_secs_f64();

    println!(
        "{}",
        json!({
            "peers": peers,
            "swarms": swarms,
            "joins_per_s": joins.round(),
            "introduced_per_join": introduced as f64 / peers as f64,
            "signals_per_s": signals.round(),
            "signals_relayed": relayed,
            "positions_per_s": positions.round(),
            "bytes_per_peer": bytes_per_peer,
        })
    );
    Ok(())
}
