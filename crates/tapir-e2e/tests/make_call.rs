//! make call (`lineMakeCall`, `CreateCall` + `Connect`), dial (`lineDial`)
//! end to end: third-party call control rings the caller's own phone first.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallReason, CallState, EventKind};
use tapir_e2e::{DESK_TOKEN, Tapir, assert_hear_each_other, wait_call_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_rings_an_auto_answer_caller_first_then_the_callee() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    // desk opened the lines after crm: it monitors crm's calls.
    let (_desk, mut desk_ev) = tapir.app_with_token(DESK_TOKEN).await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;

    let call = app.address("1001").create_call("1002").await.unwrap();
    // 1001 is configured for auto-answer: its INVITE carries the hint and
    // the phone answers by itself; only then does 1002 ring.
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "auto-answer hint to 1001: {inv}");
    a.call_state("CONFIRMED").await;
    let inv_b = b.rings().await;
    assert_eq!(inv_b["auto"], false, "no hint to the callee: {inv_b}");
    assert!(inv_b["from"].as_str().unwrap().contains("1001"), "{inv_b}");
    let at_b = ev.new_call_at("1002").await;
    ev.state(call.id(), CallState::Ringback).await;
    ev.state(&at_b, CallState::Offering).await;

    b.answer().await;
    b.call_state("CONFIRMED").await;
    ev.state(call.id(), CallState::Connected).await;
    ev.state(&at_b, CallState::Connected).await;
    let states = ev.states_of(call.id());
    let before_ringback: Vec<_> = states
        .iter()
        .take_while(|s| **s != CallState::Ringback)
        .collect();
    assert!(
        before_ringback.contains(&&CallState::Dialing)
            || before_ringback.contains(&&CallState::Proceeding),
        "{states:?}"
    );
    // TAPI: "Monitors receive LINE_CALLSTATE(LINECALLSTATE_UNKNOWN) for a
    // call that another app just created via lineMakeCall ... and the real
    // state follows shortly."
    desk_ev.state(call.id(), CallState::Connected).await;
    let seen = desk_ev.states_of(call.id());
    assert_eq!(seen.first(), Some(&CallState::Unknown), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| **s == CallState::Unknown).count(), 1);
    // The call the phone 1002 was offered is nobody's request: its real state.
    let seen = desk_ev.states_of(&at_b);
    assert_eq!(seen.first(), Some(&CallState::Offering), "{seen:?}");

    // Who talks to whom: each hears the other's tone.
    a.tone(1000);
    b.tone(600);
    assert_hear_each_other(&mut a, &mut b, tapir.dir(), "talk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_from_a_phone_without_auto_answer_rings_it_until_its_user_answers() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1002", "1003"]).await;

    let call = app.address("1002").create_call("1003").await.unwrap();
    let inv = a.rings().await;
    assert_eq!(inv["auto"], false, "1002 has no auto-answer: {inv}");
    // Nobody answered at 1002: 1003 is not called yet.
    b.expect_no_event(
        "an INVITE before the caller answered",
        Duration::from_millis(1500),
        |e| e["event"] == "incoming",
    )
    .await;
    a.answer().await;
    a.call_state("CONFIRMED").await;
    b.ring_and_answer().await;
    let info = wait_call_state(&app, call.id(), CallState::Connected).await;
    assert_eq!(info.connected.map(|p| p.address).as_deref(), Some("1003"));
    let at_b = ev.new_call_at("1003").await;
    let b_info = wait_call_state(&app, &at_b, CallState::Connected).await;
    assert_eq!(b_info.reason, CallReason::Direct);
    assert_eq!(b_info.caller.address, "1002");
}

/// lineMakeCall with a destination ending in `;` (partial dialing): the call
/// is placed with the digits so far and stays dialing; lineDial completes
/// it, and only then does the callee ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_with_a_partial_number_waits_for_dial() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;
    let mut call = app.address("1001").create_call("10;").await.unwrap();
    assert_eq!(call.state(), CallState::Dialing);
    // The caller's phone is brought off hook; nothing rings at 1002 yet.
    a.rings().await;
    a.call_state("CONFIRMED").await;
    b.expect_no_event(
        "an INVITE on partial digits",
        Duration::from_millis(800),
        |e| e["event"] == "incoming",
    )
    .await;
    assert_eq!(call.refresh().await.unwrap().state, CallState::Dialing);
    call.dial("02").await.unwrap();
    b.ring_and_answer().await;
    ev.state(call.id(), CallState::Connected).await;
    a.tone(600);
    b.tone(800);
    assert_hear_each_other(&mut a, &mut b, tapir.dir(), "partial").await;
    call.drop().await.unwrap();
    b.call_state("DISCONNECTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_completes_a_call_at_dialtone_and_a_busy_callee_shows_busy() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;

    // lineMakeCall without a number: 1001 is brought off hook at dial tone.
    let mut call = app.address("1001").dialtone().await.unwrap();
    a.rings().await;
    a.call_state("CONFIRMED").await;
    wait_call_state(&app, call.id(), CallState::Dialtone).await;
    // Partial dialing (`;`): nothing is routed yet.
    call.dial("10;").await.unwrap();
    b.expect_no_event(
        "an INVITE on partial digits",
        Duration::from_millis(800),
        |e| e["event"] == "incoming",
    )
    .await;
    assert_eq!(call.refresh().await.unwrap().state, CallState::Dialing);
    call.dial("02").await.unwrap();
    b.rings().await;
    ev.state(call.id(), CallState::Ringback).await;
    // The callee refuses: the caller's call stays, busy.
    b.cmd("reject").await;
    let mode = ev.state(call.id(), CallState::Busy).await;
    assert_eq!(mode.as_deref(), Some("station"));
    // Undialable digits are refused and change nothing.
    let (code, _) = tapir_e2e::error_code(app.address("1001").create_call("10x").await);
    assert_eq!(code, "invaladdress");
    call.drop().await.unwrap();
    a.call_state("DISCONNECTED").await;
    assert!(
        ev.log.iter().any(|e| matches!(
            &e.kind,
            EventKind::CallState { call: c, state: CallState::Idle, .. } if c == call.id()
        )) || wait_call_state(&app, call.id(), CallState::Idle)
            .await
            .state
            == CallState::Idle
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_from_a_route_point_invites_the_callee_at_once() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut b = tapir.phone("1002").await;
    // tapir is the caller: no phone of its own to bring off hook.
    let call = app
        .address(tapir_e2e::ROUTE_POINT)
        .create_call("1002")
        .await
        .unwrap();
    let inv = b.rings().await;
    assert_eq!(inv["auto"], false, "{inv}");
    assert!(
        inv["from"]
            .as_str()
            .unwrap()
            .contains(tapir_e2e::ROUTE_POINT),
        "{inv}"
    );
    ev.state(call.id(), CallState::Ringback).await;
    b.answer().await;
    b.call_state("CONFIRMED").await;
    ev.state(call.id(), CallState::Connected).await;
    // Calling one's own address is busy.
    let mut own = app
        .address(tapir_e2e::ROUTE_POINT)
        .create_call(tapir_e2e::ROUTE_POINT)
        .await
        .unwrap();
    let mode = ev.state(own.id(), CallState::Busy).await;
    assert_eq!(mode.as_deref(), Some("station"));
    own.drop().await.unwrap();
    // The app hangs up the route point's end: the phone gets a BYE.
    app.call(call.id()).await.unwrap().drop().await.unwrap();
    b.call_state("DISCONNECTED").await;
}
