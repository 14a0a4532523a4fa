//! The data-access layer: one `Db` over SQLite or PostgreSQL, and its migrations.
//!
//! Why sqlx `Any` rather than an enum over two typed pools: every query in this crate is
//! written once in SQL that both backends accept (`$1` placeholders, TEXT ids, BIGINT
//! unix-ms times, BIGINT 0/1 booleans), so a single code path serves both and the test
//! suite exercises exactly the code that runs in production on either. The price is that
//! values are decoded through `Any`'s small type set, which is why the schema uses only
//! TEXT and BIGINT. Every user value is bound as a parameter, never pasted into SQL.
//!
//! This module must never log a secret: sqlx errors carry no bound values, and URLs are
//! reported by scheme only (they may hold a password).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::SqlSafeStr as _;
use tokio::sync::broadcast;

use crate::accounts::PasswordParams;
use crate::devices::Revocation;
use crate::error::{ControlError, Result};

/// Unix time in milliseconds. Functions that care about time take it as a parameter
/// (`now`), so callers and tests control the clock.
pub type UnixMs = i64;

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "starling.db";

/// Which database a `Db` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, WAL mode.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Login throttling policy. Attempts are recorded in the database so every node sees
/// the same counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Sliding window over which failures count.
    pub window_ms: i64,
    /// Failures of one account within the window that lock it (a success resets it).
    pub max_failures_per_account: u32,
    /// Failures from one address within the window that lock it (successes do not
    /// reset it, so one valid account cannot launder guesses at others).
    pub max_failures_per_addr: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window_ms: 15 * 60 * 1000,
            max_failures_per_account: 5,
            max_failures_per_addr: 20,
        }
    }
}

/// How to open the database and the policies that go with it.
#[derive(Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `postgres://…` for PostgreSQL, `sqlite:…` for a given SQLite file; `None` for
    /// `{data_dir}/starling.db`.
    pub database_url: Option<String>,
    /// Where the default SQLite file lives (created if missing).
    pub data_dir: PathBuf,
    /// Pool size.
    pub max_connections: u32,
    /// Argon2id cost for new password hashes.
    pub passwords: PasswordParams,
    /// Login throttling.
    pub throttle: ThrottleConfig,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show its scheme only.
        let url = self
            .database_url
            .as_deref()
            .map(|u| u.split(':').next().unwrap_or("").to_owned() + ":<redacted>");
        f.debug_struct("DbConfig")
            .field("database_url", &url)
            .field("data_dir", &self.data_dir)
            .field("max_connections", &self.max_connections)
            .field("passwords", &self.passwords)
            .field("throttle", &self.throttle)
            .finish()
    }
}

impl DbConfig {
    /// SQLite in `data_dir`, default policies.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url: None,
            data_dir: data_dir.into(),
            max_connections: 8,
            passwords: PasswordParams::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) argon: argon2::Argon2<'static>,
    pub(crate) throttle: ThrottleConfig,
    pub(crate) revocations: broadcast::Sender<Revocation>,
    /// Ids of events changed through this `Db` (edits, cancels, transitions), so this
    /// node's event driver reacts at once; other nodes' changes are polled.
    pub(crate) event_changes: broadcast::Sender<String>,
    /// A hash verified against when the email is unknown, so a login for a missing
    /// account costs the same time as one for an existing account.
    pub(crate) dummy_hash: OnceLock<String>,
}

/// The control plane's storage. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.inner.backend)
            .field("pool_size", &self.inner.pool.size())
            .finish_non_exhaustive()
    }
}

pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            include_str!("../migrations/0001_init.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "events".into(),
            MigrationType::Simple,
            include_str!("../migrations/0002_events.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "webhooks".into(),
            MigrationType::Simple,
            include_str!("../migrations/0003_webhooks.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "srt_passphrase".into(),
            MigrationType::Simple,
            include_str!("../migrations/0004_srt_passphrase.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "ladder_default".into(),
            MigrationType::Simple,
            include_str!("../migrations/0005_ladder_default.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "realtime".into(),
            MigrationType::Simple,
            include_str!("../migrations/0006_realtime.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "p2p".into(),
            MigrationType::Simple,
            include_str!("../migrations/0007_p2p.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            8,
            "reframe".into(),
            MigrationType::Simple,
            include_str!("../migrations/0008_reframe.sql").into_sql_str(),
            false,
        ),
    ])
}

/// Percent-encodes the characters sqlx's SQLite URL parser treats specially.
fn sqlite_url(path: &Path) -> String {
    let mut s = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3F"),
            '#' => s.push_str("%23"),
            c => s.push(c),
        }
    }
    s.push_str("?mode=rwc");
    s
}

impl Db {
    /// Opens the database, creating the SQLite file if needed, and applies migrations.
    pub async fn connect(cfg: &DbConfig) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match cfg.database_url.as_deref() {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                postgres_tls_mode(u)?;
                (u.to_owned(), Backend::Postgres)
            }
            Some(u) if u.starts_with("sqlite:") => {
                let path = u
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                let path = PathBuf::from(path);
                prepare_sqlite(&path).await?;
                (sqlite_url(&path), Backend::Sqlite)
            }
            Some(u) => {
                let scheme = u.split(':').next().unwrap_or("");
                return Err(ControlError::Config(format!(
                    "database_url scheme {scheme:?} is not supported (use postgres:// or sqlite:)"
                )));
            }
            None => {
                std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
                    ControlError::Config(format!(
                        "cannot create data directory {}: {e}",
                        cfg.data_dir.display()
                    ))
                })?;
                let path = cfg.data_dir.join(SQLITE_FILE);
                prepare_sqlite(&path).await?;
                (sqlite_url(&path), Backend::Sqlite)
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        let argon = cfg.passwords.argon2()?;
        let (revocations, _) = broadcast::channel(1024);
        let (event_changes, _) = broadcast::channel(1024);
        let db = Db {
            inner: Arc::new(Inner {
                pool,
                backend,
                argon,
                throttle: cfg.throttle,
                revocations,
                event_changes,
                dummy_hash: OnceLock::new(),
            }),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations. Idempotent; on PostgreSQL an advisory lock keeps
    /// nodes starting together from racing.
    pub async fn migrate(&self) -> Result<()> {
        migrator().run(&self.inner.pool).await?;
        Ok(())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The pool, for callers that need raw access (health checks, tests).
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

/// Creates the SQLite file and switches it to WAL once: the journal mode is stored in the
/// file, so the pool's connections (which only set foreign keys and a 5 s busy timeout,
/// sqlx's defaults) inherit it.
async fn prepare_sqlite(path: &Path) -> Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions as _, Connection as _};
    let conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await?;
    conn.close().await?;
    Ok(())
}

/// Maps a unique-constraint failure to `Conflict { field }`.
pub(crate) fn conflict(field: &'static str) -> impl FnOnce(sqlx::Error) -> ControlError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ControlError::Conflict { field },
        _ => ControlError::Db(e),
    }
}

/// Converts a stored 0/1 to a bool.
pub(crate) fn flag(table: &'static str, v: i64) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(ControlError::corrupt(table, format!("flag value {other}"))),
    }
}

/// How a PostgreSQL URL asks for TLS (`?sslmode=`: `disable`, `allow`, `prefer` (the
/// default), `require`, `verify-ca`, `verify-full`; `sslrootcert=FILE` for a private CA).
/// Read here so that a bad option is a configuration error before any connection is
/// tried; the message never holds the URL (it may hold a password).
pub fn postgres_tls_mode(url: &str) -> Result<sqlx::postgres::PgSslMode> {
    use std::str::FromStr as _;
    sqlx::postgres::PgConnectOptions::from_str(url)
        .map(|o| o.get_ssl_mode())
        .map_err(|e| {
            ControlError::Config(format!(
                "database_url: {}",
                redact_url_error(&e.to_string(), url)
            ))
        })
}

/// sqlx may quote the URL (or its password) in a parse error.
fn redact_url_error(message: &str, url: &str) -> String {
    let mut out = message.replace(url, "<database_url>");
    if let Some(password) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|auth| auth.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw)
        .filter(|pw| !pw.is_empty())
    {
        out = out.replace(password, "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_choose_their_tls_mode() {
        use sqlx::postgres::PgSslMode;
        let base = "postgres://u:hunter2@db.example.org:5432/starling";
        for (query, mode) in [
            ("", PgSslMode::Prefer),
            ("?sslmode=disable", PgSslMode::Disable),
            ("?sslmode=require", PgSslMode::Require),
            (
                "?sslmode=verify-ca&sslrootcert=/etc/ssl/db-ca.pem",
                PgSslMode::VerifyCa,
            ),
            (
                "?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
                PgSslMode::VerifyFull,
            ),
        ] {
            let mode_of = postgres_tls_mode(&format!("{base}{query}")).unwrap();
            assert_eq!(format!("{mode_of:?}"), format!("{mode:?}"), "{query}");
        }
        let err = postgres_tls_mode(&format!("{base}?sslmode=sometimes"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }

    #[test]
    fn sqlite_url_escapes_specials() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a?b#c%d/x.db")),
            "sqlite:///tmp/a%3Fb%23c%25d/x.db?mode=rwc"
        );
    }

    #[test]
    fn config_debug_hides_the_url() {
        let mut cfg = DbConfig::new("/tmp");
        cfg.database_url = Some("postgres://u:hunter2@db/x".into());
        let s = format!("{cfg:?}");
        assert!(
            !s.contains("hunter2") && s.contains("postgres:<redacted>"),
            "{s}"
        );
    }
}
