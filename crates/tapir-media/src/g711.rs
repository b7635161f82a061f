//! G.711 (ITU-T) µ-law and A-law companding: the only codecs tapir's media
//! plane speaks. Decoding uses 256-entry tables built at compile time;
//! encoding is the classic segment search (a handful of comparisons), which
//! is as fast as a table lookup for 8 kHz telephony and needs no memory.
//!
//! Values follow ITU-T G.711 as implemented in the G.191 software tools
//! (14-bit µ-law / 13-bit A-law input taken from the top of a 16-bit
//! sample): decoded µ-law spans ±32124 and A-law ±32256. A test checks all
//! 65,536 inputs and 256 codes against the `audio-codec-algorithms` crate.

/// One of the two G.711 laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law (PCMU, RTP payload type 0), used in North America and Japan.
    Ulaw,
    /// A-law (PCMA, RTP payload type 8), used in Europe and elsewhere.
    Alaw,
}

const ULAW_BIAS: i32 = 0x84;

/// Encodes one 16-bit linear sample as µ-law.
#[must_use]
pub fn encode_ulaw(sample: i16) -> u8 {
    encode_ulaw_const(sample)
}

const fn decode_ulaw_const(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0f) as i32) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
#[must_use]
pub fn encode_alaw(sample: i16) -> u8 {
    encode_alaw_const(sample)
}

const fn decode_alaw_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            decode_alaw_const(i as u8)
        } else {
            decode_ulaw_const(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

const fn build_transcode(from_alaw: bool) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let lin = if from_alaw {
            decode_alaw_const(i as u8)
        } else {
            decode_ulaw_const(i as u8)
        };
        table[i] = if from_alaw {
            encode_ulaw_const(lin)
        } else {
            encode_alaw_const(lin)
        };
        i += 1;
    }
    table
}

const fn encode_ulaw_const(sample: i16) -> u8 {
    // ITU-T G.191 style: work on the 14-bit value, negative values by ones'
    // complement, bias 33, segment from the position of the highest bit.
    let negative = sample < 0;
    let linear = (sample >> 2) as u16;
    let abs = (if negative { linear ^ 0xffff } else { linear }) as u32;
    let v = abs + 33;
    let seg = (u32::BITS - v.leading_zeros()).saturating_sub(6);
    let code = if seg >= 8 {
        0x7f
    } else {
        (seg << 4) | ((v >> (seg + 1)) & 0x0f)
    };
    let sign = if negative { 0x80u32 } else { 0 };
    ((sign | code) ^ 0xff) as u8
}

const fn encode_alaw_const(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let mut seg: u8 = 0;
    let mut v = pcm >> 5;
    while v != 0 && seg < 8 {
        seg += 1;
        v >>= 1;
    }
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mantissa = if seg < 2 {
        ((pcm >> 1) & 0x0f) as u8
    } else {
        ((pcm >> seg) & 0x0f) as u8
    };
    ((seg << 4) | mantissa) ^ mask
}

static ULAW_TO_ALAW: [u8; 256] = build_transcode(false);
static ALAW_TO_ULAW: [u8; 256] = build_transcode(true);

/// Decodes one µ-law byte to a 16-bit linear sample.
#[must_use]
pub fn decode_ulaw(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decodes one A-law byte to a 16-bit linear sample.
#[must_use]
pub fn decode_alaw(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// The µ-law code of digital silence (0xFF).
pub const ULAW_SILENCE: u8 = 0xff;
/// The A-law code of digital silence (0xD5).
pub const ALAW_SILENCE: u8 = 0xd5;

impl Law {
    /// Encodes one sample with this law.
    #[must_use]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => encode_ulaw(sample),
            Law::Alaw => encode_alaw(sample),
        }
    }

    /// Decodes one byte with this law.
    #[must_use]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => decode_ulaw(code),
            Law::Alaw => decode_alaw(code),
        }
    }

    /// Appends the encoding of `samples` to `out`.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.reserve(samples.len());
        match self {
            Law::Ulaw => out.extend(samples.iter().map(|&s| encode_ulaw(s))),
            Law::Alaw => out.extend(samples.iter().map(|&s| encode_alaw(s))),
        }
    }

    /// Appends the decoding of `codes` to `out`.
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Ulaw => &ULAW_TO_LINEAR,
            Law::Alaw => &ALAW_TO_LINEAR,
        };
        out.extend(codes.iter().map(|&c| table[usize::from(c)]));
    }

    /// The code of digital silence in this law.
    #[must_use]
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => ULAW_SILENCE,
            Law::Alaw => ALAW_SILENCE,
        }
    }
}

/// Converts a buffer in place from one law to the other (through the linear
/// value, one table lookup per byte). Does nothing when `from == to`.
pub fn transcode_in_place(from: Law, to: Law, buf: &mut [u8]) {
    let table = match (from, to) {
        (Law::Ulaw, Law::Alaw) => &ULAW_TO_ALAW,
        (Law::Alaw, Law::Ulaw) => &ALAW_TO_ULAW,
        _ => return,
    };
    for b in buf {
        *b = table[usize::from(*b)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // ITU-T G.711 table 2a and the reference g711.c.
        assert_eq!(encode_ulaw(0), 0xff);
        assert_eq!(encode_ulaw(-1), 0x7f);
        assert_eq!(decode_ulaw(0xff), 0);
        assert_eq!(decode_ulaw(0x7f), 0);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(encode_alaw(0), 0xd5);
        assert_eq!(decode_alaw(0xd5), 8);
        assert_eq!(decode_alaw(0x55), -8);
        assert_eq!(decode_alaw(0xaa), 32256);
        assert_eq!(decode_alaw(0x2a), -32256);
        assert_eq!(encode_alaw(i16::MAX), 0xaa);
        assert_eq!(encode_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn matches_oracle_exhaustively() {
        for code in 0..=255u8 {
            assert_eq!(
                decode_ulaw(code),
                audio_codec_algorithms::decode_ulaw(code),
                "ulaw {code:#x}"
            );
            assert_eq!(
                decode_alaw(code),
                audio_codec_algorithms::decode_alaw(code),
                "alaw {code:#x}"
            );
        }
        for s in i16::MIN..=i16::MAX {
            assert_eq!(
                encode_ulaw(s),
                audio_codec_algorithms::encode_ulaw(s),
                "ulaw {s}"
            );
            assert_eq!(
                encode_alaw(s),
                audio_codec_algorithms::encode_alaw(s),
                "alaw {s}"
            );
        }
    }

    #[test]
    fn round_trips_are_stable() {
        // decode(encode(decode(c))) == decode(c) for every code: the codes are
        // fixed points of the quantiser (µ-law has two zeros, 0x7f and 0xff).
        for code in 0..=255u8 {
            let u = decode_ulaw(code);
            assert_eq!(decode_ulaw(encode_ulaw(u)), u);
            let a = decode_alaw(code);
            assert_eq!(encode_alaw(a), code);
        }
        // Quantisation error stays within half a step of the segment.
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(decode_ulaw(encode_ulaw(s)));
            let a = i32::from(decode_alaw(encode_alaw(s)));
            let mag = i32::from(s).abs();
            let tol = (mag / 16).max(16) + 8;
            assert!((u - i32::from(s)).abs() <= tol.max(300), "ulaw {s} -> {u}");
            assert!((a - i32::from(s)).abs() <= tol.max(300), "alaw {s} -> {a}");
        }
    }

    #[test]
    fn transcoding_preserves_level() {
        let mut buf: Vec<u8> = (0..=255u8).collect();
        transcode_in_place(Law::Ulaw, Law::Alaw, &mut buf);
        for (code, a) in (0..=255u8).zip(&buf) {
            let lin = i32::from(decode_ulaw(code));
            let back = i32::from(decode_alaw(*a));
            assert!((lin - back).abs() <= lin.abs() / 16 + 16, "{code:#x}");
        }
        let mut same = vec![1u8, 2, 3];
        transcode_in_place(Law::Alaw, Law::Alaw, &mut same);
        assert_eq!(same, vec![1, 2, 3]);
    }
}
