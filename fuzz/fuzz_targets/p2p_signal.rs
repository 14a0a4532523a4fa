//! The tracker's reading of signalling frames, straight off the WebSocket, fed through a
//! live tracker: never panics, every refusal is an error frame naming its cause, and
//! whatever the frames, the tracker's state stays bounded (one swarm membership per
//! connection).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use starling_p2p::signal::{parse_client, ServerMsg, MAX_MESSAGE};
use starling_p2p::{Tracker, TrackerConfig};

fuzz_target!(|data: &[u8]| {
    let mut tracker = Tracker::new(TrackerConfig::default(), "00".repeat(32));
    let now = Instant::now();
    for c in 0..3u64 {
        let addr = std::net::IpAddr::from([10, 0, 0, c as u8]);
        tracker.admit(c, format!("p{c}"), "demo", addr, now).unwrap();
    }
    // Frames separated by NUL, spread over three connections.
    for (i, frame) in data.split(|&b| b == 0).enumerate() {
        let Ok(text) = std::str::from_utf8(frame) else {
            continue;
        };
        if let Ok(m) = parse_client(text) {
            assert!(text.len() <= MAX_MESSAGE);
            let _ = m;
        }
        let conn = (i % 3) as u64;
        let at = now + Duration::from_millis(i as u64 * 7);
        let actions = tracker.message(conn, text, at);
        for (_, m) in &actions.send {
            if let ServerMsg::Error { message, .. } = m {
                assert!(!message.is_empty());
            }
        }
        for closed in actions.close {
            tracker.leave(closed);
        }
    }
    let members: usize = tracker.stats().iter().map(|s| s.peers).sum();
    assert!(members <= tracker.connections());
});
