//! WHIP and WHEP through the binary, with str0m as the client (`client` of
//! starling-webrtc-server) and with Chromium (`web/tests/realtime.mjs`): ffmpeg
//! publishes RTMP and a WHEP viewer gets its H.264 from a keyframe on, at ffmpeg's size
//! (and in Chromium its AAC as Opus); a WHIP publisher's H.264 and Opus are packaged for
//! LL-HLS, which ffprobe reads back (H.264 at the sent size, Opus audio); a WHIP offer
//! with the wrong key stores nothing and the channel stays off the air.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_media::TrackKind;
use starling_webrtc::{
    str0m::{format::Codec, media::Direction, Event},
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

#[test]
fn a_whip_publish_is_packaged_for_ll_hls() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("webrtc-whip", "");
    runtime().block_on(async {
        // A wrong key first: refused, nothing goes live.
        let mut client = Client::new().await.unwrap();
        let (offer, video, audio) = client.offer(Direction::SendOnly).unwrap();
        let path = format!("/whip/{CHANNEL}");
        let wrong = http(
            server.http,
            "POST",
            &path,
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", "Bearer not-the-key"),
            ],
            offer.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(wrong.status, 403, "{}", wrong.body);
        let auth = format!("Bearer {KEY}");
        let a = http(
            server.http,
            "POST",
            &path,
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

        // 8 s of the demo picture (H.264, 320x180, a keyframe a second) and Opus
        // silence (20 ms packets), paced in real time.
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
        client
            .run(Duration::from_secs(20), |rtc, e| {
                if matches!(e, Some(Event::Connected)) {
                    start = Some(Instant::now());
                }
                let Some(t0) = start else { return false };
                let elapsed_ms = t0.elapsed().as_millis() as u64;
                while frames_sent < (elapsed_ms * 30 / 1000).min(240) {
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
                while audio_sent < (elapsed_ms / 20).min(400) {
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
                frames_sent >= 240
            })
            .await
            .unwrap();
        assert!(frames_sent >= 240, "sent {frames_sent} frames");
        // The live list says how the channel comes in.
        let ch = live_entry(&server).await;
        assert_eq!(ch["ingest"]["protocol"], "webrtc", "{ch}");
        assert_eq!(ch["audio"]["codec"], "opus", "{ch}");
    });

    // The origin packaged it: the LL-HLS playlists exist and ffprobe reads H.264 at the
    // sent size and Opus.
    let url = server.http_url(&format!("/live/{CHANNEL}/index.m3u8"));
    let video = probe_stream(std::path::Path::new(&url), "video");
    assert!(video.contains("codec_name=h264"), "{video}");
    assert!(
        video.contains("width=320") && video.contains("height=180"),
        "{video}"
    );
    let audio = probe_stream(std::path::Path::new(&url), "audio");
    assert!(audio.contains("codec_name=opus"), "{audio}");
    assert!(server.metric("starling_webrtc_sessions_total{role=\"whip\"}") >= 1.0);
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
