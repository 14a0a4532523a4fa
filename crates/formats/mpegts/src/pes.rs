//! PES packets (ISO/IEC 13818-1 §2.4.3.6): the header fields this crate uses (PTS, DTS,
//! PES_packet_length), writing a header, and the 33-bit time stamp arithmetic.
//!
//! Reassembly (collecting packet payloads until the next payload_unit_start_indicator)
//! lives in the demuxer, which owns the size caps.

/// 90 kHz: the clock of PTS, DTS and the PCR base.
pub const TIMESCALE: u32 = 90_000;
/// PTS and DTS are 33-bit counters.
pub const TIMESTAMP_MODULUS: i64 = 1 << 33;

/// `stream_id` for the first video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// `stream_id` for the first MPEG audio stream.
pub const STREAM_ID_AUDIO: u8 = 0xC0;
/// `stream_id` private_stream_1 (Opus).
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;

/// The parsed start of a PES packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// `PES_packet_length`: bytes after this field; 0 = unbounded (video).
    pub pes_packet_length: u16,
    /// 33-bit PTS, if present.
    pub pts: Option<u64>,
    /// 33-bit DTS, if present.
    pub dts: Option<u64>,
    /// Offset of the payload (elementary stream data) in the PES packet.
    pub payload_offset: usize,
}

impl PesHeader {
    /// The total PES size PES_packet_length announces, if it announces one.
    pub fn declared_size(&self) -> Option<usize> {
        (self.pes_packet_length != 0).then(|| 6 + usize::from(self.pes_packet_length))
    }
}

/// Stream ids without the optional PES header (13818-1 Table 2-21's exceptions).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

/// Parses a PES header from the start of a reassembled PES packet (or of its first
/// packet's payload: the header always fits there in practice, but `Err("truncated")`
/// if not).
pub fn parse_header(data: &[u8]) -> Result<PesHeader, &'static str> {
    if data.len() < 6 {
        return Err("truncated");
    }
    if data[..3] != [0, 0, 1] {
        return Err("no packet_start_code_prefix");
    }
    let stream_id = data[3];
    let pes_packet_length = u16::from_be_bytes([data[4], data[5]]);
    let mut h = PesHeader {
        stream_id,
        pes_packet_length,
        pts: None,
        dts: None,
        payload_offset: 6,
    };
    if !has_optional_header(stream_id) {
        return Ok(h);
    }
    if data.len() < 9 {
        return Err("truncated");
    }
    if data[6] & 0xC0 != 0x80 {
        return Err("missing '10' marker bits");
    }
    let pts_dts_flags = data[7] >> 6;
    let header_data_length = usize::from(data[8]);
    let end = 9 + header_data_length;
    let fields = data.get(9..end).ok_or("truncated")?;
    match pts_dts_flags {
        0b10 => h.pts = Some(read_timestamp(fields.get(..5).ok_or("truncated PTS")?)?),
        0b11 => {
            h.pts = Some(read_timestamp(fields.get(..5).ok_or("truncated PTS")?)?);
            h.dts = Some(read_timestamp(fields.get(5..10).ok_or("truncated DTS")?)?);
        }
        0b01 => return Err("PTS_DTS_flags 01 is forbidden"),
        _ => {}
    }
    h.payload_offset = end;
    if let Some(size) = h.declared_size() {
        if size < end {
            return Err("PES_packet_length shorter than its header");
        }
    }
    Ok(h)
}

fn read_timestamp(b: &[u8]) -> Result<u64, &'static str> {
    // Marker bits are 1 in all three places; encoders get them right, and a stream with a
    // wrong marker is more likely misaligned than merely sloppy.
    if b[0] & 1 == 0 || b[2] & 1 == 0 || b[4] & 1 == 0 {
        return Err("time stamp marker_bit is 0");
    }
    Ok((u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1))
}

fn write_timestamp(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    let ts = ts & (TIMESTAMP_MODULUS as u64 - 1);
    out.push((prefix << 4) | ((ts >> 29) as u8 & 0x0E) | 1);
    out.push((ts >> 22) as u8);
    out.push(((ts >> 14) as u8 & 0xFE) | 1);
    out.push((ts >> 7) as u8);
    out.push(((ts << 1) as u8) | 1);
}

/// Writes a PES header with PTS (and DTS when it differs). `payload_len` of `None`
/// writes PES_packet_length 0 (allowed for video only); a length too large for the
/// 16-bit field also gives 0.
pub fn write_header(
    out: &mut Vec<u8>,
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: Option<usize>,
) {
    let dts = dts.filter(|&d| d != pts);
    let header_data_length = if dts.is_some() { 10 } else { 5 };
    let length = payload_len
        .map(|n| n + 3 + header_data_length)
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(0);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&length.to_be_bytes());
    // '10', no scrambling, data_alignment_indicator: each PES starts an access unit.
    out.push(0x84);
    out.push(if dts.is_some() { 0xC0 } else { 0x80 });
    out.push(header_data_length as u8);
    match dts {
        Some(d) => {
            write_timestamp(out, 0b0011, pts);
            write_timestamp(out, 0b0001, d);
        }
        None => write_timestamp(out, 0b0010, pts),
    }
}

/// Extends 33-bit time stamps to one continuous 64-bit timeline: each stamp is taken as
/// the nearest (signed, within ±2^32 ticks ≈ 13 h) step from the previous one, so a wrap
/// moves forward and small reorderings (PTS vs DTS, audio vs video) move back. One clock
/// serves every PID of the program, so tracks stay aligned across the wrap.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper {
    last: Option<(u64, i64)>,
}

impl Unwrapper {
    pub fn extend(&mut self, ts: u64) -> i64 {
        let ts = ts & (TIMESTAMP_MODULUS as u64 - 1);
        let ext = match self.last {
            None => ts as i64,
            Some((raw, ext)) => {
                let mut d = (ts as i64 - raw as i64).rem_euclid(TIMESTAMP_MODULUS);
                if d >= TIMESTAMP_MODULUS / 2 {
                    d -= TIMESTAMP_MODULUS;
                }
                ext + d
            }
        };
        self.last = Some((ts, ext));
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        for (pts, dts, len) in [
            (0u64, None, Some(100)),
            ((1 << 33) - 1, Some((1 << 33) - 3001), None),
            (123_456_789, Some(123_450_000), Some(70_000)),
        ] {
            let mut out = Vec::new();
            write_header(&mut out, STREAM_ID_VIDEO, pts, dts, len);
            let h = parse_header(&out).unwrap();
            assert_eq!((h.pts, h.dts), (Some(pts), dts));
            assert_eq!(h.payload_offset, out.len());
            match len {
                Some(n) if n < 60_000 => assert_eq!(h.declared_size(), Some(out.len() + n)),
                _ => assert_eq!(h.declared_size(), None),
            }
        }
        assert_eq!(
            parse_header(&[0, 0, 2, 0xE0, 0, 0]),
            Err("no packet_start_code_prefix")
        );
        assert_eq!(
            parse_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 20]),
            Err("truncated")
        );
    }

    #[test]
    fn unwrap_across_33_bits() {
        let m = TIMESTAMP_MODULUS;
        let mut u = Unwrapper::default();
        assert_eq!(u.extend((m - 3000) as u64), m - 3000);
        assert_eq!(u.extend(0), m);
        assert_eq!(u.extend(3000), m + 3000);
        assert_eq!(u.extend((m - 1500) as u64), m - 1500); // back across the wrap (B-frame)
        assert_eq!(u.extend(6000), m + 6000);
        // a second wrap keeps going
        let mut u = Unwrapper::default();
        let mut t = 0i64;
        for _ in 0..5 {
            t += m / 3;
            assert_eq!(u.extend(t.rem_euclid(m) as u64), t);
        }
    }
}
