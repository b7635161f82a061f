//! `GET /v1/events?since=N`: the app's event stream over a WebSocket,
//! replayed from the journal after `since`, then live.
//!
//! The app token comes in `Authorization: Bearer`, or, for browsers (which
//! cannot set headers on a WebSocket), as `?access_token=` on the upgrade.
//!
//! A reader that falls too far behind, or asks for events the journal no
//! longer holds, gets one `{"type":"stream.resync",…}` message and the socket
//! closes: it must take the `GET /v1/calls` snapshot and reconnect with the
//! `seq` it carries. Events are never dropped silently.

use super::{AppState, AuthApp};
use crate::error::{ApiError, ErrorBody};
use crate::journal::Journal;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;
use tapir_core::AppId;
use tokio::sync::broadcast::error::RecvError;

/// Stream this app's events (WebSocket upgrade).
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("since" = Option<u64>, Query, description = "last seq seen; events after it are replayed"),
           ("access_token" = Option<String>, Query, description = "the app token, percent-encoded, for clients that cannot set `Authorization` on a WebSocket (browsers); taken on WebSocket upgrades only")),
    responses((status = 101, description = "WebSocket: one JSON event per message, `{\"seq\":N,\"type\":\"…\",…}`"),
              (status = 400, description = "not a WebSocket request or bad `since`", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let since = match q.get("since") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::param(format!("since={s:?} is not a sequence number")))?,
    };
    let ws = ws.map_err(|e| ApiError::param(format!("this endpoint is a WebSocket: {e}")))?;
    let journal = st.handle.journal().clone();
    let id = app.id;
    Ok(ws.on_upgrade(move |socket| stream(socket, journal, id, since)))
}

/// How often an idle stream is pinged (keeps proxies and NATs from closing it).
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Counts open event streams in `tapir_event_streams`.
struct StreamGauge;

impl StreamGauge {
    fn new() -> StreamGauge {
        metrics::gauge!("tapir_event_streams").increment(1.0);
        StreamGauge
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("tapir_event_streams").decrement(1.0);
    }
}

fn resync(last: u64, why: &str) -> Message {
    Message::Text(
        serde_json::json!({
            "type": "stream.resync",
            "last_seq": last,
            "message": why,
        })
        .to_string()
        .into(),
    )
}

async fn stream(mut socket: WebSocket, journal: Arc<Journal>, app: AppId, since: u64) {
    let sub = journal.subscribe(app, since);
    if sub.gap {
        let _ = socket
            .send(resync(
                since,
                "events after `since` are no longer in the journal; resync from GET /v1/calls",
            ))
            .await;
        let _ = socket.send(Message::Close(None)).await;
        return;
    }
    // A `since` beyond the journal means "from now on".
    let mut last = since.min(sub.last_seq);
    for (seq, text) in sub.backlog {
        if socket
            .send(Message::Text(text.as_ref().into()))
            .await
            .is_err()
        {
            return;
        }
        last = seq;
    }
    let mut live = sub.live;
    let _stream = StreamGauge::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            },
            r = live.recv() => match r {
                Ok((seq, text)) => {
                    if seq <= last {
                        continue;
                    }
                    if socket.send(Message::Text(text.as_ref().into())).await.is_err() {
                        return;
                    }
                    last = seq;
                }
                Err(RecvError::Lagged(_)) => {
                    tracing::info!(%app, last, "event reader too slow: told to resync");
                    let _ = socket
                        .send(resync(last, "this reader fell too far behind; resync from GET /v1/calls"))
                        .await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
