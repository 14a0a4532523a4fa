//! `srt-load`: how many concurrent SRT publishers (10 Mbit/s each by default) one
//! `starling serve` holds.
//!
//! For each step N it starts a fresh node with N channels, then N senders in this
//! process, each a libsrt caller (Starling's own binding) that sends a constant-rate
//! MPEG-TS clip (1080p30 x264 + AAC, padded to the mux rate, so bytes pace time) in
//! 1316-byte messages on schedule. After a settling time it measures a window: the
//! node's CPU and memory, frames into the hub against the clip's frame rate, and the
//! links' own figures from /metrics (packets libsrt gave up on, TS continuity errors).
//! A step "holds" when every sender stayed on schedule, no packet was dropped, no TS
//! packet went missing, every frame reached the hub, and the node used less than 90 %
//! of the machine. The senders run on the same cores as the node: their CPU is reported
//! beside it, and on a small machine they are what runs out first.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use starling_bench::{
    args::{default_starling, Flags},
    counter,
    node::Node,
    proc_usage, sum_series,
};
use starling_mpegts::{DemuxEvent, Demuxer};
use starling_srt::Socket;

struct Args {
    starling: PathBuf,
    steps: Vec<usize>,
    seconds: u64,
    mbps: u32,
    out_dir: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        starling: default_starling(),
        steps: vec![5, 10, 20],
        seconds: 20,
        mbps: 10,
        out_dir: PathBuf::from("bench/results"),
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--starling" => a.starling = flags.value()?.into(),
            "--steps" => a.steps = flags.list()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--mbps" => a.mbps = flags.parsed()?,
            "--out" => a.out_dir = flags.value()?.into(),
            "-h" | "--help" => {
                println!("srt-load [--starling PATH] [--steps 5,10,20] [--seconds 20] [--mbps 10] [--out DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if a.mbps == 0 || a.seconds == 0 || a.steps.is_empty() {
        bail!("--mbps, --seconds and --steps must be positive");
    }
    Ok(a)
}

/// How long senders run before the measured window: connect, first segments.
const SETTLE: Duration = Duration::from_secs(5);

/// The clip: a constant-rate TS long enough for the settle time and the window, so no
/// sender loops (a loop would be a timestamp jump, which is not what is measured).
struct Clip {
    ts: Vec<u8>,
    /// Bytes per second of the TS (its mux rate).
    bytes_per_sec: f64,
    /// Frames (video and audio) per second, as the demuxer counts them.
    frames_per_sec: f64,
}

fn clip(dir: &Path, mbps: u32, seconds: u64) -> Result<Clip> {
    std::fs::create_dir_all(dir)?;
    let secs = seconds + SETTLE.as_secs() + 5;
    let path = dir.join(format!("srt-clip-{mbps}M-{secs}s.ts"));
    let mux_kbps = mbps * 1000;
    if !path.exists() {
        // Video a little under the mux rate: the rest is audio, headers and padding.
        let v = format!("{}k", mux_kbps * 88 / 100);
        eprintln!("making {} (once)", path.display());
        let tmp = path.with_extension("tmp.ts");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=30")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "1:a"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-g", "60", "-b:v", &v, "-minrate", &v, "-maxrate", &v])
            .args(["-bufsize", &v, "-x264-params", "nal-hrd=cbr"])
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
            .args(["-muxrate", &format!("{mux_kbps}k")])
            .arg(&tmp)
            .stdin(Stdio::null())
            .status()
            .context("running ffmpeg")?;
        if !status.success() {
            bail!("ffmpeg could not make the clip");
        }
        std::fs::rename(&tmp, &path)?;
    }
    let ts = std::fs::read(&path)?;
    let mut demux = Demuxer::new();
    demux.push(&ts);
    demux.flush();
    let mut frames = 0u64;
    while let Some(ev) = demux.poll_event() {
        if matches!(ev, DemuxEvent::Frame(_)) {
            frames += 1;
        }
    }
    Ok(Clip {
        bytes_per_sec: ts.len() as f64 / secs as f64,
        frames_per_sec: frames as f64 / secs as f64,
        ts,
    })
}

#[derive(Default)]
struct SenderStats {
    /// The furthest behind schedule a message was sent, in ms.
    behind_ms_max: AtomicU64,
    failed: AtomicBool,
}

/// Sends the clip to the node on schedule until the clip ends or `stop`.
fn send(
    node: std::net::SocketAddr,
    stream_id: String,
    clip: Arc<Clip>,
    stats: Arc<SenderStats>,
    stop: Arc<AtomicBool>,
) {
    let run = || -> Result<()> {
        let s = Socket::new()?;
        s.set_stream_id(&stream_id)?;
        s.set_latency(Duration::from_millis(200))?;
        s.set_connect_timeout(Duration::from_secs(5))?;
        s.connect(node)?;
        let start = Instant::now();
        let chunks = clip.ts.chunks(1316);
        let mut sent = 0usize;
        for (i, c) in chunks.enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let due = Duration::from_secs_f64(sent as f64 / clip.bytes_per_sec);
            let now = start.elapsed();
            if let Some(wait) = due.checked_sub(now) {
                // Sleep in steps of at least 2 ms: a burst of a few messages is what a
                // real encoder's socket writes look like too.
                if wait > Duration::from_millis(2) {
                    std::thread::sleep(wait);
                }
            } else if i > 0 {
                let behind = (now - due).as_millis() as u64;
                stats.behind_ms_max.fetch_max(behind, Ordering::Relaxed);
            }
            s.send(c)?;
            sent += c.len();
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("sender {stream_id}: {e:#}");
        stats.failed.store(true, Ordering::Relaxed);
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let clip = Arc::new(clip(&args.out_dir, args.mbps, args.seconds)?);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    println!(
        "clip: {:.1} Mbit/s TS, {:.1} frames/s; {cores} cores; {} s per step after {} s of settling\n",
        clip.bytes_per_sec * 8.0 / 1e6,
        clip.frames_per_sec,
        args.seconds,
        SETTLE.as_secs()
    );
    println!("| publishers | Mbit/s in | holds | node CPU (% of 1 core) | CPU per publisher | senders' CPU | RSS | RSS per publisher | frames/s (expected) | dropped packets | TS continuity errors | max sender lag |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let me = std::process::id();
    for &n in &args.steps {
        let dir = args.out_dir.join(format!("srt-run-{n}"));
        let channels: Vec<(String, String)> = (0..n)
            .map(|i| (format!("load{i}"), format!("load-key-{i:05}")))
            .collect();
        let node = Node::start(&args.starling, &dir, &channels, true)?;
        let srt = node.srt.context("the node has no SRT listener")?;
        let (_, rss_idle) = node.usage();
        let stop = Arc::new(AtomicBool::new(false));
        let stats: Vec<Arc<SenderStats>> = (0..n).map(|_| Arc::default()).collect();
        let threads: Vec<_> = channels
            .iter()
            .zip(&stats)
            .map(|((name, key), st)| {
                let id = format!("#!::r={name},m=publish,s={key}");
                let (clip, st, stop) = (clip.clone(), st.clone(), stop.clone());
                std::thread::spawn(move || send(srt, id, clip, st, stop))
            })
            .collect();
        std::thread::sleep(SETTLE);
        for s in &stats {
            s.behind_ms_max.store(0, Ordering::Relaxed);
        }
        let m0 = node.metrics()?;
        let (cpu0, _) = node.usage();
        let (own0, _) = proc_usage(me);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.seconds));
        let m1 = node.metrics()?;
        let (cpu1, rss) = node.usage();
        let (own1, _) = proc_usage(me);
        let wall = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
        let senders_pct = (own1 - own0) / wall * 100.0;
        let fps = (counter(&m1, "starling_hub_frames_total")
            - counter(&m0, "starling_hub_frames_total")) as f64
            / wall;
        let delta = |name: &str| sum_series(&m1, name) - sum_series(&m0, name);
        let mbps_in = sum_series(&m1, "starling_srt_link_receive_rate_mbps");
        let dropped = delta("starling_srt_link_packets_dropped_total");
        let cc = delta("starling_srt_link_ts_continuity_errors_total");
        let links = m1
            .lines()
            .filter(|l| l.starts_with("starling_srt_link_packets_received_total{"))
            .count();
        let lag = stats
            .iter()
            .map(|s| s.behind_ms_max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let failed = stats
            .iter()
            .filter(|s| s.failed.load(Ordering::Relaxed))
            .count();
        let expected_fps = n as f64 * clip.frames_per_sec;
        let holds = failed == 0
            && links == n
            && lag < 500
            && dropped == 0.0
            && cc == 0.0
            && cpu_pct < 90.0 * cores
            && fps >= 0.95 * expected_fps;
        println!(
            "| {n} | {:.0} | {} | {cpu_pct:.0}% | {:.1}% | {senders_pct:.0}% | {:.0} MiB | {:.1} MiB | {fps:.0} ({expected_fps:.0}) | {dropped:.0} | {cc:.0} | {lag} ms{}{} |",
            mbps_in,
            if holds { "yes" } else { "**no**" },
            cpu_pct / n as f64,
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_idle) as f64 / 1024.0 / n as f64,
            if failed > 0 { format!(", {failed} failed") } else { String::new() },
            if links != n { format!(", {links} of {n} links up") } else { String::new() },
        );
        std::io::stdout().flush()?;
        drop(node);
    }
    Ok(())
}
