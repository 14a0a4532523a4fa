//! The RTMP simple handshake (C0 C1 C2 / S0 S1 S2, version 3).
//!
//! Both sides are push parsers over an input buffer the session owns; they consume
//! exactly the handshake bytes and leave whatever follows (the first chunks) in place.
//!
//! Clients that send the Flash Player 9 "digest" style C1 (non-zero bytes 4..8) are
//! answered with the plain echo scheme: S1 has zero in its version field, which tells
//! the client not to look for a digest (ffmpeg checks S1 byte 4 before validating, and
//! librtmp/OBS only warn on a mismatch), and S2 echoes C1 byte for byte.
//!
//! The random part of S1/C1 comes from a caller-provided seed: this module reads no
//! clock and no entropy source.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::RtmpError;

/// The only RTMP version there is.
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// splitmix64: a tiny, well-distributed generator for handshake filler bytes. Not
/// cryptographic; the simple handshake has no security properties to protect.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// C1 or S1: time (4 bytes, 0), zero (4 bytes), 1528 random bytes.
fn packet1(seed: u64, out: &mut BytesMut) {
    let mut rng = SplitMix64::new(seed);
    out.put_u32(0);
    out.put_u32(0);
    for _ in 0..(HANDSHAKE_SIZE - 8) / 8 {
        out.put_u64(rng.next_u64());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// Server side: waits for C0+C1, answers S0+S1+S2, then waits for C2.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    seed: u64,
}

impl ServerHandshake {
    pub fn new(seed: u64) -> Self {
        Self {
            state: ServerState::AwaitC0C1,
            seed,
        }
    }

    /// True once C2 has been consumed; later bytes are chunks.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// Consumes handshake bytes from the front of `input`. Returns the bytes to send
    /// (S0+S1+S2) when C0+C1 is complete. The version byte is checked as soon as it
    /// arrives, so a non-RTMP peer is refused after one byte.
    pub fn handle(&mut self, input: &mut BytesMut) -> Result<Option<Bytes>, RtmpError> {
        let mut reply = None;
        if self.state == ServerState::AwaitC0C1 {
            match input.first() {
                None => return Ok(None),
                Some(&v) if v != RTMP_VERSION => return Err(RtmpError::BadVersion(v)),
                Some(_) => {}
            }
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(None);
            }
            input.advance(1);
            let c1 = input.split_to(HANDSHAKE_SIZE);
            let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE);
            out.put_u8(RTMP_VERSION);
            packet1(self.seed, &mut out);
            out.put_slice(&c1);
            reply = Some(out.freeze());
            self.state = ServerState::AwaitC2;
        }
        if self.state == ServerState::AwaitC2 && input.len() >= HANDSHAKE_SIZE {
            // C2 should echo S1, but clients differ in how faithfully; nothing depends
            // on it, so it is not checked.
            input.advance(HANDSHAKE_SIZE);
            self.state = ServerState::Done;
        }
        Ok(reply)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    AwaitS0S1,
    AwaitS2,
    Done,
}

/// Client side: C0+C1 up front, C2 (echo of S1) once S0+S1 arrive, then waits for S2.
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
}

impl ClientHandshake {
    /// Returns the handshake and C0+C1 to send right away.
    pub fn new(seed: u64) -> (Self, Bytes) {
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        packet1(seed, &mut out);
        (
            Self {
                state: ClientState::AwaitS0S1,
            },
            out.freeze(),
        )
    }

    /// True once S2 has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// True once C2 has been produced (S0+S1 received): the client may send chunks.
    pub fn may_send(&self) -> bool {
        self.state != ClientState::AwaitS0S1
    }

    /// Consumes handshake bytes; returns C2 when S0+S1 are complete.
    pub fn handle(&mut self, input: &mut BytesMut) -> Result<Option<Bytes>, RtmpError> {
        let mut reply = None;
        if self.state == ClientState::AwaitS0S1 {
            match input.first() {
                None => return Ok(None),
                Some(&v) if v != RTMP_VERSION => return Err(RtmpError::BadVersion(v)),
                Some(_) => {}
            }
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(None);
            }
            input.advance(1);
            reply = Some(input.split_to(HANDSHAKE_SIZE).freeze());
            self.state = ClientState::AwaitS2;
        }
        if self.state == ClientState::AwaitS2 && input.len() >= HANDSHAKE_SIZE {
            input.advance(HANDSHAKE_SIZE);
            self.state = ClientState::Done;
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_s0_s1_s2_echoing_c1() {
        let mut c1 = vec![0u8; HANDSHAKE_SIZE];
        // Flash Player 9 style C1: non-zero version field.
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = i as u8;
        }
        let mut hs = ServerHandshake::new(7);
        let mut input = BytesMut::new();
        input.put_u8(3);
        input.put_slice(&c1);
        input.put_slice(&[0xAA; HANDSHAKE_SIZE]); // C2
        input.put_slice(&[0x02, 0x00]); // first chunk bytes stay
        let reply = hs.handle(&mut input).unwrap().unwrap();
        assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(reply[0], 3);
        assert_eq!(&reply[1..9], &[0; 8], "S1 time and zero fields");
        assert_eq!(&reply[1 + HANDSHAKE_SIZE..], &c1[..], "S2 echoes C1");
        assert!(hs.is_done());
        assert_eq!(&input[..], &[0x02, 0x00]);
    }

    #[test]
    fn server_s1_depends_on_seed_only() {
        let run = |seed| {
            let mut hs = ServerHandshake::new(seed);
            let mut input = BytesMut::from(&[3u8; 1 + HANDSHAKE_SIZE][..]);
            hs.handle(&mut input).unwrap().unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn bad_version_is_refused_on_the_first_byte() {
        let mut hs = ServerHandshake::new(0);
        let mut input = BytesMut::from(&b"G"[..]);
        assert_eq!(hs.handle(&mut input), Err(RtmpError::BadVersion(b'G')));
        let (mut client, _) = ClientHandshake::new(0);
        let mut input = BytesMut::from(&[6u8][..]);
        assert_eq!(client.handle(&mut input), Err(RtmpError::BadVersion(6)));
    }

    #[test]
    fn client_and_server_complete_byte_by_byte() {
        let (mut client, c0c1) = ClientHandshake::new(11);
        let mut server = ServerHandshake::new(12);
        let mut s_in = BytesMut::new();
        let mut s_out = None;
        for b in c0c1.iter() {
            s_in.put_u8(*b);
            if let Some(r) = server.handle(&mut s_in).unwrap() {
                s_out = Some(r);
            }
        }
        let s0s1s2 = s_out.unwrap();
        assert_eq!(&s0s1s2[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        let mut c_in = BytesMut::new();
        let mut c2 = None;
        for b in s0s1s2.iter() {
            c_in.put_u8(*b);
            if let Some(r) = client.handle(&mut c_in).unwrap() {
                c2 = Some(r);
            }
        }
        assert!(client.is_done());
        let c2 = c2.unwrap();
        assert_eq!(&c2[..], &s0s1s2[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
        s_in.put_slice(&c2);
        assert!(server.handle(&mut s_in).unwrap().is_none());
        assert!(server.is_done());
        assert!(s_in.is_empty());
    }
}
