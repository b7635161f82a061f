//! Webhook figures (issue 16), on loopback, bounded in count and time:
//!
//! 1. **drain rate**: events journalled while every receiver refuses (503),
//!    then the receivers accept: events delivered per second, one POST per
//!    event, to one receiver and to 100 receivers (one webhook each);
//! 2. **latency**: events made one at a time (paced), the time from sending
//!    the command that causes the event to the receiver getting its POST,
//!    p50 and p99, with 1 and with 100 receivers.
//!
//! `cargo run -p tapir-server --example webhook_load -- [events_one] [events_hundred] [paced]`
//! (`scripts/bench-webhooks` runs it). The server, the receivers and the
//! load share this process's runtime; the store is SQLite in a temporary
//! directory, as a default installation has it.

#![allow(clippy::unwrap_used, missing_docs)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "bench-admin";
const TOKEN: &str = "bench-app-token-0001";
const SECRET: &str = "whsec_bench_0123456789";
const WORKERS: usize = 8;
/// No phase waits longer than this for its deliveries.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Recv {
    refuse: AtomicBool,
    posts: AtomicU64,
    /// (seq, type is address.forwarding, arrival)
    arrivals: Mutex<Vec<(u64, bool, Instant)>>,
}

async fn hook(State(r): State<Arc<Recv>>, body: Bytes) -> StatusCode {
    if r.refuse.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.posts.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let text = std::str::from_utf8(&body).unwrap_or_default();
    let seq = text
        .strip_prefix("{\"seq\":")
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let fwd = text.contains("\"type\":\"address.forwarding\"");
    r.arrivals.lock().unwrap().push((seq, fwd, now));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Arc<Recv>) {
    let r = Arc::new(Recv::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), r)
}

struct Bench {
    base: String,
    http: reqwest::Client,
}

impl Bench {
    async fn send(&self, method: reqwest::Method, token: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn forward(&self, address: &str, k: usize) {
        let rules = if k.is_multiple_of(2) {
            json!([{"mode": "unconditional", "to": "2999"}])
        } else {
            json!([])
        };
        self.send(
            reqwest::Method::PUT,
            TOKEN,
            &format!("/v1/addresses/{address}/forwarding"),
            json!({ "rules": rules }),
        )
        .await;
    }

    async fn hooks(&self) -> Vec<Value> {
        self.send(
            reqwest::Method::GET,
            ADMIN,
            "/v1/admin/webhooks",
            Value::Null,
        )
        .await["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn clear_hooks(&self) {
        for h in self.hooks().await {
            let id = h["id"].as_str().unwrap().to_string();
            self.http
                .delete(format!("{}/v1/admin/webhooks/{id}", self.base))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
        }
    }

    /// One webhook per receiver; returns the receivers.
    async fn hooks_to(&self, n: usize, events: &[&str]) -> Vec<Arc<Recv>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (url, r) = receiver().await;
            self.send(
                reqwest::Method::POST,
                ADMIN,
                "/v1/admin/webhooks",
                json!({"app": "bench", "url": url, "secret": SECRET, "events": events}),
            )
            .await;
            out.push(r);
        }
        out
    }

    /// Wait until no webhook has anything pending (bounded).
    async fn drained(&self) -> bool {
        let deadline = Instant::now() + PHASE_LIMIT;
        while Instant::now() < deadline {
            if self.hooks().await.iter().all(|h| h["pending"] == 0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Make at least `n` events with WORKERS concurrent commands.
    async fn blast(self: &Arc<Self>, n: usize) {
        let per = n.div_ceil(2 * WORKERS);
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let b = self.clone();
            tasks.push(tokio::spawn(async move {
                let address = format!("{}", 3000 + w);
                for k in 0..per {
                    b.forward(&address, k).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Drain: events made while receivers refuse, then accepted.
async fn drain(b: &Arc<Bench>, receivers: usize, events: usize) {
    b.clear_hooks().await;
    let rs = b.hooks_to(receivers, &[]).await;
    for r in &rs {
        r.refuse.store(true, Ordering::Relaxed);
    }
    let made = Instant::now();
    b.blast(events).await;
    let made_in = made.elapsed();
    let journalled: u64 = b
        .hooks()
        .await
        .iter()
        .map(|h| h["pending"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let flip = Instant::now();
    for r in &rs {
        r.refuse.store(false, Ordering::Relaxed);
    }
    let done = b.drained().await;
    // From the first POST accepted (the retry after the flip waits up to
    // retry_max) to the last.
    let first = rs
        .iter()
        .filter_map(|r| r.arrivals.lock().unwrap().first().map(|a| a.2))
        .min()
        .unwrap_or(flip);
    let last = rs
        .iter()
        .filter_map(|r| r.arrivals.lock().unwrap().last().map(|a| a.2))
        .max()
        .unwrap_or(flip);
    let secs = last.duration_since(first).as_secs_f64().max(1e-9);
    let delivered: u64 = rs
        .iter()
        .map(|r| r.arrivals.lock().unwrap().len() as u64)
        .sum();
    println!(
        "drain, {receivers} receiver(s): {journalled} events each made in {:.2}s; {delivered} POSTs delivered in {secs:.2}s from the first accepted{}",
        made_in.as_secs_f64(),
        if done {
            ""
        } else {
            " (NOT all: phase limit hit)"
        }
    );
    println!(
        "  => {:.0} events/s per webhook, {:.0} POSTs/s in total",
        delivered as f64 / receivers as f64 / secs,
        delivered as f64 / secs
    );
}

/// Latency: paced single commands, the forwarding event's arrival.
async fn latency(b: &Arc<Bench>, receivers: usize, count: usize) {
    b.clear_hooks().await;
    let rs = b.hooks_to(receivers, &["address.forwarding"]).await;
    let mut sent = Vec::new();
    let pace = Duration::from_millis(10);
    for k in 0..count {
        let t = Instant::now();
        sent.push(t);
        b.forward("3000", k).await;
        let spent = t.elapsed();
        if spent < pace {
            tokio::time::sleep(pace - spent).await;
        }
    }
    let done = b.drained().await;
    let mut lat = Vec::new();
    for r in &rs {
        let arrivals = r.arrivals.lock().unwrap();
        for (k, a) in arrivals.iter().filter(|a| a.1).enumerate() {
            if let Some(t) = sent.get(k) {
                lat.push(a.2.duration_since(*t).as_secs_f64() * 1000.0);
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "latency, {receivers} receiver(s), {count} events paced every 10 ms: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} POSTs){}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len(),
        if done {
            ""
        } else {
            " (NOT all: phase limit hit)"
        }
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events_one: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let events_hundred: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let paced: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..WORKERS {
        lines.push_str(&format!(
            "[[lines]]\naddress = \"{}\"\nkind = \"routepoint\"\n",
            3000 + i
        ));
    }
    let toml = format!(
        r#"data_dir = "{}"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"
journal_capacity = 20000
[webhooks]
allow_http = true
allow_private = true
retry_min = 0.02
retry_max = 0.1
max_per_app = 100
{lines}
[[lines]]
address = "2999"
kind = "routepoint"
[[apps]]
name = "bench"
token = "{TOKEN}"
lines = ["*"]
permissions = ["make_call", "forward"]
"#,
        dir.path().display()
    );
    let config = tapir_server::Config::from_toml(&toml).unwrap();
    let server = tapir_server::start(config).await.unwrap();
    let b = Arc::new(Bench {
        base: format!("http://{}", server.http_addr),
        http: reqwest::Client::new(),
    });
    for i in 0..WORKERS {
        b.send(
            reqwest::Method::POST,
            TOKEN,
            &format!("/v1/lines/{}/open", 3000 + i),
            json!({"privileges": ["owner", "monitor"]}),
        )
        .await;
    }
    println!("tapir webhooks benchmark (loopback, one process, SQLite store)");
    drain(&b, 1, events_one).await;
    drain(&b, 100, events_hundred).await;
    latency(&b, 1, paced).await;
    latency(&b, 100, paced).await;
    server.shutdown().await;
}
