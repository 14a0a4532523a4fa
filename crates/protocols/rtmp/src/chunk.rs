//! The RTMP chunk stream: splitting messages into chunks and joining them back.
//!
//! [`ChunkDecoder`] is a push parser: [`ChunkDecoder::push`] appends bytes in any
//! fragmentation (down to one byte at a time) and [`ChunkDecoder::next_message`] returns
//! complete messages. It keeps per-chunk-stream header state (message header types 0,
//! 1, 2 and 3, timestamp deltas, extended timestamps) and applies Set Chunk Size and
//! Abort itself, at the exact point in the byte stream where they take effect.
//!
//! Limits, checked before anything is allocated:
//! - a Set Chunk Size above [`ChunkLimits::max_chunk_size`] is an error;
//! - a message length above [`ChunkLimits::max_message_len`] is an error as soon as the
//!   header is read (the payload buffer then grows with the bytes actually received and
//!   never past the declared length);
//! - at most [`ChunkLimits::max_chunk_streams`] chunk stream ids may be in use;
//! - partial messages across all chunk streams share one budget,
//!   [`ChunkLimits::max_partial_bytes`], counted in bytes *reserved* (not just received)
//!   and checked before every reservation, so a peer that opens many chunk streams and
//!   leaves a message half sent on each cannot hold more than the budget.
//!
//! [`ChunkEncoder`] picks the smallest header that the receiver's state allows and
//! emits chunk headers as small `Bytes` next to slices of the payload, so a media frame
//! is never copied per receiver.
//!
//! This module must never perform I/O or read a clock.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::RtmpError;

/// Chunk size every RTMP connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the protocol can express (31 bits).
pub const MAX_CHUNK_SIZE_ON_WIRE: u32 = 0x7FFF_FFFF;
/// Largest message length a chunk header can express (24 bits).
pub const MAX_MESSAGE_LEN_ON_WIRE: usize = 0xFF_FFFF;
/// Timestamp field value that announces a 4-byte extended timestamp.
const EXTENDED: u32 = 0xFF_FFFF;
/// Lowest and highest chunk stream ids a basic header can carry (0 and 1 are escapes).
pub const MIN_CHUNK_STREAM_ID: u32 = 2;
pub const MAX_CHUNK_STREAM_ID: u32 = 65599;

/// Message type id of Set Chunk Size.
const SET_CHUNK_SIZE: u8 = 1;
/// Message type id of Abort.
const ABORT: u8 = 2;

/// Hard caps of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size the peer may set (default 16 MiB).
    pub max_chunk_size: u32,
    /// Largest message the peer may send (default 16 MiB; the wire format cannot
    /// express more than 16 MiB - 1, so the default never refuses a valid header).
    pub max_message_len: usize,
    /// Most chunk stream ids the peer may use on one connection (default 64).
    pub max_chunk_streams: usize,
    /// Bytes that partially received messages may reserve across all chunk streams of
    /// one connection (default 16 MiB). Keep it at least `max_message_len`, or the
    /// largest allowed message can never be assembled.
    pub max_partial_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_chunk_size: 16 * 1024 * 1024,
            max_message_len: 16 * 1024 * 1024,
            max_chunk_streams: 64,
            max_partial_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A complete message as it came off the chunk stream, before its body is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub chunk_stream_id: u32,
    pub type_id: u8,
    /// Message stream id (the NetStream, 0 for the NetConnection).
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds (deltas applied, wrapping mod 2^32).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Receiving state of one chunk stream id.
#[derive(Debug)]
struct InStream {
    timestamp: u32,
    /// Delta to apply for a type 3 header that starts a new message. After a type 0
    /// header this is that header's absolute timestamp, as the spec says.
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last type 0/1/2 header used an extended timestamp, so type 3 headers carry one too.
    extended: bool,
    /// The extended timestamp value of the last header that carried one.
    last_extended: u32,
    /// Payload of the message in progress; empty between messages.
    payload: Vec<u8>,
}

#[derive(Debug)]
struct ParsedHeader {
    fmt: u8,
    csid: u32,
    /// Header bytes to consume.
    len: usize,
    timestamp_field: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// Extended timestamp present in this header.
    extended: Option<u32>,
}

/// Push parser for the incoming chunk stream.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    buf: BytesMut,
    streams: HashMap<u32, InStream>,
    /// Chunk stream whose chunk payload is being read, and how many bytes of it remain.
    current: Option<(u32, usize)>,
    /// Bytes reserved by partial messages across all chunk streams (their capacity).
    buffered: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            buf: BytesMut::new(),
            streams: HashMap::new(),
            current: None,
            buffered: 0,
        }
    }

    /// The chunk size the peer is currently sending with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a chunk size the peer announced (normally done by the decoder itself
    /// when it reads a Set Chunk Size message).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        if size == 0 {
            return Err(RtmpError::InvalidChunkSize(size));
        }
        if size > self.limits.max_chunk_size {
            return Err(RtmpError::ChunkSizeTooLarge {
                size,
                limit: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Bytes reserved by partially received messages (never above
    /// [`ChunkLimits::max_partial_bytes`]).
    pub fn partial_bytes(&self) -> usize {
        self.buffered
    }

    /// Bytes received but not yet parsed (at most a partial chunk header).
    pub fn pending_input(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Appends bytes without copying when the buffer is empty.
    pub(crate) fn push_bytes(&mut self, data: BytesMut) {
        if self.buf.is_empty() {
            self.buf = data;
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// Parses as far as the buffered bytes allow; returns the next complete message.
    ///
    /// `Ok(None)` means more input is needed. After an `Err` the stream is broken and
    /// the connection must be closed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            if let Some((csid, remaining)) = self.current {
                let take = remaining.min(self.buf.len());
                if take == 0 {
                    return Ok(None);
                }
                let stream = self
                    .streams
                    .get_mut(&csid)
                    .ok_or(RtmpError::UnknownChunkStream(csid))?;
                let cap = stream.payload.capacity();
                let need = stream.payload.len().saturating_add(take);
                if need > cap {
                    // Double (amortised copies) but never past the declared length; the
                    // budget is checked against what would be reserved, before reserving.
                    let target = cap.saturating_mul(2).clamp(need, stream.length.max(need));
                    let wanted = self.buffered.saturating_add(target - cap);
                    let budget = self.limits.max_partial_bytes;
                    if wanted > budget {
                        let open = self.streams.values().filter(|s| s.payload.capacity() > 0);
                        return Err(RtmpError::PartialMessagesOverBudget {
                            chunk_streams: open.count() + usize::from(cap == 0),
                            bytes: wanted,
                            budget,
                        });
                    }
                    stream.payload.reserve_exact(target - stream.payload.len());
                    self.buffered += stream.payload.capacity() - cap;
                }
                stream.payload.extend_from_slice(&self.buf[..take]);
                self.buf.advance(take);
                let remaining = remaining - take;
                if remaining > 0 {
                    self.current = Some((csid, remaining));
                    return Ok(None);
                }
                self.current = None;
                if stream.payload.len() >= stream.length {
                    self.buffered = self.buffered.saturating_sub(stream.payload.capacity());
                    let payload = Bytes::from(std::mem::take(&mut stream.payload));
                    let msg = RawMessage {
                        chunk_stream_id: csid,
                        type_id: stream.type_id,
                        stream_id: stream.stream_id,
                        timestamp: stream.timestamp,
                        payload,
                    };
                    return self.finish(msg).map(Some);
                }
                continue;
            }

            let Some(header) = self.parse_header()? else {
                return Ok(None);
            };
            self.buf.advance(header.len);
            if let Some(msg) = self.apply_header(&header)? {
                return self.finish(msg).map(Some);
            }
        }
    }

    /// Reads a complete chunk header from the front of the buffer without consuming it.
    fn parse_header(&self) -> Result<Option<ParsedHeader>, RtmpError> {
        let b = &self.buf[..];
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3F {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let state = self.streams.get(&csid);
        if fmt != 0 && state.is_none() {
            return Err(RtmpError::UnknownChunkStream(csid));
        }
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let be24 = |s: &[u8]| u32::from_be_bytes([0, s[0], s[1], s[2]]);
        let mut header = ParsedHeader {
            fmt,
            csid,
            len: 0,
            timestamp_field: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
            extended: None,
        };
        if let Some(s) = state {
            header.length = s.length;
            header.type_id = s.type_id;
            header.stream_id = s.stream_id;
        }
        if fmt <= 2 {
            header.timestamp_field = be24(&h[0..3]);
        }
        if fmt <= 1 {
            header.length = be24(&h[3..6]) as usize;
            header.type_id = h[6];
            if header.length > self.limits.max_message_len {
                return Err(RtmpError::MessageTooLong {
                    len: header.length,
                    limit: self.limits.max_message_len,
                });
            }
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
            if state.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
                return Err(RtmpError::TooManyChunkStreams {
                    limit: self.limits.max_chunk_streams,
                });
            }
        }
        let wants_extended = match (fmt, state) {
            (3, Some(s)) => s.extended,
            _ => header.timestamp_field == EXTENDED,
        };
        if wants_extended {
            let Some(ext) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            let ext = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            let continuation = fmt == 3 && state.is_some_and(|s| !s.payload.is_empty());
            // Some encoders omit the extended timestamp on continuation chunks. If the
            // four bytes are not the value the stream's header carried, they are payload.
            if !continuation || state.is_some_and(|s| s.last_extended == ext) {
                header.extended = Some(ext);
                pos += 4;
            }
        }
        header.len = pos;
        Ok(Some(header))
    }

    /// Updates chunk stream state from a consumed header. Returns a message when the
    /// header completes one (zero-length messages, and single-chunk messages whose
    /// payload is already buffered, copied out in one piece).
    fn apply_header(&mut self, h: &ParsedHeader) -> Result<Option<RawMessage>, RtmpError> {
        let chunk_size = self.chunk_size as usize;
        let stream = self.streams.entry(h.csid).or_insert_with(|| InStream {
            timestamp: 0,
            delta: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
            extended: false,
            last_extended: 0,
            payload: Vec::new(),
        });
        let continuation = h.fmt == 3 && !stream.payload.is_empty();
        if !continuation {
            if !stream.payload.is_empty() {
                // A new header in the middle of a message: the peer gave up on it.
                self.buffered = self.buffered.saturating_sub(stream.payload.capacity());
                stream.payload = Vec::new();
            }
            let field = h.extended.unwrap_or(h.timestamp_field);
            match h.fmt {
                0 => {
                    stream.timestamp = field;
                    stream.delta = field;
                }
                1 | 2 => {
                    stream.delta = field;
                    stream.timestamp = stream.timestamp.wrapping_add(field);
                }
                _ => {
                    if let Some(ext) = h.extended {
                        stream.delta = ext;
                    }
                    stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
                }
            }
            if h.fmt <= 2 {
                stream.extended = h.timestamp_field == EXTENDED;
            }
            if let Some(ext) = h.extended {
                stream.last_extended = ext;
            }
            stream.length = h.length;
            stream.type_id = h.type_id;
            stream.stream_id = h.stream_id;
        }
        let remaining = stream.length.saturating_sub(stream.payload.len());
        let chunk_len = remaining.min(chunk_size);
        let whole = RawMessage {
            chunk_stream_id: h.csid,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            timestamp: stream.timestamp,
            payload: Bytes::new(),
        };
        if stream.length == 0 {
            return Ok(Some(whole));
        }
        if !continuation && chunk_len == stream.length && self.buf.len() >= chunk_len {
            // Copied out, not split off: a slice would pin the whole read buffer for as
            // long as the frame lives (a GOP cache holds two seconds of small audio
            // frames, each then keeping a buffer of several KiB alive), and every read
            // after it would need a fresh buffer. An exact copy of one message is cheap.
            let payload = Bytes::copy_from_slice(&self.buf[..chunk_len]);
            self.buf.advance(chunk_len);
            return Ok(Some(RawMessage { payload, ..whole }));
        }
        self.current = Some((h.csid, chunk_len));
        Ok(None)
    }

    /// Applies the protocol control messages that change how chunks are read.
    fn finish(&mut self, msg: RawMessage) -> Result<RawMessage, RtmpError> {
        match msg.type_id {
            SET_CHUNK_SIZE => {
                let size = read_u32(&msg)?;
                self.set_chunk_size(size)?;
            }
            ABORT => {
                let csid = read_u32(&msg)?;
                if let Some(s) = self.streams.get_mut(&csid) {
                    self.buffered = self.buffered.saturating_sub(s.payload.capacity());
                    s.payload = Vec::new();
                }
            }
            _ => {}
        }
        Ok(msg)
    }
}

fn read_u32(msg: &RawMessage) -> Result<u32, RtmpError> {
    match msg.payload.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(RtmpError::MessageTruncated {
            type_id: msg.type_id,
            len: msg.payload.len(),
            needed: 4,
        }),
    }
}

/// Sending state of one chunk stream id.
#[derive(Debug)]
struct OutStream {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last header sent a timestamp field of 0xFFFFFF.
    extended: bool,
    /// The last header was type 0, after which a type 3 would re-add the absolute
    /// timestamp; not every peer gets that rule right, so it is avoided.
    last_was_type0: bool,
}

/// Type 3 basic headers for chunk stream ids 0..64, so continuation chunks cost no allocation.
static TYPE3_HEADERS: [u8; 64] = {
    let mut a = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        a[i] = 0xC0 | i as u8;
        i += 1;
    }
    a
};

/// Messages up to this size are written as one contiguous buffer (copying is cheaper
/// than many tiny `Bytes`); larger payloads are sliced, never copied.
const COALESCE_LIMIT: usize = 512;

/// Splits outgoing messages into chunks.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutStream>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size (clamped to 1..=2^31-1). Send the Set Chunk Size
    /// message with the old size first.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE_ON_WIRE);
    }

    /// Splits one message into chunks and appends them to `out` as header buffers and
    /// slices of `payload`.
    pub fn write(
        &mut self,
        chunk_stream_id: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &Bytes,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), RtmpError> {
        self.write_parts(
            chunk_stream_id,
            type_id,
            stream_id,
            timestamp,
            std::slice::from_ref(payload),
            out,
        )
    }

    /// [`write`](Self::write) for a message body given in pieces (e.g. a 5-byte FLV tag
    /// header and a frame payload shared with every other player): chunk bodies are
    /// slices of the pieces, so a large payload is never copied.
    pub fn write_parts(
        &mut self,
        chunk_stream_id: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        parts: &[Bytes],
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), RtmpError> {
        let length = parts.iter().map(Bytes::len).sum();
        let chunks = self.chunk_headers(chunk_stream_id, type_id, stream_id, timestamp, length)?;
        if length <= COALESCE_LIMIT {
            let mut joined = BytesMut::with_capacity(length + 18 * chunks.len());
            for (header, range) in chunks {
                joined.put_slice(&header);
                for_each_slice(parts, range, |b| joined.put_slice(&b));
            }
            out.push_back(joined.freeze());
        } else {
            for (header, range) in chunks {
                out.push_back(header);
                for_each_slice(parts, range, |b| out.push_back(b));
            }
        }
        Ok(())
    }

    /// The chunks of one message as (header, payload slice) pairs.
    #[cfg(test)]
    pub(crate) fn chunks(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &Bytes,
    ) -> Result<Vec<(Bytes, Bytes)>, RtmpError> {
        let headers = self.chunk_headers(csid, type_id, stream_id, timestamp, payload.len())?;
        Ok(headers
            .into_iter()
            .map(|(h, r)| (h, payload.slice(r)))
            .collect())
    }

    /// The chunk headers of one message of `length` bytes, each with the byte range of
    /// the payload that follows it.
    fn chunk_headers(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        length: usize,
    ) -> Result<Vec<(Bytes, std::ops::Range<usize>)>, RtmpError> {
        if !(MIN_CHUNK_STREAM_ID..=MAX_CHUNK_STREAM_ID).contains(&csid) {
            return Err(RtmpError::InvalidChunkStreamId(csid));
        }
        if length > MAX_MESSAGE_LEN_ON_WIRE {
            return Err(RtmpError::MessageTooLong {
                len: length,
                limit: MAX_MESSAGE_LEN_ON_WIRE,
            });
        }
        let (fmt, field) = match self.streams.get(&csid) {
            Some(s) if s.stream_id == stream_id && timestamp >= s.timestamp => {
                let delta = timestamp - s.timestamp;
                if s.length != length || s.type_id != type_id {
                    (1, delta)
                } else if delta == s.delta && !s.last_was_type0 {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, timestamp),
        };
        let extended = if fmt == 3 {
            self.streams.get(&csid).is_some_and(|s| s.extended)
        } else {
            field >= EXTENDED
        };
        self.streams.insert(
            csid,
            OutStream {
                timestamp,
                delta: field,
                length,
                type_id,
                stream_id,
                extended,
                last_was_type0: fmt == 0,
            },
        );

        let mut first = BytesMut::with_capacity(18);
        put_basic_header(&mut first, fmt, csid);
        let ts_field = if extended { EXTENDED } else { field };
        if fmt <= 2 {
            first.put_uint(u64::from(ts_field), 3);
        }
        if fmt <= 1 {
            first.put_uint(length as u64, 3);
            first.put_u8(type_id);
        }
        if fmt == 0 {
            first.put_u32_le(stream_id);
        }
        if extended {
            first.put_u32(field);
        }
        let first = first.freeze();

        let chunk_size = self.chunk_size as usize;
        let mut chunks = Vec::with_capacity(length.div_ceil(chunk_size).max(1));
        let mut offset = 0;
        let first_len = length.min(chunk_size);
        chunks.push((first, 0..first_len));
        offset += first_len;
        while offset < length {
            let end = (offset + chunk_size).min(length);
            let header = match TYPE3_HEADERS.get(csid as usize..csid as usize + 1) {
                Some(h) if !extended => Bytes::from_static(h),
                _ => {
                    let mut h = BytesMut::with_capacity(7);
                    put_basic_header(&mut h, 3, csid);
                    if extended {
                        h.put_u32(field);
                    }
                    h.freeze()
                }
            };
            chunks.push((header, offset..end));
            offset = end;
        }
        Ok(chunks)
    }
}

/// Calls `f` with the slices of `parts` (taken as one concatenated body) that cover `range`.
fn for_each_slice(parts: &[Bytes], range: std::ops::Range<usize>, mut f: impl FnMut(Bytes)) {
    let mut base = 0;
    for part in parts {
        let end = base + part.len();
        let (lo, hi) = (range.start.max(base), range.end.min(end));
        if lo < hi {
            f(part.slice(lo - base..hi - base));
        }
        if end >= range.end {
            break;
        }
        base = end;
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    if csid < 64 {
        out.put_u8(fmt | csid as u8);
    } else if csid < 320 {
        out.put_u8(fmt);
        out.put_u8((csid - 64) as u8);
    } else {
        let v = csid - 64;
        out.put_u8(fmt | 1);
        out.put_u8((v & 0xFF) as u8);
        out.put_u8((v >> 8) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parts_equals_write_of_the_joined_body_and_slices_large_payloads() {
        let header = Bytes::from_static(&[0x17, 1, 0, 0, 0]);
        let payload = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let mut joined = BytesMut::new();
        joined.put_slice(&header);
        joined.put_slice(&payload);
        let joined = joined.freeze();
        for len in [3usize, 300, 10_000] {
            let p = payload.slice(..len);
            let body = joined.slice(..5 + len);
            let (mut a, mut b) = (ChunkEncoder::new(), ChunkEncoder::new());
            a.set_chunk_size(128);
            b.set_chunk_size(128);
            let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
            a.write(6, 9, 1, 1000, &body, &mut qa).unwrap();
            b.write_parts(6, 9, 1, 1000, &[header.clone(), p.clone()], &mut qb)
                .unwrap();
            let flat = |q: &VecDeque<Bytes>| {
                q.iter()
                    .flat_map(|b| b.iter().copied())
                    .collect::<Vec<u8>>()
            };
            assert_eq!(flat(&qa), flat(&qb), "length {len}");
            if len == 10_000 {
                // Some chunk bodies point into the shared payload itself.
                let range = p.as_ptr_range();
                assert!(qb.iter().any(|b| range.contains(&b.as_ptr())));
            }
        }
    }

    #[derive(Debug, Clone)]
    struct Msg {
        csid: u32,
        type_id: u8,
        stream_id: u32,
        ts: u32,
        payload: Bytes,
    }

    fn msg(csid: u32, type_id: u8, stream_id: u32, ts: u32, len: usize, seed: u8) -> Msg {
        let payload: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        Msg {
            csid,
            type_id,
            stream_id,
            ts,
            payload: Bytes::from(payload),
        }
    }

    fn raw(m: &Msg) -> RawMessage {
        RawMessage {
            chunk_stream_id: m.csid,
            type_id: m.type_id,
            stream_id: m.stream_id,
            timestamp: m.ts,
            payload: m.payload.clone(),
        }
    }

    /// Encodes the messages and interleaves their chunks round-robin across chunk
    /// streams (order within one chunk stream is kept, as the protocol requires).
    fn encode_interleaved(enc: &mut ChunkEncoder, msgs: &[Msg]) -> (Vec<u8>, Vec<u8>) {
        let mut per_csid: Vec<(u32, VecDeque<(Bytes, Bytes)>)> = Vec::new();
        let mut fmts = Vec::new();
        for m in msgs {
            let chunks = enc
                .chunks(m.csid, m.type_id, m.stream_id, m.ts, &m.payload)
                .unwrap();
            fmts.push(chunks[0].0[0] >> 6);
            match per_csid.iter_mut().find(|(c, _)| *c == m.csid) {
                Some((_, q)) => q.extend(chunks),
                None => per_csid.push((m.csid, chunks.into())),
            }
        }
        let mut wire = Vec::new();
        loop {
            let mut any = false;
            for (_, q) in per_csid.iter_mut() {
                if let Some((h, b)) = q.pop_front() {
                    wire.extend_from_slice(&h);
                    wire.extend_from_slice(&b);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        (wire, fmts)
    }

    fn decode_all(dec: &mut ChunkDecoder, wire: &[u8], step: usize) -> Vec<RawMessage> {
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            dec.push(piece);
            while let Some(m) = dec.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(dec.pending_input(), 0);
        out
    }

    /// Messages sorted by chunk stream id, keeping the order within each (interleaving
    /// changes the global completion order, not the per-stream order).
    fn by_csid(mut v: Vec<RawMessage>) -> Vec<RawMessage> {
        v.sort_by_key(|m| m.chunk_stream_id);
        v
    }

    fn sample_messages() -> Vec<Msg> {
        vec![
            msg(4, 8, 1, 0, 300, 1),
            msg(6, 9, 1, 0, 5000, 2),
            msg(4, 8, 1, 23, 300, 3),  // type 2: same length, new delta
            msg(6, 9, 1, 40, 1200, 4), // type 1: new length
            msg(4, 8, 1, 46, 300, 5),  // type 3: same length and delta
            msg(6, 9, 1, 80, 1200, 6), // type 3
            msg(6, 9, 1, 120, 1200, 7),
            msg(3, 20, 0, 0, 0, 8),       // empty message
            msg(5, 18, 1, 0, 150, 9),     // spans two chunks at 128
            msg(4, 8, 2, 60, 300, 10),    // other message stream: type 0
            msg(4, 8, 2, 50, 300, 11),    // timestamp went backwards: type 0
            msg(70, 9, 1, 0, 10, 12),     // two-byte basic header
            msg(319, 9, 1, 0, 10, 13),    // largest two-byte form
            msg(320, 9, 1, 0, 10, 14),    // three-byte form
            msg(65599, 9, 1, 7, 300, 15), // largest chunk stream id
        ]
    }

    #[test]
    fn round_trip_across_chunk_sizes_interleaved() {
        for chunk_size in [1u32, 128, 4096] {
            let msgs = sample_messages();
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk_size);
            let (wire, _) = encode_interleaved(&mut enc, &msgs);
            let mut dec = ChunkDecoder::default();
            dec.set_chunk_size(chunk_size).unwrap();
            let whole = decode_all(&mut dec, &wire, wire.len());
            let expected: Vec<RawMessage> = msgs.iter().map(raw).collect();
            assert_eq!(
                by_csid(whole.clone()),
                by_csid(expected),
                "size {chunk_size}"
            );
            let mut dec = ChunkDecoder::default();
            dec.set_chunk_size(chunk_size).unwrap();
            let bytewise = decode_all(&mut dec, &wire, 1);
            assert_eq!(
                bytewise, whole,
                "byte-at-a-time differs at size {chunk_size}"
            );
        }
    }

    #[test]
    fn encoder_uses_every_header_type() {
        let mut enc = ChunkEncoder::new();
        let msgs = sample_messages();
        let (_, fmts) = encode_interleaved(&mut enc, &msgs);
        assert_eq!(&fmts[..7], &[0, 0, 2, 1, 3, 3, 3]);
        assert_eq!(fmts[9], 0, "new message stream id");
        assert_eq!(fmts[10], 0, "timestamp going backwards");
    }

    #[test]
    fn extended_timestamps_round_trip() {
        let big = 0x0100_0000;
        let msgs = vec![
            msg(6, 9, 1, big, 500, 1),                // type 0, extended absolute
            msg(6, 9, 1, big + 40, 500, 2),           // type 2, small delta
            msg(6, 9, 1, big + 40 + big, 500, 3),     // type 2, extended delta
            msg(6, 9, 1, big + 40 + 2 * big, 500, 4), // type 3 with extended delta
            msg(6, 9, 1, 0xFFFF_FFF0, 500, 5),        // type 2, extended delta
            msg(4, 8, 1, 0xFF_FFFF, 10, 6),           // exactly the escape value
            msg(4, 8, 1, 0xFF_FFFF + 1, 10, 7),
        ];
        for chunk_size in [1u32, 128, 4096] {
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk_size);
            let (wire, fmts) = encode_interleaved(&mut enc, &msgs);
            assert_eq!(&fmts[..5], &[0, 2, 2, 3, 2]);
            let mut dec = ChunkDecoder::default();
            dec.set_chunk_size(chunk_size).unwrap();
            let got = decode_all(&mut dec, &wire, 7);
            let expected: Vec<RawMessage> = msgs.iter().map(raw).collect();
            assert_eq!(by_csid(got), by_csid(expected), "size {chunk_size}");
        }
    }

    #[test]
    fn type3_after_type0_adds_the_type0_timestamp() {
        // Spec 5.3.1.2.4: a type 3 header starting a new message after a type 0
        // header uses the type 0 timestamp as its delta.
        let mut wire = vec![0x04, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA];
        wire.extend_from_slice(&[0xC4, 0xBB]);
        let mut dec = ChunkDecoder::default();
        let got = decode_all(&mut dec, &wire, 1);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].timestamp, got[1].timestamp), (100, 200));
        assert_eq!(&got[1].payload[..], &[0xBB]);
        assert_eq!(got[1].stream_id, 1);
    }

    #[test]
    fn extended_timestamp_on_continuation_chunks_with_and_without_repeat() {
        // 200-byte message, chunk size 128, timestamp 0x01000000 (extended).
        let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let header = [0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 1, 0, 0, 0];
        for repeat in [true, false] {
            let mut wire = header.to_vec();
            wire.extend_from_slice(&payload[..128]);
            wire.push(0xC6);
            if repeat {
                wire.extend_from_slice(&[1, 0, 0, 0]);
            }
            wire.extend_from_slice(&payload[128..]);
            let mut dec = ChunkDecoder::default();
            let got = decode_all(&mut dec, &wire, 1);
            assert_eq!(got.len(), 1, "repeat={repeat}");
            assert_eq!(got[0].timestamp, 0x0100_0000);
            assert_eq!(&got[0].payload[..], &payload[..]);
        }
    }

    fn set_chunk_size_msg(size: u32) -> Vec<u8> {
        let mut v = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        v.extend_from_slice(&size.to_be_bytes());
        v
    }

    #[test]
    fn set_chunk_size_one_works() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(1);
        let m = msg(6, 9, 1, 33, 1000, 9);
        let (wire, _) = encode_interleaved(&mut enc, std::slice::from_ref(&m));
        let mut input = set_chunk_size_msg(1);
        input.extend_from_slice(&wire);
        let mut dec = ChunkDecoder::default();
        let got = decode_all(&mut dec, &input, input.len());
        assert_eq!(dec.chunk_size(), 1);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], raw(&m));
    }

    #[test]
    fn huge_chunk_size_is_refused() {
        let mut dec = ChunkDecoder::default();
        dec.push(&set_chunk_size_msg(0x7FFF_FFFF));
        assert_eq!(
            dec.next_message(),
            Err(RtmpError::ChunkSizeTooLarge {
                size: 0x7FFF_FFFF,
                limit: 16 * 1024 * 1024
            })
        );
        let mut dec = ChunkDecoder::default();
        dec.push(&set_chunk_size_msg(0));
        assert_eq!(dec.next_message(), Err(RtmpError::InvalidChunkSize(0)));
        // Exactly the limit is fine.
        let mut dec = ChunkDecoder::default();
        dec.push(&set_chunk_size_msg(16 * 1024 * 1024));
        assert!(dec.next_message().unwrap().is_some());
        assert_eq!(dec.chunk_size(), 16 * 1024 * 1024);
    }

    fn type0_header(csid: u8, len: usize) -> Vec<u8> {
        let l = (len as u32).to_be_bytes();
        vec![csid, 0, 0, 0, l[1], l[2], l[3], 9, 1, 0, 0, 0]
    }

    #[test]
    fn message_length_cap_is_checked_at_the_header() {
        let limits = ChunkLimits {
            max_message_len: 1 << 20,
            ..ChunkLimits::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        // Only the header is fed: refused before any payload is buffered or reserved.
        dec.push(&type0_header(6, (1 << 20) + 1));
        assert_eq!(
            dec.next_message(),
            Err(RtmpError::MessageTooLong {
                len: (1 << 20) + 1,
                limit: 1 << 20
            })
        );
    }

    #[test]
    fn message_of_exactly_the_cap_is_accepted() {
        for (limits, len) in [
            (
                ChunkLimits {
                    max_message_len: 1 << 20,
                    ..ChunkLimits::default()
                },
                1 << 20,
            ),
            // The default cap admits the largest length the header can express.
            (ChunkLimits::default(), MAX_MESSAGE_LEN_ON_WIRE),
        ] {
            let m = msg(6, 9, 1, 0, len, 3);
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(4096);
            let (wire, _) = encode_interleaved(&mut enc, std::slice::from_ref(&m));
            let mut dec = ChunkDecoder::new(limits);
            dec.set_chunk_size(4096).unwrap();
            let got = decode_all(&mut dec, &wire, 65536);
            assert_eq!(got, vec![raw(&m)]);
        }
    }

    #[test]
    fn growth_never_reserves_past_the_declared_length() {
        let total = 1_000_000;
        let m = msg(6, 9, 1, 0, total, 3);
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(4096);
        let (wire, _) = encode_interleaved(&mut enc, std::slice::from_ref(&m));
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(4096).unwrap();
        for piece in wire.chunks(5000) {
            dec.push(piece);
            while dec.next_message().unwrap().is_some() {}
            assert!(dec.buffered <= total, "reserved {} > {total}", dec.buffered);
        }
    }

    #[test]
    fn unknown_chunk_stream_is_refused() {
        let mut dec = ChunkDecoder::default();
        dec.push(&[0x45, 0, 0, 0, 0, 0, 1, 9]); // type 1 on csid 5
        assert_eq!(dec.next_message(), Err(RtmpError::UnknownChunkStream(5)));
        let mut dec = ChunkDecoder::default();
        dec.push(&[0xC1, 0x50, 0x01]); // type 3 on csid 64 + 0x50 + 256
        assert_eq!(dec.next_message(), Err(RtmpError::UnknownChunkStream(400)));
        let mut dec = ChunkDecoder::default();
        dec.push(&[0x80]); // type 2, two-byte form: the id byte is still missing
        assert_eq!(dec.next_message(), Ok(None));
        dec.push(&[0x00]);
        assert_eq!(dec.next_message(), Err(RtmpError::UnknownChunkStream(64)));
    }

    #[test]
    fn chunk_stream_count_is_capped() {
        let header = |csid: u32| {
            let mut h = BytesMut::new();
            put_basic_header(&mut h, 0, csid);
            h.put_slice(&type0_header(0, 0)[1..]);
            h
        };
        let mut dec = ChunkDecoder::default();
        for csid in 2..66 {
            dec.push(&header(csid));
            assert!(dec.next_message().unwrap().is_some(), "csid {csid}");
        }
        // Reusing an open chunk stream is fine.
        dec.push(&header(2));
        assert!(dec.next_message().unwrap().is_some());
        dec.push(&header(66));
        assert_eq!(
            dec.next_message(),
            Err(RtmpError::TooManyChunkStreams { limit: 64 })
        );
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut wire = type0_header(6, 200);
        wire.extend_from_slice(&[7; 128]);
        // Abort (type 2) for chunk stream 6.
        wire.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6]);
        // A fresh message on csid 6 with a type 3 header: same length, new payload.
        wire.push(0xC6);
        wire.extend_from_slice(&[8; 128]);
        wire.push(0xC6);
        wire.extend_from_slice(&[8; 72]);
        let mut dec = ChunkDecoder::default();
        let got = decode_all(&mut dec, &wire, 3);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].type_id, ABORT);
        assert_eq!(&got[1].payload[..], &[8; 200][..]);
    }

    #[test]
    fn large_payloads_are_sliced_not_copied() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(4096);
        let payload = Bytes::from(vec![5u8; 10_000]);
        let mut out = VecDeque::new();
        enc.write(6, 9, 1, 0, &payload, &mut out).unwrap();
        // header, slice, header, slice, header, slice
        assert_eq!(out.len(), 6);
        assert_eq!(out[1].as_ptr(), payload.as_ptr());
        assert_eq!(out[3].as_ptr(), payload[4096..].as_ptr());
        assert_eq!(&out[2][..], &[0xC6]);
    }

    #[test]
    fn partial_messages_share_one_budget_checked_before_reserving() {
        let limits = ChunkLimits {
            max_partial_bytes: 64 * 1024,
            ..ChunkLimits::default()
        };
        let mut dec = ChunkDecoder::new(limits);
        // Half of a 20 000-byte message on each chunk stream 3..: 128-byte chunks, so a
        // message reserves 20 000 bytes only after a few doublings.
        let mut wire = Vec::new();
        for csid in 3..20u8 {
            let mut m = type0_header(csid, 20_000);
            m.extend_from_slice(&[1; 128]);
            wire.extend_from_slice(&m);
        }
        dec.push(&wire);
        for _ in 0..40 {
            // Continuations: keep every message growing.
            let mut more = Vec::new();
            for csid in 3..20u8 {
                more.push(0xC0 | csid);
                more.extend_from_slice(&[1; 128]);
            }
            dec.push(&more);
        }
        let err = match dec.next_message() {
            Ok(Some(m)) => panic!("no message is complete: {m:?}"),
            Ok(None) => panic!("the budget was never hit"),
            Err(e) => e,
        };
        let RtmpError::PartialMessagesOverBudget {
            chunk_streams,
            bytes,
            budget,
        } = err.clone()
        else {
            panic!("{err}");
        };
        assert_eq!(budget, 64 * 1024);
        assert!(bytes > budget);
        assert!(chunk_streams > 1, "{err}");
        // What was reserved never went past the budget.
        assert!(dec.buffered <= 64 * 1024, "{}", dec.buffered);
        let text = err.to_string();
        assert!(
            text.contains("chunk streams") && text.contains("64 KiB budget"),
            "{text}"
        );
    }

    #[test]
    fn a_message_as_big_as_the_budget_is_assembled_and_releases_it() {
        let limits = ChunkLimits {
            max_partial_bytes: 10_000,
            ..ChunkLimits::default()
        };
        let mut enc = ChunkEncoder::new();
        let m = msg(6, 9, 1, 0, 10_000, 3);
        let (wire, _) = encode_interleaved(&mut enc, std::slice::from_ref(&m));
        let mut dec = ChunkDecoder::new(limits);
        // Twice: the first message's reservation is given back when it completes.
        let mut twice = wire.clone();
        let (again, _) = encode_interleaved(&mut enc, std::slice::from_ref(&m));
        twice.extend_from_slice(&again);
        let got = decode_all(&mut dec, &twice, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], raw(&m));
        assert_eq!(dec.buffered, 0);
    }
}
