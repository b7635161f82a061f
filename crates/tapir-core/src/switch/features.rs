//! PBX features on top of basic calls: park and unpark, pickup (directed and
//! group), forwarding rules, and call completion (camp-on, callback,
//! intrude, message) with their timers.

use super::{Completion, NewCall, Parked, Pending, Switch, Timer};
use crate::config::AppPermission;
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId, CompletionId, Timestamp};
use crate::output::{EventBody, ReleaseCause};
use crate::types::{
    BusyMode, CallOrigin, CallReason, CallState, CallStateKind as K, CallerFilter, CompletionMode,
    ConnectedMode, DisconnectMode, ForwardRule, LineKind, OfferingMode, ParkMode, Party,
    PickupTarget, Privilege,
};
use std::sync::Arc;

impl Switch {
    // ------------------------------------------------------------------
    // Park
    // ------------------------------------------------------------------

    pub(crate) fn op_park(
        &mut self,
        app: AppId,
        call: CallId,
        mode: ParkMode,
    ) -> Result<Arc<str>, TapiError> {
        self.owned(app, call)?;
        self.expect_state(call, &[K::Connected], "park")?;
        let slot: Arc<str> = match mode {
            ParkMode::Directed(to) => {
                let n = super::route::normalize(&to).unwrap_or_default();
                if !self.cfg.park_slots.contains(&n) {
                    return fail(
                        ErrorCode::InvalAddress,
                        format!("'{to}' is not a park slot of this switch"),
                    );
                }
                if self.m.parks.contains_key(n.as_str()) {
                    return fail(
                        ErrorCode::InvalAddress,
                        format!("park slot {n} is occupied"),
                    );
                }
                Arc::from(n.as_str())
            }
            ParkMode::NonDirected => {
                let free = self
                    .cfg
                    .park_slots
                    .iter()
                    .find(|s| !self.m.parks.contains_key(s.as_str()));
                match free {
                    Some(s) => Arc::from(s.as_str()),
                    None => return fail(ErrorCode::ResourceUnavail, "every park slot is in use"),
                }
            }
        };
        let Some(p) = self.peer(call) else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has no single far party to park"),
            );
        };
        let parker = self
            .call(call)
            .map(|c| c.address.clone())
            .unwrap_or_else(|| Arc::from(""));
        self.go_idle(call, ReleaseCause::Normal);
        self.leave_bridge(p);
        self.set_state(p, CallState::Connected(ConnectedMode::ActiveHeld));
        self.set_connected(p, Some(Party::new(&*slot)));
        let timer = (self.cfg.park_reminder_ms > 0)
            .then(|| self.start_timer(self.cfg.park_reminder_ms, Timer::ParkReminder));
        self.m.parks.insert(
            slot.clone(),
            Parked {
                call: p,
                parker,
                timer,
            },
        );
        let ev = || EventBody::Parked {
            call: p,
            slot: slot.clone(),
        };
        self.notify(p, ev);
        Ok(slot)
    }

    pub(crate) fn op_unpark(
        &mut self,
        app: AppId,
        address: &str,
        slot: &str,
    ) -> Result<CallId, TapiError> {
        self.check_privilege_cap(app, Privilege::Owner, "unpark calls (it would own them)")?;
        let line = self.open_address(app, address)?;
        let n = super::route::normalize(slot).unwrap_or_default();
        let Some(parked) = self.m.parks.get(n.as_str()).map(|p| p.call) else {
            return fail(
                ErrorCode::InvalAddress,
                format!("no call is parked at '{slot}'"),
            );
        };
        self.check_call_appearance(line, address)?;
        let slot: Arc<str> = Arc::from(n.as_str());
        let caller = self.party_of(parked);
        let u = self.new_originated(
            app,
            address,
            CallReason::Unpark,
            caller,
            Party::new(&*slot),
            None,
        );
        self.unpark_into(u, &slot);
        self.join_or_invite(u, line);
        Ok(u)
    }

    /// Take the call parked at `slot` into `call`'s bridge.
    fn unpark_into(&mut self, call: CallId, slot: &Arc<str>) -> bool {
        let Some(parked) = self.m.parks.remove(slot) else {
            return false;
        };
        self.cancel_timer(parked.timer);
        self.new_bridge(&[call, parked.call], None);
        let ev = || EventBody::Unparked {
            call: parked.call,
            slot: slot.clone(),
            by: Some(call),
        };
        self.notify(parked.call, ev);
        true
    }

    /// A phone dialled a park slot: retrieve the parked call into `call`.
    pub(crate) fn retrieve_parked_into(&mut self, call: CallId, slot: &Arc<str>) -> bool {
        if !self.unpark_into(call, slot) {
            return false;
        }
        if let Some(c) = self.call_mut(call) {
            c.reason = CallReason::Unpark;
        }
        self.join_now(call);
        true
    }

    /// If `call` is parked, free its slot.
    pub(crate) fn release_parked(&mut self, call: CallId) {
        let slot = self
            .m
            .parks
            .iter()
            .find(|(_, p)| p.call == call)
            .map(|(s, _)| s.clone());
        if let Some(slot) = slot
            && let Some(p) = self.m.parks.remove(&slot)
        {
            self.cancel_timer(p.timer);
            self.notify(call, || EventBody::Unparked {
                call,
                slot: slot.clone(),
                by: None,
            });
        }
    }

    /// A park reminder ran out: ring the parked call back at the address
    /// that parked it.
    pub(crate) fn park_reminder_expired(&mut self, key: (Timestamp, u64)) {
        let slot = self
            .m
            .parks
            .iter()
            .find(|(_, p)| p.timer == Some(key))
            .map(|(s, _)| s.clone());
        let Some(slot) = slot else { return };
        let Some(p) = self.m.parks.remove(&slot) else {
            return;
        };
        self.notify(p.call, || EventBody::Unparked {
            call: p.call,
            slot: slot.clone(),
            by: None,
        });
        self.set_state(p.call, CallState::Proceeding);
        // The parking address calls its own call back: its line is the one
        // dialling, not the parked party's (which may dial nothing).
        let by = self
            .line_of(&p.parker)
            .or_else(|| self.call(p.call).map(|c| c.line));
        if let Some(by) = by {
            self.route_as(
                p.call,
                &p.parker,
                CallReason::Reminder,
                Some(Party::new(&*slot)),
                by,
            );
        }
    }

    // ------------------------------------------------------------------
    // Pickup
    // ------------------------------------------------------------------

    pub(crate) fn op_pickup(
        &mut self,
        app: AppId,
        address: &str,
        target: PickupTarget,
    ) -> Result<CallId, TapiError> {
        self.check_privilege_cap(app, Privilege::Owner, "pick up calls (it would own them)")?;
        let line = self.open_address(app, address)?;
        let ringing = |s: &Self, at: &dyn Fn(&super::Call) -> bool| {
            s.m.calls
                .values()
                .filter(|c| c.state.is_alerting() && !c.secure && &*c.address != address)
                .filter(|c| at(c))
                .map(|c| c.id)
                .next()
        };
        let group_exists = |s: &Self, g: &str| {
            s.m.lines
                .values()
                .any(|x| x.pickup_group.as_deref() == Some(g))
        };
        if target == PickupTarget::CallWaiting {
            return self.pickup_call_waiting(app, address, line);
        }
        let r = match &target {
            PickupTarget::CallWaiting => None,
            PickupTarget::AddressInGroup(t, g) => {
                if !group_exists(self, g) {
                    return fail(
                        ErrorCode::InvalGroupId,
                        format!("there is no pickup group '{g}'"),
                    );
                }
                let n = super::route::normalize(t).unwrap_or_default();
                let Some(at) = self.m.addresses.get(n.as_str()).map(|a| a.line) else {
                    return fail(ErrorCode::InvalAddress, format!("'{t}' is not an address"));
                };
                if self
                    .m
                    .lines
                    .get(&at)
                    .and_then(|l| l.pickup_group.as_deref())
                    != Some(g)
                {
                    return fail(
                        ErrorCode::InvalGroupId,
                        format!("'{t}' is not in pickup group '{g}'"),
                    );
                }
                ringing(self, &|c| *c.address == *n)
            }
            PickupTarget::Address(t) => {
                let n = super::route::normalize(t).unwrap_or_default();
                if !self.m.addresses.contains_key(n.as_str()) {
                    return fail(ErrorCode::InvalAddress, format!("'{t}' is not an address"));
                }
                ringing(self, &|c| *c.address == *n)
            }
            PickupTarget::Group(g) => {
                let in_group = |s: &Self, l: crate::ids::LineId| {
                    s.m.lines
                        .get(&l)
                        .is_some_and(|x| x.pickup_group.as_deref() == Some(g))
                };
                if !self.m.lines.keys().any(|l| in_group(self, *l)) {
                    return fail(
                        ErrorCode::InvalGroupId,
                        format!("there is no pickup group '{g}'"),
                    );
                }
                ringing(self, &|c| in_group(self, c.line))
            }
        };
        let Some(r) = r else {
            return fail(
                ErrorCode::InvalAddress,
                "no call is ringing there to pick up",
            );
        };
        let a = self.pickup_caller(r, "ringing")?;
        self.check_call_appearance(line, address)?;
        let (caller, called, from) = match self.call(r) {
            Some(c) => (c.caller.clone(), c.called.clone(), c.address.clone()),
            None => return fail(ErrorCode::InvalAddress, "the ringing call is gone"),
        };
        let redirecting = Some(Party::new(&*from));
        Ok(self.finish_pickup(app, (address, line), r, a, (caller, called, redirecting)))
    }

    /// The caller a pickup of the `what` (ringing, waiting) call `r` takes
    /// over, after the checks every pickup makes: not a call being added
    /// to a conference, and a caller to connect.
    fn pickup_caller(&self, r: CallId, what: &str) -> Result<CallId, TapiError> {
        if self.in_conference(r) {
            return fail(
                ErrorCode::InvalCallState,
                format!("the {what} call is being added to a conference and cannot be picked up"),
            );
        }
        match self.others_in_bridge(r).first().copied() {
            Some(a) => Ok(a),
            None => fail(
                ErrorCode::InvalAddress,
                format!("the {what} call has no caller"),
            ),
        }
    }

    /// The end every pickup shares: the picked-up call `r` ends
    /// `disconnected/pickup`, and `app` gets a new call at `address` on
    /// `line` (reason `pickup`, with `parties`: caller, called,
    /// redirecting) bridged to `r`'s caller `a`.
    fn finish_pickup(
        &mut self,
        app: AppId,
        (address, line): (&str, crate::ids::LineId),
        r: CallId,
        a: CallId,
        (caller, called, redirecting): (Party, Party, Option<Party>),
    ) -> CallId {
        self.set_state(r, CallState::Disconnected(DisconnectMode::Pickup));
        self.go_idle(r, ReleaseCause::Moved);
        let k = self.new_originated(
            app,
            address,
            CallReason::Pickup,
            caller,
            called,
            redirecting,
        );
        if self.is_external(a)
            && let Some(kc) = self.call_mut(k)
        {
            kc.origin = CallOrigin::External;
        }
        self.new_bridge(&[a, k], None);
        self.join_or_invite(k, line);
        k
    }

    /// linePickup naming neither an address nor a group: "the pickup is of
    /// a call-waiting call on the address". The oldest call alerting at
    /// `address` while the address has another live call is answered there
    /// as a new call (reason `pickup`, the app its sole owner; the waiting
    /// call ends `disconnected` mode `pickup`), and the address's connected
    /// call goes on hold, so that `lineSwapHold` toggles between the two.
    /// The new call takes the waiting call's appearance.
    fn pickup_call_waiting(
        &mut self,
        app: AppId,
        address: &str,
        line: crate::ids::LineId,
    ) -> Result<CallId, TapiError> {
        let at: Vec<(CallId, CallState, bool)> = self
            .calls_at_address(address)
            .map(|c| (c.id, c.state, c.secure))
            .collect();
        // Call ids grow with time: the first alerting one waited longest.
        let waiting = at
            .iter()
            .filter(|(_, s, secure)| s.is_alerting() && !secure)
            .map(|(c, ..)| *c)
            .min();
        let Some(r) = waiting else {
            return fail(
                ErrorCode::InvalAddress,
                format!("no call is waiting at {address}"),
            );
        };
        let active: Vec<CallId> = at
            .iter()
            .filter(|(c, s, _)| *c != r && s.is_live() && !s.is_alerting())
            .map(|(c, ..)| *c)
            .collect();
        if active.is_empty() {
            return fail(
                ErrorCode::InvalAddress,
                format!(
                    "the call ringing at {address} is not waiting behind another call (answer it instead)"
                ),
            );
        }
        let a = self.pickup_caller(r, "waiting")?;
        let (caller, called) = match self.call(r) {
            Some(c) => (c.caller.clone(), c.called.clone()),
            None => return fail(ErrorCode::InvalAddress, "the waiting call is gone"),
        };
        let redirecting = self.call(r).and_then(|c| c.redirecting.clone());
        for c in active {
            if self.state(c).is_connected() {
                self.set_state(c, CallState::OnHold);
            }
        }
        Ok(self.finish_pickup(app, (address, line), r, a, (caller, called, redirecting)))
    }

    /// `callunavail` when every call appearance of `address` (on `line`) is
    /// in use.
    pub(crate) fn check_call_appearance(
        &self,
        line: crate::ids::LineId,
        address: &str,
    ) -> Result<(), TapiError> {
        let max = self.m.lines.get(&line).map(|l| l.max_calls).unwrap_or(1);
        if self.live_calls_at(address) >= max {
            return fail(
                ErrorCode::CallUnavail,
                format!("every call appearance of {address} is in use"),
            );
        }
        Ok(())
    }

    /// A call an app creates at `address` to take over another call
    /// (pickup, unpark): `proceeding` until its device answers.
    fn new_originated(
        &mut self,
        app: AppId,
        address: &str,
        reason: CallReason,
        caller: Party,
        called: Party,
        redirecting: Option<Party>,
    ) -> CallId {
        let address = self
            .m
            .addresses
            .get_key_value(address)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(address));
        self.new_call(NewCall {
            address,
            state: CallState::Proceeding,
            reason,
            origin: CallOrigin::Internal,
            caller,
            called,
            redirecting,
            creator: Some(app),
            completion: None,
            forward_hops: 0,
        })
    }

    /// Connect a new call to the party waiting in its bridge now (route point)
    /// or once its phone answers.
    fn join_or_invite(&mut self, call: CallId, line: crate::ids::LineId) {
        if self.line_kind(line) == LineKind::Phone {
            if let Some(c) = self.call_mut(call) {
                c.pending = Pending::Join;
            }
            self.invite_own_device(call, true);
        } else {
            self.join_now(call);
        }
    }

    /// Connect `call` with the other calls of its bridge.
    pub(crate) fn join_now(&mut self, call: CallId) {
        self.set_state(call, CallState::Connected(ConnectedMode::Active));
        self.answer_inbound_leg(call);
        // In a conference the partner is the member standing for this call;
        // it stays conferenced.
        let conference = self.in_conference(call);
        for o in self.callers_of(call) {
            if self.state(o).is_live() {
                if !conference {
                    self.set_state(o, CallState::Connected(ConnectedMode::Active));
                    self.answer_inbound_leg(o);
                }
                let po = self.party_of(o);
                let pc = self.party_of(call);
                self.set_connected(call, Some(po));
                self.set_connected(o, Some(pc));
            }
        }
    }

    // ------------------------------------------------------------------
    // Forwarding
    // ------------------------------------------------------------------

    pub(crate) fn op_forward(
        &mut self,
        app: AppId,
        address: &str,
        rules: Vec<ForwardRule>,
        rings: Option<u32>,
    ) -> Result<(), TapiError> {
        self.check_permission(app, AppPermission::Forward, "set forwarding")?;
        let line = self.open_address(app, address)?;
        self.check_forward_list(line, address, &rules)?;
        self.apply_forwarding(line, address, &rules, rings);
        Ok(())
    }

    /// `lineForward` with `bAllAddresses` TRUE: the same forward list for
    /// every address of the line, all of them or none (a list one address
    /// cannot take, such as forwarding to itself, changes nothing).
    pub(crate) fn op_forward_line(
        &mut self,
        app: AppId,
        line: crate::ids::LineId,
        rules: Vec<ForwardRule>,
        rings: Option<u32>,
    ) -> Result<(), TapiError> {
        self.check_permission(app, AppPermission::Forward, "set forwarding")?;
        self.line_open_by(app, line)?;
        let addresses: Vec<Arc<str>> = self
            .m
            .lines
            .get(&line)
            .map(|l| l.addresses.clone())
            .unwrap_or_default();
        for address in &addresses {
            self.check_forward_list(line, address, &rules)?;
        }
        for address in &addresses {
            self.apply_forwarding(line, address, &rules, rings);
        }
        Ok(())
    }

    /// Check a forward list for `address` of `line` (`invalparam` for a bad
    /// list, `invaladdress` for a destination the line may not reach).
    fn check_forward_list(
        &self,
        line: crate::ids::LineId,
        address: &str,
        rules: &[ForwardRule],
    ) -> Result<(), TapiError> {
        let mut seen = Vec::new();
        for rule in rules {
            let specific = rule.mode.callers() == CallerFilter::Specific;
            match (&rule.caller, specific) {
                (None, true) => {
                    return fail(
                        ErrorCode::InvalParam,
                        format!("forward mode {:?} needs a caller address", rule.mode),
                    );
                }
                (Some(_), false) => {
                    return fail(
                        ErrorCode::InvalParam,
                        format!("forward mode {:?} takes no caller address", rule.mode),
                    );
                }
                (Some(c), true) if super::route::normalize(c).is_none() => {
                    return fail(
                        ErrorCode::InvalParam,
                        format!("'{c}' is not a caller address"),
                    );
                }
                _ => {}
            }
            if let Some(to) = &rule.to {
                self.check_destination(line, to)?;
                if super::route::normalize(to).as_deref() == Some(address) {
                    return fail(
                        ErrorCode::InvalParam,
                        format!("address {address} cannot forward to itself"),
                    );
                }
            }
            let key = (rule.mode, rule.caller.clone());
            if seen.contains(&key) {
                return fail(
                    ErrorCode::InvalParam,
                    format!(
                        "forward mode {:?} appears twice for the same callers",
                        rule.mode
                    ),
                );
            }
            seen.push(key);
        }
        Ok(())
    }

    /// Put a checked forward list in force at `address` and tell every app
    /// with the line open (`address.forwarding`).
    fn apply_forwarding(
        &mut self,
        line: crate::ids::LineId,
        address: &str,
        rules: &[ForwardRule],
        rings: Option<u32>,
    ) {
        let rings = rings.map(|r| r.clamp(1, 20));
        let Some(address) = self
            .m
            .addresses
            .get_key_value(address)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        let Some(a) = self.m.addresses.get_mut(&address) else {
            return;
        };
        a.forwarding = rules.to_vec();
        if let Some(r) = rings {
            a.no_answer_rings = r;
        }
        let no_answer_rings = a.no_answer_rings;
        let apps: Vec<AppId> = self
            .m
            .lines
            .get(&line)
            .map(|l| l.opens.iter().map(|o| o.app).collect())
            .unwrap_or_default();
        for a in apps {
            self.emit(
                a,
                EventBody::AddressForwarding {
                    address: address.clone(),
                    rules: rules.to_vec(),
                    no_answer_rings,
                },
            );
        }
    }

    // ------------------------------------------------------------------
    // Call completion
    // ------------------------------------------------------------------

    pub(crate) fn op_complete_call(
        &mut self,
        app: AppId,
        call: CallId,
        mode: CompletionMode,
        message_id: Option<u32>,
    ) -> Result<CompletionId, TapiError> {
        self.owned(app, call)?;
        self.expect_state(call, &[K::Busy, K::Ringback], "complete")?;
        let busy = self.state(call).kind() == K::Busy;
        // Camp-on accepts a ringing call as TAPI does (busy or ringback);
        // intrusion needs a call to join.
        if mode == CompletionMode::Intrude && !busy {
            return fail(
                ErrorCode::InvalCallState,
                "intrusion needs a busy call to join; this one is ringing",
            );
        }
        let target: Option<Arc<str>> = if busy {
            let called = self
                .call(call)
                .map(|c| c.called.address.clone())
                .unwrap_or_default();
            super::route::normalize(&called).and_then(|n| {
                self.m
                    .addresses
                    .get_key_value(n.as_str())
                    .map(|(k, _)| k.clone())
            })
        } else {
            self.peer(call)
                .and_then(|b| self.call(b))
                .map(|b| b.address.clone())
        };
        let Some(target) = target.filter(|t| {
            self.line_of(t)
                .is_some_and(|l| self.line_kind(l) != LineKind::Trunk)
        }) else {
            return fail(
                ErrorCode::OperationUnavail,
                "call completion works only towards addresses of this switch",
            );
        };
        if mode == CompletionMode::Message
            && message_id.is_none_or(|m| m >= self.cfg.completion_messages)
        {
            return fail(
                ErrorCode::InvalMessageId,
                format!(
                    "message ids run from 0 to {}",
                    self.cfg.completion_messages.saturating_sub(1)
                ),
            );
        }
        let pending = self
            .m
            .completions
            .values()
            .filter(|c| c.to == target)
            .count();
        if pending >= self.cfg.max_completions_per_address {
            return fail(
                ErrorCode::CompletionOverrun,
                format!("{target} already has {pending} completion requests waiting"),
            );
        }
        let from = self
            .call(call)
            .map(|c| c.address.clone())
            .unwrap_or_else(|| Arc::from(""));
        let id = CompletionId(self.id());
        match mode {
            CompletionMode::Intrude => {
                let victim = self.m.calls.values().find(|c| {
                    c.address == target
                        && c.state.is_connected()
                        && c.bridge.is_some()
                        && c.members.is_none()
                });
                let Some(victim) = victim else {
                    return fail(
                        ErrorCode::OperationUnavail,
                        format!("{target} has no call to join"),
                    );
                };
                if victim.secure {
                    return fail(
                        ErrorCode::OperationUnavail,
                        format!("{target}'s call is secure"),
                    );
                }
                let Some(bridge) = victim.bridge else {
                    return fail(ErrorCode::OperationUnavail, "no bridge to join");
                };
                if self.m.bridges.get(&bridge).is_some_and(|b| {
                    b.calls
                        .iter()
                        .any(|c| self.call(*c).is_some_and(|x| x.secure))
                }) {
                    return fail(
                        ErrorCode::OperationUnavail,
                        format!("{target}'s call is secure"),
                    );
                }
                self.join_bridge(call, bridge);
                self.set_state(call, CallState::Connected(ConnectedMode::Active));
                self.answer_inbound_leg(call);
                self.completion_done(app, id, mode, Some(call), None, &from, &target, true);
            }
            CompletionMode::Message => {
                // Like a hang-up: a party still ringing is told the caller left.
                self.hang_up(call, ReleaseCause::Normal);
                let watchers: Vec<AppId> = self
                    .line_of(&target)
                    .and_then(|l| self.m.lines.get(&l))
                    .map(|l| {
                        l.opens
                            .iter()
                            .map(|o| o.app)
                            .filter(|a| *a != app)
                            .collect()
                    })
                    .unwrap_or_default();
                for w in watchers {
                    self.completion_done(w, id, mode, None, message_id, &from, &target, true);
                }
                self.completion_done(app, id, mode, None, message_id, &from, &target, true);
            }
            CompletionMode::CampOn | CompletionMode::Callback => {
                // "After this function completes, the call typically
                // transitions to idle. When the called station or network
                // enters a state where the call can be completed as
                // requested, the application is notified by a LINE_CALLSTATE
                // message with call state equal to offering" (reason
                // callcompletion, with the completion id): for camp-on and
                // callback alike.
                let needs_activity = !busy || self.live_calls_at(&target) == 0;
                let timer =
                    self.start_timer(self.cfg.completion_expiry_ms, Timer::CompletionExpiry(id));
                self.m.completions.insert(
                    id,
                    Completion {
                        app,
                        mode,
                        from,
                        to: target,
                        caller_call: None,
                        needs_activity,
                        timer,
                    },
                );
                if let Some(c) = self.call_mut(call) {
                    c.completion = Some(id);
                }
                self.hang_up(call, ReleaseCause::Normal);
            }
        }
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn completion_done(
        &mut self,
        app: AppId,
        completion: CompletionId,
        mode: CompletionMode,
        call: Option<CallId>,
        message_id: Option<u32>,
        from: &Arc<str>,
        to: &Arc<str>,
        completed: bool,
    ) {
        // Name the produced call only to an app that has a handle to it.
        let call = call.filter(|c| self.privilege(app, *c).is_ok());
        self.emit(
            app,
            EventBody::CompletionDone {
                completion,
                mode,
                call,
                message_id,
                from: from.clone(),
                to: to.clone(),
                completed,
            },
        );
    }

    pub(crate) fn op_uncomplete_call(
        &mut self,
        app: AppId,
        id: CompletionId,
    ) -> Result<(), TapiError> {
        let Some(c) = self.m.completions.get(&id) else {
            return fail(
                ErrorCode::InvalCompletionId,
                format!("{id} is not a pending completion"),
            );
        };
        let allowed = c.app == app
            || self
                .line_of(&c.from)
                .is_some_and(|l| self.line_open_by(app, l).is_ok());
        if !allowed {
            return fail(
                ErrorCode::InvalCompletionId,
                format!("{id} belongs to a line this application has not opened"),
            );
        }
        if let Some(c) = self.m.completions.remove(&id) {
            self.cancel_timer(Some(c.timer));
            if let Some(a) = c.caller_call
                && self.state(a) == CallState::Ringback
            {
                self.set_state(a, CallState::Busy(BusyMode::Station));
            }
        }
        Ok(())
    }

    /// A completion request waited too long.
    pub(crate) fn completion_expired(&mut self, id: CompletionId) {
        let Some(c) = self.m.completions.remove(&id) else {
            return;
        };
        if let Some(a) = c.caller_call
            && self.state(a) == CallState::Ringback
        {
            self.set_state(a, CallState::Busy(BusyMode::Station));
        }
        self.completion_done(c.app, id, c.mode, None, None, &c.from, &c.to, false);
    }

    /// The calling call of a camp-on ended: its request goes with it.
    pub(crate) fn cancel_completions_of(&mut self, call: CallId) {
        let ids: Vec<CompletionId> = self
            .m
            .completions
            .iter()
            .filter(|(_, c)| c.caller_call == Some(call))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(c) = self.m.completions.remove(&id) {
                self.cancel_timer(Some(c.timer));
                self.completion_done(c.app, id, c.mode, None, None, &c.from, &c.to, false);
            }
        }
    }

    /// A new call at `address` counts as activity for completions waiting on it.
    pub(crate) fn note_activity(&mut self, address: &str) {
        for c in self.m.completions.values_mut() {
            if &*c.to == address {
                c.needs_activity = false;
            }
        }
    }

    /// Fire the completion requests whose address is now free (no live calls).
    pub(crate) fn check_completions(&mut self) {
        if self.m.completions.is_empty() {
            return;
        }
        let ready: Vec<CompletionId> = self
            .m
            .completions
            .iter()
            .filter(|(_, c)| !c.needs_activity && self.live_calls_at(&c.to) == 0)
            .filter(|(_, c)| c.mode == CompletionMode::CampOn || self.live_calls_at(&c.from) == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let Some(c) = self.m.completions.remove(&id) else {
                continue;
            };
            self.cancel_timer(Some(c.timer));
            let cb = self.callback_call(&c, id);
            self.completion_done(c.app, id, c.mode, cb, None, &c.from, &c.to, true);
        }
    }

    /// Offer the requester a new call (reason `callcompletion`, the
    /// completion id in its info) at the address that asked; when it
    /// answers, the switch calls the address it waited for (which sees
    /// reason `campedon` for a camp-on, `callcompletion` for a callback).
    /// The app that asked owns the new call while it has the line open;
    /// otherwise the line's usual owner does.
    fn callback_call(&mut self, c: &Completion, id: CompletionId) -> Option<CallId> {
        let line = self.line_of(&c.from)?;
        let owner = Some(c.app)
            .filter(|a| self.line_open_by(*a, line).is_ok())
            .or_else(|| self.owner_app_for(line, crate::types::MediaMode::InteractiveVoice));
        let kind = self.line_kind(line);
        if kind == LineKind::RoutePoint && owner.is_none() {
            return None;
        }
        let cb = self.new_call(NewCall {
            address: c.from.clone(),
            state: CallState::Offering(OfferingMode::Active),
            reason: CallReason::CallCompletion,
            origin: CallOrigin::Internal,
            caller: Party::new(&*c.to),
            called: Party::new(&*c.from),
            redirecting: None,
            creator: owner,
            completion: Some(id),
            forward_hops: 0,
        });
        let reason = match c.mode {
            CompletionMode::CampOn => CallReason::CampedOn,
            _ => CallReason::CallCompletion,
        };
        if let Some(call) = self.call_mut(cb) {
            call.pending = Pending::Route(c.to.clone(), reason);
        }
        if kind == LineKind::Phone {
            let target = c.from.clone();
            self.create_leg(cb, target, Party::new(&*c.to), false);
        }
        Some(cb)
    }
}
