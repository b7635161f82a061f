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
        metrics::counter!("tapir_events_total").increment(1);
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
}
