-- Starling control plane, schema 4: a channel's own SRT passphrase.
-- Same dialect as 0001 (plain ADD COLUMN, accepted by SQLite and PostgreSQL alike).
-- `srt_passphrase` is stored as given (not hashed): the SRT server hands it to libsrt,
-- which derives the AES key from it. It is never returned by the API nor logged.
-- `srt_pbkeylen` is the AES key length in bytes; NULL: the node's `srt.pbkeylen`. It is
-- only set together with a passphrase.

ALTER TABLE channels ADD COLUMN srt_passphrase TEXT;
ALTER TABLE channels ADD COLUMN srt_pbkeylen BIGINT CHECK (srt_pbkeylen IN (16, 24, 32));
