//! INVITE with Replaces from a phone (RFC 3891), as the SIP layer reports it
//! with `Input::DeviceReplaces`: picking up a ringing call from a phone key,
//! and taking over an established call (the end of an attended transfer).

#![allow(clippy::unwrap_used)]

use tapir_core::sim::Sim;
use tapir_core::*;

fn office() -> (Sim, AppId) {
    let mut sim = Sim::new();
    for a in ["1001", "1002", "1003"] {
        sim.add_phone(a);
    }
    let app = sim.switch.register_app(AppConfig::named("crm"));
    for a in ["1001", "1002", "1003"] {
        let line = sim.switch.line_of(a).unwrap();
        sim.switch
            .open_line(app, line, &[Privilege::Owner, Privilege::Monitor], &[])
            .unwrap();
    }
    (sim, app)
}

fn replaces(sim: &mut Sim, from: &str, replaced: LegId) -> LegId {
    let leg = sim.switch.allocate_leg();
    sim.input(Input::DeviceReplaces {
        leg,
        from: from.into(),
        replaces: replaced,
    });
    leg
}

#[test]
fn a_phone_picks_up_a_ringing_call_with_replaces() {
    let (mut sim, app) = office();
    sim.phone("1001").dial("1002");
    let ringing = sim.calls_at("1002")[0];
    let ringing_leg = sim.switch.leg_of(ringing).unwrap();
    let caller = sim.calls_at("1001")[0];
    sim.clear();
    let leg = replaces(&mut sim, "1003", ringing_leg);
    assert_eq!(sim.state(ringing), Some(CallStateKind::Idle));
    let picked = sim.switch.call_of_leg(leg).unwrap();
    let info = sim.switch.call_info(app, picked).unwrap();
    assert_eq!(info.state, CallStateKind::Connected);
    assert_eq!(info.reason, CallReason::Pickup);
    assert_eq!(info.redirecting.unwrap().address, "1002");
    assert_eq!(sim.state(caller), Some(CallStateKind::Connected));
    // The ringing phone is cancelled, the picking phone gets its 200.
    assert!(sim.effects.contains(&Effect::ReleaseLeg {
        leg: ringing_leg,
        cause: ReleaseCause::Moved
    }));
    assert!(sim.effects.contains(&Effect::AnswerLeg { leg }));
    // The ringing call was seen to go away by pickup.
    let modes: Vec<_> = sim
        .events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::CallState {
                call, state_mode, ..
            } if *call == ringing => *state_mode,
            _ => None,
        })
        .collect();
    assert!(modes.contains(&StateMode::Disconnected(DisconnectMode::Pickup)));
    sim.switch.check_invariants().unwrap();
}

#[test]
fn a_phone_takes_over_an_established_call_with_replaces() {
    let (mut sim, app) = office();
    sim.phone("1001").dial("1002");
    sim.phone("1002").answer();
    let a = sim.calls_at("1001")[0];
    let b = sim.calls_at("1002")[0];
    let b_leg = sim.switch.leg_of(b).unwrap();
    let leg = replaces(&mut sim, "1003", b_leg);
    assert_eq!(sim.state(b), Some(CallStateKind::Idle));
    let c = sim.switch.call_of_leg(leg).unwrap();
    let info = sim.switch.call_info(app, c).unwrap();
    assert_eq!(info.state, CallStateKind::Connected);
    assert_eq!(info.reason, CallReason::Transfer);
    let a_info = sim.switch.call_info(app, a).unwrap();
    assert_eq!(a_info.state, CallStateKind::Connected);
    assert_eq!(a_info.connected.unwrap().address, "1003");
    assert_eq!(sim.switch.bridge_calls(a), vec![a, c]);
    sim.switch.check_invariants().unwrap();
}

#[test]
fn replacing_what_cannot_be_replaced_is_refused_and_changes_nothing() {
    let (mut sim, app) = office();
    // A leg the switch does not know.
    let before = sim.switch.model_snapshot();
    let leg = replaces(&mut sim, "1003", LegId(424_242));
    assert!(sim.effects.contains(&Effect::ReleaseLeg {
        leg,
        cause: ReleaseCause::NotFound
    }));
    assert_eq!(before, sim.switch.model_snapshot());
    // A secure call refuses to be taken over.
    sim.phone("1001").dial("1002");
    sim.phone("1002").answer();
    let b = sim.calls_at("1002")[0];
    sim.act(|s, now| s.secure_call(now, app, b)).unwrap();
    let before = sim.switch.model_snapshot();
    let b_leg = sim.switch.leg_of(b).unwrap();
    let leg = replaces(&mut sim, "1003", b_leg);
    assert!(sim.effects.contains(&Effect::ReleaseLeg {
        leg,
        cause: ReleaseCause::Rejected
    }));
    assert_eq!(before, sim.switch.model_snapshot());
}
