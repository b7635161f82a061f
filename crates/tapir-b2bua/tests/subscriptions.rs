//! Busy lamps and presence (`tapir_b2bua::subscription`): phone 1003 (C)
//! SUBSCRIBEs to the dialog package or presence of 1002 (B) and of a park
//! slot, and sees 1002's calls in NOTIFYs as 1001 (A) calls 1002; the
//! refusals of bad SUBSCRIBEs; refresh, unsubscribe, expiry and a failed
//! NOTIFY; a pickup by an INVITE with Replaces built from a NOTIFY;
//! forwarding and do-not-disturb on the lamps; the far party after a
//! transfer; presence when a registration runs out.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{A, B, Phones, TAPIR, World};
use tapir_b2bua::subscription::SubscriptionConfig;
use tapir_b2bua::{Config, ContactTarget, Directory, SipTransport};
use tapir_core::{
    CallReason, CallStateKind, ForwardMode, ForwardRule, LineConfig, ParkMode, Switch, TypedOps,
};
use tapir_sip::msg::{HeaderName, Message};

const C: &str = "127.0.0.1:5003";

fn world() -> World {
    world_with(|_| {})
}

fn world_with(change: impl FnOnce(&mut SubscriptionConfig)) -> World {
    let mut switch = Switch::default();
    for a in ["1001", "1002", "1003"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    switch.set_park_slots(vec!["701".into()]).unwrap();
    let dir = Phones::new(&[("1001", A), ("1002", B), ("1003", C)], SipTransport::Udp);
    let mut cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    change(&mut cfg.subscriptions);
    World::assemble(cfg, dir, switch, SipTransport::Udp)
}

/// A SUBSCRIBE from 1003 (C) for `target`, outside any dialog unless
/// `to_tag` is given.
fn subscribe(
    target: &str,
    event: &str,
    expires: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let expires = if expires.is_empty() {
        String::new()
    } else {
        format!("Expires: {expires}\n")
    };
    format!(
        "SUBSCRIBE sip:{target}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {C};branch=z9hG4bK-{call_id}-{cseq};rport
Max-Forwards: 70
From: <sip:1003@127.0.0.1>;tag=c1
To: <sip:{target}@127.0.0.1>{to_tag}
Call-ID: {call_id}
CSeq: {cseq} SUBSCRIBE
Contact: <sip:1003@{C}>
Event: {event}
Accept: application/dialog-info+xml, application/pidf+xml
{expires}Content-Length: 0

"
    )
}

fn invite_from_a(call_id: &str) -> String {
    let sdp = support::sdp(4000);
    format!(
        "INVITE sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: \"Alice\" <sip:1001@127.0.0.1>;tag=a1
To: <sip:1002@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:1001@{A}>
Content-Type: application/sdp
Content-Length: {len}

{sdp}",
        len = sdp.len()
    )
}

/// A response of B to tapir's request (its tag `b1`).
fn b_responds(req: &Message, code: u16, with_sdp: bool) -> String {
    let mut r = req
        .response_builder(code, None, Some("b1"))
        .header(HeaderName::Contact, format!("<sip:1002@{B}>"));
    if with_sdp {
        r = r.body("application/sdp", Bytes::from(support::sdp(4002)));
    }
    String::from_utf8(r.build().to_bytes().to_vec()).unwrap()
}

/// The phone's 200 to a NOTIFY.
fn ok_to(notify: &Message) -> String {
    String::from_utf8(
        notify
            .response_builder(200, None, None)
            .build()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn header<'a>(m: &'a Message, name: &str) -> &'a str {
    m.header(&HeaderName::from_wire(name)).unwrap_or("")
}

fn body(m: &Message) -> String {
    String::from_utf8(m.body().to_vec()).unwrap()
}

/// The NOTIFYs sent to C, each answered 200 (which may let the next,
/// coalesced, one go).
fn notifies(w: &mut World) -> Vec<Message> {
    let mut all = Vec::new();
    for _ in 0..10 {
        let sent: Vec<Message> = w
            .take(C)
            .into_iter()
            .filter(|m| m.method().is_some_and(|x| x.to_string() == "NOTIFY"))
            .collect();
        if sent.is_empty() {
            break;
        }
        for n in &sent {
            w.peer_sends(C, ok_to(n));
        }
        all.extend(sent);
    }
    all
}

/// The `<state>` texts of a dialog-info body, in order.
fn states(doc: &str) -> Vec<String> {
    doc.split("<state>")
        .skip(1)
        .filter_map(|s| s.split("</state>").next())
        .map(str::to_string)
        .collect()
}

/// An attribute's value: the first after the XML declaration.
fn attr(doc: &str, name: &str) -> Option<String> {
    let doc = &doc[doc.find("<dialog-info")?..];
    let start = doc.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &doc[start..];
    Some(rest[..rest.find('"')?].to_string())
}

/// C subscribes to 1002's dialogs: 200 with Expires, then the first NOTIFY.
fn subscribed(w: &mut World, target: &str) -> Message {
    w.peer_sends(C, subscribe(target, "dialog", "600", "sub-1", 1, None));
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(200), "{:?}", sent[0]);
    assert_eq!(header(&sent[0], "Expires"), "600");
    let notify = sent
        .iter()
        .find(|m| m.method().is_some())
        .expect("a NOTIFY at once")
        .clone();
    w.peer_sends(C, ok_to(&notify));
    notify
}

#[test]
fn a_watcher_sees_the_calls_of_an_address_ring_connect_and_end() {
    let mut w = world();
    let first = subscribed(&mut w, "1002");
    assert_eq!(header(&first, "Event"), "dialog");
    assert!(header(&first, "Subscription-State").starts_with("active;expires="));
    assert_eq!(
        header(&first, "Content-Type"),
        "application/dialog-info+xml"
    );
    let doc = body(&first);
    assert_eq!(attr(&doc, "version").as_deref(), Some("0"));
    assert!(states(&doc).is_empty(), "idle: {doc}");
    assert_eq!(w.b2b.subscription_count(), 1);

    // A calls B: B's phone is invited (trying), then rings (early).
    w.peer_sends(A, invite_from_a("call-1"));
    let invite_b = w.take(B).pop().unwrap();
    // Within the coalescing window after the first NOTIFY: nothing yet.
    assert!(notifies(&mut w).is_empty());
    w.advance(300);
    let n = notifies(&mut w);
    assert_eq!(n.len(), 1);
    assert_eq!(states(&body(&n[0])), vec!["trying"]);
    assert_eq!(attr(&body(&n[0]), "version").as_deref(), Some("1"));
    w.advance(300);
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    // The coalescing window: nothing before it is over.
    let n = notifies(&mut w);
    assert!(n.is_empty() || states(&body(&n[0])) == vec!["early"]);
    w.advance(300);
    let mut all = n;
    all.extend(notifies(&mut w));
    let ringing = body(all.last().unwrap());
    assert_eq!(states(&ringing), vec!["early"], "{ringing}");
    assert_eq!(attr(&ringing, "direction").as_deref(), Some("recipient"));
    assert_eq!(
        attr(&ringing, "call-id").as_deref(),
        invite_b.call_id().unwrap()
    );
    // The dialog as tapir holds it: its tag local, the phone's remote.
    assert_eq!(attr(&ringing, "remote-tag").as_deref(), Some("b1"));
    assert_eq!(attr(&ringing, "local-tag"), Some(tag_of(&invite_b)));
    assert!(
        ringing.contains("<identity>sip:1001@127.0.0.1</identity>"),
        "{ringing}"
    );

    // B answers: confirmed; B hangs up: terminated once, then idle.
    w.advance(300);
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    w.advance(300);
    let n = notifies(&mut w);
    assert_eq!(states(&body(n.last().unwrap())), vec!["confirmed"]);
    w.take(A);
    let bye = format!(
        "BYE sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {B};branch=z9hG4bK-bye;rport
Max-Forwards: 70
From: <sip:1002@127.0.0.1>;tag=b1
To: {to}
Call-ID: {cid}
CSeq: 2 BYE
Content-Length: 0

",
        to = header(&invite_b, "From"),
        cid = invite_b.call_id().unwrap().unwrap()
    );
    w.peer_sends(B, bye);
    w.advance(300);
    let n = notifies(&mut w);
    let last = body(n.last().unwrap());
    assert_eq!(states(&last), vec!["terminated"], "{last}");
    let version: u32 = attr(&last, "version").unwrap().parse().unwrap();
    assert!(version >= 4, "version counts up: {version}");
    // Nothing changes any more: no NOTIFY.
    w.advance(1000);
    assert!(notifies(&mut w).is_empty());
}

#[test]
fn a_phone_picks_a_ringing_call_up_with_the_tags_of_a_notify() {
    let mut w = world();
    let app = w.owner_app("1003");
    subscribed(&mut w, "1002");
    w.peer_sends(A, invite_from_a("call-p"));
    let invite_b = w.take(B).pop().unwrap();
    w.advance(300);
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.advance(300);
    let n = notifies(&mut w);
    let ringing = body(n.last().unwrap());
    let (cid, local, remote) = (
        attr(&ringing, "call-id").unwrap(),
        attr(&ringing, "local-tag").unwrap(),
        attr(&ringing, "remote-tag").unwrap(),
    );
    // Replaces names tapir's tag (the local-tag) as to-tag.
    let sdp = support::sdp(4004);
    let pickup = format!(
        "INVITE sip:1002@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {C};branch=z9hG4bK-pick;rport
Max-Forwards: 70
From: <sip:1003@127.0.0.1>;tag=c9
To: <sip:1002@127.0.0.1>
Call-ID: pick-1
CSeq: 1 INVITE
Contact: <sip:1003@{C}>
Replaces: {cid};to-tag={local};from-tag={remote}
Content-Type: application/sdp
Content-Length: {len}

{sdp}",
        len = sdp.len()
    );
    w.peer_sends(C, pickup);
    let to_c = w.take(C);
    assert!(
        to_c.iter().any(|m| m.status_code() == Some(200)),
        "the pickup is answered: {:?}",
        to_c.iter().map(support::kind).collect::<Vec<_>>()
    );
    assert!(w.take(B).iter().any(|m| support::kind(m) == "CANCEL"));
    assert_eq!(w.states("1003"), vec![CallStateKind::Connected]);
    let call = w.switch.calls_at("1003")[0];
    let info = w.switch.call_info(app, call).unwrap();
    assert_eq!(info.reason, CallReason::Pickup, "TAPI sees a pickup");
}

#[test]
fn a_parked_call_lights_its_slot_and_a_secure_call_hides_its_party() {
    let mut w = world();
    let app = w.owner_app("1002");
    subscribed(&mut w, "701");
    w.peer_sends(A, invite_from_a("call-k"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    w.advance(300);
    assert!(notifies(&mut w).is_empty(), "the slot's lamp is off");
    let call = w.switch.calls_at("1002")[0];
    let ts = w.ts();
    w.switch
        .park(ts, app, call, ParkMode::Directed("701".into()))
        .unwrap();
    w.pump();
    w.advance(300);
    let n = notifies(&mut w);
    let doc = body(n.last().expect("the slot lights"));
    assert_eq!(states(&doc), vec!["confirmed"], "{doc}");
    assert!(
        doc.contains("sip:1001@127.0.0.1"),
        "the parked party: {doc}"
    );

    // A secure call at a watched address shows neither party nor tags.
    let mut w = world();
    let app = w.owner_app("1002");
    let tag = tag_of(&subscribed(&mut w, "1002"));
    w.peer_sends(A, invite_from_a("call-s"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    let call = w.switch.calls_at("1002")[0];
    let ts = w.ts();
    w.switch.secure_call(ts, app, call).unwrap();
    w.pump();
    w.advance(300);
    notifies(&mut w);
    w.advance(300);
    w.peer_sends(
        C,
        subscribe("1002", "dialog", "600", "sub-1", 2, Some(&tag)),
    );
    let doc = w
        .take(C)
        .into_iter()
        .filter(|m| m.method().is_some())
        .map(|m| body(&m))
        .next_back()
        .expect("a refresh NOTIFYs");
    assert_eq!(states(&doc), vec!["confirmed"], "{doc}");
    assert!(
        !doc.contains("call-id") && !doc.contains("1001") && !doc.contains("tag="),
        "{doc}"
    );
}

/// tapir's tag in a subscription, from one of its NOTIFYs.
fn tag_of(notify: &Message) -> String {
    notify
        .from_header()
        .unwrap()
        .unwrap()
        .tag()
        .unwrap()
        .to_string()
}

#[test]
fn bad_subscribes_get_the_right_refusals() {
    let mut w = world_with(|c| c.max_per_watcher = 3);
    let code = |w: &mut World, text: String| -> Option<u16> {
        w.peer_sends(C, text);
        w.take(C).first().and_then(|m| m.status_code())
    };
    let r = {
        w.peer_sends(
            C,
            subscribe("1002", "message-summary", "600", "x1", 1, None),
        );
        w.take(C).remove(0)
    };
    assert_eq!(r.status_code(), Some(489));
    assert_eq!(header(&r, "Allow-Events"), "dialog, presence");
    let r = {
        w.peer_sends(C, subscribe("1002", "dialog", "10", "x2", 1, None));
        w.take(C).remove(0)
    };
    assert_eq!(r.status_code(), Some(423));
    assert_eq!(header(&r, "Min-Expires"), "60");
    assert_eq!(
        code(&mut w, subscribe("1002", "dialog", "ten", "x3", 1, None)),
        Some(400)
    );
    let with_body = subscribe("1002", "dialog", "600", "x4", 1, None).replace(
        "Content-Length: 0\n\n",
        "Content-Type: application/simple-filter+xml\nContent-Length: 7\n\n<a><b>\n",
    );
    assert_eq!(code(&mut w, with_body), Some(415));
    // An over-long Expires is shortened to the maximum.
    w.peer_sends(C, subscribe("1002", "dialog", "4294967295", "x5", 1, None));
    let r = w.take(C).remove(0);
    assert_eq!(r.status_code(), Some(200));
    assert_eq!(header(&r, "Expires"), "3600");
    // The watcher's limit: 3 live, the 4th refused, tapir keeps serving.
    for i in 0..2 {
        let id = format!("y{i}");
        assert_eq!(
            code(&mut w, subscribe("1001", "presence", "600", &id, 1, None)),
            Some(200)
        );
    }
    for i in 0..50 {
        let id = format!("z{i}");
        assert_eq!(
            code(&mut w, subscribe("1001", "dialog", "600", &id, 1, None)),
            Some(403)
        );
    }
    assert_eq!(w.b2b.subscription_count(), 3);
    // A refresh that names no subscription.
    assert_eq!(
        code(
            &mut w,
            subscribe("1002", "dialog", "600", "nope", 2, Some("ts-nope"))
        ),
        Some(481)
    );
}

#[test]
fn refresh_unsubscribe_expiry_and_a_refused_notify_end_subscriptions() {
    let mut w = world();
    let first = subscribed(&mut w, "1002");
    let tag = tag_of(&first);
    // Refresh: 200 and a full NOTIFY.
    w.advance(1000);
    w.peer_sends(
        C,
        subscribe("1002", "dialog", "300", "sub-1", 2, Some(&tag)),
    );
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(200));
    assert_eq!(header(&sent[0], "Expires"), "300");
    let n = sent.iter().find(|m| m.method().is_some()).expect("NOTIFY");
    assert!(header(n, "Subscription-State").starts_with("active;expires=30"));
    w.peer_sends(C, ok_to(n));
    // Unsubscribe: 200 and a last NOTIFY, terminated.
    w.peer_sends(C, subscribe("1002", "dialog", "0", "sub-1", 3, Some(&tag)));
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(200));
    let n = sent.iter().find(|m| m.method().is_some()).expect("NOTIFY");
    assert_eq!(header(n, "Subscription-State"), "terminated;reason=timeout");
    assert_eq!(w.b2b.subscription_count(), 0);

    // Expiry without refresh.
    let mut w = world();
    w.peer_sends(C, subscribe("1002", "dialog", "60", "sub-2", 1, None));
    notifies(&mut w);
    w.advance(61_000);
    let n = notifies(&mut w);
    assert_eq!(
        header(&n[0], "Subscription-State"),
        "terminated;reason=timeout"
    );
    assert_eq!(w.b2b.subscription_count(), 0);

    // A NOTIFY answered 481 ends the subscription.
    let mut w = world();
    w.peer_sends(C, subscribe("1002", "dialog", "600", "sub-3", 1, None));
    let n = w
        .take(C)
        .into_iter()
        .find(|m| m.method().is_some())
        .unwrap();
    let gone = String::from_utf8(
        n.response_builder(481, None, None)
            .build()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    w.peer_sends(C, gone);
    assert_eq!(w.b2b.subscription_count(), 0);

    // A NOTIFY never answered ends it too.
    let mut w = world();
    w.peer_sends(C, subscribe("1002", "dialog", "600", "sub-4", 1, None));
    w.advance(40_000);
    assert_eq!(w.b2b.subscription_count(), 0);

    // Shutdown: every watcher hears the end.
    let mut w = world();
    subscribed(&mut w, "1002");
    let now = w.now;
    w.b2b.end_subscriptions(now);
    w.pump();
    let n = notifies(&mut w);
    assert_eq!(
        header(&n[0], "Subscription-State"),
        "terminated;reason=deactivated"
    );
}

#[test]
fn presence_is_available_busy_and_offline() {
    let mut w = world();
    w.peer_sends(C, subscribe("1002", "presence", "600", "pr-1", 1, None));
    let n = notifies(&mut w);
    assert_eq!(header(&n[0], "Content-Type"), "application/pidf+xml");
    assert!(body(&n[0]).contains("<basic>open</basic>"));
    assert!(!body(&n[0]).contains("on-the-phone"));
    w.peer_sends(A, invite_from_a("call-pr"));
    w.advance(300);
    let n = notifies(&mut w);
    assert!(body(n.last().unwrap()).contains("on-the-phone"));
    // 1009 has no registration: offline.
    w.peer_sends(C, subscribe("1009", "presence", "600", "pr-2", 1, None));
    let n = notifies(&mut w);
    assert!(
        body(&n[0]).contains("<basic>closed</basic>"),
        "{}",
        body(&n[0])
    );
}

#[test]
fn a_call_to_the_slot_unparks_and_its_lamp_goes_out() {
    let mut w = world();
    let app = w.owner_app("1002");
    let app_c = w.owner_app("1003");
    subscribed(&mut w, "701");
    w.peer_sends(A, invite_from_a("call-u"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    let call = w.switch.calls_at("1002")[0];
    let ts = w.ts();
    w.switch
        .park(ts, app, call, ParkMode::Directed("701".into()))
        .unwrap();
    w.pump();
    w.advance(300);
    let lit = notifies(&mut w);
    assert_eq!(states(&body(lit.last().unwrap())), vec!["confirmed"]);
    // 1003 dials the slot (the BLF key of a park slot): it unparks.
    let sdp = support::sdp(4004);
    w.peer_sends(
        C,
        format!(
            "INVITE sip:701@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP {C};branch=z9hG4bK-unpark;rport
Max-Forwards: 70
From: <sip:1003@127.0.0.1>;tag=c7
To: <sip:701@127.0.0.1>
Call-ID: unpark-1
CSeq: 1 INVITE
Contact: <sip:1003@{C}>
Content-Type: application/sdp
Content-Length: {len}

{sdp}",
            len = sdp.len()
        ),
    );
    let to_c = w.take(C);
    assert!(
        to_c.iter().any(|m| m.status_code() == Some(200)),
        "{:?}",
        to_c.iter().map(support::kind).collect::<Vec<_>>()
    );
    assert_eq!(w.states("1003"), vec![CallStateKind::Connected]);
    let unparked = w.switch.calls_at("1003")[0];
    assert_eq!(
        w.switch.call_info(app_c, unparked).unwrap().reason,
        CallReason::Unpark
    );
    assert!(w.switch.parked_at("701").is_none());
    w.advance(300);
    let out = notifies(&mut w);
    let doc = body(out.last().expect("the slot's lamp changes"));
    assert_eq!(states(&doc), vec!["terminated"], "{doc}");
}

#[test]
fn ended_calls_do_not_pile_up_at_a_watched_address() {
    let mut w = world();
    let app = w.owner_app("1001");
    subscribed(&mut w, "1002");
    for n in 0..12 {
        let call_id = format!("call-r{n}");
        w.peer_sends(A, invite_from_a(&call_id));
        let invite_b = w.take(B).pop().expect("tapir invites 1002");
        w.peer_sends(B, b_responds(&invite_b, 486, false));
        w.take(A);
        // The app lets the busy call at 1001 go.
        for call in w.switch.all_calls() {
            let ts = w.ts();
            let _ = w.switch.drop_call(ts, app, call);
            let _ = w.switch.deallocate_call(ts, app, call);
        }
        w.pump();
        w.advance(300);
        notifies(&mut w);
        w.advance(300);
        notifies(&mut w);
        // The INVITE transactions end; the dialogs go.
        w.advance(40_000);
    }
    assert_eq!(w.b2b.subscription_count(), 1, "still subscribed");
    // At most the last ended leg waits for the address's next change.
    assert!(w.b2b.lamp_legs() <= 1, "{} legs kept", w.b2b.lamp_legs());
}

/// The last NOTIFY's body of what C got (each answered).
fn last_doc(w: &mut World) -> Option<String> {
    notifies(w).last().map(body)
}

#[test]
fn forwarding_and_do_not_disturb_light_the_lamp() {
    let mut w = world();
    let app = w.owner_app("1002");
    subscribed(&mut w, "1002");
    w.peer_sends(C, subscribe("1002", "presence", "600", "pr-f", 1, None));
    notifies(&mut w);
    let rule = |mode, to: Option<&str>| ForwardRule {
        mode,
        to: to.map(str::to_owned),
        caller: None,
    };
    // Unconditional forwarding to 1003: a steady lamp naming where calls
    // go, presence away.
    let ts = w.ts();
    w.switch
        .forward(
            ts,
            app,
            "1002",
            vec![rule(ForwardMode::Unconditional, Some("1003"))],
            None,
        )
        .unwrap();
    w.pump();
    w.advance(300);
    let n = notifies(&mut w);
    let doc = n
        .iter()
        .map(body)
        .find(|b| b.contains("dialog-info"))
        .expect("the lamp changes");
    assert_eq!(states(&doc), vec!["confirmed"], "{doc}");
    assert!(doc.contains("id=\"forwarded\""), "{doc}");
    assert!(
        doc.contains("<identity>sip:1003@127.0.0.1</identity>"),
        "{doc}"
    );
    let pidf = n
        .iter()
        .map(body)
        .find(|b| b.contains("<presence"))
        .expect("presence changes");
    assert!(pidf.contains("<rpid:away/>"), "{pidf}");

    // Do-not-disturb (a rule without destination): steady, no party;
    // presence busy.
    let ts = w.ts();
    w.switch
        .forward(
            ts,
            app,
            "1002",
            vec![rule(ForwardMode::Unconditional, None)],
            None,
        )
        .unwrap();
    w.pump();
    w.advance(300);
    let n = notifies(&mut w);
    let doc = n
        .iter()
        .map(body)
        .find(|b| b.contains("dialog-info"))
        .expect("the lamp changes");
    let dnd = &doc[doc.find("id=\"dnd\"").expect("a dnd dialog")..];
    let dnd = &dnd[..dnd.find("</dialog>").unwrap()];
    assert!(dnd.contains("<state>confirmed</state>"), "{doc}");
    assert!(!dnd.contains("<remote>"), "{doc}");
    let pidf = n
        .iter()
        .map(body)
        .find(|b| b.contains("<presence"))
        .unwrap();
    assert!(pidf.contains("<rpid:busy/>"), "{pidf}");

    // A busy rule does not show; cancelling puts the lamp out.
    let ts = w.ts();
    w.switch
        .forward(
            ts,
            app,
            "1002",
            vec![rule(ForwardMode::Busy, Some("1003"))],
            None,
        )
        .unwrap();
    w.pump();
    w.advance(300);
    let n = notifies(&mut w);
    let doc = n
        .iter()
        .map(body)
        .find(|b| b.contains("dialog-info"))
        .expect("the lamp goes out");
    assert_eq!(states(&doc), vec!["terminated"], "{doc}");
    let pidf = n
        .iter()
        .map(body)
        .find(|b| b.contains("<presence"))
        .unwrap();
    assert!(!pidf.contains("rpid:"), "{pidf}");

    // A new watcher sees forwarding in its first NOTIFY.
    let ts = w.ts();
    w.switch
        .forward(
            ts,
            app,
            "1002",
            vec![rule(ForwardMode::UnconditionalInternal, None)],
            None,
        )
        .unwrap();
    w.pump();
    w.peer_sends(C, subscribe("1002", "dialog", "600", "sub-late", 1, None));
    let first = w
        .take(C)
        .into_iter()
        .find(|m| m.method().is_some())
        .map(|m| body(&m))
        .expect("a first NOTIFY");
    assert!(first.contains("id=\"dnd\""), "{first}");
}

#[test]
fn the_far_party_follows_a_transfer() {
    let mut w = world();
    let app = w.owner_app("1001");
    subscribed(&mut w, "1002");
    w.peer_sends(A, invite_from_a("call-t"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    w.take(A);
    w.advance(300);
    let doc = last_doc(&mut w).expect("B talks");
    assert!(
        doc.contains("<identity>sip:1001@127.0.0.1</identity>"),
        "{doc}"
    );
    // A's app transfers A's call to 1003: B talks to 1003 once it answers.
    let call = w.switch.calls_at("1001")[0];
    let ts = w.ts();
    w.switch.blind_transfer(ts, app, call, "1003").unwrap();
    w.pump();
    let invite_c = w
        .take(C)
        .into_iter()
        .find(|m| support::kind(m) == "INVITE")
        .expect("tapir invites 1003");
    let answer = invite_c
        .response_builder(200, None, Some("c1"))
        .header(HeaderName::Contact, format!("<sip:1003@{C}>"))
        .body("application/sdp", Bytes::from(support::sdp(4006)))
        .build();
    w.peer_sends_message(C, answer);
    w.advance(300);
    let mut docs: Vec<String> = Vec::new();
    for _ in 0..3 {
        docs.extend(notifies(&mut w).iter().map(body));
        w.advance(300);
    }
    let doc = docs.last().expect("B's lamp changes");
    assert_eq!(states(doc), vec!["confirmed"], "{doc}");
    assert!(
        doc.contains("<identity>sip:1003@127.0.0.1</identity>") && !doc.contains("1001"),
        "after the transfer B talks to 1003: {doc}"
    );
}

#[test]
fn the_far_party_follows_a_phones_refer() {
    let mut w = world();
    subscribed(&mut w, "1002");
    w.peer_sends(A, invite_from_a("call-rf"));
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 200, true));
    let ok = w
        .take(A)
        .into_iter()
        .find(|m| m.status_code() == Some(200))
        .expect("A's call is answered");
    let tag = support::to_tag(&ok);
    let dialog = format!(
        "From: \"Alice\" <sip:1001@127.0.0.1>;tag=a1\nTo: <sip:1002@127.0.0.1>;tag={tag}\nCall-ID: call-rf"
    );
    w.peer_sends(A, support::in_dialog_from_a("ACK", 1, &dialog, ""));
    w.advance(300);
    notifies(&mut w);
    // 1001's phone transfers 1002 to 1003 (REFER); 1003 answers.
    let refer = support::in_dialog_from_a("REFER", 2, &dialog, "").replace(
        "CSeq: 2 REFER\n",
        "CSeq: 2 REFER\nRefer-To: <sip:1003@127.0.0.1>\n",
    );
    w.peer_sends(A, refer);
    let invite_c = w
        .take(C)
        .into_iter()
        .find(|m| support::kind(m) == "INVITE")
        .expect("tapir invites 1003");
    let answer = invite_c
        .response_builder(200, None, Some("c2"))
        .header(HeaderName::Contact, format!("<sip:1003@{C}>"))
        .body("application/sdp", Bytes::from(support::sdp(4008)))
        .build();
    w.peer_sends_message(C, answer);
    let mut docs: Vec<String> = Vec::new();
    for _ in 0..4 {
        w.advance(300);
        docs.extend(notifies(&mut w).iter().map(body));
    }
    let doc = docs.last().expect("B's lamp changes");
    assert_eq!(states(doc), vec!["confirmed"], "{doc}");
    assert!(
        doc.contains("<identity>sip:1003@127.0.0.1</identity>") && !doc.contains("1001"),
        "after the REFER B talks to 1003: {doc}"
    );
}

/// Phones whose registrations run out at a time the test sets.
struct Expiring {
    phones: Phones,
    until: Arc<Mutex<Option<Instant>>>,
}

impl Directory for Expiring {
    fn register(
        &mut self,
        now: Instant,
        request: &Message,
        source: std::net::SocketAddr,
        transport: SipTransport,
    ) -> Message {
        self.phones.register(now, request, source, transport)
    }
    fn admit(
        &mut self,
        now: Instant,
        request: &Message,
        source: std::net::SocketAddr,
    ) -> Result<String, Box<Message>> {
        self.phones.admit(now, request, source)
    }
    fn contacts(&self, now: Instant, address: &str) -> Vec<ContactTarget> {
        match *self.until.lock().unwrap() {
            Some(until) if address == "1002" && now >= until => Vec::new(),
            _ => self.phones.contacts(now, address),
        }
    }
    fn registered_until(&self, now: Instant, address: &str) -> Option<Instant> {
        let until = (*self.until.lock().unwrap())?;
        (address == "1002" && now < until).then_some(until)
    }
}

#[test]
fn presence_goes_offline_when_the_registration_runs_out() {
    let until = Arc::new(Mutex::new(None));
    let mut switch = Switch::default();
    for a in ["1001", "1002", "1003"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    let dir = Expiring {
        phones: Phones::new(&[("1001", A), ("1002", B), ("1003", C)], SipTransport::Udp),
        until: until.clone(),
    };
    let cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    let mut w = World::assemble(cfg, dir, switch, SipTransport::Udp);
    *until.lock().unwrap() = Some(w.now + Duration::from_secs(90));
    w.peer_sends(C, subscribe("1002", "presence", "600", "pr-x", 1, None));
    let first = last_doc(&mut w).expect("a first NOTIFY");
    assert!(first.contains("<basic>open</basic>"), "{first}");
    w.advance(60_000);
    assert!(notifies(&mut w).is_empty(), "still registered");
    // 1002 does not register again: at 90 s its presence is closed, without
    // any REGISTER or call.
    w.advance(31_000);
    let doc = last_doc(&mut w).expect("presence changes when the registration runs out");
    assert!(doc.contains("<basic>closed</basic>"), "{doc}");
    assert_eq!(w.b2b.subscription_count(), 1);
}

/// Phones whose watchers may be refused from a time the test sets.
struct Revocable {
    phones: Phones,
    refused: Arc<Mutex<bool>>,
}

impl Directory for Revocable {
    fn register(
        &mut self,
        now: Instant,
        request: &Message,
        source: std::net::SocketAddr,
        transport: SipTransport,
    ) -> Message {
        self.phones.register(now, request, source, transport)
    }
    fn admit(
        &mut self,
        now: Instant,
        request: &Message,
        source: std::net::SocketAddr,
    ) -> Result<String, Box<Message>> {
        self.phones.admit(now, request, source)
    }
    fn contacts(&self, now: Instant, address: &str) -> Vec<ContactTarget> {
        self.phones.contacts(now, address)
    }
    fn may_watch(&self, _watcher: &str, _address: &str) -> Result<(), u16> {
        if *self.refused.lock().unwrap() {
            Err(403)
        } else {
            Ok(())
        }
    }
}

fn revocable_world() -> (World, Arc<Mutex<bool>>) {
    let refused = Arc::new(Mutex::new(false));
    let mut switch = Switch::default();
    for a in ["1001", "1002", "1003"] {
        switch.add_line(LineConfig::phone(a)).unwrap();
    }
    let dir = Revocable {
        phones: Phones::new(&[("1001", A), ("1002", B), ("1003", C)], SipTransport::Udp),
        refused: refused.clone(),
    };
    let cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    (
        World::assemble(cfg, dir, switch, SipTransport::Udp),
        refused,
    )
}

#[test]
fn a_watcher_that_loses_its_right_sees_nothing_more() {
    // At the next change: a last NOTIFY without state, then nothing.
    let (mut w, refused) = revocable_world();
    subscribed(&mut w, "1002");
    *refused.lock().unwrap() = true;
    w.peer_sends(A, invite_from_a("call-r"));
    w.advance(300);
    let n = notifies(&mut w);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        header(&n[0], "Subscription-State"),
        "terminated;reason=rejected"
    );
    assert!(n[0].body().is_empty(), "no state: {}", body(&n[0]));
    assert_eq!(w.b2b.subscription_count(), 0);
    let invite_b = w.take(B).pop().unwrap();
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.advance(1000);
    assert!(notifies(&mut w).is_empty());

    // At a refresh: 403 and the same last NOTIFY.
    let (mut w, refused) = revocable_world();
    let tag = tag_of(&subscribed(&mut w, "1002"));
    *refused.lock().unwrap() = true;
    w.advance(1000);
    w.peer_sends(
        C,
        subscribe("1002", "dialog", "600", "sub-1", 2, Some(&tag)),
    );
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(403), "{:?}", sent[0]);
    let n = sent.iter().find(|m| m.method().is_some()).expect("NOTIFY");
    assert_eq!(
        header(n, "Subscription-State"),
        "terminated;reason=rejected"
    );
    assert!(n.body().is_empty());
    assert_eq!(w.b2b.subscription_count(), 0);

    // Unsubscribing, or running out, shows no state either.
    let (mut w, refused) = revocable_world();
    let tag = tag_of(&subscribed(&mut w, "1002"));
    w.peer_sends(A, invite_from_a("call-r2"));
    *refused.lock().unwrap() = true;
    w.peer_sends(C, subscribe("1002", "dialog", "0", "sub-1", 2, Some(&tag)));
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(200));
    let n = sent.iter().find(|m| m.method().is_some()).expect("NOTIFY");
    assert_eq!(
        header(n, "Subscription-State"),
        "terminated;reason=rejected"
    );
    assert!(n.body().is_empty(), "{}", body(n));
    let (mut w, refused) = revocable_world();
    w.peer_sends(C, subscribe("1002", "dialog", "60", "sub-2", 1, None));
    notifies(&mut w);
    *refused.lock().unwrap() = true;
    w.advance(61_000);
    let n = notifies(&mut w);
    assert_eq!(
        header(&n[0], "Subscription-State"),
        "terminated;reason=rejected"
    );
    assert!(n[0].body().is_empty());
    assert_eq!(w.b2b.subscription_count(), 0);
}

#[test]
fn a_fetch_gets_the_state_once_and_leaves_nothing() {
    let mut w = world();
    let app = w.owner_app("1002");
    let ts = w.ts();
    w.switch
        .forward(
            ts,
            app,
            "1002",
            vec![ForwardRule {
                mode: ForwardMode::Unconditional,
                to: None,
                caller: None,
            }],
            None,
        )
        .unwrap();
    w.pump();
    // Expires: 0 outside a dialog (RFC 6665 §4.4.3): 200, one NOTIFY with
    // the state, terminated, and no subscription left.
    w.peer_sends(C, subscribe("1002", "dialog", "0", "fetch-1", 1, None));
    let sent = w.take(C);
    assert_eq!(sent[0].status_code(), Some(200));
    let n: Vec<&Message> = sent.iter().filter(|m| m.method().is_some()).collect();
    assert_eq!(n.len(), 1, "{sent:?}");
    assert_eq!(
        header(n[0], "Subscription-State"),
        "terminated;reason=timeout"
    );
    assert!(body(n[0]).contains("id=\"dnd\""), "{}", body(n[0]));
    assert_eq!(w.b2b.subscription_count(), 0);
    assert_eq!(w.b2b.lamp_legs(), 0);
    let answer = ok_to(n[0]);
    w.peer_sends(C, answer);
    w.advance(1000);
    assert!(notifies(&mut w).is_empty());
}

#[test]
fn an_apps_make_call_shows_the_phone_as_the_caller() {
    let mut w = world();
    let app = w.owner_app("1002");
    subscribed(&mut w, "1002");
    // The app makes a call from 1002 to 1003: tapir rings 1002's phone
    // first, yet 1002 is the caller, calling 1003.
    let ts = w.ts();
    w.switch.make_call(ts, app, "1002", Some("1003")).unwrap();
    w.pump();
    let invite_b = w.take(B).pop().expect("tapir rings 1002's phone");
    w.advance(300);
    w.peer_sends(B, b_responds(&invite_b, 180, false));
    w.advance(300);
    let doc = last_doc(&mut w).expect("1002's lamp");
    assert_eq!(
        attr(&doc, "direction").as_deref(),
        Some("initiator"),
        "{doc}"
    );
    assert!(
        doc.contains("<identity>sip:1003@127.0.0.1</identity>"),
        "{doc}"
    );
}
