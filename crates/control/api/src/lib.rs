//! Starling's management REST API: `/api/v1/...` and `/api/openapi.json`, over
//! [`starling_control`].
//!
//! - [`router`] returns an axum `Router` with absolute routes, mounted by the binary at
//!   the root. It owns no socket; serve it with
//!   `into_make_service_with_connect_info::<SocketAddr>()` so login throttling sees the
//!   TCP peer (without it every client counts as the address `unknown`).
//! - Authentication: `Authorization: Bearer <api token>` or the `starling_session`
//!   cookie (`HttpOnly; SameSite=Strict`). Authorisation is the control plane's: another
//!   organisation's resource is 404, a refused action in one's own is 403.
//! - Errors: one shape, `{"error": {"code", "message", "field"?}}` ([`ApiError`]).
//! - Bodies are JSON (`Content-Type: application/json`), at most [`BODY_LIMIT`] bytes.
//!
//! This crate must never build SQL, and never put a secret (stream key, token, session,
//! password, hash) in a log line or in any response but the one that created it.

pub mod error;
mod events;
pub mod extract;
mod handlers;
pub mod openapi;
pub mod recordings;
mod users;
mod webhooks;

#[cfg(test)]
mod tests;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{any, delete, get, patch, post, MethodRouter};
use axum::Router;
use starling_control::{Db, UnixMs};

pub use error::ApiError;
pub use recordings::{
    RecordingItem, RecordingPage, RecordingStore, RecordingSummary, RecordingsError,
};

/// Largest accepted request body: 1 MiB.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The control plane.
    pub db: Db,
    /// The clock, unix ms (tests inject a fixed one).
    pub now: fn() -> UnixMs,
    /// Which webhook targets may be registered (the node's `[webhooks]` config); the
    /// dispatcher checks the resolved addresses again at every delivery.
    pub webhook_targets: starling_webhooks::TargetPolicy,
    /// The node's recordings (its origin over the object store); `None` where the node
    /// keeps none (the recordings routes answer 503).
    pub recordings: Option<std::sync::Arc<dyn RecordingStore>>,
}

/// The wall clock in unix ms, for [`ApiState::now`].
pub fn system_now() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `/api` routes the node mounts beside this router (the binary's live list, the
/// live-state SSE stream): documented in [`openapi::document`] too, so the document
/// covers every `/api` route a node serves. The binary's tests hold its mounted routes
/// against this list.
pub const NODE_ROUTES: [(Method, &str); 4] = [
    (Method::GET, "/api/v1/live"),
    (Method::GET, starling_live_state::LIVE_STATE_PATH),
    (Method::GET, starling_live_state::LIVE_STATE_ALIAS),
    (Method::GET, "/api/v1/live/{channel}/reframe"),
];

/// Every route: method, path (axum syntax, which is also OpenAPI's), handler.
/// The router is built from this table alone, so a test can hold the OpenAPI document
/// against exactly what is served.
pub(crate) fn routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    use handlers as h;
    vec![
        (Method::GET, "/api/openapi.json", get(h::openapi)),
        (Method::POST, "/api/v1/login", post(h::login)),
        (Method::POST, "/api/v1/logout", post(h::logout)),
        (Method::GET, "/api/v1/me", get(h::me)),
        (Method::GET, "/api/v1/tokens", get(h::list_tokens)),
        (Method::POST, "/api/v1/tokens", post(h::create_token)),
        (
            Method::DELETE,
            "/api/v1/tokens/{id}",
            delete(h::revoke_token),
        ),
        (Method::GET, "/api/v1/channels", get(h::list_channels)),
        (Method::POST, "/api/v1/channels", post(h::create_channel)),
        (Method::GET, "/api/v1/channels/{id}", get(h::get_channel)),
        (
            Method::PATCH,
            "/api/v1/channels/{id}",
            patch(h::update_channel),
        ),
        (
            Method::DELETE,
            "/api/v1/channels/{id}",
            delete(h::delete_channel),
        ),
        (
            Method::POST,
            "/api/v1/channels/{id}/playback-tokens",
            post(h::create_playback_token),
        ),
        (
            Method::GET,
            "/api/v1/channels/{id}/recordings",
            get(recordings::list),
        ),
        (
            Method::DELETE,
            "/api/v1/channels/{id}/recordings/{run}",
            delete(recordings::delete),
        ),
        (Method::GET, "/api/v1/devices", get(h::list_devices)),
        (Method::POST, "/api/v1/devices", post(h::create_device)),
        (Method::GET, "/api/v1/devices/{id}", get(h::get_device)),
        (
            Method::DELETE,
            "/api/v1/devices/{id}",
            delete(h::revoke_device),
        ),
        (Method::GET, "/api/v1/devices/{id}/keys", get(h::list_keys)),
        (
            Method::POST,
            "/api/v1/devices/{id}/keys",
            post(h::create_key),
        ),
        (
            Method::POST,
            "/api/v1/keys/{id}/rotate",
            post(h::rotate_key),
        ),
        (Method::DELETE, "/api/v1/keys/{id}", delete(h::revoke_key)),
        (Method::GET, "/api/v1/users", get(users::list_users)),
        (Method::POST, "/api/v1/users", post(users::create_user)),
        (Method::GET, "/api/v1/users/{id}", get(users::get_user)),
        (
            Method::PATCH,
            "/api/v1/users/{id}",
            patch(users::update_user),
        ),
        (Method::GET, "/api/v1/orgs", get(users::list_orgs)),
        (Method::POST, "/api/v1/orgs", post(users::create_org)),
        (Method::GET, "/api/v1/events", get(events::list_events)),
        (Method::POST, "/api/v1/events", post(events::create_event)),
        (Method::GET, "/api/v1/events/{id}", get(events::get_event)),
        (
            Method::PATCH,
            "/api/v1/events/{id}",
            patch(events::update_event),
        ),
        (
            Method::DELETE,
            "/api/v1/events/{id}",
            delete(events::delete_event),
        ),
        (
            Method::POST,
            "/api/v1/events/{id}/cancel",
            post(events::cancel_event),
        ),
        (
            Method::GET,
            "/api/v1/events/{id}/prefetch",
            get(events::prefetch),
        ),
        // The spelling of the same document, for clients written against it.
        (
            Method::GET,
            "/api/events/{id}/prefetch",
            get(events::prefetch),
        ),
        (Method::GET, "/api/v1/webhooks", get(webhooks::list)),
        (Method::POST, "/api/v1/webhooks", post(webhooks::create)),
        (
            Method::DELETE,
            "/api/v1/webhooks/{id}",
            delete(webhooks::delete),
        ),
        (
            Method::GET,
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        ),
    ]
}

/// The API router, with absolute paths; merge it into the server's root router.
///
/// It sets no router-wide fallback (so it merges with others): unknown paths under
/// `/api/v1/` answer a JSON 404 through a catch-all route instead.
pub fn router<S: Clone + Send + Sync + 'static>(state: ApiState) -> Router<S> {
    let mut r: Router<ApiState> = Router::new();
    for (_, path, handler) in routes() {
        r = r.route(path, handler);
    }
    r.route("/api/v1/{*rest}", any(handlers::no_route))
        .layer(axum::middleware::map_response(handlers::shape_bare_errors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
