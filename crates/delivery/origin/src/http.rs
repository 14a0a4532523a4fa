//! HTTP for playback: playlists (LL-HLS), init sections, segments and parts.
//!
//! URLs (relative URIs inside playlists keep everything under one prefix):
//! `/live/{channel}/index.m3u8` (multivariant), `/live/{channel}/{rendition}/index.m3u8`,
//! `…/init-{v}.mp4` (and `init.mp4`, the newest), `…/{msn}.m4s`, `…/{msn}.{part}.m4s`.
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
//! gets 503.

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
use crate::live::{lock, segment_key, Channel, ChannelInner, Origin, PlaylistKind, Rendition};

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

/// What a file name in a rendition directory asks for.
#[derive(Debug, PartialEq, Eq)]
enum File {
    Playlist,
    Init(Option<usize>),
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
        return Some(File::Init(None));
    }
    if let Some(v) = f.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
        return Some(File::Init(Some(usize::try_from(num(v)?).ok()?)));
    }
    let stem = f.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        None => Some(File::Segment(num(stem)?)),
        Some((m, p)) => Some(File::Part(num(m)?, u32::try_from(num(p)?).ok()?)),
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
    let Some(file) = parse_file(&file) else {
        return error(StatusCode::BAD_REQUEST, "malformed file name", "no-store");
    };
    let admitted = match admit(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = media_file(
        &served.origin,
        &name,
        &rendition,
        file,
        query.as_deref(),
        &headers,
        admitted.token(),
    )
    .await;
    admitted.finish(r)
}

async fn media_file(
    origin: &Origin,
    name: &str,
    rendition: &str,
    file: File,
    query: Option<&str>,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    let ch = match channel(origin, name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if lock(&ch.inner).rendition(rendition).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    }
    match file {
        File::Playlist => {
            origin
                .metrics
                .playlist_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            media_playlist(origin, &ch, rendition, query, token).await
        }
        File::Init(v) => {
            origin
                .metrics
                .media_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            init(&ch, rendition, v, headers)
        }
        File::Segment(msn) => {
            origin
                .metrics
                .media_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            segment(origin, &ch, rendition, msn, headers).await
        }
        File::Part(msn, part) => {
            origin
                .metrics
                .media_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            part_request(origin, &ch, rendition, msn, part, headers).await
        }
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
        if !ok {
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
    let reports: Vec<hls::RenditionReport> = st
        .renditions
        .iter()
        .filter(|o| o.info.name != rendition)
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
            let pl = build_playlist(r, reports, ended, config);
            let text = Bytes::from(if want_delta {
                pl.render_delta_for(req.skip)
            } else {
                pl.render()
            });
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

fn build_playlist(
    r: &Rendition,
    reports: Vec<hls::RenditionReport>,
    ended: bool,
    config: &crate::OriginConfig,
) -> hls::MediaPlaylist {
    let part_target = config.part_duration.as_secs_f64();
    let target = r.target_duration;
    let part = |msn: u64, i: usize, p: &crate::live::PartEntry| hls::Part {
        uri: format!("{msn}.{i}.m4s"),
        duration: p.duration,
        independent: p.independent,
        gap: false,
    };
    let first_init = r.segments.front().map_or(0, |s| s.init);
    let mut pl = hls::MediaPlaylist {
        version: 9,
        target_duration: target,
        media_sequence: r.segments.front().map_or(0, |s| s.msn),
        discontinuity_sequence: r.discontinuity_sequence,
        playlist_type: (config.playlist == PlaylistKind::Event).then_some(hls::PlaylistType::Event),
        independent_segments: true,
        map: Some(hls::Map {
            uri: format!("init-{first_init}.mp4"),
        }),
        part_target: Some(part_target),
        server_control: Some(hls::ServerControl {
            can_block_reload: true,
            part_hold_back: Some(3.0 * part_target),
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
            uri: format!("init-{}.mp4", s.init),
        });
        if s.complete {
            pl.segments.push(hls::Segment {
                uri: format!("{}.m4s", s.msn),
                duration: s.duration,
                title: None,
                program_date_time: s.program_date_time,
                discontinuity: s.discontinuity && i > 0,
                gap: false,
                map,
                parts: s
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| part(s.msn, i, p))
                    .collect(),
            });
        } else {
            pl.trailing_parts = s
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| part(s.msn, i, p))
                .collect();
            pl.trailing_discontinuity = s.discontinuity && i > 0;
            pl.trailing_map = map;
            pl.trailing_program_date_time = s.program_date_time;
        }
    }
    pl.drop_old_parts();
    if !ended {
        let next = match r.segments.back() {
            Some(s) if !s.complete => format!("{}.{}.m4s", s.msn, s.parts.len()),
            Some(s) => format!("{}.0.m4s", s.msn + 1),
            None => "0.0.m4s".to_owned(),
        };
        pl.preload_hint = Some(hls::PreloadHint { uri: next });
    }
    pl
}

fn init(ch: &Channel, rendition: &str, version: Option<usize>, headers: &HeaderMap) -> Response {
    let st = lock(&ch.inner);
    let Some(r) = st.rendition(rendition) else {
        return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
    };
    let v = version.unwrap_or(r.inits.len().saturating_sub(1));
    let Some(data) = r.inits.get(v).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such init section", NOT_YET);
    };
    let etag = format!("\"{:x}-{rendition}-i{v}\"", st.session);
    drop(st);
    // `init.mp4` follows the newest version; the numbered ones never change.
    let cache = if version.is_some() {
        IMMUTABLE
    } else {
        "public, max-age=2"
    };
    media_response(data, &etag, "video/mp4", cache, headers)
}

async fn segment(
    origin: &Origin,
    ch: &Channel,
    rendition: &str,
    msn: u64,
    headers: &HeaderMap,
) -> Response {
    // A segment still being written is answered when it completes (bounded wait), so a
    // client or CDN that asks a little early is not sent away.
    let limit = block_limit(&lock(&ch.inner), rendition);
    let in_progress = {
        let st = lock(&ch.inner);
        st.rendition(rendition)
            .and_then(|r| r.segment(msn))
            .is_some_and(|s| !s.complete)
    };
    if in_progress {
        wait_until(ch, &origin.metrics, limit, |st| {
            st.rendition(rendition)
                .and_then(|r| r.segment(msn))
                .is_none_or(|s| s.complete)
        })
        .await;
    }
    let (data, key, session) = {
        let st = lock(&ch.inner);
        let Some(r) = st.rendition(rendition) else {
            return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
        };
        let first = r.segments.front().map_or(r.evicted_below, |s| s.msn);
        if msn < first || msn < r.evicted_below {
            return error(
                StatusCode::GONE,
                "segment left the DVR window",
                "public, max-age=60",
            );
        }
        match r.segment(msn) {
            Some(s) if s.complete => (
                s.data.clone(),
                segment_key(&ch.name, st.session, rendition, msn),
                st.session,
            ),
            _ => return error(StatusCode::NOT_FOUND, "segment not available yet", NOT_YET),
        }
    };
    let data = match data {
        Some(d) => d,
        None => match origin.store.get(&key).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                return error(
                    StatusCode::GONE,
                    "segment is no longer stored",
                    "public, max-age=60",
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "origin: store read failed");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable",
                    "no-store",
                );
            }
        },
    };
    let etag = format!("\"{session:x}-{rendition}-{msn}\"");
    media_response(data, &etag, "video/iso.segment", IMMUTABLE, headers)
}

async fn part_request(
    origin: &Origin,
    ch: &Channel,
    rendition: &str,
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
        // A preload-hinted part (the next one, or within the advance limit) is held
        // until it exists; that is how LL-HLS players get parts the moment they are cut.
        let near = (msn == lm && (p as i64) <= lp + 3) || (msn == lm + 1 && p <= 3);
        (block_limit(&st, rendition), !exists && near && !st.ended)
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
    if msn < first {
        return error(
            StatusCode::GONE,
            "part left the window",
            "public, max-age=60",
        );
    }
    let Some(seg) = r.segment(msn) else {
        return error(StatusCode::NOT_FOUND, "part not available yet", NOT_YET);
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
    let etag = format!("\"{:x}-{rendition}-{msn}.{part}\"", st.session);
    drop(st);
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
        assert_eq!(parse_file("init.mp4"), Some(File::Init(None)));
        assert_eq!(parse_file("init-3.mp4"), Some(File::Init(Some(3))));
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
