//! Webhooks on a node: starts the dispatcher (which drains the control plane's durable
//! delivery queue) and gives the rest of the node one non-blocking call per event.
//!
//! Callers: ingest on publish start / end ([`Emitter::stream_started`],
//! [`Emitter::stream_ended`]), the event scheduler on a state change and the recorder
//! when a recording is ready ([`Emitter::emit`] with their own payloads). Every call
//! returns at once: the event goes to a bounded buffer, is written to the queue by a
//! background task, and is delivered (and retried) from there. Payload shapes are
//! documented in docs/control-plane.md ("Webhooks").

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};
use starling_control::{Channel, Db, UnixMs, WebhookEvent};
use starling_hub::{Hub, Lifecycle};
use starling_live_state::StateChange;
use starling_origin::Origin;
use starling_webhooks::{Dispatcher, DispatcherConfig, WebhookSender};
use tokio::sync::broadcast;
use tracing::warn;

/// Why a stream started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartReason {
    /// A publisher connected.
    Publish,
    /// The same device reconnected and replaced its previous publish.
    Reconnect,
}

/// Why a stream ended, as far as the hub can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher said it was done (RTMP `FCUnpublish` / `deleteStream`).
    Finished,
    /// The connection was lost or timed out, or the publish was stopped (key revoked,
    /// node shutting down).
    Dropped,
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
            EndReason::Finished => "finished",
            EndReason::Dropped => "dropped",
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
pub struct Emitter {
    sender: WebhookSender,
}

impl Webhooks {
    /// Starts delivering on the current runtime.
    pub fn start(db: Db, cfg: DispatcherConfig) -> Result<Self, starling_webhooks::TlsError> {
        Ok(Self {
            dispatcher: Dispatcher::start(db, cfg)?,
        })
    }

    /// A handle for the parts of the node that emit events.
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

/// `event.state_changed`'s `data`.
pub fn event_state_payload(ev: &starling_control::Event, change: &StateChange) -> Value {
    json!({
        "event_id": ev.id, "channel": ev.channel, "channel_id": ev.channel_id,
        "title": ev.title, "from": change.from.as_str(), "to": change.to.as_str(),
        "at": starling_live_state::state::unix_ms(change.at),
        "reason": serde_json::to_value(change.reason).unwrap_or(Value::Null),
    })
}

/// `recording.ready`'s `data`.
pub fn recording_payload(
    ch: &starling_control::Channel,
    rec: &starling_origin::Recording,
    ended_at: UnixMs,
) -> Value {
    json!({
        "channel": ch.name, "channel_id": ch.id, "session": rec.session,
        "sessions": rec.sessions,
        "ended_at": ended_at, "duration_secs": rec.duration_secs, "bytes": rec.bytes,
        "segments": rec.segments,
        // The playlist is VOD (ENDLIST) at this URL until the channel's next publish.
        "playlist": format!("/live/{}/index.m3u8", ch.name),
        "object_prefix": rec.prefix,
    })
}

/// Publish starts and ends of control-plane channels become `stream.started` /
/// `stream.ended`, and, for channels that record, `recording.ready` once the origin has
/// stored the whole publish. Config-file channels belong to no organisation: no webhooks.
pub fn notify_streams(
    hub: &Hub,
    db: Db,
    origin: Arc<Origin>,
    emitter: Emitter,
) -> tokio::task::JoinHandle<()> {
    let mut rx = hub.lifecycle();
    tokio::spawn(async move {
        loop {
            let l = match rx.recv().await {
                Ok(l) => l,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "webhooks missed publish notices");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let (Lifecycle::Started { channel, .. } | Lifecycle::Ended { channel, .. }) = &l;
            let ch = match db.channel_by_name(channel).await {
                Ok(Some(ch)) => ch,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, %channel, "no webhook: channel lookup failed");
                    continue;
                }
            };
            match l {
                Lifecycle::Started { at, takeover, .. } => {
                    let why = if takeover {
                        StartReason::Reconnect
                    } else {
                        StartReason::Publish
                    };
                    emitter.stream_started(&ch.org_id, &ch.name, &ch.id, ms(at), why);
                }
                Lifecycle::Ended { at, finished, .. } => {
                    let why = if finished {
                        EndReason::Finished
                    } else {
                        EndReason::Dropped
                    };
                    emitter.stream_ended(&ch.org_id, &ch.name, &ch.id, ms(at), why);
                    if ch.recording {
                        tokio::spawn(recording_ready(origin.clone(), emitter.clone(), ch, ms(at)));
                    }
                }
            }
        }
    })
}

/// Waits (bounded) until the origin has stored the whole run (it ends when the reconnect
/// grace runs out), then says so.
async fn recording_ready(origin: Arc<Origin>, emitter: Emitter, ch: Channel, ended_at: UnixMs) {
    let deadline =
        tokio::time::Instant::now() + origin.config().reconnect_grace + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Some(rec) = origin
            .channel(&ch.name)
            .and_then(|c| c.finished_recording())
        {
            emitter.emit(
                &ch.org_id,
                WebhookEvent::RecordingReady,
                recording_payload(&ch, &rec, ended_at),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    warn!(channel = %ch.name, "recording not fully stored within 60 s (or the channel went live again); no recording.ready");
}

fn ms(t: std::time::SystemTime) -> UnixMs {
    starling_live_state::state::unix_ms(t) as i64
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
            stream_ended_payload("news", "ch_1", 1_700_000_060_000, EndReason::Dropped),
            json!({"channel": "news", "channel_id": "ch_1", "ended_at": 1_700_000_060_000_i64, "reason": "dropped"})
        );
    }
}
