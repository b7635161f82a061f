//! Every call-control operation of the switch: the success path with every
//! resulting state and event asserted, and each precondition error with the
//! switch shown unchanged afterwards.
//!
//! Conferences, park, pickup, forwarding, completion and the signalling
//! inputs have their own files (`conference_ops.rs`, `feature_ops.rs`,
//! `signalling_ops.rs`); the shared office lives in `support/`.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, office};
use tapir_core::{
    AppConfig, BusyMode, CallId, CallOrigin, CallReason, CallState, DialtoneMode, DisconnectMode,
    Effect, ErrorCode, EventBody, HandoffTarget, InfoField, LineStateKind, MediaMode, OfferingMode,
    Privilege, Reply, TransferMode,
};

const OFFERING: CallState = CallState::Offering(OfferingMode::Active);
const DIALTONE: CallState = CallState::Dialtone(DialtoneMode::Internal);

// ----------------------------------------------------------------------
// make_call
// ----------------------------------------------------------------------

#[test]
fn make_call_from_a_phone_rings_the_destination_after_the_phone_answers() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    // The reply names the new call.
    assert_eq!(o.replies(crm), vec![Ok(Reply::Call { call: a })]);
    o.announced(crm, a, Privilege::Owner, CallReason::Direct);
    o.announced(mon, a, Privilege::Monitor, CallReason::Direct);
    // dialing (phone being brought off hook) → proceeding → ringback.
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Dialing,
            CallState::Proceeding,
            CallState::Ringback
        ]
    );
    // "Monitors receive LINE_CALLSTATE(LINECALLSTATE_UNKNOWN) for a call
    // that another app just created via lineMakeCall ... and the real state
    // follows."
    let mut seen_by_monitor = vec![CallState::Unknown];
    seen_by_monitor.extend(o.states_seen(crm, a));
    assert_eq!(o.states_seen(mon, a), seen_by_monitor);
    // The phone was brought off hook with an auto-answer hint first.
    assert!(matches!(
        o.effects()[0],
        Effect::CreateLeg { call, auto_answer: true, .. } if call == a
    ));
    let b = o.only_call_at("1002");
    o.told(crm, b, OFFERING);
    o.announced(crm, b, Privilege::Owner, CallReason::Direct);
    o.announced(mon, b, Privilege::Monitor, CallReason::Direct);
    let info = o.sim.switch.call_info(crm, b).unwrap();
    assert_eq!(info.origin, CallOrigin::Internal);
    assert_eq!(info.caller.address, "1001");
    assert_eq!(info.called.address, "1002");

    o.clear();
    o.sim.phone("1002").answer();
    o.told(crm, a, CONNECTED);
    o.told(crm, b, CONNECTED);
    o.told(mon, a, CONNECTED);
    o.told(mon, b, CONNECTED);
    let ia = o.sim.switch.call_info(crm, a).unwrap();
    assert_eq!(ia.connected.unwrap().address, "1002");
    assert_eq!(ia.privilege, Privilege::Owner);
    assert_eq!(ia.num_owners, 1);
    assert_eq!(ia.num_monitors, 1);
    assert_eq!(o.bridge(a), vec![a, b]);
    o.consistent();
}

#[test]
fn make_call_without_destination_gives_dialtone() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    assert_eq!(o.states_seen(crm, a), vec![DIALTONE]);
    o.expect(a, DIALTONE);
    // The phone went off hook (auto-answer) and hears dial tone.
    assert!(o.effects().iter().any(|e| matches!(
        e,
        Effect::Media {
            source: tapir_core::MediaSource::Tone(tapir_core::Tone::Dialtone),
            ..
        }
    )));
}

#[test]
fn make_call_from_a_route_point_calls_at_once() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Dialing,
            CallState::Proceeding,
            CallState::Ringback
        ]
    );
    // No leg for the route point itself: the first leg is the callee's.
    assert!(matches!(
        o.effects()[0],
        Effect::CreateLeg { target: ref t, .. } if &**t == "1002"
    ));
    let b = o.only_call_at("1002");
    o.expect(b, OFFERING);
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    o.expect(b, CONNECTED);
}

#[test]
fn make_call_from_a_route_point_without_destination_waits_at_dialtone() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    o.told(crm, a, DIALTONE);
    assert!(
        o.effects()
            .iter()
            .all(|e| !matches!(e, Effect::CreateLeg { .. }))
    );
}

#[test]
fn make_call_to_an_external_number_goes_out_on_the_trunk() {
    let mut o = office();
    o.allow_outbound("1001", tapir_core::Outbound::All);
    let crm = o.crm;
    let a = o.ok(crm, |s, now| {
        s.make_call(now, crm, "1001", Some("+44 20 7946 0000"))
    });
    // The trunk's far network answers at once.
    o.expect(a, CONNECTED);
    let t = o.only_call_at("9000");
    o.expect(t, CONNECTED);
    assert!(o.effects().iter().any(|e| matches!(
        e,
        Effect::CreateLeg { target, .. } if &**target == "+442079460000"
    )));
    let ia = o.sim.switch.call_info(crm, a).unwrap();
    assert_eq!(ia.connected.unwrap().address, "+442079460000");
}

/// LINE_CALLSTATE: "Monitors receive LINE_CALLSTATE(LINECALLSTATE_UNKNOWN)
/// for a call that another app just created via lineMakeCall, lineForward,
/// lineUnpark, lineSetupTransfer, linePickup, lineSetupConference or
/// linePrepareAddToConference ... and the real state follows shortly." A
/// call nobody asked for (a phone dialling by hand) shows its real state.
#[test]
fn a_monitors_first_notice_of_a_call_another_app_created_is_unknown() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1004", "1002");
    for c in [a, b] {
        let seen = o.states_seen(mon, c);
        assert!(
            !seen.is_empty() && !seen.contains(&CallState::Unknown),
            "{seen:?}"
        );
    }
    // linePickup: the owner's first state is real, the monitor's unknown.
    let k = o.ok(crm, |s, now| {
        s.pickup(
            now,
            crm,
            "1001",
            tapir_core::PickupTarget::Address("1002".into()),
        )
    });
    let (owner, monitor) = (o.states_seen(crm, k), o.states_seen(mon, k));
    assert!(!owner.contains(&CallState::Unknown), "{owner:?}");
    assert_eq!(monitor.first(), Some(&CallState::Unknown));
    assert_eq!(monitor[1..], owner[..]);
    o.announced(mon, k, Privilege::Monitor, CallReason::Pickup);
    // lineSetupTransfer's consultation call too.
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, k));
    let monitor = o.states_seen(mon, x);
    assert_eq!(monitor.first(), Some(&CallState::Unknown));
    assert_eq!(monitor[1..], o.states_seen(crm, x)[..]);
    // Nobody else's call: the monitor's unknown is never its state.
    assert_eq!(
        o.sim.switch.call_info(mon, x).unwrap().state,
        o.state(x).kind()
    );
    assert_ne!(o.state(x), CallState::Unknown);
}

/// LINECALLSTATE_SPECIALINFO: "This means that special information is sent
/// by the network. Special information is typically sent when the
/// destination cannot be reached." The carrier behind the trunk answers
/// that the number is vacant (404: LINESPECIALINFO_CUSTIRREG, "vacant
/// number, number change, access code error"), has no circuit (503:
/// NOCIRCUIT) or failed (500: REORDER). The caller hears what a carrier's
/// caller hears: LINESPECIALINFO_CUSTIRREG "This special information tone
/// precedes a vacant number, AIS, Centrex number change and nonworking
/// station, [...] (customer irregularity category)" (Telcordia's intercept
/// SIT), NOCIRCUIT "This special information tone precedes a no circuit or
/// an emergency announcement (trunk blockage category)" (the no-circuit
/// SIT); for REORDER, an equipment failure, the reorder tone.
#[test]
fn a_number_the_network_cannot_reach_is_specialinfo() {
    use tapir_core::SpecialInfoMode as S;
    for mode in [S::CustIrreg, S::NoCircuit, S::Reorder] {
        let mut o = office();
        o.allow_outbound("1001", tapir_core::Outbound::All);
        let (crm, mon) = (o.crm, o.mon);
        o.sim
            .set_behaviour("9000", tapir_core::sim::Behaviour::SpecialInfo(mode));
        let a = o.ok(crm, |s, now| {
            s.make_call(now, crm, "1001", Some("+44 20 7946 0000"))
        });
        // Like busy, the call stays until dropped, and its caller hears
        // the mode's special information tone (reorder for REORDER).
        o.told(crm, a, CallState::SpecialInfo(mode));
        o.told(mon, a, CallState::SpecialInfo(mode));
        let leg = o.sim.switch.leg_of(a).unwrap();
        let tone = match mode {
            S::CustIrreg => tapir_core::Tone::SitIntercept,
            S::NoCircuit => tapir_core::Tone::SitNoCircuit,
            S::Reorder => tapir_core::Tone::Reorder,
        };
        assert!(o.effects().iter().any(|e| matches!(
            e,
            Effect::Media { leg: l, source: tapir_core::MediaSource::Tone(t) } if *l == leg && *t == tone
        )), "{mode:?}: {:?}", o.effects());
        // The trunk's own call ended with the matching disconnect mode.
        let t = o.new_calls(crm).iter().find(|n| n.1 == "9000").unwrap().0;
        let expected = match mode {
            S::CustIrreg => DisconnectMode::BadAddress,
            S::NoCircuit => DisconnectMode::Congestion,
            S::Reorder => DisconnectMode::Unreachable,
        };
        assert!(
            o.states_seen(crm, t)
                .ends_with(&[CallState::Disconnected(expected), CallState::Idle]),
            "{:?}",
            o.states_seen(crm, t)
        );
        // lineCompleteCall is for busy and ringback only.
        o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
            s.complete_call(now, crm, a, tapir_core::CompletionMode::Callback, None)
        });
        o.ok(crm, |s, now| s.drop_call(now, crm, a));
        o.expect(a, CallState::Idle);
        o.consistent();
    }
    // A phone that dials the number by itself hears the same.
    let mut o = office();
    o.allow_outbound("1002", tapir_core::Outbound::All);
    o.sim.set_behaviour(
        "9000",
        tapir_core::sim::Behaviour::SpecialInfo(S::CustIrreg),
    );
    let leg = o.sim.phone("1002").dial("+442079460001");
    let a = o.sim.switch.call_of_leg(leg).unwrap();
    o.told(o.crm, a, CallState::SpecialInfo(S::CustIrreg));
    o.sim
        .phone("1002")
        .report_on(leg, tapir_core::LegEvent::HungUp);
    o.expect(a, CallState::Idle);
}

#[test]
fn make_call_to_a_busy_address_shows_busy() {
    let mut o = office();
    let crm = o.crm;
    o.sim
        .set_behaviour("1002", tapir_core::sim::Behaviour::Busy);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.told(crm, a, CallState::Busy(BusyMode::Station));
    // The called call was offered and is gone again.
    let b = o.new_calls(crm).iter().find(|n| n.1 == "1002").unwrap().0;
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            OFFERING,
            CallState::Disconnected(DisconnectMode::Busy),
            CallState::Idle
        ]
    );
    o.consistent();
}

#[test]
fn make_call_to_an_address_with_every_appearance_in_use_shows_busy() {
    let mut o = office();
    let crm = o.crm;
    // 1002 has 4 call appearances; fill them with calls from 1001, 1003, 1004, 1005.
    for from in ["1003", "1004", "1005", "2000"] {
        o.ok(crm, |s, now| s.make_call(now, crm, from, Some("1002")));
    }
    assert_eq!(o.sim.calls_at("1002").len(), 4);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.told(crm, a, CallState::Busy(BusyMode::Station));
    assert_eq!(o.sim.calls_at("1002").len(), 4);
}

#[test]
fn make_call_to_an_unreachable_phone_disconnects() {
    let mut o = office();
    let crm = o.crm;
    o.sim
        .set_behaviour("1002", tapir_core::sim::Behaviour::Unreachable);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    // The caller's call ends: disconnected (unreachable), then idle as tapir
    // ends the phone's leg; the app still holds the handle.
    let seen = o.states_seen(crm, a);
    assert!(
        seen.contains(&CallState::Disconnected(DisconnectMode::Unreachable)),
        "{seen:?}"
    );
    o.told(crm, a, CallState::Idle);
}

#[test]
fn make_call_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    // Unknown destination with a trunk would go out; without digits it is not dialable.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1001", Some("bob"))
    });
    // Unknown calling address.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1999", Some("1002"))
    });
    // A trunk does not place calls.
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.make_call(now, crm, "9000", Some("1002"))
    });
    // An app that has not opened the line.
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.make_call(now, stranger, "1001", Some("1002"))
    });
    let _ = mon;
    // Every call appearance of the caller in use.
    for _ in 0..4 {
        o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    }
    o.rejected(crm, ErrorCode::CallUnavail, |s, now| {
        s.make_call(now, crm, "1001", Some("1002"))
    });
}

#[test]
fn make_call_to_an_unknown_number_without_a_trunk_is_invaladdress() {
    let mut sim = tapir_core::sim::Sim::new();
    sim.add_phone("1001");
    let app = sim.switch.register_app(AppConfig::named("crm"));
    let line = sim.switch.line_of("1001").unwrap();
    sim.switch
        .open_line(app, line, &[Privilege::Owner], &[])
        .unwrap();
    let before = sim.switch.model_snapshot();
    let e = sim.make_call(app, "1001", Some("5555")).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalAddress);
    assert!(before == sim.switch.model_snapshot());
}

// ----------------------------------------------------------------------
// answer, accept
// ----------------------------------------------------------------------

#[test]
fn answer_on_a_route_point_connects_at_once() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.expect(b, OFFERING);
    o.expect(a, CallState::Ringback);
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.told(crm, b, CONNECTED);
    o.told(crm, a, CONNECTED);
    o.told(mon, b, CONNECTED);
    // The phone's INVITE is answered with 200.
    let leg = o.sim.switch.leg_of(a).unwrap();
    assert!(o.effects().contains(&Effect::AnswerLeg { leg }));
}

#[test]
fn answer_on_a_phone_with_remote_answer_asks_the_phone() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring("1001", "1005");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    let leg = o.sim.switch.leg_of(b).unwrap();
    assert!(o.effects().contains(&Effect::RemoteAnswer { leg }));
    // The simulated phone obeys: both connected.
    o.told(crm, b, CONNECTED);
    o.told(crm, a, CONNECTED);
}

#[test]
fn answer_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_a, b) = o.ring("1001", "1002");
    // A phone without remote answer must be answered by hand.
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.answer(now, crm, b)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.answer(now, mon, b));
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.answer(now, crm, CallId(999_999))
    });
    let (a, b) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.answer(now, crm, b)
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.answer(now, crm, a)
    });
}

#[test]
fn accept_claims_an_offering_call_and_answer_still_works() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.accept(now, crm, b));
    o.told(crm, b, CallState::Accepted);
    o.told(mon, b, CallState::Accepted);
    o.expect(a, CallState::Ringback);
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.accept(now, crm, b)
    });
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.told(crm, b, CONNECTED);
    o.told(crm, a, CONNECTED);
}

#[test]
fn accept_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.accept(now, mon, b));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.accept(now, crm, a)
    });
}

// ----------------------------------------------------------------------
// dial
// ----------------------------------------------------------------------

#[test]
fn dial_on_dialtone_routes_the_number() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    o.ok(crm, |s, now| s.dial(now, crm, a, "1002"));
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Dialing,
            CallState::Proceeding,
            CallState::Ringback
        ]
    );
    let b = o.only_call_at("1002");
    o.told(crm, b, OFFERING);
    assert_eq!(
        o.sim.switch.call_info(crm, a).unwrap().called.address,
        "1002"
    );
}

#[test]
fn dial_in_parts_with_a_trailing_semicolon() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    o.ok(crm, |s, now| s.dial(now, crm, a, "10;"));
    o.told(crm, a, CallState::Dialing);
    assert!(o.sim.calls_at("1002").is_empty());
    o.ok(crm, |s, now| s.dial(now, crm, a, "02"));
    o.told(crm, a, CallState::Ringback);
    o.expect(o.only_call_at("1002"), OFFERING);
}

/// lineMakeCall: a destination that ends in `;` is partial ("the digits so
/// far"): the call is placed and stays `dialing`; lineDial continues it.
#[test]
fn make_call_with_a_partial_destination_stays_dialing_until_dial_completes_it() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("10;")));
    assert_eq!(o.states_seen(crm, a), vec![CallState::Dialing]);
    assert!(o.sim.calls_at("1002").is_empty());
    assert_eq!(o.sim.switch.call_info(crm, a).unwrap().called.address, "10");
    o.ok(crm, |s, now| s.dial(now, crm, a, "0;"));
    o.expect(a, CallState::Dialing);
    o.ok(crm, |s, now| s.dial(now, crm, a, "2"));
    o.told(crm, a, CallState::Ringback);
    o.expect(o.only_call_at("1002"), OFFERING);
    assert_eq!(
        o.sim.switch.call_info(crm, a).unwrap().called.address,
        "1002"
    );
}

/// From a phone, the phone is brought off hook first; the number completed
/// by dial is routed once it answers.
#[test]
fn make_call_from_a_phone_with_a_partial_destination() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1;")));
    o.expect(a, CallState::Dialing);
    assert!(o.sim.calls_at("1002").is_empty());
    o.ok(crm, |s, now| s.dial(now, crm, a, "002"));
    o.expect(a, CallState::Ringback);
    o.expect(o.only_call_at("1002"), OFFERING);
    // A partial destination that is not dialable is still refused.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1003", Some("bob;"))
    });
}

#[test]
fn dial_on_a_phone_waits_for_the_phone_then_routes() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    o.ok(crm, |s, now| s.dial(now, crm, a, "1002"));
    o.told(crm, a, CallState::Ringback);
    o.expect(o.only_call_at("1002"), OFFERING);
}

#[test]
fn dial_on_a_connected_call_sends_dtmf_to_the_far_party() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.dial(now, crm, a, "12#"));
    let leg = o.sim.switch.leg_of(b).unwrap();
    assert_eq!(
        o.effects(),
        &[Effect::SendDigits {
            leg,
            digits: "12#".into()
        }]
    );
    o.expect(a, CONNECTED);
    assert!(o.states_seen(crm, a).is_empty());
}

#[test]
fn dial_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.dial(now, crm, a, "x1")
    });
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.dial(now, crm, a, "")
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.dial(now, mon, a, "1002")
    });
    let (_x, b) = o.ring("1003", "1001");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.dial(now, crm, b, "1")
    });
    let (c, _) = o.talk("1004", "1005");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.dial(now, crm, c, "hello")
    });
}

// ----------------------------------------------------------------------
// drop
// ----------------------------------------------------------------------

#[test]
fn drop_a_connected_call_disconnects_the_far_party() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    let leg_a = o.sim.switch.leg_of(a).unwrap();
    o.ok(crm, |s, now| s.drop_call(now, crm, a));
    o.told(crm, a, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    assert_eq!(o.states_seen(mon, b), o.states_seen(crm, b));
    assert!(o.released(leg_a));
    // The handles live on until deallocated.
    assert!(o.sim.switch.call_info(crm, a).is_ok());
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    o.ok(mon, |s, now| s.deallocate_call(now, mon, a));
    assert!(o.sim.switch.call_info(crm, a).is_err());
    assert!(!o.sim.switch.all_calls().contains(&a));
    o.consistent();
}

#[test]
fn drop_an_offering_call_rejects_it() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.told(crm, b, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Disconnected(DisconnectMode::Reject),
            CallState::Idle
        ]
    );
}

#[test]
fn drop_a_route_point_call_whose_far_end_left() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.sim.phone("1001").hang_up();
    // A route point's call waits in disconnected for its app.
    o.expect(b, CallState::Disconnected(DisconnectMode::Normal));
    o.expect(a, CallState::Idle);
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.told(crm, b, CallState::Idle);
}

#[test]
fn drop_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.drop_call(now, mon, a));
    o.ok(crm, |s, now| s.drop_call(now, crm, a));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.drop_call(now, crm, a)
    });
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.drop_call(now, crm, CallId(424_242))
    });
}

// ----------------------------------------------------------------------
// deallocate_call
// ----------------------------------------------------------------------

#[test]
fn deallocate_call_rules() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    // A monitor may always let go; the owner is told the monitor count changed.
    o.ok(mon, |s, now| s.deallocate_call(now, mon, a));
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CallInfo { call, changed } if *call == a && changed.contains(&InfoField::NumMonitors)
    )));
    assert_eq!(o.sim.switch.call_info(crm, a).unwrap().num_monitors, 0);
    o.rejected(mon, ErrorCode::InvalCallHandle, |s, now| {
        s.deallocate_call(now, mon, a)
    });
    // Once idle, the owner may deallocate and the call is freed.
    o.ok(crm, |s, now| s.drop_call(now, crm, a));
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    assert!(!o.sim.switch.all_calls().contains(&a));
}

/// lineDeallocateCall: "In API versions 2.0 or later, the sole owner of the
/// call can deallocate its handle even though the call is not in the idle
/// state." The handle goes; the physical call is unaffected.
#[test]
fn deallocate_call_by_the_sole_owner_of_a_live_phone_call_leaves_the_call_ownerless() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    // The monitor is told the call lost its owner ...
    assert!(o.sim.events_for(mon).iter().any(|e| matches!(
        e,
        EventBody::CallInfo { call, changed } if *call == a && changed.contains(&InfoField::NumOwnerDecr)
    )));
    // ... the handle is gone ...
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.drop_call(now, crm, a)
    });
    // ... and the physical call is unaffected.
    o.expect(a, CONNECTED);
    o.expect(b, CONNECTED);
    assert_eq!(o.sim.switch.call_info(mon, a).unwrap().num_owners, 0);
    // A monitor may take the ownerless call over.
    o.ok(mon, |s, now| {
        s.set_call_privilege(now, mon, a, Privilege::Owner)
    });
    o.ok(mon, |s, now| s.drop_call(now, mon, a));
    // The far phone heard the call end and hung up.
    o.expect(b, CallState::Idle);
    o.consistent();
}

/// The phone user still ends an ownerless call, and it is then freed.
#[test]
fn an_ownerless_call_is_freed_when_its_phone_hangs_up() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    o.ok(mon, |s, now| s.deallocate_call(now, mon, a));
    o.expect(a, CONNECTED);
    o.sim.phone("1001").hang_up();
    assert!(!o.sim.switch.all_calls().contains(&a));
    o.consistent();
}

/// tapir's decision for a route point: a live call that no application has a
/// handle to any more is dropped, as lineClose drops one (nobody could end
/// it otherwise); while a monitor still sees it, it goes on.
#[test]
fn a_route_point_call_nobody_holds_any_more_is_dropped() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    let b = o.only_call_at("1002");
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    o.expect(a, CONNECTED);
    o.ok(mon, |s, now| s.deallocate_call(now, mon, a));
    assert!(!o.sim.switch.all_calls().contains(&a));
    o.expect(b, CallState::Idle);
    o.consistent();
}

#[test]
fn deallocate_call_by_one_of_two_owners_of_a_live_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.ok(mon, |s, now| {
        s.set_call_privilege(now, mon, a, Privilege::Owner)
    });
    o.ok(crm, |s, now| s.deallocate_call(now, crm, a));
    assert!(o.sim.events_for(mon).iter().any(|e| matches!(
        e,
        EventBody::CallInfo { call, changed } if *call == a && changed.contains(&InfoField::NumOwnerDecr)
    )));
    o.expect(a, CONNECTED);
    assert_eq!(o.sim.switch.call_info(mon, a).unwrap().num_owners, 1);
}

// ----------------------------------------------------------------------
// hold, unhold, swap_hold
// ----------------------------------------------------------------------

#[test]
fn hold_and_unhold() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.hold(now, crm, a));
    o.told(crm, a, CallState::OnHold);
    o.told(mon, a, CallState::OnHold);
    // The far party is still connected and hears music on hold.
    o.expect(b, CONNECTED);
    let leg_b = o.sim.switch.leg_of(b).unwrap();
    assert!(o.effects().contains(&Effect::Media {
        leg: leg_b,
        source: tapir_core::MediaSource::Tone(tapir_core::Tone::HoldMusic)
    }));
    // Hold never toggles: holding a held call succeeds and changes nothing.
    let before = o.sim.switch.model_snapshot();
    o.ok(crm, |s, now| s.hold(now, crm, a));
    assert_eq!(before, o.sim.switch.model_snapshot());
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.unhold(now, mon, a));
    o.ok(crm, |s, now| s.unhold(now, crm, a));
    o.told(crm, a, CONNECTED);
    o.told(mon, a, CONNECTED);
    assert!(o.effects().iter().any(|e| matches!(
        e,
        Effect::Media { leg, source: tapir_core::MediaSource::Bridge(_) } if *leg == leg_b
    )));
    // Unholding a talking call succeeds and changes nothing.
    let before = o.sim.switch.model_snapshot();
    o.ok(crm, |s, now| s.unhold(now, crm, a));
    assert_eq!(before, o.sim.switch.model_snapshot());
}

#[test]
fn hold_on_a_remote_controlled_phone_asks_the_phone_and_keeps_one_hold_state() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1005", "1002");
    let leg_a = o.sim.switch.leg_of(a).unwrap();
    o.clear();
    o.ok(crm, |s, now| s.hold(now, crm, a));
    o.expect(a, CallState::OnHold);
    // The phone is asked to hold by itself (its screen shows it), and is not
    // re-offered a direction from the middle.
    assert!(o.effects().contains(&Effect::RemoteHold { leg: leg_a }));
    assert!(
        !o.effects()
            .iter()
            .any(|e| matches!(e, Effect::Reoffer { leg, .. } if *leg == leg_a)),
        "{:?}",
        o.effects()
    );
    o.expect(b, CONNECTED);
    // Unhold asks the phone to resume; the call is connected again.
    o.clear();
    o.ok(crm, |s, now| s.unhold(now, crm, a));
    o.expect(a, CONNECTED);
    assert!(o.effects().contains(&Effect::RemoteRetrieve { leg: leg_a }));
    // Hold from the phone's own key, then unhold from the app: one hold state.
    o.sim
        .phone("1005")
        .report_on(leg_a, tapir_core::LegEvent::Held);
    o.expect(a, CallState::OnHold);
    o.clear();
    o.ok(crm, |s, now| s.unhold(now, crm, a));
    o.expect(a, CONNECTED);
    assert!(o.effects().contains(&Effect::RemoteRetrieve { leg: leg_a }));
    // Hold from the app, then resume from the phone's key.
    o.ok(crm, |s, now| s.hold(now, crm, a));
    o.expect(a, CallState::OnHold);
    o.sim
        .phone("1005")
        .report_on(leg_a, tapir_core::LegEvent::Retrieved);
    o.expect(a, CONNECTED);
    o.consistent();
}

#[test]
fn hold_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| s.hold(now, crm, b));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| s.hold(now, crm, a));
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.rejected(mon, ErrorCode::NotOwner, |s, now| s.hold(now, mon, b));
}

#[test]
fn swap_hold_between_two_plain_calls() {
    let mut o = office();
    let crm = o.crm;
    let (a1, _b1) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.hold(now, crm, a1));
    let (a2, _b2) = o.talk("1001", "1003");
    o.ok(crm, |s, now| s.swap_hold(now, crm, a2, a1));
    o.told(crm, a2, CallState::OnHold);
    o.told(crm, a1, CONNECTED);
    o.ok(crm, |s, now| s.swap_hold(now, crm, a1, a2));
    o.told(crm, a1, CallState::OnHold);
    o.told(crm, a2, CONNECTED);
}

#[test]
fn swap_hold_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a1, _) = o.talk("1001", "1002");
    let (a2, _) = o.talk("1003", "1004");
    // Neither is held.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.swap_hold(now, crm, a1, a2)
    });
    o.ok(crm, |s, now| s.hold(now, crm, a2));
    // Wrong way round.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.swap_hold(now, crm, a2, a1)
    });
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.swap_hold(now, crm, a1, a1)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.swap_hold(now, mon, a1, a2)
    });
}

// ----------------------------------------------------------------------
// blind_transfer
// ----------------------------------------------------------------------

#[test]
fn blind_transfer_sends_the_far_party_on() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, "1003"));
    o.told(crm, b, CallState::Idle);
    // The far party (1001's call) now rings 1003.
    assert_eq!(
        o.states_seen(crm, a),
        vec![CallState::Proceeding, CallState::Ringback]
    );
    let c = o.only_call_at("1003");
    o.told(crm, c, OFFERING);
    o.announced(crm, c, Privilege::Owner, CallReason::Transfer);
    o.announced(mon, c, Privilege::Monitor, CallReason::Transfer);
    let ic = o.sim.switch.call_info(crm, c).unwrap();
    assert_eq!(ic.caller.address, "1001");
    assert_eq!(ic.redirecting.unwrap().address, "1002");
    o.sim.phone("1003").answer();
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    o.consistent();
}

#[test]
fn blind_transfer_of_a_held_call() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.hold(now, crm, b));
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, "2000"));
    o.expect(b, CallState::Idle);
    o.expect(a, CallState::Ringback);
    o.expect(o.only_call_at("2000"), OFFERING);
}

#[test]
fn blind_transfer_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.blind_transfer(now, crm, b, "1003")
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.blind_transfer(now, crm, a, "1003")
    });
    let (c, _) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.blind_transfer(now, crm, c, "nobody")
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.blind_transfer(now, mon, c, "1001")
    });
}

// ----------------------------------------------------------------------
// setup_transfer, complete_transfer, finish
// ----------------------------------------------------------------------

/// 1001 talks to 1002; 1002 sets up a transfer and its consultation call
/// reaches 1003, which answers. Returns (a, b, consult, c).
fn consulting(o: &mut support::Office) -> (CallId, CallId, CallId, CallId) {
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    o.expect(x, CONNECTED);
    o.expect(c, CONNECTED);
    o.clear();
    (a, b, x, c)
}

#[test]
fn setup_transfer_holds_the_call_and_returns_a_consultation_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    assert_eq!(o.replies(crm), vec![Ok(Reply::Consult { consult_call: x })]);
    o.told(crm, b, CallState::OnHoldPendTransfer);
    o.told(mon, b, CallState::OnHoldPendTransfer);
    o.told(crm, x, DIALTONE);
    o.announced(crm, x, Privilege::Owner, CallReason::Direct);
    o.announced(mon, x, Privilege::Monitor, CallReason::Direct);
    o.expect(a, CONNECTED);
    let info = o.sim.switch.call_info(crm, x).unwrap();
    assert_eq!(&*info.address, "1002");
    assert_eq!(info.related_calls, vec![b]);
    assert_eq!(
        o.sim.switch.call_info(crm, b).unwrap().related_calls,
        vec![x]
    );
}

#[test]
fn setup_transfer_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_transfer(now, crm, a)
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_transfer(now, crm, b)
    });
    let (c, _) = o.talk("1003", "1004");
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.setup_transfer(now, mon, c)
    });
    o.ok(crm, |s, now| s.hold(now, crm, c));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_transfer(now, crm, c)
    });
}

#[test]
fn complete_transfer_joins_the_far_parties() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, x, c) = consulting(&mut o);
    let r = o.ok(crm, |s, now| {
        s.complete_transfer(now, crm, b, x, TransferMode::Transfer)
    });
    assert_eq!(r, None);
    assert_eq!(o.replies(crm), vec![Ok(Reply::Done)]);
    o.told(crm, b, CallState::Idle);
    o.told(crm, x, CallState::Idle);
    o.told(mon, b, CallState::Idle);
    o.told(mon, x, CallState::Idle);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    assert_eq!(o.bridge(a), vec![a, c]);
    let ia = o.sim.switch.call_info(crm, a).unwrap();
    assert_eq!(ia.connected.unwrap().address, "1003");
    let ic = o.sim.switch.call_info(crm, c).unwrap();
    assert_eq!(ic.connected.unwrap().address, "1001");
    assert_eq!(ic.redirecting.unwrap().address, "1002");
    o.consistent();
}

#[test]
fn complete_transfer_while_the_consultation_call_still_rings() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.expect(x, CallState::Ringback);
    let c = o.only_call_at("1003");
    o.ok(crm, |s, now| {
        s.complete_transfer(now, crm, b, x, TransferMode::Transfer)
    });
    o.expect(b, CallState::Idle);
    o.expect(x, CallState::Idle);
    o.told(crm, a, CallState::Ringback);
    o.expect(c, OFFERING);
    o.sim.phone("1003").answer();
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
}

#[test]
fn complete_transfer_in_conference_mode_makes_a_three_way_conference() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, x, c) = consulting(&mut o);
    let conf = o
        .ok(crm, |s, now| {
            s.complete_transfer(now, crm, b, x, TransferMode::Conference)
        })
        .unwrap();
    assert_eq!(
        o.replies(crm),
        vec![Ok(Reply::ConferenceCall {
            conference_call: conf
        })]
    );
    o.announced(crm, conf, Privilege::Owner, CallReason::Direct);
    o.announced(mon, conf, Privilege::Monitor, CallReason::Direct);
    o.told(crm, conf, CONNECTED);
    o.told(crm, b, CallState::Conferenced);
    o.told(crm, x, CallState::Conferenced);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    // The conferenced state names its conference call.
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CallState { call, conference: Some(cc), .. } if *call == x && *cc == conf
    )));
    let related = o.ok(crm, |s, now| s.conf_related_calls(now, crm, b));
    assert_eq!(related, vec![conf, b, x]);
    let mut bridge = o.sim.switch.bridge_calls(conf);
    bridge.sort();
    let mut expected = vec![conf, a, b, x, c];
    expected.sort();
    assert_eq!(bridge, expected);
    o.consistent();
}

#[test]
fn complete_transfer_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, x, _c) = consulting(&mut o);
    o.rejected(crm, ErrorCode::InvalConsultCallHandle, |s, now| {
        s.complete_transfer(now, crm, b, b, TransferMode::Transfer)
    });
    o.rejected(crm, ErrorCode::InvalConsultCallHandle, |s, now| {
        s.complete_transfer(now, crm, b, CallId(777_777), TransferMode::Transfer)
    });
    // The call is not the held one.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.complete_transfer(now, crm, x, b, TransferMode::Transfer)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.complete_transfer(now, mon, b, x, TransferMode::Transfer)
    });
    // Both calls leading to the same party: 1001's own call consulting 1002.
    let _ = a;
    // A consultation call still at dial tone cannot be completed.
    let (_p, q) = o.talk("1004", "1005");
    let y = o.ok(crm, |s, now| s.setup_transfer(now, crm, q));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.complete_transfer(now, crm, q, y, TransferMode::Transfer)
    });
}

#[test]
fn finish_a_consultation_call_as_transfer_and_as_conference() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, x, c) = consulting(&mut o);
    let r = o.ok(crm, |s, now| s.finish(now, crm, x, TransferMode::Transfer));
    assert_eq!(r, None);
    o.expect(b, CallState::Idle);
    o.expect(x, CallState::Idle);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);

    let mut o = office();
    let (_a, b, x, _c) = consulting(&mut o);
    let conf = o.ok(crm, |s, now| {
        s.finish(now, crm, x, TransferMode::Conference)
    });
    let conf = conf.unwrap();
    o.told(crm, conf, CONNECTED);
    o.told(crm, b, CallState::Conferenced);
    o.told(crm, x, CallState::Conferenced);
}

#[test]
fn finish_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.finish(now, crm, a, TransferMode::Transfer)
    });
    let mut o = office();
    let (_a, _b, x, _c) = consulting(&mut o);
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.finish(now, mon, x, TransferMode::Transfer)
    });
}

#[test]
fn unhold_during_a_pending_transfer_abandons_the_consultation_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, x, c) = consulting(&mut o);
    o.ok(crm, |s, now| s.unhold(now, crm, b));
    o.told(crm, b, CONNECTED);
    o.told(crm, x, CallState::Idle);
    o.told(mon, x, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, c),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    o.expect(a, CONNECTED);
    assert!(
        o.sim
            .switch
            .call_info(crm, b)
            .unwrap()
            .related_calls
            .is_empty()
    );
    o.consistent();
}

#[test]
fn drop_the_consultation_call_reconnects_the_original() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, x, c) = consulting(&mut o);
    o.ok(crm, |s, now| s.drop_call(now, crm, x));
    o.told(crm, x, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(a, CONNECTED);
    o.expect(c, CallState::Idle);
    assert_eq!(o.bridge(b), vec![a, b]);
}

#[test]
fn swap_hold_with_a_pending_transfer_swaps_the_roles() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, x, c) = consulting(&mut o);
    o.ok(crm, |s, now| s.swap_hold(now, crm, x, b));
    o.told(crm, x, CallState::OnHoldPendTransfer);
    o.told(crm, b, CONNECTED);
    // Now x is the held call and b the consultation call.
    assert_eq!(
        o.sim.switch.call_info(crm, x).unwrap().related_calls,
        vec![b]
    );
    o.ok(crm, |s, now| {
        s.complete_transfer(now, crm, x, b, TransferMode::Transfer)
    });
    o.expect(b, CallState::Idle);
    o.expect(x, CallState::Idle);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    assert_eq!(o.bridge(a), vec![a, c]);
}

// ----------------------------------------------------------------------
// redirect
// ----------------------------------------------------------------------

#[test]
fn redirect_of_a_made_call_retargets_it() {
    // tapir called the caller (make call): it re-targets the caller's call.
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("2000")));
    let b = o.only_call_at("2000");
    o.ok(crm, |s, now| s.redirect(now, crm, b, "1002"));
    assert!(
        !o.effects()
            .iter()
            .any(|e| matches!(e, Effect::Redirect { .. })),
        "no 302: tapir placed the caller's call"
    );
    o.told(crm, b, CallState::Idle);
    o.told(mon, b, CallState::Idle);
    let c = o.only_call_at("1002");
    o.told(crm, c, OFFERING);
    o.announced(crm, c, Privilege::Owner, CallReason::Redirect);
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, c)
            .unwrap()
            .redirecting
            .unwrap()
            .address,
        "2000"
    );
    o.expect(a, CallState::Ringback);
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
}

#[test]
fn redirect_a_ringing_call_from_a_phone_sends_302_to_the_phone() {
    // The phone's INVITE is unanswered: it gets the 302 and dials again.
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    let leg = o.sim.switch.leg_of(a).unwrap();
    o.ok(crm, |s, now| s.redirect(now, crm, b, "1003"));
    assert!(o.effects().iter().any(|e| matches!(
        e,
        Effect::Redirect { leg: l, target } if *l == leg && &**target == "1003"
    )));
    o.told(crm, b, CallState::Idle);
    o.told(mon, b, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Disconnected(DisconnectMode::Forwarded),
            CallState::Idle
        ]
    );
    assert!(
        o.sim.calls_at("1003").is_empty(),
        "tapir does not call 1003 itself"
    );
}

#[test]
fn redirect_an_accepted_call() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("2000")));
    let b = o.only_call_at("2000");
    o.ok(crm, |s, now| s.accept(now, crm, b));
    o.ok(crm, |s, now| s.redirect(now, crm, b, "1002"));
    o.expect(b, CallState::Idle);
    o.expect(o.only_call_at("1002"), OFFERING);
}

#[test]
fn redirect_a_call_from_the_trunk_sends_302() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring_from_outside("+15551234", "2000");
    let leg = o.sim.switch.leg_of(a).unwrap();
    o.ok(crm, |s, now| s.redirect(now, crm, b, "+15559999"));
    assert!(o.effects().iter().any(|e| matches!(
        e,
        Effect::Redirect { leg: l, target } if *l == leg && &**target == "+15559999"
    )));
    o.expect(b, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Disconnected(DisconnectMode::Forwarded),
            CallState::Idle
        ]
    );
    assert!(o.sim.calls_at("9000").is_empty());
}

#[test]
fn redirect_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.redirect(now, crm, b, "?")
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.redirect(now, crm, a, "1002")
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.redirect(now, mon, b, "1002")
    });
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.redirect(now, crm, b, "1002")
    });
}

// ----------------------------------------------------------------------
// secure_call
// ----------------------------------------------------------------------

#[test]
fn secure_call_marks_the_call_and_refuses_call_waiting() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    assert!(o.sim.switch.call_info(crm, b).unwrap().secure);
    for app in [crm, mon] {
        assert!(o.sim.events_for(app).iter().any(|e| matches!(
            e,
            EventBody::CallInfo { call, changed } if *call == b && changed == &[InfoField::Secure]
        )));
    }
    let legs = [
        o.sim.switch.leg_of(a).unwrap(),
        o.sim.switch.leg_of(b).unwrap(),
    ];
    for leg in legs {
        assert!(o.effects().contains(&Effect::SecureMedia { leg }));
    }
    // Securing again is harmless and changes nothing.
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    assert!(o.effects().is_empty());
    // A new call to 1002 finds it busy.
    let z = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    o.told(crm, z, CallState::Busy(BusyMode::Station));
}

#[test]
fn secure_call_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _) = o.talk("1001", "1002");
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.secure_call(now, mon, a)
    });
    o.ok(crm, |s, now| s.drop_call(now, crm, a));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.secure_call(now, crm, a)
    });
}

// ----------------------------------------------------------------------
// handoff
// ----------------------------------------------------------------------

#[test]
fn handoff_to_an_app_by_name() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let ivr = o.sim.switch.register_app(AppConfig::named("ivr"));
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(ivr, line, &[Privilege::Owner], &[MediaMode::AutomatedVoice])
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::App("ivr".into()))
    });
    o.announced(ivr, b, Privilege::Owner, CallReason::Direct);
    o.told(ivr, b, OFFERING);
    // The others hear that an owner joined; crm keeps its privilege.
    for app in [crm, mon] {
        assert!(o.sim.events_for(app).iter().any(|e| matches!(
            e,
            EventBody::CallInfo { call, changed } if *call == b && changed == &[InfoField::NumOwnerIncr]
        )));
    }
    let info = o.sim.switch.call_info(crm, b).unwrap();
    assert_eq!(info.privilege, Privilege::Owner);
    assert_eq!(info.num_owners, 2);
    // The new owner can answer.
    o.ok(ivr, |s, now| s.answer(now, ivr, b));
    o.expect(b, CONNECTED);
}

#[test]
fn handoff_by_media_mode_goes_to_the_highest_priority_owner() {
    let mut o = office();
    let crm = o.crm;
    let fax = o.sim.switch.register_app(AppConfig {
        priority: 5,
        ..AppConfig::named("fax")
    });
    let fax2 = o.sim.switch.register_app(AppConfig {
        priority: 1,
        ..AppConfig::named("fax2")
    });
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(fax, line, &[Privilege::Owner], &[MediaMode::G3Fax])
        .unwrap();
    o.sim
        .switch
        .open_line(fax2, line, &[Privilege::Owner], &[MediaMode::G3Fax])
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::MediaMode(MediaMode::G3Fax))
    });
    o.announced(fax2, b, Privilege::Owner, CallReason::Direct);
    assert!(o.sim.events_for(fax).is_empty());
}

#[test]
fn handoff_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_a, b) = o.ring("1001", "2000");
    o.rejected(crm, ErrorCode::TargetNotFound, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::App("nobody".into()))
    });
    // mon has the line open, but not as owner.
    o.rejected(crm, ErrorCode::TargetNotFound, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::App("mon".into()))
    });
    o.rejected(crm, ErrorCode::TargetNotFound, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::MediaMode(MediaMode::Tdd))
    });
    // crm itself is the owner for interactive voice.
    o.rejected(crm, ErrorCode::TargetSelf, |s, now| {
        s.handoff(
            now,
            crm,
            b,
            HandoffTarget::MediaMode(MediaMode::InteractiveVoice),
        )
    });
    // Nobody handles unknown media on 2000 yet (see
    // `handoff_to_unknown_reaches_the_app_that_handles_unknown_media`).
    o.rejected(crm, ErrorCode::TargetNotFound, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::MediaMode(MediaMode::Unknown))
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.handoff(now, mon, b, HandoffTarget::App("crm".into()))
    });
}

/// lineHandoff: "If LINEMEDIAMODE_UNKNOWN is specified, the target
/// application is the one that handles calls of unknown media mode" —
/// media-probing apps depend on it.
#[test]
fn handoff_to_unknown_reaches_the_app_that_handles_unknown_media() {
    let mut o = office();
    let crm = o.crm;
    let probe = o.sim.switch.register_app(AppConfig::named("probe"));
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(probe, line, &[Privilege::Owner], &[MediaMode::Unknown])
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::MediaMode(MediaMode::Unknown))
    });
    o.announced(probe, b, Privilege::Owner, CallReason::Direct);
    // The call's media mode did not change.
    assert_eq!(
        o.sim.switch.call_info(crm, b).unwrap().media_mode,
        MediaMode::InteractiveVoice
    );
    // The last owner handing off to itself for unknown is told so.
    o.ok(crm, |s, now| {
        s.set_call_privilege(now, crm, b, Privilege::Monitor)
    });
    o.rejected(probe, ErrorCode::TargetSelf, |s, now| {
        s.handoff(now, probe, b, HandoffTarget::MediaMode(MediaMode::Unknown))
    });
}

/// lineHandoff "does not change the call's media mode": lineSetMediaMode
/// does that.
#[test]
fn handoff_by_media_mode_keeps_the_call_media_mode() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let fax = o.sim.switch.register_app(AppConfig::named("fax"));
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(fax, line, &[Privilege::Owner], &[MediaMode::G3Fax])
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::MediaMode(MediaMode::G3Fax))
    });
    for app in [crm, mon, fax] {
        assert_eq!(
            o.sim.switch.call_info(app, b).unwrap().media_mode,
            MediaMode::InteractiveVoice
        );
        assert!(!o.sim.events_for(app).iter().any(|e| matches!(
            e,
            EventBody::CallInfo { changed, .. } if changed.contains(&InfoField::MediaMode)
        )));
    }
}

/// lineHandoff: any call state, idle included (`invalcallstate` is not
/// among its errors).
#[test]
fn handoff_of_an_idle_call() {
    let mut o = office();
    let crm = o.crm;
    let ivr = o.sim.switch.register_app(AppConfig::named("ivr"));
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(ivr, line, &[Privilege::Owner], &[MediaMode::AutomatedVoice])
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.expect(b, CallState::Idle);
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::App("ivr".into()))
    });
    let info = o.sim.switch.call_info(ivr, b).unwrap();
    assert_eq!(info.privilege, Privilege::Owner);
    assert_eq!(info.num_owners, 2);
    o.consistent();
}

/// lineSetMediaMode: "The application must be an owner of the call. The
/// call state of hCall can be any state." The new mode is in the call's
/// info, and every app with a handle gets `call.info` `mediamode`.
#[test]
fn set_media_mode_changes_the_call_info_and_tells_every_handle() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_a, b) = o.ring("1001", "2000");
    assert_eq!(
        o.sim.switch.call_info(crm, b).unwrap().media_mode,
        MediaMode::InteractiveVoice
    );
    o.ok(crm, |s, now| {
        s.set_media_mode(now, crm, b, MediaMode::G3Fax)
    });
    for app in [crm, mon] {
        assert!(o.sim.events_for(app).iter().any(|e| matches!(
            e,
            EventBody::CallInfo { call, changed } if *call == b && changed == &[InfoField::MediaMode]
        )));
        assert_eq!(
            o.sim.switch.call_info(app, b).unwrap().media_mode,
            MediaMode::G3Fax
        );
    }
    // Setting the same mode again changes nothing and tells nobody.
    o.ok(crm, |s, now| {
        s.set_media_mode(now, crm, b, MediaMode::G3Fax)
    });
    assert_eq!(o.sim.events_for(mon).len(), 0);
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.set_media_mode(now, mon, b, MediaMode::Tdd)
    });
    // Any state, idle included.
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.ok(crm, |s, now| {
        s.set_media_mode(now, crm, b, MediaMode::Unknown)
    });
    assert_eq!(
        o.sim.switch.call_info(crm, b).unwrap().media_mode,
        MediaMode::Unknown
    );
}

// ----------------------------------------------------------------------
// generate_digits, set_call_privilege
// ----------------------------------------------------------------------

#[test]
fn generate_digits_sends_dtmf_and_reports_completion() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.generate_digits(now, crm, a, "1x2#"));
    let leg = o.sim.switch.leg_of(b).unwrap();
    assert_eq!(
        o.effects(),
        &[Effect::SendDigits {
            leg,
            digits: "12#".into()
        }]
    );
    assert!(
        o.sim
            .events_for(crm)
            .contains(&&EventBody::DigitsGenerated { call: a })
    );
    assert!(o.sim.events_for(mon).is_empty());
    let (_x, r) = o.ring("1003", "1004");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.generate_digits(now, crm, r, "1")
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.generate_digits(now, mon, a, "1")
    });
}

#[test]
fn set_call_privilege_up_and_down() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.ok(mon, |s, now| {
        s.set_call_privilege(now, mon, a, Privilege::Owner)
    });
    assert!(o.sim.events_for(mon).iter().any(|e| matches!(
        e,
        EventBody::CallState { call, privilege: Some(Privilege::Owner), .. } if *call == a
    )));
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CallInfo { call, changed } if *call == a && changed.contains(&InfoField::NumOwnerIncr)
    )));
    assert_eq!(
        o.sim.switch.call_info(mon, a).unwrap().privilege,
        Privilege::Owner
    );
    // With two owners, one may step down.
    o.ok(crm, |s, now| {
        s.set_call_privilege(now, crm, a, Privilege::Monitor)
    });
    assert_eq!(
        o.sim.switch.call_info(crm, a).unwrap().privilege,
        Privilege::Monitor
    );
    // The sole owner of a live call may not.
    o.rejected(mon, ErrorCode::InvalCallState, |s, now| {
        s.set_call_privilege(now, mon, a, Privilege::Monitor)
    });
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalCallHandle, |s, now| {
        s.set_call_privilege(now, stranger, a, Privilege::Owner)
    });
}

// ----------------------------------------------------------------------
// open_line, close_line
// ----------------------------------------------------------------------

#[test]
fn open_line_as_owner_gets_new_calls_and_monitor_sees_them() {
    let mut o = office();
    let sup = o.sim.switch.register_app(AppConfig {
        priority: 0,
        ..AppConfig::named("sup")
    });
    let line = o.sim.switch.line_of("1004").unwrap();
    o.sim.clear();
    o.sim
        .switch
        .open_line(sup, line, &[Privilege::Monitor], &[])
        .unwrap();
    o.sim.run();
    assert_eq!(
        o.sim.events_for(sup),
        vec![&EventBody::LineState {
            line,
            state: LineStateKind::Open
        }]
    );
    let (_a, b) = o.ring("1003", "1004");
    o.announced(sup, b, Privilege::Monitor, CallReason::Direct);
    // Calls already on the line are not announced on a later open.
    let line3 = o.sim.switch.line_of("1003").unwrap();
    o.clear();
    o.sim
        .switch
        .open_line(sup, line3, &[Privilege::Monitor], &[])
        .unwrap();
    o.sim.run();
    assert!(o.new_calls(sup).is_empty());
    // Errors.
    let e = o
        .sim
        .switch
        .open_line(sup, tapir_core::LineId(999), &[Privilege::Owner], &[]);
    assert_eq!(e.unwrap_err().code, ErrorCode::InvalLineHandle);
    let e = o
        .sim
        .switch
        .open_line(tapir_core::AppId(999), line, &[Privilege::Owner], &[]);
    assert_eq!(e.unwrap_err().code, ErrorCode::InvalParam);
}

#[test]
fn open_line_owner_priority_decides_who_owns_new_calls() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let vip = o.sim.switch.register_app(AppConfig {
        priority: 0,
        ..AppConfig::named("vip")
    });
    let line = o.sim.switch.line_of("1004").unwrap();
    // crm (priority 0, opened first) keeps new calls; reopen crm later to lose the tie.
    o.sim
        .switch
        .open_line(vip, line, &[Privilege::Owner], &[])
        .unwrap();
    o.sim
        .switch
        .open_line(crm, line, &[Privilege::Owner], &[])
        .unwrap();
    o.sim.run();
    let (_a, b) = o.ring("1003", "1004");
    o.announced(vip, b, Privilege::Owner, CallReason::Direct);
    o.announced(mon, b, Privilege::Monitor, CallReason::Direct);
    assert!(o.new_calls(crm).iter().all(|n| n.0 != b));
}

#[test]
fn close_line_drops_route_point_calls_and_leaves_phone_calls() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    let rp = o.sim.switch.line_of("2000").unwrap();
    o.clear();
    o.sim.act(|s, now| s.close_line(now, crm, rp)).unwrap();
    assert!(o.sim.events_for(crm).contains(&&EventBody::LineState {
        line: rp,
        state: LineStateKind::Closed
    }));
    // Nobody else could end the route point's call: it is dropped.
    o.told(mon, b, CallState::Idle);
    o.expect(a, CallState::Idle);
    assert!(o.sim.switch.call_info(crm, b).is_err());
    // A phone's call goes on without the app.
    let (c, d) = o.talk("1003", "1004");
    let l3 = o.sim.switch.line_of("1003").unwrap();
    o.sim.act(|s, now| s.close_line(now, crm, l3)).unwrap();
    o.expect(c, CONNECTED);
    o.expect(d, CONNECTED);
    assert_eq!(
        o.sim.switch.call_info(crm, c).unwrap_err().code,
        ErrorCode::InvalCallHandle
    );
    // Closing again: the line is not open by the app.
    let e = o.sim.act(|s, now| s.close_line(now, crm, l3));
    assert_eq!(e.unwrap_err().code, ErrorCode::InvalLineHandle);
    o.consistent();
}

// ----------------------------------------------------------------------
// Corners
// ----------------------------------------------------------------------

#[test]
fn make_call_from_a_phone_without_auto_answer_rings_the_phone_first() {
    let mut o = office();
    let crm = o.crm;
    let mut cfg = tapir_core::LineConfig::phone("1006");
    cfg.auto_answer = false;
    let line = o.sim.add_line(cfg, tapir_core::sim::Behaviour::Ring);
    o.sim
        .switch
        .open_line(crm, line, &[Privilege::Owner], &[])
        .unwrap();
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1006", Some("1002")));
    assert!(matches!(
        o.effects()[0],
        Effect::CreateLeg { call, auto_answer: false, .. } if call == a
    ));
    o.told(crm, a, CallState::Dialing);
    assert!(o.sim.calls_at("1002").is_empty());
    o.clear();
    o.sim.phone("1006").answer();
    assert_eq!(
        o.states_seen(crm, a),
        vec![CallState::Proceeding, CallState::Ringback]
    );
    o.expect(o.only_call_at("1002"), OFFERING);
}

#[test]
fn a_request_from_an_unregistered_app_is_refused_silently() {
    let mut o = office();
    let before = o.sim.switch.model_snapshot();
    o.clear();
    let ghost = tapir_core::AppId(4242);
    let e = o
        .sim
        .act(|s, now| s.make_call(now, ghost, "1001", Some("1002")))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalParam);
    assert!(before == o.sim.switch.model_snapshot());
    assert!(o.sim.events.is_empty());
    assert!(o.effects().is_empty());
}

#[test]
fn complete_transfer_to_a_busy_party_leaves_the_transferred_party_busy() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.sim
        .set_behaviour("1003", tapir_core::sim::Behaviour::Busy);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.expect(x, CallState::Busy(BusyMode::Station));
    o.ok(crm, |s, now| {
        s.complete_transfer(now, crm, b, x, TransferMode::Transfer)
    });
    o.told(crm, b, CallState::Idle);
    o.told(crm, x, CallState::Idle);
    o.told(crm, a, CallState::Busy(BusyMode::Station));
    o.consistent();
}

#[test]
fn finish_a_conference_consultation_as_a_transfer_is_invaltransfermode() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    let (_conf, x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.sim.phone("1003").answer();
    o.rejected(crm, ErrorCode::InvalTransferMode, |s, now| {
        s.finish(now, crm, x, TransferMode::Transfer)
    });
}

#[test]
fn complete_transfer_when_the_app_only_monitors_the_consultation_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_a, b, x, _c) = consulting(&mut o);
    // mon becomes owner of b but only monitors x.
    o.ok(mon, |s, now| {
        s.set_call_privilege(now, mon, b, Privilege::Owner)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.complete_transfer(now, mon, b, x, TransferMode::Transfer)
    });
    let _ = crm;
}

#[test]
fn swap_hold_with_a_call_held_for_another_transfer_is_refused() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    let _x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    let (c, _d) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.swap_hold(now, crm, c, b)
    });
}

#[test]
fn handoff_to_an_app_that_monitors_raises_its_privilege() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let line = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(
            mon,
            line,
            &[Privilege::Owner, Privilege::Monitor],
            &[MediaMode::AutomatedVoice],
        )
        .unwrap();
    let (_a, b) = o.ring("1001", "2000");
    o.announced(mon, b, Privilege::Monitor, CallReason::Direct);
    o.ok(crm, |s, now| {
        s.handoff(now, crm, b, HandoffTarget::App("mon".into()))
    });
    // No second call.new: the state event carries the new privilege.
    assert!(o.new_calls(mon).is_empty());
    assert!(o.sim.events_for(mon).iter().any(|e| matches!(
        e,
        EventBody::CallState { call, privilege: Some(Privilege::Owner), .. } if *call == b
    )));
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CallInfo { call, changed } if *call == b && changed.contains(&InfoField::NumOwnerIncr)
    )));
    let info = o.sim.switch.call_info(mon, b).unwrap();
    assert_eq!(info.privilege, Privilege::Owner);
    assert_eq!((info.num_owners, info.num_monitors), (2, 0));
}

#[test]
fn a_secure_call_admits_no_new_monitor_through_related_calls() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    let late = o.sim.switch.register_app(AppConfig::named("late"));
    let line = o.sim.switch.line_of("1002").unwrap();
    o.sim
        .switch
        .open_line(late, line, &[Privilege::Monitor], &[])
        .unwrap();
    let (conf, _x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    let related = o.ok(late, |s, now| s.conf_related_calls(now, late, conf));
    assert_eq!(related, vec![conf]);
    assert!(o.sim.switch.call_info(late, b).is_err());
}
