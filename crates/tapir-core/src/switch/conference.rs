//! Conferences: setup, prepare-add, add, remove, related calls, and what
//! happens when members or remote parties leave.
//!
//! A conference is a conference call (TAPI's `hConfCall`, no far party of its
//! own) whose members are this address's calls to each remote party. All of
//! them, and the remote parties' calls, sit in one conference bridge that
//! tapir mixes. The controller's device leg belongs to the conference call
//! while the conference lasts; each member stands for one remote party (its
//! `remote`). When only one member is left (and no party is being added) the
//! conference collapses back into a plain two-party call.

use super::{ConsultPurpose, NewCall, Switch};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId};
use crate::output::{InfoField, ReleaseCause};
use crate::types::{
    CallOrigin, CallReason, CallState, CallStateKind as K, ConnectedMode, DisconnectMode, Privilege,
};

impl Switch {
    pub(crate) fn op_setup_conference(
        &mut self,
        app: AppId,
        call: CallId,
        parties: Option<usize>,
    ) -> Result<(CallId, CallId), TapiError> {
        let c = self.owned(app, call)?;
        if c.members.is_some() || c.member_of.is_some() {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} is already in a conference"),
            );
        }
        self.expect_state(call, &[K::Connected], "set up a conference from")?;
        let max = self.cfg.max_conference_parties;
        if parties.is_some_and(|n| n > max) || max < 3 {
            return fail(
                ErrorCode::ConferenceFull,
                format!("a conference holds at most {max} parties"),
            );
        }
        let Some(p) = self.peer(call) else {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has no far party"),
            );
        };
        let (address, line) = match self.call(call) {
            Some(c) => (c.address.clone(), c.line),
            None => return fail(ErrorCode::InvalCallHandle, format!("{call} does not exist")),
        };
        // The consultation call needs a free call appearance; check before
        // creating anything.
        let max_calls = self.m.lines.get(&line).map(|l| l.max_calls).unwrap_or(1);
        if self.live_calls_at(&address) + 2 > max_calls {
            return fail(
                ErrorCode::CallUnavail,
                format!("every call appearance of {address} is in use"),
            );
        }
        let conf = self.new_conference_call(app, call, CallState::OnHoldPendConf);
        self.make_member(conf, call, Some(p));
        self.new_bridge(&[conf, call, p], Some(conf));
        self.move_leg(call, conf);
        let x = self.new_consultation(app, conf, ConsultPurpose::Conference)?;
        Ok((conf, x))
    }

    /// A new conference call on `like`'s address, owned by `app`.
    fn new_conference_call(&mut self, app: AppId, like: CallId, state: CallState) -> CallId {
        let (address, caller) = match self.call(like) {
            Some(c) => (c.address.clone(), self.party_of(like)),
            None => (std::sync::Arc::from(""), Default::default()),
        };
        let conf = self.new_call(NewCall {
            address,
            state,
            reason: CallReason::Direct,
            origin: CallOrigin::Conference,
            caller,
            called: Default::default(),
            redirecting: None,
            creator: Some(app),
            completion: None,
            forward_hops: 0,
        });
        if let Some(c) = self.call_mut(conf) {
            c.members = Some(Vec::new());
        }
        conf
    }

    /// Make `call` a member of `conf` standing for `remote`.
    fn make_member(&mut self, conf: CallId, call: CallId, remote: Option<CallId>) {
        if let Some(c) = self.call_mut(call) {
            c.member_of = Some(conf);
            c.remote = remote;
        }
        if let Some(cc) = self.call_mut(conf)
            && let Some(ms) = cc.members.as_mut()
        {
            ms.push(call);
        }
        self.set_state(call, CallState::Conferenced);
        self.info_changed(conf, &[InfoField::Related]);
    }

    /// Complete a transfer as a conference: `call` (far party `p`) and
    /// `consult` (far party `q`) become members of a new conference call.
    pub(crate) fn conference_from(
        &mut self,
        app: AppId,
        call: CallId,
        p: CallId,
        consult: CallId,
        q: Option<CallId>,
    ) -> CallId {
        if let Some(c) = self.call_mut(call) {
            c.consult = None;
        }
        if let Some(x) = self.call_mut(consult) {
            x.consult_of = None;
        }
        let conf = self.new_conference_call(app, call, CallState::Connected(ConnectedMode::Active));
        self.make_member(conf, call, Some(p));
        self.make_member(conf, consult, q);
        let mut calls = vec![conf, call, consult, p];
        calls.extend(q);
        self.new_bridge(&calls, Some(conf));
        self.move_leg(call, conf);
        self.release_leg(consult, ReleaseCause::Normal);
        if self.state(p).is_connected() {
            self.set_state(p, CallState::Connected(ConnectedMode::Active));
        }
        conf
    }

    pub(crate) fn op_prepare_add(&mut self, app: AppId, conf: CallId) -> Result<CallId, TapiError> {
        let c = self.owned(app, conf)?;
        let Some(members) = c.members.as_ref() else {
            return fail(
                ErrorCode::InvalConfCallHandle,
                format!("{conf} is not a conference call"),
            );
        };
        if members.len() + 1 >= self.cfg.max_conference_parties {
            return fail(
                ErrorCode::ConferenceFull,
                format!("the conference already has {} parties", members.len() + 1),
            );
        }
        if c.consult.is_some() {
            return fail(
                ErrorCode::InvalCallState,
                format!("{conf} is already adding a party"),
            );
        }
        self.expect_state(conf, &[K::Connected], "prepare an addition to")?;
        let x = self.new_consultation(app, conf, ConsultPurpose::Conference)?;
        self.set_state(conf, CallState::OnHoldPendConf);
        Ok(x)
    }

    pub(crate) fn op_add_to_conference(
        &mut self,
        app: AppId,
        conf: CallId,
        consult: CallId,
    ) -> Result<(), TapiError> {
        let c = self.owned(app, conf)?;
        let Some(members) = c.members.as_ref() else {
            return fail(
                ErrorCode::InvalConfCallHandle,
                format!("{conf} is not a conference call"),
            );
        };
        let members = members.len();
        let line = c.line;
        let pending = c.consult;
        self.owned(app, consult)?;
        let x = self.call(consult).ok_or_else(|| {
            TapiError::new(
                ErrorCode::InvalCallHandle,
                format!("{consult} does not exist"),
            )
        })?;
        if x.members.is_some() || x.member_of.is_some() {
            return fail(
                ErrorCode::InvalCallHandle,
                format!("{consult} already belongs to a conference"),
            );
        }
        if x.line != line {
            return fail(
                ErrorCode::InvalCallHandle,
                format!("{consult} is on another line than the conference"),
            );
        }
        let conf_state = self.state(conf).kind();
        let allowed = matches!(conf_state, K::OnHoldPendConf | K::OnHold)
            || (conf_state == K::Connected && pending == Some(consult));
        if !allowed {
            return fail(
                ErrorCode::InvalCallState,
                format!(
                    "cannot add to {conf}: it is {}",
                    super::state_name(conf_state)
                ),
            );
        }
        self.expect_state(
            consult,
            &[K::Connected, K::OnHold, K::Proceeding, K::Ringback],
            "add to a conference",
        )?;
        if members + 2 > self.cfg.max_conference_parties {
            return fail(ErrorCode::ConferenceFull, "the conference is full");
        }
        let q = self.peer(consult);
        let Some(bridge) = self.call(conf).and_then(|c| c.bridge) else {
            return fail(
                ErrorCode::InvalConfCallHandle,
                format!("{conf} has no bridge"),
            );
        };
        if let Some(cc) = self.call_mut(conf)
            && cc.consult == Some(consult)
        {
            cc.consult = None;
            if let Some(xc) = self.call_mut(consult) {
                xc.consult_of = None;
            }
        } else {
            // A consultation made for another call leaves that call.
            self.unlink_consultation(consult);
        }
        self.release_leg(consult, ReleaseCause::Normal);
        self.make_member(conf, consult, q);
        self.join_bridge(consult, bridge);
        if let Some(q) = q {
            self.join_bridge(q, bridge);
        }
        self.set_state(conf, CallState::Connected(ConnectedMode::Active));
        Ok(())
    }

    pub(crate) fn op_remove_from_conference(
        &mut self,
        app: AppId,
        member: CallId,
    ) -> Result<(), TapiError> {
        let c = self.owned(app, member)?;
        if c.member_of.is_none() {
            return fail(
                ErrorCode::InvalCallState,
                format!("{member} is not a member of a conference"),
            );
        }
        self.expect_state(member, &[K::Conferenced], "remove from a conference")?;
        self.drop_member(member);
        Ok(())
    }

    /// A member leaves: it goes idle, its remote party is disconnected, and the
    /// conference collapses if only one member is left.
    pub(crate) fn drop_member(&mut self, member: CallId) {
        let Some((conf, remote)) = self
            .call(member)
            .and_then(|c| c.member_of.map(|m| (m, c.remote)))
        else {
            return;
        };
        self.go_idle(member, ReleaseCause::Normal);
        if let Some(r) = remote {
            self.far_end_gone(
                r,
                CallState::Disconnected(DisconnectMode::Normal),
                ReleaseCause::Normal,
            );
        }
        self.collapse_if_needed(conf);
    }

    /// A remote party of a conference hung up: the member that stood for it
    /// is disconnected and goes idle.
    pub(crate) fn remote_left(&mut self, conf: CallId, remote: CallId) {
        let member = self
            .call(conf)
            .and_then(|c| c.members.clone())
            .unwrap_or_default()
            .into_iter()
            .find(|m| self.call(*m).and_then(|c| c.remote) == Some(remote));
        if let Some(m) = member {
            if let Some(mc) = self.call_mut(m) {
                mc.remote = None;
            }
            self.set_state(m, CallState::Disconnected(DisconnectMode::Normal));
            self.go_idle(m, ReleaseCause::Normal);
        }
        self.collapse_if_needed(conf);
    }

    /// With one member left and no party being added, the conference reverts to
    /// a two-party call; with none, it ends.
    pub(crate) fn collapse_if_needed(&mut self, conf: CallId) {
        let Some(c) = self.call(conf) else { return };
        let Some(members) = c.members.clone() else {
            return;
        };
        if c.state.is_idle() || c.consult.is_some() {
            return;
        }
        match members.as_slice() {
            [] => self.go_idle(conf, ReleaseCause::Normal),
            [last] => {
                let last = *last;
                let remote = self.call(last).and_then(|c| c.remote);
                let conf_state = self.state(conf);
                if let Some(lc) = self.call_mut(last) {
                    lc.member_of = None;
                    lc.remote = None;
                }
                if let Some(cc) = self.call_mut(conf) {
                    cc.members = Some(Vec::new());
                }
                match remote {
                    Some(r) => {
                        self.new_bridge(&[last, r], None);
                    }
                    None => self.leave_bridge(last),
                }
                self.move_leg(conf, last);
                let back = match conf_state {
                    CallState::OnHold => CallState::OnHold,
                    _ => CallState::Connected(ConnectedMode::Active),
                };
                self.set_state(last, back);
                self.info_changed(last, &[InfoField::Related]);
                self.go_idle(conf, ReleaseCause::Normal);
                if remote.is_none() {
                    // Its party was still being called and is gone: nothing left.
                    self.far_end_gone(
                        last,
                        CallState::Disconnected(DisconnectMode::Normal),
                        ReleaseCause::Normal,
                    );
                }
            }
            _ => {}
        }
    }

    pub(crate) fn op_conf_related_calls(
        &mut self,
        app: AppId,
        call: CallId,
    ) -> Result<Vec<CallId>, TapiError> {
        self.privilege(app, call)?;
        let c = self.call(call).ok_or_else(|| {
            TapiError::new(ErrorCode::InvalCallHandle, format!("{call} does not exist"))
        })?;
        let conf = if c.members.is_some() {
            call
        } else if let Some(conf) = c.member_of {
            conf
        } else {
            return fail(
                ErrorCode::NoConference,
                format!("{call} is neither a conference call nor a member of one"),
            );
        };
        let mut calls = vec![conf];
        calls.extend(
            self.call(conf)
                .and_then(|c| c.members.clone())
                .unwrap_or_default(),
        );
        // The conference call stays first, secure or not: the app already
        // holds a call of this conference, and TAPI lists the conference
        // call first. Secure members it does not know stay hidden.
        for c in &calls {
            let known = self.privilege(app, *c).is_ok();
            let secure = self.call(*c).is_some_and(|x| x.secure);
            // Only within the app's configured rights (monitor privilege,
            // the call's line); a call outside them stays out of the list.
            if !known && (!secure || *c == conf) && self.may_watch(app, *c) {
                self.grant(app, *c, Privilege::Monitor);
            }
        }
        calls.retain(|c| self.privilege(app, *c).is_ok());
        Ok(calls)
    }
}
