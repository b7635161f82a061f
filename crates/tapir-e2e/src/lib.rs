//! # tapir-e2e — every TAPI operation end to end
//!
//! The harness of the end-to-end suite (`tests/*.rs`): each test starts the
//! real `tapir` binary ([`Tapir`]) on free loopback ports with its own data
//! directory, registers real SIP phones to it — PJSIP's pjsua2, driven by
//! `tests/interop/pjsua_phone.py` over JSON lines ([`Phone`]) — and drives
//! the operation through the HTTP API with the typed client `tapir-client`.
//! It then checks both sides: what each phone saw (who rang, who got a
//! re-INVITE or a BYE, what it hears: [`wav`]) and what the app received on
//! its event stream ([`Events`]).
//!
//! Steps many tests take alike are helpers here, so that each test reads
//! as the story of what its phones and its app do: a call the app makes
//! and the callee answers ([`make_answered_call`]), a consultation call
//! answered ([`consult_answered`]), a call offered at a ringing phone
//! ([`offered`]), two phones that hear each other
//! ([`assert_hear_each_other`]).
//!
//! Every wait is bounded. pjsua2 must be installed (`pip install
//! pjsua2-python`): without it a phone does not start and the test fails.
//!
//! Which test covers which row of `docs/operations.md`, and which rows
//! pjsua2 cannot cover and why: the table "End-to-end coverage" at the end
//! of that file.

pub mod wav;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tapir_client::{Call, CallState, Client, Event, EventKind, EventStream, Privilege};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a test waits for one thing (an event, a state) before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// The app token of the configuration (app `crm`, every line).
pub const APP_TOKEN: &str = "e2e-crm-token";

/// The token of the second app (`desk`, every line), for handoff.
pub const DESK_TOKEN: &str = "e2e-desk-token";

/// The operator's token.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

/// The phones of the configuration: address and whether the line honours
/// tapir's auto-answer hint. 1001–1003 are in pickup group `sales`.
pub const PHONES: &[(&str, bool)] = &[
    ("1001", true),
    ("1002", false),
    ("1003", false),
    ("1004", false),
    ("1005", true),
];

/// A phone line with two addresses: its phone registers as the first
/// (`1006`, password [`password`] of it), and a call to either address
/// rings it.
pub const TWO_ADDRESS_LINE: [&str; 2] = ["1006", "1007"];

/// The route point of the configuration (tapir answers its calls itself).
pub const ROUTE_POINT: &str = "2001";

/// The trunk line of [`Options::trunk`]: numbers no line owns leave on it,
/// and its carrier's calls come from it.
pub const TRUNK_LINE: &str = "9000";

/// The SIP digest password of a phone of [`PHONES`] (or of
/// [`TWO_ADDRESS_LINE`]'s first address).
pub fn password(address: &str) -> String {
    format!("pw-{address}-secret")
}

/// The repository's root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `tapir` binary under test: `TAPIR_BIN`, else the debug binary of
/// the cargo target directory (`cargo test --workspace` builds it).
pub fn tapir_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TAPIR_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug").join("tapir")
}

/// A free loopback port for both UDP and TCP (bound, then released).
fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port for UDP and TCP");
}

/// What a test changes in the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// `[park] slots`.
    pub park_slots: String,
    /// `[park] reminder_ms`.
    pub park_reminder_ms: Option<u64>,
    /// Call appearances per phone address (`max_calls`), if limited.
    pub max_calls: Option<usize>,
    /// Also listen for SIP over TLS (self-signed certificate made at start).
    pub tls: bool,
    /// A trunk line ([`TRUNK_LINE`]); its carrier is added with
    /// [`Tapir::add_trunk`] once it listens.
    pub trunk: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            park_slots: "7001-7003".into(),
            park_reminder_ms: None,
            max_calls: None,
            tls: false,
            trunk: false,
        }
    }
}

/// A running `tapir serve` with its own ports and data directory; killed
/// when dropped (its log is printed if the test is failing).
pub struct Tapir {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    /// SIP port (UDP and TCP) on 127.0.0.1.
    pub sip_port: u16,
    /// HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// SIP over TLS port on 127.0.0.1 ([`Options::tls`]).
    pub tls_port: Option<u16>,
}

impl Tapir {
    /// Start tapir with the default [`Options`].
    pub async fn start() -> Tapir {
        Tapir::start_with(Options::default()).await
    }

    /// Start tapir; retries on other ports if one was taken meanwhile.
    pub async fn start_with(options: Options) -> Tapir {
        let bin = tapir_bin();
        assert!(
            bin.exists(),
            "the tapir binary {} does not exist: build it (cargo test --workspace --no-run) or set TAPIR_BIN",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            match Tapir::try_start(&bin, &options).await {
                Ok(t) => return t,
                Err(e) => last = e,
            }
        }
        panic!("tapir did not start: {last}");
    }

    fn config(&self, options: &Options) -> String {
        let tls = match self.tls_port {
            Some(p) => format!(", \"tls:127.0.0.1:{p}\""),
            None => String::new(),
        };
        let mut c = format!(
            "data_dir = \"{dir}/data\"\n\
             [sip]\nlisten = [\"udp:127.0.0.1:{sip}\", \"tcp:127.0.0.1:{sip}\"{tls}]\n\
             domain = \"127.0.0.1\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\
             [park]\nslots = \"{slots}\"\n",
            dir = self.dir.path().display(),
            sip = self.sip_port,
            http = self.http_port,
            slots = options.park_slots,
        );
        if let Some(ms) = options.park_reminder_ms {
            c.push_str(&format!("reminder_ms = {ms}\n"));
        }
        for (address, auto) in PHONES {
            c.push_str(&format!(
                "[[lines]]\naddress = \"{address}\"\nkind = \"phone\"\npassword = \"{pw}\"\n\
                 name = \"Phone {address}\"\nauto_answer = {auto}\n",
                pw = password(address)
            ));
            if matches!(*address, "1001" | "1002" | "1003") {
                c.push_str("pickup_group = \"sales\"\n");
            }
            if let Some(n) = options.max_calls {
                c.push_str(&format!("max_calls = {n}\n"));
            }
        }
        let [first, second] = TWO_ADDRESS_LINE;
        c.push_str(&format!(
            "[[lines]]\naddress = \"{first}\"\nmore_addresses = [\"{second}\"]\nkind = \"phone\"\n\
             password = \"{pw}\"\nname = \"Phone {first}/{second}\"\n",
            pw = password(first)
        ));
        if let Some(n) = options.max_calls {
            c.push_str(&format!("max_calls = {n}\n"));
        }
        c.push_str(&format!(
            "[[lines]]\naddress = \"{ROUTE_POINT}\"\nkind = \"routepoint\"\nname = \"Queue\"\n"
        ));
        if options.trunk {
            c.push_str(&format!(
                "[[lines]]\naddress = \"{TRUNK_LINE}\"\nkind = \"trunk\"\nname = \"Carrier\"\n"
            ));
        }
        for (name, token, priority) in [("crm", APP_TOKEN, 0), ("desk", DESK_TOKEN, 5)] {
            c.push_str(&format!(
                "[[apps]]\nname = \"{name}\"\ntoken = \"{token}\"\nlines = [\"*\"]\n\
                 privileges = [\"owner\", \"monitor\"]\npriority = {priority}\n\
                 media_modes = [\"interactivevoice\", \"unknown\", \"g3fax\"]\n"
            ));
        }
        c
    }

    async fn try_start(bin: &Path, options: &Options) -> Result<Tapir, String> {
        let dir = tempfile::Builder::new()
            .prefix("tapir-e2e-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut t = Tapir {
            child: None,
            dir,
            sip_port: free_port(),
            http_port: free_port(),
            tls_port: options.tls.then(free_port),
        };
        let config_path = t.dir.path().join("tapir.toml");
        std::fs::write(&config_path, t.config(options)).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(t.log_path()).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        t.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = Client::new(t.base_url(), APP_TOKEN).map_err(|e| e.to_string())?;
        loop {
            if probe.health().await.is_ok() {
                return Ok(t);
            }
            if let Some(c) = t.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("tapir exited ({status}): {}", t.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within 20 s: {}", t.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The test's temporary directory (recordings go here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tapir.log")
    }

    /// The last lines of tapir's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The app `crm` with every line open (owner and monitor), and its
    /// event stream from the start.
    pub async fn app(&self) -> (Client, Events) {
        self.app_with_token(APP_TOKEN).await
    }

    /// An app by token, with every line open as owner and monitor.
    pub async fn app_with_token(&self, token: &str) -> (Client, Events) {
        let client = Client::connect(self.base_url(), token)
            .await
            .unwrap_or_else(|e| panic!("client: {e}"));
        let events = Events::new(client.events(0));
        for mut line in client.lines().await.unwrap_or_else(|e| panic!("{e}")) {
            let address = line.address().to_string();
            line.open(&[Privilege::Owner, Privilege::Monitor], &[])
                .await
                .unwrap_or_else(|e| panic!("open {address}: {e}"));
        }
        (client, events)
    }

    /// A pjsua2 phone for `address`, registered (digest auth, 200).
    pub async fn phone(&self, address: &str) -> Phone {
        self.phone_with(address, "udp", None).await
    }

    /// A phone on another SIP transport (`udp`, `tcp`, `tls`: needs
    /// [`Options::tls`]) and with pjsua2's SRTP setting (`optional`,
    /// `mandatory`), registered.
    pub async fn phone_with(&self, address: &str, transport: &str, srtp: Option<&str>) -> Phone {
        let port = if transport == "tls" {
            self.tls_port
                .unwrap_or_else(|| panic!("a TLS phone needs Options::tls"))
        } else {
            self.sip_port
        };
        let mut extra = vec!["--transport".to_string(), transport.to_string()];
        if let Some(s) = srtp {
            extra.extend(["--srtp".to_string(), s.to_string()]);
        }
        let mut p = Phone::spawn(address, port, self.dir.path(), &extra).await;
        p.send(json!({"cmd": "register"})).await;
        let e = p.wait_event("registration", |e| e["event"] == "reg").await;
        assert_eq!(e["code"], 200, "{address} registers with digest auth");
        p
    }

    /// A pjsua2 "carrier" on a free loopback port: an account that does
    /// not register, calls tapir from number `number` and takes the calls
    /// tapir sends it over `transport`. Returns it and its SIP port (give
    /// it to [`Tapir::add_trunk`]).
    pub async fn carrier(&self, number: &str, transport: &str) -> (Phone, u16) {
        let port = free_port();
        let extra = [
            "--transport".to_string(),
            transport.to_string(),
            "--port".to_string(),
            port.to_string(),
        ];
        (
            Phone::spawn(number, self.sip_port, self.dir.path(), &extra).await,
            port,
        )
    }

    /// Add trunk `name` for [`TRUNK_LINE`] through the operator API: its
    /// carrier at 127.0.0.1:`port` over `transport`, with digest
    /// `credentials` if given.
    pub async fn add_trunk(
        &self,
        name: &str,
        port: u16,
        transport: &str,
        credentials: Option<(&str, &str)>,
    ) {
        let admin = Client::new(self.base_url(), ADMIN_TOKEN)
            .unwrap_or_else(|e| panic!("admin client: {e}"))
            .admin();
        admin
            .add_trunk(&tapir_client::AdminTrunk {
                name: name.into(),
                host: "127.0.0.1".into(),
                port: Some(port),
                transport: Some(transport.into()),
                username: credentials.map(|c| c.0.to_string()),
                password: credentials.map(|c| c.1.to_string()),
                address: Some(TRUNK_LINE.into()),
                ..tapir_client::AdminTrunk::default()
            })
            .await
            .unwrap_or_else(|e| panic!("add trunk {name}: {e}"));
    }

    /// Phones for these addresses, registered.
    pub async fn phones<const N: usize>(&self, addresses: [&str; N]) -> [Phone; N] {
        let mut out = Vec::with_capacity(N);
        for a in addresses {
            out.push(self.phone(a).await);
        }
        match out.try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("N phones were made"),
        }
    }
}

impl Drop for Tapir {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- tapir log ({}) ----\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
    }
}

/// One pjsua2 phone (`pjsua_phone.py`) driven over its stdin/stdout.
pub struct Phone {
    /// Its address.
    pub address: String,
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Events read but not yet taken by a wait.
    pending: Vec<Value>,
    stderr_path: PathBuf,
    tone_hz: Option<u32>,
}

impl Phone {
    /// Start the agent; waits for its `ready` event.
    pub async fn spawn(address: &str, sip_port: u16, workdir: &Path, extra: &[String]) -> Phone {
        let script = repo_root().join("tests/interop/pjsua_phone.py");
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let stderr_path = workdir.join(format!("phone-{address}.stderr"));
        let stderr = std::fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("{}: {e}", stderr_path.display()));
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--user", address, "--password", &password(address)])
            .args(["--server", &format!("127.0.0.1:{sip_port}")])
            .args(["--run-seconds", "300", "--workdir"])
            .arg(workdir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
        let (tx, rx) = mpsc::unbounded_channel();
        let Some(stdout) = child.stdout.take() else {
            panic!("phone {address}: no stdout pipe");
        };
        let Some(stdin) = child.stdin.take() else {
            panic!("phone {address}: no stdin pipe");
        };
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // pjsua's own log lines are not JSON: skip them.
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v.get("event").is_some()
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut p = Phone {
            address: address.into(),
            child,
            stdin,
            rx,
            pending: Vec::new(),
            stderr_path,
            tone_hz: None,
        };
        p.wait_event_for("ready", Duration::from_secs(20), |e| e["event"] == "ready")
            .await;
        p
    }

    /// Send one command (`{"cmd": …}`).
    pub async fn send(&mut self, cmd: Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            panic!("phone {}: cannot send {cmd}: {e}", self.address);
        }
        let _ = self.stdin.flush().await;
    }

    /// Send a command by name.
    pub async fn cmd(&mut self, name: &str) {
        self.send(json!({ "cmd": name })).await;
    }

    /// The first event (already read or arriving within [`WAIT`]) that
    /// matches; it is taken, events before it stay for later waits.
    pub async fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_event_for(what, WAIT, pred).await
    }

    /// [`Phone::wait_event`] with another bound.
    pub async fn wait_event_for(
        &mut self,
        what: &str,
        bound: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + bound;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(e)) => self.pending.push(e),
                Ok(None) => panic!(
                    "phone {}: exited waiting for {what}; saw {:?}; stderr: {}",
                    self.address,
                    self.pending,
                    self.stderr()
                ),
                Err(_) => panic!(
                    "phone {}: no {what} within {bound:?}; saw {:?}; stderr: {}",
                    self.address,
                    self.pending,
                    self.stderr()
                ),
            }
        }
    }

    /// Assert that no matching event arrives within `bound` (nor is
    /// pending).
    pub async fn expect_no_event(
        &mut self,
        what: &str,
        bound: Duration,
        pred: impl Fn(&Value) -> bool,
    ) {
        self.drain(bound).await;
        if let Some(e) = self.pending.iter().find(|e| pred(e)) {
            panic!("phone {}: unexpected {what}: {e}", self.address);
        }
    }

    /// Read what arrives within `bound` into the pending events.
    pub async fn drain(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.pending.push(e);
        }
    }

    /// The events read but not taken by a wait yet.
    pub fn pending_events(&self) -> &[Value] {
        &self.pending
    }

    /// Forget the events read so far.
    pub fn clear(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.pending.push(e);
        }
        self.pending.clear();
    }

    /// An INVITE arrived (`incoming`); returns the event (`auto`: whether
    /// it carried tapir's auto-answer hint).
    pub async fn rings(&mut self) -> Value {
        self.wait_event("an incoming INVITE", |e| e["event"] == "incoming")
            .await
    }

    /// The phone's current call reached this pjsua state (`CONFIRMED`,
    /// `DISCONNECTED`, …); returns the event (its `code`).
    pub async fn call_state(&mut self, state: &str) -> Value {
        self.wait_event(&format!("call state {state}"), |e| {
            e["event"] == "call" && e["state"] == state
        })
        .await
    }

    /// The phone's media went to this status (`active`, `remote_hold`,
    /// `local_hold`).
    pub async fn media(&mut self, status: &str) -> Value {
        self.wait_event(&format!("media {status}"), |e| {
            e["event"] == "media" && e["status"] == status
        })
        .await
    }

    /// Answer the ringing call (200).
    pub async fn answer(&mut self) {
        self.cmd("answer").await;
    }

    /// Ring, answer, and wait until confirmed.
    pub async fn ring_and_answer(&mut self) -> Value {
        let e = self.rings().await;
        self.answer().await;
        self.call_state("CONFIRMED").await;
        e
    }

    /// Call `to` through tapir.
    pub async fn dial(&mut self, to: &str) {
        self.send(json!({"cmd": "call", "to": to})).await;
    }

    /// The phone's audio stream (`media_info`: `proto`, `srtp`, SDPs), once
    /// it runs over `proto` (or whatever it runs over after [`WAIT`]).
    pub async fn media_info(&mut self, proto: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            self.cmd("media_info").await;
            let info = self
                .wait_event("media_info", |e| e["event"] == "media_info")
                .await;
            if info["proto"] == proto || Instant::now() > deadline {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The tone this phone plays into its current call while [`listen`]
    /// records (none: it stays silent).
    pub fn tone(&mut self, hz: u32) {
        self.tone_hz = Some(hz);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path)
            .map(|s| {
                s.chars()
                    .rev()
                    .take(2000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ask the agent to quit (its pjsua library shuts down cleanly).
    pub async fn quit(mut self) {
        self.cmd("quit").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Record what each phone's current call hears, at once, for about a
/// second; meanwhile each phone plays its [`Phone::tone`] into its current
/// call. The phones' players are made anew for each recording: pjsua drops
/// a player's link to a call when a re-INVITE renews the call's media.
pub async fn listen(phones: &mut [&mut Phone], dir: &Path, name: &str) -> Vec<wav::Recording> {
    listen_for(phones, dir, name, Duration::from_millis(1200)).await
}

/// [`listen`] for `length` instead of about a second (a recording keeps
/// its second half), for what sounds only now and then: a special
/// information tone's segments.
pub async fn listen_for(
    phones: &mut [&mut Phone],
    dir: &Path,
    name: &str,
    length: Duration,
) -> Vec<wav::Recording> {
    for p in phones.iter_mut() {
        // Drops the players and recorders of earlier recordings.
        p.cmd("stop_record").await;
        p.wait_event("players dropped", |e| e["event"] == "stopped")
            .await;
    }
    for p in phones.iter_mut() {
        if let Some(hz) = p.tone_hz {
            p.send(json!({"cmd": "tone", "hz": hz})).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut paths = Vec::new();
    for p in phones.iter_mut() {
        let path = dir.join(format!("{}-{name}.wav", p.address));
        p.send(json!({"cmd": "record", "path": path})).await;
        p.wait_event("recording started", |e| e["event"] == "recording")
            .await;
        paths.push(path);
    }
    tokio::time::sleep(length).await;
    for p in phones.iter_mut() {
        p.cmd("stop_record").await;
        p.wait_event("recording stopped", |e| e["event"] == "stopped")
            .await;
    }
    let mut out = Vec::new();
    for path in &paths {
        out.push(wav::Recording::read(path).await);
    }
    out
}

/// `a` and `b` talk to each other: each plays its [`Phone::tone`] while
/// both are recorded ([`listen`], as `name`), and each must hear the other's
/// tone and not its own. Returns the two recordings for further checks.
pub async fn assert_hear_each_other(
    a: &mut Phone,
    b: &mut Phone,
    dir: &Path,
    name: &str,
) -> [wav::Recording; 2] {
    let tone = |p: &Phone| {
        p.tone_hz
            .unwrap_or_else(|| panic!("phone {} has no tone to play", p.address))
    };
    let (hz_a, hz_b) = (tone(a), tone(b));
    let heard = listen(&mut [&mut *a, &mut *b], dir, name).await;
    let Ok(heard) = <[wav::Recording; 2]>::try_from(heard) else {
        unreachable!("two phones were recorded")
    };
    for (i, (me, other, own, theirs)) in [(&*a, &*b, hz_a, hz_b), (&*b, &*a, hz_b, hz_a)]
        .into_iter()
        .enumerate()
    {
        assert!(
            heard[i].hears(theirs) && !heard[i].hears(own),
            "{name}: {} hears {} ({theirs} Hz), not itself ({own} Hz): {:?}",
            me.address,
            other.address,
            heard[i].levels(&[own, theirs])
        );
    }
    heard
}

/// The app makes a call (`lineMakeCall`) from `caller`'s address, a phone
/// with auto-answer that tapir brings off hook first, to `callee`'s, whose
/// user answers; returns the call once the app sees it connected.
pub async fn make_answered_call(app: &Client, caller: &mut Phone, callee: &mut Phone) -> Call {
    let call = app
        .address(&caller.address)
        .create_call(&callee.address)
        .await
        .unwrap_or_else(|e| panic!("make call {} -> {}: {e}", caller.address, callee.address));
    caller.rings().await;
    caller.call_state("CONFIRMED").await;
    callee.ring_and_answer().await;
    wait_call_state(app, call.id(), CallState::Connected).await;
    call
}

/// The consultation call `consult` of the auto-answer phone `controller`
/// (from setup transfer, setup conference or prepare add): tapir brings
/// the controller's phone off hook for it, it dials `target`'s address and
/// the target's user answers; returns once the app sees it connected.
pub async fn consult_answered(
    app: &Client,
    consult: &mut Call,
    controller: &mut Phone,
    target: &mut Phone,
) {
    controller.rings().await;
    consult
        .dial(&target.address)
        .await
        .unwrap_or_else(|e| panic!("dial {} on {}: {e}", target.address, consult.id()));
    target.ring_and_answer().await;
    wait_call_state(app, consult.id(), CallState::Connected).await;
}

/// A call offered at a phone: see [`offered`].
pub struct Offered {
    /// The app's id of the call at the phone's address.
    pub call: String,
    /// The call as the app sees it, offered.
    pub info: tapir_client::CallInfo,
    /// The phone's `incoming` event (its INVITE: `from`, `auto`, …).
    pub invite: Value,
}

/// `phone` rings (an INVITE arrives) and the app sees a new call at its
/// address offered, both on its event stream and through the API.
pub async fn offered(app: &Client, ev: &mut Events, phone: &mut Phone) -> Offered {
    let invite = phone.rings().await;
    let call = ev.new_call_at(&phone.address).await;
    ev.state(&call, CallState::Offering).await;
    let info = wait_call_state(app, &call, CallState::Offering).await;
    Offered { call, info, invite }
}

/// The app's event stream, with bounded waits that keep what they skipped.
pub struct Events {
    stream: EventStream,
    /// Events received but not yet taken.
    pending: Vec<Event>,
    /// Every event received, in order.
    pub log: Vec<Event>,
}

impl Events {
    /// Wrap a stream.
    pub fn new(stream: EventStream) -> Events {
        Events {
            stream,
            pending: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The first event (already received or arriving within [`WAIT`]) that
    /// matches; it is taken, others stay.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(e))) => {
                    self.log.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                    self.pending.push(e);
                }
                Ok(Some(Err(e))) => panic!("event stream error waiting for {what}: {e}"),
                Ok(None) => panic!("event stream ended waiting for {what}"),
                Err(_) => panic!(
                    "app: no {what} within {WAIT:?}; pending: {:?}",
                    self.pending
                        .iter()
                        .map(|e| e.raw.to_string())
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// `call.new` at this address; returns the call id.
    pub async fn new_call_at(&mut self, address: &str) -> String {
        let e = self
            .wait(
                &format!("call.new at {address}"),
                |e| matches!(&e.kind, EventKind::CallNew { address: a, .. } if a == address),
            )
            .await;
        e.kind.call().unwrap_or_default().to_string()
    }

    /// `call.state` of `call` reaching `state`; returns its mode.
    pub async fn state(&mut self, call: &str, state: CallState) -> Option<String> {
        let e = self
            .wait(&format!("{call} {state}"), |e| {
                matches!(&e.kind, EventKind::CallState { call: c, state: s, .. } if c == call && *s == state)
            })
            .await;
        match e.kind {
            EventKind::CallState { state_mode, .. } => state_mode,
            _ => None,
        }
    }

    /// Read what arrives within `bound` into the pending events.
    pub async fn drain(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        while let Ok(Some(Ok(e))) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            self.log.push(e.clone());
            self.pending.push(e);
        }
    }

    /// The states `call` went through among the events received so far.
    pub fn states_of(&self, call: &str) -> Vec<CallState> {
        self.log
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::CallState { call: c, state, .. } if c == call => Some(*state),
                _ => None,
            })
            .collect()
    }
}

/// Wait until the call (as `client` sees it) is in `state`.
pub async fn wait_call_state(
    client: &Client,
    call: &str,
    state: CallState,
) -> tapir_client::CallInfo {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(c) = client.call(call).await {
            if c.state() == state {
                return c.info().clone();
            }
            last = Some(c.state());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{call}: wanted {state}, last seen {last:?}");
}

/// The TAPI error code of a failed client request (panics on success).
pub fn error_code<T: std::fmt::Debug>(r: Result<T, tapir_client::ClientError>) -> (String, String) {
    match r {
        Err(tapir_client::ClientError::Api { code, message, .. }) => (code, message),
        other => panic!("wanted an API error, got {other:?}"),
    }
}
