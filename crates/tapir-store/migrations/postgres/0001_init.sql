-- tapir store, first schema (PostgreSQL). Keep in step with ../sqlite/0001_init.sql.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE lines (
    address  TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    data     TEXT NOT NULL
);
CREATE TABLE apps (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    data       TEXT NOT NULL
);
CREATE TABLE trunks (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    data     TEXT NOT NULL
);
CREATE TABLE settings (
    key  TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE forwarding (
    address         TEXT PRIMARY KEY,
    rules           TEXT NOT NULL,
    no_answer_rings BIGINT NOT NULL
);
CREATE TABLE completions (
    id   BIGINT PRIMARY KEY,
    app  TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE cdrs (
    id         BIGSERIAL PRIMARY KEY,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT NOT NULL,
    data       TEXT NOT NULL
);
CREATE TABLE cdr_parties (
    cdr_id  BIGINT NOT NULL REFERENCES cdrs(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    PRIMARY KEY (cdr_id, address)
);
CREATE INDEX cdr_parties_by_address ON cdr_parties (address, cdr_id);
CREATE TABLE events (
    app  TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    at   BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (app, seq)
);
