//! Server transactions (RFC 3261 §17.2): the INVITE machine (timers G, H,
//! I, and RFC 6026 L) and the non-INVITE machine (timer J).
//!
//! Over an unreliable transport the INVITE machine also resends its 2xx
//! while Accepted, T1 doubling up to T2, until [`ServerTransaction::ack_arrived`]
//! (RFC 3261 §13.3.1.4 gives this to the UA core; it lives here, beside the
//! identical retransmission of a final error, so that every user of the
//! transaction layer gets it).

use std::time::{Duration, Instant};

use crate::msg::{Message, Method};

use super::{
    Core, Output, Reliability, TimerConfig, TimerName, TransactionError, TransactionEvent,
    TransactionKey,
};

/// States of a server transaction (INVITE starts in Proceeding, non-INVITE in Trying).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE request received, nothing sent yet.
    Trying,
    /// A provisional response was sent (INVITE: 100 Trying at creation).
    Proceeding,
    /// INVITE answered with 2xx (RFC 6026): request retransmissions absorbed,
    /// ACKs passed up.
    Accepted,
    /// Final response sent; retransmitting it (INVITE) or absorbing
    /// request retransmissions (non-INVITE).
    Completed,
    /// INVITE: ACK received, absorbing ACK retransmissions.
    Confirmed,
    /// Over.
    Terminated,
}

/// A server transaction, INVITE or non-INVITE.
#[derive(Debug)]
pub struct ServerTransaction {
    core: Core,
    key: TransactionKey,
    request: Message,
    invite: bool,
    state: ServerState,
    last_response: Option<Message>,
    retransmit_interval: Duration,
}

impl ServerTransaction {
    /// Creates the transaction for a received request. An INVITE
    /// transaction answers `100 Trying` at once (RFC 3261 §17.2.1).
    pub fn new(
        _now: Instant,
        request: Message,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        let method = request.method().ok_or(TransactionError::WrongMessageKind)?;
        if *method == Method::Ack {
            return Err(TransactionError::AckCreatesNoTransaction);
        }
        let invite = *method == Method::Invite;
        let key = TransactionKey::server(&request)?;
        let mut core = Core::new(config, reliability);
        let mut last_response = None;
        let state = if invite {
            let trying = request.response_builder(100, None, None).build();
            core.transmit(trying.clone());
            last_response = Some(trying);
            ServerState::Proceeding
        } else {
            ServerState::Trying
        };
        Ok(ServerTransaction {
            core,
            key,
            request,
            invite,
            state,
            last_response,
            retransmit_interval: config.t1,
        })
    }

    /// The key its request retransmissions and ACKs match.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The request that created the transaction.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// True once terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// The next output; `None` when there is nothing more to do now.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.core.poll_output()
    }

    /// The earliest time the layer's deadline queue holds for it.
    pub(crate) fn queued_mut(&mut self) -> &mut Option<Instant> {
        &mut self.core.queued
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.core.stop_all();
        self.core.event(TransactionEvent::Terminated);
    }

    /// Feeds a request that matched this transaction's key: a
    /// retransmission of the original request, or an ACK.
    pub fn handle_request(&mut self, now: Instant, request: Message) {
        use ServerState::*;
        let is_ack = request.method() == Some(&Method::Ack);
        match (self.state, is_ack) {
            (Completed, true) if self.invite => {
                self.state = Confirmed;
                self.core.stop(TimerName::G);
                self.core.stop(TimerName::H);
                if self.core.unreliable() {
                    let at = now + self.core.config.t4;
                    self.core.start(TimerName::I, at);
                } else {
                    self.terminate();
                }
            }
            (Accepted, true) => {
                self.core.stop(TimerName::G);
                self.core.event(TransactionEvent::Ack(request));
            }
            (Proceeding | Completed, false) => {
                if let Some(response) = &self.last_response {
                    self.core.transmit(response.clone());
                }
            }
            // Trying, Accepted, Confirmed: absorbed.
            _ => {}
        }
    }

    /// Sends a response from the transaction user.
    pub fn send_response(
        &mut self,
        now: Instant,
        response: Message,
    ) -> Result<(), TransactionError> {
        use ServerState::*;
        let code = response
            .status_code()
            .ok_or(TransactionError::WrongMessageKind)?;
        let config = self.core.config;
        match (self.state, code, self.invite) {
            (Trying | Proceeding, 100..=199, _) => {
                self.state = Proceeding;
                self.send(response);
            }
            (Proceeding, 200..=299, true) => {
                self.state = Accepted;
                self.send(response);
                if self.core.unreliable() {
                    self.retransmit_interval = config.t1;
                    self.core.start(TimerName::G, now + config.t1);
                }
                self.core
                    .start(TimerName::L, now + config.transaction_timeout());
            }
            // The TU retransmits its 2xx until the ACK arrives.
            (Accepted, 200..=299, true) => self.core.transmit(response),
            (Proceeding, 300..=699, true) => {
                self.state = Completed;
                self.send(response);
                if self.core.unreliable() {
                    self.retransmit_interval = config.t1;
                    self.core.start(TimerName::G, now + config.t1);
                }
                self.core
                    .start(TimerName::H, now + config.transaction_timeout());
            }
            (Trying | Proceeding, 200..=699, false) => {
                self.state = Completed;
                self.send(response);
                if self.core.unreliable() {
                    self.core
                        .start(TimerName::J, now + config.transaction_timeout());
                } else {
                    self.terminate();
                }
            }
            _ => return Err(TransactionError::InvalidState),
        }
        Ok(())
    }

    fn send(&mut self, response: Message) {
        self.core.transmit(response.clone());
        self.last_response = Some(response);
    }

    /// The ACK of this INVITE's 2xx reached the transaction user (it
    /// carries its own branch, so it matches no transaction): the 2xx is
    /// no longer resent. The transaction stays Accepted until timer L, to
    /// absorb the INVITE's retransmissions.
    pub fn ack_arrived(&mut self) {
        if self.state == ServerState::Accepted {
            self.core.stop(TimerName::G);
        }
    }

    /// Whether the transaction resends its 2xx until an ACK arrives.
    pub fn awaits_ack(&self) -> bool {
        self.state == ServerState::Accepted && self.core.unreliable()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.core.take_due(now) {
            self.fire(now, timer);
        }
    }

    fn fire(&mut self, now: Instant, timer: TimerName) {
        use ServerState::*;
        match (timer, self.state) {
            (TimerName::G, Completed | Accepted) => {
                if let Some(response) = &self.last_response {
                    self.core.transmit(response.clone());
                }
                self.retransmit_interval = self
                    .retransmit_interval
                    .saturating_mul(2)
                    .min(self.core.config.t2);
                self.core
                    .start(TimerName::G, now + self.retransmit_interval);
            }
            (TimerName::H, Completed) => {
                self.core.event(TransactionEvent::Timeout);
                self.terminate();
            }
            (TimerName::I, Confirmed) | (TimerName::J, Completed) | (TimerName::L, Accepted) => {
                self.terminate();
            }
            _ => {}
        }
    }

    /// The transport could not deliver a response.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if !self.is_terminated() {
            self.core.event(TransactionEvent::TransportError);
            self.terminate();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ack_from, drain, request};
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn reply(request: &Message, code: u16) -> Message {
        request.response_builder(code, None, Some("srv1")).build()
    }

    #[test]
    fn invite_answers_100_trying_and_repeats_it_on_retransmission() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ServerTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let (sent, _) = drain(|| tx.poll_output());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status_code(), Some(100));
        assert_eq!(
            sent[0].to_header().unwrap().unwrap().tag(),
            None,
            "no To tag on 100"
        );
        tx.handle_request(t0 + 500 * MS, invite.clone());
        let (sent, _) = drain(|| tx.poll_output());
        assert_eq!(sent[0].status_code(), Some(100));
        tx.send_response(t0 + 600 * MS, reply(&invite, 180))
            .unwrap();
        tx.handle_request(t0 + 1500 * MS, invite);
        let (sent, _) = drain(|| tx.poll_output());
        let codes: Vec<_> = sent.iter().map(|m| m.status_code()).collect();
        assert_eq!(codes, [Some(180), Some(180)]);
    }

    #[test]
    fn invite_failure_retransmits_with_timer_g_until_ack_then_timer_i() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ServerTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let _ = drain(|| tx.poll_output());
        tx.send_response(t0, reply(&invite, 486)).unwrap();
        let mut sent_at = Vec::new();
        let mut now = t0;
        while now - t0 < Duration::from_secs(12) {
            let (sent, _) = drain(|| tx.poll_output());
            sent_at.extend(sent.iter().map(|_| now - t0));
            now = tx.poll_timeout().unwrap();
            tx.handle_timeout(now);
        }
        let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 11500]
            .iter()
            .map(|ms: &u32| MS * *ms)
            .collect();
        assert_eq!(sent_at, expected);
        let ack_time = now;
        tx.handle_request(ack_time, ack_from(&invite));
        assert_eq!(tx.state(), ServerState::Confirmed);
        let _ = drain(|| tx.poll_output());
        // ACK retransmissions are absorbed; Timer I ends it after T4.
        tx.handle_request(ack_time + MS, ack_from(&invite));
        assert_eq!(tx.poll_timeout(), Some(ack_time + Duration::from_secs(5)));
        tx.handle_timeout(ack_time + Duration::from_secs(5));
        let (sent, events) = drain(|| tx.poll_output());
        assert!(sent.is_empty());
        assert_eq!(events, [TransactionEvent::Terminated]);
    }

    #[test]
    fn invite_failure_without_ack_times_out_with_timer_h() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ServerTransaction::new(
            t0,
            invite.clone(),
            Reliability::Reliable,
            TimerConfig::default(),
        )
        .unwrap();
        tx.send_response(t0, reply(&invite, 603)).unwrap();
        let (sent, _) = drain(|| tx.poll_output());
        assert_eq!(
            sent.len(),
            2,
            "100 Trying then 603, no retransmission over TCP"
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        let (_, events) = drain(|| tx.poll_output());
        assert_eq!(
            events,
            [TransactionEvent::Timeout, TransactionEvent::Terminated]
        );
    }

    #[test]
    fn invite_2xx_accepted_passes_ack_up_and_absorbs_retransmissions() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ServerTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let _ = drain(|| tx.poll_output());
        tx.send_response(t0, reply(&invite, 200)).unwrap();
        assert_eq!(tx.state(), ServerState::Accepted);
        tx.handle_request(t0 + 500 * MS, invite.clone());
        tx.send_response(t0 + 500 * MS, reply(&invite, 200))
            .unwrap();
        tx.handle_request(t0 + 600 * MS, ack_from(&invite));
        let (sent, events) = drain(|| tx.poll_output());
        assert_eq!(
            sent.len(),
            2,
            "original 2xx and the TU's retransmission only"
        );
        assert!(matches!(&events[..], [TransactionEvent::Ack(_)]));
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_invite_absorbs_in_trying_repeats_final_then_timer_j() {
        let t0 = Instant::now();
        let register = request(Method::Register);
        let mut tx = ServerTransaction::new(
            t0,
            register.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        tx.handle_request(t0 + 500 * MS, register.clone());
        assert_eq!(drain(|| tx.poll_output()).0.len(), 0);
        tx.send_response(t0 + 600 * MS, reply(&register, 200))
            .unwrap();
        tx.handle_request(t0 + 1500 * MS, register.clone());
        let (sent, _) = drain(|| tx.poll_output());
        assert_eq!(sent.len(), 2);
        assert_eq!(
            tx.send_response(t0 + 1600 * MS, reply(&register, 500)),
            Err(TransactionError::InvalidState)
        );
        tx.handle_timeout(t0 + 600 * MS + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_invite_over_tcp_terminates_on_final() {
        let t0 = Instant::now();
        let bye = request(Method::Bye);
        let mut tx = ServerTransaction::new(
            t0,
            bye.clone(),
            Reliability::Reliable,
            TimerConfig::default(),
        )
        .unwrap();
        tx.send_response(t0, reply(&bye, 200)).unwrap();
        assert!(tx.is_terminated());
    }

    #[test]
    fn ack_matches_the_invite_server_transaction() {
        let invite = request(Method::Invite);
        let ack = ack_from(&invite);
        assert_eq!(
            TransactionKey::server(&invite).unwrap(),
            TransactionKey::server(&ack).unwrap()
        );
        let cancel_key = TransactionKey::server(&invite)
            .unwrap()
            .with_method(Method::Cancel);
        assert_ne!(TransactionKey::server(&invite).unwrap(), cancel_key);
    }
}
