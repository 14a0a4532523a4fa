//! Files made by FFmpeg (see tests/fixtures/README.md) demuxed into the media model.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{demux, fixture};
use starling_media::{nal, CodecConfig, TrackId};

#[test]
fn avc_aac() {
    let d = demux(&fixture("avc_aac.ts"), 1316);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = d.last_stream();
    assert_eq!(s.tracks.len(), 2);
    let video = s.video().unwrap();
    assert_eq!(video.id, TrackId(1));
    assert_eq!(video.timescale, 90_000);
    assert_eq!(video.config.dimensions(), Some((160, 120)));
    assert!(video.config.codec_string().starts_with("avc1.64"));
    let audio = s.audio().unwrap();
    assert_eq!(audio.config.codec_string(), "mp4a.40.2");
    let CodecConfig::Aac(asc) = &audio.config else {
        panic!()
    };
    assert_eq!(asc.sample_rate, 48_000);

    let v = d.track(TrackId(1));
    assert_eq!(v.len(), 50);
    let keys: Vec<usize> = (0..v.len()).filter(|&i| v[i].keyframe).collect();
    assert_eq!(keys, [0, 25]);
    // 25 fps in decode order; B-frames put pts ahead of dts.
    for w in v.windows(2) {
        assert_eq!(w[1].dts - w[0].dts, 3600);
    }
    assert!(v.iter().all(|f| f.pts >= f.dts));
    assert!(v.iter().any(|f| f.pts > f.dts));
    // Length-prefixed, no AUD left, every unit well framed.
    for f in &v {
        for unit in nal::iter_length_prefixed(&f.data, 4) {
            let unit = unit.unwrap();
            assert_ne!(unit[0] & 0x1F, 9, "AUD kept");
        }
    }
    let a = d.track(TrackId(2));
    assert_eq!(a.len(), 95);
    assert!(a.iter().all(|f| f.keyframe && f.pts == f.dts));
    for w in a.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1920, "1024 samples at 48 kHz");
    }
    assert!(!d.pcrs.is_empty());
    assert_eq!(d.stats.continuity_errors, 0);
    assert_eq!(d.stats.frames, 145);
}

#[test]
fn hevc() {
    let d = demux(&fixture("hevc.ts"), 7 * 188);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = d.last_stream();
    assert_eq!(s.tracks.len(), 1);
    let video = s.video().unwrap();
    assert!(video.config.codec_string().starts_with("hvc1.1."));
    assert_eq!(video.config.dimensions(), Some((160, 120)));
    let v = d.track(TrackId(1));
    assert_eq!(v.len(), 50);
    assert!(v[0].keyframe);
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), 2);
}

#[test]
fn opus() {
    let d = demux(&fixture("opus.ts"), 1316);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let s = d.last_stream();
    let audio = s.audio().unwrap();
    assert_eq!(audio.config.codec_string(), "opus");
    let CodecConfig::Opus(o) = &audio.config else {
        panic!()
    };
    assert_eq!(o.channels, 1);
    let a = d.track(TrackId(1));
    assert_eq!(a.len(), 101);
    for w in a.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1800, "20 ms packets");
    }
}

#[test]
fn one_byte_at_a_time_is_the_same_as_all_at_once() {
    for name in ["avc_aac.ts", "hevc.ts", "opus.ts"] {
        let data = fixture(name);
        let whole = demux(&data, data.len());
        let bytewise = demux(&data, 1);
        let odd = demux(&data, 187);
        assert_eq!(whole.frames, bytewise.frames, "{name}");
        assert_eq!(whole.frames, odd.frames, "{name}");
        assert_eq!(whole.streams, bytewise.streams, "{name}");
        assert_eq!(whole.pcrs, bytewise.pcrs, "{name}");
        assert_eq!(whole.stats, bytewise.stats, "{name}");
        assert_eq!(whole.errors, bytewise.errors, "{name}");
    }
}
