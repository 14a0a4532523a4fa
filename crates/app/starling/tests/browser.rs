//! The watch page in a real browser: Debian's Chromium, driven headless through
//! playwright-core, plays `starling demo` with hls.js in low-latency mode.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use common::*;

/// One browser at a time: three Chromiums, their servers and publishers on two cores
/// stalled players and pushed latencies past the bounds (CI, 7 Dec 2026).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn the_watch_page_plays_the_demo_with_low_latency_in_chromium() {
    if !require_browser() {
        return;
    }
    let _serial = one_at_a_time();
    let server = Server::start_demo("browser", "");
    let shot = server.dir.join("watch.png");
    let v = watch(&[
        &server.http_url("/watch/demo"),
        "--seconds",
        "5",
        "--max-latency",
        "3",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    let latency = v["latency_median"].as_f64().unwrap();
    assert!(latency < 3.0, "latency {latency} s");
    assert!(v["advanced"].as_f64().unwrap() >= 5.0);
    eprintln!("browser: {v}");
    // The index lists the live channel.
    watch(&[&server.http_url("/"), "--expect-text", "demo"]);
}

/// dash.js (`?player=dash`) plays the demo's MPD in low-latency mode: the MPD has a
/// latency target and sends the segment in progress chunked.
#[test]
fn the_watch_page_plays_low_latency_dash_with_dash_js_in_chromium() {
    if !require_browser() {
        return;
    }
    let _serial = one_at_a_time();
    let server = Server::start_demo("browser-dash", "");
    let v = watch(&[
        &server.http_url("/watch/demo?player=dash"),
        "--seconds",
        "6",
        "--max-latency",
        "4",
        "--timeout",
        "40",
    ]);
    eprintln!("browser (dash.js, low latency): {v}");
    assert_eq!(v["mode"], "dash.js", "{v}");
    assert!(v["advanced"].as_f64().unwrap() >= 6.0, "{v}");
    // From the MPD's wall clock: the origin's anchors put the playhead this far behind.
    let wall = v["wall_latency_median"].as_f64().unwrap();
    assert!(
        (0.2..4.0).contains(&wall),
        "wall-clock latency {wall} s: {v}"
    );
    // What dash.js was given: the low-latency MPD (the channel is live by now).
    let mpd = server.http_get("/live/demo/manifest.mpd").unwrap();
    assert!(mpd.contains("availabilityTimeComplete=\"false\""), "{mpd}");
    assert!(mpd.contains("<Latency target=\"2000\"/>"), "{mpd}");
}

/// A standard-latency channel's MPD (whole segments, no chunked segment, no latency
/// target) plays in dash.js's regular live mode.
#[test]
fn the_watch_page_plays_standard_dash_with_dash_js_in_chromium() {
    if !require_browser() || !require_ffmpeg() {
        return;
    }
    let _serial = one_at_a_time();
    let server = Server::start("browser-dash-std", "");
    let email = "owner@example.com";
    let password = "correct horse battery";
    server.create_admin(email, password);
    let cookie = server.login(email, password);
    let post = |path: &str, body: serde_json::Value| {
        let r = server.http_request(
            "POST",
            path,
            &[("Cookie", &cookie)],
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()
    };
    let ch = post(
        "/api/v1/channels",
        serde_json::json!({ "name": "std", "latency_mode": "standard" }),
    );
    let dev = post(
        "/api/v1/devices",
        serde_json::json!({ "name": "cam", "channel_id": ch["id"] }),
    );
    let key = post(
        &format!("/api/v1/devices/{}/keys", dev["id"].as_str().unwrap()),
        serde_json::json!({}),
    );
    let key = server.secret(key["secret"].as_str().unwrap());
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(&key), 40)
        .spawn()
        .unwrap();
    // A few segments first: a player that loads the MPD when it lists one segment starts
    // at the stream's very beginning (that is the live edge minus its delay, clamped), and
    // then plays as far behind as the stream is old (12.6 s once in CI).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server
        .http_get("/live/std/source/index.m3u8")
        .map_or(0, |p| p.matches("#EXTINF").count())
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "std never had three segments"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let v = watch(&[
        &server.http_url("/watch/std?player=dash"),
        "--seconds",
        "5",
        "--max-latency",
        "12",
        "--timeout",
        "40",
    ]);
    eprintln!("browser (dash.js, standard latency): {v}");
    assert_eq!(v["mode"], "dash.js", "{v}");
    let mpd = server.http_get("/live/std/manifest.mpd").unwrap();
    assert!(!mpd.contains("availabilityTimeOffset"), "{mpd}");
    assert!(!mpd.contains("ServiceDescription"), "{mpd}");
    let _ = publisher.kill();
    let _ = publisher.wait();
}
