//! Call control operations: make call, answer, accept, dial, drop,
//! deallocate, hold, unhold, swap hold, blind and consultation transfer,
//! redirect, secure, handoff, digits, privileges, and opening and closing
//! lines. Each `op_*` checks every precondition before it changes anything,
//! so a rejected request leaves the switch as it was.

use super::{ConsultPurpose, LineOpen, NewCall, Pending, Switch};
use crate::config::{AppPermission, default_media_modes};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId, LineId, Timestamp};
use crate::output::{Effect, EventBody, InfoField, LineStateKind, ReleaseCause, Reply};
use crate::types::{
    CallOrigin, CallReason, CallState, CallStateKind as K, ConnectedMode, DialtoneMode,
    DisconnectMode, ForwardCondition, HandoffTarget, LineKind, MediaMode, Party, Privilege,
    TransferMode,
};

impl Switch {
    // ------------------------------------------------------------------
    // Opening and closing lines (an application's requests are `Command`s,
    // see `Switch::request`; their typed forms are the test-only `TypedOps`).
    // ------------------------------------------------------------------

    /// `lineOpen`: the app watches (`monitor`) and/or takes new calls
    /// (`owner`, for `media_modes`, interactive voice when none are given) on a
    /// line. Opening again replaces the earlier open. Calls already on the line
    /// are not announced (TAPI); monitors see every call created afterwards.
    pub fn open_line(
        &mut self,
        app: AppId,
        line: LineId,
        privileges: &[Privilege],
        media_modes: &[MediaMode],
    ) -> Result<(), TapiError> {
        if !self.m.apps.contains_key(&app) {
            return fail(ErrorCode::InvalParam, format!("{app} is not registered"));
        }
        if !self.m.lines.contains_key(&line) {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        }
        self.check_open_rights(app, line, privileges)?;
        let Some(l) = self.m.lines.get_mut(&line) else {
            return fail(ErrorCode::InvalLineHandle, format!("{line} does not exist"));
        };
        let owner = privileges.contains(&Privilege::Owner);
        let monitor = privileges.contains(&Privilege::Monitor);
        let media_modes = if media_modes.is_empty() {
            default_media_modes()
        } else {
            media_modes.to_vec()
        };
        let order = self.next_open;
        self.next_open += 1;
        l.opens.retain(|o| o.app != app);
        l.opens.push(LineOpen {
            app,
            owner,
            monitor,
            media_modes,
            order,
        });
        self.emit(
            app,
            EventBody::LineState {
                line,
                state: LineStateKind::Open,
            },
        );
        self.flush();
        Ok(())
    }

    /// `lineClose`: the app stops seeing the line; its handles to calls on it
    /// become invalid. Route-point calls it solely owned are dropped (nobody
    /// else could end them); phone calls go on under the phone user's control.
    pub fn close_line(
        &mut self,
        now: Timestamp,
        app: AppId,
        line: LineId,
    ) -> Result<(), TapiError> {
        self.advance_to(now);
        self.line_open_by(app, line)?;
        let calls: Vec<CallId> = self
            .m
            .calls
            .values()
            .filter(|c| c.line == line && c.handles.iter().any(|(a, _)| *a == app))
            .map(|c| c.id)
            .collect();
        for call in calls {
            let sole_owner = self.call(call).is_some_and(|c| {
                c.handles == [(app, Privilege::Owner)]
                    || (c
                        .handles
                        .iter()
                        .filter(|(_, p)| *p == Privilege::Owner)
                        .count()
                        == 1
                        && c.handles.contains(&(app, Privilege::Owner)))
            });
            if sole_owner && self.line_kind(line) == LineKind::RoutePoint {
                self.hang_up(call, ReleaseCause::Normal);
            }
            if let Some(c) = self.call_mut(call) {
                c.handles.retain(|(a, _)| *a != app);
            }
            self.maybe_free(call);
        }
        if let Some(l) = self.m.lines.get_mut(&line) {
            l.opens.retain(|o| o.app != app);
        }
        self.emit(
            app,
            EventBody::LineState {
                line,
                state: LineStateKind::Closed,
            },
        );
        self.flush();
        Ok(())
    }

    // ------------------------------------------------------------------
    // The operations
    // ------------------------------------------------------------------

    pub(crate) fn op_make_call(
        &mut self,
        app: AppId,
        from: &str,
        to: Option<&str>,
    ) -> Result<CallId, TapiError> {
        self.check_permission(app, AppPermission::MakeCall, "make calls")?;
        self.check_privilege_cap(app, Privilege::Owner, "make calls (it would own them)")?;
        let line = self.open_address(app, from)?;
        let kind = self.line_kind(line);
        if kind == LineKind::Trunk {
            return fail(
                ErrorCode::OperationUnavail,
                "calls are made from phones and route points; a trunk only carries them",
            );
        }
        // Partial dialing: "If the destination address ends in a semicolon,
        // the call is set up with the digits so far and more will follow"
        // (lineDial continues it). The number is checked when it is complete.
        let (to, partial) = match to {
            Some(t) if t.ends_with(';') => (Some(t.trim_end_matches(';')), true),
            other => (other, false),
        };
        let partial_digits = if partial {
            let body = to.unwrap_or_default();
            if body.is_empty() {
                String::new()
            } else {
                super::route::normalize(body).ok_or_else(|| {
                    TapiError::new(
                        ErrorCode::InvalAddress,
                        format!("'{body}' is not dialable (digits, *, #, A-D, a leading +, ;)"),
                    )
                })?
            }
        } else {
            String::new()
        };
        if let Some(t) = to
            && !partial
        {
            self.check_destination(line, t)?;
        }
        self.check_call_appearance(line, from)?;
        let Some(address) = self.m.addresses.get_key_value(from).map(|(k, _)| k.clone()) else {
            return fail(ErrorCode::InvalAddress, format!("{from} is not an address"));
        };
        let caller = Party {
            address: from.to_string(),
            name: self.m.lines.get(&line).and_then(|l| l.name.clone()),
        };
        let a = self.new_call(NewCall {
            address,
            state: if to.is_some() {
                CallState::Dialing
            } else {
                CallState::Dialtone(DialtoneMode::Internal)
            },
            reason: CallReason::Direct,
            origin: CallOrigin::Outbound,
            caller,
            called: Party::new(if partial {
                partial_digits.as_str()
            } else {
                to.unwrap_or_default()
            }),
            redirecting: None,
            creator: Some(app),
            completion: None,
            forward_hops: 0,
        });
        if partial && let Some(c) = self.call_mut(a) {
            // Stays `dialing` with the digits so far; `dial` adds the rest.
            c.dialed = partial_digits;
        }
        match kind {
            LineKind::Phone => {
                if let Some(c) = self.call_mut(a) {
                    c.pending = match to {
                        Some(t) if !partial => Pending::Route(t.into(), CallReason::Direct),
                        _ => Pending::Dialtone,
                    };
                }
                self.invite_own_device(a, true);
            }
            _ => {
                if let Some(t) = to
                    && !partial
                {
                    self.route(a, t, CallReason::Direct, None);
                }
            }
        }
        Ok(a)
    }

    pub(crate) fn op_answer(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        let line = self.owned(app, call)?.line;
        self.expect_state(call, &[K::Offering, K::Accepted], "answer")?;
        match self.line_kind(line) {
            LineKind::RoutePoint => {
                self.connect_answered(call);
                Ok(())
            }
            LineKind::Phone => {
                let remote = self.m.lines.get(&line).is_some_and(|l| l.remote_answer);
                let leg = self.call(call).and_then(|c| c.leg);
                match (remote, leg) {
                    (true, Some(leg)) => {
                        self.effect(Effect::RemoteAnswer { leg });
                        Ok(())
                    }
                    _ => fail(
                        ErrorCode::OperationUnavail,
                        "this phone cannot be answered remotely; answer it on the phone",
                    ),
                }
            }
            LineKind::Trunk => fail(
                ErrorCode::OperationUnavail,
                "a trunk call is answered by the far network, not by tapir",
            ),
        }
    }

    /// The called call answered (its device, or tapir for a route point):
    /// connect it and its caller.
    pub(crate) fn connect_answered(&mut self, b: CallId) {
        self.cancel_no_answer(b);
        self.set_state(b, CallState::Connected(ConnectedMode::Active));
        for a in self.callers_of(b) {
            let st = self.state(a);
            if matches!(
                st,
                CallState::Proceeding | CallState::Ringback | CallState::Dialing
            ) || st.is_alerting()
            {
                self.set_state(a, CallState::Connected(ConnectedMode::Active));
                self.answer_inbound_leg(a);
            }
            let pa = self.party_of(a);
            let pb = self.party_of(b);
            self.set_connected(a, Some(pb));
            self.set_connected(b, Some(pa));
        }
        self.answer_inbound_leg(b);
    }

    /// Send 200 OK on a call's inbound leg if it is still unanswered.
    pub(crate) fn answer_inbound_leg(&mut self, call: CallId) {
        if let Some(leg) = self.call(call).and_then(|c| c.leg)
            && let Some(l) = self.m.legs.get_mut(&leg)
            && l.inbound
            && !l.answered
        {
            l.answered = true;
            self.effect(Effect::AnswerLeg { leg });
        }
    }

    pub(crate) fn op_accept(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.owned(app, call)?;
        self.expect_state(call, &[K::Offering], "accept")?;
        self.cancel_no_answer(call);
        self.set_state(call, CallState::Accepted);
        Ok(())
    }

    pub(crate) fn op_dial(
        &mut self,
        app: AppId,
        call: CallId,
        digits: &str,
    ) -> Result<(), TapiError> {
        let line = self.owned(app, call)?.line;
        let partial = digits.ends_with(';');
        let body = digits.trim_end_matches(';');
        let st = self.state(call);
        if st.is_connected() {
            let Some(d) = super::route::normalize(body) else {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("'{digits}' are not DTMF digits"),
                );
            };
            self.send_dtmf(call, &d);
            return Ok(());
        }
        self.expect_state(call, &[K::Dialtone, K::Dialing], "dial on")?;
        let normalized = if body.is_empty() {
            String::new()
        } else {
            super::route::normalize(body).ok_or_else(|| {
                TapiError::new(
                    ErrorCode::InvalAddress,
                    format!("'{digits}' is not dialable (digits, *, #, A-D, a leading +, ;)"),
                )
            })?
        };
        let so_far = self
            .call(call)
            .map(|c| c.dialed.clone())
            .unwrap_or_default();
        let number = format!("{so_far}{normalized}");
        if !partial {
            if number.is_empty() {
                return fail(ErrorCode::InvalAddress, "no digits to dial");
            }
            self.check_destination(line, &number)?;
        }
        if let Some(c) = self.call_mut(call) {
            c.dialed = number.clone();
            c.called = Party::new(number.clone());
        }
        self.set_state(call, CallState::Dialing);
        if !partial {
            let waiting = self
                .call(call)
                .is_some_and(|c| c.pending == Pending::Dialtone);
            if waiting {
                if let Some(c) = self.call_mut(call) {
                    c.pending = Pending::Route(number.as_str().into(), CallReason::Direct);
                }
            } else {
                self.route(call, &number, CallReason::Direct, None);
            }
        }
        Ok(())
    }

    /// Send DTMF to the other parties of a call.
    pub(crate) fn send_dtmf(&mut self, call: CallId, digits: &str) {
        let legs: Vec<_> = self
            .others_in_bridge(call)
            .into_iter()
            .filter(|o| self.call(*o).is_some_and(|oc| oc.member_of.is_none()))
            .filter_map(|o| self.call(o).and_then(|c| c.leg))
            .collect();
        for leg in legs {
            self.effect(Effect::SendDigits {
                leg,
                digits: digits.to_string(),
            });
        }
    }

    pub(crate) fn op_drop(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.owned(app, call)?;
        if self.state(call).is_idle() {
            return fail(ErrorCode::InvalCallState, format!("{call} is already idle"));
        }
        self.hang_up(call, ReleaseCause::Normal);
        Ok(())
    }

    /// End a call, whoever asked (its owner, or its device hanging up), and
    /// settle everything that depended on it.
    pub(crate) fn hang_up(&mut self, call: CallId, cause: ReleaseCause) {
        let st = self.state(call);
        if st.is_idle() {
            return;
        }
        if let Some(members) = self.call(call).and_then(|c| c.members.clone()) {
            // Every member ends with the conference: detach the consultation
            // call and end the members without collapsing the conference
            // into a two-party call on the way.
            if let Some(x) = self.call_mut(call).and_then(|c| c.consult.take()) {
                if let Some(xc) = self.call_mut(x) {
                    xc.consult_of = None;
                }
                self.hang_up(x, ReleaseCause::Normal);
            }
            for m in members {
                let remote = self.call(m).and_then(|c| c.remote);
                self.go_idle(m, ReleaseCause::Normal);
                if let Some(r) = remote {
                    self.far_end_gone(
                        r,
                        CallState::Disconnected(DisconnectMode::Normal),
                        ReleaseCause::Normal,
                    );
                }
            }
            self.go_idle(call, cause);
            return;
        }
        if self.call(call).and_then(|c| c.member_of).is_some() {
            self.drop_member(call);
            return;
        }
        let conference_bridge = self.bridge_conference(call);
        let others = self.others_in_bridge(call);
        // Detach from the call this one consulted for, so that call is given
        // back below (reconnected) rather than left on hold by `go_idle`.
        let consult_of = self.call_mut(call).and_then(|c| c.consult_of.take());
        if let Some((o, _)) = consult_of
            && let Some(oc) = self.call_mut(o)
            && oc.consult == Some(call)
        {
            oc.consult = None;
        }
        let address = self.call(call).map(|c| c.address.clone());
        let rejected = st.is_alerting();
        self.release_parked(call);
        self.go_idle(
            call,
            if rejected {
                ReleaseCause::Rejected
            } else {
                cause
            },
        );
        if let Some(conf) = conference_bridge {
            self.remote_left(conf, call);
        } else if others.len() == 1 {
            let p = others[0];
            match (rejected, address) {
                (true, Some(address)) => self.rejected_by(p, &address),
                _ => self.far_end_gone(
                    p,
                    CallState::Disconnected(DisconnectMode::Normal),
                    ReleaseCause::Normal,
                ),
            }
        } else if others.len() > 1 {
            // A mixed bridge without a conference call (intrusion): it goes on
            // while two parties remain.
            let rest = self.others_in_bridge(others[0]);
            if rest.is_empty() {
                self.far_end_gone(
                    others[0],
                    CallState::Disconnected(DisconnectMode::Normal),
                    ReleaseCause::Normal,
                );
            }
        }
        if let Some((o, purpose)) = consult_of {
            self.consult_ended(o, purpose);
        }
    }

    /// The callee rejected caller `p`'s call: forward it as if busy, or tell
    /// the caller.
    pub(crate) fn rejected_by(&mut self, p: CallId, callee_address: &std::sync::Arc<str>) {
        if !self.state(p).is_live() {
            return;
        }
        match self.forward_target(callee_address, ForwardCondition::Busy, p) {
            Some(to) => {
                self.set_state(p, CallState::Proceeding);
                self.forward_call(p, callee_address, to, CallReason::FwdBusy);
            }
            None => self.far_end_gone(
                p,
                CallState::Disconnected(DisconnectMode::Reject),
                ReleaseCause::Rejected,
            ),
        }
    }

    /// A consultation call ended without being used: give its original call back.
    pub(crate) fn consult_ended(&mut self, original: CallId, purpose: ConsultPurpose) {
        if let Some(c) = self.call_mut(original) {
            c.consult = None;
        }
        match purpose {
            ConsultPurpose::Transfer => {
                if self.state(original) == CallState::OnHoldPendTransfer {
                    self.set_state(original, CallState::Connected(ConnectedMode::Active));
                }
            }
            ConsultPurpose::Conference => {
                if self.state(original) == CallState::OnHoldPendConf {
                    self.set_state(original, CallState::Connected(ConnectedMode::Active));
                }
                self.collapse_if_needed(original);
            }
        }
    }

    pub(crate) fn op_deallocate(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        // TAPI 2.0 and later: "the sole owner of the call can deallocate its
        // handle even though the call is not in the idle state". The handle
        // goes; the physical call is unaffected and may become ownerless.
        let privilege = self.privilege(app, call)?;
        let idle = self.call(call).is_none_or(|c| c.state.is_idle());
        let line = self.call(call).map(|c| c.line);
        if let Some(c) = self.call_mut(call) {
            c.handles.retain(|(a, _)| *a != app);
        }
        let field = match privilege {
            Privilege::Owner => InfoField::NumOwnerDecr,
            Privilege::Monitor => InfoField::NumMonitors,
        };
        if !idle {
            self.info_changed(call, &[field]);
        }
        // A live route-point call that no application holds any handle to
        // could never be ended by anyone (a route point has no user): tapir
        // drops it, as lineClose drops a route-point call its sole owner
        // leaves. A phone call goes on under the phone user's control, and a
        // call a monitor still sees can be taken over with set-privilege.
        let unreachable = self.call(call).is_some_and(|c| c.handles.is_empty());
        if !idle && unreachable && line.is_some_and(|l| self.line_kind(l) == LineKind::RoutePoint) {
            self.hang_up(call, ReleaseCause::Normal);
        }
        self.maybe_free(call);
        Ok(())
    }

    pub(crate) fn op_hold(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.owned(app, call)?;
        if self.state(call) == CallState::OnHold {
            // Idempotent: one hold state, whoever (phone key or app) held it.
            return Ok(());
        }
        self.expect_state(call, &[K::Connected], "hold")?;
        self.set_state(call, CallState::OnHold);
        Ok(())
    }

    pub(crate) fn op_unhold(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.owned(app, call)?;
        if self.state(call) == CallState::Connected(ConnectedMode::Active) {
            // Idempotent: unholding a call that talks changes nothing.
            return Ok(());
        }
        self.expect_state(
            call,
            &[K::OnHold, K::OnHoldPendTransfer, K::OnHoldPendConf],
            "unhold",
        )?;
        let consult = self.call(call).and_then(|c| c.consult);
        match consult {
            Some(x) if self.state(call) != CallState::OnHold => {
                // Abandon the consultation call; its end gives this call back.
                self.hang_up(x, ReleaseCause::Normal);
                if self.state(call).is_held() {
                    self.set_state(call, CallState::Connected(ConnectedMode::Active));
                }
            }
            _ => self.set_state(call, CallState::Connected(ConnectedMode::Active)),
        }
        Ok(())
    }

    pub(crate) fn op_swap_hold(
        &mut self,
        app: AppId,
        active: CallId,
        held: CallId,
    ) -> Result<(), TapiError> {
        self.owned(app, active)?;
        self.owned(app, held)?;
        if active == held {
            return fail(ErrorCode::InvalCallHandle, "cannot swap a call with itself");
        }
        self.expect_state(active, &[K::Connected], "swap from")?;
        self.expect_state(
            held,
            &[K::OnHold, K::OnHoldPendTransfer, K::OnHoldPendConf],
            "swap to",
        )?;
        let held_state = self.state(held);
        let held_consult = self.call(held).and_then(|c| c.consult);
        match held_state {
            CallState::OnHold => {
                self.set_state(active, CallState::OnHold);
                self.set_state(held, CallState::Connected(ConnectedMode::Active));
            }
            CallState::OnHoldPendTransfer if held_consult == Some(active) => {
                // Roles swap: the held call becomes the consultation call.
                if let Some(h) = self.call_mut(held) {
                    h.consult = None;
                    h.consult_of = Some((active, ConsultPurpose::Transfer));
                }
                if let Some(a) = self.call_mut(active) {
                    a.consult_of = None;
                    a.consult = Some(held);
                }
                self.set_state(active, CallState::OnHoldPendTransfer);
                self.set_state(held, CallState::Connected(ConnectedMode::Active));
            }
            CallState::OnHoldPendConf if held_consult == Some(active) => {
                self.set_state(active, CallState::OnHold);
                self.set_state(held, CallState::Connected(ConnectedMode::Active));
            }
            _ => {
                return fail(
                    ErrorCode::InvalCallState,
                    format!("{held} is held for another call's transfer or conference"),
                );
            }
        }
        Ok(())
    }

    pub(crate) fn op_blind_transfer(
        &mut self,
        app: AppId,
        call: CallId,
        to: &str,
    ) -> Result<(), TapiError> {
        let line = self.owned(app, call)?.line;
        self.expect_state(call, &[K::Connected, K::OnHold], "transfer")?;
        self.check_destination(line, to)?;
        let Some(p) = self.peer(call) else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has no single far party to transfer"),
            );
        };
        self.transfer_party(call, p, to);
        Ok(())
    }

    /// Send `p`, the far party of `call`, to `to` as `call`'s line dials
    /// it; `call` goes idle.
    pub(crate) fn transfer_party(&mut self, call: CallId, p: CallId, to: &str) {
        let by = self.party_of(call);
        let Some(line) = self.call(call).map(|c| c.line) else {
            return;
        };
        self.go_idle(call, ReleaseCause::Normal);
        self.set_state(p, CallState::Proceeding);
        self.set_connected(p, None);
        self.route_as(p, to, CallReason::Transfer, Some(by), line);
    }

    pub(crate) fn op_setup_transfer(
        &mut self,
        app: AppId,
        call: CallId,
    ) -> Result<CallId, TapiError> {
        let c = self.owned(app, call)?;
        if c.members.is_some() {
            return fail(
                ErrorCode::InvalCallState,
                "a conference call is extended with prepare-add, not transferred",
            );
        }
        self.expect_state(call, &[K::Connected], "set up a transfer for")?;
        let x = self.new_consultation(app, call, ConsultPurpose::Transfer)?;
        self.set_state(call, CallState::OnHoldPendTransfer);
        Ok(x)
    }

    /// A new consultation call at dial tone on `call`'s address.
    pub(crate) fn new_consultation(
        &mut self,
        app: AppId,
        call: CallId,
        purpose: ConsultPurpose,
    ) -> Result<CallId, TapiError> {
        let Some((address, line)) = self.call(call).map(|c| (c.address.clone(), c.line)) else {
            return fail(ErrorCode::InvalCallHandle, format!("{call} does not exist"));
        };
        self.check_call_appearance(line, &address)?;
        let caller = self.party_of(call);
        let x = self.new_call(NewCall {
            address,
            state: CallState::Dialtone(DialtoneMode::Internal),
            reason: CallReason::Direct,
            origin: CallOrigin::Outbound,
            caller,
            called: Party::default(),
            redirecting: None,
            creator: Some(app),
            completion: None,
            forward_hops: 0,
        });
        if let Some(xc) = self.call_mut(x) {
            xc.consult_of = Some((call, purpose));
        }
        if let Some(c) = self.call_mut(call) {
            c.consult = Some(x);
        }
        if self.line_kind(line) == LineKind::Phone {
            if let Some(xc) = self.call_mut(x) {
                xc.pending = Pending::Dialtone;
            }
            self.invite_own_device(x, true);
        }
        Ok(x)
    }

    pub(crate) fn op_complete_transfer(
        &mut self,
        app: AppId,
        call: CallId,
        consult: CallId,
        mode: TransferMode,
    ) -> Result<Reply, TapiError> {
        self.owned(app, call)?;
        match self.privilege(app, consult) {
            Ok(Privilege::Owner) => {}
            Ok(Privilege::Monitor) => {
                return fail(
                    ErrorCode::NotOwner,
                    format!("this application only monitors {consult}"),
                );
            }
            Err(_) => {
                return fail(
                    ErrorCode::InvalConsultCallHandle,
                    format!("{consult} is not a call this application has a handle to"),
                );
            }
        }
        if consult == call {
            return fail(
                ErrorCode::InvalConsultCallHandle,
                "a call cannot consult itself",
            );
        }
        self.expect_state(
            call,
            &[K::OnHoldPendTransfer, K::OnHold],
            "complete a transfer of",
        )?;
        self.expect_state(
            consult,
            &[K::Connected, K::Ringback, K::Busy, K::Proceeding],
            "complete a transfer to",
        )?;
        if self.in_conference(call) || self.in_conference(consult) {
            return fail(
                ErrorCode::InvalConsultCallHandle,
                "conference calls are joined with add-to-conference",
            );
        }
        let Some(p) = self.peer(call) else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has no far party to transfer"),
            );
        };
        let q = self.peer(consult);
        if q == Some(p) || consult == p || q == Some(call) {
            return fail(
                ErrorCode::InvalConsultCallHandle,
                "both calls lead to the same party",
            );
        }
        // The consultation call may have been made for another call, and this
        // call may be waiting on another consultation: those links end here.
        if self
            .call(consult)
            .and_then(|c| c.consult_of)
            .map(|(o, _)| o)
            != Some(call)
        {
            self.unlink_consultation(consult);
        }
        if let Some(other) = self.call(call).and_then(|c| c.consult)
            && other != consult
        {
            self.unlink_consultation(other);
        }
        match mode {
            TransferMode::Transfer => {
                self.join_far_parties(call, p, consult, q);
                Ok(Reply::Done)
            }
            TransferMode::Conference => {
                let conf = self.conference_from(app, call, p, consult, q);
                Ok(Reply::ConferenceCall {
                    conference_call: conf,
                })
            }
        }
    }

    /// Transfer mode: `p` (far party of `call`) and `q` (far party of
    /// `consult`) are joined; both of this address's calls go idle.
    pub(crate) fn join_far_parties(
        &mut self,
        call: CallId,
        p: CallId,
        consult: CallId,
        q: Option<CallId>,
    ) {
        let by = self.party_of(call);
        self.go_idle(call, ReleaseCause::Normal);
        self.go_idle(consult, ReleaseCause::Normal);
        match q {
            Some(q) => {
                self.new_bridge(&[p, q], None);
                let pq = self.party_of(q);
                let pp = self.party_of(p);
                if let Some(qc) = self.call_mut(q) {
                    qc.redirecting = Some(by);
                }
                self.info_changed(q, &[InfoField::Redirecting]);
                if self.state(q).is_connected() {
                    self.set_state(p, CallState::Connected(ConnectedMode::Active));
                    self.set_connected(p, Some(pq));
                    self.set_connected(q, Some(pp));
                } else {
                    self.set_connected(p, None);
                    self.set_state(p, CallState::Ringback);
                }
            }
            None => {
                self.leave_bridge(p);
                self.set_connected(p, None);
                self.set_state(p, CallState::Busy(crate::types::BusyMode::Station));
            }
        }
    }

    pub(crate) fn op_finish(
        &mut self,
        app: AppId,
        consult: CallId,
        mode: TransferMode,
    ) -> Result<Reply, TapiError> {
        self.owned(app, consult)?;
        let Some((original, purpose)) = self.call(consult).and_then(|c| c.consult_of) else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{consult} is not a consultation call"),
            );
        };
        match (purpose, mode) {
            (ConsultPurpose::Transfer, _) => {
                self.op_complete_transfer(app, original, consult, mode)
            }
            (ConsultPurpose::Conference, TransferMode::Conference) => self
                .op_add_to_conference(app, original, consult)
                .map(|_| Reply::Done),
            (ConsultPurpose::Conference, TransferMode::Transfer) => fail(
                ErrorCode::InvalTransferMode,
                "a conference's consultation call can only be finished as a conference",
            ),
        }
    }

    pub(crate) fn op_redirect(
        &mut self,
        app: AppId,
        call: CallId,
        to: &str,
    ) -> Result<(), TapiError> {
        let line = self.owned(app, call)?.line;
        self.expect_state(call, &[K::Offering, K::Accepted], "redirect")?;
        self.check_destination(line, to)?;
        let others = self.others_in_bridge(call);
        let [a] = others[..] else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has no caller to redirect"),
            );
        };
        let Some(address) = self.call(call).map(|c| c.address.clone()) else {
            return fail(ErrorCode::InvalCallHandle, format!("{call} does not exist"));
        };
        // The caller's device sent an INVITE that is still unanswered (a
        // phone dialling, or a carrier on a trunk): it gets a 302 and places
        // the call again itself, so its own screen shows the new target.
        // Otherwise (tapir called the caller, as in make call, or the caller
        // is a route point) tapir re-targets the call.
        let a_leg = self.call(a).and_then(|c| c.leg);
        let inbound_unanswered =
            a_leg.filter(|l| self.m.legs.get(l).is_some_and(|x| x.inbound && !x.answered));
        self.go_idle(call, ReleaseCause::Moved);
        if let Some(leg) = inbound_unanswered {
            self.effect(Effect::Redirect {
                leg,
                target: to.into(),
            });
            self.m.legs.remove(&leg);
            if let Some(ac) = self.call_mut(a) {
                ac.leg = None;
            }
            self.far_end_gone(
                a,
                CallState::Disconnected(DisconnectMode::Forwarded),
                ReleaseCause::Moved,
            );
            return Ok(());
        }
        self.set_state(a, CallState::Proceeding);
        let party = Party::new(&*address);
        if let Some(ac) = self.call_mut(a) {
            ac.redirecting = Some(party.clone());
        }
        self.route_as(a, to, CallReason::Redirect, Some(party), line);
        Ok(())
    }

    pub(crate) fn op_secure_call(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.owned(app, call)?;
        if !self.state(call).is_live() {
            return fail(ErrorCode::InvalCallState, format!("{call} has ended"));
        }
        if self.call(call).is_some_and(|c| c.secure) {
            return Ok(());
        }
        if let Some(c) = self.call_mut(call) {
            c.secure = true;
        }
        self.info_changed(call, &[InfoField::Secure]);
        let mut legs: Vec<_> = self.call(call).and_then(|c| c.leg).into_iter().collect();
        for o in self.others_in_bridge(call) {
            legs.extend(self.call(o).and_then(|c| c.leg));
        }
        for leg in legs {
            self.effect(Effect::SecureMedia { leg });
        }
        Ok(())
    }

    pub(crate) fn op_handoff(
        &mut self,
        app: AppId,
        call: CallId,
        target: HandoffTarget,
    ) -> Result<(), TapiError> {
        // Any call state, idle included: lineHandoff has no invalcallstate.
        let line = self.owned(app, call)?.line;
        let target_app = match &target {
            HandoffTarget::App(name) => {
                let found = self.app_named(name).filter(|a| {
                    self.m
                        .lines
                        .get(&line)
                        .is_some_and(|l| l.opens.iter().any(|o| o.app == *a && o.owner))
                });
                found.ok_or_else(|| {
                    TapiError::new(
                        ErrorCode::TargetNotFound,
                        format!("no application named '{name}' has {line} open as owner"),
                    )
                })?
            }
            HandoffTarget::MediaMode(mode) => {
                // `unknown` is a target like any other: "the target
                // application is the one that handles calls of unknown
                // media mode" (media-probing apps hand off to it).
                let found = self.owner_app_for(line, *mode).ok_or_else(|| {
                    TapiError::new(
                        ErrorCode::TargetNotFound,
                        format!("no application has {line} open as owner for {mode:?}"),
                    )
                })?;
                if found == app {
                    return fail(
                        ErrorCode::TargetSelf,
                        "this application is itself the highest-priority owner for that media mode",
                    );
                }
                found
            }
        };
        // The call's media mode is unchanged: lineSetMediaMode changes it.
        self.grant(target_app, call, Privilege::Owner);
        Ok(())
    }

    pub(crate) fn op_set_media_mode(
        &mut self,
        app: AppId,
        call: CallId,
        mode: MediaMode,
    ) -> Result<(), TapiError> {
        // "The application must be an owner of the call. The call state of
        // hCall can be any state."
        self.owned(app, call)?;
        if self.call(call).is_some_and(|c| c.media_mode == mode) {
            return Ok(());
        }
        if let Some(c) = self.call_mut(call) {
            c.media_mode = mode;
        }
        self.info_changed(call, &[InfoField::MediaMode]);
        Ok(())
    }

    pub(crate) fn op_generate_digits(
        &mut self,
        app: AppId,
        call: CallId,
        digits: &str,
    ) -> Result<(), TapiError> {
        self.owned(app, call)?;
        self.expect_state(call, &[K::Connected], "send digits on")?;
        let d: String = digits
            .chars()
            .filter(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | ',' | '!'))
            .collect();
        if !d.is_empty() {
            self.send_dtmf(call, &d);
        }
        self.emit(app, EventBody::DigitsGenerated { call });
        Ok(())
    }

    pub(crate) fn op_set_call_privilege(
        &mut self,
        app: AppId,
        call: CallId,
        privilege: Privilege,
    ) -> Result<(), TapiError> {
        let current = self.privilege(app, call)?;
        if current == privilege {
            return Ok(());
        }
        self.check_privilege_cap(app, privilege, "raise itself to owner of a call")?;
        let (owners, live) = self
            .call(call)
            .map(|c| {
                (
                    c.handles
                        .iter()
                        .filter(|(_, p)| *p == Privilege::Owner)
                        .count(),
                    !c.state.is_idle(),
                )
            })
            .unwrap_or((0, false));
        if privilege == Privilege::Monitor && owners == 1 && live {
            return fail(
                ErrorCode::InvalCallState,
                format!(
                    "this application is the only owner of {call}; drop it before stepping down"
                ),
            );
        }
        self.grant(app, call, privilege);
        Ok(())
    }

    fn advance_to(&mut self, now: Timestamp) {
        if now > self.now {
            self.now = now;
        }
    }
}
