//! Webhooks on a node: starts the dispatcher (which drains the control plane's durable
//! delivery queue) and gives the rest of the node one non-blocking call per event.
//!
//! Callers: ingest on publish start / end ([`Emitter::stream_started`],
//! [`Emitter::stream_ended`]), the event scheduler on a state change and the recorder
//! when a recording is ready ([`Emitter::emit`] with their own payloads). Every call
//! returns at once: the event goes to a bounded buffer, is written to the queue by a
//! background task, and is delivered (and retried) from there. Payload shapes are
//! documented in docs/control-plane.md ("Webhooks").

use serde_json::{json, Value};
use starling_control::{Db, UnixMs, WebhookEvent};
use starling_webhooks::{Dispatcher, DispatcherConfig, WebhookSender};

/// Why a stream started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // The ingest triggers are wired separately.
pub enum StartReason {
    /// A publisher connected.
    Publish,
    /// The same device reconnected and replaced its previous publish.
    Reconnect,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // The ingest triggers are wired separately.
pub enum EndReason {
    /// The publisher disconnected (or stopped publishing).
    Disconnected,
    /// Its stream key or device was revoked.
    Revoked,
    /// The node is shutting down.
    Shutdown,
    /// The stream failed (bad media, timeout).
    Error,
}

impl StartReason {
    fn as_str(self) -> &'static str {
        match self {
            StartReason::Publish => "publish",
            StartReason::Reconnect => "reconnect",
        }
    }
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Disconnected => "disconnected",
            EndReason::Revoked => "revoked",
            EndReason::Shutdown => "shutdown",
            EndReason::Error => "error",
        }
    }
}

/// `stream.started`'s `data`.
pub fn stream_started_payload(
    channel: &str,
    channel_id: &str,
    started_at: UnixMs,
    reason: StartReason,
) -> Value {
    json!({
        "channel": channel, "channel_id": channel_id,
        "started_at": started_at, "reason": reason.as_str(),
    })
}

/// `stream.ended`'s `data`.
pub fn stream_ended_payload(
    channel: &str,
    channel_id: &str,
    ended_at: UnixMs,
    reason: EndReason,
) -> Value {
    json!({
        "channel": channel, "channel_id": channel_id,
        "ended_at": ended_at, "reason": reason.as_str(),
    })
}

/// The node's webhook dispatcher.
#[derive(Debug)]
pub struct Webhooks {
    dispatcher: Dispatcher,
}

/// Emits events; cheap to clone, never blocks.
#[derive(Debug, Clone)]
#[allow(dead_code)] // The triggers are wired separately.
pub struct Emitter {
    sender: WebhookSender,
}

impl Webhooks {
    /// Starts delivering on the current runtime.
    pub fn start(db: starling_control::Db) -> Self {
        Self::start_with(db, DispatcherConfig::default())
    }

    fn start_with(db: Db, cfg: DispatcherConfig) -> Self {
        Self {
            dispatcher: Dispatcher::start(db, cfg),
        }
    }

    /// A handle for the parts of the node that emit events.
    #[allow(dead_code)] // The triggers are wired separately.
    pub fn emitter(&self) -> Emitter {
        Emitter {
            sender: self.dispatcher.sender(),
        }
    }

    /// Stops after the attempts in flight (at most one request timeout).
    pub async fn shutdown(self) {
        self.dispatcher.shutdown().await;
    }
}

#[allow(dead_code)] // The triggers are wired separately.
impl Emitter {
    /// Queues `kind` with `payload` (a JSON object, the event's `data`) for every
    /// webhook of `org_id` subscribed to it. Returns false if it was dropped (the
    /// buffer is full, or the node is shutting down); logs why.
    pub fn emit(&self, org_id: &str, kind: WebhookEvent, payload: Value) -> bool {
        self.sender.emit(org_id, kind, payload.to_string())
    }

    /// `stream.started` for a channel of `org_id`.
    pub fn stream_started(
        &self,
        org_id: &str,
        channel: &str,
        channel_id: &str,
        started_at: UnixMs,
        reason: StartReason,
    ) -> bool {
        self.emit(
            org_id,
            WebhookEvent::StreamStarted,
            stream_started_payload(channel, channel_id, started_at, reason),
        )
    }

    /// `stream.ended` for a channel of `org_id`.
    pub fn stream_ended(
        &self,
        org_id: &str,
        channel: &str,
        channel_id: &str,
        ended_at: UnixMs,
        reason: EndReason,
    ) -> bool {
        self.emit(
            org_id,
            WebhookEvent::StreamEnded,
            stream_ended_payload(channel, channel_id, ended_at, reason),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_payload_shapes() {
        assert_eq!(
            stream_started_payload("news", "ch_1", 1_700_000_000_000, StartReason::Publish),
            json!({"channel": "news", "channel_id": "ch_1", "started_at": 1_700_000_000_000_i64, "reason": "publish"})
        );
        assert_eq!(
            stream_ended_payload("news", "ch_1", 1_700_000_060_000, EndReason::Revoked),
            json!({"channel": "news", "channel_id": "ch_1", "ended_at": 1_700_000_060_000_i64, "reason": "revoked"})
        );
    }
}
