//! Identifiers of the switch's objects and the switch's notion of time.
//!
//! Ids are plain integers handed out in increasing order and never reused, so a
//! stale id can never name a newer object: it is simply not found.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A line: a phone, a route point or a trunk.
    LineId, "line-"
);
id_type!(
    /// One address's view of a call (TAPI's `hCall`), shared by every app that sees it.
    CallId, "call-"
);
id_type!(
    /// A set of calls that hear each other.
    BridgeId, "bridge-"
);
id_type!(
    /// The wire endpoint of one call: a SIP dialog plus its RTP stream.
    LegId, "leg-"
);
id_type!(
    /// An application connected to the switch.
    AppId, "app-"
);
id_type!(
    /// One request of one application; answered by exactly one reply.
    RequestId, "req-"
);
id_type!(
    /// A pending call-completion request (camp-on, callback).
    CompletionId, "compl-"
);

/// A point in time, in milliseconds since the Unix epoch.
///
/// The switch has no clock of its own: every input carries the current time,
/// so tests drive it with a simulated clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This time plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}
