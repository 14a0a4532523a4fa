//! A ZMTP 3 REQ socket, sans-IO: the one peer Starling talks ZeroMQ with is ffmpeg's
//! `zmq` filter (a REP socket that hands each request, `target command argument`, to a
//! filter of its graph and answers `code message`), which the ladder uses to move the
//! vertical rendition's crop window while it encodes.
//!
//! Written by hand because what it takes is small and fixed (the 64-byte greeting, the
//! NULL mechanism's READY, and the REQ envelope; RFC 23/ZMTP), while libzmq is C and
//! the pure-Rust `zeromq` crate brings its own runtime and says it is not yet
//! production-ready (docs/reframing.md).
//!
//! Bytes in ([`ReqSocket::receive`]), bytes out ([`ReqSocket::take_output`]), events
//! ([`ReqSocket::poll_event`]); the driver owns the socket (a Unix socket for
//! `ipc://` or TCP) and any timeouts.

use std::collections::VecDeque;

/// The longest frame accepted from the peer: the filter's answers are a line, and a
/// READY holds a few short properties.
pub const MAX_FRAME: usize = 64 * 1024;
/// Frames one reply may have (the delimiter and the answer, for ffmpeg).
pub const MAX_PARTS: usize = 16;
/// Length of a ZMTP 3 greeting.
pub const GREETING_LEN: usize = 64;

/// Why the conversation cannot go on (the connection should be closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the peer does not speak ZMTP (its greeting starts {0:02x?})")]
    NotZmtp(Vec<u8>),
    #[error("the peer speaks ZMTP {0}.{1}; 3.0 or later is needed")]
    OldVersion(u8, u8),
    #[error("the peer wants the {0:?} security mechanism; only NULL is spoken here")]
    Mechanism(String),
    #[error("the peer sent a frame of {0} bytes (at most {MAX_FRAME} are accepted)")]
    FrameTooLong(u64),
    #[error("the peer sent a reply of more than {MAX_PARTS} frames")]
    TooManyParts,
    #[error("the peer sent a malformed {0} command")]
    BadCommand(&'static str),
    #[error("the peer is a {0:?} socket; a REQ socket needs a REP or ROUTER peer")]
    SocketType(String),
    #[error("the peer refused the connection: {0}")]
    Refused(String),
    #[error("the peer sent a message before its READY")]
    Early,
    #[error("the peer sent a reply without the REQ envelope's empty delimiter")]
    NoDelimiter,
    #[error("the peer replied with no request outstanding")]
    Unasked,
    #[error("the connection is not ready for requests yet")]
    NotReady,
    #[error("a request is still waiting for its reply (a REQ socket asks one at a time)")]
    Busy,
}

/// What the peer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is done: requests may be sent.
    Ready,
    /// The reply to the request outstanding, its frames (without the delimiter).
    Reply(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Handshake,
    Ready,
    Failed,
}

/// The client end of a ZMTP 3 connection as a REQ socket, NULL mechanism.
#[derive(Debug)]
pub struct ReqSocket {
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    /// A request was sent and its reply has not come.
    outstanding: bool,
    /// The frames of the reply so far (the delimiter seen first).
    parts: Vec<Vec<u8>>,
    delimited: bool,
}

impl Default for ReqSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl ReqSocket {
    /// A new connection: the greeting and READY are queued to send at once (the NULL
    /// mechanism needs no answer to the greeting before READY).
    pub fn new() -> Self {
        let mut output = Vec::with_capacity(GREETING_LEN + 32);
        output.extend_from_slice(&greeting());
        command(&mut output, b"READY", &[(b"Socket-Type", b"REQ")]);
        Self {
            state: State::Greeting,
            input: Vec::new(),
            output,
            events: VecDeque::new(),
            outstanding: false,
            parts: Vec::new(),
            delimited: false,
        }
    }

    /// The handshake is done and no request is waiting.
    pub fn can_request(&self) -> bool {
        self.state == State::Ready && !self.outstanding
    }

    /// Queues a request of one or more frames.
    pub fn request(&mut self, frames: &[&[u8]]) -> Result<(), Error> {
        if self.state != State::Ready {
            return Err(Error::NotReady);
        }
        if self.outstanding {
            return Err(Error::Busy);
        }
        // The REQ envelope: an empty delimiter frame, then the message.
        frame(&mut self.output, 0, b"", !frames.is_empty());
        for (i, f) in frames.iter().enumerate() {
            frame(&mut self.output, 0, f, i + 1 < frames.len());
        }
        self.outstanding = true;
        Ok(())
    }

    /// Bytes to write to the peer (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The next thing the peer said.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes read from the peer. An error ends the conversation: every later call
    /// fails the same way.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.state == State::Failed {
            return Err(Error::NotReady);
        }
        self.input.extend_from_slice(bytes);
        let r = self.parse();
        if r.is_err() {
            self.state = State::Failed;
            self.input.clear();
        }
        r
    }

    fn parse(&mut self) -> Result<(), Error> {
        let mut at = 0;
        let result = loop {
            let rest = &self.input[at..];
            if self.state == State::Greeting {
                // The signature can be judged before the rest arrives.
                if !rest.is_empty() && rest[0] != 0xFF {
                    break Err(Error::NotZmtp(rest[..rest.len().min(10)].to_vec()));
                }
                if rest.len() >= 10 && rest[9] & 1 != 1 {
                    break Err(Error::NotZmtp(rest[..10].to_vec()));
                }
                if rest.len() >= 11 && rest[10] < 3 {
                    break Err(Error::OldVersion(
                        rest[10],
                        rest.get(11).copied().unwrap_or(0),
                    ));
                }
                if rest.len() < GREETING_LEN {
                    break Ok(());
                }
                let mechanism = &rest[12..32];
                let name_end = mechanism.iter().position(|b| *b == 0).unwrap_or(20);
                if &mechanism[..name_end] != b"NULL" {
                    break Err(Error::Mechanism(
                        String::from_utf8_lossy(&mechanism[..name_end]).into_owned(),
                    ));
                }
                at += GREETING_LEN;
                self.state = State::Handshake;
                continue;
            }
            let Some((flags, body, len)) = (match split_frame(rest) {
                Ok(f) => f,
                Err(e) => break Err(e),
            }) else {
                break Ok(());
            };
            let body = body.to_vec();
            at += len;
            if let Err(e) = self.on_frame(flags, body) {
                break Err(e);
            }
        };
        self.input.drain(..at);
        result
    }

    fn on_frame(&mut self, flags: u8, body: Vec<u8>) -> Result<(), Error> {
        if flags & COMMAND != 0 {
            return self.on_command(&body);
        }
        if self.state != State::Ready {
            return Err(Error::Early);
        }
        if !self.outstanding {
            return Err(Error::Unasked);
        }
        if !self.delimited {
            if !body.is_empty() {
                return Err(Error::NoDelimiter);
            }
            self.delimited = true;
        } else {
            if self.parts.len() == MAX_PARTS {
                return Err(Error::TooManyParts);
            }
            self.parts.push(body);
        }
        if flags & MORE == 0 {
            self.outstanding = false;
            self.delimited = false;
            self.events
                .push_back(Event::Reply(std::mem::take(&mut self.parts)));
        }
        Ok(())
    }

    fn on_command(&mut self, body: &[u8]) -> Result<(), Error> {
        let (&n, rest) = body.split_first().ok_or(Error::BadCommand("empty"))?;
        let n = usize::from(n);
        if rest.len() < n {
            return Err(Error::BadCommand("unnamed"));
        }
        let (name, data) = rest.split_at(n);
        match name {
            b"READY" => {
                if self.state != State::Handshake {
                    return Err(Error::BadCommand("READY"));
                }
                let props = properties(data).ok_or(Error::BadCommand("READY"))?;
                let socket_type = props
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"Socket-Type"))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                if socket_type != "REP" && socket_type != "ROUTER" {
                    return Err(Error::SocketType(socket_type));
                }
                self.state = State::Ready;
                self.events.push_back(Event::Ready);
                Ok(())
            }
            b"ERROR" => {
                let reason = data
                    .split_first()
                    .and_then(|(&len, r)| r.get(..usize::from(len)))
                    .ok_or(Error::BadCommand("ERROR"))?;
                Err(Error::Refused(String::from_utf8_lossy(reason).into_owned()))
            }
            // PING and PONG (ZMTP 3.1 heartbeats, off unless asked for) and commands
            // of later versions: nothing to do.
            _ => Ok(()),
        }
    }
}

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// The greeting: signature, version 3.0, NULL, as client.
fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Appends one frame.
fn frame(out: &mut Vec<u8>, kind: u8, body: &[u8], more: bool) {
    let mut flags = kind;
    if more {
        flags |= MORE;
    }
    match u8::try_from(body.len()) {
        Ok(n) => {
            out.push(flags);
            out.push(n);
        }
        Err(_) => {
            out.push(flags | LONG);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
}

/// Appends a command with its properties (READY's metadata).
fn command(out: &mut Vec<u8>, name: &[u8], props: &[(&[u8], &[u8])]) {
    let mut body = Vec::new();
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    for (k, v) in props {
        body.push(k.len() as u8);
        body.extend_from_slice(k);
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v);
    }
    frame(out, COMMAND, &body, false);
}

/// A whole frame at the start of the input: its flags, its body, the bytes it took.
type Split<'a> = (u8, &'a [u8], usize);

/// One whole frame at the start of `b`; `None` until all of it is there.
fn split_frame(b: &[u8]) -> Result<Option<Split<'_>>, Error> {
    let Some(&flags) = b.first() else {
        return Ok(None);
    };
    let (len, head) = if flags & LONG != 0 {
        let Some(size) = b.get(1..9) else {
            return Ok(None);
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(size);
        (u64::from_be_bytes(n), 9)
    } else {
        let Some(&n) = b.get(1) else {
            return Ok(None);
        };
        (u64::from(n), 2)
    };
    // Bounded before anything is kept for it.
    if len > MAX_FRAME as u64 {
        return Err(Error::FrameTooLong(len));
    }
    let len = len as usize;
    match b.get(head..head + len) {
        Some(body) => Ok(Some((flags, body, head + len))),
        None => Ok(None),
    }
}

/// A command's properties: name-length (1 byte), name, value-length (4 bytes), value.
fn properties(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = data.split_first() {
        let name = rest.get(..usize::from(n))?;
        let rest = &rest[usize::from(n)..];
        let len = rest.get(..4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let value = rest.get(4..4 + len)?;
        out.push((name, value));
        data = &rest[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests;
