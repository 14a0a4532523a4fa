//! What the server and client sessions share once the handshake is done: the chunk
//! decoder and encoder, the outgoing queue, and the acknowledgement window.
//!
//! Private to the crate; it must never do I/O.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::amf0::Value;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits};
use crate::message::{Command, Message, UserControl};

/// Chunk stream ids this engine sends on. Separate ids per kind keep type 2/3 headers
/// usable on the media streams.
pub(crate) const CSID_CONTROL: u32 = 2;
pub(crate) const CSID_COMMAND: u32 = 3;
pub(crate) const CSID_AUDIO: u32 = 4;
pub(crate) const CSID_STREAM: u32 = 5;
pub(crate) const CSID_VIDEO: u32 = 6;

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) decoder: ChunkDecoder,
    pub(crate) encoder: ChunkEncoder,
    pub(crate) out: VecDeque<Bytes>,
    bytes_received: u64,
    last_ack: u64,
    /// Window the peer asked us to acknowledge (its Window Acknowledgement Size).
    peer_window: Option<u32>,
    /// Outgoing messages that could not be framed (over 16 MiB - 1).
    pub(crate) dropped_outgoing: u64,
}

impl Conn {
    pub(crate) fn new(limits: ChunkLimits) -> Self {
        Self {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            out: VecDeque::new(),
            bytes_received: 0,
            last_ack: 0,
            peer_window: None,
            dropped_outgoing: 0,
        }
    }

    pub(crate) fn count_received(&mut self, n: usize) {
        self.bytes_received = self.bytes_received.saturating_add(n as u64);
    }

    /// Sends an Acknowledgement once a window's worth of bytes has arrived since the last one.
    pub(crate) fn maybe_ack(&mut self) {
        let Some(window) = self.peer_window else {
            return;
        };
        if self.bytes_received - self.last_ack >= u64::from(window) {
            self.last_ack = self.bytes_received;
            // The sequence number is the byte count so far, wrapping at 2^32.
            let sequence_number = self.bytes_received as u32;
            self.control(&Message::Acknowledgement { sequence_number });
        }
    }

    /// Handles the protocol and user control messages both sides treat alike.
    /// Returns true when the message was one of them.
    pub(crate) fn on_control(&mut self, msg: &Message) -> bool {
        match msg {
            Message::WindowAckSize(size) => {
                self.peer_window = (*size > 0).then_some(*size);
                true
            }
            Message::UserControl(UserControl::PingRequest(t)) => {
                self.control(&Message::UserControl(UserControl::PingResponse(*t)));
                true
            }
            Message::SetChunkSize(_)
            | Message::Abort { .. }
            | Message::Acknowledgement { .. }
            | Message::SetPeerBandwidth { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn send(&mut self, csid: u32, stream_id: u32, timestamp: u32, msg: &Message) {
        let body = msg.encode();
        self.send_raw(csid, msg.type_id(), stream_id, timestamp, &body);
    }

    pub(crate) fn send_raw(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        body: &Bytes,
    ) {
        if self
            .encoder
            .write(csid, type_id, stream_id, timestamp, body, &mut self.out)
            .is_err()
        {
            self.dropped_outgoing += 1;
        }
    }

    /// [`send_raw`](Self::send_raw) for a body in pieces, sliced rather than joined.
    pub(crate) fn send_raw_parts(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        parts: &[Bytes],
    ) {
        if self
            .encoder
            .write_parts(csid, type_id, stream_id, timestamp, parts, &mut self.out)
            .is_err()
        {
            self.dropped_outgoing += 1;
        }
    }

    /// Protocol control and user control messages: chunk stream 2, message stream 0.
    pub(crate) fn control(&mut self, msg: &Message) {
        self.send(CSID_CONTROL, 0, 0, msg);
    }

    pub(crate) fn command(&mut self, stream_id: u32, cmd: Command) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        self.send(csid, stream_id, 0, &Message::Command(cmd));
    }

    /// Sends Set Chunk Size with the old size, then switches to the new one.
    pub(crate) fn set_out_chunk_size(&mut self, size: u32) {
        let size = size.clamp(1, crate::chunk::MAX_CHUNK_SIZE_ON_WIRE);
        self.control(&Message::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    /// `onStatus` on a NetStream.
    pub(crate) fn on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = Value::object([
            ("level", Value::string(level)),
            ("code", Value::string(code)),
            ("description", Value::string(description)),
        ]);
        self.command(
            stream_id,
            Command::new("onStatus", 0.0, Value::Null, vec![info]),
        );
    }
}

/// Status fields of an `onStatus`/`_error` information object.
pub(crate) fn status_fields(info: &Value) -> (String, String, String) {
    let field = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("level"), field("code"), field("description"))
}

/// The metadata object of a data message: `onMetaData` or `@setDataFrame onMetaData`.
pub(crate) fn metadata(values: Vec<Value>) -> Option<Value> {
    let mut it = values.into_iter();
    match it.next()?.as_str()? {
        "@setDataFrame" => {
            if it.next()?.as_str()? != "onMetaData" {
                return None;
            }
            it.next()
        }
        "onMetaData" => it.next(),
        _ => None,
    }
}
