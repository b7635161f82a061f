//! # tapir-b2bua — the switch's legs as SIP dialogs
//!
//! tapir is a back-to-back user agent: every call leg the switch core knows
//! (`tapir_core::LegId`) is one SIP dialog with one device, and tapir is the
//! far end of each. This crate owns that mapping, sans-IO:
//!
//! - datagrams go in with [`B2bua::handle_datagram`], the switch's effects
//!   with [`B2bua::handle_effect`], time with [`B2bua::handle_timeout`];
//! - [`B2bua::poll_output`] drains what to send ([`Out::Send`]), what to tell
//!   the switch ([`Out::Switch`], [`Out::Refer`]) and what the media plane
//!   must do ([`Out::Media`]).
//!
//! Registration, authentication and contact lookup come from a
//! [`Directory`]; local RTP addresses from a [`MediaPorts`]. The telephony
//! rules stay in the core: this crate only translates between SIP and the
//! core's leg events and effects.
//!
//! It binds no socket, spawns no task and reads no clock: [`pump::pump`]
//! composes it with the switch, and `tapir-server` runs that composition in
//! one task beside its sockets.
//!
//! Trunks ([`trunk`]): a leg the switch creates on a trunk line INVITEs
//! the number at the trunk's carrier (the [`Directory`] gives the route),
//! answering one digest challenge with the trunk's credentials; an INVITE
//! from a trunk's carrier address is admitted without digest and reaches
//! the switch as a call from that trunk line, with the caller's number.
//!
//! Media: each leg has one `tapir_media::sdp::SdpSession` (RFC 3264 offer
//! and answer), and the outcome of every exchange reaches the media plane
//! as [`MediaCommand::Remote`]. SRTP keys (SDES, RFC 4568) travel only over
//! SIP over TLS: an RTP/SAVP offer over UDP or TCP gets 488; a phone reached
//! over TLS is offered RTP/SAVP (and invited once more with RTP/AVP if it
//! refuses); `Effect::SecureMedia` re-offers a TLS leg RTP/SAVP. A leg once
//! secured never falls back: a plain offer gets 488, a plain answer a BYE.
//!
//! Leg ids: the core numbers the legs it creates; legs of INVITEs that
//! phones send are numbered here from [`INBOUND_LEG_BASE`] up, so the two
//! ranges never meet.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod directory;
pub mod info;
pub mod pump;
pub mod session_timer;
pub mod subscription;
pub mod trunk;

pub use trunk::TrunkRoute;

use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::{
    Direction, Effect, Input, LegEvent, LegId, LineId, MediaSource, ReleaseCause, SpecialInfoMode,
};
use tapir_media::sdp::{
    Direction as SdpDirection, Negotiated, SdpError, SdpSession, SessionDescription,
};
use tapir_sip::dialog::{Dialog as SipDialog, DialogState};
use tapir_sip::msg::{HeaderName, Host, Message, MessageBuilder, Method, ResponseTarget, Uri};
use tapir_sip::transaction::{
    LayerOutput, Received, Reliability, Role, TimerConfig, TransactionEvent, TransactionKey,
    TransactionLayer,
};

/// First leg id given to INVITEs from devices (the core's own ids stay far below).
pub const INBOUND_LEG_BASE: u64 = 1 << 48;

/// Registration, authentication and contact lookup, provided by the server
/// (backed by `tapir_sip`'s registrar and digest authentication).
pub trait Directory {
    /// Answer a REGISTER (challenge, 200 with bindings, or an error) that
    /// came from `source` over `transport`.
    fn register(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
        transport: SipTransport,
    ) -> Message;
    /// Admit a request from a device: `Ok(user)` when authenticated, or the
    /// response to send (407 challenge, 403).
    fn admit(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
    ) -> Result<String, Box<Message>>;
    /// Where the device(s) of `address` can be reached now.
    fn contacts(&self, now: Instant, address: &str) -> Vec<ContactTarget>;
    /// The carrier behind `line` when it is a trunk line with a configured
    /// trunk (none: the line is not a trunk's, or its host did not resolve).
    fn trunk(&self, _line: LineId) -> Option<TrunkRoute> {
        None
    }
    /// The address of the trunk line whose carrier sends from `carrier`
    /// (the datagram's or connection's real source address and port) over
    /// `transport`: its INVITEs are admitted without digest (an
    /// IP-authenticated trunk), and only its P-Asserted-Identity is read.
    /// `None` for every other source, transport or port.
    fn trunk_from(&self, _carrier: SocketAddr, _transport: SipTransport) -> Option<String> {
        None
    }
    /// Whether a registration that has not expired reaches its device over
    /// the TCP or TLS connection with `peer` (which must then stay open).
    fn registered_over(&self, _now: Instant, _peer: SocketAddr) -> bool {
        false
    }
    /// Whether the authenticated `watcher` may SUBSCRIBE to the lamps or
    /// presence of `address` (a line's address or a park slot): `Err(404)`
    /// for an address the switch does not have, `Err(403)` for one the
    /// watcher's line may not watch. Every address by default.
    fn may_watch(&self, _watcher: &str, _address: &str) -> Result<(), u16> {
        Ok(())
    }
    /// When the last registration of `address` that has not expired at
    /// `now` runs out (none: not registered, or registrations that do not
    /// expire). Presence shows the address offline from then on.
    fn registered_until(&self, _now: Instant, _address: &str) -> Option<Instant> {
        None
    }
    /// In a cluster: the edge a leg to another node's address goes
    /// through (`None` on a single node, or without an edge and a secret).
    fn node_route(&self) -> Option<NodeRoute> {
        None
    }
    /// In a cluster: the [`tapir_cluster::NODE_MARK_HEADER`] value for an
    /// INVITE of dialog `call_id` to another node, for a call from address
    /// `from` forwarded `hops` times.
    fn sign_node_request(&self, _call_id: &str, _from: &str, _hops: u8) -> Option<String> {
        None
    }
    /// In a cluster: `None` when `request` is no other node's (it did not
    /// come from the edge, or carries no node mark): it is a device's, and
    /// admitted as one. Otherwise the call it carries, or the response
    /// that refuses it (`403` for a mark that is not believed, `503` for an
    /// address this node does not serve now).
    fn admit_node(
        &mut self,
        _now: Instant,
        _request: &Message,
        _source: SocketAddr,
    ) -> Option<Result<NodeCaller, Box<Message>>> {
        None
    }
}

/// The switch's request for a new leg ([`Effect::CreateLeg`]), borrowed.
struct LegRequest<'a> {
    line: LineId,
    target: &'a str,
    caller: &'a tapir_core::Party,
    auto_answer: bool,
    via_node: Option<&'a tapir_core::NodeLeg>,
}

/// Where legs to the other nodes of a cluster go: the cluster's edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRoute {
    /// The edge's address (UDP).
    pub addr: SocketAddr,
}

/// What another node's believed INVITE says about its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCaller {
    /// The calling address of the switch (served by the other node).
    pub from: String,
    /// The call's forwarding hops so far.
    pub forward_hops: u8,
}

/// The transport of a message or a dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SipTransport {
    /// UDP datagrams.
    Udp,
    /// A TCP connection.
    Tcp,
    /// A TLS connection.
    Tls,
}

impl SipTransport {
    /// The token in a Via header.
    pub fn via_token(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
            SipTransport::Tls => "TLS",
        }
    }

    /// The `transport=` URI parameter (none for UDP).
    pub fn uri_param(self) -> &'static str {
        match self {
            SipTransport::Udp => "",
            SipTransport::Tcp => ";transport=tcp",
            SipTransport::Tls => ";transport=tls",
        }
    }
}

/// Where to reach a registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactTarget {
    /// Its address (over TCP or TLS: the peer of the connection it
    /// registered on; through a Path, the first proxy of it).
    pub addr: SocketAddr,
    /// The transport it registered over.
    pub transport: SipTransport,
    /// Set when the device registered through proxies with a Path (RFC
    /// 3327): tapir's INVITE goes to `addr` (the proxy) with the device's
    /// Contact as its Request-URI and the Path as pre-loaded Route headers.
    pub path: Option<PathRoute>,
}

impl ContactTarget {
    /// A device reached directly at `addr` over `transport`.
    pub fn direct(addr: SocketAddr, transport: SipTransport) -> ContactTarget {
        ContactTarget {
            addr,
            transport,
            path: None,
        }
    }
}

/// The way to a device that registered through proxies (RFC 3327).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRoute {
    /// The Contact URI the device registered (the Request-URI).
    pub contact: String,
    /// The Path, as `<uri>;params` Route values in the order requests
    /// carry them.
    pub route: Vec<String>,
}

/// Local RTP endpoints, provided by the media plane.
pub trait MediaPorts {
    /// Open (or return) the RTP address tapir uses for a leg; `None` when no
    /// port is free (the caller is then told to retry later with a 503).
    fn open(&mut self, leg: LegId) -> Option<SocketAddr>;
}

/// What the media plane must do for a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaCommand {
    /// The outcome of an offer/answer exchange on the leg: the far end's
    /// address, the codec, telephone-event, tapir's direction and, on a
    /// secured leg, the SRTP keys (`MediaEngine::apply` takes it as is).
    Remote {
        /// The leg.
        leg: LegId,
        /// What the exchange settled.
        negotiated: Negotiated,
    },
    /// What the leg hears (from the switch).
    Source {
        /// The leg.
        leg: LegId,
        /// The source.
        source: MediaSource,
    },
    /// Which way media flows on the leg now, from tapir's side.
    Direction {
        /// The leg.
        leg: LegId,
        /// tapir sends media to the device.
        sends: bool,
        /// tapir takes media from the device.
        receives: bool,
    },
    /// Send DTMF on the leg.
    Digits {
        /// The leg.
        leg: LegId,
        /// The digits.
        digits: String,
    },
    /// Generate a tone to the leg (`lineGenerateTone`).
    Tone {
        /// The leg.
        leg: LegId,
        /// The tone.
        plan: tapir_core::mediaops::TonePlan,
    },
    /// Watch what the leg's device sends for these tones and, with `fax`,
    /// a fax's calling tone (the whole set; empty stops).
    Detect {
        /// The leg.
        leg: LegId,
        /// The tones.
        tones: Vec<tapir_core::mediaops::ToneWatch>,
        /// Watch for CNG.
        fax: bool,
    },
    /// The leg is gone: free its RTP endpoint.
    Close {
        /// The leg.
        leg: LegId,
    },
}

/// One output of the B2BUA.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// Send these bytes to this address.
    Send {
        /// Destination.
        to: SocketAddr,
        /// A serialized SIP message.
        data: Bytes,
    },
    /// Feed this input to the switch.
    Switch(Input),
    /// Ask the switch to carry out a device's REFER (`Switch::refer`), then
    /// report the outcome with [`B2bua::refer_outcome`].
    Refer {
        /// The leg that sent the REFER.
        leg: LegId,
        /// The transfer asked for.
        event: LegEvent,
    },
    /// Work for the media plane.
    Media(MediaCommand),
    /// Open a TCP (or TLS) connection to a trunk's carrier, unless one is
    /// open already: the [`Out::Send`]s to `to` that follow go over it.
    Connect {
        /// The carrier's address.
        to: SocketAddr,
        /// TCP or TLS.
        transport: SipTransport,
    },
}

/// Settings of the B2BUA.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address tapir's SIP socket is bound to (Via, Contact).
    pub local: SocketAddr,
    /// The SIP domain (realm; host part of From/To).
    pub domain: String,
    /// The address SIP over TLS listens on (for Contact and Via of TLS
    /// dialogs); UDP and TCP share `local`.
    pub tls: Option<SocketAddr>,
    /// RFC 3261 timers.
    pub timers: TimerConfig,
    /// Most dialogs tapir keeps at once; a new INVITE whose call (two legs
    /// at least) would go beyond it is answered `503 Service Unavailable`
    /// with `Retry-After` (load shedding; see [`admission`], whose other
    /// limits the server sets with [`B2bua::admission_mut`]).
    pub max_dialogs: usize,
    /// The `Retry-After` (RFC 3261 §20.33) tapir sends with every 503 it
    /// gives a device: overload, no free RTP port.
    pub retry_after: Duration,
    /// RFC 4028 session timers (see [`session_timer`]).
    pub session_timer: session_timer::SessionTimerConfig,
    /// Busy lamp and presence subscriptions (see [`subscription`]).
    pub subscriptions: subscription::SubscriptionConfig,
}

impl Config {
    /// Settings for a B2BUA on `local` serving `domain`, with RFC 3261's
    /// default timers, no TLS listener, room for 100,000 dialogs and a
    /// `Retry-After` of 5 seconds.
    pub fn new(local: SocketAddr, domain: impl Into<String>) -> Config {
        Config {
            local,
            domain: domain.into(),
            tls: None,
            timers: TimerConfig::default(),
            max_dialogs: 100_000,
            retry_after: Duration::from_secs(5),
            session_timer: session_timer::SessionTimerConfig::default(),
            subscriptions: subscription::SubscriptionConfig::default(),
        }
    }

    /// The domain as the host part of a URI (From, To, Call-Info): an IPv6
    /// address configured bare (`::1`) comes out bracketed (`[::1]`), any
    /// other domain as configured.
    pub fn domain_host(&self) -> String {
        match Host::from_name(&self.domain) {
            Ok(host) => host.to_string(),
            Err(_) => self.domain.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// INVITE sent or received, no final answer yet.
    Early,
    /// 2xx sent or received.
    Confirmed,
    /// BYE/CANCEL sent or final error given; waiting for transactions to end.
    Ending,
}

/// One leg: its SIP dialog with its device and what tapir does with it.
#[derive(Clone, Debug)]
struct Dialog {
    inbound: bool,
    state: LegState,
    /// The dialog itself (RFC 3261 §12, `tapir_sip::dialog`): Call-ID,
    /// both tags, local and remote CSeq, remote target, route set (the
    /// Record-Route of the device's INVITE as it is, or of the answer to
    /// tapir's INVITE in reverse). Requests inside the dialog are built,
    /// matched and target-refreshed by it.
    sip: SipDialog,
    /// Where the dialog's initial INVITE came from or went to (a record-
    /// routing proxy in front of the device, or the device itself).
    remote_addr: SocketAddr,
    /// The INVITE that created the dialog (its server or client transaction).
    invite: Message,
    invite_key: TransactionKey,
    /// tapir's RTP address on the leg.
    rtp: SocketAddr,
    /// tapir's side of the leg's SDP offer/answer (origin, versions,
    /// codecs, SRTP keys once secured).
    sdp: SdpSession,
    /// The direction of tapir's offer that still waits for its answer (in
    /// the 2xx to tapir's INVITE, or in the ACK of a 2xx that offered).
    offered: Option<SdpDirection>,
    /// The last exchange's outcome given to the media plane.
    negotiated: Option<Negotiated>,
    /// tapir's current direction and what the leg hears.
    direction: Direction,
    /// The device has put the call on hold by itself.
    device_held: bool,
    /// An early-media answer (183) was sent on this inbound leg.
    early_media: bool,
    /// A re-INVITE of ours is in progress; a newer direction waits here.
    reinvite_pending: Option<TransactionKey>,
    queued_direction: Option<Direction>,
    /// Send the queued offer even if its direction is unchanged (a
    /// re-offer that secures the media).
    reoffer_forced: bool,
    /// The application asked for secure media before the leg was
    /// established: secure it once the dialog is confirmed.
    secure_pending: bool,
    /// tapir's first INVITE offered SRTP to a phone over TLS on its own
    /// initiative: a 488 or 606 to it is retried once with plain RTP.
    plain_retry: bool,
    /// tapir's INVITE already got one `422 Session Interval Too Small`
    /// and was sent again with the interval it asked for (RFC 4028 §7.4).
    interval_retried: bool,
    /// An accepted REFER's implicit subscription (RFC 3515): the device
    /// still expects its outcome in a NOTIFY (not when it asked
    /// `Refer-Sub: false`).
    refer_pending: bool,
    /// A REFER that waits for the switch's verdict (its server transaction
    /// and the request), answered by [`B2bua::refer_outcome`].
    refer_unanswered: Option<Box<(TransactionKey, Message)>>,
    /// The device's last SDP offer, which tapir's next answer must match.
    remote_offer: Option<SessionDescription>,
    /// The transport the dialog runs over.
    transport: SipTransport,
    /// The address whose lamps this leg lights (the phone's line address;
    /// none for a trunk's leg).
    lamp: Option<Arc<str>>,
    /// tapir told the device its call rings (an inbound leg's 18x).
    alerted: bool,
    /// The call is TAPI-secure (`lineSecureCall`): lamps hide its parties.
    tapi_secure: bool,
    /// tapir answered the device's INVITE with a 2xx whose ACK has not
    /// come yet.
    ack_pending: bool,
    /// A leg to a trunk's carrier: the digest credentials tapir answers
    /// the carrier's challenges with (once per request).
    trunk_credentials: Option<(String, String)>,
    /// tapir's INVITE went to a trunk's carrier: its failures are the
    /// network's (special information), not a phone's.
    to_trunk: bool,
}

impl Dialog {
    /// tapir's tag in the dialog.
    fn local_tag(&self) -> &str {
        &self.sip.id().local_tag
    }

    /// The address a request inside this dialog is sent to: the first hop
    /// of its route set (RFC 3261 §12.2.1.1, a record-routing proxy) when
    /// that names an IP address, else where the initial INVITE came from
    /// or went to. Over TCP or TLS the dialog's connection is kept.
    fn first_hop_addr(&self) -> SocketAddr {
        match self.route_hop() {
            Some(hop) if self.transport == SipTransport::Udp => hop,
            _ => self.remote_addr,
        }
    }

    /// The first hop of the dialog's route set (a record-routing proxy)
    /// when it names an IP address: in-dialog requests go to it, and may
    /// come from it.
    fn route_hop(&self) -> Option<SocketAddr> {
        if self.sip.route_set().is_empty() {
            return None;
        }
        uri_address(&self.sip.first_hop())
    }

    /// A response of tapir's to the device's INVITE that creates the dialog
    /// (18x, 2xx) echoes the INVITE's Record-Route (RFC 3261 §12.1.1).
    fn record_route(&self, mut b: MessageBuilder) -> MessageBuilder {
        for value in self.invite.header_values(&HeaderName::RecordRoute) {
            b = b.header(HeaderName::RecordRoute, value.to_owned());
        }
        b
    }
}

/// The back-to-back user agent. See the crate documentation.
pub struct B2bua {
    cfg: Config,
    directory: Box<dyn Directory + Send>,
    media: Box<dyn MediaPorts + Send>,
    tx: TransactionLayer,
    dialogs: HashMap<LegId, Dialog>,
    /// Each dialog by tapir's own tag in it (128 random bits, so one leg
    /// each). A request names a dialog only when its Call-ID and the
    /// peer's tag match too (RFC 3261 §12.2.2): see [`B2bua::dialog_named`].
    by_local_tag: HashMap<String, LegId>,
    /// The server transaction of each device's INVITE still being set up,
    /// for the CANCEL that names it (RFC 3261 §9.2).
    inbound_invites: HashMap<TransactionKey, LegId>,
    /// Client transactions and the leg (and method) they belong to.
    clients: HashMap<TransactionKey, (LegId, Method)>,
    /// How many entries of `clients` each leg has (so that ending a dialog
    /// need not scan every client transaction).
    clients_per_leg: HashMap<LegId, usize>,
    /// Server transactions whose request came over TCP or TLS, and its
    /// connection.
    reliable_peers: HashMap<TransactionKey, (SocketAddr, SipTransport)>,
    /// Where the responses of server transactions whose request came over
    /// UDP go (RFC 3261 §18.2.2, from the stamped top Via), worked out once
    /// per request instead of once per response sent.
    udp_replies: HashMap<TransactionKey, SocketAddr>,
    /// In-dialog requests sent to carriers of trunks with credentials, by
    /// client transaction, in case the carrier challenges them.
    trunk_requests: HashMap<TransactionKey, Message>,
    /// Client transactions that already answer a challenge: a second
    /// challenge to them is not answered.
    digest_retries: HashSet<TransactionKey>,
    out: VecDeque<Out>,
    timers: session_timer::SessionTimers,
    /// Whether a new call is taken now ([`admission`]).
    admission: admission::Admission,
    /// Busy lamp and presence subscriptions ([`subscription`]).
    subs: subscription::Subscriptions,
    next_inbound: u64,
    session: u64,
}

impl B2bua {
    /// A B2BUA with no dialogs.
    pub fn new(
        cfg: Config,
        directory: Box<dyn Directory + Send>,
        media: Box<dyn MediaPorts + Send>,
    ) -> B2bua {
        let session = u64::from(cfg.local.port()) << 16;
        let admission = admission::Admission::new(admission::AdmissionConfig {
            max_dialogs: cfg.max_dialogs,
            retry_after: cfg.retry_after,
            ..admission::AdmissionConfig::default()
        });
        B2bua {
            admission,
            subs: subscription::Subscriptions::new(cfg.subscriptions),
            tx: TransactionLayer::new(cfg.timers),
            cfg,
            directory,
            media,
            dialogs: HashMap::new(),
            by_local_tag: HashMap::new(),
            inbound_invites: HashMap::new(),
            clients: HashMap::new(),
            clients_per_leg: HashMap::new(),
            reliable_peers: HashMap::new(),
            udp_replies: HashMap::new(),
            trunk_requests: HashMap::new(),
            digest_retries: HashSet::new(),
            out: VecDeque::new(),
            timers: session_timer::SessionTimers::default(),
            next_inbound: INBOUND_LEG_BASE,
            session,
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<Out> {
        let out = self.out.pop_front();
        if let Some(Out::Switch(input)) = &out {
            self.lamp_input(input);
        }
        out
    }

    /// When [`B2bua::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (tx, st) = (self.tx.poll_timeout(), self.timers.next_due());
        tx.into_iter().chain(st).chain(self.subs.next_due()).min()
    }

    /// Gives back the room of tables a burst grew (dialogs, transactions
    /// and their indexes), once they hold far fewer entries than they have
    /// room for; the server calls it every few seconds.
    pub fn shrink_when_sparse(&mut self) {
        use tapir_sip::capacity::Shrink;
        self.tx.shrink_when_sparse();
        self.dialogs.shrink_when_sparse();
        self.by_local_tag.shrink_when_sparse();
        self.inbound_invites.shrink_when_sparse();
        self.clients.shrink_when_sparse();
        self.clients_per_leg.shrink_when_sparse();
        self.reliable_peers.shrink_when_sparse();
        self.udp_replies.shrink_when_sparse();
        self.trunk_requests.shrink_when_sparse();
        self.digest_retries.shrink_when_sparse();
        self.out.shrink_when_sparse();
    }

    /// How many dialogs are open (a leak check for tests).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Server transactions whose responses still have a remembered
    /// destination (TCP/TLS connections and UDP reply addresses); 0 once
    /// every transaction has ended.
    pub fn pending_replies(&self) -> usize {
        self.reliable_peers.len() + self.udp_replies.len()
    }

    /// Whether the TCP or TLS connection with `peer` is still needed: a
    /// dialog runs over it, a transaction waits to answer over it, or a
    /// registration reaches its device over it. The server does not close
    /// such a connection for idleness.
    pub fn uses_connection(&self, now: Instant, peer: SocketAddr) -> bool {
        self.dialogs
            .values()
            .any(|d| d.transport != SipTransport::Udp && d.remote_addr == peer)
            || self.reliable_peers.values().any(|(p, _)| *p == peer)
            || self.directory.registered_over(now, peer)
    }

    /// The admission rule new calls pass first: the server feeds it its
    /// measurements and reads its refusal counts.
    pub fn admission_mut(&mut self) -> &mut admission::Admission {
        &mut self.admission
    }

    /// A fresh tag, branch or Call-ID part: `prefix` and 128 bits from a
    /// CSPRNG in hex ([`tapir_sip::dialog::new_tag`]), never derived from
    /// tapir's port or a counter, so that one dialog's identifiers tell
    /// nothing about another's.
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", tapir_sip::dialog::new_tag())
    }

    fn send(&mut self, to: SocketAddr, message: &Message) {
        self.out.push_back(Out::Send {
            to,
            data: message.to_bytes(),
        });
    }

    // ------------------------------------------------------------------
    // From the network
    // ------------------------------------------------------------------

    /// A datagram arrived from `source`. Malformed requests get the 400/505
    /// the codec chooses; malformed responses are dropped; nothing panics.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: Bytes) {
        let message = match Message::parse_datagram(data.clone()) {
            Ok(m) => m,
            Err(e) => {
                let tag = self.unique("t");
                if let Some(reply) = tapir_sip::msg::stateless_rejection(&data, &e, &tag) {
                    self.send(source, &reply);
                }
                tracing::debug!(%source, error = %e, "dropped malformed SIP message");
                return;
            }
        };
        self.received(now, source, message, SipTransport::Udp);
    }

    /// A message framed from a TCP or TLS connection with peer `source` (the
    /// driver frames the stream). Responses to it go back over that connection.
    pub fn handle_stream_message(
        &mut self,
        now: Instant,
        source: SocketAddr,
        message: Message,
        transport: SipTransport,
    ) {
        self.received(now, source, message, transport);
    }

    fn received(
        &mut self,
        now: Instant,
        source: SocketAddr,
        mut message: Message,
        transport: SipTransport,
    ) {
        let reliability = reliability(transport);
        if message.is_request() {
            if let Err(rejection) = tapir_sip::msg::check_request(&message) {
                let tag = self.unique("t");
                let reply = message
                    .response_builder(rejection.status, Some(rejection.reason), Some(&tag))
                    .build();
                self.send(source, &reply);
                return;
            }
            if message.stamp_top_via(source).is_err() {
                return;
            }
        }
        match self.tx.handle_received(now, message, reliability) {
            Received::NewRequest { key, request } => {
                if transport != SipTransport::Udp {
                    self.reliable_peers.insert(key.clone(), (source, transport));
                } else if let Some(to) = response_destination(&request) {
                    self.udp_replies.insert(key.clone(), to);
                }
                self.new_request(now, source, key, request)
            }
            Received::Matched { .. } => {}
            Received::StrayAck(ack) => self.ack_received(now, source, transport, &ack),
            Received::StrayResponse(response) => self.stray_response(response),
            Received::Unmatchable(_) => {}
        }
        self.drain_transactions(now);
    }

    /// Timers of the transaction layer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.session_timers_due(now);
        self.subscriptions_due(now);
        self.drain_transactions(now);
    }

    fn drain_transactions(&mut self, now: Instant) {
        while let Some(output) = self.tx.poll_output() {
            match output {
                LayerOutput::Transmit { role, key, message } => {
                    let to = match role {
                        Role::Server => self
                            .reliable_peers
                            .get(&key)
                            .map(|(peer, _)| *peer)
                            .or_else(|| self.udp_replies.get(&key).copied())
                            .or_else(|| response_destination(&message)),
                        // The initial INVITE and its CANCEL go where the
                        // INVITE was addressed; requests inside the dialog
                        // to the first hop of its route set.
                        Role::Client => self
                            .clients
                            .get(&key)
                            .and_then(|(leg, method)| {
                                let d = self.dialogs.get(leg)?;
                                Some(if *method == Method::Cancel || d.invite_key == key {
                                    d.remote_addr
                                } else {
                                    d.first_hop_addr()
                                })
                            })
                            .or_else(|| self.subs.destination(&key)),
                    };
                    if let Some(to) = to {
                        self.send(to, &message);
                    }
                }
                LayerOutput::Event {
                    role: Role::Client,
                    key,
                    event,
                } => self.client_event(now, key, event),
                LayerOutput::Event {
                    role: Role::Server,
                    key,
                    event: TransactionEvent::Terminated,
                } => {
                    self.reliable_peers.remove(&key);
                    self.udp_replies.remove(&key);
                    self.invite_transaction_ended(&key);
                }
                LayerOutput::Event {
                    role: Role::Server,
                    event: TransactionEvent::Ack(ack),
                    ..
                } => {
                    // An ACK of a 2xx that reused the INVITE's branch (RFC
                    // 2543 style): it matched the transaction, so it comes
                    // from the dialog's peer.
                    if let Some((source, transport)) = self
                        .request_dialog(&ack)
                        .and_then(|leg| self.dialogs.get(&leg))
                        .map(|d| (d.remote_addr, d.transport))
                    {
                        self.ack_received(now, source, transport, &ack);
                    }
                }
                LayerOutput::Event { .. } | LayerOutput::Timeout(_) => {}
            }
        }
    }

    /// A device's INVITE transaction ended. After a 2xx that is 64·T1 later
    /// (RFC 6026 Timer L): when its ACK has still not come, the device is
    /// gone (RFC 3261 §13.3.1.4), and the switch hangs the call up (a BYE
    /// on this dialog, the other legs released, `no_ack` in the CDR).
    fn invite_transaction_ended(&mut self, key: &TransactionKey) {
        let Some(leg) = self.inbound_invites.remove(key) else {
            return;
        };
        let unacknowledged = self
            .dialogs
            .get(&leg)
            .is_some_and(|d| d.state == LegState::Confirmed && d.ack_pending);
        if unacknowledged {
            tracing::warn!(%leg, "no ACK for tapir's 2xx within 64×T1; the leg is released");
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Lost(ReleaseCause::NoAck),
            }));
        }
    }

    fn respond(&mut self, now: Instant, key: &TransactionKey, mut response: Message) {
        self.session_answer(now, &mut response);
        if self.tx.send_response(now, key, response).is_ok() {
            self.drain_transactions(now);
        }
    }

    fn reply(&mut self, now: Instant, key: &TransactionKey, request: &Message, code: u16) {
        let tag = self.unique("t");
        let r = request.response_builder(code, None, Some(&tag)).build();
        self.respond(now, key, r);
    }

    /// `503 Service Unavailable` with `Retry-After`: tapir cannot take the
    /// request now (too many dialogs, no RTP port) but will later.
    fn reply_unavailable(&mut self, now: Instant, key: &TransactionKey, request: &Message) {
        let tag = self.unique("t");
        let r = request
            .response_builder(503, None, Some(&tag))
            .header(
                HeaderName::RetryAfter,
                self.admission
                    .config()
                    .retry_after
                    .as_secs()
                    .max(1)
                    .to_string(),
            )
            .build();
        self.respond(now, key, r);
    }

    /// `488 Not Acceptable Here` to an offer tapir cannot answer, saying why
    /// in a Warning header (RFC 3261 §20.43); inside a dialog with its tag.
    fn refuse_offer(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Message,
        leg: Option<LegId>,
        why: &OfferRefusal,
    ) {
        tracing::info!(?leg, reason = %why, "SDP offer refused with 488");
        let tag = leg
            .and_then(|l| self.dialogs.get(&l))
            .map(|d| d.local_tag().to_owned())
            .unwrap_or_else(|| self.unique("t"));
        let text = why.to_string().replace(['"', '\\'], "'");
        let mut b = request.response_builder(488, None, Some(&tag)).header(
            HeaderName::from_wire("Warning"),
            format!("399 tapir \"{text}\""),
        );
        if let Some(leg) = leg {
            b = b.header(HeaderName::Contact, self.contact(self.leg_transport(leg)));
        }
        let r = b.build();
        self.respond(now, key, r);
    }

    /// The `o=` session id of a leg's SDP.
    fn session_id(&self, leg: LegId) -> u64 {
        self.session.wrapping_add(leg.0 & 0xffff_ffff)
    }

    /// A phone reached over TLS refused tapir's SRTP offer (488 or 606) and
    /// the application has not asked for secure media: invite it again,
    /// once, with plain RTP (same dialog identifiers, next CSeq). False when
    /// there is nothing to retry.
    fn retry_plain(&mut self, now: Instant, leg: LegId) -> bool {
        let session_id = self.session_id(leg);
        let branch = self.unique("z9hG4bK");
        let via = self.via(SipTransport::Tls, &branch);
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return false;
        };
        if !d.plain_retry || d.state != LegState::Early || d.secure_pending {
            return false;
        }
        d.plain_retry = false;
        d.sdp = SdpSession::new(d.rtp, session_id);
        d.offered = Some(SdpDirection::SendRecv);
        let body = d.sdp.offer(SdpDirection::SendRecv);
        let mut invite = resent(&d.invite, via, d.sip.local_cseq() + 1, &Method::Invite);
        invite.set_body(Some("application/sdp"), Bytes::from(body));
        let transport = d.transport;
        tracing::info!(%leg, "the phone refused SRTP; inviting it again with RTP");
        self.initial_invite_again(now, leg, invite, transport)
            .is_some()
    }

    /// tapir's initial INVITE of `leg` sent again (same Call-ID and From
    /// tag, next CSeq): its dialog starts afresh from it (no peer tag, the
    /// Request-URI as target, no route set), and it becomes the leg's INVITE.
    fn initial_invite_again(
        &mut self,
        now: Instant,
        leg: LegId,
        invite: Message,
        transport: SipTransport,
    ) -> Option<TransactionKey> {
        let contact = self.contact(transport);
        let sip = match SipDialog::outgoing(&invite, &contact) {
            Ok(sip) => sip,
            Err(e) => {
                tracing::warn!(%leg, error = %e, "tapir's INVITE cannot be sent again");
                return None;
            }
        };
        let key = self.start_resent(now, leg, &invite, transport)?;
        if let Some(d) = self.dialogs.get_mut(&leg) {
            d.sip = sip;
            d.invite = invite;
            d.invite_key = key.clone();
        }
        self.drain_transactions(now);
        Some(key)
    }

    /// Start the client transaction of a request of `leg` sent again.
    fn start_resent(
        &mut self,
        now: Instant,
        leg: LegId,
        request: &Message,
        transport: SipTransport,
    ) -> Option<TransactionKey> {
        let method = request.method().cloned()?;
        let key = self
            .tx
            .start_client(now, request.clone(), reliability(transport))
            .ok()?;
        self.track_client(key.clone(), leg, method);
        Some(key)
    }

    fn new_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
    ) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        let to_tag = request
            .to_header()
            .ok()
            .flatten()
            .and_then(|t| t.tag().map(str::to_string));
        match method {
            Method::Register => {
                let transport = self.transport_of(&key);
                let r = self.directory.register(now, &request, source, transport);
                self.respond(now, &key, r);
                self.lamp_registered(&request);
            }
            Method::Subscribe => self.subscribe_received(now, source, key, request, to_tag),
            Method::Options if to_tag.is_none() => self.reply(now, &key, &request, 200),
            Method::Invite if to_tag.is_none() => self.new_invite(now, source, key, request),
            Method::Cancel => self.cancel_received(now, source, key, request),
            _ if to_tag.is_some() => self.in_dialog(now, source, key, request, method),
            _ => self.reply(now, &key, &request, 405),
        }
    }

    /// A device starts a call: admit it, open a leg, tell the switch.
    fn new_invite(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
    ) {
        // Admission first: before authentication and before any RTP port.
        if let Err(refusal) = self.admission.check(self.dialogs.len()) {
            // Under overload one line per refused call would add to it: the
            // server logs when overload starts and ends.
            if refusal.reason == admission::RefusalReason::Overload {
                tracing::debug!("new call refused (overload); 503");
            } else {
                tracing::warn!(dialogs = self.dialogs.len(), reason = %refusal.reason, "new call refused; 503");
            }
            self.reply_unavailable(now, &key, &request);
            return;
        }
        let transport = self.transport_of(&key);
        // Another node of a cluster is admitted by its mark (only on what
        // comes from the edge); a trunk's carrier by where the request
        // really came from: transport, address and port together (never by
        // what its Via claims); phones and everyone else by digest.
        let node_caller = match self.directory.admit_node(now, &request, source) {
            None => None,
            Some(Ok(caller)) => Some(caller),
            Some(Err(refusal)) => {
                self.respond(now, &key, *refusal);
                return;
            }
        };
        let carrier = source;
        let trunk_line = match node_caller {
            Some(_) => None,
            None => self.directory.trunk_from(carrier, transport),
        };
        let (user, external_caller, to): (String, _, _) = match (&node_caller, trunk_line) {
            (Some(caller), _) => {
                let Some(to) = trunk::called_number(&request) else {
                    self.reply(now, &key, &request, 404);
                    return;
                };
                // The number shown: a carrier's caller when `from` is a
                // trunk line (the switch reads it only then).
                let shown = request
                    .from_header()
                    .ok()
                    .flatten()
                    .and_then(|f| uri_user(&f.uri))
                    .filter(|u| !u.is_empty());
                tracing::debug!(from = %caller.from, %to, hops = caller.forward_hops, "call from another node");
                (caller.from.clone(), shown, to)
            }
            (None, Some(trunk_line)) => {
                let caller = trunk::calling_number(&request);
                let Some(to) = trunk::called_number(&request) else {
                    self.reply(now, &key, &request, 404);
                    return;
                };
                tracing::info!(trunk = %trunk_line, %carrier, caller = ?caller, %to, "call from a trunk");
                (
                    trunk_line,
                    Some(caller.unwrap_or_else(|| "anonymous".into())),
                    to,
                )
            }
            (None, None) => {
                let user = match self.directory.admit(now, &request, source) {
                    Ok(user) => user,
                    Err(response) => {
                        self.respond(now, &key, *response);
                        return;
                    }
                };
                let Some(to) = request
                    .request_uri()
                    .and_then(Result::ok)
                    .and_then(|u| uri_user(&u))
                else {
                    self.reply(now, &key, &request, 404);
                    return;
                };
                (user, None, to)
            }
        };
        // Replaces (RFC 3891) is looked up only for an admitted caller, so
        // that a stranger learns nothing about which calls exist. A call
        // from another node never replaces a dialog of this one.
        let replaced = match request.replaces() {
            _ if node_caller.is_some() => None,
            Ok(None) => None,
            Ok(Some(replaces)) => match self.replaced_dialog(&replaces) {
                Ok(leg) => Some(leg),
                Err(code) => {
                    tracing::info!(
                        code,
                        "an INVITE with Replaces names no dialog it may replace"
                    );
                    self.reply(now, &key, &request, code);
                    return;
                }
            },
            Err(_) => {
                self.reply(now, &key, &request, 400);
                return;
            }
        };
        if self.session_interval_refused(now, &key, &request, None) {
            return;
        }
        // The dialog (RFC 3261 §12.1.1): a record-routing proxy in front of
        // the device stays on the path of its requests both ways.
        let local_tag = self.unique("tp");
        let sip = match SipDialog::from_request(
            &request,
            &local_tag,
            &self.contact(transport),
            DialogState::Early,
        ) {
            Ok(sip) => sip,
            Err(e) => {
                tracing::info!(error = %e, "an INVITE that cannot create a dialog; 400");
                let tag = self.unique("t");
                let r = request
                    .response_builder(400, Some(&format!("Bad Request ({e})")), Some(&tag))
                    .build();
                self.respond(now, &key, r);
                return;
            }
        };
        let offer = if request.body().is_empty() {
            None
        } else {
            match answerable_offer(request.body(), transport) {
                Ok(offer) => Some(offer),
                Err(why) => {
                    self.refuse_offer(now, &key, &request, None, &why);
                    return;
                }
            }
        };
        // The server INVITE transaction has already sent 100 Trying.
        let leg = LegId(self.next_inbound);
        let Some(rtp) = self.media.open(leg) else {
            tracing::warn!(%leg, "no free RTP port; 503");
            self.reply_unavailable(now, &key, &request);
            return;
        };
        self.next_inbound += 1;
        let mut sdp = SdpSession::new(rtp, self.session_id(leg));
        // The answer tapir will give (the same in a 183 and the 200): the
        // media plane can send early media at once.
        let negotiated = match &offer {
            Some(offer) => match sdp.answer(offer, SdpDirection::SendRecv) {
                Ok((_, negotiated)) => Some(negotiated),
                Err(e) => {
                    self.refuse_offer(now, &key, &request, None, &OfferRefusal::Sdp(e));
                    self.out.push_back(Out::Media(MediaCommand::Close { leg }));
                    return;
                }
            },
            None => None,
        };
        if negotiated.is_some_and(|n| n.srtp.is_some()) {
            secured(leg, &mut sdp);
        }
        self.by_local_tag.insert(local_tag, leg);
        self.inbound_invites.insert(key.clone(), leg);
        self.dialogs.insert(
            leg,
            Dialog {
                inbound: true,
                state: LegState::Early,
                sip,
                remote_addr: source,
                invite: request.clone(),
                invite_key: key,
                rtp,
                sdp,
                offered: None,
                negotiated: None,
                direction: Direction::SendRecv,
                device_held: false,
                early_media: false,
                reinvite_pending: None,
                queued_direction: None,
                reoffer_forced: false,
                secure_pending: false,
                plain_retry: false,
                interval_retried: false,
                refer_pending: false,
                refer_unanswered: None,
                remote_offer: offer,
                transport,
                ack_pending: false,
                lamp: (external_caller.is_none() || node_caller.is_some())
                    .then(|| Arc::from(user.as_str())),
                alerted: false,
                tapi_secure: false,
                trunk_credentials: None,
                to_trunk: false,
            },
        );
        self.session_request_seen(leg, &request);
        if let Some(negotiated) = negotiated {
            self.remote_media(leg, negotiated);
        }
        let input = match replaced {
            // Pickup from a phone key, or the end of an attended transfer.
            Some(replaces) => Input::DeviceReplaces {
                leg,
                from: user,
                replaces,
            },
            None => match node_caller {
                Some(caller) => Input::NodeCall {
                    leg,
                    from: user,
                    external_caller,
                    to,
                    forward_hops: caller.forward_hops,
                },
                None => Input::DeviceCall {
                    leg,
                    from: user,
                    external_caller,
                    to,
                },
            },
        };
        self.out.push_back(Out::Switch(input));
    }

    /// CANCEL of a device's pending INVITE: 200 to the CANCEL, 487 to the
    /// INVITE, and the switch hears the device hung up.
    fn cancel_received(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
    ) {
        let transport = self.transport_of(&key);
        // The CANCEL names the INVITE's transaction (same branch and sent-by),
        // not a dialog; its Call-ID and From tag must be the INVITE's too.
        let leg = self
            .inbound_invites
            .get(&key.cancelled_invite())
            .copied()
            .filter(|leg| {
                self.dialogs.get(leg).is_some_and(|d| {
                    Some(d.sip.id().call_id.as_str()) == request.call_id().ok().flatten()
                        && d.sip.remote_tag()
                            == request
                                .from_header()
                                .ok()
                                .flatten()
                                .as_ref()
                                .and_then(|f| f.tag())
                })
            })
            .filter(|leg| self.sent_by_peer(*leg, source, transport));
        self.reply(now, &key, &request, if leg.is_some() { 200 } else { 481 });
        let Some(leg) = leg else { return };
        let Some(d) = self.dialogs.get(&leg) else {
            return;
        };
        if !d.inbound || d.state != LegState::Early {
            return;
        }
        let invite = d.invite.clone();
        let invite_key = d.invite_key.clone();
        let tag = d.local_tag().to_owned();
        let r = invite.response_builder(487, None, Some(&tag)).build();
        self.respond(now, &invite_key, r);
        self.end_dialog(leg);
        // The switch forgets a leg its device ended: its media closes here.
        self.out.push_back(Out::Media(MediaCommand::Close { leg }));
        self.out.push_back(Out::Switch(Input::Leg {
            leg,
            event: LegEvent::HungUp,
        }));
    }

    fn in_dialog(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
        method: Method,
    ) {
        let Some(leg) = self.request_dialog(&request) else {
            if method != Method::Ack {
                tracing::debug!(%method, %source, "an in-dialog request names no dialog; 481");
                self.reply(now, &key, &request, 481);
            }
            return;
        };
        let transport = self.transport_of(&key);
        if !self.sent_by_peer(leg, source, transport) {
            tracing::warn!(%leg, %method, %source, transport = transport.via_token(), "an in-dialog request from outside the dialog's peer and route; 403");
            if method != Method::Ack {
                self.reply(now, &key, &request, 403);
            }
            return;
        }
        // The peer's CSeq only goes up (RFC 3261 §12.2.2): an older or
        // replayed request gets 500 and does nothing.
        let cseq = self
            .dialogs
            .get_mut(&leg)
            .map(|d| d.sip.check_remote_cseq(&request));
        if let Some(Err(e)) = cseq {
            tracing::info!(%leg, %method, %source, error = %e, "an in-dialog request out of order; refused");
            self.reply_in_dialog(now, leg, &key, &request, e.status_code(), None);
            return;
        }
        match method {
            Method::Bye => {
                self.reply_in_dialog(now, leg, &key, &request, 200, None);
                self.end_dialog(leg);
                self.out.push_back(Out::Media(MediaCommand::Close { leg }));
                self.out.push_back(Out::Switch(Input::Leg {
                    leg,
                    event: LegEvent::HungUp,
                }));
            }
            Method::Invite | Method::Update => {
                if self.session_interval_refused(now, &key, &request, Some(leg)) {
                } else if method == Method::Update && request.body().is_empty() {
                    // A session refresh without an offer: nothing to answer.
                    self.reply_in_dialog(now, leg, &key, &request, 200, None);
                } else {
                    self.reinvite_received(now, leg, key, request);
                }
            }
            Method::Info => self.info_received(now, leg, &key, &request),
            Method::Refer => self.refer_received(now, leg, key, request),
            // PRACK tolerance (RFC 3262): tapir never asks for reliable
            // provisionals, but a device's PRACK is acknowledged.
            Method::Options | Method::Notify | Method::Prack => {
                self.reply_in_dialog(now, leg, &key, &request, 200, None)
            }
            _ => self.reply_in_dialog(now, leg, &key, &request, 405, None),
        }
    }

    /// The live dialog these identifiers name (RFC 3261 §12.2.2): its
    /// Call-ID, tapir's tag and the peer's tag all match (a peer that
    /// gave no tag, as RFC 2543 allowed, must give none). A dialog that is
    /// ending names nothing.
    fn dialog_named(
        &self,
        call_id: &str,
        local_tag: &str,
        remote_tag: Option<&str>,
    ) -> Option<LegId> {
        self.dialog_with_ids(call_id, local_tag, remote_tag)
            .filter(|leg| {
                self.dialogs
                    .get(leg)
                    .is_some_and(|d| d.state != LegState::Ending)
            })
    }

    /// The dialog whose Call-ID, tapir's tag and the peer's tag are these
    /// (RFC 3261 §12), in whatever state: the one match that in-dialog
    /// requests and Replaces share.
    fn dialog_with_ids(
        &self,
        call_id: &str,
        local_tag: &str,
        remote_tag: Option<&str>,
    ) -> Option<LegId> {
        let leg = *self.by_local_tag.get(local_tag)?;
        let d = self.dialogs.get(&leg)?;
        d.sip
            .is_named(call_id, local_tag, remote_tag)
            .then_some(leg)
    }

    /// The dialog an in-dialog request (or ACK) names: tapir's tag is in
    /// its To, the peer's in its From, whichever side sent the INVITE.
    fn request_dialog(&self, request: &Message) -> Option<LegId> {
        let call_id = request.call_id().ok().flatten()?;
        let to = request.to_header().ok().flatten()?;
        let from = request.from_header().ok().flatten();
        self.dialog_named(call_id, to.tag()?, from.as_ref().and_then(|f| f.tag()))
    }

    /// Whether a request from `source` over `transport` may act on `leg`'s
    /// dialog: it comes from the dialog's peer (the address tapir sends the
    /// dialog's messages to, over the dialog's transport; over TCP or TLS
    /// the peer's host, as a device may open a new connection), or from the
    /// first hop of the dialog's route set (a record-routing proxy).
    fn sent_by_peer(&self, leg: LegId, source: SocketAddr, transport: SipTransport) -> bool {
        let Some(d) = self.dialogs.get(&leg) else {
            return false;
        };
        let peer = transport == d.transport
            && match transport {
                SipTransport::Udp => source == d.remote_addr,
                SipTransport::Tcp | SipTransport::Tls => source.ip() == d.remote_addr.ip(),
            };
        peer || d
            .route_hop()
            .is_some_and(|hop| same_hop(hop, source, transport))
    }

    /// The dialog a Replaces header (RFC 3891 §3) names: `to-tag` is
    /// tapir's tag in it, `from-tag` the peer's, both required. The status
    /// to answer otherwise: 481 (no such dialog, or an early dialog tapir
    /// did not initiate), 486 (`early-only` on an established dialog), 603
    /// (a dialog being torn down).
    fn replaced_dialog(&self, replaces: &tapir_sip::msg::Replaces<'_>) -> Result<LegId, u16> {
        let (Some(to_tag), Some(from_tag)) = (replaces.to_tag(), replaces.from_tag()) else {
            return Err(481);
        };
        let leg = self
            .dialog_with_ids(replaces.call_id, to_tag, Some(from_tag))
            .ok_or(481u16)?;
        let d = self.dialogs.get(&leg).ok_or(481u16)?;
        match d.state {
            LegState::Ending => Err(603),
            LegState::Early if d.inbound => Err(481),
            LegState::Confirmed if replaces.early_only() => Err(486),
            _ => Ok(leg),
        }
    }

    fn reply_in_dialog(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        request: &Message,
        code: u16,
        sdp: Option<String>,
    ) {
        let tag = self.dialogs.get(&leg).map(|d| d.local_tag().to_owned());
        let mut b = request.response_builder(code, None, tag.as_deref());
        b = b.header(HeaderName::Contact, self.contact(self.leg_transport(leg)));
        if let Some(s) = sdp {
            b = b.body("application/sdp", Bytes::from(s));
        }
        let r = b.build();
        self.respond(now, key, r);
    }

    /// tapir's address for a transport.
    fn local_for(&self, transport: SipTransport) -> SocketAddr {
        match transport {
            SipTransport::Tls => self.cfg.tls.unwrap_or(self.cfg.local),
            _ => self.cfg.local,
        }
    }

    /// tapir's Contact in a dialog; over TCP or TLS it says so, or the
    /// device would send its in-dialog requests over UDP.
    fn contact(&self, transport: SipTransport) -> String {
        format!(
            "<sip:tapir@{}{}>",
            self.local_for(transport),
            transport.uri_param()
        )
    }

    /// The Via of a request tapir sends.
    fn via(&self, transport: SipTransport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_token(),
            self.local_for(transport)
        )
    }

    /// The transport a leg's dialog runs over.
    fn leg_transport(&self, leg: LegId) -> SipTransport {
        self.dialogs
            .get(&leg)
            .map_or(SipTransport::Udp, |d| d.transport)
    }

    /// The transport a server transaction's request came over.
    fn transport_of(&self, key: &TransactionKey) -> SipTransport {
        self.reliable_peers
            .get(key)
            .map_or(SipTransport::Udp, |(_, t)| *t)
    }

    /// A device re-INVITE (or UPDATE): hold or retrieve by the device, a
    /// new address, or an offerless re-INVITE that tapir answers with an
    /// offer. An offer tapir cannot answer (no common codec, plain RTP on a
    /// secured leg, SRTP keys outside TLS) gets 488 and leaves the session
    /// as it was.
    fn reinvite_received(
        &mut self,
        now: Instant,
        leg: LegId,
        key: TransactionKey,
        request: Message,
    ) {
        let transport = self.leg_transport(leg);
        let offer = if request.body().is_empty() {
            None
        } else {
            match parse_offer(request.body(), transport) {
                Ok(offer) => Some(offer),
                Err(why) => {
                    self.refuse_offer(now, &key, &request, Some(leg), &why);
                    return;
                }
            }
        };
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        // A target refresh (RFC 3261 §12.2.2) from the dialog's peer: once
        // accepted (200), its Contact is the dialog's new remote target. No
        // other request moves the target.
        let was_held = d.device_held;
        let wanted = sdp_direction(d.direction);
        let Some(offer) = offer else {
            // An offerless re-INVITE (pjsua's retrieve): tapir offers in its
            // 200 and the device answers in the ACK.
            d.device_held = false;
            d.offered = Some(wanted);
            let _ = d.sip.refresh_target(&request);
            let body = d.sdp.offer(wanted);
            self.reply_in_dialog(now, leg, &key, &request, 200, Some(body));
            if was_held {
                self.out.push_back(Out::Switch(Input::Leg {
                    leg,
                    event: LegEvent::Retrieved,
                }));
            }
            return;
        };
        let (body, negotiated) = match d.sdp.answer(&offer, wanted) {
            Ok(answer) => answer,
            Err(e) => {
                self.refuse_offer(now, &key, &request, Some(leg), &OfferRefusal::Sdp(e));
                return;
            }
        };
        if negotiated.srtp.is_some() {
            secured(leg, &mut d.sdp);
        }
        // A device that stops receiving (sendonly, inactive, c=0.0.0.0 or
        // port 0) has put the call on hold; recvonly has not.
        let holds = !negotiated.remote_direction.receives();
        d.device_held = holds;
        d.remote_offer = Some(offer);
        let _ = d.sip.refresh_target(&request);
        self.reply_in_dialog(now, leg, &key, &request, 200, Some(body));
        self.remote_media(leg, negotiated);
        tracing::debug!(%leg, was_held, holds, "device re-INVITE");
        let event = match (was_held, holds) {
            (false, true) => Some(LegEvent::Held),
            (true, false) => Some(LegEvent::Retrieved),
            _ => None,
        };
        if let Some(event) = event {
            self.out.push_back(Out::Switch(Input::Leg { leg, event }));
        }
    }

    /// The ACK of a 2xx tapir sent. When that 2xx offered (the device's
    /// INVITE had no SDP), the ACK carries the device's answer; an answer
    /// that breaks the no-fallback rule of a secured leg ends the leg.
    /// A leg the application asked to secure before it was established is
    /// secured now.
    fn ack_received(
        &mut self,
        now: Instant,
        source: SocketAddr,
        transport: SipTransport,
        ack: &Message,
    ) {
        let Some(leg) = self
            .request_dialog(ack)
            .filter(|leg| self.sent_by_peer(*leg, source, transport))
        else {
            return;
        };
        // The INVITE transaction stops resending its 2xx.
        self.tx.ack_arrived(ack);
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if d.state != LegState::Confirmed {
            return;
        }
        d.ack_pending = false;
        if let Some(offered) = d.offered
            && !ack.body().is_empty()
        {
            d.offered = None;
            let answer = SessionDescription::parse_bytes(ack.body())
                .and_then(|sd| d.sdp.accept_answer(&sd, offered));
            if !self.answer_read(now, leg, answer, false) {
                return;
            }
        }
        if self.dialogs.get(&leg).is_some_and(|d| d.secure_pending) {
            self.secure_leg(now, leg);
        }
    }

    /// Apply the outcome of reading a device's answer to tapir's offer;
    /// false when the leg was ended because of it. An answer that gives up
    /// SRTP on a secured leg (or SRTP tapir cannot use) is refused the way
    /// RFC 3261 §13.2.1 says: after the ACK, a BYE. Other unusable answers
    /// leave the media as it was.
    fn answer_read(
        &mut self,
        now: Instant,
        leg: LegId,
        answer: Result<Negotiated, SdpError>,
        initial: bool,
    ) -> bool {
        match answer {
            Ok(negotiated) => {
                if let Some(d) = self.dialogs.get_mut(&leg)
                    && negotiated.srtp.is_some()
                {
                    secured(leg, &mut d.sdp);
                }
                self.remote_media(leg, negotiated);
                true
            }
            Err(e @ (SdpError::NotSecure | SdpError::NoUsableCrypto)) => {
                tracing::warn!(%leg, error = %e, "the device's answer would give up SRTP; the leg is ended");
                if let Some(bye) = self.in_dialog_request(leg, Method::Bye) {
                    self.start_client(now, leg, bye);
                }
                self.end_dialog(leg);
                self.out.push_back(Out::Media(MediaCommand::Close { leg }));
                let event = if initial {
                    LegEvent::Rejected
                } else {
                    LegEvent::HungUp
                };
                self.out.push_back(Out::Switch(Input::Leg { leg, event }));
                false
            }
            Err(e) => {
                tracing::warn!(%leg, error = %e, "unusable SDP answer; media unchanged");
                true
            }
        }
    }

    /// `Effect::SecureMedia`: SRTP with SDES keys on a leg over SIP over
    /// TLS (over UDP or TCP the keys would travel in clear, so the leg
    /// stays RTP). An established leg is re-offered RTP/SAVP at once; one
    /// still being set up is secured when its dialog is confirmed. From
    /// then on the leg's session refuses plain offers and answers.
    fn secure_leg(&mut self, now: Instant, leg: LegId) {
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if d.transport != SipTransport::Tls {
            tracing::info!(%leg, transport = d.transport.via_token(), "media stays RTP: SDES keys are only exchanged over SIP over TLS");
            return;
        }
        d.plain_retry = false;
        if d.sdp.is_secure() {
            d.secure_pending = false;
            return;
        }
        if d.state != LegState::Confirmed {
            d.secure_pending = true;
            return;
        }
        d.secure_pending = false;
        if let Err(e) = d.sdp.require_secure() {
            tracing::error!(%leg, error = %e, "cannot secure the leg's media");
            return;
        }
        tracing::info!(%leg, "securing the leg's media: re-offering RTP/SAVP");
        d.reoffer_forced = true;
        if d.queued_direction.is_none() {
            d.queued_direction = Some(d.direction);
        }
        self.next_reoffer(now, leg);
    }

    /// A device REFER: the switch decides at once ([`Out::Refer`], answered
    /// by [`B2bua::refer_outcome`] in the same pump): a refusal is a 403, an
    /// accepted transfer a 202 whose outcome goes back as a NOTIFY with a
    /// sipfrag.
    fn refer_received(&mut self, now: Instant, leg: LegId, key: TransactionKey, request: Message) {
        let Some(refer_to) = request.refer_to().ok().flatten() else {
            self.reply_in_dialog(now, leg, &key, &request, 400, None);
            return;
        };
        // Replaces travels as an escaped header of the Refer-To URI (or,
        // from older phones, as a header of the REFER). It names one of
        // tapir's dialogs by Call-ID and both tags, like an INVITE's; a
        // Replaces that names none leaves a blind transfer to the URI.
        let embedded = refer_to.uri_text.find("Replaces=").and_then(|i| {
            let raw = refer_to.uri_text.get(i + 9..)?.split('&').next()?;
            Some(String::from_utf8_lossy(&tapir_sip::msg::percent_decode(raw)).into_owned())
        });
        let other = match embedded {
            Some(text) => tapir_sip::msg::Replaces::parse(&text)
                .ok()
                .and_then(|r| self.replaced_dialog(&r).ok()),
            None => request
                .replaces()
                .ok()
                .flatten()
                .and_then(|r| self.replaced_dialog(&r).ok()),
        };
        let event = match other {
            Some(other) => LegEvent::ReferReplaces(other),
            None => match uri_user(&refer_to.uri) {
                Some(user) => LegEvent::Refer(user),
                None => {
                    self.reply_in_dialog(now, leg, &key, &request, 400, None);
                    return;
                }
            },
        };
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        // A second REFER before the switch answered the first one (only
        // when the B2BUA is driven without the pump) is not carried out.
        if d.refer_unanswered.is_some() {
            self.reply_in_dialog(now, leg, &key, &request, 491, None);
            return;
        }
        d.refer_unanswered = Some(Box::new((key, request)));
        self.out.push_back(Out::Refer { leg, event });
    }

    /// Answer a REFER the switch has decided on: 202 and the first NOTIFY
    /// of its implicit subscription, or 403 when refused.
    fn answer_refer(
        &mut self,
        now: Instant,
        leg: LegId,
        key: TransactionKey,
        request: Message,
        accepted: bool,
    ) {
        if !accepted {
            self.reply_in_dialog(now, leg, &key, &request, 403, None);
            return;
        }
        // RFC 4488: with `Refer-Sub: false` the device wants no NOTIFYs.
        let subscribe = !request
            .header(&HeaderName::ReferSub)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        let tag = self.dialogs.get(&leg).map(|d| d.local_tag().to_owned());
        let mut b = request
            .response_builder(202, None, tag.as_deref())
            .header(HeaderName::Contact, self.contact(self.leg_transport(leg)));
        if !subscribe {
            b = b.header(HeaderName::ReferSub, "false");
        }
        let answer = b.build();
        self.respond(now, &key, answer);
        if let Some(d) = self.dialogs.get_mut(&leg) {
            d.refer_pending = subscribe;
        }
        if subscribe {
            // The transfer is under way; its outcome follows.
            self.refer_notify(now, leg, "SIP/2.0 100 Trying\r\n", "active;expires=60");
        }
    }

    /// One NOTIFY of a REFER's implicit subscription.
    fn refer_notify(&mut self, now: Instant, leg: LegId, frag: &str, state: &str) {
        if let Some(req) = self.in_dialog_request(leg, Method::Notify) {
            let req = with_body(
                req,
                &[
                    (HeaderName::Event, "refer".to_string()),
                    (HeaderName::SubscriptionState, state.to_string()),
                ],
                "message/sipfrag;version=2.0",
                frag,
            );
            self.start_client(now, leg, req);
        }
    }

    /// The switch's verdict on a device's REFER ([`Out::Refer`]): a
    /// refusal answers it 403 (nothing was started; the call stays as it
    /// was); an accepted one gets 202 and is reported as done (200
    /// sipfrag) when the switch releases the transferor's leg, just before
    /// its BYE — tapir carries the transfer on by itself.
    pub fn refer_outcome(&mut self, now: Instant, leg: LegId, accepted: bool) {
        let Some(unanswered) = self
            .dialogs
            .get_mut(&leg)
            .and_then(|d| d.refer_unanswered.take())
        else {
            return;
        };
        let (key, request) = *unanswered;
        self.answer_refer(now, leg, key, request, accepted);
    }

    // ------------------------------------------------------------------
    // Responses to our requests
    // ------------------------------------------------------------------

    fn client_event(&mut self, now: Instant, key: TransactionKey, event: TransactionEvent) {
        let Some((leg, method)) = self.clients.get(&key).cloned() else {
            self.notify_event(now, &key, event);
            return;
        };
        match event {
            TransactionEvent::Response(response) => {
                let code = response.status_code().unwrap_or(0);
                self.session_response(now, leg, &method, &response);
                if method == Method::Invite {
                    self.invite_response(now, leg, &key, response, code);
                } else if matches!(code, 401 | 407) {
                    // A carrier that challenges a BYE (or another request
                    // inside the dialog) gets it once more with credentials.
                    self.retry_with_digest(now, leg, &key, &response);
                }
            }
            TransactionEvent::Timeout | TransactionEvent::TransportError => {
                self.forget_client(&key);
                self.session_request_failed(now, leg, &method);
                if method == Method::Invite {
                    self.invite_failed(leg, &key, LegEvent::Unreachable);
                } else if self
                    .dialogs
                    .get(&leg)
                    .is_some_and(|d| d.state == LegState::Ending)
                {
                    self.end_dialog(leg);
                }
            }
            TransactionEvent::Terminated => {
                self.forget_client(&key);
                if self
                    .dialogs
                    .get(&leg)
                    .is_some_and(|d| d.state == LegState::Ending)
                {
                    self.end_dialog(leg);
                }
            }
            TransactionEvent::Ack(_) => {}
        }
    }

    fn invite_response(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        response: Message,
        code: u16,
    ) {
        let Some(d) = self.dialogs.get(&leg) else {
            return;
        };
        let initial = d.invite_key == *key;
        if (101..200).contains(&code) && initial && d.state == LegState::Early {
            // A provisional response with a tag opens the early dialog
            // (RFC 3261 §12.1.2): requests inside it (a remote-control
            // NOTIFY) go to its Contact with its tag.
            if let Some(d) = self.dialogs.get_mut(&leg) {
                d.sip.handle_response_to(&Method::Invite, &response);
            }
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Alerting,
            }));
            return;
        }
        if (200..300).contains(&code) {
            self.answered(now, leg, key, response, initial);
            return;
        }
        if code >= 300 {
            if initial && matches!(code, 488 | 606) && self.retry_plain(now, leg) {
                return;
            }
            if initial && code == 422 && self.retry_longer_interval(now, leg, &response) {
                return;
            }
            if matches!(code, 401 | 407) && self.retry_with_digest(now, leg, key, &response) {
                return;
            }
            if initial {
                let to_trunk = self.dialogs.get(&leg).is_some_and(|d| d.to_trunk);
                let event = match code {
                    486 | 600 => LegEvent::Busy,
                    603 => LegEvent::Rejected,
                    // A carrier's network answers with what the PSTN
                    // signals by a special information tone (RFC 3398's
                    // mapping of ISUP causes): a vacant, changed or
                    // incomplete number; no circuit; an equipment failure.
                    404 | 410 | 484 | 485 | 604 if to_trunk => {
                        LegEvent::SpecialInfo(SpecialInfoMode::CustIrreg)
                    }
                    503 if to_trunk => LegEvent::SpecialInfo(SpecialInfoMode::NoCircuit),
                    500 | 502 | 504 if to_trunk => LegEvent::SpecialInfo(SpecialInfoMode::Reorder),
                    408 | 480 | 503 | 404 | 410 | 484 => LegEvent::Unreachable,
                    487 => LegEvent::HungUp,
                    _ => LegEvent::Rejected,
                };
                self.invite_failed(leg, key, event);
            } else if let Some(d) = self.dialogs.get_mut(&leg) {
                // A refused re-INVITE leaves the previous session in place
                // (a leg that refused SRTP keeps its media, and its session
                // still refuses plain offers: no fallback is negotiated).
                if d.sdp.is_secure() && d.negotiated.is_none_or(|n| n.srtp.is_none()) {
                    tracing::warn!(%leg, code, "the device refused SRTP; its media is unchanged");
                }
                d.offered = None;
                d.reinvite_pending = None;
                self.next_reoffer(now, leg);
            }
        }
    }

    /// A trunk's carrier challenged one of tapir's requests (its INVITE, a
    /// re-INVITE, a BYE): send it again, once, with the trunk's credentials
    /// (same dialog identifiers, next CSeq, RFC 3261 §22.2). False when
    /// there is nothing to answer with: no credentials, a challenge to a
    /// request that already answered one, or a challenge tapir cannot read.
    fn retry_with_digest(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        response: &Message,
    ) -> bool {
        if self.digest_retries.contains(key) {
            tracing::info!(%leg, "the carrier challenged the credentials; not answering again");
            return false;
        }
        let Some(d) = self.dialogs.get(&leg) else {
            return false;
        };
        let Some((username, password)) = d.trunk_credentials.clone() else {
            return false;
        };
        let initial = d.invite_key == *key;
        if initial && d.state != LegState::Early {
            return false;
        }
        let request = if initial {
            d.invite.clone()
        } else {
            match self.trunk_requests.get(key) {
                Some(r) => r.clone(),
                None => return false,
            }
        };
        let (header, challenge) = match tapir_sip::auth::client::Challenge::from_response(response)
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%leg, error = %e, "the carrier's challenge cannot be answered");
                return false;
            }
        };
        let (Some(method), tapir_sip::msg::StartLine::Request { uri, .. }) =
            (request.method().cloned(), request.start_line())
        else {
            return false;
        };
        let uri = uri.as_str().to_string();
        let transport = d.transport;
        let branch = self.unique("z9hG4bK");
        let via = self.via(transport, &branch);
        let cnonce = tapir_sip::auth::client::cnonce();
        let value = challenge.answer(&username, &password, method.as_str(), &uri, &cnonce, 1);
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return false;
        };
        // The initial INVITE sent again starts its dialog afresh (next
        // CSeq); a request inside the dialog takes the dialog's next CSeq.
        let cseq = if initial {
            d.sip.local_cseq() + 1
        } else {
            d.sip.next_cseq()
        };
        let mut retried = resent(&request, via, cseq, &method);
        retried.remove_headers(&HeaderName::Authorization);
        retried.remove_headers(&HeaderName::ProxyAuthorization);
        retried.push_header(header, value);
        tracing::info!(%leg, %method, realm = %challenge.realm, "answering the carrier's challenge");
        let new_key = if initial {
            self.initial_invite_again(now, leg, retried, transport)
        } else {
            self.start_resent(now, leg, &retried, transport)
        };
        let Some(new_key) = new_key else {
            return false;
        };
        self.digest_retries.insert(new_key.clone());
        if !initial
            && method == Method::Invite
            && let Some(d) = self.dialogs.get_mut(&leg)
        {
            d.reinvite_pending = Some(new_key);
        }
        self.drain_transactions(now);
        true
    }

    /// The driver could not open (or lost) its TCP or TLS connection to
    /// `peer`: tapir's requests to it fail as a transport error would
    /// (RFC 3261 §8.1.3.1), so an unanswered INVITE to a carrier reaches
    /// the switch as unreachable at once.
    pub fn connection_failed(&mut self, now: Instant, peer: SocketAddr) {
        let failed: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, (leg, _))| {
                self.dialogs
                    .get(leg)
                    .is_some_and(|d| d.remote_addr == peer && d.transport != SipTransport::Udp)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in failed {
            self.tx.handle_transport_error(now, Role::Client, &key);
        }
        self.drain_transactions(now);
    }

    fn invite_failed(&mut self, leg: LegId, key: &TransactionKey, event: LegEvent) {
        let Some(d) = self.dialogs.get(&leg) else {
            return;
        };
        if d.invite_key != *key {
            return;
        }
        let ending = d.state == LegState::Ending;
        self.end_dialog(leg);
        if !ending {
            // (An ending leg's media closed when it was released.)
            self.out.push_back(Out::Media(MediaCommand::Close { leg }));
            self.out.push_back(Out::Switch(Input::Leg { leg, event }));
        }
    }

    /// A 2xx to one of our INVITEs: ACK it; the first one confirms the leg.
    fn answered(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        response: Message,
        initial: bool,
    ) {
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        // The 2xx that confirms the dialog fixes the peer's tag and the
        // route set (RFC 3261 §12.1.2), replacing an early dialog's; a 2xx
        // to a re-INVITE refreshes the target only.
        d.sip.handle_response_to(&Method::Invite, &response);
        let was_ending = d.state == LegState::Ending;
        if let Some(ack) = self.ack_for(leg, &response) {
            let to = self.dialogs.get(&leg).map(Dialog::first_hop_addr);
            if let Some(to) = to {
                self.send(to, &ack);
            }
        }
        if was_ending {
            // Answered after we gave up (CANCEL crossed the 200): hang up.
            if let Some(bye) = self.in_dialog_request(leg, Method::Bye) {
                self.start_client(now, leg, bye);
            }
            return;
        }
        // The answer to tapir's offer (a retransmitted 2xx finds none
        // outstanding).
        if let Some(d) = self.dialogs.get_mut(&leg)
            && !response.body().is_empty()
            && let Some(offered) = d.offered.take()
        {
            let answer = SessionDescription::parse_bytes(response.body())
                .and_then(|sd| d.sdp.accept_answer(&sd, offered));
            if !self.answer_read(now, leg, answer, initial) {
                return;
            }
        }
        if initial {
            if let Some(d) = self.dialogs.get_mut(&leg) {
                if d.state == LegState::Confirmed {
                    return;
                }
                d.state = LegState::Confirmed;
            }
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Answered,
            }));
            if self.dialogs.get(&leg).is_some_and(|d| d.secure_pending) {
                self.secure_leg(now, leg);
            }
        } else if let Some(d) = self.dialogs.get_mut(&leg)
            && d.reinvite_pending.as_ref() == Some(key)
        {
            d.reinvite_pending = None;
            self.next_reoffer(now, leg);
        }
    }

    fn stray_response(&mut self, response: Message) {
        // A retransmitted 2xx after the INVITE transaction ended: ACK again.
        let code = response.status_code().unwrap_or(0);
        let Some(cseq) = response.cseq().ok().flatten() else {
            return;
        };
        if !(200..300).contains(&code) || cseq.method != "INVITE" {
            return;
        }
        // Our tag is in its From; the Call-ID must be the dialog's too.
        let leg = response
            .from_header()
            .ok()
            .flatten()
            .as_ref()
            .and_then(|f| f.tag())
            .and_then(|tag| self.by_local_tag.get(tag).copied())
            .filter(|leg| {
                self.dialogs.get(leg).map(|d| d.sip.id().call_id.as_str())
                    == response.call_id().ok().flatten()
            });
        if let Some(leg) = leg
            && let Some(ack) = self.ack_for(leg, &response)
            && let Some(to) = self.dialogs.get(&leg).map(Dialog::first_hop_addr)
        {
            self.send(to, &ack);
        }
    }

    // ------------------------------------------------------------------
    // From the switch
    // ------------------------------------------------------------------

    /// Carry out one of the switch's effects.
    pub fn handle_effect(&mut self, now: Instant, effect: &Effect) {
        match effect {
            Effect::CreateLeg {
                leg,
                line,
                target,
                caller,
                auto_answer,
                via_node,
                ..
            } => self.create_leg(
                now,
                *leg,
                LegRequest {
                    line: *line,
                    target,
                    caller,
                    auto_answer: *auto_answer,
                    via_node: via_node.as_ref(),
                },
            ),
            Effect::Alert { leg } => self.provisional(now, *leg, 180, false),
            Effect::AnswerLeg { leg } => self.answer_leg(now, *leg),
            Effect::Reoffer { leg, direction } => {
                if let Some(d) = self.dialogs.get_mut(leg) {
                    d.queued_direction = Some(*direction);
                }
                self.next_reoffer(now, *leg);
            }
            Effect::Media { leg, source } => {
                // A phone plays its own ringback on 180; other tones (busy,
                // reorder, dial tone) need tapir's early media.
                let early = matches!(source, MediaSource::Tone(t) if *t != tapir_core::Tone::Ringback)
                    && self
                        .dialogs
                        .get(leg)
                        .is_some_and(|d| d.inbound && d.state == LegState::Early && !d.early_media);
                if early {
                    // The caller must hear tapir's tone before the answer.
                    self.provisional(now, *leg, 183, true);
                }
                self.out.push_back(Out::Media(MediaCommand::Source {
                    leg: *leg,
                    source: source.clone(),
                }));
            }
            Effect::Redirect { leg, target } => {
                // The device places the call again, to tapir, for the new
                // target: tapir's own address on the leg's transport.
                let transport = self.leg_transport(*leg);
                let target = format!(
                    "<sip:{}@{}{}>",
                    tapir_sip::msg::percent_encode_user(target),
                    self.local_for(transport),
                    transport.uri_param()
                );
                self.final_error(now, *leg, 302, Some(target));
            }
            Effect::ReleaseLeg { leg, cause } => self.release_leg(now, *leg, *cause),
            Effect::SendDigits { leg, digits } => {
                self.out.push_back(Out::Media(MediaCommand::Digits {
                    leg: *leg,
                    digits: digits.clone(),
                }));
            }
            Effect::GenerateTone { leg, plan } => {
                self.out.push_back(Out::Media(MediaCommand::Tone {
                    leg: *leg,
                    plan: plan.clone(),
                }));
            }
            Effect::Detect { leg, tones, fax } => {
                self.out.push_back(Out::Media(MediaCommand::Detect {
                    leg: *leg,
                    tones: tones.clone(),
                    fax: *fax,
                }));
            }
            Effect::RemoteAnswer { leg } | Effect::RemoteRetrieve { leg } => {
                self.remote_control(now, *leg, "talk");
            }
            Effect::RemoteHold { leg } => self.remote_control(now, *leg, "hold"),
            Effect::SecureMedia { leg } => {
                if let Some(d) = self.dialogs.get_mut(leg) {
                    d.tapi_secure = true;
                }
                self.secure_leg(now, *leg)
            }
        }
        self.lamp_effect(effect);
        self.drain_transactions(now);
    }

    /// BroadSoft-style remote control of a phone: an in-dialog NOTIFY with
    /// `Event: talk` (answer the ringing call, or resume a held one) or
    /// `Event: hold`. The phone obeys with its own 200 OK or hold re-INVITE,
    /// which reach the switch as usual; a phone that refuses (489) changes
    /// nothing.
    fn remote_control(&mut self, now: Instant, leg: LegId, event: &str) {
        let ready = self
            .dialogs
            .get(&leg)
            .is_some_and(|d| d.sip.remote_tag().is_some() && d.state != LegState::Ending);
        if !ready {
            tracing::info!(%leg, event, "no dialog with the phone yet; remote control skipped");
            return;
        }
        let Some(notify) = self.in_dialog_builder(leg, Method::Notify) else {
            return;
        };
        let notify = notify
            .header(HeaderName::Event, event)
            .header(
                HeaderName::SubscriptionState,
                "terminated;reason=noresource",
            )
            .build();
        self.start_client(now, leg, notify);
    }

    fn create_leg(&mut self, now: Instant, leg: LegId, request: LegRequest<'_>) {
        let LegRequest {
            line,
            target,
            caller,
            auto_answer,
            via_node,
        } = request;
        // A trunk line's leg goes to the trunk's carrier, a leg for an
        // address another node serves to the cluster's edge (which passes
        // it to that node), a phone's to where the phone registered.
        let trunk = self.directory.trunk(line);
        let node = match via_node {
            Some(_) => match self.directory.node_route() {
                Some(route) => Some(route),
                None => {
                    tracing::warn!(%leg, %target, "an address served by another node, and no [cluster] edge and secret to reach it");
                    self.out.push_back(Out::Switch(Input::Leg {
                        leg,
                        event: LegEvent::Unreachable,
                    }));
                    return;
                }
            },
            None => None,
        };
        let found = match (&trunk, &node) {
            (_, Some(route)) => Some(ContactTarget::direct(route.addr, SipTransport::Udp)),
            (Some(route), None) => Some(ContactTarget::direct(route.addr, route.transport)),
            (None, None) => self.directory.contacts(now, target).into_iter().next(),
        };
        let Some(found) = found else {
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Unreachable,
            }));
            return;
        };
        let remote_addr = found.addr;
        let Some(rtp) = self.media.open(leg) else {
            tracing::warn!(%leg, "no free RTP port for an outgoing leg");
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Unreachable,
            }));
            return;
        };
        let call_id = tapir_sip::dialog::new_call_id(&self.cfg.domain_host());
        let local_tag = self.unique("tp");
        let domain = self.cfg.domain_host();
        // A call with no caller yet (a consultation call ringing its own
        // phone before anything is dialled) comes from tapir's domain: an
        // empty user part (`sip:@host`) is a syntax error phones drop.
        let local_uri = if caller.address.is_empty() {
            format!("sip:{domain}")
        } else {
            format!("sip:{}@{domain}", caller.address)
        };
        let trunk = trunk.filter(|_| node.is_none());
        let (remote_uri, request_uri) = match &trunk {
            _ if node.is_some() => (
                format!(
                    "sip:{}@{domain}",
                    tapir_sip::msg::percent_encode_user(target)
                ),
                // The edge finds the serving node by the Request-URI's user.
                format!(
                    "sip:{}@{remote_addr}",
                    tapir_sip::msg::percent_encode_user(target)
                ),
            ),
            Some(route) => (
                format!("sip:{}@{}", trunk::number_user(target), route.host_port()),
                route.request_uri(target),
            ),
            // Through a Path, the proxy finds the device by its Contact.
            None => (
                format!("sip:{target}@{domain}"),
                match &found.path {
                    Some(path) => path.contact.clone(),
                    None => format!("sip:{target}@{remote_addr}{}", found.transport.uri_param()),
                },
            ),
        };
        let from = match &caller.name {
            Some(n) => format!("\"{}\" <{local_uri}>;tag={local_tag}", n.replace('"', "")),
            None => format!("<{local_uri}>;tag={local_tag}"),
        };
        let branch = self.unique("z9hG4bK");
        let mut b = MessageBuilder::request(Method::Invite, request_uri.clone())
            .header(HeaderName::Via, self.via(found.transport, &branch))
            .header(HeaderName::MaxForwards, "70");
        // The Path the device registered through, pre-loaded (RFC 3327 §5.3).
        for route in found.path.iter().flat_map(|p| &p.route) {
            b = b.header(HeaderName::Route, route.clone());
        }
        let mut b = b
            .header(HeaderName::From, from)
            .header(HeaderName::To, format!("<{remote_uri}>"))
            .header(HeaderName::CallId, call_id.clone())
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::Contact, self.contact(found.transport))
            .header(
                HeaderName::Allow,
                "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE",
            );
        if auto_answer {
            b = b.header(
                HeaderName::CallInfo,
                format!("<sip:{domain}>;answer-after=0"),
            );
        }
        if let Some(via) = via_node {
            let Some(mark) =
                self.directory
                    .sign_node_request(&call_id, &via.from, via.forward_hops)
            else {
                tracing::warn!(%leg, from = %via.from, "a call between nodes that cannot be marked");
                self.out.push_back(Out::Media(MediaCommand::Close { leg }));
                self.out.push_back(Out::Switch(Input::Leg {
                    leg,
                    event: LegEvent::Unreachable,
                }));
                return;
            };
            b = b.header(
                HeaderName::Other(tapir_cluster::NODE_MARK_HEADER.into()),
                mark,
            );
        }
        // A phone reached over TLS is offered SRTP (RFC 4568 keys are
        // protected by the TLS hop); over UDP or TCP plain RTP. A carrier
        // is offered plain RTP: SRTP on a trunk is the application's call.
        let mut sdp = SdpSession::new(rtp, self.session_id(leg));
        let secure =
            trunk.is_none() && found.transport == SipTransport::Tls && sdp.require_secure().is_ok();
        if trunk.is_some() && found.transport != SipTransport::Udp {
            self.out.push_back(Out::Connect {
                to: remote_addr,
                transport: found.transport,
            });
        }
        let body = sdp.offer(SdpDirection::SendRecv);
        let mut invite = b.body("application/sdp", Bytes::from(body)).build();
        self.session_offer(leg, &mut invite);
        let sip = match SipDialog::outgoing(&invite, &self.contact(found.transport)) {
            Ok(sip) => sip,
            Err(e) => {
                tracing::error!(%leg, error = %e, "tapir's INVITE makes no dialog");
                self.out.push_back(Out::Switch(Input::Leg {
                    leg,
                    event: LegEvent::Unreachable,
                }));
                return;
            }
        };
        let Ok(key) = self
            .tx
            .start_client(now, invite.clone(), reliability(found.transport))
        else {
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::Unreachable,
            }));
            return;
        };
        self.track_client(key.clone(), leg, Method::Invite);
        self.by_local_tag.insert(local_tag.clone(), leg);
        self.dialogs.insert(
            leg,
            Dialog {
                inbound: false,
                state: LegState::Early,
                sip,
                remote_addr,
                invite,
                invite_key: key,
                rtp,
                sdp,
                offered: Some(SdpDirection::SendRecv),
                negotiated: None,
                direction: Direction::SendRecv,
                device_held: false,
                early_media: false,
                reinvite_pending: None,
                queued_direction: None,
                reoffer_forced: false,
                secure_pending: false,
                plain_retry: secure,
                interval_retried: false,
                refer_pending: false,
                refer_unanswered: None,
                remote_offer: None,
                transport: found.transport,
                ack_pending: false,
                lamp: trunk.is_none().then(|| Arc::from(target)),
                alerted: false,
                tapi_secure: false,
                to_trunk: trunk.is_some(),
                trunk_credentials: trunk.and_then(|t| t.credentials),
            },
        );
    }

    fn provisional(&mut self, now: Instant, leg: LegId, code: u16, with_sdp: bool) {
        let contact = self.contact(self.leg_transport(leg));
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if !d.inbound || d.state != LegState::Early {
            return;
        }
        d.alerted = true;
        let mut b = d.invite.response_builder(code, None, Some(d.local_tag()));
        b = d.record_route(b).header(HeaderName::Contact, contact);
        let mut negotiated = None;
        if with_sdp {
            d.early_media = true;
            let (body, n) = leg_sdp(d, Direction::SendRecv);
            negotiated = n;
            b = b.body("application/sdp", Bytes::from(body));
        }
        let key = d.invite_key.clone();
        let r = b.build();
        self.respond(now, &key, r);
        self.media_changed(leg, negotiated);
    }

    /// Tell the media plane about an exchange's outcome when it differs
    /// from the last one it heard.
    fn media_changed(&mut self, leg: LegId, negotiated: Option<Negotiated>) {
        let Some(negotiated) = negotiated else {
            return;
        };
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if d.negotiated != Some(negotiated) {
            self.remote_media(leg, negotiated);
        }
    }

    /// Give the media plane an exchange's outcome for a leg (and note the
    /// moment a leg's media becomes SRTP).
    fn remote_media(&mut self, leg: LegId, negotiated: Negotiated) {
        if let Some(d) = self.dialogs.get_mut(&leg) {
            let was_secure = d.negotiated.is_some_and(|n| n.srtp.is_some());
            if negotiated.srtp.is_some() && !was_secure {
                tracing::info!(%leg, "leg media secured (SRTP with SDES keys)");
            }
            d.negotiated = Some(negotiated);
        }
        self.out
            .push_back(Out::Media(MediaCommand::Remote { leg, negotiated }));
    }

    fn answer_leg(&mut self, now: Instant, leg: LegId) {
        let contact = self.contact(self.leg_transport(leg));
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if !d.inbound || d.state != LegState::Early {
            return;
        }
        d.state = LegState::Confirmed;
        d.sip.confirm();
        d.ack_pending = true;
        let (body, negotiated) = leg_sdp(d, d.direction);
        let r = d
            .record_route(d.invite.response_builder(200, None, Some(d.local_tag())))
            .header(HeaderName::Contact, contact)
            .body("application/sdp", Bytes::from(body))
            .build();
        let key = d.invite_key.clone();
        self.respond(now, &key, r);
        self.media_changed(leg, negotiated);
    }

    /// Send the next queued direction as a re-INVITE, one at a time.
    fn next_reoffer(&mut self, now: Instant, leg: LegId) {
        let Some(d) = self.dialogs.get_mut(&leg) else {
            return;
        };
        if d.state != LegState::Confirmed || d.reinvite_pending.is_some() {
            return;
        }
        let Some(direction) = d.queued_direction.take() else {
            return;
        };
        if direction == d.direction && !d.reoffer_forced {
            return;
        }
        d.reoffer_forced = false;
        d.direction = direction;
        d.offered = Some(sdp_direction(direction));
        let body = d.sdp.offer(sdp_direction(direction));
        let (sends, receives) = match direction {
            Direction::SendRecv => (true, true),
            Direction::SendOnly => (true, false),
            Direction::Inactive => (false, false),
        };
        self.out.push_back(Out::Media(MediaCommand::Direction {
            leg,
            sends,
            receives,
        }));
        if let Some(req) = self.in_dialog_request(leg, Method::Invite) {
            let req = with_body(req, &[], "application/sdp", &body);
            if let Some(key) = self.start_client(now, leg, req)
                && let Some(d) = self.dialogs.get_mut(&leg)
            {
                d.reinvite_pending = Some(key);
            }
        }
    }

    /// End a leg the switch no longer wants: a final error on a device's
    /// unanswered INVITE, CANCEL on ours, BYE once established.
    fn release_leg(&mut self, now: Instant, leg: LegId, cause: ReleaseCause) {
        let Some(d) = self.dialogs.get(&leg) else {
            return;
        };
        match (d.state, d.inbound) {
            (LegState::Early, true) => {
                let code = match cause {
                    ReleaseCause::Busy => 486,
                    ReleaseCause::Rejected => 603,
                    ReleaseCause::NotFound => 404,
                    ReleaseCause::Unavailable | ReleaseCause::Normal | ReleaseCause::NodeLost => {
                        480
                    }
                    ReleaseCause::Moved => 480,
                    ReleaseCause::RtpTimeout
                    | ReleaseCause::SessionExpired
                    | ReleaseCause::NoAck => 408,
                    ReleaseCause::Forbidden => 403,
                };
                self.final_error(now, leg, code, None);
            }
            (LegState::Early, false) => {
                let cancel = cancel_for(&d.invite);
                let d_transport = d.transport;
                let invite_key = d.invite_key.clone();
                if let Some(d) = self.dialogs.get_mut(&leg) {
                    d.state = LegState::Ending;
                }
                if let Some(cancel) = cancel
                    && let Ok(key) = self.tx.start_client(now, cancel, reliability(d_transport))
                {
                    self.track_client(key, leg, Method::Cancel);
                }
                // Without a final response (487) within 64·T1 the INVITE is
                // given up and the early dialog ends (RFC 3261 §9.1).
                self.tx.cancel_sent(now, &invite_key);
            }
            (LegState::Confirmed, _) => {
                if let Some(d) = self.dialogs.get_mut(&leg)
                    && std::mem::take(&mut d.refer_pending)
                {
                    self.refer_notify(
                        now,
                        leg,
                        "SIP/2.0 200 OK\r\n",
                        "terminated;reason=noresource",
                    );
                }
                if let Some(mut bye) = self.in_dialog_request(leg, Method::Bye) {
                    session_timer::add_reason(&mut bye, cause);
                    self.start_client(now, leg, bye);
                }
                self.end_dialog(leg);
            }
            (LegState::Ending, _) => {}
        }
        self.out.push_back(Out::Media(MediaCommand::Close { leg }));
    }

    fn final_error(&mut self, now: Instant, leg: LegId, code: u16, contact: Option<String>) {
        let Some(d) = self.dialogs.get(&leg) else {
            return;
        };
        if !d.inbound || d.state != LegState::Early {
            return;
        }
        let mut b = d.invite.response_builder(code, None, Some(d.local_tag()));
        if let Some(c) = contact {
            b = b.header(HeaderName::Contact, c);
        }
        let key = d.invite_key.clone();
        let r = b.build();
        self.respond(now, &key, r);
        self.end_dialog(leg);
        self.out.push_back(Out::Media(MediaCommand::Close { leg }));
    }

    /// Remember a client transaction of `leg`.
    fn track_client(&mut self, key: TransactionKey, leg: LegId, method: Method) {
        if let Some((old, _)) = self.clients.insert(key, (leg, method)) {
            self.untrack_leg(old);
        }
        *self.clients_per_leg.entry(leg).or_default() += 1;
    }

    /// Forget a finished client transaction.
    fn forget_client(&mut self, key: &TransactionKey) {
        if let Some((leg, _)) = self.clients.remove(key) {
            self.untrack_leg(leg);
        }
        self.trunk_requests.remove(key);
        self.digest_retries.remove(key);
    }

    fn untrack_leg(&mut self, leg: LegId) {
        if let Some(n) = self.clients_per_leg.get_mut(&leg) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.clients_per_leg.remove(&leg);
            }
        }
    }

    /// Forget a dialog (its transactions finish on their own).
    fn end_dialog(&mut self, leg: LegId) {
        self.timers.forget(leg);
        if let Some(d) = self.dialogs.get_mut(&leg) {
            d.state = LegState::Ending;
            if d.inbound {
                self.inbound_invites.remove(&d.invite_key);
            }
        }
        // Keep the dialog while client transactions of it still run, so
        // their messages find their destination; drop it afterwards.
        let busy = self.clients_per_leg.get(&leg).is_some_and(|n| *n > 0);
        if !busy && let Some(d) = self.dialogs.remove(&leg) {
            self.by_local_tag.remove(d.local_tag());
        }
    }

    fn start_client(
        &mut self,
        now: Instant,
        leg: LegId,
        mut request: Message,
    ) -> Option<TransactionKey> {
        self.session_offer(leg, &mut request);
        let method = request.method().cloned()?;
        let transport = self.leg_transport(leg);
        // Kept while it runs when the carrier may challenge it.
        let keep = self
            .dialogs
            .get(&leg)
            .is_some_and(|d| d.trunk_credentials.is_some())
            .then(|| request.clone());
        let key = self
            .tx
            .start_client(now, request, reliability(transport))
            .ok()?;
        self.track_client(key.clone(), leg, method);
        if let Some(request) = keep {
            self.trunk_requests.insert(key.clone(), request);
        }
        self.drain_transactions(now);
        Some(key)
    }

    /// A new request inside a leg's dialog (CSeq incremented).
    fn in_dialog_request(&mut self, leg: LegId, method: Method) -> Option<Message> {
        self.in_dialog_builder(leg, method)
            .map(MessageBuilder::build)
    }

    /// [`Self::in_dialog_request`] before it is built, for extra headers.
    /// The dialog builds it (`tapir_sip::dialog::Dialog::request`):
    /// Request-URI and Route from the remote target and the route set
    /// (loose and strict routers, RFC 3261 §12.2.1.1), the dialog's next
    /// CSeq, and tapir's Contact on a target refresh.
    fn in_dialog_builder(&mut self, leg: LegId, method: Method) -> Option<MessageBuilder> {
        let branch = self.unique("z9hG4bK");
        let via = self.via(self.leg_transport(leg), &branch);
        let d = self.dialogs.get_mut(&leg)?;
        Some(d.sip.request(method, &via))
    }

    /// The ACK for a 2xx to one of our INVITEs (its CSeq number, a new
    /// branch, the dialog's route).
    fn ack_for(&mut self, leg: LegId, response: &Message) -> Option<Message> {
        let branch = self.unique("z9hG4bK");
        let via = self.via(self.leg_transport(leg), &branch);
        let d = self.dialogs.get(&leg)?;
        d.sip.ack(response, &via).ok().map(MessageBuilder::build)
    }
}

/// tapir's SDP for a response on an inbound leg: the answer to the device's
/// offer (and its outcome), or tapir's own offer when the device sent none
/// (its answer comes in the ACK).
fn leg_sdp(d: &mut Dialog, direction: Direction) -> (String, Option<Negotiated>) {
    let wanted = sdp_direction(direction);
    if let Some(offer) = &d.remote_offer {
        match d.sdp.answer(offer, wanted) {
            Ok((body, negotiated)) => return (body, Some(negotiated)),
            Err(e) => tracing::warn!(error = %e, "the device's offer cannot be answered now"),
        }
    }
    d.offered = Some(wanted);
    (d.sdp.offer(wanted), None)
}

/// The SDP direction of one of the core's leg directions.
fn sdp_direction(direction: Direction) -> SdpDirection {
    match direction {
        Direction::SendRecv => SdpDirection::SendRecv,
        Direction::SendOnly => SdpDirection::SendOnly,
        Direction::Inactive => SdpDirection::Inactive,
    }
}

/// A leg's media has been secured by an exchange: from now on its session
/// refuses plain RTP (no fallback), keeping the key it already has.
fn secured(leg: LegId, sdp: &mut SdpSession) {
    if sdp.is_secure() {
        return;
    }
    if let Err(e) = sdp.require_secure() {
        tracing::error!(%leg, error = %e, "cannot pin the leg to SRTP");
    }
}

/// Why a device's SDP offer was refused (488 Not Acceptable Here, with the
/// reason in a Warning header).
#[derive(Debug, thiserror::Error)]
enum OfferRefusal {
    /// The SDP itself: unreadable, no audio, no common codec, plain RTP on
    /// a secured leg, SRTP without a usable key.
    #[error("{0}")]
    Sdp(#[from] SdpError),
    /// RTP/SAVP with SDES keys over UDP or TCP. The keys would travel in
    /// clear, which RFC 4568's security considerations rule out; an
    /// answer cannot turn an RTP/SAVP stream into RTP/AVP either, so the
    /// offer is refused rather than answered plain.
    #[error("SRTP keys (SDES) are only accepted over SIP over TLS")]
    KeysInClear,
}

/// A device's offer, parsed, with SRTP keys only over TLS.
fn parse_offer(body: &[u8], transport: SipTransport) -> Result<SessionDescription, OfferRefusal> {
    let offer = SessionDescription::parse_bytes(body)?;
    if transport != SipTransport::Tls && offer.audio().is_some_and(|m| m.is_secure()) {
        return Err(OfferRefusal::KeysInClear);
    }
    Ok(offer)
}

/// A device's initial offer if tapir can answer it: [`parse_offer`], then
/// answered once by a throwaway session, so that the same rules as the real
/// answer decide before an RTP port is taken.
fn answerable_offer(
    body: &[u8],
    transport: SipTransport,
) -> Result<SessionDescription, OfferRefusal> {
    let offer = parse_offer(body, transport)?;
    let probe = SocketAddr::from(([127, 0, 0, 1], 9));
    SdpSession::new(probe, 0).answer(&offer, SdpDirection::SendRecv)?;
    Ok(offer)
}

/// `request` sent again within its dialog, after a challenge or a refused
/// offer: a new Via (new branch) and the next CSeq, everything else kept
/// (RFC 3261 §8.1.3.5, §22.2).
fn resent(request: &Message, via: String, cseq: u32, method: &Method) -> Message {
    let mut again = request.clone();
    again.remove_headers(&HeaderName::Via);
    again.prepend_header(HeaderName::Via, via);
    again.remove_headers(&HeaderName::CSeq);
    again.push_header(HeaderName::CSeq, format!("{cseq} {method}"));
    again
}

/// No retransmissions over TCP or TLS (RFC 3261 §17.1.1.2).
fn reliability(transport: SipTransport) -> Reliability {
    match transport {
        SipTransport::Udp => Reliability::Unreliable,
        SipTransport::Tcp | SipTransport::Tls => Reliability::Reliable,
    }
}

/// The same request with extra headers and a body.
fn with_body(
    request: Message,
    headers: &[(HeaderName, String)],
    content_type: &str,
    body: &str,
) -> Message {
    let mut r = request;
    for (name, value) in headers {
        r.push_header(name.clone(), value.clone());
    }
    r.set_body(Some(content_type), Bytes::from(body.to_string()));
    r
}

/// CANCEL for one of our INVITEs (same branch, RFC 3261 §9.1).
fn cancel_for(invite: &Message) -> Option<Message> {
    let uri = match invite.start_line() {
        tapir_sip::msg::StartLine::Request { uri, .. } => uri.as_str().to_string(),
        _ => return None,
    };
    let via = invite.header(&HeaderName::Via)?.to_string();
    let from = invite.header(&HeaderName::From)?.to_string();
    let to = invite.header(&HeaderName::To)?.to_string();
    let call_id = invite.call_id().ok().flatten()?.to_string();
    let cseq = invite.cseq().ok().flatten()?.number;
    let mut b = MessageBuilder::request(Method::Cancel, uri)
        .header(HeaderName::Via, via)
        .header(HeaderName::MaxForwards, "70");
    // The INVITE's pre-loaded Route, if any (RFC 3261 §9.1).
    for route in invite.header_values(&HeaderName::Route) {
        b = b.header(HeaderName::Route, route.to_owned());
    }
    Some(
        b.header(HeaderName::From, from)
            .header(HeaderName::To, to)
            .header(HeaderName::CallId, call_id)
            .header(HeaderName::CSeq, format!("{cseq} CANCEL"))
            .build(),
    )
}

/// Where a response goes, from its top Via (received/rport stamped on arrival).
fn response_destination(response: &Message) -> Option<SocketAddr> {
    let via = response.top_via().ok().flatten()?;
    match tapir_sip::msg::response_target(&via, false) {
        ResponseTarget::Address(a) => Some(a),
        _ => None,
    }
}

/// The user part of a SIP or tel URI: the address the device dialled.
fn uri_user(uri: &Uri<'_>) -> Option<String> {
    match uri {
        Uri::Sip(s) => s
            .user
            .map(|u| String::from_utf8_lossy(&tapir_sip::msg::percent_decode(u)).into_owned()),
        Uri::Tel(t) => Some(t.number.to_string()),
        Uri::Absolute(_) => None,
    }
}

/// The IP address and port a SIP URI names (5060, or 5061 for `sips:`,
/// when it gives no port); `None` for a host name.
fn uri_address(uri: &str) -> Option<SocketAddr> {
    let uri = tapir_sip::msg::SipUri::parse(uri).ok()?;
    let port = uri.port.unwrap_or(if uri.secure { 5061 } else { 5060 });
    Some(SocketAddr::new(uri.host.ip()?, port))
}

/// A request from `source` over `transport` comes from the route hop
/// `hop`: the same address over UDP, the same host over TCP or TLS.
fn same_hop(hop: SocketAddr, source: SocketAddr, transport: SipTransport) -> bool {
    match transport {
        SipTransport::Udp => hop == source,
        SipTransport::Tcp | SipTransport::Tls => hop.ip() == source.ip(),
    }
}
