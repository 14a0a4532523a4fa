//! The peers' binary protocol on a WebRTC data channel (reliable, ordered): one frame per
//! data-channel message, big-endian, a type byte first.
//!
//! | type | frame | body |
//! |---|---|---|
//! | 1 | HAVE | piece (session u64, msn u64, part u16; part 0xFFFF = the whole segment) |
//! | 2 | WANT | request u32, piece |
//! | 3 | CANCEL | request u32 |
//! | 4 | DATA | request u32, offset u32, total u32, 1..=[`CHUNK`] bytes |
//! | 5 | NONE | request u32 (not held, or choked: ask the edge) |
//! | 6 | CHOKE | - (no more WANTs served until UNCHOKE) |
//! | 7 | UNCHOKE | - |
//!
//! A piece travels as DATA chunks of at most [`CHUNK`] bytes (what every browser's data
//! channel carries in one message), in order; the sender stops when the channel's buffer
//! is over its mark (backpressure) and resumes on the low-water event. [`Transfers`] puts
//! the chunks back together for the requests this side made, refusing what it did not
//! ask for, what does not continue where the last chunk ended, and anything over
//! [`MAX_PIECE`]: a peer cannot make a viewer hold more than it asked for.

use std::collections::HashMap;

use bytes::{BufMut as _, Bytes, BytesMut};

/// Largest DATA payload.
pub const CHUNK: usize = 16 * 1024;
/// Largest piece a transfer may announce (a 6 s segment at 10 Mbit/s is 7.5 MB).
pub const MAX_PIECE: u32 = 16 * 1024 * 1024;
/// Requests a side may have outstanding with one peer.
pub const MAX_REQUESTS: usize = 16;
/// `part` of a whole segment.
pub const WHOLE: u16 = u16::MAX;

/// A segment or part of the swarm's rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceId {
    pub session: u64,
    pub msn: u64,
    pub part: u16,
}

impl PieceId {
    /// Its URI relative to the rendition's directory (as in the playlist and the piece
    /// list).
    pub fn uri(&self) -> String {
        // The session as the origin names it: 16 lower-case hex digits.
        if self.part == WHOLE {
            format!("{:016x}/{}.m4s", self.session, self.msn)
        } else {
            format!("{:016x}/{}.{}.m4s", self.session, self.msn, self.part)
        }
    }

    /// The piece a URI names (`SESSION/MSN.m4s`, `SESSION/MSN.PART.m4s`, the session in
    /// 16 hex digits).
    pub fn from_uri(uri: &str) -> Option<Self> {
        let (session, file) = uri.split_once('/')?;
        let stem = file.strip_suffix(".m4s")?;
        let (msn, part) = match stem.split_once('.') {
            Some((m, p)) => (m, digits(p)?.parse().ok().filter(|&p| p != WHOLE)?),
            None => (stem, WHOLE),
        };
        let hex = session.len() == 16
            && session
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        Some(Self {
            session: u64::from_str_radix(hex.then_some(session)?, 16).ok()?,
            msn: digits(msn)?.parse().ok()?,
            part,
        })
    }
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Have(PieceId),
    Want {
        req: u32,
        piece: PieceId,
    },
    Cancel {
        req: u32,
    },
    Data {
        req: u32,
        offset: u32,
        total: u32,
        bytes: Bytes,
    },
    None {
        req: u32,
    },
    Choke,
    Unchoke,
}

/// Why a frame or a transfer was refused: each names what the peer got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty frame")]
    Empty,
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("{frame} frame of {len} bytes, expected {expected}")]
    Length {
        frame: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("DATA for request {0}, which was not made (or was cancelled)")]
    Unsolicited(u32),
    #[error("DATA at offset {got} of request {req}, expected {want}")]
    OutOfOrder { req: u32, got: u32, want: u32 },
    #[error("DATA announces {total} bytes, over the limit of {MAX_PIECE}")]
    TooLarge { total: u32 },
    #[error("DATA of request {req} changes its total from {was} to {now}")]
    TotalChanged { req: u32, was: u32, now: u32 },
    #[error("DATA of request {req} runs past its total of {total}")]
    Overrun { req: u32, total: u32 },
    #[error("request {0} is already outstanding")]
    DuplicateRequest(u32),
    #[error("{MAX_REQUESTS} requests are outstanding with this peer already")]
    TooManyRequests,
}

impl Frame {
    /// Reads one frame (the whole data-channel message).
    pub fn decode(msg: &Bytes) -> Result<Self, WireError> {
        let (&kind, body) = msg.split_first().ok_or(WireError::Empty)?;
        let exact = |frame: &'static str, n: usize, expected: &'static str| {
            if body.len() == n {
                Ok(())
            } else {
                Err(WireError::Length {
                    frame,
                    len: body.len(),
                    expected,
                })
            }
        };
        let u32_at =
            |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let piece_at = |i: usize| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&body[i..i + 8]);
            let mut m = [0u8; 8];
            m.copy_from_slice(&body[i + 8..i + 16]);
            PieceId {
                session: u64::from_be_bytes(s),
                msn: u64::from_be_bytes(m),
                part: u16::from_be_bytes([body[i + 16], body[i + 17]]),
            }
        };
        Ok(match kind {
            1 => {
                exact("HAVE", 18, "18")?;
                Frame::Have(piece_at(0))
            }
            2 => {
                exact("WANT", 22, "22")?;
                Frame::Want {
                    req: u32_at(0),
                    piece: piece_at(4),
                }
            }
            3 => {
                exact("CANCEL", 4, "4")?;
                Frame::Cancel { req: u32_at(0) }
            }
            4 => {
                if body.len() <= 12 || body.len() > 12 + CHUNK {
                    return Err(WireError::Length {
                        frame: "DATA",
                        len: body.len(),
                        expected: "13..=16396",
                    });
                }
                Frame::Data {
                    req: u32_at(0),
                    offset: u32_at(4),
                    total: u32_at(8),
                    bytes: msg.slice(13..),
                }
            }
            5 => {
                exact("NONE", 4, "4")?;
                Frame::None { req: u32_at(0) }
            }
            6 => {
                exact("CHOKE", 0, "0")?;
                Frame::Choke
            }
            7 => {
                exact("UNCHOKE", 0, "0")?;
                Frame::Unchoke
            }
            k => return Err(WireError::UnknownType(k)),
        })
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(match self {
            Frame::Data { bytes, .. } => 13 + bytes.len(),
            _ => 23,
        });
        let piece = |b: &mut BytesMut, p: &PieceId| {
            b.put_u64(p.session);
            b.put_u64(p.msn);
            b.put_u16(p.part);
        };
        match self {
            Frame::Have(p) => {
                b.put_u8(1);
                piece(&mut b, p);
            }
            Frame::Want { req, piece: p } => {
                b.put_u8(2);
                b.put_u32(*req);
                piece(&mut b, p);
            }
            Frame::Cancel { req } => {
                b.put_u8(3);
                b.put_u32(*req);
            }
            Frame::Data {
                req,
                offset,
                total,
                bytes,
            } => {
                b.put_u8(4);
                b.put_u32(*req);
                b.put_u32(*offset);
                b.put_u32(*total);
                b.put_slice(bytes);
            }
            Frame::None { req } => {
                b.put_u8(5);
                b.put_u32(*req);
            }
            Frame::Choke => b.put_u8(6),
            Frame::Unchoke => b.put_u8(7),
        }
        b.freeze()
    }
}

/// The DATA frames that carry `data` for request `req`, in order.
pub fn chunks(req: u32, data: &Bytes) -> impl Iterator<Item = Frame> + '_ {
    let total = data.len() as u32;
    data.chunks(CHUNK)
        .enumerate()
        .map(move |(i, c)| Frame::Data {
            req,
            offset: (i * CHUNK) as u32,
            total,
            bytes: data.slice_ref(c),
        })
}

/// The requests this side made of one peer, and the pieces coming back.
#[derive(Debug, Default)]
pub struct Transfers {
    open: HashMap<u32, Transfer>,
}

#[derive(Debug)]
struct Transfer {
    piece: PieceId,
    total: Option<u32>,
    buf: BytesMut,
}

impl Transfers {
    /// Records a WANT about to be sent.
    pub fn want(&mut self, req: u32, piece: PieceId) -> Result<(), WireError> {
        if self.open.contains_key(&req) {
            return Err(WireError::DuplicateRequest(req));
        }
        if self.open.len() >= MAX_REQUESTS {
            return Err(WireError::TooManyRequests);
        }
        self.open.insert(
            req,
            Transfer {
                piece,
                total: None,
                buf: BytesMut::new(),
            },
        );
        Ok(())
    }

    /// Forgets a request (cancelled, answered NONE, or given to the edge).
    pub fn cancel(&mut self, req: u32) -> Option<PieceId> {
        self.open.remove(&req).map(|t| t.piece)
    }

    /// One DATA frame: the whole piece once its last byte came (unverified: check it
    /// against the piece list before use). An error ends the request; the caller drops
    /// the peer or asks the edge.
    pub fn data(
        &mut self,
        req: u32,
        offset: u32,
        total: u32,
        bytes: &[u8],
    ) -> Result<Option<(PieceId, Bytes)>, WireError> {
        let Some(t) = self.open.get_mut(&req) else {
            return Err(WireError::Unsolicited(req));
        };
        let fail = |e| Err(e);
        let result = if total > MAX_PIECE {
            fail(WireError::TooLarge { total })
        } else if t.total.is_some_and(|was| was != total) {
            fail(WireError::TotalChanged {
                req,
                was: t.total.unwrap_or(0),
                now: total,
            })
        } else if offset as usize != t.buf.len() {
            fail(WireError::OutOfOrder {
                req,
                got: offset,
                want: t.buf.len() as u32,
            })
        } else if offset as u64 + bytes.len() as u64 > u64::from(total) {
            fail(WireError::Overrun { req, total })
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.open.remove(&req);
            return Err(e);
        }
        if t.total.is_none() {
            // The total is bounded above; reserve it once, not per chunk.
            t.total = Some(total);
            t.buf.reserve(total as usize);
        }
        t.buf.extend_from_slice(bytes);
        if t.buf.len() as u32 == total {
            let t = self.open.remove(&req).expect("present");
            return Ok(Some((t.piece, t.buf.freeze())));
        }
        Ok(None)
    }

    /// Requests outstanding.
    pub fn outstanding(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece() -> PieceId {
        PieceId {
            session: 1_733_549_990_123_456,
            msn: 12,
            part: 3,
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Have(piece()),
            Frame::Want {
                req: 7,
                piece: piece(),
            },
            Frame::Cancel { req: 7 },
            Frame::Data {
                req: 7,
                offset: 16384,
                total: 20000,
                bytes: Bytes::from_static(b"abc"),
            },
            Frame::None { req: 9 },
            Frame::Choke,
            Frame::Unchoke,
        ];
        for f in frames {
            assert_eq!(Frame::decode(&f.encode()), Ok(f.clone()), "{f:?}");
        }
        assert_eq!(Frame::decode(&Bytes::new()), Err(WireError::Empty));
        assert_eq!(
            Frame::decode(&Bytes::from_static(&[9])),
            Err(WireError::UnknownType(9))
        );
        assert!(matches!(
            Frame::decode(&Bytes::from_static(&[1, 0, 0])),
            Err(WireError::Length { frame: "HAVE", .. })
        ));
        // DATA without payload, and over one chunk.
        assert!(Frame::decode(&Bytes::from(vec![4; 13])).is_err());
        assert!(Frame::decode(&Bytes::from(vec![4; 14 + CHUNK])).is_err());
    }

    #[test]
    fn uris_name_pieces() {
        assert_eq!(piece().uri(), "000628a78f5c97c0/12.3.m4s");
        assert_eq!(PieceId::from_uri(&piece().uri()), Some(piece()));
        let whole = PieceId {
            part: WHOLE,
            ..piece()
        };
        assert_eq!(whole.uri(), "000628a78f5c97c0/12.m4s");
        assert_eq!(PieceId::from_uri("000628a78f5c97c0/12.m4s"), Some(whole));
        let s = "000628a78f5c97c0";
        for bad in [
            "12.m4s".to_owned(),
            format!("{s}/12.65535.m4s"),
            format!("{s}/+2.m4s"),
            format!("{s}/1.2.3.m4s"),
            format!("{s}/1.mp4"),
            format!("{s}/.m4s"),
            "000627E4A2D0E6C0/1.m4s".to_owned(),
            "627e4a2d0e6c0/1.m4s".to_owned(),
        ] {
            assert_eq!(PieceId::from_uri(&bad), None, "{bad}");
        }
    }

    #[test]
    fn transfers_reassemble_only_what_was_asked_in_order() {
        let data = Bytes::from((0..40_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut t = Transfers::default();
        t.want(1, piece()).unwrap();
        let frames: Vec<Frame> = chunks(1, &data).collect();
        assert_eq!(frames.len(), 3);
        let mut got = None;
        for f in frames {
            let Frame::Data {
                req,
                offset,
                total,
                bytes,
            } = Frame::decode(&f.encode()).unwrap()
            else {
                panic!()
            };
            got = t.data(req, offset, total, &bytes).unwrap();
        }
        assert_eq!(got, Some((piece(), data.clone())));
        assert_eq!(t.outstanding(), 0);
        // A piece nobody asked for.
        assert_eq!(t.data(2, 0, 3, b"abc"), Err(WireError::Unsolicited(2)));
        // A gap, a total that changes, a chunk past the end, a huge total: each ends
        // the request.
        t.want(3, piece()).unwrap();
        t.data(3, 0, 10, b"abcd").unwrap();
        assert!(matches!(
            t.data(3, 5, 10, b"x"),
            Err(WireError::OutOfOrder { .. })
        ));
        assert_eq!(t.outstanding(), 0);
        t.want(4, piece()).unwrap();
        t.data(4, 0, 10, b"abcd").unwrap();
        assert!(matches!(
            t.data(4, 4, 11, b"x"),
            Err(WireError::TotalChanged { .. })
        ));
        t.want(5, piece()).unwrap();
        assert!(matches!(
            t.data(5, 0, 2, b"abc"),
            Err(WireError::Overrun { .. })
        ));
        t.want(6, piece()).unwrap();
        assert!(matches!(
            t.data(6, 0, u32::MAX, b"abc"),
            Err(WireError::TooLarge { .. })
        ));
        // Bounded requests.
        for r in 10..10 + MAX_REQUESTS as u32 {
            t.want(r, piece()).unwrap();
        }
        assert_eq!(t.want(99, piece()), Err(WireError::TooManyRequests));
        assert_eq!(t.want(10, piece()), Err(WireError::DuplicateRequest(10)));
        assert_eq!(t.cancel(10), Some(piece()));
    }
}
