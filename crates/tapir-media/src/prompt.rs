//! Prompts: recorded or generated audio tapir plays to a caller on a route
//! point call it terminates (an IVR's greeting and menu).
//!
//! - [`PromptCatalog`] finds a prompt by name: a WAV file
//!   `<dir>/<name>.wav` (decoded by [`crate::wav::decode_wav`] to 8 kHz mono,
//!   so 8 kHz mono 16-bit PCM plays as is and other simple formats are
//!   converted), else one of the [built-in prompts](BUILTIN_PROMPTS) tapir
//!   generates, so that a server with no files still has prompts to play.
//! - [`PromptPlayer`] plays one prompt into 20 ms frames, once or looping,
//!   and says exactly once when a non-looping prompt has ended.

use crate::tone::{SAMPLE_RATE, ToneGenerator, ToneKind};
use crate::wav::{WavError, decode_wav};
use std::f32::consts::TAU;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Longest prompt name (ASCII letters, digits, `-`, `_`).
pub const MAX_NAME_LEN: usize = 64;

/// The prompts tapir generates itself: `beep` (a 1 kHz beep of 250 ms),
/// four seconds of `dialtone`, `ringback`, `busy` and `reorder`, and
/// `tone-<hz>` (one second of a pure tone, 100–3800 Hz).
pub const BUILTIN_PROMPTS: &[&str] = &["beep", "dialtone", "ringback", "busy", "reorder"];

/// Level of generated prompts (about -10 dBFS).
const AMPLITUDE: f32 = 10_000.0;

/// Why a prompt cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The name has characters other than letters, digits, `-` and `_`, or
    /// is empty or too long.
    #[error("'{0}' is not a prompt name: use 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
    /// No file and no built-in prompt has this name.
    #[error(
        "there is no prompt '{0}': add {0}.wav to the prompts directory or use a built-in prompt"
    )]
    NotFound(String),
    /// The file exists but cannot be read.
    #[error("prompt '{name}' cannot be read: {error}")]
    Io {
        /// The prompt.
        name: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The file is not a WAV file tapir can decode.
    #[error("prompt '{name}' is not a usable WAV file: {error}")]
    Wav {
        /// The prompt.
        name: String,
        /// What is wrong with it.
        error: WavError,
    },
}

/// Whether `name` can name a prompt.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A pure tone of `hz` for `ms` milliseconds with 5 ms ramps (no clicks).
fn pure_tone(hz: f32, ms: u32) -> Vec<i16> {
    let n = (SAMPLE_RATE * ms / 1000) as usize;
    let ramp = (SAMPLE_RATE / 200) as usize;
    (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < ramp {
                edge as f32 / ramp as f32
            } else {
                1.0
            };
            let t = i as f32 / SAMPLE_RATE as f32;
            (AMPLITUDE * gain * (TAU * hz * t).sin()) as i16
        })
        .collect()
}

/// The samples of a built-in prompt, if `name` is one.
#[must_use]
pub fn builtin(name: &str) -> Option<Vec<i16>> {
    let tone = |kind| {
        let mut v = vec![0i16; 4 * SAMPLE_RATE as usize];
        ToneGenerator::new(kind).fill(&mut v);
        v
    };
    match name {
        "beep" => Some(pure_tone(1000.0, 250)),
        "dialtone" => Some(tone(ToneKind::Dialtone)),
        "ringback" => Some(tone(ToneKind::Ringback)),
        "busy" => Some(tone(ToneKind::Busy)),
        "reorder" => Some(tone(ToneKind::Reorder)),
        _ => {
            let hz: u32 = name.strip_prefix("tone-")?.parse().ok()?;
            (100..=3800)
                .contains(&hz)
                .then(|| pure_tone(hz as f32, 1000))
        }
    }
}

/// Where prompts come from: files in one directory, then the built-ins.
/// Files are read at every lookup, so prompts can be added or changed while
/// tapir runs.
#[derive(Clone, Debug, Default)]
pub struct PromptCatalog {
    dir: Option<PathBuf>,
}

impl PromptCatalog {
    /// A catalog of the `*.wav` files in `dir` (which need not exist) and
    /// the built-ins.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// A catalog of the built-in prompts only.
    #[must_use]
    pub fn builtin_only() -> Self {
        Self { dir: None }
    }

    /// The directory prompts files are read from.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The samples (8 kHz mono) of prompt `name`: its file when there is one
    /// (a file overrides a built-in of the same name), else the built-in.
    ///
    /// # Errors
    /// A [`PromptError`] for a malformed name, an unknown prompt, or a file
    /// that cannot be read or decoded.
    pub fn load(&self, name: &str) -> Result<Arc<[i16]>, PromptError> {
        if !valid_name(name) {
            return Err(PromptError::BadName(name.to_string()));
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{name}.wav"));
            match std::fs::read(&path) {
                Ok(bytes) => {
                    return decode_wav(&bytes)
                        .map(Arc::from)
                        .map_err(|error| PromptError::Wav {
                            name: name.to_string(),
                            error,
                        });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(PromptError::Io {
                        name: name.to_string(),
                        error,
                    });
                }
            }
        }
        builtin(name)
            .map(Arc::from)
            .ok_or_else(|| PromptError::NotFound(name.to_string()))
    }
}

/// Plays one prompt into frames.
#[derive(Clone, Debug)]
pub struct PromptPlayer {
    samples: Arc<[i16]>,
    pos: usize,
    looping: bool,
    ended: bool,
}

impl PromptPlayer {
    /// A player at the start of `samples`; `looping` starts again at the end.
    #[must_use]
    pub fn new(samples: Arc<[i16]>, looping: bool) -> Self {
        Self {
            samples,
            pos: 0,
            looping,
            ended: false,
        }
    }

    /// Whether a non-looping prompt has played to its end.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Writes the next `out.len()` samples (silence after the end). Returns
    /// true exactly once: on the call in which a non-looping prompt ran out.
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        let len = self.samples.len();
        if self.ended {
            out.fill(0);
            return false;
        }
        if len == 0 {
            out.fill(0);
            if self.looping {
                return false;
            }
            self.ended = true;
            return true;
        }
        let mut done = 0;
        while done < out.len() {
            if self.pos >= len {
                if !self.looping {
                    break;
                }
                self.pos = 0;
            }
            let n = (len - self.pos).min(out.len() - done);
            if let (Some(dst), Some(src)) = (
                out.get_mut(done..done + n),
                self.samples.get(self.pos..self.pos + n),
            ) {
                dst.copy_from_slice(src);
            }
            done += n;
            self.pos += n;
        }
        if let Some(rest) = out.get_mut(done..) {
            rest.fill(0);
        }
        if !self.looping && self.pos >= len {
            self.ended = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tone::goertzel_amplitude;

    fn wav_pcm16(samples: &[i16], rate: u32) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * 2).to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn a_prompt_plays_its_samples_once_and_reports_the_end_once() {
        let samples: Arc<[i16]> = (1..=50).collect::<Vec<i16>>().into();
        let mut p = PromptPlayer::new(samples, false);
        let mut frame = [0i16; 20];
        assert!(!p.fill(&mut frame));
        assert_eq!(frame.to_vec(), (1..=20).collect::<Vec<i16>>());
        assert!(!p.fill(&mut frame));
        assert_eq!(frame.to_vec(), (21..=40).collect::<Vec<i16>>());
        // The last ten samples, then silence: the end, reported once.
        assert!(p.fill(&mut frame));
        assert_eq!(&frame[..10], &(41..=50).collect::<Vec<i16>>()[..]);
        assert_eq!(&frame[10..], &[0; 10]);
        assert!(p.ended());
        for _ in 0..3 {
            frame.fill(7);
            assert!(!p.fill(&mut frame));
            assert_eq!(frame, [0; 20]);
        }
    }

    #[test]
    fn a_prompt_ending_on_a_frame_boundary_reports_in_that_frame() {
        let mut p = PromptPlayer::new(vec![5i16; 40].into(), false);
        let mut frame = [0i16; 20];
        assert!(!p.fill(&mut frame));
        assert!(p.fill(&mut frame));
        assert_eq!(frame, [5; 20]);
        assert!(!p.fill(&mut frame));
    }

    #[test]
    fn a_looping_prompt_wraps_and_never_ends() {
        let mut p = PromptPlayer::new(vec![1i16, 2, 3].into(), true);
        let mut frame = [0i16; 8];
        for _ in 0..100 {
            assert!(!p.fill(&mut frame));
        }
        assert!(!p.ended());
        let mut p = PromptPlayer::new(vec![1i16, 2, 3].into(), true);
        p.fill(&mut frame);
        assert_eq!(frame, [1, 2, 3, 1, 2, 3, 1, 2]);
        // An empty looping prompt is silence, without an end.
        let mut p = PromptPlayer::new(Vec::new().into(), true);
        assert!(!p.fill(&mut frame));
        let mut p = PromptPlayer::new(Vec::new().into(), false);
        assert!(p.fill(&mut frame));
        assert!(!p.fill(&mut frame));
    }

    #[test]
    fn builtins_are_what_they_say() {
        let beep = builtin("beep").unwrap();
        assert_eq!(beep.len(), 2000);
        let at = |s: &[i16], f| goertzel_amplitude(&s[400..1600], f, 8000.0);
        assert!(at(&beep, 1000.0) > 5000.0, "{}", at(&beep, 1000.0));
        assert!(at(&beep, 1400.0) < 500.0);
        let t = builtin("tone-1633").unwrap();
        assert_eq!(t.len(), 8000);
        assert!(at(&t, 1633.0) > 5000.0);
        assert!(at(&t, 1000.0) < 500.0);
        for name in BUILTIN_PROMPTS {
            assert!(builtin(name).is_some_and(|s| !s.is_empty()), "{name}");
        }
        for bad in ["tone-99", "tone-3801", "tone-x", "tone-", "nothing"] {
            assert!(builtin(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_catalog_reads_files_before_builtins_and_checks_names() {
        let dir = std::env::temp_dir().join(format!("tapir-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own: Vec<i16> = (0..800).map(|i| (i * 3) as i16).collect();
        std::fs::write(dir.join("welcome.wav"), wav_pcm16(&own, 8000)).unwrap();
        // A file overrides the built-in beep; a 16 kHz file is converted.
        let hi: Vec<i16> = vec![1000; 1600];
        std::fs::write(dir.join("beep.wav"), wav_pcm16(&hi, 16000)).unwrap();
        std::fs::write(dir.join("broken.wav"), b"RIFF....WAVEjunk").unwrap();
        let c = PromptCatalog::new(&dir);
        assert_eq!(&*c.load("welcome").unwrap(), &own[..]);
        assert_eq!(c.load("beep").unwrap().len(), 800);
        assert_eq!(c.load("busy").unwrap().len(), 32000);
        assert!(matches!(c.load("nothing"), Err(PromptError::NotFound(_))));
        assert!(matches!(c.load("broken"), Err(PromptError::Wav { .. })));
        for bad in ["", "../welcome", "welcome.wav", "a b"] {
            assert!(matches!(c.load(bad), Err(PromptError::BadName(_))), "{bad}");
        }
        let b = PromptCatalog::builtin_only();
        assert!(matches!(b.load("welcome"), Err(PromptError::NotFound(_))));
        assert_eq!(b.load("beep").unwrap().len(), 2000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
