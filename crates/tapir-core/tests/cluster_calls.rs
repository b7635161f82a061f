//! Calls between nodes of a cluster (ADR 0002), as one node's switch sees
//! them: an address another node serves is reached by a leg to that node
//! (`Effect::CreateLeg` with `via_node`), and that node's rules decide
//! (forwarding, busy, ring time), never this node's copy of them; a call
//! another node offers (`Input::NodeCall`) is routed here like a phone's
//! own call, forwarding hops included.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use support::{CONNECTED, Office, office};
use tapir_core::sim::Behaviour;
use tapir_core::{CallState, Effect, ForwardMode, ForwardRule, Input, NodeLeg, ReleaseCause};

/// The office, with this node serving every address but `elsewhere`.
fn node_without(elsewhere: &[&str]) -> Office {
    let mut o = office();
    let served: HashSet<Arc<str>> = ["1001", "1002", "1003", "1004", "1005", "2000", "9000"]
        .into_iter()
        .filter(|a| !elsewhere.contains(a))
        .map(Arc::from)
        .collect();
    o.sim.switch.set_served(Some(served));
    o
}

fn forward(o: &mut Office, address: &str, mode: ForwardMode, to: &str) {
    let crm = o.crm;
    let rule = ForwardRule {
        mode,
        to: Some(to.into()),
        caller: None,
    };
    o.ok(crm, |s, now| {
        s.forward(now, crm, address, vec![rule], Some(2))
    });
}

/// Another node offers a call from `from` (a carrier's `external` caller
/// on a trunk line) to `to`, forwarded `hops` times: the new leg.
fn node_call(
    o: &mut Office,
    from: &str,
    external: Option<&str>,
    to: &str,
    hops: u8,
) -> tapir_core::LegId {
    let leg = o.sim.switch.allocate_leg();
    o.sim.input(Input::NodeCall {
        leg,
        from: from.into(),
        external_caller: external.map(str::to_owned),
        to: to.into(),
        forward_hops: hops,
    });
    leg
}

/// The legs the switch opened since the last clear: (target, via_node).
fn legs(o: &Office) -> Vec<(String, Option<NodeLeg>)> {
    o.sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::CreateLeg {
                target, via_node, ..
            } => Some((target.to_string(), via_node.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_to_an_address_served_elsewhere_goes_to_its_node_and_ignores_local_rules() {
    let mut o = node_without(&["1002"]);
    // This node's copy of 1002's forwarding is not what decides: 1002's node does.
    forward(&mut o, "1002", ForwardMode::Unconditional, "1003");
    forward(&mut o, "1002", ForwardMode::NoAnswer, "1003");
    o.sim.clear();
    o.sim.phone("1001").dial("1002");
    assert_eq!(
        legs(&o),
        vec![(
            "1002".to_string(),
            Some(NodeLeg {
                from: Arc::from("1001"),
                forward_hops: 0
            })
        )]
    );
    let a = o.sim.calls_at("1001")[0];
    o.expect(a, CallState::Ringback);
    // No ring time here: the serving node's no-answer forwarding needs its time.
    o.sim.advance(10 * 60 * 1000);
    o.expect(a, CallState::Ringback);
    assert!(o.sim.calls_at("1003").is_empty(), "nothing forwarded here");
    o.sim.phone("1002").answer();
    o.expect(a, CONNECTED);
}

#[test]
fn the_serving_nodes_busy_is_final_here() {
    let mut o = node_without(&["1002"]);
    forward(&mut o, "1002", ForwardMode::Busy, "1003");
    o.sim.set_behaviour("1002", Behaviour::Busy);
    o.sim.clear();
    o.sim.phone("1001").dial("1002");
    let a = o.sim.calls_at("1001")[0];
    o.expect(a, CallState::Busy(tapir_core::BusyMode::Station));
    assert!(
        o.sim.calls_at("1003").is_empty(),
        "busy forwarding is the other node's"
    );
}

#[test]
fn a_busy_line_here_refuses_another_nodes_call_so_that_its_node_gives_busy() {
    let mut o = node_without(&["1002"]);
    o.sim.set_behaviour("1001", Behaviour::Busy);
    o.sim.clear();
    let leg = node_call(&mut o, "1002", None, "1001", 0);
    // No busy tone kept here: the caller's node keeps its call busy.
    assert!(o.sim.effects.iter().any(|e| matches!(
        e,
        Effect::ReleaseLeg { leg: l, cause: ReleaseCause::Busy } if *l == leg
    )));
    assert!(
        o.sim
            .calls_at("1002")
            .iter()
            .all(|c| o.state(*c) == CallState::Idle)
    );
}

#[test]
fn a_local_address_keeps_its_rules() {
    let mut o = node_without(&["1003"]);
    forward(&mut o, "1002", ForwardMode::Unconditional, "1004");
    o.sim.clear();
    o.sim.phone("1001").dial("1002");
    // 1002 is served here: its forwarding applies, and 1004 rings here too.
    assert_eq!(legs(&o), vec![("1004".to_string(), None)]);
}

#[test]
fn a_call_from_another_node_rings_here_by_local_rules() {
    let mut o = node_without(&["1002"]);
    forward(&mut o, "1001", ForwardMode::Unconditional, "1003");
    o.sim.clear();
    node_call(&mut o, "1002", None, "1001", 1);
    // Forwarded by 1001's rule on this node; the forward counts a hop.
    assert_eq!(legs(&o), vec![("1003".to_string(), None)]);
    let caller = o.sim.calls_at("1002")[0];
    o.sim.phone("1003").answer();
    o.expect(caller, CONNECTED);
    let b = o.sim.calls_at("1003")[0];
    let info = o.sim.switch.call_info(o.crm, b).unwrap();
    assert_eq!(info.caller.address, "1002");
}

#[test]
fn a_call_from_another_node_is_not_refused_for_its_callers_calls_here() {
    let mut o = node_without(&["1002"]);
    // 1002 (one call appearance) already has a call here with 1001.
    o.sim.phone("1001").dial("1002");
    o.sim.phone("1002").answer();
    o.sim.clear();
    node_call(&mut o, "1002", None, "1003", 0);
    assert_eq!(legs(&o), vec![("1003".to_string(), None)]);
}

#[test]
fn forwarding_that_loops_between_nodes_ends_at_the_hop_limit() {
    let mut o = node_without(&["1002"]);
    o.sim.clear();
    let leg = node_call(&mut o, "1002", None, "1001", 200);
    assert!(legs(&o).is_empty(), "nothing rings: {:?}", legs(&o));
    assert!(o.sim.effects.iter().any(|e| matches!(
        e,
        Effect::ReleaseLeg { leg: l, cause: ReleaseCause::Unavailable } if *l == leg
    )));
}

#[test]
fn a_carriers_call_from_another_node_shows_the_external_caller() {
    let mut o = node_without(&["9000"]);
    o.sim.clear();
    node_call(&mut o, "9000", Some("+4930555"), "1001", 0);
    let b = o.sim.calls_at("1001")[0];
    let info = o.sim.switch.call_info(o.crm, b).unwrap();
    assert_eq!(info.caller.address, "+4930555");
    assert_eq!(info.origin, tapir_core::CallOrigin::External);
}

#[test]
fn a_refusal_from_the_serving_node_disconnects_the_caller() {
    let mut o = node_without(&["1002"]);
    forward(&mut o, "1002", ForwardMode::NoAnswer, "1003");
    o.sim.set_behaviour("1002", Behaviour::Unreachable);
    o.sim.clear();
    let leg = o.sim.phone("1001").dial("1002");
    assert!(o.sim.effects.iter().any(|e| matches!(
        e,
        Effect::ReleaseLeg { leg: l, cause: ReleaseCause::Unavailable } if *l == leg
    )));
    assert_eq!(
        legs(&o).len(),
        1,
        "no forwarding to 1003 here: {:?}",
        legs(&o)
    );
}

#[test]
fn when_the_other_node_dies_this_nodes_half_of_each_call_with_it_ends_node_lost() {
    let mut o = node_without(&["1002"]);
    // 1001 (here) talks to 1002 (elsewhere); 1003 (here) is called from 1002.
    o.sim.phone("1001").dial("1002");
    o.sim.phone("1002").answer();
    let a = o.sim.calls_at("1001")[0];
    o.expect(a, CONNECTED);
    node_call(&mut o, "1002", None, "1003", 0);
    o.sim.phone("1003").answer();
    let c = o.sim.calls_at("1003")[0];
    o.expect(c, CONNECTED);
    // A call between two addresses served here is not touched.
    o.sim.phone("1004").dial("1005");
    o.sim.phone("1005").answer();
    let d = o.sim.calls_at("1004")[0];
    o.sim.clear();
    let lost: HashSet<Arc<str>> = [Arc::from("1002")].into();
    let ended = o.sim.act(|s, now| s.node_lost(now, &lost));
    o.sim.run();
    assert_eq!(ended, 2);
    let node_lost = o
        .sim
        .effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::ReleaseLeg {
                    cause: ReleaseCause::NodeLost,
                    ..
                }
            )
        })
        .count();
    assert_eq!(node_lost, 2, "{:?}", o.sim.effects);
    for call in [a, c] {
        assert!(o.state(call).is_idle() || matches!(o.state(call), CallState::Disconnected(_)));
    }
    o.expect(d, CONNECTED);
    // Nothing left to end.
    assert_eq!(o.sim.act(|s, now| s.node_lost(now, &lost)), 0);
}
