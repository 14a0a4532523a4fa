//! `put-get`: how soon a segment pushed over HTTP PUT (`/ingest/CHANNEL/PATH`,
//! docs/put-ingest.md) can be fetched from the origin (`/live/CHANNEL/PATH`).
//!
//! For each step N it starts a fresh `starling serve` with N channels, and per channel
//! three tasks, each on a keep-alive connection of its own:
//! - a packager, as ffmpeg's hls muxer with `-method PUT` does it: every `--segment-ms`
//!   it PUTs the next segment (`index<epoch>.m4s`, the same real CMAF bytes each time),
//!   then the playlist naming the newest five, then DELETEs the segment that left it
//!   (`-hls_flags delete_segments`). The channels are spread evenly over the period, or
//!   all PUT at the same instant with `--aligned` (the worst case).
//! - a reader that starts GETting the segment when its PUT starts and retries until it
//!   gets 200: (b) PUT start to the first successful GET, the body read whole.
//! - a reader at the live edge that asks for the next segment as soon as it has the
//!   previous one, so its request is held by the origin until the PUT lands: (c) the PUT's
//!   answer (at the packager) to the held GET's answer. This one is signed: the origin
//!   wakes the held request when the segment is in memory, before it answers the PUT,
//!   so the GET can finish first (negative).
//!
//! Also (a) the segment PUT's response time (request written to answer read) and the
//! playlist PUT's, and the node's CPU and memory. Round 0 of every channel (first
//! authorisation, init section) is left out of the figures.
//!
//! The HTTP client is the minimal HTTP/1.1 one of `starling_bench::http1`, shared with
//! `hls-load`: the load generator shares the cores with the node and must cost less than
//! what it measures.
//!
//! Usage: put-get --init init.mp4 --segment seg.m4s [--starling target/release/starling]
//!        [--steps 1,20] [--seconds 60] [--segment-ms 1000] [--aligned] [--out DIR]

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use starling_bench::{
    args::{default_starling, Flags},
    http1::Http,
    node::Node,
};
use tokio::sync::mpsc;

/// Segments a playlist names (ffmpeg's `-hls_list_size 5`).
const LIST: u64 = 5;

/// The read buffer of each connection (a few per channel, not thousands).
const BUFFER: usize = 64 * 1024;

struct Args {
    starling: PathBuf,
    init: PathBuf,
    segment: PathBuf,
    steps: Vec<usize>,
    seconds: u64,
    segment_ms: u64,
    out: PathBuf,
    /// Every channel PUTs at the same instant (the worst case) instead of spread over
    /// the period.
    aligned: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        starling: default_starling(),
        init: PathBuf::new(),
        segment: PathBuf::new(),
        steps: vec![1, 20],
        seconds: 60,
        segment_ms: 1000,
        out: std::env::temp_dir().join(format!("starling-put-get-{}", std::process::id())),
        aligned: false,
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--starling" => a.starling = flags.value()?.into(),
            "--init" => a.init = flags.value()?.into(),
            "--segment" => a.segment = flags.value()?.into(),
            "--steps" => a.steps = flags.list()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--segment-ms" => a.segment_ms = flags.parsed()?,
            "--out" => a.out = flags.value()?.into(),
            "--aligned" => a.aligned = true,
            "-h" | "--help" => {
                println!("put-get --init FILE --segment FILE [--starling PATH] [--steps 1,20] [--seconds 60] [--segment-ms 1000] [--aligned] [--out DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if a.init.as_os_str().is_empty() || a.segment.as_os_str().is_empty() {
        bail!("--init and --segment are needed (an fMP4 init section and a segment)");
    }
    if a.segment_ms < 100 || a.seconds == 0 || a.steps.is_empty() {
        bail!("--segment-ms must be at least 100, --seconds and --steps not empty");
    }
    Ok(a)
}

/// What one channel saw, per round (None: not seen).
#[derive(Default)]
struct Rounds {
    put_start: Vec<Option<Instant>>,
    put_end: Vec<Option<Instant>>,
    playlist_put: Vec<Option<Duration>>,
    /// The polling reader's 200, body read.
    ready: Vec<Option<Instant>>,
    /// The live-edge reader's 200, and whether its GET went out before the PUT started.
    held: Vec<Option<(Instant, Instant)>>,
    put_errors: u64,
    get_errors: u64,
    /// 404s the polling reader got before its 200, per round.
    not_yet: Vec<u64>,
    /// Live-edge GETs answered 404 (the bound passed, or the segment was past the edge).
    held_missed: u64,
}

impl Rounds {
    fn new(n: usize) -> Self {
        Self {
            put_start: vec![None; n],
            put_end: vec![None; n],
            playlist_put: vec![None; n],
            ready: vec![None; n],
            held: vec![None; n],
            not_yet: vec![0; n],
            ..Self::default()
        }
    }
}

type Shared = Arc<Mutex<Rounds>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Rounds> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Channel {
    name: String,
    key: String,
    /// The first segment's number (epoch seconds, as ffmpeg's `epoch` numbering).
    first: u64,
    /// When round 0 starts.
    start: Instant,
}

fn segment_path(ch: &Channel, round: usize) -> String {
    format!("index{}.m4s", ch.first + round as u64)
}

fn playlist(ch: &Channel, round: usize, target: u64, extinf: f64) -> Vec<u8> {
    let from = (round as u64 + 1).saturating_sub(LIST);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        ch.first + from
    );
    for r in from..=round as u64 {
        let _ = write!(s, "#EXTINF:{extinf:.6},\nindex{}.m4s\n", ch.first + r);
    }
    s.into_bytes()
}

#[allow(clippy::too_many_arguments)]
async fn packager(
    addr: SocketAddr,
    ch: Arc<Channel>,
    init: Bytes,
    segment: Bytes,
    rounds: usize,
    period: Duration,
    shared: Shared,
    started: mpsc::UnboundedSender<usize>,
) -> Result<()> {
    let mut http = Http::connect_with_buffer(addr, BUFFER).await?;
    let mut out = Vec::new();
    let base = format!("/ingest/{}/", ch.name);
    let key = Some(ch.key.as_str());
    let target = period.as_secs_f64().ceil() as u64;
    let status = http
        .request("PUT", &format!("{base}init.mp4"), key, &init, &mut out)
        .await?;
    if !(200..300).contains(&status) {
        bail!("init.mp4: {status} {}", String::from_utf8_lossy(&out));
    }
    for round in 0..rounds {
        tokio::time::sleep_until((ch.start + period * round as u32).into()).await;
        let path = format!("{base}{}", segment_path(&ch, round));
        let t0 = Instant::now();
        lock(&shared).put_start[round] = Some(t0);
        let _ = started.send(round);
        let status = http.request("PUT", &path, key, &segment, &mut out).await?;
        let t1 = Instant::now();
        if !(200..300).contains(&status) {
            lock(&shared).put_errors += 1;
            eprintln!("{path}: {status} {}", String::from_utf8_lossy(&out));
            continue;
        }
        lock(&shared).put_end[round] = Some(t1);
        let pl = playlist(&ch, round, target, period.as_secs_f64());
        let t2 = Instant::now();
        let status = http
            .request("PUT", &format!("{base}index.m3u8"), key, &pl, &mut out)
            .await?;
        let took = t2.elapsed();
        if (200..300).contains(&status) {
            lock(&shared).playlist_put[round] = Some(took);
        } else {
            lock(&shared).put_errors += 1;
            eprintln!("playlist: {status} {}", String::from_utf8_lossy(&out));
        }
        if round as u64 > LIST {
            let old = round - LIST as usize - 1;
            let path = format!("{base}{}", segment_path(&ch, old));
            let status = http.request("DELETE", &path, key, &[], &mut out).await?;
            if !(200..300).contains(&status) {
                lock(&shared).put_errors += 1;
            }
        }
    }
    Ok(())
}

/// GETs each segment from its PUT's start until it gets it.
async fn poller(
    addr: SocketAddr,
    ch: Arc<Channel>,
    len: usize,
    shared: Shared,
    mut started: mpsc::UnboundedReceiver<usize>,
) -> Result<()> {
    let mut http = Http::connect_with_buffer(addr, BUFFER).await?;
    let mut body = Vec::with_capacity(len);
    while let Some(round) = started.recv().await {
        let path = format!("/live/{}/{}", ch.name, segment_path(&ch, round));
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let status = http.get_into(&path, &mut body).await?;
            if status == 200 && body.len() == len {
                lock(&shared).ready[round] = Some(Instant::now());
                break;
            }
            if status == 404 && Instant::now() < give_up {
                lock(&shared).not_yet[round] += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            lock(&shared).get_errors += 1;
            break;
        }
    }
    Ok(())
}

/// Asks for the next segment as soon as it has the previous one.
async fn edge_reader(
    addr: SocketAddr,
    ch: Arc<Channel>,
    len: usize,
    rounds: usize,
    period: Duration,
    shared: Shared,
) -> Result<()> {
    let mut http = Http::connect_with_buffer(addr, BUFFER).await?;
    let mut body = Vec::with_capacity(len);
    // Begin once round 0's playlist is in (before it, the channel is unknown: 404).
    tokio::time::sleep_until((ch.start + period / 2).into()).await;
    let mut round = 1;
    while round < rounds {
        let path = format!("/live/{}/{}", ch.name, segment_path(&ch, round));
        let asked = Instant::now();
        let status = http.get_into(&path, &mut body).await?;
        let got = Instant::now();
        match status {
            200 if body.len() == len => lock(&shared).held[round] = Some((asked, got)),
            404 => {
                lock(&shared).held_missed += 1;
                // Past the edge or the bound: catch up with the packager.
                let behind =
                    got.saturating_duration_since(ch.start).as_millis() / period.as_millis().max(1);
                round = round.max(behind as usize + 1);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            _ => lock(&shared).get_errors += 1,
        }
        round += 1;
    }
    Ok(())
}

/// (p50, p99, max) of `v`, in ms.
fn stats(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
    format!("{:.1} / {:.1} / {:.1}", q(0.5), q(0.99), v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Signed `b - a` in ms.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        ms(b - a)
    } else {
        -ms(a - b)
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let init = Bytes::from(std::fs::read(&args.init).with_context(|| format!("{:?}", args.init))?);
    let segment =
        Bytes::from(std::fs::read(&args.segment).with_context(|| format!("{:?}", args.segment))?);
    let period = Duration::from_millis(args.segment_ms);
    let rounds = (args.seconds * 1000 / args.segment_ms).max(2) as usize;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "segment {} bytes every {} ms, init {} bytes; {rounds} rounds ({} s) per step; {cores} cores; round 0 left out",
        segment.len(),
        args.segment_ms,
        init.len(),
        args.seconds
    );
    println!();
    println!("All times in ms, as p50 / p99 / max.");
    println!();
    println!("| channels | segments | (a) segment PUT | playlist PUT | (b) PUT start → first 200 GET | 404s before it | (c) held GET: PUT answered → GET answered | held GETs answered / 404 | errors | node CPU | node RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for &n in &args.steps {
        let dir = args.out.join(format!("run-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let keys: Vec<(String, String)> = (0..n)
            .map(|i| (format!("put{i}"), format!("put-key-{i:05}")))
            .collect();
        let node = Node::start(&args.starling, &dir, &keys, false)?;
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        // Leave a second to connect; spread the channels over one period.
        let t0 = Instant::now() + Duration::from_secs(1);
        let shared: Vec<Shared> = (0..n)
            .map(|_| Arc::new(Mutex::new(Rounds::new(rounds))))
            .collect();
        let (cpu0, _) = node.usage();
        let wall = Instant::now();
        let tasks: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, (name, key))| {
                let ch = Arc::new(Channel {
                    name: name.clone(),
                    key: key.clone(),
                    first: epoch,
                    start: if args.aligned {
                        t0
                    } else {
                        t0 + period * i as u32 / n as u32
                    },
                });
                let (tx, rx) = mpsc::unbounded_channel();
                let s = shared[i].clone();
                let len = segment.len();
                let p = rt.spawn(packager(
                    node.http,
                    ch.clone(),
                    init.clone(),
                    segment.clone(),
                    rounds,
                    period,
                    s.clone(),
                    tx,
                ));
                let g = rt.spawn(poller(node.http, ch.clone(), len, s.clone(), rx));
                let e = rt.spawn(edge_reader(node.http, ch, len, rounds, period, s));
                (p, g, e)
            })
            .collect();
        let mut failed = Vec::new();
        for (p, g, e) in tasks {
            for t in [p, g, e] {
                if let Err(err) = rt.block_on(t)? {
                    failed.push(err.to_string());
                }
            }
        }
        let (cpu1, rss) = node.usage();
        let cpu = (cpu1 - cpu0) / wall.elapsed().as_secs_f64() * 100.0;
        drop(node);
        let (mut put, mut pl, mut ready, mut held) = (vec![], vec![], vec![], vec![]);
        let (mut answered, mut missed, mut errors, mut not_yet) = (0, 0, 0, 0);
        for s in &shared {
            let r = lock(s);
            for k in 1..rounds {
                if let (Some(a), Some(b)) = (r.put_start[k], r.put_end[k]) {
                    put.push(ms(b - a));
                }
                if let Some(d) = r.playlist_put[k] {
                    pl.push(ms(d));
                }
                if let (Some(a), Some(b)) = (r.put_start[k], r.ready[k]) {
                    ready.push(signed_ms(a, b));
                }
                if let (Some(end), Some(start), Some((asked, got))) =
                    (r.put_end[k], r.put_start[k], r.held[k])
                {
                    // Only requests that were waiting when the PUT started.
                    if asked < start {
                        held.push(signed_ms(end, got));
                        answered += 1;
                    }
                }
            }
            missed += r.held_missed;
            errors += r.put_errors + r.get_errors;
            not_yet += r.not_yet[1..].iter().sum::<u64>();
        }
        println!(
            "| {n}{} | {} | {} | {} | {} | {not_yet} | {} | {answered} / {missed} | {errors} | {cpu:.0} % of a core | {} MiB |",
            if args.aligned && n > 1 { ", aligned" } else { "" },
            put.len(),
            stats(&mut put),
            stats(&mut pl),
            stats(&mut ready),
            stats(&mut held),
            rss / 1024,
        );
        if !failed.is_empty() {
            eprintln!(
                "step {n}: {} tasks failed: {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&args.out);
    Ok(())
}
