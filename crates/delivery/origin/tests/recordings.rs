//! Recordings as VOD assets, in-process: the demo source publishes runs of a recording
//! channel into a hub; the origin writes them to a local directory; they are listed,
//! played back at `/vod/`, deleted and swept from what the store holds, by the origin
//! that recorded them and by one that starts afresh over the same directory.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{http::StatusCode, Router};
use common::{app, get, media_uris, temp_dir};
use starling_demo_source::DemoConfig;
use starling_hub::Hub;
use starling_origin::{
    HistoryError, LocalDirStore, Origin, OriginConfig, Recording, RecordingError,
};

fn config(grace: Duration) -> OriginConfig {
    OriginConfig {
        segment_duration: Duration::from_secs(1),
        part_duration: Duration::from_millis(250),
        memory_window: Duration::from_secs(3),
        reconnect_grace: grace,
        record: true,
        recording_retention: Some(Duration::from_secs(3600)),
        ..OriginConfig::default()
    }
}

fn publish(hub: &Arc<Hub>, seconds: u64) -> tokio::task::JoinHandle<()> {
    let demo = DemoConfig {
        width: 160,
        height: 90,
        fps: 30,
        gop_frames: 30,
    };
    common::publish(hub, "demo", demo, seconds)
}

/// Waits until the channel's run has ended and is wholly in the store (history too).
async fn ended(origin: &Arc<Origin>) -> Recording {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = origin.channel("demo").and_then(|c| c.finished_recording()) {
            assert!(origin.drain(Duration::from_secs(10)).await);
            return r;
        }
        assert!(Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(origin: &Arc<Origin>) -> Vec<Result<Recording, RecordingError>> {
    origin.recordings("demo", 0, 50).await.unwrap().recordings
}

fn ok(listed: Vec<Result<Recording, RecordingError>>) -> Vec<Recording> {
    listed.into_iter().map(Result::unwrap).collect()
}

/// Bytes of the media objects (segments, init sections) under `dir`.
fn media_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            n += media_bytes(&path);
        } else if path.extension().is_some_and(|x| x == "m4s" || x == "mp4") {
            n += e.metadata().unwrap().len();
        }
    }
    n
}

fn session_dir(dir: &Path, session: &str) -> PathBuf {
    dir.join("media/demo").join(session)
}

fn description(dir: &Path, run: &str) -> PathBuf {
    dir.join(format!("media/demo/runs/{run}.txt"))
}

/// Fetches a recording's VOD playlists and every object they name (URIs resolved as a
/// player would); returns the media playlist of the video.
async fn play(app: &Router, run: &str) -> String {
    let base = format!("/vod/demo/{run}");
    let (status, body) = get(app, &format!("{base}/index.m3u8")).await;
    let multivariant = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(status, StatusCode::OK, "{multivariant}");
    assert!(multivariant.contains("source.m3u8"), "{multivariant}");
    let mut video = String::new();
    for uri in media_uris(&multivariant) {
        let (status, body) = get(app, &format!("{base}/{uri}")).await;
        let pl = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(status, StatusCode::OK, "{uri}: {pl}");
        assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{pl}");
        assert!(pl.contains("#EXT-X-ENDLIST"), "{pl}");
        assert!(pl.contains("#EXT-X-MAP:URI="), "{pl}");
        for object in media_uris(&pl) {
            // `../../../live/…` from `/vod/demo/RUN/`.
            let path = object.strip_prefix("../../..").unwrap();
            let (status, body) = get(app, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
        if uri == "source.m3u8" {
            video = pl;
        }
    }
    video
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_are_listed_played_and_one_deleted() {
    let dir = temp_dir("recordings");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(
        config(Duration::from_millis(300)),
        Arc::new(LocalDirStore::new(&dir)),
    );
    origin.follow(&hub, "demo");
    publish(&hub, 2).await.unwrap();
    let first = ended(&origin).await;
    publish(&hub, 2).await.unwrap();
    let second = ended(&origin).await;
    assert_ne!(first.session, second.session);

    // A node that starts afresh over the same store lists and plays both.
    let fresh = Origin::new(
        config(Duration::from_millis(300)),
        Arc::new(LocalDirStore::new(&dir)),
    );
    let listed = ok(list(&fresh).await);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (newer, older) = (&listed[0], &listed[1]);
    assert_eq!(newer.session, second.session);
    assert_eq!(older.session, first.session);
    for (rec, run) in [(newer, &second), (older, &first)] {
        assert!(!rec.live);
        assert!((1.5..=3.5).contains(&rec.duration_secs), "{rec:?}");
        assert!(
            (rec.duration_secs - run.duration_secs).abs() < 0.01,
            "{rec:?} {run:?}"
        );
        assert_eq!(rec.segments, run.segments, "{rec:?}");
        // Segments and init sections, exactly as stored.
        assert_eq!(rec.bytes, media_bytes(&session_dir(&dir, &rec.session)));
        // What the node counted in memory, near enough.
        assert!(
            rec.bytes.abs_diff(run.bytes) * 50 < rec.bytes,
            "{rec:?} {run:?}"
        );
        assert!(rec.renditions.contains(&"source".to_owned()), "{rec:?}");
        assert_eq!(rec.sessions, vec![rec.session.clone()]);
        let started = rec
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(now - started < Duration::from_secs(60), "{rec:?}");
    }
    // Pages, newest first.
    let page = fresh.recordings("demo", 0, 1).await.unwrap();
    assert!(page.truncated && page.recordings.len() == 1, "{page:?}");
    let page = fresh.recordings("demo", 1, 1).await.unwrap();
    assert!(!page.truncated, "{page:?}");
    assert_eq!(page.recordings[0].as_ref().unwrap().session, first.session);
    let fresh_app = app(&fresh);
    let pl = play(&fresh_app, &older.session).await;
    assert!(pl.matches("#EXTINF").count() >= 2, "{pl}");
    play(&fresh_app, &newer.session).await;
    // Malformed and unknown recordings.
    let (status, _) = get(&fresh_app, "/vod/demo/xyz/index.m3u8").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&fresh_app, "/vod/demo/0000000000000001/index.m3u8").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(
        &fresh_app,
        &format!("/vod/demo/{}/nope.m3u8", older.session),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the older one: its objects and description go; the newer still plays.
    let older_run = starling_origin::parse_session(&older.session).unwrap();
    origin.delete_recording("demo", older_run).await.unwrap();
    assert!(!session_dir(&dir, &older.session).exists());
    assert!(!description(&dir, &older.session).exists());
    let listed = ok(list(&fresh).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].session, second.session);
    let (status, _) = get(
        &fresh_app,
        &format!("/vod/demo/{}/index.m3u8", older.session),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    play(&app(&origin), &second.session).await;
    assert!(matches!(
        origin.delete_recording("demo", older_run).await,
        Err(RecordingError::NotFound { .. })
    ));

    // A run that is live is listed as such, and refuses deletion.
    let publisher = publish(&hub, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let live = loop {
        let listed = ok(list(&origin).await);
        if let Some(r) = listed.iter().find(|r| r.live) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let live_run = starling_origin::parse_session(&live.session).unwrap();
    let refused = origin.delete_recording("demo", live_run).await;
    assert!(
        matches!(refused, Err(RecordingError::Live { .. })),
        "{refused:?}"
    );
    let (status, _) = get(
        &app(&origin),
        &format!("/vod/demo/{}/index.m3u8", live.session),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    publisher.await.unwrap();
    let third = ended(&origin).await;
    assert_eq!(third.session, live.session);
    // Once it ended, it can go; the node that held it stops listing it in its playlists.
    origin.delete_recording("demo", live_run).await.unwrap();
    assert!(!session_dir(&dir, &live.session).exists());
    let (status, _) = get(&app(&origin), "/live/demo/source/index.m3u8").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The run file no longer names it: a restart does not bring it back.
    let restarted = Origin::new(
        config(Duration::from_millis(300)),
        Arc::new(LocalDirStore::new(&dir)),
    );
    let (status, _) = get(&app(&restarted), "/live/demo/source/index.m3u8").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = ok(list(&restarted).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_across_a_reconnect_is_one_recording_and_goes_whole() {
    let dir = temp_dir("recordings-reconnect");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(
        config(Duration::from_millis(1500)),
        Arc::new(LocalDirStore::new(&dir)),
    );
    origin.follow(&hub, "demo");
    // An encoder that reconnects within the grace: one run of two sessions.
    publish(&hub, 2).await.unwrap();
    publish(&hub, 2).await.unwrap();
    let reconnected = ended(&origin).await;
    assert_eq!(reconnected.sessions.len(), 2, "{reconnected:?}");
    publish(&hub, 2).await.unwrap();
    let last = ended(&origin).await;

    let listed = ok(list(&origin).await);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let rec = &listed[1];
    assert_eq!(rec.sessions, reconnected.sessions);
    let both: u64 = rec
        .sessions
        .iter()
        .map(|s| media_bytes(&session_dir(&dir, s)))
        .sum();
    assert_eq!(rec.bytes, both);
    assert!((3.0..=5.5).contains(&rec.duration_secs), "{rec:?}");
    // The seam is in the VOD playlist, and both sessions' segments are listed.
    let pl = play(&app(&origin), &rec.session).await;
    assert!(pl.contains("#EXT-X-DISCONTINUITY\n"), "{pl}");
    for s in &rec.sessions {
        assert!(pl.contains(&format!("/{s}/")), "{s}: {pl}");
    }

    // Descriptions from a bucket others write to: one that does not parse, one too
    // large. Each is that run's error; the others still list.
    let runs = dir.join("media/demo/runs");
    std::fs::write(
        runs.join("0000000000100000.txt"),
        "starling-run 1\nsession 12\n",
    )
    .unwrap();
    std::fs::write(runs.join("0000000000200000.txt"), vec![b'x'; (1 << 20) + 1]).unwrap();
    let listed = list(&origin).await;
    assert_eq!(listed.len(), 4);
    assert!(listed[0].is_ok() && listed[1].is_ok(), "{listed:?}");
    match &listed[2] {
        Err(RecordingError::Unreadable { run, source, .. }) => {
            assert_eq!(run, "0000000000200000");
            assert_eq!(*source, HistoryError::TooLarge);
        }
        other => panic!("{other:?}"),
    }
    let err = listed[3].as_ref().unwrap_err();
    assert_eq!(err.run(), Some("0000000000100000"));
    assert!(err.to_string().contains("line 2: bad session"), "{err}");

    // Retention: a sweep past the reconnected run's retention takes both its sessions
    // and its description, and the broken descriptions (long expired); the last run,
    // which the playlists list, stays.
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let swept = origin.sweep("demo", later).await.unwrap();
    assert!(swept >= 2, "{swept}");
    for s in &rec.sessions {
        assert!(!session_dir(&dir, s).exists(), "{s}");
    }
    assert!(!description(&dir, &rec.session).exists());
    assert!(!runs.join("0000000000100000.txt").exists());
    assert!(!runs.join("0000000000200000.txt").exists());
    let listed = ok(list(&origin).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].session, last.session);
    assert!(description(&dir, &last.session).exists());
    let _ = std::fs::remove_dir_all(&dir);
}
