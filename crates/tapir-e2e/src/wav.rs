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
}

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
