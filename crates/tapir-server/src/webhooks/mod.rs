//! Webhooks: an app's events POSTed to its HTTP endpoints, signed, in `seq`
//! order, from the journal.
//!
//! An app registers webhooks in the configuration (`[[apps]] webhooks`,
//! seeding the store once), through `/v1/webhooks` (its own) or the
//! operator through `/v1/admin/webhooks`. Each has a URL (https unless
//! `[webhooks] allow_http`; no loopback, private or link-local target unless
//! `allow_private`, checked on registration and again on every connection,
//! see [`target`]), filters on event types and addresses, a secret (given
//! or generated, shown only in the reply that set it, never logged) and a
//! batch size.
//!
//! **Delivery contract.** At least once, in `seq` order per webhook, with
//! the event's `seq` as its stable id: one worker per webhook ([`deliver`])
//! POSTs the next event(s) after the last acknowledged `seq` and waits for a
//! 2xx before going on; anything else is retried with exponential backoff
//! and jitter. The acknowledged `seq` is kept in the store, and the store's
//! journal keeps what an active webhook has not acknowledged, so a restart
//! (even a SIGKILL) resumes where delivery stopped; a receiver may see an
//! event again after a restart and drops it by `seq`. A webhook failing for
//! `[webhooks] suspend_after` seconds is suspended (admin API, `/metrics`);
//! a `PUT` resumes it.

pub mod deliver;
pub mod target;

use crate::config::{WebhookEntry, WebhooksConfig};
use crate::journal::Journal;
use crate::provisioning::Provisioning;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tapir_store::{Store, StoreError, StoredWebhook};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

/// Most event types in one webhook's filter.
pub const MAX_EVENT_TYPES: usize = 64;
/// Most addresses in one webhook's filter.
pub const MAX_ADDRESSES: usize = 256;
/// Most events in one batched POST.
pub const MAX_BATCH: usize = 1000;
/// Longest URL accepted.
pub const MAX_URL: usize = 1024;
/// Meta key set once the configuration's webhooks have seeded the store.
pub const SEEDED: &str = "webhooks_seeded";

/// Why a webhook change was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Bad input: the sentence says what.
    #[error("{0}")]
    Invalid(String),
    /// No webhook of that id (for this app).
    #[error("there is no webhook {0:?}")]
    NotFound(String),
    /// The app has as many webhooks as it may.
    #[error("application {app} already has {max} webhooks, the most it may have")]
    TooMany {
        /// The app.
        app: String,
        /// The limit (`[webhooks] max_per_app`).
        max: usize,
    },
    /// No such app.
    #[error("there is no application {0:?}")]
    NoApp(String),
    /// The store refused.
    #[error("the store refused the change, nothing was changed: {0}")]
    Store(#[from] StoreError),
    /// The random source failed.
    #[error("no random secret could be made: {0}")]
    Random(String),
}

/// A webhook's definition: what it receives and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookDef {
    /// Its id (`wh_…`).
    pub id: String,
    /// The app whose events it delivers.
    pub app: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered (`call.state`, `call.*`, `*`); all when empty.
    pub events: Vec<String>,
    /// Addresses whose events are delivered; all when empty.
    pub addresses: Vec<String>,
    /// Most events per POST; above 1 the body is always an array.
    pub batch: usize,
    /// When it was created (ms since the epoch).
    pub created_at: u64,
}

impl WebhookDef {
    fn data(&self) -> Value {
        json!({
            "url": self.url,
            "events": self.events,
            "addresses": self.addresses,
            "batch": self.batch,
            "created_at": self.created_at,
        })
    }

    fn from_stored(w: &StoredWebhook) -> WebhookDef {
        let d = &w.data;
        let strings = |k: &str| -> Vec<String> {
            d[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        WebhookDef {
            id: w.id.clone(),
            app: w.app.clone(),
            url: d["url"].as_str().unwrap_or_default().to_string(),
            events: strings("events"),
            addresses: strings("addresses"),
            batch: d["batch"]
                .as_u64()
                .map_or(1, |b| usize::try_from(b).unwrap_or(1))
                .clamp(1, MAX_BATCH),
            created_at: d["created_at"].as_u64().unwrap_or(0),
        }
    }
}

/// What a request asks of a webhook (`POST` creates, `PUT` changes what it
/// names and resumes a suspended webhook).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// The app (operator endpoints only; an app's own must be absent or its
    /// name).
    pub app: Option<String>,
    /// Where events are POSTed (required to create).
    pub url: Option<String>,
    /// Event types (`call.state`, a family `call.*`, or `*`); all when
    /// absent or empty. At most 64.
    pub events: Option<Vec<String>>,
    /// Addresses: only their events (an event naming the address, and the
    /// events of calls that appeared there); all when absent or empty. At
    /// most 256.
    pub addresses: Option<Vec<String>>,
    /// The signing secret, 16 to 256 characters; generated when a webhook
    /// is created without one. Shown only in this request's reply.
    pub secret: Option<String>,
    /// Most events per POST (1 to 1000, default 1); above 1 every POST's
    /// body is a JSON array.
    pub batch: Option<usize>,
}

impl std::fmt::Debug for WebhookBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookBody")
            .field("app", &self.app)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("addresses", &self.addresses)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("batch", &self.batch)
            .finish()
    }
}

impl From<&WebhookEntry> for WebhookBody {
    fn from(e: &WebhookEntry) -> WebhookBody {
        WebhookBody {
            app: None,
            url: Some(e.url.clone()),
            events: Some(e.events.clone()),
            addresses: Some(e.addresses.clone()),
            secret: e.secret.clone(),
            batch: e.batch,
        }
    }
}

/// A webhook as the API shows it (never its secret, except in the reply
/// that set it).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// The app whose events it delivers.
    pub app: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered; all when empty.
    pub events: Vec<String>,
    /// Addresses whose events are delivered; all when empty.
    pub addresses: Vec<String>,
    /// Most events per POST.
    pub batch: usize,
    /// `active`, `failing` (retrying) or `suspended`.
    pub state: String,
    /// The app's last `seq` the receiver has acknowledged (or that the
    /// filters skipped).
    pub acked: u64,
    /// Events journalled after `acked` (not all may pass the filters).
    pub pending: u64,
    /// Since when it has been failing (ms since the epoch).
    pub failing_since: Option<u64>,
    /// The last failure (`HTTP 500`, `timed out`, …).
    pub last_error: Option<String>,
    /// Events delivered since tapir started.
    pub delivered: u64,
    /// The secret, only in the reply that created or changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The running state of one webhook.
#[derive(Debug, Default)]
pub struct Progress {
    /// Last acknowledged (or skipped) `seq`.
    pub acked: u64,
    /// Suspended.
    pub suspended: bool,
    /// Failing since (ms since the epoch).
    pub failing_since: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Events delivered since start.
    pub delivered: u64,
}

/// One webhook: its definition, secret and progress.
pub struct Hook {
    /// What it delivers and where.
    pub def: WebhookDef,
    secret: String,
    progress: Mutex<Progress>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("def", &self.def)
            .field("secret", &"***")
            .finish()
    }
}

impl Hook {
    /// The signing secret.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Its progress, locked.
    pub fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stored(&self) -> StoredWebhook {
        let p = self.progress();
        StoredWebhook {
            id: self.def.id.clone(),
            app: self.def.app.clone(),
            secret: self.secret.clone(),
            acked: p.acked,
            suspended: p.suspended,
            data: self.def.data(),
        }
    }
}

/// What the delivery workers share.
#[derive(Debug)]
pub struct Ctx {
    /// `[webhooks]`.
    pub settings: WebhooksConfig,
    /// Acknowledged `seq`s and suspensions go here; events the journal no
    /// longer holds in memory come from here.
    pub store: Store,
    /// The events.
    pub journal: Arc<Journal>,
    /// Apps by name (their switch ids).
    pub provisioning: Arc<Provisioning>,
    /// The HTTP client (no redirects, no proxy, guarded resolver).
    pub client: reqwest::Client,
}

#[derive(Debug)]
struct Running {
    hook: Arc<Hook>,
    task: JoinHandle<()>,
}

/// Every webhook and its worker.
#[derive(Debug)]
pub struct Webhooks {
    ctx: Arc<Ctx>,
    hooks: Mutex<BTreeMap<String, Running>>,
    writes: tokio::sync::Mutex<()>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn random_id() -> Result<String, WebhookError> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| WebhookError::Random(e.to_string()))?;
    Ok(format!(
        "wh_{}",
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Check an event-type filter: at most [`MAX_EVENT_TYPES`] names of
/// lower-case letters, digits, `_` and `.`, a family `x.*`, or `*`.
pub fn check_events(events: &[String]) -> Result<(), WebhookError> {
    if events.len() > MAX_EVENT_TYPES {
        return Err(WebhookError::Invalid(format!(
            "\"events\" names {} event types; a webhook may filter on at most {MAX_EVENT_TYPES}",
            events.len()
        )));
    }
    for e in events {
        let name = e.strip_suffix(".*").unwrap_or(e);
        let ok = e == "*"
            || (!name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
                }));
        if !ok {
            return Err(WebhookError::Invalid(format!(
                "{e:?} in \"events\" is not an event type (such as \"call.state\", \"call.*\" or \"*\")"
            )));
        }
    }
    Ok(())
}

/// Check an address filter: at most [`MAX_ADDRESSES`] non-empty addresses.
pub fn check_addresses(addresses: &[String]) -> Result<(), WebhookError> {
    if addresses.len() > MAX_ADDRESSES {
        return Err(WebhookError::Invalid(format!(
            "\"addresses\" names {} addresses; a webhook may filter on at most {MAX_ADDRESSES}",
            addresses.len()
        )));
    }
    if let Some(a) = addresses
        .iter()
        .find(|a| a.is_empty() || a.len() > 64 || a.chars().any(char::is_control))
    {
        return Err(WebhookError::Invalid(format!(
            "{a:?} in \"addresses\" is not an address"
        )));
    }
    Ok(())
}

fn check_secret(secret: &str) -> Result<(), WebhookError> {
    if !(16..=256).contains(&secret.len()) || secret.chars().any(char::is_control) {
        return Err(WebhookError::Invalid(
            "a webhook secret needs 16 to 256 printable characters".into(),
        ));
    }
    Ok(())
}

fn check_batch(batch: usize) -> Result<(), WebhookError> {
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(WebhookError::Invalid(format!(
            "\"batch\" is {batch}; it must be 1 to {MAX_BATCH} events per POST"
        )));
    }
    Ok(())
}

impl Webhooks {
    /// Load the stored webhooks, seed the configuration's once, and start a
    /// worker for each active one.
    pub async fn start(
        settings: WebhooksConfig,
        store: Store,
        journal: Arc<Journal>,
        provisioning: Arc<Provisioning>,
        seed: Vec<(String, WebhookEntry)>,
    ) -> Result<(Arc<Webhooks>, Vec<String>), WebhookError> {
        let client = target::client(&settings)
            .map_err(|e| WebhookError::Invalid(format!("webhook HTTP client: {e}")))?;
        let w = Arc::new(Webhooks {
            ctx: Arc::new(Ctx {
                settings,
                store,
                journal,
                provisioning,
                client,
            }),
            hooks: Mutex::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
        });
        for stored in w.ctx.store.webhooks().await? {
            let hook = Arc::new(Hook {
                def: WebhookDef::from_stored(&stored),
                secret: stored.secret.clone(),
                progress: Mutex::new(Progress {
                    acked: stored.acked,
                    suspended: stored.suspended,
                    ..Progress::default()
                }),
            });
            w.run(hook);
        }
        let mut generated = Vec::new();
        if w.ctx.store.meta(SEEDED).await?.is_none() {
            for (app, entry) in seed {
                let given = entry.secret.is_some();
                match w.create(&app, WebhookBody::from(&entry)).await {
                    Ok(v) if !given => generated.push(format!(
                        "webhook {} of app {app} ({}): secret {}",
                        v.id,
                        v.url,
                        v.secret.unwrap_or_default()
                    )),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%app, "configured webhook not created: {e}"),
                }
            }
            w.ctx.store.set_meta(SEEDED, "1").await?;
        }
        Ok((w, generated))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Running>> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, hook: Arc<Hook>) {
        let suspended = hook.progress().suspended;
        deliver::mark(&hook.def, suspended);
        let task = if suspended {
            tokio::spawn(async {})
        } else {
            tokio::spawn(deliver::run(hook.clone(), self.ctx.clone()))
        };
        if let Some(old) = self
            .lock()
            .insert(hook.def.id.clone(), Running { hook, task })
        {
            old.task.abort();
        }
    }

    fn view(&self, hook: &Hook, secret: Option<String>) -> WebhookView {
        let last = self
            .ctx
            .provisioning
            .app(&hook.def.app)
            .map_or(0, |a| self.ctx.journal.last_seq(a.id));
        let p = hook.progress();
        WebhookView {
            id: hook.def.id.clone(),
            app: hook.def.app.clone(),
            url: hook.def.url.clone(),
            events: hook.def.events.clone(),
            addresses: hook.def.addresses.clone(),
            batch: hook.def.batch,
            state: if p.suspended {
                "suspended"
            } else if p.failing_since.is_some() {
                "failing"
            } else {
                "active"
            }
            .into(),
            acked: p.acked,
            pending: last.saturating_sub(p.acked),
            failing_since: p.failing_since,
            last_error: p.last_error.clone(),
            delivered: p.delivered,
            secret,
        }
    }

    /// Every webhook, or those of `app`.
    pub fn list(&self, app: Option<&str>) -> Vec<WebhookView> {
        let hooks: Vec<Arc<Hook>> = self
            .lock()
            .values()
            .filter(|r| app.is_none_or(|a| r.hook.def.app == a))
            .map(|r| r.hook.clone())
            .collect();
        hooks.iter().map(|h| self.view(h, None)).collect()
    }

    fn find(&self, id: &str, app: Option<&str>) -> Result<Arc<Hook>, WebhookError> {
        self.lock()
            .get(id)
            .filter(|r| app.is_none_or(|a| r.hook.def.app == a))
            .map(|r| r.hook.clone())
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))
    }

    /// One webhook (of `app`, when given).
    pub fn get(&self, id: &str, app: Option<&str>) -> Result<WebhookView, WebhookError> {
        let hook = self.find(id, app)?;
        Ok(self.view(&hook, None))
    }

    /// Check webhooks to register together for a new app (`/v1/admin/apps`)
    /// without registering them: their number, URLs, filters, batch sizes
    /// and secrets.
    pub async fn check(&self, bodies: &[WebhookBody]) -> Result<(), WebhookError> {
        let max = self.ctx.settings.max_per_app;
        if bodies.len() > max {
            return Err(WebhookError::Invalid(format!(
                "{} webhooks given; an app may have at most {max}",
                bodies.len()
            )));
        }
        for b in bodies {
            let url = b
                .url
                .as_deref()
                .ok_or_else(|| WebhookError::Invalid("a webhook needs a \"url\"".into()))?;
            target::check_url(url, &self.ctx.settings)
                .await
                .map_err(|e| WebhookError::Invalid(e.to_string()))?;
            check_events(b.events.as_deref().unwrap_or_default())?;
            check_addresses(b.addresses.as_deref().unwrap_or_default())?;
            check_batch(b.batch.unwrap_or(1))?;
            if let Some(s) = &b.secret {
                check_secret(s)?;
            }
        }
        Ok(())
    }

    /// Register a webhook for `app`: it delivers the events journalled from
    /// now on. The reply carries the secret (the only time it is shown).
    pub async fn create(&self, app: &str, body: WebhookBody) -> Result<WebhookView, WebhookError> {
        let _w = self.writes.lock().await;
        let ctx = self
            .ctx
            .provisioning
            .app(app)
            .ok_or_else(|| WebhookError::NoApp(app.to_string()))?;
        let max = self.ctx.settings.max_per_app;
        if self
            .lock()
            .values()
            .filter(|r| r.hook.def.app == app)
            .count()
            >= max
        {
            return Err(WebhookError::TooMany {
                app: app.to_string(),
                max,
            });
        }
        let url = body
            .url
            .ok_or_else(|| WebhookError::Invalid("a webhook needs a \"url\"".into()))?;
        target::check_url(&url, &self.ctx.settings)
            .await
            .map_err(|e| WebhookError::Invalid(e.to_string()))?;
        let events = body.events.unwrap_or_default();
        check_events(&events)?;
        let addresses = body.addresses.unwrap_or_default();
        check_addresses(&addresses)?;
        let batch = body.batch.unwrap_or(1);
        check_batch(batch)?;
        let secret = match body.secret {
            Some(s) => {
                check_secret(&s)?;
                s
            }
            None => crate::config::random_secret("whsec")
                .map_err(|e| WebhookError::Random(e.to_string()))?,
        };
        let hook = Arc::new(Hook {
            def: WebhookDef {
                id: random_id()?,
                app: app.to_string(),
                url,
                events,
                addresses,
                batch,
                created_at: now_ms(),
            },
            secret: secret.clone(),
            progress: Mutex::new(Progress {
                acked: self.ctx.journal.last_seq(ctx.id),
                ..Progress::default()
            }),
        });
        self.ctx.store.put_webhook(&hook.stored()).await?;
        tracing::info!(webhook = %hook.def.id, %app, url = %hook.def.url, "webhook registered");
        let view = self.view(&hook, Some(secret));
        self.run(hook);
        Ok(view)
    }

    /// Change what `body` names of a webhook (of `app`, when given) and
    /// resume it when suspended; delivery goes on from where it was.
    pub async fn replace(
        &self,
        id: &str,
        app: Option<&str>,
        body: WebhookBody,
    ) -> Result<WebhookView, WebhookError> {
        let _w = self.writes.lock().await;
        let old = self.find(id, app)?;
        if let Some(a) = &body.app
            && a != &old.def.app
        {
            return Err(WebhookError::Invalid(format!(
                "webhook {id} belongs to application {}; it cannot move to {a:?}",
                old.def.app
            )));
        }
        let mut def = old.def.clone();
        if let Some(url) = body.url {
            target::check_url(&url, &self.ctx.settings)
                .await
                .map_err(|e| WebhookError::Invalid(e.to_string()))?;
            def.url = url;
        }
        if let Some(events) = body.events {
            check_events(&events)?;
            def.events = events;
        }
        if let Some(addresses) = body.addresses {
            check_addresses(&addresses)?;
            def.addresses = addresses;
        }
        if let Some(batch) = body.batch {
            check_batch(batch)?;
            def.batch = batch;
        }
        if let Some(s) = &body.secret {
            check_secret(s)?;
        }
        // Stop the worker first: what it acknowledged is then final.
        if let Some(r) = self.lock().get(id) {
            r.task.abort();
        }
        let acked = old.progress().acked;
        let hook = Arc::new(Hook {
            def,
            secret: body.secret.clone().unwrap_or_else(|| old.secret.clone()),
            progress: Mutex::new(Progress {
                acked,
                ..Progress::default()
            }),
        });
        if let Err(e) = self.ctx.store.put_webhook(&hook.stored()).await {
            self.run(old);
            return Err(e.into());
        }
        tracing::info!(webhook = %id, "webhook changed");
        let view = self.view(&hook, body.secret);
        self.run(hook);
        Ok(view)
    }

    /// Remove a webhook (of `app`, when given).
    pub async fn delete(&self, id: &str, app: Option<&str>) -> Result<(), WebhookError> {
        let _w = self.writes.lock().await;
        let hook = self.find(id, app)?;
        self.ctx.store.delete_webhook(id).await?;
        if let Some(r) = self.lock().remove(id) {
            r.task.abort();
        }
        deliver::unmark(&hook.def);
        tracing::info!(webhook = %id, "webhook deleted");
        Ok(())
    }

    /// Stop the webhooks of an app that was deleted (the store deleted
    /// them with it).
    pub fn forget_app(&self, app: &str) {
        let mut hooks = self.lock();
        let ids: Vec<String> = hooks
            .values()
            .filter(|r| r.hook.def.app == app)
            .map(|r| r.hook.def.id.clone())
            .collect();
        for id in ids {
            if let Some(r) = hooks.remove(&id) {
                r.task.abort();
                deliver::unmark(&r.hook.def);
            }
        }
    }

    /// Set the gauges `/metrics` shows: webhooks by state and each one's
    /// pending events.
    pub fn export_metrics(&self) {
        let views = self.list(None);
        let mut by_state: BTreeMap<&str, u64> =
            [("active", 0), ("failing", 0), ("suspended", 0)].into();
        for v in &views {
            if let Some(n) = by_state.get_mut(v.state.as_str()) {
                *n += 1;
            }
            metrics::gauge!("tapir_webhook_pending_events", "webhook" => v.id.clone(), "app" => v.app.clone())
                .set(v.pending as f64);
            metrics::gauge!("tapir_webhook_suspended", "webhook" => v.id.clone(), "app" => v.app.clone())
                .set(if v.state == "suspended" { 1.0 } else { 0.0 });
        }
        for (state, n) in by_state {
            metrics::gauge!("tapir_webhooks", "state" => state).set(n as f64);
        }
    }
}
