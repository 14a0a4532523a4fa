//! H.265 over Enhanced RTMP: FFmpeg's HEVC and ADTS elementary streams → the media model
//! (Annex B → length-prefixed NAL units, hvcC built from the parameter sets, ADTS → raw
//! AAC) → Enhanced `hvc1` FLV tags → FlvIngest, which must give back the same model.
//!
//! Also generates the committed fixture `tests/fixtures/hevc_enhanced.flv`:
//! `cargo test -p starling-flv --test hevc_fixture -- --ignored make_hevc_fixture`.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use bytes::Bytes;
use common::*;
use starling_media::{
    aac::adts_to_raw, h265, h265::HevcConfig, nal, CodecConfig, Frame, Stream, Track,
};

const FPS: i64 = 25;

/// `ffmpeg ARGS -` captured, or None (with a loud message) if ffmpeg is unavailable.
fn ffmpeg(args: &[&str]) -> Option<Bytes> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(args)
        .arg("-")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Bytes::from(o.stdout)),
        Ok(o) => panic!("ffmpeg failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("!!! ffmpeg not runnable ({e}): skipping the ffmpeg part of this test !!!");
            None
        }
    }
}

/// 320x240, 25 fps, 1 s of H.265 Main, IDR every 12 frames, no B-frames (pts = dts,
/// since an elementary stream carries no timestamps).
fn ffmpeg_hevc() -> Option<Bytes> {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "1",
        "-c:v",
        "libx265",
        "-x265-params",
        "info=0:log-level=error:bframes=0:keyint=12:min-keyint=12:open-gop=0",
        "-f",
        "hevc",
    ])
}

/// 1 s of AAC-LC, 48 kHz stereo.
fn ffmpeg_adts() -> Option<Bytes> {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "1",
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "adts",
    ])
}

/// Groups the NAL units of an HEVC Annex B stream into access units: a new one starts at
/// a parameter set, AUD or prefix SEI that follows a slice, or at a slice with
/// first_slice_segment_in_pic_flag set that follows a slice.
fn access_units(es: &Bytes) -> Vec<Vec<Bytes>> {
    let mut aus: Vec<Vec<Bytes>> = Vec::new();
    let mut current: Vec<Bytes> = Vec::new();
    let mut seen_slice = false;
    for nal in nal::split_annexb(es) {
        let t = h265::nal_type(nal[0]);
        let is_slice = t < 32;
        let starts_au = if is_slice {
            nal.get(2).is_some_and(|b| b & 0x80 != 0)
        } else {
            matches!(t, 32..=35 | 39)
        };
        if starts_au && seen_slice {
            aus.push(std::mem::take(&mut current));
            seen_slice = false;
        }
        seen_slice |= is_slice;
        current.push(nal);
    }
    if !current.is_empty() {
        aus.push(current);
    }
    aus
}

/// Builds the media model of the two elementary streams: parameter sets go to the
/// hvcC (and out of the frames), frames are length-prefixed with 4-byte lengths.
fn model(hevc: &Bytes, adts: &Bytes) -> (Stream, Vec<Frame>, Vec<Frame>) {
    let (mut vps, mut sps, mut pps) = (vec![], vec![], vec![]);
    let mut video = Vec::new();
    for (i, au) in access_units(hevc).into_iter().enumerate() {
        let mut annexb = Vec::new();
        for n in au {
            match h265::nal_type(n[0]) {
                h265::NAL_VPS if vps.is_empty() => vps.push(n),
                h265::NAL_SPS if sps.is_empty() => sps.push(n),
                h265::NAL_PPS if pps.is_empty() => pps.push(n),
                h265::NAL_VPS | h265::NAL_SPS | h265::NAL_PPS | h265::NAL_AUD => {}
                _ => {
                    annexb.extend_from_slice(&[0, 0, 0, 1]);
                    annexb.extend_from_slice(&n);
                }
            }
        }
        let data = nal::annexb_to_length_prefixed(&Bytes::from(annexb), 4).unwrap();
        let dts = i as i64 * 1000 / FPS;
        video.push(Frame {
            track: starling_flv::VIDEO_TRACK,
            pts: dts,
            dts,
            keyframe: h265::is_keyframe(&data, 4),
            data,
            arrival: T0,
        });
    }
    let hvcc = HevcConfig::from_parameter_sets(&vps, &sps, &pps).unwrap();
    let (asc, raw) = adts_to_raw(adts).unwrap();
    let audio = raw
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let dts =
                i as i64 * i64::from(asc.samples_per_frame()) * 1000 / i64::from(asc.sample_rate);
            Frame {
                track: starling_flv::AUDIO_TRACK,
                pts: dts,
                dts,
                keyframe: true,
                data,
                arrival: T0,
            }
        })
        .collect();
    let stream = Stream {
        tracks: vec![
            Track {
                id: starling_flv::VIDEO_TRACK,
                timescale: 1000,
                config: CodecConfig::H265(hvcc),
            },
            Track {
                id: starling_flv::AUDIO_TRACK,
                timescale: 1000,
                config: CodecConfig::Aac(asc),
            },
        ],
        metadata: vec![],
        clock: Default::default(),
    };
    (stream, video, audio)
}

#[test]
#[ignore = "writes tests/fixtures/hevc_enhanced.flv from fresh ffmpeg output"]
fn make_hevc_fixture() {
    let (Some(hevc), Some(adts)) = (ffmpeg_hevc(), ffmpeg_adts()) else {
        panic!("ffmpeg is needed to make the fixture");
    };
    let (stream, video, audio) = model(&hevc, &adts);
    let file = egress_file(&stream, &video, &audio);
    let path = format!(
        "{}/tests/fixtures/hevc_enhanced.flv",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(&path, &file).unwrap();
    eprintln!("wrote {} bytes to {path}", file.len());
}

#[test]
fn ffmpeg_hevc_through_enhanced_rtmp_tags() {
    let (Some(hevc), Some(adts)) = (ffmpeg_hevc(), ffmpeg_adts()) else {
        return;
    };
    let (stream, video, audio) = model(&hevc, &adts);
    assert_eq!(video.len(), 25);
    let file = egress_file(&stream, &video, &audio);
    let tags = read_tags(&file);
    // the sequence header and every frame went out with the Enhanced RTMP hvc1 header
    for t in tags
        .iter()
        .filter(|t| t.tag_type == starling_flv::TagType::Video)
    {
        assert_eq!(t.body[0] & 0x80, 0x80);
        assert_eq!(&t.body[1..5], b"hvc1");
    }
    let (got, ing) = ingest_tags(&tags);
    assert_eq!(ing.dropped_before_config(), 0);
    assert_eq!(ing.keyframe_flag_mismatches(), 0);
    assert_eq!(got.last_stream(), &stream);
    assert_eq!(got.video, video);
    assert_eq!(got.audio, audio);
}

#[test]
fn committed_hevc_fixture_ingests_and_round_trips() {
    let tags = read_tags(&fixture("hevc_enhanced.flv"));
    let (got, ing) = ingest_tags(&tags);
    assert_eq!(ing.dropped_before_config(), 0);
    assert_eq!(ing.keyframe_flag_mismatches(), 0);
    let stream = got.last_stream();
    let v = stream.video().unwrap();
    let CodecConfig::H265(hvcc) = &v.config else {
        panic!("{:?}", v.config)
    };
    assert_eq!((hvcc.width, hvcc.height), (320, 240));
    assert_eq!(v.config.codec_string(), "hvc1.1.6.L60.90");
    // the hvcC in the file is exactly what from_parameter_sets builds from its sets
    let rebuilt = HevcConfig::from_parameter_sets(&hvcc.vps, &hvcc.sps, &hvcc.pps).unwrap();
    assert_eq!(&rebuilt, hvcc);
    let a = stream.audio().unwrap();
    assert_eq!(a.config.codec_string(), "mp4a.40.2");
    let CodecConfig::Aac(asc) = &a.config else {
        panic!()
    };
    assert_eq!((asc.sample_rate, asc.channels), (48000, 2));

    assert_eq!(got.video.len(), 25);
    let keys: Vec<usize> = (0..25).filter(|&i| got.video[i].keyframe).collect();
    assert_eq!(keys, vec![0, 12, 24]);
    for (i, f) in got.video.iter().enumerate() {
        assert_eq!((f.dts, f.pts), (i as i64 * 40, i as i64 * 40));
        // no parameter sets in-band: they live in the hvcC
        for n in nal::iter_length_prefixed(&f.data, 4) {
            let t = h265::nal_type(n.unwrap()[0]);
            assert!(
                !(h265::NAL_VPS..=h265::NAL_PPS).contains(&t),
                "frame {i}: type {t}"
            );
        }
    }
    assert!(got.audio.len() >= 47, "{} audio frames", got.audio.len());
    assert!(got.audio.windows(2).all(|w| w[0].dts < w[1].dts));
    assert_round_trip(&got);
}
