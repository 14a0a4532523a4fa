//! One headless viewer's state: its peer connections, the segments it holds and
//! waits for, and how it gets each (a peer, the edge, the booster).

use super::*;

/// One peer connection of a viewer.
pub(super) struct Conn {
    pub(super) peer: String,
    pub(super) rtc: Rtc,
    pub(super) pending: Option<SdpPendingOffer>,
    pub(super) channel: Option<ChannelId>,
    pub(super) has: HashSet<String>,
    pub(super) transfers: Transfers,
    pub(super) wanted: HashMap<u32, String>,
    pub(super) out: VecDeque<Bytes>,
    pub(super) next_req: u32,
    /// Requests cancelled lately: their chunks already on the way are dropped quietly.
    pub(super) cancelled: VecDeque<u32>,
    pub(super) dead: bool,
    /// When its str0m wants a timeout, and whether it has input to act on.
    pub(super) next: Instant,
    pub(super) dirty: bool,
}

pub(super) enum Fetch {
    Piece(String, Result<Bytes>),
}

pub(super) enum State {
    /// Waiting for a peer to announce it until then.
    Waiting(Instant),
    /// Asked of a peer (and of the edge as well once boosted).
    Peer {
        peer: String,
        req: u32,
        deadline: Instant,
        boosted: bool,
    },
    Edge,
}

pub(super) struct Pending {
    pub(super) url: String,
    pub(super) due: Instant,
    pub(super) state: State,
}

pub(super) struct Viewer {
    pub(super) args: Arc<Args>,
    pub(super) totals: Arc<Totals>,
    pub(super) key: [u8; 32],
    pub(super) id: String,
    pub(super) socket: UdpSocket,
    pub(super) local: SocketAddr,
    pub(super) conns: Vec<Conn>,
    pub(super) store: VecDeque<(String, Bytes)>,
    pub(super) pending: HashMap<String, Pending>,
    pub(super) list: Option<PieceList>,
    pub(super) list_at: Option<Instant>,
    pub(super) fetch_tx: mpsc::UnboundedSender<Fetch>,
    pub(super) signals: Vec<Value>,
    /// The virtual player: how much later than planned it plays (stalls so far).
    pub(super) delay: Duration,
    pub(super) started: Instant,
    pub(super) first_segment: Option<Instant>,
    pub(super) seen: HashSet<String>,
    pub(super) rng: u64,
    pub(super) asked_peers: Option<Instant>,
}

fn rtc() -> Rtc {
    Rtc::builder()
        .set_crypto_provider(Arc::new(
            starling_webrtc::str0m::crypto::from_feature_flags(),
        ))
        .build(Instant::now())
}

impl Viewer {
    pub(super) fn random(&mut self) -> f64 {
        // xorshift: a random wait per segment, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn new_conn(&mut self, peer: &str) -> &mut Conn {
        let mut rtc = rtc();
        if let Ok(c) = Candidate::host(self.local, "udp") {
            rtc.add_local_candidate(c);
        }
        self.conns.push(Conn {
            peer: peer.to_owned(),
            rtc,
            pending: None,
            channel: None,
            has: HashSet::new(),
            transfers: Transfers::default(),
            wanted: HashMap::new(),
            out: VecDeque::new(),
            next_req: 1,
            cancelled: VecDeque::new(),
            dead: false,
            next: Instant::now(),
            dirty: true,
        });
        let n = self.conns.len() - 1;
        &mut self.conns[n]
    }

    pub(super) fn offer(&mut self, peer: &str) {
        if peer == self.id
            || self.conns.len() >= MAX_CONNS
            || self.conns.iter().any(|c| c.peer == peer)
        {
            return;
        }
        let conn = self.new_conn(peer);
        let mut api = conn.rtc.sdp_api();
        api.add_channel("starling-p2p".into());
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        conn.pending = Some(pending);
        self.signals.push(json!({"t": "signal", "to": peer, "data": {"type": "offer", "sdp": offer.to_sdp_string()}}));
    }

    pub(super) fn on_signal(&mut self, from: &str, data: &Value) {
        let Some(sdp) = data["sdp"].as_str() else {
            return;
        };
        match data["type"].as_str() {
            Some("offer") => {
                if let Some(i) = self.conns.iter().position(|c| c.peer == from) {
                    // Glare: the smaller id's offer wins.
                    if self.conns[i].pending.is_some() && self.id.as_str() < from {
                        return;
                    }
                    self.conns.remove(i);
                }
                if self.conns.len() >= MAX_CONNS {
                    return;
                }
                let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
                    return;
                };
                let conn = self.new_conn(from);
                match conn.rtc.sdp_api().accept_offer(offer) {
                    Ok(answer) => {
                        let sdp = answer.to_sdp_string();
                        self.signals.push(json!({"t": "signal", "to": from, "data": {"type": "answer", "sdp": sdp}}));
                    }
                    Err(_) => conn.dead = true,
                }
            }
            Some("answer") => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.peer == from) {
                    if let (Some(p), Ok(a)) = (c.pending.take(), SdpAnswer::from_sdp_string(sdp)) {
                        if c.rtc.sdp_api().accept_answer(p, a).is_err() {
                            c.dead = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn send(conn: &mut Conn, f: &Frame) {
        conn.out.push_back(f.encode());
    }

    pub(super) fn keep(&mut self, uri: &str, data: Bytes) {
        if self.store.iter().any(|(u, _)| u == uri) {
            return;
        }
        self.store.push_back((uri.to_owned(), data));
        while self.store.len() > STORE {
            self.store.pop_front();
        }
        if let Some(piece) = PieceId::from_uri(uri) {
            for c in self.conns.iter_mut().filter(|c| c.channel.is_some()) {
                Self::send(c, &Frame::Have(piece));
            }
        }
    }

    /// A segment arrived (verified): the virtual player plays it, late or not.
    pub(super) fn arrived(&mut self, uri: &str, data: Bytes, from_peer: bool) {
        let Some(p) = self.pending.remove(uri) else {
            return;
        };
        let now = Instant::now();
        let due = p.due + self.delay;
        if now > due {
            let late = now - due;
            self.delay += late;
            self.totals
                .rebuffer_ms
                .fetch_add(late.as_millis() as u64, Ordering::Relaxed);
        }
        let t = &self.totals;
        let counter = if from_peer {
            &t.peer_bytes
        } else {
            &t.edge_bytes
        };
        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        t.segments.fetch_add(1, Ordering::Relaxed);
        if self.first_segment.is_none() {
            self.first_segment = Some(now);
            let ms = (now - self.started).as_millis() as u64;
            t.startups_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ms);
        }
        self.keep(uri, data);
    }

    pub(super) fn fetch_edge(&self, uri: &str, url: &str) {
        let (tx, http, url, uri) = (
            self.fetch_tx.clone(),
            self.args.http,
            url.to_owned(),
            uri.to_owned(),
        );
        tokio::spawn(async move {
            let r = async {
                let mut h = Http::connect(http).await?;
                let (status, body) = h.get(&url).await?;
                if status != 200 {
                    bail!("{url}: HTTP {status}");
                }
                Ok(Bytes::from(body))
            }
            .await;
            let _ = tx.send(Fetch::Piece(uri, r));
        });
    }

    pub(super) async fn piece_list(&mut self, uri: &str) -> Option<&PieceList> {
        let fresh = self
            .list_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500));
        if !(self.list.as_ref().is_some_and(|l| l.digest(uri).is_some())
            || fresh && self.list.is_some())
        {
            let path = format!(
                "/live/{}/{}/pieces.txt{}",
                self.args.channel,
                self.args.rendition,
                self.token_query()
            );
            let got = async {
                let mut h = Http::connect(self.args.http).await.ok()?;
                let (status, body) = h.get(&path).await.ok()?;
                (status == 200).then_some(body)
            };
            if let Ok(Some(body)) = tokio::time::timeout(Duration::from_secs(2), got).await {
                match pieces::verify(&body, &self.key) {
                    Ok(l) => self.list = Some(l),
                    Err(e) => self.totals.note(format!("piece list refused: {e}")),
                }
            }
            self.list_at = Some(Instant::now());
        }
        self.list.as_ref()
    }

    pub(super) fn token_query(&self) -> String {
        self.args
            .token
            .as_ref()
            .map(|t| format!("?token={t}"))
            .unwrap_or_default()
    }

    pub(super) async fn on_piece_from_peer(&mut self, peer: &str, uri: String, data: Bytes) {
        let verdict = match self.piece_list(&uri).await {
            Some(list) => pieces::check_piece(list, &uri, &data),
            None => Err(pieces::PieceError::Unlisted(uri.clone())),
        };
        match verdict {
            Ok(()) => self.arrived(&uri, data, true),
            // Not listed yet (or no list): it cannot be checked, so it is not used; the
            // edge has it. Nothing is held against the peer.
            Err(pieces::PieceError::Unlisted(_)) => {
                if let Some(p) = self.pending.get_mut(&uri) {
                    p.state = State::Edge;
                    let url = p.url.clone();
                    self.fetch_edge(&uri, &url);
                }
            }
            Err(e) => {
                self.totals.bad_pieces.fetch_add(1, Ordering::Relaxed);
                self.totals.note(format!("bad piece from {peer}: {e}"));
                self.signals
                    .push(json!({"t": "report", "peer": peer, "reason": "digest mismatch"}));
                if let Some(c) = self.conns.iter_mut().find(|c| c.peer == peer) {
                    c.dead = true;
                }
                if let Some(p) = self.pending.get_mut(&uri) {
                    p.state = State::Edge;
                    let url = p.url.clone();
                    self.fetch_edge(&uri, &url);
                }
            }
        }
    }

    pub(super) fn on_frame(&mut self, ci: usize, msg: &[u8]) -> Option<(String, String, Bytes)> {
        let frame = match Frame::decode(&Bytes::copy_from_slice(msg)) {
            Ok(f) => f,
            Err(e) => {
                self.totals.note(format!("bad frame: {e}"));
                self.conns[ci].dead = true;
                return None;
            }
        };
        match frame {
            Frame::Have(p) => {
                let c = &mut self.conns[ci];
                if c.has.len() > 4 * STORE {
                    c.has.clear();
                }
                c.has.insert(p.uri());
            }
            Frame::Want { req, piece } => {
                let uri = piece.uri();
                let held = self
                    .store
                    .iter()
                    .find(|(u, _)| *u == uri)
                    .map(|(_, d)| d.clone());
                let c = &mut self.conns[ci];
                match held {
                    Some(d) => {
                        for f in chunks(req, &d) {
                            Self::send(c, &f);
                        }
                        self.totals
                            .uploaded
                            .fetch_add(d.len() as u64, Ordering::Relaxed);
                    }
                    None => Self::send(c, &Frame::None { req }),
                }
            }
            Frame::Cancel { req } => {
                // Chunks still queued for it are dropped (the rest are on their way).
                let c = &mut self.conns[ci];
                c.out.retain(|f| {
                    !(f.first() == Some(&4) && f.get(1..5) == Some(&req.to_be_bytes()[..]))
                });
            }
            Frame::Data {
                req,
                offset,
                total,
                bytes,
            } => {
                let c = &mut self.conns[ci];
                if c.cancelled.contains(&req) {
                    return None;
                }
                match c.transfers.data(req, offset, total, &bytes) {
                    Ok(Some((_, whole))) => {
                        let uri = c.wanted.remove(&req)?;
                        return Some((c.peer.clone(), uri, whole));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.totals.note(format!("peer {}: {e}", c.peer));
                        c.dead = true;
                    }
                }
            }
            Frame::None { req } => {
                let c = &mut self.conns[ci];
                c.transfers.cancel(req);
                if let Some(uri) = c.wanted.remove(&req) {
                    c.has.remove(&uri);
                    if let Some(p) = self.pending.get_mut(&uri) {
                        p.state = State::Waiting(Instant::now());
                    }
                }
            }
            Frame::Choke | Frame::Unchoke => {}
        }
        None
    }

    /// Moves every pending segment on: a peer, the edge, or the booster.
    pub(super) fn step(&mut self, now: Instant) {
        let uris: Vec<String> = self.pending.keys().cloned().collect();
        for uri in uris {
            let Some(p) = self.pending.get(&uri) else {
                continue;
            };
            let due = p.due + self.delay;
            let url = p.url.clone();
            match p.state {
                State::Waiting(until) => {
                    let holder = self
                        .conns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.channel.is_some() && !c.dead && c.has.contains(&uri))
                        .min_by_key(|(_, c)| c.wanted.len())
                        .map(|(i, _)| i);
                    let deadline = due.checked_sub(BOOST_MARGIN).unwrap_or(now);
                    match holder {
                        Some(i) if now < deadline => {
                            let c = &mut self.conns[i];
                            let req = c.next_req;
                            c.next_req = c.next_req.wrapping_add(1).max(1);
                            let Some(piece) = PieceId::from_uri(&uri) else {
                                continue;
                            };
                            if c.transfers.want(req, piece).is_err() {
                                continue;
                            }
                            c.wanted.insert(req, uri.clone());
                            Self::send(c, &Frame::Want { req, piece });
                            let peer = c.peer.clone();
                            if let Some(p) = self.pending.get_mut(&uri) {
                                p.state = State::Peer {
                                    peer,
                                    req,
                                    deadline,
                                    boosted: false,
                                };
                            }
                        }
                        _ if now >= until || now >= deadline => {
                            if let Some(p) = self.pending.get_mut(&uri) {
                                p.state = State::Edge;
                            }
                            self.fetch_edge(&uri, &url);
                        }
                        _ => {}
                    }
                }
                State::Peer {
                    ref peer,
                    deadline,
                    boosted,
                    ..
                } => {
                    let alive = self.conns.iter().any(|c| c.peer == *peer && !c.dead);
                    if !alive {
                        if let Some(p) = self.pending.get_mut(&uri) {
                            p.state = State::Waiting(now);
                        }
                    } else if now >= deadline && !boosted {
                        self.totals.boosted.fetch_add(1, Ordering::Relaxed);
                        if let Some(State::Peer { boosted, .. }) =
                            self.pending.get_mut(&uri).map(|p| &mut p.state)
                        {
                            *boosted = true;
                        }
                        self.fetch_edge(&uri, &url);
                    }
                }
                State::Edge => {}
            }
        }
    }

    pub(super) fn new_segments(&mut self, playlist: &str, now: Instant) {
        // Each `#EXTINF:D,` is followed by its URI: `SESSION/MSN.m4s?…`.
        let mut segs: Vec<(f64, String)> = Vec::new();
        let mut dur = None;
        for line in playlist.lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                dur = d.split(',').next().and_then(|d| d.parse::<f64>().ok());
            } else if !line.starts_with('#') && !line.is_empty() {
                if let Some(d) = dur.take() {
                    let uri = line.split('?').next().unwrap_or(line).to_owned();
                    if PieceId::from_uri(&uri).is_some_and(|p| p.part == WHOLE) {
                        segs.push((d, uri));
                    }
                }
            }
        }
        let first = self.seen.is_empty();
        let start = if first {
            // A player joining `sync` seconds behind live starts this many from the end.
            let mut back = 0.0;
            let mut i = segs.len();
            while i > 0 && back < self.args.sync {
                i -= 1;
                back += segs[i].0;
            }
            // What came before is history this player never plays.
            for (_, uri) in &segs[..i] {
                self.seen.insert(uri.clone());
            }
            i
        } else {
            0
        };
        let mut at = now;
        for (d, uri) in segs.into_iter().skip(start) {
            if !self.seen.insert(uri.clone()) {
                continue;
            }
            // New at the live edge: due once the player, `sync` behind, reaches it.
            let due = if first {
                let due = at;
                at += Duration::from_secs_f64(d);
                due
            } else {
                now + Duration::from_secs_f64((self.args.sync - d).max(0.0))
            };
            let url = format!(
                "/live/{}/{}/{uri}{}",
                self.args.channel,
                self.args.rendition,
                self.token_query()
            );
            let urgent = due.saturating_duration_since(now) < URGENT || !self.args.p2p;
            // Skewed (u^¼): a few viewers wait briefly and fetch from the edge, most wait
            // long enough for the segment to spread to them (as p2p.js does).
            let wait = (due.saturating_duration_since(now).saturating_sub(URGENT))
                .mul_f64(0.7)
                .min(PEER_WAIT_MAX.mul_f64(self.random().powf(0.25)));
            let state = if urgent {
                State::Edge
            } else {
                State::Waiting(now + wait)
            };
            if urgent {
                self.fetch_edge(&uri, &url);
            }
            self.pending.insert(uri, Pending { url, due, state });
        }
        // Bounded: what left the playlist cannot come back.
        if self.seen.len() > 4096 {
            let listed: HashSet<String> = playlist
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split('?').next().unwrap_or(l).to_owned())
                .collect();
            self.seen.retain(|u| listed.contains(u));
        }
    }
}
