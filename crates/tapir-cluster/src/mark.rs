//! The mark one node puts on a request to another (ADR 0002, "Trust").
//!
//! Every node is reached through the cluster's SIP edge, and so is every
//! phone and trunk: the source address cannot tell a node's call from a
//! stranger's. A node therefore signs its requests to the other nodes with
//! the cluster's shared secret:
//!
//! ```text
//! X-Tapir-Node: node=<name>;ts=<unix seconds>;from=<address>;hops=<n>;mac=<hex>
//! ```
//!
//! `from` is the calling address of the switch (a phone's, a route
//! point's, or the trunk line's for a carrier's call, whose number is the
//! From user). `mac` is HMAC-SHA256, under the secret, over the node, the
//! time, the calling address, the forwarding hops and the request's
//! Call-ID, so a mark is worth one dialog for [`FRESH_SECS`] and cannot be
//! moved to another call or caller. `hops` carries
//! the call's forwarding count from node to node, so forwarding that loops
//! between nodes ends like forwarding that loops on one node. The edge
//! removes every `X-Tapir-*` header arriving from outside; a node believes
//! a mark only on a request from the edge.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::NodeName;

/// The SIP header that carries the mark.
pub const NODE_MARK_HEADER: &str = "X-Tapir-Node";

/// How long a mark is believed, either side of the receiver's clock.
pub const FRESH_SECS: u64 = 30;

/// The shortest cluster secret a node signs with (bytes).
pub const MIN_SECRET_LEN: usize = 16;

/// Why a mark was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    /// A part is missing or not in the form `node=…;ts=…;from=…;hops=…;mac=…`.
    #[error("the node mark is malformed")]
    Malformed,
    /// Its time is more than [`FRESH_SECS`] away from now.
    #[error("the node mark is stale (or from a clock far off)")]
    Stale,
    /// The MAC does not match: another secret, another call, or a forgery.
    #[error("the node mark's MAC does not match")]
    BadMac,
}

/// What a believed mark says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedBy {
    /// The node that sent the request.
    pub node: NodeName,
    /// The calling address (an address of the switch).
    pub from: String,
    /// The call's forwarding hops so far.
    pub hops: u8,
}

/// Signs and checks marks with one node's name and the cluster's secret.
#[derive(Clone)]
pub struct NodeMark {
    node: NodeName,
    key: Hmac<Sha256>,
}

impl std::fmt::Debug for NodeMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMark")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeMark {
    /// Marks for `node` under `secret`; `None` when the secret is shorter
    /// than [`MIN_SECRET_LEN`].
    pub fn new(node: NodeName, secret: &[u8]) -> Option<NodeMark> {
        if secret.len() < MIN_SECRET_LEN {
            return None;
        }
        let key = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        Some(NodeMark { node, key })
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    fn mac(&self, node: &str, ts: u64, from: &str, hops: u8, call_id: &str) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        // Lengths first, so no two different tuples hash alike.
        for part in [node.as_bytes(), from.as_bytes(), call_id.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&ts.to_be_bytes());
        mac.update(&[hops]);
        mac
    }

    /// The header value for a request of dialog `call_id` sent at
    /// `unix_secs`, for a call from address `from` forwarded `hops` times
    /// so far. `None` when `from` could break the header (it holds `;`,
    /// `=`, `,` or whitespace: no address of the switch does).
    pub fn sign(&self, call_id: &str, from: &str, hops: u8, unix_secs: u64) -> Option<String> {
        if from.is_empty()
            || from
                .chars()
                .any(|c| matches!(c, ';' | '=' | ',') || c.is_whitespace() || c.is_control())
        {
            return None;
        }
        let mac = self
            .mac(self.node.as_str(), unix_secs, from, hops, call_id)
            .finalize()
            .into_bytes();
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!(
            "node={};ts={unix_secs};from={from};hops={hops};mac={hex}",
            self.node.as_str()
        ))
    }

    /// Check a header value against dialog `call_id` at `unix_secs`.
    pub fn verify(
        &self,
        value: &str,
        call_id: &str,
        unix_secs: u64,
    ) -> Result<MarkedBy, MarkError> {
        let (mut node, mut ts, mut from, mut hops, mut mac) = (None, None, None, None, None);
        for part in value.trim().split(';') {
            let (k, v) = part.trim().split_once('=').ok_or(MarkError::Malformed)?;
            let slot = match k {
                "node" => &mut node,
                "ts" => &mut ts,
                "from" => &mut from,
                "hops" => &mut hops,
                "mac" => &mut mac,
                _ => return Err(MarkError::Malformed),
            };
            if slot.replace(v).is_some() {
                return Err(MarkError::Malformed);
            }
        }
        let (Some(node), Some(ts), Some(from), Some(hops), Some(mac)) = (node, ts, from, hops, mac)
        else {
            return Err(MarkError::Malformed);
        };
        if from.is_empty() {
            return Err(MarkError::Malformed);
        }
        let node = NodeName::new(node).map_err(|_| MarkError::Malformed)?;
        let ts: u64 = ts.parse().map_err(|_| MarkError::Malformed)?;
        let hops: u8 = hops.parse().map_err(|_| MarkError::Malformed)?;
        let mac = decode_hex(mac).ok_or(MarkError::Malformed)?;
        if ts.abs_diff(unix_secs) > FRESH_SECS {
            return Err(MarkError::Stale);
        }
        self.mac(node.as_str(), ts, from, hops, call_id)
            .verify_slice(&mac)
            .map_err(|_| MarkError::BadMac)?;
        Ok(MarkedBy {
            node,
            from: from.to_owned(),
            hops,
        })
    }
}

/// Lower- or upper-case hex of exactly 32 bytes.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mark(node: &str, secret: &str) -> NodeMark {
        NodeMark::new(NodeName::new(node).unwrap(), secret.as_bytes()).unwrap()
    }

    const SECRET: &str = "a-cluster-secret-of-32-characters";

    #[test]
    fn a_mark_is_believed_for_its_call_while_fresh() {
        let a = mark("node-1", SECRET);
        let b = mark("node-2", SECRET);
        let v = a.sign("call-1@x", "1001", 3, 1_000).unwrap();
        assert!(
            v.starts_with("node=node-1;ts=1000;from=1001;hops=3;mac="),
            "{v}"
        );
        let by = b.verify(&v, "call-1@x", 1_010).unwrap();
        assert_eq!(by.node.as_str(), "node-1");
        assert_eq!(by.from, "1001");
        assert_eq!(by.hops, 3);
        assert_eq!(
            b.verify(&v, "call-1@x", 1_000 - FRESH_SECS).unwrap().hops,
            3
        );
    }

    #[test]
    fn another_call_another_secret_or_an_old_mark_is_refused() {
        let a = mark("node-1", SECRET);
        let v = a.sign("call-1@x", "+4930", 0, 1_000).unwrap();
        assert_eq!(a.verify(&v, "call-2@x", 1_000), Err(MarkError::BadMac));
        let other = mark("node-2", "another-secret-entirely-here");
        assert_eq!(other.verify(&v, "call-1@x", 1_000), Err(MarkError::BadMac));
        assert_eq!(
            a.verify(&v, "call-1@x", 1_000 + FRESH_SECS + 1),
            Err(MarkError::Stale)
        );
    }

    #[test]
    fn changed_parts_break_the_mac() {
        let a = mark("node-1", SECRET);
        let v = a.sign("c", "1001", 1, 1_000).unwrap();
        for (from, to) in [
            ("hops=1", "hops=0"),
            ("node=node-1", "node=node-3"),
            ("ts=1000", "ts=1001"),
            ("from=1001", "from=1002"),
        ] {
            let forged = v.replace(from, to);
            assert_eq!(
                a.verify(&forged, "c", 1_000),
                Err(MarkError::BadMac),
                "{forged}"
            );
        }
    }

    #[test]
    fn malformed_marks_are_refused_without_panicking() {
        let a = mark("node-1", SECRET);
        let good = a.sign("c", "1001", 0, 1_000).unwrap();
        let mac = good.rsplit_once("mac=").unwrap().1;
        for bad in [
            "",
            "node=node-1",
            "node=node-1;ts=1000;from=1001;hops=0",
            "node=Node;ts=1000;from=1001;hops=0;mac=00",
            "node=node-1;ts=x;from=1001;hops=0;mac=00",
            "node=node-1;ts=1000;from=1001;hops=300;mac=00",
            "node=node-1;ts=1000;from=1001;hops=0;mac=zz",
            &format!("node=node-1;ts=1000;hops=0;mac={mac}"),
            &format!("node=node-1;ts=1000;from=;hops=0;mac={mac}"),
            &format!("node=node-1;ts=1000;from=1001;hops=0;mac={}é", &mac[..62]),
            &format!("node=node-1;node=node-1;ts=1000;from=1001;hops=0;mac={mac}"),
            &format!("node=node-1;ts=1000;from=1001;hops=0;mac={mac};extra=1"),
        ] {
            assert_eq!(
                a.verify(bad, "c", 1_000),
                Err(MarkError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_address_that_would_break_the_header_is_not_signed() {
        let a = mark("node-1", SECRET);
        for bad in ["", "10;01", "a=b", "1 2", "1,2", "1\r\n"] {
            assert_eq!(a.sign("c", bad, 0, 1_000), None, "{bad:?}");
        }
    }

    #[test]
    fn a_short_secret_signs_nothing() {
        assert!(NodeMark::new(NodeName::new("n").unwrap(), b"short").is_none());
    }
}
