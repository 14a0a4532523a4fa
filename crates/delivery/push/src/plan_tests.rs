//! The plan on made-up time: order, supersede, retry with backoff, budgets, refusals,
//! deletes as the window slides, the queue bound.

use std::ops::Range;

use starling_origin::{OutboundObject, OutboundRendition, OutboundSegment};

use super::*;

const S: &str = "00000000000000aa";

fn snapshot(msns: Range<u64>) -> OutboundSnapshot {
    let segments: Vec<OutboundSegment> = msns
        .clone()
        .map(|m| OutboundSegment {
            uri: format!("{S}/{m}.m4s"),
            msn: m,
            body: Bytes::from(format!("seg{m}")),
            completed_at: None,
        })
        .collect();
    let playlist = hls::MediaPlaylist {
        target_duration: 2,
        media_sequence: msns.start,
        map: Some(hls::Map {
            uri: format!("{S}/init-0.mp4"),
        }),
        segments: msns
            .map(|m| hls::Segment {
                uri: format!("{S}/{m}.m4s"),
                duration: 2.0,
                title: None,
                program_date_time: None,
                discontinuity: false,
                gap: false,
                map: None,
                parts: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    OutboundSnapshot {
        live: true,
        ended: false,
        renditions: vec![OutboundRendition {
            name: "source",
            inits: vec![OutboundObject {
                uri: format!("{S}/init-0.mp4"),
                body: Bytes::from_static(b"init"),
            }],
            segments,
            playlist: Some(playlist),
        }],
        multivariant: Some(hls::MultivariantPlaylist {
            variants: vec![hls::Variant {
                uri: "source/index.m3u8".into(),
                bandwidth: 1_000_000,
                average_bandwidth: None,
                codecs: "avc1.64001f".into(),
                resolution: None,
                frame_rate: None,
                audio_group: None,
            }],
            ..Default::default()
        }),
    }
}

fn cfg() -> PlanConfig {
    PlanConfig {
        window_segments: 3,
        segment_budget: Duration::from_secs(6),
        ..PlanConfig::default()
    }
}

/// `PUT path` or `DELETE path`.
fn line(r: &Request) -> String {
    let m = if r.body.is_some() { "PUT" } else { "DELETE" };
    format!("{m} {}", r.path)
}

fn ok() -> Answer {
    Answer::Status(201, String::new())
}

/// Sends and answers everything due at `now`, with `answer` per request.
fn drain(p: &mut Plan, now: Instant, mut answer: impl FnMut(&Request) -> Answer) -> Vec<String> {
    let mut out = Vec::new();
    while let Next::Send(r) = p.poll(now) {
        out.push(line(&r));
        p.done(now, answer(&r));
    }
    out
}

fn events(p: &mut Plan) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

#[test]
fn objects_go_before_the_playlists_that_name_them() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..2));
    let mut texts = Vec::new();
    let sent = drain(&mut p, t0, |r| {
        if r.kind == Kind::Playlist || r.kind == Kind::Multivariant {
            texts.push(String::from_utf8_lossy(r.body.as_ref().unwrap()).into_owned());
        }
        ok()
    });
    assert_eq!(
        sent,
        [
            format!("PUT source/{S}-init-0.mp4"),
            format!("PUT source/{S}-0.m4s"),
            format!("PUT source/{S}-1.m4s"),
            "PUT source/index.m3u8".into(),
            "PUT index.m3u8".into(),
        ]
    );
    assert!(texts[0].contains(&format!("{S}-0.m4s\n")), "{}", texts[0]);
    assert!(texts[1].contains("source/index.m3u8"), "{}", texts[1]);
    assert!(p.is_idle());
    // The same snapshot again: nothing new, and identical playlists are not resent.
    p.observe(t0, &snapshot(0..2));
    assert!(drain(&mut p, t0, |_| ok()).is_empty());
    // New bandwidth figures alone: the multivariant playlist waits for its refresh.
    let mut s = snapshot(0..2);
    let figures = |s: &mut OutboundSnapshot, b| {
        s.multivariant.as_mut().unwrap().variants[0].bandwidth = b;
    };
    figures(&mut s, 2_000_000);
    p.observe(t0, &s);
    assert!(drain(&mut p, t0, |_| ok()).is_empty());
    let later = t0 + MULTIVARIANT_REFRESH;
    p.observe(later, &s);
    assert_eq!(drain(&mut p, later, |_| ok()), ["PUT index.m3u8"]);
}

#[test]
fn a_newer_playlist_supersedes_a_queued_one() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..1));
    p.observe(t0, &snapshot(0..2));
    let mut playlists = Vec::new();
    let sent = drain(&mut p, t0, |r| {
        if r.kind == Kind::Playlist {
            playlists.push(String::from_utf8_lossy(r.body.as_ref().unwrap()).into_owned());
        }
        ok()
    });
    assert_eq!(
        sent.iter()
            .filter(|l| l.ends_with("source/index.m3u8"))
            .count(),
        1
    );
    // The one playlist sent names both segments, and went after both.
    assert!(playlists[0].contains("-1.m4s"));
    let pos = |s: &str| sent.iter().position(|l| l.ends_with(s)).unwrap();
    assert!(pos("-1.m4s") < pos("source/index.m3u8"));
    let ev = events(&mut p);
    assert!(ev.contains(&Event::Superseded {
        path: "source/index.m3u8".into()
    }));
}

#[test]
fn failures_are_retried_with_backoff_and_the_order_holds() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..1));
    let Next::Send(r) = p.poll(t0) else { panic!() };
    assert_eq!(r.kind, Kind::Init);
    p.done(t0, Answer::Failed("connection refused".into()));
    // Backoff: 250 ms, then 500 ms, then 1 s; nothing else goes meanwhile.
    let mut at = t0;
    for wait in [250, 500, 1000] {
        let Next::Wait(w) = p.poll(at) else { panic!() };
        assert_eq!(w - at, Duration::from_millis(wait));
        at = w;
        let Next::Send(r) = p.poll(at) else { panic!() };
        assert_eq!(r.kind, Kind::Init);
        p.done(at, Answer::Status(503, "busy".into()));
    }
    let retries = events(&mut p)
        .into_iter()
        .filter(|e| matches!(e, Event::Retry { .. }))
        .count();
    assert_eq!(retries, 4);
    // The remote is back: the rest follows in order.
    let Next::Wait(w) = p.poll(at) else { panic!() };
    let sent = drain(&mut p, w, |_| ok());
    assert_eq!(
        sent,
        [
            format!("PUT source/{S}-init-0.mp4"),
            format!("PUT source/{S}-0.m4s"),
            "PUT source/index.m3u8".into(),
            "PUT index.m3u8".into(),
        ]
    );
}

#[test]
fn a_segment_past_its_budget_is_dropped_and_the_playlist_skips_the_hole() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..1));
    // Init and segment 0 go; the remote is down before segment 1.
    assert_eq!(drain(&mut p, t0, |_| ok()).len(), 4);
    p.observe(t0 + Duration::from_secs(2), &snapshot(0..2));
    let t1 = t0 + Duration::from_secs(2);
    let Next::Send(r) = p.poll(t1) else { panic!() };
    assert!(r.path.ends_with("-1.m4s"));
    p.done(t1, Answer::Failed("down".into()));
    // Down for longer than the budget (6 s): segment 1 is dropped.
    let t2 = t1 + Duration::from_secs(7);
    p.observe(t2, &snapshot(0..3));
    let mut playlist = String::new();
    let sent = drain(&mut p, t2, |r| {
        if r.kind == Kind::Playlist {
            playlist = String::from_utf8_lossy(r.body.as_ref().unwrap()).into_owned();
        }
        ok()
    });
    assert_eq!(sent[0], format!("PUT source/{S}-2.m4s"));
    assert!(events(&mut p).iter().any(|e| matches!(
        e,
        Event::Dropped { path, .. } if path.ends_with("-1.m4s")
    )));
    // Never names the dropped segment: starts after it.
    assert!(!playlist.contains("-1.m4s"), "{playlist}");
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:2"), "{playlist}");
    // Segment 0 left the remote's playlist, so it is deleted after the playlist went.
    let pos = |s: &str| sent.iter().position(|l| l.ends_with(s)).unwrap();
    assert!(pos("source/index.m3u8") < pos(&format!("{S}-0.m4s")));
    assert!(sent.contains(&format!("DELETE source/{S}-0.m4s")));
}

#[test]
fn refusals_are_reported_once_and_not_retried_blindly() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..1));
    let Next::Send(_) = p.poll(t0) else { panic!() };
    p.done(t0, Answer::Status(403, "unknown stream key".into()));
    // The channel pauses: one attempt per pause, not a storm.
    let Next::Wait(w) = p.poll(t0 + Duration::from_secs(1)) else {
        panic!()
    };
    assert_eq!(w - t0, Duration::from_secs(10));
    // By then (10 s > the 6 s budget) the init section and segment 0 expired, and the
    // playlists name nothing delivered: nothing is sent until the next segment, which
    // brings the init section back to the queue.
    assert!(matches!(p.poll(w), Next::Idle));
    p.observe(w, &snapshot(0..2));
    let Next::Send(r) = p.poll(w) else { panic!() };
    assert_eq!(r.kind, Kind::Init);
    p.done(w, Answer::Status(403, "unknown stream key".into()));
    let refused: Vec<bool> = events(&mut p)
        .into_iter()
        .filter_map(|e| match e {
            Event::Refused { first, status, .. } => {
                assert_eq!(status, 403);
                Some(first)
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused, [true, false]);

    // An object the remote refuses (422) is dropped at once; the rest goes on.
    let mut p = Plan::new(cfg());
    p.observe(t0, &snapshot(0..2));
    let sent = drain(&mut p, t0, |r| {
        if r.path.ends_with("-0.m4s") {
            Answer::Status(422, "segment body is not CMAF".into())
        } else {
            ok()
        }
    });
    assert_eq!(sent.iter().filter(|l| l.ends_with("-0.m4s")).count(), 1);
    assert!(sent.contains(&format!("PUT source/{S}-1.m4s")));
    let ev = events(&mut p);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Refused { status: 422, first: true, pause: None, reason, .. } if reason == "segment body is not CMAF"
    )));
}

#[test]
fn the_window_slides_with_deletes_after_the_playlist() {
    let t0 = Instant::now();
    let mut p = Plan::new(cfg());
    let mut all = Vec::new();
    for n in 1..=5u64 {
        let t = t0 + Duration::from_secs(2 * n);
        // The origin keeps the last four in memory.
        p.observe(t, &snapshot(n.saturating_sub(4)..n));
        all.extend(drain(&mut p, t, |_| ok()));
    }
    let deletes: Vec<&String> = all.iter().filter(|l| l.starts_with("DELETE")).collect();
    assert_eq!(
        deletes,
        [
            &format!("DELETE source/{S}-0.m4s"),
            &format!("DELETE source/{S}-1.m4s")
        ]
    );
    // Each segment was pushed once.
    for m in 0..5 {
        let put = format!("PUT source/{S}-{m}.m4s");
        assert_eq!(all.iter().filter(|l| **l == put).count(), 1, "{put}");
    }
}

#[test]
fn the_queue_is_bounded() {
    let t0 = Instant::now();
    let mut p = Plan::new(PlanConfig {
        max_queue: 4,
        ..cfg()
    });
    p.observe(t0, &snapshot(0..10));
    assert!(p.queued() <= 4);
    let dropped = events(&mut p)
        .into_iter()
        .filter(|e| matches!(e, Event::Dropped { .. }))
        .count();
    assert!(dropped >= 6, "{dropped}");
    // What is left still goes out in order, and the playlist names only what went.
    let sent = drain(&mut p, t0, |_| ok());
    assert_eq!(sent.last().map(String::as_str), Some("PUT index.m3u8"));
}
