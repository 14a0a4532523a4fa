-- Starling control plane, schema 3: webhooks and their durable delivery queue.
-- Same dialect as 0001: TEXT ids, BIGINT unix-millisecond times, BIGINT 0/1 booleans.

-- `secret` is stored as given (not hashed): the server signs every delivery with it.
-- It is returned once, on creation, and never logged.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    url        TEXT NOT NULL,
    -- Comma-separated event kinds (`stream.started,stream.ended`).
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled   BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);
CREATE INDEX webhooks_org ON webhooks(org_id);

-- One row per (event, webhook). `payload` is the exact body that is signed and sent,
-- so every retry sends the same bytes. `next_attempt_at` is NULL once the delivery is
-- finished (delivered or given up); while an attempt is in flight it holds the lease
-- expiry, so no other node (or poll) picks it up.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    failed_at       BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at);
