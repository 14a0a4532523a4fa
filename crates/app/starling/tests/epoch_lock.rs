//! Epoch locking end to end. One ffmpeg encodes a source whose PTS are epoch time and
//! sends it to two relays (`-c copy`, as two contribution pipelines of one event); the
//! relays publish over SRT with `clock=epoch`, seconds apart.
//! - Into two channels: segment `n` of each is the same media time (same `tfdt`, same
//!   duration), whichever relay started first.
//! - Into one channel, the second as its backup: kill -9 the primary's relay and the
//!   backup takes over with numbers that go on along the grid, no gap, and at most one
//!   seam (the hole from the primary's death to the backup's next keyframe); hls.js
//!   plays across it and ffmpeg plays the whole run back.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    net::UdpSocket,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;

const TWIN: &str = "twin";
const TWIN_KEY: &str = "twin-secret-key-2";

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The encoder: `seconds` of 320x240 25 fps H.264 (a keyframe every 2 s) and AAC, its
/// timestamps offset to the wall clock at start (epoch seconds), as MPEG-TS to each of
/// `ports` on loopback.
fn epoch_source(ports: &[u16], seconds: u32) -> Child {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let outputs: Vec<String> = ports
        .iter()
        .map(|p| format!("[f=mpegts:onfail=ignore]udp://127.0.0.1:{p}?pkt_size=1316"))
        .collect();
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-re", "-f", "lavfi", "-i", "sine=sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .args(["-c:a", "aac", "-output_ts_offset", &format!("{now:.3}")])
        .args(["-f", "tee", &outputs.join("|")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A pipeline: reads the source from `port` and publishes it unchanged (timestamps
/// included) over SRT with `stream_id`.
fn relay(server: &Server, port: u16, stream_id: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(format!("udp://127.0.0.1:{port}?timeout=20000000"))
        .args(["-c", "copy", "-copyts", "-f", "mpegts"])
        .arg(server.srt_url(stream_id, ""))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn body(server: &Server, path: &str) -> String {
    server
        .http_get(path)
        .and_then(|t| t.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .unwrap_or_default()
}

/// The complete segments of a media playlist: number → (URI, EXTINF).
fn listed(playlist: &str) -> BTreeMap<u64, (String, f64)> {
    let mut out = BTreeMap::new();
    let mut msn: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut extinf = None;
    for line in playlist.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.split(',').next().unwrap().parse::<f64>().unwrap());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.insert(msn, (line.to_owned(), extinf.take().unwrap()));
            msn += 1;
        }
    }
    out
}

/// The first `tfdt` (base media decode time) in a CMAF segment.
fn tfdt(segment: &[u8]) -> u64 {
    let at = segment
        .windows(4)
        .position(|w| w == b"tfdt")
        .expect("a tfdt box");
    let version = segment[at + 4];
    let v = &segment[at + 8..];
    if version == 1 {
        u64::from_be_bytes(v[..8].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(v[..4].try_into().unwrap()))
    }
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn two_pipelines_started_seconds_apart_cut_the_same_segments() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start(
        "epoch-twins",
        &format!("\n[[channels]]\nname = \"{TWIN}\"\nstream_key = \"{TWIN_KEY}\"\n"),
    );
    server.secret(TWIN_KEY);
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let source = epoch_source(&[pa, pb], 40);
    let a = relay(&server, pa, &format!("#!::m=publish,s={KEY},clock=epoch"));
    std::thread::sleep(Duration::from_secs(3));
    let b = relay(
        &server,
        pb,
        &format!("#!::m=publish,s={TWIN_KEY},clock=epoch"),
    );
    let (pl_a, pl_b) = (
        format!("/live/{CHANNEL}/source/index.m3u8"),
        format!("/live/{TWIN}/source/index.m3u8"),
    );
    wait_for("six segments in each", Duration::from_secs(60), || {
        listed(&body(&server, &pl_b)).len() >= 6
    });
    let (la, lb) = (listed(&body(&server, &pl_a)), listed(&body(&server, &pl_b)));
    // Numbers on the epoch grid: 2 s slots since 1970 (not 0, 1, 2... per channel).
    let now_slot = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 2;
    let newest = *lb.keys().last().unwrap();
    assert!(
        newest.abs_diff(now_slot) < 30,
        "segment {newest} is not near the epoch slot {now_slot}"
    );
    // B's first segment may have started mid-GOP; every other one of B's has its
    // twin in A: the same number, the same media time, the same duration.
    let mut compared = 0;
    for (n, (uri_b, dur_b)) in lb.iter().skip(1) {
        let Some((uri_a, dur_a)) = la.get(n) else {
            continue;
        };
        let get = |channel: &str, uri: &str| {
            let (status, bytes) = server
                .http_bytes(&format!("/live/{channel}/source/{uri}"))
                .unwrap();
            assert_eq!(status, 200, "{channel} {uri}");
            bytes
        };
        let (sa, sb) = (get(CHANNEL, uri_a), get(TWIN, uri_b));
        assert_eq!(tfdt(&sa), tfdt(&sb), "segment {n}: the same media time");
        assert!(
            (dur_a - dur_b).abs() < 0.002,
            "segment {n}: {dur_a} vs {dur_b}"
        );
        // Media time is epoch time: this segment started within a minute of now.
        let start_secs = tfdt(&sa) / 90_000;
        assert!(
            start_secs.abs_diff(now_slot * 2) < 90,
            "segment {n} at {start_secs} s"
        );
        compared += 1;
    }
    assert!(
        compared >= 4,
        "only {compared} segments in common\n{la:?}\n{lb:?}"
    );
    for c in [a, b, source] {
        stop(c);
    }
}

#[test]
fn a_locked_backup_replaces_a_killed_primary_on_the_same_grid() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("epoch-failover", "");
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let source = epoch_source(&[pa, pb], 60);
    let mut primary = relay(&server, pa, &format!("#!::m=publish,s={KEY},clock=epoch"));
    std::thread::sleep(Duration::from_secs(3));
    let backup = relay(
        &server,
        pb,
        &format!("#!::m=publish,s={KEY},pipeline=backup,clock=epoch"),
    );
    let pl = format!("/live/{CHANNEL}/source/index.m3u8");
    wait_for("the backup", Duration::from_secs(20), || {
        server.log_text().contains("backup=true")
    });
    wait_for("five segments", Duration::from_secs(40), || {
        listed(&body(&server, &pl)).len() >= 5
    });
    // hls.js plays the channel in Chromium across the switch.
    let viewer = require_browser().then(|| {
        let url = server.http_url(&format!("/watch/{CHANNEL}"));
        std::thread::spawn(move || {
            watch(&[
                &url,
                "--seconds",
                "16",
                // Not a latency test: the switch costs a player that plays parts the
                // primary's hole, and this machine runs two relays and a browser.
                "--max-latency",
                "30",
                "--timeout",
                "90",
            ])
        })
    });
    if viewer.is_some() {
        // Chromium starts and hls.js buffers a few seconds behind the live edge; it
        // plays 16 s from then, so the switch falls inside what it plays.
        std::thread::sleep(Duration::from_secs(8));
    }
    // kill -9 the primary pipeline: SRT has no FIN, the hub notices its silence.
    primary.kill().unwrap();
    let killed = Instant::now();
    let _ = primary.wait();
    let selected = |p: &str| {
        server.metric(&format!(
            "starling_segment_selections_total{{pipeline=\"{p}\"}}"
        ))
    };
    wait_for("the failover", Duration::from_secs(10), || {
        server.metric("starling_hub_failovers_total") == 1.0
    });
    // The figure of docs/performance.md: pipeline A's death to the first segment
    // served from B (the one A died in, whole).
    wait_for(
        "a segment chosen from the backup",
        Duration::from_secs(20),
        || selected("backup") >= 1.0,
    );
    eprintln!(
        "pipeline A killed -> first segment served from B: {} ms",
        killed.elapsed().as_millis()
    );
    let at_failover = *listed(&body(&server, &pl)).keys().last().unwrap();
    wait_for(
        "three segments from the backup",
        Duration::from_secs(20),
        || {
            listed(&body(&server, &pl))
                .keys()
                .last()
                .is_some_and(|n| *n >= at_failover + 3)
        },
    );
    let text = body(&server, &pl);
    // The primary died mid-segment: the backup starts at its next keyframe, and that
    // hole is the one seam (until segment selection fills it from the backup). The
    // numbers go on along the grid: no gap, nothing renumbered.
    assert!(
        text.matches("#EXT-X-DISCONTINUITY\n").count() <= 1,
        "{text}"
    );
    assert!(!text.contains("#EXT-X-GAP"), "{text}");
    // Every number listed once, in order, none missing (BTreeMap keys from the
    // media sequence on): and the URIs name those numbers.
    for (n, (uri, _)) in listed(&text) {
        assert!(uri.ends_with(&format!("/{n}.m4s")), "{n}: {uri}\n{text}");
    }
    // The segment the primary died in is served whole, from the backup's candidate:
    // every segment but the newest lasts its full 2 s (keyframes every 2 s), none is
    // cut short where the primary's frames stopped. Video and audio each chose once.
    assert_eq!((selected("backup"), selected("primary")), (2.0, 0.0));
    let durations: Vec<f64> = listed(&text).values().map(|(_, d)| *d).collect();
    for d in &durations[..durations.len() - 1] {
        assert!((d - 2.0).abs() < 0.05, "a segment of {d} s\n{text}");
    }
    if let Some(viewer) = viewer {
        let v = viewer.join().unwrap();
        assert!(v["advanced"].as_f64().unwrap() >= 16.0, "{v}");
        let fatal = v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["fatal"] == true)
            .count();
        assert_eq!(fatal, 0, "hls.js: {v}");
        eprintln!("hls.js across the switch: {v}");
    }
    // The run plays back across the switch without an error.
    stop(backup);
    stop(source);
    wait_for("the end of the run", Duration::from_secs(20), || {
        body(&server, &pl).contains("#EXT-X-ENDLIST")
    });
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(server.http_url(&pl))
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// RTMP: ffmpeg stamps epoch milliseconds (`-output_ts_offset`), which its FLV muxer
/// keeps to 31 bits; `?clock=epoch` numbers the channel on the epoch grid, with each
/// segment dated by its media time.
#[test]
fn rtmp_epoch_timestamps_number_segments_on_the_grid() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("epoch-rtmp", "");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25")
        .args([
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ])
        .args(["-output_ts_offset", &format!("{now:.3}"), "-f", "flv"])
        .arg(server.rtmp_url(&format!("{KEY}?clock=epoch")))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pl = format!("/live/{CHANNEL}/source/index.m3u8");
    wait_for("three segments", Duration::from_secs(30), || {
        listed(&body(&server, &pl)).len() >= 3
    });
    let text = body(&server, &pl);
    let segments = listed(&text);
    let slot = (now / 2.0) as u64;
    let first = *segments.keys().next().unwrap();
    assert!(
        first.abs_diff(slot) < 30,
        "segment {first} vs slot {slot}\n{text}"
    );
    // Dated by media time: each date is the previous one plus its EXTINF.
    let dates: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .map(|d| {
            let t = chrono_free_seconds(d);
            assert!((t - now).abs() < 120.0, "{d} vs now");
            t
        })
        .collect();
    let durations: Vec<f64> = segments.values().map(|(_, d)| *d).collect();
    for i in 1..dates.len().min(durations.len()) {
        let step = dates[i] - dates[i - 1];
        assert!(
            (step - durations[i - 1]).abs() < 0.002,
            "{step} vs {}\n{text}",
            durations[i - 1]
        );
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// Seconds since the epoch of an `EXT-X-PROGRAM-DATE-TIME` value
/// (`2026-12-06T14:05:36.907Z`).
fn chrono_free_seconds(date: &str) -> f64 {
    let (day, time) = date.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = day.split('-').map(|v| v.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t: Vec<f64> = time.split(':').map(|v| v.parse().unwrap()).collect();
    days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}
