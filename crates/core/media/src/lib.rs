//! The media model: the one shape every protocol converts *to* and *from*.
//!
//! A [`Stream`] has [`Track`]s, each with a [`CodecConfig`]; each track carries
//! [`Frame`]s. Protocol adapters (RTMP/FLV, later MPEG-TS, WebRTC, CMAF) only ever
//! translate between their wire form and these types, so adding a protocol is one
//! adapter, never one per pair of protocols.
//!
//! Canonical payload forms, chosen because the packagers (CMAF) want them as they are:
//! - H.264 / H.265 frames are access units of **length-prefixed** NAL units (the
//!   length size comes from the track's avcC/hvcC, normally 4 bytes). Parameter sets
//!   live in the track config, though in-band copies are allowed.
//! - AAC frames are raw access units (no ADTS header).
//! - Opus frames are raw Opus packets.
//!
//! This crate does no I/O and reads no clock: arrival times are handed in by drivers.

pub mod aac;
pub mod annexb;
mod bits;
mod error;
pub mod h264;
pub mod h265;
mod model;
pub mod nal;
pub mod wallclock;

pub use error::MediaError;
pub use model::*;
