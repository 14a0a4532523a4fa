//! HLS and Low-Latency HLS playlists as plain data, and the text they render to
//! (RFC 8216bis, the second edition draft that carries Low-Latency HLS).
//!
//! - [`MediaPlaylist`]: segments, partial segments (`EXT-X-PART`), `EXT-X-PART-INF`,
//!   `EXT-X-SERVER-CONTROL`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`; rendered in full
//!   ([`MediaPlaylist::render`]) or as a Playlist Delta Update with `EXT-X-SKIP`
//!   ([`MediaPlaylist::render_delta`]). One text serves every client: players that predate
//!   LL-HLS ignore the tags they do not know.
//! - [`MultivariantPlaylist`]: `EXT-X-MEDIA` renditions and `EXT-X-STREAM-INF` variants.
//! - [`parse_blocking_query`]: the `_HLS_msn` / `_HLS_part` / `_HLS_skip` Delivery Directives
//!   of a playlist request, and [`MediaPlaylist::is_ready_for`] to decide when a blocked
//!   request can be answered.
//! - `validate()` on both playlists checks the spec's MUSTs that the model can break
//!   (target duration, hold-backs, skip boundary, part durations, versions, strings that
//!   would break a line). The origin calls it in debug builds and tests.
//!
//! The writer is hand-written: no Rust crate wrote the LL-HLS tags when this was made.
//! Tests re-parse the output with `m3u8-rs` (which reads the classic structure and treats
//! the LL-HLS tags as unknown tags) and with a line checker of our own.
//!
//! This crate does no I/O and never reads the clock: program date-times and the moment a
//! segment or part exists come from the caller. It never blocks, never times out a request
//! and never touches files; the origin does.
//!
//! Version numbers (section 8): see [`MediaPlaylist::min_version`]. In short, 6 with
//! `EXT-X-MAP` (fMP4), 9 once `CAN-SKIP-UNTIL` is advertised (delta updates carry
//! `EXT-X-SKIP`), 10 with `CAN-SKIP-DATERANGES`; the other LL-HLS tags need no version.

mod error;
mod format;
pub mod lint;
mod media;
mod multivariant;
mod query;

pub use error::HlsError;
pub use format::{decimal_float, program_date_time};
pub use media::{
    target_duration_for, Map, MediaPlaylist, Part, PlaylistType, PreloadHint, RenditionReport,
    Segment, ServerControl,
};
pub use multivariant::{MediaKind, MultivariantPlaylist, Rendition, Variant};
pub use query::{parse_blocking_query, BlockingRequest, SkipRequest};
