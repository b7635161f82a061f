//! What the operator changes while the switch runs, and what a restart puts
//! back: adding, changing and removing lines and apps, the park slot range,
//! forwarding set without an app, pending completion requests restored from
//! the store, per-app event sequence numbers that go on where they stopped,
//! and the id counter kept above every id handed out before.
//!
//! Everything here refuses rather than breaks a live call: a line with calls
//! cannot lose addresses, a park slot holding a call cannot disappear.

use super::{Address, App, Completion, Switch, Timer, route};
use crate::config::{AppConfig, LineConfig};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, BridgeId, CallId, CompletionId, LineId, Timestamp};
use crate::output::{EventBody, LineStateKind};
use crate::types::{CallOrigin, CallStateKind, CompletionMode, ForwardRule, Party};
use std::sync::Arc;

/// A pending call-completion request, as the operator and the store see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletionView {
    /// Its id.
    pub id: CompletionId,
    /// The app that asked.
    pub app: AppId,
    /// Camp-on or callback.
    pub mode: CompletionMode,
    /// The address that asked.
    pub from: String,
    /// The address it waits for.
    pub to: String,
    /// Camp-on: the caller's waiting call.
    pub camped_call: Option<CallId>,
    /// It waits until the target has been busy once before firing.
    pub needs_activity: bool,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// One call as a call detail record sees it (any app's view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    /// The call.
    pub id: CallId,
    /// Its address.
    pub address: Arc<str>,
    /// Its state.
    pub state: CallStateKind,
    /// Where it came from.
    pub origin: CallOrigin,
    /// When it was created.
    pub created_at: Timestamp,
    /// The bridge it hears.
    pub bridge: Option<BridgeId>,
    /// Caller id.
    pub caller: Party,
    /// Called id.
    pub called: Party,
    /// The consultation call it waits on, or the call it consults for.
    pub consult: Option<CallId>,
    /// For a conference member, its conference call.
    pub member_of: Option<CallId>,
}

impl Switch {
    // ------------------------------------------------------------------
    // Lines
    // ------------------------------------------------------------------

    /// The configuration a line runs with now.
    pub fn line_config(&self, line: LineId) -> Option<LineConfig> {
        self.m.lines.get(&line).map(|l| LineConfig {
            addresses: l.addresses.iter().map(|a| a.to_string()).collect(),
            kind: l.kind,
            name: l.name.clone(),
            pickup_group: l.pickup_group.clone(),
            auto_answer: l.auto_answer,
            remote_answer: l.remote_answer,
            max_calls: l.max_calls,
            prefix: l.prefix.as_deref().map(str::to_string),
            outbound: l.outbound,
            allow_hairpin: l.allow_hairpin,
        })
    }

    /// Whether any call (live, or idle and still held by an app) is on `line`.
    fn line_has_calls(&self, line: LineId) -> bool {
        self.m.calls.values().any(|c| c.line == line)
    }

    /// Change a line in place: its name, pickup group, answer settings and
    /// call appearances and a trunk's prefix at any time (calls already
    /// routed keep their trunk); its addresses and kind only while it
    /// has no calls (`invalcallstate`). New addresses must be free
    /// (`invaladdress`).
    /// Apps keep the line open; forwarding of addresses it keeps stays.
    pub fn update_line(&mut self, line: LineId, cfg: LineConfig) -> Result<(), TapiError> {
        let Some(old) = self.m.lines.get(&line) else {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        };
        if cfg.addresses.is_empty() {
            return fail(ErrorCode::InvalAddress, "a line needs at least one address");
        }
        cfg.check_text()?;
        let prefix = route::check_prefix(&cfg)?;
        route::check_hairpin(&cfg)?;
        if old.kind != cfg.kind && self.line_has_calls(line) {
            return fail(
                ErrorCode::InvalCallState,
                format!("{line} has calls: its kind cannot change now"),
            );
        }
        let old_addresses: Vec<Arc<str>> = old.addresses.clone();
        let same = old_addresses.len() == cfg.addresses.len()
            && old_addresses
                .iter()
                .zip(&cfg.addresses)
                .all(|(a, b)| &**a == b.as_str());
        if !same {
            if self.line_has_calls(line) {
                return fail(
                    ErrorCode::InvalCallState,
                    format!("{line} has calls: its addresses cannot change now"),
                );
            }
            for (n, a) in cfg.addresses.iter().enumerate() {
                if route::normalize(a).as_deref() != Some(a.as_str()) {
                    return fail(
                        ErrorCode::InvalAddress,
                        format!("'{a}' is not a valid directory number"),
                    );
                }
                if cfg.addresses[..n].contains(a) {
                    return fail(
                        ErrorCode::InvalAddress,
                        format!("address {a} is named twice"),
                    );
                }
                let taken = self
                    .m
                    .addresses
                    .get(a.as_str())
                    .is_some_and(|x| x.line != line);
                if taken || self.cfg.park_slots.contains(a) {
                    return fail(
                        ErrorCode::InvalAddress,
                        format!("address {a} is already in use"),
                    );
                }
            }
            for a in &old_addresses {
                if !cfg.addresses.iter().any(|n| n == &**a) {
                    self.m.addresses.remove(a);
                }
            }
            for a in &cfg.addresses {
                if !self.m.addresses.contains_key(a.as_str()) {
                    self.m.addresses.insert(
                        Arc::from(a.as_str()),
                        Address {
                            line,
                            forwarding: Vec::new(),
                            no_answer_rings: self.cfg.default_no_answer_rings,
                        },
                    );
                }
            }
        }
        let Some(l) = self.m.lines.get_mut(&line) else {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        };
        if !same {
            l.addresses = cfg
                .addresses
                .iter()
                .map(|a| Arc::from(a.as_str()))
                .collect();
        }
        l.kind = cfg.kind;
        l.name = cfg.name;
        l.pickup_group = cfg.pickup_group;
        l.auto_answer = cfg.auto_answer;
        l.remote_answer = cfg.remote_answer;
        l.max_calls = cfg.max_calls.max(1);
        l.prefix = prefix;
        l.outbound = cfg.outbound;
        l.allow_hairpin = cfg.allow_hairpin;
        Ok(())
    }

    /// Remove a line with no calls (`invalcallstate` otherwise). Every app
    /// that had it open gets `line.state` `closed`; completion requests from
    /// or to its addresses are cancelled.
    pub fn remove_line(&mut self, line: LineId) -> Result<LineConfig, TapiError> {
        let Some(cfg) = self.line_config(line) else {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        };
        if self.line_has_calls(line) {
            return fail(
                ErrorCode::InvalCallState,
                format!("{line} has calls: it cannot be removed now"),
            );
        }
        let Some(l) = self.m.lines.remove(&line) else {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        };
        for a in &l.addresses {
            self.m.addresses.remove(a);
        }
        let gone: Vec<CompletionId> = self
            .m
            .completions
            .iter()
            .filter(|(_, c)| l.addresses.contains(&c.from) || l.addresses.contains(&c.to))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(c) = self.m.completions.remove(&id) {
                self.cancel_timer(Some(c.timer));
            }
        }
        for o in &l.opens {
            self.emit(
                o.app,
                EventBody::LineState {
                    line,
                    state: LineStateKind::Closed,
                },
            );
        }
        self.flush();
        Ok(cfg)
    }

    // ------------------------------------------------------------------
    // Apps
    // ------------------------------------------------------------------

    /// Change an app's name, priority and rights (`invalparam` when another
    /// app has the name). Lines it may no longer open, or has open with a
    /// privilege it may no longer hold, are closed; they are returned.
    pub fn update_app(&mut self, app: AppId, cfg: AppConfig) -> Result<Vec<LineId>, TapiError> {
        if self
            .m
            .apps
            .iter()
            .any(|(id, a)| *id != app && a.name == cfg.name)
        {
            return fail(
                ErrorCode::InvalParam,
                format!("an app named {} exists", cfg.name),
            );
        }
        let Some(a) = self.m.apps.get_mut(&app) else {
            return fail(ErrorCode::InvalParam, format!("{app} is not registered"));
        };
        *a = App::from_config(cfg);
        Ok(self.enforce_rights(app))
    }

    /// Remove an app: it closes every line it opened (route-point calls it
    /// solely owned are dropped, as `lineClose` does), loses its handles and
    /// its pending completion requests. Its last events (`line.state`
    /// `closed`) are emitted before it goes.
    pub fn remove_app(&mut self, now: Timestamp, app: AppId) -> Result<(), TapiError> {
        if !self.m.apps.contains_key(&app) {
            return fail(ErrorCode::InvalParam, format!("{app} is not registered"));
        }
        let opened: Vec<LineId> = self
            .m
            .lines
            .iter()
            .filter(|(_, l)| l.opens.iter().any(|o| o.app == app))
            .map(|(id, _)| *id)
            .collect();
        for line in opened {
            self.close_line(now, app, line)?;
        }
        let held: Vec<CallId> = self
            .m
            .calls
            .values()
            .filter(|c| c.handles.iter().any(|(a, _)| *a == app))
            .map(|c| c.id)
            .collect();
        for call in held {
            if let Some(c) = self.call_mut(call) {
                c.handles.retain(|(a, _)| *a != app);
            }
            self.maybe_free(call);
        }
        let mine: Vec<CompletionId> = self
            .m
            .completions
            .iter()
            .filter(|(_, c)| c.app == app)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            if let Some(c) = self.m.completions.remove(&id) {
                self.cancel_timer(Some(c.timer));
            }
        }
        self.m.apps.remove(&app);
        self.seqs.remove(&app);
        self.flush();
        Ok(())
    }

    /// The last event sequence number given to `app` (0 before any).
    pub fn event_seq(&self, app: AppId) -> u64 {
        self.seqs.get(&app).copied().unwrap_or(0)
    }

    /// Go on numbering `app`'s events after `seq` (after a restart, the last
    /// one journalled). Never lowers the number.
    pub fn continue_event_seq(&mut self, app: AppId, seq: u64) {
        if let Some(s) = self.seqs.get_mut(&app) {
            *s = (*s).max(seq);
        }
    }

    // ------------------------------------------------------------------
    // Ids
    // ------------------------------------------------------------------

    /// The next id the switch hands out (calls, lines, apps, legs,
    /// completions and requests share one counter).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Hand out no id below `floor` from now on (after a restart, so that the
    /// ids of calls, requests and completions before it are never reused).
    pub fn reserve_ids_below(&mut self, floor: u64) {
        self.next_id = self.next_id.max(floor);
    }

    // ------------------------------------------------------------------
    // Park
    // ------------------------------------------------------------------

    /// Replace the park slots. Each must be a valid number that no line owns
    /// (`invaladdress`), and every slot holding a call must stay
    /// (`invalcallstate`).
    pub fn set_park_slots(&mut self, slots: Vec<String>) -> Result<(), TapiError> {
        for (n, s) in slots.iter().enumerate() {
            if route::normalize(s).as_deref() != Some(s.as_str()) {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("'{s}' is not a valid park slot number"),
                );
            }
            if self.m.addresses.contains_key(s.as_str()) {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("park slot {s} is a line's address"),
                );
            }
            if slots[..n].contains(s) {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("park slot {s} is named twice"),
                );
            }
        }
        if let Some(held) = self
            .m
            .parks
            .keys()
            .find(|k| !slots.iter().any(|s| s == &***k))
        {
            return fail(
                ErrorCode::InvalCallState,
                format!("park slot {held} holds a call: it must stay"),
            );
        }
        self.cfg.park_slots = slots;
        Ok(())
    }

    /// How long a parked call waits before it rings back (0: never); applies
    /// to calls parked from now on.
    pub fn set_park_reminder_ms(&mut self, ms: u64) {
        self.cfg.park_reminder_ms = ms;
    }

    /// Change the location the switch dials from (the operator's current
    /// location): its country tells national calls from international ones
    /// for the lines' `outbound` permission from now on.
    pub fn set_location(&mut self, location: tapir_translate::Location) {
        self.cfg.location = location;
    }

    // ------------------------------------------------------------------
    // Forwarding and completion requests
    // ------------------------------------------------------------------

    /// Set an address's forwarding as the operator (or a restart) does: no
    /// app asks and no event is sent. `no_answer_rings` is clamped to 1–20.
    pub fn set_forwarding(
        &mut self,
        address: &str,
        rules: Vec<ForwardRule>,
        no_answer_rings: u32,
    ) -> Result<(), TapiError> {
        let Some(a) = self.m.addresses.get_mut(address) else {
            return fail(
                ErrorCode::InvalAddress,
                format!("{address} is not an address of this switch"),
            );
        };
        a.forwarding = rules;
        a.no_answer_rings = no_answer_rings.clamp(1, 20);
        Ok(())
    }

    /// Every pending completion request, oldest first.
    pub fn completions(&self) -> Vec<CompletionView> {
        self.m
            .completions
            .iter()
            .map(|(id, c)| CompletionView {
                id: *id,
                app: c.app,
                mode: c.mode,
                from: c.from.to_string(),
                to: c.to.to_string(),
                camped_call: c.caller_call,
                needs_activity: c.needs_activity,
                expires_at: c.timer.0,
            })
            .collect()
    }

    /// Put back a callback request that was pending before a restart, under
    /// its old id, expiring when it would have. Only callbacks come back: a
    /// camp-on's waiting call did not survive (`invalcallcomplmode`). An
    /// expired request, an unknown app or address, or an id in use is
    /// refused.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_completion(
        &mut self,
        now: Timestamp,
        id: CompletionId,
        app: AppId,
        mode: CompletionMode,
        from: &str,
        to: &str,
        needs_activity: bool,
        expires_at: Timestamp,
    ) -> Result<(), TapiError> {
        if mode != CompletionMode::Callback {
            return fail(
                ErrorCode::InvalCallComplMode,
                "only callback requests outlive their calls",
            );
        }
        if !self.m.apps.contains_key(&app) {
            return fail(ErrorCode::InvalParam, format!("{app} is not registered"));
        }
        if self.m.completions.contains_key(&id) {
            return fail(ErrorCode::InvalCompletionId, format!("{id} is in use"));
        }
        let (Some((from, _)), Some((to, _))) = (
            self.m.addresses.get_key_value(from),
            self.m.addresses.get_key_value(to),
        ) else {
            return fail(
                ErrorCode::InvalAddress,
                format!("{from} or {to} is no longer an address of this switch"),
            );
        };
        let (from, to) = (from.clone(), to.clone());
        if expires_at <= now {
            return fail(ErrorCode::InvalCompletionId, format!("{id} has expired"));
        }
        if now > self.now {
            self.now = now;
        }
        self.next_id = self.next_id.max(id.0 + 1);
        let timer = self.start_timer(
            expires_at.0.saturating_sub(self.now.0),
            Timer::CompletionExpiry(id),
        );
        self.m.completions.insert(
            id,
            Completion {
                app,
                mode,
                from,
                to,
                caller_call: None,
                needs_activity,
                timer,
            },
        );
        self.flush();
        Ok(())
    }

    // ------------------------------------------------------------------
    // Call detail
    // ------------------------------------------------------------------

    /// What a call detail record needs to know about a call.
    pub fn call_summary(&self, call: CallId) -> Option<CallSummary> {
        self.call(call).map(|c| CallSummary {
            id: c.id,
            address: c.address.clone(),
            state: c.state.kind(),
            origin: c.origin,
            created_at: c.created_at,
            bridge: c.bridge,
            caller: c.caller.clone(),
            called: c.called.clone(),
            consult: c.consult.or(c.consult_of.map(|(o, _)| o)),
            member_of: c.member_of,
        })
    }

    /// The calls created after `after` (ids only grow), oldest first.
    pub fn calls_after(&self, after: CallId) -> Vec<CallId> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.m
            .calls
            .range((Excluded(after), Unbounded))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every line's id, in the order they were added.
    pub fn line_ids(&self) -> Vec<LineId> {
        self.m.lines.keys().copied().collect()
    }

    /// The lines that have at least one call in progress (not idle: an
    /// idle call an app has not deallocated yet does not pin its line to
    /// this node), in one pass over the calls.
    pub fn lines_with_calls(&self) -> std::collections::BTreeSet<LineId> {
        self.m
            .calls
            .values()
            .filter(|c| !c.state.is_idle())
            .map(|c| c.line)
            .collect()
    }

    /// The privileges `app` has `line` open with (`owner` before
    /// `monitor`), or none while it has not opened it.
    pub fn opened_with(&self, app: AppId, line: LineId) -> Option<Vec<crate::types::Privilege>> {
        use crate::types::Privilege;
        let open = self
            .m
            .lines
            .get(&line)?
            .opens
            .iter()
            .find(|o| o.app == app)?;
        Some(
            [
                (open.owner, Privilege::Owner),
                (open.monitor, Privilege::Monitor),
            ]
            .into_iter()
            .filter_map(|(held, p)| held.then_some(p))
            .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TypedOps;
    use crate::sim::Sim;
    use crate::types::{ForwardMode, Privilege};
    use crate::{AppConfig, SwitchConfig};

    fn office() -> (Sim, AppId) {
        let mut sim = Sim::new();
        sim.add_phone("1001");
        sim.add_phone("1002");
        sim.add_phone("1003");
        let app = sim.switch.register_app(AppConfig::named("crm"));
        for a in ["1001", "1002", "1003"] {
            let l = sim.switch.line_of(a).unwrap();
            sim.switch
                .open_line(app, l, &[Privilege::Owner], &[])
                .unwrap();
        }
        (sim, app)
    }

    #[test]
    fn a_line_shows_the_privileges_each_app_opened_it_with() {
        let (mut sim, app) = office();
        let l = sim.switch.line_of("1001").unwrap();
        assert_eq!(sim.switch.opened_with(app, l), Some(vec![Privilege::Owner]));
        sim.switch
            .open_line(app, l, &[Privilege::Monitor, Privilege::Owner], &[])
            .unwrap();
        assert_eq!(
            sim.switch.opened_with(app, l),
            Some(vec![Privilege::Owner, Privilege::Monitor])
        );
        let other = sim.switch.register_app(AppConfig::named("wallboard"));
        assert_eq!(sim.switch.opened_with(other, l), None);
        sim.switch.close_line(sim.now, app, l).unwrap();
        assert_eq!(sim.switch.opened_with(app, l), None);
    }

    #[test]
    fn a_line_changes_its_settings_and_addresses_when_idle() {
        let (mut sim, _) = office();
        let l = sim.switch.line_of("1001").unwrap();
        let mut cfg = sim.switch.line_config(l).unwrap();
        cfg.name = Some("Alice".into());
        cfg.addresses.push("1011".into());
        sim.switch.update_line(l, cfg.clone()).unwrap();
        assert_eq!(sim.switch.line_of("1011"), Some(l));
        assert_eq!(sim.switch.line_config(l).unwrap(), cfg);
        // An address of another line or a park slot is refused, nothing changes.
        let before = sim.switch.model_snapshot();
        let mut bad = cfg.clone();
        bad.addresses.push("1002".into());
        let e = sim.switch.update_line(l, bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalAddress);
        let mut bad = cfg.clone();
        bad.addresses = vec!["7001".into()];
        assert_eq!(
            sim.switch.update_line(l, bad).unwrap_err().code,
            ErrorCode::InvalAddress
        );
        assert!(sim.switch.model_snapshot() == before);
        sim.switch.check_invariants().unwrap();
    }

    #[test]
    fn a_line_with_a_call_keeps_its_addresses_and_cannot_go() {
        let (mut sim, app) = office();
        let call = sim.make_call(app, "1001", Some("1002")).unwrap();
        sim.run();
        assert!(sim.switch.call_state(call).is_some());
        let l = sim.switch.line_of("1001").unwrap();
        let mut cfg = sim.switch.line_config(l).unwrap();
        cfg.name = Some("renamed".into());
        sim.switch.update_line(l, cfg.clone()).unwrap();
        let mut route_point = cfg.clone();
        route_point.kind = crate::LineKind::RoutePoint;
        assert_eq!(
            sim.switch.update_line(l, route_point).unwrap_err().code,
            ErrorCode::InvalCallState
        );
        cfg.addresses = vec!["1099".into()];
        assert_eq!(
            sim.switch.update_line(l, cfg).unwrap_err().code,
            ErrorCode::InvalCallState
        );
        assert_eq!(
            sim.switch.remove_line(l).unwrap_err().code,
            ErrorCode::InvalCallState
        );
        assert_eq!(sim.switch.line_of("1001"), Some(l));
    }

    #[test]
    fn removing_a_line_closes_it_for_its_apps() {
        let (mut sim, app) = office();
        let l = sim.switch.line_of("1003").unwrap();
        sim.run();
        sim.clear();
        let cfg = sim.switch.remove_line(l).unwrap();
        assert_eq!(cfg.addresses, ["1003"]);
        assert_eq!(sim.switch.line_of("1003"), None);
        sim.run();
        assert!(sim.events_for(app).contains(&&EventBody::LineState {
            line: l,
            state: LineStateKind::Closed
        }));
        assert_eq!(
            sim.switch.remove_line(l).unwrap_err().code,
            ErrorCode::InvalLineHandle
        );
        // Its address can be used again.
        sim.add_phone("1003");
        sim.switch.check_invariants().unwrap();
    }

    #[test]
    fn removing_an_app_closes_its_lines_and_forgets_it() {
        let (mut sim, app) = office();
        let call = sim.make_call(app, "1001", Some("1002")).unwrap();
        sim.run();
        sim.switch.remove_app(sim.now, app).unwrap();
        assert_eq!(sim.switch.app_named("crm"), None);
        assert!(sim.switch.calls_of(app).is_empty());
        // The phones' call goes on without the app.
        assert!(sim.switch.call_state(call).is_some());
        assert_eq!(
            sim.switch.remove_app(sim.now, app).unwrap_err().code,
            ErrorCode::InvalParam
        );
        sim.switch.check_invariants().unwrap();
    }

    #[test]
    fn apps_are_renamed_but_names_stay_unique() {
        let (mut sim, app) = office();
        let other = sim.switch.register_app(AppConfig::named("other"));
        sim.switch
            .update_app(
                app,
                AppConfig {
                    name: "crm2".into(),
                    priority: 3,
                    ..AppConfig::named("crm2")
                },
            )
            .unwrap();
        assert_eq!(sim.switch.app_named("crm2"), Some(app));
        assert_eq!(
            sim.switch
                .update_app(other, AppConfig::named("crm2"))
                .unwrap_err()
                .code,
            ErrorCode::InvalParam
        );
    }

    #[test]
    fn event_numbers_go_on_after_a_restart() {
        let mut sw = crate::Switch::new(SwitchConfig::default());
        let app = sw.register_app(AppConfig::named("crm"));
        sw.add_line(LineConfig::phone("1001")).unwrap();
        sw.continue_event_seq(app, 41);
        sw.continue_event_seq(app, 7);
        assert_eq!(sw.event_seq(app), 41);
        let l = sw.line_of("1001").unwrap();
        sw.open_line(app, l, &[Privilege::Owner], &[]).unwrap();
        let mut seqs = Vec::new();
        while let Some(o) = sw.poll_output() {
            if let crate::Output::Event(e) = o {
                seqs.push(e.seq);
            }
        }
        assert_eq!(seqs, [42]);
        sw.reserve_ids_below(1000);
        assert_eq!(sw.allocate_leg().0, 1000);
        sw.reserve_ids_below(10);
        assert_eq!(sw.next_id(), 1001);
        assert!(sw.calls_after(crate::CallId(0)).is_empty());
    }

    #[test]
    fn park_slots_change_but_an_occupied_slot_stays() {
        let (mut sim, app) = office();
        sim.switch
            .set_park_slots(vec!["8001".into(), "8002".into()])
            .unwrap();
        assert_eq!(sim.switch.config().park_slots, ["8001", "8002"]);
        assert_eq!(
            sim.switch
                .set_park_slots(vec!["1001".into()])
                .unwrap_err()
                .code,
            ErrorCode::InvalAddress
        );
        assert_eq!(
            sim.switch
                .set_park_slots(vec!["x".into()])
                .unwrap_err()
                .code,
            ErrorCode::InvalAddress
        );
        let call = sim.make_call(app, "1001", Some("1002")).unwrap();
        sim.phone("1002").answer();
        sim.run();
        let slot = sim
            .switch
            .park(sim.now, app, call, crate::ParkMode::NonDirected)
            .unwrap();
        sim.run();
        assert_eq!(&*slot, "8001");
        assert_eq!(
            sim.switch
                .set_park_slots(vec!["8002".into()])
                .unwrap_err()
                .code,
            ErrorCode::InvalCallState
        );
        sim.switch.set_park_reminder_ms(5);
        assert_eq!(sim.switch.config().park_reminder_ms, 5);
    }

    #[test]
    fn forwarding_is_set_without_an_app() {
        let (mut sim, _) = office();
        let rule = ForwardRule {
            mode: ForwardMode::Unconditional,
            to: Some("1003".into()),
            caller: None,
        };
        sim.switch
            .set_forwarding("1002", vec![rule.clone()], 99)
            .unwrap();
        assert_eq!(sim.switch.forwarding("1002"), Some((vec![rule], 20)));
        assert_eq!(
            sim.switch
                .set_forwarding("5555", vec![], 3)
                .unwrap_err()
                .code,
            ErrorCode::InvalAddress
        );
    }

    #[test]
    fn a_callback_request_is_restored_under_its_id() {
        let (mut sim, app) = office();
        let now = sim.now;
        let id = CompletionId(500);
        sim.switch
            .restore_completion(
                now,
                id,
                app,
                CompletionMode::Callback,
                "1001",
                "1002",
                true,
                now.plus_ms(60_000),
            )
            .unwrap();
        let views = sim.switch.completions();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].id, id);
        assert_eq!(views[0].expires_at, now.plus_ms(60_000));
        assert!(sim.switch.next_id() > 500);
        // Used ids, camp-on, expired requests and unknown addresses are refused.
        let again = |sw: &mut crate::Switch, id, mode, to: &str, exp| {
            sw.restore_completion(now, id, app, mode, "1001", to, false, exp)
                .unwrap_err()
                .code
        };
        assert_eq!(
            again(
                &mut sim.switch,
                id,
                CompletionMode::Callback,
                "1002",
                now.plus_ms(5)
            ),
            ErrorCode::InvalCompletionId
        );
        assert_eq!(
            again(
                &mut sim.switch,
                CompletionId(900),
                CompletionMode::CampOn,
                "1002",
                now.plus_ms(5)
            ),
            ErrorCode::InvalCallComplMode
        );
        assert_eq!(
            again(
                &mut sim.switch,
                CompletionId(901),
                CompletionMode::Callback,
                "1002",
                now
            ),
            ErrorCode::InvalCompletionId
        );
        assert_eq!(
            again(
                &mut sim.switch,
                CompletionId(902),
                CompletionMode::Callback,
                "4444",
                now.plus_ms(5)
            ),
            ErrorCode::InvalAddress
        );
        // It expires when it would have.
        sim.advance(60_001);
        assert!(sim.switch.completions().is_empty());
        sim.switch.check_invariants().unwrap();
    }
}
