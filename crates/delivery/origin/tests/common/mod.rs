//! Shared by the origin's in-process tests: a temp store directory, the demo source
//! publishing in real time, and requests through a router without a socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use bytes::Bytes;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::Hub;
use starling_media::MediaEvent;
use tower::ServiceExt;

/// A fresh directory name under the system temp dir (created by the store on first use).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "starling-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

/// Publishes the demo source (`config`, 30 fps) on `channel` for `seconds` of real time,
/// then leaves, as an encoder whose connection drops. Each publish starts its timestamps
/// at 0, as a reconnecting encoder does.
pub fn publish(
    hub: &Arc<Hub>,
    channel: &str,
    config: DemoConfig,
    seconds: u64,
) -> tokio::task::JoinHandle<()> {
    let publisher = hub.publish(channel, false).unwrap();
    tokio::spawn(async move {
        let mut src = DemoSource::new(config).unwrap();
        publisher.send(MediaEvent::Stream(src.stream()));
        let fps = u64::from(config.fps);
        let start = tokio::time::Instant::now();
        for n in 0..seconds * fps {
            tokio::time::sleep_until(start + Duration::from_nanos(n * 1_000_000_000 / fps)).await;
            for f in src.next(SystemTime::now()) {
                publisher.send(MediaEvent::Frame(f));
            }
        }
        drop(publisher);
    })
}

/// A GET through the router, with extra request headers.
pub async fn get_with(
    app: &Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, headers, body)
}
