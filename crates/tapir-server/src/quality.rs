//! Call quality from RTCP: turns a leg's RTCP figures (what the media
//! engine measured of the phone's stream, and what the phone reported of
//! tapir's) into the per-leg summary shown in CDRs and the admin live view
//! ([`LegQuality`]), counts legs into the `tapir_media_*` Prometheus metrics
//! when their media closes, and keeps each closed leg's final figures for a
//! while ([`QualityBook`]) so that the call's CDR, written when the switch
//! sees the call end, gets them even when the leg's media closes first.
//!
//! Figures are taken only on demand (a leg closing, a CDR closing, the live
//! view): nothing here runs per packet.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tapir_core::LegId;
use tapir_media::engine::{MediaEngine, RtcpStats};
use utoipa::ToSchema;

/// RTP timestamp units per millisecond (G.711 and the other 8 kHz codecs
/// tapir speaks).
const UNITS_PER_MS: f64 = 8.0;

/// How long a closed leg's final figures wait for its CDR.
const KEEP: Duration = Duration::from_secs(120);

/// Buckets of `tapir_media_jitter_seconds`.
pub const JITTER_BUCKETS: &[f64] = &[0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];

/// Buckets of `tapir_media_round_trip_seconds`.
pub const ROUND_TRIP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
];

/// The media quality of one leg: tapir's measurement of the phone's stream
/// and, when the phone sent reports, the phone's view of tapir's stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegQuality {
    /// The address of the party on the leg.
    pub address: String,
    /// The call the leg belongs to (`call-N`).
    pub call: String,
    /// RTP packets received from the phone.
    pub packets_received: u64,
    /// Packets of the phone's stream lost on the way (expected − received,
    /// RFC 3550 cumulative loss; negative when duplicates arrived).
    pub packets_lost: i64,
    /// `packets_lost` as a percentage of the packets expected (0 when none
    /// were expected or none were lost).
    pub loss_percent: f64,
    /// Interarrival jitter of the phone's stream (RFC 3550), milliseconds.
    pub jitter_ms: f64,
    /// Round trip between tapir and the phone from the phone's last report
    /// (LSR/DLSR), milliseconds; absent until the phone answered one of
    /// tapir's sender reports.
    pub round_trip_ms: Option<f64>,
    /// The phone's last report about tapir's stream: the fraction of
    /// packets it lost in that report's interval (0 to 1).
    pub peer_fraction_lost: Option<f64>,
    /// The phone's last report: packets of tapir's stream it lost in all.
    pub peer_packets_lost: Option<i64>,
    /// The phone's last report: the jitter it measured, milliseconds.
    pub peer_jitter_ms: Option<f64>,
}

/// `x` to three decimals (figures for people, not for further sums).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl LegQuality {
    /// The summary of `stats`, the figures of the leg of `call` at
    /// `address`.
    pub fn from_stats(address: &str, call: &str, stats: &RtcpStats) -> LegQuality {
        let received = u64::from(stats.packets_received);
        let lost = stats.lost;
        let expected = i64::try_from(received)
            .unwrap_or(i64::MAX)
            .saturating_add(lost);
        let loss_percent = if lost > 0 && expected > 0 {
            round3(lost as f64 * 100.0 / expected as f64)
        } else {
            0.0
        };
        let peer = stats.peer_report;
        LegQuality {
            address: address.to_string(),
            call: call.to_string(),
            packets_received: received,
            packets_lost: lost,
            loss_percent,
            jitter_ms: round3(f64::from(stats.jitter) / UNITS_PER_MS),
            round_trip_ms: stats.round_trip.map(|d| round3(d.as_secs_f64() * 1000.0)),
            peer_fraction_lost: peer.map(|b| round3(f64::from(b.fraction_lost) / 256.0)),
            peer_packets_lost: peer.map(|b| i64::from(b.cumulative_lost)),
            peer_jitter_ms: peer.map(|b| round3(f64::from(b.jitter) / UNITS_PER_MS)),
        }
    }
}

/// Count one leg whose media closed into the `tapir_media_*` metrics.
/// Jitter is recorded only for a leg that heard RTP (a leg that never did
/// has no jitter to speak of), the round trip only when it is known.
pub fn count_closed_leg(stats: &RtcpStats) {
    metrics::counter!("tapir_media_legs_total").increment(1);
    metrics::counter!("tapir_media_packets_received_total")
        .increment(u64::from(stats.packets_received));
    metrics::counter!("tapir_media_packets_lost_total")
        .increment(u64::try_from(stats.lost).unwrap_or(0));
    if stats.packets_received > 0 {
        metrics::histogram!("tapir_media_jitter_seconds")
            .record(f64::from(stats.jitter) / UNITS_PER_MS / 1000.0);
    }
    if let Some(rtt) = stats.round_trip {
        metrics::histogram!("tapir_media_round_trip_seconds").record(rtt.as_secs_f64());
    }
}

/// HELP lines of the `tapir_media_*` metrics (once the recorder is
/// installed).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "tapir_media_legs_total",
        "Legs whose media closed (each counted once, at release)"
    );
    metrics::describe_counter!(
        "tapir_media_packets_received_total",
        "RTP packets received from phones on legs whose media closed"
    );
    metrics::describe_counter!(
        "tapir_media_packets_lost_total",
        "RTP packets of phones' streams lost on the way to tapir (expected - received), legs whose media closed"
    );
    metrics::describe_histogram!(
        "tapir_media_jitter_seconds",
        metrics::Unit::Seconds,
        "Interarrival jitter of a phone's stream at release (legs that received RTP)"
    );
    metrics::describe_histogram!(
        "tapir_media_round_trip_seconds",
        metrics::Unit::Seconds,
        "Round trip to the phone from its last RTCP report, at release (legs with a known round trip)"
    );
}

/// Final figures of closed legs, oldest first.
#[derive(Debug, Default)]
struct Closed {
    by_leg: HashMap<LegId, RtcpStats>,
    order: VecDeque<(Instant, LegId)>,
    /// Live legs whose CDR already took their figures: not kept when they
    /// close (nobody would take them).
    taken: HashSet<LegId>,
}

/// Where leg figures come from: the running media engine for live legs,
/// and the final figures of legs whose media closed lately (kept two
/// minutes for their CDR; a CDR takes them once, and a leg whose CDR took
/// its live figures is not kept when it closes).
#[derive(Default)]
pub struct QualityBook {
    engine: OnceLock<Arc<MediaEngine>>,
    closed: Mutex<Closed>,
}

impl std::fmt::Debug for QualityBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QualityBook")
            .field("engine", &self.engine.get().is_some())
            .finish_non_exhaustive()
    }
}

impl QualityBook {
    /// A book with no engine (no live figures) and no closed legs.
    pub fn new() -> QualityBook {
        QualityBook::default()
    }

    /// Read live figures from `engine` (the first engine attached stays).
    pub fn attach(&self, engine: Arc<MediaEngine>) {
        let _ = self.engine.set(engine);
    }

    /// Close a leg's media through the attached engine, count its final
    /// figures into the metrics and keep them for its CDR; whether the leg
    /// had media.
    pub fn close(&self, leg: LegId) -> bool {
        let Some(engine) = self.engine.get() else {
            return false;
        };
        // The book stays locked while the engine lets go of the leg, so a
        // CDR taking the leg's figures at that moment finds them either
        // live or closed, never neither.
        let mut c = self.lock();
        match engine.close(tapir_media::engine::LegId(leg.0)) {
            Some(stats) => {
                count_closed_leg(&stats);
                keep(&mut c, leg, stats, Instant::now());
                true
            }
            None => false,
        }
    }

    /// A leg's media closed with final figures `stats`: counted into the
    /// metrics and kept for the leg's CDR.
    pub fn closed(&self, leg: LegId, stats: RtcpStats) {
        count_closed_leg(&stats);
        self.closed_at(leg, stats, Instant::now());
    }

    fn closed_at(&self, leg: LegId, stats: RtcpStats, now: Instant) {
        keep(&mut self.lock(), leg, stats, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Closed> {
        self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many closed legs' figures are kept.
    pub fn kept(&self) -> usize {
        self.lock().by_leg.len()
    }

    /// The figures of `leg` so far: live while its media runs, else its
    /// final ones if it closed lately; `None` for a leg without media.
    pub fn figures(&self, leg: LegId) -> Option<RtcpStats> {
        let c = self.lock();
        self.live(leg).or_else(|| c.by_leg.get(&leg).copied())
    }

    /// The figures of `leg` for its CDR: its final ones if it closed
    /// (forgotten then: a CDR takes them once), else live ones.
    pub fn take(&self, leg: LegId) -> Option<RtcpStats> {
        // Locked throughout: a leg closing now (see `close`) is either
        // still live here or already kept.
        let mut c = self.lock();
        if let Some(kept) = c.by_leg.remove(&leg) {
            return Some(kept);
        }
        let live = self.live(leg)?;
        c.taken.insert(leg);
        Some(live)
    }

    fn live(&self, leg: LegId) -> Option<RtcpStats> {
        self.engine
            .get()?
            .rtcp_stats(tapir_media::engine::LegId(leg.0))
    }
}

/// Keep a closed leg's final figures for its CDR (not when its CDR took
/// its live figures already), forgetting those kept longer than [`KEEP`].
fn keep(c: &mut Closed, leg: LegId, stats: RtcpStats, now: Instant) {
    if c.taken.remove(&leg) {
        return;
    }
    while let Some(&(at, old)) = c.order.front() {
        if now.saturating_duration_since(at) < KEEP {
            break;
        }
        c.order.pop_front();
        c.by_leg.remove(&old);
    }
    if c.by_leg.insert(leg, stats).is_none() {
        c.order.push_back((now, leg));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tapir_media::rtcp::ReportBlock;

    fn stats(received: u32, lost: i64, jitter: u32) -> RtcpStats {
        RtcpStats {
            ssrc: 1,
            packets_sent: 0,
            reports_sent: 0,
            reports_received: 0,
            peer_ssrc: Some(2),
            highest_seq: 0,
            packets_received: received,
            lost,
            jitter,
            peer_report: None,
            round_trip: None,
            mux: false,
        }
    }

    #[test]
    fn a_leg_that_lost_packets_shows_its_loss_rate_and_jitter_in_ms() {
        let q = LegQuality::from_stats("1001", "call-3", &stats(95, 5, 40));
        assert_eq!(q.address, "1001");
        assert_eq!(q.call, "call-3");
        assert_eq!(q.packets_received, 95);
        assert_eq!(q.packets_lost, 5);
        assert_eq!(q.loss_percent, 5.0, "5 of 100 expected");
        assert_eq!(q.jitter_ms, 5.0, "40 samples at 8 kHz");
        assert_eq!(q.round_trip_ms, None);
        assert_eq!(q.peer_fraction_lost, None);
        let q = LegQuality::from_stats("1001", "call-3", &stats(2, 1, 3));
        assert_eq!(q.loss_percent, 33.333);
        assert_eq!(q.jitter_ms, 0.375);
    }

    #[test]
    fn duplicates_and_silence_are_no_loss() {
        let q = LegQuality::from_stats("1001", "call-1", &stats(12, -2, 0));
        assert_eq!((q.packets_lost, q.loss_percent), (-2, 0.0));
        let q = LegQuality::from_stats("1001", "call-1", &stats(0, 0, 0));
        assert_eq!((q.packets_received, q.loss_percent), (0, 0.0));
    }

    #[test]
    fn the_phones_report_and_the_round_trip_are_shown_when_known() {
        let mut s = stats(50, 0, 8);
        s.round_trip = Some(Duration::from_micros(12_345));
        s.peer_report = Some(ReportBlock {
            ssrc: 1,
            fraction_lost: 64,
            cumulative_lost: 7,
            highest_seq: 100,
            jitter: 16,
            lsr: 0,
            dlsr: 0,
        });
        let q = LegQuality::from_stats("1002", "call-2", &s);
        assert_eq!(q.round_trip_ms, Some(12.345));
        assert_eq!(q.peer_fraction_lost, Some(0.25));
        assert_eq!(q.peer_packets_lost, Some(7));
        assert_eq!(q.peer_jitter_ms, Some(2.0));
    }

    #[test]
    fn closed_legs_are_taken_once_and_forgotten_after_a_while() {
        let book = QualityBook::new();
        let t0 = Instant::now();
        book.closed_at(LegId(1), stats(10, 1, 0), t0);
        book.closed_at(LegId(2), stats(20, 2, 0), t0 + Duration::from_secs(60));
        assert_eq!(book.figures(LegId(1)).unwrap().packets_received, 10);
        assert_eq!(book.take(LegId(1)).unwrap().lost, 1);
        assert!(book.take(LegId(1)).is_none(), "taken once");
        assert!(
            book.figures(LegId(9)).is_none(),
            "no engine: no live figures"
        );
        // A third close two minutes after the second drops the second.
        book.closed_at(
            LegId(3),
            stats(30, 0, 0),
            t0 + KEEP + Duration::from_secs(61),
        );
        assert_eq!(book.kept(), 1);
        assert!(book.figures(LegId(2)).is_none());
        assert_eq!(book.figures(LegId(3)).unwrap().packets_received, 30);
    }

    #[tokio::test]
    async fn a_leg_whose_cdr_took_live_figures_is_not_kept_when_it_closes() {
        let (engine, _events) =
            MediaEngine::new(tapir_media::engine::MediaConfig::default()).unwrap();
        let engine = Arc::new(engine);
        engine.allocate(tapir_media::engine::LegId(5)).unwrap();
        let book = QualityBook::new();
        book.attach(engine.clone());
        // Live: from the engine, nothing kept.
        let live = book.figures(LegId(5)).unwrap();
        assert_eq!((live.packets_received, live.lost), (0, 0));
        // The record takes live figures; the close that follows keeps none.
        assert!(book.take(LegId(5)).is_some());
        assert!(book.close(LegId(5)));
        assert_eq!(book.kept(), 0);
        assert!(!book.close(LegId(5)), "closed once");
        // A leg that closes before its record is kept until taken.
        engine.allocate(tapir_media::engine::LegId(6)).unwrap();
        assert!(book.close(LegId(6)));
        assert_eq!(book.kept(), 1);
        assert!(book.take(LegId(6)).is_some());
        assert_eq!(book.kept(), 0);
        assert!(book.take(LegId(6)).is_none());
    }
}
