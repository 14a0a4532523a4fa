//! Router tests through `oneshot` (no socket), run against SQLite (a temp file) and
//! PostgreSQL (`STARLING_TEST_DATABASE_URL`; without it the PostgreSQL variants fail
//! unless `STARLING_SKIP_POSTGRES_TESTS=1`), as in starling-control's suite.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use starling_control::{Db, DbConfig, NewChannel, PasswordParams, Principal, Role};
use tower::ServiceExt as _;

use crate::{router, ApiState};

const PW: &str = "correct horse battery";
const T0: i64 = 1_700_000_000_000;

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

fn now() -> i64 {
    T0
}

fn test_config(dir: std::path::PathBuf) -> DbConfig {
    let mut cfg = DbConfig::new(dir);
    cfg.passwords = PasswordParams::INSECURE_FAST;
    cfg.max_connections = 4;
    cfg
}

/// One organisation's people (API tokens) and principals.
struct OrgFx {
    admin: String,
    bc: String,
    viewer: String,
    admin_p: Principal,
}

struct Fx {
    db: Db,
    app: Router,
    recordings: Arc<FakeRecordings>,
    a: OrgFx,
    b: OrgFx,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Fx {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

async fn org(db: &Db, sys: &Principal, name: &str) -> OrgFx {
    let org = db.create_org(sys, name, T0).await.unwrap();
    let mut tokens = Vec::new();
    let mut admin_p = None;
    for role in [Role::Admin, Role::Broadcaster, Role::Viewer] {
        let email = format!("{role}@{name}.example");
        db.create_user(sys, &org.id, &email, PW, role, T0)
            .await
            .unwrap();
        let p = db.login(&email, PW, "setup", T0).await.unwrap();
        let (_, secret) = db.create_api_token(&p, "setup", None, T0).await.unwrap();
        tokens.push(secret.expose().to_owned());
        if role == Role::Admin {
            admin_p = Some(p);
        }
    }
    let [admin, bc, viewer] = <[String; 3]>::try_from(tokens).unwrap();
    OrgFx {
        admin,
        bc,
        viewer,
        admin_p: admin_p.unwrap(),
    }
}

impl Fx {
    async fn with_db(db: Db, dir: Option<std::path::PathBuf>) -> Self {
        db.bootstrap_admin("root@sys.example", PW, "system", T0)
            .await
            .unwrap();
        let sys = db.login("root@sys.example", PW, "setup", T0).await.unwrap();
        let a = org(&db, &sys, "orga").await;
        let b = org(&db, &sys, "orgb").await;
        let recordings = Arc::new(FakeRecordings::default());
        let app = router::<()>(ApiState {
            db: db.clone(),
            now,
            webhook_targets: Default::default(),
            recordings: Some(recordings.clone()),
        });
        Self {
            db,
            app,
            recordings,
            a,
            b,
            dir,
        }
    }

    async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique("starling-api-test-"));
        let db = Db::connect(&test_config(dir.clone())).await.unwrap();
        Self::with_db(db, Some(dir)).await
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
        let name = unique("starling_api_t_");
        {
            use sqlx::Connection as _;
            sqlx::any::install_default_drivers();
            let mut admin = sqlx::AnyConnection::connect(&base).await.unwrap();
            // The name is our own digits, not user input.
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
        Some(Self::with_db(db, None).await)
    }

    /// Sends a request; `body` bytes are sent with `content_type` if given.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(header::HeaderName, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = auth {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        for (k, v) in extra {
            req = req.header(k, *v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40000))));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), serde_json::to_vec(&b).unwrap()),
            None => (None, Vec::new()),
        };
        let (s, _, b) = self.raw(method, path, auth, ct, bytes, &[]).await;
        let v = if b.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{path}: not JSON ({e})"))
        };
        (s, v)
    }

    /// A fresh channel, device (on it) and key in `org`, through `Db`.
    async fn resources(&self, org: &OrgFx) -> (String, String, String) {
        let p = &org.admin_p;
        let ch = self
            .db
            .create_channel(p, &NewChannel::named(unique("ch")), T0)
            .await
            .unwrap();
        let dev = self
            .db
            .create_device(
                p,
                "enc",
                starling_control::DeviceKind::Encoder,
                Some(&ch.id),
                T0,
            )
            .await
            .unwrap();
        let (key, _) = self
            .db
            .create_stream_key(p, &dev.id, None, T0)
            .await
            .unwrap();
        (ch.id, dev.id, key.id)
    }

    /// A fresh event on `ch` and a fresh viewer in `org`, through `Db`.
    async fn event_and_user(&self, org: &OrgFx, ch: &str) -> (String, String) {
        let p = &org.admin_p;
        let ev = self
            .db
            .create_event(
                p,
                &starling_control::NewEvent {
                    channel_id: ch.to_owned(),
                    title: "Show".into(),
                    artwork_url: None,
                    scheduled_start: T0 + 3_600_000,
                    scheduled_end: T0 + 7_200_000,
                    preshow_lead_secs: None,
                },
                T0,
            )
            .await
            .unwrap();
        let email = format!("{}@{}.example", unique("u"), unique("o"));
        let user = self
            .db
            .create_user(p, &p.org_id, &email, PW, Role::Viewer, T0)
            .await
            .unwrap();
        (ev.id, user.id)
    }

    async fn channel_names(&self, token: &str) -> Vec<Value> {
        let (s, v) = self
            .call(
                Method::GET,
                "/api/v1/channels?limit=1000",
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        v["items"].as_array().unwrap().clone()
    }
}

fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    let obj = v["error"].as_object().unwrap();
    assert!(
        obj.keys()
            .all(|k| ["code", "message", "field"].contains(&k.as_str())),
        "{v}"
    );
}

/// True if `s` holds 64 consecutive hex digits (what a stored SHA-256 looks like).
fn has_hash_like(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 64 {
            return true;
        }
    }
    false
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fx = super::Fx::sqlite().await;
                    super::$name(&fx).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(fx) = super::Fx::postgres().await else { return };
                    super::$name(&fx).await;
                    fx.db.close().await;
                }
            )*
        }
    };
}

suite!(
    login_logout_me,
    login_throttling_answers_429_with_retry_after,
    api_tokens,
    authorization_matrix,
    bad_input_is_400_and_changes_nothing,
    secrets_only_in_the_creating_response,
    channels_crud_and_pagination,
    unknown_routes_and_methods_have_the_error_shape,
    openapi_documents_every_route_and_matches_responses,
    events_users_and_the_prefetch_document,
);

async fn login_logout_me(fx: &Fx) {
    let login = |email: &str, pw: &str| {
        serde_json::to_vec(&json!({"email": email, "password": pw})).unwrap()
    };
    // Wrong password and unknown account: the same generic 401.
    for (email, pw) in [
        ("admin@orga.example", "wrong password"),
        ("nobody@orga.example", PW),
    ] {
        let (s, _, b) = fx
            .raw(
                Method::POST,
                "/api/v1/login",
                None,
                Some("application/json"),
                login(email, pw),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_error_shape(&serde_json::from_slice(&b).unwrap(), "unauthenticated");
    }
    let (s, h, b) = fx
        .raw(
            Method::POST,
            "/api/v1/login",
            None,
            Some("application/json"),
            login("admin@orga.example", PW),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let me: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["org_id"], fx.a.admin_p.org_id);
    let body = String::from_utf8(b).unwrap();
    assert!(!body.contains(PW) && !has_hash_like(&body), "{body}");
    let set_cookie = h.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("starling_session=ss_"), "{cookie}");

    let with_cookie = [(header::COOKIE, cookie.as_str())];
    let (s, _, b) = fx
        .raw(Method::GET, "/api/v1/me", None, None, vec![], &with_cookie)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap(), me);

    // Anonymous, a garbage bearer, a garbage cookie: 401.
    let (s, v) = fx.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v, "unauthenticated");
    let (s, _) = fx
        .call(Method::GET, "/api/v1/me", Some("st_nope"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = fx
        .raw(
            Method::GET,
            "/api/v1/me",
            None,
            None,
            vec![],
            &[(header::COOKIE, "starling_session=ss_nope")],
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, h, _) = fx
        .raw(
            Method::POST,
            "/api/v1/logout",
            None,
            None,
            vec![],
            &with_cookie,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(h
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (s, _, _) = fx
        .raw(Method::GET, "/api/v1/me", None, None, vec![], &with_cookie)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session is revoked");
}

async fn login_throttling_answers_429_with_retry_after(fx: &Fx) {
    let bad = serde_json::to_vec(&json!({"email": "bc@orgb.example", "password": "wrong guess"}))
        .unwrap();
    // Default policy: 5 failures lock the account.
    for _ in 0..5 {
        let (s, _, _) = fx
            .raw(
                Method::POST,
                "/api/v1/login",
                None,
                Some("application/json"),
                bad.clone(),
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let good = serde_json::to_vec(&json!({"email": "bc@orgb.example", "password": PW})).unwrap();
    let (s, h, b) = fx
        .raw(
            Method::POST,
            "/api/v1/login",
            None,
            Some("application/json"),
            good,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = h
        .get(header::RETRY_AFTER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert_error_shape(&serde_json::from_slice(&b).unwrap(), "throttled");
    assert!(h.get(header::SET_COOKIE).is_none());
}

async fn api_tokens(fx: &Fx) {
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&fx.a.bc),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let secret = v["secret"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(v["prefix"].as_str().unwrap()));
    let (s, me) = fx
        .call(Method::GET, "/api/v1/me", Some(&secret), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["role"], "broadcaster");

    let (s, list) = fx
        .call(Method::GET, "/api/v1/tokens", Some(&secret), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&secret));

    // Another org's user cannot see or revoke it.
    let (s, v) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&fx.b.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    // A viewer of the same org may not revoke someone else's token.
    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&fx.a.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = fx
        .call(Method::GET, "/api/v1/me", Some(&secret), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Validation names the field.
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&fx.a.bc),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "name");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    Bc,
    Viewer,
    Anon,
}

async fn authorization_matrix(fx: &Fx) {
    // (method, path template, body, roles allowed in their own org, success status).
    // `{ch}`, `{dev}`, `{key}` are fresh resources of the target organisation.
    // `{ev}` and `{usr}`: a fresh event on `{ch}` and a fresh viewer of the target org.
    type Row = (
        Method,
        &'static str,
        Option<Value>,
        &'static [Who],
        StatusCode,
    );
    const MANAGE: &[Who] = &[Who::Admin, Who::Bc];
    let rows: Vec<Row> = vec![
        (
            Method::GET,
            "/api/v1/channels/{ch}",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/api/v1/channels/{ch}",
            Some(json!({"title": "New title"})),
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/api/v1/channels/{ch}",
            None,
            MANAGE,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "/api/v1/channels/{ch}/playback-tokens",
            Some(json!({"ttl_secs": 60})),
            &[Who::Admin, Who::Bc, Who::Viewer],
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/devices/{dev}",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/api/v1/devices/{dev}",
            None,
            MANAGE,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::GET,
            "/api/v1/devices/{dev}/keys",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/devices/{dev}/keys",
            Some(json!({})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/api/v1/keys/{key}/rotate",
            None,
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::DELETE,
            "/api/v1/keys/{key}",
            None,
            MANAGE,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "/api/v1/devices",
            Some(json!({"name": "cam", "channel_id": "{ch}"})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/api/v1/devices/{dev}/keys",
            Some(json!({"channel_id": "{ch}"})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/events/{ev}",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/api/v1/events/{ev}",
            Some(json!({"title": "Renamed"})),
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/events/{ev}/cancel",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/api/v1/events/{ev}",
            None,
            MANAGE,
            StatusCode::NO_CONTENT,
        ),
        (
            Method::POST,
            "/api/v1/events",
            Some(json!({"channel_id": "{ch}", "title": "Show",
                "scheduled_start": T0 + 3_600_000, "scheduled_end": T0 + 7_200_000})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/users/{usr}",
            None,
            &[Who::Admin],
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/api/v1/users/{usr}",
            Some(json!({"disabled": true})),
            &[Who::Admin],
            StatusCode::OK,
        ),
    ];
    // Collection endpoints (no target org).
    let collections: Vec<Row> = vec![
        (
            Method::GET,
            "/api/v1/channels",
            None,
            MANAGE,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/channels",
            Some(json!({"name": "{new}"})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (Method::GET, "/api/v1/devices", None, MANAGE, StatusCode::OK),
        (
            Method::POST,
            "/api/v1/devices",
            Some(json!({"name": "cam"})),
            MANAGE,
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/me",
            None,
            &[Who::Admin, Who::Bc, Who::Viewer],
            StatusCode::OK,
        ),
        (Method::GET, "/api/v1/events", None, MANAGE, StatusCode::OK),
        (
            Method::GET,
            "/api/v1/users",
            None,
            &[Who::Admin],
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(
                json!({"email": "{new}@orga.example", "password": "long enough pw", "role": "viewer"}),
            ),
            &[Who::Admin],
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/orgs",
            None,
            &[Who::Admin, Who::Bc, Who::Viewer],
            StatusCode::OK,
        ),
        // Only system admins create organisations.
        (
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"name": "{new}"})),
            &[],
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/tokens",
            None,
            &[Who::Admin, Who::Bc, Who::Viewer],
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "t"})),
            &[Who::Admin, Who::Bc, Who::Viewer],
            StatusCode::CREATED,
        ),
    ];
    let token = |who: Who| match who {
        Who::Admin => Some(fx.a.admin.as_str()),
        Who::Bc => Some(fx.a.bc.as_str()),
        Who::Viewer => Some(fx.a.viewer.as_str()),
        Who::Anon => None,
    };
    let fill = |s: &str, ch: &str, dev: &str, key: &str| {
        s.replace("{ch}", ch)
            .replace("{dev}", dev)
            .replace("{key}", key)
            .replace("{new}", &unique("n"))
    };
    let mut checked = 0;
    for (method, path, body, allowed, ok) in &rows {
        for who in [Who::Admin, Who::Bc, Who::Viewer, Who::Anon] {
            for other_org in [false, true] {
                let target = if other_org { &fx.b } else { &fx.a };
                let (ch, dev, key) = fx.resources(target).await;
                let (ev, usr) = fx.event_and_user(target, &ch).await;
                let before = fx.channel_names(&target.admin).await;
                let more = |s: String| s.replace("{ev}", &ev).replace("{usr}", &usr);
                let p = more(fill(path, &ch, &dev, &key));
                let b = body.as_ref().map(|b| {
                    serde_json::from_str(&more(fill(&b.to_string(), &ch, &dev, &key))).unwrap()
                });
                let (s, v) = fx.call(method.clone(), &p, token(who), b).await;
                // When the foreign id is only in the body, the role is checked first: a 403
                // there says nothing about the other organisation.
                let role_first = !path.contains('{') && !allowed.contains(&who);
                let want = if who == Who::Anon {
                    StatusCode::UNAUTHORIZED
                } else if role_first {
                    StatusCode::FORBIDDEN
                } else if other_org {
                    StatusCode::NOT_FOUND
                } else if allowed.contains(&who) {
                    *ok
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(
                    s, want,
                    "{who:?} {method} {path} other_org={other_org}: {v}"
                );
                if s.is_client_error() {
                    let code = match s {
                        StatusCode::UNAUTHORIZED => "unauthenticated",
                        StatusCode::NOT_FOUND => "not_found",
                        _ => "forbidden",
                    };
                    assert_error_shape(&v, code);
                    assert!(!v.to_string().contains(&fx.b.admin_p.org_id), "{v}");
                    assert_eq!(
                        fx.channel_names(&target.admin).await,
                        before,
                        "a refusal changed nothing"
                    );
                }
                checked += 1;
            }
        }
    }
    for (method, path, body, allowed, ok) in &collections {
        for who in [Who::Admin, Who::Bc, Who::Viewer, Who::Anon] {
            let b = body
                .as_ref()
                .map(|b| serde_json::from_str(&fill(&b.to_string(), "", "", "")).unwrap());
            let (s, v) = fx.call(method.clone(), path, token(who), b).await;
            let want = if who == Who::Anon {
                StatusCode::UNAUTHORIZED
            } else if allowed.contains(&who) {
                *ok
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(s, want, "{who:?} {method} {path}: {v}");
            checked += 1;
        }
    }
    assert_eq!(checked, rows.len() * 8 + collections.len() * 4);

    // A broadcaster of A reaching B's channel by id never sees its data, and listings
    // hold only the caller's organisation.
    let (b_ch, _, _) = fx.resources(&fx.b).await;
    for method in [Method::GET, Method::DELETE] {
        let (s, v) = fx
            .call(
                method,
                &format!("/api/v1/channels/{b_ch}"),
                Some(&fx.a.bc),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(!v.to_string().contains(&fx.b.admin_p.org_id), "{v}");
    }
    for item in fx.channel_names(&fx.a.bc).await {
        assert_eq!(item["org_id"], fx.a.admin_p.org_id.as_str());
    }
    let (s, v) = fx
        .call(Method::GET, "/api/v1/devices", Some(&fx.a.bc), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for item in v["items"].as_array().unwrap() {
        assert_eq!(item["org_id"], fx.a.admin_p.org_id.as_str());
    }
}

async fn bad_input_is_400_and_changes_nothing(fx: &Fx) {
    let (ch, dev, _) = fx.resources(&fx.a).await;
    let tok = fx.a.bc.as_str();
    let before = fx.channel_names(tok).await;
    let (_, dev_before) = fx
        .call(Method::GET, "/api/v1/devices", Some(tok), None)
        .await;
    let big = "a".repeat(1_000_000);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "../etc"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "a\u{0}b"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": big}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "ok", "title": "x\u{0}"}),
            "title",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "ok", "visibility": "secret"}),
            "visibility",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "ok", "dvr_window_secs": -1}),
            "dvr_window_secs",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"title": "a\u{0}b"}),
            "title",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"ladder": "../x"}),
            "ladder",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"reframe_subject": "loudest"}),
            "reframe_subject",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"highlight_sensitivity": 0.0}),
            "highlight_sensitivity",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": "ok", "highlight_sensitivity": 11}),
            "highlight_sensitivity",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"title": big}),
            "title",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json!({"name": "cam\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json!({"name": big}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json!({"name": "cam", "kind": "toaster"}),
            "kind",
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{ch}/playback-tokens"),
            json!({"ttl_secs": 0}),
            "ttl_secs",
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{ch}/playback-tokens"),
            json!({"ttl_secs": 60, "viewer_id": "../x"}),
            "viewer_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let (s, v) = fx.call(method.clone(), &path, Some(tok), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path}: {v}");
        assert_error_shape(&v, "validation");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    // Bodies that are not the right JSON.
    let raw_cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "application/json",
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            b"\xff\xfe\xfd".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            b"{\"name\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            b"{\"name\": 5}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            b"{\"name\": \"x\", \"evil\": 1}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "application/json",
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "text/plain",
            b"{\"name\": \"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "application/json",
            format!("{{\"name\": \"{}\"}}", "a".repeat(crate::BODY_LIMIT)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (ct, body, want, code) in raw_cases {
        for path in ["/api/v1/channels", "/api/v1/devices"] {
            let (s, _, b) = fx
                .raw(Method::POST, path, Some(tok), Some(ct), body.clone(), &[])
                .await;
            assert_eq!(s, want, "{path} {ct}");
            assert_error_shape(&serde_json::from_slice(&b).unwrap(), code);
        }
    }
    let (s, _, _) = fx
        .raw(
            Method::POST,
            "/api/v1/channels",
            Some(tok),
            None,
            b"{}".to_vec(),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content type");
    // Query and path oddities.
    for (q, field) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (s, v) = fx
            .call(
                Method::GET,
                &format!("/api/v1/channels?{q}"),
                Some(tok),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    for path in [
        "/api/v1/channels/..%2F..%2Fetc",
        "/api/v1/channels/%00",
        "/api/v1/devices/%FF%FE",
    ] {
        let (s, v) = fx.call(Method::GET, path, Some(tok), None).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
            "{path}: {s} {v}"
        );
        assert!(v["error"]["code"].is_string());
    }
    assert_eq!(fx.channel_names(tok).await, before, "channels unchanged");
    let (_, dev_after) = fx
        .call(Method::GET, "/api/v1/devices", Some(tok), None)
        .await;
    assert_eq!(dev_after, dev_before, "devices unchanged");
    let (_, d) = fx
        .call(
            Method::GET,
            &format!("/api/v1/devices/{dev}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(d["name"], "enc");
}

async fn secrets_only_in_the_creating_response(fx: &Fx) {
    let tok = fx.a.bc.as_str();
    let (ch, dev, _) = fx.resources(&fx.a).await;
    let (s, created) = fx
        .call(
            Method::POST,
            &format!("/api/v1/devices/{dev}/keys"),
            Some(tok),
            Some(json!({"channel_id": ch})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_") && secret.len() > 40);
    let key_id = created["id"].as_str().unwrap().to_owned();
    // The key works for ingest.
    fx.db
        .authorize_publish(&secret, "192.0.2.1", T0)
        .await
        .unwrap();

    let (s, rotated) = fx
        .call(
            Method::POST,
            &format!("/api/v1/keys/{key_id}/rotate"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let secret2 = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret, secret2);
    assert!(
        fx.db
            .authorize_publish(&secret, "192.0.2.1", T0)
            .await
            .is_err(),
        "old key revoked"
    );

    let (s, tcreated) = fx
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(tok),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let tsecret = tcreated["secret"].as_str().unwrap().to_owned();

    let listings = [
        format!("/api/v1/devices/{dev}/keys"),
        format!("/api/v1/devices/{dev}"),
        "/api/v1/devices".to_owned(),
        "/api/v1/tokens".to_owned(),
        "/api/v1/channels".to_owned(),
        format!("/api/v1/channels/{ch}"),
        "/api/v1/me".to_owned(),
    ];
    for path in listings {
        let (s, v) = fx.call(Method::GET, &path, Some(tok), None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        let text = v.to_string();
        for needle in [&secret, &secret2, &tsecret, &fx.a.bc] {
            assert!(!text.contains(needle.as_str()), "{path} leaks a secret");
        }
        assert!(
            !text.contains("secret") && !text.contains("hash"),
            "{path}: {text}"
        );
        assert!(!has_hash_like(&text), "{path}: {text}");
    }
    let (_, keys) = fx
        .call(
            Method::GET,
            &format!("/api/v1/devices/{dev}/keys"),
            Some(tok),
            None,
        )
        .await;
    let keys = keys["items"].as_array().unwrap();
    assert!(keys
        .iter()
        .any(|k| k["id"] == key_id.as_str() && k["revoked_at"].is_i64()));

    // Revoke the new key and the device.
    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{}", rotated["id"].as_str().unwrap()),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(fx
        .db
        .authorize_publish(&secret2, "192.0.2.1", T0)
        .await
        .is_err());
    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/devices/{dev}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, d) = fx
        .call(
            Method::GET,
            &format!("/api/v1/devices/{dev}"),
            Some(tok),
            None,
        )
        .await;
    assert!(d["revoked_at"].is_i64(), "{d}");
    let (s, v) = fx
        .call(
            Method::POST,
            &format!("/api/v1/devices/{dev}/keys"),
            Some(tok),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

async fn channels_crud_and_pagination(fx: &Fx) {
    let tok = fx.a.admin.as_str();
    for n in ["c-a", "c-b", "c-c"] {
        let (s, v) = fx
            .call(
                Method::POST,
                "/api/v1/channels",
                Some(tok),
                Some(json!({"name": n, "visibility": "private", "latency_mode": "low"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["visibility"], "private");
        assert_eq!(v["title"], n);
    }
    // Reframing and highlights: off by default, set on create, changed, read back.
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(tok),
            Some(json!({"name": "c-rf", "reframe": true, "reframe_subject": "central", "highlight_sensitivity": 2.5})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            &v["reframe"],
            &v["reframe_subject"],
            &v["highlights"],
            &v["highlight_sensitivity"]
        ),
        (&json!(true), &json!("central"), &json!(false), &json!(2.5)),
        "{v}"
    );
    let rf = v["id"].as_str().unwrap().to_owned();
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{rf}"),
            Some(tok),
            Some(json!({"reframe": false, "highlights": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = fx
        .call(
            Method::GET,
            &format!("/api/v1/channels/{rf}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(
        (
            &v["reframe"],
            &v["reframe_subject"],
            &v["highlights"],
            &v["highlight_sensitivity"]
        ),
        (&json!(false), &json!("central"), &json!(true), &json!(2.5)),
        "{v}"
    );
    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/channels/{rf}"),
            Some(tok),
            None,
        )
        .await;
    assert!(s.is_success());
    // Real time: accepted, read back as itself, changed like any mode; a mode it does
    // not know is a 400 naming the field and the modes it does.
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(tok),
            Some(json!({"name": "c-rt", "latency_mode": "realtime"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["latency_mode"], "realtime");
    let rt = v["id"].as_str().unwrap().to_owned();
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{rt}"),
            Some(tok),
            Some(json!({"latency_mode": "standard"})),
        )
        .await;
    assert_eq!(
        (s, v["latency_mode"].as_str()),
        (StatusCode::OK, Some("standard")),
        "{v}"
    );
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{rt}"),
            Some(tok),
            Some(json!({"latency_mode": "webrtc"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], "latency_mode", "{v}");
    assert!(v.to_string().contains("realtime"), "{v}");
    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/channels/{rt}"),
            Some(tok),
            None,
        )
        .await;
    assert!(s.is_success());
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(tok),
            Some(json!({"name": "c-a"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error_shape(&v, "conflict");
    assert_eq!(v["error"]["field"], "name");

    let (s, v) = fx
        .call(
            Method::GET,
            "/api/v1/channels?limit=2&offset=1",
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["limit"], 2);
    assert_eq!(v["offset"], 1);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c-b", "c-c"]);

    let id = v["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(tok),
            Some(json!({"title": "B!", "recording": true, "dvr_window_secs": 3600})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["title"].as_str(),
            v["recording"].as_bool(),
            v["dvr_window_secs"].as_i64()
        ),
        (Some("B!"), Some(true), Some(3600))
    );
    let (_, got) = fx
        .call(
            Method::GET,
            &format!("/api/v1/channels/{id}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(got, v);

    let (s, t) = fx
        .call(
            Method::POST,
            &format!("/api/v1/channels/{id}/playback-tokens"),
            Some(tok),
            Some(json!({"ttl_secs": 60, "viewer_id": "v-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(t["expires_at"], T0 + 60_000);
    let claims = fx
        .db
        .playback_signer()
        .await
        .unwrap()
        .verify(t["token"].as_str().unwrap(), "c-b", T0)
        .unwrap();
    assert_eq!(claims.viewer_id.as_deref(), Some("v-1"));

    let (s, _) = fx
        .call(
            Method::DELETE,
            &format!("/api/v1/channels/{id}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = fx
        .call(
            Method::GET,
            &format!("/api/v1/channels/{id}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn unknown_routes_and_methods_have_the_error_shape(fx: &Fx) {
    let (s, v) = fx
        .call(Method::GET, "/api/v1/nope", Some(&fx.a.admin), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    let (s, _, b) = fx
        .raw(
            Method::PUT,
            "/api/v1/channels",
            Some(&fx.a.admin),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&serde_json::from_slice(&b).unwrap(), "method_not_allowed");
}

// ---- OpenAPI ----

/// A minimal JSON Schema check for the keywords the document uses.
fn check_schema(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: dangling $ref {r}"));
        }
        return check_schema(doc, target, v, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check_schema(doc, s, v, at)?;
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type")),
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap_or_default();
            if !obj.contains_key(k) {
                return Err(format!("{at}: missing {k}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check_schema(doc, ps, val, &format!("{at}.{k}"))?,
                None if schema["additionalProperties"] == json!(false) => {
                    return Err(format!("{at}: undocumented property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check_schema(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: StatusCode) -> &'a Value {
    let s = &doc["paths"][path][method]["responses"][status.as_str()]["content"]
        ["application/json"]["schema"];
    assert!(!s.is_null(), "{method} {path} {status} is not documented");
    s
}

async fn openapi_documents_every_route_and_matches_responses(fx: &Fx) {
    let (s, _, b) = fx
        .raw(Method::GET, "/api/openapi.json", None, None, vec![], &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // The router's table (plus the node's own `/api` routes, which the binary checks
    // against what it mounts) and the document's operations are the same set.
    let served: std::collections::BTreeSet<(String, String)> = crate::routes()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .chain(crate::NODE_ROUTES.iter().cloned())
        .map(|(m, p)| (m.as_str().to_ascii_lowercase(), p.to_owned()))
        .collect();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (k, op) in item.as_object().unwrap() {
            if k == "parameters" {
                continue;
            }
            assert!(op["responses"].is_object(), "{k} {path}");
            if path.contains("{id}") {
                let params = item["parameters"].as_array().unwrap();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "id" && p["in"] == "path"),
                    "{path}"
                );
            }
            documented.insert((k.clone(), path.clone()));
        }
    }
    assert_eq!(served, documented);
    // Every $ref resolves, every schema referenced by a response passes our checker's syntax.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {name}"
        );
    }

    // Happy paths and errors against their documented schemas.
    let tok = fx.a.bc.as_str();
    let (ch, dev, key) = fx.resources(&fx.a).await;
    let calls: Vec<(Method, &str, String, Option<Value>, StatusCode)> = vec![
        (
            Method::GET,
            "/api/v1/me",
            "/api/v1/me".into(),
            None,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            Some(json!({"name": "x", "expires_at": T0 + 1000})),
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/tokens",
            "/api/v1/tokens".into(),
            None,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/channels",
            "/api/v1/channels".into(),
            Some(json!({"name": "schema-ch"})),
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/channels",
            "/api/v1/channels".into(),
            None,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/channels/{id}",
            format!("/api/v1/channels/{ch}"),
            None,
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            "/api/v1/channels/{id}",
            format!("/api/v1/channels/{ch}"),
            Some(json!({"ladder": "source,720p"})),
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/channels/{id}/playback-tokens",
            format!("/api/v1/channels/{ch}/playback-tokens"),
            Some(json!({"ttl_secs": 5})),
            StatusCode::CREATED,
        ),
        (
            Method::POST,
            "/api/v1/devices",
            "/api/v1/devices".into(),
            Some(json!({"name": "phone", "kind": "phone"})),
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/devices",
            "/api/v1/devices".into(),
            None,
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/devices/{id}",
            format!("/api/v1/devices/{dev}"),
            None,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/devices/{id}/keys",
            format!("/api/v1/devices/{dev}/keys"),
            Some(json!({})),
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/devices/{id}/keys",
            format!("/api/v1/devices/{dev}/keys"),
            None,
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/keys/{id}/rotate",
            format!("/api/v1/keys/{key}/rotate"),
            None,
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            "/api/v1/channels/{id}",
            "/api/v1/channels/ch_missing".into(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/api/v1/channels",
            "/api/v1/channels".into(),
            Some(json!({"name": "../x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/channels",
            "/api/v1/channels".into(),
            None,
            StatusCode::OK,
        ),
    ];
    for (method, template, path, body, want) in calls {
        let (s, v) = fx.call(method.clone(), &path, Some(tok), body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        let schema = response_schema(&doc, template, &method.as_str().to_ascii_lowercase(), s);
        if let Err(e) = check_schema(&doc, schema, &v, "$") {
            panic!("{method} {template}: {e}\n{v}");
        }
        // The checker is not vacuous: an extra property is a breach.
        if let Some(mut obj) = v.as_object().cloned() {
            obj.insert("surprise".into(), json!(1));
            assert!(
                check_schema(&doc, schema, &Value::Object(obj), "$").is_err(),
                "{template}"
            );
        }
    }
    let (s, v) = fx.call(Method::GET, "/api/v1/me", None, None).await;
    check_schema(&doc, response_schema(&doc, "/api/v1/me", "get", s), &v, "$").unwrap();
}

async fn events_users_and_the_prefetch_document(fx: &Fx) {
    let doc = crate::openapi::document();
    let check = |template: &str, method: &str, s: StatusCode, v: &Value| {
        let schema = response_schema(&doc, template, method, s);
        if let Err(e) = check_schema(&doc, schema, v, "$") {
            panic!("{method} {template}: {e}\n{v}");
        }
    };
    let bc = fx.a.bc.as_str();
    let (s, pub_ch) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(bc),
            Some(json!({"name": unique("pub")})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, priv_ch) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(bc),
            Some(json!({"name": unique("priv"), "visibility": "private"})),
        )
        .await;
    let new_event = |ch: &Value| {
        json!({"channel_id": ch["id"], "title": "Cup final", "artwork_url": "https://cdn.example/a.jpg",
            "scheduled_start": T0 + 3_600_000, "scheduled_end": T0 + 7_200_000})
    };
    let (s, ev) = fx
        .call(
            Method::POST,
            "/api/v1/events",
            Some(bc),
            Some(new_event(&pub_ch)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ev}");
    check("/api/v1/events", "post", s, &ev);
    assert_eq!(ev["state"], "scheduled");
    assert_eq!(ev["preshow_lead_secs"], 900);
    let id = ev["id"].as_str().unwrap().to_owned();
    let (s, list) = fx
        .call(Method::GET, "/api/v1/events?limit=5", Some(bc), None)
        .await;
    check("/api/v1/events", "get", s, &list);
    assert_eq!(list["items"][0]["id"], id.as_str());

    // Prefetch of a public channel's event: no credentials, CDN-cacheable, ETag, 304.
    for path in [
        format!("/api/v1/events/{id}/prefetch"),
        format!("/api/events/{id}/prefetch"),
    ] {
        let (s, h, b) = fx.raw(Method::GET, &path, None, None, vec![], &[]).await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        check("/api/v1/events/{id}/prefetch", "get", s, &v);
        assert_eq!(v["event"]["title"], "Cup final");
        assert_eq!(
            v["playback"]["hls"],
            format!("/live/{}/index.m3u8", pub_ch["name"].as_str().unwrap())
        );
        assert_eq!(v["live_state"]["url"], "/api/v1/live-state");
        assert_eq!(v["playback"]["token_required"], false);
        assert!(
            !v.to_string().contains(&fx.a.admin_p.org_id),
            "no tenant ids: {v}"
        );
        let cc = h[header::CACHE_CONTROL].to_str().unwrap();
        assert!(cc.starts_with("public, max-age=300"), "{cc}");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let (s, _, b) = fx
            .raw(
                Method::GET,
                &path,
                None,
                None,
                vec![],
                &[(header::IF_NONE_MATCH, &etag)],
            )
            .await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        assert!(b.is_empty());
    }
    // An edit changes the ETag (the revision), so caches refetch.
    let (_, h1, _) = fx
        .raw(
            Method::GET,
            &format!("/api/v1/events/{id}/prefetch"),
            None,
            None,
            vec![],
            &[],
        )
        .await;
    let (s, ev2) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/events/{id}"),
            Some(bc),
            Some(json!({"artwork_url": null, "scheduled_start": T0 + 4_000_000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ev2}");
    check("/api/v1/events/{id}", "patch", s, &ev2);
    assert_eq!(ev2["artwork_url"], Value::Null);
    assert_eq!(ev2["revision"], 2);
    let (_, h2, _) = fx
        .raw(
            Method::GET,
            &format!("/api/v1/events/{id}/prefetch"),
            None,
            None,
            vec![],
            &[],
        )
        .await;
    assert_ne!(h1[header::ETAG], h2[header::ETAG]);

    // A private channel's event: hidden from strangers, open to its org's viewers and to
    // holders of a playback token for that channel; cached by the browser only.
    let (_, pev) = fx
        .call(
            Method::POST,
            "/api/v1/events",
            Some(bc),
            Some(new_event(&priv_ch)),
        )
        .await;
    let ppath = format!("/api/v1/events/{}/prefetch", pev["id"].as_str().unwrap());
    let (s, v) = fx.call(Method::GET, &ppath, None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_error_shape(&v, "not_found");
    assert_eq!(
        fx.call(Method::GET, &ppath, Some(&fx.b.viewer), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fx.call(Method::GET, &ppath, Some("st_bogus"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, h, b) = fx
        .raw(Method::GET, &ppath, Some(&fx.a.viewer), None, vec![], &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("private"));
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["playback"]["token_required"], true);
    // A viewer may get a playback token (watch-scoped), and the token opens the prefetch.
    let (s, tok) = fx
        .call(
            Method::POST,
            &format!(
                "/api/v1/channels/{}/playback-tokens",
                priv_ch["id"].as_str().unwrap()
            ),
            Some(&fx.a.viewer),
            Some(json!({"ttl_secs": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let t = tok["token"].as_str().unwrap();
    assert_eq!(
        fx.call(Method::GET, &format!("{ppath}?token={t}"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    // A token for another channel does not.
    let (_, other) = fx
        .call(
            Method::POST,
            &format!(
                "/api/v1/channels/{}/playback-tokens",
                pub_ch["id"].as_str().unwrap()
            ),
            Some(bc),
            Some(json!({"ttl_secs": 60})),
        )
        .await;
    let t2 = other["token"].as_str().unwrap();
    assert_eq!(
        fx.call(Method::GET, &format!("{ppath}?token={t2}"), None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // `null` only where the document says nullable (artwork_url): elsewhere a 400.
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/events/{id}"),
            Some(bc),
            Some(json!({"title": null})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Bad schedules: 400 naming the field; nothing created.
    for (patch, field) in [
        (json!({"scheduled_end": T0}), "scheduled_end"),
        (json!({"artwork_url": "ftp://x/y"}), "artwork_url"),
        (json!({"title": "a\u{0}b"}), "title"),
        (
            json!({"preshow_lead_secs": 100_000_000}),
            "preshow_lead_secs",
        ),
    ] {
        let mut b = new_event(&pub_ch);
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (s, v) = fx
            .call(Method::POST, "/api/v1/events", Some(bc), Some(b))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (_, list2) = fx
        .call(Method::GET, "/api/v1/events?limit=100", Some(bc), None)
        .await;
    assert_eq!(list2["items"].as_array().unwrap().len(), 2);

    // Cancel: then no more edits (409-free 400 naming `state`).
    let (s, c) = fx
        .call(
            Method::POST,
            &format!("/api/v1/events/{id}/cancel"),
            Some(bc),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    check("/api/v1/events/{id}/cancel", "post", s, &c);
    assert_eq!(c["state"], "cancelled");
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/events/{id}"),
            Some(bc),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "state");

    // Users and orgs: an admin manages its org; never another's; nobody disables itself.
    let admin = fx.a.admin.as_str();
    let (s, u) = fx
        .call(Method::POST, "/api/v1/users", Some(admin),
            Some(json!({"email": "new.person@orga.example", "password": "long enough pw", "role": "broadcaster"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    check("/api/v1/users", "post", s, &u);
    assert!(!u.to_string().contains("long enough pw"));
    let (s, users) = fx
        .call(
            Method::GET,
            "/api/v1/users?limit=2&offset=1",
            Some(admin),
            None,
        )
        .await;
    check("/api/v1/users", "get", s, &users);
    assert_eq!(users["items"].as_array().unwrap().len(), 2);
    assert!(
        !users.to_string().contains("argon2"),
        "no hashes in listings"
    );
    let b_org = fx.b.admin_p.org_id.as_str();
    let (s, _) = fx
        .call(
            Method::GET,
            &format!("/api/v1/users?org_id={b_org}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = fx
        .call(Method::GET, "/api/v1/users?org_id=../x", Some(admin), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", fx.a.admin_p.user_id),
            Some(admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/users",
            Some(admin),
            Some(json!({"email": "x@orga.example", "password": "long enough pw", "role": "root"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "role");
    let (s, orgs) = fx
        .call(Method::GET, "/api/v1/orgs", Some(admin), None)
        .await;
    check("/api/v1/orgs", "get", s, &orgs);
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1);
}

// ---- found by schemathesis (scripts/schemathesis) ----

/// A field the document does not mark nullable refuses `null` (serde's `Option` took it
/// as absent); `expires_at`, which is nullable, still takes it.
#[tokio::test]
async fn null_is_refused_where_the_document_does_not_allow_it() {
    let fx = Fx::sqlite().await;
    let tok = fx.a.admin.as_str();
    let (ch, dev, _) = fx.resources(&fx.a).await;
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": unique("n"), "visibility": null}),
            "visibility",
        ),
        (
            Method::POST,
            "/api/v1/channels".into(),
            json!({"name": unique("n"), "dvr_window_secs": null}),
            "dvr_window_secs",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"title": null}),
            "title",
        ),
        (
            Method::PATCH,
            format!("/api/v1/channels/{ch}"),
            json!({"recording": null}),
            "recording",
        ),
        (
            Method::POST,
            format!("/api/v1/channels/{ch}/playback-tokens"),
            json!({"ttl_secs": 5, "viewer_id": null}),
            "viewer_id",
        ),
        (
            Method::POST,
            "/api/v1/devices".into(),
            json!({"name": "d", "kind": null}),
            "kind",
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{dev}/keys"),
            json!({"channel_id": null}),
            "channel_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let (s, v) = fx.call(method.clone(), &path, Some(tok), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {field}: {v}");
        assert_error_shape(&v, "invalid_body");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field) && msg.contains("null"), "{msg}");
    }
    let (s, v) = fx
        .call(
            Method::GET,
            &format!("/api/v1/channels/{ch}"),
            Some(tok),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["title"].is_string() && v["recording"].is_boolean(), "{v}");
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(tok),
            Some(json!({"name": "n", "expires_at": null})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["expires_at"].is_null());
}

/// JSON Schema's `integer` includes `5.0`; the handlers took only `5`.
#[tokio::test]
async fn integral_floats_are_integers() {
    let fx = Fx::sqlite().await;
    let tok = fx.a.admin.as_str();
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/channels",
            Some(tok),
            Some(json!({"name": unique("f"), "dvr_window_secs": 5271.0})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["dvr_window_secs"], 5271);
    let ch = v["id"].as_str().unwrap().to_owned();
    let (s, v) = fx
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{ch}"),
            Some(tok),
            Some(json!({"dvr_window_secs": 6.5e4})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["dvr_window_secs"], 65000);
    let path = format!("/api/v1/channels/{ch}/playback-tokens");
    let (s, v) = fx
        .call(
            Method::POST,
            &path,
            Some(tok),
            Some(json!({"ttl_secs": 86400.0})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["expires_at"], T0 + 86_400_000);
    let (s, v) = fx
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(tok),
            Some(json!({"name": "f", "expires_at": (T0 + 1000) as f64})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["expires_at"], T0 + 1000);
    // Still refused: a fraction, a number past i64, a string.
    for bad in [json!(60.5), json!(1e30), json!("60")] {
        let (s, v) = fx
            .call(
                Method::POST,
                &path,
                Some(tok),
                Some(json!({"ttl_secs": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_error_shape(&v, "invalid_body");
    }
}

/// A plain-text error from a layer outside the API router (the server's path guard
/// answers "malformed path" before routing) gets the API's error shape under `/api/`,
/// keeping its text; other paths and 5xx details are left alone.
#[tokio::test]
async fn outer_plain_text_errors_under_api_get_the_error_shape() {
    use axum::response::IntoResponse as _;
    let plain = |status: StatusCode, text: &'static str| {
        move || async move {
            (
                status,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                text,
            )
                .into_response()
        }
    };
    let app: Router = Router::new()
        .route(
            "/api/v1/x",
            axum::routing::get(plain(StatusCode::BAD_REQUEST, "malformed path\n")),
        )
        .route(
            "/api/v1/boom",
            axum::routing::get(plain(StatusCode::BAD_GATEWAY, "db at 10.0.0.1 down")),
        )
        .route(
            "/live/x",
            axum::routing::get(plain(StatusCode::BAD_REQUEST, "malformed path\n")),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn(crate::error::api_error_shape));
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            (parts.status, parts.headers, bytes.to_vec())
        }
    };
    let (s, h, b) = get("/api/v1/x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(&v, "bad_request");
    assert_eq!(v["error"]["message"], "malformed path");

    let (s, _, b) = get("/api/elsewhere").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&serde_json::from_slice(&b).unwrap(), "not_found");

    let (s, _, b) = get("/api/v1/boom").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error_shape(&v, "internal");
    assert_eq!(v["error"]["message"], "internal error");

    let (s, h, b) = get("/live/x").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(b, b"malformed path\n");
}

/// The document's links point at operations it has, with the parameters they take.
#[test]
fn openapi_links_resolve() {
    let doc = crate::openapi::document();
    let mut n = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                for (name, link) in resp["links"].as_object().into_iter().flatten() {
                    let r = link["operationRef"].as_str().unwrap();
                    let pointer = r.strip_prefix('#').unwrap();
                    let target = doc.pointer(pointer);
                    assert!(
                        target.is_some_and(|t| t["responses"].is_object()),
                        "{method} {path} {status} link {name}: {r} does not resolve"
                    );
                    let target_path = pointer.split('/').nth(2).unwrap().replace("~1", "/");
                    for p in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            target_path.contains(&format!("{{{p}}}")),
                            "{name}: {target_path} has no {p}"
                        );
                    }
                    n += 1;
                }
            }
        }
    }
    assert!(n >= 2, "links went missing");
}

/// The document's text pattern refuses what `validate::display_text` refuses for
/// control characters: C0, DEL and C1 (schemathesis sent U+0093, which the schema
/// allowed and the server refused).
#[test]
fn openapi_text_pattern_excludes_every_control_character() {
    let doc = crate::openapi::document();
    let name = &doc["components"]["schemas"]["NewDevice"]["properties"]["name"];
    let pattern = name["pattern"].as_str().unwrap();
    // The excluded ranges, as written in the pattern.
    let class = "\\u0000-\\u001f\\u007f-\\u009f";
    assert_eq!(pattern.matches(class).count(), 3, "{pattern}");
    for c in (0u32..0x110000).filter_map(char::from_u32) {
        let in_class = matches!(c as u32, 0..=0x1f | 0x7f..=0x9f);
        assert_eq!(in_class, c.is_control(), "{c:?}");
    }
    assert_eq!(
        doc["components"]["schemas"]["NewApiToken"]["properties"]["name"]["pattern"],
        pattern
    );
    assert_eq!(
        doc["components"]["schemas"]["ChannelPatch"]["properties"]["title"]["pattern"],
        pattern
    );
}

/// Integers the document allows fit the server's `i64` (schemathesis sent an offset
/// of 2e30, schema-valid without a `maximum`, refused by the server).
#[test]
fn openapi_unbounded_integers_are_bounded_by_i64() {
    fn walk(v: &Value, at: &str, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let is_int = match &m.get("type") {
                    Some(Value::String(t)) => t == "integer",
                    Some(Value::Array(a)) => a.iter().any(|t| t == "integer"),
                    _ => false,
                };
                // Request inputs only: responses come from the server's own i64s.
                let bounded = m.get("maximum").is_some_and(|x| x.as_i64().is_some())
                    && m.get("minimum").is_some_and(|x| x.as_i64().is_some());
                if is_int && !bounded {
                    bad.push(at.to_owned());
                }
                for (k, x) in m {
                    walk(x, &format!("{at}/{k}"), bad);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{at}/{i}"), bad);
                }
            }
            _ => {}
        }
    }
    let doc = crate::openapi::document();
    let mut bad = Vec::new();
    // Query parameters and request bodies' schemas.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                walk(&op["parameters"], &format!("{method} {path}"), &mut bad);
            }
        }
    }
    for name in [
        "Login",
        "NewApiToken",
        "NewChannel",
        "ChannelPatch",
        "PlaybackTokenRequest",
        "NewDevice",
        "NewStreamKey",
        "NewUser",
        "UserPatch",
        "NewOrg",
        "NewEvent",
        "EventPatch",
    ] {
        walk(&doc["components"]["schemas"][name], name, &mut bad);
    }
    assert!(bad.is_empty(), "integers without i64 bounds: {bad:?}");
}

// ---- webhooks ----

mod webhooks_suite {
    use super::*;
    use starling_control::WebhookEvent;

    suite!(
        webhooks_authorization_matrix,
        webhooks_secret_once_bad_input_and_schemas,
    );

    const HOOK_URL: &str = "http://hooks.example.org:9/hook";

    async fn hook_in(fx: &Fx, org: &OrgFx) -> String {
        let (hook, _) = fx
            .db
            .create_webhook(&org.admin_p, HOOK_URL, &["stream.started"], T0)
            .await
            .unwrap();
        hook.id
    }

    async fn webhooks_authorization_matrix(fx: &Fx) {
        let token = |who: Who| match who {
            Who::Admin => Some(fx.a.admin.as_str()),
            Who::Bc => Some(fx.a.bc.as_str()),
            Who::Viewer => Some(fx.a.viewer.as_str()),
            Who::Anon => None,
        };
        let rows = [
            (
                Method::DELETE,
                "/api/v1/webhooks/{wh}",
                StatusCode::NO_CONTENT,
            ),
            (
                Method::GET,
                "/api/v1/webhooks/{wh}/deliveries",
                StatusCode::OK,
            ),
        ];
        for (method, path, ok) in rows {
            for who in [Who::Admin, Who::Bc, Who::Viewer, Who::Anon] {
                for other_org in [false, true] {
                    let target = if other_org { &fx.b } else { &fx.a };
                    let wh = hook_in(fx, target).await;
                    let (s, v) = fx
                        .call(method.clone(), &path.replace("{wh}", &wh), token(who), None)
                        .await;
                    let want = match (who, other_org) {
                        (Who::Anon, _) => StatusCode::UNAUTHORIZED,
                        (_, true) => StatusCode::NOT_FOUND,
                        (Who::Admin, false) => ok,
                        _ => StatusCode::FORBIDDEN,
                    };
                    assert_eq!(
                        s, want,
                        "{who:?} {method} {path} other_org={other_org}: {v}"
                    );
                    if s.is_client_error() {
                        assert!(!v.to_string().contains(&fx.b.admin_p.org_id), "{v}");
                        // A refusal deleted nothing.
                        assert!(fx.db.get_webhook(&target.admin_p, &wh).await.is_ok());
                    }
                }
            }
        }
        let body = json!({"url": HOOK_URL, "events": ["stream.ended"]});
        for (method, ok, body) in [
            (Method::GET, StatusCode::OK, None),
            (Method::POST, StatusCode::CREATED, Some(body)),
        ] {
            for who in [Who::Admin, Who::Bc, Who::Viewer, Who::Anon] {
                let (s, v) = fx
                    .call(method.clone(), "/api/v1/webhooks", token(who), body.clone())
                    .await;
                let want = match who {
                    Who::Anon => StatusCode::UNAUTHORIZED,
                    Who::Admin => ok,
                    _ => StatusCode::FORBIDDEN,
                };
                assert_eq!(s, want, "{who:?} {method}: {v}");
                if s == StatusCode::FORBIDDEN {
                    assert_error_shape(&v, "forbidden");
                }
            }
        }
        // Listings hold only the caller's organisation.
        let b_hook = hook_in(fx, &fx.b).await;
        let (s, v) = fx
            .call(Method::GET, "/api/v1/webhooks", Some(&fx.a.admin), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let items = v["items"].as_array().unwrap();
        assert!(!items.is_empty());
        for item in items {
            assert_eq!(item["org_id"], fx.a.admin_p.org_id.as_str());
            assert_ne!(item["id"], b_hook.as_str());
        }
    }

    async fn webhooks_secret_once_bad_input_and_schemas(fx: &Fx) {
        let admin = Some(fx.a.admin.as_str());
        let (_, _, doc) = fx
            .raw(Method::GET, "/api/openapi.json", None, None, vec![], &[])
            .await;
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        let check = |path: &str, method: &str, s: StatusCode, v: &Value| {
            let schema = response_schema(&doc, path, method, s);
            if let Err(e) = check_schema(&doc, schema, v, "$") {
                panic!("{method} {path}: {e}\n{v}");
            }
        };

        let (s, created) = fx
            .call(
                Method::POST,
                "/api/v1/webhooks",
                admin,
                Some(json!({"url": HOOK_URL, "events": ["stream.started", "recording.ready"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        check("/api/v1/webhooks", "post", s, &created);
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{created}");
        assert_eq!(
            created["events"],
            json!(["stream.started", "recording.ready"])
        );
        assert_eq!(created["active"], true);
        let id = created["id"].as_str().unwrap().to_owned();

        // The secret is never shown again.
        fx.db
            .enqueue_webhook_event(
                &fx.a.admin_p.org_id,
                WebhookEvent::StreamStarted,
                r#"{"channel":"news"}"#,
                T0,
            )
            .await
            .unwrap();
        let (s, list) = fx.call(Method::GET, "/api/v1/webhooks", admin, None).await;
        assert_eq!(s, StatusCode::OK);
        check("/api/v1/webhooks", "get", s, &list);
        let deliveries_path = format!("/api/v1/webhooks/{id}/deliveries");
        let (s, dl) = fx.call(Method::GET, &deliveries_path, admin, None).await;
        assert_eq!(s, StatusCode::OK, "{dl}");
        check("/api/v1/webhooks/{id}/deliveries", "get", s, &dl);
        assert_eq!(dl["items"].as_array().unwrap().len(), 1);
        let d = &dl["items"][0];
        assert_eq!(
            (&d["state"], &d["attempts"], &d["event"]),
            (&json!("pending"), &json!(0), &json!("stream.started"))
        );
        assert_eq!(d["payload"]["data"]["channel"], "news");
        assert_eq!(d["payload"]["type"], "stream.started");
        for v in [&list, &dl] {
            assert!(!v.to_string().contains(&secret), "secret shown again: {v}");
            assert!(v.to_string().contains(&id));
        }
        let (s, v) = fx
            .call(
                Method::GET,
                &format!("{deliveries_path}?limit=0"),
                admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["field"], "limit");

        // Bad input: 400 naming the field, nothing created.
        let long = format!("http://example.org/{}", "a".repeat(2048));
        let cases = [
            (
                json!({"url": "ftp://example.org/x", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "https://user:pw@example.org/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "example.org/hook", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://exa mple.org/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http:///x", "events": ["stream.started"]}),
                "url",
            ),
            (json!({"url": long, "events": ["stream.started"]}), "url"),
            (json!({"url": HOOK_URL, "events": []}), "events"),
            // SSRF: loopback, private, link-local, CGNAT, metadata, local names.
            (
                json!({"url": "http://127.0.0.1:9/hook", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "https://10.0.0.7/hook", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://192.168.1.1/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://100.64.0.1/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://169.254.169.254/latest/meta-data/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://[::1]:8080/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://[fd00:ec2::254]/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://localhost:8080/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": "http://metadata.google.internal/", "events": ["stream.started"]}),
                "url",
            ),
            (
                json!({"url": HOOK_URL, "events": ["stream.exploded"]}),
                "events",
            ),
        ];
        for (body, field) in cases {
            let (s, v) = fx
                .call(Method::POST, "/api/v1/webhooks", admin, Some(body.clone()))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body:.80}: {v}");
            assert_error_shape(&v, "validation");
            assert_eq!(v["error"]["field"], field, "{v}");
            check("/api/v1/webhooks", "post", s, &v);
        }
        for body in [
            json!({"url": HOOK_URL}),
            json!({"url": HOOK_URL, "events": ["stream.started"], "secret": "mine"}),
            json!({"url": 5, "events": ["stream.started"]}),
        ] {
            let (s, v) = fx
                .call(Method::POST, "/api/v1/webhooks", admin, Some(body))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
            assert_error_shape(&v, "invalid_body");
        }
        let (_, after) = fx.call(Method::GET, "/api/v1/webhooks", admin, None).await;
        assert_eq!(after["items"], list["items"], "bad input created nothing");
        let (_, v) = fx
            .call(
                Method::POST,
                "/api/v1/webhooks",
                admin,
                Some(json!({"url": "http://10.1.2.3/x", "events": ["stream.started"]})),
            )
            .await;
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("10.1.2.3 is a private address")
                && message.contains("allow_private_targets"),
            "the refusal says why and how to allow it: {message}"
        );

        // Delete: 204, then 404; unknown and implausible ids are 404.
        let path = format!("/api/v1/webhooks/{id}");
        let (s, _) = fx.call(Method::DELETE, &path, admin, None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        for p in [
            path.as_str(),
            "/api/v1/webhooks/wh_missing",
            "/api/v1/webhooks/a%20b",
        ] {
            let (s, v) = fx.call(Method::DELETE, p, admin, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
            check("/api/v1/webhooks/{id}", "delete", s, &v);
        }
        let (s, v) = fx.call(Method::GET, &deliveries_path, admin, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        check("/api/v1/webhooks/{id}/deliveries", "get", s, &v);
    }
}

#[path = "tests_srt.rs"]
mod srt_suite;

#[path = "tests_recordings.rs"]
mod recordings_suite;
use recordings_suite::FakeRecordings;
