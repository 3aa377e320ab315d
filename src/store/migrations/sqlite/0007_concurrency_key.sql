-- hookflow schema 0007: keyed concurrency (`concurrency: {key, limit}`).

-- The rendered key of a run of a rule with keyed concurrency (NULL: the
-- rule's limit is for all its runs). A queued run starts only while fewer
-- runs of its rule with the same key are `running`.
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;

-- Counting a rule's runs in progress per key when leasing.
CREATE INDEX runs_running_rule_key ON runs (rule, concurrency_key) WHERE status = 'running';
