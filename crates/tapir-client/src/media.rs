//! [`MediaStream`]: a call's audio from `GET /v1/calls/{call}/media`
//! (a WebSocket), and audio an owner sends back.
//!
//! The stream opens with the server's format frame (read by
//! [`Client::media`]); then [`MediaStream::next`] yields 20 ms frames of
//! 16-bit samples (channels interleaved), the server's counts, and how the
//! stream closed. No reconnection: a call's audio cannot be replayed.

use crate::{Client, ClientError, Result, api_error};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The format the server stated in its first frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaFormat {
    /// Samples per second (8000 or 16000).
    pub rate: u32,
    /// 1 (what the address hears) or 2 (and what it says, interleaved).
    pub channels: u16,
    /// Milliseconds per frame (20).
    pub frame_ms: u32,
}

impl MediaFormat {
    /// Samples per channel in one frame.
    pub fn frame_samples(&self) -> usize {
        (self.rate * self.frame_ms / 1000) as usize
    }
}

/// What a media stream yields.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaMessage {
    /// One frame: 16-bit samples, channels interleaved (channel 1 what the
    /// address hears, channel 2 what it says).
    Audio(Vec<i16>),
    /// The server's counts (`{"type":"stats","frames","dropped","play_dropped","final"}`).
    Stats(Value),
    /// The server closed the stream: the close code (1000 when the call's
    /// media ended, 1007 for a frame it could not take, 1008 for audio
    /// from a monitor) and its reason.
    Closed {
        /// WebSocket close code.
        code: u16,
        /// The server's sentence.
        reason: String,
    },
}

/// A call's audio over a WebSocket ([`Client::media`]).
#[derive(Debug)]
pub struct MediaStream {
    ws: Socket,
    format: MediaFormat,
}

impl MediaStream {
    /// The stream's format.
    pub fn format(&self) -> MediaFormat {
        self.format
    }

    /// The next message; `None` once the socket has ended.
    pub async fn next(&mut self) -> Option<Result<MediaMessage>> {
        loop {
            let m = match self.ws.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            return Some(Ok(match m {
                Message::Binary(b) => MediaMessage::Audio(
                    b.chunks_exact(2)
                        .map(|c| i16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                ),
                Message::Text(t) => match serde_json::from_str(t.as_str()) {
                    Ok(v) => MediaMessage::Stats(v),
                    Err(e) => {
                        return Some(Err(ClientError::Protocol(format!(
                            "media stream text frame is not JSON: {e}"
                        ))));
                    }
                },
                Message::Close(c) => MediaMessage::Closed {
                    code: c.as_ref().map_or(1005, |c| u16::from(c.code)),
                    reason: c.map(|c| c.reason.to_string()).unwrap_or_default(),
                },
                _ => continue,
            }));
        }
    }

    /// Sends 20 ms of mono audio at the stream's rate to be played into the
    /// call (owners only).
    pub async fn send_audio(&mut self, samples: &[i16]) -> Result<()> {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.send_bytes(bytes).await
    }

    /// Sends a binary frame as it is.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// What is sent back replaces the party (`false`, the default) or is
    /// mixed with it (`true`).
    pub async fn set_mix(&mut self, mix: bool) -> Result<()> {
        let mode = if mix { "mix" } else { "replace" };
        self.send_text(serde_json::json!({ "play": mode }).to_string())
            .await
    }

    /// Drops what was sent and not yet played, at once (barge-in).
    pub async fn clear(&mut self) -> Result<()> {
        self.send_text(r#"{"clear":true}"#.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Closes the stream.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Opens the media stream of `call` and reads its format frame.
pub(crate) async fn open(
    client: &Client,
    call: &str,
    rate: u32,
    both: bool,
) -> Result<MediaStream> {
    let mut url = client.url(&["v1", "calls", call, "media"]);
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| ClientError::Invalid(format!("cannot make a WebSocket URL of {url}")))?;
    url.query_pairs_mut()
        .append_pair("rate", &rate.to_string())
        .append_pair("direction", if both { "both" } else { "in" });
    let mut req = url.as_str().into_client_request()?;
    if let Some(t) = client.token() {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| ClientError::Invalid("the token is not a valid header value".into()))?;
        req.headers_mut().insert("authorization", v);
    }
    let connector = tokio_tungstenite::Connector::Rustls(client.tls());
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector));
    let mut ws = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => {
            return Err(ClientError::Protocol(
                "the media stream did not open within 10 s".into(),
            ));
        }
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            let body = resp.body().clone().unwrap_or_default();
            return Err(api_error(status, &body, None));
        }
        Ok(Err(e)) => return Err(e.into()),
    };
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .map_err(|_| ClientError::Protocol("no format frame within 10 s".into()))?;
    let text = match first {
        Some(Ok(Message::Text(t))) => t,
        other => {
            return Err(ClientError::Protocol(format!(
                "the media stream did not start with its format: {other:?}"
            )));
        }
    };
    let v: Value = serde_json::from_str(text.as_str())
        .map_err(|e| ClientError::Protocol(format!("format frame: {e}")))?;
    let num = |k: &str| v.get(k).and_then(Value::as_u64);
    let format = match (
        v.get("format").and_then(Value::as_str),
        num("rate"),
        num("channels"),
        num("frame_ms"),
    ) {
        (Some("pcm16le"), Some(rate), Some(channels), Some(frame_ms)) => MediaFormat {
            rate: u32::try_from(rate).unwrap_or(8000),
            channels: u16::try_from(channels).unwrap_or(1),
            frame_ms: u32::try_from(frame_ms).unwrap_or(20),
        },
        _ => {
            return Err(ClientError::Protocol(format!(
                "a format this client does not know: {v}"
            )));
        }
    };
    Ok(MediaStream { ws, format })
}
