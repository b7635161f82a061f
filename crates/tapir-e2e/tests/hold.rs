//! hold, unhold (`lineHold`, `lineUnhold`, `Hold(TRUE/FALSE)`) and swap hold
//! (`lineSwapHold`) end to end: tapir holds in the middle (re-INVITE to the
//! held party, music on hold), idempotently, with one hold state whether the
//! phone's key or the API held the call.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::CallState;
use tapir_e2e::{
    Phone, Tapir, assert_hear_each_other, listen, make_answered_call, wait_call_state,
};

/// Whether an event is a media status change.
fn media_event(e: &serde_json::Value) -> bool {
    e["event"] == "media"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_hold_and_unhold_are_idempotent_and_the_held_party_hears_music() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1003", "1002"]).await;
    a.dial("1002").await;
    b.ring_and_answer().await;
    a.call_state("CONFIRMED").await;
    let at_a = ev.new_call_at("1003").await;
    wait_call_state(&app, &at_a, CallState::Connected).await;
    a.tone(1000);
    b.tone(600);
    assert_hear_each_other(&mut a, &mut b, tapir.dir(), "talking").await;
    a.clear();
    b.clear();

    let mut call = app.call(&at_a).await.unwrap();
    call.hold(true).await.unwrap();
    assert_eq!(call.state(), CallState::OnHold);
    ev.state(&at_a, CallState::OnHold).await;
    // tapir holds in the middle (1003 has no remote control): both phones
    // get a hold re-INVITE from tapir.
    b.media("remote_hold").await;
    a.media("remote_hold").await;
    // Holding again succeeds and changes nothing: no second re-INVITE.
    call.hold(true).await.unwrap();
    assert_eq!(call.state(), CallState::OnHold);
    b.expect_no_event(
        "a second hold re-INVITE",
        Duration::from_millis(1000),
        media_event,
    )
    .await;
    a.expect_no_event(
        "a second hold re-INVITE",
        Duration::from_millis(100),
        media_event,
    )
    .await;
    let heard = listen(&mut [&mut a, &mut b], tapir.dir(), "held").await;
    let held = &heard[1];
    assert!(
        !heard[0].hears(600),
        "the holder does not hear 1002: {:?}",
        heard[0].levels(&[1000, 600])
    );
    assert!(
        !held.hears(1000),
        "the held party does not hear 1003: {:?}",
        held.levels(&[1000, 600])
    );
    assert!(
        held.energy() > 1e3,
        "music on hold, not silence: {}",
        held.energy()
    );

    call.hold(false).await.unwrap();
    assert_eq!(call.state(), CallState::Connected);
    b.media("active").await;
    a.media("active").await;
    call.hold(false).await.unwrap();
    assert_eq!(call.state(), CallState::Connected);
    b.expect_no_event(
        "a re-INVITE for an unhold of a talking call",
        Duration::from_millis(1000),
        media_event,
    )
    .await;
    a.expect_no_event(
        "a re-INVITE for an unhold of a talking call",
        Duration::from_millis(100),
        media_event,
    )
    .await;
    assert_hear_each_other(&mut a, &mut b, tapir.dir(), "again").await;
    // The far party's call stayed connected throughout.
    let states = {
        let at_b = ev.new_call_at("1002").await;
        ev.drain(Duration::from_millis(200)).await;
        ev.states_of(&at_b)
    };
    assert!(!states.contains(&CallState::OnHold), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phones_hold_key_and_the_api_share_one_hold_state() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1003", "1002"]).await;
    a.dial("1002").await;
    b.ring_and_answer().await;
    a.call_state("CONFIRMED").await;
    let at_a = ev.new_call_at("1003").await;
    wait_call_state(&app, &at_a, CallState::Connected).await;
    a.clear();
    b.clear();

    // The user presses hold on 1003: the call is onhold for the app too.
    a.cmd("hold").await;
    a.media("local_hold").await;
    ev.state(&at_a, CallState::OnHold).await;
    b.media("remote_hold").await;
    // The app's hold of that call is the same hold: nothing toggles.
    let mut call = app.call(&at_a).await.unwrap();
    call.hold(true).await.unwrap();
    assert_eq!(call.state(), CallState::OnHold);
    b.expect_no_event("another re-INVITE", Duration::from_millis(800), media_event)
        .await;
    // The user retrieves on the phone: connected for the app, both talk.
    a.cmd("unhold").await;
    a.media("active").await;
    ev.state(&at_a, CallState::Connected).await;
    b.media("active").await;
    assert_eq!(call.refresh().await.unwrap().state, CallState::Connected);
}

/// 1001 (auto-answer) on a call with 1002 (held) and one with 1003, made by
/// the app; 1001 plays 1000 Hz into the first and 1200 Hz into the second.
async fn two_calls(
    tapir: &Tapir,
) -> (
    tapir_client::Client,
    tapir_e2e::Events,
    [Phone; 3],
    [String; 2],
) {
    let (app, ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let mut first = make_answered_call(&app, &mut a, &mut b).await;
    b.tone(600);
    first.hold(true).await.unwrap();
    b.media("remote_hold").await;
    let second = app.address("1001").create_call("1003").await.unwrap();
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    c.ring_and_answer().await;
    wait_call_state(&app, second.id(), CallState::Connected).await;
    a.tone(1200);
    c.tone(800);
    (
        app,
        ev,
        [a, b, c],
        [first.id().to_string(), second.id().to_string()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_hold_exchanges_who_talks_and_who_hears_music() {
    let tapir = Tapir::start().await;
    let (app, mut ev, [mut a, mut b, mut c], [first, second]) = two_calls(&tapir).await;
    // 1001's current call is the second one, with 1003; 1002 is held.
    let before = listen(&mut [&mut a, &mut b, &mut c], tapir.dir(), "before").await;
    let l = |i: usize| before[i].levels(&[600, 800, 1200]);
    assert!(
        before[0].hears(800) && !before[0].hears(600),
        "1001 talks to 1003: {:?}",
        l(0)
    );
    assert!(before[2].hears(1200), "1003 talks to 1001: {:?}", l(2));
    assert!(!before[1].hears(1200), "1002 is held: {:?}", l(1));
    b.clear();
    c.clear();

    let mut active = app.call(&second).await.unwrap();
    let held = app.call(&first).await.unwrap();
    active.swap_hold(&held).await.unwrap();
    ev.state(&second, CallState::OnHold).await;
    ev.state(&first, CallState::Connected).await;
    c.media("remote_hold").await;
    b.media("active").await;
    let after = listen(&mut [&mut a, &mut b, &mut c], tapir.dir(), "after").await;
    let l = |i: usize| after[i].levels(&[600, 800, 1200]);
    // 1001's second call is held now: it hears neither 1003 nor 1002 there,
    // and 1003 hears music instead of 1001.
    assert!(!after[0].hears(800) && !after[0].hears(600), "{:?}", l(0));
    assert!(!after[2].hears(1200), "{:?}", l(2));
    assert!(
        after[2].energy() > 1e3,
        "music on hold: {}",
        after[2].energy()
    );
    // 1002 is back with 1001 (which plays nothing into that call): no more
    // music, and nothing of 1003.
    assert!(
        before[1].energy() > 1e3,
        "1002 had music: {}",
        before[1].energy()
    );
    assert!(
        after[1].energy() < before[1].energy() / 10.0,
        "1002 no longer hears music: {} then {}",
        before[1].energy(),
        after[1].energy()
    );
    assert!(!after[1].hears(800), "{:?}", l(1));
}
