//! Channel posters: ffmpeg publishes over RTMP; the node's thumbnailer decodes the newest
//! segment into `/live/CHANNEL/thumb.jpg` and `thumb-small.jpg`, renews them while the
//! stream runs, names them in the watch page's link preview and shows them on `/`.
//! Without ffmpeg the node serves everything else and the thumbnail URLs say why.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::*;
use starling_thumbnail::jpeg_size;

/// 640x360, a keyframe a second, for `seconds`.
fn publish(server: &Server, seconds: u32) -> std::process::Child {
    Command::new("ffmpeg")
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
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The response to `path` once its status is `status` (within `within`).
fn wait_status(server: &Server, path: &str, status: u16, within: Duration) -> HttpResponse {
    let deadline = Instant::now() + within;
    loop {
        let r = server.http_request("GET", path, &[], None);
        if r.status == status {
            return r;
        }
        assert!(Instant::now() < deadline, "{path}: {} {}", r.status, r.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn posters_follow_the_stream_and_show_on_the_pages() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start_env("thumbs", "", &[("STARLING_THUMBNAILS_INTERVAL_SECS", "1")]);
    let mut publisher = publish(&server, 30);
    let poster = format!("/live/{CHANNEL}/thumb.jpg");
    let small = format!("/live/{CHANNEL}/thumb-small.jpg");
    let first = wait_status(&server, &poster, 200, Duration::from_secs(20));
    assert_eq!(first.header("content-type"), Some("image/jpeg"));
    let (_, jpeg) = server.http_bytes(&poster).unwrap();
    assert_eq!(jpeg_size(&jpeg), Some((640, 360)), "never upscaled to 1280");
    let (status, jpeg) = server.http_bytes(&small).unwrap();
    assert_eq!(status, 200);
    assert_eq!(jpeg_size(&jpeg), Some((320, 180)));

    // Renewed from newer segments while the stream runs (the test picture moves).
    let etag = first.header("etag").unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let renewed = loop {
        let r = server.http_request("GET", &poster, &[], None);
        if r.status == 200 && r.header("etag") != Some(etag.as_str()) {
            break r;
        }
        assert!(Instant::now() < deadline, "the poster was never renewed");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_ne!(renewed.body, first.body);
    // An unchanged poster costs a 304.
    let now = renewed.header("etag").unwrap().to_owned();
    let again = server.http_request("GET", &poster, &[("If-None-Match", &now)], None);
    // (Or, if the poster was renewed in between, the new one with another validator.)
    match again.status {
        304 => assert!(again.body.is_empty()),
        200 => assert_ne!(
            again.header("etag"),
            Some(now.as_str()),
            "a 200 for an unchanged poster"
        ),
        s => panic!("If-None-Match answered {s}"),
    }

    // The watch page's link preview names the poster, absolutely.
    let page = server.http_get(&format!("/watch/{CHANNEL}")).unwrap();
    assert!(
        page.contains(&format!(
            r#"<meta property="og:image" content="http://x/live/{CHANNEL}/thumb.jpg">"#
        )),
        "{page}"
    );
    // The home page shows the small picture (a real browser, when there is one).
    if require_browser() {
        let out = Command::new("node")
            .arg(web_dir().join("tests/watch.mjs"))
            .arg(server.http_url("/"))
            .args(["--expect-image", "img.thumb", "--timeout", "20"])
            .output()
            .unwrap();
        let v = last_json_line(&out, "watch.mjs");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["image"]["width"], 320, "{v}");
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert!(
        !server.log_text().contains("thumbnails: no picture"),
        "{}",
        server.log_text()
    );
}

#[test]
fn without_ffmpeg_the_thumbnail_urls_say_why_and_the_rest_serves() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start_env(
        "thumbs-off",
        "",
        &[("STARLING_THUMBNAILS_FFMPEG", "/nonexistent/ffmpeg")],
    );
    let mut publisher = publish(&server, 12);
    wait_status(
        &server,
        &format!("/live/{CHANNEL}/source/index.m3u8"),
        200,
        Duration::from_secs(20),
    );
    let r = server.http_request("GET", &format!("/live/{CHANNEL}/thumb.jpg"), &[], None);
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("this node makes no thumbnails") && r.body.contains("/nonexistent/ffmpeg"),
        "{}",
        r.body
    );
    assert!(server.log_text().contains("thumbnails are off"));
    let _ = publisher.kill();
    let _ = publisher.wait();
}
