//! Measures the demo source: bitrate and time to make one frame.
//!
//! `cargo run --release -p starling-demo-source --example measure [WIDTH HEIGHT FPS SECONDS]`

use std::time::{Duration, Instant, SystemTime};

use starling_demo_source::{DemoConfig, DemoSource, VIDEO_TRACK};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let mut config = DemoConfig::default();
    if let [w, h, fps, ..] = args[..] {
        config = DemoConfig {
            width: w,
            height: h,
            fps,
            gop_frames: 2 * fps,
        };
    }
    let seconds = args.get(3).copied().unwrap_or(20);
    let mut source = DemoSource::new(config)?;
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (mut video, mut audio, mut idr, mut p, mut p_count) = (0usize, 0usize, 0usize, 0usize, 0);
    let mut busy = Duration::ZERO;
    let frames = seconds * config.fps;
    for i in 0..frames {
        let now = start + source.frame_interval() * i;
        let t = Instant::now();
        let out = source.next(now);
        busy += t.elapsed();
        for f in out {
            if f.track == VIDEO_TRACK {
                video += f.data.len();
                if f.keyframe {
                    idr = f.data.len();
                } else {
                    p += f.data.len();
                    p_count += 1;
                }
            } else {
                audio += f.data.len();
            }
        }
    }
    let kbps = |bytes: usize| bytes as f64 * 8.0 / f64::from(seconds) / 1000.0;
    println!(
        "{}x{}@{} GOP {} frames, {seconds} s: video {:.0} kbit/s (IDR {idr} B, P avg {} B), audio {:.1} kbit/s, {:.2} ms per frame",
        config.width,
        config.height,
        config.fps,
        config.gop_frames,
        kbps(video),
        p / p_count.max(1),
        kbps(audio),
        busy.as_secs_f64() * 1000.0 / f64::from(frames)
    );
    Ok(())
}
