//! forward (`lineForward`, `ITAddress::Forward`), complete call
//! (`lineCompleteCall`: camp-on, callback, intrude, message) and uncomplete
//! call (`lineUncompleteCall`) end to end.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallReason, CallState, CompletionMode, EventKind, ForwardRule};
use tapir_e2e::{
    Events, Options, Phone, TWO_ADDRESS_LINE, Tapir, assert_hear_each_other, listen, offered,
    wait_call_state,
};

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

/// lineForward with bAllAddresses TRUE: "all addresses on the line are
/// forwarded". The rules go on the line through the API
/// (`PUT /v1/lines/{line}/forwarding`, `Line::forward`); then a call to
/// EACH address of the two-address line rings the forward target's phone
/// and not the line's own, and an empty list restores normal ringing at
/// both addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_line_forwarding_moves_the_calls_of_every_address_and_clearing_restores_ringing() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut line_phone] = tapir.phones(["1002", "1003", TWO_ADDRESS_LINE[0]]).await;
    b.tone(600);
    c.tone(1000);
    line_phone.tone(1400);
    let line = app.line(TWO_ADDRESS_LINE[0]).await.unwrap();
    assert_eq!(line.info().addresses, TWO_ADDRESS_LINE);

    let set = line
        .forward(&[ForwardRule::new("unconditional", "1003")], None)
        .await
        .unwrap();
    assert_eq!(
        set.addresses
            .iter()
            .map(|a| (a.address.as_str(), a.forwarding.rules.len()))
            .collect::<Vec<_>>(),
        [(TWO_ADDRESS_LINE[0], 1), (TWO_ADDRESS_LINE[1], 1)]
    );
    for address in TWO_ADDRESS_LINE {
        ev.wait(&format!("address.forwarding of {address}"), |e| {
            matches!(&e.kind, EventKind::AddressForwarding { address: a, rules, .. } if a == address && rules.len() == 1)
        })
        .await;
    }
    for address in TWO_ADDRESS_LINE {
        b.dial(address).await;
        let at_b = ev.new_call_at("1002").await;
        let o = offered(&app, &mut ev, &mut c).await;
        assert_eq!(o.info.reason, CallReason::FwdUncond, "a call to {address}");
        assert_eq!(o.info.redirecting.unwrap().address, address);
        line_phone
            .expect_no_event(
                "an INVITE at the forwarded line's phone",
                Duration::from_millis(300),
                |e| e["event"] == "incoming",
            )
            .await;
        c.answer().await;
        c.call_state("CONFIRMED").await;
        b.call_state("CONFIRMED").await;
        assert_hear_each_other(&mut b, &mut c, tapir.dir(), &format!("fwd-{address}")).await;
        b.cmd("hangup").await;
        c.call_state("DISCONNECTED").await;
        b.call_state("DISCONNECTED").await;
        ev.state(&at_b, CallState::Idle).await;
        ev.state(&o.call, CallState::Idle).await;
    }

    // Cancelling for the whole line: both addresses ring the line's phone.
    let cleared = line.forward(&[], None).await.unwrap();
    assert!(
        cleared
            .addresses
            .iter()
            .all(|a| a.forwarding.rules.is_empty())
    );
    for address in TWO_ADDRESS_LINE {
        b.dial(address).await;
        line_phone.rings().await;
        let call = ev.new_call_at(address).await;
        ev.state(&call, CallState::Offering).await;
        let info = wait_call_state(&app, &call, CallState::Offering).await;
        assert_eq!(info.reason, CallReason::Direct, "a call to {address}");
        assert_eq!(info.called.address, address);
        c.expect_no_event(
            "an INVITE at the former forward target",
            Duration::from_millis(300),
            |e| e["event"] == "incoming",
        )
        .await;
        line_phone.answer().await;
        line_phone.call_state("CONFIRMED").await;
        b.call_state("CONFIRMED").await;
        assert_hear_each_other(
            &mut b,
            &mut line_phone,
            tapir.dir(),
            &format!("direct-{address}"),
        )
        .await;
        b.cmd("hangup").await;
        line_phone.call_state("DISCONNECTED").await;
        b.call_state("DISCONNECTED").await;
        ev.state(&call, CallState::Idle).await;
    }
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
