//! The CMAF header (ISO/IEC 23000-19 §7.3.2.1): `ftyp` + `moov` for one track, with empty
//! sample tables (every sample lives in a fragment) and `mvex`/`trex` announcing fragments.
//!
//! Durations are 0 throughout: a live track has no known duration, and a CMAF header must
//! not change as the track grows. No edit list is written (see the crate docs on B-frames).

use bytes::{BufMut, Bytes, BytesMut};
use starling_media::{CodecConfig, Track, TrackKind};

use crate::{
    bmff::{put_unity_matrix, write_box, write_full_box, FourCc},
    sample_entry, CmafError, TRACK_ID,
};

/// `ftyp` brands: the CMAF track brand `cmfc` as major brand, `iso6` for the ISOBMFF
/// features used (`tfdt`, signed composition offsets, default-base-is-moof), `dash` so
/// DASH players accept the same file.
pub(crate) const FTYP_MAJOR: FourCc = *b"cmfc";
pub(crate) const FTYP_COMPATIBLE: [FourCc; 3] = [*b"cmfc", *b"iso6", *b"dash"];

/// Writes the init segment (`ftyp` + `moov`) for one track, track_ID 1.
pub fn init_segment(track: &Track) -> Result<Bytes, CmafError> {
    if track.timescale == 0 {
        return Err(CmafError::ZeroTimescale);
    }
    let mut out = BytesMut::with_capacity(1024);
    ftyp(&mut out, *b"ftyp", FTYP_MAJOR, &FTYP_COMPATIBLE)?;
    moov(&mut out, track)?;
    Ok(out.freeze())
}

/// `ftyp` / `styp` (14496-12 §4.3, §8.16.2): same layout, different type.
pub(crate) fn ftyp(
    out: &mut BytesMut,
    kind: FourCc,
    major: FourCc,
    compatible: &[FourCc],
) -> Result<(), CmafError> {
    write_box(out, kind, |out| {
        out.put_slice(&major);
        out.put_u32(0); // minor_version
        for brand in compatible {
            out.put_slice(brand);
        }
        Ok(())
    })
}

fn moov(out: &mut BytesMut, track: &Track) -> Result<(), CmafError> {
    write_box(out, *b"moov", |out| {
        mvhd(out, track.timescale)?;
        trak(out, track)?;
        mvex(out)
    })
}

/// `mvhd` version 0: movie timescale = track timescale, duration 0, next_track_ID 2.
fn mvhd(out: &mut BytesMut, timescale: u32) -> Result<(), CmafError> {
    write_full_box(out, *b"mvhd", 0, 0, |out| {
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(timescale);
        out.put_u32(0); // duration: unknown (live)
        out.put_u32(0x0001_0000); // rate 1.0
        out.put_u16(0x0100); // volume 1.0
        out.put_slice(&[0; 10]); // reserved
        put_unity_matrix(out);
        out.put_slice(&[0; 24]); // pre_defined[6]
        out.put_u32(TRACK_ID + 1); // next_track_ID
        Ok(())
    })
}

fn trak(out: &mut BytesMut, track: &Track) -> Result<(), CmafError> {
    write_box(out, *b"trak", |out| {
        tkhd(out, track)?;
        mdia(out, track)
    })
}

/// `tkhd` version 0, flags track_enabled | track_in_movie.
fn tkhd(out: &mut BytesMut, track: &Track) -> Result<(), CmafError> {
    const TRACK_ENABLED: u32 = 0x1;
    const TRACK_IN_MOVIE: u32 = 0x2;
    let (width, height) = track.config.dimensions().unwrap_or((0, 0));
    // 16.16 fixed point; the sample entry's 16-bit fields bound the size anyway.
    let fixed = |v: u32, field| {
        u16::try_from(v)
            .map(|v| u32::from(v) << 16)
            .map_err(|_| CmafError::OutOfRange {
                what: "tkhd",
                field,
                value: v.into(),
                max: u16::MAX.into(),
            })
    };
    let (width, height) = (fixed(width, "width")?, fixed(height, "height")?);
    let volume = match track.kind() {
        TrackKind::Audio => 0x0100,
        TrackKind::Video => 0,
    };
    write_full_box(out, *b"tkhd", 0, TRACK_ENABLED | TRACK_IN_MOVIE, |out| {
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(TRACK_ID);
        out.put_u32(0); // reserved
        out.put_u32(0); // duration
        out.put_slice(&[0; 8]); // reserved[2]
        out.put_u16(0); // layer
        out.put_u16(0); // alternate_group
        out.put_u16(volume);
        out.put_u16(0); // reserved
        put_unity_matrix(out);
        out.put_u32(width);
        out.put_u32(height);
        Ok(())
    })
}

fn mdia(out: &mut BytesMut, track: &Track) -> Result<(), CmafError> {
    write_box(out, *b"mdia", |out| {
        mdhd(out, track.timescale)?;
        hdlr(out, track.kind())?;
        minf(out, track)
    })
}

/// `mdhd` version 0, language `und`.
fn mdhd(out: &mut BytesMut, timescale: u32) -> Result<(), CmafError> {
    write_full_box(out, *b"mdhd", 0, 0, |out| {
        out.put_u32(0); // creation_time
        out.put_u32(0); // modification_time
        out.put_u32(timescale);
        out.put_u32(0); // duration
        out.put_u16(language_code(*b"und"));
        out.put_u16(0); // pre_defined
        Ok(())
    })
}

/// ISO 639-2/T code packed as three 5-bit letters (each minus 0x60), pad bit 0.
fn language_code(lang: [u8; 3]) -> u16 {
    lang.iter().fold(0u16, |acc, &c| {
        (acc << 5) | u16::from(c.wrapping_sub(0x60) & 0x1F)
    })
}

fn hdlr(out: &mut BytesMut, kind: TrackKind) -> Result<(), CmafError> {
    let (handler, name): (FourCc, &[u8]) = match kind {
        TrackKind::Video => (*b"vide", b"VideoHandler\0"),
        TrackKind::Audio => (*b"soun", b"SoundHandler\0"),
    };
    write_full_box(out, *b"hdlr", 0, 0, |out| {
        out.put_u32(0); // pre_defined
        out.put_slice(&handler);
        out.put_slice(&[0; 12]); // reserved[3]
        out.put_slice(name);
        Ok(())
    })
}

fn minf(out: &mut BytesMut, track: &Track) -> Result<(), CmafError> {
    write_box(out, *b"minf", |out| {
        match track.kind() {
            // vmhd flags must be 1 (14496-12 §12.1.2.2).
            TrackKind::Video => write_full_box(out, *b"vmhd", 0, 1, |out| {
                out.put_u16(0); // graphicsmode: copy
                out.put_slice(&[0; 6]); // opcolor
                Ok(())
            })?,
            TrackKind::Audio => write_full_box(out, *b"smhd", 0, 0, |out| {
                out.put_u16(0); // balance
                out.put_u16(0); // reserved
                Ok(())
            })?,
        }
        dinf(out)?;
        stbl(out, &track.config)
    })
}

/// `dinf` > `dref` with one self-contained `url ` entry: the media is in this file.
fn dinf(out: &mut BytesMut) -> Result<(), CmafError> {
    write_box(out, *b"dinf", |out| {
        write_full_box(out, *b"dref", 0, 0, |out| {
            out.put_u32(1); // entry_count
            write_full_box(out, *b"url ", 0, 1, |_| Ok(()))
        })
    })
}

/// `stbl` with the one sample entry and empty `stts`, `stsc`, `stsz`, `stco`.
fn stbl(out: &mut BytesMut, config: &CodecConfig) -> Result<(), CmafError> {
    write_box(out, *b"stbl", |out| {
        stsd(out, config)?;
        empty_table(out, *b"stts")?;
        empty_table(out, *b"stsc")?;
        write_full_box(out, *b"stsz", 0, 0, |out| {
            out.put_u32(0); // sample_size
            out.put_u32(0); // sample_count
            Ok(())
        })?;
        empty_table(out, *b"stco")
    })
}

/// A sample table box with entry_count 0.
fn empty_table(out: &mut BytesMut, kind: FourCc) -> Result<(), CmafError> {
    write_full_box(out, kind, 0, 0, |out| {
        out.put_u32(0); // entry_count
        Ok(())
    })
}

fn stsd(out: &mut BytesMut, config: &CodecConfig) -> Result<(), CmafError> {
    write_full_box(out, *b"stsd", 0, 0, |out| {
        out.put_u32(1); // entry_count
        match config {
            CodecConfig::H264(c) => sample_entry::avc1(out, c),
            CodecConfig::H265(c) => sample_entry::hvc1(out, c),
            CodecConfig::Aac(c) => sample_entry::mp4a(out, c),
            CodecConfig::Opus(c) => sample_entry::opus(out, c),
            other => Err(CmafError::UnsupportedCodec(other.codec_string())),
        }
    })
}

/// `mvex` > `trex`: fragments follow; defaults are all overridden per sample in `trun`.
fn mvex(out: &mut BytesMut) -> Result<(), CmafError> {
    write_box(out, *b"mvex", trex)
}

pub(crate) fn trex(out: &mut BytesMut) -> Result<(), CmafError> {
    write_full_box(out, *b"trex", 0, 0, |out| {
        out.put_u32(TRACK_ID);
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(0); // default_sample_flags
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use starling_media::{aac::AudioSpecificConfig, TrackId};

    use super::*;

    #[test]
    fn trex_bytes() {
        let mut out = BytesMut::new();
        trex(&mut out).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 32, b't', b'r', b'e', b'x', 0, 0, 0, 0,
            0, 0, 0, 1, // track_ID
            0, 0, 0, 1, // default_sample_description_index
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn und_packs_to_0x55c4() {
        assert_eq!(language_code(*b"und"), 0x55C4);
    }

    #[test]
    fn ftyp_bytes() {
        let mut out = BytesMut::new();
        ftyp(&mut out, *b"ftyp", FTYP_MAJOR, &FTYP_COMPATIBLE).unwrap();
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x1cftypcmfc\x00\x00\x00\x00cmfciso6dash"
        );
    }

    #[test]
    fn zero_timescale_is_refused() {
        let track = Track {
            id: TrackId(1),
            timescale: 0,
            config: CodecConfig::Aac(
                AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap(),
            ),
        };
        assert_eq!(init_segment(&track), Err(CmafError::ZeroTimescale));
    }

    #[test]
    fn aac_init_segment_nests_boxes_in_order() {
        let track = Track {
            id: TrackId(7),
            timescale: 48000,
            config: CodecConfig::Aac(
                AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap(),
            ),
        };
        let init = init_segment(&track).unwrap();
        let path = box_path(&init);
        let expected = [
            "ftyp",
            "moov",
            "moov/mvhd",
            "moov/trak",
            "moov/trak/tkhd",
            "moov/trak/mdia",
            "moov/trak/mdia/mdhd",
            "moov/trak/mdia/hdlr",
            "moov/trak/mdia/minf",
            "moov/trak/mdia/minf/smhd",
            "moov/trak/mdia/minf/dinf",
            "moov/trak/mdia/minf/dinf/dref",
            "moov/trak/mdia/minf/stbl",
            "moov/trak/mdia/minf/stbl/stsd",
            "moov/trak/mdia/minf/stbl/stts",
            "moov/trak/mdia/minf/stbl/stsc",
            "moov/trak/mdia/minf/stbl/stsz",
            "moov/trak/mdia/minf/stbl/stco",
            "moov/mvex",
            "moov/mvex/trex",
        ];
        assert_eq!(path, expected);
    }

    /// Walks plain container boxes (not full boxes or sample entries) and lists the paths.
    fn box_path(data: &[u8]) -> Vec<String> {
        const CONTAINERS: [&[u8]; 7] = [
            b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex",
        ];
        fn walk(data: &[u8], prefix: &str, out: &mut Vec<String>) {
            let mut pos = 0;
            while pos + 8 <= data.len() {
                let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
                let kind = std::str::from_utf8(&data[pos + 4..pos + 8]).unwrap();
                assert!(size >= 8 && pos + size <= data.len(), "bad size of {kind}");
                let path = format!("{prefix}{kind}");
                out.push(path.clone());
                if CONTAINERS.contains(&kind.as_bytes()) {
                    walk(&data[pos + 8..pos + size], &format!("{path}/"), out);
                }
                pos += size;
            }
            assert_eq!(pos, data.len(), "trailing bytes under {prefix}");
        }
        let mut out = Vec::new();
        walk(data, "", &mut out);
        out
    }
}
