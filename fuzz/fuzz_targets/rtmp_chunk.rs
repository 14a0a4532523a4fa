//! Chunk stream decoder on arbitrary bytes, fed in pieces whose size the first byte
//! picks: must never panic, every complete message must respect the caps, and partial
//! messages never reserve more than their budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_rtmp::chunk::{ChunkDecoder, ChunkLimits};
use starling_rtmp::message::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let limits = ChunkLimits {
        max_chunk_size: 1 << 16,
        max_message_len: 1 << 16,
        max_chunk_streams: 8,
        max_partial_bytes: 1 << 17,
    };
    let mut decoder = ChunkDecoder::new(limits);
    for piece in input.chunks(usize::from(step).max(1)) {
        decoder.push(piece);
        loop {
            assert!(decoder.partial_bytes() <= limits.max_partial_bytes);
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    assert!(msg.payload.len() <= limits.max_message_len);
                    let _ = Message::decode(msg.type_id, msg.payload);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
