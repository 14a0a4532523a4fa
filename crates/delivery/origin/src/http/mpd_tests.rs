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
        base: "",
    }
}

/// A transcoded rung, `height` lines high.
fn rung(
    name: &'static str,
    bandwidth: u64,
    height: u32,
    segments: Vec<SnapSegment>,
) -> SnapRendition {
    let mut info = info(name, TrackKind::Video, TS);
    info.width = Some(height * 16 / 9);
    info.height = Some(height);
    SnapRendition {
        info,
        inits: vec![1],
        bandwidth,
        segments,
    }
}

/// Each representation as (adaptation set id, its id, startNumber, its timeline's `S`
/// elements as `t`, `d`, `r`), in document order, with every period's.
type Listed = (String, String, String, Vec<(Option<u64>, u64, u64)>);

fn representations(xml: &str) -> Vec<Listed> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("Representation"))
        .map(|r| {
            let set = r.parent_element().unwrap();
            let template = r
                .children()
                .find(|n| n.has_tag_name("SegmentTemplate"))
                .unwrap_or_else(|| {
                    panic!("{} has no template:\n{xml}", r.attribute("id").unwrap())
                });
            let s = template
                .descendants()
                .filter(|n| n.has_tag_name("S"))
                .map(|n| {
                    let num = |a| n.attribute(a).map(|v: &str| v.parse::<u64>().unwrap());
                    (num("t"), num("d").unwrap(), num("r").unwrap_or(0))
                })
                .collect();
            (
                set.attribute("id").unwrap().to_owned(),
                r.attribute("id").unwrap().to_owned(),
                template.attribute("startNumber").unwrap().to_owned(),
                s,
            )
        })
        .collect()
}

fn listed(set: &str, id: &str, start: u64, s: &[(Option<u64>, u64, u64)]) -> Listed {
    (set.into(), id.into(), start.to_string(), s.to_vec())
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

#[test]
fn the_video_renditions_are_one_ladder_from_the_top() {
    let mut s = snapshot(
        (0..4).map(|n| seg(n, TS)).collect(),
        (0..4).map(|n| seg(n, 48_000)).collect(),
        vec![anchor(0, 0.0)],
    );
    // The rungs in the order a transcoder might announce them; one as costly as the source.
    s.renditions.insert(
        0,
        rung("480p", 1_200_000, 480, (0..4).map(|n| seg(n, TS)).collect()),
    );
    s.renditions.push(rung(
        "720p",
        3_000_000,
        720,
        (0..4).map(|n| seg(n, TS)).collect(),
    ));
    s.renditions.push(rung(
        "1080p",
        6_000_000,
        1080,
        (0..4).map(|n| seg(n, TS)).collect(),
    ));
    let xml = render(&s);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sets: Vec<(&str, &str)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("AdaptationSet"))
        .map(|n| {
            (
                n.attribute("id").unwrap(),
                n.attribute("contentType").unwrap(),
            )
        })
        .collect();
    assert_eq!(sets, [("0", "video"), ("1", "audio")], "{xml}");
    let video = doc
        .descendants()
        .find(|n| n.has_tag_name("AdaptationSet"))
        .unwrap();
    assert_eq!(video.attribute("maxHeight"), Some("1080"), "{xml}");
    assert_eq!(video.attribute("segmentAlignment"), Some("true"));
    // Highest bandwidth first; the source before the rung of the same bandwidth. Each
    // has its own template, with its own URLs.
    let whole = [(Some(0), 180_000, 3)];
    assert_eq!(
        representations(&xml),
        [
            listed("0", "1080p", 0, &whole),
            listed("0", "source", 0, &whole),
            listed("0", "720p", 0, &whole),
            listed("0", "480p", 0, &whole),
            listed("1", "audio", 0, &[(Some(0), 96_000, 3)]),
        ],
        "{xml}"
    );
    assert!(
        xml.contains(r#"media="480p/0000000000000001/$Number$.m4s""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"initialization="1080p/0000000000000001/init-0.mp4""#),
        "{xml}"
    );
    assert_eq!(periods(&xml), [("p0".to_owned(), "PT0S".to_owned())]);
}

#[test]
fn a_rung_that_joins_late_starts_later_in_the_same_period() {
    let mut s = snapshot(
        (0..6).map(|n| seg(n, TS)).collect(),
        (0..6).map(|n| seg(n, 48_000)).collect(),
        vec![anchor(0, 0.0)],
    );
    s.renditions.push(rung(
        "720p",
        1_500_000,
        720,
        (3..6).map(|n| seg(n, TS)).collect(),
    ));
    let xml = render(&s);
    assert_eq!(
        periods(&xml),
        [("p0".to_owned(), "PT0S".to_owned())],
        "{xml}"
    );
    assert_eq!(
        representations(&xml),
        [
            listed("0", "source", 0, &[(Some(0), 180_000, 5)]),
            listed("0", "720p", 3, &[(Some(540_000), 180_000, 2)]),
            listed("1", "audio", 0, &[(Some(0), 96_000, 5)]),
        ],
        "{xml}"
    );
    // Both in the period's media time: the same offset.
    assert_eq!(
        xml.matches(r#"presentationTimeOffset="0""#).count(),
        3,
        "{xml}"
    );
    // A rung with nothing in a period is left out of it.
    s.renditions[2].segments.clear();
    let xml = render(&s);
    assert!(!xml.contains(r#"id="720p""#), "{xml}");
    assert_eq!(xml.matches("<Representation").count(), 2, "{xml}");
}

#[test]
fn a_rung_that_restarts_lists_from_its_restart_and_cuts_no_period() {
    // The rung lost segments 3 and 4 (its encoder restarted): 5 comes with a
    // discontinuity. The source and the audio go on unbroken.
    let mut restarted: Vec<SnapSegment> = (0..8)
        .filter(|n| !(3..5).contains(n))
        .map(|n| seg(n, TS))
        .collect();
    restarted[3].boundary = true;
    let mut s = snapshot(
        (0..8).map(|n| seg(n, TS)).collect(),
        (0..8).map(|n| seg(n, 48_000)).collect(),
        vec![anchor(0, 0.0)],
    );
    s.renditions.push(rung("720p", 1_500_000, 720, restarted));
    let xml = render(&s);
    assert_eq!(
        periods(&xml),
        [("p0".to_owned(), "PT0S".to_owned())],
        "{xml}"
    );
    let reps = representations(&xml);
    assert_eq!(
        reps[1],
        listed("0", "720p", 5, &[(Some(900_000), 180_000, 2)]),
        "{xml}"
    );
    assert_eq!(reps[0], listed("0", "source", 0, &[(Some(0), 180_000, 7)]));

    // With a new init section from 5 on: the rung's template names it.
    let r = &mut s.renditions[2];
    r.inits.push(1);
    for x in r.segments.iter_mut().filter(|x| x.msn >= 5) {
        x.init = 1;
    }
    let xml = render(&s);
    assert_eq!(periods(&xml).len(), 1, "{xml}");
    assert!(
        xml.contains(r#"initialization="720p/0000000000000001/init-1.mp4""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"initialization="source/0000000000000001/init-0.mp4""#),
        "{xml}"
    );
    // A missing number alone (no discontinuity) is a break too.
    let r = &mut s.renditions[2];
    r.segments.retain(|x| x.msn != 6);
    for x in &mut r.segments {
        x.boundary = false;
        x.init = 0;
    }
    let reps = representations(&render(&s));
    assert_eq!(
        reps[1],
        listed("0", "720p", 7, &[(Some(1_260_000), 180_000, 0)])
    );

    // The source's own break still cuts a period, and the rung follows it.
    let mut xs: Vec<SnapSegment> = (0..8).map(|n| seg(n, TS)).collect();
    xs[6].boundary = true;
    s.renditions[0].segments = xs;
    let xml = render(&s);
    let ids: Vec<String> = periods(&xml).into_iter().map(|p| p.0).collect();
    assert_eq!(ids, ["p0", "p6"], "{xml}");
    let rungs: Vec<Listed> = representations(&xml)
        .into_iter()
        .filter(|r| r.1 == "720p")
        .collect();
    assert_eq!(
        rungs,
        [
            listed("0", "720p", 5, &[(Some(900_000), 180_000, 0)]),
            listed("0", "720p", 7, &[(Some(1_260_000), 180_000, 0)]),
        ],
        "{xml}"
    );
}

#[test]
fn without_a_source_every_rendition_cuts_periods() {
    let mut s = snapshot(
        Vec::new(),
        (0..6).map(|n| seg(n, 48_000)).collect(),
        vec![anchor(0, 0.0)],
    );
    let mut xs: Vec<SnapSegment> = (0..6).map(|n| seg(n, TS)).collect();
    xs[4].boundary = true;
    s.renditions[0] = rung("720p", 1_500_000, 720, xs);
    let xml = render(&s);
    let ids: Vec<String> = periods(&xml).into_iter().map(|p| p.0).collect();
    assert_eq!(ids, ["p0", "p4"], "{xml}");
}

/// The vertical MPD lives a folder down (`/live/CH/vertical/manifest.mpd`): its
/// templates climb back up to the renditions.
#[test]
fn the_vertical_mpd_reaches_the_renditions_from_its_folder() {
    let video: Vec<_> = (0..3).map(|n| seg(n, TS)).collect();
    let audio: Vec<_> = (0..3).map(|n| seg(n, 48_000)).collect();
    let mut s = snapshot(video, audio, vec![anchor(0, 10.0)]);
    let plain = render(&s);
    assert!(plain.contains("media=\"source/"), "{plain}");
    s.base = "../";
    let xml = render(&s);
    assert!(
        xml.contains("media=\"../source/") && xml.contains("initialization=\"../audio/"),
        "{xml}"
    );
    assert!(!xml.contains("media=\"source/"), "{xml}");
}
