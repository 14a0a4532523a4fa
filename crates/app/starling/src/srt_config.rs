//! The `[srt]` section of the config: the listener, its limits, the node's default
//! passphrase, and pulls from remote listeners (`[[srt.pull]]`).

use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use serde::Deserialize;

use crate::config::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SrtSection {
    pub enabled: bool,
    /// UDP address of the listener.
    pub listen: SocketAddr,
    /// The latency this server asks for (the floor: SRT takes the larger side's value).
    /// Lossy links need about 4 x RTT; see docs/srt.md.
    pub latency_ms: u64,
    /// Callers whose latency would exceed this are disconnected.
    pub max_latency_ms: u64,
    /// A link silent for this long is broken; a killed sender ends its stream here.
    pub peer_idle_timeout_ms: u64,
    /// The highest contribution bitrate receive buffers are sized for.
    pub max_bitrate_mbps: u64,
    pub max_publishers: usize,
    pub max_players: usize,
    pub max_connections_per_address: usize,
    /// How long a handshake waits for the control plane to check a key or token.
    pub auth_timeout_ms: u64,
    pub play_wait_timeout_secs: u64,
    /// AES passphrase for channels without their own (`channels[].srt_passphrase`);
    /// empty: unencrypted. 10 to 79 printable ASCII characters.
    pub passphrase: Secret,
    /// AES key length for that passphrase: 16, 24 or 32 bytes (0: the caller's choice).
    pub pbkeylen: u8,
    pub pull: Vec<SrtPull>,
}

/// A channel pulled from a remote SRT listener.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SrtPull {
    pub channel: String,
    /// `host:port` of the remote listener (an IP address).
    pub remote: SocketAddr,
    #[serde(default)]
    pub stream_id: Option<String>,
    #[serde(default)]
    pub passphrase: Option<String>,
    #[serde(default)]
    pub pbkeylen: u8,
    #[serde(default = "default_pull_latency")]
    pub latency_ms: u64,
}

fn default_pull_latency() -> u64 {
    SrtSection::default().latency_ms
}

impl std::fmt::Debug for SrtPull {
    // The stream id may carry a key and the passphrase is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtPull")
            .field("channel", &self.channel)
            .field("remote", &self.remote)
            .field("stream_id", &self.stream_id.as_ref().map(|_| "<redacted>"))
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("latency_ms", &self.latency_ms)
            .finish()
    }
}

impl Default for SrtSection {
    fn default() -> Self {
        let d = starling_srt_server::SrtServerConfig::default();
        Self {
            enabled: true,
            listen: d.listen,
            latency_ms: d.latency.as_millis() as u64,
            max_latency_ms: d.max_latency.as_millis() as u64,
            peer_idle_timeout_ms: d.peer_idle_timeout.as_millis() as u64,
            max_bitrate_mbps: d.max_bitrate_bps / 1_000_000,
            max_publishers: d.max_publishers,
            max_players: d.max_players,
            max_connections_per_address: d.max_connections_per_address,
            auth_timeout_ms: d.auth_timeout.as_millis() as u64,
            play_wait_timeout_secs: d.play_wait_timeout.as_secs(),
            passphrase: Secret::default(),
            pbkeylen: 16,
            pull: Vec::new(),
        }
    }
}

/// libsrt's limits on a passphrase, checked as the control plane checks its channels'
/// (one validator: a passphrase the config file takes, the API takes too).
pub fn check_passphrase(what: &str, p: &str) -> anyhow::Result<()> {
    if let Err(e) = starling_control::validate::srt_passphrase("passphrase", p) {
        bail!(
            "{what}: an SRT passphrase must be 10 to 79 printable ASCII characters ({})",
            e.problem
        );
    }
    Ok(())
}

pub fn check_key_len(what: &str, n: u8) -> anyhow::Result<()> {
    // 0 is the config file's own: the caller chooses (the API has no such value).
    if n != 0 && starling_control::validate::srt_pbkeylen("pbkeylen", i64::from(n)).is_err() {
        bail!("{what}: pbkeylen must be 16, 24 or 32 (or 0: the caller's choice)");
    }
    Ok(())
}

impl SrtSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(20..=8000).contains(&self.latency_ms) {
            bail!("srt.latency_ms must be between 20 and 8000");
        }
        if self.max_latency_ms < self.latency_ms || self.max_latency_ms > 30_000 {
            bail!("srt.max_latency_ms must be at least srt.latency_ms and at most 30000");
        }
        if self.peer_idle_timeout_ms < 1000 {
            bail!("srt.peer_idle_timeout_ms must be at least 1000");
        }
        if !(1..=1000).contains(&self.max_bitrate_mbps) {
            bail!("srt.max_bitrate_mbps must be between 1 and 1000");
        }
        if self.max_publishers == 0
            || self.max_players == 0
            || self.max_connections_per_address == 0
        {
            bail!("srt.max_publishers, srt.max_players and srt.max_connections_per_address must be at least 1");
        }
        if let Some(p) = self.passphrase.get() {
            check_passphrase("srt.passphrase", p)?;
        }
        check_key_len("srt.pbkeylen", self.pbkeylen)?;
        for (i, p) in self.pull.iter().enumerate() {
            if !crate::config::valid_channel_name(&p.channel) {
                bail!(
                    "srt.pull[{i}]: channel {:?} is not a valid channel name",
                    p.channel
                );
            }
            if let Some(pass) = &p.passphrase {
                check_passphrase(&format!("srt.pull[{i}].passphrase"), pass)?;
            }
            check_key_len(&format!("srt.pull[{i}].pbkeylen"), p.pbkeylen)?;
            if let Some(id) = &p.stream_id {
                if id.len() > starling_srt::streamid::MAX_STREAM_ID_LEN {
                    bail!("srt.pull[{i}].stream_id is longer than 512 bytes");
                }
            }
        }
        Ok(())
    }

    pub fn server_config(&self) -> starling_srt_server::SrtServerConfig {
        let d = starling_srt_server::SrtServerConfig::default();
        starling_srt_server::SrtServerConfig {
            listen: self.listen,
            latency: Duration::from_millis(self.latency_ms),
            max_latency: Duration::from_millis(self.max_latency_ms),
            peer_idle_timeout: Duration::from_millis(self.peer_idle_timeout_ms),
            max_bitrate_bps: self.max_bitrate_mbps * 1_000_000,
            max_rtt: d.max_rtt,
            max_publishers: self.max_publishers,
            max_players: self.max_players,
            max_connections_per_address: self.max_connections_per_address,
            auth_timeout: Duration::from_millis(self.auth_timeout_ms),
            play_wait_timeout: Duration::from_secs(self.play_wait_timeout_secs),
            pulls: self
                .pull
                .iter()
                .map(|p| starling_srt_server::PullConfig {
                    channel: p.channel.clone(),
                    remote: p.remote,
                    stream_id: p.stream_id.clone(),
                    passphrase: p.passphrase.clone(),
                    key_len: p.pbkeylen,
                    latency: Duration::from_millis(p.latency_ms),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrases_are_checked_as_the_control_plane_checks_them() {
        check_passphrase("srt.passphrase", "ten chars!").unwrap();
        for (bad, says) in [
            ("short", "minimum of 10"),
            (&*"p".repeat(80), "limit of 79"),
            ("caf\u{e9} passphrase", "printable ASCII"),
        ] {
            let e = check_passphrase("channels[0] (news): srt_passphrase", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("channels[0] (news): srt_passphrase:"), "{e}");
            assert!(e.contains(says), "{e}");
            assert!(!e.contains(bad), "the passphrase is echoed: {e}");
        }
        for n in [0, 16, 24, 32] {
            check_key_len("srt.pbkeylen", n).unwrap();
        }
        assert!(check_key_len("srt.pbkeylen", 20).is_err());
    }
}
