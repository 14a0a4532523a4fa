//! Packager output applied to a channel by hand: the playlist of a rendition that skipped
//! numbers, and the fixed target duration.

use std::sync::Arc;

use bytes::Bytes;
use starling_hls as hls;
use starling_media::TrackKind;
use starling_packager::{Output, RenditionInfo};

use super::*;
use crate::{
    http::{build_playlist, held_segment, Held, Listing},
    LocalDirStore,
};

fn info(name: &'static str, kind: TrackKind) -> RenditionInfo {
    RenditionInfo {
        name,
        kind,
        codec: "x".to_owned(),
        timescale: 1000,
        width: None,
        height: None,
        frame_rate: None,
        sample_rate: None,
        channels: None,
    }
}

/// One 0.3 s part, then its segment's end.
fn segment(rendition: &'static str, msn: u64, duration: f64) -> [Output; 2] {
    let now = SystemTime::now();
    [
        Output::Part {
            rendition,
            msn,
            index: 0,
            duration,
            independent: true,
            // Timescale 1000, segments back to back.
            start: (msn as f64 * duration * 1000.0).round() as u64,
            data: Bytes::from_static(b"part"),
            first_arrival: now,
            discontinuity: false,
        },
        Output::SegmentEnd {
            rendition,
            msn,
            duration,
            program_date_time: now,
            discontinuity: false,
            defects: Default::default(),
        },
    ]
}

#[tokio::test]
async fn skipped_audio_numbers_are_listed_as_gaps() {
    let dir = std::env::temp_dir().join(format!("starling-gaps-{}", std::process::id()));
    let origin = Origin::new(OriginConfig::default(), Arc::new(LocalDirStore::new(&dir)));
    let ch = Arc::new(Channel::new(
        "gaps",
        crate::ChannelSettings::defaults(origin.config()),
    ));
    let mut outputs = vec![
        Output::Init {
            rendition: info("source", TrackKind::Video),
            init: Bytes::from_static(b"init"),
        },
        Output::Init {
            rendition: info("audio", TrackKind::Audio),
            init: Bytes::from_static(b"init"),
        },
    ];
    for msn in 0..6 {
        outputs.extend(segment("source", msn, 0.3));
        // The audio was silent for segments 2 and 3.
        if !(2..4).contains(&msn) {
            outputs.extend(segment("audio", msn, 0.3));
        }
    }
    origin.apply(&ch, outputs);
    let st = lock(&ch.inner);
    let audio = st.rendition("audio").unwrap();
    assert_eq!(audio.target_duration, 3, "fixed by the configuration");
    for msn in 0..6 {
        assert_eq!(audio.segment(msn).map(|s| s.msn), Some(msn));
    }
    assert!(matches!(
        held_segment(&st, "audio", st.session, 2),
        Held::Gap
    ));
    assert!(matches!(
        held_segment(&st, "audio", st.session, 4),
        Held::Complete(Some(_))
    ));
    let (_, listing) = Listing::capture(&st, "audio");
    let text = build_playlist(&listing.unwrap(), origin.config()).render();
    hls::lint::lint(&text).unwrap();
    assert_eq!(text.matches("#EXT-X-GAP").count(), 2, "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0"), "{text}");
    let uris: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .collect();
    assert_eq!(uris.len(), 6, "{text}");
    for (n, uri) in uris.iter().enumerate() {
        assert!(uri.ends_with(&format!("/{n}.m4s")), "{uri}");
    }
    drop(st);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A seam the packager declares on a segment's parts (a clock jump, a locked takeover
/// with a hole) is in the playlist from the segment's first part on: a tag is never
/// added before a segment already listed.
#[tokio::test]
async fn a_seam_on_the_parts_is_tagged_before_the_segment_completes() {
    let dir = std::env::temp_dir().join(format!("starling-seam-{}", std::process::id()));
    let origin = Origin::new(OriginConfig::default(), Arc::new(LocalDirStore::new(&dir)));
    let ch = Arc::new(Channel::new(
        "seam",
        crate::ChannelSettings::defaults(origin.config()),
    ));
    let mut outputs = vec![Output::Init {
        rendition: info("source", TrackKind::Video),
        init: Bytes::from_static(b"init"),
    }];
    outputs.extend(segment("source", 0, 0.3));
    let [mut part, _] = segment("source", 1, 0.3);
    if let Output::Part { discontinuity, .. } = &mut part {
        *discontinuity = true;
    }
    outputs.push(part);
    origin.apply(&ch, outputs);
    let st = lock(&ch.inner);
    let r = st.rendition("source").unwrap();
    let open = r.segments.back().unwrap();
    assert!(
        !open.complete && open.discontinuity,
        "tagged while in progress"
    );
    let (_, listing) = Listing::capture(&st, "source");
    let text = build_playlist(&listing.unwrap(), origin.config()).render();
    let tag = text.find("#EXT-X-DISCONTINUITY\n").expect(&text);
    let first_part = text.find("/1.0.m4s").expect(&text);
    assert!(tag < first_part, "{text}");
    drop(st);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Distinct bytes for part `index` of segment `msn`, so a wrong slice cannot pass.
fn part_bytes(msn: u64, index: u32) -> Bytes {
    (0..1000u32)
        .map(|i| (msn as u32 * 31 + index * 7 + i) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn get(app: &axum::Router, uri: &str) -> (axum::http::StatusCode, Bytes) {
    use tower::ServiceExt;
    let req = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body)
}

/// With no memory window at all, a channel holds only the segment being built and the
/// newest complete one until the store has it, however long it runs; everything older
/// is served from the store, byte for byte, parts included, and so are the parts a
/// playlist still lists (three target durations) of segments that left memory.
#[tokio::test]
async fn memory_holds_the_live_edge_and_older_bytes_come_from_the_store() {
    let dir = std::env::temp_dir().join(format!("starling-window-{}", std::process::id()));
    let config = OriginConfig {
        segment_duration: Duration::from_secs(1),
        part_duration: Duration::from_millis(250),
        memory_window: Duration::ZERO,
        ..OriginConfig::default()
    };
    let origin = Origin::new(config, Arc::new(LocalDirStore::new(&dir)));
    let ch = Arc::new(Channel::new(
        "window",
        crate::ChannelSettings::defaults(origin.config()),
    ));
    lock(&origin.channels).insert("window".to_owned(), ch.clone());
    lock(&ch.inner).session = 1;
    lock(&ch.inner).run.push(1);
    origin.apply(
        &ch,
        vec![Output::Init {
            rendition: info("source", TrackKind::Video),
            init: Bytes::from_static(b"init"),
        }],
    );
    let segments = 20u64;
    let mut held_max = 0;
    for msn in 0..segments {
        let now = SystemTime::now();
        let mut outputs: Vec<Output> = (0..4)
            .map(|index| Output::Part {
                rendition: "source",
                msn,
                index,
                duration: 0.25,
                independent: index == 0,
                start: msn * 1000 + u64::from(index) * 250,
                data: part_bytes(msn, index),
                first_arrival: now,
                discontinuity: false,
            })
            .collect();
        outputs.push(Output::SegmentEnd {
            rendition: "source",
            msn,
            duration: 1.0,
            program_date_time: now,
            discontinuity: false,
            defects: Default::default(),
        });
        origin.apply(&ch, outputs);
        // The write-through settles before the next segment, as it does at 2 Mbit/s.
        assert!(origin.drain(Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let st = lock(&ch.inner);
        let r = st.rendition("source").unwrap();
        let held: usize = r
            .segments
            .iter()
            .map(|s| s.data.as_ref().map_or(0, Bytes::len))
            .sum();
        held_max = held_max.max(held);
    }
    // The newest segment (4000 bytes) waits for its write; the previous one has left.
    assert_eq!(held_max, 4000, "bytes held in memory");
    {
        let st = lock(&ch.inner);
        let r = st.rendition("source").unwrap();
        let in_memory: Vec<u64> = r
            .segments
            .iter()
            .filter(|s| s.data.is_some())
            .map(|s| s.msn)
            .collect();
        assert_eq!(in_memory, vec![segments - 1]);
        assert_eq!(r.segments.len() as u64, segments, "all still listed (DVR)");
    }
    // 1 s segments have a target duration of 2 s (the packager's 1.5 x D, rounded up):
    // the playlist lists parts for the newest segment and the six before it.
    let app = crate::http::router::<()>(origin.clone());
    let session = session_name(1);
    let (_, playlist) = get(&app, "/live/window/source/index.m3u8").await;
    let playlist = String::from_utf8(playlist.to_vec()).unwrap();
    let listed = format!("{session}/{}.1.m4s", segments - 7);
    assert!(playlist.contains(&listed), "{listed} listed: {playlist}");
    assert!(!playlist.contains(&format!("{session}/{}.1.m4s", segments - 8)));
    for msn in [0, segments - 8, segments - 7, segments - 1] {
        let whole: Vec<u8> = (0..4).flat_map(|i| part_bytes(msn, i)).collect();
        let (status, body) = get(&app, &format!("/live/window/source/{session}/{msn}.m4s")).await;
        assert_eq!(status, axum::http::StatusCode::OK, "segment {msn}");
        assert_eq!(body.as_ref(), whole.as_slice(), "segment {msn}");
        // Parts: from memory at the live edge, from the stored segment for the rest of
        // those listed and just past them, and gone (410) three target durations after
        // no playlist lists them (but the first, whose entry stays for the segment's
        // independence).
        for index in 0..4 {
            let uri = format!("/live/window/source/{session}/{msn}.{index}.m4s");
            let (status, body) = get(&app, &uri).await;
            if msn == 0 && index > 0 {
                assert_eq!(status, axum::http::StatusCode::GONE, "{uri}");
            } else {
                assert_eq!(status, axum::http::StatusCode::OK, "{uri}");
                assert_eq!(body, part_bytes(msn, index), "{uri}");
            }
        }
    }
    // Old segments keep no per-part entries: what a channel holds per segment of a long
    // DVR window is its listing alone.
    let st = lock(&ch.inner);
    let r = st.rendition("source").unwrap();
    let with_parts = r.segments.iter().filter(|s| s.parts.len() > 1).count();
    assert!(with_parts <= 13, "{with_parts} segments keep part entries");
    assert!(r
        .segments
        .iter()
        .all(|s| s.parts.len() == 1 || s.parts.len() == 4));
    drop(st);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A segment that is not in the store yet stays in memory, however old.
#[tokio::test]
async fn unstored_segments_never_leave_memory() {
    let dir = std::env::temp_dir().join(format!("starling-unstored-{}", std::process::id()));
    let config = OriginConfig {
        segment_duration: Duration::from_secs(1),
        memory_window: Duration::ZERO,
        ..OriginConfig::default()
    };
    let origin = Origin::new(config, Arc::new(LocalDirStore::new(&dir)));
    let ch = Arc::new(Channel::new(
        "unstored",
        crate::ChannelSettings::defaults(origin.config()),
    ));
    let mut r = Rendition::new(info("source", TrackKind::Video), Vec::new(), 1);
    let long_ago = SystemTime::now() - Duration::from_secs(600);
    for msn in 0..10 {
        r.segments.push_back(Segment {
            complete: true,
            duration: 1.0,
            data: Some(Bytes::from_static(b"seg")),
            // Even numbers are stored; odd ones are still being written.
            stored: msn % 2 == 0,
            completed_at: Some(long_ago),
            ..Segment::new(1, msn, 0)
        });
    }
    let settings = crate::ChannelSettings::defaults(origin.config());
    let _ = origin.evict(&ch.name, settings, &mut r, SystemTime::now());
    let in_memory: Vec<u64> = r
        .segments
        .iter()
        .filter(|s| s.data.is_some())
        .map(|s| s.msn)
        .collect();
    // The odd ones (unstored); with no memory window, no stored one stays.
    assert_eq!(in_memory, vec![1, 3, 5, 7, 9]);
    let _ = std::fs::remove_dir_all(&dir);
}
