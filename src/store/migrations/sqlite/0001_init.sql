-- hookflow schema 0001: deliveries, dedupe, runs, attempts, heartbeat.
--
-- Portable on purpose (PostgreSQL comes next): ids are ULID text, times are
-- INTEGER unix milliseconds, JSON is TEXT, bodies are BLOB (bytea there).
-- Applied once, inside a transaction, and recorded in schema_migrations.

-- Every request that reached a source: accepted (with body, headers and the
-- match trace) or rejected (401/403/413/429, without body or headers).
-- Duplicates are not stored.
CREATE TABLE deliveries (
    id            TEXT    PRIMARY KEY,
    source        TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_status INTEGER,
    reject_reason TEXT,
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    query         TEXT,
    headers       TEXT    NOT NULL DEFAULT '[]',   -- JSON [[name, value], ...]
    remote_addr   TEXT    NOT NULL,
    event         TEXT    NOT NULL DEFAULT '',
    dedupe_key    TEXT,
    body          BLOB,
    matched       TEXT    NOT NULL DEFAULT '[]',   -- JSON [rule, ...]
    trace         TEXT    NOT NULL DEFAULT 'null'  -- JSON match trace
);

-- Listing newest first, optionally by source, paginated on (received_at, id).
CREATE INDEX deliveries_received_at ON deliveries (received_at, id);
CREATE INDEX deliveries_source_received_at ON deliveries (source, received_at, id);

-- First accepted delivery per (source, dedupe key); an entry older than the
-- window is replaced by the next delivery with that key.
CREATE TABLE dedupe (
    source        TEXT    NOT NULL,
    dedupe_key    TEXT    NOT NULL,
    delivery_id   TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    first_seen_at INTEGER NOT NULL,
    PRIMARY KEY (source, dedupe_key)
);
CREATE INDEX dedupe_delivery ON dedupe (delivery_id);
CREATE INDEX dedupe_first_seen_at ON dedupe (first_seen_at);

-- The queue and the run log in one table: a run is queued with the delivery
-- and moves queued -> running -> succeeded | failed | cancelled. Workers take
-- due runs (next_attempt_at <= now) and hold them by lease, so a run whose
-- worker died is taken again after lease_expires_at.
CREATE TABLE runs (
    id               TEXT    PRIMARY KEY,
    delivery_id      TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    rule             TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    next_step        INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    error            TEXT,
    definition       TEXT    NOT NULL,                -- JSON snapshot of the rule's steps
    outputs          TEXT    NOT NULL DEFAULT '{}'    -- JSON steps.<id> outputs so far
);
CREATE INDEX runs_delivery ON runs (delivery_id, created_at);
CREATE INDEX runs_created_at ON runs (created_at);
CREATE INDEX runs_rule_created_at ON runs (rule, created_at);
-- Only unfinished runs: what the workers scan for due work (and the queue
-- depth) stays small however long the log grows.
CREATE INDEX runs_due ON runs (next_attempt_at) WHERE status IN ('queued', 'running');
-- `runs --status failed`. Partial on purpose: a plain (status, ...) index
-- would be chosen over runs_due for the workers' due-run query.
CREATE INDEX runs_finished ON runs (status, created_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- One row per try of a step (SPEC §5), bodies and output truncated by the
-- engine to 64 KiB, secrets redacted from the request summary.
CREATE TABLE attempts (
    id          TEXT    PRIMARY KEY,
    run_id      TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index  INTEGER NOT NULL,
    step_id     TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER,
    request     TEXT,      -- JSON summary: method, url, ...
    status_code INTEGER,
    response    TEXT,
    stdout      TEXT,
    stderr      TEXT,
    error       TEXT,
    outcome     TEXT    NOT NULL
);
CREATE INDEX attempts_run ON attempts (run_id, step_index, attempt);

-- Written by /readyz to prove the database accepts commits.
CREATE TABLE heartbeat (
    node    TEXT    PRIMARY KEY,
    beat_at INTEGER NOT NULL
);
