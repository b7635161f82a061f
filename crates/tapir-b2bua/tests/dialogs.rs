//! Dialog security of the B2BUA (issue 12): the identifiers tapir makes
//! cannot be guessed, in-dialog requests must name the dialog by Call-ID and
//! both tags (RFC 3261 §12.2.2) and come from its peer, Replaces names the
//! replaced dialog the same way (RFC 3891 §3), and a dialog whose
//! transaction timed out is ended.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use support::{A, B, TAPIR, World, sdp, to_tag};
use tapir_b2bua::{Config, ContactTarget, Directory, SipTransport};
use tapir_core::{CallStateKind, LineConfig, Switch};
use tapir_sip::msg::{HeaderName, Message};

/// Phone 1003.
const C: &str = "127.0.0.1:5003";
/// A stranger who can reach tapir's SIP port.
const EVE: &str = "127.0.0.1:6666";

/// Phones 1001, 1002 and 1003 at A, B and C; a request is admitted for the
/// user in its From unless it is 1009, who gets a challenge.
struct Phones(HashMap<String, SocketAddr>);

impl Directory for Phones {
    fn register(
        &mut self,
        _now: Instant,
        request: &Message,
        _source: SocketAddr,
        _transport: SipTransport,
    ) -> Message {
        request.response_builder(200, None, Some("reg")).build()
    }
    fn admit(
        &mut self,
        _now: Instant,
        request: &Message,
        _source: SocketAddr,
    ) -> Result<String, Box<Message>> {
        let from = request.from_header().unwrap().unwrap();
        match &from.uri {
            tapir_sip::msg::Uri::Sip(s) if s.user != Some("1009") => {
                Ok(s.user.unwrap().to_string())
            }
            _ => Err(Box::new(
                request
                    .response_builder(407, None, Some("challenge"))
                    .header(
                        HeaderName::ProxyAuthenticate,
                        "Digest realm=\"t\", nonce=\"n\"",
                    )
                    .build(),
            )),
        }
    }
    fn contacts(&self, _now: Instant, address: &str) -> Vec<ContactTarget> {
        self.0
            .get(address)
            .map(|addr| ContactTarget::direct(*addr, SipTransport::Udp))
            .into_iter()
            .collect()
    }
}

fn world() -> World {
    let mut switch = Switch::default();
    for a in ["1001", "1002", "1003", "1009"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    let dir = Phones(
        [("1001", A), ("1002", B), ("1003", C)]
            .into_iter()
            .map(|(a, s)| (a.to_string(), s.parse().unwrap()))
            .collect(),
    );
    World::assemble(
        Config::new(TAPIR.parse().unwrap(), "127.0.0.1"),
        dir,
        switch,
        SipTransport::Udp,
    )
}

/// An INVITE from `user` at `peer` to `to`, with extra header lines.
fn invite(peer: &str, user: &str, to: &str, call_id: &str, extra: &str) -> String {
    let body = sdp(4000);
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {peer};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=a1
To: <sip:{to}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:{user}@{peer}>
{extra}Content-Type: application/sdp
Content-Length: {len}

{body}",
        len = body.len()
    )
}

/// A response from the phone at B to tapir's request, with tag `b1`.
fn b_responds(req: &Message, code: u16) -> String {
    let mut r = req.response_builder(code, None, Some("b1"));
    r = r.header(HeaderName::Contact, format!("<sip:1002@{B}>"));
    if code == 200 {
        r = r.body("application/sdp", Bytes::from(sdp(4002)));
    }
    String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
}

/// An in-dialog request from `peer` with these From/To tags and Call-ID.
fn request(
    peer: &str,
    method: &str,
    n: u32,
    (from_tag, to_tag, call_id): (&str, &str, &str),
    extra: &str,
    body: &str,
) -> String {
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\n".into()
    };
    format!(
        "{method} sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {peer};branch=z9hG4bK{n}{method}{from_tag};rport
Max-Forwards: 70
From: <sip:x@127.0.0.1>;tag={from_tag}
To: <sip:y@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {n} {method}
Contact: <sip:x@{peer}>
{extra}{ctype}Content-Length: {len}

{body}",
        len = body.len()
    )
}

/// 1001 (A) calls 1002 (B), who answers; both ACKs are in. Returns tapir's
/// 200 to A and tapir's INVITE to B.
fn connected(w: &mut World, call_id: &str) -> (Message, Message) {
    w.peer_sends(A, invite(A, "1001", "1002", call_id, ""));
    let invite_b = w.take(B).pop().expect("tapir invites 1002");
    w.peer_sends(B, b_responds(&invite_b, 200));
    assert_eq!(w.kinds(B), vec!["ACK"]);
    let ok = w.take(A).into_iter().find(|m| m.status_code() == Some(200));
    let ok = ok.expect("200 to A");
    let tag = to_tag(&ok);
    w.peer_sends(A, request(A, "ACK", 1, ("a1", &tag, call_id), "", ""));
    assert!(w.states("1001").contains(&CallStateKind::Connected));
    (ok, invite_b)
}

/// The random part of an identifier tapir made: hex after `prefix`.
fn random_part<'a>(value: &'a str, prefix: &str) -> &'a str {
    let rest = value
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{value}"));
    rest.split('@').next().unwrap()
}

fn assert_128_bits(what: &str, hex: &str) {
    assert!(
        hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{what} {hex:?} must carry 128 random bits in hex"
    );
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[test]
fn call_ids_tags_and_branches_tapir_makes_carry_128_random_bits() {
    let mut w = world();
    let (ok1, invite1) = connected(&mut w, "call-1");
    let (ok2, invite2) = connected(&mut w, "call-2");
    let mut call_ids = Vec::new();
    for (ok, inv) in [(&ok1, &invite1), (&ok2, &invite2)] {
        let call_id = inv.call_id().unwrap().unwrap().to_string();
        assert_128_bits("Call-ID", random_part(&call_id, ""));
        let from_tag = inv
            .from_header()
            .unwrap()
            .unwrap()
            .tag()
            .unwrap()
            .to_string();
        assert_128_bits("From tag", random_part(&from_tag, "tp"));
        assert_128_bits("To tag", random_part(&to_tag(ok), "tp"));
        let branch = inv
            .top_via()
            .unwrap()
            .unwrap()
            .branch()
            .unwrap()
            .to_string();
        assert_128_bits("branch", random_part(&branch, "z9hG4bK"));
        call_ids.push(call_id);
    }
    // Nothing about one call's Call-ID tells another's.
    assert!(
        common_prefix(&call_ids[0], &call_ids[1]) < 8,
        "{call_ids:?} share a prefix"
    );
    let ids = [&ok1, &ok2].map(to_tag);
    assert!(common_prefix(&ids[0], &ids[1]) < 10, "{ids:?}");
    // A BYE tapir sends has a fresh branch too.
    let tag = to_tag(&ok1);
    w.peer_sends(A, request(A, "BYE", 2, ("a1", &tag, "call-1"), "", ""));
    let bye = w.take(B).pop().expect("BYE to B");
    let branch = bye
        .top_via()
        .unwrap()
        .unwrap()
        .branch()
        .unwrap()
        .to_string();
    assert_128_bits("branch", random_part(&branch, "z9hG4bK"));
}
#[test]
fn in_dialog_requests_must_name_the_call_id_and_both_tags() {
    let mut w = world();
    let (ok, invite_b) = connected(&mut w, "call-t");
    let tapir_a = to_tag(&ok);
    let tapir_b = invite_b
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    // A leg that called tapir: tapir's tag is in To, the phone's in From.
    // Wrong peer tag, wrong tapir tag, tapir's tag of the other leg, the
    // tags swapped: 481, and nothing changes.
    for (n, tags) in [
        ("x1", tapir_a.as_str()),
        ("a1", "tpnot-tapirs"),
        ("a1", tapir_b.as_str()),
        (tapir_a.as_str(), "a1"),
    ]
    .into_iter()
    .enumerate()
    {
        let n = n as u32 + 2;
        w.peer_sends(A, request(A, "BYE", n, (tags.0, tags.1, "call-t"), "", ""));
        assert_eq!(
            w.kinds(A),
            vec!["481"],
            "BYE with From tag {} To tag {}",
            tags.0,
            tags.1
        );
        let reinvite = request(
            A,
            "INVITE",
            n + 10,
            (tags.0, tags.1, "call-t"),
            "",
            &sdp(6000),
        );
        w.peer_sends(A, reinvite);
        assert_eq!(w.kinds(A), vec!["100", "481"]);
    }
    assert!(w.take(B).is_empty(), "the far end heard nothing");
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // A leg tapir called: tapir's tag is in To of the phone's requests, the
    // phone's own (b1) in From. The INVITE's orientation (tapir's tag in
    // From) names nothing.
    let call_b = invite_b.call_id().unwrap().unwrap().to_string();
    w.peer_sends(B, request(B, "BYE", 2, (&tapir_b, "b1", &call_b), "", ""));
    assert_eq!(w.kinds(B), vec!["481"]);
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    w.peer_sends(B, request(B, "BYE", 3, ("b1", &tapir_b, &call_b), "", ""));
    assert_eq!(w.kinds(B), vec!["200"]);
    assert!(
        w.take(A)
            .iter()
            .any(|m| m.method().is_some_and(|m| m.as_str() == "BYE"))
    );
}

#[test]
fn a_cancel_must_name_the_invites_transaction_and_come_from_its_caller() {
    let mut w = world();
    w.peer_sends(A, invite(A, "1001", "1002", "call-c", ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180));
    w.take(A);
    // A CANCEL names the INVITE's transaction (branch and sent-by): another
    // branch, or the same branch from a stranger, matches nothing.
    let cancel = |peer: &str, branch: &str| {
        format!(
            "CANCEL sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {peer};branch={branch};rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>
Call-ID: call-c
CSeq: 1 CANCEL
Content-Length: 0

"
        )
    };
    w.peer_sends(A, cancel(A, "z9hG4bK-other"));
    assert_eq!(w.kinds(A), vec!["481"]);
    w.peer_sends(EVE, cancel(EVE, "z9hG4bK-call-c"));
    assert_eq!(w.kinds(EVE), vec!["481"]);
    assert!(w.take(B).is_empty(), "1002 still rings");
    w.peer_sends(A, cancel(A, "z9hG4bK-call-c"));
    assert_eq!(w.kinds(A), vec!["200", "487"]);
    assert!(w.kinds(B).contains(&"CANCEL".to_string()));
}

/// An INVITE from 1003 (C) replacing a dialog.
fn replacing(user: &str, call_id: &str, replaces: &str) -> String {
    invite(C, user, "1002", call_id, &format!("Replaces: {replaces}\n"))
}

#[test]
fn replaces_must_name_the_call_id_with_tapirs_tag_as_to_tag_and_the_peers_as_from_tag() {
    let mut w = world();
    let (ok, invite_b) = connected(&mut w, "call-v");
    let tapir_a = to_tag(&ok);
    let tapir_b = invite_b
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let call_b = invite_b.call_id().unwrap().unwrap().to_string();
    // Wrong tags, missing tags, the tags the wrong way round, the other
    // leg's tags: 481 and the victim's call is untouched.
    for (n, replaces) in [
        format!("{call_b};to-tag=WRONG;from-tag=WRONG"),
        call_b.clone(),
        format!("{call_b};to-tag=b1;from-tag={tapir_b}"),
        format!("{call_b};to-tag={tapir_a};from-tag=a1"),
        format!("call-v;to-tag={tapir_b};from-tag=b1"),
    ]
    .into_iter()
    .enumerate()
    {
        w.peer_sends(C, replacing("1003", &format!("call-x{n}"), &replaces));
        assert_eq!(w.kinds(C), vec!["100", "481"], "Replaces: {replaces}");
    }
    assert!(w.take(A).is_empty() && w.take(B).is_empty());
    assert!(w.states("1001").contains(&CallStateKind::Connected));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // The right tags: 1003 takes 1002's place.
    w.peer_sends(
        C,
        replacing(
            "1003",
            "call-ok",
            &format!("{call_b};to-tag={tapir_b};from-tag=b1"),
        ),
    );
    let to_c = w.kinds(C);
    assert_eq!(to_c.last().map(String::as_str), Some("200"), "{to_c:?}");
    assert!(w.kinds(B).contains(&"BYE".to_string()));
}

#[test]
fn an_unauthenticated_invite_with_replaces_is_challenged_before_any_lookup() {
    let mut w = world();
    let (ok, _invite_b) = connected(&mut w, "call-u");
    let tapir_a = to_tag(&ok);
    // Unknown dialog and a real one: the same challenge, so a stranger
    // learns nothing about which calls exist.
    for (call_id, replaces) in [
        ("call-u1", "no-such-call;to-tag=x;from-tag=y".to_string()),
        ("call-u2", format!("call-u;to-tag={tapir_a};from-tag=a1")),
    ] {
        w.peer_sends(C, replacing("1009", call_id, &replaces));
        assert_eq!(w.kinds(C), vec!["100", "407"], "Replaces: {replaces}");
    }
    assert!(w.states("1001").contains(&CallStateKind::Connected));
}

/// A REFER from A on its dialog with tapir, with this Refer-To.
fn refer(tapir_a: &str, call_id: &str, n: u32, refer_to: &str) -> String {
    request(
        A,
        "REFER",
        n,
        ("a1", tapir_a, call_id),
        &format!("Refer-To: {refer_to}\n"),
        "",
    )
}

/// 1001 in a call with 1002 (`call-r`) and a consultation call with 1003
/// (`call-r2`): tapir's tags on A's two dialogs.
fn consulting(w: &mut World) -> (String, String) {
    let (ok, _invite_b) = connected(w, "call-r");
    w.peer_sends(A, invite(A, "1001", "1003", "call-r2", ""));
    let invite_c = w.take(C).pop().unwrap();
    let answer = {
        let mut r = invite_c.response_builder(200, None, Some("c1"));
        r = r.header(HeaderName::Contact, format!("<sip:1003@{C}>"));
        r = r.body("application/sdp", Bytes::from(sdp(4004)));
        String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
    };
    w.peer_sends(C, answer);
    let ok2 = w
        .take(A)
        .into_iter()
        .find(|m| m.status_code() == Some(200))
        .unwrap();
    let tapir_a2 = to_tag(&ok2);
    w.peer_sends(
        A,
        request(A, "ACK", 1, ("a1", &tapir_a2, "call-r2"), "", ""),
    );
    w.take(B);
    w.take(C);
    (to_tag(&ok), tapir_a2)
}

/// The Call-IDs of the BYEs tapir sent A.
fn byes_to_a(w: &mut World) -> Vec<String> {
    w.take(A)
        .iter()
        .filter(|m| m.method().is_some_and(|m| m.as_str() == "BYE"))
        .map(|m| m.call_id().unwrap().unwrap().to_string())
        .collect()
}

#[test]
fn a_refers_replaces_names_a_dialog_by_call_id_and_both_tags() {
    // The right tags (tapir's as to-tag): the consultation is replaced,
    // 1002 and 1003 talk, and tapir ends both of A's dialogs.
    let mut w = world();
    let (tapir_a, tapir_a2) = consulting(&mut w);
    let right =
        format!("<sip:1003@127.0.0.1?Replaces=call-r2%3Bto-tag%3D{tapir_a2}%3Bfrom-tag%3Da1>");
    w.peer_sends(A, refer(&tapir_a, "call-r", 2, &right));
    assert!(byes_to_a(&mut w).contains(&"call-r2".to_string()));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    assert!(w.states("1003").contains(&CallStateKind::Connected));
    // The tags the wrong way round, or another dialog's: nothing is
    // replaced (what is left is a transfer to the Refer-To's user).
    for wrong in [
        format!("call-r2%3Bto-tag%3Da1%3Bfrom-tag%3D{tapir_a2}"),
        format!("call-r2%3Bto-tag%3D{tapir_a}%3Bfrom-tag%3Da1"),
        "call-r2".to_string(),
    ] {
        let mut w = world();
        let (tapir_a, _) = consulting(&mut w);
        let refer_to = format!("<sip:1003@127.0.0.1?Replaces={wrong}>");
        w.peer_sends(A, refer(&tapir_a, "call-r", 2, &refer_to));
        assert!(
            !byes_to_a(&mut w).contains(&"call-r2".to_string()),
            "Replaces={wrong} replaced the consultation"
        );
    }
}

#[test]
fn in_dialog_requests_from_outside_the_dialogs_peer_and_route_are_refused() {
    let mut w = world();
    let (ok, _invite_b) = connected(&mut w, "call-s");
    let tapir_a = to_tag(&ok);
    let tags = ("a1", tapir_a.as_str(), "call-s");
    // The right tags from a stranger's address: 403, nothing changes. A
    // re-INVITE does not move the media nor the remote target.
    w.peer_sends(EVE, request(EVE, "BYE", 2, tags, "", ""));
    assert_eq!(w.kinds(EVE), vec!["403"]);
    let media = w.media.len();
    w.peer_sends(EVE, request(EVE, "INVITE", 3, tags, "", &sdp(6666)));
    assert_eq!(w.kinds(EVE), vec!["100", "403"]);
    assert_eq!(w.media.len(), media, "the media plane heard nothing");
    w.peer_sends(
        EVE,
        request(
            EVE,
            "REFER",
            4,
            tags,
            "Refer-To: <sip:1003@127.0.0.1>\n",
            "",
        ),
    );
    assert_eq!(w.kinds(EVE), vec!["403"]);
    assert!(w.take(C).is_empty(), "no transfer");
    assert!(w.states("1001").contains(&CallStateKind::Connected));
    // Its peer may: a BYE from A ends the call, sent to A's own Contact.
    w.peer_sends(A, request(A, "BYE", 5, tags, "", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
}

#[test]
fn in_dialog_requests_may_come_over_the_dialogs_route_set() {
    let mut w = world();
    const PROXY: &str = "127.0.0.1:5099";
    // A's INVITE came through a record-routing proxy (it arrives from A's
    // address in this rig; the proxy's address is in its Record-Route).
    let invite = invite(
        A,
        "1001",
        "1002",
        "call-p",
        &format!("Record-Route: <sip:{PROXY};lr>\n"),
    );
    w.peer_sends(A, invite);
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200));
    let ok = w
        .take(A)
        .into_iter()
        .find(|m| m.status_code() == Some(200))
        .unwrap();
    let tapir_a = to_tag(&ok);
    w.peer_sends(
        PROXY,
        request(PROXY, "BYE", 2, ("a1", &tapir_a, "call-p"), "", ""),
    );
    assert_eq!(w.kinds(PROXY), vec!["200"]);
}

#[test]
fn only_an_accepted_target_refresh_moves_the_remote_target() {
    let mut w = world();
    let (ok, invite_b) = connected(&mut w, "call-m");
    let tapir_a = to_tag(&ok);
    let tags = ("a1", tapir_a.as_str(), "call-m");
    let contact = |port: u16| format!("Contact: <sip:1001@127.0.0.1:{port}>\n");
    // A re-INVITE with another Contact: the new target.
    let reinvite = request(A, "INVITE", 2, tags, "", &sdp(4000))
        .replace(&format!("Contact: <sip:x@{A}>\n"), &contact(7778));
    w.peer_sends(A, reinvite);
    assert_eq!(w.kinds(A), vec!["100", "200"]);
    // An OPTIONS with another Contact: not a target refresh.
    let options = request(A, "OPTIONS", 3, tags, "", "")
        .replace(&format!("Contact: <sip:x@{A}>\n"), &contact(7777));
    w.peer_sends(A, options);
    assert_eq!(w.kinds(A), vec!["200"]);
    // 1002 hangs up: tapir's BYE to A goes to the refreshed target.
    let tapir_b = invite_b
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let call_b = invite_b.call_id().unwrap().unwrap().to_string();
    w.peer_sends(B, request(B, "BYE", 2, ("b1", &tapir_b, &call_b), "", ""));
    let bye = w
        .take(A)
        .into_iter()
        .find(|m| m.method().is_some_and(|m| m.as_str() == "BYE"))
        .unwrap();
    let tapir_sip::msg::StartLine::Request { uri, .. } = bye.start_line() else {
        panic!("a request");
    };
    assert_eq!(uri.as_str(), "sip:1001@127.0.0.1:7778");
}

fn is_request(m: &Message, method: &str) -> bool {
    m.method().is_some_and(|m| m.as_str() == method)
}

#[test]
fn a_2xx_never_acknowledged_ends_the_call_with_a_bye_after_64_t1() {
    let mut w = world();
    w.peer_sends(A, invite(A, "1001", "1002", "call-n", ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200));
    assert!(w.take(A).iter().any(|m| m.status_code() == Some(200)));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // 1001 never ACKs. Just before 64×T1 nothing happens…
    w.advance(31_000);
    assert!(!w.take(A).iter().any(|m| is_request(m, "BYE")));
    // …then tapir hangs up on it, and 1002 is released too.
    w.advance(2_000);
    assert!(
        w.take(A).iter().any(|m| is_request(m, "BYE")),
        "BYE to the silent caller"
    );
    let to_b = w.take(B);
    let bye = to_b
        .iter()
        .find(|m| is_request(m, "BYE"))
        .expect("BYE to 1002");
    w.peer_sends(B, b_responds(bye, 200));
    assert!(w.states("1001").is_empty() && w.states("1002").is_empty());
    w.advance(40_000);
    assert_eq!(w.b2b.dialog_count(), 0, "every dialog is forgotten");
}

#[test]
fn a_2xx_over_udp_is_resent_until_its_ack_arrives() {
    let mut w = world();
    w.peer_sends(A, invite(A, "1001", "1002", "call-rt", ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200));
    let oks = |w: &mut World| {
        w.take(A)
            .into_iter()
            .filter(|m| m.status_code() == Some(200))
            .collect::<Vec<_>>()
    };
    let first = oks(&mut w);
    assert_eq!(first.len(), 1);
    // The 200 was lost: tapir sends it again after T1, then 2·T1 later
    // (RFC 3261 §13.3.1.4), the same answer each time.
    w.advance(600);
    let again = oks(&mut w);
    assert_eq!(again.len(), 1, "resent after T1");
    assert_eq!(again[0].to_bytes(), first[0].to_bytes());
    w.advance(1_000);
    assert_eq!(oks(&mut w).len(), 1, "resent after 2·T1");
    let tag = to_tag(&first[0]);
    w.peer_sends(A, request(A, "ACK", 1, ("a1", &tag, "call-rt"), "", ""));
    w.advance(20_000);
    assert!(oks(&mut w).is_empty(), "no more once the ACK came");
    assert!(w.states("1002").contains(&CallStateKind::Connected));
}

#[test]
fn an_acknowledged_2xx_keeps_the_call() {
    let mut w = world();
    connected(&mut w, "call-k");
    w.advance(40_000);
    assert!(!w.take(A).iter().any(|m| is_request(m, "BYE")));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
}

#[test]
fn an_early_dialog_whose_cancel_gets_no_487_ends_with_its_invite_and_refuses_refer() {
    let mut w = world();
    w.peer_sends(A, invite(A, "1001", "1002", "call-e", ""));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180));
    let tapir_b = invite_b
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let call_b = invite_b.call_id().unwrap().unwrap().to_string();
    // 1001 gives up: tapir CANCELs; 1002 answers the CANCEL, never the INVITE.
    w.peer_sends(
        A,
        format!(
            "CANCEL sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bK-call-e;rport
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>
Call-ID: call-e
CSeq: 1 CANCEL
Content-Length: 0

"
        ),
    );
    let cancel = w
        .take(B)
        .into_iter()
        .find(|m| is_request(m, "CANCEL"))
        .unwrap();
    w.peer_sends(B, b_responds(&cancel, 200));
    // The early dialog is gone for requests at once.
    let refer = request(
        B,
        "REFER",
        2,
        ("b1", &tapir_b, &call_b),
        "Refer-To: <sip:1003@127.0.0.1>\n",
        "",
    );
    w.peer_sends(B, refer);
    assert_eq!(w.kinds(B), vec!["481"]);
    // After 64×T1 without a 487 the INVITE is given up: nothing is left.
    w.advance(40_000);
    assert_eq!(w.b2b.dialog_count(), 0, "the early dialog is forgotten");
    assert!(w.take(C).is_empty(), "no transfer");
}

#[test]
fn an_older_or_replayed_cseq_gets_500_and_the_call_stays_up() {
    let mut w = world();
    let (ok, invite_b) = connected(&mut w, "call-q");
    let tapir_a = to_tag(&ok);
    let tags = ("a1", tapir_a.as_str(), "call-q");
    // A re-INVITE with CSeq 5 moves A's media to port 6000.
    w.peer_sends(A, request(A, "INVITE", 5, tags, "", &sdp(6000)));
    assert_eq!(w.kinds(A), vec!["100", "200"]);
    w.peer_sends(A, request(A, "ACK", 5, tags, "", ""));
    let media = w.media.len();
    // The same re-INVITE replayed (a new transaction with the old CSeq)
    // and an older BYE: 500, and nothing happens.
    let replay =
        request(A, "INVITE", 5, tags, "", &sdp(6666)).replace("branch=", "branch=z9hG4bKreplay");
    w.peer_sends(A, replay);
    assert_eq!(w.kinds(A), vec!["100", "500"]);
    assert_eq!(w.media.len(), media, "the media plane heard nothing");
    w.peer_sends(A, request(A, "BYE", 4, tags, "", ""));
    assert_eq!(w.kinds(A), vec!["500"]);
    w.peer_sends(A, request(A, "BYE", 5, tags, "", ""));
    assert_eq!(w.kinds(A), vec!["500"]);
    assert!(w.take(B).is_empty(), "the far end heard nothing");
    assert!(w.states("1001").contains(&CallStateKind::Connected));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // On the leg tapir called, the phone's first request sets the mark.
    let tapir_b = invite_b
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string();
    let call_b = invite_b.call_id().unwrap().unwrap().to_string();
    let tags_b = ("b1", tapir_b.as_str(), call_b.as_str());
    w.peer_sends(B, request(B, "OPTIONS", 7, tags_b, "", ""));
    assert_eq!(w.kinds(B), vec!["200"]);
    w.peer_sends(B, request(B, "BYE", 6, tags_b, "", ""));
    assert_eq!(w.kinds(B), vec!["500"]);
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // The next CSeq works: A hangs up.
    w.peer_sends(A, request(A, "BYE", 6, tags, "", ""));
    assert_eq!(w.kinds(A), vec!["200"]);
    assert!(w.kinds(B).contains(&"BYE".to_string()));
}

#[test]
fn tapirs_own_requests_in_a_dialog_count_up() {
    let mut w = world();
    let (ok, invite_b) = connected(&mut w, "call-w");
    let tapir_a = to_tag(&ok);
    let initial = invite_b.cseq().unwrap().unwrap().number;
    // Hold and retrieve by an app: two re-INVITEs to B, then a BYE.
    let tags = ("a1", tapir_a.as_str(), "call-w");
    w.peer_sends(
        A,
        request(
            A,
            "INVITE",
            2,
            tags,
            "",
            &sdp(4000).replace("sendrecv", "sendonly"),
        ),
    );
    w.take(A);
    let mut numbers = Vec::new();
    for m in w.take(B) {
        if m.method().is_some_and(|m| m.as_str() == "INVITE") {
            numbers.push(m.cseq().unwrap().unwrap().number);
            w.peer_sends(B, b_responds(&m, 200));
        }
    }
    w.peer_sends(A, request(A, "BYE", 3, tags, "", ""));
    for m in w.take(B) {
        if m.method().is_some_and(|m| m.as_str() == "BYE") {
            numbers.push(m.cseq().unwrap().unwrap().number);
        }
    }
    assert!(!numbers.is_empty());
    let mut expected = initial;
    for n in &numbers {
        expected += 1;
        assert_eq!(*n, expected, "CSeqs {numbers:?} after {initial}");
    }
}
