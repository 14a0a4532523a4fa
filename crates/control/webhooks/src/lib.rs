//! Starling's webhooks: how deliveries are signed and verified, when they are retried,
//! and (feature `dispatcher`, on by default) the tokio driver that delivers them.
//!
//! - [`signature`] (pure): `Starling-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret,
//!   "<t>.<body>")>`, plus `Starling-Event` and `Starling-Delivery`; [`verify`] for
//!   receivers, with a tolerance window against replays.
//! - [`retry`] (pure): 2xx delivered; 408, 429, 5xx, timeouts and connection failures
//!   retried on a jittered schedule (10 s, 30 s, 2 min, 10 min, 1 h, 2 h, then 4 h) for
//!   up to 12 attempts or 24 h; other 3xx/4xx given up at once.
//! - `dispatcher` (tokio): [`Dispatcher`] drains the control plane's durable queue
//!   (`starling_control::Db::due_deliveries`) with bounded concurrency and a 10 s timeout
//!   per attempt, over HTTP/1.1, plain or TLS (rustls). [`WebhookSender::emit`] never
//!   blocks its caller.
//! - [`target`] (pure): which addresses a webhook may reach (no loopback, private,
//!   link-local or metadata targets unless allowed), checked at creation by the API and
//!   on the resolved addresses at every delivery.
//!
//! A Rust receiver that only verifies signatures depends on this crate with
//! `default-features = false`: no database, no HTTP client, no tokio.
//!
//! The pure modules do no I/O and read no clock; only `dispatcher` does either.

#[cfg(feature = "dispatcher")]
mod client;
#[cfg(feature = "dispatcher")]
mod dispatcher;
pub mod retry;
pub mod signature;
pub mod target;

#[cfg(feature = "dispatcher")]
pub use client::{parse_ca_pem, TlsError};
#[cfg(feature = "dispatcher")]
pub use dispatcher::{Dispatcher, DispatcherConfig, WebhookSender};
pub use retry::{classify, Class, Decision, Outcome, RetryPolicy};
#[cfg(feature = "dispatcher")]
pub use rustls::pki_types::CertificateDer;
pub use signature::{
    sign, verify, VerifyError, DEFAULT_TOLERANCE_SECS, DELIVERY_HEADER, EVENT_HEADER,
    SIGNATURE_HEADER,
};
#[cfg(feature = "dispatcher")]
pub use starling_control::WebhookEvent;
pub use target::{TargetError, TargetPolicy};
