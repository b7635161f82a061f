//! Call recording (`POST /v1/calls/{call}/record`), the part that does no
//! I/O of its own: the channel layout, the mixing, and a WAV writer over any
//! `Write + Seek` that keeps its header valid as it goes.
//!
//! The audio comes from a tap on the call's leg ([`crate::stream::TapFrame`]:
//! 20 ms of what the call's address hears and what it says, at 8 kHz).
//!
//! Channel layout ([`Channels`]):
//! - **stereo**: channel 1 (left) is what the call's address **hears** (the
//!   far party, or on a conference every other party mixed), channel 2
//!   (right) is what the address **says**. The same channels as the media
//!   WebSocket's `direction=both`.
//! - **mixed**: one channel, the two directions added (saturating).
//!
//! The file is WAVE PCM, 16-bit little-endian, 8000 Hz (G.711's own rate:
//! nothing is gained by upsampling). The header is written first with the
//! lengths of what is there, and patched ([`WavWriter::sync`]) every
//! [`SYNC_EVERY_FRAMES`] frames and on [`WavWriter::finish`]: a process
//! killed mid-write leaves a file whose header names at most the last
//! second too little, and [`repair_header`] makes it exact from the file's
//! length (done at the next start).
//!
//! Pause: what a production PBX does by default (Twilio's `pauseBehavior`
//! `silence`, FreeSWITCH's `mask`) — the paused time is written as silence,
//! so the file's timeline stays the call's (a minute into the file is a
//! minute into the recording) and nothing said meanwhile is kept.

use crate::stream::TapFrame;
use crate::tone::{FRAME_SAMPLES, SAMPLE_RATE};
use std::io::{self, Seek, SeekFrom, Write};

/// Bytes of the WAV header this writer writes (RIFF, `fmt `, `data`).
pub const HEADER_LEN: u64 = 44;

/// Frames between two header updates (1 s).
pub const SYNC_EVERY_FRAMES: u64 = 50;

/// The largest `data` chunk a WAV file can name (its length is a `u32`, and
/// the RIFF length adds 36): about 37 hours of stereo.
pub const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 36;

/// How a recording lays out the call's two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Channels {
    /// Channel 1 what the address hears, channel 2 what it says.
    #[default]
    Stereo,
    /// One channel: both directions added.
    Mixed,
}

impl Channels {
    /// `"stereo"` or `"mixed"`; `None` for any other word.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Channels> {
        match name {
            "stereo" => Some(Channels::Stereo),
            "mixed" => Some(Channels::Mixed),
            _ => None,
        }
    }

    /// The name in the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Channels::Stereo => "stereo",
            Channels::Mixed => "mixed",
        }
    }

    /// Channels in the file.
    #[must_use]
    pub fn count(self) -> u16 {
        match self {
            Channels::Stereo => 2,
            Channels::Mixed => 1,
        }
    }

    /// Bytes of audio per second.
    #[must_use]
    pub fn byte_rate(self) -> u32 {
        SAMPLE_RATE * 2 * u32::from(self.count())
    }

    /// Bytes of one 20 ms frame in the file.
    #[must_use]
    pub fn frame_bytes(self) -> usize {
        FRAME_SAMPLES * 2 * usize::from(self.count())
    }
}

/// The 44-byte header of a PCM16 8 kHz WAV file whose `data` chunk holds
/// `data_len` bytes (capped at [`MAX_DATA_BYTES`]).
#[must_use]
pub fn header(channels: Channels, data_len: u64) -> [u8; HEADER_LEN as usize] {
    let data = u32::try_from(data_len.min(MAX_DATA_BYTES)).unwrap_or(u32::MAX);
    let n = channels.count();
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&n.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&channels.byte_rate().to_le_bytes());
    h[32..34].copy_from_slice(&(2 * n).to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// `frame` as the file's bytes (appended to `out`): interleaved
/// heard/said for stereo, their saturating sum for mixed; silence when
/// `silent` (a paused recording).
pub fn encode_frame(channels: Channels, frame: &TapFrame, silent: bool, out: &mut Vec<u8>) {
    out.reserve(channels.frame_bytes());
    if silent {
        out.resize(out.len() + channels.frame_bytes(), 0);
        return;
    }
    match channels {
        Channels::Stereo => {
            for (h, s) in frame.heard.iter().zip(&frame.said) {
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        Channels::Mixed => {
            for (h, s) in frame.heard.iter().zip(&frame.said) {
                out.extend_from_slice(&h.saturating_add(*s).to_le_bytes());
            }
        }
    }
}

/// A WAV file being written: audio appended frame by frame, the header
/// patched every [`SYNC_EVERY_FRAMES`] frames and when finished.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: Channels,
    data_len: u64,
    unsynced: u64,
    buf: Vec<u8>,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Starts a file: writes the header of an empty recording.
    ///
    /// # Errors
    /// The writer's.
    pub fn new(mut out: W, channels: Channels) -> io::Result<WavWriter<W>> {
        out.write_all(&header(channels, 0))?;
        Ok(WavWriter {
            out,
            channels,
            data_len: 0,
            unsynced: 0,
            buf: Vec::with_capacity(channels.frame_bytes()),
        })
    }

    /// The recording's layout.
    #[must_use]
    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Bytes of audio written.
    #[must_use]
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Milliseconds of audio written.
    #[must_use]
    pub fn duration_ms(&self) -> u64 {
        self.data_len * 1000 / u64::from(self.channels.byte_rate())
    }

    /// Whether another frame still fits in a WAV file.
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.data_len + self.channels.frame_bytes() as u64 <= MAX_DATA_BYTES
    }

    /// Appends one frame (silence when `silent`); the header is brought up
    /// to date every [`SYNC_EVERY_FRAMES`] frames. A frame that no longer
    /// fits ([`WavWriter::has_room`]) is not written: `Ok(false)`.
    ///
    /// # Errors
    /// The writer's.
    pub fn write_frame(&mut self, frame: &TapFrame, silent: bool) -> io::Result<bool> {
        if !self.has_room() {
            return Ok(false);
        }
        self.buf.clear();
        encode_frame(self.channels, frame, silent, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.data_len += self.buf.len() as u64;
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY_FRAMES {
            self.sync()?;
        }
        Ok(true)
    }

    /// Writes the header's lengths for what was written so far (and
    /// flushes), then goes back to the end.
    ///
    /// # Errors
    /// The writer's.
    pub fn sync(&mut self) -> io::Result<()> {
        self.unsynced = 0;
        let h = header(self.channels, self.data_len);
        self.out.flush()?;
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&h[4..8])?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&h[40..44])?;
        self.out.seek(SeekFrom::Start(HEADER_LEN + self.data_len))?;
        self.out.flush()
    }

    /// Makes the header final and hands back the writer.
    ///
    /// # Errors
    /// The writer's.
    pub fn finish(mut self) -> io::Result<W> {
        self.sync()?;
        Ok(self.out)
    }
}

/// Makes the header of a recording this writer started agree with the
/// file's length (a process that stopped before [`WavWriter::finish`]); an
/// odd trailing byte or a partial sample frame is cut off the `data` length.
/// Returns the `data` length.
///
/// # Errors
/// The file's; [`io::ErrorKind::InvalidData`] when it is not one of ours
/// (shorter than the header, or another header).
pub fn repair_header<F: io::Read + Write + Seek>(file: &mut F) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut h = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))?;
    if len < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "shorter than a WAV header",
        ));
    }
    file.read_exact(&mut h)?;
    let channels = match (&h[0..4], &h[8..16], &h[36..40], h[22]) {
        (b"RIFF", b"WAVEfmt ", b"data", 1) => Channels::Mixed,
        (b"RIFF", b"WAVEfmt ", b"data", 2) => Channels::Stereo,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a recording's WAV header",
            ));
        }
    };
    let block = 2 * u64::from(channels.count());
    let data = ((len - HEADER_LEN) / block * block).min(MAX_DATA_BYTES);
    let fixed = header(channels, data);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&fixed)?;
    file.flush()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tone::goertzel_amplitude;
    use std::io::Cursor;
    use std::time::Instant;

    fn frame(heard: i16, said: i16) -> TapFrame {
        TapFrame {
            heard: [heard; FRAME_SAMPLES],
            said: [said; FRAME_SAMPLES],
            at: Instant::now(),
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(Channels::from_name("stereo"), Some(Channels::Stereo));
        assert_eq!(Channels::from_name("mixed"), Some(Channels::Mixed));
        assert_eq!(Channels::from_name("mono"), None);
        assert_eq!(Channels::Stereo.frame_bytes(), 640);
        assert_eq!(Channels::Mixed.frame_bytes(), 320);
        assert_eq!(Channels::Stereo.byte_rate(), 32_000);
    }

    #[test]
    fn the_header_is_a_pcm16_8khz_wave_header() {
        let h = header(Channels::Stereo, 6400);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32_at(&h, 4), 6436);
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(u32_at(&h, 16), 16);
        assert_eq!(u16::from_le_bytes([h[20], h[21]]), 1);
        assert_eq!(u16::from_le_bytes([h[22], h[23]]), 2);
        assert_eq!(u32_at(&h, 24), 8000);
        assert_eq!(u32_at(&h, 28), 32_000);
        assert_eq!(u16::from_le_bytes([h[32], h[33]]), 4);
        assert_eq!(u16::from_le_bytes([h[34], h[35]]), 16);
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32_at(&h, 40), 6400);
        // The hold-music reader of this crate takes it.
        let mut file = h.to_vec();
        file.resize(44 + 6400, 0);
        assert_eq!(crate::wav::decode_wav(&file).map(|p| p.len()), Ok(1600));
    }

    #[test]
    fn stereo_puts_what_is_heard_left_and_what_is_said_right() {
        let mut out = Vec::new();
        encode_frame(Channels::Stereo, &frame(100, -7), false, &mut out);
        assert_eq!(out.len(), 640);
        let s: Vec<i16> = out
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert!(s.chunks_exact(2).all(|p| p == [100, -7]));
    }

    #[test]
    fn mixed_adds_both_directions_with_saturation() {
        let mut out = Vec::new();
        encode_frame(Channels::Mixed, &frame(100, -7), false, &mut out);
        assert_eq!(out.len(), 320);
        assert_eq!(&out[..2], &93i16.to_le_bytes());
        out.clear();
        encode_frame(Channels::Mixed, &frame(30_000, 10_000), false, &mut out);
        assert_eq!(&out[..2], &i16::MAX.to_le_bytes());
        out.clear();
        encode_frame(Channels::Stereo, &frame(5, 5), true, &mut out);
        assert!(out.len() == 640 && out.iter().all(|&b| b == 0), "paused");
    }

    #[test]
    fn tones_land_on_their_channels() {
        // Two tones, one per direction: the stereo file holds each on its
        // own channel, the mixed one both.
        let tone = |hz: f64, n: usize| -> i16 {
            (8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin()) as i16
        };
        let mut stereo = WavWriter::new(Cursor::new(Vec::new()), Channels::Stereo).unwrap();
        let mut mixed = WavWriter::new(Cursor::new(Vec::new()), Channels::Mixed).unwrap();
        for f in 0..25 {
            let mut fr = frame(0, 0);
            for i in 0..FRAME_SAMPLES {
                fr.heard[i] = tone(697.0, f * FRAME_SAMPLES + i);
                fr.said[i] = tone(1209.0, f * FRAME_SAMPLES + i);
            }
            assert!(stereo.write_frame(&fr, false).unwrap());
            assert!(mixed.write_frame(&fr, false).unwrap());
        }
        let s = stereo.finish().unwrap().into_inner();
        let m = mixed.finish().unwrap().into_inner();
        let samples = |b: &[u8]| -> Vec<i16> {
            b[44..]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        let s = samples(&s);
        let left: Vec<i16> = s.iter().step_by(2).copied().collect();
        let right: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
        let power = |pcm: &[i16], hz: f32| goertzel_amplitude(pcm, hz, 8000.0);
        assert!(power(&left, 697.0) > 10.0 * power(&left, 1209.0));
        assert!(power(&right, 1209.0) > 10.0 * power(&right, 697.0));
        let m = samples(&m);
        assert!(power(&m, 697.0) > 10.0 * power(&m, 1000.0));
        assert!(power(&m, 1209.0) > 10.0 * power(&m, 1000.0));
    }

    #[test]
    fn the_header_follows_the_audio_and_is_final_on_finish() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), Channels::Mixed).unwrap();
        for _ in 0..SYNC_EVERY_FRAMES {
            w.write_frame(&frame(1, 1), false).unwrap();
        }
        // Synced after a second, mid-recording.
        let bytes = w.out.get_ref().clone();
        assert_eq!(u64::from(u32_at(&bytes, 40)), SYNC_EVERY_FRAMES * 320);
        assert_eq!(bytes.len() as u64, 44 + SYNC_EVERY_FRAMES * 320);
        w.write_frame(&frame(1, 1), true).unwrap();
        assert_eq!(w.duration_ms(), (SYNC_EVERY_FRAMES + 1) * 20);
        let bytes = w.finish().unwrap().into_inner();
        let data = u64::from(u32_at(&bytes, 40));
        assert_eq!(data, (SYNC_EVERY_FRAMES + 1) * 320);
        assert_eq!(u64::from(u32_at(&bytes, 4)), data + 36);
        assert_eq!(bytes.len() as u64, 44 + data);
    }

    #[test]
    fn a_file_cut_off_mid_write_is_repaired_from_its_length() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), Channels::Stereo).unwrap();
        for _ in 0..3 {
            w.write_frame(&frame(9, 9), false).unwrap();
        }
        // Never synced nor finished; a torn last sample too.
        let mut bytes = w.out.into_inner();
        bytes.push(1);
        assert_eq!(u32_at(&bytes, 40), 0);
        let mut c = Cursor::new(bytes);
        assert_eq!(repair_header(&mut c).unwrap(), 3 * 640);
        let bytes = c.into_inner();
        assert_eq!(u32_at(&bytes, 40), 3 * 640);
        assert_eq!(u32_at(&bytes, 4), 3 * 640 + 36);
        let mut junk =
            Cursor::new(b"not a wave file at all, but long enough to hold a header".to_vec());
        assert_eq!(
            repair_header(&mut junk).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut short = Cursor::new(vec![0u8; 10]);
        assert!(repair_header(&mut short).is_err());
    }

    #[test]
    fn a_full_file_takes_no_more_frames() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), Channels::Mixed).unwrap();
        w.data_len = MAX_DATA_BYTES - 100;
        assert!(!w.has_room());
        assert!(!w.write_frame(&frame(1, 1), false).unwrap());
        assert_eq!(w.data_len, MAX_DATA_BYTES - 100);
    }
}
