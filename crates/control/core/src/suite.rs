//! The storage test suite, written once and run against SQLite (always) and PostgreSQL
//! (`STARLING_TEST_DATABASE_URL`, e.g. from `scripts/pg-test-env`; without it the
//! PostgreSQL variants fail unless `STARLING_SKIP_POSTGRES_TESTS=1`).
//!
//! Each test gets its own database: a temp SQLite file, or a fresh PostgreSQL database
//! created on the test server. Time is injected (`now`), never read from the clock.

use sqlx::Row as _;

use crate::error::Result;
use crate::secret::{hash_secret, hex, random_bytes};
use crate::*;

const PW: &str = "correct horse battery";
const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

pub(crate) struct TestDb {
    pub db: Db,
    pub cfg: DbConfig,
    dir: Option<std::path::PathBuf>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn test_config(dir: std::path::PathBuf) -> DbConfig {
    let mut cfg = DbConfig::new(dir);
    cfg.passwords = PasswordParams::INSECURE_FAST;
    cfg.max_connections = 4;
    cfg
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "starling-control-test-{}",
            hex(&random_bytes::<8>().unwrap())
        ));
        let cfg = test_config(dir.clone());
        let db = Db::connect(&cfg).await.unwrap();
        assert_eq!(db.backend(), Backend::Sqlite);
        Self {
            db,
            cfg,
            dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        let Ok(base) = std::env::var("STARLING_TEST_DATABASE_URL") else {
            if std::env::var("STARLING_SKIP_POSTGRES_TESTS").as_deref() == Ok("1") {
                eprintln!("STARLING_SKIP_POSTGRES_TESTS=1: skipping the PostgreSQL variant");
                return None;
            }
            panic!(
                "STARLING_TEST_DATABASE_URL is not set: run `eval \"$(scripts/pg-test-env)\"` \
                 first, or set STARLING_SKIP_POSTGRES_TESTS=1 to skip PostgreSQL"
            );
        };
        // A fresh database per test, so tests run in parallel without sharing rows.
        let name = format!("starling_t_{}", hex(&random_bytes::<8>().unwrap()));
        {
            use sqlx::Connection as _;
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&base).await.unwrap();
            // The name is our own hex, not user input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
        let (without_query, query) = base.split_once('?').unwrap_or((&base, ""));
        let cut = without_query
            .rfind('/')
            .filter(|&i| i > "postgres://".len())
            .unwrap_or(without_query.len());
        let mut url = format!("{}/{name}", &without_query[..cut]);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut cfg = test_config(std::env::temp_dir());
        cfg.database_url = Some(url);
        let db = Db::connect(&cfg).await.unwrap();
        assert_eq!(db.backend(), Backend::Postgres);
        Some(Self { db, cfg, dir: None })
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = super::TestDb::sqlite().await;
                    super::$name(&t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(t) = super::TestDb::postgres().await else { return };
                    super::$name(&t).await;
                    t.db.close().await;
                }
            )*
        }
    };
}

suite!(
    migrations_are_idempotent,
    login_and_throttling,
    sessions_and_api_tokens,
    channels_crud_and_tenant_isolation,
    devices_and_stream_keys,
    playback_secret_is_shared,
    invalid_input_changes_nothing,
    debug_output_never_shows_secrets,
    events_lifecycle_and_tenant_isolation,
    event_transitions_are_compare_and_set,
    users_orgs_and_watching,
);

/// A system admin, plus an org `a` with a broadcaster and a viewer, and an org `b` with a
/// broadcaster.
struct World {
    sys: Principal,
    a_bc: Principal,
    a_viewer: Principal,
    b_bc: Principal,
    b_org: String,
}

async fn login(db: &Db, email: &str) -> Principal {
    db.login(email, PW, "192.0.2.1", T0).await.unwrap()
}

async fn world(db: &Db) -> World {
    db.bootstrap_admin("root@example.org", PW, "system", T0)
        .await
        .unwrap();
    let sys = login(db, "root@example.org").await;
    assert!(sys.system && sys.role == Role::Admin);
    let a = db.create_org(&sys, "Org A", T0).await.unwrap();
    let b = db.create_org(&sys, "Org B", T0).await.unwrap();
    for (org, email, role) in [
        (&a.id, "bc@a.example", Role::Broadcaster),
        (&a.id, "viewer@a.example", Role::Viewer),
        (&b.id, "bc@b.example", Role::Broadcaster),
    ] {
        db.create_user(&sys, org, email, PW, role, T0)
            .await
            .unwrap();
    }
    World {
        a_bc: login(db, "bc@a.example").await,
        a_viewer: login(db, "viewer@a.example").await,
        b_bc: login(db, "bc@b.example").await,
        sys,
        b_org: b.id,
    }
}

fn is_not_found(r: &Result<impl std::fmt::Debug, ControlError>) -> bool {
    matches!(r, Err(ControlError::NotFound { .. }))
}

async fn migrations_are_idempotent(t: &TestDb) {
    let db = &t.db;
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    // Reopening an existing database applies nothing and keeps the data.
    db.bootstrap_admin("root@example.org", PW, "system", T0)
        .await
        .unwrap();
    let again = Db::connect(&t.cfg).await.unwrap();
    again
        .login("root@example.org", PW, "192.0.2.1", T0)
        .await
        .unwrap();
    let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(again.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(applied as usize, crate::db::migrator().iter().count());
    if db.backend() == Backend::Sqlite {
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(fk, 1);
    }
    again.close().await;
}

async fn login_and_throttling(t: &TestDb) {
    let db = &t.db;
    let admin = db
        .bootstrap_admin("Root@Example.org", PW, "system", T0)
        .await
        .unwrap();
    assert_eq!(admin.email, "root@example.org");
    // A second bootstrap with the same email is a conflict, not a second admin.
    assert!(matches!(
        db.bootstrap_admin("root@example.org", PW, "system", T0)
            .await,
        Err(ControlError::Conflict { field: "email" })
    ));
    let ip = "198.51.100.7";
    let p = db.login("ROOT@example.org", PW, ip, T0).await.unwrap();
    assert_eq!(p.user_id, admin.id);
    let bad =
        |r: Result<Principal>| matches!(r, Err(ControlError::Auth(AuthError::InvalidCredentials)));
    assert!(bad(db
        .login("root@example.org", "wrong password", ip, T0)
        .await));
    assert!(bad(db.login("nobody@example.org", PW, ip, T0).await));

    // Per account: 5 failures within 15 min lock it, even for the right password and
    // from another address.
    let first_failure = T0 + MIN;
    let mut now = first_failure;
    for _ in 0..5 {
        assert!(bad(db
            .login("root@example.org", "wrong password", ip, now)
            .await));
        now += 1000;
    }
    let locked = db.login("root@example.org", PW, "203.0.113.9", now).await;
    let Err(ControlError::Auth(AuthError::Throttled {
        scope: "account",
        retry_after_ms,
    })) = locked
    else {
        panic!("expected an account lock, got {locked:?}");
    };
    // The lock lifts when the first of the five failures leaves the 15-minute window.
    assert_eq!(retry_after_ms, first_failure + 15 * MIN - now);
    assert!(db
        .login(
            "root@example.org",
            PW,
            "203.0.113.9",
            first_failure + 15 * MIN - 1
        )
        .await
        .is_err());
    let later = first_failure + 15 * MIN;
    db.login("root@example.org", PW, "203.0.113.9", later)
        .await
        .unwrap();

    // A success resets the account count.
    let mut now = later + MIN;
    for _ in 0..4 {
        assert!(bad(db
            .login("root@example.org", "wrong password", "203.0.113.10", now)
            .await));
        now += 1;
    }
    db.login("root@example.org", PW, "203.0.113.10", now)
        .await
        .unwrap();
    assert!(bad(db
        .login(
            "root@example.org",
            "wrong password",
            "203.0.113.10",
            now + 1
        )
        .await));

    // Per address: 20 failures on different accounts from one address lock the address.
    let attacker = "192.0.2.66";
    let mut now = T0 + 60 * MIN;
    for i in 0..20 {
        assert!(bad(db
            .login(
                &format!("guess{i}@example.org"),
                "wrong password",
                attacker,
                now
            )
            .await));
        now += 1;
    }
    assert!(matches!(
        db.login("root@example.org", PW, attacker, now).await,
        Err(ControlError::Auth(AuthError::Throttled {
            scope: "address",
            ..
        }))
    ));
    db.login("root@example.org", PW, "192.0.2.67", now)
        .await
        .unwrap();
    db.login("root@example.org", PW, attacker, now + 15 * MIN)
        .await
        .unwrap();
    assert!(db.prune_login_attempts(now + 15 * MIN).await.unwrap() > 20);
}

async fn sessions_and_api_tokens(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let (info, secret) = db.create_session(&w.a_bc, 60 * MIN, T0).await.unwrap();
    assert!(secret.expose().starts_with("ss_"));
    assert_eq!(
        db.authenticate_session(secret.expose(), T0 + 1)
            .await
            .unwrap(),
        w.a_bc
    );
    assert!(matches!(
        db.authenticate_session(secret.expose(), info.expires_at)
            .await,
        Err(ControlError::Auth(AuthError::Expired {
            what: "session",
            ..
        }))
    ));
    assert!(matches!(
        db.authenticate_session("ss_nope", T0).await,
        Err(ControlError::Auth(AuthError::Unknown { what: "session" }))
    ));
    db.logout(secret.expose(), T0 + 2).await.unwrap();
    assert!(matches!(
        db.authenticate_session(secret.expose(), T0 + 3).await,
        Err(ControlError::Auth(AuthError::Revoked {
            what: "session",
            ..
        }))
    ));
    // Another user cannot revoke someone's session; an admin of the same org could.
    let (info2, s2) = db.create_session(&w.a_bc, 60 * MIN, T0).await.unwrap();
    assert!(is_not_found(
        &db.revoke_session(&w.b_bc, &info2.id, T0).await
    ));
    db.revoke_session(&w.a_bc, &info2.id, T0).await.unwrap();
    assert!(db.authenticate_session(s2.expose(), T0).await.is_err());

    // API tokens.
    let (tok, tsecret) = db
        .create_api_token(&w.a_bc, "ci", Some(T0 + 10 * MIN), T0)
        .await
        .unwrap();
    assert!(tsecret.expose().starts_with(&tok.prefix) && tok.prefix.starts_with("st_"));
    assert_eq!(
        db.authenticate_api_token(tsecret.expose(), T0 + 1)
            .await
            .unwrap(),
        w.a_bc
    );
    let listed = db.list_api_tokens(&w.a_bc).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(T0 + 1));
    assert!(db.list_api_tokens(&w.b_bc).await.unwrap().is_empty());
    assert!(matches!(
        db.authenticate_api_token(tsecret.expose(), T0 + 10 * MIN)
            .await,
        Err(ControlError::Auth(AuthError::Expired { .. }))
    ));
    assert!(is_not_found(
        &db.revoke_api_token(&w.b_bc, &tok.id, T0).await
    ));
    db.revoke_api_token(&w.a_bc, &tok.id, T0 + 2).await.unwrap();
    assert!(matches!(
        db.authenticate_api_token(tsecret.expose(), T0 + 3).await,
        Err(ControlError::Auth(AuthError::Revoked {
            what: "api token",
            ..
        }))
    ));

    // Disabling a user revokes what it holds and blocks login.
    let (_, s3) = db.create_session(&w.a_viewer, 60 * MIN, T0).await.unwrap();
    let (_, t3) = db
        .create_api_token(&w.a_viewer, "x", None, T0)
        .await
        .unwrap();
    db.set_user_disabled(&w.sys, &w.a_viewer.user_id, true, T0 + 5)
        .await
        .unwrap();
    assert!(db.authenticate_session(s3.expose(), T0 + 6).await.is_err());
    assert!(db
        .authenticate_api_token(t3.expose(), T0 + 6)
        .await
        .is_err());
    assert!(matches!(
        db.login("viewer@a.example", PW, "192.0.2.1", T0 + 6).await,
        Err(ControlError::Auth(AuthError::Disabled { .. }))
    ));
    // Users of org B are not visible to org A's broadcaster, and it cannot manage users.
    assert!(is_not_found(&db.list_users(&w.a_bc, &w.b_org, 50, 0).await));
    assert!(matches!(
        db.list_users(&w.a_bc, &w.a_bc.org_id, 50, 0).await,
        Err(ControlError::Forbidden { .. })
    ));
    // Changing a password revokes sessions and the old password stops working.
    let (_, s4) = db.create_session(&w.b_bc, 60 * MIN, T0).await.unwrap();
    db.change_password(&w.b_bc, PW, "another good password", T0)
        .await
        .unwrap();
    assert!(db.authenticate_session(s4.expose(), T0 + 1).await.is_err());
    assert!(db
        .login("bc@b.example", PW, "192.0.2.1", T0 + 1)
        .await
        .is_err());
    db.login("bc@b.example", "another good password", "192.0.2.1", T0 + 1)
        .await
        .unwrap();
}

async fn channels_crud_and_tenant_isolation(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let mut new = NewChannel::named("news");
    new.title = "Evening news".into();
    new.visibility = Visibility::Private;
    new.latency_mode = LatencyMode::Low;
    new.recording = true;
    new.dvr_window_secs = 3600;
    let ch = db.create_channel(&w.a_bc, &new, T0).await.unwrap();
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), ch);
    assert_eq!(db.channel_by_name("news").await.unwrap(), Some(ch.clone()));
    assert_eq!(db.channel_by_name("../news").await.unwrap(), None);

    // Org B sees nothing of it: not by id, not by listing, cannot change or delete it.
    assert!(is_not_found(&db.get_channel(&w.b_bc, &ch.id).await));
    assert!(db.list_channels(&w.b_bc, 100, 0).await.unwrap().is_empty());
    assert!(is_not_found(
        &db.update_channel(&w.b_bc, &ch.id, &ChannelUpdate::default(), T0)
            .await
    ));
    assert!(is_not_found(&db.delete_channel(&w.b_bc, &ch.id).await));
    // A system admin is an operator of orgs, not a reader of their channels.
    assert!(is_not_found(&db.get_channel(&w.sys, &ch.id).await));
    // A viewer of the same org may not read private metadata.
    assert!(matches!(
        db.get_channel(&w.a_viewer, &ch.id).await,
        Err(ControlError::Forbidden { .. })
    ));
    // Names are unique platform-wide.
    assert!(matches!(
        db.create_channel(&w.b_bc, &NewChannel::named("news"), T0)
            .await,
        Err(ControlError::Conflict { field: "name" })
    ));
    db.create_channel(&w.b_bc, &NewChannel::named("b-news"), T0)
        .await
        .unwrap();
    db.create_channel(&w.a_bc, &NewChannel::named("a-sport"), T0)
        .await
        .unwrap();
    let names: Vec<_> = db
        .list_channels(&w.a_bc, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a-sport", "news"]);
    assert_eq!(
        db.list_channels(&w.a_bc, 1, 1).await.unwrap()[0].name,
        "news"
    );

    let up = ChannelUpdate {
        title: Some("Late news".into()),
        visibility: Some(Visibility::Unlisted),
        recording: Some(false),
        ..ChannelUpdate::default()
    };
    let changed = db
        .update_channel(&w.a_bc, &ch.id, &up, T0 + 5)
        .await
        .unwrap();
    assert_eq!(
        (
            changed.title.as_str(),
            changed.visibility,
            changed.recording,
            changed.updated_at
        ),
        ("Late news", Visibility::Unlisted, false, T0 + 5)
    );
    assert_eq!(changed.latency_mode, LatencyMode::Low);
    assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), changed);
    // Real time and P2P round-trip (stored in two columns each) and leave again for the
    // others.
    for mode in [
        LatencyMode::RealTime,
        LatencyMode::Standard,
        LatencyMode::P2p,
        LatencyMode::RealTime,
        LatencyMode::P2p,
        LatencyMode::Low,
    ] {
        let up = ChannelUpdate {
            latency_mode: Some(mode),
            ..ChannelUpdate::default()
        };
        let changed = db
            .update_channel(&w.a_bc, &ch.id, &up, T0 + 6)
            .await
            .unwrap();
        assert_eq!(changed.latency_mode, mode);
        assert_eq!(db.get_channel(&w.a_bc, &ch.id).await.unwrap(), changed);
        assert_eq!(db.channel_by_name("news").await.unwrap(), Some(changed));
    }
    let mut rt = NewChannel::named("a-realtime");
    rt.latency_mode = LatencyMode::RealTime;
    let made = db.create_channel(&w.a_bc, &rt, T0).await.unwrap();
    assert_eq!(made.latency_mode, LatencyMode::RealTime);
    assert_eq!(db.get_channel(&w.a_bc, &made.id).await.unwrap(), made);
    db.delete_channel(&w.a_bc, &made.id).await.unwrap();
    let mut p2p = NewChannel::named("a-p2p");
    p2p.latency_mode = LatencyMode::P2p;
    let made = db.create_channel(&w.a_bc, &p2p, T0).await.unwrap();
    assert_eq!(made.latency_mode, LatencyMode::P2p);
    assert_eq!(db.get_channel(&w.a_bc, &made.id).await.unwrap(), made);
    db.delete_channel(&w.a_bc, &made.id).await.unwrap();
    db.delete_channel(&w.a_bc, &ch.id).await.unwrap();
    assert!(is_not_found(&db.get_channel(&w.a_bc, &ch.id).await));
}

async fn devices_and_stream_keys(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("live1"), T0)
        .await
        .unwrap();
    let b_ch = db
        .create_channel(&w.b_bc, &NewChannel::named("b-live"), T0)
        .await
        .unwrap();
    // A device cannot be bound to another org's channel.
    assert!(is_not_found(
        &db.create_device(&w.a_bc, "OBS", DeviceKind::Encoder, Some(&b_ch.id), T0)
            .await
    ));
    let dev = db
        .create_device(&w.a_bc, "OBS studio", DeviceKind::Encoder, Some(&ch.id), T0)
        .await
        .unwrap();
    assert_eq!(dev.state, DeviceState::Offline);
    let (key, secret) = db
        .create_stream_key(&w.a_bc, &dev.id, None, T0)
        .await
        .unwrap();
    assert!(secret.expose().starts_with(&key.prefix) && key.prefix.starts_with("sk_"));
    assert_eq!(key.channel_id, ch.id);

    // Org B cannot see or use A's device and keys.
    assert!(is_not_found(&db.get_device(&w.b_bc, &dev.id, T0).await));
    assert!(is_not_found(&db.list_stream_keys(&w.b_bc, &dev.id).await));
    assert!(is_not_found(
        &db.create_stream_key(&w.b_bc, &dev.id, None, T0).await
    ));
    assert!(is_not_found(
        &db.revoke_stream_key(&w.b_bc, &key.id, T0).await
    ));
    assert!(is_not_found(
        &db.rotate_stream_key(&w.b_bc, &key.id, T0).await
    ));
    assert!(is_not_found(
        &db.create_stream_key(&w.a_bc, &dev.id, Some(&b_ch.id), T0)
            .await
    ));
    assert!(db.list_devices(&w.b_bc, T0).await.unwrap().is_empty());
    assert!(matches!(
        db.list_devices(&w.a_viewer, T0).await,
        Err(ControlError::Forbidden { .. })
    ));

    // Publish.
    let g = db
        .authorize_publish(secret.expose(), "203.0.113.5:51000", T0 + 10)
        .await
        .unwrap();
    assert_eq!(
        (
            g.channel.as_str(),
            g.key_id.as_str(),
            g.device_id.as_str(),
            g.takeover
        ),
        ("live1", key.id.as_str(), dev.id.as_str(), false)
    );
    let listed = db.list_stream_keys(&w.a_bc, &dev.id).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(T0 + 10));
    assert_eq!(
        listed[0].last_used_addr.as_deref(),
        Some("203.0.113.5:51000")
    );
    let d = db.get_device(&w.a_bc, &dev.id, T0 + 11).await.unwrap();
    assert_eq!(
        (d.state, d.last_seen_at),
        (DeviceState::Live, Some(T0 + 10))
    );
    // The same encoder reconnecting is a takeover.
    assert!(
        db.authorize_publish(secret.expose(), "203.0.113.5:51001", T0 + 20)
            .await
            .unwrap()
            .takeover
    );
    db.publish_ended(&g, T0 + 30).await.unwrap();
    assert_eq!(
        db.get_device(&w.a_bc, &dev.id, T0 + 31)
            .await
            .unwrap()
            .state,
        DeviceState::Idle
    );
    assert_eq!(
        db.get_device(&w.a_bc, &dev.id, T0 + 30 + devices::OFFLINE_AFTER_MS + 1)
            .await
            .unwrap()
            .state,
        DeviceState::Offline
    );
    assert!(matches!(
        db.authorize_publish("sk_unknown", "203.0.113.5:1", T0)
            .await,
        Err(ControlError::Auth(AuthError::Unknown {
            what: "stream key"
        }))
    ));
    assert!(db
        .authorize_publish(&"k".repeat(1 << 20), "x", T0)
        .await
        .is_err());

    // Rotate: old refused, new accepted, revocation announced and listed.
    let mut revocations = db.subscribe_revocations();
    assert!(db.is_key_active(&key.id).await.unwrap());
    let (key2, secret2) = db
        .rotate_stream_key(&w.a_bc, &key.id, T0 + 100)
        .await
        .unwrap();
    assert_ne!(secret2, secret);
    assert!(matches!(
        db.authorize_publish(secret.expose(), "203.0.113.5:1", T0 + 101)
            .await,
        Err(ControlError::Auth(AuthError::Revoked { .. }))
    ));
    assert!(!db.is_key_active(&key.id).await.unwrap());
    db.authorize_publish(secret2.expose(), "203.0.113.5:1", T0 + 101)
        .await
        .unwrap();
    let r = revocations.try_recv().unwrap();
    assert_eq!(
        (r.key_id.as_str(), r.channel.as_str()),
        (key.id.as_str(), "live1")
    );
    let since = db.revoked_keys_since(T0).await.unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].key_id, key.id);
    assert!(db.revoked_keys_since(T0 + 100).await.unwrap().is_empty());

    // Revoke one key directly.
    let (key3, secret3) = db
        .create_stream_key(&w.a_bc, &dev.id, None, T0 + 200)
        .await
        .unwrap();
    db.revoke_stream_key(&w.a_bc, &key3.id, T0 + 201)
        .await
        .unwrap();
    assert!(db
        .authorize_publish(secret3.expose(), "x", T0 + 202)
        .await
        .is_err());
    assert_eq!(revocations.try_recv().unwrap().key_id, key3.id);

    // Revoking the device revokes its remaining keys.
    let gone = db.revoke_device(&w.a_bc, &dev.id, T0 + 300).await.unwrap();
    assert_eq!(
        gone.iter().map(|r| r.key_id.as_str()).collect::<Vec<_>>(),
        [key2.id.as_str()]
    );
    assert_eq!(revocations.try_recv().unwrap().key_id, key2.id);
    assert!(matches!(
        db.authorize_publish(secret2.expose(), "x", T0 + 301).await,
        Err(ControlError::Auth(AuthError::Revoked { .. }))
    ));
    assert!(!db.is_key_active(&key2.id).await.unwrap());
    assert!(db
        .create_stream_key(&w.a_bc, &dev.id, None, T0 + 302)
        .await
        .is_err());
    let keys = db.list_stream_keys(&w.a_bc, &dev.id).await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.revoked_at.is_some()));

    // Deleting the channel removes its keys.
    let dev2 = db
        .create_device(&w.a_bc, "phone", DeviceKind::Phone, None, T0)
        .await
        .unwrap();
    assert!(matches!(
        db.create_stream_key(&w.a_bc, &dev2.id, None, T0).await,
        Err(ControlError::Validation(ValidationError {
            field: "channel_id",
            ..
        }))
    ));
    let (_, s5) = db
        .create_stream_key(&w.a_bc, &dev2.id, Some(&ch.id), T0)
        .await
        .unwrap();
    db.delete_channel(&w.a_bc, &ch.id).await.unwrap();
    assert!(db.authorize_publish(s5.expose(), "x", T0).await.is_err());
    assert_eq!(
        db.get_device(&w.a_bc, &dev2.id, T0)
            .await
            .unwrap()
            .channel_id,
        None
    );
}

async fn playback_secret_is_shared(t: &TestDb) {
    let db = &t.db;
    let s1 = db.playback_signer().await.unwrap();
    let token = s1.sign("news", T0 + MIN, Some("v1")).unwrap();
    // Another node (another pool on the same database) verifies it.
    let other = Db::connect(&t.cfg).await.unwrap();
    let s2 = other.playback_signer().await.unwrap();
    let claims = s2.verify(&token, "news", T0).unwrap();
    assert_eq!(claims.viewer_id.as_deref(), Some("v1"));
    assert!(matches!(
        s2.verify(&token, "news", T0 + MIN),
        Err(TokenError::Expired { .. })
    ));
    assert!(matches!(
        s2.verify(&token, "sport", T0),
        Err(TokenError::WrongChannel { .. })
    ));
    // The P2P piece key is shared the same way, and is not the playback key.
    let seed = db.p2p_piece_seed().await.unwrap();
    assert_eq!(other.p2p_piece_seed().await.unwrap(), seed);
    assert_ne!(seed, [0; 32]);
    other.close().await;
}

async fn invalid_input_changes_nothing(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let field = |r: Result<Channel>| match r {
        Err(ControlError::Validation(v)) => v.field,
        other => panic!("expected a validation error, got {other:?}"),
    };
    let mut nul = NewChannel::named("ok");
    nul.title = "a\0b".into();
    let mut big = NewChannel::named("ok2");
    big.title = "x".repeat(1 << 20);
    let mut dvr = NewChannel::named("ok3");
    dvr.dvr_window_secs = -1;
    assert_eq!(
        field(
            db.create_channel(&w.a_bc, &NewChannel::named("../etc"), T0)
                .await
        ),
        "name"
    );
    assert_eq!(
        field(
            db.create_channel(&w.a_bc, &NewChannel::named("a\0b"), T0)
                .await
        ),
        "name"
    );
    assert_eq!(
        field(
            db.create_channel(&w.a_bc, &NewChannel::named("n".repeat(1 << 20)), T0)
                .await
        ),
        "name"
    );
    assert_eq!(field(db.create_channel(&w.a_bc, &nul, T0).await), "title");
    assert_eq!(field(db.create_channel(&w.a_bc, &big, T0).await), "title");
    assert_eq!(
        field(db.create_channel(&w.a_bc, &dvr, T0).await),
        "dvr_window_secs"
    );
    assert!(db.list_channels(&w.a_bc, 100, 0).await.unwrap().is_empty());

    assert!(matches!(
        db.create_device(&w.a_bc, "../../cam", DeviceKind::Other, None, T0)
            .await,
        Err(ControlError::Validation(ValidationError {
            field: "name",
            ..
        }))
    ));
    assert!(matches!(
        db.create_user(&w.sys, &w.b_org, "not-an-email", PW, Role::Viewer, T0)
            .await,
        Err(ControlError::Validation(ValidationError {
            field: "email",
            ..
        }))
    ));
    assert!(matches!(
        db.create_user(&w.sys, &w.b_org, "x@y.z", "short", Role::Viewer, T0)
            .await,
        Err(ControlError::Validation(ValidationError {
            field: "password",
            ..
        }))
    ));
    assert!(matches!(
        db.create_org(&w.sys, &"o".repeat(1 << 20), T0).await,
        Err(ControlError::Validation(ValidationError {
            field: "name",
            ..
        }))
    ));
    assert!(db.list_devices(&w.a_bc, T0).await.unwrap().is_empty());
    assert_eq!(
        db.list_users(&w.sys, &w.b_org, 50, 0).await.unwrap().len(),
        1
    );
}

async fn debug_output_never_shows_secrets(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("dbg"), T0)
        .await
        .unwrap();
    let dev = db
        .create_device(&w.a_bc, "enc", DeviceKind::Encoder, Some(&ch.id), T0)
        .await
        .unwrap();
    let (key, ksecret) = db
        .create_stream_key(&w.a_bc, &dev.id, None, T0)
        .await
        .unwrap();
    let (sess, ssecret) = db.create_session(&w.a_bc, MIN, T0).await.unwrap();
    let (tok, tsecret) = db.create_api_token(&w.a_bc, "t", None, T0).await.unwrap();
    let grant = db
        .authorize_publish(ksecret.expose(), "192.0.2.9:1", T0)
        .await
        .unwrap();
    let signer = db.playback_signer().await.unwrap();
    let users = db.list_users(&w.sys, &w.b_org, 50, 0).await.unwrap();
    let password_hashes: Vec<String> = sqlx::query("SELECT password_hash FROM users")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("password_hash").unwrap())
        .collect();
    let playback_key: String =
        sqlx::query("SELECT value FROM settings WHERE key = 'playback_hmac_key'")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("value")
            .unwrap();
    let err = db
        .authorize_publish(ksecret.expose(), "x", T0)
        .await
        .map(|_| ());
    let login_err = db
        .login("bc@a.example", "wrong password!", "192.0.2.1", T0)
        .await;
    let debug = format!(
        "{key:?}{ksecret:?}{sess:?}{ssecret:?}{tok:?}{tsecret:?}{grant:?}{signer:?}{users:?}{w_a:?}\
         {dev:?}{ch:?}{db:?}{cfg:?}{err:?}{login_err:?}{keys:?}{tokens:?}",
        w_a = w.a_bc,
        cfg = t.cfg,
        keys = db.list_stream_keys(&w.a_bc, &dev.id).await.unwrap(),
        tokens = db.list_api_tokens(&w.a_bc).await.unwrap(),
    );
    let mut forbidden = vec![
        ksecret.expose().to_owned(),
        ssecret.expose().to_owned(),
        tsecret.expose().to_owned(),
        hash_secret(ksecret.expose()),
        hash_secret(ssecret.expose()),
        hash_secret(tsecret.expose()),
        playback_key,
        PW.to_owned(),
        "wrong password!".to_owned(),
        "$argon2".to_owned(),
    ];
    forbidden.extend(password_hashes);
    for f in &forbidden {
        assert!(
            !debug.contains(f.as_str()),
            "Debug output contains a secret: {f:.12}…"
        );
    }
    // The display prefix is the one part of a key that may be shown.
    assert!(debug.contains(&key.prefix));
}

fn new_event(channel_id: &str) -> NewEvent {
    NewEvent {
        channel_id: channel_id.to_owned(),
        title: "Final".into(),
        artwork_url: Some("https://cdn.example/final.jpg".into()),
        scheduled_start: T0 + 60 * MIN,
        scheduled_end: T0 + 180 * MIN,
        preshow_lead_secs: None,
    }
}

async fn events_lifecycle_and_tenant_isolation(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("final"), T0)
        .await
        .unwrap();
    let mut changes = db.subscribe_event_changes();
    let ev = db
        .create_event(&w.a_bc, &new_event(&ch.id), T0)
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), ev.id);
    assert_eq!(ev.state, EventState::Scheduled);
    assert_eq!(ev.channel, "final");
    assert_eq!(ev.preshow_lead_secs, events::PRESHOW_LEAD_DEFAULT_SECS);
    assert_eq!(db.get_event(&w.a_bc, &ev.id).await.unwrap(), ev);
    assert_eq!(
        db.list_events(&w.a_bc, 10, 0).await.unwrap(),
        vec![ev.clone()]
    );
    // The schedule the state machine runs on.
    let s = ev.schedule();
    assert_eq!(s.channel, "final");
    assert_eq!(s.scheduled_start, events::system_time(T0 + 60 * MIN));

    // Other org: not found, not listed, cannot create on A's channel.
    assert!(is_not_found(&db.get_event(&w.b_bc, &ev.id).await));
    assert!(db.list_events(&w.b_bc, 10, 0).await.unwrap().is_empty());
    assert!(is_not_found(
        &db.update_event(&w.b_bc, &ev.id, &EventUpdate::default(), T0)
            .await
    ));
    assert!(is_not_found(&db.cancel_event(&w.b_bc, &ev.id, T0).await));
    assert!(is_not_found(&db.delete_event(&w.b_bc, &ev.id).await));
    assert!(is_not_found(
        &db.create_event(&w.b_bc, &new_event(&ch.id), T0).await
    ));
    // A viewer reads nothing and changes nothing.
    assert!(matches!(
        db.create_event(&w.a_viewer, &new_event(&ch.id), T0).await,
        Err(ControlError::Forbidden { .. })
    ));

    // Bad schedules and URLs: 400-type errors naming the field, nothing stored.
    for (mut n, field) in [
        (new_event(&ch.id), "scheduled_end"),
        (new_event(&ch.id), "artwork_url"),
        (new_event(&ch.id), "title"),
        (new_event(&ch.id), "preshow_lead_secs"),
        (new_event(&ch.id), "scheduled_start"),
    ] {
        match field {
            "scheduled_end" => n.scheduled_end = n.scheduled_start,
            "artwork_url" => n.artwork_url = Some("javascript:alert(1)".into()),
            "title" => n.title = "a\0b".into(),
            "preshow_lead_secs" => n.preshow_lead_secs = Some(-1),
            _ => n.scheduled_start = -5,
        }
        let e = db.create_event(&w.a_bc, &n, T0).await.unwrap_err();
        assert!(
            matches!(&e, ControlError::Validation(v) if v.field == field),
            "{field}: {e:?}"
        );
    }
    assert_eq!(db.list_events(&w.a_bc, 10, 0).await.unwrap().len(), 1);

    // Edit: revision and updated_at move; a delayed start is a schedule edit.
    let up = EventUpdate {
        title: Some("Final (delayed)".into()),
        artwork_url: Some(None),
        scheduled_start: Some(T0 + 90 * MIN),
        ..Default::default()
    };
    let ev2 = db
        .update_event(&w.a_bc, &ev.id, &up, T0 + MIN)
        .await
        .unwrap();
    assert_eq!(ev2.title, "Final (delayed)");
    assert_eq!(ev2.artwork_url, None);
    assert_eq!(ev2.revision, ev.revision + 1);
    assert_eq!(ev2.updated_at, T0 + MIN);
    let changed = db.events_changed_since(T0 + MIN).await.unwrap();
    assert_eq!(
        changed.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&ev.id]
    );
    assert!(db
        .events_changed_since(T0 + 2 * MIN)
        .await
        .unwrap()
        .is_empty());

    // Cancel: final, no more edits.
    let c = db
        .cancel_event(&w.a_bc, &ev.id, T0 + 2 * MIN)
        .await
        .unwrap();
    assert_eq!(c.state, EventState::Cancelled);
    assert_eq!(c.state_changed_at, T0 + 2 * MIN);
    assert!(matches!(
        db.update_event(&w.a_bc, &ev.id, &up, T0 + 3 * MIN).await,
        Err(ControlError::Validation(v)) if v.field == "state"
    ));
    assert!(db.events_to_drive(0).await.unwrap().is_empty());
    db.delete_event(&w.a_bc, &ev.id).await.unwrap();
    assert!(db.event_by_id(&ev.id).await.unwrap().is_none());
    assert!(db.event_by_id(&"x".repeat(10_000)).await.unwrap().is_none());
    // Deleting the channel deletes its events.
    let ev3 = db
        .create_event(&w.a_bc, &new_event(&ch.id), T0)
        .await
        .unwrap();
    db.delete_channel(&w.a_bc, &ch.id).await.unwrap();
    assert!(db.event_by_id(&ev3.id).await.unwrap().is_none());
    let _ = w.sys;
}

async fn event_transitions_are_compare_and_set(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("cas"), T0)
        .await
        .unwrap();
    let ev = db
        .create_event(&w.a_bc, &new_event(&ch.id), T0)
        .await
        .unwrap();
    assert_eq!(db.events_to_drive(0).await.unwrap().len(), 1);
    // Two nodes try the same transition: one wins.
    assert!(db
        .transition_event(&ev.id, EventState::Scheduled, EventState::PreShow, T0 + MIN)
        .await
        .unwrap());
    assert!(!db
        .transition_event(&ev.id, EventState::Scheduled, EventState::PreShow, T0 + MIN)
        .await
        .unwrap());
    let now = db.get_event(&w.a_bc, &ev.id).await.unwrap();
    assert_eq!(now.state, EventState::PreShow);
    assert_eq!(now.revision, 2);
    assert_eq!(now.state_changed_at, T0 + MIN);
    for (from, to) in [
        (EventState::PreShow, EventState::Live),
        (EventState::Live, EventState::Ended),
    ] {
        assert!(db
            .transition_event(&ev.id, from, to, T0 + 2 * MIN)
            .await
            .unwrap());
    }
    // Recently ended events are still driven (a dropped stream may come back).
    assert_eq!(db.events_to_drive(T0).await.unwrap().len(), 1);
    assert!(db.events_to_drive(T0 + 2 * MIN).await.unwrap().is_empty());
}

async fn users_orgs_and_watching(t: &TestDb) {
    let db = &t.db;
    let w = world(db).await;
    // Paging is stable and bounded.
    let a_org = w.a_bc.org_id.clone();
    let all = db.list_users(&w.sys, &a_org, 50, 0).await.unwrap();
    assert_eq!(all.len(), 2);
    let first = db.list_users(&w.sys, &a_org, 1, 0).await.unwrap();
    let second = db.list_users(&w.sys, &a_org, 1, 1).await.unwrap();
    assert_eq!([first, second].concat(), all);
    assert!(matches!(
        db.list_users(&w.sys, &a_org, 0, 0).await,
        Err(ControlError::Validation(v)) if v.field == "limit"
    ));
    // get_user: system admin anywhere; others not at all (broadcasters do not manage users).
    let u = &all[0];
    assert_eq!(&db.get_user(&w.sys, &u.id).await.unwrap(), u);
    assert!(matches!(
        db.get_user(&w.a_bc, &u.id).await,
        Err(ControlError::Forbidden { .. })
    ));
    assert!(is_not_found(&db.get_user(&w.b_bc, &u.id).await));
    assert!(is_not_found(&db.get_user(&w.sys, "usr_nope").await));
    // Orgs: the system admin sees all three, a broadcaster only its own.
    assert_eq!(db.list_orgs(&w.sys, 50, 0).await.unwrap().len(), 3);
    let own = db.list_orgs(&w.b_bc, 50, 0).await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].id, w.b_org);
    // A viewer may watch its organisation's channel but not read it as a manager.
    let ch = db
        .create_channel(&w.a_bc, &NewChannel::named("watchme"), T0)
        .await
        .unwrap();
    assert_eq!(
        db.channel_for_watch(&w.a_viewer, &ch.id).await.unwrap().id,
        ch.id
    );
    assert!(matches!(
        db.get_channel(&w.a_viewer, &ch.id).await,
        Err(ControlError::Forbidden { .. })
    ));
    assert!(is_not_found(&db.channel_for_watch(&w.b_bc, &ch.id).await));
}

// ---- webhooks ----

#[path = "suite_srt.rs"]
mod srt_suite;

mod webhooks_suite {
    use super::*;
    use crate::webhooks::{DELIVERY_LEASE_MS, PAYLOAD_MAX, WEBHOOKS_PER_ORG_MAX};

    suite!(
        webhooks_crud_and_tenant_isolation,
        webhook_queue_fans_out_claims_and_records,
        webhook_queue_survives_a_restart,
    );

    const URL: &str = "http://127.0.0.1:9/hook";

    /// Admins of org `a` and org `b` (the world has none).
    async fn admins(db: &Db, w: &World) -> (Principal, Principal) {
        for (org, email) in [
            (&w.a_bc.org_id, "admin@a.example"),
            (&w.b_org, "admin@b.example"),
        ] {
            db.create_user(&w.sys, org, email, PW, Role::Admin, T0)
                .await
                .unwrap();
        }
        (
            login(db, "admin@a.example").await,
            login(db, "admin@b.example").await,
        )
    }

    fn is_forbidden(r: &Result<impl std::fmt::Debug, ControlError>) -> bool {
        matches!(r, Err(ControlError::Forbidden { .. }))
    }

    fn is_invalid(r: &Result<impl std::fmt::Debug, ControlError>, field: &str) -> bool {
        matches!(r, Err(ControlError::Validation(v)) if v.field == field)
    }

    async fn webhooks_crud_and_tenant_isolation(t: &TestDb) {
        let db = &t.db;
        let w = world(db).await;
        let (a, b) = admins(db, &w).await;
        let (hook, secret) = db
            .create_webhook(&a, URL, &["stream.ended", "stream.started"], T0)
            .await
            .unwrap();
        assert!(hook.id.starts_with("wh_") && hook.org_id == a.org_id && !hook.disabled);
        assert_eq!(
            hook.events,
            vec![WebhookEvent::StreamStarted, WebhookEvent::StreamEnded]
        );
        assert!(secret.expose().starts_with("whsec_") && secret.expose().len() > 40);
        assert_eq!(db.get_webhook(&a, &hook.id).await.unwrap(), hook);
        assert_eq!(db.list_webhooks(&a).await.unwrap(), vec![hook.clone()]);

        // Broadcasters and viewers of the same org: forbidden. Anyone of another org,
        // even the system admin: not found.
        for p in [&w.a_bc, &w.a_viewer] {
            assert!(is_forbidden(
                &db.create_webhook(p, URL, &["stream.started"], T0).await
            ));
            assert!(is_forbidden(&db.list_webhooks(p).await));
            assert!(is_forbidden(&db.get_webhook(p, &hook.id).await));
            assert!(is_forbidden(&db.delete_webhook(p, &hook.id).await));
            assert!(is_forbidden(&db.list_deliveries(p, &hook.id, 10, 0).await));
        }
        for p in [&b, &w.b_bc, &w.sys] {
            assert!(is_not_found(&db.get_webhook(p, &hook.id).await), "{p:?}");
            assert!(is_not_found(&db.delete_webhook(p, &hook.id).await));
            assert!(is_not_found(&db.list_deliveries(p, &hook.id, 10, 0).await));
            assert!(is_not_found(
                &db.set_webhook_disabled(p, &hook.id, true).await
            ));
        }
        assert!(db.list_webhooks(&b).await.unwrap().is_empty());

        // Bad input: refused, nothing stored.
        let long = format!("http://example.org/{}", "a".repeat(2048));
        for (url, events) in [
            ("ftp://example.org/", vec!["stream.started"]),
            ("https://u:p@example.org/", vec!["stream.started"]),
            ("not a url", vec!["stream.started"]),
            (long.as_str(), vec!["stream.started"]),
        ] {
            assert!(
                is_invalid(&db.create_webhook(&a, url, &events, T0).await, "url"),
                "{url:.40}"
            );
        }
        for events in [vec![], vec!["stream.started", "nope"]] {
            assert!(is_invalid(
                &db.create_webhook(&a, URL, &events, T0).await,
                "events"
            ));
        }
        assert_eq!(db.list_webhooks(&a).await.unwrap().len(), 1);

        // Per-organisation cap.
        for _ in 1..WEBHOOKS_PER_ORG_MAX {
            db.create_webhook(&a, URL, &["recording.ready"], T0)
                .await
                .unwrap();
        }
        assert!(is_invalid(
            &db.create_webhook(&a, URL, &["recording.ready"], T0).await,
            "url"
        ));
        assert!(db
            .create_webhook(&b, URL, &["recording.ready"], T0)
            .await
            .is_ok());

        // The secret is stored (to sign) but no view or Debug output shows it.
        let due_debug = {
            db.enqueue_webhook_event(&a.org_id, WebhookEvent::StreamStarted, "{}", T0)
                .await
                .unwrap();
            format!("{:?}", db.due_deliveries(T0, 10).await.unwrap())
        };
        assert!(due_debug.contains(&hook.id), "{due_debug}");
        let debug = format!(
            "{hook:?}{secret:?}{:?}{:?}{due_debug}",
            db.list_webhooks(&a).await.unwrap(),
            db.list_deliveries(&a, &hook.id, 10, 0).await.unwrap(),
        );
        assert!(
            !debug.contains(secret.expose()),
            "Debug shows a webhook secret"
        );

        // Disable, enable, delete.
        assert!(
            db.set_webhook_disabled(&a, &hook.id, true)
                .await
                .unwrap()
                .disabled
        );
        assert!(db.get_webhook(&a, &hook.id).await.unwrap().disabled);
        assert!(
            !db.set_webhook_disabled(&a, &hook.id, false)
                .await
                .unwrap()
                .disabled
        );
        db.delete_webhook(&a, &hook.id).await.unwrap();
        assert!(is_not_found(&db.get_webhook(&a, &hook.id).await));
        assert!(is_not_found(&db.delete_webhook(&a, &hook.id).await));
        let left: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(&hook.id)
                .fetch_one(db.pool())
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
        assert_eq!(left, 0, "deleting a webhook deletes its deliveries");
    }

    async fn webhook_queue_fans_out_claims_and_records(t: &TestDb) {
        let db = &t.db;
        let w = world(db).await;
        let (a, b) = admins(db, &w).await;
        let (h1, s1) = db
            .create_webhook(&a, URL, &["stream.started", "stream.ended"], T0)
            .await
            .unwrap();
        let (h2, _) = db
            .create_webhook(&a, "https://example.org/h2", &["recording.ready"], T0)
            .await
            .unwrap();
        let (hb, _) = db
            .create_webhook(&b, URL, &["stream.started"], T0)
            .await
            .unwrap();
        let data = r#"{"channel":"news","channel_id":"ch_1","started_at":1700000000000}"#;

        // Fan-out: only the org's webhooks subscribed to the kind.
        let started = db
            .enqueue_webhook_event(&a.org_id, WebhookEvent::StreamStarted, data, T0)
            .await
            .unwrap();
        assert_eq!(started.len(), 1);
        let ready = db
            .enqueue_webhook_event(&a.org_id, WebhookEvent::RecordingReady, "{}", T0 + 1)
            .await
            .unwrap();
        assert_eq!(ready.len(), 1);
        assert!(db
            .enqueue_webhook_event(&a.org_id, WebhookEvent::EventStateChanged, "{}", T0)
            .await
            .unwrap()
            .is_empty());
        // Bad payloads are refused.
        for bad in ["[1]", "null", ""] {
            assert!(is_invalid(
                &db.enqueue_webhook_event(&a.org_id, WebhookEvent::StreamEnded, bad, T0)
                    .await,
                "payload"
            ));
        }
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(PAYLOAD_MAX));
        assert!(is_invalid(
            &db.enqueue_webhook_event(&a.org_id, WebhookEvent::StreamEnded, &big, T0)
                .await,
            "payload"
        ));
        assert_eq!(db.next_delivery_due().await.unwrap(), Some(T0));

        // Nothing before it is due; then both, oldest first, with URL and secret.
        assert!(db.due_deliveries(T0 - 1, 10).await.unwrap().is_empty());
        let due = db.due_deliveries(T0 + 1, 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|d| d.delivery.id.as_str())
                .collect::<Vec<_>>(),
            vec![started[0].as_str(), ready[0].as_str()]
        );
        let d = &due[0];
        assert_eq!(d.url, URL);
        assert_eq!(d.secret, s1);
        assert_eq!(d.delivery.webhook_id, h1.id);
        assert_eq!(d.delivery.event, WebhookEvent::StreamStarted);
        assert_eq!(d.delivery.attempts, 0);
        assert!(
            d.delivery.payload.starts_with("{\"id\":\"evt_"),
            "{}",
            d.delivery.payload
        );
        assert!(
            d.delivery.payload.contains(&format!(
                "\"type\":\"stream.started\",\"created_at\":{T0},\"org_id\":\"{}\",\"data\":{data}}}",
                a.org_id
            )),
            "{}",
            d.delivery.payload
        );
        assert_eq!(due[1].delivery.webhook_id, h2.id);
        // Claimed: invisible until the lease runs out (a dead node's attempt is retried).
        assert!(db.due_deliveries(T0 + 2, 10).await.unwrap().is_empty());
        assert_eq!(
            db.due_deliveries(T0 + 1 + DELIVERY_LEASE_MS, 10)
                .await
                .unwrap()
                .len(),
            2
        );

        // A retry is due at its time, not before.
        let t1 = T0 + 2 * DELIVERY_LEASE_MS;
        db.record_delivery_attempt(
            &started[0],
            &AttemptResult::Retry {
                status: Some(503),
                error: "HTTP 503".into(),
                next_attempt_at: t1 + 10_000,
            },
            t1,
        )
        .await
        .unwrap();
        db.record_delivery_attempt(
            &ready[0],
            &AttemptResult::GaveUp {
                status: None,
                error: "x".repeat(10_000),
            },
            t1,
        )
        .await
        .unwrap();
        assert!(db.due_deliveries(t1 + 9_999, 10).await.unwrap().is_empty());
        let due = db.due_deliveries(t1 + 10_000, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery.attempts, 1);
        assert_eq!(due[0].delivery.last_status, Some(503));
        db.record_delivery_attempt(
            &started[0],
            &AttemptResult::Delivered { status: 204 },
            t1 + 10_050,
        )
        .await
        .unwrap();
        // A late duplicate outcome (e.g. from a node whose lease ran out) changes nothing.
        db.record_delivery_attempt(
            &started[0],
            &AttemptResult::GaveUp {
                status: Some(500),
                error: "late".into(),
            },
            t1 + 20_000,
        )
        .await
        .unwrap();
        let list = db.list_deliveries(&a, &h1.id, 10, 0).await.unwrap();
        assert_eq!(list.len(), 1);
        let d = &list[0];
        assert_eq!(d.state(), DeliveryState::Delivered);
        assert_eq!(
            (d.attempts, d.last_status, d.delivered_at, d.next_attempt_at),
            (2, Some(204), Some(t1 + 10_050), None)
        );
        assert_eq!(d.last_error, None);
        let failed = &db.list_deliveries(&a, &h2.id, 10, 0).await.unwrap()[0];
        assert_eq!(failed.state(), DeliveryState::Failed);
        assert_eq!(failed.last_error.as_ref().map(String::len), Some(500));
        assert!(db
            .due_deliveries(i64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(db.next_delivery_due().await.unwrap(), None);
        assert!(is_invalid(
            &db.list_deliveries(&a, &h1.id, 0, 0).await,
            "limit"
        ));

        // Disabled: no new deliveries, pending ones wait.
        db.enqueue_webhook_event(&a.org_id, WebhookEvent::StreamEnded, "{}", t1)
            .await
            .unwrap();
        db.set_webhook_disabled(&a, &h1.id, true).await.unwrap();
        assert!(db
            .enqueue_webhook_event(&a.org_id, WebhookEvent::StreamEnded, "{}", t1)
            .await
            .unwrap()
            .is_empty());
        assert!(db.due_deliveries(t1, 10).await.unwrap().is_empty());
        db.set_webhook_disabled(&a, &h1.id, false).await.unwrap();
        let due = db.due_deliveries(t1, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery.event, WebhookEvent::StreamEnded);

        // Concurrent claims never hand out the same delivery twice.
        let t2 = t1 + 10 * DELIVERY_LEASE_MS;
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.extend(
                db.enqueue_webhook_event(&b.org_id, WebhookEvent::StreamStarted, "{}", t2 + i)
                    .await
                    .unwrap(),
            );
        }
        let (x, y, z) = tokio::join!(
            db.due_deliveries(t2 + 10, 4),
            db.due_deliveries(t2 + 10, 4),
            db.due_deliveries(t2 + 10, 4)
        );
        let mut claimed: Vec<String> = [x.unwrap(), y.unwrap(), z.unwrap()]
            .into_iter()
            .flatten()
            .filter(|d| d.delivery.webhook_id == hb.id)
            .map(|d| d.delivery.id)
            .collect();
        claimed.sort();
        let before = claimed.len();
        claimed.dedup();
        assert_eq!(claimed.len(), before, "a delivery was claimed twice");
        let mut rest: Vec<String> = db
            .due_deliveries(t2 + 10, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.delivery.webhook_id == hb.id)
            .map(|d| d.delivery.id)
            .collect();
        claimed.append(&mut rest);
        claimed.sort();
        ids.sort();
        assert_eq!(claimed, ids, "every delivery is claimed exactly once");

        // Pruning removes finished deliveries only.
        assert_eq!(db.prune_deliveries(t1 + 1).await.unwrap(), 1);
        assert!(db
            .list_deliveries(&a, &h2.id, 10, 0)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            db.list_deliveries(&a, &h1.id, 10, 0).await.unwrap().len(),
            2
        );
    }

    async fn webhook_queue_survives_a_restart(t: &TestDb) {
        let db = &t.db;
        let w = world(db).await;
        let (a, _) = admins(db, &w).await;
        let (hook, secret) = db
            .create_webhook(&a, URL, &["event.state_changed"], T0)
            .await
            .unwrap();
        let ids = db
            .enqueue_webhook_event(
                &a.org_id,
                WebhookEvent::EventStateChanged,
                r#"{"state":"live"}"#,
                T0,
            )
            .await
            .unwrap();
        db.close().await;
        let again = Db::connect(&t.cfg).await.unwrap();
        let due = again.due_deliveries(T0, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery.id, ids[0]);
        assert_eq!(due[0].delivery.webhook_id, hook.id);
        assert_eq!(due[0].secret, secret);
        assert!(due[0]
            .delivery
            .payload
            .ends_with(r#""data":{"state":"live"}}"#));
        again.close().await;
    }
}
