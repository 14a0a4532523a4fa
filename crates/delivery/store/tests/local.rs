//! The shared store behaviour against LocalDirStore, alone and under the cache.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use starling_store::{CachedStore, LocalDirStore};

#[tokio::test]
async fn behaves_like_a_store() {
    let dir = common::temp_dir("local");
    common::behaviour(&LocalDirStore::new(&dir)).await;
    common::behaviour(&CachedStore::new(LocalDirStore::new(&dir), 1 << 20)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_one_key_read_the_disk_once() {
    let dir = common::temp_dir("local-coalesce");
    common::coalescing(Arc::new(CachedStore::new(
        LocalDirStore::new(&dir),
        256 << 20,
    )))
    .await;
    let _ = std::fs::remove_dir_all(dir);
}
