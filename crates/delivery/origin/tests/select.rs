//! Segment selection between two epoch-locked pipelines, through the hub and the origin:
//! defects injected into the primary (a short segment, a missing one, a time jump) are
//! each served from the backup's copy, byte for byte; where both copies are damaged, the
//! one served is flagged in the playlist.
//!
//! Both pipelines carry the same synthetic 30 fps H.264 source (a keyframe every 2 s,
//! on the segment grid) stamped with epoch milliseconds, as two encoders fed by one
//! camera with `clock=epoch` would. The backup is fed a little ahead of the primary so
//! that its candidates exist when the primary's segments are cut.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{http::StatusCode, middleware, Router};
use bytes::{Bytes, BytesMut};
use starling_hub::{Hub, Publisher};
use starling_media::{
    h264::AvcConfig, CodecConfig, Frame, MediaEvent, SourceClock, Stream, Track, TrackId,
};
use starling_origin::{http, LocalDirStore, Origin, OriginConfig};
use starling_packager::{Input, Output, Packager, VIDEO_RENDITION};

const FPS: usize = 30;
const GOP: usize = 60;
/// Frames of each pipeline: 11 segments of 2 s.
const FRAMES: usize = 660;
/// How far the backup is fed ahead of the primary, in frames.
const LEAD: usize = 90;

/// What the primary's pipeline does to frame `i` (`None`: lost), and its time shift.
fn primary_frame(i: usize) -> Option<i64> {
    match i {
        // Segment 1 keeps its first 10 frames only: short.
        70..120 => None,
        // Segment 4 is lost whole: missing.
        240..300 => None,
        // Segment 7's timestamps run 600 ms late (more than a part): a time jump in and
        // out of it.
        420..480 => Some(600),
        // Both pipelines lose half a second inside segment 9: a hole in both copies.
        560..575 => None,
        _ => Some(0),
    }
}

fn backup_frame(i: usize) -> Option<i64> {
    (!(560..575).contains(&i)).then_some(0)
}

fn hex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .into()
}

fn stream() -> Arc<Stream> {
    let avc = AvcConfig::from_parameter_sets(
        &[hex("6742c00dd90141fb011000000300100000030320f142a480")],
        &[hex("68cb83cb20")],
    )
    .unwrap();
    Arc::new(Stream {
        tracks: vec![Track {
            id: TrackId(1),
            timescale: 1000,
            config: CodecConfig::H264(avc),
        }],
        metadata: Vec::new(),
        clock: SourceClock::RTMP_EPOCH,
    })
}

/// Frame `i` of the source started at `start_ms` (epoch ms, on the segment grid).
fn frame(start_ms: i64, i: usize, shift_ms: i64, arrival: SystemTime) -> Frame {
    let ms = start_ms + (i as f64 * 1000.0 / FPS as f64).round() as i64 + shift_ms;
    let keyframe = i.checked_rem(GOP) == Some(0);
    let mut data = BytesMut::new();
    data.extend_from_slice(&[0, 0, 0, 5, if keyframe { 0x65 } else { 0x41 }]);
    data.extend_from_slice(&(i as u32).to_be_bytes());
    Frame {
        track: TrackId(1),
        pts: ms,
        dts: ms,
        keyframe,
        data: data.freeze(),
        arrival,
    }
}

/// Each complete video segment a packager makes of one pipeline's frames, by number.
fn segments_of(
    config: &OriginConfig,
    start_ms: i64,
    pipeline: fn(usize) -> Option<i64>,
) -> HashMap<u64, Bytes> {
    let mut p = Packager::new(config.packager());
    let mut open = BytesMut::new();
    let mut done = HashMap::new();
    let now = SystemTime::now();
    let inputs = std::iter::once(Input::Stream(stream())).chain(
        (0..FRAMES).filter_map(|i| pipeline(i).map(|s| Input::Frame(frame(start_ms, i, s, now)))),
    );
    for input in inputs {
        for out in p.push(input) {
            match out {
                Output::Part { data, .. } => open.extend_from_slice(&data),
                Output::SegmentEnd { msn, .. } => {
                    done.insert(msn, std::mem::take(&mut open).freeze());
                }
                _ => {}
            }
        }
    }
    done
}

/// The first `tfdt` of a segment (version 1: 64 bits).
fn tfdt(segment: &[u8]) -> u64 {
    let at = segment.windows(4).position(|w| w == b"tfdt").unwrap();
    u64::from_be_bytes(segment[at + 8..at + 16].try_into().unwrap())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Bytes) {
    let (status, _, body) = common::get_with(app, uri, &[]).await;
    (status, body)
}

/// The complete segments a media playlist lists: number, URI and EXTINF title.
fn listed(playlist: &str, first: u64) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut title = String::new();
    let mut n = first;
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            title = rest.split_once(',').map_or("", |(_, t)| t).to_owned();
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((n, line.to_owned(), std::mem::take(&mut title)));
            n += 1;
        }
    }
    out
}

#[tokio::test]
async fn the_backups_copies_stand_in_for_the_primarys_defects_and_damage_is_flagged() {
    let config = OriginConfig {
        segment_duration: Duration::from_secs(2),
        part_duration: Duration::from_millis(500),
        ..OriginConfig::default()
    };
    let hub = Arc::new(Hub::default());
    let dir = common::temp_dir("select");
    let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "twin");
    let app = http::router(origin.clone())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(http::guard));

    // A grid boundary 30 s ago: well within the lock's skew bound of the arrival clock.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start_ms = (now_ms - 30_000) / 2000 * 2000;

    let primary: Publisher = hub.publish("twin", false).unwrap();
    primary.send(MediaEvent::Stream(stream()));
    let backup = hub.publish_backup("twin").unwrap();
    backup.send(MediaEvent::Stream(stream()));
    let send = |p: &Publisher, i: usize, pipeline: fn(usize) -> Option<i64>| {
        if let Some(shift) = pipeline(i) {
            p.send(MediaEvent::Frame(frame(
                start_ms,
                i,
                shift,
                SystemTime::now(),
            )));
        }
    };
    for i in 0..LEAD {
        send(&backup, i, backup_frame);
    }
    for i in 0..FRAMES {
        if i + LEAD < FRAMES {
            send(&backup, i + LEAD, backup_frame);
        }
        send(&primary, i, primary_frame);
        // Paced a little, as frames arrive: the origin's task follows both feeds.
        if i.checked_rem(5) == Some(0) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let first = (start_ms / 2000) as u64;
    let wanted = first + 9;
    let deadline = Instant::now() + Duration::from_secs(10);
    let segments = loop {
        let (status, body) = get(&app, "/live/twin/source/index.m3u8").await;
        if status == StatusCode::OK {
            let text = String::from_utf8(body.to_vec()).unwrap();
            let seq: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .unwrap()
                .parse()
                .unwrap();
            let segments = listed(&text, seq);
            if segments.last().is_some_and(|s| s.0 >= wanted) {
                break segments;
            }
        }
        assert!(
            Instant::now() < deadline,
            "segments up to {wanted} never listed: {status} {}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let a = segments_of(&config, start_ms, primary_frame);
    let b = segments_of(&config, start_ms, backup_frame);
    let served = |n: u64| {
        let (_, uri, title) = segments.iter().find(|s| s.0 == n).unwrap().clone();
        let app = app.clone();
        async move {
            let (status, body) = get(&app, &format!("/live/twin/{VIDEO_RENDITION}/{uri}")).await;
            assert_eq!(status, StatusCode::OK, "segment {n}");
            (body, title)
        }
    };
    // Short (1), missing (4) and jumped into (7): the backup's, each time, with the
    // segments that the primary began with a jump after them (2, 5).
    for k in [1, 2, 4, 5, 7] {
        let n = first + k;
        let (body, title) = served(n).await;
        assert!(body == b[&n], "segment {k} is the backup's copy");
        assert!(a.get(&n) != Some(&body), "segment {k} is not the primary's");
        assert!(title.is_empty(), "segment {k} is clean: {title}");
    }
    // Untouched segments past the first injection are the primary's own (their
    // fragment sequence numbers tell the two pipelines apart); so is the one where
    // its clock came back from the glitch (8): a declared discontinuity, back on the
    // grid, at the same media time as the backup's.
    for k in [3, 6, 8] {
        let n = first + k;
        let (body, title) = served(n).await;
        assert!(body == a[&n], "segment {k} is the primary's");
        assert_eq!(tfdt(&body), tfdt(&b[&n]), "segment {k}'s media time");
        assert!(title.is_empty());
    }
    // Both copies have a hole: the primary's (the tie) is served, flagged.
    let n = first + 9;
    let (body, title) = served(n).await;
    assert!(body == a[&n], "segment 9 is the primary's");
    assert_eq!(title, "defects=hole");
    drop((primary, backup));
}
