use std::path::PathBuf;

use starling_store::LocalDirStore;

use super::*;

fn boxed(kind: &[u8; 4], payload_len: usize) -> Vec<u8> {
    let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.resize(payload_len + 8, 0);
    v
}

/// A media segment of about `len` bytes (moof + mdat).
fn segment(len: usize) -> Bytes {
    [boxed(b"moof", 16), boxed(b"mdat", len.saturating_sub(32))]
        .concat()
        .into()
}

fn init() -> Bytes {
    [boxed(b"ftyp", 8), boxed(b"moov", 40)].concat().into()
}

fn ts() -> Bytes {
    let mut v = vec![0u8; 188 * 2];
    v[0] = 0x47;
    v[188] = 0x47;
    v.into()
}

fn p(path: &str) -> PushPath {
    PushPath::parse(path).unwrap()
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("starling-put-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }
    fn file(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(key)).ok()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ingest(dir: &Dir, config: PushConfig) -> Arc<PushIngest> {
    PushIngest::new(config, Arc::new(LocalDirStore::new(&dir.0)))
}

/// Refuses a playlist naming what is missing at once, not after the default 2 s.
fn quick() -> PushConfig {
    PushConfig {
        reference_wait: Duration::from_millis(10),
        ..PushConfig::default()
    }
}

fn playlist(lines: &[&str]) -> Bytes {
    let mut s = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n".to_owned();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.into()
}

#[tokio::test]
async fn objects_are_served_from_memory_and_written_through() {
    let dir = Dir::new("through");
    let ing = ingest(&dir, PushConfig::default());
    assert_eq!(
        ing.put("news", &p("init.mp4"), init()).await,
        Ok(Stored::New)
    );
    assert_eq!(
        ing.put("news", &p("a/1.m4a"), segment(100)).await,
        Ok(Stored::New)
    );
    assert_eq!(ing.put("news", &p("1.ts"), ts()).await, Ok(Stored::New));
    let pl = playlist(&["#EXT-X-MAP:URI=\"init.mp4\"", "#EXTINF:1,", "1.ts"]);
    assert_eq!(
        ing.put("news", &p("index.m3u8"), pl.clone()).await,
        Ok(Stored::New)
    );
    assert_eq!(
        ing.put("news", &p("index.m3u8"), pl.clone()).await,
        Ok(Stored::Replaced)
    );

    let got = ing.get("news", "index.m3u8").await.unwrap();
    assert_eq!(
        (got.body, got.content_type, got.cache_control),
        (
            pl.clone(),
            "application/vnd.apple.mpegurl",
            "public, max-age=1"
        )
    );
    let got = ing.get("news", "a/1.m4a").await.unwrap();
    assert_eq!(
        (got.content_type, got.cache_control),
        ("audio/mp4", "public, max-age=60")
    );
    assert_eq!(
        ing.get("news", "1.ts").await.unwrap().content_type,
        "video/mp2t"
    );
    assert_eq!(
        ing.get("news", "init.mp4").await.unwrap().content_type,
        "video/mp4"
    );
    for (ch, path) in [
        ("news", "2.ts"),
        ("other", "1.ts"),
        ("news", "../x.ts"),
        ("bad/ch", "1.ts"),
    ] {
        assert!(ing.get(ch, path).await.is_none(), "{ch} {path}");
    }

    ing.flushed().await;
    assert_eq!(dir.file("pushed/news/index.m3u8").unwrap(), pl);
    assert_eq!(dir.file("pushed/news/a/1.m4a").unwrap(), segment(100));
    let live = ing.live_channels();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].channel, "news");
    assert!(live[0].since <= std::time::SystemTime::now());

    let mut m = String::new();
    ing.render_metrics(&mut m);
    assert!(
        m.contains("starling_put_requests_total{result=\"stored\"} 5\n"),
        "{m}"
    );
    assert!(
        m.contains("starling_put_requests_total{result=\"deleted\"} 0\n"),
        "{m}"
    );
    assert!(m.contains("starling_put_store_failures_total 0\n"), "{m}");
    assert!(
        m.contains("# TYPE starling_put_bytes_total counter\n"),
        "{m}"
    );
}

#[tokio::test]
async fn refused_objects_leave_no_trace() {
    let dir = Dir::new("refused");
    let ing = ingest(
        &dir,
        PushConfig {
            reference_wait: Duration::from_millis(10),
            ..PushConfig::default()
        },
    );
    let pl = playlist(&["#EXTINF:1,", "seg7.m4s"]);
    assert_eq!(
        ing.put("news", &p("index.m3u8"), pl.clone())
            .await
            .unwrap_err()
            .to_string(),
        "playlist references 'seg7.m4s', which was never uploaded"
    );
    let e = ing
        .put(
            "news",
            &p("seg7.m4s"),
            Bytes::from_static(b"<html>oops</html>"),
        )
        .await;
    assert!(matches!(e, Err(PutError::NotCmaf(_))), "{e:?}");
    assert!(matches!(
        ing.put("news", &p("seg7.ts"), segment(188)).await,
        Err(PutError::NotTs(_))
    ));
    let big = PushConfig {
        max_media_bytes: 100,
        ..PushConfig::default()
    };
    let small = ingest(&dir, big);
    assert!(matches!(
        small.put("news", &p("1.m4s"), segment(200)).await,
        Err(PutError::TooLarge { .. })
    ));
    assert!(matches!(
        ing.put("a.b", &p("1.m4s"), segment(200)).await,
        Err(PutError::Channel(_))
    ));
    ing.flushed().await;
    small.flushed().await;
    assert!(!dir.0.exists(), "nothing written");
    assert!(ing.get("news", "seg7.m4s").await.is_none());
    assert!(ing.live_channels().is_empty());

    // Once the segment is there, the same playlist is taken.
    ing.put("news", &p("seg7.m4s"), segment(64)).await.unwrap();
    ing.put("news", &p("index.m3u8"), pl).await.unwrap();
    let mut m = String::new();
    ing.render_metrics(&mut m);
    for line in [
        "result=\"refused_body\"} 2",
        "result=\"missing_reference\"} 1",
        "result=\"refused_path\"} 1",
        "result=\"stored\"} 2",
    ] {
        assert!(m.contains(line), "{line} in {m}");
    }
}

#[tokio::test]
async fn memory_is_bounded_and_evicted_objects_come_from_the_store() {
    let dir = Dir::new("evict");
    let config = PushConfig {
        max_channel_bytes: 1000,
        max_channels: 2,
        ..PushConfig::default()
    };
    let ing = ingest(&dir, config);
    ing.put("news", &p("1.m4s"), segment(400)).await.unwrap();
    ing.put("news", &p("index.m3u8"), playlist(&["1.m4s"]))
        .await
        .unwrap();
    ing.put("news", &p("2.m4s"), segment(400)).await.unwrap();
    ing.put("news", &p("3.m4s"), segment(400)).await.unwrap();
    {
        let chs = lock(&ing.channels);
        let w = &chs.windows["news"];
        let mut held: Vec<&String> = w.objects.keys().collect();
        held.sort();
        // The oldest media went first; the older playlist stayed.
        assert_eq!(held, ["2.m4s", "3.m4s", "index.m3u8"]);
        assert!(w.bytes <= 1000);
    }
    ing.flushed().await;
    assert_eq!(
        ing.get("news", "1.m4s").await.unwrap().body,
        segment(400),
        "from the store"
    );
    // A playlist naming an evicted segment is still taken: it was uploaded.
    ing.put("news", &p("index.m3u8"), playlist(&["1.m4s", "3.m4s"]))
        .await
        .unwrap();

    // One object over the channel's limit is kept alone.
    ing.put("news", &p("big.m4s"), segment(1500)).await.unwrap();
    assert_eq!(lock(&ing.channels).windows["news"].objects.len(), 1);

    // A third channel pushes out the one pushed to longest ago.
    ing.put("sports", &p("1.m4s"), segment(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    ing.put("news", &p("4.m4s"), segment(100)).await.unwrap();
    ing.put("music", &p("1.m4s"), segment(100)).await.unwrap();
    let mut chans: Vec<String> = lock(&ing.channels).windows.keys().cloned().collect();
    chans.sort();
    assert_eq!(chans, ["music", "news"]);
    ing.flushed().await;
    assert!(ing.get("sports", "1.m4s").await.is_some(), "from the store");
}

#[tokio::test]
async fn deleted_objects_are_gone_at_once_and_from_the_store() {
    let dir = Dir::new("delete");
    let ing = ingest(&dir, quick());
    ing.put("news", &p("1.m4s"), segment(100)).await.unwrap();
    ing.put("news", &p("2.m4s"), segment(100)).await.unwrap();
    ing.flushed().await;
    ing.put("news", &p("2.m4s"), segment(120)).await.unwrap();
    // Right behind its own PUT, before the store has it.
    ing.delete("news", &p("1.m4s")).unwrap();
    ing.delete("news", &p("2.m4s")).unwrap();
    assert!(ing.get("news", "1.m4s").await.is_none());
    assert!(
        ing.get("news", "2.m4s").await.is_none(),
        "not read back from the store while deleting"
    );
    let refused = ing
        .put("news", &p("index.m3u8"), playlist(&["2.m4s"]))
        .await;
    assert_eq!(refused, Err(PutError::MissingReference("2.m4s".into())));
    ing.flushed().await;
    assert!(dir.file("pushed/news/1.m4s").is_none());
    assert!(dir.file("pushed/news/2.m4s").is_none());
    ing.delete("news", &p("never.m4s")).unwrap();
    ing.flushed().await;
}

#[tokio::test]
async fn references_uploaded_before_a_restart_are_found_in_the_store() {
    let dir = Dir::new("restart");
    let first = ingest(&dir, PushConfig::default());
    first
        .put("news", &p("v/1.m4s"), segment(100))
        .await
        .unwrap();
    first.put("news", &p("v/init.mp4"), init()).await.unwrap();
    first.flushed().await;
    let second = ingest(&dir, quick());
    let pl = playlist(&["#EXT-X-MAP:URI=\"init.mp4\"", "1.m4s"]);
    second
        .put("news", &p("v/index.m3u8"), pl.clone())
        .await
        .unwrap();
    assert!(second.get("news", "v/1.m4s").await.is_some());
    let missing = playlist(&["1.m4s", "2.m4s"]);
    assert_eq!(
        second.put("news", &p("v/index.m3u8"), missing).await,
        Err(PutError::MissingReference("v/2.m4s".into()))
    );
}

#[tokio::test]
async fn channels_pushed_before_a_restart_are_known_once_the_store_is_listed() {
    let dir = Dir::new("discover");
    let first = ingest(&dir, PushConfig::default());
    let pl = playlist(&["#EXT-X-MAP:URI=\"init.mp4\"", "1.m4s"]);
    first
        .put("news", &p("v/1.m4s"), segment(100))
        .await
        .unwrap();
    first.put("news", &p("v/init.mp4"), init()).await.unwrap();
    first
        .put("news", &p("v/index.m3u8"), pl.clone())
        .await
        .unwrap();
    first.flushed().await;
    // A new process: nothing in memory, and nobody pushes.
    let second = ingest(&dir, PushConfig::default());
    assert!(!second.knows("news"));
    assert_eq!(second.discover().await.unwrap(), 1);
    assert!(second.knows("news"));
    assert!(!second.knows("sport"));
    assert_eq!(second.get("news", "v/index.m3u8").await.unwrap().body, pl);
    assert_eq!(
        second.get("news", "v/1.m4s").await.unwrap().body,
        segment(100)
    );
    // An empty store: nothing to learn.
    let empty = ingest(&Dir::new("discover-empty"), PushConfig::default());
    assert_eq!(empty.discover().await.unwrap(), 0);
}

#[tokio::test]
async fn a_playlist_waits_briefly_for_what_it_names() {
    let dir = Dir::new("wait");
    let ing = ingest(&dir, PushConfig::default());

    // The playlist is read a moment before the segment it names: it waits for it.
    let waiting = {
        let ing = ing.clone();
        tokio::spawn(async move {
            ing.put("news", &p("index.m3u8"), playlist(&["1.m4s"]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    ing.put("news", &p("1.m4s"), segment(100)).await.unwrap();
    assert_eq!(waiting.await.unwrap(), Ok(Stored::New));

    // What never comes is waited for no longer than the configured time.
    let short = ingest(
        &dir,
        PushConfig {
            reference_wait: Duration::from_millis(100),
            ..PushConfig::default()
        },
    );
    let started = Instant::now();
    let waiting = {
        let short = short.clone();
        tokio::spawn(async move {
            short
                .put("news", &p("index.m3u8"), playlist(&["1.m4s", "2.m4s"]))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Another upload wakes the playlist, which goes back to waiting for the rest.
    short.put("news", &p("1.m4s"), segment(100)).await.unwrap();
    assert_eq!(
        waiting.await.unwrap(),
        Err(PutError::MissingReference("2.m4s".into()))
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
}

/// A store that counts reads (gets and listings), over a directory.
#[derive(Debug)]
struct Counting {
    inner: LocalDirStore,
    reads: AtomicU64,
}

impl Counting {
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl ObjectStore for Counting {
    fn put(
        &self,
        key: &str,
        parts: Vec<Bytes>,
    ) -> starling_store::BoxFuture<'_, Result<(), starling_store::StoreError>> {
        self.inner.put(key, parts)
    }
    fn get(
        &self,
        key: &str,
    ) -> starling_store::BoxFuture<'_, Result<Option<Bytes>, starling_store::StoreError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn delete(
        &self,
        key: &str,
    ) -> starling_store::BoxFuture<'_, Result<(), starling_store::StoreError>> {
        self.inner.delete(key)
    }
    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> starling_store::BoxFuture<'_, Result<Vec<String>, starling_store::StoreError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.children(prefix, limit)
    }
    fn delete_prefix(
        &self,
        prefix: &str,
    ) -> starling_store::BoxFuture<'_, Result<(), starling_store::StoreError>> {
        self.inner.delete_prefix(prefix)
    }
}

fn counted(dir: &Dir, config: PushConfig) -> (Arc<PushIngest>, Arc<Counting>) {
    let store = Arc::new(Counting {
        inner: LocalDirStore::new(&dir.0),
        reads: AtomicU64::new(0),
    });
    (PushIngest::new(config, store.clone()), store)
}

/// A live fMP4 playlist as ffmpeg writes it (epoch numbering), newest segment `newest`.
fn live_playlist(target: u32, newest: u64) -> Bytes {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-MAP:URI=\"init.mp4\"\n\
         #EXTINF:{target}.000000,\nindex{}.m4s\n#EXTINF:{target}.000000,\nindex{newest}.m4s\n",
        newest - 1,
        newest - 1
    )
    .into()
}

/// A channel pushed up to segment `newest` of `index{n}.m4s` with target duration
/// `target`.
async fn live(ing: &PushIngest, target: u32, newest: u64) {
    ing.put("news", &p("init.mp4"), init()).await.unwrap();
    for n in [newest - 1, newest] {
        ing.put("news", &p(&format!("index{n}.m4s")), segment(200))
            .await
            .unwrap();
    }
    ing.put("news", &p("index.m3u8"), live_playlist(target, newest))
        .await
        .unwrap();
}

fn spawn_get(
    ing: &Arc<PushIngest>,
    path: &str,
) -> tokio::task::JoinHandle<(Option<PushedObject>, Instant)> {
    let ing = ing.clone();
    let path = path.to_owned();
    tokio::spawn(async move {
        let got = ing.get("news", &path).await;
        (got, Instant::now())
    })
}

#[tokio::test]
async fn a_request_for_the_next_segment_is_answered_when_it_is_uploaded() {
    let dir = Dir::new("hold");
    let (ing, store) = counted(&dir, PushConfig::default());
    // Target duration 2 s: held up to 3 s.
    live(&ing, 2, 1_765_000_123).await;
    let reads = store.reads();

    let started = Instant::now();
    let held = spawn_get(&ing, "index1765000124.m4s");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "answered before the segment came");
    // Other uploads of the channel wake it; it goes back to waiting.
    ing.put("news", &p("audio1765000124.m4a"), segment(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished(), "answered by another object's upload");

    let body = segment(300);
    ing.put("news", &p("index1765000124.m4s"), body.clone())
        .await
        .unwrap();
    let put_done = Instant::now();
    let (got, answered) = held.await.unwrap();
    let got = got.expect("the held request is answered with the segment");
    assert_eq!(
        (got.body, got.content_type, got.cache_control),
        (body, "video/mp4", MEDIA_CACHE_CONTROL)
    );
    let woken = answered.saturating_duration_since(put_done);
    let waited = answered.duration_since(started);
    assert!(
        woken < Duration::from_millis(500),
        "woken {woken:?} after the PUT"
    );
    assert!(
        waited < Duration::from_secs(2),
        "waited {waited:?}: timed out rather than woken"
    );
    assert_eq!(store.reads(), reads, "a held request reads no store");

    // The segment is up before the playlist that names it: the one after is the next.
    let held = spawn_get(&ing, "index1765000125.m4s");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!held.is_finished());
    ing.put("news", &p("index1765000125.m4s"), segment(100))
        .await
        .unwrap();
    assert!(held.await.unwrap().0.is_some());
    assert_eq!(store.reads(), reads);
}

#[tokio::test]
async fn a_held_request_is_answered_none_at_the_bound() {
    let dir = Dir::new("bound");
    let (ing, store) = counted(&dir, PushConfig::default());
    // Target duration 1 s: held 1.5 s.
    live(&ing, 1, 500).await;
    let reads = store.reads();
    let started = Instant::now();
    assert!(ing.get("news", "index501.m4s").await.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );

    // Target duration 10 s: 15 s, capped (here at 200 ms).
    let dir = Dir::new("cap");
    let capped = PushConfig {
        next_segment_wait: Duration::from_millis(200),
        ..PushConfig::default()
    };
    assert_eq!(store.reads(), reads, "no store read at the bound");
    let (ing, store) = counted(&dir, capped);
    live(&ing, 10, 500).await;
    let reads = store.reads();
    let started = Instant::now();
    assert!(ing.get("news", "index501.m4s").await.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(700),
        "{waited:?}"
    );
    assert_eq!(store.reads(), reads);

    // An ended playlist holds nothing: what follows it is not coming.
    let ended = [&live_playlist(1, 500)[..], b"#EXT-X-ENDLIST\n"].concat();
    ing.put("news", &p("index.m3u8"), ended.into())
        .await
        .unwrap();
    let started = Instant::now();
    assert!(ing.get("news", "index501.m4s").await.is_none());
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn far_ahead_and_unknown_names_are_answered_at_once() {
    let dir = Dir::new("ahead");
    let (ing, store) = counted(&dir, PushConfig::default());
    live(&ing, 2, 1_765_000_123).await;
    ing.flushed().await;
    let reads = store.reads();

    // Past the next number: cannot exist yet; no store read.
    let started = Instant::now();
    for far in [
        "index1765000125.m4s",
        "index1765009999.m4s",
        "index99999999999999999999999.m4s",
    ] {
        assert!(ing.get("news", far).await.is_none(), "{far}");
    }
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(store.reads(), reads, "far-ahead numbers read no store");

    // Anything else is looked up as before, at once: memory, then the store.
    let started = Instant::now();
    for (path, found) in [
        ("index1765000123.m4s", true),     // the newest, in memory
        ("other1765000124.m4s", false),    // unknown stem
        ("index1765000124.ts", false),     // another extension
        ("v0/index1765000124.m4s", false), // another directory
        ("index01765000124.m4s", false),   // another spelling of the next number
        ("index1765000100.m4s", false),    // an older number
        ("init.mp4", true),
    ] {
        assert_eq!(ing.get("news", path).await.is_some(), found, "{path}");
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(store.reads(), reads + 5, "one store read per miss");
}

#[tokio::test]
async fn padded_names_in_directories_are_held_too() {
    let dir = Dir::new("padded");
    let ing = ingest(&dir, PushConfig::default());
    for n in ["seg_000098.ts", "seg_000099.ts"] {
        ing.put("news", &p(&format!("v1/{n}")), ts()).await.unwrap();
    }
    let pl = playlist(&["#EXTINF:1,", "seg_000098.ts", "#EXTINF:1,", "seg_000099.ts"]);
    ing.put("news", &p("v1/index.m3u8"), pl).await.unwrap();
    let held = spawn_get(&ing, "v1/seg_000100.ts");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!held.is_finished());
    ing.put("news", &p("v1/seg_000100.ts"), ts()).await.unwrap();
    assert_eq!(held.await.unwrap().0.unwrap().content_type, "video/mp2t");
    // Past it: at once.
    let started = Instant::now();
    assert!(ing.get("news", "v1/seg_000102.ts").await.is_none());
    assert!(started.elapsed() < Duration::from_millis(300));
    // Deleting the playlist forgets its edge: the next is looked up as usual.
    ing.delete("news", &p("v1/index.m3u8")).unwrap();
    let started = Instant::now();
    assert!(ing.get("news", "v1/seg_000101.ts").await.is_none());
    assert!(started.elapsed() < Duration::from_millis(500));
}
