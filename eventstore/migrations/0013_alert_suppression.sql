-- Alerts recorded but not delivered (SPEC §10): raised by imported history
-- whose deadline had passed before the import, or escalating such an alert.
-- Notifiers skip rows with delivery_suppressed; suppression_reason says why
-- (domain.SuppressedDueBeforeImport, domain.SuppressedEscalation).
ALTER TABLE alerts
    ADD COLUMN delivery_suppressed boolean NOT NULL DEFAULT false,
    ADD COLUMN suppression_reason  text;
