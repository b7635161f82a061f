//! Helpers of the integration tests: a real server on 127.0.0.1 port 0 with
//! route points and three apps, an HTTP client per app, and an event-stream
//! reader, a SIP request over UDP to its final response, and a [`Phone`]
//! that registers over UDP with a digest. Every wait is bounded.

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod media_phone;
pub mod sip;

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tapir_server::{Config, RunningServer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const WAIT: Duration = Duration::from_secs(5);

pub const CONFIG: &str = r#"
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
[[lines]]
address = "2003"
kind = "routepoint"
[[lines]]
address = "2004"
kind = "routepoint"
[[lines]]
address = "1001"
kind = "phone"
password = "pw"
[[apps]]
name = "alpha"
token = "tok-alpha"
lines = ["2001", "2003"]
privileges = ["owner", "monitor"]
permissions = ["make_call", "forward", "settings"]
[[apps]]
name = "beta"
token = "tok-beta"
lines = ["2002", "2004"]
[[apps]]
name = "watcher"
token = "tok-watcher"
lines = ["*"]
privileges = ["monitor"]
[park]
slots = "7001-7005"
"#;

pub async fn server() -> RunningServer {
    server_with(|_| {}).await
}

/// The test server with a change to its configuration.
pub async fn server_with(change: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.data_dir = std::env::temp_dir().join("tapir-server-tests");
    // Each server its own store (servers of one test binary run at once).
    config.store.url = Some("sqlite::memory:".into());
    change(&mut config);
    tokio::time::timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap()
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(server: &RunningServer, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{}", server.http_addr),
            addr: server.http_addr,
            token: token.map(str::to_string),
            http: reqwest::Client::new(),
        }
    }

    /// A client of a server at `addr` (a `tapir` process of the test).
    pub fn at(addr: std::net::SocketAddr, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{addr}"),
            addr,
            token: token.map(str::to_string),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let (status, body, _) = self.send_full(rb).await;
        (status, body)
    }

    /// Status, body and the `tapir-request` header.
    pub async fn send_full(&self, rb: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
        let rb = match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        };
        let resp = tokio::time::timeout(WAIT, rb.send())
            .await
            .unwrap()
            .unwrap();
        let status = resp.status().as_u16();
        let request = resp
            .headers()
            .get("tapir-request")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = tokio::time::timeout(WAIT, resp.text())
            .await
            .unwrap()
            .unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body, request)
    }

    /// POST with the `tapir-request` header of the answer.
    pub async fn post_full(&self, path: &str, body: Value) -> (u16, Value, Option<String>) {
        self.send_full(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// POST expecting 2xx; returns the body.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    pub async fn open(&self, line: &str, privileges: &[&str]) {
        let (status, v) = self
            .post(
                &format!("/v1/lines/{line}/open"),
                json!({ "privileges": privileges }),
            )
            .await;
        assert_eq!(status, 200, "open {line}: {v}");
    }

    pub async fn call(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/v1/calls/{id}")).await;
        assert_eq!(status, 200, "GET call {id}: {v}");
        v
    }

    pub async fn events(&self, since: u64) -> Events {
        let url = format!("ws://{}/v1/events?since={since}", self.addr);
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .unwrap()
            .unwrap();
        Events {
            ws,
            seen: Vec::new(),
        }
    }
}

pub struct Events {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub seen: Vec<Value>,
}

impl Events {
    /// The next event before `deadline`.
    async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?
                .expect("the stream is open")
                .unwrap();
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                self.seen.push(v.clone());
                return Some(v);
            }
        }
    }

    /// The next event, within the bound.
    pub async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        match self.next_before(deadline).await {
            Some(v) => v,
            None => panic!("no event within the bound; seen {:#?}", self.seen),
        }
    }

    /// Read until an event matches; returns it.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.next_before(deadline).await {
                Some(v) if pred(&v) => return v,
                Some(_) => {}
                None => panic!("no event {what}; seen {:#?}", self.seen),
            }
        }
    }

    /// Wait for `call.state` `state` of `call`.
    pub async fn state(&mut self, call: &str, state: &str) -> Value {
        let (c, s) = (call.to_string(), state.to_string());
        self.until(&format!("{call} {state}"), move |v| {
            v["type"] == "call.state" && v["call"] == c.as_str() && v["state"] == s.as_str()
        })
        .await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// alpha on 2001 and beta on 2002 in a connected call; returns (alpha's call, beta's call).
pub async fn connected_pair(alpha: &Api, beta: &Api, beta_events: &mut Events) -> (String, String) {
    let a = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "2002"}))
        .await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let new = beta_events
        .until("call.new on 2002", |v| {
            v["type"] == "call.new" && v["address"] == "2002"
        })
        .await;
    let b_id = new["call"].as_str().unwrap().to_string();
    let answered = beta
        .ok(&format!("/v1/calls/{b_id}/answer"), json!({}))
        .await;
    assert_eq!(answered["state"], "connected", "{answered}");
    (a_id, b_id)
}

/// Send one SIP request from `socket` to `server` over UDP and wait for its
/// final response (provisional ones are skipped): its status and text.
pub async fn udp_request(
    socket: &tokio::net::UdpSocket,
    server: std::net::SocketAddr,
    msg: &str,
) -> (u16, String) {
    socket.send_to(msg.as_bytes(), server).await.unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("no SIP response")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            return (status, text);
        }
    }
}

/// A header's parameters (`key="value"` or `key=value`, comma-separated).
pub fn param(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        let k = k.rsplit(' ').next()?;
        (k.eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A SIP phone over UDP from a chosen loopback address.
pub struct Phone {
    socket: tokio::net::UdpSocket,
    server: std::net::SocketAddr,
    cseq: u32,
    /// Header lines (each ending in CRLF) added to every REGISTER.
    pub extra: String,
}

impl Phone {
    /// A phone on a new UDP socket at `local_ip` (any port), registering to `server`.
    pub async fn at(local_ip: &str, server: std::net::SocketAddr) -> Phone {
        Phone::on(
            tokio::net::UdpSocket::bind((local_ip, 0)).await.unwrap(),
            server,
        )
    }

    /// A phone on `socket`, registering to `server`.
    pub fn on(socket: tokio::net::UdpSocket, server: std::net::SocketAddr) -> Phone {
        Phone {
            socket,
            server,
            cseq: 0,
            extra: String::new(),
        }
    }

    /// Send a REGISTER for `user` (with an Authorization header when given)
    /// and return the response's status and text.
    pub async fn register(&mut self, user: &str, authorization: Option<String>) -> (u16, String) {
        self.cseq += 1;
        let local = self.socket.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{user}-{cseq}-{port}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=t{user}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{user}-{port}@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: 60\r\n\
             {extra}{auth}Content-Length: 0\r\n\r\n",
            extra = self.extra,
            cseq = self.cseq,
            port = local.port(),
        );
        udp_request(&self.socket, self.server, &msg).await
    }

    /// REGISTER, answer the MD5 challenge with `password`: the final status
    /// (or the first one, when it is not a challenge).
    pub async fn register_with(&mut self, user: &str, password: &str) -> u16 {
        let (status, text) = self.register(user, None).await;
        if status != 401 {
            return status;
        }
        let challenge = text
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
            .find(|l| param(l, "algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
            .expect("an MD5 challenge")
            .to_string();
        let realm = param(&challenge, "realm").unwrap();
        let nonce = param(&challenge, "nonce").unwrap();
        let uri = "sip:127.0.0.1";
        let response = tapir_sip::auth::DigestInput {
            algorithm: tapir_sip::auth::Algorithm::Md5,
            username: user,
            realm: &realm,
            password,
            method: "REGISTER",
            uri,
            nonce: &nonce,
            nonce_count: "00000001",
            cnonce: "c0ffee",
            qop: "auth",
        }
        .response();
        let auth = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
        );
        self.register(user, Some(auth)).await.0
    }
}
