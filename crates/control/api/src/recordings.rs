//! A channel's recordings: `GET /api/v1/channels/{id}/recordings` and
//! `DELETE /api/v1/channels/{id}/recordings/{run}`.
//!
//! Recordings live in the object store, which this crate knows nothing of: the node
//! hands the API a [`RecordingStore`] (over its origin) in [`ApiState::recordings`].
//! Without one (a control plane that serves no media) these routes answer 503.
//! Authorisation is the channel's: reading them is reading the channel, deleting one is
//! managing it; another organisation's channel is 404 as everywhere.

use std::{future::Future, pin::Pin};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use starling_control::{can, Action, ControlError, UnixMs};

use crate::error::ApiError;
use crate::extract::{plausible_id, Auth, Id, Page, Path};
use crate::ApiState;

/// Most recordings one page lists.
pub const RECORDINGS_PAGE_MAX: i64 = 100;
/// Farthest a page may start (runs are listed from the store's listing).
pub const RECORDINGS_OFFSET_MAX: i64 = 10_000;

/// The future a [`RecordingStore`] answers with.
pub type RecordingsFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, RecordingsError>> + Send + 'a>>;

/// Where a node keeps its channels' recordings (its origin over the object store).
pub trait RecordingStore: Send + Sync + std::fmt::Debug + 'static {
    /// `channel`'s recordings, newest first, `limit` after the `offset` newest.
    fn list<'a>(
        &'a self,
        channel: &'a str,
        offset: usize,
        limit: usize,
    ) -> RecordingsFuture<'a, RecordingPage>;
    /// Deletes recording `run` of `channel`, all of its media and history.
    fn delete<'a>(&'a self, channel: &'a str, run: &'a str) -> RecordingsFuture<'a, ()>;
}

/// One page of a channel's recordings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordingPage {
    pub items: Vec<RecordingItem>,
    /// Older recordings follow.
    pub more: bool,
}

/// A recording as listed, or the run whose history could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingItem {
    Recording(RecordingSummary),
    Unreadable { run: String, error: String },
}

/// What the API says of one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummary {
    /// The run's id (its first session).
    pub run: String,
    pub started_at: UnixMs,
    pub duration_secs: f64,
    /// Segments and init sections in the store, all renditions.
    pub bytes: u64,
    pub segments: u64,
    pub renditions: Vec<String>,
    /// Publishes the run spans (an encoder reconnecting within the grace adds one).
    pub sessions: Vec<String>,
    /// Live or waiting for its encoder: still growing, not deletable.
    pub live: bool,
    /// Where it plays as VOD (a path on the node, with the channel's playback rules).
    pub playback_url: String,
}

/// Why a recording could not be listed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingsError {
    #[error("no such recording")]
    NotFound,
    /// It cannot be deleted now (live, or still being written); the message says why.
    #[error("{0}")]
    Conflict(String),
    /// The store could not be reached or read.
    #[error("{0}")]
    Unavailable(String),
}

impl From<RecordingsError> for ApiError {
    fn from(e: RecordingsError) -> Self {
        match e {
            RecordingsError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such recording")
            }
            RecordingsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RecordingsError::Unavailable(m) => {
                tracing::warn!(error = %m, "api: recordings unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the recordings store cannot be read now; try again later",
                )
            }
        }
    }
}

fn store(st: &ApiState) -> Result<&dyn RecordingStore, ApiError> {
    st.recordings.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node keeps no recordings",
        )
    })
}

pub(crate) fn recording_view(item: &RecordingItem) -> Value {
    match item {
        RecordingItem::Recording(r) => json!({
            "run": r.run, "started_at": r.started_at, "duration_secs": r.duration_secs,
            "bytes": r.bytes, "segments": r.segments, "renditions": r.renditions,
            "sessions": r.sessions, "live": r.live, "playback_url": r.playback_url,
        }),
        RecordingItem::Unreadable { run, error } => json!({ "run": run, "error": error }),
    }
}

pub(crate) async fn list(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Id(id): Id,
    q: Page,
) -> Result<Response, ApiError> {
    let ch = st.db.get_channel(&p, &id).await?;
    let (limit, offset) = q.limit_offset();
    starling_control::validate::range("limit", limit, 1, RECORDINGS_PAGE_MAX)
        .map_err(ControlError::from)?;
    starling_control::validate::range("offset", offset, 0, RECORDINGS_OFFSET_MAX)
        .map_err(ControlError::from)?;
    let page = store(&st)?
        .list(&ch.name, offset as usize, limit as usize)
        .await?;
    let items = page.items.iter().map(recording_view).collect();
    let mut body = Page {
        limit: Some(limit),
        offset: Some(offset),
    }
    .body(items);
    body["more"] = json!(page.more);
    Ok(axum::Json(body).into_response())
}

pub(crate) async fn delete(
    State(st): State<ApiState>,
    Auth(p): Auth,
    Path((id, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !plausible_id(&id) || !plausible_id(&run) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no resource has this id",
        ));
    }
    let ch = st.db.get_channel(&p, &id).await?;
    if !can(&p, Action::ManageChannels, &ch.org_id) {
        return Err(ControlError::Forbidden {
            role: p.role,
            action: Action::ManageChannels,
        }
        .into());
    }
    store(&st)?.delete(&ch.name, &run).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The recordings routes' OpenAPI paths and schemas.
pub(crate) fn openapi() -> crate::openapi::Section {
    use crate::openapi::{error_resp, id_param, no_content, op, r, resp, with};
    let ts = json!({ "type": "integer", "format": "int64", "description": "Unix time, ms." });
    let run = json!({ "type": "string", "pattern": "^[0-9a-f]{16}$" });
    let answers = |mut op: Value| {
        op["responses"]["409"] = error_resp("The recording is live (or waiting for its encoder to reconnect), or still being written; try again once it has ended.");
        op["responses"]["503"] =
            error_resp("This node keeps no recordings, or its store cannot be read now.");
        op
    };
    let mut params = id_param("channel");
    if let Some(a) = params.as_array_mut() {
        a.push(json!({
            "name": "run", "in": "path", "required": true,
            "description": "The recording's id (`run` in the listing).",
            "schema": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$" }
        }));
    }
    let paths = vec![
        (
            "/api/v1/channels/{id}/recordings",
            json!({
                "parameters": id_param("channel"),
                "get": with(answers(op("The channel's recordings in the object store (every run it recorded that retention kept), newest first, read from the store: the same on every node.",
                    ("200", resp("A page.", r("RecordingPage"))), &["404"])),
                    "parameters", json!([
                        { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": RECORDINGS_PAGE_MAX, "default": 50 } },
                        { "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": RECORDINGS_OFFSET_MAX, "default": 0 } }
                    ]))
            }),
        ),
        (
            "/api/v1/channels/{id}/recordings/{run}",
            json!({
                "parameters": params,
                "delete": answers(op("Delete a recording: its media and history in the object store, every session of it (managers).",
                    no_content("Deleted."), &["404"]))
            }),
        ),
    ];
    let schemas = vec![
        (
            "Recording",
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["run", "started_at", "duration_secs", "bytes", "segments", "renditions", "sessions", "live", "playback_url"],
                "properties": {
                    "run": run,
                    "started_at": ts,
                    "duration_secs": { "type": "number", "minimum": 0, "description": "Its longest rendition's duration." },
                    "bytes": { "type": "integer", "minimum": 0, "description": "Segments and init sections in the store, all renditions." },
                    "segments": { "type": "integer", "minimum": 0 },
                    "renditions": { "type": "array", "items": { "type": "string" } },
                    "sessions": { "type": "array", "items": run, "description": "The publishes it spans: an encoder that reconnects within the grace continues the recording." },
                    "live": { "type": "boolean", "description": "Live (or waiting for its encoder) on this node: still growing, not deletable." },
                    "playback_url": { "type": "string", "description": "Its VOD playlist, a path on the node (`/vod/{channel}/{run}/index.m3u8`), with the channel's playback rules (a private channel's needs a playback token)." }
                }
            }),
        ),
        (
            "UnreadableRecording",
            json!({
                "type": "object", "additionalProperties": false, "required": ["run", "error"],
                "properties": { "run": run, "error": { "type": "string", "description": "Why its history in the store cannot be read." } }
            }),
        ),
        (
            "RecordingPage",
            json!({
                "type": "object", "additionalProperties": false, "required": ["items", "limit", "offset", "more"],
                "properties": {
                    "items": { "type": "array", "items": { "oneOf": [r("Recording"), r("UnreadableRecording")] } },
                    "limit": { "type": "integer" }, "offset": { "type": "integer" },
                    "more": { "type": "boolean", "description": "Older recordings follow." }
                }
            }),
        ),
    ];
    (paths, schemas)
}
