//! The hub's unit tests: fan-out, GOP cache, takeovers, lag, and failover to a backup.

use bytes::Bytes;
use starling_media::{h264::AvcConfig, CodecConfig, OpusConfig, Track, TrackId};

use super::*;

// SPS/PPS of a 320x240 baseline stream made by
// `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 1 -c:v libx264 -profile:v baseline -f h264 -`.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn stream() -> Arc<Stream> {
    let avc =
        AvcConfig::from_parameter_sets(&[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)])
            .unwrap();
    Arc::new(Stream {
        tracks: vec![
            Track {
                id: TrackId(1),
                timescale: 1000,
                config: CodecConfig::H264(avc),
            },
            Track {
                id: TrackId(2),
                timescale: 48000,
                config: CodecConfig::Opus(OpusConfig {
                    channels: 2,
                    pre_skip: 312,
                    input_sample_rate: 48000,
                    output_gain: 0,
                }),
            },
        ],
        metadata: vec![],
        clock: Default::default(),
    })
}

fn video(dts: i64, key: bool) -> MediaEvent {
    MediaEvent::Frame(Frame {
        track: TrackId(1),
        pts: dts,
        dts,
        keyframe: key,
        data: Bytes::from(vec![dts as u8; 100]),
        arrival: SystemTime::now(),
    })
}

fn audio(dts: i64) -> MediaEvent {
    MediaEvent::Frame(Frame {
        track: TrackId(2),
        pts: dts,
        dts,
        keyframe: true,
        data: Bytes::from_static(b"opus"),
        arrival: SystemTime::now(),
    })
}

async fn next_frame(s: &mut Subscriber) -> Frame {
    loop {
        match s.recv().await.unwrap() {
            HubEvent::Frame(f) => return f,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn late_subscriber_starts_on_the_cached_keyframe() {
    let hub = Hub::default();
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    for i in 0..10 {
        p.send(video(i * 40, i % 4 == 0));
        p.send(audio(i * 40));
    }
    // The GOP started at frame 8 (dts 320).
    let mut s = hub.subscribe("a");
    assert!(matches!(s.recv().await, Some(HubEvent::Stream(_))));
    let f = next_frame(&mut s).await;
    assert!(f.keyframe && f.dts == 320 && f.track == TrackId(1));
    assert_eq!(next_frame(&mut s).await.track, TrackId(2));
    assert_eq!(next_frame(&mut s).await.dts, 360);
    // Then live frames follow without a gap or a duplicate.
    p.send(video(400, false));
    let mut last = 0;
    loop {
        let f = next_frame(&mut s).await;
        if f.track == TrackId(1) {
            last = f.dts;
        }
        if last == 400 {
            break;
        }
    }
}

#[test]
fn lifecycle_reports_starts_takeovers_and_how_publishes_end() {
    let hub = Hub::default();
    let mut rx = hub.lifecycle();
    let mut next = || rx.try_recv().unwrap();
    let a = hub.publish("a", false).unwrap();
    assert!(
        matches!(next(), Lifecycle::Started { channel, takeover: false, .. } if channel == "a")
    );
    // A refused second publisher reports nothing.
    assert!(hub.publish("a", false).is_err());
    let b = hub.publish("a", true).unwrap();
    assert!(matches!(next(), Lifecycle::Started { takeover: true, .. }));
    // The replaced publisher going away is not the channel ending.
    drop(a);
    b.finish();
    assert!(matches!(next(), Lifecycle::Ended { channel, finished: true, .. } if channel == "a"));
    let c = hub.publish("b", false).unwrap();
    drop(c);
    assert!(matches!(next(), Lifecycle::Started { .. }));
    assert!(matches!(
        next(),
        Lifecycle::Ended {
            finished: false,
            ..
        }
    ));
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn second_publisher_is_refused_unless_takeover() {
    let hub = Hub::default();
    let mut first = hub.publish("a", false).unwrap();
    assert!(matches!(
        hub.publish("a", false),
        Err(PublishError::AlreadyLive { .. })
    ));
    let second = hub.publish("a", true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(1), first.stopped())
        .await
        .unwrap();
    // The replaced publisher's events go nowhere, and dropping it doesn't end the new one.
    assert!(!first.send(MediaEvent::Stream(stream())));
    drop(first);
    assert!(hub.is_live("a"));
    assert!(second.send(MediaEvent::Stream(stream())));
    drop(second);
    assert!(!hub.is_live("a"));
    assert!(hub.publish("a", false).is_ok());
}

#[tokio::test]
async fn stop_publisher_signals_the_live_one() {
    let hub = Hub::default();
    let mut p = hub.publish("a", false).unwrap();
    assert!(!p.is_stopped());
    assert!(hub.stop_publisher("a"));
    p.stopped().await;
    assert!(p.is_stopped());
    assert!(!hub.stop_publisher("nope"));
}

#[tokio::test]
async fn publisher_end_reaches_subscribers_and_a_new_publish_is_announced() {
    let hub = Hub::default();
    let mut s = hub.subscribe("a");
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    drop(p);
    assert!(matches!(s.recv().await, Some(HubEvent::Stream(_))));
    assert!(matches!(s.recv().await, Some(HubEvent::Ended)));
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    assert!(matches!(s.recv().await, Some(HubEvent::Stream(_))));
}

#[tokio::test]
async fn payloads_are_shared_not_copied() {
    let hub = Hub::default();
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    let mut a = hub.subscribe("a");
    let mut b = hub.subscribe("a");
    p.send(video(0, true));
    let fa = next_frame(&mut a).await;
    let fb = next_frame(&mut b).await;
    assert_eq!(fa.data.as_ptr(), fb.data.as_ptr());
}

#[tokio::test]
async fn a_slow_consumer_never_blocks_the_producer_and_resumes_on_a_keyframe() {
    let hub = Hub::new(HubConfig {
        queue_len: 16,
        ..HubConfig::default()
    });
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    let mut slow = hub.subscribe("a");
    let mut fast = hub.subscribe("a");
    let _ = slow.recv().await; // the Stream
                               // 1000 frames while `slow` reads nothing: every send returns at once.
    let mut fast_seen = 0;
    for i in 0..1000 {
        assert!(p.send(video(i * 40, i % 30 == 0)));
        while let Ok(Some(HubEvent::Frame(_))) =
            tokio::time::timeout(std::time::Duration::ZERO, fast.recv()).await
        {
            fast_seen += 1;
        }
    }
    p.send(video(40_000, true));
    assert!(fast_seen >= 990, "the fast consumer saw {fast_seen}");
    // The slow one is re-announced the stream and resumes on a keyframe.
    assert!(matches!(slow.recv().await, Some(HubEvent::Stream(_))));
    let f = next_frame(&mut slow).await;
    assert!(f.keyframe, "resumed on {f:?}");
    assert!(slow.lagged() > 900);
    assert!(hub.metrics().consumer_lag_events.load(Ordering::Relaxed) > 900);
}

#[tokio::test]
async fn gop_cache_is_bounded() {
    let hub = Hub::new(HubConfig {
        gop_cache_max_frames: 5,
        ..HubConfig::default()
    });
    let p = hub.publish("a", false).unwrap();
    p.send(MediaEvent::Stream(stream()));
    for i in 0..20 {
        p.send(video(i, i == 0));
    }
    // The GOP outgrew its cap: a new consumer gets the stream and waits for a keyframe
    // rather than a partial GOP that cannot be decoded.
    let mut s = hub.subscribe("a");
    assert!(matches!(s.recv().await, Some(HubEvent::Stream(_))));
    p.send(video(100, true));
    let f = next_frame(&mut s).await;
    assert_eq!((f.dts, f.keyframe), (100, true));
}

#[test]
fn histogram_quantiles() {
    let h = Histogram::default();
    assert_eq!(h.quantile_upper_bound_us(0.5), None);
    for _ in 0..99 {
        h.observe_us(80);
    }
    h.observe_us(40_000);
    assert_eq!(h.quantile_upper_bound_us(0.5), Some(100));
    assert_eq!(h.quantile_upper_bound_us(0.99), Some(100));
    assert_eq!(h.quantile_upper_bound_us(1.0), Some(50_000));
    let mut out = String::new();
    h.render("x", "help", &mut out);
    assert!(out.contains("x_bucket{le=\"0.0001\"} 99"), "{out}");
    assert!(out.contains("x_count 100"));
}

mod failover;

/// A standby backup's frames go to the standby feed only; a subscriber that comes later
/// starts on its newest GOP; the feed ends when the backup takes over, and from then
/// on its frames are the channel's.
#[tokio::test]
async fn a_standby_backup_has_a_feed_of_its_own_until_it_takes_over() {
    let hub = Hub::default();
    let mut main = hub.subscribe("a");
    let primary = hub.publish("a", false).unwrap();
    primary.send(MediaEvent::Stream(stream()));
    primary.send(video(0, true));
    let backup = hub.publish_backup("a").unwrap();
    let mut early = hub.subscribe_standby("a");
    backup.send(MediaEvent::Stream(stream()));
    backup.send(video(0, true));
    backup.send(video(40, false));
    assert!(matches!(early.recv().await, Some(HubEvent::Stream(_))));
    assert_eq!(next_frame(&mut early).await.dts, 0);
    assert_eq!(next_frame(&mut early).await.dts, 40);
    let mut late = hub.subscribe_standby("a");
    assert!(matches!(late.recv().await, Some(HubEvent::Stream(_))));
    assert_eq!(
        next_frame(&mut late).await.dts,
        0,
        "from its newest keyframe"
    );
    // The channel's own feed has the primary's frame only.
    assert!(matches!(main.recv().await, Some(HubEvent::Stream(_))));
    assert_eq!(next_frame(&mut main).await.dts, 0);
    assert!(main.rx.is_empty());
    // The primary leaves: the standby feed ends, the backup's frames are the channel's.
    drop(primary);
    assert_eq!(next_frame(&mut late).await.dts, 40);
    assert!(matches!(late.recv().await, Some(HubEvent::Ended)));
    backup.send(video(80, false));
    assert!(matches!(main.recv().await, Some(HubEvent::Ended)));
    assert!(matches!(main.recv().await, Some(HubEvent::Stream(_))));
    assert_eq!(next_frame(&mut main).await.dts, 0);
    assert_eq!(next_frame(&mut main).await.dts, 40);
    assert_eq!(next_frame(&mut main).await.dts, 80);
    assert!(late.rx.is_empty(), "nothing more on the standby feed");
}
