-- hookflow PostgreSQL schema 0005: `on_failure` runs (SQLite's 0009). An
-- addition only: the previous release keeps working against it (its runs
-- are all `rule` runs).

-- What a run executes: its rule's `actions` ('rule'), or its rule's
-- `on_failure` steps ('on_failure'): a run of its own, queued in the same
-- transaction that marks a run of the rule `failed`. Its own failure
-- queues nothing.
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'rule';

-- For an `on_failure` run: the failure it reports, JSON
-- {run, step, error, attempts, count} (`null` for a rule's run).
ALTER TABLE runs ADD COLUMN failure TEXT NOT NULL DEFAULT 'null';

-- For an `on_failure` run: when its window opens (its first due time).
ALTER TABLE runs ADD COLUMN window_at BIGINT;

-- The latest `on_failure` run of a rule, found when one of its runs fails.
CREATE INDEX runs_on_failure ON runs (rule, window_at) WHERE kind = 'on_failure';
