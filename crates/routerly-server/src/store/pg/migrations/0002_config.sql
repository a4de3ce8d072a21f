-- The configuration: one row per version, each the whole configuration (the six config
-- files' contents as one JSON document, secrets as stored: `enc:v1:` under the master key
-- or `env:` references). The newest version is in force; a few older ones stay as history.
-- A writer inserts version N + 1 after reading N, so two writers can never both succeed
-- from the same N (the primary key refuses the second).
CREATE TABLE config_versions (
    version bigint PRIMARY KEY,
    document jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
-- Every replica LISTENs on `routerly_config`; a new version is announced with its number
-- when its transaction commits.
CREATE FUNCTION routerly_config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('routerly_config', NEW.version::text);
    RETURN NEW;
END
$$;
CREATE TRIGGER config_versions_notify AFTER INSERT ON config_versions
    FOR EACH ROW EXECUTE FUNCTION routerly_config_notify();
