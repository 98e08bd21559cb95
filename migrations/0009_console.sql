-- The web console: who is signed in, and bulk actions on review cases with each case's result.

-- A signed-in browser. Only the SHA-256 of the session cookie is kept; the person is looked up
-- in the configuration on every request, so a person removed from it is signed out.
CREATE TABLE console_sessions (
    id_sha256   TEXT PRIMARY KEY,
    person      TEXT NOT NULL,
    -- The token every form of this session must carry.
    csrf        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);

-- A retry or close of many cases at once, worked through at a bounded rate.
CREATE TABLE bulk_jobs (
    id           BIGSERIAL PRIMARY KEY,
    action       TEXT NOT NULL,
    actor        TEXT NOT NULL,
    note         TEXT NOT NULL,
    total        INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One case of a bulk job: its outcome (done, conflict, forbidden, invalid, failed) once tried.
CREATE TABLE bulk_results (
    job_id   BIGINT NOT NULL REFERENCES bulk_jobs (id),
    position INTEGER NOT NULL,
    case_id  BIGINT NOT NULL,
    outcome  TEXT,
    message  TEXT,
    done_at  TIMESTAMPTZ,
    PRIMARY KEY (job_id, position)
);
