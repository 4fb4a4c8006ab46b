-- The event log: the source of truth. Rows are only ever inserted.
CREATE TABLE events (
    -- Global position, assigned under the log_head row lock, so positions
    -- increase in commit order and a reader tailing "position > checkpoint"
    -- can never skip an event that commits late.
    position    bigint      PRIMARY KEY,
    stream_id   uuid        NOT NULL,          -- UUIDv5 of the customer code
    customer    text        NOT NULL,
    version     bigint      NOT NULL CHECK (version > 0),
    event_id    uuid        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    -- json, not jsonb: json keeps the exact bytes that the hash chain covers.
    data        json        NOT NULL,
    metadata    json        NOT NULL,
    -- sha256 over the previous event's hash in the stream and this event.
    hash        bytea       NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- The head of the log: the last position and recorded_at handed out. Its row
-- lock serialises appends (group commit makes that cheap: one transaction
-- carries many requests).
CREATE TABLE log_head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    position    bigint      NOT NULL,
    recorded_at timestamptz
);
INSERT INTO log_head (singleton, position) VALUES (true, 0);

-- Per-stream write model: what the ingestion rules need from the past.
CREATE TABLE streams (
    stream_id   uuid        PRIMARY KEY,
    customer    text        NOT NULL,
    version     bigint      NOT NULL,
    last_hash   bytea       NOT NULL,
    registered  boolean     NOT NULL DEFAULT false,
    erased      boolean     NOT NULL DEFAULT false
);

-- Orders per stream, for "order_id unique per customer" and "refunds never
-- exceed the order amount". Amounts in fen.
CREATE TABLE stream_orders (
    stream_id   uuid        NOT NULL,
    order_id    text        NOT NULL,
    amount      bigint      NOT NULL CHECK (amount > 0),
    refunded    bigint      NOT NULL CHECK (refunded >= 0 AND refunded <= amount),
    PRIMARY KEY (stream_id, order_id)
);

-- Per-customer data keys, wrapped by the master key. Setting wrapped_key to
-- NULL destroys the key: the customer's encrypted personal data in the log
-- can never be decrypted again (crypto-shredding).
CREATE TABLE customer_keys (
    stream_id     uuid        PRIMARY KEY,
    wrapped_key   bytea,
    master_key_id text        NOT NULL,
    created_at    timestamptz NOT NULL,
    destroyed_at  timestamptz,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- How far publication to JetStream has come (the outbox checkpoint).
CREATE TABLE publication_checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The log is append-only in fact, not only by convention.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
