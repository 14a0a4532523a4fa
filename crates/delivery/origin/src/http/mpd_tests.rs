//! The MPD built from snapshots made by hand: periods, anchors, timelines.

use std::time::{Duration, SystemTime};

use super::*;

const TS: u32 = 90_000;

fn t(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000) + Duration::from_secs_f64(secs)
}

fn info(name: &'static str, kind: TrackKind, timescale: u32) -> RenditionInfo {
    RenditionInfo {
        name,
        kind,
        codec: if kind == TrackKind::Video {
            "avc1.64001f".into()
        } else {
            "mp4a.40.2".into()
        },
        timescale,
        width: (kind == TrackKind::Video).then_some(1280),
        height: (kind == TrackKind::Video).then_some(720),
        frame_rate: (kind == TrackKind::Video).then_some(30.0),
        sample_rate: (kind == TrackKind::Audio).then_some(48_000),
        channels: (kind == TrackKind::Audio).then_some(2),
    }
}

/// Segment `msn` of session 1, 2 s long, on the grid, arriving in real time from `t(0)`.
fn seg(msn: u64, timescale: u32) -> SnapSegment {
    SnapSegment {
        session: 1,
        msn,
        init: 0,
        boundary: false,
        program_date_time: Some(t(2.0 * msn as f64)),
        media_start: Some(msn * 2 * u64::from(timescale)),
        duration: 2.0,
        complete: true,
    }
}

fn snapshot(video: Vec<SnapSegment>, audio: Vec<SnapSegment>, anchors: Vec<Anchor>) -> Snapshot {
    let rendition = |name, kind, ts, segments| SnapRendition {
        info: info(name, kind, ts),
        inits: vec![1],
        bandwidth: 3_000_000,
        segments,
    };
    Snapshot {
        ended: false,
        low_latency: false,
        dvr_window: Duration::from_secs(60),
        periods: Periods {
            availability_start: anchors.first().map(|a| a.wall),
            anchors,
        },
        renditions: vec![
            rendition("source", TrackKind::Video, TS, video),
            rendition("audio", TrackKind::Audio, 48_000, audio),
        ],
    }
}

fn anchor(msn: u64, wall: f64) -> Anchor {
    Anchor::of(msn, Some(t(wall)), Some(msn * 2 * u64::from(TS)), TS).unwrap()
}

fn config() -> crate::OriginConfig {
    crate::OriginConfig::default()
}

fn render(s: &Snapshot) -> String {
    build(
        s,
        &config(),
        t(100.0),
        Some("http://h/live/time".into()),
        None,
    )
    .render()
    .unwrap()
}

/// (period id, start attribute) of every period.
fn periods(xml: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("Period"))
        .map(|n| {
            (
                n.attribute("id").unwrap().to_owned(),
                n.attribute("start").unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn one_session_is_one_period_that_stays_put_as_the_window_slides() {
    let anchors = vec![anchor(0, 0.0)];
    let early = snapshot(
        (0..5).map(|n| seg(n, TS)).collect(),
        (0..5).map(|n| seg(n, 48_000)).collect(),
        anchors.clone(),
    );
    // Later: segments 0-2 left the window, and the audio's window lags by one.
    let late = snapshot(
        (3..9).map(|n| seg(n, TS)).collect(),
        (2..9).map(|n| seg(n, 48_000)).collect(),
        anchors,
    );
    let (a, b) = (render(&early), render(&late));
    assert_eq!(periods(&a), [("p0".to_owned(), "PT0S".to_owned())], "{a}");
    assert_eq!(periods(&a), periods(&b), "{b}");
    // Each adaptation set numbers from its own first segment; times are the tfdt.
    assert!(
        b.contains(r#"startNumber="3" presentationTimeOffset="0""#),
        "{b}"
    );
    assert!(b.contains(r#"<S t="540000" d="180000" r="5"/>"#), "{b}");
    assert!(
        b.contains(r#"startNumber="2" presentationTimeOffset="0""#),
        "{b}"
    );
    assert!(b.contains(r#"<S t="192000" d="96000" r="6"/>"#), "{b}");
    assert!(
        b.contains(r#"type="dynamic""#) && b.contains("http://h/live/time"),
        "{b}"
    );
    assert!(
        b.contains(r#"media="source/0000000000000001/$Number$.m4s""#),
        "{b}"
    );
    assert!(
        b.contains(r#"initialization="source/0000000000000001/init-0.mp4""#),
        "{b}"
    );
    assert!(b.contains(r#"frameRate="30""#) && b.contains(r#"audioSamplingRate="48000""#));
}

#[test]
fn a_republish_starts_a_period_where_its_first_frame_arrived() {
    // Session 1: segments 0-2 from t=0; session 2 (a reconnect 10 s later) from segment
    // 3, whose media time continues on the grid at 6 s while the wall clock says 16 s.
    let mut video: Vec<SnapSegment> = (0..3).map(|n| seg(n, TS)).collect();
    for n in 3..6 {
        let mut s = seg(n, TS);
        s.session = 2;
        s.boundary = n == 3;
        s.program_date_time = Some(t(10.0 + 2.0 * n as f64));
        video.push(s);
    }
    let anchors = vec![anchor(0, 0.0), anchor(3, 16.0)];
    let mut s = snapshot(video, Vec::new(), anchors);
    s.renditions.pop();
    let xml = render(&s);
    assert_eq!(
        periods(&xml),
        [
            ("p0".to_owned(), "PT0S".to_owned()),
            ("p3".to_owned(), "PT16S".to_owned())
        ],
        "{xml}"
    );
    assert!(
        xml.contains(r#"media="source/0000000000000002/$Number$.m4s""#),
        "{xml}"
    );
    assert!(xml.contains(r#"presentationTimeOffset="540000""#), "{xml}");
    // Once the first session left the window, the second period keeps its place.
    let mut later = s;
    later.renditions[0].segments.drain(..3);
    later.periods.anchors.remove(0);
    assert_eq!(
        periods(&render(&later)),
        [("p3".to_owned(), "PT16S".to_owned())]
    );
    // Ended: static, the periods back to back from 0, the whole duration.
    later.ended = true;
    let xml = render(&later);
    assert!(
        xml.contains(r#"type="static""#) && xml.contains(r#"mediaPresentationDuration="PT6S""#),
        "{xml}"
    );
    assert_eq!(periods(&xml), [("p3".to_owned(), "PT0S".to_owned())]);
    assert!(!xml.contains("UTCTiming"), "{xml}");
}

#[test]
fn a_missing_number_splits_the_period_and_the_timeline_never_overlaps() {
    let mut video: Vec<SnapSegment> = (0..6).filter(|&n| n != 3).map(|n| seg(n, TS)).collect();
    // Segment 1 says it starts 10 ticks before segment 0 ends.
    video[1].media_start = Some(2 * u64::from(TS) - 10);
    let mut s = snapshot(video, Vec::new(), vec![anchor(0, 0.0)]);
    s.renditions.pop();
    let xml = render(&s);
    let ids: Vec<String> = periods(&xml).into_iter().map(|p| p.0).collect();
    assert_eq!(ids, ["p0", "p4"], "{xml}");
    // Made from segment 4 itself (8 s after the first), as no anchor was noted there.
    assert_eq!(periods(&xml)[1].1, "PT8S");
    // Segment 1 starts where 0 ends, shortened by the overlap; 2 after a 10-tick hole.
    let timeline = r#"<S t="0" d="180000"/>
          <S d="179990"/>
          <S t="360000" d="180000"/>"#;
    assert!(xml.contains(timeline), "{xml}");
}

#[test]
fn low_latency_lists_the_segment_in_progress_to_its_grid_end() {
    let mut video: Vec<SnapSegment> = (0..3).map(|n| seg(n, TS)).collect();
    let mut open = seg(3, TS);
    open.complete = false;
    open.duration = 0.667;
    video.push(open);
    let mut s = snapshot(video, Vec::new(), vec![anchor(0, 0.0)]);
    s.renditions.pop();
    s.low_latency = true;
    let xml = render(&s);
    // Four segments of 2 s: the fourth is predicted as long as the third.
    assert!(xml.contains(r#"<S t="0" d="180000" r="3"/>"#), "{xml}");
    assert!(xml.contains(r#"availabilityTimeOffset="1.666""#), "{xml}");
    assert!(xml.contains(r#"availabilityTimeComplete="false""#), "{xml}");
    assert!(xml.contains("<Latency target=\"2000\"/>"), "{xml}");
    // Past its grid end (a long GOP): what it has plus one part.
    s.renditions[0].segments[3].duration = 2.5;
    let xml = render(&s);
    let expected = format!(r#"<S d="{}"/>"#, 225_000 + 30_060);
    assert!(xml.contains(&expected), "{expected} in {xml}");
    // Not low latency: complete segments only.
    s.low_latency = false;
    assert!(render(&s).contains(r#"<S t="0" d="180000" r="2"/>"#));
    // The first segment, in progress: to its end on the grid (2 s).
    let mut first = seg(0, TS);
    first.complete = false;
    first.duration = 0.5;
    first.media_start = Some(9_000);
    s.renditions[0].segments = vec![first];
    s.low_latency = true;
    let xml = render(&s);
    assert!(xml.contains(r#"<S t="9000" d="171000"/>"#), "{xml}");
}

#[test]
fn frame_rates() {
    assert_eq!(frame_rate(30.0), Some((30, 1)));
    assert_eq!(frame_rate(29.97), Some((30000, 1001)));
    assert_eq!(frame_rate(59.94), Some((60000, 1001)));
    assert_eq!(frame_rate(12.5), Some((12500, 1000)));
    assert_eq!(frame_rate(f64::NAN), None);
    assert_eq!(frame_rate(0.0), None);
}

#[test]
fn utc_timing_url_follows_the_request() {
    let mut h = HeaderMap::new();
    assert_eq!(utc_timing_url(&h), None);
    h.insert(header::HOST, HeaderValue::from_static("cdn.example:8443"));
    assert_eq!(
        utc_timing_url(&h).as_deref(),
        Some("http://cdn.example:8443/live/time")
    );
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    assert_eq!(
        utc_timing_url(&h).as_deref(),
        Some("https://cdn.example:8443/live/time")
    );
    h.insert(header::HOST, HeaderValue::from_static("a\"b"));
    assert_eq!(utc_timing_url(&h), None);
}

#[test]
fn audio_only_and_video_only_channels_have_one_adaptation_set() {
    let mut audio_only = snapshot(
        Vec::new(),
        (0..3).map(|n| seg(n, 48_000)).collect(),
        vec![anchor(0, 0.0)],
    );
    audio_only.renditions.remove(0);
    let xml = render(&audio_only);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sets: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("AdaptationSet"))
        .map(|n| n.attribute("contentType").unwrap())
        .collect();
    assert_eq!(sets, ["audio"], "{xml}");
    assert!(xml.contains(r#"<S t="0" d="96000" r="2"/>"#), "{xml}");

    let mut video_only = snapshot(
        (0..3).map(|n| seg(n, TS)).collect(),
        Vec::new(),
        vec![anchor(0, 0.0)],
    );
    video_only.renditions.pop();
    let xml = render(&video_only);
    assert_eq!(xml.matches("<AdaptationSet").count(), 1, "{xml}");
    assert!(xml.contains(r#"contentType="video""#), "{xml}");
    // A rendition that has no segment in a period is left out of it, not written empty.
    let mut late_audio = snapshot(
        (0..3).map(|n| seg(n, TS)).collect(),
        Vec::new(),
        vec![anchor(0, 0.0)],
    );
    late_audio.renditions[1].segments.clear();
    assert_eq!(render(&late_audio).matches("<AdaptationSet").count(), 1);
}

#[test]
fn a_segment_swallowed_by_the_clamp_keeps_its_number() {
    // Segment 1 claims to lie wholly inside segment 0: it keeps an entry (one tick), so
    // segment 2 is still the third entry, number 2.
    let mut video: Vec<SnapSegment> = (0..3).map(|n| seg(n, TS)).collect();
    video[1].media_start = Some(10);
    video[1].duration = 0.5;
    let mut s = snapshot(video, Vec::new(), vec![anchor(0, 0.0)]);
    s.renditions.pop();
    let xml = render(&s);
    let timeline = r#"<S t="0" d="180000"/>
          <S d="1"/>
          <S t="360000" d="180000"/>"#;
    assert!(xml.contains(timeline), "{xml}");
}
