//! DASH out, judged by two independent players: ffmpeg publishes over RTMP; ffmpeg's
//! DASH demuxer and GStreamer's `dashdemux2` (through `uridecodebin3`) read
//! `/live/{channel}/manifest.mpd` while live and decode frames; after the end the MPD is
//! static and holds every frame the HLS playlist holds, from the same CMAF objects.
//!
//! GStreamer 1.22's DASH demuxer buffers 10 s of media per track before it plays (it has
//! no recommended threshold for DASH, as it has for HLS), and at the live edge that
//! media arrives in real time: its live run starts early and runs beside the rest.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

const SECONDS: u32 = 36;
const FPS: u32 = 30;

/// Frames of the first video stream in `framecrc` output (`0, dts, pts, …` lines).
fn video_frames(framecrc: &str) -> usize {
    framecrc.lines().filter(|l| l.starts_with("0,")).count()
}

/// Segments the MPD lists for video (`S` elements and their repeats; the last one may be
/// in progress).
fn video_segments(mpd: &str) -> usize {
    let Some(video) = mpd.split("contentType=\"video\"").nth(1) else {
        return 0;
    };
    let video = video.split("</AdaptationSet>").next().unwrap();
    video
        .split("<S ")
        .skip(1)
        .map(|s| {
            let repeat = s.split("r=\"").nth(1).and_then(|r| r.split('"').next());
            1 + repeat.map_or(0, |r| r.parse::<usize>().unwrap())
        })
        .sum()
}

fn read_frames(url: &str) -> u64 {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(url));
    let text = String::from_utf8_lossy(&out.stdout);
    // The DASH demuxer lists the stream twice (in its program and on its own).
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe of {url}: {text}"))
}

#[test]
fn ffmpeg_and_gstreamer_play_the_mpd_live_and_after_the_end() {
    if !require_ffmpeg() {
        return;
    }
    let gst = have("gst-launch-1.0");
    if !gst && std::env::var_os("STARLING_SKIP_GSTREAMER_TESTS").is_none() {
        panic!("gst-launch-1.0 is missing (scripts/test installs GStreamer); set STARLING_SKIP_GSTREAMER_TESTS to skip");
    }
    let server = Server::start("dash-players", "");
    let publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=640x360:rate={FPS}"))
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args(["-t", &SECONDS.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-ac", "2", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let path = format!("/live/{CHANNEL}/manifest.mpd");
    let url = server.http_url(&path);
    let wait_mpd = |complete: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mpd = server.http_get(&path).unwrap_or_default();
            if video_segments(&mpd) > complete {
                assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no MPD with {complete} segments:\n{mpd}\nlog:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_mpd(1);

    // GStreamer, live: uridecodebin3 picks dashdemux2 and decodes 30 raw frames.
    let gst_live = gst.then(|| gst_decode(&url, Some(30), 50).spawn().unwrap());
    wait_mpd(3);

    // ffmpeg's DASH demuxer, live: three seconds of decoded frames.
    let live = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&url)
        .args(["-t", "3", "-f", "framecrc", "-"]));
    let frames = video_frames(&String::from_utf8_lossy(&live.stdout));
    assert!(
        frames >= 60,
        "ffmpeg decoded {frames} video frames of the live MPD"
    );

    if let Some(child) = gst_live {
        let (frames, text) = gst_frames(&child.wait_with_output().unwrap());
        assert!(
            text.contains("GstDashDemux2"),
            "not read by dashdemux2:\n{text}"
        );
        assert_eq!(frames, 30, "GStreamer decoded {frames} frames:\n{text}");
        // 640x360 I420 frames: decoded pictures, not compressed samples.
        assert!(text.contains("(345600 bytes"), "{text}");
    }

    let out = publisher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mpd = server.http_get(&path).unwrap_or_default();
        if mpd.contains("type=\"static\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the MPD never became static:\n{mpd}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A clean encode gives clean segments: the packager flagged no defect.
    for d in ["short", "no-irap", "jump", "hole"] {
        let metric = format!("starling_segment_defects_total{{defect=\"{d}\"}}");
        assert_eq!(server.metric(&metric), 0.0, "{metric}");
    }
    // After the end: DASH and HLS hold the same frames, all that were sent.
    let dash = read_frames(&url);
    let hls = read_frames(&server.http_url(&format!("/live/{CHANNEL}/index.m3u8")));
    assert_eq!(dash, hls, "DASH and HLS disagree");
    assert_eq!(dash, u64::from(SECONDS * FPS), "frames sent");
    if gst {
        // GStreamer reads the static MPD to its end: every frame.
        let (frames, _) = gst_frames(&gst_decode(&url, None, 60).output().unwrap());
        assert_eq!(frames as u64, dash, "GStreamer's frames of the static MPD");
    }
}
