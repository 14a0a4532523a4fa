//! A backup publisher standing by, and taking over when the primary drops or goes
//! silent.

use std::time::{Duration, SystemTime};

use super::*;

/// Video frame at `dts` ms arriving `ms` after `t0`, with a payload naming its sender.
fn vf(dts: i64, key: bool, t0: SystemTime, ms: u64, who: &'static [u8]) -> MediaEvent {
    let MediaEvent::Frame(mut f) = video(dts, key) else {
        unreachable!()
    };
    f.arrival = t0 + Duration::from_millis(ms);
    f.data = Bytes::from_static(who);
    MediaEvent::Frame(f)
}

/// Events waiting for `s`, without waiting for more.
fn pending(s: &mut Subscriber) -> Vec<HubEvent> {
    let mut out = Vec::new();
    while let Some(e) = s.backlog.pop_front() {
        out.push(e);
    }
    while let Ok(e) = s.rx.try_recv() {
        out.push(e);
    }
    out
}

fn senders(events: &[HubEvent]) -> Vec<&[u8]> {
    events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Frame(f) => Some(&f.data[..]),
            _ => None,
        })
        .collect()
}

#[test]
fn a_backup_stands_by_unseen_while_the_primary_sends() {
    let hub = Hub::default();
    let t0 = SystemTime::now();
    let a = hub.publish("c", false).unwrap();
    let b = hub.publish_backup("c").unwrap();
    assert!(hub.has_backup("c"));
    let mut s = hub.subscribe("c");
    a.send(MediaEvent::Stream(stream()));
    b.send(MediaEvent::Stream(stream()));
    for i in 0..20u64 {
        assert!(a.send(vf(i as i64 * 40, i.is_multiple_of(10), t0, i * 40, b"A")));
        assert!(b.send(vf(
            i as i64 * 40 + 7,
            i.is_multiple_of(10),
            t0,
            i * 40 + 5,
            b"B"
        )));
    }
    let events = pending(&mut s);
    assert!(senders(&events).iter().all(|w| *w == b"A"), "{events:?}");
    assert_eq!(senders(&events).len(), 20);
    assert_eq!(hub.metrics().failovers.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_backup_takes_over_at_once_when_the_primary_drops() {
    let hub = Hub::default();
    let mut life = hub.lifecycle();
    let t0 = SystemTime::now();
    let a = hub.publish("c", false).unwrap();
    let b = hub.publish_backup("c").unwrap();
    a.send(MediaEvent::Stream(stream()));
    b.send(MediaEvent::Stream(stream()));
    for i in 0..12u64 {
        a.send(vf(i as i64 * 40, i.is_multiple_of(10), t0, i * 40, b"A"));
        b.send(vf(i as i64 * 40, i.is_multiple_of(10), t0, i * 40, b"B"));
    }
    let mut s = hub.subscribe("c");
    pending(&mut s);
    drop(a);
    // Ended, then the backup's stream and its GOP from its last keyframe (frame 10).
    let events = pending(&mut s);
    assert!(matches!(events[0], HubEvent::Ended), "{events:?}");
    assert!(matches!(events[1], HubEvent::Stream(_)), "{events:?}");
    assert_eq!(senders(&events), [b"B", b"B"]);
    let HubEvent::Frame(first) = &events[2] else {
        panic!("{events:?}")
    };
    assert!(first.keyframe && first.dts == 400);
    // The backup is the publisher now: its frames go out, the channel stayed live.
    assert!(b.send(vf(480, false, t0, 480, b"B")));
    assert_eq!(senders(&pending(&mut s)), [b"B"]);
    assert!(hub.is_live("c") && !hub.has_backup("c"));
    let starts: Vec<_> = std::iter::from_fn(|| life.try_recv().ok()).collect();
    assert!(
        matches!(
            starts.as_slice(),
            [
                Lifecycle::Started {
                    takeover: false,
                    ..
                },
                Lifecycle::Started { takeover: true, .. }
            ]
        ),
        "no end reported: {starts:?}"
    );
    assert_eq!(hub.metrics().failovers.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_silent_primary_is_replaced_once_the_backup_has_sent_for_the_failover_time() {
    let hub = Hub::default();
    let t0 = SystemTime::now();
    let a = hub.publish("c", false).unwrap();
    let b = hub.publish_backup("c").unwrap();
    a.send(MediaEvent::Stream(stream()));
    b.send(MediaEvent::Stream(stream()));
    // The primary's last frame arrives at 1000 ms; then it is silent but connected.
    for i in 0..=25u64 {
        a.send(vf(i as i64 * 40, i.is_multiple_of(10), t0, i * 40, b"A"));
    }
    let mut s = hub.subscribe("c");
    pending(&mut s);
    // The backup goes on; up to 1.5 s after the primary's last frame nothing changes.
    let mut i = 0u64;
    while 40 * i < 1000 + 1460 {
        assert!(b.send(vf(i as i64 * 40, i.is_multiple_of(10), t0, i * 40, b"B")));
        i += 1;
    }
    assert!(senders(&pending(&mut s)).is_empty());
    assert!(!a.is_stopped());
    // Its next frame (2.48 s, silence 1.48 s) does not either; the one at 2.52 s does.
    b.send(vf(2480, false, t0, 2480, b"B"));
    assert!(pending(&mut s).is_empty());
    b.send(vf(2520, false, t0, 2520, b"B"));
    let events = pending(&mut s);
    assert!(matches!(events[0], HubEvent::Ended), "{events:?}");
    // From its keyframe at 2400 ms: 2400, 2440, 2480, 2520.
    assert_eq!(senders(&events).len(), 4, "{events:?}");
    // The old primary is told to stop, and whatever it still sends is dropped.
    assert!(a.is_stopped());
    assert!(!a.send(vf(1040, false, t0, 2600, b"A")));
    assert!(pending(&mut s).is_empty());
}

#[tokio::test]
async fn a_backup_without_a_keyframe_yet_takes_over_at_its_first() {
    let hub = Hub::default();
    let mut life = hub.lifecycle();
    let t0 = SystemTime::now();
    let a = hub.publish("c", false).unwrap();
    let b = hub.publish_backup("c").unwrap();
    a.send(MediaEvent::Stream(stream()));
    a.send(vf(0, true, t0, 0, b"A"));
    b.send(MediaEvent::Stream(stream()));
    b.send(vf(0, false, t0, 0, b"B"));
    let mut s = hub.subscribe("c");
    pending(&mut s);
    drop(a);
    // Not ready: the channel ends as before...
    assert!(matches!(pending(&mut s).as_slice(), [HubEvent::Ended]));
    assert!(!hub.is_live("c") && hub.has_backup("c"));
    // ...and the backup's first keyframe starts it again.
    b.send(vf(40, true, t0, 40, b"B"));
    let events = pending(&mut s);
    assert!(matches!(events[0], HubEvent::Stream(_)), "{events:?}");
    assert_eq!(senders(&events), [b"B"]);
    assert!(hub.is_live("c"));
    let kinds: Vec<_> = std::iter::from_fn(|| life.try_recv().ok()).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [
                Lifecycle::Started {
                    takeover: false,
                    ..
                },
                Lifecycle::Ended { .. },
                Lifecycle::Started {
                    takeover: false,
                    ..
                }
            ]
        ),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn backups_replace_each_other_and_leave_cleanly() {
    let hub = Hub::default();
    // Alone, a backup is simply the publisher.
    let solo = hub.publish_backup("alone").unwrap();
    assert!(hub.is_live("alone") && !hub.has_backup("alone"));
    drop(solo);
    assert!(!hub.is_live("alone"));

    let _a = hub.publish("c", false).unwrap();
    let b1 = hub.publish_backup("c").unwrap();
    let b2 = hub.publish_backup("c").unwrap();
    assert!(b1.is_stopped() && !b2.is_stopped());
    // The replaced backup leaving does not remove its successor.
    drop(b1);
    assert!(hub.has_backup("c"));
    drop(b2);
    assert!(!hub.has_backup("c") && hub.is_live("c"));
    // Stopping the channel stops its backup too.
    let b3 = hub.publish_backup("c").unwrap();
    assert!(hub.stop_publisher("c"));
    assert!(b3.is_stopped());
}
