//! FLV files (Adobe FLV spec, E.2–E.3): the 9-byte header, then tags each followed by
//! its PreviousTagSize.
//!
//! [`FlvReader`] is a push parser: feed it bytes in any fragmentation, pop complete tags.
//! A tag's size is checked against the cap (16 MiB by default) as soon as its header is
//! seen, before anything is buffered for it. [`FlvWriter`] appends tags to a buffer.
//! Neither does I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::FlvError;

/// Default cap on a tag's DataSize.
pub const DEFAULT_MAX_TAG_SIZE: usize = 16 << 20;
/// Cap on the header's DataOffset (always 9 in practice).
const MAX_HEADER_SIZE: u32 = 4096;
const TAG_HEADER_LEN: usize = 11;

/// The type of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagType {
    Audio,
    Video,
    /// Script data (AMF0 `onMetaData`), left to the caller to decode.
    Script,
    Other(u8),
}

impl TagType {
    pub fn from_u8(v: u8) -> Self {
        match v {
            8 => TagType::Audio,
            9 => TagType::Video,
            18 => TagType::Script,
            n => TagType::Other(n),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::Script => 18,
            TagType::Other(n) => n,
        }
    }
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub tag_type: TagType,
    /// Milliseconds (Timestamp + TimestampExtended).
    pub timestamp: u32,
    pub body: Bytes,
}

/// The fields of the FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

#[derive(Debug)]
enum State {
    Header,
    /// Discard this many bytes (rest of an oversized header and PreviousTagSize0).
    Skip(usize),
    Tag,
    PreviousTagSize {
        expected: u32,
    },
}

/// Push parser of FLV files (see the module docs).
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    header: Option<FlvHeader>,
    max_tag_size: usize,
    failed: Option<FlvError>,
    prev_size_mismatches: u64,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    pub fn new() -> Self {
        Self::with_max_tag_size(DEFAULT_MAX_TAG_SIZE)
    }

    /// A reader refusing tags whose DataSize exceeds `max_tag_size`.
    pub fn with_max_tag_size(max_tag_size: usize) -> Self {
        FlvReader {
            buf: BytesMut::new(),
            state: State::Header,
            header: None,
            max_tag_size,
            failed: None,
            prev_size_mismatches: 0,
        }
    }

    /// Appends input bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The file header, once read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// PreviousTagSize fields that did not match the tag before them. Tolerated (some
    /// writers get them wrong) but counted.
    pub fn previous_tag_size_mismatches(&self) -> u64 {
        self.prev_size_mismatches
    }

    /// The next complete tag, `Ok(None)` if more input is needed. After an error the
    /// reader cannot resynchronise and returns the same error again.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.advance();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn advance(&mut self) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match self.state {
                State::Header => {
                    if self.buf.len() < 9 {
                        return Ok(None);
                    }
                    let h = &self.buf[..9];
                    if &h[..3] != b"FLV" {
                        return Err(FlvError::BadSignature([h[0], h[1], h[2]]));
                    }
                    if h[3] != 1 {
                        return Err(FlvError::UnsupportedVersion(h[3]));
                    }
                    let size = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                    if !(9..=MAX_HEADER_SIZE).contains(&size) {
                        return Err(FlvError::HeaderSize {
                            size,
                            limit: MAX_HEADER_SIZE,
                        });
                    }
                    self.header = Some(FlvHeader {
                        version: h[3],
                        has_audio: h[4] & 0x04 != 0,
                        has_video: h[4] & 0x01 != 0,
                    });
                    self.buf.advance(9);
                    // the rest of the header, then PreviousTagSize0
                    self.state = State::Skip(size as usize - 9 + 4);
                }
                State::Skip(n) => {
                    let k = n.min(self.buf.len());
                    self.buf.advance(k);
                    if k < n {
                        self.state = State::Skip(n - k);
                        return Ok(None);
                    }
                    self.state = State::Tag;
                }
                State::Tag => {
                    if self.buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let h = &self.buf[..TAG_HEADER_LEN];
                    if h[0] & 0x20 != 0 {
                        return Err(FlvError::Encrypted);
                    }
                    let tag_type = TagType::from_u8(h[0] & 0x1F);
                    let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge {
                            size,
                            limit: self.max_tag_size,
                        });
                    }
                    let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                    if self.buf.len() < TAG_HEADER_LEN + size {
                        return Ok(None);
                    }
                    self.buf.advance(TAG_HEADER_LEN);
                    let body = self.buf.split_to(size).freeze();
                    self.state = State::PreviousTagSize {
                        expected: (TAG_HEADER_LEN + size) as u32,
                    };
                    return Ok(Some(FlvTag {
                        tag_type,
                        timestamp,
                        body,
                    }));
                }
                State::PreviousTagSize { expected } => {
                    if self.buf.len() < 4 {
                        return Ok(None);
                    }
                    if self.buf.get_u32() != expected {
                        self.prev_size_mismatches += 1;
                    }
                    self.state = State::Tag;
                }
            }
        }
    }
}

/// Writes an FLV file into a buffer: header first, then tags with their PreviousTagSize.
#[derive(Debug)]
pub struct FlvWriter {
    out: BytesMut,
}

impl FlvWriter {
    /// Starts a file whose header announces audio and/or video.
    pub fn new(has_audio: bool, has_video: bool) -> Self {
        let mut out = BytesMut::with_capacity(13);
        out.put_slice(b"FLV");
        out.put_u8(1);
        out.put_u8((u8::from(has_audio) << 2) | u8::from(has_video));
        out.put_u32(9);
        out.put_u32(0); // PreviousTagSize0
        FlvWriter { out }
    }

    /// Appends one tag. Bodies over 16 MiB - 1 cannot be expressed in FLV.
    pub fn write_tag(
        &mut self,
        tag_type: TagType,
        timestamp: u32,
        body: &[u8],
    ) -> Result<(), FlvError> {
        if body.len() > 0xFF_FFFF {
            return Err(FlvError::TagTooLarge {
                size: body.len(),
                limit: 0xFF_FFFF,
            });
        }
        let ts = timestamp.to_be_bytes();
        self.out.put_u8(tag_type.to_u8() & 0x1F);
        self.out.put_uint(body.len() as u64, 3);
        self.out.put_slice(&[ts[1], ts[2], ts[3], ts[0]]);
        self.out.put_uint(0, 3); // StreamID
        self.out.put_slice(body);
        self.out.put_u32((TAG_HEADER_LEN + body.len()) as u32);
        Ok(())
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Bytes, Vec<FlvTag>) {
        let tags = vec![
            FlvTag {
                tag_type: TagType::Script,
                timestamp: 0,
                body: Bytes::from_static(b"\x02\x00\x0aonMetaData"),
            },
            FlvTag {
                tag_type: TagType::Video,
                timestamp: 0x1234_5678,
                body: Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]),
            },
            FlvTag {
                tag_type: TagType::Audio,
                timestamp: 40,
                body: Bytes::new(),
            },
        ];
        let mut w = FlvWriter::new(true, true);
        for t in &tags {
            w.write_tag(t.tag_type, t.timestamp, &t.body).unwrap();
        }
        (w.take(), tags)
    }

    #[test]
    fn round_trip_in_any_fragmentation() {
        let (file, tags) = sample();
        assert_eq!(&file[..13], b"FLV\x01\x05\0\0\0\x09\0\0\0\0");
        for chunk in [1, 2, 7, 11, 1000] {
            let mut r = FlvReader::new();
            let mut got = Vec::new();
            for c in file.chunks(chunk) {
                r.push(c);
                while let Some(t) = r.next_tag().unwrap() {
                    got.push(t);
                }
            }
            assert_eq!(got, tags, "chunk size {chunk}");
            assert_eq!(
                r.header(),
                Some(FlvHeader {
                    version: 1,
                    has_audio: true,
                    has_video: true
                })
            );
            assert_eq!(r.previous_tag_size_mismatches(), 0);
        }
    }

    #[test]
    fn tag_size_cap_is_checked_before_buffering() {
        let mut r = FlvReader::with_max_tag_size(1000);
        r.push(b"FLV\x01\x01\0\0\0\x09\0\0\0\0");
        r.push(&[9, 0x00, 0x03, 0xE9, 0, 0, 0, 0, 0, 0, 0]); // 1001 bytes announced
        assert_eq!(
            r.next_tag().unwrap_err().to_string(),
            "FLV tag size 1001 exceeds the limit of 1000"
        );
        assert!(r.next_tag().is_err());
        let mut r = FlvReader::new();
        r.push(b"FLV\x01\x01\0\0\0\x09\0\0\0\0");
        r.push(&[9, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0]);
        // the largest DataSize fits the default cap: the reader waits, allocating nothing
        assert_eq!(r.next_tag(), Ok(None));
        assert!(r.buf.capacity() < 1 << 16);
    }

    #[test]
    fn bad_headers() {
        let mut r = FlvReader::new();
        r.push(b"FLX\x01\x01\0\0\0\x09");
        assert!(matches!(r.next_tag(), Err(FlvError::BadSignature(_))));
        let mut r = FlvReader::new();
        r.push(b"FLV\x02\x01\0\0\0\x09");
        assert_eq!(r.next_tag(), Err(FlvError::UnsupportedVersion(2)));
        let mut r = FlvReader::new();
        r.push(b"FLV\x01\x01\xff\xff\xff\xff");
        assert!(matches!(r.next_tag(), Err(FlvError::HeaderSize { .. })));
        let mut r = FlvReader::new();
        r.push(b"FLV\x01\x01\0\0\0\x09\0\0\0\0");
        r.push(&[0x29, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.next_tag(), Err(FlvError::Encrypted));
        // a longer header is skipped, a wrong PreviousTagSize is tolerated and counted
        let mut r = FlvReader::new();
        r.push(b"FLV\x01\x01\0\0\0\x0bXY\0\0\0\0");
        r.push(&[9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x42, 0, 0, 0, 99]);
        assert_eq!(
            r.next_tag().unwrap().unwrap().body,
            Bytes::from_static(&[0x42])
        );
        assert_eq!(r.next_tag().unwrap(), None);
        assert_eq!(r.previous_tag_size_mismatches(), 1);
    }
}
