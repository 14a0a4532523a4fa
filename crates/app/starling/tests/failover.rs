//! A backup encoder (`KEY?pipeline=backup`) stands by beside the live one and takes
//! over when the primary stops: when it goes silent with its connection open (SIGSTOP:
//! after the 1.5 s failover time) and when it dies (kill -9: at once). The live playlist
//! goes on through both switches: numbers continue, a discontinuity marks each seam, no
//! gap and no end while live, and ffmpeg plays the whole run back.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

const PL: &str = "/live/e2e/source/index.m3u8";

fn body(server: &Server, path: &str) -> String {
    server
        .http_get(path)
        .and_then(|t| t.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .unwrap_or_default()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn publisher(server: &Server, name: &str, seconds: u32) -> Child {
    ffmpeg_test_publish(&server.rtmp_url(name), seconds)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_backup_encoder_takes_over_a_silent_then_a_dead_primary() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("failover", "");
    let failovers = || server.metric("starling_hub_failovers_total");
    let backups = || server.log_text().matches("backup=true").count();
    let segments = |pl: &str| pl.matches("#EXTINF").count();

    let mut primary = publisher(&server, KEY, 60);
    wait_for("the primary's segments", Duration::from_secs(20), || {
        segments(&body(&server, PL)) >= 2
    });
    let mut backup = publisher(&server, &format!("{KEY}?pipeline=backup"), 60);
    wait_for("the backup", Duration::from_secs(10), || backups() == 1);
    // The backup has sent a keyframe (a 1 s GOP) and stands by; the live list says so.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(failovers(), 0.0);
    let live: serde_json::Value = serde_json::from_str(&body(&server, "/api/v1/live")).unwrap();
    assert_eq!(live["channels"][0]["backup"], true, "{live}");

    // 1. The primary freezes with its connection open: after 1.5 s of silence the
    //    backup takes over, and the server closes the frozen primary's connection.
    signal(&primary, "-STOP");
    let took = wait_for("the first failover", Duration::from_secs(8), || {
        failovers() == 1.0
    });
    // Not at once: the connection is open. Under load the primary's last frame may have
    // come a little before the signal, hence the margin below 1.5 s.
    assert!(
        took >= Duration::from_millis(1000),
        "took over after {took:?}"
    );
    signal(&primary, "-CONT");
    let _ = primary.kill();
    let _ = primary.wait();
    let pl = body(&server, PL);
    assert!(!pl.contains("#EXT-X-ENDLIST"), "{pl}");

    // 2. A new backup joins (the old primary's encoder, restarted); then the active
    //    encoder dies: the backup takes over at once.
    let mut second = publisher(&server, &format!("{KEY}?pipeline=backup"), 14);
    wait_for("the second backup", Duration::from_secs(10), || {
        backups() == 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let before = segments(&body(&server, PL));
    backup.kill().unwrap(); // SIGKILL
    let _ = backup.wait();
    let took = wait_for("the second failover", Duration::from_secs(5), || {
        failovers() == 2.0
    });
    let first_after = wait_for(
        "a segment from the new publisher",
        Duration::from_secs(8),
        || segments(&body(&server, PL)) > before + 1,
    );
    eprintln!("kill -9 to takeover {took:?}; then a segment within {first_after:?}");
    let live: serde_json::Value = serde_json::from_str(&body(&server, "/api/v1/live")).unwrap();
    assert_eq!(live["channels"][0]["backup"], false, "{live}");
    let live = body(&server, PL);
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");
    assert!(live.contains("#EXT-X-PRELOAD-HINT"), "{live}");

    // The last encoder ends; after the grace the playlist is complete.
    assert!(second.wait().unwrap().success());
    wait_for("the end of the run", Duration::from_secs(15), || {
        body(&server, PL).contains("#EXT-X-ENDLIST")
    });
    let pl = body(&server, PL);
    assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{pl}");
    assert!(!pl.contains("#EXT-X-GAP"), "{pl}");
    // ffmpeg plays the whole run, across both seams, without an error.
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(server.http_url(PL))
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffmpeg publishing a test picture over SRT (MPEG-TS) with `stream_id`.
fn srt_publisher(server: &Server, stream_id: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-f", "mpegts"])
        .arg(server.srt_url(stream_id, ""))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn over_srt_a_dead_primary_is_replaced_after_the_failover_time() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("failover-srt", "");
    let failovers = || server.metric("starling_hub_failovers_total");
    let segments = |pl: &str| pl.matches("#EXTINF").count();
    let mut primary = srt_publisher(&server, &format!("#!::m=publish,s={KEY}"), 40);
    wait_for("the primary's segments", Duration::from_secs(20), || {
        segments(&body(&server, PL)) >= 2
    });
    let mut backup = srt_publisher(
        &server,
        &format!("#!::m=publish,s={KEY},pipeline=backup"),
        40,
    );
    wait_for("the backup", Duration::from_secs(10), || {
        server.log_text().contains("backup=true")
    });
    std::thread::sleep(Duration::from_secs(2));
    // SRT has no FIN: a dead sender is noticed by its silence, after 1.5 s, well before
    // the link's own 5 s peer timeout.
    primary.kill().unwrap();
    let _ = primary.wait();
    let took = wait_for("the failover", Duration::from_secs(8), || {
        failovers() == 1.0
    });
    // Not at once, as over RTMP's closed TCP connection; under load the primary's last
    // frame may have come a little before the kill, hence the margin.
    assert!(
        took >= Duration::from_millis(300),
        "took over after {took:?}"
    );
    let before = segments(&body(&server, PL));
    wait_for("segments from the backup", Duration::from_secs(8), || {
        segments(&body(&server, PL)) > before + 1
    });
    let pl = body(&server, PL);
    assert!(!pl.contains("#EXT-X-ENDLIST"), "{pl}");
    assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{pl}");
    let _ = backup.kill();
    let _ = backup.wait();
}
