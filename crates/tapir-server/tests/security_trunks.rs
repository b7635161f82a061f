//! Security regressions of issue 12, finding 4 (trunks trust too much,
//! nothing limits who may dial out), against a real server on loopback:
//!
//! * a line with `outbound = "internal"` cannot reach the trunk by make
//!   call, forwarding, redirect, blind or consultation transfer (HTTP 403
//!   `addressblocked`) or its phone's own INVITE (SIP 403), and nothing
//!   reaches the carrier;
//! * a carrier's INVITE to a number that leaves on a trunk is not sent
//!   back out (403) unless the trunk allows hairpins (`allow_hairpin`,
//!   carried by `/v1/admin/trunks`);
//! * a TCP INVITE whose Via names the UDP carrier's address is not the
//!   carrier's: it meets the phones' digest challenge;
//! * a phone's P-Asserted-Identity is never its caller id.
//!
//! The carrier is a plain UDP socket; the phone a plain SIP client that
//! computes its digest with `tapir_sip`'s digest code.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{Api, WAIT, server_with};
use tapir_server::{Config, RunningServer};
use tapir_sip::auth::{Algorithm, DigestInput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A number that leaves on the trunk (prefix `9`).
const OUTSIDE: &str = "95551234";

/// tapir over UDP and TCP with trunk line 9000, whose carrier (prefix `9`)
/// is `carrier` over UDP; route point 2001 and phone 1001 may dial
/// internal addresses only.
async fn office(carrier: &UdpSocket) -> RunningServer {
    let port = carrier.local_addr().unwrap().port();
    server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()];
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"9000\"\nkind = \"trunk\"\n\
             [[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             prefix = \"9\"\naddress = \"9000\"\n"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.trunks.extend(extra.trunks);
        for line in c.lines.iter_mut() {
            if line.address == "2001" || line.address == "1001" {
                line.outbound = tapir_core::Outbound::Internal;
            }
        }
    })
    .await
}

/// One SIP message's text: start line and headers, and the body.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (h, v) = l.split_once(':')?;
        h.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn status(text: &str) -> u16 {
    text.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// What a UDP socket receives until the final response to the request
/// with `call_id`: the final response, and every request tapir sent it
/// meanwhile (answered 486 so that tapir stops retransmitting).
async fn udp_final(socket: &UdpSocket, call_id: &str) -> (String, Vec<String>) {
    let mut requests = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, from) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no final response; tapir sent {requests:#?}"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 ") {
            if status(&text) >= 200 && header(&text, "Call-ID") == Some(call_id) {
                return (text, requests);
            }
            continue;
        }
        if text.starts_with("INVITE ") {
            busy(socket, from, &text).await;
        }
        requests.push(text);
    }
}

/// Answer a request from tapir with 486.
async fn busy(socket: &UdpSocket, to: std::net::SocketAddr, request: &str) {
    let h = |n: &str| format!("{n}: {}", header(request, n).unwrap_or_default());
    let reply = format!(
        "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=carrier\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq"),
    );
    socket.send_to(reply.as_bytes(), to).await.unwrap();
}

/// The Request-URI of the next INVITE tapir sends the carrier (answered
/// 486); anything else it sends first is skipped.
async fn next_invite(carrier: &UdpSocket) -> String {
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, from) = tokio::time::timeout(WAIT, carrier.recv_from(&mut buf))
            .await
            .expect("no INVITE reached the carrier")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if let Some(rest) = text.strip_prefix("INVITE ") {
            busy(carrier, from, &text).await;
            return rest.split(' ').next().unwrap_or_default().to_string();
        }
    }
}

/// An INVITE to `to` from `user` sent from `local` over `transport`
/// (`UDP`/`TCP`) with `via` as its top Via's sent-by, and extra headers.
fn invite(transport: &str, via: &str, user: &str, to: &str, call_id: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@127.0.0.1>;tag=f-{call_id}\r\n\
         To: <sip:{to}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{user}@{via}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// The Proxy-Authorization answering `challenge` (a 407's text) for an
/// INVITE to `to` as `user` with `password`.
fn authorization(challenge: &str, user: &str, password: &str, to: &str) -> String {
    let header = challenge
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("proxy-authenticate:"))
        .find(|l| l.to_ascii_uppercase().contains("MD5") || !l.contains("algorithm"))
        .expect("an MD5 challenge");
    let param = |key: &str| {
        header
            .split([',', ' '])
            .find_map(|p| p.trim().strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let uri = format!("sip:{to}@127.0.0.1");
    let response = DigestInput {
        algorithm: Algorithm::Md5,
        username: user,
        realm: &realm,
        password,
        method: "INVITE",
        uri: &uri,
        nonce: &nonce,
        nonce_count: "00000001",
        cnonce: "c0ffee",
        qop: "auth",
    }
    .response();
    format!(
        "Proxy-Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"c0ffee\"\r\n"
    )
}

/// A SIP client over one TCP connection.
struct Tcp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Tcp {
    async fn connect(server: std::net::SocketAddr) -> Tcp {
        Tcp {
            stream: TcpStream::connect(server).await.unwrap(),
            buf: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    /// Send `msg`; the first final response to it.
    async fn request(&mut self, msg: &str) -> String {
        self.stream.write_all(msg.as_bytes()).await.unwrap();
        loop {
            let text = self.next().await;
            if status(&text) >= 200 {
                return text;
            }
        }
    }

    /// The next message on the connection (framed by Content-Length).
    async fn next(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let body: usize = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + body {
                    self.buf.drain(..end + 4 + body);
                    return head;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("no SIP message within the bound")
                .unwrap();
            assert!(n > 0, "tapir closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[tokio::test]
async fn an_internal_line_cannot_reach_the_trunk() {
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = office(&carrier).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let blocked = |(status, body): (u16, serde_json::Value)| {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "addressblocked", "{body}");
    };

    // Make call.
    blocked(
        alpha
            .post("/v1/calls", json!({"from": "2001", "to": OUTSIDE}))
            .await,
    );
    // Forwarding.
    blocked(
        alpha
            .put(
                "/v1/addresses/2001/forwarding",
                json!({"rules": [{"mode": "unconditional", "to": OUTSIDE}]}),
            )
            .await,
    );
    // Redirect of a call offered at 2001.
    let mut alpha_events = alpha.events(0).await;
    let _ = beta
        .ok("/v1/calls", json!({"from": "2002", "to": "2001"}))
        .await;
    let offered = alpha_events
        .until("call.new at 2001", |v| {
            v["type"] == "call.new" && v["address"] == "2001"
        })
        .await;
    let at_2001 = offered["call"].as_str().unwrap().to_string();
    blocked(
        alpha
            .post(
                &format!("/v1/calls/{at_2001}/redirect"),
                json!({"to": OUTSIDE}),
            )
            .await,
    );
    // Blind and consultation transfer of the call once answered.
    let answered = alpha
        .ok(&format!("/v1/calls/{at_2001}/answer"), json!({}))
        .await;
    assert_eq!(answered["state"], "connected", "{answered}");
    blocked(
        alpha
            .post(
                &format!("/v1/calls/{at_2001}/blind-transfer"),
                json!({"to": OUTSIDE}),
            )
            .await,
    );
    let setup = alpha
        .ok(&format!("/v1/calls/{at_2001}/setup-transfer"), json!({}))
        .await;
    let consult = setup["consult_call"]["id"]
        .as_str()
        .or(setup["consult_call"].as_str())
        .unwrap()
        .to_string();
    blocked(
        alpha
            .post(
                &format!("/v1/calls/{consult}/dial"),
                json!({"digits": OUTSIDE}),
            )
            .await,
    );

    // Its phone's own INVITE: challenged, then 403.
    let sip = s.sip_addr.unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = phone.local_addr().unwrap().to_string();
    let first = invite("UDP", &local, "1001", OUTSIDE, "out-1", "");
    phone.send_to(first.as_bytes(), sip).await.unwrap();
    let (challenge, _) = udp_final(&phone, "out-1").await;
    assert_eq!(status(&challenge), 407, "{challenge}");
    let auth = authorization(&challenge, "1001", "pw", OUTSIDE);
    let second = invite("UDP", &local, "1001", OUTSIDE, "out-2", &auth);
    phone.send_to(second.as_bytes(), sip).await.unwrap();
    let (refused, _) = udp_final(&phone, "out-2").await;
    assert_eq!(status(&refused), 403, "{refused}");

    // None of it reached the carrier: the first INVITE it gets is the one
    // a national line (2003) places now.
    let (status, body) = alpha
        .post("/v1/calls", json!({"from": "2003", "to": "95550000"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let uri = next_invite(&carrier).await;
    assert!(uri.starts_with("sip:5550000@"), "{uri}");
}

#[tokio::test]
async fn a_carriers_call_is_not_sent_back_out_unless_the_trunk_allows_it() {
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = office(&carrier).await;
    let sip = s.sip_addr.unwrap();
    let local = carrier.local_addr().unwrap().to_string();
    let msg = invite("UDP", &local, "+4930555123", OUTSIDE, "hairpin-1", "");
    carrier.send_to(msg.as_bytes(), sip).await.unwrap();
    let (response, sent) = udp_final(&carrier, "hairpin-1").await;
    assert!(
        !sent.iter().any(|r| r.starts_with("INVITE ")),
        "the carrier's call went back out: {sent:#?}"
    );
    assert_eq!(status(&response), 403, "{response}");

    // The operator allows hairpins on the trunk: the call goes out again.
    let admin = Api::new(&s, Some("admin-secret"));
    let (status_code, body) = admin
        .put(
            "/v1/admin/trunks/carrier",
            json!({"host": "127.0.0.1", "port": carrier.local_addr().unwrap().port(),
                   "prefix": "9", "address": "9000", "allow_hairpin": true}),
        )
        .await;
    assert_eq!(status_code, 200, "{body}");
    assert_eq!(body["allow_hairpin"], true, "{body}");
    let msg = invite("UDP", &local, "+4930555123", OUTSIDE, "hairpin-2", "");
    carrier.send_to(msg.as_bytes(), sip).await.unwrap();
    let uri = next_invite(&carrier).await;
    assert!(uri.starts_with("sip:5551234@"), "{uri}");
}

#[tokio::test]
async fn a_tcp_invite_naming_the_udp_carrier_in_its_via_is_not_the_carrier() {
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = office(&carrier).await;
    let carrier_addr = carrier.local_addr().unwrap().to_string();
    let mut stranger = Tcp::connect(s.sip_tcp_addr.unwrap()).await;
    // Route point 2004 has no owner: were the INVITE admitted as the
    // carrier's, the switch would refuse the call itself (not 407).
    let msg = invite(
        "TCP",
        &carrier_addr,
        "+4930555123",
        "2004",
        "via-1",
        "P-Asserted-Identity: <sip:+4930555999@carrier>\r\n",
    );
    let response = stranger.request(&msg).await;
    assert_eq!(status(&response), 407, "{response}");
    // Nor does it leave on the trunk.
    let msg = invite("TCP", &carrier_addr, "+4930555123", OUTSIDE, "via-2", "");
    let response = stranger.request(&msg).await;
    assert_eq!(status(&response), 407, "{response}");
    assert!(stranger.port() != carrier.local_addr().unwrap().port());
}

#[tokio::test]
async fn a_phones_p_asserted_identity_is_not_its_caller_id() {
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = office(&carrier).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2001", &["owner"]).await;
    let mut events = alpha.events(0).await;
    // A nonce for phone 1001 (from a challenge over UDP).
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap().to_string();
    let probe = invite("UDP", &local, "1001", "2001", "pai-0", "");
    udp.send_to(probe.as_bytes(), s.sip_addr.unwrap())
        .await
        .unwrap();
    let (challenge, _) = udp_final(&udp, "pai-0").await;
    assert_eq!(status(&challenge), 407, "{challenge}");
    // The phone calls 2001 over TCP, authenticated, asserting a carrier's
    // caller id, with the carrier's address in its Via.
    let carrier_addr = carrier.local_addr().unwrap().to_string();
    let auth = authorization(&challenge, "1001", "pw", "2001");
    let mut phone = Tcp::connect(s.sip_tcp_addr.unwrap()).await;
    let msg = invite(
        "TCP",
        &carrier_addr,
        "1001",
        "2001",
        "pai-1",
        &format!("P-Asserted-Identity: <sip:+4930555999@carrier>\r\n{auth}"),
    );
    phone.stream.write_all(msg.as_bytes()).await.unwrap();
    let new = events
        .until("call.new at 2001", |v| {
            v["type"] == "call.new" && v["address"] == "2001"
        })
        .await;
    let call = alpha.call(new["call"].as_str().unwrap()).await;
    assert_eq!(call["caller"]["address"], "1001", "{call}");
    assert_ne!(call["origin"], "external", "{call}");
}

#[tokio::test]
async fn the_admin_api_carries_a_lines_outbound_class_and_it_applies_at_once() {
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = office(&carrier).await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, line) = admin.get("/v1/admin/lines/2003").await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["outbound"], "national", "the default: {line}");
    let (status, line) = admin.get("/v1/admin/lines/2001").await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["outbound"], "internal", "{line}");
    let (status, body) = admin
        .put(
            "/v1/admin/lines/2003",
            json!({"kind": "routepoint", "outbound": "none"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outbound"], "none", "{body}");
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2003", &["owner"]).await;
    let (status, body) = alpha
        .post("/v1/calls", json!({"from": "2003", "to": "2001"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "addressblocked", "{body}");
    let (status, body) = admin
        .put(
            "/v1/admin/lines/2003",
            json!({"kind": "routepoint", "outbound": "everywhere"}),
        )
        .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "2005", "kind": "routepoint", "outbound": "all"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outbound"], "all", "{body}");
    let (_, trunks) = admin.get("/v1/admin/trunks").await;
    assert_eq!(trunks["trunks"][0]["allow_hairpin"], false, "{trunks}");
}
