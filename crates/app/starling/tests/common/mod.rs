//! Shared harness of the end-to-end tests: start the real `starling serve` on free
//! ports with a config of the test's own, capture its log, stop it with SIGTERM.
//!
//! Every secret a test uses (the config's stream key, admin passwords, keys and tokens
//! made over the API: [`Server::secret`]) is checked against the server's whole log when
//! the server stops, by [`Server::stop`] or on drop: no key, token or password may
//! reach a log line, whichever path it came in by. One read of one file per test.
#![allow(dead_code)]

#[path = "../../../../control/cluster/tests/common/nats.rs"]
pub mod nats;
pub mod srt;

use std::{
    fs,
    io::Read,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Server {
    pub child: Option<Child>,
    pub rtmp: SocketAddr,
    /// The SRT listener's UDP address.
    pub srt: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// `serve` or `demo`, and the environment it runs with (for restarts).
    command: String,
    env: Vec<(String, String)>,
    starts: u32,
    /// Secrets that must never appear in the log (checked when the server stops).
    secrets: Mutex<Vec<String>>,
    checked: bool,
    /// An edge node (`roles = "edge"`): HTTP only, no RTMP or SRT listener.
    edge: bool,
}

pub const KEY: &str = "e2e-secret-key-1";
pub const CHANNEL: &str = "e2e";

/// A fresh directory under the target dir (kept after the run for post-mortems).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        nanos()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Server {
    /// Start with the default test channel plus `extra` TOML appended to the config.
    pub fn start(name: &str, extra: &str) -> Server {
        Self::start_command(name, extra, "serve", &[])
    }

    /// [`Server::start`] with extra `STARLING_*` environment variables (config keys of
    /// the `[server]` section, which `extra` cannot add to).
    pub fn start_env(name: &str, extra: &str, env: &[(&str, &str)]) -> Server {
        Self::start_command(name, extra, "serve", env)
    }

    /// `starling demo` (the built-in source on channel `demo`), same config otherwise.
    pub fn start_demo(name: &str, extra: &str) -> Server {
        Self::start_command(name, extra, "demo", &[])
    }

    /// Like [`Server::start`], with `server_extra` TOML inside `[server]` as well.
    pub fn start_with_server(name: &str, server_extra: &str, extra: &str) -> Server {
        Self::start_full(name, server_extra, extra, "", "serve", &[], "127.0.0.1:0")
    }

    /// [`Server::start`] with the RTMP listener on `rtmp_listen` instead of loopback
    /// (e.g. `10.77.0.2:0`, the address of a test's network namespace).
    pub fn start_rtmp_at(name: &str, rtmp_listen: &str) -> Server {
        Self::start_full(name, "", "", "", "serve", &[], rtmp_listen)
    }

    fn start_command(name: &str, extra: &str, command: &str, env: &[(&str, &str)]) -> Server {
        Self::start_full(name, "", extra, "", command, env, "127.0.0.1:0")
    }

    /// [`Server::start`] with the test channel recording (its runs stay in the store
    /// after the next run begins).
    pub fn start_recording(name: &str, extra: &str) -> Server {
        Self::start_full(
            name,
            "",
            extra,
            "recording = true",
            "serve",
            &[],
            "127.0.0.1:0",
        )
    }

    /// [`Server::start`] with `channel_extra` TOML in the test channel's table.
    pub fn start_channel(name: &str, extra: &str, channel_extra: &str) -> Server {
        Self::start_full(name, "", extra, channel_extra, "serve", &[], "127.0.0.1:0")
    }

    /// [`Server::start_channel`] with extra environment variables.
    pub fn start_channel_env(
        name: &str,
        extra: &str,
        channel_extra: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Self::start_full(name, "", extra, channel_extra, "serve", env, "127.0.0.1:0")
    }

    /// Starts `command` over a fresh config: `server_extra` inside `[server]`, the RTMP
    /// listener on `rtmp_listen`, `extra` after the `[rtmp]` table, `channel_extra` in
    /// the test channel's table.
    fn start_full(
        name: &str,
        server_extra: &str,
        extra: &str,
        channel_extra: &str,
        command: &str,
        env_extra: &[(&str, &str)],
        rtmp_listen: &str,
    ) -> Server {
        let dir = temp_dir(name);
        let config = dir.join("starling.toml");
        // Port 0: the server picks free ports itself and logs them, so tests running in
        // parallel never race for a port.
        fs::write(
            &config,
            format!(
                "[server]\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{server_extra}\n\n[srt]\nlisten = \"127.0.0.1:0\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n[rtmp]\nlisten = \"{rtmp_listen}\"\n{extra}\n\n[[channels]]\nname = \"{CHANNEL}\"\nstream_key = \"{KEY}\"\n{channel_extra}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut env = vec![(
            "RUST_LOG".to_owned(),
            "info,starling_rtmp_server=debug".to_owned(),
        )];
        if !extra.contains("reconnect_grace_ms") {
            // Tests that wait for a stream's end should not wait out the 15 s default
            // reconnect grace; the reconnect tests set their own.
            env.push((
                "STARLING_ORIGIN_RECONNECT_GRACE_MS".to_owned(),
                "1000".to_owned(),
            ));
        }
        if !extra.contains("[transcode]")
            && !env_extra
                .iter()
                .any(|(k, _)| k.starts_with("STARLING_TRANSCODE_"))
        {
            // The ladder costs CPU that most tests do not want to share: the tests of
            // the ladder turn it on.
            env.push(("STARLING_TRANSCODE_ENABLED".to_owned(), "false".to_owned()));
        }
        env.extend(
            env_extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let unset: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut server = Server {
            child: None,
            rtmp: unset,
            srt: unset,
            http: unset,
            log: dir.join("starling.log"),
            dir,
            command: command.to_owned(),
            env,
            starts: 0,
            secrets: Mutex::new(vec![KEY.to_owned()]),
            checked: false,
            edge: false,
        };
        server.spawn();
        server.wait_ready();
        server
    }

    /// Starts the process over the test's config and data directory, with a log file of
    /// its own (`starling.log`, then `starling.N.log` after restarts).
    fn spawn(&mut self) {
        if self.starts > 0 {
            self.log = self.dir.join(format!("starling.{}.log", self.starts));
        }
        self.starts += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_starling"))
            .args([self.command.as_str(), "--config"])
            .arg(self.dir.join("starling.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&self.log).unwrap())
            .spawn()
            .expect("starting starling");
        self.child = Some(child);
    }

    /// An edge node (`roles = "edge"`) filling from `origin_url` (`http://HOST:PORT`),
    /// over the control database in `data_dir` (an origin's: the same channels and
    /// signing key, as a cluster's shared database gives), with `server_extra` TOML in
    /// its `[server]` section.
    pub fn start_edge(name: &str, origin_url: &str, data_dir: &Path, server_extra: &str) -> Server {
        let dir = temp_dir(name);
        let config = dir.join("starling.toml");
        fs::write(
            &config,
            format!(
                "[server]\nroles = \"edge\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{server_extra}\n\n[edge]\n{origin}\n\n[[channels]]\nname = \"{CHANNEL}\"\nstream_key = \"{KEY}\"\n",
                data_dir.display(),
                // Empty: the cluster's directory names each channel's origin.
                origin = if origin_url.is_empty() {
                    String::new()
                } else {
                    format!("origin = \"{origin_url}\"")
                },
            ),
        )
        .unwrap();
        let unset: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut server = Server {
            child: None,
            rtmp: unset,
            srt: unset,
            http: unset,
            log: dir.join("starling.log"),
            dir,
            command: "serve".to_owned(),
            env: vec![("RUST_LOG".to_owned(), "info".to_owned())],
            starts: 0,
            secrets: Mutex::new(vec![KEY.to_owned()]),
            checked: false,
            edge: true,
        };
        server.spawn();
        server.wait_ready();
        server
    }

    /// The data directory a node started by this harness keeps its database in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `kill -9`: no shutdown path at all, as after a crash or an OOM kill.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the node again over the same config and data (after [`stop`](Self::stop)
    /// or [`kill9`](Self::kill9)); it binds new free ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn();
        self.wait_ready();
    }

    /// Status and body bytes of a GET (for media: compared byte for byte).
    pub fn http_bytes(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        use std::io::Write;
        let mut s = TcpStream::connect(self.http).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&out[..end]).into_owned();
        let status = head.get(9..12)?.parse().ok()?;
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{path}: chunked media response"
        );
        Some((status, out[end + 4..].to_vec()))
    }

    /// Reads the bound addresses from the log, then waits until both ports answer.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr_after = |text: &str, marker: &str| -> Option<SocketAddr> {
            let line = text.lines().find(|l| l.contains(marker))?;
            line.split("addr=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        while Instant::now() < deadline {
            let text = self.log_text();
            if self.edge {
                if let Some(http) = addr_after(&text, "HTTP listening") {
                    self.http = http;
                    if self.http_get("/healthz").is_some() {
                        return;
                    }
                }
            } else if let (Some(http), Some(rtmp), Some(srt)) = (
                addr_after(&text, "HTTP listening"),
                addr_after(&text, "RTMP listening"),
                addr_after(&text, "SRT listening"),
            ) {
                self.http = http;
                self.rtmp = rtmp;
                self.srt = srt;
                if TcpStream::connect(self.rtmp).is_ok() && self.http_get("/healthz").is_some() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("starling exited with {status}; log:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("starling did not come up; log:\n{}", self.log_text());
    }

    /// A minimal HTTP/1.1 GET (no client library needed for health and metrics).
    pub fn http_get(&self, path: &str) -> Option<String> {
        let (status, text) = self.http_raw(path)?;
        (status == 200).then_some(text)
    }

    /// Status and whole response text (headers included) of a GET of `path` as given,
    /// byte for byte (no normalisation: traversal attempts reach the server as written).
    pub fn http_raw(&self, path: &str) -> Option<(u16, String)> {
        use std::io::Write;
        let mut s = TcpStream::connect(self.http).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let status = out.get(9..12)?.parse().ok()?;
        Some((status, out))
    }

    /// Any HTTP/1.1 request with extra headers and an optional JSON body; the response
    /// split into status, headers and (de-chunked) body.
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json_body: Option<&str>,
    ) -> HttpResponse {
        http_request_at(self.http, method, path, headers, json_body)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A metric's value from /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.http_get("/metrics").expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found"))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle`; returns the log.
    pub fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("log never said {needle:?}; log:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Registers a secret (a stream key, token, password) that must never reach this
    /// server's log; returns it, so `let key = server.secret(&v["secret"])` reads well.
    /// Short strings are refused: they could appear in a log by chance.
    pub fn secret(&self, secret: &str) -> String {
        assert!(
            secret.len() >= 8,
            "a secret to look for in the log must have at least 8 characters"
        );
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.to_owned());
        secret.to_owned()
    }

    /// Panics if any registered secret is in the log (naming which one by its position,
    /// never by its value: the panic message is itself a log).
    pub fn assert_no_secret_in_log(&self) {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        // Every process's log, restarts included.
        let logs = (0..self.starts).map(|n| match n {
            0 => self.dir.join("starling.log"),
            n => self.dir.join(format!("starling.{n}.log")),
        });
        for path in logs {
            let log = fs::read_to_string(&path).unwrap_or_default();
            for (i, secret) in secrets.iter().enumerate() {
                if let Some(line) = log.lines().position(|l| l.contains(secret.as_str())) {
                    panic!(
                        "secret #{i} (of {}; {} characters) reached the server's log at line {} of {}",
                        secrets.len(),
                        secret.len(),
                        line + 1,
                        path.display()
                    );
                }
            }
        }
    }

    /// `starling admin create-user` against this server's config (password from the
    /// environment, as in CI: no stdin), asserting it worked. The password is registered
    /// as a secret.
    pub fn create_admin(&self, email: &str, password: &str) {
        self.secret(password);
        let out = Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(["admin", "create-user", "--config"])
            .arg(self.dir.join("starling.toml"))
            .args(["--email", email])
            .env("STARLING_ADMIN_PASSWORD", password)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running starling admin create-user");
        assert!(
            out.status.success(),
            "create-user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("created admin"));
    }

    /// `POST path` with a JSON body as the signed-in `cookie` (from [`Server::login`]):
    /// the created object; anything but 201 fails the test with the answer.
    pub fn api_created(
        &self,
        cookie: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let r = self.http_request("POST", path, &[("Cookie", cookie)], Some(&body.to_string()));
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Signs in over the API (an account from [`Server::create_admin`]) and returns the
    /// session cookie as `name=value`, whose value the log must never show.
    pub fn login(&self, email: &str, password: &str) -> String {
        let body = format!(r#"{{"email":{email:?},"password":{password:?}}}"#);
        let r = self.http_request("POST", "/api/v1/login", &[], Some(&body));
        assert_eq!(r.status, 200, "login: {}", r.body);
        let cookie = r
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        if let Some((_, value)) = cookie.split_once('=') {
            self.secret(value);
        }
        cookie
    }

    /// An ffmpeg SRT URL for this server with `stream_id` (as is: ffmpeg's libsrt
    /// takes the query value up to the next `&`, `#`, `,` and `=` included) and extra
    /// query parameters (`&latency=...`).
    pub fn srt_url(&self, stream_id: &str, extra: &str) -> String {
        format!("srt://{}?streamid={stream_id}{extra}", self.srt)
    }

    pub fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://{}/live/{name}", self.rtmp)
    }

    /// SIGTERM and wait: the graceful shutdown path is part of what is tested. Then the
    /// log is checked for secrets.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let status = self.stop_process();
        self.checked = true;
        self.assert_no_secret_in_log();
        status
    }

    fn stop_process(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "starling did not stop within 15 s of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Tests that never call `stop` are checked here; not while a test is already
        // failing (a second panic would abort and hide the first).
        if !self.checked && !std::thread::panicking() {
            self.assert_no_secret_in_log();
        }
    }
}

/// [`Server::http_request`] to any address (e.g. a second listener of the server).
pub fn http_request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json_body: Option<&str>,
) -> HttpResponse {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = json_body.unwrap_or("");
    if json_body.is_some() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        let mut body = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            body.push_str(tail.get(..n).unwrap_or(tail));
            rest = tail.get(n + 2..).unwrap_or("");
        }
        body
    } else {
        rest.to_owned()
    };
    HttpResponse {
        status,
        head: head.to_owned(),
        body,
    }
}

/// A response of [`Server::http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Status line and headers, as received.
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The e2e tests need ffmpeg; `.ci/run` installs it. Without it they fail loudly rather
/// than pass silently, unless STARLING_SKIP_FFMPEG_TESTS=1 says a person chose so.
pub fn require_ffmpeg() -> bool {
    if have("ffmpeg") && have("ffprobe") {
        return true;
    }
    if std::env::var_os("STARLING_SKIP_FFMPEG_TESTS").is_some() {
        eprintln!("ffmpeg/ffprobe missing and STARLING_SKIP_FFMPEG_TESTS set: skipping");
        return false;
    }
    panic!("ffmpeg and ffprobe are required (apt-get install ffmpeg, or run .ci/run)");
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub stream: String, // "video" | "audio"
    pub pts_ms: i64,
    pub dts_ms: i64,
    pub size: usize,
    pub key: bool,
}

/// ffprobe's count of the video frames it decodes through `path` on `server`: its
/// `nb_read_frames=N` lines, one per program it sees (a multivariant playlist may
/// list several).
pub fn video_frames_read(server: &Server, path: &str) -> String {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "default=nw=1",
        ])
        .arg(server.http_url(path)));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// ffprobe's packets of a file, in file order.
pub fn probe_packets(file: &Path) -> Vec<Packet> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    let ms = |s: &str| (s.parse::<f64>().unwrap_or(f64::NAN) * 1000.0).round() as i64;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                stream: f[0].to_owned(),
                pts_ms: ms(f[1]),
                dts_ms: ms(f[2]),
                size: f[3].parse().unwrap(),
                key: f[4].starts_with('K'),
            }
        })
        .collect()
}

/// `ffprobe -show_streams` as key=value lines for one stream type.
pub fn probe_stream(file: &Path, kind: &str) -> String {
    let sel = if kind == "video" { "v:0" } else { "a:0" };
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            sel,
            "-show_streams",
            "-of",
            "default=nw=1",
        ])
        .arg(file));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `web/` directory (the UI sources and the browser harnesses).
pub fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../web")
}

/// The Chromium to drive: `$CHROMIUM`, else Debian's.
pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Browser tests need node, Chromium and playwright-core (web/node_modules), which
/// scripts/test installs. Without them they fail loudly rather than pass silently,
/// unless STARLING_SKIP_BROWSER_TESTS=1 says a person chose so.
pub fn require_browser() -> bool {
    let ok = runs("node", "--version")
        && runs(&chromium(), "--version")
        && web_dir().join("node_modules/playwright-core").exists();
    if ok {
        return true;
    }
    if std::env::var_os("STARLING_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("node, chromium or playwright-core missing and STARLING_SKIP_BROWSER_TESTS set: skipping");
        return false;
    }
    panic!("the browser test needs node, chromium and web/node_modules (run scripts/test, which installs them)");
}

/// ffmpeg publishing `seconds` of a 320x240 25 fps test picture (x264 ultrafast, a
/// keyframe a second, no audio) in real time to `url`, quietly. Spawn it or wait for it.
pub fn ffmpeg_test_publish(url: &str, seconds: u32) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
    ])
    .args(["-t", &seconds.to_string()])
    .args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-f",
        "flv",
    ])
    .arg(url)
    .stdin(Stdio::null());
    cmd
}

/// Runs the browser harness (`web/tests/watch.mjs`) with `args`; returns its JSON line,
/// or panics with it when the check failed.
pub fn watch(args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(web_dir().join("tests/watch.mjs"))
        .args(args)
        .output()
        .unwrap();
    let v = last_json_line(&out, "watch.mjs");
    assert!(
        out.status.success() && v["ok"] == true,
        "browser check failed: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The last line of a node harness's stdout that is a JSON object (the harnesses print
/// their result last), or a panic showing both streams.
pub fn last_json_line(out: &Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON from {what}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"))
}

/// GStreamer decoding the video of `url` through `uridecodebin3` (which picks the
/// adaptive demuxer: dashdemux2 for an MPD) into a fakesink that reports every frame:
/// `num_buffers` frames then EOS, or (`None`) to the stream's end, as fast as it goes.
/// Bounded by `timeout_secs` (coreutils `timeout`). Spawn it, then read it with
/// [`gst_frames`].
pub fn gst_decode(url: &str, num_buffers: Option<u32>, timeout_secs: u32) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args([
        &timeout_secs.to_string(),
        "gst-launch-1.0",
        "-v",
        "uridecodebin3",
    ])
    .arg(format!("uri={url}"))
    .args([
        "name=d",
        "d.",
        "!",
        "queue",
        "!",
        "video/x-raw",
        "!",
        "fakesink",
    ])
    .args(["silent=false", "sync=false"])
    .args(num_buffers.map(|n| format!("num-buffers={n}")))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// The decoded frames of a [`gst_decode`] run that must have succeeded, and its log
/// (element names, caps, one line per frame).
pub fn gst_frames(out: &Output) -> (usize, String) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gst-launch: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = text
        .lines()
        .filter(|l| l.contains("last-message = chain"))
        .count();
    (frames, text)
}

/// Checks a `/metrics` text with `promtool check metrics` (Debian's `prometheus`
/// package, which scripts/test installs): the format, and the lints (help text, names).
pub fn promtool_check(what: &str, text: &str) {
    use std::io::Write as _;
    if !have("promtool") {
        assert!(
            std::env::var_os("STARLING_SKIP_PROMTOOL").is_some(),
            "checking {what}'s metrics needs promtool (scripts/test installs it)"
        );
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metric names the Grafana dashboard (docs/grafana/starling-cluster.json) queries,
/// with histogram suffixes (`_bucket`) taken off.
pub fn dashboard_metrics() -> Vec<String> {
    let text = include_str!("../../../../../docs/grafana/starling-cluster.json");
    let dash: serde_json::Value = serde_json::from_str(text).expect("the dashboard is JSON");
    let mut names = std::collections::BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expr");
            let mut rest = expr;
            while let Some(at) = rest.find("starling_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                names.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
                rest = &tail[end..];
            }
        }
    }
    names.into_iter().collect()
}

/// Asserts that every dashboard metric with one of `prefixes` (all when empty) is named
/// in one of the `/metrics` texts.
pub fn assert_dashboard_metrics_exist(prefixes: &[&str], texts: &[&str]) {
    for name in dashboard_metrics() {
        if !prefixes.is_empty() && !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let declared = format!("# TYPE {name} ");
        assert!(
            texts.iter().any(|t| t.contains(&declared)),
            "the dashboard queries {name}, which no node's /metrics has"
        );
    }
}

/// ffprobe reading `seconds` of `url`'s video (following redirects): the codec and the
/// frames it decoded, from the first program that carries the stream; Err with ffprobe's
/// output when it read nothing (a playlist not there yet, say).
pub fn probe_video(url: &str, seconds: u32) -> Result<(String, u64), String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "10000000"])
        .args(["-read_intervals", &format!("%+{seconds}")])
        .args(["-select_streams", "v", "-count_frames"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(url)
        .output()
        .map_err(|e| format!("running ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            let (codec, frames) = l.trim().split_once(',')?;
            Some((codec.to_owned(), frames.parse().ok()?))
        })
        .ok_or_else(|| format!("{text:?} {}", String::from_utf8_lossy(&out.stderr)))
}

/// Whether a child process (an ffmpeg publisher) is still running.
pub fn running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Polls `f` (every 200 ms) until it gives a value, which is returned; fails naming
/// `what` after `within`.
pub fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// ffmpeg publishing `file` as it is (`-c copy`), at its own pace, over RTMP to the
/// test channel.
pub fn publish_file(server: &Server, file: &Path) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(KEY))
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}
