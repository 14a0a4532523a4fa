//! The SRT server: the driver around the [`starling_srt`] binding.
//!
//! - `server`: the listener, its handshake hook (stream id, caps, keys, tokens,
//!   passphrases; refusals carry an SRT rejection code) and the accept loop;
//! - `publish`: a publisher's messages through the MPEG-TS demuxer into the hub;
//! - `play`: a channel from the hub through the MPEG-TS muxer to an `m=request` caller;
//! - `pull`: Starling as the caller, publishing what a remote listener sends;
//! - `links`: each live link's statistics, for the API and `/metrics`.
//!
//! libsrt's calls block, so each connection has a thread of its own (a publisher's
//! thread reads, demuxes and hands frames to the hub, which never waits); the async
//! control plane is reached through the runtime's handle. Stream keys and tokens are
//! never logged.

mod links;
mod play;
mod publish;
mod pull;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};

pub use links::{LinkInfo, Links};
pub use pull::PullConfig;
pub use server::{serve, Passphrases, SrtServer, SrtServerConfig, APP};
pub use starling_ingest_auth::SrtPassphrase;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted (after a granted handshake).
    pub connections: AtomicU64,
    /// Handshakes refused, for any reason.
    pub refused: AtomicU64,
    pub bad_stream_ids: AtomicU64,
    pub publishes: AtomicU64,
    pub publishes_refused: AtomicU64,
    pub plays: AtomicU64,
    pub plays_refused: AtomicU64,
    pub play_wait_timeouts: AtomicU64,
    pub pulls: AtomicU64,
    pub pull_failures: AtomicU64,
    /// Demuxer errors (damaged TS: each names its cause in the log) and muxer errors.
    pub media_errors: AtomicU64,
}

impl ServerStats {
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rows = [
            (
                "starling_srt_connections_total",
                "SRT connections accepted.",
                &self.connections,
            ),
            (
                "starling_srt_handshakes_refused_total",
                "SRT handshakes refused.",
                &self.refused,
            ),
            (
                "starling_srt_bad_stream_ids_total",
                "SRT connections refused for a malformed stream id.",
                &self.bad_stream_ids,
            ),
            (
                "starling_srt_publishes_total",
                "SRT publishes started.",
                &self.publishes,
            ),
            (
                "starling_srt_publishes_refused_total",
                "SRT publishes refused.",
                &self.publishes_refused,
            ),
            (
                "starling_srt_plays_total",
                "SRT plays started.",
                &self.plays,
            ),
            (
                "starling_srt_plays_refused_total",
                "SRT plays refused.",
                &self.plays_refused,
            ),
            (
                "starling_srt_play_wait_timeouts_total",
                "SRT plays ended because the channel did not go live in time.",
                &self.play_wait_timeouts,
            ),
            (
                "starling_srt_pulls_total",
                "SRT pulls connected.",
                &self.pulls,
            ),
            (
                "starling_srt_pull_failures_total",
                "SRT pull attempts that failed.",
                &self.pull_failures,
            ),
            (
                "starling_srt_media_errors_total",
                "SRT payloads that could not be read as MPEG-TS media.",
                &self.media_errors,
            ),
        ];
        for (name, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
