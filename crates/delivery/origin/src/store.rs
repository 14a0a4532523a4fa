//! Object storage, from the `starling-store` crate: the [`ObjectStore`] trait, the
//! local directory and the read-coalescing cache layer, re-exported so that the origin's
//! modules and its users name them as before. The S3 backend is the binary's choice
//! (`starling_store::S3Store`, its `s3` feature): the origin, and the fuzz targets built
//! on it, stay free of an HTTP client. Only the write-through, the DVR/VOD reads and the
//! sweeps go to a store; the live edge is served from memory and never waits on it
//! (docs/storage.md).

pub use starling_store::{
    check_key, BoxFuture, CacheStats, CachedStore, LocalDirStore, ObjectStore, StoreError,
};
