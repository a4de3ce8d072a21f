-- State every replica shares besides configuration and usage.

-- Keys of the service's own, sealed under the master key (`enc:v1:`): the access-token
-- signing key, random, written once by whichever replica starts first.
CREATE TABLE service_keys (
    name text PRIMARY KEY,
    sealed text NOT NULL
);

-- Refresh-token families (one per login) and every token hash each has issued: the current
-- one rotates, an earlier one presented again revokes the family.
CREATE TABLE session_families (
    id text PRIMARY KEY,
    user_id text NOT NULL,
    current_hash bytea NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_families_user ON session_families (user_id);
CREATE INDEX session_families_expiry ON session_families (expires_at);
CREATE TABLE session_tokens (
    hash bytea PRIMARY KEY,
    family_id text NOT NULL REFERENCES session_families (id) ON DELETE CASCADE
);
CREATE INDEX session_tokens_family ON session_tokens (family_id);

-- Responses-API conversation state, by response id, within its project.
CREATE TABLE stored_responses (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    created_at timestamptz NOT NULL,
    bytes integer NOT NULL,
    body jsonb NOT NULL
);
CREATE INDEX stored_responses_created ON stored_responses (created_at);

-- The audit log: changes made through the API on any replica, in the order they were
-- written.
CREATE TABLE audit_log (
    seq bigserial PRIMARY KEY,
    entry jsonb NOT NULL
);

-- Routing traces of every replica, by trace id (a UUIDv7), kept a week.
CREATE TABLE traces (
    id text PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    line text NOT NULL
);
CREATE INDEX traces_written ON traces (written_at);
