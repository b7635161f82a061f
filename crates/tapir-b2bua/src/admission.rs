//! Admission control: whether tapir takes a new call now.
//!
//! A device's initial INVITE is checked here first, before authentication
//! and before any RTP port is opened, and refused with `503 Service
//! Unavailable` and `Retry-After` while the process is near one of its
//! limits, so that no call already accepted ever fails for lack of a
//! socket (issue 11, item 4):
//!
//! - **file descriptors**: fewer than [`AdmissionConfig::margin_fds`] would
//!   be left below the process's limit after the new call's RTP sockets;
//! - **RTP ports**: fewer than [`AdmissionConfig::margin_rtp_ports`] free
//!   RTP port pairs would be left in the media range after the new call;
//! - **dialogs**: the new call's legs would take the B2BUA beyond
//!   [`AdmissionConfig::max_dialogs`].
//!
//! The rule is sans-IO: the server measures (it counts its open file
//! descriptors and the media engine's free ports, at most every so often)
//! and hands the figures in with [`Admission::measured`]; between two
//! measurements the dialogs opened since, which the B2BUA knows exactly,
//! carry the estimate forward (each holds one RTP port pair, two
//! descriptors), so that a burst of INVITEs between measurements cannot
//! overrun the margins. Dialogs that ended since are not counted back
//! (an ended dialog may linger for its transactions after its media
//! closed): what they freed shows at the next measurement. [`Admission::check`] is the one decision, and each
//! refusal is counted by reason for the server's metrics
//! ([`Admission::take_refused`]).

use std::time::Duration;

/// File descriptors one dialog holds: its RTP and RTCP sockets.
pub const FDS_PER_DIALOG: usize = 2;

/// Dialogs a new call opens at least: the caller's leg and one leg towards
/// the called party.
pub const DIALOGS_PER_CALL: usize = 2;

/// The limits [`Admission::check`] keeps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Most dialogs (legs) at once; a new call that would go beyond is
    /// refused.
    pub max_dialogs: usize,
    /// File descriptors always kept free below the process's limit: room
    /// for calls already accepted (a transfer's or conference's new legs),
    /// SIP connections and the server's own files.
    pub margin_fds: usize,
    /// Free RTP port pairs always kept in the media range, for legs of
    /// calls already accepted.
    pub margin_rtp_ports: usize,
    /// The `Retry-After` of a refusal.
    pub retry_after: Duration,
}

impl Default for AdmissionConfig {
    /// 100,000 dialogs, 256 descriptors and 4 RTP port pairs of margin, and
    /// `Retry-After: 5`.
    fn default() -> AdmissionConfig {
        AdmissionConfig {
            max_dialogs: 100_000,
            margin_fds: 256,
            margin_rtp_ports: 4,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Why a new call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The process is near its file descriptor limit.
    Fds,
    /// The media range is near running out of RTP ports.
    RtpPorts,
    /// The B2BUA is near its most dialogs.
    Dialogs,
    /// The server's loop is behind what arrives (see
    /// [`Admission::set_overloaded`]).
    Overload,
}

impl RefusalReason {
    /// Every reason, in the order of [`Admission::take_refused`].
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::Fds,
        RefusalReason::RtpPorts,
        RefusalReason::Dialogs,
        RefusalReason::Overload,
    ];

    /// Its name in logs and metrics (`fds`, `rtp_ports`, `dialogs`,
    /// `overload`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Fds => "fds",
            RefusalReason::RtpPorts => "rtp_ports",
            RefusalReason::Dialogs => "dialogs",
            RefusalReason::Overload => "overload",
        }
    }

    fn index(self) -> usize {
        match self {
            RefusalReason::Fds => 0,
            RefusalReason::RtpPorts => 1,
            RefusalReason::Dialogs => 2,
            RefusalReason::Overload => 3,
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new call refused: the response to give and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code: 503.
    pub status: u16,
    /// The `Retry-After` to send with it.
    pub retry_after: Duration,
    /// Why (for logs and metrics).
    pub reason: RefusalReason,
}

/// What the server measured of the process, and the dialogs open then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Open file descriptors and the process's (soft) limit; `None` when
    /// they cannot be counted (no check).
    pub fds: Option<(usize, usize)>,
    /// Free RTP port pairs in the media range; `None` when the range is
    /// not bounded (the system's ephemeral ports; no check).
    pub free_rtp_ports: Option<usize>,
    /// The B2BUA's dialogs when this was measured.
    pub dialogs: usize,
}

/// The admission rule with its latest measurement and refusal counts.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    cfg: AdmissionConfig,
    measured: Measurement,
    overloaded: bool,
    refused: [u64; RefusalReason::ALL.len()],
}

impl Admission {
    /// The rule with `cfg`, nothing measured yet (only the dialog count is
    /// checked until [`Admission::measured`]).
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            measured: Measurement::default(),
            overloaded: false,
            refused: [0; RefusalReason::ALL.len()],
        }
    }

    /// Its limits.
    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// Change its limits (the latest measurement stays).
    pub fn set_config(&mut self, cfg: AdmissionConfig) {
        self.cfg = cfg;
    }

    /// The server's latest measurement.
    pub fn measured(&mut self, measurement: Measurement) {
        self.measured = measurement;
    }

    /// Whether the server is behind what arrives (its loop has left
    /// datagrams waiting too long): while it is, every new call is refused,
    /// so that the calls already taken keep being served at capacity.
    pub fn set_overloaded(&mut self, overloaded: bool) {
        self.overloaded = overloaded;
    }

    /// Whether a new call may be taken with `dialogs` open now; the refusal
    /// (503, `Retry-After`, reason) when it may not, counted by reason.
    /// The first limit hit is named: descriptors, then RTP ports, then
    /// dialogs, then overload.
    pub fn check(&mut self, dialogs: usize) -> Result<(), Refusal> {
        let Some(reason) = self.limit_hit(dialogs) else {
            return Ok(());
        };
        if let Some(n) = self.refused.get_mut(reason.index()) {
            *n += 1;
        }
        Err(Refusal {
            status: 503,
            retry_after: self.cfg.retry_after,
            reason,
        })
    }

    /// The limit a new call would cross with `dialogs` open, if any.
    fn limit_hit(&self, dialogs: usize) -> Option<RefusalReason> {
        let m = &self.measured;
        // Dialogs opened since the measurement (the count can also have
        // gone down: see the module's documentation).
        let grown = dialogs.saturating_sub(m.dialogs);
        if let Some((open, limit)) = m.fds {
            let open_now = open.saturating_add(grown.saturating_mul(FDS_PER_DIALOG));
            let needed = open_now
                .saturating_add(DIALOGS_PER_CALL * FDS_PER_DIALOG)
                .saturating_add(self.cfg.margin_fds);
            if needed > limit {
                return Some(RefusalReason::Fds);
            }
        }
        if let Some(free) = m.free_rtp_ports {
            let free_now = free.saturating_sub(grown);
            if free_now < DIALOGS_PER_CALL.saturating_add(self.cfg.margin_rtp_ports) {
                return Some(RefusalReason::RtpPorts);
            }
        }
        if dialogs.saturating_add(DIALOGS_PER_CALL) > self.cfg.max_dialogs {
            return Some(RefusalReason::Dialogs);
        }
        self.overloaded.then_some(RefusalReason::Overload)
    }

    /// The refusals counted since the last call, by reason (reasons with
    /// none left out), and the counts start again from zero.
    pub fn take_refused(&mut self) -> impl Iterator<Item = (RefusalReason, u64)> + use<> {
        let counts = std::mem::take(&mut self.refused);
        RefusalReason::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
    }

    /// Whether any refusal waits to be taken.
    pub fn has_refused(&self) -> bool {
        self.refused.iter().any(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_dialogs: usize, margin_fds: usize, margin_rtp_ports: usize) -> Admission {
        Admission::new(AdmissionConfig {
            max_dialogs,
            margin_fds,
            margin_rtp_ports,
            retry_after: Duration::from_secs(7),
        })
    }

    #[test]
    fn an_overloaded_server_refuses_new_calls_until_it_catches_up() {
        let mut a = rule(100, 0, 0);
        assert_eq!(a.check(0), Ok(()));
        a.set_overloaded(true);
        let refusal = a.check(0).unwrap_err();
        assert_eq!(refusal.status, 503);
        assert_eq!(refusal.retry_after, Duration::from_secs(7));
        assert_eq!(refusal.reason, RefusalReason::Overload);
        // A limit hit as well is named first.
        assert_eq!(a.check(99).unwrap_err().reason, RefusalReason::Dialogs);
        a.set_overloaded(false);
        assert_eq!(a.check(0), Ok(()));
        let taken: Vec<_> = a.take_refused().collect();
        assert_eq!(
            taken,
            vec![(RefusalReason::Dialogs, 1), (RefusalReason::Overload, 1)]
        );
        assert_eq!(RefusalReason::Overload.to_string(), "overload");
    }

    #[test]
    fn nothing_measured_checks_only_dialogs() {
        let mut a = rule(4, 256, 4);
        assert_eq!(a.check(0), Ok(()));
        assert_eq!(a.check(2), Ok(()));
        // A call needs two legs: 3 + 2 > 4.
        let refusal = a.check(3).unwrap_err();
        assert_eq!(refusal.status, 503);
        assert_eq!(refusal.retry_after, Duration::from_secs(7));
        assert_eq!(refusal.reason, RefusalReason::Dialogs);
    }

    #[test]
    fn descriptors_keep_their_margin_and_follow_the_dialogs() {
        let mut a = rule(100_000, 100, 4);
        // 890 open of 1000: a call's 4 fds and the 100 of margin fit (994).
        a.measured(Measurement {
            fds: Some((890, 1000)),
            free_rtp_ports: None,
            dialogs: 10,
        });
        assert_eq!(a.check(10), Ok(()));
        // Two more dialogs since (4 fds): 894 + 4 + 100 = 998 still fits;
        // four more (8 fds): 898 + 104 = 1002 does not.
        assert_eq!(a.check(12), Ok(()));
        assert_eq!(a.check(14).unwrap_err().reason, RefusalReason::Fds);
        // Dialogs that ended since give nothing back until measured again.
        a.measured(Measurement {
            fds: Some((897, 1000)),
            free_rtp_ports: None,
            dialogs: 14,
        });
        assert_eq!(a.check(14).unwrap_err().reason, RefusalReason::Fds);
        assert_eq!(a.check(12).unwrap_err().reason, RefusalReason::Fds);
        a.measured(Measurement {
            fds: Some((893, 1000)),
            free_rtp_ports: None,
            dialogs: 12,
        });
        assert_eq!(a.check(12), Ok(()));
    }

    #[test]
    fn rtp_ports_keep_their_margin_and_follow_the_dialogs() {
        let mut a = rule(100_000, 0, 1);
        a.measured(Measurement {
            fds: None,
            free_rtp_ports: Some(5),
            dialogs: 0,
        });
        // A call needs 2 pairs, 1 stays free: 5 free is enough, 2 is not.
        assert_eq!(a.check(0), Ok(()));
        assert_eq!(a.check(2), Ok(()));
        assert_eq!(a.check(3).unwrap_err().reason, RefusalReason::RtpPorts);
        a.measured(Measurement {
            fds: None,
            free_rtp_ports: Some(1),
            dialogs: 4,
        });
        assert_eq!(a.check(4).unwrap_err().reason, RefusalReason::RtpPorts);
        // Two dialogs ended: their ports count once measured free.
        assert_eq!(a.check(2).unwrap_err().reason, RefusalReason::RtpPorts);
        a.measured(Measurement {
            fds: None,
            free_rtp_ports: Some(3),
            dialogs: 2,
        });
        assert_eq!(a.check(2), Ok(()));
    }

    #[test]
    fn refusals_are_counted_by_reason_and_taken_once() {
        let mut a = rule(2, 0, 0);
        assert!(!a.has_refused());
        assert!(a.check(1).is_err());
        assert!(a.check(2).is_err());
        a.measured(Measurement {
            fds: Some((10, 10)),
            free_rtp_ports: None,
            dialogs: 0,
        });
        assert!(a.check(0).is_err());
        assert!(a.has_refused());
        let taken: Vec<_> = a.take_refused().collect();
        assert_eq!(
            taken,
            vec![(RefusalReason::Fds, 1), (RefusalReason::Dialogs, 2)]
        );
        assert!(!a.has_refused());
        assert_eq!(a.take_refused().count(), 0);
        assert_eq!(RefusalReason::RtpPorts.to_string(), "rtp_ports");
    }
}
