//! answer (`lineAnswer`), accept (`lineAccept`), drop (`lineDrop`),
//! deallocate (`lineDeallocateCall`) end to end.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::CallState;
use tapir_e2e::{ROUTE_POINT, Tapir, error_code, offered, wait_call_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_on_a_phone_that_cannot_be_asked_is_operationunavail_and_accept_keeps_it_ringing() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1003", "1002"]).await;

    a.dial("1002").await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;
    let mut call = app.call(&at_b).await.unwrap();
    // 1002 has no remote control: tapir cannot make it go off hook.
    let (code, message) = error_code(call.answer().await);
    assert_eq!(code, "operationunavail");
    assert!(
        message.contains("answer") && message.contains("phone"),
        "a sentence that says why: {message}"
    );
    // accept: the call stays offered at the phone (lineAccept).
    call.accept().await.unwrap();
    ev.state(&at_b, CallState::Accepted).await;
    b.expect_no_event(
        "a change at the ringing phone",
        Duration::from_millis(1000),
        |e| e["event"] == "call" && (e["state"] == "CONFIRMED" || e["state"] == "DISCONNECTED"),
    )
    .await;
    // The user answers on the phone.
    b.answer().await;
    b.call_state("CONFIRMED").await;
    a.call_state("CONFIRMED").await;
    ev.state(&at_b, CallState::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_on_a_route_point_connects_the_calling_phone() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1002").await;
    a.dial(ROUTE_POINT).await;
    let at_rp = ev.new_call_at(ROUTE_POINT).await;
    ev.state(&at_rp, CallState::Offering).await;
    a.expect_no_event(
        "an answer before the app answers",
        Duration::from_millis(800),
        |e| e["event"] == "call" && e["state"] == "CONFIRMED",
    )
    .await;
    app.call(&at_rp).await.unwrap().answer().await.unwrap();
    let ok = a.call_state("CONFIRMED").await;
    assert_eq!(ok["code"], 200, "{ok}");
    ev.state(&at_rp, CallState::Connected).await;
    // The app drops its end: the phone gets a BYE.
    app.call(&at_rp).await.unwrap().drop().await.unwrap();
    a.call_state("DISCONNECTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_ends_both_phones_and_the_sole_owner_may_deallocate_a_live_call() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1003", "1002"]).await;
    a.dial("1002").await;
    b.ring_and_answer().await;
    a.call_state("CONFIRMED").await;
    let at_a = ev.new_call_at("1003").await;
    let at_b = ev.new_call_at("1002").await;
    wait_call_state(&app, &at_b, CallState::Connected).await;

    // TAPI 2.0 and later: "the sole owner of the call can deallocate its
    // handle even though the call is not in the idle state". The handle
    // goes; the phones go on talking.
    app.call(&at_a).await.unwrap().deallocate().await.unwrap();
    let (code, _) = error_code(app.call(&at_a).await);
    assert_eq!(code, "invalcallhandle");
    wait_call_state(&app, &at_b, CallState::Connected).await;

    app.call(&at_b).await.unwrap().drop().await.unwrap();
    // tapir sends BYE to the phone of the dropped call and to the far party.
    b.call_state("DISCONNECTED").await;
    a.call_state("DISCONNECTED").await;
    ev.state(&at_b, CallState::Idle).await;

    app.call(&at_b).await.unwrap().deallocate().await.unwrap();
    let (code, _) = error_code(app.call(&at_b).await);
    assert_eq!(code, "invalcallhandle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_of_an_offering_call_rejects_it() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1003", "1002"]).await;
    a.dial("1002").await;
    let at_b = offered(&app, &mut ev, &mut b).await.call;
    let at_a = ev.new_call_at("1003").await;
    app.call(&at_b).await.unwrap().drop().await.unwrap();
    // The ringing phone is cancelled, the caller is refused.
    b.call_state("DISCONNECTED").await;
    let end = a.call_state("DISCONNECTED").await;
    let code = end["code"].as_i64().unwrap();
    assert!(
        (400..700).contains(&code),
        "the caller gets a final error: {end}"
    );
    let mode = ev.state(&at_a, CallState::Disconnected).await;
    assert_eq!(mode.as_deref(), Some("reject"));
    // The phone's call has ended: the caller's call goes idle.
    ev.state(&at_a, CallState::Idle).await;
}
