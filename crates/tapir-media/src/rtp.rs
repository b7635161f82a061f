//! The RTP fixed header (RFC 3550 §5.1): parse a received packet without
//! copying and write the header tapir sends. CSRC lists, header extensions
//! and padding are understood on input (the payload is found past them) and
//! never produced on output.
//!
//! A dozen lines of bit-twiddling did not justify `rtp-types` here; every
//! length is checked, so a hostile packet yields an error, never a panic.

/// Length of the fixed header tapir writes.
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not an RTP packet tapir can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the fixed header or than its CSRC list/extension claim.
    #[error("RTP packet truncated")]
    Truncated,
    /// The version field is not 2.
    #[error("not RTP version 2")]
    BadVersion,
    /// The padding count is larger than the payload.
    #[error("bad RTP padding")]
    BadPadding,
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload (after CSRCs and extension, before padding).
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram.
    ///
    /// # Errors
    /// An [`RtpError`] for anything that is not a well-formed RTP v2 packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let [b0, b1, s0, s1, t0, t1, t2, t3, x0, x1, x2, x3, ..] = *buf else {
            return Err(RtpError::Truncated);
        };
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let csrc = usize::from(b0 & 0x0f);
        let mut start = HEADER_LEN + 4 * csrc;
        if b0 & 0x10 != 0 {
            let ext = buf.get(start..start + 4).ok_or(RtpError::Truncated)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            start += 4 + 4 * words;
        }
        let mut end = buf.len();
        if start > end {
            return Err(RtpError::Truncated);
        }
        if b0 & 0x20 != 0 {
            let pad = usize::from(*buf.last().ok_or(RtpError::Truncated)?);
            if pad == 0 || pad > end - start {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(Self {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            seq: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([x0, x1, x2, x3]),
            payload: buf.get(start..end).ok_or(RtpError::Truncated)?,
        })
    }
}

/// Whether a datagram on an RTP port looks like RTCP (RFC 5761 §4:
/// payload-type octet 192-223 with the marker bit folded in).
#[must_use]
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// Writes a 12-byte header followed by `payload` into `out` (cleared first).
pub fn write_packet(
    out: &mut Vec<u8>,
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.push(0x80);
    out.push((u8::from(marker) << 7) | (payload_type & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse() {
        let mut v = Vec::new();
        write_packet(&mut v, true, 8, 65535, 0xdead_beef, 42, &[1, 2, 3]);
        let p = RtpPacket::parse(&v).expect("parse");
        assert!(p.marker);
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.seq, 65535);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 42);
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut v = vec![0x80 | 0x20 | 0x10 | 0x01, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        v.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        v.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, 1 word
        v.extend_from_slice(&[5, 6]); // payload
        v.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&v).expect("parse");
        assert_eq!(p.payload, &[5, 6]);
    }

    #[test]
    fn hostile_packets_are_errors() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion));
        // 15 CSRCs claimed, none present.
        assert_eq!(RtpPacket::parse(&[0x8f; 12]), Err(RtpError::Truncated));
        // Extension claimed, absent.
        let mut v = vec![0x90; 12];
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::Truncated));
        v.extend_from_slice(&[0, 0, 0xff, 0xff]);
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::Truncated));
        // Padding larger than the packet.
        let mut v = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::BadPadding));
        v[13] = 0;
        assert_eq!(RtpPacket::parse(&v), Err(RtpError::BadPadding));
        // Every byte value in every position of a short packet: no panic.
        for len in 0..20 {
            for b in 0..=255u8 {
                let v = vec![b; len];
                let _ = RtpPacket::parse(&v);
                let _ = is_rtcp(&v);
            }
        }
    }

    #[test]
    fn rtcp_detection() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8, 0, 1]));
    }
}
