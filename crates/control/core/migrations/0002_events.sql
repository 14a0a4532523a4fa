-- Starling control plane, schema 2: scheduled events.
-- `state` is written by the nodes that drive the event state machine, with a
-- compare-and-set on the previous state, so concurrent nodes never both apply a
-- transition. `revision` grows with every change (edit or transition): it is the
-- prefetch document's ETag.

CREATE TABLE events (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id),
    channel_id        TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    artwork_url       TEXT,
    scheduled_start   BIGINT NOT NULL,
    scheduled_end     BIGINT NOT NULL CHECK (scheduled_end > scheduled_start),
    preshow_lead_secs BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN
                          ('scheduled', 'pre_show', 'live', 'delayed', 'ended', 'cancelled')),
    state_changed_at  BIGINT NOT NULL,
    revision          BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX events_org_start ON events(org_id, scheduled_start);
CREATE INDEX events_channel ON events(channel_id);
CREATE INDEX events_updated_at ON events(updated_at);
CREATE INDEX events_state ON events(state);
