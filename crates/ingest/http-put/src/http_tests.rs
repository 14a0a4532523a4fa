use std::sync::atomic::{AtomicUsize, Ordering};

use starling_ingest_auth::{BoxFuture, PlayGrant};

use super::*;

/// "k-news" publishes to news, "k-down" finds the authoriser down, anything else is
/// unknown. Counts grants given and handed back.
#[derive(Default)]
struct Counting {
    asked: AtomicUsize,
    ended: AtomicUsize,
}

impl Authorizer for Counting {
    fn authorize_publish<'a>(
        &'a self,
        app: &'a str,
        key: &'a str,
        _: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        Box::pin(async move {
            assert_eq!(app, "live");
            match key {
                "k-news" => {
                    self.asked.fetch_add(1, Ordering::SeqCst);
                    Ok(PublishGrant {
                        channel: "news".into(),
                        takeover: false,
                        key_id: Some("key-1".into()),
                        srt_passphrase: None,
                    })
                }
                "k-down" => Err(AuthError::Unavailable("database".into())),
                _ => Err(AuthError::UnknownKey),
            }
        })
    }

    fn publish_ended(&self, _: &PublishGrant) {
        self.ended.fetch_add(1, Ordering::SeqCst);
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

fn gate(auth: &Arc<Counting>, ttl: Duration) -> Arc<AuthGate> {
    Arc::new(AuthGate {
        auth: auth.clone(),
        ttl,
        verdicts: Mutex::new(HashMap::new()),
        sweeper: Once::new(),
    })
}

fn with_key(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    h
}

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

#[test]
fn bearer_keys() {
    assert_eq!(bearer(&with_key("Bearer k-news")), Some("k-news"));
    assert_eq!(bearer(&with_key("bearer   k-news ")), Some("k-news"));
    assert_eq!(bearer(&with_key("Basic azpr")), None);
    assert_eq!(bearer(&with_key("Bearer ")), None);
    assert_eq!(bearer(&with_key("Bearer")), None);
    assert_eq!(bearer(&HeaderMap::new()), None);
}

#[tokio::test]
async fn verdicts_are_reused_briefly_and_grants_handed_back() {
    let auth = Arc::new(Counting::default());
    let g = gate(&auth, Duration::from_millis(100));
    for _ in 0..5 {
        g.check("news", &with_key("Bearer k-news"), PEER)
            .await
            .unwrap();
    }
    assert_eq!(
        auth.asked.load(Ordering::SeqCst),
        1,
        "one lookup within the TTL"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    g.check("news", &with_key("Bearer k-news"), PEER)
        .await
        .unwrap();
    assert_eq!(
        auth.asked.load(Ordering::SeqCst),
        2,
        "looked up again after the TTL"
    );
    assert_eq!(
        auth.ended.load(Ordering::SeqCst),
        1,
        "the replaced grant was handed back"
    );

    // The same key on another channel: granted for news, so refused and handed back.
    assert!(matches!(
        g.check("sports", &with_key("Bearer k-news"), PEER).await,
        Err(Denied::OtherChannel)
    ));
    assert_eq!(auth.ended.load(Ordering::SeqCst), 2);

    // Quiet for the live window: the held grant goes back too.
    g.sweep(Instant::now());
    assert_eq!(auth.ended.load(Ordering::SeqCst), 2, "not quiet yet");
    g.sweep(Instant::now() + LIVE_WINDOW);
    assert_eq!(auth.ended.load(Ordering::SeqCst), 3);
    assert_eq!(
        auth.asked.load(Ordering::SeqCst),
        3,
        "every grant given was handed back"
    );
    assert!(lock(&g.verdicts).is_empty());
}

#[tokio::test]
async fn refusals_are_not_cached_and_end_a_held_grant() {
    let auth = Arc::new(Counting::default());
    let g = gate(&auth, Duration::from_secs(2));
    assert!(matches!(
        g.check("news", &HeaderMap::new(), PEER).await,
        Err(Denied::NoKey)
    ));
    assert!(matches!(
        g.check("news", &with_key("Bearer ../k"), PEER).await,
        Err(Denied::Refused(AuthError::MalformedKey(_)))
    ));
    assert!(matches!(
        g.check("news", &with_key("Bearer nope"), PEER).await,
        Err(Denied::Refused(AuthError::UnknownKey))
    ));
    assert!(matches!(
        g.check("news", &with_key("Bearer k-down"), PEER).await,
        Err(Denied::Unavailable)
    ));
    // As a double-quoted `-headers "...\r\n"` sends it.
    assert!(matches!(
        g.check("news", &with_key("Bearer k-news\\r\\n"), PEER)
            .await,
        Err(Denied::LiteralCrlf)
    ));
    assert!(lock(&g.verdicts).is_empty());

    g.check("news", &with_key("Bearer k-news"), PEER)
        .await
        .unwrap();
    drop(g);
    assert_eq!(
        auth.ended.load(Ordering::SeqCst),
        1,
        "dropping the routes hands grants back"
    );
}

#[test]
fn nothing_prints_a_key() {
    let auth = Arc::new(Counting::default());
    let g = gate(&auth, Duration::from_secs(2));
    let now = Instant::now();
    lock(&g.verdicts).insert(
        ("news".into(), "k-secret".into()),
        Verdict {
            grant: PublishGrant {
                channel: "news".into(),
                takeover: false,
                key_id: None,
                srt_passphrase: None,
            },
            checked: now,
            used: now,
        },
    );
    assert!(!format!("{g:?}").contains("k-secret"));
    let refused = Denied::Refused(AuthError::UnknownKey);
    assert!(!refused.log_reason().contains("k-"));
}
