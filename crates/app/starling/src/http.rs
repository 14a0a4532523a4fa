//! The HTTP side of a node, on one port: playback (the origin), the web UI, the API,
//! health, readiness and metrics.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, Method, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, MethodRouter},
    Json, Router,
};
use serde_json::{json, Value};
use starling_hub::Hub;
use starling_media::{CodecConfig, TrackKind};
use starling_origin::Origin;
use starling_rtmp_server::ServerStats;
use tokio::sync::watch;

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub origin: Arc<Origin>,
    pub db: starling_control::Db,
    pub live_state: Arc<starling_live_state::LiveStateBus>,
    pub rtmp: Arc<ServerStats>,
    pub srt: Arc<starling_srt_server::ServerStats>,
    /// Live SRT links by channel (statistics for the live list and `/metrics`).
    pub srt_links: Arc<starling_srt_server::Links>,
    /// Each live channel's transcoding ladder, for `/api/v1/live`.
    pub ladders: Arc<crate::ladder::Ladders>,
    /// Each reframed channel's window path and highlights.
    pub reframes: Arc<crate::reframe::Reframes>,
    pub http: Arc<crate::http_server::HttpStats>,
    /// Who may watch (and see listed) which channel; None: every channel is public.
    pub gate: Option<Arc<crate::playback_gate::DbPlaybackGate>>,
    /// Who may read `/metrics`, and on which port.
    pub metrics: MetricsAccess,
    /// Which webhook targets the API accepts (`[webhooks] allow_private_targets`).
    pub webhook_targets: starling_webhooks::TargetPolicy,
    /// The object store's read cache counters (an S3 store has one), for `/metrics`.
    pub store_stats: Option<crate::store_config::StatsFn>,
    /// HTTP PUT ingest (`[put] enabled`).
    pub put: Option<PutIngest>,
    /// WHIP and WHEP (`[webrtc] enabled`).
    pub webrtc: Option<Arc<starling_webrtc_server::WebRtcServer>>,
    /// The pusher to a remote origin (`[push] url`), for `/metrics`.
    pub push: Option<Arc<starling_push::PushMetrics>>,
    /// The `api` role: `/api/`, the live-state stream and the web UI are served.
    pub api: bool,
    /// The cluster this node is in (`[cluster]`), for `/metrics`.
    pub cluster: Option<Arc<starling_cluster::Cluster>>,
    /// Where viewers and broadcasters are sent (`/usher/`, with the `api` role).
    pub usher: Arc<crate::usher::Usher>,
    /// The P2P tracker (`[p2p] enabled`, the edge role).
    pub p2p: Option<Arc<crate::p2p::P2p>>,
    /// False once shutdown started: load balancers should stop sending viewers here.
    pub ready: watch::Receiver<bool>,
}

/// The node's own `/api` routes, besides starling-api's router and the live-state
/// stream's. The router mounts exactly this list, and a test holds it (with the stream's
/// paths) against `starling_api::NODE_ROUTES`, which the OpenAPI document covers.
fn node_api_routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/api/v1/live", get(live)),
        (
            Method::GET,
            "/api/v1/live/{channel}/reframe",
            get(crate::reframe::http::path),
        ),
    ]
}

/// HTTP PUT ingest: what external packagers pushed, and who may push (the same stream
/// keys as RTMP and SRT).
#[derive(Clone)]
pub struct PutIngest {
    pub pushed: Arc<starling_http_put::PushIngest>,
    pub auth: Arc<dyn starling_ingest_auth::Authorizer>,
}

/// Access to `/metrics` (`[server] metrics_token`, `metrics_listen`).
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// Requests need `Authorization: Bearer <token>` when set.
    pub token: Option<Arc<str>>,
    /// False when a separate metrics listener serves it ([`metrics_router`]).
    pub on_main_port: bool,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("on_main_port", &self.on_main_port)
            .finish()
    }
}

/// `/metrics` alone, for a listener of its own (`[server] metrics_listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    // With a metrics listener of its own, the public port has no /metrics at all.
    let metrics_here = if state.metrics.on_main_port {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
    };
    let api = if state.api {
        let mut node_api = Router::new();
        for (_, path, handler) in node_api_routes() {
            node_api = node_api.route(path, handler);
        }
        node_api
            .merge(starling_api::router(starling_api::ApiState {
                db: state.db.clone(),
                now: starling_api::system_now,
                webhook_targets: state.webhook_targets,
                recordings: Some(Arc::new(crate::recordings::OriginRecordings(
                    state.origin.clone(),
                ))),
            }))
            .merge(starling_live_state::router_with_viewers(
                state.live_state.clone(),
                starling_live_state::SseConfig::default(),
                Some(viewer_resolver(state.db.clone())),
            ))
            .merge(crate::usher::router(state.usher.clone()))
    } else {
        Router::new()
    };
    Router::new()
        .merge(api)
        .merge(metrics_here)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(starling_origin::http::router_with(
            state.origin.clone(),
            state.gate.clone().map(|g| g as _),
            state
                .put
                .as_ref()
                .map(|p| Arc::new(crate::put_config::Pushed(p.pushed.clone())) as _),
        ))
        .merge(match &state.put {
            Some(p) => starling_http_put::router(p.pushed.clone(), p.auth.clone()),
            None => Router::new(),
        })
        .merge(match &state.webrtc {
            Some(w) => starling_webrtc_server::router(w.clone()),
            None => Router::new(),
        })
        .merge(match &state.p2p {
            Some(p) => crate::p2p::router(p.clone()),
            None => Router::new(),
        })
        .merge(starling_web::router_with(state.cluster.clone().map(|c| {
            // The watch page may play from the cluster's edges (the Usher sends it there).
            Arc::new(move || {
                c.nodes()
                    .into_iter()
                    .filter(|n| n.has_role("edge"))
                    .map(|n| n.http_url)
                    .collect()
            }) as starling_web::PlaybackHosts
        })))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
        // After the fallback, so traversal attempts get 400 even where no route matches.
        .layer(middleware::from_fn(starling_origin::http::guard))
        // Outermost: the guard's and the fallback's plain-text errors under `/api/` get
        // the API's JSON error shape, as its OpenAPI document says.
        .layer(middleware::from_fn(starling_api::error::api_error_shape))
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if *st.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = metrics_refusal(st.metrics.token.as_deref(), &headers) {
        return refused;
    }
    let mut out = String::with_capacity(8192);
    st.hub.metrics().render(&mut out);
    st.rtmp.render(&mut out);
    st.srt.render(&mut out);
    st.srt_links.render(&mut out);
    st.http.render(&mut out);
    st.origin.metrics().render(&mut out);
    if let Some(stats) = &st.store_stats {
        crate::store_config::render_stats(&stats(), &mut out);
    }
    if let Some(w) = &st.webrtc {
        w.render_metrics(&mut out);
    }
    if let Some(p) = &st.put {
        p.pushed.render_metrics(&mut out);
    }
    if let Some(p) = &st.push {
        p.render(&mut out);
    }
    if let Some(c) = &st.cluster {
        starling_cluster::render_metrics(c, &mut out);
    }
    if let Some(p) = &st.p2p {
        p.render_metrics(&mut out);
    }
    let live = st.hub.live();
    out.push_str("# HELP starling_live_channels Channels live on this node.\n# TYPE starling_live_channels gauge\n");
    out.push_str(&format!("starling_live_channels {}\n", live.len()));
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], out).into_response()
}

/// The refusal of a `/metrics` request, if it is refused: with `token` set, only
/// requests with `Authorization: Bearer <token>` (compared in constant time) are answered.
pub fn metrics_refusal(token: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let token = token?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if given.is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), token.as_bytes())) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
            "metrics need a bearer token\n",
        )
            .into_response(),
    )
}

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who an SSE client of the live-state stream is: a member of its organisation when it
/// sends a valid session cookie or API token, else anonymous (private channels' triggers
/// go to members only).
fn viewer_resolver(db: starling_control::Db) -> starling_live_state::ViewerResolver {
    Arc::new(move |headers| {
        let db = db.clone();
        Box::pin(async move {
            match starling_api::extract::principal_of(&db, &headers, crate::auth::now_ms()).await {
                Some(p) => starling_live_state::Viewer::Member(p.org_id.into()),
                None => starling_live_state::Viewer::Anonymous,
            }
        })
    })
}

/// Live channels for the web UI's list: what is on, since when, in which codecs.
///
/// Anonymous callers get public channels only; a signed-in caller (session cookie or
/// API token) also its own organisation's unlisted and private ones (the admin
/// dashboard). Bad credentials are not an error here: they list as anonymous.
async fn live(State(st): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let mut shown = st.hub.live();
    // Channels external packagers push to (HTTP PUT), unless live here as well.
    let mut pushed: Vec<starling_http_put::LivePush> = st.put.as_ref().map_or_else(Vec::new, |p| {
        p.pushed
            .live_channels()
            .into_iter()
            .filter(|l| !shown.iter().any(|ch| ch.name == l.channel))
            .collect()
    });
    if let Some(gate) = &st.gate {
        let org = starling_api::extract::principal_of(&st.db, &headers, crate::auth::now_ms())
            .await
            .map(|p| p.org_id);
        let mut keep = Vec::with_capacity(shown.len());
        for ch in shown {
            if gate.listed(&ch.name, org.as_deref()).await {
                keep.push(ch);
            }
        }
        shown = keep;
        let mut keep = Vec::with_capacity(pushed.len());
        for l in pushed {
            if gate.listed(&l.channel, org.as_deref()).await {
                keep.push(l);
            }
        }
        pushed = keep;
    }
    let pushed = pushed.into_iter().map(|l| {
        // What the packager pushes is served as it came: the origin knows no tracks.
        json!({
            "name": l.channel,
            "since": starling_hls::program_date_time(l.since),
            "video": null,
            "audio": null,
            "viewers": 0,
            "ingest": { "protocol": "put" },
            "backup": false,
            "ladder": null,
            "analysis": null,
            "reframe": null,
        })
    });
    let channels: Vec<Value> = shown
        .into_iter()
        .map(|ch| {
            let track = |kind: TrackKind| {
                ch.stream
                    .as_ref()
                    .and_then(|s| s.tracks.iter().find(|t| t.kind() == kind))
                    .map(|t| {
                        let mut v = json!({ "codec": t.config.codec_string() });
                        match &t.config {
                            CodecConfig::H264(c) => {
                                v["width"] = json!(c.width);
                                v["height"] = json!(c.height);
                                v["frame_rate"] = json!(c.fps);
                            }
                            CodecConfig::H265(c) => {
                                v["width"] = json!(c.width);
                                v["height"] = json!(c.height);
                            }
                            CodecConfig::Aac(c) => {
                                v["sample_rate"] = json!(c.sample_rate);
                                v["channels"] = json!(c.channels);
                            }
                            CodecConfig::Opus(c) => {
                                v["sample_rate"] = json!(48000);
                                v["channels"] = json!(c.channels);
                            }
                            _ => {}
                        }
                        v
                    })
            };
            // WHEP viewers share one hub subscription per channel (the fan-out).
            let (whep, fanout) = st
                .webrtc
                .as_ref()
                .map_or((0, false), |w| w.viewers(&ch.name));
            let ingest = match st.srt_links.get(&ch.name) {
                Some(l) => Some(srt_link_json(&l)),
                None => st
                    .webrtc
                    .as_ref()
                    .filter(|w| w.publishing(&ch.name))
                    .map(|_| json!({ "protocol": "webrtc" })),
            };
            json!({
                "name": ch.name,
                "since": ch.since.map(starling_hls::program_date_time),
                "video": track(TrackKind::Video),
                "audio": track(TrackKind::Audio),
                // Hub consumers other than the origin's packager (RTMP and SRT players),
                // and WHEP viewers.
                "viewers": ch.subscribers.saturating_sub(1 + usize::from(fanout)) + whep,
                "ingest": ingest,
                "backup": st.hub.has_backup(&ch.name),
                "ladder": st.ladders.get(&ch.name),
                // The analysis tap's newest values (while the ladder runs).
                "analysis": st.ladders.analysis_json(&ch.name),
                "reframe": st.reframes.status(&ch.name),
                "p2p": st.p2p.as_ref().and_then(|p| p.channel_summary(&ch.name)),
            })
        })
        .chain(pushed)
        .collect();
    (
        // What a caller sees depends on its credentials: no shared cache may keep it.
        [(header::CACHE_CONTROL, "private, no-cache")],
        Json(json!({ "channels": channels })),
    )
}

/// An SRT link's figures for the live list (the peer's address stays in the log).
fn srt_link_json(l: &starling_srt_server::LinkInfo) -> Value {
    let s = &l.stats;
    json!({
        "protocol": "srt",
        "mode": l.kind,
        "rtt_ms": s.rtt_ms,
        "receive_rate_mbps": s.recv_rate_mbps,
        "latency_ms": s.latency_ms,
        "receive_buffer_ms": s.receive_buffer_ms,
        "packets_received": s.packets_received,
        "packets_lost": s.packets_lost,
        "packets_retransmitted": s.packets_retransmitted_received,
        "packets_dropped": s.packets_dropped,
        "ts_packets": l.demux.packets,
        "ts_continuity_errors": l.demux.continuity_errors,
        "ts_bytes_skipped": l.demux.bytes_skipped,
        "ts_unknown_pid_packets": l.demux.unknown_pid_packets,
        "ts_pes_length_errors": l.demux.pes_length_errors,
        "ts_pes_lost": l.demux.pes_lost,
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    /// This node as the Usher's answer of last resort, in tests without a cluster.
    fn test_node() -> starling_cluster::NodeInfo {
        starling_cluster::NodeInfo {
            id: "test".into(),
            roles: vec!["origin".into()],
            http_url: "http://127.0.0.1:8080".into(),
            rtmp_url: None,
            srt_url: None,
            region: String::new(),
            connections: 0,
            publishers: 0,
        }
    }

    use axum::{body::Body, http::Request};
    use starling_media::MediaEvent;
    use tower::ServiceExt;

    use super::*;

    async fn app() -> (Router, Arc<Hub>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(true);
        let hub = Arc::new(Hub::default());
        // One directory per call: the tests run in parallel, each with its own database.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("starling-http-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let origin = Origin::new(
            starling_origin::OriginConfig::default(),
            Arc::new(starling_origin::LocalDirStore::new(dir.join("objects"))),
        );
        let db = starling_control::Db::connect(&starling_control::DbConfig::new(&dir))
            .await
            .unwrap();
        let app = router(AppState {
            hub: hub.clone(),
            origin,
            db,
            live_state: starling_live_state::LiveStateBus::new(Default::default()),
            rtmp: Arc::new(ServerStats::default()),
            srt: Arc::default(),
            srt_links: Arc::default(),
            ladders: Arc::default(),
            reframes: Arc::default(),
            http: Default::default(),
            gate: None,
            metrics: MetricsAccess {
                token: None,
                on_main_port: true,
            },
            webhook_targets: Default::default(),
            store_stats: None,
            put: None,
            webrtc: None,
            push: None,
            api: true,
            cluster: None,
            usher: crate::usher::Usher::new(None, test_node(), 500),
            p2p: None,
            ready: rx,
        });
        (app, hub, tx)
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let r = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Every `/api` route the node mounts is in the OpenAPI document, and every documented
    /// operation is served by the node (not the API's "no such route", not a 405).
    #[tokio::test]
    async fn the_openapi_document_covers_every_mounted_api_route() {
        let (app, _, _) = app().await;
        let mounted: std::collections::BTreeSet<(Method, String)> = node_api_routes()
            .into_iter()
            .map(|(m, p, _)| (m, p.to_owned()))
            .chain(
                [
                    starling_live_state::LIVE_STATE_PATH,
                    starling_live_state::LIVE_STATE_ALIAS,
                ]
                .map(|p| (Method::GET, p.to_owned())),
            )
            .collect();
        let listed = starling_api::NODE_ROUTES
            .iter()
            .map(|(m, p)| (m.clone(), (*p).to_owned()))
            .collect();
        assert_eq!(mounted, listed, "starling_api::NODE_ROUTES is out of date");

        let doc = starling_api::openapi::document();
        let mut probed = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method == "parameters" {
                    continue;
                }
                let m: Method = method.to_ascii_uppercase().parse().unwrap();
                let uri = path.replace("{id}", "x_1");
                let r = app
                    .clone()
                    .oneshot(
                        Request::builder()
                            .method(m)
                            .uri(&uri)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let status = r.status();
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                if status == StatusCode::NOT_FOUND {
                    // Only read bodies of 404s: the SSE stream never ends.
                    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
                    let text = String::from_utf8_lossy(&body);
                    assert!(
                        !text.contains("no such API route"),
                        "{method} {path} is not served: {text}"
                    );
                    assert!(
                        !text.contains("not found\n"),
                        "{method} {path} is not served"
                    );
                }
                probed += 1;
            }
        }
        assert!(probed > 30, "{probed} operations");
    }

    async fn get_with(app: &Router, path: &str, auth: Option<&str>) -> StatusCode {
        let mut req = Request::get(path);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn metrics_can_need_a_token_and_move_to_their_own_listener() {
        // States that differ only in `metrics`.
        let state = |token: Option<&'static str>, on_main_port: bool| {
            let (tx, rx) = watch::channel(true);
            std::mem::forget(tx);
            let dir = std::env::temp_dir().join("starling-http-metrics-unused");
            async move {
                let db = starling_control::Db::connect(&starling_control::DbConfig::new(
                    dir.join(format!("{}-{}", std::process::id(), on_main_port)),
                ))
                .await
                .unwrap();
                AppState {
                    hub: Arc::new(Hub::default()),
                    origin: Origin::new(
                        starling_origin::OriginConfig::default(),
                        Arc::new(starling_origin::LocalDirStore::new(dir.join("objects"))),
                    ),
                    db,
                    live_state: starling_live_state::LiveStateBus::new(Default::default()),
                    rtmp: Arc::new(ServerStats::default()),
                    srt: Arc::default(),
                    srt_links: Arc::default(),
                    ladders: Arc::default(),
                    reframes: Arc::default(),
                    http: Default::default(),
                    gate: None,
                    metrics: MetricsAccess {
                        token: token.map(Into::into),
                        on_main_port,
                    },
                    webhook_targets: Default::default(),
                    store_stats: None,
                    put: None,
                    webrtc: None,
                    push: None,
                    api: true,
                    cluster: None,
                    usher: crate::usher::Usher::new(None, test_node(), 500),
                    p2p: None,
                    ready: rx,
                }
            }
        };
        let token = "a-long-metrics-token-1";
        let app = router(state(Some(token), true).await);
        assert_eq!(
            get_with(&app, "/metrics", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get_with(&app, "/metrics", Some("Bearer wrong-token-of-some-len")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get_with(&app, "/metrics", Some(&format!("Basic {token}"))).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get_with(&app, "/metrics", Some(&format!("Bearer {token}"))).await,
            StatusCode::OK
        );
        // Health stays open.
        assert_eq!(get_with(&app, "/healthz", None).await, StatusCode::OK);

        // A listener of its own: gone from the main port, served (open) on the other.
        let st = state(None, false).await;
        let main = router(st.clone());
        assert_eq!(
            get_with(&main, "/metrics", None).await,
            StatusCode::NOT_FOUND
        );
        let own = metrics_router(st);
        assert_eq!(get_with(&own, "/metrics", None).await, StatusCode::OK);
        assert_eq!(
            get_with(&own, "/api/v1/live", None).await,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn health_ready_metrics_and_the_live_list() {
        let (app, hub, ready) = app().await;
        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
        let (status, text) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        for name in [
            "starling_ingest_to_hub_seconds_count 0",
            "starling_rtmp_connections_open 0",
            "starling_part_ready_seconds_count 0",
            "starling_live_channels 0",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        let (_, text) = get(&app, "/api/v1/live").await;
        assert_eq!(text, r#"{"channels":[]}"#);

        let mut src = starling_demo_source::DemoSource::new(Default::default()).unwrap();
        let p = hub.publish("news", false).unwrap();
        p.send(MediaEvent::Stream(src.stream()));
        for f in src.next(SystemTime::now()) {
            p.send(MediaEvent::Frame(f));
        }
        let (_, text) = get(&app, "/api/v1/live").await;
        let v: Value = serde_json::from_str(&text).unwrap();
        let ch = &v["channels"][0];
        assert_eq!(ch["name"], "news");
        assert_eq!(ch["video"]["width"], 640);
        assert_eq!(ch["audio"]["codec"], "mp4a.40.2");
        assert!(ch["since"].as_str().unwrap().ends_with('Z'));

        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
        ready.send(false).unwrap();
        assert_eq!(
            get(&app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // The management API, its OpenAPI document and the live-state stream are mounted.
        let (status, text) = get(&app, "/api/v1/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(text.contains("\"error\""), "{text}");
        let (status, text) = get(&app, "/api/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("/api/v1/channels"));
        // Unknown paths: 404; traversal anywhere: 400.
        assert_eq!(get(&app, "/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&app, "/a/%2e%2e/b").await.0, StatusCode::BAD_REQUEST);
    }
}
