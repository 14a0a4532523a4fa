//! H.264 / AVC helpers: the `avcC` decoder configuration record (ISO/IEC 14496-15
//! §5.3.3.1), picture size and frame rate from the SPS, codec strings and keyframe
//! detection on length-prefixed access units.
//!
//! SPS parsing is delegated to `h264-reader`; this module never copies NAL payloads (the
//! parameter sets are slices of the record) and never panics on malformed input.

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::{
    nal::sps::{SeqParameterSet, SpsError},
    rbsp::{decode_nal, BitReader},
};

use crate::{bits::bit_err, nal::any_nal, MediaError};

/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// SEI `payloadType` of a recovery point (H.264 D.1.8): where an intra-refresh source,
/// which sends no IDR, can be decoded from.
const SEI_RECOVERY_POINT: u32 = 6;

/// `PicWidthInMbs` and `FrameHeightInMbs` may not exceed `Sqrt(MaxFS * 8)` (H.264 A.3.1 f);
/// with the largest MaxFS of any level (139264, level 6.2) that is 1055 macroblocks.
const MAX_MBS_PER_SIDE: u32 = 1055;

/// The decoder configuration of an H.264 track: an `AVCDecoderConfigurationRecord`
/// plus what its first SPS says about the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (profile_idc of the SPS).
    pub profile: u8,
    /// `profile_compatibility` (the SPS constraint flags byte).
    pub compatibility: u8,
    /// `AVCLevelIndication` (level_idc).
    pub level: u8,
    /// Size in bytes of the NAL unit length fields in samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (complete NAL units, header byte included).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (complete NAL units).
    pub pps: Vec<Bytes>,
    /// Picture width after frame cropping, from the first SPS.
    pub width: u32,
    /// Picture height after frame cropping, from the first SPS.
    pub height: u32,
    /// Frame rate from the VUI timing info of the first SPS, if present.
    pub fps: Option<f64>,
    /// The `avcC` record these fields were read from.
    pub raw: Bytes,
}

/// What the parts of an SPS we use say.
#[derive(Debug, Clone, PartialEq)]
struct SpsInfo {
    width: u32,
    height: u32,
    fps: Option<f64>,
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

fn sps_error(e: SpsError) -> MediaError {
    match e {
        SpsError::FieldValueTooLarge { name, value } => MediaError::OutOfRange {
            what: "SPS",
            field: name,
            value: value.into(),
        },
        SpsError::RbspReaderError(e) => bit_err("SPS", e),
        other => MediaError::Bitstream {
            what: "SPS",
            field: "seq_parameter_set_rbsp",
            reason: format!("{other:?}"),
        },
    }
}

fn parse_sps(nal: &[u8]) -> Result<SpsInfo, MediaError> {
    let Some(&header) = nal.first() else {
        return Err(MediaError::Truncated {
            what: "SPS",
            need: 4,
            have: 0,
        });
    };
    if nal_type(header) != NAL_SPS {
        return Err(MediaError::OutOfRange {
            what: "SPS",
            field: "nal_unit_type",
            value: nal_type(header).into(),
        });
    }
    let rbsp = decode_nal(nal).map_err(|e| MediaError::Bitstream {
        what: "SPS",
        field: "emulation prevention",
        reason: e.to_string(),
    })?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).map_err(sps_error)?;
    for (field, value) in [
        ("pic_width_in_mbs", sps.pic_width_in_mbs()),
        ("pic_height_in_map_units", sps.pic_height_in_map_units()),
    ] {
        if value > MAX_MBS_PER_SIDE {
            return Err(MediaError::OutOfRange {
                what: "SPS",
                field,
                value: value.into(),
            });
        }
    }
    let (width, height) = sps.pixel_dimensions().map_err(sps_error)?;
    if width == 0 || height == 0 {
        return Err(MediaError::Invalid {
            what: "SPS",
            reason: "cropping leaves an empty picture",
        });
    }
    let fps = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.timing_info.as_ref())
        .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
        .map(|t| f64::from(t.time_scale) / (2.0 * f64::from(t.num_units_in_tick)));
    Ok(SpsInfo {
        width,
        height,
        fps,
        chroma_format_idc: (sps.chroma_info.chroma_format.to_u32() & 3) as u8,
        bit_depth_luma_minus8: sps.chroma_info.bit_depth_luma_minus8 & 7,
        bit_depth_chroma_minus8: sps.chroma_info.bit_depth_chroma_minus8 & 7,
    })
}

/// Reads a big-endian u16-length-prefixed unit at `*pos`, advancing it.
fn take_u16_unit(raw: &Bytes, pos: &mut usize, what: &'static str) -> Result<Bytes, MediaError> {
    let len_bytes = raw.get(*pos..*pos + 2).ok_or(MediaError::Truncated {
        what,
        need: *pos + 2,
        have: raw.len(),
    })?;
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    let start = *pos + 2;
    if start + len > raw.len() {
        return Err(MediaError::Truncated {
            what,
            need: start + len,
            have: raw.len(),
        });
    }
    *pos = start + len;
    Ok(raw.slice(start..start + len))
}

impl AvcConfig {
    /// Parses an `AVCDecoderConfigurationRecord`. The high-profile trailer (chroma format,
    /// bit depths, SPS extensions) is tolerated and not interpreted; picture size and frame
    /// rate come from the first SPS, which must be present and valid.
    pub fn parse(avcc: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "avcC";
        if avcc.len() < 7 {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: 7,
                have: avcc.len(),
            });
        }
        if avcc[0] != 1 {
            return Err(MediaError::UnsupportedVersion {
                what: WHAT,
                version: avcc[0],
            });
        }
        let nal_length_size = (avcc[4] & 0x03) + 1;
        let num_sps = usize::from(avcc[5] & 0x1F);
        let mut pos = 6;
        let mut sps = Vec::new();
        for _ in 0..num_sps {
            sps.push(take_u16_unit(&avcc, &mut pos, WHAT)?);
        }
        let num_pps = usize::from(*avcc.get(pos).ok_or(MediaError::Truncated {
            what: WHAT,
            need: pos + 1,
            have: avcc.len(),
        })?);
        pos += 1;
        let mut pps = Vec::new();
        for _ in 0..num_pps {
            pps.push(take_u16_unit(&avcc, &mut pos, WHAT)?);
        }
        let first = sps.first().ok_or(MediaError::Invalid {
            what: WHAT,
            reason: "no SPS",
        })?;
        let info = parse_sps(first)?;
        Ok(AvcConfig {
            profile: avcc[1],
            compatibility: avcc[2],
            level: avcc[3],
            nal_length_size,
            width: info.width,
            height: info.height,
            fps: info.fps,
            sps,
            pps,
            raw: avcc,
        })
    }

    /// Builds the configuration (and its `avcC` record, with 4-byte NAL lengths) from
    /// parameter set NAL units, e.g. those found in-band in an Annex B stream.
    pub fn from_parameter_sets(sps: &[Bytes], pps: &[Bytes]) -> Result<Self, MediaError> {
        const WHAT: &str = "avcC";
        let first = sps.first().ok_or(MediaError::Invalid {
            what: WHAT,
            reason: "no SPS",
        })?;
        if sps.len() > 31 {
            return Err(MediaError::OutOfRange {
                what: WHAT,
                field: "numOfSequenceParameterSets",
                value: sps.len() as u64,
            });
        }
        if pps.len() > 255 {
            return Err(MediaError::OutOfRange {
                what: WHAT,
                field: "numOfPictureParameterSets",
                value: pps.len() as u64,
            });
        }
        if first.len() < 4 {
            return Err(MediaError::Truncated {
                what: "SPS",
                need: 4,
                have: first.len(),
            });
        }
        let info = parse_sps(first)?;
        let mut raw = BytesMut::new();
        raw.put_slice(&[
            1,
            first[1],
            first[2],
            first[3],
            0xFC | 3,
            0xE0 | sps.len() as u8,
        ]);
        for unit in sps {
            put_u16_unit(&mut raw, unit)?;
        }
        raw.put_u8(pps.len() as u8);
        for unit in pps {
            put_u16_unit(&mut raw, unit)?;
        }
        // Same rule as FFmpeg's ff_isom_write_avcc: every profile but Baseline, Main and
        // Extended carries the chroma/bit-depth trailer of 14496-15 §5.3.3.1.2.
        if !matches!(first[1], 66 | 77 | 88) {
            raw.put_slice(&[
                0xFC | info.chroma_format_idc,
                0xF8 | info.bit_depth_luma_minus8,
                0xF8 | info.bit_depth_chroma_minus8,
                0, // numOfSequenceParameterSetExt
            ]);
        }
        Self::parse(raw.freeze())
    }

    /// The RFC 6381 codec string, `avc1.PPCCLL` in lower-case hex.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

fn put_u16_unit(out: &mut BytesMut, unit: &[u8]) -> Result<(), MediaError> {
    let len = u16::try_from(unit.len()).map_err(|_| MediaError::OutOfRange {
        what: "avcC",
        field: "parameter set length",
        value: unit.len() as u64,
    })?;
    out.put_u16(len);
    out.put_slice(unit);
    Ok(())
}

/// The `nal_unit_type` of an H.264 NAL unit header byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1F
}

/// Whether a length-prefixed access unit contains an IDR slice (NAL type 5).
/// Malformed framing is not an error here: units after the fault are not examined.
pub fn is_keyframe(access_unit: &[u8], length_size: u8) -> bool {
    any_nal(access_unit, length_size, |n| {
        n.first().is_some_and(|&h| nal_type(h) == NAL_IDR)
    })
}

/// Whether a NAL unit (header included) is an SEI carrying a recovery point message.
/// Malformed SEI is not an error here: the messages after the fault are not examined.
pub fn is_recovery_point_sei(nal: &[u8]) -> bool {
    if nal.first().map(|&h| nal_type(h)) != Some(NAL_SEI) {
        return false;
    }
    let Ok(rbsp) = decode_nal(nal) else {
        return false;
    };
    // `decode_nal` drops the header byte.
    let mut rest: &[u8] = &rbsp;
    // sei_message(): payloadType and payloadSize as runs of 0xFF plus a last byte (7.3.2.3.1).
    let read = |rest: &mut &[u8]| -> Option<u32> {
        let mut v = 0u32;
        loop {
            let (&b, tail) = rest.split_first()?;
            *rest = tail;
            v = v.saturating_add(u32::from(b));
            if b != 0xFF {
                return Some(v);
            }
        }
    };
    // Stop at the rbsp trailing bits (0x80) or the end.
    while rest.first().is_some_and(|&b| b != 0x80) {
        let (Some(kind), Some(size)) = (read(&mut rest), read(&mut rest)) else {
            return false;
        };
        if kind == SEI_RECOVERY_POINT {
            return true;
        }
        let Some(tail) = rest.get(usize::try_from(size).unwrap_or(usize::MAX)..) else {
            return false;
        };
        rest = tail;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::hex;

    // avcC records written by FFmpeg 5.1 into MP4 files, for
    // `ffmpeg -f lavfi -i testsrc2=size=WxH:rate=30 -frames:v 1 -c:v libx264 -profile:v high`.
    const AVCC_720P: &str = "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f18319\
                             6001000668ebe3cb22c0fdf8f800";
    const AVCC_1080P: &str = "01640028ffe1001b67640028acd940780227e5c0440000030004000003\
                              00f03c60c65801000668ebe3cb22c0fdf8f800";
    // Same with `-profile:v main` at 25 fps: no high-profile trailer.
    const AVCC_1080P_MAIN: &str = "014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300\
                                   641e30632c01000568ebe3cb20";

    fn avcc(s: &str) -> Bytes {
        Bytes::from(hex(s))
    }

    #[test]
    fn recovery_point_sei() {
        // x264 --intra-refresh: user data unregistered (type 5, 3 bytes here) then a
        // recovery point (type 6: recovery_frame_cnt 0, exact match, no broken link).
        assert!(is_recovery_point_sei(&[
            0x06, 0x05, 0x03, 1, 2, 3, 0x06, 0x01, 0xC4, 0x80
        ]));
        assert!(is_recovery_point_sei(&[0x06, 0x06, 0x01, 0xC4, 0x80]));
        // only buffering period / picture timing
        assert!(!is_recovery_point_sei(&[
            0x06, 0x00, 0x01, 0xAA, 0x01, 0x01, 0xBB, 0x80
        ]));
        // not an SEI, truncated, sizes past the end
        assert!(!is_recovery_point_sei(&[0x65, 0x06, 0x01, 0xC4]));
        assert!(!is_recovery_point_sei(&[0x06, 0xFF]));
        assert!(!is_recovery_point_sei(&[0x06, 0x05, 0x30, 1]));
    }

    #[test]
    fn parses_ffmpeg_720p_high() {
        let c = AvcConfig::parse(avcc(AVCC_720P)).unwrap();
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.sps.len(), c.pps.len()), (1, 1));
        assert_eq!(c.sps[0].len(), 0x1a);
        assert_eq!(c.fps, Some(30.0));
    }

    #[test]
    fn parses_cropped_1080p() {
        let c = AvcConfig::parse(avcc(AVCC_1080P)).unwrap();
        assert_eq!((c.width, c.height), (1920, 1080));
        assert_eq!(c.codec_string(), "avc1.640028");
        let m = AvcConfig::parse(avcc(AVCC_1080P_MAIN)).unwrap();
        assert_eq!((m.width, m.height), (1920, 1080));
        assert_eq!(m.codec_string(), "avc1.4d4028");
        assert_eq!(m.fps, Some(25.0));
    }

    #[test]
    fn from_parameter_sets_rebuilds_ffmpeg_record_exactly() {
        for s in [AVCC_720P, AVCC_1080P, AVCC_1080P_MAIN] {
            let parsed = AvcConfig::parse(avcc(s)).unwrap();
            let built = AvcConfig::from_parameter_sets(&parsed.sps, &parsed.pps).unwrap();
            assert_eq!(built, parsed);
            assert_eq!(&built.raw[..], &hex(s)[..]);
        }
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        let err = AvcConfig::parse(Bytes::from_static(&[1, 0x64, 0])).unwrap_err();
        assert_eq!(err.to_string(), "avcC truncated: need 7 bytes, have 3");
        let mut v2 = hex(AVCC_720P);
        v2[0] = 2;
        assert_eq!(
            AvcConfig::parse(Bytes::from(v2)).unwrap_err().to_string(),
            "unsupported avcC version 2"
        );
        // 31 SPS of length 65535 announced in 10 bytes
        let lie = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0x67, 0]);
        assert!(matches!(
            AvcConfig::parse(lie).unwrap_err(),
            MediaError::Truncated {
                need: 65543,
                have: 10,
                ..
            }
        ));
        // no SPS at all
        let none = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]);
        assert_eq!(
            AvcConfig::parse(none).unwrap_err().to_string(),
            "avcC: no SPS"
        );
        // every truncation of a valid record fails cleanly
        let full = hex(AVCC_720P);
        for n in 0..full.len() - 4 {
            assert!(
                AvcConfig::parse(Bytes::copy_from_slice(&full[..n])).is_err(),
                "{n}"
            );
        }
    }

    #[test]
    fn absurd_sps_dimensions_are_rejected() {
        // Baseline SPS, level 6.2 (unknown limits), pic_width_in_mbs_minus1 = 69999.
        let mut w = crate::bits::BitWriter::default();
        w.put(8, 0x67);
        w.put(8, 66);
        w.put(8, 0);
        w.put(8, 62);
        let ue = |w: &mut crate::bits::BitWriter, v: u32| {
            let x = v + 1;
            let n = 32 - x.leading_zeros();
            w.put(n - 1, 0);
            w.put(n, x);
        };
        ue(&mut w, 0); // seq_parameter_set_id
        ue(&mut w, 0); // log2_max_frame_num_minus4
        ue(&mut w, 2); // pic_order_cnt_type
        ue(&mut w, 1); // max_num_ref_frames
        w.put(1, 0); // gaps
        ue(&mut w, 69_999); // pic_width_in_mbs_minus1
        ue(&mut w, 0); // pic_height_in_map_units_minus1
        w.put(1, 1); // frame_mbs_only
        w.put(1, 1); // direct_8x8
        w.put(1, 0); // cropping
        w.put(1, 0); // vui
        w.put(1, 1); // rbsp stop bit
        let sps = Bytes::from(w.finish());
        let err = AvcConfig::from_parameter_sets(&[sps], &[]).unwrap_err();
        assert_eq!(err.to_string(), "SPS: pic_width_in_mbs 70000 out of range");
    }

    #[test]
    fn keyframe_detection() {
        let idr = [0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x65, 0x88];
        let p = [0, 0, 0, 2, 0x41, 0x9a];
        assert!(is_keyframe(&idr, 4));
        assert!(!is_keyframe(&p, 4));
        assert!(!is_keyframe(&idr[..9], 4));
        assert_eq!(nal_type(0x65), NAL_IDR);
    }
}
