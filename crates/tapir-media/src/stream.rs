//! Call audio for applications (`GET /v1/calls/{call}/media`), the part
//! that does no I/O: the stream's format and its first text frame, the
//! 20 ms framing of what a leg hears and says ([`Framer`]), the PCM16LE
//! wire form at 8 or 16 kHz, the frames an owner sends back
//! ([`decode_play_frame`]) and how they are mixed in.
//!
//! Channels: channel 1 is what the call's address **hears** (what tapir
//! sends to its leg), channel 2 what it **says** (what its leg sends
//! tapir). With `direction=in` only channel 1 goes out.
//!
//! Framing: the two directions arrive on their own clocks (a relayed
//! packet whenever the far end sends one, generated media on the media
//! thread's 20 ms tick). Each has a FIFO of samples; a frame goes out as
//! soon as every channel it carries holds 20 ms, or one holds 40 ms (the
//! other side is then silent or late, and its share is padded with
//! silence). A FIFO keeps at most [`MAX_BUFFERED_SAMPLES`] (the oldest go),
//! so that a direction that runs ahead cannot build up delay. When nothing
//! came for [`IDLE_TICKS`] ticks, the tick sends what there is padded with
//! silence: the stream keeps its 20 ms pace through silence and hold.
//!
//! 16 kHz: G.711 is 8 kHz audio, so wide frames are the same audio upsampled
//! ×2 by linear interpolation (each new sample halfway between its
//! neighbours; the stream is half a sample, 62.5 µs, later). Frames sent
//! back at 16 kHz are downsampled by averaging each pair of samples (a
//! two-tap low-pass, then every other sample). Neither adds content above
//! 4 kHz, which G.711 cannot carry anyway.
//!
//! Frames sent back replace what the address hears ([`PlayMode::Replace`],
//! the default) or are added to it ([`PlayMode::Mix`], with saturation),
//! for as long as they last; then the party is heard again.

use crate::tone::FRAME_SAMPLES;
use std::collections::VecDeque;
use std::time::Instant;

/// The length of every frame, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Most samples a direction's FIFO keeps before the oldest go (60 ms).
pub const MAX_BUFFERED_SAMPLES: usize = 3 * FRAME_SAMPLES;

/// Media-thread ticks without a frame after which the tick sends one
/// (padded with silence): 40 to 60 ms without audio.
pub const IDLE_TICKS: u8 = 3;

/// The stream's sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rate {
    /// 8000 Hz: G.711's own rate.
    Narrow,
    /// 16000 Hz: upsampled from 8000 Hz.
    Wide,
}

impl Rate {
    /// The rate of `?rate=`; `None` for any other number.
    #[must_use]
    pub fn from_hz(hz: u32) -> Option<Rate> {
        match hz {
            8000 => Some(Rate::Narrow),
            16000 => Some(Rate::Wide),
            _ => None,
        }
    }

    /// Samples per second.
    #[must_use]
    pub fn hz(self) -> u32 {
        match self {
            Rate::Narrow => 8000,
            Rate::Wide => 16000,
        }
    }

    /// Samples per channel in one 20 ms frame.
    #[must_use]
    pub fn frame_samples(self) -> usize {
        match self {
            Rate::Narrow => FRAME_SAMPLES,
            Rate::Wide => 2 * FRAME_SAMPLES,
        }
    }
}

/// Which directions the stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamDirection {
    /// What the address hears (one channel).
    In,
    /// What it hears (channel 1) and what it says (channel 2).
    Both,
}

impl StreamDirection {
    /// The direction of `?direction=`; `None` for any other word.
    #[must_use]
    pub fn from_name(name: &str) -> Option<StreamDirection> {
        match name {
            "in" => Some(StreamDirection::In),
            "both" => Some(StreamDirection::Both),
            _ => None,
        }
    }

    /// Channels of a frame.
    #[must_use]
    pub fn channels(self) -> usize {
        match self {
            StreamDirection::In => 1,
            StreamDirection::Both => 2,
        }
    }
}

/// A stream's format: its rate and directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamFormat {
    /// The sample rate.
    pub rate: Rate,
    /// The directions.
    pub direction: StreamDirection,
}

impl StreamFormat {
    /// The first text frame of the stream:
    /// `{"format":"pcm16le","rate":…,"channels":…,"frame_ms":20}`.
    #[must_use]
    pub fn header(&self) -> String {
        format!(
            "{{\"format\":\"pcm16le\",\"rate\":{},\"channels\":{},\"frame_ms\":{FRAME_MS}}}",
            self.rate.hz(),
            self.direction.channels()
        )
    }

    /// Bytes of one binary frame the stream sends.
    #[must_use]
    pub fn frame_bytes(&self) -> usize {
        self.rate.frame_samples() * self.direction.channels() * 2
    }

    /// Bytes of one binary frame an owner sends back (mono).
    #[must_use]
    pub fn play_frame_bytes(&self) -> usize {
        self.rate.frame_samples() * 2
    }
}

/// 20 ms of a leg's audio at 8 kHz, as the media thread hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapFrame {
    /// What the address heard.
    pub heard: [i16; FRAME_SAMPLES],
    /// What it said (silence on a stream of [`StreamDirection::In`]).
    pub said: [i16; FRAME_SAMPLES],
    /// When the oldest audio of the frame arrived (its RTP packet was read,
    /// or tapir generated it): the start of the frame's latency.
    pub at: Instant,
}

/// One direction's samples waiting for a frame, with when each run of
/// them arrived.
#[derive(Debug, Default)]
struct Fifo {
    samples: VecDeque<i16>,
    /// (samples pushed in all when the run ended, when it arrived).
    marks: VecDeque<(u64, Instant)>,
    /// Samples pushed in all, and taken in all.
    pushed: u64,
    taken: u64,
}

impl Fifo {
    fn push(&mut self, pcm: &[i16], at: Instant) {
        if pcm.is_empty() {
            return;
        }
        self.samples.extend(pcm.iter().copied());
        self.pushed += pcm.len() as u64;
        self.marks.push_back((self.pushed, at));
        let excess = self.samples.len().saturating_sub(MAX_BUFFERED_SAMPLES);
        if excess > 0 {
            self.samples.drain(..excess);
            self.taken += excess as u64;
            self.forget_marks();
        }
    }

    fn forget_marks(&mut self) {
        while self
            .marks
            .front()
            .is_some_and(|(end, _)| *end <= self.taken)
        {
            self.marks.pop_front();
        }
    }

    /// When the oldest waiting sample arrived.
    fn oldest(&self) -> Option<Instant> {
        self.marks.front().map(|(_, at)| *at)
    }

    /// Up to one frame into `out` (the rest silence).
    fn take(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        let n = self.samples.len().min(FRAME_SAMPLES);
        for (dst, s) in out.iter_mut().zip(self.samples.drain(..n)) {
            *dst = s;
        }
        out[n..].fill(0);
        self.taken += n as u64;
        self.forget_marks();
    }
}

/// Turns what a leg hears and says into 20 ms [`TapFrame`]s (see the
/// module's rules).
#[derive(Debug)]
pub struct Framer {
    both: bool,
    heard: Fifo,
    said: Fifo,
    idle_ticks: u8,
}

impl Framer {
    /// A framer for one channel (`both` false: what the leg says is not
    /// kept) or two.
    #[must_use]
    pub fn new(both: bool) -> Framer {
        Framer {
            both,
            heard: Fifo::default(),
            said: Fifo::default(),
            idle_ticks: 0,
        }
    }

    /// Audio the leg heard, arrived at `at`.
    pub fn push_heard(&mut self, pcm: &[i16], at: Instant) {
        self.heard.push(pcm, at);
    }

    /// Audio the leg said, arrived at `at` (ignored with one channel).
    pub fn push_said(&mut self, pcm: &[i16], at: Instant) {
        if self.both {
            self.said.push(pcm, at);
        }
    }

    /// The next frame, if one is due.
    pub fn pop(&mut self) -> Option<TapFrame> {
        let (h, s) = (self.heard.samples.len(), self.said.samples.len());
        let due = if self.both {
            (h >= FRAME_SAMPLES && s >= FRAME_SAMPLES)
                || h >= 2 * FRAME_SAMPLES
                || s >= 2 * FRAME_SAMPLES
        } else {
            h >= FRAME_SAMPLES
        };
        // A due frame has audio, so its time is the oldest audio's.
        let fallback = self.heard.oldest().or(self.said.oldest())?;
        due.then(|| self.take(fallback))
    }

    /// The media thread ticked (20 ms passed): after [`IDLE_TICKS`] ticks
    /// without a frame, a frame of what there is, padded with silence.
    pub fn tick(&mut self, now: Instant) -> Option<TapFrame> {
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        if self.idle_ticks < IDLE_TICKS {
            return None;
        }
        Some(self.take(now))
    }

    /// A frame of what waits (silence padded); `fallback` is its time when
    /// nothing waits.
    fn take(&mut self, fallback: Instant) -> TapFrame {
        self.idle_ticks = 0;
        let at = match (self.heard.oldest(), self.said.oldest()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => fallback,
        };
        let mut f = TapFrame {
            heard: [0; FRAME_SAMPLES],
            said: [0; FRAME_SAMPLES],
            at,
        };
        self.heard.take(&mut f.heard);
        self.said.take(&mut f.said);
        f
    }
}

/// Upsamples `input` ×2 by linear interpolation into `out`; `prev` is the
/// last sample of the previous frame (kept across frames).
pub fn upsample_2x(input: &[i16], prev: &mut i16, out: &mut Vec<i16>) {
    for &x in input {
        let mid = ((i32::from(*prev) + i32::from(x)) / 2) as i16;
        out.push(mid);
        out.push(x);
        *prev = x;
    }
}

/// Downsamples `input` ×2 (the mean of each pair) into `out`.
pub fn downsample_2x(input: &[i16], out: &mut Vec<i16>) {
    for pair in input.chunks_exact(2) {
        out.push(((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16);
    }
}

/// The state of one stream's encoding between frames (the interpolation's
/// last samples).
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    prev_heard: i16,
    prev_said: i16,
    heard: Vec<i16>,
    said: Vec<i16>,
}

impl Encoder {
    /// A fresh encoder.
    #[must_use]
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// `frame` as the binary frame of `format` (PCM16LE, channels
    /// interleaved), written into `out` (cleared first).
    pub fn encode(&mut self, format: StreamFormat, frame: &TapFrame, out: &mut Vec<u8>) {
        out.clear();
        self.heard.clear();
        self.said.clear();
        match format.rate {
            Rate::Narrow => {
                self.heard.extend_from_slice(&frame.heard);
                self.said.extend_from_slice(&frame.said);
            }
            Rate::Wide => {
                upsample_2x(&frame.heard, &mut self.prev_heard, &mut self.heard);
                upsample_2x(&frame.said, &mut self.prev_said, &mut self.said);
            }
        }
        out.reserve(format.frame_bytes());
        match format.direction {
            StreamDirection::In => {
                for s in &self.heard {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            StreamDirection::Both => {
                for (h, s) in self.heard.iter().zip(&self.said) {
                    out.extend_from_slice(&h.to_le_bytes());
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
}

/// A frame sent back that the stream cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a frame of {got} bytes: frames sent back are {want} bytes, 20 ms of mono 16-bit PCM at {rate} Hz"
)]
pub struct FrameSizeError {
    /// The frame's length.
    pub got: usize,
    /// The length the format asks for.
    pub want: usize,
    /// The stream's rate.
    pub rate: u32,
}

/// A frame sent back (mono PCM16LE at the stream's rate), as 20 ms at 8 kHz.
///
/// # Errors
/// [`FrameSizeError`] unless it is exactly one frame.
pub fn decode_play_frame(
    format: StreamFormat,
    bytes: &[u8],
) -> Result<[i16; FRAME_SAMPLES], FrameSizeError> {
    let want = format.play_frame_bytes();
    if bytes.len() != want {
        return Err(FrameSizeError {
            got: bytes.len(),
            want,
            rate: format.rate.hz(),
        });
    }
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut out = [0i16; FRAME_SAMPLES];
    match format.rate {
        Rate::Narrow => out.copy_from_slice(&pcm),
        Rate::Wide => {
            let mut down = Vec::with_capacity(FRAME_SAMPLES);
            downsample_2x(&pcm, &mut down);
            out.copy_from_slice(&down);
        }
    }
    Ok(out)
}

/// How frames sent back meet what the address would hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PlayMode {
    /// The frames replace the party (the default).
    #[default]
    Replace,
    /// The frames are added to what the address hears.
    Mix,
}

impl PlayMode {
    /// The mode named in `{"play":"replace"|"mix"}`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<PlayMode> {
        match name {
            "replace" => Some(PlayMode::Replace),
            "mix" => Some(PlayMode::Mix),
            _ => None,
        }
    }
}

/// Adds `add` into `into`, saturating at full scale.
pub fn mix_into(into: &mut [i16], add: &[i16]) {
    for (d, &a) in into.iter_mut().zip(add) {
        *d = d.saturating_add(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ramp(start: i16) -> Vec<i16> {
        (0..FRAME_SAMPLES as i16).map(|i| start + i).collect()
    }

    #[test]
    fn header_and_sizes() {
        let f = StreamFormat {
            rate: Rate::Wide,
            direction: StreamDirection::Both,
        };
        assert_eq!(
            f.header(),
            r#"{"format":"pcm16le","rate":16000,"channels":2,"frame_ms":20}"#
        );
        assert_eq!(f.frame_bytes(), 320 * 2 * 2);
        assert_eq!(f.play_frame_bytes(), 640);
        assert_eq!(Rate::from_hz(44100), None);
        assert_eq!(StreamDirection::from_name("out"), None);
        assert_eq!(StreamDirection::from_name("in"), Some(StreamDirection::In));
    }

    #[test]
    fn one_channel_frames_go_out_as_soon_as_20_ms_are_there() {
        let t0 = Instant::now();
        let mut f = Framer::new(false);
        f.push_heard(&ramp(0)[..80], t0);
        assert!(f.pop().is_none(), "10 ms are not a frame");
        f.push_said(&ramp(0), t0); // ignored on one channel
        f.push_heard(&ramp(80)[..80], t0 + Duration::from_millis(10));
        let frame = f.pop().expect("20 ms make a frame");
        assert_eq!(frame.at, t0, "latency counts from the oldest audio");
        assert_eq!(frame.heard[..80], ramp(0)[..80]);
        assert_eq!(frame.heard[80..], ramp(80)[..80]);
        assert!(frame.said.iter().all(|&s| s == 0));
        assert!(f.pop().is_none());
    }

    #[test]
    fn two_channels_pair_up_and_a_silent_side_is_padded() {
        let t0 = Instant::now();
        let mut f = Framer::new(true);
        f.push_heard(&ramp(1), t0);
        assert!(f.pop().is_none(), "waits for what the address says");
        f.push_said(&ramp(500), t0 + Duration::from_millis(7));
        let frame = f.pop().expect("both sides are there");
        assert_eq!(frame.heard.to_vec(), ramp(1));
        assert_eq!(frame.said.to_vec(), ramp(500));
        assert_eq!(frame.at, t0);
        // The address says nothing: 40 ms of what it hears go out with
        // silence on its side.
        f.push_heard(&ramp(2), t0);
        f.push_heard(&ramp(3), t0);
        let frame = f.pop().expect("40 ms on one side");
        assert_eq!(frame.heard.to_vec(), ramp(2));
        assert!(frame.said.iter().all(|&s| s == 0));
    }

    #[test]
    fn a_direction_running_ahead_keeps_at_most_60_ms() {
        let t0 = Instant::now();
        let mut f = Framer::new(false);
        for i in 0..10 {
            f.heard.push(
                &ramp(i * 10),
                t0 + Duration::from_millis(u64::from(i as u16) * 20),
            );
        }
        assert_eq!(f.heard.samples.len(), MAX_BUFFERED_SAMPLES);
        let frame = f.pop().expect("a frame");
        assert_eq!(frame.heard.to_vec(), ramp(70), "the oldest went");
        assert_eq!(frame.at, t0 + Duration::from_millis(140));
    }

    #[test]
    fn silence_keeps_the_pace_on_the_tick() {
        let t0 = Instant::now();
        let mut f = Framer::new(true);
        assert!(f.tick(t0).is_none());
        assert!(f.tick(t0).is_none());
        let frame = f.tick(t0).expect("the third tick sends silence");
        assert!(frame.heard.iter().chain(&frame.said).all(|&s| s == 0));
        assert_eq!(frame.at, t0, "silence counts from the tick");
        f.push_heard(&ramp(0)[..40], t0);
        assert!(f.tick(t0).is_none() && f.tick(t0).is_none());
        let frame = f.tick(t0).expect("a partial frame, padded");
        assert_eq!(frame.heard[..40], ramp(0)[..40]);
        assert!(frame.heard[40..].iter().all(|&s| s == 0));
    }

    #[test]
    fn wide_frames_are_interpolated_and_interleaved() {
        let format = StreamFormat {
            rate: Rate::Wide,
            direction: StreamDirection::Both,
        };
        let mut frame = TapFrame {
            heard: [0; FRAME_SAMPLES],
            said: [0; FRAME_SAMPLES],
            at: Instant::now(),
        };
        frame.heard[0] = 100;
        frame.heard[1] = 200;
        frame.said[0] = -4;
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode(format, &frame, &mut out);
        assert_eq!(out.len(), format.frame_bytes());
        let s: Vec<i16> = out
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        // (heard, said) pairs: 50|-2, 100|-4, 150|-2, 200|0, 100|0, 0|0 …
        assert_eq!(&s[..12], &[50, -2, 100, -4, 150, -2, 200, 0, 100, 0, 0, 0]);
        let narrow = StreamFormat {
            rate: Rate::Narrow,
            direction: StreamDirection::In,
        };
        enc.encode(narrow, &frame, &mut out);
        assert_eq!(out.len(), 320);
        assert_eq!(&out[..4], &[100, 0, 200, 0]);
    }

    #[test]
    fn frames_sent_back_must_be_one_frame_and_are_brought_to_8_khz() {
        let wide = StreamFormat {
            rate: Rate::Wide,
            direction: StreamDirection::In,
        };
        let err = decode_play_frame(wide, &[0; 320]).expect_err("8 kHz size on a 16 kHz stream");
        assert_eq!((err.got, err.want, err.rate), (320, 640, 16000));
        assert!(err.to_string().contains("640 bytes"));
        let mut bytes = Vec::new();
        for i in 0..320i16 {
            bytes.extend_from_slice(&(i * 2).to_le_bytes());
        }
        let pcm = decode_play_frame(wide, &bytes).expect("one frame");
        assert_eq!(pcm[0], 1);
        assert_eq!(pcm[1], 5);
        let narrow = StreamFormat {
            rate: Rate::Narrow,
            direction: StreamDirection::Both,
        };
        assert!(decode_play_frame(narrow, &[]).is_err());
        assert!(decode_play_frame(narrow, &[1; 320]).is_ok());
    }

    #[test]
    fn mixing_saturates() {
        let mut a = [30000i16, -30000, 5];
        mix_into(&mut a, &[10000, -10000, 5]);
        assert_eq!(a, [i16::MAX, i16::MIN, 10]);
        assert_eq!(PlayMode::from_name("mix"), Some(PlayMode::Mix));
        assert_eq!(PlayMode::from_name("loud"), None);
    }
}
