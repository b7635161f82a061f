-- Call recordings' metadata (sqlite). Keep in step with ../postgres/0003_recordings.sql.
-- The audio is a WAV file <data_dir>/recordings/<id>.wav; `bytes` is its
-- size (for the retention sweep's total), `started_at` ms since the epoch.
CREATE TABLE recordings (
    id         TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX recordings_by_start ON recordings (started_at);
