//! An s3s-fs server on loopback for the S3 tests.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use starling_store::{S3Config, S3Credentials, S3Store};

use super::temp_dir;

/// The s3s-fs release scripts/test installs (docs/storage.md).
pub const S3S_FS_VERSION: &str = "0.14.1";
pub const ACCESS_KEY: &str = "starling-test-key";
pub const SECRET_KEY: &str = "starling-test-secret";
pub const BUCKET: &str = "starling";

/// Where scripts/test installed s3s-fs: `STARLING_S3S_FS`, else under the target dir,
/// else on PATH. `None` (the test is skipped) only outside CI.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STARLING_S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target"),
        PathBuf::from,
    );
    let under_target = target.join(format!("tools/s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs"));
    if under_target.is_file() {
        return Some(under_target);
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    }) {
        return Some(found);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "s3s-fs is missing: scripts/test installs it (STARLING_S3S_FS)"
    );
    eprintln!("skipped: s3s-fs is not installed (scripts/test installs it)");
    None
}

/// An s3s-fs process on a loopback port, serving `root` (each bucket a directory).
pub struct S3sFs {
    pub child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
}

impl S3sFs {
    /// Starts it with the test credentials and a bucket `BUCKET`; `None` when skipped.
    pub fn start(name: &str) -> Option<Self> {
        let bin = s3s_fs_binary()?;
        let root = temp_dir(&format!("s3s-{name}"));
        // s3s-fs maps a bucket to a directory of its root.
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        Some(Self::start_at(&bin, root, free_port()))
    }

    fn start_at(bin: &Path, root: PathBuf, port: u16) -> Self {
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
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

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> S3Config {
        let mut c = S3Config::new(
            self.endpoint(),
            BUCKET,
            S3Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
                session_token: None,
            },
        );
        c.request_timeout = Duration::from_secs(10);
        c
    }

    pub fn store(&self) -> S3Store {
        S3Store::new(self.config()).unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    // Bound then released: s3s-fs takes a port number, not a listening socket.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
