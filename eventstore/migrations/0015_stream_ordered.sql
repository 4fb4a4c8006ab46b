-- The sum of every order amount a customer ever placed, in fen, so the
-- ingestion rules can bound it (domain.MaxCustomerOrdered) without reading
-- the customer's orders: no per-customer sum downstream can overflow.
-- Streams recorded before the bound existed start from their orders' sum,
-- clamped to bigint (a sum beyond it only refuses further orders).
ALTER TABLE streams ADD COLUMN ordered bigint NOT NULL DEFAULT 0;
UPDATE streams s SET ordered = o.total
FROM (SELECT stream_id, LEAST(sum(amount), 9223372036854775807)::bigint AS total
      FROM stream_orders GROUP BY stream_id) o
WHERE o.stream_id = s.stream_id;
