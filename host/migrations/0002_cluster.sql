-- What the nodes of one installation share beyond the records: the
-- connector versions uploaded to any node and the blocked versions (each
-- node follows them, compiling a component once per content hash), and the
-- token buckets that hold a connection's rate limit for the whole cluster.

CREATE TABLE connector_versions (
    name        text COLLATE "C" NOT NULL,
    version     text COLLATE "C" NOT NULL,
    sha256      text NOT NULL,
    component   bytea NOT NULL,
    uploaded_at bigint NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE connector_blocks (
    name    text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    PRIMARY KEY (name, version)
);

-- One bucket per rate-limited connection: `tokens` as of `refilled_at` (ms).
CREATE TABLE rate_buckets (
    connection  text COLLATE "C" PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_at bigint NOT NULL
);

-- A replay job runs on one node at a time: the node (`claimed_by`, an id
-- each process makes at start) holds it until `claimed_until` (ms) and
-- renews that while it works; a job whose node died is taken over by
-- another once that time has passed.
ALTER TABLE replays ADD COLUMN claimed_by text, ADD COLUMN claimed_until bigint;
