//! Client transactions (RFC 3261 §17.1): the INVITE machine (timers A, B,
//! D, and RFC 6026 M) and the non-INVITE machine (timers E, F, K).

use std::time::{Duration, Instant};

use crate::msg::{HeaderName, Message, MessageBuilder, Method};

use super::{
    Core, Output, Reliability, TimerConfig, TimerName, TransactionError, TransactionEvent,
    TransactionKey,
};

/// States of a client transaction (INVITE uses Calling/Accepted, non-INVITE Trying).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, no response yet.
    Calling,
    /// Non-INVITE request sent, no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// INVITE answered with 2xx (RFC 6026): further 2xx are passed up.
    Accepted,
    /// Final response received; absorbing retransmissions.
    Completed,
    /// Over.
    Terminated,
}

/// A client transaction, INVITE or non-INVITE.
#[derive(Debug)]
pub struct ClientTransaction {
    core: Core,
    key: TransactionKey,
    request: Message,
    invite: bool,
    state: ClientState,
    retransmit_interval: Duration,
    ack: Option<Message>,
}

impl ClientTransaction {
    /// Starts a transaction for `request`, sending it now. The request must
    /// carry a top Via with a branch; ACK creates no transaction.
    pub fn new(
        now: Instant,
        request: Message,
        reliability: Reliability,
        config: TimerConfig,
    ) -> Result<Self, TransactionError> {
        let method = request.method().ok_or(TransactionError::WrongMessageKind)?;
        if *method == Method::Ack {
            return Err(TransactionError::AckCreatesNoTransaction);
        }
        let invite = *method == Method::Invite;
        let key = TransactionKey::client(&request)?;
        let mut core = Core::new(config, reliability);
        core.transmit(request.clone());
        let timeout = now + config.transaction_timeout();
        if invite {
            core.start(TimerName::B, timeout);
            if core.unreliable() {
                core.start(TimerName::A, now + config.t1);
            }
        } else {
            core.start(TimerName::F, timeout);
            if core.unreliable() {
                core.start(TimerName::E, now + config.t1);
            }
        }
        Ok(ClientTransaction {
            core,
            key,
            request,
            invite,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            retransmit_interval: config.t1,
            ack: None,
        })
    }

    /// The key its responses match.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The request this transaction sent.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// True once terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
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
        self.state = ClientState::Terminated;
        self.core.stop_all();
        self.core.event(TransactionEvent::Terminated);
    }

    /// Feeds a response that matched this transaction's key.
    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let Some(code) = response.status_code() else {
            return;
        };
        if self.invite {
            self.invite_response(now, code, response);
        } else {
            self.non_invite_response(now, code, response);
        }
    }

    fn invite_response(&mut self, now: Instant, code: u16, response: Message) {
        use ClientState::*;
        match (self.state, code) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.core.stop(TimerName::A);
                self.core.stop(TimerName::B);
                self.core.event(TransactionEvent::Response(response));
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.core.stop_all();
                self.core
                    .start(TimerName::M, now + self.core.config.transaction_timeout());
                self.core.event(TransactionEvent::Response(response));
            }
            (Accepted, 200..=299) => self.core.event(TransactionEvent::Response(response)),
            (Calling | Proceeding, 300..=699) => {
                self.state = Completed;
                self.core.stop_all();
                let ack = build_ack(&self.request, &response);
                self.core.transmit(ack.clone());
                self.ack = Some(ack);
                self.core.event(TransactionEvent::Response(response));
                if self.core.unreliable() {
                    self.core
                        .start(TimerName::D, now + self.core.config.timer_d);
                } else {
                    self.terminate();
                }
            }
            (Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.core.transmit(ack.clone());
                }
            }
            _ => {}
        }
    }

    fn non_invite_response(&mut self, now: Instant, code: u16, response: Message) {
        use ClientState::*;
        match (self.state, code) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.core.event(TransactionEvent::Response(response));
            }
            (Trying | Proceeding, 200..=699) => {
                self.state = Completed;
                self.core.stop_all();
                self.core.event(TransactionEvent::Response(response));
                if self.core.unreliable() {
                    self.core.start(TimerName::K, now + self.core.config.t4);
                } else {
                    self.terminate();
                }
            }
            _ => {}
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.core.take_due(now) {
            self.fire(now, timer);
        }
    }

    fn fire(&mut self, now: Instant, timer: TimerName) {
        use ClientState::*;
        let config = self.core.config;
        match (timer, self.state) {
            (TimerName::A, Calling) => {
                self.core.transmit(self.request.clone());
                self.retransmit_interval = self.retransmit_interval.saturating_mul(2);
                self.core
                    .start(TimerName::A, now + self.retransmit_interval);
            }
            (TimerName::E, Trying | Proceeding) => {
                self.core.transmit(self.request.clone());
                self.retransmit_interval = if self.state == Trying {
                    self.retransmit_interval.saturating_mul(2).min(config.t2)
                } else {
                    config.t2
                };
                self.core
                    .start(TimerName::E, now + self.retransmit_interval);
            }
            (TimerName::B, Calling)
            | (TimerName::F, Trying | Proceeding)
            | (TimerName::Cancelled, Calling | Proceeding) => {
                self.core.event(TransactionEvent::Timeout);
                self.terminate();
            }
            (TimerName::D, Completed) | (TimerName::K, Completed) | (TimerName::M, Accepted) => {
                self.terminate();
            }
            _ => {}
        }
    }

    /// The user sent a CANCEL for this INVITE: without a final response
    /// within 64·T1 the transaction times out (RFC 3261 §9.1: the UAC
    /// considers the INVITE cancelled), even once a provisional response
    /// has stopped Timer B.
    pub fn cancel_sent(&mut self, now: Instant) {
        if self.invite && matches!(self.state, ClientState::Calling | ClientState::Proceeding) {
            let at = now + self.core.config.transaction_timeout();
            self.core.start(TimerName::Cancelled, at);
        }
    }

    /// The transport could not deliver the request.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if matches!(
            self.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        ) {
            self.core.event(TransactionEvent::TransportError);
            self.terminate();
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via, From, Call-ID and Route as the INVITE, the To of
/// the response, CSeq number of the INVITE with method ACK.
pub fn build_ack(invite: &Message, response: &Message) -> Message {
    let uri = match invite.start_line() {
        crate::msg::StartLine::Request { uri, .. } => uri.clone(),
        crate::msg::StartLine::Response { .. } => crate::msg::Text::default(),
    };
    let mut builder = MessageBuilder::request(Method::Ack, uri);
    if let Some(via) = invite.header(&HeaderName::Via) {
        let top = crate::msg::first_list_element(via);
        builder = builder.header(HeaderName::Via, top);
    }
    for name in [HeaderName::Route, HeaderName::From] {
        for value in invite.header_values(&name) {
            builder = builder.header(name.clone(), value);
        }
    }
    if let Some(to) = response.header(&HeaderName::To) {
        builder = builder.header(HeaderName::To, to);
    }
    if let Some(call_id) = invite.header(&HeaderName::CallId) {
        builder = builder.header(HeaderName::CallId, call_id);
    }
    let number = invite.cseq().ok().flatten().map_or(0, |cseq| cseq.number);
    builder = builder
        .header(HeaderName::CSeq, format!("{number} ACK"))
        .header(HeaderName::MaxForwards, "70");
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{drain, request, response};
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn transmissions_until(
        tx: &mut ClientTransaction,
        start: Instant,
        end: Duration,
    ) -> Vec<Duration> {
        let mut times = Vec::new();
        let mut now = start;
        loop {
            let (sent, _) = drain(|| tx.poll_output());
            times.extend(sent.iter().map(|_| now - start));
            match tx.poll_timeout() {
                Some(at) if at - start <= end => {
                    now = at;
                    tx.handle_timeout(now);
                }
                _ => break,
            }
        }
        times
    }

    #[test]
    fn non_invite_over_udp_retransmits_with_timer_e_capped_at_t2_then_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            request(Method::Options),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let times = transmissions_until(&mut tx, t0, Duration::from_secs(31));
        let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500]
            .iter()
            .map(|ms: &u32| MS * *ms)
            .collect();
        assert_eq!(times, expected);
        tx.handle_timeout(t0 + Duration::from_secs(32));
        let (_, events) = drain(|| tx.poll_output());
        assert!(events.contains(&TransactionEvent::Timeout));
        assert_eq!(events.last(), Some(&TransactionEvent::Terminated));
        assert!(tx.is_terminated());
    }

    #[test]
    fn invite_over_udp_doubles_timer_a_until_timer_b() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            request(Method::Invite),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let times = transmissions_until(&mut tx, t0, Duration::from_secs(31));
        let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 15500, 31500]
            .iter()
            .map(|ms: &u32| MS * *ms)
            .filter(|d| *d <= Duration::from_secs(31))
            .collect();
        assert_eq!(times, expected);
        tx.handle_timeout(t0 + Duration::from_secs(32));
        let (_, events) = drain(|| tx.poll_output());
        assert_eq!(
            events,
            [TransactionEvent::Timeout, TransactionEvent::Terminated]
        );
    }

    #[test]
    fn configurable_t1_scales_timer_b() {
        let t0 = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        let mut tx =
            ClientTransaction::new(t0, request(Method::Invite), Reliability::Reliable, config)
                .unwrap();
        let _ = drain(|| tx.poll_output());
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(6400)));
        tx.handle_timeout(t0 + Duration::from_millis(6399));
        assert!(!tx.is_terminated());
        tx.handle_timeout(t0 + Duration::from_millis(6400));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            request(Method::Options),
            Reliability::Reliable,
            TimerConfig::default(),
        )
        .unwrap();
        let times = transmissions_until(&mut tx, t0, Duration::from_secs(40));
        assert_eq!(times, [Duration::ZERO]);
        assert!(tx.is_terminated());
    }

    #[test]
    fn a_cancelled_invite_without_final_response_times_out_after_64_t1() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ClientTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        tx.handle_response(t0 + 100 * MS, response(&invite, 180));
        let _ = drain(|| tx.poll_output());
        assert_eq!(tx.poll_timeout(), None, "Proceeding waits for ever");
        tx.cancel_sent(t0 + 1000 * MS);
        tx.handle_response(t0 + 2000 * MS, response(&invite, 180));
        assert_eq!(tx.poll_timeout(), Some(t0 + 33_000 * MS));
        tx.handle_timeout(t0 + 33_000 * MS);
        let (_, events) = drain(|| tx.poll_output());
        assert_eq!(
            events[1..],
            [TransactionEvent::Timeout, TransactionEvent::Terminated]
        );
    }

    #[test]
    fn invite_provisional_stops_retransmission_and_failure_is_acked() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ClientTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let _ = drain(|| tx.poll_output());
        tx.handle_response(t0 + 100 * MS, response(&invite, 180));
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        let (_, events) = drain(|| tx.poll_output());
        assert!(
            matches!(&events[..], [TransactionEvent::Response(r)] if r.status_code() == Some(180))
        );

        let busy = response(&invite, 486);
        tx.handle_response(t0 + 200 * MS, busy.clone());
        assert_eq!(tx.state(), ClientState::Completed);
        let (sent, events) = drain(|| tx.poll_output());
        assert_eq!(sent.len(), 1);
        let ack = &sent[0];
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.cseq().unwrap().unwrap().number, 1);
        assert_eq!(ack.cseq().unwrap().unwrap().method, "ACK");
        assert_eq!(ack.to_header().unwrap().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(
            ack.top_via().unwrap().unwrap().branch(),
            Some("z9hG4bK776asdhds")
        );
        assert_eq!(ack.routes().unwrap().len(), 1);
        assert!(
            matches!(&events[..], [TransactionEvent::Response(r)] if r.status_code() == Some(486))
        );

        // A retransmitted 486 is absorbed and answered with the same ACK.
        tx.handle_response(t0 + 300 * MS, busy);
        let (sent, events) = drain(|| tx.poll_output());
        assert_eq!(sent.len(), 1);
        assert!(events.is_empty());

        tx.handle_timeout(t0 + 200 * MS + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn invite_2xx_enters_accepted_and_passes_retransmissions_up() {
        let t0 = Instant::now();
        let invite = request(Method::Invite);
        let mut tx = ClientTransaction::new(
            t0,
            invite.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let _ = drain(|| tx.poll_output());
        tx.handle_response(t0 + 100 * MS, response(&invite, 200));
        tx.handle_response(t0 + 600 * MS, response(&invite, 200));
        assert_eq!(tx.state(), ClientState::Accepted);
        let (sent, events) = drain(|| tx.poll_output());
        assert!(sent.is_empty(), "the TU sends the ACK for 2xx");
        assert_eq!(events.len(), 2);
        tx.handle_timeout(t0 + 100 * MS + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_invite_final_response_then_timer_k() {
        let t0 = Instant::now();
        let options = request(Method::Options);
        let mut tx = ClientTransaction::new(
            t0,
            options.clone(),
            Reliability::Unreliable,
            TimerConfig::default(),
        )
        .unwrap();
        let _ = drain(|| tx.poll_output());
        tx.handle_response(t0 + 100 * MS, response(&options, 200));
        tx.handle_response(t0 + 200 * MS, response(&options, 200));
        let (_, events) = drain(|| tx.poll_output());
        assert_eq!(events.len(), 1, "retransmitted final absorbed");
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + 100 * MS + Duration::from_secs(5))
        );
        tx.handle_timeout(t0 + Duration::from_secs(6));
        assert!(tx.is_terminated());
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            t0,
            request(Method::Bye),
            Reliability::Reliable,
            TimerConfig::default(),
        )
        .unwrap();
        tx.handle_transport_error(t0);
        let (_, events) = drain(|| tx.poll_output());
        assert_eq!(
            events,
            [
                TransactionEvent::TransportError,
                TransactionEvent::Terminated
            ]
        );
    }

    #[test]
    fn ack_creates_no_transaction() {
        let result = ClientTransaction::new(
            Instant::now(),
            request(Method::Ack),
            Reliability::Reliable,
            TimerConfig::default(),
        );
        assert_eq!(
            result.err(),
            Some(TransactionError::AckCreatesNoTransaction)
        );
    }
}
