//! Organisations, users, passwords, login throttling, sessions and API tokens.
//!
//! Passwords are hashed with argon2id (PHC strings, parameters stored in each hash so
//! they can be raised later). Sessions and API tokens are 32-byte random secrets given
//! to the client once and stored as SHA-256. Nothing here logs or returns a hash.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::authz::{check, Action, Principal, Role};
use crate::db::{conflict, flag, Db, UnixMs};
use crate::error::{AuthError, ControlError, Result};
use crate::secret::{hash_secret, new_id, new_secret, Secret};
use crate::validate;

/// Argon2id cost parameters for new hashes. Defaults are the argon2 crate's (OWASP's
/// 19 MiB, 2 passes, 1 lane); tests use [`PasswordParams::INSECURE_FAST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            m_cost_kib: argon2::Params::DEFAULT_M_COST,
            t_cost: argon2::Params::DEFAULT_T_COST,
            p_cost: argon2::Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordParams {
    /// The cheapest argon2id accepts: for tests only.
    pub const INSECURE_FAST: Self = Self {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };

    pub(crate) fn argon2(&self) -> Result<argon2::Argon2<'static>> {
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|e| ControlError::Config(format!("argon2 parameters {self:?}: {e}")))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// An organisation (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// `org_…`.
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// The platform operators' organisation.
    pub system: bool,
    /// Creation time.
    pub created_at: UnixMs,
}

/// A user, without its password hash (which never leaves this module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `usr_…`.
    pub id: String,
    /// Its organisation.
    pub org_id: String,
    /// Lower-cased, unique.
    pub email: String,
    /// Its role.
    pub role: Role,
    /// Disabled users cannot log in; their sessions and tokens stop working.
    pub disabled: bool,
    /// Creation time.
    pub created_at: UnixMs,
}

/// A login session (web cookie); the secret is returned once by `create_session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `ses_…`.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Creation time.
    pub created_at: UnixMs,
    /// Expiry.
    pub expires_at: UnixMs,
}

/// An API token's metadata; the secret is returned once by `create_api_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    /// `tok_…`.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// What the owner called it.
    pub name: String,
    /// First characters of the secret, for recognising it (`st_3f9aB2c1`).
    pub prefix: String,
    /// Creation time.
    pub created_at: UnixMs,
    /// Expiry, if any.
    pub expires_at: Option<UnixMs>,
    /// Last successful use.
    pub last_used_at: Option<UnixMs>,
    /// When revoked.
    pub revoked_at: Option<UnixMs>,
}

/// Only refresh `last_used_at` this often, so a busy session is not a write per request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;
/// Bound on a presented secret before hashing it (ours are 46 characters).
pub(crate) const PRESENTED_SECRET_MAX: usize = 256;

fn user_from_row(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        email: r.try_get("email")?,
        role: Role::parse(&role).ok_or_else(|| ControlError::corrupt("users", "role"))?,
        disabled: flag("users", r.try_get("disabled")?)?,
        created_at: r.try_get("created_at")?,
    })
}

fn org_from_row(r: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        system: flag("orgs", r.try_get("is_system")?)?,
        created_at: r.try_get("created_at")?,
    })
}

fn token_from_row(r: &AnyRow) -> Result<ApiTokenInfo> {
    Ok(ApiTokenInfo {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Db {
    async fn hash_password(&self, password: &str) -> Result<String> {
        let argon = self.inner.argon.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ControlError::PasswordHash(e.to_string()))
        })
        .await
        .map_err(|e| ControlError::Task(e.to_string()))?
    }

    /// Whether `password` matches `stored` (a PHC string). Runs off the async threads.
    async fn verify_password(&self, password: &str, stored: String) -> Result<bool> {
        let argon = self.inner.argon.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| ControlError::corrupt("users", format!("password hash: {e}")))?;
            Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| ControlError::Task(e.to_string()))?
    }

    async fn dummy_hash(&self) -> Result<String> {
        if let Some(h) = self.inner.dummy_hash.get() {
            return Ok(h.clone());
        }
        let h = self
            .hash_password("not a real password, only for timing")
            .await?;
        Ok(self.inner.dummy_hash.get_or_init(|| h).clone())
    }

    async fn insert_org(&self, name: &str, system: bool, now: UnixMs) -> Result<Org> {
        validate::display_text("name", name, validate::NAME_MAX)?;
        let org = Org {
            id: new_id("org")?,
            name: name.to_owned(),
            system,
            created_at: now,
        };
        sqlx::query("INSERT INTO orgs (id, name, is_system, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(i64::from(system))
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(conflict("name"))?;
        Ok(org)
    }

    /// Creates an organisation (system admins only).
    pub async fn create_org(&self, p: &Principal, name: &str, now: UnixMs) -> Result<Org> {
        check(p, Action::CreateOrg, &p.org_id, "org")?;
        self.insert_org(name, false, now).await
    }

    /// An organisation by id, if `p` belongs to it (or is a system admin).
    pub async fn get_org(&self, p: &Principal, org_id: &str) -> Result<Org> {
        if p.org_id != org_id && !(p.system && p.role == Role::Admin) {
            return Err(ControlError::not_found("org"));
        }
        let row = sqlx::query("SELECT id, name, is_system, created_at FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| ControlError::not_found("org"))?;
        org_from_row(&row)
    }

    async fn insert_user(
        &self,
        org_id: &str,
        email: &str,
        password: &str,
        role: Role,
        now: UnixMs,
    ) -> Result<User> {
        let email = validate::email(email)?;
        validate::password(password)?;
        let hash = self.hash_password(password).await?;
        let user = User {
            id: new_id("usr")?,
            org_id: org_id.to_owned(),
            email,
            role,
            disabled: false,
            created_at: now,
        };
        sqlx::query(
            "INSERT INTO users (id, org_id, email, role, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(&user.id)
        .bind(&user.org_id)
        .bind(&user.email)
        .bind(role.as_str())
        .bind(&hash)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(conflict("email"))?;
        Ok(user)
    }

    /// Creates a user in `org_id` (admins of that org, or system admins).
    pub async fn create_user(
        &self,
        p: &Principal,
        org_id: &str,
        email: &str,
        password: &str,
        role: Role,
        now: UnixMs,
    ) -> Result<User> {
        check(p, Action::ManageUsers, org_id, "org")?;
        // An org id that does not exist is a foreign-key failure; report it as not found.
        let exists = sqlx::query("SELECT id FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_none() {
            return Err(ControlError::not_found("org"));
        }
        self.insert_user(org_id, email, password, role, now).await
    }

    /// Users of `org_id`, oldest first, `limit` from `offset`.
    pub async fn list_users(
        &self,
        p: &Principal,
        org_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>> {
        check(p, Action::ManageUsers, org_id, "org")?;
        validate::range("limit", limit, 1, 1000)?;
        validate::range("offset", offset, 0, i64::MAX)?;
        let rows = sqlx::query(
            "SELECT id, org_id, email, role, disabled, created_at FROM users \
             WHERE org_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3",
        )
        .bind(org_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// A user the caller may manage (its own organisation's, or any for system admins).
    pub async fn get_user(&self, p: &Principal, user_id: &str) -> Result<User> {
        let user = self
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| ControlError::not_found("user"))?;
        check(p, Action::ManageUsers, &user.org_id, "user")?;
        Ok(user)
    }

    /// Organisations the caller sees: all for a system admin, else its own.
    pub async fn list_orgs(&self, p: &Principal, limit: i64, offset: i64) -> Result<Vec<Org>> {
        validate::range("limit", limit, 1, 1000)?;
        validate::range("offset", offset, 0, i64::MAX)?;
        let rows = if p.system && p.role == Role::Admin {
            sqlx::query(
                "SELECT id, name, is_system, created_at FROM orgs \
                 ORDER BY created_at, id LIMIT $1 OFFSET $2",
            )
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?
        } else {
            sqlx::query(
                "SELECT id, name, is_system, created_at FROM orgs WHERE id = $1 \
                 LIMIT $2 OFFSET $3",
            )
            .bind(&p.org_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?
        };
        rows.iter().map(org_from_row).collect()
    }

    /// Disables or re-enables a user. Disabling also revokes its sessions and tokens.
    pub async fn set_user_disabled(
        &self,
        p: &Principal,
        user_id: &str,
        disabled: bool,
        now: UnixMs,
    ) -> Result<()> {
        let user = self
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| ControlError::not_found("user"))?;
        check(p, Action::ManageUsers, &user.org_id, "user")?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            for table in [
                "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            ] {
                sqlx::query(table)
                    .bind(now)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, org_id, email, role, disabled, created_at FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn principal_for(&self, user: &User) -> Result<Principal> {
        let row = sqlx::query("SELECT is_system FROM orgs WHERE id = $1")
            .bind(&user.org_id)
            .fetch_one(self.pool())
            .await?;
        Ok(Principal {
            user_id: user.id.clone(),
            org_id: user.org_id.clone(),
            role: user.role,
            system: flag("orgs", row.try_get("is_system")?)?,
        })
    }

    /// First-run setup for `starling admin create-user`: makes sure a system
    /// organisation exists (named `org_name` if it has to be created) and adds an
    /// admin to it. Refuses an email that already exists (`Conflict`).
    pub async fn bootstrap_admin(
        &self,
        email: &str,
        password: &str,
        org_name: &str,
        now: UnixMs,
    ) -> Result<User> {
        let existing = sqlx::query(
            "SELECT id, name, is_system, created_at FROM orgs WHERE is_system = 1 \
             ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        let org = match existing {
            Some(row) => org_from_row(&row)?,
            None => self.insert_org(org_name, true, now).await?,
        };
        self.insert_user(&org.id, email, password, Role::Admin, now)
            .await
    }

    /// Returns `Throttled` if the account or the address is locked at `now`.
    async fn throttled(&self, email: &str, addr: &str, now: UnixMs) -> Result<Option<AuthError>> {
        let t = self.inner.throttle;
        let window_start = now.saturating_sub(t.window_ms);
        // A success resets the account's count (but not the address's).
        let last_success: Option<i64> = sqlx::query(
            "SELECT at FROM login_attempts WHERE email = $1 AND success = 1 AND at > $2 \
             ORDER BY at DESC LIMIT 1",
        )
        .bind(email)
        .bind(window_start)
        .fetch_optional(self.pool())
        .await?
        .map(|r| r.try_get("at"))
        .transpose()?;
        let since = last_success.map_or(window_start, |s| s.max(window_start));
        let checks = [
            (
                "account",
                "SELECT at FROM login_attempts WHERE email = $1 AND success = 0 AND at > $2 \
                 ORDER BY at DESC LIMIT $3",
                email,
                since,
                t.max_failures_per_account,
            ),
            (
                "address",
                "SELECT at FROM login_attempts WHERE addr = $1 AND success = 0 AND at > $2 \
                 ORDER BY at DESC LIMIT $3",
                addr,
                window_start,
                t.max_failures_per_addr,
            ),
        ];
        for (scope, sql, who, since, max) in checks {
            if max == 0 {
                continue;
            }
            let rows = sqlx::query(sql)
                .bind(who)
                .bind(since)
                .bind(i64::from(max))
                .fetch_all(self.pool())
                .await?;
            if let Some(oldest) = rows.get(max as usize - 1) {
                let oldest: i64 = oldest.try_get("at")?;
                // The lock lifts when the oldest counted failure leaves the window.
                let retry_after_ms = oldest
                    .saturating_add(t.window_ms)
                    .saturating_sub(now)
                    .max(1);
                return Ok(Some(AuthError::Throttled {
                    scope,
                    retry_after_ms,
                }));
            }
        }
        Ok(None)
    }

    async fn record_attempt(
        &self,
        email: &str,
        addr: &str,
        success: bool,
        now: UnixMs,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_attempts (id, email, addr, at, success) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id("att")?)
        .bind(email)
        .bind(addr)
        .bind(now)
        .bind(i64::from(success))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Checks an email and password from `addr` (the client's IP address).
    ///
    /// Refused attempts while locked are not recorded, so a lock lasts at most one
    /// window after the last counted failure. An unknown email costs the same argon2
    /// work as a known one and yields the same `InvalidCredentials`.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        addr: &str,
        now: UnixMs,
    ) -> Result<Principal> {
        let email = match validate::email(email) {
            Ok(e) => e,
            Err(_) => return Err(AuthError::InvalidCredentials.into()),
        };
        if password.len() > validate::PASSWORD_MAX {
            return Err(AuthError::InvalidCredentials.into());
        }
        let addr = validate::clip_addr(addr);
        if let Some(t) = self.throttled(&email, addr, now).await? {
            return Err(t.into());
        }
        let row = sqlx::query(
            "SELECT id, org_id, email, role, disabled, created_at, password_hash FROM users \
             WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(self.pool())
        .await?;
        let (user, stored) = match &row {
            Some(r) => (
                Some(user_from_row(r)?),
                r.try_get::<String, _>("password_hash")?,
            ),
            None => (None, self.dummy_hash().await?),
        };
        let ok = self.verify_password(password, stored).await? && user.is_some();
        self.record_attempt(&email, addr, ok, now).await?;
        match user {
            Some(user) if ok => {
                if user.disabled {
                    return Err(AuthError::Disabled { user_id: user.id }.into());
                }
                self.principal_for(&user).await
            }
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// Changes a user's own password after checking the current one.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new: &str,
        now: UnixMs,
    ) -> Result<()> {
        validate::password(new)?;
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(&p.user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| ControlError::not_found("user"))?;
        if !self
            .verify_password(current, row.try_get("password_hash")?)
            .await?
        {
            return Err(AuthError::InvalidCredentials.into());
        }
        let hash = self.hash_password(new).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(&p.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&p.user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes login attempts older than `before` (they no longer count).
    pub async fn prune_login_attempts(&self, before: UnixMs) -> Result<u64> {
        let r = sqlx::query("DELETE FROM login_attempts WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// Starts a session for a logged-in user; the secret goes into the cookie.
    pub async fn create_session(
        &self,
        p: &Principal,
        ttl_ms: i64,
        now: UnixMs,
    ) -> Result<(SessionInfo, Secret)> {
        validate::range("ttl_ms", ttl_ms, 1, 400 * 24 * 3600 * 1000)?;
        let (secret, _) = new_secret("ss")?;
        let info = SessionInfo {
            id: new_id("ses")?,
            user_id: p.user_id.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        };
        sqlx::query(
            "INSERT INTO sessions (id, user_id, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&info.id)
        .bind(&info.user_id)
        .bind(hash_secret(secret.expose()))
        .bind(now)
        .bind(info.expires_at)
        .execute(self.pool())
        .await?;
        Ok((info, secret))
    }

    /// The principal behind a session cookie.
    pub async fn authenticate_session(&self, secret: &str, now: UnixMs) -> Result<Principal> {
        const WHAT: &str = "session";
        if secret.len() > PRESENTED_SECRET_MAX {
            return Err(AuthError::Unknown { what: WHAT }.into());
        }
        let row = sqlx::query(
            "SELECT s.id AS sid, s.expires_at, s.revoked_at, s.last_used_at, u.id, u.org_id, \
             u.email, u.role, u.disabled, u.created_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?
        .ok_or(AuthError::Unknown { what: WHAT })?;
        let id: String = row.try_get("sid")?;
        self.check_credential(
            WHAT,
            &row,
            id.clone(),
            Some(row.try_get("expires_at")?),
            now,
            "UPDATE sessions SET last_used_at = $1 WHERE id = $2",
        )
        .await
    }

    /// Common checks for sessions and tokens: revoked, expired, user disabled; then
    /// refresh `last_used_at` (at most once a minute).
    async fn check_credential(
        &self,
        what: &'static str,
        row: &AnyRow,
        id: String,
        expires_at: Option<i64>,
        now: UnixMs,
        touch_sql: &'static str,
    ) -> Result<Principal> {
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        if revoked_at.is_some() {
            return Err(AuthError::Revoked { what, id }.into());
        }
        if expires_at.is_some_and(|e| now >= e) {
            return Err(AuthError::Expired { what, id }.into());
        }
        let user = user_from_row(row)?;
        if user.disabled {
            return Err(AuthError::Disabled { user_id: user.id }.into());
        }
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        if last_used.is_none_or(|t| now.saturating_sub(t) >= LAST_USED_GRANULARITY_MS) {
            sqlx::query(touch_sql)
                .bind(now)
                .bind(&id)
                .execute(self.pool())
                .await?;
        }
        self.principal_for(&user).await
    }

    /// Logs out: revokes the session whose secret this is. Unknown secrets are ignored.
    pub async fn logout(&self, secret: &str, now: UnixMs) -> Result<()> {
        if secret.len() > PRESENTED_SECRET_MAX {
            return Ok(());
        }
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE secret_hash = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(hash_secret(secret))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Revokes one session of the caller (or, for admins, of a user of their org).
    pub async fn revoke_session(&self, p: &Principal, session_id: &str, now: UnixMs) -> Result<()> {
        self.revoke_credential(p, Credential::Session, session_id, now)
            .await
    }

    /// Creates an API token for the caller. `expires_at: None` means it lives until revoked.
    pub async fn create_api_token(
        &self,
        p: &Principal,
        name: &str,
        expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> Result<(ApiTokenInfo, Secret)> {
        validate::display_text("name", name, validate::NAME_MAX)?;
        if let Some(e) = expires_at {
            validate::range("expires_at", e, now.saturating_add(1), i64::MAX)?;
        }
        let (secret, prefix) = new_secret("st")?;
        let info = ApiTokenInfo {
            id: new_id("tok")?,
            user_id: p.user_id.clone(),
            name: name.to_owned(),
            prefix,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, prefix, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&info.id)
        .bind(&info.user_id)
        .bind(&info.name)
        .bind(&info.prefix)
        .bind(hash_secret(secret.expose()))
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok((info, secret))
    }

    /// The caller's API tokens (metadata only).
    pub async fn list_api_tokens(&self, p: &Principal) -> Result<Vec<ApiTokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at \
             FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(&p.user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// The principal behind an API token (`Authorization: Bearer st_…`).
    pub async fn authenticate_api_token(&self, secret: &str, now: UnixMs) -> Result<Principal> {
        const WHAT: &str = "api token";
        if secret.len() > PRESENTED_SECRET_MAX {
            return Err(AuthError::Unknown { what: WHAT }.into());
        }
        let row = sqlx::query(
            "SELECT t.id AS tid, t.expires_at, t.revoked_at, t.last_used_at, u.id, u.org_id, \
             u.email, u.role, u.disabled, u.created_at FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.secret_hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(self.pool())
        .await?
        .ok_or(AuthError::Unknown { what: WHAT })?;
        let id: String = row.try_get("tid")?;
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        self.check_credential(
            WHAT,
            &row,
            id,
            expires_at,
            now,
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
        )
        .await
    }

    /// Revokes one of the caller's API tokens (admins: any token of their org's users).
    pub async fn revoke_api_token(&self, p: &Principal, token_id: &str, now: UnixMs) -> Result<()> {
        self.revoke_credential(p, Credential::ApiToken, token_id, now)
            .await
    }

    /// Revokes a session or API token: the owner may always; anyone else needs
    /// `ManageUsers` in the owner's organisation (another org's credential is NotFound).
    async fn revoke_credential(
        &self,
        p: &Principal,
        kind: Credential,
        id: &str,
        now: UnixMs,
    ) -> Result<()> {
        // Static statements per kind: no SQL is ever assembled at run time.
        let (select, update, what) = match kind {
            Credential::Session => (
                "SELECT t.user_id, u.org_id FROM sessions t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                "session",
            ),
            Credential::ApiToken => (
                "SELECT t.user_id, u.org_id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                "api token",
            ),
        };
        let row = sqlx::query(select)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| ControlError::not_found(what))?;
        let owner: String = row.try_get("user_id")?;
        if owner != p.user_id {
            check(
                p,
                Action::ManageUsers,
                &row.try_get::<String, _>("org_id")?,
                what,
            )?;
        }
        sqlx::query(update)
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// The two kinds of bearer credential a user holds.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Session,
    ApiToken,
}
