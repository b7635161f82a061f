//! A phone registers through the whole sans-IO stack, bytes in and bytes
//! out: codec → transaction layer → authenticator + registrar → response
//! on the wire, with a simulated clock; then tapir INVITEs the registered
//! contact and the dialog layer handles the 200, the ACK and a BYE.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tapir_sip::auth::{Algorithm, AuthConfig, Authenticator, DigestInput};
use tapir_sip::dialog::{Dialogs, RequestMatch, new_branch, new_tag};
use tapir_sip::msg::{HeaderName, Message, Method};
use tapir_sip::registrar::{Registrar, RegistrarConfig, Transport};
use tapir_sip::transaction::{LayerOutput, Received, Reliability, TimerConfig, TransactionLayer};

const PHONE: &str = "127.0.0.1:5070";

fn register_bytes(cseq: u32, branch: &str, authorization: Option<&str>) -> Bytes {
    let mut text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1001@127.0.0.1>;tag=ph1\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: reg-call@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:1001@127.0.0.1:5070;transport=udp>\r\n\
         Expires: 300\r\n"
    );
    if let Some(value) = authorization {
        text.push_str(&format!("Authorization: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(text)
}

struct Server {
    layer: TransactionLayer,
    authenticator: Authenticator,
    registrar: Registrar,
}

impl Server {
    /// Feeds a datagram and returns the bytes the server transmits.
    fn receive(&mut self, now: Instant, bytes: Bytes, source: SocketAddr) -> Vec<Bytes> {
        let passwords = |user: &str| (user == "1001").then(|| "pw1001".to_owned());
        let mut message = Message::parse_datagram(bytes).unwrap();
        message.stamp_top_via(source).unwrap();
        if let Received::NewRequest { key, request } =
            self.layer
                .handle_received(now, message, Reliability::Unreliable)
        {
            assert_eq!(request.method(), Some(&Method::Register));
            let outcome = self.registrar.register(
                now,
                &request,
                source,
                Transport::Udp,
                &mut self.authenticator,
                &passwords,
            );
            self.layer
                .send_response(now, &key, outcome.response)
                .unwrap();
        }
        let mut sent = Vec::new();
        while let Some(output) = self.layer.poll_output() {
            if let LayerOutput::Transmit { message, .. } = output {
                sent.push(message.to_bytes());
            }
        }
        sent
    }
}

#[test]
fn register_with_digest_over_the_wire_then_call_the_contact() {
    let start = Instant::now();
    let mut server = Server {
        layer: TransactionLayer::new(TimerConfig::default()),
        authenticator: Authenticator::new(AuthConfig::new("tapir"), start),
        registrar: Registrar::new(RegistrarConfig::default()),
    };
    let phone: SocketAddr = PHONE.parse().unwrap();

    // 1. No credentials: 401 with SHA-256 and MD5 challenges.
    let sent = server.receive(start, register_bytes(1, "z9hG4bKr1", None), phone);
    assert_eq!(sent.len(), 1);
    let challenge = Message::parse_datagram(sent[0].clone()).unwrap();
    assert_eq!(challenge.status_code(), Some(401));
    let via = challenge.top_via().unwrap().unwrap();
    assert_eq!(via.rport(), Some(Some(5070)));
    let www = challenge
        .auth_headers(&HeaderName::WwwAuthenticate)
        .unwrap();
    let sha = www
        .iter()
        .find(|h| h.param("algorithm").as_deref() == Some("SHA-256"))
        .unwrap();
    let nonce = sha.param("nonce").unwrap().into_owned();

    // A retransmission of the first REGISTER is absorbed by the
    // transaction, which repeats its 401.
    let again = server.receive(start, register_bytes(1, "z9hG4bKr1", None), phone);
    assert_eq!(again, sent);

    // 2. With credentials: 200 OK listing the contact.
    let response = DigestInput {
        algorithm: Algorithm::Sha256,
        username: "1001",
        realm: "tapir",
        password: "pw1001",
        method: "REGISTER",
        uri: "sip:127.0.0.1",
        nonce: &nonce,
        nonce_count: "00000001",
        cnonce: "xyz",
        qop: "auth",
    }
    .response();
    let authorization = format!(
        "Digest username=\"1001\", realm=\"tapir\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", \
         response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"xyz\""
    );
    let at = start + Duration::from_millis(40);
    let sent = server.receive(
        at,
        register_bytes(2, "z9hG4bKr2", Some(&authorization)),
        phone,
    );
    let ok = Message::parse_datagram(sent[0].clone()).unwrap();
    assert_eq!(ok.status_code(), Some(200));
    let text = String::from_utf8(sent[0].to_vec()).unwrap();
    assert!(
        text.contains("Contact: <sip:1001@127.0.0.1:5070;transport=udp>;expires=300"),
        "{text}"
    );

    // 3. The same credentials again (a replay, new branch): refused.
    let sent = server.receive(
        at,
        register_bytes(3, "z9hG4bKr3", Some(&authorization)),
        phone,
    );
    let replay = Message::parse_datagram(sent[0].clone()).unwrap();
    assert_eq!(replay.status_code(), Some(401));

    // 4. The B2BUA looks the line up and calls its phone.
    let contacts = server.registrar.contacts("1001", at);
    assert_eq!(contacts.len(), 1);
    let binding = &contacts[0];
    assert_eq!(binding.source, phone);
    assert_eq!(binding.transport, Transport::Udp);
    let local_tag = new_tag();
    let invite = Message::parse_datagram(Bytes::from(format!(
        "INVITE {} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1002@127.0.0.1>;tag={local_tag}\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: b2bua-leg-1@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:tapir@127.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n",
        binding.contact,
        new_branch()
    )))
    .unwrap();
    // The phone answers.
    let answer = Message::parse_datagram(Bytes::from(
        String::from_utf8(
            invite
                .response_builder(200, None, Some("phone-tag"))
                .header(HeaderName::Contact, "<sip:1001@127.0.0.1:5070>")
                .build()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    ))
    .unwrap();
    let mut dialogs = Dialogs::new();
    let id = dialogs
        .handle_response(&invite, &answer, "<sip:tapir@127.0.0.1:5060>")
        .unwrap()
        .unwrap();
    let dialog = dialogs.get_mut(&id).unwrap();
    let via = format!("SIP/2.0/UDP 127.0.0.1:5060;branch={}", new_branch());
    let ack = dialog.ack(&answer, &via).unwrap().build();
    assert_eq!(ack.cseq().unwrap().unwrap().number, 1);
    let ack = Message::parse_datagram(ack.to_bytes()).unwrap();
    assert_eq!(ack.method(), Some(&Method::Ack));

    // The phone hangs up.
    let bye = Message::parse_datagram(Bytes::from(format!(
        "BYE sip:tapir@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1001@127.0.0.1>;tag=phone-tag\r\n\
         To: <sip:1002@127.0.0.1>;tag={local_tag}\r\n\
         Call-ID: b2bua-leg-1@127.0.0.1\r\n\
         CSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )))
    .unwrap();
    assert_eq!(
        dialogs.handle_request(&bye),
        RequestMatch::InDialog(id.clone())
    );
    dialogs.remove(&id);
    // The same BYE after the dialog is gone: 481.
    let RequestMatch::Reject(response) = dialogs.handle_request(&bye) else {
        panic!("expected 481");
    };
    assert_eq!(response.status_code(), Some(481));

    // 5. Five minutes later the binding has expired.
    let later = at + Duration::from_secs(300);
    assert!(server.registrar.contacts("1001", later).is_empty());
    assert_eq!(server.registrar.purge(later).len(), 1);
}
