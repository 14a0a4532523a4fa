//! H.265 / HEVC helpers: the `hvcC` decoder configuration record (ISO/IEC 14496-15
//! §8.3.3.1), the parts of the SPS we need (profile_tier_level, picture size after the
//! conformance window, chroma format, bit depths), codec strings (14496-15 Annex E) and
//! keyframe (IRAP) detection on length-prefixed access units.
//!
//! The SPS parser is hand-written: no well-kept crate parses HEVC parameter sets with a
//! light dependency tree. It reuses `h264-reader`'s RBSP reader (HEVC uses the same
//! emulation prevention and exp-Golomb codes) and stops after the bit depths, the last
//! field it needs, so scaling lists, reference picture sets and the VUI are not read.
//! Nothing here copies NAL payloads or panics on malformed input.

use std::num::NonZeroUsize;

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::rbsp::{BitRead, BitReader, ByteReader};

use crate::{bits::bit_err, nal::any_nal, MediaError};

/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 35;

/// Largest picture side any HEVC level allows: `Sqrt(MaxLumaPs * 8)` for level 6.x.
const MAX_PICTURE_SIDE: u32 = 16888;

/// The decoder configuration of an H.265 track: an `HEVCDecoderConfigurationRecord`
/// plus what its first SPS says about the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    pub general_profile_compatibility_flags: u32,
    /// The 48 bits of general constraint indicator flags, in the low bits.
    pub general_constraint_indicator_flags: u64,
    pub general_level_idc: u8,
    /// `chromaFormat` of the record (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
    /// `numTemporalLayers` of the record (0 means unknown).
    pub num_temporal_layers: u8,
    pub temporal_id_nested: bool,
    /// Size in bytes of the NAL unit length fields in samples (1, 2 or 4).
    pub nal_length_size: u8,
    /// Parameter sets (complete NAL units, 2-byte header included). NAL units of other
    /// arrays of the record (SEI) are kept only in `raw`.
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// Picture width after the conformance window, from the first SPS.
    pub width: u32,
    /// Picture height after the conformance window, from the first SPS.
    pub height: u32,
    /// The `hvcC` record these fields were read from.
    pub raw: Bytes,
}

/// `profile_tier_level()` general fields (H.265 §7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileTierLevel {
    pub general_profile_space: u8,
    pub general_tier_flag: bool,
    pub general_profile_idc: u8,
    pub general_profile_compatibility_flags: u32,
    pub general_constraint_indicator_flags: u64,
    pub general_level_idc: u8,
}

/// What the beginning of a `seq_parameter_set_rbsp()` says (H.265 §7.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSps {
    pub sps_max_sub_layers_minus1: u8,
    pub sps_temporal_id_nesting_flag: bool,
    pub profile_tier_level: ProfileTierLevel,
    pub sps_seq_parameter_set_id: u8,
    pub chroma_format_idc: u8,
    pub separate_colour_plane_flag: bool,
    pub pic_width_in_luma_samples: u32,
    pub pic_height_in_luma_samples: u32,
    /// Conformance window offsets (left, right, top, bottom) in chroma sample units.
    pub conformance_window: Option<[u32; 4]>,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
}

impl HevcSps {
    /// Parses an SPS NAL unit (2-byte NAL header included, emulation prevention intact).
    pub fn parse(nal: &[u8]) -> Result<Self, MediaError> {
        const WHAT: &str = "SPS";
        let header = nal.first().copied().ok_or(MediaError::Truncated {
            what: WHAT,
            need: 3,
            have: 0,
        })?;
        if nal_type(header) != NAL_SPS {
            return Err(MediaError::OutOfRange {
                what: WHAT,
                field: "nal_unit_type",
                value: nal_type(header).into(),
            });
        }
        if nal.len() < 3 {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: 3,
                have: nal.len(),
            });
        }
        let two = NonZeroUsize::MIN.saturating_add(1);
        let mut r = BitReader::new(ByteReader::skipping_bytes(nal, two));
        let e = |err| bit_err(WHAT, err);
        r.skip(4, "sps_video_parameter_set_id").map_err(e)?;
        let max_sub_layers_minus1: u8 = r.read::<3, u8>("sps_max_sub_layers_minus1").map_err(e)?;
        if max_sub_layers_minus1 > 6 {
            return Err(MediaError::OutOfRange {
                what: WHAT,
                field: "sps_max_sub_layers_minus1",
                value: max_sub_layers_minus1.into(),
            });
        }
        let nesting = r.read_bit("sps_temporal_id_nesting_flag").map_err(e)?;
        let ptl = read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let sps_id = r.read_ue("sps_seq_parameter_set_id").map_err(e)?;
        check(WHAT, "sps_seq_parameter_set_id", sps_id, 15)?;
        let chroma_format_idc = r.read_ue("chroma_format_idc").map_err(e)?;
        check(WHAT, "chroma_format_idc", chroma_format_idc, 3)?;
        let separate =
            chroma_format_idc == 3 && r.read_bit("separate_colour_plane_flag").map_err(e)?;
        let width = r.read_ue("pic_width_in_luma_samples").map_err(e)?;
        check(WHAT, "pic_width_in_luma_samples", width, MAX_PICTURE_SIDE)?;
        let height = r.read_ue("pic_height_in_luma_samples").map_err(e)?;
        check(WHAT, "pic_height_in_luma_samples", height, MAX_PICTURE_SIDE)?;
        let conformance_window = if r.read_bit("conformance_window_flag").map_err(e)? {
            let mut w = [0u32; 4];
            for (slot, name) in w.iter_mut().zip([
                "conf_win_left_offset",
                "conf_win_right_offset",
                "conf_win_top_offset",
                "conf_win_bottom_offset",
            ]) {
                *slot = r.read_ue(name).map_err(e)?;
                check(WHAT, name, *slot, MAX_PICTURE_SIDE)?;
            }
            Some(w)
        } else {
            None
        };
        let luma = r.read_ue("bit_depth_luma_minus8").map_err(e)?;
        check(WHAT, "bit_depth_luma_minus8", luma, 8)?;
        let chroma = r.read_ue("bit_depth_chroma_minus8").map_err(e)?;
        check(WHAT, "bit_depth_chroma_minus8", chroma, 8)?;
        Ok(HevcSps {
            sps_max_sub_layers_minus1: max_sub_layers_minus1,
            sps_temporal_id_nesting_flag: nesting,
            profile_tier_level: ptl,
            sps_seq_parameter_set_id: sps_id as u8,
            chroma_format_idc: chroma_format_idc as u8,
            separate_colour_plane_flag: separate,
            pic_width_in_luma_samples: width,
            pic_height_in_luma_samples: height,
            conformance_window,
            bit_depth_luma_minus8: luma as u8,
            bit_depth_chroma_minus8: chroma as u8,
        })
    }

    /// Picture size after the conformance window (H.265 §7.4.3.2.1: offsets count in
    /// units of SubWidthC / SubHeightC luma samples, which depend on ChromaArrayType).
    pub fn dimensions(&self) -> Result<(u32, u32), MediaError> {
        let chroma_array_type = if self.separate_colour_plane_flag {
            0
        } else {
            self.chroma_format_idc
        };
        let (sub_w, sub_h): (u64, u64) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let [l, r, t, b] = self.conformance_window.unwrap_or_default();
        let crop_w = sub_w * (u64::from(l) + u64::from(r));
        let crop_h = sub_h * (u64::from(t) + u64::from(b));
        let w = u64::from(self.pic_width_in_luma_samples).checked_sub(crop_w);
        let h = u64::from(self.pic_height_in_luma_samples).checked_sub(crop_h);
        match (w, h) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Ok((w as u32, h as u32)),
            _ => Err(MediaError::Invalid {
                what: "SPS",
                reason: "conformance window leaves an empty picture",
            }),
        }
    }
}

fn check(what: &'static str, field: &'static str, value: u32, max: u32) -> Result<(), MediaError> {
    if value > max {
        return Err(MediaError::OutOfRange {
            what,
            field,
            value: value.into(),
        });
    }
    Ok(())
}

fn read_profile_tier_level<R: BitRead>(
    r: &mut R,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, MediaError> {
    let e = |err| bit_err("profile_tier_level", err);
    let general_profile_space = r.read::<2, u8>("general_profile_space").map_err(e)?;
    let general_tier_flag = r.read_bit("general_tier_flag").map_err(e)?;
    let general_profile_idc = r.read::<5, u8>("general_profile_idc").map_err(e)?;
    let general_profile_compatibility_flags = r
        .read::<32, u32>("general_profile_compatibility_flags")
        .map_err(e)?;
    let hi = r.read::<32, u32>("general_constraint_flags").map_err(e)?;
    let lo = r.read::<16, u16>("general_constraint_flags").map_err(e)?;
    let general_level_idc = r.read::<8, u8>("general_level_idc").map_err(e)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
        p.0 = r.read_bit("sub_layer_profile_present_flag").map_err(e)?;
        p.1 = r.read_bit("sub_layer_level_present_flag").map_err(e)?;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2, "reserved_zero_2bits").map_err(e)?;
        }
    }
    for &(profile, level) in present.iter().take(usize::from(max_sub_layers_minus1)) {
        if profile {
            // sub_layer profile space .. constraint flags: 2+1+5+32+48 bits
            r.skip(88, "sub_layer_profile").map_err(e)?;
        }
        if level {
            r.skip(8, "sub_layer_level_idc").map_err(e)?;
        }
    }
    Ok(ProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags: (u64::from(hi) << 16) | u64::from(lo),
        general_level_idc,
    })
}

/// Reads a big-endian u16 at `pos` of `raw`.
fn u16_at(raw: &[u8], pos: usize, what: &'static str) -> Result<u16, MediaError> {
    match raw.get(pos..pos + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(MediaError::Truncated {
            what,
            need: pos + 2,
            have: raw.len(),
        }),
    }
}

impl HevcConfig {
    /// Parses an `HEVCDecoderConfigurationRecord` (version 1). Picture size comes from the
    /// first SPS, which must be present and valid; profile fields come from the record.
    pub fn parse(hvcc: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "hvcC";
        const HEADER: usize = 23;
        if hvcc.len() < HEADER {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: HEADER,
                have: hvcc.len(),
            });
        }
        let h = &hvcc[..HEADER];
        if h[0] != 1 {
            return Err(MediaError::UnsupportedVersion {
                what: WHAT,
                version: h[0],
            });
        }
        let constraint = h[6..12]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let mut out = HevcConfig {
            general_profile_space: h[1] >> 6,
            general_tier_flag: h[1] & 0x20 != 0,
            general_profile_idc: h[1] & 0x1F,
            general_profile_compatibility_flags: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
            general_constraint_indicator_flags: constraint,
            general_level_idc: h[12],
            chroma_format_idc: h[16] & 3,
            bit_depth_luma_minus8: h[17] & 7,
            bit_depth_chroma_minus8: h[18] & 7,
            num_temporal_layers: (h[21] >> 3) & 7,
            temporal_id_nested: h[21] & 4 != 0,
            nal_length_size: (h[21] & 3) + 1,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            width: 0,
            height: 0,
            raw: Bytes::new(),
        };
        let num_arrays = h[22];
        let mut pos = HEADER;
        for _ in 0..num_arrays {
            let nal_type = hvcc.get(pos).ok_or(MediaError::Truncated {
                what: WHAT,
                need: pos + 1,
                have: hvcc.len(),
            })? & 0x3F;
            let count = u16_at(&hvcc, pos + 1, WHAT)?;
            pos += 3;
            for _ in 0..count {
                let len = usize::from(u16_at(&hvcc, pos, WHAT)?);
                let start = pos + 2;
                if start + len > hvcc.len() {
                    return Err(MediaError::Truncated {
                        what: WHAT,
                        need: start + len,
                        have: hvcc.len(),
                    });
                }
                let unit = hvcc.slice(start..start + len);
                pos = start + len;
                match nal_type {
                    NAL_VPS => out.vps.push(unit),
                    NAL_SPS => out.sps.push(unit),
                    NAL_PPS => out.pps.push(unit),
                    _ => {}
                }
            }
        }
        let first = out.sps.first().ok_or(MediaError::Invalid {
            what: WHAT,
            reason: "no SPS",
        })?;
        (out.width, out.height) = HevcSps::parse(first)?.dimensions()?;
        out.raw = hvcc;
        Ok(out)
    }

    /// Builds the configuration and a valid `hvcC` (4-byte NAL lengths, arrays marked
    /// complete, as FFmpeg writes for `hvc1`) from parameter set NAL units; the profile,
    /// tier and level come from the first SPS's profile_tier_level.
    pub fn from_parameter_sets(
        vps: &[Bytes],
        sps: &[Bytes],
        pps: &[Bytes],
    ) -> Result<Self, MediaError> {
        const WHAT: &str = "hvcC";
        let first = sps.first().ok_or(MediaError::Invalid {
            what: WHAT,
            reason: "no SPS",
        })?;
        let s = HevcSps::parse(first)?;
        let ptl = s.profile_tier_level;
        // numTemporalLayers is the larger of the VPS's and the SPS's sub-layer counts;
        // vps_max_sub_layers_minus1 sits in bits 1..4 of the VPS's second payload byte.
        let vps_layers = vps
            .first()
            .and_then(|v| v.get(3))
            .map_or(0, |b| ((b >> 1) & 7) + 1);
        let layers = vps_layers.max(s.sps_max_sub_layers_minus1 + 1);
        let mut raw = BytesMut::new();
        raw.put_u8(1);
        raw.put_u8(
            (ptl.general_profile_space << 6)
                | (u8::from(ptl.general_tier_flag) << 5)
                | ptl.general_profile_idc,
        );
        raw.put_u32(ptl.general_profile_compatibility_flags);
        raw.put_slice(&ptl.general_constraint_indicator_flags.to_be_bytes()[2..]);
        raw.put_u8(ptl.general_level_idc);
        // min_spatial_segmentation_idc 0 (unknown without the VUI), so parallelismType 0.
        raw.put_u16(0xF000);
        raw.put_u8(0xFC);
        raw.put_u8(0xFC | s.chroma_format_idc);
        raw.put_u8(0xF8 | s.bit_depth_luma_minus8);
        raw.put_u8(0xF8 | s.bit_depth_chroma_minus8);
        raw.put_u16(0); // avgFrameRate: unspecified
        raw.put_u8((layers << 3) | (u8::from(s.sps_temporal_id_nesting_flag) << 2) | 3);
        let arrays = [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)];
        raw.put_u8(arrays.iter().filter(|(_, units)| !units.is_empty()).count() as u8);
        for (nal_type, units) in arrays {
            if units.is_empty() {
                continue;
            }
            let count = u16::try_from(units.len()).map_err(|_| MediaError::OutOfRange {
                what: WHAT,
                field: "numNalus",
                value: units.len() as u64,
            })?;
            raw.put_u8(0x80 | nal_type); // array_completeness = 1
            raw.put_u16(count);
            for unit in units {
                let len = u16::try_from(unit.len()).map_err(|_| MediaError::OutOfRange {
                    what: WHAT,
                    field: "nalUnitLength",
                    value: unit.len() as u64,
                })?;
                raw.put_u16(len);
                raw.put_slice(unit);
            }
        }
        Self::parse(raw.freeze())
    }

    /// The codec string of ISO/IEC 14496-15 Annex E, e.g. `hvc1.1.6.L93.B0`: profile space
    /// letter and profile idc, compatibility flags bit-reversed in hex, tier letter and
    /// level, then the constraint bytes in hex with trailing zero bytes dropped.
    pub fn codec_string(&self) -> String {
        let space = match self.general_profile_space {
            0 => "",
            1 => "A",
            2 => "B",
            _ => "C",
        };
        let tier = if self.general_tier_flag { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            self.general_level_idc
        );
        let bytes = self.general_constraint_indicator_flags.to_be_bytes();
        let constraint = &bytes[2..];
        let keep = constraint
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &constraint[..keep] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// The `nal_unit_type` of an H.265 NAL unit, from the first header byte.
pub fn nal_type(header: u8) -> u8 {
    (header >> 1) & 0x3F
}

/// NAL unit type of a clean random access picture (may lead an open GOP).
pub const NAL_CRA: u8 = 21;

/// Whether a NAL unit type is a random access skipped leading picture (RASL_N, RASL_R):
/// it references pictures before its CRA, so its CRA opens an open GOP.
pub fn is_rasl(nal_type: u8) -> bool {
    nal_type == 8 || nal_type == 9
}

/// Whether a NAL unit type is an intra random access point (BLA, IDR, CRA: 16..=23).
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// Whether a length-prefixed access unit contains an IRAP NAL unit (types 16..=23).
/// Malformed framing is not an error here: units after the fault are not examined.
pub fn is_keyframe(access_unit: &[u8], length_size: u8) -> bool {
    any_nal(access_unit, length_size, |n| {
        n.first().is_some_and(|&h| is_irap(nal_type(h)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{hex, BitWriter};

    // hvcC records written by FFmpeg 5.1 (`-c:v libx265 -x265-params info=0 -tag:v hvc1
    // -f mp4`, testsrc2 at 30 fps, one frame) and the matching `ffprobe` verdicts.
    const HVCC_720P: &str = "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ff\
        ff01600000030090000003000003005d959809a10001002b42010101600000030090000003000003005da002\
        80802d165959a4932bc05a020000030002000003003c10a2000100074401c172b46240";
    const HVCC_1080P: &str = "01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01f\
        fff016000000300900000030000030078959809a10001002a420101016000000300900000030000030078a0\
        03c08010e596566924caf0168080000003008000000f04a2000100074401c172b46240";
    // 854x480 is coded as 856x480: a conformance window of one chroma unit (2 luma samples).
    const HVCC_854X480: &str = "0101600000009000000000005af000fcfdf8f800000f03a00001001840010c0\
        1ffff01600000030090000003000003005a959809a10001002a42010101600000030090000003000003005a\
        a006b201e1d796566924caf0168080000003008000000f04a2000100074401c172b46240";
    // 4:4:4 (RExt profile) 426x240 coded as 432x240: crop unit is one luma sample.
    const HVCC_444: &str = "0104080000009e08000000003cf000fcfff8f800000f03a00001001740010c01ffff\
        0408000003009e0800000300003c959809a1000100294201010408000003009e0800000300003c9001b101\
        e39fcb2b349265780b4040000003004000000782a2000100084401c172860c4624";

    fn cfg(s: &str) -> HevcConfig {
        HevcConfig::parse(Bytes::from(hex(s))).unwrap()
    }

    #[test]
    fn parses_ffmpeg_records() {
        let c = cfg(HVCC_720P);
        assert_eq!((c.width, c.height), (1280, 720));
        // x265 sets progressive_source and frame_only_constraint (0x90), not non_packed.
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.90");
        assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (1, 1, 1));
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.general_constraint_indicator_flags, 0x9000_0000_0000);
        let c = cfg(HVCC_1080P);
        assert_eq!((c.width, c.height), (1920, 1080));
        assert_eq!(c.codec_string(), "hvc1.1.6.L120.90");
        let c = cfg(HVCC_854X480);
        assert_eq!((c.width, c.height), (854, 480));
        assert_eq!(c.codec_string(), "hvc1.1.6.L90.90");
        let c = cfg(HVCC_444);
        assert_eq!((c.width, c.height), (426, 240));
        assert_eq!(c.chroma_format_idc, 3);
        assert_eq!(c.codec_string(), "hvc1.4.10.L60.9E.8");
        // the example of 14496-15 Annex E / RFC 6381 usage: Main, level 3.1, 0xB0
        let mut c = cfg(HVCC_720P);
        c.general_constraint_indicator_flags = 0xB000_0000_0000;
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
        c.general_tier_flag = true;
        c.general_profile_space = 3;
        c.general_constraint_indicator_flags = 0;
        assert_eq!(c.codec_string(), "hvc1.C1.6.H93");
    }

    #[test]
    fn from_parameter_sets_matches_ffmpeg_field_by_field_and_byte_for_byte() {
        for s in [HVCC_720P, HVCC_1080P, HVCC_854X480, HVCC_444] {
            let parsed = cfg(s);
            let built =
                HevcConfig::from_parameter_sets(&parsed.vps, &parsed.sps, &parsed.pps).unwrap();
            assert_eq!(built, parsed);
            assert_eq!(&built.raw[..], &hex(s)[..]);
        }
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        let full = hex(HVCC_720P);
        for n in 0..full.len() - 1 {
            let r = HevcConfig::parse(Bytes::copy_from_slice(&full[..n]));
            assert!(r.is_err(), "prefix of {n} bytes parsed");
        }
        assert_eq!(
            HevcConfig::parse(Bytes::from_static(&[1, 2, 3]))
                .unwrap_err()
                .to_string(),
            "hvcC truncated: need 23 bytes, have 3"
        );
        let mut v = full.clone();
        v[0] = 0;
        assert_eq!(
            HevcConfig::parse(Bytes::from(v)).unwrap_err().to_string(),
            "unsupported hvcC version 0"
        );
        // 255 arrays of 65535 units announced in a short record
        let mut lie = full[..23].to_vec();
        lie[22] = 255;
        lie.extend_from_slice(&[0xA1, 0xFF, 0xFF, 0xFF, 0xFF, 0x42]);
        assert!(matches!(
            HevcConfig::parse(Bytes::from(lie)),
            Err(MediaError::Truncated { .. })
        ));
        assert!(HevcSps::parse(&[0x42]).is_err());
        assert!(HevcSps::parse(&[0x40, 1, 0xFF]).is_err()); // a VPS
    }

    /// Inserts emulation prevention bytes into an RBSP.
    fn add_epb(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    fn ue(w: &mut BitWriter, v: u32) {
        let x = v + 1;
        let n = 32 - x.leading_zeros();
        w.put(n - 1, 0);
        w.put(n, x);
    }

    /// An SPS with three sub-layers, partially present sub-layer profile/level info, a
    /// high tier, profile space 1, and 4:2:2 chroma with a conformance window.
    fn synthetic_sps(width: u32, crop: [u32; 4]) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(4, 0); // vps id
        w.put(3, 2); // max_sub_layers_minus1
        w.put(1, 1); // temporal_id_nesting
        w.put(2, 1); // profile space
        w.put(1, 1); // tier
        w.put(5, 4); // profile idc
        w.put(32, 0x0800_0000);
        w.put(32, 0x9000_0000);
        w.put(16, 0x0001);
        w.put(8, 153); // level 5.1
        w.put(2, 0b10); // sub-layer 0: profile present
        w.put(2, 0b01); // sub-layer 1: level present
        for _ in 2..8 {
            w.put(2, 0);
        }
        for _ in 0..11 {
            w.put(8, 0xA5); // sub-layer 0 profile (88 bits)
        }
        w.put(8, 120); // sub-layer 1 level
        ue(&mut w, 0); // sps id
        ue(&mut w, 2); // chroma 4:2:2
        ue(&mut w, width);
        ue(&mut w, 1088);
        w.put(1, 1);
        for c in crop {
            ue(&mut w, c);
        }
        ue(&mut w, 2); // 10-bit
        ue(&mut w, 2);
        w.put(1, 1); // stop bit (the parser stops early anyway)
        let mut nal = vec![0x42, 0x01];
        nal.extend(add_epb(&w.finish()));
        nal
    }

    #[test]
    fn sps_with_sub_layers_and_422_cropping() {
        let s = HevcSps::parse(&synthetic_sps(1920, [0, 1, 0, 8])).unwrap();
        assert_eq!(s.sps_max_sub_layers_minus1, 2);
        let p = s.profile_tier_level;
        assert_eq!(
            (
                p.general_profile_space,
                p.general_tier_flag,
                p.general_profile_idc
            ),
            (1, true, 4)
        );
        assert_eq!(p.general_constraint_indicator_flags, 0x9000_0000_0001);
        assert_eq!(p.general_level_idc, 153);
        assert_eq!(s.chroma_format_idc, 2);
        assert_eq!((s.bit_depth_luma_minus8, s.bit_depth_chroma_minus8), (2, 2));
        // 4:2:2: SubWidthC 2, SubHeightC 1
        assert_eq!(s.dimensions().unwrap(), (1918, 1080));
        let sps = Bytes::from(synthetic_sps(1920, [0, 1, 0, 8]));
        let c = HevcConfig::from_parameter_sets(&[], &[sps], &[]).unwrap();
        assert_eq!(c.codec_string(), "hvc1.A4.10.H153.90.0.0.0.0.1");
        assert_eq!(c.num_temporal_layers, 3);
        assert!(c.temporal_id_nested);
        assert_eq!((c.width, c.height), (1918, 1080));
    }

    #[test]
    fn sps_out_of_range_values() {
        let err = HevcSps::parse(&synthetic_sps(70_000, [0; 4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SPS: pic_width_in_luma_samples 70000 out of range"
        );
        let s = HevcSps::parse(&synthetic_sps(64, [40, 0, 0, 0])).unwrap();
        assert!(s.dimensions().is_err());
    }

    #[test]
    fn keyframe_detection() {
        let idr = [0, 0, 0, 3, 0x26, 0x01, 0xAF]; // IDR_W_RADL (19)
        let cra = [0, 0, 0, 3, 0x2A, 0x01, 0xAF]; // CRA (21)
        let trail = [0, 0, 0, 3, 0x02, 0x01, 0xD0]; // TRAIL_R (1)
        assert!(is_keyframe(&idr, 4));
        assert!(is_keyframe(&cra, 4));
        assert!(!is_keyframe(&trail, 4));
        assert_eq!(nal_type(0x40), NAL_VPS);
    }
}
