//! Small bit-level helpers shared by the codec modules.
//!
//! Reading exp-Golomb and fixed-width fields is done with `h264_reader::rbsp::BitReader`
//! (which also strips emulation-prevention bytes); this module only adapts its errors to
//! [`MediaError`] and provides a tiny MSB-first writer for the few structures we build
//! bit by bit (AudioSpecificConfig, ADTS headers).

use h264_reader::rbsp::BitReaderError;

use crate::MediaError;

/// Converts a bit reader failure into a [`MediaError`] naming the structure being read.
pub(crate) fn bit_err(what: &'static str, e: BitReaderError) -> MediaError {
    match e {
        BitReaderError::ReaderError(field, io) => MediaError::Bitstream {
            what,
            field,
            reason: io.to_string(),
        },
        BitReaderError::ExpGolombTooLarge(field) => MediaError::Bitstream {
            what,
            field,
            reason: "exp-Golomb value wider than 32 bits".to_owned(),
        },
        BitReaderError::RemainingData => MediaError::Invalid {
            what,
            reason: "data after the RBSP trailing bits",
        },
    }
}

/// MSB-first bit writer into a growing byte vector.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    /// Bits already used in the last byte of `out` (0 means byte aligned).
    used: u8,
}

impl BitWriter {
    /// Appends the low `bits` bits of `value`, most significant first (`bits <= 32`).
    pub(crate) fn put(&mut self, bits: u32, value: u32) {
        for i in (0..bits.min(32)).rev() {
            let bit = ((value >> i) & 1) as u8;
            if self.used == 0 {
                self.out.push(0);
            }
            if let Some(last) = self.out.last_mut() {
                *last |= bit << (7 - self.used);
            }
            self.used = (self.used + 1) % 8;
        }
    }

    /// The written bytes, zero-padded to a byte boundary.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Test helper: decodes a hex string (whitespace ignored).
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_packs_msb_first_and_pads() {
        let mut w = BitWriter::default();
        w.put(5, 2);
        w.put(4, 4);
        w.put(4, 2);
        w.put(3, 0);
        assert_eq!(w.finish(), vec![0x12, 0x10]);
        let mut w = BitWriter::default();
        w.put(3, 0b101);
        assert_eq!(w.finish(), vec![0b1010_0000]);
    }
}
