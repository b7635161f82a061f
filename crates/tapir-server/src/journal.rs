//! The per-app event journal: every [`AppEvent`] the switch produces is kept
//! here, already rendered as the JSON the event stream sends, numbered by the
//! app's `seq`. It is bounded in memory (the oldest events fall out) and,
//! with a store, written through to it so that `seq` goes on and
//! `GET /v1/events?since=N` replays across a restart.
//!
//! Durability guarantee (with a store): an event is handed to readers — the
//! backlog of a new subscription and the live stream — only after the
//! transaction holding it has committed, and an HTTP command's reply waits
//! until the events its command caused are committed
//! ([`Journal::durable`]). So everything an app has been shown or told
//! survives a SIGKILL; what is lost is only what no one has seen yet (events
//! of the last, uncommitted batch), and their numbers are given again after
//! the restart without contradicting anything a reader saw. Writes are
//! batched: one transaction per batch of whatever queued up while the
//! previous one committed.
//!
//! A WebSocket subscribes with [`Journal::subscribe`]: it gets the backlog
//! after `since` and a live receiver, taken under one lock so that no event
//! falls between the two.

use crate::wire;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tapir_core::{AppEvent, AppId};
use tapir_store::{Batch, StoredEvent};
use tokio::sync::{broadcast, mpsc, watch};

/// One journalled event: its sequence number and its JSON text.
pub type JournalEntry = (u64, Arc<str>);

/// What goes to the store writer.
#[derive(Debug)]
pub enum WriterMsg {
    /// An event to journal: the switch's app id, the app's name, the event.
    Event(AppId, Arc<str>, JournalEntry, u64),
    /// Other writes (CDRs, the completion set, meta keys).
    Batch(Batch),
}

/// The journal of every app.
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<Inner>,
    capacity: usize,
    buffer: usize,
    /// The store writer, when the journal is persistent.
    sink: Option<mpsc::UnboundedSender<WriterMsg>>,
    /// Events pushed so far (all apps).
    pushed: AtomicU64,
    /// Events handed to readers so far (all apps); with a store, committed.
    published: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<AppId, AppStream>,
    names: HashMap<AppId, Arc<str>>,
}

#[derive(Debug)]
struct AppStream {
    events: VecDeque<JournalEntry>,
    last_seq: u64,
    live: broadcast::Sender<JournalEntry>,
}

/// What [`Journal::subscribe`] hands a new reader.
#[derive(Debug)]
pub struct Subscription {
    /// Events after `since` still in the journal, in order.
    pub backlog: Vec<JournalEntry>,
    /// True when events after `since` have already fallen out of the journal:
    /// the reader must resync from a snapshot.
    pub gap: bool,
    /// The last sequence number journalled when subscribing.
    pub last_seq: u64,
    /// Events journalled from now on.
    pub live: broadcast::Receiver<JournalEntry>,
}

fn now_ms() -> u64 {
    crate::actor::now().0
}

impl Journal {
    /// An in-memory journal keeping `capacity` events per app; live readers
    /// may fall `buffer` events behind before they are told to resync.
    pub fn new(capacity: usize, buffer: usize) -> Journal {
        Journal {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            buffer: buffer.max(1),
            sink: None,
            pushed: AtomicU64::new(0),
            published: watch::channel(0).0,
        }
    }

    /// A journal that writes through `sink` (the store writer, which calls
    /// [`Journal::publish`] once a batch has committed).
    pub fn persistent(
        capacity: usize,
        buffer: usize,
        sink: mpsc::UnboundedSender<WriterMsg>,
    ) -> Journal {
        Journal {
            sink: Some(sink),
            ..Journal::new(capacity, buffer)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stream(map: &mut HashMap<AppId, AppStream>, app: AppId, buffer: usize) -> &mut AppStream {
        map.entry(app).or_insert_with(|| AppStream {
            events: VecDeque::new(),
            last_seq: 0,
            live: broadcast::channel(buffer).0,
        })
    }

    /// Name the app behind a switch id (the store keys journals by name).
    pub fn name_app(&self, app: AppId, name: &str) {
        self.lock().names.insert(app, Arc::from(name));
    }

    /// The name of the app behind a switch id.
    pub fn app_name(&self, app: AppId) -> Option<String> {
        self.lock().names.get(&app).map(|n| n.to_string())
    }

    /// Put back what the store kept of an app's journal (oldest first) at
    /// start, before any event of this run.
    pub fn restore(&self, app: AppId, events: Vec<JournalEntry>) {
        let mut inner = self.lock();
        let s = Journal::stream(&mut inner.streams, app, self.buffer);
        for e in events {
            s.last_seq = s.last_seq.max(e.0);
            if s.events.len() >= self.capacity {
                s.events.pop_front();
            }
            s.events.push_back(e);
        }
    }

    /// Journal one event: with a store it goes to the writer and reaches
    /// readers once committed; without, at once.
    pub fn push(&self, event: &AppEvent) {
        let text: Arc<str> = Arc::from(wire::event_json(event));
        metrics::counter!("tapir_events_total").increment(1);
        self.pushed.fetch_add(1, Ordering::SeqCst);
        if let Some(sink) = &self.sink {
            let name = self
                .lock()
                .names
                .get(&event.app)
                .cloned()
                .unwrap_or_else(|| Arc::from(event.app.to_string()));
            let msg = WriterMsg::Event(event.app, name, (event.seq, text.clone()), now_ms());
            if sink.send(msg).is_ok() {
                return;
            }
            tracing::error!("the store writer has stopped: event kept in memory only");
        }
        self.publish(vec![(event.app, (event.seq, text))]);
    }

    /// Hand committed events to readers (in order) and count them.
    pub fn publish(&self, events: Vec<(AppId, JournalEntry)>) {
        let n = events.len() as u64;
        {
            let mut inner = self.lock();
            for (app, (seq, text)) in events {
                let s = Journal::stream(&mut inner.streams, app, self.buffer);
                s.last_seq = s.last_seq.max(seq);
                if s.events.len() >= self.capacity {
                    s.events.pop_front();
                }
                s.events.push_back((seq, text.clone()));
                // No live reader is fine: the journal keeps the event.
                let _ = s.live.send((seq, text));
            }
        }
        self.published.send_modify(|p| *p += n);
    }

    /// Send other writes to the store through the writer (after the events
    /// queued before them); dropped without a store.
    pub fn write(&self, batch: Batch) {
        if let Some(sink) = &self.sink
            && sink.send(WriterMsg::Batch(batch)).is_err()
        {
            tracing::error!("the store writer has stopped: a write was lost");
        }
    }

    /// How many events were pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::SeqCst)
    }

    /// Wait until the first `count` events pushed are committed and visible.
    pub async fn durable(&self, count: u64) {
        let mut rx = self.published.subscribe();
        let _ = rx.wait_for(|p| *p >= count).await;
    }

    /// The last sequence number journalled for `app` (0 before any event).
    pub fn last_seq(&self, app: AppId) -> u64 {
        self.lock().streams.get(&app).map_or(0, |s| s.last_seq)
    }

    /// At most `max` of `app`'s events after `since`, oldest first, and
    /// whether some events after `since` have already fallen out of memory
    /// (then the store has them: the webhooks read them there).
    pub fn after(&self, app: AppId, since: u64, max: usize) -> (Vec<JournalEntry>, bool) {
        let inner = self.lock();
        let Some(s) = inner.streams.get(&app) else {
            return (Vec::new(), false);
        };
        let first = s
            .events
            .front()
            .map_or(s.last_seq.saturating_add(1), |(seq, _)| *seq);
        let gap = since.saturating_add(1) < first && since < s.last_seq;
        let start = s.events.partition_point(|(seq, _)| *seq <= since);
        let out = s.events.range(start..).take(max).cloned().collect();
        (out, gap)
    }

    /// A receiver told of each of `app`'s events as it is published (a
    /// lagging one is only told it lagged: read with [`Journal::after`]).
    pub fn watch(&self, app: AppId) -> broadcast::Receiver<JournalEntry> {
        let mut inner = self.lock();
        Journal::stream(&mut inner.streams, app, self.buffer)
            .live
            .subscribe()
    }

    /// Start reading `app`'s events after `since`.
    pub fn subscribe(&self, app: AppId, since: u64) -> Subscription {
        let mut inner = self.lock();
        let s = Journal::stream(&mut inner.streams, app, self.buffer);
        let first = s
            .events
            .front()
            .map_or(s.last_seq.saturating_add(1), |(seq, _)| *seq);
        Subscription {
            backlog: s
                .events
                .iter()
                .filter(|(seq, _)| *seq > since)
                .cloned()
                .collect(),
            gap: since.saturating_add(1) < first && since < s.last_seq,
            last_seq: s.last_seq,
            live: s.live.subscribe(),
        }
    }
}

/// The shortest time between the starts of two store writes (see
/// [`run_writer`]).
pub const COMMIT_GAP: std::time::Duration = std::time::Duration::from_millis(10);

/// The store writer: takes everything queued, writes it in one transaction,
/// then publishes the events it held. A failed write is retried (with a
/// growing pause) before the events are published anyway so that the switch
/// keeps serving; each failure is logged. Every `prune_every` batches the
/// store's journal is cut to `retention` events per app.
///
/// Group commit: a write that follows the previous one closely (within
/// [`COMMIT_GAP`]) first waits out the gap, gathering what arrives
/// meanwhile, so that under load the store commits at most about 100 times
/// a second however many calls end, and a quiet switch's write goes at once.
/// Events reach readers only once committed, so this bounds the extra
/// latency of an event to the gap.
pub async fn run_writer(
    store: tapir_store::Store,
    journal: Arc<Journal>,
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
    retention: u64,
) {
    const MAX_BATCH: usize = 2048;
    let prune_every = 256u64;
    let mut batches = 0u64;
    let mut last_write: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        if let Some(at) = last_write
            && at.elapsed() < COMMIT_GAP
        {
            tokio::time::sleep_until(at + COMMIT_GAP).await;
        }
        last_write = Some(tokio::time::Instant::now());
        let mut batch = Batch::default();
        let mut events = Vec::new();
        let mut add = |m: WriterMsg, batch: &mut Batch| match m {
            WriterMsg::Event(app, name, (seq, text), at) => {
                batch.events.push(StoredEvent {
                    app: name.to_string(),
                    seq,
                    at,
                    body: text.to_string(),
                });
                events.push((app, (seq, text)));
            }
            WriterMsg::Batch(b) => batch.merge(b),
        };
        add(first, &mut batch);
        while batch.events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => add(m, &mut batch),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let mut tries = 0u32;
        loop {
            match store.write(&batch).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!("store write failed (try {tries}): {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50 << tries)).await;
                }
                Err(e) => {
                    tracing::error!("store write failed, giving up on this batch: {e}");
                    metrics::counter!("tapir_store_write_failures_total").increment(1);
                    break;
                }
            }
        }
        metrics::histogram!("tapir_store_batch_seconds").record(started.elapsed().as_secs_f64());
        journal.publish(events);
        batches += 1;
        if retention > 0 && batches.is_multiple_of(prune_every) {
            match store.prune_events(retention).await {
                Ok(n) if n > 0 => tracing::debug!(deleted = n, "journal retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!("journal retention failed: {e}"),
            }
        }
    }
    tracing::debug!("store writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_core::{CallId, EventBody};

    fn ev(app: u64, seq: u64) -> AppEvent {
        AppEvent {
            app: AppId(app),
            seq,
            body: EventBody::DigitsGenerated { call: CallId(seq) },
        }
    }

    #[test]
    fn replays_after_since_and_goes_on_live() {
        let j = Journal::new(10, 10);
        for s in 1..=5 {
            j.push(&ev(1, s));
        }
        j.push(&ev(2, 1));
        let mut sub = j.subscribe(AppId(1), 2);
        assert!(!sub.gap);
        assert_eq!(sub.last_seq, 5);
        let seqs: Vec<u64> = sub.backlog.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert!(sub.backlog[0].1.starts_with("{\"seq\":3,"));
        j.push(&ev(1, 6));
        assert_eq!(sub.live.try_recv().unwrap().0, 6);
        assert_eq!(j.last_seq(AppId(1)), 6);
        assert_eq!(j.last_seq(AppId(2)), 1);
        assert_eq!(j.last_seq(AppId(3)), 0);
    }

    #[test]
    fn a_reader_behind_the_bound_must_resync() {
        let j = Journal::new(3, 10);
        for s in 1..=6 {
            j.push(&ev(1, s));
        }
        assert!(j.subscribe(AppId(1), 0).gap, "events 1..3 fell out");
        assert!(j.subscribe(AppId(1), 2).gap);
        let sub = j.subscribe(AppId(1), 3);
        assert!(!sub.gap);
        assert_eq!(sub.backlog.len(), 3);
        assert!(!j.subscribe(AppId(1), 6).gap);
        assert!(!j.subscribe(AppId(7), 0).gap, "an app without events");
        assert!(
            !j.subscribe(AppId(1), u64::MAX).gap,
            "since at the very end"
        );
    }

    #[test]
    fn after_reads_a_bounded_slice_and_says_when_memory_lost_some() {
        let j = Journal::new(4, 10);
        assert_eq!(j.after(AppId(1), 0, 10), (Vec::new(), false));
        for s in 1..=6 {
            j.push(&ev(1, s));
        }
        let seqs =
            |(v, gap): (Vec<JournalEntry>, bool)| (v.iter().map(|e| e.0).collect::<Vec<_>>(), gap);
        assert_eq!(seqs(j.after(AppId(1), 3, 2)), (vec![4, 5], false));
        assert_eq!(seqs(j.after(AppId(1), 6, 2)), (vec![], false));
        assert_eq!(seqs(j.after(AppId(1), 1, 10)), (vec![3, 4, 5, 6], true));
    }

    #[test]
    fn a_lagging_live_reader_is_told() {
        let j = Journal::new(100, 2);
        let mut sub = j.subscribe(AppId(1), 0);
        for s in 1..=5 {
            j.push(&ev(1, s));
        }
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[tokio::test]
    async fn with_a_store_readers_see_only_committed_events_and_a_restart_replays() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("j.db").display());
        let store = tapir_store::Store::open(&url).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let j = Arc::new(Journal::persistent(100, 100, tx));
        j.name_app(AppId(1), "crm");
        let mut sub = j.subscribe(AppId(1), 0);
        // Nothing is visible before the writer commits it.
        for s in 1..=3 {
            j.push(&ev(1, s));
        }
        assert!(sub.live.try_recv().is_err());
        assert_eq!(j.subscribe(AppId(1), 0).backlog.len(), 0);
        let writer = tokio::spawn(run_writer(store.clone(), j.clone(), rx, 2));
        j.durable(j.pushed()).await;
        assert_eq!(sub.live.try_recv().unwrap().0, 1);
        assert_eq!(store.event_count("crm").await.unwrap(), 3);
        writer.abort();
        // A new journal (a restart) restores from the store and goes on.
        let tail = store.events_tail("crm", 100).await.unwrap();
        let j2 = Journal::new(100, 100);
        j2.restore(
            AppId(9),
            tail.into_iter()
                .map(|e| (e.seq, Arc::from(e.body)))
                .collect(),
        );
        assert_eq!(j2.last_seq(AppId(9)), 3);
        let sub = j2.subscribe(AppId(9), 1);
        assert_eq!(sub.backlog.len(), 2);
        assert!(sub.backlog[0].1.starts_with("{\"seq\":2,"));
    }
}
