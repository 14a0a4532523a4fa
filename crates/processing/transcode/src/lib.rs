//! The transcoding ladder, its pure parts: which rungs a source gets ([`plan`]), which
//! encoders this ffmpeg has ([`Encoders`]), and the one ffmpeg command that decodes the
//! source once, splits it, scales it and encodes every rung with keyframes forced on the
//! segment boundaries ([`Command`]), so that segment `n` of every rung starts at the
//! same presentation time as the source's.
//!
//! The live ladder ([`LiveCommand`]) is run per channel by the server's ladder runner,
//! which feeds it the source and packages its rungs (docs/transcoding.md); its
//! analysis tap ([`AnalysisEvent`]) feeds reframing and highlights, which steer the
//! vertical rendition's branch ([`VerticalOutput`], [`steer_command`];
//! docs/reframing.md).
//!
//! Why one ffmpeg child and not in-process libav: the child isolates codec crashes and
//! memory from the server, needs no C bindings in the build, and one process with one
//! decode and a `split` filter already shares the decode between rungs, which is the
//! saving a library would bring.

mod analysis;
mod command;
mod encoders;
mod ladder;
mod live;
mod vertical;

pub use analysis::{AnalysisEvent, Loudness, LoudnessParser, Picture};
pub use command::{Command, Output};
pub use encoders::{EncoderError, Encoders};
pub use ladder::{
    default_ladder, plan, LadderError, Rung, RungSpec, Source, VideoEncoder, DEFAULT_LADDER,
};
pub use live::{AnalysisOutputs, LiveCommand};
pub use vertical::{steer_command, VerticalOutput, VerticalSize, CROP_FILTER};
