-- The alert lifecycle of SPEC §8: acknowledged, snoozed, superseded and
-- info statuses; how a resolved alert was resolved; which newer alert
-- superseded one; the instants of its acknowledgement, snooze and
-- escalation. Written by the projector like the rest of the row.
ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('open', 'acknowledged', 'snoozed', 'overdue', 'resolved', 'superseded', 'info'));
ALTER TABLE alerts
    ADD COLUMN resolution      text CHECK (resolution IN ('followed_up', 'condition_cleared')),
    ADD COLUMN superseded_by   uuid,
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN snoozed_until   timestamptz,
    ADD COLUMN escalated_at    timestamptz;
