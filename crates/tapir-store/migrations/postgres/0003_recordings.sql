-- Call recordings' metadata (postgres). Keep in step with ../sqlite/0003_recordings.sql.
-- The audio is a WAV file <data_dir>/recordings/<id>.wav; `bytes` is its
-- size (for the retention sweep's total), `started_at` ms since the epoch.
CREATE TABLE recordings (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX recordings_by_start ON recordings (started_at);
