//! Pulls: Starling calls a remote SRT listener (an encoder at a venue that only
//! listens) and publishes what it sends into a channel, reconnecting with backoff.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    thread,
    time::{Duration, Instant},
};

use starling_srt::Socket;
use tracing::{info, warn};

use crate::{publish, server::Shared};

/// One pull from a remote listener.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// The channel it publishes into (it replaces a live publisher: a pull is the
    /// channel's configured source).
    pub channel: String,
    pub remote: SocketAddr,
    /// The stream id to send, if the remote wants one.
    pub stream_id: Option<String>,
    pub passphrase: Option<String>,
    pub key_len: u8,
    pub latency: Duration,
}

/// Backoff between attempts: from 1 s, doubling to 30 s; back to 1 s after a connection
/// that lasted 10 s.
pub(crate) fn backoff(previous: Duration, lasted: Option<Duration>) -> Duration {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);
    match lasted {
        Some(l) if l >= Duration::from_secs(10) => FIRST,
        _ if previous.is_zero() => FIRST,
        _ => (previous * 2).min(MAX),
    }
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    pull: PullConfig,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("srt-pull-{}", pull.channel))
        .spawn(move || run(&shared, &pull))
}

fn run(shared: &Shared, pull: &PullConfig) {
    let mut delay = Duration::ZERO;
    let mut failures = 0u64;
    while !shared.shutting_down() {
        let started = Instant::now();
        let lasted = match connect(shared, pull) {
            Ok(socket) => {
                failures = 0;
                match shared.hub.publish(&pull.channel, true) {
                    Ok(publisher) => {
                        shared.stats.pulls.fetch_add(1, Ordering::Relaxed);
                        info!(channel = %pull.channel, remote = %pull.remote, "SRT pull connected");
                        let end = publish::receive(
                            shared,
                            socket,
                            pull.remote,
                            publisher,
                            "pull",
                            starling_media::SourceClock::Relative,
                        );
                        info!(channel = %pull.channel, remote = %pull.remote, ?end, "SRT pull ended");
                        Some(started.elapsed())
                    }
                    Err(e) => {
                        warn!(channel = %pull.channel, reason = %e, "SRT pull cannot publish");
                        None
                    }
                }
            }
            Err(e) => {
                failures += 1;
                shared.stats.pull_failures.fetch_add(1, Ordering::Relaxed);
                // Every attempt at first, then one line a minute's worth of attempts.
                if failures <= 3 || failures.is_multiple_of(10) {
                    warn!(channel = %pull.channel, remote = %pull.remote, error = %e, attempts = failures, "SRT pull failed to connect");
                }
                None
            }
        };
        delay = backoff(delay, lasted);
        let until = Instant::now() + delay;
        while Instant::now() < until && !shared.shutting_down() {
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn connect(shared: &Shared, pull: &PullConfig) -> Result<Socket, String> {
    let s = Socket::new().map_err(|e| e.to_string())?;
    let setup = || -> Result<(), starling_srt::SrtError> {
        s.set_latency(pull.latency)?;
        s.set_connect_timeout(Duration::from_secs(3))?;
        s.set_peer_idle_timeout(shared.config.peer_idle_timeout)?;
        s.size_receive_buffers(
            shared.config.max_bitrate_bps,
            pull.latency,
            shared.config.max_rtt,
        )?;
        if let Some(id) = &pull.stream_id {
            s.set_stream_id(id)?;
        }
        if let Some(p) = &pull.passphrase {
            s.set_passphrase(p, pull.key_len)?;
        }
        Ok(())
    };
    setup().map_err(|e| e.to_string())?;
    match s.connect(pull.remote) {
        Ok(()) => Ok(s),
        Err(e) if e.is_rejected() => Err(format!("refused: {}", s.reject_reason())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_good_connection() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..7 {
            d = backoff(d, None);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            backoff(d, Some(Duration::from_secs(2))),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(d, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
