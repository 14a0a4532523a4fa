//! Program-specific information (ISO/IEC 13818-1 §2.4.4): reassembling sections from
//! packet payloads (pointer_field, sections spanning packets), the CRC_32, and the two
//! tables a single-program stream needs, PAT and PMT, read and written.
//!
//! A section buffer never grows past the largest legal section (1024 bytes), whatever
//! section_length claims.

use crate::MpegTsError;

/// `table_id` of a program_association_section.
pub const TABLE_PAT: u8 = 0x00;
/// `table_id` of a TS_program_map_section.
pub const TABLE_PMT: u8 = 0x02;
/// PAT and PMT sections are at most 1024 bytes (section_length ≤ 1021, §2.4.4.4).
const MAX_SECTION: usize = 1024;

/// `stream_type` values this crate maps (13818-1 Table 2-34 and its amendments).
pub mod stream_type {
    /// ADTS AAC (ISO/IEC 13818-7).
    pub const AAC_ADTS: u8 = 0x0F;
    /// LATM/LOAS AAC (ISO/IEC 14496-3); recognised, not decoded yet.
    pub const AAC_LATM: u8 = 0x11;
    /// H.264 (AVC).
    pub const H264: u8 = 0x1B;
    /// H.265 (HEVC).
    pub const H265: u8 = 0x24;
    /// PES private data: Opus when a registration_descriptor says `Opus`.
    pub const PRIVATE_PES: u8 = 0x06;
}

/// The MPEG-2 CRC-32 (§2.4.4, Annex A): polynomial 0x04C11DB7, initial value all ones,
/// no reflection, no final xor. A section including its CRC_32 field sums to 0.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Collects sections of one PID from packet payloads.
#[derive(Debug, Default)]
pub(crate) struct SectionAssembler {
    buf: Vec<u8>,
    /// A section is in progress (we saw its start).
    active: bool,
}

impl SectionAssembler {
    /// Drops the section in progress (after lost packets).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet payload; returns the complete sections it finished (raw bytes,
    /// CRC not yet checked) or an error for a section_length past the legal maximum.
    pub fn push(
        &mut self,
        payload: &[u8],
        unit_start: bool,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), &'static str> {
        let mut data = payload;
        if unit_start {
            let Some((&pointer, rest)) = data.split_first() else {
                return Err("empty payload with payload_unit_start_indicator");
            };
            let pointer = usize::from(pointer);
            if pointer > rest.len() {
                self.reset();
                return Err("pointer_field past the packet");
            }
            if self.active {
                self.append(&rest[..pointer], out)?;
            }
            self.reset();
            self.active = true;
            data = &rest[pointer..];
        } else if !self.active {
            return Ok(());
        }
        self.append(data, out)
    }

    fn append(&mut self, mut data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), &'static str> {
        while !data.is_empty() && self.active {
            // 0xFF in place of a table_id: stuffing until the end of the packet.
            if self.buf.is_empty() && data[0] == 0xFF {
                self.active = false;
                return Ok(());
            }
            let need = if self.buf.len() < 3 {
                3
            } else {
                3 + (usize::from(self.buf[1] & 0x0F) << 8 | usize::from(self.buf[2]))
            };
            if need > MAX_SECTION {
                self.reset();
                return Err("section_length exceeds 1021");
            }
            let take = (need - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            // `need` was 3 while the length bytes were missing, so compare with the length
            // the buffer now declares. A section_length of 0 gives a 3-byte section: it must
            // still go out (and be rejected by the parser), or this loop would spin on it.
            if let [_, hi, lo, ..] = self.buf[..] {
                let full = 3 + (usize::from(hi & 0x0F) << 8 | usize::from(lo));
                if self.buf.len() == full {
                    out.push(std::mem::take(&mut self.buf));
                }
            }
        }
        Ok(())
    }
}

/// Checks the common header and CRC of a long-form section; returns
/// (table_id_extension, version_number, current_next_indicator, body without CRC).
fn long_section<'a>(
    pid: u16,
    table: &'static str,
    table_id: u8,
    s: &'a [u8],
) -> Result<(u16, u8, bool, &'a [u8]), MpegTsError> {
    let err = |reason| MpegTsError::Section { pid, table, reason };
    if s.len() < 12 {
        return Err(err("shorter than its fixed fields"));
    }
    if s[0] != table_id {
        return Err(err("unexpected table_id"));
    }
    if s[1] & 0x80 == 0 {
        return Err(err("section_syntax_indicator is 0"));
    }
    if crc32(s) != 0 {
        return Err(err("CRC_32 mismatch"));
    }
    let extension = u16::from_be_bytes([s[3], s[4]]);
    let version = (s[5] >> 1) & 0x1F;
    let current = s[5] & 1 != 0;
    Ok((extension, version, current, &s[8..s.len() - 4]))
}

/// The first program of a PAT (a stream with several programs is not a contribution feed;
/// the others are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version_number: u8,
    pub program_number: u16,
    pub program_map_pid: u16,
    /// How many further programs were listed and ignored.
    pub ignored_programs: usize,
}

/// Parses a PAT section; `Ok(None)` for a PAT that is not current or lists no program.
pub fn parse_pat(section: &[u8]) -> Result<Option<Pat>, MpegTsError> {
    let (transport_stream_id, version_number, current, body) =
        long_section(0, "PAT", TABLE_PAT, section)?;
    if !current {
        return Ok(None);
    }
    let mut first = None;
    let mut ignored_programs = 0;
    for entry in body.chunks_exact(4) {
        let program_number = u16::from_be_bytes([entry[0], entry[1]]);
        let pid = u16::from_be_bytes([entry[2] & 0x1F, entry[3]]);
        // program_number 0 names the network PID, not a program.
        if program_number == 0 {
            continue;
        }
        if first.is_none() {
            first = Some((program_number, pid));
        } else {
            ignored_programs += 1;
        }
    }
    Ok(first.map(|(program_number, program_map_pid)| Pat {
        transport_stream_id,
        version_number,
        program_number,
        program_map_pid,
        ignored_programs,
    }))
}

/// One elementary stream entry of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub elementary_pid: u16,
    /// The raw descriptors of the ES_info loop.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    /// The format_identifier of a registration_descriptor (tag 5), if any.
    pub fn registration(&self) -> Option<[u8; 4]> {
        descriptors(&self.descriptors)
            .find(|(tag, body)| *tag == 5 && body.len() >= 4)
            .and_then(|(_, body)| body.get(..4)?.try_into().ok())
    }

    /// The channel_config_code of a DVB Opus extension descriptor (tag 0x7F, extension 0x80).
    pub fn opus_channel_config(&self) -> Option<u8> {
        descriptors(&self.descriptors)
            .find(|(tag, body)| *tag == 0x7F && body.first() == Some(&0x80))
            .and_then(|(_, body)| body.get(1).copied())
    }
}

/// Iterates (descriptor_tag, body) over a descriptor loop; stops at a truncated one.
pub fn descriptors(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let body = rest.get(..usize::from(len))?;
        data = &rest[usize::from(len)..];
        Some((tag, body))
    })
}

/// A TS_program_map_section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version_number: u8,
    pub pcr_pid: u16,
    pub streams: Vec<PmtStream>,
}

/// Parses a PMT section; `Ok(None)` for one that is not current.
pub fn parse_pmt(pid: u16, section: &[u8]) -> Result<Option<Pmt>, MpegTsError> {
    let (program_number, version_number, current, body) =
        long_section(pid, "PMT", TABLE_PMT, section)?;
    if !current {
        return Ok(None);
    }
    let err = |reason| MpegTsError::Section {
        pid,
        table: "PMT",
        reason,
    };
    let pcr_pid = u16::from_be_bytes([body[0] & 0x1F, body[1]]);
    let program_info_length = usize::from(u16::from_be_bytes([body[2] & 0x0F, body[3]]));
    let mut rest = body
        .get(4 + program_info_length..)
        .ok_or(err("program_info_length past the section"))?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(err("truncated ES entry"));
        }
        let es_info_length = usize::from(u16::from_be_bytes([rest[3] & 0x0F, rest[4]]));
        let descriptors = rest
            .get(5..5 + es_info_length)
            .ok_or(err("ES_info_length past the section"))?;
        streams.push(PmtStream {
            stream_type: rest[0],
            elementary_pid: u16::from_be_bytes([rest[1] & 0x1F, rest[2]]),
            descriptors: descriptors.to_vec(),
        });
        rest = &rest[5 + es_info_length..];
    }
    Ok(Some(Pmt {
        program_number,
        version_number,
        pcr_pid,
        streams,
    }))
}

/// Builds a long-form section: header, body, CRC_32; then a pointer_field in front so
/// the result is the start of a packet payload.
fn build_section(table_id: u8, extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut s = vec![
        0, // pointer_field
        table_id,
        0xB0 | ((section_length >> 8) as u8 & 0x0F),
        section_length as u8,
    ];
    s.extend_from_slice(&extension.to_be_bytes());
    s.push(0xC0 | ((version & 0x1F) << 1) | 1);
    s.extend_from_slice(&[0, 0]); // section_number, last_section_number
    s.extend_from_slice(body);
    let crc = crc32(&s[1..]);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// A PAT with one program, ready as a packet payload (pointer_field included).
pub fn build_pat(transport_stream_id: u16, program_number: u16, pmt_pid: u16) -> Vec<u8> {
    let mut body = program_number.to_be_bytes().to_vec();
    body.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    build_section(TABLE_PAT, transport_stream_id, 0, &body)
}

/// A PMT, ready as a packet payload (pointer_field included).
pub fn build_pmt(pmt: &Pmt) -> Vec<u8> {
    let mut body = (0xE000 | pmt.pcr_pid).to_be_bytes().to_vec();
    body.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
    for s in &pmt.streams {
        body.push(s.stream_type);
        body.extend_from_slice(&(0xE000 | s.elementary_pid).to_be_bytes());
        body.extend_from_slice(&(0xF000 | s.descriptors.len() as u16).to_be_bytes());
        body.extend_from_slice(&s.descriptors);
    }
    build_section(TABLE_PMT, pmt.program_number, pmt.version_number, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_known_pat() {
        // The PAT FFmpeg writes (tsid 1, program 1 on PID 0x1000).
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
            0x04, 0xB2,
        ];
        assert_eq!(crc32(&pat), 0);
        let p = parse_pat(&pat).unwrap().unwrap();
        assert_eq!((p.program_number, p.program_map_pid), (1, 0x1000));
        assert_eq!(build_pat(1, 1, 0x1000)[1..], pat);
    }

    #[test]
    fn pmt_round_trip_and_assembly_across_packets() {
        let pmt = Pmt {
            program_number: 1,
            version_number: 3,
            pcr_pid: 0x100,
            streams: vec![
                PmtStream {
                    stream_type: stream_type::H264,
                    elementary_pid: 0x100,
                    descriptors: vec![],
                },
                PmtStream {
                    stream_type: stream_type::PRIVATE_PES,
                    elementary_pid: 0x101,
                    descriptors: vec![5, 4, b'O', b'p', b'u', b's', 0x7F, 2, 0x80, 2],
                },
            ],
        };
        let bytes = build_pmt(&pmt);
        // split over three payloads
        let mut a = SectionAssembler::default();
        let mut out = Vec::new();
        a.push(&bytes[..5], true, &mut out).unwrap();
        a.push(&bytes[5..9], false, &mut out).unwrap();
        assert!(out.is_empty());
        a.push(&bytes[9..], false, &mut out).unwrap();
        let got = parse_pmt(0x1000, &out[0]).unwrap().unwrap();
        assert_eq!(got, pmt);
        assert_eq!(got.streams[1].registration(), Some(*b"Opus"));
        assert_eq!(got.streams[1].opus_channel_config(), Some(2));
        let mut bad = out[0].clone();
        bad[10] ^= 1;
        assert!(matches!(
            parse_pmt(0x1000, &bad),
            Err(MpegTsError::Section {
                reason: "CRC_32 mismatch",
                ..
            })
        ));
    }

    #[test]
    fn absurd_section_length_is_refused() {
        let mut a = SectionAssembler::default();
        let mut out = Vec::new();
        assert!(a.push(&[0, 2, 0xBF, 0xFF, 0], true, &mut out).is_err());
        assert!(a.push(&[0, 2, 0xB0], true, &mut out).is_ok());
    }

    #[test]
    fn zero_section_length_makes_progress() {
        // Found by the fuzzer: a section_length of 0 once hung the assembler.
        let mut a = SectionAssembler::default();
        let mut out = Vec::new();
        a.push(&[0, 2, 0xB0, 0x00, 2, 0xB0, 0x00, 0xFF], true, &mut out)
            .unwrap();
        assert_eq!(out, [vec![2, 0xB0, 0], vec![2, 0xB0, 0]]);
        assert!(parse_pmt(0x1000, &out[0]).is_err());
    }
}
