-- Per-day deltas of the contribution trend (SPEC §9 GET /v1/segments/trend):
-- for each label (built-in or operator-defined, never a tag), value and day
-- in the rules' time zone, how the customers holding that value and their
-- net amount changed that day. A point of the trend is the cumulative sum
-- of the days up to its instant, so the trend reads a few thousand rows
-- instead of replaying the label history and the orders of every customer.
--
-- The projector, the scheduler and the rebuild write them in the
-- transaction that writes the label changes (projections/trenddays.go),
-- sharded as segment_counters are (segment_counter_shard): concurrent
-- transactions never wait for each other's rows. net_amount is numeric: a
-- day's sum over many customers can exceed bigint.
CREATE TABLE segment_trend_days (
    label      text    NOT NULL,
    day        date    NOT NULL,
    value      text    NOT NULL,
    shard      int     NOT NULL,
    customers  bigint  NOT NULL,
    net_amount numeric NOT NULL,
    PRIMARY KEY (label, day, value, shard)
);

-- segment_trend_recount counts the days again from the label history and
-- the recorded orders and refunds, in time zone tz: a customer holds, at an
-- instant, the value of its latest change at or before it, with the net
-- amount of its orders and refunds recorded by then. A change moves the
-- customer with the net amount it had just before the change's instant; an
-- order or refund at an instant adds to the value held at that instant
-- (changes at the same instant come first).
CREATE FUNCTION segment_trend_recount(tz text) RETURNS void LANGUAGE sql AS $$
    DELETE FROM segment_trend_days;
    WITH changes AS (
        SELECT stream_id, label, at, 0 AS kind, seq, from_value, to_value, 0::numeric AS amount
        FROM label_changes WHERE label NOT LIKE 'tag:%'),
    amounts AS (
        SELECT l.stream_id, l.label, e.recorded_at AS at, 1 AS kind, e.version AS seq, NULL::text AS from_value, NULL::text AS to_value,
            CASE e.type WHEN 'OrderPlaced' THEN 1 ELSE -1 END * round((e.data->>'amount')::numeric * 100) AS amount
        FROM events e JOIN (SELECT DISTINCT stream_id, label FROM changes) l ON l.stream_id = e.stream_id
        WHERE e.type IN ('OrderPlaced', 'OrderRefunded')),
    timeline AS (
        SELECT t.*,
            coalesce(sum(t.amount) OVER w - t.amount, 0) AS net_before,
            count(t.to_value) OVER w AS held
        FROM (SELECT * FROM changes UNION ALL SELECT * FROM amounts) t
        WINDOW w AS (PARTITION BY t.stream_id, t.label ORDER BY t.at, t.kind, t.seq ROWS UNBOUNDED PRECEDING)),
    valued AS (
        SELECT t.*, first_value(t.to_value) OVER (PARTITION BY t.stream_id, t.label, t.held ORDER BY t.at, t.kind, t.seq) AS holding
        FROM timeline t),
    deltas AS (
        SELECT label, from_value AS value, at, -1 AS customers, -net_before AS net FROM valued WHERE kind = 0 AND from_value IS NOT NULL
        UNION ALL
        SELECT label, to_value, at, 1, net_before FROM valued WHERE kind = 0
        UNION ALL
        SELECT label, holding, at, 0, amount FROM valued WHERE kind = 1 AND holding IS NOT NULL)
    INSERT INTO segment_trend_days (label, day, value, shard, customers, net_amount)
    SELECT label, (at AT TIME ZONE tz)::date, value, 0, sum(customers), sum(net)
    FROM deltas GROUP BY 1, 2, 3 HAVING sum(customers) <> 0 OR sum(net) <> 0;
$$;

-- The history already there, counted once in the time zone of the latest
-- recorded rule version that states one (the default rules' otherwise).
-- The projector tables are locked so no projector writes between the count
-- and the projector taking over.
LOCK TABLE customer_projections, label_changes IN SHARE MODE;
SELECT segment_trend_recount(coalesce(
    (SELECT definition::json->>'TimeZone' FROM rule_versions
     WHERE definition IS NOT NULL AND definition::json->>'TimeZone' IS NOT NULL ORDER BY version DESC LIMIT 1),
    'Asia/Shanghai'));
