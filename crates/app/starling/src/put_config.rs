//! The `[put]` section: HTTP PUT ingest of segments and playlists from external
//! packagers (docs/put-ingest.md), and the hook through which the origin serves them.

use std::sync::Arc;

use anyhow::bail;
use serde::Deserialize;
use starling_http_put::{PushConfig, PushIngest};
use starling_origin::http::{PushedFuture, PushedObject, PushedSource};

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
}

impl Default for PutSection {
    fn default() -> Self {
        let d = PushConfig::default();
        Self {
            enabled: true,
            max_media_mb: (d.max_media_bytes >> 20) as u64,
            max_playlist_kb: (d.max_playlist_bytes >> 10) as u64,
            memory_mb_per_channel: (d.max_channel_bytes >> 20) as u64,
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
        Ok(())
    }

    pub fn push_config(&self) -> PushConfig {
        let mb = |v: u64| usize::try_from(v << 20).unwrap_or(usize::MAX);
        PushConfig {
            max_media_bytes: mb(self.max_media_mb),
            max_playlist_bytes: usize::try_from(self.max_playlist_kb << 10).unwrap_or(usize::MAX),
            max_channel_bytes: mb(self.memory_mb_per_channel),
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
            // at once, with no store read (docs/put-ingest.md, "The live edge").
            let o = self.0.get(channel, path).await?;
            Some(PushedObject {
                body: o.body,
                content_type: o.content_type,
                cache_control: o.cache_control,
            })
        })
    }
}
