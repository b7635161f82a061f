//! One webhook's delivery worker: a tokio task beside the HTTP server
//! (never on the signalling loop) that reads the app's journal after the
//! acknowledged `seq` — from memory, or from the store when memory no
//! longer holds it — filters, signs and POSTs, and waits for a 2xx before
//! the next. Failures are retried with exponential backoff and jitter; a
//! webhook failing for `suspend_after` is suspended and its worker ends.

use super::{Ctx, Hook, WebhookDef, now_ms, target};
use crate::journal::JournalEntry;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::AppId;

/// Events read from the journal per round (at least a batch).
const READ_MAX: usize = 256;
/// Calls remembered per webhook for its address filter.
const MAX_CALLS: usize = 4096;
/// The acknowledged `seq` is written to the store at most this often while
/// events flow (and always when the worker goes idle or suspends).
const PERSIST_EVERY: Duration = Duration::from_millis(250);

/// The `Tapir-Signature` header of a body sent at `t` (Unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The wait before retry number `attempt` (0 = the first): `retry_min`
/// doubled per failure up to `retry_max`, then a random point in its upper
/// half (jitter, so that many webhooks of one receiver do not retry in step).
pub fn backoff(settings: &crate::config::WebhooksConfig, attempt: u32) -> Duration {
    let min = settings.retry_min.max(0.001);
    let max = settings.retry_max.max(min);
    let base = (min * 2f64.powi(attempt.min(40) as i32)).min(max);
    let mut r = [0u8; 4];
    let unit = match getrandom::fill(&mut r) {
        Ok(()) => f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    Duration::try_from_secs_f64(base * (0.5 + 0.5 * unit)).unwrap_or(Duration::from_secs(1))
}

/// Show a webhook's suspension in `/metrics`.
pub fn mark(def: &WebhookDef, suspended: bool) {
    metrics::gauge!("tapir_webhook_suspended", "webhook" => def.id.clone(), "app" => def.app.clone())
        .set(if suspended { 1.0 } else { 0.0 });
}

/// Zero a removed webhook's gauges (the exporter keeps label sets).
pub fn unmark(def: &WebhookDef) {
    mark(def, false);
    metrics::gauge!("tapir_webhook_pending_events", "webhook" => def.id.clone(), "app" => def.app.clone())
        .set(0.0);
}

/// The event-type and address filters of a webhook. The address filter
/// passes an event naming one of the addresses, and every later event of a
/// call that appeared at one of them (`call.new`).
#[derive(Debug)]
pub struct Filter {
    types: Vec<String>,
    addresses: HashSet<String>,
    calls: HashSet<String>,
    order: VecDeque<String>,
}

impl Filter {
    /// The filter of `def`.
    pub fn new(def: &WebhookDef) -> Filter {
        Filter {
            types: def.events.clone(),
            addresses: def.addresses.iter().cloned().collect(),
            calls: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// No filter at all.
    pub fn is_open(&self) -> bool {
        self.types.is_empty() && self.addresses.is_empty()
    }

    fn type_passes(&self, kind: &str) -> bool {
        self.types.is_empty()
            || self.types.iter().any(|t| {
                t == "*"
                    || t == kind
                    || t.strip_suffix(".*").is_some_and(|family| {
                        kind.strip_prefix(family)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
            })
    }

    fn remember(&mut self, call: &str) {
        if self.calls.insert(call.to_string()) {
            self.order.push_back(call.to_string());
            if self.order.len() > MAX_CALLS
                && let Some(old) = self.order.pop_front()
            {
                self.calls.remove(&old);
            }
        }
    }

    fn address_passes(&mut self, event: &Value) -> bool {
        if self.addresses.is_empty() {
            return true;
        }
        let call = event["call"].as_str();
        if event["address"]
            .as_str()
            .is_some_and(|a| self.addresses.contains(a))
        {
            if let Some(c) = call {
                self.remember(c);
            }
            return true;
        }
        call.is_some_and(|c| self.calls.contains(c))
    }

    /// Whether the event (its JSON text) is delivered.
    pub fn admits(&mut self, text: &str) -> bool {
        if self.is_open() {
            return true;
        }
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            return false;
        };
        // The address memory learns from every event, even one whose type
        // is not delivered.
        let by_address = self.address_passes(&event);
        by_address && self.type_passes(event["type"].as_str().unwrap_or_default())
    }
}

/// Why a POST was not acknowledged.
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error("refused target: {0}")]
    Target(#[from] target::TargetError),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Http(String),
}

/// POST `events` (their JSON texts) to the webhook: one object, or an
/// array when the webhook batches. At most `max_response_bytes` of the
/// answer are read; the whole exchange is bounded by the timeout.
async fn post(ctx: &Ctx, hook: &Hook, events: &[Arc<str>]) -> Result<(), PostError> {
    let url =
        reqwest::Url::parse(&hook.def.url).map_err(|e| PostError::Http(format!("bad URL: {e}")))?;
    target::check_literal(&url, &ctx.settings)?;
    let body = if hook.def.batch > 1 {
        let mut b = String::from("[");
        for (n, e) in events.iter().enumerate() {
            if n > 0 {
                b.push(',');
            }
            b.push_str(e);
        }
        b.push(']');
        b
    } else {
        events.first().map(|e| e.to_string()).unwrap_or_default()
    };
    let t = now_ms() / 1000;
    let sig = signature(hook.secret(), t, body.as_bytes());
    let limit = ctx.settings.max_response_bytes;
    let timeout = crate::config::MediaSettings::timeout(ctx.settings.timeout)
        .unwrap_or(Duration::from_secs(10));
    let exchange = async {
        let mut resp = ctx
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("tapir-signature", sig)
            .header("tapir-webhook-id", hook.def.id.as_str())
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = resp.status().as_u16();
        let mut read = 0usize;
        while read < limit {
            match resp.chunk().await {
                Ok(Some(c)) => read += c.len(),
                Ok(None) => break,
                // The status is what counts; a broken body is no answer.
                Err(e) if (200..300).contains(&status) => {
                    tracing::debug!(webhook = %hook.def.id, "response body: {}", e.without_url());
                    break;
                }
                Err(e) => return Err(describe(e)),
            }
        }
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PostError::Status(status))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PostError::Timeout)?
}

/// An HTTP error without its URL (which may carry a token of the
/// receiver's), with its innermost cause (connection refused, refused
/// target, …).
fn describe(e: reqwest::Error) -> PostError {
    if e.is_timeout() {
        return PostError::Timeout;
    }
    let e = e.without_url();
    let mut inner: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(next) = inner.and_then(std::error::Error::source) {
        inner = Some(next);
    }
    match inner {
        Some(cause) => PostError::Http(format!("{e}: {cause}")),
        None => PostError::Http(e.to_string()),
    }
}

/// Read the next events after `acked`: from memory, or from the store when
/// memory has lost some of them.
async fn read(ctx: &Ctx, app: AppId, name: &str, acked: u64) -> Vec<JournalEntry> {
    let (mem, gap) = ctx.journal.after(app, acked, READ_MAX);
    if !gap {
        return mem;
    }
    match ctx.store.events_after(name, acked, READ_MAX as u64).await {
        Ok(stored) if !stored.is_empty() => {
            if stored[0].seq > acked + 1 {
                tracing::warn!(
                    app = name,
                    from = acked + 1,
                    to = stored[0].seq - 1,
                    "webhook: events no longer in the journal are skipped"
                );
                metrics::counter!("tapir_webhook_events_lost_total")
                    .increment(stored[0].seq - acked - 1);
            }
            stored
                .into_iter()
                .map(|e| (e.seq, Arc::from(e.body)))
                .collect()
        }
        Ok(_) => {
            if let Some(first) = mem.first() {
                tracing::warn!(
                    app = name,
                    from = acked + 1,
                    to = first.0 - 1,
                    "webhook: events no longer in the journal are skipped"
                );
                metrics::counter!("tapir_webhook_events_lost_total").increment(first.0 - acked - 1);
            }
            mem
        }
        Err(e) => {
            tracing::warn!(app = name, "webhook: the store could not be read: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Vec::new()
        }
    }
}

async fn persist(ctx: &Ctx, hook: &Hook) {
    let (acked, suspended) = {
        let p = hook.progress();
        (p.acked, p.suspended)
    };
    if let Err(e) = ctx
        .store
        .set_webhook_progress(&hook.def.id, acked, suspended)
        .await
    {
        tracing::warn!(webhook = %hook.def.id, "webhook progress not stored: {e}");
    }
}

/// Deliver `hook`'s events until it is suspended (or the task is aborted:
/// deleted, changed, or its app removed).
pub async fn run(hook: Arc<Hook>, ctx: Arc<Ctx>) {
    let id = hook.def.id.clone();
    let mut filter = Filter::new(&hook.def);
    let mut learned = filter.addresses.is_empty();
    let mut attempt = 0u32;
    let mut dirty = false;
    let mut persisted = Instant::now();
    let suspend_after = crate::config::MediaSettings::timeout(ctx.settings.suspend_after)
        .unwrap_or(Duration::from_secs(86_400));
    loop {
        let Some(app) = ctx.provisioning.app(&hook.def.app) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if !learned {
            // The calls of the filtered addresses seen before the
            // acknowledged seq, as far as memory goes back.
            let acked = hook.progress().acked;
            let (past, _) = ctx.journal.after(app.id, 0, usize::MAX);
            for (seq, text) in past.iter().filter(|(s, _)| *s <= acked) {
                let _ = seq;
                filter.admits(text);
            }
            learned = true;
        }
        // Subscribe before reading, so that no event falls between.
        let mut live = ctx.journal.watch(app.id);
        let acked = hook.progress().acked;
        let pending = read(&ctx, app.id, &hook.def.app, acked).await;
        if pending.is_empty() {
            if dirty {
                persist(&ctx, &hook).await;
                dirty = false;
                persisted = Instant::now();
            }
            tokio::select! {
                _ = live.recv() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let mut batch: Vec<Arc<str>> = Vec::new();
        let mut upto = acked;
        for (seq, text) in &pending {
            if filter.admits(text) {
                if batch.len() >= hook.def.batch {
                    break;
                }
                batch.push(text.clone());
            }
            upto = *seq;
        }
        if batch.is_empty() {
            hook.progress().acked = upto;
            dirty = true;
            continue;
        }
        let started = Instant::now();
        let result = post(&ctx, &hook, &batch).await;
        metrics::histogram!("tapir_webhook_post_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                metrics::counter!("tapir_webhook_posts_total", "result" => "ok").increment(1);
                metrics::counter!("tapir_webhook_events_delivered_total")
                    .increment(batch.len() as u64);
                {
                    let mut p = hook.progress();
                    p.acked = upto;
                    p.delivered += batch.len() as u64;
                    p.failing_since = None;
                }
                if attempt > 0 {
                    tracing::info!(webhook = %id, "webhook delivers again");
                }
                attempt = 0;
                dirty = true;
                if persisted.elapsed() >= PERSIST_EVERY {
                    persist(&ctx, &hook).await;
                    dirty = false;
                    persisted = Instant::now();
                }
            }
            Err(e) => {
                metrics::counter!("tapir_webhook_posts_total", "result" => "failed").increment(1);
                let now = now_ms();
                let since = {
                    let mut p = hook.progress();
                    p.last_error = Some(e.to_string());
                    *p.failing_since.get_or_insert(now)
                };
                let failing = Duration::from_millis(now.saturating_sub(since));
                if attempt == 0 {
                    tracing::warn!(webhook = %id, app = %hook.def.app, "webhook delivery failed, retrying: {e}");
                } else {
                    tracing::debug!(webhook = %id, attempt, "webhook delivery failed: {e}");
                }
                if failing >= suspend_after {
                    hook.progress().suspended = true;
                    mark(&hook.def, true);
                    persist(&ctx, &hook).await;
                    tracing::warn!(webhook = %id, app = %hook.def.app, "webhook suspended after failing for {}s: {e}", failing.as_secs());
                    return;
                }
                let wait = backoff(&ctx.settings, attempt)
                    .min(suspend_after.saturating_sub(failing) + Duration::from_millis(10));
                attempt = attempt.saturating_add(1);
                if dirty {
                    persist(&ctx, &hook).await;
                    dirty = false;
                    persisted = Instant::now();
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(events: &[&str], addresses: &[&str]) -> WebhookDef {
        WebhookDef {
            id: "wh_1".into(),
            app: "crm".into(),
            url: "https://crm.example/".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            batch: 1,
            created_at: 0,
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // RFC 4231-style check by a second computation.
        let sig = signature("whsec_0123456789abcdef", 1_700_000_000, b"{\"seq\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_0123456789abcdef").unwrap();
        mac.update(b"1700000000.{\"seq\":1}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, format!("t=1700000000,v1={hex}"));
        assert_ne!(
            sig,
            signature("whsec_0123456789abcdeX", 1_700_000_000, b"{\"seq\":1}")
        );
        assert_ne!(
            sig,
            signature("whsec_0123456789abcdef", 1_700_000_001, b"{\"seq\":1}")
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let s = crate::config::WebhooksConfig {
            retry_min: 1.0,
            retry_max: 8.0,
            ..Default::default()
        };
        for (attempt, base) in [
            (0, 1.0),
            (1, 2.0),
            (2, 4.0),
            (3, 8.0),
            (10, 8.0),
            (u32::MAX, 8.0),
        ] {
            let w = backoff(&s, attempt).as_secs_f64();
            assert!(w >= base / 2.0 - 1e-9 && w <= base + 1e-9, "{attempt}: {w}");
        }
    }

    #[test]
    fn filters_by_type_family_and_address_of_the_call() {
        let mut f = Filter::new(&def(&["call.state", "park.*"], &[]));
        assert!(f.admits(r#"{"seq":1,"type":"call.state","call":"call-1"}"#));
        assert!(f.admits(r#"{"seq":2,"type":"park.parked"}"#));
        assert!(!f.admits(r#"{"seq":3,"type":"parking"}"#));
        assert!(!f.admits(r#"{"seq":4,"type":"call.new"}"#));
        let mut f = Filter::new(&def(&["call.state"], &["2001"]));
        // call.new is not delivered but teaches which calls are 2001's.
        assert!(!f.admits(r#"{"seq":1,"type":"call.new","call":"call-7","address":"2001"}"#));
        assert!(!f.admits(r#"{"seq":2,"type":"call.new","call":"call-8","address":"2002"}"#));
        assert!(f.admits(r#"{"seq":3,"type":"call.state","call":"call-7","state":"offering"}"#));
        assert!(!f.admits(r#"{"seq":4,"type":"call.state","call":"call-8","state":"offering"}"#));
        assert!(!f.admits("not json"));
        let mut open = Filter::new(&def(&[], &[]));
        assert!(open.admits("anything"));
    }

    #[test]
    fn the_call_memory_is_bounded() {
        let mut f = Filter::new(&def(&[], &["2001"]));
        for n in 0..(MAX_CALLS + 10) {
            f.admits(&format!(
                r#"{{"seq":{n},"type":"call.new","call":"call-{n}","address":"2001"}}"#
            ));
        }
        assert_eq!(f.calls.len(), MAX_CALLS);
        assert!(!f.admits(r#"{"seq":1,"type":"call.state","call":"call-0"}"#));
    }
}
