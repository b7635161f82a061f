//! TAPI's media operations on a call: `POST /v1/calls/{call}/gather`
//! (lineGatherDigits), `POST /v1/calls/{call}/tone` (lineGenerateTone) and
//! `PUT /v1/calls/{call}/monitor` (lineMonitorDigits, lineMonitorTones,
//! lineMonitorMedia). The bodies are checked into
//! [`tapir_core::mediaops`]'s bounded types (a TAPI error with a sentence
//! otherwise) and run through the switch like every call operation, with
//! its privilege checks.

use super::{ApiJson, AppState, AuthApp, call_id, exec, reply_response};
use crate::error::{ApiError, ErrorBody};
use crate::wire::CallObject;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tapir_core::mediaops::{GatherSpec, MonitorSpec, ToneName, ToneRequest, ToneWatch};
use tapir_core::{Command, MediaMode};
use utoipa::ToSchema;

/// Body of `POST /v1/calls/{call}/gather`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatherBody {
    /// Stop after this many digits (1–64; 64 when absent).
    #[serde(default)]
    pub max_digits: Option<u32>,
    /// Digits that end the gathering (e.g. `#`).
    #[serde(default)]
    pub terminators: Option<String>,
    /// Stop when no digit came this long after the start (ms, up to
    /// 300000; 0 or absent: never).
    #[serde(default)]
    pub first_timeout_ms: Option<u64>,
    /// Stop when no further digit came this long (ms, up to 300000).
    #[serde(default)]
    pub inter_timeout_ms: Option<u64>,
}

/// `lineGatherDigits`: gather the digits that reach the call; the event
/// `digits.gathered` ends it with the digits and why.
#[utoipa::path(post, path = "/v1/calls/{call}/gather", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = GatherBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn gather(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<GatherBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let spec = GatherSpec::new(
        b.max_digits,
        b.terminators.as_deref(),
        b.first_timeout_ms,
        b.inter_timeout_ms,
    )?;
    let done = exec(&st, &app, Command::GatherDigits(call, spec), Some(call)).await?;
    Ok(reply_response(done, Some(call), StatusCode::OK))
}

/// Body of `POST /v1/calls/{call}/tone`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToneBody {
    /// `beep`, `billing`, `busy`, `ringback` or `custom`.
    #[schema(value_type = String)]
    pub tone: ToneName,
    /// For `custom`: 1–3 frequencies, 50–4000 Hz.
    #[serde(default)]
    pub frequencies: Vec<u32>,
    /// How long (ms, 1–10000); each tone has a default.
    #[serde(default)]
    pub duration_ms: Option<u32>,
}

/// `lineGenerateTone`: play a tone to the far parties of a connected call.
#[utoipa::path(post, path = "/v1/calls/{call}/tone", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = ToneBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tone(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<ToneBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let req = ToneRequest {
        tone: b.tone,
        frequencies: b.frequencies,
        duration_ms: b.duration_ms,
    };
    // Checked before the switch sees it (and again there).
    req.plan()?;
    let done = exec(&st, &app, Command::GenerateTone(call, req), Some(call)).await?;
    Ok(reply_response(done, Some(call), StatusCode::OK))
}

/// A tone to watch for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToneWatchBody {
    /// Its frequencies (1–3, 50–4000 Hz), all present at once.
    pub frequencies: Vec<u32>,
    /// How long it must last (ms, 20–60000).
    pub duration_ms: u32,
}

/// Body of `PUT /v1/calls/{call}/monitor` (replaces what was asked before).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorBody {
    /// `digits.received` events (on when absent).
    #[serde(default)]
    pub digits: Option<bool>,
    /// Tones to report as `tone.detected` (at most 4).
    #[serde(default)]
    pub tones: Vec<ToneWatchBody>,
    /// Media modes to report as `media.detected` (`g3fax`).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub media_modes: Vec<MediaMode>,
}

/// `lineMonitorDigits`, `lineMonitorTones` and `lineMonitorMedia`: what
/// this app is told of the call's media. Owners and monitors.
#[utoipa::path(put, path = "/v1/calls/{call}/monitor", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = MonitorBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn monitor(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<MonitorBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let tones = b
        .tones
        .into_iter()
        .map(|t| ToneWatch {
            frequencies: t.frequencies,
            duration_ms: t.duration_ms,
        })
        .collect();
    let spec = MonitorSpec::new(b.digits, tones, b.media_modes)?;
    let done = exec(&st, &app, Command::Monitor(call, spec), Some(call)).await?;
    Ok(reply_response(done, Some(call), StatusCode::OK))
}
