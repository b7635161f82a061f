//! Loading hold music from a WAV file (RIFF/WAVE): PCM 8/16-bit, A-law or
//! µ-law, any channel count (mixed down to mono) and any sample rate
//! (converted to 8 kHz). The result is the 8 kHz mono PCM the engine loops
//! for [`crate::ToneKind::HoldMusic`] when
//! [`crate::MediaConfig::hold_music`] is set; without it the built-in
//! generated melody plays.
//!
//! A small chunk reader rather than `hound`: every length is checked against
//! the buffer, so a corrupt file is an error, never a panic.

use crate::g711::{decode_alaw, decode_ulaw};
use crate::tone::SAMPLE_RATE;

/// Longest hold music kept: 10 minutes at 8 kHz.
pub const MAX_SAMPLES: usize = 10 * 60 * SAMPLE_RATE as usize;

/// Why a WAV file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// A chunk runs past the end of the file, or `fmt `/`data` is missing.
    #[error("truncated or incomplete WAV file")]
    Truncated,
    /// An encoding other than PCM 8/16-bit, A-law or µ-law.
    #[error("unsupported WAV encoding (format {format}, {bits} bits)")]
    Unsupported {
        /// The format tag.
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Zero channels or a zero sample rate.
    #[error("WAV file has no channels or no sample rate")]
    Empty,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Decodes a WAV file into 8 kHz mono 16-bit samples (at most
/// [`MAX_SAMPLES`]).
///
/// # Errors
/// A [`WavError`] for anything but a well-formed file in a supported
/// encoding.
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut data: Option<&[u8]> = None;
    while let (Some(id), Some(len)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let len = len as usize;
        let body_start = at + 8;
        let body_end = body_start.checked_add(len).ok_or(WavError::Truncated)?;
        // Tolerate a data chunk whose length overstates the file (streamed
        // recordings write 0xFFFFFFFF).
        let body = match bytes.get(body_start..body_end) {
            Some(b) => b,
            None if id == b"data" => bytes.get(body_start..).ok_or(WavError::Truncated)?,
            None => return Err(WavError::Truncated),
        };
        if id == b"fmt " {
            let mut format = u16_at(body, 0).ok_or(WavError::Truncated)?;
            let channels = u16_at(body, 2).ok_or(WavError::Truncated)?;
            let rate = u32_at(body, 4).ok_or(WavError::Truncated)?;
            let bits = u16_at(body, 14).ok_or(WavError::Truncated)?;
            if format == 0xfffe {
                // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag.
                format = u16_at(body, 24).ok_or(WavError::Truncated)?;
            }
            fmt = Some((format, channels, rate, bits));
        } else if id == b"data" {
            data = Some(body);
        }
        // Chunks are padded to even length.
        at = body_end.saturating_add(len & 1);
    }
    let ((format, channels, rate, bits), data) = match (fmt, data) {
        (Some(f), Some(d)) => (f, d),
        _ => return Err(WavError::Truncated),
    };
    if channels == 0 || rate == 0 {
        return Err(WavError::Empty);
    }
    let decode: fn(&[u8]) -> i16 = match (format, bits) {
        (1, 16) => |b| i16::from_le_bytes([b[0], b[1]]),
        (1, 8) => |b| (i16::from(b[0]) - 128) << 8,
        (6, 8) => |b| decode_alaw(b[0]),
        (7, 8) => |b| decode_ulaw(b[0]),
        _ => return Err(WavError::Unsupported { format, bits }),
    };
    let width = usize::from(bits / 8);
    let frame = width * usize::from(channels);
    let mono = data.chunks_exact(frame).map(|f| {
        let sum: i32 = f.chunks_exact(width).map(|s| i32::from(decode(s))).sum();
        sum / i32::from(channels)
    });
    Ok(resample(mono, rate))
}

/// Converts to 8 kHz: averaging the input samples that fall in each output
/// period when downsampling (a box filter, enough for music on hold),
/// holding the previous value when upsampling.
fn resample(input: impl Iterator<Item = i32>, rate: u32) -> Vec<i16> {
    let mut out = Vec::new();
    let (mut acc, mut n) = (0i64, 0i64);
    let mut pos: u64 = 0; // input samples × 8000
    let mut next_out: u64 = u64::from(rate); // output boundary × rate
    let mut last: i32;
    for s in input {
        if out.len() >= MAX_SAMPLES {
            break;
        }
        acc += i64::from(s);
        n += 1;
        last = s;
        pos += u64::from(SAMPLE_RATE);
        while pos >= next_out && out.len() < MAX_SAMPLES {
            let v = if n > 0 { acc / n } else { i64::from(last) };
            out.push(v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16);
            acc = 0;
            n = 0;
            next_out += u64::from(rate);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::goertzel_amplitude;
    use std::f32::consts::TAU;

    fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&format.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[1, 2, 3, 0]); // odd chunk + pad byte
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sine(rate: u32, freq: f32, secs: f32) -> Vec<i16> {
        (0..(rate as f32 * secs) as u32)
            .map(|n| (8000.0 * (TAU * freq * n as f32 / rate as f32).sin()) as i16)
            .collect()
    }

    #[test]
    fn pcm16_stereo_44k1_becomes_8k_mono() {
        let s = sine(44_100, 400.0, 1.0);
        let data: Vec<u8> = s
            .iter()
            .flat_map(|x| {
                let b = x.to_le_bytes();
                [b[0], b[1], b[0], b[1]]
            })
            .collect();
        let out = decode_wav(&wav(1, 2, 44_100, 16, &data)).expect("decode");
        assert!((7990..=8000).contains(&out.len()), "{}", out.len());
        assert!(goertzel_amplitude(&out, 400.0, 8000.0) > 6000.0);
    }

    #[test]
    fn ulaw_alaw_and_pcm8_at_8k() {
        let s = sine(8000, 1000.0, 0.5);
        let u: Vec<u8> = s.iter().map(|&x| crate::g711::encode_ulaw(x)).collect();
        let out = decode_wav(&wav(7, 1, 8000, 8, &u)).expect("ulaw");
        assert_eq!(out.len(), 4000);
        assert!(goertzel_amplitude(&out, 1000.0, 8000.0) > 7000.0);
        let a: Vec<u8> = s.iter().map(|&x| crate::g711::encode_alaw(x)).collect();
        assert_eq!(
            decode_wav(&wav(6, 1, 8000, 8, &a)).expect("alaw").len(),
            4000
        );
        let p8: Vec<u8> = s.iter().map(|&x| ((x >> 8) + 128) as u8).collect();
        let out = decode_wav(&wav(1, 1, 8000, 8, &p8)).expect("pcm8");
        assert!(goertzel_amplitude(&out, 1000.0, 8000.0) > 7000.0);
    }

    #[test]
    fn upsampling_holds_samples() {
        let data: Vec<u8> = [100i16, 200].iter().flat_map(|x| x.to_le_bytes()).collect();
        let out = decode_wav(&wav(1, 1, 4000, 16, &data)).expect("decode");
        assert_eq!(out, vec![100, 100, 200, 200]);
    }

    #[test]
    fn bad_files_are_errors() {
        assert_eq!(decode_wav(b""), Err(WavError::NotWave));
        assert_eq!(decode_wav(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWave));
        assert_eq!(decode_wav(b"RIFF\0\0\0\0WAVE"), Err(WavError::Truncated));
        assert_eq!(
            decode_wav(&wav(3, 1, 8000, 32, &[0; 8])),
            Err(WavError::Unsupported {
                format: 3,
                bits: 32
            })
        );
        assert_eq!(
            decode_wav(&wav(1, 0, 8000, 16, &[0; 8])),
            Err(WavError::Empty)
        );
        let good = wav(1, 1, 8000, 16, &[0; 64]);
        for cut in 0..good.len() {
            let _ = decode_wav(&good[..cut]);
        }
        let mut huge = good.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes()); // fmt chunk length
        assert_eq!(decode_wav(&huge), Err(WavError::Truncated));
    }
}
