//! The accept loop: one task per connection, caps on connections, graceful shutdown.
//!
//! Caps, so that no kind of client can starve another: every connection takes a slot
//! of `max_connections` and one of its address's `max_connections_per_address` at
//! accept; a player also takes one of `max_players` when it starts to play, a
//! publisher one of `max_publishers`. Keeping `max_players` below `max_connections`
//! leaves room for publishers however many players wait for a channel.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use starling_hub::Hub;
use starling_sync::AddressSlots;
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinSet,
};
use tracing::{info, warn};

use crate::{conn, Authorizer};

/// Limits and timeouts of the RTMP server. Defaults are documented in `starling.example.toml`.
#[derive(Debug, Clone)]
pub struct RtmpServerConfig {
    /// Time a client has from connecting to finishing the handshake and `connect` command.
    pub handshake_timeout: Duration,
    /// A publisher (or a client that has not started publishing or playing) that sends
    /// nothing for this long is disconnected; so is a player that accepts no bytes.
    pub idle_timeout: Duration,
    /// Largest RTMP message accepted, checked before any allocation.
    pub max_message_len: usize,
    /// Largest chunk size a peer may set.
    pub max_chunk_size: u32,
    /// Chunk size we send with.
    pub out_chunk_size: u32,
    /// Simultaneous connections; more are closed at once with a log line.
    pub max_connections: usize,
    /// Simultaneous connections from one IP address.
    pub max_connections_per_address: usize,
    /// Simultaneous publishers.
    pub max_publishers: usize,
    /// Simultaneous players (waiting or watching).
    pub max_players: usize,
    /// A player with nothing to play (the channel is not live, or its publisher left)
    /// is disconnected after this long.
    pub play_wait_timeout: Duration,
    /// Bytes partially received messages may reserve per connection, across chunk
    /// streams; at least `max_message_len`.
    pub max_partial_message_len: usize,
    /// AMF0 values one command or data message may decode to.
    pub max_amf_values: usize,
}

impl Default for RtmpServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_message_len: 8 << 20,
            max_chunk_size: 16 << 20,
            out_chunk_size: 4096,
            max_connections: 4096,
            max_connections_per_address: 64,
            max_publishers: 256,
            max_players: 3072,
            play_wait_timeout: Duration::from_secs(30),
            max_partial_message_len: 8 << 20,
            max_amf_values: starling_rtmp::amf0::DEFAULT_MAX_VALUES,
        }
    }
}

/// The role slots connections take when they start to publish or play.
pub(crate) struct RoleSlots {
    pub publishers: Arc<Semaphore>,
    pub players: Arc<Semaphore>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_refused_per_address: AtomicU64,
    pub publishes: AtomicU64,
    pub publishes_refused: AtomicU64,
    pub plays: AtomicU64,
    pub plays_refused: AtomicU64,
    pub play_wait_timeouts: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub media_errors: AtomicU64,
}

impl ServerStats {
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rows = [
            (
                "starling_rtmp_connections_total",
                "counter",
                "RTMP connections accepted.",
                &self.connections,
            ),
            (
                "starling_rtmp_connections_open",
                "gauge",
                "RTMP connections open now.",
                &self.connections_open,
            ),
            (
                "starling_rtmp_connections_refused_total",
                "counter",
                "RTMP connections closed at once: the node's connection cap was reached.",
                &self.connections_refused,
            ),
            (
                "starling_rtmp_connections_refused_per_address_total",
                "counter",
                "RTMP connections closed at once: their address's connection cap was reached.",
                &self.connections_refused_per_address,
            ),
            (
                "starling_rtmp_publishes_total",
                "counter",
                "RTMP publishes started.",
                &self.publishes,
            ),
            (
                "starling_rtmp_publishes_refused_total",
                "counter",
                "RTMP publishes refused (key, caps, channel live elsewhere).",
                &self.publishes_refused,
            ),
            (
                "starling_rtmp_plays_total",
                "counter",
                "RTMP plays started.",
                &self.plays,
            ),
            (
                "starling_rtmp_plays_refused_total",
                "counter",
                "RTMP plays refused.",
                &self.plays_refused,
            ),
            (
                "starling_rtmp_play_wait_timeouts_total",
                "counter",
                "RTMP plays ended because the channel did not go live in time.",
                &self.play_wait_timeouts,
            ),
            (
                "starling_rtmp_protocol_errors_total",
                "counter",
                "RTMP connections ended by a protocol error.",
                &self.protocol_errors,
            ),
            (
                "starling_rtmp_timeouts_total",
                "counter",
                "RTMP connections ended by a handshake or idle timeout.",
                &self.timeouts,
            ),
            (
                "starling_rtmp_media_errors_total",
                "counter",
                "RTMP media messages that could not be read as media.",
                &self.media_errors,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// Serve RTMP on `listener` until `shutdown` turns true, then close every connection
/// (publishers end their streams cleanly) and return.
pub async fn serve(
    listener: TcpListener,
    config: RtmpServerConfig,
    hub: Arc<Hub>,
    auth: Arc<dyn Authorizer>,
    stats: Arc<ServerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    match listener.local_addr() {
        Ok(addr) => info!(%addr, "RTMP listening"),
        Err(e) => warn!(error = %e, "RTMP listening on an unknown address"),
    }
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_address = Arc::new(AddressSlots::default());
    let roles = Arc::new(RoleSlots {
        publishers: Arc::new(Semaphore::new(config.max_publishers)),
        players: Arc::new(Semaphore::new(config.max_players)),
    });
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown_requested(&mut shutdown) => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "RTMP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    let n = stats.connections_refused.fetch_add(1, Ordering::Relaxed) + 1;
                    // One line per refusal would let a flood fill the log: every 64th.
                    if n % 64 == 1 {
                        warn!(%peer, limit = config.max_connections, refused = n, "RTMP connection refused: too many connections");
                    }
                    continue;
                };
                let Some(address_slot) = per_address.try_take(peer.ip(), config.max_connections_per_address) else {
                    stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                    let n = stats.connections_refused_per_address.fetch_add(1, Ordering::Relaxed) + 1;
                    if n % 64 == 1 {
                        warn!(%peer, limit = config.max_connections_per_address, refused = n, "RTMP connection refused: too many connections from this address");
                    }
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let ctx = conn::Context {
                    config: config.clone(),
                    hub: hub.clone(),
                    roles: roles.clone(),
                    auth: auth.clone(),
                    stats: stats.clone(),
                    shutdown: shutdown.clone(),
                };
                tasks.spawn(async move {
                    let _permits = (permit, address_slot);
                    conn::run(socket, peer, ctx).await;
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Connections watch the same shutdown signal; give them a moment to say goodbye.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    info!("RTMP server stopped");
}

/// Resolves once shutdown is requested (or the sender is gone, which means the same).
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // The borrow guard `wait_for` returns is not `Send`: drop it here, not in a select arm.
    let _ = rx.wait_for(|s| *s).await;
}
