//! Segment defects as the packager flags them: clean streams stay clean, each kind of
//! damage is flagged on the segment it is in, and nothing else is.

use super::*;

/// 30 fps video (keyframe every 2 s) and 48 kHz AAC for `secs` seconds, interleaved by
/// timestamp; `keep` decides, from a frame's track and time (ms), whether it is sent.
fn av_kept(secs: i64, keep: impl Fn(TrackId, i64) -> bool) -> Vec<Output> {
    let mut p = Packager::new(config(2000, 333));
    let mut out = p.push(stream(Some(avc("68cb83cb20")), Some(aac(48_000))));
    let (mut v, mut a) = (0, 0);
    loop {
        let vf = vframe(v, 30.0, 60, t0());
        let af = aframe(a, 48_000, t0());
        let f = if af.dts <= vf.dts {
            a += 1;
            af
        } else {
            v += 1;
            vf
        };
        if f.dts >= secs * 1000 {
            break;
        }
        if keep(f.track, f.dts) {
            out.extend(p.push(Input::Frame(f)));
        }
    }
    out.extend(p.push(Input::End));
    out
}

/// (msn, defect names) of the segments that have any.
fn flagged(segs: &[Seg]) -> Vec<(u64, Vec<&'static str>)> {
    segs.iter()
        .filter(|s| !s.defects.is_clean())
        .map(|s| (s.msn, s.defects.names().collect()))
        .collect()
}

#[test]
fn a_clean_stream_has_no_defects_and_its_short_last_segment_is_none() {
    // 21 s: the last segment is 1 s, short but the last one.
    let out = av_kept(21, |_, _| true);
    for name in ["source", "audio"] {
        let segs = segments(&out, name);
        assert!(segs.len() >= 10, "{segs:?}");
        assert!(segs.last().unwrap().duration < 1.1, "{segs:?}");
        assert_eq!(flagged(&segs), [], "{name}: {segs:?}");
    }
}

#[test]
fn an_encoder_stall_flags_the_jump_after_it_and_the_short_segment() {
    // Nothing at all from 5 s to 8 s, then the stream goes on (a keyframe at 8 s).
    let out = av_kept(16, |_, ms| !(5000..8000).contains(&ms));
    let video = segments(&out, "source");
    let after = video
        .iter()
        .find(|s| (fragment_header(&s.parts[0].3).1 as f64 / 90_000.0 - 8.0).abs() < 0.01)
        .unwrap_or_else(|| panic!("no segment starts at 8 s: {video:?}"));
    assert!(after.defects.jump, "{after:?}");
    assert!(!after.discontinuity, "{after:?}");
    // Only the segment after the stall jumps; the one cut by it is short (about 1 s
    // of media, cut by the keyframe at 8 s) or not, but holds no hole.
    for s in &video {
        assert_eq!(s.defects.jump, s.msn == after.msn, "{s:?}");
        assert!(!s.defects.hole && !s.defects.no_irap, "{s:?}");
    }
    let audio = segments(&out, "audio");
    assert!(
        audio.iter().any(|s| s.defects.jump || s.defects.hole),
        "the audio's stall is flagged too: {audio:?}"
    );
}

#[test]
fn lost_frames_inside_a_segment_are_a_hole() {
    // Video frames of 4.5 s to 5.5 s lost (inside segment 2, [4 s, 6 s)); audio fine.
    let out = av_kept(12, |t, ms| t != VIDEO || !(4500..5500).contains(&ms));
    let video = segments(&out, "source");
    let flagged = flagged(&video);
    assert_eq!(flagged, [(2, vec!["hole"])], "{video:?}");
    assert_eq!(self::flagged(&segments(&out, "audio")), []);
}

#[test]
fn a_segment_cut_without_a_keyframe_cannot_be_decoded_alone() {
    // One keyframe at 0, then none for 10 s: segments are cut at the 3 s maximum, and
    // every one after the first starts on a frame that is not a keyframe.
    let mut p = Packager::new(config(2000, 333));
    let mut inputs = vec![stream(Some(avc("68cb83cb20")), None)];
    inputs.extend(video_inputs(0..300, 30.0, 100_000));
    inputs.push(Input::End);
    let segs = segments(&run(&mut p, inputs), "source");
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(!segs[0].defects.no_irap, "{segs:?}");
    for s in &segs[1..] {
        assert!(s.defects.no_irap, "{s:?}");
    }
}

#[test]
fn defect_names_round_trip() {
    let all = Defects {
        short: true,
        no_irap: true,
        jump: true,
        hole: true,
    };
    let text = all.names().collect::<Vec<_>>().join(",");
    assert_eq!(text, "short,no-irap,jump,hole");
    assert_eq!(Defects::parse(&text), Some(all));
    assert_eq!(Defects::parse(""), Some(Defects::default()));
    assert_eq!(Defects::parse("short,bogus"), None);
    assert!(
        all.severity()
            > Defects {
                hole: true,
                ..Default::default()
            }
            .severity()
    );
}
