//! Clearing legs whose device vanished: RFC 4028 session timers, and the
//! `Reason` (RFC 3326) of the BYE tapir sends when it releases such a leg.
//!
//! Every INVITE tapir sends says `Supported: timer`, `Session-Expires` and
//! `Min-SE`; a device's INVITE (or re-INVITE, UPDATE) asking for an
//! interval below tapir's `Min-SE` gets `422` with it. A `422` to tapir's
//! own INVITE is answered once by inviting again with the interval raised
//! to the `422`'s `Min-SE` (RFC 4028 §7.4). tapir's 2xx to a
//! device's INVITE, re-INVITE or UPDATE names the interval and who
//! refreshes: the device when it supports timers and did not ask
//! otherwise, tapir when the device does not (RFC 4028 §9 lets the UAS
//! refresh then). A 2xx to tapir's own INVITE or UPDATE settles it the
//! same way; without `Session-Expires` in it (a device without timers)
//! tapir refreshes anyway.
//!
//! The refresher refreshes at half the interval: tapir with an UPDATE when
//! the device allows it, else with a re-INVITE of the unchanged session.
//! Any 2xx'd refresh, in either direction, starts the interval again. When
//! the device should refresh and does not (tapir waits the interval less
//! min(32 s, a third), RFC 4028 §10), or tapir's refresh gets 408, 481 or
//! no answer, tapir sends a BYE and the switch hears
//! `LegEvent::Lost(ReleaseCause::SessionExpired)`.

use crate::{B2bua, LegState, MediaCommand, Out};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tapir_core::{Input, LegEvent, LegId, ReleaseCause};
use tapir_sip::msg::{HeaderName, Message, Method};
use tapir_sip::transaction::TransactionKey;

/// RFC 4028's floor for `Min-SE` (seconds).
pub const MIN_SE_FLOOR: u32 = 90;

/// The longest session interval tapir agrees to when a peer's `422` asks
/// for more (seconds): a day.
pub const MAX_SESSION_INTERVAL: u32 = 86_400;

/// Session timer settings of the B2BUA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The session interval tapir asks for and grants (seconds); 0 turns
    /// session timers off.
    pub expires: u32,
    /// The shortest interval tapir accepts (seconds, at least 90).
    pub min_se: u32,
}

impl Default for SessionTimerConfig {
    /// 1800 s and 90 s, as Asterisk and Kamailio.
    fn default() -> Self {
        SessionTimerConfig {
            expires: 1800,
            min_se: MIN_SE_FLOOR,
        }
    }
}

impl SessionTimerConfig {
    fn min_se(self) -> u32 {
        self.min_se.max(MIN_SE_FLOOR)
    }

    fn expires(self) -> u32 {
        self.expires.max(self.min_se())
    }

    fn on(self) -> bool {
        self.expires > 0
    }
}

/// Who refreshes a leg's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresher {
    Tapir,
    Device,
}

/// What a device's INVITE, re-INVITE or UPDATE asked for.
#[derive(Clone, Copy, Debug, Default)]
struct Asked {
    interval: Option<u32>,
    /// `refresher=uac` (the device) or `uas` (tapir).
    refresher: Option<Refresher>,
    min_se: Option<u32>,
    supported: bool,
    allows_update: bool,
}

/// One leg's running session timer.
#[derive(Clone, Copy, Debug)]
struct Session {
    interval: u32,
    refresher: Refresher,
    /// When tapir next acts: refresh (tapir refreshes) or give up.
    due: Instant,
    /// The interval runs out (a refresh of tapir's is in flight).
    expires_at: Instant,
    use_update: bool,
    /// tapir's refresh is waiting for its answer.
    refreshing: bool,
}

/// Session timers of every leg (part of [`B2bua`]).
#[derive(Debug, Default)]
pub(crate) struct SessionTimers {
    legs: HashMap<LegId, Session>,
    due: BTreeSet<(Instant, LegId)>,
    /// A device's request waiting for tapir's 2xx.
    asked: HashMap<LegId, Asked>,
    /// Whether the device allows UPDATE (from its INVITE or 2xx).
    allows_update: HashMap<LegId, bool>,
}

impl SessionTimers {
    /// When the next leg is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Forget a leg whose dialog ended.
    pub(crate) fn forget(&mut self, leg: LegId) {
        if let Some(s) = self.legs.remove(&leg) {
            self.due.remove(&(s.due, leg));
        }
        self.asked.remove(&leg);
        self.allows_update.remove(&leg);
    }

    fn set(&mut self, leg: LegId, session: Session) {
        if let Some(old) = self.legs.insert(leg, session) {
            self.due.remove(&(old.due, leg));
        }
        self.due.insert((session.due, leg));
    }

    /// Start (or restart) the interval of a leg at `now`.
    fn start(
        &mut self,
        now: Instant,
        leg: LegId,
        interval: u32,
        refresher: Refresher,
        use_update: bool,
    ) {
        let whole = Duration::from_secs(u64::from(interval));
        let due = match refresher {
            Refresher::Tapir => now + whole / 2,
            Refresher::Device => {
                now + whole - Duration::from_secs(u64::from((interval / 3).min(32)))
            }
        };
        self.set(
            leg,
            Session {
                interval,
                refresher,
                due,
                expires_at: now + whole,
                use_update,
                refreshing: false,
            },
        );
    }

    /// The `Session-Expires` value tapir sends in a request within a leg's
    /// dialog (tapir is the UAC of it).
    fn request_value(&self, leg: LegId, cfg: SessionTimerConfig) -> String {
        match self.legs.get(&leg) {
            Some(s) => format!(
                "{};refresher={}",
                s.interval,
                match s.refresher {
                    Refresher::Tapir => "uac",
                    Refresher::Device => "uas",
                }
            ),
            None => cfg.expires().to_string(),
        }
    }
}

/// The delta-seconds and `refresher` of a `Session-Expires` value.
fn parse_session_expires(value: &str) -> Option<(u32, Option<&str>)> {
    let mut parts = value.split(';');
    let delta = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("refresher").then(|| v.trim())
    });
    Some((delta, refresher))
}

fn delta_of(message: &Message, name: &HeaderName) -> Option<u32> {
    let v = message.header(name)?;
    v.split(';').next()?.trim().parse().ok()
}

fn lists(message: &Message, name: &HeaderName, tag: &str) -> bool {
    message
        .header_values(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// What a device's request asked for (tapir is its UAS).
fn asked_by(request: &Message) -> Asked {
    let se = request
        .header(&HeaderName::SessionExpires)
        .and_then(parse_session_expires);
    Asked {
        interval: se.map(|(d, _)| d),
        refresher: se.and_then(|(_, r)| match r {
            Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Device),
            Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Tapir),
            _ => None,
        }),
        min_se: delta_of(request, &HeaderName::MinSe),
        supported: lists(request, &HeaderName::Supported, "timer")
            || lists(request, &HeaderName::Require, "timer"),
        allows_update: lists(request, &HeaderName::Allow, "UPDATE"),
    }
}

/// Add `Reason: SIP;cause=408;text="…"` to a BYE that ends a leg whose
/// device vanished (no RTP, session expired, no ACK), so the device (or a
/// proxy's log) can tell why; other causes need none.
pub(crate) fn add_reason(bye: &mut Message, cause: ReleaseCause) {
    let text = match cause {
        ReleaseCause::RtpTimeout => "RTP timeout",
        ReleaseCause::SessionExpired => "Session expired",
        ReleaseCause::NoAck => "No ACK",
        ReleaseCause::NodeLost => "Far end's node lost",
        _ => return,
    };
    bye.push_header(
        HeaderName::from_wire("Reason"),
        format!("SIP;cause=408;text=\"{text}\""),
    );
}

impl B2bua {
    /// A device's INVITE, re-INVITE or UPDATE asking for a session interval
    /// below tapir's `Min-SE`: answered `422` with it (true). Otherwise
    /// what it asked for is kept for tapir's 2xx (`leg`, when known).
    pub(crate) fn session_interval_refused(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Message,
        leg: Option<LegId>,
    ) -> bool {
        let cfg = self.cfg.session_timer;
        if !cfg.on() {
            return false;
        }
        let asked = asked_by(request);
        if asked.interval.is_some_and(|i| i < cfg.min_se()) {
            let tag = self
                .dialogs
                .get(&leg.unwrap_or(LegId(0)))
                .map(|d| d.local_tag().to_owned())
                .unwrap_or_else(|| self.unique("t"));
            let r = request
                .response_builder(422, Some("Session Interval Too Small"), Some(&tag))
                .header(HeaderName::MinSe, cfg.min_se().to_string())
                .build();
            self.respond(now, key, r);
            return true;
        }
        if let Some(leg) = leg {
            self.session_request_seen(leg, request);
        }
        false
    }

    /// Keep what a device's request (tapir its UAS) asked for, for tapir's 2xx.
    pub(crate) fn session_request_seen(&mut self, leg: LegId, request: &Message) {
        let asked = asked_by(request);
        if request.header(&HeaderName::Allow).is_some() {
            self.timers.allows_update.insert(leg, asked.allows_update);
        }
        self.timers.asked.insert(leg, asked);
    }

    /// tapir's 2xx to a device's INVITE, re-INVITE or UPDATE: name the
    /// interval and the refresher, and start the interval.
    pub(crate) fn session_answer(&mut self, now: Instant, response: &mut Message) {
        let cfg = self.cfg.session_timer;
        if !cfg.on()
            || !response
                .status_code()
                .is_some_and(|c| (200..300).contains(&c))
        {
            return;
        }
        let Some(cseq) = response.cseq().ok().flatten() else {
            return;
        };
        if cseq.method != "INVITE" && cseq.method != "UPDATE" {
            return;
        }
        // tapir answers as the UAS: the To tag is its own.
        let Some(leg) = response
            .to_header()
            .ok()
            .flatten()
            .and_then(|t| t.tag().and_then(|tag| self.by_local_tag.get(tag).copied()))
        else {
            return;
        };
        if self
            .dialogs
            .get(&leg)
            .is_none_or(|d| d.state == LegState::Ending)
        {
            return;
        }
        let asked = self.timers.asked.remove(&leg).unwrap_or_default();
        let floor = asked.min_se.unwrap_or(0).max(cfg.min_se());
        let interval = asked
            .interval
            .map_or(cfg.expires(), |i| i.min(cfg.expires()))
            .max(floor);
        let refresher = match asked.refresher {
            Some(r) => r,
            None if asked.supported => Refresher::Device,
            None => Refresher::Tapir,
        };
        let word = match refresher {
            Refresher::Device => "uac",
            Refresher::Tapir => "uas",
        };
        response.push_header(
            HeaderName::SessionExpires,
            format!("{interval};refresher={word}"),
        );
        if asked.supported {
            response.push_header(HeaderName::Require, "timer");
        }
        let update = self
            .timers
            .allows_update
            .get(&leg)
            .copied()
            .unwrap_or(false);
        tracing::debug!(%leg, interval, ?refresher, "session timer (tapir answered)");
        self.timers.start(now, leg, interval, refresher, update);
    }

    /// Headers of an INVITE or UPDATE tapir sends: `Supported: timer`,
    /// `Session-Expires` (with the leg's refresher once one is settled)
    /// and `Min-SE`.
    pub(crate) fn session_offer(&self, leg: LegId, request: &mut Message) {
        let cfg = self.cfg.session_timer;
        if !cfg.on() {
            return;
        }
        if !matches!(request.method(), Some(Method::Invite | Method::Update)) {
            return;
        }
        request.push_header(HeaderName::Supported, "timer");
        request.push_header(
            HeaderName::SessionExpires,
            self.timers.request_value(leg, cfg),
        );
        request.push_header(HeaderName::MinSe, cfg.min_se().to_string());
    }

    /// A final response to tapir's INVITE, re-INVITE or UPDATE on `leg`.
    pub(crate) fn session_response(
        &mut self,
        now: Instant,
        leg: LegId,
        method: &Method,
        response: &Message,
    ) {
        let cfg = self.cfg.session_timer;
        if !cfg.on() || !matches!(method, Method::Invite | Method::Update) {
            return;
        }
        let code = response.status_code().unwrap_or(0);
        if code < 200
            || self
                .dialogs
                .get(&leg)
                .is_none_or(|d| d.state == LegState::Ending)
        {
            return;
        }
        if response.header(&HeaderName::Allow).is_some() {
            let update = lists(response, &HeaderName::Allow, "UPDATE");
            self.timers.allows_update.insert(leg, update);
        }
        let update = self
            .timers
            .allows_update
            .get(&leg)
            .copied()
            .unwrap_or(false);
        if (200..300).contains(&code) {
            // tapir was the UAC: `uac` is tapir. Without Session-Expires
            // the device has no timers, and tapir refreshes anyway.
            let (interval, refresher) = match response
                .header(&HeaderName::SessionExpires)
                .and_then(parse_session_expires)
            {
                Some((i, Some(r))) if r.eq_ignore_ascii_case("uas") => (i, Refresher::Device),
                Some((i, _)) => (i, Refresher::Tapir),
                None => (
                    self.timers
                        .legs
                        .get(&leg)
                        .map_or(cfg.expires(), |s| s.interval),
                    Refresher::Tapir,
                ),
            };
            let interval = interval.max(MIN_SE_FLOOR);
            tracing::debug!(%leg, interval, ?refresher, "session timer (device answered)");
            self.timers.start(now, leg, interval, refresher, update);
            return;
        }
        let Some(s) = self.timers.legs.get(&leg).copied() else {
            return;
        };
        if !s.refreshing {
            return;
        }
        match code {
            408 | 481 => self.session_expired(now, leg),
            422 => {
                // The device wants a longer interval: refresh again with it.
                let interval = delta_of(response, &HeaderName::MinSe)
                    .unwrap_or(s.interval)
                    .max(s.interval);
                self.timers.set(
                    leg,
                    Session {
                        interval,
                        due: now,
                        refreshing: false,
                        ..s
                    },
                );
            }
            405 | 501 if *method == Method::Update => {
                // No UPDATE after all: refresh with a re-INVITE at once.
                self.timers.allows_update.insert(leg, false);
                self.timers.set(
                    leg,
                    Session {
                        use_update: false,
                        due: now,
                        refreshing: false,
                        ..s
                    },
                );
            }
            _ => {
                // Glare or a passing failure: try again a little later,
                // within the interval.
                let retry = (now + Duration::from_secs(10)).min(s.expires_at);
                self.timers.set(
                    leg,
                    Session {
                        due: retry,
                        refreshing: false,
                        ..s
                    },
                );
            }
        }
    }

    /// tapir's initial INVITE of `leg` got `422 Session Interval Too
    /// Small` (RFC 4028 §6): send it again, once, with `Session-Expires`
    /// and `Min-SE` raised to the 422's `Min-SE` (same Call-ID and From
    /// tag, next CSeq), instead of failing the call. False when there is
    /// nothing to retry: a second 422, no `Min-SE` in it, or one above
    /// [`MAX_SESSION_INTERVAL`].
    pub(crate) fn retry_longer_interval(
        &mut self,
        now: Instant,
        leg: LegId,
        response: &Message,
    ) -> bool {
        let cfg = self.cfg.session_timer;
        let Some(min_se) = delta_of(response, &HeaderName::MinSe) else {
            tracing::info!(%leg, "422 without Min-SE; the call fails");
            return false;
        };
        if min_se > MAX_SESSION_INTERVAL {
            tracing::info!(%leg, min_se, "422 asks for more than a day; the call fails");
            return false;
        }
        let branch = self.unique("z9hG4bK");
        let transport = self.leg_transport(leg);
        let via = self.via(transport, &branch);
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return false;
        };
        if d.interval_retried || d.state != LegState::Early {
            return false;
        }
        d.interval_retried = true;
        let asked = d
            .invite
            .header(&HeaderName::SessionExpires)
            .and_then(parse_session_expires)
            .map_or(cfg.expires(), |(delta, _)| delta);
        let mut invite = crate::resent(&d.invite, via, d.sip.local_cseq() + 1, &Method::Invite);
        invite.remove_headers(&HeaderName::SessionExpires);
        invite.remove_headers(&HeaderName::MinSe);
        invite.push_header(HeaderName::SessionExpires, asked.max(min_se).to_string());
        invite.push_header(HeaderName::MinSe, min_se.max(cfg.min_se()).to_string());
        tracing::info!(%leg, min_se, "422 to tapir's INVITE; inviting again with its Min-SE");
        self.initial_invite_again(now, leg, invite, transport)
            .is_some()
    }

    /// tapir's INVITE or UPDATE on `leg` got no answer at all.
    pub(crate) fn session_request_failed(&mut self, now: Instant, leg: LegId, method: &Method) {
        if matches!(method, Method::Invite | Method::Update)
            && self.timers.legs.get(&leg).is_some_and(|s| s.refreshing)
        {
            self.session_expired(now, leg);
        }
    }

    /// Refresh or give up on every leg that is due.
    pub(crate) fn session_timers_due(&mut self, now: Instant) {
        for _ in 0..10_000 {
            let Some(&(at, leg)) = self.timers.due.first() else {
                return;
            };
            if at > now {
                return;
            }
            self.timers.due.remove(&(at, leg));
            let Some(s) = self.timers.legs.get(&leg).copied() else {
                continue;
            };
            let confirmed = self
                .dialogs
                .get(&leg)
                .is_some_and(|d| d.state == LegState::Confirmed);
            if !confirmed {
                self.timers.legs.remove(&leg);
                continue;
            }
            if s.refresher == Refresher::Device || s.refreshing || now >= s.expires_at {
                tracing::info!(%leg, interval = s.interval, "session expired without a refresh");
                self.session_expired(now, leg);
                continue;
            }
            self.session_refresh(now, leg, s);
        }
    }

    /// tapir refreshes `leg`: UPDATE, or a re-INVITE of the same session.
    fn session_refresh(&mut self, now: Instant, leg: LegId, s: Session) {
        self.timers.set(
            leg,
            Session {
                due: s.expires_at,
                refreshing: true,
                ..s
            },
        );
        tracing::debug!(%leg, update = s.use_update, "session refresh");
        if s.use_update {
            if let Some(update) = self.in_dialog_request(leg, Method::Update) {
                self.start_client(now, leg, update);
            }
            return;
        }
        if let Some(d) = self.dialogs.get_mut(&leg) {
            if d.reinvite_pending.is_some() {
                // A re-INVITE of tapir's is under way: its 2xx refreshes.
                return;
            }
            d.queued_direction = Some(d.direction);
            d.reoffer_forced = true;
        }
        self.next_reoffer(now, leg);
    }

    /// The session of `leg` expired: BYE, and the switch hears the device
    /// is lost.
    fn session_expired(&mut self, now: Instant, leg: LegId) {
        self.timers.forget(leg);
        if self
            .dialogs
            .get(&leg)
            .is_none_or(|d| d.state != LegState::Confirmed)
        {
            return;
        }
        if let Some(mut bye) = self.in_dialog_request(leg, Method::Bye) {
            add_reason(&mut bye, ReleaseCause::SessionExpired);
            self.start_client(now, leg, bye);
        }
        self.end_dialog(leg);
        self.out.push_back(Out::Media(MediaCommand::Close { leg }));
        self.out.push_back(Out::Switch(Input::Leg {
            leg,
            event: LegEvent::Lost(ReleaseCause::SessionExpired),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expires_values_read() {
        assert_eq!(parse_session_expires("1800"), Some((1800, None)));
        assert_eq!(
            parse_session_expires("90 ; refresher = uac"),
            Some((90, Some("uac")))
        );
        assert_eq!(parse_session_expires("x;refresher=uas"), None);
    }
}
