//! Call recording: [`Client::record`] (`POST /v1/calls/{call}/record`) and
//! the recordings this app may see (`/v1/recordings`): their metadata, the
//! WAV file, deletion.

use crate::{Client, Result};
use serde::{Deserialize, Serialize};

/// What `record` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordAction {
    /// Start a recording.
    Start,
    /// Write silence until resumed.
    Pause,
    /// Write the call's audio again.
    Resume,
    /// End it: the file is final.
    Stop,
}

/// How a recording lays out the call's two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RecordChannels {
    /// Channel 1 what the call's address hears, channel 2 what it says.
    #[default]
    Stereo,
    /// Both directions in one channel.
    Mixed,
}

/// A recording's metadata (`GET /v1/recordings/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Recording {
    /// Its id (`rec-…`).
    pub id: String,
    /// The recorded call.
    pub call: String,
    /// The call's address.
    pub address: String,
    /// Every party's address when it started.
    pub parties: Vec<String>,
    /// The app that started it.
    pub app: String,
    /// `stereo` or `mixed`.
    pub channels: String,
    /// `recording`, `paused` or `stopped`.
    pub state: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Milliseconds of audio.
    pub duration_ms: u64,
    /// Bytes of the WAV file.
    pub size: u64,
    /// 20 ms frames the writer fell behind on (written as silence).
    pub dropped_frames: u64,
    /// Why it ended (`stopped`, `call_ended`, `secure`, `full`,
    /// `low_disk`, `write_failed`, `interrupted`).
    pub end_reason: Option<String>,
}

#[derive(Serialize)]
struct RecordBody {
    action: RecordAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    channels: Option<RecordChannels>,
}

#[derive(Deserialize)]
struct RecordReply {
    recording: String,
}

#[derive(Deserialize)]
struct RecordingList {
    recordings: Vec<Recording>,
}

impl Client {
    /// Start, pause, resume or stop recording `call` (an owner's); the
    /// recording's id. `channels` only with [`RecordAction::Start`].
    pub async fn record(
        &self,
        call: &str,
        action: RecordAction,
        channels: Option<RecordChannels>,
    ) -> Result<String> {
        let reply: RecordReply = self
            .post(
                &["v1", "calls", call, "record"],
                &RecordBody { action, channels },
            )
            .await?
            .json()?;
        Ok(reply.recording)
    }

    /// The recordings of calls at this app's addresses (every one with the
    /// admin token), newest first.
    pub async fn recordings(&self) -> Result<Vec<Recording>> {
        let l: RecordingList = self.get(&["v1", "recordings"]).await?;
        Ok(l.recordings)
    }

    /// One recording's metadata.
    pub async fn recording(&self, id: &str) -> Result<Recording> {
        self.get(&["v1", "recordings", id]).await
    }

    /// A finished recording's WAV file.
    pub async fn recording_audio(&self, id: &str) -> Result<Vec<u8>> {
        let mut rb = self
            .inner
            .http
            .get(self.url(&["v1", "recordings", id, "audio"]));
        if let Some(t) = &self.inner.token {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(crate::api_error(status.as_u16(), &bytes, None))
    }

    /// Delete a finished recording (file and metadata).
    pub async fn delete_recording(&self, id: &str) -> Result<()> {
        self.delete(&["v1", "recordings", id]).await
    }
}
