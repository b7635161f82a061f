//! Webhooks against a real receiver on loopback: an HTTP server inside the
//! test checks every POST's signature and the order of the `seq`s. It
//! answers 2xx, 500, hangs, sends 10 MB back, or is down for 30 s; tapir is
//! also SIGKILLed mid-delivery and started again on the same store (SQLite,
//! and PostgreSQL when `TAPIR_TEST_POSTGRES_URL` names a server, as
//! `scripts/test` runs it under `scripts/with-postgres`). Every wait is
//! bounded; retry and suspension times are configured short.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Api;
use tokio::sync::oneshot;

const SECRET: &str = "whsec_test_0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Hang,
    Huge,
    Slow,
}

#[derive(Debug)]
struct Recv {
    mode: Mode,
    /// Every event received, in arrival order (repeats included): the
    /// webhook's id, the seq and the type.
    events: Vec<(String, u64, String)>,
    /// POSTs whose signature did not verify.
    bad_signatures: usize,
    /// POSTs whose body was an array.
    arrays: usize,
    posts: usize,
}

type Shared = Arc<Mutex<Recv>>;

struct Receiver {
    addr: SocketAddr,
    state: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers.get("tapir-signature").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A replay window, as a receiver would keep.
    if t.abs_diff(now) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

async fn hook(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = {
        let mut r = st.lock().unwrap();
        r.posts += 1;
        r.mode
    };
    match mode {
        Mode::Fail => return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no").into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return "late".into_response();
        }
        Mode::Slow => tokio::time::sleep(Duration::from_millis(30)).await,
        Mode::Ok | Mode::Huge => {}
    }
    let ok = verify(&headers, &body);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    {
        let mut r = st.lock().unwrap();
        if !ok {
            r.bad_signatures += 1;
        }
        let id = headers
            .get("tapir-webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let events = match v {
            Value::Array(a) => {
                r.arrays += 1;
                a
            }
            other => vec![other],
        };
        for e in events {
            r.events.push((
                id.clone(),
                e["seq"].as_u64().unwrap_or(0),
                e["type"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    if mode == Mode::Huge {
        // 10 MB answer to a 2xx: tapir reads a bounded part of it.
        return (axum::http::StatusCode::OK, vec![b'x'; 10 << 20]).into_response();
    }
    axum::http::StatusCode::NO_CONTENT.into_response()
}

impl Receiver {
    async fn start(port: u16, state: Option<Shared>) -> Receiver {
        let state = state.unwrap_or_else(|| {
            Arc::new(Mutex::new(Recv {
                mode: Mode::Ok,
                events: Vec::new(),
                bad_signatures: 0,
                arrays: 0,
                posts: 0,
            }))
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            addr,
            state,
            stop: Some(tx),
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn seqs(&self) -> Vec<u64> {
        self.state
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| e.1)
            .collect()
    }

    fn seqs_of(&self, id: &str) -> Vec<u64> {
        let r = self.state.lock().unwrap();
        r.events.iter().filter(|e| e.0 == id).map(|e| e.1).collect()
    }

    fn types_of(&self, id: &str) -> Vec<String> {
        let r = self.state.lock().unwrap();
        r.events
            .iter()
            .filter(|e| e.0 == id)
            .map(|e| e.2.clone())
            .collect()
    }

    /// Stop listening and close every connection.
    async fn down(mut self) -> (u16, Shared) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
        (self.addr.port(), self.state)
    }
}

/// Bounded wait for a condition.
async fn until<F: FnMut() -> bool>(what: &str, secs: u64, mut f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Seqs first seen, in arrival order, must be increasing; together they must
/// be every seq from `from` to `to`.
fn assert_in_order_none_lost(seqs: &[u64], from: u64, to: u64) {
    let mut seen = std::collections::BTreeSet::new();
    let mut last = 0;
    for s in seqs {
        if seen.insert(*s) {
            assert!(*s > last, "seq {s} arrived after {last}: {seqs:?}");
            last = *s;
        }
    }
    let want: Vec<u64> = (from..=to).collect();
    let got: Vec<u64> = seen.into_iter().collect();
    assert_eq!(got, want, "arrived: {seqs:?}");
}

/// Each seq at its first arrival (a retry after a lost answer may repeat one:
/// at least once).
fn first_arrivals(seqs: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::BTreeSet::new();
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

fn open_settings(c: &mut tapir_server::Config) {
    c.webhooks.allow_http = true;
    c.webhooks.allow_private = true;
    c.webhooks.retry_min = 0.05;
    c.webhooks.retry_max = 0.5;
    c.webhooks.timeout = 10.0;
}

/// `n` events for alpha: its forwarding of 2001 set and cleared in turn.
async fn make_events(alpha: &Api, n: usize) {
    for k in 0..n {
        let rules = if k % 2 == 0 {
            json!([{"mode": "unconditional", "to": "2003"}])
        } else {
            json!([])
        };
        let (st, v) = alpha
            .put("/v1/addresses/2001/forwarding", json!({ "rules": rules }))
            .await;
        assert_eq!(st, 200, "{v}");
    }
}

async fn view(api: &Api, id: &str) -> Value {
    let (st, v) = api.get(&format!("/v1/admin/webhooks/{id}")).await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Wait until the webhook has nothing pending, and return its acked seq.
async fn drained(admin: &Api, id: &str, secs: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = view(admin, id).await;
        if v["pending"] == 0 {
            return v["acked"].as_u64().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "not drained: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn signed_events_arrive_in_order_filtered_and_batched() {
    let recv = Receiver::start(0, None).await;
    let s = support::server_with(open_settings).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner", "monitor"]).await;
    let (st, all) = alpha
        .post("/v1/webhooks", json!({"url": recv.url(), "secret": SECRET}))
        .await;
    assert_eq!(st, 201, "{all}");
    assert_eq!(all["secret"], SECRET, "shown in the reply that set it");
    let id = all["id"].as_str().unwrap().to_string();
    let start = all["acked"].as_u64().unwrap();
    let (st, batched) = admin
        .post(
            "/v1/admin/webhooks",
            json!({"app": "alpha", "url": recv.url(), "secret": SECRET,
                   "events": ["address.*"], "batch": 5}),
        )
        .await;
    assert_eq!(st, 201, "{batched}");
    let batched_id = batched["id"].as_str().unwrap().to_string();

    make_events(&alpha, 40).await;
    let last = drained(&admin, &id, 20).await;
    assert!(last >= start + 40, "{last}");
    drained(&admin, &batched_id, 20).await;
    {
        let r = recv.state.lock().unwrap();
        assert_eq!(r.bad_signatures, 0);
        assert!(r.arrays > 0, "the batching webhook sends arrays");
    }
    // The plain webhook: every event of alpha after its creation, in order.
    assert_in_order_none_lost(&recv.seqs_of(&id), start + 1, last);
    // The batched one: only the forwarding events, in order, in arrays.
    let fwd = first_arrivals(&recv.seqs_of(&batched_id));
    assert!(fwd.len() >= 40, "{fwd:?}");
    assert!(fwd.windows(2).all(|w| w[0] < w[1]), "{fwd:?}");
    assert!(
        recv.types_of(&batched_id)
            .iter()
            .all(|t| t == "address.forwarding")
    );
    // The secret is never shown again; the app sees only its own webhooks.
    let (_, list) = alpha.get("/v1/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(SECRET));
    assert!(!view(&admin, &id).await.to_string().contains(SECRET));
    let (_, list) = beta.get("/v1/webhooks").await;
    assert_eq!(list["webhooks"], json!([]));
    let (st, _) = beta.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(st, 404);
    let (st, _) = beta.delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(st, 404);
    let (st, v) = alpha.get("/v1/admin/webhooks").await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = alpha.delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(st, 204);
    s.shutdown().await;
}

#[tokio::test]
async fn an_address_filter_delivers_only_that_address_in_order() {
    let recv = Receiver::start(0, None).await;
    let s = support::server_with(open_settings).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner", "monitor"]).await;
    alpha.open("2003", &["owner", "monitor"]).await;
    let (st, w) = alpha
        .post(
            "/v1/webhooks",
            json!({"url": recv.url(), "secret": SECRET, "addresses": ["2001"]}),
        )
        .await;
    assert_eq!(st, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_string();
    for k in 0..15 {
        make_events(&alpha, 2).await;
        let rules = if k % 2 == 0 {
            json!([{"mode": "unconditional", "to": "2001"}])
        } else {
            json!([])
        };
        let (st, v) = alpha
            .put("/v1/addresses/2003/forwarding", json!({ "rules": rules }))
            .await;
        assert_eq!(st, 200, "{v}");
    }
    drained(&admin, &id, 20).await;
    let seqs = first_arrivals(&recv.seqs());
    assert_eq!(
        seqs.len(),
        30,
        "the 30 changes of 2001, not 2003's: {seqs:?}"
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    {
        let r = recv.state.lock().unwrap();
        assert!(
            r.events.iter().all(|e| e.2 == "address.forwarding"),
            "{:?}",
            r.events
        );
        assert_eq!(r.bad_signatures, 0);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let s = support::server_with(|c| c.webhooks.max_per_app = 2).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    let cases = [
        (json!({}), "needs a \"url\""),
        (json!({"url": "not a url"}), "is not a URL"),
        (json!({"url": "http://93.184.216.34/x"}), "https://"),
        (json!({"url": "https://127.0.0.1:9/x"}), "allow_private"),
        (json!({"url": "https://localhost/x"}), "allow_private"),
        (json!({"url": "https://[::1]/x"}), "allow_private"),
        (json!({"url": "https://10.0.0.8/x"}), "allow_private"),
        (json!({"url": "https://u:p@93.184.216.34/x"}), "user name"),
        (
            json!({"url": "https://93.184.216.34/x", "events": ["call.state", "Bad Type"]}),
            "not an event type",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "events": vec!["call.state"; 10_000]}),
            "at most 64",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "addresses": vec!["2001"; 20_000]}),
            "at most 256",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "batch": 0}),
            "\"batch\"",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "secret": "short"}),
            "16 to 256",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "colour": "red"}),
            "unknown field",
        ),
        (
            json!({"url": format!("https://93.184.216.34/{}", "a".repeat(5000))}),
            "\"url\"",
        ),
    ];
    for (body, words) in cases {
        let (st, v) = alpha.post("/v1/webhooks", body.clone()).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalparam", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message}");
    }
    // Another app's name in an app's own request.
    let (st, v) = alpha
        .post(
            "/v1/webhooks",
            json!({"app": "beta", "url": "https://93.184.216.34/"}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    // Admin: the app is required and must exist.
    let (st, v) = admin
        .post(
            "/v1/admin/webhooks",
            json!({"url": "https://93.184.216.34/"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = admin
        .post(
            "/v1/admin/webhooks",
            json!({"app": "nobody", "url": "https://93.184.216.34/"}),
        )
        .await;
    assert_eq!(st, 404, "{v}");
    // A bounded number per app.
    for _ in 0..2 {
        let (st, v) = alpha
            .post("/v1/webhooks", json!({"url": "https://93.184.216.34/"}))
            .await;
        assert_eq!(st, 201, "{v}");
        assert!(
            v["secret"].as_str().unwrap().starts_with("whsec_"),
            "generated"
        );
    }
    let (st, v) = alpha
        .post("/v1/webhooks", json!({"url": "https://93.184.216.34/"}))
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "resourceunavail");
    // Nothing refused was created.
    let (_, list) = admin.get("/v1/admin/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2, "{list}");
    s.shutdown().await;
}

#[tokio::test]
async fn a_receiver_down_for_30_s_then_back_gets_every_event_in_order() {
    let recv = Receiver::start(0, None).await;
    let s = support::server_with(|c| {
        open_settings(c);
        c.webhooks.retry_max = 1.0;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner", "monitor"]).await;
    let (_, w) = alpha
        .post("/v1/webhooks", json!({"url": recv.url(), "secret": SECRET}))
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let start = w["acked"].as_u64().unwrap();
    make_events(&alpha, 10).await;
    until("first events", 20, || recv.seqs().len() >= 10).await;
    let (port, state) = recv.down().await;
    // Down: events go on for 30 s.
    let down_until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut made = 0;
    while tokio::time::Instant::now() < down_until {
        make_events(&alpha, 5).await;
        made += 5;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = view(&admin, &id).await;
    assert_eq!(v["state"], "failing", "{v}");
    assert!(v["pending"].as_u64().unwrap() >= made, "{v}");
    let recv = Receiver::start(port, Some(state)).await;
    let last = drained(&admin, &id, 30).await;
    assert_in_order_none_lost(&recv.seqs(), start + 1, last);
    assert_eq!(view(&admin, &id).await["state"], "active");
    s.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_suspended_and_visible() {
    let recv = Receiver::start(0, None).await;
    recv.set(Mode::Fail);
    let s = support::server_with(|c| {
        open_settings(c);
        c.webhooks.suspend_after = 1.5;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner", "monitor"]).await;
    let (_, w) = alpha
        .post("/v1/webhooks", json!({"url": recv.url(), "secret": SECRET}))
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let start = w["acked"].as_u64().unwrap();
    make_events(&alpha, 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = view(&admin, &id).await;
        if v["state"] == "suspended" {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not suspended: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v["last_error"], "HTTP 500", "{v}");
    assert_eq!(v["acked"].as_u64().unwrap(), start, "nothing acknowledged");
    let (_, metrics) = admin.get("/metrics").await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("tapir_webhook_suspended") && l.contains(&id))
        .unwrap_or_default();
    assert!(line.ends_with(" 1"), "metrics: {line:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tapir_webhooks{state=\"suspended\"}") && !l.ends_with(" 0")),
        "suspended count in metrics"
    );
    // Suspended: no more POSTs.
    let posts = recv.state.lock().unwrap().posts;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recv.state.lock().unwrap().posts, posts);
    // The receiver is fixed; a PUT resumes, and nothing was lost.
    recv.set(Mode::Ok);
    let (st, v) = alpha.put(&format!("/v1/webhooks/{id}"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "active", "{v}");
    let last = drained(&admin, &id, 20).await;
    assert_in_order_none_lost(&recv.seqs(), start + 1, last);
    s.shutdown().await;
}

#[tokio::test]
async fn a_hanging_or_huge_receiver_costs_a_bounded_time_and_memory() {
    let recv = Receiver::start(0, None).await;
    recv.set(Mode::Hang);
    let s = support::server_with(|c| {
        open_settings(c);
        c.webhooks.timeout = 1.0;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner", "monitor"]).await;
    let (_, w) = alpha
        .post("/v1/webhooks", json!({"url": recv.url(), "secret": SECRET}))
        .await;
    let id = w["id"].as_str().unwrap().to_string();
    let start = w["acked"].as_u64().unwrap();
    make_events(&alpha, 4).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = view(&admin, &id).await;
        if v["last_error"] == "timed out" {
            assert_eq!(v["state"], "failing");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no timeout: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A 2xx with 10 MB: acknowledged, the rest of the answer not read.
    recv.set(Mode::Huge);
    let last = drained(&admin, &id, 30).await;
    assert_in_order_none_lost(&recv.seqs(), start + 1, last);
    assert_eq!(admin.get("/healthz").await.0, 200);
    s.shutdown().await;
}

// ---------------------------------------------------------------------
// SIGKILL mid-delivery: the real binary, its SQLite store, a webhook from
// the configuration file.
// ---------------------------------------------------------------------

const ADMIN: &str = "webhooks-admin-token";
const CRM: &str = "webhooks-crm-token-0001";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Tapir {
    child: std::process::Child,
    base: String,
}

impl Drop for Tapir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tapir {
    async fn start(dir: &std::path::Path, hook: &str, store: Option<&str>) -> Tapir {
        let port = free_port();
        let cfg = dir.join("tapir.toml");
        let store = store
            .map(|u| format!("[store]\nurl = \"{u}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                r#"data_dir = "{}"
{store}
[sip]
listen = []
[http]
listen = "127.0.0.1:{port}"
admin_token = "{ADMIN}"
[webhooks]
allow_http = true
allow_private = true
retry_min = 0.05
retry_max = 0.5
[[lines]]
address = "2001"
kind = "routepoint"
[[lines]]
address = "2003"
kind = "routepoint"
[[apps]]
name = "crm"
token = "{CRM}"
lines = ["*"]
permissions = ["make_call", "forward"]
webhooks = [{{ url = "{hook}", secret = "{SECRET}", batch = 1 }}]
"#,
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("tapir-{port}.log"))).unwrap();
        let bin =
            std::env::var("TAPIR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tapir").to_string());
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Tapir {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", t.base)).send().await
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

    fn api(&self, token: &str) -> Api {
        Api::at(
            self.base.trim_start_matches("http://").parse().unwrap(),
            Some(token),
        )
    }
}

#[tokio::test]
async fn sigkill_mid_delivery_then_restart_resumes_where_it_stopped_sqlite() {
    sigkill_suite(None).await;
}

#[tokio::test]
async fn sigkill_mid_delivery_then_restart_resumes_where_it_stopped_postgres() {
    let Some(base) = tapir_store::testing::postgres_url("webhooks SIGKILL test") else {
        return;
    };
    let url = tapir_store::testing::fresh_postgres_db(&base)
        .await
        .unwrap();
    sigkill_suite(Some(url)).await;
}

async fn sigkill_suite(store: Option<String>) {
    let store = store.as_deref();
    let dir = tempfile::tempdir().unwrap();
    let recv = Receiver::start(0, None).await;
    recv.set(Mode::Slow);
    let t = Tapir::start(dir.path(), &recv.url(), store).await;
    let crm = t.api(CRM);
    let admin = t.api(ADMIN);
    let (_, list) = admin.get("/v1/admin/webhooks").await;
    let hooks = list["webhooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 1, "the configured webhook: {list}");
    assert!(!list.to_string().contains(SECRET));
    let id = hooks[0]["id"].as_str().unwrap().to_string();
    let start = hooks[0]["acked"].as_u64().unwrap();
    crm.open("2001", &["owner", "monitor"]).await;
    make_events(&crm, 60).await;
    // Some delivered, not all: kill.
    until("delivery under way", 20, || recv.seqs().len() >= 25).await;
    let before_kill = recv.seqs().len();
    let mut child = t;
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    drop(child);
    let delivered_at_kill = recv.seqs().len();
    assert!(
        delivered_at_kill < 60,
        "killed mid-delivery ({before_kill}..{delivered_at_kill} of 60+ delivered)"
    );
    recv.set(Mode::Ok);
    // Same store, same file: the webhook is not seeded again.
    let t = Tapir::start(dir.path(), &recv.url(), store).await;
    let crm = t.api(CRM);
    let admin = t.api(ADMIN);
    let (_, list) = admin.get("/v1/admin/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{list}");
    crm.open("2001", &["owner", "monitor"]).await;
    make_events(&crm, 10).await;
    let last = drained(&admin, &id, 30).await;
    assert!(last >= start + 70, "{last}");
    let seqs = recv.seqs();
    assert_in_order_none_lost(&seqs, start + 1, last);
    // Redelivered: only what the store did not yet hold as acknowledged
    // (written at least every 250 ms; this receiver takes 30 ms a POST).
    let distinct = seqs.iter().collect::<std::collections::BTreeSet<_>>().len();
    let again = seqs.len() - distinct;
    assert!(
        again <= 12,
        "{again} events delivered twice of {delivered_at_kill} before the kill: {seqs:?}"
    );
    assert_eq!(recv.state.lock().unwrap().bad_signatures, 0);
}

// ---------------------------------------------------------------------
// The CLI: `tapir webhooks …` for an app, `tapir admin webhooks …`.
// ---------------------------------------------------------------------

/// Run the binary (off the runtime, which serves the server meanwhile).
async fn cli(server: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "--server".to_string(),
        server.to_string(),
        "--token".into(),
        token.into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tapir"))
            .args(&all)
            .env_remove("TAPIR_TOKEN")
            .env_remove("TAPIR_ADMIN_TOKEN")
            .env_remove("TAPIR_SERVER")
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(20), out)
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_manages_webhooks() {
    let recv = Receiver::start(0, None).await;
    let s = support::server_with(open_settings).await;
    let base = format!("http://{}", s.http_addr);
    let url = recv.url();
    let (code, out, err) = cli(
        &base,
        "tok-alpha",
        &[
            "webhooks",
            "add",
            &url,
            "--event",
            "address.forwarding",
            "--secret",
            SECRET,
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["secret"], SECRET);
    assert_eq!(v["events"], json!(["address.forwarding"]));
    let id = v["id"].as_str().unwrap().to_string();
    // The table lists it, without the secret.
    let (code, out, _) = cli(&base, "tok-alpha", &["webhooks"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("active"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    // Events reach the receiver.
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2001", &["owner", "monitor"]).await;
    make_events(&alpha, 3).await;
    until("3 events", 20, || recv.seqs().len() >= 3).await;
    // Bad input: the server's code and sentence, exit 1.
    let (code, _, err) = cli(&base, "tok-alpha", &["webhooks", "add", "ftp://x.example/"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("invalparam") && err.contains("https://"),
        "{err}"
    );
    // The operator sees every app's, needs --app to add, changes and deletes.
    let (code, out, _) = cli(&base, "admin-secret", &["admin", "webhooks", "show", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains("alpha"), "{out}");
    let (code, _, err) = cli(&base, "admin-secret", &["admin", "webhooks", "add", &url]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--app"), "{err}");
    let (code, out, err) = cli(
        &base,
        "admin-secret",
        &["admin", "webhooks", "set", &id, "--batch", "5", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["batch"], 5);
    assert!(v.get("secret").is_none(), "{v}");
    let (code, _, _) = cli(&base, "admin-secret", &["admin", "webhooks", "resume", &id]).await;
    assert_eq!(code, 0);
    let (code, _, _) = cli(&base, "tok-beta", &["webhooks", "delete", &id]).await;
    assert_eq!(code, 1, "beta may not delete alpha's webhook");
    let (code, out, _) = cli(&base, "tok-alpha", &["webhooks", "delete", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains("deleted"), "{out}");
    let (code, out, _) = cli(&base, "admin-secret", &["admin", "webhooks", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["webhooks"],
        json!([])
    );
    s.shutdown().await;
}

#[tokio::test]
async fn an_app_created_with_its_webhooks() {
    let recv = Receiver::start(0, None).await;
    let s = support::server_with(open_settings).await;
    let admin = Api::new(&s, Some("admin-secret"));
    // A bad webhook refuses the whole request: no app, no webhook.
    let (st, v) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "late", "lines": ["2004"], "token": "tok-late-0123456789",
                   "webhooks": [{"url": recv.url()}, {"url": "not a url"}]}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not a URL"),
        "{v}"
    );
    assert_eq!(admin.get("/v1/admin/apps/late").await.0, 404);
    assert_eq!(
        admin.get("/v1/admin/webhooks").await.1["webhooks"],
        json!([])
    );
    let (st, v) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "late", "lines": ["2004"], "token": "tok-late-0123456789",
                   "webhooks": [{"url": recv.url(), "secret": SECRET}]}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["webhooks"][0]["secret"], SECRET, "{v}");
    assert_eq!(v["webhooks"][0]["app"], "late");
    let id = v["webhooks"][0]["id"].as_str().unwrap().to_string();
    // The app's events reach it.
    let late = Api::new(&s, Some("tok-late-0123456789"));
    late.open("2004", &["owner", "monitor"]).await;
    let last = drained(&admin, &id, 20).await;
    assert!(last >= 1, "line.state of the opened line");
    assert_in_order_none_lost(&recv.seqs(), 1, last);
    // Replacing the app does not take webhooks; its GET shows none.
    let (st, v) = admin
        .put(
            "/v1/admin/apps/late",
            json!({"lines": ["2004"], "webhooks": []}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (_, v) = admin.get("/v1/admin/apps/late").await;
    assert!(v.get("webhooks").is_none(), "{v}");
    // Deleting the app deletes its webhooks.
    assert_eq!(admin.delete("/v1/admin/apps/late").await.0, 204);
    assert_eq!(
        admin.get("/v1/admin/webhooks").await.1["webhooks"],
        json!([])
    );
    s.shutdown().await;
}
