//! One webhook attempt on the wire: resolve, check, connect, (TLS,) POST.
//!
//! No connection pool and no general-purpose client: each attempt resolves the URL's
//! host, drops every address the [`TargetPolicy`] refuses (so a name that rebinds to a
//! private address after the webhook was created is refused too), and connects to an
//! address that passed — the one that was checked, never a second lookup's answer.
//! `https://` goes through rustls (ring) with Mozilla's roots plus the operator's extra
//! CA certificates; the certificate must name the URL's host. HTTP/1.1, no redirects.
//!
//! Errors name addresses, never the URL (its path or query may hold a receiver's token).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HOST;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::retry::Outcome;
use crate::target::TargetPolicy;

/// Why an extra CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM text holds no certificate, or a broken one.
    #[error("no usable CA certificate in the PEM data: {0}")]
    BadPem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Certificates (`-----BEGIN CERTIFICATE-----` blocks) from PEM text, e.g. a private
/// CA that signs internal receivers' certificates.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::BadPem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The client side of an attempt; built once per dispatcher.
#[derive(Clone)]
pub(crate) struct WireClient {
    tls: TlsConnector,
    policy: TargetPolicy,
}

impl std::fmt::Debug for WireClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl WireClient {
    /// Mozilla's roots plus `extra_roots`; TLS 1.2 and 1.3 with ring's safe defaults.
    pub(crate) fn new(
        policy: TargetPolicy,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots.add(cert.clone())?;
        }
        // ring's provider lacks the post-quantum key exchange (hence deprecated); chosen
        // anyway because it builds with a C compiler alone, where aws-lc-rs needs a
        // cmake build. Webhook bodies are event notices, not long-lived secrets.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            policy,
        })
    }

    /// POSTs `req` (its URI absolute) and returns the status; no timeout here (the
    /// caller bounds the whole attempt).
    pub(crate) async fn post(&self, req: Request<Full<Bytes>>) -> Outcome {
        let uri = req.uri().clone();
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Outcome::Unsendable("only http:// and https:// URLs".into()),
        };
        let Some(host) = uri.host().map(str::to_owned) else {
            return Outcome::Unsendable("the URL has no host".into());
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if let Err(e) = self.policy.check_host(&host) {
            return Outcome::Unsendable(e.to_string());
        }
        let addrs = match resolve(&host, port).await {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e),
        };
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.policy.check_addr(a.ip()) {
                Ok(()) => true,
                Err(e) => {
                    refused.get_or_insert(e);
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return match refused {
                Some(e) => Outcome::Unsendable(format!("the host resolves to {e}")),
                None => Outcome::Failed("the host resolves to no address".into()),
            };
        }
        let mut last_err = String::new();
        let mut stream = None;
        for addr in &allowed {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = format!("connecting to {addr}: {e}"),
            }
        }
        let Some(stream) = stream else {
            return Outcome::Failed(last_err);
        };
        let _ = stream.set_nodelay(true);
        let req = match origin_form(req, &uri, &host, port, https) {
            Ok(r) => r,
            Err(e) => return Outcome::Unsendable(e),
        };
        if https {
            let name = match ServerName::try_from(host.trim_matches(['[', ']']).to_owned()) {
                Ok(n) => n,
                Err(e) => return Outcome::Unsendable(format!("not a TLS server name: {e}")),
            };
            match self.tls.connect(name, stream).await {
                Ok(tls) => exchange(TokioIo::new(tls), req).await,
                Err(e) => Outcome::Failed(format!("TLS handshake: {e}")),
            }
        } else {
            exchange(TokioIo::new(stream), req).await
        }
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_matches(['[', ']']);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    tokio::net::lookup_host((bare, port))
        .await
        .map(Iterator::collect)
        .map_err(|e| format!("resolving the host: {e}"))
}

/// The request as sent on a connection of its own: path and query only, and `Host`.
fn origin_form(
    req: Request<Full<Bytes>>,
    uri: &Uri,
    host: &str,
    port: u16,
    https: bool,
) -> Result<Request<Full<Bytes>>, String> {
    let (mut parts, body) = req.into_parts();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path.parse().map_err(|e| format!("invalid path: {e}"))?;
    let default_port = if https { 443 } else { 80 };
    let host_header = if port == default_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    parts.headers.insert(
        HOST,
        host_header
            .parse()
            .map_err(|_| "the host is not a valid header value".to_owned())?,
    );
    Ok(Request::from_parts(parts, body))
}

async fn exchange<I>(io: TokioIo<I>, req: Request<Full<Bytes>>) -> Outcome
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => return Outcome::Failed(format!("HTTP handshake: {e}")),
    };
    // The connection is driven until the response head is in; the body is not read.
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let outcome = match sender.send_request(req).await {
        Ok(resp) => Outcome::Status(resp.status().as_u16()),
        Err(e) => {
            let detail =
                std::error::Error::source(&e).map_or_else(String::new, |s| format!(": {s}"));
            Outcome::Failed(format!("{e}{detail}"))
        }
    };
    driver.abort();
    outcome
}
