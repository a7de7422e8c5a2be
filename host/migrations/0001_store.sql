-- The PostgreSQL store (host/src/store/postgres/): the same records the
-- embedded store keeps, as tables.
--
-- Ids and keys are `text COLLATE "C"`, so they sort byte by byte as the
-- embedded store's keys do: a page continues after its cursor id in the same
-- order on every backend, and ULID ids sort by creation time. Times are
-- milliseconds since the epoch (`bigint`), as in the records.

-- JSON documents (records, field templates) are `json`, not `jsonb`: kept
-- as written, and a `\u0000` escape in them (a destination's response body
-- in an attempt record) is stored, where `jsonb` would refuse the row.
-- `text` cannot hold NUL at all: what comes from outside as free text is
-- either `bytea` (cache keys and values) or has NUL replaced on the way in
-- (event names, error messages; see `rows::text`).

-- The catalog: each record kept whole as JSON, with the columns it is found
-- by. Nothing queries inside a record.
CREATE TABLE workspaces (
    id     text COLLATE "C" PRIMARY KEY,
    record json NOT NULL
);

CREATE TABLE api_keys (
    hash      text COLLATE "C" PRIMARY KEY,
    workspace text COLLATE "C" NOT NULL,
    id        text COLLATE "C" NOT NULL,
    record    json NOT NULL
);
CREATE INDEX api_keys_of_workspace ON api_keys (workspace, id);

CREATE TABLE connections (
    workspace text COLLATE "C" NOT NULL,
    id        text COLLATE "C" NOT NULL,
    record    json NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE rules (
    workspace text COLLATE "C" NOT NULL,
    id        text COLLATE "C" NOT NULL,
    record    json NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE replays (
    workspace text COLLATE "C" NOT NULL,
    id        text COLLATE "C" NOT NULL,
    state     text NOT NULL,
    record    json NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX replays_pending ON replays (workspace, id) WHERE state <> 'completed';

-- Events as received. An event's status is not stored: it is derived from
-- its deliveries when asked (processing while one is active, else failed if
-- one failed, else completed), so no write has to keep two rows in step.
CREATE TABLE events (
    workspace    text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    event        text NOT NULL,
    resource     text NOT NULL,
    resource_id  text,
    payload      text NOT NULL,
    created_by   text NOT NULL,
    created_at   bigint NOT NULL,
    delivery_ids text[] NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX events_by_age ON events (created_at);

-- One row per (event × rule). `due_at` is set while the delivery is queued,
-- and while it is leased (then it is when the lease expires): the delay
-- queue is every row with a due time.
CREATE TABLE deliveries (
    id                text COLLATE "C" PRIMARY KEY,
    workspace         text COLLATE "C" NOT NULL,
    event_id          text COLLATE "C" NOT NULL,
    rule              text COLLATE "C" NOT NULL,
    connection        text COLLATE "C" NOT NULL,
    connector         text NOT NULL,
    action            text NOT NULL,
    fields            json NOT NULL,
    status            text NOT NULL,
    attempt_count     integer NOT NULL,
    due_at            bigint,
    lease             text,
    connector_version text,
    last_error        text,
    last_outcome      text,
    interruptions     integer NOT NULL DEFAULT 0,
    created_at        bigint NOT NULL,
    updated_at        bigint NOT NULL,
    FOREIGN KEY (workspace, event_id) REFERENCES events (workspace, id) ON DELETE CASCADE
);
-- The queue per connection, earliest first: claims read each connection's
-- head and its next few due deliveries from here without touching the table.
CREATE INDEX deliveries_queue ON deliveries (connection, due_at, id) INCLUDE (workspace)
    WHERE due_at IS NOT NULL;
-- The queue by time alone: the next due time.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_of_workspace ON deliveries (workspace, id);
CREATE INDEX deliveries_by_status ON deliveries (workspace, status, id);
CREATE INDEX deliveries_of_connection ON deliveries (connection, id);
CREATE INDEX deliveries_of_event ON deliveries (workspace, event_id);
-- Active deliveries by event: an event's derived status, and the retention
-- sweep's "is anything still running".
CREATE INDEX deliveries_active ON deliveries (workspace, event_id)
    WHERE status NOT IN ('completed', 'failed', 'canceled');
CREATE INDEX deliveries_failed ON deliveries (workspace, event_id) WHERE status = 'failed';
CREATE INDEX deliveries_waiting ON deliveries (connection, id) WHERE status = 'waiting';

-- The attempt records users see, whole.
CREATE TABLE attempts (
    delivery_id text COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    record      json NOT NULL,
    PRIMARY KEY (delivery_id, n)
);

-- Idempotency keys (hashed, per workspace) and the event each first made.
CREATE TABLE idempotency (
    workspace text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    event_id  text COLLATE "C" NOT NULL,
    at        bigint NOT NULL,
    PRIMARY KEY (workspace, key)
);
CREATE INDEX idempotency_of_event ON idempotency (workspace, event_id);

-- The connector cache: keys and values as the connector gave them (bytes of
-- UTF-8, NUL included). `bytes` is what an entry costs against its
-- connection's quota (key and value).
CREATE TABLE cache (
    connection text COLLATE "C" NOT NULL,
    key        bytea NOT NULL,
    value      bytea NOT NULL,
    expires_at bigint NOT NULL,
    bytes      integer NOT NULL,
    PRIMARY KEY (connection, key)
);
CREATE INDEX cache_by_expiry ON cache (expires_at);
CREATE INDEX cache_of_connection_by_expiry ON cache (connection, expires_at, key);
