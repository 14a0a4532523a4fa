//! A minimal SSE client (raw HTTP/1.1 over a tokio `TcpStream`, chunked decoding) and a
//! swarm of them, for the fan-out tests and the `sse_load` example.
//!
//! The swarm runs in a child process: on this machine a process may hold at most 20,000
//! descriptors (hard limit, no CAP_SYS_RESOURCE), and 10,000 connections on loopback
//! need 10,000 on each side.
#![allow(dead_code)]

use std::{
    io::{self, BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, ChildStdout, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{mpsc, Semaphore},
};

/// Longest response head or chunk-size line accepted from the server under test.
const MAX_HEAD: usize = 16 * 1024;

/// One SSE event as the client saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
    /// A block with only comment lines (keep-alive).
    pub comment_only: bool,
}

#[derive(Debug)]
pub struct SseClient {
    stream: TcpStream,
    /// Bytes read off the socket and not yet dechunked.
    raw: Vec<u8>,
    /// Dechunked body bytes not yet parsed into events.
    body: Vec<u8>,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    pub head: String,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl SseClient {
    /// `GET path` with an optional `Last-Event-ID`; returns once the response head is in.
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
    ) -> io::Result<Self> {
        let mut stream = TcpStream::connect(addr).await?;
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut c = Self {
            stream,
            raw: Vec::with_capacity(1024),
            body: Vec::new(),
            chunk_left: 0,
            head: String::new(),
        };
        let end = loop {
            if let Some(i) = c.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if c.raw.len() > MAX_HEAD {
                return Err(bad("response head too long"));
            }
            c.read_more().await?;
        };
        c.head = String::from_utf8_lossy(&c.raw[..end]).into_owned();
        c.raw.drain(..end + 4);
        if !c.head.starts_with("HTTP/1.1 200") {
            return Err(bad(format!("unexpected response: {}", c.head)));
        }
        if !c
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Err(bad(format!("expected a chunked body: {}", c.head)));
        }
        Ok(c)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.raw.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// Moves whole or partial chunk data from `raw` to `body`.
    fn dechunk(&mut self) -> io::Result<()> {
        loop {
            if self.chunk_left > 0 {
                let n = self.chunk_left.min(self.raw.len());
                if n == 0 {
                    return Ok(());
                }
                self.body.extend(self.raw.drain(..n));
                self.chunk_left -= n;
                continue;
            }
            // "\r\n" ending the previous chunk, then "<hex>\r\n".
            let data = if self.raw.starts_with(b"\r\n") {
                &self.raw[2..]
            } else {
                &self.raw[..]
            };
            let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
                if data.len() > MAX_HEAD {
                    return Err(bad("chunk-size line too long"));
                }
                return Ok(());
            };
            let line =
                std::str::from_utf8(&data[..eol]).map_err(|_| bad("chunk size not UTF-8"))?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let skip = eol + 2 + usize::from(self.raw.starts_with(b"\r\n")) * 2;
            self.raw.drain(..skip);
            self.chunk_left = size;
        }
    }

    /// The next event (or keep-alive block).
    pub async fn next_event(&mut self) -> io::Result<SseEvent> {
        loop {
            self.dechunk()?;
            if let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.drain(..i + 2).collect();
                return parse_block(&block[..i]);
            }
            self.read_more().await?;
        }
    }

    /// The next event that is not a keep-alive comment.
    pub async fn next_real_event(&mut self) -> io::Result<SseEvent> {
        loop {
            let e = self.next_event().await?;
            if !e.comment_only {
                return Ok(e);
            }
        }
    }
}

fn parse_block(block: &[u8]) -> io::Result<SseEvent> {
    let text = std::str::from_utf8(block).map_err(|_| bad("event not UTF-8"))?;
    let mut e = SseEvent {
        comment_only: true,
        ..SseEvent::default()
    };
    for line in text.split('\n') {
        if line.starts_with(':') {
            continue;
        }
        e.comment_only = false;
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => e.id = Some(value.to_owned()),
            "event" => e.event = Some(value.to_owned()),
            "data" => {
                if !e.data.is_empty() {
                    e.data.push('\n');
                }
                e.data.push_str(value);
            }
            "retry" => e.retry = value.parse().ok(),
            other => return Err(bad(format!("unknown SSE field {other:?}"))),
        }
    }
    Ok(e)
}

pub fn wall_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

pub const SWARM_ADDR_ENV: &str = "STARLING_SSE_SWARM_ADDR";
pub const SWARM_COUNT_ENV: &str = "STARLING_SSE_SWARM_COUNT";

/// Child side: `count` clients connect to `addr`, each waits for `hello` (then the child
/// prints `SWARM READY`), then for one `state` trigger (then `SWARM DONE <last receipt,
/// µs since the epoch> <first..last spread µs>`). Fails if not all receive it in `wait`.
pub async fn run_swarm(addr: SocketAddr, count: usize, wait: Duration) -> io::Result<()> {
    let connect_started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<io::Result<()>>();
    let (got_tx, mut got_rx) = mpsc::unbounded_channel::<io::Result<(Instant, u128)>>();
    for _ in 0..count {
        let gate = Arc::clone(&gate);
        let ready_tx = ready_tx.clone();
        let got_tx = got_tx.clone();
        tokio::spawn(async move {
            let connected = async {
                let _permit = gate.acquire().await.map_err(|_| bad("closed"))?;
                let mut c = SseClient::connect(addr, "/api/v1/live-state", None).await?;
                let hello = c.next_real_event().await?;
                if hello.event.as_deref() != Some("hello") {
                    return Err(bad(format!("expected hello, got {hello:?}")));
                }
                Ok(c)
            }
            .await;
            let mut c = match connected {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let got = async {
                let e = c.next_real_event().await?;
                let at = (Instant::now(), wall_us());
                if e.event.as_deref() != Some("state") {
                    return Err(bad(format!("expected a state trigger, got {e:?}")));
                }
                Ok(at)
            }
            .await;
            let _ = got_tx.send(got);
            // Hold the connection until the child exits, so the server sees no churn.
            std::future::pending::<()>().await;
        });
    }
    drop((ready_tx, got_tx));
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => return Err(bad("swarm did not connect in time")),
        }
    }
    println!(
        "SWARM READY {count} connected in {} ms",
        connect_started.elapsed().as_millis()
    );
    let mut first: Option<Instant> = None;
    let mut last: Option<(Instant, u128)> = None;
    let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(600);
    let mut received = 0usize;
    // The READY line is the parent's cue to publish; `wait` counts from the first receipt.
    while received < count {
        let until = match first {
            Some(f) => tokio::time::Instant::from_std(f + wait),
            None => deadline,
        };
        match tokio::time::timeout_at(until, got_rx.recv()).await {
            Ok(Some(Ok(at))) => {
                received += 1;
                first = Some(first.map_or(at.0, |f| f.min(at.0)));
                last = Some(last.map_or(at, |l| if at.0 > l.0 { at } else { l }));
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) | Err(_) => {
                return Err(bad(format!(
                    "only {received} of {count} received the trigger"
                )))
            }
        }
    }
    let (first, (last, last_wall)) = first.zip(last).ok_or_else(|| bad("no receipts"))?;
    println!(
        "SWARM DONE {last_wall} {}",
        last.duration_since(first).as_micros()
    );
    Ok(())
}

/// Parent side: the swarm child process and its stdout.
pub struct Swarm {
    pub child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Swarm {
    /// Runs `exe args…` with the swarm's address and size in its environment.
    pub fn spawn(exe: &std::path::Path, args: &[&str], addr: SocketAddr, count: usize) -> Self {
        let mut child = Command::new(exe)
            .args(args)
            .env(SWARM_ADDR_ENV, addr.to_string())
            .env(SWARM_COUNT_ENV, count.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the swarm process");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { child, lines }
    }

    /// Waits for the child's line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read the swarm's output");
            // libtest may have printed "test name ... " on the same line first.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_owned();
            }
        }
        let status = self.child.wait().expect("wait for the swarm");
        panic!("swarm ended ({status}) before printing {prefix:?}");
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
