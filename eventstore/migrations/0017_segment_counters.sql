-- Segment counters (SPEC §6 /v1/segments/summary, §9 heat map): customers
-- and net amount per (dimension, value), maintained in the transaction that
-- writes customer_projections, so the summary reads a few hundred rows
-- instead of aggregating every customer.
--
-- A dimension is a label (value_tier, activity, need_orientation,
-- lifecycle), 'segment' (value_tier/activity: the heat map's cells), 'tag'
-- (one row per tag a customer has) or 'total' (value ''). To count a new
-- figure (a population share, a distribution), add its keys to
-- segment_counter_keys and recount (see the end of this file): the
-- triggers, the rebuild and the recount all go through that one function.
--
-- shard spreads the rows over 16 copies so that concurrent projector
-- transactions never wait for each other's counter rows: each takes a free
-- shard with a transaction-level advisory lock; readers sum the shards.
CREATE TABLE segment_counters (
    dimension  text   NOT NULL,
    value      text   NOT NULL,
    shard      int    NOT NULL,
    customers  bigint NOT NULL,
    net_amount bigint NOT NULL,
    PRIMARY KEY (dimension, value, shard)
);

-- The (dimension, value) keys a customer row counts under: two parallel
-- arrays, one element per key (a plain SELECT, so PostgreSQL inlines it).
CREATE FUNCTION segment_counter_keys(p customer_projections)
RETURNS TABLE (dimension text, value text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT * FROM unnest(
        ARRAY['total', 'value_tier', 'activity', 'need_orientation', 'lifecycle', 'segment']
            || array_fill('tag'::text, ARRAY[cardinality(p.tags)]),
        ARRAY['', p.value_tier, p.activity, p.need_orientation, p.lifecycle, p.value_tier || '/' || p.activity]
            || p.tags)
$$;

-- segment_counter_shard locks and returns a shard no other transaction
-- writes now: the first free one from this backend's own (a transaction
-- that already holds one gets it again: advisory locks are re-entrant).
-- With every shard taken it waits for its own.
CREATE FUNCTION segment_counter_shard() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    first int := pg_backend_pid() % 16;
BEGIN
    FOR i IN 0..15 LOOP
        IF pg_try_advisory_xact_lock(5363, (first + i) % 16) THEN
            RETURN (first + i) % 16;
        END IF;
    END LOOP;
    PERFORM pg_advisory_xact_lock(5363, first);
    RETURN first;
END
$$;

-- segment_counters_apply adds the statement's rows (+1 each) and removes
-- the rows they replaced (−1 each), one upsert per statement; keys whose
-- count and amount do not change are not written.
CREATE FUNCTION segment_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s int := segment_counter_shard();
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO segment_counters AS c (dimension, value, shard, customers, net_amount)
        SELECT k.dimension, k.value, s, count(*), sum(n.net_amount)
        FROM new_rows n, LATERAL segment_counter_keys(n) k
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (dimension, value, shard) DO UPDATE
            SET customers = c.customers + excluded.customers, net_amount = c.net_amount + excluded.net_amount;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO segment_counters AS c (dimension, value, shard, customers, net_amount)
        SELECT d.dimension, d.value, s, sum(d.n), sum(d.net) FROM (
            SELECT k.dimension, k.value, 1 AS n, n.net_amount AS net FROM new_rows n, LATERAL segment_counter_keys(n) k
            UNION ALL
            SELECT k.dimension, k.value, -1, -o.net_amount FROM old_rows o, LATERAL segment_counter_keys(o) k) d
        GROUP BY 1, 2 HAVING sum(d.n) <> 0 OR sum(d.net) <> 0 ORDER BY 1, 2
        ON CONFLICT (dimension, value, shard) DO UPDATE
            SET customers = c.customers + excluded.customers, net_amount = c.net_amount + excluded.net_amount;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO segment_counters AS c (dimension, value, shard, customers, net_amount)
        SELECT k.dimension, k.value, s, -count(*), -sum(o.net_amount)
        FROM old_rows o, LATERAL segment_counter_keys(o) k
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (dimension, value, shard) DO UPDATE
            SET customers = c.customers + excluded.customers, net_amount = c.net_amount + excluded.net_amount;
    ELSE -- TRUNCATE (the rebuild empties the table and refills it)
        DELETE FROM segment_counters;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER segment_counters_insert AFTER INSERT ON customer_projections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_counters_apply();
CREATE TRIGGER segment_counters_update AFTER UPDATE ON customer_projections
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_counters_apply();
CREATE TRIGGER segment_counters_delete AFTER DELETE ON customer_projections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION segment_counters_apply();
CREATE TRIGGER segment_counters_truncate AFTER TRUNCATE ON customer_projections
    FOR EACH STATEMENT EXECUTE FUNCTION segment_counters_apply();

-- The rows already there: a full count, once (the table is locked so no
-- projector writes between the count and the triggers taking over).
LOCK TABLE customer_projections IN SHARE MODE;
INSERT INTO segment_counters (dimension, value, shard, customers, net_amount)
SELECT k.dimension, k.value, 0, count(*), sum(p.net_amount)
FROM customer_projections p, LATERAL segment_counter_keys(p) k
GROUP BY 1, 2;
