-- Leadership of the singleton workers (the event publisher, each outbox
-- relay) is a lease: the holder renews expires_at; a holder that stops
-- renewing (dead, frozen, partitioned) loses it at expires_at and another
-- instance takes it. A session advisory lock cannot do this: the session of
-- a frozen process stays open, and its lock held, for as long as its kernel
-- answers TCP keepalives. epoch grows with every change of holder; writes
-- that only the leader may make check holder and epoch (fencing).
CREATE TABLE leader_leases (
    name       text PRIMARY KEY,
    holder     uuid NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
