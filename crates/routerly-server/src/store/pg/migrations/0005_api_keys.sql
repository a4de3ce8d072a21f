-- Admin API keys, shared so a key created or revoked through one replica holds on every
-- replica at once. Only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    hash text NOT NULL UNIQUE,
    snippet text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
