//! Time for one live-state trigger to reach N SSE subscribers on loopback.
//!
//! ```text
//! cargo run --release -p starling-live-state --example sse_load -- 50000
//! ```
//!
//! The server (the real `router`) runs in this process; the clients run in child
//! processes of at most 10,000 connections each (this binary again, told so by the
//! environment), against one listener per 20,000 clients (a loopback address pair has
//! ~28,000 ephemeral ports). The server holds one descriptor per client: raise
//! `ulimit -n` above N first (its hard limit must allow it).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{net::SocketAddr, sync::Arc, time::Duration, time::Instant};

use starling_live_state::{router, BusConfig, EventId, EventState, LiveStateBus, StateTrigger};
use support::{Swarm, SWARM_ADDR_ENV, SWARM_COUNT_ENV};

const PER_CHILD: usize = 10_000;
const PER_LISTENER: usize = 20_000;

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let total: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(50_000);
    if let Some(limit) = open_files_limit() {
        if total + 64 > limit {
            eprintln!(
                "warning: {total} subscribers need {total}+ descriptors in this process; \
                 `ulimit -n` is {limit}. Raise it (ulimit -n {}) or expect a stall.",
                total + 1024
            );
        }
    }

    let bus = LiveStateBus::new(BusConfig::default());
    let mut addrs = Vec::new();
    for _ in 0..total.div_ceil(PER_LISTENER).max(1) {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        addrs.push(listener.local_addr()?);
        let app = router::<()>(Arc::clone(&bus));
        rt.spawn(async move { axum::serve(listener, app).await });
    }

    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut swarms = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let n = left.min(PER_CHILD);
        let addr = addrs[(i * PER_CHILD / PER_LISTENER) % addrs.len()];
        swarms.push(Swarm::spawn(&exe, &[], addr, n));
        left -= n;
        i += 1;
    }
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
    bus.publish(StateTrigger {
        event_id: EventId::new("load-test"),
        state: EventState::Live,
        at: std::time::SystemTime::now(),
    });
    let mut last_wall = 0u128;
    for s in &mut swarms {
        let done = s.wait_line("SWARM DONE");
        let wall: u128 = done.split_whitespace().next().unwrap_or("0").parse()?;
        last_wall = last_wall.max(wall);
    }
    println!(
        "publish -> last of {total} subscribers received: {:.1} ms",
        last_wall.saturating_sub(published_wall) as f64 / 1000.0
    );
    Ok(())
}
