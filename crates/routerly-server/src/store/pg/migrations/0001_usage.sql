-- Usage records: one row per answered call, partitioned by month of `at`.
-- `line` is the record exactly as the file log would hold it (exports stay byte-identical);
-- the other columns are what reports filter on. `seq` keeps the order records were shipped.
CREATE SEQUENCE usage_records_seq;
CREATE TABLE usage_records (
    seq bigint NOT NULL DEFAULT nextval('usage_records_seq'),
    id text NOT NULL,
    at timestamptz NOT NULL,
    project_id text NOT NULL,
    token_id text NOT NULL,
    model_id text NOT NULL,
    user_field text NOT NULL,
    outcome text NOT NULL,
    trace_id text NOT NULL,
    tags jsonb NOT NULL,
    line text NOT NULL,
    -- A batch re-sent after an unanswered commit is not counted twice.
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
-- Months are created ahead by Routerly; this catches anything outside them.
CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;
CREATE INDEX usage_records_at ON usage_records (at, seq);
CREATE INDEX usage_records_seq_idx ON usage_records (seq);
CREATE INDEX usage_records_trace ON usage_records (trace_id);
