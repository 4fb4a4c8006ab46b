-- Keyed blind indexes of customers' normalised phone, email and legal name
-- (SPEC §10 duplicates): an HMAC-SHA256 of each value under the blind-index
-- key, so equal values are found without decrypting any personal data, and
-- nobody without the key can test a guessed phone number against the table.

-- The blind-index key: one random key for the log, wrapped by a master key
-- (like a data key; rotation re-wraps it, the digests stay valid). One row.
CREATE TABLE blind_index_key (
    id            boolean     PRIMARY KEY DEFAULT true CHECK (id),
    wrapped_key   bytea       NOT NULL,
    master_key_id text        NOT NULL,
    created_at    timestamptz NOT NULL
);

-- One row per customer and value it ever stated (registration or profile
-- change); position is the event that first stated it, so the later of two
-- customers sharing a digest is the possible duplicate. Erasure deletes the
-- customer's rows.
CREATE TABLE customer_blind_indexes (
    digest    bytea  NOT NULL,
    stream_id uuid   NOT NULL,
    customer  text   NOT NULL,
    field     text   NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (digest, stream_id)
);
CREATE INDEX customer_blind_indexes_stream ON customer_blind_indexes (stream_id);
