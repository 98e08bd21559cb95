-- What documents print beyond the order: the customer's addresses and payment terms (personal
-- data, kept here and emptied on erasure like the name), the carrier's service under each delivery
-- terms, the weight of goods where known, and a sequence for credit notes.
ALTER TABLE customers
    ADD COLUMN billing_address TEXT,
    ADD COLUMN delivery_address TEXT,
    ADD COLUMN payment_terms_days INTEGER NOT NULL DEFAULT 30
        CHECK (payment_terms_days BETWEEN 0 AND 365);

ALTER TABLE delivery_terms ADD COLUMN carrier_service TEXT;

ALTER TABLE products ADD COLUMN weight_grams INTEGER CHECK (weight_grams > 0);

INSERT INTO document_sequences (kind, next_value) VALUES ('credit_note', 1);
