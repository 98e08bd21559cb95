-- Resolving review cases, and events addressed to one queue (re-injecting a message).

ALTER TABLE review_cases
    -- The inbox key of the escalated message, so a retry can let it through again.
    ADD COLUMN message_key TEXT,
    ADD COLUMN resolved_at TIMESTAMPTZ;

-- Every action a person took on a case: who, when, why.
CREATE TABLE review_actions (
    id          BIGSERIAL PRIMARY KEY,
    case_id     BIGINT NOT NULL REFERENCES review_cases (id),
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT NOT NULL,
    detail      JSONB NOT NULL DEFAULT '{}',
    acted_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX review_actions_case_idx ON review_actions (case_id, id);

-- NULL: publish to the events exchange with routing_key. Otherwise publish straight to this queue
-- (through the default exchange), with `properties` as the AMQP properties.
ALTER TABLE outbox
    ADD COLUMN queue TEXT,
    ADD COLUMN properties JSONB;
