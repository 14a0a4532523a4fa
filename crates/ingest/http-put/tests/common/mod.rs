//! Shared by the push ingest's end-to-end tests: the routes served on 127.0.0.1:0 over a
//! store in a fresh temp directory, a test authoriser, a raw HTTP/1.1 client (so that
//! nothing between the test and the server cleans up a path), and a store walker.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use starling_http_put::{router, PushConfig, PushIngest};
use starling_ingest_auth::{AuthError, Authorizer, BoxFuture, PlayGrant, PublishGrant};
use starling_store::LocalDirStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// "k-news" publishes to "news", "k-sports" to "sports"; every other key is unknown.
#[derive(Debug)]
pub struct TestAuth;

impl Authorizer for TestAuth {
    fn authorize_publish<'a>(
        &'a self,
        _app: &'a str,
        key: &'a str,
        _peer: SocketAddr,
    ) -> BoxFuture<'a, Result<PublishGrant, AuthError>> {
        let channel = match key {
            "k-news" => Some("news"),
            "k-sports" => Some("sports"),
            _ => None,
        };
        Box::pin(async move {
            let channel = channel.ok_or(AuthError::UnknownKey)?;
            Ok(PublishGrant {
                channel: channel.into(),
                takeover: false,
                key_id: None,
                srt_passphrase: None,
            })
        })
    }

    fn authorize_play<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Option<&'a str>,
        _: SocketAddr,
    ) -> BoxFuture<'a, Result<PlayGrant, AuthError>> {
        Box::pin(async { Err(AuthError::UnknownKey) })
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub ingest: Arc<PushIngest>,
    /// The store's root (created by the store on its first write).
    pub dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn start(name: &str, config: PushConfig) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "starling-put-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let ingest = PushIngest::new(config, Arc::new(LocalDirStore::new(&dir)));
    let app: axum::Router = router(ingest.clone(), Arc::new(TestAuth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        addr,
        ingest,
        dir,
        task,
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// One request on its own connection, sent byte for byte as given: `target` is not
/// normalised, and `body` goes with a Content-Length unless `head` has its own framing.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    head: &str,
    body: &[u8],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let framing = if head.to_ascii_lowercase().contains("content-length")
        || head.to_ascii_lowercase().contains("transfer-encoding")
    {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{head}{framing}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) and close before the body is all sent.
    let _ = s.write_all(body).await;
    read_answer(&mut s).await
}

pub async fn read_answer(s: &mut tokio::net::TcpStream) -> Answer {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}\r\n")
}

/// Every file under `dir`, as paths relative to it, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn boxed(kind: &[u8; 4], payload_len: usize) -> Vec<u8> {
    let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.resize(payload_len + 8, 0);
    v
}

/// A minimal fMP4 media segment (moof + mdat).
pub fn fmp4_segment() -> Vec<u8> {
    [boxed(b"moof", 16), boxed(b"mdat", 64)].concat()
}

/// Two MPEG-TS packets.
pub fn ts_segment() -> Vec<u8> {
    let mut v = vec![0xffu8; 188 * 2];
    v[0] = 0x47;
    v[188] = 0x47;
    v
}
