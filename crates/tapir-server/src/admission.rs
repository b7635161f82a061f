//! The process's file descriptors, measured for admission control.
//!
//! - [`raise_fd_limit`]: at start, the open-file soft limit is raised to the
//!   hard limit (RTP takes two descriptors per leg).
//! - [`FdGauge`]: how many descriptors are open (counted in `/proc/self/fd`
//!   at most every [`MEASURE_EVERY`]) against the limit, with the margin of
//!   `[sip] admission_margin_fds`; the SIP acceptors ask it before keeping
//!   a new connection ([`FdGauge::room_for_connection`]).
//! - [`Meter`]: the loop's side: it hands the B2BUA's admission rule
//!   ([`tapir_b2bua::admission`]) the descriptor count and the media
//!   range's free RTP ports, at most every [`MEASURE_EVERY`], and counts
//!   the calls it refused in `tapir_calls_refused_total{reason}`.
//!
//! The rule itself (when a new call is refused) lives in the B2BUA.

use crate::sip::MediaPlane;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tapir_b2bua::B2bua;
use tapir_b2bua::admission::Measurement;

/// How often descriptors and RTP ports are measured at most; between two
/// measurements the B2BUA carries the estimate forward with its dialogs.
pub const MEASURE_EVERY: Duration = Duration::from_millis(100);

/// How often descriptors are counted while fewer than half the limit (less
/// the margin) are open and plenty are left: counting walks
/// `/proc/self/fd`, and far from the limit the dialogs' estimate between
/// counts is enough.
pub const MEASURE_EVERY_WHEN_FAR: Duration = Duration::from_secs(1);

/// Descriptors left below which the count is always fresh.
const FAR_ROOM: usize = 16_384;

/// The open-file limits (soft, hard), when the system tells them.
pub fn fd_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()
    }
    #[cfg(not(unix))]
    None
}

/// Raise the open-file soft limit to the hard limit, logging both before
/// and after; returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = fd_limits()?;
    if soft >= hard {
        tracing::info!(soft, hard, "open file limit");
        return Some(soft);
    }
    #[cfg(unix)]
    if let Err(e) =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(soft, hard, error = %e, "cannot raise the open file limit");
        return Some(soft);
    }
    let after = fd_limits().map_or(soft, |(s, _)| s);
    tracing::info!(before = soft, after, hard, "open file limit raised");
    Some(after)
}

/// How many file descriptors the process has open (Linux: the entries of
/// `/proc/self/fd`, less the one that reads them).
pub fn count_open_fds() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// The process's open descriptors against its limit, measured at most every
/// [`MEASURE_EVERY`] and shared by the loop and the SIP acceptors.
#[derive(Debug)]
pub struct FdGauge {
    /// The soft limit (`usize::MAX` when unknown).
    limit: usize,
    /// Descriptors kept free below the limit.
    margin: usize,
    /// The latest count (`usize::MAX`: cannot be counted).
    open: AtomicUsize,
    /// When it was counted, in ms since `epoch` (+1; 0: never).
    counted_at: AtomicU64,
    epoch: Instant,
}

impl FdGauge {
    /// A gauge against the current soft limit with `margin` kept free.
    pub fn new(margin: usize) -> Arc<FdGauge> {
        let limit = fd_limits().map_or(usize::MAX, |(soft, _)| {
            usize::try_from(soft).unwrap_or(usize::MAX)
        });
        Arc::new(FdGauge {
            limit,
            margin,
            open: AtomicUsize::new(usize::MAX),
            counted_at: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The soft limit, when known.
    pub fn limit(&self) -> Option<usize> {
        (self.limit != usize::MAX).then_some(self.limit)
    }

    /// The descriptors kept free.
    pub fn margin(&self) -> usize {
        self.margin
    }

    /// The open descriptors: the latest count, counted again when older
    /// than [`MEASURE_EVERY`] ([`MEASURE_EVERY_WHEN_FAR`] while under half
    /// the room); `None` when they cannot be counted.
    pub fn open(&self) -> Option<usize> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let at = self.counted_at.load(Ordering::Relaxed);
        let last = self.open.load(Ordering::Relaxed);
        // Far: under half the room, and more than a few seconds of the
        // fastest call set-up this node serves (some 4,000 descriptors a
        // second) left, so a count a second old cannot hide the limit.
        let room = self.limit.saturating_sub(self.margin);
        let far = last != usize::MAX && last < room / 2 && room - last > FAR_ROOM;
        let every = if far {
            MEASURE_EVERY_WHEN_FAR
        } else {
            MEASURE_EVERY
        };
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        if at == 0 || now.saturating_sub(at) >= every {
            let counted = count_open_fds().unwrap_or(usize::MAX);
            self.open.store(counted, Ordering::Relaxed);
            self.counted_at.store(now, Ordering::Relaxed);
        }
        let open = self.open.load(Ordering::Relaxed);
        (open != usize::MAX).then_some(open)
    }

    /// Whether a new SIP connection may be kept: more than the margin is
    /// left below the limit with it (true when nothing can be counted).
    pub fn room_for_connection(&self) -> bool {
        match (self.open(), self.limit()) {
            (Some(open), Some(limit)) => open + 1 + self.margin <= limit,
            _ => true,
        }
    }
}

/// The loop's measurements for the B2BUA's admission rule.
#[derive(Debug)]
pub struct Meter {
    fds: Arc<FdGauge>,
    measured_at: Option<Instant>,
}

impl Meter {
    /// A meter reading `fds`.
    pub fn new(fds: Arc<FdGauge>) -> Meter {
        Meter {
            fds,
            measured_at: None,
        }
    }

    /// Hand the admission rule fresh figures when the last ones are older
    /// than [`MEASURE_EVERY`] (cheap otherwise).
    pub fn measure(&mut self, now: Instant, b2b: &mut B2bua, media: &MediaPlane) {
        if self
            .measured_at
            .is_some_and(|at| now.saturating_duration_since(at) < MEASURE_EVERY)
        {
            return;
        }
        self.measured_at = Some(now);
        let fds = self.fds.open().zip(self.fds.limit());
        let dialogs = b2b.dialog_count();
        b2b.admission_mut().measured(Measurement {
            fds,
            free_rtp_ports: media.free_rtp_ports(),
            dialogs,
        });
    }

    /// Count the calls the rule refused since the last time in
    /// `tapir_calls_refused_total{reason}`.
    pub fn publish(b2b: &mut B2bua) {
        let admission = b2b.admission_mut();
        if !admission.has_refused() {
            return;
        }
        for (reason, n) in admission.take_refused() {
            metrics::counter!("tapir_calls_refused_total", "reason" => reason.as_str())
                .increment(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_counted_and_a_file_shows() {
        let gauge = FdGauge::new(0);
        let Some(before) = count_open_fds() else {
            return; // no /proc here
        };
        // Other tests of this process open and close descriptors meanwhile:
        // 200 files opened here must show by far more than that churn.
        let files: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let with = count_open_fds().unwrap();
        assert!(with >= before + 150, "{with} >= {before} + 150");
        drop(files);
        assert!(gauge.open().is_some());
        assert!(gauge.room_for_connection());
    }

    #[test]
    fn no_room_when_only_the_margin_is_left() {
        let limit = fd_limits().map(|(soft, _)| usize::try_from(soft).unwrap());
        let Some(limit) = limit else { return };
        if count_open_fds().is_none() {
            return;
        }
        let gauge = FdGauge::new(limit);
        assert!(!gauge.room_for_connection());
    }
}
