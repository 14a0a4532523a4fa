//! Clocks that lie, end to end: our own RTMP client publishes the committed H.264/AAC
//! FLV fixture, looped to 24 s of media, with the faults real encoders and relays send:
//! a 32-bit timestamp wrap, a backward jump, a forward jump of minutes, a 10 s audio
//! gap, and negative composition offsets throughout. The real `starling serve` must keep
//! its playlists valid (its debug linter runs on every one it renders; the test lints
//! them too), TARGETDURATION constant, audio and video numbered alike, and ffmpeg must
//! play the result through.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::*;
use starling_flv::file::{FlvReader, TagType};
use starling_rtmp_server::client::RtmpClient;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../formats/flv/tests/fixtures/avc_aac.flv"
);
/// The fixture's length (50 frames at 25 fps), the period of the loop.
const LOOP_MS: i64 = 2000;
const LOOPS: i64 = 12;
/// The source clock starts 3 s before 2^32 ms: it wraps at media time 3 s.
const START: i64 = (1 << 32) - 3000;
/// Composition offsets are lowered by this much: B-frames then present before they decode.
const CTS_SHIFT: i32 = 80;

/// What the faulty source's clock says at media time `t` (ms).
fn source_clock(t: i64) -> u32 {
    let jump = match t {
        ..6000 => 0,
        6000..10_000 => -30_000, // back 30 s
        _ => -30_000 + 300_000,  // then forward 5 minutes
    };
    (START + t + jump).rem_euclid(1 << 32) as u32
}

/// The audio is missing for 10 s.
fn audio_gap(t: i64) -> bool {
    (12_000..22_000).contains(&t)
}

/// Every (timestamp, type, body) of the fixture.
fn tags() -> Vec<(i64, TagType, Bytes)> {
    let mut r = FlvReader::new();
    r.push(&std::fs::read(FIXTURE).unwrap());
    let mut out = Vec::new();
    while let Some(tag) = r.next_tag().unwrap() {
        out.push((i64::from(tag.timestamp), tag.tag_type, tag.body));
    }
    out
}

/// A legacy AVC video tag with its composition time lowered by [`CTS_SHIFT`].
fn negative_cts(body: &Bytes) -> Bytes {
    let mut b = body.to_vec();
    let cts = i32::from_be_bytes([0, b[2], b[3], b[4]]);
    let cts = ((cts << 8) >> 8) - CTS_SHIFT; // sign-extend the si24
    b[2..5].copy_from_slice(&cts.to_be_bytes()[1..]);
    Bytes::from(b)
}

/// One media playlist entry.
#[derive(Debug, Clone)]
struct Entry {
    msn: u64,
    duration: f64,
    discontinuity: bool,
    gap: bool,
}

struct Playlist {
    target: u32,
    entries: Vec<Entry>,
    ended: bool,
}

fn parse(text: &str) -> Playlist {
    let value = |tag: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag}:\n{text}"))
            .to_owned()
    };
    let target = value("#EXT-X-TARGETDURATION:").parse().unwrap();
    let mut msn: u64 = value("#EXT-X-MEDIA-SEQUENCE:").parse().unwrap();
    let mut entries = Vec::new();
    let (mut duration, mut discontinuity, mut gap) = (0.0, false, false);
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            // (A title may follow the comma: `defects=…` on a flagged segment.)
            duration = d.split(',').next().unwrap().parse().unwrap();
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            entries.push(Entry {
                msn,
                duration,
                discontinuity: std::mem::take(&mut discontinuity),
                gap: std::mem::take(&mut gap),
            });
            msn += 1;
        }
    }
    Playlist {
        target,
        entries,
        ended: text.contains("#EXT-X-ENDLIST"),
    }
}

/// The playlist body, linted.
fn playlist(server: &Server, path: &str) -> Option<String> {
    let raw = server.http_get(path)?;
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    if let Err(e) = starling_hls::lint::lint(&body) {
        panic!("{path} is not a valid playlist: {e}\n{body}");
    }
    Some(body)
}

#[test]
fn faulty_source_clocks_keep_playlists_valid_and_playable() {
    if !require_ffmpeg() {
        return;
    }
    let server = Server::start("timestamp-faults", "");
    let tags = tags();
    let is_header = |kind: TagType, body: &Bytes| {
        matches!(kind, TagType::Video | TagType::Audio) && body.get(1) == Some(&0)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut targets = BTreeSet::new();
    let watch = |targets: &mut BTreeSet<u32>| {
        for rendition in ["source", "audio"] {
            if let Some(text) =
                playlist(&server, &format!("/live/{CHANNEL}/{rendition}/index.m3u8"))
            {
                targets.insert(parse(&text).target);
            }
        }
    };
    rt.block_on(async {
        let mut publisher = RtmpClient::connect(server.rtmp, "live").await.unwrap();
        publisher.publish(KEY).await.unwrap();
        for (_, kind, body) in tags.iter().filter(|(_, k, b)| is_header(*k, b)) {
            match kind {
                TagType::Video => publisher.queue_video(source_clock(0), body.clone()),
                _ => publisher.queue_audio(source_clock(0), body.clone()),
            }
        }
        let started = tokio::time::Instant::now();
        for n in 0..LOOPS {
            for (ts, kind, body) in tags.iter().filter(|(_, k, b)| !is_header(*k, b)) {
                let t = n * LOOP_MS + ts;
                match kind {
                    TagType::Video => publisher.queue_video(source_clock(t), negative_cts(body)),
                    TagType::Audio if !audio_gap(t) => {
                        publisher.queue_audio(source_clock(t), body.clone())
                    }
                    _ => {}
                }
            }
            publisher.flush().await.unwrap();
            publisher.drain_input().await.unwrap();
            // Twice real time: quick, and the origin's playlists are watched as it goes.
            let due = started + Duration::from_millis(((n + 1) * LOOP_MS / 2) as u64);
            tokio::time::sleep_until(due).await;
            watch(&mut targets);
        }
        publisher.close().await.unwrap();
    });
    server.wait_log("RTMP publish ended", Duration::from_secs(10));
    // The run ends after the (test-short) reconnect grace: the playlists get ENDLIST.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (video, audio) = loop {
        watch(&mut targets);
        let get = |r: &str| {
            parse(&playlist(&server, &format!("/live/{CHANNEL}/{r}/index.m3u8")).unwrap())
        };
        let (v, a) = (get("source"), get("audio"));
        if v.ended && a.ended {
            break (v, a);
        }
        assert!(Instant::now() < deadline, "the run never ended");
        std::thread::sleep(Duration::from_millis(200));
    };
    playlist(&server, &format!("/live/{CHANNEL}/index.m3u8")).unwrap();

    // One TARGETDURATION for the whole run, and every segment fits it.
    assert_eq!(targets, BTreeSet::from([3]), "TARGETDURATION changed");
    for e in video.entries.iter().chain(&audio.entries) {
        assert!(e.duration.round() <= 3.0, "{e:?}");
    }
    // The same numbers in both renditions; the audio gap is listed as gaps.
    let numbers = |p: &Playlist| p.entries.iter().map(|e| e.msn).collect::<Vec<_>>();
    assert_eq!(numbers(&video), numbers(&audio));
    let gaps = audio.entries.iter().filter(|e| e.gap).count();
    assert!(
        (3..=5).contains(&gaps),
        "{gaps} gap segments for a 10 s gap"
    );
    assert!(video.entries.iter().all(|e| !e.gap));
    // Two jumps, two discontinuities, on the same segment in both; the wrap is none.
    let discontinuities = |p: &Playlist| {
        p.entries
            .iter()
            .filter(|e| e.discontinuity)
            .map(|e| e.msn)
            .collect::<Vec<_>>()
    };
    assert_eq!(discontinuities(&video).len(), 2, "{:?}", video.entries);
    assert_eq!(discontinuities(&video), discontinuities(&audio));
    // No tiny or huge durations: the media runs 24 s in both renditions.
    let total = |p: &Playlist| p.entries.iter().map(|e| e.duration).sum::<f64>();
    let secs = (LOOPS * LOOP_MS) as f64 / 1000.0;
    assert!(
        (total(&video) - secs).abs() < 0.5,
        "video {}",
        total(&video)
    );
    // The audio lacks (about) its 10 s gap, partly inside listed segments.
    let audio_secs = total(&audio);
    assert!(
        audio_secs > secs - 10.5 && audio_secs < secs + 0.5,
        "audio {audio_secs}: {:?}",
        audio.entries
    );
    // Away from the gap, each audio segment lasts what the video's of that number does.
    for (i, (v, a)) in video.entries.iter().zip(&audio.entries).enumerate() {
        let near_gap = audio.entries[i.saturating_sub(1)..(i + 2).min(audio.entries.len())]
            .iter()
            .any(|e| e.gap);
        if !near_gap && i + 1 < video.entries.len() {
            assert!((v.duration - a.duration).abs() < 0.05, "{v:?} vs {a:?}");
        }
    }

    // Defects as the packager flagged them: the audio segment where the gap begins is
    // short, the one where the audio comes back (with no discontinuity) jumps; the
    // video's jumps are discontinuities, not defects, and nothing lacks a keyframe or
    // has a hole.
    let log = server.log_text();
    let flagged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("origin: segment cut with defects"))
        .collect();
    assert!(
        !flagged.is_empty() && flagged.iter().all(|l| l.contains("rendition=\"audio\"")),
        "{flagged:#?}"
    );
    let defects =
        |d: &str| server.metric(&format!("starling_segment_defects_total{{defect=\"{d}\"}}"));
    assert_eq!(
        (defects("short"), defects("jump")),
        (1.0, 1.0),
        "{flagged:#?}"
    );
    assert_eq!(
        (defects("no-irap"), defects("hole")),
        (0.0, 0.0),
        "{flagged:#?}"
    );
    // ffmpeg plays it through: every frame decodes, in order.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostats", "-i"])
        .arg(server.http_url(&format!("/live/{CHANNEL}/index.m3u8")))
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "null", "-"])
        .args(["-progress", "pipe:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(
        !stderr.contains("error while decoding") && !stderr.contains("Invalid data"),
        "{stderr}"
    );
    let progress = String::from_utf8_lossy(&out.stdout);
    let frames: i64 = progress
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("frame="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(frames, LOOPS * 50, "decoded frames; ffmpeg said: {stderr}");
    // DASH, from the same objects: a period per discontinuity and at the audio gap (a
    // `$Number$` timeline cannot skip a number). ffmpeg's DASH demuxer reads one period
    // only, so GStreamer's dashdemux2 plays it, to the end: every frame decodes.
    if have("gst-launch-1.0") {
        let url = server.http_url(&format!("/live/{CHANNEL}/manifest.mpd"));
        let (frames, _) = gst_frames(&gst_decode(&url, None, 120).output().unwrap());
        assert_eq!(
            frames as i64,
            LOOPS * 50,
            "decoded frames (DASH, GStreamer)"
        );
    }
    // The audio decodes too (its gap segments are skipped, not errors).
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostats", "-i"])
        .arg(server.http_url(&format!("/live/{CHANNEL}/audio/index.m3u8")))
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg (audio): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
