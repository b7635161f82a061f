//! Route sets of the B2BUA's dialogs (RFC 3261 §12): a record-routing
//! proxy in front of a phone stays on the path of every request of the
//! dialog, both ways. tapir keeps the Record-Route of a device's INVITE as
//! it is (UAS) and the Record-Route of the answer to its own INVITE in
//! reverse (UAC), sends its in-dialog requests (BYE, NOTIFY, ACK for 2xx)
//! with those Route headers to the first hop, loose or strict, and echoes
//! the Record-Route in the responses that establish a dialog.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use support::{A, B, Phones, TAPIR, World, kind, kinds, sdp, to_tag};
use tapir_b2bua::{Config, SipTransport};
use tapir_core::{CallStateKind, LineConfig, Switch};
use tapir_sip::msg::{HeaderName, Message};
use tapir_sip::transaction::TimerConfig;

/// Phone 1003, the transfer target.
const C: &str = "127.0.0.1:5003";
/// A record-routing proxy in front of phone A: it record-routes this
/// address (where it takes the dialog's requests)…
const PROXY: &str = "127.0.0.1:5070";
/// …and relays the phone's requests to tapir from this one.
const PROXY_OUT: &str = "127.0.0.1:5071";
/// A second proxy, further from tapir, that only a host name reaches.
const EDGE_ROUTE: &str = "<sip:edge.example.net;lr>";

fn world() -> World {
    let mut switch = Switch::default();
    for a in ["1001", "1002", "1003"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    let phones = Phones::new(&[("1001", A), ("1002", B), ("1003", C)], SipTransport::Udp);
    let cfg = Config {
        timers: TimerConfig::default(),
        ..Config::new(TAPIR.parse().unwrap(), "127.0.0.1")
    };
    World::assemble(cfg, phones, switch, SipTransport::Udp)
}

/// The Route header values of a request, in order.
fn routes(m: &Message) -> Vec<String> {
    m.header_values(&HeaderName::Route)
        .map(str::to_string)
        .collect()
}

/// The Record-Route header values of a message, in order.
fn record_routes(m: &Message) -> Vec<String> {
    m.header_values(&HeaderName::RecordRoute)
        .map(str::to_string)
        .collect()
}

/// A request's Request-URI.
fn request_uri(m: &Message) -> String {
    match m.start_line() {
        tapir_sip::msg::StartLine::Request { uri, .. } => uri.as_str().to_string(),
        tapir_sip::msg::StartLine::Response { .. } => panic!("not a request: {m:?}"),
    }
}

/// Phone A's INVITE for 1002 as the proxy relays it: the proxy's Via on
/// top of A's, and the Record-Route of both proxies (the one nearest
/// tapir first).
fn invite_through_proxy(call_id: &str) -> String {
    let body = sdp(4000);
    format!(
        "INVITE sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKp-{call_id}
Via: SIP/2.0/UDP {A};branch=z9hG4bKa-{call_id};rport
Max-Forwards: 69
Record-Route: <sip:{PROXY};lr;ftag=a1>
Record-Route: {EDGE_ROUTE}
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

/// An in-dialog request from A on its call, as the proxy relays it (its
/// own Route entry taken off).
fn a_through_proxy(method: &str, n: u32, to_tag: &str, call_id: &str, extra: &str) -> String {
    format!(
        "{method} sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKp{n}{method}
Via: SIP/2.0/UDP {A};branch=z9hG4bKa{n}{method};rport
Max-Forwards: 69
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {n} {method}
Contact: <sip:1001@{A}>
{extra}Content-Length: 0

"
    )
}

/// A response of phone B to tapir's request, with these Record-Route
/// values (top first) and B's offer-answer SDP when `with_sdp`.
fn b_responds(req: &Message, code: u16, record_route: &[&str], with_sdp: bool) -> String {
    let mut r = req.response_builder(code, None, Some("b1"));
    for value in record_route {
        r = r.header(HeaderName::RecordRoute, value.to_string());
    }
    r = r.header(HeaderName::Contact, format!("<sip:1002@{B}>"));
    if with_sdp {
        r = r.body("application/sdp", Bytes::from(sdp(4002)));
    }
    String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
}

/// A's call to 1002 through the proxy, answered by B directly: returns
/// tapir's 200 to A and tapir's INVITE to B.
fn connected_through_proxy(w: &mut World, call_id: &str) -> (Message, Message) {
    w.peer_sends(PROXY_OUT, invite_through_proxy(call_id));
    assert_eq!(w.kinds(PROXY), vec!["100"], "responses follow the Via");
    let invite_b = w.take(B).pop().expect("tapir invites 1002");
    w.peer_sends(B, b_responds(&invite_b, 180, &[], false));
    let ringing = w.take(PROXY).pop().expect("180 to A through the proxy");
    assert_eq!(ringing.status_code(), Some(180));
    assert_eq!(
        record_routes(&ringing),
        vec![format!("<sip:{PROXY};lr;ftag=a1>"), EDGE_ROUTE.to_string()],
        "the 180 that opens the early dialog echoes the Record-Route"
    );
    w.peer_sends(B, b_responds(&invite_b, 200, &[], true));
    assert_eq!(w.kinds(B), vec!["ACK"]);
    let ok = w.take(PROXY).pop().expect("200 to A through the proxy");
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(
        record_routes(&ok),
        vec![format!("<sip:{PROXY};lr;ftag=a1>"), EDGE_ROUTE.to_string()],
        "the 200 echoes the Record-Route"
    );
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    (ok, invite_b)
}

#[test]
fn record_route_of_an_incoming_invite_sends_tapirs_bye_through_the_proxy() {
    let mut w = world();
    let (ok, invite_b) = connected_through_proxy(&mut w, "rr-1");
    let tag = to_tag(&ok);
    w.peer_sends(PROXY, a_through_proxy("ACK", 1, &tag, "rr-1", ""));
    // 1002 hangs up: tapir's BYE to A goes to the proxy's record-routed
    // address (not where the INVITE came from, not to A's Contact), with
    // the route set as Route headers and A's Contact as Request-URI.
    let bye_b = format!(
        "BYE sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bKbye;rport
Max-Forwards: 70
From: {to};tag=b1
To: {from}
Call-ID: {call_id}
CSeq: 2 BYE
Content-Length: 0

",
        to = invite_b.header(&HeaderName::To).unwrap(),
        from = invite_b.header(&HeaderName::From).unwrap(),
        call_id = invite_b.call_id().unwrap().unwrap(),
    );
    w.peer_sends(B, bye_b);
    assert_eq!(w.kinds(B), vec!["200"]);
    assert!(w.take(A).is_empty(), "nothing goes to A around the proxy");
    assert!(w.take(PROXY_OUT).is_empty());
    let to_proxy = w.take(PROXY);
    assert_eq!(kinds(&to_proxy), vec!["BYE"], "{to_proxy:?}");
    let bye = &to_proxy[0];
    assert_eq!(request_uri(bye), format!("sip:1001@{A}"));
    assert_eq!(
        routes(bye),
        vec![format!("<sip:{PROXY};lr;ftag=a1>"), EDGE_ROUTE.to_string()]
    );
}

#[test]
fn a_refer_through_the_proxy_gets_its_notifies_and_bye_back_through_it() {
    let mut w = world();
    let (ok, _invite_b) = connected_through_proxy(&mut w, "rr-2");
    let tag = to_tag(&ok);
    w.peer_sends(PROXY, a_through_proxy("ACK", 1, &tag, "rr-2", ""));
    w.peer_sends(
        PROXY,
        a_through_proxy("REFER", 2, &tag, "rr-2", "Refer-To: <sip:1003@127.0.0.1>\n"),
    );
    let to_proxy = w.take(PROXY);
    assert_eq!(
        kinds(&to_proxy),
        vec!["202", "NOTIFY", "NOTIFY", "BYE"],
        "{to_proxy:?}"
    );
    for request in &to_proxy[1..] {
        assert_eq!(request_uri(request), format!("sip:1001@{A}"));
        assert_eq!(
            routes(request),
            vec![format!("<sip:{PROXY};lr;ftag=a1>"), EDGE_ROUTE.to_string()],
            "{} carries the route set",
            kind(request)
        );
    }
    assert!(w.take(A).is_empty(), "nothing goes to A around the proxy");
    assert!(w.take(C).pop().is_some(), "the transfer target is called");
}

/// 1002 calls 1001: returns tapir's INVITE to A (sent to A directly) after
/// B's INVITE.
fn b_calls_a(w: &mut World) -> Message {
    let body = sdp(4002);
    w.peer_sends(
        B,
        format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bKb-call;rport
Max-Forwards: 70
From: <sip:1002@127.0.0.1>;tag=b0
To: <sip:1001@127.0.0.1>
Call-ID: from-b
CSeq: 1 INVITE
Contact: <sip:1002@{B}>
Content-Type: application/sdp
Content-Length: {len}

{body}",
            len = body.len()
        ),
    );
    assert_eq!(w.kinds(B), vec!["100"]);
    w.take(A).pop().expect("tapir invites 1001")
}

/// A's response to tapir's INVITE, relayed by the proxies that
/// record-routed it (the one nearest A on top).
fn a_responds(req: &Message, code: u16, record_route: &[&str]) -> String {
    let mut r = req.response_builder(code, None, Some("a9"));
    for value in record_route {
        r = r.header(HeaderName::RecordRoute, value.to_string());
    }
    r = r.header(HeaderName::Contact, format!("<sip:1001@{A}>"));
    if code == 200 {
        r = r.body("application/sdp", Bytes::from(sdp(4000)));
    }
    String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
}

/// B's BYE on its call to 1001, whose leg tapir tagged `tag`.
fn bye_from_b(tag: &str) -> String {
    format!(
        "BYE sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bKb-bye;rport
Max-Forwards: 70
From: <sip:1002@127.0.0.1>;tag=b0
To: <sip:1001@127.0.0.1>;tag={tag}
Call-ID: from-b
CSeq: 2 BYE
Content-Length: 0

"
    )
}

#[test]
fn record_route_of_a_2xx_to_tapirs_invite_is_reversed_for_the_ack_and_the_bye() {
    let mut w = world();
    let invite_a = b_calls_a(&mut w);
    // Two proxies record-routed the INVITE on its way to A: 5081 nearest
    // A, then 5070 nearest tapir. The 180 already opens the early dialog.
    let near_a = "<sip:127.0.0.1:5081;lr>";
    let near_tapir = format!("<sip:{PROXY};lr>");
    let rr = [near_a, near_tapir.as_str()];
    w.peer_sends(PROXY, a_responds(&invite_a, 180, &rr));
    w.peer_sends(PROXY, a_responds(&invite_a, 200, &rr));
    let ok = w.take(B).into_iter().find(|m| m.status_code() == Some(200));
    let ok = ok.expect("B's call is answered");
    let to_proxy = w.take(PROXY);
    assert_eq!(kinds(&to_proxy), vec!["ACK"], "{to_proxy:?}");
    let reversed = vec![near_tapir.clone(), near_a.to_string()];
    assert_eq!(request_uri(&to_proxy[0]), format!("sip:1001@{A}"));
    assert_eq!(
        routes(&to_proxy[0]),
        reversed,
        "the ACK follows the route set"
    );
    assert!(w.take(A).is_empty(), "nothing goes to A around the proxies");
    // B hangs up: tapir's BYE to A takes the same way.
    w.peer_sends(B, bye_from_b(&to_tag(&ok)));
    let to_proxy = w.take(PROXY);
    assert_eq!(kinds(&to_proxy), vec!["BYE"], "{to_proxy:?}");
    assert_eq!(request_uri(&to_proxy[0]), format!("sip:1001@{A}"));
    assert_eq!(routes(&to_proxy[0]), reversed);
    assert!(w.take(A).is_empty());
}

#[test]
fn a_strict_router_becomes_the_request_uri_and_the_target_goes_last() {
    let mut w = world();
    let invite_a = b_calls_a(&mut w);
    // One proxy without `lr`: a strict router (RFC 2543).
    let strict = format!("<sip:{PROXY}>");
    w.peer_sends(PROXY, a_responds(&invite_a, 200, &[strict.as_str()]));
    let ok = w.take(B).into_iter().find(|m| m.status_code() == Some(200));
    let ok = ok.expect("B's call is answered");
    w.peer_sends(B, bye_from_b(&to_tag(&ok)));
    let to_proxy = w.take(PROXY);
    assert_eq!(kinds(&to_proxy), vec!["ACK", "BYE"], "{to_proxy:?}");
    for request in &to_proxy {
        assert_eq!(request_uri(request), format!("sip:{PROXY}"));
        assert_eq!(routes(request), vec![format!("<sip:1001@{A}>")]);
    }
    assert!(w.take(A).is_empty());
}

#[test]
fn a_dialog_without_record_route_goes_to_the_phone_without_route() {
    let mut w = world();
    let invite_a = b_calls_a(&mut w);
    w.peer_sends(A, a_responds(&invite_a, 200, &[]));
    let ok = w.take(B).into_iter().find(|m| m.status_code() == Some(200));
    let ok = ok.expect("B's call is answered");
    w.peer_sends(B, bye_from_b(&to_tag(&ok)));
    let to_a = w.take(A);
    assert_eq!(kinds(&to_a), vec!["ACK", "BYE"], "{to_a:?}");
    for request in &to_a {
        assert_eq!(request_uri(request), format!("sip:1001@{A}"));
        assert!(routes(request).is_empty());
    }
}
