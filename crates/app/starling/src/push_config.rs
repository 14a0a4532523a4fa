//! The `[push]` section: push the channels packaged here to a remote Starling origin
//! over HTTP PUT (docs/push.md), so that ingest and packaging run on one machine and
//! the origin viewers reach on another.
//!
//! Keys are the remote's stream keys, one per channel, written in the file or named by
//! an environment variable (`{ env = "NEWS_PUSH_KEY" }`) so that they need not sit in
//! a file. A variable that is named but not set stops the start-up with its name.

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use anyhow::{bail, Context as _};
use serde::Deserialize;
use starling_push::{PlanConfig, PushConfig};

use crate::config::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushSection {
    /// The remote origin, `http://HOST:PORT`; empty: nothing is pushed.
    pub url: String,
    /// The remote's stream key per channel; a channel without one is not pushed.
    pub keys: BTreeMap<String, PushKey>,
    /// Segments each pushed media playlist lists; older ones are deleted on the remote.
    /// It is also a segment's budget: one not delivered within this many segment
    /// durations is dropped.
    pub window_segments: usize,
    /// Connecting to the remote, and one whole request.
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// How long a channel's push waits after the remote refused its key.
    pub refusal_pause_secs: u64,
}

/// A key in the file, or the name of the environment variable holding it.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PushKey {
    Inline(Secret),
    Env(EnvKey),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvKey {
    pub env: String,
}

impl std::fmt::Debug for PushKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushKey::Inline(s) => s.fmt(f),
            PushKey::Env(e) => write!(f, "{{ env = {:?} }}", e.env),
        }
    }
}

impl Default for PushSection {
    fn default() -> Self {
        let d = PushConfig::default();
        Self {
            url: String::new(),
            keys: BTreeMap::new(),
            window_segments: d.plan.window_segments,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            request_timeout_ms: d.request_timeout.as_millis() as u64,
            refusal_pause_secs: d.plan.refusal_pause.as_secs(),
        }
    }
}

impl PushSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.url.is_empty() && !self.url.starts_with("http://") {
            bail!("push.url must be http://HOST:PORT (got {:?})", self.url);
        }
        if !(3..=100).contains(&self.window_segments) {
            bail!("push.window_segments must be between 3 and 100");
        }
        if !(100..=60_000).contains(&self.connect_timeout_ms)
            || !(100..=600_000).contains(&self.request_timeout_ms)
        {
            bail!("push.connect_timeout_ms must be 100..=60000 and push.request_timeout_ms 100..=600000");
        }
        if !(1..=3600).contains(&self.refusal_pause_secs) {
            bail!("push.refusal_pause_secs must be between 1 and 3600");
        }
        for (channel, key) in &self.keys {
            if !crate::config::valid_channel_name(channel) {
                bail!("push.keys: {channel:?} is not a channel name (1-64 of a-z, A-Z, 0-9, '-' and '_')");
            }
            match key {
                PushKey::Inline(s) if s.get().is_none() => {
                    bail!("push.keys.{channel}: the key is empty")
                }
                PushKey::Env(e) if e.env.is_empty() => {
                    bail!("push.keys.{channel}: env names no variable")
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The pusher's configuration, with keys read from `env`; `None` when `url` is
    /// empty (no push). `segment_duration` is the origin's.
    pub fn push_config(
        &self,
        segment_duration: Duration,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<PushConfig>> {
        if self.url.is_empty() {
            return Ok(None);
        }
        let mut keys = HashMap::new();
        for (channel, key) in &self.keys {
            let key = match key {
                PushKey::Inline(s) => s.0.clone(),
                PushKey::Env(e) => env(&e.env).filter(|k| !k.is_empty()).with_context(|| {
                    format!(
                        "push.keys.{channel}: environment variable {} is not set",
                        e.env
                    )
                })?,
            };
            starling_rtmp_server::check_key_shape(&key)
                .map_err(|e| anyhow::anyhow!("push.keys.{channel}: {e}"))?;
            keys.insert(channel.clone(), key);
        }
        let d = PushConfig::default();
        let window = u32::try_from(self.window_segments).unwrap_or(100);
        Ok(Some(PushConfig {
            url: self.url.clone(),
            keys,
            plan: PlanConfig {
                window_segments: self.window_segments,
                segment_budget: segment_duration * window,
                refusal_pause: Duration::from_secs(self.refusal_pause_secs),
                ..d.plan
            },
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            ..d
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_come_from_the_file_or_the_environment() {
        let c: crate::config::Config = toml::from_str(
            r#"
            [push]
            url = "http://origin.internal:8080"
            window_segments = 6
            [push.keys]
            news = "news-remote-key-1"
            sports = { env = "SPORTS_PUSH_KEY" }
            "#,
        )
        .unwrap();
        c.push.validate().unwrap();
        // Debug never shows a key.
        assert!(!format!("{:?}", c.push).contains("news-remote-key-1"));
        let env = |n: &str| (n == "SPORTS_PUSH_KEY").then(|| "sports-remote-key".to_owned());
        let p = c
            .push
            .push_config(Duration::from_secs(2), env)
            .unwrap()
            .unwrap();
        assert_eq!(p.keys["news"], "news-remote-key-1");
        assert_eq!(p.keys["sports"], "sports-remote-key");
        assert_eq!(p.plan.segment_budget, Duration::from_secs(12));
        // A variable that is not set is an error that names it.
        let err = c
            .push
            .push_config(Duration::from_secs(2), |_| None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("SPORTS_PUSH_KEY"), "{err:#}");
        // No url: no push.
        let none = PushSection::default()
            .push_config(Duration::from_secs(2), |_| None)
            .unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn bad_sections_are_refused() {
        for bad in [
            "url = \"https://x\"",
            "url = \"http://x\"\nwindow_segments = 1",
            "url = \"http://x\"\n[push.keys]\n\"a/b\" = \"k-123456\"",
        ] {
            let c: crate::config::Config = toml::from_str(&format!("[push]\n{bad}")).unwrap();
            assert!(c.push.validate().is_err(), "{bad}");
        }
        // An unknown way to give a key does not parse.
        let c: Result<crate::config::Config, _> =
            toml::from_str("[push]\nurl = \"http://x\"\n[push.keys]\nnews = { file = \"k\" }");
        assert!(c.is_err());
    }
}
