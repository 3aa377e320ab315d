-- hookflow PostgreSQL schema 0001: the same run log as SQLite's 0001-0004,
-- for many nodes sharing one database (SPEC §9).
--
-- Ids are ULID text, times BIGINT unix milliseconds (lease times come from
-- PostgreSQL's own clock: see src/store/postgres/queue.rs), JSON is TEXT
-- (key order kept, as SQLite does), bodies BYTEA. Applied once, in a
-- transaction, under an advisory lock, and recorded in schema_migrations.

CREATE TABLE deliveries (
    id            TEXT    PRIMARY KEY,
    source        TEXT    NOT NULL,
    received_at   BIGINT  NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_status BIGINT,
    reject_reason TEXT,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    query         TEXT,
    headers       TEXT    NOT NULL DEFAULT '[]',
    remote_addr   TEXT    NOT NULL,
    event         TEXT    NOT NULL DEFAULT '',
    dedupe_key    TEXT,
    body          BYTEA,
    matched       TEXT    NOT NULL DEFAULT '[]',
    trace         TEXT    NOT NULL DEFAULT 'null'
);
CREATE INDEX deliveries_received_at ON deliveries (received_at, id);
CREATE INDEX deliveries_source_received_at ON deliveries (source, received_at, id);

-- The first delivery of each (source, dedupe key) window. Its primary key
-- makes dedupe race-free across nodes: two accepts of one key conflict on
-- it (INSERT ... ON CONFLICT), the second waits for the first to commit.
CREATE TABLE dedupe (
    source        TEXT   NOT NULL,
    dedupe_key    TEXT   NOT NULL,
    delivery_id   TEXT   NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (source, dedupe_key)
);
CREATE INDEX dedupe_delivery ON dedupe (delivery_id);

CREATE TABLE runs (
    id                  TEXT    PRIMARY KEY,
    delivery_id         TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    rule                TEXT    NOT NULL,
    status              TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    next_step           BIGINT  NOT NULL DEFAULT 0,
    attempt             BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT,
    lease_owner         TEXT,
    lease_expires_at    BIGINT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    finished_at         BIGINT,
    error               TEXT,
    definition          TEXT    NOT NULL,
    outputs             TEXT    NOT NULL DEFAULT '{}',
    concurrency         BIGINT,
    cancel_requested_at BIGINT,
    lease_expiries      BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX runs_delivery ON runs (delivery_id, created_at, id);
CREATE INDEX runs_created_at ON runs (created_at, id);
CREATE INDEX runs_rule_created_at ON runs (rule, created_at, id);
-- The queue: only unfinished runs, so the workers' scan stays small.
CREATE INDEX runs_due ON runs (next_attempt_at, id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_running_rule ON runs (rule) WHERE status = 'running';
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX runs_finished ON runs (status, created_at, id) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    id          TEXT   PRIMARY KEY,
    run_id      TEXT   NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index  BIGINT NOT NULL,
    step_id     TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT,
    request     TEXT,
    status_code BIGINT,
    response    TEXT,
    stdout      TEXT,
    stderr      TEXT,
    error       TEXT,
    outcome     TEXT   NOT NULL
);
CREATE INDEX attempts_run ON attempts (run_id, step_index, attempt);

-- Written by /readyz to prove the database accepts commits, one row per
-- node.
CREATE TABLE heartbeat (
    node    TEXT   PRIMARY KEY,
    beat_at BIGINT NOT NULL
);
