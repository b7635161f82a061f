//! The `tapir` binary: `tapir serve --config FILE --data-dir DIR` prints one
//! screen, generates absent secrets once and keeps them across restarts.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
[[lines]]
address = "1001"
kind = "phone"
[[apps]]
name = "demo"
lines = ["*"]
"#;

struct Serve {
    child: Child,
    screen: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `tapir serve` and read its screen (up to the `try:` line).
fn serve(dir: &std::path::Path) -> Serve {
    let cfg = dir.join("tapir.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapir"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut serve = Serve {
        child,
        screen: Vec::new(),
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no full screen: {:#?}", serve.screen));
        let done = line.contains("try:");
        serve.screen.push(line);
        if done {
            return serve;
        }
    }
}

fn value_after(screen: &[String], key: &str) -> String {
    screen
        .iter()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("{key} not on screen: {screen:#?}"))
}

#[tokio::test]
async fn serve_prints_where_everything_is_and_keeps_its_secrets() {
    let dir = std::env::temp_dir().join(format!("tapir-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let first = serve(&dir);
    let token = value_after(&first.screen, "app demo token:");
    assert!(token.starts_with("app_"), "{token}");
    value_after(&first.screen, "admin token:");
    value_after(&first.screen, "phone 1001 password:");
    let api = value_after(&first.screen, "HTTP API");
    let base = api.trim_end_matches("/v1").to_string();
    assert!(first.screen.iter().any(|l| l.contains("openapi.json")));

    let http = reqwest::Client::new();
    let lines = tokio::time::timeout(
        Duration::from_secs(5),
        http.get(format!("{base}/v1/lines"))
            .bearer_auth(&token)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(lines.status(), 200);
    drop(first);

    // A restart prints no new secret and accepts the same token.
    let second = serve(&dir);
    assert!(
        !second.screen.iter().any(|l| l.contains("token:")),
        "{:#?}",
        second.screen
    );
    let base = value_after(&second.screen, "HTTP API")
        .trim_end_matches("/v1")
        .to_string();
    let lines = tokio::time::timeout(
        Duration::from_secs(5),
        http.get(format!("{base}/v1/lines"))
            .bearer_auth(&token)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(lines.status(), 200);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn openapi_subcommand_prints_the_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_tapir"))
        .arg("openapi")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/v1/calls/{call}/hold"]["post"].is_object());
    assert!(doc["paths"]["/v1/events"]["get"].is_object());
}
