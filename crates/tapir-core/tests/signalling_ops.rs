//! What devices report — busy, reject, unreachable, hang-up from either
//! side, hold and retrieve by the phone itself, digits, REFER (blind and
//! with Replaces) — and how each maps onto call states and events. Rejected
//! REFERs leave the switch unchanged.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office, office};
use tapir_core::sim::Behaviour;
use tapir_core::{
    BusyMode, CallId, CallReason, CallState, DialtoneMode, DisconnectMode, Effect, ErrorCode,
    EventBody, ForwardMode, ForwardRule, Input, LegEvent, OfferingMode, Privilege, ReleaseCause,
    TapiError,
};

const OFFERING: CallState = CallState::Offering(OfferingMode::Active);

fn leg(o: &Office, call: CallId) -> tapir_core::LegId {
    o.sim.switch.leg_of(call).unwrap()
}

/// A REFER that must fail with `code` and change nothing.
fn refer_refused(o: &mut Office, on: tapir_core::LegId, event: LegEvent, code: ErrorCode) {
    o.clear();
    let before = o.sim.switch.model_snapshot();
    let r: Result<(), TapiError> = o.sim.act(|s, now| s.refer(now, on, event));
    assert_eq!(r.unwrap_err().code, code);
    assert!(
        before == o.sim.switch.model_snapshot(),
        "a refused REFER changed the switch"
    );
    assert!(o.effects().is_empty());
    assert!(o.sim.events.is_empty());
}

// ----------------------------------------------------------------------
// The called device refuses
// ----------------------------------------------------------------------

#[test]
fn the_called_phone_answers_busy() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.clear();
    o.sim.phone("1002").report(LegEvent::Busy);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Busy),
            CallState::Idle
        ]
    );
    assert_eq!(o.states_seen(mon, b), o.states_seen(crm, b));
    // The caller keeps its call and hears busy tone.
    o.told(crm, a, CallState::Busy(BusyMode::Station));
    assert!(o.effects().contains(&Effect::Media {
        leg: leg(&o, a),
        source: tapir_core::MediaSource::Tone(tapir_core::Tone::Busy)
    }));
    o.consistent();
}

#[test]
fn the_called_phone_rejects() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring("1001", "1002");
    let caller_leg = leg(&o, a);
    o.clear();
    o.sim.phone("1002").report(LegEvent::Rejected);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Reject),
            CallState::Idle
        ]
    );
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Disconnected(DisconnectMode::Reject),
            CallState::Idle
        ]
    );
    assert!(o.effects().contains(&Effect::ReleaseLeg {
        leg: caller_leg,
        cause: ReleaseCause::Rejected
    }));
}

#[test]
fn a_rejected_call_is_forwarded_as_if_busy() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![ForwardRule {
                mode: ForwardMode::Busy,
                to: Some("1003".into()),
                caller: None,
            }],
            None,
        )
    });
    let (a, _b) = o.ring("1001", "1002");
    o.clear();
    o.sim.phone("1002").report(LegEvent::Rejected);
    let c = o.only_call_at("1003");
    o.announced(crm, c, Privilege::Owner, CallReason::FwdBusy);
    o.told(crm, a, CallState::Ringback);
}

#[test]
fn the_called_phone_is_unreachable() {
    let mut o = office();
    let crm = o.crm;
    o.sim.set_behaviour("1002", Behaviour::Unreachable);
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    // 2000 (route point) blind-transfers to 1002, which cannot be reached.
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, "1002"));
    let seen = o.states_seen(crm, a);
    assert_eq!(
        seen.last(),
        Some(&CallState::Idle),
        "the caller's phone is let go: {seen:?}"
    );
    assert!(seen.contains(&CallState::Disconnected(DisconnectMode::Unreachable)));
    o.consistent();
}

#[test]
fn an_unreachable_phone_forwards_on_no_answer() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![ForwardRule {
                mode: ForwardMode::NoAnswer,
                to: Some("1003".into()),
                caller: None,
            }],
            None,
        )
    });
    o.sim.set_behaviour("1002", Behaviour::Unreachable);
    o.clear();
    let a = o.call_from("1001", "1002");
    let c = o.only_call_at("1003");
    o.announced(crm, c, Privilege::Owner, CallReason::FwdNoAnswer);
    o.expect(a, CallState::Ringback);
}

// ----------------------------------------------------------------------
// Hang-up from either side
// ----------------------------------------------------------------------

#[test]
fn the_caller_hangs_up_a_connected_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    let (la, lb) = (leg(&o, a), leg(&o, b));
    o.sim.phone("1001").hang_up();
    o.told(crm, a, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    assert_eq!(o.states_seen(mon, b), o.states_seen(crm, b));
    // tapir ends the other leg, not the one that hung up.
    assert!(o.released(lb));
    assert!(!o.released(la));
    assert_eq!(o.sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
}

#[test]
fn the_callee_hangs_up_a_connected_call() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.sim.phone("1002").hang_up();
    o.told(crm, b, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
}

#[test]
fn the_caller_gives_up_while_it_rings() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.ring("1001", "1002");
    let lb = leg(&o, b);
    o.clear();
    o.sim.phone("1001").hang_up_all();
    o.told(crm, a, CallState::Idle);
    assert_eq!(o.states_seen(crm, b).last(), Some(&CallState::Idle));
    assert!(o.released(lb));
    assert!(o.sim.phone("1002").leg_ids().is_empty());
}

#[test]
fn a_route_point_call_stays_disconnected_until_dropped() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.clear();
    o.sim.phone("1001").hang_up();
    o.told(crm, b, CallState::Disconnected(DisconnectMode::Normal));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| s.hold(now, crm, b));
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.told(crm, b, CallState::Idle);
}

// ----------------------------------------------------------------------
// Hold and retrieve by the phone
// ----------------------------------------------------------------------

#[test]
fn the_phone_holds_and_retrieves_by_itself() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.sim.phone("1001").report(LegEvent::Held);
    o.told(crm, a, CallState::OnHold);
    o.told(mon, a, CallState::OnHold);
    o.expect(b, CONNECTED);
    assert!(o.effects().contains(&Effect::Media {
        leg: leg(&o, b),
        source: tapir_core::MediaSource::Tone(tapir_core::Tone::HoldMusic)
    }));
    // tapir does not re-offer the leg the phone itself put on hold.
    assert!(
        !o.effects()
            .iter()
            .any(|e| matches!(e, Effect::Reoffer { leg: l, .. } if *l == leg(&o, a)))
    );
    o.clear();
    o.sim.phone("1001").report(LegEvent::Retrieved);
    o.told(crm, a, CONNECTED);
    // A retrieve without a hold changes nothing.
    o.clear();
    let before = o.sim.switch.model_snapshot();
    o.sim.phone("1001").report(LegEvent::Retrieved);
    assert!(before == o.sim.switch.model_snapshot());
}

#[test]
fn a_hold_from_a_ringing_phone_is_ignored() {
    let mut o = office();
    let (_a, b) = o.ring("1001", "1002");
    let before = o.sim.switch.model_snapshot();
    o.sim.phone("1002").report(LegEvent::Held);
    assert!(before == o.sim.switch.model_snapshot());
    o.expect(b, OFFERING);
}

// ----------------------------------------------------------------------
// Digits
// ----------------------------------------------------------------------

#[test]
fn digits_on_a_connected_call_reach_every_app() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b) = o.talk("1001", "1002");
    o.sim.phone("1001").report(LegEvent::Digits("5*".into()));
    for app in [crm, mon] {
        assert_eq!(
            o.sim.events_for(app),
            vec![&EventBody::DigitsReceived {
                call: a,
                digits: "5*".into()
            }]
        );
    }
    o.expect(a, CONNECTED);
}

#[test]
fn digits_signalled_out_of_band_reach_the_apps_and_the_far_party() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let far = o.sim.switch.leg_of(b).unwrap();
    o.sim.clear();
    o.sim
        .phone("1001")
        .report(LegEvent::SignalledDigits("5".into()));
    assert_eq!(
        o.sim.events_for(crm),
        vec![&EventBody::DigitsReceived {
            call: a,
            digits: "5".into()
        }]
    );
    // INFO digits never crossed the media plane: the switch has them sent.
    assert_eq!(
        o.effects(),
        &[Effect::SendDigits {
            leg: far,
            digits: "5".into()
        }]
    );
    // In-band (RFC 4733) digits were relayed by the media plane already.
    o.sim.clear();
    o.sim.phone("1001").report(LegEvent::Digits("6".into()));
    assert!(o.effects().is_empty(), "{:?}", o.effects());
    // Nothing goes to a party on hold.
    o.ok(crm, |s, now| s.hold(now, crm, b));
    o.sim.clear();
    o.sim
        .phone("1001")
        .report(LegEvent::SignalledDigits("7".into()));
    assert!(o.effects().is_empty(), "{:?}", o.effects());
}

#[test]
fn digits_at_dialtone_dial_the_number() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    o.expect(a, CallState::Dialtone(DialtoneMode::Internal));
    o.clear();
    o.sim.phone("1001").report(LegEvent::Digits("10".into()));
    o.told(crm, a, CallState::Dialing);
    o.clear();
    o.sim.phone("1001").report(LegEvent::Digits("02".into()));
    o.told(crm, a, CallState::Ringback);
    o.expect(o.only_call_at("1002"), OFFERING);
}

#[test]
fn digits_ending_in_hash_dial_an_outside_number() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    o.sim
        .phone("1001")
        .report(LegEvent::Digits("5551234#".into()));
    o.expect(a, CONNECTED);
    let t = o.only_call_at("9000");
    assert_eq!(
        o.sim.switch.call_info(crm, t).unwrap().called.address,
        "5551234"
    );
}

// ----------------------------------------------------------------------
// A phone calls by itself
// ----------------------------------------------------------------------

#[test]
fn a_phone_dials_by_itself() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    o.clear();
    let l = o.sim.phone("1001").dial("1002");
    let a = o.sim.switch.call_of_leg(l).unwrap();
    // The app that owns 1001 gets the call as owner; the monitor as monitor.
    o.announced(crm, a, Privilege::Owner, CallReason::Direct);
    o.announced(mon, a, Privilege::Monitor, CallReason::Direct);
    assert_eq!(
        o.states_seen(crm, a),
        vec![
            CallState::Dialing,
            CallState::Proceeding,
            CallState::Ringback
        ]
    );
    assert!(o.effects().contains(&Effect::Alert { leg: l }));
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    assert!(o.effects().contains(&Effect::AnswerLeg { leg: l }));
}

#[test]
fn a_call_from_an_unknown_device_is_refused() {
    let mut o = office();
    for from in ["1999", "2000"] {
        let l = o.sim.switch.allocate_leg();
        o.clear();
        let before = o.sim.switch.model_snapshot();
        o.sim.input(Input::DeviceCall {
            leg: l,
            from: from.into(),
            external_caller: None,
            to: "1002".into(),
        });
        assert_eq!(
            o.effects(),
            &[Effect::ReleaseLeg {
                leg: l,
                cause: ReleaseCause::NotFound
            }]
        );
        assert!(before == o.sim.switch.model_snapshot());
    }
}

#[test]
fn events_for_unknown_legs_are_ignored() {
    let mut o = office();
    let (_a, _b) = o.talk("1001", "1002");
    let before = o.sim.switch.model_snapshot();
    let ghost = o.sim.switch.allocate_leg();
    for event in [
        LegEvent::Answered,
        LegEvent::HungUp,
        LegEvent::Busy,
        LegEvent::Held,
    ] {
        o.sim.input(Input::Leg { leg: ghost, event });
    }
    assert!(before == o.sim.switch.model_snapshot());
}

// ----------------------------------------------------------------------
// REFER
// ----------------------------------------------------------------------

#[test]
fn refer_blind_transfers_the_far_party() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let lb = leg(&o, b);
    o.sim
        .act(|s, now| s.refer(now, lb, LegEvent::Refer("1003".into())))
        .unwrap();
    o.told(crm, b, CallState::Idle);
    o.told(crm, a, CallState::Ringback);
    let c = o.only_call_at("1003");
    o.announced(crm, c, Privilege::Owner, CallReason::Transfer);
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, c)
            .unwrap()
            .redirecting
            .unwrap()
            .address,
        "1002"
    );
    o.sim.phone("1003").answer();
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
}

#[test]
fn refer_as_a_leg_event_works_too() {
    let mut o = office();
    let (a, b) = o.talk("1001", "1002");
    o.sim.phone("1002").report(LegEvent::Refer("2000".into()));
    o.expect(b, CallState::Idle);
    o.expect(a, CallState::Ringback);
    o.expect(o.only_call_at("2000"), OFFERING);
}

#[test]
fn refer_with_replaces_completes_an_attended_transfer() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    // 1002 holds the call by itself and calls 1003 on a second line key.
    o.sim.phone("1002").report(LegEvent::Held);
    let lx = o.sim.phone("1002").dial("1003");
    let x = o.sim.switch.call_of_leg(lx).unwrap();
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    o.expect(x, CONNECTED);
    o.clear();
    let lb = leg(&o, b);
    o.sim
        .act(|s, now| s.refer(now, lb, LegEvent::ReferReplaces(lx)))
        .unwrap();
    o.told(crm, b, CallState::Idle);
    o.told(crm, x, CallState::Idle);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    let mut two = vec![a, c];
    two.sort();
    assert_eq!(o.bridge(a), two);
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, c)
            .unwrap()
            .redirecting
            .unwrap()
            .address,
        "1002"
    );
    o.consistent();
}

#[test]
fn refer_refusals_change_nothing() {
    let mut o = office();
    let (_a, b) = o.talk("1001", "1002");
    let (_c, d) = o.talk("1003", "1004");
    let (lb, ld) = (leg(&o, b), leg(&o, d));
    refer_refused(
        &mut o,
        lb,
        LegEvent::Refer("nowhere".into()),
        ErrorCode::InvalAddress,
    );
    // Replaces must name another call of the same phone.
    refer_refused(
        &mut o,
        lb,
        LegEvent::ReferReplaces(ld),
        ErrorCode::InvalConsultCallHandle,
    );
    refer_refused(
        &mut o,
        lb,
        LegEvent::ReferReplaces(lb),
        ErrorCode::InvalConsultCallHandle,
    );
    let ghost = o.sim.switch.allocate_leg();
    refer_refused(
        &mut o,
        ghost,
        LegEvent::Refer("1005".into()),
        ErrorCode::InvalCallHandle,
    );
    refer_refused(&mut o, lb, LegEvent::Held, ErrorCode::InvalParam);
    // A ringing call cannot be transferred.
    let (_e, f) = o.ring("1005", "1001");
    let lf = leg(&o, f);
    refer_refused(
        &mut o,
        lf,
        LegEvent::Refer("1003".into()),
        ErrorCode::InvalCallState,
    );
}

// ----------------------------------------------------------------------
// Hang-ups around features
// ----------------------------------------------------------------------

#[test]
fn a_parked_party_hanging_up_frees_the_slot() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| {
        s.park(now, crm, b, tapir_core::ParkMode::NonDirected)
    });
    o.clear();
    o.sim.phone("1001").hang_up();
    o.told(crm, a, CallState::Idle);
    assert!(o.sim.events_for(crm).contains(&&EventBody::Unparked {
        call: a,
        slot: "7001".into(),
        by: None
    }));
    assert_eq!(o.sim.switch.parked_at("7001"), None);
    assert_eq!(o.sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
}

/// The camp-on request outlives the requesting call, which went idle when
/// the request was accepted (TAPI: "the call typically transitions to
/// idle"); the requester's phone is called back when 1002 frees.
#[test]
fn a_camp_on_request_outlives_the_requesting_call() {
    let mut o = office();
    let crm = o.crm;
    let (_c, b) = o.talk("1003", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, tapir_core::CompletionMode::CampOn, None)
    });
    o.expect(a, CallState::Idle);
    assert!(o.sim.phone("1001").leg_ids().is_empty());
    o.clear();
    o.sim.phone("1003").hang_up();
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CompletionDone { completion, completed: true, call: Some(_), .. } if *completion == id
    )));
    o.sim.phone("1001").answer();
    o.sim.phone("1002").answer();
    o.sim.phone("1001").hang_up();
    assert_eq!(o.sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
}

#[test]
fn the_conference_controller_hanging_up_ends_the_conference() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let (conf, x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    o.clear();
    // The controller's phone leg belongs to the conference call.
    let l = o.sim.switch.leg_of(conf).unwrap();
    o.sim.phone("1002").report_on(l, LegEvent::HungUp);
    for call in [conf, b, x, a, c] {
        o.expect(call, CallState::Idle);
    }
    assert_eq!(o.sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
    o.consistent();
}

#[test]
fn the_consulted_party_hanging_up_leaves_the_original_call_on_plain_hold() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.sim.phone("1003").answer();
    o.clear();
    o.sim.phone("1003").hang_up();
    assert_eq!(
        o.states_seen(crm, x),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    // The user decides: the original call waits on plain hold (no transfer is
    // pending any more), and unhold works.
    o.expect(b, CallState::OnHold);
    o.expect(a, CONNECTED);
    o.ok(crm, |s, now| s.unhold(now, crm, b));
    o.told(crm, b, CONNECTED);
    o.consistent();
}

#[test]
fn the_transferring_party_hanging_up_during_consultation() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    // The held party gives up.
    o.clear();
    o.sim.phone("1001").hang_up();
    o.expect(a, CallState::Idle);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    // The consultation goes on as a plain call.
    o.expect(x, CONNECTED);
    o.expect(c, CONNECTED);
    assert!(
        o.sim
            .switch
            .call_info(crm, x)
            .unwrap()
            .related_calls
            .is_empty()
    );
    o.consistent();
}

#[test]
fn a_phone_with_every_appearance_in_use_cannot_dial_again() {
    let mut o = office();
    let crm = o.crm;
    for _ in 0..4 {
        o.ok(crm, |s, now| s.make_call(now, crm, "1001", None));
    }
    let l = o.sim.switch.allocate_leg();
    o.clear();
    let before = o.sim.switch.model_snapshot();
    o.sim.input(Input::DeviceCall {
        leg: l,
        from: "1001".into(),
        external_caller: None,
        to: "1002".into(),
    });
    assert_eq!(
        o.effects(),
        &[Effect::ReleaseLeg {
            leg: l,
            cause: ReleaseCause::Busy
        }]
    );
    assert!(before == o.sim.switch.model_snapshot());
}

#[test]
fn commands_through_handle_reply_once_with_the_request_id() {
    let mut o = office();
    let crm = o.crm;
    o.clear();
    let now = o.now();
    let req = o
        .sim
        .switch
        .handle(
            now,
            Input::Command {
                app: crm,
                command: tapir_core::Command::MakeCall {
                    from: "2000".into(),
                    to: Some("1002".into()),
                },
            },
        )
        .unwrap();
    o.sim.run();
    let replies: Vec<_> = o
        .sim
        .events_for(crm)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::Reply { request, result } => Some((*request, result.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, req);
    let Ok(tapir_core::Reply::Call { call }) = replies[0].1 else {
        panic!("{replies:?}")
    };
    // The reply comes before the events the request caused.
    assert!(matches!(o.sim.events_for(crm)[0], EventBody::Reply { .. }));
    o.expect(call, CallState::Ringback);
}
