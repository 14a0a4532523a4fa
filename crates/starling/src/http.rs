//! The HTTP side of a node: health, readiness and metrics for now; playback, the API
//! and the web UI join this router as they arrive. One port for all of it.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use starling_hub::Hub;
use starling_rtmp_server::ServerStats;
use tokio::sync::watch;

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub rtmp: Arc<ServerStats>,
    /// False once shutdown started: load balancers should stop sending viewers here.
    pub ready: watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if *st.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    st.hub.metrics().render(&mut out);
    st.rtmp.render(&mut out);
    let live = st.hub.live();
    out.push_str("# TYPE starling_live_channels gauge\n");
    out.push_str(&format!("starling_live_channels {}\n", live.len()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn health_ready_and_metrics() {
        let (tx, rx) = watch::channel(true);
        let app = router(AppState {
            hub: Arc::new(Hub::default()),
            rtmp: Arc::new(ServerStats::default()),
            ready: rx,
        });
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let r = app.clone().oneshot(get("/healthz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.clone().oneshot(get("/metrics")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("starling_ingest_to_hub_seconds_count 0"),
            "{text}"
        );
        assert!(text.contains("starling_rtmp_connections_open 0"));
        assert_eq!(
            app.clone().oneshot(get("/readyz")).await.unwrap().status(),
            StatusCode::OK
        );
        tx.send(false).unwrap();
        assert_eq!(
            app.oneshot(get("/readyz")).await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
