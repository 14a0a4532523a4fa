//! The real ffmpeg hls muxer pushing to the routes (`-method PUT`), fMP4 and MPEG-TS:
//! what it uploads is taken, kept in memory, written to the store, served back, and
//! every playlist in memory names only objects that exist. Skipped, with a note, where
//! /usr/bin/ffmpeg is missing.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use common::{files, start, Server};
use starling_http_put::{check::playlist_references, PushConfig, PushPath};

const FFMPEG: &str = "/usr/bin/ffmpeg";

fn have_ffmpeg() -> bool {
    if Path::new(FFMPEG).exists() {
        return true;
    }
    eprintln!("note: {FFMPEG} is missing; the ffmpeg push tests are skipped");
    false
}

/// ffmpeg's hls muxer for `seconds` of a test picture and tone, pushing to `url` with
/// `key`. Returns whether it exited cleanly, and its log.
async fn ffmpeg_push(url: &str, key: &str, seconds: u32, extra: &[&str]) -> (bool, String) {
    let headers = format!("Authorization: Bearer {key}\r\n");
    let seconds = seconds.to_string();
    let mut args: Vec<&str> = vec![
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_start_number_source",
        "epoch",
        "-method",
        "PUT",
        "-headers",
        &headers,
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = tokio::process::Command::new(FFMPEG)
        .args(&args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}/ingest/news/{path}")
}

/// The epoch number in a segment name such as `index1712345678.m4s`.
fn number(name: &str, ext: &str) -> u64 {
    name.strip_prefix("index")
        .and_then(|n| n.strip_suffix(ext))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected segment name {name:?}"))
}

/// The checks both runs share: the playlist in memory names only objects that exist,
/// every object is in the store with the bytes `get` serves, and the segments are
/// numbered from the wall clock. Returns the playlist's references.
async fn check_run(server: &Server, ext: &str, started: u64, ended: u64) -> Vec<String> {
    let ingest = &server.ingest;
    let Some(pl) = ingest.get("news", "index.m3u8").await else {
        let mut metrics = String::new();
        ingest.render_metrics(&mut metrics);
        panic!("no playlist; stored {:?}\n{metrics}", files(&server.dir));
    };
    assert_eq!(pl.content_type, "application/vnd.apple.mpegurl");
    let text = String::from_utf8(pl.body.to_vec()).unwrap();
    assert!(
        text.contains("#EXT-X-ENDLIST"),
        "the final playlist:\n{text}"
    );
    let refs: Vec<String> =
        playlist_references(&pl.body, &PushPath::parse("index.m3u8").unwrap(), 1 << 20)
            .unwrap()
            .into_iter()
            .map(|r| r.as_str().to_owned())
            .collect();
    assert!(refs.len() >= 3, "{text}");
    for r in &refs {
        assert!(
            ingest.get("news", r).await.is_some(),
            "{r} named by\n{text}"
        );
    }

    let segments: Vec<u64> = refs
        .iter()
        .filter(|r| r.ends_with(ext))
        .map(|r| number(r, ext))
        .collect();
    assert!(!segments.is_empty(), "{text}");
    for n in &segments {
        assert!(
            (started - 2..=ended + 2).contains(n),
            "segment {n} is not numbered from the clock ({started}..{ended})"
        );
    }
    assert!(
        segments.windows(2).all(|w| w[1] == w[0] + 1),
        "{segments:?}"
    );

    ingest.flushed().await;
    let stored = files(&server.dir);
    assert!(!stored.is_empty());
    for f in &stored {
        let path = f
            .strip_prefix("pushed/news/")
            .unwrap_or_else(|| panic!("{f} outside pushed/news/"));
        let on_disk = std::fs::read(server.dir.join(f)).unwrap();
        let served = ingest
            .get("news", path)
            .await
            .unwrap_or_else(|| panic!("{path} not served"));
        assert_eq!(served.body, on_disk, "{path}");
    }
    for r in &refs {
        assert!(
            stored.contains(&format!("pushed/news/{r}")),
            "{r} not in the store: {stored:?}"
        );
    }
    let mut metrics = String::new();
    ingest.render_metrics(&mut metrics);
    for refused in [
        "refused_auth",
        "refused_body",
        "refused_path",
        "too_large",
        "missing_reference",
    ] {
        assert!(
            metrics.contains(&format!("result=\"{refused}\"}} 0\n")),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("starling_put_store_failures_total 0\n"),
        "{metrics}"
    );
    refs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_pushes_fmp4_segments() {
    if !have_ffmpeg() {
        return;
    }
    let server = start("ffmpeg-fmp4", PushConfig::default()).await;
    let started = now_secs();
    let (ok, log) = ffmpeg_push(
        &url(server.addr, "index.m3u8"),
        "k-news",
        8,
        &["-hls_segment_type", "fmp4"],
    )
    .await;
    assert!(ok, "ffmpeg failed:\n{log}");
    let refs = check_run(&server, ".m4s", started, now_secs()).await;
    assert!(refs.contains(&"init.mp4".to_owned()), "{refs:?}");
    let init = server.ingest.get("news", "init.mp4").await.unwrap();
    assert_eq!(init.content_type, "video/mp4");
    // No segment was ever deleted: all of them, not only the playlist's last few, stay.
    let segments = files(&server.dir)
        .iter()
        .filter(|f| f.ends_with(".m4s"))
        .count();
    assert!(segments >= 7, "{segments} segments for 8 s");
    let live: Vec<String> = server
        .ingest
        .live_channels()
        .into_iter()
        .map(|l| l.channel)
        .collect();
    assert_eq!(live, ["news"]);
}

/// MPEG-TS segments over persistent connections, ffmpeg deleting what leaves its
/// playlist: DELETEs reach the store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_pushes_mpegts_segments_and_deletes_old_ones() {
    if !have_ffmpeg() {
        return;
    }
    let server = start("ffmpeg-ts", PushConfig::default()).await;
    let started = now_secs();
    let extra = [
        "-hls_segment_type",
        "mpegts",
        "-http_persistent",
        "1",
        "-hls_list_size",
        "3",
        "-hls_flags",
        "delete_segments",
    ];
    let (ok, log) = ffmpeg_push(&url(server.addr, "index.m3u8"), "k-news", 8, &extra).await;
    assert!(ok, "ffmpeg failed:\n{log}");
    let refs = check_run(&server, ".ts", started, now_secs()).await;
    assert!(refs.iter().all(|r| r.ends_with(".ts")), "{refs:?}");
    let mut metrics = String::new();
    server.ingest.render_metrics(&mut metrics);
    assert!(
        !metrics.contains("result=\"deleted\"} 0\n"),
        "ffmpeg deleted nothing:\n{metrics}"
    );
    // What ffmpeg deleted is gone from the store; its playlist's window (3, plus the one
    // it keeps past the window, hls_delete_threshold) is all that is left. The store's
    // deletes are written through behind the answer: waited for first (a loaded
    // machine once counted one still queued).
    server.ingest.flushed().await;
    let segments = files(&server.dir)
        .iter()
        .filter(|f| f.ends_with(".ts"))
        .count();
    assert!(
        (3..=5).contains(&segments),
        "{segments} segments stored: {:?}",
        files(&server.dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_with_a_wrong_key_stores_nothing() {
    if !have_ffmpeg() {
        return;
    }
    let server = start("ffmpeg-wrong-key", PushConfig::default()).await;
    let (_, log) = ffmpeg_push(
        &url(server.addr, "index.m3u8"),
        "k-sports",
        3,
        &["-hls_segment_type", "fmp4"],
    )
    .await;
    server.ingest.flushed().await;
    assert!(
        files(&server.dir).is_empty(),
        "stored: {:?}",
        files(&server.dir)
    );
    assert!(server.ingest.get("news", "index.m3u8").await.is_none());
    assert!(server.ingest.live_channels().is_empty());
    let mut metrics = String::new();
    server.ingest.render_metrics(&mut metrics);
    assert!(metrics.contains("result=\"stored\"} 0\n"), "{metrics}");
    assert!(
        !metrics.contains("result=\"refused_auth\"} 0\n"),
        "{metrics}"
    );
    // ffmpeg closes each upload without reading the answer, so it goes on regardless.
    drop(log);
}
