//! Conference operations: setup, prepare-add, add, remove (down to the
//! collapse into a two-party call), related calls, and what hold, swap hold,
//! unhold and drop do to a conference. Success paths with every state and
//! event, and each precondition error with the switch unchanged.

#![allow(clippy::unwrap_used)]

use tapir_core::TypedOps;
mod support;

use support::{CONNECTED, Office, office, office_with};
use tapir_core::{
    AppConfig, CallId, CallReason, CallState, DialtoneMode, DisconnectMode, ErrorCode, EventBody,
    Privilege, Reply, SwitchConfig,
};

const DIALTONE: CallState = CallState::Dialtone(DialtoneMode::Internal);
const GONE: CallState = CallState::Disconnected(DisconnectMode::Normal);

/// 1001 talks to 1002; 1002 sets up a conference. Returns (a, b, conf, x).
fn setting_up(o: &mut Office) -> (CallId, CallId, CallId, CallId) {
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let (conf, x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    o.clear();
    (a, b, conf, x)
}

/// A conference at 1002 with 1001 and 1003. Returns (a, b, conf, x, c):
/// b and x are the members standing for a (1001) and c (1003).
fn three_way(o: &mut Office) -> (CallId, CallId, CallId, CallId, CallId) {
    let crm = o.crm;
    let (a, b, conf, x) = setting_up(o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    o.clear();
    (a, b, conf, x, c)
}

#[test]
fn setup_conference_returns_the_conference_and_a_consultation_call() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.talk("1001", "1002");
    let (conf, x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, Some(3)));
    assert_eq!(
        o.replies(crm),
        vec![Ok(Reply::Conference {
            conference_call: conf,
            consult_call: x
        })]
    );
    for app in [crm, mon] {
        let privilege = if app == crm {
            Privilege::Owner
        } else {
            Privilege::Monitor
        };
        o.announced(app, conf, privilege, CallReason::Direct);
        o.announced(app, x, privilege, CallReason::Direct);
        o.told(app, conf, CallState::OnHoldPendConf);
        o.told(app, b, CallState::Conferenced);
        o.told(app, x, DIALTONE);
    }
    // b's conferenced state names its conference.
    assert!(o.sim.events_for(crm).iter().any(|e| matches!(
        e,
        EventBody::CallState { call, conference: Some(cc), .. } if *call == b && *cc == conf
    )));
    o.expect(a, CONNECTED);
    let info = o.sim.switch.call_info(crm, conf).unwrap();
    assert_eq!(info.origin, tapir_core::CallOrigin::Conference);
    assert_eq!(info.related_calls, vec![x, b]);
    assert_eq!(
        o.sim.switch.call_info(crm, x).unwrap().related_calls,
        vec![conf]
    );
    o.consistent();
}

#[test]
fn add_to_conference_joins_the_consulted_party() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.sim.phone("1003").answer();
    o.expect(x, CONNECTED);
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    for app in [crm, mon] {
        o.told(app, x, CallState::Conferenced);
        o.told(app, conf, CONNECTED);
    }
    o.expect(b, CallState::Conferenced);
    o.expect(a, CONNECTED);
    o.expect(c, CONNECTED);
    let mut expected = vec![a, b, conf, x, c];
    expected.sort();
    assert_eq!(o.bridge(conf), expected);
    let related = o.ok(crm, |s, now| s.conf_related_calls(now, crm, conf));
    assert_eq!(related, vec![conf, b, x]);
    assert_eq!(
        o.replies(crm),
        vec![Ok(Reply::Related {
            calls: vec![conf, b, x]
        })]
    );
    o.consistent();
}

#[test]
fn add_to_conference_while_the_party_still_rings() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.expect(x, CallState::Ringback);
    let c = o.only_call_at("1003");
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    o.expect(x, CallState::Conferenced);
    o.expect(conf, CONNECTED);
    o.expect(b, CallState::Conferenced);
    o.sim.phone("1003").answer();
    o.expect(c, CONNECTED);
    assert!(o.bridge(conf).contains(&c));
    o.consistent();
}

#[test]
fn prepare_add_to_conference_adds_a_fourth_party() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x, c) = three_way(&mut o);
    let y = o.ok(crm, |s, now| s.prepare_add_to_conference(now, crm, conf));
    assert_eq!(o.replies(crm), vec![Ok(Reply::Consult { consult_call: y })]);
    o.told(crm, conf, CallState::OnHoldPendConf);
    o.told(mon, conf, CallState::OnHoldPendConf);
    o.told(crm, y, DIALTONE);
    o.announced(crm, y, Privilege::Owner, CallReason::Direct);
    o.announced(mon, y, Privilege::Monitor, CallReason::Direct);
    // The other parties keep talking meanwhile.
    for call in [a, c] {
        o.expect(call, CONNECTED);
    }
    for call in [b, x] {
        o.expect(call, CallState::Conferenced);
    }
    o.ok(crm, |s, now| s.dial(now, crm, y, "1004"));
    let d = o.only_call_at("1004");
    o.sim.phone("1004").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, y));
    o.told(crm, y, CallState::Conferenced);
    o.told(crm, conf, CONNECTED);
    o.expect(d, CONNECTED);
    let related = o.ok(crm, |s, now| s.conf_related_calls(now, crm, x));
    assert_eq!(related, vec![conf, b, x, y]);
    o.consistent();
}

#[test]
fn remove_from_conference_then_collapse_to_two_parties() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x, c) = three_way(&mut o);
    let y = o.ok(crm, |s, now| s.prepare_add_to_conference(now, crm, conf));
    o.ok(crm, |s, now| s.dial(now, crm, y, "1004"));
    let d = o.only_call_at("1004");
    o.sim.phone("1004").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, y));

    // Remove 1004's member: it goes idle, 1004 is disconnected.
    o.ok(crm, |s, now| s.remove_from_conference(now, crm, y));
    o.told(crm, y, CallState::Idle);
    o.told(mon, y, CallState::Idle);
    assert_eq!(o.states_seen(crm, d), vec![GONE, CallState::Idle]);
    o.expect(conf, CONNECTED);
    assert_eq!(
        o.ok(crm, |s, now| s.conf_related_calls(now, crm, conf)),
        vec![conf, b, x]
    );

    // Remove 1003's member: one member is left, the conference collapses.
    o.ok(crm, |s, now| s.remove_from_conference(now, crm, x));
    o.told(crm, x, CallState::Idle);
    assert_eq!(o.states_seen(crm, c), vec![GONE, CallState::Idle]);
    o.told(crm, conf, CallState::Idle);
    o.told(mon, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.told(mon, b, CONNECTED);
    o.expect(a, CONNECTED);
    assert_eq!(o.bridge(b), {
        let mut v = vec![a, b];
        v.sort();
        v
    });
    // b is a plain call again: it can be held and transferred.
    o.rejected(crm, ErrorCode::NoConference, |s, now| {
        s.conf_related_calls(now, crm, b)
    });
    o.ok(crm, |s, now| s.hold(now, crm, b));
    o.expect(b, CallState::OnHold);
    // The phone's leg came back to b.
    assert!(o.sim.switch.leg_of(b).is_some());
    o.consistent();
}

#[test]
fn drop_the_conference_call_ends_every_member() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x, c) = three_way(&mut o);
    o.ok(crm, |s, now| s.drop_call(now, crm, conf));
    for call in [conf, b, x] {
        o.told(crm, call, CallState::Idle);
        o.told(mon, call, CallState::Idle);
    }
    for call in [a, c] {
        assert_eq!(o.states_seen(crm, call), vec![GONE, CallState::Idle]);
    }
    o.consistent();
    assert_eq!(o.sim.switch.resources_in_use().0, 0, "no bridge left");
}

#[test]
fn drop_the_consultation_call_of_a_new_conference_gives_the_call_back() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.drop_call(now, crm, x));
    o.told(crm, x, CallState::Idle);
    o.told(crm, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(a, CONNECTED);
    let mut two = vec![a, b];
    two.sort();
    assert_eq!(o.bridge(b), two);
    assert!(o.sim.switch.leg_of(b).is_some());
    o.consistent();
}

#[test]
fn unhold_a_conference_pending_its_first_addition_returns_to_two_parties() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.ok(crm, |s, now| s.unhold(now, crm, conf));
    o.told(crm, x, CallState::Idle);
    o.told(crm, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(a, CONNECTED);
    // 1003 stopped ringing.
    assert_eq!(
        o.states_seen(crm, c).last(),
        Some(&CallState::Idle),
        "{:?}",
        o.states_seen(crm, c)
    );
    o.consistent();
}

#[test]
fn unhold_during_prepare_add_abandons_only_the_addition() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b, conf, x, _c) = three_way(&mut o);
    let y = o.ok(crm, |s, now| s.prepare_add_to_conference(now, crm, conf));
    o.ok(crm, |s, now| s.unhold(now, crm, conf));
    o.told(crm, y, CallState::Idle);
    o.told(crm, conf, CONNECTED);
    o.expect(b, CallState::Conferenced);
    o.expect(x, CallState::Conferenced);
    o.consistent();
}

#[test]
fn hold_and_unhold_a_conference() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x, c) = three_way(&mut o);
    o.ok(crm, |s, now| s.hold(now, crm, conf));
    o.told(crm, conf, CallState::OnHold);
    // The remaining parties still hear each other.
    for call in [a, c] {
        o.expect(call, CONNECTED);
    }
    for call in [b, x] {
        o.expect(call, CallState::Conferenced);
    }
    o.ok(crm, |s, now| s.unhold(now, crm, conf));
    o.told(crm, conf, CONNECTED);
}

#[test]
fn swap_hold_between_a_pending_conference_and_its_consultation_call() {
    let mut o = office();
    let crm = o.crm;
    let (_a, _b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    o.sim.phone("1003").answer();
    // Back to the conference: the consultation call is held.
    o.ok(crm, |s, now| s.swap_hold(now, crm, x, conf));
    o.told(crm, x, CallState::OnHold);
    o.told(crm, conf, CONNECTED);
    // The held consultation call can still be added.
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    o.told(crm, x, CallState::Conferenced);
    o.expect(conf, CONNECTED);
    o.consistent();
}

#[test]
fn a_remote_party_hanging_up_leaves_the_conference() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x, c) = three_way(&mut o);
    o.sim.phone("1003").hang_up();
    assert_eq!(o.states_seen(crm, x), vec![GONE, CallState::Idle]);
    o.expect(c, CallState::Idle);
    // Two parties left: collapse.
    o.told(crm, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(a, CONNECTED);
    o.consistent();
}

#[test]
fn conf_related_calls_gives_monitor_handles_to_unknown_calls() {
    let mut o = office();
    let crm = o.crm;
    let (_a, b) = o.talk("1001", "1002");
    // `late` starts watching 1002 during the call: it does not know b.
    let late = o.sim.switch.register_app(AppConfig::named("late"));
    let line = o.sim.switch.line_of("1002").unwrap();
    o.sim
        .switch
        .open_line(late, line, &[Privilege::Monitor], &[])
        .unwrap();
    let (conf, _x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    assert!(o.sim.switch.call_info(late, conf).is_ok());
    assert!(o.sim.switch.call_info(late, b).is_err());
    let related = o.ok(late, |s, now| s.conf_related_calls(now, late, conf));
    assert_eq!(related, vec![conf, b]);
    o.announced(late, b, Privilege::Monitor, CallReason::Direct);
    assert_eq!(
        o.sim.switch.call_info(late, b).unwrap().privilege,
        Privilege::Monitor
    );
}

/// lineGetConfRelatedCalls: "The first call in the list is the conference
/// call, the other calls are the participant calls." Also when the
/// conference is secure and the app held only a member.
#[test]
fn a_secure_conference_stays_first_in_related_calls() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (_a, b) = o.talk("1001", "1002");
    let (conf, _x) = o.ok(crm, |s, now| s.setup_conference(now, crm, b, None));
    o.ok(crm, |s, now| s.secure_call(now, crm, conf));
    o.ok(mon, |s, now| s.deallocate_call(now, mon, conf));
    assert!(o.sim.switch.call_info(mon, conf).is_err());
    let related = o.ok(mon, |s, now| s.conf_related_calls(now, mon, b));
    assert_eq!(related.first(), Some(&conf), "{related:?}");
    assert!(related.contains(&b), "{related:?}");
}

#[test]
fn setup_conference_preconditions() {
    let mut o = office_with(SwitchConfig {
        max_conference_parties: 3,
        ..SwitchConfig::default()
    });
    let (crm, mon) = (o.crm, o.mon);
    let (a, b) = o.ring("1001", "1002");
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_conference(now, crm, b, None)
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_conference(now, crm, a, None)
    });
    let (c, d) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::ConferenceFull, |s, now| {
        s.setup_conference(now, crm, d, Some(4))
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.setup_conference(now, mon, d, None)
    });
    let (_conf, _x) = o.ok(crm, |s, now| s.setup_conference(now, crm, d, Some(3)));
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_conference(now, crm, d, None)
    });
    let _ = c;
}

#[test]
fn prepare_add_and_add_preconditions() {
    let mut o = office_with(SwitchConfig {
        max_conference_parties: 3,
        ..SwitchConfig::default()
    });
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x) = setting_up(&mut o);
    // Not a conference call.
    o.rejected(crm, ErrorCode::InvalConfCallHandle, |s, now| {
        s.prepare_add_to_conference(now, crm, b)
    });
    o.rejected(crm, ErrorCode::InvalConfCallHandle, |s, now| {
        s.add_to_conference(now, crm, b, x)
    });
    // Already adding a party.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.prepare_add_to_conference(now, crm, conf)
    });
    // The consultation call is still at dial tone.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.add_to_conference(now, crm, conf, x)
    });
    // A member cannot be added again.
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.add_to_conference(now, crm, conf, b)
    });
    // A call of another line.
    let (p, _q) = o.talk("1003", "1004");
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.add_to_conference(now, crm, conf, p)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.add_to_conference(now, mon, conf, x)
    });
    // With three parties the conference is full.
    o.ok(crm, |s, now| s.dial(now, crm, x, "1005"));
    o.sim.phone("1005").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, x));
    o.rejected(crm, ErrorCode::ConferenceFull, |s, now| {
        s.prepare_add_to_conference(now, crm, conf)
    });
    let _ = a;
}

#[test]
fn remove_and_related_preconditions() {
    let mut o = office();
    let (crm, mon) = (o.crm, o.mon);
    let (a, b, conf, x, _c) = three_way(&mut o);
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.remove_from_conference(now, crm, conf)
    });
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.remove_from_conference(now, crm, a)
    });
    o.rejected(mon, ErrorCode::NotOwner, |s, now| {
        s.remove_from_conference(now, mon, x)
    });
    o.rejected(crm, ErrorCode::NoConference, |s, now| {
        s.conf_related_calls(now, crm, a)
    });
    o.rejected(crm, ErrorCode::InvalCallHandle, |s, now| {
        s.conf_related_calls(now, crm, CallId(31_337))
    });
    // A monitor may read the related calls.
    assert_eq!(
        o.ok(mon, |s, now| s.conf_related_calls(now, mon, b)),
        vec![conf, b, x]
    );
    // A conference call is not transferred.
    o.rejected(crm, ErrorCode::InvalCallState, |s, now| {
        s.setup_transfer(now, crm, conf)
    });
}

#[test]
fn drop_a_conference_still_adding_its_first_party_ends_everything() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x) = setting_up(&mut o);
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    o.ok(crm, |s, now| s.drop_call(now, crm, conf));
    for call in [conf, b, x] {
        o.told(crm, call, CallState::Idle);
    }
    assert_eq!(o.states_seen(crm, a), vec![GONE, CallState::Idle]);
    o.expect(c, CallState::Idle);
    o.consistent();
    assert_eq!(o.sim.switch.resources_in_use(), (0, 0, 0, 0, 0));
}

#[test]
fn removing_down_to_one_member_waits_for_a_pending_addition() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x, c) = three_way(&mut o);
    let y = o.ok(crm, |s, now| s.prepare_add_to_conference(now, crm, conf));
    o.ok(crm, |s, now| s.remove_from_conference(now, crm, x));
    o.expect(c, CallState::Idle);
    // One member and a party being added: no collapse yet.
    o.expect(conf, CallState::OnHoldPendConf);
    o.expect(b, CallState::Conferenced);
    // The addition is abandoned: now the conference collapses.
    o.ok(crm, |s, now| s.drop_call(now, crm, y));
    o.told(crm, y, CallState::Idle);
    o.told(crm, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(a, CONNECTED);
    let mut two = vec![a, b];
    two.sort();
    assert_eq!(o.bridge(b), two);
    o.consistent();
}

#[test]
fn adding_after_removing_down_to_one_member_keeps_the_conference() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x, _c) = three_way(&mut o);
    let y = o.ok(crm, |s, now| s.prepare_add_to_conference(now, crm, conf));
    o.ok(crm, |s, now| s.remove_from_conference(now, crm, x));
    o.ok(crm, |s, now| s.dial(now, crm, y, "1004"));
    let d = o.only_call_at("1004");
    o.sim.phone("1004").answer();
    o.ok(crm, |s, now| s.add_to_conference(now, crm, conf, y));
    o.told(crm, conf, CONNECTED);
    o.expect(b, CallState::Conferenced);
    o.expect(y, CallState::Conferenced);
    o.expect(a, CONNECTED);
    o.expect(d, CONNECTED);
    assert_eq!(
        o.ok(crm, |s, now| s.conf_related_calls(now, crm, conf)),
        vec![conf, b, y]
    );
    o.consistent();
}

#[test]
fn drop_a_member_removes_it() {
    let mut o = office();
    let crm = o.crm;
    let (a, b, conf, x, c) = three_way(&mut o);
    o.ok(crm, |s, now| s.drop_call(now, crm, b));
    o.told(crm, b, CallState::Idle);
    assert_eq!(o.states_seen(crm, a), vec![GONE, CallState::Idle]);
    // One member left: back to a two-party call with 1003.
    o.told(crm, conf, CallState::Idle);
    o.told(crm, x, CONNECTED);
    o.expect(c, CONNECTED);
    let mut two = vec![x, c];
    two.sort();
    assert_eq!(o.bridge(x), two);
    o.consistent();
}

#[test]
fn complete_transfer_as_conference_while_the_party_still_rings() {
    let mut o = office();
    let crm = o.crm;
    let (a, b) = o.talk("1001", "1002");
    let x = o.ok(crm, |s, now| s.setup_transfer(now, crm, b));
    o.ok(crm, |s, now| s.dial(now, crm, x, "1003"));
    let c = o.only_call_at("1003");
    let conf = o
        .ok(crm, |s, now| {
            s.complete_transfer(now, crm, b, x, tapir_core::TransferMode::Conference)
        })
        .unwrap();
    o.told(crm, conf, CONNECTED);
    o.told(crm, b, CallState::Conferenced);
    o.told(crm, x, CallState::Conferenced);
    o.expect(a, CONNECTED);
    o.expect(c, CallState::Offering(tapir_core::OfferingMode::Active));
    o.sim.phone("1003").answer();
    o.expect(c, CONNECTED);
    assert!(o.bridge(conf).contains(&c));
    // Removing 1003's member collapses back to 1001 and 1002.
    o.ok(crm, |s, now| s.remove_from_conference(now, crm, x));
    o.told(crm, conf, CallState::Idle);
    o.told(crm, b, CONNECTED);
    o.expect(c, CallState::Idle);
    let mut two = vec![a, b];
    two.sort();
    assert_eq!(o.bridge(b), two);
    o.consistent();
}
