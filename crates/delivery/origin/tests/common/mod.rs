//! Shared by the origin's in-process tests: a temp store directory, the demo source
//! publishing in real time, and requests through a router without a socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    middleware, Router,
};
use bytes::Bytes;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_hub::Hub;
use starling_media::MediaEvent;
use starling_origin::{http, store::BoxFuture, LocalDirStore, ObjectStore, Origin, StoreError};
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

/// The origin's router as the app mounts it (guard included), without a socket.
pub fn app(origin: &Arc<Origin>) -> Router {
    http::router(origin.clone())
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(http::guard))
}

pub async fn get(app: &Router, uri: &str) -> (StatusCode, Bytes) {
    let (status, _, body) = get_with(app, uri, &[]).await;
    (status, body)
}

pub async fn playlist(app: &Router, uri: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(app, uri).await;
        if status == StatusCode::OK {
            return String::from_utf8(body.to_vec()).unwrap();
        }
        assert!(Instant::now() < deadline, "{uri}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the playlist at `uri` satisfies `ok`.
pub async fn playlist_until(
    app: &Router,
    uri: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pl = playlist(app, uri).await;
        if ok(&pl) {
            return pl;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{pl}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Media URIs of a playlist: segments and every `URI="…"` attribute, except other
/// playlists (rendition reports).
pub fn media_uris(pl: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in pl.lines() {
        if line.starts_with("#EXT-X-RENDITION-REPORT") {
            continue;
        }
        if let Some(rest) = line.split("URI=\"").nth(1) {
            out.push(rest.split('"').next().unwrap().to_owned());
        } else if !line.starts_with('#') {
            out.push(line.to_owned());
        }
    }
    out
}

/// The demo source on channel `demo` for `seconds` (320x180, a keyframe a second).
pub fn publish_demo(hub: &Arc<Hub>, seconds: u64) -> tokio::task::JoinHandle<()> {
    publish(
        hub,
        "demo",
        DemoConfig {
            width: 320,
            height: 180,
            fps: 30,
            gop_frames: 30,
        },
        seconds,
    )
}

/// A local store for tests: its reads take `delay` (a bucket far away) and are
/// counted, and its first `failing_puts` writes fail (a bucket that blips).
pub struct CountingStore {
    pub inner: LocalDirStore,
    pub reads: std::sync::atomic::AtomicUsize,
    pub delay: Duration,
    pub failing_puts: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    pub fn new(dir: &std::path::Path, delay: Duration) -> Self {
        Self {
            inner: LocalDirStore::new(dir),
            reads: Default::default(),
            delay,
            failing_puts: Default::default(),
        }
    }

    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ObjectStore for CountingStore {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        use std::sync::atomic::Ordering::Relaxed;
        let failing = self
            .failing_puts
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let key = key.to_owned();
            return Box::pin(async move {
                Err(StoreError::Io {
                    key,
                    source: std::io::Error::other("injected failure"),
                })
            });
        }
        self.inner.put(key, parts)
    }
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(self.delay).await;
            self.inner.get(&key).await
        })
    }
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete(key)
    }
    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.inner.children(prefix, limit)
    }
    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete_prefix(prefix)
    }
}
