//! The `tapir` binary's client commands against a real server started in
//! this test on 127.0.0.1 port 0: tables and `--json`, exit codes, TAPI
//! error codes on stderr, and where the server and token come from.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapir_server::{Config, RunningServer};

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
admin_token = "admin-secret"
[[lines]]
address = "2001"
kind = "routepoint"
name = "Queue A"
[[lines]]
address = "2002"
kind = "routepoint"
name = "Queue B"
pickup_group = "sales"
[[lines]]
address = "2003"
kind = "routepoint"
[[lines]]
address = "2004"
kind = "routepoint"
pickup_group = "sales"
[[apps]]
name = "alpha"
token = "tok-alpha"
lines = ["2001", "2003"]
privileges = ["owner", "monitor"]
[[apps]]
name = "beta"
token = "tok-beta"
lines = ["2002", "2004"]
[park]
slots = "7001-7005"
"#;

async fn server() -> RunningServer {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.data_dir = std::env::temp_dir().join("tapir-cli-client-tests");
    // Each server its own store (the tests of a binary run at once).
    config.store.url = Some("sqlite::memory:".into());
    tokio::time::timeout(Duration::from_secs(5), tapir_server::start(config))
        .await
        .unwrap()
        .unwrap()
}

/// What one run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:#?}");
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// Run `tapir ARGS` with these environment variables (none inherited that
/// matter) in `dir`, bounded in time.
fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapir"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TAPIR_SERVER")
        .env_remove("TAPIR_TOKEN")
        .env_remove("TAPIR_ADMIN_TOKEN")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tapir {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A CLI bound to a server and a token.
#[derive(Clone)]
struct Tapir {
    server: String,
    token: String,
}

impl Tapir {
    fn new(s: &RunningServer, token: &str) -> Tapir {
        Tapir {
            server: format!("http://{}", s.http_addr),
            token: token.into(),
        }
    }

    /// `tapir --server … --token … ARGS` (off the async runtime).
    async fn run(&self, args: &[&str]) -> Run {
        let mut all = vec![
            "--server".to_string(),
            self.server.clone(),
            "--token".into(),
            self.token.clone(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_in(&std::env::temp_dir(), &[], &refs)
        })
        .await
        .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        self.run(&a).await.json()
    }

    /// The id of this app's call at `address` in `state`, waiting for it.
    async fn call_at(&self, address: &str, state: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.json(&["calls"]).await;
            if let Some(c) = calls["calls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["address"] == address && c["state"] == state)
            {
                return c["id"].as_str().unwrap().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {state} call at {address}: {calls}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn open_all(alpha: &Tapir, beta: &Tapir) {
    for (t, lines) in [(alpha, ["2001", "2003"]), (beta, ["2002", "2004"])] {
        for l in lines {
            t.run(&["lines", "open", l]).await.ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_table_json_open_and_close() {
    let s = server().await;
    let alpha = Tapir::new(&s, "tok-alpha");
    let table = alpha.run(&["lines"]).await;
    let text = table.ok();
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    assert!(header.starts_with("LINE"), "{text}");
    for col in ["ADDRESS", "KIND", "NAME", "REGISTRATION", "OPEN"] {
        assert!(header.contains(col), "{header}");
    }
    let first = rows.next().unwrap();
    assert!(first.contains("2001") && first.contains("routepoint") && first.contains("Queue A"));
    assert!(rows.next().unwrap().contains("2003"));
    assert_eq!(rows.next(), None);

    let json = alpha.json(&["lines"]).await;
    assert_eq!(json[0]["address"], "2001");
    assert_eq!(json[0]["open"], Value::Null);

    let opened = alpha
        .json(&["lines", "open", "2001", "--monitor", "--owner"])
        .await;
    assert_eq!(opened["open"], serde_json::json!(["owner", "monitor"]));
    let text = alpha.run(&["lines"]).await;
    assert!(
        text.ok().lines().nth(1).unwrap().ends_with("owner,monitor"),
        "{text:?}"
    );
    let closed = alpha.run(&["lines", "close", "2001"]).await;
    assert!(closed.ok().starts_with("closed line-"), "{closed:?}");
    let again = alpha.run(&["lines", "close", "2001"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("invallinehandle"), "{again:?}");
    let other = alpha.run(&["lines", "open", "2002"]).await;
    assert_eq!(other.code, 1);
    assert!(other.stderr.contains("invallinehandle"), "{other:?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_its_operations() {
    let s = server().await;
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    open_all(&alpha, &beta).await;

    let made = alpha.json(&["call", "make", "2001", "2002"]).await;
    let a = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["address"], "2001");
    let b = beta.call_at("2002", "offering").await;
    let answered = beta.run(&["call", "answer", &b]).await;
    let text = answered.ok();
    assert!(text.starts_with("CALL"), "{text}");
    assert!(text.lines().nth(1).unwrap().contains("connected"), "{text}");

    let held = alpha.json(&["call", "hold", &a]).await;
    assert_eq!(held["state"], "onhold");
    let unheld = alpha.json(&["call", "unhold", &a]).await;
    assert_eq!(unheld["state"], "connected");
    assert_eq!(
        alpha.json(&["call", "show", &a]).await["state"],
        "connected"
    );
    assert_eq!(
        alpha.json(&["call", "digits", &a, "12#"]).await["id"],
        a.as_str()
    );
    assert_eq!(alpha.json(&["call", "secure", &a]).await["secure"], true);
    assert_eq!(
        alpha.json(&["call", "privilege", &a, "owner"]).await["privilege"],
        "owner"
    );
    let e = alpha.run(&["call", "handoff", &a, "--app", "nobody"]).await;
    assert_eq!(e.code, 1);
    assert!(e.stderr.contains("targetnotfound"), "{e:?}");

    // Consultation transfer: setup, dial, complete.
    let x = alpha.json(&["call", "setup-transfer", &a]).await;
    assert_eq!(x["state"], "dialtone");
    let x = x["id"].as_str().unwrap().to_string();
    alpha.run(&["call", "dial", &x, "2004"]).await.ok();
    let y = beta.call_at("2004", "offering").await;
    beta.run(&["call", "answer", &y]).await.ok();
    let done = alpha.run(&["call", "complete-transfer", &a, &x]).await;
    done.ok();
    assert_eq!(alpha.json(&["call", "show", &a]).await["state"], "idle");
    alpha.run(&["call", "deallocate", &a]).await.ok();
    let gone = alpha.run(&["call", "show", &a]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("invalcallhandle") && gone.stderr.contains("404"),
        "{gone:?}"
    );

    // Conference: setup, dial, add, related.
    let c2 = alpha.json(&["call", "make", "2003", "2002"]).await;
    let c2 = c2["id"].as_str().unwrap().to_string();
    let b2 = beta.call_at("2002", "offering").await;
    beta.run(&["call", "answer", &b2]).await.ok();
    let conf = alpha.json(&["call", "conference", &c2]).await;
    let conf_call = conf["conference_call"].as_str().unwrap().to_string();
    let consult = conf["consult_call"].as_str().unwrap().to_string();
    alpha.run(&["call", "dial", &consult, "2004"]).await.ok();
    let b3 = beta.call_at("2004", "offering").await;
    beta.run(&["call", "answer", &b3]).await.ok();
    alpha.run(&["call", "add", &conf_call, &consult]).await.ok();
    let related = alpha.run(&["call", "related", &c2]).await;
    let ids: Vec<&str> = related.ok().lines().collect();
    assert_eq!(ids[0], conf_call, "{related:?}");
    assert!(ids.contains(&consult.as_str()), "{related:?}");
    let prep = alpha.json(&["call", "prepare-add", &conf_call]).await;
    assert_eq!(prep["state"], "dialtone");
    alpha
        .run(&["call", "drop", prep["id"].as_str().unwrap()])
        .await
        .ok();
    let removed = alpha.json(&["call", "remove", &consult]).await;
    assert_ne!(removed["state"], "conferenced", "{removed}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_pickup_redirect_forward_and_completion() {
    let s = server().await;
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    open_all(&alpha, &beta).await;

    // Park and unpark.
    let a = alpha.json(&["call", "make", "2001", "2002"]).await;
    let a = a["id"].as_str().unwrap().to_string();
    let b = beta.call_at("2002", "offering").await;
    beta.run(&["call", "answer", &b]).await.ok();
    let parked = alpha.run(&["call", "park", &a]).await;
    assert_eq!(parked.ok(), format!("{a} parked at 7001\n"));
    let got = alpha.json(&["unpark", "2003", "7001"]).await;
    assert_eq!(got["reason"], "unpark");
    let empty = alpha.run(&["unpark", "2003", "7001"]).await;
    assert_eq!(empty.code, 1, "{empty:?}");
    assert!(empty.stderr.starts_with("tapir: "), "{empty:?}");

    // Pickup from an address, redirect, swap-hold.
    let c = alpha.json(&["call", "make", "2001", "2004"]).await;
    let c = c["id"].as_str().unwrap().to_string();
    beta.call_at("2004", "offering").await;
    let picked = beta.json(&["pickup", "2002", "2004"]).await;
    assert_eq!(picked["reason"], "pickup");
    assert_eq!(picked["address"], "2002");
    alpha.run(&["call", "drop", &c]).await.ok();
    let d = alpha.json(&["call", "make", "2003", "2004"]).await;
    let d = d["id"].as_str().unwrap().to_string();
    let at = beta.call_at("2004", "offering").await;
    let accepted = beta.json(&["call", "accept", &at]).await;
    assert_eq!(accepted["state"], "accepted");
    beta.run(&["call", "redirect", &at, "2002"]).await.ok();
    let r = beta.call_at("2002", "offering").await;
    assert_eq!(beta.json(&["call", "show", &r]).await["reason"], "redirect");
    let group = alpha.json(&["pickup", "2001", "--group", "sales"]).await;
    assert_eq!(group["reason"], "pickup");
    alpha.run(&["call", "drop", &d]).await.ok();
    let usage = alpha.run(&["pickup", "2001"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");
    let waiting = alpha.run(&["pickup", "2001", "--waiting"]).await;
    assert_eq!(waiting.code, 1, "{waiting:?}");
    assert!(waiting.stderr.contains("invaladdress"), "{waiting:?}");

    // Forwarding, shown by `address`.
    let fwd = beta
        .run(&["forward", "2004", "unconditional=2002", "--rings", "3"])
        .await;
    let text = fwd.ok();
    assert!(
        text.contains("unconditional") && text.contains("2002"),
        "{text}"
    );
    let st = beta.json(&["address", "2004"]).await;
    assert_eq!(st["forwarding"]["rules"][0]["mode"], "unconditional");
    assert_eq!(st["forwarding"]["no_answer_rings"], 3);
    let off = beta.json(&["forward", "2004", "--off"]).await;
    assert_eq!(off["forwarding"]["rules"], serde_json::json!([]));
    let bad = beta.run(&["forward", "2004", "sometimes=2002"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("invalforwardmode") && bad.stderr.contains("HTTP 400"),
        "{bad:?}"
    );
    let bad = beta.run(&["forward", "2004", "2002"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("MODE=TO"), "{bad:?}");
    // Every address of a line at once (lineForward, bAllAddresses).
    let all = beta
        .json(&["forward", "--line", "2004", "busy=2002", "--rings", "2"])
        .await;
    assert_eq!(all["addresses"][0]["address"], "2004", "{all}");
    assert_eq!(
        all["addresses"][0]["forwarding"]["rules"][0]["mode"],
        "busy"
    );
    let st = beta.json(&["address", "2004"]).await;
    assert_eq!(st["forwarding"]["no_answer_rings"], 2);
    let off = beta.json(&["forward", "--line", "2004", "--off"]).await;
    assert_eq!(
        off["addresses"][0]["forwarding"]["rules"],
        serde_json::json!([])
    );

    // Completion request and cancel.
    let e = alpha.json(&["call", "make", "2001", "2002"]).await;
    let e = e["id"].as_str().unwrap().to_string();
    beta.call_at("2002", "offering").await;
    let compl = alpha.json(&["call", "complete", &e, "callback"]).await;
    let id = compl["completion_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("compl-"));
    alpha.run(&["call", "uncomplete", &id]).await.ok();
    let twice = alpha.run(&["call", "uncomplete", &id]).await;
    assert_eq!(twice.code, 1);
    assert!(twice.stderr.contains("invalcompletionid"), "{twice:?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translate_locations_cards_and_events() {
    let s = server().await;
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    let t = alpha.run(&["translate", "+1 (206) 555-1212"]).await;
    let text = t.ok();
    assert!(text.contains("dialable     T12065551212"), "{text}");
    assert!(text.contains("longdistance"), "{text}");
    let j = alpha.json(&["translate", "+1 (425) 555-1212"]).await;
    assert!(
        j["results"].as_array().unwrap().contains(&"local".into()),
        "{j}"
    );
    let j = alpha
        .json(&["translate", "+1 (425) 555-1212", "--option", "forceld"])
        .await;
    assert!(
        j["results"]
            .as_array()
            .unwrap()
            .contains(&"longdistance".into()),
        "{j}"
    );
    let bad = alpha
        .run(&["translate", "1", "--option", "sometimes"])
        .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalparam"), "{bad:?}");
    let bad = alpha.run(&["translate", "+1 (2"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invaladdress"), "{bad:?}");
    let locs = alpha.run(&["locations"]).await;
    assert!(
        locs.ok().lines().nth(1).unwrap().starts_with("*  default"),
        "{locs:?}"
    );
    assert_eq!(alpha.json(&["cards"]).await["cards"], serde_json::json!([]));

    // Events: replay to now, then exit; --json is one object per line.
    open_all(&alpha, &beta).await;
    let a = alpha.json(&["call", "make", "2001", "2002"]).await;
    let a = a["id"].as_str().unwrap().to_string();
    let b = beta.call_at("2002", "offering").await;
    beta.run(&["call", "answer", &b]).await.ok();
    alpha.run(&["call", "hold", &a]).await.ok();
    let last = alpha.json(&["calls"]).await["seq"].as_u64().unwrap();
    let ev = alpha.run(&["--json", "events"]).await;
    let lines: Vec<Value> = ev
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    assert!(
        lines
            .iter()
            .any(|e| e["type"] == "call.state" && e["state"] == "onhold")
    );
    let since = alpha
        .run(&["events", "--since", &(last - 1).to_string()])
        .await;
    let text = since.ok();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_start().starts_with(&last.to_string()), "{text}");
    assert!(
        alpha
            .run(&["events", "--since", &last.to_string()])
            .await
            .ok()
            .is_empty()
    );

    // --follow keeps printing new events.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_tapir"))
        .args(["--server", &alpha.server, "--token", "tok-alpha"])
        .args(["events", "--follow", "--since", &last.to_string()])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    alpha.run(&["call", "unhold", &a]).await.ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no connected event from --follow: {seen:?}"));
        if line.contains("call.state") && line.contains("state=connected") {
            break;
        }
        seen.push(line);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_codes_and_where_tokens_come_from() {
    let s = server().await;
    let server = format!("http://{}", s.http_addr);
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    open_all(&alpha, &beta).await;
    let a = alpha.json(&["call", "make", "2001", "2002"]).await;
    let a = a["id"].as_str().unwrap().to_string();

    // Wrong state: exit 1, TAPI code and HTTP status on stderr, nothing on stdout.
    let e = alpha.run(&["call", "answer", &a]).await;
    assert_eq!(e.code, 1);
    assert!(e.stdout.is_empty(), "{e:?}");
    assert!(
        e.stderr.starts_with("tapir: invalcallstate: ") && e.stderr.contains("(HTTP 409)"),
        "{e:?}"
    );
    let e = alpha.run(&["--json", "call", "answer", &a]).await;
    assert_eq!(e.code, 1);
    let err: Value = serde_json::from_str(&e.stderr).unwrap();
    assert_eq!(err["error"]["code"], "invalcallstate");
    assert_eq!(err["error"]["status"], 409);

    // Tokens: wrong, app token on admin commands.
    let wrong = Tapir {
        server: server.clone(),
        token: "wrong".into(),
    };
    let e = wrong.run(&["calls"]).await;
    assert_eq!(e.code, 1);
    assert!(
        e.stderr.contains("unauthorized") && e.stderr.contains("401"),
        "{e:?}"
    );
    let e = alpha.run(&["admin", "lines"]).await;
    assert_eq!(e.code, 1);
    assert!(
        e.stderr.contains("noprivilege") && e.stderr.contains("403"),
        "{e:?}"
    );
    let e = alpha.run(&["cdr"]).await;
    assert_eq!(e.code, 1);
    assert!(e.stderr.contains("noprivilege"), "{e:?}");

    // Unreachable server: exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nowhere = Tapir {
        server: format!("http://{closed}"),
        token: "tok-alpha".into(),
    };
    let e = nowhere.run(&["lines"]).await;
    assert_eq!(e.code, 3, "{e:?}");
    assert!(e.stderr.contains("cannot reach the tapir server"), "{e:?}");

    // Usage: exit 2 with clap's message; every subcommand has --help.
    let e = alpha.run(&["call", "hold"]).await;
    assert_eq!(e.code, 2, "{e:?}");
    for args in [
        &["call", "park", "--help"][..],
        &["admin", "apps", "add", "--help"],
        &["events", "--help"],
        &["cdr", "--help"],
    ] {
        let h = alpha.run(args).await;
        assert!(h.ok().contains("Usage: tapir"), "{h:?}");
    }

    // Server and token from the environment, then from a secrets file.
    let dir = std::env::temp_dir().join(format!("tapir-cli-env-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tapir-data")).unwrap();
    let d = dir.clone();
    let srv = server.clone();
    let env_run = tokio::task::spawn_blocking(move || {
        run_in(
            &d,
            &[("TAPIR_SERVER", srv.as_str()), ("TAPIR_TOKEN", "tok-alpha")],
            &["--json", "calls"],
        )
    })
    .await
    .unwrap();
    assert_eq!(env_run.json()["calls"][0]["id"], a.as_str());
    let d = dir.clone();
    let srv = server.clone();
    let none = tokio::task::spawn_blocking(move || run_in(&d, &[], &["--server", &srv, "calls"]))
        .await
        .unwrap();
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("TAPIR_TOKEN"), "{none:?}");
    std::fs::write(
        dir.join("tapir-data/secrets.toml"),
        "admin_token = \"admin-secret\"\n[apps]\nalpha = \"tok-alpha\"\nbeta = \"tok-beta\"\n",
    )
    .unwrap();
    let d = dir.clone();
    let srv = server.clone();
    let (several, chosen) = tokio::task::spawn_blocking(move || {
        (
            run_in(&d, &[], &["--server", &srv, "calls"]),
            run_in(
                &d,
                &[],
                &["--server", &srv, "--as", "beta", "--json", "lines"],
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(several.code, 2, "{several:?}");
    assert!(several.stderr.contains("--as"), "{several:?}");
    assert_eq!(chosen.json()[0]["address"], "2002");
    let _ = std::fs::remove_dir_all(&dir);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_and_cdr() {
    let s = server().await;
    let admin = Tapir::new(&s, "admin-secret");

    // Lines.
    let table = admin.run(&["admin", "lines"]).await;
    let text = table.ok();
    assert!(text.starts_with("ADDRESS"), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
    let added = admin
        .json(&[
            "admin",
            "lines",
            "add",
            "2005",
            "--kind",
            "routepoint",
            "--name",
            "Queue E",
        ])
        .await;
    assert_eq!(added["name"], "Queue E");
    assert_eq!(added["has_password"], false);
    let set = admin
        .json(&[
            "admin",
            "lines",
            "set",
            "2005",
            "--name",
            "Queue Five",
            "--pickup-group",
            "sales",
        ])
        .await;
    assert_eq!(set["name"], "Queue Five");
    assert_eq!(set["kind"], "routepoint", "the rest stays: {set}");
    let shown = admin.run(&["admin", "lines", "show", "2005"]).await;
    assert!(shown.ok().contains("Queue Five"), "{shown:?}");
    let dup = admin.run(&["admin", "lines", "add", "2005"]).await;
    assert_eq!(dup.code, 1, "{dup:?}");
    assert!(
        dup.stderr.contains("invalparam") && dup.stderr.contains("409"),
        "{dup:?}"
    );

    // Apps: the generated token is printed once and works.
    let app = admin
        .run(&[
            "admin",
            "apps",
            "add",
            "gamma",
            "--line",
            "2005",
            "--privilege",
            "owner",
            "--permission",
            "make_call",
        ])
        .await;
    let text = app.ok();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token line: {text}"))
        .to_string();
    let gamma = Tapir::new(&s, &token);
    assert_eq!(gamma.json(&["lines"]).await[0]["address"], "2005");
    let apps = admin.json(&["admin", "apps"]).await;
    let g = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "gamma")
        .unwrap()
        .clone();
    assert_eq!(g["privileges"], serde_json::json!(["owner"]));
    assert!(g.get("token").is_none(), "tokens are never listed: {g}");
    let set = admin
        .json(&["admin", "apps", "set", "gamma", "--priority", "2"])
        .await;
    assert_eq!(set["priority"], 2);
    assert_eq!(set["lines"], serde_json::json!(["2005"]));
    // The configured permissions survive a change of something else.
    assert_eq!(set["permissions"], serde_json::json!(["make_call"]));
    assert_eq!(
        set["effective_permissions"],
        serde_json::json!(["make_call"])
    );
    let set = admin
        .json(&["admin", "apps", "set", "gamma", "--default-permissions"])
        .await;
    assert!(set.get("permissions").is_none(), "{set}");
    assert_eq!(
        set["effective_permissions"],
        serde_json::json!(["make_call", "forward"])
    );
    admin.run(&["admin", "apps", "delete", "gamma"]).await.ok();
    let revoked = gamma.run(&["lines"]).await;
    assert_eq!(revoked.code, 1);
    assert!(revoked.stderr.contains("unauthorized"), "{revoked:?}");
    let deleted = admin.run(&["admin", "lines", "delete", "2005"]).await;
    assert_eq!(deleted.ok(), "deleted line 2005\n");
    let gone = admin.run(&["admin", "lines", "show", "2005"]).await;
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("invallinehandle"), "{gone:?}");

    // Trunks.
    let t = admin
        .json(&[
            "admin",
            "trunks",
            "add",
            "carrier",
            "--host",
            "127.0.0.1",
            "--port",
            "5080",
            "--transport",
            "tcp",
            "--password",
            "pw",
        ])
        .await;
    assert_eq!(t["port"], 5080);
    assert_eq!(t["has_password"], true);
    assert!(t.get("password").is_none(), "{t}");
    let t = admin
        .json(&["admin", "trunks", "set", "carrier", "--prefix", "9"])
        .await;
    assert_eq!(
        (t["prefix"].as_str(), t["host"].as_str()),
        (Some("9"), Some("127.0.0.1"))
    );
    let list = admin.run(&["admin", "trunks"]).await;
    assert!(
        list.ok().lines().nth(1).unwrap().starts_with("carrier"),
        "{list:?}"
    );
    let no_host = admin.run(&["admin", "trunks", "add", "other"]).await;
    assert_eq!(no_host.code, 2, "{no_host:?}");
    admin
        .run(&["admin", "trunks", "delete", "carrier"])
        .await
        .ok();

    // Pickup groups and park.
    let g = admin
        .run(&["admin", "pickup-groups", "set", "support", "2001", "2003"])
        .await;
    assert_eq!(g.ok(), "support: 2001,2003\n");
    let groups = admin.json(&["admin", "pickup-groups"]).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "support")
    );
    admin
        .run(&["admin", "pickup-groups", "delete", "support"])
        .await
        .ok();
    let park = admin.run(&["admin", "park"]).await;
    assert!(park.ok().starts_with("slots     7001-7005\n"), "{park:?}");
    let park = admin
        .json(&[
            "admin",
            "park",
            "set",
            "7001-7010",
            "--reminder-ms",
            "60000",
        ])
        .await;
    assert_eq!(park["slots"], "7001-7010");
    assert_eq!(park["reminder_ms"], 60000);
    let bad = admin.run(&["admin", "park", "set", "7010-7001"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalparam"), "{bad:?}");

    // CDRs: a call between two route points, ended on both sides.
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    open_all(&alpha, &beta).await;
    let a = alpha.json(&["call", "make", "2001", "2002"]).await;
    let a = a["id"].as_str().unwrap().to_string();
    let b = beta.call_at("2002", "offering").await;
    beta.run(&["call", "answer", &b]).await.ok();
    alpha.run(&["call", "hold", &a]).await.ok();
    alpha.run(&["call", "drop", &a]).await.ok();
    beta.run(&["call", "drop", &b]).await.ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    let cdrs = loop {
        let cdrs = admin
            .json(&["cdr", "--address", "2001", "--limit", "5"])
            .await;
        if !cdrs["cdrs"].as_array().unwrap().is_empty() {
            break cdrs;
        }
        assert!(Instant::now() < deadline, "no CDR");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let id = cdrs["cdrs"][0]["id"].as_str().unwrap().to_string();
    let table = admin.run(&["cdr"]).await;
    let text = table.ok();
    assert!(text.starts_with("CDR"), "{text}");
    assert!(text.contains(&id) && text.contains("caller:2001"), "{text}");
    let one = admin.run(&["cdr", &id]).await;
    let text = one.ok();
    assert!(text.contains("hold") && text.contains("ok"), "{text}");
    let missing = admin.run(&["cdr", "nope"]).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    s.shutdown().await;
}

/// Issue 18 from the command line. lineMakeCall with a destination ending
/// in `;` places the call with the digits so far and leaves it `dialing`;
/// `call dial` completes it. linePickup naming both the ringing address and
/// its group (`--group`: the address must be in it). lineSetMediaMode
/// (`call media-mode`). lineHandoff to media mode `unknown`: "the target
/// application is the one that handles calls of unknown media mode" (an
/// app opens its line with `--media-mode unknown` when its configuration
/// lets it); here no app does, so `targetnotfound` (it was
/// `invalmediamode`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_dialing_pickup_by_address_and_group_media_mode_and_handoff_to_unknown() {
    let s = server().await;
    let alpha = Tapir::new(&s, "tok-alpha");
    let beta = Tapir::new(&s, "tok-beta");
    // `unknown` is a media mode the CLI passes on (it refused it before);
    // alpha's configuration does not let it handle unknown media.
    let unknown = alpha
        .run(&["lines", "open", "2001", "--media-mode", "unknown"])
        .await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("noprivilege"), "{unknown:?}");
    let bad = alpha
        .run(&["lines", "open", "2001", "--media-mode", "telepathy"])
        .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("not a media mode"), "{bad:?}");
    alpha.run(&["lines", "open", "2001"]).await.ok();
    for l in ["2002", "2004"] {
        beta.run(&["lines", "open", l]).await.ok();
    }

    let made = alpha.json(&["call", "make", "2001", "20;"]).await;
    assert_eq!(made["state"], "dialing", "{made}");
    let a = made["id"].as_str().unwrap().to_string();
    assert_eq!(
        alpha.json(&["call", "dial", &a, "04"]).await["id"],
        a.as_str()
    );
    let ringing = beta.call_at("2004", "offering").await;

    let wrong = beta
        .run(&["pickup", "2002", "2004", "--group", "support"])
        .await;
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("invalgroupid"), "{wrong:?}");
    let picked = beta
        .json(&["pickup", "2002", "2004", "--group", "sales"])
        .await;
    assert_eq!(picked["reason"], "pickup");
    assert_eq!(picked["address"], "2002");
    assert_eq!(
        beta.json(&["call", "show", &ringing]).await["state"],
        "idle"
    );

    let m = alpha
        .json(&["call", "media-mode", &a, "automatedvoice"])
        .await;
    assert_eq!(m["media_mode"], "automatedvoice", "{m}");
    // The table shows it too (LINECALLINFO's dwMediaMode).
    let shown = alpha.run(&["call", "show", &a]).await;
    let text = shown.ok();
    assert!(text.lines().next().unwrap().ends_with("MEDIA"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().ends_with("automatedvoice"),
        "{text}"
    );
    let h = alpha
        .run(&["call", "handoff", &a, "--media-mode", "unknown"])
        .await;
    assert_eq!(h.code, 1, "{h:?}");
    assert!(h.stderr.contains("targetnotfound"), "{h:?}");
    // The handoff changed nothing, the media mode included.
    assert_eq!(
        alpha.json(&["call", "show", &a]).await["media_mode"],
        "automatedvoice"
    );
    s.shutdown().await;
}
