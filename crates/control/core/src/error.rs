//! Typed errors of the control plane.
//!
//! Errors never carry a secret (key, token, password, hash): only ids, field names and reasons.

use crate::authz::Action;

/// Which input field was wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {problem}")]
pub struct ValidationError {
    /// Name of the offending field as the API spells it (`name`, `email`, …).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: Problem,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, problem: Problem) -> Self {
        Self { field, problem }
    }
}

/// The reason a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Empty or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed (lengths in bytes).
    #[error("{len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Actual length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// Shorter than allowed (lengths in bytes).
    #[error("{len} bytes is below the minimum of {min}")]
    TooShort {
        /// Actual length.
        len: usize,
        /// Required minimum.
        min: usize,
    },
    /// NUL or another control character.
    #[error("contains a control character at byte {at}")]
    ControlCharacter {
        /// Byte offset of the first one.
        at: usize,
    },
    /// `../`, `..\` or a path separator where a plain name is expected.
    #[error("contains a path component (`..`, `/` or `\\`)")]
    PathTraversal,
    /// A character outside the allowed set.
    #[error("character {ch:?} at byte {at} is not allowed (allowed: {allowed})")]
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
        /// Human description of the allowed set.
        allowed: &'static str,
    },
    /// Not one of the accepted words.
    #[error("must be one of: {expected}")]
    NotOneOf {
        /// The accepted words, comma separated.
        expected: &'static str,
    },
    /// Wrong shape (e.g. an email without `@`).
    #[error("{0}")]
    Format(&'static str),
    /// A number out of range.
    #[error("{value} is outside {min}..={max}")]
    OutOfRange {
        /// The value given.
        value: i64,
        /// Minimum.
        min: i64,
        /// Maximum.
        max: i64,
    },
}

/// Why an authentication (login, session, token, stream key) was refused.
///
/// Callers show one generic message for `InvalidCredentials` / `UnknownKey` so that a
/// client cannot tell whether an account or key exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong email or password (deliberately not saying which).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many failed attempts for this account or this address.
    #[error("too many failed login attempts for this {scope}; retry in {retry_after_ms} ms")]
    Throttled {
        /// `account` or `address`.
        scope: &'static str,
        /// When the lock lifts, from `now`.
        retry_after_ms: i64,
    },
    /// No such session, API token or stream key.
    #[error("unknown {what}")]
    Unknown {
        /// `session`, `api token` or `stream key`.
        what: &'static str,
    },
    /// It existed but was revoked (or its device was).
    #[error("{what} {id} was revoked")]
    Revoked {
        /// `session`, `api token` or `stream key`.
        what: &'static str,
        /// Its id (never the secret).
        id: String,
    },
    /// It expired.
    #[error("{what} {id} expired")]
    Expired {
        /// `session` or `api token`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The user is disabled.
    #[error("user {user_id} is disabled")]
    Disabled {
        /// The user.
        user_id: String,
    },
}

/// Why a playback token was refused. Each case is distinct so the origin can answer
/// 401 (missing / malformed / tampered / expired) or 403 (other channel) and log why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not `payload.signature`, bad base64, too long, or an unknown version.
    #[error("malformed playback token: {0}")]
    Malformed(&'static str),
    /// The signature does not match: altered or signed with another secret.
    #[error("playback token signature does not match")]
    BadSignature,
    /// Valid token, but for another channel.
    #[error("playback token is for channel {token_channel}, not {requested}")]
    WrongChannel {
        /// Channel named in the token.
        token_channel: String,
        /// Channel requested.
        requested: String,
    },
    /// Valid token, expired.
    #[error("playback token expired at {expired_at_ms} (now {now_ms})")]
    Expired {
        /// Its expiry, unix ms.
        expired_at_ms: i64,
        /// The time of the check, unix ms.
        now_ms: i64,
    },
}

/// Every error the control plane returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Bad input; nothing was changed.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Authentication refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The resource does not exist *or belongs to another organisation* (never say which).
    #[error("{what} not found")]
    NotFound {
        /// `channel`, `device`, …
        what: &'static str,
    },
    /// Same organisation, but the role may not do this.
    #[error("role {role} may not {action:?}")]
    Forbidden {
        /// The principal's role.
        role: crate::authz::Role,
        /// The refused action.
        action: Action,
    },
    /// A unique value is taken (email, channel name, org name).
    #[error("{field} is already taken")]
    Conflict {
        /// The field.
        field: &'static str,
    },
    /// The configuration is unusable (bad database URL, bad argon2 parameters, …).
    #[error("configuration: {0}")]
    Config(String),
    /// A stored value is not what this version of the code writes.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The OS random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Password hashing failed (not a wrong password: an internal failure).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// A blocking task (password hashing) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// The database failed. sqlx errors never contain bound values.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl ControlError {
    pub(crate) fn not_found(what: &'static str) -> Self {
        Self::NotFound { what }
    }

    pub(crate) fn corrupt(table: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            table,
            detail: detail.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;
