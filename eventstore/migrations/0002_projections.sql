-- Read models of the projector (package projections). All of it can be
-- dropped and rebuilt from the event log (segmentd rebuild).

-- One row per customer: the folded state and the current labels.
CREATE TABLE customer_projections (
    stream_id        uuid        PRIMARY KEY,
    customer         text        NOT NULL,
    version          bigint      NOT NULL,  -- last applied event version
    rule_version     integer     NOT NULL,
    evaluated_at     timestamptz NOT NULL,
    -- The next instant at which time alone may change a label (a window
    -- boundary or a rule switch); the scheduler wakes at the earliest.
    next_at          timestamptz,
    projection       jsonb       NOT NULL,  -- domain.Projection, see projections/codec.go
    -- Denormalised for the segment summary and filters.
    value_tier       text        NOT NULL,
    activity         text        NOT NULL,
    need_orientation text        NOT NULL,
    lifecycle        text        NOT NULL,
    tags             text[]      NOT NULL,
    net_amount       bigint      NOT NULL,  -- fen
    owner            text        NOT NULL DEFAULT '',
    changes          bigint      NOT NULL DEFAULT 0  -- label changes recorded so far (next seq)
);
CREATE INDEX customer_projections_next_at ON customer_projections (next_at) WHERE next_at IS NOT NULL;

-- Every label change, oldest first per customer.
CREATE TABLE label_changes (
    id             uuid        PRIMARY KEY,  -- deterministic: same change, same id
    stream_id      uuid        NOT NULL,
    customer       text        NOT NULL,
    seq            bigint      NOT NULL,     -- order within the customer's history
    label          text        NOT NULL,
    from_value     text,
    to_value       text        NOT NULL,
    at             timestamptz NOT NULL,
    cause_kind     text        NOT NULL CHECK (cause_kind IN ('event', 'time', 'rules')),
    cause_event_id uuid,
    rule_version   integer     NOT NULL,
    reason         text        NOT NULL,
    reason_en      text        NOT NULL,
    UNIQUE (stream_id, seq)
);

-- Messages to publish, written in the same transaction as what they announce.
-- The relay gives each a publication position in the order it claims them
-- and publishes in that order; the stream's last message says where it got.
CREATE TABLE outbox (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream   text   NOT NULL,
    subject  text   NOT NULL,
    msg_id   text   NOT NULL,
    payload  bytea  NOT NULL,
    pub_pos  bigint,
    UNIQUE (stream, pub_pos)
);
CREATE INDEX outbox_unclaimed ON outbox (stream, id) WHERE pub_pos IS NULL;

-- Which rule-set versions the projector has applied to every customer.
CREATE TABLE rule_versions (
    version      integer     PRIMARY KEY,
    effective_at timestamptz NOT NULL,
    applied_at   timestamptz
);
