//! `GET /api/v1/live-state`: the Server-Sent Events stream of state triggers.
//!
//! What a client receives, in order:
//! 1. `hello` — `retry: <ms>` (a base plus random jitter, so a million devices cut off at
//!    once do not all come back in the same second), `id:` the position it starts from,
//!    and `data: {"seq": <current seq>}`.
//! 2. `resync` if its `Last-Event-ID` could not be honoured (too old, from another node or
//!    incarnation, or not a number): refetch the prefetch documents, then carry on.
//! 3. Every `state` trigger after its position, in order — the same shared `Bytes` frame
//!    for every client ([`crate::bus`]).
//! 4. `: keep-alive` comments when nothing was sent for [`SseConfig::keep_alive`], so
//!    proxies and NATs keep the connection.
//!
//! Triggers of private channels go only to signed-in members of the channel's
//! organisation: the router asks a [`ViewerResolver`] (the node's, over the control
//! plane's sessions and API tokens) who each client is; without one, every client is
//! anonymous and sees only triggers for everyone.
//!
//! The resume position comes from the `Last-Event-ID` header (browsers' `EventSource`
//! sends it on reconnect), or `?last_event_id=N` for clients that cannot set headers.
//!
//! A slow client is never buffered without bound: hyper stops polling the body when the
//! socket's write buffer is full, so its subscription stops reading the ring; if the ring
//! moves past it, it gets `resync` and continues. It never slows the bus.

use std::{
    collections::hash_map::RandomState,
    convert::Infallible,
    hash::{BuildHasher as _, Hasher as _},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Uri},
    response::Response,
    routing::get,
    Router,
};
use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use crate::bus::{resync_frame, Delivery, EventSeq, LiveStateBus, Subscription, Viewer};

/// Tells who an SSE client is from its request headers (cookie, `Authorization`).
pub type ViewerResolver = Arc<
    dyn Fn(HeaderMap) -> Pin<Box<dyn std::future::Future<Output = Viewer> + Send>> + Send + Sync,
>;

/// Where [`router`] mounts the stream.
pub const LIVE_STATE_PATH: &str = "/api/v1/live-state";
/// The same stream at the unversioned path clients written against the first design use.
pub const LIVE_STATE_ALIAS: &str = "/api/live-state";

/// Longest `Last-Event-ID` accepted; a u64 has at most 20 digits.
const MAX_LAST_EVENT_ID_LEN: usize = 20;

static KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Timing of the SSE stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseConfig {
    /// A comment is sent after this long without any other frame.
    pub keep_alive: Duration,
    /// The `retry:` hint is `retry_min` plus a uniform random part below `retry_jitter`.
    pub retry_min: Duration,
    pub retry_jitter: Duration,
}

impl Default for SseConfig {
    /// Keep-alive every 15 s; clients reconnect after 1 to 10 s.
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            retry_min: Duration::from_secs(1),
            retry_jitter: Duration::from_secs(9),
        }
    }
}

struct Shared {
    bus: Arc<LiveStateBus>,
    config: SseConfig,
    jitter: Jitter,
    resolve: Option<ViewerResolver>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("resolves_viewers", &self.resolve.is_some())
            .finish_non_exhaustive()
    }
}

/// `GET /api/v1/live-state` with the default [`SseConfig`].
pub fn router<S>(bus: Arc<LiveStateBus>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router_with(bus, SseConfig::default())
}

/// `GET /api/v1/live-state` with the given timing; every client is anonymous.
pub fn router_with<S>(bus: Arc<LiveStateBus>, config: SseConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router_with_viewers(bus, config, None)
}

/// `GET /api/v1/live-state` with the given timing, each client's [`Viewer`] told by
/// `resolve` (None: anonymous).
pub fn router_with_viewers<S>(
    bus: Arc<LiveStateBus>,
    config: SseConfig,
    resolve: Option<ViewerResolver>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(LIVE_STATE_PATH, get(live_state))
        .route(LIVE_STATE_ALIAS, get(live_state))
        .with_state(Arc::new(Shared {
            bus,
            config,
            jitter: Jitter::new(),
            resolve,
        }))
}

/// Where the client asked to resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    Fresh,
    After(EventSeq),
    /// Present but not a sequence number of ours: the client must resync.
    Unusable,
}

fn resume_point(headers: &HeaderMap, uri: &Uri) -> Resume {
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(v.as_bytes()),
        None => uri.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("last_event_id="))
                .map(str::as_bytes)
        }),
    };
    match raw.map(<[u8]>::trim_ascii) {
        None | Some(b"") => Resume::Fresh,
        Some(id) if id.len() <= MAX_LAST_EVENT_ID_LEN && id.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(id)
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(Resume::Unusable, |n| Resume::After(EventSeq(n)))
        }
        Some(_) => Resume::Unusable,
    }
}

async fn live_state(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    let resume = resume_point(&headers, &uri);
    let current = shared.bus.current_seq();
    let after = match resume {
        Resume::After(n) => Some(n),
        Resume::Fresh | Resume::Unusable => None,
    };
    let viewer = match &shared.resolve {
        Some(resolve) => resolve(headers.clone()).await,
        None => Viewer::Anonymous,
    };
    let sub = shared.bus.subscribe_as(after, viewer);
    let retry_ms = shared.jitter.retry_ms(&shared.config);
    let mut first = vec![hello_frame(retry_ms, sub.cursor(), current)];
    if resume == Resume::Unusable {
        first.push(resync_frame(current));
    }
    let conn = Conn {
        sub,
        first,
        keep_alive: shared.config.keep_alive,
        idle: Box::pin(tokio::time::sleep(shared.config.keep_alive)),
    };
    let body = Body::from_stream(futures_util::stream::unfold(conn, |mut conn| async move {
        let frame = conn.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), conn))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers proxied responses unless told not to; SSE must not be buffered.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One client's stream.
struct Conn {
    sub: Subscription,
    /// Frames to send before any trigger (hello, perhaps resync), oldest last.
    first: Vec<Bytes>,
    keep_alive: Duration,
    idle: Pin<Box<Sleep>>,
}

impl Conn {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if !self.first.is_empty() {
            return Some(self.first.remove(0));
        }
        let frame = tokio::select! {
            delivery = self.sub.recv() => match delivery? {
                Delivery::Trigger(frame) => frame,
                Delivery::Resync { seq } => resync_frame(seq),
            },
            () = self.idle.as_mut() => Bytes::from_static(KEEP_ALIVE),
        };
        self.idle.as_mut().reset(Instant::now() + self.keep_alive);
        Some(frame)
    }
}

fn hello_frame(retry_ms: u64, from: EventSeq, current: EventSeq) -> Bytes {
    Bytes::from(format!(
        "retry: {retry_ms}\nid: {from}\nevent: hello\ndata: {{\"seq\":{current}}}\n\n"
    ))
}

/// Cheap per-connection randomness for the `retry:` hint (not for anything secret).
#[derive(Debug)]
struct Jitter {
    keys: RandomState,
    counter: AtomicU64,
}

impl Jitter {
    fn new() -> Self {
        Self {
            keys: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn retry_ms(&self, config: &SseConfig) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        let min = u64::try_from(config.retry_min.as_millis()).unwrap_or(u64::MAX);
        let spread = u64::try_from(config.retry_jitter.as_millis()).unwrap_or(u64::MAX);
        min.saturating_add(h.finish().checked_rem(spread).unwrap_or(0))
    }
}

/// Whether the prefetch document is for anyone or for a signed-in viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchAudience {
    /// Public and unlisted channels: any CDN may cache it.
    Public,
    /// Private channels: only the viewer's browser may cache it.
    Private,
}

/// Headers for `GET /api/v1/events/{id}/prefetch` (served by the control plane).
///
/// The prefetch document holds everything a client needs at kickoff (title, artwork,
/// schedule, playback URLs, current state); it is fetched in advance, so at kickoff a
/// device only receives one small trigger. It is cached for 5 minutes and may be served
/// stale for a day while revalidating or when the origin fails: at kickoff a CDN answers
/// without asking the origin. The strong `etag` (a revision of the event row, quoted by
/// this function) makes the refetch after a `resync` a cheap 304. Put the revision in the
/// URL too (`?rev=`) if edits must reach caches faster than 5 minutes.
pub fn prefetch_cache_headers(audience: PrefetchAudience, revision: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let cache_control = match audience {
        PrefetchAudience::Public => {
            "public, max-age=300, stale-while-revalidate=86400, stale-if-error=86400"
        }
        PrefetchAudience::Private => "private, max-age=300",
    };
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    // An etag is visible ASCII without quotes; anything else is left out rather than mangled.
    if !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{revision}\"")) {
            h.insert(header::ETAG, v);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusConfig, StateTrigger};
    use crate::state::{EventId, EventState};
    use std::time::UNIX_EPOCH;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn headers(id: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("last-event-id", HeaderValue::from_bytes(id).unwrap());
        h
    }

    #[test]
    fn resume_point_from_header_or_query() {
        let none = HeaderMap::new();
        assert_eq!(
            resume_point(&none, &uri("/api/v1/live-state")),
            Resume::Fresh
        );
        assert_eq!(
            resume_point(&headers(b"42"), &uri("/x?last_event_id=7")),
            Resume::After(EventSeq(42)),
            "the header wins"
        );
        assert_eq!(
            resume_point(&none, &uri("/x?a=1&last_event_id=7")),
            Resume::After(EventSeq(7))
        );
        assert_eq!(
            resume_point(&headers(b" 9 "), &uri("/x")),
            Resume::After(EventSeq(9))
        );
        assert_eq!(resume_point(&headers(b""), &uri("/x")), Resume::Fresh);
        assert_eq!(
            resume_point(&headers(b"18446744073709551615"), &uri("/x")),
            Resume::After(EventSeq(u64::MAX))
        );
        for bad in [
            &b"18446744073709551616"[..],
            b"-1",
            b"1e3",
            b"abc",
            b"\xff",
            b"000000000000000000001",
        ] {
            assert_eq!(
                resume_point(&headers(bad), &uri("/x")),
                Resume::Unusable,
                "{bad:?}"
            );
        }
        assert_eq!(
            resume_point(&none, &uri("/x?last_event_id=x")),
            Resume::Unusable
        );
    }

    #[test]
    fn retry_hint_is_jittered_within_bounds() {
        let j = Jitter::new();
        let c = SseConfig::default();
        let hints: Vec<u64> = (0..1000).map(|_| j.retry_ms(&c)).collect();
        assert!(hints.iter().all(|&ms| (1000..10_000).contains(&ms)));
        let distinct: std::collections::HashSet<_> = hints.iter().collect();
        assert!(
            distinct.len() > 500,
            "spread: {} distinct of 1000",
            distinct.len()
        );
        let no_jitter = SseConfig {
            retry_jitter: Duration::ZERO,
            ..c
        };
        assert_eq!(j.retry_ms(&no_jitter), 1000);
    }

    #[test]
    fn prefetch_headers() {
        let h = prefetch_cache_headers(PrefetchAudience::Public, "r17");
        assert!(h[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=300"));
        assert_eq!(h[header::ETAG], "\"r17\"");
        let h = prefetch_cache_headers(PrefetchAudience::Private, "bad\"tag");
        assert_eq!(h[header::CACHE_CONTROL], "private, max-age=300");
        assert!(h.get(header::ETAG).is_none());
    }

    fn trigger(n: u64) -> StateTrigger {
        StateTrigger {
            event_id: EventId::new(format!("ev-{n}")),
            state: EventState::Live,
            at: UNIX_EPOCH + Duration::from_secs(n),
        }
    }

    fn conn(bus: &Arc<LiveStateBus>, keep_alive: Duration) -> Conn {
        Conn {
            sub: bus.subscribe(None),
            first: vec![hello_frame(1000, bus.current_seq(), bus.current_seq())],
            keep_alive,
            idle: Box::pin(tokio::time::sleep(keep_alive)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_after_idle_and_not_while_busy() {
        let bus = LiveStateBus::new(BusConfig::default());
        let mut c = conn(&bus, Duration::from_secs(15));
        let hello = c.next_frame().await.unwrap();
        assert_eq!(
            &hello[..],
            b"retry: 1000\nid: 0\nevent: hello\ndata: {\"seq\":0}\n\n"
        );
        let started = Instant::now();
        assert_eq!(&c.next_frame().await.unwrap()[..], KEEP_ALIVE);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        tokio::time::sleep(Duration::from_secs(10)).await;
        bus.publish(trigger(1));
        assert!(c.next_frame().await.unwrap().starts_with(b"id: 1\n"));
        let after_trigger = Instant::now();
        assert_eq!(&c.next_frame().await.unwrap()[..], KEEP_ALIVE);
        assert_eq!(
            after_trigger.elapsed(),
            Duration::from_secs(15),
            "timer reset by the trigger"
        );
        bus.close();
        assert_eq!(c.next_frame().await, None, "a closed bus ends the stream");
    }
}
