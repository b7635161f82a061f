//! The server's use of the store: what a start takes from it and what the
//! running switch writes to it.
//!
//! **Configuration file and store.** The store is the truth for everything
//! the operator can change at run time: lines (with SIP passwords), apps
//! (tokens kept only as SHA-256 hashes), trunks, the park settings and the
//! locations and calling cards. The configuration file (or the embedded
//! default) *seeds* an empty store at first start, generated secrets
//! included (printed once). On later starts the file's `[[lines]]`,
//! `[[apps]]`, `[[trunks]]`, `[park]` and `[translate]` are ignored (a log
//! line says so when the file names any); its process settings — `[sip]`,
//! `[http] listen`, the journal sizes, `[store]`, `data_dir` — always apply,
//! and an `[http] admin_token` in the file replaces the stored one (the
//! operator's way back in).
//!
//! **Run-time state.** Forwarding is written when an app sets it; the set of
//! pending completion requests, finished CDRs and the id reservation are
//! written by [`Observer`] after switch steps, through the journal's writer
//! (so in one ordered stream with the events).

use crate::cdr::Tracker;
use crate::config::{AppEntry, Config, LineEntry, ParkConfig, TranslateEntry, TrunkEntry};
use crate::error::{ConfigError, StartError};
use crate::journal::Journal;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tapir_core::{CompletionId, CompletionMode, CompletionView, Switch, Timestamp};
use tapir_store::{Batch, Doc, Seed, Store, StoredApp, StoredCompletion};

/// Meta key: hex SHA-256 of the admin token.
pub const ADMIN_HASH: &str = "admin_token_hash";
/// Meta key: no switch id below this value has been handed out.
pub const ID_FLOOR: &str = "id_floor";
/// Ids reserved ahead in the store, so a crash never reuses one.
pub const ID_BLOCK: u64 = 1 << 20;

/// Hex of a SHA-256.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 from its hex.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The store document of a line (its password included: digest
/// authentication needs it).
pub fn line_doc(line: &LineEntry) -> Doc {
    Doc {
        key: line.address.clone(),
        data: serde_json::to_value(line).unwrap_or(Value::Null),
    }
}

/// The store row of an app: its document without the token, and the
/// token's hash.
pub fn app_row(app: &AppEntry, hash: &[u8; 32]) -> StoredApp {
    let mut doc = app.clone();
    doc.token = None;
    StoredApp {
        name: app.name.clone(),
        token_hash: hex(hash),
        data: serde_json::to_value(&doc).unwrap_or(Value::Null),
    }
}

/// The store document of a trunk.
pub fn trunk_doc(trunk: &TrunkEntry) -> Doc {
    Doc {
        key: trunk.name.clone(),
        data: serde_json::to_value(trunk).unwrap_or(Value::Null),
    }
}

/// The store document of the locations and calling cards. Card PINs are
/// never serialized for the API, so they are put in here by hand.
pub fn translate_doc(t: &TranslateEntry) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(cards) = v.get_mut("cards").and_then(Value::as_array_mut) {
        for (doc, card) in cards.iter_mut().zip(&t.cards) {
            if let Some(m) = doc.as_object_mut() {
                m.insert("pin".into(), Value::String(card.pin.clone()));
            }
        }
    }
    v
}

/// What a start found in (or seeded into) the store.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration with the store's lines, apps, trunks, park and
    /// translation settings (app tokens only where known in clear: seeded
    /// now, or named by the file).
    pub config: Config,
    /// Secrets generated now (print them once).
    pub generated: Vec<String>,
    /// Each app's token hash, by name.
    pub app_hashes: HashMap<String, [u8; 32]>,
    /// The admin token's hash.
    pub admin_hash: Option<[u8; 32]>,
    /// No switch id below this was handed out before.
    pub id_floor: u64,
}

fn bad(what: &str, e: impl std::fmt::Display) -> StartError {
    ConfigError::Invalid(format!("the store holds an unreadable {what}: {e}")).into()
}

/// Open the store of `config`, seed it when empty, and load what it holds.
pub async fn load(store: &Store, mut config: Config) -> Result<Loaded, StartError> {
    let db = |e: tapir_store::StoreError| StartError::from(ConfigError::Io(format!("store: {e}")));
    let mut generated = Vec::new();
    if !store.is_seeded().await.map_err(db)? {
        generated = config.fill_secrets()?;
        let mut apps = Vec::new();
        let mut seen = HashMap::new();
        for a in &config.apps {
            let token = a
                .token
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ConfigError::Invalid(format!("app {} has no token", a.name)))?;
            let h = crate::http::token_hash(token);
            if seen.insert(h, a.name.clone()).is_some() {
                return Err(
                    ConfigError::Invalid(format!("app {} shares its token", a.name)).into(),
                );
            }
            if apps.iter().any(|x: &StoredApp| x.name == a.name) {
                return Err(
                    ConfigError::Invalid(format!("app {} is configured twice", a.name)).into(),
                );
            }
            apps.push(app_row(a, &h));
        }
        let mut settings = vec![Doc {
            key: "park".into(),
            data: serde_json::to_value(&config.park).unwrap_or(Value::Null),
        }];
        if let Some(t) = &config.translate {
            settings.push(Doc {
                key: "translate".into(),
                data: translate_doc(t),
            });
        }
        let mut meta = Vec::new();
        if let Some(t) = &config.http.admin_token {
            meta.push((ADMIN_HASH.to_string(), hex(&crate::http::token_hash(t))));
        }
        store
            .seed(&Seed {
                lines: config.lines.iter().map(line_doc).collect(),
                apps,
                trunks: config.trunks.iter().map(trunk_doc).collect(),
                settings,
                meta,
            })
            .await
            .map_err(db)?;
        tracing::info!("store seeded from the configuration");
    } else {
        if !config.lines.is_empty() || !config.apps.is_empty() || !config.trunks.is_empty() {
            tracing::info!(
                "the store holds the configuration: [[lines]], [[apps]], [[trunks]], [park] and [translate] of the file are not applied (change them with /v1/admin)"
            );
        }
        if let Some(t) = &config.http.admin_token {
            store
                .set_meta(ADMIN_HASH, &hex(&crate::http::token_hash(t)))
                .await
                .map_err(db)?;
        }
    }
    // Known clear tokens (seeded now) stay in the returned configuration.
    let clear: HashMap<String, String> = config
        .apps
        .iter()
        .filter_map(|a| a.token.clone().map(|t| (a.name.clone(), t)))
        .collect();
    config.lines = store
        .lines()
        .await
        .map_err(db)?
        .into_iter()
        .map(|d| serde_json::from_value(d.data).map_err(|e| bad("line", e)))
        .collect::<Result<_, _>>()?;
    let mut app_hashes = HashMap::new();
    let mut apps = Vec::new();
    for row in store.apps().await.map_err(db)? {
        let mut app: AppEntry = serde_json::from_value(row.data).map_err(|e| bad("app", e))?;
        let h = unhex(&row.token_hash).ok_or_else(|| bad("token hash", &row.token_hash))?;
        app.token = clear
            .get(&app.name)
            .filter(|t| crate::http::token_hash(t) == h)
            .cloned();
        app_hashes.insert(app.name.clone(), h);
        apps.push(app);
    }
    config.apps = apps;
    config.trunks = store
        .trunks()
        .await
        .map_err(db)?
        .into_iter()
        .map(|d| serde_json::from_value(d.data).map_err(|e| bad("trunk", e)))
        .collect::<Result<_, _>>()?;
    if let Some(p) = store.setting("park").await.map_err(db)? {
        config.park = serde_json::from_value::<ParkConfig>(p).map_err(|e| bad("park", e))?;
    }
    if let Some(t) = store.setting("translate").await.map_err(db)? {
        config.translate =
            Some(serde_json::from_value::<TranslateEntry>(t).map_err(|e| bad("translate", e))?);
    }
    let admin_hash = match store.meta(ADMIN_HASH).await.map_err(db)? {
        Some(h) => Some(unhex(&h).ok_or_else(|| bad("admin token hash", &h))?),
        None => None,
    };
    let id_floor = store
        .meta(ID_FLOOR)
        .await
        .map_err(db)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Reserve the ids this run may hand out before it hands out any.
    store
        .set_meta(ID_FLOOR, &(id_floor + ID_BLOCK).to_string())
        .await
        .map_err(db)?;
    Ok(Loaded {
        config,
        generated,
        app_hashes,
        admin_hash,
        id_floor,
    })
}

/// The store row of a pending completion request.
pub fn completion_row(c: &CompletionView, app: &str) -> StoredCompletion {
    StoredCompletion {
        id: c.id.0,
        app: app.to_string(),
        data: json!({
            "mode": c.mode,
            "from": c.from,
            "to": c.to,
            "needs_activity": c.needs_activity,
            "expires_at": c.expires_at.0,
        }),
    }
}

/// A stored completion request as the switch takes it back.
pub struct RestoredCompletion {
    /// Its id.
    pub id: CompletionId,
    /// Callback (or camp-on, which is not restored).
    pub mode: CompletionMode,
    /// The address that asked.
    pub from: String,
    /// The address it waits for.
    pub to: String,
    /// It waits for the target to be busy once.
    pub needs_activity: bool,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// Read a stored completion request.
pub fn restored_completion(c: &StoredCompletion) -> Option<RestoredCompletion> {
    let d = &c.data;
    Some(RestoredCompletion {
        id: CompletionId(c.id),
        mode: serde_json::from_value(d.get("mode")?.clone()).ok()?,
        from: d.get("from")?.as_str()?.to_string(),
        to: d.get("to")?.as_str()?.to_string(),
        needs_activity: d.get("needs_activity")?.as_bool()?,
        expires_at: Timestamp(d.get("expires_at")?.as_u64()?),
    })
}

/// Watches the switch after its steps and sends what changed to the store:
/// the completion set, finished CDRs and id reservations.
#[derive(Debug)]
pub struct Observer {
    journal: Arc<Journal>,
    completions: Vec<CompletionView>,
    reserved: u64,
    cdr: Arc<Mutex<Tracker>>,
}

impl Observer {
    /// An observer writing through `journal`'s writer; `reserved` is the id
    /// reservation already in the store.
    pub fn new(journal: Arc<Journal>, reserved: u64, cdr: Arc<Mutex<Tracker>>) -> Observer {
        Observer {
            journal,
            completions: Vec::new(),
            reserved,
            cdr,
        }
    }

    /// Start from the completion set the switch has now (restored ones
    /// are already stored).
    pub fn seen_completions(&mut self, sw: &Switch) {
        self.completions = sw.completions();
    }

    /// After one switch step whose outputs named `touched`.
    pub fn after_step(&mut self, sw: &Switch, now: Timestamp, touched: &crate::cdr::Touched) {
        let mut batch = Batch::default();
        let completions = sw.completions();
        if completions != self.completions {
            batch.completions = Some(
                completions
                    .iter()
                    // A camp-on dies with its waiting call: not kept.
                    .filter(|c| c.mode == CompletionMode::Callback)
                    .map(|c| {
                        let app = self.journal.app_name(c.app).unwrap_or_default();
                        completion_row(c, &app)
                    })
                    .collect(),
            );
            self.completions = completions;
        }
        if sw.next_id().saturating_add(ID_BLOCK / 2) > self.reserved {
            self.reserved = sw.next_id().saturating_add(ID_BLOCK);
            batch
                .meta
                .push((ID_FLOOR.to_string(), self.reserved.to_string()));
        }
        batch.cdrs = self
            .cdr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .after_step(sw, now, touched);
        if !batch.is_empty() {
            self.journal.write(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_go_to_hex_and_back() {
        let h = crate::http::token_hash("secret");
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }

    #[tokio::test]
    async fn first_start_seeds_and_later_starts_take_the_store() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let mut cfg = Config::embedded_default();
        let dir = tempfile::tempdir().unwrap();
        cfg.data_dir = dir.path().to_path_buf();
        let first = load(&store, cfg.clone()).await.unwrap();
        assert_eq!(first.generated.len(), 12);
        assert_eq!(first.config.lines.len(), 10);
        let token = first.config.apps[0].token.clone().unwrap();
        assert_eq!(first.app_hashes["demo"], crate::http::token_hash(&token));
        // A later start with a different file: the store wins, nothing is
        // generated, the token is not known in clear any more.
        let mut other = Config::default();
        other.lines.push(cfg.lines[0].clone());
        other.lines[0].address = "5555".into();
        let second = load(&store, other).await.unwrap();
        assert!(second.generated.is_empty());
        assert_eq!(second.config.lines.len(), 10);
        assert_eq!(second.config.lines[0].address, "1001");
        assert_eq!(second.config.apps[0].token, None);
        assert_eq!(second.app_hashes["demo"], first.app_hashes["demo"]);
        assert_eq!(second.admin_hash, first.admin_hash);
        assert!(second.id_floor > first.id_floor, "ids reserved ahead");
        // An admin token in the file replaces the stored one.
        let mut third = Config::default();
        third.http.admin_token = Some("operator".into());
        let third = load(&store, third).await.unwrap();
        assert_eq!(third.admin_hash, Some(crate::http::token_hash("operator")));
    }
}
