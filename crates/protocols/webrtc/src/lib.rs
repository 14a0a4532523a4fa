//! WebRTC sessions for WHIP ingest and WHEP playback, sans-IO.
//!
//! A [`Peer`] is one WebRTC session: a `str0m` [`str0m::Rtc`] (ICE, DTLS, SRTP, RTP/RTCP,
//! NACK/RTX, TWCC) plus the translation between RTP media and the media model, both ways:
//!
//! - **publish** (WHIP): depacketized H.264 access units and Opus packets become a
//!   [`starling_media::Stream`] and [`starling_media::Frame`]s on one media timeline
//!   ([`ingest`]);
//! - **play** (WHEP): the hub's frames, prepared once per frame for every viewer
//!   ([`Outgoing::prepare`]), are written to the viewer's negotiated payload types
//!   ([`egress`]).
//!
//! Nothing here owns a socket, a timer or a clock: datagrams come in with the `Instant`
//! they arrived, [`Peer::poll`] says what to send and when to call again, and wall-clock
//! times come from the driver. One UDP port serves every session: [`demux::ice_ufrag`]
//! reads which session a STUN request is for, and the driver maps the remote address to
//! that session from then on.
//!
//! docs/webrtc.md has the whole picture (why str0m, codecs, timing, limits).

pub mod demux;
mod egress;
mod error;
mod ingest;
mod peer;

pub use egress::Outgoing;
pub use error::WebRtcError;
pub use peer::{Peer, PeerConfig, PeerEvent, PeerOutput, Role, Transmit, Transport};
/// The WebRTC stack underneath, for drivers and test clients that speak it directly.
pub use str0m;

/// The RTP clock of video (RFC 6184 §8.2.1: H.264 always 90 kHz).
pub const VIDEO_CLOCK: u32 = 90_000;
/// The RTP clock of Opus (RFC 7587 §4.1: always 48 kHz).
pub const OPUS_CLOCK: u32 = 48_000;
