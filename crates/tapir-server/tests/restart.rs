//! Restart without loss: the real `tapir` binary is killed with SIGKILL in
//! the middle of traffic and started again on the same store; the
//! configuration changed at run time, forwarding, a pending callback
//! request, the CDRs of finished calls and the event journal are all there,
//! and an app resumes its event stream where it stopped.
//!
//! Runs on SQLite (the default store in the data directory) and on
//! PostgreSQL when `TAPIR_TEST_POSTGRES_URL` names a server (`scripts/test`
//! runs it under `scripts/with-postgres`); without one the PostgreSQL run
//! prints that it was skipped.

#![allow(clippy::unwrap_used, missing_docs)]

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "restart-admin-token";
const CRM: &str = "restart-crm-token-0001";
const LATE: &str = "restart-late-token-0001";
const WAIT: Duration = Duration::from_secs(20);

fn config(port: u16, data_dir: &std::path::Path, store: Option<&str>) -> String {
    let store = store
        .map(|u| format!("[store]\nurl = \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        r#"data_dir = "{}"
{store}
[sip]
listen = []
[http]
listen = "127.0.0.1:{port}"
admin_token = "{ADMIN}"
journal_capacity = 100000
[[lines]]
address = "2001"
kind = "routepoint"
[[lines]]
address = "2002"
kind = "routepoint"
[[lines]]
address = "2003"
kind = "routepoint"
[[lines]]
address = "2004"
kind = "routepoint"
max_calls = 1
[[apps]]
name = "crm"
token = "{CRM}"
lines = ["*"]
[park]
slots = "7001-7005"
"#,
        data_dir.display()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tapir_bin() -> String {
    std::env::var("TAPIR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tapir").to_string())
}

/// An HTTP client of one server.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

/// A running `tapir serve`; killed with SIGKILL when dropped.
struct Tapir {
    child: Child,
    api: Api,
}

impl std::ops::Deref for Tapir {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Tapir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tapir {
    async fn start(dir: &std::path::Path, store: Option<&str>) -> Tapir {
        let port = free_port();
        let cfg = dir.join("tapir.toml");
        std::fs::write(&cfg, config(port, &dir.join("data"), store)).unwrap();
        let log = std::fs::File::create(dir.join(format!("tapir-{port}.log"))).unwrap();
        let child = Command::new(tapir_bin())
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Tapir {
            child,
            api: Api {
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            },
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = t.http.get(format!("{}/healthz", t.base)).send().await
                && r.status() == 200
            {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tapir did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no goodbye.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(WAIT);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        match rb.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, token, path, None).await
    }

    async fn ok(&self, method: reqwest::Method, token: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.send(method, token, path, Some(body)).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }
}

/// Events read so far, seq → text.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<BTreeMap<u64, String>>>);

/// Reads an app's event stream.
struct Reader {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    async fn connect(base: &str, token: &str, since: u64) -> Reader {
        let url = format!(
            "{}/v1/events?since={since}",
            base.replace("http://", "ws://")
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let seen = Seen::default();
        let into = seen.0.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(v["type"], "stream.resync", "no resync expected: {v}");
                    let seq = v["seq"].as_u64().unwrap();
                    into.lock().unwrap().insert(seq, t.to_string());
                }
            }
        });
        Reader { seen, task }
    }

    fn snapshot(&self) -> BTreeMap<u64, String> {
        self.seen.snapshot()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.seen.wait_for(what, pred).await
    }
}

impl Seen {
    fn snapshot(&self) -> BTreeMap<u64, String> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = self
                .snapshot()
                .values()
                .map(|t| serde_json::from_str::<Value>(t).unwrap())
                .find(|v| pred(v))
            {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "no event: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One call between two route points, answered, held and dropped.
async fn one_call(t: &Api, events: &Seen) -> bool {
    use reqwest::Method;
    let (status, a) = t
        .send(
            Method::POST,
            CRM,
            "/v1/calls",
            Some(json!({"from": "2001", "to": "2002"})),
        )
        .await;
    if status != 201 && status != 200 {
        return false;
    }
    let a = a["id"].as_str().unwrap_or_default().to_string();
    let Ok(new) = tokio::time::timeout(
        Duration::from_secs(5),
        events.wait_for("call.new at 2002", |v| {
            v["type"] == "call.new"
                && v["address"] == "2002"
                && v["reason"] != "callcompletion"
                && v["call"].as_str().is_some_and(|c| {
                    c.trim_start_matches("call-").parse::<u64>().unwrap_or(0)
                        > a.trim_start_matches("call-").parse::<u64>().unwrap_or(0)
                })
        }),
    )
    .await
    else {
        return false;
    };
    let b = new["call"].as_str().unwrap().to_string();
    for (call, op) in [(&b, "answer"), (&a, "hold"), (&a, "drop"), (&b, "drop")] {
        let (s, _) = t
            .send(
                Method::POST,
                CRM,
                &format!("/v1/calls/{call}/{op}"),
                Some(json!({})),
            )
            .await;
        if s == 0 {
            return false;
        }
    }
    for call in [&a, &b] {
        t.send(Method::DELETE, CRM, &format!("/v1/calls/{call}"), None)
            .await;
    }
    true
}

async fn admin_view(t: &Tapir) -> Vec<Value> {
    let mut out = Vec::new();
    for p in [
        "/v1/admin/lines",
        "/v1/admin/apps",
        "/v1/admin/trunks",
        "/v1/admin/pickup-groups",
    ] {
        let (status, v) = t.get(ADMIN, p).await;
        assert_eq!(status, 200, "{p}");
        out.push(v);
    }
    let (_, mut park) = t.get(ADMIN, "/v1/admin/park").await;
    park.as_object_mut().unwrap().remove("parked");
    out.push(park);
    out
}

async fn cdrs(t: &Tapir) -> Vec<Value> {
    let (status, v) = t.get(ADMIN, "/v1/admin/cdr?limit=1000").await;
    assert_eq!(status, 200);
    v["cdrs"].as_array().unwrap().clone()
}

async fn restart_suite(store: Option<String>) {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let store = store.as_deref();

    // ---- First run: configure, set state, make traffic, kill -9.
    let t = Tapir::start(dir.path(), store).await;
    t.ok(
        Method::POST,
        ADMIN,
        "/v1/admin/lines",
        json!({"address": "3001", "name": "Added", "password": "pw-3001"}),
    )
    .await;
    t.ok(
        Method::PUT,
        ADMIN,
        "/v1/admin/lines/2003",
        json!({"kind": "routepoint", "name": "Renamed"}),
    )
    .await;
    t.ok(
        Method::POST,
        ADMIN,
        "/v1/admin/apps",
        json!({"name": "late", "lines": ["3001"], "token": LATE}),
    )
    .await;
    t.ok(
        Method::POST,
        ADMIN,
        "/v1/admin/trunks",
        json!({"name": "carrier", "host": "127.0.0.1", "password": "x"}),
    )
    .await;
    t.ok(
        Method::PUT,
        ADMIN,
        "/v1/admin/pickup-groups/sales",
        json!({"members": ["2001", "2002"]}),
    )
    .await;
    t.ok(
        Method::PUT,
        ADMIN,
        "/v1/admin/park",
        json!({"slots": "7001-7009", "reminder_ms": 45000}),
    )
    .await;
    for l in ["2001", "2002", "2003", "2004"] {
        t.ok(
            Method::POST,
            CRM,
            &format!("/v1/lines/{l}/open"),
            json!({"privileges": ["owner"]}),
        )
        .await;
    }
    let events = Reader::connect(&t.base, CRM, 0).await;
    t.ok(
        Method::PUT,
        CRM,
        "/v1/addresses/2003/forwarding",
        json!({"rules": [{"mode": "busy", "to": "2001"}], "no_answer_rings": 3}),
    )
    .await;
    // A callback request: 2004 (one call appearance) is busy.
    let first = t
        .ok(
            Method::POST,
            CRM,
            "/v1/calls",
            json!({"from": "2002", "to": "2004"}),
        )
        .await;
    let held = events
        .wait_for("call.new at 2004", |v| {
            v["type"] == "call.new" && v["address"] == "2004"
        })
        .await;
    let held = held["call"].as_str().unwrap().to_string();
    t.ok(
        Method::POST,
        CRM,
        &format!("/v1/calls/{held}/answer"),
        json!({}),
    )
    .await;
    let busy = t
        .ok(
            Method::POST,
            CRM,
            "/v1/calls",
            json!({"from": "2001", "to": "2004"}),
        )
        .await;
    let busy = busy["id"].as_str().unwrap().to_string();
    events
        .wait_for("busy", |v| {
            v["type"] == "call.state" && v["call"] == busy.as_str() && v["state"] == "busy"
        })
        .await;
    let compl = t
        .ok(
            Method::POST,
            CRM,
            &format!("/v1/calls/{busy}/complete"),
            json!({"mode": "callback"}),
        )
        .await;
    let compl = compl["completion_id"].as_str().unwrap().to_string();
    assert!(first["id"].is_string());

    // Finished calls with CDRs, then traffic running while we kill.
    for _ in 0..5 {
        assert!(one_call(&t, &events.seen).await);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while cdrs(&t).await.len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "CDRs not written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One record per call: the five, and the busy attempt that the callback
    // request ended (2002's call to 2004 is still up).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = cdrs(&t).await;
    assert_eq!(written.len(), 6, "{written:?}");
    let busy_cdr = written.iter().find(|c| c["end_reason"] == "busy").unwrap();
    assert_eq!(busy_cdr["parties"][0]["address"], "2001");
    assert!(busy_cdr["answered_at"].is_null());
    let config_before = admin_view(&t).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU32::new(0));
    let traffic = {
        let (stop, done) = (stop.clone(), done.clone());
        let api = t.api.clone();
        let seen = events.seen.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) && one_call(&api, &seen).await {
                done.fetch_add(1, Ordering::SeqCst);
            }
            done.load(Ordering::SeqCst)
        })
    };
    // Kill in the middle of traffic: after a few calls went through.
    let deadline = tokio::time::Instant::now() + WAIT;
    while done.load(Ordering::SeqCst) < 10 {
        assert!(tokio::time::Instant::now() < deadline, "no traffic");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
    // What was acknowledged before the kill: CDRs listed, events seen.
    let cdrs_before = cdrs(&t).await;
    let seen_before = events.snapshot();
    t.kill();
    stop.store(true, Ordering::SeqCst);
    let calls_during = traffic.await.unwrap();
    events.task.abort();
    assert!(calls_during > 0, "traffic ran while tapir was killed");
    let last_seen = *seen_before.keys().last().unwrap();
    assert_eq!(
        seen_before.keys().copied().collect::<Vec<_>>(),
        (1..=last_seen).collect::<Vec<_>>(),
        "events arrive without holes"
    );

    eprintln!(
        "killed after {} CDRs listed, {} events seen, {calls_during} calls of traffic during the kill",
        cdrs_before.len(),
        seen_before.len()
    );

    // ---- Second run on the same store.
    let t = Tapir::start(dir.path(), store).await;
    assert_eq!(admin_view(&t).await, config_before, "configuration intact");
    // The app added at run time authenticates, SIP credentials of the added line are kept.
    assert_eq!(t.get(LATE, "/v1/lines").await.0, 200);
    let (_, status) = t.get(CRM, "/v1/addresses/2003").await;
    assert_eq!(
        status["forwarding"]["rules"],
        json!([{"mode": "busy", "to": "2001"}])
    );
    assert_eq!(status["forwarding"]["no_answer_rings"], 3);
    // Every CDR listed before the kill is there, unchanged.
    let after = cdrs(&t).await;
    for c in &cdrs_before {
        let id = c["id"].as_str().unwrap();
        let (s, again) = t.get(ADMIN, &format!("/v1/admin/cdr/{id}")).await;
        assert_eq!(s, 200, "CDR {id} lost");
        assert_eq!(&again, c);
    }
    assert!(after.len() >= cdrs_before.len());
    // The journal: every event seen before replays with the same text; an
    // app resumes from where it stopped and numbering goes on.
    let replay = Reader::connect(&t.base, CRM, 0).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while replay.snapshot().len() < seen_before.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "journal not replayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replayed = replay.snapshot();
    for (seq, text) in &seen_before {
        assert_eq!(
            replayed.get(seq),
            Some(text),
            "event {seq} differs after the restart"
        );
    }
    let resumed = Reader::connect(&t.base, CRM, last_seen).await;
    // The callback request survived: the target is free after the restart,
    // so it completes now and the app is told, with seq after the old ones.
    let done = resumed
        .wait_for("completion.done", |v| {
            v["type"] == "completion.done" && v["completion"] == compl.as_str()
        })
        .await;
    assert!(done["seq"].as_u64().unwrap() > last_seen, "{done}");
    for l in ["2001", "2002"] {
        t.ok(
            Method::POST,
            CRM,
            &format!("/v1/lines/{l}/open"),
            json!({"privileges": ["owner"]}),
        )
        .await;
    }
    assert!(one_call(&t, &resumed.seen).await);
    // Resumed right after the last event seen, without holes.
    let got: Vec<u64> = resumed.snapshot().keys().copied().collect();
    let last = *got.last().unwrap();
    assert_eq!(got, (last_seen + 1..=last).collect::<Vec<_>>());
    resumed.task.abort();
    replay.task.abort();
    t.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_traffic_loses_nothing_acknowledged_sqlite() {
    restart_suite(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_traffic_loses_nothing_acknowledged_postgres() {
    let Some(base) = tapir_store::testing::postgres_url("restart test (SIGKILL mid-traffic)")
    else {
        return;
    };
    let url = tapir_store::testing::fresh_postgres_db(&base)
        .await
        .unwrap();
    restart_suite(Some(url)).await;
}
