//! Where a dialled call goes: address syntax, resolution to a line, a trunk or
//! a park slot, forwarding (unconditional, busy, no answer, with caller
//! filters), busy detection, and offering the call at its destination.

use super::{NewCall, Pending, Switch, Timer};
use crate::config::{LineConfig, Outbound};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{CallId, LineId};
use crate::output::ReleaseCause;
use crate::types::{
    BusyMode, CallOrigin, CallReason, CallState, CallerFilter, DisconnectMode, ForwardCondition,
    LineKind, OfferingMode, Party,
};
use std::sync::Arc;

/// Strip the formatting people type (spaces, dashes, dots, brackets) and check
/// that what remains is dialable: digits, `*`, `#`, `A`–`D`, and a leading `+`.
pub(crate) fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for (i, ch) in input.chars().enumerate() {
        match ch {
            ' ' | '-' | '.' | '(' | ')' => {}
            '0'..='9' | '*' | '#' => out.push(ch),
            'A'..='D' => out.push(ch),
            'a'..='d' => out.push(ch.to_ascii_uppercase()),
            '+' if i == 0 => out.push(ch),
            _ => return None,
        }
    }
    if out.is_empty() || out == "+" {
        None
    } else {
        Some(out)
    }
}

/// The prefix a line's configuration asks for, checked: only a trunk line
/// has one, and it is a non-empty dialable string in the form the switch
/// routes on (`invalparam` otherwise).
pub(crate) fn check_prefix(cfg: &LineConfig) -> Result<Option<Arc<str>>, TapiError> {
    let Some(p) = cfg.prefix.as_deref() else {
        return Ok(None);
    };
    if cfg.kind != LineKind::Trunk {
        return fail(
            ErrorCode::InvalParam,
            format!("prefix {p:?}: only a trunk line has a dialled prefix"),
        );
    }
    if normalize(p).as_deref() != Some(p) {
        return fail(
            ErrorCode::InvalParam,
            format!("prefix {p:?} is not dialable (digits, *, #, A-D and a leading +, no spaces)"),
        );
    }
    Ok(Some(Arc::from(p)))
}

/// A line's hairpin setting, checked: only a trunk line's calls can be
/// routed back out of a trunk (`invalparam` on any other line).
pub(crate) fn check_hairpin(cfg: &LineConfig) -> Result<(), TapiError> {
    if cfg.allow_hairpin && cfg.kind != LineKind::Trunk {
        return fail(
            ErrorCode::InvalParam,
            "allow_hairpin: only a trunk line's calls can be routed back out of a trunk",
        );
    }
    Ok(())
}

/// Where a dialled string leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address of this switch.
    Internal(Arc<str>),
    /// A number outside the switch, through the trunk its prefix selects
    /// (`number` is what the carrier is asked for: the prefix removed).
    External {
        trunk_address: Arc<str>,
        number: Arc<str>,
    },
    /// A park slot.
    ParkSlot(Arc<str>),
}

impl Switch {
    /// Resolve a dialled string, or `invaladdress` with the reason.
    pub(crate) fn resolve(&self, dest: &str) -> Result<Target, TapiError> {
        let canonical;
        let dest = if dest.starts_with('+') && dest.contains(' ') {
            // TAPI's canonical form (`+1 (425) 882-8080`), checked by the
            // translation crate and dialled as its full international number.
            let address = tapir_translate::CanonicalAddress::parse(dest)
                .map_err(|e| TapiError::new(ErrorCode::InvalAddress, e.to_string()))?;
            canonical = format!(
                "+{}{}{}",
                address.country_code,
                address.area_code_digits(),
                address.dialable_subscriber()
            );
            canonical.as_str()
        } else {
            dest
        };
        let Some(n) = normalize(dest) else {
            return fail(
                ErrorCode::InvalAddress,
                format!("'{dest}' is not a dialable address (digits, *, #, A-D and a leading +)"),
            );
        };
        if let Some((a, _)) = self.m.addresses.get_key_value(n.as_str()) {
            return Ok(Target::Internal(a.clone()));
        }
        if self.cfg.park_slots.contains(&n) {
            return Ok(Target::ParkSlot(Arc::from(n.as_str())));
        }
        self.external(&n)
    }

    /// The trunk an external number `n` goes out on and the number its
    /// carrier is asked for: the trunk line whose prefix is the longest
    /// prefix of `n` (the first such line on a tie), the prefix removed;
    /// when no prefix matches, the first trunk line without a prefix, `n`
    /// whole. A number that is only a prefix, or that no trunk takes, is
    /// `invaladdress`.
    fn external(&self, n: &str) -> Result<Target, TapiError> {
        let trunks = self
            .m
            .lines
            .values()
            .filter(|l| l.kind == LineKind::Trunk)
            .filter_map(|l| Some((l.addresses.first()?, l.prefix.as_deref())));
        let mut prefixed: Option<(&Arc<str>, &str)> = None;
        let mut plain: Option<&Arc<str>> = None;
        let mut prefixes: Vec<&str> = Vec::new();
        for (address, prefix) in trunks {
            prefixes.extend(prefix);
            match prefix {
                Some(p) if n.starts_with(p) => {
                    if prefixed.is_none_or(|(_, best)| p.len() > best.len()) {
                        prefixed = Some((address, p));
                    }
                }
                Some(_) => {}
                None => {
                    plain = plain.or(Some(address));
                }
            }
        }
        if let Some((trunk_address, p)) = prefixed {
            let number = &n[p.len()..];
            if number.is_empty() {
                return fail(
                    ErrorCode::InvalAddress,
                    format!(
                        "{n} is only the prefix of trunk {trunk_address}: dial a number after it"
                    ),
                );
            }
            return Ok(Target::External {
                trunk_address: trunk_address.clone(),
                number: Arc::from(number),
            });
        }
        match plain {
            Some(trunk_address) => Ok(Target::External {
                trunk_address: trunk_address.clone(),
                number: Arc::from(n),
            }),
            None if prefixes.is_empty() => fail(
                ErrorCode::InvalAddress,
                format!("{n} is not an address of this switch and no trunk leads outside"),
            ),
            None => fail(
                ErrorCode::InvalAddress,
                format!(
                    "{n} is not an address of this switch and starts with no trunk prefix ({})",
                    prefixes.join(", ")
                ),
            ),
        }
    }

    /// Whether a call comes from outside the switch.
    pub(crate) fn is_external(&self, call: CallId) -> bool {
        self.call(call)
            .is_some_and(|c| c.origin == CallOrigin::External)
    }

    /// The forwarding destination that applies to a call from `caller`
    /// arriving at `address` under `condition`: `Some(None)` is do-not-disturb.
    /// A rule for one specific caller beats an internal/external rule, which
    /// beats a rule for everybody.
    pub(crate) fn forward_target(
        &self,
        address: &str,
        condition: ForwardCondition,
        caller: CallId,
    ) -> Option<Option<Arc<str>>> {
        let a = self.m.addresses.get(address)?;
        let external = self.is_external(caller);
        let caller_address = self.party_of(caller).address;
        let mut best: Option<(u8, Option<Arc<str>>)> = None;
        for rule in &a.forwarding {
            let cond = rule.mode.condition();
            let cond_ok = cond == condition
                || (cond == ForwardCondition::BusyNoAnswer
                    && matches!(
                        condition,
                        ForwardCondition::Busy | ForwardCondition::NoAnswer
                    ));
            if !cond_ok {
                continue;
            }
            let rank = match rule.mode.callers() {
                CallerFilter::All => 1,
                CallerFilter::Internal if !external => 2,
                CallerFilter::External if external => 2,
                CallerFilter::Specific
                    if rule.caller.as_deref().and_then(normalize).as_deref()
                        == Some(caller_address.as_str()) =>
                {
                    3
                }
                _ => continue,
            };
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, rule.to.as_deref().map(Arc::from)));
            }
        }
        best.map(|(_, to)| to)
    }

    /// Whether an address takes no more calls: all its call appearances are in
    /// use, or it has a secure call (which refuses call waiting).
    pub(crate) fn address_busy(&self, address: &str) -> bool {
        let Some(a) = self.m.addresses.get(address) else {
            return false;
        };
        let max = self.m.lines.get(&a.line).map(|l| l.max_calls).unwrap_or(1);
        let mut live = 0;
        for c in self
            .calls_at_address(address)
            .filter(|c| c.state.is_live())
            .filter(|c| c.reason != CallReason::CampedOn || c.state.is_alerting())
        {
            if c.secure {
                return true;
            }
            live += 1;
        }
        live >= max
    }

    /// Send call `a` towards `dest`, dialled by `a`'s own line (a phone's
    /// or route point's own call, a carrier's call on its trunk line).
    /// Whatever happens (offered, forwarded, busy, bad address, blocked) is
    /// reflected in `a`'s state.
    pub(crate) fn route(
        &mut self,
        a: CallId,
        dest: &str,
        reason: CallReason,
        redirecting: Option<Party>,
    ) {
        let Some(by) = self.call(a).map(|c| c.line) else {
            return;
        };
        self.route_as(a, dest, reason, redirecting, by);
    }

    /// Send call `a` towards `dest` on behalf of line `by`, whose `outbound`
    /// permission (or, for a trunk line, hairpin setting) decides whether
    /// `dest` may be reached: the line that forwards, redirects or
    /// transfers `a`, or `a`'s own.
    pub(crate) fn route_as(
        &mut self,
        a: CallId,
        dest: &str,
        reason: CallReason,
        redirecting: Option<Party>,
        by: LineId,
    ) {
        let target = match self.resolve(dest) {
            Ok(t) => t,
            Err(_) => {
                self.fail_attempt(a, CallState::Disconnected(DisconnectMode::BadAddress));
                return;
            }
        };
        if self.check_outbound(by, &target).is_err() {
            self.fail_attempt(a, CallState::Disconnected(DisconnectMode::Blocked));
            return;
        }
        if let Some(c) = self.call_mut(a) {
            c.dialed.clear();
        }
        match target {
            Target::ParkSlot(slot) => {
                if !self.retrieve_parked_into(a, &slot) {
                    self.fail_attempt(a, CallState::Disconnected(DisconnectMode::BadAddress));
                }
            }
            Target::External {
                trunk_address,
                number,
            } => {
                let called = Party::new(&*number);
                self.offer(a, trunk_address, called, number, reason, redirecting);
            }
            Target::Internal(address) => {
                let hops = self.call(a).map(|c| c.forward_hops).unwrap_or(0);
                if hops > self.cfg.max_forward_hops {
                    self.fail_attempt(a, CallState::Disconnected(DisconnectMode::Unavail));
                    return;
                }
                if self.is_served_elsewhere(&address) {
                    // The node that serves the address forwards, gives busy
                    // or rings it: its rules and its calls decide.
                    let called = Party::new(&*address);
                    self.offer(a, address.clone(), called, address, reason, redirecting);
                    return;
                }
                if let Some(to) = self.forward_target(&address, ForwardCondition::Unconditional, a)
                {
                    self.forward_call(a, &address, to, CallReason::FwdUncond);
                    return;
                }
                let own = self.call(a).is_some_and(|c| c.address == address);
                if own || self.address_busy(&address) {
                    self.busy_at(a, &address, reason, redirecting);
                    return;
                }
                let called = Party::new(&*address);
                self.offer(a, address.clone(), called, address, reason, redirecting);
            }
        }
    }

    /// Forward call `a`, which was going to `from`, to `to` (or give busy for
    /// do-not-disturb).
    pub(crate) fn forward_call(
        &mut self,
        a: CallId,
        from: &Arc<str>,
        to: Option<Arc<str>>,
        reason: CallReason,
    ) {
        match to {
            None => self.fail_attempt(a, CallState::Busy(BusyMode::Station)),
            Some(to) => {
                if let Some(c) = self.call_mut(a) {
                    c.forward_hops = c.forward_hops.saturating_add(1);
                }
                let party = Party::new(&**from);
                if let Some(c) = self.call_mut(a) {
                    c.redirecting = Some(party.clone());
                }
                let by = self.line_of(from).or_else(|| self.call(a).map(|c| c.line));
                match by {
                    Some(by) => self.route_as(a, &to, reason, Some(party), by),
                    None => self.fail_attempt(a, CallState::Disconnected(DisconnectMode::Unavail)),
                }
            }
        }
    }

    /// The destination is busy: forward on busy, or give the caller busy.
    pub(crate) fn busy_at(
        &mut self,
        a: CallId,
        address: &Arc<str>,
        _reason: CallReason,
        _redirecting: Option<Party>,
    ) {
        match self.forward_target(address, ForwardCondition::Busy, a) {
            Some(to) => self.forward_call(a, address, to, CallReason::FwdBusy),
            None => self.fail_attempt(a, CallState::Busy(BusyMode::Station)),
        }
    }

    /// The attempt of call `a` failed. Busy keeps the call (the caller hears
    /// busy tone and may ask for camp-on or callback), and so does special
    /// information (the caller hears reorder until it hangs up or its app
    /// drops the call). Any other failure disconnects it; a call with a
    /// device then goes idle with its leg, a route point's call waits for
    /// its app to drop it.
    pub(crate) fn fail_attempt(&mut self, a: CallId, state: CallState) {
        if matches!(state, CallState::Busy(_) | CallState::SpecialInfo(_)) {
            if self.call(a).is_some_and(|c| c.served_elsewhere) {
                // Another node's caller: that node keeps its call, plays the
                // tone and offers camp-on or callback; this half ends and
                // says why (486 for busy).
                let cause = match state {
                    CallState::Busy(_) => ReleaseCause::Busy,
                    _ => ReleaseCause::Unavailable,
                };
                self.far_end_gone(a, state, cause);
                return;
            }
            self.set_state(a, state);
            return;
        }
        let cause = match state {
            CallState::Disconnected(DisconnectMode::BadAddress) => ReleaseCause::NotFound,
            CallState::Disconnected(DisconnectMode::Reject) => ReleaseCause::Rejected,
            CallState::Disconnected(DisconnectMode::Busy) => ReleaseCause::Busy,
            CallState::Disconnected(DisconnectMode::Normal) => ReleaseCause::Normal,
            CallState::Disconnected(DisconnectMode::Blocked) => ReleaseCause::Forbidden,
            _ => ReleaseCause::Unavailable,
        };
        self.far_end_gone(a, state, cause);
    }

    /// The far end of `call` is gone: the call shows `disconnected` with the
    /// reason; a call with a device (phone or trunk line) then goes idle as the
    /// switch ends its leg; a route point's call stays disconnected until its
    /// owner drops it.
    pub(crate) fn far_end_gone(&mut self, call: CallId, state: CallState, cause: ReleaseCause) {
        let current = self.state(call);
        if current.is_idle() {
            return;
        }
        if current.is_live() {
            self.set_state(call, state);
        }
        let Some(line) = self.call(call).map(|c| c.line) else {
            return;
        };
        if self.line_kind(line) == LineKind::RoutePoint {
            self.leave_bridge(call);
            self.cancel_no_answer(call);
        } else {
            self.go_idle(call, cause);
        }
    }

    /// Offer call `a` at `address` (a line's address, or a trunk's with
    /// `target` the external number): create the called call, its leg and the
    /// bridge between them.
    pub(crate) fn offer(
        &mut self,
        a: CallId,
        address: Arc<str>,
        called: Party,
        target: Arc<str>,
        reason: CallReason,
        redirecting: Option<Party>,
    ) -> Option<CallId> {
        let line = self.m.addresses.get(&address)?.line;
        let kind = self.line_kind(line);
        let caller = self.party_of(a);
        let origin = if self.is_external(a) {
            CallOrigin::External
        } else {
            CallOrigin::Internal
        };
        if kind == LineKind::RoutePoint
            && self
                .owner_app_for(line, crate::types::MediaMode::InteractiveVoice)
                .is_none()
        {
            // TAPI drops a call no application will own; a route point has
            // no device to ring instead.
            self.fail_attempt(a, CallState::Disconnected(DisconnectMode::Unavail));
            return None;
        }
        let hops = self.call(a).map(|c| c.forward_hops).unwrap_or(0);
        let b = self.new_call(NewCall {
            address: address.clone(),
            state: CallState::Offering(OfferingMode::Active),
            reason,
            origin,
            caller: caller.clone(),
            called,
            redirecting,
            creator: None,
            completion: None,
            forward_hops: hops,
        });
        self.new_bridge(&[a, b], None);
        if !matches!(self.state(a), CallState::Connected(_)) {
            self.set_state(a, CallState::Proceeding);
        }
        match kind {
            LineKind::RoutePoint => {
                // tapir alerts on the route point's behalf at once.
                self.alerting(b);
            }
            LineKind::Phone | LineKind::Trunk => {
                self.create_leg(b, target, caller, false);
            }
        }
        if self.call(b).is_some_and(|c| c.served_elsewhere) {
            // Its ring time and no-answer forwarding are the serving node's.
        } else if let Some(Some(_)) = self.forward_target(&address, ForwardCondition::NoAnswer, a) {
            let rings = self
                .m
                .addresses
                .get(&address)
                .map(|x| x.no_answer_rings)
                .unwrap_or(self.cfg.default_no_answer_rings);
            let key = self.start_timer(u64::from(rings) * self.cfg.ring_ms, Timer::NoAnswer(b));
            if let Some(c) = self.call_mut(b) {
                c.no_answer_timer = Some(key);
            }
        } else if self.cfg.ring_timeout_ms > 0 {
            let key = self.start_timer(self.cfg.ring_timeout_ms, Timer::NoAnswer(b));
            if let Some(c) = self.call_mut(b) {
                c.no_answer_timer = Some(key);
            }
        }
        Some(b)
    }

    /// The called call `b` is alerting: its caller hears ringback.
    pub(crate) fn alerting(&mut self, b: CallId) {
        for a in self.others_in_bridge(b) {
            if matches!(
                self.state(a),
                CallState::Proceeding | CallState::Dialing | CallState::Dialtone(_)
            ) {
                self.set_state(a, CallState::Ringback);
                if let Some(leg) = self.call(a).and_then(|c| c.leg)
                    && self
                        .m
                        .legs
                        .get(&leg)
                        .is_some_and(|l| l.inbound && !l.answered)
                {
                    self.effect(crate::output::Effect::Alert { leg });
                }
            }
        }
    }

    /// Nobody answered `b` within its ring count (forward the caller) or
    /// within the switch's ring timeout (the caller is told `noanswer`).
    pub(crate) fn no_answer_expired(&mut self, b: CallId) {
        if let Some(c) = self.call_mut(b) {
            c.no_answer_timer = None;
        }
        if !matches!(self.state(b), CallState::Offering(_)) || self.in_conference(b) {
            // A party being added to a conference rings on: forwarding it
            // would take the conference's member out of the conference.
            return;
        }
        let Some(a) = self.others_in_bridge(b).first().copied() else {
            return;
        };
        let Some(address) = self.call(b).map(|c| c.address.clone()) else {
            return;
        };
        let Some(to) = self.forward_target(&address, ForwardCondition::NoAnswer, a) else {
            // Nobody answered and nothing forwards: the ringing stops and the
            // caller hears why.
            self.set_state(b, CallState::Disconnected(DisconnectMode::NoAnswer));
            self.leave_bridge(b);
            self.go_idle(b, ReleaseCause::Normal);
            self.fail_attempt(a, CallState::Disconnected(DisconnectMode::NoAnswer));
            return;
        };
        self.set_state(b, CallState::Disconnected(DisconnectMode::Forwarded));
        self.leave_bridge(b);
        self.go_idle(b, ReleaseCause::Moved);
        self.set_state(a, CallState::Proceeding);
        self.forward_call(a, &address, to, CallReason::FwdNoAnswer);
    }

    /// A device started a call by itself (INVITE from a phone or a trunk).
    pub(crate) fn device_call(
        &mut self,
        leg: crate::ids::LegId,
        from: &str,
        external_caller: Option<String>,
        to: &str,
    ) {
        self.inbound_call(leg, from, external_caller, to, None);
    }

    /// A call between nodes arrives (see [`Input::NodeCall`]): like a
    /// phone's own call from `from`, except that the calling side (busy,
    /// call appearances) was judged on the node that serves `from`, and the
    /// call keeps the forwarding hops it made there.
    pub(crate) fn node_call(
        &mut self,
        leg: crate::ids::LegId,
        from: &str,
        external_caller: Option<String>,
        to: &str,
        hops: u8,
    ) {
        self.inbound_call(leg, from, external_caller, to, Some(hops));
    }

    /// A device's call (`hops` none) or another node's (`hops` its
    /// forwarding hops so far) from `from` to `to`.
    fn inbound_call(
        &mut self,
        leg: crate::ids::LegId,
        from: &str,
        external_caller: Option<String>,
        to: &str,
        hops: Option<u8>,
    ) {
        let line = self.line_of(from);
        let kind = line.map(|l| self.line_kind(l));
        let from_node = hops.is_some();
        let Some(kind) = kind.filter(|k| *k != LineKind::RoutePoint || from_node) else {
            self.effect(crate::output::Effect::ReleaseLeg {
                leg,
                cause: ReleaseCause::NotFound,
            });
            return;
        };
        if self.m.legs.contains_key(&leg)
            || !from_node && self.address_busy(from) && kind == LineKind::Phone
        {
            self.effect(crate::output::Effect::ReleaseLeg {
                leg,
                cause: ReleaseCause::Busy,
            });
            return;
        }
        let Some(address) = self.m.addresses.get_key_value(from).map(|(k, _)| k.clone()) else {
            return;
        };
        let (origin, caller) = match kind {
            LineKind::Trunk => (
                CallOrigin::External,
                Party::new(external_caller.unwrap_or_else(|| "anonymous".to_string())),
            ),
            _ => (CallOrigin::Outbound, Party::new(&*address)),
        };
        let a = self.new_call(NewCall {
            address,
            state: CallState::Dialing,
            reason: CallReason::Direct,
            origin,
            caller,
            called: Party::new(to),
            redirecting: None,
            creator: None,
            completion: None,
            forward_hops: hops.unwrap_or(0),
        });
        self.m.legs.insert(
            leg,
            super::Leg {
                call: a,
                inbound: true,
                answered: false,
                device_held: false,
                remote_asked: None,
                direction: crate::output::Direction::SendRecv,
                media: crate::output::MediaSource::Silence,
            },
        );
        if let Some(c) = self.call_mut(a) {
            c.leg = Some(leg);
            c.pending = Pending::None;
        }
        self.route(a, to, CallReason::Direct, None);
    }

    /// Check a destination before an operation changes anything: it
    /// resolves (`invaladdress`), and line `by` may dial it
    /// (`addressblocked`).
    pub(crate) fn check_destination(&self, by: LineId, dest: &str) -> Result<Target, TapiError> {
        let target = self.resolve(dest)?;
        self.check_outbound(by, &target)?;
        Ok(target)
    }

    /// Whether line `by` may send a call to `target`: a phone's or route
    /// point's `outbound` class (international is judged on the number as
    /// dialled, trunk prefix included, and as the carrier gets it, against
    /// the switch's location); a trunk line's calls leave on a trunk again
    /// only when it allows hairpins. `addressblocked` says why not.
    pub(crate) fn check_outbound(&self, by: LineId, target: &Target) -> Result<(), TapiError> {
        let Some(line) = self.m.lines.get(&by) else {
            return Ok(());
        };
        let who = line.addresses.first().map(|a| &**a).unwrap_or("?");
        let blocked = |why: String| fail(ErrorCode::AddressBlocked, why);
        if line.kind != LineKind::Trunk
            && let Target::External { number, .. } = target
            && self.is_emergency(number)
        {
            return Ok(());
        }
        let (trunk_address, number) = match target {
            _ if line.kind != LineKind::Trunk && line.outbound == Outbound::None => {
                return blocked(format!("line {who} may not dial (outbound = \"none\")"));
            }
            Target::Internal(_) | Target::ParkSlot(_) => return Ok(()),
            Target::External {
                trunk_address,
                number,
            } => (trunk_address, number),
        };
        if line.kind == LineKind::Trunk {
            if line.allow_hairpin {
                return Ok(());
            }
            return blocked(format!(
                "calls from trunk {who} are not routed back out of a trunk \
                 ({number} via {trunk_address}; the trunk does not allow hairpins)"
            ));
        }
        match line.outbound {
            Outbound::All => Ok(()),
            Outbound::None | Outbound::Internal => blocked(format!(
                "line {who} may dial addresses of this switch only (outbound = \"{}\"): \
                 {number} leaves on trunk {trunk_address}",
                line.outbound.as_str()
            )),
            Outbound::National => {
                let prefix = self
                    .m
                    .addresses
                    .get(trunk_address)
                    .and_then(|x| self.m.lines.get(&x.line))
                    .and_then(|l| l.prefix.as_deref())
                    .unwrap_or("");
                let location = &self.cfg.location;
                let dialled = format!("{prefix}{number}");
                if tapir_translate::is_international(number, location)
                    || tapir_translate::is_international(&dialled, location)
                {
                    blocked(format!(
                        "line {who} may not dial international numbers (outbound = \"national\"): \
                         {dialled} leaves country {}",
                        location.country_code
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether `number` (as its carrier gets it) is an emergency number,
    /// which every phone and route point may dial: the configured list, or
    /// the location's country's when none is configured.
    fn is_emergency(&self, number: &str) -> bool {
        let configured = &self.cfg.emergency_numbers;
        if configured.is_empty() {
            tapir_translate::emergency_numbers(self.cfg.location.country_code).contains(&number)
        } else {
            configured.iter().any(|n| n == number)
        }
    }

    /// The live calls of the line that owns `line`'s address, for call limits.
    pub(crate) fn live_calls_at(&self, address: &str) -> usize {
        self.calls_at_address(address)
            .filter(|c| c.state.is_live())
            .count()
    }
}
