-- Usage rollups: the sums of every call by UTC hour, project, dimension value and outcome,
-- maintained by the shipper in the transaction that inserts the calls' records (so a batch
-- is counted exactly when its records are stored), so reports read buckets, not records.
-- `dimension`: 0 all (value ''), 1 model, 2 token, 3 user, 4 tag (a call counts once per
-- distinct tag). Latency and time-to-first-token sketches (DDSketch bins as
-- {"bucket": count}) are kept for dimensions 0 and 1 only, as in the file mode.
CREATE TABLE usage_rollups (
    bucket timestamptz NOT NULL,
    dimension smallint NOT NULL,
    project_id text NOT NULL,
    value text NOT NULL,
    outcome smallint NOT NULL,
    calls bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cached_input_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    input_cost_usd double precision NOT NULL,
    output_cost_usd double precision NOT NULL,
    latency_ms_sum double precision NOT NULL,
    ttft_ms_sum double precision NOT NULL,
    ttft_calls bigint NOT NULL,
    latency jsonb NOT NULL,
    ttft jsonb NOT NULL,
    PRIMARY KEY (dimension, bucket, project_id, value, outcome)
);

-- Two sketches' bins added up (a cell's upsert).
CREATE FUNCTION routerly_merge_bins(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(bin, total), '{}'::jsonb)
    FROM (SELECT bin, sum(count::bigint) AS total
          FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b))
               AS bins(bin, count)
          GROUP BY bin) AS merged
$$;

-- Whether the rollups cover every stored record: true unless records were stored before
-- this version (reports then aggregate the records themselves).
CREATE TABLE usage_rollups_state (complete boolean NOT NULL);
INSERT INTO usage_rollups_state SELECT NOT EXISTS (SELECT 1 FROM usage_records);
