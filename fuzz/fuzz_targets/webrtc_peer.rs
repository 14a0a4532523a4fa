//! The WebRTC entry points that take network bytes: the SDP offer of a WHIP/WHEP POST
//! (`Peer::accept`), the UDP demultiplexer (`demux::ice_ufrag`), and datagrams (STUN,
//! DTLS, RTP/RTCP) fed to a session made from a real offer. Must never panic; a bad
//! offer is an error, and garbage datagrams never bring a session up.
#![no_main]

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use libfuzzer_sys::fuzz_target;
use starling_webrtc::{demux, Peer, PeerConfig, PeerOutput, Role, Transport};
use str0m::media::{Direction, MediaKind};

/// A real offer (str0m as the client: H.264 and Opus, receive only), made once.
fn offer() -> &'static str {
    static OFFER: OnceLock<String> = OnceLock::new();
    OFFER.get_or_init(|| {
        let mut rtc = str0m::Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(Instant::now());
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.apply().unwrap().0.to_sdp_string()
    })
}

fn config(role: Role) -> PeerConfig {
    PeerConfig {
        role,
        candidates: vec!["127.0.0.1:8189".parse().unwrap()],
        tcp_candidates: vec!["127.0.0.1:8189".parse().unwrap()],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let _ = demux::ice_ufrag(rest);
    let now = Instant::now();
    let role = if sel & 1 == 0 { Role::Play } else { Role::Publish };
    if sel & 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = Peer::accept(text, &config(role), now, SystemTime::now());
        }
        return;
    }
    let Ok((mut peer, _)) = Peer::accept(offer(), &config(Role::Play), now, SystemTime::now())
    else {
        panic!("a real offer must be answered");
    };
    let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:8189".parse().unwrap();
    for (i, chunk) in rest.chunks(300).enumerate() {
        let transport = if i % 2 == 0 { Transport::Udp } else { Transport::Tcp };
        let _ = peer.receive(now + Duration::from_millis(i as u64), transport, from, local, chunk);
        for _ in 0..64 {
            match peer.poll() {
                PeerOutput::Timeout(_) => break,
                PeerOutput::Transmit(_) | PeerOutput::Event(_) => {}
            }
        }
    }
    assert!(!peer.is_connected(), "garbage cannot complete ICE and DTLS");
});
