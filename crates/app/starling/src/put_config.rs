//! The `[put]` section: HTTP PUT ingest of segments and playlists from external
//! packagers (docs/put-ingest.md), and the hook through which the origin serves them.

use std::{sync::Arc, time::Duration};

use anyhow::{bail, Context};
use serde::Deserialize;
use starling_http_put::{
    check::check_channel,
    event::{parse_rfc3339, EventError},
    Answer, LiveEvent, PushConfig, PushIngest,
};
use starling_origin::http::{PushedFuture, PushedObject, PushedReply, PushedSource};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PutSection {
    /// Accept `PUT`/`DELETE /ingest/CHANNEL/...` with a stream key as Bearer.
    pub enabled: bool,
    /// Largest segment, part or init section.
    pub max_media_mb: u64,
    /// Largest playlist.
    pub max_playlist_kb: u64,
    /// Pushed bytes kept in memory per channel (older ones are read from the store).
    pub memory_mb_per_channel: u64,
    /// Pushed objects are deleted from the store this long after their PUT, unless a
    /// playlist in memory names them; 0 keeps them until the packager deletes them.
    pub retention_hours: u64,
    /// Live events of pushed channels (`[[put.events]]`, at most one per channel):
    /// requests outside an event's segment numbers are answered without a store read.
    pub events: Vec<PutEvent>,
}

/// One `[[put.events]]` entry (docs/put-ingest.md, "Live events").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PutEvent {
    pub channel: String,
    /// RFC 3339, e.g. `2026-05-01T18:00:00Z`.
    pub availability_start: String,
    pub segment_duration_ms: u64,
    /// The number of the segment starting at `availability_start`; default: its slot on
    /// the epoch grid, `floor(availability_start_ms / segment_duration_ms)`.
    #[serde(default)]
    pub first_segment: Option<u64>,
    /// RFC 3339; no segment starts at or after it.
    #[serde(default)]
    pub end: Option<String>,
}

impl PutEvent {
    pub fn event(&self) -> Result<LiveEvent, EventError> {
        let start = parse_rfc3339(&self.availability_start)?;
        let end = self.end.as_deref().map(parse_rfc3339).transpose()?;
        LiveEvent::new(start, self.segment_duration_ms, self.first_segment, end)
    }
}

impl Default for PutSection {
    fn default() -> Self {
        let d = PushConfig::default();
        Self {
            enabled: true,
            max_media_mb: (d.max_media_bytes >> 20) as u64,
            max_playlist_kb: (d.max_playlist_bytes >> 10) as u64,
            memory_mb_per_channel: (d.max_channel_bytes >> 20) as u64,
            retention_hours: d.retention.map_or(0, |r| r.as_secs() / 3600),
            events: Vec::new(),
        }
    }
}

impl PutSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=1024).contains(&self.max_media_mb) {
            bail!("put.max_media_mb must be between 1 and 1024");
        }
        if !(1..=16 * 1024).contains(&self.max_playlist_kb) {
            bail!("put.max_playlist_kb must be between 1 and 16384");
        }
        if self.memory_mb_per_channel < self.max_media_mb {
            bail!("put.memory_mb_per_channel must hold at least one object of put.max_media_mb");
        }
        if self.retention_hours > 24 * 365 * 100 {
            bail!("put.retention_hours must be at most 876000 (100 years); 0 keeps pushed objects");
        }
        let mut channels = std::collections::HashSet::new();
        for (i, e) in self.events.iter().enumerate() {
            if let Err(err) = check_channel(&e.channel) {
                bail!("put.events[{i}]: {err}");
            }
            if !channels.insert(&e.channel) {
                bail!(
                    "put.events[{i}]: channel {:?} has an event already",
                    e.channel
                );
            }
            e.event()
                .with_context(|| format!("put.events[{i}] ({})", e.channel))?;
        }
        Ok(())
    }

    pub fn push_config(&self) -> PushConfig {
        let mb = |v: u64| usize::try_from(v << 20).unwrap_or(usize::MAX);
        PushConfig {
            max_media_bytes: mb(self.max_media_mb),
            max_playlist_bytes: usize::try_from(self.max_playlist_kb << 10).unwrap_or(usize::MAX),
            max_channel_bytes: mb(self.memory_mb_per_channel),
            retention: (self.retention_hours > 0)
                .then(|| Duration::from_secs(self.retention_hours.saturating_mul(3600))),
            // Checked by `validate`.
            events: self
                .events
                .iter()
                .filter_map(|e| Some((e.channel.clone(), e.event().ok()?)))
                .collect(),
            ..PushConfig::default()
        }
    }
}

/// The origin's view of pushed objects.
pub struct Pushed(pub Arc<PushIngest>);

impl PushedSource for Pushed {
    // A channel nobody pushed to since this process started is not consulted (what
    // cannot exist is answered from memory); its pushed objects from before a restart
    // are read once it is pushed to again.
    fn knows(&self, channel: &str) -> bool {
        self.0.knows(channel)
    }

    fn get<'a>(&'a self, channel: &'a str, path: &'a str) -> PushedFuture<'a> {
        Box::pin(async move {
            // A request for the segment a pushed playlist names next waits here until it
            // is uploaded (at most 1.5 target durations, 6 s); one past that is `None`
            // at once, with no store read (docs/put-ingest.md, "The live edge"), and so
            // is a number outside the channel's live event ("Live events").
            match self.0.answer(channel, path).await {
                Answer::Found(o) => PushedReply::Object(PushedObject {
                    body: o.body,
                    content_type: o.content_type,
                    cache_control: o.cache_control,
                }),
                Answer::NotYet { max_age } => PushedReply::NotYet { max_age },
                Answer::Gone { max_age } => PushedReply::Gone { max_age },
                _ => PushedReply::Missing,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = std::env::temp_dir().join(format!("starling-put-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}.toml"));
        std::fs::write(&path, toml)?;
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::load(Some(&path), env);
        let _ = std::fs::remove_file(&path);
        c
    }

    #[test]
    fn retention_defaults_to_a_week_and_zero_keeps_everything() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.put.retention_hours, 168);
        assert_eq!(
            c.put.push_config().retention,
            Some(Duration::from_secs(7 * 86_400))
        );
        let c = load("", &[("STARLING_PUT_RETENTION_HOURS", "0")]).unwrap();
        assert_eq!(c.put.push_config().retention, None);
        let c = load("[put]\nretention_hours = 2\n", &[]).unwrap();
        assert_eq!(
            c.put.push_config().retention,
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn events_are_read_and_checked() {
        let c = load(
            "[[put.events]]\nchannel = \"news\"\navailability_start = \"2026-05-01T18:00:00Z\"\n\
             segment_duration_ms = 2000\nend = \"2026-05-01T20:00:00Z\"\n\
             [[put.events]]\nchannel = \"ffmpeg\"\navailability_start = \"2026-05-01T18:00:00Z\"\n\
             segment_duration_ms = 2000\nfirst_segment = 1777658400\n",
            &[],
        )
        .unwrap();
        let events = c.put.push_config().events;
        let news = events["news"];
        assert_eq!(news.first_segment(), 1_777_658_400_000 / 2000);
        assert_eq!(news.last_segment(), Some(news.first_segment() + 3599));
        assert_eq!(events["ffmpeg"].first_segment(), 1_777_658_400);
        let ev = |body: &str| {
            format!("[[put.events]]\nchannel = \"news\"\nsegment_duration_ms = 2000\n{body}\n")
        };
        for (body, needle) in [
            (ev("availability_start = \"tomorrow\""), "RFC 3339"),
            (
                ev("availability_start = \"2026-05-01T18:00:00Z\"\nend = \"2026-05-01T17:00:00Z\""),
                "not after",
            ),
            (
                ev("availability_start = \"2026-05-01T18:00:00Z\"\ncolour = 1"),
                "colour",
            ),
            (
                format!(
                    "{}{}",
                    ev("availability_start = \"2026-05-01T18:00:00Z\""),
                    ev("availability_start = \"2026-05-01T18:00:00Z\"")
                ),
                "has an event already",
            ),
            (
                ev("availability_start = \"2026-05-01T18:00:00Z\"").replace("news", "../x"),
                "put.events[0]",
            ),
        ] {
            let err = format!("{:#}", load(&body, &[]).unwrap_err());
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
