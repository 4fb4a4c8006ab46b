-- Positions come from a sequence rather than from log_head under its row
-- lock (SPEC §12): appends of different customers no longer wait for each
-- other. Positions are unique, increase along each customer's stream (they
-- are drawn after the stream's row lock) and may have gaps; readers that
-- must not pass a position committed late wait until it is settled (see
-- eventstore/settle.go).
CREATE SEQUENCE events_position_seq AS bigint;
SELECT setval('events_position_seq', max(position)) FROM events HAVING max(position) > 0;

-- recorded_at never decreases along a customer's stream: each stream keeps
-- its last one. Streams recorded earlier start from the log's last one,
-- which was never smaller.
ALTER TABLE streams ADD COLUMN recorded_at timestamptz;
UPDATE streams SET recorded_at = (SELECT recorded_at FROM log_head);

-- log_head keeps only the active master key; its position and recorded_at
-- are no longer maintained.
ALTER TABLE log_head DROP COLUMN position, DROP COLUMN recorded_at;
