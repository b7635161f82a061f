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

use crate::SwitchHandle;
use crate::config::ClusterConfig;
use crate::error::ConfigError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_cluster::{Fence, Lease, NodeName, Snapshot, plan_round};
use tapir_store::cluster::{ClusterTables, NodeRow};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
        sip_uri: String,
        http_url: String,
    ) -> Result<Membership, ConfigError> {
        config.validate()?;
        let node = NodeName::new(&config.node)
            .map_err(|e| ConfigError::Invalid(format!("[cluster] node: {e}")))?;
        let tables = ClusterTables::open(&config.postgres)
            .await
            .map_err(|e| ConfigError::Io(format!("[cluster] postgres: {e}")))?;
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
    /// The (address, line) pairs already published to the edge's table.
    published: BTreeSet<(String, String)>,
    serving: Arc<Mutex<Serving>>,
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
            match tokio::time::timeout(self.lease / 2, self.round_once()).await {
                Ok(Ok(held)) => {
                    self.fence.renewed(started);
                    self.publish(Some(held));
                }
                Ok(Err(e)) => {
                    tracing::warn!(node = %self.me, "cluster round failed: {e}");
                    self.publish(None);
                }
                Err(_) => {
                    tracing::warn!(node = %self.me, "cluster round timed out");
                    self.publish(None);
                }
            }
        }
    }

    /// Record the round's outcome: the leases now held (`None` when the
    /// round failed and they are unchanged) and the fence's verdict.
    fn publish(&self, held: Option<BTreeMap<String, i64>>) {
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
        metrics::gauge!("tapir_cluster_lines_served").set(s.lines.len() as f64);
        metrics::gauge!("tapir_cluster_serving").set(if may_serve { 1.0 } else { 0.0 });
        metrics::counter!("tapir_cluster_failed_rounds_total").absolute(s.failed_rounds);
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
        let me = self.me.as_str();
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
        held.extend(claimed);
        if !plan.hand_over.is_empty() {
            self.tables.release(me, &plan.hand_over).await.map_err(db)?;
            tracing::info!(node = %self.me, lines = plan.hand_over.len(), "handed lines over");
        }
        Ok(held)
    }
}
