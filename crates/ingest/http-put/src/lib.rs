//! HTTP PUT ingest: segments, parts and playlists pushed by an external packager
//! (ffmpeg's hls muxer with `-method PUT`, or any HLS packager that writes over HTTP)
//! to `PUT /ingest/CHANNEL/PATH`, authorised by the channel's stream key
//! (`Authorization: Bearer KEY`), and removed with `DELETE` on the same URL.
//!
//! Three layers, each usable alone:
//!
//! - [`check`]: what a request may name and carry (paths, fMP4/MPEG-TS bodies, the
//!   references of playlists). Sans-IO; fuzzed by `fuzz/fuzz_targets/put_check.rs`.
//! - [`PushIngest`]: the objects of every channel, a bounded window in memory, each
//!   written through to the [`starling_store::ObjectStore`] under
//!   `pushed/CHANNEL/PATH`; [`PushIngest::get`] is what the origin serves them from,
//!   holding a request for the next segment at a playlist's live edge until it comes,
//!   and answering numbers outside a configured live event's range ([`event`]) without
//!   a store read ([`PushIngest::answer`]).
//! - `retention`: the sweep that deletes pushed objects past `PushConfig::retention`
//!   ([`PushIngest::start_retention`]).
//! - [`router`]: the axum routes, with authorisation and body limits.
//!
//! The pushed bytes are served as they came: nothing here repackages them, and a
//! playlist is only taken once every object it names has been uploaded.
//! docs/put-ingest.md has the whole picture (URLs, an ffmpeg command, limits, status
//! codes).

pub mod check;
mod edge;
pub mod event;
mod http;
mod ingest;
mod retention;
mod serve;
mod writer;

pub use check::{Kind, PushPath, PutError};
pub use event::{EventError, LiveEvent};
pub use http::router;
pub use ingest::{
    LivePush, PushConfig, PushIngest, PushedObject, Stored, LIVE_WINDOW, MEDIA_CACHE_CONTROL,
    PLAYLIST_CACHE_CONTROL,
};
pub use retention::{SweepReport, SWEEP_EVERY};
pub use serve::Answer;
