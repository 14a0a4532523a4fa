//! Transport packets (ISO/IEC 13818-1 §2.4.3.2): the 4-byte header, the adaptation
//! field, the payload; parsing one 188-byte packet and writing one.
//!
//! Nothing here keeps state: continuity and reassembly live in the demuxer.

use crate::MpegTsError;

/// Size of a transport packet (no 192/204-byte variants: SRT and UDP carry 188).
pub const PACKET_SIZE: usize = 188;
/// The `sync_byte`.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of null packets (padding; never carries data).
pub const NULL_PID: u16 = 0x1FFF;

/// The fields of an adaptation field that this crate uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptationField {
    /// `discontinuity_indicator`: a continuity_counter or time base discontinuity is expected.
    pub discontinuity_indicator: bool,
    /// `random_access_indicator`: the next PES starts a random access point.
    pub random_access_indicator: bool,
    /// The PCR in 27 MHz units (`program_clock_reference_base × 300 + extension`).
    pub pcr: Option<u64>,
}

/// One parsed transport packet, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub transport_error_indicator: bool,
    pub payload_unit_start_indicator: bool,
    pub pid: u16,
    /// `transport_scrambling_control` (non-zero: scrambled, unusable here).
    pub transport_scrambling_control: u8,
    pub continuity_counter: u8,
    pub adaptation_field: Option<AdaptationField>,
    /// The payload, if `adaptation_field_control` says there is one (may be empty).
    pub payload: Option<&'a [u8]>,
}

impl<'a> Packet<'a> {
    /// Parses one packet; `data` must be exactly [`PACKET_SIZE`] bytes starting with the
    /// sync byte (the demuxer guarantees both).
    pub fn parse(data: &'a [u8; PACKET_SIZE]) -> Result<Self, MpegTsError> {
        let pid = (u16::from(data[1] & 0x1F) << 8) | u16::from(data[2]);
        let adaptation_field_control = (data[3] >> 4) & 3;
        let mut packet = Packet {
            transport_error_indicator: data[1] & 0x80 != 0,
            payload_unit_start_indicator: data[1] & 0x40 != 0,
            pid,
            transport_scrambling_control: data[3] >> 6,
            continuity_counter: data[3] & 0x0F,
            adaptation_field: None,
            payload: None,
        };
        let mut pos = 4;
        if adaptation_field_control & 2 != 0 {
            let length = data[4];
            let end = 5 + usize::from(length);
            // With a payload following, the field may fill at most 183 bytes; alone, 183 exactly.
            if end > PACKET_SIZE {
                return Err(MpegTsError::AdaptationField { pid, length });
            }
            packet.adaptation_field = Some(parse_adaptation_field(&data[5..end]));
            pos = end;
        }
        if adaptation_field_control & 1 != 0 {
            packet.payload = Some(&data[pos..]);
        }
        Ok(packet)
    }

    /// Whether the continuity_counter of this packet counts (13818-1 §2.4.3.3: it does
    /// not increment on packets without payload).
    pub fn has_payload(&self) -> bool {
        self.payload.is_some()
    }
}

fn parse_adaptation_field(field: &[u8]) -> AdaptationField {
    let Some((&flags, rest)) = field.split_first() else {
        return AdaptationField::default();
    };
    let pcr = if flags & 0x10 != 0 {
        rest.get(..6).map(|b| {
            let base = (u64::from(b[0]) << 25)
                | (u64::from(b[1]) << 17)
                | (u64::from(b[2]) << 9)
                | (u64::from(b[3]) << 1)
                | u64::from(b[4] >> 7);
            let ext = (u64::from(b[4] & 1) << 8) | u64::from(b[5]);
            base * 300 + ext
        })
    } else {
        None
    };
    AdaptationField {
        discontinuity_indicator: flags & 0x80 != 0,
        random_access_indicator: flags & 0x40 != 0,
        pcr,
    }
}

/// What to put in one packet the muxer writes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PacketHeader {
    pub pid: u16,
    pub payload_unit_start_indicator: bool,
    pub continuity_counter: u8,
    pub random_access_indicator: bool,
    /// PCR in 27 MHz units.
    pub pcr: Option<u64>,
}

/// Writes one packet carrying as much of `payload` as fits, stuffing the adaptation field
/// when less than a full payload remains; returns how many payload bytes it took.
pub(crate) fn write_packet(out: &mut Vec<u8>, h: &PacketHeader, payload: &[u8]) -> usize {
    let start = out.len();
    let needs_field = h.pcr.is_some() || h.random_access_indicator;
    // adaptation field without stuffing: length byte + flags + PCR
    let mut field_len = if needs_field {
        2 + if h.pcr.is_some() { 6 } else { 0 }
    } else {
        0
    };
    let room = PACKET_SIZE - 4 - field_len;
    let take = payload.len().min(room);
    if take < room {
        // Stuff: an adaptation field of exactly the missing size (1 byte = length 0).
        field_len = PACKET_SIZE - 4 - take;
    }
    out.push(SYNC_BYTE);
    out.push((u8::from(h.payload_unit_start_indicator) << 6) | ((h.pid >> 8) as u8 & 0x1F));
    out.push(h.pid as u8);
    let afc = if field_len > 0 { 0x30 } else { 0x10 };
    out.push(afc | (h.continuity_counter & 0x0F));
    if field_len > 0 {
        out.push((field_len - 1) as u8);
        if field_len > 1 {
            let mut flags = 0;
            if h.random_access_indicator {
                flags |= 0x40;
            }
            if h.pcr.is_some() {
                flags |= 0x10;
            }
            out.push(flags);
            if let Some(pcr) = h.pcr {
                let base = (pcr / 300) & ((1 << 33) - 1);
                let ext = pcr % 300;
                out.push((base >> 25) as u8);
                out.push((base >> 17) as u8);
                out.push((base >> 9) as u8);
                out.push((base >> 1) as u8);
                out.push((((base & 1) as u8) << 7) | 0x7E | ((ext >> 8) as u8 & 1));
                out.push(ext as u8);
            }
        }
        out.resize(start + 4 + field_len, 0xFF);
    }
    out.extend_from_slice(&payload[..take]);
    debug_assert_eq!(out.len() - start, PACKET_SIZE);
    take
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(out: &[u8]) -> &[u8; PACKET_SIZE] {
        out.try_into().expect("one packet")
    }

    #[test]
    fn write_then_parse() {
        for len in [0usize, 1, 2, 7, 8, 175, 176, 183, 184, 500] {
            for pcr in [None, Some(27_000_000u64 * 3 + 17)] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = Vec::new();
                let h = PacketHeader {
                    pid: 0x101,
                    payload_unit_start_indicator: true,
                    continuity_counter: 9,
                    random_access_indicator: pcr.is_some(),
                    pcr,
                };
                let took = write_packet(&mut out, &h, &payload);
                let p = Packet::parse(one(&out)).unwrap();
                assert_eq!(took, p.payload.unwrap().len());
                assert_eq!(p.payload.unwrap(), &payload[..took]);
                assert_eq!((p.pid, p.continuity_counter), (0x101, 9));
                assert!(p.payload_unit_start_indicator);
                assert_eq!(p.adaptation_field.and_then(|a| a.pcr), pcr);
                if pcr.is_some() {
                    assert!(p.adaptation_field.unwrap().random_access_indicator);
                }
            }
        }
    }

    #[test]
    fn adaptation_field_too_long_is_an_error() {
        let mut p = [0u8; PACKET_SIZE];
        p[0] = SYNC_BYTE;
        p[3] = 0x30;
        p[4] = 184;
        assert!(matches!(
            Packet::parse(&p),
            Err(MpegTsError::AdaptationField { length: 184, .. })
        ));
        p[4] = 183;
        assert_eq!(Packet::parse(&p).unwrap().payload, Some(&[][..]));
    }
}
