//! HTTP PUT ingest end to end: ffmpeg's hls muxer, as an external packager, uploads an
//! epoch-numbered fMP4 stream to `PUT /ingest/CHANNEL/...` with the stream key as
//! Bearer; Starling serves it at `/live/CHANNEL/...` to ffmpeg and to hls.js in
//! Chromium. Without the key nothing is stored; a channel live over RTMP keeps its own
//! playlist.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;

/// ffmpeg pushing `seconds` of 640x360 H.264 + AAC as 1 s fMP4 segments named by epoch
/// seconds to `url`, with `auth` as its Authorization header (if any).
fn packager(url: &str, auth: Option<&str>, seconds: u32) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30")
        .args(["-re", "-f", "lavfi", "-i", "sine=sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-f", "hls", "-hls_time", "1"])
        .args(["-hls_list_size", "6", "-hls_flags", "delete_segments"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-hls_start_number_source",
            "epoch",
        ])
        .args(["-method", "PUT"]);
    if let Some(a) = auth {
        cmd.args(["-headers", &format!("Authorization: {a}\r\n")]);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `PUT path` with `body` and `auth` as Authorization; status and body of the answer.
/// A server that answers before the whole body is sent (413) may close the socket
/// under the writer: what it answered is read all the same.
fn put_bytes(server: &Server, path: &str, auth: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stored_files(server: &Server) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.dir.join("data"), &mut out);
    out.retain(|p| p.contains("/pushed/"));
    out
}

#[test]
fn ffmpeg_pushes_over_put_and_hls_js_plays_it() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("put-ingest", "");
    let ingest = server.http_url(&format!("/ingest/{CHANNEL}/index.m3u8"));
    let pl = format!("/live/{CHANNEL}/index.m3u8");

    // Without the key (and with a wrong one): refused, nothing stored anywhere.
    let mut anon = packager(&ingest, None, 3);
    let mut wrong = packager(&ingest, Some("Bearer not-the-key-of-e2e"), 3);
    let _ = anon.wait();
    let _ = wrong.wait();
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    assert_eq!(server.http_raw(&pl).unwrap().0, 404);
    assert!(server.metric("starling_put_requests_total{result=\"refused_auth\"}") >= 2.0);

    let mut push = packager(&ingest, Some(&format!("Bearer {KEY}")), 40);
    wait_for("the pushed playlist", Duration::from_secs(30), || {
        server
            .http_raw(&pl)
            .is_some_and(|(s, b)| s == 200 && b.matches("#EXTINF").count() >= 3)
    });
    // The live list shows the pushed channel, since when, and how it comes.
    let live = server.http_get("/api/v1/live").unwrap();
    let live = live.split_once("\r\n\r\n").unwrap().1;
    let live: serde_json::Value = serde_json::from_str(live).unwrap();
    let entry = live["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CHANNEL)
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(entry["ingest"]["protocol"], "put", "{entry}");
    assert!(entry["since"].as_str().is_some(), "{entry}");
    let raw = server.http_raw(&pl).unwrap().1;
    let text = raw.split_once("\r\n\r\n").unwrap().1;
    // Epoch numbering: the media sequence is near the current epoch second.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seq: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        seq.abs_diff(now) < 120,
        "sequence {seq} vs now {now}\n{text}"
    );
    // Every object the playlist names is served from here.
    for uri in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (status, body) = server
            .http_bytes(&format!("/live/{CHANNEL}/{uri}"))
            .unwrap();
        assert_eq!(status, 200, "{uri}");
        assert!(body.windows(4).any(|w| w == b"moof"), "{uri} is CMAF");
    }
    // ffprobe reads the stream through the stable URL.
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(server.http_url(&pl)));
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs}"
    );
    // hls.js in Chromium plays it on the watch page.
    if require_browser() {
        let v = watch(&[
            &server.http_url(&format!("/watch/{CHANNEL}")),
            "--seconds",
            "4",
            "--max-latency",
            "15",
            "--timeout",
            "60",
        ]);
        assert!(v["advanced"].as_f64().unwrap() >= 4.0, "{v}");
    }
    // Written through to the store under the channel's prefix, nowhere else.
    wait_for("objects in the store", Duration::from_secs(10), || {
        !stored_files(&server).is_empty()
    });
    for f in stored_files(&server) {
        assert!(f.contains(&format!("/pushed/{CHANNEL}/")), "{f}");
    }
    let _ = push.kill();
    let _ = push.wait();

    // kill -9 and start again on the same store, with nobody pushing: what was pushed
    // is served again (the store is listed at start-up), its playlist first.
    let mut server = server;
    server.kill9();
    server.restart();
    wait_for(
        "the pushed playlist after a restart",
        Duration::from_secs(15),
        || server.http_raw(&pl).is_some_and(|(s, _)| s == 200),
    );
    let again = server.http_raw(&pl).unwrap().1;
    let again = again.split_once("\r\n\r\n").unwrap().1;
    assert!(again.matches("#EXTINF").count() >= 3, "{again}");
    let uri = again
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap()
        .to_owned();
    let (status, seg) = server
        .http_bytes(&format!("/live/{CHANNEL}/{uri}"))
        .unwrap();
    assert_eq!(status, 200, "{uri}");
    assert!(seg.windows(4).any(|w| w == b"moof"), "{uri} is CMAF");
}

#[test]
fn bad_pushes_are_refused_with_the_cause_and_nothing_is_written() {
    let server = Server::start("put-bad", "");
    let auth = format!("Bearer {KEY}");
    let put = |path: &str, body: &[u8]| put_bytes(&server, path, &auth, body);
    // A path that leaves the channel, a name the store cannot hold, a wrong channel.
    for path in [
        "/ingest/e2e/../other/x.m4s",
        "/ingest/e2e/%2e%2e/x.m4s",
        "/ingest/e2e/a/b/c/x.m4s",
        "/ingest/e2e/x.exe",
    ] {
        let r = put(path, b"\0\0\0\x08moof");
        assert!((400..500).contains(&r.0), "{path}: {}", r.0);
    }
    let r = put("/ingest/other-channel/x.m4s", b"\0\0\0\x08moof");
    assert_eq!(r.0, 403, "a key for e2e pushes to e2e only: {}", r.1);
    // Not CMAF, not TS, a playlist naming what was never uploaded.
    let r = put("/ingest/e2e/seg1.m4s", b"definitely not an mp4 file");
    assert_eq!(r.0, 422, "{}", r.1);
    assert!(r.1.contains("CMAF") || r.1.contains("box"), "{}", r.1);
    let r = put("/ingest/e2e/seg1.ts", &[0u8; 376]);
    assert_eq!(r.0, 422, "{}", r.1);
    let r = put(
        "/ingest/e2e/live.m3u8",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nnever-uploaded.m4s\n",
    );
    assert_eq!(r.0, 409, "{}", r.1);
    assert!(r.1.contains("never-uploaded.m4s"), "{}", r.1);
    // Oversized (over the 1 MiB playlist limit).
    let big = vec![b'#'; 2 << 20];
    let r = put("/ingest/e2e/big.m3u8", &big);
    assert_eq!(r.0, 413);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
    // The server goes on serving.
    assert_eq!(server.http_raw("/healthz").unwrap().0, 200);
}
