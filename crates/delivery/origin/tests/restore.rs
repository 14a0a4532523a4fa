//! A channel's last run read back from the store by a new origin (a restarted node): the
//! playlists come back as they were, closed with ENDLIST, so the run plays back as VOD
//! with the same URLs and bytes; a channel that does not record still has its old run
//! deleted when it publishes again; a history object that cannot be read is refused
//! with a log line and nothing else breaks.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use axum::http::StatusCode;
use bytes::Bytes;
use common::{app, get, media_uris, playlist_until, publish_demo, temp_dir};
use starling_hub::Hub;
use starling_origin::{LocalDirStore, Origin, OriginConfig};

const RENDITIONS: [&str; 2] = ["source", "audio"];

fn ended(pl: &str) -> bool {
    pl.contains("#EXT-X-ENDLIST")
}

/// Every object file under `dir` (the store's root), relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_run_comes_back_after_a_restart_and_plays_as_vod() {
    let dir = temp_dir("restore");
    let config = OriginConfig {
        reconnect_grace: Duration::from_millis(300),
        ..OriginConfig::default()
    };

    // First process: one run with a reconnect in it (two sessions, a discontinuity).
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "demo");
    let a = app(&origin);
    publish_demo(&hub, 4).await.unwrap();
    publish_demo(&hub, 4).await.unwrap();
    let mut before = HashMap::new();
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    for r in RENDITIONS {
        let uri = format!("/live/demo/{r}/index.m3u8");
        let pl = playlist_until(&a, &uri, "ENDLIST", ended).await;
        assert!(pl.contains("#EXT-X-DISCONTINUITY\n"), "{pl}");
        for u in media_uris(&pl) {
            let url = format!("/live/demo/{r}/{u}");
            let (status, body) = get(&a, &url).await;
            assert_eq!(status, StatusCode::OK, "{url}");
            bodies.insert(url, body);
        }
        before.insert(r, pl);
    }
    let (_, multivariant) = get(&a, "/live/demo/index.m3u8").await;
    // DASH: the ended run is a static MPD with a period per session.
    let (status, mpd) = get(&a, "/live/demo/manifest.mpd").await;
    assert_eq!(status, StatusCode::OK);
    let mpd = String::from_utf8(mpd.to_vec()).unwrap();
    assert!(mpd.contains(r#"type="static""#), "{mpd}");
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    assert!(origin.drain(Duration::from_secs(10)).await);
    drop((a, origin, hub));

    // "Restart": a new origin over the same store. Nobody follows the channel yet; the
    // first request reads its last run back.
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
    let b = app(&origin);
    for r in RENDITIONS {
        let uri = format!("/live/demo/{r}/index.m3u8");
        let (status, body) = get(&b, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let pl = String::from_utf8(body.to_vec()).unwrap();
        // The same playlist, line for line: numbers, durations, dates, discontinuities,
        // sessions, init sections.
        assert_eq!(pl, before[r], "{r} after the restart");
    }
    let (status, body) = get(&b, "/live/demo/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, multivariant, "the multivariant playlist is the same");
    // The same MPD too: the segments' media times came back with the history, and the
    // periods are placed from them as they were from the anchors.
    let (status, body) = get(&b, "/live/demo/manifest.mpd").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        mpd,
        "the MPD after the restart"
    );
    for (url, was) in &bodies {
        let (status, body) = get(&b, url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_eq!(&body, was, "{url} served other bytes after the restart");
    }

    // A new publish starts a new run; the old one (not recorded) leaves the store:
    // its segments and its index. Only init sections and the new run remain.
    origin.follow(&hub, "demo");
    let old_files = files(&dir);
    assert!(
        old_files.iter().any(|f| f.ends_with("index-0.txt")),
        "{old_files:?}"
    );
    publish_demo(&hub, 3).await.unwrap();
    let pl = playlist_until(
        &b,
        "/live/demo/source/index.m3u8",
        "the new run's end",
        |pl| {
            ended(pl)
                && media_uris(pl)
                    .iter()
                    .all(|u| !bodies.contains_key(&format!("/live/demo/source/{u}")))
        },
    )
    .await;
    assert!(origin.drain(Duration::from_secs(10)).await);
    let now = files(&dir);
    for f in &old_files {
        if f.ends_with(".m4s") || f.contains("/index-") {
            assert!(
                !now.contains(f),
                "{f} of the old run is still in the store:\n{now:?}"
            );
        }
    }
    for u in media_uris(&pl).iter().filter(|u| u.ends_with(".m4s")) {
        let (status, _) = get(&b, &format!("/live/demo/source/{u}")).await;
        assert_eq!(status, StatusCode::OK, "{u}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_recording_comes_back_with_its_window_only() {
    let dir = temp_dir("restore-window");
    let config = OriginConfig {
        reconnect_grace: Duration::from_millis(300),
        segment_duration: Duration::from_secs(1),
        // At least six segments are kept whatever the setting says.
        dvr_window: Duration::from_secs(1),
        ..OriginConfig::default()
    };
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
    origin.follow(&hub, "demo");
    let a = app(&origin);
    publish_demo(&hub, 10).await.unwrap();
    let was = playlist_until(&a, "/live/demo/source/index.m3u8", "ENDLIST", ended).await;
    assert!(origin.drain(Duration::from_secs(10)).await);
    drop((a, origin, hub));

    let origin = Origin::new(config, Arc::new(LocalDirStore::new(&dir)));
    let b = app(&origin);
    let pl = playlist_until(&b, "/live/demo/source/index.m3u8", "ENDLIST", ended).await;
    let segments = |pl: &str| -> Vec<String> {
        media_uris(pl)
            .into_iter()
            .filter(|u| u.ends_with(".m4s") && !u.contains("init"))
            .collect()
    };
    let (now, then) = (segments(&pl), segments(&was));
    // The live window slid by completion time, the restored one is cut by duration from
    // the end: the same segments, give or take the oldest one.
    assert!((6..=8).contains(&now.len()), "{pl}");
    assert!(now.len().abs_diff(then.len()) <= 1, "{pl}\nwas:\n{was}");
    assert_eq!(now.last(), then.last());
    for u in &now {
        let (status, _) = get(&b, &format!("/live/demo/source/{u}")).await;
        assert_eq!(status, StatusCode::OK, "{u}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_object_that_cannot_be_read_is_refused_and_nothing_else_breaks() {
    let dir = temp_dir("restore-bad");
    let store = Arc::new(LocalDirStore::new(&dir));
    std::fs::create_dir_all(dir.join("media/demo")).unwrap();
    std::fs::write(
        dir.join("media/demo/run.txt"),
        b"starling-run 1\nsession zz\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("media/other")).unwrap();
    std::fs::write(dir.join("media/other/run.txt"), b"not a run file").unwrap();
    let origin = Origin::new(OriginConfig::default(), store);
    let b = app(&origin);
    for ch in ["demo", "other", "never-published"] {
        let (status, _) = get(&b, &format!("/live/{ch}/source/index.m3u8")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{ch}");
    }
    // The channel still works: a publish goes live as usual.
    let hub = Arc::new(Hub::default());
    origin.follow(&hub, "demo");
    let live = publish_demo(&hub, 3);
    let pl = playlist_until(&b, "/live/demo/source/index.m3u8", "a segment", |pl| {
        pl.contains("#EXTINF")
    })
    .await;
    assert!(!ended(&pl));
    live.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session id that began `ago` before `now` (unix ms in the high 44 bits).
fn session_from(now: std::time::SystemTime, ago: Duration) -> String {
    let ms = (now - ago)
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    format!("{:016x}", ms << 20 | 7)
}

fn leave(dir: &Path, session: &str) {
    let d = dir.join(format!("media/demo/{session}/source"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("0.m4s"), b"left behind").unwrap();
    std::fs::write(d.join("init-0.mp4"), b"left behind").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_delete_what_retention_no_longer_keeps_and_never_the_listed_run() {
    let now = std::time::SystemTime::now();
    let hour = Duration::from_secs(3600);
    for (record, retention) in [(false, None), (true, None), (true, Some(24 * hour))] {
        let dir = temp_dir("sweep");
        let config = OriginConfig {
            reconnect_grace: Duration::from_millis(300),
            record,
            recording_retention: retention,
            ..OriginConfig::default()
        };
        // A run this process will list, and sessions a crashed process left behind.
        let hub = Arc::new(Hub::default());
        let origin = Origin::new(config.clone(), Arc::new(LocalDirStore::new(&dir)));
        origin.follow(&hub, "demo");
        let b = app(&origin);
        publish_demo(&hub, 3).await.unwrap();
        let pl = playlist_until(&b, "/live/demo/source/index.m3u8", "ENDLIST", ended).await;
        assert!(origin.drain(Duration::from_secs(10)).await);
        let (recent, hours_old, days_old) = (
            session_from(now, Duration::from_secs(60)),
            session_from(now, 2 * hour),
            session_from(now, 48 * hour),
        );
        for s in [&recent, &hours_old, &days_old] {
            leave(&dir, s);
        }
        let swept = origin.sweep("demo", now).await.unwrap();
        let left = |s: &str| dir.join(format!("media/demo/{s}")).exists();
        let want: &[(&str, bool)] = match (record, retention) {
            // Not recording: anything outside the listed run goes once settled.
            (false, _) => &[(&recent, true), (&hours_old, false), (&days_old, false)],
            // Recording for ever: nothing goes.
            (true, None) => &[(&recent, true), (&hours_old, true), (&days_old, true)],
            // Recording for a day: the two-day-old session goes.
            (true, Some(_)) => &[(&recent, true), (&hours_old, true), (&days_old, false)],
        };
        for (s, kept) in want {
            assert_eq!(
                left(s),
                *kept,
                "record {record}, retention {retention:?}: session {s}"
            );
        }
        assert_eq!(swept, want.iter().filter(|(_, k)| !k).count());
        // The listed run is whole: every segment still answers, byte for byte from the store.
        for u in media_uris(&pl).iter().filter(|u| u.ends_with(".m4s")) {
            let (status, _) = get(&b, &format!("/live/demo/source/{u}")).await;
            assert_eq!(status, StatusCode::OK, "{u} after the sweep");
        }
        // A sweep by a fresh process (restart) protects the run it reads back too.
        drop((b, origin, hub));
        let origin = Origin::new(config, Arc::new(LocalDirStore::new(&dir)));
        origin.sweep("demo", now + 3 * hour).await.unwrap();
        let b = app(&origin);
        for u in media_uris(&pl).iter().filter(|u| u.ends_with(".m4s")) {
            let (status, _) = get(&b, &format!("/live/demo/source/{u}")).await;
            assert_eq!(status, StatusCode::OK, "{u} after a sweep by a new process");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
