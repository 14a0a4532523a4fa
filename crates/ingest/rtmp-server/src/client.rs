//! A tokio RTMP client around the sans-IO [`ClientSession`]: publishes or plays one stream.
//!
//! Used by the end-to-end tests (a publisher of our own where ffmpeg cannot publish, e.g.
//! HEVC over Enhanced RTMP), by the load generator in `bench/`, and later by relays.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use starling_rtmp::{amf0, ClientConfig, ClientEvent, ClientSession, RtmpError};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::TcpStream,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("RTMP: {0}")]
    Protocol(#[from] RtmpError),
    #[error("the server closed the connection")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("refused by the server: {code} ({description})")]
    Refused { code: String, description: String },
}

/// One RTMP connection from the client side.
#[derive(Debug)]
pub struct RtmpClient {
    socket: BufWriter<TcpStream>,
    session: ClientSession,
    buf: Vec<u8>,
    timeout: Duration,
}

impl RtmpClient {
    /// Connect to `addr` and open application `app` (`live`).
    pub async fn connect(addr: SocketAddr, app: &str) -> Result<Self, ClientError> {
        Self::connect_with(addr, app, |_| {}).await
    }

    /// [`connect`](Self::connect), with a chance to change the session's settings
    /// (chunk size and the like) first.
    pub async fn connect_with(
        addr: SocketAddr,
        app: &str,
        configure: impl FnOnce(&mut ClientConfig),
    ) -> Result<Self, ClientError> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = socket.set_nodelay(true);
        let mut config = ClientConfig {
            app: app.to_owned(),
            tc_url: format!("rtmp://{addr}/{app}"),
            ..ClientConfig::default()
        };
        configure(&mut config);
        let session = ClientSession::new(config);
        let mut c = Self {
            socket: BufWriter::with_capacity(64 * 1024, socket),
            session,
            buf: vec![0; 64 * 1024],
            timeout: Duration::from_secs(10),
        };
        c.wait_for("connect", |ev| matches!(ev, ClientEvent::Connected))
            .await?;
        Ok(c)
    }

    /// Publish under `name` (a stream key); returns once the server accepted.
    pub async fn publish(&mut self, name: &str) -> Result<(), ClientError> {
        self.session.publish(name);
        self.wait_for("publish", |ev| matches!(ev, ClientEvent::PublishStarted))
            .await
    }

    /// Play `name` (a channel); returns once the server accepted.
    pub async fn play(&mut self, name: &str) -> Result<(), ClientError> {
        self.session.play(name);
        self.wait_for("play", |ev| matches!(ev, ClientEvent::PlayStarted))
            .await
    }

    pub async fn send_metadata(&mut self, value: &amf0::Value) -> Result<(), ClientError> {
        self.session.send_metadata(value);
        self.flush().await
    }

    /// Queue a video tag body; call [`flush`](Self::flush) to send what is queued.
    pub fn queue_video(&mut self, timestamp: u32, data: Bytes) {
        self.session.send_video(timestamp, data);
    }

    pub fn queue_audio(&mut self, timestamp: u32, data: Bytes) {
        self.session.send_audio(timestamp, data);
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        let mut wrote = false;
        while let Some(b) = self.session.poll_transmit() {
            self.socket.write_all(&b).await?;
            wrote = true;
        }
        if wrote {
            self.socket.flush().await?;
        }
        Ok(())
    }

    /// The next event from the server (media while playing, statuses). `None` at EOF.
    pub async fn next_event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        loop {
            if let Some(ev) = self.session.poll_event() {
                return Ok(Some(ev));
            }
            self.flush().await?;
            let n = self.socket.get_mut().read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.session.handle_input(&self.buf[..n])?;
        }
    }

    /// Read and answer whatever the server sent (acks, pings) without waiting for more.
    pub async fn drain_input(&mut self) -> Result<Vec<ClientEvent>, ClientError> {
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(Duration::ZERO, self.socket.get_mut().read(&mut self.buf))
                .await
            {
                Ok(Ok(0)) => return Err(ClientError::Closed),
                Ok(Ok(n)) => self.session.handle_input(&self.buf[..n])?,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        while let Some(ev) = self.session.poll_event() {
            events.push(ev);
        }
        self.flush().await?;
        Ok(events)
    }

    /// Unpublish / stop playing and close.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.session.close();
        self.flush().await?;
        self.socket.shutdown().await?;
        Ok(())
    }

    async fn wait_for(
        &mut self,
        what: &'static str,
        done: impl Fn(&ClientEvent) -> bool,
    ) -> Result<(), ClientError> {
        let timeout = self.timeout;
        let wait = async {
            loop {
                match self.next_event().await? {
                    None => return Err(ClientError::Closed),
                    Some(ev) if done(&ev) => return Ok(()),
                    Some(ClientEvent::Status {
                        level,
                        code,
                        description,
                    }) if level == "error" => {
                        return Err(ClientError::Refused { code, description })
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(what))?
    }
}
