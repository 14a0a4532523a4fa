//! The pusher against a real receiving origin in-process: the demo source published
//! into a hub, packaged by a real `Origin`, pushed by `starling_push::start` to the
//! PUT ingest routes of `starling-http-put` (which check every object and refuse a
//! playlist naming anything not uploaded). A recording layer in front of the routes
//! keeps every request: method, path, Authorization, status, body of playlists. A TCP
//! proxy between the two can be taken down (connections cut, port closed) and brought
//! back on the same port.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use bytes::Bytes;
use starling_demo_source::{DemoConfig, DemoSource};
use starling_http_put::{router, PushConfig as PutConfig, PushIngest};
use starling_hub::{Hub, HubConfig};
use starling_ingest_auth::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};
use starling_media::MediaEvent;
use starling_origin::{Origin, OriginConfig};
use starling_push::{PlanConfig, PushConfig, PushMetrics};
use starling_store::LocalDirStore;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

const CHANNEL: &str = "news";
const KEY: &str = "k-news";

/// "k-news" publishes to "news"; nothing else does.
struct TestAuth;

impl Authorizer for TestAuth {
    fn authorize_publish<'a>(
        &'a self,
        _app: &'a str,
        key: &'a str,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        let ok = key == KEY;
        Box::pin(async move {
            if !ok {
                return Err(AuthError::UnknownKey);
            }
            Ok(PublishGrant {
                channel: CHANNEL.into(),
                takeover: false,
                key_id: None,
                srt_passphrase: None,
            })
        })
    }

    fn authorize_play<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Option<&'a str>,
        _: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>> {
        Box::pin(async { Err(AuthError::UnknownKey) })
    }
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Below `/ingest/news/`.
    path: String,
    auth: String,
    status: u16,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn record(State(log): State<Log>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 8 << 20)
        .await
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts
        .uri
        .path()
        .strip_prefix(&format!("/ingest/{CHANNEL}/"))
        .unwrap_or(parts.uri.path())
        .to_owned();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let resp = next
        .run(Request::from_parts(parts, Body::from(body.clone())))
        .await;
    log.lock().unwrap().push(Seen {
        method,
        path,
        auth,
        status: resp.status().as_u16(),
        body,
    });
    resp
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "starling-push-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

/// The receiving origin's PUT routes on a port of their own, recorded.
struct Remote {
    addr: SocketAddr,
    ingest: Arc<PushIngest>,
    log: Log,
}

async fn remote(name: &str) -> Remote {
    let ingest = PushIngest::new(
        PutConfig::default(),
        Arc::new(LocalDirStore::new(temp(name))),
    );
    let log: Log = Arc::default();
    let app: axum::Router = router(ingest.clone(), Arc::new(TestAuth))
        .layer(axum::middleware::from_fn_with_state(log.clone(), record));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Remote { addr, ingest, log }
}

/// A TCP proxy to `to` on `port` (0: any); [`Proxy::down`] closes the port and cuts
/// every connection, as a crashed remote would.
struct Proxy {
    port: u16,
    to: SocketAddr,
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn up(port: u16, to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut tasks = JoinSet::new();
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let held = conns.clone();
        tasks.spawn(async move {
            let _held = held;
            loop {
                let Ok((mut a, _)) = listener.accept().await else {
                    return;
                };
                conns.lock().unwrap().spawn(async move {
                    if let Ok(mut b) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                    }
                });
            }
        });
        Proxy { port, to, tasks }
    }

    fn down(&mut self) {
        // The accept task holds the connection tasks: aborting it drops them all.
        self.tasks.abort_all();
    }
}

/// A node packaging the demo source on `CHANNEL` (0.5 s segments), its pusher to
/// `url` with `key`, and the publish task.
struct Node {
    origin: Arc<Origin>,
    metrics: Arc<PushMetrics>,
    _stop: watch::Sender<bool>,
    _publish: tokio::task::JoinHandle<()>,
}

fn node(name: &str, url: String, key: &str, plan: PlanConfig) -> Node {
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let origin = Origin::new(
        OriginConfig {
            segment_duration: Duration::from_millis(500),
            part_duration: Duration::from_millis(250),
            memory_window: Duration::from_secs(1),
            ..OriginConfig::default()
        },
        Arc::new(LocalDirStore::new(temp(name))),
    );
    origin.follow(&hub, CHANNEL);
    let mut source = DemoSource::new(DemoConfig {
        width: 160,
        height: 90,
        fps: 30,
        gop_frames: 15,
    })
    .unwrap();
    let publisher = hub.publish(CHANNEL, true).unwrap();
    let publish = tokio::spawn(async move {
        publisher.send(MediaEvent::Stream(source.stream()));
        let start = tokio::time::Instant::now();
        for n in 0u64.. {
            tokio::time::sleep_until(start + Duration::from_nanos(n * 1_000_000_000 / 30)).await;
            for f in source.next(SystemTime::now()) {
                if !publisher.send(MediaEvent::Frame(f)) {
                    return;
                }
            }
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(PushMetrics::default());
    starling_push::start(
        origin.clone(),
        PushConfig {
            url,
            keys: HashMap::from([(CHANNEL.to_owned(), key.to_owned())]),
            plan,
            ..PushConfig::default()
        },
        metrics.clone(),
        stop_rx,
    )
    .unwrap();
    Node {
        origin,
        metrics,
        _stop: stop,
        _publish: publish,
    }
}

fn plan() -> PlanConfig {
    PlanConfig {
        window_segments: 6,
        segment_budget: Duration::from_secs(3),
        refusal_pause: Duration::from_secs(1),
        ..PlanConfig::default()
    }
}

async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn uris(playlist: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(playlist).unwrap();
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push(rest.trim_end_matches('"').to_owned());
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push(l.to_owned());
        }
    }
    out
}

/// The order rules over a recorded sequence: every request carries the key; a
/// playlist names only objects PUT (and answered 2xx) before it and not deleted since;
/// a segment is deleted only once a playlist of its rendition stopped naming it.
fn check_order(log: &[Seen]) {
    let mut there: HashSet<String> = HashSet::new();
    let mut named: HashMap<String, HashSet<String>> = HashMap::new();
    for s in log {
        assert_eq!(s.auth, format!("Bearer {KEY}"), "{} {}", s.method, s.path);
        assert!(
            (200..300).contains(&s.status),
            "{} {} -> {}",
            s.method,
            s.path,
            s.status
        );
        let dir = s.path.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        match (s.method.as_str(), s.path.ends_with(".m3u8")) {
            ("PUT", true) => {
                let mut names = HashSet::new();
                for u in uris(&s.body) {
                    let full = if dir.is_empty() {
                        u.clone()
                    } else {
                        format!("{dir}/{u}")
                    };
                    assert!(
                        there.contains(&full),
                        "{} names {full} before it was there",
                        s.path
                    );
                    names.insert(full);
                }
                named.insert(s.path.clone(), names);
            }
            ("PUT", false) => {
                // Each init section and segment is sent once.
                assert!(there.insert(s.path.clone()), "{} sent twice", s.path);
            }
            ("DELETE", _) => {
                let pl = format!("{dir}/index.m3u8");
                let listed = named.get(&pl).unwrap();
                assert!(
                    !listed.contains(&s.path),
                    "{} deleted while {pl} names it",
                    s.path
                );
                there.remove(&s.path);
            }
            other => panic!("unexpected {other:?}"),
        }
        if s.path.ends_with(".m3u8") {
            there.insert(s.path.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_in_order_with_the_key_and_the_remote_serves_it() {
    let remote = remote("order").await;
    let n = node("order-a", format!("http://{}", remote.addr), KEY, plan());
    let log = remote.log.clone();
    wait_for(
        "a pushed multivariant playlist",
        Duration::from_secs(15),
        || log.lock().unwrap().iter().any(|s| s.path == "index.m3u8"),
    )
    .await;
    // Let the window slide past its six segments (0.5 s each): deletes follow.
    wait_for("a delete", Duration::from_secs(15), || {
        log.lock().unwrap().iter().any(|s| s.method == "DELETE")
    })
    .await;
    let log = log.lock().unwrap().clone();
    if std::env::var_os("PUSH_TEST_SHOW").is_some() {
        for s in &log {
            eprintln!("{} {} {}", s.method, s.path, s.status);
        }
    }
    check_order(&log);
    // The first requests are the init sections, then segments; the first playlist
    // comes after at least one segment of its rendition.
    assert!(log[0].path.contains("-init-0.mp4"), "{:?}", log[0].path);
    let first_pl = log
        .iter()
        .position(|s| s.path.ends_with("index.m3u8"))
        .unwrap();
    assert!(log[..first_pl].iter().any(|s| s.path.ends_with(".m4s")));
    // The remote serves what was pushed: the multivariant names the media playlists,
    // which list whole segments only, each one fetchable.
    let mv = remote.ingest.get(CHANNEL, "index.m3u8").await.unwrap();
    let mv = String::from_utf8(mv.body.to_vec()).unwrap();
    let media = mv
        .lines()
        .find(|l| l.ends_with("index.m3u8"))
        .unwrap()
        .to_owned();
    let pl = remote.ingest.get(CHANNEL, &media).await.unwrap();
    let text = String::from_utf8(pl.body.to_vec()).unwrap();
    assert!(!text.contains("EXT-X-PART"), "{text}");
    let dir = media.rsplit_once('/').unwrap().0;
    for u in uris(text.as_bytes()) {
        let o = remote.ingest.get(CHANNEL, &format!("{dir}/{u}")).await;
        assert!(o.is_some(), "{dir}/{u} of\n{text}");
    }
    assert!(text.matches("#EXTINF").count() <= 6, "{text}");
    let m = &n.metrics;
    assert!(m.latency.count() > 0);
    assert_eq!(m.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    drop(n.origin.clone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_goes_down_and_comes_back_catches_up_with_the_live_edge() {
    let remote = remote("down").await;
    let mut proxy = Proxy::up(0, remote.addr).await;
    let n = node(
        "down-a",
        format!("http://127.0.0.1:{}", proxy.port),
        KEY,
        plan(),
    );
    let log = remote.log.clone();
    let segments = |log: &Log| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "PUT" && s.path.ends_with(".m4s"))
            .count()
    };
    wait_for("segments", Duration::from_secs(15), || segments(&log) >= 2).await;
    // Down for longer than a segment's budget (3 s): what completes meanwhile is
    // dropped, not queued up.
    proxy.down();
    let (port, to) = (proxy.port, proxy.to);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = log.lock().unwrap().len();
    let failures = n
        .metrics
        .failures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(failures >= 1, "the outage was seen");
    // Backoff: a handful of attempts in 4 s, not a storm (capped at one per 4 s).
    assert!(failures < 20, "{failures} attempts");
    let _proxy = Proxy::up(port, to).await;
    // Back: the push resumes, and the remote's playlist reaches the live edge (the
    // newest segment complete here) within a few seconds.
    let edge_reached = || {
        let newest_here = n
            .origin
            .outbound(CHANNEL)
            .unwrap()
            .snapshot()
            .renditions
            .iter()
            .find(|r| r.name != "audio")
            .and_then(|r| r.segments.last().map(|s| s.uri.replace('/', "-")));
        let log = log.lock().unwrap();
        let last_pl = log
            .iter()
            .rev()
            .find(|s| s.path.ends_with("/index.m3u8") && !s.path.starts_with("audio"));
        match (newest_here, last_pl) {
            (Some(seg), Some(pl)) => {
                let newest_there = uris(&pl.body).last().cloned().unwrap_or_default();
                newest_there == seg
            }
            _ => false,
        }
    };
    wait_for(
        "the live edge on the remote",
        Duration::from_secs(5),
        edge_reached,
    )
    .await;
    assert!(log.lock().unwrap().len() > before);
    assert!(n.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    check_order(&log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_without_a_retry_storm() {
    let remote = remote("wrong").await;
    let n = node(
        "wrong-a",
        format!("http://{}", remote.addr),
        "not-the-key",
        plan(),
    );
    let log = remote.log.clone();
    wait_for("a refusal", Duration::from_secs(15), || {
        !log.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter().all(|s| s.status == 403),
        "{:?}",
        log.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    // One attempt per refusal pause (1 s here): a few in 3 s, not hundreds.
    assert!(log.len() <= 6, "{} requests", log.len());
    assert!(n.metrics.refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(!remote.ingest.knows(CHANNEL), "nothing was taken");
}
