use super::*;

/// What a REP peer (ffmpeg's `zmq` filter, libzmq) sends first.
fn rep_hello() -> Vec<u8> {
    let mut out = greeting().to_vec();
    out[32] = 1; // as-server
    command(&mut out, b"READY", &[(b"Socket-Type", b"REP")]);
    out
}

fn reply(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    frame(&mut out, 0, b"", true);
    for (i, p) in parts.iter().enumerate() {
        frame(&mut out, 0, p, i + 1 < parts.len());
    }
    out
}

fn ready() -> ReqSocket {
    let mut s = ReqSocket::new();
    s.take_output();
    s.receive(&rep_hello()).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Ready));
    s
}

#[test]
fn greets_and_says_ready_at_once() {
    let mut s = ReqSocket::new();
    let out = s.take_output();
    assert_eq!(out[0], 0xFF);
    assert_eq!(out[9], 0x7F);
    assert_eq!(&out[10..12], &[3, 0]);
    assert_eq!(&out[12..17], b"NULL\0");
    assert_eq!(out[32], 0, "as client");
    // READY with the socket type.
    let ready = &out[GREETING_LEN..];
    assert_eq!(ready[0], COMMAND);
    assert_eq!(usize::from(ready[1]), ready.len() - 2);
    assert_eq!(&ready[2..8], b"\x05READY");
    assert_eq!(&ready[8..], b"\x0bSocket-Type\0\0\0\x03REQ");
    assert!(!s.can_request());
    assert_eq!(s.request(&[b"x"]), Err(Error::NotReady));
}

#[test]
fn a_request_and_its_reply_byte_by_byte() {
    let mut s = ReqSocket::new();
    s.take_output();
    // The peer's bytes one at a time: nothing is decided before its time.
    for b in rep_hello() {
        s.receive(&[b]).unwrap();
    }
    assert_eq!(s.poll_event(), Some(Event::Ready));
    s.request(&[b"crop@v x 100"]).unwrap();
    assert_eq!(s.take_output(), b"\x01\x00\x00\x0ccrop@v x 100");
    assert_eq!(s.request(&[b"again"]), Err(Error::Busy));
    for b in reply(&[b"0 Success"]) {
        s.receive(&[b]).unwrap();
    }
    assert_eq!(
        s.poll_event(),
        Some(Event::Reply(vec![b"0 Success".to_vec()]))
    );
    assert!(s.can_request());
}

#[test]
fn long_frames_both_ways() {
    let mut s = ready();
    let big = vec![b'a'; 300];
    s.request(&[&big, b"tail"]).unwrap();
    let out = s.take_output();
    assert_eq!(&out[..2], &[MORE, 0]);
    assert_eq!(out[2], MORE | LONG);
    assert_eq!(&out[3..11], &300u64.to_be_bytes());
    assert_eq!(&out[311..], b"\x00\x04tail");
    s.receive(&reply(&[&big])).unwrap();
    assert_eq!(s.poll_event(), Some(Event::Reply(vec![big])));
}

#[test]
fn heartbeats_are_ignored() {
    let mut s = ready();
    let mut ping = Vec::new();
    command(&mut ping, b"PING", &[]);
    s.receive(&ping).unwrap();
    assert_eq!(s.poll_event(), None);
}

#[test]
fn bad_peers_are_named() {
    let fails = |bytes: &[u8]| {
        let mut s = ReqSocket::new();
        let e = s.receive(bytes).unwrap_err();
        // Once failed, always failed.
        assert!(s.receive(&rep_hello()).is_err());
        e
    };
    assert!(matches!(fails(b"HTTP/1.1 200 OK\r\n"), Error::NotZmtp(_)));
    let mut old = greeting();
    old[10] = 2;
    assert_eq!(fails(&old), Error::OldVersion(2, 0));
    let mut curve = greeting();
    curve[12..17].copy_from_slice(b"CURVE");
    assert_eq!(fails(&curve), Error::Mechanism("CURVE".into()));
    let mut pub_peer = greeting().to_vec();
    command(&mut pub_peer, b"READY", &[(b"Socket-Type", b"PUB")]);
    assert_eq!(fails(&pub_peer), Error::SocketType("PUB".into()));
    let mut refused = greeting().to_vec();
    let mut body = b"\x05ERROR".to_vec();
    body.push(6);
    body.extend_from_slice(b"denied");
    frame(&mut refused, COMMAND, &body, false);
    assert_eq!(fails(&refused), Error::Refused("denied".into()));
    let mut huge = greeting().to_vec();
    huge.push(LONG);
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(fails(&huge), Error::FrameTooLong(u64::MAX));
    let mut early = greeting().to_vec();
    frame(&mut early, 0, b"hello", false);
    assert_eq!(fails(&early), Error::Early);
    let mut truncated_ready = greeting().to_vec();
    frame(
        &mut truncated_ready,
        COMMAND,
        b"\x05READY\x0bSocket-Type\0\0\0\x09REP",
        false,
    );
    assert_eq!(fails(&truncated_ready), Error::BadCommand("READY"));
}

#[test]
fn replies_must_be_asked_for_and_enveloped() {
    let mut s = ready();
    assert_eq!(s.receive(&reply(&[b"x"])), Err(Error::Unasked));
    let mut s = ready();
    s.request(&[b"q"]).unwrap();
    let mut bare = Vec::new();
    frame(&mut bare, 0, b"0 Success", false);
    assert_eq!(s.receive(&bare), Err(Error::NoDelimiter));
    let mut s = ready();
    s.request(&[b"q"]).unwrap();
    let parts: Vec<&[u8]> = vec![b"p"; MAX_PARTS + 1];
    assert_eq!(s.receive(&reply(&parts)), Err(Error::TooManyParts));
}
