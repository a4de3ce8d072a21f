-- The alert ledger of a file installation (`data/alerts.json`), copied by
-- `routerly migrate --from-files`: which budget alerts fired (for which limit, window,
-- event and threshold) and how their deliveries went. A replica starting without a ledger
-- of its own starts from these rows, so the alert history and the alerts already sent in
-- the current windows carry over.
CREATE TABLE alert_ledger (
    seq bigint GENERATED ALWAYS AS IDENTITY,  -- the ledger's own order (alerts of one call share a time)
    key text PRIMARY KEY,             -- the entry's limit, window, event and threshold (JSON)
    fired_at timestamptz NOT NULL,
    entry text NOT NULL               -- the whole entry as data/alerts.json holds it (JSON)
);
