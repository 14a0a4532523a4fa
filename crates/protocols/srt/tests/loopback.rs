//! The binding against libsrt itself, over loopback: a listener with a hook, callers
//! with stream ids and passphrases, every message delivered including the last ones.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use starling_srt::{reject, Handshake, Read, Reader, Socket, SocketState};

fn listener(
    hook: impl Fn(&Handshake<'_>) -> Result<(), i32> + Send + Sync + 'static,
) -> (Socket, SocketAddr) {
    let l = Socket::new().expect("socket");
    l.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    l.set_listen_hook(Box::new(hook)).expect("hook");
    l.listen(8).expect("listen");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}

fn caller(
    addr: SocketAddr,
    stream_id: &str,
    passphrase: &str,
) -> Result<Socket, (starling_srt::SrtError, starling_srt::RejectReason)> {
    let c = Socket::new().expect("socket");
    c.set_stream_id(stream_id).expect("stream id");
    c.set_connect_timeout(Duration::from_secs(3))
        .expect("timeout");
    c.set_latency(Duration::from_millis(120)).expect("latency");
    if !passphrase.is_empty() {
        c.set_passphrase(passphrase, 16).expect("passphrase");
    }
    match c.connect(addr) {
        Ok(()) => Ok(c),
        Err(e) => {
            let r = c.reject_reason();
            Err((e, r))
        }
    }
}

#[test]
fn messages_flow_and_the_tail_arrives_on_a_clean_close() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (l, addr) = listener(move |hs| {
        s2.lock().expect("lock").push(hs.stream_id.to_owned());
        hs.socket
            .set_passphrase("a passphrase of ours", 32)
            .map_err(|_| reject::ISE)?;
        Ok(())
    });
    let receiver = thread::spawn(move || {
        let (s, peer) = l.accept().expect("accept");
        assert!(peer.is_some());
        assert_eq!(
            s.stream_id().expect("stream id"),
            "#!::r=news,m=publish,s=k"
        );
        let mut r = Reader::new(s).expect("reader");
        let mut got = Vec::new();
        let mut buf = [0u8; 1500];
        // Statistics are read while connected: a closed socket has none (here every
        // message may well be read after the close, from the receive buffer).
        let mut stats = r.socket().stats().expect("stats");
        loop {
            match r.read(&mut buf, Duration::from_secs(5)).expect("read") {
                Read::Data(n) => got.push(buf[..n].to_vec()),
                Read::Idle => panic!("nothing for 5 s"),
                Read::End => break,
            }
            if let Ok(now) = r.socket().stats() {
                stats = now;
            }
        }
        (got, stats)
    });
    let c = caller(addr, "#!::r=news,m=publish,s=k", "a passphrase of ours").expect("connect");
    c.set_linger(Some(Duration::from_secs(3))).expect("linger");
    assert_eq!(c.state(), SocketState::Connected);
    for i in 0..2000u32 {
        let mut msg = vec![0u8; 1316];
        msg[..4].copy_from_slice(&i.to_be_bytes());
        c.send(&msg).expect("send");
        if i % 100 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    // A clean close right after the last send: libsrt's linger keeps the socket until
    // the receiver has acknowledged everything.
    drop(c);
    let (got, stats) = receiver.join().expect("receiver");
    assert_eq!(got.len(), 2000, "every message, the last ones included");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(&m[..4], &(i as u32).to_be_bytes());
    }
    assert_eq!(stats.packets_undecrypted, 0);
    assert_eq!(stats.latency_ms, 120, "the latency both sides asked for");
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[test]
fn refusals_reach_the_caller_with_their_code() {
    let (l, addr) = listener(|hs| match starling_srt::streamid::parse(hs.stream_id) {
        Ok(_) => {
            hs.socket
                .set_passphrase("the right passphrase", 16)
                .map_err(|_| reject::ISE)?;
            Ok(())
        }
        Err(e) => Err(e.reject_code()),
    });
    let keep = thread::spawn(move || {
        // Accept whatever gets through, so that the listener stays up.
        let _ = l.accept();
        l
    });
    let (_, r) = caller(addr, "#!::r=a,m=bidirectional", "").expect_err("refused");
    assert_eq!(r.code, reject::BAD_MODE, "{r}");
    let (_, r) =
        caller(addr, "#!::r=a,m=publish,s=k", "the wrong passphrase").expect_err("refused");
    assert!(r.code < 1000, "libsrt's own reason: {r}");
    assert!(r.text.contains("passphrase"), "{r}");
    let (_, r) = caller(addr, "#!::r=a,m=publish,s=k", "").expect_err("refused");
    assert!(r.code < 1000, "no passphrase: {r}");
    // The right one gets in.
    let ok = caller(addr, "#!::r=a,m=publish,s=k", "the right passphrase").expect("connect");
    drop(ok);
    let _ = keep.join();
}
