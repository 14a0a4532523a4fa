//! A minimal HTTP/1.1 client, one keep-alive connection at a time, for the load
//! harnesses (`hls-load`, `put-get`): a load generator shares the cores with the node
//! and must cost less than what it measures, and every response it parses comes from
//! our own origin. It sends `Host: bench`, an optional bearer token and a
//! `Content-Length` body (for anything but GET), and reads the status line, the headers
//! and a `Content-Length` or chunked body.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
};

use anyhow::{bail, Context, Result};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
};

/// The read buffer of [`Http::connect`] and [`Http::connect_from`]: small, since bodies
/// larger than it are read straight into the caller's (and a harness may hold thousands
/// of connections).
pub const BUFFER: usize = 8 * 1024;

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Http {
    r: BufReader<TcpStream>,
    line: String,
    head: String,
}

impl Http {
    /// Connects to `addr`, with a read buffer of [`BUFFER`] bytes.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        Self::connect_with_buffer(addr, BUFFER).await
    }

    /// Connects to `addr`, with a read buffer of `capacity` bytes.
    pub async fn connect_with_buffer(addr: SocketAddr, capacity: usize) -> Result<Self> {
        Self::from_stream(TcpStream::connect(addr).await?, capacity)
    }

    /// Connects to `addr` from `source` (a loopback address of its own, for a node's
    /// per-address cap), with a read buffer of [`BUFFER`] bytes.
    pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> Result<Self> {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(source, 0))
            .with_context(|| format!("binding {source}"))?;
        Self::from_stream(sock.connect(addr).await?, BUFFER)
    }

    fn from_stream(s: TcpStream, capacity: usize) -> Result<Self> {
        s.set_nodelay(true)?;
        Ok(Self {
            r: BufReader::with_capacity(capacity, s),
            line: String::new(),
            head: String::new(),
        })
    }

    /// GET `path`: (status, body).
    pub async fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>)> {
        let mut body = Vec::new();
        let status = self.get_into(path, &mut body).await?;
        Ok((status, body))
    }

    /// GET `path` into `body` (reused between requests): the status.
    pub async fn get_into(&mut self, path: &str, body: &mut Vec<u8>) -> Result<u16> {
        self.request("GET", path, None, &[], body).await
    }

    /// Sends `method path` with `auth` (a bearer token) and `body` (with its
    /// `Content-Length` unless the method is GET), and reads the answer whole into `out`
    /// (reused between requests): the status.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u16> {
        self.head.clear();
        let _ = write!(self.head, "{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(key) = auth {
            let _ = write!(self.head, "Authorization: Bearer {key}\r\n");
        }
        if method != "GET" {
            let _ = write!(self.head, "Content-Length: {}\r\n", body.len());
        }
        self.head.push_str("\r\n");
        let w = self.r.get_mut();
        w.write_all(self.head.as_bytes()).await?;
        if !body.is_empty() {
            w.write_all(body).await?;
        }
        self.read_response(out).await
    }

    /// Reads a response: its body into `out`, the status returned.
    async fn read_response(&mut self, out: &mut Vec<u8>) -> Result<u16> {
        self.line.clear();
        if self.r.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        let status: u16 = self.line.get(9..12).context("bad status line")?.parse()?;
        let mut len = 0usize;
        let mut chunked = false;
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        // Into spare capacity, without zeroing it first (segments and parts with a
        // keyframe are hundreds of KB, and the generator shares the cores with the node).
        out.clear();
        if chunked {
            loop {
                self.line.clear();
                self.r.read_line(&mut self.line).await?;
                let size = usize::from_str_radix(
                    self.line.trim().split(';').next().unwrap_or_default(),
                    16,
                )?;
                if size > 0 {
                    let got = (&mut self.r).take(size as u64).read_to_end(out).await?;
                    if got != size {
                        bail!("connection closed in a chunk");
                    }
                }
                self.line.clear();
                self.r.read_line(&mut self.line).await?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let got = (&mut self.r).take(len as u64).read_to_end(out).await?;
            if got != len {
                bail!("connection closed after {got} of {len} bytes");
            }
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Reads from `s` until `want` bytes came, then answers `answer`.
    async fn exchange(s: &mut TcpStream, want: usize, answer: &[u8]) -> Result<Vec<u8>> {
        let mut got = vec![0; want];
        s.read_exact(&mut got).await?;
        s.write_all(answer).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn requests_and_both_body_framings() -> Result<()> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let put = b"PUT /ingest/a/x.m4s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer k\r\nContent-Length: 3\r\n\r\nabc";
        let get = b"GET /live/a/x.m4s HTTP/1.1\r\nHost: bench\r\n\r\n";
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await?;
            let a = exchange(
                &mut s,
                put.len(),
                b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
            .await?;
            let b = exchange(
                &mut s,
                get.len(),
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            )
            .await?;
            Ok::<_, anyhow::Error>((a, b))
        });
        let mut http = Http::connect(addr).await?;
        let mut out = Vec::new();
        let status = http
            .request("PUT", "/ingest/a/x.m4s", Some("k"), b"abc", &mut out)
            .await?;
        assert_eq!((status, out.as_slice()), (201, &b"abcde"[..]));
        let (status, body) = http.get("/live/a/x.m4s").await?;
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        let (a, b) = server.await??;
        assert_eq!((a.as_slice(), b.as_slice()), (&put[..], &get[..]));
        // The server hung up: the next request says so.
        assert!(http.get("/").await.is_err());
        Ok(())
    }
}
