//! The P2P grid's server side end to end, on a real node publishing from ffmpeg:
//!
//! - piece lists: `…/source/pieces.txt` verifies with the key of `/p2p/key`, and every
//!   piece it lists matches the bytes the origin serves, and the bytes an edge serves
//!   (the edge shares the cluster's key and passes the list through);
//! - the tracker over real WebSockets: introductions, the signalling relay stamped with
//!   the sender, and bad input of every kind (malformed, binary, oversized, floods, a
//!   flood of connections from one address, a silent socket, a bad channel name) each
//!   answered with an error that names the cause, while the node keeps serving;
//! - reports of bad pieces ban a peer and its address; a graceful shutdown closes every
//!   socket with 1001 so players reconnect elsewhere;
//! - private channels: no tracker socket and no player report without a playback token;
//! - players' reports: summed per channel into `/metrics` (promtool-checked), bad ones
//!   refused with the cause.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    net::TcpStream,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};
use starling_p2p::pieces::{check_piece, unhex, verify};
use tungstenite::{
    handshake::HandshakeError, protocol::frame::coding::CloseCode, Message, WebSocket,
};

type Ws = WebSocket<TcpStream>;

/// Opens a tracker socket, or the HTTP status and body of the refusal.
fn ws(server: &Server, path: &str) -> Result<Ws, (u16, String)> {
    let stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    match tungstenite::client(format!("ws://{}{path}", server.http), stream) {
        Ok((ws, _)) => Ok(ws),
        Err(HandshakeError::Failure(tungstenite::Error::Http(r))) => Err((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// The next JSON frame (pings skipped); panics on a close.
fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Frames until the socket closes: the JSON ones, and the close frame's code and reason.
fn until_close(ws: &mut Ws) -> (Vec<Value>, Option<(CloseCode, String)>) {
    let mut frames = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => frames.push(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(c)) => {
                return (frames, c.map(|c| (c.code, c.reason.as_str().to_owned())))
            }
            Ok(_) => {}
            Err(_) => return (frames, None),
        }
    }
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).unwrap();
}

fn join(server: &Server, path: &str, extra: Value) -> (Ws, Value) {
    let mut w = ws(server, path).unwrap();
    let mut msg = json!({"t": "join", "rendition": "source"});
    if let (Some(m), Some(e)) = (msg.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    send(&mut w, msg);
    let welcome = recv(&mut w);
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    (w, welcome)
}

/// The body of a GET that must succeed.
fn get_ok(server: &Server, path: &str) -> String {
    let r = server.http_request("GET", path, &[], None);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

fn wait_segments(server: &Server, min: usize) {
    let media = format!("/live/{CHANNEL}/source/index.m3u8");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text = server.http_get(&media).unwrap_or_default();
        if text.matches("#EXTINF").count() >= min {
            return;
        }
        assert!(Instant::now() < until, "no {min} segments: {text}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn piece_lists_are_signed_and_match_what_origin_and_edge_serve() {
    if !require_ffmpeg() {
        return;
    }
    let mut server = Server::start("p2p-pieces", "");
    let mut ffmpeg = ffmpeg_test_publish(&server.rtmp_url(KEY), 40)
        .spawn()
        .unwrap();
    wait_segments(&server, 3);
    let key: Value = serde_json::from_str(&get_ok(&server, "/p2p/key")).unwrap();
    assert_eq!(key["alg"], "Ed25519");
    let public: [u8; 32] = unhex(key["key"].as_str().unwrap()).unwrap();
    let path = format!("/live/{CHANNEL}/source/pieces.txt");
    let (status, doc) = server.http_bytes(&path).unwrap();
    assert_eq!(status, 200);
    let list = verify(&doc, &public).unwrap();
    assert_eq!(
        (list.channel.as_str(), list.rendition.as_str()),
        (CHANNEL, "source")
    );
    let segments = list
        .pieces
        .iter()
        .filter(|p| p.uri.matches('.').count() == 1)
        .count();
    let parts = list.pieces.len() - segments;
    assert!(
        segments >= 2 && parts >= 3,
        "{segments} segments, {parts} parts: {list:?}"
    );
    for p in &list.pieces {
        let (status, bytes) = server
            .http_bytes(&format!("/live/{CHANNEL}/source/{}", p.uri))
            .unwrap();
        assert_eq!(status, 200, "{}", p.uri);
        check_piece(&list, &p.uri, &bytes).unwrap();
    }
    // An unknown rendition has none, and a session's directory holds no list.
    let r = server.http_request(
        "GET",
        &format!("/live/{CHANNEL}/nosuch/pieces.txt"),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let session = list.pieces[0].uri.split('/').next().unwrap();
    let r = server.http_request(
        "GET",
        &format!("/live/{CHANNEL}/source/{session}/pieces.txt"),
        &[],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Through an edge: the same key verifies the list it passes on, and its pieces.
    let edge = Server::start_edge(
        "p2p-pieces-edge",
        &server.http_url(""),
        &server.data_dir(),
        "",
    );
    let edge_key: Value = serde_json::from_str(&get_ok(&edge, "/p2p/key")).unwrap();
    assert_eq!(edge_key["key"], key["key"], "one key for the cluster");
    let (status, doc) = edge.http_bytes(&path).unwrap();
    assert_eq!(status, 200);
    let list = verify(&doc, &public).unwrap();
    let newest = list.pieces.last().unwrap();
    let (_, bytes) = edge
        .http_bytes(&format!("/live/{CHANNEL}/source/{}", newest.uri))
        .unwrap();
    check_piece(&list, &newest.uri, &bytes).unwrap();
    // A byte changed in transit (what a lying peer would send) is caught.
    let mut forged = bytes.clone();
    forged[bytes.len() / 2] ^= 1;
    assert!(check_piece(&list, &newest.uri, &forged).is_err());
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    server.stop();
}

#[test]
fn the_tracker_introduces_relays_and_refuses_bad_input_with_the_cause() {
    let mut server = Server::start("p2p-tracker", "[p2p]\nmax_per_address = 8\n");
    let key: Value = serde_json::from_str(&get_ok(&server, "/p2p/key")).unwrap();
    let path = format!("/p2p/{CHANNEL}");
    let (mut a, wa) = join(&server, &path, json!({"region": "eu", "position": 10}));
    assert_eq!(wa["peers"], json!([]));
    assert_eq!(wa["key"], key["key"]);
    let (mut b, wb) = join(&server, &path, json!({"upload_kbps": 2000}));
    let (a_id, b_id) = (wa["id"].as_str().unwrap(), wb["id"].as_str().unwrap());
    assert_eq!(
        wb["peers"],
        json!([{"id": a_id, "region": "eu", "position": 10}])
    );
    // An offer from B reaches A, stamped with B's id whatever B claims.
    send(
        &mut b,
        json!({"t": "signal", "to": a_id, "data": {"sdp": "v=0", "from": "forged"}}),
    );
    let got = recv(&mut a);
    assert_eq!(
        got,
        json!({"t": "signal", "from": b_id, "data": {"sdp": "v=0", "from": "forged"}})
    );
    send(
        &mut a,
        json!({"t": "signal", "to": "0000000000000000", "data": 1}),
    );
    assert_eq!(recv(&mut a)["code"], "unknown_peer");

    // Bad frames: each answered with its cause, the socket kept until the strikes run out.
    let mut c = ws(&server, &path).unwrap();
    c.send(Message::Text("{\"t\":".into())).unwrap();
    let e = recv(&mut c);
    assert_eq!(
        (e["code"].as_str(), e["fatal"].as_bool()),
        (Some("malformed"), Some(false)),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("EOF"), "{e}");
    c.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    assert_eq!(recv(&mut c)["code"], "malformed");
    send(&mut c, json!({"t": "peers"}));
    assert_eq!(recv(&mut c)["code"], "not_joined");
    send(&mut c, json!({"t": "join", "rendition": "../etc"}));
    let e = recv(&mut c);
    assert!(
        e["message"].as_str().unwrap().contains("rendition must be"),
        "{e}"
    );
    c.send(Message::Text("[]".into())).unwrap();
    let (frames, closed) = until_close(&mut c);
    assert_eq!(frames[0]["fatal"], true, "{frames:?}");
    assert_eq!(closed.unwrap().0, CloseCode::Policy);

    // Oversized: over the tracker's 16 KiB an error frame names the limit; over the
    // socket's cap the socket closes with 1009.
    let (mut d, _) = join(&server, &path, json!({}));
    d.send(Message::Text("x".repeat(20_000).into())).unwrap();
    let (frames, _) = until_close(&mut d);
    assert_eq!(frames[0]["code"], "too_large", "{frames:?}");
    assert!(frames[0]["message"].as_str().unwrap().contains("16384"));
    let (mut d, _) = join(&server, &path, json!({}));
    let _ = d.send(Message::Text("x".repeat(200_000).into()));
    let (_, closed) = until_close(&mut d);
    assert!(
        closed
            .as_ref()
            .is_none_or(|(code, _)| *code == CloseCode::Size),
        "{closed:?}"
    );

    // A flood of messages: one rate error, not one per frame.
    let (mut f, _) = join(&server, &path, json!({}));
    for i in 0..300 {
        send(&mut f, json!({"t": "position", "position": i}));
    }
    send(&mut f, json!({"t": "peers"}));
    let e = recv(&mut f);
    assert_eq!(e["code"], "rate_limited", "{e}");
    drop(f);

    // A flood of connections from one address: the ninth is refused with the limit.
    let mut held = Vec::new();
    let refused = loop {
        match ws(&server, &path) {
            Ok(w) => held.push(w),
            Err(r) => break r,
        }
        assert!(held.len() <= 8, "no limit per address");
    };
    assert_eq!(refused.0, 429, "{refused:?}");
    assert!(refused.1.contains("from this address"), "{refused:?}");
    // A socket that never joins is closed (10 s) and frees its slot.
    let (_, closed) = until_close(&mut held[0]);
    assert!(closed.as_ref().unwrap().1.contains("no join"), "{closed:?}");
    drop(held);
    // A bad channel name never reaches the tracker.
    assert_eq!(ws(&server, "/p2p/bad%20name").unwrap_err().0, 400);

    // The node served everyone else throughout, and its metrics say what happened.
    assert_eq!(get_ok(&server, "/healthz"), "ok\n");
    let metrics = get_ok(&server, "/metrics");
    promtool_check("p2p metrics", &metrics);
    for needle in [
        "starling_p2p_refused_total{cause=\"malformed\"}",
        "starling_p2p_refused_total{cause=\"too_large\"} ",
        "starling_p2p_refused_total{cause=\"rate_limited\"}",
        "starling_p2p_refused_total{cause=\"connection\"} ",
        "starling_p2p_signals_relayed_total 1",
        "starling_p2p_peers{channel=\"e2e\",rendition=\"source\"} ",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // A graceful shutdown closes the sockets with 1001: players reconnect elsewhere.
    let stopping = std::thread::spawn(move || {
        server.stop();
        server
    });
    let (_, closed) = until_close(&mut a);
    assert_eq!(closed.unwrap().0, CloseCode::Away);
    drop(b);
    stopping.join().unwrap();
}

#[test]
fn reports_ban_a_liar_and_private_channels_need_a_token() {
    let mut server = Server::start("p2p-private", "");
    let path = format!("/p2p/{CHANNEL}");
    let (mut a, _) = join(&server, &path, json!({}));
    let (mut b, _) = join(&server, &path, json!({}));
    // A liar is banned at the second report; after three liars from one address (a
    // liar coming back under new ids) the address is refused.
    for round in 0..3 {
        let (mut liar, wl) = join(&server, &path, json!({}));
        let liar_id = wl["id"].as_str().unwrap().to_owned();
        let report = json!({"t": "report", "peer": liar_id, "reason": "digest mismatch"});
        send(&mut a, report.clone());
        send(&mut b, report);
        assert_eq!(
            recv(&mut a),
            json!({"t": "banned", "id": liar_id}),
            "round {round}"
        );
        assert_eq!(
            recv(&mut b),
            json!({"t": "banned", "id": liar_id}),
            "round {round}"
        );
        let (frames, closed) = until_close(&mut liar);
        assert_eq!(frames[0]["code"], "banned", "{frames:?}");
        assert_eq!(closed.unwrap().0, CloseCode::Policy);
    }
    let (status, body) = ws(&server, &path).unwrap_err();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("banned"), "{body}");
    drop((a, b));

    // A private channel: no socket and no report without a token.
    server.create_admin("owner@example.com", "correct horse battery");
    let cookie = server.login("owner@example.com", "correct horse battery");
    let ch = server.api_created(
        &cookie,
        "/api/v1/channels",
        json!({"name": "vip", "visibility": "private"}),
    );
    let err = ws(&server, "/p2p/vip").unwrap_err();
    assert_eq!(err.0, 401, "{err:?}");
    assert!(err.1.contains("token_required"), "{err:?}");
    let beacon = json!({"peer_bytes": 9000, "edge_bytes": 1000, "played_ms": 5000, "rebuffer_ms": 50, "startup_ms": 800, "peers": 2}).to_string();
    let r = server.http_request("POST", "/p2p/vip/beacon", &[], Some(&beacon));
    assert_eq!(r.status, 401, "{}", r.body);
    let id = ch["id"].as_str().unwrap();
    let tok = server.api_created(
        &cookie,
        &format!("/api/v1/channels/{id}/playback-tokens"),
        json!({"ttl_secs": 600}),
    );
    let token = tok["token"].as_str().unwrap();
    server.secret(token);
    let (_w, welcome) = join(&server, &format!("/p2p/vip?token={token}"), json!({}));
    assert_eq!(welcome["peers"], json!([]));
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        ws(&server, &format!("/p2p/vip?token={forged}"))
            .unwrap_err()
            .0,
        403
    );
    let beacon_path = format!("/p2p/vip/beacon?token={token}");
    let r = server.http_request("POST", &beacon_path, &[], Some(&beacon));
    assert_eq!(r.status, 204, "{}", r.body);

    // Bad reports: refused whole, with the cause.
    for (body, cause) in [
        ("{", "malformed report"),
        (r#"{"peer_bytes":-1}"#, "malformed report"),
        (r#"{"peer_bytes":1,"bogus":2}"#, "unknown field"),
        (r#"{"edge_bytes":99999999999}"#, "more than 1 GiB"),
        (r#"{"played_ms":99999999}"#, "more than 10 minutes"),
    ] {
        let r = server.http_request("POST", &beacon_path, &[], Some(body));
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(cause), "{body}: {}", r.body);
    }
    let metrics = get_ok(&server, "/metrics");
    promtool_check("p2p report metrics", &metrics);
    for needle in [
        "starling_p2p_bytes_total{channel=\"vip\",source=\"peer\"} 9000",
        "starling_p2p_bytes_total{channel=\"vip\",source=\"edge\"} 1000",
        "starling_p2p_rebuffer_seconds_total{channel=\"vip\"} 0.05",
        "starling_p2p_startups_total{channel=\"vip\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }
    server.stop();
}
