//! What devices report about their legs (alerting, answered, busy, rejected,
//! unreachable, hung up, held or retrieved by the device, digits, REFER) and
//! how each maps onto the same call-control rules the applications use.

use super::{Pending, Switch};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{CallId, LegId, Timestamp};
use crate::output::{Effect, ReleaseCause};
use crate::types::{
    CallReason, CallState, ConnectedMode, DisconnectMode, ForwardCondition, SpecialInfoMode,
};

/// Something a device reported about one of its legs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// The device is ringing (180 on an outbound leg).
    Alerting,
    /// The device answered (200 on an outbound leg).
    Answered,
    /// The device is busy (486 / 600).
    Busy,
    /// The device rejected the call (603).
    Rejected,
    /// The device could not be reached (408, 480, 503, no contact).
    Unreachable,
    /// The network behind a trunk refused the call with a special
    /// information condition instead of reaching the number (a carrier's
    /// 404/410/484/485/604: customer irregularity; 503: no circuit;
    /// 500/502/504: reorder). The caller's call goes `specialinfo`.
    SpecialInfo(SpecialInfoMode),
    /// The device hung up (BYE, or CANCEL of its own INVITE).
    HungUp,
    /// The device put the call on hold itself (re-INVITE sendonly/inactive).
    Held,
    /// The device took the call off hold itself.
    Retrieved,
    /// The device sent DTMF digits in its media stream (RFC 4733); the media
    /// plane has already relayed them to the far parties.
    Digits(String),
    /// The device signalled DTMF digits out of band (SIP INFO). Handled as
    /// [`LegEvent::Digits`], and the switch also has them sent to the
    /// connected far parties as RFC 4733, which the media plane cannot do
    /// for digits it never saw.
    SignalledDigits(String),
    /// The device asked to transfer its far party to an address (REFER).
    Refer(String),
    /// The device asked to transfer its far party to the far party of its
    /// other call `replaces` (REFER with Replaces: attended transfer).
    ReferReplaces(LegId),
    /// The media plane played a prompt to the leg's device to its end (the
    /// `play` number of [`crate::PromptPlay`]).
    PromptDone(u64),
    /// The media plane heard a watched tone in what the device sends
    /// ([`crate::Effect::Detect`]).
    ToneDetected(crate::mediaops::ToneWatch),
    /// The media plane detected a media mode in what the device sends
    /// (a fax's calling tone: `g3fax`).
    MediaDetected(crate::types::MediaMode),
    /// The device vanished from an established leg (no RTP for the
    /// inactivity timeout, its session interval expired, no ACK of tapir's
    /// 2xx): the call hangs up as if its device had, and the leg is
    /// released with this cause (a BYE, and the reason in the CDR). Ignored
    /// on a leg not answered yet (a caller waiting for an answer may send
    /// no media).
    Lost(ReleaseCause),
}

impl Switch {
    /// A device's REFER, answered synchronously so the SIP layer can reply
    /// 202 or an error: blind transfer to an address, or (with Replaces)
    /// attended transfer between the device's two calls. The phone needs no
    /// privilege: it is the party itself.
    pub fn refer(&mut self, now: Timestamp, leg: LegId, event: LegEvent) -> Result<(), TapiError> {
        if now > self.now {
            self.now = now;
        }
        let result = self.refer_inner(leg, event);
        self.flush();
        result
    }

    fn refer_inner(&mut self, leg: LegId, event: LegEvent) -> Result<(), TapiError> {
        let Some(call) = self.call_of_leg(leg) else {
            return fail(ErrorCode::InvalCallHandle, format!("{leg} carries no call"));
        };
        if !matches!(
            self.state(call),
            CallState::Connected(_) | CallState::OnHold
        ) {
            return fail(
                ErrorCode::InvalCallState,
                "only an established call can be transferred",
            );
        }
        let Some(p) = self.peer(call) else {
            return fail(
                ErrorCode::InvalCallState,
                "the call has no single far party",
            );
        };
        match event {
            LegEvent::Refer(to) => {
                let line = self.call(call).map(|c| c.line).ok_or_else(|| {
                    TapiError::new(ErrorCode::InvalCallHandle, format!("{call} does not exist"))
                })?;
                self.check_destination(line, &to)?;
                self.transfer_party(call, p, &to);
                Ok(())
            }
            LegEvent::ReferReplaces(other) => {
                let Some(x) = self.call_of_leg(other) else {
                    return fail(
                        ErrorCode::InvalConsultCallHandle,
                        format!("{other} carries no call"),
                    );
                };
                let same_address =
                    self.call(x).map(|c| &c.address) == self.call(call).map(|c| &c.address);
                if x == call || x == p || !same_address || self.in_conference(x) {
                    return fail(
                        ErrorCode::InvalConsultCallHandle,
                        "the replaced dialog is not another call of the same phone",
                    );
                }
                if !matches!(
                    self.state(x),
                    CallState::Connected(_)
                        | CallState::OnHold
                        | CallState::Ringback
                        | CallState::Proceeding
                ) {
                    return fail(
                        ErrorCode::InvalCallState,
                        "the replaced call is not established",
                    );
                }
                let q = self.peer(x);
                if q == Some(p) {
                    return fail(
                        ErrorCode::InvalConsultCallHandle,
                        "both calls lead to the same party",
                    );
                }
                self.join_far_parties(call, p, x, q);
                Ok(())
            }
            _ => fail(ErrorCode::InvalParam, "not a transfer request"),
        }
    }

    /// A device's INVITE with Replaces. A ringing call is picked up (it goes
    /// `disconnected`, mode `pickup`; the new call has reason `pickup`); an
    /// established two-party call is taken over (the replaced call goes idle;
    /// the new call has reason `transfer`). Anything else — a secure call, a
    /// conference, a call that ended — is refused with 603.
    pub(crate) fn device_replaces(&mut self, leg: LegId, from: &str, replaces: LegId) {
        let refuse = |s: &mut Self, cause| {
            s.effect(crate::output::Effect::ReleaseLeg { leg, cause });
        };
        let Some(address) = self.m.addresses.get_key_value(from).map(|(k, _)| k.clone()) else {
            refuse(self, ReleaseCause::NotFound);
            return;
        };
        let Some(r) = self.call_of_leg(replaces) else {
            refuse(self, ReleaseCause::NotFound);
            return;
        };
        let state = self.state(r);
        let secure = self.call(r).is_some_and(|c| c.secure);
        if secure || self.in_conference(r) || self.m.legs.contains_key(&leg) {
            refuse(self, ReleaseCause::Rejected);
            return;
        }
        let (caller, called, r_address) = match self.call(r) {
            Some(c) => (c.caller.clone(), c.called.clone(), c.address.clone()),
            None => return,
        };
        let (other, reason) = if state.is_alerting() {
            match self.others_in_bridge(r).first().copied() {
                Some(a) => (a, CallReason::Pickup),
                None => {
                    refuse(self, ReleaseCause::Rejected);
                    return;
                }
            }
        } else if state.is_connected() {
            match self.peer(r) {
                Some(p) => (p, CallReason::Transfer),
                None => {
                    refuse(self, ReleaseCause::Rejected);
                    return;
                }
            }
        } else {
            refuse(self, ReleaseCause::Rejected);
            return;
        };
        if reason == CallReason::Pickup {
            self.set_state(r, CallState::Disconnected(DisconnectMode::Pickup));
        }
        self.go_idle(r, ReleaseCause::Moved);
        let external = self.is_external(other);
        let k = self.new_call(super::NewCall {
            address,
            state: CallState::Proceeding,
            reason,
            origin: if external {
                crate::types::CallOrigin::External
            } else {
                crate::types::CallOrigin::Internal
            },
            caller,
            called,
            redirecting: Some(crate::types::Party::new(&*r_address)),
            creator: None,
            completion: None,
            forward_hops: 0,
        });
        self.m.legs.insert(
            leg,
            super::Leg {
                call: k,
                inbound: true,
                answered: false,
                device_held: false,
                remote_asked: None,
                direction: crate::output::Direction::SendRecv,
                media: crate::output::MediaSource::Silence,
            },
        );
        if let Some(c) = self.call_mut(k) {
            c.leg = Some(leg);
        }
        self.new_bridge(&[other, k], None);
        self.join_now(k);
    }

    /// Handle one leg event (see [`LegEvent`]). Events for unknown legs are
    /// ignored: the leg may have ended while the report was on its way.
    pub(crate) fn leg_event(&mut self, leg: LegId, event: LegEvent) {
        let Some(l) = self.m.legs.get(&leg) else {
            return;
        };
        let call = l.call;
        let inbound = l.inbound;
        let answered = l.answered;
        match event {
            LegEvent::Alerting => {
                if !inbound && self.state(call).is_alerting() {
                    self.alerting(call);
                }
            }
            LegEvent::Answered => {
                if inbound || answered {
                    return;
                }
                if let Some(l) = self.m.legs.get_mut(&leg) {
                    l.answered = true;
                }
                self.touched.push(call);
                if self.state(call).is_alerting() {
                    self.callee_answered(call);
                    return;
                }
                let pending = self
                    .call_mut(call)
                    .map(|c| std::mem::replace(&mut c.pending, Pending::None))
                    .unwrap_or(Pending::None);
                match pending {
                    Pending::Route(dest, reason) => {
                        self.set_state(call, CallState::Proceeding);
                        self.route(call, &dest, reason, None);
                    }
                    Pending::Join => self.join_now(call),
                    Pending::Dialtone | Pending::None => {}
                }
            }
            LegEvent::Busy
            | LegEvent::Rejected
            | LegEvent::Unreachable
            | LegEvent::SpecialInfo(_) => {
                if answered || inbound {
                    self.device_hung_up(leg, call);
                } else {
                    self.device_refused(leg, call, event);
                }
            }
            LegEvent::HungUp => self.device_hung_up(leg, call),
            LegEvent::Lost(cause) => {
                if answered {
                    self.hang_up(call, cause);
                }
            }
            LegEvent::Held => {
                // One hold state: the phone's own hold of a call the switch
                // already holds (a remote-controlled phone obeying, or its
                // hold key) is recorded, so that its resume takes it back.
                let state = self.state(call);
                if state.is_connected() || state == CallState::OnHold {
                    if let Some(l) = self.m.legs.get_mut(&leg) {
                        l.device_held = true;
                        l.remote_asked = None;
                    }
                    if state.is_connected() {
                        self.set_state(call, CallState::OnHold);
                    }
                }
            }
            LegEvent::Retrieved => {
                let held = self.m.legs.get(&leg).is_some_and(|l| l.device_held);
                if held {
                    if let Some(l) = self.m.legs.get_mut(&leg) {
                        l.device_held = false;
                        l.remote_asked = None;
                    }
                    if self.state(call) == CallState::OnHold {
                        self.set_state(call, CallState::Connected(ConnectedMode::Active));
                    }
                }
            }
            LegEvent::Digits(digits) => self.device_digits(call, digits),
            LegEvent::SignalledDigits(digits) => {
                self.relay_signalled_digits(call, &digits);
                self.device_digits(call, digits);
            }
            LegEvent::PromptDone(play) => self.prompt_done(call, play),
            LegEvent::ToneDetected(watch) => self.tone_detected(leg, &watch),
            LegEvent::MediaDetected(mode) => self.media_detected(leg, mode),
            LegEvent::Refer(_) | LegEvent::ReferReplaces(_) => {
                // Outcome reported to nobody here; drivers use `refer`.
                let _ = self.refer_inner(leg, event);
            }
        }
    }

    /// The device of an alerting call answered: a callback rings the caller
    /// first and calls the target once the caller answers; anything else
    /// connects.
    fn callee_answered(&mut self, call: CallId) {
        let pending = self
            .call_mut(call)
            .map(|c| std::mem::replace(&mut c.pending, Pending::None))
            .unwrap_or(Pending::None);
        if let Pending::Route(dest, reason) = pending {
            self.cancel_no_answer(call);
            self.set_state(call, CallState::Proceeding);
            self.route(call, &dest, reason, None);
        } else {
            self.connect_answered(call);
        }
    }

    /// The device ended its leg by itself: no release effect, the call hangs up.
    fn device_hung_up(&mut self, leg: LegId, call: CallId) {
        self.m.legs.remove(&leg);
        if let Some(c) = self.call_mut(call) {
            c.leg = None;
        }
        self.hang_up(call, ReleaseCause::Normal);
    }

    /// An outbound leg failed before it was answered.
    fn device_refused(&mut self, leg: LegId, call: CallId, event: LegEvent) {
        self.m.legs.remove(&leg);
        if let Some(c) = self.call_mut(call) {
            c.leg = None;
        }
        let mode = match event {
            LegEvent::Busy => DisconnectMode::Busy,
            LegEvent::Rejected => DisconnectMode::Reject,
            LegEvent::SpecialInfo(SpecialInfoMode::CustIrreg) => DisconnectMode::BadAddress,
            LegEvent::SpecialInfo(SpecialInfoMode::NoCircuit) => DisconnectMode::Congestion,
            _ => DisconnectMode::Unreachable,
        };
        if !self.state(call).is_alerting() {
            // The call's own device did not take it (make call, consultation,
            // pickup, unpark): the call ends and whatever waited on it is told.
            self.set_state(call, CallState::Disconnected(mode));
            self.hang_up(call, ReleaseCause::Normal);
            return;
        }
        // The called device refused: the caller is forwarded or told.
        let Some(address) = self.call(call).map(|c| c.address.clone()) else {
            return;
        };
        if let Some(conf) = self.bridge_conference(call) {
            // A party being added to a conference refused: its member ends.
            self.set_state(call, CallState::Disconnected(mode));
            self.go_idle(call, ReleaseCause::Normal);
            self.remote_left(conf, call);
            return;
        }
        let callers = self.others_in_bridge(call);
        let elsewhere = self.call(call).is_some_and(|c| c.served_elsewhere);
        self.set_state(call, CallState::Disconnected(mode));
        self.go_idle(call, ReleaseCause::Normal);
        let Some(&a) = callers.first() else { return };
        if !self.state(a).is_live() {
            return;
        }
        if elsewhere {
            // The node serving the address has applied its forwarding
            // already: its answer is final here.
            let state = match event {
                LegEvent::Busy => CallState::Busy(crate::BusyMode::Station),
                LegEvent::SpecialInfo(m) => CallState::SpecialInfo(m),
                _ => CallState::Disconnected(mode),
            };
            self.fail_attempt(a, state);
            return;
        }
        match event {
            LegEvent::Busy => self.busy_at(a, &address, CallReason::Direct, None),
            LegEvent::Rejected => self.rejected_by(a, &address),
            // The network's answer reaches the caller as TAPI's
            // special information state; nothing forwards it.
            LegEvent::SpecialInfo(m) => self.fail_attempt(a, CallState::SpecialInfo(m)),
            _ => match self.forward_target(&address, ForwardCondition::NoAnswer, a) {
                Some(to) => {
                    self.set_state(a, CallState::Proceeding);
                    self.forward_call(a, &address, to, CallReason::FwdNoAnswer);
                }
                None => self.far_end_gone(
                    a,
                    CallState::Disconnected(DisconnectMode::Unreachable),
                    ReleaseCause::Unavailable,
                ),
            },
        }
    }

    /// Out-of-band digits of a connected call go on to the devices of the
    /// connected calls bridged with it (a conference's other parties too).
    fn relay_signalled_digits(&mut self, call: CallId, digits: &str) {
        if !self.state(call).is_connected() {
            return;
        }
        let legs: Vec<LegId> = self
            .others_in_bridge(call)
            .into_iter()
            .filter_map(|o| self.call(o))
            .filter(|c| c.state.is_connected())
            .filter_map(|c| c.leg)
            .collect();
        for leg in legs {
            self.effect(Effect::SendDigits {
                leg,
                digits: digits.to_string(),
            });
        }
    }

    /// Digits from a device: every app with a handle hears them; a call at
    /// dial tone collects them and routes when they name an address, or on `#`.
    fn device_digits(&mut self, call: CallId, digits: String) {
        self.digits_reached(call, &digits);
        self.route_point_digits(call, &digits);
        if !matches!(
            self.state(call),
            CallState::Dialtone(_) | CallState::Dialing
        ) {
            return;
        }
        let Some(n) = super::route::normalize(&digits) else {
            return;
        };
        let Some(c) = self.call_mut(call) else { return };
        c.dialed.push_str(&n);
        let number = c.dialed.clone();
        self.set_state(call, CallState::Dialing);
        if let Some(stripped) = number.strip_suffix('#') {
            let dest = stripped.to_string();
            self.route(call, &dest, CallReason::Direct, None);
        } else if self.m.addresses.contains_key(number.as_str())
            || self.cfg.park_slots.contains(&number)
        {
            self.route(call, &number, CallReason::Direct, None);
        }
    }
}
