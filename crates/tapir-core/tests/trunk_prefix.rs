//! Trunk prefix routing: an external number goes out on the trunk line whose
//! dialled prefix is the longest one the number starts with, the prefix
//! removed from what the carrier is asked for; numbers no prefix matches
//! use the first trunk without a prefix; a bare prefix, or a number no
//! trunk takes, is `invaladdress`. Make call, a phone's own dialling,
//! forwarding and run-time line changes all follow the same rule.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office};
use tapir_core::sim::{Behaviour, Sim};
use tapir_core::{
    AppConfig, CallId, Effect, ErrorCode, ForwardMode, ForwardRule, LineConfig, LineKind, Outbound,
    Privilege,
};

/// A trunk line with this prefix whose far network answers at once.
fn trunk(address: &str, prefix: Option<&str>) -> LineConfig {
    let mut cfg = LineConfig::trunk(address);
    cfg.prefix = prefix.map(str::to_string);
    cfg
}

/// An office with phones 1001 and 1002 (which may dial every number) and
/// these trunk lines, every line opened by `crm` (owner) and `mon`
/// (monitor).
fn carriers(trunks: &[(&str, Option<&str>)]) -> Office {
    let mut sim = Sim::new();
    for address in ["1001", "1002"] {
        let mut phone = LineConfig::phone(address);
        phone.outbound = Outbound::All;
        sim.add_line(phone, Behaviour::Ring);
    }
    for (address, prefix) in trunks {
        sim.add_line(trunk(address, *prefix), Behaviour::Answer);
    }
    let crm = sim.switch.register_app(AppConfig::named("crm"));
    let mon = sim.switch.register_app(AppConfig::named("mon"));
    let addresses = ["1001", "1002"]
        .into_iter()
        .chain(trunks.iter().map(|(a, _)| *a));
    for address in addresses {
        let line = sim.switch.line_of(address).unwrap();
        sim.switch
            .open_line(crm, line, &[Privilege::Owner], &[])
            .unwrap();
        sim.switch
            .open_line(mon, line, &[Privilege::Monitor], &[])
            .unwrap();
    }
    sim.run();
    sim.clear();
    Office { sim, crm, mon }
}

/// The national carrier (prefix `0`), the international one (`00`) and the
/// default trunk (no prefix).
fn three_trunks() -> Office {
    carriers(&[("8000", Some("0")), ("8800", Some("00")), ("9000", None)])
}

/// The trunk line and number of every leg the switch asked a carrier for
/// since the last request (legs to phones left out).
fn trunk_legs(o: &Office) -> Vec<(String, String)> {
    o.sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::CreateLeg { line, target, .. } => {
                let cfg = o.sim.switch.line_config(*line).unwrap();
                (cfg.kind == LineKind::Trunk)
                    .then(|| (cfg.addresses[0].clone(), target.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// `crm` calls `to` from 1001; the carrier answers. Returns the caller's call.
fn make_call(o: &mut Office, to: &str) -> CallId {
    let crm = o.crm;
    let to = to.to_string();
    let a = o.ok(crm, move |s, now| s.make_call(now, crm, "1001", Some(&to)));
    o.expect(a, CONNECTED);
    a
}

#[track_caller]
fn goes_out(o: &Office, trunk: &str, number: &str) {
    assert_eq!(
        trunk_legs(o),
        vec![(trunk.to_string(), number.to_string())],
        "the leg out"
    );
    assert_eq!(o.sim.calls_at(trunk).len(), 1, "one call on {trunk}");
}

#[test]
fn the_longest_matching_prefix_wins_and_is_removed() {
    let mut o = three_trunks();
    let a = make_call(&mut o, "0044 20 7946 0000");
    goes_out(&o, "8800", "442079460000");
    // The caller sees whom the carrier connected: the number without the prefix.
    let info = o.sim.switch.call_info(o.crm, a).unwrap();
    assert_eq!(info.connected.unwrap().address, "442079460000");

    let mut o = three_trunks();
    make_call(&mut o, "020 7946 0000");
    goes_out(&o, "8000", "2079460000");
}

#[test]
fn a_number_no_prefix_matches_takes_the_trunk_without_a_prefix() {
    let mut o = three_trunks();
    make_call(&mut o, "5551234");
    goes_out(&o, "9000", "5551234");
    // A canonical number is routed as its full international number.
    let mut o = three_trunks();
    make_call(&mut o, "+44 20 7946 0000");
    goes_out(&o, "9000", "+442079460000");
}

#[test]
fn without_prefixes_the_first_trunk_is_used_as_before() {
    let mut o = carriers(&[("8000", None), ("9000", None)]);
    make_call(&mut o, "0044207946");
    goes_out(&o, "8000", "0044207946");
}

#[test]
fn a_bare_prefix_is_not_a_number() {
    let mut o = three_trunks();
    let crm = o.crm;
    for bare in ["0", "00"] {
        o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
            s.make_call(now, crm, "1001", Some(bare))
        });
    }
    let err = o
        .sim
        .act(|s, now| s.make_call(now, crm, "1001", Some("00")))
        .unwrap_err();
    assert!(
        err.message.contains("00") && err.message.contains("prefix"),
        "{err}"
    );
}

#[test]
fn a_number_no_trunk_takes_is_invaladdress_naming_it() {
    let mut o = carriers(&[("8000", Some("0")), ("8800", Some("00"))]);
    let crm = o.crm;
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1001", Some("5551234"))
    });
    let err = o
        .sim
        .act(|s, now| s.make_call(now, crm, "1001", Some("5551234")))
        .unwrap_err();
    assert!(err.message.contains("5551234"), "{err}");
    // A prefixed number still goes out.
    make_call(&mut o, "0201234");
    goes_out(&o, "8000", "201234");

    let mut o = carriers(&[]);
    let crm = o.crm;
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1001", Some("0201234"))
    });
}

#[test]
fn an_address_of_the_switch_beats_a_prefix() {
    let mut o = carriers(&[("8000", Some("1")), ("9000", None)]);
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    assert_eq!(trunk_legs(&o), vec![]);
    assert_eq!(o.far_call(a), o.only_call_at("1002"));
}

#[test]
fn a_phone_dialling_by_itself_follows_the_prefix() {
    let mut o = three_trunks();
    o.sim.clear();
    let leg = o.sim.phone("1002").dial("0201234");
    let a = o.sim.switch.call_of_leg(leg).unwrap();
    o.expect(a, CONNECTED);
    goes_out(&o, "8000", "201234");
}

#[test]
fn forwarding_to_an_external_number_uses_the_same_rule() {
    let mut o = three_trunks();
    o.sim
        .switch
        .set_forwarding(
            "1002",
            vec![ForwardRule {
                mode: ForwardMode::Unconditional,
                to: Some("00331234".into()),
                caller: None,
            }],
            4,
        )
        .unwrap();
    let crm = o.crm;
    let a = o.ok(crm, |s, now| s.make_call(now, crm, "1001", Some("1002")));
    o.expect(a, CONNECTED);
    goes_out(&o, "8800", "331234");
    assert!(o.sim.calls_at("1002").is_empty(), "1002 never rang");
}

#[test]
fn prefixes_change_at_run_time() {
    let mut o = three_trunks();
    let national = o.sim.switch.line_of("8000").unwrap();
    let mut cfg = o.sim.switch.line_config(national).unwrap();
    assert_eq!(cfg.prefix.as_deref(), Some("0"));
    cfg.prefix = Some("7".into());
    o.sim.switch.update_line(national, cfg).unwrap();
    assert_eq!(
        o.sim
            .switch
            .line_config(national)
            .unwrap()
            .prefix
            .as_deref(),
        Some("7")
    );
    // `0…` no longer selects 8000 (and `00` does not match `02…`).
    make_call(&mut o, "0201234");
    goes_out(&o, "9000", "0201234");

    let mut o = three_trunks();
    let national = o.sim.switch.line_of("8000").unwrap();
    let mut cfg = o.sim.switch.line_config(national).unwrap();
    cfg.prefix = Some("7".into());
    o.sim.switch.update_line(national, cfg).unwrap();
    make_call(&mut o, "7201234");
    goes_out(&o, "8000", "201234");

    // The international trunk removed: `00…` falls back to the trunk
    // without a prefix, whole.
    let mut o = three_trunks();
    let international = o.sim.switch.line_of("8800").unwrap();
    let removed = o.sim.switch.remove_line(international).unwrap();
    assert_eq!(removed.prefix.as_deref(), Some("00"));
    make_call(&mut o, "00331234");
    goes_out(&o, "8000", "0331234");

    // A prefix added to a trunk that had none: it is no longer the default.
    let mut o = three_trunks();
    let default = o.sim.switch.line_of("9000").unwrap();
    let mut cfg = o.sim.switch.line_config(default).unwrap();
    cfg.prefix = Some("9".into());
    o.sim.switch.update_line(default, cfg).unwrap();
    let crm = o.crm;
    o.rejected(crm, ErrorCode::InvalAddress, |s, now| {
        s.make_call(now, crm, "1001", Some("5551234"))
    });
    make_call(&mut o, "95551234");
    goes_out(&o, "9000", "5551234");
}

#[test]
fn a_prefix_is_checked_when_a_line_is_added_or_changed() {
    let mut o = three_trunks();
    let mut phone = LineConfig::phone("1003");
    phone.prefix = Some("5".into());
    let err = o.sim.switch.add_line(phone).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalParam, "{err}");
    for bad in ["", "9 ", "+", "9x", "1+"] {
        let err = o.sim.switch.add_line(trunk("8100", Some(bad))).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalParam, "{bad:?}: {err}");
    }
    assert!(o.sim.switch.line_of("8100").is_none());
    let national = o.sim.switch.line_of("8000").unwrap();
    let mut cfg = o.sim.switch.line_config(national).unwrap();
    cfg.prefix = Some("0 1".into());
    let err = o.sim.switch.update_line(national, cfg).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalParam, "{err}");
    assert_eq!(
        o.sim
            .switch
            .line_config(national)
            .unwrap()
            .prefix
            .as_deref(),
        Some("0"),
        "a refused change leaves the prefix"
    );
    // A trunk line may become a phone only without its prefix.
    let mut cfg = o.sim.switch.line_config(national).unwrap();
    cfg.kind = LineKind::Phone;
    let err = o.sim.switch.update_line(national, cfg).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalParam, "{err}");
}
