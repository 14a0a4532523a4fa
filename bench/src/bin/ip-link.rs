//! `ip-link`: an impaired IP link between two network namespaces, for TCP and UDP alike.
//!
//! `udp-relay` impairs UDP only, so RTMP (TCP) could not cross the link SRT crossed.
//! This creates namespaces A and B (`--ns A,B`), each with one TUN device holding
//! 10.77.0.1/30 (A) or 10.77.0.2/30 (B), and relays the raw IP packets between the two
//! devices through one [`starling_bench::impair::Impairment`] per direction: forward
//! is A → B, reverse B → A. Programs started with `ip netns exec A …` then reach
//! `ip netns exec B …` at 10.77.0.2 over the impaired link, whatever their protocol.
//! The relay itself is [`starling_bench::tun_relay`]; this file parses the options,
//! owns the namespaces and stops on a deadline or a signal.
//!
//! Prints one JSON line of statistics per direction (the same fields as `udp-relay`'s,
//! plus `malformed` and `first_large_packet_unix_s`) at the end (`--seconds`, SIGINT or SIGTERM) and every `--stats-every` seconds if
//! asked; a line on stderr once both namespaces are up, which is what scripts and tests
//! wait for. The namespaces are deleted on the way out.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use starling_bench::{
    impair::Config,
    netns::{self, Link},
    tun_relay,
};
use tokio::signal::unix::{signal, SignalKind};

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

/// SIGINT and SIGTERM, listened for from before the link exists.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

async fn run(args: Args, link: &Link, signals: &mut Signals) -> Result<()> {
    let [na, nb] = &link.names;
    eprintln!(
        "ip-link: up: {na} ({}) <-> {nb} ({}), RTT {} ms, loss {} each way, seed {}",
        netns::ADDR_A,
        netns::ADDR_B,
        args.link.delay.as_secs_f64() * 2000.0,
        args.link.loss,
        args.seed
    );
    let stop = async {
        let deadline = args.seconds.map(Duration::from_secs_f64);
        tokio::select! {
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = signals.int.recv() => {}
            _ = signals.term.recv() => {}
        }
    };
    tun_relay::relay(
        link,
        args.link,
        args.seed,
        args.stats_every.map(Duration::from_secs_f64),
        stop,
        |line| println!("{line}"),
    )
    .await?;
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
