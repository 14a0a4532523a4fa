//! CMAF fragments and chunks (ISO/IEC 23000-19 §7.3.2.3–4): optional `styp` and `prft`,
//! then `moof` (`mfhd`, `traf` > `tfhd`, `tfdt`, `trun`) and `mdat`.
//!
//! One `trun` describes every sample explicitly (duration, size, flags, and for video the
//! composition offset), so a fragment never depends on defaults another fragment set.
//! The sample payloads are copied exactly once, into the returned buffer, which every
//! viewer then shares.

use bytes::{BufMut, Bytes, BytesMut};
use starling_media::{Track, TrackKind};

use crate::{
    bmff::{write_box, write_full_box, FourCc},
    init::ftyp,
    CmafError, TRACK_ID,
};

/// `styp` brands for a segment start: CMAF segment (`cmfs`) and fragment (`cmff`), the
/// ISOBMFF feature brand `iso6`, and `msdh` (DASH media segment).
pub(crate) const STYP_MAJOR: FourCc = *b"cmfs";
pub(crate) const STYP_COMPATIBLE: [FourCc; 4] = [*b"cmfs", *b"cmff", *b"iso6", *b"msdh"];

/// `sample_flags` of a sync sample: sample_depends_on = 2 (depends on no other sample).
pub(crate) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample.
pub(crate) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// One access unit of the track, timed in the track's timescale.
#[derive(Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode duration: the next sample's decode time minus this one's.
    pub duration: u32,
    /// Composition (presentation) time minus decode time; may be negative (see the crate
    /// docs on B-frames).
    pub cts_offset: i32,
    /// A sync sample (IDR/IRAP). Ignored for audio, where every sample is sync.
    pub keyframe: bool,
    /// The payload in the canonical form of `starling_media` (length-prefixed NAL units,
    /// raw AAC access unit, raw Opus packet).
    pub data: Bytes,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("duration", &self.duration)
            .field("cts_offset", &self.cts_offset)
            .field("keyframe", &self.keyframe)
            .field("len", &self.data.len())
            .finish()
    }
}

/// How to frame one fragment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FragmentOptions {
    /// `mfhd` sequence_number: starts at 1 and increases by 1 with every fragment of the
    /// track, parts included.
    pub sequence_number: u32,
    /// `tfdt` baseMediaDecodeTime: decode time of the first sample, in the track timescale.
    pub base_media_decode_time: u64,
    /// Write a `styp` first: set at the start of a segment (and of an LL-HLS part that
    /// is served as its own resource, if the packager wants it there), clear for
    /// following parts so their bytes concatenate into the segment unchanged.
    pub styp: bool,
    /// Write a `prft` before the `moof`, anchoring media time to wall-clock time.
    pub prft: Option<ProducerReference>,
}

/// The contents of a `prft` (14496-12 §8.16.5), written with version 1 and flags 1
/// ("time at which the frame was output from the encoder": the wall-clock time the frame
/// reached the server is the closest thing to that a relay knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerReference {
    /// 64-bit NTP time (see [`crate::ntp_from_system_time`]) of the wall clock when the
    /// first sample of the fragment arrived.
    pub ntp_timestamp: u64,
    /// The media time, in the track timescale, that `ntp_timestamp` corresponds to. The
    /// spec means the *presentation* time of that frame; with the timestamp handling the
    /// crate docs recommend, a fragment's first keyframe has equal decode and
    /// presentation times, so its decode time is the right value.
    pub media_time: u64,
}

/// `prft` flags: the NTP time is when the frame left the encoder (reached us).
pub(crate) const PRFT_FLAGS_OUTPUT_FROM_ENCODER: u32 = 0x00_0001;

/// Writes `styp?` + `prft?` + `moof` + `mdat` for `samples`, track_ID 1.
///
/// Fails on an empty sample list, a sample or fragment over 4 GiB, or more samples than
/// a `trun` can count; never panics.
pub fn media_fragment(
    track: &Track,
    samples: &[Sample],
    opts: &FragmentOptions,
) -> Result<Bytes, CmafError> {
    if samples.is_empty() {
        return Err(CmafError::NoSamples);
    }
    let payload_len: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
    let mdat_size = payload_len + 8;
    if mdat_size > u64::from(u32::MAX) {
        return Err(CmafError::BoxTooLarge {
            what: "mdat",
            size: mdat_size,
        });
    }
    let video = track.kind() == TrackKind::Video;
    // Sizes were bounded above, so this estimate cannot overflow.
    let header_estimate = 160 + samples.len().saturating_mul(16);
    let mut out = BytesMut::with_capacity(header_estimate + payload_len as usize);
    if opts.styp {
        ftyp(&mut out, *b"styp", STYP_MAJOR, &STYP_COMPATIBLE)?;
    }
    if let Some(reference) = &opts.prft {
        prft(&mut out, reference)?;
    }
    let moof_start = out.len();
    let data_offset_at = moof(&mut out, opts, samples, video)?;
    // data_offset counts from the first byte of the moof (default-base-is-moof) to the
    // first payload byte, just past the mdat header.
    let data_offset = (out.len() - moof_start) as u64 + 8;
    let data_offset = i32::try_from(data_offset).map_err(|_| CmafError::BoxTooLarge {
        what: "moof",
        size: data_offset,
    })?;
    if let Some(slot) = out.get_mut(data_offset_at..data_offset_at + 4) {
        slot.copy_from_slice(&data_offset.to_be_bytes());
    }
    mdat(&mut out, samples)?;
    Ok(out.freeze())
}

/// `prft` version 1 (64-bit media_time), reference_track_ID 1.
pub(crate) fn prft(out: &mut BytesMut, r: &ProducerReference) -> Result<(), CmafError> {
    write_full_box(out, *b"prft", 1, PRFT_FLAGS_OUTPUT_FROM_ENCODER, |out| {
        out.put_u32(TRACK_ID);
        out.put_u64(r.ntp_timestamp);
        out.put_u64(r.media_time);
        Ok(())
    })
}

/// Writes the `moof` and returns the buffer offset of the `trun` data_offset field,
/// which only the caller can fill in once the `moof` size is known.
fn moof(
    out: &mut BytesMut,
    opts: &FragmentOptions,
    samples: &[Sample],
    video: bool,
) -> Result<usize, CmafError> {
    let mut data_offset_at = 0;
    write_box(out, *b"moof", |out| {
        mfhd(out, opts.sequence_number)?;
        write_box(out, *b"traf", |out| {
            tfhd(out)?;
            tfdt(out, opts.base_media_decode_time)?;
            data_offset_at = trun(out, samples, video)?;
            Ok(())
        })
    })?;
    Ok(data_offset_at)
}

pub(crate) fn mfhd(out: &mut BytesMut, sequence_number: u32) -> Result<(), CmafError> {
    write_full_box(out, *b"mfhd", 0, 0, |out| {
        out.put_u32(sequence_number);
        Ok(())
    })
}

/// `tfhd` with only default-base-is-moof: offsets count from this fragment's `moof`, so a
/// fragment means the same wherever it sits in a file or a response.
pub(crate) fn tfhd(out: &mut BytesMut) -> Result<(), CmafError> {
    const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
    write_full_box(out, *b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |out| {
        out.put_u32(TRACK_ID);
        Ok(())
    })
}

/// `tfdt` version 1: a 64-bit baseMediaDecodeTime that never wraps in a live stream.
pub(crate) fn tfdt(out: &mut BytesMut, base_media_decode_time: u64) -> Result<(), CmafError> {
    write_full_box(out, *b"tfdt", 1, 0, |out| {
        out.put_u64(base_media_decode_time);
        Ok(())
    })
}

/// `trun` version 1 (signed composition offsets). Returns the buffer offset of the
/// data_offset field, written as 0 here.
pub(crate) fn trun(
    out: &mut BytesMut,
    samples: &[Sample],
    video: bool,
) -> Result<usize, CmafError> {
    const DATA_OFFSET_PRESENT: u32 = 0x00_0001;
    const SAMPLE_DURATION_PRESENT: u32 = 0x00_0100;
    const SAMPLE_SIZE_PRESENT: u32 = 0x00_0200;
    const SAMPLE_FLAGS_PRESENT: u32 = 0x00_0400;
    const SAMPLE_CTS_OFFSETS_PRESENT: u32 = 0x00_0800;

    let sample_count = u32::try_from(samples.len()).map_err(|_| CmafError::OutOfRange {
        what: "trun",
        field: "sample_count",
        value: samples.len() as u64,
        max: u32::MAX.into(),
    })?;
    // Video always carries offsets (B-frames); audio only if a caller gave some.
    let cts = video || samples.iter().any(|s| s.cts_offset != 0);
    let mut flags =
        DATA_OFFSET_PRESENT | SAMPLE_DURATION_PRESENT | SAMPLE_SIZE_PRESENT | SAMPLE_FLAGS_PRESENT;
    if cts {
        flags |= SAMPLE_CTS_OFFSETS_PRESENT;
    }
    let mut data_offset_at = 0;
    write_full_box(out, *b"trun", 1, flags, |out| {
        out.put_u32(sample_count);
        data_offset_at = out.len();
        out.put_i32(0); // data_offset, patched by the caller
        for s in samples {
            let size = u32::try_from(s.data.len()).map_err(|_| CmafError::OutOfRange {
                what: "trun",
                field: "sample_size",
                value: s.data.len() as u64,
                max: u32::MAX.into(),
            })?;
            out.put_u32(s.duration);
            out.put_u32(size);
            out.put_u32(if s.keyframe || !video {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            });
            if cts {
                out.put_i32(s.cts_offset);
            }
        }
        Ok(())
    })?;
    Ok(data_offset_at)
}

fn mdat(out: &mut BytesMut, samples: &[Sample]) -> Result<(), CmafError> {
    write_box(out, *b"mdat", |out| {
        for s in samples {
            out.put_slice(&s.data);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use starling_media::{aac::AudioSpecificConfig, CodecConfig, OpusConfig, TrackId};

    use super::*;

    fn audio_track() -> Track {
        Track {
            id: TrackId(2),
            timescale: 48000,
            config: CodecConfig::Aac(
                AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap(),
            ),
        }
    }

    #[test]
    fn mfhd_bytes() {
        let mut out = BytesMut::new();
        mfhd(&mut out, 0x0102_0304).unwrap();
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x10mfhd\x00\x00\x00\x00\x01\x02\x03\x04"
        );
    }

    #[test]
    fn tfdt_bytes_are_64_bit() {
        let mut out = BytesMut::new();
        tfdt(&mut out, 0x0000_0001_0000_0002).unwrap();
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x14tfdt\x01\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02"
        );
    }

    #[test]
    fn tfhd_bytes() {
        let mut out = BytesMut::new();
        tfhd(&mut out).unwrap();
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x10tfhd\x00\x02\x00\x00\x00\x00\x00\x01"
        );
    }

    #[test]
    fn tiny_video_trun_bytes() {
        let samples = [
            Sample {
                duration: 3600,
                cts_offset: 0,
                keyframe: true,
                data: Bytes::from_static(&[1, 2, 3]),
            },
            Sample {
                duration: 3600,
                cts_offset: -3600,
                keyframe: false,
                data: Bytes::from_static(&[4]),
            },
        ];
        let mut out = BytesMut::new();
        let at = trun(&mut out, &samples, true).unwrap();
        assert_eq!(at, 16);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 52, b't', b'r', b'u', b'n',
            1, 0, 0x0F, 0x01, // version 1; data offset, duration, size, flags, cts present
            0, 0, 0, 2, // sample_count
            0, 0, 0, 0, // data_offset (patched later)
            0, 0, 0x0E, 0x10, 0, 0, 0, 3, 0x02, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0x0E, 0x10, 0, 0, 0, 1, 0x01, 0x01, 0, 0, 0xFF, 0xFF, 0xF1, 0xF0,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn audio_trun_has_no_cts_and_every_sample_is_sync() {
        let samples = [Sample {
            duration: 1024,
            cts_offset: 0,
            keyframe: false,
            data: Bytes::from_static(&[9, 9]),
        }];
        let mut out = BytesMut::new();
        trun(&mut out, &samples, false).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 32, b't', b'r', b'u', b'n', 1, 0, 0x07, 0x01, 0, 0, 0, 1, 0, 0, 0, 0,
            0, 0, 0x04, 0x00, 0, 0, 0, 2, 0x02, 0, 0, 0,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn prft_bytes() {
        let mut out = BytesMut::new();
        prft(
            &mut out,
            &ProducerReference {
                ntp_timestamp: 0xE9F0_0000_8000_0000,
                media_time: 90_000,
            },
        )
        .unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 32, b'p', b'r', b'f', b't',
            1, 0, 0, 1, // version 1, flags 1
            0, 0, 0, 1, // reference_track_ID
            0xE9, 0xF0, 0, 0, 0x80, 0, 0, 0, // ntp_timestamp
            0, 0, 0, 0, 0, 0x01, 0x5F, 0x90, // media_time
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn whole_fragment_layout_and_data_offset() {
        let samples = [
            Sample {
                duration: 1024,
                cts_offset: 0,
                keyframe: true,
                data: Bytes::from_static(b"abc"),
            },
            Sample {
                duration: 1024,
                cts_offset: 0,
                keyframe: true,
                data: Bytes::from_static(b"de"),
            },
        ];
        let opts = FragmentOptions {
            sequence_number: 5,
            base_media_decode_time: 2048,
            styp: true,
            prft: Some(ProducerReference {
                ntp_timestamp: 1,
                media_time: 2048,
            }),
        };
        let frag = media_fragment(&audio_track(), &samples, &opts).unwrap();
        let kinds: Vec<&[u8]> = top_level(&frag).iter().map(|(k, _, _)| *k).collect();
        assert_eq!(kinds, [b"styp", b"prft", b"moof", b"mdat"]);
        let (_, moof_at, moof_len) = top_level(&frag)[2];
        // moof = 8 + mfhd 16 + traf (8 + tfhd 16 + tfdt 20 + trun 20 + 2 * 12).
        assert_eq!(moof_len, 8 + 16 + 8 + 16 + 20 + 20 + 24);
        let trun_at = moof_at + 8 + 16 + 8 + 16 + 20;
        assert_eq!(&frag[trun_at + 4..trun_at + 8], b"trun");
        let data_offset =
            i32::from_be_bytes(frag[trun_at + 16..trun_at + 20].try_into().unwrap()) as usize;
        assert_eq!(&frag[moof_at + data_offset..], b"abcde");
    }

    #[test]
    fn part_without_styp_or_prft_starts_with_moof() {
        let samples = [Sample {
            duration: 960,
            cts_offset: 0,
            keyframe: true,
            data: Bytes::from_static(b"x"),
        }];
        let track = Track {
            id: TrackId(1),
            timescale: 48000,
            config: CodecConfig::Opus(OpusConfig {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48000,
                output_gain: 0,
            }),
        };
        let frag = media_fragment(&track, &samples, &FragmentOptions::default()).unwrap();
        assert_eq!(&frag[4..8], b"moof");
    }

    #[test]
    fn empty_fragment_is_refused() {
        let err = media_fragment(&audio_track(), &[], &FragmentOptions::default()).unwrap_err();
        assert_eq!(err, CmafError::NoSamples);
    }

    /// (type, offset, size) of each top-level box.
    fn top_level(data: &[u8]) -> Vec<(&[u8], usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            out.push((&data[pos + 4..pos + 8], pos, size));
            pos += size;
        }
        assert_eq!(pos, data.len());
        out
    }
}
