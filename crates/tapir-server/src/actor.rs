//! The loop: one task owns the [`Switch`] and, when SIP runs, the
//! [`B2bua`], and pumps between them synchronously with
//! [`tapir_b2bua::pump::pump`], the composition the B2BUA's tests run. The
//! task runs on a thread of its own with a current-thread runtime, so that
//! a datagram, a job or a timer wakes that one thread, which does the work
//! itself (on the shared multi-thread runtime each wake-up also woke another
//! worker). Around it, everything is a driver that turns I/O into inputs
//! and outputs into I/O, all inside this one task's `select!`:
//!
//! - the SIP UDP socket, read and written here;
//! - SIP over TCP and TLS ([`Streams`]): connection tasks frame messages and
//!   hand them over a bounded channel (a full one makes a reader wait, which
//!   pushes back on its peer through TCP), and write what the loop sends;
//! - the media engine: its events (digits, prompt done) come in here, and
//!   the B2BUA's media commands are applied to it synchronously (its calls
//!   take a short lock and never wait);
//! - jobs from the HTTP API ([`SwitchHandle::with`]) over a bounded channel
//!   (a full one makes the handler wait); each answers over a oneshot after
//!   its outputs are handed out, so an HTTP reply never overtakes the events
//!   its command caused into the [`Journal`];
//! - timers: the earlier of the switch's and the B2BUA's deadlines, on one
//!   timer that is moved, not made again, when the deadline changes.
//!
//! The loop itself never waits on a channel to the machines, and nothing
//! between them is queued: an effect reaches the B2BUA in the same step the
//! switch produced it, and a REFER's verdict is a call into the switch.

use crate::admission::{FdGauge, Meter};
use crate::cdr::Touched;
use crate::journal::Journal;
use crate::sip::{MediaPlane, SipParts};
use crate::transport::{self, StreamEvent, Streams};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tapir_b2bua::pump::{self, Wire};
use tapir_b2bua::{B2bua, MediaCommand, SipTransport};
use tapir_core::{AppId, Command, Input, Output, Reply, Switch, TapiError, Timestamp};
use tapir_media::engine::{MediaEvent, MediaEvents};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The switch task has stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the switch task has stopped")]
pub struct SwitchStopped;

/// A job runs on the switch and returns what delivers its answer; the answer
/// is delivered after the job's outputs are drained, so an HTTP reply never
/// overtakes the events its command caused into the journal.
type Job = Box<dyn FnOnce(&mut Switch, Timestamp) -> Box<dyn FnOnce() + Send> + Send>;

/// Called inside the loop after every step that produced output or ran a
/// job, with what the step's outputs named (the store's observer: CDRs,
/// completion set, id reservation).
pub type StepObserver = Box<dyn FnMut(&Switch, Timestamp, &Touched) + Send>;

/// How many jobs may wait for the loop before senders wait.
const JOBS_CAPACITY: usize = 4096;

/// Datagrams read from the SIP UDP socket in one wake-up at most (each is
/// handled and pumped on its own, in order), so that jobs and timers keep
/// their turn under load.
const DATAGRAM_BATCH: usize = 32;

/// How long datagrams may keep waiting in the SIP UDP socket (the loop
/// reading behind what arrives the whole time) before the loop counts
/// itself overloaded: new calls are then refused with 503 and
/// `Retry-After` through the B2BUA's admission rule until the loop finds
/// the socket empty again. Well below SIP's T1 (500 ms), so that phones do
/// not start retransmitting what waits, and the calls already taken keep
/// being served at capacity.
pub const STANDING_QUEUE: Duration = Duration::from_millis(50);

/// The receive buffer asked for the SIP UDP socket (the system may cap it,
/// at `net.core.rmem_max` on Linux): room for a burst of a few hundred
/// milliseconds, so that the loop's refusals, not the kernel's drops, meet
/// overload.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// A cheap, cloneable handle to the loop.
#[derive(Clone)]
pub struct SwitchHandle {
    tx: mpsc::Sender<Job>,
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
    /// Start the loop that owns `switch` (without SIP).
    pub fn spawn(switch: Switch, journal: Arc<Journal>) -> (SwitchHandle, JoinHandle<()>) {
        SwitchHandle::spawn_node(switch, None, journal, None)
    }

    /// Start the loop that owns `switch` and, with `sip`, the B2BUA and
    /// SIP's sockets and media plane; `observer` is called after steps.
    pub fn spawn_node(
        switch: Switch,
        sip: Option<SipParts>,
        journal: Arc<Journal>,
        observer: Option<StepObserver>,
    ) -> (SwitchHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(JOBS_CAPACITY);
        let node = Node {
            switch,
            sip: None,
            journal: journal.clone(),
            observer,
            touched: Touched::default(),
            backlog: VecDeque::new(),
            standing_since: None,
            shedding: false,
            shrunk_at: Instant::now(),
        };
        // The TCP and TLS connection tasks stay on the caller's runtime (they
        // hand their messages over a channel); the UDP socket moves to the
        // loop's.
        let sources = sip.and_then(|parts| {
            let (streams, streams_rx) =
                Streams::start(parts.tcp, parts.tls, parts.stream_limits, parts.fds.clone());
            let udp = match parts.udp.into_std() {
                Ok(udp) => udp,
                Err(e) => {
                    tracing::error!(error = %e, "the SIP UDP socket cannot move to the loop");
                    return None;
                }
            };
            Some(Sources {
                b2b: parts.b2b,
                udp,
                streams,
                streams_rx,
                media: parts.media,
                media_events: parts.media_events,
                fds: parts.fds,
            })
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let run = node.run(sources, rx, stop_rx);
        match runtime {
            // Its own thread and current-thread runtime: a datagram, a job
            // or a timer wakes this one thread, which does the work itself,
            // instead of a worker of the shared runtime waking another.
            Ok(runtime) => {
                let spawned =
                    std::thread::Builder::new()
                        .name("tapir-loop".into())
                        .spawn(move || {
                            runtime.block_on(run);
                            let _ = done_tx.send(());
                        });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start the loop's thread");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no runtime of its own: the loop runs as a task");
                tokio::spawn(async move {
                    run.await;
                    let _ = done_tx.send(());
                });
            }
        }
        // Aborting (or dropping) this task stops the loop.
        let task = tokio::spawn(async move {
            let _stop = stop_tx;
            let _ = done_rx.await;
        });
        (SwitchHandle { tx, journal }, task)
    }

    /// Run `f` on the switch inside the loop, with the current time, and
    /// return what it returns. Outputs it causes are handed out right
    /// after, and the events they hold are committed to the journal (and
    /// its store) before this returns.
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
        self.tx.send(job).await.map_err(|_| SwitchStopped)?;
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

    /// The event journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }
}

/// What SIP brings to the loop: its machine and what the loop waits on.
struct Sources {
    b2b: B2bua,
    udp: std::net::UdpSocket,
    streams: Streams,
    streams_rx: mpsc::Receiver<StreamEvent>,
    media: MediaPlane,
    media_events: MediaEvents,
    fds: Arc<FdGauge>,
}

/// SIP's part of the loop.
struct Sip {
    b2b: B2bua,
    udp: Arc<UdpSocket>,
    streams: Streams,
    media: MediaPlane,
    /// Measures for admission control (new calls refused near a limit).
    meter: Meter,
}

/// What the loop owns.
struct Node {
    switch: Switch,
    sip: Option<Sip>,
    journal: Arc<Journal>,
    observer: Option<StepObserver>,
    touched: Touched,
    /// UDP datagrams the socket could not take at once, in order.
    backlog: VecDeque<(SocketAddr, Bytes)>,
    /// Since when datagrams have kept waiting in the SIP UDP socket: set when
    /// a wake-up's reading ends with more to read, cleared when a read finds
    /// it empty ([`STANDING_QUEUE`]).
    standing_since: Option<Instant>,
    /// Whether new calls are refused because the loop is behind.
    shedding: bool,
    /// When the B2BUA's tables last gave back the room a burst grew.
    shrunk_at: Instant,
}

impl Node {
    async fn run(
        mut self,
        sources: Option<Sources>,
        mut jobs: mpsc::Receiver<Job>,
        mut stop: oneshot::Receiver<()>,
    ) {
        // The sources the loop waits on are its own locals, so that a
        // branch's handler may use all of the node.
        let mut udp = None;
        let mut streams_rx = None;
        let mut media_events = None;
        if let Some(parts) = sources {
            let _ = parts.udp.set_nonblocking(true);
            let socket = match UdpSocket::from_std(parts.udp) {
                Ok(socket) => Arc::new(socket),
                Err(e) => {
                    tracing::error!(error = %e, "the SIP UDP socket cannot join the loop");
                    return;
                }
            };
            grow_receive_buffer(&socket);
            udp = Some(socket.clone());
            streams_rx = Some(parts.streams_rx);
            media_events = Some(parts.media_events);
            self.sip = Some(Sip {
                b2b: parts.b2b,
                udp: socket,
                streams: parts.streams,
                media: parts.media,
                meter: Meter::new(parts.fds),
            });
        }
        let mut buf = vec![0u8; 65_536];
        self.settle(false);
        // One timer, moved when the deadline changes (not a new one per
        // wake-up).
        let mut armed = self.deadline();
        let timer = tokio::time::sleep_until(armed.unwrap_or_else(far_future));
        tokio::pin!(timer);
        loop {
            let deadline = self.deadline();
            if deadline != armed {
                armed = deadline;
                timer.as_mut().reset(deadline.unwrap_or_else(far_future));
            }
            tokio::select! {
                _ = &mut stop => break,
                job = jobs.recv() => match job {
                    None => break,
                    Some(job) => {
                        let answer = job(&mut self.switch, now());
                        self.settle(true);
                        answer();
                    }
                },
                received = recv_udp(udp.as_deref(), &mut buf) => {
                    self.datagram(received, &buf);
                    // More that already wait, without going back to sleep.
                    if let Some(socket) = udp.as_deref() {
                        let mut drained = false;
                        for _ in 1..DATAGRAM_BATCH {
                            match socket.try_recv_from(&mut buf) {
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    drained = true;
                                    break;
                                }
                                received => self.datagram(received, &buf),
                            }
                        }
                        self.queue_seen(drained, Instant::now());
                    }
                }
                Some(event) = next_stream(&mut streams_rx) => {
                    if let Some(sip) = self.sip.as_mut() {
                        let now = Instant::now();
                        sip.meter.measure(now, &mut sip.b2b, &sip.media);
                        sip.streams.event(event, &mut sip.b2b, now);
                    }
                    self.settle(false);
                }
                event = next_media(&mut media_events) => {
                    if let Some(input) = crate::sip::media_input(event) {
                        self.switch.handle(now(), input);
                    }
                    self.settle(false);
                }
                () = &mut timer, if armed.is_some() => {
                    // Fired: wait again only for a new deadline.
                    armed = None;
                    self.switch.handle(now(), Input::Timeout);
                    if let Some(sip) = self.sip.as_mut() {
                        sip.b2b.handle_timeout(Instant::now());
                    }
                    self.settle(false);
                }
            }
            self.flush_backlog().await;
        }
        // Watchers of busy lamps hear that their subscriptions end.
        if let Some(sip) = self.sip.as_mut()
            && sip.b2b.watches_lamps()
        {
            sip.b2b.end_subscriptions(Instant::now());
            self.settle(false);
            self.flush_backlog().await;
        }
        tracing::debug!("the loop stopped");
    }

    /// What the end of a wake-up's reading found: the socket `drained`, or
    /// more datagrams waiting (since when is kept until a read finds it
    /// empty).
    fn queue_seen(&mut self, drained: bool, now: Instant) {
        if drained {
            self.standing_since = None;
        } else {
            self.standing_since.get_or_insert(now);
        }
    }

    /// Tell the admission rule whether the loop is behind: datagrams have
    /// kept waiting for longer than [`STANDING_QUEUE`].
    fn admit_by_load(&mut self, now: Instant) {
        let behind = self
            .standing_since
            .is_some_and(|since| now.saturating_duration_since(since) > STANDING_QUEUE);
        if behind != self.shedding {
            self.shedding = behind;
            if behind {
                tracing::warn!(
                    "SIP arrives faster than the loop serves it: new calls are refused with 503 until it catches up"
                );
            } else {
                tracing::info!("the loop caught up: new calls are taken again");
            }
        }
        if let Some(sip) = self.sip.as_mut() {
            sip.b2b.admission_mut().set_overloaded(behind);
        }
    }

    /// One datagram from the SIP UDP socket (or its receive error).
    fn datagram(&mut self, received: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match received {
            Ok((n, source)) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                transport::count_message("in", &data);
                self.admit_by_load(Instant::now());
                if let Some(sip) = self.sip.as_mut() {
                    let now = Instant::now();
                    sip.meter.measure(now, &mut sip.b2b, &sip.media);
                    sip.b2b.handle_datagram(now, source, data);
                }
                self.settle(false);
            }
            // ICMP errors surface here on some systems; keep serving.
            Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
        }
    }

    /// When the switch or the B2BUA next needs the time.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        let switch = self.switch.poll_timeout().map(|at| {
            let wait = at.0.saturating_sub(now().0);
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        // The B2BUA's next timer, or its tables' next chance to shrink
        // (so that an idle switch still gives back a burst's room).
        let b2b = self.sip.as_ref().map(|s| {
            let shrink = self.shrunk_at + SHRINK_EVERY;
            tokio::time::Instant::from_std(s.b2b.poll_timeout().map_or(shrink, |t| t.min(shrink)))
        });
        match (switch, b2b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pump the machines until they settle, handing what leaves them out;
    /// then call the observer if the switch produced anything (or a job ran).
    fn settle(&mut self, job_ran: bool) {
        let (now, ts) = (Instant::now(), now());
        let mut switch_outputs = 0;
        let (b2b, mut wire) = match self.sip.as_mut() {
            Some(sip) => (
                Some(&mut sip.b2b),
                NodeWire {
                    journal: &self.journal,
                    touched: &mut self.touched,
                    switch_outputs: &mut switch_outputs,
                    sip: Some((&sip.udp, &mut sip.streams, &sip.media)),
                    backlog: &mut self.backlog,
                },
            ),
            None => (
                None,
                NodeWire {
                    journal: &self.journal,
                    touched: &mut self.touched,
                    switch_outputs: &mut switch_outputs,
                    sip: None,
                    backlog: &mut self.backlog,
                },
            ),
        };
        if let Err(e) = pump::pump(&mut self.switch, b2b, now, ts, &mut wire) {
            tracing::error!("{e}");
        }
        if let Some(sip) = self.sip.as_mut() {
            Meter::publish(&mut sip.b2b);
            if now.saturating_duration_since(self.shrunk_at) >= SHRINK_EVERY {
                self.shrunk_at = now;
                sip.b2b.shrink_when_sparse();
            }
        }
        if (switch_outputs > 0 || job_ran)
            && let Some(o) = self.observer.as_mut()
        {
            o(&self.switch, ts, &self.touched);
        }
        self.touched.clear();
    }

    /// Send what the UDP socket could not take at once.
    async fn flush_backlog(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        let Some(udp) = self.sip.as_ref().map(|s| s.udp.clone()) else {
            return;
        };
        while let Some((to, data)) = self.backlog.pop_front() {
            if let Err(e) = udp.send_to(&data, to).await {
                tracing::debug!(%to, error = %e, "SIP send failed");
            }
        }
    }
}

/// How often the B2BUA's tables give back the room a burst grew (when they
/// are sparse: see `tapir_sip::capacity`).
const SHRINK_EVERY: Duration = Duration::from_secs(10);

/// Where the pump's outputs go in production.
struct NodeWire<'a> {
    journal: &'a Journal,
    touched: &'a mut Touched,
    switch_outputs: &'a mut usize,
    sip: Option<(&'a UdpSocket, &'a mut Streams, &'a MediaPlane)>,
    backlog: &'a mut VecDeque<(SocketAddr, Bytes)>,
}

impl Wire for NodeWire<'_> {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        let Some((udp, streams, _)) = self.sip.as_mut() else {
            return;
        };
        transport::count_message("out", &data);
        let Some(data) = streams.send(to, data) else {
            return;
        };
        // Over UDP: at once, unless earlier datagrams still wait (order).
        if self.backlog.is_empty() {
            match udp.try_send_to(&data, to) {
                Ok(_) => return,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    tracing::debug!(%to, error = %e, "SIP send failed");
                    return;
                }
                Err(_) => {}
            }
        }
        self.backlog.push_back((to, data));
    }

    fn media(&mut self, command: MediaCommand) {
        if let Some((_, _, media)) = self.sip.as_ref() {
            media.apply(command);
        }
    }

    fn connect(&mut self, to: SocketAddr, transport: SipTransport) {
        if let Some((_, streams, _)) = self.sip.as_mut() {
            streams.connect(to, transport);
        }
    }

    fn switch_output(&mut self, output: &Output) {
        *self.switch_outputs += 1;
        self.touched.note(output);
        match output {
            Output::Effect(e) => tracing::trace!(effect = ?e, "effect"),
            Output::Event(ev) => self.journal.push(ev),
            // The loop asks poll_timeout() before every wait.
            Output::Timeout(_) => {}
        }
    }
}

async fn recv_udp(udp: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn next_stream(rx: &mut Option<mpsc::Receiver<StreamEvent>>) -> Option<StreamEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The media engine's next event; waits forever without an engine (or
/// once it is gone).
async fn next_media(events: &mut Option<MediaEvents>) -> MediaEvent {
    if let Some(rx) = events {
        if let Some(event) = rx.recv().await {
            return event;
        }
        *events = None;
    }
    std::future::pending().await
}

/// A deadline that never comes (the timer of a loop with nothing due).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Ask for a larger receive buffer on the SIP UDP socket
/// ([`UDP_RECEIVE_BUFFER`]); the system's default holds only a few
/// milliseconds of a busy server's datagrams.
fn grow_receive_buffer(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "the SIP socket's receive buffer stays as it is");
    }
}
