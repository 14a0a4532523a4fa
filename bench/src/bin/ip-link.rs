//! `ip-link`: an impaired IP link between two network namespaces, for TCP and UDP alike.
//!
//! `udp-relay` impairs UDP only, so RTMP (TCP) could not cross the link SRT crossed.
//! This creates namespaces A and B (`--ns A,B`), each with one TUN device holding
//! 10.77.0.1/30 (A) or 10.77.0.2/30 (B), and relays the raw IP packets between the two
//! devices through one [`starling_bench::impair::Impairment`] per direction: forward
//! is A → B, reverse B → A. Programs started with `ip netns exec A …` then reach
//! `ip netns exec B …` at 10.77.0.2 over the impaired link, whatever their protocol.
//! The decisions are the model's; this file only owns the two file descriptors and one
//! timer (the earlier of the two models' next release).
//!
//! Prints one JSON line of statistics per direction (the same fields as `udp-relay`'s,
//! plus `malformed` and `first_large_packet_unix_s`) at the end (`--seconds`, SIGINT or SIGTERM) and every `--stats-every` seconds if
//! asked; a line on stderr once both namespaces are up, which is what scripts and tests
//! wait for. The namespaces are deleted on the way out.

use std::{
    fs::File,
    io::{self, Read, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use starling_bench::{
    impair::{Config, Impairment},
    netns::{self, Link},
    stats_line,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    time::Instant,
};

const USAGE: &str = "\
ip-link --ns A,B [options]     (as root)

Creates network namespaces A (10.77.0.1/30) and B (10.77.0.2/30), each with a TUN
device of its name (MTU 1500), and relays IP packets between them, impaired the same
way in both directions:
  --rtt-ms MS          round-trip time; each direction delays by MS/2 (default 0)
  --loss P             independent loss probability per packet, each way (0..1)
  --rate-mbps M        bandwidth cap each way, Mbit/s (default: none)
  --queue-kb KB        queue in front of the cap, KiB (default 512)
  --seed N             PRNG seed (default 1); same seed, same decisions
  --seconds S          stop after S seconds (default: at SIGINT or SIGTERM)
  --stats-every S      also print statistics every S seconds";

#[derive(Debug)]
struct Args {
    names: [String; 2],
    link: Config,
    seed: u64,
    seconds: Option<f64>,
    stats_every: Option<f64>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut names = None;
    let mut link = Config::default();
    let (mut seed, mut seconds, mut stats_every) = (1, None, None);
    while let Some(flag) = it.next() {
        if flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--ns" => {
                let Some((a, b)) = value.split_once(',') else {
                    bail!("--ns takes two names, A,B");
                };
                names = Some([a.to_string(), b.to_string()]);
            }
            "--rtt-ms" => {
                let ms: f64 = value.parse().context("--rtt-ms")?;
                link.delay = Duration::try_from_secs_f64(ms / 2000.0)
                    .with_context(|| format!("--rtt-ms {value} is not a duration"))?;
            }
            "--loss" => link.loss = value.parse().context("--loss")?,
            "--rate-mbps" => {
                link.rate_bps = Some((positive(&value).context("--rate-mbps")? * 1e6) as u64)
            }
            "--queue-kb" => {
                let k: usize = value.parse().context("--queue-kb")?;
                link.queue_bytes = k.checked_mul(1024).context("--queue-kb too large")?;
            }
            "--seed" => seed = value.parse().context("--seed")?,
            "--seconds" => seconds = Some(positive(&value).context("--seconds")?),
            "--stats-every" => stats_every = Some(positive(&value).context("--stats-every")?),
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    // The model checks the probabilities, with its own error.
    link.validate().context("link settings")?;
    Ok(Args {
        names: names.context("--ns A,B is required")?,
        link,
        seed,
        seconds,
        stats_every,
    })
}

fn positive(v: &str) -> Result<f64> {
    let x: f64 = v.parse()?;
    if !(x.is_finite() && x > 0.0) {
        bail!("{v} is not a positive number");
    }
    Ok(x)
}

/// One direction: the device packets come out of, the one they go into, the model.
struct Direction {
    name: &'static str,
    model: Impairment,
    /// Writes the kernel refused (e.g. the device's queue full); the link carries on.
    send_errors: u64,
    /// Reads that were not one well-formed IP packet; passed on regardless, counted so
    /// that a framing bug would show.
    malformed: u64,
    /// When the first packet of at least [`LARGE`] bytes came in, on the wall clock.
    first_large: Option<SystemTime>,
}

/// Handshakes (TCP, RTMP's, SRT's) come in smaller packets than this, and media in
/// larger ones, so the first such packet marks when a sender started sending media: the
/// bench scripts measure end-to-end latency from it.
const LARGE: usize = 1000;

impl Direction {
    fn report(&self, elapsed: Duration, done: bool) {
        let mut line = stats_line(self.name, done, elapsed, &self.model, self.send_errors);
        line["malformed"] = self.malformed.into();
        line["first_large_packet_unix_s"] = self
            .first_large
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .into();
        println!("{line}");
    }

    /// Reads every packet waiting on `from` into the model.
    fn drain(&mut self, from: &File, buf: &mut [u8], now: Duration) -> io::Result<()> {
        loop {
            match (&*from).read(buf) {
                Ok(n) => {
                    let p = &buf[..n];
                    if netns::ip_header(p).is_none_or(|(_, len)| len != n) {
                        self.malformed += 1;
                    }
                    if n >= LARGE && self.first_large.is_none() {
                        self.first_large = Some(SystemTime::now());
                    }
                    self.model.push(now, Bytes::copy_from_slice(p));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes everything due by `now` into `to`.
    fn release(&mut self, to: &File, now: Duration) {
        while let Some(p) = self.model.poll(now) {
            // A TUN write hands the packet to the namespace's stack at once; it fails
            // only when the stack refuses it, which a real link would see as loss.
            if (&*to).write(&p).is_err() {
                self.send_errors += 1;
            }
        }
    }
}

/// SIGINT and SIGTERM, listened for from before the link exists.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

async fn run(args: Args, link: &Link, signals: &mut Signals) -> Result<()> {
    let [a, b] = &link.tun;
    let fd_a = netns::async_tun(a.try_clone()?).context("registering A's device")?;
    let fd_b = netns::async_tun(b.try_clone()?).context("registering B's device")?;
    // The reverse seed differs so that the two directions do not lose in lockstep
    // (the same derivation as udp-relay's).
    let mut fwd = Direction {
        name: "forward",
        model: Impairment::new(args.link.clone(), args.seed)?,
        send_errors: 0,
        malformed: 0,
        first_large: None,
    };
    let mut rev = Direction {
        name: "reverse",
        model: Impairment::new(args.link.clone(), args.seed ^ 0x9e37_79b9_7f4a_7c15)?,
        send_errors: 0,
        malformed: 0,
        first_large: None,
    };
    let [na, nb] = &link.names;
    eprintln!(
        "ip-link: up: {na} ({}) <-> {nb} ({}), RTT {} ms, loss {} each way, seed {}",
        netns::ADDR_A,
        netns::ADDR_B,
        args.link.delay.as_secs_f64() * 2000.0,
        args.link.loss,
        args.seed
    );

    let start = Instant::now();
    let far_future = start + Duration::from_secs(100 * 365 * 86_400);
    let deadline = tokio::time::sleep_until(
        args.seconds
            .map_or(far_future, |s| start + Duration::from_secs_f64(s)),
    );
    let every = args.stats_every.map(Duration::from_secs_f64);
    let mut next_stats = every.map_or(far_future, |e| start + e);
    tokio::pin!(deadline);
    // Large enough for any packet a TUN device can hand out, whatever its MTU.
    let mut buf = vec![0u8; 65_536];

    loop {
        let next_release = [fwd.model.poll_timeout(), rev.model.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(far_future, |d| start + d);
        tokio::select! {
            r = fd_a.readable() => {
                let mut guard = r?;
                fwd.drain(a, &mut buf, start.elapsed()).context("reading A's device")?;
                guard.clear_ready();
            }
            r = fd_b.readable() => {
                let mut guard = r?;
                rev.drain(b, &mut buf, start.elapsed()).context("reading B's device")?;
                guard.clear_ready();
            }
            _ = tokio::time::sleep_until(next_release) => {}
            _ = tokio::time::sleep_until(next_stats) => {
                fwd.report(start.elapsed(), false);
                rev.report(start.elapsed(), false);
                if let Some(e) = every {
                    next_stats += e;
                }
            }
            _ = &mut deadline => break,
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
        }
        // Whatever woke us, send everything now due in both directions.
        let now = start.elapsed();
        fwd.release(b, now);
        rev.release(a, now);
    }
    let elapsed = start.elapsed();
    fwd.report(elapsed, true);
    rev.report(elapsed, true);
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Listening before the link exists: a signal during set-up must not kill the
        // process while it owns namespaces, and must still end the run at once.
        let mut signals = Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        };
        let link = Link::create(&args.names[0], &args.names[1])?;
        // `link` is dropped (namespaces deleted) whether `run` succeeds or fails.
        run(args, &link, &mut signals).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options() {
        let a = parse("--ns stl-a,stl-b --rtt-ms 200 --loss 0.05 --seed 7 --rate-mbps 2.5")
            .expect("valid");
        assert_eq!(a.names, ["stl-a".to_string(), "stl-b".to_string()]);
        assert_eq!(a.link.delay, Duration::from_millis(100));
        assert_eq!(a.link.loss, 0.05);
        assert_eq!(a.link.rate_bps, Some(2_500_000));
        assert_eq!(a.seed, 7);
        assert_eq!((a.seconds, a.stats_every), (None, None));
        let d = parse("--ns x,y").expect("defaults");
        assert_eq!(d.link, Config::default());
        assert_eq!(d.seed, 1);
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            "--rtt-ms 50",
            "--ns a",
            "--ns a,b --loss 2",
            "--ns a,b --rtt-ms -1",
            "--ns a,b --rate-mbps 0",
            "--ns a,b --bogus 1",
            "--ns a,b --seconds",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
