-- Starling control plane, schema 5: channels get the node's ladder by default.
-- Until transcoding existed, `ladder` was stored and ignored, and every channel was
-- made with 'source'; that meant nothing then. Now 'source' means "the source alone, no
-- transcoding", so those channels move to 'default' (the node's `[transcode]` rungs),
-- as new channels are made. A channel that wants no ladder sets 'source' again.

UPDATE channels SET ladder = 'default' WHERE ladder = 'source';
