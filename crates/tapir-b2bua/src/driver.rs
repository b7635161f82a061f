//! The tokio driver: moves messages between the sockets (UDP, and TCP
//! connections framed with `tapir_sip`'s stream framer) and the sans-IO
//! [`B2bua`], effects from the switch into it, and its reports back to the
//! switch, and fires its timers. It holds no telephony or SIP rule of its
//! own. A message for an address with an open TCP connection goes over that
//! connection, anything else over UDP. [`Out::Connect`] (a trunk's carrier
//! over TCP) opens a connection; messages for it wait until it is open, and
//! a connection that cannot be opened fails the B2BUA's requests to it.

use crate::{B2bua, MediaCommand, Out, SipTransport};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tapir_core::{Effect, Input, LegEvent, LegId};
use tapir_sip::msg::{Limits, Message, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

/// The sockets SIP is served on.
pub struct Listeners {
    /// The UDP socket.
    pub udp: Arc<UdpSocket>,
    /// SIP over TCP, when served.
    pub tcp: Option<TcpListener>,
    /// SIP over TLS (listener and acceptor), when served.
    pub tls: Option<(TcpListener, TlsAcceptor)>,
}

/// Hands a signalling input to the switch without blocking the driver.
pub type InputSink = Arc<dyn Fn(Input) + Send + Sync>;

/// What the driver asks of the switch and waits for.
#[derive(Debug)]
pub enum ToSwitch {
    /// Carry out a device's REFER and say whether the switch accepted it.
    Refer {
        /// The leg that sent the REFER.
        leg: LegId,
        /// The transfer.
        event: LegEvent,
        /// The verdict.
        reply: oneshot::Sender<bool>,
    },
}

/// Stops the TCP acceptor when the driver ends.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// What a TCP connection's reader reports to the main loop.
enum FromTcp {
    /// A new connection and the sender that writes to it.
    Opened(SocketAddr, mpsc::UnboundedSender<Bytes>),
    /// A complete message framed from the stream.
    Message(SocketAddr, SipTransport, Message),
    /// The connection closed (or its framing broke).
    Closed(SocketAddr),
    /// A connection tapir opened could not be established.
    ConnectFailed(SocketAddr),
}

/// How long tapir waits for a carrier's TCP connection to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open a connection to a trunk's carrier and run it like an accepted one.
/// SIP over TLS towards carriers is not implemented (tapir has no trust
/// store for carriers' certificates): such a connection fails at once.
async fn connect(to: SocketAddr, transport: SipTransport, events: mpsc::UnboundedSender<FromTcp>) {
    if transport != SipTransport::Tcp {
        tracing::warn!(%to, "SIP over TLS to a trunk's carrier is not supported; use udp or tcp");
        let _ = events.send(FromTcp::ConnectFailed(to));
        return;
    }
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(to)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(%to, error = %e, "cannot connect to the trunk's carrier");
                let _ = events.send(FromTcp::ConnectFailed(to));
                return;
            }
            Err(_) => {
                tracing::info!(%to, "no TCP connection to the trunk's carrier in time");
                let _ = events.send(FromTcp::ConnectFailed(to));
                return;
            }
        };
    let (tx, rx) = mpsc::unbounded_channel();
    if events.send(FromTcp::Opened(to, tx)).is_err() {
        return;
    }
    connection(stream, to, transport, rx, events).await;
}

/// Accept TCP (or, with an acceptor, TLS) connections and run a reader and
/// a writer for each.
async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    events: mpsc::UnboundedSender<FromTcp>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let events = events.clone();
        match tls.clone() {
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                if events.send(FromTcp::Opened(peer, tx)).is_err() {
                    return;
                }
                tokio::spawn(connection(stream, peer, SipTransport::Tcp, rx, events));
            }
            Some(acceptor) => {
                // The handshake runs in its own task so a slow peer cannot
                // hold up the others.
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        tracing::debug!(%peer, "TLS handshake failed");
                        return;
                    };
                    let (tx, rx) = mpsc::unbounded_channel();
                    if events.send(FromTcp::Opened(peer, tx)).is_err() {
                        return;
                    }
                    connection(stream, peer, SipTransport::Tls, rx, events).await;
                });
            }
        }
    }
}

/// One TCP or TLS connection: frame what arrives, write what the loop sends.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: SipTransport,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<FromTcp>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writing = tokio::spawn(async move {
        while let Some(data) = outgoing.recv().await {
            if writer.write_all(&data).await.is_err() {
                return;
            }
        }
    });
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = vec![0u8; 16_384];
    'read: loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => framer.push(buf.get(..n).unwrap_or_default()),
        }
        loop {
            match framer.next_message() {
                Ok(Some(message)) => {
                    if events
                        .send(FromTcp::Message(peer, transport, message))
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Framing is lost on a broken stream: close it.
                    tracing::debug!(%peer, error = %e, "closing SIP TCP connection");
                    break 'read;
                }
            }
        }
    }
    writing.abort();
    let _ = events.send(FromTcp::Closed(peer));
}

/// Run the B2BUA until the socket fails or the switch goes away. Reports go
/// to the switch through `input`; REFERs, which need the switch's verdict,
/// through `to_switch`. With a
/// `tcp` listener phones may also use SIP over TCP, with `tls` (a listener
/// and its acceptor) over TLS. `media` receives the media plane's work.
pub async fn run(
    listeners: Listeners,
    mut b2b: B2bua,
    mut effects: broadcast::Receiver<Effect>,
    input: InputSink,
    to_switch: mpsc::Sender<ToSwitch>,
    media: mpsc::UnboundedSender<MediaCommand>,
) {
    let Listeners {
        udp: socket,
        tcp,
        tls,
    } = listeners;
    let (tcp_tx, mut tcp_rx) = mpsc::unbounded_channel();
    let _tcp_acceptor =
        AbortOnDrop(tcp.map(|listener| tokio::spawn(accept(listener, None, tcp_tx.clone()))));
    let _tls_acceptor = AbortOnDrop(tls.map(|(listener, acceptor)| {
        tokio::spawn(accept(listener, Some(acceptor), tcp_tx.clone()))
    }));
    // Kept for the connections tapir opens to carriers.
    let connect_tx = tcp_tx;
    let mut connections: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    // Connections being opened, with the messages waiting for them; and
    // the peers of the connections tapir opened.
    let mut opening: HashMap<SocketAddr, Vec<Bytes>> = HashMap::new();
    let mut opened: std::collections::HashSet<SocketAddr> = std::collections::HashSet::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let deadline = b2b.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    count_message("in", &data);
                    b2b.handle_datagram(Instant::now(), source, data);
                }
                Err(e) => {
                    // ICMP errors surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "SIP socket receive error");
                }
            },
            effect = effects.recv() => match effect {
                Ok(effect) => b2b.handle_effect(Instant::now(), &effect),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(missed = n, "SIP driver lagged behind the switch's effects");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = sleep => b2b.handle_timeout(Instant::now()),
            Some(event) = tcp_rx.recv() => match event {
                FromTcp::Opened(peer, writer) => {
                    if let Some(waiting) = opening.remove(&peer) {
                        opened.insert(peer);
                        for data in waiting {
                            let _ = writer.send(data);
                        }
                    }
                    connections.insert(peer, writer);
                }
                FromTcp::Message(peer, transport, message) => {
                    count_parsed("in", &message);
                    b2b.handle_stream_message(Instant::now(), peer, message, transport);
                }
                FromTcp::Closed(peer) => {
                    connections.remove(&peer);
                    if opened.remove(&peer) {
                        b2b.connection_failed(Instant::now(), peer);
                    }
                }
                FromTcp::ConnectFailed(peer) => {
                    opening.remove(&peer);
                    b2b.connection_failed(Instant::now(), peer);
                }
            },
        }
        while let Some(out) = b2b.poll_output() {
            if let Out::Send { data, .. } = &out {
                count_message("out", data);
            }
            match out {
                Out::Send { to, data } => match connections.get(&to) {
                    Some(writer) => {
                        let _ = writer.send(data);
                    }
                    None if opening.contains_key(&to) => {
                        if let Some(waiting) = opening.get_mut(&to) {
                            waiting.push(data);
                        }
                    }
                    None => {
                        if let Err(e) = socket.send_to(&data, to).await {
                            tracing::debug!(%to, error = %e, "SIP send failed");
                        }
                    }
                },
                Out::Switch(event) => input(event),
                Out::Refer { leg, event } => {
                    let (reply, verdict) = oneshot::channel();
                    if to_switch
                        .send(ToSwitch::Refer { leg, event, reply })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let accepted = verdict.await.unwrap_or(false);
                    b2b.refer_outcome(Instant::now(), leg, accepted);
                }
                Out::Media(command) => {
                    let _ = media.send(command);
                }
                Out::Connect { to, transport } => {
                    if !connections.contains_key(&to) && !opening.contains_key(&to) {
                        opening.insert(to, Vec::new());
                        tokio::spawn(connect(to, transport, connect_tx.clone()));
                    }
                }
            }
        }
    }
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
    let mut lines = data.split(|b| *b == b'\n');
    let first_line = lines.next().unwrap_or_default();
    let Some(rest) = first_line.strip_prefix(b"SIP/2.0 ") else {
        let method = first_line.split(|b| *b == b' ').next().unwrap_or_default();
        return (counted_method(method), "request");
    };
    // The class is the code's first digit.
    let code = rest
        .first()
        .filter(|d| d.is_ascii_digit())
        .map_or(0, |d| u16::from(d - b'0') * 100);
    let method = lines
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|b| *b == b':')?);
            name.trim_ascii()
                .eq_ignore_ascii_case(b"CSeq")
                .then(|| value.get(1..).unwrap_or_default())
        })
        .and_then(|v| v.trim_ascii().split(|b| *b == b' ').nth(1))
        .map_or("other", |m| counted_method(m.trim_ascii()));
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

fn count_message(direction: &'static str, data: &[u8]) {
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

fn count(direction: &'static str, method: &'static str, kind: &'static str) {
    metrics::counter!(
        "tapir_sip_messages_total",
        "direction" => direction,
        "method" => method,
        "kind" => kind
    )
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
        assert_eq!(message_kind(b""), ("other", "request"));
        assert_eq!(message_kind(b"\xff\xfe"), ("other", "request"));
    }
}
