//! Outbound dialling is a line permission (`[[lines]] outbound`): `none`
//! dials nothing, `internal` only addresses of the switch and park slots,
//! `national` (the default) also numbers within the location's country,
//! `all` every number. It holds on every way a line sends a call
//! somewhere: make call, its own phone dialling, lineDial, forwarding (when
//! set, and when a forward fires), redirect, blind and consultation
//! transfer and a phone's REFER. An app's request is refused with
//! `addressblocked` and changes nothing; a phone's own INVITE is released
//! with `Forbidden` (403). A carrier's call is never routed back out of a
//! trunk unless the trunk allows hairpins.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office, office};
use tapir_core::{
    CallId, CallState, DisconnectMode, Effect, ErrorCode, ForwardMode, ForwardRule, LegEvent,
    LegId, LineKind, Outbound, ParkMode, ReleaseCause,
};

/// A national number (the office's location is country 1, area 425).
const NATIONAL: &str = "4255550100";
/// An international number as the US dials it.
const INTERNATIONAL: &str = "011442079460000";
/// The same in E.164.
const CANONICAL: &str = "+44 20 7946 0000";

/// The office with `address`'s line set to `outbound`.
fn office_with(address: &str, outbound: Outbound) -> Office {
    let mut o = office();
    o.allow_outbound(address, outbound);
    o
}

/// The numbers the switch asked a trunk for since the last request.
fn trunk_legs(o: &Office) -> Vec<String> {
    o.sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::CreateLeg { line, target, .. } => {
                let cfg = o.sim.switch.line_config(*line).unwrap();
                (cfg.kind == LineKind::Trunk).then(|| target.to_string())
            }
            _ => None,
        })
        .collect()
}

/// Whether the switch released `leg` with `Forbidden` (a 403 to the phone).
fn forbidden(o: &Office, leg: LegId) -> bool {
    o.sim.effects.iter().any(
        |e| matches!(e, Effect::ReleaseLeg { leg: l, cause: ReleaseCause::Forbidden } if *l == leg),
    )
}

#[track_caller]
fn make_call_refused(o: &mut Office, from: &str, to: &str) {
    let crm = o.crm;
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.make_call(now, crm, from, Some(to))
    });
}

#[track_caller]
fn make_call_goes_out(o: &mut Office, from: &str, to: &str) -> CallId {
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, from, Some(to)));
    o.expect(a, CONNECTED);
    assert_eq!(trunk_legs(o).len(), 1, "one leg to the trunk for {to}");
    a
}

#[test]
fn phones_dial_national_numbers_but_not_international_ones_by_default() {
    let mut o = office();
    let cfg = o
        .sim
        .switch
        .line_config(o.sim.switch.line_of("1001").unwrap())
        .unwrap();
    assert_eq!(cfg.outbound, Outbound::National);
    make_call_goes_out(&mut o, "1001", NATIONAL);
    let mut o = office();
    make_call_goes_out(&mut o, "1001", "+1 (206) 555-0100");
    for to in [INTERNATIONAL, CANONICAL, "+442079460000"] {
        let mut o = office();
        make_call_refused(&mut o, "1001", to);
    }
    // The message says why.
    let mut o = office();
    let crm = o.crm;
    let err = o
        .sim
        .act(|s, now| s.make_call(now, crm, "1001", Some(INTERNATIONAL)))
        .unwrap_err();
    assert!(err.message.contains("national"), "{err}");
}

#[test]
fn each_class_on_make_call() {
    let mut o = office_with("1001", Outbound::None);
    make_call_refused(&mut o, "1001", "1002");
    make_call_refused(&mut o, "1001", NATIONAL);

    let mut o = office_with("1001", Outbound::Internal);
    make_call_refused(&mut o, "1001", NATIONAL);
    make_call_refused(&mut o, "1001", INTERNATIONAL);
    let crm = o.crm;
    o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    assert!(trunk_legs(&o).is_empty());

    let mut o = office_with("1001", Outbound::All);
    make_call_goes_out(&mut o, "1001", INTERNATIONAL);
    let mut o = office_with("1001", Outbound::All);
    make_call_goes_out(&mut o, "1001", CANONICAL);

    // A route point's calls follow its own class.
    let mut o = office_with("2000", Outbound::Internal);
    make_call_refused(&mut o, "2000", NATIONAL);
}

#[test]
fn a_phone_dialling_by_itself_gets_forbidden() {
    let mut o = office_with("1001", Outbound::Internal);
    o.sim.clear();
    let leg = o.sim.phone("1001").dial(NATIONAL);
    assert!(forbidden(&o, leg), "{:?}", o.sim.effects);
    assert!(trunk_legs(&o).is_empty());

    let mut o = office();
    o.sim.clear();
    let leg = o.sim.phone("1001").dial(INTERNATIONAL);
    assert!(forbidden(&o, leg), "{:?}", o.sim.effects);
    assert!(trunk_legs(&o).is_empty());

    // Allowed numbers still go out.
    let mut o = office();
    o.sim.clear();
    let leg = o.sim.phone("1001").dial(NATIONAL);
    let a = o.sim.switch.call_of_leg(leg).unwrap();
    o.expect(a, CONNECTED);
    assert_eq!(trunk_legs(&o), [NATIONAL]);
}

#[test]
fn line_dial_from_dial_tone_is_checked() {
    let mut o = office_with("2000", Outbound::Internal);
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "2000", None));
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.dial(now, crm, a, NATIONAL)
    });
    o.ok(crm, |s, now| s.dial(now, crm, a, "1002"));
}

fn forward_to(to: &str) -> Vec<ForwardRule> {
    vec![ForwardRule {
        mode: ForwardMode::Unconditional,
        to: Some(to.into()),
        caller: None,
    }]
}

#[test]
fn forwarding_is_checked_when_set_and_when_it_fires() {
    let mut o = office_with("1002", Outbound::Internal);
    let crm = o.crm;
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.forward(now, crm, "1002", forward_to(NATIONAL), None)
    });
    o.ok(crm, |s, now| {
        s.forward(now, crm, "1002", forward_to("1003"), None)
    });

    let mut o = office();
    let crm = o.crm;
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.forward(now, crm, "1002", forward_to(INTERNATIONAL), None)
    });

    // A forward set before the line lost the right (the operator's, or
    // stored) is refused when it fires: the caller is told `blocked`.
    let mut o = office_with("1002", Outbound::Internal);
    o.sim
        .switch
        .set_forwarding("1002", forward_to(NATIONAL), 4)
        .unwrap();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    assert!(trunk_legs(&o).is_empty(), "{:?}", o.sim.effects);
    assert!(o.sim.calls_at("1002").is_empty(), "1002 did not ring");
    assert!(
        o.states_seen(crm, a)
            .contains(&CallState::Disconnected(DisconnectMode::Blocked)),
        "{:?}",
        o.states_seen(crm, a)
    );

    // The forwarding line's class counts, not the caller's: 1001 may dial
    // everything, 1002 forwards within the country only.
    let mut o = office_with("1001", Outbound::All);
    o.sim
        .switch
        .set_forwarding("1002", forward_to(INTERNATIONAL), 4)
        .unwrap();
    let crm = o.crm;
    o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    assert!(trunk_legs(&o).is_empty(), "{:?}", o.sim.effects);
}

#[test]
fn redirect_is_checked_against_the_redirecting_line() {
    let mut o = office_with("1003", Outbound::Internal);
    let crm = o.crm;
    let (_, b) = o.ring("1001", "1003");
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.redirect(now, crm, b, NATIONAL)
    });
    o.ok(crm, |s, now| s.redirect(now, crm, b, "1004"));
}

#[test]
fn blind_and_consultation_transfers_are_checked() {
    let mut o = office_with("1002", Outbound::Internal);
    let crm = o.crm;
    let (_, b) = o.talk("1001", "1002");
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.blind_transfer(now, crm, b, NATIONAL)
    });
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.dial(now, crm, x, NATIONAL)
    });
    assert!(trunk_legs(&o).is_empty());

    // National is not international.
    let mut o = office();
    let crm = o.crm;
    let (_, b) = o.talk("1001", "1002");
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.blind_transfer(now, crm, b, CANONICAL)
    });
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, NATIONAL));
    assert_eq!(trunk_legs(&o), [NATIONAL]);
}

#[test]
fn a_phones_refer_is_checked() {
    let mut o = office_with("1002", Outbound::Internal);
    let (_, b) = o.talk("1001", "1002");
    let leg = *o.sim.phone("1002").leg_ids().last().unwrap();
    o.sim.clear();
    let now = o.now();
    let err = o
        .sim
        .switch
        .refer(now, leg, LegEvent::Refer(NATIONAL.into()))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AddressBlocked, "{err}");
    o.sim.run();
    assert!(trunk_legs(&o).is_empty());
    o.expect(b, CONNECTED);
    // An address of the switch is fine.
    let now = o.now();
    o.sim
        .switch
        .refer(now, leg, LegEvent::Refer("1003".into()))
        .unwrap();
}

#[test]
fn a_carriers_call_is_not_sent_back_out_unless_the_trunk_allows_hairpins() {
    let mut o = office();
    o.sim.clear();
    let leg = o.sim.switch.allocate_leg();
    o.sim.input(tapir_core::Input::DeviceCall {
        leg,
        from: "9000".into(),
        external_caller: Some("+4930555123".into()),
        to: NATIONAL.into(),
    });
    assert!(forbidden(&o, leg), "{:?}", o.sim.effects);
    assert!(trunk_legs(&o).is_empty());
    // Calls from the carrier to the switch's own addresses ring as before.
    let (_, b) = o.ring_from_outside("+4930555123", "1002");
    assert_eq!(o.sim.calls_at("1002"), [b]);

    // The trunk allows hairpins: out again, whatever the class.
    let mut o = office();
    let trunk = o.sim.switch.line_of("9000").unwrap();
    let mut cfg = o.sim.switch.line_config(trunk).unwrap();
    cfg.allow_hairpin = true;
    o.sim.switch.update_line(trunk, cfg).unwrap();
    o.sim.clear();
    let leg = o.sim.switch.allocate_leg();
    o.sim.input(tapir_core::Input::DeviceCall {
        leg,
        from: "9000".into(),
        external_caller: Some("+4930555123".into()),
        to: INTERNATIONAL.into(),
    });
    assert!(!forbidden(&o, leg));
    assert_eq!(trunk_legs(&o), [INTERNATIONAL]);
}

#[test]
fn a_phone_that_transfers_a_carriers_call_out_uses_its_own_class() {
    // The phone is the one dialling: its class decides, not the trunk's
    // hairpin setting.
    let mut o = office();
    let crm = o.crm;
    let (_, b) = o.ring_from_outside("+4930555123", "1002");
    o.sim.phone("1002").answer();
    o.expect(b, CONNECTED);
    o.rejected(crm, ErrorCode::AddressBlocked, |s, now| {
        s.blind_transfer(now, crm, b, INTERNATIONAL)
    });
    o.ok(crm, |s, now| s.blind_transfer(now, crm, b, NATIONAL));
    assert_eq!(trunk_legs(&o), [NATIONAL]);
}

#[test]
fn the_location_decides_what_is_international() {
    let mut o = office();
    o.sim
        .switch
        .set_location(tapir_translate::Location::new("london", 44, "20"));
    make_call_refused(&mut o, "1001", "0033123456789");
    make_call_refused(&mut o, "1001", "+1 (425) 555-0100");
    // `011` is no international prefix in the UK.
    make_call_goes_out(&mut o, "1001", "01132960000");
}

#[test]
fn allow_hairpin_belongs_to_trunk_lines() {
    let mut o = office();
    let phone = o.sim.switch.line_of("1001").unwrap();
    let mut cfg = o.sim.switch.line_config(phone).unwrap();
    cfg.allow_hairpin = true;
    let err = o.sim.switch.update_line(phone, cfg).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalParam, "{err}");
}

#[test]
fn a_park_reminder_rings_back_whatever_the_parked_partys_class() {
    // 1001 may dial nothing; 1002 parks its call, and the reminder rings
    // 1002 back: 1002 is the one calling.
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    o.allow_outbound("1001", Outbound::None);
    o.ok(crm, |s, now| s.park(now, crm, b, ParkMode::NonDirected));
    o.sim.advance(120_000);
    let r = o.only_call_at("1002");
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
    o.expect(r, CONNECTED);
}

#[test]
fn emergency_numbers_go_out_from_every_phone_and_route_point() {
    for class in [Outbound::None, Outbound::Internal, Outbound::National] {
        let mut o = office_with("1001", class);
        make_call_goes_out(&mut o, "1001", "911");
        let mut o = office_with("2000", class);
        make_call_goes_out(&mut o, "2000", "112");
    }
    // The location's country names them: 999 in the UK, not in the US.
    let mut o = office_with("1001", Outbound::Internal);
    make_call_refused(&mut o, "1001", "999");
    o.sim
        .switch
        .set_location(tapir_translate::Location::new("london", 44, "20"));
    make_call_goes_out(&mut o, "1001", "999");
}

#[test]
fn caribbean_numbers_are_international_from_north_america() {
    // Jamaica and the Dominican Republic share country code 1 but are
    // billed as international: the classic toll-fraud destinations.
    for to in ["18765550100", "8095550100", "+1 (876) 555-0100"] {
        let mut o = office();
        make_call_refused(&mut o, "1001", to);
    }
    let mut o = office_with("1001", Outbound::All);
    make_call_goes_out(&mut o, "1001", "18765550100");
    // Canada stays national.
    let mut o = office();
    make_call_goes_out(&mut o, "1001", "14165550100");
}
