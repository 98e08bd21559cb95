-- The set-based stage engine and hostile input.

-- The inbox remembers each message's body digest: the same id with other content is a
-- different message (a review case), not a duplicate.
ALTER TABLE inbox ADD COLUMN body_sha256 BYTEA;

-- What each ledger posting is for, so that reversing an order's revenue reverses exactly its
-- recognitions (and earlier reversals), never its payments.
ALTER TABLE ledger_entries ADD COLUMN kind TEXT;
UPDATE ledger_entries SET kind = CASE
    WHEN memo LIKE 'recognised%' THEN 'recognition'
    WHEN memo LIKE 'reversal%' THEN 'reversal'
    ELSE 'payment' END;
ALTER TABLE ledger_entries ALTER COLUMN kind SET NOT NULL,
    ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('recognition', 'reversal', 'payment'));

-- A message's AMQP properties are kept as the JSON bytes they were read as: a property that is
-- not UTF-8, or holds a NUL, survives byte for byte (JSONB refuses NUL, text refuses it too).
ALTER TABLE review_cases
    ALTER COLUMN original_properties TYPE BYTEA USING convert_to(original_properties::text, 'UTF8');
ALTER TABLE outbox
    ALTER COLUMN properties TYPE BYTEA USING convert_to(properties::text, 'UTF8');

-- An outbox row's age counts from when it was written, not from its transaction's start, so a
-- long batch does not look old to the relay.
ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT clock_timestamp();

-- Pending timers are found by order and kind.
CREATE INDEX timers_pending_idx ON timers (order_id, kind)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- Outbox rows are written once and never changed: what is still to be confirmed by the broker
-- is listed in `outbox_pending` (a row per event, deleted once published), so that publishing
-- costs a small delete instead of rewriting the event and its indexes. `relayed_at` says when
-- the relay (not the stage that wrote the row) published it.
CREATE TABLE outbox_pending (
    id          BIGINT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO outbox_pending (id, created_at) SELECT id, created_at FROM outbox WHERE sent_at IS NULL;
DROP INDEX outbox_unsent_idx;
UPDATE outbox SET sent_at = NULL WHERE sent_by IS DISTINCT FROM 'relay';
ALTER TABLE outbox RENAME COLUMN sent_at TO relayed_at;
ALTER TABLE outbox DROP COLUMN sent_by;

-- An order's state changes six times; without an index on it each change is a heap-only update.
-- (The overview counts orders by state over the whole table either way.)
DROP INDEX orders_state_idx;
