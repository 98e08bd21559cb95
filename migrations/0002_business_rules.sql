-- Reference data the stages check orders against, and the records each stage keeps.

-- Customers. `name` and `email` are personal data: they never leave this table (no logs, no events).
CREATE TABLE customers (
    customer_id      TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    email            TEXT,
    -- verified: the customer's identity was established when the account was opened.
    identity_status  TEXT NOT NULL CHECK (identity_status IN ('verified', 'unverified')),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE products (
    sku                  TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('goods', 'service')),
    sellable             BOOLEAN NOT NULL DEFAULT true,
    price_minor          BIGINT NOT NULL CHECK (price_minor >= 0),
    currency             CHAR(3) NOT NULL,
    -- Tax rate in basis points (2000 = 20%).
    tax_rate_bp          INTEGER NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    -- Checks the prepare stage records, such as inspected, serial_numbers_recorded, packaged.
    preparation_checks   TEXT[] NOT NULL DEFAULT '{}',
    -- on_order, on_dispatch, on_delivery, on_acceptance or over_service_period.
    recognition          TEXT NOT NULL,
    -- For over_service_period: the period and how many equal instalments recognise it.
    service_period_secs  BIGINT,
    service_instalments  INTEGER,
    -- For services: days from the order to the scheduled delivery slot.
    lead_time_days       INTEGER NOT NULL DEFAULT 0,
    -- [{"sku": "...", "relation": "cross_sell" | "up_sell"}]
    related              JSONB NOT NULL DEFAULT '[]',
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Units available to allocate. The check makes overselling impossible even for a buggy caller.
CREATE TABLE stock (
    sku          TEXT PRIMARY KEY REFERENCES products (sku),
    available    INTEGER NOT NULL CHECK (available >= 0),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    agent_id               TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    -- The largest discount off list price the agent may give, in basis points.
    max_discount_bp        INTEGER NOT NULL CHECK (max_discount_bp BETWEEN 0 AND 10000),
    -- The largest order (net, minor units) the agent may place.
    max_order_value_minor  BIGINT NOT NULL CHECK (max_order_value_minor >= 0)
);

CREATE TABLE delivery_terms (
    code              TEXT PRIMARY KEY,
    description       TEXT NOT NULL,
    -- When ownership and risk pass: on_dispatch (like FOB shipping point) or on_delivery
    -- (like FOB destination).
    ownership_passes  TEXT NOT NULL CHECK (ownership_passes IN ('on_dispatch', 'on_delivery')),
    carrier           TEXT NOT NULL
);

-- Every version of every order.
CREATE TABLE order_versions (
    order_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    body         JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, version)
);

-- Stock allocated to an order; released when the order is amended or cancelled.
CREATE TABLE allocations (
    id           BIGSERIAL PRIMARY KEY,
    order_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    sku          TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    allocated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    released_at  TIMESTAMPTZ
);

CREATE INDEX allocations_order_idx ON allocations (order_id);

-- Gap-free numbers per document kind: the row lock serialises issuers, and a rolled-back
-- transaction gives its number back.
CREATE TABLE document_sequences (
    kind        TEXT PRIMARY KEY,
    next_value  BIGINT NOT NULL
);

INSERT INTO document_sequences (kind, next_value) VALUES
    ('delivery_note', 1), ('packing_list', 1), ('invoice', 1), ('service_record', 1);

CREATE TABLE documents (
    id           BIGSERIAL PRIMARY KEY,
    order_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    number       TEXT NOT NULL UNIQUE,
    sha256       TEXT NOT NULL,
    pdf          BYTEA NOT NULL,
    -- The document's content as data (lines, totals), for queries and re-rendering.
    content      JSONB NOT NULL,
    issued_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    voided_at    TIMESTAMPTZ
);

CREATE INDEX documents_order_idx ON documents (order_id);

-- Work due later: deemed acceptance, revenue instalments. The scheduler turns due rows into
-- events, so a deadline survives any restart.
CREATE TABLE timers (
    id          BIGSERIAL PRIMARY KEY,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    payload     JSONB NOT NULL DEFAULT '{}',
    fired_at    TIMESTAMPTZ,
    cancelled_at TIMESTAMPTZ,
    UNIQUE (order_id, kind, payload)
);

CREATE INDEX timers_due_idx ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- What has been recognised, per order line (and instalment for services over a period).
CREATE TABLE recognitions (
    id               BIGSERIAL PRIMARY KEY,
    order_id         TEXT NOT NULL,
    line_no          INTEGER NOT NULL,
    instalment       INTEGER NOT NULL DEFAULT 0,
    amount_minor     BIGINT NOT NULL,
    tax_minor        BIGINT NOT NULL,
    basis            TEXT NOT NULL,
    control_passed_at TIMESTAMPTZ NOT NULL,
    evidence         TEXT[] NOT NULL,
    recognised_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    reversed_at      TIMESTAMPTZ
);

-- A line (or instalment) is recognised at most once until a reversal (amendment, cancellation).
CREATE UNIQUE INDEX recognitions_live_idx ON recognitions (order_id, line_no, instalment)
    WHERE reversed_at IS NULL;

-- Double-entry ledger in minor units. Every posting's rows balance.
CREATE TABLE ledger_entries (
    id           BIGSERIAL PRIMARY KEY,
    posting_id   UUID NOT NULL,
    order_id     TEXT NOT NULL,
    account      TEXT NOT NULL,
    debit_minor  BIGINT NOT NULL DEFAULT 0 CHECK (debit_minor >= 0),
    credit_minor BIGINT NOT NULL DEFAULT 0 CHECK (credit_minor >= 0),
    currency     CHAR(3) NOT NULL,
    memo         TEXT NOT NULL,
    posted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((debit_minor = 0) <> (credit_minor = 0))
);

CREATE INDEX ledger_entries_order_idx ON ledger_entries (order_id);

CREATE TABLE payments (
    id                 BIGSERIAL PRIMARY KEY,
    order_id           TEXT NOT NULL,
    payment_reference  TEXT NOT NULL UNIQUE,
    amount_minor       BIGINT NOT NULL CHECK (amount_minor > 0),
    currency           CHAR(3) NOT NULL,
    captured_at        TIMESTAMPTZ NOT NULL
);
