//! `control-auth`: what the control plane costs on the publish and playback paths.
//!
//! - publish authorisation (`authorize_publish`: one indexed lookup by key hash, two
//!   single-row updates) p50/p99 over N calls, against SQLite (a temp file, the embedded
//!   default) or PostgreSQL (`--database-url postgres://…`);
//! - playback token checks per second on one core (`PlaybackSigner::verify`, the check
//!   the origin makes on every request of a private channel).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use starling_control::{Db, DbConfig, DeviceKind, NewChannel, PasswordParams};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let mut url = None;
    let mut n = 5000usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--database-url" => url = Some(it.next().context("--database-url needs a value")?),
            "-n" => n = it.next().context("-n needs a value")?.parse()?,
            other => anyhow::bail!("unknown flag {other} (use --database-url URL, -n CALLS)"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("starling-control-bench-{}", std::process::id()));
    rt.block_on(async {
        let mut cfg = DbConfig::new(&dir);
        cfg.database_url = url.clone();
        cfg.passwords = PasswordParams::INSECURE_FAST;
        let db = Db::connect(&cfg).await?;
        let tag = now_ms();
        let email = format!("bench{tag}@example.com");
        db.bootstrap_admin(&email, "bench password", "system", now_ms())
            .await?;
        let admin = db
            .login(&email, "bench password", "127.0.0.1", now_ms())
            .await?;
        let ch = db
            .create_channel(&admin, &NewChannel::named(format!("bench{tag}")), now_ms())
            .await?;
        let dev = db
            .create_device(&admin, "bench", DeviceKind::Encoder, Some(&ch.id), now_ms())
            .await?;
        let (_, key) = db
            .create_stream_key(&admin, &dev.id, None, now_ms())
            .await?;
        let mut us = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            db.authorize_publish(key.expose(), "127.0.0.1", now_ms())
                .await?;
            us.push(t.elapsed().as_micros() as u64);
        }
        us.sort_unstable();
        let q = |p: f64| us[((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1];
        println!(
            "authorize_publish ({}; {n} calls): p50 {} µs, p99 {} µs, max {} µs",
            if url.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            q(0.5),
            q(0.99),
            q(1.0)
        );
        let signer = db.playback_signer().await?;
        let token = signer.sign(&ch.name, now_ms() + 3_600_000, Some("viewer-1"))?;
        let start = Instant::now();
        let mut checks = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            for _ in 0..1000 {
                signer.verify(&token, &ch.name, now_ms())?;
            }
            checks += 1000;
        }
        println!(
            "playback token checks: {:.0} per second on one core",
            checks as f64 / start.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
