//! Destinations in TAPI's canonical form go through the translation crate:
//! valid ones are dialled as their international number, malformed ones are
//! refused with `invaladdress` and the parser's sentence.

#![allow(clippy::unwrap_used)]

use tapir_core::sim::Sim;
use tapir_core::*;

fn world() -> (Sim, AppId) {
    let mut sim = Sim::new();
    sim.add_route_point("2001");
    sim.add_trunk("9000");
    let app = sim.switch.register_app(AppConfig::named("crm"));
    for a in ["2001", "9000"] {
        let line = sim.switch.line_of(a).unwrap();
        sim.switch
            .open_line(app, line, &[Privilege::Owner, Privilege::Monitor], &[])
            .unwrap();
    }
    (sim, app)
}

#[test]
fn canonical_destination_is_dialled_as_its_international_number() {
    let (mut sim, app) = world();
    let call = sim
        .make_call(app, "2001", Some("+1 (425) 882-8080"))
        .unwrap();
    assert_eq!(sim.state(call), Some(CallStateKind::Connected));
    let trunk_call = sim.calls_at("9000")[0];
    let info = sim.switch.call_info(app, trunk_call).unwrap();
    assert_eq!(info.called.address, "+14258828080");
    let created = sim
        .effects
        .iter()
        .any(|e| matches!(e, Effect::CreateLeg { target, .. } if &**target == "+14258828080"));
    assert!(created, "the trunk leg dials the international number");
}

#[test]
fn malformed_canonical_destination_is_refused_and_changes_nothing() {
    let (mut sim, app) = world();
    let before = sim.switch.model_snapshot();
    let err = sim
        .make_call(app, "2001", Some("+1 (425 882-8080"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalAddress);
    assert!(err.message.contains("area code"), "{}", err.message);
    assert_eq!(before, sim.switch.model_snapshot());
}
