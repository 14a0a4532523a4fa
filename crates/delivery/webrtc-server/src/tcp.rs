//! ICE-TCP (RFC 6544): the fallback for clients whose network blocks UDP. The server
//! listens on a TCP port (the UDP port's number) and offers passive host candidates;
//! a client connects and sends its ICE checks, DTLS and SRTP framed by RFC 4571 (a
//! 16-bit length before each packet).
//!
//! A connection belongs to the session its first frame names: that frame must be an ICE
//! check whose USERNAME carries the session's ufrag ([`demux::ice_ufrag`]), else the
//! connection is closed. Frames then go to that session as datagrams; what the session
//! sends to the connection's address goes back framed (`Connections`). A connection
//! that sends nothing within [`FIRST_FRAME_TIMEOUT`] is closed.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use starling_sync::lock;
use starling_webrtc::{demux, Transport};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use crate::{session::Command, WebRtcServer};

/// Longest frame taken (RFC 4571 allows 65,535; WebRTC packets stay under 1,500, DTLS
/// handshake flights a little over).
const MAX_FRAME: usize = 4096;
/// A connection must name its session this soon.
pub(crate) const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued towards one connection before they are dropped (a client that does
/// not read: TCP's own backpressure, never the session's).
const SEND_QUEUE: usize = 512;

/// The open connections, by the client's address: where a session's TCP transmits go.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    by_addr: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
}

impl Connections {
    /// Sends one packet framed to the connection of `to`; false when there is none or it
    /// is full.
    pub fn send(&self, to: SocketAddr, packet: &[u8]) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        let tx = lock(&self.by_addr).get(&to).cloned();
        let Some(tx) = tx else { return false };
        let mut b = BytesMut::with_capacity(packet.len() + 2);
        b.put_u16(len);
        b.extend_from_slice(packet);
        tx.try_send(b.freeze()).is_ok()
    }

    pub fn len(&self) -> usize {
        lock(&self.by_addr).len()
    }
}

pub(crate) async fn accept_loop(server: Weak<WebRtcServer>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "webrtc: ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(s) = server.upgrade() else { return };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(s, stream, peer));
    }
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Option<()> {
    let len = usize::from(r.read_u16().await.ok()?);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    buf.resize(len, 0);
    r.read_exact(buf).await.ok()?;
    Some(())
}

async fn connection(server: Arc<WebRtcServer>, stream: TcpStream, peer: SocketAddr) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = Vec::with_capacity(MAX_FRAME);
    // The first frame names the session.
    let first = tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut reader, &mut buf)).await;
    let session = match first {
        Ok(Some(())) => demux::ice_ufrag(&buf).and_then(|ufrag| {
            let s = lock(&server.sessions);
            s.by_ufrag
                .get(ufrag)
                .and_then(|id| s.by_id.get(id))
                .map(|e| e.tx.clone())
        }),
        _ => None,
    };
    let Some(session) = session else {
        server
            .metrics
            .unrouted_datagrams_total
            .fetch_add(1, Ordering::Relaxed);
        return;
    };
    server
        .metrics
        .tcp_connections_total
        .fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Bytes>(SEND_QUEUE);
    lock(&server.tcp.by_addr).insert(peer, tx);
    let write = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        let cmd = Command::Datagram {
            at: Instant::now(),
            transport: Transport::Tcp,
            from: peer,
            data: Bytes::copy_from_slice(&buf),
        };
        // The session is gone: so is the connection's reason to be.
        if session.send(cmd).await.is_err() {
            break;
        }
        if read_frame(&mut reader, &mut buf).await.is_none() {
            break;
        }
    }
    lock(&server.tcp.by_addr).remove(&peer);
    write.abort();
}
