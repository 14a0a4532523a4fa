//! The relay between the two TUN devices of a [`Link`]: raw IP packets from one
//! namespace's device go through one [`Impairment`] per direction into the other's.
//! `ip-link` runs it as a program; tests that need TCP (RTMP) to cross the same lossy
//! link as SRT run it in a thread of their own.
//!
//! The decisions are the model's; this only owns the two file descriptors and one timer
//! (the earlier of the two models' next release).

use std::{
    fs::File,
    future::Future,
    io::{self, Read, Write},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::time::Instant;

use crate::{
    impair::{Config, ConfigError, Impairment},
    netns::{self, Link},
    stats_line,
};

/// Handshakes (TCP, RTMP's, SRT's) come in smaller packets than this, and media in
/// larger ones, so the first such packet marks when a sender started sending media: the
/// bench scripts and tests measure start-up and latency from it.
const LARGE: usize = 1000;

/// Why the relay stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunRelayError {
    #[error("the link's impairment: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
}

/// One direction: the model, and what the driver saw that the model cannot.
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

impl Direction {
    fn new(name: &'static str, cfg: Config, seed: u64) -> Result<Direction, ConfigError> {
        Ok(Direction {
            name,
            model: Impairment::new(cfg, seed)?,
            send_errors: 0,
            malformed: 0,
            first_large: None,
        })
    }

    /// The statistics line of `udp-relay`, plus `malformed` and
    /// `first_large_packet_unix_s`.
    fn stats(&self, elapsed: Duration, done: bool) -> serde_json::Value {
        let mut line = stats_line(self.name, done, elapsed, &self.model, self.send_errors);
        line["malformed"] = self.malformed.into();
        line["first_large_packet_unix_s"] = self
            .first_large
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .into();
        line
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

/// Relays between `link`'s devices, impaired by `cfg` both ways (forward A → B with
/// `seed`, reverse with a seed derived from it), until `stop` completes. Every
/// `stats_every`, and once at the end, `on_stats` gets one JSON line per direction
/// (`"final": true` on the last two). Must run on a runtime with IO and time enabled.
pub async fn relay(
    link: &Link,
    cfg: Config,
    seed: u64,
    stats_every: Option<Duration>,
    stop: impl Future<Output = ()>,
    mut on_stats: impl FnMut(serde_json::Value),
) -> Result<(), TunRelayError> {
    let io = |what| move |e| TunRelayError::Io(what, e);
    let [a, b] = &link.tun;
    let fd_a = netns::async_tun(a.try_clone().map_err(io("A's device"))?)
        .map_err(io("registering A's device"))?;
    let fd_b = netns::async_tun(b.try_clone().map_err(io("B's device"))?)
        .map_err(io("registering B's device"))?;
    // The reverse seed differs so that the two directions do not lose in lockstep
    // (the same derivation as udp-relay's).
    let mut fwd = Direction::new("forward", cfg.clone(), seed)?;
    let mut rev = Direction::new("reverse", cfg, seed ^ 0x9e37_79b9_7f4a_7c15)?;

    let start = Instant::now();
    let far_future = start + Duration::from_secs(100 * 365 * 86_400);
    let mut next_stats = stats_every.map_or(far_future, |e| start + e);
    tokio::pin!(stop);
    // Large enough for any packet a TUN device can hand out, whatever its MTU.
    let mut buf = vec![0u8; 65_536];

    loop {
        let next_release =
            Impairment::next_release(&fwd.model, &rev.model).map_or(far_future, |d| start + d);
        tokio::select! {
            r = fd_a.readable() => {
                let mut guard = r.map_err(io("waiting on A's device"))?;
                fwd.drain(a, &mut buf, start.elapsed()).map_err(io("reading A's device"))?;
                guard.clear_ready();
            }
            r = fd_b.readable() => {
                let mut guard = r.map_err(io("waiting on B's device"))?;
                rev.drain(b, &mut buf, start.elapsed()).map_err(io("reading B's device"))?;
                guard.clear_ready();
            }
            _ = tokio::time::sleep_until(next_release) => {}
            _ = tokio::time::sleep_until(next_stats) => {
                on_stats(fwd.stats(start.elapsed(), false));
                on_stats(rev.stats(start.elapsed(), false));
                if let Some(e) = stats_every {
                    next_stats += e;
                }
            }
            _ = &mut stop => break,
        }
        // Whatever woke us, send everything now due in both directions.
        let now = start.elapsed();
        fwd.release(b, now);
        rev.release(a, now);
    }
    let elapsed = start.elapsed();
    on_stats(fwd.stats(elapsed, true));
    on_stats(rev.stats(elapsed, true));
    Ok(())
}
