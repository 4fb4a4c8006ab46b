-- The customer list of SPEC §9 (GET /v1/customers): newest label change
-- first, keyset-paginated on (changed_at, stream_id), filtered by any one
-- label, tag, owner or a code/name prefix, without scanning all customers.
--
-- changed_at: the instant of the customer's latest label or tag change.
-- last_order_at: for the list's card. name: the profile name as the
-- projection holds it (sealed for individuals, opened and masked by the
-- API); search_name: the name when it is not personal data (enterprises),
-- else NULL, so a search never matches a person's name.
ALTER TABLE customer_projections
    ADD COLUMN changed_at    timestamptz,
    ADD COLUMN last_order_at timestamptz,
    ADD COLUMN name          text NOT NULL DEFAULT '',
    ADD COLUMN search_name   text;

-- Existing rows: the latest change of their history; the other columns are
-- filled in at the customer's next update (or by segmentd rebuild).
UPDATE customer_projections p SET changed_at = coalesce(
    (SELECT max(c.at) FROM label_changes c WHERE c.stream_id = p.stream_id), p.evaluated_at);
ALTER TABLE customer_projections ALTER COLUMN changed_at SET NOT NULL;

CREATE INDEX customer_projections_changed ON customer_projections (changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_value_tier ON customer_projections (value_tier, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_activity ON customer_projections (activity, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_need ON customer_projections (need_orientation, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_lifecycle ON customer_projections (lifecycle, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_segment ON customer_projections (value_tier, activity, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_owner ON customer_projections (owner, changed_at DESC, stream_id DESC);
CREATE INDEX customer_projections_tags ON customer_projections USING gin (tags);
CREATE INDEX customer_projections_code_prefix ON customer_projections (customer COLLATE "C");
CREATE INDEX customer_projections_name_prefix ON customer_projections (search_name COLLATE "C") WHERE search_name IS NOT NULL;
