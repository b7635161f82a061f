//! The switch as one node of a cluster (ADR 0002): which addresses this
//! node serves, and the calls it has with addresses other nodes serve
//! (its half of a call between nodes), including their end when the
//! other node dies.

use super::Switch;
use crate::ids::Timestamp;
use crate::output::ReleaseCause;
use std::collections::HashSet;
use std::sync::Arc;

impl Switch {
    /// In a cluster: this node serves exactly `addresses` from now on
    /// (`None`: every address, a single node). A call to an address served
    /// elsewhere leaves through the cluster to the node that serves it
    /// ([`crate::Effect::CreateLeg`] with `via_node`), which applies the
    /// address's forwarding, busy and ring-time rules; calls in progress
    /// keep how they were routed.
    pub fn set_served(&mut self, addresses: Option<HashSet<Arc<str>>>) {
        self.served = addresses;
    }

    /// Whether `address` is served by another node of the cluster.
    pub(crate) fn is_served_elsewhere(&self, address: &str) -> bool {
        self.served
            .as_ref()
            .is_some_and(|served| !served.contains(address))
    }

    /// The node that served `addresses` died: this node's half of every
    /// call with one of them ends as if its far end vanished
    /// ([`ReleaseCause::NodeLost`], which the call detail record names),
    /// and the parties here are told. Returns how many calls ended.
    pub fn node_lost(&mut self, now: Timestamp, addresses: &HashSet<Arc<str>>) -> usize {
        self.advance(now);
        let lost: Vec<_> = self
            .m
            .calls
            .values()
            .filter(|c| c.served_elsewhere && !c.state.is_idle() && addresses.contains(&c.address))
            .map(|c| c.id)
            .collect();
        for &call in &lost {
            self.hang_up(call, ReleaseCause::NodeLost);
        }
        self.flush();
        lost.len()
    }
}
