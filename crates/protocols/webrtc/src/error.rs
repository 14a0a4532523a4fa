/// Why a WebRTC session could not be made or went wrong. The display text is for the
/// client (the HTTP answer) and the log; it never carries SDP or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// The offer is not SDP str0m can read.
    #[error("malformed SDP offer: {0}")]
    MalformedSdp(String),
    /// The offer has nothing this server can send or take.
    #[error("the offer has no usable media: {0}")]
    NoUsableMedia(String),
    /// The offer is valid but cannot be answered (directions, bundling, ICE-lite peers).
    #[error("the offer cannot be answered: {0}")]
    Unanswerable(String),
    /// A trickled candidate line that is not one.
    #[error("malformed ICE candidate: {0}")]
    MalformedCandidate(String),
    /// str0m refused an input or failed (the session is over).
    #[error("WebRTC session failed: {0}")]
    Session(String),
}
