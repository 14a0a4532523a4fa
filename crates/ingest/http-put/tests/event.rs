//! Range rejection for a pushed channel with a live event (docs/put-ingest.md, "Live
//! events"): 1,000 requests for segments far ahead and far behind read nothing from the
//! store, and get the documented answer and max-age.

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use common::fmp4_segment;
use starling_http_put::{
    event::{unix_ms, GONE_SECS, LATE_GONE_SECS, MAX_NOT_YET_SECS},
    Answer, LiveEvent, PushConfig, PushIngest, PushPath,
};
use starling_store::{BoxFuture, LocalDirStore, ObjectStore, StoreError};

/// A directory store that counts reads (gets and listings).
struct Counting {
    inner: LocalDirStore,
    reads: AtomicU64,
}

impl ObjectStore for Counting {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put(key, parts)
    }
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete(key)
    }
    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.children(prefix, limit)
    }
    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete_prefix(prefix)
    }
}

const D: u64 = 2000;
const FIRST: u64 = 1000;

/// The seconds until `n` is due, rounded up and bounded as documented, at `now_ms`.
fn expected_max_age(ast: u64, n: u64, now_ms: u64) -> u64 {
    let due = ast + (n - FIRST + 1) * D;
    (due.saturating_sub(now_ms)).div_ceil(1000).clamp(1, 3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_out_of_range_read_nothing_from_the_store() {
    let dir = std::env::temp_dir().join(format!("starling-put-event-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Counting {
        inner: LocalDirStore::new(&dir),
        reads: AtomicU64::new(0),
    });
    // The event began a minute ago: numbers 1000 to 1029 are due. "news" ends an hour
    // after its start (numbers up to 2799); "open" does not end and has nothing pushed.
    let ast = unix_ms(SystemTime::now()) - 60_000;
    let news = LiveEvent::new(ast, D, Some(FIRST), Some(ast + 3_600_000)).unwrap();
    let open = LiveEvent::new(ast, D, Some(FIRST), None).unwrap();
    let config = PushConfig {
        events: HashMap::from([("news".to_owned(), news), ("open".to_owned(), open)]),
        reference_wait: Duration::from_millis(10),
        next_segment_wait: Duration::from_millis(300),
        ..PushConfig::default()
    };
    let ing = PushIngest::new(config, store.clone());
    assert!(ing.knows("open"), "a channel with an event is consulted");
    assert!(!ing.knows("other"));
    for n in 1026..=1028 {
        let path = PushPath::parse(&format!("v0/index{n}.m4s")).unwrap();
        ing.put("news", &path, fmp4_segment().into()).await.unwrap();
    }
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nindex1027.m4s\n\
        #EXTINF:2,\nindex1028.m4s\n";
    let path = PushPath::parse("v0/index.m3u8").unwrap();
    ing.put("news", &path, playlist.into()).await.unwrap();
    ing.flushed().await;
    let reads = store.reads.load(Ordering::SeqCst);

    let mut answers: HashMap<&str, u32> = HashMap::new();
    for i in 0..1000u64 {
        let (channel, n, want) = match i % 5 {
            // Far behind: below the first number.
            0 => ("news", i / 5, "gone"),
            // Ahead, past the playlist's edge and not due: 404 until due.
            1 => ("news", 1100 + i, "not yet"),
            // Past the end.
            2 => ("news", 2800 + i * 1000, "gone"),
            // Nothing pushed: not due, and far past any due time (the cap).
            3 => ("open", 1040 + i, "not yet"),
            _ => ("open", 1_000_000 + i, "capped"),
        };
        let before = unix_ms(SystemTime::now());
        let a = ing.answer(channel, &format!("v0/index{n}.m4s")).await;
        let after = unix_ms(SystemTime::now());
        match (want, a) {
            ("gone", Answer::Gone { max_age }) => assert_eq!(max_age, GONE_SECS),
            ("not yet", Answer::NotYet { max_age }) => {
                let (lo, hi) = (
                    expected_max_age(ast, n, after),
                    expected_max_age(ast, n, before),
                );
                assert!(
                    (lo..=hi).contains(&u64::from(max_age)),
                    "{channel} {n}: {max_age} not in {lo}..={hi}"
                );
            }
            ("capped", Answer::NotYet { max_age }) => assert_eq!(max_age, MAX_NOT_YET_SECS),
            (want, a) => panic!("{channel} {n}: want {want}, got {a:?}"),
        }
        *answers.entry(want).or_default() += 1;
    }
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        reads,
        "1,000 requests out of range read nothing from the store"
    );
    assert_eq!(answers.values().sum::<u32>(), 1000);

    // The edge still holds the next number (not due by the event's clock either).
    let t = tokio::time::Instant::now();
    assert_eq!(
        ing.answer("news", "v0/index1029.m4s").await,
        Answer::NotFound
    );
    assert!(t.elapsed() >= Duration::from_millis(250), "held");
    assert_eq!(
        store.reads.load(Ordering::SeqCst),
        reads,
        "a hold reads nothing"
    );
    // In memory: served, whatever the event says.
    assert!(matches!(
        ing.answer("news", "v0/index1028.m4s").await,
        Answer::Found(_)
    ));
    // Due and not in memory: looked up; within its retry deadline a miss is a plain 404,
    // past it (old DVR that is not there) a 410.
    assert_eq!(
        ing.answer("open", "v0/index1028.m4s").await,
        Answer::NotFound
    );
    assert_eq!(
        ing.answer("open", "v0/index1001.m4s").await,
        Answer::Gone {
            max_age: LATE_GONE_SECS
        }
    );
    assert_eq!(store.reads.load(Ordering::SeqCst), reads + 2);
    // Names of no series (and playlists) are not the event's: looked up as before.
    assert_eq!(ing.answer("open", "init.mp4").await, Answer::NotFound);
    assert_eq!(store.reads.load(Ordering::SeqCst), reads + 3);
    let _ = std::fs::remove_dir_all(&dir);
}
