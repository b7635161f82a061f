//! PBX feature operations: park (directed, non-directed, reminder), unpark,
//! pickup (directed and group), forwarding (every mode family, caller
//! filters, no-answer ring count on the simulated clock, do-not-disturb),
//! call completion (camp-on, callback, intrude, message) and its
//! cancellation. Success paths with every state and event, and each
//! precondition error with the switch unchanged.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office, office, office_with};
use tapir_core::sim::Behaviour;
use tapir_core::{
    AppConfig, BusyMode, CallId, CallReason, CallState, CompletionId, CompletionMode,
    ConnectedMode, DisconnectMode, ErrorCode, EventBody, ForwardMode, ForwardRule, OfferingMode,
    ParkMode, PickupTarget, Privilege, Reply, SwitchConfig,
};

const OFFERING: CallState = CallState::Offering(OfferingMode::Active);
const HELD_BY_FAR_END: CallState = CallState::Connected(ConnectedMode::ActiveHeld);
const BUSY: CallState = CallState::Busy(BusyMode::Station);

fn rule(mode: ForwardMode, to: Option<&str>) -> ForwardRule {
    ForwardRule {
        mode,
        to: to.map(str::to_string),
        caller: None,
    }
}

fn specific(mode: ForwardMode, caller: &str, to: Option<&str>) -> ForwardRule {
    ForwardRule {
        mode,
        to: to.map(str::to_string),
        caller: Some(caller.to_string()),
    }
}

// ----------------------------------------------------------------------
// park, unpark
// ----------------------------------------------------------------------

#[test]
fn park_directed_holds_the_far_party_in_the_slot() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    let slot = o.ok(crm, |s, now| {
        s.park(now, crm, b, ParkMode::Directed("7005".into()))
    });
    assert_eq!(&*slot, "7005");
    assert_eq!(
        o.replies(crm),
        vec![Ok(Reply::Parked {
            parked_at: "7005".into()
        })]
    );
    o.told(crm, b, CallState::Idle);
    o.told(mon, b, CallState::Idle);
    o.told(crm, a, HELD_BY_FAR_END);
    o.told(mon, a, HELD_BY_FAR_END);
    for app in [crm, mon] {
        assert!(o.sim.events_for(app).contains(&&EventBody::Parked {
            call: a,
            slot: "7005".into()
        }));
    }
    assert_eq!(o.sim.switch.parked_at("7005"), Some(a));
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, a)
            .unwrap()
            .connected
            .unwrap()
            .address,
        "7005"
    );
    let leg = o.sim.switch.leg_of(a).unwrap();
    assert!(o.effects().contains(&tapir_core::Effect::Media {
        leg,
        source: tapir_core::MediaSource::Tone(tapir_core::Tone::HoldMusic)
    }));
    o.consistent();
}

#[test]
fn park_non_directed_takes_the_first_free_slot() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    assert_eq!(
        &*o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected)),
        "7001"
    );
    let (_c, d) = o.talk("1003", "1004");
    assert_eq!(
        &*o.ok(crm, |s, now| s.park(now, crm, d, ParkMode::NonDirected)),
        "7002"
    );
}

#[test]
fn park_preconditions() {
    let mut o = office_with(SwitchConfig {
        park_slots: vec!["7001".into()],
        ..SwitchConfig::default()
    });
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.park(now, crm, b, ParkMode::NonDirected)
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.park(now, crm, a, ParkMode::NonDirected)
    });
    let (_c, d) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.park(now, crm, d, ParkMode::Directed("1002".into()))
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.park(now, mon, d, ParkMode::NonDirected)
    });
    o.ok(crm, |s, now| {
        s.park(now, crm, d, ParkMode::Directed("7001".into()))
    });
    let (_e, f) = o.talk("1005", "1004");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.park(now, crm, f, ParkMode::Directed("7001".into()))
    });
    o.rejected(crm, ErrorCode::ResourceUnavail, |s, now| {
        s.park(now, crm, f, ParkMode::NonDirected)
    });
}

#[test]
fn unpark_to_a_phone_connects_the_parked_party() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    let u = o.ok(crm, |s, now| s.unpark(now, crm, "1003", "7001"));
    assert_eq!(o.replies(crm), vec![Ok(Reply::Call { call: u })]);
    o.announced(crm, u, Privilege::Owner, CallReason::Unpark);
    o.announced(mon, u, Privilege::Monitor, CallReason::Unpark);
    // proceeding until the phone (auto-answer) picks up, then connected.
    assert_eq!(
        o.states_seen(crm, u),
        vec![CallState::Proceeding, CONNECTED]
    );
    o.told(crm, a, CONNECTED);
    assert!(o.sim.events_for(crm).contains(&&EventBody::Unparked {
        call: a,
        slot: "7001".into(),
        by: Some(u)
    }));
    assert_eq!(o.sim.switch.parked_at("7001"), None);
    let mut two = vec![a, u];
    two.sort();
    assert_eq!(o.bridge(u), two);
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, u)
            .unwrap()
            .connected
            .unwrap()
            .address,
        "1001"
    );
    o.consistent();
}

#[test]
fn unpark_to_a_route_point_connects_at_once() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    let u = o.ok(crm, |s, now| s.unpark(now, crm, "2000", "7001"));
    o.told(crm, u, CONNECTED);
    o.told(crm, a, CONNECTED);
}

#[test]
fn unpark_preconditions() {
    let mut o = office();
    let crm = o.crm;
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.unpark(now, crm, "1003", "7001")
    });
    let (_a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.unpark(now, crm, "1999", "7001")
    });
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.unpark(now, stranger, "1003", "7001")
    });
}

#[test]
fn park_reminder_rings_back_at_the_parking_address() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    o.clear();
    o.sim.advance(119_999);
    o.expect(a, HELD_BY_FAR_END);
    o.sim.advance(1);
    assert_eq!(o.sim.switch.parked_at("7001"), None);
    assert!(o.sim.events_for(crm).contains(&&EventBody::Unparked {
        call: a,
        slot: "7001".into(),
        by: None
    }));
    let r = o.only_call_at("1002");
    o.told(crm, r, OFFERING);
    o.announced(crm, r, Privilege::Owner, CallReason::Reminder);
    o.told(crm, a, CallState::Ringback);
    assert_eq!(
        o.sim
            .switch
            .call_info(crm, r)
            .unwrap()
            .redirecting
            .unwrap()
            .address,
        "7001"
    );
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    o.expect(r, CONNECTED);
}

#[test]
fn a_phone_dialling_a_park_slot_retrieves_the_call() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| {
        s.park(now, crm, b, ParkMode::Directed("7003".into()))
    });
    o.clear();
    let leg = o.sim.phone("1004").dial("7003");
    let u = o.sim.switch.call_of_leg(leg).unwrap();
    o.told(crm, u, CONNECTED);
    o.told(crm, a, CONNECTED);
    assert_eq!(
        o.sim.switch.call_info(crm, u).unwrap().reason,
        CallReason::Unpark
    );
    assert!(o.effects().contains(&tapir_core::Effect::AnswerLeg { leg }));
}

// ----------------------------------------------------------------------
// pickup
// ----------------------------------------------------------------------

#[test]
fn pickup_from_a_group() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, r) = o.ring("1001", "1003");
    o.clear();
    let k = o.ok(crm, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    assert_eq!(o.replies(crm), vec![Ok(Reply::Call { call: k })]);
    assert_eq!(
        o.states_seen(crm, r),
        vec![
            CallState::Disconnected(DisconnectMode::Pickup),
            CallState::Idle
        ]
    );
    assert_eq!(o.states_seen(mon, r), o.states_seen(crm, r));
    o.announced(crm, k, Privilege::Owner, CallReason::Pickup);
    o.announced(mon, k, Privilege::Monitor, CallReason::Pickup);
    assert_eq!(
        o.states_seen(crm, k),
        vec![CallState::Proceeding, CONNECTED]
    );
    o.told(crm, a, CONNECTED);
    let info = o.sim.switch.call_info(crm, k).unwrap();
    assert_eq!(info.caller.address, "1001");
    assert_eq!(info.redirecting.unwrap().address, "1003");
    assert_eq!(info.connected.unwrap().address, "1001");
    // The ringing phone stopped ringing.
    assert!(o.sim.phone("1003").leg_ids().is_empty());
    o.consistent();
}

#[test]
fn pickup_directed_at_an_address() {
    let mut o = office();
    let crm = o.crm;
    let (a, r) = o.ring("1004", "1001");
    let k = o.ok(crm, |s, now| {
        s.pickup(now, crm, "1002", PickupTarget::Address("1001".into()))
    });
    o.expect(r, CallState::Idle);
    o.told(crm, k, CONNECTED);
    o.told(crm, a, CONNECTED);
}

/// linePickup naming both the alerting station and its pickup group ("needed
/// on some switches"): the call ringing at the address is picked up when the
/// address is in that group.
#[test]
fn pickup_naming_both_an_address_and_its_group() {
    let mut o = office();
    let crm = o.crm;
    let (a, r) = o.ring("1001", "1003");
    o.rejected(crm, ErrorCode::InvalGroupId, |s, now| {
        s.pickup(
            now,
            crm,
            "1004",
            PickupTarget::AddressInGroup("1003".into(), "support".into()),
        )
    });
    o.rejected(crm, ErrorCode::InvalGroupId, |s, now| {
        s.pickup(
            now,
            crm,
            "1004",
            PickupTarget::AddressInGroup("1002".into(), "sales".into()),
        )
    });
    let k = o.ok(crm, |s, now| {
        s.pickup(
            now,
            crm,
            "1004",
            PickupTarget::AddressInGroup("1003".into(), "sales".into()),
        )
    });
    o.expect(r, CallState::Idle);
    o.told(crm, k, CONNECTED);
    o.told(crm, a, CONNECTED);
}

#[test]
fn pickup_of_a_call_from_outside_keeps_its_origin() {
    let mut o = office();
    let crm = o.crm;
    let (a, _r) = o.ring_from_outside("+15551234", "1003");
    let k = o.ok(crm, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    let info = o.sim.switch.call_info(crm, k).unwrap();
    assert_eq!(info.origin, tapir_core::CallOrigin::External);
    assert_eq!(info.caller.address, "+15551234");
    o.expect(a, CONNECTED);
    o.expect(k, CONNECTED);
}

#[test]
fn pickup_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    o.rejected(crm, ErrorCode::InvalGroupId, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("support".into()))
    });
    // Nothing rings in the group or at the address.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Address("1001".into()))
    });
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Address("1999".into()))
    });
    // A ringing call that is connected already is not ringing any more.
    let (_a, _b) = o.talk("1001", "1003");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    let _ = mon;
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    let (_c, _d) = o.ring("1002", "1004");
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.pickup(now, stranger, "1005", PickupTarget::Address("1004".into()))
    });
}

/// linePickup: "If both are NULL, the pickup is of a call-waiting call on
/// the address" (the `PICKUPCALLWAIT` capability: "lineSwapHold can then be
/// used to toggle between the two calls"). The waiting call is answered at
/// the address itself as a new call, and the address's talking call goes on
/// hold.
#[test]
fn pickup_of_the_call_waiting_at_the_address() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_, first) = o.talk("1002", "1001");
    let (c, waiting) = o.ring("1003", "1001");
    o.expect(waiting, OFFERING);
    let k = o.ok(crm, |s, now| {
        s.pickup(now, crm, "1001", PickupTarget::CallWaiting)
    });
    o.told(crm, first, CallState::OnHold);
    assert_eq!(
        o.states_seen(crm, waiting),
        [
            CallState::Disconnected(DisconnectMode::Pickup),
            CallState::Idle
        ]
    );
    o.announced(crm, k, Privilege::Owner, CallReason::Pickup);
    o.announced(mon, k, Privilege::Monitor, CallReason::Pickup);
    o.told(crm, k, CONNECTED);
    o.told(crm, c, CONNECTED);
    assert_eq!(o.far_call(k), c);
    let info = o.sim.switch.call_info(crm, k).unwrap();
    assert_eq!(info.address.as_ref(), "1001");
    assert_eq!(info.caller.address, "1003");
    // lineSwapHold toggles between the two calls.
    o.ok(crm, |s, now| s.swap_hold(now, crm, k, first));
    o.expect(first, CONNECTED);
    o.expect(k, CallState::OnHold);
}

#[test]
fn call_waiting_pickup_preconditions() {
    let mut o = office();
    let crm = o.crm;
    // Nothing at all at 1001.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1001", PickupTarget::CallWaiting)
    });
    // A ringing call with no other call is not waiting: answer it.
    let (_, r) = o.ring("1003", "1001");
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1001", PickupTarget::CallWaiting)
    });
    o.sim.phone("1001").answer();
    o.expect(r, CONNECTED);
    // A talking call and nothing waiting.
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1001", PickupTarget::CallWaiting)
    });
    // A call waiting elsewhere is not this address's.
    let (_, first) = o.talk("1004", "1002");
    let (_, waiting) = o.ring("1005", "1002");
    o.expect(waiting, OFFERING);
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1001", PickupTarget::CallWaiting)
    });
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.pickup(now, stranger, "1002", PickupTarget::CallWaiting)
    });
    o.expect(first, CONNECTED);
}

#[test]
fn a_secure_ringing_call_cannot_be_picked_up() {
    let mut o = office();
    let crm = o.crm;
    let (_a, r) = o.ring("1001", "1003");
    o.ok(crm, |s, now| s.secure_call(now, crm, r));
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    o.expect(r, OFFERING);
}

// ----------------------------------------------------------------------
// forward
// ----------------------------------------------------------------------

#[test]
fn forward_sets_the_rules_and_tells_every_app_on_the_line() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let rules = vec![rule(ForwardMode::Unconditional, Some("1003"))];
    o.ok(crm, |s, now| {
        s.forward(now, crm, "1002", rules.clone(), Some(3))
    });
    for app in [crm, mon] {
        assert!(
            o.sim
                .events_for(app)
                .contains(&&EventBody::AddressForwarding {
                    address: "1002".into(),
                    rules: rules.clone(),
                    no_answer_rings: 3,
                })
        );
    }
    assert_eq!(o.sim.switch.forwarding("1002"), Some((rules, 3)));
    // Ring counts are clamped to 1..=20.
    o.ok(crm, |s, now| s.forward(now, crm, "1002", vec![], Some(0)));
    assert_eq!(o.sim.switch.forwarding("1002"), Some((vec![], 1)));
    o.ok(crm, |s, now| s.forward(now, crm, "1002", vec![], Some(99)));
    assert_eq!(o.sim.switch.forwarding("1002"), Some((vec![], 20)));
}

#[test]
fn forward_unconditional_sends_the_call_on_at_once() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::Unconditional, Some("1003"))],
            None,
        )
    });
    o.clear();
    let leg = o.sim.phone("1001").dial("1002");
    let a = o.sim.switch.call_of_leg(leg).unwrap();
    assert!(o.sim.calls_at("1002").is_empty());
    let c = o.only_call_at("1003");
    o.told(crm, c, OFFERING);
    o.announced(crm, c, Privilege::Owner, CallReason::FwdUncond);
    o.announced(mon, c, Privilege::Monitor, CallReason::FwdUncond);
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
    o.told(crm, a, CallState::Ringback);
    // Cancelling forwarding: calls ring at 1002 again.
    o.ok(crm, |s, now| s.forward(now, crm, "1002", vec![], None));
    o.sim.phone("1004").dial("1002");
    o.expect(o.only_call_at("1002"), OFFERING);
}

/// Where a call from `caller` to 1002 ends up ringing.
fn lands(o: &mut Office, caller: &str) -> (String, CallReason) {
    let crm = o.crm;
    let (a, _) = if caller.starts_with('+') {
        o.ring_from_outside(caller, "1002")
    } else {
        o.ring(caller, "1002")
    };
    let b = o.sim.switch.bridge_calls(a).into_iter().find(|c| *c != a);
    let info = o.sim.switch.call_info(crm, b.unwrap()).unwrap();
    let out = (info.address.to_string(), info.reason);
    // Clean up: the caller hangs up.
    let leg = o.sim.switch.leg_of(a).unwrap();
    let who = if caller.starts_with('+') {
        "9000"
    } else {
        caller
    };
    o.sim
        .phone(who)
        .report_on(leg, tapir_core::LegEvent::HungUp);
    out
}

#[test]
fn forward_unconditional_caller_filters() {
    let mut o = office();
    let crm = o.crm;
    let set = |o: &mut Office, rules: Vec<ForwardRule>| {
        o.ok(crm, |s, now| s.forward(now, crm, "1002", rules, None));
    };
    set(
        &mut o,
        vec![rule(ForwardMode::UnconditionalInternal, Some("1003"))],
    );
    assert_eq!(
        lands(&mut o, "1001"),
        ("1003".into(), CallReason::FwdUncond)
    );
    assert_eq!(
        lands(&mut o, "+15550001"),
        ("1002".into(), CallReason::Direct)
    );
    set(
        &mut o,
        vec![rule(ForwardMode::UnconditionalExternal, Some("1003"))],
    );
    assert_eq!(lands(&mut o, "1001"), ("1002".into(), CallReason::Direct));
    assert_eq!(
        lands(&mut o, "+15550001"),
        ("1003".into(), CallReason::FwdUncond)
    );
    set(
        &mut o,
        vec![specific(
            ForwardMode::UnconditionalSpecific,
            "1001",
            Some("1003"),
        )],
    );
    assert_eq!(
        lands(&mut o, "1001"),
        ("1003".into(), CallReason::FwdUncond)
    );
    assert_eq!(lands(&mut o, "1004"), ("1002".into(), CallReason::Direct));
    // A rule for one caller beats the rule for everybody.
    set(
        &mut o,
        vec![
            rule(ForwardMode::Unconditional, Some("1005")),
            specific(ForwardMode::UnconditionalSpecific, "1001", Some("1003")),
        ],
    );
    assert_eq!(
        lands(&mut o, "1001"),
        ("1003".into(), CallReason::FwdUncond)
    );
    assert_eq!(
        lands(&mut o, "1004"),
        ("1005".into(), CallReason::FwdUncond)
    );
    o.consistent();
}

#[test]
fn forward_busy_family() {
    let mut o = office();
    let crm = o.crm;
    o.sim.set_behaviour("1002", Behaviour::Busy);
    for (mode, caller, fires) in [
        (ForwardMode::Busy, "1001", true),
        (ForwardMode::BusyInternal, "1001", true),
        (ForwardMode::BusyInternal, "+15550001", false),
        (ForwardMode::BusyExternal, "+15550001", true),
        (ForwardMode::BusyExternal, "1001", false),
        (ForwardMode::BusySpecific, "1001", true),
        (ForwardMode::BusySpecific, "1004", false),
    ] {
        let r = if mode == ForwardMode::BusySpecific {
            specific(mode, "1001", Some("1003"))
        } else {
            rule(mode, Some("1003"))
        };
        o.ok(crm, |s, now| s.forward(now, crm, "1002", vec![r], None));
        let a = o.call_from(caller, "1002");
        if fires {
            let c = o.only_call_at("1003");
            assert_eq!(
                o.sim.switch.call_info(crm, c).unwrap().reason,
                CallReason::FwdBusy,
                "{mode:?}"
            );
            o.expect(a, CallState::Ringback);
            o.sim.phone("1003").report(tapir_core::LegEvent::Rejected);
        } else {
            assert!(o.sim.calls_at("1003").is_empty(), "{mode:?} from {caller}");
            o.expect(a, BUSY);
        }
        let leg = o.sim.switch.leg_of(a);
        if let Some(leg) = leg {
            let who = if caller.starts_with('+') {
                "9000"
            } else {
                caller
            };
            o.sim
                .phone(who)
                .report_on(leg, tapir_core::LegEvent::HungUp);
        }
        assert!(o.sim.calls_at("1002").is_empty());
    }
    o.consistent();
}

#[test]
fn forward_busy_when_every_call_appearance_is_in_use() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::Busy, Some("2000"))],
            None,
        )
    });
    for from in ["1003", "1004", "1005"] {
        o.ring(from, "1002");
    }
    o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    assert_eq!(o.sim.calls_at("1002").len(), 4);
    let (a, b) = o.ring("1001", "1002");
    assert_eq!(o.sim.calls_at("1002").len(), 4);
    let info = o.sim.switch.call_info(crm, b).unwrap();
    assert_eq!(&*info.address, "2000");
    assert_eq!(info.reason, CallReason::FwdBusy);
    assert_eq!(info.redirecting.unwrap().address, "1002");
    o.expect(b, OFFERING);
    o.expect(a, CallState::Ringback);
}

#[test]
fn forward_no_answer_after_the_ring_count() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::NoAnswer, Some("1003"))],
            Some(2),
        )
    });
    let (a, b) = o.ring("1001", "1002");
    o.clear();
    // Two rings of 6 s.
    o.sim.advance(11_999);
    o.expect(b, OFFERING);
    assert!(o.sim.calls_at("1003").is_empty());
    o.sim.advance(1);
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Forwarded),
            CallState::Idle
        ]
    );
    assert_eq!(o.states_seen(mon, b), o.states_seen(crm, b));
    let c = o.only_call_at("1003");
    o.told(crm, c, OFFERING);
    o.announced(crm, c, Privilege::Owner, CallReason::FwdNoAnswer);
    o.told(crm, a, CallState::Ringback);
    assert!(o.sim.phone("1002").leg_ids().is_empty());
    o.sim.phone("1003").answer();
    o.expect(a, CONNECTED);
    o.consistent();
}

#[test]
fn forward_no_answer_family_filters_callers() {
    let mut o = office();
    let crm = o.crm;
    for (r, caller, fires) in [
        (
            rule(ForwardMode::NoAnswerInternal, Some("1003")),
            "1001",
            true,
        ),
        (
            rule(ForwardMode::NoAnswerInternal, Some("1003")),
            "+15550001",
            false,
        ),
        (
            rule(ForwardMode::NoAnswerExternal, Some("1003")),
            "+15550001",
            true,
        ),
        (
            rule(ForwardMode::NoAnswerExternal, Some("1003")),
            "1001",
            false,
        ),
        (
            specific(ForwardMode::NoAnswerSpecific, "1004", Some("1003")),
            "1004",
            true,
        ),
        (
            specific(ForwardMode::NoAnswerSpecific, "1004", Some("1003")),
            "1001",
            false,
        ),
    ] {
        o.ok(crm, |s, now| {
            s.forward(now, crm, "1002", vec![r.clone()], Some(1))
        });
        let (a, b) = if caller.starts_with('+') {
            o.ring_from_outside(caller, "1002")
        } else {
            o.ring(caller, "1002")
        };
        o.sim.advance(6_000);
        if fires {
            o.expect(b, CallState::Idle);
            let c = o.only_call_at("1003");
            assert_eq!(
                o.sim.switch.call_info(crm, c).unwrap().reason,
                CallReason::FwdNoAnswer
            );
            o.sim.phone("1003").report(tapir_core::LegEvent::Rejected);
        } else {
            o.expect(b, OFFERING);
            assert!(o.sim.calls_at("1003").is_empty(), "{r:?} from {caller}");
        }
        if let Some(leg) = o.sim.switch.leg_of(a) {
            let who = if caller.starts_with('+') {
                "9000"
            } else {
                caller
            };
            o.sim
                .phone(who)
                .report_on(leg, tapir_core::LegEvent::HungUp);
        }
        assert!(o.sim.calls_at("1002").is_empty());
    }
    o.consistent();
}

#[test]
fn accept_stops_no_answer_forwarding() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::NoAnswer, Some("1003"))],
            Some(1),
        )
    });
    let (_a, b) = o.ring("1001", "1002");
    o.ok(crm, |s, now| s.accept(now, crm, b));
    o.sim.advance(60_000);
    o.expect(b, CallState::Accepted);
    assert!(o.sim.calls_at("1003").is_empty());
}

#[test]
fn forward_busy_no_answer_covers_both_conditions() {
    let mut o = office();
    let crm = o.crm;
    for mode in [
        ForwardMode::BusyNoAnswer,
        ForwardMode::BusyNoAnswerInternal,
        ForwardMode::BusyNoAnswerSpecific,
    ] {
        let r = if mode == ForwardMode::BusyNoAnswerSpecific {
            specific(mode, "1001", Some("1003"))
        } else {
            rule(mode, Some("1003"))
        };
        o.ok(crm, |s, now| s.forward(now, crm, "1002", vec![r], Some(1)));
        // No answer.
        o.sim.set_behaviour("1002", Behaviour::Ring);
        let (a, _b) = o.ring("1001", "1002");
        o.sim.advance(6_000);
        let c = o.only_call_at("1003");
        assert_eq!(
            o.sim.switch.call_info(crm, c).unwrap().reason,
            CallReason::FwdNoAnswer
        );
        o.sim.phone("1001").hang_up_all();
        o.expect(a, CallState::Idle);
        // Busy.
        o.sim.set_behaviour("1002", Behaviour::Busy);
        let (a, _b) = o.ring("1001", "1002");
        let c = o.only_call_at("1003");
        assert_eq!(
            o.sim.switch.call_info(crm, c).unwrap().reason,
            CallReason::FwdBusy
        );
        o.sim.phone("1001").hang_up_all();
        o.expect(a, CallState::Idle);
    }
    // External callers pass the external variant only.
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::BusyNoAnswerExternal, Some("1003"))],
            Some(1),
        )
    });
    let (a, _b) = o.ring_from_outside("+15550001", "1002");
    let c = o.only_call_at("1003");
    assert_eq!(
        o.sim.switch.call_info(crm, c).unwrap().reason,
        CallReason::FwdBusy
    );
    let _ = a;
    o.consistent();
}

#[test]
fn do_not_disturb_is_a_rule_without_destination() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::Unconditional, None)],
            None,
        )
    });
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    o.told(crm, a, BUSY);
    assert!(o.sim.calls_at("1002").is_empty());
    // DND for internal callers only lets outside calls through.
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::UnconditionalInternal, None)],
            None,
        )
    });
    let (x, b) = o.ring_from_outside("+15550001", "1002");
    o.expect(b, OFFERING);
    o.expect(x, CallState::Ringback);
}

#[test]
fn forward_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let bad: Vec<(Vec<ForwardRule>, ErrorCode)> = vec![
        (
            vec![rule(ForwardMode::UnconditionalSpecific, Some("1003"))],
            ErrorCode::InvalParam,
        ),
        (
            vec![specific(ForwardMode::Busy, "1001", Some("1003"))],
            ErrorCode::InvalParam,
        ),
        (
            vec![specific(ForwardMode::BusySpecific, "bob", Some("1003"))],
            ErrorCode::InvalParam,
        ),
        (
            vec![rule(ForwardMode::Busy, Some("1002"))],
            ErrorCode::InvalParam,
        ),
        (
            vec![
                rule(ForwardMode::NoAnswer, Some("1003")),
                rule(ForwardMode::NoAnswer, Some("1004")),
            ],
            ErrorCode::InvalParam,
        ),
        (
            vec![rule(ForwardMode::Unconditional, Some("not a number"))],
            ErrorCode::InvalAddress,
        ),
    ];
    for (rules, code) in bad {
        o.rejected(crm, code, |s, now| s.forward(now, crm, "1002", rules, None));
    }
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.forward(now, crm, "1999", vec![], None)
    });
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.forward(now, stranger, "1002", vec![], None)
    });
    // A monitor may set forwarding (it is the address's setting, not a call's).
    o.ok(mon, |s, now| s.forward(now, mon, "1002", vec![], None));
}

/// lineForward, bAllAddresses: "If TRUE, all addresses on the line are
/// forwarded and dwAddressID is ignored; if FALSE, only the address
/// specified as dwAddressID is forwarded."
#[test]
fn forward_all_addresses_of_a_line_at_once() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    // A line with two addresses, 1006 and 1007.
    let mut two = tapir_core::LineConfig::phone("1006");
    two.addresses.push("1007".into());
    o.sim.add_line(two, Behaviour::Ring);
    let line = o.sim.switch.line_of("1007").unwrap();
    for (app, p) in [(crm, Privilege::Owner), (mon, Privilege::Monitor)] {
        o.sim.switch.open_line(app, line, &[p], &[]).unwrap();
    }
    let rules = vec![rule(ForwardMode::Unconditional, Some("1003"))];
    o.ok(crm, |s, now| {
        s.forward_line(now, crm, line, rules.clone(), Some(2))
    });
    for address in ["1006", "1007"] {
        assert_eq!(
            o.sim.switch.forwarding(address),
            Some((rules.clone(), 2)),
            "{address}"
        );
        for app in [crm, mon] {
            assert!(
                o.sim
                    .events_for(app)
                    .contains(&&EventBody::AddressForwarding {
                        address: address.into(),
                        rules: rules.clone(),
                        no_answer_rings: 2,
                    }),
                "{address}"
            );
        }
    }
    // A call to the second address follows the line's forwarding.
    o.clear();
    o.sim.phone("1001").dial("1007");
    assert!(o.sim.calls_at("1007").is_empty());
    let c = o.only_call_at("1003");
    o.announced(crm, c, Privilege::Owner, CallReason::FwdUncond);
    // All or nothing: one address cannot forward to itself, so neither does.
    o.rejected(crm, ErrorCode::InvalParam, |s, now| {
        s.forward_line(
            now,
            crm,
            line,
            vec![rule(ForwardMode::Busy, Some("1007"))],
            None,
        )
    });
    o.rejected(crm, ErrorCode::InvalParam, |s, now| {
        s.forward_line(
            now,
            crm,
            line,
            vec![rule(ForwardMode::UnconditionalSpecific, Some("1003"))],
            None,
        )
    });
    // Only an app with the line open may forward it.
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalLineHandle, |s, now| {
        s.forward_line(now, stranger, line, vec![], None)
    });
    // An empty list cancels forwarding on every address.
    o.ok(mon, |s, now| s.forward_line(now, mon, line, vec![], None));
    for address in ["1006", "1007"] {
        assert_eq!(o.sim.switch.forwarding(address), Some((vec![], 2)));
    }
}

// ----------------------------------------------------------------------
// complete_call, uncomplete_call
// ----------------------------------------------------------------------

/// 1002 is busy on a secure call with 1003; 1001 calls it and gets busy.
/// Returns (a, b, c): 1001's busy call and 1002's and 1003's calls.
fn busy_callee(o: &mut Office) -> (CallId, CallId, CallId) {
    let crm = o.crm;
    let (c, b) = o.talk("1003", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, BUSY);
    o.clear();
    (a, b, c)
}

fn completion_done(
    o: &Office,
    app: tapir_core::AppId,
) -> Vec<(CompletionId, Option<CallId>, bool)> {
    o.sim
        .events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::CompletionDone {
                completion,
                call,
                completed,
                ..
            } => Some((*completion, *call, *completed)),
            _ => None,
        })
        .collect()
}

/// Make 1002 busy without a secure call: fill its call appearances.
fn fill_1002(o: &mut Office) {
    for from in ["1004", "1005", "2000"] {
        let crm = o.crm;
        o.ok(crm, |s, now| s.make_call(now, crm, from, Some("1002")));
    }
}

/// lineCompleteCall: "After this function completes, the call typically
/// transitions to idle. When the called station or network enters a state
/// where the call can be completed as requested, the application is
/// notified by a LINE_CALLSTATE message with call state equal to offering.
/// The call's LINECALLINFO record lists the reason for the call as
/// CALLCOMPLETION and also provides the completion identifier."
#[test]
fn complete_call_camp_on_waits_then_rings() {
    let mut o = office();
    let crm = o.crm;
    let (c, b) = o.talk("1003", "1002");
    fill_1002(&mut o);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, BUSY);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    assert_eq!(
        o.replies(crm),
        vec![Ok(Reply::Completion { completion_id: id })]
    );
    o.told(crm, a, CallState::Idle);
    assert_eq!(o.sim.switch.call_info(crm, a).unwrap().completion, Some(id));
    // 1002 frees up: every call there ends.
    o.clear();
    o.sim.phone("1003").hang_up_all();
    for from in ["1004", "1005"] {
        o.sim.phone(from).hang_up_all();
    }
    let rp = o.sim.calls_at("2000");
    for call in rp {
        o.ok(crm, |s, now| s.drop_call(now, crm, call));
    }
    o.expect(b, CallState::Idle);
    o.expect(c, CallState::Idle);
    // The requester is offered a new call first ...
    let cb = o
        .sim
        .calls_at("1001")
        .into_iter()
        .find(|x| *x != a)
        .unwrap();
    o.told(crm, cb, OFFERING);
    let info = o.sim.switch.call_info(crm, cb).unwrap();
    assert_eq!(info.reason, CallReason::CallCompletion);
    assert_eq!(info.completion, Some(id));
    // ... and once it answers, 1002 rings with reason campedon.
    o.sim.phone("1001").answer();
    let d = o.only_call_at("1002");
    o.expect(d, OFFERING);
    assert_eq!(
        o.sim.switch.call_info(crm, d).unwrap().reason,
        CallReason::CampedOn
    );
    o.sim.phone("1002").answer();
    o.expect(cb, CONNECTED);
    o.consistent();
}

#[test]
fn complete_call_camp_on_reports_completion() {
    let mut o = office();
    let crm = o.crm;
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    o.told(crm, a, CallState::Idle);
    o.clear();
    o.sim.phone("1003").hang_up();
    let cb = o
        .sim
        .calls_at("1001")
        .into_iter()
        .find(|x| *x != a)
        .unwrap();
    assert_eq!(completion_done(&o, crm), vec![(id, Some(cb), true)]);
    o.announced(crm, cb, Privilege::Owner, CallReason::CallCompletion);
}

/// lineCompleteCall: "The call state of hCall must be busy or ringback":
/// camp-on on a ringing call is accepted; the ringing stops, and the
/// request waits until the address has been used and is free again.
#[test]
fn complete_call_camp_on_a_ringing_call() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, CallState::Ringback);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    o.told(crm, a, CallState::Idle);
    assert!(o.sim.phone("1002").leg_ids().is_empty());
    assert!(o.sim.calls_at("1001").iter().all(|x| *x == a));
    let (x, _y) = o.talk("1002", "1004");
    o.ok(crm, |s, now| s.drop_call(now, crm, x));
    let cb = o
        .sim
        .calls_at("1001")
        .into_iter()
        .find(|x| *x != a)
        .unwrap();
    assert_eq!(
        o.sim.switch.call_info(crm, cb).unwrap().completion,
        Some(id)
    );
}

/// The callback's new call goes to the app that asked, not to the line's
/// highest-priority owner.
#[test]
fn the_callback_call_goes_to_the_app_that_asked() {
    let mut o = office();
    let crm = o.crm;
    // `agent` ranks below crm for new calls on 1001.
    let agent = o.sim.switch.register_app(AppConfig {
        priority: 5,
        ..AppConfig::named("agent")
    });
    let line = o.sim.switch.line_of("1001").unwrap();
    o.sim
        .switch
        .open_line(agent, line, &[Privilege::Owner], &[])
        .unwrap();
    let (_c, b) = o.talk("1003", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, b));
    let a = o.ok(agent, |s, now| {
        s.make_call(now, agent, "1001", Some("1002"))
    });
    o.expect(a, BUSY);
    let id = o.ok(agent, |s, now| {
        s.complete_call(now, agent, a, CompletionMode::Callback, None)
    });
    o.sim.phone("1003").hang_up();
    let cb = o
        .sim
        .calls_at("1001")
        .into_iter()
        .find(|x| *x != a)
        .unwrap();
    let info = o.sim.switch.call_info(agent, cb).unwrap();
    assert_eq!(info.privilege, Privilege::Owner);
    assert_eq!(info.completion, Some(id));
    assert!(o.sim.switch.call_info(crm, cb).is_err());
}

#[test]
fn complete_call_callback_rings_the_caller_then_the_callee() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Callback, None)
    });
    o.told(crm, a, CallState::Idle);
    // The busy address frees: the caller's phone rings first.
    o.clear();
    o.sim.phone("1003").hang_up();
    let cb = o.only_call_at("1001");
    o.told(crm, cb, OFFERING);
    o.announced(crm, cb, Privilege::Owner, CallReason::CallCompletion);
    o.announced(mon, cb, Privilege::Monitor, CallReason::CallCompletion);
    assert_eq!(completion_done(&o, crm), vec![(id, Some(cb), true)]);
    let info = o.sim.switch.call_info(crm, cb).unwrap();
    assert_eq!(info.completion, Some(id));
    assert_eq!(info.caller.address, "1002");
    // The caller answers: now 1002 is called.
    o.clear();
    o.sim.phone("1001").answer();
    o.told(crm, cb, CallState::Ringback);
    let d = o.only_call_at("1002");
    o.told(crm, d, OFFERING);
    o.sim.phone("1002").answer();
    o.expect(cb, CONNECTED);
    o.expect(d, CONNECTED);
    o.consistent();
}

#[test]
fn complete_call_callback_on_a_ringing_call_waits_for_activity() {
    let mut o = office();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, CallState::Ringback);
    let b = o.only_call_at("1002");
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Callback, None)
    });
    o.told(crm, a, CallState::Idle);
    // 1002 stops ringing: its caller is gone.
    assert_eq!(
        o.states_seen(crm, b),
        vec![
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    assert!(o.sim.phone("1002").leg_ids().is_empty());
    // Nobody was there: the callback waits until 1002 has been used.
    assert!(o.sim.calls_at("1001").is_empty());
    let (x, _y) = o.talk("1002", "1004");
    o.ok(crm, |s, now| s.drop_call(now, crm, x));
    let cb = o.only_call_at("1001");
    assert_eq!(
        o.sim.switch.call_info(crm, cb).unwrap().completion,
        Some(id)
    );
}

#[test]
fn complete_call_intrude_joins_the_busy_call() {
    let mut o = office();
    let crm = o.crm;
    let (c, b) = o.talk("1003", "1002");
    fill_1002(&mut o);
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, BUSY);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Intrude, None)
    });
    o.told(crm, a, CONNECTED);
    assert_eq!(completion_done(&o, crm), vec![(id, Some(a), true)]);
    let mut three = vec![a, b, c];
    three.sort();
    assert_eq!(o.bridge(a), three);
    o.expect(b, CONNECTED);
    o.expect(c, CONNECTED);
    // The intruder leaves: the two-party call goes on.
    o.ok(crm, |s, now| s.drop_call(now, crm, a));
    o.expect(b, CONNECTED);
    o.expect(c, CONNECTED);
    o.consistent();
}

#[test]
fn complete_call_intrude_refused_on_a_secure_call() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, _c) = busy_callee(&mut o);
    let _ = b;
    let (x, y) = o.talk("1004", "1005");
    o.ok(crm, |s, now| s.secure_call(now, crm, y));
    let z = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1005")));
    o.expect(z, BUSY);
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.complete_call(now, crm, z, CompletionMode::Intrude, None)
    });
    let _ = x;
}

#[test]
fn complete_call_message_leaves_a_message() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Message, Some(2))
    });
    o.told(crm, a, CallState::Idle);
    for app in [crm, mon] {
        assert!(o.sim.events_for(app).iter().any(|e| matches!(
            e,
            EventBody::CompletionDone {
                completion,
                mode: CompletionMode::Message,
                message_id: Some(2),
                completed: true,
                from,
                to,
                ..
            } if *completion == id && &**from == "1001" && &**to == "1002"
        )));
    }
}

#[test]
fn complete_call_preconditions() {
    let mut o = office_with(SwitchConfig {
        max_completions_per_address: 1,
        ..SwitchConfig::default()
    });
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, _c) = busy_callee(&mut o);
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.complete_call(now, crm, b, CompletionMode::CampOn, None)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.complete_call(now, mon, a, CompletionMode::CampOn, None)
    });
    o.rejected(crm, ErrorCode::InvalMessageId, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Message, None)
    });
    o.rejected(crm, ErrorCode::InvalMessageId, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Message, Some(4))
    });
    // Intrusion needs a busy call (camp-on does not).
    let r = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1004")));
    o.expect(r, CallState::Ringback);
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.complete_call(now, crm, r, CompletionMode::Intrude, None)
    });
    // One request per address at most here.
    o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    let a2 = o.ok(crm, |s, now| s.make_call(now, crm, "1005", Some("1002")));
    o.expect(a2, BUSY);
    o.rejected(crm, ErrorCode::CompletionOverrun, |s, now| {
        s.complete_call(now, crm, a2, CompletionMode::Callback, None)
    });
    // Completion works towards this switch's addresses only.
    o.sim.set_behaviour("9000", Behaviour::Busy);
    let ext = o.ok(crm, |s, now| {
        s.make_call(now, crm, "1004", Some("+15550001"))
    });
    o.expect(ext, BUSY);
    o.rejected(crm, ErrorCode::OperationUnavail, |s, now| {
        s.complete_call(now, crm, ext, CompletionMode::Callback, None)
    });
}

#[test]
fn uncomplete_call_cancels_a_camp_on() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    let stranger = o.sim.switch.register_app(AppConfig::named("stranger"));
    o.rejected(stranger, ErrorCode::InvalCompletionId, |s, now| {
        s.uncomplete_call(now, stranger, id)
    });
    o.ok(crm, |s, now| s.uncomplete_call(now, crm, id));
    let _ = (a, mon);
    o.rejected(crm, ErrorCode::InvalCompletionId, |s, now| {
        s.uncomplete_call(now, crm, id)
    });
    // 1002 frees: nothing happens any more.
    o.sim.phone("1003").hang_up();
    assert!(o.sim.calls_at("1002").is_empty());
    assert!(o.sim.calls_at("1001").iter().all(|x| *x == a));
    assert_eq!(o.sim.switch.resources_in_use().3, 0);
}

#[test]
fn a_completion_request_expires() {
    let mut o = office();
    let crm = o.crm;
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::CampOn, None)
    });
    o.clear();
    o.sim.advance(30 * 60 * 1000);
    assert_eq!(completion_done(&o, crm), vec![(id, None, false)]);
    o.expect(a, CallState::Idle);
    assert_eq!(o.sim.switch.resources_in_use().3, 0);
}

// ----------------------------------------------------------------------
// Corners
// ----------------------------------------------------------------------

#[test]
fn make_call_to_a_park_slot_retrieves_the_parked_call() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    let u = o.ok(crm, |s, now| s.make_call(now, crm, "1003", Some("7001")));
    o.told(crm, u, CONNECTED);
    o.told(crm, a, CONNECTED);
    assert_eq!(
        o.sim.switch.call_info(crm, u).unwrap().reason,
        CallReason::Unpark
    );
    assert_eq!(o.sim.switch.parked_at("7001"), None);
    // An empty slot is a bad address once dialled.
    let v = o.ok(crm, |s, now| s.make_call(now, crm, "1004", Some("7002")));
    assert!(
        o.states_seen(crm, v)
            .contains(&CallState::Disconnected(DisconnectMode::BadAddress))
    );
    o.told(crm, v, CallState::Idle);
}

#[test]
fn a_forwarding_loop_ends_after_the_hop_limit() {
    let mut o = office();
    let crm = o.crm;
    for (from, to) in [("1002", "1003"), ("1003", "1002")] {
        o.ok(crm, |s, now| {
            s.forward(
                now,
                crm,
                from,
                vec![rule(ForwardMode::Unconditional, Some(to))],
                None,
            )
        });
    }
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", Some("1002")));
    o.told(crm, a, CallState::Disconnected(DisconnectMode::Unavail));
    assert!(o.sim.calls_at("1002").is_empty());
    assert!(o.sim.calls_at("1003").is_empty());
    o.consistent();
}

#[test]
fn forward_to_an_outside_number_goes_out_on_the_trunk() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1002",
            vec![rule(ForwardMode::Unconditional, Some("+15557777"))],
            None,
        )
    });
    let (a, t) = o.ring("1001", "1002");
    let info = o.sim.switch.call_info(crm, t).unwrap();
    assert_eq!(&*info.address, "9000");
    assert_eq!(info.reason, CallReason::FwdUncond);
    assert_eq!(info.called.address, "+15557777");
    o.expect(a, CONNECTED);
}

#[test]
fn unpark_needs_a_free_call_appearance() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    for _ in 0..4 {
        o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    }
    o.rejected(crm, ErrorCode::CallUnavail, |s, now| {
        s.unpark(now, crm, "2000", "7001")
    });
}

#[test]
fn redirect_to_a_busy_address_gives_the_caller_busy() {
    let mut o = office();
    let crm = o.crm;
    let (_x, y) = o.talk("1003", "1002");
    o.ok(crm, |s, now| s.secure_call(now, crm, y));
    // tapir placed the caller's call (make call), so it re-targets it.
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("2000")));
    let b = o.only_call_at("2000");
    o.ok(crm, |s, now| s.redirect(now, crm, b, "1002"));
    o.expect(b, CallState::Idle);
    o.told(crm, a, BUSY);
}

#[test]
fn a_callback_request_expires() {
    let mut o = office();
    let crm = o.crm;
    let (a, _b, _c) = busy_callee(&mut o);
    let id = o.ok(crm, |s, now| {
        s.complete_call(now, crm, a, CompletionMode::Callback, None)
    });
    o.clear();
    o.sim.advance(30 * 60 * 1000);
    assert_eq!(completion_done(&o, crm), vec![(id, None, false)]);
    assert_eq!(o.sim.switch.resources_in_use().3, 0);
    // 1002 frees later: nobody is called back.
    o.sim.phone("1003").hang_up();
    assert!(o.sim.calls_at("1001").is_empty());
}

#[test]
fn pickup_cancels_the_no_answer_forwarding_of_the_ringing_call() {
    let mut o = office();
    let crm = o.crm;
    o.ok(crm, |s, now| {
        s.forward(
            now,
            crm,
            "1003",
            vec![rule(ForwardMode::NoAnswer, Some("1005"))],
            Some(1),
        )
    });
    let (a, _r) = o.ring("1001", "1003");
    let k = o.ok(crm, |s, now| {
        s.pickup(now, crm, "1004", PickupTarget::Group("sales".into()))
    });
    o.sim.advance(60_000);
    o.expect(k, CONNECTED);
    o.expect(a, CONNECTED);
    assert!(o.sim.calls_at("1005").is_empty());
    assert_eq!(o.sim.switch.resources_in_use().4, 0, "no timer left");
}

#[test]
fn a_phone_dialling_an_empty_park_slot_is_refused() {
    let mut o = office();
    let crm = o.crm;
    o.clear();
    let leg = o.sim.phone("1004").dial("7009");
    let u = o.sim.switch.call_of_leg(leg);
    assert_eq!(u, None, "the call is over");
    let news = o.new_calls(crm);
    let u = news[0].0;
    assert_eq!(
        o.states_seen(crm, u),
        vec![
            CallState::Dialing,
            CallState::Disconnected(DisconnectMode::BadAddress),
            CallState::Idle
        ]
    );
    assert!(o.effects().contains(&tapir_core::Effect::ReleaseLeg {
        leg,
        cause: tapir_core::ReleaseCause::NotFound
    }));
}
