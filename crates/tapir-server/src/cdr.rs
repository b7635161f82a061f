//! Call detail records: one per call.
//!
//! **What "one call" is.** A CDR covers one connection attempt: the core call
//! that starts it (a make call, a phone's or a trunk's INVITE, a consultation
//! call) and every core call that joins it afterwards — the called party's
//! call, forwarding and pickup targets, a parked call's retrieval, the
//! members of a conference built on it — that is, every new call that shares
//! a bridge with (or is a conference member of) a call already in the
//! record. A consultation call starts its own record (the transfer or
//! conference that joins the two shows in the operations of both). The
//! record ends when all of its calls are idle or gone, and is written then.
//!
//! It carries every party (address, call id, role), when it started, when
//! it was first answered (a call of it connected), when it ended, how it
//! ended (the first disconnect mode or busy seen, else `normal`; a call
//! whose device vanished names why tapir released it: `rtp_timeout`,
//! `session_expired` or `no_ack`), and every API operation applied to any
//! of its calls with its result.
//!
//! The tracker runs inside the switch task after every step that produced
//! output ([`Tracker::after_step`]); the HTTP layer adds operations with
//! [`Tracker::operation`].
//!
//! With a [`QualityBook`] ([`Tracker::with_quality`]) a record also carries
//! the media quality of every leg its calls had ([`LegQuality`]: the leg's
//! final RTCP figures, or its figures when the record closed if its media
//! is still being torn down), and [`Tracker::live_quality`] shows the
//! figures so far of an open record.

use crate::quality::{LegQuality, QualityBook};
use crate::wire::rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tapir_core::{CallId, CallOrigin, CallStateKind, LegId, Switch, Timestamp};
use tapir_store::NewCdr;
use utoipa::ToSchema;

/// A party of a CDR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CdrParty {
    /// Its address.
    pub address: String,
    /// The call at that address (`call-N`).
    pub call: String,
    /// `caller`, `called` or `party` (a conference call).
    pub role: String,
}

/// An operation applied to a call of the CDR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CdrOperation {
    /// When (RFC 3339).
    pub at: String,
    /// The API operation (`hold`, `blind_transfer`, …).
    pub op: String,
    /// The app that asked, if any.
    pub app: Option<String>,
    /// The call it named (`call-N`).
    pub call: String,
    /// `ok` or the TAPI error code.
    pub result: String,
}

/// A call detail record as `/v1/admin/cdr` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cdr {
    /// Its id.
    pub id: String,
    /// When its first call was created (RFC 3339).
    pub started_at: String,
    /// When a call of it was first connected.
    pub answered_at: Option<String>,
    /// When its last call ended.
    pub ended_at: String,
    /// `ended_at - started_at`.
    pub duration_ms: u64,
    /// Every party, in the order they joined.
    pub parties: Vec<CdrParty>,
    /// Where the first call came from: `outbound`, `internal`, `external`, `conference`.
    pub origin: String,
    /// How it ended: a disconnect mode (`normal`, `busy`, `noanswer`, …),
    /// or why tapir released a leg whose device vanished (`rtp_timeout`,
    /// `session_expired`, `no_ack`).
    pub end_reason: String,
    /// Operations applied to its calls, in order.
    pub operations: Vec<CdrOperation>,
    /// Media quality of each leg that had media, in the order the legs
    /// appeared (empty for records written before quality was kept, and
    /// for calls without media).
    #[serde(default)]
    pub quality: Vec<LegQuality>,
}

#[derive(Debug)]
struct Open {
    started_at: Timestamp,
    answered_at: Option<Timestamp>,
    parties: Vec<CdrParty>,
    origin: CallOrigin,
    live: Vec<CallId>,
    /// Every call the record ever had (its entries in `by_call`).
    calls: Vec<CallId>,
    end_reason: Option<String>,
    operations: Vec<CdrOperation>,
    /// Every leg its calls had, in order.
    legs: Vec<(LegId, CallId)>,
}

impl Open {
    /// `call` of this record is over; true when it was the last live one.
    fn call_ended(&mut self, call: CallId) -> bool {
        self.live.retain(|x| *x != call);
        self.live.is_empty()
    }

    /// Note that `call` of this record has `leg`.
    fn saw_leg(&mut self, leg: LegId, call: CallId) {
        if !self.legs.iter().any(|(l, _)| *l == leg) {
            self.legs.push((leg, call));
        }
    }

    /// The quality of every leg of the record with media, figures from
    /// `get`.
    fn quality(
        &self,
        mut get: impl FnMut(LegId) -> Option<tapir_media::engine::RtcpStats>,
    ) -> Vec<LegQuality> {
        self.legs
            .iter()
            .filter_map(|(leg, call)| {
                let stats = get(*leg)?;
                let call = call.to_string();
                let address = self
                    .parties
                    .iter()
                    .find(|p| p.call == call)
                    .map(|p| p.address.as_str())
                    .unwrap_or_default();
                Some(LegQuality::from_stats(address, &call, &stats))
            })
            .collect()
    }
}

/// Follows the switch's calls and closes records when their calls end.
#[derive(Debug, Default)]
pub struct Tracker {
    by_call: HashMap<CallId, u64>,
    /// Operations on calls not seen yet (a make call's new call), attached
    /// when the call shows up.
    pending: HashMap<CallId, Vec<CdrOperation>>,
    /// Calls of written records that the switch still holds (idle, an app
    /// has not deallocated them): never a record again.
    finished: HashSet<CallId>,
    /// The leg of each call in a record (effects name legs).
    legs: HashMap<LegId, CallId>,
    /// The highest call id seen.
    max_seen: u64,
    /// When every call was last looked at.
    last_full: Timestamp,
    open: HashMap<u64, Open>,
    /// Records whose last live call ended since the last close: only these
    /// are looked at, so a step costs the same with 10 or 10,000 open calls.
    ended: Vec<u64>,
    next: u64,
    /// Where legs' media figures come from (none: records without quality).
    quality: Option<Arc<QualityBook>>,
}

/// The mode of `call`'s state (`busy`, `custirreg`, …), when it has one.
fn state_mode(sw: &Switch, call: CallId) -> Option<String> {
    sw.call_state_full(call)
        .and_then(|s| s.mode())
        .map(name)
        .filter(|m| !m.is_empty())
}

fn name<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Tracker {
    /// A tracker with no calls.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// A tracker whose records carry their legs' media quality from `book`.
    pub fn with_quality(book: Arc<QualityBook>) -> Tracker {
        Tracker {
            quality: Some(book),
            ..Tracker::default()
        }
    }

    /// The media quality so far of every leg of the open record `call` is
    /// in (live figures of legs with media, final ones of legs already
    /// closed); `None` when `call` is in no open record.
    pub fn live_quality(&self, call: CallId) -> Option<Vec<LegQuality>> {
        let o = self.open.get(self.by_call.get(&call)?)?;
        Some(match &self.quality {
            Some(book) => o.quality(|leg| book.figures(leg)),
            None => Vec::new(),
        })
    }

    /// How many records are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Note an API operation on `call`. A call not in a record yet gets it
    /// when it appears, if the operation succeeded (`ok`); a failed one on
    /// an unknown call is not kept.
    pub fn operation(
        &mut self,
        call: CallId,
        op: &str,
        app: Option<&str>,
        result: &str,
        at: Timestamp,
        ok: bool,
    ) {
        let entry = CdrOperation {
            at: rfc3339(at),
            op: op.to_string(),
            app: app.map(str::to_string),
            call: call.to_string(),
            result: result.to_string(),
        };
        match self.by_call.get(&call).and_then(|k| self.open.get_mut(k)) {
            Some(o) => o.operations.push(entry),
            None if ok => self.pending.entry(call).or_default().push(entry),
            None => {}
        }
    }

    /// Look at the switch after one step: new calls join or open records,
    /// answers and ends are noted; records whose calls all ended come back,
    /// ready for the store.
    ///
    /// Cheap per step: it looks at the calls created since the last step
    /// (ids only grow) and at the calls the step's outputs named (`touched`:
    /// calls of events, legs of effects). A full pass over every call runs
    /// at most once a second (`FULL_SCAN_MS`) and catches any change that
    /// named no call.
    pub fn after_step(&mut self, sw: &Switch, now: Timestamp, touched: &Touched) -> Vec<NewCdr> {
        for id in sw.calls_after(CallId(self.max_seen)) {
            self.max_seen = self.max_seen.max(id.0);
            self.see_new(sw, id);
            self.update(sw, id, now);
        }
        let mut named: Vec<CallId> = touched.calls.clone();
        named.extend(
            touched
                .legs
                .iter()
                .filter_map(|l| self.legs.get(l).copied()),
        );
        named.sort_unstable();
        named.dedup();
        // A leg released because its device vanished names the record's
        // end, before the far party's plain disconnect of the same step.
        for (leg, cause) in &touched.vanished {
            if let Some(o) = self
                .legs
                .get(leg)
                .and_then(|c| self.by_call.get(c))
                .and_then(|k| self.open.get_mut(k))
            {
                o.end_reason = Some(cause.name().to_string());
            }
        }
        for id in named {
            if self.by_call.contains_key(&id) {
                self.update(sw, id, now);
            }
        }
        if now.0.saturating_sub(self.last_full.0) >= FULL_SCAN_MS {
            self.last_full = now;
            let calls = sw.all_calls();
            let known: Vec<CallId> = self.by_call.keys().copied().collect();
            for id in known {
                self.update(sw, id, now);
            }
            self.finished.retain(|id| calls.binary_search(id).is_ok());
            self.pending.retain(|id, _| calls.binary_search(id).is_ok());
            let by_call = &self.by_call;
            self.legs.retain(|_, c| by_call.contains_key(c));
        }
        self.close_done(now)
    }

    /// A call seen for the first time: it joins the record of a call in its
    /// bridge (or its conference), or opens a record.
    fn see_new(&mut self, sw: &Switch, id: CallId) {
        if self.by_call.contains_key(&id) || self.finished.contains(&id) {
            return;
        }
        let Some(c) = sw.call_summary(id) else {
            return;
        };
        let joined = sw
            .bridge_calls(id)
            .into_iter()
            .chain(c.member_of)
            .find_map(|other| self.by_call.get(&other).copied())
            .filter(|k| self.open.contains_key(k));
        let key = match joined {
            Some(k) => k,
            None => {
                self.next += 1;
                self.open.insert(
                    self.next,
                    Open {
                        started_at: c.created_at,
                        answered_at: None,
                        parties: Vec::new(),
                        origin: c.origin,
                        live: Vec::new(),
                        calls: Vec::new(),
                        end_reason: None,
                        operations: Vec::new(),
                        legs: Vec::new(),
                    },
                );
                self.next
            }
        };
        self.by_call.insert(id, key);
        let leg = sw.leg_of(id);
        if let Some(leg) = leg {
            self.legs.insert(leg, id);
        }
        if let Some(o) = self.open.get_mut(&key) {
            if let Some(leg) = leg {
                o.saw_leg(leg, id);
            }
            let role = match c.origin {
                CallOrigin::Outbound => "caller",
                CallOrigin::Internal | CallOrigin::External => "called",
                CallOrigin::Conference => "party",
            };
            o.parties.push(CdrParty {
                address: c.address.to_string(),
                call: id.to_string(),
                role: role.into(),
            });
            o.live.push(id);
            o.calls.push(id);
            if let Some(ops) = self.pending.remove(&id) {
                o.operations.extend(ops);
            }
        }
    }

    /// Note a known call's state: answered, busy, disconnected, ended.
    fn update(&mut self, sw: &Switch, id: CallId, now: Timestamp) {
        let Some(key) = self.by_call.get(&id).copied() else {
            return;
        };
        let Some(o) = self.open.get_mut(&key) else {
            return;
        };
        let Some(state) = sw.call_state(id) else {
            // Freed by the switch: over.
            if o.call_ended(id) {
                self.ended.push(key);
            }
            return;
        };
        if let Some(leg) = sw.leg_of(id) {
            self.legs.insert(leg, id);
            o.saw_leg(leg, id);
        }
        match state {
            CallStateKind::Connected if o.answered_at.is_none() => o.answered_at = Some(now),
            CallStateKind::Busy if o.end_reason.is_none() => {
                o.end_reason = Some("busy".into());
            }
            // The network's condition: `custirreg`, `nocircuit`, `reorder`.
            CallStateKind::SpecialInfo if o.end_reason.is_none() => {
                o.end_reason = Some(state_mode(sw, id).unwrap_or_else(|| "specialinfo".into()));
            }
            CallStateKind::Disconnected if o.end_reason.is_none() => {
                o.end_reason = Some(state_mode(sw, id).unwrap_or_else(|| "normal".into()));
            }
            CallStateKind::Idle => {
                let was_last = o.call_ended(id);
                if was_last {
                    self.ended.push(key);
                }
            }
            _ => {}
        }
    }

    /// Close the records whose calls all ended.
    fn close_done(&mut self, now: Timestamp) -> Vec<NewCdr> {
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.ended) {
            if !self.open.get(&key).is_some_and(|o| o.live.is_empty()) {
                continue;
            }
            let Some(o) = self.open.remove(&key) else {
                continue;
            };
            for id in &o.calls {
                if self.by_call.get(id) == Some(&key) {
                    self.by_call.remove(id);
                    self.finished.insert(*id);
                }
            }
            for (leg, _) in &o.legs {
                if self
                    .legs
                    .get(leg)
                    .is_some_and(|c| !self.by_call.contains_key(c))
                {
                    self.legs.remove(leg);
                }
            }
            let quality = match &self.quality {
                Some(book) => o.quality(|leg| book.take(leg)),
                None => Vec::new(),
            };
            let end_reason = o.end_reason.clone().unwrap_or_else(|| {
                if o.answered_at.is_some() {
                    "normal".into()
                } else {
                    "unanswered".into()
                }
            });
            out.push(record(o, now, end_reason, quality));
        }
        out
    }
}

/// The stored form of record `o` ending at `now` for `end_reason`.
fn record(o: Open, now: Timestamp, end_reason: String, quality: Vec<LegQuality>) -> NewCdr {
    let addresses = o.parties.iter().map(|p| p.address.clone()).collect();
    let cdr = Cdr {
        id: String::new(),
        started_at: rfc3339(o.started_at),
        answered_at: o.answered_at.map(rfc3339),
        ended_at: rfc3339(now),
        duration_ms: now.0.saturating_sub(o.started_at.0),
        parties: o.parties,
        origin: name(o.origin),
        end_reason,
        operations: o.operations,
        quality,
    };
    let mut data = serde_json::to_value(&cdr).unwrap_or_default();
    if let Some(m) = data.as_object_mut() {
        m.remove("id");
    }
    NewCdr {
        started_at: o.started_at.0,
        ended_at: now.0,
        addresses,
        data,
    }
}

impl Tracker {
    /// The records of calls answered and still in progress, each as it
    /// would be stored if this node died now (`end_reason` `node_lost`,
    /// ended now), by record key. A cluster node saves them every round,
    /// so that the survivors close them if it dies.
    pub fn in_progress(&self, now: Timestamp) -> Vec<(u64, NewCdr)> {
        self.open
            .iter()
            .filter(|(_, o)| o.answered_at.is_some())
            .map(|(key, o)| {
                let snapshot = Open {
                    started_at: o.started_at,
                    answered_at: o.answered_at,
                    parties: o.parties.clone(),
                    origin: o.origin,
                    live: Vec::new(),
                    calls: Vec::new(),
                    end_reason: None,
                    operations: o.operations.clone(),
                    legs: Vec::new(),
                };
                let reason = tapir_core::ReleaseCause::NodeLost.name().to_string();
                (*key, record(snapshot, now, reason, Vec::new()))
            })
            .collect()
    }

    /// What [`Tracker::in_progress`] would give, cheaply: each answered
    /// record's key and number of operations, sorted. A node compares it
    /// with the last save's before building the records again.
    pub fn in_progress_shape(&self) -> Vec<(u64, usize)> {
        let mut shape: Vec<(u64, usize)> = self
            .open
            .iter()
            .filter(|(_, o)| o.answered_at.is_some())
            .map(|(key, o)| (*key, o.operations.len()))
            .collect();
        shape.sort_unstable();
        shape
    }
}

/// What one switch step's outputs named (collected by the switch task while
/// it hands the outputs out).
#[derive(Debug, Default, Clone)]
pub struct Touched {
    /// Calls named by events (and by new legs).
    pub calls: Vec<CallId>,
    /// Legs named by effects.
    pub legs: Vec<LegId>,
    /// Legs released because their device vanished, and why.
    pub vanished: Vec<(LegId, tapir_core::ReleaseCause)>,
}

impl Touched {
    /// Note what one output names.
    pub fn note(&mut self, out: &tapir_core::Output) {
        use tapir_core::{Effect, EventBody, Output};
        match out {
            Output::Event(ev) => match &ev.body {
                EventBody::CallNew { call, .. }
                | EventBody::CallState { call, .. }
                | EventBody::CallInfo { call, .. }
                | EventBody::Parked { call, .. }
                | EventBody::DigitsReceived { call, .. }
                | EventBody::DigitsGenerated { call } => self.calls.push(*call),
                EventBody::Unparked { call, by, .. } => {
                    self.calls.push(*call);
                    self.calls.extend(*by);
                }
                EventBody::CompletionDone { call, .. } => self.calls.extend(*call),
                // Others name no call (replies, lines, forwarding); the full
                // pass covers anything new.
                #[allow(unreachable_patterns)]
                _ => {}
            },
            Output::Effect(e) => match e {
                Effect::CreateLeg { leg, call, .. } => {
                    self.calls.push(*call);
                    self.legs.push(*leg);
                }
                Effect::Alert { leg }
                | Effect::AnswerLeg { leg }
                | Effect::RemoteAnswer { leg }
                | Effect::Reoffer { leg, .. }
                | Effect::Media { leg, .. }
                | Effect::Redirect { leg, .. }
                | Effect::SendDigits { leg, .. }
                | Effect::SecureMedia { leg } => self.legs.push(*leg),
                Effect::ReleaseLeg { leg, cause } => {
                    self.legs.push(*leg);
                    if cause.is_vanished() {
                        self.vanished.push((*leg, *cause));
                    }
                }
                #[allow(unreachable_patterns)]
                _ => {}
            },
            Output::Timeout(_) => {}
        }
    }

    /// Nothing named.
    pub fn clear(&mut self) {
        self.calls.clear();
        self.legs.clear();
        self.vanished.clear();
    }
}

/// How often the tracker looks at every call (milliseconds).
const FULL_SCAN_MS: u64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_core::TypedOps;
    use tapir_core::sim::Sim;
    use tapir_core::{AppConfig, Output, Privilege};

    /// What the sim's last steps named, as the switch task would collect it.
    fn touched(sim: &mut Sim) -> Touched {
        let mut t = Touched::default();
        for e in &sim.events {
            t.note(&Output::Event(e.clone()));
        }
        for e in &sim.effects {
            t.note(&Output::Effect(e.clone()));
        }
        sim.clear();
        t
    }

    #[test]
    fn a_two_party_call_is_one_record_with_its_operations() {
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
        let mut t = Tracker::new();
        let call = sim.make_call(app, "1001", Some("1002")).unwrap();
        sim.run();
        assert!(
            {
                let tc = touched(&mut sim);
                t.after_step(&sim.switch, sim.now, &tc)
            }
            .is_empty()
        );
        sim.phone("1002").answer();
        sim.run();
        assert!(
            {
                let tc = touched(&mut sim);
                t.after_step(&sim.switch, sim.now, &tc)
            }
            .is_empty()
        );
        assert_eq!(t.open_count(), 1, "caller and called share one record");
        t.operation(call, "hold", Some("crm"), "ok", sim.now, true);
        sim.advance(1500);
        sim.phone("1002").hang_up();
        sim.run();
        for c in sim.switch.all_calls() {
            let _ = sim.switch.drop_call(sim.now, app, c);
        }
        sim.run();
        let out = {
            let tc = touched(&mut sim);
            t.after_step(&sim.switch, sim.now, &tc)
        };
        assert_eq!(out.len(), 1, "{out:?}");
        let d = &out[0].data;
        assert_eq!(d["parties"][0]["address"], "1001");
        assert_eq!(d["parties"][0]["role"], "caller");
        assert_eq!(d["parties"][1]["address"], "1002");
        assert_eq!(d["parties"][1]["role"], "called");
        assert_eq!(d["operations"][0]["op"], "hold");
        assert!(d["answered_at"].is_string());
        assert!(d["duration_ms"].as_u64().unwrap() >= 1500);
        let mut parties = out[0].addresses.clone();
        parties.sort();
        assert_eq!(parties, ["1001", "1002"]);
        assert_eq!(t.open_count(), 0);
        // The idle calls the app still holds make no second record; once
        // deallocated they are forgotten.
        assert!(!sim.switch.all_calls().is_empty());
        assert!(
            {
                let tc = touched(&mut sim);
                t.after_step(&sim.switch, sim.now, &tc)
            }
            .is_empty()
        );
        assert!(
            {
                let tc = touched(&mut sim);
                t.after_step(&sim.switch, sim.now, &tc)
            }
            .is_empty()
        );
        for c in sim.switch.all_calls() {
            let _ = sim.switch.deallocate_call(sim.now, app, c);
        }
        sim.run();
        // Forgotten at the next full pass.
        sim.advance(FULL_SCAN_MS);
        assert!(
            {
                let tc = touched(&mut sim);
                t.after_step(&sim.switch, sim.now, &tc)
            }
            .is_empty()
        );
        assert!(t.finished.is_empty());
        // A separate call is a separate record.
        sim.make_call(app, "1003", Some("1001")).unwrap();
        sim.run();
        {
            let tc = touched(&mut sim);
            t.after_step(&sim.switch, sim.now, &tc)
        };
        assert_eq!(t.open_count(), 1);
    }

    #[test]
    fn a_call_whose_device_vanished_names_the_reason() {
        for cause in [
            tapir_core::ReleaseCause::RtpTimeout,
            tapir_core::ReleaseCause::SessionExpired,
            tapir_core::ReleaseCause::NoAck,
        ] {
            let mut sim = Sim::new();
            sim.add_phone("1001");
            sim.add_phone("1002");
            let mut t = Tracker::new();
            let step = |sim: &mut Sim, t: &mut Tracker| {
                let tc = touched(sim);
                t.after_step(&sim.switch, sim.now, &tc)
            };
            sim.phone("1001").dial("1002");
            sim.run();
            assert!(step(&mut sim, &mut t).is_empty());
            sim.phone("1002").answer();
            sim.run();
            assert!(step(&mut sim, &mut t).is_empty());
            assert_eq!(sim.calls_at("1002").len(), 1);
            // 1002 vanishes: tapir releases its leg with the cause.
            sim.phone("1002").report(tapir_core::LegEvent::Lost(cause));
            sim.run();
            assert!(sim.effects.iter().any(|e| matches!(
                e,
                tapir_core::Effect::ReleaseLeg { cause: c, .. } if *c == cause
            )));
            let out = step(&mut sim, &mut t);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0].data["end_reason"], cause.name());
        }
    }

    #[test]
    fn calls_in_progress_are_given_as_a_dead_node_would_leave_them() {
        let mut sim = Sim::new();
        sim.add_phone("1001");
        sim.add_phone("1002");
        sim.add_phone("1003");
        let mut t = Tracker::new();
        let step = |sim: &mut Sim, t: &mut Tracker| {
            let tc = touched(sim);
            t.after_step(&sim.switch, sim.now, &tc)
        };
        sim.phone("1001").dial("1002");
        sim.run();
        step(&mut sim, &mut t);
        // Ringing only: no record to keep yet.
        assert!(t.in_progress(sim.now).is_empty());
        sim.phone("1002").answer();
        sim.run();
        step(&mut sim, &mut t);
        sim.phone("1003").dial("1001");
        sim.run();
        step(&mut sim, &mut t);
        let open = t.in_progress(Timestamp(sim.now.0 + 5_000));
        assert_eq!(open.len(), 1, "{open:?}");
        let (_, r) = &open[0];
        assert_eq!(r.data["end_reason"], "node_lost");
        assert_eq!(r.addresses, vec!["1001".to_string(), "1002".to_string()]);
        assert!(!r.data["answered_at"].is_null());
        assert_eq!(r.data["duration_ms"], 5_000 + (sim.now.0 - r.started_at));
        // Nothing was closed by looking.
        assert_eq!(t.open_count(), 2);
    }

    #[test]
    fn a_device_lost_before_the_answer_changes_nothing() {
        let mut sim = Sim::new();
        sim.add_phone("1001");
        sim.add_phone("1002");
        // The caller's leg is not answered yet (1002 rings): a caller may
        // send no media while it waits.
        sim.phone("1001").dial("1002");
        sim.run();
        sim.clear();
        sim.phone("1001").report(tapir_core::LegEvent::Lost(
            tapir_core::ReleaseCause::RtpTimeout,
        ));
        sim.run();
        assert!(sim.effects.is_empty(), "{:?}", sim.effects);
        assert_eq!(sim.calls_at("1001").len(), 1);
    }

    fn figures(received: u32, lost: i64) -> tapir_media::engine::RtcpStats {
        tapir_media::engine::RtcpStats {
            ssrc: 7,
            packets_sent: 0,
            reports_sent: 0,
            reports_received: 0,
            peer_ssrc: Some(8),
            highest_seq: 0,
            packets_received: received,
            lost,
            jitter: 16,
            peer_report: None,
            round_trip: None,
            mux: false,
        }
    }

    #[test]
    fn a_record_carries_the_quality_of_each_leg_it_had() {
        let mut sim = Sim::new();
        sim.add_phone("1001");
        sim.add_phone("1002");
        let app = sim.switch.register_app(AppConfig::named("crm"));
        for a in ["1001", "1002"] {
            let l = sim.switch.line_of(a).unwrap();
            sim.switch
                .open_line(app, l, &[Privilege::Owner], &[])
                .unwrap();
        }
        let book = Arc::new(QualityBook::new());
        let mut t = Tracker::with_quality(book.clone());
        let step = |sim: &mut Sim, t: &mut Tracker| {
            let tc = touched(sim);
            t.after_step(&sim.switch, sim.now, &tc)
        };
        let caller = sim.make_call(app, "1001", Some("1002")).unwrap();
        sim.run();
        assert!(step(&mut sim, &mut t).is_empty());
        sim.phone("1002").answer();
        sim.run();
        assert!(step(&mut sim, &mut t).is_empty());
        let calls = sim.switch.all_calls();
        let called = *calls.iter().find(|c| **c != caller).unwrap();
        let caller_leg = sim.switch.leg_of(caller).unwrap();
        let called_leg = sim.switch.leg_of(called).unwrap();
        // No engine: live figures are those of closed legs only.
        assert_eq!(t.live_quality(caller), Some(Vec::new()));
        assert_eq!(t.live_quality(CallId(999)), None);
        // The called phone's media closed first (it hung up); its final
        // figures wait in the book. The caller's leg has none (no media).
        book.closed(called_leg, figures(95, 5));
        let live = t.live_quality(caller).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(
            (live[0].address.as_str(), live[0].call.clone()),
            ("1002", called.to_string())
        );
        sim.phone("1002").hang_up();
        sim.run();
        for c in sim.switch.all_calls() {
            let _ = sim.switch.drop_call(sim.now, app, c);
        }
        sim.run();
        let out = step(&mut sim, &mut t);
        assert_eq!(out.len(), 1);
        let q = &out[0].data["quality"];
        assert_eq!(q.as_array().unwrap().len(), 1, "{q}");
        assert_eq!(q[0]["address"], "1002");
        assert_eq!(q[0]["packets_received"], 95);
        assert_eq!(q[0]["packets_lost"], 5);
        assert_eq!(q[0]["loss_percent"], 5.0);
        assert_eq!(q[0]["jitter_ms"], 2.0);
        assert!(q[0]["round_trip_ms"].is_null());
        assert_eq!(book.kept(), 0, "the record took the figures");
        assert!(book.figures(caller_leg).is_none());
        // A stored record without quality still reads (older records).
        let mut old = out[0].data.clone();
        old.as_object_mut().unwrap().remove("quality");
        old["id"] = "1".into();
        let cdr: Cdr = serde_json::from_value(old).unwrap();
        assert!(cdr.quality.is_empty());
    }
}
