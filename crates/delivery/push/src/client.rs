//! The remote origin on the wire: HTTP/1.1 over one keep-alive connection per channel,
//! with a bound on connecting and one on each whole exchange.
//!
//! Plain `http://` only: a pusher and its origin are normally in one private network
//! (or behind a TLS-terminating proxy on the remote side). The answer's body is read up
//! to [`MAX_REASON`] bytes, because the remote puts the cause of a refusal there, and
//! reading it whole is what lets the connection be reused.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{client::conn::http1::SendRequest, header, Method, Request as HttpRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{
    plan::{Answer, Request},
    PushError,
};

/// The most of an answer's body read (the reason of a refusal is one line).
pub const MAX_REASON: usize = 4096;

/// One open connection to the remote.
#[derive(Debug)]
pub struct Conn(SendRequest<Full<Bytes>>);

/// Where and how to reach the remote origin.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
    /// A path the remote's routes are under ("" for the root), without a trailing `/`.
    prefix: String,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Client {
    /// `base` is `http://HOST[:PORT][/PREFIX]`.
    pub fn new(
        base: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, PushError> {
        let bad = |why: &str| PushError::Url(format!("{base:?} {why}"));
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let (authority, prefix) = match rest.split_once('/') {
            Some((a, p)) => (a, p.trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty()
            || authority.len() > 255
            || !authority
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return Err(bad("has no valid host"));
        }
        if prefix.len() > 256
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        {
            return Err(bad("has a path that is not plain"));
        }
        let authority = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
        Ok(Self {
            authority,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
            connect_timeout,
            timeout,
        })
    }

    /// The URL of `path` in `channel`, as logged (never with the key).
    pub fn url(&self, channel: &str, path: &str) -> String {
        format!(
            "http://{}{}/ingest/{channel}/{path}",
            self.authority, self.prefix
        )
    }

    /// Sends `req` for `channel` with `key` as Bearer, on `conn` when it is open (else on
    /// a new connection, left in `conn` for the next request). A failure closes it.
    pub async fn send(
        &self,
        conn: &mut Option<Conn>,
        channel: &str,
        key: &str,
        req: &Request,
    ) -> Answer {
        let answer =
            tokio::time::timeout(self.timeout, self.exchange(conn, channel, key, req)).await;
        match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                *conn = None;
                Answer::Failed(e)
            }
            Err(_) => {
                *conn = None;
                Answer::Failed(format!("no answer within {:?}", self.timeout))
            }
        }
    }

    async fn exchange(
        &self,
        conn: &mut Option<Conn>,
        channel: &str,
        key: &str,
        req: &Request,
    ) -> Result<Answer, String> {
        if conn.as_ref().is_none_or(|c| c.0.is_closed()) {
            *conn = Some(self.connect().await?);
        }
        let Some(Conn(sender)) = conn.as_mut() else {
            return Err("no connection".into());
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let method = if req.body.is_some() {
            Method::PUT
        } else {
            Method::DELETE
        };
        let mut http = HttpRequest::builder()
            .method(method)
            .uri(format!("{}/ingest/{channel}/{}", self.prefix, req.path))
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        if req.body.is_some() {
            http = http.header(header::CONTENT_TYPE, req.content_type);
        }
        let http = http
            .body(Full::new(req.body.clone().unwrap_or_default()))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(http).await.map_err(|e| {
            let detail =
                std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
            format!("{e}{detail}")
        })?;
        let status = resp.status().as_u16();
        let body = match Limited::new(resp.into_body(), MAX_REASON).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                // Not read to its end: the connection cannot carry the next request.
                *conn = None;
                Bytes::new()
            }
        };
        let reason = String::from_utf8_lossy(&body)
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        Ok(Answer::Status(status, reason))
    }

    async fn connect(&self) -> Result<Conn, String> {
        let stream =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority))
                .await
                .map_err(|_| {
                    format!(
                        "connecting to {}: no answer within {:?}",
                        self.authority, self.connect_timeout
                    )
                })?
                .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        // Ends when the connection closes (the sender dropped, or the remote closed it).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = Duration::from_secs(1);
        let c = Client::new("http://origin.internal:8080", t, t).unwrap();
        assert_eq!(
            c.url("news", "index.m3u8"),
            "http://origin.internal:8080/ingest/news/index.m3u8"
        );
        let c = Client::new("http://10.0.0.2/edge/", t, t).unwrap();
        assert_eq!(
            c.url("news", "a/b.m4s"),
            "http://10.0.0.2:80/edge/ingest/news/a/b.m4s"
        );
        for bad in ["https://x", "x:80", "http://", "http://a b", "http://x/a?b"] {
            assert!(Client::new(bad, t, t).is_err(), "{bad}");
        }
    }
}
