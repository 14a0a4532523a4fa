//! The edge role end to end: a real origin node publishing from ffmpeg, a real edge node
//! (`roles = "edge"`) in front of it, and between them a relay that counts every request
//! the edge makes of the origin (request lines sniffed off the edge's connections).
//!
//! - A flash crowd of 2,000 viewers on two edges, blocked on the same LL-HLS part and
//!   then fetching that part, costs the origin exactly one request for each per edge
//!   (counted at the relays, not taken from the edges' own metrics); ffprobe plays the
//!   channel through the edge.
//! - The origin killed (kill -9) and restarted while the edge keeps serving what it has.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::*;
use starling_bench::ll_hls;

/// A cluster's metric names as a node renders them (checked for real in tests/cluster.rs),
/// so that the dashboard check here covers every other metric.
const CLUSTER_METRICS: &str = "# TYPE starling_cluster_leases_held gauge\n\
    # TYPE starling_cluster_leases_lost_total counter\n\
    # TYPE starling_cluster_claims_unverified_total counter\n\
    # TYPE starling_cluster_connected gauge\n";

/// A TCP relay to `upstream` that records the request line of every HTTP request sent
/// through it (GET requests have no bodies, so the client's side is request heads only).
struct CountingRelay {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    upstream: Arc<Mutex<SocketAddr>>,
}

impl CountingRelay {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let upstream = Arc::new(Mutex::new(upstream));
        let (reqs, up) = (requests.clone(), upstream.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let to = *up.lock().unwrap();
                let Ok(mut server) = TcpStream::connect(to) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                let reqs = reqs.clone();
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                            pending.drain(..end + 4);
                            if let Some(line) = head.lines().next() {
                                reqs.lock().unwrap().push(line.to_owned());
                            }
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self {
            addr,
            requests,
            upstream,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for `path`, whatever their query.
    fn count_path(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("GET "))
            .filter(|t| t.split([' ', '?']).next() == Some(path))
            .count()
    }

    /// Requests whose target is exactly `target`.
    fn count(&self, target: &str) -> usize {
        let want = format!("GET {target} HTTP/1.1");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| **l == want)
            .count()
    }
}

/// The media playlist at `media` through `addr` once it lists a segment and a preload
/// hint (the channel is live and packaged), within 20 s.
fn wait_live_playlist(addr: SocketAddr, media: &str, through: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http_request_at(addr, "GET", media, &[], None);
        if r.status == 200 && r.body.contains("#EXT-X-PRELOAD-HINT") && r.body.contains("#EXTINF") {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "no playlist through {through}: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_flash_crowd_on_two_edges_costs_the_origin_one_request_per_object_per_edge() {
    if !require_ffmpeg() {
        return;
    }
    let mut origin = Server::start("edge-origin", "");
    // Two edges, each filling through a relay of its own that counts what the origin
    // is asked. Every viewer comes from 127.0.0.1: the per-address cap is raised.
    let caps = "max_connections_per_address = 4096";
    let relay = CountingRelay::start(origin.http);
    let mut edge = Server::start_edge("edge-node", &relay.url(), &origin.data_dir(), caps);
    let relay_b = CountingRelay::start(origin.http);
    let edge_b = Server::start_edge("edge-node-b", &relay_b.url(), &origin.data_dir(), caps);
    let mut ffmpeg = ffmpeg_test_publish(&origin.rtmp_url(KEY), 60)
        .spawn()
        .unwrap();
    // Edges configured by hand, no cluster: the Usher answers with the node itself, and a
    // watch page it served plays from there.
    let r = origin.http_request("GET", &format!("/usher/play/{CHANNEL}"), &[], None);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["local"], true, "{}", r.body);

    let media = format!("/live/{CHANNEL}/source/index.m3u8");
    let playlist = wait_live_playlist(edge.http, &media, "the edge");

    // 2,000 viewers, 1,000 on each edge, join within a second or two: each asks for the
    // next part with a blocking playlist request, then fetches that part.
    let (msn, part, hint) = ll_hls::next_part(&playlist).expect("a live LL-HLS playlist");
    let blocking = format!("{media}?_HLS_msn={msn}&_HLS_part={part}");
    let part_path = format!("/live/{CHANNEL}/source/{hint}");
    let started = Instant::now();
    let viewers: Vec<_> = (0..2000)
        .map(|i| {
            let addr = if i % 2 == 0 { edge.http } else { edge_b.http };
            let (blocking, part_path) = (blocking.clone(), part_path.clone());
            std::thread::spawn(move || {
                let asked = Instant::now();
                let p = http_request_at(addr, "GET", &blocking, &[], None);
                let m = http_request_at(addr, "GET", &part_path, &[], None);
                (p, m, asked.elapsed())
            })
        })
        .collect();
    let joined_within = started.elapsed();
    let mut ways = std::collections::BTreeMap::<String, usize>::new();
    let mut waits = Vec::new();
    for v in viewers {
        let (p, m, waited) = v.join().unwrap();
        assert_eq!(p.status, 200, "{}", p.body);
        let wanted = format!("{msn}.{part}.m4s");
        assert!(
            p.body.contains(&wanted),
            "the blocking answer lists {wanted}: {}",
            p.body
        );
        assert_eq!(m.status, 200, "{part_path}: {}", m.body);
        *ways
            .entry(p.header("starling-edge-cache").unwrap_or("-").to_owned())
            .or_default() += 1;
        waits.push(waited);
    }
    waits.sort();
    eprintln!(
        "2000 viewers joined within {joined_within:?}; playlist answers {ways:?}; \
         wait for playlist and part p50 {:?} p99 {:?} max {:?}",
        waits[waits.len() / 2],
        waits[waits.len() * 99 / 100],
        waits[waits.len() - 1]
    );
    for (name, relay) in [("edge A", &relay), ("edge B", &relay_b)] {
        assert_eq!(
            relay.count(&blocking),
            1,
            "{name}: one fill of the blocking playlist ({ways:?}); the origin saw {:?}",
            relay.requests.lock().unwrap()
        );
        assert_eq!(relay.count(&part_path), 1, "{name}: one fill of the part");
    }
    // Every role's /metrics passes promtool, with the traffic of the crowd in it, and has
    // what the Grafana dashboard queries (the cluster's own metrics: tests/cluster.rs).
    let origin_metrics = origin.http_request("GET", "/metrics", &[], None).body;
    let edge_metrics = edge.http_request("GET", "/metrics", &[], None).body;
    promtool_check("the origin", &origin_metrics);
    promtool_check("an edge", &edge_metrics);
    assert_dashboard_metrics_exist(&[], &[&origin_metrics, &edge_metrics, CLUSTER_METRICS]);
    for e in [&edge, &edge_b] {
        let answered =
            e.metric("starling_edge_collapsed_total") + e.metric("starling_edge_hits_total");
        assert!(answered >= 1998.0, "{answered}");
    }

    // A real player through the edge.
    let (codec, frames) = probe_video(&edge.http_url(&format!("/live/{CHANNEL}/index.m3u8")), 4)
        .unwrap_or_else(|e| panic!("ffprobe through the edge: {e}"));
    assert!(
        codec == "h264" && frames >= 25,
        "ffprobe through the edge: {codec} {frames}"
    );

    // The origin is killed: what the edge holds is still served; a part it never had
    // is a 502 naming the cause, or the origin's answer once it is back.
    origin.kill9();
    let r = edge.http_request("GET", &part_path, &[], None);
    assert_eq!(r.status, 200, "a cached part outlives the origin");
    let r = edge.http_request("GET", &media, &[], None);
    assert!(
        r.status == 200 || r.status == 502,
        "the media playlist while the origin is down: {} {}",
        r.status,
        r.body
    );
    if r.status == 502 {
        assert!(r.body.contains("origin"), "{}", r.body);
    }
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    origin.restart();
    *relay.upstream.lock().unwrap() = origin.http;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = edge.http_request("GET", "/live/nosuch/index.m3u8", &[], None);
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge reaches the restarted origin: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = edge.http_get("/metrics").unwrap();
    for name in [
        "starling_edge_fills_total",
        "starling_edge_stale_served_total",
        "starling_edge_cache_bytes",
        "starling_http_connections_total",
    ] {
        assert!(metrics.contains(name), "{name} in the edge's /metrics");
    }
    assert!(edge.stop().success());
    origin.stop();
}

#[test]
fn a_private_channel_through_an_edge_needs_a_token_checked_at_the_edge() {
    if !require_ffmpeg() {
        return;
    }
    let origin = Server::start("edge-private-origin", "");
    let relay = CountingRelay::start(origin.http);
    let edge = Server::start_edge("edge-private", &relay.url(), &origin.data_dir(), "");
    let password = "correct horse battery";
    origin.create_admin("owner@example.com", password);
    let cookie = origin.login("owner@example.com", password);
    let ch = origin.api_created(
        &cookie,
        "/api/v1/channels",
        serde_json::json!({ "name": "vip", "visibility": "private" }),
    );
    let ch_id = ch["id"].as_str().unwrap().to_owned();
    let dev = origin.api_created(
        &cookie,
        "/api/v1/devices",
        serde_json::json!({ "name": "studio", "channel_id": ch_id }),
    );
    let key = origin.api_created(
        &cookie,
        &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
        serde_json::json!({}),
    );
    let key = origin.secret(key["secret"].as_str().unwrap());
    let token = |ttl: i64| {
        let t = origin.api_created(
            &cookie,
            &format!("/api/v1/channels/{ch_id}/playback-tokens"),
            serde_json::json!({ "ttl_secs": ttl }),
        );
        edge.secret(&origin.secret(t["token"].as_str().unwrap()))
    };
    // Different lifetimes: two tokens minted in the same millisecond would be the same.
    let (viewer_a, viewer_b) = (token(600), token(700));
    let mut ffmpeg = ffmpeg_test_publish(&origin.rtmp_url(&key), 60)
        .spawn()
        .unwrap();

    let media = "/live/vip/source/index.m3u8";
    let deadline = Instant::now() + Duration::from_secs(30);
    let playlist = loop {
        let r = edge.http_request("GET", &format!("{media}?token={viewer_a}"), &[], None);
        if r.status == 200 && r.body.contains("#EXTINF") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no private playlist through the edge: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(playlist
        .header("cache-control")
        .unwrap()
        .starts_with("private"));
    // Every URI carries this viewer's token, not the edge's own.
    let uris: Vec<&str> = playlist
        .body
        .lines()
        .filter(|l| l.ends_with(".m4s") || l.contains(".m4s?"))
        .collect();
    assert!(!uris.is_empty(), "{}", playlist.body);
    assert!(playlist.body.matches("token=").count() >= uris.len());
    assert!(!playlist.body.contains("edge"), "{}", playlist.body);
    for line in playlist.body.lines().filter(|l| l.contains("token=")) {
        assert!(line.contains(&format!("token={viewer_a}")), "{line}");
    }

    // Refused at the edge: no token (401), a tampered one (403); neither reaches the
    // origin.
    let before = relay.requests.lock().unwrap().len();
    let r = edge.http_request("GET", media, &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    let mut tampered = viewer_a.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = edge.secret(&String::from_utf8(tampered).unwrap());
    let r = edge.http_request("GET", &format!("{media}?token={tampered}"), &[], None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        relay.requests.lock().unwrap().len(),
        before,
        "refusals never reach the origin"
    );

    // A second viewer gets the same object with its own token, and a segment with it.
    let r = edge.http_request("GET", &format!("{media}?token={viewer_b}"), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("token={viewer_b}")) && !r.body.contains(&viewer_a));
    let segment = r
        .body
        .lines()
        .rev()
        .find(|l| !l.starts_with('#') && l.contains(".m4s"))
        .unwrap()
        .to_owned();
    let m = edge.http_request("GET", &format!("/live/vip/source/{segment}"), &[], None);
    assert_eq!(m.status, 200, "{segment}: {}", m.body);

    // A second tier: an edge whose origin is the first edge (origin → mid-tier → edge).
    // It checks the token too, fills from the mid-tier with its own, and the mid-tier
    // answers it from its cache: the origin is not asked again for what it already gave.
    let lower = Server::start_edge(
        "edge-private-lower",
        &format!("http://{}", edge.http),
        &origin.data_dir(),
        "",
    );
    let r = lower.http_request("GET", media, &[], None);
    assert_eq!(r.status, 401, "{}", r.body);
    let segment_path = format!("/live/vip/source/{}", segment.split('?').next().unwrap());
    let asked_before = relay.count_path(&segment_path);
    assert_eq!(asked_before, 1, "the first edge filled the segment once");
    let m = lower.http_request(
        "GET",
        &format!("/live/vip/source/{}", segment.replace(&viewer_b, &viewer_a)),
        &[],
        None,
    );
    assert_eq!(m.status, 200, "{segment} through two tiers: {}", m.body);
    assert_eq!(m.header("starling-edge-cache"), Some("miss"));
    let r = lower.http_request("GET", &format!("{media}?token={viewer_a}"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&format!("token={viewer_a}")), "{}", r.body);
    assert!(r.header("cache-control").unwrap().starts_with("private"));
    assert_eq!(
        relay.count_path(&segment_path),
        1,
        "the mid-tier answered the lower edge from its cache"
    );
    drop(lower);
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    // Tokens and keys never reach either log (checked when the servers stop).
    drop(edge);
    drop(origin);
}

/// nginx (Debian's package) as the stand-in for a CDN: `proxy_cache` in front of `upstream`
/// with the configuration docs/cluster.md gives. One process (`master_process off`), so
/// that dropping it stops everything.
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Nginx {
        let dir = temp_dir("nginx-cdn");
        // Workers of a root master run as `nobody`: the cache and temp paths are theirs too.
        std::fs::create_dir_all(dir.join("cache")).unwrap();
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = include_str!("../../../../docs/nginx-cdn.conf")
            .replace("ORIGIN", &upstream.to_string())
            .replace("LISTEN", &format!("127.0.0.1:{port}"))
            .replace("CACHE_DIR", &dir.join("cache").display().to_string());
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {0}/nginx.pid;\nerror_log {0}/error.log;\nevents {{ worker_connections 8192; }}\n{conf}",
            dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, addr, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

#[test]
fn ll_hls_plays_through_nginx_proxy_cache_with_one_fill_per_object() {
    if !require_ffmpeg() {
        return;
    }
    if !have("nginx") {
        assert!(
            std::env::var_os("STARLING_SKIP_NGINX_TESTS").is_some(),
            "the CDN test needs nginx (scripts/test installs it)"
        );
        return;
    }
    let origin = Server::start("cdn-origin", "");
    let relay = CountingRelay::start(origin.http);
    let cdn = Nginx::start(relay.addr);
    let mut ffmpeg = ffmpeg_test_publish(&origin.rtmp_url(KEY), 60)
        .spawn()
        .unwrap();
    let media = format!("/live/{CHANNEL}/source/index.m3u8");
    let playlist = wait_live_playlist(cdn.addr, &media, "nginx");
    let (msn, part, hint) = ll_hls::next_part(&playlist).expect("a live LL-HLS playlist");
    let blocking = format!("{media}?_HLS_msn={msn}&_HLS_part={part}");
    let part_path = format!("/live/{CHANNEL}/source/{hint}");
    let viewers: Vec<_> = (0..200)
        .map(|_| {
            let (blocking, part_path, addr) = (blocking.clone(), part_path.clone(), cdn.addr);
            std::thread::spawn(move || {
                let p = http_request_at(addr, "GET", &blocking, &[], None);
                let m = http_request_at(addr, "GET", &part_path, &[], None);
                (p, m)
            })
        })
        .collect();
    for v in viewers {
        let (p, m) = v.join().unwrap();
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains(&format!("{msn}.{part}.m4s")), "{}", p.body);
        assert_eq!(m.status, 200, "{}", m.body);
    }
    assert_eq!(
        relay.count(&blocking),
        1,
        "nginx filled the blocking playlist once; the origin saw {:?}",
        relay.requests.lock().unwrap()
    );
    assert_eq!(relay.count(&part_path), 1, "nginx filled the part once");

    // ffprobe plays the channel through nginx.
    let (codec, frames) = probe_video(&format!("http://{}/live/{CHANNEL}/index.m3u8", cdn.addr), 4)
        .unwrap_or_else(|e| panic!("ffprobe through nginx: {e}"));
    assert!(
        codec == "h264" && frames >= 25,
        "ffprobe through nginx: {codec} {frames}"
    );
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}
