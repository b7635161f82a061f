//! park (`linePark`, `ParkDirect`, `ParkIndirect`), unpark (`lineUnpark`),
//! pickup (`linePickup`) and redirect (`lineRedirect`) end to end: who rings,
//! who is released, who is bridged to whom (by audio), and that a refused
//! park bridges nothing by accident.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallReason, CallState, EventKind, PickupTarget};
use tapir_e2e::{
    Offered, Options, Phone, Tapir, assert_hear_each_other, error_code, listen, make_answered_call,
    offered, wait_call_state,
};

/// `caller` dials `callee`, which answers; returns the app's ids of the
/// caller's and the callee's calls.
async fn talk(
    ev: &mut tapir_e2e::Events,
    caller: &mut Phone,
    callee: &mut Phone,
) -> (String, String) {
    caller.dial(&callee.address.clone()).await;
    callee.ring_and_answer().await;
    caller.call_state("CONFIRMED").await;
    let at_caller = ev.new_call_at(&caller.address.clone()).await;
    let at_callee = ev.new_call_at(&callee.address.clone()).await;
    ev.state(&at_callee, CallState::Connected).await;
    (at_caller, at_callee)
}

fn is_bye(e: &serde_json::Value) -> bool {
    e["event"] == "call" && e["state"] == "DISCONNECTED"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directed_park_into_an_occupied_slot_fails_and_unpark_bridges_the_parked_party() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c, mut d] = tapir.phones(["1001", "1002", "1003", "1004"]).await;
    let (at_c, _) = talk(&mut ev, &mut c, &mut b).await;

    // 1003 parks 1002 at 7001: 1003's phone is released, 1002 hears music.
    let slot = app
        .call(&at_c)
        .await
        .unwrap()
        .park(Some("7001"))
        .await
        .unwrap();
    assert_eq!(slot, "7001");
    c.call_state("DISCONNECTED").await;
    let parked = ev
        .wait(
            "park.parked",
            |e| matches!(&e.kind, EventKind::Parked { slot, .. } if slot == "7001"),
        )
        .await;
    let parked_call = parked.kind.call().unwrap().to_string();
    let info = wait_call_state(&app, &parked_call, CallState::Connected).await;
    assert_eq!(info.address, "1002");
    assert_eq!(info.state_mode.as_deref(), Some("activeheld"));

    // 1004 and 1003 talk; parking that call into the occupied 7001 fails
    // and changes nothing: the two still hear each other, 1002 still music.
    let (at_d, _) = talk(&mut ev, &mut d, &mut c).await;
    let (code, message) = error_code(app.call(&at_d).await.unwrap().park(Some("7001")).await);
    assert_eq!(code, "invaladdress", "{message}");
    assert!(
        message.contains("7001"),
        "the sentence names the slot: {message}"
    );
    b.tone(600);
    c.tone(800);
    d.tone(1400);
    let heard = listen(&mut [&mut b, &mut c, &mut d], tapir.dir(), "refused").await;
    let l = |i: usize| heard[i].levels(&[600, 800, 1400]);
    assert!(
        !heard[0].hears(800) && !heard[0].hears(1400),
        "1002 is bridged to nobody: {:?}",
        l(0)
    );
    assert!(
        heard[0].energy() > 1e3,
        "1002 hears music: {}",
        heard[0].energy()
    );
    assert!(
        heard[1].hears(1400) && !heard[1].hears(600),
        "1003 hears 1004 only: {:?}",
        l(1)
    );
    assert!(
        heard[2].hears(800) && !heard[2].hears(600),
        "1004 hears 1003 only: {:?}",
        l(2)
    );
    for p in [&mut c, &mut d] {
        p.expect_no_event(
            "a BYE after the refused park",
            Duration::from_millis(100),
            is_bye,
        )
        .await;
    }

    // 1001 unparks 7001: its phone is brought off hook (auto-answer) and
    // talks to 1002.
    let unparked = app.address("1001").unpark("7001").await.unwrap();
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    a.call_state("CONFIRMED").await;
    let info = wait_call_state(&app, unparked.id(), CallState::Connected).await;
    assert_eq!(info.reason, CallReason::Unpark);
    let e = ev
        .wait(
            "park.unparked",
            |e| matches!(&e.kind, EventKind::Unparked { slot, .. } if slot == "7001"),
        )
        .await;
    let EventKind::Unparked { by, .. } = e.kind else {
        unreachable!()
    };
    assert_eq!(by.as_deref(), Some(unparked.id()));
    a.tone(1000);
    assert_hear_each_other(&mut a, &mut b, tapir.dir(), "unparked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_into_a_full_lot_fails_and_a_phone_dialling_a_slot_retrieves() {
    let tapir = Tapir::start_with(Options {
        park_slots: "7001-7002".into(),
        ..Options::default()
    })
    .await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d, mut e] = tapir.phones(["1002", "1003", "1004", "1005"]).await;
    // Fill the lot: 1002 (directed, 7001), 1004 (non-directed: 7002).
    let (at_c, _) = talk(&mut ev, &mut c, &mut b).await;
    app.call(&at_c)
        .await
        .unwrap()
        .park(Some("7001"))
        .await
        .unwrap();
    c.call_state("DISCONNECTED").await;
    let (at_c2, _) = talk(&mut ev, &mut c, &mut d).await;
    let slot = app.call(&at_c2).await.unwrap().park(None).await.unwrap();
    assert_eq!(slot, "7002");
    c.call_state("DISCONNECTED").await;

    // A third call cannot be parked: the lot is full; nothing changes.
    let (at_e, _) = talk(&mut ev, &mut e, &mut c).await;
    let (code, message) = error_code(app.call(&at_e).await.unwrap().park(None).await);
    assert_eq!(code, "resourceunavail", "{message}");
    assert!(!message.is_empty());
    let info = wait_call_state(&app, &at_e, CallState::Connected).await;
    assert_eq!(info.connected.unwrap().address, "1003");
    b.tone(600);
    d.tone(1400);
    e.tone(1000);
    c.tone(800);
    let heard = listen(&mut [&mut b, &mut c, &mut d, &mut e], tapir.dir(), "full").await;
    let l = |i: usize| heard[i].levels(&[600, 800, 1000, 1400]);
    assert!(
        heard[1].hears(1000) && !heard[1].hears(600) && !heard[1].hears(1400),
        "{:?}",
        l(1)
    );
    assert!(
        heard[3].hears(800) && !heard[3].hears(600) && !heard[3].hears(1400),
        "{:?}",
        l(3)
    );
    assert!(
        !heard[0].hears(1400) && !heard[0].hears(800) && !heard[0].hears(1000),
        "{:?}",
        l(0)
    );
    assert!(
        !heard[2].hears(600) && !heard[2].hears(800) && !heard[2].hears(1000),
        "{:?}",
        l(2)
    );

    // 1005 hangs up; 1003 dials 7002 and gets 1004 back.
    e.cmd("hangup").await;
    c.call_state("DISCONNECTED").await;
    c.dial("7002").await;
    c.call_state("CONFIRMED").await;
    ev.wait(
        "park.unparked from 7002",
        |e| matches!(&e.kind, EventKind::Unparked { slot, .. } if slot == "7002"),
    )
    .await;
    assert_hear_each_other(&mut c, &mut d, tapir.dir(), "retrieved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickup_of_a_ringing_address_cancels_it_and_bridges_the_picker() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    d.dial("1002").await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;

    let picked = app
        .address("1003")
        .pickup(&PickupTarget::Address("1002".into()))
        .await
        .unwrap();
    // The ringing phone is cancelled; the picker's phone rings (1003 has no
    // auto-answer) and its user answers.
    b.call_state("DISCONNECTED").await;
    let mode = ev.state(&at_b, CallState::Disconnected).await;
    assert_eq!(mode.as_deref(), Some("pickup"));
    c.ring_and_answer().await;
    let info = wait_call_state(&app, picked.id(), CallState::Connected).await;
    assert_eq!(info.reason, CallReason::Pickup);
    assert_eq!(info.redirecting.unwrap().address, "1002");
    d.call_state("CONFIRMED").await;
    c.tone(800);
    d.tone(1400);
    assert_hear_each_other(&mut c, &mut d, tapir.dir(), "picked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_pickup_takes_the_call_ringing_in_the_group() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut d] = tapir.phones(["1001", "1002", "1004"]).await;
    // Nothing rings in the group yet.
    let (code, _) = error_code(
        app.address("1001")
            .pickup(&PickupTarget::Group("sales".into()))
            .await,
    );
    assert_eq!(code, "invaladdress");
    let (code, _) = error_code(
        app.address("1001")
            .pickup(&PickupTarget::Group("nosuchgroup".into()))
            .await,
    );
    assert_eq!(code, "invalgroupid");

    d.dial("1002").await;
    offered(&app, &mut ev, &mut b).await;
    let picked = app
        .address("1001")
        .pickup(&PickupTarget::Group("sales".into()))
        .await
        .unwrap();
    b.call_state("DISCONNECTED").await;
    // 1001 is configured for auto-answer: brought off hook by tapir.
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    a.call_state("CONFIRMED").await;
    d.call_state("CONFIRMED").await;
    wait_call_state(&app, picked.id(), CallState::Connected).await;
    a.tone(1000);
    d.tone(1400);
    assert_hear_each_other(&mut a, &mut d, tapir.dir(), "group").await;
}

/// linePickup naming both the alerting address and a group: "If both are
/// specified, this is the group ID to which the alerting station belongs,
/// which is needed on some switches." With a group 1003 is not in, nothing
/// happens (`invalgroupid`, 1003 keeps ringing); with its group, 1003's
/// ringing call is cancelled and 1001, brought off hook, talks to the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickup_naming_the_address_and_its_group_takes_that_call() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut c, mut d] = tapir.phones(["1001", "1003", "1004"]).await;
    d.dial("1003").await;
    offered(&app, &mut ev, &mut c).await;
    let (code, _) = error_code(
        app.address("1001")
            .pickup(&PickupTarget::AddressInGroup(
                "1003".into(),
                "support".into(),
            ))
            .await,
    );
    assert_eq!(code, "invalgroupid");
    c.expect_no_event(
        "a CANCEL after a refused pickup",
        std::time::Duration::from_millis(300),
        |e| e["event"] == "call" && e["state"] == "DISCONNECTED",
    )
    .await;
    let picked = app
        .address("1001")
        .pickup(&PickupTarget::AddressInGroup("1003".into(), "sales".into()))
        .await
        .unwrap();
    c.call_state("DISCONNECTED").await;
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    a.call_state("CONFIRMED").await;
    d.call_state("CONFIRMED").await;
    wait_call_state(&app, picked.id(), CallState::Connected).await;
    a.tone(1000);
    d.tone(1400);
    assert_hear_each_other(&mut a, &mut d, tapir.dir(), "address-in-group").await;
}

/// linePickup naming neither an address nor a group: "the pickup is of a
/// call-waiting call on the address". 1001 talks to 1002 when 1003 calls
/// it; the app picks the waiting call up at 1001: 1002 is held (music), the
/// phone's ringing call is cancelled and tapir brings the phone off hook
/// for the picked-up call, so 1001 talks to 1003; swap hold toggles back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waiting_pickup_holds_the_talking_call_and_answers_the_waiting_one() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    let (code, _) = error_code(app.address("1001").pickup(&PickupTarget::CallWaiting).await);
    assert_eq!(code, "invaladdress", "nothing waits at 1001 yet");
    let first = make_answered_call(&app, &mut a, &mut b).await;
    let first_id = first.id().to_string();

    // Call waiting: a second INVITE reaches 1001's phone while it talks.
    c.dial("1001").await;
    let inv = a.rings().await;
    assert_eq!(inv["auto"], false, "{inv}");
    let waiting = ev
        .wait("the waiting call at 1001", |e| {
            matches!(&e.kind, EventKind::CallNew { address, call, .. }
                if address == "1001" && *call != first_id)
        })
        .await;
    let waiting = waiting.kind.call().unwrap().to_string();
    ev.state(&waiting, CallState::Offering).await;

    let mut picked = app
        .address("1001")
        .pickup(&PickupTarget::CallWaiting)
        .await
        .unwrap();
    assert_eq!(picked.info().reason, CallReason::Pickup);
    assert_eq!(picked.info().address, "1001");
    ev.state(&first_id, CallState::OnHold).await;
    let mode = ev.state(&waiting, CallState::Disconnected).await;
    assert_eq!(mode.as_deref(), Some("pickup"));
    b.media("remote_hold").await;
    a.call_state("DISCONNECTED").await;
    let inv = a.rings().await;
    assert_eq!(inv["auto"], true, "{inv}");
    a.call_state("CONFIRMED").await;
    c.call_state("CONFIRMED").await;
    let info = wait_call_state(&app, picked.id(), CallState::Connected).await;
    assert_eq!(info.caller.address, "1003");

    a.tone(1200);
    b.tone(600);
    c.tone(800);
    let heard = listen(&mut [&mut a, &mut b, &mut c], tapir.dir(), "waiting").await;
    let l = |i: usize| heard[i].levels(&[600, 800, 1200]);
    assert!(
        heard[0].hears(800) && !heard[0].hears(600),
        "1001 talks to 1003: {:?}",
        l(0)
    );
    assert!(heard[2].hears(1200), "1003 talks to 1001: {:?}", l(2));
    assert!(
        !heard[1].hears(1200) && heard[1].energy() > 1e3,
        "1002 is held, with music: {:?} {}",
        l(1),
        heard[1].energy()
    );

    // lineSwapHold toggles between the two calls.
    b.clear();
    c.clear();
    picked.swap_hold(&first).await.unwrap();
    ev.state(picked.id(), CallState::OnHold).await;
    ev.state(&first_id, CallState::Connected).await;
    c.media("remote_hold").await;
    b.media("active").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_of_a_call_a_phone_dialled_sends_302_and_the_phone_calls_the_new_target() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    d.dial("1002").await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;
    let at_d = ev.new_call_at("1004").await;

    app.call(&at_b)
        .await
        .unwrap()
        .redirect("1003")
        .await
        .unwrap();
    // 1004's INVITE is still unanswered: it gets a 302 to tapir for 1003,
    // follows it, and its own screen shows the new target. 1002 stops
    // ringing (CANCEL).
    let moved = d
        .wait_event("the 302", |e| e["event"] == "redirected")
        .await;
    let target = moved["target"].as_str().unwrap_or_default();
    assert!(target.contains("sip:1003@127.0.0.1"), "{moved}");
    b.call_state("DISCONNECTED").await;
    ev.state(&at_b, CallState::Idle).await;
    ev.state(&at_d, CallState::Idle).await;
    assert!(
        ev.states_of(&at_d).contains(&CallState::Disconnected),
        "{:?}",
        ev.states_of(&at_d)
    );
    // The phone's new INVITE is a new call from 1004 to 1003.
    let Offered {
        call: at_c, info, ..
    } = offered(&app, &mut ev, &mut c).await;
    let again = ev.new_call_at("1004").await;
    assert_eq!(info.caller.address, "1004");
    c.answer().await;
    c.call_state("CONFIRMED").await;
    d.call_state("CONFIRMED").await;
    ev.state(&again, CallState::Connected).await;
    // A connected call cannot be redirected.
    let (code, _) = error_code(app.call(&at_c).await.unwrap().redirect("1002").await);
    assert_eq!(code, "invalcallstate");
    c.tone(800);
    d.tone(1400);
    assert_hear_each_other(&mut c, &mut d, tapir.dir(), "redirected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_of_a_made_call_retargets_the_callers_leg() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c, mut d] = tapir.phones(["1002", "1003", "1004"]).await;
    // Third-party call control: tapir called 1004 first (its user picks
    // up), so there is no INVITE of 1004's to answer with a 302.
    let call = app.address("1004").create_call("1002").await.unwrap();
    let at_d = call.id().to_string();
    d.ring_and_answer().await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;

    app.call(&at_b)
        .await
        .unwrap()
        .redirect("1003")
        .await
        .unwrap();
    b.call_state("DISCONNECTED").await;
    ev.state(&at_b, CallState::Idle).await;
    let info = offered(&app, &mut ev, &mut c).await.info;
    assert_eq!(info.reason, CallReason::Redirect);
    assert_eq!(info.redirecting.unwrap().address, "1002");
    d.expect_no_event("a 302 or a BYE", Duration::from_millis(500), |e| {
        e["event"] == "redirected" || (e["event"] == "call" && e["state"] == "DISCONNECTED")
    })
    .await;
    c.answer().await;
    c.call_state("CONFIRMED").await;
    ev.state(&at_d, CallState::Connected).await;
    c.tone(800);
    d.tone(1400);
    assert_hear_each_other(&mut c, &mut d, tapir.dir(), "retargeted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_rings_back_at_the_parker_after_the_park_time() {
    let tapir = Tapir::start_with(Options {
        park_reminder_ms: Some(1500),
        ..Options::default()
    })
    .await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c] = tapir.phones(["1002", "1003"]).await;
    let (at_c, _) = talk(&mut ev, &mut c, &mut b).await;
    app.call(&at_c)
        .await
        .unwrap()
        .park(Some("7002"))
        .await
        .unwrap();
    c.call_state("DISCONNECTED").await;
    // Nobody unparks: the call comes back to 1003 (reason reminder).
    c.rings().await;
    let e = ev
        .wait(
            "park.unparked without by",
            |e| matches!(&e.kind, EventKind::Unparked { slot, by: None, .. } if slot == "7002"),
        )
        .await;
    assert!(e.kind.call().is_some());
    let back = ev.new_call_at("1003").await;
    let info = wait_call_state(&app, &back, CallState::Offering).await;
    assert_eq!(info.reason, CallReason::Reminder);
    c.answer().await;
    c.call_state("CONFIRMED").await;
    b.tone(600);
    c.tone(800);
    assert_hear_each_other(&mut b, &mut c, tapir.dir(), "reminded").await;
}
