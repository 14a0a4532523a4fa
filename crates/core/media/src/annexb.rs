//! Annex B video (start-code framed NAL units: MPEG-TS PES payloads, RTP-depacketized
//! H.264) to and from the model's length-prefixed access units, with the in-band
//! parameter sets taken out or put back. Both directions live here so they stay each
//! other's inverse.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{h264, h265, nal, CodecConfig, MediaError};

/// Which video codec an Annex B stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// One video access unit taken apart.
#[derive(Debug)]
pub struct VideoAccessUnit {
    /// The in-band parameter sets, if the AU carried a full set.
    pub parameter_sets: Option<ParameterSets>,
    /// The NAL units, length-prefixed with 4 bytes, access unit delimiters removed (the
    /// model's framing; MP4 samples do not need them and the muxer adds its own).
    pub data: Bytes,
    /// An IDR (H.264), a recovery point SEI (H.264 intra refresh), or an IRAP (H.265).
    pub keyframe: bool,
    /// H.265: a CRA picture (a keyframe only for closed-GOP streams; see the demuxer).
    pub cra: bool,
    /// H.265: a RASL picture (its stream uses open GOPs).
    pub rasl: bool,
}

/// Takes an Annex B access unit apart (one copy: Annex B to length-prefixed).
pub fn video_from_annexb(
    codec: VideoCodec,
    pes_payload: &Bytes,
) -> Result<VideoAccessUnit, MediaError> {
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    let mut au = VideoAccessUnit {
        parameter_sets: None,
        data: Bytes::new(),
        keyframe: false,
        cra: false,
        rasl: false,
    };
    let mut out = BytesMut::with_capacity(pes_payload.len() + 16);
    for unit in nal::split_annexb(pes_payload) {
        let header = unit[0];
        match codec {
            VideoCodec::H264 => match h264::nal_type(header) {
                h264::NAL_AUD => continue,
                h264::NAL_SPS => sps.push(unit.clone()),
                h264::NAL_PPS => pps.push(unit.clone()),
                h264::NAL_IDR => au.keyframe = true,
                h264::NAL_SEI => au.keyframe |= h264::is_recovery_point_sei(&unit),
                _ => {}
            },
            VideoCodec::H265 => match h265::nal_type(header) {
                h265::NAL_AUD => continue,
                h265::NAL_VPS => vps.push(unit.clone()),
                h265::NAL_SPS => sps.push(unit.clone()),
                h265::NAL_PPS => pps.push(unit.clone()),
                t => {
                    au.keyframe |= h265::is_irap(t) && t != h265::NAL_CRA;
                    au.cra |= t == h265::NAL_CRA;
                    au.rasl |= h265::is_rasl(t);
                }
            },
        }
        let len = u32::try_from(unit.len()).map_err(|_| MediaError::OutOfRange {
            what: "NAL unit",
            field: "length",
            value: unit.len() as u64,
        })?;
        out.put_u32(len);
        out.extend_from_slice(&unit);
    }
    au.data = out.freeze();
    if !sps.is_empty() && !pps.is_empty() && (codec == VideoCodec::H264 || !vps.is_empty()) {
        au.parameter_sets = Some(ParameterSets { vps, sps, pps });
    }
    Ok(au)
}

/// A full set of parameter sets found in one access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// H.265 only.
    pub vps: Vec<Bytes>,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

impl ParameterSets {
    /// Whether `config` was built from exactly these parameter sets.
    pub fn same_as(&self, config: &CodecConfig) -> bool {
        match config {
            CodecConfig::H264(c) => c.sps == self.sps && c.pps == self.pps,
            CodecConfig::H265(c) => c.vps == self.vps && c.sps == self.sps && c.pps == self.pps,
            _ => false,
        }
    }

    /// The track configuration (avcC/hvcC and what the SPS says).
    pub fn to_config(&self, codec: VideoCodec) -> Result<CodecConfig, MediaError> {
        Ok(match codec {
            VideoCodec::H264 => {
                CodecConfig::H264(h264::AvcConfig::from_parameter_sets(&self.sps, &self.pps)?)
            }
            VideoCodec::H265 => CodecConfig::H265(h265::HevcConfig::from_parameter_sets(
                &self.vps, &self.sps, &self.pps,
            )?),
        })
    }
}

/// What differs between H.264 and H.265 when writing Annex B.
struct AnnexBSyntax<'a> {
    length_size: u8,
    /// A complete access unit delimiter NAL unit (any picture type allowed).
    aud: &'static [u8],
    /// The configuration's parameter sets, in decoding order.
    params: Vec<&'a Bytes>,
    nal_type: fn(u8) -> u8,
    aud_type: u8,
    param_types: &'static [u8],
}

/// Writes a length-prefixed access unit as Annex B: an access unit delimiter first (some
/// decoders and SRT receivers find AU boundaries by it), then the parameter sets on a
/// keyframe that does not carry its own, then the NAL units.
pub fn video_to_annexb(
    config: &CodecConfig,
    data: &Bytes,
    keyframe: bool,
) -> Result<Vec<u8>, MediaError> {
    let syntax = match config {
        CodecConfig::H264(c) => AnnexBSyntax {
            length_size: c.nal_length_size,
            aud: &[0x09, 0xF0],
            params: c.sps.iter().chain(&c.pps).collect(),
            nal_type: h264::nal_type,
            aud_type: h264::NAL_AUD,
            param_types: &[h264::NAL_SPS, h264::NAL_PPS],
        },
        CodecConfig::H265(c) => AnnexBSyntax {
            length_size: c.nal_length_size,
            aud: &[0x46, 0x01, 0x50],
            params: c.vps.iter().chain(&c.sps).chain(&c.pps).collect(),
            nal_type: h265::nal_type,
            aud_type: h265::NAL_AUD,
            param_types: &[h265::NAL_VPS, h265::NAL_SPS, h265::NAL_PPS],
        },
        _ => {
            return Err(MediaError::Invalid {
                what: "video access unit",
                reason: "track is not H.264 or H.265",
            })
        }
    };
    let type_of = |u: &Bytes| u.first().map(|&h| (syntax.nal_type)(h));
    let mut units: Vec<Bytes> =
        nal::iter_length_prefixed(data, syntax.length_size).collect::<Result<_, _>>()?;
    // Ours is the one AUD, first: a frame that brought its own would get two.
    units.retain(|u| type_of(u) != Some(syntax.aud_type));
    let has_params = units
        .iter()
        .any(|u| type_of(u).is_some_and(|t| syntax.param_types.contains(&t)));
    let mut out = Vec::with_capacity(data.len() + 64);
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(syntax.aud);
    if keyframe && !has_params {
        for p in syntax.params {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(p);
        }
    }
    for u in units {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&u);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn annexb_round_trip_with_one_aud_and_parameter_sets_on_keyframes() {
        // SPS/PPS of libx264 320x240 baseline (as in starling-flv's tests).
        let sps = Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
            0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
        ]);
        let pps = Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]);
        let config =
            CodecConfig::H264(h264::AvcConfig::from_parameter_sets(&[sps], &[pps]).unwrap());
        // A keyframe that brings its own AUD but no parameter sets.
        let frame = Bytes::from_static(&[0, 0, 0, 2, 0x09, 0xF0, 0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let annexb = Bytes::from(video_to_annexb(&config, &frame, true).unwrap());
        let types: Vec<u8> = nal::split_annexb(&annexb).map(|u| u[0] & 0x1F).collect();
        assert_eq!(types, [9, 7, 8, 5]);
        let au = video_from_annexb(VideoCodec::H264, &annexb).unwrap();
        assert!(au.keyframe);
        let sets = au.parameter_sets.unwrap();
        assert!(sets.same_as(&config));
        assert_eq!(sets.to_config(VideoCodec::H264).unwrap(), config);
        let back: Vec<u8> = nal::iter_length_prefixed(&au.data, 4)
            .map(|u| u.unwrap()[0] & 0x1F)
            .collect();
        assert_eq!(back, [7, 8, 5], "AUD removed, parameter sets kept in-band");
        // A non-keyframe gets no parameter sets.
        let p = Bytes::from_static(&[0, 0, 0, 2, 0x41, 0x9a]);
        let annexb = Bytes::from(video_to_annexb(&config, &p, false).unwrap());
        assert_eq!(nal::split_annexb(&annexb).count(), 2);
    }
}
