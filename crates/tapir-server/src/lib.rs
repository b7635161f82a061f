//! # tapir-server — the `tapir` binary's library
//!
//! Wires the sans-IO switch of `tapir-core` to the outside world:
//!
//! * [`config`]: the TOML configuration of `shared/API.md`, the embedded
//!   default and the generated secrets kept in the data directory;
//! * [`actor`]: one tokio task owns the [`tapir_core::Switch`]; a
//!   [`SwitchHandle`] sends it jobs, feeds it driver inputs and subscribes to
//!   its effects (the SIP and media drivers plug in there);
//! * [`journal`]: the per-app event journal behind the event stream;
//! * [`http`]: the HTTP API, WebSocket event stream, OpenAPI document,
//!   `/healthz` and `/metrics`.
//!
//! [`start`] runs all of it; integration tests call it with port 0.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod actor;
pub mod config;
pub mod error;
pub mod http;
pub mod journal;
pub mod sip;
pub mod wire;

pub use actor::{SwitchHandle, SwitchStopped};
pub use config::Config;
pub use error::{ApiError, ConfigError, StartError};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use tapir_core::{AppConfig, AppId, LineKind, Switch, SwitchConfig};
use tapir_translate::{Location, TranslateCaps};
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
    /// The configuration in force (secrets filled in).
    pub config: Config,
    /// Where SIP listens (UDP), when `[sip] listen` names an address.
    pub sip_addr: Option<SocketAddr>,
    /// Where SIP over TCP listens, when `[sip] listen` has a `tcp:` entry.
    pub sip_tcp_addr: Option<SocketAddr>,
    /// Where SIP over TLS listens, when `[sip] listen` has a `tls:` entry.
    pub sip_tls_addr: Option<SocketAddr>,
    sip: Option<sip::SipRunning>,
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
        if let Some(sip) = &self.sip {
            sip.abort();
        }
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
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| tracing::warn!("metrics recorder not installed: {e}"))
                .ok()
        })
        .clone()
}

/// The translation caps of a configuration: its `[translate]` section, or a
/// single location `default` (country 1, area 425) when it has none.
fn translate_caps(config: &Config) -> Result<TranslateCaps, ConfigError> {
    let caps = match &config.translate {
        Some(t) => TranslateCaps {
            current: t.current.clone(),
            locations: t.locations.clone(),
            cards: t.cards.clone(),
        },
        None => TranslateCaps {
            current: "default".into(),
            locations: vec![Location {
                name: "Default".into(),
                ..Location::new("default", 1, "425")
            }],
            cards: Vec::new(),
        },
    };
    caps.validate()
        .map_err(|e| ConfigError::Invalid(format!("[translate]: {e}")))?;
    Ok(caps)
}

/// Build the switch from `config`, start its task and the HTTP server.
/// Every app needs a token (see [`Config::fill_secrets`]).
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let mut sw_cfg = SwitchConfig {
        park_slots: config.park.slot_list()?,
        ..SwitchConfig::default()
    };
    if let Some(ms) = config.park.reminder_ms {
        sw_cfg.park_reminder_ms = ms;
    }
    let mut switch = Switch::new(sw_cfg);
    let mut lines = Vec::new();
    for entry in &config.lines {
        let id = switch
            .add_line(entry.to_core())
            .map_err(|error| StartError::Line {
                address: entry.address.clone(),
                error,
            })?;
        if entry.kind == LineKind::Phone && entry.password.is_none() {
            tracing::warn!(address = %entry.address, "phone line without a password");
        }
        lines.push(http::LineView {
            id,
            entry: entry.clone(),
        });
    }
    let mut apps = HashMap::new();
    let mut by_token = HashMap::new();
    for entry in &config.apps {
        for l in entry.lines.iter().filter(|l| l.as_str() != "*") {
            if !config.lines.iter().any(|line| line.addresses().contains(l)) {
                tracing::warn!(app = %entry.name, line = %l, "app allowed a line that is not configured");
            }
        }
        if apps.contains_key(&entry.name) {
            return Err(
                ConfigError::Invalid(format!("app {} is configured twice", entry.name)).into(),
            );
        }
        let token = entry
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConfigError::Invalid(format!("app {} has no token", entry.name)))?;
        let id = switch.register_app(AppConfig {
            name: entry.name.clone(),
            priority: entry.priority,
        });
        apps.insert(entry.name.clone(), id);
        let ctx = Arc::new(http::AppCtx {
            id,
            entry: entry.clone(),
        });
        if by_token.insert(http::token_hash(token), ctx).is_some() {
            return Err(
                ConfigError::Invalid(format!("app {} shares its token", entry.name)).into(),
            );
        }
    }
    let translate = translate_caps(&config)?;
    let journal = Arc::new(journal::Journal::new(
        config.http.journal_capacity,
        config.http.stream_buffer,
    ));
    let (handle, switch_task) = SwitchHandle::spawn(switch, journal, 4096);
    let registrations = tapir_b2bua::directory::RegistrationTable::default();
    let sip = sip::start(&config, &handle, registrations.clone())
        .await
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let sip_addr = sip.as_ref().map(|s| s.addr);
    let sip_tcp_addr = sip.as_ref().and_then(|s| s.tcp_addr);
    let sip_tls_addr = sip.as_ref().and_then(|s| s.tls_addr);
    let shared = Arc::new(http::Shared {
        handle: handle.clone(),
        apps: by_token,
        admin: config.http.admin_token.as_deref().map(http::token_hash),
        lines,
        translate: RwLock::new(translate),
        metrics: prometheus(),
        opened: std::sync::Mutex::default(),
        registrations,
    });
    let (router, _) = http::router(shared);
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
        sip_addr,
        sip_tcp_addr,
        sip_tls_addr,
        sip,
        shutdown: Some(tx),
        http_task,
        switch_task,
    })
}

/// The OpenAPI document of the API (what `GET /v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::api_doc()
}
