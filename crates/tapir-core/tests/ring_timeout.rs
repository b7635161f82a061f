//! An unanswered call with no no-answer forwarding rings for the switch's
//! ring timeout; then the ringing stops and the caller is told `noanswer`
//! (its phone's INVITE gets 480). Accepting the call stops the timer.

#![allow(clippy::unwrap_used)]

use tapir_core::sim::Sim;
use tapir_core::*;

fn office(ring_timeout_ms: u64) -> (Sim, AppId) {
    let mut sim = Sim::with_config(SwitchConfig {
        ring_timeout_ms,
        ..SwitchConfig::default()
    });
    sim.add_phone("1001");
    sim.add_phone("1002");
    let app = sim.switch.register_app(AppConfig::named("crm"));
    for a in ["1001", "1002"] {
        let line = sim.switch.line_of(a).unwrap();
        sim.switch
            .open_line(app, line, &[Privilege::Owner, Privilege::Monitor], &[])
            .unwrap();
    }
    (sim, app)
}

fn modes_seen(sim: &Sim, app: AppId, call: CallId) -> Vec<StateMode> {
    sim.events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::CallState {
                call: c,
                state_mode,
                ..
            } if *c == call => *state_mode,
            _ => None,
        })
        .collect()
}

#[test]
fn an_unanswered_call_stops_ringing_after_the_ring_timeout() {
    let (mut sim, app) = office(60_000);
    let caller_leg = sim.phone("1001").dial("1002");
    let a = sim.calls_at("1001")[0];
    let b = sim.calls_at("1002")[0];
    let b_leg = sim.switch.leg_of(b).unwrap();
    sim.advance(59_000);
    assert_eq!(sim.state(b), Some(CallStateKind::Offering));
    sim.advance(2_000);
    assert_eq!(sim.state(b), Some(CallStateKind::Idle));
    assert_eq!(sim.state(a), Some(CallStateKind::Idle));
    let no_answer = StateMode::Disconnected(DisconnectMode::NoAnswer);
    assert!(modes_seen(&sim, app, b).contains(&no_answer));
    assert!(modes_seen(&sim, app, a).contains(&no_answer));
    // The ringing phone is cancelled; the caller's INVITE gets 480.
    assert!(sim.effects.contains(&Effect::ReleaseLeg {
        leg: b_leg,
        cause: ReleaseCause::Normal
    }));
    assert!(sim.effects.contains(&Effect::ReleaseLeg {
        leg: caller_leg,
        cause: ReleaseCause::Unavailable
    }));
    assert_eq!(sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
}

#[test]
fn accepting_stops_the_ring_timeout_and_zero_rings_for_ever() {
    let (mut sim, app) = office(60_000);
    sim.phone("1001").dial("1002");
    let b = sim.calls_at("1002")[0];
    sim.act(|s, now| s.accept(now, app, b)).unwrap();
    sim.advance(600_000);
    assert_eq!(sim.state(b), Some(CallStateKind::Accepted));

    let (mut sim, _app) = office(0);
    sim.phone("1001").dial("1002");
    let b = sim.calls_at("1002")[0];
    sim.advance(3_600_000);
    assert_eq!(sim.state(b), Some(CallStateKind::Offering));
}
