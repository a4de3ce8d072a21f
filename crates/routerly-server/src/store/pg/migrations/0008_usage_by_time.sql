-- Usage records are read in the order of the calls, `(at, id)` (an id is a UUIDv7 made as
-- the call ends, so it breaks ties between calls of the same microsecond), rather than in
-- the order the replicas happened to ship their batches: with several replicas that
-- interleaved their batches, 100 ms apart. The primary key in that order serves pages,
-- exports and time ranges, so the indexes on (at, seq) and on seq (two more entries per
-- call) go; `seq` stays the shipping order. Ids compare byte by byte ("C"), which a UUID's
-- text sorts by, instead of by the database's locale rules.
ALTER TABLE usage_records DROP CONSTRAINT usage_records_pkey;
DROP INDEX usage_records_at;
DROP INDEX usage_records_seq_idx;
DROP INDEX usage_records_trace;
ALTER TABLE usage_records ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE usage_records ALTER COLUMN trace_id TYPE text COLLATE "C";
ALTER TABLE usage_records ADD PRIMARY KEY (at, id);
CREATE INDEX usage_records_trace ON usage_records (trace_id);
