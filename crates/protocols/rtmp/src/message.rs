//! RTMP messages: the meaning of a chunk-stream message by its type id.
//!
//! Decoding turns a [`RawMessage`](crate::chunk::RawMessage) body into a [`Message`];
//! encoding produces the body to hand to the chunk encoder. Media bodies (audio and
//! video FLV tag bodies, including Enhanced RTMP's extended headers) are passed through
//! untouched as `Bytes` slices.
//!
//! This module must never interpret media payloads or keep session state.

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf0::{self, Value};
use crate::error::RtmpError;

use self::type_id as t;

/// Message type ids (RTMP spec section 5.4 and 7.1).
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event type this engine does not know; kept for logging.
    Other {
        event_type: u16,
        data: Bytes,
    },
}

impl UserControl {
    fn event_type(&self) -> u16 {
        match self {
            UserControl::StreamBegin(_) => 0,
            UserControl::StreamEof(_) => 1,
            UserControl::StreamDry(_) => 2,
            UserControl::SetBufferLength { .. } => 3,
            UserControl::StreamIsRecorded(_) => 4,
            UserControl::PingRequest(_) => 6,
            UserControl::PingResponse(_) => 7,
            UserControl::Other { event_type, .. } => *event_type,
        }
    }
}

/// A command message: `name`, transaction id, command object, further arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    pub command_object: Value,
    pub args: Vec<Value>,
}

impl Command {
    pub fn new(name: &str, transaction_id: f64, command_object: Value, args: Vec<Value>) -> Self {
        Self {
            name: name.to_owned(),
            transaction_id,
            command_object,
            args,
        }
    }

    /// The first argument as a string (the stream name of publish, play, FCPublish, ...).
    pub fn first_string_arg(&self) -> Option<&str> {
        self.args.first().and_then(Value::as_str)
    }
}

/// A decoded RTMP message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        chunk_stream_id: u32,
    },
    Acknowledgement {
        sequence_number: u32,
    },
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    /// FLV audio tag body.
    Audio(Bytes),
    /// FLV video tag body.
    Video(Bytes),
    /// Data message (type 18, or 15 with an AMF0 body): a list of AMF0 values.
    Data(Vec<Value>),
    /// Command message (type 20, or 17 with an AMF0 body).
    Command(Command),
    /// A type this engine does not act on (aggregate, shared objects, ...).
    Other {
        type_id: u8,
        payload: Bytes,
    },
}

fn be_u32(type_id: u8, p: &[u8], at: usize) -> Result<u32, RtmpError> {
    match p.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(RtmpError::MessageTruncated {
            type_id,
            len: p.len(),
            needed: at + 4,
        }),
    }
}

/// Strips the AMF3 envelope of types 15 and 17: a leading 0 byte means AMF0 follows.
fn amf0_body(type_id: u8, payload: &Bytes) -> Result<&[u8], RtmpError> {
    if type_id != type_id::DATA_AMF3 && type_id != type_id::COMMAND_AMF3 {
        return Ok(payload);
    }
    match payload.first() {
        None => Ok(&[]),
        Some(0) => Ok(&payload[1..]),
        Some(&first_byte) => Err(RtmpError::Amf3NotSupported {
            type_id,
            first_byte,
        }),
    }
}

impl Message {
    /// Interprets a message body by its type id, AMF0 bodies within the default value
    /// budget ([`amf0::DEFAULT_MAX_VALUES`]).
    pub fn decode(type_id: u8, payload: Bytes) -> Result<Message, RtmpError> {
        Self::decode_with(type_id, payload, amf0::DEFAULT_MAX_VALUES)
    }

    /// Interprets a message body; an AMF0 body may decode to at most `max_amf_values`
    /// values in all.
    pub fn decode_with(
        type_id: u8,
        payload: Bytes,
        max_amf_values: usize,
    ) -> Result<Message, RtmpError> {
        let budget = &mut amf0::AmfBudget::new(max_amf_values);
        let p = &payload[..];
        Ok(match type_id {
            t::SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(type_id, p, 0)?),
            t::ABORT => Message::Abort {
                chunk_stream_id: be_u32(type_id, p, 0)?,
            },
            t::ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence_number: be_u32(type_id, p, 0)?,
            },
            t::WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(type_id, p, 0)?),
            t::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be_u32(type_id, p, 0)?,
                limit_type: p.get(4).copied().unwrap_or(2),
            },
            t::USER_CONTROL => {
                let event_type = match p.get(..2) {
                    Some(b) => u16::from_be_bytes([b[0], b[1]]),
                    None => {
                        return Err(RtmpError::MessageTruncated {
                            type_id,
                            len: p.len(),
                            needed: 2,
                        })
                    }
                };
                let uc = match event_type {
                    0 => UserControl::StreamBegin(be_u32(type_id, p, 2)?),
                    1 => UserControl::StreamEof(be_u32(type_id, p, 2)?),
                    2 => UserControl::StreamDry(be_u32(type_id, p, 2)?),
                    3 => UserControl::SetBufferLength {
                        stream_id: be_u32(type_id, p, 2)?,
                        buffer_ms: be_u32(type_id, p, 6)?,
                    },
                    4 => UserControl::StreamIsRecorded(be_u32(type_id, p, 2)?),
                    6 => UserControl::PingRequest(be_u32(type_id, p, 2)?),
                    7 => UserControl::PingResponse(be_u32(type_id, p, 2)?),
                    _ => UserControl::Other {
                        event_type,
                        data: payload.slice(2..),
                    },
                };
                Message::UserControl(uc)
            }
            t::AUDIO => Message::Audio(payload),
            t::VIDEO => Message::Video(payload),
            t::DATA_AMF0 | t::DATA_AMF3 => Message::Data(amf0::decode_all_with(
                amf0_body(type_id, &payload)?,
                budget,
            )?),
            t::COMMAND_AMF0 | t::COMMAND_AMF3 => {
                let mut input = amf0_body(type_id, &payload)?;
                let name = match amf0::decode_with(&mut input, budget)? {
                    Value::String(s) | Value::LongString(s) => s,
                    _ => {
                        return Err(RtmpError::MalformedCommand {
                            reason: "command name is not a string",
                        })
                    }
                };
                // A missing transaction id or command object is tolerated (0 / Null):
                // some encoders omit them on fire-and-forget commands.
                let transaction_id = if input.is_empty() {
                    0.0
                } else {
                    match amf0::decode_with(&mut input, budget)? {
                        Value::Number(n) => n,
                        _ => 0.0,
                    }
                };
                let command_object = if input.is_empty() {
                    Value::Null
                } else {
                    amf0::decode_with(&mut input, budget)?
                };
                let args = amf0::decode_all_with(input, budget)?;
                Message::Command(Command {
                    name,
                    transaction_id,
                    command_object,
                    args,
                })
            }
            _ => Message::Other { type_id, payload },
        })
    }

    /// The type id this message is sent with (AMF0 variants for data and commands).
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => t::SET_CHUNK_SIZE,
            Message::Abort { .. } => t::ABORT,
            Message::Acknowledgement { .. } => t::ACKNOWLEDGEMENT,
            Message::UserControl(_) => t::USER_CONTROL,
            Message::WindowAckSize(_) => t::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => t::SET_PEER_BANDWIDTH,
            Message::Audio(_) => t::AUDIO,
            Message::Video(_) => t::VIDEO,
            Message::Data(_) => t::DATA_AMF0,
            Message::Command(_) => t::COMMAND_AMF0,
            Message::Other { type_id, .. } => *type_id,
        }
    }

    /// The message body. Media bodies are returned as the same `Bytes` (no copy).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Message::SetChunkSize(v)
            | Message::Abort { chunk_stream_id: v }
            | Message::Acknowledgement { sequence_number: v }
            | Message::WindowAckSize(v) => out.put_u32(*v),
            Message::SetPeerBandwidth { size, limit_type } => {
                out.put_u32(*size);
                out.put_u8(*limit_type);
            }
            Message::UserControl(uc) => {
                out.put_u16(uc.event_type());
                match uc {
                    UserControl::StreamBegin(v)
                    | UserControl::StreamEof(v)
                    | UserControl::StreamDry(v)
                    | UserControl::StreamIsRecorded(v)
                    | UserControl::PingRequest(v)
                    | UserControl::PingResponse(v) => out.put_u32(*v),
                    UserControl::SetBufferLength {
                        stream_id,
                        buffer_ms,
                    } => {
                        out.put_u32(*stream_id);
                        out.put_u32(*buffer_ms);
                    }
                    UserControl::Other { data, .. } => out.put_slice(data),
                }
            }
            Message::Audio(b) | Message::Video(b) | Message::Other { payload: b, .. } => {
                return b.clone()
            }
            Message::Data(values) => amf0::encode_all(values, &mut out),
            Message::Command(c) => {
                Value::String(c.name.clone()).encode(&mut out);
                Value::Number(c.transaction_id).encode(&mut out);
                c.command_object.encode(&mut out);
                amf0::encode_all(&c.args, &mut out);
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message) {
        let body = m.encode();
        assert_eq!(Message::decode(m.type_id(), body).unwrap(), m);
    }

    #[test]
    fn control_messages_round_trip() {
        round_trip(Message::SetChunkSize(4096));
        round_trip(Message::Abort { chunk_stream_id: 6 });
        round_trip(Message::Acknowledgement {
            sequence_number: 2_500_000,
        });
        round_trip(Message::WindowAckSize(2_500_000));
        round_trip(Message::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: 2,
        });
        for uc in [
            UserControl::StreamBegin(1),
            UserControl::StreamEof(1),
            UserControl::StreamDry(1),
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControl::StreamIsRecorded(1),
            UserControl::PingRequest(123),
            UserControl::PingResponse(123),
        ] {
            round_trip(Message::UserControl(uc));
        }
    }

    #[test]
    fn user_control_vector() {
        // StreamBegin for stream 1: event 0, stream id 1.
        assert_eq!(
            &Message::UserControl(UserControl::StreamBegin(1)).encode()[..],
            &[0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            Message::decode(4, Bytes::from_static(&[0, 6, 0, 0, 1, 0])).unwrap(),
            Message::UserControl(UserControl::PingRequest(256))
        );
    }

    #[test]
    fn truncated_control_message_is_an_error() {
        assert_eq!(
            Message::decode(5, Bytes::from_static(&[0, 1])),
            Err(RtmpError::MessageTruncated {
                type_id: 5,
                len: 2,
                needed: 4
            })
        );
        assert!(Message::decode(4, Bytes::from_static(&[0, 3, 0, 0, 0, 1])).is_err());
    }

    #[test]
    fn command_round_trip() {
        round_trip(Message::Command(Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::string("key1"), Value::string("live")],
        )));
        round_trip(Message::Data(vec![
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            Value::EcmaArray(vec![("width".into(), Value::Number(1280.0))]),
        ]));
    }

    #[test]
    fn amf3_envelope_with_amf0_body_is_decoded() {
        let cmd = Command::new("createStream", 2.0, Value::Null, vec![]);
        let mut body = vec![0u8];
        body.extend_from_slice(&Message::Command(cmd.clone()).encode());
        assert_eq!(
            Message::decode(17, Bytes::from(body)).unwrap(),
            Message::Command(cmd)
        );
        assert_eq!(
            Message::decode(17, Bytes::from_static(&[0x06, 0x01])),
            Err(RtmpError::Amf3NotSupported {
                type_id: 17,
                first_byte: 6
            })
        );
    }

    #[test]
    fn media_passes_through_untouched() {
        let body = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3]);
        let m = Message::decode(9, body.clone()).unwrap();
        assert_eq!(m, Message::Video(body.clone()));
        assert_eq!(m.encode().as_ptr(), body.as_ptr());
    }

    #[test]
    fn command_name_must_be_a_string() {
        assert!(matches!(
            Message::decode(20, Bytes::from_static(&[0x05])),
            Err(RtmpError::MalformedCommand { .. })
        ));
    }
}
