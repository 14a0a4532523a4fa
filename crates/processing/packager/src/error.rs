//! Why a rendition could not be packaged. The packager never stops on these: it records
//! the last one (see [`crate::Packager::last_error`]) and drops what it could not write.

use starling_cmaf::CmafError;

/// A problem packaging one rendition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackagerError {
    /// The CMAF writer refused the track or a fragment.
    #[error("rendition {rendition}: {source}")]
    Cmaf {
        rendition: &'static str,
        #[source]
        source: CmafError,
    },
    /// A source track announced timescale 0: its timestamps cannot be converted.
    #[error("rendition {rendition}: source track {track} has timescale 0")]
    ZeroTimescale { rendition: &'static str, track: u32 },
}
