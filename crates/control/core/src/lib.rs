//! Starling's control plane: storage and domain rules for organisations, users,
//! sessions, API tokens, channels, devices, stream keys and playback tokens.
//!
//! This crate is a library used by the binary and the HTTP API; it owns no sockets.
//!
//! - Storage: [`Db`] over SQLite (default: `{data_dir}/starling.db`, WAL, foreign keys,
//!   5 s busy timeout) or PostgreSQL (`database_url = "postgres://…"`) through sqlx
//!   `Any`, with embedded migrations written once for both (see [`db`] for why `Any`).
//! - Time: every function that depends on the clock takes `now` (unix ms), so tests and
//!   callers control time.
//! - Authorisation: pure rules in [`authz`]; repository functions take the caller's
//!   [`Principal`] and answer `NotFound` for another tenant's resources.
//! - Secrets (stream keys, session cookies, API tokens): 32 random bytes, shown once as
//!   a [`Secret`] (whose `Debug` is redacted), stored as SHA-256. Passwords: argon2id.
//!   No public type's `Debug` prints a secret or a hash.
//! - Playback tokens: [`PlaybackSigner`], pure `sign`/`verify` (HMAC-SHA256) with a
//!   secret shared through the database.
//!
//! Publish authorisation latency can be measured by timing [`Db::authorize_publish`]
//! (one indexed SELECT by hash, two single-row UPDATEs); token checks per second by
//! timing [`PlaybackSigner::verify`] (no I/O).

pub mod accounts;
pub mod authz;
pub mod channels;
pub mod db;
pub mod devices;
pub mod error;
pub mod events;
pub mod playback;
pub mod secret;
pub mod validate;
pub mod webhooks;

#[cfg(test)]
mod suite;

pub use accounts::{ApiTokenInfo, Org, PasswordParams, SessionInfo, User};
pub use authz::{can, Action, Principal, Role};
pub use channels::{
    Channel, ChannelUpdate, LatencyMode, NewChannel, Reframing, SrtPassphrase, Visibility,
    REFRAME_SUBJECTS,
};
pub use db::{Backend, Db, DbConfig, ThrottleConfig, UnixMs};
pub use devices::{Device, DeviceKind, DeviceState, PublishGrant, Revocation, StreamKeyInfo};
pub use error::{AuthError, ControlError, Problem, TokenError, ValidationError};
pub use events::{Event, EventUpdate, NewEvent};
pub use playback::{Claims, PlaybackSigner};
pub use secret::Secret;
pub use starling_live_state::EventState;
pub use webhooks::{AttemptResult, Delivery, DeliveryState, DueDelivery, Webhook, WebhookEvent};
