//! Calls whose far end vanished are cleared, over real sockets: a phone (a
//! plain UDP socket on loopback speaking SIP) registers, is called from a
//! route point, answers, and then sends nothing at all — no RTP, no RTCP,
//! no BYE. Within the short configured RTP timeout tapir sends it a BYE,
//! no call is left at either address, and the call's CDR names the reason
//! (`rtp_timeout`). A second phone that talks for a while and then falls
//! silent is cleared the same way.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Api, WAIT, server_with, udp_request};
use tapir_sip::auth::{Algorithm, DigestInput};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// The value of header `name` in a SIP message (first one, case-insensitive).
fn header(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A parameter of a challenge header (`key="value"` or `key=value`).
fn param(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        let k = k.rsplit(' ').next()?;
        k.eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Phone 1001: SIP on one socket, an RTP socket it may or may not use.
struct Phone {
    sip: UdpSocket,
    media: UdpSocket,
    server: SocketAddr,
}

impl Phone {
    async fn new(server: SocketAddr) -> Phone {
        Phone {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            media: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    async fn register(&self, authorization: Option<String>) -> (u16, String) {
        let local = self.sip.local_addr().unwrap();
        let (cseq, auth) = match authorization {
            Some(a) => (2, format!("Authorization: {a}\r\n")),
            None => (1, String::new()),
        };
        let msg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1001@127.0.0.1>;tag=r1001\r\n\
             To: <sip:1001@127.0.0.1>\r\n\
             Call-ID: reg-{port}@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local}>\r\n\
             Expires: 60\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            port = local.port(),
        );
        udp_request(&self.sip, self.server, &msg).await
    }

    /// REGISTER with the MD5 digest of `pw`.
    async fn register_with(&self, password: &str) {
        let (status, text) = self.register(None).await;
        assert_eq!(status, 401, "{text}");
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
            username: "1001",
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
            "Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
        );
        let (status, text) = self.register(Some(auth)).await;
        assert_eq!(status, 200, "{text}");
    }

    /// The next SIP request from tapir with this method (others skipped),
    /// within `within`.
    async fn request(&self, method: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 8192];
        for _ in 0..100 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(got) = timeout(left, self.sip.recv_from(&mut buf)).await else {
                break;
            };
            let (n, _) = got.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with(&format!("{method} ")) {
                return text;
            }
        }
        panic!("no {method} from tapir within {within:?}");
    }

    /// Answer tapir's INVITE with 200 OK and SDP naming the media socket.
    async fn answer(&self, invite: &str) {
        let port = self.media.local_addr().unwrap().port();
        let local = self.sip.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
        );
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for line in invite.lines().filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            }) {
                ok.push_str(line);
                ok.push_str("\r\n");
            }
        }
        let to = header(invite, "To").unwrap();
        ok.push_str(&format!("To: {to};tag=gone1001\r\n"));
        ok.push_str(&format!("Contact: <sip:1001@{local}>\r\n"));
        ok.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
        self.sip.send_to(ok.as_bytes(), self.server).await.unwrap();
    }
}

/// The calls at `address` the watcher sees.
async fn calls_at(watcher: &Api, address: &str) -> Vec<Value> {
    let (code, v) = watcher.get("/v1/calls").await;
    assert_eq!(code, 200, "{v}");
    v.as_array()
        .or_else(|| v["calls"].as_array())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["address"] == address && c["state"] != "idle")
        .collect()
}

/// The first CDR naming `address`, within the bound.
async fn cdr_of(admin: &Api, address: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, list) = admin.get(&format!("/v1/admin/cdr?address={address}")).await;
        if let Some(c) = list["cdrs"].as_array().and_then(|a| a.first()) {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "no CDR for {address}: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_phone_that_answers_and_vanishes_is_released_with_its_reason() {
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        c.media.rtp_timeout = 0.5;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    alpha.open("2001", &["owner"]).await;
    watcher.open("1001", &["monitor"]).await;
    watcher.open("2001", &["monitor"]).await;
    let mut events = alpha.events(0).await;
    let phone = Phone::new(s.sip_addr.unwrap()).await;
    phone.register_with("pw").await;

    // Route point 2001 calls the phone; the phone answers.
    let call = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let rp_call = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer(&invite).await;
    events.state(&rp_call, "connected").await;
    assert_eq!(calls_at(&watcher, "1001").await.len(), 1);

    // Then nothing from the phone: within the timeout (0.5 s; bounded at
    // 10 s here) tapir hangs up on it.
    let bye = phone.request("BYE", Duration::from_secs(10)).await;
    assert!(
        header(&bye, "Call-ID") == header(&invite, "Call-ID"),
        "{bye}"
    );
    assert!(
        header(&bye, "Reason")
            .is_some_and(|r| r.contains("cause=408") && r.contains("RTP timeout")),
        "{bye}"
    );
    events.state(&rp_call, "disconnected").await;
    alpha
        .ok(&format!("/v1/calls/{rp_call}/drop"), json!({}))
        .await;
    let deadline = Instant::now() + WAIT;
    while !calls_at(&watcher, "1001").await.is_empty() {
        assert!(Instant::now() < deadline, "a call stayed at 1001");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls_at(&watcher, "2001").await.is_empty());
    let cdr = cdr_of(&admin, "1001").await;
    assert_eq!(cdr["end_reason"], "rtp_timeout", "{cdr}");
    assert!(cdr["answered_at"].is_string(), "{cdr}");
    events.close().await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_phone_whose_media_stops_is_released_with_its_reason() {
    // Generous against a loaded machine pausing the talking phone.
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        c.media.rtp_timeout = 2.0;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner"]).await;
    let mut events = alpha.events(0).await;
    let phone = Phone::new(s.sip_addr.unwrap()).await;
    phone.register_with("pw").await;
    let call = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let rp_call = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer(&invite).await;
    events.state(&rp_call, "connected").await;
    let ack = phone.request("ACK", WAIT).await;
    assert!(ack.starts_with("ACK "));
    // tapir's RTP address, from its offer in the INVITE.
    let port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("tapir's SDP names its RTP port");
    let tapir_rtp = SocketAddr::from(([127, 0, 0, 1], port));
    // The phone talks for 3 s (longer than the timeout): no BYE meanwhile.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 8192];
    for seq in 0..150u16 {
        tick.tick().await;
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1001_u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0xff, 160));
        phone.media.send_to(&p, tapir_rtp).await.unwrap();
        if let Ok(Ok((n, _))) = timeout(Duration::ZERO, phone.sip.recv_from(&mut buf)).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(!text.starts_with("BYE "), "BYE while talking: {text}");
        }
    }
    // Then it falls silent and is released.
    phone.request("BYE", Duration::from_secs(15)).await;
    events.state(&rp_call, "disconnected").await;
    alpha
        .ok(&format!("/v1/calls/{rp_call}/drop"), json!({}))
        .await;
    let cdr = cdr_of(&admin, "1001").await;
    assert_eq!(cdr["end_reason"], "rtp_timeout", "{cdr}");
    events.close().await;
    s.shutdown().await;
}
