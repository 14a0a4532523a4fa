//! Bad input against the real `starling serve`, one test each. Every case must: close
//! only the offending connection, log one line naming the peer and the reason, allocate
//! nothing beyond the caps, and leave a concurrent good publisher (watched by a player)
//! untouched.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use starling_media::h264::AvcConfig;
use starling_rtmp::ClientEvent;
use starling_rtmp_server::client::{ClientError, RtmpClient};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

// SPS/PPS of a 320x240 baseline stream, from
// `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 1 -c:v libx264 -profile:v baseline -f h264 -`.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

const OTHER: &str = "other";
const OTHER_KEY: &str = "other-key-123";

/// Limits small enough to reach quickly in a test.
const LIMITS: &str = "handshake_timeout_secs = 2\nidle_timeout_secs = 2\nmax_message_bytes = 1048576\n\n[[channels]]\nname = \"other\"\nstream_key = \"other-key-123\"\ntakeover = true\n";

fn avc_sequence_header() -> Bytes {
    let avc =
        AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)])
            .unwrap();
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0x00, 0, 0, 0]);
    b.put_slice(&avc.raw);
    b.freeze()
}

/// An AVC video tag body holding one NAL unit (IDR for keyframes) of `len` bytes.
fn avc_frame(key: bool, len: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
    b.put_u32(len as u32);
    b.put_u8(if key { 0x65 } else { 0x41 });
    b.put_bytes(0xAB, len - 1);
    b.freeze()
}

/// A publisher and a player of the test channel that run during the bad input.
struct Good {
    publisher: JoinHandle<Result<(), ClientError>>,
    played: Arc<AtomicU64>,
    _player: JoinHandle<()>,
}

async fn start_good(server: &Server) -> Good {
    let addr = server.rtmp;
    let mut player = RtmpClient::connect(addr, "live").await.unwrap();
    player.play(CHANNEL).await.unwrap();
    let played = Arc::new(AtomicU64::new(0));
    let count = played.clone();
    let player_task = tokio::spawn(async move {
        while let Ok(Some(ev)) = player.next_event().await {
            if matches!(ev, ClientEvent::Video { .. }) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut publisher = RtmpClient::connect(addr, "live").await.unwrap();
    publisher.publish(KEY).await.unwrap();
    let task = tokio::spawn(async move {
        publisher.queue_video(0, avc_sequence_header());
        let mut ts = 0u32;
        for i in 0..100_000u64 {
            publisher.queue_video(ts, avc_frame(i % 25 == 0, 2000));
            publisher.flush().await?;
            publisher.drain_input().await?;
            ts += 40;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    });
    let good = Good {
        publisher: task,
        played,
        _player: player_task,
    };
    good.assert_flowing().await;
    good
}

impl Good {
    /// Frames still reach the player, and the publisher is still connected.
    async fn assert_flowing(&self) {
        let before = self.played.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let after = self.played.load(Ordering::Relaxed);
        assert!(
            after >= before + 10,
            "the good stream stalled: {before} -> {after} frames"
        );
        assert!(
            !self.publisher.is_finished(),
            "the good publisher was disconnected"
        );
    }
}

async fn raw(addr: SocketAddr) -> (TcpStream, String) {
    let s = TcpStream::connect(addr).await.unwrap();
    let me = s.local_addr().unwrap().to_string();
    (s, me)
}

/// C0+C1, read S0+S1+S2, C2: what every client does before the chunk stream starts.
async fn handshake(s: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0u8, 8));
    c0c1.extend((0..1528u32).map(|i| (i * 7) as u8));
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    s.read_exact(&mut s0s1s2).await.unwrap();
    assert_eq!(s0s1s2[0], 3);
    s.write_all(&s0s1s2[1..1537]).await.unwrap();
}

/// One RTMP message on chunk stream `csid` (type-0 header, then type-3 continuations).
fn chunked(csid: u8, msg_type: u8, stream_id: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = vec![csid & 0x3f];
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(msg_type);
    out.extend_from_slice(&stream_id.to_le_bytes());
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xC0 | (csid & 0x3f));
        }
        out.extend_from_slice(piece);
    }
    out
}

fn amf_string(s: &str) -> Vec<u8> {
    let mut v = vec![0x02];
    v.extend_from_slice(&(s.len() as u16).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

fn amf_number(n: f64) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// The server closes the connection within `within` (EOF or reset).
async fn assert_closed(s: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let res = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "the server kept the connection open for {within:?}"
    );
}

/// The log has a line that names `peer` and says `reason`.
fn assert_logged(server: &Server, peer: &str, reason: &str) {
    let log = server.wait_log(reason, Duration::from_secs(10));
    let line = log.lines().find(|l| l.contains(reason) && l.contains(peer));
    assert!(
        line.is_some(),
        "no log line names peer {peer} with {reason:?}:\n{log}"
    );
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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn random_bytes_instead_of_a_handshake() {
    let server = Server::start("bad-random", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        let mut x = 0x2545F4914F6CDD1Du64;
        let junk: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut junk = junk;
        junk[0] = 0x47; // not RTMP version 3
        let _ = s.write_all(&junk).await;
        assert_closed(&mut s, Duration::from_secs(5)).await;
        assert_logged(&server, &me, "RTMP protocol error");
        good.assert_flowing().await;
    });
}

#[test]
fn chunk_size_of_one_still_works() {
    let server = Server::start("bad-chunk1", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let mut player = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        player.play(OTHER).await.unwrap();
        let mut p = RtmpClient::connect_with(server.rtmp, "live", |c| c.out_chunk_size = 1)
            .await
            .unwrap();
        p.publish(OTHER_KEY).await.unwrap();
        p.queue_video(0, avc_sequence_header());
        p.queue_video(0, avc_frame(true, 300));
        p.queue_video(40, avc_frame(false, 300));
        p.flush().await.unwrap();
        let mut frames = 0;
        while frames < 2 {
            match tokio::time::timeout(Duration::from_secs(10), player.next_event()).await {
                Ok(Ok(Some(ClientEvent::Video { data, .. }))) => {
                    // Sequence header first, then the frames, intact.
                    if data.get(1) == Some(&1) {
                        assert_eq!(data.len(), 5 + 4 + 300);
                        frames += 1;
                    }
                }
                Ok(Ok(Some(_))) => {}
                other => panic!("player: {other:?}"),
            }
        }
        good.assert_flowing().await;
    });
}

#[test]
fn chunk_size_of_2_pow_31_minus_1_is_refused() {
    let server = Server::start("bad-chunkmax", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        handshake(&mut s).await;
        s.write_all(&chunked(2, 1, 0, &0x7FFF_FFFFu32.to_be_bytes(), 128))
            .await
            .unwrap();
        assert_closed(&mut s, Duration::from_secs(5)).await;
        assert_logged(&server, &me, "2147483647");
        good.assert_flowing().await;
    });
}

#[test]
fn message_length_beyond_the_cap_is_refused_before_allocating() {
    let server = Server::start("bad-msglen", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let before = peak_rss_kib(&server);
        for _ in 0..20 {
            let (mut s, me) = raw(server.rtmp).await;
            handshake(&mut s).await;
            // Largest length RTMP can state (16 MiB - 1) against a 1 MiB cap; a few bytes follow.
            let mut header = vec![0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
            header.extend_from_slice(&[0x17; 100]);
            s.write_all(&header).await.unwrap();
            assert_closed(&mut s, Duration::from_secs(5)).await;
            assert_logged(&server, &me, "16777215");
        }
        let after = peak_rss_kib(&server);
        assert!(
            after < before + 32 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
        good.assert_flowing().await;
    });
}

#[test]
fn unknown_chunk_stream_id_is_refused() {
    let server = Server::start("bad-csid", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        handshake(&mut s).await;
        // A type-1 header (relies on previous state) on chunk stream 5, never opened.
        s.write_all(&[0x45, 0, 0, 0, 0, 0, 10, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            .await
            .unwrap();
        assert_closed(&mut s, Duration::from_secs(5)).await;
        assert_logged(&server, &me, "unknown chunk stream");
        good.assert_flowing().await;
    });
}

#[test]
fn amf_with_deep_nesting_is_refused() {
    let server = Server::start("bad-amfdeep", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        handshake(&mut s).await;
        let mut cmd = amf_string("connect");
        cmd.extend(amf_number(1.0));
        for _ in 0..5000 {
            cmd.extend_from_slice(&[0x03, 0x00, 0x01, b'a']); // object { a: object { a: ...
        }
        s.write_all(&chunked(3, 20, 0, &cmd, 128)).await.unwrap();
        assert_closed(&mut s, Duration::from_secs(5)).await;
        assert_logged(&server, &me, "RTMP protocol error");
        let log = server.log_text();
        assert!(log.contains("nest") || log.contains("depth"), "{log}");
        good.assert_flowing().await;
    });
}

#[test]
fn amf_string_claiming_one_gib_is_refused_without_allocating_it() {
    let server = Server::start("bad-amfgib", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let before = peak_rss_kib(&server);
        let (mut s, me) = raw(server.rtmp).await;
        handshake(&mut s).await;
        let mut cmd = amf_string("connect");
        cmd.extend(amf_number(1.0));
        cmd.push(0x0C); // long string
        cmd.extend_from_slice(&0x4000_0000u32.to_be_bytes());
        cmd.extend_from_slice(b"only a few bytes follow");
        s.write_all(&chunked(3, 20, 0, &cmd, 128)).await.unwrap();
        assert_closed(&mut s, Duration::from_secs(5)).await;
        assert_logged(&server, &me, "RTMP protocol error");
        let after = peak_rss_kib(&server);
        assert!(
            after < before + 32 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
        good.assert_flowing().await;
    });
}

#[test]
fn publish_with_no_key_or_a_path_for_a_key_is_refused() {
    let server = Server::start("bad-keys", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        for key in [
            "",
            "../../etc/passwd",
            "..%2f..%2fx",
            "key\u{1}with-control",
        ] {
            let mut c = RtmpClient::connect(server.rtmp, "live").await.unwrap();
            match c.publish(key).await {
                Err(ClientError::Refused { code, .. }) => {
                    assert!(code.starts_with("NetStream.Publish."), "{key:?}: {code}")
                }
                other => panic!("publish with key {key:?}: {other:?}"),
            }
        }
        let log = server.log_text();
        assert!(log.contains("no stream key was given"), "{log}");
        assert!(log.contains("malformed stream key"), "{log}");
        assert!(
            !log.contains("etc/passwd"),
            "a refused key reached the log:\n{log}"
        );
        good.assert_flowing().await;
    });
}

#[test]
fn a_second_publisher_is_refused_and_takeover_replaces_the_first() {
    let server = Server::start("bad-second", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let mut second = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        match second.publish(KEY).await {
            Err(ClientError::Refused { code, description }) => {
                assert!(code.starts_with("NetStream.Publish."), "{code}");
                assert!(description.contains("already"), "{description}");
            }
            other => panic!("second publisher: {other:?}"),
        }
        assert_logged(&server, "channel=e2e", "already has a live publisher");
        good.assert_flowing().await;

        // Channel `other` allows takeover: the newcomer wins, the first is let go.
        let mut first = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        first.publish(OTHER_KEY).await.unwrap();
        let mut newcomer = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        newcomer.publish(OTHER_KEY).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match first.next_event().await {
                    Ok(None) | Err(_) => return,
                    Ok(Some(_)) => continue,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the replaced publisher was not disconnected");
        good.assert_flowing().await;
    });
}

#[test]
fn a_client_that_stops_mid_message_is_timed_out() {
    let server = Server::start("bad-slowloris", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        handshake(&mut s).await;
        let mut connect = amf_string("connect");
        connect.extend(amf_number(1.0));
        connect.extend_from_slice(&[0x03, 0x00, 0x03, b'a', b'p', b'p']);
        connect.extend(amf_string("live"));
        connect.extend_from_slice(&[0x00, 0x00, 0x09]);
        s.write_all(&chunked(3, 20, 0, &connect, 128))
            .await
            .unwrap();
        server.wait_log("RTMP connect", Duration::from_secs(5));
        // Announce a 1000-byte message, send 10 bytes of it, then nothing.
        let mut partial = vec![0x04, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0];
        partial.extend_from_slice(&[0u8; 10]);
        s.write_all(&partial).await.unwrap();
        assert_closed(&mut s, Duration::from_secs(8)).await;
        assert_logged(&server, &me, "sent nothing");
        good.assert_flowing().await;
    });
}

#[test]
fn a_handshake_that_never_finishes_is_timed_out() {
    let server = Server::start("bad-handshake", LIMITS);
    rt().block_on(async {
        let good = start_good(&server).await;
        let (mut s, me) = raw(server.rtmp).await;
        s.write_all(&[3u8; 100]).await.unwrap(); // C0 and a sliver of C1
        assert_closed(&mut s, Duration::from_secs(8)).await;
        assert_logged(&server, &me, "handshake not finished");
        good.assert_flowing().await;
    });
}
