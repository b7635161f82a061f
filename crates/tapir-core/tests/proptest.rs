//! Property test of the switch: random sequences of app operations (from
//! three apps with different privileges) and device reports (answer, hang up,
//! hold, digits, REFER, busy/reject/unreachable phones, time passing), route
//! points used as an IVR (prompts played and stopped, the media plane's end
//! reports, the caller's digit, transfer on), TAPI's media operations
//! (gathering, tones, monitors, the media plane's tone and fax reports),
//! with the switch's invariants checked after every step:
//!
//! - the switch's own consistency check (one state per call, bridges and
//!   calls agree, conferences list exactly their members, legs point back);
//! - every request gets exactly one reply, and a rejected request leaves the
//!   switch unchanged;
//! - no app hears of a call before it got `call.new` for it, or after it gave
//!   the handle up; each app's sequence numbers grow by exactly one;
//! - no event follows `idle` for a call; the last state an app heard is the
//!   call's real state;
//! - once every party hangs up and time passes, nothing is left: no bridge,
//!   leg, park slot, completion request or timer, and every call is idle.
//!
//! CI runs it with `PROPTEST_CASES=10000` from a fixed seed;
//! `TAPIR_PROPTEST_RANDOM=1` draws new cases.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tapir_core::sim::{Behaviour, Sim};
use tapir_core::*;

const PHONES: [&str; 5] = ["1001", "1002", "1003", "1004", "1005"];
/// Prompt names, the last one malformed.
const PROMPTS: [&str; 3] = ["beep", "welcome", "../etc"];
const DESTS: [&str; 10] = [
    "1001", "1002", "1003", "1004", "1005", "2001", "7001", "5551234", "*9", "x!",
];

#[derive(Clone, Debug)]
enum Step {
    Cmd(usize, Cmd),
    Answer(usize),
    HangUp(usize),
    HoldByPhone(usize),
    RetrieveByPhone(usize),
    Digits(usize, String),
    PhoneDials(usize, usize),
    Refer(usize, usize),
    ReferReplaces(usize),
    Behave(usize, Behaviour),
    Replaces(usize, usize),
    Flow(usize, u8, usize, usize, bool),
    PromptDone(usize, bool),
    Ivr(usize, usize, usize, bool, bool),
    Detected(usize, bool),
    Advance(u64),
}

#[derive(Clone, Debug)]
enum Cmd {
    MakeCall(usize, Option<usize>),
    Answer(usize),
    Accept(usize),
    Dial(usize, usize),
    Drop(usize),
    Deallocate(usize),
    Hold(usize),
    Unhold(usize),
    SwapHold(usize, usize),
    BlindTransfer(usize, usize),
    SetupTransfer(usize),
    CompleteTransfer(usize, usize, bool),
    Finish(usize, bool),
    SetupConference(usize),
    PrepareAdd(usize),
    AddToConference(usize, usize),
    RemoveFromConference(usize),
    Related(usize),
    Redirect(usize, usize),
    Park(usize, bool),
    Unpark(usize),
    Pickup(usize, usize, bool),
    Forward(usize, u8, Option<usize>),
    CompleteCall(usize, u8),
    Uncomplete(usize),
    Secure(usize),
    Handoff(usize, bool),
    Digits(usize),
    Privilege(usize, bool),
    Play(usize, usize, bool),
    StopMedia(usize),
    Gather(usize, u8),
    Tone(usize, u8),
    Monitor(usize, u8),
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => Just(Behaviour::Ring),
        2 => Just(Behaviour::Answer),
        1 => Just(Behaviour::Busy),
        1 => Just(Behaviour::Reject),
        1 => Just(Behaviour::Unreachable),
        1 => Just(Behaviour::NeverAnswer),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let c = prop_oneof![6 => 0usize..3, 3 => 0usize..10, 1 => 10usize..12];
    let d = 0usize..DESTS.len();
    let from = 0usize..7;
    prop_oneof![
        6 => (from.clone(), proptest::option::of(d.clone())).prop_map(|(f, t)| Cmd::MakeCall(f, t)),
        3 => c.clone().prop_map(Cmd::Answer),
        1 => c.clone().prop_map(Cmd::Accept),
        2 => (c.clone(), d.clone()).prop_map(|(x, y)| Cmd::Dial(x, y)),
        3 => c.clone().prop_map(Cmd::Drop),
        2 => c.clone().prop_map(Cmd::Deallocate),
        2 => c.clone().prop_map(Cmd::Hold),
        2 => c.clone().prop_map(Cmd::Unhold),
        1 => (c.clone(), c.clone()).prop_map(|(x, y)| Cmd::SwapHold(x, y)),
        1 => (c.clone(), d.clone()).prop_map(|(x, y)| Cmd::BlindTransfer(x, y)),
        2 => c.clone().prop_map(Cmd::SetupTransfer),
        2 => (c.clone(), c.clone(), any::<bool>()).prop_map(|(x, y, m)| Cmd::CompleteTransfer(x, y, m)),
        1 => (c.clone(), any::<bool>()).prop_map(|(x, m)| Cmd::Finish(x, m)),
        2 => c.clone().prop_map(Cmd::SetupConference),
        1 => c.clone().prop_map(Cmd::PrepareAdd),
        2 => (c.clone(), c.clone()).prop_map(|(x, y)| Cmd::AddToConference(x, y)),
        1 => c.clone().prop_map(Cmd::RemoveFromConference),
        1 => c.clone().prop_map(Cmd::Related),
        1 => (c.clone(), d.clone()).prop_map(|(x, y)| Cmd::Redirect(x, y)),
        1 => (c.clone(), any::<bool>()).prop_map(|(x, m)| Cmd::Park(x, m)),
        1 => from.clone().prop_map(Cmd::Unpark),
        1 => (from.clone(), from.clone(), any::<bool>()).prop_map(|(x, y, g)| Cmd::Pickup(x, y, g)),
        1 => (from.clone(), 0u8..17, proptest::option::of(d.clone())).prop_map(|(x, m, t)| Cmd::Forward(x, m, t)),
        1 => (c.clone(), 0u8..4).prop_map(|(x, m)| Cmd::CompleteCall(x, m)),
        1 => (0usize..3).prop_map(Cmd::Uncomplete),
        1 => c.clone().prop_map(Cmd::Secure),
        1 => (c.clone(), any::<bool>()).prop_map(|(x, m)| Cmd::Handoff(x, m)),
        1 => c.clone().prop_map(Cmd::Digits),
        1 => (c.clone(), any::<bool>()).prop_map(|(x, m)| Cmd::Privilege(x, m)),
        1 => (c.clone(), 0usize..PROMPTS.len(), any::<bool>()).prop_map(|(x, n, l)| Cmd::Play(x, n, l)),
        1 => c.clone().prop_map(Cmd::StopMedia),
        1 => (c.clone(), 0u8..4).prop_map(|(x, k)| Cmd::Gather(x, k)),
        1 => (c.clone(), 0u8..3).prop_map(|(x, k)| Cmd::Tone(x, k)),
        1 => (c.clone(), 0u8..4).prop_map(|(x, k)| Cmd::Monitor(x, k)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let p = 0usize..PHONES.len();
    prop_oneof![
        10 => (0usize..3, cmd()).prop_map(|(a, c)| Step::Cmd(a, c)),
        3 => p.clone().prop_map(Step::Answer),
        3 => p.clone().prop_map(Step::HangUp),
        1 => p.clone().prop_map(Step::HoldByPhone),
        1 => p.clone().prop_map(Step::RetrieveByPhone),
        1 => (p.clone(), "[0-9*#]{1,4}").prop_map(|(x, d)| Step::Digits(x, d)),
        2 => (p.clone(), 0usize..DESTS.len()).prop_map(|(x, d)| Step::PhoneDials(x, d)),
        1 => (p.clone(), 0usize..DESTS.len()).prop_map(|(x, d)| Step::Refer(x, d)),
        1 => p.clone().prop_map(Step::ReferReplaces),
        1 => (p.clone(), behaviour()).prop_map(|(x, b)| Step::Behave(x, b)),
        1 => (p.clone(), p.clone()).prop_map(|(x, y)| Step::Replaces(x, y)),
        4 => (0usize..3, 0u8..5, 0usize..5, 0usize..5, any::<bool>())
            .prop_map(|(a, f, x, y, b)| Step::Flow(a, f, x, y, b)),
        1 => (p.clone(), any::<bool>()).prop_map(|(x, real)| Step::PromptDone(x, real)),
        1 => (p.clone(), any::<bool>()).prop_map(|(x, fax)| Step::Detected(x, fax)),
        2 => (0usize..3, p.clone(), 0usize..5, any::<bool>(), any::<bool>())
            .prop_map(|(a, x, d, done, t)| Step::Ivr(a, x, d, done, t)),
        2 => prop_oneof![Just(1_000u64), Just(7_000), Just(30_000), Just(200_000)].prop_map(Step::Advance),
    ]
}

/// The world of one case: a switch with five phones, a route point, a trunk,
/// and three apps (an owner of everything, a monitor of everything, and an
/// owner of a few lines for automated voice).
struct World {
    sim: Sim,
    apps: [AppId; 3],
    /// Per app: the calls it has handles to, as learned from its events.
    known: BTreeMap<AppId, BTreeSet<CallId>>,
    /// Per app: the line of each call it heard of.
    line_of: BTreeMap<(AppId, CallId), LineId>,
    /// Per app and call: the last state heard.
    heard: BTreeMap<(AppId, CallId), CallStateKind>,
    last_seq: BTreeMap<AppId, u64>,
    replies: BTreeMap<RequestId, usize>,
    requests: Vec<(AppId, RequestId)>,
    seen_events: usize,
    /// Handles given up by successful deallocations, forgotten after the check.
    pending_forget: Vec<(AppId, CallId)>,
}

impl World {
    fn new() -> World {
        let mut sim = Sim::new();
        for (i, p) in PHONES.iter().enumerate() {
            let mut cfg = LineConfig::phone(p);
            cfg.pickup_group = Some(if i < 3 { "sales" } else { "support" }.into());
            cfg.remote_answer = i % 2 == 0;
            cfg.max_calls = 3;
            sim.add_line(cfg, Behaviour::Ring);
        }
        sim.add_route_point("2001");
        sim.add_trunk("9000");
        let a = sim.switch.register_app(AppConfig::named("owner"));
        let b = sim.switch.register_app(AppConfig::named("monitor"));
        let c = sim.switch.register_app(AppConfig {
            priority: 1,
            ..AppConfig::named("ivr")
        });
        let lines: Vec<LineId> = PHONES
            .iter()
            .chain(["2001", "9000"].iter())
            .map(|x| sim.switch.line_of(x).unwrap())
            .collect();
        for l in &lines {
            sim.switch
                .open_line(a, *l, &[Privilege::Owner], &[])
                .unwrap();
            sim.switch
                .open_line(b, *l, &[Privilege::Monitor], &[])
                .unwrap();
        }
        for l in &lines[3..6] {
            sim.switch
                .open_line(
                    c,
                    *l,
                    &[Privilege::Owner, Privilege::Monitor],
                    &[
                        MediaMode::AutomatedVoice,
                        MediaMode::InteractiveVoice,
                        MediaMode::G3Fax,
                    ],
                )
                .unwrap();
        }
        sim.run();
        let mut w = World {
            sim,
            apps: [a, b, c],
            known: BTreeMap::new(),
            line_of: BTreeMap::new(),
            heard: BTreeMap::new(),
            last_seq: BTreeMap::new(),
            replies: BTreeMap::new(),
            requests: Vec::new(),
            seen_events: 0,
            pending_forget: Vec::new(),
        };
        w.check().unwrap();
        w
    }

    /// Pick a call: mostly one of the newest live calls (where the
    /// interesting operations are), sometimes any call including idle ones,
    /// sometimes a call id that does not exist.
    fn call(&self, idx: usize) -> CallId {
        let all = self.sim.switch.all_calls();
        let mut live: Vec<CallId> = all
            .iter()
            .copied()
            .filter(|c| self.sim.switch.call_state(*c) != Some(CallStateKind::Idle))
            .collect();
        live.reverse();
        match idx {
            0..=9 if !live.is_empty() => live[idx % live.len()],
            10 if !all.is_empty() => all[all.len() / 2],
            _ => CallId(999_999),
        }
    }

    fn address(idx: usize) -> &'static str {
        ["1001", "1002", "1003", "1004", "1005", "2001", "9000"][idx % 7]
    }

    fn command(&self, c: &Cmd) -> Command {
        use Command as C;
        let d = |i: usize| DESTS[i % DESTS.len()].to_string();
        match c {
            Cmd::MakeCall(f, t) => C::MakeCall {
                from: Self::address(*f).into(),
                to: t.map(d),
            },
            Cmd::Answer(x) => C::Answer(self.call(*x)),
            Cmd::Accept(x) => C::Accept(self.call(*x)),
            Cmd::Dial(x, y) => C::Dial(self.call(*x), d(*y)),
            Cmd::Drop(x) => C::Drop(self.call(*x)),
            Cmd::Deallocate(x) => C::Deallocate(self.call(*x)),
            Cmd::Hold(x) => C::Hold(self.call(*x)),
            Cmd::Unhold(x) => C::Unhold(self.call(*x)),
            Cmd::SwapHold(x, y) => C::SwapHold(self.call(*x), self.call(*y)),
            Cmd::BlindTransfer(x, y) => C::BlindTransfer(self.call(*x), d(*y)),
            Cmd::SetupTransfer(x) => C::SetupTransfer(self.call(*x)),
            Cmd::CompleteTransfer(x, y, m) => C::CompleteTransfer(
                self.call(*x),
                self.call(*y),
                if *m {
                    TransferMode::Transfer
                } else {
                    TransferMode::Conference
                },
            ),
            Cmd::Finish(x, m) => C::Finish(
                self.call(*x),
                if *m {
                    TransferMode::Transfer
                } else {
                    TransferMode::Conference
                },
            ),
            Cmd::SetupConference(x) => C::SetupConference(self.call(*x), None),
            Cmd::PrepareAdd(x) => C::PrepareAddToConference(self.call(*x)),
            Cmd::AddToConference(x, y) => C::AddToConference(self.call(*x), self.call(*y)),
            Cmd::RemoveFromConference(x) => C::RemoveFromConference(self.call(*x)),
            Cmd::Related(x) => C::ConfRelatedCalls(self.call(*x)),
            Cmd::Redirect(x, y) => C::Redirect(self.call(*x), d(*y)),
            Cmd::Park(x, directed) => C::Park(
                self.call(*x),
                if *directed {
                    ParkMode::Directed("7001".into())
                } else {
                    ParkMode::NonDirected
                },
            ),
            Cmd::Unpark(a) => C::Unpark(Self::address(*a).into(), "7001".into()),
            Cmd::Pickup(a, t, group) => C::Pickup(
                Self::address(*a).into(),
                if *group {
                    PickupTarget::Group(if *t % 2 == 0 { "sales" } else { "support" }.into())
                } else if a == t {
                    // Naming neither: the call waiting at the address itself.
                    PickupTarget::CallWaiting
                } else {
                    PickupTarget::Address(Self::address(*t).into())
                },
            ),
            Cmd::Forward(a, m, t) => {
                let rules = if *m as usize >= ForwardMode::ALL.len() {
                    vec![]
                } else {
                    let mode = ForwardMode::ALL[*m as usize];
                    vec![ForwardRule {
                        mode,
                        to: t.map(d),
                        caller: (mode.callers() == CallerFilter::Specific).then(|| "1001".into()),
                    }]
                };
                C::Forward(Self::address(*a).into(), rules, Some(2))
            }
            Cmd::CompleteCall(x, m) => C::CompleteCall(
                self.call(*x),
                [
                    CompletionMode::CampOn,
                    CompletionMode::Callback,
                    CompletionMode::Intrude,
                    CompletionMode::Message,
                ][*m as usize % 4],
                Some(1),
            ),
            Cmd::Uncomplete(n) => {
                let pending = self.sim.switch.pending_completions();
                C::UncompleteCall(pending.get(*n).copied().unwrap_or(CompletionId(999_999)))
            }
            Cmd::Secure(x) => C::SecureCall(self.call(*x)),
            Cmd::Handoff(x, by_name) => C::Handoff(
                self.call(*x),
                if *by_name {
                    HandoffTarget::App("ivr".into())
                } else {
                    HandoffTarget::MediaMode(MediaMode::AutomatedVoice)
                },
            ),
            Cmd::Digits(x) => C::GenerateDigits(self.call(*x), "12#".into()),
            Cmd::Play(x, n, looping) => C::PlayPrompt(self.call(*x), PROMPTS[*n].into(), *looping),
            Cmd::StopMedia(x) => C::StopMedia(self.call(*x)),
            Cmd::Gather(x, k) => C::GatherDigits(
                self.call(*x),
                mediaops::GatherSpec {
                    max_digits: [1, 3, 64, 2][*k as usize % 4],
                    terminators: if *k % 2 == 0 {
                        "#".into()
                    } else {
                        String::new()
                    },
                    first_timeout_ms: [5_000, 0, 60_000, 1_000][*k as usize % 4],
                    inter_timeout_ms: [2_000, 3_000, 0, 0][*k as usize % 4],
                },
            ),
            Cmd::Tone(x, k) => C::GenerateTone(
                self.call(*x),
                mediaops::ToneRequest {
                    tone: [
                        mediaops::ToneName::Beep,
                        mediaops::ToneName::Busy,
                        mediaops::ToneName::Custom,
                    ][*k as usize % 3],
                    frequencies: if *k == 2 { vec![1400] } else { vec![] },
                    duration_ms: None,
                },
            ),
            Cmd::Monitor(x, k) => C::Monitor(
                self.call(*x),
                mediaops::MonitorSpec {
                    digits: *k != 1,
                    tones: if *k >= 2 { vec![Self::watch()] } else { vec![] },
                    media_modes: if *k == 3 {
                        vec![MediaMode::G3Fax]
                    } else {
                        vec![]
                    },
                },
            ),
            Cmd::Privilege(x, owner) => C::SetCallPrivilege(
                self.call(*x),
                if *owner {
                    Privilege::Owner
                } else {
                    Privilege::Monitor
                },
            ),
        }
    }

    /// The tone the property test watches for and reports.
    fn watch() -> mediaops::ToneWatch {
        mediaops::ToneWatch {
            frequencies: vec![1100],
            duration_ms: 500,
        }
    }

    fn apply(&mut self, s: &Step) -> Result<(), String> {
        match s {
            Step::Cmd(a, c) => {
                let app = self.apps[*a];
                let command = self.command(c);
                let _ = self.exec(app, command)?;
            }
            Step::Flow(a, flow, d1, d2, answer) => {
                let app = self.apps[*a];
                self.flow(app, *flow, DESTS[*d1 % 5], DESTS[*d2 % 5], *answer)?;
            }
            Step::Answer(p) => self.sim.phone(PHONES[*p]).answer(),
            Step::HangUp(p) => self.sim.phone(PHONES[*p]).hang_up(),
            Step::HoldByPhone(p) => self.sim.phone(PHONES[*p]).report(LegEvent::Held),
            Step::RetrieveByPhone(p) => self.sim.phone(PHONES[*p]).report(LegEvent::Retrieved),
            // Odd-length digit strings arrive as SIP INFO (out of band).
            Step::Digits(p, d) if d.len() % 2 == 1 => self
                .sim
                .phone(PHONES[*p])
                .report(LegEvent::SignalledDigits(d.clone())),
            Step::Digits(p, d) => self
                .sim
                .phone(PHONES[*p])
                .report(LegEvent::Digits(d.clone())),
            Step::PromptDone(p, real) => {
                // The media plane reports the end of the prompt playing at
                // the route point (or of one that never played).
                let play = self
                    .sim
                    .calls_at("2001")
                    .into_iter()
                    .find_map(|c| self.sim.switch.prompt_of(c).map(|p| p.play))
                    .filter(|_| *real)
                    .unwrap_or(999_999);
                self.sim
                    .phone(PHONES[*p])
                    .report(LegEvent::PromptDone(play));
            }
            Step::Ivr(a, p, d, done, transfer) => {
                self.ivr(self.apps[*a], PHONES[*p], DESTS[*d], *done, *transfer)?;
            }
            Step::PhoneDials(p, d) => {
                self.sim.phone(PHONES[*p]).dial(DESTS[*d]);
            }
            Step::Refer(p, d) => {
                if let Some(leg) = self.sim.phone(PHONES[*p]).leg_ids().last().copied() {
                    let now = self.sim.now;
                    let _ = self
                        .sim
                        .switch
                        .refer(now, leg, LegEvent::Refer(DESTS[*d].into()));
                    self.sim.run();
                }
            }
            Step::ReferReplaces(p) => {
                let legs = self.sim.phone(PHONES[*p]).leg_ids();
                if legs.len() >= 2 {
                    let now = self.sim.now;
                    let _ = self.sim.switch.refer(
                        now,
                        legs[legs.len() - 1],
                        LegEvent::ReferReplaces(legs[legs.len() - 2]),
                    );
                    self.sim.run();
                }
            }
            Step::Behave(p, b) => self.sim.set_behaviour(PHONES[*p], *b),
            Step::Replaces(p, q) => {
                if let Some(replaced) = self.sim.phone(PHONES[*q]).leg_ids().last().copied() {
                    let leg = self.sim.switch.allocate_leg();
                    self.sim.input(Input::DeviceReplaces {
                        leg,
                        from: PHONES[*p].into(),
                        replaces: replaced,
                    });
                    if self.sim.switch.call_of_leg(leg).is_some() {
                        self.sim.legs.insert(
                            leg,
                            tapir_core::sim::SimLeg {
                                address: PHONES[*p].into(),
                                ringing: false,
                                answered: true,
                            },
                        );
                    }
                }
            }
            // The media plane heard the watched tone, or a fax, on a leg.
            Step::Detected(p, fax) => self.sim.phone(PHONES[*p]).report(if *fax {
                LegEvent::MediaDetected(MediaMode::G3Fax)
            } else {
                LegEvent::ToneDetected(Self::watch())
            }),
            Step::Advance(ms) => self.sim.advance(*ms),
        }
        self.check()
    }

    /// One request, checked: a rejected request must leave the switch unchanged.
    fn exec(&mut self, app: AppId, command: Command) -> Result<Result<Reply, TapiError>, String> {
        let before = self.sim.switch.model_snapshot();
        let dealloc = match &command {
            Command::Deallocate(call) => Some(*call),
            _ => None,
        };
        let now = self.sim.now;
        let (req, result) = self.sim.switch.request(now, app, command.clone());
        self.requests.push((app, req));
        record(&command, result.is_ok());
        if result.is_err() {
            let after = self.sim.switch.model_snapshot();
            if before != after {
                return Err(format!(
                    "rejected {command:?} ({result:?}) changed the switch"
                ));
            }
        }
        if let (Some(call), Ok(_)) = (dealloc, &result) {
            self.pending_forget.push((app, call));
        }
        self.sim.run();
        self.check()?;
        Ok(result)
    }

    /// The newest connected two-party call `app` owns.
    fn newest_connected(&self, app: AppId) -> Option<CallId> {
        self.sim.switch.calls_of(app).into_iter().rev().find(|c| {
            self.sim.switch.call_info(app, *c).is_ok_and(|i| {
                i.privilege == Privilege::Owner
                    && i.state == CallStateKind::Connected
                    && i.related_calls.is_empty()
                    && self.sim.switch.bridge_calls(*c).len() == 2
            })
        })
    }

    /// The call-centre flow random single steps rarely reach: a phone calls
    /// the route point, `app` answers, plays a prompt, the caller sends a
    /// digit, the prompt ends (or not), and the caller is transferred on
    /// (or dropped).
    fn ivr(
        &mut self,
        app: AppId,
        phone: &str,
        to: &str,
        done: bool,
        transfer: bool,
    ) -> Result<(), String> {
        self.sim.phone(phone).dial("2001");
        self.check()?;
        let Some(rp) = self
            .sim
            .calls_at("2001")
            .into_iter()
            .rev()
            .find(|c| self.sim.state(*c) == Some(CallStateKind::Offering))
        else {
            return Ok(());
        };
        let _ = self.exec(app, Command::Answer(rp))?;
        let _ = self.exec(app, Command::PlayPrompt(rp, "welcome".into(), !done))?;
        self.sim.phone(phone).report(LegEvent::Digits("1".into()));
        self.check()?;
        if let Some(play) = self.sim.switch.prompt_of(rp).map(|p| p.play) {
            self.sim.phone(phone).report(LegEvent::PromptDone(play));
            self.check()?;
        }
        let next = if transfer {
            Command::BlindTransfer(rp, to.into())
        } else {
            Command::StopMedia(rp)
        };
        let _ = self.exec(app, next)?;
        Ok(())
    }

    /// A multi-step operation that random single steps rarely reach:
    /// consultation transfer, conference building, swap hold, park/unpark.
    fn flow(
        &mut self,
        app: AppId,
        flow: u8,
        d1: &str,
        d2: &str,
        answer: bool,
    ) -> Result<(), String> {
        let Some(c) = self.newest_connected(app) else {
            return Ok(());
        };
        let address = self
            .sim
            .switch
            .call_info(app, c)
            .map(|i| i.address.to_string())
            .unwrap_or_default();
        match flow % 5 {
            0 | 1 => {
                let Ok(Reply::Consult { consult_call: x }) =
                    self.exec(app, Command::SetupTransfer(c))?
                else {
                    return Ok(());
                };
                let _ = self.exec(app, Command::Dial(x, d1.into()))?;
                if answer {
                    self.sim.phone(d1).answer();
                    self.check()?;
                }
                let mode = if flow.is_multiple_of(5) {
                    TransferMode::Transfer
                } else {
                    TransferMode::Conference
                };
                if answer && flow.is_multiple_of(2) {
                    let _ = self.exec(app, Command::SwapHold(x, c))?;
                    let _ = self.exec(app, Command::CompleteTransfer(x, c, mode))?;
                } else {
                    let _ = self.exec(app, Command::Finish(x, mode))?;
                }
            }
            2 => {
                let Ok(Reply::Conference {
                    conference_call: conf,
                    consult_call: x,
                }) = self.exec(app, Command::SetupConference(c, Some(5)))?
                else {
                    return Ok(());
                };
                let _ = self.exec(app, Command::Dial(x, d1.into()))?;
                if answer {
                    self.sim.phone(d1).answer();
                    self.check()?;
                }
                let _ = self.exec(app, Command::AddToConference(conf, x))?;
                if let Ok(Reply::Consult { consult_call: y }) =
                    self.exec(app, Command::PrepareAddToConference(conf))?
                {
                    let _ = self.exec(app, Command::Dial(y, d2.into()))?;
                    self.sim.phone(d2).answer();
                    self.check()?;
                    if answer {
                        let _ = self.exec(app, Command::SwapHold(y, conf))?;
                        let _ = self.exec(app, Command::SwapHold(conf, y))?;
                    }
                    let _ = self.exec(app, Command::Finish(y, TransferMode::Conference))?;
                }
                let _ = self.exec(app, Command::ConfRelatedCalls(conf))?;
                if !answer {
                    let _ = self.exec(app, Command::RemoveFromConference(x))?;
                }
            }
            3 => {
                let _ = self.exec(app, Command::Hold(c))?;
                if let Ok(Reply::Call { call: n }) = self.exec(
                    app,
                    Command::MakeCall {
                        from: address.clone(),
                        to: Some(d1.into()),
                    },
                )? {
                    if answer {
                        self.sim.phone(d1).answer();
                        self.check()?;
                    }
                    let _ = self.exec(app, Command::SwapHold(n, c))?;
                    let _ = self.exec(app, Command::Unhold(n))?;
                }
            }
            _ => {
                let mode = if answer {
                    ParkMode::NonDirected
                } else {
                    ParkMode::Directed("7002".into())
                };
                if let Ok(Reply::Parked { parked_at }) = self.exec(app, Command::Park(c, mode))? {
                    let _ = self.exec(app, Command::Unpark(d1.into(), parked_at.to_string()))?;
                }
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        self.sim.switch.check_invariants()?;
        let events: Vec<AppEvent> = self.sim.events[self.seen_events..].to_vec();
        self.seen_events = self.sim.events.len();
        for ev in &events {
            let last = self.last_seq.entry(ev.app).or_insert(0);
            if ev.seq != *last + 1 {
                return Err(format!("{} got seq {} after {}", ev.app, ev.seq, last));
            }
            *last = ev.seq;
            let known = self.known.entry(ev.app).or_default();
            let mentioned = match &ev.body {
                EventBody::CallNew { call, line, .. } => {
                    if !known.insert(*call) {
                        return Err(format!("{} got call.new twice for {call}", ev.app));
                    }
                    self.line_of.insert((ev.app, *call), *line);
                    None
                }
                EventBody::CallState { call, state, .. } => {
                    let key = (ev.app, *call);
                    if self.heard.get(&key) == Some(&CallStateKind::Idle) {
                        return Err(format!("{} heard {state:?} for {call} after idle", ev.app));
                    }
                    self.heard.insert(key, *state);
                    Some(*call)
                }
                EventBody::CallInfo { call, .. } | EventBody::DigitsReceived { call, .. } => {
                    Some(*call)
                }
                EventBody::Parked { call, .. } | EventBody::Unparked { call, .. } => Some(*call),
                EventBody::DigitsGenerated { call } => Some(*call),
                EventBody::DigitsGathered { call, .. }
                | EventBody::ToneDetected { call, .. }
                | EventBody::MediaDetected { call, .. } => Some(*call),
                EventBody::CallMedia { call, .. } => Some(*call),
                EventBody::CompletionDone { call, .. } => *call,
                EventBody::Reply { request, .. } => {
                    *self.replies.entry(*request).or_insert(0) += 1;
                    None
                }
                EventBody::LineState { line, state } => {
                    if *state == LineStateKind::Closed {
                        let app = ev.app;
                        let gone: Vec<CallId> = self
                            .line_of
                            .iter()
                            .filter(|((a, _), l)| *a == app && *l == line)
                            .map(|((_, c), _)| *c)
                            .collect();
                        for c in gone {
                            known.remove(&c);
                        }
                    }
                    None
                }
                EventBody::AddressForwarding { .. } => None,
            };
            if let Some(call) = mentioned
                && !known.contains(&call)
            {
                return Err(format!(
                    "{} heard of {call} without a handle: {:?}",
                    ev.app, ev.body
                ));
            }
        }
        for (app, call) in std::mem::take(&mut self.pending_forget) {
            if let Some(k) = self.known.get_mut(&app) {
                k.remove(&call);
            }
        }
        for (app, req) in &self.requests {
            let n = self.replies.get(req).copied().unwrap_or(0);
            if n != 1 {
                return Err(format!("{req} of {app} got {n} replies"));
            }
        }
        // What each app heard last is the truth.
        for (app, calls) in &self.known {
            for call in calls {
                let Some(real) = self.sim.switch.call_state(*call) else {
                    return Err(format!("{app} holds {call}, which was freed"));
                };
                if self.sim.switch.call_info(*app, *call).is_err() {
                    return Err(format!("{app} thinks it holds {call} but has no handle"));
                }
                if self.heard.get(&(*app, *call)) != Some(&real) {
                    return Err(format!(
                        "{app} last heard {:?} for {call}, but it is {real:?}",
                        self.heard.get(&(*app, *call))
                    ));
                }
            }
        }
        // And every handle the switch gave out was announced.
        for app in self.apps {
            for call in self.sim.switch.calls_of(app) {
                if !self.known.get(&app).is_some_and(|k| k.contains(&call)) {
                    return Err(format!("{app} has a handle to {call} it was never told of"));
                }
            }
        }
        Ok(())
    }

    /// Everybody hangs up, apps drop what has no device, time passes.
    fn wind_down(&mut self) -> Result<(), String> {
        for _ in 0..6 {
            for p in PHONES {
                self.sim.phone(p).hang_up_all();
            }
            self.sim.phone("9000").hang_up_all();
            for app in self.apps {
                for call in self.sim.switch.calls_of(app) {
                    let live = self
                        .sim
                        .switch
                        .call_state(call)
                        .is_some_and(|s| s != CallStateKind::Idle);
                    if live {
                        let now = self.sim.now;
                        let _ =
                            self.sim
                                .switch
                                .set_call_privilege(now, app, call, Privilege::Owner);
                        let _ = self.sim.switch.drop_call(now, app, call);
                        self.sim.run();
                    }
                }
            }
            self.sim.advance(3_600_000);
            self.check()?;
        }
        let live: Vec<_> = self
            .sim
            .switch
            .all_calls()
            .into_iter()
            .filter(|c| self.sim.switch.call_state(*c) != Some(CallStateKind::Idle))
            .collect();
        if !live.is_empty() {
            return Err(format!("calls still live after everyone hung up: {live:?}"));
        }
        let used = self.sim.switch.resources_in_use();
        if used != (0, 0, 0, 0, 0) {
            return Err(format!(
                "leaked (bridges, legs, parks, completions, timers) = {used:?}"
            ));
        }
        // Every app gives up its handles; nothing may remain.
        for app in self.apps {
            for call in self.sim.switch.calls_of(app) {
                let now = self.sim.now;
                self.sim
                    .switch
                    .deallocate_call(now, app, call)
                    .map_err(|e| format!("deallocate {call}: {e}"))?;
            }
        }
        self.sim.run();
        if !self.sim.switch.all_calls().is_empty() {
            return Err("calls remain after every handle was deallocated".into());
        }
        let ops = self.sim.switch.media_ops_in_use();
        if ops != (0, 0, 0) {
            return Err(format!(
                "leaked (gatherings, monitors, legs with detectors) = {ops:?}"
            ));
        }
        Ok(())
    }
}

/// Per command kind: (succeeded, rejected), printed with `TAPIR_PROPTEST_STATS=1`
/// to show the generator reaches every operation's success path.
static STATS: std::sync::Mutex<BTreeMap<String, (u64, u64)>> =
    std::sync::Mutex::new(BTreeMap::new());

fn record(command: &Command, ok: bool) {
    let name = format!("{command:?}");
    let kind = name
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("?")
        .to_string();
    let mut stats = STATS.lock().unwrap();
    let e = stats.entry(kind).or_insert((0, 0));
    if ok {
        e.0 += 1;
    } else {
        e.1 += 1;
    }
}

#[test]
fn zz_print_stats() {
    // Runs after the property test only when asked; prints what it reached.
    if std::env::var("TAPIR_PROPTEST_STATS").is_ok() {
        switch_keeps_its_invariants();
        for (kind, (ok, err)) in STATS.lock().unwrap().iter() {
            eprintln!("{kind:24} ok {ok:8} rejected {err:8}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        max_shrink_iters: 4096,
        // CI explores the same cases every run, so a red run is reproducible;
        // TAPIR_PROPTEST_RANDOM=1 explores new ones (do that locally, often).
        rng_seed: if std::env::var("TAPIR_PROPTEST_RANDOM").is_ok() {
            proptest::test_runner::RngSeed::Random
        } else {
            proptest::test_runner::RngSeed::Fixed(20_261_125)
        },
        .. ProptestConfig::default()
    })]

    #[test]
    fn switch_keeps_its_invariants(steps in proptest::collection::vec(step(), 1..60)) {
        let mut w = World::new();
        for (i, s) in steps.iter().enumerate() {
            if let Err(e) = w.apply(s) {
                prop_assert!(false, "after step {i} {s:?}: {e}");
            }
        }
        if let Err(e) = w.wind_down() {
            prop_assert!(false, "winding down: {e}");
        }
    }
}
