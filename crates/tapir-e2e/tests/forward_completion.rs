//! forward (`lineForward`, `ITAddress::Forward`), complete call
//! (`lineCompleteCall`: camp-on, callback, intrude, message) and uncomplete
//! call (`lineUncompleteCall`) end to end.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallReason, CallState, CompletionMode, EventKind, ForwardRule};
use tapir_e2e::{Events, Options, Phone, Tapir, listen, offered, wait_call_state};

fn one_call_each() -> Options {
    Options {
        max_calls: Some(1),
        ..Options::default()
    }
}

/// 1004 and 1003 talk, so 1003 (one call appearance) is busy; 1002 calls
/// 1003 and sees busy. Returns the app's id of 1002's call.
async fn busy(ev: &mut Events, b: &mut Phone, c: &mut Phone, d: &mut Phone) -> String {
    d.dial("1003").await;
    c.ring_and_answer().await;
    d.call_state("CONFIRMED").await;
    ev.new_call_at("1004").await;
    ev.new_call_at("1003").await;
    b.dial("1003").await;
    let at_b = ev.new_call_at("1002").await;
    let mode = ev.state(&at_b, CallState::Busy).await;
    assert_eq!(mode.as_deref(), Some("station"));
    // The busy caller hears tapir's busy tone (early media), the busy phone
    // is not disturbed.
    b.call_state("EARLY").await;
    c.expect_no_event(
        "a second INVITE at the busy phone",
        Duration::from_millis(300),
        |e| e["event"] == "incoming",
    )
    .await;
    at_b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_and_busy_forwarding_and_do_not_disturb() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;

    let st = app
        .address("1002")
        .forward(&[ForwardRule::new("unconditional", "1003")], None)
        .await
        .unwrap();
    assert_eq!(st.forwarding.rules.len(), 1);
    ev.wait("address.forwarding", |e| {
        matches!(&e.kind, EventKind::AddressForwarding { address, rules, .. } if address == "1002" && rules.len() == 1)
    })
    .await;
    d.dial("1002").await;
    let info = offered(&app, &mut ev, &mut c).await.info;
    ev.new_call_at("1004").await;
    assert_eq!(info.reason, CallReason::FwdUncond);
    assert_eq!(info.redirecting.unwrap().address, "1002");
    b.expect_no_event(
        "an INVITE at the forwarding phone",
        Duration::from_millis(300),
        |e| e["event"] == "incoming",
    )
    .await;
    c.answer().await;
    d.call_state("CONFIRMED").await;
    d.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;

    // Busy forwarding: the phone that refuses counts as busy.
    app.address("1002")
        .forward(&[ForwardRule::new("busy", "1003")], None)
        .await
        .unwrap();
    d.dial("1002").await;
    b.rings().await;
    b.cmd("reject").await;
    let info = offered(&app, &mut ev, &mut c).await.info;
    ev.new_call_at("1004").await;
    assert_eq!(info.reason, CallReason::FwdBusy);
    c.answer().await;
    d.call_state("CONFIRMED").await;
    d.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;

    // Do not disturb: a rule without destination; the caller sees busy.
    app.address("1002")
        .forward(
            &[ForwardRule {
                mode: "unconditional".into(),
                to: None,
                caller: None,
            }],
            None,
        )
        .await
        .unwrap();
    d.dial("1002").await;
    let at_d = ev.new_call_at("1004").await;
    let mode = ev.state(&at_d, CallState::Busy).await;
    assert_eq!(mode.as_deref(), Some("station"));
    b.expect_no_event(
        "an INVITE at a do-not-disturb phone",
        Duration::from_millis(300),
        |e| e["event"] == "incoming",
    )
    .await;
    // An empty list cancels forwarding.
    let st = app.address("1002").forward(&[], None).await.unwrap();
    assert!(st.forwarding.rules.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_forwarding_moves_a_ringing_call_after_one_ring() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    app.address("1002")
        .forward(&[ForwardRule::new("noanswer", "1003")], Some(1))
        .await
        .unwrap();
    d.dial("1002").await;
    b.rings().await;
    let at_b = ev.new_call_at("1002").await;
    // One ring (6 s) later: 1002 stops ringing, 1003 rings.
    b.wait_event_for("the CANCEL after one ring", Duration::from_secs(12), |e| {
        e["event"] == "call" && e["state"] == "DISCONNECTED"
    })
    .await;
    let mode = ev.state(&at_b, CallState::Disconnected).await;
    assert_eq!(mode.as_deref(), Some("forwarded"));
    let info = offered(&app, &mut ev, &mut c).await.info;
    assert_eq!(info.reason, CallReason::FwdNoAnswer);
    c.answer().await;
    d.call_state("CONFIRMED").await;
}

/// lineCompleteCall camp-on: "After this function completes, the call
/// typically transitions to idle. When the called station or network enters
/// a state where the call can be completed as requested, the application is
/// notified by a LINE_CALLSTATE message with call state equal to offering.
/// The call's LINECALLINFO record lists the reason for the call as
/// CALLCOMPLETION and also provides the completion identifier."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camp_on_rings_the_caller_back_when_the_address_frees_and_uncomplete_cancels() {
    let tapir = Tapir::start_with(one_call_each()).await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    let at_b = busy(&mut ev, &mut b, &mut c, &mut d).await;

    // Camp on: the caller's call goes idle; then cancel the request.
    let completion = app
        .call(&at_b)
        .await
        .unwrap()
        .complete(CompletionMode::CampOn, None)
        .await
        .unwrap();
    ev.state(&at_b, CallState::Idle).await;
    b.call_state("DISCONNECTED").await;
    completion.cancel().await.unwrap();
    // Camp on again from a new busy call; 1004 hangs up, 1003 is free.
    b.dial("1003").await;
    let again = ev.new_call_at("1002").await;
    ev.state(&again, CallState::Busy).await;
    let completion = app
        .call(&again)
        .await
        .unwrap()
        .complete(CompletionMode::CampOn, None)
        .await
        .unwrap();
    ev.state(&again, CallState::Idle).await;
    b.call_state("DISCONNECTED").await;
    d.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;
    // The requester is offered a new call (callcompletion, the completion
    // id); answering it rings 1003 (campedon).
    let back = offered(&app, &mut ev, &mut b).await.info;
    assert_eq!(back.reason, CallReason::CallCompletion);
    assert_eq!(back.completion.as_deref(), Some(completion.id()));
    b.answer().await;
    let info = offered(&app, &mut ev, &mut c).await.info;
    assert_eq!(info.reason, CallReason::CampedOn);
    c.answer().await;
    b.call_state("CONFIRMED").await;
    ev.state(&back.id, CallState::Connected).await;
    let done = ev
        .wait("completion.done", |e| matches!(&e.kind, EventKind::CompletionDone { completion: c, .. } if c == completion.id()))
        .await;
    let EventKind::CompletionDone { completed, .. } = done.kind else {
        unreachable!()
    };
    assert!(completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_rings_the_caller_when_the_address_frees_then_calls_it() {
    let tapir = Tapir::start_with(one_call_each()).await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    let at_b = busy(&mut ev, &mut b, &mut c, &mut d).await;
    app.call(&at_b)
        .await
        .unwrap()
        .complete(CompletionMode::Callback, None)
        .await
        .unwrap();
    ev.state(&at_b, CallState::Idle).await;
    b.call_state("DISCONNECTED").await;
    d.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;
    // 1003 is free: 1002 rings first (reason callcompletion), then 1003.
    b.ring_and_answer().await;
    c.ring_and_answer().await;
    let info = app.calls().await.unwrap().1;
    let back = info
        .iter()
        .find(|c| c.info().address == "1002" && c.info().reason == CallReason::CallCompletion)
        .unwrap_or_else(|| panic!("a callcompletion call at 1002: {info:?}"));
    // The new call carries the completion id and belongs to the app that
    // asked.
    assert!(back.info().completion.is_some());
    assert_eq!(back.info().privilege, tapir_client::Privilege::Owner);
    wait_call_state(&app, back.id(), CallState::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intrude_joins_the_busy_call_and_message_reaches_the_app() {
    let tapir = Tapir::start_with(one_call_each()).await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    let at_b = busy(&mut ev, &mut b, &mut c, &mut d).await;
    app.call(&at_b)
        .await
        .unwrap()
        .complete(CompletionMode::Intrude, None)
        .await
        .unwrap();
    ev.state(&at_b, CallState::Connected).await;
    b.call_state("CONFIRMED").await;
    b.tone(600);
    c.tone(800);
    d.tone(1400);
    let heard = listen(&mut [&mut b, &mut c, &mut d], tapir.dir(), "intruded").await;
    let l = |i: usize| heard[i].levels(&[600, 800, 1400]);
    assert!(
        heard[0].hears(800) && heard[0].hears(1400),
        "1002 hears both: {:?}",
        l(0)
    );
    assert!(
        heard[1].hears(600) && heard[1].hears(1400),
        "1003 hears both: {:?}",
        l(1)
    );
    assert!(
        heard[2].hears(600) && heard[2].hears(800),
        "1004 hears both: {:?}",
        l(2)
    );
    b.cmd("hangup").await;
    ev.state(&at_b, CallState::Idle).await;

    // Message mode: the call ends, the message id reaches the app.
    b.dial("1003").await;
    let at_b2 = ev.new_call_at("1002").await;
    ev.state(&at_b2, CallState::Busy).await;
    let completion = app
        .call(&at_b2)
        .await
        .unwrap()
        .complete(CompletionMode::Message, Some(3))
        .await
        .unwrap();
    ev.state(&at_b2, CallState::Idle).await;
    b.call_state("DISCONNECTED").await;
    let done = ev
        .wait("completion.done", |e| matches!(&e.kind, EventKind::CompletionDone { completion: c, .. } if c == completion.id()))
        .await;
    let EventKind::CompletionDone { message_id, to, .. } = done.kind else {
        unreachable!()
    };
    assert_eq!((message_id, to.as_str()), (Some(3), "1003"));
}
