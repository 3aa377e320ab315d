-- hookflow PostgreSQL schema 0006: delivery bodies, headers and traces
-- compressed with lz4 instead of pglz when PostgreSQL stores them
-- compressed (rows over ~2 KB). Ingest spent a tenth of its PostgreSQL CPU
-- in pglz (docs/PERFORMANCE.md). Only new values change; reading either is
-- transparent, so the previous release keeps working against it. Skipped on
-- a server built without lz4.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE deliveries
            ALTER COLUMN body SET COMPRESSION lz4,
            ALTER COLUMN headers SET COMPRESSION lz4,
            ALTER COLUMN trace SET COMPRESSION lz4;
    END IF;
END
$$;
