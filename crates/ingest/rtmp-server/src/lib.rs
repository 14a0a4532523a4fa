//! The RTMP server: the tokio driver around the sans-IO [`starling_rtmp`] engine.
//!
//! It owns the sockets and the timers, asks an [`Authorizer`] who may publish or play,
//! turns FLV tag bodies into the media model with [`starling_flv`], and moves media in
//! and out of the [`starling_hub`]. Every failure closes only the connection it belongs
//! to, with one log line naming the peer and the cause; stream keys are never logged.
//!
//! Layout, as in every protocol server of Starling: `server` (the accept loop and its
//! limits), `conn` (one connection: publish or play); the narrow interface to the control
//! plane is `starling-ingest-auth`, shared with the SRT server.

pub mod client;
mod conn;
mod server;

pub use server::{serve, RtmpServerConfig, ServerStats};
pub use starling_ingest_auth::check_key_shape;
pub use starling_ingest_auth::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};
