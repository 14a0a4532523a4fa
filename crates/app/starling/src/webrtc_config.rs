//! The `[webrtc]` section: WHIP ingest and WHEP playback (docs/webrtc.md). The HTTP side
//! is on the main HTTP port; every session's media on one UDP port.

use std::{net::IpAddr, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::bail;
use serde::Deserialize;
use starling_webrtc_server::{IceServer, WebRtcConfig};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcSection {
    /// Serve `POST /whip/CHANNEL` and `POST /whep/CHANNEL`.
    pub enabled: bool,
    /// The UDP socket every session shares.
    pub udp_listen: SocketAddr,
    /// ICE-TCP on the same address and port number, for clients whose network blocks
    /// UDP.
    pub ice_tcp: bool,
    /// Offer UDP candidates (off: ICE-TCP only, for paths that carry TCP alone).
    pub ice_udp: bool,
    /// Addresses clients reach that socket at (cloud hosts behind 1:1 NAT: the public
    /// IP). Empty: the listen address if specific, else the default route's and loopback.
    pub public_ips: Vec<IpAddr>,
    /// STUN/TURN servers handed to clients (`Link` headers).
    pub ice_servers: Vec<IceServerEntry>,
    /// A session not connected by then is closed.
    pub connect_timeout_secs: u64,
    /// Sessions at once (publishers and viewers).
    pub max_sessions: usize,
    /// The ffmpeg (with libopus) that turns AAC into Opus for WHEP viewers, one child
    /// per watched channel (a name is looked up on PATH). Without it AAC sources play
    /// over WHEP without sound.
    pub ffmpeg: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IceServerEntry {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
}

impl Default for WebRtcSection {
    fn default() -> Self {
        let d = WebRtcConfig::default();
        Self {
            enabled: true,
            udp_listen: d.udp_bind,
            ice_tcp: d.tcp,
            ice_udp: d.udp_candidates,
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
            connect_timeout_secs: d.connect_timeout.as_secs(),
            max_sessions: d.max_sessions,
            ffmpeg: d.ffmpeg,
        }
    }
}

impl WebRtcSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.ice_udp && !self.ice_tcp {
            bail!("webrtc: ice_udp and ice_tcp are both off: clients could not connect at all (set enabled = false instead)");
        }
        if !(1..=300).contains(&self.connect_timeout_secs) {
            bail!("webrtc.connect_timeout_secs must be between 1 and 300");
        }
        if self.max_sessions == 0 {
            bail!("webrtc.max_sessions must be at least 1");
        }
        for s in &self.ice_servers {
            let scheme = s.url.split(':').next().unwrap_or("");
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
                bail!(
                    "webrtc.ice_servers: {:?} is not a stun:, stuns:, turn: or turns: URL",
                    s.url
                );
            }
            if s.url.contains(['<', '>', '"', '\r', '\n']) {
                bail!(
                    "webrtc.ice_servers: {:?} contains characters a Link header cannot carry",
                    s.url
                );
            }
            if s.username.is_some() != s.credential.is_some() {
                bail!(
                    "webrtc.ice_servers: {:?} needs both username and credential, or neither",
                    s.url
                );
            }
        }
        Ok(())
    }

    /// The STUN/TURN servers as the P2P tracker hands them to viewers.
    pub fn p2p_ice_servers(&self) -> Vec<starling_p2p::signal::IceServer> {
        self.ice_servers
            .iter()
            .map(|s| starling_p2p::signal::IceServer {
                urls: s.url.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect()
    }

    /// The server's settings. WHIP publishers are asked for a keyframe a little more
    /// often than once per `segment_duration` (nine tenths of it), so that the keyframe
    /// after each segment boundary comes soon after it even when a request takes a
    /// frame or two to be served: segments stay close to their nominal length.
    pub fn server_config(&self, segment_duration: Duration) -> WebRtcConfig {
        WebRtcConfig {
            keyframe_interval: segment_duration.mul_f64(0.9),
            udp_bind: self.udp_listen,
            tcp: self.ice_tcp,
            udp_candidates: self.ice_udp,
            public_ips: self.public_ips.clone(),
            ice_servers: self
                .ice_servers
                .iter()
                .map(|s| IceServer {
                    url: s.url.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            max_sessions: self.max_sessions,
            ffmpeg: self.ffmpeg.clone(),
        }
    }
}
