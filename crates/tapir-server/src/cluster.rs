//! This node's membership of a cluster (ADR 0002, `[cluster]`): the lease
//! driver around the loop.
//!
//! Every round (`[cluster] round_secs`) the driver writes the node's
//! heartbeat, publishes which line each address belongs to (for the SIP
//! edge), reads the live nodes and the leases, lets `tapir-cluster` plan
//! the round (claim, renew, hand over) with the switch's busy lines, and
//! runs the plan against the shared tables. What the node serves, and
//! whether its fence still lets it serve, is kept in a [`Membership`] that
//! `/healthz` and `/metrics` read. A node stopping on purpose leaves: its
//! leases end at once, so the others take its lines in their next round.
//!
//! Registrations follow the lines: each round saves the phones' bindings
//! of the lines this node serves (fenced by the lease's epoch), and a node
//! that claims a line restores the bindings saved for it, so a phone is
//! reached at once through the edge after its node died, without
//! registering again.
//!
//! Call records follow too: each round saves the records of this node's
//! answered calls in progress (only when that set changed), as they would
//! be closed if the node died now (`node_lost`). A node that claims a line
//! from a dead node takes the dead node's records involving that line and
//! stores them closed, and a node starting again closes its own previous
//! run's, so a crash loses no record of an answered call.

use crate::SwitchHandle;
use crate::config::ClusterConfig;
use crate::error::ConfigError;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_b2bua::directory::{RegistrationTable, ServedTable};
use tapir_cluster::{Fence, Lease, NodeName, Snapshot, plan_round};
use tapir_sip::registrar::{Binding, Transport};
use tapir_store::cluster::{ClusterTables, NodeRow};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Store, closed now, the records `node` saved for its calls in progress
/// (`docs` as [`ClusterTables::take_open_calls`] gives them).
fn close_records(switch: &SwitchHandle, node: &str, docs: Vec<String>) {
    let ended_at = crate::actor::now();
    let mut cdrs = Vec::new();
    for doc in docs {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&doc) else {
            tracing::warn!(%node, "a saved call record that is not JSON was dropped");
            continue;
        };
        let started_at = v["started_at"].as_u64().unwrap_or(ended_at.0);
        let addresses = v["addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut data = v["data"].clone();
        // It ended when the survivors noticed the node had died.
        if let Some(m) = data.as_object_mut() {
            m.insert("ended_at".into(), crate::wire::rfc3339(ended_at).into());
            m.insert(
                "duration_ms".into(),
                ended_at.0.saturating_sub(started_at).into(),
            );
        }
        cdrs.push(tapir_store::NewCdr {
            started_at,
            ended_at: ended_at.0,
            addresses,
            data,
        });
    }
    if !cdrs.is_empty() {
        tracing::warn!(%node, records = cdrs.len(), "closed the call records of a node that died (node_lost)");
        switch.journal().write(tapir_store::Batch {
            cdrs,
            ..Default::default()
        });
    }
}

/// The bits below a node's slot in its ids: 2^44 ids per node.
const SLOT_SHIFT: u32 = 44;

/// The first id of the node with `slot` (1 to 2^19, so ids stay below 2^63).
fn id_floor(slot: i32) -> Result<u64, ConfigError> {
    match u64::try_from(slot) {
        Ok(s) if (1..(1 << (63 - SLOT_SHIFT))).contains(&s) => Ok(s << SLOT_SHIFT),
        _ => Err(ConfigError::Invalid(format!(
            "[cluster] slot {slot} is out of range (too many node names?)"
        ))),
    }
}

/// What this node serves now.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// The lines (by first address) whose lease this node holds, with the
    /// epoch it holds them at.
    pub lines: BTreeMap<String, i64>,
    /// False until the first round renews, and whenever the fence stops the
    /// node (no renewal for four fifths of the lease).
    pub may_serve: bool,
    /// Rounds that failed since the start (the store could not be reached).
    pub failed_rounds: u64,
}

/// A running membership: its state, and the driver that keeps it.
#[derive(Debug)]
pub struct Membership {
    node: NodeName,
    tables: ClusterTables,
    serving: Arc<Mutex<Serving>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Membership {
    /// Join the cluster: connect to its tables (creating them when
    /// missing) and start the lease driver. `sip_uri` and `http_url` are
    /// where other nodes and the edge reach this one.
    pub async fn join(
        config: &ClusterConfig,
        switch: SwitchHandle,
        registrations: RegistrationTable,
        cdr: Arc<Mutex<crate::cdr::Tracker>>,
        served: Option<ServedTable>,
        sip_uri: String,
        http_url: String,
    ) -> Result<Membership, ConfigError> {
        config.validate()?;
        let node = NodeName::new(&config.node)
            .map_err(|e| ConfigError::Invalid(format!("[cluster] node: {e}")))?;
        let tables = ClusterTables::open(&config.postgres)
            .await
            .map_err(|e| ConfigError::Io(format!("[cluster] postgres: {e}")))?;
        // Ids unique across the cluster without asking anyone per call:
        // this node's ids start at its slot times 2^44.
        let slot = tables
            .slot(node.as_str())
            .await
            .map_err(|e| ConfigError::Io(format!("[cluster] slot: {e}")))?;
        let floor = id_floor(slot)?;
        switch
            .with(move |sw, _| sw.reserve_ids_below(floor))
            .await
            .map_err(|_| ConfigError::Io("the switch stopped while joining".into()))?;
        // The records of this node's previous run's calls (it died) are
        // closed before its first save replaces them.
        let leftovers = tables
            .take_open_calls(node.as_str(), None)
            .await
            .map_err(|e| ConfigError::Io(format!("[cluster] open calls: {e}")))?;
        close_records(&switch, node.as_str(), leftovers);
        // Until its first round, every address is another node's.
        switch
            .with(|sw, _| sw.set_served(Some(Default::default())))
            .await
            .map_err(|_| ConfigError::Io("the switch stopped while joining".into()))?;
        let serving = Arc::new(Mutex::new(Serving::default()));
        let (stop, stopped) = watch::channel(false);
        let driver = Driver {
            me: node.clone(),
            row: NodeRow {
                name: node.to_string(),
                sip_uri,
                http_url,
            },
            tables: tables.clone(),
            switch,
            lease: Duration::from_secs_f64(config.lease_secs),
            round: Duration::from_secs_f64(config.round_secs),
            fence: Fence::new(Duration::from_secs_f64(config.lease_secs)),
            published: BTreeSet::new(),
            holders: BTreeMap::new(),
            cdr,
            saved_calls: Vec::new(),
            registrations,
            served,
            saved: BTreeMap::new(),
            serving: serving.clone(),
        };
        let task = tokio::spawn(driver.run(stopped));
        tracing::info!(node = %node, "joined the cluster");
        Ok(Membership {
            node,
            tables,
            serving,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// What this node serves now.
    pub fn serving(&self) -> Serving {
        self.serving
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Stop the driver and leave: the node's leases end now and its
    /// heartbeat goes (bounded by `within`; a node that cannot reach the
    /// store simply lets its leases run out).
    pub async fn leave(&self, within: Duration) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = tokio::time::timeout(within, task).await;
        }
        match tokio::time::timeout(within, self.tables.leave(self.node.as_str())).await {
            Ok(Ok(())) => tracing::info!(node = %self.node, "left the cluster"),
            Ok(Err(e)) => tracing::warn!(node = %self.node, "leaving the cluster: {e}"),
            Err(_) => tracing::warn!(node = %self.node, "leaving the cluster timed out"),
        }
    }
}

/// The lease driver's state.
struct Driver {
    me: NodeName,
    row: NodeRow,
    tables: ClusterTables,
    switch: SwitchHandle,
    lease: Duration,
    round: Duration,
    fence: Fence,
    /// Every (address, line) pair of the switch, as last published to the
    /// edge's table.
    published: BTreeSet<(String, String)>,
    /// Each line's lease holder as the last round read it (to notice a
    /// holder that died).
    holders: BTreeMap<String, NodeName>,
    /// The call records, whose calls in progress each round saves.
    cdr: Arc<Mutex<crate::cdr::Tracker>>,
    /// What the last save of calls in progress held: (record, operations).
    saved_calls: Vec<(u64, usize)>,
    /// Phones' registrations, as this node's registrar publishes them.
    registrations: RegistrationTable,
    /// The addresses the registrar and new requests are held to (with SIP).
    served: Option<ServedTable>,
    /// The registration document last saved per address (`None`: none).
    saved: BTreeMap<String, Option<String>>,
    serving: Arc<Mutex<Serving>>,
}

/// A binding as the cluster's store keeps it: the registrar's binding with
/// its times as Unix milliseconds, so another node (another clock origin)
/// can read it back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredBinding {
    contact: String,
    source: std::net::SocketAddr,
    transport: String,
    q: Option<u16>,
    expires_unix_ms: u64,
    call_id: String,
    cseq: u32,
    path: Vec<String>,
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The document saved for an address's live bindings (`None` when it has
/// none). Only what a refresh changes changes the document.
fn encode_bindings(bindings: &[Binding], now: Instant) -> Option<String> {
    if bindings.is_empty() {
        return None;
    }
    let unix_now = unix_ms_now();
    let stored: Vec<StoredBinding> = bindings
        .iter()
        .map(|b| StoredBinding {
            contact: b.contact.clone(),
            source: b.source,
            transport: b.transport.token().to_owned(),
            q: b.q,
            // Rounded to the second: the same binding always encodes alike.
            expires_unix_ms: (unix_now + b.remaining(now).as_millis() as u64) / 1000 * 1000,
            call_id: b.call_id.clone(),
            cseq: b.cseq,
            path: b.path.clone(),
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

/// Bindings read back from a saved document; expired ones and ones that do
/// not parse are left out.
fn decode_bindings(doc: &str, now: Instant) -> Vec<Binding> {
    let Ok(stored) = serde_json::from_str::<Vec<StoredBinding>>(doc) else {
        return Vec::new();
    };
    let unix_now = unix_ms_now();
    stored
        .into_iter()
        .filter_map(|s| {
            let left = s.expires_unix_ms.checked_sub(unix_now)?;
            let transport = match s.transport.as_str() {
                "UDP" => Transport::Udp,
                "TCP" => Transport::Tcp,
                "TLS" => Transport::Tls,
                _ => return None,
            };
            Some(Binding {
                contact: s.contact,
                source: s.source,
                transport,
                q: s.q,
                expires_at: now + Duration::from_millis(left),
                call_id: s.call_id,
                cseq: s.cseq,
                updated_at: now,
                path: s.path,
            })
        })
        .collect()
}

/// A line as the driver sees it: its key (first address), every address,
/// and whether it has a call.
struct LineView {
    key: String,
    addresses: Vec<String>,
    busy: bool,
}

impl Driver {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.round);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
            let started = Instant::now();
            // A round never outlasts the fence: a store that hangs counts
            // as a failed round.
            let held = match tokio::time::timeout(self.lease / 2, self.round_once()).await {
                Ok(Ok(held)) => {
                    self.fence.renewed(started);
                    Some(held)
                }
                Ok(Err(e)) => {
                    tracing::warn!(node = %self.me, "cluster round failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::warn!(node = %self.me, "cluster round timed out");
                    None
                }
            };
            let served = self.publish(held);
            if self
                .switch
                .with(move |sw, _| sw.set_served(Some(served)))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Record the round's outcome: the leases now held (`None` when the
    /// round failed and they are unchanged) and the fence's verdict.
    /// Returns the addresses served now (none once the fence has stopped
    /// the node), for the switch.
    fn publish(&self, held: Option<BTreeMap<String, i64>>) -> HashSet<Arc<str>> {
        let may_serve = self.fence.may_serve(Instant::now());
        let mut s = self
            .serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match held {
            Some(lines) => s.lines = lines,
            None => s.failed_rounds += 1,
        }
        if s.may_serve != may_serve {
            if may_serve {
                tracing::info!(node = %self.me, lines = s.lines.len(), "serving lines");
            } else {
                tracing::warn!(node = %self.me, "lease fence: stopped serving (no renewal)");
            }
        }
        s.may_serve = may_serve;
        // The held lines' addresses, and nothing once the fence has
        // stopped this node.
        let addresses: HashSet<String> = if may_serve {
            self.published
                .iter()
                .filter(|(_, line)| s.lines.contains_key(line))
                .map(|(address, _)| address.clone())
                .collect()
        } else {
            HashSet::new()
        };
        let for_switch = addresses.iter().map(|a| Arc::from(a.as_str())).collect();
        if let Some(served) = &self.served {
            served.set(addresses);
        }
        metrics::gauge!("tapir_cluster_lines_served").set(s.lines.len() as f64);
        metrics::gauge!("tapir_cluster_serving").set(if may_serve { 1.0 } else { 0.0 });
        metrics::counter!("tapir_cluster_failed_rounds_total").absolute(s.failed_rounds);
        for_switch
    }

    async fn round_once(&mut self) -> Result<BTreeMap<String, i64>, String> {
        let db = |e: tapir_store::StoreError| e.to_string();
        self.tables.heartbeat(&self.row).await.map_err(db)?;
        let lines = self
            .switch
            .with(|sw, _| {
                let busy = sw.lines_with_calls();
                sw.line_ids()
                    .into_iter()
                    .filter_map(|id| {
                        let cfg = sw.line_config(id)?;
                        let key = cfg.addresses.first()?.clone();
                        Some(LineView {
                            key,
                            addresses: cfg.addresses,
                            busy: busy.contains(&id),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| e.to_string())?;
        let pairs: BTreeSet<(String, String)> = lines
            .iter()
            .flat_map(|l| l.addresses.iter().map(|a| (a.clone(), l.key.clone())))
            .collect();
        if pairs != self.published {
            let fresh: Vec<(String, String)> = pairs.difference(&self.published).cloned().collect();
            self.tables.publish_addresses(&fresh).await.map_err(db)?;
            self.published = pairs;
        }
        let live = self.tables.live_nodes(self.lease).await.map_err(db)?;
        let mut snapshot = Snapshot::default();
        for n in live {
            match NodeName::new(&n.name) {
                Ok(name) => snapshot.live.push(name),
                Err(e) => tracing::warn!(node = %n.name, "a live node's name is refused: {e}"),
            }
        }
        for row in self.tables.leases().await.map_err(db)? {
            let Ok(node) = NodeName::new(&row.node) else {
                continue;
            };
            snapshot.leases.insert(
                row.line,
                Lease {
                    node,
                    epoch: row.epoch,
                    expired: row.expired,
                },
            );
        }
        self.end_calls_with_dead_nodes(&snapshot).await?;
        let busy: BTreeSet<&str> = lines
            .iter()
            .filter(|l| l.busy)
            .map(|l| l.key.as_str())
            .collect();
        let plan = plan_round(
            &self.me,
            lines.iter().map(|l| l.key.as_str()),
            &snapshot,
            |line| busy.contains(line),
        );
        let me = self.me.clone();
        let me = me.as_str();
        let mut held: BTreeMap<String, i64> = BTreeMap::new();
        held.extend(
            self.tables
                .renew(me, &plan.renew, self.lease)
                .await
                .map_err(db)?,
        );
        let claimed = self
            .tables
            .claim(me, &plan.claim, self.lease)
            .await
            .map_err(db)?;
        if !claimed.is_empty() {
            tracing::info!(node = %self.me, lines = claimed.len(), "claimed lines");
        }
        self.restore_registrations(&lines, &claimed).await?;
        self.close_dead_nodes_records(&lines, &claimed, &snapshot)
            .await?;
        held.extend(claimed);
        self.save_registrations(&lines, &held).await?;
        self.save_calls_in_progress().await?;
        if !plan.hand_over.is_empty() {
            self.tables.release(me, &plan.hand_over).await.map_err(db)?;
            tracing::info!(node = %self.me, lines = plan.hand_over.len(), "handed lines over");
        }
        Ok(held)
    }

    /// A node that held a line's lease last round and is not live now died
    /// (or was cut off): this node's half of each call with an address of
    /// that line ends, `node_lost`, when its heartbeat expires rather than
    /// when the media times out. This round's lease holders are kept for
    /// the next round.
    async fn end_calls_with_dead_nodes(&mut self, now: &Snapshot) -> Result<(), String> {
        let live = &now.live;
        let dead_lines: BTreeSet<&String> = self
            .holders
            .iter()
            .filter(|(_, node)| **node != self.me && !live.contains(node))
            .map(|(line, _)| line)
            .collect();
        let addresses: HashSet<Arc<str>> = self
            .published
            .iter()
            .filter(|(_, line)| dead_lines.contains(line))
            .map(|(address, _)| Arc::from(address.as_str()))
            .collect();
        self.holders = now
            .leases
            .iter()
            .map(|(line, lease)| (line.clone(), lease.node.clone()))
            .collect();
        if addresses.is_empty() {
            return Ok(());
        }
        let ended = self
            .switch
            .with(move |sw, now| sw.node_lost(now, &addresses))
            .await
            .map_err(|e| e.to_string())?;
        if ended > 0 {
            tracing::warn!(node = %self.me, calls = ended, "a node died: its calls with this node ended (node_lost)");
            metrics::counter!("tapir_cluster_calls_node_lost_total").increment(ended as u64);
        }
        Ok(())
    }

    /// Save the records of the calls in progress, when the set (or an
    /// operation on one) changed since the last save.
    async fn save_calls_in_progress(&mut self) -> Result<(), String> {
        let records = {
            let tracker = self
                .cdr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let shape = tracker.in_progress_shape();
            if shape == self.saved_calls {
                return Ok(());
            }
            self.saved_calls = shape;
            tracker.in_progress(crate::actor::now())
        };
        let rows: Vec<(i64, Vec<String>, String)> = records
            .into_iter()
            .map(|(key, r)| {
                let doc = serde_json::json!({
                    "started_at": r.started_at,
                    "addresses": r.addresses,
                    "data": r.data,
                });
                (
                    i64::try_from(key).unwrap_or(i64::MAX),
                    r.addresses,
                    doc.to_string(),
                )
            })
            .collect();
        if let Err(e) = self.tables.save_open_calls(self.me.as_str(), &rows).await {
            // Not saved: the next round tries again.
            self.saved_calls.clear();
            return Err(e.to_string());
        }
        Ok(())
    }

    /// Close the records a dead node saved for calls involving the lines
    /// just claimed from it.
    async fn close_dead_nodes_records(
        &mut self,
        lines: &[LineView],
        claimed: &[(String, i64)],
        before: &Snapshot,
    ) -> Result<(), String> {
        let mut by_node: BTreeMap<&NodeName, Vec<String>> = BTreeMap::new();
        for line in lines {
            if !claimed.iter().any(|(c, _)| *c == line.key) {
                continue;
            }
            // Only a dead holder's: a live one handed the line over idle.
            if let Some(lease) = before.leases.get(&line.key)
                && lease.node != self.me
                && !before.live.contains(&lease.node)
            {
                by_node
                    .entry(&lease.node)
                    .or_default()
                    .extend(line.addresses.iter().cloned());
            }
        }
        for (node, addresses) in by_node {
            let docs = self
                .tables
                .take_open_calls(node.as_str(), Some(&addresses))
                .await
                .map_err(|e| e.to_string())?;
            close_records(&self.switch, node.as_str(), docs);
        }
        Ok(())
    }

    /// Put back the bindings saved for the lines just claimed.
    async fn restore_registrations(
        &mut self,
        lines: &[LineView],
        claimed: &[(String, i64)],
    ) -> Result<(), String> {
        let addresses: Vec<String> = lines
            .iter()
            .filter(|l| claimed.iter().any(|(c, _)| *c == l.key))
            .flat_map(|l| l.addresses.iter().cloned())
            .collect();
        let now = Instant::now();
        let mut restored = 0;
        for (address, doc) in self
            .tables
            .registrations(&addresses)
            .await
            .map_err(|e| e.to_string())?
        {
            let bindings = decode_bindings(&doc, now);
            if !bindings.is_empty() {
                restored += 1;
                self.registrations.restore(&address, bindings);
            }
            // Saved by the previous holder; this node saves it again
            // under its own epoch next round.
            self.saved.remove(&address);
        }
        if restored > 0 {
            tracing::info!(node = %self.me, addresses = restored, "restored registrations");
        }
        Ok(())
    }

    /// Save the bindings of the held lines' addresses that changed since
    /// they were last saved, under each line's lease epoch. An address
    /// without bindings is deleted once (a previous holder may have saved
    /// some that are stale now).
    async fn save_registrations(
        &mut self,
        lines: &[LineView],
        held: &BTreeMap<String, i64>,
    ) -> Result<(), String> {
        let now = Instant::now();
        for line in lines {
            let Some(epoch) = held.get(&line.key) else {
                continue;
            };
            for address in &line.addresses {
                let doc = encode_bindings(&self.registrations.contacts(address, now), now);
                if self.saved.get(address) == Some(&doc) {
                    continue;
                }
                self.tables
                    .save_registration(self.me.as_str(), &line.key, *epoch, address, doc.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                self.saved.insert(address.clone(), doc);
            }
        }
        Ok(())
    }
}
