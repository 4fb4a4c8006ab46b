-- Alerts (SPEC §5), written by the projector and the scheduler in the same
-- transactions as the label changes that raise them. Rebuilt with the other
-- read models.
CREATE TABLE alerts (
    alert_id     uuid        PRIMARY KEY,  -- deterministic: customer, kind, change instant
    stream_id    uuid        NOT NULL,
    customer     text        NOT NULL,
    kind         text        NOT NULL,
    from_value   text        NOT NULL,
    to_value     text        NOT NULL,
    reason       text        NOT NULL,
    reason_en    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    due_at       timestamptz,
    owner        text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('open', 'overdue', 'resolved')),
    resolved_at  timestamptz,
    resolved_by  uuid,
    playbook     text        NOT NULL,
    rule_version integer     NOT NULL,
    escalates    uuid
);
-- At most one unresolved alert per customer and kind is the domain's rule
-- (domain.Projection.raise); a batch may resolve one and raise the next.
CREATE INDEX alerts_customer_kind ON alerts (stream_id, kind, status);
-- Newest first, with keyset pagination on (created_at, alert_id).
CREATE INDEX alerts_newest ON alerts (created_at DESC, alert_id DESC);
CREATE INDEX alerts_owner ON alerts (owner, status, created_at DESC);
CREATE INDEX alerts_customer ON alerts (stream_id, created_at DESC);
