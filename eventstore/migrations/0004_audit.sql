-- Every read of personal data in plaintext (admin only), for auditors.
CREATE TABLE disclosures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    who        text        NOT NULL,  -- the token's name
    customer   text        NOT NULL,
    endpoint   text        NOT NULL
);
CREATE INDEX disclosures_customer ON disclosures (customer, at DESC);

-- Audit log rows are append-only too.
CREATE TRIGGER disclosures_append_only
    BEFORE UPDATE OR DELETE ON disclosures
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
