//! `tier-latency`: what each edge tier adds to LL-HLS delivery, on loopback.
//!
//! Starts `starling demo` (the origin, a live channel made inside the node), an edge in
//! front of it and a second edge in front of the first (origin → mid-tier → edge). For
//! each of `--parts` consecutive parts it sends, at once, the same blocking playlist
//! request (`_HLS_msn`/`_HLS_part` of the next part) to the origin, the mid-tier and the
//! edge, each on a keep-alive connection of its own, and then GETs the part from each.
//! The origin's answer time is the reference: per hop it reports how much later the
//! answers through one and two tiers arrived (p50, p99, max), for the playlist (the
//! hand-off through a blocked fill) and for the part (a miss filled from the tier above).
//! The goal of issue 13 is at most 50 ms p99 per hop.
//!
//! Usage: tier-latency [--parts 60] [--starling PATH]

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use starling_bench::{
    args::{default_starling, Flags},
    free_port,
    http1::Http,
    ll_hls::next_part,
};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Result<Proc> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("starling.log"))?;
    let child = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Proc(child))
}

async fn wait_http(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut h) = Http::connect(addr).await {
            if let Ok((200, _)) = h.get("/healthz").await {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("nothing answers on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `path` on `conn`: milliseconds from `started` to the whole answer.
async fn timed(what: &str, conn: &mut Http, path: &str, started: Instant) -> Result<f64> {
    let (status, _) = conn.get(path).await?;
    if status != 200 {
        bail!("{what} {path}: {status}");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return format!("| {name} | - | - | - |");
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
        at(0.5),
        at(0.99),
        v[v.len() - 1]
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut parts = 60usize;
    let mut bin = default_starling();
    let mut flags = Flags::from_env();
    while let Some(f) = flags.next_flag() {
        match f.as_str() {
            "--parts" => parts = flags.value()?.parse()?,
            "--starling" => bin = flags.value()?.into(),
            other => bail!("unknown flag {other} (--parts N, --starling PATH)"),
        }
    }
    let dir = std::env::temp_dir().join(format!("starling-tier-latency-{}", std::process::id()));
    let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (origin, mid, edge) = (port(free_port()), port(free_port()), port(free_port()));
    let _origin = spawn(
        &bin,
        &dir.join("origin"),
        &[
            "demo",
            "--http-listen",
            &origin.to_string(),
            "--rtmp-listen",
            &port(free_port()).to_string(),
        ],
        &[
            ("STARLING_SRT_ENABLED", "false".into()),
            ("STARLING_WEBRTC_ENABLED", "false".into()),
            ("STARLING_TRANSCODE_ENABLED", "false".into()),
        ],
    )?;
    wait_http(origin).await?;
    let _mid = spawn(
        &bin,
        &dir.join("mid"),
        &[
            "serve",
            "--roles",
            "edge",
            "--http-listen",
            &mid.to_string(),
        ],
        &[("STARLING_EDGE_ORIGIN", format!("http://{origin}"))],
    )?;
    let _edge = spawn(
        &bin,
        &dir.join("edge"),
        &[
            "serve",
            "--roles",
            "edge",
            "--http-listen",
            &edge.to_string(),
        ],
        &[("STARLING_EDGE_ORIGIN", format!("http://{mid}"))],
    )?;
    wait_http(mid).await?;
    wait_http(edge).await?;
    let media = "/live/demo/source/index.m3u8";
    let mut probe = Http::connect(origin).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = probe.get(media).await?;
        if status == 200 && next_part(&String::from_utf8_lossy(&body)).is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the demo channel's playlist never came");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conns = [
        Http::connect(origin).await?,
        Http::connect(mid).await?,
        Http::connect(edge).await?,
    ];
    let (mut pl_one, mut pl_two, mut part_one, mut part_two) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..parts {
        let (_, body) = probe.get(media).await?;
        let Some((msn, part, hint)) = next_part(&String::from_utf8_lossy(&body)) else {
            continue;
        };
        let blocking = format!("{media}?_HLS_msn={msn}&_HLS_part={part}");
        let part_path = format!("/live/demo/source/{hint}");
        let started = Instant::now();
        let [a, b, c] = &mut conns;
        let (ta, tb, tc) = tokio::try_join!(
            timed("origin", a, &blocking, started),
            timed("mid-tier", b, &blocking, started),
            timed("edge", c, &blocking, started),
        )?;
        pl_one.push(tb - ta);
        pl_two.push(tc - ta);
        // The part, now published, from each (a miss at both edges: filled from above).
        let started = Instant::now();
        let (ta, tb, tc) = tokio::try_join!(
            timed("origin", a, &part_path, started),
            timed("mid-tier", b, &part_path, started),
            timed("edge", c, &part_path, started),
        )?;
        part_one.push(tb - ta);
        part_two.push(tc - ta);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{parts} parts of the demo channel; origin → mid-tier edge → edge on loopback ({} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| later than the origin's answer | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!("{}", summary("blocking playlist, one tier", pl_one));
    println!("{}", summary("blocking playlist, two tiers", pl_two));
    println!("{}", summary("part (a miss), one tier", part_one));
    println!("{}", summary("part (a miss), two tiers", part_two));
    Ok(())
}
