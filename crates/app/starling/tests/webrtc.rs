//! WHIP and WHEP through the binary, with str0m as the client (`client` of
//! starling-webrtc-server) and with Chromium (`web/tests/realtime.mjs`): ffmpeg
//! publishes RTMP and a WHEP viewer gets its H.264 from a keyframe on, at ffmpeg's size
//! (and in Chromium its AAC as Opus); a WHIP publisher's H.264 and Opus are packaged for
//! LL-HLS, which ffprobe reads back (H.264 at the sent size, Opus audio); a WHIP offer
//! with the wrong key stores nothing and the channel stays off the air.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use common::*;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_media::TrackKind;
use starling_webrtc::{
    str0m::{
        format::Codec,
        media::{Direction, Mid},
        Event,
    },
    Outgoing,
};
use starling_webrtc_server::client::{http, keyframe_size, write_frame, Client};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The channel's entry in `GET /api/v1/live`.
async fn live_entry(server: &Server) -> serde_json::Value {
    let live = http(server.http, "GET", "/api/v1/live", &[], b"")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CHANNEL)
        .unwrap()
        .clone()
}

#[test]
fn an_rtmp_source_plays_over_whep() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("webrtc-whep", "");
    let mut ffmpeg = ffmpeg_test_publish(&server.rtmp_url(KEY), 30)
        .spawn()
        .unwrap();
    server.wait_log("publish started", Duration::from_secs(20));
    let frames = runtime().block_on(async {
        let mut client = Client::new().await.unwrap();
        let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
        let a = http(
            server.http,
            "POST",
            &format!("/whep/{CHANNEL}"),
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        client.answer(&a.body).unwrap();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        client
            .run(Duration::from_secs(15), |_, e| {
                if let Some(Event::MediaData(d)) = e {
                    if d.params.spec().codec == Codec::H264 {
                        frames.push(d.data.to_vec());
                    }
                }
                frames.len() >= 50
            })
            .await
            .unwrap();
        // The live list counts the WHEP viewer (the session is still open).
        let ch = live_entry(&server).await;
        assert_eq!(ch["viewers"], 1, "{ch}");
        // A channel of the default latency mode (LL-HLS) does not ask players for real
        // time (a `realtime` one does: `a_realtime_channel_plays_over_whep_by_itself`).
        // (The multivariant playlist exists once a segment is complete.)
        let deadline = Instant::now() + Duration::from_secs(15);
        let head = loop {
            let head = http(
                server.http,
                "HEAD",
                &format!("/live/{CHANNEL}/index.m3u8"),
                &[],
                b"",
            )
            .await
            .unwrap();
            if head.status == 200 || Instant::now() > deadline {
                break head;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.header("starling-latency-mode"), None);
        frames
    });
    assert!(
        frames.len() >= 50,
        "{} video frames over WHEP",
        frames.len()
    );
    assert_eq!(keyframe_size(&frames[0]).unwrap(), (320, 240));
    assert!(server.metric("starling_webrtc_sessions_total{role=\"whep\"}") >= 1.0);
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

/// ffprobe reads the channel's LL-HLS as H.264 of `width`x`height` and Opus.
fn assert_packaged_h264_opus(server: &Server, width: u32, height: u32) {
    let url = server.http_url(&format!("/live/{CHANNEL}/index.m3u8"));
    let video = probe_stream(std::path::Path::new(&url), "video");
    assert!(video.contains("codec_name=h264"), "{video}");
    assert!(
        video.contains(&format!("width={width}\n"))
            && video.contains(&format!("height={height}\n")),
        "{video}"
    );
    let audio = probe_stream(std::path::Path::new(&url), "audio");
    assert!(audio.contains("codec_name=opus"), "{audio}");
}

#[test]
fn a_whip_publish_is_packaged_for_ll_hls() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("webrtc-whip", "");
    runtime().block_on(async {
        // A wrong key first: refused, nothing goes live.
        let mut refused = Client::new().await.unwrap();
        let (offer, _, _) = refused.offer(Direction::SendOnly).unwrap();
        let wrong = http(
            server.http,
            "POST",
            &format!("/whip/{CHANNEL}"),
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", "Bearer not-the-key"),
            ],
            offer.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(wrong.status, 403, "{}", wrong.body);
        let (mut client, video, audio, _) = whip_client(server.http).await;

        // 8 s of the demo picture (H.264, 320x180, a keyframe a second) and Opus
        // silence (20 ms packets), paced in real time.
        let never = AtomicBool::new(false);
        let frames_sent = send_demo(&mut client, video, audio, 240, &never).await;
        assert!(frames_sent >= 240, "sent {frames_sent} frames");
        // The live list says how the channel comes in.
        let ch = live_entry(&server).await;
        assert_eq!(ch["ingest"]["protocol"], "webrtc", "{ch}");
        assert_eq!(ch["audio"]["codec"], "opus", "{ch}");
    });

    // The origin packaged it: the LL-HLS playlists exist and ffprobe reads H.264 at the
    // sent size and Opus.
    assert_packaged_h264_opus(&server, 320, 180);
    assert!(server.metric("starling_webrtc_sessions_total{role=\"whip\"}") >= 1.0);
}

/// Sends the demo picture (H.264, 320x180 at 30 fps, a keyframe a second) and Opus
/// silence (20 ms packets) on a WHIP `client` whose answer it has, paced in real time
/// from the connection on, until `frames` video frames are sent, `stop` is set, or 20 s
/// more than the frames need pass. Returns the video frames sent.
async fn send_demo(
    client: &mut Client,
    video: Mid,
    audio: Mid,
    frames: u64,
    stop: &AtomicBool,
) -> u64 {
    let mut src = DemoSource::new(DemoConfig {
        width: 320,
        height: 180,
        fps: 30,
        gop_frames: 30,
    })
    .unwrap();
    let stream = src.stream();
    let mut start = None;
    let (mut frames_sent, mut audio_sent) = (0u64, 0u64);
    let limit = Duration::from_secs(20 + frames / 30);
    // Errors (the server gone) end the run like `stop`: the caller counts the frames.
    let _ = client
        .run(limit, |rtc, e| {
            if matches!(e, Some(Event::Connected)) {
                start = Some(Instant::now());
            }
            let Some(t0) = start else {
                return stop.load(Ordering::Relaxed);
            };
            let elapsed_ms = t0.elapsed().as_millis() as u64;
            while frames_sent < (elapsed_ms * 30 / 1000).min(frames) {
                for f in src.next(SystemTime::now()) {
                    let Some(out) = Outgoing::prepare(&stream, &f) else {
                        continue;
                    };
                    if out.kind != TrackKind::Video {
                        continue;
                    }
                    write_frame(rtc, video, &out).unwrap();
                }
                frames_sent += 1;
            }
            while audio_sent < elapsed_ms / 20 {
                // An Opus frame of 20 ms of silence (CELT, fullband).
                let silence = Outgoing {
                    kind: TrackKind::Audio,
                    keyframe: true,
                    rtp_time: (audio_sent * 960) as i64,
                    payload: std::sync::Arc::from(&[0xF8u8, 0xFF, 0xFE][..]),
                };
                write_frame(rtc, audio, &silence).unwrap();
                audio_sent += 1;
            }
            frames_sent >= frames || stop.load(Ordering::Relaxed)
        })
        .await;
    frames_sent
}

/// A WHIP client that offered and got the server's 201 answer (the test key), and the
/// session's location.
async fn whip_client(server: SocketAddr) -> (Client, Mid, Mid, String) {
    let mut client = Client::new().await.unwrap();
    let (offer, video, audio) = client.offer(Direction::SendOnly).unwrap();
    let auth = format!("Bearer {KEY}");
    let a = http(
        server,
        "POST",
        &format!("/whip/{CHANNEL}"),
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &auth),
        ],
        offer.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    client.answer(&a.body).unwrap();
    let location = a.header("location").unwrap().to_owned();
    (client, video, audio, location)
}

/// A WHEP viewer for `limit`: the H.264 frames it received.
async fn whep_frames(server: SocketAddr, limit: Duration) -> usize {
    let mut client = Client::new().await.unwrap();
    let (offer, _, _) = client.offer(Direction::RecvOnly).unwrap();
    // A WHIP session counts as connected before its first frame makes the channel live:
    // "not live" is retried for a while (the offer was refused, so it is still unused).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let a = loop {
        let a = http(
            server,
            "POST",
            &format!("/whep/{CHANNEL}"),
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await
        .unwrap();
        if a.status == 404 && a.body.contains("not live") && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        break a;
    };
    assert_eq!(a.status, 201, "{}", a.body);
    client.answer(&a.body).unwrap();
    let mut frames = 0;
    client
        .run(limit, |_, e| {
            if let Some(Event::MediaData(d)) = e {
                if d.params.spec().codec == Codec::H264 {
                    frames += 1;
                }
            }
            false
        })
        .await
        .unwrap();
    frames
}

/// A WHIP publish of 6 s and, from its second second, a WHEP viewer of it: the frames
/// the viewer got. The publisher ends with DELETE, so the channel is free at once.
fn publish_and_view(server: &Server) -> usize {
    runtime().block_on(async {
        let (mut client, video, audio, location) = whip_client(server.http).await;
        let never = AtomicBool::new(false);
        let publish = send_demo(&mut client, video, audio, 180, &never);
        let view = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            whep_frames(server.http, Duration::from_secs(4)).await
        };
        let (sent, viewed) = tokio::join!(publish, view);
        assert_eq!(sent, 180);
        let bye = http(server.http, "DELETE", &location, &[], b"")
            .await
            .unwrap();
        assert_eq!(bye.status, 200, "{}", bye.body);
        viewed
    })
}

#[test]
fn webrtc_sessions_through_a_graceful_stop_and_a_kill_9() {
    let mut server = Server::start("webrtc-restart", "");
    for crash in [false, true] {
        // A publisher and a viewer are connected when the node goes away.
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (http_addr, flag) = (server.http, stop.clone());
        let publisher = std::thread::spawn(move || {
            runtime().block_on(async {
                let (mut client, video, audio, _) = whip_client(http_addr).await;
                send_demo(&mut client, video, audio, 3000, &flag).await
            })
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.metric("starling_webrtc_sessions{role=\"whip\"}") < 1.0 {
            assert!(
                Instant::now() < deadline,
                "the WHIP session did not connect"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(publish_and_view_live(&server) > 0);
        if crash {
            server.kill9();
        } else {
            // SIGTERM with sessions open: the node ends them (the publisher's stream
            // ends cleanly, so the origin does not wait out its 10 s bound for it) and
            // exits cleanly.
            let t0 = Instant::now();
            assert!(server.stop().success());
            let took = t0.elapsed();
            eprintln!("graceful stop with WebRTC sessions open: {took:?}");
            let log = server.log_text();
            assert!(
                log.contains("reason=the node is stopping"),
                "no session ended by the stop:\n{log}"
            );
            assert!(took < Duration::from_secs(8), "the stop took {took:?}");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(publisher.join().unwrap() > 0);

        // The node again over the same data: the same key publishes at once (nothing of
        // the old session holds the channel) and a viewer plays it.
        server.restart();
        let viewed = publish_and_view(&server);
        assert!(
            viewed >= 30,
            "{viewed} frames over WHEP after the {}",
            if crash { "kill -9" } else { "graceful stop" }
        );
    }
}

/// While another publisher is live: a WHEP viewer of 2 s gets its frames.
fn publish_and_view_live(server: &Server) -> usize {
    runtime().block_on(whep_frames(server.http, Duration::from_secs(2)))
}

/// `web/tests/realtime.mjs` with `args`; its JSON result, or a panic with it.
fn realtime(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("node")
        .arg(web_dir().join("tests/realtime.mjs"))
        .args(args)
        .output()
        .unwrap();
    let v = last_json_line(&out, "realtime.mjs");
    assert!(
        out.status.success() && v["ok"] == true,
        "browser check failed: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

#[test]
fn chromium_goes_live_in_the_studio_and_plays_over_whep_ll_hls_and_dash() {
    if !require_browser() {
        return;
    }
    let server = Server::start("webrtc-studio", "");
    let base = server.http_url("");
    let v = realtime(&[
        &base,
        "--channel",
        CHANNEL,
        "--key",
        KEY,
        "--resolution",
        "640x360",
        "--players",
        "hls.js,dash.js",
        "--timeout",
        "60",
    ]);
    eprintln!("realtime: {v}");
    assert_eq!(v["viewer"]["mode"], "whep");
    assert_eq!(
        (
            v["viewer"]["width"].as_u64(),
            v["viewer"]["height"].as_u64()
        ),
        (Some(640), Some(360))
    );
    assert_eq!(v["players"]["hls.js"]["mode"], "hls.js");
    assert_eq!(v["players"]["dash.js"]["mode"], "dash.js");
    // The session went away with the browser: the channel is free again soon (the
    // publisher's silence ends it), so a new studio can go live.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("starling_webrtc_sessions{role=\"whip\"}") > 0.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        server.metric("starling_webrtc_sessions{role=\"whip\"}"),
        0.0
    );
}

#[test]
fn a_realtime_channel_plays_over_whep_by_itself() {
    if !require_browser() {
        return;
    }
    // The channel's latency mode is `realtime`: the watch page, opened without
    // `?realtime=`, asks the playlist and picks WHEP; `?realtime=0` keeps to LL-HLS.
    let server = Server::start_channel("webrtc-auto", "", "latency_mode = \"realtime\"");
    let base = server.http_url("");
    let v = realtime(&[
        &base,
        "--channel",
        CHANNEL,
        "--key",
        KEY,
        "--watch-query",
        "",
        "--players",
        "hls.js",
        "--timeout",
        "60",
    ]);
    eprintln!("realtime channel: {v}");
    assert_eq!(v["viewer"]["mode"], "whep", "{v}");
    assert_eq!(v["players"]["hls.js"]["mode"], "hls.js", "{v}");
}

#[test]
fn a_signed_in_studio_goes_live_with_a_key_it_mints() {
    if !require_browser() {
        return;
    }
    let server = Server::start("webrtc-studio-signin", "");
    let (email, password) = ("studio@example.test", "correct horse battery staple");
    server.create_admin(email, password);
    let cookie = server.login(email, password);
    let api = |method: &str, path: &str, body: Option<&str>| {
        let r = server.http_request(method, path, &[("Cookie", &cookie)], body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        (r.status, v)
    };
    // A channel of the control plane, real time: no key exists for it yet.
    let (status, ch) = api(
        "POST",
        "/api/v1/channels",
        Some(r#"{"name":"studio-ch","latency_mode":"realtime"}"#),
    );
    assert_eq!(status, 201, "{ch}");

    // Twice: the first go-live makes the studio's device and key, the second rotates it.
    for round in 0..2 {
        let v = realtime(&[
            &server.http_url(""),
            "--channel",
            "studio-ch",
            "--sign-in",
            &format!("{email}:{password}"),
            "--watch-query",
            "",
            "--timeout",
            "60",
        ]);
        eprintln!("signed-in studio, round {round}: {v}");
        assert_eq!(v["studio"]["signed_in"], true, "{v}");
        assert_eq!(v["viewer"]["mode"], "whep", "{v}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.metric("starling_webrtc_sessions{role=\"whip\"}") > 0.0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // One device of kind studio.
    let (_, devices) = api("GET", "/api/v1/devices", None);
    let studio: Vec<_> = devices["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "studio")
        .collect();
    assert_eq!(studio.len(), 1, "{devices}");
    assert_eq!(studio[0]["name"], "Browser studio");
    let (_, keys) = api(
        "GET",
        &format!("/api/v1/devices/{}/keys", studio[0]["id"].as_str().unwrap()),
        None,
    );
    // The rotation revoked the first key: one live key remains, for the channel.
    let keys = keys["items"].as_array().unwrap();
    let live: Vec<_> = keys.iter().filter(|k| k["revoked_at"].is_null()).collect();
    assert_eq!((keys.len(), live.len()), (2, 1), "{keys:?}");
    assert_eq!(live[0]["channel_id"], ch["id"]);
}

#[test]
fn chromium_goes_live_and_plays_over_ice_tcp_alone() {
    if !require_browser() {
        return;
    }
    // The server offers ICE-TCP candidates only: as for a client whose network blocks
    // UDP, the only way in is TCP.
    let server = Server::start_env(
        "webrtc-ice-tcp",
        "",
        &[("STARLING_WEBRTC_ICE_UDP", "false")],
    );
    let base = server.http_url("");
    let v = realtime(&[&base, "--channel", CHANNEL, "--key", KEY, "--timeout", "60"]);
    eprintln!("realtime over ICE-TCP: {v}");
    assert_eq!(v["viewer"]["mode"], "whep");
    // Both pages came over TCP.
    let tcp = server.metric("starling_webrtc_tcp_connections_total");
    assert!(tcp >= 2.0, "{tcp} ICE-TCP connections");
}

#[test]
fn chromium_plays_an_rtmp_source_over_whep() {
    if !require_browser() || !require_ffmpeg() {
        return;
    }
    let server = Server::start("webrtc-chromium-rtmp", "");
    // H.264 and AAC: the viewer gets the AAC as Opus (one shared transcode).
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t",
            "40",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    server.wait_log("publish started", Duration::from_secs(20));
    let base = server.http_url("");
    let v = realtime(&[
        &base,
        "--channel",
        CHANNEL,
        "--expect-size",
        "320x240",
        "--timeout",
        "40",
    ]);
    eprintln!("realtime: {v}");
    let audio = v["viewer"]["audio_packets"].as_u64().unwrap_or(0);
    assert!(audio >= 50, "{audio} Opus packets in the viewer's 3 s: {v}");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

/// `scripts/aiortc` (aiortc, a WebRTC stack independent of the server's str0m) with
/// `args`, its JSON line on a pipe.
fn aiortc(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/aiortc"),
    );
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

#[test]
fn aiortc_publishes_over_whip_and_plays_over_whep() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("webrtc-aiortc", "");
    let whip_url = server.http_url(&format!("/whip/{CHANNEL}"));
    let whep_url = server.http_url(&format!("/whep/{CHANNEL}"));

    // aiortc refused with the wrong key: a clear 403, nothing on the air.
    let wrong = aiortc(&["whip", &whip_url, "not-the-key", "1"])
        .output()
        .unwrap();
    let v = last_json_line(&wrong, "aiortc whip (wrong key)");
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(v["connected"], false, "{v}");

    // aiortc publishes its test picture (640x480, H.264) and audio (Opus) for 14 s.
    let publisher = aiortc(&["whip", &whip_url, KEY, "14"]).spawn().unwrap();
    server.wait_log("webrtc: connected", Duration::from_secs(30));

    // A second aiortc plays it over WHEP: video from a keyframe on, at the sent size,
    // and audio.
    let viewer = aiortc(&["whep", &whep_url, "4"]).output().unwrap();
    let v = last_json_line(&viewer, "aiortc whep");
    eprintln!("aiortc viewer: {v}");
    assert_eq!(v["status"], 201, "{v}");
    assert_eq!(v["connected"], true, "{v}");
    assert!(v["video_frames"].as_u64().unwrap() >= 30, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(480)),
        "{v}"
    );
    assert!(v["audio_frames"].as_u64().unwrap() >= 50, "{v}");
    assert_eq!(v["delete_status"], 200, "{v}");

    // The same stream is packaged for LL-HLS (H.264 at the sent size, Opus); the live
    // list says it comes in over WebRTC.
    assert_packaged_h264_opus(&server, 640, 480);
    let ch = runtime().block_on(live_entry(&server));
    assert_eq!(ch["ingest"]["protocol"], "webrtc", "{ch}");

    // The publisher ends with DELETE: its session is gone and the channel is free.
    let out = publisher.wait_with_output().unwrap();
    let v = last_json_line(&out, "aiortc whip");
    eprintln!("aiortc publisher: {v}");
    assert_eq!(
        (v["status"].as_u64(), v["connected"].as_bool()),
        (Some(201), Some(true)),
        "{v}"
    );
    assert_eq!(v["delete_status"], 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.metric("starling_webrtc_sessions{role=\"whip\"}") > 0.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        server.metric("starling_webrtc_sessions{role=\"whip\"}"),
        0.0
    );
}
