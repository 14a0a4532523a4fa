//! Mux -> demux gives back the same frames and timing; FFprobe reads what the muxer
//! writes.

// Test-only helpers below unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{process::Command, time::SystemTime};

use bytes::Bytes;
use common::{demux, fixture, Demuxed};
use starling_media::{aac::AudioSpecificConfig, CodecConfig, Frame, Stream, Track, TrackId};
use starling_mpegts::{MpegTsError, Muxer};

fn mux(stream: &Stream, frames: &[Frame]) -> Vec<u8> {
    let mut m = Muxer::new(stream).unwrap();
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&m.frame(f).unwrap());
    }
    out
}

fn remux(d: &Demuxed) -> Vec<u8> {
    mux(d.last_stream(), &d.frames)
}

#[test]
fn demux_mux_demux_keeps_frames_and_timing() {
    for name in ["avc_aac.ts", "hevc.ts", "opus.ts"] {
        let first = demux(&fixture(name), 1316);
        let ts = remux(&first);
        assert_eq!(ts.len() % 188, 0);
        let second = demux(&ts, 1316);
        assert!(second.errors.is_empty(), "{name}: {:?}", second.errors);
        assert_eq!(second.last_stream(), first.last_stream(), "{name}");
        // Frames come back per track in the same order with the same bytes and times
        // (the interleaving of tracks may differ: the source muxer buffers audio).
        for t in &first.last_stream().tracks {
            let (a, b) = (first.track(t.id), second.track(t.id));
            assert_eq!(a.len(), b.len(), "{name} track {}", t.id);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(
                    (x.pts, x.dts, x.keyframe, &x.data),
                    (y.pts, y.dts, y.keyframe, &y.data),
                    "{name} track {}",
                    t.id
                );
            }
        }
    }
}

#[test]
fn millisecond_tracks_convert_to_90khz() {
    // An FLV-shaped stream (timescale 1000) of AAC: times come back scaled by 90.
    let asc = AudioSpecificConfig::from_params(2, 44_100, 2).unwrap();
    let stream = Stream {
        tracks: vec![Track {
            id: TrackId(2),
            timescale: 1000,
            config: CodecConfig::Aac(asc),
        }],
        metadata: Vec::new(),
        clock: Default::default(),
    };
    let frames: Vec<Frame> = (0..10)
        .map(|i| Frame {
            track: TrackId(2),
            pts: i * 23,
            dts: i * 23,
            keyframe: true,
            data: Bytes::from(vec![0x21, i as u8, 0x40]),
            arrival: SystemTime::UNIX_EPOCH,
        })
        .collect();
    let d = demux(&mux(&stream, &frames), 188);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let got: Vec<(i64, Bytes)> = d.frames.iter().map(|f| (f.pts, f.data.clone())).collect();
    let want: Vec<(i64, Bytes)> = frames
        .iter()
        .map(|f| (f.pts * 90, f.data.clone()))
        .collect();
    assert_eq!(got, want);
    // Our ids are positional: the one track comes back as track 1.
    assert_eq!(d.frames[0].track, TrackId(1));
}

#[test]
fn unknown_tracks_and_codecs_are_refused() {
    let d = demux(&fixture("opus.ts"), 1316);
    let mut m = Muxer::new(d.last_stream()).unwrap();
    let mut f = d.frames[0].clone();
    f.track = TrackId(9);
    assert_eq!(m.frame(&f), Err(MpegTsError::UnknownTrack(9)));
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name).arg("-version").output().is_ok();
    if !ok {
        eprintln!("skipping: {name} is not installed");
    }
    ok
}

#[test]
fn ffprobe_reads_the_muxer_output() {
    if !tool("ffprobe") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("starling-mpegts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, counts) in [
        ("avc_aac.ts", "h264,50aac,95"),
        ("hevc.ts", "hevc,50"),
        ("opus.ts", "opus,101"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, remux(&demux(&fixture(name), 1316))).unwrap();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_packets", "-show_entries"])
            .args(["stream=codec_name,nb_read_packets", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{name}: {stderr}"
        );
        // ffprobe lists each stream under its program too: keep the first of each line.
        let mut lines: Vec<&str> = Vec::new();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for l in stdout.lines().filter(|l| !l.is_empty()) {
            if !lines.contains(&l) {
                lines.push(l);
            }
        }
        assert_eq!(lines.concat(), counts, "{name}");
        // And it decodes without a complaint.
        if tool("ffmpeg") {
            let out = Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "{name}: {stderr}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
