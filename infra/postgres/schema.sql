BEGIN;

CREATE SCHEMA IF NOT EXISTS "sekiban";
CREATE TABLE IF NOT EXISTS "sekiban".meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO "sekiban".meta (key, value) VALUES ('schema_version', '0') ON CONFLICT DO NOTHING;

-- Migration 1
-- "sekiban" is replaced by the configured schema name (an identifier, quoted).
CREATE TABLE "sekiban".streams (
    tenant           text     NOT NULL,
    category         text     NOT NULL,
    stream_id        text     NOT NULL,
    version          bigint   NOT NULL,
    hidden_upto      bigint   NOT NULL DEFAULT 0,
    erased           boolean  NOT NULL DEFAULT false,
    -- The highest transaction id that wrote this stream: a stream's rows never go down in
    -- (tx, position) order even when a later writer drew a lower xid.
    last_tx          bigint   NOT NULL DEFAULT 0,
    snapshot_version bigint,
    snapshot_type    text,
    snapshot_schema  integer,
    snapshot_state   bytea,
    snapshot_blob    text,
    PRIMARY KEY (tenant, category, stream_id)
);

-- Events (kind 0) and deletion markers (1 soft, 2 hard). The feed reads in (tx, global_position)
-- order and only below the snapshot's xmin, so a transaction that commits late is never skipped.
CREATE TABLE "sekiban".log (
    global_position bigserial PRIMARY KEY,
    tx              bigint      NOT NULL,
    kind            smallint    NOT NULL,
    tenant          text        NOT NULL,
    category        text        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL,
    event_id        uuid,
    event_type      text,
    schema_version  integer,
    data            bytea,
    metadata        jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    append_first    bigint,
    append_last     bigint
);
CREATE UNIQUE INDEX log_stream_version ON "sekiban".log (tenant, category, stream_id, version) WHERE kind = 0;
CREATE UNIQUE INDEX log_stream_event_id ON "sekiban".log (tenant, category, stream_id, event_id) WHERE kind = 0;
CREATE INDEX log_feed ON "sekiban".log (tx, global_position);
CREATE INDEX log_tenant_feed ON "sekiban".log (tenant, tx, global_position);

CREATE TABLE "sekiban".checkpoints (
    name       text   PRIMARY KEY,
    checkpoint text   NOT NULL,
    etag       bigint NOT NULL
);

-- Migration 2
-- "sekiban" is replaced by the configured schema name (an identifier, quoted).
-- Room for a per-stream encryption key id (crypto-shredding: erase a stream's key and its events
-- are unreadable everywhere, backups included). Nothing writes it yet; NULL: not encrypted.
ALTER TABLE "sekiban".streams ADD COLUMN key_id text;

UPDATE "sekiban".meta SET value = '2' WHERE key = 'schema_version';

COMMIT;
