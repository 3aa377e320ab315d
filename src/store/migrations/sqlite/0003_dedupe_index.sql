-- hookflow schema 0003: dedupe from the deliveries themselves.
--
-- Duplicates are never stored, so the newest accepted delivery with a given
-- (source, dedupe key) is the first one of the current window: one index
-- over `deliveries` answers what the `dedupe` table did. Every accept
-- wrote that table's row and its three b-trees (table, primary key, two
-- indexes); under load those pages were a third of each commit's WAL
-- frames. Expiry now follows retention: a key is remembered as long as its
-- delivery is kept.
CREATE INDEX deliveries_dedupe ON deliveries (source, dedupe_key, received_at);
DROP TABLE dedupe;
