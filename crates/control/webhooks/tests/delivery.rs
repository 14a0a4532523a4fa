#![allow(clippy::unwrap_used)]
//! The dispatcher against a real HTTP receiver (axum on 127.0.0.1:0) and a real
//! SQLite control plane: retries, headers, signatures, giving up; targets refused by the
//! SSRF rules; delivery over https to a receiver whose certificate a private CA signed.
//! The loopback receivers need `targets.allow_private` (as an operator's config would).

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
use starling_webhooks::{verify, Dispatcher, DispatcherConfig, RetryPolicy, TargetPolicy};

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
        targets: TargetPolicy {
            allow_private: true,
        },
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
    let dispatcher = Dispatcher::start(fx.db.clone(), fast_config()).unwrap();
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
    let dispatcher = Dispatcher::start(fx.db.clone(), fast_config()).unwrap();
    assert!(dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::RecordingReady, "{}".into()));
    let d = wait_finished(&fx, &gone.id).await;
    assert_eq!(d.state(), DeliveryState::Failed);
    assert_eq!((d.attempts, d.last_status), (1, Some(410)));
    assert_eq!(d.last_error.as_deref(), Some("HTTP 410: not retried"));
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
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg).unwrap();
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
        err.contains("connecting to 127.0.0.1") && err.contains("gave up after 3 attempts"),
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
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_private_and_metadata_targets_are_refused_at_delivery() {
    let fx = fx("ssrf").await;
    // A real receiver on loopback: only the rules keep the dispatcher from reaching it.
    let (url, rx) = receiver(vec![204]).await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let mut hooks = Vec::new();
    for target in [
        url.clone(),
        // A name that resolves to loopback (as a rebinding name would after creation).
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.255.255.1/x".to_owned(),
    ] {
        let (hook, _) = fx
            .db
            .create_webhook(&fx.admin, &target, &["stream.started"], T0)
            .await
            .unwrap();
        hooks.push((target, hook.id));
    }
    let mut cfg = fast_config();
    cfg.targets = TargetPolicy::default();
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg).unwrap();
    assert!(dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::StreamStarted, "{}".into()));
    for (target, id) in &hooks {
        let d = wait_finished(&fx, id).await;
        assert_eq!(
            (d.state(), d.attempts, d.last_status),
            (DeliveryState::Failed, 1, None),
            "{target}"
        );
        let err = d.last_error.unwrap();
        assert!(
            err.contains("may not target it") || err.contains("metadata"),
            "{target}: {err}"
        );
        assert!(!err.contains("/hook"), "the URL is not echoed: {err}");
    }
    assert!(
        rx.seen.lock().unwrap().is_empty(),
        "a refused target was reached"
    );
    dispatcher.shutdown().await;

    // Allowing private targets never allows the metadata service.
    let (meta, _) = fx
        .db
        .create_webhook(
            &fx.admin,
            "http://[fd00:ec2::254]/latest",
            &["stream.ended"],
            T0,
        )
        .await
        .unwrap();
    let dispatcher = Dispatcher::start(fx.db.clone(), fast_config()).unwrap();
    dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::StreamEnded, "{}".into());
    let d = wait_finished(&fx, &meta.id).await;
    assert_eq!((d.state(), d.attempts), (DeliveryState::Failed, 1));
    assert!(d.last_error.unwrap().contains("metadata"));
    dispatcher.shutdown().await;
}

/// A self-signed CA and a certificate it signs for `localhost` and 127.0.0.1.
fn private_ca() -> (rcgen::Certificate, rustls_server::ServerConfigParts) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Starling test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (
        ca_cert,
        rustls_server::ServerConfigParts {
            cert: leaf.der().clone(),
            key: leaf_key.serialize_der(),
        },
    )
}

mod rustls_server {
    use std::sync::{Arc, Mutex};

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    pub struct ServerConfigParts {
        pub cert: CertificateDer<'static>,
        pub key: Vec<u8>,
    }

    /// A one-purpose HTTPS receiver: reads each request whole, keeps it, answers 204.
    pub async fn start(parts: ServerConfigParts) -> (u16, Arc<Mutex<Vec<String>>>) {
        #[allow(deprecated)] // ring's provider, as the dispatcher uses
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![parts.cert],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(parts.key)),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // A failed handshake (an untrusting client) just ends the connection.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = tls.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                seen.lock().unwrap().push(text.clone());
                                let _ = tls
                                    .write_all(
                                        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                                    )
                                    .await;
                                let _ = tls.shutdown().await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, out)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_delivery_to_a_receiver_signed_by_a_configured_private_ca() {
    let fx = fx("https").await;
    let (ca, server_parts) = private_ca();
    let (port, seen) = rustls_server::start(server_parts).await;
    let (hook, secret) = fx
        .db
        .create_webhook(
            &fx.admin,
            &format!("https://localhost:{port}/hook?k=1"),
            &["stream.started"],
            T0,
        )
        .await
        .unwrap();
    // Without the CA the certificate is not trusted: the attempt fails (and is retried).
    let mut cfg = fast_config();
    cfg.retry.max_attempts = 1;
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg).unwrap();
    dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::StreamStarted, "{}".into());
    let d = wait_finished(&fx, &hook.id).await;
    assert_eq!(d.state(), DeliveryState::Failed);
    let err = d.last_error.unwrap();
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(seen.lock().unwrap().is_empty());
    dispatcher.shutdown().await;

    // With the CA (as `[webhooks] ca_file` gives it): delivered, signed.
    let mut cfg = fast_config();
    cfg.extra_roots = starling_webhooks::parse_ca_pem(ca.pem().as_bytes()).expect("the CA parses");
    let dispatcher = Dispatcher::start(fx.db.clone(), cfg).unwrap();
    let data = r#"{"channel":"tls"}"#;
    dispatcher
        .sender()
        .emit(&fx.admin.org_id, WebhookEvent::StreamStarted, data.into());
    let deadline = Instant::now() + Duration::from_secs(15);
    let delivered = loop {
        let list = fx
            .db
            .list_deliveries(&fx.admin, &hook.id, 10, 0)
            .await
            .unwrap();
        if let Some(d) = list.iter().find(|d| d.state() == DeliveryState::Delivered) {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "not delivered: {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(delivered.last_status, Some(204));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let req = &requests[0];
    assert!(req.starts_with("POST /hook?k=1 HTTP/1.1\r\n"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains(&format!("host: localhost:{port}\r\n")),
        "{req}"
    );
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("starling-signature: "))
        .expect("signed");
    assert!(body.contains(r#""channel":"tls""#), "{body}");
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(verify(
        secret.expose().as_bytes(),
        sig,
        body.as_bytes(),
        now_secs,
        300
    )
    .is_ok());
    dispatcher.shutdown().await;
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    assert!(starling_webhooks::parse_ca_pem(b"not pem at all").is_err());
    assert!(starling_webhooks::parse_ca_pem(b"").is_err());
}
