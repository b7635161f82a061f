//! The cluster's rules, without IO: ADR 0002 ("Partitioning: leases").
//!
//! Each line of the switch is served by exactly one live node, which holds
//! the line's lease in the shared store. This crate decides, from a snapshot
//! of the lease table and the nodes' heartbeats:
//!
//! - which node *should* serve a line: the rendezvous (highest random weight)
//!   hash of the line over the live nodes, so every node computes the same
//!   answer from the same table and no coordinator is needed
//!   ([`preferred_node`]);
//! - what this node does in one round: claim the lines it should serve whose
//!   lease is free or expired, renew the leases it holds, and hand over a
//!   line the hash now gives another node once the line has no call in
//!   progress ([`plan_round`]);
//! - whether this node may still act for its lines: a node that could not
//!   renew for most of the lease time stops before its lease can expire, so
//!   two nodes never both serve a line ([`Fence`]).
//!
//! The driver (in `tapir-server`) runs the SQL and feeds the results back.
//!
//! It also signs and checks the mark one node puts on its SIP requests to
//! another ([`NodeMark`]), so a node tells another node's call from a
//! stranger's although both reach it through the edge.

mod mark;

pub use mark::{FRESH_SECS, MIN_SECRET_LEN, MarkError, MarkedBy, NODE_MARK_HEADER, NodeMark};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Why a node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    /// Empty or longer than [`NodeName::MAX_LEN`].
    #[error("a node name has 1 to {max} characters", max = NodeName::MAX_LEN)]
    Length,
    /// A character outside `a-z`, `0-9` and `-`.
    #[error("a node name uses only a-z, 0-9 and '-' (it goes into call ids and NATS subjects)")]
    Character,
}

/// A node's name: 1 to 32 of `a-z`, `0-9`, `-`. It goes into call ids,
/// NATS subjects and SIP headers, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// The longest name.
    pub const MAX_LEN: usize = 32;

    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, NodeNameError> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(NodeNameError::Length);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NodeNameError::Character);
        }
        Ok(NodeName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The weight of `line` on `node` in rendezvous hashing: the first eight
/// bytes of SHA-256 over the node, a zero byte and the line. The same on
/// every node and every build; line names come from the operator, so no
/// stranger chooses what is hashed.
fn weight(node: &NodeName, line: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(node.as_str().as_bytes());
    hash.update([0u8]);
    hash.update(line.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The node that should serve `line` among `live` nodes: the one with the
/// highest weight (ties, which need a SHA-256 collision, go to the smaller
/// name). `None` when no node is live. When a node leaves, only its own
/// lines move; when one joins, it takes only the lines it now wins.
pub fn preferred_node<'a>(
    line: &str,
    live: impl IntoIterator<Item = &'a NodeName>,
) -> Option<&'a NodeName> {
    live.into_iter()
        .map(|node| (weight(node, line), node))
        .max_by(|(wa, na), (wb, nb)| wa.cmp(wb).then_with(|| nb.cmp(na)))
        .map(|(_, node)| node)
}

/// One row of the lease table as a node read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node holding it.
    pub node: NodeName,
    /// Raised by every claim, so a write carrying an older epoch is fenced off.
    pub epoch: i64,
    /// True when the store says it has expired.
    pub expired: bool,
}

/// What a node reads at the start of a round.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Nodes whose heartbeat is within the lease time, this node included
    /// once its own heartbeat is written.
    pub live: Vec<NodeName>,
    /// Leases by line; a line without a row has never been claimed.
    pub leases: BTreeMap<String, Lease>,
}

/// What a node does in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundPlan {
    /// Lines to claim (free, expired, or never claimed) because this node
    /// should serve them.
    pub claim: Vec<String>,
    /// Lines whose lease this node holds and keeps, with the epoch it holds.
    pub renew: Vec<(String, i64)>,
    /// Lines this node holds but another live node should serve, and that
    /// have no call in progress: released so that node can claim them.
    pub hand_over: Vec<(String, i64)>,
}

/// Plan one round for `me` over the switch's `lines`. `busy` says whether a
/// line has a call in progress on this node: such a line is kept (renewed)
/// even when the hash gives it to another node, so rebalancing never drops a
/// call; it moves when its calls end.
pub fn plan_round<'a>(
    me: &NodeName,
    lines: impl IntoIterator<Item = &'a str>,
    snapshot: &Snapshot,
    mut busy: impl FnMut(&str) -> bool,
) -> RoundPlan {
    let mut live: Vec<&NodeName> = snapshot.live.iter().collect();
    if !live.contains(&me) {
        live.push(me);
    }
    let mut plan = RoundPlan::default();
    for line in lines {
        let preferred = preferred_node(line, live.iter().copied());
        let mine = preferred == Some(me);
        match snapshot.leases.get(line) {
            Some(lease) if lease.node == *me && !lease.expired => {
                if mine || busy(line) {
                    plan.renew.push((line.to_owned(), lease.epoch));
                } else {
                    plan.hand_over.push((line.to_owned(), lease.epoch));
                }
            }
            // Expired (whoever held it, this node included) or never
            // claimed: the preferred node claims it.
            Some(lease) if lease.expired => {
                if mine {
                    plan.claim.push(line.to_owned());
                }
            }
            Some(_) => {} // another node holds a live lease: wait for it
            None => {
                if mine {
                    plan.claim.push(line.to_owned());
                }
            }
        }
    }
    plan
}

/// Whether a node may still act for the lines it holds. Its leases last
/// `lease` from the start of the round that renewed them; after
/// `stop_after` (four fifths of the lease) without another successful
/// renewal it stops serving, before any other node can claim those lines,
/// until a renewal succeeds again.
#[derive(Debug, Clone)]
pub struct Fence {
    stop_after: Duration,
    renewed_at: Option<Instant>,
}

impl Fence {
    /// A fence for leases of `lease`.
    pub fn new(lease: Duration) -> Self {
        Fence {
            stop_after: lease.mul_f64(0.8),
            renewed_at: None,
        }
    }

    /// The time without renewal after which the node stops.
    pub fn stop_after(&self) -> Duration {
        self.stop_after
    }

    /// A round that began at `round_start` renewed this node's leases.
    pub fn renewed(&mut self, round_start: Instant) {
        if self.renewed_at.is_none_or(|t| round_start > t) {
            self.renewed_at = Some(round_start);
        }
    }

    /// True when the node may act for its lines at `now`: it has renewed at
    /// least once, less than `stop_after` ago.
    pub fn may_serve(&self, now: Instant) -> bool {
        self.renewed_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.stop_after)
    }
}

#[cfg(test)]
mod tests;
