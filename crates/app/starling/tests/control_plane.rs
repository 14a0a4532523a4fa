//! Ingest authorised by the control plane, end to end: an admin bootstrapped with the
//! CLI, a channel, a device and its stream key made through the control plane's API,
//! ffmpeg publishing with that key, the key revoked while live (the publish must end),
//! and the revoked key refused. Runs against SQLite (the embedded default) and against
//! PostgreSQL (the server `scripts/test` starts).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use starling_control::{Db, DbConfig, DeviceKind, NewChannel};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run_case(database_url: Option<String>) {
    if !require_ffmpeg() {
        return;
    }
    let extra = match &database_url {
        Some(url) => format!("\n[control]\ndatabase_url = \"{url}\"\n"),
        None => String::new(),
    };
    let server = Server::start("control", &extra);

    // The CLI bootstraps an admin (password from the environment, no stdin in CI).
    let email = format!("{}@example.com", unique("admin"));
    server.create_admin(&email, "correct horse battery");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut db_config = DbConfig::new(server.dir.join("data"));
    db_config.database_url = database_url.clone();
    let db = rt.block_on(Db::connect(&db_config)).unwrap();
    let admin = rt
        .block_on(db.login(&email, "correct horse battery", "127.0.0.1", now_ms()))
        .unwrap();
    let channel = unique("ctl");
    let ch = rt
        .block_on(db.create_channel(&admin, &NewChannel::named(&channel), now_ms()))
        .unwrap();
    let device = rt
        .block_on(db.create_device(
            &admin,
            "studio encoder",
            DeviceKind::Encoder,
            Some(&ch.id),
            now_ms(),
        ))
        .unwrap();
    let (key_info, key) = rt
        .block_on(db.create_stream_key(&admin, &device.id, None, now_ms()))
        .unwrap();
    let key = server.secret(key.expose());

    // Publish with the key: the channel goes live and is packaged to HLS.
    let mut publisher = ffmpeg_test_publish(&server.rtmp_url(&key), 30)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_log(
        "RTMP publish started peer=127.0.0.1",
        Duration::from_secs(20),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while server
        .http_get(&format!("/live/{channel}/index.m3u8"))
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the channel never became playable over HLS"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = rt
        .block_on(db.list_stream_keys(&admin, &device.id))
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.id == key_info.id && k.last_used_at.is_some()),
        "{listed:?}"
    );

    // Revoke the key while it is live: the publish must end within a couple of seconds.
    let revoked_at = Instant::now();
    rt.block_on(db.revoke_stream_key(&admin, &key_info.id, now_ms()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if publisher.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = publisher.kill();
            panic!(
                "the publish went on after its key was revoked; log:\n{}",
                server.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "publish stopped {:?} after the revocation",
        revoked_at.elapsed()
    );
    let log = server.wait_log(
        "stream key revoked: stopping its live publish",
        Duration::from_secs(5),
    );

    // The revoked key cannot publish again.
    let again = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-t",
            "2",
        ])
        .args(["-c:v", "libx264", "-f", "flv"])
        .arg(server.rtmp_url(&key))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!again.status.success(), "a revoked key published");
    let log = server.wait_log("unknown or revoked stream key", Duration::from_secs(10)) + &log;
    assert!(!log.contains(&key), "the stream key reached the log");
    assert!(
        !log.contains("correct horse"),
        "the password reached the log"
    );
}

#[test]
fn a_control_plane_key_publishes_and_its_revocation_ends_the_publish_sqlite() {
    run_case(None);
}

#[test]
fn a_control_plane_key_publishes_and_its_revocation_ends_the_publish_postgres() {
    match std::env::var("STARLING_TEST_DATABASE_URL") {
        Ok(url) => run_case(Some(url)),
        Err(_) if std::env::var_os("STARLING_SKIP_POSTGRES_TESTS").is_some() => {
            eprintln!("STARLING_TEST_DATABASE_URL unset and STARLING_SKIP_POSTGRES_TESTS set: skipping");
        }
        Err(_) => panic!("set STARLING_TEST_DATABASE_URL (eval \"$(scripts/pg-test-env)\") or STARLING_SKIP_POSTGRES_TESTS=1"),
    }
}
