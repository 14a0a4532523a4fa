//! `[store] kind = "s3"` end to end: the real binary writes every segment to a bucket
//! of a real S3-compatible server (s3s-fs on loopback, installed by scripts/test), and
//! serves a segment that has left the memory window from that bucket, also after a
//! restart; wrong credentials stop the start with a message naming the cause.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

const S3S_FS_VERSION: &str = "0.14.1";
const ACCESS_KEY: &str = "starling-e2e-key";
const SECRET_KEY: &str = "starling-e2e-secret-key";
const BUCKET: &str = "starling-e2e";
const PL: &str = "/live/e2e/source/index.m3u8";

/// `STARLING_S3S_FS` (scripts/test sets it), else under the target dir, else on PATH.
fn s3s_fs() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STARLING_S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target"),
        PathBuf::from,
    );
    let installed = target.join(format!("tools/s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs"));
    if installed.is_file() {
        return Some(installed);
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    }) {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "s3s-fs is missing: scripts/test installs it"
    );
    eprintln!("skipped: s3s-fs is not installed (scripts/test installs it)");
    None
}

struct Bucket {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
}

impl Bucket {
    fn start(bin: &Path, name: &str) -> Self {
        let root = temp_dir(name);
        // s3s-fs serves each directory of its root as a bucket.
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, root }
    }

    fn config(&self) -> String {
        format!(
            "[store]\nkind = \"s3\"\nendpoint = \"http://{}\"\nbucket = \"{BUCKET}\"\nprefix = \"node-1\"\n",
            self.addr
        )
    }

    /// Stored segments (`.m4s` files under the bucket's directory), relative paths.
    fn segments(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else if p.extension().is_some_and(|x| x == "m4s") {
                    out.push(p.strip_prefix(base).unwrap().to_owned());
                }
            }
        }
        let base = self.root.join(BUCKET);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body_of(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn segments_go_to_the_bucket_and_come_back_from_it() {
    if !require_ffmpeg() {
        return;
    }
    let Some(bin) = s3s_fs() else {
        return;
    };
    let bucket = Bucket::start(&bin, "s3-bucket");
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut server = Server::start_env("s3-store", &bucket.config(), &env);
    server.secret(SECRET_KEY);
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 14)
        .spawn()
        .unwrap();
    // Six segments of 2 s: the first ones are well outside the default memory window
    // (two segments).
    let deadline = Instant::now() + Duration::from_secs(30);
    let playlist = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.matches("#EXTINF").count() >= 6 {
            break pl;
        }
        assert!(Instant::now() < deadline, "never six segments:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let first = playlist
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .unwrap()
        .to_owned();
    // Written through to the bucket, under the configured prefix.
    let stored = bucket.segments();
    assert!(stored.len() >= 5, "{stored:?}");
    assert!(
        stored.iter().all(|p| p.starts_with("node-1/media/e2e")),
        "{stored:?}"
    );
    let file = first.rsplit('/').next().unwrap();
    let in_bucket = stored
        .iter()
        .find(|p| p.ends_with(Path::new("source").join(file)))
        .unwrap_or_else(|| panic!("{first} not in the bucket: {stored:?}"));
    let bytes = std::fs::read(bucket.root.join(BUCKET).join(in_bucket)).unwrap();

    // Out of the memory window: read from the bucket, then from the read cache.
    let path = format!("/live/{CHANNEL}/source/{first}");
    let reads = server.metric("starling_store_backend_reads_total");
    let (status, body) = server.http_bytes(&path).unwrap();
    assert_eq!(status, 200, "{path}");
    assert!(body == bytes, "{path} differs from the bucket's object");
    assert!(server.metric("starling_store_backend_reads_total") > reads);
    let hits = server.metric("starling_store_cache_hits_total");
    assert_eq!(server.http_bytes(&path).unwrap().1, bytes);
    assert!(server.metric("starling_store_cache_hits_total") > hits);
    let _ = publisher.wait();

    // After a restart the node has nothing in memory: the same URL, the same bytes.
    assert!(server.stop().success());
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.http_bytes(&path).unwrap();
        if status == 200 {
            assert!(body == bytes, "{path} changed across the restart");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {status} after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.stop().success());
}

/// A recording channel's node is killed (-9) mid-stream and started again over the
/// same bucket: every segment listed a second before the kill is in the recording, byte
/// for byte, and ffmpeg plays the whole recording back.
#[test]
fn a_killed_node_loses_no_recorded_segment_in_the_bucket() {
    if !require_ffmpeg() {
        return;
    }
    let Some(bin) = s3s_fs() else {
        return;
    };
    let bucket = Bucket::start(&bin, "s3-kill9");
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut server =
        Server::start_channel_env("s3-kill9", &bucket.config(), "recording = true", &env);
    server.secret(SECRET_KEY);
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(KEY), 30)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.matches("#EXTINF").count() >= 5 {
            break pl;
        }
        assert!(Instant::now() < deadline, "never five segments:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let uris: Vec<String> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .map(str::to_owned)
        .collect();
    let before: Vec<Vec<u8>> = uris
        .iter()
        .map(|u| {
            let (status, body) = server
                .http_bytes(&format!("/live/{CHANNEL}/source/{u}"))
                .unwrap();
            assert_eq!(status, 200, "{u}");
            body
        })
        .collect();
    // A second for the write-through of the newest, then no shutdown path at all.
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();

    server.restart();
    // The run ends after the grace; the recording is a VOD playlist with every segment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let vod = loop {
        let pl = server
            .http_get(PL)
            .map(|r| body_of(&r).to_owned())
            .unwrap_or_default();
        if pl.contains("#EXT-X-ENDLIST") {
            break pl;
        }
        assert!(Instant::now() < deadline, "never a VOD playlist:\n{pl}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for (u, bytes) in uris.iter().zip(&before) {
        assert!(
            vod.contains(u.as_str()),
            "{u} lost from the recording:\n{vod}"
        );
        let (status, body) = server
            .http_bytes(&format!("/live/{CHANNEL}/source/{u}"))
            .unwrap();
        assert_eq!(status, 200, "{u}");
        assert!(&body == bytes, "{u} changed across the kill");
    }
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(server.http_url(PL))
        .args(["-f", "null", "-"]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success());
}

#[test]
fn wrong_credentials_stop_the_start_naming_the_cause() {
    let Some(bin) = s3s_fs() else {
        return;
    };
    let bucket = Bucket::start(&bin, "s3-bad-creds");
    let dir = temp_dir("s3-bad-creds-node");
    let config = dir.join("starling.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[rtmp]\nlisten = \"127.0.0.1:0\"\n[srt]\nlisten = \"127.0.0.1:0\"\n{}",
            dir.join("data").display(),
            bucket.config()
        ),
    )
    .unwrap();
    let run = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_starling"));
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env("STARLING_TRANSCODE_ENABLED", "false")
            .stdin(Stdio::null());
        if let Some(s) = secret {
            cmd.env("AWS_SECRET_ACCESS_KEY", s);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(Some("not-the-secret-at-all"));
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(err.contains(BUCKET), "{err}");
    assert!(!err.contains("not-the-secret-at-all"), "{err}");
    let err = run(None);
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
}
