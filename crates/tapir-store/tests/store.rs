//! The store against real databases: SQLite in a temporary directory always,
//! PostgreSQL when `TAPIR_TEST_POSTGRES_URL` names a server
//! (`scripts/with-postgres cargo test -p tapir-store`); without it the
//! PostgreSQL half prints that it was skipped.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use tapir_store::testing::{fresh_postgres_db, postgres_url};
use tapir_store::{
    Backend, Batch, CdrQuery, Doc, NewCdr, Seed, Store, StoredApp, StoredCompletion, StoredEvent,
    StoredForwarding, StoredRecording, StoredWebhook,
};

fn temp_sqlite(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join(format!("{name}.db")).display()
    );
    (dir, url)
}

/// Run `suite` against SQLite, and against PostgreSQL when there is one.
macro_rules! both {
    ($name:ident, $suite:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let (_dir, url) = temp_sqlite(stringify!($name));
                $suite(&url).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(base) = postgres_url(concat!("store test ", stringify!($name))) else {
                    return;
                };
                let url = fresh_postgres_db(&base).await.unwrap();
                $suite(&url).await;
            }
        }
    };
}

both!(seeding, seeding_suite);
both!(config_docs, config_docs_suite);
both!(forwarding_and_completions, forwarding_suite);
both!(journal, journal_suite);
both!(cdrs, cdr_suite);
both!(reopen, reopen_suite);
both!(webhooks, webhooks_suite);
both!(recordings, recordings_suite);

async fn seeding_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    assert!(!s.is_seeded().await.unwrap());
    s.seed(&Seed {
        lines: vec![
            Doc {
                key: "1002".into(),
                data: json!({"address": "1002"}),
            },
            Doc {
                key: "1001".into(),
                data: json!({"address": "1001", "password": "pw"}),
            },
        ],
        apps: vec![StoredApp {
            name: "crm".into(),
            token_hash: "ab".into(),
            data: json!({"name": "crm", "lines": ["*"]}),
        }],
        trunks: vec![Doc {
            key: "carrier".into(),
            data: json!({"host": "127.0.0.1"}),
        }],
        settings: vec![Doc {
            key: "park".into(),
            data: json!({"slots": "7001-7020"}),
        }],
        meta: vec![("admin_token_hash".into(), "cd".into())],
    })
    .await
    .unwrap();
    assert!(s.is_seeded().await.unwrap());
    // Lines keep the configuration's order, not the key order.
    let keys: Vec<String> = s
        .lines()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["1002", "1001"]);
    assert_eq!(s.apps().await.unwrap()[0].token_hash, "ab");
    assert_eq!(s.trunks().await.unwrap()[0].data["host"], "127.0.0.1");
    assert_eq!(
        s.setting("park").await.unwrap(),
        Some(json!({"slots": "7001-7020"}))
    );
    assert_eq!(s.setting("nothing").await.unwrap(), None);
    assert_eq!(
        s.meta("admin_token_hash").await.unwrap().as_deref(),
        Some("cd")
    );
}

async fn config_docs_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    let line = |a: &str, name: &str| Doc {
        key: a.into(),
        data: json!({"address": a, "name": name}),
    };
    s.put_line(&line("1001", "A")).await.unwrap();
    s.put_line(&line("1002", "B")).await.unwrap();
    s.put_line(&line("1001", "A2")).await.unwrap();
    let lines = s.lines().await.unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].data["name"], "A2", "replaced in place, order kept");
    // Renaming the first address keeps the position and drops forwarding of
    // the address it lost.
    s.put_forwarding(&StoredForwarding {
        address: "1001".into(),
        rules: json!([{"mode": "unconditional", "to": "1002"}]),
        no_answer_rings: 4,
    })
    .await
    .unwrap();
    s.replace_line("1001", &line("1005", "E"), &["1001".into()])
        .await
        .unwrap();
    let keys: Vec<String> = s
        .lines()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["1005", "1002"]);
    assert!(s.forwarding().await.unwrap().is_empty());
    assert!(s.delete_line("1002", &["1002".into()]).await.unwrap());
    assert!(!s.delete_line("1002", &[]).await.unwrap());

    let app = |name: &str, hash: &str| StoredApp {
        name: name.into(),
        token_hash: hash.into(),
        data: json!({"name": name}),
    };
    s.put_app(&app("crm", "h1")).await.unwrap();
    s.put_app(&app("wall", "h2")).await.unwrap();
    // Tokens are unique: a second app with the same hash is refused.
    assert!(s.put_app(&app("dup", "h1")).await.is_err());
    s.put_app(&app("crm", "h3")).await.unwrap();
    let apps = s.apps().await.unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0].token_hash, "h3");
    assert!(s.delete_app("crm").await.unwrap());
    assert!(!s.delete_app("crm").await.unwrap());

    s.put_trunk(&Doc {
        key: "carrier".into(),
        data: json!({"port": 5060}),
    })
    .await
    .unwrap();
    assert!(s.delete_trunk("carrier").await.unwrap());
    assert!(s.trunks().await.unwrap().is_empty());

    s.put_setting("park", &json!({"slots": "8001-8002"}))
        .await
        .unwrap();
    s.put_setting("park", &json!({"slots": "8001-8003"}))
        .await
        .unwrap();
    assert_eq!(
        s.setting("park").await.unwrap().unwrap()["slots"],
        "8001-8003"
    );
}

async fn forwarding_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    let f = StoredForwarding {
        address: "1001".into(),
        rules: json!([{"mode": "busy", "to": "1003"}]),
        no_answer_rings: 3,
    };
    s.put_forwarding(&f).await.unwrap();
    assert_eq!(s.forwarding().await.unwrap(), std::slice::from_ref(&f));
    s.put_forwarding(&StoredForwarding {
        rules: json!([]),
        ..f
    })
    .await
    .unwrap();
    assert!(
        s.forwarding().await.unwrap().is_empty(),
        "empty rules cancel"
    );

    let c = |id: u64, app: &str| StoredCompletion {
        id,
        app: app.into(),
        data: json!({"mode": "callback", "from": "1001", "to": "1002"}),
    };
    s.write(&Batch {
        completions: Some(vec![c(7, "crm"), c(9, "wall")]),
        ..Batch::default()
    })
    .await
    .unwrap();
    assert_eq!(s.completions().await.unwrap().len(), 2);
    // A later set replaces the earlier one.
    s.write(&Batch {
        completions: Some(vec![c(9, "wall")]),
        ..Batch::default()
    })
    .await
    .unwrap();
    assert_eq!(s.completions().await.unwrap(), [c(9, "wall")]);
    // Deleting an app deletes its requests.
    s.delete_app("wall").await.unwrap();
    assert!(s.completions().await.unwrap().is_empty());
}

fn event(app: &str, seq: u64) -> StoredEvent {
    StoredEvent {
        app: app.into(),
        seq,
        at: 1_700_000_000_000 + seq,
        body: format!("{{\"seq\":{seq},\"type\":\"digits.generated\"}}"),
    }
}

async fn journal_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    // More than one multi-row chunk in one batch.
    let events: Vec<StoredEvent> = (1..=150).map(|n| event("crm", n)).collect();
    s.write(&Batch {
        events,
        ..Batch::default()
    })
    .await
    .unwrap();
    s.write(&Batch {
        events: vec![event("wall", 1), event("crm", 150)],
        ..Batch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        s.event_count("crm").await.unwrap(),
        150,
        "a repeat is ignored"
    );
    assert_eq!(
        s.last_seqs().await.unwrap(),
        [("crm".to_string(), 150), ("wall".to_string(), 1)]
    );
    let tail = s.events_tail("crm", 3).await.unwrap();
    let seqs: Vec<u64> = tail.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [148, 149, 150]);
    assert_eq!(tail[2], event("crm", 150));
    // Retention keeps the last N per app.
    assert_eq!(s.prune_events(100).await.unwrap(), 50);
    assert_eq!(s.event_count("crm").await.unwrap(), 100);
    assert_eq!(s.event_count("wall").await.unwrap(), 1);
    assert_eq!(s.events_tail("crm", 1000).await.unwrap()[0].seq, 51);
}

async fn webhooks_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    let hook = |id: &str, app: &str, acked: u64| StoredWebhook {
        id: id.into(),
        app: app.into(),
        secret: "whsec_not-in-debug".into(),
        acked,
        suspended: false,
        data: json!({"url": "https://crm.example/hook", "batch": 1}),
    };
    s.put_webhook(&hook("wh_b", "crm", 0)).await.unwrap();
    s.put_webhook(&hook("wh_a", "crm", 120)).await.unwrap();
    s.put_webhook(&hook("wh_c", "wall", 0)).await.unwrap();
    assert!(!format!("{:?}", hook("x", "y", 0)).contains("not-in-debug"));
    let all = s.webhooks().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["wh_a", "wh_b", "wh_c"]);
    assert_eq!(all[0], hook("wh_a", "crm", 120));
    assert!(s.set_webhook_progress("wh_b", 40, false).await.unwrap());
    assert!(!s.set_webhook_progress("wh_gone", 40, true).await.unwrap());
    // Events after a seq, bounded.
    let events: Vec<StoredEvent> = (1..=150).map(|n| event("crm", n)).collect();
    s.write(&Batch {
        events,
        ..Batch::default()
    })
    .await
    .unwrap();
    let after = s.events_after("crm", 40, 5).await.unwrap();
    let seqs: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [41, 42, 43, 44, 45]);
    assert!(s.events_after("crm", 150, 5).await.unwrap().is_empty());
    // Retention keeps what an active webhook has not acknowledged: wh_b is
    // at 40, so 41.. stay although only 10 are to be kept.
    assert_eq!(s.prune_events(10).await.unwrap(), 40);
    assert_eq!(s.events_tail("crm", 1000).await.unwrap()[0].seq, 41);
    // Suspended, it no longer holds the journal back.
    assert!(s.set_webhook_progress("wh_b", 40, true).await.unwrap());
    assert_eq!(s.prune_events(10).await.unwrap(), 80);
    assert_eq!(s.events_tail("crm", 1000).await.unwrap()[0].seq, 121);
    let b = s.webhooks().await.unwrap().remove(1);
    assert_eq!((b.acked, b.suspended), (40, true));
    assert!(s.delete_webhook("wh_a").await.unwrap());
    assert!(!s.delete_webhook("wh_a").await.unwrap());
    // Deleting an app deletes its webhooks.
    s.put_app(&StoredApp {
        name: "wall".into(),
        token_hash: "ab".repeat(32),
        data: json!({}),
    })
    .await
    .unwrap();
    assert!(s.delete_app("wall").await.unwrap());
    let ids: Vec<String> = s
        .webhooks()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["wh_b"]);
}

async fn cdr_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    let cdr = |n: u64, parties: &[&str]| NewCdr {
        started_at: 1000 * n,
        ended_at: 1000 * n + 500,
        addresses: parties.iter().map(|p| p.to_string()).collect(),
        data: json!({"n": n, "parties": parties}),
    };
    s.write(&Batch {
        cdrs: vec![cdr(1, &["1001", "1002"]), cdr(2, &["1002", "1003", "1002"])],
        ..Batch::default()
    })
    .await
    .unwrap();
    s.write(&Batch {
        cdrs: vec![cdr(3, &["1001"])],
        meta: vec![("id_floor".into(), "5000".into())],
        ..Batch::default()
    })
    .await
    .unwrap();
    assert_eq!(s.cdr_count().await.unwrap(), 3);
    assert_eq!(s.meta("id_floor").await.unwrap().as_deref(), Some("5000"));
    let all = s
        .cdrs(&CdrQuery {
            limit: 10,
            ..CdrQuery::default()
        })
        .await
        .unwrap();
    let ns: Vec<i64> = all.iter().map(|c| c.data["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [3, 2, 1], "newest first");
    let page = s
        .cdrs(&CdrQuery {
            limit: 1,
            before: Some(all[0].id),
            address: None,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[1].id);
    let of_1001 = s
        .cdrs(&CdrQuery {
            limit: 10,
            before: None,
            address: Some("1001".into()),
        })
        .await
        .unwrap();
    let ns: Vec<i64> = of_1001
        .iter()
        .map(|c| c.data["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [3, 1]);
    assert!(
        s.cdrs(&CdrQuery {
            limit: 10,
            before: None,
            address: Some("9999".into())
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(s.cdr(all[2].id).await.unwrap().unwrap().data["n"], 1);
    assert_eq!(s.cdr(999_999).await.unwrap(), None);
}

async fn reopen_suite(url: &str) {
    {
        let s = Store::open(url).await.unwrap();
        s.set_meta("k", "v").await.unwrap();
        s.write(&Batch {
            events: vec![event("crm", 1)],
            ..Batch::default()
        })
        .await
        .unwrap();
        s.close().await;
    }
    // Migrations run again harmlessly; the data is there.
    let s = Store::open(url).await.unwrap();
    assert_eq!(s.meta("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(s.event_count("crm").await.unwrap(), 1);
    let expect = if url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(s.backend(), expect);
}

#[tokio::test]
async fn a_bad_url_is_refused() {
    let e = Store::open("mysql://x").await.unwrap_err();
    assert!(e.to_string().contains("neither sqlite"));
}

#[tokio::test]
async fn memory_store_works() {
    let s = Store::open("sqlite::memory:").await.unwrap();
    s.set_meta("a", "b").await.unwrap();
    assert_eq!(s.meta("a").await.unwrap().as_deref(), Some("b"));
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let (dir, url) = temp_sqlite("wal");
    let s = Store::open(&url).await.unwrap();
    s.set_meta("a", "b").await.unwrap();
    assert!(dir.path().join("wal.db-wal").exists(), "WAL file present");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("wal.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the database holds passwords: owner only");
    }
}

async fn recordings_suite(url: &str) {
    let s = Store::open(url).await.unwrap();
    assert!(s.recordings().await.unwrap().is_empty());
    let rec = |id: &str, at: u64, bytes: u64| StoredRecording {
        id: id.into(),
        started_at: at,
        bytes,
        data: json!({"id": id, "state": "recording"}),
    };
    s.put_recording(&rec("rec-a", 1_000, 44)).await.unwrap();
    s.put_recording(&rec("rec-b", 2_000, 44)).await.unwrap();
    let mut done = rec("rec-a", 1_000, 32_044);
    done.data["state"] = json!("stopped");
    s.put_recording(&done).await.unwrap();
    let all = s.recordings().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["rec-b", "rec-a"],
        "newest first"
    );
    assert_eq!(s.recording("rec-a").await.unwrap(), Some(done));
    assert_eq!(s.recording("rec-zz").await.unwrap(), None);
    assert!(s.delete_recording("rec-b").await.unwrap());
    assert!(!s.delete_recording("rec-b").await.unwrap());
    s.close().await;
    // The rows survive a reopen.
    let s = Store::open(url).await.unwrap();
    assert_eq!(s.recordings().await.unwrap().len(), 1);
    s.close().await;
}
