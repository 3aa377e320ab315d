-- hookflow schema 0006: the audit trail of operators' actions (SPEC §5).

-- One row per replay, retry, cancel or reload an operator started: what,
-- on which delivery or run, through what (cli, api, ui, signal), from
-- where, and when. Pruned with the run log (by age).
CREATE TABLE operator_actions (
    id      TEXT    PRIMARY KEY,
    at      INTEGER NOT NULL,
    action  TEXT    NOT NULL,                -- replay | retry | cancel | reload
    target  TEXT,                            -- delivery or run id; NULL for reload
    via     TEXT    NOT NULL,                -- cli | api | ui | signal
    client  TEXT    NOT NULL,                -- client address, or user@host for the CLI
    detail  TEXT    NOT NULL DEFAULT 'null'  -- JSON: what it did (runs queued, outcome)
);
CREATE INDEX operator_actions_target ON operator_actions (target, at);
CREATE INDEX operator_actions_at ON operator_actions (at);
