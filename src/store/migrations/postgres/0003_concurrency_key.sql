-- hookflow PostgreSQL schema 0003: keyed concurrency (SQLite's 0007). An
-- addition only: the previous release keeps working against it.

-- The rendered key of a run of a rule with keyed concurrency (NULL: the
-- rule's limit is for all its runs).
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;

-- Counting a rule's runs in progress per key when leasing.
CREATE INDEX runs_running_rule_key ON runs (rule, concurrency_key) WHERE status = 'running';
