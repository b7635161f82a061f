//! # tapir-store — what tapir keeps across restarts
//!
//! One [`Store`] over SQLite (the default: a file in the data directory) or
//! PostgreSQL, chosen by the URL (`sqlite://…`, `sqlite::memory:`,
//! `postgres://…`). It keeps:
//!
//! * configuration the operator changes at run time: lines (with their SIP
//!   passwords), apps (tokens only as SHA-256 hashes), trunks, settings such
//!   as the park slot range and the locations and calling cards (pickup groups
//!   are the `pickup_group` of lines);
//! * state the switch must find again after a restart: forwarding rules and
//!   pending call-completion requests;
//! * call detail records, one per call, findable by party address;
//! * the event journal of every app, by app name and `seq`, bounded by a
//!   retention count per app;
//! * webhooks: each one's definition, secret, acknowledged `seq` and
//!   suspension, so that delivery resumes after a restart (retention keeps
//!   the events an active webhook has not acknowledged yet);
//! * call recordings' metadata ([`StoredRecording`]; the audio files are
//!   the server's).
//!
//! The store holds documents it does not interpret: each row has its key
//! columns and a JSON `data` column whose shape belongs to the server (the
//! admin API's shapes). Schema migrations (`migrations/sqlite`,
//! `migrations/postgres`, embedded with `sqlx::migrate!`) run in
//! [`Store::open`].
//!
//! Both backends go through sqlx's `Any` driver with the same SQL text
//! (`$N` placeholders, numbered in order of appearance so that SQLite binds
//! them the same way), integers for times (milliseconds since the Unix
//! epoch) and text for JSON. SQLite runs in WAL mode with
//! `synchronous=NORMAL`: a committed transaction survives the process being
//! killed (only a power loss may take the last ones).

pub mod cluster;
mod recordings;

pub use recordings::StoredRecording;

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};
use std::time::Duration;

/// A store error: the database refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend tapir supports.
    #[error("store url {0:?} is neither sqlite:… nor postgres:…")]
    Url(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document is not valid JSON (the database was edited by hand).
    #[error("stored document is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A keyed configuration document (a line, an app, a trunk).
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    /// Its key (a line's first address, an app's or trunk's name).
    pub key: String,
    /// The document.
    pub data: Value,
}

/// A stored app: its document and the SHA-256 (hex) of its token.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredApp {
    /// Its name.
    pub name: String,
    /// Hex SHA-256 of its bearer token.
    pub token_hash: String,
    /// The app document (without the token).
    pub data: Value,
}

/// An address's forwarding.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredForwarding {
    /// The address.
    pub address: String,
    /// The rules (the API's JSON shape).
    pub rules: Value,
    /// Rings before no-answer forwarding.
    pub no_answer_rings: u32,
}

/// A pending call-completion request.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCompletion {
    /// The completion id (the switch's).
    pub id: u64,
    /// The name of the app that asked.
    pub app: String,
    /// Mode, addresses, expiry (the server's shape).
    pub data: Value,
}

/// A call detail record to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCdr {
    /// When the first call of it was created (ms since the epoch).
    pub started_at: u64,
    /// When its last call ended (ms since the epoch).
    pub ended_at: u64,
    /// Every address that took part (for `?address=` queries).
    pub addresses: Vec<String>,
    /// The record (the admin API's `Cdr` without `id`).
    pub data: Value,
}

/// A stored call detail record.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCdr {
    /// Its id (grows with insertion order).
    pub id: u64,
    /// The record.
    pub data: Value,
}

/// Which CDRs to list: newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CdrQuery {
    /// At most this many.
    pub limit: u32,
    /// Only ids below this one (paging).
    pub before: Option<u64>,
    /// Only records with this party address.
    pub address: Option<String>,
}

/// One journalled event.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The app's name.
    pub app: String,
    /// The app's sequence number.
    pub seq: u64,
    /// When it was journalled (ms since the epoch).
    pub at: u64,
    /// The event's JSON text as the stream sends it.
    pub body: String,
}

/// A stored webhook.
#[derive(Clone, PartialEq)]
pub struct StoredWebhook {
    /// Its id.
    pub id: String,
    /// The name of the app whose events it delivers.
    pub app: String,
    /// The signing secret (never logged: `Debug` hides it).
    pub secret: String,
    /// The app's last `seq` it has acknowledged.
    pub acked: u64,
    /// Suspended after failing too long.
    pub suspended: bool,
    /// URL, filters and batch size (the server's shape).
    pub data: Value,
}

impl std::fmt::Debug for StoredWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredWebhook")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("secret", &"***")
            .field("acked", &self.acked)
            .field("suspended", &self.suspended)
            .field("data", &self.data)
            .finish()
    }
}

/// Writes that go to the database in one transaction (the journal writer's
/// unit of work).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Events to append.
    pub events: Vec<StoredEvent>,
    /// CDRs of calls that ended.
    pub cdrs: Vec<NewCdr>,
    /// The whole set of pending completion requests, when it changed.
    pub completions: Option<Vec<StoredCompletion>>,
    /// Meta keys to set.
    pub meta: Vec<(String, String)>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.cdrs.is_empty()
            && self.completions.is_none()
            && self.meta.is_empty()
    }

    /// Fold a later batch into this one (a later completion set wins).
    pub fn merge(&mut self, later: Batch) {
        self.events.extend(later.events);
        self.cdrs.extend(later.cdrs);
        if later.completions.is_some() {
            self.completions = later.completions;
        }
        self.meta.extend(later.meta);
    }
}

/// Everything a first start writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seed {
    /// Lines, in order.
    pub lines: Vec<Doc>,
    /// Apps, in order.
    pub apps: Vec<StoredApp>,
    /// Trunks, in order.
    pub trunks: Vec<Doc>,
    /// Settings documents (`park`, `translate`, …).
    pub settings: Vec<Doc>,
    /// Meta keys (the admin token's hash, …).
    pub meta: Vec<(String, String)>,
}

/// Meta key set once the store has been seeded from a configuration.
pub const SEEDED: &str = "seeded";

/// Rows per multi-row INSERT of events (4 parameters each).
const EVENT_CHUNK: usize = 64;

/// `INSERT INTO <table_columns> VALUES ($1, …), (…)`: `rows` rows of
/// `columns` numbered placeholders each, bound in order by the caller.
fn multi_row_insert(table_columns: &str, rows: usize, columns: usize) -> String {
    // Placeholders are written with itoa: a batch of 64 CDRs has 256.
    let mut sql = String::with_capacity(32 + table_columns.len() + rows * columns * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(table_columns);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(itoa::Buffer::new().format(row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Records per multi-row INSERT of CDRs (4 parameters each).
const CDR_CHUNK: usize = 64;

/// Rows per multi-row INSERT of CDR parties (2 parameters each).
const PARTY_CHUNK: usize = 128;

/// The store: a pool to SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json(text: &str) -> Result<Value, StoreError> {
    Ok(serde_json::from_str(text)?)
}

/// Create a missing SQLite file readable by its owner only (it holds SIP
/// passwords); SQLite gives its `-wal` and `-shm` files the same mode.
/// Failures are left for the connection to report.
fn create_private(url: &str) {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = std::path::Path::new(rest.split('?').next().unwrap_or(rest));
    if path.as_os_str().is_empty() || path.exists() {
        return;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = opts.open(path);
}

impl Store {
    /// Connect to `url` and run the schema migrations. `sqlite://PATH`
    /// creates the file when missing; `sqlite::memory:` is a private
    /// in-memory database (one connection).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let mut url = url.to_string();
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite && !memory {
            create_private(&url);
        }
        if backend == Backend::Sqlite && !memory && !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str("mode=rwc");
        }
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        opts = match backend {
            // SQLite has one writer anyway; an in-memory database exists
            // only on its one connection.
            Backend::Sqlite => opts
                .max_connections(if memory { 1 } else { 4 })
                .min_connections(if memory { 1 } else { 0 })
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                        )
                        .execute(conn)
                        .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => opts.max_connections(8),
        };
        let pool = opts.connect(&url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Close the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ------------------------------------------------------------------
    // Meta and seeding
    // ------------------------------------------------------------------

    /// A meta value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Set a meta value.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a configuration has been seeded into this store.
    pub async fn is_seeded(&self) -> Result<bool, StoreError> {
        Ok(self.meta(SEEDED).await?.is_some())
    }

    /// Write a first configuration in one transaction and mark the store
    /// seeded. Existing rows with the same keys are replaced.
    pub async fn seed(&self, seed: &Seed) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (n, d) in seed.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO lines (address, position, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET position = excluded.position, data = excluded.data",
            )
            .bind(&d.key)
            .bind(n as i64)
            .bind(d.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (n, a) in seed.apps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO apps (name, position, token_hash, data) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
                 token_hash = excluded.token_hash, data = excluded.data",
            )
            .bind(&a.name)
            .bind(n as i64)
            .bind(&a.token_hash)
            .bind(a.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (n, d) in seed.trunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO trunks (name, position, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position, data = excluded.data",
            )
            .bind(&d.key)
            .bind(n as i64)
            .bind(d.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for d in &seed.settings {
            sqlx::query(
                "INSERT INTO settings (key, data) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            )
            .bind(&d.key)
            .bind(d.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (k, v) in seed
            .meta
            .iter()
            .chain([&(SEEDED.to_string(), "1".to_string())])
        {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ------------------------------------------------------------------
    // Lines, apps, trunks, settings
    // ------------------------------------------------------------------

    fn docs(rows: Vec<AnyRow>) -> Result<Vec<Doc>, StoreError> {
        rows.into_iter()
            .map(|r| {
                Ok(Doc {
                    key: r.try_get(0)?,
                    data: json(&r.try_get::<String, _>(1)?)?,
                })
            })
            .collect()
    }

    /// Every line, in the order they were added.
    pub async fn lines(&self) -> Result<Vec<Doc>, StoreError> {
        let rows = sqlx::query("SELECT address, data FROM lines ORDER BY position, address")
            .fetch_all(&self.pool)
            .await?;
        Store::docs(rows)
    }

    /// Insert or replace a line (a new one goes last).
    pub async fn put_line(&self, line: &Doc) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO lines (address, position, data) \
             VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM lines), $2) \
             ON CONFLICT (address) DO UPDATE SET data = excluded.data",
        )
        .bind(&line.key)
        .bind(line.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replace the line stored under `old` (its first address may change),
    /// keeping its position; also drops forwarding of addresses it lost.
    pub async fn replace_line(
        &self,
        old: &str,
        line: &Doc,
        dropped: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE lines SET address = $1, data = $2 WHERE address = $3")
            .bind(&line.key)
            .bind(line.data.to_string())
            .bind(old)
            .execute(&mut *tx)
            .await?;
        for a in dropped {
            sqlx::query("DELETE FROM forwarding WHERE address = $1")
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete a line and the forwarding of its addresses; false when it was
    /// not stored.
    pub async fn delete_line(
        &self,
        address: &str,
        addresses: &[String],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM lines WHERE address = $1")
            .bind(address)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for a in addresses {
            sqlx::query("DELETE FROM forwarding WHERE address = $1")
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Every app, in the order they were added.
    pub async fn apps(&self) -> Result<Vec<StoredApp>, StoreError> {
        let rows = sqlx::query("SELECT name, token_hash, data FROM apps ORDER BY position, name")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredApp {
                    name: r.try_get(0)?,
                    token_hash: r.try_get(1)?,
                    data: json(&r.try_get::<String, _>(2)?)?,
                })
            })
            .collect()
    }

    /// Insert or replace an app (a new one goes last).
    pub async fn put_app(&self, app: &StoredApp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO apps (name, position, token_hash, data) \
             VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM apps), $2, $3) \
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, data = excluded.data",
        )
        .bind(&app.name)
        .bind(&app.token_hash)
        .bind(app.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Delete an app, its pending completion requests and its webhooks;
    /// false when it was not stored. Its journal stays until retention
    /// removes it.
    pub async fn delete_app(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM apps WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM completions WHERE app = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE app = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Every trunk, in the order they were added.
    pub async fn trunks(&self) -> Result<Vec<Doc>, StoreError> {
        let rows = sqlx::query("SELECT name, data FROM trunks ORDER BY position, name")
            .fetch_all(&self.pool)
            .await?;
        Store::docs(rows)
    }

    /// Insert or replace a trunk.
    pub async fn put_trunk(&self, trunk: &Doc) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trunks (name, position, data) \
             VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM trunks), $2) \
             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
        )
        .bind(&trunk.key)
        .bind(trunk.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Delete a trunk; false when it was not stored.
    pub async fn delete_trunk(&self, name: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM trunks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// A settings document (`park`, `translate`, …).
    pub async fn setting(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT data FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json(&r.try_get::<String, _>(0)?)).transpose()
    }

    /// Set a settings document.
    pub async fn put_setting(&self, key: &str, data: &Value) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, data) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET data = excluded.data",
        )
        .bind(key)
        .bind(data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------------
    // Forwarding and completion requests
    // ------------------------------------------------------------------

    /// Every address with forwarding.
    pub async fn forwarding(&self) -> Result<Vec<StoredForwarding>, StoreError> {
        let rows =
            sqlx::query("SELECT address, rules, no_answer_rings FROM forwarding ORDER BY address")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredForwarding {
                    address: r.try_get(0)?,
                    rules: json(&r.try_get::<String, _>(1)?)?,
                    no_answer_rings: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Set an address's forwarding; empty rules delete the row.
    pub async fn put_forwarding(&self, f: &StoredForwarding) -> Result<(), StoreError> {
        let empty = f.rules.as_array().is_some_and(Vec::is_empty) || f.rules.is_null();
        if empty {
            sqlx::query("DELETE FROM forwarding WHERE address = $1")
                .bind(&f.address)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO forwarding (address, rules, no_answer_rings) VALUES ($1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET rules = excluded.rules, \
                 no_answer_rings = excluded.no_answer_rings",
            )
            .bind(&f.address)
            .bind(f.rules.to_string())
            .bind(i64::from(f.no_answer_rings))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Every pending completion request, by id.
    pub async fn completions(&self) -> Result<Vec<StoredCompletion>, StoreError> {
        let rows = sqlx::query("SELECT id, app, data FROM completions ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredCompletion {
                    id: u(r.try_get(0)?),
                    app: r.try_get(1)?,
                    data: json(&r.try_get::<String, _>(2)?)?,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------------
    // Batches: journal, CDRs, completions, meta
    // ------------------------------------------------------------------

    /// Write a batch in one transaction. Events already stored (same app and
    /// seq) are left as they are.
    pub async fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in batch.events.chunks(EVENT_CHUNK) {
            let mut sql = multi_row_insert("events (app, seq, at, body)", chunk.len(), 4);
            sql.push_str(" ON CONFLICT (app, seq) DO NOTHING");
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                q = q.bind(&e.app).bind(i(e.seq)).bind(i(e.at)).bind(&e.body);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in batch.cdrs.chunks(CDR_CHUNK) {
            self.insert_cdrs(&mut tx, chunk).await?;
        }
        if let Some(set) = &batch.completions {
            sqlx::query("DELETE FROM completions")
                .execute(&mut *tx)
                .await?;
            for c in set {
                sqlx::query("INSERT INTO completions (id, app, data) VALUES ($1, $2, $3)")
                    .bind(i(c.id))
                    .bind(&c.app)
                    .bind(c.data.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (k, v) in &batch.meta {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts CDRs and their parties in three statements however many
    /// there are (ids taken first, then one multi-row insert for the
    /// records and one for the parties), rather than a round trip to the
    /// database per record and per party.
    async fn insert_cdrs(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        cdrs: &[NewCdr],
    ) -> Result<(), StoreError> {
        if cdrs.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(cdrs.len()).unwrap_or(i64::MAX);
        let ids: Vec<i64> = match self.backend {
            // The writer is SQLite's only inserter of CDRs (one node), and
            // the ids go on from the highest ever used (AUTOINCREMENT).
            Backend::Sqlite => {
                let row = sqlx::query(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'cdrs'), 0)",
                )
                .fetch_one(&mut **tx)
                .await?;
                let last: i64 = row.try_get(0)?;
                (1..=n).map(|k| last.saturating_add(k)).collect()
            }
            // Several nodes may insert at once: ids from the sequence.
            Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT nextval(pg_get_serial_sequence('cdrs', 'id')) FROM generate_series(1, $1)",
                )
                .bind(n)
                .fetch_all(&mut **tx)
                .await?;
                rows.iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<Result<_, _>>()?
            }
        };
        let sql = multi_row_insert("cdrs (id, started_at, ended_at, data)", cdrs.len(), 4);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (c, id) in cdrs.iter().zip(&ids) {
            q = q
                .bind(*id)
                .bind(i(c.started_at))
                .bind(i(c.ended_at))
                .bind(c.data.to_string());
        }
        q.execute(&mut **tx).await?;
        let mut parties: Vec<(i64, &str)> = Vec::new();
        for (c, id) in cdrs.iter().zip(&ids) {
            let mut addresses: Vec<&str> = c.addresses.iter().map(String::as_str).collect();
            addresses.sort_unstable();
            addresses.dedup();
            parties.extend(addresses.into_iter().map(|a| (*id, a)));
        }
        for chunk in parties.chunks(PARTY_CHUNK) {
            let sql = multi_row_insert("cdr_parties (cdr_id, address)", chunk.len(), 2);
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, address) in chunk {
                q = q.bind(*id).bind(*address);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// CDRs, newest first.
    pub async fn cdrs(&self, q: &CdrQuery) -> Result<Vec<StoredCdr>, StoreError> {
        let before = q.before.map_or(i64::MAX, i);
        let limit = i64::from(q.limit.clamp(1, 1000));
        let rows = match &q.address {
            None => {
                sqlx::query("SELECT id, data FROM cdrs WHERE id < $1 ORDER BY id DESC LIMIT $2")
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(a) => {
                sqlx::query(
                    "SELECT c.id, c.data FROM cdr_parties p JOIN cdrs c ON c.id = p.cdr_id \
                     WHERE p.address = $1 AND p.cdr_id < $2 ORDER BY p.cdr_id DESC LIMIT $3",
                )
                .bind(a)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter()
            .map(|r| {
                Ok(StoredCdr {
                    id: u(r.try_get(0)?),
                    data: json(&r.try_get::<String, _>(1)?)?,
                })
            })
            .collect()
    }

    /// One CDR.
    pub async fn cdr(&self, id: u64) -> Result<Option<StoredCdr>, StoreError> {
        let row = sqlx::query("SELECT id, data FROM cdrs WHERE id = $1")
            .bind(i(id))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredCdr {
                id: u(r.try_get(0)?),
                data: json(&r.try_get::<String, _>(1)?)?,
            })
        })
        .transpose()
    }

    /// How many CDRs are stored.
    pub async fn cdr_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM cdrs")
            .fetch_one(&self.pool)
            .await?;
        Ok(u(row.try_get(0)?))
    }

    /// The last `limit` events of `app`, oldest first.
    pub async fn events_tail(&self, app: &str, limit: u64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, body FROM events WHERE app = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(app)
        .bind(i(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                Ok(StoredEvent {
                    app: app.to_string(),
                    seq: u(r.try_get(0)?),
                    at: u(r.try_get(1)?),
                    body: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    /// The last `seq` journalled for every app that has events.
    pub async fn last_seqs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT app, MAX(seq) FROM events GROUP BY app ORDER BY app")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, u(r.try_get(1)?))))
            .collect()
    }

    /// Keep only the last `keep` events of each app, and every event an
    /// active (not suspended) webhook has not acknowledged yet; returns how
    /// many were deleted.
    pub async fn prune_events(&self, keep: u64) -> Result<u64, StoreError> {
        let rows =
            sqlx::query("SELECT app, MIN(acked) FROM webhooks WHERE suspended = 0 GROUP BY app")
                .fetch_all(&self.pool)
                .await?;
        let mut held = std::collections::HashMap::new();
        for r in rows {
            held.insert(r.try_get::<String, _>(0)?, u(r.try_get(1)?));
        }
        let mut deleted = 0;
        for (app, last) in self.last_seqs().await? {
            if last <= keep {
                continue;
            }
            let cut = held
                .get(&app)
                .map_or(last - keep, |acked| (last - keep).min(*acked));
            if cut == 0 {
                continue;
            }
            deleted += sqlx::query("DELETE FROM events WHERE app = $1 AND seq <= $2")
                .bind(&app)
                .bind(i(cut))
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// At most `limit` events of `app` after `since`, oldest first.
    pub async fn events_after(
        &self,
        app: &str,
        since: u64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, body FROM events WHERE app = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(app)
        .bind(i(since))
        .bind(i(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredEvent {
                    app: app.to_string(),
                    seq: u(r.try_get(0)?),
                    at: u(r.try_get(1)?),
                    body: r.try_get(2)?,
                })
            })
            .collect()
    }

    // ------------------------------------------------------------------
    // Webhooks
    // ------------------------------------------------------------------

    /// Every webhook, by app then id.
    pub async fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, app, secret, acked, suspended, data FROM webhooks ORDER BY app, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredWebhook {
                    id: r.try_get(0)?,
                    app: r.try_get(1)?,
                    secret: r.try_get(2)?,
                    acked: u(r.try_get(3)?),
                    suspended: r.try_get::<i64, _>(4)? != 0,
                    data: json(&r.try_get::<String, _>(5)?)?,
                })
            })
            .collect()
    }

    /// Insert or replace a webhook (all of it: secret, acknowledged `seq`
    /// and suspension too).
    pub async fn put_webhook(&self, w: &StoredWebhook) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhooks (id, app, secret, acked, suspended, data) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET app = excluded.app, secret = excluded.secret, \
             acked = excluded.acked, suspended = excluded.suspended, data = excluded.data",
        )
        .bind(&w.id)
        .bind(&w.app)
        .bind(&w.secret)
        .bind(i(w.acked))
        .bind(i64::from(w.suspended))
        .bind(w.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record how far a webhook has been acknowledged and whether it is
    /// suspended; false when it is not stored (deleted meanwhile).
    pub async fn set_webhook_progress(
        &self,
        id: &str,
        acked: u64,
        suspended: bool,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE webhooks SET acked = $1, suspended = $2 WHERE id = $3")
            .bind(i(acked))
            .bind(i64::from(suspended))
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Delete a webhook; false when it was not stored.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// How many events are stored for `app`.
    pub async fn event_count(&self, app: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM events WHERE app = $1")
            .bind(app)
            .fetch_one(&self.pool)
            .await?;
        Ok(u(row.try_get(0)?))
    }
}

/// Helpers for tests that need a database of their own.
pub mod testing {
    use super::StoreError;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The environment variable naming a PostgreSQL server for tests
    /// (`scripts/with-postgres` sets it).
    pub const POSTGRES_ENV: &str = "TAPIR_TEST_POSTGRES_URL";

    /// The PostgreSQL server for tests, or `None` after printing that the
    /// PostgreSQL part of `what` was skipped (never a silent pass).
    pub fn postgres_url(what: &str) -> Option<String> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!(
                    "SKIPPED (PostgreSQL): {what}: {POSTGRES_ENV} is not set; \
                     run under scripts/with-postgres to test PostgreSQL"
                );
                None
            }
        }
    }

    /// Create an empty database on the server of `base` and return its URL,
    /// so that tests running at once never share tables.
    pub async fn fresh_postgres_db(base: &str) -> Result<String, StoreError> {
        use sqlx::Connection;
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "tapir_t{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let (head, tail) = match base.split_once('?') {
            Some((h, t)) => (h, format!("?{t}")),
            None => (base, String::new()),
        };
        let server = match head.rfind('/') {
            Some(i) if head[..i].contains("://") && i > head.find("://").unwrap_or(0) + 2 => {
                &head[..i]
            }
            _ => head,
        };
        Ok(format!("{server}/{name}{tail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::multi_row_insert;

    #[test]
    fn multi_row_insert_numbers_every_placeholder() {
        assert_eq!(
            multi_row_insert("t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        let sql = multi_row_insert("cdrs (id, started_at, ended_at, data)", 64, 4);
        assert!(sql.ends_with("($253, $254, $255, $256)"), "{sql}");
    }
}
