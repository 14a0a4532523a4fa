//! Bounded resources against the real `starling serve`: HTTP header-read and idle
//! timeouts (that never cut a response in progress), HTTP connection caps, RTMP role
//! caps, the play-wait timeout, and the per-connection budgets of the RTMP engine.
//! Timeouts are configured short (seconds) and asserted with generous bounds.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use starling_media::h264::AvcConfig;
use starling_rtmp::ClientEvent;
use starling_rtmp_server::client::{ClientError, RtmpClient};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinHandle,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x).
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// How long until the server closes `s` (EOF or reset), reading and discarding; `None`
/// if it is still open after `within`.
async fn closed_after(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

/// One request on a kept-alive connection; the whole response (Content-Length bodies).
async fn keep_alive_get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a content-length");
            if body.len() >= len {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Half a request head, then one more byte every 500 ms: how long until the server
/// hangs up.
async fn slowloris(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(20) {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => panic!("a slowloris client got a response"),
            Err(_) => {
                if s.write_all(b"a").await.is_err() {
                    return start.elapsed();
                }
            }
        }
    }
    start.elapsed()
}

const HTTP_TIMEOUTS: &str = "header_read_timeout_secs = 2\nidle_timeout_secs = 4";

#[test]
fn slowloris_and_idle_connections_are_cut_at_their_timeouts() {
    let server = Server::start_with_server("limits-http-timeouts", HTTP_TIMEOUTS, "");
    rt().block_on(async {
        // 50 slowloris clients at once: each is cut near the 2 s header-read time, even
        // though it sends a byte every 500 ms.
        let tasks: Vec<_> = (0..50)
            .map(|_| tokio::spawn(slowloris(server.http)))
            .collect();
        for t in tasks {
            let took = t.await.unwrap();
            assert!(
                took >= Duration::from_millis(1500) && took <= Duration::from_secs(6),
                "a slowloris client was cut after {took:?} (header-read timeout 2 s)"
            );
        }

        // A kept-alive connection may sit idle longer than the header-read time (3 s >
        // 2 s) and still send its next request.
        let mut s = TcpStream::connect(server.http).await.unwrap();
        let first = keep_alive_get(&mut s, "/healthz").await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = keep_alive_get(&mut s, "/healthz").await;
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        // Then, idle, it is closed near the 4 s idle time.
        let took = closed_after(&mut s, Duration::from_secs(15))
            .await
            .expect("an idle kept-alive connection was never closed");
        assert!(
            took >= Duration::from_millis(3500) && took <= Duration::from_secs(9),
            "an idle connection was closed after {took:?} (idle timeout 4 s)"
        );

        // A fresh connection that sends nothing gets the header-read time.
        let mut s = TcpStream::connect(server.http).await.unwrap();
        let took = closed_after(&mut s, Duration::from_secs(15)).await.unwrap();
        assert!(
            took <= Duration::from_secs(5),
            "silent client kept for {took:?}"
        );

        // And a good client is served all along.
        assert!(server.http_get("/healthz").is_some());
    });
    let header = server.metric("starling_http_timeouts_total{kind=\"header_read\"}");
    assert!(header >= 51.0, "header-read timeouts counted: {header}");
    assert!(server.metric("starling_http_timeouts_total{kind=\"idle\"}") >= 1.0);

    // HTTP/2 without TLS (prior knowledge) is served by the same loop.
    let out = std::process::Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}"])
        .arg(server.http_url("/healthz"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");

    // A graceful shutdown is not held up by a client in the middle of a request head.
    let mut half = std::net::TcpStream::connect(server.http).unwrap();
    std::io::Write::write_all(&mut half, b"GET /healthz HTTP/1.1\r\nHost").unwrap();
    let start = Instant::now();
    let mut server = server;
    assert!(server.stop().success());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        start.elapsed()
    );
}

#[test]
fn responses_in_progress_outlive_both_timeouts() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start_with_server(
        "limits-http-streams",
        HTTP_TIMEOUTS,
        "\n[origin]\nsegment_duration_ms = 4000\n",
    );
    let mut ffmpeg = ffmpeg_test_publish(&server.rtmp_url(KEY), 40)
        .spawn()
        .unwrap();
    rt().block_on(async {
        // Server-Sent Events: open for 7 s (past the 2 s header and 4 s idle times).
        let mut sse = TcpStream::connect(server.http).await.unwrap();
        sse.write_all(
            b"GET /api/v1/live-state HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = [0u8; 12];
        sse.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "the SSE stream was refused");
        let sse_task = tokio::spawn(async move {
            closed_after(&mut sse, Duration::from_secs(7)).await
        });

        // A blocking playlist reload for the segment after the one being cut: answered
        // when it completes, seconds later, not cut by the timeouts.
        let playlist = format!("/live/{CHANNEL}/source/index.m3u8");
        let deadline = Instant::now() + Duration::from_secs(20);
        let next_msn = loop {
            assert!(Instant::now() < deadline, "no playlist with a segment");
            if let Some(text) = server.http_get(&playlist) {
                let seq: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let complete = text.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
                if complete > 0 {
                    break seq + complete + 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut s = TcpStream::connect(server.http).await.unwrap();
        let start = Instant::now();
        let response = keep_alive_get(&mut s, &format!("{playlist}?_HLS_msn={next_msn}")).await;
        let took = start.elapsed();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            took >= Duration::from_millis(2500),
            "the blocking request returned after {took:?}: it did not block past the header-read time"
        );

        let closed = sse_task.await.unwrap();
        assert_eq!(closed, None, "the SSE stream was cut after {closed:?}");
    });
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

#[test]
fn connection_caps_refuse_extra_connections_and_serve_others() {
    let server = Server::start_with_server(
        "limits-http-caps",
        "max_connections = 24\nmax_connections_per_address = 8",
        "",
    );
    rt().block_on(async {
        let addr = server.http;
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(connect_from("127.0.0.1", addr).await);
        }
        // The ninth from the same address is closed at once...
        let mut extra = connect_from("127.0.0.1", addr).await;
        let took = closed_after(&mut extra, Duration::from_secs(3)).await;
        assert!(
            took.is_some(),
            "a ninth connection from one address was kept"
        );
        // ... while another address is served.
        let mut other = connect_from("127.0.0.2", addr).await;
        let r = keep_alive_get(&mut other, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        drop(other);
        tokio::time::sleep(Duration::from_millis(200)).await;

        for from in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..8 {
                held.push(connect_from(from, addr).await);
            }
        }
        // 24 open: the global cap refuses a fourth address too.
        let mut extra = connect_from("127.0.0.4", addr).await;
        let took = closed_after(&mut extra, Duration::from_secs(3)).await;
        assert!(took.is_some(), "a connection past the global cap was kept");

        // Held connections still work: the caps refused, they did not break anything.
        let r = keep_alive_get(&mut held[0], "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    assert!(
        server.metric("starling_http_connections_refused_total{reason=\"per_address_cap\"}") >= 1.0
    );
    assert!(server.metric("starling_http_connections_refused_total{reason=\"global_cap\"}") >= 1.0);
}

/// Status of a failed-login POST from `from` (each with an email of its own, so only
/// the per-address throttle can trip).
async fn login_status(from: &str, addr: SocketAddr, n: usize) -> u16 {
    let body = format!("{{\"email\":\"nobody{n}@example.com\",\"password\":\"wrong guess\"}}");
    let mut s = connect_from(from, addr).await;
    s.write_all(
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out)
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn peer_addresses_still_reach_the_api() {
    // Login throttling counts failures per client address (20 by default): it must see
    // each connection's own address, or one address would lock out everyone.
    let server = Server::start("limits-http-peer", "");
    rt().block_on(async {
        for n in 0..20 {
            assert_eq!(login_status("127.0.0.2", server.http, n).await, 401);
        }
        assert_eq!(login_status("127.0.0.2", server.http, 20).await, 429);
        assert_eq!(login_status("127.0.0.3", server.http, 21).await, 401);
    });
}

// SPS/PPS of a 320x240 baseline stream, from
// `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 1 -c:v libx264 -profile:v baseline -f h264 -`.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn avc_sequence_header() -> Bytes {
    let avc =
        AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)])
            .unwrap();
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0x00, 0, 0, 0]);
    b.put_slice(&avc.raw);
    b.freeze()
}

fn avc_frame(key: bool, len: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
    b.put_u32(len as u32);
    b.put_u8(if key { 0x65 } else { 0x41 });
    b.put_bytes(0xAB, len - 1);
    b.freeze()
}

/// Publishes 25 small frames a second to the test channel until dropped or refused.
fn spawn_publisher(mut publisher: RtmpClient) -> JoinHandle<Result<(), ClientError>> {
    tokio::spawn(async move {
        publisher.queue_video(0, avc_sequence_header());
        for i in 0..100_000u32 {
            publisher.queue_video(i * 40, avc_frame(i % 25 == 0, 2000));
            publisher.flush().await?;
            publisher.drain_input().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    })
}

/// Counts the video frames a player receives.
fn spawn_player(mut player: RtmpClient) -> Arc<AtomicU64> {
    let played = Arc::new(AtomicU64::new(0));
    let count = played.clone();
    tokio::spawn(async move {
        while let Ok(Some(ev)) = player.next_event().await {
            if matches!(ev, ClientEvent::Video { .. }) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    played
}

async fn wait_frames(played: &AtomicU64, at_least: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while played.load(Ordering::Relaxed) < at_least {
        assert!(Instant::now() < deadline, "the player got no frames");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn waiting_players_cannot_lock_a_publisher_out() {
    let server = Server::start(
        "limits-rtmp-players",
        "max_connections = 12\nmax_players = 6\nplay_wait_timeout_secs = 60",
    );
    rt().block_on(async {
        // Six players wait for a channel that is not live: the player cap is full.
        let mut waiting = Vec::new();
        for _ in 0..6 {
            let mut p = RtmpClient::connect(server.rtmp, "live").await.unwrap();
            p.play(CHANNEL).await.unwrap();
            waiting.push(p);
        }
        let mut seventh = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        let refused = seventh.play(CHANNEL).await;
        assert!(refused.is_err(), "a seventh player was accepted");

        // A publisher still gets in and its stream reaches the waiting players.
        let mut publisher = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        publisher.publish(KEY).await.unwrap();
        let publishing = spawn_publisher(publisher);
        let counters: Vec<_> = waiting.into_iter().map(spawn_player).collect();
        for c in &counters {
            wait_frames(c, 10, Duration::from_secs(10)).await;
        }
        assert!(!publishing.is_finished(), "the publisher was disconnected");
    });
    assert!(server.metric("starling_rtmp_plays_refused_total") >= 1.0);
}

#[test]
fn a_waiting_player_is_disconnected_at_the_play_wait_timeout() {
    let server = Server::start("limits-rtmp-wait", "play_wait_timeout_secs = 2");
    rt().block_on(async {
        let mut player = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        player.play(CHANNEL).await.unwrap();
        let start = Instant::now();
        let mut codes = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(15), player.next_event())
                .await
                .expect("the waiting player was never disconnected");
            match ev {
                Ok(Some(ClientEvent::Status { code, .. })) => codes.push(code),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1500) && took <= Duration::from_secs(6),
            "disconnected after {took:?} (play-wait timeout 2 s)"
        );
        assert!(
            codes.iter().any(|c| c == "NetStream.Play.StreamNotFound"),
            "no StreamNotFound status before the close: {codes:?}"
        );
    });
    server.wait_log("nothing to play", Duration::from_secs(5));
    assert!(server.metric("starling_rtmp_play_wait_timeouts_total") >= 1.0);
}

/// C0+C1, read S0+S1+S2, C2.
async fn handshake(s: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 1536));
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    s.read_exact(&mut s0s1s2).await.unwrap();
    s.write_all(&s0s1s2[1..1537]).await.unwrap();
}

/// Peak resident memory of the server, from /proc.
fn peak_rss_kib(server: &Server) -> u64 {
    let pid = server.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn log_names(server: &Server, peer: &str, needle: &str) {
    let log = server.wait_log(needle, Duration::from_secs(10));
    assert!(
        log.lines().any(|l| l.contains(needle) && l.contains(peer)),
        "no log line names {peer} with {needle:?}:\n{log}"
    );
}

#[test]
fn rtmp_budgets_refuse_before_allocating_and_others_are_served() {
    let server = Server::start(
        "limits-rtmp-budgets",
        "max_message_bytes = 1048576\nmax_partial_message_bytes = 2097152\nmax_amf_values = 200",
    );
    rt().block_on(async {
        let mut player = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        player.play(CHANNEL).await.unwrap();
        let played = spawn_player(player);
        let mut publisher = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        publisher.publish(KEY).await.unwrap();
        let publishing = spawn_publisher(publisher);
        wait_frames(&played, 10, Duration::from_secs(10)).await;
        let before = peak_rss_kib(&server);

        // Three messages of 1 000 000 bytes (each within the 1 MiB cap), 900 000 bytes
        // of each sent: 2.7 MB of partial messages against a 2 MiB budget.
        let mut s = TcpStream::connect(server.rtmp).await.unwrap();
        let me = s.local_addr().unwrap().to_string();
        handshake(&mut s).await;
        let mut wire = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        wire.extend_from_slice(&65536u32.to_be_bytes());
        for csid in 4..7u8 {
            wire.extend_from_slice(&[csid, 0, 0, 0, 0x0F, 0x42, 0x40, 9, 1, 0, 0, 0]);
            wire.extend_from_slice(&[0x17; 65536]);
            for _ in 1..13 {
                wire.push(0xC0 | csid);
                wire.extend_from_slice(&[0x17; 65536]);
            }
        }
        // The server may hang up before taking everything.
        let _ = s.write_all(&wire).await;
        assert!(closed_after(&mut s, Duration::from_secs(5)).await.is_some());
        log_names(&server, &me, "partial messages on");
        assert!(server.log_text().contains("2 MiB budget"));

        // A connect command whose object holds 500 tiny properties, against 200 values.
        let mut s = TcpStream::connect(server.rtmp).await.unwrap();
        let me = s.local_addr().unwrap().to_string();
        handshake(&mut s).await;
        let mut cmd = vec![0x02, 0, 7];
        cmd.extend_from_slice(b"connect");
        cmd.push(0x00);
        cmd.extend_from_slice(&1f64.to_be_bytes());
        cmd.push(0x03);
        for _ in 0..500 {
            cmd.extend_from_slice(&[0, 1, b'k', 0x05]);
        }
        cmd.extend_from_slice(&[0, 0, 0x09]);
        let mut wire = vec![0x03, 0, 0, 0];
        wire.extend_from_slice(&(cmd.len() as u32).to_be_bytes()[1..]);
        wire.extend_from_slice(&[20, 0, 0, 0, 0]);
        for (i, piece) in cmd.chunks(128).enumerate() {
            if i > 0 {
                wire.push(0xC3);
            }
            wire.extend_from_slice(piece);
        }
        let _ = s.write_all(&wire).await;
        assert!(closed_after(&mut s, Duration::from_secs(5)).await.is_some());
        log_names(&server, &me, "200 values");

        let after = peak_rss_kib(&server);
        assert!(
            after < before + 16 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
        // The good stream kept flowing all along.
        let now = played.load(Ordering::Relaxed);
        wait_frames(&played, now + 10, Duration::from_secs(5)).await;
        assert!(
            !publishing.is_finished(),
            "the good publisher was disconnected"
        );
    });
}
