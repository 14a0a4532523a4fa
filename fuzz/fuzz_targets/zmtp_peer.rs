//! The ZMTP REQ socket on arbitrary peer bytes, fed in arbitrary pieces, with requests
//! made whenever it can take one: it never panics, never holds a frame over its bound,
//! and once it has failed it stays failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_zmtp::{Event, ReqSocket, MAX_FRAME, MAX_PARTS};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut).max(1);
    let mut s = ReqSocket::new();
    let _ = s.take_output();
    let mut failed = false;
    for piece in data.chunks(step) {
        let r = s.receive(piece);
        if failed {
            assert!(r.is_err(), "a failed socket stays failed");
        }
        failed |= r.is_err();
        while let Some(e) = s.poll_event() {
            if let Event::Reply(parts) = e {
                assert!(parts.len() <= MAX_PARTS);
                assert!(parts.iter().all(|p| p.len() <= MAX_FRAME));
            }
        }
        if s.can_request() {
            s.request(&[b"crop@v x 10"]).unwrap();
            let _ = s.take_output();
        }
    }
});
