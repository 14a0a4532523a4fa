//! Requests for objects that cannot exist are answered from what the origin knows, with
//! no store read: segments far past the live edge (404, cacheable until they can
//! exist), sessions that begin in the future (404) or are older than the recording
//! retention (410), numbers before a session's first segment (410). And the live edge
//! itself never reads the store.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use common::*;
use starling_hub::Hub;
use starling_origin::{Origin, OriginConfig};

/// A session id (16 hex digits) that began at `at`.
fn session_at(at: SystemTime) -> String {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    format!("{:016x}", ms << 20 | 0x12345)
}

fn max_age(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_out_of_range_read_nothing_from_the_store() {
    let dir = temp_dir("range");
    let store = Arc::new(CountingStore::new(&dir, Duration::ZERO));
    let config = OriginConfig {
        recording_retention: Some(Duration::from_secs(7 * 86_400)),
        ..OriginConfig::default()
    };
    let origin = Origin::new(config, store.clone());
    let hub = Arc::new(Hub::default());
    origin.follow(&hub, "demo");
    // A first publish, a reconnect: the second session starts past segment 0.
    publish_demo(&hub, 3).await.unwrap();
    let live = publish_demo(&hub, 20);
    let app = app(&origin);
    let pl = playlist_until(&app, "/live/demo/source/index.m3u8", "two sessions", |p| {
        p.contains("#EXT-X-DISCONTINUITY\n") && p.matches("#EXTINF").count() >= 3
    })
    .await;
    // The live session and its first number, from the newest segment's URI.
    let newest = pl
        .lines()
        .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap();
    let (session, file) = newest.split_once('/').unwrap();
    let newest_msn: u64 = file.trim_end_matches(".m4s").parse().unwrap();
    let first_of_session = pl
        .lines()
        .filter(|l| l.starts_with(session) && l.ends_with(".m4s"))
        .map(|l| {
            l.split_once('/')
                .unwrap()
                .1
                .trim_end_matches(".m4s")
                .parse::<u64>()
                .unwrap()
        })
        .min()
        .unwrap();
    assert!(first_of_session > 0, "{pl}");
    let reads_before = store.reads();

    let now = SystemTime::now();
    let future = session_at(now + Duration::from_secs(86_400));
    let expired = session_at(now - Duration::from_secs(30 * 86_400));
    for i in 0..1000u64 {
        let (uri, status) = match i % 4 {
            // Far past the live edge of the live session.
            0 => (
                format!("/live/demo/source/{session}/{}.m4s", newest_msn + 10 + i),
                404,
            ),
            // Before the live session's first segment (another session has those).
            1 => (
                format!("/live/demo/source/{session}/{}.m4s", i % first_of_session),
                410,
            ),
            // A session that begins tomorrow; a part and an init section of it too.
            2 => (
                match i % 3 {
                    0 => format!("/live/demo/source/{future}/{i}.m4s"),
                    1 => format!("/live/demo/source/{future}/{i}.1.m4s"),
                    _ => format!("/live/demo/source/{future}/init-0.mp4"),
                },
                404,
            ),
            // A session a month old, past the seven-day retention.
            _ => (format!("/live/demo/source/{expired}/{i}.m4s"), 410),
        };
        let (got, headers, _) = get_with(&app, &uri, &[]).await;
        assert_eq!(got.as_u16(), status, "{uri}");
        if i % 4 == 0 {
            // Cacheable until about when it can exist: (ahead - 1) segments of 2 s.
            let ahead = 10 + i;
            assert_eq!(max_age(&headers), ((ahead - 1) * 2).min(3600), "{uri}");
        }
    }
    assert_eq!(store.reads(), reads_before, "the store was read");
    let mut metrics = String::new();
    origin.metrics().render(&mut metrics);
    assert!(
        metrics.contains("starling_origin_rejected_requests_total 750"),
        "{metrics}"
    );
    // What can exist is still served: 1,000 requests at the live edge (the playlist, the
    // newest segment, the newest part), as viewers there make them, from memory alone.
    let reads_before = store.reads();
    for i in 0..1000 {
        let pl = playlist(&app, "/live/demo/source/index.m3u8").await;
        let uri = match i % 3 {
            0 => "index.m3u8".to_owned(),
            1 => pl
                .lines()
                .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
                .unwrap()
                .to_owned(),
            _ => pl
                .lines()
                .rfind(|l| l.starts_with("#EXT-X-PART:"))
                .and_then(|l| l.split("URI=\"").nth(1))
                .and_then(|u| u.split('"').next())
                .unwrap()
                .to_owned(),
        };
        let (got, _, _) = get_with(&app, &format!("/live/demo/source/{uri}"), &[]).await;
        assert_eq!(got.as_u16(), 200, "{uri}");
    }
    assert_eq!(store.reads(), reads_before, "the live edge read the store");
    live.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outliving_the_retention_is_still_served() {
    let dir = temp_dir("range-retention");
    let store = Arc::new(CountingStore::new(&dir, Duration::ZERO));
    // A retention far shorter than the publish: a 24/7 channel's live session outlives
    // any retention, and the sweep keeps the sessions of the run.
    let config = OriginConfig {
        recording_retention: Some(Duration::from_secs(1)),
        ..OriginConfig::default()
    };
    let origin = Origin::new(config, store.clone());
    let hub = Arc::new(Hub::default());
    origin.follow(&hub, "demo");
    let live = publish_demo(&hub, 10);
    let app = app(&origin);
    let pl = playlist_until(&app, "/live/demo/source/index.m3u8", "two segments", |p| {
        p.matches("#EXTINF").count() >= 2
    })
    .await;
    let newest = pl
        .lines()
        .rfind(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap();
    let (got, _, _) = get_with(&app, &format!("/live/demo/source/{newest}"), &[]).await;
    assert_eq!(
        got.as_u16(),
        200,
        "the live session, older than the retention"
    );
    // Another session of the same age that is not of the run: swept, 410 at once.
    let old = session_at(SystemTime::now() - Duration::from_secs(5));
    let (got, _, _) = get_with(&app, &format!("/live/demo/source/{old}/1.m4s"), &[]).await;
    assert_eq!(got.as_u16(), 410);
    // A channel this node does not follow is not swept here: looked up, not refused.
    let reads = store.reads();
    let (got, _, _) = get_with(&app, &format!("/live/other/source/{old}/1.m4s"), &[]).await;
    assert_eq!(got.as_u16(), 404);
    assert_eq!(store.reads(), reads + 1);
    live.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
