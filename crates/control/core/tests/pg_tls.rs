//! The control plane over TLS to a real PostgreSQL (the one `scripts/pg-test-env`
//! starts, with TLS on and a throwaway CA in `STARLING_TEST_PG_CA`): `verify-full`
//! with the CA connects over TLS, `require` encrypts without checking, and
//! `verify-full` without the CA is refused (the server's certificate is not trusted).

#![allow(clippy::unwrap_used)]

use starling_control::{Db, DbConfig};

/// The test server's URL and CA file, or None when this run has no TLS-capable server.
fn tls_server() -> Option<(String, String)> {
    let Ok(url) = std::env::var("STARLING_TEST_DATABASE_URL") else {
        if std::env::var("STARLING_SKIP_POSTGRES_TESTS").as_deref() == Ok("1") {
            return None;
        }
        panic!("STARLING_TEST_DATABASE_URL is not set: run `eval \"$(scripts/pg-test-env)\"` first, or set STARLING_SKIP_POSTGRES_TESTS=1");
    };
    match std::env::var("STARLING_TEST_PG_CA") {
        Ok(ca) => Some((url, ca)),
        Err(_) => {
            // pg-test-env runs without TLS only when openssl is missing; it says so.
            eprintln!("STARLING_TEST_PG_CA unset (a test server without TLS): skipping");
            None
        }
    }
}

async fn connect(url: String) -> Result<Db, starling_control::ControlError> {
    let dir = std::env::temp_dir().join(format!("starling-pg-tls-{}", std::process::id()));
    let mut cfg = DbConfig::new(dir);
    cfg.database_url = Some(url);
    cfg.max_connections = 1;
    Db::connect(&cfg).await
}

async fn uses_tls(db: &Db) -> bool {
    let on: i32 = sqlx::query_scalar(
        "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    on == 1
}

#[tokio::test]
async fn postgres_over_tls_with_sslmode_in_the_url() {
    let Some((url, ca)) = tls_server() else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };

    let db = connect(format!("{url}{sep}sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap();
    assert!(uses_tls(&db).await, "verify-full did not use TLS");

    let db = connect(format!("{url}{sep}sslmode=require")).await.unwrap();
    assert!(uses_tls(&db).await, "require did not use TLS");

    let db = connect(format!("{url}{sep}sslmode=disable")).await.unwrap();
    assert!(!uses_tls(&db).await, "disable used TLS");

    // The throwaway CA is not among the public roots: verification must fail.
    match connect(format!("{url}{sep}sslmode=verify-full")).await {
        Ok(_) => panic!("an untrusted server certificate was accepted"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
