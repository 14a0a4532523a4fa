//! S3Store against a real S3-compatible server (s3s-fs, started by each test on a
//! loopback port with a temporary root).
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use common::{
    behaviour,
    s3s::{S3sFs, ACCESS_KEY, BUCKET},
};
use starling_store::{CachedStore, ObjectStore, S3Credentials, S3Store, StoreError};

#[tokio::test]
async fn behaves_like_a_store() {
    let Some(server) = S3sFs::start("behaviour") else {
        return;
    };
    let store = server.store();
    store.check().await.unwrap();
    behaviour(&store).await;
    // Some sixty requests, one at a time: one keep-alive connection carried them all.
    assert_eq!(store.connections_opened(), 1);
    // With a key prefix, everything lands below it and the behaviour is the same.
    let mut config = server.config();
    config.prefix = "node-a/".into();
    let prefixed = S3Store::new(config).unwrap();
    behaviour(&prefixed).await;
    prefixed
        .put("media/x/1", vec![Bytes::from_static(b"p")])
        .await
        .unwrap();
    assert!(server.root.join(BUCKET).join("node-a/media/x/1").is_file());
    assert_eq!(store.children("node-a", 10).await.unwrap(), vec!["media"]);
    // And through the cache layer.
    behaviour(&CachedStore::new(server.store(), 1 << 20)).await;
}

#[tokio::test]
async fn lists_across_pages_and_stops_at_the_limit() {
    let Some(server) = S3sFs::start("pages") else {
        return;
    };
    let mut config = server.config();
    config.list_page_size = 3;
    let store = S3Store::new(config).unwrap();
    // Ten objects and four deeper prefixes below `ch`: five pages of three.
    for i in 0..10 {
        store
            .put(&format!("ch/{i:02}.m4s"), vec![Bytes::from_static(b"s")])
            .await
            .unwrap();
    }
    for p in ["a", "b", "c", "d"] {
        store
            .put(&format!("ch/{p}/x/1"), vec![Bytes::from_static(b"n")])
            .await
            .unwrap();
    }
    let all = store.children("ch", 1000).await.unwrap();
    let mut want: Vec<String> = (0..10).map(|i| format!("{i:02}.m4s")).collect();
    want.extend(["a", "b", "c", "d"].map(String::from));
    want.sort();
    assert_eq!(all, want);
    assert_eq!(store.children("ch", 5).await.unwrap().len(), 5);
    assert_eq!(store.children("ch", 3).await.unwrap().len(), 3);
    // delete_prefix pages too.
    store.delete_prefix("ch").await.unwrap();
    assert!(store.children("ch", 1000).await.unwrap().is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_status_error() {
    let Some(server) = S3sFs::start("creds") else {
        return;
    };
    let mut config = server.config();
    config.credentials = S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: "not-the-secret".into(),
        session_token: None,
    };
    let store = S3Store::new(config).unwrap();
    let err = store.check().await.unwrap_err();
    let StoreError::Status { status, code, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 403, "{err}");
    assert_eq!(code, "SignatureDoesNotMatch", "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    let err = store.get("a/b").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Status { status: 403, .. }),
        "{err}"
    );

    // A bucket that is not there is an error, not a missing object.
    let mut config = server.config();
    config.bucket = "no-such-bucket".into();
    let store = S3Store::new(config).unwrap();
    let err = store.check().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Status { status: 404, code, .. } if code == "NoSuchBucket"),
        "{err}"
    );
    // (A GetObject in it is s3s-fs's NoSuchKey where AWS says NoSuchBucket: the check
    // at start-up is what catches a wrong bucket.)
}

#[tokio::test]
async fn a_dead_server_is_a_transport_error_not_a_hang() {
    let Some(mut server) = S3sFs::start("dead") else {
        return;
    };
    let mut config = server.config();
    config.request_timeout = Duration::from_secs(5);
    let store = S3Store::new(config).unwrap();
    // A connection in the pool first, so that the kill also breaks a reused one.
    store
        .put("k/1", vec![Bytes::from_static(b"1")])
        .await
        .unwrap();
    server.kill();
    let started = std::time::Instant::now();
    for r in [
        store.get("k/1").await.map(|_| ()),
        store.put("k/2", vec![Bytes::from_static(b"2")]).await,
        store.children("k", 10).await.map(|_| ()),
    ] {
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Transport { .. } | StoreError::Timeout { .. }
            ),
            "{err:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(16));
    let err = store.get("k/1").await.unwrap_err();
    assert!(err.to_string().contains("connecting to"), "{err}");
}

#[tokio::test]
async fn a_get_past_the_bound_is_refused() {
    let Some(server) = S3sFs::start("bound") else {
        return;
    };
    let mut config = server.config();
    config.max_object_bytes = 1000;
    let store = S3Store::new(config).unwrap();
    store
        .put("big", vec![Bytes::from(vec![0u8; 1001])])
        .await
        .unwrap();
    let err = store.get("big").await.unwrap_err();
    assert!(matches!(err, StoreError::BadResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("1001"), "{err}");
    store
        .put("fits", vec![Bytes::from(vec![0u8; 1000])])
        .await
        .unwrap();
    assert_eq!(store.get("fits").await.unwrap().unwrap().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_one_key_read_the_bucket_once() {
    let Some(server) = S3sFs::start("coalesce") else {
        return;
    };
    let store = Arc::new(CachedStore::new(server.store(), 256 << 20));
    common::coalescing(store).await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // The kernel accepts the connection into the backlog; nobody ever reads it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = starling_store::S3Config::new(
        format!("http://{}", silent.local_addr().unwrap()),
        BUCKET,
        S3Credentials::from_vars(|n| Some(n.to_owned())).unwrap(),
    );
    config.request_timeout = Duration::from_millis(500);
    let store = S3Store::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = store.get("a/b").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_a_bounded_pool() {
    let Some(server) = S3sFs::start("pool") else {
        return;
    };
    let store = Arc::new(server.store());
    let writes: Vec<_> = (0..24)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let key = format!("ch/{i}.m4s");
                s.put(&key, vec![Bytes::from(vec![i as u8; 50_000])])
                    .await
                    .unwrap();
                assert_eq!(s.get(&key).await.unwrap().unwrap().len(), 50_000);
            })
        })
        .collect();
    for w in writes {
        w.await.unwrap();
    }
    let opened = store.connections_opened();
    assert!((1..=24).contains(&opened), "{opened}");
    // One at a time afterwards: the idle connections carry them, none is opened.
    for i in 0..24 {
        store.delete(&format!("ch/{i}.m4s")).await.unwrap();
    }
    assert_eq!(store.connections_opened(), opened);
    assert!(store.children("ch", 100).await.unwrap().is_empty());
}
