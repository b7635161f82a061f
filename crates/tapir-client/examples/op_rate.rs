//! Figures of the client against a real tapir server started in this
//! process on 127.0.0.1 (route points, no SIP): hold/unhold round trips per
//! second over HTTP with their latency, and how soon the event stream
//! delivers the `call.state` of each operation.
//!
//! ```sh
//! cargo run --release -p tapir-client --example op_rate -- 2000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use tapir_client::{CallState, Client, EventKind, Privilege};

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
admin_token = "admin-secret-for-the-figures"
[[lines]]
address = "2001"
kind = "routepoint"
[[lines]]
address = "2002"
kind = "routepoint"
[[apps]]
name = "bench"
token = "tok-bench-0123456789"
lines = ["*"]
"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut config = tapir_server::Config::from_toml(CONFIG).expect("config");
    config.store.url = Some("sqlite::memory:".into());
    let server = tapir_server::start(config).await.expect("server");
    let base = format!("http://{}", server.http_addr);
    let client = Client::connect(&base, "tok-bench-0123456789")
        .await
        .expect("client");
    for mut l in client.lines().await.expect("lines") {
        l.open(&[Privilege::Owner], &[]).await.expect("open");
    }
    let mut events = client.events(0);
    let mut a = client
        .address("2001")
        .create_call("2002")
        .await
        .expect("call");
    let b_id = loop {
        let e = events.next().await.expect("stream").expect("event");
        if let EventKind::CallNew { call, address, .. } = &e.kind
            && address == "2002"
        {
            break call.clone();
        }
    };
    client
        .call(&b_id)
        .await
        .expect("b")
        .answer()
        .await
        .expect("answer");

    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        a.hold(i % 2 == 0).await.expect("hold");
        latencies.push(t.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    println!(
        "{n} hold/unhold round trips: {:.0} ops/s, p50 {:?}, p99 {:?}, max {:?}",
        n as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    // The stream: how long until every state change of those operations has
    // been delivered, counted from the first operation.
    let mut states = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while states < n && Instant::now() < deadline {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("events keep coming")
            .expect("stream")
            .expect("event");
        if let EventKind::CallState { call, state, .. } = &e.kind
            && call == a.id()
            && matches!(state, CallState::OnHold | CallState::Connected)
        {
            states += 1;
        }
    }
    println!(
        "event stream: {states} call.state events of the call delivered {:?} after the first operation",
        started.elapsed()
    );
    server.shutdown().await;
}
