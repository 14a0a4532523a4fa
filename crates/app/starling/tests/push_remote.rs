//! Two real nodes: A takes RTMP from ffmpeg and packages it, and pushes it over HTTP PUT
//! (`[push]`, the key from an environment variable) to B, which serves it at
//! `/live/CHANNEL/...`. ffprobe decodes B's stream. Then B is killed with SIGKILL and
//! started again on the same port and data directory: the push resumes and B serves the
//! live edge again within seconds. A's log gives the push latency per segment (complete
//! on A → 2xx from B).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::*;

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body of a 200 answer to `path`.
fn body(server: &Server, path: &str) -> Option<String> {
    let (status, raw) = server.http_raw(path)?;
    (status == 200).then(|| {
        raw.split_once("\r\n\r\n")
            .map_or(raw.clone(), |(_, b)| b.to_owned())
    })
}

/// The number of the newest segment a media playlist lists (`…/N.m4s` on A,
/// `…-N.m4s` on B).
fn newest(playlist: &str) -> Option<u64> {
    let last = playlist
        .lines()
        .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))?;
    let stem = last.trim_end_matches(".m4s");
    stem.rsplit(['/', '-']).next()?.parse().ok()
}

/// Each segment's push latency (ms) logged by A so far.
fn latencies(a: &Server) -> Vec<f64> {
    a.log_text()
        .lines()
        .filter(|l| l.contains("push: segment delivered"))
        .filter_map(|l| {
            l.split("latency_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[test]
fn a_node_pushes_to_a_remote_origin_that_survives_kill_9() {
    if !require_ffmpeg() {
        return;
    }
    // B on a port of our choosing, kept across its restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut b = Server::start_env("push-b", "", &[("STARLING_SERVER_HTTP_LISTEN", &listen)]);
    let a = Server::start_env(
        "push-a",
        &format!(
            "[origin]\nsegment_duration_ms = 1000\n\n[push]\nurl = \"http://{listen}\"\nwindow_segments = 6\n\n[push.keys]\n{CHANNEL} = {{ env = \"E2E_PUSH_KEY\" }}\n"
        ),
        &[
            ("E2E_PUSH_KEY", KEY),
            ("RUST_LOG", "info,starling_push=debug"),
        ],
    );
    // PUSH_MEASURE_SECS=N keeps B up N s longer before the kill, for more latency
    // samples (docs/push.md, Measured).
    let measure: u32 = std::env::var("PUSH_MEASURE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut publisher = ffmpeg_test_publish(&a.rtmp_url(KEY), 40 + measure)
        .spawn()
        .unwrap();
    let mv = format!("/live/{CHANNEL}/index.m3u8");
    wait_for(
        "B's pushed multivariant playlist",
        Duration::from_secs(30),
        || body(&b, &mv).is_some_and(|t| t.contains("index.m3u8")),
    );
    let media = body(&b, &mv)
        .unwrap()
        .lines()
        .find(|l| l.ends_with("index.m3u8"))
        .unwrap()
        .to_owned();
    let media = format!("/live/{CHANNEL}/{media}");
    wait_for("three segments on B", Duration::from_secs(20), || {
        body(&b, &media).is_some_and(|t| t.matches("#EXTINF").count() >= 3)
    });
    let pl = body(&b, &media).unwrap();
    assert!(!pl.contains("#EXT-X-PART"), "whole segments only:\n{pl}");
    // ffprobe decodes frames from B.
    let out = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-read_intervals", "%+2"])
            .args(["-select_streams", "v:0", "-show_entries"])
            .args(["stream=codec_name,nb_read_frames", "-of", "csv=p=0"])
            .arg(b.http_url(&mv)),
    );
    // One line per program and per stream: the first is enough.
    let probed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let frames: u64 = probed
        .split(',')
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(probed.starts_with("h264") && frames >= 25, "{probed}");

    std::thread::sleep(Duration::from_secs(measure.into()));
    // Push latency per segment, complete on A to B's 2xx, from A's log (B up all along).
    let mut lat = latencies(&a);
    lat.sort_by(f64::total_cmp);
    assert!(lat.len() >= 3, "{} latencies", lat.len());
    eprintln!(
        "push latency over {} segments: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // kill -9 B, then start it again on the same port and data directory.
    b.kill9();
    std::thread::sleep(Duration::from_secs(2));
    b.restart();
    assert_eq!(b.http.port(), port);
    let back = Instant::now();
    let a_media = media.clone();
    wait_for("B at the live edge again", Duration::from_secs(10), || {
        let here = body(&a, &a_media).as_deref().and_then(newest);
        let there = body(&b, &media).as_deref().and_then(newest);
        matches!((here, there), (Some(h), Some(t)) if t + 1 >= h && t > 0)
    });
    eprintln!(
        "B served the live edge {:?} after its restart",
        back.elapsed()
    );
    // B's stream still decodes.
    let out = common::run(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-read_intervals", "%+1"])
            .args([
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=nb_read_frames",
            ])
            .args(["-of", "csv=p=0"])
            .arg(b.http_url(&mv)),
    );
    let frames: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert!(frames > 0, "{out:?}");

    assert!(a.metric("starling_push_objects_total{kind=\"segment\"}") >= 5.0);
    let _ = publisher.kill();
    let _ = publisher.wait();
}
