//! Media bodies: enough of a look to refuse what is plainly not the container the name
//! says (an HTML error page, a truncated upload, a file of the other kind), not a
//! full parse. Players get exactly the bytes the packager sent.

use super::PutError;

/// Boxes an fMP4 init section or segment may start with (ISO/IEC 14496-12, ISO/IEC
/// 23000-19): `ftyp`/`moov` for an init section; `styp`, `sidx`, `prft`, `emsg` or
/// `moof` first for a segment or part.
const FIRST_BOXES: [&[u8; 4]; 7] = [
    b"ftyp", b"styp", b"sidx", b"prft", b"emsg", b"moof", b"moov",
];

/// What an fMP4 body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmp4Kind {
    /// Has a `moov`: the init section.
    Init,
    /// Has `moof` and `mdat`: a segment or a part.
    Media,
}

/// Walks the top-level boxes of an fMP4 body: every box lies inside the body (32-bit
/// sizes and 64-bit `largesize`; size 0, "to the end of the file", only for the last
/// box), the first is one an fMP4 file starts with, and the body holds a `moov` or a
/// `moof` with its `mdat`.
pub fn check_fmp4(body: &[u8]) -> Result<Fmp4Kind, PutError> {
    let not = |why: String| PutError::NotCmaf(why);
    if body.is_empty() {
        return Err(not("the body is empty".into()));
    }
    let (mut moov, mut moof, mut mdat) = (false, false, false);
    let mut offset = 0usize;
    while offset < body.len() {
        let rest = &body[offset..];
        if rest.len() < 8 {
            return Err(not(format!(
                "{} bytes at offset {offset} are too few for a box header (8)",
                rest.len()
            )));
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind: [u8; 4] = [rest[4], rest[5], rest[6], rest[7]];
        let size = match size32 {
            0 => rest.len() as u64,
            1 => {
                if rest.len() < 16 {
                    return Err(not(format!(
                        "box {} at offset {offset} has a 64-bit size but the body ends before it",
                        fourcc(&kind)
                    )));
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[8..16]);
                let large = u64::from_be_bytes(b);
                if large < 16 {
                    return Err(not(format!(
                        "box {} at offset {offset} has a 64-bit size of {large}, less than its own header",
                        fourcc(&kind)
                    )));
                }
                large
            }
            2..=7 => {
                return Err(not(format!(
                    "box {} at offset {offset} has a size of {size32}, less than its own header",
                    fourcc(&kind)
                )))
            }
            n => u64::from(n),
        };
        if offset == 0 && !FIRST_BOXES.iter().any(|b| **b == kind) {
            return Err(not(format!(
                "box {} at offset 0 is not a top-level fMP4 box (expected one of ftyp, styp, sidx, prft, emsg, moof, moov)",
                fourcc(&kind)
            )));
        }
        if size > rest.len() as u64 {
            return Err(not(format!(
                "box {} at offset {offset} declares {size} bytes but only {} remain (a truncated upload?)",
                fourcc(&kind),
                rest.len()
            )));
        }
        match &kind {
            b"moov" => moov = true,
            b"moof" => moof = true,
            b"mdat" => mdat = true,
            _ => {}
        }
        // `size` ≤ rest.len() here, so this neither overflows nor passes the end.
        offset += size as usize;
    }
    match (moov, moof, mdat) {
        (true, _, _) => Ok(Fmp4Kind::Init),
        (false, true, true) => Ok(Fmp4Kind::Media),
        (false, true, false) => Err(not("it has a 'moof' but no 'mdat'".into())),
        (false, false, true) => Err(not("it has an 'mdat' but no 'moof'".into())),
        (false, false, false) => Err(not(
            "it has neither a 'moov' (an init section) nor a 'moof' and 'mdat' (a segment)".into(),
        )),
    }
}

/// `'moof'` when printable, else the four bytes in hex (`0x3c21444f`).
fn fourcc(kind: &[u8; 4]) -> String {
    if kind.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("'{}'", kind.iter().map(|&b| b as char).collect::<String>())
    } else {
        format!("0x{:08x}", u32::from_be_bytes(*kind))
    }
}

/// MPEG-TS packet size (ISO/IEC 13818-1); 192-byte M2TS is not taken.
const TS_PACKET: usize = 188;

/// A body of whole 188-byte transport packets, each starting with the sync byte 0x47.
pub fn check_ts(body: &[u8]) -> Result<(), PutError> {
    let not = |why: String| PutError::NotTs(why);
    if body.is_empty() {
        return Err(not("the body is empty".into()));
    }
    if !body.len().is_multiple_of(TS_PACKET) {
        return Err(not(format!(
            "its {} bytes are not a whole number of {TS_PACKET}-byte packets",
            body.len()
        )));
    }
    if let Some(n) = body.chunks(TS_PACKET).position(|p| p[0] != 0x47) {
        return Err(not(format!(
            "packet {n} (offset {}) starts with 0x{:02x}, not the sync byte 0x47",
            n * TS_PACKET,
            body[n * TS_PACKET]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    fn large(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn err(body: &[u8]) -> String {
        check_fmp4(body).unwrap_err().to_string()
    }

    #[test]
    fn init_and_media_segments() {
        let init = [boxed(b"ftyp", b"iso6\0\0\0\0"), boxed(b"moov", &[0; 20])].concat();
        assert_eq!(check_fmp4(&init), Ok(Fmp4Kind::Init));
        let seg = [
            boxed(b"styp", b"msdh"),
            boxed(b"sidx", &[0; 12]),
            boxed(b"moof", &[0; 16]),
            boxed(b"mdat", &[1; 100]),
        ]
        .concat();
        assert_eq!(check_fmp4(&seg), Ok(Fmp4Kind::Media));
        let part = [boxed(b"moof", &[0; 16]), large(b"mdat", &[1; 40])].concat();
        assert_eq!(check_fmp4(&part), Ok(Fmp4Kind::Media));
        // A final size-0 mdat runs to the end of the body.
        let mut open = [boxed(b"prft", &[0; 12]), boxed(b"moof", &[0; 8])].concat();
        open.extend_from_slice(&0u32.to_be_bytes());
        open.extend_from_slice(b"mdat");
        open.extend_from_slice(&[7; 33]);
        assert_eq!(check_fmp4(&open), Ok(Fmp4Kind::Media));
    }

    #[test]
    fn bodies_that_are_not_cmaf() {
        assert_eq!(
            err(b"\0\0\x01\0moov\0\0\0\0"),
            "segment body is not CMAF: box 'moov' at offset 0 declares 256 bytes but only 12 remain (a truncated upload?)"
        );
        let html = boxed(b"abcd", b"x");
        assert!(err(&html).contains(
            "segment body is not CMAF: box 'abcd' at offset 0 is not a top-level fMP4 box"
        ));
        assert!(err(b"<!DOCTYPE html><html></html>").contains("is not a top-level fMP4 box"));
        assert!(err(&[0, 0, 0, 9, 0, 1, 2, 3, 0]).contains("box 0x00010203 at offset 0"));
        assert!(err(b"").contains("empty"));
        assert!(err(&boxed(b"moof", &[0; 8])).contains("no 'mdat'"));
        assert!(err(&boxed(b"ftyp", &[0; 8])).contains("neither"));
        let mdat_only = [boxed(b"styp", &[0; 4]), boxed(b"mdat", &[0; 4])].concat();
        assert!(err(&mdat_only).contains("no 'moof'"));
    }

    #[test]
    fn box_sizes_must_stay_inside_the_body() {
        let mut cut = [boxed(b"moof", &[0; 16]), boxed(b"mdat", &[1; 100])].concat();
        cut.truncate(cut.len() - 1);
        assert!(
            err(&cut).contains("box 'mdat' at offset 24 declares 108 bytes but only 107 remain")
        );
        let short_header = [boxed(b"moov", &[0; 8]), vec![0, 0, 0]].concat();
        assert!(err(&short_header).contains("3 bytes at offset 16 are too few"));
        assert!(err(&[0, 0, 0, 4, b'm', b'o', b'o', b'v']).contains("size of 4"));
        let tiny_large = [1u32.to_be_bytes().as_slice(), b"moov", &8u64.to_be_bytes()].concat();
        assert!(err(&tiny_large).contains("64-bit size of 8"));
        let huge_large = [
            1u32.to_be_bytes().as_slice(),
            b"moov",
            &u64::MAX.to_be_bytes(),
        ]
        .concat();
        assert!(err(&huge_large).contains("declares 18446744073709551615 bytes"));
        assert!(err(&[0, 0, 0, 1, b'm', b'o', b'o', b'v', 0]).contains("ends before it"));
        // A size-0 box is the last one by definition; anything after it is inside it.
        let zero_first = [0u32.to_be_bytes().as_slice(), b"moov", &boxed(b"free", &[])].concat();
        assert_eq!(check_fmp4(&zero_first), Ok(Fmp4Kind::Init));
    }

    #[test]
    fn transport_streams() {
        let mut ts = vec![0u8; 188 * 3];
        for p in ts.chunks_mut(188) {
            p[0] = 0x47;
        }
        assert_eq!(check_ts(&ts), Ok(()));
        ts[376] = 0x48;
        assert_eq!(
            check_ts(&ts).unwrap_err().to_string(),
            "segment body is not MPEG-TS: packet 2 (offset 376) starts with 0x48, not the sync byte 0x47"
        );
        assert!(check_ts(&ts[..200])
            .unwrap_err()
            .to_string()
            .contains("200 bytes are not a whole number"));
        assert!(check_ts(b"").unwrap_err().to_string().contains("empty"));
        let fmp4 = [boxed(b"moof", &[0; 16]), boxed(b"mdat", &[0; 156])].concat();
        assert_eq!(fmp4.len(), 188);
        assert!(check_ts(&fmp4)
            .unwrap_err()
            .to_string()
            .contains("packet 0"));
    }
}
