//! SRT (Secure Reliable Transport) for Starling.
//!
//! - [`socket`]: a thin, safe binding over libsrt 1.5 (Debian's `libsrt-openssl-dev`):
//!   sockets, the listen hook that sees each caller's stream id before accepting it,
//!   messages in and out, link statistics. docs/srt.md says why libsrt and not a
//!   pure-Rust engine: it is the reference implementation, measured on the lossy-link
//!   test bed.
//! - [`streamid`]: the stream-id parser (pure, fuzzed).
//! - [`reject`]: the rejection codes a server sends a refused caller.
//!
//! libsrt owns its sockets and threads, so this crate is not sans-IO: it is the one
//! binding the architecture allows in `protocols/`, and the drivers
//! (`ingest/srt-server`) call it from threads of their own.

mod ffi;
pub mod reject;
pub mod socket;
pub mod streamid;

pub use socket::{
    startup, version, Closer, Handshake, ListenHook, PendingSocket, RejectReason, Socket,
    SocketState, SrtError,
};
pub use streamid::{Mode, StreamId, StreamIdError};

/// What libsrt knows of a link, since it was connected.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    /// Smoothed round-trip time.
    pub rtt_ms: f64,
    /// Receiving and sending rates, Mbit/s (libsrt's moving estimates).
    pub recv_rate_mbps: f64,
    pub send_rate_mbps: f64,
    /// Estimated link bandwidth, Mbit/s.
    pub bandwidth_mbps: f64,
    /// Data packets received (retransmissions included) and their bytes.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Data packets sent (retransmissions included), and unique ones.
    pub packets_sent: u64,
    pub packets_sent_unique: u64,
    pub bytes_sent: u64,
    /// Packets found missing on receipt (each may later arrive by retransmission).
    pub packets_lost: u64,
    /// Retransmitted packets received (receiver) and sent (sender).
    pub packets_retransmitted_received: u64,
    pub packets_retransmitted_sent: u64,
    /// Packets given up on: too late to play (receiver) or to send (sender).
    pub packets_dropped: u64,
    pub packets_send_dropped: u64,
    /// Packets that could not be decrypted (wrong key).
    pub packets_undecrypted: u64,
    /// Media held in the receive buffer, waiting for its play time, in ms and bytes.
    pub receive_buffer_ms: u64,
    pub receive_buffer_bytes: u64,
    /// Unacknowledged media in the send buffer, in ms.
    pub send_buffer_ms: u64,
    /// The TSBPD latencies in effect (receiving, and the peer's for what we send).
    pub latency_ms: u64,
    pub peer_latency_ms: u64,
    /// NAK reports sent (receiver) and received (sender).
    pub naks_sent: u64,
    pub naks_received: u64,
}

impl LinkStats {
    fn from_perf(p: &ffi::CBytePerfMon) -> Self {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let i = |v: i32| u64::try_from(v).unwrap_or(0);
        Self {
            rtt_ms: p.msRTT,
            recv_rate_mbps: p.mbpsRecvRate,
            send_rate_mbps: p.mbpsSendRate,
            bandwidth_mbps: p.mbpsBandwidth,
            packets_received: u(p.pktRecvTotal),
            bytes_received: p.byteRecvTotal,
            packets_sent: u(p.pktSentTotal),
            packets_sent_unique: u(p.pktSentUniqueTotal),
            bytes_sent: p.byteSentTotal,
            packets_lost: i(p.pktRcvLossTotal),
            packets_retransmitted_received: i(p.pktRcvRetrans),
            packets_retransmitted_sent: i(p.pktRetransTotal),
            packets_dropped: i(p.pktRcvDropTotal),
            packets_send_dropped: i(p.pktSndDropTotal),
            packets_undecrypted: i(p.pktRcvUndecryptTotal),
            receive_buffer_ms: i(p.msRcvBuf),
            receive_buffer_bytes: i(p.byteRcvBuf),
            send_buffer_ms: i(p.msSndBuf),
            latency_ms: i(p.msRcvTsbPdDelay),
            peer_latency_ms: i(p.msSndTsbPdDelay),
            naks_sent: i(p.pktSentNAKTotal),
            naks_received: i(p.pktRecvNAKTotal),
        }
    }
}

/// What [`Reader::read`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A message of this many bytes is in the buffer.
    Data(usize),
    /// Nothing within the timeout; the connection is up.
    Idle,
    /// The connection has ended and everything it delivered has been read.
    End,
}

/// Reads a live-mode socket to its very end.
///
/// libsrt delivers each packet at its play time (TSBPD). When the peer closes, the
/// packets still waiting for their time remain readable for a moment, but a *blocking*
/// receive that is woken by the close returns "connection lost" and the packet at the
/// head of the buffer is gone (seen in `tests/loopback.rs`). So this reader waits with
/// libsrt's epoll, receives without blocking, and after the close keeps reading what
/// is left until a latency's worth of time has passed without anything new.
#[derive(Debug)]
pub struct Reader {
    socket: Socket,
    poll: socket::ReadPoll,
    closed_at: Option<std::time::Instant>,
    drain: std::time::Duration,
}

impl Reader {
    pub fn new(socket: Socket) -> Result<Self, SrtError> {
        socket.set_recv_blocking(false)?;
        let poll = socket::ReadPoll::new(&socket)?;
        let latency = socket
            .recv_latency()
            .unwrap_or(std::time::Duration::from_millis(120));
        Ok(Self {
            socket,
            poll,
            closed_at: None,
            drain: latency + std::time::Duration::from_millis(200),
        })
    }

    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Reads one message into `buf` (1456 bytes hold any live-mode message).
    pub fn read(&mut self, buf: &mut [u8], timeout: std::time::Duration) -> Result<Read, SrtError> {
        loop {
            match self.socket.recv(buf) {
                Ok(n) => return Ok(Read::Data(n)),
                Err(e) if e.is_timeout() => {
                    if let Some(at) = self.closed_at {
                        if at.elapsed() >= self.drain {
                            return Ok(Read::End);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    if !self.poll.wait(timeout)? {
                        return Ok(Read::Idle);
                    }
                }
                Err(e) if e.is_closed() => match self.closed_at {
                    None => self.closed_at = Some(std::time::Instant::now()),
                    Some(at) if at.elapsed() >= self.drain => return Ok(Read::End),
                    Some(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                },
                Err(e) => return Err(e),
            }
        }
    }
}
