//! Trunks bound at start and rebound by `/v1/admin/trunks` at once: an
//! INVITE from the carrier's address (a plain UDP socket on loopback) is
//! admitted without digest while the trunk exists, and meets the phones'
//! digest challenge once the trunk is gone or points elsewhere. A trunk's
//! dialled prefix selects its carrier for calls out (the prefix removed
//! from the Request-URI), at start and after every admin change.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{Api, WAIT, server_with, udp_request};
use tapir_server::Config;
use tokio::net::UdpSocket;

/// A carrier: a UDP socket that sends INVITEs to tapir.
struct Carrier {
    socket: UdpSocket,
    server: std::net::SocketAddr,
    n: u32,
}

impl Carrier {
    async fn new(server: std::net::SocketAddr) -> Carrier {
        Carrier {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            n: 0,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// INVITE `to`; the first final response's status.
    async fn invite(&mut self, to: &str) -> u16 {
        self.n += 1;
        let local = self.socket.local_addr().unwrap();
        let msg = format!(
            "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-trunk-{n}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+4930555123@carrier.test>;tag=c{n}\r\n\
             To: <sip:{to}@127.0.0.1>\r\n\
             Call-ID: trunk-{n}-{port}@carrier.test\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:gw@{local}>\r\n\
             Content-Length: 0\r\n\r\n",
            n = self.n,
            port = local.port(),
        );
        udp_request(&self.socket, self.server, &msg).await.0
    }
}

#[tokio::test]
async fn trunks_are_bound_at_start_and_follow_admin_changes_at_once() {
    // The carrier's socket first, so that the configuration can name it.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_port = probe.local_addr().unwrap().port();
    drop(probe);
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"9000\"\nkind = \"trunk\"\n\
             [[trunks]]\nname = \"carrier\"\nhost = \"localhost\"\nport = {carrier_port}\n\
             address = \"9000\"\n"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.trunks.extend(extra.trunks);
    })
    .await;
    let sip = s.sip_addr.unwrap();
    let mut carrier = Carrier {
        socket: UdpSocket::bind(("127.0.0.1", carrier_port)).await.unwrap(),
        server: sip,
        n: 0,
    };
    // Bound at start (host name resolved): no challenge. Route point 2001
    // has no owner, so the call itself is refused, by the switch.
    let admitted = carrier.invite("2001").await;
    assert_ne!(admitted, 407, "the trunk's carrier is admitted by address");
    assert_ne!(admitted, 403);

    let admin = Api::new(&s, Some("admin-secret"));
    let (status, body) = admin.delete("/v1/admin/trunks/carrier").await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(carrier.invite("2001").await, 407, "no trunk: digest");

    let (status, body) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "carrier", "host": "127.0.0.1", "port": carrier_port, "address": "9000"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(carrier.invite("2001").await, admitted, "bound again");

    // The trunk now points at another carrier: this one is a stranger.
    let other = Carrier::new(sip).await;
    let (status, body) = admin
        .put(
            "/v1/admin/trunks/carrier",
            json!({"host": "127.0.0.1", "port": other.port(), "address": "9000"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(carrier.invite("2001").await, 407);
    let mut other = other;
    assert_eq!(other.invite("2001").await, admitted);
}

#[tokio::test]
async fn a_trunk_is_bound_to_the_trunk_line_named_like_it_and_only_to_a_trunk_line() {
    let s = server_with(|c| c.sip.listen = vec!["udp:127.0.0.1:0".into()]).await;
    let sip = s.sip_addr.unwrap();
    let admin = Api::new(&s, Some("admin-secret"));
    let mut carrier = Carrier::new(sip).await;
    // A trunk without `address` whose name is no line's: not bound.
    let (status, body) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "9100", "host": "127.0.0.1", "port": carrier.port()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(carrier.invite("2001").await, 407);
    // The trunk line named like it appears: bound at once.
    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "9100", "kind": "trunk"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(carrier.invite("2001").await, 407);
    // A trunk cannot name a phone line.
    let (status, body) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "x", "host": "127.0.0.1", "port": carrier.port(), "address": "1001"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

impl Carrier {
    /// The Request-URI of the next new INVITE tapir sends this carrier,
    /// answered `486 Busy Here` (so tapir stops retransmitting). ACKs and
    /// retransmissions of INVITEs already seen are skipped.
    async fn next_invite(&mut self, seen: &mut Vec<String>) -> String {
        let mut buf = vec![0u8; 8192];
        loop {
            let (n, from) = tokio::time::timeout(WAIT, self.socket.recv_from(&mut buf))
                .await
                .expect("no INVITE reached the carrier")
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(uri) = text
                .strip_prefix("INVITE ")
                .and_then(|rest| rest.split(' ').next())
            else {
                continue;
            };
            let header = |name: &str| {
                text.lines()
                    .find(|l| {
                        l.split_once(':')
                            .is_some_and(|(h, _)| h.trim().eq_ignore_ascii_case(name))
                    })
                    .unwrap_or_default()
                    .to_string()
            };
            let reply = format!(
                "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=carrier\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
                header("Via"),
                header("From"),
                header("To"),
                header("Call-ID"),
                header("CSeq"),
            );
            self.socket.send_to(reply.as_bytes(), from).await.unwrap();
            let call_id = header("Call-ID");
            if seen.contains(&call_id) {
                continue;
            }
            seen.push(call_id);
            return uri.to_string();
        }
    }
}

#[tokio::test]
async fn a_trunk_prefix_selects_its_carrier_and_is_removed_from_the_number() {
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let national_port = probe.local_addr().unwrap().port();
    drop(probe);
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        // Two carriers: national numbers after `0`, outside lines after `9`.
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"8000\"\nkind = \"trunk\"\n\
             [[lines]]\naddress = \"9000\"\nkind = \"trunk\"\n\
             [[trunks]]\nname = \"national\"\nhost = \"127.0.0.1\"\nport = {national_port}\n\
             prefix = \"0\"\naddress = \"8000\"\n"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.trunks.extend(extra.trunks);
    })
    .await;
    let sip = s.sip_addr.unwrap();
    let mut national = Carrier {
        socket: UdpSocket::bind(("127.0.0.1", national_port)).await.unwrap(),
        server: sip,
        n: 0,
    };
    let mut outside = Carrier::new(sip).await;
    let admin = Api::new(&s, Some("admin-secret"));
    // The second trunk arrives at run time, through the admin API.
    let (status, body) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "outside", "host": "127.0.0.1", "port": outside.port(),
                   "prefix": "9", "address": "9000"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2001", &["owner"]).await;
    let mut seen = Vec::new();
    let call = |to: &'static str| {
        let alpha = alpha.clone();
        async move {
            alpha
                .post("/v1/calls", json!({"from": "2001", "to": to}))
                .await
        }
    };
    // Drop a call once its INVITE reached the carrier, freeing the route
    // point's call appearance.
    let drop_call = |body: serde_json::Value| {
        let alpha = alpha.clone();
        async move {
            let id = body["id"].as_str().unwrap();
            alpha.ok(&format!("/v1/calls/{id}/drop"), json!({})).await;
        }
    };
    let (status, body) = call("0201234").await;
    assert_eq!(status, 201, "{body}");
    let uri = national.next_invite(&mut seen).await;
    assert!(uri.starts_with("sip:201234@"), "{uri}");
    drop_call(body).await;

    let (status, body) = call("95551234").await;
    assert_eq!(status, 201, "{body}");
    let uri = outside.next_invite(&mut seen).await;
    assert!(uri.starts_with("sip:5551234@"), "{uri}");
    drop_call(body).await;

    // Both trunks have a prefix: a number with neither goes nowhere.
    let (status, body) = call("5551234").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invaladdress", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5551234"),
        "{body}"
    );
    // A bare prefix is not a number.
    let (status, body) = call("9").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invaladdress", "{body}");

    // The national carrier's access code changes to `7` at once.
    let (status, body) = admin
        .put(
            "/v1/admin/trunks/national",
            json!({"host": "127.0.0.1", "port": national_port, "prefix": "7", "address": "8000"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call("0201234").await;
    assert_eq!(status, 400, "`0` selects no trunk now: {body}");
    let (status, body) = call("7201234").await;
    assert_eq!(status, 201, "{body}");
    let uri = national.next_invite(&mut seen).await;
    assert!(uri.starts_with("sip:201234@"), "{uri}");
    drop_call(body).await;

    // The outside trunk deleted and added again without a prefix: it takes
    // every number no prefix selects, whole.
    let (status, body) = admin.delete("/v1/admin/trunks/outside").await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "outside", "host": "127.0.0.1", "port": outside.port(), "address": "9000"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call("95551234").await;
    assert_eq!(status, 201, "{body}");
    let uri = outside.next_invite(&mut seen).await;
    assert!(uri.starts_with("sip:95551234@"), "{uri}");
    drop_call(body).await;
    let (status, body) = call("7201234").await;
    assert_eq!(status, 201, "{body}");
    let uri = national.next_invite(&mut seen).await;
    assert!(uri.starts_with("sip:201234@"), "{uri}");
    drop_call(body).await;
}
