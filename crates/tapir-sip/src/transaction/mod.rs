//! The RFC 3261 §17 transaction layer, sans-IO: the four state machines
//! (INVITE and non-INVITE, client and server) with timers A–K, plus the
//! RFC 6026 "Accepted" state (timers L and M) so that 2xx retransmissions
//! and their ACKs never look like new transactions.
//!
//! A transaction never reads the clock and never touches a socket. The
//! driver feeds it what happened (`handle_response`, `handle_request`,
//! `send_response`, `handle_timeout(now)`, `handle_transport_error`) and
//! drains [`Output`]s with `poll_output()` until it returns `None`:
//! messages to transmit, events for the transaction user, and the instant
//! at which `handle_timeout` is due next.
//!
//! Matching a received message to its transaction uses [`TransactionKey`]
//! (RFC 3261 §17.1.3 and §17.2.3); the RFC 2543 fallback for requests
//! without a `z9hG4bK` branch is not implemented.

mod client;
mod layer;
mod server;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use client::{ClientState, ClientTransaction, build_ack};
pub use layer::{LayerOutput, Received, Role, TransactionLayer};
pub use server::{ServerState, ServerTransaction};

use crate::msg::{Message, Method};

/// The RFC 3261 timer base values (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE
    /// responses, 4 s by default.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s by default.
    pub t4: Duration,
    /// Timer D, how long a client INVITE transaction absorbs final response
    /// retransmissions over an unreliable transport (at least 32 s).
    pub timer_d: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    /// 64·T1, the transaction timeout (timers B, F, H, J, L, M).
    pub fn transaction_timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Whether the transport retransmits by itself (TCP, TLS, SCTP) or not (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// TCP, TLS, SCTP, WebSocket: no retransmission timers.
    Reliable,
    /// UDP: the transaction retransmits.
    Unreliable,
}

/// The named timers of RFC 3261 §17 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerName {
    /// INVITE request retransmit (client, unreliable).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmits (client INVITE, Completed).
    D,
    /// Non-INVITE request retransmit (client, unreliable).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server, unreliable).
    G,
    /// Wait time for ACK receipt (server INVITE).
    H,
    /// Wait time for ACK retransmits (server INVITE, Confirmed).
    I,
    /// Wait time for non-INVITE request retransmits (server).
    J,
    /// Wait time for response retransmits (client non-INVITE).
    K,
    /// Wait time for accepted INVITE request retransmits (server, RFC 6026).
    L,
    /// Wait time for retransmission of 2xx to INVITE (client, RFC 6026).
    M,
    /// Wait time for the final response to a cancelled INVITE (client):
    /// after 64·T1 the INVITE is given up (RFC 3261 §9.1).
    Cancelled,
}

/// What a transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A response for the user of a client transaction (provisional,
    /// final, and 2xx retransmissions while Accepted).
    Response(Message),
    /// An ACK for a 2xx, received by a server INVITE transaction in the
    /// Accepted state (RFC 6026 §8.7).
    Ack(Message),
    /// No final response (timers B and F) or no ACK (timer H) in time.
    Timeout,
    /// The transport failed to deliver a message.
    TransportError,
    /// The transaction is over and can be dropped.
    Terminated,
}

/// One item drained from a transaction with `poll_output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Give this message to the transport.
    Transmit(Message),
    /// Tell the transaction user.
    Event(TransactionEvent),
    /// Call `handle_timeout` at this instant (reported when it changes).
    Timeout(Instant),
}

/// Why a transaction could not be created or refused an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// The request has no Via or no branch parameter.
    #[error("request has no Via branch")]
    MissingBranch,
    /// The message has no valid CSeq.
    #[error("message has no valid CSeq")]
    MissingCSeq,
    /// ACK never creates a transaction (RFC 3261 §17.1).
    #[error("ACK does not create a transaction")]
    AckCreatesNoTransaction,
    /// The message is a response where a request was expected, or the reverse.
    #[error("wrong kind of message")]
    WrongMessageKind,
    /// The action is not allowed in the transaction's current state.
    #[error("not allowed in the current transaction state")]
    InvalidState,
}

/// Identifies a transaction: top Via branch, sent-by (server side) and
/// method, with ACK matching INVITE (RFC 3261 §17.1.3, §17.2.3).
///
/// A key is looked up many times per message (the layer's tables, the
/// B2BUA's), so it carries its own digest: a SipHash of all three parts
/// under this process's random key, computed once. Tables hash that one
/// number; an attacker who picks branches still cannot aim at a bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransactionKey {
    branch: String,
    sent_by: String,
    method: Method,
    digest: u64,
}

impl std::hash::Hash for TransactionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl TransactionKey {
    /// The key of `branch`, `sent_by` (empty for a client key) and `method`.
    pub fn new(branch: String, sent_by: String, method: Method) -> Self {
        use std::hash::{BuildHasher, Hash, Hasher};
        static SEED: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let mut hasher = SEED.get_or_init(std::hash::RandomState::new).build_hasher();
        branch.hash(&mut hasher);
        sent_by.hash(&mut hasher);
        method.hash(&mut hasher);
        let digest = hasher.finish();
        TransactionKey {
            branch,
            sent_by,
            method,
            digest,
        }
    }

    /// The top Via branch.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The top Via sent-by (`host[:port]`), empty for client keys.
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }

    /// The method (INVITE for an ACK).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The same branch and sent-by with another method.
    pub fn with_method(&self, method: Method) -> Self {
        TransactionKey::new(self.branch.clone(), self.sent_by.clone(), method)
    }

    fn build(message: &Message, with_sent_by: bool) -> Result<Self, TransactionError> {
        let via = message
            .top_via()
            .ok()
            .flatten()
            .ok_or(TransactionError::MissingBranch)?;
        let branch = via
            .branch()
            .ok_or(TransactionError::MissingBranch)?
            .to_owned();
        let method = match message.method() {
            Some(method) => method.clone(),
            None => {
                let cseq = message
                    .cseq()
                    .ok()
                    .flatten()
                    .ok_or(TransactionError::MissingCSeq)?;
                Method::from_token(cseq.method)
            }
        };
        let method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        let sent_by = if with_sent_by {
            let mut sent_by = String::with_capacity(24);
            via.host.push_to(&mut sent_by);
            if let Some(port) = via.port {
                sent_by.push(':');
                sent_by.push_str(itoa::Buffer::new().format(port));
            }
            sent_by
        } else {
            String::new()
        };
        Ok(TransactionKey::new(branch, sent_by, method))
    }

    /// The key under which a client transaction is found by its responses
    /// (branch and CSeq method, §17.1.3). Works for the request and its responses.
    pub fn client(message: &Message) -> Result<Self, TransactionError> {
        Self::build(message, false)
    }

    /// The key under which a server transaction is found by request
    /// retransmissions and ACKs (branch, sent-by, method, §17.2.3).
    pub fn server(request: &Message) -> Result<Self, TransactionError> {
        Self::build(request, true)
    }

    /// For the key of a CANCEL server transaction, the key of the INVITE
    /// server transaction it cancels (RFC 3261 §9.2).
    pub fn cancelled_invite(&self) -> Self {
        self.with_method(Method::Invite)
    }
}

/// Timers and the output queue shared by the four machines.
#[derive(Debug)]
struct Core {
    config: TimerConfig,
    reliability: Reliability,
    outputs: VecDeque<Output>,
    timers: Vec<(TimerName, Instant)>,
    reported_deadline: Option<Instant>,
    /// The earliest entry the layer's deadline queue holds for this
    /// transaction (the layer's bookkeeping: see `TransactionLayer`).
    queued: Option<Instant>,
}

impl Core {
    fn new(config: TimerConfig, reliability: Reliability) -> Self {
        Core {
            config,
            reliability,
            outputs: VecDeque::new(),
            timers: Vec::with_capacity(3),
            queued: None,
            reported_deadline: None,
        }
    }

    fn unreliable(&self) -> bool {
        self.reliability == Reliability::Unreliable
    }

    fn start(&mut self, timer: TimerName, at: Instant) {
        self.stop(timer);
        self.timers.push((timer, at));
    }

    fn stop(&mut self, timer: TimerName) {
        self.timers.retain(|(name, _)| *name != timer);
    }

    fn stop_all(&mut self) {
        self.timers.clear();
    }

    /// Removes and returns the earliest timer due at `now`.
    fn take_due(&mut self, now: Instant) -> Option<TimerName> {
        let (index, _) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (_, at))| *at)?;
        Some(self.timers.swap_remove(index).0)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().map(|(_, at)| *at).min()
    }

    fn transmit(&mut self, message: Message) {
        self.outputs.push_back(Output::Transmit(message));
    }

    fn event(&mut self, event: TransactionEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        let deadline = self.next_deadline();
        if deadline != self.reported_deadline {
            self.reported_deadline = deadline;
            if let Some(at) = deadline {
                return Some(Output::Timeout(at));
            }
        }
        None
    }
}

#[cfg(test)]
mod test_support {
    use bytes::Bytes;

    use crate::msg::{HeaderName, Message, MessageBuilder, Method};

    use super::Output;

    pub fn request(method: Method) -> Message {
        let cseq = format!("1 {method}");
        MessageBuilder::request(method, "sip:bob@biloxi.example.com")
            .header(
                HeaderName::Via,
                "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
            )
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::To, "Bob <sip:bob@biloxi.example.com>")
            .header(
                HeaderName::From,
                "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            )
            .header(
                HeaderName::CallId,
                "a84b4c76e66710@pc33.atlanta.example.com",
            )
            .header(HeaderName::CSeq, cseq)
            .header(HeaderName::Route, "<sip:proxy.example.com;lr>")
            .build()
    }

    pub fn response(request: &Message, code: u16) -> Message {
        // Round trip through bytes, as a response from the network would be.
        let built = request
            .response_builder(code, None, Some("a6c85cf"))
            .build();
        Message::parse_datagram(built.to_bytes()).unwrap()
    }

    pub fn ack_from(request: &Message) -> Message {
        let mut bytes = request.to_bytes().to_vec();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let text = text
            .replacen("INVITE sip", "ACK sip", 1)
            .replacen("1 INVITE", "1 ACK", 1);
        bytes.clear();
        bytes.extend_from_slice(text.as_bytes());
        Message::parse_datagram(Bytes::from(bytes)).unwrap()
    }

    /// The same message with another top Via branch.
    pub fn with_branch(message: &Message, branch: &str) -> Message {
        let text = String::from_utf8(message.to_bytes().to_vec()).unwrap();
        let text = text.replacen("z9hG4bK776asdhds", branch, 1);
        Message::parse_datagram(Bytes::from(text)).unwrap()
    }

    /// Drains outputs: (transmitted messages, events).
    pub fn drain(
        mut poll: impl FnMut() -> Option<Output>,
    ) -> (Vec<Message>, Vec<super::TransactionEvent>) {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(output) = poll() {
            match output {
                Output::Transmit(message) => sent.push(message),
                Output::Event(event) => events.push(event),
                Output::Timeout(_) => {}
            }
        }
        (sent, events)
    }
}
