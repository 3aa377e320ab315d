-- hookflow schema 0012: the rules a delivery's event excluded (SPEC §4, by
-- name only) stored once per distinct list instead of in every delivery's
-- trace. Under one rule set every delivery of a source and event excludes
-- the same rules: at 10,000 rules that list is ~100 names, ~600 bytes per
-- delivery written, checkpointed and kept (issue 17). A delivery names its
-- list by `excluded_ref`, the SHA-256 (first 16 bytes, hex) of the list's
-- JSON; rows stored before keep theirs inline in `trace` and read as before.
-- Lists are few (sources x event patterns x rule-set versions) and are
-- never pruned.
CREATE TABLE trace_excluded (
    hash  TEXT PRIMARY KEY,
    names TEXT NOT NULL  -- JSON ["rule", ...]
) WITHOUT ROWID;
ALTER TABLE deliveries ADD COLUMN excluded_ref TEXT;
