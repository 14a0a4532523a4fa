-- Starling control plane, schema 6: the real-time latency mode (WebRTC for viewers that
-- can, LL-HLS for the rest). Same dialect as 0001 (plain ADD COLUMN, accepted by SQLite
-- and PostgreSQL alike).
-- A column of its own rather than a third value of `latency_mode`: that column's CHECK
-- (schema 1) allows 'standard' and 'low' only, and SQLite can change a CHECK only by
-- rebuilding the table, whose DROP would cascade to the stream keys. A real-time channel
-- is stored as latency_mode = 'low' (its HLS is LL-HLS) and realtime = 1; the API shows
-- one `latency_mode`, 'realtime' (channels.rs, `LatencyMode::columns`).

ALTER TABLE channels ADD COLUMN realtime BIGINT NOT NULL DEFAULT 0 CHECK (realtime IN (0, 1));
