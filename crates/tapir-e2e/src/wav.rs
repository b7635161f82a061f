//! What a phone heard: its WAV recording (pjsua's recorder, 16-bit PCM)
//! and the power of given frequencies in it (Goertzel filter), so a test can
//! say who is connected to whom by the tones each party plays.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A recording's samples (mono, the second half only: the first half may
/// still carry the media of the moment before).
#[derive(Clone, Debug)]
pub struct Recording {
    /// Sample rate in Hz.
    pub rate: u32,
    /// The samples kept.
    pub samples: Vec<i16>,
}

impl Recording {
    /// Read a WAV file; waits up to 5 s for the recorder to finish its
    /// header (pjsua writes it when the recorder is destroyed).
    pub async fn read(path: &Path) -> Recording {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match Recording::try_read(path) {
                Ok(r) if !r.samples.is_empty() => return r,
                Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) => panic!("{}: the recording is empty", path.display()),
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }

    fn try_read(path: &Path) -> Result<Recording, hound::Error> {
        let mut reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let all: Vec<i16> = reader
            .samples::<i16>()
            .step_by(channels)
            .collect::<Result<_, _>>()?;
        let half = all.len() / 2;
        Ok(Recording {
            rate: spec.sample_rate,
            samples: all[half..].to_vec(),
        })
    }

    /// Goertzel power of `hz`, normalised by the number of samples.
    pub fn power(&self, hz: f64) -> f64 {
        goertzel(&self.samples, self.rate, hz)
    }

    /// [`Recording::power`] of each frequency.
    pub fn levels(&self, freqs: &[u32]) -> BTreeMap<u32, f64> {
        freqs
            .iter()
            .map(|&f| (f, self.power(f64::from(f))))
            .collect()
    }

    /// Mean square of the samples (is there any sound at all).
    pub fn energy(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            / self.samples.len() as f64
    }

    /// Whether `hz` is clearly present: its power is at least 1 % of what a
    /// tone at a tenth of full scale alone would give.
    pub fn hears(&self, hz: u32) -> bool {
        self.power(f64::from(hz)) > HEARD
    }

    /// The Goertzel power of `hz` in each back-to-back block of `block`,
    /// in order: when a tone that sounds only part of the time sounds.
    pub fn powers_over_time(&self, hz: f64, block: Duration) -> Vec<f64> {
        let n = (f64::from(self.rate) * block.as_secs_f64()) as usize;
        self.samples
            .chunks_exact(n.max(1))
            .map(|c| goertzel(c, self.rate, hz))
            .collect()
    }

    /// Whether `hz` is clearly present ([`Recording::hears`]) in at least
    /// one block of 100 ms: a tone heard now and then, like each segment
    /// of a special information tone (274 ms or more, so it fills at
    /// least one whole block).
    pub fn hears_at_times(&self, hz: f64) -> bool {
        self.powers_over_time(hz, BLOCK)
            .into_iter()
            .any(|p| p > HEARD)
    }

    /// Whether the frequencies sound one after another in this order,
    /// each in a later 100 ms block than the one before and at most half a
    /// second after it: a special information tone's three rising segments.
    pub fn hears_in_turn(&self, freqs: &[f64]) -> bool {
        let loud: Vec<Vec<bool>> = freqs
            .iter()
            .map(|&f| {
                self.powers_over_time(f, BLOCK)
                    .into_iter()
                    .map(|p| p > HEARD)
                    .collect()
            })
            .collect();
        let Some((first, rest)) = loud.split_first() else {
            return false;
        };
        // The blocks where the sequence so far can end.
        let mut ends: Vec<usize> = (0..first.len()).filter(|&i| first[i]).collect();
        for l in rest {
            ends = (0..l.len())
                .filter(|&j| l[j] && ends.iter().any(|&i| i < j && j - i <= 5))
                .collect();
        }
        !ends.is_empty()
    }
}

/// The block of [`Recording::hears_at_times`] and [`Recording::hears_in_turn`].
const BLOCK: Duration = Duration::from_millis(100);

/// The normalised power of a pure tone of amplitude 3,276 (a tenth of full
/// scale) is about 3276² / 4 ≈ 2.7e6; a tone counts as heard above 1 % of that.
const HEARD: f64 = 2.7e4;

/// Goertzel power of `hz` over `samples`, divided by the square of the
/// number of samples so recordings of any length compare (a pure tone of
/// amplitude A gives about A² / 4).
pub fn goertzel(samples: &[i16], rate: u32, hz: f64) -> f64 {
    if samples.is_empty() || rate == 0 {
        return 0.0;
    }
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - k * s1 * s2;
    let n = samples.len() as f64;
    p / (n * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, amplitude: f64, n: usize, rate: u32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn goertzel_finds_the_tone_and_not_another() {
        let s = tone(1000.0, 8000.0, 8000, 16000);
        let at = goertzel(&s, 16000, 1000.0);
        let off = goertzel(&s, 16000, 600.0);
        assert!((at - 8000.0 * 8000.0 / 4.0).abs() < 0.05 * at, "{at}");
        assert!(off < at / 1000.0, "{off} vs {at}");
    }

    #[test]
    fn a_tone_heard_now_and_then_is_found_in_its_blocks() {
        // 300 ms of 913.8 Hz in a second of silence.
        let mut s = vec![0i16; 16000];
        s.splice(4000..8800, tone(913.8, 4000.0, 4800, 16000));
        let r = Recording {
            rate: 16000,
            samples: s,
        };
        assert!(r.hears_at_times(913.8) && !r.hears_at_times(1370.6));
        let p = r.powers_over_time(913.8, Duration::from_millis(100));
        assert_eq!(p.len(), 10);
        assert!(p[3] > HEARD && p[0] < HEARD && p[9] < HEARD, "{p:?}");
    }

    #[test]
    fn rising_segments_are_heard_in_turn_and_not_in_another_order() {
        let sit = [913.8, 1370.6, 1776.7];
        let mut s = vec![0i16; 4000];
        for (hz, ms) in [(913.8, 274), (1370.6, 274), (1776.7, 380)] {
            s.extend(tone(hz, 4000.0, ms * 8, 8000));
        }
        s.extend(vec![0i16; 8000]);
        let r = Recording {
            rate: 8000,
            samples: s,
        };
        assert!(r.hears_in_turn(&sit));
        assert!(!r.hears_in_turn(&[1776.7, 1370.6, 913.8]));
        assert!(!r.hears_in_turn(&[913.8, 1776.7, 1370.6]));
        assert!(!r.hears_in_turn(&[480.0, 620.0]));
    }

    #[test]
    fn a_mix_has_both_tones() {
        let a = tone(1000.0, 5000.0, 16000, 16000);
        let b = tone(600.0, 5000.0, 16000, 16000);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let r = Recording {
            rate: 16000,
            samples: mix,
        };
        assert!(r.hears(1000) && r.hears(600) && !r.hears(800));
        assert!(r.energy() > 1e6);
    }
}
