//! Per-rendition wake-ups: requests blocked on the audio rendition sleep through video
//! parts, and every blocked request still gets the final playlist when the run ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use axum::{http::StatusCode, middleware, Router};
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::Hub;
use starling_media::MediaEvent;
use starling_origin::{http, LocalDirStore, Origin, OriginConfig};

fn app(origin: &Arc<Origin>) -> Router {
    http::router(origin.clone())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(http::guard))
}

/// The demo source on `demo` in real time until `stop`; its audio frames are dropped
/// while `mute` is set (the video goes on, so only the video rendition changes).
fn publish(
    hub: &Arc<Hub>,
    mute: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let publisher = hub.publish("demo", false).unwrap();
    tokio::spawn(async move {
        let mut src = DemoSource::new(DemoConfig {
            width: 320,
            height: 180,
            fps: 30,
            gop_frames: 30,
        })
        .unwrap();
        let stream = src.stream();
        let audio = stream.audio().map(|t| t.id);
        publisher.send(MediaEvent::Stream(stream));
        let start = tokio::time::Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep_until(start + Duration::from_nanos(n * 1_000_000_000 / 30)).await;
            n += 1;
            for f in src.next(SystemTime::now()) {
                if mute.load(Ordering::Relaxed) && Some(f.track) == audio {
                    continue;
                }
                publisher.send(MediaEvent::Frame(f));
            }
        }
        drop(publisher);
    })
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let (status, _, body) = common::get_with(app, uri, &[]).await;
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// (msn, part) of the last EXT-X-PART of a playlist.
fn live_edge(pl: &str) -> (u64, u64) {
    let uri = pl
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('"').next())
        .unwrap();
    let file = uri.rsplit('/').next().unwrap();
    let mut it = file.trim_end_matches(".m4s").split('.');
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

async fn playlist(app: &Router, uri: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, text) = get(app, uri).await;
        if status == StatusCode::OK && text.contains("#EXT-X-PART:") {
            return text;
        }
        assert!(Instant::now() < deadline, "{uri}: {status} {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_parts_do_not_wake_audio_waiters_and_the_end_of_the_run_releases_them() {
    let dir = common::temp_dir("wake");
    let hub = Arc::new(Hub::default());
    let origin = Origin::new(
        OriginConfig {
            reconnect_grace: Duration::from_secs(1),
            ..OriginConfig::default()
        },
        Arc::new(LocalDirStore::new(&dir)),
    );
    origin.follow(&hub, "demo");
    let app = app(&origin);
    let (mute, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let source = publish(&hub, mute.clone(), stop.clone());
    let audio_pl = "/live/demo/audio/index.m3u8";
    let video_pl = "/live/demo/source/index.m3u8";
    playlist(&app, audio_pl).await;
    playlist(&app, video_pl).await;

    // Audio stops; what the packager held back for the video's cut comes out within a
    // segment (2 s). Then the audio edge stands still while video parts go on.
    mute.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let audio_edge = live_edge(&playlist(&app, audio_pl).await);
    let am = audio_edge.0;
    let video_before = live_edge(&playlist(&app, video_pl).await);

    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            // Segment am + 2: with the audio muted it never comes (the end of the
            // publish still flushes what the packager held back, into segment am + 1 at
            // most).
            let uri = format!("{audio_pl}?_HLS_msn={}", am + 2);
            tokio::spawn(async move { get(&app, &uri).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = origin.metrics();
    let wakeups = || metrics.blocked_wakeups.load(Ordering::Relaxed);
    let before = wakeups();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let video_after = live_edge(&playlist(&app, video_pl).await);
    assert!(
        video_after > video_before,
        "video parts were published meanwhile"
    );
    assert_eq!(
        live_edge(&playlist(&app, audio_pl).await),
        audio_edge,
        "no audio part"
    );
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "the audio waiters still wait"
    );
    assert_eq!(
        wakeups() - before,
        0,
        "video parts woke requests blocked on the audio rendition"
    );

    // A request blocked on video is woken (the counter does count).
    let (vm, vp) = video_after;
    let (status, _) = get(
        &app,
        &format!("{video_pl}?_HLS_msn={vm}&_HLS_part={}", vp + 1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(wakeups() > before);

    // The publish ends, the grace (1 s) runs out, the run ends: every audio waiter gets
    // the final playlist, long before the blocking limit (three target durations).
    let ending = Instant::now();
    stop.store(true, Ordering::Relaxed);
    source.await.unwrap();
    for w in waiters {
        let (status, text) = w.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    }
    assert!(
        ending.elapsed() < Duration::from_secs(4),
        "{:?}",
        ending.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
