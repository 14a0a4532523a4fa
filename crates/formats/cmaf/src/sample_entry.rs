//! Sample entries of the `stsd` box: `avc1` + `avcC`, `hvc1` + `hvcC`, `mp4a` + `esds`
//! and `Opus` + `dOps`, one function per box.
//!
//! The decoder configuration records (`avcC`, `hvcC`, AudioSpecificConfig) are copied
//! from the track config as they arrived (`raw`), never re-encoded from parsed fields:
//! re-encoding would drop anything the parser does not model (SPS extensions, SEI arrays).

use bytes::{BufMut, BytesMut};
use starling_media::{aac::AudioSpecificConfig, h264::AvcConfig, h265::HevcConfig, OpusConfig};

use crate::{
    bmff::{write_box, write_full_box, FourCc},
    CmafError,
};

/// Shown in `compressorname` of visual sample entries (at most 31 bytes).
const COMPRESSOR_NAME: &[u8] = b"starling";

/// `avc1` with its `avcC`. `avc1` (not `avc3`): CMAF AVC tracks keep parameter sets in
/// the sample entry, which players fetch once with the init segment.
pub(crate) fn avc1(out: &mut BytesMut, c: &AvcConfig) -> Result<(), CmafError> {
    visual_sample_entry(out, *b"avc1", c.width, c.height, |out| {
        write_box(out, *b"avcC", |out| {
            out.put_slice(&c.raw);
            Ok(())
        })
    })
}

/// `hvc1` with its `hvcC`: parameter sets travel in the `hvcC` (the `hvc1` rule of
/// ISO/IEC 14496-15 §8.4.1), which is what Apple players require for HLS.
pub(crate) fn hvc1(out: &mut BytesMut, c: &HevcConfig) -> Result<(), CmafError> {
    visual_sample_entry(out, *b"hvc1", c.width, c.height, |out| {
        write_box(out, *b"hvcC", |out| {
            out.put_slice(&c.raw);
            Ok(())
        })
    })
}

/// `VisualSampleEntry` (14496-12 §12.1.3) followed by the codec's boxes.
fn visual_sample_entry(
    out: &mut BytesMut,
    kind: FourCc,
    width: u32,
    height: u32,
    codec_boxes: impl FnOnce(&mut BytesMut) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    let w = u16_field("visual sample entry", "width", width)?;
    let h = u16_field("visual sample entry", "height", height)?;
    write_box(out, kind, |out| {
        put_sample_entry_header(out);
        out.put_u16(0); // pre_defined
        out.put_u16(0); // reserved
        out.put_slice(&[0; 12]); // pre_defined[3]
        out.put_u16(w);
        out.put_u16(h);
        out.put_u32(0x0048_0000); // horizresolution: 72 dpi
        out.put_u32(0x0048_0000); // vertresolution: 72 dpi
        out.put_u32(0); // reserved
        out.put_u16(1); // frame_count
        let mut name = [0u8; 32];
        name[0] = COMPRESSOR_NAME.len() as u8;
        name[1..=COMPRESSOR_NAME.len()].copy_from_slice(COMPRESSOR_NAME);
        out.put_slice(&name);
        out.put_u16(0x0018); // depth: colour, no alpha
        out.put_i16(-1); // pre_defined
        codec_boxes(out)
    })
}

/// `mp4a` with an `esds` carrying the AudioSpecificConfig (14496-14 §5.6).
pub(crate) fn mp4a(out: &mut BytesMut, c: &AudioSpecificConfig) -> Result<(), CmafError> {
    // A rate over 16 bits cannot be written in the 16.16 field; like FFmpeg, write 0 there
    // and leave the rate to the AudioSpecificConfig, which is what decoders read anyway.
    let rate = u16::try_from(c.sample_rate).unwrap_or(0);
    // channelConfiguration 0 means "see the program config element"; the entry then
    // carries the ISO default of 2.
    let channels = if c.channels == 0 { 2 } else { c.channels };
    audio_sample_entry(out, *b"mp4a", channels.into(), rate, |out| esds(out, c))
}

/// `Opus` with its `dOps` (Encapsulation of Opus in ISO Base Media File Format §4.3).
/// Only channel mapping family 0 (mono, stereo) is written: the track config carries no
/// channel mapping table for more channels.
pub(crate) fn opus(out: &mut BytesMut, c: &OpusConfig) -> Result<(), CmafError> {
    if !(1..=2).contains(&c.channels) {
        return Err(CmafError::OutOfRange {
            what: "Opus sample entry",
            field: "channel count (mapping family 0)",
            value: c.channels.into(),
            max: 2,
        });
    }
    // The Opus mapping fixes the entry's rate at 48000 whatever the input rate was.
    audio_sample_entry(out, *b"Opus", c.channels.into(), 48000, |out| dops(out, c))
}

/// `AudioSampleEntry` (14496-12 §12.2.3), version 0.
fn audio_sample_entry(
    out: &mut BytesMut,
    kind: FourCc,
    channelcount: u16,
    samplerate: u16,
    codec_boxes: impl FnOnce(&mut BytesMut) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    write_box(out, kind, |out| {
        put_sample_entry_header(out);
        out.put_slice(&[0; 8]); // reserved[2]
        out.put_u16(channelcount);
        out.put_u16(16); // samplesize
        out.put_u16(0); // pre_defined
        out.put_u16(0); // reserved
        out.put_u32(u32::from(samplerate) << 16);
        codec_boxes(out)
    })
}

/// `SampleEntry` header: six reserved bytes and data_reference_index 1 (the one `dref`).
fn put_sample_entry_header(out: &mut BytesMut) {
    out.put_slice(&[0; 6]);
    out.put_u16(1);
}

/// `esds`: ES_Descriptor > DecoderConfigDescriptor (AAC, audio stream) >
/// DecoderSpecificInfo (the AudioSpecificConfig), plus the SLConfigDescriptor MP4 requires.
pub(crate) fn esds(out: &mut BytesMut, c: &AudioSpecificConfig) -> Result<(), CmafError> {
    const ES_DESCR_TAG: u8 = 0x03;
    const DECODER_CONFIG_DESCR_TAG: u8 = 0x04;
    const DEC_SPECIFIC_INFO_TAG: u8 = 0x05;
    const SL_CONFIG_DESCR_TAG: u8 = 0x06;
    /// objectTypeIndication of ISO/IEC 14496-3 audio (all AAC flavours).
    const OTI_MPEG4_AUDIO: u8 = 0x40;
    /// streamType 5 (AudioStream) << 2, upStream 0, reserved 1.
    const AUDIO_STREAM: u8 = (0x05 << 2) | 1;

    let mut dsi = BytesMut::new();
    put_descriptor(&mut dsi, DEC_SPECIFIC_INFO_TAG, &c.raw)?;
    let mut dcd = BytesMut::new();
    dcd.put_u8(OTI_MPEG4_AUDIO);
    dcd.put_u8(AUDIO_STREAM);
    dcd.put_uint(0, 3); // bufferSizeDB: unknown ahead of time for a live stream
    dcd.put_u32(0); // maxBitrate: unknown
    dcd.put_u32(0); // avgBitrate: 0 = variable
    dcd.put_slice(&dsi);
    let mut es = BytesMut::new();
    es.put_u16(0); // ES_ID: 0 in MP4, the track ID identifies the stream
    es.put_u8(0); // no streamDependence, URL or OCR stream
    put_descriptor(&mut es, DECODER_CONFIG_DESCR_TAG, &dcd)?;
    put_descriptor(&mut es, SL_CONFIG_DESCR_TAG, &[0x02])?; // predefined: MP4
    write_full_box(out, *b"esds", 0, 0, |out| {
        put_descriptor(out, ES_DESCR_TAG, &es)
    })
}

/// An MPEG-4 descriptor (14496-1 §8.3.3): tag, then the body size in the expandable
/// 7-bits-per-byte form (at most 4 bytes, so bodies up to 2^28 - 1 bytes), then the body.
fn put_descriptor(out: &mut BytesMut, tag: u8, body: &[u8]) -> Result<(), CmafError> {
    const MAX: usize = (1 << 28) - 1;
    let len = body.len();
    if len > MAX {
        return Err(CmafError::OutOfRange {
            what: "esds",
            field: "descriptor size",
            value: len as u64,
            max: MAX as u64,
        });
    }
    out.put_u8(tag);
    let groups = match len {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    };
    for i in (0..groups).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.put_u8(more | ((len >> (7 * i)) & 0x7F) as u8);
    }
    out.put_slice(body);
    Ok(())
}

/// `dOps`, the OpusSpecificBox: the OpusHead fields in big-endian order.
pub(crate) fn dops(out: &mut BytesMut, c: &OpusConfig) -> Result<(), CmafError> {
    write_box(out, *b"dOps", |out| {
        out.put_u8(0); // Version
        out.put_u8(c.channels); // OutputChannelCount
        out.put_u16(c.pre_skip);
        out.put_u32(c.input_sample_rate);
        out.put_i16(c.output_gain);
        out.put_u8(0); // ChannelMappingFamily 0: mono or stereo, no table
        Ok(())
    })
}

fn u16_field(what: &'static str, field: &'static str, value: u32) -> Result<u16, CmafError> {
    u16::try_from(value).map_err(|_| CmafError::OutOfRange {
        what,
        field,
        value: value.into(),
        max: u16::MAX.into(),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn descriptor_sizes_use_the_shortest_expandable_form() {
        let mut out = BytesMut::new();
        put_descriptor(&mut out, 5, &[0x11, 0x90]).unwrap();
        assert_eq!(&out[..], [5, 2, 0x11, 0x90]);
        let mut out = BytesMut::new();
        put_descriptor(&mut out, 4, &[0; 200]).unwrap();
        // 200 = 0b1_1001000: groups 0000001, 1001000.
        assert_eq!(&out[..3], [4, 0x81, 0x48]);
        assert_eq!(out.len(), 3 + 200);
    }

    #[test]
    fn esds_for_aac_lc_48k_stereo() {
        // AudioSpecificConfig 0x11 0x90: AAC-LC, 48000 Hz, 2 channels.
        let asc = AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut out = BytesMut::new();
        esds(&mut out, &asc).unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 0x27, b'e', b's', b'd', b's', 0, 0, 0, 0, // FullBox v0
            0x03, 0x19, 0, 0, 0, // ES_Descriptor, ES_ID 0, flags 0
            0x04, 0x11, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
            0x05, 0x02, 0x11, 0x90, // DecoderSpecificInfo
            0x06, 0x01, 0x02, // SLConfigDescriptor
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn dops_is_big_endian_opus_head() {
        let c = OpusConfig {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48000,
            output_gain: -1,
        };
        let mut out = BytesMut::new();
        dops(&mut out, &c).unwrap();
        assert_eq!(
            &out[..],
            [
                0, 0, 0, 19, b'd', b'O', b'p', b's', 0, 2, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0xFF,
                0xFF, 0
            ]
        );
    }

    #[test]
    fn opus_with_more_than_two_channels_is_refused() {
        let c = OpusConfig {
            channels: 6,
            pre_skip: 312,
            input_sample_rate: 48000,
            output_gain: 0,
        };
        let err = opus(&mut BytesMut::new(), &c).unwrap_err();
        assert!(
            matches!(err, CmafError::OutOfRange { value: 6, .. }),
            "{err}"
        );
    }
}
