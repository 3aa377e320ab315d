-- hookflow schema 0002: per-rule concurrency and the workers' lease queries.

-- The rule's `concurrency` when the run was queued (NULL: unlimited). A
-- queued run starts only while fewer runs of its rule are `running`; a run
-- waiting for a retry stays `running` and keeps its slot.
ALTER TABLE runs ADD COLUMN concurrency INTEGER;

-- Counting a rule's runs in progress when leasing its next queued run.
CREATE INDEX runs_running_rule ON runs (rule) WHERE status = 'running';

-- A node's leases: renewed (heartbeat) and released (shutdown) in one
-- statement each.
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL;

-- Same purpose as 0001's runs_finished, cheaper to keep up: SQLite checks a
-- three-value `IN (...)` partial-index predicate through a temporary b-tree
-- on every write of `status`, twice per run, and those writes are the
-- workers' hot path. A finished run (and only one) has `finished_at`; a
-- query for finished runs adds `finished_at IS NOT NULL` to use it.
DROP INDEX runs_finished;
CREATE INDEX runs_finished ON runs (status, created_at) WHERE finished_at IS NOT NULL;
