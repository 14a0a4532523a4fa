//! The one error type of the writer. Every variant names the value that did not fit and
//! the field it was meant for, so a person can tell which input was wrong.

/// Why an init segment or a media fragment could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmafError {
    /// The track's timescale is 0, which no timing field can be expressed in.
    #[error("track timescale is 0")]
    ZeroTimescale,
    /// A codec this writer has no sample entry for.
    #[error("no CMAF sample entry for codec {0}")]
    UnsupportedCodec(String),
    /// A value that does not fit the field the format gives it.
    #[error("{what}: {field} {value} does not fit (at most {max})")]
    OutOfRange {
        what: &'static str,
        field: &'static str,
        value: u64,
        max: u64,
    },
    /// A fragment must carry at least one sample.
    #[error("media fragment has no samples")]
    NoSamples,
    /// A box grew past what a 32-bit box size can describe.
    #[error("{what} box would be {size} bytes, over the 4294967295 a 32-bit size holds")]
    BoxTooLarge { what: &'static str, size: u64 },
}
