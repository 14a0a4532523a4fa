//! Object storage behind one narrow trait, [`ObjectStore`]: where segments, init
//! sections and each channel's history live once they leave the origin's memory window.
//!
//! - [`LocalDirStore`]: files under a directory (the default, `<data_dir>/objects`).
//! - `S3Store` (feature `s3`, on by default): any S3-compatible bucket. Requests are signed by `rusty-s3` (sans-IO:
//!   it builds presigned URLs and parses listings, it never touches a socket) and sent
//!   by a small HTTP/1.1 client of our own over hyper and rustls (`wire`), the stack the
//!   workspace already has for webhooks.
//! - [`CachedStore`]: a layer over either that makes concurrent reads of one key a
//!   single backend read and keeps recent objects in memory, bounded in bytes.
//!
//! Only the write-through, the DVR/VOD reads and the retention sweeps go through here;
//! the live edge is served from memory and must never wait on a store. Keys are built by
//! the origin, never taken from a request, and every backend checks them with
//! [`check_key`] before use. docs/storage.md has the whole picture.

use std::{future::Future, pin::Pin, time::Duration};

use bytes::Bytes;

mod cache;
mod local;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
mod wire;

pub use cache::{CacheStats, CachedStore};
pub use local::LocalDirStore;
#[cfg(feature = "s3")]
pub use s3::{S3Config, S3Credentials, S3Store};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("object store I/O on {key}: {source}")]
    Io { key: String, source: std::io::Error },
    /// The server answered with an error status; `code` and `message` are from its
    /// S3 error document when it sent one (empty otherwise).
    #[error("S3 {op} {key}: HTTP {status}{}", code_and_message(code, message))]
    Status {
        op: &'static str,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connecting, TLS, or the connection broke mid-exchange.
    #[error("S3 {op} {key}: {detail}")]
    Transport {
        op: &'static str,
        key: String,
        detail: String,
    },
    #[error("S3 {op} {key}: no complete answer within {after:?}")]
    Timeout {
        op: &'static str,
        key: String,
        after: Duration,
    },
    /// An answer we cannot use: a listing that does not parse, a body past its bound.
    #[error("S3 {op} {key}: bad response: {reason}")]
    BadResponse {
        op: &'static str,
        key: String,
        reason: String,
    },
    /// The store cannot be built as configured (endpoint, bucket, credentials).
    #[error("object store configuration: {0}")]
    Config(String),
}

/// ` NoSuchKey: The specified key does not exist.`, or as much of it as there is.
fn code_and_message(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" {code}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(" {code}: {message}"),
    }
}

/// Where segments live once they leave the memory window.
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `parts` (concatenated) under `key`, replacing what was there.
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The object under `key`, `None` when there is none.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>>;
    /// Removes the object under `key`; removing one that is not there is not an error.
    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The names directly below `prefix/` (objects and deeper prefixes alike, like a
    /// delimiter listing), at most `limit` of them, sorted; none when there is no such
    /// prefix.
    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// Removes every object under `prefix/`.
    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Keys are built by the origin from validated names and numbers, never taken from a
/// request; this check is the last line that keeps them inside the store's root (a
/// directory, or the configured prefix of a bucket).
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKey(key.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_root() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "./a",
            "a/\0",
            "a b",
            "a/..",
            "%2e%2e/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key("media/demo/1795308498/source/12.m4s").is_ok());
    }
}
