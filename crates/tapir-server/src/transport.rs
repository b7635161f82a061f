//! SIP's sockets beside the loop: TCP and TLS connections (accepted, or
//! opened to a trunk's carrier), framed with `tapir_sip`'s stream framer,
//! and the `tapir_sip_messages_total` metric. The UDP socket is read by the
//! loop itself ([`crate::actor`]).
//!
//! Each connection has a reader task, which frames what arrives and hands
//! each message to the loop over one bounded channel (a full channel makes
//! the reader wait: TCP's own flow control pushes back on the peer, and
//! nothing is dropped), and a writer task, which writes what the loop sends
//! it over an unbounded channel, in order. [`Streams`] is the loop's side:
//! it knows the open connections, and holds messages for a carrier's
//! connection while it opens. It holds no SIP rule.
//!
//! Bounds ([`StreamLimits`], `[sip]` in the configuration): at most
//! `tcp_max_connections` connections at once and
//! `tcp_max_connections_per_source` accepted from one IP address, and none
//! accepted while only `admission_margin_fds` file descriptors are left
//! (an extra one is closed as soon as it is accepted); a TLS handshake must
//! end within `tls_handshake_timeout`; a connection that carries no
//! complete SIP message for `tcp_idle_timeout` is reported idle
//! ([`StreamEvent::Idle`]), and the loop closes it unless a dialog, a
//! transaction or a registration still uses it. Bytes that do not complete
//! a message are not activity, so a peer that trickles a message
//! (slowloris) is closed like an idle one.

use crate::admission::FdGauge;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_b2bua::{B2bua, SipTransport};
use tapir_sip::msg::{Limits, Message, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What a connection's tasks report to the loop, in the order it happened
/// on that connection.
#[derive(Debug)]
pub enum StreamEvent {
    /// A new connection and the sender that writes to it.
    Opened(SocketAddr, mpsc::UnboundedSender<Bytes>),
    /// A complete message framed from the stream.
    Message(SocketAddr, SipTransport, Message),
    /// The connection closed (or its framing broke).
    Closed(SocketAddr),
    /// A connection tapir opened could not be established.
    ConnectFailed(SocketAddr),
    /// The connection carried no complete SIP message for the idle
    /// timeout: the loop closes it unless it is still in use.
    Idle(SocketAddr),
}

/// The bounds on SIP's TCP and TLS connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Connections (accepted and opened) at once.
    pub max_connections: usize,
    /// Accepted connections from one IP address at once.
    pub max_per_source: usize,
    /// How long a connection may carry no complete message before it is
    /// reported idle.
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for StreamLimits {
    /// `[sip]`'s defaults: 1024 connections, 128 per source, 120 s idle,
    /// 10 s for a TLS handshake.
    fn default() -> StreamLimits {
        StreamLimits::of(&crate::config::SipConfig::default())
    }
}

impl StreamLimits {
    /// The bounds of `[sip]` (a zero is taken as one: a cap of no
    /// connection or a timeout of no time would refuse everything).
    pub fn of(sip: &crate::config::SipConfig) -> StreamLimits {
        StreamLimits {
            max_connections: sip.tcp_max_connections.max(1),
            max_per_source: sip.tcp_max_connections_per_source.max(1),
            idle_timeout: Duration::from_secs(sip.tcp_idle_timeout.max(1)),
            handshake_timeout: Duration::from_secs(sip.tls_handshake_timeout.max(1)),
        }
    }
}

/// How many connections are open, in all and per source address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The connection caps, shared by the acceptors and the connections.
#[derive(Clone, Debug)]
struct Caps {
    limits: StreamLimits,
    counts: Arc<Mutex<Counts>>,
    fds: Arc<FdGauge>,
}

/// One admitted connection's place in the counts, given back when dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    source: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.source
            && let Some(n) = counts.per_source.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_source.remove(&ip);
            }
        }
    }
}

impl Caps {
    /// A place for a connection with `peer` (`accepted`: counted against
    /// its source too), or why there is none.
    fn admit(&self, peer: SocketAddr, accepted: bool) -> Result<Slot, &'static str> {
        if !self.fds.room_for_connection() {
            return Err("fds");
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.limits.max_connections {
            return Err("total");
        }
        let source = accepted.then(|| peer.ip());
        if let Some(ip) = source {
            let n = counts.per_source.entry(ip).or_insert(0);
            if *n >= self.limits.max_per_source {
                return Err("per_source");
            }
            *n += 1;
        }
        counts.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            source,
        })
    }
}

/// How many stream events may wait for the loop before readers wait.
const EVENTS_CAPACITY: usize = 1024;

/// How long tapir waits for a carrier's TCP connection to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The loop's side of SIP over TCP and TLS.
pub struct Streams {
    events: mpsc::Sender<StreamEvent>,
    connections: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    /// Connections being opened, with the messages waiting for them.
    opening: HashMap<SocketAddr, Vec<Bytes>>,
    /// The peers of the connections tapir opened.
    opened: HashSet<SocketAddr>,
    caps: Caps,
    acceptors: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        for task in &self.acceptors {
            task.abort();
        }
    }
}

impl Streams {
    /// Start accepting on `tcp` and `tls` (when served); the loop reads the
    /// returned receiver and hands each event to [`Streams::event`].
    /// Connections keep to `limits`, and none is kept while only the
    /// margin of `fds` is left.
    pub fn start(
        tcp: Option<TcpListener>,
        tls: Option<(TcpListener, TlsAcceptor)>,
        limits: StreamLimits,
        fds: Arc<FdGauge>,
    ) -> (Streams, mpsc::Receiver<StreamEvent>) {
        let (events, rx) = mpsc::channel(EVENTS_CAPACITY);
        let caps = Caps {
            limits,
            counts: Arc::default(),
            fds,
        };
        let mut acceptors = Vec::new();
        if let Some(listener) = tcp {
            acceptors.push(tokio::spawn(accept(
                listener,
                None,
                caps.clone(),
                events.clone(),
            )));
        }
        if let Some((listener, acceptor)) = tls {
            acceptors.push(tokio::spawn(accept(
                listener,
                Some(acceptor),
                caps.clone(),
                events.clone(),
            )));
        }
        let streams = Streams {
            events,
            connections: HashMap::new(),
            opening: HashMap::new(),
            opened: HashSet::new(),
            caps,
            acceptors,
        };
        (streams, rx)
    }

    /// Send `data` over the connection with `to`, or hold it while that
    /// connection opens; gives it back when there is none (send it over UDP).
    pub fn send(&mut self, to: SocketAddr, data: Bytes) -> Option<Bytes> {
        if let Some(writer) = self.connections.get(&to) {
            // A writer that stopped has closed its connection: its Closed
            // event follows.
            let _ = writer.send(data);
            return None;
        }
        match self.opening.get_mut(&to) {
            Some(waiting) => {
                waiting.push(data);
                None
            }
            None => Some(data),
        }
    }

    /// Open a connection to a trunk's carrier, unless one is open or opening.
    pub fn connect(&mut self, to: SocketAddr, transport: SipTransport) {
        if !self.connections.contains_key(&to) && !self.opening.contains_key(&to) {
            self.opening.insert(to, Vec::new());
            tokio::spawn(connect(
                to,
                transport,
                self.caps.clone(),
                self.events.clone(),
            ));
        }
    }

    /// What a connection reported: keep the connections up to date and
    /// hand messages and failures to the B2BUA; an idle connection is
    /// closed unless the B2BUA still uses it (a dialog, a transaction or a
    /// registration: [`B2bua::uses_connection`]).
    pub fn event(&mut self, event: StreamEvent, b2b: &mut B2bua, now: Instant) {
        match event {
            StreamEvent::Opened(peer, writer) => {
                if let Some(waiting) = self.opening.remove(&peer) {
                    self.opened.insert(peer);
                    for data in waiting {
                        let _ = writer.send(data);
                    }
                }
                self.connections.insert(peer, writer);
            }
            StreamEvent::Message(peer, transport, message) => {
                count_parsed("in", &message);
                b2b.handle_stream_message(now, peer, message, transport);
            }
            StreamEvent::Closed(peer) => {
                self.connections.remove(&peer);
                if self.opened.remove(&peer) {
                    b2b.connection_failed(now, peer);
                }
            }
            StreamEvent::ConnectFailed(peer) => {
                self.opening.remove(&peer);
                b2b.connection_failed(now, peer);
            }
            StreamEvent::Idle(peer) => {
                if !b2b.uses_connection(now, peer) && self.connections.remove(&peer).is_some() {
                    // Dropping its sender ends the connection's task, which
                    // closes it and reports Closed.
                    tracing::debug!(%peer, "closing an idle SIP connection");
                    metrics::counter!("tapir_sip_connections_closed_idle_total").increment(1);
                }
            }
        }
    }
}

/// Open a connection to a trunk's carrier and run it like an accepted one.
/// SIP over TLS towards carriers is not implemented (tapir has no trust
/// store for carriers' certificates): such a connection fails at once.
async fn connect(
    to: SocketAddr,
    transport: SipTransport,
    caps: Caps,
    events: mpsc::Sender<StreamEvent>,
) {
    let slot = match caps.admit(to, false) {
        Ok(slot) => slot,
        Err(why) => {
            tracing::warn!(%to, cap = why, "no connection to the trunk's carrier: SIP connection limit reached");
            let _ = events.send(StreamEvent::ConnectFailed(to)).await;
            return;
        }
    };
    if transport != SipTransport::Tcp {
        tracing::warn!(%to, "SIP over TLS to a trunk's carrier is not supported; use udp or tcp");
        let _ = events.send(StreamEvent::ConnectFailed(to)).await;
        return;
    }
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(to)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%to, error = %e, "cannot connect to the trunk's carrier");
                let _ = events.send(StreamEvent::ConnectFailed(to)).await;
                return;
            }
            Err(_) => {
                tracing::info!(%to, "no TCP connection to the trunk's carrier in time");
                let _ = events.send(StreamEvent::ConnectFailed(to)).await;
                return;
            }
        };
    let (tx, rx) = mpsc::unbounded_channel();
    if events.send(StreamEvent::Opened(to, tx)).await.is_err() {
        return;
    }
    connection(stream, to, transport, rx, events, caps.limits, slot).await;
}

/// Accept TCP (or, with an acceptor, TLS) connections, within the caps,
/// and run each in a task of its own.
async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    caps: Caps,
    events: mpsc::Sender<StreamEvent>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: let some close first.
                tracing::warn!(error = %e, "cannot accept a SIP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match caps.admit(peer, true) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%peer, cap = why, "SIP connection refused: limit reached");
                metrics::counter!("tapir_sip_connections_refused_total", "cap" => why).increment(1);
                drop(stream);
                continue;
            }
        };
        let events = events.clone();
        let limits = caps.limits;
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    let (tx, rx) = mpsc::unbounded_channel();
                    if events.send(StreamEvent::Opened(peer, tx)).await.is_err() {
                        return;
                    }
                    connection(stream, peer, SipTransport::Tcp, rx, events, limits, slot).await;
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's own task so that a
                // slow peer cannot hold up the others, and within its time.
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            metrics::counter!("tapir_sip_tls_handshake_timeouts_total")
                                .increment(1);
                            return;
                        }
                    };
                    let (tx, rx) = mpsc::unbounded_channel();
                    if events.send(StreamEvent::Opened(peer, tx)).await.is_err() {
                        return;
                    }
                    connection(stream, peer, SipTransport::Tls, rx, events, limits, slot).await;
                });
            }
        }
    }
}

/// One TCP or TLS connection, in one task: frame what arrives, write what
/// the loop sends, report it idle when no complete message came for the
/// idle timeout, and end when the loop drops its sender (or the peer
/// closes). `slot` holds its place in the connection counts until it ends.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: SipTransport,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::Sender<StreamEvent>,
    limits: StreamLimits,
    slot: Slot,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; 16_384];
    // Only complete messages move this: bytes that never make one (a
    // slowloris peer) and bare keep-alives do not keep a connection.
    let mut idle_at = tokio::time::Instant::now() + limits.idle_timeout;
    'serve: loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'serve,
                    Ok(n) => n,
                };
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_message() {
                        Ok(Some(message)) => {
                            idle_at = tokio::time::Instant::now() + limits.idle_timeout;
                            if events
                                .send(StreamEvent::Message(peer, transport, message))
                                .await
                                .is_err()
                            {
                                break 'serve;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // Framing is lost on a broken stream: close it.
                            tracing::debug!(%peer, error = %e, "closing SIP TCP connection");
                            break 'serve;
                        }
                    }
                }
            }
            data = outgoing.recv() => {
                let Some(data) = data else {
                    // The loop closed the connection.
                    break 'serve;
                };
                // A peer that stops reading is closed like an idle one.
                let written =
                    tokio::time::timeout(limits.idle_timeout, writer.write_all(&data)).await;
                if !matches!(written, Ok(Ok(()))) {
                    break 'serve;
                }
            }
            () = tokio::time::sleep_until(idle_at) => {
                idle_at = tokio::time::Instant::now() + limits.idle_timeout;
                if events.send(StreamEvent::Idle(peer)).await.is_err() {
                    break 'serve;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    drop(slot);
    let _ = events.send(StreamEvent::Closed(peer)).await;
}

/// SIP methods counted by name in `tapir_sip_messages_total`; any other
/// method counts as `other`, so that what a peer sends cannot grow the
/// metric's label set.
const COUNTED_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "PUBLISH",
];

/// What a SIP message is, for the metrics: its method (a response's from its
/// CSeq) and `request` or its response class (`2xx`). Read from the raw
/// bytes, so that it costs no parse; malformed input counts as `other`.
pub fn message_kind(data: &[u8]) -> (&'static str, &'static str) {
    // Lines are found with memchr and only a line that starts with `CSeq`
    // is looked into: every message in and out passes here.
    let first_end = memchr::memchr(b'\n', data).unwrap_or(data.len());
    let first_line = data.get(..first_end).unwrap_or_default();
    let Some(rest) = first_line.strip_prefix(b"SIP/2.0 ") else {
        let method = first_line.split(|b| *b == b' ').next().unwrap_or_default();
        return (counted_method(method), "request");
    };
    // The class is the code's first digit.
    let code = rest
        .first()
        .filter(|d| d.is_ascii_digit())
        .map_or(0, |d| u16::from(d - b'0') * 100);
    let mut method = "other";
    let mut at = first_end + 1;
    while let Some(line_rest) = data.get(at..) {
        let end = memchr::memchr(b'\n', line_rest).unwrap_or(line_rest.len());
        let line = line_rest.get(..end).unwrap_or_default();
        if line.trim_ascii().is_empty() {
            break; // end of the header
        }
        if line.len() > 4
            && line
                .get(..4)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"CSeq"))
            && let Some(colon) = memchr::memchr(b':', line)
            && line
                .get(..colon)
                .is_some_and(|n| n.trim_ascii().eq_ignore_ascii_case(b"CSeq"))
        {
            method = line
                .get(colon + 1..)
                .unwrap_or_default()
                .trim_ascii()
                .split(|b| *b == b' ')
                .nth(1)
                .map_or("other", |m| counted_method(m.trim_ascii()));
            break;
        }
        at += end + 1;
    }
    (method, status_class(code))
}

/// The label of a method token: one of [`COUNTED_METHODS`], else `other`.
fn counted_method(token: &[u8]) -> &'static str {
    COUNTED_METHODS
        .iter()
        .find(|m| m.as_bytes() == token)
        .copied()
        .unwrap_or("other")
}

/// The label of a response code's class (`4xx`), `other` outside 100–699.
fn status_class(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        6 => "6xx",
        _ => "other",
    }
}

/// Count one SIP message of `data` in `tapir_sip_messages_total`.
pub fn count_message(direction: &'static str, data: &[u8]) {
    let (method, kind) = message_kind(data);
    count(direction, method, kind);
}

/// [`count_message`] for a message a stream has already framed and parsed.
fn count_parsed(direction: &'static str, message: &tapir_sip::msg::Message) {
    let (method, kind) = match message.status_code() {
        Some(code) => (
            message
                .cseq()
                .ok()
                .flatten()
                .map_or("other", |c| counted_method(c.method.as_bytes())),
            status_class(code),
        ),
        None => (
            message
                .method()
                .map_or("other", |m| counted_method(m.as_str().as_bytes())),
            "request",
        ),
    };
    count(direction, method, kind);
}

/// The response classes and `request`, as [`status_class`] and
/// [`message_kind`] name them.
const COUNTED_KINDS: [&str; 8] = ["request", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"];

/// Count one SIP message in `tapir_sip_messages_total`.
///
/// Every message of the loop is counted, so each label combination's
/// counter is looked up in the recorder once, at its first use, and kept: a
/// lookup hashes the name and labels on each call.
fn count(direction: &'static str, method: &'static str, kind: &'static str) {
    const METHODS: usize = COUNTED_METHODS.len() + 1;
    const KINDS: usize = COUNTED_KINDS.len();
    static COUNTERS: [std::sync::OnceLock<metrics::Counter>; 2 * METHODS * KINDS] =
        [const { std::sync::OnceLock::new() }; 2 * METHODS * KINDS];
    let d = usize::from(direction != "in");
    let m = COUNTED_METHODS
        .iter()
        .position(|x| *x == method)
        .unwrap_or(COUNTED_METHODS.len());
    let k = COUNTED_KINDS
        .iter()
        .position(|x| *x == kind)
        .unwrap_or(KINDS - 1);
    let Some(slot) = COUNTERS.get((d * METHODS + m) * KINDS + k) else {
        return;
    };
    slot.get_or_init(|| {
        metrics::counter!(
            "tapir_sip_messages_total",
            "direction" => direction,
            "method" => method,
            "kind" => kind
        )
    })
    .increment(1);
}

#[cfg(test)]
mod message_kind_tests {
    use super::message_kind;

    #[test]
    fn requests_responses_and_garbage() {
        assert_eq!(
            message_kind(b"INVITE sip:1002@x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"),
            ("INVITE", "request")
        );
        assert_eq!(
            message_kind(
                b"SIP/2.0 407 Proxy Authentication Required\r\nVia: x\r\ncseq:  2 REGISTER\r\n\r\n"
            ),
            ("REGISTER", "4xx")
        );
        assert_eq!(
            message_kind(b"SIP/2.0 200 OK\r\nCSeq: 7 BYE\r\n\r\n"),
            ("BYE", "2xx")
        );
        assert_eq!(
            message_kind(b"FOOBAR sip:x SIP/2.0\r\n\r\n"),
            ("other", "request")
        );
        assert_eq!(message_kind(b"SIP/2.0 999 ?\r\n\r\n"), ("other", "other"));
        // Only the header's CSeq counts: not a longer name, not the body.
        assert_eq!(
            message_kind(
                b"SIP/2.0 200 OK\r\nCSeqX: 1 INVITE\r\nCSeq : 4 CANCEL\r\n\r\nCSeq: 5 BYE"
            ),
            ("CANCEL", "2xx")
        );
        assert_eq!(
            message_kind(b"SIP/2.0 180 Ringing\r\nVia: x\r\n\r\nCSeq: 5 BYE\r\n"),
            ("other", "1xx")
        );
        assert_eq!(message_kind(b""), ("other", "request"));
        assert_eq!(message_kind(b"\xff\xfe"), ("other", "request"));
    }
}
