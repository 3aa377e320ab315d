-- hookflow schema 0004: steering runs (cancel, lost workers).

-- When an operator asked to cancel a run a worker held then: the worker
-- sees it at its next lease heartbeat (or step record) and stops the run.
-- A run with a mark and no live lease is cancelled by the store directly.
ALTER TABLE runs ADD COLUMN cancel_requested_at INTEGER;

-- How many times the run's lease expired (its worker was lost: a panic, a
-- dead node) since its last recorded step. At three the run fails
-- ("worker lost") instead of being run again: a step that kills its worker
-- is not retried for ever.
ALTER TABLE runs ADD COLUMN lease_expiries INTEGER NOT NULL DEFAULT 0;
