//! TAPI's media operations on a call, as the switch takes them:
//! `lineGatherDigits` ([`GatherSpec`], ending with a [`GatherReason`]),
//! `lineGenerateTone` ([`ToneRequest`], resolved into a [`TonePlan`] the
//! media plane plays) and `lineMonitorDigits` / `lineMonitorTones` /
//! `lineMonitorMedia` ([`MonitorSpec`], whose [`ToneWatch`]es the media plane
//! detects).
//!
//! Everything an application asks for is bounded here, before it reaches the
//! switch's state or the media plane: a count of digits, timeouts, tone
//! frequencies and durations, and the number of tones watched on one call, so
//! that a stranger cannot make the media thread burn CPU or memory.

use crate::error::{ErrorCode, TapiError};
use crate::types::MediaMode;
use serde::{Deserialize, Serialize};

/// The most digits one gathering collects.
pub const MAX_GATHER_DIGITS: u32 = 64;
/// The longest first-digit or inter-digit timeout (ms): five minutes.
pub const MAX_GATHER_TIMEOUT_MS: u64 = 300_000;
/// The lowest frequency tapir generates or detects (Hz).
pub const MIN_TONE_HZ: u32 = 50;
/// The highest frequency tapir generates or detects (Hz); below the Nyquist
/// frequency of 8 kHz audio.
pub const MAX_TONE_HZ: u32 = 4000;
/// The most frequencies in one generated or watched tone.
pub const MAX_TONE_FREQUENCIES: usize = 3;
/// The longest generated tone (ms).
pub const MAX_TONE_MS: u32 = 10_000;
/// The shortest duration a watched tone may ask for (ms): one 20 ms frame.
pub const MIN_WATCH_MS: u32 = 20;
/// The longest duration a watched tone may ask for (ms).
pub const MAX_WATCH_MS: u32 = 60_000;
/// The most tones one application watches on one call.
pub const MAX_TONE_WATCHES: usize = 4;
/// The most distinct tones watched on one leg, all applications and calls
/// together (what the media plane runs a detector for).
pub const MAX_LEG_WATCHES: usize = 8;

/// `lineGatherDigits`: collect digits that reach a call until one of the
/// ends is met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatherSpec {
    /// Stop when this many digits are in (1–[`MAX_GATHER_DIGITS`]).
    pub max_digits: u32,
    /// Digits that end the gathering (kept as the last digit gathered).
    pub terminators: String,
    /// Stop when no digit came this long after the start (ms); 0: never.
    pub first_timeout_ms: u64,
    /// Stop when no further digit came this long after the last (ms); 0:
    /// never.
    pub inter_timeout_ms: u64,
}

impl GatherSpec {
    /// The request as given, checked: `max_digits` (default
    /// [`MAX_GATHER_DIGITS`]) within 1–[`MAX_GATHER_DIGITS`], terminators
    /// among `0-9 * # A-D`, timeouts up to [`MAX_GATHER_TIMEOUT_MS`].
    pub fn new(
        max_digits: Option<u32>,
        terminators: Option<&str>,
        first_timeout_ms: Option<u64>,
        inter_timeout_ms: Option<u64>,
    ) -> Result<GatherSpec, TapiError> {
        let max_digits = max_digits.unwrap_or(MAX_GATHER_DIGITS);
        if !(1..=MAX_GATHER_DIGITS).contains(&max_digits) {
            return Err(invalparam(format!(
                "max_digits must be between 1 and {MAX_GATHER_DIGITS}, not {max_digits}"
            )));
        }
        let terminators = terminators.unwrap_or("").to_string();
        if terminators.len() > 16 || !terminators.chars().all(is_digit) {
            return Err(invalparam(
                "terminators must be a few of the digits 0-9, *, # and A-D",
            ));
        }
        for (name, t) in [
            ("first_timeout_ms", first_timeout_ms),
            ("inter_timeout_ms", inter_timeout_ms),
        ] {
            if t.is_some_and(|t| t > MAX_GATHER_TIMEOUT_MS) {
                return Err(invalparam(format!(
                    "{name} must be at most {MAX_GATHER_TIMEOUT_MS} ms"
                )));
            }
        }
        Ok(GatherSpec {
            max_digits,
            terminators,
            first_timeout_ms: first_timeout_ms.unwrap_or(0),
            inter_timeout_ms: inter_timeout_ms.unwrap_or(0),
        })
    }
}

/// Why a gathering ended (`LINEGATHERTERM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatherReason {
    /// The number of digits asked for came in (`BUFFERFULL`).
    MaxDigits,
    /// A termination digit came in (`TERMDIGIT`).
    Terminator,
    /// No digit came before the first-digit timeout (`FIRSTTIMEOUT`).
    FirstTimeout,
    /// No digit came within the inter-digit timeout (`INTERTIMEOUT`).
    InterTimeout,
    /// A new gathering replaced it, or the call ended (`CANCEL`).
    Cancelled,
}

/// What a gathering does next, as [`Gathering`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatherStep {
    /// Still gathering: (re)arm the timeout of this many ms (none for 0).
    Wait(u64),
    /// Still gathering; the timer armed before stays as it is.
    Keep,
    /// It ended.
    Done(GatherReason),
}

/// One gathering as a plain state machine: digits in, what to do next out
/// (the switch owns the clock and the timer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gathering {
    spec: GatherSpec,
    digits: String,
}

impl Gathering {
    /// A new gathering and the timeout to arm first (the first-digit one).
    #[must_use]
    pub fn start(spec: GatherSpec) -> (Gathering, GatherStep) {
        let wait = GatherStep::Wait(spec.first_timeout_ms);
        (
            Gathering {
                spec,
                digits: String::new(),
            },
            wait,
        )
    }

    /// The digits gathered so far.
    #[must_use]
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// One digit reached the call.
    pub fn digit(&mut self, d: char) -> GatherStep {
        if !is_digit(d) {
            return GatherStep::Keep;
        }
        self.digits.push(d);
        if self.spec.terminators.contains(d) {
            return GatherStep::Done(GatherReason::Terminator);
        }
        if self.digits.len() >= self.spec.max_digits as usize {
            return GatherStep::Done(GatherReason::MaxDigits);
        }
        GatherStep::Wait(self.spec.inter_timeout_ms)
    }

    /// The armed timeout expired: which one it was.
    #[must_use]
    pub fn timed_out(&self) -> GatherReason {
        if self.digits.is_empty() {
            GatherReason::FirstTimeout
        } else {
            GatherReason::InterTimeout
        }
    }
}

fn is_digit(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

fn invalparam(message: impl Into<String>) -> TapiError {
    TapiError::new(ErrorCode::InvalParam, message)
}

/// The tones of `lineGenerateTone` (`LINETONEMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToneName {
    /// A short 1000 Hz beep.
    Beep,
    /// The billing (metering) tone: a short 1400 Hz burst.
    Billing,
    /// Busy: 480 + 620 Hz, 0.5 s on, 0.5 s off.
    Busy,
    /// Ringback: 440 + 480 Hz, 2 s on, 4 s off.
    Ringback,
    /// The frequencies given, continuous for the duration.
    Custom,
}

/// `lineGenerateTone` as asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToneRequest {
    /// Which tone.
    pub tone: ToneName,
    /// For `custom`: its frequencies (Hz).
    pub frequencies: Vec<u32>,
    /// How long to play it (ms); each tone has its own default.
    pub duration_ms: Option<u32>,
}

/// A tone the media plane generates: every frequency at once, with a
/// cadence, for a bounded time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TonePlan {
    /// The frequencies (Hz), each within [`MIN_TONE_HZ`]–[`MAX_TONE_HZ`].
    pub frequencies: Vec<u32>,
    /// Tone on (ms) in each cadence period.
    pub on_ms: u32,
    /// Silence (ms) after each on part; 0: continuous.
    pub off_ms: u32,
    /// Total length (ms), at most [`MAX_TONE_MS`].
    pub duration_ms: u32,
}

impl ToneRequest {
    /// The plan to play, or `invalparam` with a sentence.
    pub fn plan(&self) -> Result<TonePlan, TapiError> {
        if self.tone != ToneName::Custom && !self.frequencies.is_empty() {
            return Err(invalparam(
                "frequencies are given only with tone \"custom\"",
            ));
        }
        let (frequencies, on_ms, off_ms, default_ms) = match self.tone {
            ToneName::Beep => (vec![1000], 0, 0, 200),
            ToneName::Billing => (vec![1400], 0, 0, 150),
            ToneName::Busy => (vec![480, 620], 500, 500, 4000),
            ToneName::Ringback => (vec![440, 480], 2000, 4000, 6000),
            ToneName::Custom => {
                check_frequencies(&self.frequencies)?;
                (self.frequencies.clone(), 0, 0, 1000)
            }
        };
        let duration_ms = self.duration_ms.unwrap_or(default_ms);
        if duration_ms == 0 || duration_ms > MAX_TONE_MS {
            return Err(invalparam(format!(
                "duration_ms must be between 1 and {MAX_TONE_MS}"
            )));
        }
        Ok(TonePlan {
            frequencies,
            on_ms: if off_ms == 0 { duration_ms } else { on_ms },
            off_ms,
            duration_ms,
        })
    }
}

fn check_frequencies(f: &[u32]) -> Result<(), TapiError> {
    if f.is_empty() || f.len() > MAX_TONE_FREQUENCIES {
        return Err(invalparam(format!(
            "a tone has 1 to {MAX_TONE_FREQUENCIES} frequencies"
        )));
    }
    if let Some(bad) = f
        .iter()
        .find(|&&hz| !(MIN_TONE_HZ..=MAX_TONE_HZ).contains(&hz))
    {
        return Err(invalparam(format!(
            "frequency {bad} Hz is outside {MIN_TONE_HZ}-{MAX_TONE_HZ} Hz"
        )));
    }
    Ok(())
}

/// A tone to watch for (`LINEMONITORTONE`): every frequency present at once
/// for at least the duration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ToneWatch {
    /// The frequencies (Hz), 1–[`MAX_TONE_FREQUENCIES`] of them.
    pub frequencies: Vec<u32>,
    /// How long they must last (ms), [`MIN_WATCH_MS`]–[`MAX_WATCH_MS`].
    pub duration_ms: u32,
}

/// `lineMonitorDigits`, `lineMonitorTones` and `lineMonitorMedia` of one
/// application on one call, together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSpec {
    /// Report digits (`digits.received`); on unless turned off.
    pub digits: bool,
    /// Tones to report (`tone.detected`).
    pub tones: Vec<ToneWatch>,
    /// Media modes to detect (`media.detected`); tapir detects `g3fax`.
    pub media_modes: Vec<MediaMode>,
}

impl Default for MonitorSpec {
    fn default() -> Self {
        MonitorSpec {
            digits: true,
            tones: Vec::new(),
            media_modes: Vec::new(),
        }
    }
}

impl MonitorSpec {
    /// The request as given, checked.
    pub fn new(
        digits: Option<bool>,
        tones: Vec<ToneWatch>,
        media_modes: Vec<MediaMode>,
    ) -> Result<MonitorSpec, TapiError> {
        if tones.len() > MAX_TONE_WATCHES {
            return Err(invalparam(format!(
                "at most {MAX_TONE_WATCHES} tones are watched on a call"
            )));
        }
        for t in &tones {
            check_frequencies(&t.frequencies)?;
            if !(MIN_WATCH_MS..=MAX_WATCH_MS).contains(&t.duration_ms) {
                return Err(invalparam(format!(
                    "a watched tone's duration_ms is between {MIN_WATCH_MS} and {MAX_WATCH_MS}"
                )));
            }
        }
        if let Some(m) = media_modes.iter().find(|m| **m != MediaMode::G3Fax) {
            return Err(TapiError::new(
                ErrorCode::InvalMediaMode,
                format!("tapir detects the media mode g3fax only, not {m:?}"),
            ));
        }
        let mut tones = tones;
        tones.sort();
        tones.dedup();
        let mut media_modes = media_modes;
        media_modes.sort();
        media_modes.dedup();
        Ok(MonitorSpec {
            digits: digits.unwrap_or(true),
            tones,
            media_modes,
        })
    }

    /// Whether it watches anything the media plane must detect.
    #[must_use]
    pub fn detects(&self) -> bool {
        !self.tones.is_empty() || !self.media_modes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max: u32, term: &str, first: u64, inter: u64) -> GatherSpec {
        GatherSpec::new(Some(max), Some(term), Some(first), Some(inter)).unwrap()
    }

    #[test]
    fn gathering_stops_on_a_terminator_and_keeps_it() {
        let (mut g, first) = Gathering::start(spec(10, "#", 5000, 2000));
        assert_eq!(first, GatherStep::Wait(5000));
        assert_eq!(g.digit('1'), GatherStep::Wait(2000));
        assert_eq!(g.digit('2'), GatherStep::Wait(2000));
        assert_eq!(g.digit('#'), GatherStep::Done(GatherReason::Terminator));
        assert_eq!(g.digits(), "12#");
    }

    #[test]
    fn gathering_stops_at_its_count() {
        let (mut g, _) = Gathering::start(spec(3, "", 0, 0));
        assert_eq!(g.digit('1'), GatherStep::Wait(0));
        assert_eq!(g.digit('x'), GatherStep::Keep);
        assert_eq!(g.digit('2'), GatherStep::Wait(0));
        assert_eq!(g.digit('3'), GatherStep::Done(GatherReason::MaxDigits));
        assert_eq!(g.digits(), "123");
    }

    #[test]
    fn a_timeout_is_first_or_inter_by_what_came() {
        let (mut g, _) = Gathering::start(spec(4, "#", 100, 100));
        assert_eq!(g.timed_out(), GatherReason::FirstTimeout);
        g.digit('5');
        assert_eq!(g.timed_out(), GatherReason::InterTimeout);
    }

    #[test]
    fn bad_gathers_are_invalparam_with_a_sentence() {
        for (max, term, t) in [
            (Some(0), None, None),
            (Some(65), None, None),
            (None, Some("x"), None),
            (None, None, Some(MAX_GATHER_TIMEOUT_MS + 1)),
        ] {
            let e = GatherSpec::new(max, term, t, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalParam);
            assert!(!e.message.is_empty());
        }
        assert_eq!(
            GatherSpec::new(None, None, None, None).unwrap().max_digits,
            64
        );
    }

    #[test]
    fn tones_are_bounded() {
        let custom = |f: Vec<u32>, d: Option<u32>| ToneRequest {
            tone: ToneName::Custom,
            frequencies: f,
            duration_ms: d,
        };
        for bad in [
            custom(vec![], None),
            custom(vec![0], None),
            custom(vec![4001], None),
            custom(vec![400, 500, 600, 700], None),
            custom(vec![1000], Some(0)),
            custom(vec![1000], Some(MAX_TONE_MS + 1)),
            ToneRequest {
                tone: ToneName::Beep,
                frequencies: vec![1000],
                duration_ms: None,
            },
        ] {
            assert_eq!(bad.plan().unwrap_err().code, ErrorCode::InvalParam);
        }
        let busy = ToneRequest {
            tone: ToneName::Busy,
            frequencies: vec![],
            duration_ms: Some(2000),
        }
        .plan()
        .unwrap();
        assert_eq!(
            (busy.on_ms, busy.off_ms, busy.duration_ms),
            (500, 500, 2000)
        );
        let c = custom(vec![697, 1209], Some(300)).plan().unwrap();
        assert_eq!((c.on_ms, c.off_ms), (300, 0));
    }

    #[test]
    fn monitors_are_bounded() {
        let w = |f: u32, d: u32| ToneWatch {
            frequencies: vec![f],
            duration_ms: d,
        };
        let many = (0..5).map(|i| w(500 + i, 100)).collect();
        assert!(MonitorSpec::new(None, many, vec![]).is_err());
        assert!(MonitorSpec::new(None, vec![w(10, 100)], vec![]).is_err());
        assert!(MonitorSpec::new(None, vec![w(1100, 0)], vec![]).is_err());
        assert!(MonitorSpec::new(None, vec![w(1100, 10_000_000)], vec![]).is_err());
        assert_eq!(
            MonitorSpec::new(None, vec![], vec![MediaMode::DataModem])
                .unwrap_err()
                .code,
            ErrorCode::InvalMediaMode
        );
        let ok = MonitorSpec::new(None, vec![w(1100, 500), w(1100, 500)], vec![]).unwrap();
        assert_eq!(ok.tones.len(), 1);
        assert!(ok.digits && ok.detects());
    }
}
