//! The WHIP and WHEP resources (RFC 9725 §4; WHEP has the same shape).
//!
//! | request | answer |
//! |---|---|
//! | `POST /whip/CHANNEL`, `Authorization: Bearer STREAM_KEY`, `application/sdp` offer | 201, SDP answer, `Location: /whip/CHANNEL/SESSION` |
//! | `POST /whep/CHANNEL` (token as Bearer, `?token=` or cookie for private channels) | 201, SDP answer, `Location: /whep/CHANNEL/SESSION` |
//! | `PATCH` that location, `application/trickle-ice-sdpfrag` | 204 |
//! | `DELETE` that location | 200 |
//!
//! Refusals are one line of text naming the cause: 400 malformed channel or SDP, 401 no
//! key or token, 403 wrong key or token, 404 unknown session or a channel not live
//! (WHEP), 409 the channel is live from another publisher (WHIP), 413 an offer over
//! 64 KiB, 415 a body of the wrong type, 422 an offer with nothing usable, 503 too many
//! sessions or the authoriser unavailable.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::{Instant, SystemTime},
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{patch, post},
    Router,
};
use starling_ingest_auth::{check_key_shape, AuthError};
use starling_origin::{gate::request_token, http::valid_name, Access};
use starling_sync::lock;
use starling_webrtc::{Peer, PeerConfig, Role, WebRtcError};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    new_session_id,
    session::{Command, Media, Session, QUEUE},
    Entry, WebRtcServer,
};

/// Largest SDP offer taken (browsers send 5-10 KiB; simulcast and many codecs stay far
/// below this).
const MAX_OFFER: usize = 64 * 1024;

/// The routes, to merge into the node's HTTP router (which must serve it with
/// `into_make_service_with_connect_info::<SocketAddr>`).
pub fn router<S: Clone + Send + Sync + 'static>(server: Arc<WebRtcServer>) -> Router<S> {
    Router::new()
        .route("/whip/{channel}", post(whip).options(options))
        .route("/whep/{channel}", post(whep).options(options))
        .route(
            "/whip/{channel}/{session}",
            patch(trickle).delete(end).options(options),
        )
        .route(
            "/whep/{channel}/{session}",
            patch(trickle).delete(end).options(options),
        )
        .layer(DefaultBodyLimit::max(MAX_OFFER))
        .with_state(server)
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut msg = msg.into();
    msg.push('\n');
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        msg,
    )
        .into_response()
}

fn refuse(server: &WebRtcServer, status: StatusCode, msg: impl Into<String>) -> Response {
    server.metrics.refused_total.fetch_add(1, Ordering::Relaxed);
    text(status, msg)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// CORS preflight, and the RFC's hint of what the resource takes.
async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "POST, PATCH, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "Location, Link, ETag",
            ),
            (
                header::HeaderName::from_static("accept-patch"),
                "application/trickle-ice-sdpfrag",
            ),
        ],
    )
        .into_response()
}

/// Checks shared by both POSTs: the channel's syntax, the body's type, room.
fn precheck(
    server: &WebRtcServer,
    channel: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<String, Box<Response>> {
    if !valid_name(channel, 64) {
        return Err(Box::new(refuse(
            server,
            StatusCode::BAD_REQUEST,
            "malformed channel name: 1 to 64 of A-Z a-z 0-9 _ -",
        )));
    }
    if !content_type_is(headers, "application/sdp") {
        return Err(Box::new(refuse(
            server,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as Content-Type: application/sdp",
        )));
    }
    let Ok(sdp) = std::str::from_utf8(body) else {
        return Err(Box::new(refuse(
            server,
            StatusCode::BAD_REQUEST,
            "malformed SDP offer: not UTF-8",
        )));
    };
    if server.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Box::new(refuse(
            server,
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is stopping; retry on another node or in a moment",
        )));
    }
    if lock(&server.sessions).by_id.len() >= server.config.max_sessions {
        return Err(Box::new(refuse(
            server,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebRTC sessions on this node; retry later or on another node",
        )));
    }
    Ok(sdp.to_owned())
}

async fn whip(
    State(server): State<Arc<WebRtcServer>>,
    Path(channel): Path<String>,
    ConnectInfo(peer_addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sdp = match precheck(&server, &channel, &headers, &body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let Some(key) = bearer(&headers) else {
        let mut r = refuse(
            &server,
            StatusCode::UNAUTHORIZED,
            "publishing needs the stream key: Authorization: Bearer STREAM_KEY",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let grant = match check_key_shape(key) {
        Ok(()) => server.auth.authorize_publish("live", key, peer_addr).await,
        Err(e) => Err(e),
    };
    let grant = match grant {
        Ok(g) => g,
        Err(e) => {
            warn!(peer = %peer_addr, %channel, reason = %e.log_reason(), "WHIP publish refused");
            let status = match e {
                AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                AuthError::MissingKey | AuthError::MalformedKey(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            return refuse(&server, status, e.to_string());
        }
    };
    if grant.channel != channel {
        server.auth.publish_ended(&grant);
        return refuse(
            &server,
            StatusCode::FORBIDDEN,
            format!("this stream key publishes another channel, not {channel}"),
        );
    }
    if server.hub.is_live(&channel)
        && !grant.takeover
        && !replace_silent_publisher(&server, &channel).await
    {
        server.auth.publish_ended(&grant);
        return refuse(
            &server,
            StatusCode::CONFLICT,
            format!("channel {channel} is live from another publisher"),
        );
    }
    let media = Media::Publish {
        grant: grant.clone(),
        publisher: None,
    };
    match open(&server, Role::Publish, &channel, &sdp, media) {
        Ok(r) => r,
        Err(r) => {
            server.auth.publish_ended(&grant);
            *r
        }
    }
}

/// Ends the channel's WHIP publisher if its client went quiet (it crashed or lost its
/// network, and this offer is it coming back), then waits for the hub to let the channel
/// go. Whether the channel is free now.
async fn replace_silent_publisher(server: &WebRtcServer, channel: &str) -> bool {
    let tx = {
        let s = lock(&server.sessions);
        s.publishers
            .get(channel)
            .and_then(|id| s.by_id.get(id))
            .map(|e| e.tx.clone())
    };
    let Some(tx) = tx else { return false };
    let (reply, answer) = oneshot::channel();
    if tx.send(Command::ReplaceIfSilent(reply)).await.is_err() || answer.await != Ok(true) {
        return false;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    while server.hub.is_live(channel) && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    !server.hub.is_live(channel)
}

async fn whep(
    State(server): State<Arc<WebRtcServer>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sdp = match precheck(&server, &channel, &headers, &body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(gate) = &server.gate {
        let token = bearer(&headers)
            .map(std::borrow::Cow::Borrowed)
            .or_else(|| request_token(query.as_deref(), &headers));
        if let Access::Refused(why) = gate.check(&channel, token.as_deref()).await {
            server.metrics.refused_total.fetch_add(1, Ordering::Relaxed);
            return why.response(&channel);
        }
    }
    if !server.hub.is_live(&channel) {
        return refuse(
            &server,
            StatusCode::NOT_FOUND,
            format!("channel {channel} is not live"),
        );
    }
    let viewer = server.fanouts.join(&server.hub, &channel);
    open(&server, Role::Play, &channel, &sdp, Media::Play(viewer)).unwrap_or_else(|r| *r)
}

/// Answers the offer, registers the session and starts its task.
fn open(
    server: &Arc<WebRtcServer>,
    role: Role,
    channel: &str,
    sdp: &str,
    media: Media,
) -> Result<Response, Box<Response>> {
    let config = PeerConfig {
        role,
        candidates: match server.config.udp_candidates {
            true => server.candidates.clone(),
            false => Vec::new(),
        },
        tcp_candidates: server.tcp_candidates.clone(),
    };
    let (peer, answer) =
        Peer::accept(sdp, &config, Instant::now(), SystemTime::now()).map_err(|e| {
            let status = match e {
                WebRtcError::NoUsableMedia(_) | WebRtcError::Unanswerable(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                _ => StatusCode::BAD_REQUEST,
            };
            refuse(server, status, e.to_string())
        })?;
    let id = new_session_id();
    let (tx, rx) = mpsc::channel(QUEUE);
    {
        let mut s = lock(&server.sessions);
        s.by_ufrag.insert(peer.ufrag().to_owned(), id.clone());
        if role == Role::Publish {
            s.publishers.insert(channel.to_owned(), id.clone());
        }
        s.by_id.insert(
            id.clone(),
            Entry {
                tx,
                channel: channel.to_owned(),
                role,
                ufrag: peer.ufrag().to_owned(),
            },
        );
    }
    let (path, counter) = match role {
        Role::Publish => ("whip", &server.metrics.whip_sessions_total),
        Role::Play => ("whep", &server.metrics.whep_sessions_total),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let (video, audio) = peer.media();
    info!(session = %id, %channel, role = ?role, video, audio, "webrtc: session opened");
    tokio::spawn(
        Session {
            server: server.clone(),
            id: id.clone(),
            channel: channel.to_owned(),
            peer,
            rx,
            media,
            last_datagram: Instant::now(),
            next_keyframe_request: Instant::now() + server.config.keyframe_interval,
        }
        .run(),
    );
    let location = format!("/{path}/{channel}/{id}");
    let mut r = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_owned()),
            (
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "Location, Link".to_owned(),
            ),
        ],
        answer,
    )
        .into_response();
    for s in &server.config.ice_servers {
        let mut link = format!("<{}>; rel=\"ice-server\"", s.url);
        if let (Some(u), Some(c)) = (&s.username, &s.credential) {
            link.push_str(&format!(
                "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().append(header::LINK, v);
        }
    }
    Ok(r)
}

/// The entry of `session` if it is `channel`'s and of the resource's kind.
fn session_tx(
    server: &WebRtcServer,
    channel: &str,
    session: &str,
) -> Option<mpsc::Sender<Command>> {
    let s = lock(&server.sessions);
    s.by_id
        .get(session)
        .filter(|e| e.channel == channel)
        .map(|e| e.tx.clone())
}

async fn trickle(
    State(server): State<Arc<WebRtcServer>>,
    Path((channel, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(tx) = session_tx(&server, &channel, &session) else {
        return text(StatusCode::NOT_FOUND, "no such WebRTC session");
    };
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "trickle ICE must be sent as Content-Type: application/trickle-ice-sdpfrag",
        );
    }
    let Ok(frag) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the SDP fragment is not UTF-8");
    };
    let (reply, answer) = oneshot::channel();
    if tx
        .send(Command::Candidates(frag.to_owned(), reply))
        .await
        .is_err()
    {
        return text(StatusCode::NOT_FOUND, "no such WebRTC session");
    }
    match answer.await {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => text(StatusCode::BAD_REQUEST, e.to_string()),
        Err(_) => text(StatusCode::NOT_FOUND, "no such WebRTC session"),
    }
}

async fn end(
    State(server): State<Arc<WebRtcServer>>,
    Path((channel, session)): Path<(String, String)>,
) -> Response {
    let Some(tx) = session_tx(&server, &channel, &session) else {
        return text(StatusCode::NOT_FOUND, "no such WebRTC session");
    };
    let _ = tx.send(Command::Close).await;
    (StatusCode::OK, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")]).into_response()
}
