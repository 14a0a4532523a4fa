//! `udp-relay`: a lossy link in userspace, between a UDP sender and its target.
//!
//! The kernel here has no netem, so SRT ingest is tested through this relay instead.
//! It listens where the sender sends, forwards to `--to`, and sends the target's
//! replies back to the sender's address (the last one heard from), because SRT needs
//! its ACKs and NAKs to flow back. Each direction has its own
//! [`starling_bench::impair::Impairment`] (the decisions; this file only owns the
//! sockets and the one timer, set to the earlier of the two models' next release).
//! The reverse direction copies the forward settings unless a `--reverse-*` flag says
//! otherwise, so a `--delay-ms D` gives an RTT of 2 × D.
//!
//! Prints one JSON line of statistics per direction at the end (`--seconds`, or
//! Ctrl-C), and every `--stats-every` seconds if asked; a line on stderr once the
//! socket is bound, which is what scripts and tests wait for.

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use starling_bench::impair::{Config, GilbertElliott, Impairment, MAX_DATAGRAM};
use tokio::{net::UdpSocket, time::Instant};

const USAGE: &str = "\
udp-relay --listen ADDR --to ADDR [options]

Both directions get the same impairment; --reverse-OPTION sets one for the way back.
  --loss P                  independent loss probability per datagram (0..1)
  --ge p,r,bad,good         Gilbert-Elliott burst loss: p good->bad, r bad->good,
                            loss probability in the bad and in the good state
  --delay-ms MS             one-way delay
  --jitter-ms MS            uniform jitter in [-MS, +MS] around the delay
  --jitter-reorder          let jitter reorder datagrams (default: keep order)
  --reorder P               probability of holding a datagram back by --reorder-ms
  --reorder-ms MS           how long a reordered datagram is held (default 10)
  --duplicate P             probability of sending a datagram twice
  --rate-mbps M             bandwidth cap, Mbit/s
  --queue-kb KB             queue in front of the cap, KiB (default 512)
  --pending-kb KB           bound on all datagrams in flight, KiB (default 65536)
  --seed N                  PRNG seed (default 1); same seed, same decisions
  --seconds S               stop after S seconds (default: run until Ctrl-C)
  --stats-every S           also print statistics every S seconds";

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["jitter-reorder"];

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    to: SocketAddr,
    forward: Config,
    reverse: Config,
    seed: u64,
    seconds: Option<f64>,
    stats_every: Option<f64>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let (mut listen, mut to, mut seed, mut seconds, mut stats_every) = (None, None, 1, None, None);
    // Link options are applied after the loop, shared ones first, so that
    // `--reverse-loss 0 --loss 0.1` means what it says whatever the order.
    let mut shared = Vec::new();
    let mut reverse = Vec::new();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .with_context(|| format!("unexpected argument {flag}\n\n{USAGE}"))?;
        if name == "help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = if SWITCHES.contains(&name.trim_start_matches("reverse-")) {
            "true".to_string()
        } else {
            it.next().with_context(|| format!("{flag} needs a value"))?
        };
        match name {
            "listen" => listen = Some(value.parse().context("--listen")?),
            "to" => to = Some(value.parse().context("--to")?),
            "seed" => seed = value.parse().context("--seed")?,
            "seconds" => seconds = Some(positive(&value).context("--seconds")?),
            "stats-every" => stats_every = Some(positive(&value).context("--stats-every")?),
            _ => match name.strip_prefix("reverse-") {
                Some(n) => reverse.push((n.to_string(), value)),
                None => shared.push((name.to_string(), value)),
            },
        }
    }
    let (mut forward, mut back) = (Config::default(), Config::default());
    for (name, value) in &shared {
        set(&mut forward, name, value)?;
        set(&mut back, name, value)?;
    }
    for (name, value) in &reverse {
        set(&mut back, name, value).with_context(|| format!("--reverse-{name}"))?;
    }
    Ok(Args {
        listen: listen.context("--listen is required")?,
        to: to.context("--to is required")?,
        forward,
        reverse: back,
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

fn millis(v: &str) -> Result<Duration> {
    let ms: f64 = v.parse()?;
    Duration::try_from_secs_f64(ms / 1000.0).with_context(|| format!("{v} ms is not a duration"))
}

fn kib(v: &str) -> Result<usize> {
    let k: usize = v.parse()?;
    k.checked_mul(1024).context("too large")
}

/// One link option into a direction's config. Probabilities are range-checked later,
/// by the model, with its own error.
fn set(cfg: &mut Config, name: &str, v: &str) -> Result<()> {
    match name {
        "loss" => cfg.loss = v.parse()?,
        "ge" => {
            let f: Vec<f64> = v
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .context("--ge takes p,r,bad_loss,good_loss")?;
            let [p, r, bad_loss, good_loss] = f[..] else {
                bail!("--ge takes four numbers: p,r,bad_loss,good_loss");
            };
            cfg.gilbert_elliott = Some(GilbertElliott {
                p,
                r,
                bad_loss,
                good_loss,
            });
        }
        "delay-ms" => cfg.delay = millis(v)?,
        "jitter-ms" => cfg.jitter = millis(v)?,
        "jitter-reorder" => cfg.jitter_may_reorder = true,
        "reorder" => cfg.reorder = v.parse()?,
        "reorder-ms" => cfg.reorder_hold = millis(v)?,
        "duplicate" => cfg.duplicate = v.parse()?,
        "rate-mbps" => cfg.rate_bps = Some((positive(v)? * 1e6).round() as u64),
        "queue-kb" => cfg.queue_bytes = kib(v)?,
        "pending-kb" => cfg.max_pending_bytes = kib(v)?,
        other => bail!("unknown option --{other}\n\n{USAGE}"),
    }
    Ok(())
}

/// One direction: the model plus what only the driver can see.
struct Direction {
    name: &'static str,
    model: Impairment,
    /// Sends the OS refused (e.g. the target's port is closed); the relay carries on.
    send_errors: u64,
}

impl Direction {
    fn report(&self, elapsed: Duration, done: bool) {
        let line =
            starling_bench::stats_line(self.name, done, elapsed, &self.model, self.send_errors);
        println!("{line}");
    }
}

/// A connected UDP socket reports an ICMP "port unreachable" from an earlier send on
/// its next call; that is the peer's state, not the relay's, so it is not fatal.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionReset | WouldBlock)
}

async fn run(args: Args) -> Result<()> {
    let listen = UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local: SocketAddr = if args.to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let upstream = UdpSocket::bind(local).await?;
    upstream
        .connect(args.to)
        .await
        .with_context(|| format!("connecting to {}", args.to))?;
    // The reverse seed differs so that the two directions do not lose in lockstep.
    let mut fwd = Direction {
        name: "forward",
        model: Impairment::new(args.forward, args.seed).context("forward settings")?,
        send_errors: 0,
    };
    let mut rev = Direction {
        name: "reverse",
        model: Impairment::new(args.reverse, args.seed ^ 0x9e37_79b9_7f4a_7c15)
            .context("reverse settings")?,
        send_errors: 0,
    };
    eprintln!(
        "udp-relay: listening on {}, relaying to {} from {}",
        listen.local_addr()?,
        args.to,
        upstream.local_addr()?
    );

    let start = Instant::now();
    let far_future = start + Duration::from_secs(100 * 365 * 86_400);
    let deadline = tokio::time::sleep_until(
        args.seconds
            .map_or(far_future, |s| start + Duration::from_secs_f64(s)),
    );
    let every = args.stats_every.map(Duration::from_secs_f64);
    let mut next_stats = every.map_or(far_future, |e| start + e);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(deadline, ctrl_c);
    // The sender is whoever spoke last on the listening socket.
    let mut peer: Option<SocketAddr> = None;
    let mut buf_in = vec![0u8; MAX_DATAGRAM];
    let mut buf_back = vec![0u8; MAX_DATAGRAM];

    loop {
        let next_release =
            Impairment::next_release(&fwd.model, &rev.model).map_or(far_future, |d| start + d);
        tokio::select! {
            r = listen.recv_from(&mut buf_in) => match r {
                Ok((n, from)) => {
                    peer = Some(from);
                    fwd.model.push(start.elapsed(), Bytes::copy_from_slice(&buf_in[..n]));
                }
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e).context("receiving from the sender"),
            },
            r = upstream.recv(&mut buf_back) => match r {
                Ok(n) => {
                    rev.model.push(start.elapsed(), Bytes::copy_from_slice(&buf_back[..n]));
                }
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e).context("receiving from the target"),
            },
            _ = tokio::time::sleep_until(next_release) => {}
            _ = tokio::time::sleep_until(next_stats) => {
                fwd.report(start.elapsed(), false);
                rev.report(start.elapsed(), false);
                if let Some(e) = every {
                    next_stats += e;
                }
            }
            _ = &mut deadline => break,
            r = &mut ctrl_c => {
                r.context("waiting for Ctrl-C")?;
                break;
            }
        }
        // Whatever woke us, send everything now due in both directions.
        let now = start.elapsed();
        while let Some(d) = fwd.model.poll(now) {
            if upstream.send(&d).await.is_err() {
                fwd.send_errors += 1;
            }
        }
        while let Some(d) = rev.model.poll(now) {
            // Replies can only come after the sender spoke, so `peer` is set.
            let sent = match peer {
                Some(p) => listen.send_to(&d, p).await.is_ok(),
                None => false,
            };
            if !sent {
                rev.send_errors += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    fwd.report(elapsed, true);
    rev.report(elapsed, true);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    run(args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn shared_options_apply_both_ways_and_reverse_ones_win_in_any_order() {
        let a = parse(
            "--reverse-loss 0 --listen 127.0.0.1:9000 --to 127.0.0.1:9001 --loss 0.1 \
             --delay-ms 50 --ge 0.01,0.25,1,0 --jitter-reorder --reverse-rate-mbps 2.5",
        )
        .expect("valid");
        assert_eq!(a.forward.loss, 0.1);
        assert_eq!(a.reverse.loss, 0.0);
        assert_eq!(a.forward.delay, Duration::from_millis(50));
        assert_eq!(a.reverse.delay, Duration::from_millis(50));
        assert!(a.forward.jitter_may_reorder && a.reverse.jitter_may_reorder);
        assert_eq!(a.forward.rate_bps, None);
        assert_eq!(a.reverse.rate_bps, Some(2_500_000));
        let ge = a.reverse.gilbert_elliott.expect("ge");
        assert_eq!(
            (ge.p, ge.r, ge.bad_loss, ge.good_loss),
            (0.01, 0.25, 1.0, 0.0)
        );
        assert_eq!(a.seed, 1);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let base = "--listen 127.0.0.1:9000 --to 127.0.0.1:9001";
        for extra in [
            "--ge 0.1,0.2,1",
            "--bogus 1",
            "--delay-ms -5",
            "--rate-mbps 0",
            "--seconds",
        ] {
            assert!(parse(&format!("{base} {extra}")).is_err(), "{extra}");
        }
        assert!(parse("--to 127.0.0.1:9001").is_err());
        // Out-of-range probabilities pass the parser and are refused by the model.
        let a = parse(&format!("{base} --loss 2")).expect("parses");
        assert!(Impairment::new(a.forward, 1).is_err());
    }
}
