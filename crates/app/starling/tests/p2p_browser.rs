//! The P2P grid in real browsers: viewers of a channel whose latency mode is `p2p` in
//! headless Chromium (`/watch/CHANNEL`, each in its own browser context, run by
//! web/tests/p2p.mjs), a real node publishing from ffmpeg.
//!
//! - Three viewers: segments flow between them over WebRTC data channels (counted by the
//!   sender and by the receiver), each plays without stalls, and the edge serves less
//!   than it would alone; the players' reports reach `/metrics`.
//! - Two browsers and eight headless peers (str0m data channels) in one swarm: bytes
//!   flow both ways between the two WebRTC stacks, with no bad piece and no stall.
//! - Four viewers, one lying (it flips a byte in every piece it sends) and one vanishing
//!   mid-transfer: every bad piece is caught before the player (no media error, no
//!   stall), the liar is banned by the tracker, the booster fills what the vanished peer
//!   left unfinished, and the honest viewers go on sharing.
//!
//! Faults are injected from outside the page (the harness wraps the browser's own
//! RTCDataChannel.send); the page runs the production p2p.js. The runs share one
//! node and one publish, one after the other (seven Chromium contexts at once would
//! starve a two-core machine).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn p2p_viewers(url: &str, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(web_dir().join("tests/p2p.mjs"))
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    let v = last_json_line(&out, "p2p.mjs");
    assert!(
        out.status.success() && v["ok"] == true,
        "P2P browser check failed: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn viewers_share_segments_and_survive_liars_and_vanishing_peers() {
    if !require_ffmpeg() || !require_browser() {
        return;
    }
    // A channel whose latency mode is P2P: the watch page shares without `?p2p=1`.
    let mut server = Server::start_channel("p2p-browser", "", "latency_mode = \"p2p\"");
    let mut ffmpeg = ffmpeg_test_publish(&server.rtmp_url(KEY), 170)
        .spawn()
        .unwrap();
    let media = format!("/live/{CHANNEL}/source/index.m3u8");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text = server.http_get(&media).unwrap_or_default();
        if text.matches("#EXTINF").count() >= 3 {
            break;
        }
        assert!(Instant::now() < until, "the channel did not go live");
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = server.http_request("HEAD", &format!("/live/{CHANNEL}/index.m3u8"), &[], None);
    assert_eq!(r.header("starling-latency-mode"), Some("p2p"), "{r:?}");
    let url = server.http_url(&format!("/watch/{CHANNEL}"));

    // Three honest viewers.
    let run = p2p_viewers(
        &url,
        &["--viewers", "3", "--seconds", "25", "--timeout", "90"],
    );
    eprintln!("three viewers: {run}");
    let viewers = run["viewers"].as_array().unwrap();
    for v in viewers {
        assert_eq!(
            v["mode"], "hls.js+p2p",
            "the channel's mode was not followed: {v}"
        );
    }
    let uploaded: f64 = viewers.iter().map(|v| num(v, "uploaded_bytes")).sum();
    let received: f64 = viewers.iter().map(|v| num(v, "received_raw_bytes")).sum();
    // Counted on both sides: what senders sent is what receivers got, but for the
    // transfers under way when the run stopped (at most a segment or two).
    assert!(
        received > 0.0 && received <= uploaded,
        "{uploaded} sent, {received} received"
    );
    assert!(
        uploaded - received < 2e6,
        "{uploaded} sent, {received} received"
    );
    for v in viewers {
        assert!(num(v, "rebuffer_ms") <= 1000.0, "stalled: {v}");
        assert!(num(v, "peers") >= 1.0, "no peer: {v}");
    }
    // The edge served less than it would have alone (every viewer every segment).
    let offload = num(&run, "offload");
    assert!(offload >= 0.2, "offload {offload}: {run}");
    // The players' reports (every 5 s) reached the node's metrics.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = server.http_request("GET", "/metrics", &[], None);
        let peer = metric_sum(
            &r.body,
            &format!("starling_p2p_bytes_total{{channel=\"{CHANNEL}\",source=\"peer\"}}"),
        );
        let edge = metric_sum(
            &r.body,
            &format!("starling_p2p_bytes_total{{channel=\"{CHANNEL}\",source=\"edge\"}}"),
        );
        if peer > 0.0 && edge > 0.0 {
            assert!(
                metric_sum(&r.body, "starling_p2p_startups_total") >= 3.0,
                "{}",
                r.body
            );
            // The live list (the admin console's dashboard) says the same.
            let live: Value =
                serde_json::from_str(&server.http_request("GET", "/api/v1/live", &[], None).body)
                    .unwrap();
            let grid = &live["channels"][0]["p2p"];
            assert!(
                num(grid, "reports") >= 1.0 && num(grid, "offload_ratio") > 0.0,
                "{live}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no player reports in /metrics:\n{}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Browsers and headless peers (str0m data channels, bench/src/p2p_peers) in one
    // swarm: each side offers to and answers the other.
    let args = starling_bench::p2p_peers::Args {
        http: server.http,
        channel: CHANNEL.into(),
        rendition: "source".into(),
        peers: 8,
        seconds: 35,
        sync: 8.0,
        token: None,
        p2p: true,
        join_every: Duration::from_millis(250),
    };
    let headless = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(starling_bench::p2p_peers::run(args))
            .unwrap()
    });
    std::thread::sleep(Duration::from_secs(3));
    let run = p2p_viewers(
        &url,
        &["--viewers", "2", "--seconds", "25", "--timeout", "90"],
    );
    let peers = headless.join().unwrap();
    eprintln!("two browsers and eight headless peers: {run}\n{peers}");
    for v in run["viewers"].as_array().unwrap() {
        assert!(
            num(v, "peers") >= 3.0,
            "a browser reached few headless peers: {v}"
        );
        assert!(num(v, "peer_bytes") > 0.0, "{v}");
    }
    assert!(num(&peers, "uploaded_bytes") > 0.0, "{peers}");
    assert!(num(&peers, "offload") >= 0.3, "{peers}");
    assert_eq!(num(&peers, "bad_pieces"), 0.0, "{peers}");
    assert!(num(&peers, "rebuffer_ratio") < 0.02, "{peers}");

    // A liar and a peer that vanishes mid-transfer among two honest viewers. Last:
    // every viewer here shares one address, which the liar's repeated bans close to
    // the channel's swarm for ten minutes.
    let run = p2p_viewers(
        &url,
        &[
            "--viewers",
            "4",
            "--seconds",
            "30",
            "--timeout",
            "100",
            "--corrupt",
            "0",
            "--vanish",
            "1",
        ],
    );
    eprintln!("with a liar and a vanishing peer: {run}");
    let viewers = run["viewers"].as_array().unwrap();
    let liar = &viewers[0];
    assert!(
        num(liar, "corrupted_sent") > 0.0,
        "the liar sent nothing: {liar}"
    );
    let banned = liar["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("banned"));
    assert!(banned, "the liar was not banned: {liar}");
    let caught: f64 = viewers[1..].iter().map(|v| num(v, "bad_pieces")).sum();
    assert!(caught >= 1.0, "no bad piece caught: {run}");
    assert_eq!(viewers[1]["vanished"], true, "{run}");
    // The honest viewers (checked by the harness: no stall over 1 s, no media error)
    // still got segments from each other after the liar was gone.
    let honest_peer_bytes: f64 = viewers[2..].iter().map(|v| num(v, "peer_bytes")).sum();
    assert!(honest_peer_bytes > 0.0, "{run}");

    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    server.stop();
}
