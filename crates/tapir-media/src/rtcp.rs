//! RTCP (RFC 3550 §6, RFC 3551): the reports tapir generates on every
//! anchored leg and the reports it reads from the phones.
//!
//! tapir *terminates* RTCP on each leg rather than relaying it. Every leg is
//! its own RTP session with tapir as one end: the stream a phone receives
//! carries tapir's SSRC, sequence numbers and timestamps (rewritten on relay,
//! and generated outright for tones, music and conference mixes), so a
//! relayed sender report would describe packet counts and an NTP↔RTP mapping
//! of a stream the phone never saw, and a relayed receiver report would
//! describe tapir's stream to the *other* phone. Instead each leg gets its
//! own compound reports: a sender report (SR) about the stream tapir sends on
//! that leg (its SSRC, packet and octet counts, the RTP timestamp of "now")
//! or a receiver report (RR) when tapir sent nothing, with one report block
//! about the phone's stream (loss, extended highest sequence, interarrival
//! jitter, LSR/DLSR for the phone's round-trip time), and an SDES CNAME.
//!
//! The receive-side statistics follow RFC 3550 Appendix A.3 (loss) and A.8
//! (jitter). Parsing is bounded and checked: any datagram yields a value or
//! an error, never a panic.
//!
//! A hand-written codec: the `rtcp` crate (webrtc-rs) would add a `bytes`
//! based packet tree and allocation per packet for the four packet types
//! tapir reads or writes (SR, RR, SDES CNAME, BYE); the wire format is a few
//! fixed-size fields.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RTCP packet type: sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type: receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type: source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type: goodbye.
pub const PT_BYE: u8 = 203;

/// Why a datagram is not a usable RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a header, or a length field runs past the datagram.
    #[error("RTCP packet truncated")]
    Truncated,
    /// A packet's version is not 2.
    #[error("not RTCP version 2")]
    BadVersion,
    /// RFC 3550 §6.1: a compound packet starts with an SR or an RR.
    #[error("RTCP compound packet does not start with SR or RR")]
    NotReportFirst,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR from the source.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// The sender-info part of an SR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 << 32 | fraction).
    pub ntp: u64,
    /// The same instant in the stream's RTP timestamp units.
    pub rtp_ts: u32,
    /// Packets sent since the stream started.
    pub packets: u32,
    /// Payload octets sent since the stream started.
    pub octets: u32,
}

/// One packet of a received compound packet that tapir reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcpItem {
    /// A sender report.
    SenderReport {
        /// The sender's SSRC.
        ssrc: u32,
        /// Its sender info.
        info: SenderInfo,
        /// Its report blocks.
        blocks: Vec<ReportBlock>,
    },
    /// A receiver report.
    ReceiverReport {
        /// The reporter's SSRC.
        ssrc: u32,
        /// Its report blocks.
        blocks: Vec<ReportBlock>,
    },
    /// A source description (the CNAME of the first chunk, if any).
    SourceDescription {
        /// The first chunk's SSRC.
        ssrc: u32,
        /// Its CNAME item.
        cname: Option<String>,
    },
    /// Goodbye from these sources.
    Bye {
        /// The sources leaving.
        ssrcs: Vec<u32>,
    },
    /// Any other packet type (APP, XR, feedback), skipped.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Most report blocks read from one SR/RR (the 5-bit count allows 31).
const MAX_BLOCKS: usize = 31;

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    let s = b.get(at..at + 4).ok_or(RtcpError::Truncated)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn read_blocks(body: &[u8], at: usize, count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    let mut blocks = Vec::with_capacity(count.min(MAX_BLOCKS));
    for i in 0..count {
        let o = at + 24 * i;
        let lost = be32(body, o + 4)?;
        // 24-bit two's complement.
        let cumulative = ((lost & 0x00ff_ffff) << 8) as i32 >> 8;
        blocks.push(ReportBlock {
            ssrc: be32(body, o)?,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost: cumulative,
            highest_seq: be32(body, o + 8)?,
            jitter: be32(body, o + 12)?,
            lsr: be32(body, o + 16)?,
            dlsr: be32(body, o + 20)?,
        });
    }
    Ok(blocks)
}

/// Parses a compound RTCP packet (RFC 3550 §6.1): version 2 throughout,
/// lengths that tile the datagram, SR or RR first.
///
/// # Errors
/// An [`RtcpError`] for anything else; never panics.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpItem>, RtcpError> {
    let mut items = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let [b0, pt, l0, l1, ..] = *rest else {
            return Err(RtcpError::Truncated);
        };
        if b0 >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let len = 4 * (usize::from(u16::from_be_bytes([l0, l1])) + 1);
        let pkt = rest.get(..len).ok_or(RtcpError::Truncated)?;
        rest = rest.get(len..).unwrap_or_default();
        // Padding (only legal on the last packet) is ignored: tapir reads
        // fixed fields that precede it.
        let count = usize::from(b0 & 0x1f);
        if items.is_empty() && pt != PT_SR && pt != PT_RR {
            return Err(RtcpError::NotReportFirst);
        }
        let item = match pt {
            PT_SR => RtcpItem::SenderReport {
                ssrc: be32(pkt, 4)?,
                info: SenderInfo {
                    ntp: (u64::from(be32(pkt, 8)?) << 32) | u64::from(be32(pkt, 12)?),
                    rtp_ts: be32(pkt, 16)?,
                    packets: be32(pkt, 20)?,
                    octets: be32(pkt, 24)?,
                },
                blocks: read_blocks(pkt, 28, count)?,
            },
            PT_RR => RtcpItem::ReceiverReport {
                ssrc: be32(pkt, 4)?,
                blocks: read_blocks(pkt, 8, count)?,
            },
            PT_SDES => {
                let ssrc = if count > 0 { be32(pkt, 4)? } else { 0 };
                let mut cname = None;
                let mut at = 8;
                while count > 0 && cname.is_none() {
                    let Some(&kind) = pkt.get(at) else { break };
                    if kind == 0 {
                        break;
                    }
                    let n = usize::from(*pkt.get(at + 1).ok_or(RtcpError::Truncated)?);
                    let text = pkt.get(at + 2..at + 2 + n).ok_or(RtcpError::Truncated)?;
                    if kind == 1 {
                        cname = Some(String::from_utf8_lossy(text).into_owned());
                    }
                    at += 2 + n;
                }
                RtcpItem::SourceDescription { ssrc, cname }
            }
            PT_BYE => RtcpItem::Bye {
                ssrcs: (0..count)
                    .map(|i| be32(pkt, 4 + 4 * i))
                    .collect::<Result<_, _>>()?,
            },
            other => RtcpItem::Other { packet_type: other },
        };
        items.push(item);
    }
    if items.is_empty() {
        return Err(RtcpError::Truncated);
    }
    Ok(items)
}

fn push_header(out: &mut Vec<u8>, count: u8, pt: u8, words_after: usize) {
    out.push(0x80 | (count & 0x1f));
    out.push(pt);
    out.extend_from_slice(&u16::try_from(words_after).unwrap_or(u16::MAX).to_be_bytes());
}

fn push_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.lsr.to_be_bytes());
    out.extend_from_slice(&b.dlsr.to_be_bytes());
}

/// Writes a compound report into `out` (cleared first): an SR when
/// `sender` is given, else an RR, with at most one report block, then an
/// SDES packet with `cname` (truncated to 255 bytes).
pub fn write_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    sender: Option<&SenderInfo>,
    block: Option<&ReportBlock>,
    cname: &str,
) {
    out.clear();
    let blocks = usize::from(block.is_some());
    match sender {
        Some(s) => {
            push_header(out, blocks as u8, PT_SR, 6 + 6 * blocks);
            out.extend_from_slice(&ssrc.to_be_bytes());
            out.extend_from_slice(&s.ntp.to_be_bytes());
            out.extend_from_slice(&s.rtp_ts.to_be_bytes());
            out.extend_from_slice(&s.packets.to_be_bytes());
            out.extend_from_slice(&s.octets.to_be_bytes());
        }
        None => {
            push_header(out, blocks as u8, PT_RR, 1 + 6 * blocks);
            out.extend_from_slice(&ssrc.to_be_bytes());
        }
    }
    if let Some(b) = block {
        push_block(out, b);
    }
    // SDES: one chunk, CNAME item, then a null item padding to 32 bits.
    let name = cname.as_bytes();
    let name = name.get(..name.len().min(255)).unwrap_or_default();
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    push_header(out, 1, PT_SDES, padded / 4);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk) + 1, 0);
}

/// Appends a BYE for `ssrc` to a compound packet (RFC 3550 §6.6).
pub fn push_bye(out: &mut Vec<u8>, ssrc: u32) {
    push_header(out, 1, PT_BYE, 1);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

/// The NTP timestamp (RFC 5905 format) of a wall-clock time.
#[must_use]
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    // Seconds from 1900-01-01 to 1970-01-01.
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs().wrapping_add(UNIX_TO_NTP);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (the LSR field).
#[must_use]
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s (the DLSR field), saturating.
#[must_use]
pub fn to_dlsr(d: Duration) -> u32 {
    u32::try_from(d.as_micros() * 65_536 / 1_000_000).unwrap_or(u32::MAX)
}

/// Reception statistics of the stream a phone sends on a leg (RFC 3550
/// Appendix A.3 and A.8), for the report block tapir sends back.
#[derive(Clone, Debug, Default)]
pub struct ReceptionStats {
    /// The source being tracked (a new SSRC starts over).
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    /// Jitter × 16 (RFC 3550 A.8 keeps it scaled for integer arithmetic).
    jitter16: u32,
    /// After a very large jump: the sequence number that confirms a restart.
    bad_seq: Option<u16>,
    /// The SSRC of the last SR, its middle NTP bits and when it arrived.
    last_sr: Option<(u32, u32, std::time::Instant)>,
    /// Whether a packet arrived since the last report.
    fresh: bool,
}

/// Sequence jump beyond which a packet is taken as a restart (RFC 3550 A.1
/// MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;

impl ReceptionStats {
    /// Records an RTP packet with `seq` and timestamp `ts` that arrived at
    /// `arrival` (the receiver's clock in the same timestamp units).
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, ts: u32, arrival: u32) {
        if self.ssrc != Some(ssrc) {
            *self = ReceptionStats {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                last_sr: self.last_sr,
                ..ReceptionStats::default()
            };
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta != 0 && delta <= u16::MAX - 100 {
                // A very large jump: the source restarted its numbering if
                // the next packet follows on (RFC 3550 A.1), else a stray.
                if self.bad_seq != Some(seq) {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return;
                }
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.cycles = 0;
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
                self.transit = None;
            }
            // Otherwise a duplicate or a late (reordered) packet: counted
            // as received, the highest sequence stays.
        }
        self.bad_seq = None;
        self.received = self.received.wrapping_add(1);
        self.fresh = true;
        // RFC 3550 A.8: interarrival jitter.
        let transit = arrival.wrapping_sub(ts);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J/16) with J kept ×16.
            self.jitter16 = self
                .jitter16
                .wrapping_add(d)
                .wrapping_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Records the source's SR (its NTP timestamp) arriving at `at`.
    pub fn on_sender_report(&mut self, ssrc: u32, ntp: u64, at: std::time::Instant) {
        self.last_sr = Some((ssrc, ntp_middle(ntp), at));
    }

    /// The SSRC being tracked.
    #[must_use]
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Interarrival jitter, in timestamp units.
    #[must_use]
    pub fn jitter(&self) -> u32 {
        self.jitter16 >> 4
    }

    /// Extended highest sequence number received.
    #[must_use]
    pub fn extended_max(&self) -> u32 {
        self.cycles | u32::from(self.max_seq)
    }

    /// Packets received from the tracked source (duplicates count again,
    /// as RFC 3550 A.3 counts them).
    #[must_use]
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Packets expected minus packets received since the stream started.
    #[must_use]
    pub fn cumulative_lost(&self) -> i64 {
        let expected = i64::from(self.extended_max()) - i64::from(self.base_seq) + 1;
        expected - i64::from(self.received)
    }

    /// The report block for the next report, if a packet arrived since the
    /// last one (RFC 3550 §6.4: blocks only for sources heard from), and
    /// moves the interval's counters on.
    pub fn report_block(&mut self, now: std::time::Instant) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        if !self.fresh {
            return None;
        }
        self.fresh = false;
        let expected = self
            .extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        // LSR/DLSR only from an SR of the source this block is about.
        let (lsr, dlsr) = match self.last_sr {
            Some((from, lsr, at)) if from == ssrc => {
                (lsr, to_dlsr(now.saturating_duration_since(at)))
            }
            _ => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter16 >> 4,
            lsr,
            dlsr,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn sender_report_round_trip() {
        let mut v = Vec::new();
        let info = SenderInfo {
            ntp: 0x0123_4567_89ab_cdef,
            rtp_ts: 160_000,
            packets: 50,
            octets: 8000,
        };
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 0x0001_0005,
            jitter: 12,
            lsr: 0x4567_89ab,
            dlsr: 65_536,
        };
        write_report(&mut v, 0xdead_beef, Some(&info), Some(&block), "tapir@x");
        assert_eq!(v.len() % 4, 0);
        let items = parse_compound(&v).unwrap();
        assert_eq!(
            items[0],
            RtcpItem::SenderReport {
                ssrc: 0xdead_beef,
                info,
                blocks: vec![block]
            }
        );
        assert_eq!(
            items[1],
            RtcpItem::SourceDescription {
                ssrc: 0xdead_beef,
                cname: Some("tapir@x".into())
            }
        );
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn a_goodbye_closes_the_compound() {
        let mut v = Vec::new();
        write_report(&mut v, 4, None, None, "x");
        push_bye(&mut v, 4);
        let items = parse_compound(&v).unwrap();
        assert_eq!(items.last(), Some(&RtcpItem::Bye { ssrcs: vec![4] }));
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn receiver_report_without_blocks_and_every_cname_length() {
        for n in 0..=260 {
            let name = "c".repeat(n);
            let mut v = Vec::new();
            write_report(&mut v, 1, None, None, &name);
            assert_eq!(v.len() % 4, 0, "{n}");
            let items = parse_compound(&v).unwrap();
            assert_eq!(
                items[0],
                RtcpItem::ReceiverReport {
                    ssrc: 1,
                    blocks: vec![]
                }
            );
            let RtcpItem::SourceDescription { cname, .. } = &items[1] else {
                panic!("{items:?}")
            };
            assert_eq!(cname.as_deref().map(str::len), Some(n.min(255)));
        }
    }

    #[test]
    fn malformed_compounds_are_errors() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
        assert_eq!(parse_compound(&[0x80, 200]), Err(RtcpError::Truncated));
        // Length runs past the end.
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 9, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        // SDES first.
        assert_eq!(
            parse_compound(&[0x81, 202, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::NotReportFirst)
        );
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadVersion)
        );
        // An RR that claims a block it does not carry.
        assert_eq!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        for len in 0..40 {
            for b in 0..=255u8 {
                let _ = parse_compound(&vec![b; len]);
            }
        }
    }

    #[test]
    fn loss_and_reordering_are_counted() {
        let mut s = ReceptionStats::default();
        let t0 = Instant::now();
        // 0..10, then 12..20 (10 and 11 lost), then 11 late.
        for seq in (0u16..10).chain(12..20) {
            s.on_rtp(9, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        let b = s.report_block(t0).unwrap();
        assert_eq!(b.highest_seq, 19);
        assert_eq!(b.cumulative_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 20) as u8);
        assert_eq!(b.jitter, 0, "perfectly paced");
        assert!(s.report_block(t0).is_none(), "nothing new since");
        s.on_rtp(9, 11, 11 * 160, 30 * 160);
        let b = s.report_block(t0).unwrap();
        assert_eq!(b.highest_seq, 19, "a late packet does not move the highest");
        assert_eq!(b.cumulative_lost, 1);
        assert!(b.jitter > 0);
    }

    #[test]
    fn a_stray_jump_is_ignored_and_a_confirmed_one_restarts() {
        let mut s = ReceptionStats::default();
        for seq in 0u16..5 {
            s.on_rtp(3, seq, 0, 0);
        }
        s.on_rtp(3, 30_000, 0, 0);
        s.on_rtp(3, 5, 0, 0);
        let b = s.report_block(Instant::now()).unwrap();
        assert_eq!((b.highest_seq, b.cumulative_lost), (5, 0));
        s.on_rtp(3, 40_000, 0, 0);
        s.on_rtp(3, 40_001, 0, 0);
        let b = s.report_block(Instant::now()).unwrap();
        assert_eq!((b.highest_seq, b.cumulative_lost), (40_001, 0));
    }

    #[test]
    fn sequence_wrap_extends_the_highest_number() {
        let mut s = ReceptionStats::default();
        for i in 0u32..20 {
            let seq = 65_530u16.wrapping_add(i as u16);
            s.on_rtp(1, seq, i * 160, i * 160);
        }
        let b = s.report_block(Instant::now()).unwrap();
        assert_eq!(b.highest_seq, (1 << 16) | 13);
        assert_eq!(b.cumulative_lost, 0);
    }

    #[test]
    fn lsr_and_dlsr_follow_the_last_sender_report() {
        let mut s = ReceptionStats::default();
        s.on_rtp(5, 1, 0, 0);
        let at = Instant::now();
        s.on_sender_report(5, 0x1111_2222_3333_4444, at);
        let b = s.report_block(at + Duration::from_millis(500)).unwrap();
        assert_eq!(b.lsr, 0x2222_3333);
        assert_eq!(b.dlsr, 32_768);
        // A report from another source does not count.
        s.on_sender_report(6, 0x1111_2222_3333_4444, at);
        s.on_rtp(5, 2, 160, 160);
        assert_eq!(s.report_block(at).unwrap().lsr, 0);
        // An SR that comes before the source's first RTP packet counts.
        let mut s = ReceptionStats::default();
        s.on_sender_report(8, 0x0000_0001_0002_0000, at);
        s.on_rtp(8, 1, 0, 0);
        assert_eq!(s.report_block(at).unwrap().lsr, 0x0001_0002);
    }

    #[test]
    fn ntp_of_the_unix_epoch() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH) >> 32, 2_208_988_800);
        let half = UNIX_EPOCH + Duration::from_millis(500);
        assert_eq!(ntp_timestamp(half) & 0xffff_ffff, 1 << 31);
    }
}
