//! Write-through throughput to an S3-compatible bucket, as the origin does it: every
//! channel's renditions each put a segment every `segment` seconds, all at once, through
//! Starling's `S3Store`. Run at real time it says whether the bucket keeps up and with
//! what latency; run faster (`--speed`) it finds the throughput where puts start to
//! queue. Prints one line of figures.
//!
//! Usage: store-write --endpoint URL --bucket NAME [--channels 20] [--seconds 60]
//!        [--speed 1] [--segment 2]      (credentials from AWS_ACCESS_KEY_ID/SECRET)

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use starling_store::{ObjectStore, S3Config, S3Credentials, S3Store};

/// The default ladder's renditions and their bitrates (kbit/s): 1080p, 720p, 480p,
/// 360p; a channel's segment of each is its bitrate times the segment duration.
const RENDITIONS: [(&str, u64); 4] = [
    ("1080p", 6000),
    ("720p", 3000),
    ("480p", 1200),
    ("360p", 600),
];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = arg(&args, "--endpoint").context("--endpoint URL")?;
    let bucket = arg(&args, "--bucket").context("--bucket NAME")?;
    let channels: usize = arg(&args, "--channels").map_or(Ok(20), |v| v.parse())?;
    let seconds: f64 = arg(&args, "--seconds").map_or(Ok(60.0), |v| v.parse())?;
    let speed: f64 = arg(&args, "--speed").map_or(Ok(1.0), |v| v.parse())?;
    let segment: f64 = arg(&args, "--segment").map_or(Ok(2.0), |v| v.parse())?;
    if !(speed > 0.0 && segment > 0.0 && seconds > 0.0) {
        bail!("--speed, --segment and --seconds must be positive");
    }
    let env = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
    let mut config = S3Config::new(
        endpoint,
        bucket,
        S3Credentials {
            access_key_id: env("AWS_ACCESS_KEY_ID")?,
            secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        },
    );
    config.prefix = "bench".into();
    let store = Arc::new(S3Store::new(config)?);
    // Segment payloads, one per rendition: random-looking bytes (a bucket that
    // compresses or dedups must not flatter the figures).
    let payloads: Vec<Bytes> = RENDITIONS
        .iter()
        .map(|(_, kbps)| {
            let len = (*kbps as f64 * 1000.0 / 8.0 * segment) as usize;
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ *kbps;
            Bytes::from(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();
    let rounds = (seconds / segment).ceil() as u64;
    let every = Duration::from_secs_f64(segment / speed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep_until((started + every * round as u32).into()).await;
        for ch in 0..channels {
            for (r, (name, _)) in RENDITIONS.iter().enumerate() {
                let store = store.clone();
                let data = payloads[r].clone();
                let key = format!("media/ch{ch}/0000000000000001/{name}/{round}.m4s");
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let ok = store.put(&key, vec![data]).await.is_ok();
                    (t.elapsed(), ok)
                }));
            }
        }
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        let (d, ok) = t.await?;
        latencies.push(d);
        errors += usize::from(!ok);
    }
    let wall = started.elapsed();
    latencies.sort();
    let bytes: u64 =
        payloads.iter().map(|p| p.len() as u64).sum::<u64>() * channels as u64 * rounds;
    let offered = bytes as f64 * 8.0 / (rounds as f64 * every.as_secs_f64()) / 1e6;
    let achieved = bytes as f64 * 8.0 / wall.as_secs_f64() / 1e6;
    println!(
        "{channels} channels x {} renditions, {rounds} segments each of {segment} s at {speed}x: {} puts, {errors} errors; offered {offered:.0} Mbit/s, achieved {achieved:.0} Mbit/s (wall {:.1} s); put latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        RENDITIONS.len(),
        latencies.len(),
        wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    Ok(())
}
