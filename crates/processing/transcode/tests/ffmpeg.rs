//! The ladder's command run by the real ffmpeg (skipped with a note where it is
//! missing): a 720p30 source with a moving, noisy picture (so that the encoders need
//! their bitrate) is transcoded into the rungs below it, and ffprobe checks every rung:
//! its size, its bitrate within 20 % of the target, a keyframe at every segment start and
//! nowhere else, the same keyframe times in every rung; and the audio, encoded once.

#![allow(clippy::unwrap_used)]

use std::{path::Path, process::Command as Process, time::Duration};

use starling_transcode::{default_ladder, plan, Command, Output, Source};

const SECONDS: u32 = 6;

fn have_ffmpeg() -> bool {
    let ok = Process::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("ffmpeg missing: skipped");
    }
    ok
}

fn probe(file: &Path, args: &[&str]) -> String {
    let out = Process::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Presentation times of the video keyframes, in seconds from the first packet.
fn keyframes(file: &Path) -> Vec<f64> {
    let text = probe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ],
    );
    let packets: Vec<(f64, bool)> = text
        .lines()
        .filter_map(|l| {
            let (t, flags) = l.split_once(',')?;
            Some((t.parse().ok()?, flags.starts_with('K')))
        })
        .collect();
    let first = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    packets
        .iter()
        .filter(|p| p.1)
        .map(|p| ((p.0 - first) * 1000.0).round() / 1000.0)
        .collect()
}

#[test]
fn every_rung_has_its_size_its_bitrate_and_the_segment_grid() {
    if !have_ffmpeg() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("starling-ladder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.flv");
    let made = Process::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30,noise=alls=30:allf=t")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &SECONDS.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "60", "-b:v", "8M", "-c:a", "aac", "-f", "flv"])
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let rungs = plan(
        &default_ladder(),
        Source {
            video: Some((1280, 720)),
            frame_rate: Some(30.0),
        },
    )
    .unwrap();
    assert_eq!(
        rungs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["480p", "360p"]
    );
    let command = Command {
        input_format: "flv".into(),
        input: source.to_string_lossy().into_owned(),
        paced: false,
        segment_duration: Duration::from_secs(2),
        rungs: rungs.clone(),
        audio_kbps: Some(128),
    };
    let outputs: Vec<Output> = rungs
        .iter()
        .map(|r| r.name.clone())
        .chain(["audio".to_owned()])
        .map(|name| Output {
            url: dir
                .join(format!("{name}.ts"))
                .to_string_lossy()
                .into_owned(),
            name,
        })
        .collect();
    let args = command.args(&outputs).unwrap();
    let out = Process::new("ffmpeg")
        .arg("-y")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );

    let grid: Vec<f64> = (0..SECONDS / 2).map(|n| f64::from(n * 2)).collect();
    for r in &rungs {
        let file = dir.join(format!("{}.ts", r.name));
        let stream = probe(
            &file,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,codec_name",
                "-of",
                "default=nw=1",
            ],
        );
        assert!(
            stream.contains(&format!("width={}", r.width)),
            "{}: {stream}",
            r.name
        );
        assert!(
            stream.contains(&format!("height={}", r.height)),
            "{}: {stream}",
            r.name
        );
        assert!(stream.contains("codec_name=h264"), "{stream}");
        // The video's bitrate: its packets' bytes over the media's duration.
        let sizes = probe(
            &file,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=size",
                "-of",
                "csv=p=0",
            ],
        );
        // (csv lines may end in a comma: the first field is the size.)
        let bytes: u64 = sizes
            .lines()
            .filter_map(|l| l.split(',').next()?.trim().parse::<u64>().ok())
            .sum();
        let kbps = bytes as f64 * 8.0 / f64::from(SECONDS) / 1000.0;
        let target = f64::from(r.bitrate_kbps);
        eprintln!(
            "{}: {}x{}, {kbps:.0} kbit/s (target {target})",
            r.name, r.width, r.height
        );
        assert!(
            (kbps - target).abs() <= 0.2 * target,
            "{}: {kbps:.0} kbit/s against a target of {target}",
            r.name
        );
        assert_eq!(
            keyframes(&file),
            grid,
            "{}: keyframes on the 2 s grid only",
            r.name
        );
    }
    let audio = probe(
        &dir.join("audio.ts"),
        &[
            "-show_entries",
            "stream=codec_name,channels",
            "-of",
            "default=nw=1",
        ],
    );
    assert!(
        audio.contains("codec_name=aac") && audio.contains("channels=2"),
        "{audio}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
