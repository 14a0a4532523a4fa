//! Private channels end to end: an admin made with the CLI logs in over the API, makes a
//! private channel, a device and its stream key, and ffmpeg publishes with that key. The
//! origin must then refuse playback without a token (401) and with a bad one (403:
//! altered, expired, for another channel), serve it with a valid one (private caching,
//! the token in every playlist URI, ffprobe reads the stream), leave public channels as
//! they were, and stop asking for a token soon after the channel is made public. No
//! token may reach the server's log.
//!
//! Listing: while live, the private channel is absent from the anonymous
//! `GET /api/v1/live` (what the home page shows) and its event's triggers from the
//! anonymous live-state stream, while its organisation's signed-in members see both.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

struct Api<'a> {
    server: &'a Server,
    cookie: String,
}

impl Api<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let r =
            self.server
                .http_request(method, path, &[("Cookie", &self.cookie)], body.as_deref());
        let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    fn created(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", path, Some(body));
        assert_eq!(status, 201, "POST {path}: {v}");
        v
    }

    fn playback_token(&self, channel_id: &str, ttl_secs: i64) -> String {
        let v = self.created(
            &format!("/api/v1/channels/{channel_id}/playback-tokens"),
            json!({ "ttl_secs": ttl_secs }),
        );
        v["token"].as_str().unwrap().to_owned()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn publish(server: &Server, key: &str, size: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25"))
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(server.rtmp_url(key))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every URI of a playlist: URI lines and `URI="…"` attributes.
fn uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line.starts_with('#') {
            for piece in line.split("URI=\"").skip(1) {
                out.push(piece.split('"').next().unwrap().to_owned());
            }
        } else if !line.trim().is_empty() {
            out.push(line.to_owned());
        }
    }
    out
}

fn wait_status(server: &Server, path: &str, want: u16, within: Duration) -> HttpResponse {
    let deadline = Instant::now() + within;
    loop {
        let r = server.http_request("GET", path, &[], None);
        if r.status == want {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: still {} ({}) after {within:?}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refused(server: &Server, path: &str, status: u16, code: &str) {
    let r = server.http_request("GET", path, &[], None);
    assert_eq!(r.status, status, "{path}: {}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], code, "{path}: {}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
}

/// `curl -N` on the live-state stream (with `cookie`, if any): the `event_id` of every
/// `state` trigger arrives on the channel.
fn live_state(server: &Server, cookie: Option<&str>) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sN", "--max-time", "60"]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    let mut child = cmd
        .arg(server.http_url("/api/v1/live-state"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(v).unwrap();
                if event == "state" {
                    let id = data["event_id"].as_str().unwrap_or_default().to_owned();
                    if tx.send(id).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (child, rx)
}

/// Event ids received on `rx` until `want` arrives (or `within` passes).
fn ids_until(rx: &mpsc::Receiver<String>, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut ids = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(id) => {
                let done = id == want;
                ids.push(id);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ids
}

fn live_names(server: &Server, headers: &[(&str, &str)]) -> Vec<String> {
    let r = server.http_request("GET", "/api/v1/live", headers, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Node, Chromium and playwright-core (web/node_modules), as the browser test needs them.
fn browser_available() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let runs = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../web");
    if runs("node") && runs(&chromium) && web.join("node_modules/playwright-core").exists() {
        return true;
    }
    if std::env::var_os("STARLING_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("no browser and STARLING_SKIP_BROWSER_TESTS set: skipping the watch page part");
        return false;
    }
    panic!("the watch page part needs node, chromium and web/node_modules (scripts/test installs them)");
}

#[test]
fn private_channels_need_a_valid_token_over_hls() {
    if !require_ffmpeg() {
        return;
    }
    let mut server = Server::start("private", "");
    let email = "owner@example.com";
    server.create_admin(email, PASSWORD);

    let cookie = server.login(email, PASSWORD);
    let api = Api {
        server: &server,
        cookie,
    };

    let ch = api.created(
        "/api/v1/channels",
        json!({ "name": "vip", "visibility": "private" }),
    );
    assert_eq!(ch["visibility"], "private");
    let ch_id = ch["id"].as_str().unwrap().to_owned();
    let other = api.created(
        "/api/v1/channels",
        json!({ "name": "backstage", "visibility": "private" }),
    );
    let dev = api.created(
        "/api/v1/devices",
        json!({ "name": "studio", "channel_id": ch_id }),
    );
    let key = api.created(
        &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
        json!({}),
    );
    let key = server.secret(key["secret"].as_str().unwrap());

    let token = server.secret(&api.playback_token(&ch_id, 600));
    let short = server.secret(&api.playback_token(&ch_id, 1));
    let other_token = server.secret(&api.playback_token(other["id"].as_str().unwrap(), 600));
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = server.secret(&String::from_utf8(tampered).unwrap());

    // Live-state streams, anonymous and signed in, before the events exist.
    let (mut anon_sse, anon_rx) = live_state(&server, None);
    let (mut member_sse, member_rx) = live_state(&server, Some(&api.cookie));

    let mut private_pub = publish(&server, &key, "320x240");
    let mut public_pub = publish(&server, KEY, "160x120");
    let q = format!("token={token}");

    // Live with a valid token: 200, private, and the token in every URI.
    let mv = wait_status(
        &server,
        &format!("/live/vip/index.m3u8?{q}"),
        200,
        Duration::from_secs(30),
    );
    assert!(
        mv.header("cache-control").unwrap().starts_with("private"),
        "{}",
        mv.head
    );
    let mv_uris = uris(&mv.body);
    assert!(!mv_uris.is_empty());
    assert!(mv_uris.iter().all(|u| u.ends_with(&q)), "{}", mv.body);
    let mut checked = 0;
    let mut segment_url: Option<String> = None;
    for variant in &mv_uris {
        let pl = wait_status(
            &server,
            &format!("/live/vip/{variant}"),
            200,
            Duration::from_secs(10),
        );
        assert!(pl.header("cache-control").unwrap().starts_with("private"));
        for tag in ["#EXT-X-MAP:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:"] {
            assert!(pl.body.contains(tag), "{tag} missing:\n{}", pl.body);
        }
        let rendition = variant.split('/').next().unwrap();
        let media = uris(&pl.body);
        assert!(media.len() > 3, "{}", pl.body);
        for uri in &media {
            assert!(uri.ends_with(&q), "{uri} lacks the token:\n{}", pl.body);
        }
        // A whole segment's URL (under its session), without the token, for the refusals.
        if let Some(path) = media
            .iter()
            .map(|u| u.split('?').next().unwrap())
            .find(|p| p.ends_with(".m4s") && p.matches('.').count() == 1)
        {
            segment_url.get_or_insert(format!("/live/vip/{rendition}/{path}"));
        }
        // Fetch what the playlist names (not the preload hint, which may block).
        for uri in media.iter().filter(|u| !u.starts_with("../")).take(4) {
            let r = server.http_request("GET", &format!("/live/vip/{rendition}/{uri}"), &[], None);
            assert_eq!(r.status, 200, "{uri}: {}", r.body);
            assert!(r.header("cache-control").unwrap().starts_with("private"));
            checked += 1;
        }
    }
    assert!(checked >= 4);

    // Listing: the private channel is live, yet the anonymous list (the home page's)
    // has only the public one; a signed-in member of its organisation sees both. A bad
    // credential lists as anonymous.
    let anon = live_names(&server, &[]);
    assert!(anon.contains(&CHANNEL.to_owned()), "{anon:?}");
    assert!(
        !anon.contains(&"vip".to_owned()),
        "private channel listed: {anon:?}"
    );
    let bad = live_names(&server, &[("Authorization", "Bearer st_nope")]);
    assert!(!bad.contains(&"vip".to_owned()), "{bad:?}");
    let member = live_names(&server, &[("Cookie", &api.cookie)]);
    assert!(member.contains(&"vip".to_owned()), "{member:?}");
    let home = server.http_request("GET", "/", &[], None);
    assert_eq!(home.status, 200);
    assert!(
        !home.body.contains("vip"),
        "the home page names the private channel"
    );

    // Events on the private channel and on a public one, their pre-show a second away:
    // the anonymous stream gets the public event's triggers and none of the private's.
    let lobby = api.created(
        "/api/v1/channels",
        json!({ "name": "lobby", "visibility": "public" }),
    );
    let start = now_ms() + 2_500;
    let event = |channel_id: &str, title: &str| -> String {
        let v = api.created(
            "/api/v1/events",
            json!({ "channel_id": channel_id, "title": title, "scheduled_start": start,
                    "scheduled_end": start + 600_000, "preshow_lead_secs": 1 }),
        );
        v["id"].as_str().unwrap().to_owned()
    };
    let private_event = event(&ch_id, "members only");
    let public_event = event(lobby["id"].as_str().unwrap(), "open doors");
    let seen = ids_until(&member_rx, &private_event, Duration::from_secs(15));
    assert!(seen.contains(&private_event), "member saw {seen:?}");
    let seen = ids_until(&anon_rx, &public_event, Duration::from_secs(15));
    assert!(seen.contains(&public_event), "anonymous saw {seen:?}");
    // Whatever else arrives for a while: never the private event.
    let later = ids_until(&anon_rx, "-", Duration::from_secs(3));
    assert!(
        !seen.iter().chain(&later).any(|id| *id == private_event),
        "the private channel's event reached an anonymous client"
    );
    let _ = anon_sse.kill();
    let _ = member_sse.kill();
    let _ = anon_sse.wait();
    let _ = member_sse.wait();

    // Refusals: none, altered, expired, another channel's.
    let seg = segment_url.expect("a segment listed").clone();
    let seg = seg.as_str();
    refused(&server, "/live/vip/index.m3u8", 401, "token_required");
    refused(
        &server,
        "/live/vip/source/index.m3u8",
        401,
        "token_required",
    );
    refused(&server, seg, 401, "token_required");
    refused(
        &server,
        &format!("{seg}?token={tampered}"),
        403,
        "token_bad_signature",
    );
    refused(
        &server,
        &format!("/live/vip/index.m3u8?token={other_token}"),
        403,
        "token_wrong_channel",
    );
    std::thread::sleep(Duration::from_millis(1200));
    refused(
        &server,
        &format!("/live/vip/index.m3u8?token={short}"),
        403,
        "token_expired",
    );
    // DASH is gated alike: refused without the token; with it, every URL of the MPD
    // carries it, and ffprobe reads the private stream through it.
    refused(&server, "/live/vip/manifest.mpd", 401, "token_required");
    let mpd = server.http_request("GET", &format!("/live/vip/manifest.mpd?{q}"), &[], None);
    assert_eq!(mpd.status, 200, "{}", mpd.body);
    for attr in ["initialization=\"", "media=\""] {
        let urls: Vec<&str> = mpd
            .body
            .split(attr)
            .skip(1)
            .map(|r| r.split('"').next().unwrap())
            .collect();
        assert!(!urls.is_empty(), "{}", mpd.body);
        for u in urls {
            assert!(u.ends_with(&q), "{u} lacks the token:\n{}", mpd.body);
        }
    }
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "default=nw=1"])
        .arg(server.http_url(&format!("/live/vip/manifest.mpd?{q}"))));
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        text.contains("codec_name=h264"),
        "ffprobe (DASH) lacks h264:\n{text}"
    );
    // The channel's posters are private too.
    refused(&server, "/live/vip/thumb.jpg", 401, "token_required");
    let poster = wait_status(
        &server,
        &format!("/live/vip/thumb-small.jpg?{q}"),
        200,
        Duration::from_secs(15),
    );
    assert!(
        poster
            .head
            .to_ascii_lowercase()
            .contains("cache-control: private"),
        "{}",
        poster.head
    );
    // The token also works as a cookie.
    let by_cookie = server.http_request(
        "GET",
        seg,
        &[("Cookie", &format!("starling_playback={token}"))],
        None,
    );
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.body);

    // ffprobe reads the private stream through the token URL.
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "default=nw=1"])
        .arg(server.http_url(&format!("/live/vip/index.m3u8?{q}"))));
    let text = String::from_utf8_lossy(&probe.stdout);
    for want in [
        "codec_name=h264",
        "width=320",
        "height=240",
        "codec_name=aac",
    ] {
        assert!(text.contains(want), "ffprobe lacks {want}:\n{text}");
    }

    // The watch page passes `?token=` on: Chromium plays the private channel with it and
    // says why it cannot without.
    if browser_available() {
        let web =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../web/tests/watch.mjs");
        let page = |args: &[&str]| {
            let out = Command::new("node").arg(&web).args(args).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "watch.mjs {args:?}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        };
        let played = page(&[
            &server.http_url(&format!("/watch/vip?token={token}")),
            "--seconds",
            "3",
            "--max-latency",
            "6",
        ]);
        assert!(played.contains("\"ok\":true"), "{played}");
        page(&[
            &server.http_url("/watch/vip"),
            "--expect-text",
            "vip is private",
        ]);
    }

    // A public channel (from the config file) needs no token and stays publicly cacheable.
    let open = wait_status(
        &server,
        &format!("/live/{CHANNEL}/index.m3u8"),
        200,
        Duration::from_secs(30),
    );
    assert_eq!(open.header("cache-control"), Some("public, max-age=2"));
    assert!(!open.body.contains("token="));
    let open_pl = wait_status(
        &server,
        &format!("/live/{CHANNEL}/source/index.m3u8"),
        200,
        Duration::from_secs(10),
    );
    let open_uri = open_pl
        .body
        .lines()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .expect("a segment listed");
    let open_seg = wait_status(
        &server,
        &format!("/live/{CHANNEL}/source/{open_uri}"),
        200,
        Duration::from_secs(10),
    );
    assert_eq!(
        open_seg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    // Made public: within a few seconds no token is needed and caching is public again.
    let (status, v) = api.call(
        "PATCH",
        &format!("/api/v1/channels/{ch_id}"),
        Some(json!({ "visibility": "public" })),
    );
    assert_eq!(status, 200, "{v}");
    let changed = Instant::now();
    let r = wait_status(&server, "/live/vip/index.m3u8", 200, Duration::from_secs(5));
    eprintln!("visibility change applied after {:?}", changed.elapsed());
    assert_eq!(r.header("cache-control"), Some("public, max-age=2"));
    assert!(!r.body.contains("token="));
    let pl = server.http_request("GET", "/live/vip/source/index.m3u8", &[], None);
    assert_eq!(pl.status, 200, "{}", pl.body);
    let newest = pl
        .body
        .lines()
        .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap();
    let r = server.http_request("GET", &format!("/live/vip/source/{newest}"), &[], None);
    assert_eq!(r.status, 200, "{newest}: {}", r.body);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    let _ = private_pub.kill();
    let _ = public_pub.kill();
    let _ = private_pub.wait();
    let _ = public_pub.wait();
    assert!(server.stop().success());
    let log = server.log_text();
    for secret in [&token, &short, &other_token, &tampered, &key] {
        assert!(
            !log.contains(secret.as_str()),
            "a token or key reached the log"
        );
    }
    assert!(!log.contains(PASSWORD), "the password reached the log");
}
