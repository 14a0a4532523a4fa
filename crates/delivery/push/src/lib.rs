//! Pushes the channels this node packages to a remote Starling origin with the same
//! protocol external packagers use (`starling-http-put`): `PUT /ingest/CHANNEL/PATH`
//! with the remote's stream key as Bearer, `DELETE` for segments that left the window.
//! The pipeline (ingest, packaging) and the origin can then run on different machines.
//!
//! - [`plan`]: the push of one channel as a sans-IO state machine: the queue, the order
//!   (objects before the playlists naming them, deletes after the playlists that stopped
//!   naming them), retries with backoff within a budget, playlists superseding queued
//!   ones, refusals that are not retried blindly.
//! - [`rewrite`]: names and playlists as the remote gets them (`RENDITION/SESSION-N.m4s`;
//!   whole segments, only those delivered).
//! - `client`: one HTTP/1.1 keep-alive connection per channel, with timeouts.
//! - `driver`: the tasks; [`start`] is the entry point.
//! - [`PushMetrics`]: `starling_push_*` for `/metrics`.
//!
//! Never on the live path: the origin is only read (`starling_origin::Outbound`), and a
//! remote that is slow or down costs a bounded queue that drops segments past their
//! budget. docs/push.md has the whole picture.

mod client;
mod driver;
mod metrics;
pub mod plan;
pub mod rewrite;

pub use driver::{start, PushConfig};
pub use metrics::PushMetrics;
pub use plan::PlanConfig;

/// Why the pusher cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    #[error("push url {0}")]
    Url(String),
}
