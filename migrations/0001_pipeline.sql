-- The pipeline's own tables: orders and their state, the inbox and outbox that make every stage
-- effectively once, the timeline of stage records, pending customer confirmations and review cases.

CREATE TABLE orders (
    order_id      TEXT PRIMARY KEY,
    -- One of: placed, verified, prepared, documents_generated, handed_over, confirmed, completed.
    state         TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    customer_id   TEXT NOT NULL,
    currency      CHAR(3) NOT NULL,
    total_minor   BIGINT NOT NULL,
    -- The order as placed (or last amended), kept so every later stage can read it.
    body          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_state_idx ON orders (state);

-- A message id seen by a stage. The primary key makes a second delivery of the same message a no-op.
CREATE TABLE inbox (
    stage         TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stage, message_id)
);

-- Events to publish. Written in the same transaction as the effect that caused them; published
-- after commit; marked sent once the broker confirmed them. The relay publishes what a crash left.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    order_id      TEXT NOT NULL,
    routing_key   TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    -- The complete CloudEvents envelope, byte for byte as it goes on the wire.
    body          BYTEA NOT NULL,
    event_time    TIMESTAMPTZ NOT NULL,
    traceparent   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at       TIMESTAMPTZ,
    -- 'handler' when the stage that wrote it published it, 'relay' when the relay did.
    sent_by       TEXT
);

CREATE INDEX outbox_unsent_idx ON outbox (created_at) WHERE sent_at IS NULL;

-- The timeline: one row for each thing a stage did to an order.
CREATE TABLE stage_records (
    id            BIGSERIAL PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders (order_id),
    stage         TEXT NOT NULL,
    -- The id of the message that caused this record.
    message_id    TEXT NOT NULL,
    state_after   TEXT NOT NULL,
    detail        JSONB NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX stage_records_order_idx ON stage_records (order_id, id);

-- Customer confirmations, kept even when they arrive before the order is handed over.
CREATE TABLE customer_confirmations (
    id            BIGSERIAL PRIMARY KEY,
    order_id      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX customer_confirmations_order_idx ON customer_confirmations (order_id);

-- What a stage could not finish, for a person with the right authority.
CREATE TABLE review_cases (
    id                 BIGSERIAL PRIMARY KEY,
    order_id           TEXT,
    stage              TEXT NOT NULL,
    reason             TEXT NOT NULL,
    detail             TEXT NOT NULL,
    required_role      TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'open',
    -- The message that could not be handled, byte for byte, and its AMQP properties.
    original_body      BYTEA NOT NULL,
    original_properties JSONB NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX review_cases_status_idx ON review_cases (status, created_at);
