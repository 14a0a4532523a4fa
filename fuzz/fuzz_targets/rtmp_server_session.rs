//! ServerSession after a valid handshake (C0, C1 and C2: 1 + 2 x 1536 bytes, so the
//! fuzz input lands on the chunk stream) and, when the first input byte is odd, a
//! valid `connect`, so the input reaches the NetStream commands. Afterwards every
//! pending request is accepted and media is sent, to exercise the output paths.
#![no_main]

use std::collections::VecDeque;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_rtmp::amf0::Value;
use starling_rtmp::chunk::ChunkEncoder;
use starling_rtmp::message::{Command, Message};
use starling_rtmp::{ServerConfig, ServerEvent, ServerSession};

fn connect_bytes() -> Vec<u8> {
    let cmd = Command::new(
        "connect",
        1.0,
        Value::object([
            ("app", Value::string("live")),
            ("tcUrl", Value::string("rtmp://localhost/live")),
        ]),
        vec![],
    );
    let mut out = VecDeque::new();
    ChunkEncoder::new()
        .write(3, 20, 0, 0, &Message::Command(cmd).encode(), &mut out)
        .expect("connect fits in one message");
    out.iter().flat_map(|b| b.iter().copied()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut session = ServerSession::new(ServerConfig {
        max_message_len: 1 << 16,
        max_chunk_size: 1 << 16,
        ..ServerConfig::default()
    });
    let mut prefix = vec![3u8];
    prefix.extend_from_slice(&[0u8; 2 * 1536]);
    if mode & 1 == 1 {
        prefix.extend_from_slice(&connect_bytes());
    }
    session.handle_input(&prefix).expect("valid prefix");
    let step = usize::from(mode >> 1).max(1);
    for piece in input.chunks(step) {
        if session.handle_input(piece).is_err() {
            break;
        }
    }
    let mut streams = Vec::new();
    while let Some(event) = session.poll_event() {
        match event {
            ServerEvent::PublishRequest { stream_id, .. } => {
                session.accept_publish(stream_id);
                streams.push(stream_id);
            }
            ServerEvent::PlayRequest { stream_id, .. } => {
                session.accept_play(stream_id);
                streams.push(stream_id);
            }
            _ => {}
        }
    }
    for id in streams {
        session.send_metadata(id, &Value::Null);
        session.send_video(id, 0x0100_0000, Bytes::from_static(&[0x17, 0, 0, 0, 0]));
        session.send_audio(id, 0x0100_0001, Bytes::from_static(&[0xAF, 1]));
        session.send_stream_eof(id);
        session.end_publish(id, "fuzz");
    }
    while session.poll_transmit().is_some() {}
});
