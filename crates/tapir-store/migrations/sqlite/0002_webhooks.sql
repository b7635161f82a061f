-- Webhooks (SQLite). Keep in step with ../postgres/0002_webhooks.sql.
-- `acked`: the app's last `seq` the webhook has acknowledged (delivery goes
-- on after it); `suspended`: 1 once it has failed for `suspend_after`.
CREATE TABLE webhooks (
    id        TEXT PRIMARY KEY,
    app       TEXT NOT NULL,
    secret    TEXT NOT NULL,
    acked     INTEGER NOT NULL,
    suspended INTEGER NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX webhooks_by_app ON webhooks (app);
