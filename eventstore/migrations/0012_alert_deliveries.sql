-- Deliveries of alerts to people (SPEC §8), written by the notifier
-- (package notify): one row per alert, channel and purpose (the alert, the
-- reminder before its due time, escalations), inserted before the alert's
-- message is acknowledged and updated after every attempt. Not a read
-- model of the log: a rebuild keeps it.
CREATE TABLE alert_deliveries (
    alert_id        uuid        NOT NULL,
    channel         text        NOT NULL,
    purpose         text        NOT NULL CHECK (purpose IN ('alert', 'reminder', 'escalation', 'escalation2')),
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'skipped')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    -- When pending: the instant of the next attempt (or the end of the
    -- lease of an attempt under way).
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz,
    owner           text        NOT NULL,
    -- What to send (notify.Item: the alert as published, customer, purpose).
    item            jsonb       NOT NULL,
    PRIMARY KEY (alert_id, channel, purpose)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (channel, next_attempt_at) WHERE status = 'pending';

-- Daily digests sent, one per owner, channel and local day.
CREATE TABLE alert_digests (
    owner   text        NOT NULL,
    channel text        NOT NULL,
    day     date        NOT NULL,
    sent_at timestamptz NOT NULL,
    PRIMARY KEY (owner, channel, day)
);
