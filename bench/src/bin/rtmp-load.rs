//! `rtmp-load`: how many concurrent RTMP publishers one `starling serve` holds.
//!
//! For each step N it starts a fresh node with N channels, starts N publishers that
//! replay a real clip (x264 + AAC at the chosen bitrate) in real time with continuous
//! timestamps, lets them run, and reads from the node itself: CPU (from /proc), memory
//! (RSS), frames into the hub, and the ingest-to-hub latency histogram (/metrics). A
//! step "holds" when every publisher stayed on schedule (TCP backpressure from a node
//! that cannot keep up shows as publishers falling behind) and the node used less than
//! 90% of the machine.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use starling_bench::{
    args::{default_starling, Flags},
    clip::{clip, publish, PublisherStats},
    counter, fmt_bound, histogram,
    node::Node,
    quantile,
};

struct Args {
    starling: PathBuf,
    steps: Vec<usize>,
    seconds: u64,
    kbps: u32,
    out_dir: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        starling: default_starling(),
        steps: vec![10, 50, 100],
        seconds: 20,
        kbps: 2000,
        out_dir: PathBuf::from("bench/results"),
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--starling" => a.starling = flags.value()?.into(),
            "--steps" => a.steps = flags.list()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--kbps" => a.kbps = flags.parsed()?,
            "--out" => a.out_dir = flags.value()?.into(),
            "-h" | "--help" => {
                println!("rtmp-load [--starling PATH] [--steps 10,50,100] [--seconds 20] [--kbps 2000] [--out DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (headers, tags, clip_ms) = clip(&args.out_dir, args.kbps)?;
    let clip_bytes: usize = tags.iter().map(|t| t.body.len()).sum();
    let clip_kbps = clip_bytes as f64 * 8.0 / f64::from(clip_ms);
    let (headers, tags) = (Arc::new(headers), Arc::new(tags));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    println!(
        "clip: {} tags, {:.0} kbit/s, {} ms; {} cores; {} s per step\n",
        tags.len(),
        clip_kbps,
        clip_ms,
        cores,
        args.seconds
    );
    println!("| publishers | holds | node CPU (% of 1 core) | CPU per publisher | RSS | RSS per publisher | ingest→hub p50 | p99 | frames/s (expected) | max publisher lag |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for &n in &args.steps {
        let dir = args.out_dir.join(format!("run-{n}"));
        let channels: Vec<(String, String)> = (0..n)
            .map(|i| (format!("load{i}"), format!("load-key-{i:05}")))
            .collect();
        let node = Node::start(&args.starling, &dir, &channels, false)?;
        let (_, rss_idle) = node.usage();
        let stop = Arc::new(AtomicBool::new(false));
        let stats: Vec<Arc<PublisherStats>> = (0..n)
            .map(|_| Arc::new(PublisherStats::default()))
            .collect();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                rt.spawn(publish(
                    node.rtmp,
                    format!("load-key-{i:05}"),
                    headers.clone(),
                    tags.clone(),
                    clip_ms,
                    stats[i].clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Let every publisher connect and the node settle, then measure a window.
        std::thread::sleep(Duration::from_secs(3));
        for s in &stats {
            s.behind_ms_max.store(0, Ordering::Relaxed);
        }
        let m0 = node.metrics()?;
        let (cpu0, _) = node.usage();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.seconds));
        let m1 = node.metrics()?;
        let (cpu1, rss) = node.usage();
        let wall = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        });
        let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
        let h0 = histogram(&m0, "starling_ingest_to_hub_seconds");
        let h1 = histogram(&m1, "starling_ingest_to_hub_seconds");
        let fps = (counter(&m1, "starling_hub_frames_total")
            - counter(&m0, "starling_hub_frames_total")) as f64
            / wall;
        let lag = stats
            .iter()
            .map(|s| s.behind_ms_max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let failed = stats
            .iter()
            .filter(|s| s.failed.load(Ordering::Relaxed))
            .count();
        // Every frame of every publisher must reach the hub (within 5%: the window's edges).
        let expected_fps = n as f64 * tags.len() as f64 * 1000.0 / f64::from(clip_ms);
        let holds =
            failed == 0 && lag < 500 && cpu_pct < 90.0 * cores && fps >= 0.95 * expected_fps;
        println!(
            "| {n} | {} | {cpu_pct:.0}% | {:.2}% | {:.0} MiB | {:.0} KiB | {} | {} | {fps:.0} ({expected_fps:.0}) | {lag} ms{} |",
            if holds { "yes" } else { "**no**" },
            cpu_pct / n as f64,
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_idle) as f64 / n as f64,
            fmt_bound(quantile(&h0, &h1, 0.5)),
            fmt_bound(quantile(&h0, &h1, 0.99)),
            if failed > 0 { format!(", {failed} failed") } else { String::new() },
        );
        drop(node);
    }
    Ok(())
}
