//! Trunks end to end: a pjsua2 "carrier" (an account that never registers,
//! on its own loopback port) is the far network of trunk line 9000, added
//! through the operator API. Make call to an external number, a carrier's
//! call to a DID, forwarding to an external number and redirect of a call
//! that came in from the trunk, each checked on the carrier's side (what it
//! was asked to call, what it hears), on the phones and in the app's view.
//! Two carriers with dialled prefixes (`0` and `9`, trunk line 8000 added
//! at run time) each get the calls for their prefix, the prefix removed.
//! The trunk with digest credentials (the carrier challenges with 407) is
//! `tests/interop/test_trunk_auth.py`: SIPp plays that carrier.

#![allow(clippy::unwrap_used, missing_docs)]

use tapir_client::{CallReason, CallState, Client, ForwardRule};
use tapir_e2e::{
    ADMIN_TOKEN, Events, Offered, Options, Phone, TRUNK_LINE, Tapir, assert_hear_each_other,
    error_code, listen_for, offered, wait_call_state,
};

/// tapir with trunk line 9000 and its carrier, a pjsua2 account with
/// number `number` reached over `transport`, added as the trunk; returns
/// tapir, the carrier and the carrier's SIP port.
async fn with_carrier(number: &str, transport: &str) -> (Tapir, Phone, u16) {
    let tapir = Tapir::start_with(Options {
        trunk: true,
        ..Options::default()
    })
    .await;
    let (carrier, port) = tapir.carrier(number, transport).await;
    tapir.add_trunk("carrier", port, transport, None).await;
    (tapir, carrier, port)
}

/// `phone` rings from `caller`'s number: the From of its INVITE and the
/// app's view of the new call at its address (offered) both name it.
async fn rings_from(app: &Client, ev: &mut Events, phone: &mut Phone, caller: &str) -> Offered {
    let offered = offered(app, ev, phone).await;
    let from = offered.invite["from"].as_str().unwrap();
    assert!(from.contains(caller), "{}", offered.invite);
    assert_eq!(offered.info.caller.address, caller);
    offered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_call_to_an_external_number_leaves_on_the_trunk_and_both_hear_each_other() {
    let (tapir, mut carrier, port) = with_carrier("+4930555000", "udp").await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1001").await;

    // A canonical number as an app writes it: tapir dials it as the
    // current location (country 1, area 425) does, a local number.
    let call = app
        .address("1001")
        .create_call("+1 (425) 882-8080")
        .await
        .unwrap();
    a.rings().await;
    a.call_state("CONFIRMED").await;
    let inv = carrier.rings().await;
    let uri = inv["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("sip:8828080@127.0.0.1:{port}")),
        "the carrier is asked for the number: {inv}"
    );
    assert!(
        inv["from"].as_str().unwrap().contains("1001"),
        "the caller's identity: {inv}"
    );
    let out = ev.new_call_at(TRUNK_LINE).await;
    ev.state(call.id(), CallState::Ringback).await;
    carrier.answer().await;
    carrier.call_state("CONFIRMED").await;
    ev.state(call.id(), CallState::Connected).await;
    let info = wait_call_state(&app, &out, CallState::Connected).await;
    assert_eq!(info.called.address, "8828080");

    a.tone(1000);
    carrier.tone(600);
    assert_hear_each_other(&mut a, &mut carrier, tapir.dir(), "trunk-out").await;
    // The app hangs up: the carrier gets the BYE.
    app.call(call.id()).await.unwrap().drop().await.unwrap();
    carrier.call_state("DISCONNECTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_calls_a_did_and_the_phone_rings_with_the_callers_number() {
    let (tapir, mut carrier, _) = with_carrier("+4930555123", "udp").await;
    let (app, mut ev) = tapir.app().await;
    let mut b = tapir.phone("1002").await;

    // No registration, no digest: the carrier is known by its address.
    carrier.dial("1002").await;
    let at_b = rings_from(&app, &mut ev, &mut b, "+4930555123").await.call;
    let from_trunk = ev.new_call_at(TRUNK_LINE).await;
    b.answer().await;
    b.call_state("CONFIRMED").await;
    carrier.call_state("CONFIRMED").await;
    wait_call_state(&app, &at_b, CallState::Connected).await;
    wait_call_state(&app, &from_trunk, CallState::Connected).await;

    b.tone(700);
    carrier.tone(1300);
    assert_hear_each_other(&mut b, &mut carrier, tapir.dir(), "trunk-in").await;
    // The carrier hangs up: the phone's call ends.
    carrier.cmd("hangup").await;
    b.call_state("DISCONNECTED").await;
    ev.state(&at_b, CallState::Idle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_an_external_number_sends_the_call_out_on_the_trunk() {
    let (tapir, mut carrier, port) = with_carrier("+4930555000", "tcp").await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1001").await;
    app.address("1002")
        .forward(&[ForwardRule::new("unconditional", "0049301234")], None)
        .await
        .unwrap();

    // Over TCP this time: tapir opens the connection to the carrier.
    a.dial("1002").await;
    let inv = carrier.rings().await;
    let uri = inv["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("sip:0049301234@127.0.0.1:{port}")) && uri.contains("tcp"),
        "{inv}"
    );
    let out = ev.new_call_at(TRUNK_LINE).await;
    let info = wait_call_state(&app, &out, CallState::Offering).await;
    assert_eq!(info.reason, CallReason::FwdUncond);
    assert_eq!(info.called.address, "0049301234");
    carrier.answer().await;
    carrier.call_state("CONFIRMED").await;
    a.call_state("CONFIRMED").await;
    a.tone(900);
    carrier.tone(1500);
    assert_hear_each_other(&mut a, &mut carrier, tapir.dir(), "trunk-fwd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_of_a_call_from_the_trunk_answers_the_carrier_with_302() {
    let (tapir, mut carrier, _) = with_carrier("+4930555123", "udp").await;
    let (app, mut ev) = tapir.app().await;
    let [mut b, mut c] = tapir.phones(["1002", "1003"]).await;

    carrier.dial("1002").await;
    let at_b = rings_from(&app, &mut ev, &mut b, "+4930555123").await.call;
    app.call(&at_b)
        .await
        .unwrap()
        .redirect("1003")
        .await
        .unwrap();
    // The carrier's INVITE gets a 302 to tapir for 1003 (the carrier, not
    // tapir, places the call again); 1002 stops ringing.
    let moved = carrier
        .wait_event("the 302", |e| e["event"] == "redirected")
        .await;
    let target = moved["target"].as_str().unwrap_or_default();
    assert!(target.contains("sip:1003@127.0.0.1"), "{moved}");
    b.call_state("DISCONNECTED").await;
    // It follows it: a new call from the trunk rings 1003 with the
    // external caller's number.
    rings_from(&app, &mut ev, &mut c, "+4930555123").await;
    c.answer().await;
    c.call_state("CONFIRMED").await;
    carrier.call_state("CONFIRMED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_of_external_callers_moves_only_the_trunks_call() {
    let (tapir, mut carrier, _) = with_carrier("+4930555123", "udp").await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b, mut c] = tapir.phones(["1001", "1002", "1003"]).await;
    app.address("1002")
        .forward(&[ForwardRule::new("unconditionalexternal", "1003")], None)
        .await
        .unwrap();

    // From outside (the trunk): forwarded to 1003, 1002 never rings.
    carrier.dial("1002").await;
    let info = rings_from(&app, &mut ev, &mut c, "+4930555123").await.info;
    assert_eq!(info.reason, CallReason::FwdUncond);
    c.answer().await;
    carrier.call_state("CONFIRMED").await;
    // From inside (1001): 1002 rings as usual.
    a.dial("1002").await;
    let info = rings_from(&app, &mut ev, &mut b, "1001").await.info;
    assert_eq!(info.reason, CallReason::Direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_prefix_reaches_its_carrier_without_the_prefix() {
    let tapir = Tapir::start_with(Options {
        trunk: true,
        ..Options::default()
    })
    .await;
    let admin = Client::new(tapir.base_url(), ADMIN_TOKEN).unwrap().admin();
    // A second trunk line for the national carrier, added at run time.
    admin
        .add_line(&tapir_client::AdminLine {
            address: "8000".into(),
            kind: Some("trunk".into()),
            name: Some("National".into()),
            ..tapir_client::AdminLine::default()
        })
        .await
        .unwrap();
    let (mut national, national_port) = tapir.carrier("+4930555100", "udp").await;
    let (mut outside, outside_port) = tapir.carrier("+4930555900", "udp").await;
    for (name, port, prefix, line) in [
        ("national", national_port, "0", "8000"),
        ("outside", outside_port, "9", TRUNK_LINE),
    ] {
        admin
            .add_trunk(&tapir_client::AdminTrunk {
                name: name.into(),
                host: "127.0.0.1".into(),
                port: Some(port),
                transport: Some("udp".into()),
                prefix: Some(prefix.into()),
                address: Some(line.into()),
                ..tapir_client::AdminTrunk::default()
            })
            .await
            .unwrap();
    }
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1001").await;

    // The phone dials `0` + a national number by itself.
    a.dial("0301234567").await;
    let inv = national.rings().await;
    let uri = inv["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("sip:301234567@127.0.0.1:{national_port}")),
        "the national carrier is asked for the number without 0: {inv}"
    );
    let out = ev.new_call_at("8000").await;
    national.answer().await;
    national.call_state("CONFIRMED").await;
    a.call_state("CONFIRMED").await;
    let info = wait_call_state(&app, &out, CallState::Connected).await;
    assert_eq!(info.called.address, "301234567");
    a.cmd("hangup").await;
    national.call_state("DISCONNECTED").await;
    a.call_state("DISCONNECTED").await;

    // The app makes a call to `9` + an outside number.
    let call = app.address("1001").create_call("95551234").await.unwrap();
    a.rings().await;
    a.call_state("CONFIRMED").await;
    let inv = outside.rings().await;
    let uri = inv["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("sip:5551234@127.0.0.1:{outside_port}")),
        "the outside carrier is asked for the number without 9: {inv}"
    );
    outside.answer().await;
    outside.call_state("CONFIRMED").await;
    ev.state(call.id(), CallState::Connected).await;
    app.call(call.id()).await.unwrap().drop().await.unwrap();
    outside.call_state("DISCONNECTED").await;

    // Neither prefix, and no trunk without one: refused, naming the number.
    let (code, message) = error_code(app.address("1001").create_call("5551234").await);
    assert_eq!(code, "invaladdress");
    assert!(message.contains("5551234"), "{message}");
}

/// LINECALLSTATE_SPECIALINFO: "Special information is typically sent when
/// the destination cannot be reached." The carrier says the number does not
/// exist (404: LINESPECIALINFO_CUSTIRREG, "vacant number") or that it has
/// no circuit (503: NOCIRCUIT): the caller's call shows `specialinfo` with
/// that mode and stays, its phone hearing the special information tone
/// (three rising segments: 913.8, 1370.6 and 1776.7 Hz; not reorder's 480 +
/// 620 Hz), until it is dropped or the phone hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vacant_number_or_no_circuit_at_the_carrier_is_specialinfo() {
    let (tapir, mut carrier, _) = with_carrier("+4930555000", "udp").await;
    let (app, mut ev) = tapir.app().await;
    let [mut a, mut b] = tapir.phones(["1001", "1002"]).await;

    // The app calls out from 1001 (brought off hook); the number is vacant.
    let call = app
        .address("1001")
        .create_call("+1 (425) 882-8080")
        .await
        .unwrap();
    a.rings().await;
    a.call_state("CONFIRMED").await;
    carrier.rings().await;
    carrier
        .send(serde_json::json!({"cmd": "reject", "code": 404}))
        .await;
    let mode = ev.state(call.id(), CallState::SpecialInfo).await;
    assert_eq!(mode.as_deref(), Some("custirreg"));
    wait_call_state(&app, call.id(), CallState::SpecialInfo).await;
    let heard = listen_for(&mut [&mut a], tapir.dir(), "vacant", SIT_LISTEN).await;
    assert_hears_sit(&heard[0], "1001");
    app.call(call.id()).await.unwrap().drop().await.unwrap();
    a.call_state("DISCONNECTED").await;
    ev.state(call.id(), CallState::Idle).await;

    // 1002 dials a national number by itself; the carrier has no circuit.
    b.dial("0301234567").await;
    carrier.rings().await;
    carrier
        .send(serde_json::json!({"cmd": "reject", "code": 503}))
        .await;
    let at_b = ev.new_call_at("1002").await;
    let mode = ev.state(&at_b, CallState::SpecialInfo).await;
    assert_eq!(mode.as_deref(), Some("nocircuit"));
    // tapir's early media: the phone's call is not refused, it hears reorder.
    b.media("active").await;
    b.expect_no_event(
        "a final answer to 1002's INVITE",
        std::time::Duration::from_millis(500),
        |e| e["event"] == "call" && e["state"] == "DISCONNECTED",
    )
    .await;
    let heard = listen_for(&mut [&mut b], tapir.dir(), "nocircuit", SIT_LISTEN).await;
    assert_hears_sit(&heard[0], "1002");
    b.cmd("hangup").await;
    ev.state(&at_b, CallState::Idle).await;
}

/// Long enough that the half of a recording kept holds a whole special
/// information tone (at most 1.14 s of segments in a 2.14 s cycle) however
/// the recording falls.
const SIT_LISTEN: std::time::Duration = std::time::Duration::from_millis(7000);

/// The phone hears the special information tone's three segments rising in
/// turn, and no reorder tone.
fn assert_hears_sit(heard: &tapir_e2e::wav::Recording, phone: &str) {
    const SIT: [f64; 3] = [913.8, 1370.6, 1776.7];
    assert!(
        heard.hears_in_turn(&SIT),
        "{phone} hears 913.8, 1370.6 and 1776.7 Hz in turn; loudest 100 ms of each: {:?}",
        SIT.map(|f| heard
            .powers_over_time(f, std::time::Duration::from_millis(100))
            .into_iter()
            .fold(0.0, f64::max))
    );
    assert!(
        !heard.hears(480) && !heard.hears(620),
        "{phone} hears no reorder: {:?}",
        heard.levels(&[480, 620])
    );
}
