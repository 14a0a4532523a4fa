//! The edge against a stand-in origin on loopback that counts what it is asked.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use starling_origin::gate::{GateFuture, Refusal};

/// What the stand-in origin saw and how it behaves.
#[derive(Default)]
struct Upstream {
    requests: Mutex<Vec<String>>,
    /// 503 for everything while set.
    failing: AtomicBool,
    count: AtomicUsize,
}

impl Upstream {
    fn asked(&self, prefix: &str) -> usize {
        lock(&self.requests)
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

async fn upstream_handler(State(up): State<Arc<Upstream>>, uri: Uri) -> Response {
    let target = uri.path_and_query().map_or("", |p| p.as_str()).to_owned();
    lock(&up.requests).push(target.clone());
    up.count.fetch_add(1, SeqCst);
    if up.failing.load(SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "origin trouble").into_response();
    }
    let path = uri.path();
    if path.ends_with("index.m3u8") {
        // A blocking request is held for a while, as the origin holds it until the part
        // exists.
        if uri.query().is_some_and(|q| q.contains("_HLS_msn")) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let token = uri
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("token=")))
            .map(|t| format!("?token={t}"))
            .unwrap_or_default();
        let body =
            format!("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4{token}\"\n#EXTINF:2.0,\n7.m4s{token}\n");
        let cache = if token.is_empty() {
            "public, max-age=1"
        } else {
            "private, max-age=1"
        };
        return (
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, cache),
            ],
            body,
        )
            .into_response();
    }
    if path.contains("/future-") {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "public, max-age=1")],
            "not yet",
        )
            .into_response();
    }
    if path.contains("/short-") {
        return (
            [(header::CACHE_CONTROL, "public, max-age=1")],
            Bytes::from_static(b"short-lived"),
        )
            .into_response();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    (
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        Bytes::from(vec![7u8; 10_000]),
    )
        .into_response()
}

/// Starts the stand-in origin; returns its state and base URL.
async fn upstream() -> (Arc<Upstream>, String, tokio::task::JoinHandle<()>) {
    let up = Arc::new(Upstream::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(upstream_handler)
        .with_state(up.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (up, format!("http://{addr}"), task)
}

fn edge_to(origin: &str, gate: Option<Arc<dyn PlaybackGate>>) -> Arc<Edge> {
    Edge::new(
        EdgeConfig {
            origin: origin.to_owned(),
            stale_if_error: Duration::from_secs(30),
            ..EdgeConfig::default()
        },
        gate,
        Some(Arc::new(|ch: &str| Some(format!("edge-token-for-{ch}")))),
        None,
    )
    .unwrap()
}

async fn body_of(r: Response) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

fn how(h: &HeaderMap) -> &str {
    h.get(CACHE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_blocked_on_one_part_costs_the_origin_one_request() {
    let (up, origin, _t) = upstream().await;
    let edge = edge_to(&origin, None);
    let mut viewers = Vec::new();
    for i in 0..500 {
        let edge = edge.clone();
        viewers.push(tokio::spawn(async move {
            // Viewers order the directives differently and carry other parameters:
            // still one object.
            let q = if i % 2 == 0 {
                "_HLS_msn=12&_HLS_part=3"
            } else {
                "_HLS_part=3&_HLS_msn=12&cb=123"
            };
            let r = edge
                .serve("/live/ch/video/index.m3u8", Some(q), &HeaderMap::new())
                .await;
            body_of(r).await
        }));
    }
    let mut ways = HashMap::<String, usize>::new();
    for v in viewers {
        let (status, headers, body) = v.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with(b"#EXTM3U"));
        *ways.entry(how(&headers).to_owned()).or_default() += 1;
    }
    assert_eq!(
        up.asked("/live/ch/video/index.m3u8"),
        1,
        "{:?}",
        lock(&up.requests)
    );
    assert_eq!(ways.get("miss"), Some(&1), "{ways:?}");
    let m = &edge.metrics;
    assert_eq!(m.fills.load(SeqCst), 1);
    assert_eq!(
        m.collapsed.load(SeqCst) + m.hits.load(SeqCst),
        499,
        "{ways:?}"
    );
    // The same part asked later: from the cache.
    let (_, h, _) = body_of(
        edge.serve(
            "/live/ch/video/index.m3u8",
            Some("_HLS_msn=12&_HLS_part=3"),
            &HeaderMap::new(),
        )
        .await,
    )
    .await;
    assert_eq!(how(&h), "hit");
    assert_eq!(up.count.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_kept_and_a_not_yet_404_only_for_its_second() {
    let (up, origin, _t) = upstream().await;
    let edge = edge_to(&origin, None);
    let path = "/live/ch/video/s1/7.m4s";
    for _ in 0..3 {
        let (s, h, b) = body_of(edge.serve(path, None, &HeaderMap::new()).await).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b.len(), 10_000);
        assert_eq!(
            h.get(header::CACHE_CONTROL).unwrap(),
            "public, max-age=31536000, immutable"
        );
    }
    assert_eq!(up.asked(path), 1);
    let future = "/live/ch/video/s1/future-8.m4s";
    for _ in 0..3 {
        let (s, ..) = body_of(edge.serve(future, None, &HeaderMap::new()).await).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    assert_eq!(up.asked(future), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = body_of(edge.serve(future, None, &HeaderMap::new()).await).await;
    assert_eq!(up.asked(future), 2, "asked again once its second passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_origin_is_covered_by_stale_copies_and_errors_are_not_kept() {
    let (up, origin, _t) = upstream().await;
    let edge = edge_to(&origin, None);
    let short = "/live/ch/short-1";
    let (s, ..) = body_of(edge.serve(short, None, &HeaderMap::new()).await).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    up.failing.store(true, SeqCst);
    let (s, h, b) = body_of(edge.serve(short, None, &HeaderMap::new()).await).await;
    assert_eq!((s, how(&h)), (StatusCode::OK, "stale"));
    assert_eq!(&b[..], b"short-lived");
    // Nothing stale to stand in: the origin's 503 is passed on, and not kept.
    let other = "/live/ch/short-2";
    let (s, ..) = body_of(edge.serve(other, None, &HeaderMap::new()).await).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    up.failing.store(false, SeqCst);
    let (s, h, _) = body_of(edge.serve(other, None, &HeaderMap::new()).await).await;
    assert_eq!((s, how(&h)), (StatusCode::OK, "miss"));
    assert!(edge.metrics.stale_served.load(SeqCst) >= 1);
    assert!(edge.metrics.origin_5xx.load(SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_is_gone_gives_a_502_naming_it_or_the_stale_copy() {
    let (_up, origin, task) = upstream().await;
    let edge = edge_to(&origin, None);
    let short = "/live/ch/short-1";
    let _ = body_of(edge.serve(short, None, &HeaderMap::new()).await).await;
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, h, _) = body_of(edge.serve(short, None, &HeaderMap::new()).await).await;
    assert_eq!((s, how(&h)), (StatusCode::OK, "stale"));
    let (s, _, b) = body_of(edge.serve("/live/ch/x.m4s", None, &HeaderMap::new()).await).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("the origin did not answer"), "{text}");
    assert!(edge.metrics.fill_errors.load(SeqCst) >= 2);
}

#[tokio::test]
async fn malformed_requests_never_reach_the_origin() {
    let (up, origin, _t) = upstream().await;
    let edge = edge_to(&origin, None);
    for (path, query, cause) in [
        ("/live/../etc/passwd", None, "malformed channel name"),
        ("/live/ch/a/../../x", None, "malformed path"),
        ("/live/ch/i.m3u8", Some("_HLS_msn=1&_HLS_msn=1"), "repeated"),
    ] {
        let (s, _, b) = body_of(edge.serve(path, query, &HeaderMap::new()).await).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        assert!(String::from_utf8_lossy(&b).contains(cause), "{path}: {b:?}");
    }
    assert_eq!(up.count.load(SeqCst), 0);
    assert!(Edge::new(
        EdgeConfig {
            origin: "http://h:1/path".into(),
            ..EdgeConfig::default()
        },
        None,
        None,
        None
    )
    .is_err());
    assert!(Edge::new(
        EdgeConfig {
            origin: "https://h:1".into(),
            ..EdgeConfig::default()
        },
        None,
        None,
        None
    )
    .is_err());
}

/// A gate that knows one private channel, `secret`, and one valid token for it.
struct TestGate;

impl PlaybackGate for TestGate {
    fn check<'a>(&'a self, channel: &'a str, token: Option<&'a str>) -> GateFuture<'a> {
        Box::pin(async move {
            match (channel, token) {
                ("secret", Some("good.token")) => Access::Allowed,
                ("secret", Some(_)) => Access::Refused(Refusal::BadSignature),
                ("secret", None) => Access::Refused(Refusal::NoToken),
                _ => Access::Public,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_is_checked_at_the_edge_and_filled_with_the_edges_token() {
    let (up, origin, _t) = upstream().await;
    let edge = edge_to(&origin, Some(Arc::new(TestGate)));
    let path = "/live/secret/video/index.m3u8";
    let (s, ..) = body_of(edge.serve(path, None, &HeaderMap::new()).await).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, ..) = body_of(
        edge.serve(path, Some("token=forged.x"), &HeaderMap::new())
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        up.count.load(SeqCst),
        0,
        "refused without asking the origin"
    );

    let (s, h, b) = body_of(
        edge.serve(path, Some("token=good.token"), &HeaderMap::new())
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8_lossy(&b).into_owned();
    assert!(text.contains("7.m4s?token=good.token"), "{text}");
    assert!(!text.contains("edge-token"), "{text}");
    assert!(h
        .get(header::CACHE_CONTROL)
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("private"));
    // The fill carried the edge's own token.
    assert_eq!(
        lock(&up.requests).as_slice(),
        ["/live/secret/video/index.m3u8?token=edge-token-for-secret"]
    );
    // The same cached copy for a request by cookie: that viewer's token.
    let mut cookie = HeaderMap::new();
    cookie.insert(
        header::COOKIE,
        HeaderValue::from_static("starling_playback=good.token"),
    );
    let (s, h, b) = body_of(edge.serve(path, None, &cookie).await).await;
    assert_eq!((s, how(&h)), (StatusCode::OK, "hit"));
    assert!(String::from_utf8_lossy(&b).contains("init.mp4?token=good.token"));
    assert_eq!(up.count.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_fills_requests_are_shed_with_a_retry() {
    let (up, origin, _t) = upstream().await;
    let edge = Edge::new(
        EdgeConfig {
            origin,
            max_fills: 2,
            ..EdgeConfig::default()
        },
        None,
        None,
        None,
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let edge = edge.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/live/ch/video/s1/{i}.m4s");
            let r = edge.serve(&path, None, &HeaderMap::new()).await;
            (r.status(), r.headers().get(header::RETRY_AFTER).cloned())
        }));
    }
    let mut shed = 0;
    for t in tasks {
        let (s, retry) = t.await.unwrap();
        if s == StatusCode::SERVICE_UNAVAILABLE {
            assert!(retry.is_some());
            shed += 1;
        } else {
            assert_eq!(s, StatusCode::OK);
        }
    }
    assert!(shed >= 1, "{shed}");
    assert_eq!(up.count.load(SeqCst) + shed, 6);
    assert_eq!(edge.metrics.shed.load(SeqCst), shed as u64);
    let mut text = String::new();
    edge.render_metrics(&mut text);
    assert!(text.contains("starling_edge_shed_total"));
    assert!(text.contains("starling_edge_cache_objects"));
}

/// A directory that knows where one channel is packaged.
struct OneChannel(String);

impl OriginResolver for OneChannel {
    fn origin_for<'a>(&'a self, channel: &'a str) -> OriginFuture<'a> {
        Box::pin(async move { (channel == "known").then(|| self.0.clone()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_names_each_channels_origin_and_an_unknown_channel_is_not_live() {
    let (up, origin, _t) = upstream().await;
    let edge = Edge::new(
        EdgeConfig::default(),
        None,
        None,
        Some(Arc::new(OneChannel(origin))),
    )
    .unwrap();
    let (s, ..) = body_of(
        edge.serve("/live/known/video/s1/1.m4s", None, &HeaderMap::new())
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..3 {
        let (s, _, b) = body_of(
            edge.serve("/live/other/index.m3u8", None, &HeaderMap::new())
                .await,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&b).contains("not live in the cluster"));
    }
    assert_eq!(
        up.count.load(SeqCst),
        1,
        "only the known channel reached an origin"
    );
    assert_eq!(
        edge.metrics.fills.load(SeqCst),
        2,
        "the unknown channel's answer was kept"
    );
    // Without a resolver an edge needs an origin.
    assert!(Edge::new(EdgeConfig::default(), None, None, None).is_err());
}
