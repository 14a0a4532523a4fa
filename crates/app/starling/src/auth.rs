//! Publish/play authorisation: stream keys from the control plane's database (per device,
//! hashed, revocable), plus the config file's `[[channels]]` for nodes run from a file.
//! Revoking a key stops its live publish on every node: at once over NATS in a cluster
//! (`[cluster]`), else within a second from the database.
//!
//! In a cluster, a publish also claims its channel's lease (`starling-cluster`): one live
//! ingest per channel cluster-wide. Another node's channel is refused, or taken over when
//! the channel's rule is takeover; a lease found held elsewhere ends the publish here.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use starling_control::{ControlError, Db, Visibility};
use starling_hub::Hub;
use starling_origin::Origin;
use starling_rtmp_server::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};
use tracing::{debug, warn};

use crate::{config::ChannelConfig, playback_gate::DbPlaybackGate};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The node's SRT defaults (`[srt] passphrase`, `pbkeylen`), for the authorizer.
#[derive(Debug, Clone)]
pub struct SrtDefaults {
    /// The node's default passphrase and its key length.
    pub passphrase: Option<(String, u8)>,
    /// The key length for channels' own passphrases that do not name one.
    pub pbkeylen: u8,
}

/// The node's authorizer: config-file channels first, then the control plane.
pub struct NodeAuthorizer {
    config: ConfigAuthorizer,
    db: Db,
    /// Play lookups go through the playback gate's cache of channel visibility.
    gate: Arc<DbPlaybackGate>,
    hub: Arc<Hub>,
    origin: Arc<Origin>,
    /// The node's default SRT passphrase and key length (`srt.passphrase`).
    srt_default: Option<(String, u8)>,
    /// The node's key length (`srt.pbkeylen`), for channels' own passphrases that do not
    /// name one.
    srt_pbkeylen: u8,
    /// Live publishes on this node by key id, to stop them when their key is revoked and
    /// to mark their device idle when they end.
    live: Mutex<HashMap<String, (starling_control::PublishGrant, usize)>>,
    /// The cluster this node is part of (`[cluster] nats_url`), if any.
    cluster: Option<Arc<starling_cluster::Cluster>>,
}

impl std::fmt::Debug for NodeAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuthorizer").finish_non_exhaustive()
    }
}

impl NodeAuthorizer {
    pub fn new(
        channels: Vec<ChannelConfig>,
        db: Db,
        gate: Arc<DbPlaybackGate>,
        hub: Arc<Hub>,
        origin: Arc<Origin>,
        srt: SrtDefaults,
        cluster: Option<Arc<starling_cluster::Cluster>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            srt_default: srt.passphrase,
            srt_pbkeylen: srt.pbkeylen,
            cluster,
            config: ConfigAuthorizer::new(channels),
            db,
            gate,
            hub,
            origin,
            live: Mutex::default(),
        })
    }

    fn live(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (starling_control::PublishGrant, usize)>> {
        starling_sync::lock(&self.live)
    }

    async fn publish_from_db(
        &self,
        key: &str,
        peer: SocketAddr,
    ) -> Result<PublishGrant, AuthError> {
        let started = std::time::Instant::now();
        let grant = match self
            .db
            .authorize_publish(key, &peer.ip().to_string(), now_ms())
            .await
        {
            Ok(g) => g,
            Err(ControlError::Auth(_)) => return Err(AuthError::UnknownKey),
            Err(e) => {
                warn!(error = %e, "control plane unavailable for publish authorisation");
                return Err(AuthError::Unavailable("control plane".into()));
            }
        };
        debug!(channel = %grant.channel, took_us = started.elapsed().as_micros() as u64, "publish authorised");
        // Channels live in the database; package each from its first publish on, with
        // its own settings (DVR window, recording, latency mode) as they are now.
        match self.db.channel_by_name(&grant.channel).await {
            Ok(Some(ch)) => self.origin.configure(&ch.name, channel_settings(&ch)),
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, channel = %grant.channel, "channel settings unavailable; the previous ones apply")
            }
        }
        self.origin.follow(&self.hub, &grant.channel);
        let out = PublishGrant {
            channel: grant.channel.clone(),
            takeover: grant.takeover,
            key_id: Some(grant.key_id.clone()),
            // Read with the key, in the same query: the passphrase in force now. A
            // change applies from the next connection; live ones keep theirs (libsrt
            // keys a connection once, at its handshake).
            srt_passphrase: self.srt_passphrase(grant.srt_passphrase.as_ref()),
        };
        // Counted: a reconnecting encoder (takeover) overlaps its old connection briefly.
        self.live()
            .entry(grant.key_id.clone())
            .or_insert((grant, 0))
            .1 += 1;
        Ok(out)
    }

    /// A control-plane channel's own passphrase as the SRT socket takes it.
    fn srt_passphrase(
        &self,
        own: Option<&starling_control::SrtPassphrase>,
    ) -> Option<starling_srt_server::SrtPassphrase> {
        own.map(|s| starling_srt_server::SrtPassphrase {
            passphrase: s.passphrase.expose().to_owned(),
            key_len: s.pbkeylen.unwrap_or(self.srt_pbkeylen),
        })
    }

    /// Stops live publishes whose key was revoked, and those other nodes of the cluster
    /// take over or hold: instantly for revocations made on this node and, in a cluster,
    /// on other nodes (NATS); within `poll` for those only the database knows (no
    /// cluster, or NATS down).
    pub fn watch_revocations(self: &Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut local = this.db.subscribe_revocations();
        let mut cluster_events = this.cluster.as_ref().map(|c| c.events());
        tokio::spawn(async move {
            let mut since = now_ms();
            let mut tick = tokio::time::interval(poll);
            loop {
                let cluster_event = async {
                    match cluster_events.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let revoked: Vec<String> = tokio::select! {
                    r = local.recv() => match r {
                        Ok(rev) => {
                            if let Some(c) = &this.cluster {
                                c.revoke(&rev.key_id).await;
                            }
                            vec![rev.key_id]
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    },
                    e = cluster_event => match e {
                        Ok(starling_cluster::ClusterEvent::Revoked { key_id }) => vec![key_id],
                        Ok(starling_cluster::ClusterEvent::Takeover { channel, by }) => {
                            warn!(%channel, node = %by, "another node takes the channel over: ending its publish here");
                            this.hub.stop_publisher(&channel);
                            continue;
                        }
                        Ok(starling_cluster::ClusterEvent::LeaseLost { channel, holder }) => {
                            warn!(%channel, node = %holder, "the channel is live on another node: ending its publish here");
                            this.hub.stop_publisher(&channel);
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => {
                            cluster_events = None;
                            continue;
                        }
                    },
                    _ = tick.tick() => {
                        let now = now_ms();
                        match this.db.revoked_keys_since(since.saturating_sub(poll.as_millis() as i64)).await {
                            Ok(list) => {
                                since = now;
                                list.into_iter().map(|r| r.key_id).collect()
                            }
                            Err(e) => {
                                warn!(error = %e, "reading revocations failed");
                                continue;
                            }
                        }
                    }
                };
                for key_id in revoked {
                    let channel = this.live().get(&key_id).map(|(g, _)| g.channel.clone());
                    if let Some(channel) = channel {
                        warn!(%channel, "stream key revoked: stopping its live publish");
                        this.hub.stop_publisher(&channel);
                    }
                }
            }
        })
    }

    /// In a cluster, claims the grant's channel for this node (see the module's docs).
    async fn claim(&self, grant: PublishGrant) -> Result<PublishGrant, AuthError> {
        let Some(cluster) = &self.cluster else {
            return Ok(grant);
        };
        match cluster.claim(&grant.channel, grant.takeover).await {
            Ok(_) => Ok(grant),
            Err(e) => {
                // The grant was counted as live: hand it back.
                self.publish_ended_here(&grant);
                Err(AuthError::Forbidden(e.to_string()))
            }
        }
    }
}

impl NodeAuthorizer {
    /// The end of a publish for this node's own books: the device idle in the database.
    fn publish_ended_here(&self, grant: &PublishGrant) {
        let Some(key_id) = &grant.key_id else { return };
        let grant = {
            let mut live = self.live();
            let Some((_, n)) = live.get_mut(key_id) else {
                return;
            };
            *n -= 1;
            if *n > 0 {
                return;
            }
            match live.remove(key_id) {
                Some((g, _)) => g,
                None => return,
            }
        };
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(e) = db.publish_ended(&grant, now_ms()).await {
                warn!(error = %e, "recording the end of a publish failed");
            }
        });
    }
}

impl starling_srt_server::Passphrases for NodeAuthorizer {
    fn passphrase(&self, channel: Option<&str>, _key: Option<&str>) -> Option<(String, u8)> {
        let own = channel.and_then(|name| {
            self.config
                .channels
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.srt_passphrase.clone())
        });
        match own {
            // A channel's own passphrase takes the node's key length.
            Some(p) => Some((p, self.srt_pbkeylen)),
            None => self.srt_default.clone(),
        }
    }
}

/// The `token=` parameter of a play query (RTMP `name?token=...`; SRT passes its
/// `s=` the same way).
fn token_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

impl Authorizer for NodeAuthorizer {
    fn authorize_publish<'a>(
        &'a self,
        app: &'a str,
        key: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        Box::pin(async move {
            check_app(app)?;
            let grant = match self.config.publish(app, key) {
                Ok(g) => g,
                Err(AuthError::UnknownKey) => self.publish_from_db(key, peer).await?,
                Err(e) => return Err(e),
            };
            self.claim(grant).await
        })
    }

    fn publish_ended(&self, grant: &PublishGrant) {
        if let Some(c) = &self.cluster {
            c.release(&grant.channel);
        }
        self.publish_ended_here(grant);
    }

    fn authorize_play<'a>(
        &'a self,
        app: &'a str,
        name: &'a str,
        query: Option<&'a str>,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>> {
        Box::pin(async move {
            match self.config.play(app, name) {
                Ok(g) => return Ok(g),
                Err(AuthError::UnknownChannel(_)) => {}
                Err(e) => return Err(e),
            }
            // Through the playback gate's cache: unknown names are cached too and read
            // once however many players ask, so players cannot drive the database.
            //
            // The channel's SRT passphrase comes from the same entry, read from the
            // database at most `VISIBILITY_TTL` ago (or the last answer while the
            // database cannot be read). So a passphrase set, changed or removed applies
            // to players within that bound, exactly as a change of visibility does, and
            // there is no second cache to invalidate or to go stale on its own: the
            // SRT hook, which must not wait, gets it with this grant. Players already
            // connected keep the passphrase of their handshake.
            let known = match self.gate.lookup(name).await {
                Ok(Some(k)) => k,
                Ok(None) => return Err(AuthError::UnknownChannel(name.chars().take(64).collect())),
                Err(_) => return Err(AuthError::Unavailable("control plane".into())),
            };
            let grant = PlayGrant {
                channel: name.to_owned(),
                srt_passphrase: self.srt_passphrase(known.srt_passphrase.as_ref()),
            };
            match known.visibility {
                Visibility::Private => {
                    let Some(token) = token_param(query) else {
                        return Err(AuthError::Forbidden(
                            "private channel: playback needs a token".into(),
                        ));
                    };
                    use starling_origin::PlaybackGate as _;
                    match self.gate.check(name, Some(token)).await {
                        starling_origin::Access::Allowed | starling_origin::Access::Public => {
                            self.origin.follow(&self.hub, name);
                            Ok(grant)
                        }
                        starling_origin::Access::Refused(r) => {
                            debug!(channel = %name, reason = ?r, "play refused: token");
                            Err(AuthError::Forbidden(
                                "private channel: the playback token is not valid for it".into(),
                            ))
                        }
                    }
                }
                Visibility::Public | Visibility::Unlisted => {
                    self.origin.follow(&self.hub, name);
                    Ok(grant)
                }
            }
        })
    }
}

/// What the origin needs of a control-plane channel's settings.
pub fn channel_settings(ch: &starling_control::Channel) -> starling_origin::ChannelSettings {
    let s = starling_origin::ChannelSettings {
        dvr_window: Duration::from_secs(ch.dvr_window_secs.max(0).unsigned_abs()),
        record: ch.recording,
        low_latency: true,
        realtime: false,
        p2p: false,
    };
    with_latency_mode(s, ch.latency_mode)
}

/// `settings` for latency `mode`: LL-HLS for all but standard (real time's and P2P's
/// fallback is LL-HLS), WebRTC first for real time, segment sharing for P2P.
pub fn with_latency_mode(
    settings: starling_origin::ChannelSettings,
    mode: starling_control::LatencyMode,
) -> starling_origin::ChannelSettings {
    use starling_control::LatencyMode;
    starling_origin::ChannelSettings {
        low_latency: mode != LatencyMode::Standard,
        realtime: mode == LatencyMode::RealTime,
        p2p: mode == LatencyMode::P2p,
        ..settings
    }
}

/// The RTMP application every URL uses: `rtmp://host/live/...`.
pub const RTMP_APP: &str = "live";

#[derive(Debug)]
pub struct ConfigAuthorizer {
    channels: Vec<ChannelConfig>,
}

impl ConfigAuthorizer {
    pub fn new(channels: Vec<ChannelConfig>) -> Self {
        Self { channels }
    }

    fn publish(&self, app: &str, key: &str) -> Result<PublishGrant, AuthError> {
        check_app(app)?;
        // Compare against every key in constant time each, so response timing tells an
        // attacker nothing about how close a guess was.
        let mut found = None;
        for ch in &self.channels {
            if constant_time_eq(ch.stream_key.as_bytes(), key.as_bytes()) {
                found = Some(ch);
            }
        }
        let ch = found.ok_or(AuthError::UnknownKey)?;
        Ok(PublishGrant {
            channel: ch.name.clone(),
            takeover: ch.takeover,
            key_id: None,
            // The config file's passphrases are the `Passphrases` impl's.
            srt_passphrase: None,
        })
    }

    fn play(&self, app: &str, name: &str) -> Result<PlayGrant, AuthError> {
        check_app(app)?;
        self.channels
            .iter()
            .find(|c| c.name == name)
            .map(|c| PlayGrant {
                channel: c.name.clone(),
                srt_passphrase: None,
            })
            .ok_or_else(|| AuthError::UnknownChannel(name.chars().take(64).collect()))
    }
}

fn check_app(app: &str) -> Result<(), AuthError> {
    if app == RTMP_APP {
        Ok(())
    } else {
        // The app is not echoed: this text reaches the log, and an encoder set up with
        // `rtmp://HOST/STREAM_KEY` as its server sends the key as the app.
        Err(AuthError::Forbidden(format!(
            "unknown application; use rtmp://HOST/{RTMP_APP}/..."
        )))
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> ConfigAuthorizer {
        ConfigAuthorizer::new(vec![
            ChannelConfig {
                name: "news".into(),
                stream_key: "key-news-1".into(),
                takeover: false,
                recording: false,
                srt_passphrase: None,
                ladder: None,
                latency_mode: None,
                reframe: false,
                reframe_subject: None,
                highlights: false,
                highlight_sensitivity: None,
            },
            ChannelConfig {
                name: "sport".into(),
                stream_key: "key-sport-1".into(),
                takeover: true,
                recording: false,
                srt_passphrase: None,
                ladder: None,
                latency_mode: None,
                reframe: false,
                reframe_subject: None,
                highlights: false,
                highlight_sensitivity: None,
            },
        ])
    }

    #[test]
    fn keys_map_to_their_channel() {
        let a = auth();
        assert_eq!(a.publish("live", "key-news-1").unwrap().channel, "news");
        let g = a.publish("live", "key-sport-1").unwrap();
        assert_eq!((g.channel.as_str(), g.takeover), ("sport", true));
        assert_eq!(a.publish("live", "key-news-2"), Err(AuthError::UnknownKey));
        // A channel name is not a key.
        assert_eq!(a.publish("live", "news"), Err(AuthError::UnknownKey));
        assert!(matches!(
            a.publish("other", "key-news-1"),
            Err(AuthError::Forbidden(_))
        ));
    }

    #[test]
    fn play_needs_a_known_channel() {
        let a = auth();
        assert_eq!(a.play("live", "news").unwrap().channel, "news");
        assert!(matches!(
            a.play("live", "nope"),
            Err(AuthError::UnknownChannel(_))
        ));
        // Playing by key would leak which keys exist.
        assert!(a.play("live", "key-news-1").is_err());
    }
}
