-- Starling control plane, schema 1.
-- Written once for SQLite and PostgreSQL: TEXT ids, BIGINT unix-millisecond times,
-- booleans as BIGINT 0/1, no backend-specific types or functions.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    is_system  BIGINT NOT NULL DEFAULT 0 CHECK (is_system IN (0, 1)),
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'broadcaster', 'viewer')),
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- One row per login attempt, so throttling holds across nodes.
CREATE TABLE login_attempts (
    id      TEXT PRIMARY KEY,
    email   TEXT NOT NULL,
    addr    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    success BIGINT NOT NULL CHECK (success IN (0, 1))
);
CREATE INDEX login_attempts_email_at ON login_attempts(email, at);
CREATE INDEX login_attempts_addr_at ON login_attempts(addr, at);

-- Channel names appear in URLs (/live/{name}), so they are unique platform-wide.
CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    name            TEXT NOT NULL UNIQUE,
    title           TEXT NOT NULL,
    visibility      TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
    latency_mode    TEXT NOT NULL CHECK (latency_mode IN ('standard', 'low')),
    ladder          TEXT NOT NULL,
    recording       BIGINT NOT NULL CHECK (recording IN (0, 1)),
    dvr_window_secs BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX channels_org ON channels(org_id);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    channel_id   TEXT REFERENCES channels(id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('encoder', 'phone', 'studio', 'other')),
    state        TEXT NOT NULL CHECK (state IN ('live', 'idle', 'offline')),
    last_seen_at BIGINT,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX devices_org ON devices(org_id);

CREATE TABLE stream_keys (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    device_id      TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    channel_id     TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    prefix         TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    last_used_at   BIGINT,
    last_used_addr TEXT
);
CREATE INDEX stream_keys_device ON stream_keys(device_id);
CREATE INDEX stream_keys_channel ON stream_keys(channel_id);
CREATE INDEX stream_keys_revoked_at ON stream_keys(revoked_at);
