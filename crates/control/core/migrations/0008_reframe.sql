-- Starling control plane, schema 8: vertical reframing and highlight detection per
-- channel (docs/reframing.md). Read when a publish begins, as the ladder is.

ALTER TABLE channels ADD COLUMN reframe BIGINT NOT NULL DEFAULT 0 CHECK (reframe IN (0, 1));
ALTER TABLE channels ADD COLUMN reframe_subject TEXT NOT NULL DEFAULT 'largest'
    CHECK (reframe_subject IN ('largest', 'central'));
ALTER TABLE channels ADD COLUMN highlights BIGINT NOT NULL DEFAULT 0 CHECK (highlights IN (0, 1));
ALTER TABLE channels ADD COLUMN highlight_sensitivity DOUBLE PRECISION NOT NULL DEFAULT 1.0
    CHECK (highlight_sensitivity >= 0.1 AND highlight_sensitivity <= 10.0);
