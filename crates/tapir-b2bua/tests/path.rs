//! Phones registered through an edge proxy with a Path (RFC 3327): tapir's
//! INVITE to such a phone goes to the proxy, with the phone's Contact as
//! Request-URI and the Path as pre-loaded Route headers (its CANCEL too);
//! once the proxy record-routes the answer, the dialog's requests go
//! through it as any route set's do.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
use support::{A, TAPIR, World, sdp, to_tag};
use tapir_b2bua::{Config, ContactTarget, Directory, PathRoute, SipTransport};
use tapir_core::{CallStateKind, LineConfig, Switch};
use tapir_sip::msg::{HeaderName, Message};

/// The edge proxy 1002 registered through.
const PROXY: &str = "127.0.0.1:5090";
/// 1002's registered Contact (behind the proxy; tapir never sends there).
const CONTACT_B: &str = "sip:1002@10.1.2.3:5062;ob";

/// 1001 reached directly at A, 1002 through the proxy's Path; every
/// caller admitted as the user of its From.
struct Edge;

impl Directory for Edge {
    fn register(
        &mut self,
        _: Instant,
        request: &Message,
        _: SocketAddr,
        _: SipTransport,
    ) -> Message {
        request.response_builder(200, None, Some("reg")).build()
    }
    fn admit(
        &mut self,
        _: Instant,
        request: &Message,
        _: SocketAddr,
    ) -> Result<String, Box<Message>> {
        let from = request.from_header().unwrap().unwrap();
        match &from.uri {
            tapir_sip::msg::Uri::Sip(s) => Ok(s.user.unwrap().to_string()),
            _ => Err(Box::new(
                request.response_builder(403, None, Some("x")).build(),
            )),
        }
    }
    fn contacts(&self, _: Instant, address: &str) -> Vec<ContactTarget> {
        match address {
            "1001" => vec![ContactTarget::direct(A.parse().unwrap(), SipTransport::Udp)],
            "1002" => vec![ContactTarget {
                addr: PROXY.parse().unwrap(),
                transport: SipTransport::Udp,
                path: Some(PathRoute {
                    contact: CONTACT_B.into(),
                    route: vec![format!("<sip:{PROXY};lr>"), "<sip:edge2.example;lr>".into()],
                }),
            }],
            _ => Vec::new(),
        }
    }
}

fn world() -> World {
    let mut switch = Switch::default();
    for a in ["1001", "1002"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    World::assemble(
        Config::new(TAPIR.parse().unwrap(), "127.0.0.1"),
        Edge,
        switch,
        SipTransport::Udp,
    )
}

fn invite_from_a(call_id: &str) -> String {
    let body = sdp(4000);
    format!(
        "INVITE sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:1001@{A}>
Content-Type: application/sdp
Content-Length: {len}

{body}",
        len = body.len()
    )
}

fn routes(m: &Message) -> Vec<String> {
    m.header_values(&HeaderName::Route)
        .map(str::to_string)
        .collect()
}

fn request_uri(m: &Message) -> String {
    match m.start_line() {
        tapir_sip::msg::StartLine::Request { uri, .. } => uri.as_str().to_string(),
        tapir_sip::msg::StartLine::Response { .. } => panic!("not a request"),
    }
}

fn is(m: &Message, method: &str) -> bool {
    m.method().is_some_and(|m| m.as_str() == method)
}

#[test]
fn an_invite_to_a_phone_registered_with_a_path_goes_through_it() {
    let mut w = world();
    w.peer_sends(A, invite_from_a("path-1"));
    let invite = w.take(PROXY).pop().expect("the INVITE goes to the proxy");
    assert!(is(&invite, "INVITE"));
    assert_eq!(request_uri(&invite), CONTACT_B);
    let path = vec![
        format!("<sip:{PROXY};lr>"),
        "<sip:edge2.example;lr>".to_string(),
    ];
    assert_eq!(routes(&invite), path);
    // The phone answers through the proxy, which record-routes.
    let mut ok = invite.response_builder(200, None, Some("b1"));
    ok = ok
        .header(HeaderName::RecordRoute, "<sip:edge2.example;lr>")
        .header(HeaderName::RecordRoute, format!("<sip:{PROXY};lr>"))
        .header(HeaderName::Contact, format!("<{CONTACT_B}>"))
        .body("application/sdp", Bytes::from(sdp(4002)));
    w.peer_sends_message(PROXY, ok.build());
    let ack = w.take(PROXY).pop().expect("ACK to the proxy");
    assert!(is(&ack, "ACK"));
    assert_eq!(routes(&ack), path);
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // A hangs up: the BYE to 1002 crosses the proxy too.
    let ok_a = w
        .take(A)
        .into_iter()
        .find(|m| m.status_code() == Some(200))
        .unwrap();
    let tag = to_tag(&ok_a);
    let dialog = format!(
        "From: <sip:1001@127.0.0.1>;tag=a1\nTo: <sip:1002@127.0.0.1>;tag={tag}\nCall-ID: path-1"
    );
    w.peer_sends(A, support::in_dialog_from_a("ACK", 1, &dialog, ""));
    w.peer_sends(A, support::in_dialog_from_a("BYE", 2, &dialog, ""));
    let bye = w.take(PROXY).pop().expect("BYE to the proxy");
    assert!(is(&bye, "BYE"));
    assert_eq!(request_uri(&bye), CONTACT_B);
    assert_eq!(routes(&bye), path);
}

#[test]
fn the_cancel_of_an_invite_through_a_path_carries_its_route() {
    let mut w = world();
    w.peer_sends(A, invite_from_a("path-2"));
    let invite = w.take(PROXY).pop().unwrap();
    let ringing = invite.response_builder(180, None, Some("b1")).build();
    w.peer_sends_message(PROXY, ringing);
    w.take(A);
    w.peer_sends(
        A,
        format!(
            "CANCEL sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bK-path-2;rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>
Call-ID: path-2
CSeq: 1 CANCEL
Content-Length: 0

"
        ),
    );
    let cancel = w
        .take(PROXY)
        .into_iter()
        .find(|m| is(m, "CANCEL"))
        .expect("CANCEL to the proxy");
    assert_eq!(request_uri(&cancel), CONTACT_B);
    assert_eq!(routes(&cancel), routes(&invite));
}
