//! HTTP for playback: playlists (LL-HLS), init sections, segments and parts.
//!
//! URLs (relative URIs inside playlists keep everything under one prefix): the stable
//! `/live/{channel}/index.m3u8` (multivariant) and `/live/{channel}/{rendition}/index.m3u8`
//! (and `…/init.mp4`, the newest init section, mutable); media objects under the session
//! that made them, `/live/{channel}/{rendition}/{session}/init-{v}.mp4`, `…/{msn}.m4s`,
//! `…/{msn}.{part}.m4s`, immutable for real (see [`crate::live`] on sessions). Objects of
//! sessions no longer in memory (an earlier run, a previous process) are read from the
//! store.
//!
//! Access: without a gate ([`router`]) every channel is public. With one
//! ([`router_with_gate`]) each request under `/live/{channel}/` is checked first (after
//! the syntax checks, before the channel is looked up, so a refused viewer learns nothing
//! about the stream); see [`crate::gate`] for what allowed and refused requests get.
//!
//! Status codes: a malformed name or path is 400 (and never touches the store); an
//! unknown channel 404; media not yet due 404 with a 1 s max-age, so caches ask again
//! soon; media that fell out of the window (or a part index past a finished segment) 410,
//! since it will never exist again. Blocking requests too far ahead get 400, as the spec
//! says; a blocking request the live edge does not reach within three target durations
//! gets 503, unless the run ended meanwhile: then it gets the final playlist.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, RawQuery, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use starling_hls as hls;
use starling_media::TrackKind;

use crate::gate::{self, Access, PlaybackGate};
use crate::live::{
    init_key, lock, parse_session, segment_key, session_name, Channel, ChannelInner, Origin,
    PlaylistKind, Rendition,
};

const M3U8: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NOT_YET: &str = "public, max-age=1";

/// Routes under `/live`, every channel public. Apply [`guard`] on the whole app (routes
/// and fallback), so that traversal attempts get 400 even where no route matches.
pub fn router<S: Clone + Send + Sync + 'static>(origin: Arc<Origin>) -> Router<S> {
    build(Served { origin, gate: None })
}

/// Routes under `/live`, with `gate` deciding who may watch each channel.
pub fn router_with_gate<S: Clone + Send + Sync + 'static>(
    origin: Arc<Origin>,
    gate: Arc<dyn PlaybackGate>,
) -> Router<S> {
    build(Served {
        origin,
        gate: Some(gate),
    })
}

fn build<S: Clone + Send + Sync + 'static>(served: Served) -> Router<S> {
    Router::new()
        .route("/live/{channel}/index.m3u8", get(multivariant))
        .route("/live/{channel}/{rendition}/{file}", get(media))
        .route(
            "/live/{channel}/{rendition}/{session}/{file}",
            get(session_media),
        )
        .with_state(served)
}

/// The handlers' state.
#[derive(Clone)]
struct Served {
    origin: Arc<Origin>,
    gate: Option<Arc<dyn PlaybackGate>>,
}

/// How an admitted request is served.
enum Admitted {
    /// As without a gate.
    Public,
    /// Privately; the token (when the request had one) goes into every playlist URI.
    Private(Option<String>),
}

impl Admitted {
    fn token(&self) -> Option<&str> {
        match self {
            Self::Private(t) => t.as_deref(),
            Self::Public => None,
        }
    }

    /// Private caching for everything a private channel answers, errors included.
    fn finish(&self, mut r: Response) -> Response {
        if let Self::Private(_) = self {
            gate::make_private(r.headers_mut());
        }
        r
    }
}

/// Asks the gate (if any) about a request for `channel`; a refusal is the response.
async fn admit(
    served: &Served,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, Response> {
    let Some(g) = &served.gate else {
        return Ok(Admitted::Public);
    };
    let token = gate::request_token(query, headers);
    let metrics = &served.origin.metrics;
    if token.is_some() {
        metrics
            .token_checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    match g.check(channel, token.as_deref()).await {
        Access::Public => Ok(Admitted::Public),
        Access::Allowed => Ok(Admitted::Private(token.map(|t| t.into_owned()))),
        Access::Refused(r) => {
            metrics
                .playback_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The reason, never the token.
            tracing::debug!(%channel, reason = r.code(), "origin: playback refused");
            Err(r.response(channel))
        }
    }
}

fn malformed_channel() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "malformed channel name",
        "no-store",
    )
}

/// Refuses request paths that try to escape (`..`, encoded dots or slashes, NUL) or are
/// absurdly long, before any routing; adds CORS for players on other origins.
pub async fn guard(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let lower = path.to_ascii_lowercase();
    let bad = path.len() > 2048
        || path
            .split('/')
            .any(|s| s.len() > 255 || s == ".." || s == ".")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || path.contains('\\')
        || path.contains('\0');
    if bad {
        return error(StatusCode::BAD_REQUEST, "malformed path", "no-store");
    }
    let is_live = path.starts_with("/live/");
    if is_live && req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        cors(r.headers_mut());
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Range, If-None-Match"),
        );
        r.headers_mut().insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return r;
    }
    let mut r = next.run(req).await;
    if is_live {
        cors(r.headers_mut());
    }
    r
}

fn cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag, Age, Date"),
    );
}

fn error(status: StatusCode, msg: &str, cache: &'static str) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, cache),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        format!("{msg}\n"),
    )
        .into_response()
}

fn valid_name(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a file name asks for: in a rendition directory `index.m3u8` and `init.mp4`; in a
/// session directory below it the immutable objects.
#[derive(Debug, PartialEq, Eq)]
enum File {
    Playlist,
    /// The newest init section (`init.mp4`).
    LatestInit,
    Init(usize),
    Segment(u64),
    Part(u64, u32),
}

fn parse_file(f: &str) -> Option<File> {
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if f == "index.m3u8" {
        return Some(File::Playlist);
    }
    if f == "init.mp4" {
        return Some(File::LatestInit);
    }
    if let Some(v) = f.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
        return Some(File::Init(usize::try_from(num(v)?).ok()?));
    }
    let stem = f.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        None => Some(File::Segment(num(stem)?)),
        Some((m, p)) => Some(File::Part(num(m)?, u32::try_from(num(p)?).ok()?)),
    }
}

/// Runs the playlist linter on what the origin is about to serve (debug builds only, so
/// every test that fetches a playlist checks it); a violation is a bug in the origin.
fn debug_lint(text: &str) {
    if cfg!(debug_assertions) {
        if let Err(e) = hls::lint::lint(text) {
            tracing::error!(error = %e, "origin: rendered an invalid playlist:\n{text}");
            panic!("origin rendered an invalid playlist: {e}");
        }
    }
}

/// A refusal, small enough to pass around in a `Result`.
struct Reject(StatusCode, &'static str, &'static str);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

fn channel(origin: &Origin, name: &str) -> Result<Arc<Channel>, Reject> {
    if !valid_name(name, 64) {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "malformed channel name",
            "no-store",
        ));
    }
    origin.channel(name).ok_or(Reject(
        StatusCode::NOT_FOUND,
        "unknown channel",
        "public, max-age=5",
    ))
}

async fn multivariant(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_name(&name, 64) {
        return malformed_channel();
    }
    let admitted = match admit(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = multivariant_playlist(&served.origin, &name, admitted.token());
    admitted.finish(r)
}

fn multivariant_playlist(origin: &Origin, name: &str, token: Option<&str>) -> Response {
    origin
        .metrics
        .playlist_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ch = match channel(origin, name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let st = lock(&ch.inner);
    let video = st.renditions.iter().find(|r| r.kind() == TrackKind::Video);
    let audio = st.renditions.iter().find(|r| r.kind() == TrackKind::Audio);
    let has_segment =
        |r: Option<&Rendition>| r.is_some_and(|r| r.segments.iter().any(|s| s.complete));
    if !has_segment(video.or(audio)) {
        return error(StatusCode::NOT_FOUND, "channel is not live yet", NOT_YET);
    }
    let bw = |r: Option<&Rendition>| r.map_or((0.0, 0.0), bandwidth);
    let (vp, va) = bw(video);
    let (ap, aa) = bw(audio);
    let codecs: Vec<&str> = [video, audio]
        .iter()
        .flatten()
        .map(|r| r.info.codec.as_str())
        .collect();
    let mut pl = hls::MultivariantPlaylist {
        independent_segments: true,
        version: 1,
        ..Default::default()
    };
    if let Some(a) = audio {
        if video.is_some() {
            pl.media.push(hls::Rendition {
                kind: hls::MediaKind::Audio,
                group_id: "audio".into(),
                name: "audio".into(),
                language: None,
                default: true,
                autoselect: true,
                channels: a.info.channels.map(|c| c.to_string()),
                uri: Some(format!("{}/index.m3u8", a.info.name)),
            });
        }
    }
    let main = video.or(audio).map(|r| r.info.name).unwrap_or("source");
    pl.variants.push(hls::Variant {
        uri: format!("{main}/index.m3u8"),
        // Peak of whole segments, with headroom: players pick renditions by it.
        bandwidth: ((vp + ap) * 1.1).max(64_000.0) as u64,
        average_bandwidth: Some((va + aa).max(32_000.0) as u64),
        codecs: codecs.join(","),
        resolution: video.and_then(|v| Some((v.info.width?, v.info.height?))),
        frame_rate: video.and_then(|v| v.info.frame_rate),
        audio_group: (video.is_some() && audio.is_some()).then(|| "audio".to_owned()),
    });
    drop(st);
    let text = pl.render();
    debug_lint(&text);
    let text = match token {
        Some(t) => gate::add_token(&text, t),
        None => text,
    };
    playlist_response(Bytes::from(text), "public, max-age=2")
}

/// (peak, average) bits per second: from complete segments, or from the parts so far.
fn bandwidth(r: &Rendition) -> (f64, f64) {
    if r.total_secs > 0.0 {
        return (r.peak_bps, r.total_bytes as f64 * 8.0 / r.total_secs);
    }
    let (bytes, secs) = r
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .fold((0usize, 0.0), |(b, d), p| {
            (b + p.data.len(), d + p.duration)
        });
    let est = if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        1_000_000.0
    };
    (est * 1.5, est)
}

fn playlist_response(body: Bytes, cache: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(M3U8));
    if let Ok(v) = HeaderValue::from_str(cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

async fn media(
    State(served): State<Served>,
    Path((name, rendition, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(file) = parse_file(&file) else {
        return error(StatusCode::BAD_REQUEST, "malformed file name", "no-store");
    };
    serve_media(served, name, rendition, None, file, query, headers).await
}

async fn session_media(
    State(served): State<Served>,
    Path((name, rendition, session, file)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(session) = parse_session(&session) else {
        return error(StatusCode::BAD_REQUEST, "malformed session", "no-store");
    };
    let file = match parse_file(&file) {
        Some(f @ (File::Init(_) | File::Segment(_) | File::Part(..))) => f,
        _ => return error(StatusCode::BAD_REQUEST, "malformed file name", "no-store"),
    };
    serve_media(served, name, rendition, Some(session), file, query, headers).await
}

async fn serve_media(
    served: Served,
    name: String,
    rendition: String,
    session: Option<u64>,
    file: File,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_name(&name, 64) {
        return malformed_channel();
    }
    if !valid_name(&rendition, 32) {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed rendition name",
            "no-store",
        );
    }
    let admitted = match admit(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = media_file(
        &served.origin,
        &name,
        &rendition,
        session.unwrap_or(0),
        file,
        query.as_deref(),
        &headers,
        admitted.token(),
    )
    .await;
    admitted.finish(r)
}

#[allow(clippy::too_many_arguments)]
async fn media_file(
    origin: &Origin,
    name: &str,
    rendition: &str,
    session: u64,
    file: File,
    query: Option<&str>,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    if session == 0 && !matches!(file, File::Playlist | File::LatestInit) {
        // Before sessions, media lived here; an old playlist's URL must not be answered
        // with another session's bytes.
        return error(
            StatusCode::NOT_FOUND,
            "media objects are under their session: see the playlist",
            "public, max-age=60",
        );
    }
    let count = |c: &std::sync::atomic::AtomicU64| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    if let File::Playlist | File::LatestInit = file {
        let ch = match channel(origin, name) {
            Ok(c) => c,
            Err(r) => return r.into_response(),
        };
        if lock(&ch.inner).rendition(rendition).is_none() {
            return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
        }
        return if let File::Playlist = file {
            count(&origin.metrics.playlist_requests);
            media_playlist(origin, &ch, rendition, query, token).await
        } else {
            count(&origin.metrics.media_requests);
            latest_init(&ch, rendition, headers)
        };
    }
    // A session's objects: from memory when this node holds them, else from the store
    // (an earlier run, a previous process, a channel this node does not follow now).
    count(&origin.metrics.media_requests);
    let ch = origin.channel(name);
    let at = Addressed {
        channel: name,
        rendition,
        session,
    };
    match (file, ch) {
        (File::Init(v), ch) => init(origin, ch.as_deref(), at, v, headers).await,
        (File::Segment(msn), ch) => segment(origin, ch.as_deref(), at, msn, headers).await,
        (File::Part(msn, part), Some(ch)) => {
            part_request(origin, &ch, rendition, session, msn, part, headers).await
        }
        _ => error(StatusCode::NOT_FOUND, "part not available", NOT_YET),
    }
}

/// The names an object URL gives, validated.
#[derive(Clone, Copy)]
struct Addressed<'a> {
    channel: &'a str,
    rendition: &'a str,
    session: u64,
}

/// The session whose parts a preload hint names now: the live one, or in the reconnect
/// grace the one promised to the republish.
fn hint_session(st: &ChannelInner) -> Option<u64> {
    if st.live {
        Some(st.session)
    } else if !st.ended && st.next_session != 0 {
        Some(st.next_session)
    } else {
        None
    }
}

/// Three target durations: how long a blocked request may wait (6.2.5.2).
fn block_limit(st: &ChannelInner, rendition: &str) -> Duration {
    let target = st.rendition(rendition).map_or(2, |r| r.target_duration);
    Duration::from_secs(3 * u64::from(target))
}

/// Wait until `ready` holds for the channel's state, or `limit` passes. Records how long
/// after the change that satisfied it the waiter woke (the LL-HLS hand-off time).
async fn wait_until(
    ch: &Channel,
    metrics: &crate::OriginMetrics,
    limit: Duration,
    mut ready: impl FnMut(&ChannelInner) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut rx = ch.version.subscribe();
    let mut waited = false;
    loop {
        {
            let st = lock(&ch.inner);
            if ready(&st) || st.ended {
                let ok = ready(&st);
                if ok && waited {
                    if let Some(at) = *lock(&ch.changed_at) {
                        metrics
                            .blocked_wake
                            .observe_us(at.elapsed().as_micros() as u64);
                    }
                }
                return ok;
            }
        }
        waited = true;
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return false;
        }
    }
}

/// The live edge of a rendition as LAST-MSN / LAST-PART state it.
fn last_msn_and_part(r: &Rendition) -> Option<(u64, Option<u64>)> {
    let last = r.segments.back()?;
    Some((last.msn, last.parts.len().checked_sub(1).map(|p| p as u64)))
}

fn ready_for(r: &Rendition, msn: u64, part: Option<u64>) -> bool {
    match part {
        None => r.segments.iter().rev().any(|s| s.complete && s.msn >= msn),
        Some(p) => r.segments.iter().rev().any(|s| {
            (s.msn == msn
                && (s.parts.len() as u64 > p
                    || s.complete && r.segments.back().is_some_and(|b| b.msn > msn)))
                || (s.msn > msn && !s.parts.is_empty())
        }),
    }
}

async fn media_playlist(
    origin: &Origin,
    ch: &Channel,
    rendition: &str,
    query: Option<&str>,
    token: Option<&str>,
) -> Response {
    // `token` (and any other parameter) is ignored here: only _HLS_* are read.
    let req = match hls::parse_blocking_query(query) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), "no-store"),
    };
    let limit = {
        let st = lock(&ch.inner);
        if let Some(msn) = req.msn {
            let Some(r) = st.rendition(rendition) else {
                return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
            };
            let (lm, lp) = last_msn_and_part(r).unwrap_or((0, None));
            let lp = lp.map_or(-1, |p| p as i64);
            let too_far = match req.part {
                None => msn > lm + 2,
                Some(p) => {
                    msn > lm + 1 || (msn == lm + 1 && p > 3) || (msn == lm && p as i64 > lp + 3)
                }
            };
            if too_far && !st.ended {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("_HLS_msn={msn} / _HLS_part={:?} is too far past the live edge ({lm}, {lp})", req.part),
                    "no-store",
                );
            }
        }
        block_limit(&st, rendition)
    };
    if let Some(msn) = req.msn {
        let ok = wait_until(ch, &origin.metrics, limit, |st| {
            st.rendition(rendition)
                .is_some_and(|r| ready_for(r, msn, req.part))
        })
        .await;
        // A run that ended while the request waited: the final playlist is the answer
        // (it says ENDLIST, so the player stops asking).
        if !ok && !lock(&ch.inner).ended {
            origin
                .metrics
                .blocking_timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the live edge did not reach the requested part in time",
                NOT_YET,
            );
        }
    }
    let mut st = lock(&ch.inner);
    let config = &origin.config;
    let ended = st.ended;
    // The next part is hinted while a publisher is live, and in the reconnect grace (in
    // the session a republish will get); not once the run has ended.
    let hint_session = hint_session(&st);
    let low_latency = st.settings.low_latency;
    let reports: Vec<hls::RenditionReport> = st
        .renditions
        .iter()
        .filter(|o| o.info.name != rendition && !ended)
        .filter_map(|o| {
            let (m, p) = last_msn_and_part(o)?;
            Some(hls::RenditionReport {
                uri: format!("../{}/index.m3u8", o.info.name),
                last_msn: m,
                last_part: p,
            })
        })
        .collect();
    let Some(r) = st.renditions.iter_mut().find(|r| r.info.name == rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    // Until a first segment is complete, a playlist would hold parts only: valid LL-HLS,
    // but players (hls.js) take an empty segment list for an error. Say "not yet".
    if !r.segments.iter().any(|s| s.complete) {
        return error(StatusCode::NOT_FOUND, "no complete segment yet", NOT_YET);
    }
    let version = *ch.version.borrow();
    let fresh = matches!(&r.cache, Some((v, _, _)) if *v == version);
    if !fresh {
        r.cache = Some((version, Bytes::new(), None));
    }
    let want_delta = req.skip != hls::SkipRequest::No;
    let cached = r.cache.as_ref().and_then(|(_, full, delta)| {
        if want_delta {
            delta.clone()
        } else {
            (!full.is_empty()).then(|| full.clone())
        }
    });
    let body = match cached {
        Some(b) => b,
        None => {
            let pl = build_playlist(r, reports, ended, hint_session, low_latency, config);
            let text = if want_delta {
                pl.render_delta_for(req.skip)
            } else {
                pl.render()
            };
            debug_lint(&text);
            let text = Bytes::from(text);
            if let Some((_, full, delta)) = r.cache.as_mut() {
                if want_delta {
                    *delta = Some(text.clone());
                } else {
                    *full = text.clone();
                }
            }
            text
        }
    };
    let target = r.target_duration;
    drop(st);
    // The cached text is the same for every viewer; each token is added per response.
    let body = match (token, std::str::from_utf8(&body)) {
        (Some(t), Ok(text)) => Bytes::from(gate::add_token(text, t)),
        _ => body,
    };
    let cache = if ended {
        "public, max-age=5".to_owned()
    } else if req.msn.is_some() {
        // A blocking response's URL names the moment it describes: CDNs may keep it.
        format!("public, max-age={}", 6 * target)
    } else {
        "public, max-age=1".to_owned()
    };
    playlist_response(body, &cache)
}

pub(crate) fn build_playlist(
    r: &Rendition,
    reports: Vec<hls::RenditionReport>,
    ended: bool,
    hint_session: Option<u64>,
    low_latency: bool,
    config: &crate::OriginConfig,
) -> hls::MediaPlaylist {
    // Standard latency: whole segments only, as any HLS player expects; no parts.
    let hint_session = hint_session.filter(|_| low_latency);
    let list_parts = low_latency && !ended;
    let part_target = config.part_duration.as_secs_f64();
    let target = r.target_duration;
    let part = |session: u64, msn: u64, i: usize, p: &crate::live::PartEntry| hls::Part {
        uri: format!("{}/{msn}.{i}.m4s", session_name(session)),
        duration: p.duration,
        independent: p.independent,
        gap: false,
    };
    let map_uri = |v: usize| {
        let session = r.inits.get(v).map_or(0, |(s, _)| *s);
        format!("{}/init-{v}.mp4", session_name(session))
    };
    let first = r.segments.front();
    let first_init = first.map_or(0, |s| s.init);
    let mut pl = hls::MediaPlaylist {
        version: 9,
        target_duration: target,
        media_sequence: first.map_or(0, |s| s.msn),
        // The first segment's DISCONTINUITY tag is not written (nothing listed precedes
        // it), so its discontinuity is counted here instead: every segment keeps its
        // discontinuity number as the window slides.
        discontinuity_sequence: r.discontinuity_sequence
            + u64::from(first.is_some_and(|s| s.discontinuity)),
        playlist_type: (config.playlist == PlaylistKind::Event).then_some(hls::PlaylistType::Event),
        // Segments cut at the maximum duration without a keyframe (long GOPs, intra
        // refresh) do not start independently: then the playlist must not say so.
        independent_segments: r
            .segments
            .iter()
            .all(|s| s.parts.first().is_none_or(|p| p.independent)),
        map: Some(hls::Map {
            uri: map_uri(first_init),
        }),
        part_target: low_latency.then_some(part_target),
        server_control: Some(hls::ServerControl {
            can_block_reload: true,
            part_hold_back: low_latency.then_some(3.0 * part_target),
            hold_back: Some(3.0 * f64::from(target)),
            can_skip_until: Some(6.0 * f64::from(target)),
            can_skip_dateranges: false,
        }),
        rendition_reports: reports,
        end_list: ended,
        ..Default::default()
    };
    for (i, s) in r.segments.iter().enumerate() {
        let map = (s.new_map && i > 0).then(|| hls::Map {
            uri: map_uri(s.init),
        });
        // A finished run lists whole segments only: its parts leave memory once stored.
        let parts = || {
            s.parts
                .iter()
                .take(if list_parts { usize::MAX } else { 0 })
                .enumerate()
                .map(|(i, p)| part(s.session, s.msn, i, p))
                .collect()
        };
        if s.complete {
            pl.segments.push(hls::Segment {
                uri: format!("{}/{}.m4s", session_name(s.session), s.msn),
                duration: s.duration,
                title: None,
                program_date_time: s.program_date_time,
                discontinuity: s.discontinuity && i > 0,
                gap: s.gap,
                map,
                parts: parts(),
            });
        } else {
            pl.trailing_parts = parts();
            pl.trailing_discontinuity = s.discontinuity && i > 0;
            pl.trailing_map = map;
            pl.trailing_program_date_time = s.program_date_time;
        }
    }
    pl.drop_old_parts();
    if let (false, Some(session)) = (ended, hint_session) {
        let next = match r.segments.back() {
            Some(s) if !s.complete && s.session == session => {
                format!("{}.{}.m4s", s.msn, s.parts.len())
            }
            Some(s) => format!("{}.0.m4s", s.msn + 1),
            None => "0.0.m4s".to_owned(),
        };
        pl.preload_hint = Some(hls::PreloadHint {
            uri: format!("{}/{next}", session_name(session)),
        });
    }
    pl
}

/// `init.mp4`: the newest init section (mutable: it follows codec changes).
fn latest_init(ch: &Channel, rendition: &str, headers: &HeaderMap) -> Response {
    let st = lock(&ch.inner);
    let Some(r) = st.rendition(rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    let v = r.inits.len().saturating_sub(1);
    let Some((session, data)) = r.inits.get(v).cloned() else {
        return error(StatusCode::NOT_FOUND, "no init section yet", NOT_YET);
    };
    drop(st);
    let etag = format!("\"{}-{rendition}-i{v}\"", session_name(session));
    media_response(data, &etag, "video/mp4", "public, max-age=2", headers)
}

/// An init section of a session: from memory, else (an earlier run or process) the store.
async fn init(
    origin: &Origin,
    ch: Option<&Channel>,
    at: Addressed<'_>,
    version: usize,
    headers: &HeaderMap,
) -> Response {
    let Addressed {
        channel,
        rendition,
        session,
    } = at;
    let held = ch.and_then(|ch| {
        lock(&ch.inner)
            .rendition(rendition)
            .and_then(|r| r.inits.get(version))
            .filter(|(s, _)| *s == session)
            .map(|(_, data)| data.clone())
    });
    let data = match held {
        Some(d) => d,
        None => match from_store(origin, &init_key(channel, session, rendition, version)).await {
            Ok(d) => d,
            Err(r) => return r,
        },
    };
    let etag = format!("\"{}-{rendition}-i{version}\"", session_name(session));
    media_response(data, &etag, "video/mp4", IMMUTABLE, headers)
}

/// An object that is not (or no longer) in memory. Absent: 404 with a short TTL, since
/// a session's object that the store does not have may still be on its way there.
async fn from_store(origin: &Origin, key: &str) -> Result<Bytes, Response> {
    match origin.store.get(key).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, "no such object", NOT_YET)),
        Err(e) => {
            tracing::warn!(error = %e, "origin: store read failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
                "no-store",
            ))
        }
    }
}

/// Where a segment of `session` stands in memory.
pub(crate) enum Held {
    /// Complete: its bytes (None once they left memory; then the store has them).
    Complete(Option<Bytes>),
    /// Still being written.
    InProgress,
    /// Fell out of the DVR window: gone for good.
    Gone,
    /// Not due yet (the live edge of the current session has not reached it).
    NotYet,
    /// Not a segment of the run in memory: an earlier run, or a previous process.
    Elsewhere,
    /// Listed as `EXT-X-GAP`: the rendition has no media for that number.
    Gap,
}

pub(crate) fn held_segment(st: &ChannelInner, rendition: &str, session: u64, msn: u64) -> Held {
    let Some(r) = st.rendition(rendition) else {
        return Held::Elsewhere;
    };
    if let Some(s) = r.segment(msn).filter(|s| s.session == session) {
        return if s.gap {
            Held::Gap
        } else if s.complete {
            Held::Complete(s.data.clone())
        } else {
            Held::InProgress
        };
    }
    if !st.run.contains(&session) {
        return Held::Elsewhere;
    }
    let first = r.segments.front().map_or(r.evicted_below, |s| s.msn);
    if msn < first || msn < r.evicted_below {
        Held::Gone
    } else if session == st.session {
        Held::NotYet
    } else {
        // A session of this run that never had that number (another session has it,
        // or an audio gap): it never will.
        Held::Gone
    }
}

async fn segment(
    origin: &Origin,
    ch: Option<&Channel>,
    at: Addressed<'_>,
    msn: u64,
    headers: &HeaderMap,
) -> Response {
    let Addressed {
        channel,
        rendition,
        session,
    } = at;
    let mut held = ch.map_or(Held::Elsewhere, |ch| {
        held_segment(&lock(&ch.inner), rendition, session, msn)
    });
    // A segment still being written is answered when it completes (bounded wait), so a
    // client or CDN that asks a little early is not sent away.
    if let (Held::InProgress, Some(ch)) = (&held, ch) {
        let limit = block_limit(&lock(&ch.inner), rendition);
        wait_until(ch, &origin.metrics, limit, |st| {
            !matches!(held_segment(st, rendition, session, msn), Held::InProgress)
        })
        .await;
        held = held_segment(&lock(&ch.inner), rendition, session, msn);
    }
    let data = match held {
        Held::Complete(Some(d)) => d,
        Held::Complete(None) | Held::Elsewhere => {
            match from_store(origin, &segment_key(channel, session, rendition, msn)).await {
                Ok(d) => d,
                Err(r) => return r,
            }
        }
        Held::Gap => {
            return error(
                StatusCode::NOT_FOUND,
                "segment is a gap (EXT-X-GAP)",
                "public, max-age=60",
            )
        }
        Held::Gone => {
            return error(
                StatusCode::GONE,
                "segment left the DVR window",
                "public, max-age=60",
            )
        }
        Held::InProgress | Held::NotYet => {
            return error(StatusCode::NOT_FOUND, "segment not available yet", NOT_YET)
        }
    };
    let etag = format!("\"{}-{rendition}-{msn}\"", session_name(session));
    media_response(data, &etag, "video/iso.segment", IMMUTABLE, headers)
}

#[allow(clippy::too_many_arguments)]
async fn part_request(
    origin: &Origin,
    ch: &Channel,
    rendition: &str,
    session: u64,
    msn: u64,
    part: u32,
    headers: &HeaderMap,
) -> Response {
    let p = u64::from(part);
    let (limit, wait) = {
        let st = lock(&ch.inner);
        let Some(r) = st.rendition(rendition) else {
            return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
        };
        let (lm, lp) = last_msn_and_part(r).unwrap_or((0, None));
        let lp = lp.map_or(-1, |x| x as i64);
        let exists = r.segment(msn).is_some_and(|s| s.parts.len() as u64 > p);
        // A preload-hinted part (the next one, or within the advance limit) of the live
        // session is held until it exists; that is how LL-HLS players get parts the
        // moment they are cut.
        let near = (msn == lm && (p as i64) <= lp + 3) || (msn == lm + 1 && p <= 3);
        let hinted = hint_session(&st) == Some(session);
        (block_limit(&st, rendition), !exists && near && hinted)
    };
    if wait {
        wait_until(ch, &origin.metrics, limit, |st| {
            st.rendition(rendition)
                .and_then(|r| r.segment(msn))
                .is_some_and(|s| s.parts.len() as u64 > p || s.complete)
        })
        .await;
    }
    let st = lock(&ch.inner);
    let Some(r) = st.rendition(rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    let first = r.segments.front().map_or(r.evicted_below, |s| s.msn);
    if msn < first && st.run.contains(&session) {
        return error(
            StatusCode::GONE,
            "part left the window",
            "public, max-age=60",
        );
    }
    // Parts live in memory only, in the session that made them.
    let Some(seg) = r.segment(msn).filter(|s| s.session == session) else {
        return error(StatusCode::NOT_FOUND, "part not available", NOT_YET);
    };
    let Some(entry) = seg.parts.get(part as usize) else {
        return if seg.complete {
            error(
                StatusCode::GONE,
                "that segment ended before this part",
                "public, max-age=60",
            )
        } else {
            error(StatusCode::NOT_FOUND, "part not available yet", NOT_YET)
        };
    };
    if entry.data.is_empty() {
        return error(
            StatusCode::GONE,
            "part left memory; fetch the whole segment",
            "public, max-age=60",
        );
    }
    let data = entry.data.clone();
    drop(st);
    let etag = format!("\"{}-{rendition}-{msn}.{part}\"", session_name(session));
    media_response(data, &etag, "video/iso.segment", IMMUTABLE, headers)
}

/// 200/206/304 for an immutable media object, with ETag and single-range support.
fn media_response(
    data: Bytes,
    etag: &str,
    content_type: &'static str,
    cache: &'static str,
    headers: &HeaderMap,
) -> Response {
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"x\""));
    let base = |status: StatusCode, body: Body| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::ETAG, etag_value.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        r
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return base(StatusCode::NOT_MODIFIED, Body::empty());
    }
    let len = data.len() as u64;
    if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        match parse_range(range, len) {
            Some(Ok((a, b))) => {
                let mut r = base(
                    StatusCode::PARTIAL_CONTENT,
                    Body::from(data.slice(a as usize..=b as usize)),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            Some(Err(())) => {
                let mut r = base(StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
            // Multiple or malformed ranges: ignore the header, as RFC 9110 allows.
            None => {}
        }
    }
    base(StatusCode::OK, Body::from(data))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive (a, b); `Some(Err)` when unsatisfiable,
/// `None` when not a single byte range.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let a: u64 = a.parse().ok()?;
        let b: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        if a >= len || a > b {
            return Some(Err(()));
        }
        (a, b)
    };
    Some(Ok(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(parse_file("index.m3u8"), Some(File::Playlist));
        assert_eq!(parse_file("init.mp4"), Some(File::LatestInit));
        assert_eq!(parse_file("init-3.mp4"), Some(File::Init(3)));
        assert_eq!(parse_file("12.m4s"), Some(File::Segment(12)));
        assert_eq!(parse_file("12.3.m4s"), Some(File::Part(12, 3)));
        for bad in [
            "",
            "..",
            "12..m4s",
            "-1.m4s",
            "1.2.3.m4s",
            "99999999999999999999.m4s",
            "a.m4s",
            "init-.mp4",
            "12.m4s\0",
            "index.m3u",
        ] {
            assert_eq!(parse_file(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
