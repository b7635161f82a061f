//! `GET /v1/calls/{call}/media?rate=8000|16000&direction=in|both`: a
//! call's audio over a WebSocket, for an app that owns or monitors the
//! call; an owner may send audio back.
//!
//! The socket glue only: the engine taps the call's leg
//! ([`tapir_media::MediaEngine::tap`]) and plays what an owner sends
//! ([`tapir_media::MediaEngine::play`]); framing, resampling and frame
//! checks are [`tapir_media::stream`]'s. Everything is checked before the
//! upgrade (token, parameters, the app's privilege on the call, the call's
//! media), so a refusal is the API's usual error JSON.
//!
//! On the socket: a first text frame with the format, then one binary frame
//! per 20 ms; a `{"type":"stats",…}` text frame every [`STATS_EVERY`] and a
//! last one (`"final":true`) before the close frame. An owner sends binary
//! frames (mono, the stream's rate, 20 ms) and text frames
//! `{"play":"replace"|"mix"}` and `{"clear":true}`. A frame of the wrong
//! size or a text frame not understood closes the socket with 1007, audio
//! from a monitor with 1008; the call's end closes it with 1000.
//!
//! The app's privilege is checked again every [`RIGHTS_EVERY`]: an app that
//! lost its handle (deallocated, closed the line) is closed with 1008, one
//! that is now only a monitor stops playing (and may no longer send).
//!
//! The media thread never waits on a socket: frames go through the tap's
//! bounded queue (a reader that falls behind loses whole frames, counted
//! in `tapir_media_stream_frames_dropped_total` and in the stats frames), and
//! a send that does not complete within [`SEND_TIMEOUT`] ends the stream.

use super::{AppState, AuthApp, call_id};
use crate::error::{ApiError, ErrorBody};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use std::time::Duration;
use tapir_core::Privilege;
use tapir_media::stream::{
    Encoder, PlayMode, Rate, StreamDirection, StreamFormat, decode_play_frame,
};
use tapir_media::{MediaPlay, MediaTap};

/// Frames the tap's queue holds for a reader (1 s): beyond, frames are
/// dropped and counted.
pub const TAP_QUEUE_FRAMES: usize = 50;

/// Frames an owner may send ahead of playing time (10 s): beyond, frames
/// are dropped and counted (`play_dropped`).
pub const PLAY_QUEUE_FRAMES: usize = 500;

/// How often a running stream checks the app's privilege on the call
/// again.
pub const RIGHTS_EVERY: Duration = Duration::from_secs(1);

/// How often the stream reports its counts.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// A send to the socket that takes longer ends the stream (a reader that
/// stopped reading entirely).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message taken from the socket (a 16 kHz frame is 640 bytes).
const MAX_MESSAGE: usize = 16 * 1024;

/// The socket's read buffer.
const READ_BUFFER: usize = 4 * 1024;

/// Buckets of `tapir_media_stream_latency_seconds`.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06,
    0.08, 0.1, 0.2, 0.5,
];

/// HELP lines of the media stream metrics (once the recorder is installed).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "tapir_media_streams",
        "Taps and plays of apps' media streams the media engine holds (at scrape)"
    );
    metrics::describe_gauge!(
        "tapir_media_stream_sockets",
        "Open media stream WebSockets (GET /v1/calls/{call}/media)"
    );
    metrics::describe_counter!(
        "tapir_media_stream_frames_total",
        "20 ms frames sent on media stream WebSockets"
    );
    metrics::describe_counter!(
        "tapir_media_stream_frames_dropped_total",
        "20 ms frames dropped because a media stream's reader was behind (its queue was full)"
    );
    metrics::describe_counter!(
        "tapir_media_stream_play_dropped_total",
        "20 ms frames an owner sent back beyond the play queue (dropped)"
    );
    metrics::describe_histogram!(
        "tapir_media_stream_latency_seconds",
        metrics::Unit::Seconds,
        "From the RTP packet read (or the audio generated) to its frame written to the WebSocket"
    );
}

/// Stream a call's audio (WebSocket upgrade).
#[utoipa::path(get, path = "/v1/calls/{call}/media", tag = "media",
    params(("call" = String, Path, description = "call id"),
           ("rate" = Option<u32>, Query, description = "8000 (default) or 16000 (upsampled from G.711's 8 kHz)"),
           ("direction" = Option<String>, Query, description = "`in` (default): what the call's address hears; `both`: that on channel 1 and what it says on channel 2"),
           ("access_token" = Option<String>, Query, description = "the app token, for clients that cannot set `Authorization` on a WebSocket")),
    responses((status = 101, description = "WebSocket: a text frame `{\"format\":\"pcm16le\",\"rate\":…,\"channels\":1|2,\"frame_ms\":20}`, then 20 ms binary PCM16LE frames; an owner may send mono frames back, `{\"play\":\"replace\"|\"mix\"}` and `{\"clear\":true}`"),
              (status = 400, description = "unknown rate or direction, or not a WebSocket request", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "not a call this app has a handle to", body = ErrorBody),
              (status = 409, description = "the call has no media, or a monitor on a secure call", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn media(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let format = format_of(&q)?;
    let ws = ws.map_err(|e| ApiError::param(format!("this endpoint is a WebSocket: {e}")))?;
    let id = call_id(&call)?;
    let app_id = app.id;
    let (privilege, secure, target) = st
        .handle
        .with(move |sw, _| {
            let info = sw.call_info(app_id, id)?;
            let target = sw.audio_leg_of(id);
            Ok::<_, tapir_core::TapiError>((info.privilege, info.secure, target))
        })
        .await
        .map_err(|_| ApiError::unavailable())??;
    if secure && privilege == Privilege::Monitor {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "operationunavail",
            format!("{call} is secure: it refuses monitoring applications' media streams"),
        ));
    }
    let no_media = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalcallstate",
            format!("{call} has no media to stream (not yet, or no more)"),
        )
    };
    let (engine, (leg, from_peer)) = st.media.as_ref().zip(target).ok_or_else(no_media)?;
    let leg = tapir_media::LegId(leg.0);
    let tap = engine
        .tap(
            leg,
            format.direction == StreamDirection::Both,
            from_peer,
            TAP_QUEUE_FRAMES,
        )
        .map_err(|_| no_media())?;
    let play = match privilege {
        Privilege::Owner => Some(
            engine
                .play(leg, PLAY_QUEUE_FRAMES)
                .map_err(|_| no_media())?,
        ),
        Privilege::Monitor => None,
    };
    tracing::info!(%call, app = %app.entry.name, rate = format.rate.hz(), channels = format.direction.channels(), owner = play.is_some(), "media stream");
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        // A stream reads small frames and writes one frame at a time:
        // the 128 KiB buffers of the defaults would be most of its memory.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let rights = Rights {
                handle: st.handle.clone(),
                app: app_id,
                call: id,
            };
            stream(socket, tap, play, format, rights)
        }))
}

/// The format `?rate=` and `?direction=` ask for (8000 and `in` when
/// absent).
fn format_of(q: &HashMap<String, String>) -> Result<StreamFormat, ApiError> {
    let rate = match q.get("rate") {
        None => Rate::Narrow,
        Some(r) => r
            .parse::<u32>()
            .ok()
            .and_then(Rate::from_hz)
            .ok_or_else(|| {
                ApiError::param(format!(
                    "rate={r:?} is not offered: the stream is 8000 or 16000 Hz"
                ))
            })?,
    };
    let direction = match q.get("direction") {
        None => StreamDirection::In,
        Some(d) => StreamDirection::from_name(d).ok_or_else(|| {
            ApiError::param(format!(
                "direction={d:?} is not offered: `in` (what the address hears) or `both`"
            ))
        })?,
    };
    Ok(StreamFormat { rate, direction })
}

/// Counts open media sockets in `tapir_media_stream_sockets`.
struct SocketGauge;

impl SocketGauge {
    fn new() -> SocketGauge {
        metrics::gauge!("tapir_media_stream_sockets").increment(1.0);
        SocketGauge
    }
}

impl Drop for SocketGauge {
    fn drop(&mut self) {
        metrics::gauge!("tapir_media_stream_sockets").decrement(1.0);
    }
}

/// What an owner's text frame asks.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Mode(PlayMode),
    Clear,
}

/// `{"play":"replace"|"mix"}` or `{"clear":true}`.
fn control(text: &str) -> Result<Control, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "a text frame that is not JSON".to_string())?;
    if v.get("clear").and_then(serde_json::Value::as_bool) == Some(true) {
        return Ok(Control::Clear);
    }
    if let Some(mode) = v.get("play").and_then(serde_json::Value::as_str) {
        return PlayMode::from_name(mode)
            .map(Control::Mode)
            .ok_or_else(|| "play is \"replace\" or \"mix\"".to_string());
    }
    Err("text frames are {\"play\":\"replace\"|\"mix\"} or {\"clear\":true}".to_string())
}

/// What the stream counted.
#[derive(Debug, Default)]
struct Counts {
    frames: u64,
    /// Drops of the tap and of the play already added to the metrics.
    dropped: u64,
    play_dropped: u64,
}

impl Counts {
    /// Adds the drops since the last call to the metrics; the stats frame.
    fn report(&mut self, tap: &MediaTap, play: Option<&MediaPlay>, last: bool) -> Message {
        let dropped = tap.dropped();
        let play_dropped = play.map_or(0, MediaPlay::dropped);
        metrics::counter!("tapir_media_stream_frames_dropped_total")
            .increment(dropped.saturating_sub(self.dropped));
        metrics::counter!("tapir_media_stream_play_dropped_total")
            .increment(play_dropped.saturating_sub(self.play_dropped));
        self.dropped = dropped;
        self.play_dropped = play_dropped;
        Message::Text(
            serde_json::json!({
                "type": "stats",
                "frames": self.frames,
                "dropped": dropped,
                "play_dropped": play_dropped,
                "final": last,
            })
            .to_string()
            .into(),
        )
    }
}

/// Send with [`SEND_TIMEOUT`]; `false` when the socket is gone or stuck.
async fn send(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(m)).await,
        Ok(Ok(()))
    )
}

/// A close frame (the reason cut to what a close frame carries).
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// Whose stream it is, to check again while it runs.
struct Rights {
    handle: crate::actor::SwitchHandle,
    app: tapir_core::AppId,
    call: tapir_core::CallId,
}

/// What the app may still do with the stream.
enum Still {
    /// Listen and, while it owns the call, talk.
    Allowed { owner: bool },
    /// Nothing: the close code and reason.
    Refused(u16, &'static str),
}

impl Rights {
    /// The app's privilege on the call now: its handle may have gone
    /// (deallocated, line closed), or become a monitor's (set privilege,
    /// handoff), or the call secure.
    async fn check(&self) -> Still {
        let (app, call) = (self.app, self.call);
        match self
            .handle
            .with(move |sw, _| sw.call_info(app, call).map(|i| (i.privilege, i.secure)))
            .await
        {
            Ok(Ok((Privilege::Owner, _))) => Still::Allowed { owner: true },
            Ok(Ok((Privilege::Monitor, false))) => Still::Allowed { owner: false },
            Ok(Ok((Privilege::Monitor, true))) => Still::Refused(
                1008,
                "the call became secure: it refuses monitoring applications' media streams",
            ),
            Ok(Err(_)) => {
                Still::Refused(1008, "this application no longer has a handle to the call")
            }
            Err(_) => Still::Refused(1011, "the switch has stopped"),
        }
    }
}

async fn stream(
    mut socket: WebSocket,
    mut tap: MediaTap,
    mut play: Option<MediaPlay>,
    format: StreamFormat,
    rights: Rights,
) {
    let _gauge = SocketGauge::new();
    let mut counts = Counts::default();
    if !send(&mut socket, Message::Text(format.header().into())).await {
        counts.report(&tap, play.as_ref(), true);
        return;
    }
    let mut encoder = Encoder::new();
    let mut buf = Vec::with_capacity(format.frame_bytes());
    let mut stats = tokio::time::interval(STATS_EVERY);
    stats.tick().await;
    let mut recheck = tokio::time::interval(RIGHTS_EVERY);
    recheck.tick().await;
    let (code, reason): (u16, String) = loop {
        tokio::select! {
            frame = tap.recv() => match frame {
                None => break (1000, "the call's media ended".into()),
                Some(f) => {
                    encoder.encode(format, &f, &mut buf);
                    if !send(&mut socket, Message::Binary(buf.clone().into())).await {
                        counts.report(&tap, play.as_ref(), true);
                        return;
                    }
                    metrics::histogram!("tapir_media_stream_latency_seconds")
                        .record(f.at.elapsed().as_secs_f64());
                    metrics::counter!("tapir_media_stream_frames_total").increment(1);
                    counts.frames += 1;
                }
            },
            _ = recheck.tick() => match rights.check().await {
                Still::Allowed { owner: true } => {}
                // No longer an owner: what it sends stops at once.
                Still::Allowed { owner: false } => play = None,
                Still::Refused(code, reason) => break (code, reason.into()),
            },
            _ = stats.tick() => {
                let m = counts.report(&tap, play.as_ref(), false);
                if !send(&mut socket, m).await {
                    return;
                }
            },
            m = socket.recv() => match m {
                // Gone without a word, or closed: the tap and the play go
                // with this task.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    counts.report(&tap, play.as_ref(), true);
                    return;
                }
                Some(Ok(Message::Binary(b))) => match play.as_mut() {
                    None => break (1008, "only an owner of the call may send audio; this app monitors it".into()),
                    Some(p) => match decode_play_frame(format, &b) {
                        Ok(pcm) => {
                            p.push(pcm);
                        }
                        Err(e) => break (1007, e.to_string()),
                    },
                },
                Some(Ok(Message::Text(t))) => match (control(t.as_str()), play.as_ref()) {
                    (Err(e), _) => break (1007, e),
                    (Ok(_), None) => break (1008, "only an owner of the call may control what is played".into()),
                    (Ok(Control::Mode(m)), Some(p)) => p.set_mode(m),
                    (Ok(Control::Clear), Some(p)) => p.clear(),
                },
                Some(Ok(_)) => {}
            },
        }
    };
    tracing::debug!(code, %reason, "media stream closes");
    let last = counts.report(&tap, play.as_ref(), true);
    // The play stops at once, whatever the close costs.
    drop(play.take());
    if send(&mut socket, last).await {
        let _ = send(&mut socket, close(code, &reason)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_controls() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        let f = format_of(&q(&[])).unwrap();
        assert_eq!((f.rate, f.direction), (Rate::Narrow, StreamDirection::In));
        let f = format_of(&q(&[("rate", "16000"), ("direction", "both")])).unwrap();
        assert_eq!((f.rate, f.direction), (Rate::Wide, StreamDirection::Both));
        assert_eq!(
            format_of(&q(&[("rate", "44100")])).unwrap_err().code,
            "invalparam"
        );
        assert_eq!(
            format_of(&q(&[("direction", "out")])).unwrap_err().code,
            "invalparam"
        );
        assert_eq!(control(r#"{"clear":true}"#), Ok(Control::Clear));
        assert_eq!(
            control(r#"{"play":"mix"}"#),
            Ok(Control::Mode(PlayMode::Mix))
        );
        assert!(control(r#"{"play":"loud"}"#).is_err());
        assert!(control("nonsense").is_err());
        let Message::Close(Some(c)) = close(1007, &"é".repeat(100)) else {
            panic!("a close frame")
        };
        assert!(c.reason.len() <= 123);
    }
}
