//! Store write throughput: journal events and CDRs per second, written the
//! way the server's writer does (one transaction per batch), for SQLite (a
//! file in a temporary directory, WAL, `synchronous=NORMAL`) and PostgreSQL
//! (when `TAPIR_TEST_POSTGRES_URL` names a server; `scripts/with-postgres`
//! starts one). Figures, not a test.
//!
//! ```sh
//! scripts/with-postgres cargo run --release -p tapir-store --example store_load
//! ```

#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::time::Instant;
use tapir_store::{Batch, NewCdr, Store, StoredEvent};

const EVENT_BODY: &str = r#"{"seq":0,"type":"call.state","call":"call-123456","state":"connected","state_mode":"active"}"#;

fn events(from: u64, n: u64) -> Vec<StoredEvent> {
    (from..from + n)
        .map(|seq| StoredEvent {
            app: "crm".into(),
            seq,
            at: 1_764_000_000_000 + seq,
            body: EVENT_BODY.into(),
        })
        .collect()
}

fn cdr(n: u64) -> NewCdr {
    NewCdr {
        started_at: 1_764_000_000_000 + n,
        ended_at: 1_764_000_060_000 + n,
        addresses: vec!["1001".into(), "1002".into()],
        data: json!({
            "started_at": "2026-11-25T16:00:00.000Z",
            "answered_at": "2026-11-25T16:00:02.000Z",
            "ended_at": "2026-11-25T16:01:00.000Z",
            "duration_ms": 60000,
            "parties": [
                {"address": "1001", "call": format!("call-{n}"), "role": "caller"},
                {"address": "1002", "call": format!("call-{}", n + 1), "role": "called"}
            ],
            "origin": "outbound",
            "end_reason": "normal",
            "operations": [
                {"at": "2026-11-25T16:00:00.000Z", "op": "makecall", "app": "crm", "call": format!("call-{n}"), "result": "ok"},
                {"at": "2026-11-25T16:01:00.000Z", "op": "drop", "app": "crm", "call": format!("call-{n}"), "result": "ok"}
            ]
        }),
    }
}

async fn run(name: &str, store: &Store) {
    println!("{name}");
    let mut seq = 1;
    for (batch, total) in [(1u64, 2_000u64), (64, 50_000), (512, 200_000)] {
        let started = Instant::now();
        let mut written = 0;
        while written < total {
            store
                .write(&Batch {
                    events: events(seq, batch),
                    ..Batch::default()
                })
                .await
                .unwrap();
            seq += batch;
            written += batch;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  journal events, {batch:>3} per transaction: {:>9.0} events/s ({:.3} ms per transaction)",
            written as f64 / secs,
            secs * 1000.0 / (written / batch) as f64
        );
    }
    let mut n = 0;
    for (batch, total) in [(1u64, 1_000u64), (32, 20_000)] {
        let started = Instant::now();
        let mut written = 0;
        while written < total {
            store
                .write(&Batch {
                    cdrs: (n..n + batch).map(cdr).collect(),
                    ..Batch::default()
                })
                .await
                .unwrap();
            n += batch;
            written += batch;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  CDRs,           {batch:>3} per transaction: {:>9.0} CDRs/s ({:.3} ms per transaction)",
            written as f64 / secs,
            secs * 1000.0 / (written / batch) as f64
        );
    }
    let started = Instant::now();
    let deleted = store.prune_events(10_000).await.unwrap();
    println!(
        "  retention: {deleted} events deleted in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("load.db").display());
    let store = Store::open(&url).await.unwrap();
    run(
        "SQLite (WAL, synchronous=NORMAL, file in a temporary directory)",
        &store,
    )
    .await;
    store.close().await;
    match std::env::var(tapir_store::testing::POSTGRES_ENV) {
        Ok(base) if !base.is_empty() => {
            let url = tapir_store::testing::fresh_postgres_db(&base)
                .await
                .unwrap();
            let store = Store::open(&url).await.unwrap();
            run("PostgreSQL (local server, loopback, fsync on)", &store).await;
            store.close().await;
        }
        _ => println!(
            "PostgreSQL skipped: {} is not set (run under scripts/with-postgres)",
            tapir_store::testing::POSTGRES_ENV
        ),
    }
}
