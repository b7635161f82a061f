//! Call recording: `POST /v1/calls/{call}/record` (start, pause, resume,
//! stop) and `/v1/recordings` (list, metadata, the WAV file, delete).
//!
//! Privileges: starting and controlling a recording takes an app that
//! **owns** the call (a monitor is `403 notowner`; an app without a handle
//! `404 invalcallhandle`). A recording is then seen, downloaded and deleted
//! by every app whose lines include the recorded call's address (its owners
//! and monitors, as for the call itself), and by the admin token; for any
//! other app it does not exist (`404`). The recording itself is
//! [`crate::recording`]'s.

use super::{AnyToken, ApiJson, AppState, AuthApp, call_id};
use crate::error::{ApiError, ErrorBody};
use crate::recording::{RecordError, Target};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapir_core::Privilege;
use tapir_media::record::Channels;
use utoipa::ToSchema;

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> ApiError {
        let message = e.to_string();
        match e {
            RecordError::NotRecording(_)
            | RecordError::AlreadyRecording { .. }
            | RecordError::AlreadyInState { .. }
            | RecordError::Running(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalcallstate", message)
            }
            RecordError::TooMany { .. } | RecordError::LowDisk { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "resourceunavail", message)
            }
            RecordError::Unknown(_) => not_found(),
            RecordError::Io(_) | RecordError::Store(_) => {
                tracing::error!("recording: {message}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "operationfailed",
                    message,
                )
            }
        }
    }
}

/// The body of `POST /v1/calls/{call}/record`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// `start`, `pause`, `resume` or `stop`.
    pub action: String,
    /// With `start`: `stereo` (the default; channel 1 what the call's
    /// address hears, channel 2 what it says) or `mixed` (one channel).
    #[serde(default)]
    pub channels: Option<String>,
}

/// `{"recording":"<id>"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordReply {
    /// The recording's id.
    pub recording: String,
}

/// `{"recordings":[…]}`: each recording's metadata (`id`, `call`,
/// `address`, `parties`, `app`, `channels`, `state`
/// `recording`|`paused`|`stopped`, `started_at`, `ended_at`, `duration_ms`,
/// `size`, `dropped_frames`, `end_reason`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingList {
    /// Newest first.
    pub recordings: Vec<Value>,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalparam",
        "there is no such recording",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Pause,
    Resume,
    Stop,
}

fn parse(body: &RecordBody) -> Result<(Action, Channels), ApiError> {
    let action = match body.action.as_str() {
        "start" => Action::Start,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "stop" => Action::Stop,
        other => {
            return Err(ApiError::param(format!(
                "action {other:?} is not one of \"start\", \"pause\", \"resume\", \"stop\""
            )));
        }
    };
    let channels = match (&body.channels, action) {
        (None, _) => Channels::Stereo,
        (Some(c), Action::Start) => Channels::from_name(c).ok_or_else(|| {
            ApiError::param(format!(
                "channels {c:?} is not offered: \"stereo\" (one party per channel) or \"mixed\""
            ))
        })?,
        (Some(_), _) => {
            return Err(ApiError::param(
                "channels is chosen when a recording starts, not on pause, resume or stop",
            ));
        }
    };
    Ok((action, channels))
}

/// Whether `token` may see a recording (`doc`).
fn may_see(token: &AnyToken, doc: &Value) -> bool {
    match token {
        AnyToken::Admin => true,
        AnyToken::App(a) => doc["address"].as_str().is_some_and(|x| a.entry.may_open(x)),
    }
}

/// Start, pause, resume or stop recording a call.
#[utoipa::path(post, path = "/v1/calls/{call}/record", tag = "media",
    params(("call" = String, Path, description = "call id")),
    request_body = RecordBody,
    responses((status = 200, description = "the recording", body = RecordReply),
              (status = 400, description = "unknown action or channels", body = ErrorBody),
              (status = 403, description = "the app monitors the call (notowner)", body = ErrorBody),
              (status = 404, description = "not a call this app has a handle to", body = ErrorBody),
              (status = 409, description = "secure call (operationunavail); no media, already recorded, not recorded, already paused or running (invalcallstate)", body = ErrorBody),
              (status = 503, description = "too many recordings, or too little free disk (resourceunavail)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(body): ApiJson<RecordBody>,
) -> Result<Json<RecordReply>, ApiError> {
    let (action, channels) = parse(&body)?;
    let id = call_id(&call)?;
    let app_id = app.id;
    let (info, target) = st
        .handle
        .with(move |sw, _| {
            let info = sw.call_info(app_id, id)?;
            let target = sw.audio_leg_of(id);
            Ok::<_, tapir_core::TapiError>((info, target))
        })
        .await
        .map_err(|_| ApiError::unavailable())??;
    if info.privilege != Privilege::Owner {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "notowner",
            format!(
                "application {} monitors {call}: only an owner of the call records it",
                app.entry.name
            ),
        ));
    }
    let rec = &st.recordings;
    let id = match action {
        Action::Start => {
            let secure_leg = match (&st.media, target) {
                (Some(engine), Some((leg, _))) => engine.is_secure(tapir_media::LegId(leg.0)),
                _ => false,
            };
            if info.secure || secure_leg {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "operationunavail",
                    format!("{call} is secure: a secure call refuses recording"),
                ));
            }
            let Some((leg, from_peer)) = target else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "invalcallstate",
                    format!("{call} has no media to record (not yet, or no more)"),
                ));
            };
            let mut parties = vec![info.address.to_string()];
            for p in [
                Some(&info.caller),
                Some(&info.called),
                info.connected.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                if !p.address.is_empty() && !parties.contains(&p.address) {
                    parties.push(p.address.clone());
                }
            }
            let target = Target {
                call: id,
                address: info.address.to_string(),
                parties,
                app: app.entry.name.clone(),
                app_id,
                leg: tapir_media::LegId(leg.0),
                from_peer,
            };
            rec.start(target, channels).await.map_err(|e| match e {
                RecordError::NotRecording(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "invalcallstate",
                    format!("{call} has no media to record (not yet, or no more)"),
                ),
                e => e.into(),
            })?
        }
        Action::Pause => rec.pause(id, true)?,
        Action::Resume => rec.pause(id, false)?,
        Action::Stop => rec.stop(id).await?,
    };
    Ok(Json(RecordReply { recording: id }))
}

/// The recordings this token may see, newest first.
#[utoipa::path(get, path = "/v1/recordings", tag = "media",
    responses((status = 200, description = "the recordings of calls at the app's addresses (all for the admin token)", body = RecordingList),
              (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_recordings(
    State(st): State<AppState>,
    token: AnyToken,
) -> Result<Json<RecordingList>, ApiError> {
    let all = st.recordings.list().await?;
    Ok(Json(RecordingList {
        recordings: all.into_iter().filter(|d| may_see(&token, d)).collect(),
    }))
}

/// A recording the token may see, or 404.
async fn visible(st: &AppState, token: &AnyToken, id: &str) -> Result<Value, ApiError> {
    match st.recordings.get(id).await? {
        Some(doc) if may_see(token, &doc) => Ok(doc),
        _ => Err(not_found()),
    }
}

/// A recording's metadata.
#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "media",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, description = "the recording's metadata"),
              (status = 404, description = "no such recording for this token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_recording(
    State(st): State<AppState>,
    token: AnyToken,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible(&st, &token, &id).await.map(Json)
}

/// A finished recording's audio (`audio/wav`, PCM16 8 kHz).
#[utoipa::path(get, path = "/v1/recordings/{id}/audio", tag = "media",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, description = "the WAV file", content_type = "audio/wav"),
              (status = 404, description = "no such recording for this token", body = ErrorBody),
              (status = 409, description = "still running (invalcallstate)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recording_audio(
    State(st): State<AppState>,
    token: AnyToken,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible(&st, &token, &id).await?;
    let (file, len) = st.recordings.open_audio(&id)?;
    let file = tokio::fs::File::from_std(file);
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)),
                    Some(file),
                ))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.wav\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Delete a finished recording (its file and its metadata).
#[utoipa::path(delete, path = "/v1/recordings/{id}", tag = "media",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 204, description = "deleted"),
              (status = 404, description = "no such recording for this token", body = ErrorBody),
              (status = 409, description = "still running (invalcallstate)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_recording(
    State(st): State<AppState>,
    token: AnyToken,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible(&st, &token, &id).await?;
    if st.recordings.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn body(action: &str, channels: Option<&str>) -> RecordBody {
        RecordBody {
            action: action.into(),
            channels: channels.map(Into::into),
        }
    }

    #[test]
    fn actions_and_channels() {
        assert_eq!(
            parse(&body("start", None)).unwrap(),
            (Action::Start, Channels::Stereo)
        );
        assert_eq!(
            parse(&body("start", Some("mixed"))).unwrap(),
            (Action::Start, Channels::Mixed)
        );
        assert_eq!(parse(&body("stop", None)).unwrap().0, Action::Stop);
        let e = parse(&body("rewind", None)).unwrap_err();
        assert_eq!(e.code, "invalparam");
        assert!(e.message.contains("\"rewind\""), "{}", e.message);
        let e = parse(&body("start", Some("surround"))).unwrap_err();
        assert!(e.message.contains("surround"), "{}", e.message);
        assert!(parse(&body("pause", Some("mixed"))).is_err());
    }
}
