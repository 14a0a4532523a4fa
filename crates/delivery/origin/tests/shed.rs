//! Priority under overload: store reads (DVR, earlier sessions) over the node's cap or a
//! client's cap are shed at once with a 503 a player retries in a second, while the live
//! edge, served from memory, is answered all along.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
    Router,
};
use bytes::Bytes;
use common::*;
use starling_hub::Hub;
use starling_origin::{ObjectStore, Origin, OriginConfig};
use tower::ServiceExt;

/// A GET from client `ip`, as the server passes the peer address on.
async fn get_from(
    app: &Router,
    uri: &str,
    ip: [u8; 4],
) -> (StatusCode, Option<String>, Option<String>) {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(IpAddr::from(ip), 40_000)));
    let res = app.clone().oneshot(req).await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (res.status(), header("cache-control"), header("retry-after"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_over_a_cap_are_shed_and_the_live_edge_is_not() {
    let dir = temp_dir("shed");
    // Reads take 1.5 s: a bucket far away, overloaded.
    let store = Arc::new(CountingStore::new(&dir, Duration::from_millis(1500)));
    // An earlier session's segments, in the store only (this node never held them).
    let old = "media/demo/0000000000000001/source";
    for msn in 0..8 {
        store
            .inner
            .put(
                &format!("{old}/{msn}.m4s"),
                vec![Bytes::from_static(b"old segment")],
            )
            .await
            .unwrap();
    }
    let config = OriginConfig {
        max_store_reads: 2,
        max_store_reads_per_client: 1,
        ..OriginConfig::default()
    };
    let origin = Origin::new(config, store.clone());
    let hub = Arc::new(Hub::default());
    origin.follow(&hub, "demo");
    let live = publish_demo(&hub, 8);
    let app = app(&origin);
    let pl = playlist_until(&app, "/live/demo/source/index.m3u8", "a part", |p| {
        p.contains("#EXT-X-PART:")
    })
    .await;
    let part = pl
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('"').next())
        .unwrap()
        .to_owned();
    let part = format!("/live/demo/source/{part}");

    // (The origin read the channel's history when the publish began.)
    let before = store.reads();
    // One client asks for three old segments at once: one read, two shed.
    let uri = |msn: u32| format!("/live/demo/source/0000000000000001/{msn}.m4s");
    let one_client = futures_join(
        (0..3)
            .map(|msn| {
                let app = app.clone();
                let uri = uri(msn);
                tokio::spawn(async move { get_from(&app, &uri, [10, 0, 0, 1]).await })
            })
            .collect(),
    )
    .await;
    let ok = one_client.iter().filter(|r| r.0 == StatusCode::OK).count();
    assert_eq!(ok, 1, "{one_client:?}");
    for r in one_client.iter().filter(|r| r.0 != StatusCode::OK) {
        assert_eq!(r.0, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
        assert_eq!(r.1.as_deref(), Some("public, max-age=1"), "{r:?}");
        assert_eq!(r.2.as_deref(), Some("1"), "{r:?}");
    }

    // Four clients at once, one read each: two fit the node's cap. While those reads
    // are under way, the live edge is answered at once, from memory.
    let crowd: Vec<_> = (0..4u8)
        .map(|i| {
            let app = app.clone();
            let uri = uri(u32::from(i) + 3);
            tokio::spawn(async move { get_from(&app, &uri, [10, 0, 1, i]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let edge = get_from(&app, &part, [10, 0, 2, 1]).await;
    let edge_took = t.elapsed();
    let crowd = futures_join(crowd).await;
    assert_eq!(edge.0, StatusCode::OK, "{edge:?}");
    assert!(
        edge_took < Duration::from_millis(1000),
        "the live edge waited {edge_took:?}"
    );
    assert_eq!(
        crowd.iter().filter(|r| r.0 == StatusCode::OK).count(),
        2,
        "{crowd:?}"
    );
    assert_eq!(
        crowd
            .iter()
            .filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE)
            .count(),
        2,
        "{crowd:?}"
    );
    // Shed reads never reached the store.
    assert_eq!(store.reads() - before, 3);
    let mut metrics = String::new();
    origin.metrics().render(&mut metrics);
    assert!(
        metrics.contains("starling_store_reads_shed_total{cap=\"client\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("starling_store_reads_shed_total{cap=\"global\"} 2"),
        "{metrics}"
    );

    // Slots come back: once the reads are done, the same client reads again.
    assert_eq!(
        get_from(&app, &uri(7), [10, 0, 0, 1]).await.0,
        StatusCode::OK
    );
    live.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
