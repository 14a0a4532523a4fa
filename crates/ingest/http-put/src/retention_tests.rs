use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64},
        Mutex,
    },
};

use bytes::Bytes;
use starling_store::{BoxFuture, ObjectStore};

use super::*;
use crate::PushConfig;

/// A store in memory whose deletes fail while `fail_deletes` is set.
#[derive(Default)]
struct MemStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
    fail_deletes: AtomicBool,
    deletes: AtomicU64,
}

impl MemStore {
    fn keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }
    fn has(&self, key: &str) -> bool {
        lock(&self.objects).contains_key(key)
    }
}

impl ObjectStore for MemStore {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        lock(&self.objects).insert(key.to_owned(), parts.concat().into());
        Box::pin(async { Ok(()) })
    }
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let v = lock(&self.objects).get(key).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let r = if self.fail_deletes.load(Ordering::SeqCst) {
            Err(StoreError::Config("the bucket is down".into()))
        } else {
            self.deletes.fetch_add(1, Ordering::SeqCst);
            lock(&self.objects).remove(key);
            Ok(())
        };
        Box::pin(async move { r })
    }
    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let p = format!("{prefix}/");
        let mut names: Vec<String> = lock(&self.objects)
            .keys()
            .filter_map(|k| k.strip_prefix(&p))
            .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
            .collect();
        names.dedup();
        names.truncate(limit);
        Box::pin(async move { Ok(names) })
    }
    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let p = format!("{prefix}/");
        lock(&self.objects).retain(|k, _| !k.starts_with(&p));
        Box::pin(async { Ok(()) })
    }
}

fn boxed(kind: &[u8; 4], payload_len: usize) -> Vec<u8> {
    let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.resize(payload_len + 8, 0);
    v
}

fn segment() -> Bytes {
    [boxed(b"moof", 16), boxed(b"mdat", 32)].concat().into()
}

fn init() -> Bytes {
    [boxed(b"ftyp", 8), boxed(b"moov", 40)].concat().into()
}

fn p(s: &str) -> PushPath {
    PushPath::parse(s).unwrap()
}

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n\
    #EXTINF:1,\nv0/seg2.m4s\n#EXTINF:1,\nv0/seg3.m4s\n";

/// A channel `news` with an init section, segments 1 to 3 (the playlist names 2 and 3),
/// and, as if left by a previous process, segment 0; beside it, keys of other channels
/// and prefixes that the sweep of `news` must not touch.
async fn pushed(retention: Duration) -> (Arc<PushIngest>, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    for key in [
        "pushed/news/v0/seg0.m4s",
        "pushed/newsroom/v0/seg1.m4s",
        "media/news/v0/seg1.m4s",
        "pushed2/news/v0/seg1.m4s",
    ] {
        store.put(key, vec![segment()]).await.unwrap();
    }
    let config = PushConfig {
        retention: Some(retention),
        reference_wait: Duration::from_millis(10),
        ..PushConfig::default()
    };
    let ing = PushIngest::new(config, store.clone());
    ing.put("news", &p("init.mp4"), init()).await.unwrap();
    for n in 1..=3 {
        let path = p(&format!("v0/seg{n}.m4s"));
        ing.put("news", &path, segment()).await.unwrap();
    }
    ing.put(
        "news",
        &p("index.m3u8"),
        Bytes::from_static(PLAYLIST.as_bytes()),
    )
    .await
    .unwrap();
    ing.flushed().await;
    (ing, store)
}

const UNTOUCHED: [&str; 3] = [
    "pushed/newsroom/v0/seg1.m4s",
    "media/news/v0/seg1.m4s",
    "pushed2/news/v0/seg1.m4s",
];

#[tokio::test]
async fn old_objects_go_but_those_the_playlist_names_stay() {
    let (ing, store) = pushed(Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Everything is past retention; the channel is live.
    let report = ing.sweep(SystemTime::now()).await;
    assert_eq!(
        report,
        SweepReport {
            channels: 1,
            deleted: 2,
            failed: 0,
            kept_named: 4
        }
    );
    // Segment 1 (no longer named) and 0 (from before start-up) are gone, from the store
    // and from memory.
    assert!(!store.has("pushed/news/v0/seg1.m4s"));
    assert!(!store.has("pushed/news/v0/seg0.m4s"));
    assert_eq!(ing.get("news", "v0/seg1.m4s").await, None);
    assert!(!lock(&ing.channels).windows["news"]
        .objects
        .contains_key("v0/seg1.m4s"));
    // The playlist and what it names stay.
    for kept in ["index.m3u8", "init.mp4", "v0/seg2.m4s", "v0/seg3.m4s"] {
        assert!(store.has(&format!("pushed/news/{kept}")), "{kept}");
        assert!(ing.get("news", kept).await.is_some(), "{kept}");
    }
    for key in UNTOUCHED {
        assert!(store.has(key), "{key}");
    }
    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("starling_put_retention_deleted_total 2\n"),
        "{m}"
    );
    assert!(
        m.contains("starling_put_retention_failures_total 0\n"),
        "{m}"
    );
}

#[tokio::test]
async fn once_the_channel_is_not_live_its_playlists_go_too() {
    let (ing, store) = pushed(Duration::from_secs(3600)).await;
    // Fresh objects stay.
    let report = ing.sweep(SystemTime::now()).await;
    assert_eq!((report.deleted, report.failed), (0, 0));
    assert_eq!(store.keys().len(), 9);
    // Two hours later (a fake clock): all of `news` has expired and it is not live.
    let later = SystemTime::now() + Duration::from_secs(7200);
    let report = ing.sweep(later).await;
    assert_eq!(
        (report.deleted, report.failed, report.kept_named),
        (6, 0, 0)
    );
    let mut left = store.keys();
    left.sort();
    let mut want = UNTOUCHED.map(str::to_owned).to_vec();
    want.sort();
    assert_eq!(left, want, "nothing outside pushed/news/ is touched");
    assert!(lock(&ing.channels).windows["news"].objects.is_empty());
    assert_eq!(ing.get("news", "index.m3u8").await, None);
}

#[tokio::test]
async fn a_failed_delete_is_counted_and_tried_again_by_the_next_sweep() {
    let (ing, store) = pushed(Duration::from_secs(3600)).await;
    let later = SystemTime::now() + Duration::from_secs(7200);
    store.fail_deletes.store(true, Ordering::SeqCst);
    let report = ing.sweep(later).await;
    assert_eq!((report.deleted, report.failed), (0, 6));
    assert_eq!(store.keys().len(), 9, "nothing went");
    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("starling_put_retention_failures_total 6\n"),
        "{m}"
    );
    assert!(
        m.contains("starling_put_store_failures_total 0\n"),
        "not a write-through failure"
    );
    // The store is back: the next sweep deletes them, though they left memory already.
    store.fail_deletes.store(false, Ordering::SeqCst);
    let report = ing.sweep(later + SWEEP_EVERY).await;
    assert_eq!((report.deleted, report.failed), (6, 0));
    assert_eq!(store.keys().len(), 3);
}

#[tokio::test]
async fn objects_pushed_again_are_young_again() {
    let (ing, store) = pushed(Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ing.put("news", &p("v0/seg1.m4s"), segment()).await.unwrap();
    let report = ing.sweep(SystemTime::now()).await;
    assert_eq!(report.deleted, 1, "only seg0");
    assert!(store.has("pushed/news/v0/seg1.m4s"));
}

#[tokio::test]
async fn a_restarted_process_counts_old_objects_from_its_start() {
    let (ing, store) = pushed(Duration::from_secs(3600)).await;
    drop(ing);
    let config = PushConfig {
        retention: Some(Duration::from_secs(3600)),
        ..PushConfig::default()
    };
    let ing = PushIngest::new(config, store.clone());
    ing.discover().await.unwrap();
    // Within an hour of the restart nothing goes; after it, all of it (nothing is in
    // memory, so no playlist protects anything).
    let report = ing
        .sweep(SystemTime::now() + Duration::from_secs(1800))
        .await;
    assert_eq!((report.channels, report.deleted), (2, 0));
    let report = ing
        .sweep(SystemTime::now() + Duration::from_secs(7200))
        .await;
    assert_eq!(report.deleted, 7, "news (6) and newsroom (1)");
    assert_eq!(store.keys().len(), 2);
}

#[tokio::test]
async fn no_retention_sweeps_nothing() {
    let store = Arc::new(MemStore::default());
    let config = PushConfig {
        retention: None,
        ..PushConfig::default()
    };
    let ing = PushIngest::new(config, store.clone());
    ing.put("news", &p("v0/seg1.m4s"), segment()).await.unwrap();
    ing.flushed().await;
    assert!(ing.start_retention().is_none());
    let report = ing
        .sweep(SystemTime::now() + Duration::from_secs(10 * 365 * 86_400))
        .await;
    assert_eq!(report, SweepReport::default());
    assert!(store.has("pushed/news/v0/seg1.m4s"));
    assert!(lock(&ing.channels).ages.is_empty(), "nothing recorded");
}

#[test]
fn ages_keep_runs_of_numbers_not_names() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000);
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut a = Ages::new(t0);
    // Two-second segments for five minutes: 150 names, five runs of a minute.
    for k in 0..150u64 {
        a.record(&p(&format!("v0/index{}.m4s", 1_765_000_000 + k)), at(2 * k));
    }
    let runs = &a.series.values().next().unwrap();
    assert_eq!(runs.len(), 5);
    assert!(a.named.is_empty());
    // An object's age is never younger than true, and at most a run's span older.
    for k in [0u64, 29, 30, 149] {
        let t = a.pushed_at(&p(&format!("v0/index{}.m4s", 1_765_000_000 + k)));
        assert!(t >= at(2 * k) && t < at(2 * k) + RUN_SPAN, "{k}");
    }
    // A packager restarted without epoch numbering starts again at 0: a new run; the
    // newest PUT of a number counts.
    a.record(&p("v0/index5.m4s"), at(1000));
    a.record(&p("v0/index6.m4s"), at(1002));
    assert_eq!(a.pushed_at(&p("v0/index6.m4s")), at(1002));
    // Unknown names: the process start; names of no series one by one.
    assert_eq!(a.pushed_at(&p("v1/index7.m4s")), t0);
    a.record(&p("init.mp4"), at(5));
    a.record(&p("index.m3u8"), at(7));
    a.record(&p("index.m3u8"), at(9));
    assert_eq!(a.pushed_at(&p("index.m3u8")), at(9));
    assert_eq!(a.pushed_at(&p("init.mp4")), at(5));
    // Pruning drops runs wholly before the cutoff.
    a.prune(at(200));
    assert_eq!(a.series.values().next().unwrap().len(), 3);
    assert_eq!(a.last_put, Some(at(1002)));
}
