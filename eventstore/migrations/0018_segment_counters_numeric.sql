-- A population's net amount can exceed bigint (one customer's sum is bounded
-- by MaxCustomerOrdered, ten thousand customers at that bound are not): the
-- counters sum in numeric, so no projector transaction fails on overflow.
ALTER TABLE segment_counters ALTER COLUMN net_amount TYPE numeric;
