//! Engine tests on synthetic streams (hand-built frames, simulated arrival times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use starling_media::{aac::AudioSpecificConfig, h264::AvcConfig, OpusConfig};

use std::sync::Arc;

use super::*;

const T0_SECS: u64 = 1_700_000_000;
const VIDEO: TrackId = TrackId(1);
const AUDIO: TrackId = TrackId(2);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0_SECS)
}

fn hex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .into()
}

fn avc(pps: &str) -> CodecConfig {
    CodecConfig::H264(
        AvcConfig::from_parameter_sets(
            &[hex("6742c00dd90141fb011000000300100000030320f142a480")],
            &[hex(pps)],
        )
        .unwrap(),
    )
}

fn aac(sample_rate: u32) -> CodecConfig {
    CodecConfig::Aac(AudioSpecificConfig::from_params(2, sample_rate, 2).unwrap())
}

fn stream(video: Option<CodecConfig>, audio: Option<CodecConfig>) -> Input {
    let mut tracks = Vec::new();
    if let Some(config) = video {
        tracks.push(Track {
            id: VIDEO,
            timescale: 1000,
            config,
        });
    }
    if let Some(config) = audio {
        tracks.push(Track {
            id: AUDIO,
            timescale: 1000,
            config,
        });
    }
    Input::Stream(Arc::new(Stream {
        tracks,
        metadata: Vec::new(),
        clock: Default::default(),
    }))
}

/// A length-prefixed access unit of one fake slice NAL unit.
fn access_unit(keyframe: bool, i: usize) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(5);
    b.put_u8(if keyframe { 0x65 } else { 0x41 });
    b.put_u32(i as u32);
    b.freeze()
}

/// Video frame `i` of a `fps` stream with a keyframe every `gop` frames; millisecond
/// timestamps (as RTMP gives them); arrival in step with the timestamps from `start`.
fn vframe(i: usize, fps: f64, gop: usize, start: SystemTime) -> Frame {
    let ms = (i as f64 * 1000.0 / fps).round() as i64;
    // `checked_rem` rather than `is_multiple_of`, which is newer than the workspace MSRV.
    let keyframe = i.checked_rem(gop) == Some(0);
    Frame {
        track: VIDEO,
        pts: ms,
        dts: ms,
        keyframe,
        data: access_unit(keyframe, i),
        arrival: start + Duration::from_millis(ms as u64),
    }
}

fn aframe(i: usize, sample_rate: u32, start: SystemTime) -> Frame {
    let ms = (i as f64 * 1024.0 * 1000.0 / f64::from(sample_rate)).round() as i64;
    Frame {
        track: AUDIO,
        pts: ms,
        dts: ms,
        keyframe: true,
        data: Bytes::from(vec![0x21, 0x10, i as u8]),
        arrival: start + Duration::from_millis(ms as u64),
    }
}

fn config(segment_ms: u64, part_ms: u64) -> PackagerConfig {
    PackagerConfig {
        segment_duration: Duration::from_millis(segment_ms),
        part_duration: Duration::from_millis(part_ms),
    }
}

#[derive(Clone)]
struct Seg {
    msn: u64,
    duration: f64,
    pdt: SystemTime,
    discontinuity: bool,
    defects: Defects,
    /// (index, duration, independent, data)
    parts: Vec<(u32, f64, bool, Bytes)>,
}

impl std::fmt::Debug for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<_> = self.parts.iter().map(|p| (p.1, p.2)).collect();
        f.debug_struct("Seg")
            .field("msn", &self.msn)
            .field("duration", &self.duration)
            .field("pdt", &self.pdt)
            .field("discontinuity", &self.discontinuity)
            .field("defects", &self.defects)
            .field("parts", &parts)
            .finish()
    }
}

/// Segments of one rendition, checking part indices and that parts sum to the segment.
fn segments(outputs: &[Output], rendition: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut parts = Vec::new();
    for o in outputs {
        match o {
            Output::Part {
                rendition: r,
                msn,
                index,
                duration,
                independent,
                start,
                data,
                ..
            } if *r == rendition => {
                assert_eq!(*index as usize, parts.len(), "part index of msn {msn}");
                assert_eq!(
                    fragment_header(data).1,
                    *start,
                    "a part's start is its tfdt (msn {msn}, part {index})"
                );
                parts.push((*msn, *index, *duration, *independent, data.clone()));
                assert!(*duration > 0.0);
            }
            Output::SegmentEnd {
                rendition: r,
                msn,
                duration,
                program_date_time,
                discontinuity,
                defects,
            } if *r == rendition => {
                assert!(parts.iter().all(|p| p.0 == *msn), "parts of {msn}");
                let sum: f64 = parts.iter().map(|p| p.2).sum();
                assert!(
                    (sum - duration).abs() < 1e-9,
                    "msn {msn}: {sum} vs {duration}"
                );
                segs.push(Seg {
                    msn: *msn,
                    duration: *duration,
                    pdt: *program_date_time,
                    discontinuity: *discontinuity,
                    defects: *defects,
                    parts: parts.drain(..).map(|p| (p.1, p.2, p.3, p.4)).collect(),
                });
            }
            _ => {}
        }
    }
    assert!(
        parts.is_empty(),
        "{} parts after the last SegmentEnd",
        parts.len()
    );
    segs
}

/// (type, body) of each box in `data`.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        out.push((kind, &data[pos + 8..pos + size]));
        pos += size;
    }
    assert_eq!(pos, data.len(), "box sizes add up");
    out
}

fn child<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
    let mut cur = data;
    for kind in path {
        cur = boxes(cur)
            .into_iter()
            .find(|(k, _)| k == *kind)
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(*kind)))
            .1;
    }
    cur
}

/// `mfhd` sequence number and `tfdt` of a fragment.
fn fragment_header(data: &[u8]) -> (u32, u64) {
    let mfhd = child(data, &[b"moof", b"mfhd"]);
    let tfdt = child(data, &[b"moof", b"traf", b"tfdt"]);
    let seq = u32::from_be_bytes(mfhd[4..8].try_into().unwrap());
    let tfdt = match tfdt[0] {
        1 => u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
        _ => u64::from(u32::from_be_bytes(tfdt[4..8].try_into().unwrap())),
    };
    (seq, tfdt)
}

fn first_box(data: &[u8]) -> [u8; 4] {
    data[4..8].try_into().unwrap()
}

fn run(p: &mut Packager, inputs: impl IntoIterator<Item = Input>) -> Vec<Output> {
    inputs.into_iter().flat_map(|i| p.push(i)).collect()
}

fn video_inputs(range: std::ops::Range<usize>, fps: f64, gop: usize) -> Vec<Input> {
    range
        .map(|i| Input::Frame(vframe(i, fps, gop, t0())))
        .collect()
}

#[test]
fn synthetic_30fps_segments_on_the_grid_with_parts_under_target() {
    let mut p = Packager::new(config(2000, 333));
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(0..300, 30.0, 60));
    inputs.push(Input::End);
    let out = run(&mut p, inputs);

    let Output::Init { rendition, init } = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert_eq!(rendition.name, "source");
    assert_eq!(rendition.kind, TrackKind::Video);
    assert_eq!(rendition.timescale, 90_000);
    assert_eq!((rendition.width, rendition.height), (Some(320), Some(240)));
    assert_eq!(first_box(init), *b"ftyp");
    assert_eq!(out.last(), Some(&Output::Ended));

    let segs = segments(&out, "source");
    assert_eq!(
        segs.iter().map(|s| s.msn).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let mut seq = 0;
    for s in &segs {
        // The last one ends with the last interval, 33 or 34 ms.
        let tolerance = if s.msn == 4 { 0.0011 } else { 1e-9 };
        assert!((s.duration - 2.0).abs() < tolerance, "{s:?}");
        assert!(!s.discontinuity);
        assert_eq!(s.pdt, t0() + Duration::from_secs(2 * s.msn));
        assert!((6..=7).contains(&s.parts.len()), "{} parts", s.parts.len());
        for (i, (_, duration, independent, data)) in s.parts.iter().enumerate() {
            assert!(
                *duration <= 0.333 + 1e-9,
                "part {i} of {}: {duration}",
                s.msn
            );
            assert_eq!(*independent, i == 0, "part {i} of {}", s.msn);
            let kinds: Vec<_> = boxes(data).iter().map(|b| b.0).collect();
            if i == 0 {
                assert_eq!(kinds, [*b"styp", *b"prft", *b"moof", *b"mdat"]);
                let prft = child(data, &[b"prft"]);
                let ntp = u64::from_be_bytes(prft[8..16].try_into().unwrap());
                assert_eq!(ntp, starling_cmaf::ntp_from_system_time(s.pdt));
                let media_time = u64::from_be_bytes(prft[16..24].try_into().unwrap());
                assert_eq!(media_time, s.msn * 180_000);
            } else {
                assert_eq!(kinds, [*b"moof", *b"mdat"]);
            }
            let (sequence, _) = fragment_header(data);
            assert_eq!(sequence, seq + 1, "mfhd sequence numbers increase by one");
            seq = sequence;
        }
        let (_, tfdt) = fragment_header(&s.parts[0].3);
        assert_eq!(
            tfdt,
            s.msn * 180_000,
            "segment {} starts on the grid",
            s.msn
        );
    }
    assert_eq!(seq, segs.iter().map(|s| s.parts.len() as u32).sum::<u32>());
    assert_eq!(p.dropped_frames(), 0);
    assert_eq!(p.clamped_timestamps(), 0);
    assert_eq!(p.availability_start(), Some(t0()));
}

#[test]
fn parts_come_out_one_frame_after_their_last_sample() {
    let target = Duration::from_millis(333);
    let mut p = Packager::new(config(2000, 333));
    p.push(stream(Some(avc("68cb83cb20")), None));
    let mut parts = 0;
    let mut previous = 0;
    for i in 0..200 {
        let frame = vframe(i, 30.0, 60, t0());
        let (time, arrival) = (frame.dts, frame.arrival);
        for o in p.push(Input::Frame(frame)) {
            if let Output::Part {
                data,
                duration,
                first_arrival,
                ..
            } = o
            {
                parts += 1;
                // The part ends where the frame just pushed starts (it came out as soon
                // as the frame after its last sample arrived) or, when millisecond
                // rounding made the last interval a poor estimate, where the frame
                // before it started: after the frame that completes the part's duration
                // plus the next one, the part is out.
                let (_, tfdt) = fragment_header(&data);
                let end = (tfdt as f64 / 90_000.0 + duration) * 1000.0;
                assert!(
                    (end - time as f64).abs() < 1e-6 || (end - previous as f64).abs() < 1e-6,
                    "frame {i}: part ends at {end} ms"
                );
                let wait = arrival.duration_since(first_arrival).unwrap();
                assert!(
                    wait <= target + Duration::from_millis(34),
                    "frame {i}: waited {wait:?}"
                );
            }
        }
        previous = time;
    }
    assert!(parts >= 19, "{parts}");
}

#[test]
fn long_gops_are_cut_at_the_maximum_segment_duration() {
    let c = config(2000, 333);
    assert_eq!(c.max_segment_duration(), Duration::from_secs(3));
    assert_eq!(c.target_duration(), 3);
    let mut p = Packager::new(c);
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(0..450, 30.0, 150)); // keyframe every 5 s, 15 s
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "source");
    // 3 s (the maximum, cut without a keyframe), then 2 s to the next keyframe.
    assert_eq!(
        segs.iter().map(|s| s.msn).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    for (i, s) in segs.iter().enumerate() {
        let want = if i % 2 == 0 { 3.0 } else { 2.0 };
        assert!(
            (s.duration - want).abs() < 0.0011 && s.duration <= 3.0,
            "{s:?}"
        );
        assert_eq!(s.parts[0].2, i % 2 == 0, "starts on a keyframe: {s:?}");
        assert!(s.parts.iter().all(|p| p.1 <= 0.333 + 1e-9));
    }
}

#[test]
fn keyframes_every_second_with_two_second_segments() {
    // Keyframes at a divisor of D: cuts only on the grid.
    let mut p = Packager::new(config(2000, 500));
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(0..250, 25.0, 25));
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "source");
    let durations: Vec<f64> = segs.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [2.0; 5]);
}

#[test]
fn config_change_flushes_then_inits_a_discontinuity() {
    let mut p = Packager::new(config(2000, 333));
    let mut out = run(&mut p, [stream(Some(avc("68cb83cb20")), None)]);
    out.extend(run(&mut p, video_inputs(0..75, 30.0, 60)));
    let before = out.len();
    // Same config again: nothing happens.
    assert!(p.push(stream(Some(avc("68cb83cb20")), None)).is_empty());
    let change = p.push(stream(Some(avc("68ce3c80")), None));
    // The open part and segment 1 are flushed, then the new init.
    let kinds: Vec<&str> = change
        .iter()
        .map(|o| match o {
            Output::Part { .. } => "part",
            Output::SegmentEnd { .. } => "end",
            Output::Init { .. } => "init",
            Output::Ended => "ended",
            Output::Sample(_) => "sample",
        })
        .collect();
    assert_eq!(kinds.last(), Some(&"init"));
    assert!(kinds.contains(&"end"));
    out.extend(change);
    // Frames 75..120 are not keyframes: dropped until the keyframe at 4 s.
    out.extend(run(&mut p, video_inputs(75..240, 30.0, 60)));
    out.extend(p.push(Input::End));
    assert_eq!(p.dropped_frames(), 45);
    assert!(out.len() > before);

    let inits = out
        .iter()
        .filter(|o| matches!(o, Output::Init { .. }))
        .count();
    assert_eq!(inits, 2);
    let segs = segments(&out, "source");
    assert_eq!(segs.iter().map(|s| s.msn).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // Flushed at the change: its last frame lasts the last interval (33 or 34 ms).
    assert!((segs[1].duration - 0.5).abs() < 0.0011, "{:?}", segs[1]);
    assert_eq!(
        segs.iter().map(|s| s.discontinuity).collect::<Vec<_>>(),
        [false, false, true, false]
    );
    assert_eq!(segs[2].pdt, t0() + Duration::from_secs(4));
}

#[test]
fn end_flushes_and_a_republish_continues_numbering_and_media_time() {
    let mut p = Packager::new(config(2000, 333));
    let mut out = run(&mut p, [stream(Some(avc("68cb83cb20")), None)]);
    out.extend(run(&mut p, video_inputs(0..90, 30.0, 60)));
    let end = p.push(Input::End);
    assert!(matches!(end.last(), Some(Output::Ended)));
    assert!(matches!(
        end[end.len() - 2],
        Output::SegmentEnd { msn: 1, .. }
    ));
    out.extend(end);

    // The same publisher comes back 100 s later, timestamps from 0 again.
    let later = t0() + Duration::from_secs(100);
    let again = p.push(stream(Some(avc("68cb83cb20")), None));
    assert!(again.is_empty(), "same config: no new init: {again:?}");
    out.extend(
        (0..120)
            .flat_map(|i| p.push(Input::Frame(vframe(i, 30.0, 60, later))))
            .collect::<Vec<_>>(),
    );
    out.extend(p.push(Input::End));

    let segs = segments(&out, "source");
    assert_eq!(segs.iter().map(|s| s.msn).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The last segment of the first publish: 30 frames, the last one lasting one interval.
    assert!((segs[1].duration - 1.0).abs() < 0.001, "{:?}", segs[1]);
    assert_eq!(
        segs.iter().map(|s| s.discontinuity).collect::<Vec<_>>(),
        [false, false, true, false]
    );
    assert_eq!(segs[2].pdt, later);
    assert_eq!(segs[3].pdt, later + Duration::from_secs(2));
    // Media time goes on from the grid boundary of the next segment (4 s), past where
    // the first publish ended (3 s).
    let (_, tfdt) = fragment_header(&segs[2].parts[0].3);
    assert_eq!(tfdt, 4 * 90_000);
    assert!((segs[2].duration - 2.0).abs() < 1e-9, "{:?}", segs[2]);
    // Sequence numbers go on too.
    let (first_seq, _) = fragment_header(&segs[2].parts[0].3);
    let (last_seq, _) = fragment_header(&segs[1].parts.last().unwrap().3);
    assert_eq!(first_seq, last_seq + 1);
}

#[test]
fn frames_before_the_first_keyframe_are_dropped() {
    let mut p = Packager::new(config(2000, 333));
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(10..130, 30.0, 60));
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "source");
    assert_eq!(p.dropped_frames(), 50);
    assert!(segs.iter().all(|s| s.parts[0].2));
    assert_eq!(segs[0].pdt, t0() + Duration::from_secs(2));
    // Media time 0 is the first frame packaged.
    assert_eq!(p.availability_start(), Some(t0() + Duration::from_secs(2)));
    assert_eq!(fragment_header(&segs[0].parts[0].3).1, 0);
}

#[test]
fn non_monotonic_dts_is_clamped_without_panic() {
    let mut p = Packager::new(config(1000, 200));
    let mut out = p.push(stream(Some(avc("68cb83cb20")), None));
    let dts = [
        0, 40, 80, 80, 60, 200, 240, -5_000, 280, 320, 360, 1000, 1040,
    ];
    for (i, &d) in dts.iter().enumerate() {
        out.extend(p.push(Input::Frame(Frame {
            track: VIDEO,
            pts: d,
            dts: d,
            keyframe: i == 0 || d == 1000,
            data: access_unit(i == 0, i),
            arrival: t0(),
        })));
    }
    out.extend(p.push(Input::End));
    assert_eq!(p.clamped_timestamps(), 3);
    for s in segments(&out, "source") {
        assert!(s.duration > 0.0);
        for part in &s.parts {
            assert!(part.1 > 0.0);
        }
    }
}

#[test]
fn b_frames_keep_presentation_times() {
    // I P B B with a reorder delay of two frames (40 ms at 25 fps).
    let mut p = Packager::new(config(1000, 1000));
    let mut out = p.push(stream(Some(avc("68cb83cb20")), None));
    let frames = [
        (0, 80, true),
        (40, 240, false),
        (80, 160, false),
        (120, 200, false),
    ];
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
    let segs = segments(&out, "source");
    let data = &segs[0].parts[0].3;
    // Decode time of the keyframe = its pts (80 ms).
    assert_eq!(fragment_header(data).1, 7200);
    let trun = child(data, &[b"moof", b"traf", b"trun"]);
    assert_eq!(trun[0], 1, "signed composition offsets");
    let count = u32::from_be_bytes(trun[4..8].try_into().unwrap()) as usize;
    assert_eq!(count, 4);
    // entries after version/flags, count and data_offset: duration, size, flags, cts
    let offsets: Vec<i32> = (0..count)
        .map(|i| {
            let at = 12 + i * 16 + 12;
            i32::from_be_bytes(trun[at..at + 4].try_into().unwrap())
        })
        .collect();
    // pts - dts - D with D = 80 ms
    assert_eq!(offsets, [0, 120 * 90, 0, 0]);
}

#[test]
fn audio_follows_the_video_cuts() {
    let mut p = Packager::new(config(2000, 333));
    let mut out = p.push(stream(Some(avc("68cb83cb20")), Some(aac(48_000))));
    // Interleave by timestamp, audio slightly ahead as encoders tend to send it.
    let mut v = 0;
    let mut a = 0;
    while v < 300 {
        let vf = vframe(v, 30.0, 60, t0());
        let af = aframe(a, 48_000, t0());
        if af.dts <= vf.dts + 30 {
            out.extend(p.push(Input::Frame(af)));
            a += 1;
        } else {
            out.extend(p.push(Input::Frame(vf)));
            v += 1;
        }
    }
    out.extend(p.push(Input::End));
    let video = segments(&out, "source");
    let audio = segments(&out, "audio");
    let inits: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Init { rendition, .. } => Some(rendition.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(inits[1].name, "audio");
    assert_eq!(inits[1].timescale, 48_000);
    assert_eq!(inits[1].codec, "mp4a.40.2");
    assert_eq!(
        video.iter().map(|s| s.msn).collect::<Vec<_>>(),
        audio.iter().map(|s| s.msn).collect::<Vec<_>>()
    );
    let frame = 1024.0 / 48_000.0;
    for (v, a) in video.iter().zip(&audio) {
        assert!((v.duration - a.duration).abs() <= frame, "{v:?} vs {a:?}");
        assert!(a.parts.iter().all(|p| p.1 <= 0.333 + 1e-9 && p.2));
    }
    // Audio segment n starts at the frame boundary nearest n × 2 s.
    for a in &audio[1..] {
        let (_, tfdt) = fragment_header(&a.parts[0].3);
        let start = tfdt as f64 / 48_000.0;
        assert!(
            (start - 2.0 * a.msn as f64).abs() <= frame / 2.0 + 1e-9,
            "{start}"
        );
    }
}

#[test]
fn audio_only_cuts_on_the_nominal_grid() {
    let mut p = Packager::new(config(2000, 333));
    let mut inputs = vec![stream(None, Some(aac(44_100)))];
    inputs.extend((0..431).map(|i| Input::Frame(aframe(i, 44_100, t0())))); // ~10 s
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "audio");
    assert_eq!(
        segs.iter().map(|s| s.msn).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let frame = 1024.0 / 44_100.0;
    let mut start = 0.0;
    for s in &segs[..4] {
        start += s.duration;
        let grid = 2.0 * (s.msn + 1) as f64;
        assert!((start - grid).abs() <= frame / 2.0, "{start}");
        for part in &s.parts {
            assert!(part.1 <= 0.333 + 1e-9 && part.2);
        }
    }
    assert_eq!(p.clamped_timestamps(), 0);
}

#[test]
fn aac_gap_resyncs_and_leaves_a_hole_not_a_long_part() {
    let mut p = Packager::new(config(2000, 200));
    let mut out = p.push(stream(None, Some(aac(48_000))));
    for i in (0..40).chain(60..100) {
        out.extend(p.push(Input::Frame(aframe(i, 48_000, t0()))));
    }
    out.extend(p.push(Input::End));
    let segs = segments(&out, "audio");
    // Every frame keeps its 1024 samples; the 20 missing frames are a hole.
    let total: f64 = segs.iter().map(|s| s.duration).sum();
    assert!((total - 80.0 * 1024.0 / 48_000.0).abs() < 1e-9, "{total}");
    assert_eq!(p.clamped_timestamps(), 0);
    let parts: Vec<_> = segs.iter().flat_map(|s| &s.parts).collect();
    assert!(parts.iter().all(|p| p.1 <= 0.2 + 1e-9), "{segs:?}");
    // The part after the hole starts at frame 60's time.
    let starts: Vec<u64> = parts.iter().map(|p| fragment_header(&p.3).1).collect();
    assert!(starts.contains(&(60 * 1024)), "{starts:?}");
}

#[test]
fn stalled_video_does_not_hold_audio_forever() {
    let mut p = Packager::new(config(1000, 200));
    let mut out = p.push(stream(Some(avc("68cb83cb20")), Some(aac(48_000))));
    out.extend(p.push(Input::Frame(vframe(0, 25.0, 25, t0()))));
    // No more video: audio must still come out, bounded by about D of hold-back.
    let mut emitted_after = Vec::new();
    for i in 0..500 {
        let o = p.push(Input::Frame(aframe(i, 48_000, t0())));
        if o.iter().any(|o| matches!(o, Output::Part { .. })) {
            emitted_after.push(i);
        }
        out.extend(o);
    }
    let last = *emitted_after.last().unwrap();
    assert!(last >= 490, "audio still flows: {emitted_after:?}");
    out.extend(p.push(Input::End));
    let audio = segments(&out, "audio");
    assert!(audio.len() >= 9, "{}", audio.len());
}

#[test]
fn opus_renditions_use_48khz() {
    let mut p = Packager::new(config(1000, 200));
    let opus = CodecConfig::Opus(OpusConfig {
        channels: 2,
        pre_skip: 312,
        input_sample_rate: 48_000,
        output_gain: 0,
    });
    let mut out = p.push(stream(None, Some(opus)));
    for i in 0..150 {
        out.extend(p.push(Input::Frame(Frame {
            track: AUDIO,
            pts: i * 20,
            dts: i * 20,
            keyframe: true,
            data: Bytes::from_static(&[0xfc, 0xff, 0xfe]),
            arrival: t0(),
        })));
    }
    out.extend(p.push(Input::End));
    let Output::Init { rendition, .. } = &out[0] else {
        panic!()
    };
    assert_eq!(
        (rendition.timescale, rendition.codec.as_str()),
        (48_000, "opus")
    );
    let segs = segments(&out, "audio");
    let durations: Vec<f64> = segs.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [1.0, 1.0, 1.0]);
    assert!(segs
        .iter()
        .all(|s| s.parts.iter().all(|p| p.1 <= 0.2 + 1e-9)));
}

#[test]
fn frames_without_a_stream_or_of_unknown_tracks_are_dropped() {
    let mut p = Packager::new(PackagerConfig::default());
    assert!(p.push(Input::Frame(vframe(0, 30.0, 60, t0()))).is_empty());
    p.push(stream(None, Some(aac(48_000))));
    assert!(p.push(Input::Frame(vframe(0, 30.0, 60, t0()))).is_empty());
    assert_eq!(p.dropped_frames(), 2);
    assert_eq!(p.push(Input::End), [Output::Ended]);
}

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn chaos_never_panics() {
    let videos = [avc("68cb83cb20"), avc("68ce3c80")];
    let audios = [aac(48_000), aac(44_100), aac(8_000)];
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let segment = rng.below(3000);
        let part = rng.below(600);
        let mut p = Packager::new(config(segment, part));
        let mut clock = 0i64;
        for _ in 0..600 {
            let input = match rng.below(100) {
                0..=2 => {
                    let v = (rng.below(3) > 0).then(|| videos[rng.below(2) as usize].clone());
                    let a = (rng.below(3) > 0).then(|| audios[rng.below(3) as usize].clone());
                    stream(v, a)
                }
                3 => Input::End,
                _ => {
                    clock = clock.wrapping_add(match rng.below(20) {
                        0 => rng.next() as i64 / 2, // anything at all
                        1 => -(rng.below(5000) as i64),
                        _ => rng.below(50) as i64,
                    });
                    let key = rng.below(10) == 0;
                    let track = TrackId(rng.below(3) as u32);
                    let pts = clock.wrapping_add(rng.below(200) as i64 - 50);
                    Input::Frame(Frame {
                        track,
                        pts,
                        dts: clock,
                        keyframe: key,
                        data: access_unit(key, 0),
                        arrival: t0() + Duration::from_millis(rng.below(1 << 40)),
                    })
                }
            };
            for o in p.push(input) {
                if let Output::Part { duration, .. } | Output::SegmentEnd { duration, .. } = o {
                    assert!(duration > 0.0);
                }
            }
        }
        p.push(Input::End);
    }
}

#[test]
fn frames_with_one_timestamp_stay_bounded() {
    // A broken source: every frame at dts 0. Clamping spaces them 1 tick apart; parts and
    // the audio hold-back must still be bounded and come out.
    let mut p = Packager::new(config(2000, 333));
    p.push(stream(Some(avc("68cb83cb20")), Some(aac(48_000))));
    let mut parts = 0;
    for i in 0..10_000 {
        let mut v = vframe(0, 30.0, 60, t0());
        v.keyframe = i == 0;
        let a = aframe(0, 48_000, t0());
        for o in p
            .push(Input::Frame(v))
            .into_iter()
            .chain(p.push(Input::Frame(a)))
        {
            parts += usize::from(matches!(o, Output::Part { .. }));
        }
    }
    assert!(p.clamped_timestamps() >= 9_999);
    assert!(parts >= 2, "{parts}");
    assert!(p.audio.held.len() <= MAX_HELD_AUDIO_FRAMES + 1);
}

mod defects;
mod epoch_lock;
mod faults;
mod follower;
