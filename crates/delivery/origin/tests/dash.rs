//! The DASH MPD, in-process: the demo source publishes into a hub in real time through
//! the real packager; the MPD is read with an XML parser and every segment it names is
//! fetched and checked against it (its `tfdt` is the timeline's `t`, its URL is the one
//! the HLS playlist lists). Players (ffmpeg, GStreamer, dash.js) read it in the app's
//! end-to-end tests.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{http::StatusCode, Router};
use bytes::Bytes;
use common::{app, get, get_with, playlist, publish_demo, temp_dir};
use starling_hub::Hub;
use starling_origin::{LocalDirStore, Origin, OriginConfig};

/// One segment as the MPD names it.
#[derive(Debug, Clone)]
struct Listed {
    period: String,
    url: String,
    /// Timeline time, in the representation's timescale.
    t: u64,
    /// Seconds from the availability start at which the segment ends.
    end: f64,
}

#[derive(Debug)]
struct Mpd {
    dynamic: bool,
    availability_start: Option<SystemTime>,
    duration: Option<f64>,
    /// (id, start seconds)
    periods: Vec<(String, f64)>,
    segments: Vec<Listed>,
    utc_timing: Option<String>,
}

fn seconds(v: &str) -> f64 {
    v.strip_prefix("PT")
        .and_then(|v| v.strip_suffix('S'))
        .unwrap()
        .parse()
        .unwrap()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the origin writes it.
fn date(v: &str) -> SystemTime {
    let n = |a: usize, b: usize| -> i64 { v[a..b].parse().unwrap() };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    let ms = if v.len() > 20 { n(20, 23) } else { 0 };
    SystemTime::UNIX_EPOCH + Duration::from_millis((secs * 1000 + ms) as u64)
}

fn parse(xml: &str) -> Mpd {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let root = doc.root_element();
    let mut mpd = Mpd {
        dynamic: root.attribute("type") == Some("dynamic"),
        availability_start: root.attribute("availabilityStartTime").map(date),
        duration: root.attribute("mediaPresentationDuration").map(seconds),
        periods: Vec::new(),
        segments: Vec::new(),
        utc_timing: root
            .children()
            .find(|n| n.has_tag_name("UTCTiming"))
            .and_then(|n| n.attribute("value"))
            .map(str::to_owned),
    };
    for period in root.children().filter(|n| n.has_tag_name("Period")) {
        let id = period.attribute("id").unwrap().to_owned();
        let start = seconds(period.attribute("start").unwrap());
        mpd.periods.push((id.clone(), start));
        // Each representation has its own template (the rungs of a ladder list their own
        // segments).
        for rep in period
            .children()
            .filter(|n| n.has_tag_name("AdaptationSet"))
            .flat_map(|set| set.children().filter(|n| n.has_tag_name("Representation")))
        {
            let template = rep
                .children()
                .find(|n| n.has_tag_name("SegmentTemplate"))
                .unwrap();
            let attr = |n: &str| template.attribute(n).unwrap();
            let timescale: u32 = attr("timescale").parse().unwrap();
            let pto: u64 = attr("presentationTimeOffset").parse().unwrap();
            let media = attr("media").replace("$RepresentationID$", rep.attribute("id").unwrap());
            let mut number: u64 = attr("startNumber").parse().unwrap();
            let mut t = 0u64;
            let timeline = template
                .children()
                .find(|n| n.has_tag_name("SegmentTimeline"))
                .unwrap();
            for s in timeline.children().filter(|n| n.has_tag_name("S")) {
                if let Some(v) = s.attribute("t") {
                    t = v.parse().unwrap();
                }
                let d: u64 = s.attribute("d").unwrap().parse().unwrap();
                let r: u64 = s.attribute("r").map_or(0, |r| r.parse().unwrap());
                // No rendition starts before its period (players take it for a
                // negative time).
                assert!(
                    t >= pto,
                    "{media}: t={t} before the period's offset {pto}:\n{xml}"
                );
                for _ in 0..=r {
                    mpd.segments.push(Listed {
                        period: id.clone(),
                        url: media.replace("$Number$", &number.to_string()),
                        t,
                        end: start + (t + d - pto) as f64 / f64::from(timescale),
                    });
                    number += 1;
                    t += d;
                }
            }
        }
    }
    mpd
}

/// The `tfdt` of the first fragment of a CMAF segment.
fn tfdt(seg: &[u8]) -> u64 {
    let mut at = 0;
    while at + 8 <= seg.len() {
        let size = u32::from_be_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
        let kind = &seg[at + 4..at + 8];
        if kind == b"moof" || kind == b"traf" {
            at += 8;
            continue;
        }
        if kind == b"tfdt" {
            let b = &seg[at + 8..];
            return if b[0] == 1 {
                u64::from_be_bytes(b[4..12].try_into().unwrap())
            } else {
                u64::from(u32::from_be_bytes(b[4..8].try_into().unwrap()))
            };
        }
        assert!(size >= 8, "bad box at {at}");
        at += size;
    }
    panic!("no tfdt");
}

async fn mpd(app: &Router, uri: &str) -> (Mpd, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, headers, body) = get_with(app, uri, &[("host", "origin.test:8080")]).await;
        if status == StatusCode::OK {
            assert_eq!(headers["content-type"], "application/dash+xml");
            let xml = String::from_utf8(body.to_vec()).unwrap();
            return (parse(&xml), xml);
        }
        assert!(Instant::now() < deadline, "{uri}: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn origin(dir: &std::path::Path, grace: Duration) -> Arc<Origin> {
    Origin::new(
        OriginConfig {
            reconnect_grace: grace,
            dvr_window: Duration::from_secs(6),
            ..OriginConfig::default()
        },
        Arc::new(LocalDirStore::new(dir)),
    )
}

const MPD: &str = "/live/demo/manifest.mpd";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mpd_names_the_playlists_segments_with_their_own_times() {
    let dir = temp_dir("dash");
    let hub = Arc::new(Hub::default());
    let origin = origin(&dir, Duration::from_secs(1));
    origin.follow(&hub, "demo");
    let app = app(&origin);
    let publish = publish_demo(&hub, 14);

    // Wait for three complete video segments.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (m, xml) = loop {
        let (m, xml) = mpd(&app, MPD).await;
        if m.segments
            .iter()
            .filter(|s| s.url.starts_with("source/"))
            .count()
            >= 4
        {
            break (m, xml);
        }
        assert!(Instant::now() < deadline, "{xml}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let now = SystemTime::now();
    assert!(m.dynamic, "{xml}");
    assert_eq!(
        m.utc_timing.as_deref(),
        Some("http://origin.test:8080/live/time")
    );
    assert_eq!(m.periods.len(), 1, "{xml}");
    let ast = m.availability_start.unwrap();
    let hls = playlist(&app, "/live/demo/source/index.m3u8").await;
    for rendition in ["source", "audio"] {
        let listed: Vec<&Listed> = m
            .segments
            .iter()
            .filter(|s| s.url.starts_with(&format!("{rendition}/")))
            .collect();
        assert!(listed.len() >= 3, "{rendition}: {xml}");
        // Low latency: the last one is the segment being written.
        let complete = &listed[..listed.len() - 1];
        for s in complete {
            let (status, body) = get(&app, &format!("/live/demo/{}", s.url)).await;
            assert_eq!(status, StatusCode::OK, "{}", s.url);
            assert_eq!(tfdt(&body), s.t, "{} starts at its timeline time", s.url);
            // The segment really was there when the MPD said it would be.
            let available = ast + Duration::from_secs_f64(s.end);
            assert!(
                available <= now + Duration::from_millis(500),
                "{s:?} ends in the future"
            );
            if rendition == "source" {
                let uri = s.url.strip_prefix("source/").unwrap();
                assert!(
                    hls.contains(uri),
                    "{uri} is not in the HLS playlist:\n{hls}"
                );
            }
        }
        // The newest complete segment ends near now: the anchor maps media to the clock.
        let last = complete.last().unwrap();
        let behind = now
            .duration_since(ast + Duration::from_secs_f64(last.end))
            .unwrap_or_default();
        assert!(
            behind < Duration::from_secs(3),
            "{rendition}: {behind:?} behind: {xml}"
        );
    }
    // The segment being written streams (no Content-Length) and ends as the whole
    // segment. Asked for right after an MPD names it; again if it completed meanwhile.
    let mut streamed_once = false;
    for _ in 0..5 {
        let (m, _) = mpd(&app, MPD).await;
        let open = m
            .segments
            .iter()
            .rfind(|s| s.url.starts_with("source/"))
            .unwrap()
            .clone();
        let url = format!("/live/demo/{}", open.url);
        let (status, headers, streamed) = get_with(&app, &url, &[]).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_eq!(tfdt(&streamed), open.t, "{url}");
        let (_, whole) = get(&app, &url).await;
        assert_eq!(
            streamed, whole,
            "{url}: the streamed bytes are the segment's"
        );
        if headers.get("content-length").is_none() {
            streamed_once = true;
            break;
        }
    }
    assert!(
        streamed_once,
        "the segment in progress was never sent chunked"
    );
    // One rendering serves every viewer until the channel changes: two fetches in a row
    // get the same bytes (publishTime included), and a later one a newer MPD.
    let publish_time = |xml: &str| xml.split("publishTime=\"").nth(1).unwrap()[..24].to_owned();
    let mut shared = false;
    for _ in 0..20 {
        let (_, a) = mpd(&app, MPD).await;
        let (_, b) = mpd(&app, MPD).await;
        if a == b {
            shared = true;
            break;
        }
    }
    assert!(shared, "no two fetches in a row got the same rendering");
    let (_, before) = mpd(&app, MPD).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, after) = mpd(&app, MPD).await;
    assert_ne!(
        publish_time(&before),
        publish_time(&after),
        "the MPD was renewed"
    );
    // The node's clock, for players whose own is wrong.
    let (status, body) = get(&app, "/live/time").await;
    assert_eq!(status, StatusCode::OK);
    let told = date(std::str::from_utf8(&body).unwrap().trim());
    let skew = told
        .duration_since(SystemTime::now())
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap();
    assert!(skew < Duration::from_secs(1), "{skew:?}");
    publish.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_adds_a_period_that_stays_put_and_the_ended_run_is_static() {
    let dir = temp_dir("dash-periods");
    let hub = Arc::new(Hub::default());
    let origin = origin(&dir, Duration::from_secs(3));
    origin.follow(&hub, "demo");
    let app = app(&origin);

    // Every MPD seen: each period id keeps its start for as long as it is listed.
    let watcher = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut starts: HashMap<String, f64> = HashMap::new();
            let mut most = 0;
            loop {
                let (m, xml) = mpd(&app, MPD).await;
                if !m.dynamic {
                    return (starts, most, m, xml);
                }
                most = most.max(m.periods.len());
                for (id, start) in &m.periods {
                    let was = *starts.entry(id.clone()).or_insert(*start);
                    assert_eq!(was, *start, "period {id} moved:\n{xml}");
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    publish_demo(&hub, 5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    publish_demo(&hub, 5).await.unwrap();
    let (starts, most, m, xml) = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the run ended and the MPD became static")
        .unwrap();
    assert_eq!(most, 2, "the republish was a second period: {starts:?}");
    // The second period starts later than the first by at least the first's media and
    // the pause between the publishes.
    let mut s: Vec<f64> = starts.values().copied().collect();
    s.sort_by(f64::total_cmp);
    assert!(s[1] - s[0] > 5.0, "{starts:?}");

    // Static: periods back to back, the whole duration; every segment is there, at its
    // timeline time.
    assert!(m.duration.unwrap() > 8.0, "{xml}");
    assert!(m.utc_timing.is_none(), "{xml}");
    let mut by_period: HashMap<(&str, bool), usize> = HashMap::new();
    for seg in &m.segments {
        let video = seg.url.starts_with("source/");
        *by_period.entry((seg.period.as_str(), video)).or_default() += 1;
        let (status, body): (StatusCode, Bytes) =
            get(&app, &format!("/live/demo/{}", seg.url)).await;
        assert_eq!(status, StatusCode::OK, "{}", seg.url);
        assert_eq!(tfdt(&body), seg.t, "{}", seg.url);
    }
    // Both periods carry video and audio.
    assert_eq!(by_period.len(), 4, "{by_period:?}\n{xml}");
    let _ = std::fs::remove_dir_all(&dir);
}
