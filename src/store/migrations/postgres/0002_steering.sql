-- hookflow PostgreSQL schema 0002: what SQLite's 0005 and 0006 added.
-- Both are additions (expand only): a node of the previous release keeps
-- working against this schema.

-- Attempts made at `next_step` before the last manual retry: numbering
-- goes on, the retry policy counts from here. 0 when the run moves on.
ALTER TABLE runs ADD COLUMN attempt_base BIGINT NOT NULL DEFAULT 0;

-- The audit trail of operators' actions (SPEC §5), pruned with the log.
CREATE TABLE operator_actions (
    id      TEXT   PRIMARY KEY,
    at      BIGINT NOT NULL,
    action  TEXT   NOT NULL,
    target  TEXT,
    via     TEXT   NOT NULL,
    client  TEXT   NOT NULL,
    detail  TEXT   NOT NULL DEFAULT 'null'
);
CREATE INDEX operator_actions_target ON operator_actions (target, at);
CREATE INDEX operator_actions_at ON operator_actions (at);
