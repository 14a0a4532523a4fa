//! The node's playback gate: who may watch a channel over HLS, from the control plane.
//!
//! - Channels of the config file (`[[channels]]`) and the built-in `demo` channel are not
//!   in the database: always public (as RTMP play treats them).
//! - Other channels: their visibility is read from the database by name and kept for
//!   [`VISIBILITY_TTL`], so a change of visibility applies within about two seconds and
//!   the database is not asked per segment request. Unknown names are public (the origin
//!   then answers 404 as usual); `unlisted` is public too (anyone with the link).
//! - Private channels need a playback token, verified with the cluster's signer (loaded
//!   once at start): pure HMAC, no I/O.
//!
//! When an entry is stale, one request refreshes it (in a task of its own, so a client
//! that hangs up cannot leave it half-done) while the others keep the previous answer;
//! if the database cannot be read, the previous answer stands, and a channel never seen
//! before is refused with 503. Tokens are never logged.
//!
//! The same cache answers who may see a live channel *listed* ([`DbPlaybackGate::listed`]:
//! the home page, `GET /api/v1/live`): public channels for everyone, unlisted and private
//! ones only for signed-in members of their organisation.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use starling_control::{Db, PlaybackSigner, TokenError, Visibility};
use starling_origin::{Access, GateFuture, PlaybackGate, Refusal};
use tracing::warn;

/// How long a channel's visibility is trusted before it is read again.
pub const VISIBILITY_TTL: Duration = Duration::from_secs(2);
/// Names kept at most; past this, expired entries are dropped (names come from request
/// paths, so anyone can make up new ones).
const CACHE_MAX: usize = 10_000;

/// What the gate keeps of a channel.
#[derive(Debug, Clone)]
struct Known {
    visibility: Visibility,
    org_id: Arc<str>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// None: no channel of that name in the database.
    channel: Option<Known>,
    read_at: Instant,
    refreshing: bool,
}

#[derive(Debug)]
pub struct DbPlaybackGate {
    db: Db,
    signer: PlaybackSigner,
    always_public: HashSet<String>,
    cache: Arc<Mutex<HashMap<String, Entry>>>,
    ttl: Duration,
    now_ms: fn() -> i64,
}

impl DbPlaybackGate {
    /// `always_public`: the config file's channels and the demo channel.
    pub fn new(db: Db, signer: PlaybackSigner, always_public: HashSet<String>) -> Arc<Self> {
        Arc::new(Self {
            db,
            signer,
            always_public,
            cache: Arc::default(),
            ttl: VISIBILITY_TTL,
            now_ms: crate::auth::now_ms,
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        lock(&self.cache)
    }

    /// Whether `channel` is private: from the cache, or the database when stale.
    async fn is_private(&self, channel: &str) -> Result<bool, Refusal> {
        Ok(self
            .lookup(channel)
            .await?
            .is_some_and(|c| c.visibility == Visibility::Private))
    }

    /// Whether a live `channel` may be listed to a viewer who is a member of
    /// `viewer_org` (None: anonymous). Config-file and demo channels are public; a
    /// channel the database does not know, or cannot be read for, is not listed.
    pub async fn listed(&self, channel: &str, viewer_org: Option<&str>) -> bool {
        if self.always_public.contains(channel) {
            return true;
        }
        match self.lookup(channel).await {
            Ok(Some(c)) => c.visibility == Visibility::Public || viewer_org == Some(&*c.org_id),
            Ok(None) | Err(_) => false,
        }
    }

    /// The channel as the database knows it: from the cache, or read when stale.
    async fn lookup(&self, channel: &str) -> Result<Option<Known>, Refusal> {
        let now = Instant::now();
        let stale = {
            let mut cache = self.cache();
            match cache.get_mut(channel) {
                Some(e) if now.duration_since(e.read_at) < self.ttl => {
                    return Ok(e.channel.clone())
                }
                // Someone else is reading it: the previous answer for a moment longer.
                Some(e) if e.refreshing => return Ok(e.channel.clone()),
                Some(e) => {
                    e.refreshing = true;
                    Some(e.channel.clone())
                }
                None => None,
            }
        };
        let db = self.db.clone();
        let cache = self.cache.clone();
        let name = channel.to_owned();
        let read = tokio::spawn(async move {
            let result = db.channel_by_name(&name).await;
            let mut cache = lock(&cache);
            match &result {
                Ok(ch) => {
                    let known = ch.as_ref().map(|c| Known {
                        visibility: c.visibility,
                        org_id: c.org_id.as_str().into(),
                    });
                    if cache.len() >= CACHE_MAX {
                        let now = Instant::now();
                        cache.retain(|_, e| now.duration_since(e.read_at) < VISIBILITY_TTL);
                        if cache.len() >= CACHE_MAX {
                            cache.clear();
                        }
                    }
                    cache.insert(
                        name,
                        Entry {
                            channel: known.clone(),
                            read_at: Instant::now(),
                            refreshing: false,
                        },
                    );
                    Ok(known)
                }
                Err(e) => {
                    if let Some(entry) = cache.get_mut(&name) {
                        entry.refreshing = false;
                    }
                    Err(e.to_string())
                }
            }
        });
        match read.await {
            Ok(Ok(known)) => Ok(known),
            Ok(Err(e)) => {
                warn!(%channel, error = %e, "playback gate: reading the channel's visibility failed");
                stale.ok_or(Refusal::Unavailable)
            }
            Err(e) => {
                warn!(%channel, error = %e, "playback gate: visibility lookup task failed");
                stale.ok_or(Refusal::Unavailable)
            }
        }
    }

    async fn decide(&self, channel: &str, token: Option<&str>) -> Access {
        if self.always_public.contains(channel) {
            return Access::Public;
        }
        match self.is_private(channel).await {
            Ok(false) => return Access::Public,
            Ok(true) => {}
            Err(r) => return Access::Refused(r),
        }
        let Some(token) = token else {
            return Access::Refused(Refusal::NoToken);
        };
        match self.signer.verify(token, channel, (self.now_ms)()) {
            Ok(_) => Access::Allowed,
            Err(e) => Access::Refused(refusal(e)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn refusal(e: TokenError) -> Refusal {
    match e {
        TokenError::Expired { expired_at_ms, .. } => Refusal::Expired { expired_at_ms },
        TokenError::WrongChannel { token_channel, .. } => Refusal::WrongChannel { token_channel },
        TokenError::BadSignature => Refusal::BadSignature,
        TokenError::Malformed(why) => Refusal::Malformed(why),
        _ => Refusal::Malformed("not a token this node reads"),
    }
}

impl PlaybackGate for DbPlaybackGate {
    fn check<'a>(&'a self, channel: &'a str, token: Option<&'a str>) -> GateFuture<'a> {
        Box::pin(self.decide(channel, token))
    }
}

#[cfg(test)]
mod tests {
    use starling_control::{ChannelUpdate, DbConfig, NewChannel};

    use super::*;

    async fn setup() -> (Arc<DbPlaybackGate>, Db, starling_control::Principal, String) {
        let dir = std::env::temp_dir().join(format!(
            "starling-gate-{}-{}",
            std::process::id(),
            crate::auth::now_ms()
        ));
        let db = Db::connect(&DbConfig::new(&dir)).await.unwrap();
        let now = crate::auth::now_ms();
        db.bootstrap_admin("a@example.com", "correct horse battery", "system", now)
            .await
            .unwrap();
        let admin = db
            .login("a@example.com", "correct horse battery", "127.0.0.1", now)
            .await
            .unwrap();
        let mut new = NewChannel::named("hidden");
        new.visibility = Visibility::Private;
        let ch = db.create_channel(&admin, &new, now).await.unwrap();
        db.create_channel(&admin, &NewChannel::named("shown"), now)
            .await
            .unwrap();
        let signer = db.playback_signer().await.unwrap();
        let gate = DbPlaybackGate::new(db.clone(), signer, ["e2e".to_owned()].into());
        (gate, db, admin, ch.id)
    }

    #[tokio::test]
    async fn decisions_follow_visibility_and_tokens() {
        let (gate, db, admin, id) = setup().await;
        let signer = db.playback_signer().await.unwrap();
        let now = crate::auth::now_ms();
        let good = signer.sign("hidden", now + 60_000, None).unwrap();
        let expired = signer.sign("hidden", now - 1, None).unwrap();
        let other = signer.sign("shown", now + 60_000, None).unwrap();
        let forged = PlaybackSigner::new(&[9; 32])
            .unwrap()
            .sign("hidden", now + 60_000, None)
            .unwrap();

        assert_eq!(gate.decide("e2e", None).await, Access::Public);
        assert_eq!(gate.decide("shown", None).await, Access::Public);
        assert_eq!(gate.decide("nobody", None).await, Access::Public);
        assert_eq!(
            gate.decide("hidden", None).await,
            Access::Refused(Refusal::NoToken)
        );
        assert_eq!(gate.decide("hidden", Some(&good)).await, Access::Allowed);
        assert!(matches!(
            gate.decide("hidden", Some(&expired)).await,
            Access::Refused(Refusal::Expired { .. })
        ));
        assert_eq!(
            gate.decide("hidden", Some(&other)).await,
            Access::Refused(Refusal::WrongChannel {
                token_channel: "shown".into()
            })
        );
        assert_eq!(
            gate.decide("hidden", Some(&forged)).await,
            Access::Refused(Refusal::BadSignature)
        );
        assert!(matches!(
            gate.decide("hidden", Some("garbage")).await,
            Access::Refused(Refusal::Malformed(_))
        ));

        // Listing: public channels for everyone; private ones for their organisation only.
        assert!(gate.listed("e2e", None).await);
        assert!(gate.listed("shown", None).await);
        assert!(!gate.listed("hidden", None).await);
        assert!(!gate.listed("hidden", Some("org_other")).await);
        assert!(gate.listed("hidden", Some(&admin.org_id)).await);
        assert!(!gate.listed("nobody", None).await, "unknown: not listed");

        // Made public: the cached answer holds for the TTL, then the new one applies.
        let update = ChannelUpdate {
            visibility: Some(Visibility::Public),
            ..Default::default()
        };
        db.update_channel(&admin, &id, &update, now).await.unwrap();
        assert_eq!(
            gate.decide("hidden", None).await,
            Access::Refused(Refusal::NoToken)
        );
        tokio::time::sleep(VISIBILITY_TTL + Duration::from_millis(100)).await;
        // The first request after expiry refreshes it.
        assert_eq!(gate.decide("hidden", None).await, Access::Public);
    }
}
