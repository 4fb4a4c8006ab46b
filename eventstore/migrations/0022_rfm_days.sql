-- RFM quintiles of SPEC §11, owned by projections (projections/rfm.go,
-- docs/ANALYTICS.md "Recorded days").
--
-- Columns the customer's facts give: its order count, RFM segment and NPS
-- category (empty when none). Existing rows have 0 / '' until their next
-- update (or segmentd rebuild).
ALTER TABLE customer_projections
    ADD COLUMN orders      int  NOT NULL DEFAULT 0,
    ADD COLUMN rfm_segment text NOT NULL DEFAULT '',
    ADD COLUMN nps         text NOT NULL DEFAULT '';

-- A day's boundaries are located in the histograms, then refined inside a
-- bucket by these; the customers whose scores a day changes are selected by
-- range scans of them between the previous and the new boundaries.
CREATE INDEX customer_projections_rfm_r ON customer_projections (last_order_at) WHERE orders > 0;
CREATE INDEX customer_projections_rfm_f ON customer_projections (orders) WHERE orders > 0;
CREATE INDEX customer_projections_rfm_m ON customer_projections (net_amount) WHERE orders > 0;

-- The recorded days: each day's quintile boundaries, recorded once (the
-- first recorder wins the unique day; the others read its row) and never
-- recomputed, so live projection, as_of and rebuild score alike. Boundaries
-- are the values at the 20/40/60/80 % positions: recency as the last order
-- instant in Unix microseconds, frequency as an order count, monetary as a
-- net amount in fen. marked: the customers whose scores the day changes
-- have had their next_at brought forward to at.
CREATE TABLE rfm_days (
    seq         bigint      PRIMARY KEY,
    day         date        NOT NULL UNIQUE,
    at          timestamptz NOT NULL UNIQUE,
    time_zone   text        NOT NULL,
    recency     bigint[]    NOT NULL,
    frequency   bigint[]    NOT NULL,
    monetary    bigint[]    NOT NULL,
    customers   bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    marked      boolean     NOT NULL DEFAULT false
);

-- The distributions the boundaries are taken from: customers with orders
-- per (dimension, bucket), kept like the segment counters (0017) by
-- statement triggers in the transaction that writes customer_projections,
-- in the same 16 shards. Buckets (domain.RFMDimension.Bucket): recency by
-- UTC day of the last order, frequency by order count, monetary by the net
-- amount's three leading digits (below 1,000 fen by value).
CREATE TABLE rfm_histograms (
    dimension "char" NOT NULL,
    bucket    bigint NOT NULL,
    shard     int    NOT NULL,
    customers bigint NOT NULL,
    PRIMARY KEY (dimension, bucket, shard)
);

CREATE FUNCTION rfm_histogram_keys(p customer_projections)
RETURNS TABLE (dimension "char", bucket bigint) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT * FROM unnest(ARRAY['r', 'f', 'm']::"char"[], ARRAY[
        floor(extract(epoch FROM p.last_order_at) / 86400)::bigint,
        p.orders::bigint,
        CASE WHEN p.net_amount >= 1000
            THEN p.net_amount - p.net_amount % (10 ^ (length(p.net_amount::text) - 3))::bigint
            ELSE p.net_amount END])
    WHERE p.orders > 0
$$;

-- One function per statement kind: a PL/pgSQL function names only the
-- transition tables its trigger has.
CREATE FUNCTION rfm_histograms_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rfm_histograms AS h (dimension, bucket, shard, customers)
    SELECT d.dimension, d.bucket, segment_counter_shard(), sum(d.n) FROM (
        SELECT k.dimension, k.bucket, 1 AS n FROM new_rows n, LATERAL rfm_histogram_keys(n) k
        UNION ALL
        SELECT k.dimension, k.bucket, -1 FROM old_rows o, LATERAL rfm_histogram_keys(o) k) d
    GROUP BY 1, 2 HAVING sum(d.n) <> 0 ORDER BY 1, 2
    ON CONFLICT (dimension, bucket, shard) DO UPDATE SET customers = h.customers + excluded.customers;
    RETURN NULL;
END
$$;

CREATE FUNCTION rfm_histograms_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM rfm_histograms;
    RETURN NULL;
END
$$;

CREATE FUNCTION rfm_histograms_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rfm_histograms AS h (dimension, bucket, shard, customers)
    SELECT k.dimension, k.bucket, segment_counter_shard(), count(*)
    FROM new_rows n, LATERAL rfm_histogram_keys(n) k GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (dimension, bucket, shard) DO UPDATE SET customers = h.customers + excluded.customers;
    RETURN NULL;
END
$$;

CREATE FUNCTION rfm_histograms_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rfm_histograms AS h (dimension, bucket, shard, customers)
    SELECT k.dimension, k.bucket, segment_counter_shard(), -count(*)
    FROM old_rows o, LATERAL rfm_histogram_keys(o) k GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (dimension, bucket, shard) DO UPDATE SET customers = h.customers + excluded.customers;
    RETURN NULL;
END
$$;

CREATE TRIGGER rfm_histograms_insert AFTER INSERT ON customer_projections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rfm_histograms_insert();
CREATE TRIGGER rfm_histograms_update AFTER UPDATE ON customer_projections
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION rfm_histograms_update();
CREATE TRIGGER rfm_histograms_delete AFTER DELETE ON customer_projections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION rfm_histograms_delete();
CREATE TRIGGER rfm_histograms_truncate AFTER TRUNCATE ON customer_projections
    FOR EACH STATEMENT EXECUTE FUNCTION rfm_histograms_truncate();

-- The population figures of the summary (SPEC §11): customers with orders
-- ('buyers'), with at least two ('repurchase'), per NPS category ('nps')
-- and per RFM segment ('rfm_segment'), beside the keys of 0017 and 0019.
CREATE OR REPLACE FUNCTION segment_counter_keys(p customer_projections)
RETURNS TABLE (dimension text, value text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT * FROM unnest(
        ARRAY['total', 'value_tier', 'activity', 'need_orientation', 'lifecycle', 'segment']
            || array_fill('tag'::text, ARRAY[cardinality(p.tags)])
            || array_fill('dim'::text, ARRAY[cardinality(p.dims)])
            || CASE WHEN p.orders > 0 THEN ARRAY['buyers'] ELSE '{}'::text[] END
            || CASE WHEN p.orders > 1 THEN ARRAY['repurchase'] ELSE '{}'::text[] END
            || CASE WHEN p.nps <> '' THEN ARRAY['nps'] ELSE '{}'::text[] END
            || CASE WHEN p.rfm_segment <> '' THEN ARRAY['rfm_segment'] ELSE '{}'::text[] END,
        ARRAY['', p.value_tier, p.activity, p.need_orientation, p.lifecycle, p.value_tier || '/' || p.activity]
            || p.tags || p.dims
            || CASE WHEN p.orders > 0 THEN ARRAY[''] ELSE '{}'::text[] END
            || CASE WHEN p.orders > 1 THEN ARRAY[''] ELSE '{}'::text[] END
            || CASE WHEN p.nps <> '' THEN ARRAY[p.nps] ELSE '{}'::text[] END
            || CASE WHEN p.rfm_segment <> '' THEN ARRAY[p.rfm_segment] ELSE '{}'::text[] END)
$$;

LOCK TABLE customer_projections IN SHARE MODE;
DELETE FROM segment_counters;
INSERT INTO segment_counters (dimension, value, shard, customers, net_amount)
SELECT k.dimension, k.value, 0, count(*), sum(p.net_amount)
FROM customer_projections p, LATERAL segment_counter_keys(p) k
GROUP BY 1, 2;
INSERT INTO rfm_histograms (dimension, bucket, shard, customers)
SELECT k.dimension, k.bucket, 0, count(*)
FROM customer_projections p, LATERAL rfm_histogram_keys(p) k
GROUP BY 1, 2;
