//! `hls-load`: how many concurrent LL-HLS viewers one node holds.
//!
//! Starts `starling demo` (a live 640x360 channel made inside the node, so no encoder
//! competes for the CPU), then N viewers that each behave like hls.js at the live edge:
//! a blocking playlist request for the next part (`_HLS_msn`/`_HLS_part`), then a GET of
//! every new part, again and again, on one keep-alive connection. Per step it reports
//! whether every viewer kept up with the live edge, the node's CPU and memory, requests
//! per second, and two latencies:
//! - hand-off (from the node's /metrics): a part being published to a blocked request
//!   waking up;
//! - fan-out spread (client side): for each part, the delay of each viewer's blocking
//!   response after the first viewer's, which is what the slowest viewers pay for the
//!   crowd.
//!
//! The HTTP client is the minimal HTTP/1.1 one of `starling_bench::http1`, shared with
//! `put-get`: a load generator must cost less than what it measures, and every response
//! it parses comes from our own origin.
//!
//! The node caps connections per client address (512 by default), as it should; so the
//! viewers come from several loopback addresses (127.0.0.2 and up, [`PER_ADDRESS`] each,
//! bound before connecting) rather than the node's limits being raised. Each viewer is
//! one socket here and one in the node: the soft open-file limit is raised to the hard
//! one at start (see [`raise_nofile`]), and the node (a child) inherits it.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use starling_bench::{
    args::{default_starling, Flags},
    fmt_bound, free_port, histogram,
    http1::Http,
    proc_usage, quantile,
};

/// Viewers per loopback source address: under the node's per-address cap (512).
const PER_ADDRESS: usize = 400;

/// The source address of viewer `i`: 127.0.0.2 and up (127.0.0.1 stays for /metrics).
fn source_of(i: usize) -> IpAddr {
    let n = 2 + i / PER_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 0, (n / 256) as u8, (n % 256) as u8))
}

/// The soft and hard open-file limits of this process, from /proc.
fn nofile() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nums = |l: &str| -> Option<(u64, u64)> {
        let mut it = l.strip_prefix("Max open files")?.split_whitespace();
        let soft = it.next()?;
        let hard = it.next()?;
        let parse = |v: &str| {
            if v == "unlimited" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        };
        Some((parse(soft)?, parse(hard)?))
    };
    limits.lines().find_map(nums).unwrap_or((0, 0))
}

/// Runs this program again under `sh -c 'ulimit -n HARD'` when the soft open-file limit
/// is below the hard one (the workspace forbids the `unsafe` a setrlimit call would
/// need); the node, a child, inherits the raised limit. Returns when nothing is to do.
fn raise_nofile() -> Result<()> {
    let (soft, hard) = nofile();
    if soft >= hard || std::env::var_os("HLS_LOAD_NOFILE_RAISED").is_some() {
        return Ok(());
    }
    let me = std::env::current_exe()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" && exec \"$0\" \"$@\"")
        .arg(me)
        .args(std::env::args_os().skip(1))
        .env("HLS_LOAD_NOFILE_RAISED", "1")
        .status()?;
    std::process::exit(status.code().unwrap_or(1));
}

struct Args {
    starling: PathBuf,
    steps: Vec<usize>,
    seconds: u64,
    out_dir: PathBuf,
    playlists_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        starling: default_starling(),
        steps: vec![100, 500, 1000],
        seconds: 15,
        out_dir: PathBuf::from("bench/results"),
        playlists_only: false,
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--starling" => a.starling = flags.value()?.into(),
            "--steps" => a.steps = flags.list()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--out" => a.out_dir = flags.value()?.into(),
            "--playlists-only" => a.playlists_only = true,
            "-h" | "--help" => {
                println!(
                    "hls-load [--starling PATH] [--steps 100,500,1000] [--seconds 15] [--out DIR] [--playlists-only]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// The live edge a playlist states: (msn, part) of its last listed part, and the session
/// directory its URI is in (`SESSION/MSN.PART.m4s`).
fn last_part(playlist: &str) -> Option<(u64, u64, String)> {
    let uri = playlist
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))?
        .split("URI=\"")
        .nth(1)?
        .split('"')
        .next()?;
    let (session, file) = uri.rsplit_once('/')?;
    let mut it = file.trim_end_matches(".m4s").split('.');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        session.to_owned(),
    ))
}

#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    parts: AtomicU64,
    errors: AtomicU64,
    /// First arrival of each (msn, part) among all viewers, and every viewer's delay after it.
    first: Mutex<HashMap<(u64, u64), Instant>>,
    spreads_us: Mutex<Vec<u64>>,
    stop: AtomicBool,
    /// `--playlists-only`: the blocking playlist requests without the part GETs (what
    /// the wake-up path costs without the media bytes); parts are counted as seen.
    playlists_only: bool,
}

async fn viewer(addr: SocketAddr, source: IpAddr, shared: Arc<Shared>) -> Result<()> {
    let mut http = Http::connect_from(addr, source).await?;
    let mut media = Vec::new();
    let base = "/live/demo/source";
    let (status, body) = http.get(&format!("{base}/index.m3u8")).await?;
    if status != 200 {
        bail!("playlist: {status}");
    }
    let (mut msn, mut part, _) =
        last_part(std::str::from_utf8(&body).unwrap_or_default()).context("no parts")?;
    while !shared.stop.load(Ordering::Relaxed) {
        let next = format!("{base}/index.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
        let (status, body) = http.get(&next).await?;
        let arrived = Instant::now();
        shared.requests.fetch_add(1, Ordering::Relaxed);
        if status != 200 {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            // Resynchronise at the live edge.
            let (_, body) = http.get(&format!("{base}/index.m3u8")).await?;
            if let Some((m, p, _)) = last_part(std::str::from_utf8(&body).unwrap_or_default()) {
                (msn, part) = (m, p);
            }
            continue;
        }
        let Some((edge_msn, edge_part, edge_session)) =
            last_part(std::str::from_utf8(&body).unwrap_or_default())
        else {
            continue;
        };
        let edge = (edge_msn, edge_part);
        {
            let mut first = shared.first.lock().unwrap_or_else(|e| e.into_inner());
            let t0 = *first.entry(edge).or_insert(arrived);
            drop(first);
            let spread = arrived.saturating_duration_since(t0).as_micros() as u64;
            shared
                .spreads_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(spread);
        }
        // Fetch the parts between the old edge and the new one (normally exactly one).
        let wanted = if edge.0 == msn {
            vec![(msn, part + 1)]
        } else {
            vec![edge]
        };
        // Parts of a new publish (after a reconnect) are under its own session.
        let session = edge_session;
        if shared.playlists_only {
            shared
                .parts
                .fetch_add(wanted.len() as u64, Ordering::Relaxed);
            (msn, part) = edge;
            continue;
        }
        for (m, p) in wanted {
            let status = http
                .get_into(&format!("{base}/{session}/{m}.{p}.m4s"), &mut media)
                .await?;
            shared.requests.fetch_add(1, Ordering::Relaxed);
            if status == 200 && !media.is_empty() {
                shared.parts.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        (msn, part) = edge;
    }
    Ok(())
}

struct Node {
    child: Child,
    http: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path) -> Result<Node> {
    std::fs::create_dir_all(dir)?;
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let rtmp = format!("127.0.0.1:{}", free_port());
    let child = Command::new(bin)
        .args([
            "demo",
            "--http-listen",
            &http.to_string(),
            "--rtmp-listen",
            &rtmp,
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("starling.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Node { child, http })
}

async fn metrics(addr: SocketAddr) -> Result<String> {
    let mut h = Http::connect(addr).await?;
    let (_, body) = h.get("/metrics").await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    raise_nofile()?;
    let (nofile, _) = nofile();
    let most = args.steps.iter().copied().max().unwrap_or(0) as u64;
    if nofile < most + 1024 {
        eprintln!(
            "warning: open-file limit {nofile} is low for {most} viewers (raise `ulimit -Hn`)"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    println!(
        "LL-HLS viewers of `starling demo` (640x360 30 fps, parts 333 ms), {} s per step, {cores} cores{}\n",
        args.seconds,
        if args.playlists_only { ", blocking playlist requests only (no part GETs)" } else { "" }
    );
    println!("| viewers | holds | node CPU (% of 1 core) | RSS | requests/s | parts/s per viewer | hand-off p50 | p99 | fan-out spread p50 | p99 | part ready p50 | p99 | minus part duration p50 | p99 | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &args.steps {
        let node = start(&args.starling, &args.out_dir.join(format!("hls-{n}")))?;
        let addr = node.http;
        let pid = node.child.id();
        rt.block_on(async {
            // The demo needs a moment to have parts.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(mut h) = Http::connect(addr).await {
                    if let Ok((200, _)) = h.get("/live/demo/source/index.m3u8").await {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    bail!("the demo never came up");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let shared = Arc::new(Shared {
                playlists_only: args.playlists_only,
                ..Shared::default()
            });
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let s = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = viewer(addr, source_of(i), s.clone()).await {
                            s.errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("viewer: {e:#}");
                        }
                    })
                })
                .collect();
            // Thousands of connections take a moment to open and reach the live edge.
            tokio::time::sleep(Duration::from_secs(3 + n as u64 / 1000)).await;
            let m0 = metrics(addr).await?;
            let (cpu0, _) = proc_usage(pid);
            let (r0, p0) = (shared.requests.load(Ordering::Relaxed), shared.parts.load(Ordering::Relaxed));
            shared.spreads_us.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(args.seconds)).await;
            let wall = t0.elapsed().as_secs_f64();
            let m1 = metrics(addr).await?;
            let (cpu1, rss) = proc_usage(pid);
            let (r1, p1) = (shared.requests.load(Ordering::Relaxed), shared.parts.load(Ordering::Relaxed));
            shared.stop.store(true, Ordering::Relaxed);
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
            }
            let cpu = (cpu1 - cpu0) / wall * 100.0;
            let parts_per_viewer = (p1 - p0) as f64 / wall / n as f64;
            // 30 fps in parts of at most 333 ms: at least 3 parts a second to keep up.
            let errors = shared.errors.load(Ordering::Relaxed);
            let holds = parts_per_viewer >= 2.9 && errors == 0;
            let h0 = histogram(&m0, "starling_blocked_request_wake_seconds");
            let h1 = histogram(&m1, "starling_blocked_request_wake_seconds");
            let r0h = histogram(&m0, "starling_part_ready_seconds");
            let r1h = histogram(&m1, "starling_part_ready_seconds");
            let o0 = histogram(&m0, "starling_part_overhead_seconds");
            let o1 = histogram(&m1, "starling_part_overhead_seconds");
            let mut spreads = shared.spreads_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
            spreads.sort_unstable();
            println!(
                "| {n} | {} | {cpu:.0}% | {:.0} MiB | {:.0} | {parts_per_viewer:.2} | {} | {} | {:.1} ms | {:.1} ms | {} | {} | {} | {} | {errors} |",
                if holds { "yes" } else { "**no**" },
                rss as f64 / 1024.0,
                (r1 - r0) as f64 / wall,
                fmt_bound(quantile(&h0, &h1, 0.5)),
                fmt_bound(quantile(&h0, &h1, 0.99)),
                pct(&spreads, 0.5) as f64 / 1000.0,
                pct(&spreads, 0.99) as f64 / 1000.0,
                fmt_bound(quantile(&r0h, &r1h, 0.5)),
                fmt_bound(quantile(&r0h, &r1h, 0.99)),
                fmt_bound(quantile(&o0, &o1, 0.5)),
                fmt_bound(quantile(&o0, &o1, 0.99)),
            );
            Ok::<_, anyhow::Error>(())
        })?;
        drop(node);
    }
    Ok(())
}
