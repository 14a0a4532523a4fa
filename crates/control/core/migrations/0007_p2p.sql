-- Starling control plane, schema 7: the P2P latency mode (viewers a few segments behind
-- live, sharing whole segments over WebRTC data channels; docs/p2p.md). A column of its
-- own, as `realtime` (schema 6) and for the same reason: `latency_mode`'s CHECK knows
-- 'standard' and 'low' only. A P2P channel is stored as latency_mode = 'low' (its HLS is
-- LL-HLS, for the viewers that cannot take part) and p2p = 1; the API shows one
-- `latency_mode`, 'p2p' (channels.rs, `LatencyMode::columns`).

ALTER TABLE channels ADD COLUMN p2p BIGINT NOT NULL DEFAULT 0 CHECK (p2p IN (0, 1));
