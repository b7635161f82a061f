//! Trunks through the B2BUA and the real switch, driven with SIP messages
//! as a phone and a carrier would send them: a phone's call to an external
//! number leaves on the trunk (with one digest challenge answered), a
//! carrier's call to a DID is admitted by its address and rings the phone
//! with the external caller's number, unknown sources still meet digest,
//! and odd carrier responses never panic.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
use support::{A, B, TAPIR, World, kind, sdp, to_tag};
use tapir_b2bua::{Config, ContactTarget, Directory, SipTransport, TrunkRoute};
use tapir_core::{CallStateKind, LineConfig, LineId, Switch};
use tapir_sip::auth::{AuthConfig, AuthOutcome, Authenticator};
use tapir_sip::msg::{HeaderName, Message};

const CARRIER: &str = "127.0.0.1:5070";
/// Another host on the carrier's IP address, but not the carrier's port.
const STRANGER: &str = "127.0.0.1:5071";

/// Phones 1001 (A) and 1002 (B) admitted by their From user; everyone
/// else challenged. Trunk line 9000 is bound to the carrier.
struct Dir {
    trunk_line: LineId,
    route: TrunkRoute,
}

impl Directory for Dir {
    fn register(&mut self, _: Instant, r: &Message, _: SocketAddr, _: SipTransport) -> Message {
        r.response_builder(200, None, Some("reg")).build()
    }
    fn admit(
        &mut self,
        _now: Instant,
        request: &Message,
        source: SocketAddr,
    ) -> Result<String, Box<Message>> {
        if source == A.parse().unwrap() {
            return Ok("1001".into());
        }
        Err(Box::new(
            request.response_builder(407, None, Some("x")).build(),
        ))
    }
    fn contacts(&self, _now: Instant, address: &str) -> Vec<ContactTarget> {
        let addr = match address {
            "1001" => A,
            "1002" => B,
            _ => return Vec::new(),
        };
        vec![ContactTarget::direct(
            addr.parse().unwrap(),
            SipTransport::Udp,
        )]
    }
    fn trunk(&self, line: LineId) -> Option<TrunkRoute> {
        (line == self.trunk_line).then(|| self.route.clone())
    }
    fn trunk_from(&self, carrier: SocketAddr, transport: SipTransport) -> Option<String> {
        (carrier == self.route.addr && transport == self.route.transport)
            .then(|| "9000".to_string())
    }
}

impl World {
    /// Phones 1001 and 1002 and trunk line 9000, whose carrier is reached
    /// over `transport` with `credentials` if given.
    fn new(transport: SipTransport, credentials: Option<(&str, &str)>) -> World {
        let mut switch = Switch::default();
        for a in ["1001", "1002"] {
            switch.add_line(LineConfig::phone(a)).unwrap();
        }
        let trunk_line = switch.add_line(LineConfig::trunk("9000")).unwrap();
        let dir = Dir {
            trunk_line,
            route: TrunkRoute {
                addr: CARRIER.parse().unwrap(),
                host: "127.0.0.1".into(),
                transport,
                credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            },
        };
        World::assemble(
            Config::new(TAPIR.parse().unwrap(), "tapir.example"),
            dir,
            switch,
            SipTransport::Udp,
        )
    }
}

/// An INVITE from `peer` (From user `from`) to `to`.
fn invite(peer: &str, from: &str, to: &str, call_id: &str, extra: &str) -> String {
    let body = sdp(4000);
    format!(
        "INVITE sip:{to}@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {peer};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:{from}@{peer}>;tag=f-{call_id}
To: <sip:{to}@{TAPIR}>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:{from}@{peer}>
{extra}Content-Type: application/sdp
Content-Length: {len}

{body}",
        len = body.len()
    )
}

/// The carrier's (or a phone's) response to tapir's request.
fn answer(req: &Message, code: u16, with_sdp: bool) -> Message {
    let mut r = req
        .response_builder(code, None, Some("carrier-tag"))
        .header(HeaderName::Contact, format!("<sip:gw@{CARRIER}>"));
    if with_sdp {
        r = r.body("application/sdp", Bytes::from(sdp(4010)));
    }
    r.build()
}

fn request_uri(m: &Message) -> String {
    match m.start_line() {
        tapir_sip::msg::StartLine::Request { uri, .. } => uri.as_str().to_string(),
        _ => panic!("not a request"),
    }
}

/// 1001 dials an external number: the switch routes it to the trunk line.
fn a_dials_out(w: &mut World, number: &str) -> Message {
    w.peer_sends(A, invite(A, "1001", number, "out-1", ""));
    assert_eq!(w.kinds(A), ["100"]);
    let to_carrier = w.take(CARRIER);
    assert_eq!(to_carrier.len(), 1, "{to_carrier:?}");
    to_carrier.into_iter().next().unwrap()
}

/// 1001 dials out and the carrier challenges tapir's INVITE: returns the
/// carrier and the last message tapir sent it then (the INVITE again when
/// the trunk has credentials).
fn challenged(w: &mut World) -> (Authenticator, Message) {
    let carrier = Authenticator::new(AuthConfig::new("carrier.example"), w.now);
    let inv = a_dials_out(w, "0049301234");
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &inv, false));
    let retry = w.take(CARRIER).pop().unwrap();
    (carrier, retry)
}

#[test]
fn a_phones_call_to_an_external_number_leaves_on_the_trunk() {
    let mut w = World::new(SipTransport::Udp, None);
    let inv = a_dials_out(&mut w, "0049301234");
    assert_eq!(kind(&inv), "INVITE");
    assert_eq!(request_uri(&inv), "sip:0049301234@127.0.0.1:5070");
    let from = inv.from_header().unwrap().unwrap();
    assert!(from.uri_text.starts_with("sip:1001@"), "{}", from.uri_text);
    assert!(inv.body().starts_with(b"v=0"), "tapir offers SDP");
    assert!(w.connects.is_empty(), "UDP needs no connection");
    assert_eq!(w.states("9000"), [CallStateKind::Offering]);

    w.peer_sends_message(CARRIER, answer(&inv, 180, false));
    assert_eq!(w.kinds(A), ["180"]);
    w.peer_sends_message(CARRIER, answer(&inv, 200, true));
    assert_eq!(w.kinds(CARRIER), ["ACK"]);
    assert_eq!(w.kinds(A), ["200"]);
    assert_eq!(w.states("1001"), [CallStateKind::Connected]);
    assert_eq!(w.states("9000"), [CallStateKind::Connected]);
}

#[test]
fn a_challenge_is_answered_once_with_the_trunks_credentials() {
    let mut w = World::new(SipTransport::Udp, Some(("acct-42", "s3cret")));
    let mut carrier = Authenticator::new(AuthConfig::new("carrier.example"), w.now);
    let inv = a_dials_out(&mut w, "0049301234");
    let challenge = carrier.challenge(w.now, &inv, false);
    assert_eq!(challenge.status_code(), Some(407));
    w.peer_sends_message(CARRIER, challenge);
    let sent = w.take(CARRIER);
    assert_eq!(
        sent.iter().map(kind).collect::<Vec<_>>(),
        ["ACK", "INVITE"],
        "the 407 is acknowledged and the INVITE sent again"
    );
    let retry = &sent[1];
    assert_eq!(retry.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(retry.cseq().unwrap().unwrap().number, 2);
    assert_eq!(
        retry.from_header().unwrap().unwrap().tag(),
        inv.from_header().unwrap().unwrap().tag()
    );
    assert_ne!(
        retry.top_via().unwrap().unwrap().params.get("branch"),
        inv.top_via().unwrap().unwrap().params.get("branch"),
        "a new transaction"
    );
    let passwords = |u: &str| (u == "acct-42").then(|| "s3cret".to_string());
    match carrier.authenticate(w.now, retry, "127.0.0.1".parse().unwrap(), &passwords) {
        AuthOutcome::Authenticated(id) => assert_eq!(id.user, "acct-42"),
        AuthOutcome::Rejected(r) => panic!("the carrier refuses tapir's digest: {:?}", r.reason),
    }
    w.peer_sends_message(CARRIER, answer(retry, 200, true));
    assert_eq!(w.kinds(CARRIER), ["ACK"]);
    assert_eq!(w.kinds(A), ["200"]);
    assert_eq!(w.states("9000"), [CallStateKind::Connected]);
}

#[test]
fn a_second_challenge_fails_the_call() {
    let mut w = World::new(SipTransport::Udp, Some(("acct-42", "wrong")));
    let (carrier, retry) = challenged(&mut w);
    assert_eq!(kind(&retry), "INVITE");
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &retry, false));
    assert_eq!(w.kinds(CARRIER), ["ACK"], "no third INVITE");
    assert!(w.states("9000").is_empty(), "{:?}", w.states("9000"));
    assert_ne!(w.states("1001"), [CallStateKind::Connected]);
}

#[test]
fn without_credentials_a_challenge_fails_the_call() {
    let mut w = World::new(SipTransport::Udp, None);
    let carrier = Authenticator::new(AuthConfig::new("carrier.example"), w.now);
    let inv = a_dials_out(&mut w, "0049301234");
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &inv, false));
    assert_eq!(w.kinds(CARRIER), ["ACK"]);
    assert!(w.states("9000").is_empty());
}

#[test]
fn challenges_tapir_cannot_read_fail_the_call_without_panicking() {
    for header in [
        None,
        Some("Digest nonce"),
        Some("Basic realm=\"x\""),
        Some("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"),
    ] {
        let mut w = World::new(SipTransport::Udp, Some(("u", "p")));
        let inv = a_dials_out(&mut w, "0049301234");
        let mut r = inv.response_builder(407, None, Some("c"));
        if let Some(h) = header {
            r = r.header(HeaderName::ProxyAuthenticate, h);
        }
        w.peer_sends_message(CARRIER, r.build());
        assert_eq!(w.kinds(CARRIER), ["ACK"], "{header:?}");
        assert!(w.states("9000").is_empty(), "{header:?}");
    }
}

#[test]
fn a_tcp_trunk_is_connected_first_and_a_failed_connection_is_unreachable() {
    let mut w = World::new(SipTransport::Tcp, None);
    w.peer_sends(A, invite(A, "1001", "0049301234", "out-tcp", ""));
    assert_eq!(
        w.connects,
        [(CARRIER.parse().unwrap(), SipTransport::Tcp)],
        "one connection to the carrier"
    );
    assert_eq!(w.order.first().map(String::as_str), Some("send 100"));
    let connect_at = w.order.iter().position(|o| o == "connect").unwrap();
    let invite_at = w.order.iter().position(|o| o == "send INVITE").unwrap();
    assert!(connect_at < invite_at, "{:?}", w.order);
    let inv = w.take(CARRIER).pop().unwrap();
    assert_eq!(
        request_uri(&inv),
        "sip:0049301234@127.0.0.1:5070;transport=tcp"
    );
    assert!(
        inv.header(&HeaderName::Via)
            .unwrap()
            .starts_with("SIP/2.0/TCP"),
        "{inv:?}"
    );
    assert_eq!(w.states("9000"), [CallStateKind::Offering]);
    w.b2b.connection_failed(w.now, CARRIER.parse().unwrap());
    w.pump();
    assert!(w.states("9000").is_empty(), "{:?}", w.states("9000"));
}

#[test]
fn a_carriers_call_to_a_did_rings_the_phone_with_the_external_number() {
    let mut w = World::new(SipTransport::Udp, None);
    let app = w.owner_app("1002");
    w.peer_sends(
        CARRIER,
        invite(
            CARRIER,
            "+4930555123",
            "1002",
            "in-1",
            "P-Asserted-Identity: <sip:+4930555999@carrier>\n",
        ),
    );
    let to_carrier = w.kinds(CARRIER);
    assert_eq!(to_carrier, ["100"], "admitted without a challenge");
    let to_b = w.take(B);
    assert_eq!(to_b.iter().map(kind).collect::<Vec<_>>(), ["INVITE"]);
    let at_b = w.switch.calls_at("1002")[0];
    let info = w.switch.call_info(app, at_b).unwrap();
    assert_eq!(&*info.caller.address, "+4930555999");
    assert_eq!(info.state, CallStateKind::Offering);
    assert_eq!(
        w.states("9000").len(),
        1,
        "the call comes from the trunk line"
    );

    w.peer_sends_message(B, answer(&to_b[0], 180, false));
    assert_eq!(w.kinds(CARRIER), ["180"]);
    w.peer_sends_message(B, answer(&to_b[0], 200, true));
    assert_eq!(w.kinds(CARRIER), ["200"]);
    assert_eq!(w.states("1002"), [CallStateKind::Connected]);
}

#[test]
fn invites_from_other_sources_still_meet_digest() {
    let mut w = World::new(SipTransport::Udp, None);
    w.peer_sends(
        STRANGER,
        invite(STRANGER, "+4930555123", "1002", "in-2", ""),
    );
    assert_eq!(w.kinds(STRANGER), ["100", "407"]);
    assert!(w.take(B).is_empty());
    assert!(w.states("9000").is_empty());
}

#[test]
fn a_carrier_invite_without_any_number_gets_404() {
    let mut w = World::new(SipTransport::Udp, None);
    let text = invite(CARRIER, "+4930555123", "1002", "in-3", "")
        .replace("INVITE sip:1002@", "INVITE sip:")
        .replace("To: <sip:1002@", "To: <sip:");
    w.peer_sends(CARRIER, text);
    assert_eq!(w.kinds(CARRIER), ["100", "404"]);
    w.advance(100);
    assert!(w.take(B).is_empty());
}

/// The carrier's INVITE framed from a TCP connection with peer `peer`,
/// its Via naming `via`.
fn carrier_over_tcp(w: &mut World, peer: &str, via: &str, call_id: &str) {
    let text = invite(via, "+4930555123", "1002", call_id, "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    let message = Message::parse_datagram(Bytes::from(text)).unwrap();
    w.b2b
        .handle_stream_message(w.now, peer.parse().unwrap(), message, SipTransport::Tcp);
    w.pump();
}

#[test]
fn over_tcp_a_carrier_is_known_by_the_connection_tapir_opened_and_never_by_its_via() {
    // On the connection tapir opened to the carrier (peer = the carrier's
    // address), whatever its Via says.
    let mut w = World::new(SipTransport::Tcp, None);
    carrier_over_tcp(&mut w, CARRIER, "127.0.0.1:41000", "tcp-1");
    assert_eq!(w.kinds(CARRIER), ["100"]);
    assert_eq!(w.take(B).len(), 1, "1002 rings");
    // On a connection of its own (ephemeral port) naming the carrier's
    // listening port in Via: anyone on the carrier's host can write that,
    // so it meets the phones' rule.
    let mut w = World::new(SipTransport::Tcp, None);
    carrier_over_tcp(&mut w, "127.0.0.1:41001", CARRIER, "tcp-2");
    assert_eq!(w.kinds("127.0.0.1:41001"), ["100", "407"]);
    assert!(w.take(B).is_empty());
    // Neither: the phones' rule.
    let mut w = World::new(SipTransport::Tcp, None);
    carrier_over_tcp(&mut w, "127.0.0.1:41002", "127.0.0.1:41002", "tcp-3");
    assert_eq!(w.kinds("127.0.0.1:41002"), ["100", "407"]);
    assert!(w.take(B).is_empty());
}

#[test]
fn a_udp_carriers_address_over_tcp_is_a_stranger() {
    // The carrier is reached over UDP; a TCP connection from its very
    // address and port is not the carrier.
    let mut w = World::new(SipTransport::Udp, None);
    carrier_over_tcp(&mut w, CARRIER, CARRIER, "tcp-4");
    assert_eq!(w.kinds(CARRIER), ["100", "407"]);
    assert!(w.take(B).is_empty());
}

#[test]
fn the_caller_hanging_up_after_the_retry_cancels_the_authenticated_invite() {
    let mut w = World::new(SipTransport::Udp, Some(("acct-42", "s3cret")));
    let (_, retry) = challenged(&mut w);
    w.peer_sends_message(CARRIER, answer(&retry, 180, false));
    assert_eq!(w.kinds(A), ["180"]);
    // 1001 gives up: tapir cancels the INVITE the carrier is working on.
    w.peer_sends(
        A,
        format!(
            "CANCEL sip:0049301234@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bK-out-1;rport
Max-Forwards: 70
From: <sip:1001@{A}>;tag=f-out-1
To: <sip:0049301234@{TAPIR}>
Call-ID: out-1
CSeq: 1 CANCEL
Content-Length: 0

"
        ),
    );
    let cancel = w
        .take(CARRIER)
        .into_iter()
        .find(|m| kind(m) == "CANCEL")
        .expect("a CANCEL to the carrier");
    assert_eq!(cancel.cseq().unwrap().unwrap().number, 2);
    assert_eq!(
        cancel.top_via().unwrap().unwrap().params.get("branch"),
        retry.top_via().unwrap().unwrap().params.get("branch"),
        "the CANCEL matches the authenticated INVITE"
    );
    assert_eq!(request_uri(&cancel), request_uri(&retry));
}

/// An in-dialog request from phone A on its call `out-1` (CSeq `n`).
fn a_in_dialog(method: &str, n: u32, to_tag: &str, body: &str) -> String {
    let dialog = format!(
        "From: <sip:1001@{A}>;tag=f-out-1\nTo: <sip:0049301234@{TAPIR}>;tag={to_tag}\nCall-ID: out-1"
    );
    support::in_dialog_from_a(method, n, &dialog, body)
}

/// 1001's call to the carrier through a trunk with credentials, answered
/// after one challenge; returns the carrier, tapir's tag towards 1001.
fn connected_through_a_challenge(w: &mut World) -> (Authenticator, String) {
    let (carrier, retry) = challenged(w);
    w.peer_sends_message(CARRIER, answer(&retry, 200, true));
    assert_eq!(w.kinds(CARRIER), ["ACK"]);
    let ok = w.take(A).pop().unwrap();
    assert_eq!(ok.status_code(), Some(200));
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, ""));
    (carrier, tag)
}

fn accepted(carrier: &mut Authenticator, now: Instant, request: &Message) -> bool {
    let passwords = |u: &str| (u == "acct-42").then(|| "s3cret".to_string());
    matches!(
        carrier.authenticate(now, request, "127.0.0.1".parse().unwrap(), &passwords),
        AuthOutcome::Authenticated(_)
    )
}

#[test]
fn a_challenged_bye_is_sent_once_more_with_credentials() {
    let mut w = World::new(SipTransport::Udp, Some(("acct-42", "s3cret")));
    let (mut carrier, tag) = connected_through_a_challenge(&mut w);
    w.peer_sends(A, a_in_dialog("BYE", 2, &tag, ""));
    assert_eq!(w.kinds(A), ["200"]);
    let bye = w.take(CARRIER).pop().expect("BYE to the carrier");
    assert_eq!(kind(&bye), "BYE");
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &bye, false));
    let again = w.take(CARRIER).pop().expect("the BYE again");
    assert_eq!(kind(&again), "BYE");
    assert_eq!(
        again.cseq().unwrap().unwrap().number,
        bye.cseq().unwrap().unwrap().number + 1
    );
    assert!(accepted(&mut carrier, w.now, &again));
    // A second challenge is not answered.
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &again, false));
    assert!(w.take(CARRIER).is_empty());
    w.advance(40_000);
    assert_eq!(w.b2b.dialog_count(), 0, "the dialogs are gone");
}

#[test]
fn a_challenged_re_invite_is_sent_once_more_and_its_answer_applies() {
    let mut w = World::new(SipTransport::Udp, Some(("acct-42", "s3cret")));
    let (mut carrier, tag) = connected_through_a_challenge(&mut w);
    // 1001 holds: the carrier's leg is re-offered (music on hold, sendonly).
    let held = sdp(4000).replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 2, &tag, &held));
    assert_eq!(w.kinds(A), ["100", "200"]);
    let reinvite = w.take(CARRIER).pop().expect("a re-INVITE to the carrier");
    assert_eq!(kind(&reinvite), "INVITE");
    assert!(
        std::str::from_utf8(reinvite.body())
            .unwrap()
            .contains("a=sendonly")
    );
    w.peer_sends_message(CARRIER, carrier.challenge(w.now, &reinvite, false));
    let sent = w.take(CARRIER);
    assert_eq!(sent.iter().map(kind).collect::<Vec<_>>(), ["ACK", "INVITE"]);
    let again = &sent[1];
    assert!(accepted(&mut carrier, w.now, again));
    assert_eq!(again.body(), reinvite.body(), "the same offer");
    w.peer_sends_message(CARRIER, answer(again, 200, true));
    assert_eq!(w.kinds(CARRIER), ["ACK"]);
}

/// A carrier's failure that the PSTN signals with a special information
/// tone reaches the caller as TAPI's `specialinfo` (LINESPECIALINFO_*):
/// the caller's INVITE gets early media (tapir's reorder tone) and stays
/// until the caller hangs up. The same codes from a phone stay what they
/// were (the phone is unreachable).
#[test]
fn a_carriers_vacant_number_or_missing_circuit_is_special_information() {
    use tapir_core::{CallState, SpecialInfoMode as S};
    for (code, mode) in [
        (404, S::CustIrreg),
        (410, S::CustIrreg),
        (484, S::CustIrreg),
        (485, S::CustIrreg),
        (604, S::CustIrreg),
        (503, S::NoCircuit),
        (500, S::Reorder),
        (502, S::Reorder),
        (504, S::Reorder),
    ] {
        let mut w = World::new(SipTransport::Udp, None);
        let inv = a_dials_out(&mut w, "0049301234");
        w.peer_sends_message(CARRIER, answer(&inv, code, false));
        assert_eq!(w.kinds(CARRIER), ["ACK"], "{code}");
        let calls = w.switch.calls_at("1001");
        let states: Vec<_> = calls
            .iter()
            .filter_map(|c| w.switch.call_state_full(*c))
            .collect();
        assert_eq!(states, [CallState::SpecialInfo(mode)], "{code}");
        assert_eq!(w.kinds(A), ["183"], "{code}: early media, no final answer");
        assert!(w.states("9000").is_empty(), "{code}");
    }
    // A phone's 404 is no network's: its caller is told it is unreachable.
    let mut w = World::new(SipTransport::Udp, None);
    w.peer_sends(A, invite(A, "1001", "1002", "to-b", ""));
    let to_b = w.take(support::B).pop().unwrap();
    w.peer_sends_message(
        support::B,
        to_b.response_builder(404, None, Some("b")).build(),
    );
    assert!(
        !w.states("1001").contains(&CallStateKind::SpecialInfo),
        "{:?}",
        w.states("1001")
    );
}
