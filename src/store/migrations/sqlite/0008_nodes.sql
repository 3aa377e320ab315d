-- hookflow schema 0008: the nodes registry (SPEC §9).

-- One row per running `serve` process: who it is, its roles and the hash
-- of the rule files it runs, written at start and at every heartbeat
-- (every few seconds). A row whose heartbeat stopped long ago is deleted
-- by the next node to beat; a node stopping gracefully deletes its own.
CREATE TABLE nodes (
    id            TEXT    PRIMARY KEY,           -- hostname-ULID, new per start
    version       TEXT    NOT NULL,
    listen        TEXT    NOT NULL,              -- the webhook listener's address
    admin_listen  TEXT,                          -- the admin listener's, if any
    receive       INTEGER NOT NULL,              -- 1: serves source paths
    workers       INTEGER NOT NULL,              -- 0: receive only
    rule_set_hash TEXT    NOT NULL,              -- SHA-256 of its rule files
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);
CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
