//! A simulation harness: simulated phones and a simulated clock around a real
//! [`Switch`], so every operation can be driven end to end without a socket.
//!
//! Phones react to the switch's effects the way SIP phones do: they ring,
//! answer (by hand or automatically), are busy, reject, cannot be reached,
//! never answer, hang up and hold by themselves. [`Sim::run`] carries effects
//! to the phones and their reactions back into the switch until nothing is
//! left to do; [`Sim::advance`] moves the clock and fires due timers.

use crate::config::{LineConfig, SwitchConfig};
use crate::ids::{AppId, CallId, LegId, LineId, Timestamp};
use crate::output::{AppEvent, Effect, EventBody, Output};
use crate::switch::{Input, LegEvent, Switch};
use crate::types::CallStateKind;
use std::collections::{BTreeMap, VecDeque};

/// How a simulated phone reacts when tapir calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Rings until the test answers (auto-answer requests are honoured).
    Ring,
    /// Answers at once.
    Answer,
    /// Answers 486 Busy Here.
    Busy,
    /// Answers 603 Decline.
    Reject,
    /// Cannot be reached (no registration, 408).
    Unreachable,
    /// Rings for ever and ignores auto-answer.
    NeverAnswer,
    /// A trunk whose network answers with a special information condition
    /// (a carrier's 404, 503, …).
    SpecialInfo(crate::types::SpecialInfoMode),
}

/// One leg as the simulated device sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimLeg {
    /// The address of the phone that has the leg.
    pub address: String,
    /// The phone is ringing on it.
    pub ringing: bool,
    /// The leg is established.
    pub answered: bool,
}

/// A switch, its phones and a clock.
#[derive(Debug)]
pub struct Sim {
    /// The switch under test.
    pub switch: Switch,
    /// The simulated time.
    pub now: Timestamp,
    behaviours: BTreeMap<String, Behaviour>,
    line_address: BTreeMap<LineId, String>,
    /// Every leg the phones hold.
    pub legs: BTreeMap<LegId, SimLeg>,
    /// Every effect the switch produced, in order.
    pub effects: Vec<Effect>,
    /// Every event the switch produced, in order.
    pub events: Vec<AppEvent>,
    queue: VecDeque<(LegId, LegEvent)>,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// A switch with the default settings and no lines.
    pub fn new() -> Sim {
        Sim::with_config(SwitchConfig::default())
    }

    /// A switch with these settings and no lines.
    pub fn with_config(cfg: SwitchConfig) -> Sim {
        Sim {
            switch: Switch::new(cfg),
            now: Timestamp(1_000_000),
            behaviours: BTreeMap::new(),
            line_address: BTreeMap::new(),
            legs: BTreeMap::new(),
            effects: Vec::new(),
            events: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Add a line and a simulated device for it.
    pub fn add_line(&mut self, cfg: LineConfig, behaviour: Behaviour) -> LineId {
        let address = cfg.addresses.first().cloned().unwrap_or_default();
        let line = match self.switch.add_line(cfg) {
            Ok(l) => l,
            Err(e) => panic!("test set-up: cannot add line {address}: {e}"),
        };
        self.behaviours.insert(address.clone(), behaviour);
        self.line_address.insert(line, address);
        line
    }

    /// Add a phone (auto-answer capable) that rings until answered.
    pub fn add_phone(&mut self, address: &str) -> LineId {
        self.add_line(LineConfig::phone(address), Behaviour::Ring)
    }

    /// Add a route point.
    pub fn add_route_point(&mut self, address: &str) -> LineId {
        self.add_line(LineConfig::route_point(address), Behaviour::Ring)
    }

    /// Add a trunk whose far network answers at once.
    pub fn add_trunk(&mut self, address: &str) -> LineId {
        self.add_line(LineConfig::trunk(address), Behaviour::Answer)
    }

    /// Change how a phone reacts to the next calls.
    pub fn set_behaviour(&mut self, address: &str, behaviour: Behaviour) {
        self.behaviours.insert(address.to_string(), behaviour);
    }

    /// A handle to drive one phone by hand.
    pub fn phone(&mut self, address: &str) -> Phone<'_> {
        Phone {
            sim: self,
            address: address.to_string(),
        }
    }

    /// Run an operation on the switch at the current time, then let the phones react.
    pub fn act<T>(&mut self, f: impl FnOnce(&mut Switch, Timestamp) -> T) -> T {
        let r = f(&mut self.switch, self.now);
        self.run();
        r
    }

    /// `make_call` at the current time, then let the phones react.
    pub fn make_call(
        &mut self,
        app: AppId,
        from: &str,
        to: Option<&str>,
    ) -> Result<CallId, crate::TapiError> {
        let cmd = crate::Command::MakeCall {
            from: from.to_string(),
            to: to.map(str::to_string),
        };
        match self.act(|s, now| s.request(now, app, cmd).1)? {
            crate::Reply::Call { call } => Ok(call),
            other => Err(crate::TapiError::new(
                crate::ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Feed an input, then let the phones react.
    pub fn input(&mut self, input: Input) {
        self.switch.handle(self.now, input);
        self.run();
    }

    /// Move the clock on and fire every timer that falls due on the way.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now.plus_ms(ms);
        while let Some(at) = self.switch.poll_timeout() {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.switch.handle(self.now, Input::Timeout);
            self.run();
        }
        self.now = end;
    }

    /// Carry effects to the phones and their reactions back, until quiet.
    pub fn run(&mut self) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 10_000, "simulation does not settle");
            let mut progressed = false;
            while let Some(out) = self.switch.poll_output() {
                progressed = true;
                match out {
                    Output::Effect(e) => self.on_effect(e),
                    Output::Event(ev) => self.events.push(ev),
                    Output::Timeout(_) => {}
                }
            }
            if let Some((leg, ev)) = self.queue.pop_front() {
                progressed = true;
                self.switch.handle(self.now, Input::Leg { leg, event: ev });
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_effect(&mut self, effect: Effect) {
        match &effect {
            Effect::CreateLeg {
                leg,
                line,
                auto_answer,
                ..
            } => {
                let address = self.line_address.get(line).cloned().unwrap_or_default();
                let behaviour = self
                    .behaviours
                    .get(&address)
                    .copied()
                    .unwrap_or(Behaviour::Ring);
                let mut sim_leg = SimLeg {
                    address,
                    ringing: false,
                    answered: false,
                };
                match behaviour {
                    Behaviour::Busy => self.queue.push_back((*leg, LegEvent::Busy)),
                    Behaviour::Reject => self.queue.push_back((*leg, LegEvent::Rejected)),
                    Behaviour::Unreachable => self.queue.push_back((*leg, LegEvent::Unreachable)),
                    Behaviour::SpecialInfo(m) => {
                        self.queue.push_back((*leg, LegEvent::SpecialInfo(m)));
                    }
                    Behaviour::NeverAnswer => {
                        sim_leg.ringing = true;
                        self.queue.push_back((*leg, LegEvent::Alerting));
                    }
                    Behaviour::Answer => {
                        sim_leg.answered = true;
                        self.queue.push_back((*leg, LegEvent::Alerting));
                        self.queue.push_back((*leg, LegEvent::Answered));
                    }
                    Behaviour::Ring if *auto_answer => {
                        sim_leg.answered = true;
                        self.queue.push_back((*leg, LegEvent::Answered));
                    }
                    Behaviour::Ring => {
                        sim_leg.ringing = true;
                        self.queue.push_back((*leg, LegEvent::Alerting));
                    }
                }
                if matches!(
                    behaviour,
                    Behaviour::Ring | Behaviour::Answer | Behaviour::NeverAnswer
                ) {
                    self.legs.insert(*leg, sim_leg);
                }
            }
            Effect::ReleaseLeg { leg, .. } | Effect::Redirect { leg, .. } => {
                self.legs.remove(leg);
            }
            Effect::RemoteAnswer { leg } => {
                if let Some(l) = self.legs.get_mut(leg)
                    && l.ringing
                {
                    l.ringing = false;
                    l.answered = true;
                    self.queue.push_back((*leg, LegEvent::Answered));
                }
            }
            // A remote-controlled phone obeys: it holds or resumes by itself.
            Effect::RemoteHold { leg } if self.legs.get(leg).is_some_and(|l| l.answered) => {
                self.queue.push_back((*leg, LegEvent::Held));
            }
            Effect::RemoteRetrieve { leg } if self.legs.get(leg).is_some_and(|l| l.answered) => {
                self.queue.push_back((*leg, LegEvent::Retrieved));
            }
            Effect::AnswerLeg { leg } => {
                if let Some(l) = self.legs.get_mut(leg) {
                    l.answered = true;
                }
            }
            _ => {}
        }
        self.effects.push(effect);
    }

    /// The events one app received, in order.
    pub fn events_for(&self, app: AppId) -> Vec<&EventBody> {
        self.events
            .iter()
            .filter(|e| e.app == app)
            .map(|e| &e.body)
            .collect()
    }

    /// Forget the events and effects seen so far.
    pub fn clear(&mut self) {
        self.events.clear();
        self.effects.clear();
    }

    /// The state of a call (panics in tests when it is gone).
    pub fn state(&self, call: CallId) -> Option<CallStateKind> {
        self.switch.call_state(call)
    }

    /// The live calls at an address.
    pub fn calls_at(&self, address: &str) -> Vec<CallId> {
        self.switch.calls_at(address)
    }
}

/// One simulated phone, driven by hand.
pub struct Phone<'a> {
    sim: &'a mut Sim,
    address: String,
}

impl Phone<'_> {
    fn legs(&self) -> Vec<LegId> {
        self.sim
            .legs
            .iter()
            .filter(|(_, l)| l.address == self.address)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The legs this phone holds, oldest first.
    pub fn leg_ids(&self) -> Vec<LegId> {
        self.legs()
    }

    /// Answer the oldest ringing leg.
    pub fn answer(self) {
        let ringing = self
            .sim
            .legs
            .iter()
            .find(|(_, l)| l.address == self.address && l.ringing)
            .map(|(id, _)| *id);
        if let Some(leg) = ringing {
            if let Some(l) = self.sim.legs.get_mut(&leg) {
                l.ringing = false;
                l.answered = true;
            }
            self.sim.input(Input::Leg {
                leg,
                event: LegEvent::Answered,
            });
        }
    }

    /// Report `event` on the phone's newest leg.
    pub fn report(self, event: LegEvent) {
        if let Some(leg) = self.legs().last().copied() {
            self.report_on(leg, event);
        }
    }

    /// Report `event` on one leg.
    pub fn report_on(self, leg: LegId, event: LegEvent) {
        if matches!(event, LegEvent::HungUp) {
            self.sim.legs.remove(&leg);
        }
        self.sim.input(Input::Leg { leg, event });
    }

    /// Hang up the newest leg.
    pub fn hang_up(self) {
        self.report(LegEvent::HungUp);
    }

    /// Hang up every leg.
    pub fn hang_up_all(self) {
        let legs = self.legs();
        let sim = self.sim;
        for leg in legs {
            sim.legs.remove(&leg);
            sim.input(Input::Leg {
                leg,
                event: LegEvent::HungUp,
            });
        }
    }

    /// The phone dials `to` by itself (an INVITE from the phone).
    pub fn dial(self, to: &str) -> LegId {
        let leg = self.sim.switch.allocate_leg();
        self.sim.legs.insert(
            leg,
            SimLeg {
                address: self.address.clone(),
                ringing: false,
                answered: false,
            },
        );
        self.sim.input(Input::DeviceCall {
            leg,
            from: self.address.clone(),
            external_caller: None,
            to: to.to_string(),
        });
        leg
    }
}
