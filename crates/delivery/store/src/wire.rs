//! The HTTP/1.1 client under [`crate::S3Store`]: hyper's connection API over TCP or
//! rustls, a small pool of keep-alive connections, and bodies read to a bound.
//!
//! Why a pool and not a connection per request: the origin writes one segment per
//! rendition per channel every couple of seconds, and a TLS handshake per write would
//! cost two extra round trips and the handshake's CPU each time. S3 endpoints keep an
//! idle connection for about 20 s, so a connection idle for less than that is reused;
//! at most [`MAX_IDLE`] wait in the pool (more concurrent requests open more, and those
//! past the bound are closed when done). A request that fails on a reused connection
//! before any answer (the server closed it as we sent) is tried once more on a new one:
//! every S3 call we make is idempotent.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::{
    body::Incoming,
    client::conn::http1::SendRequest,
    header::{CONTENT_LENGTH, HOST},
    HeaderMap, Method, Request, StatusCode,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use starling_sync::lock;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;
/// Below the ~20 s after which S3 endpoints close an idle connection, so that a reused
/// one is seldom already closed by the other end.
const IDLE_FOR: Duration = Duration::from_secs(15);

/// What went wrong on the wire, before [`crate::S3Store`] names the operation and key.
#[derive(Debug)]
pub(crate) enum WireError {
    Transport(String),
    TooLarge { limit: u64, length: Option<u64> },
}

/// An answer with its body read (to at most the caller's bound).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Where the requests go: one scheme, host and port (the bucket's base URL).
#[derive(Clone)]
pub(crate) struct Wire {
    https: bool,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    idle: Arc<Mutex<Vec<Idle>>>,
    dials: Arc<AtomicU64>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("https", &self.https)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Wire {
    pub(crate) fn new(base: &Url) -> Result<Self, String> {
        let https = match base.scheme() {
            "http" => false,
            "https" => true,
            s => return Err(format!("endpoint scheme {s:?} is not http or https")),
        };
        let host = base
            .host_str()
            .ok_or("the endpoint has no host")?
            .to_owned();
        let port = base
            .port_or_known_default()
            .ok_or("the endpoint has no port")?;
        let tls = https.then(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // ring, as for webhooks: it builds with a C compiler alone (aws-lc-rs wants
            // cmake); its provider is deprecated only for lacking the post-quantum kx.
            #[allow(deprecated)]
            let provider = rustls::crypto::ring::default_provider();
            rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_safe_default_protocol_versions()
                .map(|b| {
                    TlsConnector::from(Arc::new(
                        b.with_root_certificates(roots).with_no_client_auth(),
                    ))
                })
        });
        let tls = tls
            .transpose()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        Ok(Self {
            https,
            host,
            port,
            tls,
            idle: Arc::default(),
            dials: Arc::default(),
        })
    }

    /// Sends `method url` with `body` and reads the answer's body: up to `ok_limit`
    /// bytes for a 2xx, up to `err_limit` for anything else (an error document).
    pub(crate) async fn exchange(
        &self,
        method: Method,
        url: &Url,
        body: Bytes,
        ok_limit: u64,
        err_limit: u64,
    ) -> Result<Answer, WireError> {
        let request = || self.request(method.clone(), url, body.clone());
        if let Some(sender) = self.take_idle() {
            match self.send(sender, request()?, ok_limit, err_limit).await {
                Err(Retry::Fresh(_)) => {}
                Err(Retry::No(e)) => return Err(e),
                Ok(a) => return Ok(a),
            }
        }
        let sender = self.dial().await?;
        match self.send(sender, request()?, ok_limit, err_limit).await {
            Ok(a) => Ok(a),
            Err(Retry::Fresh(e) | Retry::No(e)) => Err(e),
        }
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, WireError> {
        // Origin form on a connection of our own; Host as signed (port only when not
        // the scheme's default, like the signer).
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let default_port = if self.https { 443 } else { 80 };
        let host = if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host)
            // S3 wants a length even on an empty PUT (411 otherwise).
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|e| WireError::Transport(format!("building the request: {e}")))
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = lock(&self.idle);
        while let Some(c) = idle.pop() {
            // Not `is_ready`: a connection that just finished a body may not have
            // been polled back to idle yet; `send` waits for it to be ready.
            if c.since.elapsed() < IDLE_FOR && !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        idle.retain(|c| c.since.elapsed() < IDLE_FOR && !c.sender.is_closed());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Connections opened so far (a pool that works keeps this far below requests).
    pub(crate) fn dials(&self) -> u64 {
        self.dials.load(Ordering::Relaxed)
    }

    async fn dial(&self) -> Result<SendRequest<Full<Bytes>>, WireError> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        let t = |what: &str, e: &dyn std::fmt::Display| {
            WireError::Transport(format!(
                "{what} {}:{}: {e}",
                self.host.trim_matches(['[', ']']),
                self.port
            ))
        };
        let stream = TcpStream::connect((self.host.trim_matches(['[', ']']), self.port))
            .await
            .map_err(|e| t("connecting to", &e))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| t("TLS name of", &e))?;
                let stream = tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| t("TLS handshake with", &e))?;
                handshake(TokioIo::new(stream)).await
            }
            None => handshake(TokioIo::new(stream)).await,
        }
    }

    async fn send(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        req: Request<Full<Bytes>>,
        ok_limit: u64,
        err_limit: u64,
    ) -> Result<Answer, Retry> {
        if sender.ready().await.is_err() {
            return Err(Retry::Fresh(WireError::Transport(
                "connection closed".into(),
            )));
        }
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            // Nothing came back: the request may be sent again on another connection.
            Err(e) => return Err(Retry::Fresh(WireError::Transport(describe(&e)))),
        };
        let status = resp.status();
        let limit = if status.is_success() {
            ok_limit
        } else {
            err_limit
        };
        let (parts, body) = resp.into_parts();
        let (body, complete) = read_bounded(&parts.headers, body, limit, status.is_success())
            .await
            .map_err(Retry::No)?;
        if !complete {
            if status.is_success() {
                return Err(Retry::No(WireError::TooLarge {
                    limit,
                    length: announced_length(&parts.headers),
                }));
            }
            // An error document cut at its bound still names the error; the connection
            // is left mid-body, so it is not reused.
            return Ok(Answer { status, body });
        }
        // The whole body is in: the connection can carry the next request.
        self.give_back(sender);
        Ok(Answer { status, body })
    }
}

enum Retry {
    /// Failed before any answer: worth one more try on a new connection.
    Fresh(WireError),
    No(WireError),
}

async fn handshake<I>(io: TokioIo<I>) -> Result<SendRequest<Full<Bytes>>, WireError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| WireError::Transport(format!("HTTP handshake: {}", describe(&e))))?;
    // Drives the connection; ends when the server closes it or the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Reads `body` to its end or to `limit` bytes, whichever comes first: `false` when it
/// stopped at the limit (or, with `refuse_unread`, when the announced length is past it:
/// nothing is read then). The announced length sizes the buffer only up to the limit.
async fn read_bounded(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: u64,
    refuse_unread: bool,
) -> Result<(Bytes, bool), WireError> {
    let announced = announced_length(headers);
    if refuse_unread && announced.is_some_and(|n| n > limit) {
        return Ok((Bytes::new(), false));
    }
    let capacity = announced.unwrap_or(0).min(limit);
    let mut buf = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| WireError::Transport(describe(&e)))?;
        if let Ok(data) = frame.into_data() {
            let room = usize::try_from(limit).unwrap_or(usize::MAX) - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                return Ok((buf.freeze(), false));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((buf.freeze(), true))
}

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn describe(e: &hyper::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}
