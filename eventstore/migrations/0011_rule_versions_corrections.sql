-- Each rule-set version as first loaded: its text as written, its canonical
-- definition and the SHA-256 of that (domain.RuleSet). Once a version is in
-- force (effective_at has passed) the rules file must agree with this record;
-- rows recorded before this migration get theirs on the next start.
ALTER TABLE rule_versions
    ADD COLUMN source      text,
    ADD COLUMN definition  text,
    ADD COLUMN sha256      text,
    ADD COLUMN recorded_at timestamptz;

-- A message a rebuild queued to correct the published history (relayed with
-- the header Segments-Correction: true).
ALTER TABLE outbox ADD COLUMN correction boolean NOT NULL DEFAULT false;
