//! Lines changed through `/v1/admin/lines` take effect in SIP at once: a
//! phone of a line added at run time registers with its password, a new
//! password replaces the old one, and a removed line can no longer register.
//! A plain SIP client over UDP on loopback computes the digest (RFC 8760).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::{Api, server_with, udp_request};
use tapir_sip::auth::{Algorithm, DigestInput};
use tokio::net::UdpSocket;

struct Phone {
    socket: UdpSocket,
    server: std::net::SocketAddr,
    cseq: u32,
}

/// A header's parameters (`key="value"` or `key=value`, comma-separated).
fn param(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        let k = k.rsplit(' ').next()?;
        (k.eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Phone {
    async fn new(server: std::net::SocketAddr) -> Phone {
        Phone {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            cseq: 0,
        }
    }

    /// Send a REGISTER for `user` (with an Authorization header when given)
    /// and return the response's status and text.
    async fn register(&mut self, user: &str, authorization: Option<String>) -> (u16, String) {
        self.cseq += 1;
        let local = self.socket.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{user}-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=t{user}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{user}-{port}@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: 60\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            cseq = self.cseq,
            port = local.port(),
        );
        udp_request(&self.socket, self.server, &msg).await
    }

    /// REGISTER, answer the MD5 challenge with `password`, return the final status.
    async fn register_with(&mut self, user: &str, password: &str) -> u16 {
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
        let response = DigestInput {
            algorithm: Algorithm::Md5,
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

#[tokio::test]
async fn sip_credentials_follow_admin_changes_at_once() {
    let s = server_with(|c| c.sip.listen = vec!["udp:127.0.0.1:0".into()]).await;
    let sip = s.sip_addr.unwrap();
    let admin = Api::new(&s, Some("admin-secret"));
    let mut phone = Phone::new(sip).await;
    // Before the line exists its phone cannot register.
    assert_ne!(phone.register_with("3001", "first-pass-3001").await, 200);

    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3001", "password": "first-pass-3001"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(phone.register_with("3001", "first-pass-3001").await, 200);
    assert_ne!(phone.register_with("3001", "a-wrong-password").await, 200);

    // A new password works at once; the old one no longer does.
    let (status, _) = admin
        .put(
            "/v1/admin/lines/3001",
            json!({"password": "second-pass-3001"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(phone.register_with("3001", "second-pass-3001").await, 200);
    assert_ne!(phone.register_with("3001", "first-pass-3001").await, 200);
    // The line shows as registered.
    let watcher = Api::new(&s, Some("tok-watcher"));
    let (_, lines) = watcher.get("/v1/lines").await;
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"] == "3001")
        .unwrap()
        .clone();
    assert_eq!(line["registration"], "registered", "{line}");

    // Removed: it cannot register any more.
    assert_eq!(admin.delete("/v1/admin/lines/3001").await.0, 204);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_ne!(phone.register_with("3001", "second-pass-3001").await, 200);
}
