//! HTTP for playback: playlists (LL-HLS), init sections, segments and parts.
//!
//! URLs (relative URIs inside playlists keep everything under one prefix): the stable
//! `/live/{channel}/index.m3u8` (multivariant) and `/live/{channel}/{rendition}/index.m3u8`
//! (and `…/init.mp4`, the newest init section, mutable); media objects under the session
//! that made them, `/live/{channel}/{rendition}/{session}/init-{v}.mp4`, `…/{msn}.m4s`,
//! `…/{msn}.{part}.m4s`, immutable for real (see [`crate::live`] on sessions). Objects of
//! sessions no longer in memory (an earlier run, a previous process) are read from the
//! store. Every run a channel recorded plays as VOD at `/vod/{channel}/{run}/index.m3u8`
//! (`vod`), whose playlists point at those same object URLs.
//!
//! Access: without a gate ([`router`]) every channel is public. With one
//! ([`router_with_gate`]) each request under `/live/{channel}/` (and `/vod/{channel}/`) is checked first (after
//! the syntax checks, before the channel is looked up, so a refused viewer learns nothing
//! about the stream); see [`crate::gate`] for what allowed and refused requests get.
//!
//! Status codes: a malformed name or path is 400 (and never touches the store); an
//! unknown channel 404; media not yet due 404 with a 1 s max-age, so caches ask again
//! soon; media that fell out of the window (or a part index past a finished segment) 410,
//! since it will never exist again. Blocking requests too far ahead get 400, as the spec
//! says; a blocking request the live edge does not reach within three target durations
//! gets 503, unless the run ended meanwhile: then it gets the final playlist.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, RawQuery, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use starling_hls as hls;
use starling_media::TrackKind;
use starling_packager::{VERTICAL_RENDITION, VIDEO_RENDITION};

use crate::gate::{self, Access, PlaybackGate};
use crate::live::{
    init_key, lock, parse_session, segment_key, session_name, Channel, ChannelInner, Origin,
    PlaylistKind, Rendition,
};

mod chunked;
mod mpd;
mod objects;
mod pieces;
mod playlist;
mod pushed;
mod thumbs;
mod vod;

pub(crate) use mpd::MpdKey;
#[cfg(test)]
pub(crate) use objects::{held_segment, Held};
use objects::{init, latest_init, part_request, segment};
pub(crate) use playlist::build_playlist;
use playlist::media_playlist;
pub(crate) use playlist::Listing;
pub use pushed::{PushedFuture, PushedObject, PushedReply, PushedSource};

const M3U8: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NOT_YET: &str = "public, max-age=1";

/// Routes under `/live`, every channel public. Apply [`guard`] on the whole app (routes
/// and fallback), so that traversal attempts get 400 even where no route matches.
pub fn router<S: Clone + Send + Sync + 'static>(origin: Arc<Origin>) -> Router<S> {
    router_with(origin, None, None)
}

/// Routes under `/live`, with `gate` deciding who may watch each channel.
pub fn router_with_gate<S: Clone + Send + Sync + 'static>(
    origin: Arc<Origin>,
    gate: Arc<dyn PlaybackGate>,
) -> Router<S> {
    router_with(origin, Some(gate), None)
}

/// Routes under `/live`, with an optional gate and the objects external packagers push
/// (served at `/live/{channel}/{path}` for channels not live here; see `pushed`).
pub fn router_with<S: Clone + Send + Sync + 'static>(
    origin: Arc<Origin>,
    gate: Option<Arc<dyn PlaybackGate>>,
    pushed: Option<Arc<dyn PushedSource>>,
) -> Router<S> {
    build(Served {
        origin,
        gate,
        pushed,
    })
}

fn build<S: Clone + Send + Sync + 'static>(served: Served) -> Router<S> {
    Router::new()
        .route("/live/time", get(mpd::time))
        .route("/live/{channel}/index.m3u8", get(multivariant))
        .route("/live/{channel}/manifest.mpd", get(mpd::manifest))
        .route(
            "/live/{channel}/vertical/index.m3u8",
            get(vertical_multivariant),
        )
        .route(
            "/live/{channel}/vertical/manifest.mpd",
            get(mpd::vertical_manifest),
        )
        .route("/live/{channel}/thumb.jpg", get(thumbs::poster))
        .route("/live/{channel}/thumb-small.jpg", get(thumbs::small))
        .route("/live/{channel}/{file}", get(pushed::file))
        .route("/live/{channel}/{rendition}/{file}", get(media))
        .route(
            "/live/{channel}/{rendition}/{session}/{file}",
            get(session_media),
        )
        .route("/vod/{channel}/{run}/{file}", get(vod::playlist))
        .with_state(served)
}

/// The handlers' state.
#[derive(Clone)]
struct Served {
    origin: Arc<Origin>,
    gate: Option<Arc<dyn PlaybackGate>>,
    /// Objects external packagers pushed (HTTP PUT ingest), if that is on.
    pushed: Option<Arc<dyn PushedSource>>,
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

/// The channel name's syntax, then the gate: what every request for a channel's own
/// documents (playlists, MPD, posters) passes first.
async fn admit_channel(
    served: &Served,
    channel: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, Response> {
    if !valid_name(channel, 64) {
        return Err(malformed_channel());
    }
    admit(served, channel, query, headers).await
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
    let is_live = path.starts_with("/live/") || path.starts_with("/vod/");
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
        // The latency mode too: a watch page on another host (played from an edge) reads
        // it to pick WebRTC.
        HeaderValue::from_static(
            "Content-Length, Content-Range, ETag, Age, Date, Starling-Latency-Mode",
        ),
    );
}

pub(crate) fn error(status: StatusCode, msg: &str, cache: &'static str) -> Response {
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

pub fn valid_name(s: &str, max: usize) -> bool {
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
    /// The signed digests of the rendition's newest pieces (`pieces.txt`).
    Pieces,
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
    if f == "pieces.txt" {
        return Some(File::Pieces);
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

/// The channel's live state; a channel not in memory may have a run from before a
/// restart in the store (read once per process).
async fn channel(origin: &Arc<Origin>, name: &str) -> Result<Arc<Channel>, Reject> {
    if !valid_name(name, 64) {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "malformed channel name",
            "no-store",
        ));
    }
    let known = match origin.channel(name) {
        Some(c) => Some(c),
        None => origin.restore(name).await,
    };
    known.ok_or(Reject(
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
    let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some(p) = pushed::consult(&served, &name) {
        if let Some(r) = pushed::lookup(p, &name, "index.m3u8").await {
            return admitted.finish(r);
        }
    }
    let r = multivariant_playlist(&served.origin, &name, admitted.token(), false).await;
    admitted.finish(r)
}

/// `GET /live/{channel}/vertical/index.m3u8`: the vertical rendition and the audio, for
/// upright screens (see [`vertical_multivariant_of`]).
async fn vertical_multivariant(
    State(served): State<Served>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let r = multivariant_playlist(&served.origin, &name, admitted.token(), true).await;
    admitted.finish(r)
}

/// Why a channel has no vertical playlist (yet).
pub(crate) const NO_VERTICAL: &str = "this channel has no vertical rendition: it is not reframed (its `reframe` setting), this node has no face model, or its ladder is off (see /api/v1/live)";

/// The vertical multivariant playlist: the vertical rendition (a reframed channel's)
/// with the audio; for a portrait source, which needs no reframing, the channel's own
/// ladder. URIs are relative to `/live/{channel}/vertical/`.
pub(crate) fn vertical_multivariant_of(
    st: &ChannelInner,
) -> Result<hls::MultivariantPlaylist, &'static str> {
    let audio = st
        .renditions
        .iter()
        .find(|r| r.kind() == TrackKind::Audio && !r.segments.is_empty());
    let portrait = st.renditions.iter().find(|r| {
        r.info.name == VERTICAL_RENDITION && r.segments.iter().any(|s| s.complete && !s.gap)
    });
    if let Some(p) = portrait {
        return Ok(variants_playlist(
            &[Offered::of(p)],
            audio.map(Offered::of),
            |name| format!("../{name}/index.m3u8"),
        ));
    }
    let upright = listed_videos(st)
        .first()
        .is_some_and(|s| matches!((s.info.width, s.info.height), (Some(w), Some(h)) if h > w));
    if !upright {
        let live = st
            .renditions
            .iter()
            .any(|r| r.segments.iter().any(|s| s.complete));
        return Err(if live {
            NO_VERTICAL
        } else {
            "channel is not live yet"
        });
    }
    let mut pl = multivariant_of(st).ok_or("channel is not live yet")?;
    for v in &mut pl.variants {
        v.uri = format!("../{}", v.uri);
    }
    for m in &mut pl.media {
        if let Some(uri) = m.uri.as_mut() {
            *uri = format!("../{uri}");
        }
    }
    Ok(pl)
}

/// The channel's multivariant playlist: the ladder's, or (`vertical`) the vertical one.
async fn multivariant_playlist(
    origin: &Arc<Origin>,
    name: &str,
    token: Option<&str>,
    vertical: bool,
) -> Response {
    origin
        .metrics
        .playlist_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ch = match channel(origin, name).await {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let (pl, mode) = {
        let st = lock(&ch.inner);
        let mode = match (st.settings.realtime, st.settings.p2p) {
            (true, _) => Some("realtime"),
            (false, true) => Some("p2p"),
            _ => None,
        };
        let pl = if vertical {
            vertical_multivariant_of(&st)
        } else {
            multivariant_of(&st).ok_or("channel is not live yet")
        };
        (pl, mode)
    };
    // Also on "not live yet": a real-time viewer can start over WebRTC before the
    // first segment is complete.
    let mut r = match pl {
        Err(why) => error(StatusCode::NOT_FOUND, why, NOT_YET),
        Ok(pl) => {
            let text = pl.render();
            debug_lint(&text);
            let text = match token {
                Some(t) => gate::add_token(&text, t),
                None => text,
            };
            playlist_response(
                Bytes::from(text),
                HeaderValue::from_static("public, max-age=2"),
            )
        }
    };
    if let Some(mode) = mode {
        r.headers_mut()
            .insert(crate::LATENCY_MODE_HEADER, HeaderValue::from_static(mode));
    }
    r
}

/// The multivariant playlist of the channel whose state is `st`; `None` until a
/// segment is complete (players take an empty one for an error). Also what the pusher
/// sends (`crate::outbound`).
pub(crate) fn multivariant_of(st: &ChannelInner) -> Option<hls::MultivariantPlaylist> {
    let videos = listed_videos(st);
    // (A rendition of an earlier run has no segments in this one.)
    let audio = st
        .renditions
        .iter()
        .find(|r| r.kind() == TrackKind::Audio && !r.segments.is_empty());
    let has_segment =
        |r: Option<&Rendition>| r.is_some_and(|r| r.segments.iter().any(|s| s.complete));
    if !has_segment(videos.first().copied().or(audio)) {
        return None;
    }
    Some(variants_playlist(
        &videos.iter().map(|r| Offered::of(r)).collect::<Vec<_>>(),
        audio.map(Offered::of),
        |name| format!("{name}/index.m3u8"),
    ))
}

/// A rendition a multivariant playlist offers: what it is, and its (peak, average)
/// bits per second.
pub(crate) struct Offered<'a> {
    pub info: &'a starling_packager::RenditionInfo,
    pub bandwidth: (f64, f64),
}

impl<'a> Offered<'a> {
    fn of(r: &'a Rendition) -> Self {
        Self {
            info: &r.info,
            bandwidth: bandwidth(r),
        }
    }
}

/// The multivariant playlist of `videos` (in the order offered) and `audio` (a group
/// beside them, or the only variant), each media playlist at `uri(name)`: live at
/// `/live/` and recorded at `/vod/` alike.
pub(crate) fn variants_playlist(
    videos: &[Offered<'_>],
    audio: Option<Offered<'_>>,
    uri: impl Fn(&str) -> String,
) -> hls::MultivariantPlaylist {
    let (ap, aa) = audio.as_ref().map_or((0.0, 0.0), |a| a.bandwidth);
    let mut pl = hls::MultivariantPlaylist {
        independent_segments: true,
        version: 1,
        ..Default::default()
    };
    let grouped = !videos.is_empty() && audio.is_some();
    if let (Some(a), true) = (&audio, grouped) {
        pl.media.push(hls::Rendition {
            kind: hls::MediaKind::Audio,
            group_id: "audio".into(),
            name: "audio".into(),
            language: None,
            default: true,
            autoselect: true,
            channels: a.info.channels.map(|c| c.to_string()),
            uri: Some(uri(a.info.name)),
        });
    }
    let mut variants: Vec<Option<&Offered<'_>>> = videos.iter().map(Some).collect();
    if variants.is_empty() {
        variants.push(None);
    }
    for video in variants {
        let (vp, va) = video.map_or((0.0, 0.0), |v| v.bandwidth);
        let codecs: Vec<&str> = [video, audio.as_ref()]
            .iter()
            .flatten()
            .map(|r| r.info.codec.as_str())
            .collect();
        let main = video.or(audio.as_ref()).map_or("source", |r| r.info.name);
        pl.variants.push(hls::Variant {
            uri: uri(main),
            // Peak of whole segments, with headroom: players pick renditions by it.
            bandwidth: ((vp + ap) * 1.1).max(64_000.0) as u64,
            average_bandwidth: Some((va + aa).max(32_000.0) as u64),
            codecs: codecs.join(","),
            resolution: video.and_then(|v| Some((v.info.width?, v.info.height?))),
            frame_rate: video.and_then(|v| v.info.frame_rate),
            audio_group: grouped.then(|| "audio".to_owned()),
        });
    }
    pl
}

/// The video renditions a multivariant playlist offers, source first, then the
/// ladder's rungs, largest first (not the vertical rendition). A rung is offered while it is current:
/// its newest real segment is within [`RUNG_CURRENT_SEGMENTS`] of the source's (a rung
/// whose transcoder is down or gone is not offered to new players; those that have it
/// see gaps and switch).
pub(crate) fn listed_videos(st: &ChannelInner) -> Vec<&Rendition> {
    let newest = |r: &Rendition| {
        r.segments
            .iter()
            .rev()
            .find(|s| s.complete && !s.gap)
            .map(|s| s.msn)
    };
    let source = st.renditions.iter().find(|r| {
        r.kind() == TrackKind::Video && r.info.name == VIDEO_RENDITION && !r.segments.is_empty()
    });
    let source_newest = source.and_then(newest);
    let mut rungs: Vec<&Rendition> = st
        .renditions
        .iter()
        .filter(|r| {
            r.kind() == TrackKind::Video
                && r.info.name != VIDEO_RENDITION
                // Another picture, not a step of the ladder: its own playlist offers it.
                && r.info.name != VERTICAL_RENDITION
        })
        .filter(|r| match (newest(r), source_newest) {
            (Some(n), Some(s)) => n.saturating_add(RUNG_CURRENT_SEGMENTS) >= s,
            (Some(_), None) => source.is_none(),
            (None, _) => false,
        })
        .collect();
    // Largest picture first, then the higher bitrate (an easy picture can leave a
    // larger rung below a smaller one in measured bandwidth).
    rungs.sort_by(|a, b| {
        b.info
            .height
            .cmp(&a.info.height)
            .then(bandwidth(b).0.total_cmp(&bandwidth(a).0))
    });
    source.into_iter().chain(rungs).collect()
}

/// How many segments a rung may lag the source and still be offered.
pub(crate) const RUNG_CURRENT_SEGMENTS: u64 = 3;

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

fn playlist_response(body: Bytes, cache: HeaderValue) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(M3U8));
    h.insert(header::CACHE_CONTROL, cache);
    r
}

async fn media(
    State(served): State<Served>,
    Path((name, rendition, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    peer: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(p) = pushed::consult(&served, &name) {
        // A pushed `dir/file` (a packager's variant directories) shares this shape.
        let admitted = match admit_channel(&served, &name, query.as_deref(), &headers).await {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Some(r) = pushed::lookup(p, &name, &format!("{rendition}/{file}")).await {
            return admitted.finish(r);
        }
    }
    let Some(file) = parse_file(&file) else {
        return error(StatusCode::BAD_REQUEST, "malformed file name", "no-store");
    };
    let client = peer.map(|p| p.0 .0.ip());
    serve_media(served, name, rendition, None, file, query, client, headers).await
}

async fn session_media(
    State(served): State<Served>,
    Path((name, rendition, session, file)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    peer: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = parse_session(&session) else {
        return error(StatusCode::BAD_REQUEST, "malformed session", "no-store");
    };
    let file = match parse_file(&file) {
        Some(f @ (File::Init(_) | File::Segment(_) | File::Part(..))) => f,
        _ => return error(StatusCode::BAD_REQUEST, "malformed file name", "no-store"),
    };
    let client = peer.map(|p| p.0 .0.ip());
    serve_media(
        served,
        name,
        rendition,
        Some(session),
        file,
        query,
        client,
        headers,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn serve_media(
    served: Served,
    name: String,
    rendition: String,
    session: Option<u64>,
    file: File,
    query: Option<String>,
    client: Option<std::net::IpAddr>,
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
        client,
        &headers,
        admitted.token(),
    )
    .await;
    admitted.finish(r)
}

#[allow(clippy::too_many_arguments)]
async fn media_file(
    origin: &Arc<Origin>,
    name: &str,
    rendition: &str,
    session: u64,
    file: File,
    query: Option<&str>,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    if session == 0 && !matches!(file, File::Playlist | File::LatestInit | File::Pieces) {
        // Before sessions, media lived here; an old playlist's URL must not be answered
        // with another session's bytes.
        return error(
            StatusCode::NOT_FOUND,
            "media objects are under their session: see the playlist",
            "public, max-age=60",
        );
    }
    if session != 0 {
        // The retention rule only holds for a channel this node follows, and never for
        // the sessions of its run in memory: a 24/7 publish outlives any retention, and
        // the sweep keeps those sessions too. (Looked up only for a session past the
        // retention: every live-edge request passes here.)
        let swept_here = || {
            origin.channel(name).is_some_and(|ch| {
                let st = lock(&ch.inner);
                !st.run.contains(&session) && st.next_session != session
            })
        };
        let now = SystemTime::now();
        if let Some(r) = crate::session::cannot_exist(session, swept_here, &origin.config, now) {
            count_rejected(origin);
            return r;
        }
    }
    let count = |c: &std::sync::atomic::AtomicU64| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    if let File::Pieces = file {
        return match channel(origin, name).await {
            Ok(ch) => pieces::list(origin, &ch, rendition),
            Err(r) => r.into_response(),
        };
    }
    if let File::Playlist | File::LatestInit = file {
        let ch = match channel(origin, name).await {
            Ok(c) => c,
            Err(r) => return r.into_response(),
        };
        return if let File::Playlist = file {
            count(&origin.metrics.playlist_requests);
            // A rendition has a feed from its first init section on.
            let Some(feed) = ch.feed(rendition) else {
                return error(StatusCode::NOT_FOUND, "unknown rendition", NOT_YET);
            };
            media_playlist(origin, &ch, &feed, query, token).await
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
        client,
    };
    match (file, ch) {
        (File::Init(v), ch) => init(origin, ch.as_deref(), at, v, headers).await,
        (File::Segment(msn), ch) => segment(origin, ch.as_ref(), at, msn, headers).await,
        (File::Part(msn, part), Some(ch)) => {
            part_request(origin, &ch, at, msn, part, headers).await
        }
        _ => error(StatusCode::NOT_FOUND, "part not available", NOT_YET),
    }
}

/// A request for an object that cannot exist, answered without a store read.
fn count_rejected(origin: &Origin) {
    origin
        .metrics
        .rejected_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The names an object URL gives, validated.
#[derive(Clone, Copy)]
struct Addressed<'a> {
    channel: &'a str,
    rendition: &'a str,
    session: u64,
    /// The client's address, when the server knows it (per-client caps).
    client: Option<std::net::IpAddr>,
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

/// Three target durations (of `target` seconds; 2 before it is known): how long a
/// blocked request may wait (6.2.5.2).
fn block_limit(target: u32) -> Duration {
    let target = if target == 0 { 2 } else { target };
    Duration::from_secs(3 * u64::from(target))
}

/// The live edge of a rendition as LAST-MSN / LAST-PART state it.
fn last_msn_and_part(r: &Rendition) -> Option<(u64, Option<u64>)> {
    let last = r.segments.back()?;
    Some((last.msn, last.parts.len().checked_sub(1).map(|p| p as u64)))
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
}
