//! The per-app event journal: every [`AppEvent`] the switch produces is kept
//! here, already rendered as the JSON the event stream sends, numbered by the
//! app's `seq`. It is bounded (the oldest events fall out) and in memory until
//! the store of issue 7 persists it.
//!
//! A WebSocket subscribes with [`Journal::subscribe`]: it gets the backlog
//! after `since` and a live receiver, taken under one lock so that no event
//! falls between the two.

use crate::wire;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tapir_core::{AppEvent, AppId};
use tokio::sync::broadcast;

/// One journalled event: its sequence number and its JSON text.
pub type JournalEntry = (u64, Arc<str>);

/// The journal of every app.
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<HashMap<AppId, AppStream>>,
    capacity: usize,
    buffer: usize,
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

impl Journal {
    /// A journal keeping `capacity` events per app; live readers may fall
    /// `buffer` events behind before they are told to resync.
    pub fn new(capacity: usize, buffer: usize) -> Journal {
        Journal {
            inner: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AppId, AppStream>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stream(map: &mut HashMap<AppId, AppStream>, app: AppId, buffer: usize) -> &mut AppStream {
        map.entry(app).or_insert_with(|| AppStream {
            events: VecDeque::new(),
            last_seq: 0,
            live: broadcast::channel(buffer).0,
        })
    }

    /// Journal one event and hand it to the live readers.
    pub fn push(&self, event: &AppEvent) {
        let text: Arc<str> = Arc::from(wire::event_json(event));
        let mut map = self.lock();
        let s = Journal::stream(&mut map, event.app, self.buffer);
        s.last_seq = event.seq;
        if s.events.len() >= self.capacity {
            s.events.pop_front();
        }
        s.events.push_back((event.seq, text.clone()));
        // No live reader is fine: the journal keeps the event.
        let _ = s.live.send((event.seq, text));
    }

    /// The last sequence number journalled for `app` (0 before any event).
    pub fn last_seq(&self, app: AppId) -> u64 {
        self.lock().get(&app).map_or(0, |s| s.last_seq)
    }

    /// Start reading `app`'s events after `since`.
    pub fn subscribe(&self, app: AppId, since: u64) -> Subscription {
        let mut map = self.lock();
        let s = Journal::stream(&mut map, app, self.buffer);
        let first = s.events.front().map_or(s.last_seq + 1, |(seq, _)| *seq);
        Subscription {
            backlog: s
                .events
                .iter()
                .filter(|(seq, _)| *seq > since)
                .cloned()
                .collect(),
            gap: since + 1 < first && since < s.last_seq,
            last_seq: s.last_seq,
            live: s.live.subscribe(),
        }
    }
}
