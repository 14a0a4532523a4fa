//! The peers' binary frames, straight off a data channel: never panic, a frame that
//! decodes encodes back to the same bytes, and a transfer never holds more than it
//! announced or than MAX_PIECE.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_p2p::wire::{Frame, PieceId, Transfers, MAX_PIECE};

fuzz_target!(|data: &[u8]| {
    let mut transfers = Transfers::default();
    let piece = PieceId { session: 1, msn: 1, part: 0 };
    for r in 0..4 {
        transfers.want(r, piece).unwrap();
    }
    // Messages separated by 0xFF, as a data channel would deliver them one by one.
    for msg in data.split(|&b| b == 0xFF) {
        let msg = Bytes::copy_from_slice(msg);
        let Ok(frame) = Frame::decode(&msg) else {
            continue;
        };
        assert_eq!(frame.encode(), msg);
        if let Frame::Data { req, offset, total, bytes } = frame {
            if let Ok(Some((_, whole))) = transfers.data(req, offset, total, &bytes) {
                assert_eq!(whole.len() as u64, u64::from(total));
                assert!(total <= MAX_PIECE);
            }
        }
    }
});
