//! The epoch lock: publishes whose timestamps are epoch time are numbered on the epoch
//! grid, so pipelines that start apart cut the same segments under the same numbers,
//! and a locked backup taking over continues the numbering without a seam.

use super::*;

/// 2026-12-06T12:00:00Z, in ms (a multiple of the 2 s grid).
const NOON_MS: i64 = 1_796_558_400_000;
/// The source started half a second after a grid boundary: its keyframes (every 2 s)
/// are never on the grid, as with any encoder started by hand.
const SOURCE_START_MS: i64 = NOON_MS + 500;

/// Frame `i` of one 30 fps source (keyframe every 60 frames) stamped with epoch
/// milliseconds as ffmpeg's FLV muxer writes them (31 bits), reaching this pipeline
/// `latency_ms` after its capture.
fn epoch_vframe(i: usize, latency_ms: i64) -> Frame {
    let ms = SOURCE_START_MS + (i as f64 * 1000.0 / 30.0).round() as i64;
    let keyframe = i.checked_rem(60) == Some(0);
    let sent = ms.rem_euclid(1 << 31);
    Frame {
        track: VIDEO,
        pts: sent,
        dts: sent,
        keyframe,
        data: access_unit(keyframe, i),
        arrival: UNIX_EPOCH + Duration::from_millis((ms + latency_ms) as u64),
    }
}

fn epoch_stream() -> Input {
    let Input::Stream(s) = stream(Some(avc("68cb83cb20")), None) else {
        unreachable!()
    };
    let mut s = (*s).clone();
    s.clock = SourceClock::RTMP_EPOCH;
    Input::Stream(Arc::new(s))
}

/// (msn, start in 90 kHz ticks, duration, discontinuity) of each video segment.
fn timeline(outputs: &[Output]) -> Vec<(u64, u64, f64, bool)> {
    let mut starts = std::collections::BTreeMap::new();
    for o in outputs {
        if let Output::Part {
            rendition: VIDEO_RENDITION,
            msn,
            index: 0,
            start,
            ..
        } = o
        {
            starts.insert(*msn, *start);
        }
    }
    segments(outputs, VIDEO_RENDITION)
        .iter()
        .map(|s| (s.msn, starts[&s.msn], s.duration, s.discontinuity))
        .collect()
}

fn run(frames: impl Iterator<Item = Frame>) -> (Packager, Vec<Output>) {
    let mut p = Packager::new(config(2000, 500));
    let mut out = p.push(epoch_stream());
    for f in frames {
        out.extend(p.push(Input::Frame(f)));
    }
    out.extend(p.push(Input::End));
    (p, out)
}

#[test]
fn pipelines_started_seconds_apart_cut_the_same_segments() {
    // A from the source's first frame; B 3.2 s later, mid-GOP, on a slower link.
    let (a, out_a) = run((0..600).map(|i| epoch_vframe(i, 300)));
    let (_, out_b) = run((96..600).map(|i| epoch_vframe(i, 1400)));
    assert_eq!(a.availability_start(), Some(UNIX_EPOCH));
    let (ta, tb) = (timeline(&out_a), timeline(&out_b));
    // Segment n holds the keyframe at or after n × 2 s since the epoch.
    let first = (NOON_MS / 2000) as u64;
    assert_eq!(
        ta[0].0, first,
        "A's first segment is the grid slot it starts in"
    );
    assert_eq!(
        ta[0].1,
        (SOURCE_START_MS * 90) as u64,
        "media time is epoch time at 90 kHz"
    );
    assert_eq!(
        tb[0].0,
        first + 2,
        "B starts at its first keyframe, 4.5 s in"
    );
    // Every segment B has, A has with the same start and duration (B's last, cut by
    // its own end, aside: both ends are the same frame here).
    for seg in &tb {
        let twin = ta.iter().find(|s| s.0 == seg.0).expect("A has it");
        assert_eq!((seg.1, seg.2), (twin.1, twin.2), "segment {}", seg.0);
    }
    assert!(tb.len() >= 8, "{tb:?}");
    // Program date times are the media time on the wall clock: exact, and the same in
    // both pipelines whatever their latency (300 ms and 1.4 s here).
    let pdts = |out: &[Output]| -> std::collections::BTreeMap<u64, SystemTime> {
        segments(out, VIDEO_RENDITION)
            .iter()
            .map(|s| (s.msn, s.pdt))
            .collect()
    };
    let (pa, pb) = (pdts(&out_a), pdts(&out_b));
    for (seg, start, ..) in &tb {
        let at = UNIX_EPOCH + Duration::from_nanos(start * 100_000 / 9);
        assert_eq!((pa[seg], pb[seg]), (at, at), "segment {seg}");
    }
    assert!(ta.iter().chain(&tb).all(|s| !s.3), "no seams");
}

#[test]
fn a_locked_backup_takes_over_with_consecutive_numbers_and_no_seam() {
    let mut p = Packager::new(config(2000, 500));
    let mut out = p.push(epoch_stream());
    // A dies 10 s in.
    for i in 0..300 {
        out.extend(p.push(Input::Frame(epoch_vframe(i, 300))));
    }
    out.extend(p.push(Input::End));
    // B takes over, sending from its newest keyframe (8 s in, a segment A closed).
    out.extend(p.push(epoch_stream()));
    for i in 240..500 {
        out.extend(p.push(Input::Frame(epoch_vframe(i, 900))));
    }
    out.extend(p.push(Input::End));
    let t = timeline(&out);
    let numbers: Vec<u64> = t.iter().map(|s| s.0).collect();
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..first + numbers.len() as u64).collect::<Vec<_>>(),
        "consecutive"
    );
    assert!(t.iter().all(|s| !s.3), "no discontinuity: {t:?}");
    // B's first segment is the grid slot after A's last, from B's keyframe at 10.5 s.
    let b_first = t
        .iter()
        .find(|s| s.1 >= ((SOURCE_START_MS + 10_000) * 90) as u64)
        .unwrap();
    assert_eq!(b_first.0, ((SOURCE_START_MS + 10_000) / 2000) as u64);
    // Within a millisecond: A's last frame lasted an estimate (34 ms for 33.3), and B's
    // keyframe is clamped past it so decode times keep increasing.
    let expected = ((SOURCE_START_MS + 10_000) * 90) as u64;
    assert!(
        b_first.1.abs_diff(expected) <= 90,
        "{} vs {expected}",
        b_first.1
    );
    // B's frames of the segment A had closed (8.5 s to 10.5 s) were dropped.
    assert_eq!(p.dropped_frames(), 60);
}

#[test]
fn a_clock_that_is_not_epoch_time_is_packaged_as_relative() {
    let mut p = Packager::new(config(2000, 500));
    let mut out = p.push(epoch_stream());
    for i in 0..200 {
        // Timestamps from 0, as an encoder that does not stamp wall-clock time sends.
        out.extend(p.push(Input::Frame(vframe(i, 30.0, 60, t0()))));
    }
    out.extend(p.push(Input::End));
    assert_eq!(p.epoch_lock_refused(), 1);
    assert!(!p.epoch_locked());
    let t = timeline(&out);
    assert_eq!(
        (t[0].0, t[0].1),
        (0, 0),
        "numbered from its own first frame"
    );
    assert_eq!(p.availability_start(), Some(t0()));
}

#[test]
fn a_relative_publish_after_a_locked_one_is_a_seam() {
    let mut p = Packager::new(config(2000, 500));
    let mut out = p.push(epoch_stream());
    for i in 0..120 {
        out.extend(p.push(Input::Frame(epoch_vframe(i, 300))));
    }
    out.extend(p.push(Input::End));
    let later = UNIX_EPOCH + Duration::from_millis((SOURCE_START_MS + 5_000) as u64);
    out.extend(p.push(stream(Some(avc("68cb83cb20")), None)));
    for i in 0..120 {
        out.extend(p.push(Input::Frame(vframe(i, 30.0, 60, later))));
    }
    out.extend(p.push(Input::End));
    let t = timeline(&out);
    let seam = t.iter().position(|s| s.3).expect("a discontinuity");
    assert_eq!(t[seam].0, t[seam - 1].0 + 1, "numbering goes on");
    assert!(t[seam].1 >= t[seam - 1].1, "time goes on");
}

/// Audio frame `i` (AAC, 48 kHz, 1024 samples) of the same source, epoch-stamped.
fn epoch_aframe(i: usize, latency_ms: i64) -> Frame {
    let ms = SOURCE_START_MS + (i as f64 * 1024.0 * 1000.0 / 48_000.0).round() as i64;
    let sent = ms.rem_euclid(1 << 31);
    Frame {
        track: AUDIO,
        pts: sent,
        dts: sent,
        keyframe: true,
        data: Bytes::from(vec![0x21, 0x10, i as u8]),
        arrival: UNIX_EPOCH + Duration::from_millis((ms + latency_ms) as u64),
    }
}

fn epoch_av_stream() -> Input {
    let Input::Stream(s) = stream(Some(avc("68cb83cb20")), Some(aac(48_000))) else {
        unreachable!()
    };
    let mut s = (*s).clone();
    s.clock = SourceClock::RTMP_EPOCH;
    Input::Stream(Arc::new(s))
}

/// Video frames `v` and audio frames `a` of the source, interleaved by time.
fn av(v: std::ops::Range<usize>, a: std::ops::Range<usize>, latency_ms: i64) -> Vec<Frame> {
    let mut frames: Vec<Frame> = v
        .map(|i| epoch_vframe(i, latency_ms))
        .chain(a.map(|i| epoch_aframe(i, latency_ms)))
        .collect();
    frames.sort_by_key(|f| f.arrival);
    frames
}

/// Locked primary A publishes `a` (video and audio frame ranges), dies, and locked
/// backup B takes over with `b`: all outputs, and both renditions' segments after
/// checking that they carry the same, consecutive numbers.
type Frames = (std::ops::Range<usize>, std::ops::Range<usize>);
fn takeover(a: Frames, b: Frames) -> (Vec<Output>, Vec<Seg>, Vec<Seg>) {
    let mut p = Packager::new(config(2000, 500));
    let mut out = p.push(epoch_av_stream());
    for f in av(a.0, a.1, 300) {
        out.extend(p.push(Input::Frame(f)));
    }
    out.extend(p.push(Input::End));
    out.extend(p.push(epoch_av_stream()));
    for f in av(b.0, b.1, 900) {
        out.extend(p.push(Input::Frame(f)));
    }
    out.extend(p.push(Input::End));
    let video = segments(&out, VIDEO_RENDITION);
    let audio = segments(&out, AUDIO_RENDITION);
    let vn: Vec<u64> = video.iter().map(|s| s.msn).collect();
    let an: Vec<u64> = audio.iter().map(|s| s.msn).collect();
    assert_eq!(vn, an, "the same numbers\n{video:?}\n{audio:?}");
    assert_eq!(
        vn,
        (vn[0]..vn[0] + vn.len() as u64).collect::<Vec<_>>(),
        "consecutive"
    );
    (out, video, audio)
}

#[test]
fn with_audio_a_locked_takeover_keeps_both_renditions_aligned() {
    // A: 10 s of video and audio, to a segment's end; B sends its GOP cache (from 8 s)
    // and goes on to 16 s.
    let (_, video, audio) = takeover((0..300, 0..469), (240..480, 375..750));
    assert!(audio.iter().all(|s| !s.discontinuity), "{audio:?}");
    // Each audio segment lasts what its video segment lasts, within an audio frame
    // (a segment cut short by A's end excepted: its audio ends with A's audio).
    for (v, a) in video.iter().zip(&audio) {
        assert!(
            (v.duration - a.duration).abs() < 0.03,
            "segment {}: video {} audio {}",
            v.msn,
            v.duration,
            a.duration
        );
    }
}

#[test]
fn a_primary_that_died_mid_segment_leaves_a_seam_at_the_backups_first_keyframe() {
    // A dies 7.5 s into the source, a second into the segment that began at its 6 s
    // keyframe; B's next keyframe is at 8 s.
    let (out, video, audio) = takeover((0..225, 0..352), (200..480, 375..750));
    // B's first segment (from its 8 s keyframe) is the one seam, in both; every part of
    // it says so from the first one, so a playlist can tag it before listing it.
    let b_first = ((SOURCE_START_MS + 8_000) / 2000) as u64;
    for segs in [&video, &audio] {
        let seams: Vec<u64> = segs
            .iter()
            .filter(|s| s.discontinuity)
            .map(|s| s.msn)
            .collect();
        assert_eq!(seams, [b_first], "{segs:?}");
    }
    let tagged = out.iter().all(|o| match o {
        Output::Part {
            msn, discontinuity, ..
        } => *discontinuity == (*msn == b_first),
        _ => true,
    });
    assert!(tagged, "parts carry their segment's seam");
    // Both renditions start B's publish at its keyframe (audio within half a frame).
    let a_first = audio.iter().find(|s| s.msn == b_first).unwrap();
    let v_first = video.iter().find(|s| s.msn == b_first).unwrap();
    let pdt_gap = a_first
        .pdt
        .duration_since(v_first.pdt)
        .unwrap_or_else(|e| e.duration());
    assert!(
        pdt_gap < Duration::from_millis(25),
        "{a_first:?} vs {v_first:?}"
    );
}
