-- The operator-defined labels of the rules (domain/rules_labels.go) as
-- "name=value" entries, for the customer list's filters and the segment
-- summary (SPEC §11). Names are CEL identifiers and values are
-- [A-Za-z0-9_.-], so neither contains '=' or ','. Existing rows have none
-- until their next update (or segmentd rebuild).
ALTER TABLE customer_projections ADD COLUMN dims text[] NOT NULL DEFAULT '{}';
CREATE INDEX customer_projections_dims ON customer_projections USING gin (dims);

-- The segment counters (migrations 0017, 0018) count each customer under
-- ('dim', "name=value") for each of its operator-defined labels too; the
-- counters are recounted once with the new keys.
CREATE OR REPLACE FUNCTION segment_counter_keys(p customer_projections)
RETURNS TABLE (dimension text, value text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT * FROM unnest(
        ARRAY['total', 'value_tier', 'activity', 'need_orientation', 'lifecycle', 'segment']
            || array_fill('tag'::text, ARRAY[cardinality(p.tags)])
            || array_fill('dim'::text, ARRAY[cardinality(p.dims)]),
        ARRAY['', p.value_tier, p.activity, p.need_orientation, p.lifecycle, p.value_tier || '/' || p.activity]
            || p.tags || p.dims)
$$;

LOCK TABLE customer_projections IN SHARE MODE;
DELETE FROM segment_counters;
INSERT INTO segment_counters (dimension, value, shard, customers, net_amount)
SELECT k.dimension, k.value, 0, count(*), sum(p.net_amount)
FROM customer_projections p, LATERAL segment_counter_keys(p) k
GROUP BY 1, 2;
