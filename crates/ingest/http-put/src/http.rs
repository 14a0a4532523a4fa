//! The routes: `PUT` and `DELETE` on `/ingest/{channel}/{*path}`.
//!
//! Each request is checked in the order that costs least first: the URL (400), then
//! the stream key (401/403, one authoriser lookup per channel and key every
//! [`PushConfig::auth_cache_ttl`](crate::PushConfig)), then the declared size (413,
//! before a byte of the body is read), then the body as it is read (413 past the
//! limit), then its content ([`PushIngest::put`]: 422, or 409 for a playlist naming
//! what was never uploaded). The stream key is never logged nor echoed.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, Once, Weak},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::put,
    Extension, Router,
};
use starling_ingest_auth::{check_key_shape, AuthError, Authorizer, PublishGrant};
use starling_sync::lock;

use crate::{
    check::{check_channel, PushPath, PutError},
    ingest::{too_large, Outcome, PushIngest, Stored, LIVE_WINDOW},
};

/// The RTMP application name the authoriser is asked with: one key publishes over every
/// protocol, and the others use `live`.
const APP: &str = "live";
/// Longest the authorisation cache may be configured to hold a verdict.
const MAX_AUTH_TTL: Duration = Duration::from_secs(2);
/// Cached verdicts at most; past this a verdict is used once and not kept.
const MAX_VERDICTS: usize = 4096;

/// The push ingest's routes. Merge them into the node's router; they carry their own
/// state. Run them behind a server that gives `ConnectInfo<SocketAddr>` for the peer's
/// address in the authoriser's records (without it: `0.0.0.0:0`).
pub fn router<S>(ingest: Arc<PushIngest>, auth: Arc<dyn Authorizer>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let ttl = ingest.config().auth_cache_ttl.min(MAX_AUTH_TTL);
    let state = Arc::new(HttpState {
        ingest,
        gate: Arc::new(AuthGate {
            auth,
            ttl,
            verdicts: Mutex::new(HashMap::new()),
            sweeper: Once::new(),
        }),
    });
    Router::new()
        .route(
            "/ingest/{channel}/{*path}",
            put(put_object).delete(delete_object),
        )
        .with_state(state)
}

#[derive(Debug)]
struct HttpState {
    ingest: Arc<PushIngest>,
    gate: Arc<AuthGate>,
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_addr(peer: Peer) -> SocketAddr {
    peer.map(|Extension(ConnectInfo(a))| a)
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

type Params = Result<Path<(String, String)>, axum::extract::rejection::PathRejection>;

// Each request is handled in a task of its own, not in the future hyper polls: hyper
// drops that future as soon as the client closes its side of the connection, and
// packagers do close right after their last byte without waiting for the answer
// (ffmpeg without `-http_persistent`). Handled in place, an upload received whole
// would be lost, or a DELETE half done, whenever the close won the race.

async fn put_object(
    State(st): State<Arc<HttpState>>,
    uri: Uri,
    params: Params,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer_addr(peer);
    detached(tokio::spawn(handle_put(
        st, uri, params, peer, headers, body,
    )))
    .await
}

async fn delete_object(
    State(st): State<Arc<HttpState>>,
    uri: Uri,
    params: Params,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let peer = peer_addr(peer);
    detached(tokio::spawn(handle_delete(st, uri, params, peer, headers))).await
}

async fn detached(task: tokio::task::JoinHandle<Response>) -> Response {
    task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "push request task failed");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    })
}

/// What every PUT and DELETE passes first: a target it may name, then a key that may
/// push to that channel. The refusal is the response.
async fn admit(
    st: &HttpState,
    uri: &Uri,
    params: Params,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(String, PushPath), Response> {
    let (channel, path) = target(uri, params).map_err(|e| st.refuse_target(&e))?;
    st.authorize(&channel, headers, peer).await?;
    Ok((channel, path))
}

async fn handle_put(
    st: Arc<HttpState>,
    uri: Uri,
    params: Params,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (channel, path) = match admit(&st, &uri, params, peer, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let limit = st.ingest.config().limit(path.kind());
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(size) = declared.filter(|&n| n > limit as u64) {
        st.ingest.count(Outcome::TooLarge);
        return refuse(&too_large(path.kind(), Some(size), limit));
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let e = e.into_inner();
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                st.ingest.count(Outcome::TooLarge);
                return refuse(&too_large(path.kind(), None, limit));
            }
            st.ingest.count(Outcome::RefusedBody);
            tracing::info!(%channel, %path, %peer, error = %e, "push refused: the upload broke off");
            return text(
                StatusCode::BAD_REQUEST,
                format!("the upload broke off: {e}"),
            );
        }
    };
    let len = body.len();
    match st.ingest.put(&channel, &path, body).await {
        Ok(stored) => {
            tracing::debug!(%channel, %path, bytes = len, ?stored, "pushed object stored");
            match stored {
                Stored::New => StatusCode::CREATED.into_response(),
                Stored::Replaced => StatusCode::NO_CONTENT.into_response(),
            }
        }
        Err(e) => {
            // The sender was authorised for this channel: its own names may be logged.
            tracing::info!(%channel, %path, %peer, error = %e, "push refused");
            refuse(&e)
        }
    }
}

async fn handle_delete(
    st: Arc<HttpState>,
    uri: Uri,
    params: Params,
    peer: SocketAddr,
    headers: HeaderMap,
) -> Response {
    let (channel, path) = match admit(&st, &uri, params, peer, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match st.ingest.delete(&channel, &path) {
        Ok(()) => {
            tracing::debug!(%channel, %path, "pushed object deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => refuse(&e),
    }
}

/// The channel and path of the request, checked. Percent-encoding is refused outright
/// rather than decoded: no legitimate pushed name needs it, and `%2e%2e` or `%2f`
/// never reach the checks in a second form.
fn target(uri: &Uri, params: Params) -> Result<(String, PushPath), PutError> {
    if uri.path().contains('%') {
        return Err(PutError::Path(
            "contains '%': percent-encoded names are not taken; use A-Z a-z 0-9 _ . - only".into(),
        ));
    }
    match params {
        Ok(Path((channel, path))) => {
            check_channel(&channel)?;
            Ok((channel, PushPath::parse(&path)?))
        }
        Err(e) => Err(PutError::Path(format!("could not be read: {e}"))),
    }
}

fn refuse(e: &PutError) -> Response {
    let status = match e {
        PutError::Channel(_) | PutError::Path(_) => StatusCode::BAD_REQUEST,
        PutError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        PutError::MissingReference(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    text(status, e.to_string())
}

fn text(status: StatusCode, mut msg: String) -> Response {
    msg.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

impl HttpState {
    fn refuse_target(&self, e: &PutError) -> Response {
        self.ingest.count(Outcome::RefusedPath);
        // Not logged with its text: nothing has been authorised yet, and a channel name
        // in the wrong place may be a stream key.
        tracing::debug!("push refused: malformed channel or path");
        refuse(e)
    }

    async fn authorize(
        &self,
        channel: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(), Response> {
        let denied = match self.gate.check(channel, headers, peer).await {
            Ok(()) => return Ok(()),
            Err(d) => d,
        };
        self.ingest.count(Outcome::RefusedAuth);
        tracing::info!(%peer, reason = %denied.log_reason(), "push refused: not authorised");
        let mut r = match &denied {
            Denied::NoKey => text(
                StatusCode::UNAUTHORIZED,
                "send the channel's stream key as 'Authorization: Bearer KEY'".into(),
            ),
            Denied::Refused(e) => text(StatusCode::FORBIDDEN, e.to_string()),
            Denied::OtherChannel => text(
                StatusCode::FORBIDDEN,
                "this stream key does not publish to this channel".into(),
            ),
            Denied::LiteralCrlf => text(
                StatusCode::FORBIDDEN,
                "the stream key ends in the four characters '\\r\\n', not a line break: \
                 give ffmpeg's -headers a real CRLF (in a shell: -headers $'Authorization: Bearer KEY\\r\\n')"
                    .into(),
            ),
            Denied::Unavailable => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorisation is unavailable; try again".into(),
            ),
        };
        if matches!(denied, Denied::NoKey) {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Err(r)
    }
}

#[derive(Debug)]
enum Denied {
    NoKey,
    /// The key's shape, or the authoriser's refusal. Its text echoes nothing the client
    /// sent but a channel name.
    Refused(AuthError),
    OtherChannel,
    /// `-headers "Authorization: Bearer KEY\r\n"` in double quotes: the shell passes the
    /// backslashes on, and ffmpeg sends them as part of the key. Worth its own answer.
    LiteralCrlf,
    Unavailable,
}

impl Denied {
    fn log_reason(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Denied::NoKey => "no bearer stream key".into(),
            Denied::Refused(e) => e.log_reason(),
            Denied::OtherChannel => "the key belongs to another channel".into(),
            Denied::LiteralCrlf => "the key ends in a literal '\\r\\n'".into(),
            Denied::Unavailable => "authoriser unavailable".into(),
        }
    }
}

/// Authorisation with a short memory of positive verdicts.
///
/// A packager sends several requests a second (segments, parts, playlists); asking the
/// control plane for each would put a database lookup on every one. A verdict for a
/// channel and key is reused for `ttl` (at most 2 s), so a revoked or rotated key is
/// refused at most that long after the revocation. Refusals are never cached.
///
/// The authoriser counts the publishes it granted until told they ended
/// (`publish_ended`: a device shows as live while it publishes). HTTP has no connection
/// to end, so each grant is held while its key keeps pushing, handed back when the next
/// lookup replaces it, and the last one when the key has pushed nothing to the channel
/// for [`LIVE_WINDOW`].
struct AuthGate {
    auth: Arc<dyn Authorizer>,
    ttl: Duration,
    /// By (channel, stream key). Keys are held here as the authoriser holds them, and
    /// are never printed (the `Debug` below shows a count).
    verdicts: Mutex<HashMap<(String, String), Verdict>>,
    sweeper: Once,
}

struct Verdict {
    grant: PublishGrant,
    checked: Instant,
    used: Instant,
}

impl std::fmt::Debug for AuthGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGate")
            .field("ttl", &self.ttl)
            .field("verdicts", &lock(&self.verdicts).len())
            .finish_non_exhaustive()
    }
}

impl AuthGate {
    async fn check(
        self: &Arc<Self>,
        channel: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(), Denied> {
        let key = bearer(headers).ok_or(Denied::NoKey)?;
        if key.ends_with("\\r\\n") {
            return Err(Denied::LiteralCrlf);
        }
        check_key_shape(key).map_err(Denied::Refused)?;
        let id = (channel.to_owned(), key.to_owned());
        let now = Instant::now();
        if let Some(v) = lock(&self.verdicts).get_mut(&id) {
            if now.duration_since(v.checked) < self.ttl {
                v.used = now;
                return Ok(());
            }
        }
        self.start_sweeper();
        match self.auth.authorize_publish(APP, key, peer).await {
            Ok(grant) if grant.channel == channel => {
                let old = {
                    let mut verdicts = lock(&self.verdicts);
                    if verdicts.len() >= MAX_VERDICTS && !verdicts.contains_key(&id) {
                        Some(grant)
                    } else {
                        let v = Verdict {
                            grant,
                            checked: now,
                            used: now,
                        };
                        verdicts.insert(id, v).map(|old| old.grant)
                    }
                };
                // After the new grant is held, so that the key never looks idle between.
                if let Some(g) = old {
                    self.auth.publish_ended(&g);
                }
                Ok(())
            }
            Ok(grant) => {
                self.auth.publish_ended(&grant);
                Err(Denied::OtherChannel)
            }
            // The publish may well go on: the held grant stays until the sweep.
            Err(AuthError::Unavailable(_)) => Err(Denied::Unavailable),
            Err(e) => {
                if let Some(old) = lock(&self.verdicts).remove(&id) {
                    self.auth.publish_ended(&old.grant);
                }
                Err(Denied::Refused(e))
            }
        }
    }

    /// Hands back the grants of keys that stopped pushing, once a second, for as long
    /// as the router lives. Started by the first lookup (in a runtime by then).
    fn start_sweeper(self: &Arc<Self>) {
        self.sweeper.call_once(|| {
            let gate: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(gate) = gate.upgrade() else { break };
                    gate.sweep(Instant::now());
                }
            });
        });
    }

    fn sweep(&self, now: Instant) {
        let ended: Vec<PublishGrant> = {
            let mut verdicts = lock(&self.verdicts);
            let quiet: Vec<(String, String)> = verdicts
                .iter()
                .filter(|(_, v)| now.duration_since(v.used) >= LIVE_WINDOW)
                .map(|(id, _)| id.clone())
                .collect();
            quiet
                .iter()
                .filter_map(|id| verdicts.remove(id))
                .map(|v| v.grant)
                .collect()
        };
        for g in &ended {
            self.auth.publish_ended(g);
        }
    }
}

impl Drop for AuthGate {
    fn drop(&mut self) {
        let verdicts = std::mem::take(&mut *lock(&self.verdicts));
        for v in verdicts.into_values() {
            self.auth.publish_ended(&v.grant);
        }
    }
}

/// The key of `Authorization: Bearer KEY` (the scheme in any case); `None` when the
/// header is missing, of another scheme, or empty.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = v.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
