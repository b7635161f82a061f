//! The B2BUA and the real switch together, driven with SIP messages as two
//! phones would send them: a call from 1001 to 1002 through tapir with
//! ringing, answer and hang-up from either side; busy; CANCEL; a device
//! hold; a call the switch places itself (make call); malformed input.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{A, B, Phones, TAPIR, World, kinds, sdp, to_tag};
use tapir_b2bua::{Config, MediaCommand, SipTransport};
use tapir_core::{CallStateKind, LegId, LineConfig, Switch};
use tapir_sip::msg::{HeaderName, Message};
use tapir_sip::transaction::TimerConfig;

const C: &str = "127.0.0.1:5003";

impl World {
    fn new() -> World {
        World::with_config(|_| {})
    }

    fn with_config(change: impl FnOnce(&mut Config)) -> World {
        World::with(change, SipTransport::Udp)
    }

    /// Phones that register and call over `transport`.
    fn over(transport: SipTransport) -> World {
        World::with(|_| {}, transport)
    }

    /// Phones 1001 (A), 1002 (B) and 1003 (C), reached over `transport`.
    fn with(change: impl FnOnce(&mut Config), transport: SipTransport) -> World {
        let mut switch = Switch::default();
        for a in ["1001", "1002", "1003"] {
            switch.add_line(LineConfig::phone(a)).unwrap();
        }
        let dir = Phones::new(&[("1001", A), ("1002", B), ("1003", C)], transport);
        let mut cfg = Config {
            timers: TimerConfig::default(),
            ..Config::new(TAPIR.parse().unwrap(), "127.0.0.1")
        };
        change(&mut cfg);
        World::assemble(cfg, dir, switch, transport)
    }
}

fn invite_from_a(call_id: &str) -> String {
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

{sdp}",
        len = sdp_a().len(),
        sdp = sdp_a()
    )
}

/// Phone A's offer.
fn sdp_a() -> String {
    sdp(4000)
}

/// A response from phone B to tapir's request.
fn b_responds(req: &Message, code: u16, with_sdp: bool) -> String {
    let mut r = req.response_builder(code, None, Some("b1"));
    r = r.header(HeaderName::Contact, format!("<sip:1002@{B}>"));
    if with_sdp {
        let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=sendrecv\r\n";
        r = r.body("application/sdp", Bytes::from(sdp));
    }
    String::from_utf8(r.build().to_bytes().to_vec())
        .unwrap()
        .replace("\r\n", "\n")
}

/// An in-dialog request from phone A on its call (CSeq `n`).
fn a_in_dialog(method: &str, n: u32, to_tag: &str, call_id: &str, body: &str) -> String {
    let dialog = format!(
        "From: <sip:1001@127.0.0.1>;tag=a1\nTo: <sip:1002@127.0.0.1>;tag={to_tag}\nCall-ID: {call_id}"
    );
    support::in_dialog_from_a(method, n, &dialog, body)
}

/// 1001 calls 1002, 1002 rings and answers: returns tapir's 200 to A and
/// tapir's INVITE to B.
fn connected(w: &mut World, call_id: &str) -> (Message, Message) {
    w.peer_sends(A, invite_from_a(call_id));
    assert_eq!(w.kinds(A), vec!["100"]);
    let invite_b = w.take(B).pop().expect("tapir invites 1002");
    assert_eq!(invite_b.method().unwrap().to_string(), "INVITE");
    assert!(
        invite_b.body().starts_with(b"v=0"),
        "tapir offers its own SDP"
    );
    assert_eq!(w.states("1002"), vec![CallStateKind::Offering]);
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    assert_eq!(w.kinds(A), vec!["180"]);
    assert_eq!(w.states("1001"), vec![CallStateKind::Ringback]);
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    assert_eq!(w.kinds(B), vec!["ACK"]);
    let ok = w.take(A).pop().expect("200 to A");
    assert_eq!(ok.status_code(), Some(200));
    let sdp = std::str::from_utf8(ok.body()).unwrap();
    assert!(
        sdp.contains("c=IN IP4 127.0.0.1") && sdp.contains("m=audio 2"),
        "{sdp}"
    );
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
    (ok, invite_b)
}

#[test]
fn a_call_rings_connects_and_ends_from_the_caller() {
    let mut w = World::new();
    let (ok, invite_b) = connected(&mut w, "call-1");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-1", ""));
    w.peer_sends(A, a_in_dialog("BYE", 2, &tag, "call-1", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
    let bye = w.take(B).pop().expect("BYE to B");
    assert_eq!(bye.method().unwrap().to_string(), "BYE");
    assert_eq!(bye.call_id().unwrap(), invite_b.call_id().unwrap());
    w.peer_sends(B, b_responds(&bye, 200, false));
    assert!(w.states("1001").is_empty() && w.states("1002").is_empty());
    assert!(w.b2b.pending_replies() > 0, "the BYE's reply route is kept");
    w.advance(40_000);
    assert_eq!(w.b2b.dialog_count(), 0, "every dialog is forgotten");
    assert_eq!(w.b2b.pending_replies(), 0, "and every reply route");
    assert!(
        w.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Close { .. }))
    );
}

#[test]
fn the_callee_hangs_up() {
    let mut w = World::new();
    let (_ok, invite_b) = connected(&mut w, "call-2");
    let bye = format!(
        "BYE sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bKb9;rport
Max-Forwards: 70
From: <sip:1002@127.0.0.1>;tag=b1
To: {to}
Call-ID: {cid}
CSeq: 1 BYE
Content-Length: 0

",
        to = invite_b.header(&HeaderName::From).unwrap(),
        cid = invite_b.call_id().unwrap().unwrap()
    );
    w.peer_sends(B, bye);
    assert_eq!(w.kinds(B), vec!["200"]);
    let bye_a = w.take(A).pop().expect("BYE to A");
    assert_eq!(bye_a.method().unwrap().to_string(), "BYE");
    assert!(w.states("1001").is_empty());
}

#[test]
fn busy_callee_gives_the_caller_busy_tone_then_486_when_it_gives_up() {
    let mut w = World::new();
    w.peer_sends(A, invite_from_a("call-3"));
    w.take(A);
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 486, false));
    assert_eq!(w.kinds(B), vec!["ACK"], "the transaction ACKs the 486");
    // The caller hears tapir's busy tone as early media and stays busy.
    assert_eq!(w.kinds(A), vec!["183"]);
    assert_eq!(w.states("1001"), vec![CallStateKind::Busy]);
    // The caller gives up: CANCEL.
    let cancel = invite_from_a("call-3")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let cancel = cancel.split("Content-Type").next().unwrap().to_string() + "Content-Length: 0\n\n";
    w.peer_sends(A, cancel);
    assert_eq!(w.kinds(A), vec!["200", "487"]);
    assert!(w.states("1001").is_empty());
}

#[test]
fn the_caller_cancels_while_the_callee_rings() {
    let mut w = World::new();
    w.peer_sends(A, invite_from_a("call-4"));
    w.take(A);
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.take(A);
    let cancel = invite_from_a("call-4")
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let cancel = cancel.split("Content-Type").next().unwrap().to_string() + "Content-Length: 0\n\n";
    w.peer_sends(A, cancel);
    assert_eq!(w.kinds(A), vec!["200", "487"]);
    let to_b = w.take(B);
    assert_eq!(to_b[0].method().unwrap().to_string(), "CANCEL");
    w.peer_sends(B, b_responds(&to_b[0], 200, false));
    w.peer_sends(B, b_responds(&invite_b, 487, false));
    assert!(w.states("1002").is_empty());
    w.advance(40_000);
    assert_eq!(w.b2b.dialog_count(), 0);
}

#[test]
fn a_phone_holds_and_retrieves_by_itself() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-5");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-5", ""));
    let held = sdp_a().replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 2, &tag, "call-5", &held));
    let answer = w.take(A).pop().unwrap();
    assert_eq!(answer.status_code(), Some(200));
    let body = std::str::from_utf8(answer.body()).unwrap().to_string();
    assert!(body.contains("a=recvonly"), "{answer:?}");
    assert_eq!(w.states("1001"), vec![CallStateKind::OnHold]);
    // The held party hears music on hold: tapir re-offers its leg sendonly.
    let reinvite = w.take(B).pop().expect("re-INVITE to B");
    assert!(
        std::str::from_utf8(reinvite.body())
            .unwrap()
            .contains("a=sendonly")
    );
    w.peer_sends(A, a_in_dialog("ACK", 2, &tag, "call-5", ""));
    // pjsua retrieves with an offerless re-INVITE: tapir offers in its 200.
    w.peer_sends(A, a_in_dialog("INVITE", 3, &tag, "call-5", ""));
    let offer = w.take(A).pop().unwrap();
    assert!(
        std::str::from_utf8(offer.body())
            .unwrap()
            .contains("a=sendrecv")
    );
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
}

#[test]
fn make_call_from_an_app_invites_the_callers_phone_first() {
    let mut w = World::new();
    let app = w.owner_app("1001");
    let ts = w.ts();
    let call = w.switch.make_call(ts, app, "1001", Some("1002")).unwrap();
    w.pump();
    let to_a = w.take(A).pop().expect("tapir calls 1001's phone first");
    assert_eq!(to_a.method().unwrap().to_string(), "INVITE");
    let a_ok = {
        let mut r = to_a.response_builder(200, None, Some("a7"));
        r = r.header(HeaderName::Contact, format!("<sip:1001@{A}>"));
        r = r.body("application/sdp", Bytes::from(sdp_a()));
        String::from_utf8(r.build().to_bytes().to_vec())
            .unwrap()
            .replace("\r\n", "\n")
    };
    w.peer_sends(A, a_ok);
    assert_eq!(w.kinds(A), vec!["ACK"]);
    let to_b = w.take(B).pop().expect("then tapir calls 1002");
    w.peer_sends(B, b_responds(&to_b, 200, true));
    assert_eq!(w.switch.call_state(call), Some(CallStateKind::Connected));
}

#[test]
fn malformed_requests_get_400_and_tapir_keeps_serving() {
    let mut w = World::new();
    w.peer_sends(A, "INVITE sip:1002@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5001;branch=z9hG4bKx\nContent-Length: 0\n\n".into());
    assert_eq!(w.kinds(A), vec!["400"]);
    w.peer_sends(A, "garbage\n\n".into());
    assert!(w.kinds(A).is_empty(), "not even a request line: dropped");
    connected(&mut w, "call-6");
}

#[test]
fn no_free_rtp_port_gets_503_with_retry_after_and_leaves_no_call() {
    let mut w = World::with_config(|c| c.retry_after = Duration::from_secs(7));
    w.ports_exhausted.store(true, Ordering::Relaxed);
    w.peer_sends(A, invite_from_a("call-full"));
    let sent = w.take(A);
    let codes: Vec<_> = sent.iter().filter_map(Message::status_code).collect();
    assert_eq!(codes, vec![100, 503]);
    let unavailable = sent.last().unwrap();
    assert_eq!(unavailable.header(&HeaderName::RetryAfter), Some("7"));
    assert!(w.take(B).is_empty(), "nobody is invited");
    assert!(w.states("1001").is_empty() && w.states("1002").is_empty());
    // Ports free again: the next call goes through.
    w.ports_exhausted.store(false, Ordering::Relaxed);
    connected(&mut w, "call-after");
}

#[test]
fn an_outgoing_leg_without_an_rtp_port_is_unreachable_for_the_switch() {
    let mut w = World::new();
    let app = w.owner_app("1001");
    w.ports_exhausted.store(true, Ordering::Relaxed);
    let ts = w.ts();
    let call = w.switch.make_call(ts, app, "1001", Some("1002")).unwrap();
    w.pump();
    assert!(w.take(A).is_empty(), "no INVITE without an RTP port");
    assert_ne!(
        w.switch.call_state(call),
        Some(CallStateKind::Dialing),
        "the switch heard the leg failed"
    );
    assert_eq!(w.b2b.dialog_count(), 0);
}

#[test]
fn beyond_the_dialog_limit_invites_get_503_with_retry_after() {
    let mut w = World::with_config(|c| c.max_dialogs = 2);
    let (ok, _) = connected(&mut w, "call-first");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-first", ""));
    assert_eq!(w.b2b.dialog_count(), 2);
    w.peer_sends(A, invite_from_a("call-second"));
    let sent = w.take(A);
    let last = sent.last().expect("a response");
    assert_eq!(last.status_code(), Some(503));
    assert_eq!(last.header(&HeaderName::RetryAfter), Some("5"));
    assert!(w.take(B).is_empty());
    // The first call is untouched: it still ends normally.
    w.peer_sends(A, a_in_dialog("BYE", 2, &tag, "call-first", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
}

#[test]
fn unknown_dialog_gets_481() {
    let mut w = World::new();
    w.peer_sends(A, a_in_dialog("BYE", 2, "nope", "no-such-call", ""));
    assert_eq!(w.kinds(A), vec!["481"]);
}

/// A REFER from phone A on its call (CSeq `n`), with extra header lines.
fn a_refer(n: u32, to_tag: &str, call_id: &str, extra: &str) -> String {
    format!(
        "REFER sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKr{n};rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {n} REFER
Contact: <sip:1001@{A}>
Refer-To: <sip:1003@127.0.0.1>
{extra}Content-Length: 0

"
    )
}

fn sipfrag(m: &Message) -> String {
    std::str::from_utf8(m.body()).unwrap().trim().to_string()
}

#[test]
fn a_phone_refer_is_accepted_then_reported_done_by_notify_before_the_bye() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-r1");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-r1", ""));
    w.peer_sends(A, a_refer(2, &tag, "call-r1", ""));
    let to_a = w.take(A);
    let kinds = kinds(&to_a);
    // 202 is only "accepted"; the outcome comes as NOTIFYs, the last one final,
    // and the transferor's leg is released after it.
    assert_eq!(kinds, vec!["202", "NOTIFY", "NOTIFY", "BYE"], "{to_a:?}");
    assert_eq!(sipfrag(&to_a[1]), "SIP/2.0 100 Trying");
    assert_eq!(sipfrag(&to_a[2]), "SIP/2.0 200 OK");
    assert!(
        to_a[2]
            .header(&HeaderName::SubscriptionState)
            .unwrap()
            .starts_with("terminated")
    );
    let invite_c = w
        .take(C)
        .pop()
        .unwrap_or_else(|| panic!("the transfer target is called: {:?}", w.sent));
    assert_eq!(invite_c.method().unwrap().to_string(), "INVITE");
    // The transferee now waits for 1003; the transferor's call is gone.
    assert_eq!(w.states("1002"), vec![CallStateKind::Proceeding]);
    assert!(w.states("1001").is_empty());
}

#[test]
fn refer_sub_false_gets_no_notify() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-r2");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-r2", ""));
    w.peer_sends(A, a_refer(2, &tag, "call-r2", "Refer-Sub: false\n"));
    let to_a = w.take(A);
    assert_eq!(to_a[0].status_code(), Some(202));
    assert_eq!(to_a[0].header(&HeaderName::ReferSub), Some("false"));
    assert!(
        to_a.iter()
            .all(|m| m.method().map(|x| x.to_string()) != Some("NOTIFY".into())),
        "{to_a:?}"
    );
    assert!(w.take(C).pop().is_some(), "the transfer still happens");
}

#[test]
fn the_transferor_hanging_up_right_after_the_202_leaves_the_transferee_up() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-r3");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-r3", ""));
    w.peer_sends(A, a_refer(2, &tag, "call-r3", ""));
    w.peer_sends(A, a_in_dialog("BYE", 3, &tag, "call-r3", ""));
    let invite_c = w.take(C).pop().expect("1003 rings");
    assert!(
        w.take(B)
            .iter()
            .all(|m| m.method().map(|x| x.to_string()) != Some("BYE".into()))
    );
    w.peer_sends(C, {
        let mut r = invite_c.response_builder(200, None, Some("c1"));
        r = r.header(HeaderName::Contact, format!("<sip:1003@{C}>"));
        let sdp = "v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4004 RTP/AVP 0\r\na=sendrecv\r\n";
        r = r.body("application/sdp", Bytes::from(sdp));
        String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
    });
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1003"), vec![CallStateKind::Connected]);
}

#[test]
fn an_invite_replacing_an_unknown_dialog_gets_481() {
    let mut w = World::new();
    let invite = invite_from_a("call-x").replace(
        "Contact: <sip:1001@127.0.0.1:5001>",
        "Contact: <sip:1001@127.0.0.1:5001>\nReplaces: no-such-call;to-tag=a;from-tag=b",
    );
    w.peer_sends(A, invite);
    assert_eq!(w.kinds(A), vec!["100", "481"]);
    assert!(w.states("1001").is_empty());
}

#[test]
fn a_phone_picks_up_a_ringing_call_with_an_invite_that_replaces_it() {
    let mut w = World::new();
    w.peer_sends(A, invite_from_a("call-p1"));
    w.take(A);
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.take(A);
    // Phone 1003 presses its pickup key: INVITE with Replaces naming the
    // ringing dialog (tapir's dialog with 1002). As RFC 3891 §3 has it,
    // `to-tag` is the tag of the UA that receives the INVITE (tapir's own,
    // in the From of its INVITE to 1002), `from-tag` 1002's.
    let replaces = format!(
        "{};to-tag={};from-tag=b1",
        invite_b.call_id().unwrap().unwrap(),
        invite_b.from_header().unwrap().unwrap().tag().unwrap()
    );
    let pickup = invite_from_a("call-p2")
        .replace(A, C)
        .replace("sip:1001@", "sip:1003@")
        .replace(
            "Contact: <sip:1003@127.0.0.1:5003>",
            &format!("Contact: <sip:1003@{C}>\nReplaces: {replaces}"),
        );
    w.peer_sends(C, pickup);
    let to_c = w.kinds(C);
    assert_eq!(to_c.last().map(String::as_str), Some("200"), "{to_c:?}");
    let to_b = w.take(B);
    assert_eq!(
        to_b[0].method().unwrap().to_string(),
        "CANCEL",
        "the ringing phone stops"
    );
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1003"), vec![CallStateKind::Connected]);
    assert!(w.states("1002").is_empty());
}

#[test]
fn a_prack_in_a_dialog_is_acknowledged() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-pr");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("PRACK", 2, &tag, "call-pr", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
}

/// An INFO from phone A in its call, with a body of `ctype` (CSeq `n`).
fn a_info(n: u32, to_tag: &str, call_id: &str, ctype: &str, body: &str, extra: &str) -> String {
    format!(
        "INFO sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKinfo{n};rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {n} INFO
{extra}Content-Type: {ctype}
Content-Length: {len}

{body}",
        len = body.len()
    )
}

#[test]
fn sip_info_digits_reach_the_switch_like_rfc4733_digits() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-info");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-info", ""));
    let a_leg = w.switch.calls_at("1001");
    assert_eq!(a_leg.len(), 1);
    w.peer_sends(
        A,
        a_info(
            2,
            &tag,
            "call-info",
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
            "",
        ),
    );
    assert_eq!(w.kinds(A), vec!["200"]);
    w.peer_sends(A, a_info(3, &tag, "call-info", "application/dtmf", "#", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
    w.peer_sends(
        A,
        a_info(
            4,
            &tag,
            "call-info",
            "application/dtmf-relay",
            "Signal=10\r\nDuration=100\r\n",
            "",
        ),
    );
    assert_eq!(w.kinds(A), vec!["200"]);
    let digits: Vec<&str> = w.digits.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(digits, vec!["5", "#", "*"]);
    // All on the caller's leg, the same leg tapir answered.
    let leg = w.digits[0].0;
    assert!(w.digits.iter().all(|(l, _)| *l == leg));
    // No SIP message went to the other phone: the digits reach it in its
    // media stream (RFC 4733), on its own leg.
    assert!(w.take(B).is_empty());
    let relayed: Vec<(LegId, String)> = w
        .media
        .iter()
        .filter_map(|m| match m {
            tapir_b2bua::MediaCommand::Digits { leg, digits } => Some((*leg, digits.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(relayed.len(), 3, "{relayed:?}");
    assert!(relayed.iter().all(|(l, _)| *l != leg));
    let sent: Vec<&str> = relayed.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(sent, vec!["5", "#", "*"]);
}

#[test]
fn sip_info_bodies_tapir_cannot_read_get_415_400_or_469() {
    let mut w = World::new();
    let (ok, _invite_b) = connected(&mut w, "call-info2");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-info2", ""));
    w.peer_sends(
        A,
        a_info(
            2,
            &tag,
            "call-info2",
            "application/media_control+xml",
            "<media_control/>",
            "",
        ),
    );
    let r = w.take(A).pop().unwrap();
    assert_eq!(r.status_code(), Some(415));
    let accept = r.header(&tapir_sip::msg::HeaderName::Accept).unwrap();
    assert!(accept.contains("application/dtmf-relay"), "{accept}");
    w.peer_sends(
        A,
        a_info(
            3,
            &tag,
            "call-info2",
            "application/dtmf-relay",
            "Signal=Z\r\n",
            "",
        ),
    );
    assert_eq!(w.kinds(A), vec!["400"]);
    w.peer_sends(
        A,
        a_info(
            4,
            &tag,
            "call-info2",
            "application/dtmf-relay",
            "Signal=1\r\n",
            "Info-Package: foo\n",
        ),
    );
    assert_eq!(w.kinds(A), vec!["469"]);
    // An INFO outside any dialog.
    w.peer_sends(
        A,
        a_info(5, "nope", "no-such-call", "application/dtmf", "1", ""),
    );
    assert_eq!(w.kinds(A), vec!["481"]);
    assert!(w.digits.is_empty(), "{:?}", w.digits);
    // The call is still up.
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
}

#[test]
fn a_refer_without_refer_to_gets_400_and_the_call_stays_up() {
    let mut w = World::new();
    let (ok, _) = connected(&mut w, "call-r4");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-r4", ""));
    let refer = a_refer(2, &tag, "call-r4", "").replace("Refer-To: <sip:1003@127.0.0.1>\n", "");
    w.peer_sends(A, refer);
    assert_eq!(w.kinds(A), vec!["400"]);
    assert!(w.take(C).is_empty(), "nobody is called");
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
}

#[test]
fn a_refer_the_switch_refuses_is_answered_403_and_keeps_the_call() {
    let mut w = World::new();
    let (ok, _) = connected(&mut w, "call-r5");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-r5", ""));
    // A target that is no dialable address: the switch refuses the transfer
    // at once, so the REFER itself is refused; no subscription, no NOTIFY.
    let refer = a_refer(2, &tag, "call-r5", "").replace("<sip:1003@", "<sip:xyz@");
    w.peer_sends(A, refer);
    assert_eq!(w.kinds(A), vec!["403"]);
    assert!(w.take(C).is_empty(), "nobody is called");
    // Nothing was torn down: both parties are still talking.
    assert!(kinds(&w.take(B)).iter().all(|k| k != "BYE"));
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
    // A REFER the switch accepts afterwards still gets 202 and NOTIFYs.
    w.peer_sends(A, a_refer(3, &tag, "call-r5", ""));
    let to_a = w.take(A);
    assert_eq!(
        kinds(&to_a).first().map(String::as_str),
        Some("202"),
        "{to_a:?}"
    );
}

#[test]
fn an_unknown_number_gets_404() {
    let mut w = World::new();
    let invite = invite_from_a("call-404").replace("INVITE sip:1002@", "INVITE sip:9999@");
    w.peer_sends(A, invite);
    let codes = w.kinds(A);
    assert_eq!(codes.last().map(String::as_str), Some("404"), "{codes:?}");
    assert!(w.take(B).is_empty());
}

#[test]
fn redirecting_a_call_a_phone_placed_answers_its_invite_with_302_to_tapir() {
    for transport in [SipTransport::Udp, SipTransport::Tcp] {
        let mut w = World::over(transport);
        // A trunk, so that an external number is a valid destination.
        w.switch.add_line(LineConfig::trunk("9000")).unwrap();
        let app = w.owner_app("1002");
        w.peer_sends(A, invite_from_a("call-302"));
        let invite_b = w.take(B).pop().expect("1002 is invited");
        w.peer_sends(B, b_responds(&invite_b, 180, false));
        w.take(A);
        let at_b = w.switch.calls_at("1002")[0];
        let ts = w.ts();
        w.switch.redirect(ts, app, at_b, "+1 (425) 1003").unwrap();
        w.pump();
        // 1001's INVITE gets the 302; its Contact sends the new INVITE to
        // tapir itself, over the same transport, with the number escaped.
        let to_a = w.take(A);
        let moved = to_a
            .iter()
            .find(|m| kinds(std::slice::from_ref(m)) == ["302"])
            .unwrap_or_else(|| panic!("{to_a:?}"));
        let param = if transport == SipTransport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        assert_eq!(
            moved.header(&HeaderName::Contact),
            Some(format!("<sip:+1%20(425)%201003@{TAPIR}{param}>").as_str())
        );
        // 1002 stops ringing; nobody else is invited by tapir.
        assert!(kinds(&w.take(B)).contains(&"CANCEL".to_string()));
        assert!(w.take(C).is_empty());
        assert!(
            w.switch.calls_at("9000").is_empty(),
            "tapir placed no call itself"
        );
    }
}

#[test]
fn an_unanswered_call_gets_480_when_the_ring_timer_expires() {
    let mut w = World::new();
    w.peer_sends(A, invite_from_a("call-480"));
    assert_eq!(w.kinds(A), vec!["100"]);
    let invite_b = w.take(B).pop().expect("1002 is invited");
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    assert_eq!(w.kinds(A), vec!["180"]);
    // Nobody answers: the switch's ring timer (120 s by default) gives up.
    let ring_timeout = w.switch.config().ring_timeout_ms;
    for _ in 0..(ring_timeout / 1000 + 2) {
        w.advance(1000);
        let ts = w.ts();
        w.switch.handle(ts, tapir_core::Input::Timeout);
        w.pump();
    }
    let to_a = w.take(A);
    assert!(kinds(&to_a).contains(&"480".to_string()), "{to_a:?}");
    assert!(kinds(&w.take(B)).contains(&"CANCEL".to_string()));
}

#[test]
fn a_call_with_nothing_dialled_yet_rings_its_phone_from_tapirs_domain() {
    let mut w = World::new();
    let app = w.owner_app("1001");
    let ts = w.ts();
    // lineMakeCall without a number: the phone is rung for dial tone.
    w.switch.make_call(ts, app, "1001", None).unwrap();
    w.pump();
    let to_a = w.take(A).pop().expect("tapir calls 1001's phone");
    let from = to_a.header(&HeaderName::From).unwrap();
    assert!(
        from.starts_with("<sip:127.0.0.1>;tag="),
        "no empty user part (phones drop `sip:@host`): {from}"
    );
    assert!(to_a.from_header().unwrap().is_some());
}

#[test]
fn an_ipv6_domain_is_bracketed_in_the_from_and_to_of_tapirs_invites() {
    let mut w = World::with_config(|cfg| cfg.domain = "::1".into());
    w.peer_sends(A, invite_from_a("call-v6"));
    let invite_b = w.take(B).pop().expect("1002 is invited");
    let from = invite_b.header(&HeaderName::From).unwrap();
    assert!(from.contains("<sip:1001@[::1]>;tag="), "{from}");
    assert_eq!(
        invite_b.header(&HeaderName::To).unwrap(),
        "<sip:1002@[::1]>"
    );
    // Both parse as name-addrs with a SIP URI (phones drop them otherwise).
    assert!(invite_b.from_header().unwrap().is_some());
    assert!(invite_b.to_header().unwrap().is_some());
}

/// A NOTIFY tapir sent, with its `Event` header.
fn notify_event(m: &Message) -> Option<String> {
    (m.method().map(|x| x.to_string()) == Some("NOTIFY".into()))
        .then(|| m.header(&HeaderName::Event).unwrap_or_default().to_string())
}

#[test]
fn a_remote_controlled_phone_is_asked_to_answer_hold_and_resume_with_notify() {
    let mut w = World::new();
    let line = w.switch.line_of("1002").unwrap();
    let mut cfg = w.switch.line_config(line).unwrap();
    cfg.remote_answer = true;
    w.switch.update_line(line, cfg).unwrap();
    let app = w.owner_app("1002");
    w.peer_sends(A, invite_from_a("call-bs"));
    let invite_b = w.take(B).pop().expect("1002 is invited");
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    let call = w.switch.calls_at("1002")[0];
    // The app answers: the ringing phone is asked to go off-hook.
    let ts = w.ts();
    w.switch.answer(ts, app, call).unwrap();
    w.pump();
    let to_b = w.take(B);
    let talk = to_b.iter().find_map(|m| notify_event(m).map(|e| (e, m)));
    let (event, notify) = talk.expect("a NOTIFY to the phone");
    assert_eq!(event, "talk");
    assert_eq!(notify.call_id().unwrap(), invite_b.call_id().unwrap());
    assert_eq!(to_tag(notify), "b1", "inside the INVITE's (early) dialog");
    w.peer_sends(B, b_responds(notify, 200, false));
    // The phone obeys: it answers its INVITE.
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
    let _ = w.take(B);
    // The app holds: the phone is asked to hold by itself, not re-INVITEd.
    let ts = w.ts();
    w.switch.hold(ts, app, call).unwrap();
    w.pump();
    let to_b = w.take(B);
    assert_eq!(
        to_b.iter().filter_map(notify_event).collect::<Vec<_>>(),
        vec!["hold"]
    );
    assert!(
        to_b.iter()
            .all(|m| m.method().map(|x| x.to_string()) != Some("INVITE".into())),
        "{to_b:?}"
    );
    assert_eq!(w.states("1002"), vec![CallStateKind::OnHold]);
    // Unhold asks it to resume.
    let ts = w.ts();
    w.switch.unhold(ts, app, call).unwrap();
    w.pump();
    assert_eq!(
        w.take(B)
            .iter()
            .filter_map(notify_event)
            .collect::<Vec<_>>(),
        vec!["talk"]
    );
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
}

// ----------------------------------------------------------------------
// SDP offer/answer per leg (tapir-media's SdpSession) and SRTP
// ----------------------------------------------------------------------

/// Phone A's SDES key (30 bytes: 1, 2, … 30).
const KEY_A: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e";
/// Phone B's SDES key (30 bytes: 101, 102, … 130).
const KEY_B: &str = "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC";

/// Phone A's offer with RTP/SAVP and its SDES key.
fn sdp_a_secure() -> String {
    sdp_a().replace("RTP/AVP", "RTP/SAVP")
        + &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}\r\n")
}

/// Phone B's answer with RTP/SAVP and its SDES key.
fn sdp_b_secure(direction: &str) -> String {
    format!(
        "v=0\r\no=- 2 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/SAVP 0\r\na={direction}\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B}\r\n"
    )
}

/// Phone A's INVITE to 1002 with `sdp` as its body (none when empty).
fn invite_from_a_with(call_id: &str, sdp: &str) -> String {
    let invite = invite_from_a(call_id);
    let head = invite.split("Content-Type").next().unwrap();
    if sdp.is_empty() {
        format!("{head}Content-Length: 0\n\n")
    } else {
        format!(
            "{head}Content-Type: application/sdp\nContent-Length: {}\n\n{sdp}",
            sdp.len()
        )
    }
}

/// A response from phone `phone` (tag `tag`) to tapir's request, with `sdp`.
fn responds(req: &Message, code: u16, tag: &str, contact: &str, sdp: &str) -> String {
    let mut r = req.response_builder(code, None, Some(tag));
    r = r.header(HeaderName::Contact, format!("<sip:{contact}>"));
    if !sdp.is_empty() {
        r = r.body("application/sdp", Bytes::copy_from_slice(sdp.as_bytes()));
    }
    String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
}

fn body(m: &Message) -> String {
    std::str::from_utf8(m.body()).unwrap().to_string()
}

/// The SDES key of the one `a=crypto` line of an SDP body (tag 1, the
/// 80-bit tag suite), decoded.
fn crypto_key(sdp: &str) -> [u8; 30] {
    let sd = tapir_media::SessionDescription::parse(sdp).unwrap();
    let audio = sd.audio().unwrap();
    assert!(audio.is_secure(), "RTP/SAVP: {sdp}");
    assert_eq!(audio.crypto.len(), 1, "{sdp}");
    assert_eq!(audio.crypto[0].tag, 1);
    assert_eq!(
        audio.crypto[0].suite,
        tapir_media::srtp::SrtpSuite::AesCm128HmacSha1_80
    );
    audio.crypto[0].key
}

fn decode(key: &str) -> [u8; 30] {
    tapir_media::srtp::CryptoAttr::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}"))
        .unwrap()
        .key
}

/// The offer/answer outcomes given to the media plane for phone A's leg
/// (the inbound one) or for the outbound legs.
fn remotes(w: &World, inbound: bool) -> Vec<tapir_media::Negotiated> {
    w.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Remote { leg, negotiated }
                if (leg.0 >= tapir_b2bua::INBOUND_LEG_BASE) == inbound =>
            {
                Some(*negotiated)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_phone_offering_srtp_over_tls_gets_tapirs_key_and_both_legs_are_protected() {
    let mut w = World::over(SipTransport::Tls);
    w.peer_sends(A, invite_from_a_with("call-s1", &sdp_a_secure()));
    assert_eq!(w.kinds(A), vec!["100"]);
    // The callee's phone is reached over TLS too: tapir offers it SRTP
    // with a key of that leg's own.
    let invite_b = w.take(B).pop().expect("1002 is invited");
    let offer_b = body(&invite_b);
    let key_to_b = crypto_key(&offer_b);
    w.peer_sends(B, responds(&invite_b, 180, "b1", B, ""));
    w.peer_sends(
        B,
        responds(&invite_b, 200, "b1", B, &sdp_b_secure("sendrecv")),
    );
    let ok = w.take(A).into_iter().find(|m| m.status_code() == Some(200));
    let answer_a = body(&ok.expect("200 to A"));
    assert!(answer_a.contains("m=audio 2"), "{answer_a}");
    let key_to_a = crypto_key(&answer_a);
    assert_ne!(key_to_a, decode(KEY_A), "tapir sends with its own key");
    assert_ne!(key_to_a, key_to_b, "each leg has its own key");
    // The media plane protects each leg: tapir encrypts with the key it
    // gave, and decrypts with the phone's.
    let a = remotes(&w, true);
    let keys = a.last().unwrap().srtp.expect("A's leg is SRTP");
    assert_eq!((keys.local, keys.remote), (key_to_a, decode(KEY_A)));
    assert!(a.iter().all(|n| n.srtp.is_some()), "never plain: {a:?}");
    let b = remotes(&w, false);
    let keys = b.last().unwrap().srtp.expect("B's leg is SRTP");
    assert_eq!((keys.local, keys.remote), (key_to_b, decode(KEY_B)));
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert_eq!(w.states("1002"), vec![CallStateKind::Connected]);
}

#[test]
fn srtp_keys_outside_tls_are_refused_with_488() {
    for transport in [SipTransport::Udp, SipTransport::Tcp] {
        let mut w = World::over(transport);
        w.peer_sends(A, invite_from_a_with("call-s2", &sdp_a_secure()));
        let sent = w.take(A);
        assert_eq!(kinds(&sent), vec!["100", "488"], "{transport:?}");
        let warning = sent[1].header(&HeaderName::from_wire("Warning")).unwrap();
        assert!(
            warning.starts_with("399 tapir \"") && warning.contains("TLS"),
            "{warning}"
        );
        assert!(w.take(B).is_empty(), "nobody is invited");
        assert!(w.states("1001").is_empty());
        assert_eq!(w.b2b.dialog_count(), 0);
        // Plain RTP over the same transport still works, and tapir does
        // not offer keys to a phone it reaches outside TLS.
        let (ok, invite_b) = connected(&mut w, "call-s2b");
        assert!(body(&invite_b).contains("RTP/AVP") && !body(&invite_b).contains("a=crypto"));
        assert!(!body(&ok).contains("a=crypto"));
    }
}

#[test]
fn a_secured_leg_refuses_a_plain_offer_and_keeps_srtp() {
    let mut w = World::over(SipTransport::Tls);
    w.peer_sends(A, invite_from_a_with("call-s3", &sdp_a_secure()));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(
        B,
        responds(&invite_b, 200, "b1", B, &sdp_b_secure("sendrecv")),
    );
    let ok = w.take(A).pop().unwrap();
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-s3", ""));
    let before = w.media.len();
    // Hold with plain RTP: refused, the call is neither held nor plain.
    let plain_hold = sdp_a().replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 2, &tag, "call-s3", &plain_hold));
    let refused = w.take(A).pop().unwrap();
    assert_eq!(refused.status_code(), Some(488));
    let warning = refused.header(&HeaderName::from_wire("Warning")).unwrap();
    assert!(warning.contains("secure"), "{warning}");
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert!(
        w.media[before..]
            .iter()
            .all(|m| !matches!(m, MediaCommand::Remote { .. })),
        "the media plane is not touched"
    );
    // The same hold with SRTP is fine, and keeps tapir's key.
    let key_to_a = crypto_key(&body(&ok));
    let secure_hold = sdp_a_secure().replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 3, &tag, "call-s3", &secure_hold));
    let held = w.take(A).pop().unwrap();
    assert_eq!(held.status_code(), Some(200));
    assert!(body(&held).contains("a=recvonly"), "{}", body(&held));
    assert_eq!(crypto_key(&body(&held)), key_to_a);
    assert_eq!(w.states("1001"), vec![CallStateKind::OnHold]);
    let last = *remotes(&w, true).last().unwrap();
    assert_eq!(last.srtp.unwrap().local, key_to_a);
    // An offerless re-INVITE gets tapir's SRTP offer; a plain answer in
    // the ACK is refused by hanging the leg up (no fallback).
    w.peer_sends(A, a_in_dialog("ACK", 3, &tag, "call-s3", ""));
    w.peer_sends(A, a_in_dialog("INVITE", 4, &tag, "call-s3", ""));
    let offer = w.take(A).pop().unwrap();
    assert_eq!(crypto_key(&body(&offer)), key_to_a);
    assert!(body(&offer).contains("RTP/SAVP"));
    w.peer_sends(A, a_in_dialog("ACK", 4, &tag, "call-s3", &sdp_a()));
    assert_eq!(kinds(&w.take(A)), vec!["BYE"]);
    assert!(w.states("1001").is_empty());
    assert!(remotes(&w, true).iter().all(|n| n.srtp.is_some()));
}

#[test]
fn securing_a_call_re_offers_both_tls_legs_with_srtp_and_plain_is_refused_after() {
    let mut w = World::over(SipTransport::Tls);
    let app = w.owner_app("1001");
    // A plain call over TLS: 1002's phone does not do SRTP and refuses
    // tapir's SRTP offer, so tapir invites it again with RTP.
    w.peer_sends(A, invite_from_a("call-s4"));
    let invite_b = w.take(B).pop().unwrap();
    assert!(body(&invite_b).contains("RTP/SAVP"));
    w.peer_sends(B, responds(&invite_b, 488, "b0", B, ""));
    let to_b = w.take(B);
    assert_eq!(kinds(&to_b), vec!["ACK", "INVITE"], "{to_b:?}");
    let invite_b = &to_b[1];
    assert_eq!(invite_b.call_id().unwrap(), to_b[0].call_id().unwrap());
    assert_eq!(invite_b.cseq().unwrap().unwrap().number, 2);
    assert!(body(invite_b).contains("RTP/AVP") && !body(invite_b).contains("a=crypto"));
    let plain_b = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=sendrecv\r\n";
    w.peer_sends(B, responds(invite_b, 200, "b1", B, plain_b));
    let ok = w.take(A).pop().unwrap();
    assert!(!body(&ok).contains("a=crypto"));
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-s4", ""));
    assert!(remotes(&w, true).iter().all(|n| n.srtp.is_none()));
    // The app secures the call: both legs are re-offered RTP/SAVP.
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    let reinvite_a = w.take(A).pop().expect("re-INVITE to A");
    assert_eq!(reinvite_a.method().unwrap().to_string(), "INVITE");
    assert!(body(&reinvite_a).contains("a=sendrecv"));
    let key_to_a = crypto_key(&body(&reinvite_a));
    let reinvite_b = w.take(B).pop().expect("re-INVITE to B");
    let key_to_b = crypto_key(&body(&reinvite_b));
    w.peer_sends(A, responds(&reinvite_a, 200, "a1", A, &sdp_a_secure()));
    assert_eq!(kinds(&w.take(A)), vec!["ACK"]);
    w.peer_sends(
        B,
        responds(&reinvite_b, 200, "b1", B, &sdp_b_secure("sendrecv")),
    );
    assert_eq!(kinds(&w.take(B)), vec!["ACK"]);
    let a = remotes(&w, true)
        .last()
        .unwrap()
        .srtp
        .expect("A's leg secured");
    assert_eq!((a.local, a.remote), (key_to_a, decode(KEY_A)));
    let b = remotes(&w, false)
        .last()
        .unwrap()
        .srtp
        .expect("B's leg secured");
    assert_eq!((b.local, b.remote), (key_to_b, decode(KEY_B)));
    // From now on a plain offer on either leg is refused.
    let plain_hold = sdp_a().replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 2, &tag, "call-s4", &plain_hold));
    assert_eq!(kinds(&w.take(A)), vec!["100", "488"]);
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    // Securing again changes nothing (no new re-INVITE).
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    assert!(w.take(A).is_empty() && w.take(B).is_empty());
}

#[test]
fn a_plain_answer_to_tapirs_srtp_offer_ends_the_leg() {
    let mut w = World::over(SipTransport::Tls);
    w.peer_sends(A, invite_from_a("call-s5"));
    let invite_b = w.take(B).pop().unwrap();
    // 1002 answers tapir's SRTP offer with plain RTP (a broken answer):
    // ACK, then BYE; the switch hears the leg was refused.
    let plain_b = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=sendrecv\r\n";
    w.peer_sends(B, responds(&invite_b, 200, "b1", B, plain_b));
    assert_eq!(kinds(&w.take(B)), vec!["ACK", "BYE"]);
    assert!(w.states("1002").is_empty());
    assert_ne!(w.states("1001"), vec![CallStateKind::Connected]);
    assert!(
        remotes(&w, false).is_empty(),
        "no media for the refused leg"
    );
    // On an established call, a plain answer to the securing re-offer
    // ends that leg as well.
    let mut w = World::over(SipTransport::Tls);
    let app = w.owner_app("1001");
    w.peer_sends(A, invite_from_a("call-s6"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, responds(&invite_b, 488, "b0", B, ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, responds(&invite_b, 200, "b1", B, plain_b));
    let ok = w.take(A).pop().unwrap();
    w.peer_sends(A, a_in_dialog("ACK", 1, &to_tag(&ok), "call-s6", ""));
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    let reinvite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, responds(&reinvite_b, 200, "b1", B, plain_b));
    assert_eq!(kinds(&w.take(B)), vec!["ACK", "BYE"]);
    assert!(w.states("1002").is_empty());
    assert!(remotes(&w, false).iter().all(|n| n.srtp.is_none()));
}

#[test]
fn securing_a_call_over_udp_keeps_rtp_and_plain_holds_work() {
    let mut w = World::new();
    let app = w.owner_app("1001");
    let (ok, _) = connected(&mut w, "call-s7");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-s7", ""));
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    assert!(w.take(A).is_empty() && w.take(B).is_empty(), "no re-offer");
    let held = sdp_a().replace("a=sendrecv", "a=sendonly");
    w.peer_sends(A, a_in_dialog("INVITE", 2, &tag, "call-s7", &held));
    assert_eq!(w.take(A).pop().unwrap().status_code(), Some(200));
    assert_eq!(w.states("1001"), vec![CallStateKind::OnHold]);
}

#[test]
fn every_hold_form_of_a_phone_is_a_hold_and_recvonly_is_not() {
    let mut w = World::new();
    let (ok, _) = connected(&mut w, "call-h");
    let tag = to_tag(&ok);
    w.peer_sends(A, a_in_dialog("ACK", 1, &tag, "call-h", ""));
    let rtp_a: Option<SocketAddr> = Some("127.0.0.1:4000".parse().unwrap());
    // (form, offer, tapir's answer, where tapir would send RTP)
    let forms = [
        (
            "a=sendonly",
            sdp_a().replace("a=sendrecv", "a=sendonly"),
            "a=recvonly",
            rtp_a,
        ),
        (
            "a=inactive",
            sdp_a().replace("a=sendrecv", "a=inactive"),
            "a=inactive",
            rtp_a,
        ),
        (
            "c=0.0.0.0",
            sdp_a().replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"),
            "a=recvonly",
            None,
        ),
        (
            "port 0",
            sdp_a().replace("m=audio 4000", "m=audio 0"),
            "a=inactive",
            None,
        ),
    ];
    let mut n = 2;
    for (name, sdp, answered, remote) in forms {
        w.peer_sends(A, a_in_dialog("INVITE", n, &tag, "call-h", &sdp));
        let answer = w.take(A).pop().unwrap();
        assert_eq!(answer.status_code(), Some(200), "{name}");
        assert!(
            body(&answer).contains(answered),
            "{name}: {}",
            body(&answer)
        );
        assert_eq!(w.states("1001"), vec![CallStateKind::OnHold], "{name}");
        let last = *remotes(&w, true).last().unwrap();
        assert!(!last.direction.sends(), "{name}: tapir sends nothing");
        assert_eq!(last.remote, remote, "{name}");
        w.peer_sends(A, a_in_dialog("ACK", n, &tag, "call-h", ""));
        // Retrieved with sendrecv.
        w.peer_sends(A, a_in_dialog("INVITE", n + 1, &tag, "call-h", &sdp_a()));
        let answer = w.take(A).pop().unwrap();
        assert!(body(&answer).contains("a=sendrecv"), "{name}");
        assert_eq!(w.states("1001"), vec![CallStateKind::Connected], "{name}");
        let last = *remotes(&w, true).last().unwrap();
        assert_eq!(last.remote, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(last.direction, tapir_media::Direction::SendRecv);
        w.peer_sends(A, a_in_dialog("ACK", n + 1, &tag, "call-h", ""));
        n += 2;
    }
    // recvonly: the phone listens (e.g. to an announcement): no hold.
    let recvonly = sdp_a().replace("a=sendrecv", "a=recvonly");
    w.peer_sends(A, a_in_dialog("INVITE", n, &tag, "call-h", &recvonly));
    let answer = w.take(A).pop().unwrap();
    assert!(body(&answer).contains("a=sendonly"), "{}", body(&answer));
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
}

#[test]
fn an_offer_without_g711_gets_488_and_the_answer_keeps_the_phones_codec_order() {
    let mut w = World::new();
    let opus_only = sdp_a()
        .replace("RTP/AVP 0 101", "RTP/AVP 96 101")
        .replace("a=rtpmap:101", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101");
    w.peer_sends(A, invite_from_a_with("call-c1", &opus_only));
    let sent = w.take(A);
    assert_eq!(kinds(&sent), vec!["100", "488"]);
    let warning = sent[1].header(&HeaderName::from_wire("Warning")).unwrap();
    assert!(warning.contains("codec"), "{warning}");
    assert!(w.take(B).is_empty());
    assert_eq!(w.b2b.dialog_count(), 0);
    // Not SDP at all: 488 too.
    w.peer_sends(A, invite_from_a_with("call-c2", "hello"));
    assert_eq!(kinds(&w.take(A)), vec!["100", "488"]);
    // A phone preferring A-law gets A-law and its telephone-event type.
    let alaw_first = sdp_a()
        .replace("RTP/AVP 0 101", "RTP/AVP 8 0 96")
        .replace("a=rtpmap:101", "a=rtpmap:96");
    w.peer_sends(A, invite_from_a_with("call-c3", &alaw_first));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    let ok = w.take(A).pop().unwrap();
    assert!(body(&ok).contains("m=audio 2"), "{}", body(&ok));
    assert!(body(&ok).contains(" RTP/AVP 8 96\r\n"), "{}", body(&ok));
    let a = *remotes(&w, true).last().unwrap();
    assert_eq!(a.codec, tapir_media::Codec::Pcma);
    assert_eq!(a.telephone_event_pt, Some(96));
}

#[test]
fn an_offerless_invite_gets_tapirs_offer_and_the_answer_in_the_ack_reaches_the_media_plane() {
    let mut w = World::new();
    w.peer_sends(A, invite_from_a_with("call-o1", ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    let ok = w.take(A).pop().unwrap();
    let offer = body(&ok);
    assert!(
        offer.contains("RTP/AVP 0 8 101") && offer.contains("a=sendrecv"),
        "{offer}"
    );
    assert!(remotes(&w, true).is_empty(), "no answer yet");
    let answer = sdp_a().replace("m=audio 4000", "m=audio 4010");
    w.peer_sends(A, a_in_dialog("ACK", 1, &to_tag(&ok), "call-o1", &answer));
    let a = remotes(&w, true);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].remote, Some("127.0.0.1:4010".parse().unwrap()));
    assert_eq!(a[0].codec, tapir_media::Codec::Pcmu);
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
}

#[test]
fn a_call_secured_while_ringing_is_re_offered_srtp_once_answered() {
    let mut w = World::over(SipTransport::Tls);
    let app = w.owner_app("1001");
    w.peer_sends(A, invite_from_a("call-s8"));
    let invite_b = w.take(B).pop().unwrap();
    assert!(body(&invite_b).contains("RTP/SAVP"));
    w.peer_sends(B, responds(&invite_b, 180, "b1", B, ""));
    // The app secures the ringing call: nothing can be re-offered yet.
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    assert_eq!(kinds(&w.take(A)), vec!["100", "180"]);
    assert!(w.take(B).is_empty());
    w.peer_sends(
        B,
        responds(&invite_b, 200, "b1", B, &sdp_b_secure("sendrecv")),
    );
    let ok = w.take(A).pop().unwrap();
    assert_eq!(ok.status_code(), Some(200));
    assert!(!body(&ok).contains("a=crypto"), "A offered plain RTP");
    // A's ACK confirms its leg: tapir re-offers it SRTP at once.
    w.peer_sends(A, a_in_dialog("ACK", 1, &to_tag(&ok), "call-s8", ""));
    let reinvite = w.take(A).pop().expect("re-INVITE to A");
    assert_eq!(reinvite.method().unwrap().to_string(), "INVITE");
    let key_to_a = crypto_key(&body(&reinvite));
    w.peer_sends(A, responds(&reinvite, 200, "a1", A, &sdp_a_secure()));
    let a = remotes(&w, true)
        .last()
        .unwrap()
        .srtp
        .expect("A's leg secured");
    assert_eq!((a.local, a.remote), (key_to_a, decode(KEY_A)));
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
}

#[test]
fn a_phone_refusing_srtp_on_a_call_secured_while_ringing_is_not_invited_again_with_rtp() {
    let mut w = World::over(SipTransport::Tls);
    let app = w.owner_app("1001");
    w.peer_sends(A, invite_from_a("call-s9"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, responds(&invite_b, 180, "b1", B, ""));
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    // 1002 cannot do SRTP: the secured call does not fall back to RTP.
    w.peer_sends(B, responds(&invite_b, 488, "b1", B, ""));
    assert_eq!(kinds(&w.take(B)), vec!["ACK"]);
    assert!(w.states("1002").is_empty());
}
