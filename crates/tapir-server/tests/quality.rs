//! Call quality from RTCP over real sockets: a phone (a plain UDP socket
//! on loopback speaking SIP, RTP and RTCP) calls a route point, an app
//! answers, the phone's stream loses known packets and the phone answers
//! tapir's sender report. The live view while the call is up, the CDR after
//! it and `/metrics` show exactly that loss, the phone's own report and a
//! round trip.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Api, WAIT, server, server_with};
use tapir_media::rtcp::{self, ReportBlock, RtcpItem};
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

fn status(text: &str) -> u16 {
    text.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Phone 1001: SIP on one socket, RTP and RTCP multiplexed on another.
struct Phone {
    sip: UdpSocket,
    media: UdpSocket,
    server: SocketAddr,
    call_id: String,
    to_tag: Option<String>,
    contact: Option<String>,
}

impl Phone {
    async fn new(server: SocketAddr) -> Phone {
        let sip = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let call_id = format!("quality-{}@127.0.0.1", sip.local_addr().unwrap().port());
        Phone {
            sip,
            media,
            server,
            call_id,
            to_tag: None,
            contact: None,
        }
    }

    fn sdp(&self) -> String {
        let port = self.media.local_addr().unwrap().port();
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\na=sendrecv\r\n"
        )
    }

    async fn send(&self, msg: String) {
        self.sip.send_to(msg.as_bytes(), self.server).await.unwrap();
    }

    /// The next SIP message from tapir.
    async fn recv(&self) -> String {
        let mut buf = vec![0u8; 8192];
        let (n, _) = timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("no SIP message from tapir")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    }

    /// The next final response (skipping provisional ones and requests).
    async fn final_response(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no final response");
            let m = self.recv().await;
            if status(&m) >= 200 {
                return m;
            }
        }
    }

    fn request(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        branch: &str,
        extra: &str,
        body: &str,
    ) -> String {
        let local = self.sip.local_addr().unwrap();
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let cseq_method = if method == "ACK" { "ACK" } else { method };
        let content_type = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1001@127.0.0.1>;tag=q1001\r\n\
             To: <sip:2001@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {cseq_method}\r\n\
             Contact: <sip:1001@{local}>\r\n\
             {extra}{content_type}Content-Length: {len}\r\n\r\n{body}",
            call_id = self.call_id,
            len = body.len(),
        )
    }

    fn to_tag_of(response: &str) -> Option<String> {
        header(response, "To")?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_string))
    }

    /// INVITE 2001, answering tapir's digest challenge with `password`;
    /// returns once tapir sent its first response to the authorized INVITE.
    async fn invite(&mut self, password: &str) {
        let uri = "sip:2001@127.0.0.1";
        let sdp = self.sdp();
        self.send(self.request("INVITE", uri, 1, "inv1", "", &sdp))
            .await;
        let challenge = self.final_response().await;
        let code = status(&challenge);
        assert!(code == 401 || code == 407, "{challenge}");
        // The challenge is a final response: ACK it in its transaction.
        self.to_tag = Self::to_tag_of(&challenge);
        self.send(self.request("ACK", uri, 1, "inv1", "", "")).await;
        self.to_tag = None;
        let (ask, answer) = if code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let line = challenge
            .lines()
            .filter(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", ask.to_ascii_lowercase()))
            })
            .find(|l| param(l, "algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
            .expect("an MD5 challenge")
            .to_string();
        let realm = param(&line, "realm").unwrap();
        let nonce = param(&line, "nonce").unwrap();
        let response = DigestInput {
            algorithm: Algorithm::Md5,
            username: "1001",
            realm: &realm,
            password,
            method: "INVITE",
            uri,
            nonce: &nonce,
            nonce_count: "00000001",
            cnonce: "feed",
            qop: "auth",
        }
        .response();
        let auth = format!(
            "{answer}: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"feed\"\r\n"
        );
        self.send(self.request("INVITE", uri, 2, "inv2", &auth, &sdp))
            .await;
    }

    /// Wait for the 200 to the INVITE, ACK it; tapir's RTP address.
    async fn answered(&mut self) -> SocketAddr {
        let ok = self.final_response().await;
        assert_eq!(status(&ok), 200, "{ok}");
        self.to_tag = Self::to_tag_of(&ok);
        self.contact = header(&ok, "Contact").map(|c| {
            c.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        let uri = self.contact.clone().unwrap();
        self.send(self.request("ACK", &uri, 2, "ack2", "", ""))
            .await;
        let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
        let port: u16 = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("tapir's SDP names its RTP port");
        assert!(body.contains("a=rtcp-mux"), "mux accepted: {body}");
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Hang up; tapir's answer.
    async fn bye(&mut self) -> u16 {
        let uri = self.contact.clone().unwrap();
        self.send(self.request("BYE", &uri, 3, "bye3", "", ""))
            .await;
        loop {
            let m = self.recv().await;
            if header(&m, "CSeq").is_some_and(|c| c.ends_with("BYE")) && status(&m) >= 200 {
                return status(&m);
            }
        }
    }
}

/// An RTP packet of the phone's stream: PCMU, 20 ms.
fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1001_u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xff, 160));
    p
}

/// The value of an unlabelled counter or a histogram's `_count` in
/// Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(api: &Api) -> String {
    reqwest::get(format!("{}/metrics", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const LOST: std::ops::Range<u16> = 20..25;

#[tokio::test]
async fn a_leg_that_loses_packets_shows_exactly_that_loss_live_in_its_cdr_and_in_metrics() {
    let s = server_with(|c| c.sip.listen = vec!["udp:127.0.0.1:0".into()]).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner"]).await;
    let mut events = alpha.events(0).await;
    let before = metrics(&admin).await;

    let mut phone = Phone::new(s.sip_addr.unwrap()).await;
    phone.invite("pw").await;
    let new = events
        .until("call.new at 2001", |v| {
            v["type"] == "call.new" && v["address"] == "2001"
        })
        .await;
    let rp_call = new["call"].as_str().unwrap().to_string();
    alpha
        .ok(&format!("/v1/calls/{rp_call}/answer"), json!({}))
        .await;
    let tapir_rtp = phone.answered().await;
    // The app plays ringback to the caller: tapir sends RTP, so its reports
    // are sender reports the phone can answer (the round trip).
    alpha
        .ok(
            &format!("/v1/calls/{rp_call}/play"),
            json!({"prompt": "ringback", "loop": true}),
        )
        .await;

    // 100 frames at 20 ms, 20..25 never sent; meanwhile keep the first
    // sender report tapir sends about its own stream.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sr = None;
    let mut buf = vec![0u8; 2048];
    for seq in 0..100u16 {
        tick.tick().await;
        if !LOST.contains(&seq) {
            phone.media.send_to(&rtp(seq), tapir_rtp).await.unwrap();
        }
        while let Ok(Ok((n, _))) = timeout(Duration::ZERO, phone.media.recv_from(&mut buf)).await {
            if sr.is_none() {
                sr = sender_report(&buf[..n]);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (n, _) = timeout(left, phone.media.recv_from(&mut buf))
            .await
            .expect("a sender report from tapir within 10 s")
            .unwrap();
        sr = sender_report(&buf[..n]);
    }
    let (tapir_ssrc, ntp) = sr.unwrap();
    // The phone's receiver report about tapir's stream: a quarter lost in
    // its last interval, 3 in all, 80 samples (10 ms) of jitter.
    let block = ReportBlock {
        ssrc: tapir_ssrc,
        fraction_lost: 64,
        cumulative_lost: 3,
        highest_seq: 0,
        jitter: 80,
        lsr: rtcp::ntp_middle(ntp),
        dlsr: 0,
    };
    let mut rr = Vec::new();
    rtcp::write_report(&mut rr, 0x1001, None, Some(&block), "phone-1001");
    phone.media.send_to(&rr, tapir_rtp).await.unwrap();

    // The live view, by either call of the record, while the call is up.
    let live = loop {
        let (code, v) = admin
            .get(&format!("/v1/admin/calls/{rp_call}/quality"))
            .await;
        assert_eq!(code, 200, "{v}");
        if v["quality"][0]["round_trip_ms"].is_number() {
            break v;
        }
        assert!(Instant::now() < deadline, "no round trip in {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(live["call"], rp_call.as_str());
    let legs = live["quality"].as_array().unwrap();
    assert_eq!(legs.len(), 1, "one SIP leg: the phone's; {live}");
    let q = &legs[0];
    assert_eq!(q["address"], "1001");
    assert_eq!(q["packets_received"], 95);
    assert_eq!(q["packets_lost"], 5);
    assert_eq!(q["loss_percent"], 5.0);
    assert_eq!(q["peer_fraction_lost"], 0.25);
    assert_eq!(q["peer_packets_lost"], 3);
    assert_eq!(q["peer_jitter_ms"], 10.0);
    let rtt = q["round_trip_ms"].as_f64().unwrap();
    assert!((0.0..1000.0).contains(&rtt), "loopback round trip {rtt} ms");
    let jitter = q["jitter_ms"].as_f64().unwrap();
    assert!(
        (0.0..20.0).contains(&jitter),
        "paced stream, jitter {jitter} ms"
    );
    let phone_call = q["call"].as_str().unwrap().to_string();
    let (code, by_phone) = admin
        .get(&format!("/v1/admin/calls/{phone_call}/quality"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(by_phone["quality"][0]["packets_lost"], 5);
    // The typed client reads the same figures.
    let client = tapir_client::Client::new(admin.base.clone(), "admin-secret").unwrap();
    let typed = client.admin().call_quality(&phone_call).await.unwrap();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].address, "1001");
    assert_eq!(typed[0].packets_lost, 5);
    assert_eq!(typed[0].packets_received, 95);
    let unknown = client
        .admin()
        .call_quality("call-999999")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("invalcallhandle"));
    // And `tapir quality CALL` prints them for people.
    let text = run_cli(&admin.base, &["quality", &phone_call]).await;
    let row = text
        .lines()
        .find(|l| l.starts_with("1001"))
        .unwrap_or_else(|| panic!("a row for 1001: {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[2..5], ["95", "5", "5.00%"], "{row}");

    // Hang up: the CDR carries the final figures.
    assert_eq!(phone.bye().await, 200);
    events.state(&rp_call, "disconnected").await;
    alpha
        .ok(&format!("/v1/calls/{rp_call}/drop"), json!({}))
        .await;
    let deadline = Instant::now() + WAIT;
    let cdr = loop {
        let (_, list) = admin.get("/v1/admin/cdr?address=1001").await;
        if let Some(c) = list["cdrs"].as_array().and_then(|a| a.first()) {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "no CDR: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let legs = cdr["quality"].as_array().unwrap();
    assert_eq!(legs.len(), 1, "{cdr}");
    let q = &legs[0];
    assert_eq!(
        (&q["address"], &q["call"]),
        (&json!("1001"), &json!(phone_call))
    );
    assert_eq!(q["packets_received"], 95);
    assert_eq!(q["packets_lost"], 5);
    assert_eq!(q["loss_percent"], 5.0);
    assert_eq!(q["round_trip_ms"], rtt);
    assert_eq!(q["peer_fraction_lost"], 0.25);
    // The same record by id.
    let id = cdr["id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("/v1/admin/cdr/{id}")).await.1["quality"],
        cdr["quality"]
    );
    // `tapir cdr ID` shows the same figures.
    let text = run_cli(&admin.base, &["cdr", id]).await;
    let row = text
        .lines()
        .find(|l| l.starts_with("1001 "))
        .unwrap_or_else(|| panic!("a quality row for 1001: {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["1001", phone_call.as_str(), "95", "5", "5.00%"],
        "{text}"
    );
    assert_eq!(cells[7], "25.0%", "the phone's report: {text}");
    assert!(
        text.contains("RECEIVED") && text.contains("PEER LOSS"),
        "{text}"
    );
    // The call is over: no live view.
    let (code, body) = admin
        .get(&format!("/v1/admin/calls/{rp_call}/quality"))
        .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &json!("invalcallhandle")),
        "{body}"
    );

    // Metrics: the leg is counted once its media closed (the BYE closes
    // it; bounded wait for the media task).
    let after = loop {
        let text = metrics(&admin).await;
        if metric(&text, "tapir_media_legs_total") > metric(&before, "tapir_media_legs_total") {
            break text;
        }
        assert!(Instant::now() < deadline, "leg not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(delta("tapir_media_legs_total"), 1.0);
    assert_eq!(delta("tapir_media_packets_received_total"), 95.0);
    assert_eq!(delta("tapir_media_packets_lost_total"), 5.0);
    assert_eq!(delta("tapir_media_jitter_seconds_count"), 1.0);
    assert_eq!(delta("tapir_media_round_trip_seconds_count"), 1.0);
    let rtt_sum = delta("tapir_media_round_trip_seconds_sum");
    assert!(
        (rtt_sum * 1000.0 - rtt).abs() < 0.01,
        "{rtt_sum} s vs {rtt} ms"
    );
    for name in [
        "tapir_media_legs_total",
        "tapir_media_packets_received_total",
        "tapir_media_packets_lost_total",
        "tapir_media_jitter_seconds",
        "tapir_media_round_trip_seconds",
    ] {
        assert!(after.contains(&format!("# HELP {name} ")), "HELP of {name}");
    }
    assert!(after.contains("# TYPE tapir_media_jitter_seconds histogram"));
    assert!(after.contains("tapir_media_round_trip_seconds_bucket{le=\"0.005\"}"));
    events.close().await;
    s.shutdown().await;
}

/// Tapir's SSRC and NTP time from a sender report, if `packet` holds one.
fn sender_report(packet: &[u8]) -> Option<(u32, u64)> {
    // RTCP packet types 200..=204 (RFC 5761 §4); else it is RTP.
    if !(200..=204).contains(packet.get(1)?) {
        return None;
    }
    rtcp::parse_compound(packet)
        .ok()?
        .into_iter()
        .find_map(|i| match i {
            RtcpItem::SenderReport { ssrc, info, .. } => Some((ssrc, info.ntp)),
            _ => None,
        })
}

#[tokio::test]
async fn the_live_view_is_for_the_operator_and_names_a_call_in_progress() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let app = Api::new(&s, Some("tok-alpha"));
    let anon = Api::new(&s, None);
    let path = "/v1/admin/calls/call-1/quality";
    assert_eq!(anon.get(path).await.0, 401);
    let (code, body) = app.get(path).await;
    assert_eq!((code, &body["error"]["code"]), (403, &json!("noprivilege")));
    for bad in ["call-1", "call-x", "nope"] {
        let (code, body) = admin.get(&format!("/v1/admin/calls/{bad}/quality")).await;
        assert_eq!(code, 404, "{bad}");
        assert_eq!(body["error"]["code"], "invalcallhandle");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10)
        );
    }
    // A call between route points has no media: in progress, no legs.
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let (a, _) = support::connected_pair(&alpha, &beta, &mut ev_b).await;
    let deadline = Instant::now() + WAIT;
    let v: Value = loop {
        let (code, v) = admin.get(&format!("/v1/admin/calls/{a}/quality")).await;
        if code == 200 {
            break v;
        }
        assert!(Instant::now() < deadline, "{a} never in progress: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(v["quality"], json!([]));
    ev_b.close().await;
    s.shutdown().await;
}

/// `tapir --server BASE --token admin-secret ARGS…`: its standard output
/// (the command must succeed).
async fn run_cli(base: &str, args: &[&str]) -> String {
    let mut all = vec![
        "--server".to_string(),
        base.to_string(),
        "--token".into(),
        "admin-secret".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tapir"))
            .args(&all)
            .env("RUST_LOG", "off")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    });
    let out = timeout(Duration::from_secs(20), out)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}
