//! Time for one live-state trigger to reach N SSE subscribers on loopback.
//!
//! ```text
//! cargo run --release -p starling-live-state --example sse_load -- 10000
//! cargo run --release -p starling-live-state --example sse_load -- 50000 --nodes 3
//! ```
//!
//! Single process (no `--nodes`): the server (the real `router`) runs in this process;
//! the clients run in child processes of at most 10,000 connections each (this binary
//! again, told so by the environment), against one listener per 20,000 clients (a
//! loopback address pair has ~28,000 ephemeral ports). The server holds one descriptor
//! per client: raise `ulimit -n` above N first (its hard limit must allow it).
//!
//! Multiple nodes (`--nodes K`): K server processes (this binary again), each with its own
//! bus and listeners and at most 19,000 clients, as K Starling nodes each serving their
//! own SSE clients. Clock-driven transitions are computed by every node's event driver,
//! so each node's bus publishes the same kickoff itself; here the parent tells every node
//! to publish with a line on its stdin, once every client is connected, and each node
//! reports the wall-clock time just before its `publish`. Reported: last receipt minus
//! the earliest node publish (an upper bound: it includes the parent's fan-out of the
//! command and the nodes' scheduling), the spread of the publish times, and per node
//! its subscribers and last receipt minus its own publish.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use starling_live_state::{router, BusConfig, EventId, EventState, LiveStateBus, StateTrigger};
use support::{Swarm, SWARM_ADDR_ENV, SWARM_COUNT_ENV};

type Error = Box<dyn std::error::Error>;

const PER_CHILD: usize = 10_000;
const PER_LISTENER: usize = 20_000;
/// Clients per node process in `--nodes` mode: under the 20,000 open files a process
/// may hold here, with room for the listeners, pipes and the runtime.
const PER_NODE: usize = 19_000;
/// In a node process: how many clients it will serve (sizes its listeners).
const NODE_CLIENTS_ENV: &str = "STARLING_SSE_NODE_CLIENTS";

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn trigger() -> StateTrigger {
    StateTrigger {
        event_id: EventId::new("load-test"),
        state: EventState::Live,
        at: std::time::SystemTime::now(),
    }
}

/// Binds one listener per 20,000 clients and serves the real router on each.
fn serve(
    rt: &tokio::runtime::Runtime,
    bus: &Arc<LiveStateBus>,
    clients: usize,
) -> Result<Vec<SocketAddr>, Error> {
    let mut addrs = Vec::new();
    for _ in 0..clients.div_ceil(PER_LISTENER).max(1) {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        addrs.push(listener.local_addr()?);
        let app = router::<()>(Arc::clone(bus));
        rt.spawn(async move { axum::serve(listener, app).await });
    }
    Ok(addrs)
}

/// Swarms of at most `PER_CHILD` clients for `clients` subscribers of `addrs`.
fn spawn_swarms(
    exe: &std::path::Path,
    addrs: &[SocketAddr],
    clients: usize,
) -> Result<Vec<Swarm>, Error> {
    let mut swarms = Vec::new();
    let mut left = clients;
    let mut i = 0;
    while left > 0 {
        let n = left.min(PER_CHILD);
        let addr = *addrs
            .get((i * PER_CHILD / PER_LISTENER) % addrs.len().max(1))
            .ok_or("no listener")?;
        swarms.push(Swarm::spawn(exe, &[], addr, n));
        left -= n;
        i += 1;
    }
    Ok(swarms)
}

/// The latest `SWARM DONE` receipt time (µs since the epoch) of these swarms.
fn last_receipt(swarms: &mut [Swarm]) -> Result<u128, Error> {
    let mut last_wall = 0u128;
    for s in swarms {
        let done = s.wait_line("SWARM DONE");
        let wall: u128 = done.split_whitespace().next().unwrap_or("0").parse()?;
        last_wall = last_wall.max(wall);
    }
    Ok(last_wall)
}

fn ms(us: u128) -> f64 {
    us as f64 / 1000.0
}

fn main() -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let (Ok(addr), Ok(count)) = (
        std::env::var(SWARM_ADDR_ENV),
        std::env::var(SWARM_COUNT_ENV),
    ) {
        let addr: SocketAddr = addr.parse()?;
        rt.block_on(support::run_swarm(
            addr,
            count.parse()?,
            Duration::from_secs(60),
        ))?;
        std::process::exit(0);
    }
    if let Ok(clients) = std::env::var(NODE_CLIENTS_ENV) {
        run_node(&rt, clients.parse()?)?;
        std::process::exit(0);
    }

    let mut total = 50_000;
    let mut nodes = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--nodes" {
            let k: usize = args.next().ok_or("--nodes needs a count")?.parse()?;
            nodes = Some(k.max(1));
        } else {
            total = arg.parse()?;
        }
    }
    match nodes {
        None => single_process(&rt, total),
        Some(k) => multi_node(total, k),
    }
}

fn single_process(rt: &tokio::runtime::Runtime, total: usize) -> Result<(), Error> {
    if let Some(limit) = open_files_limit() {
        if total + 64 > limit {
            eprintln!(
                "warning: {total} subscribers need {total}+ descriptors in this process; \
                 `ulimit -n` is {limit}. Raise it (ulimit -n {}) or expect a stall, \
                 or spread them over server processes with --nodes {}.",
                total + 1024,
                total.div_ceil(PER_NODE)
            );
        }
    }

    let bus = LiveStateBus::new(BusConfig::default());
    let addrs = serve(rt, &bus, total)?;

    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut swarms = spawn_swarms(&exe, &addrs, total)?;
    for s in &mut swarms {
        s.wait_line("SWARM READY");
    }
    let connected = started.elapsed();
    println!(
        "{} subscribers connected in {:.2} s ({} client processes, {} listeners)",
        bus.subscriber_count(),
        connected.as_secs_f64(),
        swarms.len(),
        addrs.len()
    );

    let published_wall = support::wall_us();
    bus.publish(trigger());
    let last_wall = last_receipt(&mut swarms)?;
    println!(
        "publish -> last of {total} subscribers received: {:.1} ms",
        ms(last_wall.saturating_sub(published_wall))
    );
    Ok(())
}

/// Node process: serves `clients` subscribers on its own bus; prints
/// `NODE LISTENING <addr>,…`, then answers stdin lines: `COUNT` with
/// `NODE COUNT <subscribers>`, `PUBLISH` with `NODE PUBLISHED <wall µs just before the
/// publish>`. Ends when stdin closes.
fn run_node(rt: &tokio::runtime::Runtime, clients: usize) -> Result<(), Error> {
    let bus = LiveStateBus::new(BusConfig::default());
    let addrs = serve(rt, &bus, clients)?;
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "NODE LISTENING {}", list.join(","))?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "PUBLISH" => {
                // Published from this thread, as a node's event driver would at its timer.
                let wall = support::wall_us();
                bus.publish(trigger());
                writeln!(out, "NODE PUBLISHED {wall}")?;
            }
            "COUNT" => writeln!(out, "NODE COUNT {}", bus.subscriber_count())?,
            other => return Err(format!("unknown node command {other:?}").into()),
        }
        out.flush()?;
    }
    Ok(())
}

/// Parent side of one node process.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    clients: usize,
}

impl Node {
    fn spawn(exe: &std::path::Path, clients: usize) -> Result<Self, Error> {
        let mut child = Command::new(exe)
            .env(NODE_CLIENTS_ENV, clients.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("node stdout not piped")?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            clients,
        })
    }

    fn send(&mut self, command: &str) -> Result<(), Error> {
        let stdin = self.stdin.as_mut().ok_or("node stdin closed")?;
        stdin.write_all(command.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    fn wait_line(&mut self, prefix: &str) -> Result<String, Error> {
        for line in self.lines.by_ref() {
            if let Some(rest) = line?.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
        }
        let status = self.child.wait()?;
        Err(format!("node ended ({status}) before printing {prefix:?}").into())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Closing stdin ends the node; kill in case it is stuck.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn multi_node(total: usize, k: usize) -> Result<(), Error> {
    let per_node = total.div_ceil(k);
    if per_node > PER_NODE {
        return Err(format!(
            "{total} subscribers on {k} nodes is {per_node} per node, more than {PER_NODE}; \
             use --nodes {}",
            total.div_ceil(PER_NODE)
        )
        .into());
    }
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::new();
    for j in 0..k {
        let clients = total / k + usize::from(j < total % k);
        nodes.push(Node::spawn(&exe, clients)?);
    }
    let mut swarms: Vec<Vec<Swarm>> = Vec::new();
    let started = Instant::now();
    for node in &mut nodes {
        let addrs: Vec<SocketAddr> = node
            .wait_line("NODE LISTENING")?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        swarms.push(spawn_swarms(&exe, &addrs, node.clients)?);
    }
    for s in swarms.iter_mut().flatten() {
        s.wait_line("SWARM READY");
    }
    let connected = started.elapsed();
    let mut subscribers = Vec::new();
    for node in &mut nodes {
        node.send("COUNT")?;
        subscribers.push(node.wait_line("NODE COUNT")?.parse::<usize>()?);
    }
    println!(
        "{} subscribers connected in {:.2} s ({} server processes with {:?} subscribers, \
         {} client processes)",
        subscribers.iter().sum::<usize>(),
        connected.as_secs_f64(),
        k,
        subscribers,
        swarms.iter().map(Vec::len).sum::<usize>()
    );

    let command_wall = support::wall_us();
    for node in &mut nodes {
        node.send("PUBLISH")?;
    }
    let mut published = Vec::new();
    for node in &mut nodes {
        published.push(node.wait_line("NODE PUBLISHED")?.parse::<u128>()?);
    }
    let mut received = Vec::new();
    for s in &mut swarms {
        received.push(last_receipt(s)?);
    }
    let earliest = published.iter().copied().min().unwrap_or(0);
    let latest = published.iter().copied().max().unwrap_or(0);
    let last = received.iter().copied().max().unwrap_or(0);
    for (j, ((p, r), n)) in published
        .iter()
        .zip(&received)
        .zip(&subscribers)
        .enumerate()
    {
        println!(
            "node {j}: {n} subscribers, published {:+.2} ms after the earliest node, \
             its publish -> its last subscriber received: {:.1} ms",
            ms(p - earliest),
            ms(r.saturating_sub(*p))
        );
    }
    println!(
        "parent's command -> earliest node publish: {:.2} ms; spread of the {k} node publishes: {:.2} ms",
        ms(earliest.saturating_sub(command_wall)),
        ms(latest - earliest)
    );
    println!(
        "earliest node publish -> last of {total} subscribers received: {:.1} ms",
        ms(last.saturating_sub(earliest))
    );
    Ok(())
}
