//! NAL unit framing shared by H.264 and H.265: Annex B byte streams (start codes) and
//! the length-prefixed form of ISO 14496-15 (avcC/hvcC samples), and conversions.
//!
//! Splitting is zero-copy (the NAL units are slices of the input `Bytes`); only the
//! conversions between the two framings build a new buffer. A length field that runs
//! past the end of its buffer is an error, never a panic or an out-of-bounds read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::MediaError;

/// Splits an Annex B byte stream into its NAL units (without start codes).
///
/// Accepts 3-byte (`00 00 01`) and 4-byte (`00 00 00 01`) start codes; bytes before the
/// first start code and trailing zero bytes of each unit (`trailing_zero_8bits`, the first
/// byte of a following 4-byte start code) are dropped; empty units are skipped.
pub fn split_annexb(data: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    AnnexBIter {
        data,
        pos: find_start_code(data, 0).map(|(_, after)| after),
    }
}

#[derive(Debug)]
struct AnnexBIter<'a> {
    data: &'a Bytes,
    /// Offset of the first byte after the current start code; `None` when exhausted.
    pos: Option<usize>,
}

impl Iterator for AnnexBIter<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            let start = self.pos?;
            let (end, next) = match find_start_code(self.data, start) {
                Some((sc, after)) => (sc, Some(after)),
                None => (self.data.len(), None),
            };
            self.pos = next;
            let mut end = end;
            while end > start && self.data.get(end - 1) == Some(&0) {
                end -= 1;
            }
            if end > start {
                return Some(self.data.slice(start..end));
            }
        }
    }
}

/// Finds the next `00 00 01` at or after `from`: (offset of the start code, offset after it).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let hay = data.get(from..)?;
    hay.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (from + i, from + i + 3))
}

fn check_length_size(length_size: u8) -> Result<usize, MediaError> {
    match length_size {
        1..=4 => Ok(usize::from(length_size)),
        n => Err(MediaError::NalLengthSize(n)),
    }
}

/// Converts an Annex B stream to length-prefixed NAL units with `length_size`-byte lengths.
///
/// Fails if `length_size` is not 1..=4 or a unit is too long for the length field.
pub fn annexb_to_length_prefixed(data: &Bytes, length_size: u8) -> Result<Bytes, MediaError> {
    let size = check_length_size(length_size)?;
    let mut out = BytesMut::with_capacity(data.len() + 16);
    for nal in split_annexb(data) {
        let len = nal.len() as u64;
        if len >= 1u64 << (8 * size) {
            return Err(MediaError::OutOfRange {
                what: "NAL unit",
                field: "length",
                value: len,
            });
        }
        out.put_uint(len, size);
        out.extend_from_slice(&nal);
    }
    Ok(out.freeze())
}

/// Converts length-prefixed NAL units to an Annex B stream (4-byte start codes).
pub fn length_prefixed_to_annexb(data: &[u8], length_size: u8) -> Result<Bytes, MediaError> {
    let size = check_length_size(length_size)?;
    let mut out = BytesMut::with_capacity(data.len() + 16);
    let mut it = SliceIter {
        data,
        pos: 0,
        size,
        failed: false,
    };
    for nal in &mut it {
        let (start, end) = nal?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(data.get(start..end).unwrap_or_default());
    }
    Ok(out.freeze())
}

/// Iterates the NAL units of a length-prefixed buffer as zero-copy slices.
pub fn iter_length_prefixed(data: &Bytes, length_size: u8) -> LengthPrefixedIter {
    LengthPrefixedIter {
        data: data.clone(),
        pos: 0,
        length_size,
        failed: false,
    }
}

/// Iterator returned by [`iter_length_prefixed`]. Yields one error and then stops if the
/// buffer is malformed (bad length size, a truncated length field or an oversized length).
#[derive(Debug, Clone)]
pub struct LengthPrefixedIter {
    data: Bytes,
    pos: usize,
    length_size: u8,
    failed: bool,
}

impl Iterator for LengthPrefixedIter {
    type Item = Result<Bytes, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let size = match check_length_size(self.length_size) {
            Ok(s) => s,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let mut inner = SliceIter {
            data: &self.data,
            pos: self.pos,
            size,
            failed: false,
        };
        let item = inner.next();
        self.pos = inner.pos;
        self.failed = inner.failed;
        item.map(|r| r.map(|(start, end)| self.data.slice(start..end)))
    }
}

/// Walks length-prefixed units of a slice, yielding (start, end) offsets of each unit.
struct SliceIter<'a> {
    data: &'a [u8],
    pos: usize,
    size: usize,
    failed: bool,
}

impl Iterator for SliceIter<'_> {
    type Item = Result<(usize, usize), MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let remaining = self.data.len() - self.pos;
        let Some(field) = self.data.get(self.pos..self.pos + self.size) else {
            self.failed = true;
            return Some(Err(MediaError::Truncated {
                what: "NAL length field",
                need: self.size,
                have: remaining,
            }));
        };
        let len = field
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = self.pos + self.size;
        let left = remaining - self.size;
        if len > left {
            self.failed = true;
            return Some(Err(MediaError::NalLength {
                len,
                offset: self.pos,
                remaining: left,
            }));
        }
        self.pos = start + len;
        Some(Ok((start, start + len)))
    }
}

/// Walks a length-prefixed access unit and reports whether any NAL unit's first header
/// byte satisfies `pred`. Malformed framing ends the walk (units seen so far count).
pub(crate) fn any_nal(data: &[u8], length_size: u8, pred: impl Fn(&[u8]) -> bool) -> bool {
    let Ok(size) = check_length_size(length_size) else {
        return false;
    };
    let it = SliceIter {
        data,
        pos: 0,
        size,
        failed: false,
    };
    it.map_while(Result::ok)
        .any(|(s, e)| data.get(s..e).is_some_and(&pred))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = Bytes::from_static(&[
            0xFF, 0, 0, 0, 1, 0x67, 0xAA, 0, 0, 1, 0x68, 0xBB, 0, 0, 0, 0, 1, 0x65, 0, 0, 3, 1, 0,
        ]);
        let nals: Vec<Bytes> = split_annexb(&data).collect();
        assert_eq!(
            nals,
            vec![
                Bytes::from_static(&[0x67, 0xAA]),
                Bytes::from_static(&[0x68, 0xBB]),
                Bytes::from_static(&[0x65, 0, 0, 3, 1]),
            ]
        );
        // zero copy: the slices point into the input
        assert_eq!(nals[0].as_ptr(), data[5..].as_ptr());
        assert_eq!(split_annexb(&Bytes::from_static(&[1, 2, 3])).count(), 0);
        assert_eq!(split_annexb(&Bytes::from_static(&[0, 0, 1])).count(), 0);
    }

    #[test]
    fn annexb_length_prefixed_round_trip() {
        let annexb = Bytes::from_static(&[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3]);
        let lp = annexb_to_length_prefixed(&annexb, 4).unwrap();
        assert_eq!(&lp[..], &[0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3]);
        let back = length_prefixed_to_annexb(&lp, 4).unwrap();
        assert_eq!(&back[..], &[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]);
        let lp2 = annexb_to_length_prefixed(&annexb, 2).unwrap();
        let units: Vec<Bytes> = iter_length_prefixed(&lp2, 2).map(|r| r.unwrap()).collect();
        assert_eq!(units.len(), 2);
        assert_eq!(&units[1][..], &[0x68, 3]);
    }

    #[test]
    fn too_long_for_length_field() {
        let mut v = vec![0, 0, 1];
        v.extend(std::iter::repeat_n(0x11, 300));
        let err = annexb_to_length_prefixed(&Bytes::from(v), 1).unwrap_err();
        assert_eq!(err.to_string(), "NAL unit: length 300 out of range");
        assert!(annexb_to_length_prefixed(&Bytes::new(), 5).is_err());
    }

    #[test]
    fn oversized_length_is_an_error_not_a_panic() {
        let data = Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 9, 0x41]);
        let mut it = iter_length_prefixed(&data, 4);
        assert_eq!(&it.next().unwrap().unwrap()[..], &[0x65, 0x88]);
        let err = it.next().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "NAL unit length 9 at offset 6 exceeds the 1 bytes left"
        );
        assert!(it.next().is_none());
        let truncated_field = Bytes::from_static(&[0, 0]);
        assert!(matches!(
            iter_length_prefixed(&truncated_field, 4).next(),
            Some(Err(MediaError::Truncated {
                need: 4,
                have: 2,
                ..
            }))
        ));
        assert!(matches!(
            iter_length_prefixed(&data, 0).next(),
            Some(Err(MediaError::NalLengthSize(0)))
        ));
        assert!(length_prefixed_to_annexb(&data, 4).is_err());
        assert!(any_nal(&data, 4, |n| n[0] == 0x65));
        assert!(!any_nal(&data, 4, |n| n[0] == 0x41));
    }
}
