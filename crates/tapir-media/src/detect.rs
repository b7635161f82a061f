//! Tone and media-mode detection in what a leg's device sends, for TAPI's
//! `lineMonitorTones` and `lineMonitorMedia`: a Goertzel filter per watched
//! frequency over 20 ms blocks, a watched tone reported once it lasted its
//! duration, and a fax's calling tone (CNG, ITU-T T.30: 1100 Hz, 0.5 s on,
//! 3 s off) reported as `g3fax` once its cadence repeats.
//!
//! Cost is bounded by what the switch allows to be watched per leg (a few
//! tones of a few frequencies each): per 20 ms block one Goertzel pass of
//! 160 samples per distinct frequency.

use crate::tone::{FRAME_SAMPLES, SAMPLE_RATE};
use std::f32::consts::TAU;

/// The fax calling tone's frequency (Hz).
pub const CNG_HZ: u32 = 1100;

/// A block must carry at least this mean power (sample units squared,
/// about -50 dBFS) to hold a tone at all: silence and line noise never do.
const MIN_POWER: f32 = 100.0 * 100.0;

/// The share of a block's power each of a tone's `n` frequencies must hold
/// (of the `1/n` a clean tone gives each).
const SHARE_OF_IDEAL: f32 = 0.5;

/// The share of the block's power a tone's frequencies must hold together
/// (speech and music spread theirs).
const TOTAL_SHARE: f32 = 0.7;

/// Power of the `freq` Hz component of a block, normalised so that a pure
/// sine at `freq` gives the block's mean power (A²/2 for amplitude A).
fn component_power(block: &[i16], freq: u32) -> f32 {
    let n = block.len() as f32;
    if n == 0.0 {
        return 0.0;
    }
    let coeff = 2.0 * (TAU * freq as f32 / SAMPLE_RATE as f32).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s0 = f32::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    // |X|² of a sine of amplitude A over n samples is (A n / 2)²; its mean
    // power is A² / 2.
    2.0 * mag2 / (n * n)
}

fn mean_power(block: &[i16]) -> f32 {
    if block.is_empty() {
        return 0.0;
    }
    block
        .iter()
        .map(|&x| f32::from(x) * f32::from(x))
        .sum::<f32>()
        / block.len() as f32
}

/// Whether a block holds every one of `freqs` at once (and little else).
fn holds(block: &[i16], power: f32, freqs: &[u32]) -> bool {
    if power < MIN_POWER || freqs.is_empty() {
        return false;
    }
    let ideal = 1.0 / freqs.len() as f32;
    let mut total = 0.0;
    for &f in freqs {
        let share = component_power(block, f) / power;
        if share < ideal * SHARE_OF_IDEAL {
            return false;
        }
        total += share;
    }
    total >= TOTAL_SHARE
}

/// A tone to report: these frequencies together for at least this long.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ToneSpec {
    /// Its frequencies (Hz).
    pub frequencies: Vec<u32>,
    /// How long it must last (ms).
    pub duration_ms: u32,
}

/// What a [`Detector`] found in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detection {
    /// The watched tone at this index lasted its duration.
    Tone(usize),
    /// A fax's calling tone, with its cadence.
    Fax,
}

#[derive(Clone, Debug)]
struct ToneState {
    spec: ToneSpec,
    /// Milliseconds it has been present without a break.
    run_ms: u32,
    /// Reported for this run (reported again after a break).
    reported: bool,
}

/// Where the fax calling tone's cadence detection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cng {
    /// Waiting for 1100 Hz.
    Idle,
    /// 1100 Hz for this long so far (ms).
    On(u32),
    /// 1100 Hz for longer than a burst: waiting for it to stop.
    Stuck,
    /// A first burst of the right length ended this long ago (ms).
    Off(u32),
    /// The second burst after a gap of the right length, this long so far.
    Again(u32),
    /// Reported; nothing more to do.
    Done,
}

/// A CNG burst lasts 0.5 s (±15 % in T.30); these bounds are looser, as
/// packet loss or jitter can shorten or lengthen one by a frame or two.
const CNG_ON_MS: (u32, u32) = (350, 800);
/// The silence between bursts lasts 3 s (±15 %).
const CNG_OFF_MS: (u32, u32) = (2_300, 4_000);
/// How long the second burst must last before the cadence counts.
const CNG_AGAIN_MS: u32 = 200;

/// The detectors of one leg: its watched tones and, when asked, the fax
/// calling tone. Feed it what the device sends with [`Detector::push`].
#[derive(Clone, Debug)]
pub struct Detector {
    tones: Vec<ToneState>,
    cng: Option<Cng>,
    block: Vec<i16>,
    /// When audio last came (ms on the caller's clock).
    last_ms: Option<u64>,
}

/// Audio that stops for longer than this (ms) is a silence of that length:
/// phones with voice activity detection send nothing while quiet (a fax's
/// calling tone's 3 s pauses included).
const GAP_MS: u64 = 100;

impl Detector {
    /// Detectors for these tones (reported by index) and, with `fax`, CNG.
    #[must_use]
    pub fn new(tones: Vec<ToneSpec>, fax: bool) -> Detector {
        Detector {
            tones: tones
                .into_iter()
                .map(|spec| ToneState {
                    spec,
                    run_ms: 0,
                    reported: false,
                })
                .collect(),
            cng: fax.then_some(Cng::Idle),
            block: Vec::with_capacity(FRAME_SAMPLES),
            last_ms: None,
        }
    }

    /// Whether it watches anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tones.is_empty() && self.cng.is_none()
    }

    /// The watched tone at `index`.
    #[must_use]
    pub fn tone(&self, index: usize) -> Option<&ToneSpec> {
        self.tones.get(index).map(|t| &t.spec)
    }

    /// Audio the device sent (8 kHz), any length, arriving at `now_ms` (a
    /// millisecond clock of the caller's); what was found in each 20 ms
    /// block it completed goes to `found`. A pause in the audio longer than
    /// [`GAP_MS`] counts as that much silence.
    pub fn push(&mut self, pcm: &[i16], now_ms: u64, found: &mut Vec<Detection>) {
        if let Some(last) = self.last_ms.replace(now_ms)
            && now_ms.saturating_sub(last) > GAP_MS
        {
            let gap = u32::try_from(now_ms - last).unwrap_or(u32::MAX);
            self.block.clear();
            for t in &mut self.tones {
                t.run_ms = 0;
                t.reported = false;
            }
            self.cng_step(false, gap, found);
        }
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.block.len() == FRAME_SAMPLES {
                let block = std::mem::take(&mut self.block);
                self.on_block(&block, found);
                self.block = block;
                self.block.clear();
            }
        }
    }

    fn on_block(&mut self, block: &[i16], found: &mut Vec<Detection>) {
        const MS: u32 = (FRAME_SAMPLES as u32 * 1000) / SAMPLE_RATE;
        let power = mean_power(block);
        for (i, t) in self.tones.iter_mut().enumerate() {
            if holds(block, power, &t.spec.frequencies) {
                t.run_ms = t.run_ms.saturating_add(MS);
                if !t.reported && t.run_ms >= t.spec.duration_ms {
                    t.reported = true;
                    found.push(Detection::Tone(i));
                }
            } else {
                t.run_ms = 0;
                t.reported = false;
            }
        }
        if self.cng.is_some() {
            let on = holds(block, power, &[CNG_HZ]);
            self.cng_step(on, MS, found);
        }
    }

    /// The fax calling tone's cadence: 1100 Hz present (`on`) or not for
    /// `ms` more.
    fn cng_step(&mut self, on: bool, d: u32, found: &mut Vec<Detection>) {
        let Some(state) = self.cng else { return };
        let next = match (state, on) {
            (Cng::Done, _) => return,
            (Cng::Idle, true) => Cng::On(d),
            (Cng::Idle, false) => Cng::Idle,
            (Cng::On(t), true) if t.saturating_add(d) > CNG_ON_MS.1 => Cng::Stuck,
            (Cng::On(t), true) => Cng::On(t + d),
            (Cng::On(t), false) if t >= CNG_ON_MS.0 => Cng::Off(d),
            (Cng::On(_), false) => Cng::Idle,
            (Cng::Stuck, true) => Cng::Stuck,
            (Cng::Stuck, false) => Cng::Idle,
            (Cng::Off(t), false) if t.saturating_add(d) > CNG_OFF_MS.1 => Cng::Idle,
            (Cng::Off(t), false) => Cng::Off(t + d),
            (Cng::Off(t), true) if t >= CNG_OFF_MS.0 => Cng::Again(d),
            // Too short a pause: this is a first burst.
            (Cng::Off(_), true) => Cng::On(d),
            (Cng::Again(t), true) if t.saturating_add(d) >= CNG_AGAIN_MS => {
                found.push(Detection::Fax);
                Cng::Done
            }
            (Cng::Again(t), true) => Cng::Again(t + d),
            (Cng::Again(_), false) => Cng::Idle,
        };
        self.cng = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of these frequencies (amplitude 4000 each), or silence when empty.
    fn tone(freqs: &[u32], ms: u32) -> Vec<i16> {
        let n = ms * SAMPLE_RATE / 1000;
        (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                freqs
                    .iter()
                    .map(|&f| 4000.0 * (TAU * f as f32 * t).sin())
                    .sum::<f32>() as i16
            })
            .collect()
    }

    /// Feeds `pcm` in odd-sized pieces, as packets of any length would
    /// come, on a clock that advances with the audio (from `d`'s last).
    fn run(d: &mut Detector, pcm: &[i16]) -> Vec<Detection> {
        let mut found = Vec::new();
        let mut at = d.last_ms.unwrap_or(0) * 8;
        for chunk in pcm.chunks(97) {
            at += chunk.len() as u64;
            d.push(chunk, at / 8, &mut found);
        }
        found
    }

    #[test]
    fn a_phone_that_sends_nothing_while_quiet_still_has_a_cadence() {
        // Voice activity detection: the 3 s pauses come as no packets.
        let mut d = Detector::new(Vec::new(), true);
        let mut found = Vec::new();
        let burst = tone(&[CNG_HZ], 500);
        let mut at = 1000u64;
        for _ in 0..2 {
            for p in burst.chunks(160) {
                at += 20;
                d.push(p, at, &mut found);
            }
            at += 3000;
        }
        assert_eq!(found, [Detection::Fax]);
    }

    #[test]
    fn goertzel_finds_the_frequency_and_not_its_neighbours() {
        let b = tone(&[1100], 20);
        let p = mean_power(&b);
        assert!(holds(&b, p, &[1100]));
        assert!(!holds(&b, p, &[1300]));
        assert!(!holds(&b, p, &[1100, 1300]));
        let dual = tone(&[697, 1209], 20);
        assert!(holds(&dual, mean_power(&dual), &[697, 1209]));
        assert!(!holds(&dual, mean_power(&dual), &[697]));
        let quiet: Vec<i16> = tone(&[1100], 20).iter().map(|s| s / 100).collect();
        assert!(!holds(&quiet, mean_power(&quiet), &[1100]));
    }

    #[test]
    fn a_tone_is_reported_once_it_lasted_its_duration_and_again_after_a_break() {
        let spec = ToneSpec {
            frequencies: vec![440, 480],
            duration_ms: 200,
        };
        let mut d = Detector::new(vec![spec], false);
        assert!(run(&mut d, &tone(&[440, 480], 160)).is_empty());
        assert_eq!(run(&mut d, &tone(&[440, 480], 60)), [Detection::Tone(0)]);
        assert!(run(&mut d, &tone(&[440, 480], 500)).is_empty());
        assert!(run(&mut d, &tone(&[], 100)).is_empty());
        assert_eq!(run(&mut d, &tone(&[440, 480], 300)), [Detection::Tone(0)]);
        // Another tone, or one of the two alone, is not it.
        let mut d = Detector::new(d.tones.iter().map(|t| t.spec.clone()).collect(), false);
        assert!(run(&mut d, &tone(&[440], 1000)).is_empty());
        assert!(run(&mut d, &tone(&[350, 440], 1000)).is_empty());
    }

    fn cng_cycle() -> Vec<i16> {
        let mut v = tone(&[CNG_HZ], 500);
        v.extend(tone(&[], 3000));
        v
    }

    #[test]
    fn cng_cadence_is_fax() {
        let mut d = Detector::new(Vec::new(), true);
        let mut pcm = tone(&[], 700);
        pcm.extend(cng_cycle());
        assert!(
            run(&mut d, &pcm).is_empty(),
            "one burst is not yet a cadence"
        );
        assert_eq!(run(&mut d, &tone(&[CNG_HZ], 500)), [Detection::Fax]);
        // Reported once.
        assert!(run(&mut d, &cng_cycle().repeat(2)).is_empty());
    }

    #[test]
    fn a_steady_1100_hz_or_a_wrong_cadence_is_not_fax() {
        let mut d = Detector::new(Vec::new(), true);
        assert!(run(&mut d, &tone(&[CNG_HZ], 8000)).is_empty());
        // 0.5 s on, 0.5 s off (a busy-like cadence at 1100 Hz).
        let mut fast = tone(&[CNG_HZ], 500);
        fast.extend(tone(&[], 500));
        assert!(run(&mut d, &fast.repeat(8)).is_empty());
        // 2 s bursts.
        let mut long = tone(&[CNG_HZ], 2000);
        long.extend(tone(&[], 3000));
        assert!(run(&mut d, &long.repeat(3)).is_empty());
        // Not asked for: nothing.
        let mut off = Detector::new(Vec::new(), false);
        assert!(off.is_empty());
        assert!(run(&mut off, &cng_cycle().repeat(3)).is_empty());
    }
}
