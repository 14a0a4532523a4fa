//! The tracker, sans-IO: swarms per channel and rendition, peer selection, signalling
//! relay, limits, reports and bans. The driver owns the WebSockets and the clock: it
//! admits a connection, feeds its text frames and `now` in, and sends and closes what
//! the returned [`Actions`] say.
//!
//! Peer selection favours, in this order, the viewer's region (the Usher's label), its
//! network prefix (/24 for IPv4, /48 for IPv6: likely the same ISP or campus), then
//! peers a little ahead of its playback position (they hold what it will ask for next)
//! and peers that offer upload capacity. A large swarm is sampled (a rotating window of
//! [`SAMPLE`] members), so a join costs the same with 100 or 100,000 peers.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::signal::{
    parse_client, ClientMsg, ErrorCode, IceServer, PeerInfo, ServerMsg, SignalError,
};

/// Members scored per selection in a large swarm.
pub const SAMPLE: usize = 256;

/// One connection, as the driver numbers it.
pub type ConnId = u64;

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Tracker connections at once, all channels.
    pub max_connections: usize,
    /// Peers in one swarm; a join over it is refused (the viewer plays from the edge).
    pub max_swarm: usize,
    /// Tracker connections from one address at once (a NAT shares one address among many
    /// viewers: keep it generous).
    pub max_per_address: usize,
    /// Peers introduced per answer.
    pub peers_per_answer: usize,
    /// Sustained messages per second per connection, and the burst above it.
    pub rate_per_sec: f64,
    pub burst: f64,
    /// Bad frames (malformed, refused, rate-limited bursts) before the connection is
    /// closed.
    pub max_strikes: u32,
    /// Distinct reporters whose reports of bad pieces ban a peer from the channel.
    pub reports_to_ban: usize,
    /// Peers banned from one address (in a channel, within `ban_for` of each other)
    /// before the address itself is: behind a NAT one liar must not shut out its
    /// neighbours, and a liar that reconnects under a new id is banned again each time.
    pub bans_per_address: u32,
    /// How long a banned address may not rejoin the channel.
    pub ban_for: Duration,
    /// STUN/TURN servers the welcome hands to peers.
    pub ice_servers: Vec<IceServer>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_swarm: 5_000,
            max_per_address: 32,
            peers_per_answer: 8,
            rate_per_sec: 20.0,
            burst: 60.0,
            max_strikes: 5,
            reports_to_ban: 2,
            bans_per_address: 3,
            ban_for: Duration::from_secs(600),
            ice_servers: Vec::new(),
        }
    }
}

/// Why a connection was not admitted (the driver answers the HTTP upgrade with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the tracker has {0} connections (its limit): play from the edge")]
    Full(usize),
    #[error("{0} tracker connections from this address already (the limit)")]
    TooManyFromAddress(usize),
    #[error("this address was banned from the channel's swarm for sending bad pieces")]
    Banned,
    #[error("connection {0} is already admitted")]
    Duplicate(ConnId),
}

/// What the driver does after a call.
#[derive(Debug, Default, PartialEq)]
pub struct Actions {
    pub send: Vec<(ConnId, ServerMsg)>,
    /// Close these after sending what is queued for them.
    pub close: Vec<ConnId>,
}

impl Actions {
    fn to(&mut self, conn: ConnId, msg: ServerMsg) {
        self.send.push((conn, msg));
    }
}

/// A swarm's size, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmStats {
    pub channel: String,
    pub rendition: String,
    pub peers: usize,
}

#[derive(Debug)]
struct Conn {
    id: String,
    channel: String,
    addr: IpAddr,
    prefix: [u8; 8],
    joined: Option<Member>,
    tokens: f64,
    refilled: Instant,
    /// Dropping for the rate now (one error per burst, not one per frame).
    throttled: bool,
    strikes: u32,
}

#[derive(Debug)]
struct Member {
    rendition: String,
    region: Option<String>,
    upload_kbps: u32,
    position: u64,
    reported_by: HashSet<ConnId>,
}

#[derive(Debug)]
struct AddressBans {
    peers: u32,
    until: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    members: Vec<ConnId>,
    cursor: usize,
}

/// The tracker of one node (every channel's swarms).
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    key: String,
    conns: HashMap<ConnId, Conn>,
    by_id: HashMap<String, ConnId>,
    swarms: HashMap<(String, String), Swarm>,
    per_address: HashMap<IpAddr, usize>,
    /// Peers banned per channel and address, and until when the address itself is.
    bans: HashMap<(String, IpAddr), AddressBans>,
    /// Frames refused since start, by cause (for metrics).
    refused: HashMap<ErrorCode, u64>,
    relayed: u64,
}

impl Tracker {
    /// A tracker whose welcome names `key` (the hex public key piece lists are signed
    /// with).
    pub fn new(config: TrackerConfig, key: String) -> Self {
        Self {
            config,
            key,
            conns: HashMap::new(),
            by_id: HashMap::new(),
            swarms: HashMap::new(),
            per_address: HashMap::new(),
            bans: HashMap::new(),
            refused: HashMap::new(),
            relayed: 0,
        }
    }

    /// Admits connection `conn` from `addr` to `channel`'s swarms, known to peers as `id`
    /// (random and unique: the driver makes it).
    pub fn admit(
        &mut self,
        conn: ConnId,
        id: String,
        channel: &str,
        addr: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        if self.conns.contains_key(&conn) || self.by_id.contains_key(&id) {
            return Err(Refusal::Duplicate(conn));
        }
        // Bans outlive connections but not their time: prune the expired ones now and
        // then, so a flood of bad peers cannot grow the map for ever.
        if self.bans.len() > 1024 {
            self.bans.retain(|_, b| b.until > now);
        }
        let ban = (channel.to_owned(), addr);
        match self.bans.get(&ban) {
            Some(b) if b.until > now && b.peers >= self.config.bans_per_address => {
                return Err(Refusal::Banned)
            }
            Some(b) if b.until <= now => {
                self.bans.remove(&ban);
            }
            _ => {}
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(Refusal::Full(self.conns.len()));
        }
        let n = self.per_address.entry(addr).or_default();
        if *n >= self.config.max_per_address {
            return Err(Refusal::TooManyFromAddress(*n));
        }
        *n += 1;
        self.by_id.insert(id.clone(), conn);
        self.conns.insert(
            conn,
            Conn {
                id,
                channel: channel.to_owned(),
                addr,
                prefix: prefix(addr),
                joined: None,
                tokens: self.config.burst,
                refilled: now,
                throttled: false,
                strikes: 0,
            },
        );
        Ok(())
    }

    /// The connection closed (or the driver closed it).
    pub fn leave(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.by_id.remove(&c.id);
        if let Some(n) = self.per_address.get_mut(&c.addr) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&c.addr);
            }
        }
        if let Some(m) = c.joined {
            let key = (c.channel, m.rendition);
            if let Some(s) = self.swarms.get_mut(&key) {
                s.members.retain(|&x| x != conn);
                if s.members.is_empty() {
                    self.swarms.remove(&key);
                }
            }
        }
    }

    /// One text frame from `conn`.
    pub fn message(&mut self, conn: ConnId, text: &str, now: Instant) -> Actions {
        let mut out = Actions::default();
        let Some(c) = self.conns.get_mut(&conn) else {
            return out;
        };
        // Token bucket: a `peers` request costs more (it scores a sample of the swarm).
        let elapsed = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.tokens = (c.tokens + elapsed * self.config.rate_per_sec).min(self.config.burst);
        c.refilled = now;
        let msg = match parse_client(text) {
            Ok(m) => m,
            Err(SignalError::TooLarge(n)) => {
                self.refuse(
                    &mut out,
                    conn,
                    ErrorCode::TooLarge,
                    format!(
                        "message of {n} bytes is over the limit of {}",
                        crate::signal::MAX_MESSAGE
                    ),
                    true,
                );
                return out;
            }
            Err(e) => {
                self.refuse(&mut out, conn, ErrorCode::Malformed, e.to_string(), false);
                return out;
            }
        };
        let cost = if matches!(msg, ClientMsg::Peers | ClientMsg::Join { .. }) {
            5.0
        } else {
            1.0
        };
        if c.tokens < cost {
            if !c.throttled {
                c.throttled = true;
                let rate = self.config.rate_per_sec;
                self.refuse(
                    &mut out,
                    conn,
                    ErrorCode::RateLimited,
                    format!("over {rate} messages per second: messages are dropped until the rate falls"),
                    false,
                );
            } else {
                *self.refused.entry(ErrorCode::RateLimited).or_default() += 1;
            }
            return out;
        }
        c.tokens -= cost;
        c.throttled = false;
        match msg {
            ClientMsg::Join {
                rendition,
                region,
                upload_kbps,
                position,
            } => self.join(&mut out, conn, rendition, region, upload_kbps, position),
            ClientMsg::Signal { to, data } => self.relay(&mut out, conn, &to, data),
            ClientMsg::Position { position } => {
                if let Some(m) = self.member_mut(conn) {
                    m.position = position;
                } else {
                    self.not_joined(&mut out, conn);
                }
            }
            ClientMsg::Peers => {
                if self.member_mut(conn).is_some() {
                    let peers = self.pick(conn);
                    out.to(conn, ServerMsg::Peers { peers });
                } else {
                    self.not_joined(&mut out, conn);
                }
            }
            ClientMsg::Report { peer, .. } => self.report(&mut out, conn, &peer, now),
        }
        out
    }

    fn join(
        &mut self,
        out: &mut Actions,
        conn: ConnId,
        rendition: String,
        region: Option<String>,
        upload_kbps: u32,
        position: u64,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.joined.is_some() {
            self.refuse(
                out,
                conn,
                ErrorCode::AlreadyJoined,
                "one join per connection: open another for another rendition".into(),
                false,
            );
            return;
        }
        let key = (c.channel.clone(), rendition.clone());
        let size = self.swarms.get(&key).map_or(0, |s| s.members.len());
        if size >= self.config.max_swarm {
            let max = self.config.max_swarm;
            self.refuse(
                out,
                conn,
                ErrorCode::SwarmFull,
                format!("the swarm has {max} peers (the limit): play from the edge"),
                true,
            );
            return;
        }
        let id = c.id.clone();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.joined = Some(Member {
                rendition,
                region,
                upload_kbps,
                position,
                reported_by: HashSet::new(),
            });
        }
        let peers = self.pick(conn);
        self.swarms.entry(key).or_default().members.push(conn);
        out.to(
            conn,
            ServerMsg::Welcome {
                id,
                peers,
                key: self.key.clone(),
                ice: self.config.ice_servers.clone(),
            },
        );
    }

    /// Relays a signal to a peer of the same swarm; the tracker names the sender.
    fn relay(&mut self, out: &mut Actions, conn: ConnId, to: &str, data: serde_json::Value) {
        let Some(from) = self.conns.get(&conn) else {
            return;
        };
        let Some(m) = &from.joined else {
            self.not_joined(out, conn);
            return;
        };
        let target = self.by_id.get(to).copied().filter(|t| {
            *t != conn
                && self.conns.get(t).is_some_and(|tc| {
                    tc.channel == from.channel
                        && tc
                            .joined
                            .as_ref()
                            .is_some_and(|tm| tm.rendition == m.rendition)
                })
        });
        match target {
            Some(t) => {
                self.relayed += 1;
                out.to(
                    t,
                    ServerMsg::Signal {
                        from: from.id.clone(),
                        data,
                    },
                );
            }
            // A peer that just left is the usual cause: said, not held against anyone.
            None => out.to(
                conn,
                ServerMsg::Error {
                    code: ErrorCode::UnknownPeer,
                    message: format!("no peer {to} in this swarm"),
                    fatal: false,
                },
            ),
        }
    }

    /// `conn` says peer `peer` sent a piece that did not verify. Reports from
    /// [`TrackerConfig::reports_to_ban`] distinct peers ban it: its connection closes
    /// and its swarm is told to drop it; after [`TrackerConfig::bans_per_address`] such
    /// bans its address may not rejoin the channel for [`TrackerConfig::ban_for`]. (One report alone cannot ban: a liar could otherwise
    /// have honest peers thrown out; the reporter drops the peer on its own at once.)
    fn report(&mut self, out: &mut Actions, conn: ConnId, peer: &str, now: Instant) {
        if self.member_mut(conn).is_none() {
            self.not_joined(out, conn);
            return;
        }
        let channel = self.conns.get(&conn).map(|c| c.channel.clone());
        let Some(target) = self.by_id.get(peer).copied().filter(|t| {
            *t != conn && self.conns.get(t).map(|c| Some(&c.channel)) == Some(channel.as_ref())
        }) else {
            return;
        };
        let need = self.config.reports_to_ban;
        let Some(tc) = self.conns.get_mut(&target) else {
            return;
        };
        let Some(tm) = tc.joined.as_mut() else {
            return;
        };
        tm.reported_by.insert(conn);
        if tm.reported_by.len() < need {
            return;
        }
        let (id, addr, channel, rendition) = (
            tc.id.clone(),
            tc.addr,
            tc.channel.clone(),
            tm.rendition.clone(),
        );
        let b = self
            .bans
            .entry((channel.clone(), addr))
            .or_insert(AddressBans {
                peers: 0,
                until: now,
            });
        b.peers += 1;
        b.until = now + self.config.ban_for;
        out.to(
            target,
            ServerMsg::Error {
                code: ErrorCode::Banned,
                message: "banned: peers reported pieces from you that do not match the origin's signed digests".into(),
                fatal: true,
            },
        );
        out.close.push(target);
        if let Some(s) = self.swarms.get(&(channel, rendition)) {
            for &m in s.members.iter().filter(|&&m| m != target) {
                out.to(m, ServerMsg::Banned { id: id.clone() });
            }
        }
        self.leave(target);
    }

    fn member_mut(&mut self, conn: ConnId) -> Option<&mut Member> {
        self.conns.get_mut(&conn)?.joined.as_mut()
    }

    fn not_joined(&mut self, out: &mut Actions, conn: ConnId) {
        self.refuse(
            out,
            conn,
            ErrorCode::NotJoined,
            "send `join` first".into(),
            false,
        );
    }

    fn refuse(
        &mut self,
        out: &mut Actions,
        conn: ConnId,
        code: ErrorCode,
        message: String,
        fatal: bool,
    ) {
        *self.refused.entry(code).or_default() += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.strikes += 1;
        let fatal = fatal || c.strikes >= self.config.max_strikes;
        let message = if fatal && c.strikes >= self.config.max_strikes {
            format!("{message} (closing: {} refused messages)", c.strikes)
        } else {
            message
        };
        out.to(
            conn,
            ServerMsg::Error {
                code,
                message,
                fatal,
            },
        );
        if fatal {
            out.close.push(conn);
        }
    }

    /// Up to `peers_per_answer` members of `conn`'s swarm, best first.
    fn pick(&mut self, conn: ConnId) -> Vec<PeerInfo> {
        let Some(c) = self.conns.get(&conn) else {
            return Vec::new();
        };
        let Some(me) = &c.joined else {
            return Vec::new();
        };
        let Some(swarm) = self
            .swarms
            .get_mut(&(c.channel.clone(), me.rendition.clone()))
        else {
            return Vec::new();
        };
        let n = swarm.members.len();
        let (start, take) = if n > SAMPLE {
            swarm.cursor = (swarm.cursor + SAMPLE) % n;
            (swarm.cursor, SAMPLE)
        } else {
            (0, n)
        };
        let mut scored: Vec<(i64, &Conn)> = (0..take)
            .map(|i| swarm.members[(start + i) % n])
            .filter(|&m| m != conn)
            .filter_map(|m| self.conns.get(&m))
            .filter_map(|p| p.joined.as_ref().map(|pm| (score(c, me, p, pm), p)))
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        scored
            .into_iter()
            .take(self.config.peers_per_answer)
            .filter_map(|(_, p)| {
                let pm = p.joined.as_ref()?;
                Some(PeerInfo {
                    id: p.id.clone(),
                    region: pm.region.clone(),
                    position: pm.position,
                })
            })
            .collect()
    }

    /// Every swarm's size.
    pub fn stats(&self) -> Vec<SwarmStats> {
        let mut v: Vec<SwarmStats> = self
            .swarms
            .iter()
            .map(|((channel, rendition), s)| SwarmStats {
                channel: channel.clone(),
                rendition: rendition.clone(),
                peers: s.members.len(),
            })
            .collect();
        v.sort_by(|a, b| (&a.channel, &a.rendition).cmp(&(&b.channel, &b.rendition)));
        v
    }

    /// Connections admitted now (joined or not).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Frames refused since start, by cause.
    pub fn refused(&self) -> Vec<(ErrorCode, u64)> {
        let mut v: Vec<_> = self.refused.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by_key(|(k, _)| k.as_str());
        v
    }

    /// Signals relayed since start.
    pub fn relayed(&self) -> u64 {
        self.relayed
    }
}

fn score(c: &Conn, me: &Member, p: &Conn, pm: &Member) -> i64 {
    let mut s = 0i64;
    if me.region.is_some() && me.region == pm.region {
        s += 1_000;
    }
    if c.prefix == p.prefix {
        s += 400;
    }
    s += i64::from(pm.upload_kbps.min(10_000) / 50);
    // Ahead of me: holds what I will ask for next; behind me: has little I lack.
    let (mine, theirs) = (me.position as i64, pm.position as i64);
    s -= if theirs >= mine {
        ((theirs - mine) * 10).min(200)
    } else {
        ((mine - theirs) * 40).min(400)
    };
    s
}

/// The network an address is likely in: /24 of IPv4, /48 of IPv6.
fn prefix(addr: IpAddr) -> [u8; 8] {
    let mut p = [0u8; 8];
    match addr {
        IpAddr::V4(a) => p[..3].copy_from_slice(&a.octets()[..3]),
        IpAddr::V6(a) => {
            p[0] = 6;
            p[1..7].copy_from_slice(&a.octets()[..6]);
        }
    }
    p
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
