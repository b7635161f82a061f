//! SDP (RFC 4566 / RFC 8866) parsing and RFC 3264 offer/answer for a B2BUA
//! that anchors media: tapir terminates every leg's audio itself, so each leg
//! has its own [`SdpSession`] (origin, version, local RTP address) and its own
//! negotiated codec.
//!
//! What is understood: session- and media-level `c=` (IPv4/IPv6 literal;
//! `0.0.0.0` is the RFC 2543 hold), every `m=` line (so an answer mirrors the
//! offer's lines, rejecting all but one audio stream with port 0), `a=rtpmap`,
//! `a=fmtp` (kept as text), `a=ptime`, and the direction attributes. Codecs:
//! G.711 µ-law (PCMU, PT 0) and A-law (PCMA, PT 8) plus `telephone-event/8000`
//! at whatever payload type the peer uses (tapir offers 101).
//!
//! **Why our own parser** and not `ezk-sdp-types` (which builds offline and
//! is well typed): its media-type parser knows only audio/video/text/
//! application, so a whole offer fails on an `m=image` (T.38) or `m=message`
//! line a trunk or softphone may add, and its errors are nom traces rather
//! than something a 488 can explain; it also pulls `nom` and `bytesstr` for
//! the six fields we read. This parser is a few hundred lines, line-numbered
//! in its errors, bounded in size, and never panics (see the malformed-input
//! tests).

use crate::g711::Law;
use crate::srtp::{CryptoAttr, KEY_SALT_LEN, SrtpKeys, SrtpSuite, generate_key};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Largest SDP body accepted.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Largest number of `m=` lines accepted.
pub const MAX_MEDIA: usize = 32;
/// The payload type tapir offers for telephone-event.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Why an SDP body was refused; the SIP layer answers 488 Not Acceptable Here
/// (or 400 for a syntax error in an answer it asked for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8.
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    /// The body is larger than [`MAX_SDP_LEN`].
    #[error("SDP is too large ({0} bytes)")]
    TooLarge(usize),
    /// The body is empty.
    #[error("SDP is empty")]
    Empty,
    /// The first line is not `v=0`.
    #[error("SDP must start with v=0")]
    BadVersion,
    /// A line is malformed.
    #[error("SDP line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `o=` line.
    #[error("SDP has no o= line")]
    MissingOrigin,
    /// More than [`MAX_MEDIA`] media lines.
    #[error("SDP has too many m= lines")]
    TooManyMedia,
    /// No usable audio stream (none offered, or all with a transport other
    /// than RTP/AVP(F), e.g. SRTP-only or T.38-only).
    #[error("no usable RTP/AVP audio stream")]
    NoAudio,
    /// The audio stream offers neither PCMU nor PCMA.
    #[error("no common codec (tapir speaks PCMU and PCMA)")]
    NoCommonCodec,
    /// The audio stream has no connection address.
    #[error("audio stream has no c= line")]
    NoConnection,
    /// The connection address is a host name; tapir does not resolve those.
    #[error("connection address {0:?} is not an IP address")]
    UnresolvedHost(String),
    /// The leg is secured and the peer offered or answered plain RTP.
    #[error("secure media required but the peer did not offer SRTP")]
    NotSecure,
    /// SRTP without an `a=crypto` tapir can use (suite, single key, no MKI),
    /// or a secure answer to a plain offer.
    #[error("no usable SDES crypto attribute")]
    NoUsableCrypto,
    /// No randomness for an SRTP key.
    #[error("cannot generate an SRTP key")]
    NoRandom,
}

/// An SDP direction attribute (RFC 3264 §6), from the point of view of the
/// side that writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default).
    #[default]
    SendRecv,
    /// Only send (the writer puts the other side on hold).
    SendOnly,
    /// Only receive (the answer to a `sendonly` offer).
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the writer sends media.
    #[must_use]
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives media.
    #[must_use]
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with these send/receive capabilities.
    #[must_use]
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction to answer with when the peer offered `offered` and tapir
    /// would like `wanted` (RFC 3264 §6.1): tapir sends only if the peer
    /// receives, and receives only if the peer sends.
    #[must_use]
    pub fn answer_to(offered: Direction, wanted: Direction) -> Self {
        Self::from_flags(
            wanted.sends() && offered.receives(),
            wanted.receives() && offered.sends(),
        )
    }
}

/// An audio codec tapir can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type.
    #[must_use]
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The G.711 law.
    #[must_use]
    pub fn law(self) -> Law {
        match self {
            Codec::Pcmu => Law::Ulaw,
            Codec::Pcma => Law::Alaw,
        }
    }

    /// The codec of a static payload type (0 or 8).
    #[must_use]
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// An `a=rtpmap` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, if given.
    pub channels: Option<u8>,
}

/// One `m=` line with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, `image`, …).
    pub media: String,
    /// Port (0 = stream rejected or disabled).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, `udptl`, …).
    pub proto: String,
    /// Format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level connection address, if any.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` entries.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` entries (payload type, parameters).
    pub fmtps: Vec<(u8, String)>,
    /// Media-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=ptime` in ms, if any.
    pub ptime: Option<u32>,
    /// The `a=crypto` attributes tapir can use, in order.
    pub crypto: Vec<CryptoAttr>,
    /// `a=rtcp-mux`: RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

impl MediaDescription {
    /// Whether this is RTP audio tapir can carry: RTP/AVP, RTP/AVPF, or
    /// their SRTP forms RTP/SAVP and RTP/SAVPF (with SDES keys).
    #[must_use]
    pub fn is_rtp_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
            && ["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"]
                .iter()
                .any(|p| self.proto.eq_ignore_ascii_case(p))
    }

    /// Whether the transport is SRTP (`RTP/SAVP` or `RTP/SAVPF`).
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.proto.to_ascii_uppercase().starts_with("RTP/SAVP")
    }

    /// The payload types of the format list that parse as numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok())
    }

    fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.pt == pt)
    }

    /// The codec a payload type stands for here: a static 0/8 without rtpmap,
    /// or any PT whose rtpmap says PCMU/8000 or PCMA/8000.
    #[must_use]
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(m) if m.clock_rate == 8000 && m.encoding.eq_ignore_ascii_case("PCMU") => {
                Some(Codec::Pcmu)
            }
            Some(m) if m.clock_rate == 8000 && m.encoding.eq_ignore_ascii_case("PCMA") => {
                Some(Codec::Pcma)
            }
            Some(_) => None,
            None => Codec::from_payload_type(pt),
        }
    }

    /// The G.711 codecs offered, in the peer's order of preference.
    #[must_use]
    pub fn codecs(&self) -> Vec<Codec> {
        let mut v = Vec::new();
        for pt in self.payload_types() {
            if let Some(c) = self.codec_of(pt)
                && !v.contains(&c)
            {
                v.push(c);
            }
        }
        v
    }

    /// The payload type of `telephone-event/8000`, if listed.
    #[must_use]
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.clock_rate == 8000 && m.encoding.eq_ignore_ascii_case("telephone-event")
            })
        })
    }
}

/// A parsed session description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` username.
    pub origin_user: String,
    /// `o=` session id.
    pub session_id: String,
    /// `o=` session version.
    pub session_version: u64,
    /// Session-level connection address, if any.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// The `m=` lines in order.
    pub media: Vec<MediaDescription>,
}

/// The effective audio parameters of a peer's SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAudio {
    /// Where to send RTP, or `None` when the peer asks for nothing
    /// (`c=0.0.0.0` hold or port 0).
    pub addr: Option<SocketAddr>,
    /// The peer's direction (with `c=0.0.0.0` read as "do not send to me").
    pub direction: Direction,
    /// `a=ptime`, if given.
    pub ptime: Option<u32>,
    /// The peer's telephone-event payload type, if any.
    pub telephone_event_pt: Option<u8>,
}

impl SessionDescription {
    /// Parses an SDP body.
    ///
    /// # Errors
    /// An [`SdpError`] naming the first problem; never panics.
    pub fn parse_bytes(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge(body.len()));
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        Self::parse(text)
    }

    /// Parses an SDP body given as text.
    ///
    /// # Errors
    /// An [`SdpError`] naming the first problem; never panics.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge(text.len()));
        }
        let mut sd = SessionDescription {
            origin_user: String::new(),
            session_id: String::new(),
            session_version: 0,
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        let mut saw_origin = false;
        let mut any = false;
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim_end();
            if line.is_empty() {
                continue;
            }
            any = true;
            let bad = |reason| SdpError::BadLine {
                line: line_no,
                reason,
            };
            let (kind, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k.as_bytes()[0], v),
                _ => return Err(bad("expected <type>=<value>")),
            };
            if !saw_version {
                if kind != b'v' || value.trim() != "0" {
                    return Err(SdpError::BadVersion);
                }
                saw_version = true;
                continue;
            }
            match kind {
                b'o' => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    if f.len() != 6 {
                        return Err(bad("o= needs 6 fields"));
                    }
                    sd.origin_user = f[0].to_owned();
                    sd.session_id = f[1].to_owned();
                    sd.session_version = f[2]
                        .parse()
                        .map_err(|_| bad("o= session version is not a number"))?;
                    saw_origin = true;
                }
                b'c' => {
                    let addr = parse_connection(value).map_err(|e| match e {
                        ConnError::Syntax(r) => bad(r),
                        ConnError::Host(h) => SdpError::UnresolvedHost(h),
                    });
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(addr?),
                        None => sd.connection = Some(addr?),
                    }
                }
                b'm' => {
                    if sd.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooManyMedia);
                    }
                    sd.media.push(parse_media(value).map_err(bad)?);
                }
                b'a' => {
                    let (name, val) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v)),
                        None => (value, None),
                    };
                    let dir = match name {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    match (sd.media.last_mut(), dir) {
                        (None, Some(d)) => sd.direction = Some(d),
                        (Some(m), Some(d)) => m.direction = Some(d),
                        (None, None) => {}
                        (Some(m), None) => match (name, val) {
                            ("rtpmap", Some(v)) => m.rtpmaps.push(parse_rtpmap(v).map_err(bad)?),
                            ("fmtp", Some(v)) => {
                                let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                                let pt = pt.parse().map_err(|_| bad("bad fmtp payload type"))?;
                                m.fmtps.push((pt, params.trim().to_owned()));
                            }
                            ("crypto", Some(v)) => {
                                // Unusable crypto lines are skipped, not fatal:
                                // another one may do.
                                if let Some(c) = CryptoAttr::parse(v) {
                                    m.crypto.push(c);
                                }
                            }
                            ("rtcp-mux", None) => m.rtcp_mux = true,
                            ("ptime", Some(v)) => {
                                // Some phones write fractions ("20.0").
                                let ms = v.trim().split('.').next().unwrap_or("");
                                m.ptime = Some(ms.parse().map_err(|_| bad("bad ptime"))?);
                            }
                            _ => {}
                        },
                    }
                }
                b's' | b'i' | b'u' | b'e' | b'p' | b'b' | b't' | b'r' | b'z' | b'k' => {}
                _ if kind.is_ascii_lowercase() => {}
                _ => return Err(bad("unknown line type")),
            }
        }
        if !any {
            return Err(SdpError::Empty);
        }
        if !saw_version {
            return Err(SdpError::BadVersion);
        }
        if !saw_origin {
            return Err(SdpError::MissingOrigin);
        }
        Ok(sd)
    }

    /// Index of the first usable audio stream (RTP/AVP(F) audio with a
    /// non-zero port, or a zero port for a stream on hold is still usable).
    #[must_use]
    pub fn audio_index(&self) -> Option<usize> {
        self.media.iter().position(MediaDescription::is_rtp_audio)
    }

    /// The first RTP audio stream.
    #[must_use]
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.audio_index().and_then(|i| self.media.get(i))
    }

    /// The effective audio parameters: connection address (media level over
    /// session level), port, direction (media over session; `c=0.0.0.0`
    /// turns receiving off).
    ///
    /// # Errors
    /// [`SdpError::NoAudio`] or [`SdpError::NoConnection`].
    pub fn remote_audio(&self) -> Result<RemoteAudio, SdpError> {
        let m = self.audio().ok_or(SdpError::NoAudio)?;
        let ip = m
            .connection
            .or(self.connection)
            .ok_or(SdpError::NoConnection)?;
        let mut direction = m.direction.or(self.direction).unwrap_or_default();
        let null = ip.is_unspecified();
        if null {
            direction = Direction::from_flags(direction.sends(), false);
        }
        let addr = (!null && m.port != 0).then_some(SocketAddr::new(ip, m.port));
        if m.port == 0 {
            direction = Direction::Inactive;
        }
        Ok(RemoteAudio {
            addr,
            direction,
            ptime: m.ptime,
            telephone_event_pt: m.telephone_event_pt(),
        })
    }
}

enum ConnError {
    Syntax(&'static str),
    Host(String),
}

fn parse_connection(value: &str) -> Result<IpAddr, ConnError> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net, ty, addr] = f[..] else {
        return Err(ConnError::Syntax("c= needs 3 fields"));
    };
    if net != "IN" {
        return Err(ConnError::Syntax("c= network type is not IN"));
    }
    // Multicast TTL / count suffixes.
    let addr = addr.split('/').next().unwrap_or(addr);
    match ty {
        "IP4" | "IP6" => match addr.parse::<IpAddr>() {
            Ok(ip) if (ty == "IP4") == ip.is_ipv4() => Ok(ip),
            Ok(_) => Err(ConnError::Syntax("c= address family mismatch")),
            Err(_)
                if addr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) =>
            {
                Err(ConnError::Host(addr.to_owned()))
            }
            Err(_) => Err(ConnError::Syntax("c= address is malformed")),
        },
        _ => Err(ConnError::Syntax("c= address type is not IP4/IP6")),
    }
}

fn parse_media(value: &str) -> Result<MediaDescription, &'static str> {
    let mut f = value.split_ascii_whitespace();
    let media = f.next().ok_or("m= needs media type")?;
    let port = f.next().ok_or("m= needs a port")?;
    let proto = f.next().ok_or("m= needs a protocol")?;
    // "port/count" form.
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port
        .parse()
        .map_err(|_| "m= port is not a number 0-65535")?;
    let formats: Vec<String> = f.map(str::to_owned).collect();
    if proto.to_ascii_uppercase().starts_with("RTP/")
        && formats
            .iter()
            .any(|p| p.parse::<u8>().map_or(true, |v| v > 127))
    {
        return Err("m= payload type is not 0-127");
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        ptime: None,
        crypto: Vec::new(),
        rtcp_mux: false,
    })
}

fn parse_rtpmap(v: &str) -> Result<RtpMap, &'static str> {
    let (pt, rest) = v
        .trim()
        .split_once(' ')
        .ok_or("rtpmap needs '<pt> <encoding>'")?;
    let pt: u8 = pt
        .parse()
        .map_err(|_| "rtpmap payload type is not a number")?;
    if pt > 127 {
        return Err("rtpmap payload type is not 0-127");
    }
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().unwrap_or("");
    if encoding.is_empty() {
        return Err("rtpmap has no encoding name");
    }
    let clock_rate = parts
        .next()
        .ok_or("rtpmap has no clock rate")?
        .parse()
        .map_err(|_| "rtpmap clock rate is not a number")?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().map_err(|_| "rtpmap channels is not a number")?),
        None => None,
    };
    Ok(RtpMap {
        pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// The outcome of an offer/answer exchange on one leg: what the media engine
/// needs to send and receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (`None` while the peer asked for no media).
    pub remote: Option<SocketAddr>,
    /// The codec both sides use on this leg.
    pub codec: Codec,
    /// The peer's telephone-event payload type, if both sides support it.
    pub telephone_event_pt: Option<u8>,
    /// tapir's direction on this leg (what tapir may do).
    pub direction: Direction,
    /// The direction the peer wrote (with `c=0.0.0.0` read as not
    /// receiving): `SendOnly` or `Inactive` from a phone means the phone put
    /// the call on hold.
    pub remote_direction: Direction,
    /// The peer's packetisation time in ms, if given.
    pub ptime: Option<u32>,
    /// SRTP keys when the audio is secured (RTP/SAVP with SDES).
    pub srtp: Option<SrtpKeys>,
    /// RTCP goes over the RTP port (RFC 5761): the peer offered
    /// `a=rtcp-mux` and tapir's answer accepted it (or, for tapir's own
    /// offer, the answer carried it).
    pub rtcp_mux: bool,
}

/// tapir's side of one leg's SDP: origin (session id and version), the local
/// RTP address, and the codec preference. Each SDP tapir sends through it
/// carries a new version when its content changed (every offer does).
#[derive(Clone, Debug)]
pub struct SdpSession {
    session_id: u64,
    version: u64,
    local: SocketAddr,
    codecs: Vec<Codec>,
    last_body: Option<String>,
    secure: bool,
    local_key: Option<[u8; KEY_SALT_LEN]>,
}

impl SdpSession {
    /// A session for RTP at `local`, with origin id `session_id` (any number
    /// unique enough, e.g. derived from the leg id and the clock).
    #[must_use]
    pub fn new(local: SocketAddr, session_id: u64) -> Self {
        Self {
            session_id,
            version: session_id,
            local,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            last_body: None,
            secure: false,
            local_key: None,
        }
    }

    /// Secures the leg (`Effect::SecureMedia`): from now on tapir offers
    /// RTP/SAVP with an SDES key and refuses plain RTP offers and answers
    /// ([`SdpError::NotSecure`]); there is no way back for this session.
    ///
    /// # Errors
    /// [`SdpError::NoRandom`] when no key can be generated.
    pub fn require_secure(&mut self) -> Result<(), SdpError> {
        self.key()?;
        self.secure = true;
        Ok(())
    }

    /// Whether the leg has been secured.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// tapir's SDES key for this leg, generated on first use and kept for
    /// the session.
    fn key(&mut self) -> Result<[u8; KEY_SALT_LEN], SdpError> {
        if let Some(k) = self.local_key {
            return Ok(k);
        }
        let k = generate_key().map_err(|_| SdpError::NoRandom)?;
        self.local_key = Some(k);
        Ok(k)
    }

    /// Sets the codecs offered, in preference order (an empty list keeps
    /// the default PCMU, PCMA).
    pub fn set_codecs(&mut self, codecs: &[Codec]) {
        if !codecs.is_empty() {
            self.codecs = codecs.to_vec();
        }
    }

    /// Changes the local RTP address (the next SDP carries it).
    pub fn set_local(&mut self, local: SocketAddr) {
        self.local = local;
    }

    /// The `o=` session version of the last SDP produced.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    fn render(&self, version: u64, media_lines: &str) -> String {
        let (fam, ip) = match self.local.ip() {
            IpAddr::V4(ip) => ("IP4", ip.to_string()),
            IpAddr::V6(ip) => ("IP6", ip.to_string()),
        };
        let mut s = String::with_capacity(300);
        let _ = write!(
            s,
            "v=0\r\no=tapir {} {version} IN {fam} {ip}\r\ns=tapir\r\nc=IN {fam} {ip}\r\nt=0 0\r\n",
            self.session_id
        );
        s.push_str(media_lines);
        s
    }

    fn finish(&mut self, media_lines: String, force_new: bool) -> String {
        let changed = self.last_body.as_deref() != Some(media_lines.as_str());
        if self.last_body.is_some() && (changed || force_new) {
            self.version += 1;
        }
        let body = self.render(self.version, &media_lines);
        self.last_body = Some(media_lines);
        body
    }

    /// tapir's offer (initial INVITE or re-INVITE) with `direction`; each
    /// call after the first increments the `o=` version.
    pub fn offer(&mut self, direction: Direction) -> String {
        let key = if self.secure { self.local_key } else { None };
        let proto = if key.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
        let mut m = format!("m=audio {} {proto}", self.local.port());
        for c in &self.codecs {
            let _ = write!(m, " {}", c.payload_type());
        }
        let _ = write!(m, " {TELEPHONE_EVENT_PT}\r\n");
        for c in &self.codecs {
            let _ = write!(m, "a=rtpmap:{} {}/8000\r\n", c.payload_type(), c.name());
        }
        let _ = write!(
            m,
            "a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\na=fmtp:{TELEPHONE_EVENT_PT} 0-16\r\na=ptime:20\r\na={}\r\n",
            direction.as_str()
        );
        if let Some(key) = key {
            let c = CryptoAttr {
                tag: 1,
                suite: SrtpSuite::AesCm128HmacSha1_80,
                key,
            };
            let _ = write!(m, "a=crypto:{}\r\n", c.to_value());
        }
        self.finish(m, true)
    }

    /// Answers a peer's offer: picks the first G.711 codec in the peer's
    /// order that tapir allows, keeps the peer's telephone-event payload
    /// type, mirrors every other `m=` line with port 0, and answers the
    /// direction per [`Direction::answer_to`] with `wanted`.
    ///
    /// # Errors
    /// [`SdpError::NoAudio`], [`SdpError::NoCommonCodec`],
    /// [`SdpError::NoConnection`], [`SdpError::NotSecure`] (plain offer on a
    /// secured leg) or [`SdpError::NoUsableCrypto`] (RTP/SAVP without a
    /// usable `a=crypto`): answer the INVITE with 488. An RTP/SAVP offer is
    /// answered with tapir's own key and [`Negotiated::srtp`] set.
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        wanted: Direction,
    ) -> Result<(String, Negotiated), SdpError> {
        let idx = offer.audio_index().ok_or(SdpError::NoAudio)?;
        let remote = offer.remote_audio()?;
        let audio = &offer.media[idx];
        let codec = audio
            .codecs()
            .into_iter()
            .find(|c| self.codecs.contains(c))
            .ok_or(SdpError::NoCommonCodec)?;
        // Answer with the peer's payload type for the chosen codec.
        let pt = audio
            .payload_types()
            .find(|&pt| audio.codec_of(pt) == Some(codec))
            .unwrap_or(codec.payload_type());
        let te = remote.telephone_event_pt;
        let direction = Direction::answer_to(remote.direction, wanted);
        let crypto = if audio.is_secure() {
            let theirs = audio
                .crypto
                .first()
                .ok_or(SdpError::NoUsableCrypto)?
                .clone();
            let ours = CryptoAttr {
                key: self.key()?,
                ..theirs.clone()
            };
            Some((theirs, ours))
        } else if self.secure {
            return Err(SdpError::NotSecure);
        } else {
            None
        };
        let mut m = String::new();
        for (i, md) in offer.media.iter().enumerate() {
            if i != idx {
                let first = md.formats.first().map_or("0", String::as_str);
                let _ = write!(m, "m={} 0 {} {first}\r\n", md.media, md.proto);
                continue;
            }
            let _ = write!(m, "m=audio {} {} {pt}", self.local.port(), md.proto);
            if let Some(te) = te {
                let _ = write!(m, " {te}");
            }
            let _ = write!(m, "\r\na=rtpmap:{pt} {}/8000\r\n", codec.name());
            if let Some(te) = te {
                let _ = write!(
                    m,
                    "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
                );
            }
            let _ = write!(m, "a=ptime:20\r\na={}\r\n", direction.as_str());
            if md.rtcp_mux {
                // RFC 5761 §5.1.1: the answer accepts multiplexing.
                m.push_str("a=rtcp-mux\r\n");
            }
            if let Some((_, ours)) = &crypto {
                let _ = write!(m, "a=crypto:{}\r\n", ours.to_value());
            }
        }
        let body = self.finish(m, false);
        Ok((
            body,
            Negotiated {
                remote: remote.addr,
                codec,
                telephone_event_pt: te,
                direction,
                remote_direction: remote.direction,
                ptime: remote.ptime,
                srtp: crypto.map(|(theirs, ours)| SrtpKeys {
                    suite: theirs.suite,
                    local: ours.key,
                    remote: theirs.key,
                }),
                rtcp_mux: audio.rtcp_mux,
            },
        ))
    }

    /// Reads the peer's answer to tapir's last offer that had direction
    /// `offered`.
    ///
    /// # Errors
    /// [`SdpError::NoAudio`] when the audio stream was rejected (port 0 with
    /// no usable codec), [`SdpError::NoCommonCodec`] when the answer picked a
    /// codec tapir did not offer, [`SdpError::NotSecure`] for a plain answer
    /// on a secured leg, [`SdpError::NoUsableCrypto`] for a secure answer
    /// without tapir's crypto tag (or to a plain offer).
    pub fn accept_answer(
        &self,
        answer: &SessionDescription,
        offered: Direction,
    ) -> Result<Negotiated, SdpError> {
        let remote = answer.remote_audio()?;
        let audio = answer.audio().ok_or(SdpError::NoAudio)?;
        let codec = audio
            .codecs()
            .into_iter()
            .find(|c| self.codecs.contains(c))
            .ok_or(SdpError::NoCommonCodec)?;
        let direction = Direction::from_flags(
            offered.sends() && remote.direction.receives(),
            offered.receives() && remote.direction.sends(),
        );
        let srtp = match (audio.is_secure(), self.secure, self.local_key) {
            (true, true, Some(local)) => {
                let theirs = audio
                    .crypto
                    .iter()
                    .find(|c| c.tag == 1 && c.suite == SrtpSuite::AesCm128HmacSha1_80)
                    .ok_or(SdpError::NoUsableCrypto)?;
                Some(SrtpKeys {
                    suite: theirs.suite,
                    local,
                    remote: theirs.key,
                })
            }
            (true, _, _) => return Err(SdpError::NoUsableCrypto),
            (false, true, _) => return Err(SdpError::NotSecure),
            (false, false, _) => None,
        };
        Ok(Negotiated {
            remote: remote.addr,
            codec,
            telephone_event_pt: remote.telephone_event_pt,
            direction,
            remote_direction: remote.direction,
            ptime: remote.ptime,
            srtp,
            rtcp_mux: audio.rtcp_mux,
        })
    }
}

/// The unspecified IPv4 address (`c=IN IP4 0.0.0.0`, the old hold form).
pub const HOLD_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests;
