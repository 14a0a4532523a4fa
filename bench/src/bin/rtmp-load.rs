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
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use starling_bench::{
    args::{default_starling, Flags},
    counter, fmt_bound, histogram,
    node::Node,
    quantile,
};
use starling_flv::{FlvReader, TagType};
use starling_rtmp_server::client::RtmpClient;

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

/// One tag of the clip, with its time from the clip's start.
#[derive(Clone)]
struct Tag {
    ms: u32,
    video: bool,
    body: Bytes,
}

/// A 10 s clip at `kbps`, made once with ffmpeg and kept in `dir`.
fn clip(dir: &Path, kbps: u32) -> Result<(Vec<Tag>, Vec<Tag>, u32)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("clip-{kbps}k.flv"));
    if !path.exists() {
        eprintln!("making {} with ffmpeg", path.display());
        let v = kbps.saturating_sub(128).max(100);
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "10",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
            ])
            .args([
                "-b:v",
                &format!("{v}k"),
                "-maxrate",
                &format!("{v}k"),
                "-bufsize",
                &format!("{}k", v * 2),
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
            .arg(&path)
            .status()
            .context("running ffmpeg (apt-get install ffmpeg)")?;
        if !status.success() {
            bail!("ffmpeg failed making the clip");
        }
    }
    let mut r = FlvReader::new();
    r.push(&std::fs::read(&path)?);
    let (mut headers, mut tags) = (Vec::new(), Vec::new());
    while let Some(t) = r.next_tag()? {
        let video = match t.tag_type {
            TagType::Video => true,
            TagType::Audio => false,
            _ => continue,
        };
        let tag = Tag {
            ms: t.timestamp,
            video,
            body: t.body,
        };
        // Sequence headers: byte 1 is 0 for both AVC and AAC.
        if tag.body.get(1) == Some(&0) {
            headers.push(tag);
        } else {
            tags.push(tag);
        }
    }
    let duration = tags.last().map(|t| t.ms + 33).unwrap_or(10_000);
    Ok((headers, tags, duration))
}

struct PublisherStats {
    behind_ms_max: AtomicU64,
    failed: AtomicBool,
}

/// Replays the clip in real time, forever (until `stop`), with continuous timestamps.
async fn publish(
    addr: SocketAddr,
    key: String,
    headers: Arc<Vec<Tag>>,
    tags: Arc<Vec<Tag>>,
    clip_ms: u32,
    stats: Arc<PublisherStats>,
    stop: Arc<AtomicBool>,
) {
    let run = async {
        let mut c = RtmpClient::connect(addr, "live").await?;
        c.publish(&key).await?;
        for h in headers.iter() {
            if h.video {
                c.queue_video(0, h.body.clone());
            } else {
                c.queue_audio(0, h.body.clone());
            }
        }
        let start = tokio::time::Instant::now();
        let mut loop_base = 0u32;
        while !stop.load(Ordering::Relaxed) {
            for t in tags.iter() {
                let ts = loop_base + t.ms;
                let due = start + Duration::from_millis(u64::from(ts));
                let now = tokio::time::Instant::now();
                if due > now {
                    c.flush().await?;
                    tokio::time::sleep_until(due).await;
                } else {
                    let behind = (now - due).as_millis() as u64;
                    stats.behind_ms_max.fetch_max(behind, Ordering::Relaxed);
                }
                if t.video {
                    c.queue_video(ts, t.body.clone());
                } else {
                    c.queue_audio(ts, t.body.clone());
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            c.drain_input().await?;
            loop_base += clip_ms;
        }
        c.close().await?;
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = run.await {
        eprintln!("publisher {key}: {e:#}");
        stats.failed.store(true, Ordering::Relaxed);
    }
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
            .map(|_| {
                Arc::new(PublisherStats {
                    behind_ms_max: AtomicU64::new(0),
                    failed: AtomicBool::new(false),
                })
            })
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
