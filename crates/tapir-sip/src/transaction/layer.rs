//! The transaction layer: every live client and server transaction, the
//! matching of received messages to them (RFC 3261 §17.1.3, §17.2.3), one
//! timer queue for all of them, and one output stream for the driver.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::msg::{Message, Method};

use super::{
    ClientTransaction, Output, Reliability, ServerTransaction, TimerConfig, TransactionError,
    TransactionEvent, TransactionKey,
};

/// Which side of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// What [`TransactionLayer::handle_received`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A new request; a server transaction now exists under `key` and the
    /// transaction user must answer it with [`TransactionLayer::send_response`].
    NewRequest {
        /// Key of the new server transaction.
        key: TransactionKey,
        /// The request.
        request: Message,
    },
    /// Matched a live transaction, which took it (its effects come out of
    /// `poll_output`).
    Matched {
        /// The side of the transaction.
        role: Role,
        /// Its key.
        key: TransactionKey,
    },
    /// An ACK that matches no transaction: the ACK for a 2xx, for the
    /// dialog layer.
    StrayAck(Message),
    /// A response that matches no client transaction (a late 2xx
    /// retransmission, or a forked 2xx): for the transaction user.
    StrayResponse(Message),
    /// A request without a usable branch (RFC 2543 peer or broken Via):
    /// no transaction could be created; answer statelessly or ignore.
    Unmatchable(Message),
}

/// One item drained from the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOutput {
    /// Give this message to the transport.
    Transmit {
        /// The side of the transaction that sends it.
        role: Role,
        /// The transaction's key.
        key: TransactionKey,
        /// The message.
        message: Message,
    },
    /// Tell the transaction user.
    Event {
        /// The side of the transaction.
        role: Role,
        /// The transaction's key.
        key: TransactionKey,
        /// What happened.
        event: TransactionEvent,
    },
    /// Call [`TransactionLayer::handle_timeout`] at this instant (reported
    /// when it changes).
    Timeout(Instant),
}

/// All transactions of one SIP endpoint, sans-IO.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    config: TimerConfig,
    clients: HashMap<TransactionKey, ClientTransaction>,
    servers: HashMap<TransactionKey, ServerTransaction>,
    /// Server INVITE transactions that resend their 2xx until its ACK, by
    /// the INVITE's Call-ID and CSeq number (which the ACK repeats).
    awaiting_ack: HashMap<(String, u32), TransactionKey>,
    deadlines: BinaryHeap<Reverse<(Instant, Role, TransactionKey)>>,
    dirty: Vec<(Role, TransactionKey)>,
    reported_deadline: Option<Instant>,
}

impl TransactionLayer {
    /// Gives back the room of tables a burst grew, once they hold far fewer
    /// transactions than they have room for (see [`crate::capacity`]).
    pub fn shrink_when_sparse(&mut self) {
        use crate::capacity::Shrink;
        self.clients.shrink_when_sparse();
        self.servers.shrink_when_sparse();
        self.awaiting_ack.shrink_when_sparse();
        self.deadlines.shrink_when_sparse();
        self.dirty.shrink_when_sparse();
    }

    /// An empty layer using these timer values.
    pub fn new(config: TimerConfig) -> Self {
        TransactionLayer {
            config,
            ..TransactionLayer::default()
        }
    }

    /// Number of live transactions (client, server).
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty()
    }

    /// The live server transaction under `key`, e.g. the INVITE a CANCEL
    /// names ([`TransactionKey::cancelled_invite`]).
    pub fn server(&self, key: &TransactionKey) -> Option<&ServerTransaction> {
        self.servers.get(key)
    }

    /// The live client transaction under `key`.
    pub fn client(&self, key: &TransactionKey) -> Option<&ClientTransaction> {
        self.clients.get(key)
    }

    fn touched(&mut self, role: Role, key: TransactionKey) {
        self.schedule(role, &key);
        self.dirty.push((role, key));
    }

    /// Queue the transaction's next deadline unless an entry at or before it
    /// is queued already. A transaction keeps one live entry in the queue,
    /// not one per event (each entry holds a copy of the key); an entry
    /// that pops early finds the real deadline and queues it then.
    fn schedule(&mut self, role: Role, key: &TransactionKey) {
        let slot = match role {
            Role::Client => self
                .clients
                .get_mut(key)
                .map(|t| (t.poll_timeout(), t.queued_mut())),
            Role::Server => self
                .servers
                .get_mut(key)
                .map(|t| (t.poll_timeout(), t.queued_mut())),
        };
        if let Some((Some(at), queued)) = slot
            && queued.is_none_or(|q| at < q)
        {
            *queued = Some(at);
            self.deadlines.push(Reverse((at, role, key.clone())));
        }
    }

    /// Sends a request in a new client transaction and returns its key.
    pub fn start_client(
        &mut self,
        now: Instant,
        request: Message,
        reliability: Reliability,
    ) -> Result<TransactionKey, TransactionError> {
        let transaction = ClientTransaction::new(now, request, reliability, self.config)?;
        let key = transaction.key().clone();
        self.clients.insert(key.clone(), transaction);
        self.touched(Role::Client, key.clone());
        Ok(key)
    }

    /// Feeds a message received on a transport of the given reliability.
    pub fn handle_received(
        &mut self,
        now: Instant,
        message: Message,
        reliability: Reliability,
    ) -> Received {
        if !message.is_request() {
            let Ok(key) = TransactionKey::client(&message) else {
                return Received::StrayResponse(message);
            };
            let Some(transaction) = self.clients.get_mut(&key) else {
                return Received::StrayResponse(message);
            };
            transaction.handle_response(now, message);
            self.touched(Role::Client, key.clone());
            return Received::Matched {
                role: Role::Client,
                key,
            };
        }
        let Ok(key) = TransactionKey::server(&message) else {
            return Received::Unmatchable(message);
        };
        if let Some(transaction) = self.servers.get_mut(&key) {
            transaction.handle_request(now, message);
            self.touched(Role::Server, key.clone());
            return Received::Matched {
                role: Role::Server,
                key,
            };
        }
        if message.method() == Some(&Method::Ack) {
            return Received::StrayAck(message);
        }
        match ServerTransaction::new(now, message.clone(), reliability, self.config) {
            Ok(transaction) => {
                self.servers.insert(key.clone(), transaction);
                self.touched(Role::Server, key.clone());
                Received::NewRequest {
                    key,
                    request: message,
                }
            }
            Err(_) => Received::Unmatchable(message),
        }
    }

    /// Sends the transaction user's response in the server transaction `key`.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Message,
    ) -> Result<(), TransactionError> {
        let transaction = self
            .servers
            .get_mut(key)
            .ok_or(TransactionError::InvalidState)?;
        transaction.send_response(now, response)?;
        if transaction.awaits_ack()
            && let Some(id) = ack_id(transaction.request())
        {
            self.awaiting_ack.insert(id, key.clone());
        }
        self.touched(Role::Server, key.clone());
        Ok(())
    }

    /// The transaction user accepted `ack` as the ACK of a 2xx it sent (a
    /// dialog's peer acknowledging): the INVITE transaction it answers
    /// stops resending that 2xx.
    pub fn ack_arrived(&mut self, ack: &Message) {
        let Some(key) = ack_id(ack).and_then(|id| self.awaiting_ack.remove(&id)) else {
            return;
        };
        if let Some(transaction) = self.servers.get_mut(&key) {
            transaction.ack_arrived();
            self.touched(Role::Server, key);
        }
    }

    /// The user sent a CANCEL for the client INVITE transaction `key`: it
    /// times out 64·T1 from `now` unless a final response ends it first
    /// (RFC 3261 §9.1).
    pub fn cancel_sent(&mut self, now: Instant, key: &TransactionKey) {
        if let Some(transaction) = self.clients.get_mut(key) {
            transaction.cancel_sent(now);
        }
        self.touched(Role::Client, key.clone());
    }

    /// The transport failed to deliver for transaction `key`.
    pub fn handle_transport_error(&mut self, now: Instant, role: Role, key: &TransactionKey) {
        match role {
            Role::Client => {
                if let Some(transaction) = self.clients.get_mut(key) {
                    transaction.handle_transport_error(now);
                }
            }
            Role::Server => {
                if let Some(transaction) = self.servers.get_mut(key) {
                    transaction.handle_transport_error(now);
                }
            }
        }
        self.touched(role, key.clone());
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, role, key))) = self.deadlines.pop() else {
                break;
            };
            // Entries go stale when a timer is stopped or moved; check the real one.
            let next = match role {
                Role::Client => self.clients.get_mut(&key).map(|t| {
                    if *t.queued_mut() == Some(at) {
                        *t.queued_mut() = None;
                    }
                    t.poll_timeout()
                }),
                Role::Server => self.servers.get_mut(&key).map(|t| {
                    if *t.queued_mut() == Some(at) {
                        *t.queued_mut() = None;
                    }
                    t.poll_timeout()
                }),
            };
            match next {
                // Gone, or no timer running.
                None | Some(None) => continue,
                // Moved later: queue the real deadline.
                Some(Some(deadline)) if deadline > now => {
                    self.schedule(role, &key);
                    continue;
                }
                Some(Some(_)) => {}
            }
            match role {
                Role::Client => {
                    if let Some(transaction) = self.clients.get_mut(&key) {
                        transaction.handle_timeout(now);
                    }
                }
                Role::Server => {
                    if let Some(transaction) = self.servers.get_mut(&key) {
                        transaction.handle_timeout(now);
                    }
                }
            }
            self.touched(role, key);
        }
    }

    /// When `handle_timeout` is due next (may be early after a timer was
    /// stopped; an early call is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next output; drain until `None` after every `handle_*` call.
    /// Terminated transactions are removed once drained.
    pub fn poll_output(&mut self) -> Option<LayerOutput> {
        // The key is looked at in place and cloned only into an output
        // (each message passes here several times: no allocation per look).
        while let Some((role, key)) = self.dirty.last() {
            let role = *role;
            let (output, terminated) = match role {
                Role::Client => match self.clients.get_mut(key) {
                    Some(transaction) => (transaction.poll_output(), transaction.is_terminated()),
                    None => (None, false),
                },
                Role::Server => match self.servers.get_mut(key) {
                    Some(transaction) => (transaction.poll_output(), transaction.is_terminated()),
                    None => (None, false),
                },
            };
            match output {
                Some(Output::Transmit(message)) => {
                    let key = key.clone();
                    return Some(LayerOutput::Transmit { role, key, message });
                }
                Some(Output::Event(event)) => {
                    let key = key.clone();
                    return Some(LayerOutput::Event { role, key, event });
                }
                Some(Output::Timeout(_)) => continue,
                None => {
                    let Some((_, key)) = self.dirty.pop() else {
                        break;
                    };
                    if terminated {
                        match role {
                            Role::Client => {
                                self.clients.remove(&key);
                            }
                            Role::Server => {
                                if let Some(id) = self
                                    .servers
                                    .remove(&key)
                                    .as_ref()
                                    .and_then(|t| ack_id(t.request()))
                                    && self.awaiting_ack.get(&id) == Some(&key)
                                {
                                    self.awaiting_ack.remove(&id);
                                }
                            }
                        }
                    }
                }
            }
        }
        let deadline = self.poll_timeout();
        if deadline != self.reported_deadline {
            self.reported_deadline = deadline;
            if let Some(at) = deadline {
                return Some(LayerOutput::Timeout(at));
            }
        }
        None
    }
}

/// What an ACK shares with the INVITE it acknowledges: Call-ID and CSeq
/// number.
fn ack_id(message: &Message) -> Option<(String, u32)> {
    let call_id = message.call_id().ok().flatten()?;
    let cseq = message.cseq().ok().flatten()?;
    Some((call_id.to_owned(), cseq.number))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{ack_from, request, response, with_branch};
    use super::*;
    use crate::msg::{HeaderName, MessageBuilder};

    fn drain(layer: &mut TransactionLayer) -> Vec<LayerOutput> {
        std::iter::from_fn(|| layer.poll_output()).collect()
    }

    fn transmitted_codes(outputs: &[LayerOutput]) -> Vec<Option<u16>> {
        outputs
            .iter()
            .filter_map(|output| match output {
                LayerOutput::Transmit { message, .. } => Some(message.status_code()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_flood_of_retransmissions_keeps_one_queued_deadline() {
        // A stranger may send the same INVITE again and again after its
        // final response: each copy makes the transaction send the response
        // again, and the deadline queue must not grow by an entry (a copy
        // of the key) each time until Timer H fires 32 s later.
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let invite = request(Method::Invite);
        layer.handle_received(t0, invite.clone(), Reliability::Unreliable);
        drain(&mut layer);
        let key = TransactionKey::server(&invite).unwrap();
        layer
            .send_response(t0, &key, response(&invite, 486))
            .unwrap();
        drain(&mut layer);
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(100 * i);
            layer.handle_received(now, invite.clone(), Reliability::Unreliable);
            assert_eq!(transmitted_codes(&drain(&mut layer)), [Some(486)]);
            layer.handle_timeout(now);
            drain(&mut layer);
        }
        assert!(
            layer.deadlines.len() <= 2,
            "{} deadlines queued for one transaction",
            layer.deadlines.len()
        );
        // Its timers still fire: without an ACK, Timer H ends it.
        let later = t0 + Duration::from_secs(40);
        layer.handle_timeout(later);
        drain(&mut layer);
        assert_eq!(layer.len(), (0, 0), "Timer H ended the transaction");
    }

    #[test]
    fn uas_invite_rejected_acked_and_cleaned_up() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let invite = request(Method::Invite);
        let Received::NewRequest { key, .. } =
            layer.handle_received(t0, invite.clone(), Reliability::Unreliable)
        else {
            panic!("new request expected")
        };
        assert_eq!(transmitted_codes(&drain(&mut layer)), [Some(100)]);
        assert!(matches!(
            layer.handle_received(t0, invite.clone(), Reliability::Unreliable),
            Received::Matched {
                role: Role::Server,
                ..
            }
        ));
        assert_eq!(transmitted_codes(&drain(&mut layer)), [Some(100)]);
        let busy = invite.response_builder(486, None, Some("b1")).build();
        layer.send_response(t0, &key, busy).unwrap();
        let outputs = drain(&mut layer);
        assert_eq!(transmitted_codes(&outputs), [Some(486)]);
        assert!(outputs.contains(&LayerOutput::Timeout(t0 + Duration::from_millis(500))));
        layer.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(transmitted_codes(&drain(&mut layer)), [Some(486)]);
        layer.handle_received(
            t0 + Duration::from_secs(1),
            ack_from(&invite),
            Reliability::Unreliable,
        );
        let _ = drain(&mut layer);
        layer.handle_timeout(t0 + Duration::from_secs(7));
        let outputs = drain(&mut layer);
        assert!(outputs.iter().any(|o| matches!(
            o,
            LayerOutput::Event {
                event: TransactionEvent::Terminated,
                ..
            }
        )));
        assert!(layer.is_empty());
        assert_eq!(layer.poll_timeout(), None);
    }

    #[test]
    fn uac_invite_answered_then_late_2xx_is_stray() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let invite = request(Method::Invite);
        let key = layer
            .start_client(t0, invite.clone(), Reliability::Unreliable)
            .unwrap();
        assert_eq!(transmitted_codes(&drain(&mut layer)), [None]);
        let ok = response(&invite, 200);
        assert!(matches!(
            layer.handle_received(
                t0 + Duration::from_millis(100),
                ok.clone(),
                Reliability::Unreliable
            ),
            Received::Matched {
                role: Role::Client,
                ..
            }
        ));
        let outputs = drain(&mut layer);
        assert!(outputs.contains(&LayerOutput::Event {
            role: Role::Client,
            key: key.clone(),
            event: TransactionEvent::Response(ok.clone()),
        }));
        layer.handle_timeout(t0 + Duration::from_secs(33));
        let _ = drain(&mut layer);
        assert!(layer.client(&key).is_none());
        assert_eq!(
            layer.handle_received(
                t0 + Duration::from_secs(34),
                ok.clone(),
                Reliability::Unreliable
            ),
            Received::StrayResponse(ok)
        );
    }

    #[test]
    fn cancel_finds_the_invite_it_cancels_and_stray_ack_is_reported() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let invite = request(Method::Invite);
        layer.handle_received(t0, invite.clone(), Reliability::Reliable);
        let cancel = MessageBuilder::request(Method::Cancel, "sip:bob@biloxi.example.com")
            .header(HeaderName::Via, invite.header(&HeaderName::Via).unwrap())
            .header(HeaderName::From, invite.header(&HeaderName::From).unwrap())
            .header(HeaderName::To, invite.header(&HeaderName::To).unwrap())
            .header(
                HeaderName::CallId,
                invite.header(&HeaderName::CallId).unwrap(),
            )
            .header(HeaderName::CSeq, "1 CANCEL")
            .build();
        let Received::NewRequest { key, .. } =
            layer.handle_received(t0, cancel, Reliability::Reliable)
        else {
            panic!("CANCEL is a transaction of its own")
        };
        assert!(layer.server(&key.cancelled_invite()).is_some());
        assert_eq!(layer.len(), (0, 2));

        let stray = ack_from(&with_branch(&request(Method::Invite), "z9hG4bKother"));
        assert!(matches!(
            layer.handle_received(t0, stray, Reliability::Reliable),
            Received::StrayAck(_)
        ));
        let no_via = MessageBuilder::request(Method::Options, "sip:x@y").build();
        assert!(matches!(
            layer.handle_received(t0, no_via, Reliability::Reliable),
            Received::Unmatchable(_)
        ));
    }

    #[test]
    fn timers_of_several_transactions_fire_in_order() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        layer
            .start_client(t0, request(Method::Options), Reliability::Reliable)
            .unwrap();
        let later = t0 + Duration::from_secs(10);
        let invite = with_branch(&request(Method::Invite), "z9hG4bKsecond");
        layer
            .start_client(later, invite, Reliability::Reliable)
            .unwrap();
        let _ = drain(&mut layer);
        assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        layer.handle_timeout(t0 + Duration::from_secs(32));
        let timeouts = drain(&mut layer)
            .into_iter()
            .filter(|o| {
                matches!(
                    o,
                    LayerOutput::Event {
                        event: TransactionEvent::Timeout,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(timeouts, 1);
        assert_eq!(layer.len(), (1, 0));
        layer.handle_timeout(later + Duration::from_secs(32));
        let _ = drain(&mut layer);
        assert!(layer.is_empty());
    }

    /// The instants (ms after the 2xx) at which a 2xx is sent again.
    fn resends(layer: &mut TransactionLayer, t0: Instant, until_ms: u64) -> Vec<u64> {
        let mut at = Vec::new();
        for ms in (0..=until_ms).step_by(50) {
            layer.handle_timeout(t0 + Duration::from_millis(ms));
            let sent = transmitted_codes(&drain(layer));
            at.extend(sent.iter().filter(|c| **c == Some(200)).map(|_| ms));
        }
        at
    }

    /// A layer that received an INVITE over `reliability` and answered it
    /// 200 at the returned instant, its output drained.
    fn answered_invite(reliability: Reliability) -> (TransactionLayer, Message, Instant) {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let invite = request(Method::Invite);
        let Received::NewRequest { key, .. } =
            layer.handle_received(t0, invite.clone(), reliability)
        else {
            panic!("a new INVITE");
        };
        let ok = invite.response_builder(200, None, Some("srv")).build();
        layer.send_response(t0, &key, ok).unwrap();
        let _ = drain(&mut layer);
        (layer, invite, t0)
    }

    #[test]
    fn a_2xx_over_udp_is_resent_until_its_ack_arrives() {
        let (mut layer, invite, t0) = answered_invite(Reliability::Unreliable);
        // T1, 2·T1, 4·T1, then every T2 (RFC 3261 §13.3.1.4).
        assert_eq!(
            resends(&mut layer, t0, 12_000),
            [500, 1500, 3500, 7500, 11_500]
        );
        // The ACK carries a branch of its own: the transaction user hands it over.
        let ack = with_branch(&ack_from(&invite), "z9hG4bKack2xx");
        assert!(matches!(
            layer.handle_received(
                t0 + Duration::from_secs(12),
                ack.clone(),
                Reliability::Unreliable
            ),
            Received::StrayAck(_)
        ));
        layer.ack_arrived(&ack);
        assert!(resends(&mut layer, t0 + Duration::from_secs(12), 10_000).is_empty());
        // The transaction still absorbs the INVITE's retransmissions until
        // timer L, then goes.
        assert_eq!(layer.len(), (0, 1));
        layer.handle_timeout(t0 + Duration::from_secs(33));
        let _ = drain(&mut layer);
        assert!(layer.is_empty());
        assert!(layer.awaiting_ack.is_empty());
    }

    #[test]
    fn a_2xx_over_tcp_is_not_resent() {
        let (mut layer, _, t0) = answered_invite(Reliability::Reliable);
        assert!(resends(&mut layer, t0, 10_000).is_empty());
        assert!(layer.awaiting_ack.is_empty());
    }
}
