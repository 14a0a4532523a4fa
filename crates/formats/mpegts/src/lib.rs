//! MPEG-TS (ISO/IEC 13818-1) to and from the media model. Sans-IO.
//!
//! - [`Demuxer`]: transport stream bytes of any size in; [`DemuxEvent`]s out: the
//!   stream's tracks, frames, PCRs, discontinuities and errors (with counters in
//!   [`DemuxStats`]). H.264, H.265, AAC (ADTS) and Opus.
//! - [`Muxer`]: a [`starling_media::Stream`] and its frames in; 188-byte packets out
//!   (PAT/PMT repeated, PCR on the video PID, Annex B video with AUDs, ADTS audio).
//! - [`packet`], [`psi`], [`pes`]: the spec structures, one file each; [`codec`]: the
//!   elementary stream glue between TS payloads and the model's canonical payloads.
//!
//! Every track is on the 90 kHz clock of PTS/DTS (timescale 90 000). Nothing here does
//! I/O or reads a clock; docs/mpegts.md says what is handled, what is refused and why
//! the packet layer is written here rather than taken from a crate.

pub mod codec;
pub mod demux;
mod error;
pub mod mux;
pub mod packet;
pub mod pes;
pub mod psi;

pub use demux::{DemuxConfig, DemuxEvent, DemuxStats, Demuxer};
pub use error::MpegTsError;
pub use mux::Muxer;
pub use pes::TIMESCALE;
