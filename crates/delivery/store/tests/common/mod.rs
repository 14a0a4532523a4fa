//! What the store tests share: the behaviour every [`ObjectStore`] must have (run
//! against the local directory and against S3) and under the cache, the coalescing
//! check, and (`s3s`) an s3s-fs server on loopback.
#![allow(dead_code, clippy::unwrap_used)]

#[cfg(feature = "s3")]
pub mod s3s;

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use starling_store::{CachedStore, ObjectStore};

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("starling-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The behaviour of the trait, whatever the backend.
pub async fn behaviour(s: &dyn ObjectStore) {
    // Round trip: several parts, one part, an empty object.
    s.put(
        "media/demo/1/source/1.m4s",
        vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cd"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("media/demo/1/source/1.m4s").await.unwrap().unwrap(),
        Bytes::from_static(b"abcd")
    );
    s.put(
        "media/demo/1/source/2.m4s",
        vec![Bytes::from(vec![7u8; 300_000])],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("media/demo/1/source/2.m4s").await.unwrap().unwrap(),
        Bytes::from(vec![7u8; 300_000])
    );
    s.put("media/demo/1/empty", Vec::new()).await.unwrap();
    assert_eq!(
        s.get("media/demo/1/empty").await.unwrap(),
        Some(Bytes::new())
    );
    // Replacing.
    s.put(
        "media/demo/1/source/1.m4s",
        vec![Bytes::from_static(b"new")],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("media/demo/1/source/1.m4s").await.unwrap().unwrap(),
        Bytes::from_static(b"new")
    );
    // Missing, and keys that would leave the root.
    assert_eq!(s.get("media/demo/1/source/9.m4s").await.unwrap(), None);
    assert_eq!(s.get("nothing/here").await.unwrap(), None);
    for bad in ["../x", "/abs", "a//b", "a b"] {
        assert!(s.get(bad).await.is_err(), "{bad}");
        assert!(s.put(bad, Vec::new()).await.is_err(), "{bad}");
        assert!(s.delete(bad).await.is_err(), "{bad}");
    }

    // Children: objects and deeper prefixes, names relative to `prefix/`, sorted.
    s.put("media/demo/2/source/1.m4s", vec![Bytes::from_static(b"x")])
        .await
        .unwrap();
    s.put("media/demo/2/run", vec![Bytes::from_static(b"r")])
        .await
        .unwrap();
    s.put("media/other/5/a", vec![Bytes::from_static(b"o")])
        .await
        .unwrap();
    assert_eq!(
        s.children("media/demo", 100).await.unwrap(),
        vec!["1".to_owned(), "2".to_owned()]
    );
    assert_eq!(
        s.children("media/demo/1", 100).await.unwrap(),
        vec!["empty".to_owned(), "source".to_owned()]
    );
    assert_eq!(
        s.children("media/demo/2", 100).await.unwrap(),
        vec!["run".to_owned(), "source".to_owned()]
    );
    assert_eq!(
        s.children("media", 100).await.unwrap(),
        vec!["demo".to_owned(), "other".to_owned()]
    );
    assert_eq!(s.children("media/demo", 1).await.unwrap().len(), 1);
    assert!(s.children("media/none", 100).await.unwrap().is_empty());
    // `media/de` is not a prefix of `media/demo/…` in the trait's sense.
    assert!(s.children("media/de", 100).await.unwrap().is_empty());

    // Delete: idempotent.
    s.delete("media/demo/1/source/2.m4s").await.unwrap();
    s.delete("media/demo/1/source/2.m4s").await.unwrap();
    s.delete("never/was").await.unwrap();
    assert_eq!(s.get("media/demo/1/source/2.m4s").await.unwrap(), None);

    // Delete a prefix: everything below it, nothing beside it.
    s.delete_prefix("media/demo").await.unwrap();
    s.delete_prefix("media/demo").await.unwrap();
    assert_eq!(s.get("media/demo/2/run").await.unwrap(), None);
    assert_eq!(s.get("media/demo/1/empty").await.unwrap(), None);
    assert!(s.children("media/demo", 100).await.unwrap().is_empty());
    assert_eq!(
        s.get("media/other/5/a").await.unwrap().unwrap(),
        Bytes::from_static(b"o")
    );
    assert_eq!(
        s.children("media", 100).await.unwrap(),
        vec!["other".to_owned()]
    );
    s.delete_prefix("media").await.unwrap();
}

/// 50 concurrent gets → one backend read; later gets hit the cache; a put invalidates.
pub async fn coalescing<S: ObjectStore>(store: Arc<CachedStore<S>>) {
    let seg = Bytes::from(vec![5u8; 200_000]);
    store.put("dvr/1.m4s", vec![seg.clone()]).await.unwrap();
    let gets: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.get("dvr/1.m4s").await })
        })
        .collect();
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap().unwrap(), seg);
    }
    let st = store.stats();
    assert_eq!(st.backend_reads, 1, "{st:?}");
    assert_eq!(st.hits + st.coalesced, 49, "{st:?}");
    store.get("dvr/1.m4s").await.unwrap();
    assert_eq!(store.stats().backend_reads, 1);
    // A put replaces what readers get.
    store
        .put("dvr/1.m4s", vec![Bytes::from_static(b"v2")])
        .await
        .unwrap();
    assert_eq!(
        store.get("dvr/1.m4s").await.unwrap().unwrap(),
        Bytes::from_static(b"v2")
    );
    assert_eq!(store.stats().backend_reads, 2);
    store.delete("dvr/1.m4s").await.unwrap();
    assert_eq!(store.get("dvr/1.m4s").await.unwrap(), None);
    // Absence is not cached.
    assert_eq!(store.stats().backend_reads, 3);
    assert_eq!(store.stats().cached_objects, 0);
}
