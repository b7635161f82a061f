//! # tapir-server — the `tapir` binary's library
//!
//! Wires the sans-IO switch of `tapir-core` to the outside world:
//!
//! * [`config`]: the TOML configuration of `shared/API.md`, the embedded
//!   default and the generated secrets kept in the data directory;
//! * [`actor`]: the loop, one tokio task that owns the
//!   [`tapir_core::Switch`] and the B2BUA and pumps between them, with SIP's
//!   sockets and the media engine as its drivers; a [`SwitchHandle`] sends
//!   it jobs (the HTTP API);
//! * [`sip`]: SIP's sockets, the media engine and the B2BUA, set up for the
//!   loop; [`transport`]: SIP over TCP and TLS; [`admission`]: the open-file
//!   limit and the measurements behind refusing new calls near it;
//! * [`journal`]: the per-app event journal behind the event stream,
//!   written through to the store;
//! * [`persist`]: the store (`tapir-store`, SQLite or PostgreSQL) at start
//!   (seeding, loading) and while running; [`cdr`]: call detail records;
//! * [`provisioning`]: lines, apps, trunks, park, locations and cards, and
//!   the one write path that changes them (start-up and `/v1/admin/*`);
//!   [`quality`]: legs' media quality from RTCP (CDRs, metrics);
//! * [`webhooks`]: apps' events POSTed to their endpoints from the
//!   journal, signed, in order, resumed after a restart;
//! * [`cluster`]: with `[cluster]`, this node's line leases in the
//!   cluster's shared tables (ADR 0002);
//! * [`http`]: the HTTP API, WebSocket event stream, OpenAPI document,
//!   `/healthz` and `/metrics`.
//!
//! [`start`] runs all of it; integration tests call it with port 0.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod actor;
pub mod admission;
pub mod cdr;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod journal;
pub mod persist;
pub mod provisioning;
pub mod quality;
pub mod recording;
pub mod sip;
pub mod transport;
pub mod webhooks;
pub mod wire;

pub use actor::{SwitchHandle, SwitchStopped};
pub use config::Config;
pub use error::{ApiError, ConfigError, StartError};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tapir_core::{AppId, Switch, SwitchConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The switch (for drivers and tests).
    pub switch: SwitchHandle,
    /// The switch's id of each configured app, by name.
    pub apps: HashMap<String, AppId>,
    /// The configuration in force: the file's process settings with the
    /// store's lines, apps, trunks, park and translation settings (app tokens
    /// in clear only when generated or seeded at this start).
    pub config: Config,
    /// Secrets generated at this start (the store was empty): print once.
    pub generated: Vec<String>,
    /// The store.
    pub store: tapir_store::Store,
    /// Where SIP listens (UDP), when `[sip] listen` names an address.
    pub sip_addr: Option<SocketAddr>,
    /// Where SIP over TCP listens, when `[sip] listen` has a `tcp:` entry.
    pub sip_tcp_addr: Option<SocketAddr>,
    /// Where SIP over TLS listens, when `[sip] listen` has a `tls:` entry.
    pub sip_tls_addr: Option<SocketAddr>,
    /// This node's cluster membership, with `[cluster]`.
    pub cluster: Option<Arc<cluster::Membership>>,
    /// Call recordings (running ones, and the finished through the store).
    pub recordings: Arc<recording::Recordings>,
    shutdown: Option<oneshot::Sender<()>>,
    http_task: JoinHandle<()>,
    switch_task: JoinHandle<()>,
}

impl RunningServer {
    /// Stop serving HTTP and wait for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let http = std::mem::replace(&mut self.http_task, tokio::spawn(async {}));
        let _ = http.await;
        // Running recordings end with valid files.
        self.recordings.stop_all().await;
        // Hand this node's lines to the others at once.
        if let Some(cluster) = &self.cluster {
            cluster.leave(std::time::Duration::from_secs(3)).await;
        }
        // Let the store writer commit what is queued.
        let journal = self.switch.journal().clone();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            journal.durable(journal.pushed()),
        )
        .await;
        self.switch_task.abort();
    }

    /// Wait until the HTTP server stops (it runs until [`Self::shutdown`]).
    pub async fn wait(mut self) {
        let http = std::mem::replace(&mut self.http_task, tokio::spawn(async {}));
        let _ = http.await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The Prometheus recorder is process-wide: installed once, shared by every
/// server of the process (tests start several).
fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            use metrics_exporter_prometheus::Matcher;
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tapir_media_jitter_seconds".into()),
                    quality::JITTER_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("tapir_media_round_trip_seconds".into()),
                        quality::ROUND_TRIP_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("tapir_media_stream_latency_seconds".into()),
                        http::MEDIA_STREAM_LATENCY_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!("metrics recorder not installed: {e}"))
                .ok();
            quality::describe_metrics();
            http::describe_media_metrics();
            handle
        })
        .clone()
}

/// Open the store of `config` (seeding it at first start), build the switch
/// from what the store holds, restore forwarding, callback requests and the
/// event journal, and start the switch task, the store writer, SIP and the
/// HTTP server. See [`persist`] for how the file and the store combine.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    // A bad [cluster] section stops the start before anything is bound.
    if let Some(cluster) = &config.cluster {
        cluster.validate()?;
    }
    let url = config.store_url();
    if config.store.url.is_none() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ConfigError::Io(format!("{}: {e}", config.data_dir.display())))?;
    }
    let store = tapir_store::Store::open(&url)
        .await
        .map_err(|e| ConfigError::Io(format!("store {}: {e}", redact(&url))))?;
    // The file's webhooks (they seed the store once; the store's apps
    // replace the file's below).
    let webhook_seed: Vec<(String, config::WebhookEntry)> = config
        .apps
        .iter()
        .flat_map(|a| a.webhooks.iter().map(|w| (a.name.clone(), w.clone())))
        .collect();
    let webhook_settings = config.webhooks.clone();
    let loaded = persist::load(&store, config).await?;
    let mut config = loaded.config;
    config.webhooks = webhook_settings;
    let translate = provisioning::translate_caps(&config)?;
    let mut sw_cfg = SwitchConfig {
        park_slots: config.park.slot_list()?,
        emergency_numbers: config.emergency.number_list()?,
        ..SwitchConfig::default()
    };
    // The current location's country tells the lines' national calls from
    // international ones (`outbound`).
    if let Ok(location) = translate.location(None) {
        sw_cfg.location = location.clone();
    }
    if let Some(ms) = config.park.reminder_ms {
        sw_cfg.park_reminder_ms = ms;
    }
    let mut switch = Switch::new(sw_cfg);
    switch.reserve_ids_below(loaded.id_floor);
    // Lines and apps into the switch, phones' passwords into the directory.
    let staged =
        provisioning::Provisioning::stage(&mut switch, &config, &loaded.app_hashes, translate)?;
    let apps = staged.apps().clone();
    let now = actor::now();
    let db = |e: tapir_store::StoreError| StartError::from(ConfigError::Io(format!("store: {e}")));
    for f in store.forwarding().await.map_err(db)? {
        let restored = serde_json::from_value::<Vec<tapir_core::ForwardRule>>(f.rules)
            .map_err(|e| e.to_string())
            .and_then(|rules| {
                switch
                    .set_forwarding(&f.address, rules, f.no_answer_rings)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = restored {
            tracing::warn!(address = %f.address, "stored forwarding not restored: {e}");
        }
    }
    let (writer_tx, writer_rx) = tokio::sync::mpsc::unbounded_channel();
    let journal = Arc::new(journal::Journal::persistent(
        config.http.journal_capacity,
        config.http.stream_buffer,
        writer_tx,
    ));
    let last_seqs: HashMap<String, u64> =
        store.last_seqs().await.map_err(db)?.into_iter().collect();
    for (name, id) in &apps {
        journal.name_app(*id, name);
        if let Some(last) = last_seqs.get(name) {
            let tail = store
                .events_tail(name, config.http.journal_capacity as u64)
                .await
                .map_err(db)?;
            journal.restore(
                *id,
                tail.into_iter()
                    .map(|e| (e.seq, Arc::from(e.body)))
                    .collect(),
            );
            switch.continue_event_seq(*id, *last);
        }
    }
    let mut kept = Vec::new();
    for c in store.completions().await.map_err(db)? {
        let (Some(r), Some(app)) = (persist::restored_completion(&c), apps.get(&c.app)) else {
            tracing::warn!(completion = c.id, app = %c.app, "stored completion request dropped: unreadable or its app is gone");
            continue;
        };
        match switch.restore_completion(
            now,
            r.id,
            *app,
            r.mode,
            &r.from,
            &r.to,
            r.needs_activity,
            r.expires_at,
        ) {
            Ok(()) => kept.push(c),
            Err(e) => tracing::info!(
                completion = c.id,
                "stored completion request not restored: {e}"
            ),
        }
    }
    // Drop what could not come back (expired, lines gone).
    journal.write(tapir_store::Batch {
        completions: Some(kept),
        ..tapir_store::Batch::default()
    });
    let retention = config
        .store
        .journal_retention
        .unwrap_or(config.http.journal_capacity as u64);
    tokio::spawn(journal::run_writer(
        store.clone(),
        journal.clone(),
        writer_rx,
        retention,
    ));
    let quality = Arc::new(quality::QualityBook::new());
    let cdr = Arc::new(std::sync::Mutex::new(cdr::Tracker::with_quality(
        quality.clone(),
    )));
    let mut observer = persist::Observer::new(
        journal.clone(),
        loaded.id_floor + persist::ID_BLOCK,
        cdr.clone(),
    );
    observer.seen_completions(&switch);
    let registrations = tapir_b2bua::directory::RegistrationTable::default();
    let subscriptions = tapir_b2bua::subscription::SubscriptionTable::default();
    staged.bind_trunks().await;
    let started = sip::start(
        &config,
        registrations.clone(),
        staged.credentials(),
        staged.trunk_table(),
        staged.watch_table(),
        subscriptions.clone(),
        quality,
    )
    .await
    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let media_engine = started.as_ref().map(|(_, parts)| parts.media.engine());
    let (sip, sip_parts) = match started {
        Some((running, parts)) => (Some(running), Some(parts)),
        None => (None, None),
    };
    let (handle, switch_task) = SwitchHandle::spawn_node(
        switch,
        sip_parts,
        journal.clone(),
        Some(Box::new(move |sw, now, touched| {
            observer.after_step(sw, now, touched)
        })),
    );
    let sip_addr = sip.as_ref().map(|s| s.addr);
    let sip_tcp_addr = sip.as_ref().and_then(|s| s.tcp_addr);
    let sip_tls_addr = sip.as_ref().and_then(|s| s.tls_addr);
    let provisioning = Arc::new(staged.start(handle.clone(), store.clone(), loaded.admin_hash));
    let (webhooks, webhook_secrets) = webhooks::Webhooks::start(
        config.webhooks.clone(),
        store.clone(),
        journal,
        provisioning.clone(),
        webhook_seed,
    )
    .await
    .map_err(|e| ConfigError::Invalid(format!("webhooks: {e}")))?;
    let mut generated = loaded.generated;
    generated.extend(webhook_secrets);
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .map_err(|error| StartError::Listen {
            addr: config.http.listen.clone(),
            error,
        })?;
    let http_addr = listener.local_addr().map_err(|error| StartError::Listen {
        addr: config.http.listen.clone(),
        error,
    })?;
    let cluster = match &config.cluster {
        Some(c) => Some(Arc::new(
            cluster::Membership::join(
                c,
                handle.clone(),
                registrations.clone(),
                cdr.clone(),
                sip.as_ref().and_then(|s| s.served.clone()),
                sip_addr.map_or_else(String::new, |a| format!("sip:{a}")),
                format!("http://{http_addr}"),
            )
            .await?,
        )),
        None => None,
    };
    let recordings = recording::Recordings::open(
        config.recording.clone(),
        &config.data_dir,
        store.clone(),
        media_engine.clone(),
        handle.clone(),
    )
    .await
    .map_err(|e| ConfigError::Invalid(format!("recordings: {e}")))?;
    let shared = Arc::new(http::Shared {
        handle: handle.clone(),
        prompts: sip::prompt_catalog(&config),
        provisioning,
        metrics: prometheus(),
        registrations,
        subscriptions,
        store: store.clone(),
        cdr,
        webhooks,
        cluster: cluster.clone(),
        media: media_engine,
        recordings: recordings.clone(),
    });
    let (router, _) = http::router(shared);
    let listener = http::BoundedListener::new(
        listener,
        config.http.max_connections,
        std::time::Duration::from_secs(config.http.idle_timeout_secs),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("http server: {e}");
        }
    });
    tracing::info!(%http_addr, "tapir HTTP API listening");
    Ok(RunningServer {
        http_addr,
        switch: handle,
        apps,
        config,
        generated,
        store,
        sip_addr,
        sip_tcp_addr,
        sip_tls_addr,
        cluster,
        recordings,
        shutdown: Some(tx),
        http_task,
        switch_task,
    })
}

/// A store URL without its password (for messages).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// The OpenAPI document of the API (what `GET /v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::api_doc()
}
