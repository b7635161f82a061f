//! TAPI's media operations with real pjsua2 phones: `lineGatherDigits`
//! stops on `#` and on its timeouts with the phone's RFC 4733 digits; a
//! tone the app generates (`lineGenerateTone`) is heard by the phone
//! (Goertzel on what the phone records, and not before); a phone playing a
//! fax's calling tone (1100 Hz, 0.5 s on, 3 s off) is reported by
//! `lineMonitorMedia` as `g3fax`, and the call is handed to the app that
//! opened the line for `g3fax`; when the phone hangs up, the fax app's
//! gathering ends `cancelled`.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::json;
use tapir_client::{
    Call, CallState, Client, EventKind, Gather, MediaMode, Monitor, Privilege, ToneWatch,
};
use tapir_e2e::{DESK_TOKEN, Events, Phone, ROUTE_POINT, Tapir, error_code, listen};

/// Phone 1002 calls the route point and the app answers: the route
/// point's call, connected.
async fn answered(tapir: &Tapir, app: &Client, ev: &mut Events, phone: &mut Phone) -> Call {
    phone.dial(ROUTE_POINT).await;
    let at_rp = ev.new_call_at(ROUTE_POINT).await;
    ev.state(&at_rp, CallState::Offering).await;
    let mut call = app.call(&at_rp).await.unwrap();
    call.answer().await.unwrap();
    phone.call_state("CONFIRMED").await;
    ev.state(&at_rp, CallState::Connected).await;
    let _ = tapir;
    call
}

/// The next `digits.gathered` of `call`: (digits, reason).
async fn gathered(ev: &mut Events, call: &str) -> (String, String) {
    let e = ev
        .wait(
            "digits.gathered",
            |e| matches!(&e.kind, EventKind::DigitsGathered { call: c, .. } if c == call),
        )
        .await;
    match e.kind {
        EventKind::DigitsGathered { digits, reason, .. } => (digits, reason),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn gathering_stops_on_hash_and_on_timeouts() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1002").await;
    let mut call = answered(&tapir, &app, &mut ev, &mut a).await;
    let id = call.id().to_string();

    call.gather_digits(&Gather {
        terminators: Some("#".into()),
        first_timeout_ms: Some(10_000),
        inter_timeout_ms: Some(5_000),
        ..Gather::default()
    })
    .await
    .unwrap();
    a.send(json!({"cmd": "dtmf", "digits": "12#"})).await;
    assert_eq!(
        gathered(&mut ev, &id).await,
        ("12#".to_string(), "terminator".to_string())
    );

    // Nothing pressed: the first-digit timeout.
    call.gather_digits(&Gather {
        max_digits: Some(4),
        first_timeout_ms: Some(500),
        ..Gather::default()
    })
    .await
    .unwrap();
    assert_eq!(
        gathered(&mut ev, &id).await,
        (String::new(), "firsttimeout".to_string())
    );

    // One digit, then the inter-digit timeout.
    call.gather_digits(&Gather {
        max_digits: Some(4),
        inter_timeout_ms: Some(800),
        ..Gather::default()
    })
    .await
    .unwrap();
    a.send(json!({"cmd": "dtmf", "digits": "7"})).await;
    assert_eq!(
        gathered(&mut ev, &id).await,
        ("7".to_string(), "intertimeout".to_string())
    );

    // SIP INFO digits (application/dtmf-relay) count too.
    call.gather_digits(&Gather {
        max_digits: Some(2),
        first_timeout_ms: Some(10_000),
        ..Gather::default()
    })
    .await
    .unwrap();
    // One INFO at a time (pjsua sends the next once the first is answered).
    for d in ["5", "6"] {
        a.send(json!({"cmd": "dtmf_info", "digits": d})).await;
        ev.wait(&format!("digit {d}"), |e| {
            matches!(&e.kind, EventKind::DigitsReceived { call: c, digits } if c == &id && digits == d)
        })
        .await;
    }
    assert_eq!(
        gathered(&mut ev, &id).await,
        ("56".to_string(), "maxdigits".to_string())
    );

    // Another app's token (desk opened no line) does not reach this call;
    // bad input gets a TAPI error (the server's own tests go through
    // every refusal).
    let desk = Client::connect(tapir.base_url(), DESK_TOKEN).await.unwrap();
    let (code, _) = error_code(desk.call(&id).await.map(|_| ()));
    assert_eq!(code, "invalcallhandle");
    let (code, message) = error_code(
        call.gather_digits(&Gather {
            max_digits: Some(0),
            ..Gather::default()
        })
        .await,
    );
    assert_eq!(code, "invalparam", "{message}");
    let (code, _) = error_code(call.generate_tone("siren", &[], None).await);
    assert_eq!(code, "invalparam");
    a.cmd("hangup").await;
}

#[tokio::test]
async fn a_tone_the_app_generates_is_heard_by_the_phone() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    let mut a = tapir.phone("1002").await;
    let mut call = answered(&tapir, &app, &mut ev, &mut a).await;

    let before = listen(&mut [&mut a], tapir.dir(), "before").await;
    assert!(
        !before[0].hears(1400),
        "no tone before: {:?}",
        before[0].levels(&[1400])
    );
    call.generate_tone("custom", &[1400], Some(3000))
        .await
        .unwrap();
    let heard = listen(&mut [&mut a], tapir.dir(), "tone").await;
    assert!(
        heard[0].hears(1400),
        "the phone hears the app's tone: {:?}",
        heard[0].levels(&[1400, 1000])
    );
    a.cmd("hangup").await;
}

#[tokio::test]
async fn a_fax_calling_tone_hands_the_call_to_the_fax_app() {
    let tapir = Tapir::start().await;
    let (app, mut ev) = tapir.app().await;
    // desk opens the route point as owner for g3fax only.
    let desk = Client::connect(tapir.base_url(), DESK_TOKEN).await.unwrap();
    let mut desk_ev = Events::new(desk.events(0));
    let mut rp_line = desk
        .lines()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.address() == ROUTE_POINT)
        .unwrap();
    rp_line
        .open(&[Privilege::Owner], &[MediaMode::G3Fax])
        .await
        .unwrap();
    let mut a = tapir.phone("1002").await;
    let mut call = answered(&tapir, &app, &mut ev, &mut a).await;
    let id = call.id().to_string();
    call.monitor(&Monitor {
        tones: vec![ToneWatch {
            frequencies: vec![1100],
            duration_ms: 300,
        }],
        media_modes: vec![MediaMode::G3Fax],
        ..Monitor::default()
    })
    .await
    .unwrap();

    // The phone plays CNG, looping.
    a.send(json!({"cmd": "tone", "hz": 1100, "on_ms": 500, "off_ms": 3000}))
        .await;
    ev.wait("tone.detected 1100 Hz", |e| {
        matches!(&e.kind, EventKind::ToneDetected { call: c, frequencies, .. }
            if c == &id && frequencies == &[1100])
    })
    .await;
    ev.wait("media.detected g3fax", |e| {
        matches!(&e.kind, EventKind::MediaDetected { call: c, media_mode: MediaMode::G3Fax }
            if c == &id)
    })
    .await;
    // Handed to desk, owner, the call now in g3fax.
    let e = desk_ev
        .wait(
            "call.new of the fax call",
            |e| matches!(&e.kind, EventKind::CallNew { call: c, .. } if c == &id),
        )
        .await;
    assert_eq!(e.raw["privilege"], "owner", "{}", e.raw);
    let mut seen = desk.call(&id).await.unwrap();
    assert_eq!(seen.info().media_mode, MediaMode::G3Fax);
    // The fax app gathers; the phone hangs up: the gathering is cancelled.
    seen.gather_digits(&Gather {
        max_digits: Some(4),
        ..Gather::default()
    })
    .await
    .unwrap();
    a.cmd("hangup").await;
    assert_eq!(
        gathered(&mut desk_ev, &id).await,
        (String::new(), "cancelled".to_string())
    );
}
