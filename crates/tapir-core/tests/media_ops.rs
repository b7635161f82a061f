//! TAPI's media operations in the switch, step by step on the simulated
//! clock: `lineGatherDigits` (terminator, count, first-digit and inter-digit
//! timeouts on the switch's timers, replaced and cancelled gatherings),
//! `lineGenerateTone` (to the far party's leg), and `lineMonitorDigits` /
//! `lineMonitorTones` / `lineMonitorMedia` (detectors on the far party's
//! leg; a detected fax sets the call's media mode and hands it to the
//! line's `g3fax` owner). Nothing outlives the call.

#![allow(clippy::unwrap_used)]

mod support;

use support::{CONNECTED, Office, office};
use tapir_core::mediaops::{
    GatherReason, GatherSpec, MonitorSpec, ToneName, ToneRequest, ToneWatch,
};
use tapir_core::{
    AppConfig, AppId, CallId, Command, Effect, ErrorCode, EventBody, LegEvent, LegId, MediaMode,
    Privilege, TypedOps,
};

/// 1001 calls route point 2000 and `crm` answers: (caller's call, route
/// point call, caller's leg).
fn answered(o: &mut Office) -> (CallId, CallId, LegId) {
    let crm = o.crm;
    let (a, b) = o.ring("1001", "2000");
    o.ok(crm, |s, now| s.answer(now, crm, b));
    o.expect(a, CONNECTED);
    let leg = o.sim.switch.leg_of(a).unwrap();
    o.clear();
    (a, b, leg)
}

fn run(o: &mut Office, app: AppId, cmd: Command) {
    o.ok(app, |s, now| s.request(now, app, cmd).1);
}

fn gathered(o: &Office, app: AppId) -> Vec<(CallId, String, GatherReason)> {
    o.sim
        .events_for(app)
        .into_iter()
        .filter_map(|e| match e {
            EventBody::DigitsGathered {
                call,
                digits,
                reason,
            } => Some((*call, digits.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn spec(max: u32, term: &str, first: u64, inter: u64) -> GatherSpec {
    GatherSpec::new(Some(max), Some(term), Some(first), Some(inter)).unwrap()
}

#[test]
fn gathering_ends_by_terminator_count_and_timeouts() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, _) = answered(&mut o);
    // Terminator, kept last.
    run(
        &mut o,
        crm,
        Command::GatherDigits(b, spec(10, "#", 5000, 2000)),
    );
    o.sim.phone("1001").report(LegEvent::Digits("1".into()));
    o.sim.advance(1500);
    o.sim.phone("1001").report(LegEvent::Digits("2#9".into()));
    assert_eq!(
        gathered(&o, crm),
        [(b, "12#".into(), GatherReason::Terminator)]
    );
    // Count, with digits that came by SIP INFO.
    run(&mut o, crm, Command::GatherDigits(b, spec(2, "", 0, 0)));
    o.sim
        .phone("1001")
        .report(LegEvent::SignalledDigits("345".into()));
    assert_eq!(
        gathered(&o, crm),
        [(b, "34".into(), GatherReason::MaxDigits)]
    );
    // First-digit timeout: exactly when due.
    run(
        &mut o,
        crm,
        Command::GatherDigits(b, spec(4, "#", 1000, 300)),
    );
    o.sim.advance(999);
    assert!(gathered(&o, crm).is_empty());
    o.sim.advance(1);
    assert_eq!(
        gathered(&o, crm),
        [(b, String::new(), GatherReason::FirstTimeout)]
    );
    // Inter-digit timeout: each digit re-arms it.
    run(
        &mut o,
        crm,
        Command::GatherDigits(b, spec(4, "#", 1000, 300)),
    );
    o.sim.phone("1001").report(LegEvent::Digits("5".into()));
    o.sim.advance(250);
    o.sim.phone("1001").report(LegEvent::Digits("6".into()));
    o.sim.advance(250);
    assert!(gathered(&o, crm).is_empty());
    o.sim.advance(50);
    assert_eq!(
        gathered(&o, crm),
        [(b, "56".into(), GatherReason::InterTimeout)]
    );
    assert_eq!(o.sim.switch.media_ops_in_use(), (0, 0, 0));
    assert_eq!(o.sim.switch.resources_in_use().4, 0, "no timer left");
    o.consistent();
}

#[test]
fn a_new_gathering_replaces_the_old_and_the_calls_end_cancels() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, _) = answered(&mut o);
    run(
        &mut o,
        crm,
        Command::GatherDigits(b, spec(4, "", 60_000, 0)),
    );
    run(
        &mut o,
        crm,
        Command::GatherDigits(b, spec(4, "", 60_000, 0)),
    );
    assert_eq!(
        gathered(&o, crm),
        [(b, String::new(), GatherReason::Cancelled)]
    );
    // Monitors may not gather or generate; nothing changes.
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.request(now, mon, Command::GatherDigits(b, spec(4, "", 0, 0)))
            .1
    });
    let beep = ToneRequest {
        tone: ToneName::Beep,
        frequencies: vec![],
        duration_ms: None,
    };
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.request(now, mon, Command::GenerateTone(b, beep.clone()))
            .1
    });
    // The caller hangs up: the gathering ends, and nothing is left.
    o.clear();
    o.sim.phone("1001").hang_up();
    assert_eq!(
        gathered(&o, crm),
        [(b, String::new(), GatherReason::Cancelled)]
    );
    assert!(
        o.sim
            .switch
            .call_state(a)
            .is_none_or(|s| s == tapir_core::CallStateKind::Idle)
    );
    assert_eq!(o.sim.switch.media_ops_in_use(), (0, 0, 0));
    o.consistent();
}

#[test]
fn a_tone_goes_to_the_far_partys_leg() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, leg) = answered(&mut o);
    let req = ToneRequest {
        tone: ToneName::Busy,
        frequencies: vec![],
        duration_ms: Some(2000),
    };
    run(&mut o, crm, Command::GenerateTone(b, req));
    let plans: Vec<_> = o
        .effects()
        .iter()
        .filter_map(|e| match e {
            Effect::GenerateTone { leg, plan } => Some((*leg, plan.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(plans.len(), 1, "{:?}", o.effects());
    assert_eq!(plans[0].0, leg);
    assert_eq!(plans[0].1.frequencies, [480, 620]);
    assert_eq!((plans[0].1.on_ms, plans[0].1.off_ms), (500, 500));
}

#[test]
fn a_detected_fax_is_reported_and_handed_to_the_lines_fax_owner() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let fax = o.sim.switch.register_app(AppConfig::named("fax"));
    let rp = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(fax, rp, &[Privilege::Owner], &[MediaMode::G3Fax])
        .unwrap();
    let (_a, b, leg) = answered(&mut o);
    let cng = ToneWatch {
        frequencies: vec![1100],
        duration_ms: 400,
    };
    let watch = MonitorSpec::new(None, vec![cng.clone()], vec![MediaMode::G3Fax]).unwrap();
    run(&mut o, crm, Command::Monitor(b, watch));
    assert!(
        o.effects().contains(&Effect::Detect {
            leg,
            tones: vec![cng.clone()],
            fax: true
        }),
        "{:?}",
        o.effects()
    );
    // A monitor's digits-off monitor starts no detector.
    let quiet = MonitorSpec::new(Some(false), vec![], vec![]).unwrap();
    run(&mut o, mon, Command::Monitor(b, quiet));
    assert!(
        !o.effects()
            .iter()
            .any(|e| matches!(e, Effect::Detect { .. }))
    );
    o.clear();
    o.sim.phone("1001").report(LegEvent::Digits("1".into()));
    let heard = |o: &Office, app| {
        o.sim
            .events_for(app)
            .iter()
            .any(|e| matches!(e, EventBody::DigitsReceived { call, .. } if *call == b))
    };
    assert!(heard(&o, crm) && !heard(&o, mon));
    o.clear();
    o.sim
        .phone("1001")
        .report(LegEvent::ToneDetected(cng.clone()));
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(e,
        EventBody::ToneDetected { call, frequencies, duration_ms: 400 }
            if *call == b && frequencies == &[1100])));
    assert!(o.sim.events_for(mon).is_empty());
    o.clear();
    o.sim
        .phone("1001")
        .report(LegEvent::MediaDetected(MediaMode::G3Fax));
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(e,
        EventBody::MediaDetected { call, media_mode: MediaMode::G3Fax } if *call == b)));
    assert!(o.sim.events_for(fax).iter().any(|e| matches!(e,
        EventBody::CallNew { call, privilege: Privilege::Owner, .. } if *call == b)));
    assert_eq!(
        o.sim.switch.call_info(crm, b).unwrap().media_mode,
        MediaMode::G3Fax
    );
    // The caller hangs up: monitors and detectors go with the call.
    o.sim.phone("1001").hang_up();
    assert_eq!(o.sim.switch.media_ops_in_use(), (0, 0, 0));
    o.consistent();
}

#[test]
fn the_tones_watched_on_one_call_are_bounded() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let third = o.sim.switch.register_app(AppConfig::named("third"));
    let rp = o.sim.switch.line_of("2000").unwrap();
    o.sim
        .switch
        .open_line(third, rp, &[Privilege::Monitor], &[])
        .unwrap();
    let (_a, b, _) = answered(&mut o);
    let w = |f: u32| ToneWatch {
        frequencies: vec![f],
        duration_ms: 100,
    };
    let four =
        |base: u32| MonitorSpec::new(None, (0..4).map(|i| w(base + i)).collect(), vec![]).unwrap();
    run(&mut o, crm, Command::Monitor(b, four(500)));
    run(&mut o, mon, Command::Monitor(b, four(600)));
    o.rejected(third, ErrorCode::ResourceUnavail, |s, now| {
        s.request(now, third, Command::Monitor(b, four(700))).1
    });
    // One of the same tones is no new detector.
    run(&mut o, third, Command::Monitor(b, four(500)));
}
