//! Vertical reframing and highlights, end to end: ffmpeg publishes a synthetic source
//! made from a photo with a face (the astronaut of crates/processing/reframe's fixtures)
//! moving across a 1280×720 frame, a cut to a new shot, then a motion burst and a
//! loudness burst in an otherwise quiet stream. The node's ladder gives the analysis
//! tap, CenterFace finds the face, and the API's window path must keep the face inside
//! the 9:16 window, move smoothly, jump at the cut; exactly one highlight must come of
//! each burst. Then the sources reframing must cope with: no model (motion only, and
//! the status says why), a portrait source (passed through) and one with no video.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use common::*;
use serde_json::Value;

/// One ladder at a time: two would share two cores with their publishers.
static SERIAL: Mutex<()> = Mutex::new(());

/// The model scripts/face-model installs (scripts/test exports its path).
fn model() -> PathBuf {
    let path = std::env::var_os("STARLING_FACE_MODEL").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../target/tools/models/centerface.onnx")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is absent: run scripts/face-model --install",
        path.display()
    );
    path
}

fn photo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../processing/reframe/tests/fixtures/astronaut-256.jpg")
}

/// Where the scene's events are (seconds of the source).
const CUT_AT: f64 = 14.0;
const MOTION_BURST: (f64, f64) = (26.0, 27.5);
const LOUD_BURST: (f64, f64) = (32.0, 33.5);
const LENGTH: u32 = 38;

/// The face's centre (a share of the width) at `t` seconds: the photo (420 px) moves
/// right at 40 px/s from x = 100, then after the cut stands at x = 20. The face's
/// centre sits at 0.44 of the photo's width (crates/processing/reframe/tests/detector.rs).
fn face_x(t: f64) -> f64 {
    let left = if t < CUT_AT { 100.0 + 40.0 * t } else { 20.0 };
    (left + 0.44 * 420.0) / 1280.0
}

/// The scene, encoded beforehand so that the only encoder competing for CPU while it
/// plays is the ladder's: 25 fps, a keyframe every 2 s. The motion burst is a large box
/// (40 % of the picture) flickering between two greys close enough that its brightness
/// change is not a cut.
fn scene(dir: &Path) -> PathBuf {
    let out = dir.join("scene.flv");
    let (m0, m1) = MOTION_BURST;
    let (l0, l1) = LOUD_BURST;
    let video = format!(
        "color=c=0x506070:s=1280x720:r=25:d={LENGTH}[bg];[0]scale=420:420[p];\
         [bg]drawbox=x=0:y=0:w=iw:h=ih:color=0xD0D0D0:t=fill:enable='gte(t,{CUT_AT})'[b1];\
         [b1][p]overlay=x='if(lt(t,{CUT_AT}),100+40*t,20)':y=150[b2];\
         [b2]drawbox=x=700:y=30:w=560:h=660:color=0xA8A8A8:t=fill:enable='between(t,{m0},{m1})',\
         drawbox=x=700:y=30:w=560:h=660:color=0x808080:t=fill:enable='between(t,{m0},{m1})*lt(mod(t,0.3),0.15)'[v]"
    );
    let audio =
        format!("aevalsrc='if(between(t,{l0},{l1}),0.8,0.01)*sin(2*PI*440*t)':s=48000:d={LENGTH}");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(photo())
        .args(["-f", "lavfi", "-i", &audio, "-filter_complex", &video])
        .args(["-map", "[v]", "-map", "1:a", "-t", &LENGTH.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(&out));
    out
}

fn reframe(server: &Server) -> Option<Value> {
    let r = server.http_request("GET", &format!("/api/v1/live/{CHANNEL}/reframe"), &[], None);
    (r.status == 200).then(|| serde_json::from_str(&r.body).unwrap())
}

const CONFIG: &str = "[transcode]\nenabled = true\n[reframe]\nhighlight_min_spacing_secs = 4\n";

#[test]
fn the_window_follows_the_face_jumps_at_the_cut_and_each_burst_is_one_highlight() {
    if !require_ffmpeg() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = format!("{CONFIG}model = {:?}\n", model());
    let mut server = Server::start_channel(
        "reframe-follow",
        &config,
        "ladder = \"360p\"\nreframe = true\nhighlights = true\nrecording = true",
    );
    let file = scene(&server.data_dir());
    let mut publisher = publish_file(&server, &file);
    // Gathered while it plays: the path is kept for 10 minutes, so one read at the end
    // would do, but a failure shows earlier this way.
    let running = wait_until("reframing to run", Duration::from_secs(20), || {
        reframe(&server).filter(|v| v["status"]["state"] == "running")
    });
    assert_eq!(running["status"]["detector"], "faces", "{running}");
    let live = server.http_get("/api/v1/live").unwrap();
    assert!(
        live.contains("\"reframe\":{"),
        "the live list shows it: {live}"
    );
    // The vertical rendition: its own multivariant playlist, not a step of the ladder.
    let vertical = wait_until("the vertical playlist", Duration::from_secs(20), || {
        server.http_get(&format!("/live/{CHANNEL}/vertical/index.m3u8"))
    });
    assert!(
        vertical.contains("RESOLUTION=406x720") && vertical.contains("../portrait/index.m3u8"),
        "{vertical}"
    );
    assert!(vertical.contains("../audio/index.m3u8"), "{vertical}");
    let ladder = server
        .http_get(&format!("/live/{CHANNEL}/index.m3u8"))
        .unwrap();
    assert!(!ladder.contains("portrait"), "{ladder}");
    let mpd = server
        .http_get(&format!("/live/{CHANNEL}/vertical/manifest.mpd"))
        .unwrap();
    assert!(
        mpd.contains("id=\"portrait\"")
            && mpd.contains("../portrait/")
            && !mpd.contains("id=\"source\""),
        "{mpd}"
    );
    // A player of it, from its first segment (the source's start) to the end: two
    // pictures a second, halved in size (the detector's work in a debug build), for
    // CenterFace to look at.
    let frames = server.data_dir().join("vertical.yuv");
    let mut player = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-live_start_index", "0", "-i"])
        .arg(server.http_url(&format!("/live/{CHANNEL}/vertical/index.m3u8")))
        .args([
            "-map",
            "0:v:0",
            "-vf",
            "fps=2,scale=204:360",
            "-f",
            "rawvideo",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&frames)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let status = publisher.wait().unwrap();
    assert!(status.success());
    wait_until(
        "the player to reach the end",
        Duration::from_secs(30),
        || (!common::running(&mut player)).then_some(()),
    );
    // Each highlight's clip, cut from the recording once its end was packaged.
    // (The reframing of the run's end may still be working through its tap's backlog.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (v, clips) = loop {
        let v = reframe(&server).expect("the last run stays listed");
        let clips = v["clips"].as_array().unwrap().clone();
        if clips.len() == 2 && v["status"]["state"] == "ended" {
            break (v, clips);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two clips, not: {} (status {}; log: {})",
            v["clips"],
            v["status"],
            server
                .log_text()
                .lines()
                .filter(|l| l.contains("clip") || l.contains("highlight"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for clip in &clips {
        // Whole segments around the highlight's 15 s (two-second segments).
        let d = clip["duration_secs"].as_f64().unwrap();
        assert!((15.0..=19.5).contains(&d), "{clip}");
        // ffprobe reads it whole: the ladder's top (the source) and the upright one.
        for (key, size) in [("playlist", "1280,720"), ("vertical_playlist", "406,720")] {
            let path = clip[key].as_str().unwrap();
            // (Its last segment's index line may follow the segment by a moment.)
            wait_until("the clip's playlist", Duration::from_secs(10), || {
                server.http_get(path)
            });
            let url = server.http_url(path);
            let out = run(Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0"])
                .args(["-show_entries", "stream=width,height:format=duration"])
                .args(["-of", "csv=p=0"])
                .arg(&url));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.contains(size), "{url}: {text}");
            let probed: f64 = text
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .next()
                .unwrap_or(0.0);
            assert!((probed - d).abs() < 0.5, "{url}: {probed} s, listed {d} s");
        }
    }
    // hls.js plays the loud one upright, from the watch page's clip link.
    if require_browser() {
        let c = &clips[1];
        let link = format!(
            "/watch/{CHANNEL}?clip={}/{}-{}",
            c["run"].as_str().unwrap(),
            c["first_segment"],
            c["last_segment"]
        );
        let page = watch(&[
            &server.http_url(&link),
            "--portrait",
            "--vod",
            "--seconds",
            "2",
        ]);
        assert_eq!(page["view"], "vertical", "{page}");
        assert_eq!(page["level"]["height"], 720, "{page}");
    }
    server.stop();

    // The face is in the vertical picture: CenterFace finds it in ≥ 95 % of them, but
    // for the first second and a half (the window starts centred; the face is tracked
    // after two detections, then the camera accelerates to it) and the second of the
    // cut (the new shot is cropped where the old subject was until the analysis, five
    // pictures a second, sees it). Picture `i` is at `i / 2` seconds of the source.
    let raw = std::fs::read(&frames).unwrap();
    let len = 204 * 360 * 3 / 2;
    let mut detector = starling_reframe::FaceDetector::load(&model()).unwrap();
    let pictures: Vec<&[u8]> = raw.chunks_exact(len).collect();
    let found: String = pictures
        .iter()
        .map(|p| {
            let picture = starling_reframe::I420::new(204, 360, p).unwrap();
            if detector.detect(&picture).unwrap().is_empty() {
                '.'
            } else {
                'F'
            }
        })
        .collect();
    eprintln!("vertical rendition: {found} (a face: F, none: ., two pictures a second)");
    let judged: Vec<char> = found
        .chars()
        .enumerate()
        .filter(|(i, _)| {
            let t = *i as f64 / 2.0;
            t >= 1.5 && !(CUT_AT - 0.5..CUT_AT + 1.0).contains(&t)
        })
        .map(|(_, c)| c)
        .collect();
    let with_face = judged.iter().filter(|c| **c == 'F').count();
    assert!(pictures.len() >= 70, "{} pictures played", pictures.len());
    assert!(
        with_face * 100 >= judged.len() * 95,
        "a face in {with_face} of {} vertical pictures",
        judged.len()
    );

    let path = v["path"].as_array().unwrap();
    let point = |p: &Value| {
        (
            p["t_ms"].as_i64().unwrap(),
            p["x"].as_f64().unwrap() + p["width"].as_f64().unwrap() / 2.0,
            p["width"].as_f64().unwrap(),
            p["cut"].as_bool().unwrap(),
        )
    };
    let points: Vec<_> = path.iter().map(point).collect();
    assert!(points.len() > 100, "5 points a second: {}", points.len());
    // The channel's media time of the source's t = 0, from the one cut.
    let cuts: Vec<_> = points.iter().filter(|p| p.3).collect();
    assert_eq!(cuts.len(), 1, "exactly one cut: {cuts:?}");
    let zero = cuts[0].0 - (CUT_AT * 1000.0) as i64;
    let t = |ms: i64| (ms - zero) as f64 / 1000.0;
    // The window: 9:16 of a 16:9 picture.
    assert!((points[0].2 - 0.31640625).abs() < 1e-3, "{:?}", points[0]);

    // The face is inside the window (with its half width of about 0.03) in ≥ 95 % of
    // the pictures, a second after the start and away from the cut.
    let judged: Vec<_> = points
        .iter()
        .filter(|p| t(p.0) > 1.0 && (t(p.0) - CUT_AT).abs() > 0.3)
        .collect();
    let inside = judged
        .iter()
        .filter(|p| (p.1 - face_x(t(p.0))).abs() <= p.2 / 2.0 - 0.03)
        .count();
    eprintln!(
        "face inside in {inside} of {} pictures; detection {} ms a picture; highlights {}",
        judged.len(),
        v["status"]["detect_ms"],
        v["highlights"]
    );
    assert!(
        inside * 100 >= judged.len() * 95,
        "face inside the window in {inside} of {} pictures",
        judged.len()
    );
    // Smooth: no point moves faster than the camera's top speed (0.5 widths/s), except
    // at the cut, where it jumps to the face at once.
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let dt = (b.0 - a.0) as f64 / 1000.0;
        if b.3 || dt <= 0.0 {
            continue;
        }
        assert!(
            (b.1 - a.1).abs() / dt <= 0.5 + 1e-3,
            "too fast: {a:?} -> {b:?}"
        );
    }
    let at_cut = points.iter().position(|p| p.3).unwrap();
    let (before, after) = (points[at_cut - 1], points[at_cut]);
    assert!(
        before.1 > 0.5,
        "before the cut the window was on the right: {before:?}"
    );
    assert!(
        (after.1 - 0.158).abs() < 0.02,
        "the cut jumps to the face: {after:?}"
    );

    // Exactly one highlight per burst, at it.
    let highlights = v["highlights"].as_array().unwrap();
    assert_eq!(highlights.len(), 2, "{highlights:?}");
    let (motion, loud) = (&highlights[0], &highlights[1]);
    assert_eq!(motion["cause"], "motion", "{motion}");
    assert_eq!(loud["cause"], "loudness", "{loud}");
    let peak = |h: &Value| t(h["peak_ms"].as_i64().unwrap());
    assert!(
        (MOTION_BURST.0 - 0.3..=MOTION_BURST.1 + 0.3).contains(&peak(motion)),
        "{motion}"
    );
    assert!(
        (LOUD_BURST.0 - 0.3..=LOUD_BURST.1 + 0.3).contains(&peak(loud)),
        "{loud}"
    );
    assert_eq!(
        loud["end_ms"].as_i64().unwrap() - loud["start_ms"].as_i64().unwrap(),
        15_000
    );
    // Their clips, in the same order: from a keyframe at or before each highlight's
    // start to the end of the segment its end falls in.
    for (h, c) in highlights.iter().zip(&clips) {
        assert_eq!(h["cause"], c["cause"], "{c}");
        assert_eq!(h["peak_ms"], c["peak_ms"], "{c}");
        let ms = |v: &Value, k: &str| v[k].as_i64().unwrap();
        assert!(ms(c, "start_ms") <= ms(h, "start_ms"), "{h} {c}");
        assert!(ms(c, "start_ms") > ms(h, "start_ms") - 2_100, "{h} {c}");
        assert!(ms(c, "end_ms") >= ms(h, "end_ms"), "{h} {c}");
    }
}

/// A short source of `seconds` at `size` (a face photo in a plain frame), with a tone;
/// audio only when `size` is None.
fn short_source(dir: &Path, name: &str, size: Option<(u32, u32)>, seconds: u32) -> PathBuf {
    let out = dir.join(format!("{name}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    if size.is_some() {
        cmd.args(["-loop", "1", "-i"]).arg(photo());
    }
    cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    if let Some((w, h)) = size {
        cmd.args(["-filter_complex"]).arg(format!(
            "color=c=0x506070:s={w}x{h}:r=25:d={seconds}[bg];[0]scale=200:200[p];[bg][p]overlay=x='20+10*t':y=40[v]"
        ));
        cmd.args(["-map", "[v]", "-map", "1:a"]);
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
        ]);
    } else {
        cmd.args(["-map", "0:a"]);
    }
    cmd.args(["-t", &seconds.to_string()]);
    cmd.args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(&out);
    run(&mut cmd);
    out
}

/// Without the model the window follows motion and the status says why; a portrait
/// source passes through whole; a source without video waits, saying why, and the
/// channel plays on regardless.
#[test]
fn no_model_a_portrait_source_and_no_video() {
    if !require_ffmpeg() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = format!("{CONFIG}model = \"/nonexistent/centerface.onnx\"\n");
    let mut server = Server::start_channel(
        "reframe-inputs",
        &config,
        "ladder = \"360p\"\nreframe = true",
    );
    let dir = server.data_dir();
    assert!(
        server.log_text().contains("the face model is absent"),
        "said at startup: {}",
        server.log_text()
    );

    // Portrait (720×1280), without the model.
    let file = short_source(&dir, "portrait", Some((720, 1280)), 14);
    let mut publisher = publish_file(&server, &file);
    let v = wait_until("portrait pictures", Duration::from_secs(20), || {
        reframe(&server).filter(|v| v["status"]["pictures"].as_u64() >= Some(5))
    });
    assert_eq!(v["status"]["detector"], "motion", "{v}");
    let why = v["status"]["detector_reason"].as_str().unwrap();
    assert!(
        why.contains("absent") && why.contains("scripts/face-model"),
        "{why}"
    );
    assert_eq!(v["status"]["follow"], "passthrough", "{v}");
    for p in v["path"].as_array().unwrap() {
        assert_eq!(
            (p["x"].as_f64(), p["width"].as_f64()),
            (Some(0.0), Some(1.0)),
            "{p}"
        );
    }
    // A portrait source is its own vertical rendition.
    let vertical = wait_until("the vertical playlist", Duration::from_secs(20), || {
        server.http_get(&format!("/live/{CHANNEL}/vertical/index.m3u8"))
    });
    assert!(vertical.contains("../source/index.m3u8"), "{vertical}");
    // The watch page on a phone held upright plays it (hls.js, in Chromium).
    if require_browser() {
        let page = watch(&[
            &server.http_url(&format!("/watch/{CHANNEL}")),
            "--portrait",
            "--seconds",
            "2",
            "--max-latency",
            "10",
        ]);
        assert_eq!(page["view"], "vertical", "{page}");
        let (w, h) = (&page["level"]["width"], &page["level"]["height"]);
        assert!(h.as_u64() > w.as_u64(), "an upright picture: {page}");
    }
    assert!(publisher.wait().unwrap().success());
    wait_until("the portrait run's end", Duration::from_secs(15), || {
        reframe(&server).filter(|v| v["status"]["state"] == "ended")
    });
    assert_eq!(
        reframe(&server).unwrap()["status"]["clips_reason"],
        Value::Null,
        "no highlights asked, no clip refused"
    );

    // No video: nothing to reframe; the status says why, and the audio plays.
    let file = short_source(&dir, "audio", None, 10);
    let mut publisher = publish_file(&server, &file);
    let v = wait_until("the reason", Duration::from_secs(20), || {
        reframe(&server).filter(|v| {
            v["status"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("ladder"))
        })
    });
    assert_eq!(v["status"]["state"], "waiting", "{v}");
    assert_eq!(v["status"]["pictures"], 0);
    let playlist = server.http_get(&format!("/live/{CHANNEL}/index.m3u8"));
    assert!(playlist.is_some(), "the channel plays without reframing");
    let (status, why) = server
        .http_raw(&format!("/live/{CHANNEL}/vertical/index.m3u8"))
        .unwrap();
    assert_eq!(status, 404, "{why}");
    assert!(why.contains("no vertical rendition"), "{why}");
    assert!(publisher.wait().unwrap().success());
    server.stop();
}
