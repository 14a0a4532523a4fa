use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct T {
    tr: Tracker,
    now: Instant,
}

impl T {
    fn new(config: TrackerConfig) -> Self {
        Self {
            tr: Tracker::new(config, "ab".repeat(32)),
            now: Instant::now(),
        }
    }

    fn admit(&mut self, conn: ConnId, addr: &str) {
        self.tr
            .admit(conn, format!("p{conn}"), "demo", ip(addr), self.now)
            .unwrap();
    }

    fn send(&mut self, conn: ConnId, text: &str) -> Actions {
        self.tr.message(conn, text, self.now)
    }

    /// Admits and joins; returns the welcome's peers.
    fn join(&mut self, conn: ConnId, addr: &str, extra: &str) -> Vec<PeerInfo> {
        self.admit(conn, addr);
        let a = self.send(
            conn,
            &format!(r#"{{"t":"join","rendition":"video"{extra}}}"#),
        );
        match &a.send[..] {
            [(
                c,
                ServerMsg::Welcome {
                    id,
                    peers,
                    key,
                    ice,
                },
            )] => {
                assert!(ice.is_empty());
                assert_eq!((*c, id.as_str()), (conn, format!("p{conn}").as_str()));
                assert_eq!(key.len(), 64);
                peers.clone()
            }
            other => panic!("{other:?}"),
        }
    }
}

fn ids(peers: &[PeerInfo]) -> Vec<&str> {
    peers.iter().map(|p| p.id.as_str()).collect()
}

fn error_code(a: &Actions) -> Option<(ErrorCode, bool)> {
    a.send.iter().find_map(|(_, m)| match m {
        ServerMsg::Error { code, fatal, .. } => Some((*code, *fatal)),
        _ => None,
    })
}

#[test]
fn joins_introduce_peers_and_relay_signals_stamped_with_the_sender() {
    let mut t = T::new(TrackerConfig::default());
    assert!(t.join(1, "10.0.0.1", "").is_empty());
    assert_eq!(ids(&t.join(2, "10.0.0.2", "")), ["p1"]);
    let a = t.send(2, r#"{"t":"signal","to":"p1","data":{"sdp":"offer"}}"#);
    assert_eq!(
        a.send,
        vec![(
            1,
            ServerMsg::Signal {
                from: "p2".into(),
                data: serde_json::json!({"sdp": "offer"})
            }
        )]
    );
    // Another rendition's swarm, and another channel's, are out of reach.
    t.admit(3, "10.0.0.3");
    t.send(3, r#"{"t":"join","rendition":"audio"}"#);
    assert_eq!(
        error_code(&t.send(3, r#"{"t":"signal","to":"p1","data":1}"#)),
        Some((ErrorCode::UnknownPeer, false))
    );
    t.tr.admit(4, "p4".into(), "other", ip("10.0.0.4"), t.now)
        .unwrap();
    t.send(4, r#"{"t":"join","rendition":"video"}"#);
    assert_eq!(
        error_code(&t.send(4, r#"{"t":"signal","to":"p1","data":1}"#)),
        Some((ErrorCode::UnknownPeer, false))
    );
    assert_eq!(t.tr.relayed(), 1);
    assert_eq!(
        t.tr.stats(),
        vec![
            SwarmStats {
                channel: "demo".into(),
                rendition: "audio".into(),
                peers: 1
            },
            SwarmStats {
                channel: "demo".into(),
                rendition: "video".into(),
                peers: 2
            },
            SwarmStats {
                channel: "other".into(),
                rendition: "video".into(),
                peers: 1
            },
        ]
    );
    for c in 1..=4 {
        t.tr.leave(c);
    }
    assert!(t.tr.stats().is_empty());
    assert_eq!(t.tr.connections(), 0);
    assert!(t.tr.per_address.is_empty() && t.tr.by_id.is_empty());
}

#[test]
fn selection_prefers_region_then_network_then_peers_just_ahead() {
    let mut t = T::new(TrackerConfig::default());
    t.join(1, "192.0.2.1", r#","region":"us","position":100"#);
    t.join(2, "198.51.100.7", r#","region":"eu","position":100"#);
    t.join(3, "203.0.113.9", r#","region":"ap","position":101"#);
    t.join(4, "203.0.113.10", r#","region":"ap","position":90"#);
    t.join(5, "198.51.100.8", r#","region":"us","position":130"#);
    let picked = t.join(6, "203.0.113.11", r#","region":"ap","position":100"#);
    // Same region and /24 first (3 just ahead before 4 behind), then by position: the
    // peer level with us before the one 30 segments ahead.
    assert_eq!(ids(&picked), ["p3", "p4", "p1", "p2", "p5"]);
    // Upload capacity breaks ties.
    let mut t = T::new(TrackerConfig::default());
    t.join(1, "10.0.0.1", r#","upload_kbps":100"#);
    t.join(2, "10.1.0.1", r#","upload_kbps":8000"#);
    assert_eq!(ids(&t.join(3, "10.2.0.1", "")), ["p2", "p1"]);
}

#[test]
fn floods_are_throttled_and_repeat_offenders_closed() {
    let mut t = T::new(TrackerConfig::default());
    t.join(1, "10.0.0.1", "");
    let mut errors = 0;
    for _ in 0..200 {
        let a = t.send(1, r#"{"t":"position","position":5}"#);
        if let Some((code, _)) = error_code(&a) {
            assert_eq!(code, ErrorCode::RateLimited);
            errors += 1;
        }
    }
    // One error for the whole burst, not one per dropped frame.
    assert_eq!(errors, 1);
    // The bucket refills with time.
    t.now += Duration::from_secs(1);
    assert_eq!(
        t.send(1, r#"{"t":"position","position":6}"#),
        Actions::default()
    );
    // Malformed frames: an error naming the cause each time, closed at the fifth strike
    // (the rate burst was the first).
    let a = t.send(1, "{not json");
    assert!(
        matches!(&a.send[0].1, ServerMsg::Error { code: ErrorCode::Malformed, message, fatal: false } if message.contains("key must be a string")),
        "{a:?}"
    );
    assert_eq!(
        error_code(&t.send(1, r#"{"t":"join","rendition":"video"}"#)),
        Some((ErrorCode::AlreadyJoined, false))
    );
    t.send(1, r#"{"t":"fly"}"#);
    let a = t.send(1, "[]");
    assert_eq!(error_code(&a), Some((ErrorCode::Malformed, true)));
    assert_eq!(a.close, vec![1]);
    // Too large: closed at once.
    t.join(2, "10.0.0.2", "");
    let big = format!(
        r#"{{"t":"signal","to":"p1","data":"{}"}}"#,
        "x".repeat(20_000)
    );
    let a = t.send(2, &big);
    assert_eq!(error_code(&a), Some((ErrorCode::TooLarge, true)));
    assert_eq!(a.close, vec![2]);
    // Before a join, nothing but a join.
    t.admit(3, "10.0.0.3");
    assert_eq!(
        error_code(&t.send(3, r#"{"t":"peers"}"#)),
        Some((ErrorCode::NotJoined, false))
    );
}

#[test]
fn addresses_and_swarms_are_capped() {
    let mut t = T::new(TrackerConfig {
        max_per_address: 3,
        max_swarm: 4,
        max_connections: 9,
        ..Default::default()
    });
    for c in 0..3 {
        t.admit(c, "10.0.0.1");
    }
    assert_eq!(
        t.tr.admit(9, "p9".into(), "demo", ip("10.0.0.1"), t.now),
        Err(Refusal::TooManyFromAddress(3))
    );
    t.tr.leave(0);
    t.admit(9, "10.0.0.1");
    for c in 10..14 {
        t.join(c, &format!("10.0.1.{c}"), "");
    }
    t.admit(14, "10.0.2.1");
    let a = t.send(14, r#"{"t":"join","rendition":"video"}"#);
    assert_eq!(error_code(&a), Some((ErrorCode::SwarmFull, true)));
    assert_eq!(a.close, vec![14]);
    // Nine connections in all: the node's cap.
    t.admit(15, "10.0.3.1");
    assert_eq!(t.tr.connections(), 9);
    assert_eq!(
        t.tr.admit(16, "p16".into(), "demo", ip("10.0.4.1"), t.now),
        Err(Refusal::Full(9))
    );
}

#[test]
fn two_reports_ban_a_peer_and_tell_the_swarm_and_repeat_liars_ban_their_address() {
    let mut t = T::new(TrackerConfig::default());
    t.join(1, "10.0.0.1", "");
    t.join(2, "10.0.0.2", "");
    t.join(3, "10.0.0.66", "");
    // One report is not enough, and repeating it does not count twice.
    for _ in 0..3 {
        let a = t.send(
            1,
            r#"{"t":"report","peer":"p3","reason":"digest mismatch"}"#,
        );
        assert_eq!(a, Actions::default());
    }
    let a = t.send(
        2,
        r#"{"t":"report","peer":"p3","reason":"digest mismatch"}"#,
    );
    assert_eq!(error_code(&a), Some((ErrorCode::Banned, true)));
    assert_eq!(a.close, vec![3]);
    let told: Vec<ConnId> = a
        .send
        .iter()
        .filter(|(_, m)| matches!(m, ServerMsg::Banned { id } if id == "p3"))
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(told, [1, 2]);
    assert_eq!(t.tr.stats()[0].peers, 2);
    // Its address is not banned for one liar (a NAT's neighbours keep their place)...
    for (round, conn) in [(2, 4), (3, 5)] {
        t.join(conn, "10.0.0.66", "");
        let p = format!(r#"{{"t":"report","peer":"p{conn}","reason":"digest mismatch"}}"#);
        t.send(1, &p);
        let a = t.send(2, &p);
        assert_eq!(a.close, vec![conn], "ban {round}");
    }
    // ...but after three banned peers it is, in this channel, for ten minutes.
    assert_eq!(
        t.tr.admit(6, "p6".into(), "demo", ip("10.0.0.66"), t.now),
        Err(Refusal::Banned)
    );
    t.tr.admit(7, "p7".into(), "other", ip("10.0.0.66"), t.now)
        .unwrap();
    t.now += Duration::from_secs(601);
    t.admit(6, "10.0.0.66");
    // Reporting oneself or a stranger does nothing.
    assert_eq!(
        t.send(1, r#"{"t":"report","peer":"p1","reason":"x"}"#),
        Actions::default()
    );
    assert_eq!(
        t.send(1, r#"{"t":"report","peer":"nobody","reason":"x"}"#),
        Actions::default()
    );
}

#[test]
fn a_large_swarm_is_sampled_and_every_answer_is_full() {
    let mut t = T::new(TrackerConfig {
        max_per_address: usize::MAX,
        max_swarm: usize::MAX,
        rate_per_sec: 1e9,
        burst: 1e9,
        ..Default::default()
    });
    for c in 0..10_000u64 {
        let a =
            t.tr.admit(c, format!("p{c}"), "demo", ip("10.0.0.1"), t.now);
        a.unwrap();
        t.send(c, r#"{"t":"join","rendition":"video"}"#);
    }
    let mut seen = HashSet::new();
    for _ in 0..50 {
        match &t.send(0, r#"{"t":"peers"}"#).send[..] {
            [(0, ServerMsg::Peers { peers })] => {
                assert_eq!(peers.len(), 8);
                assert!(peers.iter().all(|p| p.id != "p0"));
                seen.extend(peers.iter().map(|p| p.id.clone()));
            }
            other => panic!("{other:?}"),
        }
    }
    // The rotating sample reaches across the swarm, not the same eight each time.
    assert!(seen.len() > 100, "{}", seen.len());
}
