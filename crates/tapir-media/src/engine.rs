//! The media plane: one UDP socket per leg, RTP relay between the two legs of
//! a bridge, a G.711 mixer for bridges of three or more, tones and hold music
//! towards legs that hear a generator, RFC 4733 / in-band DTMF out, RFC 4733
//! digits in, and RTP inactivity detection.
//!
//! Concurrency: one media thread of the engine's own waits on every leg's
//! sockets at once (one `mio` poll, edge-triggered) and ticks every 20 ms for
//! everything generated (tones, mixes, DTMF) and for timeouts. It takes one
//! short `std::sync::Mutex` around the engine state per ready socket and per
//! tick, and sends with non-blocking sends. The public methods are
//! synchronous and cheap; call them from any thread. Opening a leg binds its
//! two sockets and adds them to the poll from the caller's thread, and
//! releasing one keeps its pair open as a spare for the next leg (up to
//! [`SPARE_PAIRS`], closed after [`SPARE_IDLE`] unused): neither wakes the
//! media thread nor any other (no task is spawned per leg), and under load a
//! leg mostly costs no socket call at all. A spare pair's port is used again
//! the way a port range is walked: the oldest released first, and whatever a
//! former peer sent to it meanwhile is dropped.
//!
//! Each leg has one outgoing stream (its own SSRC, sequence and timestamp):
//! when what it hears changes (relay from another party, a tone, the mixer)
//! the sequence numbers continue and the timestamp advances by the elapsed
//! time, with the marker bit set, so the phone sees one continuous stream.
//!
//! A leg secured with [`MediaEngine::set_srtp`] unprotects what it receives
//! and protects what it sends, so a relay between an SRTP phone and a plain
//! one (or two SRTP phones with their own keys) decrypts and re-encrypts.
//!
//! RTCP: every leg also binds the next port up (RTP on an even port, RTCP on
//! RTP + 1, RFC 3550 §11) and tapir ends RTCP on each leg (see [`crate::rtcp`]
//! for why it generates rather than relays): it reads the phone's reports
//! (on the RTCP port, or multiplexed on the RTP port, RFC 5761) and every
//! [`MediaConfig::rtcp_interval`] (randomised ×0.5–1.5, the first after half
//! of it) sends its own SR or RR with an SDES CNAME, under its leg's SSRC.
//! They go where the phone's RTCP comes from once it has sent some
//! (symmetric RTCP, RFC 4961), before that to its RTP port + 1, or to its RTP
//! port when it multiplexes. SRTP legs use SRTCP.
//!
//! Applications' media streams: [`MediaEngine::tap`] copies what a leg
//! hears and says into 20 ms frames ([`crate::stream::Framer`]) on a bounded
//! queue that the media thread only ever `try_send`s to: when the reader is
//! behind, whole frames are dropped and counted ([`MediaTap::dropped`]),
//! and the call's media never waits. [`MediaEngine::play`] takes frames an
//! owner sends back, on a bounded queue the media thread only `try_recv`s
//! from, and plays them to the leg in place of, or mixed with, what it
//! hears. Both end with the leg's media, or when their other end is dropped
//! (found at the next frame or tick).

use crate::detect::{Detection, Detector, ToneSpec};
use crate::dtmf::{DtmfFrame, DtmfReceiver, DtmfSender};
use crate::g711::{Law, transcode_in_place};
use crate::playout::Playout;
use crate::prompt::PromptPlayer;
use crate::rtcp::{self, ReceptionStats, ReportBlock, RtcpItem, SenderInfo};
use crate::rtp::{self, RtpPacket};
use crate::sdp::{Codec, Direction, Negotiated};
use crate::srtp::{SrtpError, SrtpKeys, SrtpSession};
use crate::stream::{Framer, PlayMode, TapFrame};
use crate::tone::{FRAME_SAMPLES, ToneGenerator, ToneKind};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, trace};

/// A leg as the media engine knows it (the server maps its own leg ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg{}", self.0)
    }
}

/// What a leg hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Source {
    /// Nothing is sent to the leg.
    #[default]
    Silence,
    /// The other legs whose source is the same bridge: with two legs their
    /// RTP is relayed, with three or more it is mixed.
    Bridge(u64),
    /// A generated tone or hold music.
    Tone(ToneKind),
    /// A prompt started with [`MediaEngine::play_prompt`] (this playing's
    /// number); set with [`MediaEngine::set_source`] alone it is silence.
    Prompt(u64),
}

/// Where and how to send media to a leg, from the SDP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteMedia {
    /// The peer's RTP address (`None` while it asked for none, e.g. on hold
    /// with `c=0.0.0.0`).
    pub addr: Option<SocketAddr>,
    /// The codec negotiated on this leg.
    pub codec: Codec,
    /// The peer's telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
}

impl From<&Negotiated> for RemoteMedia {
    fn from(n: &Negotiated) -> Self {
        Self {
            addr: n.remote,
            codec: n.codec,
            telephone_event_pt: n.telephone_event_pt,
        }
    }
}

/// Something the media plane reports to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// DTMF digits received as RFC 4733 events on a leg (one event each).
    DigitsReceived {
        /// The leg.
        leg: LegId,
        /// The digits (`0-9 * # A-D`).
        digits: String,
    },
    /// Neither RTP nor RTCP arrived on a leg for
    /// [`MediaConfig::rtp_timeout`] since its media was applied or its last
    /// packet (for [`MediaConfig::rtp_hold_timeout`] on a leg on hold).
    /// Reported again after each further timeout while the silence lasts
    /// (the server may have ignored an earlier report: a caller waiting for
    /// an answer need not send media).
    RtpTimeout {
        /// The leg.
        leg: LegId,
    },
    /// A tone watched with [`MediaEngine::detect`] lasted its duration in
    /// what a leg's device sends (reported again after a break).
    ToneDetected {
        /// The leg.
        leg: LegId,
        /// The tone as it was watched.
        tone: ToneSpec,
    },
    /// A fax's calling tone (CNG) with its cadence in what a leg's device
    /// sends, watched with [`MediaEngine::detect`] (reported once).
    FaxDetected {
        /// The leg.
        leg: LegId,
    },
    /// A non-looping prompt played to its end on a leg (reported once).
    PromptDone {
        /// The leg.
        leg: LegId,
        /// The playing's number given to [`MediaEngine::play_prompt`].
        play: u64,
    },
}

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Address the RTP sockets bind to (also the address to put in SDP).
    pub bind_ip: IpAddr,
    /// Inclusive port range for RTP (even ports are used); `None` lets the
    /// system pick (port 0).
    pub port_range: Option<(u16, u16)>,
    /// Report [`MediaEvent::RtpTimeout`] after this long without RTP (or
    /// RTCP from the phone) on a `sendrecv` leg whose media was applied
    /// ([`MediaEngine::set_remote`] with an address), counted from the
    /// last packet or, when none ever came, from when the media was
    /// applied; `None` disables it.
    pub rtp_timeout: Option<Duration>,
    /// The same for a leg on hold (tapir's direction not `sendrecv`, or
    /// the peer gave no address, e.g. `c=0.0.0.0`): a held phone may
    /// legitimately send nothing, so the wait is longer (Asterisk's
    /// `rtpholdtimeout`, rtpengine's `silent-timeout`); `None` never times
    /// a held leg out.
    pub rtp_hold_timeout: Option<Duration>,
    /// Symmetric RTP: send to the source address the peer's packets really
    /// come from (phones behind NAT). Packets from the signalled address
    /// latch at once; another source is adopted after five packets in
    /// sequence with one SSRC. Once latched, packets from any other source
    /// are dropped until the next [`MediaEngine::set_remote`], except that
    /// the signalled address takes over an adopted source at its first
    /// packet (a stranger who spoke before the phone loses the leg).
    pub symmetric_rtp: bool,
    /// Packetisation interval of generated media.
    pub frame_interval: Duration,
    /// Hold music to loop (8 kHz mono PCM, e.g. from
    /// [`crate::wav::decode_wav`]); `None` plays the built-in melody.
    pub hold_music: Option<Arc<[i16]>>,
    /// Mean interval of the RTCP reports tapir sends on each leg (RFC 3550
    /// recommends at least 5 s; kept between 10 ms and an hour); `None`
    /// sends none (received RTCP is still read).
    pub rtcp_interval: Option<Duration>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_range: None,
            rtp_timeout: Some(DEFAULT_RTP_TIMEOUT),
            rtp_hold_timeout: Some(DEFAULT_RTP_HOLD_TIMEOUT),
            symmetric_rtp: true,
            frame_interval: Duration::from_millis(20),
            hold_music: None,
            rtcp_interval: Some(Duration::from_secs(5)),
        }
    }
}

/// The default [`MediaConfig::rtp_timeout`]: 60 s, as rtpengine's
/// `timeout` and Asterisk's sample `rtptimeout`.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The default [`MediaConfig::rtp_hold_timeout`]: one hour, as rtpengine's
/// `silent-timeout` (a held phone may send nothing at all).
pub const DEFAULT_RTP_HOLD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Errors of the engine's control methods.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The media thread or its poll could not be started.
    #[error("cannot start the media thread: {0}")]
    Start(#[source] std::io::Error),
    /// Binding a socket failed.
    #[error("cannot bind an RTP socket: {0}")]
    Bind(#[source] std::io::Error),
    /// Every port of the configured range is in use.
    #[error("no free RTP port in {0}-{1}")]
    NoPort(u16, u16),
    /// The leg has no media (never allocated, or released).
    #[error("unknown media leg {0}")]
    UnknownLeg(LegId),
    /// The leg already has media.
    #[error("media leg {0} already allocated")]
    AlreadyAllocated(LegId),
    /// SRTP keys were refused.
    #[error(transparent)]
    Srtp(#[from] SrtpError),
    /// A secure leg cannot go back to plain RTP.
    #[error("media leg {0} is secure and cannot fall back to plain RTP")]
    Downgrade(LegId),
}

/// Counters since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// RTP datagrams received.
    pub received: u64,
    /// Packets relayed from one leg to another.
    pub relayed: u64,
    /// Packets generated (tones, mixes, DTMF).
    pub generated: u64,
    /// Datagrams dropped (malformed, unknown payload type, RTCP, not
    /// receiving).
    pub dropped: u64,
    /// Sends that failed (socket buffer full, unreachable).
    pub send_errors: u64,
    /// RTCP compound packets tapir sent.
    pub rtcp_sent: u64,
    /// RTCP compound packets received and read (valid, from the phone).
    pub rtcp_received: u64,
}

/// RTCP figures of one leg ([`MediaEngine::rtcp_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcpStats {
    /// The SSRC of the stream tapir sends on the leg (its reports' SSRC).
    pub ssrc: u32,
    /// RTP packets tapir sent on the leg.
    pub packets_sent: u32,
    /// Reports tapir sent on the leg.
    pub reports_sent: u64,
    /// Valid reports read from the phone.
    pub reports_received: u64,
    /// The SSRC of the phone's stream, once RTP arrived.
    pub peer_ssrc: Option<u32>,
    /// Extended highest sequence number received from the phone.
    pub highest_seq: u32,
    /// RTP packets of the phone's stream received (its current SSRC).
    pub packets_received: u32,
    /// Packets of the phone's stream lost (expected − received).
    pub lost: i64,
    /// Interarrival jitter of the phone's stream, in samples (1/8000 s).
    pub jitter: u32,
    /// The last report block the phone sent about tapir's stream.
    pub peer_report: Option<ReportBlock>,
    /// Round-trip time from the phone's last LSR/DLSR.
    pub round_trip: Option<Duration>,
    /// The phone multiplexes RTCP on the RTP port.
    pub mux: bool,
}

/// RTCP state of a leg.
struct RtcpLeg {
    rx: ReceptionStats,
    packets_sent: u32,
    octets_sent: u32,
    sent_since_report: bool,
    /// RTP went out in the interval before the current one (RFC 3550
    /// §6.3.8: a sender is one that sent in the last two intervals).
    sent_previous: bool,
    next_report: Instant,
    /// Where the phone's RTCP comes from, once seen (symmetric RTCP).
    peer: Option<SocketAddr>,
    mux: bool,
    reports_sent: u64,
    reports_received: u64,
    peer_report: Option<ReportBlock>,
    round_trip: Option<Duration>,
}

/// The stream of [`MediaEvent`]s.
#[derive(Debug)]
pub struct MediaEvents(mpsc::UnboundedReceiver<MediaEvent>);

impl MediaEvents {
    /// The next event; `None` once the engine is gone.
    pub async fn recv(&mut self) -> Option<MediaEvent> {
        self.0.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<MediaEvent> {
        self.0.try_recv().ok()
    }
}

/// An application's copy of a leg's audio ([`MediaEngine::tap`]): 20 ms
/// frames of what the leg hears and says. Dropping it ends the tap.
#[derive(Debug)]
pub struct MediaTap {
    /// Boxed: a queue's slots are allocated 32 at a time, and 32 frames
    /// inline would be 21 KB per stream whether used or not.
    frames: mpsc::Receiver<Box<TapFrame>>,
    dropped: Arc<AtomicU64>,
}

impl MediaTap {
    /// The next frame; `None` once the leg's media is released (the call
    /// ended or left this leg).
    pub async fn recv(&mut self) -> Option<TapFrame> {
        self.frames.recv().await.map(|f| *f)
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<TapFrame> {
        self.frames.try_recv().ok().map(|f| *f)
    }

    /// Frames dropped so far because the queue was full (the reader was
    /// behind).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A tap as the media thread holds it.
struct Tap {
    framer: Framer,
    /// The leg is the far party's: what it hears is what the tapped call
    /// says, and the other way round.
    from_peer: bool,
    tx: mpsc::Sender<Box<TapFrame>>,
    dropped: Arc<AtomicU64>,
}

impl Tap {
    /// Audio the leg heard; whether the tap lives on.
    fn heard(&mut self, pcm: &[i16], at: Instant) -> bool {
        if self.from_peer {
            self.framer.push_said(pcm, at);
        } else {
            self.framer.push_heard(pcm, at);
        }
        self.flush()
    }

    /// Audio the leg said; whether the tap lives on.
    fn said(&mut self, pcm: &[i16], at: Instant) -> bool {
        if self.from_peer {
            self.framer.push_heard(pcm, at);
        } else {
            self.framer.push_said(pcm, at);
        }
        self.flush()
    }

    fn flush(&mut self) -> bool {
        while let Some(f) = self.framer.pop() {
            if !self.send(f) {
                return false;
            }
        }
        true
    }

    /// Queues a frame without waiting: a full queue drops it (counted).
    fn send(&mut self, frame: TapFrame) -> bool {
        match self.tx.try_send(Box::new(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn tick(&mut self, now: Instant) -> bool {
        match self.framer.tick(now) {
            Some(f) => self.send(f),
            None => !self.tx.is_closed(),
        }
    }
}

/// What [`MediaPlay`] and the media thread share.
#[derive(Debug, Default)]
struct PlayCtl {
    /// Raised by [`MediaPlay::clear`]: frames of an older epoch are dropped.
    epoch: AtomicU64,
    /// [`PlayMode::Mix`] when set.
    mix: AtomicBool,
}

/// Frames an owner sends back into a leg ([`MediaEngine::play`]). Dropping
/// it stops playing at once.
#[derive(Debug)]
pub struct MediaPlay {
    /// Boxed, as [`MediaTap`]'s frames.
    frames: mpsc::Sender<Box<(u64, [i16; FRAME_SAMPLES])>>,
    ctl: Arc<PlayCtl>,
    dropped: u64,
}

impl MediaPlay {
    /// Queues 20 ms (8 kHz) to play after what is queued. Never waits:
    /// `false` when the queue is full (the frame is dropped and counted)
    /// or the leg's media is gone.
    pub fn push(&mut self, pcm: [i16; FRAME_SAMPLES]) -> bool {
        let epoch = self.ctl.epoch.load(Ordering::Acquire);
        match self.frames.try_send(Box::new((epoch, pcm))) {
            Ok(()) => true,
            Err(_) => {
                self.dropped += 1;
                false
            }
        }
    }

    /// Replace the party or mix with it, from the next frame on.
    pub fn set_mode(&self, mode: PlayMode) {
        self.ctl.mix.store(mode == PlayMode::Mix, Ordering::Release);
    }

    /// Drops everything queued, at once (barge-in): the party is heard
    /// again from the next frame.
    pub fn clear(&self) {
        self.ctl.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Frames dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the leg's media is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// A play as the media thread holds it.
struct Play {
    rx: mpsc::Receiver<Box<(u64, [i16; FRAME_SAMPLES])>>,
    ctl: Arc<PlayCtl>,
    epoch: u64,
    samples: std::collections::VecDeque<i16>,
    /// A tone tapir generates, not an application's stream.
    tone: bool,
}

impl Play {
    /// Takes what was sent since (dropping what a clear made stale);
    /// whether the play lives on (its sender is there).
    fn fill(&mut self) -> bool {
        let epoch = self.ctl.epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            self.samples.clear();
            self.epoch = epoch;
        }
        // Bounded by the queue's capacity (stale frames) plus two frames.
        while self.samples.len() < 2 * FRAME_SAMPLES {
            match self.rx.try_recv() {
                Ok(frame) if frame.0 >= self.epoch => {
                    let (e, pcm) = *frame;
                    if e > self.epoch {
                        self.samples.clear();
                        self.epoch = e;
                    }
                    self.samples.extend(pcm);
                }
                Ok(_) => {}
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn active(&self) -> bool {
        !self.samples.is_empty()
    }

    fn mode(&self) -> PlayMode {
        if self.ctl.mix.load(Ordering::Acquire) {
            PlayMode::Mix
        } else {
            PlayMode::Replace
        }
    }

    /// Adds the next `out.len()` samples (what there is) into `out`.
    fn add_into(&mut self, out: &mut [i16]) {
        let n = self.samples.len().min(out.len());
        for (d, s) in out.iter_mut().zip(self.samples.drain(..n)) {
            *d = d.saturating_add(s);
        }
    }
}

struct OutStream {
    ssrc: u32,
    seq: u16,
    ts: u32,
    last_sent: Option<Instant>,
    relay_from: Option<(LegId, u32)>,
    seq_off: u16,
    ts_off: u32,
    dtmf_ts: u32,
}

impl OutStream {
    fn new(rnd: u64) -> Self {
        Self {
            ssrc: rnd as u32,
            seq: (rnd >> 32) as u16,
            ts: (rnd >> 16) as u32,
            last_sent: None,
            relay_from: None,
            seq_off: 0,
            ts_off: 0,
            dtmf_ts: 0,
        }
    }

    /// Samples of media time since the last packet, in whole frames (at
    /// least one), so a switch of source keeps the clock honest.
    fn elapsed_samples(&self, now: Instant) -> u32 {
        let Some(last) = self.last_sent else {
            return FRAME_SAMPLES as u32;
        };
        let us = now.saturating_duration_since(last).as_micros();
        let frames = ((us + 10_000) / 20_000).max(1);
        u32::try_from(frames.min(u128::from(u32::MAX / 160)) * 160).unwrap_or(160)
    }

    /// Header fields for a relayed packet.
    fn relay(&mut self, from: LegId, pkt: &RtpPacket<'_>, now: Instant) -> (u16, u32, bool) {
        let mut marker = pkt.marker;
        if self.relay_from != Some((from, pkt.ssrc)) {
            let next_seq = self.seq.wrapping_add(1);
            let next_ts = self.ts.wrapping_add(self.elapsed_samples(now));
            self.seq_off = next_seq.wrapping_sub(pkt.seq);
            self.ts_off = next_ts.wrapping_sub(pkt.timestamp);
            self.relay_from = Some((from, pkt.ssrc));
            marker = true;
        }
        let seq = pkt.seq.wrapping_add(self.seq_off);
        let ts = pkt.timestamp.wrapping_add(self.ts_off);
        if seq.wrapping_sub(self.seq) as i16 > 0 {
            self.seq = seq;
            self.ts = ts;
        }
        self.last_sent = Some(now);
        (seq, ts, marker)
    }

    /// Header fields for a generated packet. Consecutive generated frames
    /// advance the timestamp by exactly one frame, whatever the ticker's
    /// jitter; after relayed media or a pause it follows the clock.
    fn generated(&mut self, now: Instant) -> (u16, u32, bool) {
        let marker = self.relay_from.is_some() || self.last_sent.is_none();
        let steady = self.relay_from.is_none()
            && self
                .last_sent
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100));
        let advance = if steady {
            FRAME_SAMPLES as u32
        } else {
            self.elapsed_samples(now)
        };
        self.relay_from = None;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(advance);
        self.last_sent = Some(now);
        (self.seq, self.ts, marker)
    }

    /// A generated frame's worth of time passes without a packet (the pause
    /// between DTMF events).
    fn skip(&mut self, now: Instant) {
        self.relay_from = None;
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
        self.last_sent = Some(now);
    }
}

/// Consecutive packets a source other than the signalled address must send,
/// in sequence and with one SSRC, before tapir adopts it (a phone behind
/// NAT): a stranger racing the phone's own stream must win this many in a
/// row, like rtpengine's strict-source learning.
const LATCH_PROBATION: u8 = 5;

/// A source other than the signalled address on probation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    run: u8,
}

/// Symmetric RTP state of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Latch {
    /// Not latched yet: the source on probation, if any.
    Learning(Option<Candidate>),
    /// Latched on the signalled address (or on a source that passed SRTP
    /// authentication): only it is accepted until the next `set_remote`.
    Locked(SocketAddr),
    /// Another source adopted after probation (a phone behind NAT): only it
    /// is accepted, except the signalled address, which takes over at its
    /// first packet: a stranger who got in before the phone's first packet
    /// loses the leg as soon as the phone speaks.
    Adopted(SocketAddr),
}

struct Leg {
    /// Which socket pair of the engine the leg holds (its poll tokens).
    slot: usize,
    socket: UdpSocket,
    local: SocketAddr,
    rtcp_socket: UdpSocket,
    rtcp: RtcpLeg,
    remote: Option<RemoteMedia>,
    latch: Latch,
    /// The address the peer's SDP gave (before latching).
    signalled: Option<SocketAddr>,
    source: Source,
    direction: Direction,
    out: OutStream,
    tone: Option<ToneGenerator>,
    /// The prompt of [`Source::Prompt`].
    prompt: Option<PromptPlayer>,
    dtmf_tx: DtmfSender,
    dtmf_rx: DtmfReceiver,
    mix_in: Playout,
    /// Last packet received, or when the leg started expecting packets
    /// (media applied, direction changed), or its last timeout report.
    last_rx: Instant,
    /// SRTP keys and contexts once the leg is secure.
    srtp: Option<(SrtpKeys, SrtpSession)>,
    /// Applications' copies of the leg's audio.
    taps: Vec<Tap>,
    /// Frames applications send back to the leg.
    plays: Vec<Play>,
    /// Tones and media modes watched in what the device sends.
    detector: Option<Box<Detector>>,
    /// The control of the tone generated last ([`MediaEngine::generate_tone`]),
    /// a play of its own among `plays`.
    generated: Option<Arc<PlayCtl>>,
    /// The current tick already sent the leg a generated frame.
    ticked: bool,
}

impl Leg {
    fn send_to(&self) -> Option<(SocketAddr, RemoteMedia)> {
        if !self.direction.sends() {
            return None;
        }
        let r = self.remote?;
        Some((r.addr?, r))
    }

    /// Takes what the plays were sent; whether one of them replaces what
    /// the leg hears now.
    fn play_replaces(&mut self) -> bool {
        if self.plays.is_empty() {
            return false;
        }
        self.plays.retain_mut(Play::fill);
        self.plays
            .iter()
            .any(|p| p.active() && p.mode() == PlayMode::Replace)
    }

    /// `pcm`, about to be sent to the leg, with the plays' next samples
    /// (in place of it when one replaces); whether anything was played.
    fn apply_plays(&mut self, pcm: &mut [i16]) -> bool {
        if self.play_replaces() {
            pcm.fill(0);
        }
        let mut played = false;
        for p in self.plays.iter_mut().filter(|p| p.active()) {
            p.add_into(pcm);
            played = true;
        }
        played
    }

    /// The leg hears `pcm` now (taps copy it).
    fn heard(&mut self, pcm: &[i16], at: Instant) {
        if !self.taps.is_empty() {
            self.taps.retain_mut(|t| t.heard(pcm, at));
        }
    }

    /// A generated frame is about to be sent to the leg: plays go in, taps
    /// copy it.
    fn deliver(&mut self, pcm: &mut [i16], at: Instant) {
        self.ticked = true;
        if self.plays.is_empty() && self.taps.is_empty() {
            return;
        }
        self.apply_plays(pcm);
        self.heard(pcm, at);
    }
}

/// A released leg's socket pair, kept open for the next leg for a while
/// (see [`SPARE_PAIRS`]).
struct Spare {
    socket: UdpSocket,
    rtcp_socket: UdpSocket,
    local: SocketAddr,
    since: Instant,
}

struct State {
    legs: HashMap<LegId, Leg>,
    bridges: HashMap<u64, Vec<LegId>>,
    /// Which leg holds each socket pair (by slot, the pair's poll tokens);
    /// `None` for a spare pair or a slot without sockets.
    slots: Vec<Option<LegId>>,
    /// Slots without sockets, to be used again.
    free_slots: Vec<usize>,
    /// Released pairs, by slot, and their slots oldest first.
    spares: HashMap<usize, Spare>,
    spare_order: std::collections::VecDeque<usize>,
    next_port: u16,
    stats: EngineStats,
    /// Scratch buffers reused for every packet.
    pkt: Vec<u8>,
    payload: Vec<u8>,
    pcm: Vec<i16>,
}

struct Shared {
    config: MediaConfig,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<MediaEvent>,
    random: RandomState,
    /// Origin of the receive clock used for jitter (RTP units).
    epoch: Instant,
    /// SDES CNAME of every report this engine sends.
    cname: String,
    /// Where legs' sockets join the media thread's poll.
    registry: Registry,
}

/// The media plane. Dropping it stops its thread and closes every socket.
pub struct MediaEngine {
    shared: Arc<Shared>,
    /// Tells the media thread to stop (with `waker`).
    stop: Arc<AtomicBool>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaEngine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random(&self, salt: u64) -> u64 {
        let mut h = self.random.build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    }

    fn emit(&self, ev: MediaEvent) {
        debug!(?ev, "media event");
        let _ = self.events.send(ev);
    }
}

/// Feeds what a leg's device sent to its detectors and reports what they
/// found.
fn detect(shared: &Shared, leg: LegId, d: &mut Detector, pcm: &[i16], at: Instant) {
    let mut found = Vec::new();
    let ms = u64::try_from(at.saturating_duration_since(shared.epoch).as_millis()).unwrap_or(0);
    d.push(pcm, ms, &mut found);
    for f in found {
        let ev = match f {
            Detection::Tone(i) => match d.tone(i) {
                Some(t) => MediaEvent::ToneDetected {
                    leg,
                    tone: t.clone(),
                },
                None => continue,
            },
            Detection::Fax => MediaEvent::FaxDetected { leg },
        };
        shared.emit(ev);
    }
}

/// Sends a frame tapir generated (tone, prompt, DTMF audio, conference
/// mix), already encoded in `payload`, under the leg's own sequence numbers
/// and timestamps.
fn send_generated(
    stats: &mut EngineStats,
    leg: &mut Leg,
    pkt: &mut Vec<u8>,
    payload: &[u8],
    to: SocketAddr,
    remote: &RemoteMedia,
    now: Instant,
) {
    let (seq, ts, marker) = leg.out.generated(now);
    rtp::write_packet(
        pkt,
        marker,
        remote.codec.payload_type(),
        seq,
        ts,
        leg.out.ssrc,
        payload,
    );
    send_on(stats, leg, pkt, to);
    stats.generated += 1;
}

/// Sends an RTP packet on a leg, protected with SRTP when the leg is secure.
fn send_on(stats: &mut EngineStats, leg: &mut Leg, buf: &[u8], to: SocketAddr) {
    leg.rtcp.packets_sent = leg.rtcp.packets_sent.wrapping_add(1);
    let octets = buf.len().saturating_sub(rtp::HEADER_LEN);
    leg.rtcp.octets_sent = leg
        .rtcp
        .octets_sent
        .wrapping_add(u32::try_from(octets).unwrap_or(0));
    leg.rtcp.sent_since_report = true;
    match leg.srtp.as_mut() {
        Some((_, session)) => match session.protect(buf) {
            Ok(wire) => send(stats, &leg.socket, &wire, to),
            Err(e) => {
                stats.send_errors += 1;
                trace!(error = %e, "SRTP protect failed");
            }
        },
        None => send(stats, &leg.socket, buf, to),
    }
}

fn send(stats: &mut EngineStats, socket: &UdpSocket, buf: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(buf, to) {
        stats.send_errors += 1;
        trace!(%to, error = %e, "RTP send failed");
    }
}

/// A datagram that looks like RTCP, on the leg's RTCP port or (`mux`) on
/// its RTP port: read if it comes from the phone's address and parses (and
/// authenticates on an SRTP leg), never relayed.
fn on_rtcp(
    stats: &mut EngineStats,
    leg: &mut Leg,
    id: LegId,
    src: SocketAddr,
    data: &[u8],
    mux: bool,
) {
    // Only the phone's host may report on its leg: the IP of its signalled
    // or latched RTP address.
    if leg
        .remote
        .and_then(|r| r.addr)
        .is_none_or(|a| a.ip() != src.ip())
    {
        stats.dropped += 1;
        return;
    }
    let decrypted;
    let data = match leg.srtp.as_mut() {
        Some((_, session)) => match session.unprotect_rtcp(data) {
            Ok(plain) => {
                decrypted = plain;
                decrypted.as_slice()
            }
            Err(e) => {
                stats.dropped += 1;
                trace!(%id, %src, error = %e, "dropping unauthenticated RTCP");
                return;
            }
        },
        None => data,
    };
    let items = match rtcp::parse_compound(data) {
        Ok(items) => items,
        Err(e) => {
            stats.dropped += 1;
            trace!(%id, %src, error = %e, "dropping malformed RTCP");
            return;
        }
    };
    let now = std::time::Instant::now();
    let ours = leg.out.ssrc;
    for item in &items {
        let blocks = match item {
            RtcpItem::SenderReport { ssrc, info, blocks } => {
                leg.rtcp.rx.on_sender_report(*ssrc, info.ntp, now);
                blocks
            }
            RtcpItem::ReceiverReport { blocks, .. } => blocks,
            _ => continue,
        };
        if let Some(b) = blocks.iter().find(|b| b.ssrc == ours) {
            leg.rtcp.peer_report = Some(*b);
            if b.lsr != 0 {
                // RFC 3550 §6.4.1: RTT = A − LSR − DLSR, in 1/65536 s.
                let a = rtcp::ntp_middle(rtcp::ntp_timestamp(std::time::SystemTime::now()));
                let rtt = a.wrapping_sub(b.lsr).wrapping_sub(b.dlsr);
                // A negative result (clock steps) reads as huge: ignore it.
                if rtt < 65_536 * 60 {
                    leg.rtcp.round_trip =
                        Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536));
                }
            }
        }
    }
    leg.rtcp.peer = Some(src);
    leg.rtcp.mux = mux;
    leg.rtcp.reports_received += 1;
    // A phone that suppresses silence sends no RTP but keeps reporting:
    // its RTCP shows the call is alive (RFC 3550 §6.3.5).
    leg.last_rx = Instant::now();
    stats.rtcp_received += 1;
}

/// Sends the leg's compound report when it is due.
fn send_report(
    shared: &Shared,
    stats: &mut EngineStats,
    leg: &mut Leg,
    buf: &mut Vec<u8>,
    now: Instant,
) {
    let Some(interval) = shared.config.rtcp_interval else {
        return;
    };
    if now < leg.rtcp.next_report {
        return;
    }
    // Randomised ×0.5–1.5 so that reports of many legs do not bunch up
    // (RFC 3550 §6.3.1).
    let factor = 0.5 + (shared.random(u64::from(leg.out.ssrc)) % 1000) as f64 / 1000.0;
    leg.rtcp.next_report = now + interval.mul_f64(factor);
    emit_report(shared, stats, leg, buf, now, false);
}

/// Builds and sends a leg's compound report now (with a BYE when the leg
/// is going away, RFC 3550 §6.3.7).
fn emit_report(
    shared: &Shared,
    stats: &mut EngineStats,
    leg: &mut Leg,
    buf: &mut Vec<u8>,
    now: Instant,
    bye: bool,
) {
    let Some(rtp_to) = leg.remote.and_then(|r| r.addr) else {
        return;
    };
    let to = match (leg.rtcp.peer, leg.rtcp.mux) {
        (Some(peer), _) => peer,
        (None, true) => rtp_to,
        (None, false) => SocketAddr::new(rtp_to.ip(), rtp_to.port().wrapping_add(1)),
    };
    let we_sent = leg.rtcp.sent_since_report || leg.rtcp.sent_previous;
    let sender = we_sent.then(|| {
        // The RTP timestamp of this instant on tapir's stream.
        let since = leg
            .out
            .last_sent
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let samples = u32::try_from(since.as_micros() / 125).unwrap_or(u32::MAX);
        SenderInfo {
            ntp: rtcp::ntp_timestamp(std::time::SystemTime::now()),
            rtp_ts: leg.out.ts.wrapping_add(samples),
            packets: leg.rtcp.packets_sent,
            octets: leg.rtcp.octets_sent,
        }
    });
    leg.rtcp.sent_previous = leg.rtcp.sent_since_report;
    leg.rtcp.sent_since_report = false;
    let block = leg.rtcp.rx.report_block(std::time::Instant::now());
    rtcp::write_report(
        buf,
        leg.out.ssrc,
        sender.as_ref(),
        block.as_ref(),
        &shared.cname,
    );
    if bye {
        rtcp::push_bye(buf, leg.out.ssrc);
    }
    let socket = if leg.rtcp.mux {
        &leg.socket
    } else {
        &leg.rtcp_socket
    };
    let wire = match leg.srtp.as_mut() {
        Some((_, session)) => match session.protect_rtcp(buf) {
            Ok(w) => w,
            Err(e) => {
                stats.send_errors += 1;
                trace!(error = %e, "SRTCP protect failed");
                return;
            }
        },
        None => std::mem::take(buf),
    };
    send(stats, socket, &wire, to);
    if leg.srtp.is_none() {
        *buf = wire;
    }
    leg.rtcp.reports_sent += 1;
    stats.rtcp_sent += 1;
}

impl State {
    fn on_datagram(&mut self, shared: &Shared, id: LegId, src: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        let State {
            legs,
            bridges,
            stats,
            pkt: out,
            payload,
            pcm,
            ..
        } = self;
        stats.received += 1;
        let Some(leg) = legs.get_mut(&id) else {
            return;
        };
        if rtp::is_rtcp(data) {
            // RTCP multiplexed on the RTP port (RFC 5761).
            on_rtcp(stats, leg, id, src, data, true);
            return;
        }
        // Strict once latched (checked before any SRTP work, so a stranger
        // can neither burn CPU nor advance the replay window).
        if shared.config.symmetric_rtp
            && leg.remote.is_some()
            && match leg.latch {
                Latch::Locked(a) => a != src,
                Latch::Adopted(a) => a != src && leg.signalled != Some(src),
                Latch::Learning(_) => false,
            }
        {
            stats.dropped += 1;
            return;
        }
        let decrypted;
        let data = match leg.srtp.as_mut() {
            Some((_, session)) => match session.unprotect(data) {
                Ok(plain) => {
                    decrypted = plain;
                    decrypted.as_slice()
                }
                Err(e) => {
                    // Plain RTP, forgeries and replays on a secure leg.
                    stats.dropped += 1;
                    trace!(%id, %src, error = %e, "dropping unauthenticated packet");
                    return;
                }
            },
            None => data,
        };
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                stats.dropped += 1;
                trace!(%id, %src, error = %e, "dropping non-RTP datagram");
                return;
            }
        };
        if shared.config.symmetric_rtp
            && let Some(r) = leg.remote.as_mut()
        {
            match leg.latch {
                Latch::Locked(_) => {}
                Latch::Adopted(a) if a == src => {}
                // Only the signalled address gets past the check above.
                Latch::Adopted(a) => {
                    debug!(%id, from = %a, to = %src, "symmetric RTP: the signalled address takes over");
                    r.addr = Some(src);
                    leg.latch = Latch::Locked(src);
                }
                // The signalled address, or a packet that passed SRTP
                // authentication, is trusted at once.
                Latch::Learning(_) if leg.signalled == Some(src) || leg.srtp.is_some() => {
                    if r.addr != Some(src) {
                        debug!(%id, from = ?r.addr, to = %src, "symmetric RTP: latching (SRTP)");
                        r.addr = Some(src);
                    }
                    leg.latch = Latch::Locked(src);
                }
                Latch::Learning(candidate) => {
                    let run = match candidate {
                        Some(c)
                            if c.addr == src
                                && c.ssrc == pkt.ssrc
                                && pkt.seq == c.seq.wrapping_add(1) =>
                        {
                            c.run.saturating_add(1)
                        }
                        _ => 1,
                    };
                    if run < LATCH_PROBATION {
                        leg.latch = Latch::Learning(Some(Candidate {
                            addr: src,
                            ssrc: pkt.ssrc,
                            seq: pkt.seq,
                            run,
                        }));
                        stats.dropped += 1;
                        return;
                    }
                    debug!(%id, from = ?r.addr, to = %src, "symmetric RTP: adopting a source other than the signalled one");
                    r.addr = Some(src);
                    leg.latch = Latch::Adopted(src);
                }
            }
        }
        leg.last_rx = now;
        let arrival = now.saturating_duration_since(shared.epoch).as_micros() / 125;
        leg.rtcp
            .rx
            .on_rtp(pkt.ssrc, pkt.seq, pkt.timestamp, arrival as u32);
        if !leg.direction.receives() {
            stats.dropped += 1;
            return;
        }
        let te = leg.remote.and_then(|r| r.telephone_event_pt);
        let is_event = te.is_some() && te == Some(pkt.payload_type);
        let in_law = if is_event {
            if let Some(d) = leg.dtmf_rx.on_packet(pkt.timestamp, pkt.payload) {
                shared.emit(MediaEvent::DigitsReceived {
                    leg: id,
                    digits: d.to_string(),
                });
            }
            None
        } else {
            match Codec::from_payload_type(pkt.payload_type) {
                Some(c) => Some(c.law()),
                None => {
                    stats.dropped += 1;
                    return;
                }
            }
        };
        if (!leg.taps.is_empty() || leg.detector.is_some())
            && let Some(law) = in_law
        {
            pcm.clear();
            law.decode(pkt.payload, pcm);
            if !leg.taps.is_empty() {
                leg.taps.retain_mut(|t| t.said(pcm, now));
            }
            if let Some(d) = leg.detector.as_mut() {
                detect(shared, id, d, pcm, now);
            }
        }
        let Source::Bridge(b) = leg.source else {
            return;
        };
        let Some(members) = bridges.get(&b) else {
            return;
        };
        if members.len() >= 3 {
            if let Some(law) = in_law {
                leg.mix_in.push(pkt.ssrc, pkt.seq, law, pkt.payload);
            }
            return;
        }
        let Some(&other) = members.iter().find(|&&m| m != id) else {
            return;
        };
        let Some(peer) = legs.get_mut(&other) else {
            return;
        };
        if peer.dtmf_tx.is_busy() {
            return;
        }
        let Some((to, remote)) = peer.send_to() else {
            return;
        };
        let pt = match in_law {
            None => match remote.telephone_event_pt {
                Some(pt) => pt,
                None => return,
            },
            Some(_) => remote.codec.payload_type(),
        };
        // Frames an application sends back to the peer take the place of
        // this party (they go out on the tick) or are mixed in; its taps
        // copy what it hears.
        if peer.play_replaces() {
            return;
        }
        let mut body = pkt.payload;
        let mut transcode = in_law.filter(|&law| law != remote.codec.law());
        if (!peer.plays.is_empty() || !peer.taps.is_empty())
            && let Some(law) = in_law
        {
            pcm.clear();
            law.decode(pkt.payload, pcm);
            if peer.apply_plays(pcm) {
                payload.clear();
                remote.codec.law().encode(pcm, payload);
                body = payload.as_slice();
                transcode = None;
            }
            peer.heard(pcm, now);
        }
        let (seq, ts, marker) = peer.out.relay(id, &pkt, now);
        rtp::write_packet(out, marker, pt, seq, ts, peer.out.ssrc, body);
        if let Some(law) = transcode
            && let Some(body) = out.get_mut(rtp::HEADER_LEN..)
        {
            transcode_in_place(law, remote.codec.law(), body);
        }
        send_on(stats, peer, out, to);
        stats.relayed += 1;
    }

    fn tick(&mut self, shared: &Shared) {
        let now = Instant::now();
        let State {
            legs,
            bridges,
            stats,
            pkt,
            payload,
            pcm,
            ..
        } = self;
        // Prompts advance whether or not the leg can be sent to now, so
        // that their end is reported on time.
        for (id, leg) in legs.iter_mut() {
            let (Source::Prompt(play), Some(p)) = (leg.source, leg.prompt.as_mut()) else {
                continue;
            };
            pcm.clear();
            pcm.resize(FRAME_SAMPLES, 0);
            if p.fill(pcm) {
                shared.emit(MediaEvent::PromptDone { leg: *id, play });
            }
            if leg.dtmf_tx.is_busy() {
                continue;
            }
            let Some((to, remote)) = leg.send_to() else {
                continue;
            };
            leg.deliver(pcm, now);
            payload.clear();
            remote.codec.law().encode(pcm, payload);
            send_generated(stats, leg, pkt, payload, to, &remote, now);
        }
        // Generated media and DTMF, per leg.
        for leg in legs.values_mut() {
            let Some((to, remote)) = leg.send_to() else {
                continue;
            };
            let law = remote.codec.law();
            if leg.dtmf_tx.is_busy() {
                match leg.dtmf_tx.next_frame(remote.telephone_event_pt.is_some()) {
                    Some(DtmfFrame::Event { block, start }) => {
                        let (seq, ts, _) = leg.out.generated(now);
                        if start {
                            leg.out.dtmf_ts = ts;
                        }
                        let pt = remote.telephone_event_pt.unwrap_or(101);
                        let body = block.to_bytes();
                        rtp::write_packet(
                            pkt,
                            start,
                            pt,
                            seq,
                            leg.out.dtmf_ts,
                            leg.out.ssrc,
                            &body,
                        );
                        send_on(stats, leg, pkt, to);
                        stats.generated += 1;
                    }
                    Some(DtmfFrame::Audio(samples)) => {
                        leg.ticked = true;
                        leg.heard(&samples, now);
                        payload.clear();
                        law.encode(&samples, payload);
                        send_generated(stats, leg, pkt, payload, to, &remote, now);
                    }
                    Some(DtmfFrame::Gap) => leg.out.skip(now),
                    None => {}
                }
                continue;
            }
            if let (Source::Tone(_), Some(g)) = (leg.source, leg.tone.as_mut()) {
                pcm.clear();
                pcm.resize(FRAME_SAMPLES, 0);
                g.fill(pcm);
                leg.deliver(pcm, now);
                payload.clear();
                law.encode(pcm, payload);
                send_generated(stats, leg, pkt, payload, to, &remote, now);
            }
        }
        // Conference mixing: every bridge of three or more.
        for members in bridges.values() {
            if members.len() < 3 {
                continue;
            }
            let n = members.len();
            pcm.clear();
            pcm.resize(n * FRAME_SAMPLES, 0);
            let mut sum = [0i32; FRAME_SAMPLES];
            for (i, m) in members.iter().enumerate() {
                let Some(leg) = legs.get_mut(m) else { continue };
                let own = &mut pcm[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES];
                if !leg.mix_in.pop_frame(own) {
                    continue;
                }
                for (acc, &s) in sum.iter_mut().zip(own.iter()) {
                    *acc += i32::from(s);
                }
            }
            for (i, m) in members.iter().enumerate() {
                let Some(leg) = legs.get_mut(m) else { continue };
                if leg.dtmf_tx.is_busy() {
                    continue;
                }
                let Some((to, remote)) = leg.send_to() else {
                    continue;
                };
                let law: Law = remote.codec.law();
                let own = &pcm[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES];
                let mut heard = [0i16; FRAME_SAMPLES];
                for ((h, &acc), &s) in heard.iter_mut().zip(sum.iter()).zip(own) {
                    *h =
                        (acc - i32::from(s)).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
                leg.deliver(&mut heard, now);
                payload.clear();
                law.encode(&heard, payload);
                send_generated(stats, leg, pkt, payload, to, &remote, now);
            }
        }
        // Frames sent back to legs the tick sent nothing else: in place of
        // the relayed party (which is held back meanwhile), or mixed with
        // it when it has gone quiet; then the taps' pace through silence.
        for leg in legs.values_mut() {
            let ticked = std::mem::take(&mut leg.ticked);
            if !leg.plays.is_empty() && !ticked && !leg.dtmf_tx.is_busy() {
                let replaces = leg.play_replaces();
                let quiet = leg
                    .out
                    .last_sent
                    .is_none_or(|t| now.saturating_duration_since(t) > PLAY_QUIET);
                if (replaces || quiet)
                    && leg.plays.iter().any(Play::active)
                    && let Some((to, remote)) = leg.send_to()
                {
                    let mut frame = [0i16; FRAME_SAMPLES];
                    leg.apply_plays(&mut frame);
                    leg.heard(&frame, now);
                    payload.clear();
                    remote.codec.law().encode(&frame, payload);
                    send_generated(stats, leg, pkt, payload, to, &remote, now);
                }
            }
            if !leg.taps.is_empty() {
                leg.taps.retain_mut(|t| t.tick(now));
            }
        }
        // RTCP reports.
        for leg in legs.values_mut() {
            send_report(shared, stats, leg, pkt, now);
        }
        // RTP inactivity: a leg is watched once its media was applied; a
        // call in full flow must send, a held one (phones that hold with
        // `sendonly` often send nothing at all) gets the longer wait.
        for (id, leg) in legs.iter_mut() {
            let Some(remote) = leg.remote else { continue };
            let flowing = leg.direction == Direction::SendRecv && remote.addr.is_some();
            let limit = if flowing {
                shared.config.rtp_timeout
            } else {
                shared.config.rtp_hold_timeout
            };
            if let Some(limit) = limit
                && now.saturating_duration_since(leg.last_rx) > limit
            {
                // Counted afresh: reported again after another timeout.
                leg.last_rx = now;
                shared.emit(MediaEvent::RtpTimeout { leg: *id });
            }
        }
    }

    fn on_rtcp_port(&mut self, id: LegId, src: SocketAddr, data: &[u8]) {
        let State { legs, stats, .. } = self;
        stats.received += 1;
        if let Some(leg) = legs.get_mut(&id) {
            on_rtcp(stats, leg, id, src, data, false);
        }
    }

    fn leave_bridge(&mut self, id: LegId, source: Source) {
        if let Source::Bridge(b) = source
            && let Some(members) = self.bridges.get_mut(&b)
        {
            members.retain(|m| *m != id);
            if members.is_empty() {
                self.bridges.remove(&b);
            } else if members.len() < 3 {
                // Back to relaying: drop what was queued for the mixer so a
                // later third party does not hear stale audio.
                for m in members.iter() {
                    if let Some(l) = self.legs.get_mut(m) {
                        l.mix_in.clear();
                    }
                }
            }
        }
    }
}

/// A leg in a mixing play that was sent nothing for this long gets the
/// frames sent back on their own, on the tick.
const PLAY_QUIET: Duration = Duration::from_millis(30);

/// The media thread's token for stopping it.
const WAKER: Token = Token(usize::MAX);

/// At most this many datagrams are read from one socket before the others
/// get their turn (the socket is read again right after).
const READS_PER_TURN: usize = 64;

/// At most this many released socket pairs are kept open for the next legs
/// (a pair reused costs no socket, bind, poll registration or close).
const SPARE_PAIRS: usize = 64;

/// A spare pair unused for this long is closed, so that the descriptors of
/// a burst go back once it is over.
const SPARE_IDLE: Duration = Duration::from_secs(10);

/// A socket's poll token: its pair's slot twice, plus one for the RTCP port.
fn token(slot: usize, rtcp_port: bool) -> Token {
    Token(slot * 2 + usize::from(rtcp_port))
}

/// The slot and port a poll token names.
fn from_token(t: Token) -> (usize, bool) {
    (t.0 / 2, t.0 % 2 == 1)
}

/// Reads and drops what waits on a socket (at most a turn's worth);
/// whether more may wait.
fn discard(socket: &UdpSocket, buf: &mut [u8]) -> bool {
    for _ in 0..READS_PER_TURN {
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            _ => {}
        }
    }
    true
}

impl State {
    /// Reads what waits on the socket a poll token names: a leg's, or a
    /// spare pair's (dropped unread). Returns whether more may wait.
    fn read_token(&mut self, shared: &Shared, t: Token, buf: &mut [u8]) -> bool {
        let (slot, rtcp_port) = from_token(t);
        match self.slots.get(slot).copied().flatten() {
            Some(id) => self.read_socket(shared, id, rtcp_port, buf),
            None => self
                .spares
                .get(&slot)
                .is_some_and(|s| discard(if rtcp_port { &s.rtcp_socket } else { &s.socket }, buf)),
        }
    }

    /// Keeps a released leg's sockets as a spare pair, or closes them when
    /// enough are kept.
    fn release_sockets(&mut self, leg: Leg) {
        if let Some(s) = self.slots.get_mut(leg.slot) {
            *s = None;
        }
        if self.spares.len() < SPARE_PAIRS {
            self.spares.insert(
                leg.slot,
                Spare {
                    socket: leg.socket,
                    rtcp_socket: leg.rtcp_socket,
                    local: leg.local,
                    since: Instant::now(),
                },
            );
            self.spare_order.push_back(leg.slot);
        } else {
            self.free_slots.push(leg.slot);
        }
    }

    /// Closes the spare pairs unused for [`SPARE_IDLE`].
    fn close_idle_spares(&mut self, now: Instant) {
        while let Some(&slot) = self.spare_order.front() {
            let idle = self
                .spares
                .get(&slot)
                .is_none_or(|s| now.saturating_duration_since(s.since) >= SPARE_IDLE);
            if !idle {
                break;
            }
            self.spare_order.pop_front();
            if self.spares.remove(&slot).is_some() {
                self.free_slots.push(slot);
            }
        }
    }

    /// Reads what waits on one of a leg's sockets: RTP (and multiplexed
    /// RTCP) when `rtcp_port` is false, the RTCP port otherwise. Returns
    /// whether more may wait (the turn ended before the socket was empty).
    fn read_socket(&mut self, shared: &Shared, id: LegId, rtcp_port: bool, buf: &mut [u8]) -> bool {
        for _ in 0..READS_PER_TURN {
            let received = {
                let Some(leg) = self.legs.get(&id) else {
                    return false;
                };
                let socket = if rtcp_port {
                    &leg.rtcp_socket
                } else {
                    &leg.socket
                };
                socket.recv_from(buf)
            };
            match received {
                Ok((n, src)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if rtcp_port {
                        self.on_rtcp_port(id, src, data);
                    } else {
                        self.on_datagram(shared, id, src, data);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // ICMP errors surface here on some systems; keep receiving.
                Err(e) => trace!(%id, error = %e, "RTP receive error"),
            }
        }
        true
    }
}

/// The media thread: waits for ready sockets and the next tick, reads the
/// sockets, and ticks. It stops when the engine is dropped.
fn run_media(shared: Weak<Shared>, mut poll: Poll, stop: Arc<AtomicBool>, period: Duration) {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    let mut ready: Vec<Token> = Vec::new();
    let mut again: Vec<Token> = Vec::new();
    let mut next_tick = Instant::now() + period;
    loop {
        let timeout = if again.is_empty() {
            next_tick.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "the media poll failed: media stops");
            return;
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        ready.clear();
        ready.append(&mut again);
        ready.extend(
            events
                .iter()
                .map(mio::event::Event::token)
                .filter(|t| *t != WAKER),
        );
        for &t in &ready {
            if shared.lock().read_token(&shared, t, &mut buf) {
                again.push(t);
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            let mut state = shared.lock();
            state.tick(&shared);
            state.close_idle_spares(now);
            drop(state);
            // Missed ticks are caught up at once (generated media keeps its
            // pace), unless the thread fell far behind.
            next_tick += period;
            if now.saturating_duration_since(next_tick) > period * 5 {
                next_tick = now + period;
            }
        }
    }
}

impl MediaEngine {
    /// Starts the engine (its media thread) and returns it with its event
    /// stream.
    ///
    /// # Errors
    /// [`MediaError::Start`] when the thread or its poll cannot start.
    pub fn new(mut config: MediaConfig) -> Result<(Self, MediaEvents), MediaError> {
        let poll = Poll::new().map_err(MediaError::Start)?;
        let registry = poll.registry().try_clone().map_err(MediaError::Start)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(MediaError::Start)?;
        // Report timers stay within an hour (and the clock's range).
        config.rtcp_interval = config
            .rtcp_interval
            .map(|i| i.clamp(Duration::from_millis(10), Duration::from_secs(3600)));
        let (tx, rx) = mpsc::unbounded_channel();
        let next_port = config.port_range.map_or(0, |(lo, _)| lo);
        let period = config.frame_interval.max(Duration::from_millis(1));
        let random = RandomState::new();
        // RFC 7022: a random per-session CNAME, shared by every leg.
        let cname = format!(
            "tapir-{:016x}@{}",
            random.hash_one(std::time::SystemTime::now()),
            config.bind_ip
        );
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                legs: HashMap::new(),
                bridges: HashMap::new(),
                slots: Vec::new(),
                free_slots: Vec::new(),
                spares: HashMap::new(),
                spare_order: std::collections::VecDeque::new(),
                next_port,
                stats: EngineStats::default(),
                pkt: Vec::with_capacity(1500),
                payload: Vec::with_capacity(1500),
                pcm: Vec::new(),
            }),
            events: tx,
            random,
            epoch: Instant::now(),
            cname,
            registry,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::downgrade(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("tapir-media".into())
                .spawn(move || run_media(shared, poll, stop, period))
                .map_err(MediaError::Start)?
        };
        Ok((
            Self {
                shared,
                stop,
                waker,
                thread: Some(thread),
            },
            MediaEvents(rx),
        ))
    }

    /// Binds an RTP socket on an even port and its RTCP socket on the next
    /// port (RFC 3550 §11): from the configured range, or from the system's
    /// ephemeral ports (retrying until an even port with a free neighbour
    /// comes up).
    fn bind(
        &self,
        state: &mut State,
    ) -> Result<(std::net::UdpSocket, std::net::UdpSocket), MediaError> {
        let ip = self.shared.config.bind_ip;
        let pair = |port: u16| -> Result<Option<_>, MediaError> {
            let rtp = match std::net::UdpSocket::bind((ip, port)) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(None),
                Err(e) => return Err(MediaError::Bind(e)),
            };
            let port = rtp.local_addr().map_err(MediaError::Bind)?.port();
            if port % 2 == 1 || port == u16::MAX {
                return Ok(None);
            }
            match std::net::UdpSocket::bind((ip, port + 1)) {
                Ok(rtcp) => Ok(Some((rtp, rtcp))),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
                Err(e) => Err(MediaError::Bind(e)),
            }
        };
        let Some((lo, hi)) = self.shared.config.port_range else {
            // Half of the ephemeral ports are even; 64 tries without a
            // free pair means the system is out of ports.
            for _ in 0..64 {
                if let Some(p) = pair(0)? {
                    return Ok(p);
                }
            }
            return Err(MediaError::Bind(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "no free even/odd port pair",
            )));
        };
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let mut port = state.next_port;
            if port < lo || port > hi {
                port = lo;
            }
            state.next_port = port.checked_add(2).unwrap_or(lo);
            if port % 2 == 1 || port == 0 {
                continue;
            }
            if let Some(p) = pair(port)? {
                return Ok(p);
            }
        }
        Err(MediaError::NoPort(lo, hi))
    }

    /// Opens an RTP socket for `leg` and returns its local address (for the
    /// SDP). The leg starts hearing [`Source::Silence`], direction
    /// `sendrecv`, with no remote.
    ///
    /// # Errors
    /// [`MediaError::AlreadyAllocated`], or a bind failure.
    pub fn allocate(&self, leg: LegId) -> Result<SocketAddr, MediaError> {
        let mut state = self.shared.lock();
        if state.legs.contains_key(&leg) {
            return Err(MediaError::AlreadyAllocated(leg));
        }
        let (slot, socket, rtcp_socket, local) = match state.spare_order.pop_front() {
            Some(slot) => {
                let Some(spare) = state.spares.remove(&slot) else {
                    return Err(MediaError::Bind(std::io::Error::other("lost spare pair")));
                };
                // What a former peer sent meanwhile is not the new leg's.
                let mut scratch = [0u8; 2048];
                discard(&spare.socket, &mut scratch);
                discard(&spare.rtcp_socket, &mut scratch);
                (slot, spare.socket, spare.rtcp_socket, spare.local)
            }
            None => {
                let (std_socket, std_rtcp) = self.bind(&mut state)?;
                std_socket.set_nonblocking(true).map_err(MediaError::Bind)?;
                std_rtcp.set_nonblocking(true).map_err(MediaError::Bind)?;
                let local = std_socket.local_addr().map_err(MediaError::Bind)?;
                let mut socket = UdpSocket::from_std(std_socket);
                let mut rtcp_socket = UdpSocket::from_std(std_rtcp);
                let slot = match state.free_slots.pop() {
                    Some(slot) => slot,
                    None => {
                        state.slots.push(None);
                        state.slots.len() - 1
                    }
                };
                // Joining the poll does not wake the media thread: its next
                // wait already includes the sockets (and what waits on them).
                let registry = &self.shared.registry;
                let joined = registry
                    .register(&mut socket, token(slot, false), Interest::READABLE)
                    .and_then(|()| {
                        registry.register(&mut rtcp_socket, token(slot, true), Interest::READABLE)
                    });
                if let Err(e) = joined {
                    state.free_slots.push(slot);
                    return Err(MediaError::Bind(e));
                }
                (slot, socket, rtcp_socket, local)
            }
        };
        if let Some(s) = state.slots.get_mut(slot) {
            *s = Some(leg);
        }
        let rnd = self.shared.random(leg.0);
        // RFC 3550 §6.3.6: the first report after half an interval.
        let first_report = self
            .shared
            .config
            .rtcp_interval
            .map_or(Duration::ZERO, |i| i / 2);
        state.legs.insert(
            leg,
            Leg {
                slot,
                socket,
                local,
                rtcp_socket,
                rtcp: RtcpLeg {
                    rx: ReceptionStats::default(),
                    packets_sent: 0,
                    octets_sent: 0,
                    sent_since_report: false,
                    sent_previous: false,
                    next_report: Instant::now() + first_report,
                    peer: None,
                    mux: false,
                    reports_sent: 0,
                    reports_received: 0,
                    peer_report: None,
                    round_trip: None,
                },
                remote: None,
                latch: Latch::Learning(None),
                signalled: None,
                source: Source::Silence,
                direction: Direction::SendRecv,
                out: OutStream::new(rnd),
                tone: None,
                prompt: None,
                dtmf_tx: DtmfSender::new(),
                dtmf_rx: DtmfReceiver::new(),
                mix_in: Playout::new(),
                last_rx: Instant::now(),
                srtp: None,
                taps: Vec::new(),
                plays: Vec::new(),
                detector: None,
                generated: None,
                ticked: false,
            },
        );
        debug!(%leg, %local, "media allocated");
        Ok(local)
    }

    fn with_leg<T>(&self, leg: LegId, f: impl FnOnce(&mut Leg) -> T) -> Result<T, MediaError> {
        let mut state = self.shared.lock();
        let l = state
            .legs
            .get_mut(&leg)
            .ok_or(MediaError::UnknownLeg(leg))?;
        Ok(f(l))
    }

    /// The local RTP address of a leg.
    #[must_use]
    pub fn local_addr(&self, leg: LegId) -> Option<SocketAddr> {
        self.shared.lock().legs.get(&leg).map(|l| l.local)
    }

    /// Sets where and how to send to a leg (after each offer/answer). With
    /// symmetric RTP a new signalled address is learnt again from the
    /// packets received (see [`MediaConfig::symmetric_rtp`]); an unchanged
    /// one keeps the address already latched.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn set_remote(&self, leg: LegId, remote: RemoteMedia) -> Result<(), MediaError> {
        self.with_leg(leg, |l| {
            let mut remote = remote;
            let same = l.signalled.is_some() && l.signalled == remote.addr;
            l.signalled = remote.addr;
            match l.latch {
                Latch::Locked(addr) | Latch::Adopted(addr) if same => remote.addr = Some(addr),
                _ => l.latch = Latch::Learning(None),
            }
            if !same {
                // A phone that moved reports from its new place: until it
                // does, reports go to its new RTP port + 1.
                l.rtcp.peer = None;
            }
            l.remote = Some(remote);
            l.last_rx = Instant::now();
        })
    }

    /// Applies an offer/answer outcome: remote address, codec,
    /// telephone-event and tapir's direction on the leg.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn apply(&self, leg: LegId, negotiated: &Negotiated) -> Result<(), MediaError> {
        self.set_srtp(leg, negotiated.srtp)?;
        self.set_rtcp_mux(leg, negotiated.rtcp_mux)?;
        self.set_remote(leg, RemoteMedia::from(negotiated))?;
        self.set_direction(leg, negotiated.direction)
    }

    /// Secures a leg with SDES keys from the offer/answer (or keeps it
    /// plain with `None`). Unchanged keys keep the running contexts (and
    /// their rollover counters). Once secure, every packet is protected,
    /// plain or unauthenticated packets are dropped, and going back to
    /// plain RTP is refused.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`], [`MediaError::Srtp`] for keys the library
    /// refuses, [`MediaError::Downgrade`] for `None` on a secure leg.
    pub fn set_srtp(&self, leg: LegId, keys: Option<SrtpKeys>) -> Result<(), MediaError> {
        let mut state = self.shared.lock();
        let l = state
            .legs
            .get_mut(&leg)
            .ok_or(MediaError::UnknownLeg(leg))?;
        match (keys, &l.srtp) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(MediaError::Downgrade(leg)),
            (Some(k), Some((current, _))) if *current == k => Ok(()),
            (Some(k), _) => {
                l.srtp = Some((k, SrtpSession::new(&k)?));
                debug!(%leg, suite = ?k.suite, "media secured");
                Ok(())
            }
        }
    }

    /// RTCP over the RTP port (RFC 5761) when the offer/answer agreed on
    /// it: tapir's reports go to the phone's RTP address from the first.
    /// `false` changes nothing: a phone that multiplexes without saying so
    /// is followed once its first report arrives.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn set_rtcp_mux(&self, leg: LegId, mux: bool) -> Result<(), MediaError> {
        self.with_leg(leg, |l| {
            if mux {
                l.rtcp.mux = true;
            }
        })
    }

    /// Whether a leg's media is SRTP.
    #[must_use]
    pub fn is_secure(&self, leg: LegId) -> bool {
        self.shared
            .lock()
            .legs
            .get(&leg)
            .is_some_and(|l| l.srtp.is_some())
    }

    /// Changes what a leg hears. Joining a bridge of two starts the relay;
    /// a third member switches the bridge to mixing; a tone restarts its
    /// cadence only when the tone changes.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn set_source(&self, leg: LegId, source: Source) -> Result<(), MediaError> {
        let mut state = self.shared.lock();
        let old = state
            .legs
            .get(&leg)
            .map(|l| l.source)
            .ok_or(MediaError::UnknownLeg(leg))?;
        if old == source {
            return Ok(());
        }
        state.leave_bridge(leg, old);
        if let Source::Bridge(b) = source {
            state.bridges.entry(b).or_default().push(leg);
        }
        if let Some(l) = state.legs.get_mut(&leg) {
            l.source = source;
            l.prompt = None;
            l.mix_in.clear();
            l.tone = match (source, &self.shared.config.hold_music) {
                (Source::Tone(ToneKind::HoldMusic), Some(m)) => {
                    Some(ToneGenerator::with_hold_music(Arc::clone(m)))
                }
                (Source::Tone(k), _) => Some(ToneGenerator::new(k)),
                _ => None,
            };
        }
        debug!(%leg, ?source, "media source");
        Ok(())
    }

    /// Plays a prompt (8 kHz mono samples, e.g. from
    /// [`crate::prompt::PromptCatalog::load`]) to a leg instead of what it
    /// heard, from the start, once or `looping`; a non-looping prompt ends in
    /// silence and [`MediaEvent::PromptDone`] with `play`. Asking again for
    /// the playing already under way changes nothing.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn play_prompt(
        &self,
        leg: LegId,
        play: u64,
        samples: Arc<[i16]>,
        looping: bool,
    ) -> Result<(), MediaError> {
        let playing = self.with_leg(leg, |l| {
            l.source == Source::Prompt(play) && l.prompt.is_some()
        })?;
        if playing {
            return Ok(());
        }
        self.set_source(leg, Source::Prompt(play))?;
        self.with_leg(leg, |l| {
            l.prompt = Some(PromptPlayer::new(samples, looping))
        })
    }

    /// Sets tapir's direction on a leg (what tapir's last SDP said):
    /// nothing is sent unless it `sends()`, received media is ignored unless
    /// it `receives()`.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn set_direction(&self, leg: LegId, direction: Direction) -> Result<(), MediaError> {
        self.with_leg(leg, |l| {
            if l.direction != direction {
                l.last_rx = Instant::now();
            }
            l.direction = direction;
        })
    }

    /// Queues DTMF digits towards a leg: RFC 4733 events when the leg
    /// negotiated telephone-event, in-band tones otherwise. Characters that
    /// are not DTMF are skipped; returns how many digits were queued.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn send_digits(&self, leg: LegId, digits: &str) -> Result<usize, MediaError> {
        self.with_leg(leg, |l| l.dtmf_tx.push(digits))
    }

    /// Copies what a leg hears (and, with `both`, what it says) into 20 ms
    /// frames on a queue of `capacity` frames (at least one). With
    /// `from_peer` the leg is the far party's of a call tapir itself ends
    /// (a route point's): the two directions swap, so that the frames still
    /// say what the tapped call hears and says. The media thread never
    /// waits on the queue: when it is full the frame is dropped and
    /// counted. The tap ends with the leg's media or when dropped.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn tap(
        &self,
        leg: LegId,
        both: bool,
        from_peer: bool,
        capacity: usize,
    ) -> Result<MediaTap, MediaError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.with_leg(leg, |l| {
            l.taps.push(Tap {
                framer: Framer::new(both),
                from_peer,
                tx,
                dropped: dropped.clone(),
            });
        })?;
        debug!(%leg, both, from_peer, "media tapped");
        Ok(MediaTap {
            frames: rx,
            dropped,
        })
    }

    /// Plays frames an application sends ([`MediaPlay::push`]) to a leg,
    /// queued up to `capacity` frames (at least one), in place of what it
    /// hears ([`PlayMode::Replace`], until [`MediaPlay::set_mode`]) for as
    /// long as they last. The media thread takes them on its tick and never
    /// waits; the play ends with the leg's media or when dropped.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn play(&self, leg: LegId, capacity: usize) -> Result<MediaPlay, MediaError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let ctl = Arc::new(PlayCtl::default());
        self.with_leg(leg, |l| {
            l.plays.push(Play {
                rx,
                ctl: ctl.clone(),
                epoch: 0,
                samples: std::collections::VecDeque::new(),
                tone: false,
            });
        })?;
        debug!(%leg, "media play attached");
        Ok(MediaPlay {
            frames: tx,
            ctl,
            dropped: 0,
        })
    }

    /// Watches what a leg's device sends for these tones and, with `fax`,
    /// a fax's calling tone, reported as [`MediaEvent::ToneDetected`] and
    /// [`MediaEvent::FaxDetected`]; replaces what was watched before
    /// (nothing: stops watching). The caller bounds how many tones.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn detect(&self, leg: LegId, tones: Vec<ToneSpec>, fax: bool) -> Result<(), MediaError> {
        let d = Detector::new(tones, fax);
        self.with_leg(leg, |l| {
            l.detector = (!d.is_empty()).then(|| Box::new(d));
        })
    }

    /// Plays `samples` (8 kHz) to a leg once, mixed with what it hears, in
    /// place of the tone generated before (`lineGenerateTone`). The caller
    /// bounds the length; it ends with its samples or the leg's media.
    ///
    /// # Errors
    /// [`MediaError::UnknownLeg`].
    pub fn generate_tone(&self, leg: LegId, samples: &[i16]) -> Result<(), MediaError> {
        let frames = samples.len().div_ceil(FRAME_SAMPLES).max(1);
        let (tx, rx) = mpsc::channel(frames);
        for chunk in samples.chunks(FRAME_SAMPLES) {
            let mut f = [0i16; FRAME_SAMPLES];
            f[..chunk.len()].copy_from_slice(chunk);
            // The queue holds every frame; the sender is dropped after, so
            // the play ends when its frames are played.
            let _ = tx.try_send(Box::new((0, f)));
        }
        let ctl = Arc::new(PlayCtl::default());
        ctl.mix.store(true, Ordering::Release);
        self.with_leg(leg, |l| {
            if let Some(old) = l.generated.replace(ctl.clone()) {
                // At most one generated tone per leg, however many requests
                // come: the one before goes at once, with its frames.
                l.plays.retain(|p| !Arc::ptr_eq(&p.ctl, &old));
            }
            l.plays.push(Play {
                rx,
                ctl,
                epoch: 0,
                samples: std::collections::VecDeque::new(),
                tone: true,
            });
        })?;
        debug!(%leg, frames, "tone generated");
        Ok(())
    }

    /// Taps and plays the engine holds (an application that went away is
    /// forgotten at the next tick).
    #[must_use]
    pub fn stream_count(&self) -> usize {
        self.shared
            .lock()
            .legs
            .values()
            .map(|l| l.taps.len() + l.plays.iter().filter(|p| !p.tone).count())
            .sum()
    }

    /// Releases a leg's sockets (kept as a spare pair or closed) and forgets
    /// it; returns whether it existed.
    pub fn release(&self, leg: LegId) -> bool {
        self.close(leg).is_some()
    }

    /// Closes a leg like [`MediaEngine::release`] (sending its last report
    /// with a BYE) and returns its final RTCP figures, taken as the leg is
    /// dropped; `None` when the leg had no media.
    pub fn close(&self, leg: LegId) -> Option<RtcpStats> {
        let mut state = self.shared.lock();
        let mut l = state.legs.remove(&leg)?;
        if self.shared.config.rtcp_interval.is_some() {
            let State { stats, pkt, .. } = &mut *state;
            emit_report(&self.shared, stats, &mut l, pkt, Instant::now(), true);
        }
        let figures = rtcp_figures(&l);
        state.leave_bridge(leg, l.source);
        state.release_sockets(l);
        debug!(%leg, "media released");
        Some(figures)
    }

    /// Counters since start.
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        self.shared.lock().stats
    }

    /// RTCP figures of a leg: what tapir sent, what it measured of the
    /// phone's stream, what the phone reported.
    #[must_use]
    pub fn rtcp_stats(&self, leg: LegId) -> Option<RtcpStats> {
        let state = self.shared.lock();
        state.legs.get(&leg).map(rtcp_figures)
    }

    /// Number of legs with media.
    #[must_use]
    pub fn leg_count(&self) -> usize {
        self.shared.lock().legs.len()
    }
}

/// The RTCP figures of a leg as [`RtcpStats`] shows them.
fn rtcp_figures(l: &Leg) -> RtcpStats {
    let r = &l.rtcp;
    let heard = r.rx.ssrc().is_some();
    RtcpStats {
        ssrc: l.out.ssrc,
        packets_sent: r.packets_sent,
        reports_sent: r.reports_sent,
        reports_received: r.reports_received,
        peer_ssrc: r.rx.ssrc(),
        highest_seq: r.rx.extended_max(),
        packets_received: r.rx.received(),
        lost: if heard { r.rx.cumulative_lost() } else { 0 },
        jitter: r.rx.jitter(),
        peer_report: r.peer_report,
        round_trip: r.round_trip,
        mux: r.mux,
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "cannot wake the media thread to stop it");
        }
        {
            let mut state = self.shared.lock();
            state.legs.clear();
            state.bridges.clear();
            state.spares.clear();
            state.spare_order.clear();
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the media thread panicked");
        }
    }
}
