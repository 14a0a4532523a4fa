//! FLV tags to and from the media model, legacy and Enhanced RTMP; FLV files. Sans-IO.
//!
//! - [`tag`]: parse and build video/audio tag bodies (the payload of RTMP messages 8
//!   and 9 and of FLV file tags).
//! - [`FlvIngest`]: tag bodies in, [`starling_media::MediaEvent`]s out.
//! - [`egress`]: a [`starling_media::Stream`] and its frames out as tag bodies, plus
//!   onMetaData properties.
//! - [`file`](mod@file): FLV file reading (push parser, bounded tag size) and writing.
//!
//! Typical ingest loop (the RTMP driver owns the socket and the clock):
//!
//! ```
//! # use std::time::SystemTime;
//! # use bytes::Bytes;
//! use starling_flv::FlvIngest;
//! let mut ingest = FlvIngest::new();
//! # let (timestamp, body) = (0u32, Bytes::from_static(&[0x17, 2, 0, 0, 0]));
//! match ingest.video(timestamp, body, SystemTime::now()) {
//!     Ok(events) => { /* hand each MediaEvent to the hub */ }
//!     Err(e) if e.is_unsupported() => { /* report once, keep the session */ }
//!     Err(e) => { /* malformed tag: log, drop it, keep going (or end the session) */ }
//! }
//! ```
//!
//! Nothing here does I/O or reads a clock.

pub mod egress;
mod error;
pub mod file;
pub mod ingest;
pub mod tag;

pub use error::{FlvError, FourCc};
pub use file::{FlvReader, FlvTag, FlvWriter, TagType};
pub use ingest::{FlvIngest, AUDIO_TRACK, TIMESCALE, VIDEO_TRACK};
