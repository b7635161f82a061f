//! The switch actor: one tokio task owns the [`Switch`]. Everything else talks
//! to it through a [`SwitchHandle`]: jobs arrive over an mpsc channel and
//! answer over a oneshot; the task fires the switch's timers with
//! `tokio::time::sleep_until`, and after every step drains the switch's
//! outputs — app events into the [`Journal`], effects onto a broadcast channel
//! for the SIP and media drivers.
//!
//! A SIP driver plugs in with [`SwitchHandle::subscribe_effects`] (what to do
//! on the wire) and [`SwitchHandle::input`] (what the wire reported); it gets
//! fresh leg ids with `handle.with(|sw, _| sw.allocate_leg())`.

use crate::cdr::Touched;
use crate::journal::Journal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tapir_core::{AppId, Command, Effect, Input, Output, Reply, Switch, TapiError, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The switch task has stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the switch task has stopped")]
pub struct SwitchStopped;

/// A job runs on the switch and returns what delivers its answer; the answer
/// is delivered after the job's outputs are drained, so an HTTP reply never
/// overtakes the events its command caused into the journal.
type Job = Box<dyn FnOnce(&mut Switch, Timestamp) -> Box<dyn FnOnce() + Send> + Send>;

/// Called inside the switch task after every step that produced output or
/// ran a job, with what the step's outputs named (the store's observer:
/// CDRs, completion set, id reservation).
pub type StepObserver = Box<dyn FnMut(&Switch, Timestamp, &Touched) + Send>;

enum Msg {
    Job(Job),
    Input(Input),
}

/// A cheap, cloneable handle to the switch task.
#[derive(Clone)]
pub struct SwitchHandle {
    tx: mpsc::Sender<Msg>,
    effects: broadcast::Sender<Effect>,
    journal: Arc<Journal>,
}

impl std::fmt::Debug for SwitchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchHandle").finish_non_exhaustive()
    }
}

/// The current time as the switch counts it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

impl SwitchHandle {
    /// Start the task that owns `switch`. `effects_capacity` bounds how far an
    /// effect subscriber may lag before it sees `Lagged`.
    pub fn spawn(
        switch: Switch,
        journal: Arc<Journal>,
        effects_capacity: usize,
    ) -> (SwitchHandle, JoinHandle<()>) {
        SwitchHandle::spawn_observed(switch, journal, effects_capacity, None)
    }

    /// [`SwitchHandle::spawn`] with an observer called after steps.
    pub fn spawn_observed(
        switch: Switch,
        journal: Arc<Journal>,
        effects_capacity: usize,
        observer: Option<StepObserver>,
    ) -> (SwitchHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let (effects, _) = broadcast::channel(effects_capacity.max(16));
        let task = tokio::spawn(run(switch, rx, effects.clone(), journal.clone(), observer));
        (
            SwitchHandle {
                tx,
                effects,
                journal,
            },
            task,
        )
    }

    /// Run `f` on the switch inside its task, with the current time, and
    /// return what it returns. Outputs it causes are drained right after,
    /// and the events they hold are committed to the journal (and its
    /// store) before this returns.
    pub async fn with<T, F>(&self, f: F) -> Result<T, SwitchStopped>
    where
        T: Send + 'static,
        F: FnOnce(&mut Switch, Timestamp) -> T + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |sw, now| {
            let value = f(sw, now);
            Box::new(move || {
                let _ = reply_tx.send(value);
            })
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| SwitchStopped)?;
        let value = reply_rx.await.map_err(|_| SwitchStopped)?;
        // Bounded: a store writer that stopped must not hang every request
        // (it publishes anyway after its retries, well within this).
        let durable = self.journal.durable(self.journal.pushed());
        if tokio::time::timeout(Duration::from_secs(15), durable)
            .await
            .is_err()
        {
            tracing::error!("events not committed after 15 s: answering anyway");
        }
        Ok(value)
    }

    /// One app command; waits for the switch's reply (TAPI's `LINE_REPLY`).
    pub async fn command(
        &self,
        app: AppId,
        command: Command,
    ) -> Result<Result<Reply, TapiError>, SwitchStopped> {
        self.with(move |sw, now| sw.request(now, app, command).1)
            .await
    }

    /// Feed an input (a signalling event from a driver) to the switch.
    pub async fn input(&self, input: Input) -> Result<(), SwitchStopped> {
        self.tx
            .send(Msg::Input(input))
            .await
            .map_err(|_| SwitchStopped)
    }

    /// Feed an input without waiting: queued at once when the switch's
    /// channel has room, else handed to a task that waits for room (order
    /// is then no longer guaranteed against later inputs, which only happens
    /// under overload). For drivers whose loop must not block.
    pub fn input_now(&self, input: Input) {
        match self.tx.try_send(Msg::Input(input)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(msg).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Every effect the switch produces from now on (for the SIP and media
    /// drivers). A receiver that lags more than the channel's capacity gets
    /// `RecvError::Lagged`.
    pub fn subscribe_effects(&self) -> broadcast::Receiver<Effect> {
        self.effects.subscribe()
    }

    /// The event journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}

async fn run(
    mut switch: Switch,
    mut rx: mpsc::Receiver<Msg>,
    effects: broadcast::Sender<Effect>,
    journal: Arc<Journal>,
    mut observer: Option<StepObserver>,
) {
    let mut touched = Touched::default();
    drain(&mut switch, &effects, &journal, &mut touched);
    loop {
        let deadline = switch.poll_timeout().map(|at| {
            let wait = at.0.saturating_sub(now().0);
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Job(job)) => {
                    let answer = job(&mut switch, now());
                    drain(&mut switch, &effects, &journal, &mut touched);
                    if let Some(o) = observer.as_mut() {
                        o(&switch, now(), &touched);
                    }
                    touched.clear();
                    answer();
                }
                Some(Msg::Input(input)) => {
                    switch.handle(now(), input);
                }
            },
            () = sleep => {
                switch.handle(now(), Input::Timeout);
            }
        }
        let stepped = drain(&mut switch, &effects, &journal, &mut touched) > 0;
        if stepped && let Some(o) = observer.as_mut() {
            o(&switch, now(), &touched);
        }
        touched.clear();
    }
    tracing::debug!("switch task stopped");
}

/// Hand out the switch's outputs, noting what they name; returns how many
/// there were.
fn drain(
    switch: &mut Switch,
    effects: &broadcast::Sender<Effect>,
    journal: &Journal,
    touched: &mut Touched,
) -> usize {
    let mut n = 0;
    while let Some(out) = switch.poll_output() {
        n += 1;
        touched.note(&out);
        match out {
            Output::Effect(e) => {
                tracing::trace!(effect = ?e, "effect");
                // No driver subscribed yet is fine (route points need none).
                let _ = effects.send(e);
            }
            Output::Event(ev) => journal.push(&ev),
            // The loop asks poll_timeout() before every wait.
            Output::Timeout(_) => {}
        }
    }
    n
}
