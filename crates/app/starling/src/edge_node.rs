//! A node with the `edge` role alone (`roles = "edge"`, docs/cluster.md): no ingest, no
//! packaging, no API; it serves `/live/…` from its cache, filled from `[edge] origin`,
//! plus the watch pages, health, readiness and metrics.
//!
//! Private channels are checked here with the same gate an origin uses, over the control
//! database named in `[control]` (the cluster's PostgreSQL, or the same SQLite file on one
//! machine), so the edge verifies tokens with the cluster's signing key and fills with a
//! short-lived token of its own.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use starling_edge::{Edge, FillToken};
use tokio::{net::TcpListener, sync::watch};
use tracing::{error, info};

use crate::config::Config;

/// How long the edge's own fill tokens are valid (one is minted per fill).
const FILL_TOKEN_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct EdgeState {
    edge: Arc<Edge>,
    http: Arc<crate::http_server::HttpStats>,
    cluster: Option<Arc<starling_cluster::Cluster>>,
    metrics_token: Option<Arc<str>>,
    p2p: Option<Arc<crate::p2p::P2p>>,
    ready: watch::Receiver<bool>,
}

/// Runs the edge until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let db = starling_control::Db::connect(&config.control())
        .await
        .context("opening the control plane database (private channels are checked with it)")?;
    let signer = db
        .playback_signer()
        .await
        .context("loading the playback token key")?;
    let always_public = config.channels.iter().map(|c| c.name.clone()).collect();
    let gate = crate::playback_gate::DbPlaybackGate::new(db.clone(), signer.clone(), always_public);
    // The P2P tracker for this edge's viewers (the piece lists come from the origins).
    let p2p = crate::p2p::start(
        &config.p2p,
        config.webrtc.p2p_ice_servers(),
        &db,
        Some(gate.clone() as _),
    )
    .await?
    .map(|(_, tracker)| tracker);
    let fill_token: FillToken = Arc::new(move |channel: &str| {
        let expires = crate::auth::now_ms() + FILL_TOKEN_TTL.as_millis() as i64;
        signer.sign(channel, expires, Some("edge")).ok()
    });
    let listener = TcpListener::bind(config.server.http_listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.server.http_listen))?;
    let http_addr = listener.local_addr()?;
    let http_stats: Arc<crate::http_server::HttpStats> = Arc::default();
    // In a cluster the edge announces itself, so that the Usher sends viewers here.
    let cluster = match config.cluster.cluster_config(http_addr.port())? {
        Some(c) => {
            let cluster = starling_cluster::Cluster::start(c)
                .await
                .context("joining the cluster")?;
            let me = starling_cluster::NodeInfo {
                id: cluster.node_id().to_owned(),
                roles: vec!["edge".to_owned()],
                http_url: crate::cluster_config::ClusterSection::advertised(
                    &config.cluster.advertise_http,
                    "http",
                    http_addr,
                ),
                rtmp_url: None,
                srt_url: None,
                region: config.cluster.region.clone(),
                connections: 0,
                publishers: 0,
            };
            let stats = http_stats.clone();
            cluster.announce(move || starling_cluster::NodeInfo {
                connections: stats.open(),
                ..me.clone()
            });
            info!(node = %cluster.node_id(), "edge: announcing itself to the cluster");
            Some(cluster)
        }
        None => None,
    };
    let edge = Edge::new(
        config.edge.edge_config(),
        Some(gate as Arc<dyn starling_origin::PlaybackGate>),
        Some(fill_token),
        cluster
            .clone()
            .map(|c| Arc::new(Directory(c)) as Arc<dyn starling_edge::OriginResolver>),
    )?;
    info!(addr = %http_addr, origin = %edge.origin(), "HTTP listening (edge)");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = watch::channel(true);
    let state = EdgeState {
        edge: edge.clone(),
        http: http_stats,
        cluster,
        metrics_token: config.server.metrics_token.get().map(Into::into),
        p2p: p2p.clone(),
        ready: ready_rx,
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(starling_edge::router(edge))
        .merge(match &p2p {
            Some(p) => crate::p2p::router(p.clone()),
            None => Router::new(),
        })
        .merge(starling_web::router())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
    let http_task = tokio::spawn(crate::http_server::serve(
        listener,
        app,
        config.http_limits(),
        state.http.clone(),
        shutdown_rx,
    ));
    shutdown.await;
    info!("edge shutting down: finishing requests in progress");
    let _ = ready_tx.send(false);
    let _ = shutdown_tx.send(true);
    if let Some(p) = &p2p {
        p.shutdown();
    }
    if let Err(e) = http_task.await {
        error!(error = %e, "HTTP server task failed");
    }
    info!("bye");
    Ok(())
}

async fn readyz(State(st): State<EdgeState>) -> impl IntoResponse {
    if *st.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

async fn metrics(State(st): State<EdgeState>, headers: HeaderMap) -> Response {
    if let Some(refused) = crate::http::metrics_refusal(st.metrics_token.as_deref(), &headers) {
        return refused;
    }
    let mut out = String::with_capacity(4096);
    st.http.render(&mut out);
    st.edge.render_metrics(&mut out);
    if let Some(p) = &st.p2p {
        p.render_metrics(&mut out);
    }
    if let Some(c) = &st.cluster {
        starling_cluster::render_metrics(c, &mut out);
    }
    (
        [(header::CONTENT_TYPE, crate::http::METRICS_CONTENT_TYPE)],
        out,
    )
        .into_response()
}

/// The cluster's directory as the edge's origin resolver: a channel's origin is the node
/// holding its ingest lease.
struct Directory(Arc<starling_cluster::Cluster>);

impl starling_edge::OriginResolver for Directory {
    fn origin_for<'a>(&'a self, channel: &'a str) -> starling_edge::OriginFuture<'a> {
        Box::pin(self.0.origin_of(channel))
    }
}
