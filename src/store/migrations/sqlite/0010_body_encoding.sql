-- hookflow schema 0010: delivery bodies stored compressed (zstd) when that
-- saves bytes. Bytes written per delivery set most of the storage cost: the
-- WAL appends and the checkpoints copying them (docs/PERFORMANCE.md); the
-- 7.6 KB GitHub push is stored in ~1.6 KB. Rows written before keep
-- 'identity' and read as before.
ALTER TABLE deliveries ADD COLUMN body_encoding TEXT NOT NULL DEFAULT 'identity'
    CHECK (body_encoding IN ('identity', 'zstd'));
