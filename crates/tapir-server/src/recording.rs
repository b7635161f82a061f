//! Call recording: a WAV file per recording in `<data_dir>/recordings`,
//! its metadata in the store, and the retention sweep.
//!
//! A recording is a tap on the call's leg ([`tapir_media::MediaEngine::tap`],
//! both directions) read by a writer thread of its own: the media thread
//! only ever `try_send`s frames to the tap's bounded queue, so a slow disk
//! makes the queue full and frames are dropped and counted, never RTP
//! delayed; the writer writes the dropped frames as silence when it catches
//! up, so the file's timeline stays the call's. The file's layout and header
//! are [`tapir_media::record`]'s.
//!
//! Life of a recording: `start` inserts its row (state `recording`) and
//! opens its file; `pause`/`resume` switch between the call's audio and
//! silence; it ends on `stop`, when the call's media ends (the call ended,
//! or its peer vanished and the RTP timeout cleared it), when the call
//! becomes secure, when the file is full (a WAV file's 4 GiB) or the disk
//! falls under half the free-space floor, or on a write error. Then the
//! header is made final, the file synced, and the row updated (state
//! `stopped`, `end_reason`). A process that stopped mid-recording leaves a
//! row in `recording`: the next start repairs the file's header from its
//! length and marks it `stopped` with `end_reason` `interrupted`.
//!
//! Ids are `rec-` and 32 hex digits from the OS's CSPRNG: unguessable, and
//! checked for exactly that shape before they name a file, so no id reaches
//! outside the directory.

use crate::config::RecordingConfig;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tapir_core::CallId;
use tapir_media::MediaTap;
use tapir_media::record::{Channels, WavWriter};
use tapir_store::{Store, StoredRecording};
use tokio::sync::{oneshot, watch};

/// Frames the tap's queue holds for the writer (2 s): beyond, frames are
/// dropped and counted (and written as silence when the writer catches up).
pub const TAP_QUEUE_FRAMES: usize = 100;

/// The writer thread's stack: it runs one small async loop.
const WRITER_STACK: usize = 256 * 1024;

/// Bytes the writer buffers before a write to the file (1 s of stereo).
const WRITE_BUFFER: usize = 32 * 1024;

/// How often a running recording checks that its call is still not secure.
const SECURE_EVERY: Duration = Duration::from_secs(1);

/// A request the recorder refuses, or could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No recording runs on the call.
    #[error("{0} is not being recorded")]
    NotRecording(String),
    /// The call is recorded already.
    #[error("{call} is already being recorded as {id}")]
    AlreadyRecording {
        /// The call.
        call: String,
        /// Its recording.
        id: String,
    },
    /// Pause of a paused recording, or resume of a running one.
    #[error("recording {id} is already {state}")]
    AlreadyInState {
        /// The recording.
        id: String,
        /// `paused` or `recording`.
        state: &'static str,
    },
    /// The configured number of recordings run already.
    #[error(
        "{max} recordings are running, the most [recording] max_concurrent allows; stop one first"
    )]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The data directory's file system is under the free-space floor.
    #[error(
        "the file system of the data directory has {free_mb} MiB free, under the {floor_mb} MiB \
         that [recording] min_free_mb keeps free"
    )]
    LowDisk {
        /// Free MiB.
        free_mb: u64,
        /// The floor.
        floor_mb: u64,
    },
    /// No such recording.
    #[error("there is no recording {0:?}")]
    Unknown(String),
    /// A recording that is still running cannot be downloaded or deleted.
    #[error("recording {0} is still running: stop it first")]
    Running(String),
    /// The file could not be created or read.
    #[error("recording file: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] tapir_store::StoreError),
}

/// Why a recording ended (`end_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `stop`.
    Stopped,
    /// The call's media ended (the call ended, or was cleared when its
    /// peer vanished).
    CallEnded,
    /// The call became secure.
    Secure,
    /// The file reached a WAV file's largest size.
    Full,
    /// The disk fell under half the free-space floor.
    LowDisk,
    /// The file could not be written.
    WriteFailed,
    /// The process stopped while it ran (found at the next start).
    Interrupted,
}

impl EndReason {
    /// Its name in the metadata.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Stopped => "stopped",
            EndReason::CallEnded => "call_ended",
            EndReason::Secure => "secure",
            EndReason::Full => "full",
            EndReason::LowDisk => "low_disk",
            EndReason::WriteFailed => "write_failed",
            EndReason::Interrupted => "interrupted",
        }
    }
}

/// What the writer is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Record,
    Pause,
    Stop(EndReason),
}

/// What a running recording's writer counts, read for live metadata.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of audio written.
    data: AtomicU64,
    /// Frames the tap dropped (written as silence).
    dropped: AtomicU64,
}

/// What the caller of [`Recordings::start`] knows of the call.
#[derive(Clone, Debug)]
pub struct Target {
    /// The call.
    pub call: CallId,
    /// The call's address.
    pub address: String,
    /// Every party's address (the call's first).
    pub parties: Vec<String>,
    /// The app that started it.
    pub app: String,
    /// The app's id, to check the call's secure flag while it runs.
    pub app_id: tapir_core::AppId,
    /// The leg to tap, and whether it is the far party's.
    pub leg: tapir_media::LegId,
    /// See [`tapir_media::MediaEngine::tap`].
    pub from_peer: bool,
}

/// A running recording.
#[derive(Debug)]
struct Active {
    call: CallId,
    doc: Value,
    cmd: watch::Sender<Cmd>,
    progress: Arc<Progress>,
    /// Raised once the row is final (the file closed).
    done: watch::Receiver<bool>,
}

#[derive(Debug, Default)]
struct Inner {
    active: HashMap<String, Active>,
    by_call: HashMap<CallId, String>,
}

/// The recorder: running recordings, and the finished ones through the
/// store.
#[derive(Debug)]
pub struct Recordings {
    dir: PathBuf,
    config: RecordingConfig,
    store: Store,
    media: Option<Arc<tapir_media::MediaEngine>>,
    handle: crate::actor::SwitchHandle,
    inner: Mutex<Inner>,
}

/// Whether `id` has the shape of a recording id (`rec-` and 32 lowercase
/// hex digits): only such ids name files.
#[must_use]
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("rec-").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A new recording id from the OS's CSPRNG.
fn new_id() -> Result<String, RecordError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(format!("random source: {e}")))?;
    let mut s = String::with_capacity(36);
    s.push_str("rec-");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    Ok(s)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn rfc3339(ms: u64) -> String {
    crate::wire::rfc3339(tapir_core::Timestamp(ms))
}

/// Free bytes for an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

const MIB: u64 = 1024 * 1024;

impl Recordings {
    /// The recorder of `<data_dir>/recordings` (created, mode 0700): marks
    /// what an earlier process left running as `interrupted` (its header
    /// repaired) and starts the retention sweep.
    ///
    /// # Errors
    /// The directory cannot be created, or the store fails.
    pub async fn open(
        config: RecordingConfig,
        data_dir: &Path,
        store: Store,
        media: Option<Arc<tapir_media::MediaEngine>>,
        handle: crate::actor::SwitchHandle,
    ) -> Result<Arc<Recordings>, RecordError> {
        let dir = data_dir.join("recordings");
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let rec = Arc::new(Recordings {
            dir,
            config,
            store,
            media,
            handle,
            inner: Mutex::new(Inner::default()),
        });
        rec.repair_interrupted().await?;
        let weak = Arc::downgrade(&rec);
        let every = Duration::from_secs_f64(rec.config.sweep_interval.clamp(0.05, 86_400.0));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(rec) = weak.upgrade() else { break };
                match rec.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "recording retention sweep"),
                    Err(e) => tracing::warn!("recording retention sweep: {e}"),
                }
            }
        });
        Ok(rec)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file of a recording (its id checked by the caller).
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wav"))
    }

    /// Recordings running now.
    #[must_use]
    pub fn running(&self) -> usize {
        self.lock().active.len()
    }

    async fn repair_interrupted(&self) -> Result<(), RecordError> {
        for mut r in self.store.recordings().await? {
            if r.data["state"] == "stopped" || !valid_id(&r.id) {
                continue;
            }
            let path = self.path(&r.id);
            let data = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .and_then(|mut f| tapir_media::record::repair_header(&mut f));
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(recording = %r.id, "interrupted recording's file: {e}");
                    0
                }
            };
            let channels = if r.data["channels"] == "mixed" {
                Channels::Mixed
            } else {
                Channels::Stereo
            };
            let duration = data * 1000 / u64::from(channels.byte_rate());
            r.bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            r.data["state"] = json!("stopped");
            r.data["end_reason"] = json!(EndReason::Interrupted.as_str());
            r.data["duration_ms"] = json!(duration);
            r.data["size"] = json!(r.bytes);
            r.data["ended_at"] = json!(rfc3339(r.started_at + duration));
            self.store.put_recording(&r).await?;
            tracing::info!(recording = %r.id, "recording interrupted by the last stop: file repaired");
        }
        Ok(())
    }

    /// Starts recording `target`'s call.
    ///
    /// # Errors
    /// [`RecordError::AlreadyRecording`], [`RecordError::TooMany`],
    /// [`RecordError::LowDisk`], [`RecordError::NotRecording`] when the call
    /// has no media, I/O and store errors.
    pub async fn start(
        self: &Arc<Self>,
        target: Target,
        channels: Channels,
    ) -> Result<String, RecordError> {
        let call_text = target.call.to_string();
        let engine = self
            .media
            .clone()
            .ok_or_else(|| RecordError::NotRecording(call_text.clone()))?;
        if let Some(free) = free_bytes(&self.dir)
            && free < self.config.min_free_mb.saturating_mul(MIB)
        {
            return Err(RecordError::LowDisk {
                free_mb: free / MIB,
                floor_mb: self.config.min_free_mb,
            });
        }
        let id = new_id()?;
        let started = now_ms();
        let doc = json!({
            "id": id,
            "call": call_text,
            "address": target.address,
            "parties": target.parties,
            "app": target.app,
            "channels": channels.as_str(),
            "state": "recording",
            "started_at": rfc3339(started),
            "duration_ms": 0,
            "size": tapir_media::record::HEADER_LEN,
            "dropped_frames": 0,
        });
        let (cmd_tx, cmd_rx) = watch::channel(Cmd::Record);
        let (done_tx, done_rx) = watch::channel(false);
        let progress = Arc::new(Progress::default());
        // Claim the call and a slot first, so that two starts at once
        // cannot both pass.
        {
            let mut inner = self.lock();
            if let Some(other) = inner.by_call.get(&target.call) {
                return Err(RecordError::AlreadyRecording {
                    call: call_text,
                    id: other.clone(),
                });
            }
            if inner.active.len() >= self.config.max_concurrent {
                return Err(RecordError::TooMany {
                    max: self.config.max_concurrent,
                });
            }
            inner.by_call.insert(target.call, id.clone());
            inner.active.insert(
                id.clone(),
                Active {
                    call: target.call,
                    doc: doc.clone(),
                    cmd: cmd_tx,
                    progress: progress.clone(),
                    done: done_rx,
                },
            );
        }
        let opened = self.open_file(&id, started, &doc, &engine, &target).await;
        let (file, tap) = match opened {
            Ok(v) => v,
            Err(e) => {
                self.forget(&id);
                return Err(e);
            }
        };
        let floor = self.config.min_free_mb.saturating_mul(MIB) / 2;
        let (out_tx, out_rx) = oneshot::channel();
        let rt = tokio::runtime::Handle::current();
        let dir = self.dir.clone();
        let writer_progress = progress.clone();
        let spawned = std::thread::Builder::new()
            .name("tapir-record".into())
            .stack_size(WRITER_STACK)
            .spawn(move || {
                let outcome = rt.block_on(write(
                    tap,
                    file,
                    channels,
                    cmd_rx,
                    &writer_progress,
                    &dir,
                    floor,
                ));
                let _ = out_tx.send(outcome);
            });
        if let Err(e) = spawned {
            self.forget(&id);
            let _ = std::fs::remove_file(self.path(&id));
            let _ = self.store.delete_recording(&id).await;
            return Err(RecordError::Io(e));
        }
        metrics::counter!("tapir_recordings_started_total").increment(1);
        tracing::info!(recording = %id, call = %target.call, channels = channels.as_str(), "recording started");
        let this = self.clone();
        let finished_id = id.clone();
        tokio::spawn(async move {
            this.watch_call(
                &finished_id,
                target.app_id,
                target.call,
                out_rx,
                started,
                done_tx,
            )
            .await;
        });
        Ok(id)
    }

    /// The row, the file and the tap of a new recording.
    async fn open_file(
        &self,
        id: &str,
        started: u64,
        doc: &Value,
        engine: &tapir_media::MediaEngine,
        target: &Target,
    ) -> Result<(std::fs::File, MediaTap), RecordError> {
        self.store
            .put_recording(&StoredRecording {
                id: id.to_string(),
                started_at: started,
                bytes: tapir_media::record::HEADER_LEN,
                data: doc.clone(),
            })
            .await?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(self.path(id));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = self.store.delete_recording(id).await;
                return Err(e.into());
            }
        };
        match engine.tap(target.leg, true, target.from_peer, TAP_QUEUE_FRAMES) {
            Ok(tap) => Ok((file, tap)),
            Err(_) => {
                drop(file);
                let _ = std::fs::remove_file(self.path(id));
                let _ = self.store.delete_recording(id).await;
                Err(RecordError::NotRecording(target.call.to_string()))
            }
        }
    }

    fn forget(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(a) = inner.active.remove(id) {
            inner.by_call.remove(&a.call);
        }
    }

    /// Waits for the writer's end, stopping it if the call becomes secure
    /// or leaves the conversation (idle, disconnected: a route point's call
    /// transferred away, whose caller's leg lives on) meanwhile; then makes
    /// the row final.
    async fn watch_call(
        &self,
        id: &str,
        app: tapir_core::AppId,
        call: CallId,
        mut out: oneshot::Receiver<Outcome>,
        started: u64,
        done: watch::Sender<bool>,
    ) {
        let mut check = tokio::time::interval(SECURE_EVERY);
        check.tick().await;
        let outcome = loop {
            tokio::select! {
                o = &mut out => break o.unwrap_or(Outcome {
                    reason: EndReason::WriteFailed,
                    data: 0,
                    dropped: 0,
                    channels: Channels::Stereo,
                }),
                _ = check.tick() => {
                    let (secure, ended) = self
                        .handle
                        .with(move |sw, _| {
                            use tapir_core::CallStateKind as K;
                            // The call left the conversation the tap
                            // hears (transferred away, idle): the far
                            // party's leg may live on in another call.
                            let ended = sw
                                .call_state(call)
                                .is_none_or(|k| matches!(k, K::Idle | K::Disconnected));
                            let secure = sw.call_info(app, call).map(|i| i.secure).unwrap_or(false);
                            (secure, ended)
                        })
                        .await
                        .unwrap_or((false, false));
                    if secure {
                        self.command(id, Cmd::Stop(EndReason::Secure));
                    } else if ended {
                        self.command(id, Cmd::Stop(EndReason::CallEnded));
                    }
                }
            }
        };
        let doc = self.lock().active.get(id).map(|a| a.doc.clone());
        if let Some(mut doc) = doc {
            let duration = outcome.data * 1000 / u64::from(outcome.channels.byte_rate());
            let size = tapir_media::record::HEADER_LEN + outcome.data;
            doc["state"] = json!("stopped");
            doc["end_reason"] = json!(outcome.reason.as_str());
            doc["duration_ms"] = json!(duration);
            doc["size"] = json!(size);
            doc["dropped_frames"] = json!(outcome.dropped);
            doc["ended_at"] = json!(rfc3339(now_ms()));
            let row = StoredRecording {
                id: id.to_string(),
                started_at: started,
                bytes: size,
                data: doc,
            };
            if let Err(e) = self.store.put_recording(&row).await {
                tracing::warn!(recording = %id, "recording's final row: {e}");
            }
        }
        self.forget(id);
        metrics::counter!("tapir_recordings_ended_total", "reason" => outcome.reason.as_str())
            .increment(1);
        tracing::info!(recording = %id, reason = outcome.reason.as_str(), bytes = outcome.data, "recording ended");
        let _ = done.send(true);
    }

    fn command(&self, id: &str, cmd: Cmd) {
        if let Some(a) = self.lock().active.get(id) {
            a.cmd.send_replace(cmd);
        }
    }

    /// The running recording of a call.
    fn of_call(&self, call: CallId) -> Result<String, RecordError> {
        self.lock()
            .by_call
            .get(&call)
            .cloned()
            .ok_or_else(|| RecordError::NotRecording(call.to_string()))
    }

    /// Pauses (`pause` true: silence is written meanwhile) or resumes the
    /// recording of a call.
    ///
    /// # Errors
    /// [`RecordError::NotRecording`], [`RecordError::AlreadyInState`].
    pub fn pause(&self, call: CallId, pause: bool) -> Result<String, RecordError> {
        let mut inner = self.lock();
        let id = inner
            .by_call
            .get(&call)
            .cloned()
            .ok_or_else(|| RecordError::NotRecording(call.to_string()))?;
        let Some(a) = inner.active.get_mut(&id) else {
            return Err(RecordError::NotRecording(call.to_string()));
        };
        let (want, state) = if pause {
            (Cmd::Pause, "paused")
        } else {
            (Cmd::Record, "recording")
        };
        let now = *a.cmd.borrow();
        if matches!(now, Cmd::Stop(_)) {
            return Err(RecordError::NotRecording(call.to_string()));
        }
        if now == want {
            return Err(RecordError::AlreadyInState { id, state });
        }
        a.cmd.send_replace(want);
        a.doc["state"] = json!(state);
        Ok(id)
    }

    /// Stops the recording of a call and waits until its file and row are
    /// final.
    ///
    /// # Errors
    /// [`RecordError::NotRecording`].
    pub async fn stop(&self, call: CallId) -> Result<String, RecordError> {
        let id = self.of_call(call)?;
        let done = {
            let inner = self.lock();
            let a = inner
                .active
                .get(&id)
                .ok_or_else(|| RecordError::NotRecording(call.to_string()))?;
            a.cmd.send_replace(Cmd::Stop(EndReason::Stopped));
            a.done.clone()
        };
        wait_done(done).await;
        Ok(id)
    }

    /// The metadata of a running recording, with what was written so far.
    fn live(a: &Active) -> Value {
        let mut doc = a.doc.clone();
        let data = a.progress.data.load(Ordering::Relaxed);
        let rate = if doc["channels"] == "mixed" {
            Channels::Mixed.byte_rate()
        } else {
            Channels::Stereo.byte_rate()
        };
        doc["duration_ms"] = json!(data * 1000 / u64::from(rate));
        doc["size"] = json!(tapir_media::record::HEADER_LEN + data);
        doc["dropped_frames"] = json!(a.progress.dropped.load(Ordering::Relaxed));
        doc
    }

    /// Every recording's metadata (running ones live), newest first.
    ///
    /// # Errors
    /// The store's.
    pub async fn list(&self) -> Result<Vec<Value>, RecordError> {
        let rows = self.store.recordings().await?;
        let inner = self.lock();
        Ok(rows
            .into_iter()
            .map(|r| match inner.active.get(&r.id) {
                Some(a) => Recordings::live(a),
                None => r.data,
            })
            .collect())
    }

    /// One recording's metadata; `None` for an id of another shape or
    /// unknown.
    ///
    /// # Errors
    /// The store's.
    pub async fn get(&self, id: &str) -> Result<Option<Value>, RecordError> {
        if !valid_id(id) {
            return Ok(None);
        }
        if let Some(a) = self.lock().active.get(id) {
            return Ok(Some(Recordings::live(a)));
        }
        Ok(self.store.recording(id).await?.map(|r| r.data))
    }

    /// The file of a finished recording, opened.
    ///
    /// # Errors
    /// [`RecordError::Unknown`], [`RecordError::Running`], I/O.
    pub fn open_audio(&self, id: &str) -> Result<(std::fs::File, u64), RecordError> {
        if !valid_id(id) {
            return Err(RecordError::Unknown(id.to_string()));
        }
        if self.lock().active.contains_key(id) {
            return Err(RecordError::Running(id.to_string()));
        }
        let f = std::fs::File::open(self.path(id)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RecordError::Unknown(id.to_string()),
            _ => RecordError::Io(e),
        })?;
        let len = f.metadata()?.len();
        Ok((f, len))
    }

    /// Deletes a finished recording (file and row); false when unknown.
    ///
    /// # Errors
    /// [`RecordError::Running`], I/O and store errors.
    pub async fn delete(&self, id: &str) -> Result<bool, RecordError> {
        if !valid_id(id) {
            return Ok(false);
        }
        if self.lock().active.contains_key(id) {
            return Err(RecordError::Running(id.to_string()));
        }
        let existed = self.store.delete_recording(id).await?;
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(existed),
            Err(e) => Err(e.into()),
        }
    }

    /// One retention pass: finished recordings older than `max_age_days`,
    /// then the oldest while all take more than `max_total_mb`. Returns
    /// how many were deleted.
    ///
    /// # Errors
    /// The store's.
    pub async fn sweep(&self) -> Result<u64, RecordError> {
        let rows = self.store.recordings().await?;
        let now = now_ms();
        let max_age_ms = self.config.max_age_days * 86_400_000.0;
        let mut total: u64 = rows.iter().map(|r| r.bytes).sum();
        let limit = self.config.max_total_mb.saturating_mul(MIB);
        let mut deleted = 0;
        // Oldest first.
        for r in rows.iter().rev() {
            if self.lock().active.contains_key(&r.id) {
                continue;
            }
            let old = max_age_ms > 0.0 && now.saturating_sub(r.started_at) as f64 > max_age_ms;
            let over = limit > 0 && total > limit;
            if !(old || over) {
                continue;
            }
            match self.delete(&r.id).await {
                Ok(_) => {
                    total = total.saturating_sub(r.bytes);
                    deleted += 1;
                    metrics::counter!("tapir_recordings_deleted_total").increment(1);
                }
                Err(e) => tracing::warn!(recording = %r.id, "retention: {e}"),
            }
        }
        Ok(deleted)
    }

    /// Stops every running recording and waits for their files (the
    /// server's shutdown).
    pub async fn stop_all(&self) {
        let dones: Vec<_> = {
            let inner = self.lock();
            inner
                .active
                .values()
                .map(|a| {
                    a.cmd.send_replace(Cmd::Stop(EndReason::Stopped));
                    a.done.clone()
                })
                .collect()
        };
        for d in dones {
            wait_done(d).await;
        }
    }
}

async fn wait_done(mut done: watch::Receiver<bool>) {
    // The writer ends within a frame or two of the command; bounded
    // anyway so that a stuck disk cannot hold a request forever.
    let _ = tokio::time::timeout(Duration::from_secs(30), done.wait_for(|d| *d)).await;
}

/// How a writer ended.
#[derive(Debug)]
struct Outcome {
    reason: EndReason,
    data: u64,
    dropped: u64,
    channels: Channels,
}

/// The writer: frames of the tap into the file until told to stop or the
/// tap ends.
async fn write(
    mut tap: MediaTap,
    file: std::fs::File,
    channels: Channels,
    mut cmd: watch::Receiver<Cmd>,
    progress: &Progress,
    dir: &Path,
    floor: u64,
) -> Outcome {
    let mut outcome = Outcome {
        reason: EndReason::WriteFailed,
        data: 0,
        dropped: 0,
        channels,
    };
    let Ok(mut w) = WavWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), channels) else {
        return outcome;
    };
    let mut paused = false;
    let mut frames: u64 = 0;
    let silence = tapir_media::stream::TapFrame {
        heard: [0; tapir_media::tone::FRAME_SAMPLES],
        said: [0; tapir_media::tone::FRAME_SAMPLES],
        at: std::time::Instant::now(),
    };
    let reason = loop {
        tokio::select! {
            biased;
            changed = cmd.changed() => {
                if changed.is_err() {
                    break EndReason::Stopped;
                }
                match *cmd.borrow_and_update() {
                    Cmd::Stop(r) => break r,
                    Cmd::Pause => paused = true,
                    Cmd::Record => paused = false,
                }
            }
            frame = tap.recv() => {
                let Some(frame) = frame else { break EndReason::CallEnded };
                // Frames the queue dropped (the writer was behind) keep
                // their place as silence.
                let dropped = tap.dropped();
                let mut r = Ok(true);
                for _ in outcome.dropped..dropped {
                    r = r.and_then(|_| w.write_frame(&silence, true));
                }
                outcome.dropped = dropped;
                match r.and_then(|_| w.write_frame(&frame, paused)) {
                    Ok(true) => {}
                    Ok(false) => break EndReason::Full,
                    Err(e) => {
                        tracing::warn!("recording write: {e}");
                        break EndReason::WriteFailed;
                    }
                }
                progress.data.store(w.data_len(), Ordering::Relaxed);
                progress.dropped.store(dropped, Ordering::Relaxed);
                frames += 1;
                if frames.is_multiple_of(tapir_media::record::SYNC_EVERY_FRAMES)
                    && free_bytes(dir).is_some_and(|f| f < floor)
                {
                    break EndReason::LowDisk;
                }
            }
        }
    };
    // The tap goes now: the media thread forgets it at its next frame.
    drop(tap);
    outcome.data = w.data_len();
    outcome.reason = reason;
    let finished = w.finish().and_then(|b| {
        let mut f = b
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        f.flush()?;
        f.rewind()?;
        f.sync_data()
    });
    if let Err(e) = finished {
        tracing::warn!("recording finish: {e}");
        outcome.reason = EndReason::WriteFailed;
    }
    outcome
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A writer that falls behind (a slow disk) costs frames the tap drops
    /// and counts while the relay goes on; when it catches up it writes
    /// them as silence, so the file keeps the call's length.
    #[tokio::test]
    async fn a_writer_behind_loses_frames_counted_and_keeps_the_timeline() {
        use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, RemoteMedia, Source};
        let (eng, _ev) = MediaEngine::new(MediaConfig::default()).unwrap();
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let la = eng.allocate(LegId(1)).unwrap();
        eng.allocate(LegId(2)).unwrap();
        for (leg, sock) in [(1, &a), (2, &b)] {
            eng.set_remote(
                LegId(leg),
                RemoteMedia {
                    addr: Some(sock.local_addr().unwrap()),
                    codec: Codec::Pcmu,
                    telephone_event_pt: None,
                },
            )
            .unwrap();
            eng.set_source(LegId(leg), Source::Bridge(9)).unwrap();
        }
        // The recording's tap with a queue of 3 frames that nobody reads
        // for a second, while 1002 talks.
        let tap = eng.tap(LegId(2), true, false, 3).unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut relayed = 0;
        let mut buf = [0u8; 512];
        for k in 0..50u32 {
            tick.tick().await;
            let mut pkt = Vec::new();
            tapir_media::rtp::write_packet(&mut pkt, k == 0, 0, k as u16, k * 160, 7, &[0x55; 160]);
            a.send_to(&pkt, la).await.unwrap();
            while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, b.recv_from(&mut buf)).await
            {
                relayed += 1;
            }
        }
        assert!(relayed >= 40, "the relay went on: {relayed}");
        let dropped = tap.dropped();
        assert!(dropped >= 40, "dropped and counted: {dropped}");
        // The writer catches up, then stops.
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("x.wav")).unwrap();
        let (cmd_tx, cmd_rx) = watch::channel(Cmd::Record);
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        let path = dir.path().to_path_buf();
        let writer =
            tokio::spawn(
                async move { write(tap, file, Channels::Stereo, cmd_rx, &p, &path, 0).await },
            );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while progress.dropped.load(Ordering::Relaxed) < dropped {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writer never caught up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cmd_tx.send_replace(Cmd::Stop(EndReason::Stopped));
        let out = writer.await.unwrap();
        assert_eq!(out.reason, EndReason::Stopped);
        assert!(out.dropped >= dropped);
        assert!(
            out.data >= (dropped + 3) * 640,
            "dropped frames kept their place: {} bytes for {dropped} dropped",
            out.data
        );
        let len = std::fs::metadata(dir.path().join("x.wav")).unwrap().len();
        assert_eq!(len, 44 + out.data, "the file is final");
    }

    #[test]
    fn ids_are_random_and_only_their_own_shape_names_a_file() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert!(valid_id(&a) && valid_id(&b), "{a} {b}");
        for bad in [
            "",
            "rec-",
            "../tapir.db",
            "rec-../../etc/passwd",
            "rec-0123456789abcdef0123456789abcdeF",
            "rec-0123456789abcdef0123456789abcde",
            "rec-0123456789abcdef0123456789abcdef0",
            "rec-0123456789abcdef/123456789abcdef",
            "REC-0123456789abcdef0123456789abcdef",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(valid_id("rec-0123456789abcdef0123456789abcdef"));
    }
}
