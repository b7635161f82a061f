//! blind transfer (`lineBlindTransfer`), setup transfer (`lineSetupTransfer`),
//! complete transfer (`lineCompleteTransfer`, transfer mode) and finish
//! (`ITBasicCallControl::Finish`, transfer mode) end to end, with audio.

#![allow(clippy::unwrap_used, missing_docs)]

use tapir_client::{Call, CallReason, CallState, Client, TransferMode};
use tapir_e2e::{
    Events, Phone, Tapir, assert_hear_each_other, listen, make_answered_call, offered,
    wait_call_state,
};

/// 1001 (auto-answer) called 1002 through the app; both talk.
async fn connected(tapir: &Tapir) -> (Client, Events, Phone, Phone, Call) {
    let (app, ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;
    let call = make_answered_call(&app, &mut a, &mut b).await;
    (app, ev, a, b, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_releases_the_transferor_and_rings_the_destination() {
    let tapir = Tapir::start().await;
    let (app, mut ev, mut a, mut b, mut call) = connected(&tapir).await;
    let mut c = tapir.phone("1003").await;
    let at_b = ev.new_call_at("1002").await;

    call.blind_transfer("1003").await.unwrap();
    // tapir is in the middle: the transferor's phone gets a BYE, the far
    // party's leg is re-routed (no REFER needed).
    a.call_state("DISCONNECTED").await;
    ev.state(call.id(), CallState::Idle).await;
    let info = offered(&app, &mut ev, &mut c).await.info;
    assert_eq!(info.reason, CallReason::Transfer);
    assert_eq!(info.redirecting.unwrap().address, "1001");
    ev.state(&at_b, CallState::Ringback).await;
    c.answer().await;
    c.call_state("CONFIRMED").await;
    ev.state(&at_b, CallState::Connected).await;
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "transferred").await;
    // The transferred party's dialog was never ended.
    b.expect_no_event(
        "a BYE at 1002",
        std::time::Duration::from_millis(200),
        |e| e["event"] == "call" && e["state"] == "DISCONNECTED",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultation_transfer_joins_the_two_far_parties() {
    let tapir = Tapir::start().await;
    let (app, mut ev, mut a, mut b, mut call) = connected(&tapir).await;
    let mut c = tapir.phone("1003").await;

    // TAPI 3 Transfer: "Call transfer involves setting up a consultation
    // call in preparation for the transfer"; it dials the consultation call
    // and leaves the transfer pending until Finish(FM_ASTRANSFER).
    let mut consult = call.transfer("1003").await.unwrap();
    ev.state(call.id(), CallState::OnHoldPendTransfer).await;
    // The held party hears music; the controller's phone is brought off
    // hook again for the consultation call (auto-answer).
    b.media("remote_hold").await;
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    c.ring_and_answer().await;
    wait_call_state(&app, consult.id(), CallState::Connected).await;
    // 1001 talks to 1003 while 1002 waits.
    a.tone(1000);
    b.tone(600);
    c.tone(800);
    let heard = listen(&mut [&mut a, &mut b, &mut c], tapir.dir(), "consulting").await;
    assert!(
        heard[0].hears(800) && !heard[0].hears(600),
        "{:?}",
        heard[0].levels(&[600, 800])
    );
    assert!(
        heard[2].hears(1000) && !heard[2].hears(600),
        "{:?}",
        heard[2].levels(&[600, 1000])
    );
    assert!(
        !heard[1].hears(1000) && !heard[1].hears(800),
        "{:?}",
        heard[1].levels(&[800, 1000])
    );

    // Still consulting: nothing was transferred yet.
    wait_call_state(&app, call.id(), CallState::OnHoldPendTransfer).await;
    let conference = consult.finish(TransferMode::Transfer).await.unwrap();
    assert!(conference.is_none());
    // The transferor leaves: both of its dialogs get a BYE.
    a.call_state("DISCONNECTED").await;
    a.call_state("DISCONNECTED").await;
    ev.state(call.id(), CallState::Idle).await;
    ev.state(consult.id(), CallState::Idle).await;
    b.media("active").await;
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "joined").await;
    let at_c = ev.new_call_at("1003").await;
    let info = wait_call_state(&app, &at_c, CallState::Connected).await;
    assert_eq!(info.connected.unwrap().address, "1002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_as_transfer_while_the_consulted_party_still_rings() {
    let tapir = Tapir::start().await;
    let (app, mut ev, mut a, mut b, mut call) = connected(&tapir).await;
    let mut c = tapir.phone("1003").await;
    let at_b = ev.new_call_at("1002").await;
    let mut consult = call.setup_transfer().await.unwrap();
    a.rings().await;
    consult.dial("1003").await.unwrap();
    c.rings().await;
    wait_call_state(&app, consult.id(), CallState::Ringback).await;
    // Transfer on ringing (TAPI 3 Finish on the consultation call).
    let conference = consult.finish(TransferMode::Transfer).await.unwrap();
    assert!(conference.is_none());
    a.call_state("DISCONNECTED").await;
    ev.state(call.id(), CallState::Idle).await;
    ev.state(&at_b, CallState::Ringback).await;
    c.answer().await;
    c.call_state("CONFIRMED").await;
    ev.state(&at_b, CallState::Connected).await;
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "finished").await;
}
