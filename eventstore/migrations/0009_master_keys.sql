-- The master key the log wraps new data keys with (its id, a key check value,
-- never the key). Appends read it under the log_head lock, so after a
-- rotation activates a key no process wraps with an older one.
ALTER TABLE log_head ADD COLUMN master_key_id text;

-- Every master key the log has used: a key is retired once no wrapped data
-- key references it (rotation re-wrapped them all). A process must hold every
-- key that is not retired.
CREATE TABLE master_keys (
    key_id       text        PRIMARY KEY,
    activated_at timestamptz NOT NULL,
    retired_at   timestamptz
);

INSERT INTO master_keys (key_id, activated_at)
SELECT master_key_id, min(created_at) FROM customer_keys GROUP BY master_key_id;

UPDATE master_keys m SET retired_at = now()
WHERE NOT EXISTS (SELECT 1 FROM customer_keys k WHERE k.master_key_id = m.key_id AND k.wrapped_key IS NOT NULL);

UPDATE log_head SET master_key_id = (SELECT key_id FROM master_keys ORDER BY activated_at DESC LIMIT 1);
UPDATE master_keys SET retired_at = NULL WHERE key_id = (SELECT master_key_id FROM log_head);
