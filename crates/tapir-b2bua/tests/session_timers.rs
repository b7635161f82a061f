//! RFC 4028 session timers in the B2BUA and the real switch, driven with
//! SIP text as two phones would send it, in simulated time: `422` for too
//! short an interval, the refresher each side gets, a refresh received
//! (UPDATE) that keeps the call, refreshes tapir sends (UPDATE, re-INVITE),
//! and the BYE and release when a session expires or a refresh finds the
//! phone gone.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use support::{A, B, Phones, TAPIR, World, kinds, sdp, to_tag};
use tapir_b2bua::{Config, SipTransport};
use tapir_core::{CallStateKind, LineConfig, Switch};
use tapir_sip::msg::{HeaderName, Message};

/// Phones 1001 (A) and 1002 (B) with tapir's default session timers
/// (1800 s, Min-SE 90 s).
fn world() -> World {
    let mut switch = Switch::default();
    for a in ["1001", "1002"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    let dir = Phones::new(&[("1001", A), ("1002", B)], SipTransport::Udp);
    let cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    World::assemble(cfg, dir, switch, SipTransport::Udp)
}

/// A's INVITE to 1002 with extra header lines `extra`.
fn invite_from_a(call_id: &str, extra: &str) -> String {
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
{extra}Content-Type: application/sdp
Content-Length: {len}

{body}",
        len = body.len(),
    )
}

/// B's response to tapir's request, with extra headers.
fn b_responds(req: &Message, code: u16, with_sdp: bool, extra: &[(&str, &str)]) -> String {
    let mut r = req.response_builder(code, None, Some("b1"));
    r = r.header(HeaderName::Contact, format!("<sip:1002@{B}>"));
    for (name, value) in extra {
        r = r.header(HeaderName::from_wire(name), value.to_string());
    }
    if with_sdp {
        let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=sendrecv\r\n";
        r = r.body("application/sdp", Bytes::from(sdp));
    }
    String::from_utf8(r.build().to_bytes().to_vec())
        .unwrap()
        .replace("\r\n", "\n")
}

/// A's in-dialog request (CSeq `n`) with extra header lines.
fn a_in_dialog(method: &str, n: u32, tag: &str, call_id: &str, extra: &str) -> String {
    let dialog = format!(
        "From: <sip:1001@127.0.0.1>;tag=a1\nTo: <sip:1002@127.0.0.1>;tag={tag}\nCall-ID: {call_id}\n{extra}"
    );
    support::in_dialog_from_a(method, n, dialog.trim_end(), "")
}

fn header(m: &Message, name: HeaderName) -> Option<String> {
    m.header(&name).map(str::to_string)
}

/// A calls B with `extra` in its INVITE; B answers with `b_extra`; A ACKs.
/// Returns tapir's 200 to A and its INVITE to B.
fn connected(
    w: &mut World,
    call_id: &str,
    extra: &str,
    b_extra: &[(&str, &str)],
) -> (Message, Message) {
    w.peer_sends(A, invite_from_a(call_id, extra));
    assert_eq!(w.kinds(A), vec!["100"]);
    let invite_b = w.take(B).pop().expect("tapir invites 1002");
    w.peer_sends(B, b_responds(&invite_b, 200, true, b_extra));
    assert_eq!(w.kinds(B), vec!["ACK"]);
    let ok = w.take(A).pop().expect("200 to A");
    assert_eq!(ok.status_code(), Some(200));
    w.peer_sends(A, a_in_dialog("ACK", 1, &to_tag(&ok), call_id, ""));
    for address in ["1001", "1002"] {
        let states = w.states(address);
        assert!(
            !states.is_empty() && states.iter().all(|s| *s == CallStateKind::Connected),
            "{address}: {states:?}"
        );
    }
    (ok, invite_b)
}

#[test]
fn an_invite_asking_for_too_short_an_interval_gets_422_with_min_se() {
    let mut w = world();
    w.peer_sends(
        A,
        invite_from_a("st-422", "Supported: timer\nSession-Expires: 60\n"),
    );
    let sent = w.take(A);
    let refusal = sent.iter().find(|m| m.status_code() == Some(422));
    let refusal = refusal.unwrap_or_else(|| panic!("{:?}", kinds(&sent)));
    assert_eq!(header(refusal, HeaderName::MinSe).as_deref(), Some("90"));
    assert!(w.states("1001").is_empty(), "no call for a refused INVITE");
    assert!(w.take(B).is_empty());
    // Asked again with the Min-SE, the call goes through.
    w.peer_sends(
        A,
        invite_from_a(
            "st-422b",
            "Supported: timer\nSession-Expires: 90\nMin-SE: 90\n",
        ),
    );
    assert_eq!(w.kinds(A), vec!["100"]);
    assert_eq!(w.take(B).len(), 1, "1002 is invited");
}

#[test]
fn the_refresher_is_the_phone_that_supports_timers_else_tapir() {
    let mut w = world();
    // A supports timers and leaves the choice to tapir: A refreshes.
    let (ok, invite_b) = connected(
        &mut w,
        "st-neg-1",
        "Supported: timer\nSession-Expires: 1200\n",
        &[],
    );
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("1200;refresher=uac")
    );
    assert_eq!(header(&ok, HeaderName::Require).as_deref(), Some("timer"));
    // tapir's own INVITE asks for timers.
    assert_eq!(
        header(&invite_b, HeaderName::Supported).as_deref(),
        Some("timer")
    );
    assert_eq!(
        header(&invite_b, HeaderName::SessionExpires).as_deref(),
        Some("1800")
    );
    assert_eq!(header(&invite_b, HeaderName::MinSe).as_deref(), Some("90"));

    // A without timers: tapir refreshes (refresher=uas), no Require.
    let (ok, _) = connected(&mut w, "st-neg-2", "", &[]);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uas")
    );
    assert_eq!(header(&ok, HeaderName::Require), None);

    // A asks tapir to refresh explicitly.
    let (ok, _) = connected(
        &mut w,
        "st-neg-3",
        "Supported: timer\nSession-Expires: 600;refresher=uas\n",
        &[],
    );
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("600;refresher=uas")
    );
}

#[test]
fn a_refresh_received_keeps_the_call_and_a_missing_one_ends_it() {
    let mut w = world();
    // A refreshes every 120 s at most; B's 200 makes B the refresher of
    // its leg with a long interval, out of the way.
    let (ok, _) = connected(
        &mut w,
        "st-rx",
        "Supported: timer\nSession-Expires: 120;refresher=uac\n",
        &[
            ("Supported", "timer"),
            ("Session-Expires", "3600;refresher=uas"),
        ],
    );
    let tag = to_tag(&ok);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    // A refreshes with an UPDATE at 60 s and 120 s: the call lives on
    // past twice the interval.
    for n in 2..=3 {
        w.advance(60_000);
        w.peer_sends(
            A,
            a_in_dialog(
                "UPDATE",
                n,
                &tag,
                "st-rx",
                "Supported: timer\nSession-Expires: 120;refresher=uac\n",
            ),
        );
        let sent = w.take(A);
        let r = sent.iter().find(|m| m.status_code() == Some(200));
        let r = r.unwrap_or_else(|| panic!("{:?}", kinds(&sent)));
        assert!(r.body().is_empty(), "an UPDATE without offer gets none");
        assert_eq!(
            header(r, HeaderName::SessionExpires).as_deref(),
            Some("120;refresher=uac")
        );
    }
    w.advance(80_000);
    assert_eq!(w.states("1001"), vec![CallStateKind::Connected]);
    assert!(w.take(A).is_empty(), "nothing to A before the expiry");
    // Then A stops refreshing: before the 120 s run out (120 - 32 s after
    // the last refresh) tapir hangs up on A, and on B.
    w.advance(20_000);
    let sent = w.take(A);
    let bye = sent
        .iter()
        .find(|m| m.method().is_some_and(|x| x.to_string() == "BYE"))
        .unwrap_or_else(|| panic!("no BYE to A: {:?}", kinds(&sent)));
    assert!(
        header(bye, HeaderName::from_wire("Reason"))
            .is_some_and(|r| r.contains("cause=408") && r.contains("Session expired")),
        "{bye:?}"
    );
    assert!(w.states("1001").is_empty(), "{:?}", w.states("1001"));
    assert!(w.states("1002").is_empty());
    assert!(kinds(&w.take(B)).contains(&"BYE".to_string()));
}

#[test]
fn tapir_refreshes_at_half_the_interval_and_a_gone_phone_is_released() {
    let mut w = world();
    // A has no timers but allows UPDATE: tapir refreshes A with UPDATE.
    // B's 200 has no Session-Expires: tapir refreshes B too, by
    // re-INVITE (B allows no UPDATE).
    let (ok, _) = connected(
        &mut w,
        "st-tx",
        "Allow: INVITE, ACK, BYE, CANCEL, UPDATE\n",
        &[],
    );
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uas")
    );
    w.advance(899_000);
    assert!(w.take(A).is_empty() && w.take(B).is_empty());
    w.advance(2_000);
    // (Retransmitted over UDP until answered.)
    let to_a = w.take(A);
    assert!(
        !to_a.is_empty() && kinds(&to_a).iter().all(|k| k == "UPDATE"),
        "refresh of A at 900 s: {:?}",
        kinds(&to_a)
    );
    let update = &to_a[0];
    assert_eq!(
        header(update, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uac")
    );
    let to_b = w.take(B);
    assert!(
        !to_b.is_empty() && kinds(&to_b).iter().all(|k| k == "INVITE"),
        "refresh of B at 900 s: {:?}",
        kinds(&to_b)
    );
    // B answers its refresh; the interval starts again.
    w.peer_sends(B, b_responds(&to_b[0], 200, true, &[]));
    assert_eq!(w.kinds(B), vec!["ACK"]);
    // A answers too.
    let r = update
        .response_builder(200, None, None)
        .header(HeaderName::SessionExpires, "1800;refresher=uac")
        .build();
    w.peer_sends_message(A, r);
    // 900 s later both are refreshed again; this time A is gone.
    w.advance(900_000);
    assert!(w.kinds(A).iter().all(|k| k == "UPDATE"));
    let again = w.take(B);
    assert_eq!(kinds(&again).first().map(String::as_str), Some("INVITE"));
    w.peer_sends(B, b_responds(&again[0], 200, true, &[]));
    // The UPDATE to A goes unanswered (retransmitted, then timer F): A
    // gets a BYE, and the call ends for B too.
    w.advance(40_000);
    let to_a = kinds(&w.take(A));
    assert!(to_a.contains(&"BYE".to_string()), "{to_a:?}");
    assert!(w.states("1001").is_empty());
    assert!(w.states("1002").is_empty());
    assert!(kinds(&w.take(B)).contains(&"BYE".to_string()));
}

#[test]
fn a_422_to_tapirs_invite_is_answered_by_inviting_again_with_its_min_se() {
    let mut w = world();
    w.peer_sends(A, invite_from_a("st-m422", "Supported: timer\n"));
    assert_eq!(w.kinds(A), vec!["100"]);
    let first = w.take(B).pop().expect("tapir invites 1002");
    assert_eq!(
        header(&first, HeaderName::SessionExpires).as_deref(),
        Some("1800")
    );
    // 1002 wants at least an hour.
    w.peer_sends(B, b_responds(&first, 422, false, &[("Min-SE", "3600")]));
    let sent = w.take(B);
    assert_eq!(kinds(&sent), vec!["ACK", "INVITE"]);
    let again = &sent[1];
    assert_eq!(again.call_id().unwrap(), first.call_id().unwrap());
    let tag = |m: &Message| m.from_header().unwrap().unwrap().tag().unwrap().to_string();
    assert_eq!(tag(again), tag(&first));
    let cseq = |m: &Message| m.cseq().unwrap().unwrap().number;
    assert_eq!(cseq(again), cseq(&first) + 1);
    assert_ne!(
        again.top_via().unwrap().unwrap().branch(),
        first.top_via().unwrap().unwrap().branch()
    );
    assert_eq!(
        header(again, HeaderName::SessionExpires).as_deref(),
        Some("3600")
    );
    assert_eq!(header(again, HeaderName::MinSe).as_deref(), Some("3600"));
    assert!(w.take(A).is_empty(), "the caller still waits");
    // Answered: the call is up with the hour-long interval.
    w.peer_sends(
        B,
        b_responds(
            again,
            200,
            true,
            &[("Session-Expires", "3600;refresher=uac")],
        ),
    );
    assert_eq!(w.kinds(B), vec!["ACK"]);
    let ok = w.take(A).pop().expect("200 to A");
    assert_eq!(ok.status_code(), Some(200));
    w.peer_sends(A, a_in_dialog("ACK", 1, &to_tag(&ok), "st-m422", ""));
    assert!(w.states("1002").contains(&CallStateKind::Connected));
    // tapir, the refresher toward 1002, refreshes at half the hour, not
    // at half of its own 1800 s (A refreshes its own leg).
    w.advance(1_000_000);
    assert!(
        w.take(B).is_empty(),
        "no refresh to 1002 before half its interval"
    );
    assert!(w.states("1002").contains(&CallStateKind::Connected));
}

#[test]
fn a_second_422_to_tapirs_invite_fails_the_call() {
    let mut w = world();
    w.peer_sends(A, invite_from_a("st-2x422", ""));
    w.take(A);
    let first = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&first, 422, false, &[("Min-SE", "3600")]));
    let again = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&again, 422, false, &[("Min-SE", "7200")]));
    assert_eq!(w.kinds(B), vec!["ACK"], "no third INVITE");
    assert!(w.states("1002").is_empty());
    assert!(
        w.take(A)
            .iter()
            .any(|m| m.status_code().is_some_and(|c| c >= 400)),
        "the caller hears the call failed"
    );
}
