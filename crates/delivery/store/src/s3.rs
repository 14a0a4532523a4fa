//! [`S3Store`]: the [`ObjectStore`] over an S3-compatible bucket.
//!
//! `rusty-s3` does the protocol without I/O: it presigns each request (SigV4 in the
//! query string, `UNSIGNED-PAYLOAD`, so a body is never hashed twice) and parses
//! ListObjectsV2 answers. `wire` sends the signed URLs. Everything read off the wire is
//! bounded: object bodies by `max_object_bytes`, listings by [`MAX_LISTING_BYTES`],
//! error documents by [`MAX_ERROR_BYTES`]; every request by `request_timeout`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::{Method, StatusCode};
use rusty_s3::{
    actions::{DeleteObject, GetObject, ListObjectsV2, PutObject},
    Bucket, Credentials, S3Action as _, UrlStyle,
};
use url::Url;

use crate::{
    check_key,
    wire::{Answer, Wire, WireError},
    BoxFuture, ObjectStore, StoreError,
};

/// Enough for a page of 1,000 keys of 1 KiB each, with the XML around them.
const MAX_LISTING_BYTES: u64 = 4 << 20;
/// The head of an error document: its Code and Message come first.
const MAX_ERROR_BYTES: u64 = 4 << 10;
/// The most keys S3 returns in one ListObjectsV2 page.
const MAX_PAGE: usize = 1000;

/// Access key, secret and the optional session token of temporary credentials.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    // The secret and the token never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (the
    /// last optional) as `var` reads them; a missing one is named in the error.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let need = |name: &str| {
            var(name).ok_or_else(|| {
                StoreError::Config(format!(
                    "{name} is not set (the S3 store takes its credentials from the environment)"
                ))
            })
        };
        Ok(Self {
            access_key_id: need("AWS_ACCESS_KEY_ID")?,
            secret_access_key: need("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    /// [`Self::from_vars`] over the process environment.
    pub fn from_env() -> Result<Self, StoreError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// Where the bucket is and how to talk to it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// `http://127.0.0.1:9000` or `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// `endpoint/bucket/key` (true) or `bucket.endpoint/key` (false).
    pub path_style: bool,
    /// Prepended to every key (`prefix/key`); empty for the bucket's root.
    pub prefix: String,
    pub credentials: S3Credentials,
    /// Bounds each request from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// A GET whose body is longer is refused (before reading it when announced).
    pub max_object_bytes: u64,
    /// Keys asked for per ListObjectsV2 page (at most 1,000).
    pub list_page_size: usize,
}

impl S3Config {
    /// The defaults: region `us-east-1`, path style, no prefix, 30 s per request, 64 MiB
    /// objects, pages of 1,000.
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        credentials: S3Credentials,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: "us-east-1".to_owned(),
            bucket: bucket.into(),
            path_style: true,
            prefix: String::new(),
            credentials,
            request_timeout: Duration::from_secs(30),
            max_object_bytes: 64 << 20,
            list_page_size: MAX_PAGE,
        }
    }
}

/// Objects in an S3-compatible bucket.
#[derive(Debug)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    wire: Wire,
    timeout: Duration,
    max_object_bytes: u64,
    page: usize,
}

impl S3Store {
    /// Checks the configuration (no request is sent: see [`Self::check`]).
    pub fn new(config: S3Config) -> Result<Self, StoreError> {
        let bad = |what: String| StoreError::Config(what);
        if config.bucket.is_empty() {
            return Err(bad("the S3 bucket is not set".into()));
        }
        if config.endpoint.is_empty() {
            return Err(bad("the S3 endpoint is not set".into()));
        }
        let endpoint = Url::parse(&config.endpoint)
            .map_err(|e| bad(format!("S3 endpoint {:?}: {e}", config.endpoint)))?;
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            bad(format!(
                "S3 endpoint {:?} with bucket {:?}: {e:?}",
                config.endpoint, config.bucket
            ))
        })?;
        let wire = Wire::new(bucket.base_url())
            .map_err(|e| bad(format!("S3 endpoint {:?}: {e}", config.endpoint)))?;
        let prefix = config.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            check_key(&prefix).map_err(|_| bad(format!("S3 key prefix {prefix:?}")))?;
        }
        let c = config.credentials;
        if config.request_timeout.is_zero() || config.list_page_size == 0 {
            return Err(bad(
                "the S3 request timeout and list page size must be above zero".into(),
            ));
        }
        Ok(Self {
            bucket,
            credentials: match c.session_token {
                Some(t) => Credentials::new_with_token(c.access_key_id, c.secret_access_key, t),
                None => Credentials::new(c.access_key_id, c.secret_access_key),
            },
            prefix,
            wire,
            timeout: config.request_timeout,
            max_object_bytes: config.max_object_bytes,
            page: config.list_page_size.min(MAX_PAGE),
        })
    }

    /// One cheap request (a listing of at most one key) so that a wrong endpoint,
    /// bucket or credentials show at start-up rather than at the first write.
    pub async fn check(&self) -> Result<(), StoreError> {
        const OP: &str = "ListObjectsV2";
        let mut list = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        let shown = if self.prefix.is_empty() {
            "(bucket root)".to_owned()
        } else {
            let p = format!("{}/", self.prefix);
            list.with_prefix(p.clone());
            p
        };
        list.with_max_keys(1);
        let url = list.sign(self.expiry());
        let answer = self
            .call(
                OP,
                &shown,
                Method::GET,
                &url,
                Bytes::new(),
                MAX_LISTING_BYTES,
            )
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(status_error(OP, &shown, &answer))
        }
    }

    /// Connections opened to the endpoint so far (the rest were reused).
    pub fn connections_opened(&self) -> u64 {
        self.wire.dials()
    }

    /// The bucket's name, for logs.
    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    fn full_key(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    /// Presigned URLs are used at once; the margin covers the request's own timeout
    /// and a little clock skew.
    fn expiry(&self) -> Duration {
        self.timeout + Duration::from_secs(60)
    }

    async fn call(
        &self,
        op: &'static str,
        key: &str,
        method: Method,
        url: &Url,
        body: Bytes,
        ok_limit: u64,
    ) -> Result<Answer, StoreError> {
        let sent = self
            .wire
            .exchange(method, url, body, ok_limit, MAX_ERROR_BYTES);
        match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => Err(StoreError::Timeout {
                op,
                key: key.to_owned(),
                after: self.timeout,
            }),
            Ok(Ok(a)) => Ok(a),
            Ok(Err(WireError::Transport(detail))) => Err(StoreError::Transport {
                op,
                key: key.to_owned(),
                detail,
            }),
            Ok(Err(WireError::TooLarge { limit, length })) => Err(StoreError::BadResponse {
                op,
                key: key.to_owned(),
                reason: match length {
                    Some(n) => format!("a body of {n} bytes, past the limit of {limit}"),
                    None => format!("a body past the limit of {limit} bytes"),
                },
            }),
        }
    }

    /// One ListObjectsV2 page under `list_prefix`.
    async fn list_page(
        &self,
        list_prefix: &str,
        delimiter: bool,
        max_keys: usize,
        token: Option<&str>,
    ) -> Result<rusty_s3::actions::ListObjectsV2Response, StoreError> {
        const OP: &str = "ListObjectsV2";
        let mut list = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        list.with_prefix(list_prefix);
        if delimiter {
            list.with_delimiter("/");
        }
        list.with_max_keys(max_keys);
        if let Some(t) = token {
            list.with_continuation_token(t);
        }
        let url = list.sign(self.expiry());
        let answer = self
            .call(
                OP,
                list_prefix,
                Method::GET,
                &url,
                Bytes::new(),
                MAX_LISTING_BYTES,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(status_error(OP, list_prefix, &answer));
        }
        let bad = |reason: String| StoreError::BadResponse {
            op: OP,
            key: list_prefix.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(&answer.body)
            .map_err(|_| bad("the listing is not UTF-8".into()))?;
        ListObjectsV2::parse_response(text).map_err(|e| bad(format!("listing: {e}")))
    }

    async fn children_now(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let list_prefix = format!("{}/", self.full_key(prefix)?);
        let mut out = Vec::new();
        let mut token = None;
        while out.len() < limit {
            let want = (limit - out.len()).min(self.page);
            let page = self
                .list_page(&list_prefix, true, want, token.as_deref())
                .await?;
            let names = page
                .common_prefixes
                .iter()
                .map(|p| p.prefix.as_str())
                .chain(page.contents.iter().map(|c| c.key.as_str()))
                .filter_map(|k| k.strip_prefix(&list_prefix))
                .map(|k| k.trim_end_matches('/'))
                .filter(|k| !k.is_empty() && !k.contains('/'));
            out.extend(names.map(str::to_owned));
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        out.sort();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }

    async fn delete_full(&self, full: &str, key: &str) -> Result<(), StoreError> {
        let url =
            DeleteObject::new(&self.bucket, Some(&self.credentials), full).sign(self.expiry());
        let answer = self
            .call(
                "DeleteObject",
                key,
                Method::DELETE,
                &url,
                Bytes::new(),
                MAX_ERROR_BYTES,
            )
            .await?;
        if answer.status.is_success() || is_missing_object(&answer) {
            Ok(())
        } else {
            Err(status_error("DeleteObject", key, &answer))
        }
    }

    async fn delete_prefix_now(&self, prefix: &str) -> Result<(), StoreError> {
        let list_prefix = format!("{}/", self.full_key(prefix)?);
        // One DeleteObject at a time: sweeps are rare and off the live path, and the
        // batch call (DeleteObjects) would need a Content-MD5 and an XML writer. The
        // continuation token is the position after the last key listed, so deleting
        // the keys of a page does not disturb the next one.
        let mut token = None;
        loop {
            let page = self
                .list_page(&list_prefix, false, self.page, token.as_deref())
                .await?;
            for c in &page.contents {
                if c.key.starts_with(&list_prefix) {
                    self.delete_full(&c.key, prefix).await?;
                }
            }
            token = page.next_continuation_token;
            if token.is_none() {
                return Ok(());
            }
        }
    }
}

impl ObjectStore for S3Store {
    fn put(&self, key: &str, parts: Vec<Bytes>) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let full = self.full_key(&key)?;
            // The length must be known (S3 refuses chunked uploads without a signed
            // trailer), so the parts are joined; a single part is sent as it is.
            let body = match <[Bytes; 1]>::try_from(parts) {
                Ok([one]) => one,
                Err(parts) => {
                    let mut b = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                    parts.iter().for_each(|p| b.extend_from_slice(p));
                    b.freeze()
                }
            };
            let url =
                PutObject::new(&self.bucket, Some(&self.credentials), &full).sign(self.expiry());
            let answer = self
                .call("PutObject", &key, Method::PUT, &url, body, MAX_ERROR_BYTES)
                .await?;
            if answer.status.is_success() {
                Ok(())
            } else {
                Err(status_error("PutObject", &key, &answer))
            }
        })
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let full = self.full_key(&key)?;
            let url =
                GetObject::new(&self.bucket, Some(&self.credentials), &full).sign(self.expiry());
            let answer = self
                .call(
                    "GetObject",
                    &key,
                    Method::GET,
                    &url,
                    Bytes::new(),
                    self.max_object_bytes,
                )
                .await?;
            if answer.status.is_success() {
                Ok(Some(answer.body))
            } else if is_missing_object(&answer) {
                Ok(None)
            } else {
                Err(status_error("GetObject", &key, &answer))
            }
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let key = key.to_owned();
        Box::pin(async move {
            let full = self.full_key(&key)?;
            self.delete_full(&full, &key).await
        })
    }

    fn children(
        &self,
        prefix: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let prefix = prefix.to_owned();
        Box::pin(async move { self.children_now(&prefix, limit).await })
    }

    fn delete_prefix(&self, prefix: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let prefix = prefix.to_owned();
        Box::pin(async move { self.delete_prefix_now(&prefix).await })
    }
}

/// A 404 for the key, not for the bucket: a missing bucket is a configuration error
/// that must not read as "no such object".
fn is_missing_object(answer: &Answer) -> bool {
    answer.status == StatusCode::NOT_FOUND && error_fields(&answer.body).0 != "NoSuchBucket"
}

fn status_error(op: &'static str, key: &str, answer: &Answer) -> StoreError {
    let (code, message) = error_fields(&answer.body);
    StoreError::Status {
        op,
        key: key.to_owned(),
        status: answer.status.as_u16(),
        code,
        message,
    }
}

/// `Code` and `Message` of an S3 error document (`<Error><Code>…</Code>…`), each cut
/// to 200 characters; empty when absent (a HEAD, a proxy's HTML page).
fn error_fields(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        text.find(&open)
            .map(|i| &text[i + open.len()..])
            .and_then(|rest| rest.find(&close).map(|j| &rest[..j]))
            .map(|v| v.trim().chars().take(200).collect())
            .unwrap_or_default()
    };
    (field("Code"), field("Message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents() {
        let doc = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        assert_eq!(
            error_fields(doc),
            (
                "NoSuchKey".to_owned(),
                "The specified key does not exist.".to_owned()
            )
        );
        assert_eq!(error_fields(b""), (String::new(), String::new()));
        assert_eq!(error_fields(b"<Code>cut"), (String::new(), String::new()));
    }

    #[test]
    fn credentials_name_what_is_missing() {
        let err = S3Credentials::from_vars(|n| (n == "AWS_ACCESS_KEY_ID").then(|| "k".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        let c = S3Credentials::from_vars(|n| Some(format!("{n}-value"))).unwrap();
        assert!(!format!("{c:?}").contains("SECRET_ACCESS_KEY-value"));
    }

    #[test]
    fn configuration_errors() {
        let creds = S3Credentials::from_vars(|n| Some(n.to_owned())).unwrap();
        let err = |c: S3Config| S3Store::new(c).unwrap_err().to_string();
        assert!(err(S3Config::new("http://127.0.0.1:1", "", creds.clone())).contains("bucket"));
        assert!(err(S3Config::new("", "b", creds.clone())).contains("endpoint"));
        assert!(err(S3Config::new("ftp://x", "b", creds.clone())).contains("ftp"));
        let mut c = S3Config::new("http://127.0.0.1:1", "b", creds);
        c.prefix = "../x".into();
        assert!(err(c).contains("prefix"));
    }
}
