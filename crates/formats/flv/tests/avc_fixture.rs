//! An FLV file written by FFmpeg (H.264 + AAC) read through FlvReader → FlvIngest, and
//! the round trip ingest → egress → ingest.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use starling_media::CodecConfig;

#[test]
fn ffmpeg_flv_ingests_as_expected() {
    let tags = read_tags(&fixture("avc_aac.flv"));
    let (got, ing) = ingest_tags(&tags);
    assert_eq!(ing.dropped_before_config(), 0);
    assert_eq!(ing.keyframe_flag_mismatches(), 0);

    // First the video config alone, then both tracks once the ASC arrives.
    assert_eq!(got.streams.len(), 2);
    assert_eq!(got.streams[0].tracks.len(), 1);
    let stream = got.last_stream();
    let video = stream.video().unwrap();
    let CodecConfig::H264(avc) = &video.config else {
        panic!("{:?}", video.config)
    };
    assert_eq!((avc.width, avc.height), (320, 240));
    assert_eq!(video.config.codec_string(), "avc1.64000d");
    assert_eq!(avc.fps, Some(25.0));
    let audio = stream.audio().unwrap();
    let CodecConfig::Aac(asc) = &audio.config else {
        panic!("{:?}", audio.config)
    };
    assert_eq!(
        (asc.object_type, asc.sample_rate, asc.channels),
        (2, 44100, 1)
    );
    assert_eq!(audio.config.codec_string(), "mp4a.40.2");

    assert_eq!(got.video.len(), 50);
    let keys: Vec<usize> = (0..got.video.len())
        .filter(|&i| got.video[i].keyframe)
        .collect();
    assert_eq!(keys, vec![0, 25]);
    for (i, f) in got.video.iter().enumerate() {
        assert_eq!(f.dts, i as i64 * 40, "frame {i}");
        assert!(f.pts >= f.dts);
    }
    // B-frames: some frames are shown later than decoded
    assert!(got.video.iter().any(|f| f.pts > f.dts));
    // ffprobe -count_packets says 88 audio packets
    assert_eq!(got.audio.len(), 88);
    assert!(got.audio.windows(2).all(|w| w[0].dts < w[1].dts));
    assert!(got.audio.iter().all(|f| f.keyframe && f.pts == f.dts));
    // zero copy: payloads point into the tag bodies
    let first_video_tag = tags
        .iter()
        .filter(|t| t.tag_type == starling_flv::TagType::Video)
        .nth(1)
        .unwrap();
    assert_eq!(
        got.video[0].data.as_ptr(),
        first_video_tag.body[5..].as_ptr()
    );
}

#[test]
fn ffmpeg_flv_round_trips() {
    let (got, _) = ingest_tags(&read_tags(&fixture("avc_aac.flv")));
    assert_round_trip(&got);
}
