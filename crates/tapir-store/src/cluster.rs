//! The cluster's shared tables in PostgreSQL (ADR 0002): the nodes'
//! heartbeats, one lease per line, and which line each address belongs to
//! (what the SIP edge reads to route a request to the serving node), the
//! phones' registrations per line, and each node's calls in progress (so
//! that the records of a node that dies are closed by the survivors).
//!
//! Every statement is one round trip and takes the time from the
//! database's clock (`now()`), so nodes whose clocks differ still agree on
//! when a lease expires. Claims and renewals are conditional: a claim wins
//! only a free or expired lease and raises its epoch; a renewal extends only
//! a lease still held, unexpired, at the epoch the node knows. A node that
//! lost a lease therefore can never extend or overwrite its successor's.
//! The rules that choose what to claim live in `tapir-cluster`.

use crate::StoreError;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use std::time::Duration;

/// A lease row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The line (its first address).
    pub line: String,
    /// The node holding it.
    pub node: String,
    /// Raised by every claim.
    pub epoch: i64,
    /// True when the database's clock says it has run out.
    pub expired: bool,
}

/// A node's heartbeat row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Its name.
    pub name: String,
    /// Where its SIP listens (`sip:host:port`).
    pub sip_uri: String,
    /// Its HTTP API's base URL.
    pub http_url: String,
}

/// The cluster's tables on one PostgreSQL server.
#[derive(Debug, Clone)]
pub struct ClusterTables {
    pool: PgPool,
}

/// Taken while creating the tables, so nodes starting at once do not race
/// on PostgreSQL's catalog (`CREATE TABLE IF NOT EXISTS` is not atomic).
const SCHEMA_LOCK: i64 = 0x7461_7069_7201;

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn node_row(r: &PgRow) -> Result<NodeRow, StoreError> {
    Ok(NodeRow {
        name: r.try_get("name")?,
        sip_uri: r.try_get("sip_uri")?,
        http_url: r.try_get("http_url")?,
    })
}

/// `(line, epoch)` of each row a claim or renewal returned.
fn line_epochs(rows: Vec<PgRow>) -> Result<Vec<(String, i64)>, StoreError> {
    rows.into_iter()
        .map(|r| Ok((r.try_get("line")?, r.try_get("epoch")?)))
        .collect()
}

impl ClusterTables {
    /// Connect and create the tables when missing.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Url(url.to_owned()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let tables = ClusterTables { pool };
        tables.create().await?;
        Ok(tables)
    }

    async fn create(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS cluster_nodes (
                name TEXT PRIMARY KEY,
                sip_uri TEXT NOT NULL,
                http_url TEXT NOT NULL,
                seen_at TIMESTAMPTZ NOT NULL)",
            "CREATE TABLE IF NOT EXISTS cluster_leases (
                line TEXT PRIMARY KEY,
                node TEXT NOT NULL,
                epoch BIGINT NOT NULL,
                lease_until TIMESTAMPTZ NOT NULL)",
            "CREATE INDEX IF NOT EXISTS cluster_leases_node ON cluster_leases (node)",
            "CREATE TABLE IF NOT EXISTS cluster_addresses (
                address TEXT PRIMARY KEY,
                line TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS cluster_slots (
                name TEXT PRIMARY KEY,
                slot INTEGER NOT NULL UNIQUE)",
            "CREATE TABLE IF NOT EXISTS cluster_registrations (
                address TEXT PRIMARY KEY,
                line TEXT NOT NULL,
                epoch BIGINT NOT NULL,
                bindings TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS cluster_open_calls (
                node TEXT NOT NULL,
                record BIGINT NOT NULL,
                addresses TEXT[] NOT NULL,
                doc TEXT NOT NULL,
                PRIMARY KEY (node, record))",
        ] {
            sqlx::query(ddl).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replace `node`'s calls in progress with `calls`: `(record, the
    /// addresses that took part, the record as the survivors should close
    /// it)`. One transaction: a reader sees the old set or the new one.
    pub async fn save_open_calls(
        &self,
        node: &str,
        calls: &[(i64, Vec<String>, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM cluster_open_calls WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        if !calls.is_empty() {
            let records: Vec<i64> = calls.iter().map(|c| c.0).collect();
            // One array per row, as text ('{a,b}') so that rows of different
            // lengths fit one unnest.
            let addresses: Vec<String> = calls
                .iter()
                .map(|c| {
                    let quoted: Vec<String> = c
                        .1
                        .iter()
                        .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
                        .collect();
                    format!("{{{}}}", quoted.join(","))
                })
                .collect();
            let docs: Vec<&str> = calls.iter().map(|c| c.2.as_str()).collect();
            sqlx::query(
                "INSERT INTO cluster_open_calls (node, record, addresses, doc)
                 SELECT $1, r, a::text[], d FROM unnest($2::bigint[], $3::text[], $4::text[])
                 AS t(r, a, d)",
            )
            .bind(node)
            .bind(&records)
            .bind(&addresses)
            .bind(&docs)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Take (read and delete, so exactly one taker gets each) the calls in
    /// progress `node` saved that involve one of `addresses` (all of them
    /// when `addresses` is `None`): the records to close for a node that
    /// died, or for this node's own previous run.
    pub async fn take_open_calls(
        &self,
        node: &str,
        addresses: Option<&[String]>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = match addresses {
            None => {
                sqlx::query("DELETE FROM cluster_open_calls WHERE node = $1 RETURNING doc")
                    .bind(node)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(addresses) => {
                sqlx::query(
                    "DELETE FROM cluster_open_calls WHERE node = $1 AND addresses && $2::text[]
                     RETURNING doc",
                )
                .bind(node)
                .bind(addresses)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(|r| Ok(r.try_get("doc")?)).collect()
    }

    /// `node`'s slot: a small number (from 1) given to each node name the
    /// first time it joins and kept for ever, so that every node can make
    /// ids no other node makes without asking anyone again.
    pub async fn slot(&self, node: &str) -> Result<i32, StoreError> {
        // Two nodes joining at once may pick the same next slot; the
        // loser's insert fails on the UNIQUE slot and it tries again.
        for _ in 0..16 {
            let inserted = sqlx::query(
                "INSERT INTO cluster_slots (name, slot)
                   SELECT $1, coalesce(max(slot), 0) + 1 FROM cluster_slots
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(node)
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
            let row = sqlx::query("SELECT slot FROM cluster_slots WHERE name = $1")
                .bind(node)
                .fetch_one(&self.pool)
                .await?;
            return Ok(row.try_get("slot")?);
        }
        Err(StoreError::Db(sqlx::Error::Protocol(
            "no free cluster slot after 16 tries".into(),
        )))
    }

    /// Write `node`'s heartbeat.
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cluster_nodes (name, sip_uri, http_url, seen_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (name) DO UPDATE SET sip_uri = EXCLUDED.sip_uri,
                 http_url = EXCLUDED.http_url, seen_at = EXCLUDED.seen_at",
        )
        .bind(&node.name)
        .bind(&node.sip_uri)
        .bind(&node.http_url)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The nodes seen within `within`.
    pub async fn live_nodes(&self, within: Duration) -> Result<Vec<NodeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, sip_uri, http_url FROM cluster_nodes
             WHERE seen_at > now() - make_interval(secs => $1) ORDER BY name",
        )
        .bind(seconds(within))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| node_row(&r)).collect()
    }

    /// Every lease.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT line, node, epoch, lease_until <= now() AS expired FROM cluster_leases",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LeaseRow {
                    line: r.try_get("line")?,
                    node: r.try_get("node")?,
                    epoch: r.try_get("epoch")?,
                    expired: r.try_get("expired")?,
                })
            })
            .collect()
    }

    /// Claim `lines` for `node` for `lease`: each one that is free or
    /// expired becomes `node`'s with its epoch raised. Returns the lines won
    /// with their new epochs (a line another node holds is not among them).
    pub async fn claim(
        &self,
        node: &str,
        lines: &[String],
        lease: Duration,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "INSERT INTO cluster_leases (line, node, epoch, lease_until)
               SELECT l, $2, 1, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS l
             ON CONFLICT (line) DO UPDATE SET node = EXCLUDED.node,
                 epoch = cluster_leases.epoch + 1, lease_until = EXCLUDED.lease_until
               WHERE cluster_leases.lease_until <= now()
             RETURNING line, epoch",
        )
        .bind(lines)
        .bind(node)
        .bind(seconds(lease))
        .fetch_all(&self.pool)
        .await?;
        line_epochs(rows)
    }

    /// Extend `node`'s leases on `held` (line, epoch) by `lease` from now.
    /// Returns the lines extended: a lease that expired, moved or changed
    /// epoch meanwhile is not.
    pub async fn renew(
        &self,
        node: &str,
        held: &[(String, i64)],
        lease: Duration,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (lines, epochs): (Vec<String>, Vec<i64>) = held.iter().cloned().unzip();
        let rows = sqlx::query(
            "UPDATE cluster_leases AS c SET lease_until = now() + make_interval(secs => $4)
             FROM unnest($2::text[], $3::bigint[]) AS h(line, epoch)
             WHERE c.line = h.line AND c.epoch = h.epoch AND c.node = $1
               AND c.lease_until > now()
             RETURNING c.line, c.epoch",
        )
        .bind(node)
        .bind(&lines)
        .bind(&epochs)
        .bind(seconds(lease))
        .fetch_all(&self.pool)
        .await?;
        line_epochs(rows)
    }

    /// Give up `node`'s leases on `held` (line, epoch) at once, so the node
    /// that should serve them claims them in its next round.
    pub async fn release(&self, node: &str, held: &[(String, i64)]) -> Result<u64, StoreError> {
        if held.is_empty() {
            return Ok(0);
        }
        let (lines, epochs): (Vec<String>, Vec<i64>) = held.iter().cloned().unzip();
        let done = sqlx::query(
            "UPDATE cluster_leases AS c SET lease_until = now() - interval '1 millisecond'
             FROM unnest($2::text[], $3::bigint[]) AS h(line, epoch)
             WHERE c.line = h.line AND c.epoch = h.epoch AND c.node = $1",
        )
        .bind(node)
        .bind(&lines)
        .bind(&epochs)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A node leaving on purpose: its leases end now and its heartbeat goes,
    /// so the others take its lines in their next round instead of waiting
    /// for the leases to run out.
    pub async fn leave(&self, node: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE cluster_leases SET lease_until = now() - interval '1 millisecond'
             WHERE node = $1 AND lease_until > now()",
        )
        .bind(node)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE name = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record which line each address belongs to (`(address, line)`), for
    /// the edge's routing. Every node writes the same pairs from the same
    /// configuration, so the last writer wins harmlessly.
    pub async fn publish_addresses(&self, pairs: &[(String, String)]) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let (addresses, lines): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO cluster_addresses (address, line)
               SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (address) DO UPDATE SET line = EXCLUDED.line
               WHERE cluster_addresses.line <> EXCLUDED.line",
        )
        .bind(&addresses)
        .bind(&lines)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Save (or, with `None`, delete) the registrations of `address` (a
    /// document the caller encodes) as `node`, which holds `line`'s lease
    /// at `epoch`. Fenced: nothing is written unless that lease is still
    /// `node`'s at that epoch and unexpired. Returns whether it was written.
    pub async fn save_registration(
        &self,
        node: &str,
        line: &str,
        epoch: i64,
        address: &str,
        bindings: Option<&str>,
    ) -> Result<bool, StoreError> {
        let fence = "EXISTS (SELECT 1 FROM cluster_leases WHERE line = $2 AND node = $1
                     AND epoch = $3 AND lease_until > now())";
        let done = match bindings {
            Some(doc) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO cluster_registrations (address, line, epoch, bindings)
                       SELECT $4, $2, $3, $5 WHERE {fence}
                     ON CONFLICT (address) DO UPDATE SET line = EXCLUDED.line,
                       epoch = EXCLUDED.epoch, bindings = EXCLUDED.bindings
                       WHERE {fence}"
                )))
                .bind(node)
                .bind(line)
                .bind(epoch)
                .bind(address)
                .bind(doc)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM cluster_registrations WHERE address = $4 AND {fence}"
                )))
                .bind(node)
                .bind(line)
                .bind(epoch)
                .bind(address)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }

    /// The saved registrations of `addresses`: (address, document).
    pub async fn registrations(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT address, bindings FROM cluster_registrations WHERE address = ANY($1::text[])",
        )
        .bind(addresses)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("bindings")?)))
            .collect()
    }

    /// The node serving `address` now (its SIP URI), as the edge looks it
    /// up: the address's line, its unexpired lease, the holder's heartbeat.
    pub async fn serving_node(&self, address: &str) -> Result<Option<NodeRow>, StoreError> {
        let row = sqlx::query(
            "SELECT n.name, n.sip_uri, n.http_url FROM cluster_addresses a
               JOIN cluster_leases l ON l.line = a.line AND l.lease_until > now()
               JOIN cluster_nodes n ON n.name = l.node
             WHERE a.address = $1",
        )
        .bind(address)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| node_row(&r)).transpose()
    }
}
