//! The `[store]` section of the config: where segments go once they leave the memory
//! window, a directory under the data dir or an S3-compatible bucket (docs/storage.md).

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context as _};
use serde::Deserialize;
use starling_store::{
    CacheStats, CachedStore, LocalDirStore, ObjectStore, S3Config, S3Credentials, S3Store,
};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files under `<data_dir>/objects`.
    #[default]
    Local,
    /// A bucket; credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`.
    S3,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub kind: StoreKind,
    /// `http://host:port` or `https://host` of the S3 API.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// `endpoint/bucket/key` (true) or `bucket.endpoint/key` (false).
    pub path_style: bool,
    /// Prepended to every key, so that several nodes or deployments share a bucket.
    pub prefix: String,
    /// Memory for recently read objects (the DVR segments many viewers read at once).
    pub cache_mb: u64,
    /// A stored object larger than this is refused on read.
    pub max_object_mb: u64,
    /// Each request to the bucket, from connecting to its last byte.
    pub request_timeout_secs: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            kind: StoreKind::Local,
            endpoint: String::new(),
            region: "us-east-1".to_owned(),
            bucket: String::new(),
            path_style: true,
            prefix: String::new(),
            cache_mb: 256,
            max_object_mb: 64,
            request_timeout_secs: 30,
        }
    }
}

/// Reads the cache layer's counters.
pub type StatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// The store the origin writes to, and its cache's counters when it has one.
pub struct OpenStore {
    pub store: Arc<dyn ObjectStore>,
    pub stats: Option<StatsFn>,
}

/// The cache's counters in the Prometheus text format, with the rest of `/metrics`.
pub fn render_stats(s: &CacheStats, out: &mut String) {
    use std::fmt::Write as _;
    for (name, kind, help, v) in [
        (
            "starling_store_backend_reads_total",
            "counter",
            "Object reads sent to the bucket.",
            s.backend_reads,
        ),
        (
            "starling_store_cache_hits_total",
            "counter",
            "Object reads answered from memory.",
            s.hits,
        ),
        (
            "starling_store_coalesced_reads_total",
            "counter",
            "Object reads that waited for another's read of the same key.",
            s.coalesced,
        ),
        (
            "starling_store_cache_objects",
            "gauge",
            "Objects held in the read cache.",
            s.cached_objects,
        ),
        (
            "starling_store_cache_bytes",
            "gauge",
            "Bytes held in the read cache.",
            s.cached_bytes,
        ),
    ] {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    }
}

impl StoreSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.kind == StoreKind::Local {
            return Ok(());
        }
        if self.bucket.is_empty() {
            bail!("store.bucket must be set when store.kind is \"s3\"");
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            bail!(
                "store.endpoint must be an http:// or https:// URL when store.kind is \"s3\" (got {:?})",
                self.endpoint
            );
        }
        if self.cache_mb > 1 << 20 {
            bail!("store.cache_mb must be at most 1048576 (1 TiB)");
        }
        if !(1..=5120).contains(&self.max_object_mb) {
            bail!("store.max_object_mb must be between 1 and 5120");
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            bail!("store.request_timeout_secs must be between 1 and 600");
        }
        Ok(())
    }

    /// Opens the store; with S3, one listing first, so that a wrong endpoint, bucket or
    /// credentials stop the start with a message naming them.
    pub async fn open(
        &self,
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<OpenStore> {
        if self.kind == StoreKind::Local {
            return Ok(OpenStore {
                // No memory cache: the kernel's page cache already keeps hot files.
                store: Arc::new(LocalDirStore::new(data_dir.join("objects"))),
                stats: None,
            });
        }
        let credentials = S3Credentials::from_vars(env).context("store.kind = \"s3\"")?;
        let mut c = S3Config::new(self.endpoint.clone(), self.bucket.clone(), credentials);
        c.region.clone_from(&self.region);
        c.path_style = self.path_style;
        c.prefix.clone_from(&self.prefix);
        c.max_object_bytes = self.max_object_mb << 20;
        c.request_timeout = Duration::from_secs(self.request_timeout_secs);
        let s3 = S3Store::new(c)?;
        s3.check().await.with_context(|| {
            format!(
                "store: bucket {:?} at {} is not usable (endpoint, bucket, region and AWS_* credentials)",
                self.bucket, self.endpoint
            )
        })?;
        tracing::info!(
            endpoint = %self.endpoint,
            bucket = %self.bucket,
            prefix = %self.prefix,
            cache_mb = self.cache_mb,
            "object store: S3 bucket"
        );
        let cached = Arc::new(CachedStore::new(
            s3,
            usize::try_from(self.cache_mb << 20).unwrap_or(usize::MAX),
        ));
        let stats = cached.clone();
        Ok(OpenStore {
            store: cached,
            stats: Some(Arc::new(move || stats.stats())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_needs_a_bucket_and_an_endpoint() {
        let s3 = StoreSection {
            kind: StoreKind::S3,
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            ..StoreSection::default()
        };
        s3.validate().unwrap();
        let err = StoreSection {
            bucket: String::new(),
            ..s3.clone()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("store.bucket"), "{err}");
        let err = StoreSection {
            endpoint: "127.0.0.1:9000".into(),
            ..s3.clone()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("store.endpoint"), "{err}");
        // The local default needs neither.
        StoreSection::default().validate().unwrap();
    }

    #[test]
    fn the_environment_sets_the_section() {
        let env = [
            ("STARLING_STORE_KIND", "s3"),
            (
                "STARLING_STORE_ENDPOINT",
                "https://s3.eu-west-1.amazonaws.com",
            ),
            ("STARLING_STORE_BUCKET", "media"),
            ("STARLING_STORE_PATH_STYLE", "false"),
            ("STARLING_STORE_CACHE_MB", "64"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = crate::config::Config::load(None, env).unwrap();
        assert_eq!(c.store.kind, StoreKind::S3);
        assert_eq!(c.store.bucket, "media");
        assert!(!c.store.path_style);
        assert_eq!(c.store.cache_mb, 64);
        assert_eq!(c.store.region, "us-east-1");
        // Validated like the file: s3 without a bucket is refused at load.
        let err = crate::config::Config::load(
            None,
            [("STARLING_STORE_KIND".to_owned(), "s3".to_owned())],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("store.bucket"), "{err:#}");
    }

    #[tokio::test]
    async fn missing_credentials_are_named_at_start() {
        let s3 = StoreSection {
            kind: StoreKind::S3,
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b".into(),
            ..StoreSection::default()
        };
        let dir = std::env::temp_dir();
        let err = match s3.open(&dir, |_| None).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("opened without credentials"),
        };
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        // With credentials but nothing listening: the start fails naming the bucket.
        let err = match s3.open(&dir, |n| Some(n.to_owned())).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("opened a bucket nobody serves"),
        };
        assert!(err.contains("bucket \"b\""), "{err}");
        assert!(err.contains("connecting to"), "{err}");
    }
}
