//! One headless viewer's event loop: its UDP socket (every peer connection's str0m),
//! the tracker's WebSocket, the playlist poller and the edge fetches.

use super::viewer::{Fetch, Pending, State, Viewer};
use super::*;

pub(super) async fn run_viewer(
    args: Arc<Args>,
    totals: Arc<Totals>,
    key: [u8; 32],
    seed: u64,
    stop: Instant,
) -> Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let (fetch_tx, mut fetch_rx) = mpsc::unbounded_channel();
    let mut v = Viewer {
        args: args.clone(),
        totals: totals.clone(),
        key,
        id: String::new(),
        socket,
        local,
        conns: Vec::new(),
        store: VecDeque::new(),
        pending: HashMap::new(),
        list: None,
        list_at: None,
        fetch_tx,
        signals: Vec::new(),
        delay: Duration::ZERO,
        started: Instant::now(),
        first_segment: None,
        seen: HashSet::new(),
        rng: seed | 1,
        asked_peers: None,
    };
    // Without the tracker (refused, unreachable) a viewer plays from the edge alone, as
    // the watch page does.
    let mut ws = if args.p2p {
        let url = format!("ws://{}/p2p/{}{}", args.http, args.channel, v.token_query());
        match tokio_tungstenite::connect_async(url).await {
            Ok((mut ws, _)) => {
                ws.send(Message::Text(
                    json!({"t": "join", "rendition": args.rendition, "upload_kbps": 4000})
                        .to_string()
                        .into(),
                ))
                .await?;
                Some(ws)
            }
            Err(e) => {
                totals.note(format!("tracker: {e}"));
                None
            }
        }
    } else {
        None
    };
    let playlist = format!(
        "/live/{}/{}/index.m3u8{}",
        args.channel,
        args.rendition,
        v.token_query()
    );
    let (pl_tx, mut pl_rx) = mpsc::unbounded_channel::<String>();
    let poll_http = args.http;
    let poller = tokio::spawn(async move {
        let mut h = None;
        loop {
            if h.is_none() {
                h = Http::connect(poll_http).await.ok();
            }
            if let Some(c) = h.as_mut() {
                match c.get(&playlist).await {
                    Ok((200, body)) => {
                        if pl_tx
                            .send(String::from_utf8_lossy(&body).into_owned())
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => h = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= stop {
            break;
        }
        // Drive the connections that have something to do (input, a timeout due,
        // frames to write) until each waits.
        let mut next = now + Duration::from_millis(50);
        let mut from_peers: Vec<(String, String, Bytes)> = Vec::new();
        for ci in 0..v.conns.len() {
            let c = &mut v.conns[ci];
            if c.next <= now {
                if c.rtc.handle_input(Input::Timeout(now)).is_err() {
                    c.dead = true;
                }
                c.dirty = true;
            }
            if !c.dirty && c.out.is_empty() {
                next = next.min(c.next);
                continue;
            }
            c.dirty = false;
            // Flush queued frames within the channel's buffer.
            loop {
                let c = &mut v.conns[ci];
                let Some(id) = c.channel else { break };
                let Some(mut ch) = c.rtc.channel(id) else {
                    break;
                };
                if c.out.is_empty() || ch.buffered_amount() > HIGH_WATER {
                    break;
                }
                // Not written (the association's buffer is full): kept for the next turn.
                match ch.write(true, &c.out[0]) {
                    Ok(true) => {
                        c.out.pop_front();
                    }
                    Ok(false) => break,
                    Err(_) => {
                        c.dead = true;
                        break;
                    }
                }
            }
            loop {
                let out = match v.conns[ci].rtc.poll_output() {
                    Ok(o) => o,
                    Err(_) => {
                        v.conns[ci].dead = true;
                        break;
                    }
                };
                match out {
                    Output::Transmit(t) => {
                        let _ = v.socket.send_to(&t.contents, t.destination).await;
                    }
                    Output::Timeout(t) => {
                        v.conns[ci].next = t;
                        next = next.min(t);
                        break;
                    }
                    Output::Event(Event::ChannelOpen(id, _)) => {
                        let c = &mut v.conns[ci];
                        c.channel = Some(id);
                        let held: Vec<String> = v.store.iter().map(|(u, _)| u.clone()).collect();
                        for uri in held {
                            if let Some(p) = PieceId::from_uri(&uri) {
                                Viewer::send(&mut v.conns[ci], &Frame::Have(p));
                            }
                        }
                    }
                    Output::Event(Event::ChannelData(d)) => {
                        if let Some(got) = v.on_frame(ci, &d.data) {
                            from_peers.push(got);
                        }
                    }
                    Output::Event(Event::ChannelClose(_)) => v.conns[ci].dead = true,
                    Output::Event(Event::IceConnectionStateChange(
                        IceConnectionState::Disconnected,
                    )) => {
                        v.conns[ci].dead = true;
                    }
                    Output::Event(_) => {}
                }
            }
        }
        for (peer, uri, data) in from_peers {
            v.on_piece_from_peer(&peer, uri, data).await;
        }
        if v.conns.iter().any(|c| c.dead) {
            // `step` then sees a transfer's peer gone and asks another or the edge.
            v.conns.retain(|c| !c.dead);
            // More peers, at most every 5 s (the tracker rate-limits, and a lost peer
            // is rarely worth an immediate replacement).
            if v.conns.len() < 3
                && v.asked_peers
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
            {
                v.asked_peers = Some(Instant::now());
                v.signals.push(json!({"t": "peers"}));
            }
        }
        v.step(Instant::now());
        if let Some(ws) = ws.as_mut() {
            for s in std::mem::take(&mut v.signals) {
                ws.send(Message::Text(s.to_string().into())).await?;
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        tokio::select! {
            r = v.socket.recv_from(&mut buf) => {
                // One datagram at a time: str0m's outputs are drained after each input.
                if let Ok((n, from)) = r {
                    if let Ok(contents) = buf[..n].try_into() {
                        let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source: from, destination: v.local, contents });
                        if let Some(c) = v.conns.iter_mut().find(|c| c.rtc.accepts(&input)) {
                            if c.rtc.handle_input(input).is_err() {
                                c.dead = true;
                            }
                            c.dirty = true;
                        }
                    }
                }
            }
            msg = async { match ws.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        let m: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match m["t"].as_str() {
                            Some("welcome") => {
                                v.id = m["id"].as_str().unwrap_or_default().to_owned();
                                for p in m["peers"].as_array().into_iter().flatten() {
                                    if let Some(id) = p["id"].as_str() {
                                        v.offer(id);
                                    }
                                }
                            }
                            Some("peers") => {
                                for p in m["peers"].as_array().into_iter().flatten() {
                                    if let Some(id) = p["id"].as_str() {
                                        v.offer(id);
                                    }
                                }
                            }
                            Some("signal") => {
                                let from = m["from"].as_str().unwrap_or_default().to_owned();
                                v.on_signal(&from, &m["data"]);
                            }
                            Some("banned") => {
                                let id = m["id"].as_str().unwrap_or_default();
                                for c in v.conns.iter_mut().filter(|c| c.peer == id) {
                                    c.dead = true;
                                }
                            }
                            Some("error") => totals.note(format!("tracker: {}", m["message"])),
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        totals.note("tracker connection lost".into());
                        ws = None;
                    }
                }
            }
            f = fetch_rx.recv() => {
                if let Some(Fetch::Piece(uri, r)) = f {
                    match r {
                        Ok(data) => {
                            // The edge answered first: a transfer from a peer still
                            // under way is cancelled.
                            if let Some(Pending { state: State::Peer { peer, req, .. }, .. }) = v.pending.get(&uri) {
                                let (peer, req) = (peer.clone(), *req);
                                if let Some(c) = v.conns.iter_mut().find(|c| c.peer == peer) {
                                    c.transfers.cancel(req);
                                    c.wanted.remove(&req);
                                    Viewer::send(c, &Frame::Cancel { req });
                                    c.cancelled.push_back(req);
                                    if c.cancelled.len() > 64 {
                                        c.cancelled.pop_front();
                                    }
                                }
                            }
                            v.arrived(&uri, data, false);
                        }
                        Err(e) => {
                            totals.note(format!("edge: {e}"));
                            if let Some(p) = v.pending.get_mut(&uri) {
                                p.state = State::Waiting(Instant::now());
                            }
                        }
                    }
                }
            }
            p = pl_rx.recv() => {
                if let Some(text) = p {
                    v.new_segments(&text, Instant::now());
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Played: from the first segment to the end, but for the stalls.
    if let Some(first) = v.first_segment {
        let played = stop
            .saturating_duration_since(first)
            .saturating_sub(v.delay);
        totals
            .played_ms
            .fetch_add(played.as_millis() as u64, Ordering::Relaxed);
    }
    let open = v.conns.iter().filter(|c| c.channel.is_some()).count() as u64;
    totals.connected_peers.fetch_add(open, Ordering::Relaxed);
    poller.abort();
    Ok(())
}
