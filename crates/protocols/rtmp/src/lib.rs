//! Sans-IO RTMP engine: handshake, chunk stream, AMF0, messages, and the server and
//! client sides of a connection.
//!
//! Nothing here opens a socket, spawns a task or reads a clock. A driver owns the
//! socket and runs this loop for each connection:
//!
//! ```no_run
//! # use starling_rtmp::{ServerConfig, ServerEvent, ServerSession};
//! # fn read_socket() -> Vec<u8> { Vec::new() }
//! # fn write_socket(_: &[u8]) {}
//! let mut session = ServerSession::new(ServerConfig::default());
//! loop {
//!     let data = read_socket();
//!     if let Err(e) = session.handle_input(&data) {
//!         eprintln!("closing: {e}"); // log with the peer address, then close
//!         break;
//!     }
//!     while let Some(event) = session.poll_event() {
//!         if let ServerEvent::PublishRequest { stream_id, .. } = event {
//!             session.accept_publish(stream_id); // after checking the stream key
//!         }
//!     }
//!     while let Some(bytes) = session.poll_transmit() {
//!         write_socket(&bytes);
//!     }
//! }
//! ```
//!
//! Why hand-written rather than a library: every length read off the wire has a hard
//! cap checked before allocating (chunk size, message length, chunk stream count, AMF0
//! strings and nesting); Enhanced RTMP (HEVC, AV1, VP9 in FLV with the extended video
//! header) must pass through untouched, which only an engine that never interprets
//! media bodies guarantees; the server must serve play as well as publish; and tests
//! and the load generator need a client speaking the same code. `rml_rtmp`, the
//! obvious candidate, has been unmaintained since 2023.
//!
//! Modules:
//! - [`handshake`][]: C0/C1/C2 and S0/S1/S2 (simple scheme, version 3).
//! - [`chunk`][]: chunk stream decoder and encoder with per-stream header state.
//! - [`amf0`][]: AMF0 values, decoder and encoder.
//! - [`message`][]: RTMP message types over chunk-stream messages.
//! - [`server`][]: [`ServerSession`].
//! - [`client`][]: [`ClientSession`].
//! - [`error`][]: [`RtmpError`], [`AmfError`].

pub mod amf0;
pub mod chunk;
pub mod client;
mod conn;
pub mod error;
pub mod handshake;
pub mod message;
pub mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use error::{AmfError, RtmpError};
pub use server::{PublishRejection, ServerConfig, ServerEvent, ServerSession};
