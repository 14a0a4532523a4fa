//! RTMP in, SRT out: frames as the FLV ingest produces them (millisecond clock,
//! parameter sets only in the track configuration) muxed to TS and demuxed again.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::SystemTime;

use common::demux;
use starling_flv::{FlvIngest, FlvReader, TagType};
use starling_media::{h264, h265, nal, Frame, MediaEvent, Stream, TrackKind};
use starling_mpegts::Muxer;

fn ingest_flv(name: &str) -> (Stream, Vec<Frame>) {
    let path = format!(
        "{}/../flv/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = FlvReader::new();
    reader.push(&file);
    let mut ingest = FlvIngest::new();
    let (mut stream, mut frames) = (None, Vec::new());
    while let Some(tag) = reader.next_tag().unwrap() {
        let t0 = SystemTime::UNIX_EPOCH;
        let events = match tag.tag_type {
            TagType::Video => ingest.video(tag.timestamp, tag.body, t0).unwrap(),
            TagType::Audio => ingest.audio(tag.timestamp, tag.body, t0).unwrap(),
            _ => continue,
        };
        for e in events {
            match e {
                MediaEvent::Stream(s) => stream = Some((*s).clone()),
                MediaEvent::Frame(f) => frames.push(f),
            }
        }
    }
    (stream.unwrap(), frames)
}

/// The NAL units of a frame other than parameter sets.
fn slices(f: &Frame, hevc: bool) -> Vec<Vec<u8>> {
    nal::iter_length_prefixed(&f.data, 4)
        .map(Result::unwrap)
        .filter(|u| {
            if hevc {
                !(32..=34).contains(&h265::nal_type(u[0]))
            } else {
                !matches!(h264::nal_type(u[0]), h264::NAL_SPS | h264::NAL_PPS)
            }
        })
        .map(|u| u.to_vec())
        .collect()
}

#[test]
fn flv_frames_survive_ts() {
    for (name, hevc) in [("avc_aac.flv", false), ("hevc_enhanced.flv", true)] {
        let (stream, frames) = ingest_flv(name);
        let mut m = Muxer::new(&stream).unwrap();
        let ts: Vec<u8> = frames
            .iter()
            .flat_map(|f| m.frame(f).unwrap().to_vec())
            .collect();
        let d = demux(&ts, 1316);
        assert!(d.errors.is_empty(), "{name}: {:?}", d.errors);
        let got = d.last_stream();
        assert_eq!(got.tracks.len(), stream.tracks.len(), "{name}");
        for (want_track, got_track) in stream.tracks.iter().zip(&got.tracks) {
            assert_eq!(
                want_track.config.codec_string(),
                got_track.config.codec_string()
            );
            assert_eq!(
                want_track.config.dimensions(),
                got_track.config.dimensions()
            );
            let want: Vec<&Frame> = frames.iter().filter(|f| f.track == want_track.id).collect();
            let back = d.track(got_track.id);
            assert_eq!(want.len(), back.len(), "{name} {:?}", want_track.kind());
            for (w, b) in want.iter().zip(&back) {
                assert_eq!(
                    (w.pts * 90, w.dts * 90, w.keyframe),
                    (b.pts, b.dts, b.keyframe)
                );
                if want_track.kind() == TrackKind::Video {
                    // The muxer put the parameter sets in front of each keyframe.
                    assert_eq!(slices(w, hevc), slices(b, hevc), "{name}");
                    if b.keyframe {
                        assert!(
                            slices(b, hevc).len() < nal::iter_length_prefixed(&b.data, 4).count()
                        );
                    }
                } else {
                    assert_eq!(w.data, b.data);
                }
            }
        }
    }
}
