//! `p2p-peers`: headless P2P viewers of one channel (`starling_bench::p2p_peers`: the
//! watch page's protocol over str0m data channels), for load: Chromium cannot run a
//! hundred tabs on two cores. Prints one JSON line at the end (offload, rebuffering,
//! startup, bad pieces, boosts).
//!
//! Usage: p2p-peers --http 127.0.0.1:8080 --channel demo [--peers 100] [--seconds 300]
//!        [--rendition source] [--sync 8] [--token T] [--no-p2p] [--join-every-ms 200]

use std::time::Duration;

use anyhow::{bail, Result};
use starling_bench::{args::Flags, p2p_peers::Args};

fn parse_args() -> Result<Args> {
    let mut a = Args {
        http: "127.0.0.1:8080".parse()?,
        channel: "demo".into(),
        rendition: "source".into(),
        peers: 100,
        seconds: 300,
        sync: 8.0,
        token: None,
        p2p: true,
        join_every: Duration::from_millis(200),
    };
    let mut flags = Flags::from_env();
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--http" => a.http = flags.parsed()?,
            "--channel" => a.channel = flags.value()?,
            "--rendition" => a.rendition = flags.value()?,
            "--peers" => a.peers = flags.parsed()?,
            "--seconds" => a.seconds = flags.parsed()?,
            "--sync" => a.sync = flags.parsed()?,
            "--token" => a.token = Some(flags.value()?),
            "--no-p2p" => a.p2p = false,
            "--join-every-ms" => a.join_every = Duration::from_millis(flags.parsed()?),
            other => bail!("unknown flag {other} (see the usage in bench/src/bin/p2p-peers.rs)"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<()> {
    let report = starling_bench::p2p_peers::run(parse_args()?).await?;
    println!("{report}");
    Ok(())
}
