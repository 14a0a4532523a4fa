//! ISO/IEC 14496-12 box framing: the size/type header of `Box` and the version/flags
//! header of `FullBox`, written around a body that a closure fills in.
//!
//! Sizes are patched in after the body is written, so no box writer has to know its own
//! length in advance. Only 32-bit sizes are written: a fragment over 4 GiB is refused
//! ([`CmafError::BoxTooLarge`]), never silently truncated.

use bytes::{BufMut, BytesMut};

use crate::CmafError;

/// A four-character code, as every box type and brand is.
pub(crate) type FourCc = [u8; 4];

/// Writes `size, type, body` and patches `size` once the body is known.
pub(crate) fn write_box(
    out: &mut BytesMut,
    kind: FourCc,
    body: impl FnOnce(&mut BytesMut) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(&kind);
    body(out)?;
    let size = (out.len() - start) as u64;
    let size32 = u32::try_from(size).map_err(|_| CmafError::BoxTooLarge {
        what: box_name(&kind),
        size,
    })?;
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&size32.to_be_bytes());
    }
    Ok(())
}

/// Writes a `FullBox`: a box whose body starts with an 8-bit version and 24-bit flags.
pub(crate) fn write_full_box(
    out: &mut BytesMut,
    kind: FourCc,
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    write_box(out, kind, |out| {
        out.put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        body(out)
    })
}

/// A static name for a box type, for error messages.
fn box_name(kind: &FourCc) -> &'static str {
    match kind {
        b"mdat" => "mdat",
        b"moof" => "moof",
        b"traf" => "traf",
        b"trun" => "trun",
        b"moov" => "moov",
        b"stsd" => "stsd",
        _ => "ISO BMFF",
    }
}

/// The unity transformation matrix of `mvhd` and `tkhd` (14496-12 §8.2.2.3).
pub(crate) fn put_unity_matrix(out: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_size_covers_header_and_body() {
        let mut out = BytesMut::new();
        write_box(&mut out, *b"free", |o| {
            o.put_slice(b"abc");
            Ok(())
        })
        .unwrap();
        assert_eq!(&out[..], b"\x00\x00\x00\x0bfreeabc");
    }

    #[test]
    fn full_box_writes_version_and_24_bit_flags() {
        let mut out = BytesMut::new();
        write_full_box(&mut out, *b"test", 1, 0xFF02_0001, |_| Ok(())).unwrap();
        assert_eq!(&out[..], b"\x00\x00\x00\x0ctest\x01\x02\x00\x01");
    }

    #[test]
    fn body_errors_propagate() {
        let mut out = BytesMut::new();
        let err = write_box(&mut out, *b"moof", |_| Err(CmafError::NoSamples)).unwrap_err();
        assert_eq!(err, CmafError::NoSamples);
    }
}
