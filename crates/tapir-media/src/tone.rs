//! Generated audio at 8 kHz: the call-progress tones tapir plays (dial tone,
//! ringback, busy, reorder; North American precise-tone plan, ANSI T1.401),
//! the special information tones (SIT: three rising tones, ITU-T E.180,
//! with Telcordia's frequencies and durations that say why a call failed)
//! and a built-in hold-music melody synthesised on the fly, plus a Goertzel
//! filter to measure what a stream contains (used by tests and diagnostics).
//!
//! Generators are plain state machines: [`ToneGenerator::fill`] writes the
//! next samples into a buffer, so the engine paces them with its own timer.

use std::f32::consts::TAU;
use std::sync::{Arc, OnceLock};

/// The sample rate of everything in this crate (G.711 narrowband).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;

/// The tones tapir can play towards a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToneKind {
    /// Dial tone: 350 + 440 Hz, continuous.
    Dialtone,
    /// Ringback: 440 + 480 Hz, 2 s on, 4 s off.
    Ringback,
    /// Busy: 480 + 620 Hz, 0.5 s on, 0.5 s off.
    Busy,
    /// Reorder (fast busy): 480 + 620 Hz, 0.25 s on, 0.25 s off.
    Reorder,
    /// Special information tone of an intercept (Telcordia's IC: a vacant,
    /// changed or disconnected number): 913.8 Hz for 274 ms, 1370.6 Hz for
    /// 274 ms, 1776.7 Hz for 380 ms, then 1 s of silence.
    SitIntercept,
    /// Special information tone of "no circuit" (Telcordia's NC): the same
    /// three frequencies for 380 ms each, then 1 s of silence.
    SitNoCircuit,
    /// Music on hold: a generated melody (no file needed).
    HoldMusic,
}

/// Peak amplitude of each component of a dual tone (about -18 dBFS).
const TONE_AMPLITUDE: f32 = 4000.0;

/// The low frequencies of Telcordia's special information tones (Hz): the
/// first, second and third segment.
pub const SIT_HZ: [f32; 3] = [913.8, 1370.6, 1776.7];

/// A short SIT segment (ms).
const SIT_SHORT_MS: u32 = 274;
/// A long SIT segment (ms); the third segment is always long.
const SIT_LONG_MS: u32 = 380;
/// The silence after the three segments, before they repeat (ms). A
/// carrier would play its announcement there; tapir has none.
const SIT_SILENCE_MS: u32 = 1000;

impl ToneKind {
    /// The two frequencies (Hz) and the cadence (on, off in ms; `off == 0`
    /// means continuous) of a dual call-progress tone, or `None` for hold
    /// music and the special information tones.
    #[must_use]
    pub fn plan(self) -> Option<(f32, f32, u32, u32)> {
        match self {
            ToneKind::Dialtone => Some((350.0, 440.0, 1000, 0)),
            ToneKind::Ringback => Some((440.0, 480.0, 2000, 4000)),
            ToneKind::Busy => Some((480.0, 620.0, 500, 500)),
            ToneKind::Reorder => Some((480.0, 620.0, 250, 250)),
            ToneKind::SitIntercept | ToneKind::SitNoCircuit | ToneKind::HoldMusic => None,
        }
    }

    /// The three segments of a special information tone, each (frequency
    /// in Hz, duration in ms), in the order played; `None` for the other
    /// tones. The segments are followed by 1 s of silence.
    #[must_use]
    pub fn sit_segments(self) -> Option<[(f32, u32); 3]> {
        let [f1, f2, f3] = SIT_HZ;
        match self {
            ToneKind::SitIntercept => {
                Some([(f1, SIT_SHORT_MS), (f2, SIT_SHORT_MS), (f3, SIT_LONG_MS)])
            }
            ToneKind::SitNoCircuit => {
                Some([(f1, SIT_LONG_MS), (f2, SIT_LONG_MS), (f3, SIT_LONG_MS)])
            }
            _ => None,
        }
    }
}

/// A running generator for one [`ToneKind`], starting at the beginning of its
/// cadence (ringback starts with its 2 s "on" part).
///
/// Every tone is periodic, so each is rendered once per process (one full
/// cadence cycle, or the whole melody loop: at most 9.6 s, 150 KiB) and a
/// generator only copies from that table: playing a tone to a leg costs a
/// copy, not trigonometry.
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    kind: ToneKind,
    pos: usize,
    cycle: Arc<[i16]>,
}

fn cycle_of(kind: ToneKind) -> Arc<[i16]> {
    static CYCLES: [OnceLock<Arc<[i16]>>; 7] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = match kind {
        ToneKind::Dialtone => &CYCLES[0],
        ToneKind::Ringback => &CYCLES[1],
        ToneKind::Busy => &CYCLES[2],
        ToneKind::Reorder => &CYCLES[3],
        ToneKind::HoldMusic => &CYCLES[4],
        ToneKind::SitIntercept => &CYCLES[5],
        ToneKind::SitNoCircuit => &CYCLES[6],
    };
    Arc::clone(slot.get_or_init(|| render_cycle(kind).into()))
}

/// One full period of a tone, cadence included.
fn render_cycle(kind: ToneKind) -> Vec<i16> {
    if let Some(segments) = kind.sit_segments() {
        return render_sit(&segments);
    }
    match kind.plan() {
        Some((f1, f2, on_ms, off_ms)) => {
            // The dual tones are periodic within one second at 8 kHz (all
            // frequencies are multiples of 10 Hz) and every cadence period is
            // a multiple of 250 ms at which both components are back in phase.
            let period = if off_ms == 0 {
                SAMPLE_RATE
            } else {
                (on_ms + off_ms) * SAMPLE_RATE / 1000
            };
            let on = on_ms * SAMPLE_RATE / 1000;
            (0..period)
                .map(|n| {
                    if off_ms != 0 && n >= on {
                        return 0;
                    }
                    let t = (n % SAMPLE_RATE) as f32 / SAMPLE_RATE as f32;
                    (TONE_AMPLITUDE * ((TAU * f1 * t).sin() + (TAU * f2 * t).sin())) as i16
                })
                .collect()
        }
        None => {
            let mut v = vec![0i16; HoldMusic::LOOP_SAMPLES];
            HoldMusic::default().fill(&mut v);
            v
        }
    }
}

/// The three segments of a special information tone and its silence. The
/// phase runs on across the segments, so the changes of frequency do not
/// click.
fn render_sit(segments: &[(f32, u32)]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut phase = 0.0f32;
    for &(hz, ms) in segments {
        let step = TAU * hz / SAMPLE_RATE as f32;
        for _ in 0..ms * SAMPLE_RATE / 1000 {
            out.push((TONE_AMPLITUDE * phase.sin()) as i16);
            phase = (phase + step) % TAU;
        }
    }
    out.resize(
        out.len() + (SIT_SILENCE_MS * SAMPLE_RATE / 1000) as usize,
        0,
    );
    out
}

impl ToneGenerator {
    /// A generator positioned at the start of `kind`.
    #[must_use]
    pub fn new(kind: ToneKind) -> Self {
        Self {
            kind,
            pos: 0,
            cycle: cycle_of(kind),
        }
    }

    /// A [`ToneKind::HoldMusic`] generator that loops `samples` (8 kHz mono,
    /// e.g. from [`crate::wav::decode_wav`]); an empty buffer falls back to
    /// the generated melody.
    #[must_use]
    pub fn with_hold_music(samples: Arc<[i16]>) -> Self {
        let mut g = Self::new(ToneKind::HoldMusic);
        if !samples.is_empty() {
            g.cycle = samples;
        }
        g
    }

    /// The tone this generator plays.
    #[must_use]
    pub fn kind(&self) -> ToneKind {
        self.kind
    }

    /// Writes the next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let len = self.cycle.len();
        if len == 0 {
            out.fill(0);
            return;
        }
        let mut done = 0;
        while done < out.len() {
            let pos = self.pos % len;
            let n = (len - pos).min(out.len() - done);
            if let (Some(dst), Some(src)) =
                (out.get_mut(done..done + n), self.cycle.get(pos..pos + n))
            {
                dst.copy_from_slice(src);
            }
            done += n;
            self.pos = (pos + n) % len;
        }
    }
}

/// Equal-tempered frequency of a MIDI note number.
fn midi_hz(note: u8) -> f32 {
    440.0 * 2f32.powf((f32::from(note) - 69.0) / 12.0)
}

/// The hold-music melody: a slow arpeggio over I–vi–IV–V in C major with a
/// soft bass, bell-like notes (fundamental + a little second harmonic with an
/// exponential decay), eight notes per chord at 300 ms each (~9.6 s loop).
#[derive(Clone, Debug, Default)]
struct HoldMusic {
    n: u64,
}

/// Chord roots (MIDI) for the bass and the arpeggio notes per chord.
const CHORDS: [(u8, [u8; 8]); 4] = [
    (48, [60, 64, 67, 72, 76, 72, 67, 64]), // C
    (45, [57, 60, 64, 69, 72, 69, 64, 60]), // Am
    (41, [53, 57, 60, 65, 69, 65, 60, 57]), // F
    (43, [55, 59, 62, 67, 71, 67, 62, 59]), // G
];
const NOTE_SAMPLES: u64 = 2400; // 300 ms

impl HoldMusic {
    /// One loop: four chords of eight notes.
    const LOOP_SAMPLES: usize = 4 * 8 * NOTE_SAMPLES as usize;

    fn fill(&mut self, out: &mut [i16]) {
        let rate = SAMPLE_RATE as f32;
        for s in out.iter_mut() {
            let step = self.n / NOTE_SAMPLES;
            let chord = &CHORDS[((step / 8) % 4) as usize];
            let note = chord.1[(step % 8) as usize];
            let t_note = (self.n % NOTE_SAMPLES) as f32 / rate;
            let t_chord = (self.n % (NOTE_SAMPLES * 8)) as f32 / rate;
            let f = midi_hz(note);
            let attack = (t_note / 0.01).min(1.0);
            let env = attack * (-t_note * 4.0).exp();
            let melody = env * ((TAU * f * t_note).sin() + 0.25 * (TAU * 2.0 * f * t_note).sin());
            let fb = midi_hz(chord.0);
            let bass_env = (t_chord / 0.02).min(1.0) * (-t_chord * 0.6).exp();
            let bass = bass_env * (TAU * fb * t_chord).sin();
            *s = (5000.0 * melody + 3000.0 * bass) as i16;
            self.n = self.n.wrapping_add(1);
        }
    }
}

/// A tone an application asked for (`lineGenerateTone`): `freqs` (Hz)
/// together, `on_ms` on and `off_ms` off (`0`: continuous), for
/// `duration_ms` in all, as 8 kHz samples. Each component has the
/// call-progress tones' amplitude, shared out so that the sum cannot clip;
/// a few milliseconds of ramp at each edge keep it from clicking.
#[must_use]
pub fn render_tone(freqs: &[u32], on_ms: u32, off_ms: u32, duration_ms: u32) -> Vec<i16> {
    let total = (duration_ms as usize) * (SAMPLE_RATE as usize) / 1000;
    let on = ((on_ms.max(1) as usize) * (SAMPLE_RATE as usize) / 1000).max(1);
    let period = on + (off_ms as usize) * (SAMPLE_RATE as usize) / 1000;
    let amp = TONE_AMPLITUDE * 2.0 / freqs.len().max(2) as f32;
    let ramp = 40usize;
    // One rotating phasor per frequency (a multiply-add per sample instead
    // of a sine: this runs on the signalling loop), renormalised every
    // frame so that rounding cannot let it drift.
    let mut osc: Vec<[f32; 4]> = freqs
        .iter()
        .map(|&f| {
            let w = TAU * f as f32 / SAMPLE_RATE as f32;
            [1.0, 0.0, w.cos(), w.sin()]
        })
        .collect();
    let mut out = Vec::with_capacity(total);
    for n in 0..total {
        let mut v = 0.0f32;
        for o in &mut osc {
            v += o[1];
            let (c, s) = (o[0] * o[2] - o[1] * o[3], o[1] * o[2] + o[0] * o[3]);
            o[0] = c;
            o[1] = s;
            if n % FRAME_SAMPLES == 0 {
                let r = (c * c + s * s).sqrt().max(f32::EPSILON);
                o[0] /= r;
                o[1] /= r;
            }
        }
        let k = n % period;
        if k >= on {
            out.push(0);
            continue;
        }
        let edge = k.min(on - 1 - k).min(total - 1 - n).min(ramp) as f32 / ramp as f32;
        out.push((amp * edge * v) as i16);
    }
    out
}

/// Estimated amplitude (in sample units) of the `freq` Hz component of
/// `samples` taken at `rate` Hz, by the Goertzel algorithm. A pure sine of
/// amplitude A at `freq` yields about A when the block holds whole periods.
#[must_use]
pub fn goertzel_amplitude(samples: &[i16], freq: f32, rate: f32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / samples.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(kind: ToneKind, ms: u32) -> Vec<i16> {
        let mut g = ToneGenerator::new(kind);
        let mut v = vec![0i16; (ms * SAMPLE_RATE / 1000) as usize];
        g.fill(&mut v);
        v
    }

    fn amp(s: &[i16], f: f32) -> f32 {
        goertzel_amplitude(s, f, SAMPLE_RATE as f32)
    }

    #[test]
    fn dialtone_has_350_and_440() {
        let s = render(ToneKind::Dialtone, 500);
        assert!(amp(&s, 350.0) > 3000.0, "{}", amp(&s, 350.0));
        assert!(amp(&s, 440.0) > 3000.0);
        assert!(amp(&s, 480.0) < 300.0);
        assert!(amp(&s, 1000.0) < 300.0);
    }

    #[test]
    fn ringback_cadence_and_frequencies() {
        let s = render(ToneKind::Ringback, 6000);
        let on = &s[..16000];
        let off = &s[16000..48000];
        assert!(amp(on, 440.0) > 3000.0);
        assert!(amp(on, 480.0) > 3000.0);
        assert!(amp(on, 620.0) < 300.0);
        assert!(off.iter().all(|&x| x == 0));
    }

    #[test]
    fn busy_and_reorder_cadences() {
        let b = render(ToneKind::Busy, 1000);
        assert!(amp(&b[..4000], 480.0) > 3000.0);
        assert!(amp(&b[..4000], 620.0) > 3000.0);
        assert!(b[4000..].iter().all(|&x| x == 0));
        let r = render(ToneKind::Reorder, 500);
        assert!(amp(&r[..2000], 620.0) > 3000.0);
        assert!(r[2000..4000].iter().all(|&x| x == 0));
        assert!(amp(&r[..2000], 350.0) < 300.0);
    }

    /// The frequency (of `candidates`) that dominates `s`.
    fn dominant(s: &[i16], candidates: &[f32]) -> f32 {
        candidates
            .iter()
            .copied()
            .max_by(|a, b| amp(s, *a).total_cmp(&amp(s, *b)))
            .unwrap_or(0.0)
    }

    /// ITU-T E.180: three rising segments; Telcordia's encoding: 913.8,
    /// 1370.6 and 1776.7 Hz, short (274 ms) or long (380 ms), the third
    /// always long. Intercept is short-short-long, no circuit long-long-long.
    #[test]
    fn special_information_tones_rise_in_three_segments() {
        // Telcordia's high frequencies, and reorder's, must be absent.
        let others = [985.2, 1428.5, 480.0, 620.0];
        for (kind, durations) in [
            (ToneKind::SitIntercept, [274u32, 274, 380]),
            (ToneKind::SitNoCircuit, [380, 380, 380]),
        ] {
            let s = render(kind, 3000);
            let mut candidates = SIT_HZ.to_vec();
            candidates.extend(others);
            let mut start = 0usize;
            for (i, ms) in durations.into_iter().enumerate() {
                let end = start + (ms * SAMPLE_RATE / 1000) as usize;
                // The segment's middle (away from the edges) is its frequency alone.
                let inner = &s[start + 80..end - 80];
                assert_eq!(
                    dominant(inner, &candidates),
                    SIT_HZ[i],
                    "{kind:?} segment {i}"
                );
                assert!(amp(inner, SIT_HZ[i]) > 3500.0, "{kind:?} segment {i}");
                for f in others {
                    assert!(amp(inner, f) < 300.0, "{kind:?} segment {i}: {f} Hz");
                }
                // The next segment (or the silence) starts where this one ends.
                let after = &s[end + 40..end + 200];
                assert!(
                    amp(after, SIT_HZ[i]) < 1000.0,
                    "{kind:?} segment {i} ends at {ms} ms"
                );
                start = end;
            }
            // One second of silence, then the three segments again.
            assert!(s[start..start + 8000].iter().all(|&x| x == 0), "{kind:?}");
            let again = start + 8000;
            assert_eq!(
                dominant(&s[again + 80..again + 2000], &candidates),
                SIT_HZ[0]
            );
        }
        assert_eq!(ToneKind::Reorder.sit_segments(), None);
        assert_eq!(cycle_of(ToneKind::SitIntercept).len(), (928 + 1000) * 8);
    }

    #[test]
    fn hold_music_is_audible_tonal_and_not_clipping() {
        let s = render(ToneKind::HoldMusic, 10_000);
        let rms = (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
        assert!(rms > 500.0 && rms < 8000.0, "rms {rms}");
        assert!(s.iter().all(|&x| x.abs() < 9000));
        // The first note is middle C (261.6 Hz).
        assert!(amp(&s[80..2400], 261.63) > 1000.0);
        // It changes: the second note is E4.
        assert!(amp(&s[2480..4800], 329.63) > 1000.0);
    }

    #[test]
    fn generators_loop_seamlessly() {
        for kind in [
            ToneKind::Dialtone,
            ToneKind::Ringback,
            ToneKind::Busy,
            ToneKind::Reorder,
            ToneKind::SitIntercept,
            ToneKind::SitNoCircuit,
            ToneKind::HoldMusic,
        ] {
            let len = cycle_of(kind).len();
            let mut g = ToneGenerator::new(kind);
            let mut v = vec![0i16; 2 * len + 37];
            // Odd chunk sizes across the wrap.
            for chunk in v.chunks_mut(157) {
                g.fill(chunk);
            }
            assert_eq!(v[..len], v[len..2 * len], "{kind:?}");
            assert_eq!(v[..37], v[2 * len..], "{kind:?}");
        }
        assert_eq!(cycle_of(ToneKind::HoldMusic).len(), 76_800);
        assert_eq!(cycle_of(ToneKind::Ringback).len(), 48_000);
    }

    #[test]
    fn file_hold_music_loops() {
        let file: Arc<[i16]> = vec![1i16, 2, 3].into();
        let mut g = ToneGenerator::with_hold_music(file);
        let mut v = [0i16; 7];
        g.fill(&mut v);
        assert_eq!(v, [1, 2, 3, 1, 2, 3, 1]);
        let mut g = ToneGenerator::with_hold_music(Vec::new().into());
        g.fill(&mut v);
        assert_eq!(g.kind(), ToneKind::HoldMusic);
    }

    #[test]
    fn an_asked_tone_has_its_frequencies_and_cadence() {
        let t = render_tone(&[480, 620], 500, 500, 2000);
        assert_eq!(t.len(), 16_000);
        let on = &t[800..3200];
        let off = &t[4800..7200];
        assert!(goertzel_amplitude(on, 480.0, 8000.0) > 1000.0);
        assert!(goertzel_amplitude(on, 620.0, 8000.0) > 1000.0);
        assert!(goertzel_amplitude(off, 480.0, 8000.0) < 1.0);
        // The longest tone keeps its level to the end (no phasor drift).
        let long = render_tone(&[500, 1000, 2000], 10_000, 0, 10_000);
        let end = &long[long.len() - 2000..long.len() - 400];
        for f in [500.0, 1000.0, 2000.0] {
            let a = goertzel_amplitude(end, f, 8000.0);
            assert!((2500.0..2800.0).contains(&a), "{f} Hz at the end: {a}");
        }
        let beep = render_tone(&[1000], 200, 0, 200);
        assert_eq!(beep.len(), 1600);
        assert!(goertzel_amplitude(&beep[400..1200], 1000.0, 8000.0) > 3000.0);
    }

    #[test]
    fn goertzel_measures_a_pure_sine() {
        let s: Vec<i16> = (0..8000)
            .map(|n| (1000.0 * (TAU * 1000.0 * n as f32 / 8000.0).sin()) as i16)
            .collect();
        let a = amp(&s, 1000.0);
        assert!((a - 1000.0).abs() < 20.0, "{a}");
        assert!(amp(&s, 1500.0) < 10.0);
        assert_eq!(goertzel_amplitude(&[], 1000.0, 8000.0), 0.0);
    }
}
