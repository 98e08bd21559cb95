-- Erasing a customer's personal data keeps the customer's row, so the id that orders, documents
-- and ledger entries carry still resolves, but empties what identifies the person and marks the
-- row erased: such a customer's new orders are refused and `fulfilment seed` leaves the row alone.
ALTER TABLE customers
    ALTER COLUMN name DROP NOT NULL,
    ADD COLUMN erased_at TIMESTAMPTZ;

-- Who erased whose data, when, why and what was touched (counts only, no personal data).
CREATE TABLE erasures (
    id           BIGSERIAL PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    erased_by    TEXT NOT NULL,
    note         TEXT NOT NULL,
    summary      JSONB NOT NULL,
    erased_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX erasures_customer_idx ON erasures (customer_id);
