//! Load figures for the HTTP API: operations per second through real HTTP
//! (hold/unhold on connected route-point calls, one call pair per worker), and
//! the latency from sending a request to receiving its event on the
//! WebSocket.
//!
//! `cargo run --release -p tapir-server --example http_load -- [workers] [seconds]`
//!
//! By default the server runs in this process, sharing its runtime with the
//! load. With `TAPIR_LOAD_SERVER_CPU=N` the example instead starts the
//! release `tapir` binary (`cargo build --release -p tapir-server --bin
//! tapir` first) as its own process pinned to CPU `N` with `taskset`, so the
//! server's figures are those of one core; run the example itself pinned to
//! another CPU (`taskset -c 1 target/release/examples/http_load 16 5`).

#![allow(clippy::unwrap_used, missing_docs)]

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);

    let mut lines = String::new();
    for i in 0..workers * 2 {
        lines.push_str(&format!(
            "[[lines]]\naddress = \"{}\"\nkind = \"routepoint\"\n",
            3000 + i
        ));
    }
    lines.push_str("[[apps]]\nname = \"load\"\ntoken = \"tok\"\nlines = [\"*\"]\n");
    let server = match std::env::var("TAPIR_LOAD_SERVER_CPU") {
        Ok(cpu) => Server::Process(ServerProcess::start(&cpu, &lines).await),
        Err(_) => Server::InProcess(Box::new(in_process(&lines).await)),
    };
    let http_addr = server.http_addr();
    let base = format!("http://{http_addr}");
    let http = reqwest::Client::new();
    let (get_http, get_base) = (http.clone(), base.clone());
    let post = move |path: String, body: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .bearer_auth("tok")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{path}: {status} {v}");
            v
        }
    };
    // Pairs: worker i calls 3000+2i -> 3000+2i+1 and answers.
    let mut calls = Vec::new();
    for i in 0..workers {
        for a in [3000 + 2 * i, 3001 + 2 * i] {
            post(
                format!("/v1/lines/{a}/open"),
                json!({"privileges": ["owner"]}),
            )
            .await;
        }
        let c = post(
            "/v1/calls".into(),
            json!({"from": (3000 + 2 * i).to_string(), "to": (3001 + 2 * i).to_string()}),
        )
        .await;
        let a_id = c["id"].as_str().unwrap().to_string();
        let r = get_http
            .get(format!("{get_base}/v1/addresses/{}", 3001 + 2 * i))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let b_id = r["calls"][0]["id"].as_str().unwrap().to_string();
        post(format!("/v1/calls/{b_id}/answer"), json!({})).await;
        calls.push(a_id);
    }

    // Throughput.
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for call in calls.clone() {
        let post = post.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ops = 0u64;
            while Instant::now() < stop {
                for op in ["hold", "unhold"] {
                    let t = Instant::now();
                    post(format!("/v1/calls/{call}/{op}"), json!({})).await;
                    lat.push(t.elapsed());
                    ops += 1;
                }
            }
            (ops, lat)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (ops, l) = t.await.unwrap();
        total += ops;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "throughput: {workers} workers, {total} ops in {secs:.1}s = {:.0} ops/s; request latency p50 {:?} p99 {:?}",
        total as f64 / secs,
        pct(0.50),
        pct(0.99)
    );

    // Request -> event latency, one request at a time.
    let mut req = format!("ws://{http_addr}/v1/events?since=999999999")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer tok".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let call = calls[0].clone();
    let mut ev_lat = Vec::new();
    for i in 0..2000 {
        let (op, want) = if i % 2 == 0 {
            ("hold", "onhold")
        } else {
            ("unhold", "connected")
        };
        let t = Instant::now();
        let send = post(format!("/v1/calls/{call}/{op}"), json!({}));
        let wait = async {
            loop {
                let m = ws.next().await.unwrap().unwrap();
                if let Ok(text) = m.to_text() {
                    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                    if v["type"] == "call.state" && v["call"] == call.as_str() && v["state"] == want
                    {
                        return t.elapsed();
                    }
                }
            }
        };
        let (_, d) = tokio::join!(send, wait);
        ev_lat.push(d);
    }
    ev_lat.sort();
    let p = |q: f64| ev_lat[((ev_lat.len() as f64 * q) as usize).min(ev_lat.len() - 1)];
    println!(
        "request -> event on the WebSocket: {} samples, p50 {:?} p99 {:?} max {:?}",
        ev_lat.len(),
        p(0.50),
        p(0.99),
        p(1.0)
    );
    server.stop().await;
}

/// The server under load: in this process, or the `tapir` binary on its own CPU.
enum Server {
    InProcess(Box<tapir_server::RunningServer>),
    Process(ServerProcess),
}

impl Server {
    fn http_addr(&self) -> std::net::SocketAddr {
        match self {
            Server::InProcess(s) => s.http_addr,
            Server::Process(p) => p.http_addr,
        }
    }

    async fn stop(self) {
        match self {
            Server::InProcess(server) => {
                let dir = server.config.data_dir.clone();
                server.shutdown().await;
                let _ = std::fs::remove_dir_all(dir);
            }
            Server::Process(mut p) => {
                let _ = p.child.kill();
                let _ = p.child.wait();
                let _ = std::fs::remove_dir_all(&p.dir);
            }
        }
    }
}

/// A fresh store every run (the store keeps lines and apps across starts);
/// TAPIR_LOAD_STORE_URL picks another one (a PostgreSQL database).
fn data_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tapir-http-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn in_process(lines: &str) -> tapir_server::RunningServer {
    let toml = format!("[sip]\nlisten = []\n[http]\nlisten = \"127.0.0.1:0\"\n{lines}");
    let mut config = tapir_server::Config::from_toml(&toml).unwrap();
    config.data_dir = data_dir();
    if let Ok(url) = std::env::var("TAPIR_LOAD_STORE_URL") {
        config.store.url = Some(url);
    }
    tapir_server::start(config).await.unwrap()
}

/// The release `tapir` binary under `taskset -c CPU`.
struct ServerProcess {
    child: std::process::Child,
    dir: std::path::PathBuf,
    http_addr: std::net::SocketAddr,
}

impl ServerProcess {
    async fn start(cpu: &str, lines: &str) -> ServerProcess {
        let dir = data_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let store = match std::env::var("TAPIR_LOAD_STORE_URL") {
            Ok(url) => format!("[store]\nurl = \"{url}\"\n"),
            Err(_) => String::new(),
        };
        let toml = format!(
            "data_dir = \"{}/data\"\n[sip]\nlisten = []\n[http]\nlisten = \"{http_addr}\"\n{store}{lines}",
            dir.display()
        );
        let config = dir.join("tapir.toml");
        std::fs::write(&config, toml).unwrap();
        let bin =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tapir");
        let mut child = std::process::Command::new("taskset")
            .args(["-c", cpu])
            .arg(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} under taskset: {e}", bin.display()));
        let health = format!("http://{http_addr}/healthz");
        for _ in 0..200 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                println!("server: {} pinned to CPU {cpu}", bin.display());
                return ServerProcess {
                    child,
                    dir,
                    http_addr,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} did not answer {health}", bin.display());
    }
}
