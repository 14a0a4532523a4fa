//! The one typed config tree: built-in defaults, then the TOML file, then `STARLING_*`
//! environment variables, then command-line flags. Unknown keys are an error everywhere,
//! so a typo never silently falls back to a default. `starling.example.toml` documents
//! every key with its default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{bail, Context as _};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub rtmp: RtmpSection,
    pub srt: crate::srt_config::SrtSection,
    pub hub: HubSection,
    pub origin: OriginSection,
    pub control: ControlSection,
    pub webhooks: WebhooksSection,
    pub thumbnails: ThumbnailsSection,
    pub transcode: crate::transcode_config::TranscodeSection,
    pub store: crate::store_config::StoreSection,
    pub put: crate::put_config::PutSection,
    pub push: crate::push_config::PushSection,
    pub webrtc: crate::webrtc_config::WebRtcSection,
    pub edge: crate::edge_config::EdgeSection,
    pub cluster: crate::cluster_config::ClusterSection,
    pub p2p: crate::p2p_config::P2pSection,
    pub reframe: crate::reframe_config::ReframeSection,
    pub channels: Vec<ChannelConfig>,
}

/// Poster images of live channels (`/live/CHANNEL/thumb.jpg`), made with ffmpeg.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThumbnailsSection {
    /// Make them; without ffmpeg the node runs on and the thumbnail URLs say why.
    pub enabled: bool,
    /// The ffmpeg binary (a name is looked up on PATH).
    pub ffmpeg: PathBuf,
    /// How often each live channel's pictures are renewed (from its newest segment).
    pub interval_secs: u64,
    /// Widths of the poster and of the small picture (never upscaled; height follows).
    pub poster_width: u32,
    pub small_width: u32,
}

impl Default for ThumbnailsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            ffmpeg: PathBuf::from("ffmpeg"),
            interval_secs: 5,
            poster_width: 1280,
            small_width: 320,
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Allow webhook targets on loopback, private (RFC 1918, ULA), link-local and CGNAT
    /// addresses: for receivers inside the operator's own network. The cloud metadata
    /// service stays refused.
    pub allow_private_targets: bool,
    /// A PEM file of CA certificates trusted for `https://` targets besides the public
    /// roots (a private CA); empty for none.
    pub ca_file: PathBuf,
}

/// The control plane's database.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// `postgres://user:pass@host/db` for PostgreSQL; empty for SQLite in the data
    /// directory (`starling.db`).
    pub database_url: String,
}

impl std::fmt::Debug for ControlSection {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.database_url.split(':').next().unwrap_or("");
        f.debug_struct("ControlSection")
            .field("database_url", &format!("{scheme}:<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSection {
    /// Target segment duration D; segment n starts at n x D after the publish began
    /// (exactly so when the encoder's keyframe interval divides D).
    pub segment_duration_ms: u64,
    /// LL-HLS part duration (PART-TARGET).
    pub part_duration_ms: u64,
    /// How far back viewers can seek (sliding playlists list this much).
    pub dvr_window_secs: u64,
    /// Complete segments this young are served from memory (older ones, and the parts
    /// a playlist still lists of them, from the store). Unset: two segments, the least
    /// accepted. Segments not yet stored stay in memory whatever this says.
    pub memory_window_secs: Option<u64>,
    /// `sliding` (the last dvr_window) or `event` (everything since the publish began).
    pub playlist: PlaylistMode,
    /// A republish within this time after a publish ended continues the same live
    /// playlist (numbering goes on, a discontinuity marks the seam); only after it does
    /// the playlist get ENDLIST.
    pub reconnect_grace_ms: u64,
    /// Days a recording channel's sessions stay in the store (from their start); 0
    /// keeps them for ever.
    pub recording_retention_days: u64,
    /// Store reads (DVR, VOD) under way at once; more are shed with a 503 (0: no cap).
    pub max_store_reads: usize,
    /// The same per client address (0: no cap; behind a CDN all viewers share one).
    pub max_store_reads_per_client: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlaylistMode {
    Sliding,
    Event,
}

impl Default for OriginSection {
    fn default() -> Self {
        let d = starling_origin::OriginConfig::default();
        Self {
            segment_duration_ms: d.segment_duration.as_millis() as u64,
            part_duration_ms: d.part_duration.as_millis() as u64,
            dvr_window_secs: d.dvr_window.as_secs(),
            memory_window_secs: None,
            playlist: PlaylistMode::Sliding,
            reconnect_grace_ms: d.reconnect_grace.as_millis() as u64,
            recording_retention_days: 0,
            max_store_reads: d.max_store_reads,
            max_store_reads_per_client: d.max_store_reads_per_client,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// The roles this node runs: `all`, or some of `ingest`, `origin`, `edge`, `api`
    /// (docs/cluster.md).
    pub roles: String,
    /// HTTP (health, metrics; playback and API as they arrive) on one port.
    pub http_listen: SocketAddr,
    /// Where recordings, segments and the embedded database live.
    pub data_dir: PathBuf,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `starling=debug,info`. `RUST_LOG` wins if set.
    pub log_level: String,
    /// Seconds a client has to send a whole request head (from connecting, or from the
    /// first byte of the next request on a kept-alive connection).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress.
    pub idle_timeout_secs: u64,
    /// Simultaneous HTTP connections; more are closed at once.
    pub max_connections: usize,
    /// Simultaneous HTTP connections from one IP address.
    pub max_connections_per_address: usize,
    /// If set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    pub metrics_token: Secret,
    /// If set, `/metrics` is served on this address only (e.g. a private interface), not
    /// on `http_listen`.
    pub metrics_listen: Option<SocketAddr>,
}

/// A secret from the config: never printed by `Debug` (`check-config`, logs).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret, or None when it is empty (not set).
    pub fn get(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub handshake_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_message_bytes: usize,
    pub max_chunk_size: u32,
    pub out_chunk_size: u32,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_publishers: usize,
    pub max_players: usize,
    pub play_wait_timeout_secs: u64,
    pub max_partial_message_bytes: usize,
    pub max_amf_values: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubSection {
    pub queue_len: usize,
    pub gop_cache_max_bytes: usize,
    pub gop_cache_max_frames: usize,
    /// A backup encoder (`KEY?pipeline=backup`) takes over when the primary has sent
    /// nothing for this long (its connection dropping switches at once).
    pub failover_after_ms: u64,
}

/// A channel and the key that may publish to it (until the control plane owns both).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    pub stream_key: String,
    /// A new publish with this key replaces a live one instead of being refused.
    #[serde(default)]
    pub takeover: bool,
    /// Keep the channel's segments in the store after they leave the DVR window (a
    /// recording); without it they are deleted and disk use stays flat.
    #[serde(default)]
    pub recording: bool,
    /// AES passphrase SRT callers of this channel must use (10 to 79 printable ASCII
    /// characters); unset: `srt.passphrase`.
    #[serde(default)]
    pub srt_passphrase: Option<String>,
    /// The renditions it gets: `default` (unset: the `[transcode]` ladder), `source`
    /// (no transcoding), or some of the ladder's rungs (`720p,360p`).
    #[serde(default)]
    pub ladder: Option<String>,
    /// `standard` (HLS), `low` (LL-HLS, the default) or `realtime` (WebRTC for viewers
    /// that can, LL-HLS for the rest), as a control-plane channel's `latency_mode`.
    #[serde(default)]
    pub latency_mode: Option<String>,
    /// A vertical (9:16) window that follows the subject (docs/reframing.md); needs the
    /// channel's ladder (the analysis tap).
    #[serde(default)]
    pub reframe: bool,
    /// Which face leads when they do not all fit: `largest` (default) or `central`.
    #[serde(default)]
    pub reframe_subject: Option<String>,
    /// Highlight detection (docs/reframing.md); needs the channel's ladder.
    #[serde(default)]
    pub highlights: bool,
    /// `1` (default); higher finds more highlights, lower fewer (0.1 to 10).
    #[serde(default)]
    pub highlight_sensitivity: Option<f64>,
}

impl ChannelConfig {
    /// Its latency mode (checked by [`Config::validate`]; `low` when unset).
    pub fn latency_mode(&self) -> starling_control::LatencyMode {
        self.latency_mode
            .as_deref()
            .and_then(|m| starling_control::LatencyMode::parse(m).ok())
            .unwrap_or(starling_control::LatencyMode::Low)
    }
}

impl std::fmt::Debug for ChannelConfig {
    // Keys never reach a log, not even through a debug print of the config.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("stream_key", &"<redacted>")
            .field("takeover", &self.takeover)
            .field("recording", &self.recording)
            .field(
                "srt_passphrase",
                &self.srt_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("ladder", &self.ladder)
            .field("latency_mode", &self.latency_mode)
            .field("reframe", &self.reframe)
            .field("reframe_subject", &self.reframe_subject)
            .field("highlights", &self.highlights)
            .field("highlight_sensitivity", &self.highlight_sensitivity)
            .finish()
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            roles: "all".into(),
            http_listen: ([0, 0, 0, 0], 8080).into(),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 16384,
            max_connections_per_address: 512,
            metrics_token: Secret::default(),
            metrics_listen: None,
        }
    }
}

impl Default for RtmpSection {
    fn default() -> Self {
        let d = starling_rtmp_server::RtmpServerConfig::default();
        Self {
            enabled: true,
            listen: ([0, 0, 0, 0], 1935).into(),
            handshake_timeout_secs: d.handshake_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            max_message_bytes: d.max_message_len,
            max_chunk_size: d.max_chunk_size,
            out_chunk_size: d.out_chunk_size,
            max_connections: d.max_connections,
            max_connections_per_address: d.max_connections_per_address,
            max_publishers: d.max_publishers,
            max_players: d.max_players,
            play_wait_timeout_secs: d.play_wait_timeout.as_secs(),
            max_partial_message_bytes: d.max_partial_message_len,
            max_amf_values: d.max_amf_values,
        }
    }
}

impl Default for HubSection {
    fn default() -> Self {
        let d = starling_hub::HubConfig::default();
        Self {
            queue_len: d.queue_len,
            gop_cache_max_bytes: d.gop_cache_max_bytes,
            gop_cache_max_frames: d.gop_cache_max_frames,
            failover_after_ms: d.failover_after.as_millis() as u64,
        }
    }
}

/// Sections an environment variable may address: `STARLING_<SECTION>_<KEY>`.
const ENV_SECTIONS: [&str; 16] = [
    "server",
    "rtmp",
    "srt",
    "hub",
    "origin",
    "control",
    "webhooks",
    "thumbnails",
    "transcode",
    "store",
    "put",
    "push",
    "webrtc",
    "edge",
    "cluster",
    "p2p",
];
/// Variables with the prefix that are not config keys even though they look like one.
const ENV_NOT_KEYS: [&str; 1] = ["STARLING_CONFIG"];

impl Config {
    /// Defaults ← `file` (if any) ← `env` (pairs as from `std::env::vars`).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("STARLING_") else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            // Only variables naming a config section are config; others with the prefix
            // (STARLING_TEST_DATABASE_URL, STARLING_SKIP_*) belong to tools. Within a
            // section, an unknown key is an error like in the file.
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            if !ENV_SECTIONS.contains(&section) {
                continue;
            }
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                bail!("config: {section} must be a table");
            };
            section_table.insert(key.to_owned(), env_value(&value));
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration (file and STARLING_* environment)")?;
        config.validate()?;
        Ok(config)
    }

    /// The roles this node runs (`[server] roles`).
    pub fn roles(&self) -> anyhow::Result<crate::roles::Roles> {
        crate::roles::Roles::parse(&self.server.roles)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (i, ch) in self.channels.iter().enumerate() {
            if !valid_channel_name(&ch.name) {
                bail!(
                    "channels[{i}]: name {:?} must be 1-64 characters of a-z, A-Z, 0-9, '-' and '_'",
                    ch.name
                );
            }
            if let Err(e) = starling_rtmp_server::check_key_shape(&ch.stream_key) {
                bail!("channels[{i}] ({}): stream_key: {e}", ch.name);
            }
            if let Some(p) = &ch.srt_passphrase {
                crate::srt_config::check_passphrase(
                    &format!("channels[{i}] ({}): srt_passphrase", ch.name),
                    p,
                )?;
            }
            if ch.stream_key.len() < 8 {
                bail!(
                    "channels[{i}] ({}): stream_key must be at least 8 characters",
                    ch.name
                );
            }
            if !names.insert(&ch.name) {
                bail!("channels[{i}]: channel {:?} is defined twice", ch.name);
            }
            if let Some(l) = &ch.ladder {
                if l.is_empty()
                    || l.len() > 64
                    || !l
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b','))
                {
                    bail!(
                        "channels[{i}] ({}): ladder must be `default`, `source` or rung names such as `720p,360p` (1-64 of A-Z a-z 0-9 _ - ,)",
                        ch.name
                    );
                }
            }
            if let Some(m) = &ch.latency_mode {
                if starling_control::LatencyMode::parse(m).is_err() {
                    bail!(
                        "channels[{i}] ({}): latency_mode must be `standard`, `low`, `realtime` or `p2p`, not {m:?}",
                        ch.name
                    );
                }
            }
            crate::reframe_config::validate_channel(
                i,
                &ch.name,
                ch.reframe_subject.as_deref(),
                ch.highlight_sensitivity,
            )?;
            if !keys.insert(&ch.stream_key) {
                bail!(
                    "channels[{i}] ({}): stream_key is used by another channel",
                    ch.name
                );
            }
        }
        self.srt.validate()?;
        self.transcode.validate()?;
        self.store.validate()?;
        self.put.validate()?;
        self.push.validate()?;
        self.webrtc.validate()?;
        self.edge
            .validate(&self.roles()?, !self.cluster.nats_url.is_empty())?;
        self.cluster.validate()?;
        self.p2p.validate()?;
        self.reframe.validate()?;
        let t = &self.thumbnails;
        if !(1..=3600).contains(&t.interval_secs) {
            bail!("thumbnails.interval_secs must be between 1 and 3600");
        }
        if !(16..=7680).contains(&t.poster_width) || !(16..=7680).contains(&t.small_width) {
            bail!("thumbnails.poster_width and small_width must be between 16 and 7680 pixels");
        }
        if self.rtmp.max_message_bytes == 0 || self.rtmp.max_message_bytes > 256 << 20 {
            bail!("rtmp.max_message_bytes must be between 1 and 268435456");
        }
        if !(128..=(1 << 24)).contains(&self.rtmp.out_chunk_size) {
            bail!("rtmp.out_chunk_size must be between 128 and 16777216");
        }
        let r = &self.rtmp;
        if r.max_partial_message_bytes < r.max_message_bytes {
            bail!("rtmp.max_partial_message_bytes must be at least rtmp.max_message_bytes (or the largest message can never arrive)");
        }
        if r.max_players >= r.max_connections {
            bail!("rtmp.max_players must be below rtmp.max_connections, so that waiting players cannot lock publishers out");
        }
        if r.max_publishers == 0 || r.max_players == 0 || r.max_connections_per_address == 0 {
            bail!("rtmp.max_publishers, rtmp.max_players and rtmp.max_connections_per_address must be at least 1");
        }
        if r.max_amf_values < 16 {
            bail!("rtmp.max_amf_values must be at least 16 (a connect command needs a dozen)");
        }
        let s = &self.server;
        if s.max_connections == 0 || s.max_connections_per_address == 0 {
            bail!(
                "server.max_connections and server.max_connections_per_address must be at least 1"
            );
        }
        if s.header_read_timeout_secs == 0 || s.idle_timeout_secs == 0 {
            bail!(
                "server.header_read_timeout_secs and server.idle_timeout_secs must be at least 1"
            );
        }
        let o = &self.origin;
        if !(500..=30_000).contains(&o.segment_duration_ms) {
            bail!("origin.segment_duration_ms must be between 500 and 30000");
        }
        if !(100..=o.segment_duration_ms).contains(&o.part_duration_ms) {
            bail!("origin.part_duration_ms must be between 100 and origin.segment_duration_ms");
        }
        if o.memory_window_secs
            .is_some_and(|w| w.saturating_mul(1000) < 2 * o.segment_duration_ms)
        {
            bail!("origin.memory_window_secs must hold at least two segments");
        }
        if o.reconnect_grace_ms > 3_600_000 {
            bail!("origin.reconnect_grace_ms must be at most 3600000 (one hour)");
        }
        if let Some(t) = self.server.metrics_token.get() {
            // The token is compared as an HTTP header value: printable ASCII, no spaces.
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("server.metrics_token must be at least 16 printable ASCII characters without spaces");
            }
        }
        if !(100..=60_000).contains(&self.hub.failover_after_ms) {
            bail!("hub.failover_after_ms must be between 100 and 60000");
        }
        if self.hub.queue_len < 16 {
            bail!("hub.queue_len must be at least 16");
        }
        Ok(())
    }

    pub fn rtmp_server(&self) -> starling_rtmp_server::RtmpServerConfig {
        starling_rtmp_server::RtmpServerConfig {
            handshake_timeout: Duration::from_secs(self.rtmp.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(self.rtmp.idle_timeout_secs),
            max_message_len: self.rtmp.max_message_bytes,
            max_chunk_size: self.rtmp.max_chunk_size,
            out_chunk_size: self.rtmp.out_chunk_size,
            max_connections: self.rtmp.max_connections,
            max_connections_per_address: self.rtmp.max_connections_per_address,
            max_publishers: self.rtmp.max_publishers,
            max_players: self.rtmp.max_players,
            play_wait_timeout: Duration::from_secs(self.rtmp.play_wait_timeout_secs),
            max_partial_message_len: self.rtmp.max_partial_message_bytes,
            max_amf_values: self.rtmp.max_amf_values,
        }
    }

    pub fn http_limits(&self) -> crate::http_server::HttpLimits {
        let s = &self.server;
        crate::http_server::HttpLimits {
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            max_connections: s.max_connections,
            max_connections_per_address: s.max_connections_per_address,
        }
    }

    pub fn origin(&self) -> starling_origin::OriginConfig {
        let o = &self.origin;
        starling_origin::OriginConfig {
            segment_duration: Duration::from_millis(o.segment_duration_ms),
            part_duration: Duration::from_millis(o.part_duration_ms),
            dvr_window: Duration::from_secs(o.dvr_window_secs),
            memory_window: o.memory_window_secs.map_or_else(
                || {
                    starling_origin::OriginConfig::live_edge_window(Duration::from_millis(
                        o.segment_duration_ms,
                    ))
                },
                Duration::from_secs,
            ),
            playlist: match o.playlist {
                PlaylistMode::Sliding => starling_origin::PlaylistKind::Sliding,
                PlaylistMode::Event => starling_origin::PlaylistKind::Event,
            },
            reconnect_grace: Duration::from_millis(o.reconnect_grace_ms),
            // Recording is a channel's choice (`[[channels]] recording`, the control
            // plane's `recording`); the demo channel does not record.
            record: false,
            recording_retention: (o.recording_retention_days > 0)
                .then(|| Duration::from_secs(o.recording_retention_days.saturating_mul(86_400))),
            max_store_reads: o.max_store_reads,
            max_store_reads_per_client: o.max_store_reads_per_client,
        }
    }

    pub fn control(&self) -> starling_control::DbConfig {
        let mut c = starling_control::DbConfig::new(self.server.data_dir.clone());
        if !self.control.database_url.is_empty() {
            c.database_url = Some(self.control.database_url.clone());
        }
        c
    }

    /// The webhook target rules (shared by the API and the dispatcher).
    pub fn webhook_targets(&self) -> starling_webhooks::TargetPolicy {
        starling_webhooks::TargetPolicy {
            allow_private: self.webhooks.allow_private_targets,
        }
    }

    /// The dispatcher's settings, reading `[webhooks] ca_file` if set.
    pub fn webhook_dispatcher(&self) -> anyhow::Result<starling_webhooks::DispatcherConfig> {
        let mut cfg = starling_webhooks::DispatcherConfig {
            targets: self.webhook_targets(),
            ..Default::default()
        };
        let ca = &self.webhooks.ca_file;
        if !ca.as_os_str().is_empty() {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading webhooks.ca_file {}", ca.display()))?;
            cfg.extra_roots = starling_webhooks::parse_ca_pem(&pem)
                .with_context(|| format!("webhooks.ca_file {}", ca.display()))?;
        }
        Ok(cfg)
    }

    pub fn hub(&self) -> starling_hub::HubConfig {
        starling_hub::HubConfig {
            queue_len: self.hub.queue_len,
            gop_cache_max_bytes: self.hub.gop_cache_max_bytes,
            gop_cache_max_frames: self.hub.gop_cache_max_frames,
            failover_after: Duration::from_millis(self.hub.failover_after_ms),
        }
    }
}

/// Channel names appear in URLs and object keys: keep them to a safe alphabet.
pub fn valid_channel_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An env value is read as a TOML value when it parses as one (numbers, booleans,
/// quoted strings), else taken as a bare string (`0.0.0.0:1935`, `./data`).
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_config_is_the_defaults_plus_its_channels() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../starling.example.toml");
        let c = Config::load(Some(&path), []).unwrap();
        let expected = Config {
            channels: c.channels.clone(),
            ..Config::default()
        };
        assert_eq!(
            c, expected,
            "starling.example.toml must document the real defaults"
        );
        assert!(!c.channels.is_empty());
    }

    #[test]
    fn env_overrides_file_and_unknown_keys_are_errors() {
        let c = Config::load(
            None,
            env(&[
                ("STARLING_RTMP_LISTEN", "127.0.0.1:19350"),
                ("STARLING_RTMP_IDLE_TIMEOUT_SECS", "5"),
                ("STARLING_SERVER_LOG_FORMAT", "json"),
                ("STARLING_CONFIG", "ignored.toml"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rtmp.listen, "127.0.0.1:19350".parse().unwrap());
        assert_eq!(c.rtmp.idle_timeout_secs, 5);
        assert_eq!(c.server.log_format, LogFormat::Json);

        let err = Config::load(None, env(&[("STARLING_RTMP_LISTN", "x")])).unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
        // Other tools share the prefix: variables that name no section are not config.
        assert!(Config::load(
            None,
            env(&[("STARLING_TEST_DATABASE_URL", "x"), ("STARLING_X", "1")])
        )
        .is_ok());
    }

    #[test]
    fn roles_and_the_edge_section_come_from_the_environment_and_are_checked() {
        let c = Config::load(
            None,
            env(&[
                ("STARLING_SERVER_ROLES", "edge"),
                ("STARLING_EDGE_ORIGIN", "http://10.0.0.5:8080"),
                ("STARLING_EDGE_CACHE_MB", "64"),
            ]),
        )
        .unwrap();
        assert_eq!(c.roles().unwrap(), crate::roles::Roles::EDGE_ONLY);
        assert_eq!(c.edge.edge_config().cache_bytes, 64 << 20);
        for (pairs, needle) in [
            (
                vec![("STARLING_SERVER_ROLES", "edge")],
                "edge.origin must be set",
            ),
            (
                vec![("STARLING_EDGE_ORIGIN", "http://10.0.0.5:8080")],
                "for a node without the origin role",
            ),
            (
                vec![
                    ("STARLING_SERVER_ROLES", "edge"),
                    ("STARLING_EDGE_ORIGIN", "http://10.0.0.5:8080/live"),
                ],
                "must be http://HOST:PORT",
            ),
            (
                vec![("STARLING_SERVER_ROLES", "origin,cdn")],
                "unknown role \"cdn\"",
            ),
        ] {
            let err = format!("{:#}", Config::load(None, env(&pairs)).unwrap_err());
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn bad_channels_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("starling-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("name = \"../x\"\nstream_key = \"abcdefgh1\"", "name"),
            ("name = \"a\"\nstream_key = \"../../etc\"", "stream_key"),
            ("name = \"a\"\nstream_key = \"short\"", "at least 8"),
            (
                "name = \"a\"\nstream_key = \"abcdefgh1\"\ncolour = 1",
                "colour",
            ),
            (
                "name = \"a\"\nstream_key = \"abcdefgh1\"\nlatency_mode = \"webrtc\"",
                "latency_mode must be `standard`, `low`, `realtime` or `p2p`, not \"webrtc\"",
            ),
        ];
        for (i, (body, needle)) in cases.iter().enumerate() {
            let path = dir.join(format!("{i}.toml"));
            std::fs::write(&path, format!("[[channels]]\n{body}\n")).unwrap();
            let err = format!("{:#}", Config::load(Some(&path), []).unwrap_err());
            assert!(err.contains(needle), "case {i}: {err}");
        }
        let path = dir.join("dup.toml");
        std::fs::write(
            &path,
            "[[channels]]\nname='a'\nstream_key='abcdefgh1'\n[[channels]]\nname='b'\nstream_key='abcdefgh1'\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::load(Some(&path), []).unwrap_err());
        assert!(err.contains("used by another channel"), "{err}");
        assert!(
            !err.contains("abcdefgh1"),
            "a key leaked into an error: {err}"
        );
    }

    #[test]
    fn the_memory_window_follows_the_segment_duration_unless_set() {
        let c = Config::load(None, []).unwrap();
        assert_eq!(c.origin().memory_window, Duration::from_secs(4));
        let c = Config::load(
            None,
            env(&[("STARLING_ORIGIN_SEGMENT_DURATION_MS", "4000")]),
        )
        .unwrap();
        assert_eq!(c.origin().memory_window, Duration::from_secs(8));
        let c = Config::load(None, env(&[("STARLING_ORIGIN_MEMORY_WINDOW_SECS", "60")])).unwrap();
        assert_eq!(c.origin().memory_window, Duration::from_secs(60));
        let err =
            Config::load(None, env(&[("STARLING_ORIGIN_MEMORY_WINDOW_SECS", "3")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("at least two segments"),
            "{err:#}"
        );
    }

    #[test]
    fn limits_that_defeat_their_purpose_are_refused() {
        let cases = [
            (
                vec![("STARLING_RTMP_MAX_PLAYERS", "4096")],
                "max_players must be below",
            ),
            (
                vec![
                    ("STARLING_RTMP_MAX_MESSAGE_BYTES", "2000000"),
                    ("STARLING_RTMP_MAX_PARTIAL_MESSAGE_BYTES", "1000000"),
                ],
                "max_partial_message_bytes",
            ),
            (
                vec![("STARLING_RTMP_MAX_AMF_VALUES", "3")],
                "max_amf_values",
            ),
            (
                vec![("STARLING_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "0")],
                "server.max_connections",
            ),
            (
                vec![("STARLING_SERVER_HEADER_READ_TIMEOUT_SECS", "0")],
                "header_read_timeout_secs",
            ),
        ];
        for (vars, needle) in cases {
            let err = format!("{:#}", Config::load(None, env(&vars)).unwrap_err());
            assert!(err.contains(needle), "{vars:?}: {err}");
        }
        let c = Config::load(
            None,
            env(&[
                ("STARLING_SERVER_IDLE_TIMEOUT_SECS", "5"),
                ("STARLING_RTMP_PLAY_WAIT_TIMEOUT_SECS", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http_limits().idle_timeout, Duration::from_secs(5));
        assert_eq!(c.rtmp_server().play_wait_timeout, Duration::from_secs(7));
    }

    #[test]
    fn metrics_token_and_listen_parse_and_the_token_is_never_printed() {
        let c = Config::load(
            None,
            env(&[
                ("STARLING_SERVER_METRICS_TOKEN", "a-long-metrics-token-1"),
                ("STARLING_SERVER_METRICS_LISTEN", "127.0.0.1:9100"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.metrics_token.get(), Some("a-long-metrics-token-1"));
        assert_eq!(
            c.server.metrics_listen,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert!(!format!("{c:?}").contains("a-long-metrics-token-1"));
        assert_eq!(Config::default().server.metrics_token.get(), None);
        let err = Config::load(None, env(&[("STARLING_SERVER_METRICS_TOKEN", "short")]));
        assert!(format!("{:#}", err.unwrap_err()).contains("metrics_token"));
    }

    #[test]
    fn webhook_settings_reach_the_dispatcher() {
        let c = Config::default();
        assert!(
            !c.webhook_targets().allow_private,
            "private targets are refused by default"
        );
        assert!(c.webhook_dispatcher().unwrap().extra_roots.is_empty());
        let c = Config::load(
            None,
            env(&[
                ("STARLING_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true"),
                ("STARLING_WEBHOOKS_CA_FILE", "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap();
        assert!(c
            .webhook_dispatcher()
            .is_err_and(|e| format!("{e:#}").contains("webhooks.ca_file")));
        assert!(c.webhook_targets().allow_private);
        let dir = std::env::temp_dir().join(format!("starling-cfg-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let mut c = Config::default();
        c.webhooks.ca_file = not_pem;
        assert!(c.webhook_dispatcher().is_err());
    }

    #[test]
    fn debug_output_redacts_keys() {
        let c = ChannelConfig {
            name: "a".into(),
            stream_key: "secret-key-1".into(),
            takeover: false,
            recording: false,
            srt_passphrase: None,
            ladder: None,
            latency_mode: None,
            reframe: false,
            reframe_subject: None,
            highlights: false,
            highlight_sensitivity: None,
        };
        assert!(!format!("{c:?}").contains("secret-key-1"));
    }
}
