//! The tap and follower packagers: a rung made from the tapped samples is cut into the
//! same segments (numbers, starts, durations) as the source, whatever the source's GOP.

use super::*;

/// Source samples tapped from a 30 fps stream with a keyframe every `gop` frames.
fn tapped(gop: usize, frames: usize) -> (Vec<Output>, Vec<Sample>, SystemTime) {
    let mut p = Packager::new(config(2000, 333));
    p.set_tap(true);
    let mut out = run(&mut p, [stream(Some(avc("68cb83cb20")), None)]);
    out.extend(run(&mut p, video_inputs(0..frames, 30.0, gop)));
    out.extend(p.push(Input::End));
    let samples = out
        .iter()
        .filter_map(|o| match o {
            Output::Sample(s) if s.kind == TrackKind::Video => Some(s.clone()),
            _ => None,
        })
        .collect();
    (out, samples, p.availability_start().unwrap())
}

/// A rung fed `samples` from the `start`-th segment start on, as a transcoder would
/// give them back (same times, same keyframes, on a 90 kHz track).
fn follow(samples: &[Sample], start: usize, availability_start: SystemTime) -> Vec<Output> {
    let from = samples
        .iter()
        .filter(|s| s.starts_segment)
        .nth(start)
        .unwrap();
    let first = samples.iter().position(|s| std::ptr::eq(s, from)).unwrap();
    let mut p = Packager::follower(
        config(2000, 333),
        "480p",
        Follow {
            availability_start,
            first_msn: from.msn,
            discontinuity: true,
        },
    );
    let mut out = p.push(Input::Stream(Arc::new(Stream {
        tracks: vec![Track {
            id: TrackId(7),
            timescale: 90_000,
            config: avc("68cb83cb20"),
        }],
        metadata: Vec::new(),
        clock: Default::default(),
    })));
    for s in &samples[first..] {
        out.extend(p.push(Input::Frame(Frame {
            track: TrackId(7),
            pts: s.time + i64::from(s.cts_offset),
            dts: s.time,
            keyframe: s.keyframe,
            data: s.data.clone(),
            arrival: s.arrival,
        })));
    }
    out.extend(p.push(Input::End));
    out
}

fn starts(out: &[Output], rendition: &str) -> Vec<(u64, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Part {
                rendition: r,
                msn,
                index: 0,
                start,
                ..
            } if *r == rendition => Some((*msn, *start)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_tap_gives_every_video_sample_with_its_segment() {
    let (out, samples, _) = tapped(60, 300);
    assert_eq!(samples.len(), 300);
    let source = segments(&out, "source");
    let opened: Vec<u64> = samples
        .iter()
        .filter(|s| s.starts_segment)
        .map(|s| s.msn)
        .collect();
    assert_eq!(opened, source.iter().map(|s| s.msn).collect::<Vec<_>>());
    assert!(samples.windows(2).all(|w| w[0].time < w[1].time));
    assert!(samples
        .iter()
        .filter(|s| s.starts_segment)
        .all(|s| s.keyframe));
}

#[test]
fn a_follower_cuts_the_sources_segments_whatever_the_gop() {
    // GOPs of 2 s (on the grid), 1 s (two per segment), 1.5 s (segments stretch).
    for gop in [60, 30, 45] {
        let (out, samples, start) = tapped(gop, 450);
        let rung = follow(&samples, 2, start);
        let source_starts = starts(&out, "source");
        let rung_starts = starts(&rung, "480p");
        assert!(rung_starts.len() >= 3, "gop {gop}: {rung_starts:?}");
        for s in &rung_starts {
            assert!(
                source_starts.contains(s),
                "gop {gop}: rung segment {s:?} is not the source's: {source_starts:?}"
            );
        }
        let src = segments(&out, "source");
        let r = segments(&rung, "480p");
        for seg in &r {
            let same = src.iter().find(|x| x.msn == seg.msn).unwrap();
            assert!(
                (same.duration - seg.duration).abs() < 1e-9,
                "gop {gop} msn {}",
                seg.msn
            );
        }
        assert!(
            r[0].discontinuity,
            "a follower after a gap starts with a discontinuity"
        );
        assert!(r[1..].iter().all(|s| !s.discontinuity));
        let inits: Vec<&RenditionInfo> = rung
            .iter()
            .filter_map(|o| match o {
                Output::Init { rendition, .. } => Some(rendition),
                _ => None,
            })
            .collect();
        assert_eq!(inits.len(), 1);
        assert_eq!(inits[0].name, "480p");
        assert!(
            !rung.iter().any(|o| matches!(o, Output::Sample(_))),
            "no tap unless asked"
        );
    }
}
