//! TAPI's media operations on calls: `lineGatherDigits` (a [`Gathering`]
//! per call and app, its timeouts on the switch's own timers),
//! `lineGenerateTone` (a tone to the far parties' legs), and
//! `lineMonitorDigits` / `lineMonitorTones` / `lineMonitorMedia` (which
//! digits an app hears, and what the media plane detects on the far
//! parties' legs: what the call's address hears). A detected fax sets the
//! call's media mode and hands it to the line's owner for `g3fax`.
//!
//! Gatherings and monitors live in the model apart from the calls; after
//! every input ([`Switch::settle_media_ops`]) those of calls that ended or of
//! apps that lost their handle are dropped (a gathering with `cancelled`),
//! and the media plane is told what to detect on each leg, so nothing
//! outlives its call.

use super::{Switch, Timer};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId, LegId, Timestamp};
use crate::mediaops::{
    GatherReason, GatherSpec, GatherStep, Gathering, MAX_LEG_WATCHES, MonitorSpec, ToneRequest,
    ToneWatch,
};
use crate::output::{Effect, EventBody, InfoField};
use crate::types::{CallStateKind as K, MediaMode, Privilege};
use std::collections::{BTreeMap, BTreeSet};

/// A gathering in progress and its armed timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gather {
    pub gathering: Gathering,
    pub timer: Option<(Timestamp, u64)>,
}

/// What the media plane detects on one leg.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Detecting {
    pub tones: Vec<ToneWatch>,
    pub fax: bool,
}

impl Switch {
    /// The legs of a call's far parties: where tones it generates go, and
    /// whose audio (what the call's address hears) is watched for it.
    pub(crate) fn far_legs(&self, call: CallId) -> Vec<LegId> {
        self.others_in_bridge(call)
            .into_iter()
            .filter(|o| self.call(*o).is_some_and(|oc| oc.member_of.is_none()))
            .filter_map(|o| self.call(o).and_then(|c| c.leg))
            .collect()
    }

    pub(crate) fn op_gather(
        &mut self,
        app: AppId,
        call: CallId,
        spec: GatherSpec,
    ) -> Result<(), TapiError> {
        self.owned(app, call)?;
        self.expect_state(call, &[K::Connected], "gather digits on")?;
        self.end_gather(call, app, GatherReason::Cancelled);
        let (gathering, step) = Gathering::start(spec);
        let timer = match step {
            GatherStep::Wait(ms) if ms > 0 => Some(self.start_timer(ms, Timer::Gather(call, app))),
            _ => None,
        };
        self.m
            .gathers
            .insert((call, app), Gather { gathering, timer });
        Ok(())
    }

    /// End `app`'s gathering on `call`, if any, and tell it why.
    fn end_gather(&mut self, call: CallId, app: AppId, reason: GatherReason) {
        let Some(g) = self.m.gathers.remove(&(call, app)) else {
            return;
        };
        self.cancel_timer(g.timer);
        self.emit(
            app,
            EventBody::DigitsGathered {
                call,
                digits: g.gathering.digits().to_string(),
                reason,
            },
        );
    }

    /// A gathering's timer fired (ignored unless it is the one armed now).
    pub(crate) fn gather_expired(&mut self, call: CallId, app: AppId, key: (Timestamp, u64)) {
        let Some(g) = self.m.gathers.get_mut(&(call, app)) else {
            return;
        };
        if g.timer != Some(key) {
            return;
        }
        g.timer = None;
        let reason = g.gathering.timed_out();
        self.end_gather(call, app, reason);
    }

    /// Digits reached a call: its apps hear them (unless one turned digit
    /// monitoring off) and its gatherings take them.
    pub(crate) fn digits_reached(&mut self, call: CallId, digits: &str) {
        let Some(c) = self.call(call) else { return };
        let apps: Vec<AppId> = c
            .handles
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| self.m.monitors.get(&(call, *a)).is_none_or(|m| m.digits))
            .collect();
        for app in apps {
            self.emit(
                app,
                EventBody::DigitsReceived {
                    call,
                    digits: digits.to_string(),
                },
            );
        }
        if self.m.gathers.is_empty() {
            return;
        }
        let gathering: Vec<AppId> = self
            .m
            .gathers
            .keys()
            .filter(|(c, _)| *c == call)
            .map(|(_, a)| *a)
            .collect();
        for app in gathering {
            for d in digits.chars() {
                let Some(g) = self.m.gathers.get_mut(&(call, app)) else {
                    break;
                };
                match g.gathering.digit(d) {
                    GatherStep::Keep => {}
                    GatherStep::Done(reason) => self.end_gather(call, app, reason),
                    GatherStep::Wait(ms) => {
                        let old = g.timer.take();
                        self.cancel_timer(old);
                        if ms > 0 {
                            let key = self.start_timer(ms, Timer::Gather(call, app));
                            if let Some(g) = self.m.gathers.get_mut(&(call, app)) {
                                g.timer = Some(key);
                            }
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn op_generate_tone(
        &mut self,
        app: AppId,
        call: CallId,
        req: &ToneRequest,
    ) -> Result<(), TapiError> {
        self.owned(app, call)?;
        let plan = req.plan()?;
        self.expect_state(call, &[K::Connected], "generate a tone on")?;
        let legs = self.far_legs(call);
        if legs.is_empty() {
            return fail(
                ErrorCode::OperationUnavail,
                format!("{call} has no far party tapir sends media to"),
            );
        }
        for leg in legs {
            self.effect(Effect::GenerateTone {
                leg,
                plan: plan.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn op_monitor(
        &mut self,
        app: AppId,
        call: CallId,
        spec: MonitorSpec,
    ) -> Result<(), TapiError> {
        self.privilege(app, call)?;
        if !self.state(call).is_live() {
            return fail(
                ErrorCode::InvalCallState,
                format!("{call} has ended: there is no media to monitor"),
            );
        }
        // The watches of every app on this call's far legs stay bounded.
        let mut watched: BTreeSet<&ToneWatch> = spec.tones.iter().collect();
        for ((c, a), m) in &self.m.monitors {
            if *c == call && *a != app {
                watched.extend(m.tones.iter());
            }
        }
        if watched.len() > MAX_LEG_WATCHES {
            return fail(
                ErrorCode::ResourceUnavail,
                format!("{call} already has the most tones watched on it ({MAX_LEG_WATCHES})"),
            );
        }
        self.m.detect_dirty = true;
        if spec == MonitorSpec::default() {
            self.m.monitors.remove(&(call, app));
        } else {
            self.m.monitors.insert((call, app), spec);
        }
        Ok(())
    }

    /// The far party's device sent a watched tone: every app watching it on
    /// a call that hears that leg is told.
    pub(crate) fn tone_detected(&mut self, leg: LegId, watch: &ToneWatch) {
        let hits: Vec<(CallId, AppId)> = self
            .m
            .monitors
            .iter()
            .filter(|(_, m)| m.tones.contains(watch))
            .map(|(k, _)| *k)
            .filter(|(c, _)| self.far_legs(*c).contains(&leg))
            .collect();
        for (call, app) in hits {
            self.emit(
                app,
                EventBody::ToneDetected {
                    call,
                    frequencies: watch.frequencies.clone(),
                    duration_ms: watch.duration_ms,
                },
            );
        }
    }

    /// A media mode was detected in what a far party's device sends: the
    /// apps watching for it hear `media.detected`; the call takes that media
    /// mode and, as TAPI's handoff by media mode, the highest-priority app
    /// that opened the line as owner for it becomes an owner of the call.
    pub(crate) fn media_detected(&mut self, leg: LegId, mode: MediaMode) {
        let hits: Vec<(CallId, AppId)> = self
            .m
            .monitors
            .iter()
            .filter(|(_, m)| m.media_modes.contains(&mode))
            .map(|(k, _)| *k)
            .filter(|(c, _)| self.far_legs(*c).contains(&leg))
            .collect();
        let mut calls: Vec<CallId> = Vec::new();
        for (call, app) in hits {
            self.emit(
                app,
                EventBody::MediaDetected {
                    call,
                    media_mode: mode,
                },
            );
            if !calls.contains(&call) {
                calls.push(call);
            }
        }
        for call in calls {
            let Some(c) = self.call(call) else { continue };
            let line = c.line;
            if c.media_mode != mode {
                if let Some(c) = self.call_mut(call) {
                    c.media_mode = mode;
                }
                self.info_changed(call, &[InfoField::MediaMode]);
            }
            let Some(target) = self.owner_app_for(line, mode) else {
                continue;
            };
            let already = self
                .call(call)
                .is_some_and(|c| c.handles.contains(&(target, Privilege::Owner)));
            if !already {
                self.grant(target, call, Privilege::Owner);
            }
        }
    }

    /// After every input: gatherings and monitors of calls that ended
    /// (`disconnected` or `idle`), or of apps without a handle any more, go
    /// (a gathering is `cancelled`), and the media plane is told what to
    /// detect where it changed. What is detected where is worked out again
    /// only when a monitor changed or a monitored call (or one bridged with
    /// it: `touched` holds both, sorted) was touched, so calls nobody
    /// monitors cost nothing here.
    pub(crate) fn settle_media_ops(&mut self, touched: &[CallId]) {
        if self.m.gathers.is_empty() && self.m.monitors.is_empty() && self.m.detecting.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut self.m.detect_dirty)
            || self
                .m
                .monitors
                .keys()
                .any(|(c, _)| touched.binary_search(c).is_ok());
        let gone = |s: &Switch, call: CallId, app: AppId| {
            s.call(call)
                .is_none_or(|c| !c.state.is_live() || !c.handles.iter().any(|(a, _)| *a == app))
        };
        let stale: Vec<(CallId, AppId)> = self
            .m
            .gathers
            .keys()
            .filter(|(c, a)| gone(self, *c, *a))
            .copied()
            .collect();
        for (call, app) in stale {
            let handle = self
                .call(call)
                .is_some_and(|c| c.handles.iter().any(|(a, _)| *a == app));
            if handle {
                self.end_gather(call, app, GatherReason::Cancelled);
            } else if let Some(g) = self.m.gathers.remove(&(call, app)) {
                self.cancel_timer(g.timer);
            }
        }
        let stale: Vec<(CallId, AppId)> = self
            .m
            .monitors
            .keys()
            .filter(|(c, a)| gone(self, *c, *a))
            .copied()
            .collect();
        for k in stale {
            dirty = true;
            self.m.monitors.remove(&k);
        }
        if !dirty {
            // A released leg's detectors went with its media.
            let legs = &self.m.legs;
            self.m.detecting.retain(|leg, _| legs.contains_key(leg));
            return;
        }
        let mut want: BTreeMap<LegId, Detecting> = BTreeMap::new();
        for ((call, _), m) in &self.m.monitors {
            if !m.detects() {
                continue;
            }
            for leg in self.far_legs(*call) {
                let d = want.entry(leg).or_default();
                d.tones.extend(m.tones.iter().cloned());
                d.fax |= m.media_modes.contains(&MediaMode::G3Fax);
            }
        }
        for d in want.values_mut() {
            d.tones.sort();
            d.tones.dedup();
            d.tones.truncate(MAX_LEG_WATCHES);
        }
        let before = std::mem::take(&mut self.m.detecting);
        for (leg, d) in &want {
            if before.get(leg) != Some(d) {
                self.effect(Effect::Detect {
                    leg: *leg,
                    tones: d.tones.clone(),
                    fax: d.fax,
                });
            }
        }
        for leg in before.keys() {
            if !want.contains_key(leg) && self.m.legs.contains_key(leg) {
                self.effect(Effect::Detect {
                    leg: *leg,
                    tones: Vec::new(),
                    fax: false,
                });
            }
        }
        self.m.detecting = want;
    }
}
