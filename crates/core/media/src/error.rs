//! The one error type of the codec helpers: every parser in this crate returns it.
//!
//! Messages carry the numbers a person needs to see what was wrong with the input
//! ("avcC truncated: need 7 bytes, have 3"); nothing here ever panics on input.

/// Why a codec configuration, parameter set or framed payload could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A structure ended before a field it declares.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A configuration record with a version this crate does not know.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    /// A field whose value is outside what the spec (or this crate's caps) allows.
    #[error("{what}: {field} {value} out of range")]
    OutOfRange {
        what: &'static str,
        field: &'static str,
        value: u64,
    },
    /// A bitstream that could not be read (exp-Golomb overflow, missing bits, ...).
    #[error("{what}: cannot read {field}: {reason}")]
    Bitstream {
        what: &'static str,
        field: &'static str,
        reason: String,
    },
    /// Something structurally wrong that has no number to show.
    #[error("{what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
    /// A length-prefixed NAL unit whose length runs past the end of the buffer.
    #[error("NAL unit length {len} at offset {offset} exceeds the {remaining} bytes left")]
    NalLength {
        len: usize,
        offset: usize,
        remaining: usize,
    },
    /// A NAL length field size other than 1, 2, 3 or 4 bytes.
    #[error("NAL length size {0} is not 1, 2, 3 or 4")]
    NalLengthSize(u8),
    /// A feature of a format that is valid but not handled here.
    #[error("{what}: {feature} is not supported")]
    Unsupported { what: &'static str, feature: String },
}
