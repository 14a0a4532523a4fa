//! Retention and per-channel settings, in-process: the demo source publishes in real
//! time into a hub; the origin writes through to a local directory (wrapped, to count or
//! fail writes).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use axum::{http::StatusCode, Router};
use common::{temp_dir, CountingStore};
use starling_demo_source::DemoConfig;
use starling_hub::Hub;
use starling_origin::{http, ChannelSettings, LocalDirStore, Origin, OriginConfig};

/// One-second segments (the demo source's GOP), so that windows fill quickly.
fn config() -> OriginConfig {
    OriginConfig {
        segment_duration: Duration::from_secs(1),
        part_duration: Duration::from_millis(250),
        memory_window: Duration::from_secs(3),
        reconnect_grace: Duration::from_millis(300),
        ..OriginConfig::default()
    }
}

fn publish(hub: &Arc<Hub>, seconds: u64) -> tokio::task::JoinHandle<()> {
    common::publish(
        hub,
        "demo",
        DemoConfig {
            width: 160,
            height: 90,
            fps: 30,
            gop_frames: 30,
        },
        seconds,
    )
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let (status, _, body) = common::get_with(app, uri, &[]).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn playlist_until(app: &Router, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, pl) = get(app, "/live/demo/source/index.m3u8").await;
        if status == StatusCode::OK && ok(&pl) {
            return pl;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{pl}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Segment files of the video rendition in the store.
fn stored_segments(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.to_string_lossy().contains("/source/")
                && path.extension().is_some_and(|x| x == "m4s")
            {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_does_not_record_keeps_only_its_window_on_disk() {
    let dir = temp_dir("retention");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config(), Arc::new(LocalDirStore::new(&dir)));
    // A DVR window below the minimum: the playlist still lists six segments.
    origin.configure(
        "demo",
        ChannelSettings {
            dvr_window: Duration::from_secs(2),
            record: false,
            low_latency: true,
            realtime: false,
            p2p: false,
        },
    );
    origin.follow(&hub, "demo");
    let app = http::router(origin.clone());
    let publisher = publish(&hub, 16);
    // Watch the disk while the window slides: never much more than the window.
    let mut most = 0;
    while !publisher.is_finished() {
        most = most.max(stored_segments(&dir));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pl = playlist_until(&app, "ENDLIST", |pl| pl.contains("#EXT-X-ENDLIST")).await;
    let listed = pl.matches("#EXTINF").count();
    assert!((6..=8).contains(&listed), "{listed} listed:\n{pl}");
    assert!(
        most <= 9,
        "{most} segments on disk at once for a 6-segment window"
    );
    let deleted = origin.metrics().store_deletes.load(Ordering::Relaxed);
    assert!(deleted >= 6, "{deleted} deleted");
    // Everything listed is still served (from the store: the run ended).
    for uri in pl.lines().filter(|l| l.ends_with(".m4s")) {
        let (status, _) = get(&app, &format!("/live/demo/source/{uri}")).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }

    // A new run replaces the ended one; a channel that does not record deletes the old
    // run's window too, so nothing accumulates across runs.
    let before = stored_segments(&dir);
    publish(&hub, 3).await.unwrap();
    let sequence = |p: &str| {
        p.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .map(str::to_owned)
    };
    let old_sequence = sequence(&pl);
    playlist_until(&app, "the new run's ENDLIST", |p| {
        p.contains("#EXT-X-ENDLIST") && sequence(p) != old_sequence
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = stored_segments(&dir);
    assert!(
        after <= 5,
        "{before} -> {after} segment files: the old run stayed"
    );
    // A deleted object's URL answers 404: never other bytes.
    let old_uri = pl.lines().find(|l| l.ends_with(".m4s")).unwrap();
    let (status, _) = get(&app, &format!("/live/demo/source/{old_uri}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{old_uri}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_channel_keeps_everything_and_settings_apply_at_the_next_publish() {
    let dir = temp_dir("recording");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config(), Arc::new(LocalDirStore::new(&dir)));
    origin.configure(
        "demo",
        ChannelSettings {
            dvr_window: Duration::from_secs(2),
            record: true,
            low_latency: true,
            realtime: false,
            p2p: false,
        },
    );
    origin.follow(&hub, "demo");
    let app = http::router(origin.clone());
    let publisher = publish(&hub, 12);
    let live = playlist_until(&app, "parts", |pl| pl.contains("#EXT-X-PART:")).await;
    assert!(live.contains("#EXT-X-PART-INF"), "{live}");
    // Switched to standard latency while live: the publish under way keeps LL-HLS.
    origin.configure(
        "demo",
        ChannelSettings {
            dvr_window: Duration::from_secs(60),
            record: true,
            low_latency: false,
            realtime: false,
            p2p: false,
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, still) = get(&app, "/live/demo/source/index.m3u8").await;
    assert!(still.contains("#EXT-X-PART:"), "{still}");
    publisher.await.unwrap();
    playlist_until(&app, "ENDLIST", |pl| pl.contains("#EXT-X-ENDLIST")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Recorded: every segment of the 12 s is still in the store, though the window
    // listed only six.
    let kept = stored_segments(&dir);
    assert!(kept >= 11, "{kept} segment files kept");
    assert_eq!(origin.metrics().store_deletes.load(Ordering::Relaxed), 0);

    // The next publish: standard latency (no parts, no hint) with the new window.
    let publisher = publish(&hub, 6);
    let plain = playlist_until(&app, "the new run", |pl| {
        !pl.contains("#EXT-X-ENDLIST") && pl.contains("#EXTINF")
    })
    .await;
    for tag in ["#EXT-X-PART", "PRELOAD-HINT", "PART-HOLD-BACK"] {
        assert!(
            !plain.contains(tag),
            "{tag} in a standard-latency playlist:\n{plain}"
        );
    }
    publisher.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_retried_and_the_recording_completes() {
    let dir = temp_dir("flaky");
    let hub = Arc::new(Hub::default());
    // The first six writes fail (a bucket that blips).
    let store = Arc::new(CountingStore::new(&dir, Duration::ZERO));
    store.failing_puts.store(6, Ordering::Relaxed);
    let origin = Origin::new(config(), store);
    origin.follow(&hub, "demo");
    let app = http::router(origin.clone());
    publish(&hub, 4).await.unwrap();
    playlist_until(&app, "ENDLIST", |pl| pl.contains("#EXT-X-ENDLIST")).await;
    // Every listed segment reaches the store after the retries (1 + 2 s at most here).
    let deadline = Instant::now() + Duration::from_secs(15);
    let rec = loop {
        if let Some(r) = origin.channel("demo").unwrap().finished_recording() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the retried writes never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(rec.segments >= 6, "{rec:?}");
    let m = origin.metrics();
    assert!(m.store_write_errors.load(Ordering::Relaxed) >= 6);
    assert_eq!(m.store_writes_dropped.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
