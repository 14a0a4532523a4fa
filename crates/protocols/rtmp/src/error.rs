//! Errors of the RTMP engine.
//!
//! Every variant names the numbers a person needs to understand what the peer did
//! ("chunk size 2147483647 exceeds the limit of 16777216"). The driver adds the peer
//! address when it logs them. Any `Err` returned by a session is fatal for that
//! connection: the driver closes the socket.

/// Errors from decoding AMF0 values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmfError {
    /// The input ended in the middle of a value.
    #[error("AMF0 input truncated: needed {needed} more bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    /// A string (or long string) declares more bytes than the input holds; refused before allocating.
    #[error("AMF0 string declares {declared} bytes but only {available} remain")]
    StringTooLong { declared: u64, available: usize },
    /// A strict array declares more elements than the remaining input could possibly hold.
    #[error("AMF0 strict array declares {declared} elements but only {available} bytes remain")]
    ArrayTooLong { declared: u32, available: usize },
    /// One message decodes to more values (every value, property and array element
    /// counts) than the budget allows; refused before allocating them.
    #[error("message decodes to more than {limit} values (the budget per message)")]
    TooManyValues { limit: usize },
    /// Objects and arrays nest deeper than the decoder allows.
    #[error("AMF0 values nest deeper than the limit of {limit}")]
    DepthExceeded { limit: usize },
    /// A type marker that AMF0 does not define.
    #[error("unknown AMF0 type marker 0x{0:02x}")]
    UnknownMarker(u8),
    /// A marker AMF0 defines but this decoder deliberately does not support
    /// (movieclip, reference, unsupported, recordset, XML document, typed object).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker outside an object")]
    UnexpectedObjectEnd,
    /// The AMF0 "avmplus" marker (0x11) switches to AMF3, which this engine does not speak.
    #[error("AMF3 values (AMF0 marker 0x11) are not supported")]
    Amf3NotSupported,
}

/// Fatal protocol errors of a session, the chunk stream or the handshake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// C0/S0 asked for an RTMP version other than 3.
    #[error("RTMP version {0} requested; only version 3 is supported")]
    BadVersion(u8),
    /// Set Chunk Size asked for more than the configured limit; refused before allocating.
    #[error("chunk size {size} exceeds the limit of {limit}")]
    ChunkSizeTooLarge { size: u32, limit: u32 },
    /// Set Chunk Size of 0.
    #[error("chunk size {0} is invalid (must be 1..=2147483647)")]
    InvalidChunkSize(u32),
    /// A message header declared a length above the configured limit; refused before allocating.
    #[error("message length {len} exceeds the limit of {limit}")]
    MessageTooLong { len: usize, limit: usize },
    /// A chunk stream id outside 2..=65599 given to the encoder.
    #[error("chunk stream id {0} is outside 2..=65599")]
    InvalidChunkStreamId(u32),
    /// Partially received messages would reserve more than the connection's budget;
    /// refused before reserving.
    #[error("partial messages on {chunk_streams} chunk streams would hold {bytes} bytes, over the {budget} budget", budget = ByteSize(*.budget))]
    PartialMessagesOverBudget {
        chunk_streams: usize,
        bytes: usize,
        budget: usize,
    },
    /// A type 1, 2 or 3 chunk header on a chunk stream id never opened by a type 0 header.
    #[error("unknown chunk stream id {0} (first chunk must carry a type 0 header)")]
    UnknownChunkStream(u32),
    /// More chunk streams opened than the configured limit.
    #[error("too many chunk streams open (limit {limit})")]
    TooManyChunkStreams { limit: usize },
    /// A message too short for its type (protocol control and user control messages).
    #[error("message type {type_id} has {len} bytes, needs at least {needed}")]
    MessageTruncated {
        type_id: u8,
        len: usize,
        needed: usize,
    },
    /// An AMF3 message (type 15 or 17) whose body is real AMF3, not AMF0 in an AMF3 envelope.
    #[error("message type {type_id} carries AMF3 (first byte 0x{first_byte:02x}), which is not supported")]
    Amf3NotSupported { type_id: u8, first_byte: u8 },
    /// A command message that does not start with a command name string.
    #[error("malformed command message: {reason}")]
    MalformedCommand { reason: &'static str },
    /// A message that is not allowed in the current state of the session.
    #[error("unexpected message: {what} ({state})")]
    UnexpectedMessage { what: String, state: &'static str },
    /// An AMF0 body failed to decode.
    #[error("AMF0: {0}")]
    Amf(#[from] AmfError),
    /// The session already failed with an earlier error; feed no more input.
    #[error("session already failed; close the connection")]
    SessionFailed,
}

/// A byte count as a person reads it: "4 MiB", "64 KiB", else "1000 bytes".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{} MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{} KiB", n >> 10)
        } else {
            write!(f, "{n} bytes")
        }
    }
}
