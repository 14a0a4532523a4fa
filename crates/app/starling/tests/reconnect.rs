//! The live path across an encoder's reconnect and across restarts of the node, with the
//! real binary, ffmpeg, ffprobe and (where present) Chromium with hls.js.
//!
//! - Reconnect: ffmpeg publishes, stops, publishes again within the reconnect grace: the
//!   live playlist never says ENDLIST while live, keeps its preload hint, marks the seam
//!   with a discontinuity and continues the numbering; hls.js keeps playing across it;
//!   after the grace the whole run plays back as VOD.
//! - Restart: every media URL is fetched before and after a graceful stop, a `kill -9`
//!   and restarts: no URL ever returns two different bodies, and the earlier sessions'
//!   objects are still served.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    process::Command,
    time::{Duration, Instant},
};

use common::*;

const PL: &str = "/live/e2e/source/index.m3u8";

/// Polls `path` until `ok` holds for its body (200 only).
fn until(
    server: &Server,
    path: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = server.http_get(path).map(|t| body_of(&t).to_owned());
        if let Some(b) = &body {
            if ok(b) {
                return b.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "never {what} at {path}:\n{}",
            body.unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The body of a raw HTTP/1.1 response text.
fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Media URIs a playlist names (segments, parts, map), not the preload hint (it may not
/// exist yet) nor other playlists.
fn media_uris(pl: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in pl.lines() {
        if line.starts_with("#EXT-X-RENDITION-REPORT") || line.starts_with("#EXT-X-PRELOAD-HINT") {
            continue;
        }
        if let Some(rest) = line.split("URI=\"").nth(1) {
            out.push(rest.split('"').next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push(line.to_owned());
        }
    }
    out
}

/// Segment numbers listed, in order.
fn segment_numbers(pl: &str) -> Vec<u64> {
    pl.lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .map(|l| {
            let file = l.rsplit('/').next().unwrap();
            file.trim_end_matches(".m4s").parse().unwrap()
        })
        .collect()
}

fn segment_sessions(pl: &str) -> Vec<String> {
    let mut v: Vec<String> = pl
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .filter_map(|l| l.split_once('/').map(|(s, _)| s.to_owned()))
        .collect();
    v.dedup();
    v
}

/// The session the preload hint points into.
fn hint_session(pl: &str) -> Option<String> {
    let uri = pl
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?;
    Some(uri.split_once('/')?.0.to_owned())
}

fn watch_page(server: &Server, seconds: u32) -> std::process::Child {
    Command::new("node")
        .arg(web_dir().join("tests/watch.mjs"))
        .arg(server.http_url(&format!("/watch/{CHANNEL}")))
        .args(["--seconds", &seconds.to_string()])
        // Latency right after a seam includes the reconnect gap; what matters here is
        // that playback goes on.
        .args(["--max-latency", "12", "--timeout", "90"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node")
}

#[test]
fn an_encoder_reconnect_within_the_grace_continues_the_live_playlist() {
    if !require_ffmpeg() {
        return;
    }
    let browser = require_browser();
    let mut server = Server::start("reconnect", "\n[origin]\nreconnect_grace_ms = 6000\n");
    let url = server.rtmp_url(KEY);

    let mut first = ffmpeg_test_publish(&url, 7).spawn().unwrap();
    until(&server, PL, "two segments", Duration::from_secs(20), |pl| {
        pl.matches("#EXTINF").count() >= 2
    });
    // hls.js watches from here on: it must play through the drop and the reconnect (it
    // joins a few seconds in; 5 s of the first publish are left, 12 s of the second).
    let watcher = browser.then(|| watch_page(&server, 10));
    assert!(first.wait().unwrap().success());

    // The encoder is gone; within the grace the playlist is still live, its preload hint
    // naming the session a republish will get.
    let gap = until(&server, PL, "in the grace", Duration::from_secs(5), |pl| {
        hint_session(pl).is_some_and(|h| !segment_sessions(pl).contains(&h))
    });
    assert!(!gap.contains("#EXT-X-ENDLIST"), "{gap}");
    let promised = hint_session(&gap).unwrap();
    let first_session = segment_sessions(&gap);
    assert_eq!(first_session.len(), 1, "{gap}");
    std::thread::sleep(Duration::from_millis(1000));

    // The same encoder, same settings, reconnects.
    let mut second = ffmpeg_test_publish(&url, 12).spawn().unwrap();
    let live = until(&server, PL, "live again", Duration::from_secs(20), |pl| {
        segment_sessions(pl).len() == 2
    });
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");
    assert!(live.contains("#EXT-X-DISCONTINUITY\n"), "{live}");
    let nums = segment_numbers(&live);
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "{nums:?}\n{live}"
    );
    let new_session = segment_sessions(&live).pop().unwrap();
    assert_ne!(first_session[0], new_session);
    assert_eq!(new_session, promised);
    let hint = live
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap();
    assert!(hint.starts_with(&new_session), "{hint}");
    // A player that joins now gets a live playlist (no ENDLIST, hold-back and a hint:
    // it starts at the live edge), and it plays.
    let probe = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-read_intervals",
            "%+2",
            "-select_streams",
            "v:0",
        ])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(server.http_url(&format!("/live/{CHANNEL}/index.m3u8"))));
    let packets = String::from_utf8_lossy(&probe.stdout);
    assert!(packets.lines().count() >= 25, "{packets}");
    // Every object listed, from both sessions, is served.
    for uri in media_uris(&live) {
        let (status, body) = server
            .http_bytes(&format!("/live/{CHANNEL}/source/{uri}"))
            .unwrap();
        assert_eq!(status, 200, "{uri}");
        assert!(!body.is_empty());
    }

    if let Some(w) = watcher {
        let out = w.wait_with_output().unwrap();
        let v = last_json_line(&out, "watch.mjs");
        assert_eq!(v["ok"], true, "hls.js across the seam: {v}");
    }
    assert!(second.wait().unwrap().success());

    // After the grace: ENDLIST, and both publishes play back as one VOD.
    let vod = until(&server, PL, "ENDLIST", Duration::from_secs(20), |pl| {
        pl.contains("#EXT-X-ENDLIST")
    });
    assert!(!vod.contains("PRELOAD-HINT"), "{vod}");
    let text = video_frames_read(&server, PL);
    assert!(
        text.contains("nb_read_frames=475"),
        "7 s + 12 s at 25 fps through one playlist:\n{text}\n{vod}"
    );
    assert!(!server.log_text().contains(KEY), "stream key in the log");
    server.stop();
}

/// Fetches every media object the playlists list now and records its body; a URL seen
/// before must come back with the same bytes.
fn fetch_all(server: &Server, seen: &mut HashMap<String, Vec<u8>>) -> usize {
    let mut fetched = 0;
    for rendition in ["source", "audio"] {
        let Some(raw) = server.http_get(&format!("/live/{CHANNEL}/{rendition}/index.m3u8")) else {
            continue;
        };
        for uri in media_uris(body_of(&raw)) {
            let path = format!("/live/{CHANNEL}/{rendition}/{uri}");
            let (status, body) = server.http_bytes(&path).unwrap();
            if status != 200 {
                continue;
            }
            if let Some(was) = seen.get(&path) {
                assert!(was == &body, "{path} served two different bodies");
            }
            seen.insert(path, body);
            fetched += 1;
        }
    }
    fetched
}

/// Fetches every URL seen so far again: the same bytes, or (parts, which live in memory
/// only) not found; never other bytes.
fn refetch(server: &Server, seen: &HashMap<String, Vec<u8>>) -> usize {
    let mut same = 0;
    for (path, was) in seen {
        let (status, body) = server.http_bytes(path).unwrap();
        let is_part = path.rsplit('/').next().unwrap().matches('.').count() == 2;
        match status {
            200 => {
                assert!(was == &body, "{path} served two different bodies");
                same += 1;
            }
            404 | 410 if is_part => {}
            s => panic!("{path}: {s} (stored objects must survive restarts)"),
        }
    }
    same
}

#[test]
fn urls_never_name_two_different_bodies_across_restarts_and_kill_9() {
    if !require_ffmpeg() {
        return;
    }
    // Recording: every run's objects stay in the store (without it a run's objects are
    // deleted when the next run begins: 404 then, never other bytes; the origin's
    // `restore` tests cover that).
    let mut server = Server::start_recording("restart", "");
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();

    // Run 1, then a graceful stop while live: the last segments are flushed and stored.
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 30)
        .spawn()
        .unwrap();
    until(
        &server,
        PL,
        "three segments",
        Duration::from_secs(20),
        // Live (after a restart the channel's last run is listed first, ended).
        |pl| !pl.contains("#EXT-X-ENDLIST") && pl.matches("#EXTINF").count() >= 3,
    );
    assert!(fetch_all(&server, &mut seen) > 5);
    assert!(server.stop().success());
    let _ = publisher.kill();
    let _ = publisher.wait();
    let log = server.log_text();
    assert!(
        log.contains("every published segment is stored"),
        "graceful stop did not flush:\n{log}"
    );

    // Run 2 after a restart: old URLs give the same bytes (from the store), new ones are new.
    server.restart();
    assert!(refetch(&server, &seen) > 3);
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 30)
        .spawn()
        .unwrap();
    until(
        &server,
        PL,
        "three segments",
        Duration::from_secs(20),
        // Live (after a restart the channel's last run is listed first, ended).
        |pl| !pl.contains("#EXT-X-ENDLIST") && pl.matches("#EXTINF").count() >= 3,
    );
    let before = seen.len();
    fetch_all(&server, &mut seen);
    assert!(seen.len() > before, "the new session's URLs are new");
    // Let the write-through catch up with what was fetched, then crash.
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();

    // Run 3 after kill -9: stored objects of both earlier runs are served unchanged.
    // (The segment being written at the kill is lost; its parts were never immutable
    // in the store and now answer 404, never other bytes.)
    server.restart();
    let same = refetch(&server, &seen);
    assert!(same > 6, "only {same} objects survived");
    // The run that was live at the kill comes back from the store as VOD: closed with
    // ENDLIST, its stored segments listed under their URLs, and a player reads it.
    let vod = until(
        &server,
        PL,
        "the killed run as VOD",
        Duration::from_secs(10),
        |pl| pl.contains("#EXT-X-ENDLIST"),
    );
    let listed: Vec<String> = media_uris(&vod)
        .into_iter()
        .filter(|u| u.ends_with(".m4s"))
        .map(|u| format!("/live/{CHANNEL}/source/{u}"))
        .collect();
    assert!(listed.len() >= 3, "{vod}");
    assert!(
        listed
            .iter()
            .all(|u| server.http_bytes(u).unwrap().0 == 200),
        "every listed segment is served:\n{vod}"
    );
    let text = video_frames_read(&server, PL);
    // One line per program ffprobe sees in the multivariant playlist.
    let n: u64 = text
        .lines()
        .next()
        .unwrap_or("")
        .strip_prefix("nb_read_frames=")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(n >= 25 * 4, "the restored run plays: {text}\n{vod}");
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 6)
        .spawn()
        .unwrap();
    until(
        &server,
        PL,
        "a live segment",
        Duration::from_secs(20),
        |pl| !pl.contains("#EXT-X-ENDLIST") && pl.contains("#EXTINF"),
    );
    fetch_all(&server, &mut seen);
    refetch(&server, &seen);
    assert!(publisher.wait().unwrap().success());
    assert!(!server.log_text().contains(KEY), "stream key in the log");
    server.stop();
}
