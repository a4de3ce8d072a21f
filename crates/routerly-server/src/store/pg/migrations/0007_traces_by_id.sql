-- Traces are pruned by id rather than by the time written: a trace id is a UUIDv7, whose
-- lowercase hyphenated text sorts by its time under the "C" collation, so the primary key
-- finds the week-old ones and an index on the time written (one more entry per call) goes.
ALTER TABLE traces ALTER COLUMN id TYPE text COLLATE "C";
DROP INDEX traces_written;
ALTER TABLE traces DROP COLUMN written_at;
