//! The edge role: a caching reverse proxy for `/live/…` in front of an origin
//! (docs/cluster.md).
//!
//! - **One fill per object.** Requests are keyed by path and LL-HLS directives
//!   ([`policy::target`]). The first request for a key that the cache cannot answer
//!   starts a fill from the origin in a task of its own; every request for the same key
//!   meanwhile waits on that fill (collapsed), so 2,000 viewers blocked on the same
//!   `_HLS_msn`/`_HLS_part` cost the origin one request. A viewer that hangs up does not
//!   cancel the fill the others wait on.
//! - **A bounded memory** ([`cache`]): a byte budget, least recently used out, freshness
//!   from the origin's `Cache-Control` (immutable media for as long as it says, playlists
//!   for their second, "not yet" 404s for theirs).
//! - **Stale-if-error**: when a fill fails (no answer, a timeout, a 5xx), a copy past its
//!   TTL is served within its stale window instead, so a blip of the origin does not
//!   reach viewers of what the edge already has.
//! - **Private channels** are checked at the edge with the node's [`PlaybackGate`] (the
//!   cluster's signing key): a viewer without a valid token is refused here, and the
//!   edge fills with a token of its own ([`FillToken`]), which it swaps for each viewer's
//!   in the playlists it serves, so that one cached copy serves every viewer.
//! - **Bounded work**: at most `max_fills` fills at once (more requests are shed with
//!   503 unless a stale copy stands in), bodies up to [`MAX_BODY`], a timeout per fill.
//!
//! Not yet: streaming a fill to the waiting viewers as it arrives (a part is delivered
//! once complete; parts are a few hundred milliseconds), parent edges chosen from a
//! directory (an edge's origin may be another edge: set `[edge] origin` to it).

pub mod cache;
mod metrics;
pub mod policy;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{RawQuery, Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use starling_origin::gate::{self, Access, PlaybackGate};
use starling_sync::lock;
use tokio::sync::{watch, Semaphore};

/// The status type of [`policy::keep`] (axum's, re-exported for callers without axum).
pub use axum::http::StatusCode as Status;
pub use cache::{Cache, Lookup, Stored};
pub use metrics::{CacheGauges, EdgeMetrics};

/// Largest body a fill accepts (a segment of a high-bitrate rendition is a few MB).
pub const MAX_BODY: usize = 64 << 20;
/// The header saying how the edge answered: `hit`, `miss`, `collapsed` or `stale`.
pub const CACHE_HEADER: &str = "starling-edge-cache";

/// Mints the token the edge fills a private channel's objects with (None: it cannot,
/// and the origin will refuse the fill).
pub type FillToken = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The future an [`OriginResolver`] answers with.
pub type OriginFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + 'a>>;

/// Says which origin packages a channel (a cluster's directory): `http://host:port`, or
/// None when it does not know, and the configured origin is asked.
pub trait OriginResolver: Send + Sync + 'static {
    fn origin_for<'a>(&'a self, channel: &'a str) -> OriginFuture<'a>;
}

/// How an edge runs.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The origin (or parent edge) it fills from: `http://host:port`. Empty: only what
    /// the [`OriginResolver`] says (a cluster's directory).
    pub origin: String,
    /// Bytes of responses kept in memory.
    pub cache_bytes: usize,
    /// A fill taking longer fails (blocking playlist requests wait at the origin for up
    /// to three target durations, so this is well above that).
    pub fill_timeout: Duration,
    /// How long past its TTL a 200 may stand in for a failing origin, when the origin
    /// does not say (`stale-if-error`).
    pub stale_if_error: Duration,
    /// Fills under way at once; more requests are shed.
    pub max_fills: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            origin: String::new(),
            cache_bytes: 512 << 20,
            fill_timeout: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(30),
            max_fills: 512,
        }
    }
}

/// Why the origin's URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("edge origin {0:?} must be http://HOST:PORT (no path, no query)")]
    Origin(String),
}

/// Why a fill gave nothing to serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FillError {
    #[error("the origin did not answer: {0}")]
    Unreachable(String),
    #[error("the origin took longer than {0:?}")]
    Timeout(Duration),
    #[error("the origin's body failed or passed {MAX_BODY} bytes: {0}")]
    Body(String),
    #[error("the fill task ended without an answer")]
    Lost,
}

type Filled = Result<Arc<Stored>, FillError>;

/// Checks an origin URL (`http://HOST:PORT`, no path or query) and returns it as the
/// edge prefixes request paths with.
pub fn check_origin(origin: &str) -> Result<String, EdgeError> {
    let bad = || EdgeError::Origin(origin.to_owned());
    let uri: Uri = origin.parse().map_err(|_| bad())?;
    let path_ok = matches!(uri.path(), "" | "/") && uri.query().is_none();
    match uri.authority() {
        Some(a) if uri.scheme_str() == Some("http") && path_ok => Ok(format!("http://{a}")),
        _ => Err(bad()),
    }
}

/// One edge: its cache, its fills under way, its client to the origin.
pub struct Edge {
    config: EdgeConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    cache: Mutex<Cache>,
    inflight: Mutex<HashMap<String, watch::Receiver<Option<Filled>>>>,
    fills: Arc<Semaphore>,
    gate: Option<Arc<dyn PlaybackGate>>,
    fill_token: Option<FillToken>,
    resolver: Option<Arc<dyn OriginResolver>>,
    /// Counters for `/metrics`.
    pub metrics: EdgeMetrics,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("config", &self.config)
            .field("gate", &self.gate.is_some())
            .finish_non_exhaustive()
    }
}

/// How a request was admitted.
enum Admission {
    Public,
    /// A private channel, with the viewer's token.
    Private(Option<String>),
}

impl Edge {
    /// An edge in front of `config.origin`. With a gate, private channels are checked
    /// here; `fill_token` gives the edge its own token to fill them with; a `resolver`
    /// names each channel's origin (the configured one when it does not know).
    pub fn new(
        config: EdgeConfig,
        gate: Option<Arc<dyn PlaybackGate>>,
        fill_token: Option<FillToken>,
        resolver: Option<Arc<dyn OriginResolver>>,
    ) -> Result<Arc<Self>, EdgeError> {
        let mut config = config;
        if !config.origin.is_empty() || resolver.is_none() {
            config.origin = check_origin(&config.origin)?;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Arc::new(Self {
            cache: Mutex::new(Cache::new(config.cache_bytes)),
            fills: Arc::new(Semaphore::new(config.max_fills.max(1))),
            config,
            client,
            inflight: Mutex::new(HashMap::new()),
            gate,
            fill_token,
            resolver,
            metrics: EdgeMetrics::default(),
        }))
    }

    /// The origin it fills from.
    pub fn origin(&self) -> &str {
        &self.config.origin
    }

    /// The cache's gauges now.
    pub fn gauges(&self) -> CacheGauges {
        let inflight = lock(&self.inflight).len();
        let c = lock(&self.cache);
        CacheGauges {
            bytes: c.bytes(),
            budget: self.config.cache_bytes,
            objects: c.len(),
            evictions: c.evictions(),
            fills_in_flight: inflight,
        }
    }

    /// Appends the edge's metrics (Prometheus text) to `out`.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(self.gauges(), out);
    }

    /// Answers a GET (or HEAD) for `path` and `query`.
    pub async fn serve(
        self: &Arc<Self>,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let target = match policy::target(path, query) {
            Ok(t) => t,
            Err(e) => {
                self.metrics.refused.fetch_add(1, Relaxed);
                return plain(StatusCode::BAD_REQUEST, &e.to_string());
            }
        };
        let admission = match &self.gate {
            None => Admission::Public,
            Some(g) => {
                let token = gate::request_token(query, headers);
                match g.check(&target.channel, token.as_deref()).await {
                    Access::Public => Admission::Public,
                    Access::Allowed => Admission::Private(token.map(|t| t.into_owned())),
                    Access::Refused(r) => {
                        self.metrics.refused.fetch_add(1, Relaxed);
                        return r.response(&target.channel);
                    }
                }
            }
        };
        let now = Instant::now();
        let mut stale = None;
        let (mut rx, how) = {
            let mut inflight = lock(&self.inflight);
            match lock(&self.cache).get(&target.key, now) {
                Lookup::Fresh(s) => {
                    self.metrics.hits.fetch_add(1, Relaxed);
                    return self.respond(&s, &admission, "hit");
                }
                Lookup::Stale(s) => stale = Some(s),
                Lookup::Miss => {}
            }
            if let Some(rx) = inflight.get(&target.key) {
                self.metrics.collapsed.fetch_add(1, Relaxed);
                (rx.clone(), "collapsed")
            } else {
                let Ok(permit) = self.fills.clone().try_acquire_owned() else {
                    drop(inflight);
                    self.metrics.shed.fetch_add(1, Relaxed);
                    return match stale {
                        Some(s) => {
                            self.metrics.stale_served.fetch_add(1, Relaxed);
                            self.respond(&s, &admission, "stale")
                        }
                        None => busy(),
                    };
                };
                self.metrics.fills.fetch_add(1, Relaxed);
                let token: Option<Arc<str>> = match &admission {
                    Admission::Private(_) => self
                        .fill_token
                        .as_ref()
                        .and_then(|f| f(&target.channel))
                        .map(Into::into),
                    Admission::Public => None,
                };
                let (tx, rx) = watch::channel(None);
                inflight.insert(target.key.clone(), rx.clone());
                let edge = self.clone();
                let (key, blocking) = (target.key.clone(), target.blocking);
                let channel = target.channel.clone();
                tokio::spawn(async move {
                    let filled = edge.fill(&key, &channel, blocking, token).await;
                    drop(permit);
                    {
                        let mut inflight = lock(&edge.inflight);
                        if let Ok(s) = &filled {
                            if s.fresh_until > Instant::now() {
                                lock(&edge.cache).insert(&key, s.clone());
                            }
                        }
                        inflight.remove(&key);
                    }
                    let _ = tx.send(Some(filled));
                });
                (rx, "miss")
            }
        };
        let filled = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(Err(FillError::Lost)),
            Err(_) => Err(FillError::Lost),
        };
        match (filled, stale) {
            (Ok(s), Some(old)) if s.status.is_server_error() => {
                self.metrics.stale_served.fetch_add(1, Relaxed);
                drop(s);
                self.respond(&old, &admission, "stale")
            }
            (Ok(s), _) => self.respond(&s, &admission, how),
            (Err(_), Some(old)) => {
                self.metrics.stale_served.fetch_add(1, Relaxed);
                self.respond(&old, &admission, "stale")
            }
            (Err(e), None) => {
                tracing::debug!(key = %target.key, error = %e, "edge: fill failed");
                plain(StatusCode::BAD_GATEWAY, &format!("edge: {e}"))
            }
        }
    }

    /// Asks the channel's origin for `key` (with the edge's own token for a private
    /// channel).
    async fn fill(
        &self,
        key: &str,
        channel: &str,
        blocking: bool,
        token: Option<Arc<str>>,
    ) -> Filled {
        use std::sync::atomic::Ordering::Relaxed;
        let resolved = match &self.resolver {
            Some(r) => r.origin_for(channel).await,
            None => None,
        };
        let Some(base) = resolved
            .or_else(|| (!self.config.origin.is_empty()).then(|| self.config.origin.clone()))
        else {
            // No origin knows the channel: a "not live" the edge keeps for a second, so
            // that a crowd asking for a channel that is not live costs one lookup.
            let now = Instant::now();
            return Ok(Arc::new(Stored {
                status: StatusCode::NOT_FOUND,
                headers: vec![
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=1"),
                    ),
                ],
                body: Bytes::from(format!("channel {channel:?} is not live in the cluster\n")),
                fresh_until: now + Duration::from_secs(1),
                stale_until: now + Duration::from_secs(1),
                fill_token: None,
            }));
        };
        let mut uri = format!("{base}{key}");
        if let Some(t) = &token {
            uri = gate::with_token(&uri, t);
        }
        let request = hyper::Request::get(uri)
            .header(header::USER_AGENT, "starling-edge")
            .header(header::VIA, "1.1 starling-edge")
            .body(Empty::new())
            .map_err(|e| FillError::Unreachable(e.to_string()));
        let result = async {
            let response =
                tokio::time::timeout(self.config.fill_timeout, self.client.request(request?))
                    .await
                    .map_err(|_| FillError::Timeout(self.config.fill_timeout))?
                    .map_err(|e| FillError::Unreachable(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(
                self.config.fill_timeout,
                Limited::new(body, MAX_BODY).collect(),
            )
            .await
            .map_err(|_| FillError::Timeout(self.config.fill_timeout))?
            .map_err(|e| FillError::Body(e.to_string()))?
            .to_bytes();
            Ok::<_, FillError>((parts, body))
        }
        .await;
        let (parts, body) = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics.fill_errors.fetch_add(1, Relaxed);
                return Err(e);
            }
        };
        self.metrics
            .bytes_filled
            .fetch_add(body.len() as u64, Relaxed);
        if parts.status.is_server_error() {
            self.metrics.origin_5xx.fetch_add(1, Relaxed);
        }
        let now = Instant::now();
        let keep = policy::keep(
            parts.status,
            parts
                .headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            blocking,
            self.config.stale_if_error,
        );
        let (fresh_until, stale_until) = match keep {
            Some(k) => (now + k.ttl, now + k.ttl + k.stale_if_error),
            None => (now, now),
        };
        let headers = parts
            .headers
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Ok(Arc::new(Stored {
            status: parts.status,
            headers,
            body,
            fresh_until,
            stale_until,
            fill_token: token,
        }))
    }

    /// The response for a viewer: the stored answer, with the viewer's token in place
    /// of the edge's in a private channel's playlists.
    fn respond(&self, s: &Stored, admission: &Admission, how: &'static str) -> Response {
        let mut body = s.body.clone();
        if let Some(edge_token) = &s.fill_token {
            let viewer = match admission {
                Admission::Private(Some(t)) => t.as_str(),
                // Never hand the edge's own token on.
                _ => "",
            };
            body = swap_token(&body, edge_token, viewer);
        }
        self.metrics
            .bytes_served
            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = s.status;
        let h = r.headers_mut();
        for (n, v) in &s.headers {
            h.append(n.clone(), v.clone());
        }
        h.insert(CACHE_HEADER, HeaderValue::from_static(how));
        if let Admission::Private(_) = admission {
            gate::make_private(h);
        }
        r
    }
}

/// Headers of one connection, not of the object (RFC 9110 §7.6.1), and those the edge
/// sets itself.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::DATE,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// `body` with every `token=<from>` replaced by `token=<to>` (each as the origin writes
/// it into a URI). Media bodies never hold the parameter and come back as they are.
fn swap_token(body: &Bytes, from: &str, to: &str) -> Bytes {
    let from = gate::with_token("", from);
    let from = from.trim_start_matches('?');
    let to = gate::with_token("", to);
    let to = to.trim_start_matches('?');
    let Ok(text) = std::str::from_utf8(body) else {
        return body.clone();
    };
    if !text.contains(from) {
        return body.clone();
    }
    Bytes::from(text.replace(from, to))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        format!("{message}\n"),
    )
        .into_response()
}

fn busy() -> Response {
    let mut r = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "edge: too many fills under way, try again",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// `/live/…` served by `edge` (GET and HEAD).
pub fn router(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/live/{*rest}", get(proxied))
        .with_state(edge)
}

async fn proxied(
    State(edge): State<Arc<Edge>>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let path = req.uri().path().to_owned();
    edge.serve(&path, query.as_deref(), req.headers()).await
}

#[cfg(test)]
mod tests;
