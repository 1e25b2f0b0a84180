-- {schema} is replaced by the configured schema name (an identifier, quoted).
CREATE TABLE {schema}.streams (
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
CREATE TABLE {schema}.log (
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
CREATE UNIQUE INDEX log_stream_version ON {schema}.log (tenant, category, stream_id, version) WHERE kind = 0;
CREATE UNIQUE INDEX log_stream_event_id ON {schema}.log (tenant, category, stream_id, event_id) WHERE kind = 0;
CREATE INDEX log_feed ON {schema}.log (tx, global_position);
CREATE INDEX log_tenant_feed ON {schema}.log (tenant, tx, global_position);

CREATE TABLE {schema}.checkpoints (
    name       text   PRIMARY KEY,
    checkpoint text   NOT NULL,
    etag       bigint NOT NULL
);
