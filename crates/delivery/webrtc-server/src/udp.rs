//! The shared UDP port: datagrams to their sessions.
//!
//! A datagram from an address a session already owns goes to that session. Otherwise
//! only an ICE check can open a route: its USERNAME names the session's ufrag
//! ([`starling_webrtc::demux::ice_ufrag`]), and the source address is bound to that
//! session. Everything else is counted and dropped after one look at its first bytes,
//! so a flood of garbage costs a hash lookup per datagram and allocates nothing.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket},
    sync::{atomic::Ordering, Arc, Weak},
    time::Instant,
};

use bytes::BytesMut;
use starling_sync::lock;
use starling_webrtc::demux;
use tokio::{net::UdpSocket, sync::mpsc::error::TrySendError};

use crate::{session::Command, WebRtcServer};

/// Largest datagram read (an Ethernet MTU's worth and more; WebRTC keeps under 1200).
const MAX_DATAGRAM: usize = 2048;
/// Datagrams are read into one shared chunk of this size and handed on as slices of it:
/// one allocation per ~50 datagrams instead of an allocation and a copy each (which,
/// with 200 WHIP publishers, were a fifth of the node's CPU in `perf`).
const CHUNK: usize = 64 * 1024;

/// The host candidates for a socket bound at `local`.
pub(crate) fn candidates(local: SocketAddr, public: &[IpAddr]) -> Vec<SocketAddr> {
    let port = local.port();
    if !public.is_empty() {
        return public.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let mut out = Vec::new();
    if let Some(ip) = default_route_ip() {
        out.push(SocketAddr::new(ip, port));
    }
    out.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    out
}

/// This machine's address on its default route: the local address of a UDP socket
/// "connected" to a public address (connecting a UDP socket sends nothing).
fn default_route_ip() -> Option<IpAddr> {
    let s = StdUdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

pub(crate) async fn receive_loop(server: Weak<WebRtcServer>, socket: Arc<UdpSocket>) {
    let mut buf = BytesMut::with_capacity(CHUNK);
    loop {
        if buf.capacity() < MAX_DATAGRAM {
            // The old chunk lives on while datagrams sliced from it are queued.
            buf = BytesMut::with_capacity(CHUNK);
        }
        let (n, from) = match socket.recv_buf_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors of earlier sends surface here on some systems: not fatal.
            Err(e) => {
                tracing::debug!(error = %e, "webrtc: UDP receive error");
                continue;
            }
        };
        let Some(server) = server.upgrade() else {
            return;
        };
        let at = Instant::now();
        let data = buf.split_to(n).freeze();
        let tx = {
            let mut sessions = lock(&server.sessions);
            let id = match sessions.by_addr.get(&from) {
                Some(id) => Some(id.clone()),
                None => demux::ice_ufrag(&data)
                    .and_then(|ufrag| sessions.by_ufrag.get(ufrag).cloned())
                    .inspect(|id| {
                        sessions.by_addr.insert(from, id.clone());
                    }),
            };
            id.and_then(|id| sessions.by_id.get(&id).map(|e| e.tx.clone()))
        };
        let Some(tx) = tx else {
            server
                .metrics
                .unrouted_datagrams_total
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let cmd = Command::Datagram {
            at,
            transport: starling_webrtc::Transport::Udp,
            from,
            data,
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(cmd) {
            server
                .metrics
                .dropped_datagrams_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
