-- The customer list's tag and operator-label filters (SPEC §9) in list
-- order. The GIN indexes on tags and dims find a tag's customers but not in
-- changed_at order, so a page walked the changed_at index and dropped the
-- customers without the tag: ~100 rows per row kept for a 1 % tag, the whole
-- table for one nobody has. One row per (customer, tag) and (customer,
-- operator-defined label value) with the customer's changed_at makes such a
-- page one backward range scan of (key, changed_at, stream_id).
--
-- key is 'tag:<name>' or 'dim:<name>=<value>' (the dims entry). Kept by
-- statement triggers on customer_projections in the writing transaction —
-- projector, scheduler and rebuild alike — as segment_counters are.
CREATE TABLE customer_list_keys (
    key        text        NOT NULL,
    changed_at timestamptz NOT NULL,
    stream_id  uuid        NOT NULL,
    PRIMARY KEY (key, changed_at, stream_id)
);

CREATE FUNCTION customer_list_keys_of(p customer_projections) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array(SELECT 'tag:' || t FROM unnest(p.tags) t) || array(SELECT 'dim:' || d FROM unnest(p.dims) d)
$$;

-- An update rewrites a customer's keys only when its tags, labels or
-- changed_at moved (most projector updates move none of them).
CREATE FUNCTION customer_list_keys_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO customer_list_keys (key, changed_at, stream_id)
        SELECT k, n.changed_at, n.stream_id FROM new_rows n, unnest(customer_list_keys_of(n)) k
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM customer_list_keys c USING old_rows o JOIN new_rows n ON n.stream_id = o.stream_id, unnest(customer_list_keys_of(o)) k
        WHERE (o.changed_at, o.tags, o.dims) IS DISTINCT FROM (n.changed_at, n.tags, n.dims)
            AND c.key = k AND c.changed_at = o.changed_at AND c.stream_id = o.stream_id;
        INSERT INTO customer_list_keys (key, changed_at, stream_id)
        SELECT k, n.changed_at, n.stream_id FROM old_rows o JOIN new_rows n ON n.stream_id = o.stream_id, unnest(customer_list_keys_of(n)) k
        WHERE (o.changed_at, o.tags, o.dims) IS DISTINCT FROM (n.changed_at, n.tags, n.dims)
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM customer_list_keys c USING old_rows o, unnest(customer_list_keys_of(o)) k
        WHERE c.key = k AND c.changed_at = o.changed_at AND c.stream_id = o.stream_id;
    ELSE -- TRUNCATE (the rebuild empties the table and refills it)
        TRUNCATE customer_list_keys;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER customer_list_keys_insert AFTER INSERT ON customer_projections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION customer_list_keys_apply();
CREATE TRIGGER customer_list_keys_update AFTER UPDATE ON customer_projections
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION customer_list_keys_apply();
CREATE TRIGGER customer_list_keys_delete AFTER DELETE ON customer_projections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION customer_list_keys_apply();
CREATE TRIGGER customer_list_keys_truncate AFTER TRUNCATE ON customer_projections
    FOR EACH STATEMENT EXECUTE FUNCTION customer_list_keys_apply();

LOCK TABLE customer_projections IN SHARE MODE;
INSERT INTO customer_list_keys (key, changed_at, stream_id)
SELECT k, p.changed_at, p.stream_id FROM customer_projections p, unnest(customer_list_keys_of(p)) k;
