-- Streams: one row per stream, the head and the snapshot pointer.
CREATE TABLE sekiban_streams (
    tenant           TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    hidden_upto      INTEGER NOT NULL DEFAULT 0,
    erased           INTEGER NOT NULL DEFAULT 0,
    snapshot_version INTEGER,
    snapshot_type    TEXT,
    snapshot_schema  INTEGER,
    snapshot_state   BLOB,
    snapshot_blob    TEXT,
    PRIMARY KEY (tenant, category, stream_id)
) WITHOUT ROWID;

-- The log: events (kind 0) and deletion markers (kind 1 soft, 2 hard), in commit order.
-- AUTOINCREMENT: a position is never reused, even after a hard delete, so the feed never skips.
CREATE TABLE sekiban_log (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           INTEGER NOT NULL,
    tenant         TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB,
    event_type     TEXT,
    schema_version INTEGER,
    data           BLOB,
    metadata       TEXT,
    recorded_at    INTEGER NOT NULL,
    append_first   INTEGER,
    append_last    INTEGER
);
CREATE UNIQUE INDEX sekiban_log_stream_version
    ON sekiban_log (tenant, category, stream_id, version) WHERE kind = 0;
CREATE UNIQUE INDEX sekiban_log_event_id
    ON sekiban_log (tenant, category, stream_id, event_id) WHERE kind = 0;
CREATE INDEX sekiban_log_tenant_position ON sekiban_log (tenant, position);

-- Consumers' checkpoints, saved conditionally on the etag.
CREATE TABLE sekiban_checkpoints (
    name       TEXT    PRIMARY KEY,
    checkpoint TEXT    NOT NULL,
    etag       INTEGER NOT NULL
) WITHOUT ROWID;
