//! The FFmpeg-made FLV fixture (H.264 High with B-frames 320x240 25 fps, 2 s, keyframes
//! every second; AAC-LC 44.1 kHz mono) through FlvReader → FlvIngest → Packager, judged
//! by ffprobe and ffmpeg on the concatenated init + parts of each rendition.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use starling_flv::{FlvIngest, FlvReader, TagType};
use starling_media::MediaEvent;
use starling_packager::{Input, Output, Packager, PackagerConfig};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// The fixture's events as the hub would hand them over, arrival in step with the
/// timestamps.
fn fixture_inputs() -> Vec<Input> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../formats/flv/tests/fixtures/avc_aac.flv"
    );
    let mut reader = FlvReader::new();
    reader.push(&std::fs::read(path).unwrap());
    let mut ingest = FlvIngest::new();
    let mut inputs = Vec::new();
    while let Some(tag) = reader.next_tag().unwrap() {
        let arrival = t0() + Duration::from_millis(u64::from(tag.timestamp));
        let events = match tag.tag_type {
            TagType::Video => ingest.video(tag.timestamp, tag.body, arrival).unwrap(),
            TagType::Audio => ingest.audio(tag.timestamp, tag.body, arrival).unwrap(),
            _ => continue,
        };
        inputs.extend(events.into_iter().map(|e| match e {
            MediaEvent::Stream(s) => Input::Stream(s),
            MediaEvent::Frame(f) => Input::Frame(f),
        }));
    }
    inputs.push(Input::End);
    inputs
}

/// (duration, independent, starts with `styp`) of a part.
type PartInfo = (f64, bool, bool);

#[derive(Debug, Default)]
struct Rendition {
    file: Vec<u8>,
    /// (msn, duration, parts)
    segments: Vec<(u64, f64, Vec<PartInfo>)>,
    parts: Vec<(u64, f64, bool, bool)>,
}

fn collect(outputs: &[Output], name: &str) -> Rendition {
    let mut r = Rendition::default();
    for o in outputs {
        match o {
            Output::Init { rendition, init } if rendition.name == name => {
                assert!(r.file.is_empty(), "one init");
                r.file.extend_from_slice(init);
            }
            Output::Part {
                rendition,
                msn,
                duration,
                independent,
                data,
                ..
            } if *rendition == name => {
                r.file.extend_from_slice(data);
                r.parts
                    .push((*msn, *duration, *independent, &data[4..8] == b"styp"));
            }
            Output::SegmentEnd {
                rendition,
                msn,
                duration,
                ..
            } if *rendition == name => {
                let parts = r
                    .parts
                    .drain(..)
                    .map(|(m, d, i, s)| {
                        assert_eq!(m, *msn);
                        (d, i, s)
                    })
                    .collect();
                r.segments.push((*msn, *duration, parts));
            }
            _ => {}
        }
    }
    assert!(r.parts.is_empty());
    r
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("starling-packager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run(program: &str, args: &[&str], file: &Path) -> (String, String) {
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .args(if program == "ffmpeg" {
            &["-f", "null", "-"][..]
        } else {
            &[]
        })
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn field<'a>(probe: &'a str, key: &str) -> &'a str {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|l| l.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {probe}"))
}

#[test]
fn fixture_packages_into_segments_ffmpeg_decodes() {
    let mut packager = Packager::new(PackagerConfig {
        segment_duration: Duration::from_secs(1),
        part_duration: Duration::from_millis(200),
    });
    let outputs: Vec<Output> = fixture_inputs()
        .into_iter()
        .flat_map(|i| packager.push(i))
        .collect();
    assert_eq!(outputs.last(), Some(&Output::Ended));
    assert_eq!(packager.dropped_frames(), 0);
    assert_eq!(packager.clamped_timestamps(), 0);
    assert!(packager.last_error().is_none());

    let video = collect(&outputs, "source");
    let audio = collect(&outputs, "audio");
    let msns: Vec<u64> = video.segments.iter().map(|s| s.0).collect();
    assert_eq!(msns, [0, 1]);
    assert_eq!(audio.segments.iter().map(|s| s.0).collect::<Vec<_>>(), msns);
    for (v, a) in video.segments.iter().zip(&audio.segments) {
        assert!((v.1 - 1.0).abs() < 1e-9, "video segment {}: {}", v.0, v.1);
        assert!(
            (v.1 - a.1).abs() <= 1024.0 / 44_100.0,
            "segment {}: video {} audio {}",
            v.0,
            v.1,
            a.1
        );
        for (parts, target) in [(&v.2, 0.2), (&a.2, 0.2)] {
            assert!(parts[0].1 && parts[0].2, "first part independent with styp");
            assert!(
                parts[1..].iter().all(|p| !p.2),
                "styp only in the first part"
            );
            assert!(parts.iter().all(|p| p.0 <= target + 1e-9), "{parts:?}");
        }
        assert_eq!(v.2.len(), 5);
    }

    let video_file = write("video.mp4", &video.file);
    let (probe, errors) = run(
        "ffprobe",
        &["-v", "error", "-count_frames", "-show_streams"],
        &video_file,
    );
    assert_eq!(errors, "", "ffprobe: {errors}");
    assert_eq!(field(&probe, "codec_name"), "h264");
    assert_eq!(field(&probe, "width"), "320");
    assert_eq!(field(&probe, "height"), "240");
    assert_eq!(field(&probe, "nb_read_frames"), "50");
    let (_, errors) = run("ffmpeg", &["-v", "error", "-i"], &video_file);
    assert_eq!(errors, "", "ffmpeg: {errors}");

    let audio_file = write("audio.mp4", &audio.file);
    let (probe, errors) = run(
        "ffprobe",
        &["-v", "error", "-count_frames", "-show_streams"],
        &audio_file,
    );
    assert_eq!(errors, "", "ffprobe: {errors}");
    assert_eq!(field(&probe, "codec_name"), "aac");
    assert_eq!(field(&probe, "sample_rate"), "44100");
    let frames: i64 = field(&probe, "nb_read_frames").parse().unwrap();
    assert!((frames - 88).abs() <= 1, "{frames} AAC frames");
    let (_, errors) = run("ffmpeg", &["-v", "error", "-i"], &audio_file);
    assert_eq!(errors, "", "ffmpeg: {errors}");
    let _ = std::fs::remove_dir_all(video_file.parent().unwrap());
}
