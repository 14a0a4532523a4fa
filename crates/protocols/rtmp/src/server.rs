//! The server side of an RTMP connection: accepts publishers and players.
//!
//! [`ServerSession`] is sans-IO. The driver feeds socket bytes to
//! [`ServerSession::handle_input`], writes everything [`ServerSession::poll_transmit`]
//! returns, and acts on [`ServerSession::poll_event`]. The engine answers the
//! NetConnection commands itself (connect, createStream, releaseStream, FCPublish,
//! getStreamLength, unknown calls); decisions about publish and play are the
//! application's, made through `accept_*`/`reject_*`.
//!
//! Choices worth knowing:
//! - Media and data messages on a message stream that is not publishing (including the
//!   window between `publish` and `accept_publish`) are dropped and counted
//!   ([`ServerSession::ignored_messages`]), not fatal: encoders in the wild start
//!   sending early, and a race with `end_publish` must not kill the connection.
//! - Unknown commands are never fatal; they get `_error` when they carry a transaction
//!   id. Commands other than `connect` before `connect` are fatal: no real client does
//!   that, and nothing sensible can be answered.
//! - After `reject_publish`, `reject_play` or `end_publish` the driver should flush the
//!   output and close the connection: ffmpeg gives up on an `error` status, but OBS
//!   (librtmp) only stops when the socket closes.
//!
//! This module must never perform I/O, read a clock, or copy media payloads.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::Value;
use crate::chunk::ChunkLimits;
use crate::conn::{metadata, Conn, CSID_AUDIO, CSID_STREAM, CSID_VIDEO};
use crate::error::{AmfError, RtmpError};
use crate::handshake::ServerHandshake;
use crate::message::{type_id, Command, Message, UserControl};

/// Most NetStreams one connection may create.
pub const MAX_STREAMS_PER_CONNECTION: usize = 8;

/// Configuration of a [`ServerSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest message the peer may send (default 16 MiB).
    pub max_message_len: usize,
    /// Largest chunk size the peer may set (default 16 MiB).
    pub max_chunk_size: u32,
    /// Chunk size the server sends with (default 4096).
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size and Set Peer Bandwidth announced to the peer (default 2 500 000).
    pub window_ack_size: u32,
    /// Most chunk stream ids the peer may use (default 64).
    pub max_chunk_streams: usize,
    /// Bytes partial messages may reserve across all chunk streams (default 16 MiB);
    /// at least `max_message_len`.
    pub max_partial_bytes: usize,
    /// Values (every AMF0 value, property and array element) one command or data
    /// message may decode to (default [`crate::amf0::DEFAULT_MAX_VALUES`]).
    pub max_amf_values: usize,
    /// Seed of the S1 filler bytes (the engine has no entropy source).
    pub handshake_seed: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_len: 16 * 1024 * 1024,
            max_chunk_size: 16 * 1024 * 1024,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_chunk_streams: 64,
            max_partial_bytes: 16 * 1024 * 1024,
            max_amf_values: crate::amf0::DEFAULT_MAX_VALUES,
            handshake_seed: 0,
        }
    }
}

/// Why a publish is refused; decides the status code the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishRejection {
    /// `NetStream.Publish.BadName`.
    BadName,
    /// `NetStream.Publish.Denied` (what librtmp-derived clients and GStreamer recognise
    /// as an authorisation failure).
    Unauthorized,
    /// `NetStream.Publish.BadName`, the code Flash-era servers use for a name in use.
    AlreadyPublishing,
}

impl PublishRejection {
    fn code(self) -> &'static str {
        match self {
            PublishRejection::BadName | PublishRejection::AlreadyPublishing => {
                "NetStream.Publish.BadName"
            }
            PublishRejection::Unauthorized => "NetStream.Publish.Denied",
        }
    }
}

/// What happened on the connection that the application must know or decide.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The client connected; the engine has already answered.
    Connect { app: String, tc_url: Option<String> },
    /// The client wants to publish `name` (exactly as sent, query string included).
    /// Answer with [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    PublishRequest {
        stream_id: u32,
        name: String,
        publish_type: String,
    },
    /// The client wants to play `name`. Answer with `accept_play` or `reject_play`.
    PlayRequest { stream_id: u32, name: String },
    /// `onMetaData` from the publisher (the `@setDataFrame` wrapper removed).
    Metadata { stream_id: u32, value: Value },
    /// FLV video tag body; `timestamp` is absolute milliseconds (wrapping mod 2^32).
    Video {
        stream_id: u32,
        timestamp: u32,
        data: Bytes,
    },
    /// FLV audio tag body.
    Audio {
        stream_id: u32,
        timestamp: u32,
        data: Bytes,
    },
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream).
    Unpublish { stream_id: u32 },
    /// The player stopped (closeStream or deleteStream).
    StopPlay { stream_id: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StreamState {
    Created,
    PublishRequested(String),
    Publishing(String),
    PlayRequested(String),
    Playing(String),
}

#[derive(Debug)]
struct NetStream {
    id: u32,
    state: StreamState,
}

/// Server side of one RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    handshake_buf: BytesMut,
    conn: Conn,
    events: VecDeque<ServerEvent>,
    connected: bool,
    streams: Vec<NetStream>,
    next_stream_id: u32,
    ignored: u64,
    failed: bool,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        let limits = ChunkLimits {
            max_chunk_size: config.max_chunk_size,
            max_message_len: config.max_message_len,
            max_chunk_streams: config.max_chunk_streams,
            max_partial_bytes: config.max_partial_bytes,
        };
        Self {
            handshake: ServerHandshake::new(config.handshake_seed),
            handshake_buf: BytesMut::new(),
            conn: Conn::new(limits),
            events: VecDeque::new(),
            connected: false,
            streams: Vec::new(),
            next_stream_id: 1,
            ignored: 0,
            failed: false,
            config,
        }
    }

    /// Feeds bytes read from the socket, in any fragmentation. `Err` is fatal: log it
    /// with the peer address and close the connection.
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

    /// Next application event. Drain until `None` after every call into the session.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Media and data messages dropped because their stream was not publishing.
    pub fn ignored_messages(&self) -> u64 {
        self.ignored
    }

    /// Outgoing messages dropped because they exceed what a chunk header can express.
    pub fn dropped_messages(&self) -> u64 {
        self.conn.dropped_outgoing
    }

    fn process(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.conn.count_received(data.len());
        if self.handshake.is_done() {
            self.conn.decoder.push(data);
        } else {
            self.handshake_buf.extend_from_slice(data);
            if let Some(reply) = self.handshake.handle(&mut self.handshake_buf)? {
                self.conn.out.push_back(reply);
            }
            if !self.handshake.is_done() {
                return Ok(());
            }
            let rest = std::mem::take(&mut self.handshake_buf);
            self.conn.decoder.push_bytes(rest);
        }
        while let Some(raw) = self.conn.decoder.next_message()? {
            let stream_id = raw.stream_id;
            let timestamp = raw.timestamp;
            let msg =
                match Message::decode_with(raw.type_id, raw.payload, self.config.max_amf_values) {
                    Ok(m) => m,
                    // An amplification attempt, unlike broken metadata, ends the connection.
                    Err(e @ RtmpError::Amf(AmfError::TooManyValues { .. })) => return Err(e),
                    // Broken metadata is not worth a connection.
                    Err(_) if matches!(raw.type_id, type_id::DATA_AMF0 | type_id::DATA_AMF3) => {
                        self.ignored += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            self.on_message(stream_id, timestamp, msg)?;
        }
        self.conn.maybe_ack();
        Ok(())
    }

    fn publishing(&self, stream_id: u32) -> bool {
        self.stream(stream_id)
            .is_some_and(|s| matches!(s.state, StreamState::Publishing(_)))
    }

    fn stream(&self, id: u32) -> Option<&NetStream> {
        self.streams.iter().find(|s| s.id == id)
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut NetStream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn on_message(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        msg: Message,
    ) -> Result<(), RtmpError> {
        if self.conn.on_control(&msg) {
            return Ok(());
        }
        match msg {
            Message::Video(data) if self.publishing(stream_id) => {
                self.events.push_back(ServerEvent::Video {
                    stream_id,
                    timestamp,
                    data,
                });
            }
            Message::Audio(data) if self.publishing(stream_id) => {
                self.events.push_back(ServerEvent::Audio {
                    stream_id,
                    timestamp,
                    data,
                });
            }
            Message::Data(values) if self.publishing(stream_id) => match metadata(values) {
                Some(value) => self
                    .events
                    .push_back(ServerEvent::Metadata { stream_id, value }),
                None => self.ignored += 1,
            },
            Message::Video(_) | Message::Audio(_) | Message::Data(_) => self.ignored += 1,
            Message::Command(cmd) => self.on_command(stream_id, cmd)?,
            // Stream Begin, Set Buffer Length, aggregates, shared objects: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn on_command(&mut self, stream_id: u32, cmd: Command) -> Result<(), RtmpError> {
        if cmd.name == "connect" {
            if self.connected {
                self.call_failed(cmd.transaction_id, "already connected");
            } else {
                self.on_connect(&cmd);
            }
            return Ok(());
        }
        if !self.connected {
            return Err(RtmpError::UnexpectedMessage {
                what: format!("command '{}'", truncate(&cmd.name)),
                state: "before connect",
            });
        }
        let txid = cmd.transaction_id;
        match cmd.name.as_str() {
            "releaseStream" => {
                if txid != 0.0 {
                    self.result(txid, vec![Value::Undefined]);
                }
            }
            "FCPublish" => {
                let name = cmd.first_string_arg().unwrap_or_default().to_owned();
                let info = Value::object([
                    ("code", Value::string("NetStream.Publish.Start")),
                    ("description", Value::String(name)),
                ]);
                self.conn
                    .command(0, Command::new("onFCPublish", 0.0, Value::Null, vec![info]));
            }
            "createStream" => self.on_create_stream(txid),
            "publish" => self.on_publish(stream_id, &cmd),
            "play" => self.on_play(stream_id, &cmd),
            "deleteStream" => {
                let id = cmd
                    .args
                    .first()
                    .and_then(Value::as_number)
                    .filter(|n| (0.0..=f64::from(u32::MAX)).contains(n))
                    .map_or(stream_id, |n| n as u32);
                self.close_stream(id, true);
            }
            "closeStream" => self.close_stream(stream_id, false),
            "FCUnpublish" => {
                let name = cmd.first_string_arg().unwrap_or_default();
                let id = self
                    .streams
                    .iter()
                    .find(|s| matches!(&s.state, StreamState::Publishing(n) if n == name))
                    .map(|s| s.id);
                if let Some(id) = id {
                    self.close_stream(id, false);
                }
            }
            "getStreamLength" => {
                if txid != 0.0 {
                    self.result(txid, vec![Value::Number(0.0)]);
                }
            }
            // Bandwidth probes, answers to our calls, client-side callbacks, and
            // FCSubscribe (a CDN artefact ffmpeg sends before live play): silence.
            "checkBandwidth" | "_checkbw" | "_result" | "_error" | "onBWDone" | "onStatus"
            | "FCSubscribe" => {}
            name => {
                if txid != 0.0 {
                    let description = format!("unknown command '{}'", truncate(name));
                    self.call_failed(txid, &description);
                }
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, cmd: &Command) {
        let obj = &cmd.command_object;
        let app = obj
            .get("app")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let tc_url = obj.get("tcUrl").and_then(Value::as_str).map(str::to_owned);
        let window = self.config.window_ack_size;
        self.conn.control(&Message::WindowAckSize(window));
        self.conn.control(&Message::SetPeerBandwidth {
            size: window,
            limit_type: 2,
        });
        self.conn.set_out_chunk_size(self.config.out_chunk_size);
        let properties = Value::object([
            ("fmsVer", Value::string("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
        ]);
        // objectEncoding 0: this engine answers in AMF0 whatever the client offered.
        let info = Value::object([
            ("level", Value::string("status")),
            ("code", Value::string("NetConnection.Connect.Success")),
            ("description", Value::string("Connection succeeded.")),
            ("objectEncoding", Value::Number(0.0)),
        ]);
        self.conn.command(
            0,
            Command::new("_result", cmd.transaction_id, properties, vec![info]),
        );
        self.connected = true;
        self.events.push_back(ServerEvent::Connect { app, tc_url });
    }

    fn on_create_stream(&mut self, txid: f64) {
        if self.streams.len() >= MAX_STREAMS_PER_CONNECTION {
            let description =
                format!("at most {MAX_STREAMS_PER_CONNECTION} streams per connection");
            self.call_failed(txid, &description);
            return;
        }
        let id = self.next_stream_id;
        let Some(next) = id.checked_add(1) else {
            self.call_failed(txid, "stream ids exhausted");
            return;
        };
        self.next_stream_id = next;
        self.streams.push(NetStream {
            id,
            state: StreamState::Created,
        });
        self.result(txid, vec![Value::Number(f64::from(id))]);
    }

    fn on_publish(&mut self, stream_id: u32, cmd: &Command) {
        let name = cmd.first_string_arg().unwrap_or_default().to_owned();
        let publish_type = cmd
            .args
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or("live")
            .to_owned();
        match self.stream_mut(stream_id) {
            Some(s) if s.state == StreamState::Created => {
                s.state = StreamState::PublishRequested(name.clone());
                self.events.push_back(ServerEvent::PublishRequest {
                    stream_id,
                    name,
                    publish_type,
                });
            }
            Some(_) => self.conn.on_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "stream is already publishing or playing",
            ),
            None => self.conn.on_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "publish on a stream that was not created",
            ),
        }
    }

    fn on_play(&mut self, stream_id: u32, cmd: &Command) {
        // Start, duration and reset arguments are ignored: everything here is live.
        let name = cmd.first_string_arg().unwrap_or_default().to_owned();
        match self.stream_mut(stream_id) {
            Some(s) if s.state == StreamState::Created => {
                s.state = StreamState::PlayRequested(name.clone());
                self.events
                    .push_back(ServerEvent::PlayRequest { stream_id, name });
            }
            _ => self.conn.on_status(
                stream_id,
                "error",
                "NetStream.Play.Failed",
                "play on a stream that was not created or is busy",
            ),
        }
    }

    fn close_stream(&mut self, id: u32, remove: bool) {
        let Some(pos) = self.streams.iter().position(|s| s.id == id) else {
            return;
        };
        let event = match &self.streams[pos].state {
            StreamState::PublishRequested(_) | StreamState::Publishing(_) => {
                Some(ServerEvent::Unpublish { stream_id: id })
            }
            StreamState::PlayRequested(_) | StreamState::Playing(_) => {
                Some(ServerEvent::StopPlay { stream_id: id })
            }
            StreamState::Created => None,
        };
        self.events.extend(event);
        if remove {
            self.streams.remove(pos);
        } else {
            self.streams[pos].state = StreamState::Created;
        }
    }

    fn result(&mut self, txid: f64, args: Vec<Value>) {
        self.conn
            .command(0, Command::new("_result", txid, Value::Null, args));
    }

    fn call_failed(&mut self, txid: f64, description: &str) {
        let info = Value::object([
            ("level", Value::string("error")),
            ("code", Value::string("NetConnection.Call.Failed")),
            ("description", Value::string(description)),
        ]);
        self.conn
            .command(0, Command::new("_error", txid, Value::Null, vec![info]));
    }

    /// Accepts a pending publish: Stream Begin and `NetStream.Publish.Start`.
    /// Does nothing unless the stream has a publish request pending.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        let StreamState::PublishRequested(name) = &s.state else {
            return;
        };
        let name = name.clone();
        s.state = StreamState::Publishing(name.clone());
        self.conn
            .control(&Message::UserControl(UserControl::StreamBegin(stream_id)));
        self.conn.on_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{} is now published.", truncate(&name)),
        );
    }

    /// Refuses a pending publish with an `error` status carrying `description`.
    pub fn reject_publish(&mut self, stream_id: u32, reason: PublishRejection, description: &str) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(s.state, StreamState::PublishRequested(_)) {
            return;
        }
        s.state = StreamState::Created;
        self.conn
            .on_status(stream_id, "error", reason.code(), description);
    }

    /// Accepts a pending play: Stream Begin, `NetStream.Play.Reset`,
    /// `NetStream.Play.Start` and `|RtmpSampleAccess`.
    pub fn accept_play(&mut self, stream_id: u32) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        let StreamState::PlayRequested(name) = &s.state else {
            return;
        };
        let name = name.clone();
        s.state = StreamState::Playing(name.clone());
        let name = truncate(&name);
        self.conn
            .control(&Message::UserControl(UserControl::StreamBegin(stream_id)));
        self.conn.on_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
        );
        self.conn.on_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        let access = Message::Data(vec![
            Value::string("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true),
        ]);
        self.conn.send(CSID_STREAM, stream_id, 0, &access);
    }

    /// Refuses a pending play with `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, description: &str) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(s.state, StreamState::PlayRequested(_)) {
            return;
        }
        s.state = StreamState::Created;
        self.conn.on_status(
            stream_id,
            "error",
            "NetStream.Play.StreamNotFound",
            description,
        );
    }

    fn playing(&self, stream_id: u32) -> bool {
        self.stream(stream_id)
            .is_some_and(|s| matches!(s.state, StreamState::Playing(_)))
    }

    /// Sends `onMetaData` to a player. Ignored unless the stream is playing.
    pub fn send_metadata(&mut self, stream_id: u32, metadata: &Value) {
        if !self.playing(stream_id) {
            return;
        }
        let msg = Message::Data(vec![Value::string("onMetaData"), metadata.clone()]);
        self.conn.send(CSID_STREAM, stream_id, 0, &msg);
    }

    /// Sends an FLV video tag body to a player, framed around slices of `data`.
    /// Ignored unless the stream is playing.
    pub fn send_video(&mut self, stream_id: u32, timestamp: u32, data: Bytes) {
        if self.playing(stream_id) {
            self.conn
                .send_raw(CSID_VIDEO, type_id::VIDEO, stream_id, timestamp, &data);
        }
    }

    /// Sends an FLV audio tag body to a player. Ignored unless the stream is playing.
    pub fn send_audio(&mut self, stream_id: u32, timestamp: u32, data: Bytes) {
        if self.playing(stream_id) {
            self.conn
                .send_raw(CSID_AUDIO, type_id::AUDIO, stream_id, timestamp, &data);
        }
    }

    /// [`send_video`](Self::send_video) for a tag given as (header, payload): the
    /// payload, shared by every player, goes out as slices and is never copied.
    pub fn send_video_parts(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        header: Bytes,
        payload: Bytes,
    ) {
        if self.playing(stream_id) {
            self.conn.send_raw_parts(
                CSID_VIDEO,
                type_id::VIDEO,
                stream_id,
                timestamp,
                &[header, payload],
            );
        }
    }

    /// [`send_audio`](Self::send_audio) for a tag given as (header, payload).
    pub fn send_audio_parts(
        &mut self,
        stream_id: u32,
        timestamp: u32,
        header: Bytes,
        payload: Bytes,
    ) {
        if self.playing(stream_id) {
            self.conn.send_raw_parts(
                CSID_AUDIO,
                type_id::AUDIO,
                stream_id,
                timestamp,
                &[header, payload],
            );
        }
    }

    /// Tells a player the publisher went away: Stream EOF and
    /// `NetStream.Play.UnpublishNotify`. The stream stays playing.
    pub fn send_stream_eof(&mut self, stream_id: u32) {
        if !self.playing(stream_id) {
            return;
        }
        self.conn
            .control(&Message::UserControl(UserControl::StreamEof(stream_id)));
        self.conn.on_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            "The stream was unpublished.",
        );
    }

    /// Stops a player from the server side (nothing to play came in time): an `error`
    /// status `NetStream.Play.StreamNotFound` with `description`, which makes players
    /// give up instead of waiting on. Later frames for the stream are not sent.
    pub fn end_play(&mut self, stream_id: u32, description: &str) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(s.state, StreamState::Playing(_)) {
            return;
        }
        s.state = StreamState::Created;
        self.conn.on_status(
            stream_id,
            "error",
            "NetStream.Play.StreamNotFound",
            description,
        );
    }

    /// Stops a publisher from the server side (key revoked, taken over): an `error`
    /// status `NetStream.Publish.Denied` with `description`, which makes ffmpeg stop.
    /// Later media on the stream is ignored. No `Unpublish` event is emitted.
    pub fn end_publish(&mut self, stream_id: u32, description: &str) {
        let Some(s) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(
            s.state,
            StreamState::Publishing(_) | StreamState::PublishRequested(_)
        ) {
            return;
        }
        s.state = StreamState::Created;
        self.conn
            .on_status(stream_id, "error", "NetStream.Publish.Denied", description);
    }
}

/// Names from the peer end up in replies and errors; keep those bounded.
fn truncate(s: &str) -> &str {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConfig, ClientEvent, ClientSession};
    use crate::handshake::HANDSHAKE_SIZE;

    #[derive(Default)]
    struct Seen {
        server: Vec<ServerEvent>,
        client: Vec<ClientEvent>,
    }

    /// Moves bytes both ways until neither side has anything to send, in odd-sized
    /// pieces so every boundary gets exercised.
    fn pump(server: &mut ServerSession, client: &mut ClientSession, seen: &mut Seen) {
        pump_in_pieces(server, client, seen, 997, 1013);
    }

    fn pump_in_pieces(
        server: &mut ServerSession,
        client: &mut ClientSession,
        seen: &mut Seen,
        to_server_piece: usize,
        to_client_piece: usize,
    ) {
        loop {
            let mut moved = false;
            let mut to_server = Vec::new();
            while let Some(b) = client.poll_transmit() {
                to_server.extend_from_slice(&b);
            }
            for piece in to_server.chunks(to_server_piece) {
                server.handle_input(piece).unwrap();
                moved = true;
            }
            seen.server
                .extend(std::iter::from_fn(|| server.poll_event()));
            let mut to_client = Vec::new();
            while let Some(b) = server.poll_transmit() {
                to_client.extend_from_slice(&b);
            }
            for piece in to_client.chunks(to_client_piece) {
                client.handle_input(piece).unwrap();
                moved = true;
            }
            seen.client
                .extend(std::iter::from_fn(|| client.poll_event()));
            if !moved {
                return;
            }
        }
    }

    fn pair() -> (ServerSession, ClientSession) {
        let server = ServerSession::new(ServerConfig {
            handshake_seed: 1,
            ..ServerConfig::default()
        });
        let client = ClientSession::new(ClientConfig {
            app: "live".into(),
            tc_url: "rtmp://localhost/live".into(),
            handshake_seed: 2,
            ..ClientConfig::default()
        });
        (server, client)
    }

    fn connected_pair() -> (ServerSession, ClientSession, Seen) {
        let (mut server, mut client) = pair();
        let mut seen = Seen::default();
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(
            seen.server,
            vec![ServerEvent::Connect {
                app: "live".into(),
                tc_url: Some("rtmp://localhost/live".into())
            }]
        );
        assert_eq!(seen.client, vec![ClientEvent::Connected]);
        (server, client, Seen::default())
    }

    fn publish_request(seen: &Seen) -> u32 {
        match seen.server.last() {
            Some(ServerEvent::PublishRequest {
                stream_id,
                name,
                publish_type,
            }) => {
                assert_eq!(name, "key1");
                assert_eq!(publish_type, "live");
                *stream_id
            }
            other => panic!("expected a publish request, got {other:?}"),
        }
    }

    #[test]
    fn publish_conversation_carries_identical_media() {
        let (mut server, mut client, mut seen) = connected_pair();
        client.publish("key1");
        pump(&mut server, &mut client, &mut seen);
        let id = publish_request(&seen);
        assert_eq!(id, 1);
        server.accept_publish(id);
        pump(&mut server, &mut client, &mut seen);
        assert!(seen.client.contains(&ClientEvent::PublishStarted));
        assert!(seen.client.iter().any(|e| matches!(e,
            ClientEvent::Status { code, level, .. }
                if code == "NetStream.Publish.Start" && level == "status")));

        let meta = Value::EcmaArray(vec![
            ("width".into(), Value::Number(1920.0)),
            ("videocodecid".into(), Value::Number(7.0)),
        ]);
        client.send_metadata(&meta);
        let frames: Vec<(u32, Bytes)> = [0u32, 40, 80, 0x0100_0000 + 5, 0x0100_0000 + 45]
            .iter()
            .enumerate()
            .map(|(i, &ts)| {
                let len = [30_000, 1_000, 5, 70_000, 4096][i];
                let body: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
                (ts, Bytes::from(body))
            })
            .collect();
        for (ts, body) in &frames {
            client.send_video(*ts, body.clone());
            client.send_audio(*ts + 3, body.slice(..body.len().min(300)));
        }
        seen.server.clear();
        pump(&mut server, &mut client, &mut seen);
        let mut expected = vec![ServerEvent::Metadata {
            stream_id: id,
            value: meta,
        }];
        for (ts, body) in &frames {
            expected.push(ServerEvent::Video {
                stream_id: id,
                timestamp: *ts,
                data: body.clone(),
            });
            expected.push(ServerEvent::Audio {
                stream_id: id,
                timestamp: *ts + 3,
                data: body.slice(..body.len().min(300)),
            });
        }
        assert_eq!(seen.server, expected);
        assert_eq!(server.ignored_messages(), 0);

        seen.server.clear();
        client.close();
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(seen.server, vec![ServerEvent::Unpublish { stream_id: id }]);
    }

    #[test]
    fn publish_queued_before_connect_byte_at_a_time() {
        let (mut server, mut client) = pair();
        let mut seen = Seen::default();
        client.publish("key1");
        pump_in_pieces(&mut server, &mut client, &mut seen, 1, 1);
        let id = publish_request(&seen);
        server.accept_publish(id);
        pump_in_pieces(&mut server, &mut client, &mut seen, 1, 1);
        assert_eq!(seen.client.last(), Some(&ClientEvent::PublishStarted));
        let frame = Bytes::from(vec![0x27; 9000]);
        client.send_video(0x0123_4567, frame.clone());
        seen.server.clear();
        pump_in_pieces(&mut server, &mut client, &mut seen, 1, 1);
        assert_eq!(
            seen.server,
            vec![ServerEvent::Video {
                stream_id: id,
                timestamp: 0x0123_4567,
                data: frame
            }]
        );
    }

    #[test]
    fn rejected_publish_reaches_the_client_as_bad_name() {
        let (mut server, mut client, mut seen) = connected_pair();
        client.publish("key1");
        pump(&mut server, &mut client, &mut seen);
        let id = publish_request(&seen);
        server.reject_publish(id, PublishRejection::AlreadyPublishing, "already live");
        pump(&mut server, &mut client, &mut seen);
        assert!(!seen.client.contains(&ClientEvent::PublishStarted));
        assert_eq!(
            seen.client.last(),
            Some(&ClientEvent::Status {
                level: "error".into(),
                code: "NetStream.Publish.BadName".into(),
                description: "already live".into(),
            })
        );
        // Media sent anyway is ignored, not fatal.
        client.force_send_video_for_test(0, Bytes::from_static(&[0x17, 1]));
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(server.ignored_messages(), 1);
    }

    #[test]
    fn unauthorized_and_end_publish_codes() {
        let (mut server, mut client, mut seen) = connected_pair();
        client.publish("key1");
        pump(&mut server, &mut client, &mut seen);
        let id = publish_request(&seen);
        server.reject_publish(id, PublishRejection::Unauthorized, "bad key");
        pump(&mut server, &mut client, &mut seen);
        assert!(seen.client.iter().any(|e| matches!(e,
            ClientEvent::Status { code, level, .. }
                if code == "NetStream.Publish.Denied" && level == "error")));

        let (mut server, mut client, mut seen) = connected_pair();
        client.publish("key1");
        pump(&mut server, &mut client, &mut seen);
        let id = publish_request(&seen);
        server.accept_publish(id);
        server.end_publish(id, "key revoked");
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(
            seen.client.last(),
            Some(&ClientEvent::Status {
                level: "error".into(),
                code: "NetStream.Publish.Denied".into(),
                description: "key revoked".into(),
            })
        );
        seen.server.clear();
        client.send_video(0, Bytes::from_static(&[0x17, 1]));
        pump(&mut server, &mut client, &mut seen);
        assert!(seen.server.is_empty());
    }

    #[test]
    fn play_conversation() {
        let (mut server, mut client, mut seen) = connected_pair();
        client.play("chan");
        pump(&mut server, &mut client, &mut seen);
        let id = match seen.server.last() {
            Some(ServerEvent::PlayRequest { stream_id, name }) => {
                assert_eq!(name, "chan");
                *stream_id
            }
            other => panic!("expected a play request, got {other:?}"),
        };
        server.accept_play(id);
        let meta = Value::object([("width", Value::Number(640.0))]);
        server.send_metadata(id, &meta);
        let frame = Bytes::from((0..50_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        server.send_video(id, 0x0200_0000, frame.clone());
        server.send_audio(id, 0x0200_0001, frame.slice(..100));
        server.send_video(id, 0x0200_0040, frame.slice(7..9000));
        pump(&mut server, &mut client, &mut seen);
        let codes: Vec<&str> = seen
            .client
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Status { code, .. } => Some(code.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
        let rest: Vec<&ClientEvent> = seen
            .client
            .iter()
            .filter(|e| !matches!(e, ClientEvent::Status { .. }))
            .collect();
        assert_eq!(
            rest,
            [
                &ClientEvent::PlayStarted,
                &ClientEvent::Metadata(meta),
                &ClientEvent::Video {
                    timestamp: 0x0200_0000,
                    data: frame.clone()
                },
                &ClientEvent::Audio {
                    timestamp: 0x0200_0001,
                    data: frame.slice(..100)
                },
                &ClientEvent::Video {
                    timestamp: 0x0200_0040,
                    data: frame.slice(7..9000)
                },
            ]
        );
        seen.client.clear();
        server.send_stream_eof(id);
        pump(&mut server, &mut client, &mut seen);
        assert!(seen.client.contains(&ClientEvent::StreamEof));
        assert!(seen.client.iter().any(|e| matches!(e,
            ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")));
        seen.server.clear();
        client.close();
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(seen.server, vec![ServerEvent::StopPlay { stream_id: id }]);
    }

    #[test]
    fn rejected_play_is_stream_not_found() {
        let (mut server, mut client, mut seen) = connected_pair();
        client.play("nope");
        pump(&mut server, &mut client, &mut seen);
        server.reject_play(1, "no such channel");
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(
            seen.client.last(),
            Some(&ClientEvent::Status {
                level: "error".into(),
                code: "NetStream.Play.StreamNotFound".into(),
                description: "no such channel".into(),
            })
        );
    }

    #[test]
    fn media_to_a_stream_that_is_not_playing_is_not_sent() {
        let (mut server, _client, _) = connected_pair();
        server.send_video(1, 0, Bytes::from_static(&[1, 2, 3]));
        server.send_metadata(1, &Value::Null);
        assert!(server.poll_transmit().is_none());
    }

    /// Server bytes after a valid handshake and a connect from a real client.
    fn handshaken_server() -> ServerSession {
        let mut server = ServerSession::new(ServerConfig::default());
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; HANDSHAKE_SIZE]);
        server.handle_input(&c0c1).unwrap();
        server.handle_input(&[0; HANDSHAKE_SIZE]).unwrap();
        while server.poll_transmit().is_some() {}
        server
    }

    fn command_bytes(
        enc: &mut crate::chunk::ChunkEncoder,
        stream_id: u32,
        cmd: Command,
    ) -> Vec<u8> {
        let mut out = VecDeque::new();
        let body = Message::Command(cmd).encode();
        enc.write(3, 20, stream_id, 0, &body, &mut out).unwrap();
        out.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn ffmpeg_style_publish_sequence() {
        // The order libavformat/rtmpproto.c uses: connect, then releaseStream,
        // FCPublish, createStream, then publish on the new stream id.
        let mut server = handshaken_server();
        let mut enc = crate::chunk::ChunkEncoder::new();
        let connect = Command::new(
            "connect",
            1.0,
            Value::object([
                ("app", Value::string("live")),
                ("type", Value::string("nonprivate")),
                (
                    "flashVer",
                    Value::string("FMLE/3.0 (compatible; Lavf59.27.100)"),
                ),
                ("tcUrl", Value::string("rtmp://127.0.0.1:1935/live")),
            ]),
            vec![],
        );
        server
            .handle_input(&command_bytes(&mut enc, 0, connect))
            .unwrap();
        let mut replies = Vec::new();
        while let Some(b) = server.poll_transmit() {
            replies.extend_from_slice(&b);
        }
        let mut dec = crate::chunk::ChunkDecoder::default();
        dec.push(&replies);
        let mut types = Vec::new();
        let mut result = None;
        while let Some(m) = dec.next_message().unwrap() {
            types.push(m.type_id);
            if let Ok(Message::Command(c)) = Message::decode(m.type_id, m.payload) {
                result = Some(c);
            }
        }
        assert_eq!(types, [5, 6, 1, 20]);
        let result = result.unwrap();
        assert_eq!(result.name, "_result");
        assert_eq!(result.transaction_id, 1.0);
        assert_eq!(
            result.args[0].get("code").and_then(Value::as_str),
            Some("NetConnection.Connect.Success")
        );

        for (name, txid) in [("releaseStream", 2.0), ("FCPublish", 3.0)] {
            let cmd = Command::new(name, txid, Value::Null, vec![Value::string("key1?x=1")]);
            server
                .handle_input(&command_bytes(&mut enc, 0, cmd))
                .unwrap();
        }
        let create = Command::new("createStream", 4.0, Value::Null, vec![]);
        server
            .handle_input(&command_bytes(&mut enc, 0, create))
            .unwrap();
        let mut replies = Vec::new();
        while let Some(b) = server.poll_transmit() {
            replies.extend_from_slice(&b);
        }
        dec.set_chunk_size(4096).unwrap();
        dec.push(&replies);
        let mut cmds = Vec::new();
        while let Some(m) = dec.next_message().unwrap() {
            if let Ok(Message::Command(c)) = Message::decode(m.type_id, m.payload) {
                cmds.push(c);
            }
        }
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_result", "onFCPublish", "_result"]);
        assert_eq!(cmds[2].transaction_id, 4.0);
        assert_eq!(
            cmds[2].args,
            vec![Value::Number(1.0)],
            "stream id as a Number"
        );

        let publish = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::string("key1?x=1"), Value::string("live")],
        );
        server
            .handle_input(&command_bytes(&mut enc, 1, publish))
            .unwrap();
        let events: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
        assert_eq!(
            events.last(),
            Some(&ServerEvent::PublishRequest {
                stream_id: 1,
                name: "key1?x=1".into(),
                publish_type: "live".into()
            })
        );
    }

    #[test]
    fn amf_value_budget_is_fatal_even_for_metadata() {
        // A data message of 300 nulls against a budget of 100: refused, not ignored
        // (broken metadata is ignored; an amplification attempt is not).
        let mut server = ServerSession::new(ServerConfig {
            max_amf_values: 100,
            ..ServerConfig::default()
        });
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; HANDSHAKE_SIZE]);
        server.handle_input(&c0c1).unwrap();
        server.handle_input(&[0; HANDSHAKE_SIZE]).unwrap();
        let body = Bytes::from(vec![0x05u8; 300]);
        let mut out = VecDeque::new();
        let mut enc = crate::chunk::ChunkEncoder::new();
        enc.write(4, 18, 1, 0, &body, &mut out).unwrap();
        let wire: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(
            server.handle_input(&wire),
            Err(RtmpError::Amf(AmfError::TooManyValues { limit: 100 }))
        );
    }

    #[test]
    fn partial_message_budget_reaches_the_session() {
        let mut server = ServerSession::new(ServerConfig {
            max_message_len: 4096,
            max_partial_bytes: 4096,
            ..ServerConfig::default()
        });
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; HANDSHAKE_SIZE]);
        server.handle_input(&c0c1).unwrap();
        server.handle_input(&[0; HANDSHAKE_SIZE]).unwrap();
        // Two 4000-byte messages, each started with one 128-byte chunk, then grown.
        let mut wire = Vec::new();
        for csid in [6u8, 7] {
            wire.extend_from_slice(&[csid, 0, 0, 0, 0, 0x0F, 0xA0, 9, 1, 0, 0, 0]);
            wire.extend_from_slice(&[0; 128]);
        }
        for _ in 0..20 {
            for csid in [6u8, 7] {
                wire.push(0xC0 | csid);
                wire.extend_from_slice(&[0; 128]);
            }
        }
        let err = server.handle_input(&wire).unwrap_err();
        assert!(
            matches!(
                err,
                RtmpError::PartialMessagesOverBudget {
                    chunk_streams: 2,
                    budget: 4096,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_commands_get_error_and_commands_before_connect_are_fatal() {
        let mut server = handshaken_server();
        let mut enc = crate::chunk::ChunkEncoder::new();
        let early = Command::new("createStream", 2.0, Value::Null, vec![]);
        let err = server
            .handle_input(&command_bytes(&mut enc, 0, early))
            .unwrap_err();
        assert_eq!(
            err,
            RtmpError::UnexpectedMessage {
                what: "command 'createStream'".into(),
                state: "before connect"
            }
        );
        assert_eq!(server.handle_input(&[0]), Err(RtmpError::SessionFailed));

        let (mut server, mut client, mut seen) = connected_pair();
        client.send_command_for_test(Command::new("frobnicate", 9.0, Value::Null, vec![]));
        client.send_command_for_test(Command::new("frobnicate", 0.0, Value::Null, vec![]));
        pump(&mut server, &mut client, &mut seen);
        let errors: Vec<_> = seen
            .client
            .iter()
            .filter(|e| matches!(e, ClientEvent::Status { code, .. } if code == "NetConnection.Call.Failed"))
            .collect();
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn stream_count_is_capped() {
        let (mut server, mut client, mut seen) = connected_pair();
        for _ in 0..MAX_STREAMS_PER_CONNECTION + 1 {
            client.send_command_for_test(Command::new("createStream", 7.0, Value::Null, vec![]));
        }
        pump(&mut server, &mut client, &mut seen);
        assert_eq!(server.streams.len(), MAX_STREAMS_PER_CONNECTION);
        assert!(seen.client.iter().any(|e| matches!(e,
            ClientEvent::Status { description, .. } if description.contains("at most 8 streams"))));
    }

    #[test]
    fn ping_request_gets_ping_response_and_acks_follow_the_window() {
        let mut server = handshaken_server();
        let mut enc = crate::chunk::ChunkEncoder::new();
        let mut out = VecDeque::new();
        let ping = Message::UserControl(UserControl::PingRequest(4242)).encode();
        enc.write(2, 4, 0, 0, &ping, &mut out).unwrap();
        // Peer asks for an acknowledgement every 5000 bytes.
        let window = Message::WindowAckSize(5000).encode();
        enc.write(2, 5, 0, 0, &window, &mut out).unwrap();
        let bytes: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        server.handle_input(&bytes).unwrap();
        let mut reply = Vec::new();
        while let Some(b) = server.poll_transmit() {
            reply.extend_from_slice(&b);
        }
        let mut dec = crate::chunk::ChunkDecoder::default();
        dec.push(&reply);
        let m = dec.next_message().unwrap().unwrap();
        assert_eq!(
            Message::decode(m.type_id, m.payload).unwrap(),
            Message::UserControl(UserControl::PingResponse(4242))
        );
        // 1 + 2 * 1536 handshake bytes + the two messages are already past 3000; feed
        // audio on stream 0 (ignored) until the window is crossed.
        let mut out = VecDeque::new();
        enc.write(4, 8, 0, 0, &Bytes::from(vec![0u8; 2000]), &mut out)
            .unwrap();
        let audio: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        server.handle_input(&audio).unwrap();
        let mut reply = Vec::new();
        while let Some(b) = server.poll_transmit() {
            reply.extend_from_slice(&b);
        }
        dec.push(&reply);
        let m = dec.next_message().unwrap().unwrap();
        let total = (1 + 2 * HANDSHAKE_SIZE + bytes.len() + audio.len()) as u32;
        assert_eq!(
            Message::decode(m.type_id, m.payload).unwrap(),
            Message::Acknowledgement {
                sequence_number: total
            }
        );
    }

    #[test]
    fn random_bytes_instead_of_a_handshake() {
        let mut server = ServerSession::new(ServerConfig::default());
        assert_eq!(
            server.handle_input(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RtmpError::BadVersion(b'G'))
        );
        assert_eq!(server.handle_input(b"x"), Err(RtmpError::SessionFailed));
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn chaos_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut prefix = vec![3u8];
        prefix.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
        let (_, mut client) = pair();
        // A real connect, so half the inputs reach the command handlers.
        let mut real = prefix.clone();
        let mut server = ServerSession::new(ServerConfig::default());
        server.handle_input(&prefix).unwrap();
        while let Some(b) = server.poll_transmit() {
            client.handle_input(&b).unwrap();
        }
        let mut from_client = Vec::new();
        while let Some(b) = client.poll_transmit() {
            from_client.extend_from_slice(&b);
        }
        real.extend_from_slice(&from_client[1 + 2 * HANDSHAKE_SIZE..]);

        let mut errors = 0;
        for i in 0..10_000u32 {
            let len = (rng.next() % 600) as usize;
            let mut input: Vec<u8> = match i % 3 {
                0 => Vec::new(),
                1 => prefix.clone(),
                _ => real.clone(),
            };
            let start = input.len();
            input.extend((0..len).map(|_| rng.next() as u8));
            // Bias towards plausible chunk headers now and then.
            if len > 0 && i % 5 == 0 {
                input[start] &= 0x3F;
            }
            let mut server = ServerSession::new(ServerConfig::default());
            let step = 1 + (rng.next() % 64) as usize;
            for piece in input.chunks(step) {
                if server.handle_input(piece).is_err() {
                    errors += 1;
                    break;
                }
            }
            while server.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
            if let Some(id) = [1u32, 2].get(i as usize % 2) {
                server.accept_publish(*id);
                server.accept_play(*id);
                server.send_video(*id, i, Bytes::from_static(&[1, 2, 3]));
            }
        }
        assert!(errors > 0, "random input should be refused sometimes");
    }
}
