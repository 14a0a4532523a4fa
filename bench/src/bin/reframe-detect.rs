//! CenterFace's cost on this machine: the analysis tap's 320×180 pictures (the
//! astronaut photo of crates/processing/reframe's fixtures placed by ffmpeg at moving
//! spots of a 1280×720 frame), detected one after another on one thread, as a channel's
//! task does. Prints the model load time, ms per picture (mean, p50, p95, max) and the
//! share of one core that 5 pictures a second take; accuracy (faces found / present).
//!
//!   cargo run --release -p starling-bench --bin reframe-detect -- MODEL [PICTURES]

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{bail, Context as _};
use starling_reframe::{FaceDetector, I420};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .context("usage: reframe-detect MODEL [PICTURES]")?,
    );
    let pictures: usize = args.next().map_or(Ok(100), |n| n.parse())?;
    let photo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/processing/reframe/tests/fixtures/astronaut-256.jpg"
    );
    // One clip of `pictures` frames, the photo crossing the frame, as raw I420.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c=0x506070:s=1280x720:r=5:d={}", pictures / 5 + 1))
        .args(["-loop", "1", "-i", photo, "-filter_complex"])
        .arg("[1]scale=420:420[p];[0][p]overlay=x='mod(t*173,860)':y='100+mod(t*41,200)':shortest=1,scale=320:180,format=yuv420p")
        .args(["-frames:v", &pictures.to_string(), "-f", "rawvideo", "pipe:"])
        .output()
        .context("running ffmpeg")?;
    if !out.status.success() {
        bail!("ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    }
    let size = 320 * 180 * 3 / 2;
    let started = Instant::now();
    let mut detector = FaceDetector::load(&model)?;
    let load = started.elapsed();
    let mut times = Vec::new();
    let mut found = 0;
    for (i, frame) in out.stdout.chunks_exact(size).enumerate() {
        let picture = I420::new(320, 180, frame)?;
        let t = Instant::now();
        let faces = detector.detect(&picture)?;
        // The first picture also builds the plan for its size.
        if i > 0 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        found += usize::from(!faces.is_empty());
    }
    let n = out.stdout.len() / size;
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{{\"model_load_ms\": {:.0}, \"pictures\": {n}, \"mean_ms\": {mean:.1}, \"p50_ms\": {:.1}, \"p95_ms\": {:.1}, \"max_ms\": {:.1}, \"core_share_at_5fps\": {:.3}, \"faces_found\": {found}, \"faces_present\": {n}}}",
        load.as_secs_f64() * 1000.0,
        at(0.5),
        at(0.95),
        times.last().copied().unwrap_or(0.0),
        mean * 5.0 / 1000.0
    );
    Ok(())
}
