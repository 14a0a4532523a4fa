//! Tests of the whole source; real decoders (FFmpeg) judge the bitstreams.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::UNIX_EPOCH,
};

use h264_reader::{
    nal::sps::{PicOrderCntType, Profile, SeqParameterSet},
    rbsp::{decode_nal, BitReader},
};
use starling_media::{aac::raw_to_adts, nal::length_prefixed_to_annexb, TrackKind};

use super::*;
use crate::audio::CLIP_FRAMES;

/// A fixed starting time: 2023-11-14T22:13:20Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Calls `next` `frames` times on a simulated clock ticking exactly at the frame rate.
/// Returns every frame and, after each call, the visible picture as yuv420p.
fn run(source: &mut DemoSource, frames: u32) -> (Vec<Frame>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut pictures = Vec::new();
    for i in 0..frames {
        let now = t0() + source.frame_interval() * i;
        out.extend(source.next(now));
        pictures.push(visible_yuv420p(&source.current, source.config));
    }
    (out, pictures)
}

/// The cropped picture in FFmpeg's `yuv420p` raw layout.
fn visible_yuv420p(p: &Yuv420, c: DemoConfig) -> Vec<u8> {
    let (w, h) = (c.width as usize, c.height as usize);
    let mut out = Vec::with_capacity(w * h * 3 / 2);
    for row in p.luma().chunks(p.width()).take(h) {
        out.extend_from_slice(&row[..w]);
    }
    for plane in [p.cb(), p.cr()] {
        for row in plane.chunks(p.width() / 2).take(h / 2) {
            out.extend_from_slice(&row[..w / 2]);
        }
    }
    out
}

fn avc(source: &DemoSource) -> AvcConfig {
    match &source.stream().track(VIDEO_TRACK).unwrap().config {
        CodecConfig::H264(c) => c.clone(),
        other => panic!("video track is {other:?}"),
    }
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let base = DemoConfig::default();
    let err = |c| DemoSource::new(c).unwrap_err().to_string();
    assert_eq!(
        err(DemoConfig { width: 641, ..base }),
        "demo picture size 641x360: width and height must be even and between 2 and 4096"
    );
    assert!(err(DemoConfig { height: 0, ..base }).contains("0"));
    assert!(err(DemoConfig {
        width: 4098,
        ..base
    })
    .contains("4098x360"));
    assert_eq!(
        err(DemoConfig { fps: 0, ..base }),
        "demo frame rate 0 fps: must be between 1 and 120"
    );
    assert!(err(DemoConfig { fps: 121, ..base }).contains("121"));
    assert_eq!(
        err(DemoConfig {
            gop_frames: 0,
            ..base
        }),
        "demo keyframe interval of 0 frames: must be at least 1"
    );
}

#[test]
fn tracks_and_sps_describe_the_configured_picture() {
    let source = DemoSource::new(DemoConfig::default()).unwrap();
    let stream = source.stream();
    let audio = stream.track(AUDIO_TRACK).unwrap();
    assert_eq!(audio.kind(), TrackKind::Audio);
    assert_eq!(audio.timescale, 48_000);
    assert_eq!(audio.config.codec_string(), "mp4a.40.2");
    assert_eq!(stream.video().unwrap().timescale, 90_000);

    let c = avc(&source);
    assert_eq!((c.width, c.height), (640, 360));
    assert_eq!((c.profile, c.compatibility, c.level), (66, 0xC0, 30));
    assert_eq!(c.codec_string(), "avc1.42c01e");
    assert_eq!(c.fps, Some(30.0));
    assert_eq!(c.nal_length_size, 4);

    // The fields decoders care about, read back by h264-reader directly.
    let rbsp = decode_nal(&c.sps[0]).unwrap();
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).unwrap();
    assert!(matches!(sps.profile(), Profile::ConstrainedBaseline));
    assert_eq!(sps.pic_order_cnt, PicOrderCntType::TypeTwo);
    assert_eq!(
        (sps.pic_width_in_mbs(), sps.pic_height_in_map_units()),
        (40, 23)
    );
    let crop = sps.frame_cropping.as_ref().unwrap();
    assert_eq!((crop.right_offset, crop.bottom_offset), (0, 4));
    assert_eq!(sps.pixel_dimensions().unwrap(), (640, 360));
    let vui = sps.vui_parameters.as_ref().unwrap();
    let timing = vui.timing_info.as_ref().unwrap();
    assert_eq!((timing.num_units_in_tick, timing.time_scale), (1, 60));
    assert!(timing.fixed_frame_rate_flag);
    let br = vui.bitstream_restrictions.as_ref().unwrap();
    assert_eq!(
        (br.max_num_reorder_frames, br.max_dec_frame_buffering),
        (0, 1)
    );
    let colour = vui.video_signal_type.as_ref().unwrap();
    assert!(!colour.video_full_range_flag);
    assert_eq!(
        colour
            .colour_description
            .as_ref()
            .unwrap()
            .matrix_coefficients,
        1
    );

    // A size that is a whole number of macroblocks needs no cropping; 1280x720@60 is level 3.2.
    let hd = DemoSource::new(DemoConfig {
        width: 1280,
        height: 720,
        fps: 60,
        gop_frames: 120,
    })
    .unwrap();
    let c = avc(&hd);
    assert_eq!((c.width, c.height, c.fps), (1280, 720, Some(60.0)));
    assert_eq!(c.codec_string(), "avc1.42c020");
}

#[test]
fn frames_are_timed_keyed_and_ordered() {
    let mut source = DemoSource::new(DemoConfig::default()).unwrap();
    let (frames, _) = run(&mut source, 30 * 10);
    let video: Vec<_> = frames.iter().filter(|f| f.track == VIDEO_TRACK).collect();
    assert_eq!(video.len(), 300);
    for (n, f) in video.iter().enumerate() {
        assert_eq!((f.pts, f.dts), (n as i64 * 3000, n as i64 * 3000));
        assert_eq!(f.keyframe, n % 60 == 0, "frame {n}");
        assert!(starling_media::h264::is_keyframe(&f.data, 4) == f.keyframe);
    }
    // Every returned frame carries the `now` of its call, and within a call the frames
    // are in presentation order across tracks.
    let seconds = |f: &Frame| match f.track {
        VIDEO_TRACK => f.pts as f64 / 90_000.0,
        _ => f.pts as f64 / 48_000.0,
    };
    for pair in frames.windows(2) {
        assert!(seconds(&pair[0]) <= seconds(&pair[1]), "{pair:?}");
    }

    // Audio: 46 or 47 frames a second (46.875 on average), contiguous timestamps across
    // the 8 s loop, and never behind the video.
    let audio: Vec<_> = frames.iter().filter(|f| f.track == AUDIO_TRACK).collect();
    for (k, f) in audio.iter().enumerate() {
        assert_eq!(f.pts, k as i64 * 1024, "audio frame {k}");
        assert!(f.keyframe);
    }
    assert_eq!(audio[CLIP_FRAMES].data, audio[0].data);
    assert_eq!(audio[CLIP_FRAMES].pts, 8 * 48_000);
    let calls = frames_by_call(&mut DemoSource::new(DemoConfig::default()).unwrap(), 300);
    for second in 0..10 {
        let count: usize = calls[second * 30..(second + 1) * 30]
            .iter()
            .map(|c| c.len() - 1)
            .sum();
        assert!(count == 46 || count == 47, "second {second}: {count}");
    }
    // After the call for video frame n, the audio handed out covers the video up to its end.
    let last_audio_end = (audio.len() as f64) * 1024.0 / 48_000.0;
    assert!((10.0..10.0 + 1024.0 / 48_000.0).contains(&last_audio_end));
}

fn frames_by_call(source: &mut DemoSource, calls: u32) -> Vec<Vec<Frame>> {
    (0..calls)
        .map(|i| source.next(t0() + source.frame_interval() * i))
        .collect()
}

#[test]
fn the_same_clock_gives_the_same_bytes() {
    let config = DemoConfig {
        gop_frames: 10,
        ..DemoConfig::default()
    };
    let a = run(&mut DemoSource::new(config).unwrap(), 25).0;
    let b = run(&mut DemoSource::new(config).unwrap(), 25).0;
    assert_eq!(a, b);
}

#[test]
fn p_frames_carry_only_what_changed() {
    let mut source = DemoSource::new(DemoConfig::default()).unwrap();
    let (frames, _) = run(&mut source, 60 * 3);
    let video: Vec<_> = frames.iter().filter(|f| f.track == VIDEO_TRACK).collect();
    let idr = video.iter().filter(|f| f.keyframe).map(|f| f.data.len());
    for len in idr {
        // 920 macroblocks of 384 bytes plus headers and a few escape bytes.
        assert!((920 * 384..920 * 390).contains(&len), "{len}");
    }
    let p: Vec<_> = video
        .iter()
        .filter(|f| !f.keyframe)
        .map(|f| f.data.len())
        .collect();
    let p_avg = p.iter().sum::<usize>() / p.len();
    let p_max = *p.iter().max().unwrap();
    // Box (~4x4 macroblocks, old and new place), frame counter, some clock digits.
    assert!(p_avg < 30 * 400, "average P frame {p_avg} bytes");
    assert!(p_max < 60 * 400, "largest P frame {p_max} bytes");
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    let kbps = bytes as f64 * 8.0 / 6.0 / 1000.0;
    println!("640x360@30, GOP 2 s: IDR {} B, P avg {p_avg} B, max {p_max} B, {kbps:.0} kbit/s (with audio)", video[0].data.len());
    assert!(kbps < 5_000.0, "{kbps} kbit/s");
}

// ---- FFmpeg decodes what we wrote ----

/// Runs an FFmpeg tool; missing FFmpeg fails the test with what to do about it.
fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{name}` ({e}): install FFmpeg (e.g. `apt-get install ffmpeg`) to run the decode tests")
    })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("starling-demo-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An Annex B elementary stream: SPS and PPS before each IDR, then the access units.
fn annex_b(avc: &AvcConfig, frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.track == VIDEO_TRACK) {
        if f.keyframe {
            for ps in avc.sps.iter().chain(&avc.pps) {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(ps);
            }
        }
        out.extend_from_slice(&length_prefixed_to_annexb(&f.data, 4).unwrap());
    }
    out
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ffmpeg_decodes_the_video_exactly_as_rendered() {
    let config = DemoConfig::default();
    let mut source = DemoSource::new(config).unwrap();
    let (frames, pictures) = run(&mut source, 90);
    let dir = TempDir::new("video");
    let h264 = dir.file("demo.h264");
    std::fs::write(&h264, annex_b(&avc(&source), &frames)).unwrap();

    let decode = tool(
        "ffmpeg",
        &["-v", "error", "-i", path(&h264), "-f", "null", "-"],
    );
    assert!(decode.status.success());
    assert_eq!(
        String::from_utf8_lossy(&decode.stderr),
        "",
        "decoder complained"
    );

    let probe = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,profile,width,height,nb_read_frames,r_frame_rate",
            "-of",
            "default=noprint_wrappers=1",
            path(&h264),
        ],
    );
    let probe = String::from_utf8_lossy(&probe.stdout);
    for line in [
        "codec_name=h264",
        "profile=Constrained Baseline",
        "width=640",
        "height=360",
        "r_frame_rate=30/1",
        "nb_read_frames=90",
    ] {
        assert!(probe.lines().any(|l| l == line), "no {line} in\n{probe}");
    }

    // Every decoded picture is bit-exactly the rendered one (PCM is lossless and deblocking
    // is off, so P_Skip copies exact samples).
    let raw = dir.file("demo.yuv");
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path(&h264),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            path(&raw),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let decoded = std::fs::read(&raw).unwrap();
    let size = 640 * 360 * 3 / 2;
    assert_eq!(decoded.len(), 90 * size);
    for (n, (got, want)) in decoded.chunks(size).zip(&pictures).enumerate() {
        if got != want.as_slice() {
            let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
            panic!("decoded frame {n} differs from the rendered one at byte {first}");
        }
    }

    // The picture moves: at t = 1 s and 2 s the box and the clock's seconds digit differ,
    // and a background pixel (bottom-left of the grey ramp) is exactly the rendered 16.
    let (f1, f2) = (
        &decoded[30 * size..31 * size],
        &decoded[60 * size..61 * size],
    );
    let region_differs = |x: usize, y: usize, w: usize, h: usize| {
        (y..y + h).any(|r| f1[r * 640 + x..r * 640 + x + w] != f2[r * 640 + x..r * 640 + x + w])
    };
    let (bx, by) = source.scene.box_position(30);
    let bs = source.scene.box_size();
    assert!(region_differs(bx, by, bs, bs), "box did not move");
    let c = source.scene.clock;
    let digit_x = c.x + 7 * font::ADVANCE * c.scale; // the units of seconds
    assert!(
        region_differs(digit_x, c.y, 5 * c.scale, 7 * c.scale),
        "clock did not tick"
    );
    assert_eq!(f1[359 * 640], 16);
    assert_eq!(f2[359 * 640 + 639], 235);
}

#[test]
fn ffmpeg_decodes_odd_sizes_and_short_gops() {
    // 2 macroblock columns of cropping, a keyframe every 7 frames, 25 fps.
    let config = DemoConfig {
        width: 200,
        height: 100,
        fps: 25,
        gop_frames: 7,
    };
    let mut source = DemoSource::new(config).unwrap();
    let (frames, pictures) = run(&mut source, 30);
    let dir = TempDir::new("small");
    let h264 = dir.file("small.h264");
    std::fs::write(&h264, annex_b(&avc(&source), &frames)).unwrap();
    let raw = dir.file("small.yuv");
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path(&h264),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            path(&raw),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let decoded = std::fs::read(&raw).unwrap();
    assert_eq!(decoded, pictures.concat());
}

#[test]
fn ffmpeg_decodes_the_looped_audio() {
    let mut source = DemoSource::new(DemoConfig::default()).unwrap();
    // 10 s: past the 8 s loop point.
    let frames = frames_by_call(&mut source, 300).concat();
    let Some(CodecConfig::Aac(asc)) = source.stream().audio().map(|t| t.config.clone()) else {
        panic!("no AAC track");
    };
    let mut adts = Vec::new();
    let mut count = 0;
    for f in frames.iter().filter(|f| f.track == AUDIO_TRACK) {
        adts.extend_from_slice(&raw_to_adts(&asc, &f.data).unwrap());
        count += 1;
    }
    let dir = TempDir::new("audio");
    let file = dir.file("demo.aac");
    std::fs::write(&file, adts).unwrap();
    let pcm = dir.file("demo.pcm");
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path(&file),
            "-f",
            "s16le",
            "-ac",
            "1",
            path(&pcm),
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "decoder complained"
    );
    let samples: Vec<i16> = std::fs::read(&pcm)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(samples.len(), count * 1024);
    // A beep in the first 150 ms of every second, silence in the middle of it — also in
    // seconds 8 and 9, after the loop point.
    for second in 0..10 {
        let at =
            |ms: usize| &samples[(second * 48_000 + ms * 48)..(second * 48_000 + (ms + 50) * 48)];
        let loud = at(40).iter().map(|s| s.unsigned_abs()).max().unwrap();
        let quiet = at(500).iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(loud > 8_000, "second {second}: beep peak {loud}");
        assert!(quiet < 100, "second {second}: silence peak {quiet}");
    }
}
