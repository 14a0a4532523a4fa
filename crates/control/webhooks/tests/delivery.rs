#![allow(clippy::unwrap_used)]
//! The dispatcher against a real HTTP receiver (axum on 127.0.0.1:0) and a real
//! SQLite control plane: retries, headers, signatures, giving up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use starling_control::{
    Db, DbConfig, Delivery, DeliveryState, PasswordParams, Principal, WebhookEvent,
};
use starling_webhooks::{verify, Dispatcher, DispatcherConfig, RetryPolicy};

const T0: i64 = 1_700_000_000_000;

#[derive(Clone, Default)]
struct Receiver {
    /// Statuses to answer, in order; the last one repeats.
    script: Arc<Vec<u16>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = r.seen.lock().unwrap();
    let n = seen.len();
    seen.push((headers, body));
    let code = r.script.get(n).or(r.script.last()).copied().unwrap();
    StatusCode::from_u16(code).unwrap()
}

async fn receiver(script: Vec<u16>) -> (String, Receiver) {
    let r = Receiver {
        script: Arc::new(script),
        ..Receiver::default()
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

struct Fx {
    db: Db,
    admin: Principal,
    dir: std::path::PathBuf,
}

impl Drop for Fx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fx(name: &str) -> Fx {
    let dir = std::env::temp_dir().join(format!("starling-webhooks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = DbConfig::new(&dir);
    cfg.passwords = PasswordParams::INSECURE_FAST;
    let db = Db::connect(&cfg).await.unwrap();
    db.bootstrap_admin("root@example.org", "correct horse battery", "system", T0)
        .await
        .unwrap();
    let admin = db
        .login("root@example.org", "correct horse battery", "test", T0)
        .await
        .unwrap();
    Fx { db, admin, dir }
}

fn fast_config() -> DispatcherConfig {
    DispatcherConfig {
        retry: RetryPolicy {
            delays: vec![Duration::from_millis(50), Duration::from_millis(100)],
            max_attempts: 5,
            max_age: Duration::from_secs(60),
            jitter_permille: 0,
        },
        timeout: Duration::from_secs(2),
        // Long: deliveries must not wait for a poll, they are woken.
        poll_interval: Duration::from_secs(30),
        ..DispatcherConfig::default()
    }
}

async fn wait_finished(fx: &Fx, webhook: &str) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = fx
            .db
            .list_deliveries(&fx.admin, webhook, 10, 0)
            .await
            .unwrap();
        if let Some(d) = list.first() {
            if d.state() != DeliveryState::Pending {
                return d.clone();
            }
        }
        assert!(Instant::now() < deadline, "not finished in time: {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_twice_then_delivers_signed_on_the_third_attempt() {
    let fx = fx("retry").await;
    let (url, rx) = receiver(vec![500, 500, 204]).await;
    let (hook, secret) = fx
        .db
        .create_webhook(&fx.admin, &url, &["stream.started"], T0)
        .await
        .unwrap();
    let dispatcher = Dispatcher::start(fx.db.clone(), fast_config());
    // Held past shutdown, as the node's emitters are.
    let sender = dispatcher.sender();
    let started = Instant::now();
    let data = r#"{"channel":"news","channel_id":"ch_1","started_at":1700000000000,"reason":null}"#;
    assert!(sender.emit(
        &fx.admin.org_id,
        WebhookEvent::StreamStarted,
        data.to_owned()
    ));
    let d = wait_finished(&fx, &hook.id).await;
    let elapsed = started.elapsed();
    assert_eq!(d.state(), DeliveryState::Delivered, "{d:?}");
    assert_eq!((d.attempts, d.last_status), (3, Some(204)));
    assert_eq!(d.last_error, None);
    // Two backoffs (50 ms, 100 ms), no 30 s poll waited for.
    assert!(
        elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (headers, body) in &seen {
        let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("starling-event"), "stream.started");
        assert_eq!(h("starling-delivery"), d.id);
        assert!(h("user-agent").starts_with("Starling-Webhooks/"));
        let sig = h("starling-signature");
        assert!(sig.starts_with("t=") && sig.contains(",v1="), "{sig}");
        verify(secret.expose().as_bytes(), &sig, body, now_s, 60).unwrap();
        assert!(verify(b"whsec_wrong", &sig, body, now_s, 60).is_err());
        // Every retry sends the same bytes: the stored envelope.
        assert_eq!(body.as_ref(), d.payload.as_bytes());
    }
    let v: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(v["type"], "stream.started");
    assert_eq!(v["org_id"], fx.admin.org_id.as_str());
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(
        v["data"],
        serde_json::from_str::<serde_json::Value>(data).unwrap()
    );
    // Shutdown does not wait for emitters to go away; after it, emitting is refused.
    tokio::time::timeout(Duration::from_secs(5), dispatcher.shutdown())
        .await
        .unwrap();
    assert!(!sender.emit(&fx.admin.org_id, WebhookEvent::StreamStarted, "{}".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusals_are_not_retried() {
    let fx = fx("giveup").await;
    let (url, rx) = receiver(vec![410]).await;
    let (gone, _) = fx
        .db
        .create_webhook(&fx.admin, &url, &["recording.ready"], T0)
        .await
        .unwrap();
    let (tls, _) = fx
        .db
        .create_webhook(&fx.admin, "https://127.0.0.1:9/x", &["recording.ready"], T0)
        .await
        .unwrap();
    let dispatcher = Dispatcher::start(fx.db.clone(), fast_config());
    assert!(dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::RecordingReady, "{}".into()));
    let d = wait_finished(&fx, &gone.id).await;
    assert_eq!(d.state(), DeliveryState::Failed);
    assert_eq!((d.attempts, d.last_status), (1, Some(410)));
    assert_eq!(d.last_error.as_deref(), Some("HTTP 410: not retried"));
    let t = wait_finished(&fx, &tls.id).await;
    assert_eq!(
        (t.state(), t.attempts, t.last_status),
        (DeliveryState::Failed, 1, None)
    );
    assert!(t.last_error.unwrap().contains("only http://"));
    // No retry arrives later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 1);
    dispatcher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_retried_until_the_attempts_run_out() {
    let fx = fx("refused").await;
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (hook, _) = fx
        .db
        .create_webhook(
            &fx.admin,
            &format!("http://127.0.0.1:{port}/x"),
            &["stream.ended"],
            T0,
        )
        .await
        .unwrap();
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 3;
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg);
    dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::StreamEnded, "{}".into());
    let d = wait_finished(&fx, &hook.id).await;
    assert_eq!(
        (d.state(), d.attempts, d.last_status),
        (DeliveryState::Failed, 3, None)
    );
    let err = d.last_error.unwrap();
    assert!(
        err.contains("request failed") && err.contains("gave up after 3 attempts"),
        "{err}"
    );
    dispatcher.shutdown().await;
}

/// Throughput and latency figures (not a pass/fail check):
/// `cargo test -p starling-webhooks --test delivery -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_emit_and_delivery_throughput() {
    const N: usize = 2000;
    let fx = fx("measure").await;
    let (url, rx) = receiver(vec![204]).await;
    let (hook, _) = fx
        .db
        .create_webhook(&fx.admin, &url, &["stream.started"], T0)
        .await
        .unwrap();
    let mut cfg = fast_config();
    cfg.emit_buffer = N;
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg);
    let sender = dispatcher.sender();
    let t = Instant::now();
    for i in 0..N {
        assert!(sender.emit(
            &fx.admin.org_id,
            WebhookEvent::StreamStarted,
            format!(r#"{{"channel":"news","n":{i}}}"#)
        ));
    }
    let emit = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while rx.seen.lock().unwrap().len() < N {
        assert!(
            Instant::now() < deadline,
            "only {} delivered",
            rx.seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = t.elapsed();
    // Let the last attempts be recorded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = fx
        .db
        .list_deliveries(&fx.admin, &hook.id, 1000, 0)
        .await
        .unwrap()
        .iter()
        .filter(|d| d.state() == DeliveryState::Delivered)
        .count();
    println!(
        "emit: {N} events in {emit:?} ({:.1} µs each, never waits); \
         queued + signed + POSTed + recorded: {N} in {all:?} ({:.0}/s, SQLite, concurrency 16); \
         {delivered} of the newest 1000 recorded delivered",
        emit.as_secs_f64() * 1e6 / N as f64,
        N as f64 / all.as_secs_f64()
    );
    dispatcher.shutdown().await;
}
