//! WHIP and WHEP over real sockets on loopback, with str0m as the client (a full ICE
//! agent, where the server is ICE-lite): a WHEP viewer of a hub channel receives its
//! H.264 from a keyframe on, with the source's picture size; a WHIP publisher's H.264
//! reaches the hub as a stream with the same size; refusals name their cause; sessions
//! that never connect, and a flood of garbage on the UDP port, leave nothing behind.

#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::Router;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::{Hub, HubEvent};
use starling_ingest_auth::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};
use starling_media::MediaEvent;
use starling_webrtc::str0m::{self, media::Direction, Event};
use starling_webrtc::Outgoing;
use starling_webrtc_server::client::{self, Client};
use starling_webrtc_server::{router, WebRtcConfig, WebRtcServer};
use tokio::net::{TcpListener, UdpSocket};

/// One request: status, headers (lower-case names), body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let a = client::http(addr, method, path, headers, body)
        .await
        .unwrap();
    (a.status, a.headers, a.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const KEY: &str = "whip-key";

/// `KEY` publishes to "cam"; nothing else does.
struct TestAuth;

impl Authorizer for TestAuth {
    fn authorize_publish<'a>(
        &'a self,
        _app: &'a str,
        key: &'a str,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        let ok = key == KEY;
        Box::pin(async move {
            if !ok {
                return Err(AuthError::UnknownKey);
            }
            Ok(PublishGrant {
                channel: "cam".into(),
                takeover: false,
                key_id: None,
                srt_passphrase: None,
            })
        })
    }

    fn authorize_play<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Option<&'a str>,
        _: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>> {
        Box::pin(async { Err(AuthError::UnknownKey) })
    }
}

struct Node {
    hub: Arc<Hub>,
    rtc: Arc<WebRtcServer>,
    http: SocketAddr,
}

async fn node(connect_timeout: Duration) -> Node {
    node_bound(connect_timeout, "127.0.0.1:0").await
}

async fn node_bound(connect_timeout: Duration, bind: &str) -> Node {
    node_with(WebRtcConfig {
        udp_bind: bind.parse().unwrap(),
        connect_timeout,
        ..WebRtcConfig::default()
    })
    .await
}

/// A node with `config`, on a loopback port unless `config` names its own.
async fn node_with(config: WebRtcConfig) -> Node {
    let hub = Arc::new(Hub::default());
    let config = WebRtcConfig {
        udp_bind: if config.udp_bind == WebRtcConfig::default().udp_bind {
            "127.0.0.1:0".parse().unwrap()
        } else {
            config.udp_bind
        },
        ..config
    };
    let rtc = WebRtcServer::start(config, hub.clone(), Arc::new(TestAuth), None)
        .await
        .unwrap();
    let app: Router = router(rtc.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Node { hub, rtc, http }
}

/// Publishes the demo source on `channel` for `seconds`.
fn publish_demo(hub: &Arc<Hub>, channel: &str, seconds: u64) -> tokio::task::JoinHandle<()> {
    let publisher = hub.publish(channel, false).unwrap();
    tokio::spawn(async move {
        let config = DemoConfig {
            width: 320,
            height: 180,
            fps: 30,
            gop_frames: 30,
        };
        let mut src = DemoSource::new(config).unwrap();
        publisher.send(MediaEvent::Stream(src.stream()));
        let start = tokio::time::Instant::now();
        for n in 0..seconds * 30 {
            tokio::time::sleep_until(start + Duration::from_millis(n * 1000 / 30)).await;
            for f in src.next(SystemTime::now()) {
                publisher.send(MediaEvent::Frame(f));
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_gets_the_channels_h264_from_a_keyframe() {
    whep_viewer(node(Duration::from_secs(10)).await).await;
}

/// Bound to 0.0.0.0 (the default), the socket does not say which address a datagram
/// came to: the sessions must still see it arrive at one of their candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_to_every_address_serves_loopback_clients() {
    let node = node_bound(Duration::from_secs(10), "0.0.0.0:0").await;
    assert!(node.rtc.candidates().iter().any(|c| c.ip().is_loopback()));
    whep_viewer(node).await;
}

async fn whep_viewer(node: Node) {
    let _src = publish_demo(&node.hub, "demo", 20);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut client = Client::new().await.unwrap();
    let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
    let (status, headers, answer) = http(
        node.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let location = header(&headers, "location").unwrap().to_owned();
    assert!(location.starts_with("/whep/demo/"), "{location}");
    assert_eq!(header(&headers, "content-type"), Some("application/sdp"));
    client.answer(&answer).unwrap();

    let mut frames = Vec::new();
    client
        .run(Duration::from_secs(10), |_, e| {
            if let Some(Event::MediaData(d)) = e {
                if d.params.spec().codec == str0m::format::Codec::H264 {
                    frames.push(d.data.to_vec());
                }
            }
            frames.len() >= 45
        })
        .await
        .unwrap();
    assert!(frames.len() >= 45, "{} video frames in 10 s", frames.len());
    // The first frame is a keyframe with the source's parameter sets.
    assert_eq!(client::keyframe_size(&frames[0]).unwrap(), (320, 180));
    assert_eq!(node.rtc.session_counts(), (0, 1));

    // DELETE ends it; the session and its route are gone.
    let (status, _, _) = http(node.http, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.rtc.session_counts() != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.rtc.session_counts(), (0, 0));
    assert_eq!(node.rtc.routed_addresses(), 0);
    let (status, _, _) = http(node.http, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_reaches_the_hub() {
    let node = node(Duration::from_secs(10)).await;
    let mut sub = node.hub.subscribe("cam");

    let mut client = Client::new().await.unwrap();
    let (offer, mid, _) = client.offer(Direction::SendOnly).unwrap();
    // Refusals first: no key, a wrong key, another channel's key.
    let sdp = [("Content-Type", "application/sdp")];
    let (status, headers, body) =
        http(node.http, "POST", "/whip/cam", &sdp, offer.as_bytes()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    let wrong = [
        ("Content-Type", "application/sdp"),
        ("Authorization", "Bearer nope"),
    ];
    let (status, _, body) = http(node.http, "POST", "/whip/cam", &wrong, offer.as_bytes()).await;
    assert_eq!(status, 403, "{body}");
    let auth = format!("Bearer {KEY}");
    let ok = [
        ("Content-Type", "application/sdp"),
        ("Authorization", auth.as_str()),
    ];
    let (status, _, body) = http(node.http, "POST", "/whip/other", &ok, offer.as_bytes()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another channel"), "{body}");
    let (status, _, body) = http(node.http, "POST", "/whip/cam", &ok, b"v=0 garbage").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed SDP"), "{body}");
    let (status, _, body) = http(
        node.http,
        "POST",
        "/whip/cam",
        &[("Authorization", auth.as_str())],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 415, "{body}");

    let (status, headers, answer) =
        http(node.http, "POST", "/whip/cam", &ok, offer.as_bytes()).await;
    assert_eq!(status, 201, "{answer}");
    assert!(header(&headers, "location")
        .unwrap()
        .starts_with("/whip/cam/"));
    // Congestion control and loss recovery are negotiated: TWCC feedback (the
    // publisher's bandwidth estimate), NACK and RTX retransmissions, PLI.
    for feature in [
        "transport-cc",
        "nack",
        "rtx/90000",
        "nack pli",
        "transport-wide-cc",
    ] {
        assert!(
            answer.contains(feature),
            "the answer lacks {feature}:\n{answer}"
        );
    }
    client.answer(&answer).unwrap();

    // Send 3 s of video, paced, once connected.
    send_video(&mut client, mid, 90).await;

    // The hub has the stream, H.264 at the source's size, and its frames.
    let mut video_frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut size = None;
    while video_frames < 30 {
        let ev = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .unwrap()
            .unwrap();
        match ev {
            HubEvent::Stream(s) => {
                size = s.video().and_then(|t| t.config.dimensions());
            }
            HubEvent::Frame(f) if f.track == starling_media::TrackId(1) => video_frames += 1,
            _ => {}
        }
    }
    assert_eq!(size, Some((320, 180)));
    assert_eq!(node.rtc.session_counts(), (1, 0));
    assert!(node.hub.is_live("cam"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_never_connect_and_udp_garbage_leave_nothing_behind() {
    let node = node(Duration::from_secs(1)).await;
    let _src = publish_demo(&node.hub, "demo", 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Offers whose client never does ICE.
    for _ in 0..20 {
        let mut client = Client::new().await.unwrap();
        let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
        let (status, _, body) = http(
            node.http,
            "POST",
            "/whep/demo",
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(node.rtc.session_counts(), (0, 20));
    // Garbage at the UDP port: STUN-looking, DTLS-looking, RTP-looking, random.
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = node.rtc.udp_addr();
    for i in 0..5_000u32 {
        let mut d = vec![[0x00u8, 0x16, 0x80, 0xff][i as usize % 4]; 100];
        d[1..5].copy_from_slice(&i.to_be_bytes());
        flood.send_to(&d, target).await.unwrap();
        if i % 200 == 199 {
            // Paced, so that the kernel's receive buffer, not the server, is never what
            // drops them.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Not live: a viewer is told so; an offer with nothing usable is refused.
    let mut c = Client::new().await.unwrap();
    let (offer, _, _) = c.offer(Direction::RecvOnly).unwrap();
    let (status, _, body) = http(
        node.http,
        "POST",
        "/whep/nobody",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.rtc.session_counts() != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        node.rtc.session_counts(),
        (0, 0),
        "sessions closed after the connect timeout"
    );
    assert_eq!(node.rtc.routed_addresses(), 0);
    let m = &node.rtc.metrics;
    assert_eq!(
        m.connect_timeouts_total
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
    assert!(
        m.unrouted_datagrams_total
            .load(std::sync::atomic::Ordering::Relaxed)
            > 4_000
    );
}

/// Connects `client` (offer already answered) and sends `frames` frames of the demo
/// picture at 30 fps on `mid`.
async fn send_video(client: &mut Client, mid: str0m::media::Mid, frames: u64) {
    let mut src = DemoSource::new(DemoConfig {
        width: 320,
        height: 180,
        fps: 30,
        gop_frames: 30,
    })
    .unwrap();
    let stream = src.stream();
    // A client already connected starts sending at once.
    let mut start = client.rtc.is_connected().then(Instant::now);
    let mut sent = 0u64;
    client
        .run(Duration::from_secs(15), |rtc, e| {
            if matches!(e, Some(Event::Connected)) {
                start = Some(Instant::now());
            }
            let Some(t0) = start else { return false };
            let due = (t0.elapsed().as_millis() as u64) * 30 / 1000;
            while sent < due.min(frames) {
                for f in src.next(SystemTime::now()) {
                    let Some(out) = Outgoing::prepare(&stream, &f) else {
                        continue;
                    };
                    if out.kind != starling_media::TrackKind::Video {
                        continue;
                    }
                    client::write_frame(rtc, mid, &out).unwrap();
                }
                sent += 1;
            }
            sent >= frames
        })
        .await
        .unwrap();
    assert_eq!(sent, frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_went_quiet_is_replaced_and_a_live_one_is_not() {
    let node = node(Duration::from_secs(10)).await;
    let auth = format!("Bearer {KEY}");
    let ok = [
        ("Content-Type", "application/sdp"),
        ("Authorization", auth.as_str()),
    ];
    let offer_whip = |client: &mut Client| client.offer(Direction::SendOnly).unwrap();

    // A publishes.
    let mut a = Client::new().await.unwrap();
    let (offer, mid, _) = offer_whip(&mut a);
    let (status, _, answer) = http(node.http, "POST", "/whip/cam", &ok, offer.as_bytes()).await;
    assert_eq!(status, 201, "{answer}");
    a.answer(&answer).unwrap();
    send_video(&mut a, mid, 30).await;
    assert!(node.hub.is_live("cam"));

    // While A sends, B is refused: the channel is live.
    let mut b = Client::new().await.unwrap();
    let (offer, _, _) = offer_whip(&mut b);
    let sending = tokio::spawn(async move {
        send_video(&mut a, mid, 30).await;
        a
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = http(node.http, "POST", "/whip/cam", &ok, offer.as_bytes()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("live from another publisher"), "{body}");

    // A goes quiet without a DELETE (a crashed browser): after 1.5 s of silence, C's
    // offer replaces it at once.
    let a = sending.await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let mut c = Client::new().await.unwrap();
    let (offer, mid, _) = offer_whip(&mut c);
    let (status, _, answer) = http(node.http, "POST", "/whip/cam", &ok, offer.as_bytes()).await;
    assert_eq!(status, 201, "{answer}");
    c.answer(&answer).unwrap();
    send_video(&mut c, mid, 15).await;
    assert!(node.hub.is_live("cam"));
    assert_eq!(node.rtc.session_counts(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_keys_and_offers_without_usable_codecs_are_refused_and_leave_nothing() {
    let node = node(Duration::from_secs(10)).await;
    let mut client = Client::new().await.unwrap();
    let (offer, _, _) = client.offer(Direction::SendOnly).unwrap();
    let wrong = [
        ("Content-Type", "application/sdp"),
        ("Authorization", "Bearer wrong-key"),
    ];
    for _ in 0..1_000 {
        let (status, _, _) = http(node.http, "POST", "/whip/cam", &wrong, offer.as_bytes()).await;
        assert_eq!(status, 403);
    }
    assert_eq!(node.rtc.session_counts(), (0, 0));
    assert_eq!(
        node.rtc
            .metrics
            .refused_total
            .load(std::sync::atomic::Ordering::Relaxed),
        1_000
    );

    // An offer of VP8 and no audio: nothing the server takes.
    let mut rtc = str0m::Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_vp8(true)
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        None,
    );
    let vp8 = api.apply().unwrap().0.to_sdp_string();
    let auth = format!("Bearer {KEY}");
    let ok = [
        ("Content-Type", "application/sdp"),
        ("Authorization", auth.as_str()),
    ];
    let (status, _, body) = http(node.http, "POST", "/whip/cam", &ok, vp8.as_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("H.264"), "{body}");
    // An oversized offer.
    let big = vec![b'a'; 70 * 1024];
    let (status, _, _) = http(node.http, "POST", "/whip/cam", &ok, &big).await;
    assert_eq!(status, 413);
    assert_eq!(node.rtc.session_counts(), (0, 0));
    assert!(!node.hub.is_live("cam"));
}

/// Whether an ffmpeg with libopus is on PATH (else the AAC → Opus test is skipped).
fn ffmpeg_has_libopus() -> bool {
    std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some("libopus"))
        })
}

/// What a WHEP viewer received: (media time in seconds, arrival) per packet, by kind.
#[derive(Default)]
struct Received {
    audio: Vec<(f64, Instant)>,
    video: Vec<(f64, Instant)>,
}

impl Received {
    fn on(&mut self, e: Option<Event>) {
        let Some(Event::MediaData(d)) = e else {
            return;
        };
        let secs = d.time.numer() as f64 / d.time.denom() as f64;
        match d.params.spec().codec {
            str0m::format::Codec::Opus => self.audio.push((secs, d.network_time)),
            str0m::format::Codec::H264 => self.video.push((secs, d.network_time)),
            _ => {}
        }
    }

    /// Median of (media time − arrival) over the packets that arrived after `from`.
    fn offset(packets: &[(f64, Instant)], base: Instant, from: Instant) -> f64 {
        let mut v: Vec<f64> = packets
            .iter()
            .filter(|(_, at)| *at >= from)
            .map(|(t, at)| t - at.duration_since(base).as_secs_f64())
            .collect();
        assert!(!v.is_empty());
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewers_of_an_aac_channel_share_one_opus_child() {
    if !ffmpeg_has_libopus() {
        eprintln!("skipped: no ffmpeg with libopus on PATH");
        return;
    }
    let node = node(Duration::from_secs(10)).await;
    // The demo source: H.264 and AAC (48 kHz), on one media timeline.
    let _src = publish_demo(&node.hub, "demo", 30);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut viewers = Vec::new();
    for _ in 0..2 {
        let mut client = Client::new().await.unwrap();
        let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
        let (status, _, answer) = http(
            node.http,
            "POST",
            "/whep/demo",
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        client.answer(&answer).unwrap();
        viewers.push(client);
    }
    let (mut a, mut b) = (viewers.remove(0), viewers.remove(0));
    let (mut ra, mut rb) = (Received::default(), Received::default());
    let base = Instant::now();
    let listen = Duration::from_secs(5);
    let m = node.rtc.opus_metrics();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    // The transcode's delay once running: counted from 2 s in (past the child's start).
    let mut from = None;
    let (x, y) = tokio::join!(
        a.run(listen, |_, e| {
            ra.on(e);
            if from.is_none() && base.elapsed() >= Duration::from_secs(2) {
                from = Some((load(&m.delay_us_sum), load(&m.packets_total)));
            }
            false
        }),
        b.run(listen, |_, e| {
            rb.on(e);
            false
        }),
    );
    x.unwrap();
    y.unwrap();

    assert_eq!(load(&m.children_total), 1, "one child for two viewers");
    assert_eq!(load(&m.children), 1);
    assert_eq!(load(&m.failures_total), 0);
    let packets = load(&m.packets_total);
    let (sum0, n0) = from.unwrap();
    let steady_ms = (load(&m.delay_us_sum) - sum0) as f64 / 1e3 / (packets - n0).max(1) as f64;
    let all_ms = load(&m.delay_us_sum) as f64 / 1e3 / packets.max(1) as f64;
    eprintln!(
        "opus: {packets} packets, added delay {steady_ms:.1} ms on average once running \
         ({all_ms:.1} ms counting the start), {} dropped AAC frames",
        load(&m.dropped_frames_total)
    );

    for (name, r) in [("first", &ra), ("second", &rb)] {
        assert!(
            r.video.len() >= 100,
            "{name}: {} video frames",
            r.video.len()
        );
        // About 50 packets a second once flowing (20 ms each; the cached GOP's audio
        // comes in a burst at the start).
        let steady = base + Duration::from_secs(2);
        let last = r.audio[r.audio.len() - 1].1;
        let secs = last.saturating_duration_since(steady).as_secs_f64();
        let n = r.audio.iter().filter(|(_, at)| *at >= steady).count();
        let rate = n as f64 / secs;
        assert!(
            secs > 2.0 && (45.0..=55.0).contains(&rate),
            "{name}: {n} Opus packets in the last {secs:.2} s ({rate:.1}/s)"
        );
        // Audio starts where video starts on the media timeline (the cached GOP's
        // keyframe), and, once flowing, arrives in step with video of the same media time.
        let start = r.audio[0].0 - r.video[0].0;
        let skew =
            Received::offset(&r.audio, base, steady) - Received::offset(&r.video, base, steady);
        eprintln!("{name}: first audio − first video = {:.1} ms of media time; audio arrives {:.1} ms after video of the same time", start * 1e3, -skew * 1e3);
        assert!(
            start.abs() < 0.2,
            "{name}: first audio {start:.3} s from first video"
        );
        assert!(skew.abs() < 0.2, "{name}: audio {skew:.3} s off video");
    }
}

/// Watches "demo" over WHEP for `secs`; returns (video frames, Opus packets).
async fn watch(node: &Node, secs: u64) -> (usize, usize) {
    let mut client = Client::new().await.unwrap();
    let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
    let (status, _, answer) = http(
        node.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    client.answer(&answer).unwrap();
    let mut r = Received::default();
    client
        .run(Duration::from_secs(secs), |_, e| {
            r.on(e);
            false
        })
        .await
        .unwrap();
    (r.video.len(), r.audio.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_working_ffmpeg_an_aac_channel_plays_without_sound() {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    // No ffmpeg at all: video only, nothing started, nothing counted as a failure.
    let node = node_with(WebRtcConfig {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..WebRtcConfig::default()
    })
    .await;
    let _src = publish_demo(&node.hub, "demo", 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (video, audio) = watch(&node, 3).await;
    assert!(video >= 45, "{video} video frames");
    assert_eq!(audio, 0);
    let m = node.rtc.opus_metrics();
    assert_eq!((load(&m.children_total), load(&m.failures_total)), (0, 0));

    // An "ffmpeg" that has libopus but dies at once: each death counted and started
    // again after 1 s, then 2 s; the video goes on.
    let dir = std::env::temp_dir().join(format!("starling-fake-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("ffmpeg");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$*\" in *-encoders*) echo ' A..... libopus  libopus Opus'; exit 0;; esac\n\
         echo 'fake ffmpeg: cannot encode' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = node_with(WebRtcConfig {
        ffmpeg: fake,
        ..WebRtcConfig::default()
    })
    .await;
    let _src = publish_demo(&node.hub, "demo", 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (video, audio) = watch(&node, 4).await;
    assert!(video >= 60, "{video} video frames");
    assert_eq!(audio, 0);
    let m = node.rtc.opus_metrics();
    let failures = load(&m.failures_total);
    assert!((1..=4).contains(&failures), "{failures} failures in 4 s");
    assert_eq!(load(&m.children_total), failures);
    assert_eq!(load(&m.children), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_ends_every_session_and_refuses_new_offers() {
    let node = node(Duration::from_secs(30)).await;
    let _src = publish_demo(&node.hub, "demo", 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let offer = || async {
        let mut client = Client::new().await.unwrap();
        let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
        http(
            node.http,
            "POST",
            "/whep/demo",
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await
    };
    for _ in 0..3 {
        let (status, _, body) = offer().await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(node.rtc.session_counts(), (0, 3));
    // Sessions still connecting (their connect timeout is 30 s) end at once.
    let t0 = Instant::now();
    node.rtc.shutdown(Duration::from_secs(5)).await;
    assert_eq!(node.rtc.session_counts(), (0, 0));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let (status, _, body) = offer().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("stopping"), "{body}");
}
