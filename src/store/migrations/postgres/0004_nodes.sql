-- hookflow PostgreSQL schema 0004: the nodes registry (SPEC §9; SQLite's
-- 0008). A new table only: the previous release keeps working against it.

-- One row per running `serve` process: who it is, its roles and the hash
-- of the rule files it runs. `started_at` and `heartbeat_at` come from
-- PostgreSQL's clock, never a node's. A row whose heartbeat stopped long
-- ago is deleted by the next node to beat; a node stopping gracefully
-- deletes its own.
CREATE TABLE nodes (
    id            TEXT    PRIMARY KEY,
    version       TEXT    NOT NULL,
    listen        TEXT    NOT NULL,
    admin_listen  TEXT,
    receive       BOOLEAN NOT NULL,
    workers       BIGINT  NOT NULL,
    rule_set_hash TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL
);
CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
