//! Sources whose clocks lie: jumps, gaps, negative composition offsets.

use super::*;

/// 30 fps video (keyframe every 2 s) and 48 kHz AAC interleaved by timestamp for
/// `secs` seconds; `fault` rewrites each frame's source timestamp (ms) or drops the
/// frame (`None`). Arrival stays real time.
fn av(p: &mut Packager, secs: i64, fault: impl Fn(TrackId, i64) -> Option<i64>) -> Vec<Output> {
    let mut out = p.push(stream(Some(avc("68cb83cb20")), Some(aac(48_000))));
    let (mut v, mut a) = (0, 0);
    loop {
        let vf = vframe(v, 30.0, 60, t0());
        let af = aframe(a, 48_000, t0());
        let mut f = if af.dts <= vf.dts {
            a += 1;
            af
        } else {
            v += 1;
            vf
        };
        if f.dts >= secs * 1000 {
            break;
        }
        let Some(ms) = fault(f.track, f.dts) else {
            continue;
        };
        f.pts += ms - f.dts;
        f.dts = ms;
        out.extend(p.push(Input::Frame(f)));
    }
    out.extend(p.push(Input::End));
    out
}

fn msns(segs: &[Seg]) -> Vec<u64> {
    segs.iter().map(|s| s.msn).collect()
}

/// The checks every faulty stream must pass: bounded segments and parts, numbers that
/// agree, a discontinuity on the same number in both renditions.
fn check_jump(out: &[Output], p: &Packager, secs: f64) {
    let video = segments(out, "source");
    let audio = segments(out, "audio");
    assert_eq!(msns(&video), msns(&audio));
    assert_eq!(p.timestamp_jumps(), 1);
    let disc = |s: &[Seg]| -> Vec<u64> {
        s.iter()
            .filter(|s| s.discontinuity)
            .map(|s| s.msn)
            .collect()
    };
    assert_eq!(disc(&video).len(), 1, "{video:?}");
    assert_eq!(disc(&video), disc(&audio));
    for s in video.iter().chain(&audio) {
        assert!(s.duration <= 3.0 + 0.011, "{s:?}");
        assert!(s.parts.iter().all(|p| p.1 <= 0.333 + 1e-9), "{s:?}");
    }
    let total: f64 = video.iter().map(|s| s.duration).sum();
    assert!((total - secs).abs() < 0.1, "{total}");
    // Media time runs on: the last segment starts where the one before ended.
    for pair in video.windows(2) {
        let end = fragment_header(&pair[0].parts[0].3).1 as f64 / 90_000.0 + pair[0].duration;
        let next = fragment_header(&pair[1].parts[0].3).1 as f64 / 90_000.0;
        assert!((end - next).abs() < 0.001, "{end} vs {next}");
    }
}

#[test]
fn a_backward_jump_rebases_both_tracks_with_one_discontinuity() {
    let mut p = Packager::new(config(2000, 333));
    // At 5 s the source clock goes back 60 s (it was at 100 s).
    let out = av(&mut p, 10, |_, ms| {
        Some(if ms < 5000 { ms + 100_000 } else { ms + 40_000 })
    });
    check_jump(&out, &p, 10.0);
    assert_eq!(p.clamped_timestamps(), 0);
}

#[test]
fn a_forward_jump_of_minutes_rebases_both_tracks() {
    let mut p = Packager::new(config(2000, 333));
    let out = av(&mut p, 10, |_, ms| {
        Some(if ms < 5000 { ms } else { ms + 300_000 })
    });
    check_jump(&out, &p, 10.0);
}

#[test]
fn a_32_bit_wrap_already_unwrapped_is_no_jump() {
    // FLV ingest unwraps; what reaches the packager is a clock past 2^32 ms.
    let mut p = Packager::new(config(2000, 333));
    let base = (1i64 << 32) - 3000;
    let out = av(&mut p, 8, |_, ms| Some(base + ms));
    assert_eq!(p.timestamp_jumps(), 0);
    let video = segments(&out, "source");
    assert_eq!(msns(&video), msns(&segments(&out, "audio")));
    assert!(video.iter().all(|s| !s.discontinuity));
}

#[test]
fn a_ten_second_audio_gap_is_a_gap_not_a_jump() {
    let mut p = Packager::new(config(2000, 333));
    let out = av(&mut p, 20, |track, ms| {
        (track == VIDEO || !(5000..15_000).contains(&ms)).then_some(ms)
    });
    assert_eq!(p.timestamp_jumps(), 0);
    let video = segments(&out, "source");
    let audio = segments(&out, "audio");
    assert_eq!(msns(&video), (0..10).collect::<Vec<_>>());
    // Audio has no segments inside the gap; the numbers it has are the video's.
    let a = msns(&audio);
    assert!(a.iter().all(|n| msns(&video).contains(n)), "{a:?}");
    assert!(
        !a.contains(&4) && !a.contains(&5) && !a.contains(&6),
        "{a:?}"
    );
    for s in &audio {
        assert!(s.duration <= 3.0 + 0.011, "{s:?}");
        assert!(s.parts.iter().all(|p| p.1 <= 0.333 + 1e-9), "{s:?}");
    }
    // After the gap the audio is where the video is: its first frame at its true time
    // (15 s, inside segment 7), the next segment on the grid.
    let start = |msn: u64| {
        let s = audio.iter().find(|s| s.msn == msn).unwrap();
        fragment_header(&s.parts[0].3).1 as f64 / 48_000.0
    };
    assert!((start(7) - 15.0).abs() < 0.022, "{}", start(7));
    assert!((start(8) - 16.0).abs() < 0.011, "{}", start(8));
}

/// (decode time, composition offset) of each sample of a fragment.
fn samples(data: &[u8]) -> Vec<(u64, i32)> {
    let (_, mut t) = fragment_header(data);
    let trun = child(data, &[b"moof", b"traf", b"trun"]);
    assert_eq!(trun[0], 1, "signed composition offsets");
    let count = u32::from_be_bytes(trun[4..8].try_into().unwrap()) as usize;
    (0..count)
        .map(|i| {
            let at = 12 + i * 16;
            let duration = u32::from_be_bytes(trun[at..at + 4].try_into().unwrap());
            let cts = i32::from_be_bytes(trun[at + 12..at + 16].try_into().unwrap());
            let s = (t, cts);
            t += u64::from(duration);
            s
        })
        .collect()
}

fn push_video(p: &mut Packager, frames: &[(i64, i64, bool)]) -> Vec<Output> {
    let mut out = p.push(stream(Some(avc("68cb83cb20")), None));
    for (i, &(dts, pts, key)) in frames.iter().enumerate() {
        out.extend(p.push(Input::Frame(Frame {
            track: VIDEO,
            pts,
            dts,
            keyframe: key,
            data: access_unit(key, i),
            arrival: t0(),
        })));
    }
    out.extend(p.push(Input::End));
    out
}

#[test]
fn negative_composition_offsets_keep_presentation_order() {
    // I P B B where the B-frames present before they decode (CTS −40 ms).
    let mut p = Packager::new(config(1000, 1000));
    let frames = [
        (0, 0, true),
        (40, 120, false),
        (80, 40, false),
        (120, 80, false),
        (160, 160, false),
    ];
    let out = push_video(&mut p, &frames);
    let segs = segments(&out, "source");
    let s = samples(&segs[0].parts[0].3);
    let presented: Vec<i64> = s.iter().map(|&(t, c)| t as i64 + i64::from(c)).collect();
    let want: Vec<i64> = frames.iter().map(|f| f.1 * 90).collect();
    assert_eq!(presented, want);
    assert_eq!(p.clamped_timestamps(), 0);
}

#[test]
fn a_first_keyframe_with_negative_cts_starts_at_media_time_zero() {
    let mut p = Packager::new(config(1000, 1000));
    let out = push_video(&mut p, &[(40, 0, true), (80, 80, false), (120, 40, false)]);
    let segs = segments(&out, "source");
    let s = samples(&segs[0].parts[0].3);
    assert_eq!(s[0], (0, 0));
    let presented: Vec<i64> = s.iter().map(|&(t, c)| t as i64 + i64::from(c)).collect();
    assert_eq!(presented, [0, 80 * 90, 40 * 90]);
}

#[test]
fn intra_refresh_without_keyframes_starts_and_stays_bounded() {
    // No keyframe at all: after one maximum segment of waiting the video starts anyway,
    // and segments are cut at the maximum.
    let mut p = Packager::new(config(2000, 333));
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(1..600, 30.0, 100_000)); // 20 s, frame 0 (the key) lost
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "source");
    assert!(segs.len() >= 5, "{segs:?}");
    for s in &segs {
        assert!(s.duration <= 3.0 + 1e-9, "{s:?}");
        assert!(!s.parts[0].2);
    }
    assert_eq!(p.dropped_frames(), 90, "3 s of waiting");
}

#[test]
fn aac_running_ahead_of_its_clock_drops_frames_to_resync() {
    // The source's clock runs 5 % slow against its sample count: the count resyncs
    // backwards too (by dropping a frame), so audio does not drift off the video.
    let mut p = Packager::new(config(2000, 333));
    let mut out = p.push(stream(None, Some(aac(48_000))));
    for i in 0..400 {
        let mut f = aframe(i, 48_000, t0());
        f.dts = f.dts * 95 / 100;
        f.pts = f.dts;
        out.extend(p.push(Input::Frame(f)));
    }
    out.extend(p.push(Input::End));
    assert!(p.audio_resyncs() >= 15, "{}", p.audio_resyncs());
    let total: f64 = segments(&out, "audio").iter().map(|s| s.duration).sum();
    let clock = 399.0 * 1024.0 / 48_000.0 * 0.95;
    assert!((total - clock).abs() < 0.1, "{total} vs {clock}");
}
