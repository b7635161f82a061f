//! The test rig shared by the B2BUA's integration tests (`calls.rs`,
//! `trunks.rs`, `dialogs.rs`, `routes.rs`, `session_timers.rs`): the sans-IO
//! B2BUA and the real switch wired together, fed with SIP text as peers
//! would send it, with what tapir sends (and its media commands, reported
//! digits and connections) kept for the test to look at. Each test file
//! brings its switch lines, and its own `Directory` or the plain [`Phones`].

// Each test file is its own crate and uses only part of the rig.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tapir_b2bua::pump::Wire;
use tapir_b2bua::{
    B2bua, Config, ContactTarget, Directory, MediaCommand, MediaPorts, SipTransport,
};
use tapir_core::{
    AppConfig, AppId, CallStateKind, Input, LegEvent, LegId, Privilege, Switch, Timestamp,
};
use tapir_sip::msg::Message;

/// tapir's SIP address.
pub const TAPIR: &str = "127.0.0.1:5060";
/// Phone 1001.
pub const A: &str = "127.0.0.1:5001";
/// Phone 1002.
pub const B: &str = "127.0.0.1:5002";

/// Phones at fixed addresses, reached over one transport: the directory of
/// the tests that need no challenge. Every caller is admitted as the user of
/// its From URI.
pub struct Phones {
    contacts: HashMap<String, SocketAddr>,
    transport: SipTransport,
}

impl Phones {
    /// The phones `(address, "ip:port")`, reached over `transport`.
    pub fn new(phones: &[(&str, &str)], transport: SipTransport) -> Phones {
        Phones {
            contacts: phones
                .iter()
                .map(|(user, addr)| (user.to_string(), addr.parse().unwrap()))
                .collect(),
            transport,
        }
    }
}

impl Directory for Phones {
    fn register(
        &mut self,
        _now: Instant,
        request: &Message,
        _source: SocketAddr,
        _transport: SipTransport,
    ) -> Message {
        request.response_builder(200, None, Some("reg")).build()
    }
    fn admit(
        &mut self,
        _now: Instant,
        request: &Message,
        _source: SocketAddr,
    ) -> Result<String, Box<Message>> {
        let from = request.from_header().unwrap().unwrap();
        match &from.uri {
            tapir_sip::msg::Uri::Sip(s) => Ok(s.user.unwrap().to_string()),
            _ => Err(Box::new(
                request.response_builder(403, None, Some("x")).build(),
            )),
        }
    }
    fn contacts(&self, _now: Instant, address: &str) -> Vec<ContactTarget> {
        self.contacts
            .get(address)
            .map(|addr| ContactTarget::direct(*addr, self.transport))
            .into_iter()
            .collect()
    }
}

/// RTP ports, one per leg, that run out when the test says so.
pub struct Ports(pub Arc<AtomicBool>);

impl MediaPorts for Ports {
    fn open(&mut self, leg: LegId) -> Option<SocketAddr> {
        if self.0.load(Ordering::Relaxed) {
            return None;
        }
        Some(SocketAddr::from((
            [127, 0, 0, 1],
            20_000 + (leg.0 % 1000) as u16 * 2,
        )))
    }
}

/// The B2BUA and the switch, and what came out of them.
pub struct World {
    pub b2b: B2bua,
    pub switch: Switch,
    start: Instant,
    pub now: Instant,
    /// Everything tapir sent, per destination.
    pub sent: Vec<(SocketAddr, Message)>,
    /// The B2BUA's commands to the media plane.
    pub media: Vec<MediaCommand>,
    /// Digits the B2BUA reported to the switch, per leg.
    pub digits: Vec<(LegId, String)>,
    /// Connections the B2BUA asked for.
    pub connects: Vec<(SocketAddr, SipTransport)>,
    /// Every send (`send <kind>`) and connection (`connect`), in order.
    pub order: Vec<String>,
    /// Set to make every RTP port allocation fail.
    pub ports_exhausted: Arc<AtomicBool>,
    /// The transport the peers' messages arrive over.
    pub transport: SipTransport,
}

impl World {
    /// The rig around `switch`, with a B2BUA of `config` that looks its
    /// peers up in `directory`; peers send over `transport`.
    pub fn assemble(
        config: Config,
        directory: impl Directory + Send + 'static,
        switch: Switch,
        transport: SipTransport,
    ) -> World {
        let now = Instant::now();
        let ports_exhausted = Arc::new(AtomicBool::new(false));
        World {
            b2b: B2bua::new(
                config,
                Box::new(directory),
                Box::new(Ports(ports_exhausted.clone())),
            ),
            switch,
            start: now,
            now,
            sent: Vec::new(),
            media: Vec::new(),
            digits: Vec::new(),
            connects: Vec::new(),
            order: Vec::new(),
            ports_exhausted,
            transport,
        }
    }

    /// The switch's clock: the rig's time since it started.
    pub fn ts(&self) -> Timestamp {
        Timestamp(1_000_000 + self.now.duration_since(self.start).as_millis() as u64)
    }

    /// Carry B2BUA outputs to the switch and the switch's effects to the
    /// B2BUA until neither has anything more (the production pump).
    pub fn pump(&mut self) {
        let ts = self.ts();
        let mut wire = Recorder {
            sent: &mut self.sent,
            media: &mut self.media,
            digits: &mut self.digits,
            connects: &mut self.connects,
            order: &mut self.order,
        };
        tapir_b2bua::pump::pump(
            &mut self.switch,
            Some(&mut self.b2b),
            self.now,
            ts,
            &mut wire,
        )
        .expect("B2BUA and switch settle");
    }

    /// `peer` sends this SIP text (line ends made CRLF; its Via names the
    /// rig's transport), then the rig settles.
    pub fn peer_sends(&mut self, peer: &str, text: String) {
        let source: SocketAddr = peer.parse().unwrap();
        let data = Bytes::from(text.replace("\r\n", "\n").replace('\n', "\r\n"));
        match self.transport {
            SipTransport::Udp => self.b2b.handle_datagram(self.now, source, data),
            transport => {
                let data = String::from_utf8(data.to_vec())
                    .unwrap()
                    .replace("SIP/2.0/UDP", &format!("SIP/2.0/{}", transport.via_token()));
                let message = Message::parse_datagram(Bytes::from(data)).unwrap();
                self.b2b
                    .handle_stream_message(self.now, source, message, transport);
            }
        }
        self.pump();
    }

    /// `peer` sends this message in a UDP datagram, then the rig settles.
    pub fn peer_sends_message(&mut self, peer: &str, message: Message) {
        self.b2b
            .handle_datagram(self.now, peer.parse().unwrap(), message.to_bytes());
        self.pump();
    }

    /// Let `ms` pass, firing the B2BUA's timers that fall due on the way.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        while let Some(at) = self.b2b.poll_timeout() {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.b2b.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    /// Messages sent to `to` since the last call, oldest first.
    pub fn take(&mut self, to: &str) -> Vec<Message> {
        let to: SocketAddr = to.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(t, _)| *t == to);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    /// The [`kind`]s of the messages sent to `to` since the last call.
    pub fn kinds(&mut self, to: &str) -> Vec<String> {
        kinds(&self.take(to))
    }

    /// The states of the calls at `address`.
    pub fn states(&self, address: &str) -> Vec<CallStateKind> {
        self.switch
            .calls_at(address)
            .into_iter()
            .filter_map(|c| self.switch.call_state(c))
            .collect()
    }

    /// An app that owns the line of `address`.
    pub fn owner_app(&mut self, address: &str) -> AppId {
        let app = self.switch.register_app(AppConfig::named("crm"));
        let line = self.switch.line_of(address).unwrap();
        self.switch
            .open_line(app, line, &[Privilege::Owner], &[])
            .unwrap();
        app
    }
}

/// Where the rig's pump puts what leaves the machines.
struct Recorder<'a> {
    sent: &'a mut Vec<(SocketAddr, Message)>,
    media: &'a mut Vec<MediaCommand>,
    digits: &'a mut Vec<(LegId, String)>,
    connects: &'a mut Vec<(SocketAddr, SipTransport)>,
    order: &'a mut Vec<String>,
}

impl Wire for Recorder<'_> {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        let m = Message::parse_datagram(data).unwrap();
        self.order.push(format!("send {}", kind(&m)));
        self.sent.push((to, m));
    }
    fn media(&mut self, command: MediaCommand) {
        self.media.push(command);
    }
    fn connect(&mut self, to: SocketAddr, transport: SipTransport) {
        self.order.push("connect".into());
        self.connects.push((to, transport));
    }
    fn switch_input(&mut self, input: &Input) {
        if let Input::Leg {
            leg,
            event: LegEvent::Digits(d) | LegEvent::SignalledDigits(d),
        } = input
        {
            self.digits.push((*leg, d.clone()));
        }
    }
}

/// A response's status code or a request's method.
pub fn kind(m: &Message) -> String {
    match m.status_code() {
        Some(c) => c.to_string(),
        None => m.method().unwrap().to_string(),
    }
}

/// The [`kind`]s of `msgs`, in order.
pub fn kinds(msgs: &[Message]) -> Vec<String> {
    msgs.iter().map(kind).collect()
}

/// The tag of a message's To header.
pub fn to_tag(m: &Message) -> String {
    m.to_header().unwrap().unwrap().tag().unwrap().to_string()
}

/// An SDP offer of G.711 µ-law and telephone-event from 127.0.0.1:`port`.
pub fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// An in-dialog request from phone A to tapir (CSeq `n`, with an SDP
/// `body` unless it is empty); `dialog` is its From, To and Call-ID lines.
pub fn in_dialog_from_a(method: &str, n: u32, dialog: &str, body: &str) -> String {
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\n".into()
    };
    format!(
        "{method} sip:tapir@{TAPIR} SIP/2.0
Via: SIP/2.0/UDP {A};branch=z9hG4bKa{n}{method};rport
Max-Forwards: 70
{dialog}
CSeq: {n} {method}
Contact: <sip:1001@{A}>
{ctype}Content-Length: {len}

{body}",
        len = body.len()
    )
}
