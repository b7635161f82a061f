//! secure call (`lineSecureCall`), handoff (`lineHandoff`), generate digits
//! (`lineGenerateDigits`), set call privilege (`lineSetCallPrivilege`), open
//! and close line (`lineOpen`, `lineClose`), call info and status
//! (`lineGetCallInfo`, `lineGetCallStatus`, `lineGetAddressStatus`) and
//! address translation (`lineTranslateAddress`, `lineGetTranslateCaps`) end
//! to end: what the app may do to a real phone call, and what it may not.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallState, EventKind, HandoffTarget, MediaMode, PickupTarget, Privilege};
use tapir_e2e::{DESK_TOKEN, Tapir, assert_hear_each_other, error_code, offered, wait_call_state};

fn is_bye(e: &serde_json::Value) -> bool {
    e["event"] == "call" && e["state"] == "DISCONNECTED"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_call_refuses_pickup_and_call_waiting() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    d.dial("1002").await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;
    let mut call = app.call(&at_b).await.unwrap();
    call.secure().await.unwrap();
    assert!(call.info().secure);
    ev.wait("call.info secure", |e| {
        matches!(&e.kind, EventKind::CallInfo { call: c, changed } if c == &at_b && changed.iter().any(|x| x == "secure"))
    })
    .await;
    // Securing twice is harmless.
    call.secure().await.unwrap();
    // Nobody may pick a secure call up: it keeps ringing where it was.
    let (code, message) = error_code(
        app.address("1003")
            .pickup(&PickupTarget::Address("1002".into()))
            .await,
    );
    assert_eq!(code, "invaladdress", "{message}");
    c.expect_no_event(
        "an INVITE for the refused pickup",
        Duration::from_millis(500),
        |e| e["event"] == "incoming",
    )
    .await;
    b.expect_no_event(
        "a CANCEL of the secure call",
        Duration::from_millis(100),
        is_bye,
    )
    .await;
    b.answer().await;
    d.call_state("CONFIRMED").await;
    // No call waiting on a secure call: 1003 calling 1002 finds it busy and
    // 1002's phone gets no second INVITE.
    c.dial("1002").await;
    let at_c = ev.new_call_at("1003").await;
    let mode = ev.state(&at_c, CallState::Busy).await;
    assert_eq!(mode.as_deref(), Some("station"));
    b.expect_no_event(
        "call waiting on a secure call",
        Duration::from_millis(500),
        |e| e["event"] == "incoming",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_makes_another_app_the_owner_that_then_controls_the_phones() {
    let tapir = Tapir::start().await;
    let (crm, mut ev) = tapir.app().await;
    let (desk, mut desk_ev) = tapir.app_with_token(DESK_TOKEN).await;
    let [mut b, mut c] = tapir.phones(["1002", "1003"]).await;
    c.dial("1002").await;
    b.ring_and_answer().await;
    c.call_state("CONFIRMED").await;
    let at_b = ev.new_call_at("1002").await;
    wait_call_state(&crm, &at_b, CallState::Connected).await;
    // desk opened the line after crm, with a higher priority value: crm owns
    // the call, desk monitors it.
    let mut call = crm.call(&at_b).await.unwrap();
    assert_eq!(call.info().privilege, Privilege::Owner);
    assert_eq!(
        desk.call(&at_b).await.unwrap().info().privilege,
        Privilege::Monitor
    );
    // By media mode the best app is crm itself.
    let (code, _) = error_code(
        call.handoff(&HandoffTarget::MediaMode(MediaMode::InteractiveVoice))
            .await,
    );
    assert_eq!(code, "targetself");
    let (code, _) = error_code(call.handoff(&HandoffTarget::App("nobody".into())).await);
    assert_eq!(code, "targetnotfound");
    // The sole owner of a live call cannot step down.
    let (code, _) = error_code(call.set_privilege(Privilege::Monitor).await);
    assert_eq!(code, "invalcallstate");

    call.handoff(&HandoffTarget::App("desk".into()))
        .await
        .unwrap();
    desk_ev
        .wait("desk becomes owner", |e| {
            matches!(&e.kind, EventKind::CallState { call: c, privilege: Some(Privilege::Owner), .. } if c == &at_b)
                || matches!(&e.kind, EventKind::CallNew { call: c, privilege: Privilege::Owner, .. } if c == &at_b)
        })
        .await;
    // crm steps down to monitor: it may watch but not control.
    call.set_privilege(Privilege::Monitor).await.unwrap();
    assert_eq!(call.info().privilege, Privilege::Monitor);
    let (code, _) = error_code(call.hold(true).await);
    assert_eq!(code, "notowner");
    // desk controls the real call: its hold reaches the phone.
    let mut owned = desk.call(&at_b).await.unwrap();
    assert_eq!(owned.info().num_owners, 1);
    owned.hold(true).await.unwrap();
    c.media("remote_hold").await;
    owned.drop().await.unwrap();
    b.call_state("DISCONNECTED").await;
    c.call_state("DISCONNECTED").await;
}

/// lineHandoff to media mode unknown: "the target application is the one
/// that handles calls of unknown media mode". A media-probing app hands a
/// real phone call there; the call keeps its media mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_to_unknown_reaches_the_app_for_unknown_media() {
    let tapir = Tapir::start().await;
    let (crm, mut ev) = tapir.app().await;
    let (desk, mut desk_ev) = tapir.app_with_token(DESK_TOKEN).await;
    // desk handles calls of unknown media mode on 1002.
    desk.line("1002")
        .await
        .unwrap()
        .open(
            &[Privilege::Owner, Privilege::Monitor],
            &[MediaMode::Unknown],
        )
        .await
        .unwrap();
    let [mut b, mut c] = tapir.phones(["1002", "1003"]).await;
    c.dial("1002").await;
    b.ring_and_answer().await;
    c.call_state("CONFIRMED").await;
    let at_b = ev.new_call_at("1002").await;
    let mut call = wait_call_state(&crm, &at_b, CallState::Connected).await;
    assert_eq!(call.media_mode, MediaMode::InteractiveVoice);
    let mut mine = crm.call(&at_b).await.unwrap();
    mine.handoff(&HandoffTarget::MediaMode(MediaMode::Unknown))
        .await
        .unwrap();
    desk_ev
        .wait("desk becomes owner", |e| {
            matches!(&e.kind, EventKind::CallState { call: c, privilege: Some(Privilege::Owner), .. } if c == &at_b)
                || matches!(&e.kind, EventKind::CallNew { call: c, privilege: Privilege::Owner, .. } if c == &at_b)
        })
        .await;
    call = desk.call(&at_b).await.unwrap().info().clone();
    assert_eq!(call.media_mode, MediaMode::InteractiveVoice);
    assert_eq!(call.privilege, Privilege::Owner);
    // desk controls the real call.
    let mut owned = desk.call(&at_b).await.unwrap();
    owned.hold(true).await.unwrap();
    c.media("remote_hold").await;
    owned.drop().await.unwrap();
    b.call_state("DISCONNECTED").await;
    c.call_state("DISCONNECTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_digits_and_digits_from_a_phone() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut b = tapir.phone("1002").await;
    // 1002 calls the route point; the app answers and sends DTMF to the
    // phone, and the phone's DTMF reaches the app.
    b.dial(tapir_e2e::ROUTE_POINT).await;
    let at_rp = ev.new_call_at(tapir_e2e::ROUTE_POINT).await;
    ev.state(&at_rp, CallState::Offering).await;
    let mut call = app.call(&at_rp).await.unwrap();
    // Digits need a connected call.
    let (code, _) = error_code(call.generate_digits("1").await);
    assert_eq!(code, "invalcallstate");
    call.answer().await.unwrap();
    b.call_state("CONFIRMED").await;
    b.cmd("report_dtmf").await;
    b.wait_event("DTMF reporting on", |e| e["event"] == "reporting_dtmf")
        .await;
    call.generate_digits("12#").await.unwrap();
    ev.wait(
        "digits.generated",
        |e| matches!(&e.kind, EventKind::DigitsGenerated { call: c } if c == &at_rp),
    )
    .await;
    // The phone receives them as RFC 4733 events, in order.
    let mut heard = String::new();
    for _ in 0..3 {
        let e = b.wait_event("a DTMF digit", |e| e["event"] == "dtmf").await;
        heard.push_str(e["digit"].as_str().unwrap());
    }
    assert_eq!(heard, "12#");
    // lineDial on a connected call sends DTMF too.
    call.dial("9").await.unwrap();
    let e = b
        .wait_event("the dialled digit", |e| e["event"] == "dtmf")
        .await;
    assert_eq!(e["digit"], "9");
    b.send(serde_json::json!({"cmd": "dtmf", "digits": "47"}))
        .await;
    // The digits may be reported on the phone's call and on the route
    // point's call: each call's digits arrive in order.
    let mut got: std::collections::BTreeMap<String, String> = Default::default();
    while got.values().all(|d| d.len() < 2) {
        let e = ev
            .wait("digits.received", |e| {
                matches!(&e.kind, EventKind::DigitsReceived { .. })
            })
            .await;
        if let EventKind::DigitsReceived { call, digits } = e.kind {
            got.entry(call).or_default().push_str(&digits);
        }
    }
    assert!(got.values().any(|d| d == "47"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_address_status_and_closing_a_line_leaves_phone_calls_up() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c] = tapir.phones(["1002", "1003"]).await;
    c.dial("1002").await;
    b.ring_and_answer().await;
    c.call_state("CONFIRMED").await;
    let at_c = ev.new_call_at("1003").await;
    let at_b = ev.new_call_at("1002").await;
    let info = wait_call_state(&app, &at_b, CallState::Connected).await;
    assert_eq!(info.caller.address, "1003");
    assert_eq!(info.called.address, "1002");
    assert_eq!(info.connected.unwrap().address, "1003");
    let (_, calls) = app.calls().await.unwrap();
    assert!(calls.iter().any(|c| c.id() == at_c));
    let status = app.address("1002").status().await.unwrap();
    assert_eq!(status.calls.len(), 1);
    assert_eq!(status.calls[0].state, CallState::Connected);
    let mut line = app.line("1002").await.unwrap();
    line.close().await.unwrap();
    ev.wait(
        "line.state closed",
        |e| matches!(&e.kind, EventKind::LineState { state, .. } if state == "closed"),
    )
    .await;
    let (code, _) = error_code(app.call(&at_b).await);
    assert_eq!(code, "invalcallhandle");
    // The phones talk on under their users' control.
    for p in [&mut b, &mut c] {
        p.expect_no_event("a BYE after lineClose", Duration::from_millis(400), is_bye)
            .await;
    }
    line.open(&[Privilege::Owner], &[]).await.unwrap();
    b.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;
    ev.state(&at_c, CallState::Idle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_translation_over_the_running_server() {
    let tapir = Tapir::start().await;
    let (app, _ev) = tapir.app().await;
    let t = app.translate("+1 (206) 555-1212").await.unwrap();
    assert!(!t.dialable.is_empty(), "{t:?}");
    assert_eq!(t.country_code, 1);
    let (code, _) = error_code(app.translate("+1 (2").await);
    assert_eq!(code, "invaladdress");
    let locations = app.locations().await.unwrap();
    assert!(!locations.current.is_empty());
    assert!(app.cards().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn securing_a_call_turns_its_plain_leg_into_srtp() {
    let tapir = tapir_e2e::Tapir::start_with(tapir_e2e::Options {
        tls: true,
        ..tapir_e2e::Options::default()
    })
    .await;
    let (app, mut ev) = tapir.app().await;
    // Over TLS with optional SRTP, pjsua2 offers RTP/AVP: the leg starts plain.
    let mut b = tapir.phone_with("1002", "tls", Some("optional")).await;
    let mut c = tapir.phone_with("1003", "tls", Some("optional")).await;
    c.dial("1002").await;
    b.ring_and_answer().await;
    c.call_state("CONFIRMED").await;
    let at_c = ev.new_call_at("1003").await;
    wait_call_state(&app, &at_c, CallState::Connected).await;
    let before = c.media_info("RTP/AVP").await;
    assert_eq!(before["proto"], "RTP/AVP", "{before}");
    assert_eq!(before["srtp"], false, "{before}");

    app.call(&at_c).await.unwrap().secure().await.unwrap();
    // tapir re-offers the secured call's leg RTP/SAVP with its key.
    let after = c.media_info("RTP/SAVP").await;
    assert_eq!(after["proto"], "RTP/SAVP", "{after}");
    assert_eq!(after["srtp"], true, "{after}");
    assert!(
        after["remote_sdp"]
            .as_str()
            .unwrap()
            .contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{after}"
    );
    assert!(app.call(&at_c).await.unwrap().info().secure);
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "srtp").await;
}
