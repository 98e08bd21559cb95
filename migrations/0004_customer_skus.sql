-- The products each customer has ordered, kept up to date as orders are placed and amended, so
-- that suggesting related products reads a few rows instead of every order the customer placed.
CREATE TABLE customer_skus (
    customer_id   TEXT NOT NULL,
    sku           TEXT NOT NULL,
    PRIMARY KEY (customer_id, sku)
);

INSERT INTO customer_skus (customer_id, sku)
SELECT DISTINCT customer_id, line->>'sku'
FROM orders, jsonb_array_elements(body->'lines') AS line
ON CONFLICT DO NOTHING;
