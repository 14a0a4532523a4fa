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
//! Names come from anyone (request paths, RTMP play names), so the database must not be
//! theirs to drive: unknown names are cached too (negative caching, same TTL), requests
//! for a name being read wait for that one read (single flight), and at most
//! [`MAX_CONCURRENT_READS`] reads run at once, so a flood of made-up names cannot take
//! the connections that publish authorisation needs. RTMP play asks through the same
//! cache ([`DbPlaybackGate::visibility`]).
//!
//! SRT play takes a channel's own SRT passphrase from the same entry, so it is as fresh
//! as the visibility ([`DbPlaybackGate::lookup`]).
//!
//! The same cache answers who may see a live channel *listed* ([`DbPlaybackGate::listed`]:
//! the home page, `GET /api/v1/live`): public channels for everyone, unlisted and private
//! ones only for signed-in members of their organisation.

use starling_sync::lock;
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
/// Database reads the gate runs at once (the pool has more: publish authorisation and
/// the API keep theirs).
pub const MAX_CONCURRENT_READS: usize = 4;
/// How long a lookup waits for a read slot before it answers "unavailable".
const READ_SLOT_WAIT: Duration = Duration::from_secs(2);

/// What the gate keeps of a channel.
#[derive(Debug, Clone)]
pub struct Known {
    pub visibility: Visibility,
    org_id: Arc<str>,
    /// The channel's own SRT passphrase, for SRT players (see `NodeAuthorizer`'s play).
    pub srt_passphrase: Option<starling_control::SrtPassphrase>,
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
    /// Names being read for the first time: later askers wait on the first one's read.
    inflight: Arc<Mutex<HashMap<String, tokio::sync::watch::Receiver<bool>>>>,
    reads: Arc<tokio::sync::Semaphore>,
    /// Database reads made, and the most ever under way at once (for tests).
    pub db_reads: Arc<std::sync::atomic::AtomicU64>,
    reads_now: Arc<std::sync::atomic::AtomicUsize>,
    pub db_reads_peak: Arc<std::sync::atomic::AtomicUsize>,
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
            inflight: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_READS)),
            db_reads: Arc::default(),
            reads_now: Arc::default(),
            db_reads_peak: Arc::default(),
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

    /// The channel as the database knows it (None: no such channel): from the cache, or
    /// read when stale. RTMP and SRT play ask here (they must tell unknown names from
    /// public channels, and SRT takes the channel's passphrase from the same entry).
    pub async fn lookup(&self, channel: &str) -> Result<Option<Known>, Refusal> {
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
        // A name never seen: one read, which everyone asking meanwhile waits for (there
        // is no previous answer to give them, and "unknown" would wrongly mean public).
        let mut leader = None;
        if stale.is_none() {
            let waiting = {
                let mut inflight = lock(&self.inflight);
                match inflight.get(channel) {
                    Some(rx) => Some(rx.clone()),
                    None => {
                        let (tx, rx) = tokio::sync::watch::channel(false);
                        inflight.insert(channel.to_owned(), rx);
                        leader = Some(tx);
                        None
                    }
                }
            };
            if let Some(mut rx) = waiting {
                let _ = rx.wait_for(|done| *done).await;
                return match self.cache().get(channel) {
                    Some(e) => Ok(e.channel.clone()),
                    None => Err(Refusal::Unavailable),
                };
            }
        }
        let db = self.db.clone();
        let cache = self.cache.clone();
        let inflight = self.inflight.clone();
        let reads = self.reads.clone();
        let db_reads = self.db_reads.clone();
        let (reads_now, peak) = (self.reads_now.clone(), self.db_reads_peak.clone());
        let name = channel.to_owned();
        let read = tokio::spawn(async move {
            let result = match tokio::time::timeout(READ_SLOT_WAIT, reads.acquire_owned()).await {
                Ok(Ok(_slot)) => {
                    use std::sync::atomic::Ordering::Relaxed;
                    db_reads.fetch_add(1, Relaxed);
                    peak.fetch_max(reads_now.fetch_add(1, Relaxed) + 1, Relaxed);
                    let r = db.channel_by_name(&name).await.map_err(|e| e.to_string());
                    reads_now.fetch_sub(1, Relaxed);
                    r
                }
                _ => Err("too many channel lookups at once".to_owned()),
            };
            let done = |inflight: &Mutex<HashMap<String, _>>| {
                lock(inflight).remove(&name);
                if let Some(tx) = leader {
                    let _ = tx.send(true);
                }
            };
            let mut cache = lock(&cache);
            match &result {
                Ok(ch) => {
                    let known = ch.as_ref().map(|c| Known {
                        visibility: c.visibility,
                        org_id: c.org_id.as_str().into(),
                        srt_passphrase: c.srt_passphrase.clone(),
                    });
                    if cache.len() >= CACHE_MAX {
                        let now = Instant::now();
                        cache.retain(|_, e| now.duration_since(e.read_at) < VISIBILITY_TTL);
                        if cache.len() >= CACHE_MAX {
                            cache.clear();
                        }
                    }
                    cache.insert(
                        name.clone(),
                        Entry {
                            channel: known.clone(),
                            read_at: Instant::now(),
                            refreshing: false,
                        },
                    );
                    drop(cache);
                    done(&inflight);
                    Ok(known)
                }
                Err(e) => {
                    if let Some(entry) = cache.get_mut(&name) {
                        entry.refreshing = false;
                    }
                    drop(cache);
                    done(&inflight);
                    Err(e.clone())
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

    impl DbPlaybackGate {
        async fn visibility_for_test(&self, channel: &str) -> Result<Option<Visibility>, Refusal> {
            Ok(self.lookup(channel).await?.map(|c| c.visibility))
        }
    }

    async fn setup() -> (Arc<DbPlaybackGate>, Db, starling_control::Principal, String) {
        // A counter as well as the time: tests run in parallel, and two of them starting
        // in the same millisecond once shared a database (and raced its migrations).
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "starling-gate-{}-{}-{n}",
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_names_are_read_once_however_many_ask() {
        let (gate, _db, _admin, _id) = setup().await;
        let reads = || gate.db_reads.load(std::sync::atomic::Ordering::Relaxed);
        let before = reads();
        // 200 players at once for one name nobody has: one database read, all answered.
        let asks = (0..200).map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.visibility_for_test("made-up").await })
        });
        for a in asks.collect::<Vec<_>>() {
            assert_eq!(a.await.unwrap(), Ok(None));
        }
        assert_eq!(reads() - before, 1, "single flight");
        // Asked again within the TTL: from the (negative) cache.
        assert_eq!(gate.visibility_for_test("made-up").await, Ok(None));
        assert_eq!(reads() - before, 1, "negative cache");
        // A private channel asked by many at once for the first time is private for
        // every one of them (no "unknown, so public" answer while it is being read).
        let asks = (0..50).map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.decide("hidden", None).await })
        });
        for a in asks.collect::<Vec<_>>() {
            assert_eq!(a.await.unwrap(), Access::Refused(Refusal::NoToken));
        }
        // A flood of distinct made-up names: every one answered, and never more reads at
        // once than the cap (an invariant check: SQLite answers too fast here for the
        // flood to pile up, so this does not show the cap working by itself).
        let asks = (0..300).map(|i| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.visibility_for_test(&format!("flood-{i}")).await })
        });
        for a in asks.collect::<Vec<_>>() {
            assert!(matches!(
                a.await.unwrap(),
                Ok(None) | Err(Refusal::Unavailable)
            ));
        }
        let peak = gate
            .db_reads_peak
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..=MAX_CONCURRENT_READS).contains(&peak),
            "{peak} reads at once"
        );
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
