//! Shared set-up and assertions for the operation tests: a small office
//! (phones, a route point, a trunk), two applications, and helpers that run
//! one request and check its reply, its events and — for a rejected
//! request — that the switch did not change.

#![allow(dead_code, clippy::unwrap_used)]

use tapir_core::TypedOps;
use tapir_core::sim::{Behaviour, Sim};
use tapir_core::{
    AppConfig, AppId, CallId, CallReason, CallState, CallStateKind, ConnectedMode, Effect,
    ErrorCode, EventBody, LineConfig, Privilege, Reply, Switch, SwitchConfig, TapiError, Timestamp,
};

/// The office under test.
///
/// * 1001–1004: phones (auto-answer for third-party make call); 1003 and
///   1004 form pickup group `sales`; 1005 can be answered remotely.
/// * 2000: a route point.
/// * 9000: the trunk; every other number goes out on it.
/// * `crm` opens every line as owner, `mon` as monitor.
pub struct Office {
    /// The simulation.
    pub sim: Sim,
    /// The owner application.
    pub crm: AppId,
    /// The monitoring application.
    pub mon: AppId,
}

/// The office with the default switch settings.
pub fn office() -> Office {
    office_with(SwitchConfig::default())
}

/// The office with these switch settings.
pub fn office_with(cfg: SwitchConfig) -> Office {
    let mut sim = Sim::with_config(cfg);
    sim.add_phone("1001");
    sim.add_phone("1002");
    let mut sales = LineConfig::phone("1003");
    sales.pickup_group = Some("sales".into());
    sim.add_line(sales.clone(), Behaviour::Ring);
    sales.addresses = vec!["1004".into()];
    sim.add_line(sales, Behaviour::Ring);
    let mut remote = LineConfig::phone("1005");
    remote.remote_answer = true;
    sim.add_line(remote, Behaviour::Ring);
    sim.add_route_point("2000");
    sim.add_trunk("9000");
    let crm = sim.switch.register_app(AppConfig::named("crm"));
    let mon = sim.switch.register_app(AppConfig::named("mon"));
    for address in ["1001", "1002", "1003", "1004", "1005", "2000", "9000"] {
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

/// `connected` in its plain mode.
pub const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

impl Office {
    /// Let the line of `address` dial `outbound` (phones dial national
    /// numbers only by default).
    pub fn allow_outbound(&mut self, address: &str, outbound: tapir_core::Outbound) {
        let line = self.sim.switch.line_of(address).unwrap();
        let mut cfg = self.sim.switch.line_config(line).unwrap();
        cfg.outbound = outbound;
        self.sim.switch.update_line(line, cfg).unwrap();
    }

    /// The simulated time.
    pub fn now(&self) -> Timestamp {
        self.sim.now
    }

    /// Run one successful request: forget earlier events, run it, let the
    /// phones react, and check that `app` got exactly one reply, a success.
    pub fn ok<T: std::fmt::Debug>(
        &mut self,
        app: AppId,
        f: impl FnOnce(&mut Switch, Timestamp) -> Result<T, TapiError>,
    ) -> T {
        self.sim.clear();
        let r = self.sim.act(f);
        let replies = self.replies(app);
        assert_eq!(replies.len(), 1, "exactly one reply: {replies:?}");
        assert!(replies[0].is_ok(), "the reply is a success: {replies:?}");
        match r {
            Ok(v) => v,
            Err(e) => panic!("request failed: {e}"),
        }
    }

    /// Run one request that must be rejected with `code`, and check that the
    /// switch is unchanged, that nothing reached a device, and that `app`
    /// got exactly one reply (the error) and no other event.
    pub fn rejected<T: std::fmt::Debug>(
        &mut self,
        app: AppId,
        code: ErrorCode,
        f: impl FnOnce(&mut Switch, Timestamp) -> Result<T, TapiError>,
    ) {
        self.sim.clear();
        let before = self.sim.switch.model_snapshot();
        let r = self.sim.act(f);
        let after = self.sim.switch.model_snapshot();
        match r {
            Err(e) => assert_eq!(e.code, code, "error code of {e}"),
            Ok(v) => panic!("expected {code}, the request succeeded with {v:?}"),
        }
        assert!(before == after, "a rejected request changed the switch");
        assert!(
            self.sim.effects.is_empty(),
            "a rejected request reached a device: {:?}",
            self.sim.effects
        );
        let events = self.sim.events_for(app);
        assert_eq!(events.len(), 1, "only the reply: {events:?}");
        match events[0] {
            EventBody::Reply { result: Err(e), .. } => assert_eq!(e.code, code),
            other => panic!("expected an error reply, got {other:?}"),
        }
        let others: Vec<_> = self.sim.events.iter().filter(|e| e.app != app).collect();
        assert!(others.is_empty(), "other apps heard of it: {others:?}");
    }

    /// The replies `app` received since the last request.
    pub fn replies(&self, app: AppId) -> Vec<Result<Reply, TapiError>> {
        self.sim
            .events_for(app)
            .into_iter()
            .filter_map(|e| match e {
                EventBody::Reply { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect()
    }

    /// Forget events and effects.
    pub fn clear(&mut self) {
        self.sim.clear();
    }

    /// A call's full state (`idle` once the switch has freed it).
    pub fn state(&self, call: CallId) -> CallState {
        self.sim
            .switch
            .call_state_full(call)
            .unwrap_or(CallState::Idle)
    }

    /// Assert a call's full state.
    #[track_caller]
    pub fn expect(&self, call: CallId, state: CallState) {
        assert_eq!(self.state(call), state, "state of {call}");
    }

    /// The states `app` was told about for `call` since the last request, in order.
    pub fn states_seen(&self, app: AppId, call: CallId) -> Vec<CallState> {
        self.sim
            .events_for(app)
            .into_iter()
            .filter_map(|e| match e {
                EventBody::CallState {
                    call: c,
                    state,
                    state_mode,
                    ..
                } if *c == call => Some(full_state(*state, *state_mode)),
                _ => None,
            })
            .collect()
    }

    /// The last state `app` was told about for `call` since the last request.
    pub fn last_seen(&self, app: AppId, call: CallId) -> Option<CallState> {
        self.states_seen(app, call).last().copied()
    }

    /// Assert that `app` was told about `call`'s current state: the last
    /// `call.state` event it saw for it matches the switch.
    #[track_caller]
    pub fn told(&self, app: AppId, call: CallId, state: CallState) {
        self.expect(call, state);
        assert_eq!(
            self.last_seen(app, call),
            Some(state),
            "{app} was told {call} is {state:?}"
        );
    }

    /// The calls `app` was newly given since the last request, with the
    /// privilege and reason of each.
    pub fn new_calls(&self, app: AppId) -> Vec<(CallId, String, Privilege, CallReason)> {
        self.sim
            .events_for(app)
            .into_iter()
            .filter_map(|e| match e {
                EventBody::CallNew {
                    call,
                    address,
                    privilege,
                    reason,
                    ..
                } => Some((*call, address.to_string(), *privilege, *reason)),
                _ => None,
            })
            .collect()
    }

    /// Assert that `app` got a new handle to `call` at `address` with this
    /// privilege and reason, and that its first state event carried the privilege.
    #[track_caller]
    pub fn announced(&self, app: AppId, call: CallId, privilege: Privilege, reason: CallReason) {
        let news = self.new_calls(app);
        assert!(
            news.iter()
                .any(|(c, _, p, r)| *c == call && *p == privilege && *r == reason),
            "{app} got {call} as {privilege:?} with reason {reason:?}: {news:?}"
        );
        let first_state = self.sim.events_for(app).into_iter().find_map(|e| match e {
            EventBody::CallState {
                call: c, privilege, ..
            } if *c == call => Some(*privilege),
            _ => None,
        });
        assert_eq!(
            first_state,
            Some(Some(privilege)),
            "first state carries the privilege"
        );
    }

    /// The one live call at an address (panics when there is not exactly one).
    #[track_caller]
    pub fn only_call_at(&self, address: &str) -> CallId {
        let calls = self.sim.calls_at(address);
        assert_eq!(calls.len(), 1, "calls at {address}: {calls:?}");
        calls[0]
    }

    /// `crm` makes a call from a phone and the callee answers: both connected.
    /// Returns (caller's call, callee's call).
    pub fn talk(&mut self, from: &str, to: &str) -> (CallId, CallId) {
        let crm = self.crm;
        let a = self.ok(crm, |s, now| s.make_call(now, crm, from, Some(to)));
        let b = *self.sim.calls_at(to).last().unwrap();
        self.sim.phone(to).answer();
        self.expect(a, CONNECTED);
        self.expect(b, CONNECTED);
        self.clear();
        (a, b)
    }

    /// The phone at `from` dials `to` by itself; returns (caller's call,
    /// the call it reaches).
    pub fn ring(&mut self, from: &str, to: &str) -> (CallId, CallId) {
        let leg = self.sim.phone(from).dial(to);
        let a = self.sim.switch.call_of_leg(leg).unwrap();
        let b = self.far_call(a);
        (a, b)
    }

    /// A call from outside the switch arriving on the trunk for `to`.
    pub fn ring_from_outside(&mut self, caller: &str, to: &str) -> (CallId, CallId) {
        let leg = self.sim.switch.allocate_leg();
        self.sim.input(tapir_core::Input::DeviceCall {
            leg,
            from: "9000".into(),
            external_caller: Some(caller.into()),
            to: to.into(),
        });
        let a = self.sim.switch.call_of_leg(leg).unwrap();
        let b = self.far_call(a);
        (a, b)
    }

    /// The other call in `call`'s two-party bridge (panics when there is none).
    #[track_caller]
    pub fn far_call(&self, call: CallId) -> CallId {
        let others: Vec<CallId> = self
            .sim
            .switch
            .bridge_calls(call)
            .into_iter()
            .filter(|c| *c != call)
            .collect();
        assert_eq!(others.len(), 1, "{call} talks to {others:?}");
        others[0]
    }

    /// The calls in `call`'s bridge, sorted.
    pub fn bridge(&self, call: CallId) -> Vec<CallId> {
        let mut calls = self.sim.switch.bridge_calls(call);
        calls.sort();
        calls
    }

    /// A call to `to` from a phone of the switch, or — for a caller number
    /// starting with `+` — from outside on the trunk. Returns the caller's call.
    pub fn call_from(&mut self, caller: &str, to: &str) -> CallId {
        let (leg, from, external) = if caller.starts_with('+') {
            (
                self.sim.switch.allocate_leg(),
                "9000",
                Some(caller.to_string()),
            )
        } else {
            let leg = self.sim.phone(caller).dial(to);
            return self.sim.switch.call_of_leg(leg).unwrap();
        };
        self.sim.input(tapir_core::Input::DeviceCall {
            leg,
            from: from.into(),
            external_caller: external,
            to: to.into(),
        });
        self.sim.switch.call_of_leg(leg).unwrap()
    }

    /// The caller of a call made with [`Office::call_from`] hangs up.
    pub fn caller_hangs_up(&mut self, caller: &str, call: CallId) {
        if let Some(leg) = self.sim.switch.leg_of(call) {
            let who = if caller.starts_with('+') {
                "9000"
            } else {
                caller
            };
            self.sim
                .phone(who)
                .report_on(leg, tapir_core::LegEvent::HungUp);
        }
    }

    /// Whether tapir released a leg of `call`'s device since the last request.
    pub fn released(&self, leg: tapir_core::LegId) -> bool {
        self.sim
            .effects
            .iter()
            .any(|e| matches!(e, Effect::ReleaseLeg { leg: l, .. } if *l == leg))
    }

    /// The effects since the last request.
    pub fn effects(&self) -> &[Effect] {
        &self.sim.effects
    }

    /// Check the switch's own invariants.
    #[track_caller]
    pub fn consistent(&self) {
        if let Err(e) = self.sim.switch.check_invariants() {
            panic!("switch inconsistent: {e}");
        }
    }
}

/// A state from the kind and mode an event carries.
pub fn full_state(kind: CallStateKind, mode: Option<tapir_core::StateMode>) -> CallState {
    use tapir_core::StateMode as M;
    match (kind, mode) {
        (CallStateKind::Idle, _) => CallState::Idle,
        (CallStateKind::Offering, Some(M::Offering(m))) => CallState::Offering(m),
        (CallStateKind::Accepted, _) => CallState::Accepted,
        (CallStateKind::Dialtone, Some(M::Dialtone(m))) => CallState::Dialtone(m),
        (CallStateKind::Dialing, _) => CallState::Dialing,
        (CallStateKind::Proceeding, _) => CallState::Proceeding,
        (CallStateKind::Ringback, _) => CallState::Ringback,
        (CallStateKind::Busy, Some(M::Busy(m))) => CallState::Busy(m),
        (CallStateKind::Connected, Some(M::Connected(m))) => CallState::Connected(m),
        (CallStateKind::OnHold, _) => CallState::OnHold,
        (CallStateKind::Conferenced, _) => CallState::Conferenced,
        (CallStateKind::OnHoldPendConf, _) => CallState::OnHoldPendConf,
        (CallStateKind::OnHoldPendTransfer, _) => CallState::OnHoldPendTransfer,
        (CallStateKind::Disconnected, Some(M::Disconnected(m))) => CallState::Disconnected(m),
        (CallStateKind::SpecialInfo, Some(M::SpecialInfo(m))) => CallState::SpecialInfo(m),
        (CallStateKind::Unknown, None) => CallState::Unknown,
        (k, m) => panic!("state {k:?} arrived with mode {m:?}"),
    }
}
