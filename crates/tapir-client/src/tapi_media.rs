//! TAPI's media operations on a [`Call`]: `lineGatherDigits`
//! ([`Call::gather_digits`], ending with
//! [`crate::EventKind::DigitsGathered`]), `lineGenerateTone`
//! ([`Call::generate_tone`]) and `lineMonitorDigits` / `lineMonitorTones` /
//! `lineMonitorMedia` ([`Call::monitor`], reporting
//! [`crate::EventKind::DigitsReceived`], [`crate::EventKind::ToneDetected`]
//! and [`crate::EventKind::MediaDetected`]).

use crate::wire::MediaMode;
use crate::{Call, ClientError, Result};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What ends a gathering (`lineGatherDigits`); unset fields take the
/// server's defaults (64 digits, no terminator, no timeouts).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Gather {
    /// Stop after this many digits (1–64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_digits: Option<u32>,
    /// Digits that end it (kept as the last digit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminators: Option<String>,
    /// Stop when no digit came this long after the start (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timeout_ms: Option<u64>,
    /// Stop when no further digit came this long (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inter_timeout_ms: Option<u64>,
}

/// A tone to watch for: every frequency at once, for at least the duration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToneWatch {
    /// Its frequencies (Hz, 1–3 of them within 50–4000).
    pub frequencies: Vec<u32>,
    /// How long it must last (ms).
    pub duration_ms: u32,
}

/// What an app is told of a call's media ([`Call::monitor`]).
#[derive(Clone, Debug, Serialize)]
pub struct Monitor {
    /// `digits.received` events.
    pub digits: bool,
    /// Tones to report (at most 4).
    pub tones: Vec<ToneWatch>,
    /// Media modes to report (`g3fax`).
    pub media_modes: Vec<MediaMode>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            digits: true,
            tones: Vec::new(),
            media_modes: Vec::new(),
        }
    }
}

impl Call {
    /// `lineGatherDigits`: gather the digits that reach the call until an
    /// end of `gather`; `digits.gathered` reports them and why. A new one
    /// replaces the one before (which ends `cancelled`).
    pub async fn gather_digits(&mut self, gather: &Gather) -> Result<()> {
        let body = serde_json::to_value(gather).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.op("gather", body).await
    }

    /// `lineGenerateTone`: `tone` (`beep`, `billing`, `busy`, `ringback`,
    /// or `custom` with `frequencies`) to the call's far parties, for
    /// `duration_ms` or the tone's default.
    pub async fn generate_tone(
        &mut self,
        tone: &str,
        frequencies: &[u32],
        duration_ms: Option<u32>,
    ) -> Result<()> {
        let mut body = json!({ "tone": tone });
        if !frequencies.is_empty() {
            body["frequencies"] = json!(frequencies);
        }
        if let Some(d) = duration_ms {
            body["duration_ms"] = json!(d);
        }
        self.op("tone", body).await
    }

    /// `lineMonitorDigits`, `lineMonitorTones`, `lineMonitorMedia`: replace
    /// what this app is told of the call's media.
    pub async fn monitor(&mut self, monitor: &Monitor) -> Result<()> {
        let id = self.id().to_string();
        let answer = self
            .client
            .request(
                Method::PUT,
                &["v1", "calls", &id, "monitor"],
                None::<&()>,
                Some(monitor),
            )
            .await?;
        self.keep(answer);
        Ok(())
    }
}
