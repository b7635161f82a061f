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
            .map(|addr| ContactTarget {
                addr: *addr,
                transport: SipTransport::Udp,
            })
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
        [("1001", A), ("1002", B), ("1003", "127.0.0.1:5003")]
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
