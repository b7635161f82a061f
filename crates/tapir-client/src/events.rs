//! [`EventStream`]: the app's events from `GET /v1/events?since=N` (a
//! WebSocket), typed, with reconnection.
//!
//! A task owns the socket. When the socket drops it reconnects with `since`
//! = the last `seq` it delivered, so the stream goes on without a gap or a
//! repeat (the server replays from its journal). When the server says the
//! journal no longer holds what was missed (`stream.resync`), the task takes
//! the `GET /v1/calls` snapshot, delivers it as one [`EventKind::Resync`]
//! event and goes on after the snapshot's `seq`. Reconnection is bounded:
//! after [`EventsOptions::max_retries`] failed attempts in a row the stream
//! yields the error and ends; a refusal by the server (a bad token) ends it
//! at once.

use crate::wire::{CallList, Event, EventKind};
use crate::{Client, ClientError, Result, api_error};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// How the event stream reconnects.
#[derive(Clone, Debug)]
pub struct EventsOptions {
    /// Failed connection attempts in a row before the stream gives up.
    pub max_retries: u32,
    /// First wait between attempts (doubles up to [`Self::max_backoff`]).
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// A socket silent this long (the server pings every 30 s) is taken as
    /// dead and replaced.
    pub idle_timeout: Duration,
    /// Events buffered between the socket task and the reader.
    pub buffer: usize,
}

impl Default for EventsOptions {
    fn default() -> EventsOptions {
        EventsOptions {
            max_retries: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(75),
            buffer: 256,
        }
    }
}

/// A typed stream of this app's events; implements [`Stream`] and has an
/// inherent [`EventStream::next`]. Dropping it closes the socket.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Result<Event>>,
    shared: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counters {
    last_seq: AtomicU64,
    connects: AtomicU64,
}

impl EventStream {
    pub(crate) fn start(client: Client, since: u64, options: EventsOptions) -> EventStream {
        let (tx, rx) = mpsc::channel(options.buffer.max(1));
        let shared = Arc::new(Counters::default());
        shared.last_seq.store(since, Ordering::Relaxed);
        let task = tokio::spawn(run(client, since, options, tx, shared.clone()));
        EventStream { rx, shared, task }
    }

    /// The next event; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        self.rx.recv().await
    }

    /// The `seq` of the last event the socket task received (what a
    /// reconnection resumes after).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Relaxed)
    }

    /// How many times a socket was opened (1 + reconnections).
    pub fn connections(&self) -> u64 {
        self.shared.connects.load(Ordering::Relaxed)
    }
}

impl Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the WebSocket for events after `since`.
async fn open(client: &Client, since: u64) -> Result<Socket> {
    let mut url = client.url(&["v1", "events"]);
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| ClientError::Invalid(format!("cannot make a WebSocket URL of {url}")))?;
    url.query_pairs_mut()
        .append_pair("since", &since.to_string());
    let mut req = url.as_str().into_client_request()?;
    if let Some(t) = client.token() {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| ClientError::Invalid("the token is not a valid header value".into()))?;
        req.headers_mut().insert("authorization", v);
    }
    let connector = tokio_tungstenite::Connector::Rustls(client.tls());
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector));
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => Err(ClientError::Protocol(
            "the event stream did not open within 10 s".into(),
        )),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            Err(api_error(status, &body, None))
        }
        Ok(Err(e)) => Err(e.into()),
    }
}

/// Why a socket ended.
enum Ended {
    /// The reader went away: stop.
    Reader,
    /// The socket closed or failed: reconnect.
    Socket,
}

async fn run(
    client: Client,
    mut since: u64,
    options: EventsOptions,
    tx: mpsc::Sender<Result<Event>>,
    shared: Arc<Counters>,
) {
    let mut failures = 0u32;
    let mut backoff = options.backoff;
    loop {
        if tx.is_closed() {
            return;
        }
        match open(&client, since).await {
            Ok(ws) => {
                shared.connects.fetch_add(1, Ordering::Relaxed);
                failures = 0;
                backoff = options.backoff;
                match read(ws, &client, &mut since, &options, &tx, &shared).await {
                    Ended::Reader => return,
                    Ended::Socket => continue,
                }
            }
            // The server refused us (bad token, no such endpoint): retrying
            // will not help.
            Err(e @ ClientError::Api { .. }) | Err(e @ ClientError::Invalid(_)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                failures += 1;
                if failures > options.max_retries {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                tracing::debug!(failures, "event stream: reconnecting: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tx.closed() => return,
                }
                backoff = (backoff * 2).min(options.max_backoff);
            }
        }
    }
}

/// Deliver the events of one socket until it ends.
async fn read(
    mut ws: Socket,
    client: &Client,
    since: &mut u64,
    options: &EventsOptions,
    tx: &mpsc::Sender<Result<Event>>,
    shared: &Counters,
) -> Ended {
    loop {
        let msg = tokio::select! {
            _ = tx.closed() => {
                let _ = ws.close(None).await;
                return Ended::Reader;
            }
            m = tokio::time::timeout(options.idle_timeout, ws.next()) => m,
        };
        let text = match msg {
            Err(_) => {
                tracing::debug!("event stream: silent socket replaced");
                return Ended::Socket;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Ended::Socket,
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
        };
        let value: Value = match serde_json::from_str(text.as_str()) {
            Ok(v) => v,
            Err(e) => {
                if tx
                    .send(Err(ClientError::Protocol(format!(
                        "event is not JSON: {e}"
                    ))))
                    .await
                    .is_err()
                {
                    return Ended::Reader;
                }
                continue;
            }
        };
        if value.get("type").and_then(Value::as_str) == Some("stream.resync") {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the stream lost events")
                .to_string();
            let item = match client.get::<CallList>(&["v1", "calls"]).await {
                Ok(list) => {
                    *since = list.seq;
                    shared.last_seq.store(list.seq, Ordering::Relaxed);
                    Ok(Event {
                        seq: list.seq,
                        event_type: "stream.resync".into(),
                        raw: value,
                        kind: EventKind::Resync {
                            message,
                            calls: list.calls,
                        },
                    })
                }
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() {
                return Ended::Reader;
            }
            return Ended::Socket;
        }
        match Event::parse(value) {
            Ok(Some(ev)) => {
                if ev.seq <= *since {
                    continue;
                }
                *since = ev.seq;
                shared.last_seq.store(ev.seq, Ordering::Relaxed);
                if tx.send(Ok(ev)).await.is_err() {
                    return Ended::Reader;
                }
            }
            Ok(None) => {}
            Err(e) => {
                if tx
                    .send(Err(ClientError::Protocol(format!(
                        "event not understood: {e}"
                    ))))
                    .await
                    .is_err()
                {
                    return Ended::Reader;
                }
            }
        }
    }
}
