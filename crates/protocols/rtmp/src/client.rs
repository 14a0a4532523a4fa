//! The client side of an RTMP connection: publishes or plays one stream.
//!
//! Used by tests, the load generator and test publishers, so it follows the command
//! sequence of ffmpeg's native client (libavformat/rtmpproto.c): connect; then
//! releaseStream, FCPublish, createStream and publish for publishing; createStream,
//! play and Set Buffer Length for playing.
//!
//! Like the server it is sans-IO: bytes in through [`ClientSession::handle_input`],
//! bytes out through [`ClientSession::poll_transmit`], events out through
//! [`ClientSession::poll_event`].
//!
//! This module must never perform I/O or read a clock.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::Value;
use crate::chunk::ChunkLimits;
use crate::conn::{metadata, status_fields, Conn, CSID_AUDIO, CSID_STREAM, CSID_VIDEO};
use crate::error::RtmpError;
use crate::handshake::ClientHandshake;
use crate::message::{type_id, Command, Message, UserControl};

/// Configuration of a [`ClientSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application name sent in `connect` (the first path segment of the URL, e.g. `live`).
    pub app: String,
    /// The URL without the stream name, e.g. `rtmp://host/live`.
    pub tc_url: String,
    /// Largest message the server may send (default 16 MiB).
    pub max_message_len: usize,
    /// Chunk size the client sends with (default 4096).
    pub out_chunk_size: u32,
    /// Seed of the C1 filler bytes.
    pub handshake_seed: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            app: "live".into(),
            tc_url: "rtmp://localhost/live".into(),
            max_message_len: 16 * 1024 * 1024,
            out_chunk_size: 4096,
            handshake_seed: 0,
        }
    }
}

/// What the server told the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Publish.Start`: media may be sent.
    PublishStarted,
    /// `NetStream.Play.Start`.
    PlayStarted,
    /// Any `onStatus`, and `_error` replies, rejections included.
    Status {
        level: String,
        code: String,
        description: String,
    },
    Metadata(Value),
    Video {
        timestamp: u32,
        data: Bytes,
    },
    Audio {
        timestamp: u32,
        data: Bytes,
    },
    /// User control Stream EOF: the publisher went away.
    StreamEof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Intent {
    Publish(String),
    Play(String),
}

const CONNECT_TXID: f64 = 1.0;

/// Client side of one RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    handshake_buf: BytesMut,
    conn: Conn,
    events: VecDeque<ClientEvent>,
    connected: bool,
    next_txid: f64,
    /// Publish or play asked for; runs once connected.
    intent: Option<Intent>,
    create_stream_txid: Option<f64>,
    stream_id: Option<u32>,
    publishing: bool,
    dropped: u64,
    failed: bool,
}

impl ClientSession {
    /// Creates the session and queues C0+C1.
    pub fn new(config: ClientConfig) -> Self {
        let (handshake, c0c1) = ClientHandshake::new(config.handshake_seed);
        let limits = ChunkLimits {
            max_message_len: config.max_message_len,
            ..ChunkLimits::default()
        };
        let mut conn = Conn::new(limits);
        conn.out.push_back(c0c1);
        Self {
            config,
            handshake,
            handshake_buf: BytesMut::new(),
            conn,
            events: VecDeque::new(),
            connected: false,
            next_txid: CONNECT_TXID + 1.0,
            intent: None,
            create_stream_txid: None,
            stream_id: None,
            publishing: false,
            dropped: 0,
            failed: false,
        }
    }

    /// Feeds bytes read from the socket. `Err` is fatal.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::SessionFailed);
        }
        let result = self.process(data);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Next buffer to write to the socket. Drain until `None`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.out.pop_front()
    }

    /// Next event. Drain until `None` after every call.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Media and metadata dropped because publishing had not started (or had ended).
    pub fn dropped_messages(&self) -> u64 {
        self.dropped + self.conn.dropped_outgoing
    }

    /// The message stream id the server gave us, once createStream has been answered.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Publishes `name`: releaseStream, FCPublish, createStream, then publish "live".
    /// May be called before the connection is up; it runs once `connect` succeeds.
    pub fn publish(&mut self, name: &str) {
        self.intent = Some(Intent::Publish(name.to_owned()));
        if self.connected {
            self.start_intent();
        }
    }

    /// Plays `name`: createStream, then play and a 3 s Set Buffer Length.
    pub fn play(&mut self, name: &str) {
        self.intent = Some(Intent::Play(name.to_owned()));
        if self.connected {
            self.start_intent();
        }
    }

    /// Sends `@setDataFrame onMetaData`. Dropped unless publishing has started.
    pub fn send_metadata(&mut self, value: &Value) {
        let Some(id) = self.publishing_stream() else {
            self.dropped += 1;
            return;
        };
        let msg = Message::Data(vec![
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            value.clone(),
        ]);
        self.conn.send(CSID_STREAM, id, 0, &msg);
    }

    /// Sends an FLV video tag body. Dropped unless publishing has started.
    pub fn send_video(&mut self, timestamp: u32, data: Bytes) {
        match self.publishing_stream() {
            Some(id) => self
                .conn
                .send_raw(CSID_VIDEO, type_id::VIDEO, id, timestamp, &data),
            None => self.dropped += 1,
        }
    }

    /// Sends an FLV audio tag body. Dropped unless publishing has started.
    pub fn send_audio(&mut self, timestamp: u32, data: Bytes) {
        match self.publishing_stream() {
            Some(id) => self
                .conn
                .send_raw(CSID_AUDIO, type_id::AUDIO, id, timestamp, &data),
            None => self.dropped += 1,
        }
    }

    /// Ends the stream: FCUnpublish (when publishing) and deleteStream.
    pub fn close(&mut self) {
        if let (Some(id), Some(intent)) = (self.stream_id.take(), self.intent.take()) {
            if let Intent::Publish(name) = intent {
                let txid = self.txid();
                self.conn.command(
                    0,
                    Command::new("FCUnpublish", txid, Value::Null, vec![Value::String(name)]),
                );
            }
            let txid = self.txid();
            self.conn.command(
                0,
                Command::new(
                    "deleteStream",
                    txid,
                    Value::Null,
                    vec![Value::Number(f64::from(id))],
                ),
            );
        }
        self.publishing = false;
        self.create_stream_txid = None;
    }

    fn publishing_stream(&self) -> Option<u32> {
        self.stream_id.filter(|_| self.publishing)
    }

    fn txid(&mut self) -> f64 {
        let t = self.next_txid;
        self.next_txid += 1.0;
        t
    }

    fn start_intent(&mut self) {
        if self.create_stream_txid.is_some() || self.stream_id.is_some() {
            return;
        }
        if let Some(Intent::Publish(name)) = &self.intent {
            let name = Value::String(name.clone());
            for command in ["releaseStream", "FCPublish"] {
                let txid = self.txid();
                self.conn.command(
                    0,
                    Command::new(command, txid, Value::Null, vec![name.clone()]),
                );
            }
        }
        if self.intent.is_some() {
            let txid = self.txid();
            self.create_stream_txid = Some(txid);
            self.conn
                .command(0, Command::new("createStream", txid, Value::Null, vec![]));
        }
    }

    fn send_connect(&mut self) {
        self.conn.set_out_chunk_size(self.config.out_chunk_size);
        let obj = Value::object([
            ("app", Value::string(&self.config.app)),
            ("type", Value::string("nonprivate")),
            (
                "flashVer",
                Value::string("FMLE/3.0 (compatible; starling-rtmp)"),
            ),
            ("tcUrl", Value::string(&self.config.tc_url)),
        ]);
        self.conn
            .command(0, Command::new("connect", CONNECT_TXID, obj, vec![]));
    }

    fn process(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.conn.count_received(data.len());
        if self.handshake.is_done() {
            self.conn.decoder.push(data);
        } else {
            self.handshake_buf.extend_from_slice(data);
            if let Some(c2) = self.handshake.handle(&mut self.handshake_buf)? {
                self.conn.out.push_back(c2);
            }
            if !self.handshake.is_done() {
                return Ok(());
            }
            // The spec lets the client send after S2 has arrived.
            self.send_connect();
            let rest = std::mem::take(&mut self.handshake_buf);
            self.conn.decoder.push_bytes(rest);
        }
        while let Some(raw) = self.conn.decoder.next_message()? {
            let timestamp = raw.timestamp;
            let msg = match Message::decode(raw.type_id, raw.payload) {
                Ok(m) => m,
                Err(_) if matches!(raw.type_id, type_id::DATA_AMF0 | type_id::DATA_AMF3) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            self.on_message(timestamp, msg);
        }
        self.conn.maybe_ack();
        Ok(())
    }

    fn on_message(&mut self, timestamp: u32, msg: Message) {
        if self.conn.on_control(&msg) {
            return;
        }
        match msg {
            Message::Video(data) => self
                .events
                .push_back(ClientEvent::Video { timestamp, data }),
            Message::Audio(data) => self
                .events
                .push_back(ClientEvent::Audio { timestamp, data }),
            Message::Data(values) => {
                if let Some(value) = metadata(values) {
                    self.events.push_back(ClientEvent::Metadata(value));
                }
            }
            Message::UserControl(UserControl::StreamEof(_)) => {
                self.events.push_back(ClientEvent::StreamEof);
            }
            Message::Command(cmd) => self.on_command(cmd),
            _ => {}
        }
    }

    fn on_command(&mut self, cmd: Command) {
        // The information object is the first argument; a few servers put it in the
        // command object slot instead.
        let info = cmd
            .args
            .first()
            .filter(|v| v.properties().is_some())
            .unwrap_or(&cmd.command_object);
        match cmd.name.as_str() {
            "_result" if cmd.transaction_id == CONNECT_TXID && !self.connected => {
                self.connected = true;
                self.events.push_back(ClientEvent::Connected);
                self.start_intent();
            }
            "_result" if Some(cmd.transaction_id) == self.create_stream_txid => {
                self.create_stream_txid = None;
                let Some(id) = cmd
                    .args
                    .iter()
                    .find_map(Value::as_number)
                    .filter(|n| (0.0..=f64::from(u32::MAX)).contains(n))
                else {
                    return;
                };
                let id = id as u32;
                self.stream_id = Some(id);
                match self.intent.clone() {
                    Some(Intent::Publish(name)) => {
                        let txid = self.txid();
                        self.conn.command(
                            id,
                            Command::new(
                                "publish",
                                txid,
                                Value::Null,
                                vec![Value::String(name), Value::string("live")],
                            ),
                        );
                    }
                    Some(Intent::Play(name)) => {
                        let txid = self.txid();
                        self.conn.command(
                            id,
                            Command::new(
                                "play",
                                txid,
                                Value::Null,
                                vec![Value::String(name), Value::Number(-2.0)],
                            ),
                        );
                        self.conn
                            .control(&Message::UserControl(UserControl::SetBufferLength {
                                stream_id: id,
                                buffer_ms: 3000,
                            }));
                    }
                    None => {}
                }
            }
            "onStatus" | "_error" => {
                let (mut level, code, description) = status_fields(info);
                if level.is_empty() && cmd.name == "_error" {
                    level = "error".into();
                }
                let started = match code.as_str() {
                    "NetStream.Publish.Start" => {
                        self.publishing = true;
                        Some(ClientEvent::PublishStarted)
                    }
                    "NetStream.Play.Start" => Some(ClientEvent::PlayStarted),
                    _ => None,
                };
                if level == "error" {
                    self.publishing = false;
                }
                self.events.push_back(ClientEvent::Status {
                    level,
                    code,
                    description,
                });
                self.events.extend(started);
            }
            _ => {}
        }
    }

    #[cfg(test)]
    pub(crate) fn send_command_for_test(&mut self, cmd: Command) {
        self.conn.command(0, cmd);
    }

    #[cfg(test)]
    pub(crate) fn force_send_video_for_test(&mut self, timestamp: u32, data: Bytes) {
        let id = self.stream_id.unwrap_or(1);
        self.conn
            .send_raw(CSID_VIDEO, type_id::VIDEO, id, timestamp, &data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::HANDSHAKE_SIZE;

    #[test]
    fn queues_c0_c1_then_c2_and_connect_after_s0_s1_s2() {
        let mut client = ClientSession::new(ClientConfig::default());
        let c0c1 = client.poll_transmit().unwrap();
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(c0c1[0], 3);
        assert!(client.poll_transmit().is_none());
        let mut s = vec![3u8];
        s.extend((0..HANDSHAKE_SIZE).map(|i| i as u8));
        client.handle_input(&s).unwrap();
        let c2 = client.poll_transmit().unwrap();
        assert_eq!(&c2[..], &s[1..]);
        assert!(client.poll_transmit().is_none(), "connect waits for S2");
        client.handle_input(&[0; HANDSHAKE_SIZE]).unwrap();
        let mut rest = Vec::new();
        while let Some(b) = client.poll_transmit() {
            rest.extend_from_slice(&b);
        }
        let mut dec = crate::chunk::ChunkDecoder::default();
        dec.push(&rest);
        let first = dec.next_message().unwrap().unwrap();
        assert_eq!(
            Message::decode(first.type_id, first.payload).unwrap(),
            Message::SetChunkSize(4096)
        );
        dec.set_chunk_size(4096).unwrap();
        let second = dec.next_message().unwrap().unwrap();
        match Message::decode(second.type_id, second.payload).unwrap() {
            Message::Command(c) => {
                assert_eq!(c.name, "connect");
                assert_eq!(c.transaction_id, 1.0);
                assert_eq!(c.command_object.get("app"), Some(&Value::string("live")));
            }
            other => panic!("expected connect, got {other:?}"),
        }
    }

    #[test]
    fn media_before_publish_start_is_dropped() {
        let mut client = ClientSession::new(ClientConfig::default());
        while client.poll_transmit().is_some() {}
        client.send_video(0, Bytes::from_static(&[1]));
        client.send_metadata(&Value::Null);
        assert!(client.poll_transmit().is_none());
        assert_eq!(client.dropped_messages(), 2);
    }

    #[test]
    fn bad_server_version_is_an_error() {
        let mut client = ClientSession::new(ClientConfig::default());
        assert_eq!(
            client.handle_input(&[0x16, 3, 1]),
            Err(RtmpError::BadVersion(0x16))
        );
    }
}
