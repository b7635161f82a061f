//! DTMF: RFC 4733 telephone-event payloads (encode digits into the packet
//! train a sender emits, decode received events into digits once each) and
//! in-band dual-tone generation for legs that did not negotiate
//! telephone-event.
//!
//! A digit is sent as event packets every 20 ms sharing one RTP timestamp,
//! with a growing duration; the last packet carries the E bit and is sent
//! three times (RFC 4733 §2.5.1.4). A receiver reports each event once, keyed
//! on its RTP timestamp, so retransmitted end packets are not doubled.

use crate::tone::{FRAME_SAMPLES, SAMPLE_RATE};
use std::collections::VecDeque;
use std::f32::consts::TAU;

/// Errors decoding a telephone-event payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than the 4-byte event block.
    #[error("telephone-event payload too short ({0} bytes)")]
    TooShort(usize),
}

/// The event code (RFC 4733 §3.2) of a DTMF character `0-9 * # A-D`
/// (lower-case `a-d` accepted), or `None` for anything else.
#[must_use]
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF character of event code `event`, or `None` if it is not 0-15.
#[must_use]
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One RFC 4733 event block (the 4-byte telephone-event payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// The E bit: this is (a repetition of) the final packet of the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units (samples at 8 kHz).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload (redundant blocks after it
    /// are ignored).
    ///
    /// # Errors
    /// [`DtmfError::TooShort`] when fewer than four bytes are given.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte wire form.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        let flags = (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f);
        [self.event, flags, d[0], d[1]]
    }
}

/// The event blocks a sender emits for one digit lasting `duration` samples,
/// one per `packet_samples` (usually 160 = 20 ms), the last three being the
/// end packet repeated. The caller gives all of them one RTP timestamp (the
/// event start) and sets the marker bit on the first.
#[must_use]
pub fn encode_event(event: u8, duration: u16, packet_samples: u16) -> Vec<TelephoneEvent> {
    let step = packet_samples.max(1);
    let mut out = Vec::new();
    let mut d = step.min(duration.max(1));
    while d < duration {
        out.push(TelephoneEvent {
            event,
            end: false,
            volume: 10,
            duration: d,
        });
        d = d.saturating_add(step);
    }
    for _ in 0..3 {
        out.push(TelephoneEvent {
            event,
            end: true,
            volume: 10,
            duration: duration.max(1),
        });
    }
    out
}

/// Turns received telephone-event packets into digits, once per event.
#[derive(Clone, Debug, Default)]
pub struct DtmfReceiver {
    /// (RTP timestamp, event) of the last event reported.
    last: Option<(u32, u8)>,
}

impl DtmfReceiver {
    /// A receiver that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet (its RTP timestamp and payload); returns the digit
    /// when this packet is the first seen of a new event. Malformed payloads
    /// and non-DTMF events (codes above 15) yield `None`.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let ev = TelephoneEvent::parse(payload).ok()?;
        let digit = event_to_digit(ev.event)?;
        if self.last == Some((timestamp, ev.event)) {
            return None;
        }
        self.last = Some((timestamp, ev.event));
        Some(digit)
    }
}

/// The low-group and high-group frequencies (Hz) of a DTMF character.
#[must_use]
pub fn dtmf_frequencies(digit: char) -> Option<(f32, f32)> {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (r, c) = match digit_to_event(digit)? {
        1 => (0, 0),
        2 => (0, 1),
        3 => (0, 2),
        12 => (0, 3),
        4 => (1, 0),
        5 => (1, 1),
        6 => (1, 2),
        13 => (1, 3),
        7 => (2, 0),
        8 => (2, 1),
        9 => (2, 2),
        14 => (2, 3),
        10 => (3, 0),
        0 => (3, 1),
        11 => (3, 2),
        _ => (3, 3), // 15 = D
    };
    Some((LOW[r], HIGH[c]))
}

/// Default tone length of a sent digit (100 ms) in samples.
pub const DIGIT_SAMPLES: u16 = 800;
/// Default pause after a sent digit (60 ms) in samples.
pub const GAP_SAMPLES: u16 = 480;

/// What a [`DtmfSender`] wants sent in the next 20 ms.
#[derive(Clone, Debug, PartialEq)]
pub enum DtmfFrame {
    /// An RFC 4733 packet: `start` is true for the first packet of the event
    /// (marker bit, and the event's RTP timestamp is taken now).
    Event {
        /// The block to send.
        block: TelephoneEvent,
        /// First packet of the event.
        start: bool,
    },
    /// 20 ms of in-band audio (a DTMF dual tone or the pause after one).
    Audio(Vec<i16>),
    /// The pause between digits when sending events: send nothing.
    Gap,
}

/// Paces queued digits into 20 ms frames, either as RFC 4733 events or as
/// in-band tones.
#[derive(Clone, Debug, Default)]
pub struct DtmfSender {
    queue: VecDeque<char>,
    current: Option<Current>,
}

#[derive(Clone, Debug)]
struct Current {
    digit: char,
    /// Frames emitted so far for this digit (tone part then pause).
    frame: u16,
    /// Remaining precomputed event packets (RFC 4733 mode).
    events: VecDeque<TelephoneEvent>,
    started: bool,
}

impl DtmfSender {
    /// An idle sender.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues the valid DTMF characters of `digits` (others, such as `,` or
    /// spaces, are skipped); returns how many were queued.
    pub fn push(&mut self, digits: &str) -> usize {
        let before = self.queue.len();
        self.queue
            .extend(digits.chars().filter(|c| digit_to_event(*c).is_some()));
        self.queue.len() - before
    }

    /// True while digits are queued or being sent.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// The next 20 ms frame, or `None` when idle. `events` selects RFC 4733
    /// (the far end negotiated telephone-event) over in-band tones.
    pub fn next_frame(&mut self, events: bool) -> Option<DtmfFrame> {
        let frame_samples = FRAME_SAMPLES as u16;
        let tone_frames = DIGIT_SAMPLES / frame_samples;
        let total_frames = (DIGIT_SAMPLES + GAP_SAMPLES) / frame_samples;
        if self.current.is_none() {
            let digit = self.queue.pop_front()?;
            let event = digit_to_event(digit)?;
            self.current = Some(Current {
                digit,
                frame: 0,
                events: encode_event(event, DIGIT_SAMPLES, frame_samples).into(),
                started: false,
            });
        }
        let cur = self.current.as_mut()?;
        let out = if events {
            match cur.events.pop_front() {
                Some(block) => {
                    let start = !cur.started;
                    cur.started = true;
                    DtmfFrame::Event { block, start }
                }
                None => DtmfFrame::Gap,
            }
        } else if cur.frame < tone_frames {
            DtmfFrame::Audio(dtmf_samples(
                cur.digit,
                u32::from(cur.frame) * FRAME_SAMPLES as u32,
            ))
        } else {
            DtmfFrame::Audio(vec![0; FRAME_SAMPLES])
        };
        cur.frame += 1;
        // Event mode: 4 growing packets + 3 end packets = 7 frames, then the
        // pause; in-band: 5 tone frames then 3 silent ones.
        let done = if events {
            cur.events.is_empty() && cur.frame >= total_frames.max(7 + 3)
        } else {
            cur.frame >= total_frames
        };
        if done {
            self.current = None;
        }
        Some(out)
    }
}

/// 20 ms of the in-band dual tone for `digit`, starting `offset` samples into
/// the tone (silence for a character that is not DTMF).
#[must_use]
pub fn dtmf_samples(digit: char, offset: u32) -> Vec<i16> {
    let Some((lo, hi)) = dtmf_frequencies(digit) else {
        return vec![0; FRAME_SAMPLES];
    };
    (0..FRAME_SAMPLES as u32)
        .map(|i| {
            let t = (offset + i) as f32 / SAMPLE_RATE as f32;
            // High group 2 dB above the low group (twist), about -10 dBFS.
            (7000.0 * (TAU * lo * t).sin() + 8800.0 * (TAU * hi * t).sin()) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::goertzel_amplitude;

    #[test]
    fn digit_codes_round_trip() {
        for c in "0123456789*#ABCD".chars() {
            let e = digit_to_event(c).expect("dtmf");
            assert_eq!(event_to_digit(e), Some(c));
        }
        assert_eq!(digit_to_event('a'), Some(12));
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn event_wire_format() {
        let ev = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(ev.to_bytes(), [5, 0x8a, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::TooShort(2)));
    }

    #[test]
    fn encode_has_growing_durations_and_three_ends() {
        let evs = encode_event(1, 800, 160);
        let d: Vec<u16> = evs.iter().map(|e| e.duration).collect();
        assert_eq!(d, vec![160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(!evs[0].end);
    }

    #[test]
    fn encode_decode_dedups_retransmitted_ends() {
        let mut rx = DtmfReceiver::new();
        let mut got = String::new();
        for (i, c) in "159#".chars().enumerate() {
            let ts = 1000 + i as u32 * 2000;
            for ev in encode_event(digit_to_event(c).expect("dtmf"), 800, 160) {
                if let Some(d) = rx.on_packet(ts, &ev.to_bytes()) {
                    got.push(d);
                }
            }
            // A late duplicate of the end packet is still the same event.
            let end = TelephoneEvent {
                event: digit_to_event(c).expect("dtmf"),
                end: true,
                volume: 10,
                duration: 800,
            };
            assert_eq!(rx.on_packet(ts, &end.to_bytes()), None);
        }
        assert_eq!(got, "159#");
        // Same digit twice in a row is two events (different timestamps).
        let mut rx = DtmfReceiver::new();
        let p = TelephoneEvent::parse(&[1, 0x8a, 3, 0x20])
            .expect("ok")
            .to_bytes();
        assert_eq!(rx.on_packet(10, &p), Some('1'));
        assert_eq!(rx.on_packet(10, &p), None);
        assert_eq!(rx.on_packet(2000, &p), Some('1'));
        assert_eq!(rx.on_packet(3000, &[1]), None);
        assert_eq!(rx.on_packet(4000, &[200, 0, 0, 0]), None);
    }

    #[test]
    fn sender_in_event_mode() {
        let mut tx = DtmfSender::new();
        assert_eq!(tx.push("1, 2x"), 2);
        let mut frames = Vec::new();
        for _ in 0..100 {
            match tx.next_frame(true) {
                Some(f) => frames.push(f),
                None => break,
            }
        }
        assert!(!tx.is_busy());
        let starts = frames
            .iter()
            .filter(|f| matches!(f, DtmfFrame::Event { start: true, .. }))
            .count();
        assert_eq!(starts, 2);
        let events = frames
            .iter()
            .filter(|f| matches!(f, DtmfFrame::Event { .. }))
            .count();
        assert_eq!(events, 14);
        assert!(frames.contains(&DtmfFrame::Gap));
    }

    #[test]
    fn sender_in_band_tones_are_the_right_pair() {
        let mut tx = DtmfSender::new();
        tx.push("5");
        let mut audio = Vec::new();
        for _ in 0..20 {
            match tx.next_frame(false) {
                Some(DtmfFrame::Audio(s)) => audio.extend(s),
                Some(other) => panic!("unexpected {other:?}"),
                None => break,
            }
        }
        assert_eq!(audio.len(), 1280); // 100 ms tone + 60 ms pause
        let tone = &audio[..800];
        assert!(goertzel_amplitude(tone, 770.0, 8000.0) > 5000.0);
        assert!(goertzel_amplitude(tone, 1336.0, 8000.0) > 5000.0);
        assert!(goertzel_amplitude(tone, 697.0, 8000.0) < 1500.0);
        assert!(goertzel_amplitude(tone, 1209.0, 8000.0) < 1500.0);
        assert!(audio[800..].iter().all(|&s| s == 0));
    }
}
