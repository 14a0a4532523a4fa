//! Safe wrappers over libsrt sockets: create, configure, listen, accept, connect, move
//! messages, read statistics, close.
//!
//! libsrt runs its own threads (one receiver and one sender per UDP port) and its
//! socket calls are thread-safe; sockets are plain integer ids that libsrt validates on
//! every call, so using a closed one is an error, never undefined behaviour. The calls
//! here block (with the timeouts the caller sets), so drivers run them on threads of
//! their own, not on an async executor.
#![allow(unsafe_code)]

use std::{
    ffi::CStr,
    mem,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::raw::{c_char, c_int, c_void},
    sync::Once,
    time::Duration,
};

use crate::{ffi, LinkStats};

/// An error from libsrt, with its code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message} (SRT error {code})")]
pub struct SrtError {
    pub op: &'static str,
    pub code: i32,
    pub message: String,
}

impl SrtError {
    fn last(op: &'static str) -> Self {
        // SAFETY: libsrt keeps the last error per thread; the string is static or
        // thread-local storage of libsrt, valid until the next call on this thread, and
        // copied out at once.
        let (code, message) = unsafe {
            let code = ffi::srt_getlasterror(std::ptr::null_mut());
            let p = ffi::srt_getlasterror_str();
            let message = if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            };
            ffi::srt_clearlasterror();
            (code, message)
        };
        Self { op, code, message }
    }

    /// A receive or send that timed out (or would block): try again.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.code,
            ffi::SRT_EASYNCRCV | ffi::SRT_EASYNCSND | ffi::SRT_ETIMEOUT
        )
    }

    /// The connection is gone (closed by the peer, broken, or closed here).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.code,
            ffi::SRT_ECONNLOST | ffi::SRT_ENOCONN | ffi::SRT_EINVSOCK
        )
    }

    /// The peer refused the connection (see [`Socket::reject_reason`]).
    pub fn is_rejected(&self) -> bool {
        self.code == ffi::SRT_ECONNREJ
    }
}

static STARTUP: Once = Once::new();

/// Starts libsrt once per process and routes its log lines to `tracing` (target
/// `libsrt`, errors and above; libsrt's warnings include every lost packet).
pub fn startup() {
    STARTUP.call_once(|| {
        // SAFETY: called once, before any other libsrt call of this process; the log
        // handler is a plain function that lives forever.
        unsafe {
            ffi::srt_startup();
            ffi::srt_setlogflags(ffi::SRT_LOGF_DISABLE_ALL);
            ffi::srt_setloghandler(std::ptr::null_mut(), Some(log_handler));
            ffi::srt_setloglevel(ffi::LOG_ERR);
        }
    });
}

unsafe extern "C" fn log_handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: libsrt passes NUL-terminated strings valid for this call.
            unsafe { CStr::from_ptr(p) }
                .to_string_lossy()
                .trim_end()
                .to_owned()
        }
    };
    let (area, message) = (text(area), text(message));
    if level <= ffi::LOG_ERR {
        tracing::warn!(target: "libsrt", %area, "{message}");
    } else {
        tracing::debug!(target: "libsrt", %area, "{message}");
    }
}

/// The libsrt version, as `(major, minor, patch)`.
pub fn version() -> (u32, u32, u32) {
    // SAFETY: a getter without preconditions.
    let v = unsafe { ffi::srt_getversion() };
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// The state of a socket, as libsrt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    Connected,
    /// Broken, closing, closed or unknown: nothing more will come.
    Gone,
    /// Any state before connected (init, opened, listening, connecting).
    Other,
}

/// One SRT socket, closed when dropped.
#[derive(Debug)]
pub struct Socket {
    id: ffi::SRTSOCKET,
}

/// Closes a socket from another thread (which makes its blocked calls return).
#[derive(Debug, Clone, Copy)]
pub struct Closer(ffi::SRTSOCKET);

impl Closer {
    pub fn close(self) {
        // SAFETY: closing an id that is already closed is an error libsrt reports.
        unsafe { ffi::srt_close(self.0) };
    }
}

impl Socket {
    /// A new socket in live mode (libsrt's default transmission type).
    pub fn new() -> Result<Self, SrtError> {
        startup();
        // SAFETY: no preconditions once libsrt is started.
        let id = unsafe { ffi::srt_create_socket() };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(SrtError::last("srt_create_socket"));
        }
        let s = Self { id };
        s.set_i32(ffi::SRTO_TRANSTYPE, ffi::SRTT_LIVE, "transtype")?;
        Ok(s)
    }

    /// libsrt's id of this socket, for logs.
    pub fn id(&self) -> i32 {
        self.id
    }

    pub fn closer(&self) -> Closer {
        Closer(self.id)
    }

    fn set_raw(
        &self,
        opt: c_int,
        ptr: *const c_void,
        len: c_int,
        op: &'static str,
    ) -> Result<(), SrtError> {
        // SAFETY: `ptr` points to `len` readable bytes for the duration of the call.
        if unsafe { ffi::srt_setsockflag(self.id, opt, ptr, len) } == ffi::SRT_ERROR {
            return Err(SrtError::last(op));
        }
        Ok(())
    }

    fn set_i32(&self, opt: c_int, v: i32, op: &'static str) -> Result<(), SrtError> {
        let v: c_int = v;
        self.set_raw(
            opt,
            (&v as *const c_int).cast(),
            mem::size_of::<c_int>() as c_int,
            op,
        )
    }

    fn set_bool(&self, opt: c_int, v: bool, op: &'static str) -> Result<(), SrtError> {
        // libsrt reads boolean options as int (it accepts bool-sized too).
        self.set_i32(opt, i32::from(v), op)
    }

    fn set_str(&self, opt: c_int, v: &str, op: &'static str) -> Result<(), SrtError> {
        self.set_raw(opt, v.as_ptr().cast(), v.len() as c_int, op)
    }

    fn get_i32(&self, opt: c_int, op: &'static str) -> Result<i32, SrtError> {
        let mut v: c_int = 0;
        let mut len = mem::size_of::<c_int>() as c_int;
        // SAFETY: `v` has room for `len` bytes; libsrt writes at most that.
        if unsafe { ffi::srt_getsockflag(self.id, opt, (&mut v as *mut c_int).cast(), &mut len) }
            == ffi::SRT_ERROR
        {
            return Err(SrtError::last(op));
        }
        Ok(v)
    }

    /// Blocking or not for receives (default blocking).
    pub fn set_recv_blocking(&self, blocking: bool) -> Result<(), SrtError> {
        self.set_bool(ffi::SRTO_RCVSYN, blocking, "SRTO_RCVSYN")
    }

    /// Blocking or not for sends (default blocking).
    pub fn set_send_blocking(&self, blocking: bool) -> Result<(), SrtError> {
        self.set_bool(ffi::SRTO_SNDSYN, blocking, "SRTO_SNDSYN")
    }

    /// How long a blocking receive waits before it returns a timeout.
    pub fn set_recv_timeout(&self, t: Duration) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_RCVTIMEO, millis(t), "SRTO_RCVTIMEO")
    }

    /// How long a blocking send waits for room before it returns a timeout.
    pub fn set_send_timeout(&self, t: Duration) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_SNDTIMEO, millis(t), "SRTO_SNDTIMEO")
    }

    /// The TSBPD latency this side asks for, both ways (the handshake takes the larger
    /// of the two sides' values).
    pub fn set_latency(&self, t: Duration) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_LATENCY, millis(t), "SRTO_LATENCY")
    }

    /// The receive latency in effect (after the handshake: the negotiated one).
    pub fn recv_latency(&self) -> Result<Duration, SrtError> {
        let ms = self.get_i32(ffi::SRTO_RCVLATENCY, "SRTO_RCVLATENCY")?;
        Ok(Duration::from_millis(ms.max(0).unsigned_abs().into()))
    }

    /// The latency in effect towards the peer (what it buffers for what we send).
    pub fn peer_latency(&self) -> Result<Duration, SrtError> {
        let ms = self.get_i32(ffi::SRTO_PEERLATENCY, "SRTO_PEERLATENCY")?;
        Ok(Duration::from_millis(ms.max(0).unsigned_abs().into()))
    }

    /// AES passphrase (10 to 79 characters; empty turns encryption off) and key length
    /// in bytes (16, 24 or 32; 0 lets the sender choose).
    pub fn set_passphrase(&self, passphrase: &str, key_len: u8) -> Result<(), SrtError> {
        self.set_str(ffi::SRTO_PASSPHRASE, passphrase, "SRTO_PASSPHRASE")?;
        if !passphrase.is_empty() {
            self.set_i32(ffi::SRTO_PBKEYLEN, i32::from(key_len), "SRTO_PBKEYLEN")?;
        }
        Ok(())
    }

    /// The stream id a caller sends in its handshake.
    pub fn set_stream_id(&self, id: &str) -> Result<(), SrtError> {
        self.set_str(ffi::SRTO_STREAMID, id, "SRTO_STREAMID")
    }

    /// The stream id the peer sent (on an accepted socket).
    pub fn stream_id(&self) -> Result<String, SrtError> {
        let mut buf = [0u8; crate::streamid::MAX_STREAM_ID_LEN + 1];
        let mut len = buf.len() as c_int;
        // SAFETY: `buf` has room for `len` bytes; libsrt writes at most that and the
        // length it wrote.
        if unsafe {
            ffi::srt_getsockflag(
                self.id,
                ffi::SRTO_STREAMID,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        } == ffi::SRT_ERROR
        {
            return Err(SrtError::last("SRTO_STREAMID"));
        }
        let len = usize::try_from(len).unwrap_or(0).min(buf.len());
        Ok(String::from_utf8_lossy(&buf[..len])
            .trim_end_matches('\0')
            .to_owned())
    }

    /// How long the connection may stay silent before libsrt breaks it.
    pub fn set_peer_idle_timeout(&self, t: Duration) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_PEERIDLETIMEO, millis(t), "SRTO_PEERIDLETIMEO")
    }

    /// How long `connect` tries before it gives up.
    pub fn set_connect_timeout(&self, t: Duration) -> Result<(), SrtError> {
        self.set_i32(ffi::SRTO_CONNTIMEO, millis(t), "SRTO_CONNTIMEO")
    }

    /// Receive buffer: libsrt's own (bytes) and the UDP socket's, with the flight
    /// window that goes with them, sized for `bitrate` over `latency` plus an RTT (the
    /// formula of libsrt's configuration guide), so that a fast feed over a long link
    /// is not throttled by the defaults (8 MiB / 25,600 packets).
    pub fn size_receive_buffers(
        &self,
        bitrate_bps: u64,
        latency: Duration,
        rtt: Duration,
    ) -> Result<(), SrtError> {
        let secs = (latency + rtt).as_secs_f64();
        let bytes = ((bitrate_bps as f64 / 8.0) * secs * 1.5) as u64;
        // libsrt's payload is 1316 bytes; its buffer counts 1500-byte cells.
        let packets = (bytes / 1316).clamp(8192, 1 << 20) as i32;
        let buf = (packets as i64 * 1500).min(i32::MAX as i64) as i32;
        self.set_i32(ffi::SRTO_FC, packets, "SRTO_FC")?;
        self.set_i32(ffi::SRTO_RCVBUF, buf, "SRTO_RCVBUF")?;
        self.set_i32(ffi::SRTO_UDP_RCVBUF, buf, "SRTO_UDP_RCVBUF")?;
        Ok(())
    }

    /// How long `close` waits for unacknowledged data to be delivered (libsrt's live
    /// mode default is none: a sender that closes right after its last message would
    /// lose it).
    pub fn set_linger(&self, t: Option<Duration>) -> Result<(), SrtError> {
        let v = libc::linger {
            l_onoff: c_int::from(t.is_some()),
            l_linger: t.map_or(0, |t| c_int::try_from(t.as_secs()).unwrap_or(c_int::MAX)),
        };
        self.set_raw(
            ffi::SRTO_LINGER,
            (&v as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as c_int,
            "SRTO_LINGER",
        )
    }

    /// Lets a listener bind to a port another socket of this process just released.
    pub fn set_reuse_address(&self, on: bool) -> Result<(), SrtError> {
        self.set_bool(ffi::SRTO_REUSEADDR, on, "SRTO_REUSEADDR")
    }

    pub fn bind(&self, addr: SocketAddr) -> Result<(), SrtError> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
        if unsafe {
            ffi::srt_bind(
                self.id,
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        } == ffi::SRT_ERROR
        {
            return Err(SrtError::last("srt_bind"));
        }
        Ok(())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), SrtError> {
        // SAFETY: plain call on a socket id.
        if unsafe { ffi::srt_listen(self.id, backlog) } == ffi::SRT_ERROR {
            return Err(SrtError::last("srt_listen"));
        }
        Ok(())
    }

    /// Installs the hook that sees every caller's handshake before it is accepted (its
    /// stream id and address) and may configure the socket or refuse it with a code.
    /// The hook runs on libsrt's receiving thread of this port: it must be quick.
    /// It lives as long as the process (a listener is made once; freeing the hook while
    /// libsrt could still call it is a race this avoids).
    pub fn set_listen_hook(&self, hook: ListenHook) -> Result<(), SrtError> {
        let leaked: &'static ListenHook = Box::leak(Box::new(hook));
        let opaque = (leaked as *const ListenHook).cast_mut().cast::<c_void>();
        // SAFETY: `opaque` points to a hook that is never freed; the callback only reads it.
        if unsafe { ffi::srt_listen_callback(self.id, Some(listen_trampoline), opaque) }
            == ffi::SRT_ERROR
        {
            return Err(SrtError::last("srt_listen_callback"));
        }
        Ok(())
    }

    /// Waits for a caller (blocking), returning its socket and address.
    pub fn accept(&self) -> Result<(Socket, Option<SocketAddr>), SrtError> {
        // SAFETY: zeroed sockaddr_storage is a valid (AF_UNSPEC) value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: `storage` has room for `len` bytes.
        let id = unsafe {
            ffi::srt_accept(
                self.id,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if id == ffi::SRT_INVALID_SOCK {
            return Err(SrtError::last("srt_accept"));
        }
        Ok((Socket { id }, from_sockaddr(&storage)))
    }

    /// Connects to a listener (blocking, up to the connect timeout).
    pub fn connect(&self, addr: SocketAddr) -> Result<(), SrtError> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
        if unsafe {
            ffi::srt_connect(
                self.id,
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        } == ffi::SRT_ERROR
        {
            return Err(SrtError::last("srt_connect"));
        }
        Ok(())
    }

    /// Why the connection was refused, as libsrt or the peer said.
    pub fn reject_reason(&self) -> RejectReason {
        // SAFETY: plain call on a socket id.
        let code = unsafe { ffi::srt_getrejectreason(self.id) };
        RejectReason::from_code(code)
    }

    /// Receives one message (one live-mode packet, up to 1456 bytes): its length, or a
    /// timeout, or the end of the connection.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, SrtError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is writable for `len` bytes.
        let n = unsafe { ffi::srt_recvmsg(self.id, buf.as_mut_ptr().cast(), len) };
        if n < 0 {
            return Err(SrtError::last("srt_recvmsg"));
        }
        Ok(n as usize)
    }

    /// Sends one message (at most the payload size, 1316 bytes by default).
    pub fn send(&self, buf: &[u8]) -> Result<usize, SrtError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is readable for `len` bytes.
        let n = unsafe { ffi::srt_sendmsg(self.id, buf.as_ptr().cast(), len, -1, 0) };
        if n < 0 {
            return Err(SrtError::last("srt_sendmsg"));
        }
        Ok(n as usize)
    }

    pub fn state(&self) -> SocketState {
        // SAFETY: plain call on a socket id.
        match unsafe { ffi::srt_getsockstate(self.id) } {
            ffi::SRTS_CONNECTED => SocketState::Connected,
            ffi::SRTS_BROKEN | ffi::SRTS_CLOSING | ffi::SRTS_CLOSED | ffi::SRTS_NONEXIST => {
                SocketState::Gone
            }
            _ => SocketState::Other,
        }
    }

    /// The link's counters since the connection started.
    pub fn stats(&self) -> Result<LinkStats, SrtError> {
        let mut perf = ffi::CBytePerfMon::default();
        // SAFETY: `perf` is a correctly laid out SRT_TRACEBSTATS (checked by a test).
        if unsafe { ffi::srt_bstats(self.id, &mut perf, 0) } == ffi::SRT_ERROR {
            return Err(SrtError::last("srt_bstats"));
        }
        Ok(LinkStats::from_perf(&perf))
    }

    pub fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        self.addr(ffi::srt_getsockname, "srt_getsockname")
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, SrtError> {
        self.addr(ffi::srt_getpeername, "srt_getpeername")
    }

    fn addr(
        &self,
        f: unsafe extern "C" fn(ffi::SRTSOCKET, *mut libc::sockaddr, *mut c_int) -> c_int,
        op: &'static str,
    ) -> Result<SocketAddr, SrtError> {
        // SAFETY: zeroed sockaddr_storage is valid; it has room for `len` bytes.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as c_int;
        if unsafe {
            f(
                self.id,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        } == ffi::SRT_ERROR
        {
            return Err(SrtError::last(op));
        }
        from_sockaddr(&storage).ok_or(SrtError {
            op,
            code: 0,
            message: "not an IP address".into(),
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: plain call on a socket id; an already closed id is an error, ignored.
        unsafe { ffi::srt_close(self.id) };
    }
}

/// Waits for one socket to become readable (or to fail), with libsrt's epoll.
#[derive(Debug)]
pub struct ReadPoll {
    eid: c_int,
}

impl ReadPoll {
    pub fn new(socket: &Socket) -> Result<Self, SrtError> {
        // SAFETY: plain calls; `events` outlives the call.
        let eid = unsafe { ffi::srt_epoll_create() };
        if eid < 0 {
            return Err(SrtError::last("srt_epoll_create"));
        }
        let poll = Self { eid };
        let events = ffi::SRT_EPOLL_IN | ffi::SRT_EPOLL_ERR;
        // SAFETY: as above.
        if unsafe { ffi::srt_epoll_add_usock(eid, socket.id, &events) } < 0 {
            return Err(SrtError::last("srt_epoll_add_usock"));
        }
        Ok(poll)
    }

    /// Whether the socket became readable or failed within `timeout`.
    pub fn wait(&self, timeout: Duration) -> Result<bool, SrtError> {
        let mut ev = [ffi::SRT_EPOLL_EVENT::default(); 1];
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        // SAFETY: `ev` has room for one event.
        let n = unsafe { ffi::srt_epoll_uwait(self.eid, ev.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let e = SrtError::last("srt_epoll_uwait");
            return if e.is_timeout() { Ok(false) } else { Err(e) };
        }
        Ok(n > 0)
    }
}

impl Drop for ReadPoll {
    fn drop(&mut self) {
        // SAFETY: plain call; the id is ours.
        unsafe { ffi::srt_epoll_release(self.eid) };
    }
}

/// The handshake of one caller, as the listen hook sees it.
#[derive(Debug)]
pub struct Handshake<'a> {
    /// The socket being accepted: options set on it (passphrase, latency) apply to
    /// this connection.
    pub socket: PendingSocket,
    pub peer: Option<SocketAddr>,
    /// The stream id, lossily decoded (bad bytes become U+FFFD, which the parser refuses).
    pub stream_id: &'a str,
}

/// A socket in the middle of its handshake: it may be configured, never closed here.
#[derive(Debug, Clone, Copy)]
pub struct PendingSocket(ffi::SRTSOCKET);

impl PendingSocket {
    /// The id the socket will have once accepted.
    pub fn id(&self) -> i32 {
        self.0
    }

    pub fn set_passphrase(&self, passphrase: &str, key_len: u8) -> Result<(), SrtError> {
        let s = mem::ManuallyDrop::new(Socket { id: self.0 });
        s.set_passphrase(passphrase, key_len)
    }

    pub fn set_latency(&self, t: Duration) -> Result<(), SrtError> {
        let s = mem::ManuallyDrop::new(Socket { id: self.0 });
        s.set_latency(t)
    }
}

/// Decides a handshake: `Ok` accepts it, `Err(code)` refuses it with an `SRT_REJX_*`
/// code that the caller sees.
pub type ListenHook = Box<dyn Fn(&Handshake<'_>) -> Result<(), i32> + Send + Sync>;

unsafe extern "C" fn listen_trampoline(
    opaque: *mut c_void,
    ns: ffi::SRTSOCKET,
    _hsversion: c_int,
    peeraddr: *const libc::sockaddr,
    streamid: *const c_char,
) -> c_int {
    // SAFETY: `opaque` is the leaked hook of `set_listen_hook`.
    let hook = unsafe { &*(opaque as *const ListenHook) };
    let stream_id = if streamid.is_null() {
        String::new()
    } else {
        // SAFETY: libsrt passes a NUL-terminated string valid for this call.
        unsafe { CStr::from_ptr(streamid) }
            .to_string_lossy()
            .into_owned()
    };
    let peer = if peeraddr.is_null() {
        None
    } else {
        // SAFETY: libsrt passes a sockaddr_in or sockaddr_in6 per its family; copy only
        // as many bytes as that family has.
        unsafe {
            let mut storage: libc::sockaddr_storage = mem::zeroed();
            let len = match c_int::from((*peeraddr).sa_family) {
                libc::AF_INET => mem::size_of::<libc::sockaddr_in>(),
                libc::AF_INET6 => mem::size_of::<libc::sockaddr_in6>(),
                _ => 0,
            };
            std::ptr::copy_nonoverlapping(
                peeraddr.cast::<u8>(),
                (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                len,
            );
            from_sockaddr(&storage)
        }
    };
    let hs = Handshake {
        socket: PendingSocket(ns),
        peer,
        stream_id: &stream_id,
    };
    // A panic must not unwind into C.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&hs))) {
        Ok(Ok(())) => 0,
        Ok(Err(code)) => {
            // SAFETY: plain call on the pending socket's id.
            unsafe { ffi::srt_setrejectreason(ns, code) };
            -1
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { ffi::srt_setrejectreason(ns, crate::reject::ISE) };
            -1
        }
    }
}

/// Why a connection was refused: libsrt's own reasons (`SRT_REJ_*`, below 1000) or a
/// server's (`SRT_REJX_*`, 1000 and above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectReason {
    pub code: i32,
    pub text: String,
}

impl RejectReason {
    pub fn from_code(code: i32) -> Self {
        let text = if code >= 1000 {
            crate::reject::describe(code).to_owned()
        } else {
            // SAFETY: libsrt returns a static string for any code.
            let p = unsafe { ffi::srt_rejectreason_str(code) };
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: static NUL-terminated string.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        Self { code, text }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.text, self.code)
    }
}

fn millis(t: Duration) -> i32 {
    i32::try_from(t.as_millis()).unwrap_or(i32::MAX)
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: zeroed sockaddr_storage is valid; the writes below stay within the
    // family's struct, which fits in sockaddr_storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = mem::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                (storage, mem::size_of::<libc::sockaddr_in>() as c_int)
            }
            SocketAddr::V6(a) => {
                let sin6 =
                    (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                (*sin6).sin6_flowinfo = a.flowinfo();
                (*sin6).sin6_scope_id = a.scope_id();
                (storage, mem::size_of::<libc::sockaddr_in6>() as c_int)
            }
        }
    }
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field says which struct the storage holds.
    unsafe {
        match c_int::from(storage.ss_family) {
            libc::AF_INET => {
                let sin = &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let sin6 =
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}
