//! RTMP in, LL-HLS out, judged by the real ffmpeg/ffprobe: publish with ffmpeg over RTMP,
//! read the stream back through the origin over HTTP while live and as VOD after the end.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

#[test]
fn ffmpeg_publishes_rtmp_and_ffprobe_reads_hls_live_and_as_vod() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("hls-ffmpeg", "");
    let publisher = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
        ])
        .args(["-profile:v", "high", "-c:a", "aac", "-ac", "2", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // While live: the multivariant playlist describes the stream, ffprobe reads it.
    let url = server.http_url(&format!("/live/{CHANNEL}/index.m3u8"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let multivariant = loop {
        if let Some(text) = server.http_get(&format!("/live/{CHANNEL}/index.m3u8")) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no multivariant playlist; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for want in [
        "CODECS=\"avc1.64001e,mp4a.40.2\"",
        "RESOLUTION=640x360",
        "FRAME-RATE=30.000",
        "BANDWIDTH=",
    ] {
        assert!(
            multivariant.contains(want),
            "multivariant lacks {want}:\n{multivariant}"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let live = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "default=nw=1"])
        .arg(&url));
    let text = String::from_utf8_lossy(&live.stdout);
    for want in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "profile=High",
        "codec_name=aac",
        "sample_rate=48000",
        "channels=2",
    ] {
        assert!(text.contains(want), "ffprobe (live) lacks {want}:\n{text}");
    }

    let out = publisher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // After the end: ENDLIST, and the whole stream is there as VOD.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pl = server
            .http_get(&format!("/live/{CHANNEL}/source/index.m3u8"))
            .unwrap_or_default();
        if pl.contains("#EXT-X-ENDLIST") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ENDLIST after the publisher left:\n{pl}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let vod = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height",
            "-of",
            "default=nw=1",
        ])
        .arg(&url));
    let text = String::from_utf8_lossy(&vod.stdout);
    assert!(
        text.contains("nb_read_frames=300"),
        "10 s at 30 fps through HLS:\n{text}"
    );
    let audio = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "a:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,duration",
            "-of",
            "default=nw=1",
        ])
        .arg(&url));
    let text = String::from_utf8_lossy(&audio.stdout);
    let frames: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // 10 s of 48 kHz AAC is 468.75 frames; ffmpeg's encoder adds a priming frame.
    assert!((468..=471).contains(&frames), "audio frames: {frames}");
    let decode = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&url)
        .args(["-f", "null", "-"]));
    assert!(
        decode.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

#[test]
fn bad_http_paths_get_400_and_never_read_outside_the_data_dir() {
    let server = Server::start("hls-badpaths", "");
    let long = "x".repeat(4096);
    for path in [
        "/live/../../../../etc/passwd".to_owned(),
        "/live/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/live/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/index.m3u8".to_owned(),
        format!("/live/{CHANNEL}/source/%00.m4s"),
        format!("/live/{long}/index.m3u8"),
        "/../../etc/passwd".to_owned(),
        "/watch/..%2f..%2fetc%2fpasswd".to_owned(),
    ] {
        let (status, text) = server.http_raw(&path).unwrap();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(
            !text.contains("root:"),
            "{path} read a file outside the data dir"
        );
    }
    let (status, _) = server.http_raw("/live/nobody/index.m3u8").unwrap();
    assert_eq!(status, 404);
    // Known channel, not live yet: 404 that caches only briefly.
    let (status, text) = server
        .http_raw(&format!("/live/{CHANNEL}/index.m3u8"))
        .unwrap();
    assert_eq!(status, 404);
    assert!(
        text.to_ascii_lowercase()
            .contains("cache-control: public, max-age=1"),
        "{text}"
    );
}

/// LL-HLS wants many small requests on few connections: HTTP/1.1 keep-alive and HTTP/2
/// (here h2c with prior knowledge; browsers reach HTTP/2 through a TLS front).
#[test]
fn http2_and_keep_alive_on_the_one_port() {
    let server = Server::start_demo("http2", "");
    let url = server.http_url("/live/demo/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.http_get("/live/demo/index.m3u8").is_none() {
        assert!(Instant::now() < deadline, "the demo never went live");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{response_code}",
        ])
        .arg(&url));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    // Two requests, one connection.
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\n",
        ])
        .arg(&url)
        .arg(&url));
    let connects: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        connects,
        ["1", "0"],
        "the second request should reuse the connection"
    );
}
