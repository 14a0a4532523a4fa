//! The listener: the handshake hook (stream id, caps, keys, passphrase), the accept
//! loop, and one thread per connection.
//!
//! libsrt calls the hook on its receiving thread for this port, before the handshake
//! completes, so a refused caller gets an SRT rejection code that names the cause
//! (ffmpeg prints it) instead of a dropped connection. Key checks against the control
//! plane are asynchronous; the hook waits for them at most `auth_timeout` (the same
//! thread moves every other connection's packets on this port, so it must not wait
//! long) and refuses with "try again" past that.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use starling_hub::Hub;
use starling_ingest_auth::{check_key_shape, AuthError, Authorizer, PlayGrant, PublishGrant};
use starling_srt::{reject, streamid, Handshake, Mode, Socket, SrtError};
use starling_sync::{lock, AddressSlot, AddressSlots};
use tokio::{runtime::Handle, sync::watch};
use tracing::{info, warn};

use crate::{links::Links, publish, ServerStats};

/// The RTMP application name keys are checked under: SRT has none, and sharing RTMP's
/// keeps one set of keys for both.
pub const APP: &str = "live";

/// Settings of the SRT listener. Defaults are documented in `starling.example.toml`.
#[derive(Debug, Clone)]
pub struct SrtServerConfig {
    pub listen: SocketAddr,
    /// The latency this server asks for. SRT uses the larger of the two sides' values,
    /// so this is the floor: a caller asking for more gets more.
    pub latency: Duration,
    /// The ceiling: a caller whose latency would exceed it is disconnected after the
    /// handshake (a latency of many seconds holds that much media in memory).
    pub max_latency: Duration,
    /// A connection silent for this long is broken (a killed sender ends here).
    pub peer_idle_timeout: Duration,
    /// The highest contribution bitrate buffers are sized for.
    pub max_bitrate_bps: u64,
    /// The longest round trip buffers are sized for.
    pub max_rtt: Duration,
    pub max_publishers: usize,
    pub max_players: usize,
    pub max_connections_per_address: usize,
    /// How long the handshake hook waits for the control plane.
    pub auth_timeout: Duration,
    /// A player of a channel that is not live is disconnected after this long.
    pub play_wait_timeout: Duration,
    /// Channels this node pulls from remote SRT listeners.
    pub pulls: Vec<crate::PullConfig>,
}

impl Default for SrtServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9710)),
            latency: Duration::from_millis(200),
            max_latency: Duration::from_secs(8),
            peer_idle_timeout: Duration::from_secs(5),
            max_bitrate_bps: 40_000_000,
            max_rtt: Duration::from_millis(300),
            max_publishers: 256,
            max_players: 512,
            max_connections_per_address: 32,
            auth_timeout: Duration::from_millis(500),
            play_wait_timeout: Duration::from_secs(30),
            pulls: Vec::new(),
        }
    }
}

/// The passphrase a channel (or a stream key) requires, looked up in the handshake
/// hook: it must answer at once (config, or a cache), never wait.
pub trait Passphrases: Send + Sync + 'static {
    /// `(passphrase, key length in bytes: 16, 24 or 32, or 0 for the caller's)`.
    fn passphrase(&self, channel: Option<&str>, key: Option<&str>) -> Option<(String, u8)>;
}

/// What a handshake was granted, waiting for its socket to be accepted.
#[derive(Debug)]
pub(crate) enum Granted {
    /// A publish, and how it goes on the hub.
    Publish(PublishGrant, crate::publish::PublishMode),
    Play(PlayGrant),
}

#[derive(Debug)]
struct Pending {
    granted: Granted,
    slot: AddressSlot,
    at: Instant,
}

/// Everything connection threads share.
pub(crate) struct Shared {
    pub config: SrtServerConfig,
    pub hub: Arc<Hub>,
    pub auth: Arc<dyn Authorizer>,
    pub stats: Arc<ServerStats>,
    pub links: Arc<Links>,
    pub rt: Handle,
    pub shutdown: watch::Receiver<bool>,
    pub publishers: AtomicU64,
    pub players: AtomicU64,
}

impl Shared {
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Tells the authorizer a publish it granted is over. Called from this server's
    /// threads, which are not the runtime's: the authorizer may spawn (the control
    /// plane records the end), so it runs inside the runtime's context.
    pub fn publish_ended(&self, grant: &PublishGrant) {
        let _rt = self.rt.enter();
        self.auth.publish_ended(grant);
    }
}

/// A running SRT listener.
#[derive(Debug)]
pub struct SrtServer {
    local_addr: SocketAddr,
    accept: Option<thread::JoinHandle<()>>,
    pulls: Vec<thread::JoinHandle<()>>,
}

impl SrtServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the accept loop and every connection to end (after shutdown).
    pub fn join(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for t in self.pulls.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds the listener and starts serving; connections end when `shutdown` turns true
/// (publishers end their streams cleanly).
#[allow(clippy::too_many_arguments)]
pub fn serve(
    config: SrtServerConfig,
    hub: Arc<Hub>,
    auth: Arc<dyn Authorizer>,
    passphrases: Arc<dyn Passphrases>,
    stats: Arc<ServerStats>,
    links: Arc<Links>,
    rt: Handle,
    shutdown: watch::Receiver<bool>,
) -> Result<SrtServer, SrtError> {
    let listener = Socket::new()?;
    listener.set_latency(config.latency)?;
    listener.set_peer_idle_timeout(config.peer_idle_timeout)?;
    listener.size_receive_buffers(
        config.max_bitrate_bps,
        config.max_latency.min(Duration::from_secs(2)),
        config.max_rtt,
    )?;
    listener.bind(config.listen)?;
    let local_addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        config,
        hub,
        auth,
        stats,
        links,
        rt,
        shutdown,
        publishers: AtomicU64::new(0),
        players: AtomicU64::new(0),
    });
    let pending: Arc<Mutex<HashMap<i32, Pending>>> = Arc::default();
    let per_address = Arc::new(AddressSlots::default());
    {
        let shared = shared.clone();
        let pending = pending.clone();
        listener.set_listen_hook(Box::new(move |hs| {
            let decided = decide(&shared, &*passphrases, &per_address, hs);
            match decided {
                Ok((granted, slot)) => {
                    lock(&pending).insert(
                        hs.socket.id(),
                        Pending {
                            granted,
                            slot,
                            at: Instant::now(),
                        },
                    );
                    Ok(())
                }
                Err(code) => {
                    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    Err(code)
                }
            }
        }))?;
    }
    listener.listen(64)?;
    info!(addr = %local_addr, "SRT listening");
    let mut pulls = Vec::new();
    for p in shared.config.pulls.clone() {
        let channel = p.channel.clone();
        match crate::pull::spawn(shared.clone(), p) {
            Ok(t) => pulls.push(t),
            Err(e) => warn!(%channel, error = %e, "SRT pull thread failed to start"),
        }
    }
    let accept = thread::Builder::new()
        .name("srt-accept".into())
        .spawn(move || accept_loop(listener, shared, pending))
        .map_err(|e| SrtError {
            op: "spawn",
            code: 0,
            message: e.to_string(),
        })?;
    Ok(SrtServer {
        local_addr,
        accept: Some(accept),
        pulls,
    })
}

/// The handshake decision: stream id, caps, key or token, passphrase.
fn decide(
    shared: &Shared,
    passphrases: &dyn Passphrases,
    per_address: &Arc<AddressSlots>,
    hs: &Handshake<'_>,
) -> Result<(Granted, AddressSlot), i32> {
    let peer = hs
        .peer
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let stats = &shared.stats;
    let id = streamid::parse(hs.stream_id).map_err(|e| {
        stats.bad_stream_ids.fetch_add(1, Ordering::Relaxed);
        warn!(%peer, reason = %e, "SRT connection refused: bad stream id");
        e.reject_code()
    })?;
    if shared.shutting_down() {
        return Err(reject::UNAVAILABLE);
    }
    let slot = per_address
        .try_take(peer.ip(), shared.config.max_connections_per_address)
        .ok_or_else(|| {
            warn!(%peer, limit = shared.config.max_connections_per_address, "SRT connection refused: too many connections from this address");
            reject::OVERLOAD
        })?;
    let granted = match id.mode {
        Mode::Publish => {
            if shared.publishers.load(Ordering::Relaxed) >= shared.config.max_publishers as u64 {
                warn!(%peer, limit = shared.config.max_publishers, "SRT publish refused: too many publishers");
                return Err(reject::OVERLOAD);
            }
            let key = id.secret.as_deref().unwrap_or_default();
            let result = match check_key_shape(key) {
                Ok(()) => wait(shared, shared.auth.authorize_publish(APP, key, peer)),
                Err(e) => Err(e),
            };
            let grant = result.map_err(|e| {
                stats.publishes_refused.fetch_add(1, Ordering::Relaxed);
                warn!(%peer, reason = %e.log_reason(), "SRT publish refused");
                auth_code(&e)
            })?;
            // A key names its channel; an `r=` that names another one is a mistake
            // worth refusing rather than publishing somewhere unexpected.
            if let Some(r) = id.resource.as_deref() {
                if r != grant.channel {
                    shared.publish_ended(&grant);
                    stats.publishes_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(%peer, channel = %grant.channel, "SRT publish refused: r= names another channel than the key's");
                    return Err(reject::FORBIDDEN);
                }
            }
            // Refused here rather than after the handshake, so that the encoder is told
            // why (the hub decides again at publish time; this is the common case).
            // A backup (`pipeline=backup`) is expected beside a live publisher.
            if !grant.takeover && !id.backup && shared.hub.is_live(&grant.channel) {
                shared.publish_ended(&grant);
                stats.publishes_refused.fetch_add(1, Ordering::Relaxed);
                warn!(%peer, channel = %grant.channel, "SRT publish refused: the channel already has a publisher");
                return Err(reject::CONFLICT);
            }
            if let Some((pass, len)) = passphrase(
                passphrases,
                &grant.srt_passphrase,
                &grant.channel,
                Some(key),
            ) {
                if hs.socket.set_passphrase(&pass, len).is_err() {
                    shared.publish_ended(&grant);
                    return Err(reject::ISE);
                }
            }
            let clock = if id.epoch_clock {
                starling_media::SourceClock::MPEGTS_EPOCH
            } else {
                starling_media::SourceClock::Relative
            };
            Granted::Publish(
                grant,
                crate::publish::PublishMode {
                    backup: id.backup,
                    clock,
                },
            )
        }
        Mode::Request => {
            if shared.players.load(Ordering::Relaxed) >= shared.config.max_players as u64 {
                warn!(%peer, limit = shared.config.max_players, "SRT play refused: too many players");
                return Err(reject::OVERLOAD);
            }
            let channel = id.resource.as_deref().unwrap_or_default();
            let query = id.secret.as_deref().map(|t| format!("token={t}"));
            let result = wait(
                shared,
                shared
                    .auth
                    .authorize_play(APP, channel, query.as_deref(), peer),
            );
            let grant = result.map_err(|e| {
                stats.plays_refused.fetch_add(1, Ordering::Relaxed);
                warn!(%peer, reason = %e.log_reason(), "SRT play refused");
                auth_code(&e)
            })?;
            if let Some((pass, len)) =
                passphrase(passphrases, &grant.srt_passphrase, &grant.channel, None)
            {
                if hs.socket.set_passphrase(&pass, len).is_err() {
                    return Err(reject::ISE);
                }
            }
            Granted::Play(grant)
        }
    };
    Ok((granted, slot))
}

/// The passphrase a granted caller must use: the one that came with the grant (a
/// control-plane channel's own, read with the key or the channel, so no second lookup
/// here), else what `passphrases` knows (config channels, the node's default).
fn passphrase(
    passphrases: &dyn Passphrases,
    granted: &Option<starling_ingest_auth::SrtPassphrase>,
    channel: &str,
    key: Option<&str>,
) -> Option<(String, u8)> {
    match granted {
        Some(p) => Some((p.passphrase.clone(), p.key_len)),
        None => passphrases.passphrase(Some(channel), key),
    }
}

/// Runs a control-plane check from libsrt's thread, for at most `auth_timeout`.
fn wait<T>(
    shared: &Shared,
    fut: starling_ingest_auth::BoxFuture<'_, Result<T, AuthError>>,
) -> Result<T, AuthError> {
    shared
        .rt
        .block_on(async { tokio::time::timeout(shared.config.auth_timeout, fut).await })
        .unwrap_or_else(|_| Err(AuthError::Unavailable("timed out".into())))
}

fn auth_code(e: &AuthError) -> i32 {
    match e {
        AuthError::MissingKey | AuthError::MalformedKey(_) => reject::BAD_REQUEST,
        AuthError::UnknownKey => reject::UNAUTHORIZED,
        AuthError::UnknownChannel(_) => reject::NOTFOUND,
        AuthError::Forbidden(_) => reject::FORBIDDEN,
        AuthError::Unavailable(_) => reject::UNAVAILABLE,
        _ => reject::FORBIDDEN,
    }
}

/// Grants of handshakes that libsrt then failed (a wrong passphrase is checked after
/// the hook) are released after this long.
const PENDING_TTL: Duration = Duration::from_secs(10);

fn accept_loop(listener: Socket, shared: Arc<Shared>, pending: Arc<Mutex<HashMap<i32, Pending>>>) {
    let poll = match starling_srt::socket::ReadPoll::new(&listener) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "SRT accept loop cannot start");
            return;
        }
    };
    let mut conns: Vec<thread::JoinHandle<()>> = Vec::new();
    while !shared.shutting_down() {
        conns.retain(|t| !t.is_finished());
        release_stale(&shared, &pending);
        match poll.wait(Duration::from_millis(250)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                warn!(error = %e, "SRT listener failed");
                break;
            }
        }
        let (socket, peer) = match listener.accept() {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "SRT accept failed");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let Some(p) = lock(&pending).remove(&socket.id()) else {
            warn!(%peer, "SRT connection without a handshake decision: closed");
            continue;
        };
        let latency = socket.recv_latency().unwrap_or_default();
        if latency > shared.config.max_latency {
            warn!(%peer, latency_ms = latency.as_millis() as u64, max_ms = shared.config.max_latency.as_millis() as u64, "SRT connection closed: the caller's latency is above the server's ceiling");
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            if let Granted::Publish(g, _) = &p.granted {
                shared.publish_ended(g);
            }
            continue;
        }
        let shared2 = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("srt-{}", socket.id()))
            .spawn(move || {
                let _slot = p.slot;
                match p.granted {
                    Granted::Publish(grant, mode) => {
                        publish::run_publish(&shared2, socket, peer, grant, mode)
                    }
                    Granted::Play(grant) => crate::play::run_play(&shared2, socket, peer, grant),
                }
            });
        match spawned {
            Ok(t) => conns.push(t),
            Err(e) => warn!(%peer, error = %e, "SRT connection thread failed to start"),
        }
    }
    drop(listener);
    for t in conns {
        let _ = t.join();
    }
    info!("SRT server stopped");
}

fn release_stale(shared: &Shared, pending: &Mutex<HashMap<i32, Pending>>) {
    let stale: Vec<Pending> = {
        let mut map = lock(pending);
        let ids: Vec<i32> = map
            .iter()
            .filter(|(_, p)| p.at.elapsed() > PENDING_TTL)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().filter_map(|id| map.remove(&id)).collect()
    };
    for p in stale {
        if let Granted::Publish(g, _) = &p.granted {
            shared.publish_ended(g);
        }
    }
}
