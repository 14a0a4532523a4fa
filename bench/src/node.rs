//! A `starling serve` started by a harness: a config of its own in a fresh directory
//! (free ports on loopback, one channel per publisher), its log in that directory,
//! killed when dropped. Shared by `rtmp-load` and `srt-load`.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{free_port, free_udp_port, proc_usage};

/// Why a node could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("the node did not come up within 20 s (see its log in {0})")]
    NotUp(String),
}

#[derive(Debug)]
pub struct Node {
    child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The SRT listener (UDP), when asked for.
    pub srt: Option<SocketAddr>,
    /// The WebRTC (ICE) UDP port, on loopback.
    pub webrtc: SocketAddr,
}

impl Node {
    /// Starts `bin serve` in `dir` with `channels` (name, stream key), logging warnings
    /// only; with an SRT listener when `srt`.
    pub fn start(
        bin: &Path,
        dir: &Path,
        channels: &[(String, String)],
        srt: bool,
    ) -> Result<Node, NodeError> {
        Node::start_with(bin, dir, channels, srt, "")
    }

    /// [`Node::start`] with `extra` config sections (TOML; not `[server]`, `[rtmp]`,
    /// `[srt]` or `[webrtc]`, which this writes).
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        channels: &[(String, String)],
        srt: bool,
        extra: &str,
    ) -> Result<Node, NodeError> {
        let io = |what| move |e| NodeError::Io(what, e);
        std::fs::create_dir_all(dir).map_err(io("creating the node's directory"))?;
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let rtmp = loopback(free_port());
        let http = loopback(free_port());
        let srt = srt.then(|| loopback(free_udp_port()));
        let webrtc = loopback(free_udp_port());
        let mut cfg = format!(
            "[server]\nhttp_listen = \"{http}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n[rtmp]\nlisten = \"{rtmp}\"\n[webrtc]\nudp_listen = \"{webrtc}\"\n",
            dir.join("data").display()
        );
        match srt {
            // Every sender of a harness comes from 127.0.0.1: lift the per-address cap.
            Some(a) => cfg.push_str(&format!(
                "[srt]\nlisten = \"{a}\"\nmax_connections_per_address = 100000\n"
            )),
            None => cfg.push_str("[srt]\nenabled = false\n"),
        }
        cfg.push_str(extra);
        cfg.push('\n');
        for (name, key) in channels {
            cfg.push_str(&format!(
                "[[channels]]\nname = \"{name}\"\nstream_key = \"{key}\"\n"
            ));
        }
        let path = dir.join("starling.toml");
        std::fs::write(&path, cfg).map_err(io("writing the node's config"))?;
        let log = std::fs::File::create(dir.join("starling.log"))
            .map_err(io("creating the node's log"))?;
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("starting starling"))?;
        let node = Node {
            child,
            rtmp,
            http,
            srt,
            webrtc,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(rtmp).is_err() || node.metrics().is_err() {
            if Instant::now() > deadline {
                return Err(NodeError::NotUp(dir.display().to_string()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(node)
    }

    /// The node's `/metrics` text.
    pub fn metrics(&self) -> Result<String, NodeError> {
        let io = |e| NodeError::Io("reading /metrics", e);
        let mut s = TcpStream::connect(self.http).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io)?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .map_err(io)?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(io)?;
        Ok(out)
    }

    /// (CPU seconds, resident KiB) of the node.
    pub fn usage(&self) -> (f64, u64) {
        proc_usage(self.child.id())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
