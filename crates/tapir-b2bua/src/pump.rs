//! The one composition of the switch and the B2BUA: [`pump`] carries the
//! B2BUA's reports into the [`Switch`] and the switch's effects into the
//! [`B2bua`], synchronously, until neither has anything more. A REFER is a
//! call into the switch and its verdict a call back into the B2BUA, in the
//! same step. What leaves the two machines (SIP to send, media work,
//! connections to open, the switch's app events) goes to a [`Wire`], in the
//! order the machines produced it.
//!
//! Production (`tapir-server`'s loop), the B2BUA's test rig and the
//! `signalling_load` example all run this function, so the rules of the
//! composition live here once. Nothing between the machines is queued
//! anywhere else, so nothing can be dropped or reordered.

use crate::{B2bua, MediaCommand, Out, SipTransport};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Instant;
use tapir_core::{EventBody, Input, Output, Switch, Timestamp};

/// How many rounds (B2BUA outputs, then switch outputs) one [`pump`] runs
/// at most before it reports that the machines do not settle.
pub const MAX_ROUNDS: usize = 1000;

/// The world around the two machines: where their outputs go. Every method
/// is called in the order the outputs were produced.
pub trait Wire {
    /// Send a serialized SIP message to `to`.
    fn send(&mut self, to: SocketAddr, data: Bytes);
    /// Work for the media plane.
    fn media(&mut self, command: MediaCommand);
    /// Open a TCP or TLS connection to a trunk's carrier (see [`Out::Connect`]).
    fn connect(&mut self, to: SocketAddr, transport: SipTransport);
    /// An input the B2BUA hands to the switch, just before the switch
    /// handles it (for observers; nothing by default).
    fn switch_input(&mut self, input: &Input) {
        let _ = input;
    }
    /// An output of the switch, before the pump acts on it (an effect then
    /// goes to the B2BUA; events and timeouts only go here).
    fn switch_output(&mut self, output: &Output) {
        let _ = output;
    }
}

/// The machines still had outputs after [`MAX_ROUNDS`] rounds (a loop
/// between them: a bug). The outputs left stay queued for the next pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the switch and the B2BUA did not settle in {MAX_ROUNDS} rounds")]
pub struct Unsettled;

/// Carry outputs between `switch` and `b2b` (when SIP runs) until neither
/// has more, handing what leaves them to `wire`. `now` is the B2BUA's time
/// and `ts` the switch's, the same instant on both clocks. Returns how many
/// outputs moved.
pub fn pump(
    switch: &mut Switch,
    mut b2b: Option<&mut B2bua>,
    now: Instant,
    ts: Timestamp,
    wire: &mut impl Wire,
) -> Result<usize, Unsettled> {
    let mut moved = 0;
    let mut lamps_settled = false;
    for _ in 0..MAX_ROUNDS {
        let before = moved;
        if let Some(b2b) = b2b.as_deref_mut() {
            while let Some(out) = b2b.poll_output() {
                moved += 1;
                match out {
                    Out::Send { to, data } => wire.send(to, data),
                    Out::Switch(input) => {
                        wire.switch_input(&input);
                        switch.handle(ts, input);
                    }
                    Out::Refer { leg, event } => {
                        let accepted = switch.refer(ts, leg, event).is_ok();
                        b2b.refer_outcome(now, leg, accepted);
                    }
                    Out::Media(command) => wire.media(command),
                    Out::Connect { to, transport } => wire.connect(to, transport),
                }
            }
        }
        while let Some(out) = switch.poll_output() {
            moved += 1;
            wire.switch_output(&out);
            match (&out, b2b.as_deref_mut()) {
                (Output::Effect(effect), Some(b2b)) => b2b.handle_effect(now, effect),
                (Output::Event(event), Some(b2b)) if b2b.watches_lamps() => {
                    if let EventBody::AddressForwarding { address, .. } = &event.body {
                        b2b.lamp_forwarding(address);
                    }
                }
                _ => {}
            }
        }
        if moved == before {
            // Once the step has settled, the busy lamps of what it changed
            // (nothing to do, and no cost, while nobody watches).
            if let Some(b2b) = b2b.as_deref_mut()
                && !lamps_settled
                && (moved > 0 || b2b.lamps_pending())
                && b2b.watches_lamps()
            {
                lamps_settled = true;
                b2b.lamps_changed(now, switch);
                continue;
            }
            return Ok(moved);
        }
    }
    Err(Unsettled)
}
