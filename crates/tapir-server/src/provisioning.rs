//! Provisioning: the operator's configuration (lines, apps, trunks, pickup
//! groups, park, locations and calling cards) and its one write path.
//!
//! [`Provisioning`] owns what is configured and the switch does not keep
//! (SIP passwords, apps' token hashes, trunks' carriers, locations), the SIP
//! directory the B2BUA reads (phones' credentials, trunk bindings), and
//! every change to any of it: the switch's part goes in through the loop
//! ([`SwitchHandle::with`]), the durable part into the store. Start-up
//! builds it from the configuration ([`translate_caps`],
//! [`Provisioning::stage`], then [`Staged::start`] once the loop runs); the
//! `/v1/admin/*` handlers, the location and card endpoints and the
//! forwarding an app sets call it, and only translate between HTTP and it.
//!
//! **Which goes first, the switch or the store.** The switch runs in the
//! loop, and only there can a change be judged (an address in use, a line
//! that has calls, a park slot holding a call) and applied in one step with
//! nothing in between. So a change the switch can take back exactly — a
//! line added, replaced or removed, an app added or replaced, pickup
//! groups, park settings — is applied to the switch first (checked and done
//! in one step), then written to the store; if the store refuses, the switch
//! change is undone in the next step and the caller gets
//! [`ProvisionError::Store`]. Writing the store first would need the
//! switch's verdict in advance, which any input between the two could
//! change, and a refusal would then have to be undone in the store, which
//! can fail in turn. A change the switch cannot take back — removing an
//! app closes its lines and drops its handles — and changes the switch holds
//! nothing of (trunks, calling cards) are written to the store first and
//! reach the switch and the directory only once stored; so are the
//! locations, of which the switch only takes the current one's country.
//! One lock serializes every write, so the books, the switch and the store
//! move together.

use crate::actor::SwitchHandle;
use crate::config::{
    AppEntry, Config, LineEntry, ParkConfig, TranslateEntry, TrunkEntry, random_secret,
};
use crate::error::StartError;
use crate::persist;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tapir_b2bua::directory::{CredentialTable, TrunkTable, WatchTable};
use tapir_core::{AppId, ForwardRule, LineId, LineKind, Switch, TapiError, Timestamp};
use tapir_store::{Store, StoreError};
use tapir_translate::{CallingCard, Location, TranslateCaps, TranslateError};

/// An app as the API knows it.
#[derive(Debug)]
pub struct AppCtx {
    /// The switch's id of the app.
    pub id: AppId,
    /// Its configuration.
    pub entry: AppEntry,
}

/// A configured line and its switch id.
#[derive(Debug, Clone)]
pub struct LineView {
    /// The switch's id.
    pub id: LineId,
    /// Its configuration.
    pub entry: LineEntry,
}

/// Why a provisioning change was not made. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// No line has this address.
    #[error("there is no line {0:?}")]
    NoLine(String),
    /// No app has this name.
    #[error("there is no app {0:?}")]
    NoApp(String),
    /// No trunk has this name.
    #[error("there is no trunk {0:?}")]
    NoTrunk(String),
    /// No line is in this pickup group.
    #[error("there is no pickup group {0:?}")]
    NoGroup(String),
    /// A name, address or token is in use.
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The switch refused the change.
    #[error(transparent)]
    Refused(TapiError),
    /// The locations and cards do not hold together.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// The store refused the change.
    #[error("the store refused the change, nothing was changed: {0}")]
    Store(StoreError),
    /// The loop has stopped.
    #[error("the switch is not running")]
    Stopped,
}

fn stored(e: StoreError) -> ProvisionError {
    tracing::error!("store write failed: {e}");
    ProvisionError::Store(e)
}

/// The switch's refusal of a line's addresses: one in use is a conflict.
fn line_refused(e: TapiError) -> ProvisionError {
    if e.message.contains("already in use") {
        ProvisionError::Conflict(e.message)
    } else {
        ProvisionError::Refused(e)
    }
}

/// Operator settings the switch does not hold; its lock serializes writes.
#[derive(Debug)]
struct Operator {
    trunks: Vec<TrunkEntry>,
    park: ParkConfig,
}

/// What reads need without waiting for a write: the configured lines and
/// apps (every request's authentication), the locations, the directory.
#[derive(Debug)]
struct Books {
    lines: RwLock<Vec<LineView>>,
    apps: RwLock<HashMap<[u8; 32], Arc<AppCtx>>>,
    translate: RwLock<TranslateCaps>,
    credentials: CredentialTable,
    trunk_table: TrunkTable,
    /// Who may watch whom (the B2BUA's subscriptions read it).
    watch: WatchTable,
}

impl Books {
    fn lines(&self) -> std::sync::RwLockReadGuard<'_, Vec<LineView>> {
        self.lines.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lines_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<LineView>> {
        self.lines.write().unwrap_or_else(|e| e.into_inner())
    }

    fn apps(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; 32], Arc<AppCtx>>> {
        self.apps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn apps_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 32], Arc<AppCtx>>> {
        self.apps.write().unwrap_or_else(|e| e.into_inner())
    }

    fn line_of_address(&self, address: &str) -> Option<LineView> {
        self.lines()
            .iter()
            .find(|l| l.entry.addresses().iter().any(|a| a == address))
            .cloned()
    }

    /// A phone's SIP password follows its line's first address.
    fn set_credentials(&self, old: Option<&LineEntry>, new: Option<&LineEntry>) {
        if let Some(o) = old {
            self.credentials.remove(&o.address);
            self.watch.remove_line(&o.address);
        }
        if let Some(n) = new {
            self.watch
                .set_line(&n.address, n.addresses(), n.watch.clone());
        }
        if let Some(n) = new
            && n.kind == LineKind::Phone
            && let Some(p) = &n.password
        {
            self.credentials.set(&n.address, p);
        }
    }

    /// Bind the trunks to their lines (hosts resolved anew).
    async fn bind_trunks(&self, trunks: &[TrunkEntry]) {
        let lines: Vec<_> = self
            .lines()
            .iter()
            .map(|l| (l.id, l.entry.clone()))
            .collect();
        self.trunk_table
            .replace(crate::sip::trunk_bindings(trunks, &lines).await);
    }
}

/// The translation caps of a configuration: its `[translate]` section, or a
/// single location `default` (country 1, area 425) when it has none.
pub fn translate_caps(config: &Config) -> Result<TranslateCaps, crate::ConfigError> {
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
        .map_err(|e| crate::ConfigError::Invalid(format!("[translate]: {e}")))?;
    Ok(caps)
}

/// The provisioning of a start, applied to the switch before the loop
/// runs; [`Staged::start`] turns it into the service.
#[derive(Debug)]
pub struct Staged {
    books: Books,
    operator: Operator,
    apps: HashMap<String, AppId>,
}

impl Staged {
    /// The switch's id of each app, by name.
    pub fn apps(&self) -> &HashMap<String, AppId> {
        &self.apps
    }

    /// Phones' SIP passwords (the registrar and the B2BUA read them).
    pub fn credentials(&self) -> CredentialTable {
        self.books.credentials.clone()
    }

    /// Who may watch whose lamps (the B2BUA reads it).
    pub fn watch_table(&self) -> WatchTable {
        self.books.watch.clone()
    }

    /// The trunks' carriers (the B2BUA reads them).
    pub fn trunk_table(&self) -> TrunkTable {
        self.books.trunk_table.clone()
    }

    /// Bind the trunks to their lines (resolving the carriers' hosts).
    pub async fn bind_trunks(&self) {
        self.books.bind_trunks(&self.operator.trunks).await;
    }

    /// The service, now that the loop owns the switch.
    pub fn start(
        self,
        handle: SwitchHandle,
        store: Store,
        admin: Option<[u8; 32]>,
    ) -> Provisioning {
        Provisioning {
            handle,
            store,
            admin,
            books: self.books,
            writes: tokio::sync::Mutex::new(self.operator),
        }
    }
}

/// The one write path of the operator's configuration (see the module
/// documentation for the order of a change and its undo).
#[derive(Debug)]
pub struct Provisioning {
    handle: SwitchHandle,
    store: Store,
    admin: Option<[u8; 32]>,
    books: Books,
    writes: tokio::sync::Mutex<Operator>,
}

impl Provisioning {
    /// Put the lines and apps of `config` (as [`persist::load`] returned
    /// it) into `switch`, which the loop does not run yet: the start's half
    /// of the service. `app_hashes` holds each app's token hash, by name.
    pub fn stage(
        switch: &mut Switch,
        config: &Config,
        app_hashes: &HashMap<String, [u8; 32]>,
        translate: TranslateCaps,
    ) -> Result<Staged, StartError> {
        let mut lines = Vec::new();
        let mut passwords = HashMap::new();
        let watch = WatchTable::default();
        watch.set_slots(config.park.slot_list().unwrap_or_default());
        for entry in &config.lines {
            watch.set_line(&entry.address, entry.addresses(), entry.watch.clone());
            let id = switch
                .add_line(entry.to_core_with(&config.trunks))
                .map_err(|error| StartError::Line {
                    address: entry.address.clone(),
                    error,
                })?;
            if entry.kind == LineKind::Phone {
                match &entry.password {
                    Some(p) => {
                        passwords.insert(entry.address.clone(), p.clone());
                    }
                    None => {
                        tracing::warn!(address = %entry.address, "phone line without a password");
                    }
                }
            }
            lines.push(LineView {
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
            let hash = app_hashes.get(&entry.name).copied().ok_or_else(|| {
                crate::ConfigError::Invalid(format!("app {} has no token", entry.name))
            })?;
            let id = switch.register_app(entry.to_core());
            apps.insert(entry.name.clone(), id);
            let ctx = Arc::new(AppCtx {
                id,
                entry: entry.clone(),
            });
            if by_token.insert(hash, ctx).is_some() {
                return Err(crate::ConfigError::Invalid(format!(
                    "app {} shares its token",
                    entry.name
                ))
                .into());
            }
        }
        Ok(Staged {
            books: Books {
                lines: RwLock::new(lines),
                apps: RwLock::new(by_token),
                translate: RwLock::new(translate),
                credentials: CredentialTable::new(passwords),
                trunk_table: TrunkTable::default(),
                watch,
            },
            operator: Operator {
                trunks: config.trunks.clone(),
                park: config.park.clone(),
            },
            apps,
        })
    }

    async fn on_switch<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Switch, Timestamp) -> T + Send + 'static,
    ) -> Result<T, ProvisionError> {
        self.handle
            .with(f)
            .await
            .map_err(|_| ProvisionError::Stopped)
    }

    // ------------------------------------------------------------------
    // Reading
    // ------------------------------------------------------------------

    /// Whether `hash` is the admin token's SHA-256.
    pub fn is_admin(&self, hash: &[u8; 32]) -> bool {
        self.admin.as_ref() == Some(hash)
    }

    /// The app whose token hashes to `hash`.
    pub fn app_by_hash(&self, hash: &[u8; 32]) -> Option<Arc<AppCtx>> {
        self.books.apps().get(hash).cloned()
    }

    /// The app named `name`.
    pub fn app(&self, name: &str) -> Option<Arc<AppCtx>> {
        self.find_app(name).map(|(_, a)| a)
    }

    fn find_app(&self, name: &str) -> Option<([u8; 32], Arc<AppCtx>)> {
        self.books
            .apps()
            .iter()
            .find(|(_, a)| a.entry.name == name)
            .map(|(h, a)| (*h, a.clone()))
    }

    /// Every app, in the order they were added.
    pub fn apps(&self) -> Vec<AppEntry> {
        let mut apps: Vec<(u64, AppEntry)> = self
            .books
            .apps()
            .values()
            .map(|a| (a.id.0, a.entry.clone()))
            .collect();
        apps.sort_by_key(|(id, _)| *id);
        apps.into_iter().map(|(_, a)| a).collect()
    }

    /// Every line, in the order they were added.
    pub fn lines(&self) -> Vec<LineView> {
        self.books.lines().clone()
    }

    /// The line with this id (`line-3`) or address.
    pub fn line(&self, text: &str) -> Option<LineView> {
        match crate::wire::parse_line(text) {
            Some(id) => self.books.lines().iter().find(|l| l.id == id).cloned(),
            None => self.line_of_address(text),
        }
    }

    /// The line that has `address`.
    pub fn line_of_address(&self, address: &str) -> Option<LineView> {
        self.books.line_of_address(address)
    }

    /// Every trunk.
    pub async fn trunks(&self) -> Vec<TrunkEntry> {
        self.writes.lock().await.trunks.clone()
    }

    /// The park settings as configured.
    pub async fn park(&self) -> ParkConfig {
        self.writes.lock().await.park.clone()
    }

    /// Each pickup group with the first addresses of its lines.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in self.books.lines().iter() {
            if let Some(g) = &l.entry.pickup_group {
                by.entry(g.clone())
                    .or_default()
                    .push(l.entry.address.clone());
            }
        }
        by
    }

    /// The locations and calling cards.
    pub fn translate(&self) -> TranslateCaps {
        self.books
            .translate
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ------------------------------------------------------------------
    // Lines
    // ------------------------------------------------------------------

    /// Add a line; a phone line without a password gets a generated one,
    /// returned here (shown once).
    pub async fn create_line(
        &self,
        mut entry: LineEntry,
    ) -> Result<(LineView, Option<String>), ProvisionError> {
        let mut generated = None;
        if entry.kind == LineKind::Phone && entry.password.is_none() {
            let p = random_secret("").map_err(|e| ProvisionError::Invalid(e.to_string()))?;
            entry.password = Some(p.clone());
            generated = Some(p);
        }
        let w = self.writes.lock().await;
        for a in entry.addresses() {
            if self.line_of_address(&a).is_some() {
                return Err(ProvisionError::Conflict(format!(
                    "address {a} belongs to a line already"
                )));
            }
        }
        let cfg = entry.to_core_with(&w.trunks);
        let id = self
            .on_switch(move |sw, _| sw.add_line(cfg))
            .await?
            .map_err(line_refused)?;
        if let Err(e) = self.store.put_line(&persist::line_doc(&entry)).await {
            let _ = self.on_switch(move |sw, _| sw.remove_line(id)).await;
            return Err(stored(e));
        }
        self.books.set_credentials(None, Some(&entry));
        let view = LineView { id, entry };
        self.books.lines_mut().push(view.clone());
        self.refresh_trunks(&w.trunks).await;
        Ok((view, generated))
    }

    /// Replace the line that has `address` with what `build` makes of its
    /// current entry. Its addresses may change only while it has no calls
    /// (the switch says).
    pub async fn replace_line(
        &self,
        address: &str,
        build: impl FnOnce(&LineEntry) -> Result<LineEntry, ProvisionError>,
    ) -> Result<LineEntry, ProvisionError> {
        let w = self.writes.lock().await;
        let old = self
            .line_of_address(address)
            .ok_or_else(|| ProvisionError::NoLine(address.to_string()))?;
        let entry = build(&old.entry)?;
        for a in entry.addresses() {
            if self
                .books
                .lines()
                .iter()
                .any(|l| l.id != old.id && l.entry.addresses().contains(&a))
            {
                return Err(ProvisionError::Conflict(format!(
                    "address {a} belongs to another line"
                )));
            }
        }
        let (id, cfg, undo) = (
            old.id,
            entry.to_core_with(&w.trunks),
            old.entry.to_core_with(&w.trunks),
        );
        self.on_switch(move |sw, _| sw.update_line(id, cfg))
            .await?
            .map_err(line_refused)?;
        let dropped: Vec<String> = old
            .entry
            .addresses()
            .into_iter()
            .filter(|a| !entry.addresses().contains(a))
            .collect();
        if let Err(e) = self
            .store
            .replace_line(&old.entry.address, &persist::line_doc(&entry), &dropped)
            .await
        {
            let _ = self.on_switch(move |sw, _| sw.update_line(id, undo)).await;
            return Err(stored(e));
        }
        self.books.set_credentials(Some(&old.entry), Some(&entry));
        if let Some(l) = self.books.lines_mut().iter_mut().find(|l| l.id == id) {
            l.entry = entry.clone();
        }
        self.refresh_trunks(&w.trunks).await;
        Ok(entry)
    }

    /// Remove the line that has `address` (the switch refuses while it has
    /// calls); apps that had it open are told it closed.
    pub async fn delete_line(&self, address: &str) -> Result<(), ProvisionError> {
        let w = self.writes.lock().await;
        let old = self
            .line_of_address(address)
            .ok_or_else(|| ProvisionError::NoLine(address.to_string()))?;
        let id = old.id;
        let cfg = self
            .on_switch(move |sw, _| sw.remove_line(id))
            .await?
            .map_err(ProvisionError::Refused)?;
        if let Err(e) = self
            .store
            .delete_line(&old.entry.address, &old.entry.addresses())
            .await
        {
            // Put it back as it was (same addresses, a new id).
            if let Ok(Ok(new_id)) = self.on_switch(move |sw, _| sw.add_line(cfg)).await
                && let Some(l) = self.books.lines_mut().iter_mut().find(|l| l.id == id)
            {
                l.id = new_id;
            }
            return Err(stored(e));
        }
        self.books.set_credentials(Some(&old.entry), None);
        self.books.lines_mut().retain(|l| l.id != id);
        self.refresh_trunks(&w.trunks).await;
        Ok(())
    }

    // ------------------------------------------------------------------
    // Pickup groups
    // ------------------------------------------------------------------

    /// Make the lines of `members` (any of their addresses) the group
    /// `name`: lines leaving it get no group, lines joining it leave their
    /// old one. Returns the members' first addresses.
    pub async fn set_group(
        &self,
        name: &str,
        members: &[String],
    ) -> Result<Vec<String>, ProvisionError> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(ProvisionError::Invalid(
                "a pickup group needs a name of 1 to 64 characters".into(),
            ));
        }
        let w = self.writes.lock().await;
        let mut lines: Vec<LineView> = Vec::new();
        for a in members {
            let l = self
                .line_of_address(a)
                .ok_or_else(|| ProvisionError::Invalid(format!("{a} is not a line's address")))?;
            if !lines.iter().any(|m| m.id == l.id) {
                lines.push(l);
            }
        }
        let mut changes: Vec<(LineView, Option<String>)> = Vec::new();
        for l in self.books.lines().iter() {
            let member = lines.iter().any(|m| m.id == l.id);
            let now_in = l.entry.pickup_group.as_deref() == Some(name);
            if member && !now_in {
                changes.push((l.clone(), Some(name.to_string())));
            } else if !member && now_in {
                changes.push((l.clone(), None));
            }
        }
        self.regroup(&w.trunks, changes).await?;
        Ok(lines.into_iter().map(|m| m.entry.address).collect())
    }

    /// Dissolve the group `name`: its lines get no group.
    pub async fn dissolve_group(&self, name: &str) -> Result<(), ProvisionError> {
        let w = self.writes.lock().await;
        let changes: Vec<(LineView, Option<String>)> = self
            .books
            .lines()
            .iter()
            .filter(|l| l.entry.pickup_group.as_deref() == Some(name))
            .map(|l| (l.clone(), None))
            .collect();
        if changes.is_empty() {
            return Err(ProvisionError::NoGroup(name.to_string()));
        }
        self.regroup(&w.trunks, changes).await
    }

    /// Set the group of each line in `changes`, in the switch and the
    /// store; when either refuses, this line and the ones before it are
    /// put back in both.
    async fn regroup(
        &self,
        trunks: &[TrunkEntry],
        changes: Vec<(LineView, Option<String>)>,
    ) -> Result<(), ProvisionError> {
        let mut done: Vec<LineView> = Vec::new();
        for (old, group) in changes {
            let mut entry = old.entry.clone();
            entry.pickup_group = group;
            let (id, cfg) = (old.id, entry.to_core_with(trunks));
            let applied = self
                .on_switch(move |sw, _| sw.update_line(id, cfg))
                .await
                .and_then(|r| r.map_err(ProvisionError::Refused));
            let result = match applied {
                Ok(()) => self
                    .store
                    .replace_line(&old.entry.address, &persist::line_doc(&entry), &[])
                    .await
                    .map_err(stored),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                for prev in done.iter().chain(std::iter::once(&old)) {
                    let (id, cfg) = (prev.id, prev.entry.to_core_with(trunks));
                    let _ = self.on_switch(move |sw, _| sw.update_line(id, cfg)).await;
                    let _ = self
                        .store
                        .replace_line(&prev.entry.address, &persist::line_doc(&prev.entry), &[])
                        .await;
                }
                return Err(e);
            }
            if let Some(l) = self.books.lines_mut().iter_mut().find(|l| l.id == old.id) {
                l.entry = entry;
            }
            done.push(old);
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Apps
    // ------------------------------------------------------------------

    /// Add an app with `token` (generated when none), returned with it.
    pub async fn create_app(
        &self,
        entry: AppEntry,
        token: Option<String>,
    ) -> Result<(AppEntry, String), ProvisionError> {
        let token = match token {
            Some(t) => t,
            None => random_secret("app").map_err(|e| ProvisionError::Invalid(e.to_string()))?,
        };
        let hash = crate::http::token_hash(&token);
        let _w = self.writes.lock().await;
        if self.find_app(&entry.name).is_some() {
            return Err(ProvisionError::Conflict(format!(
                "an app named {} exists",
                entry.name
            )));
        }
        if self.app_by_hash(&hash).is_some() || self.is_admin(&hash) {
            return Err(ProvisionError::Conflict("that token is in use".into()));
        }
        let cfg = entry.to_core();
        let id = self.on_switch(move |sw, _| sw.register_app(cfg)).await?;
        if let Err(e) = self.store.put_app(&persist::app_row(&entry, &hash)).await {
            let _ = self.on_switch(move |sw, now| sw.remove_app(now, id)).await;
            return Err(stored(e));
        }
        self.handle.journal().name_app(id, &entry.name);
        self.books.apps_mut().insert(
            hash,
            Arc::new(AppCtx {
                id,
                entry: entry.clone(),
            }),
        );
        Ok((entry, token))
    }

    /// Replace the settings of the app `entry` names; `token` rotates its
    /// token (the old one stops working at once). The switch closes the
    /// lines it may no longer hold.
    pub async fn replace_app(
        &self,
        entry: AppEntry,
        token: Option<&str>,
    ) -> Result<AppEntry, ProvisionError> {
        let _w = self.writes.lock().await;
        let (old_hash, old) = self
            .find_app(&entry.name)
            .ok_or_else(|| ProvisionError::NoApp(entry.name.clone()))?;
        let hash = match token {
            Some(t) => {
                let h = crate::http::token_hash(t);
                if (h != old_hash && self.app_by_hash(&h).is_some()) || self.is_admin(&h) {
                    return Err(ProvisionError::Conflict("that token is in use".into()));
                }
                h
            }
            None => old_hash,
        };
        let id = old.id;
        let cfg = entry.to_core();
        self.on_switch(move |sw, _| sw.update_app(id, cfg))
            .await?
            .map_err(ProvisionError::Refused)?;
        if let Err(e) = self.store.put_app(&persist::app_row(&entry, &hash)).await {
            let undo = old.entry.to_core();
            let _ = self.on_switch(move |sw, _| sw.update_app(id, undo)).await;
            return Err(stored(e));
        }
        let mut apps = self.books.apps_mut();
        apps.remove(&old_hash);
        apps.insert(
            hash,
            Arc::new(AppCtx {
                id,
                entry: entry.clone(),
            }),
        );
        Ok(entry)
    }

    /// Remove an app: the store first (the switch cannot take a removal
    /// back), then its token, then the switch, where it closes its lines
    /// and loses its calls' handles and completion requests.
    pub async fn delete_app(&self, name: &str) -> Result<(), ProvisionError> {
        let _w = self.writes.lock().await;
        let (hash, app) = self
            .find_app(name)
            .ok_or_else(|| ProvisionError::NoApp(name.to_string()))?;
        self.store.delete_app(name).await.map_err(stored)?;
        self.books.apps_mut().remove(&hash);
        let id = app.id;
        self.on_switch(move |sw, now| sw.remove_app(now, id))
            .await?
            .map_err(ProvisionError::Refused)
    }

    // ------------------------------------------------------------------
    // Trunks
    // ------------------------------------------------------------------

    fn check_trunk_address(&self, t: &TrunkEntry) -> Result<(), ProvisionError> {
        if let Some(a) = &t.address {
            let line = self
                .line_of_address(a)
                .ok_or_else(|| ProvisionError::Invalid(format!("address {a} is not a line's")))?;
            if line.entry.kind != LineKind::Trunk {
                return Err(ProvisionError::Invalid(format!(
                    "address {a} is not a trunk line's"
                )));
            }
        }
        Ok(())
    }

    /// Add a trunk.
    pub async fn create_trunk(&self, entry: TrunkEntry) -> Result<TrunkEntry, ProvisionError> {
        self.check_trunk_address(&entry)?;
        let mut w = self.writes.lock().await;
        if w.trunks.iter().any(|t| t.name == entry.name) {
            return Err(ProvisionError::Conflict(format!(
                "a trunk named {} exists",
                entry.name
            )));
        }
        self.store
            .put_trunk(&persist::trunk_doc(&entry))
            .await
            .map_err(stored)?;
        w.trunks.push(entry.clone());
        self.refresh_trunks(&w.trunks).await;
        Ok(entry)
    }

    /// Replace the trunk `name` with what `build` makes of it.
    pub async fn replace_trunk(
        &self,
        name: &str,
        build: impl FnOnce(&TrunkEntry) -> Result<TrunkEntry, ProvisionError>,
    ) -> Result<TrunkEntry, ProvisionError> {
        let mut w = self.writes.lock().await;
        let Some(i) = w.trunks.iter().position(|t| t.name == name) else {
            return Err(ProvisionError::NoTrunk(name.to_string()));
        };
        let entry = build(&w.trunks[i])?;
        self.check_trunk_address(&entry)?;
        self.store
            .put_trunk(&persist::trunk_doc(&entry))
            .await
            .map_err(stored)?;
        w.trunks[i] = entry.clone();
        self.refresh_trunks(&w.trunks).await;
        Ok(entry)
    }

    /// Remove the trunk `name`.
    pub async fn delete_trunk(&self, name: &str) -> Result<(), ProvisionError> {
        let mut w = self.writes.lock().await;
        if !w.trunks.iter().any(|t| t.name == name) {
            return Err(ProvisionError::NoTrunk(name.to_string()));
        }
        self.store.delete_trunk(name).await.map_err(stored)?;
        w.trunks.retain(|t| t.name != name);
        self.refresh_trunks(&w.trunks).await;
        Ok(())
    }

    /// After trunks or lines changed: give every trunk line of the switch
    /// its trunk's dialled prefix and hairpin setting, and bind the trunks
    /// to their lines again (the B2BUA reads the table at once).
    async fn refresh_trunks(&self, trunks: &[TrunkEntry]) {
        let settings: Vec<_> = self
            .books
            .lines()
            .iter()
            .filter(|l| l.entry.kind == LineKind::Trunk)
            .map(|l| {
                let trunk = l.entry.bound_trunk(trunks);
                (
                    l.id,
                    trunk.and_then(|t| t.prefix.clone()),
                    trunk.is_some_and(|t| t.allow_hairpin),
                )
            })
            .collect();
        let refused = self
            .on_switch(move |sw, _| {
                let mut refused = Vec::new();
                for (id, prefix, allow_hairpin) in settings {
                    let Some(mut cfg) = sw.line_config(id) else {
                        continue;
                    };
                    if cfg.prefix != prefix || cfg.allow_hairpin != allow_hairpin {
                        cfg.prefix = prefix;
                        cfg.allow_hairpin = allow_hairpin;
                        if let Err(e) = sw.update_line(id, cfg) {
                            refused.push((id, e));
                        }
                    }
                }
                refused
            })
            .await;
        for (id, e) in refused.unwrap_or_default() {
            tracing::warn!(line = %id, "trunk prefix or hairpin setting not applied: {e}");
        }
        self.books.bind_trunks(trunks).await;
    }

    // ------------------------------------------------------------------
    // Park
    // ------------------------------------------------------------------

    /// Set the park slots (range or list; a slot holding a call must stay)
    /// and, when given, the reminder; returns the settings now.
    pub async fn set_park(
        &self,
        slots: &str,
        reminder_ms: Option<u64>,
    ) -> Result<ParkConfig, ProvisionError> {
        let mut w = self.writes.lock().await;
        let new = ParkConfig {
            slots: slots.trim().to_string(),
            reminder_ms: reminder_ms.or(w.park.reminder_ms),
        };
        let slots = new
            .slot_list()
            .map_err(|e| ProvisionError::Invalid(e.to_string()))?;
        if slots.is_empty() {
            return Err(ProvisionError::Invalid(
                "park needs at least one slot".into(),
            ));
        }
        let (old_slots, old_reminder) =
            (w.park.slot_list().unwrap_or_default(), w.park.reminder_ms);
        let reminder = new.reminder_ms;
        self.on_switch(move |sw, _| {
            sw.set_park_slots(slots)?;
            if let Some(ms) = reminder {
                sw.set_park_reminder_ms(ms);
            }
            Ok::<(), TapiError>(())
        })
        .await?
        .map_err(ProvisionError::Refused)?;
        if let Err(e) = self
            .store
            .put_setting("park", &serde_json::to_value(&new).unwrap_or_default())
            .await
        {
            let _ = self
                .on_switch(move |sw, _| {
                    let _ = sw.set_park_slots(old_slots);
                    if let Some(ms) = old_reminder {
                        sw.set_park_reminder_ms(ms);
                    }
                })
                .await;
            return Err(stored(e));
        }
        self.books
            .watch
            .set_slots(new.slot_list().unwrap_or_default());
        w.park = new.clone();
        Ok(new)
    }

    // ------------------------------------------------------------------
    // Locations, calling cards, forwarding
    // ------------------------------------------------------------------

    async fn save_translate(&self, caps: &TranslateCaps) -> Result<(), ProvisionError> {
        let entry = TranslateEntry {
            current: caps.current.clone(),
            locations: caps.locations.clone(),
            cards: caps.cards.clone(),
        };
        self.store
            .put_setting("translate", &persist::translate_doc(&entry))
            .await
            .map_err(stored)
    }

    /// Replace the locations (checked with the cards in force); the switch
    /// then judges international calls from the current one.
    pub async fn set_locations(
        &self,
        current: String,
        locations: Vec<Location>,
    ) -> Result<TranslateCaps, ProvisionError> {
        let _w = self.writes.lock().await;
        let next = TranslateCaps {
            current,
            locations,
            cards: self.translate().cards,
        };
        next.validate()?;
        self.save_translate(&next).await?;
        if let Ok(location) = next.location(None) {
            let location = location.clone();
            let _ = self.on_switch(move |sw, _| sw.set_location(location)).await;
        }
        *self
            .books
            .translate
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }

    /// Replace the calling cards (checked with the locations in force).
    pub async fn set_cards(
        &self,
        cards: Vec<CallingCard>,
    ) -> Result<TranslateCaps, ProvisionError> {
        let _w = self.writes.lock().await;
        let now = self.translate();
        let next = TranslateCaps {
            current: now.current,
            locations: now.locations,
            cards,
        };
        next.validate()?;
        self.save_translate(&next).await?;
        *self
            .books
            .translate
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }

    /// Store an address's forwarding after an app changed it in the switch.
    pub async fn save_forwarding(
        &self,
        address: &str,
        rules: &[ForwardRule],
        no_answer_rings: u32,
    ) -> Result<(), ProvisionError> {
        self.store
            .put_forwarding(&tapir_store::StoredForwarding {
                address: address.to_string(),
                rules: serde_json::to_value(rules).unwrap_or_default(),
                no_answer_rings,
            })
            .await
            .map_err(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use serde_json::json;
    use tapir_core::SwitchConfig;

    fn line(address: &str) -> LineEntry {
        serde_json::from_value(json!({"address": address, "password": format!("pw-{address}")}))
            .unwrap()
    }

    /// The service over a switch in its loop and an in-memory store seeded
    /// with the phones 1001 and 1002 and the app `crm`.
    async fn service() -> (Provisioning, SwitchHandle, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.http.admin_token = Some("operator-token-0123456789".into());
        config.lines = vec![line("1001"), line("1002")];
        config.apps = vec![
            serde_json::from_value(
                json!({"name": "crm", "token": "crm-token-0123456789", "lines": ["*"]}),
            )
            .unwrap(),
        ];
        let store = Store::open("sqlite::memory:").await.unwrap();
        let loaded = persist::load(&store, config).await.unwrap();
        let mut switch = Switch::new(SwitchConfig {
            park_slots: loaded.config.park.slot_list().unwrap(),
            ..SwitchConfig::default()
        });
        let translate = TranslateCaps {
            current: "default".into(),
            locations: vec![Location::new("default", 1, "425")],
            cards: Vec::new(),
        };
        let staged =
            Provisioning::stage(&mut switch, &loaded.config, &loaded.app_hashes, translate)
                .unwrap();
        assert_eq!(staged.credentials().get("1001").as_deref(), Some("pw-1001"));
        let (handle, _task) = SwitchHandle::spawn(switch, Arc::new(Journal::new(64, 64)));
        let service = staged.start(handle.clone(), store.clone(), loaded.admin_hash);
        (service, handle, store, dir)
    }

    /// What the switch holds, to compare before and after a refused change.
    async fn snapshot(handle: &SwitchHandle) -> String {
        handle
            .with(|sw, _| format!("{:?} {:?}", sw.model_snapshot(), sw.config().park_slots))
            .await
            .unwrap()
    }

    async fn line_of(handle: &SwitchHandle, address: &str) -> Option<LineId> {
        let a = address.to_string();
        handle.with(move |sw, _| sw.line_of(&a)).await.unwrap()
    }

    #[tokio::test]
    async fn a_line_goes_into_the_switch_the_store_and_the_directory_together() {
        let (p, handle, store, _dir) = service().await;
        let mut phone = line("1003");
        phone.password = None;
        let (view, generated) = p.create_line(phone).await.unwrap();
        assert_eq!(line_of(&handle, "1003").await, Some(view.id));
        let password = generated.expect("a phone without a password gets one");
        assert_eq!(p.books.credentials.get("1003"), Some(password));
        let stored =
            |docs: Vec<tapir_store::Doc>| docs.into_iter().map(|d| d.key).collect::<Vec<_>>();
        assert!(stored(store.lines().await.unwrap()).contains(&"1003".to_string()));
        // A second line with a taken address is a conflict, and changes nothing.
        let before = snapshot(&handle).await;
        assert!(matches!(
            p.create_line(line("1003")).await,
            Err(ProvisionError::Conflict(_))
        ));
        assert_eq!(snapshot(&handle).await, before);

        let changed = p
            .replace_line("1003", |old| {
                let mut e = old.clone();
                e.more_addresses = vec!["1013".into()];
                Ok(e)
            })
            .await
            .unwrap();
        assert_eq!(changed.addresses(), ["1003", "1013"]);
        assert_eq!(line_of(&handle, "1013").await, Some(view.id));
        assert_eq!(p.line_of_address("1013").map(|l| l.id), Some(view.id));

        p.delete_line("1013").await.unwrap();
        assert_eq!(line_of(&handle, "1003").await, None);
        assert_eq!(p.books.credentials.get("1003"), None);
        assert!(!stored(store.lines().await.unwrap()).contains(&"1003".to_string()));
        assert!(matches!(
            p.delete_line("1003").await,
            Err(ProvisionError::NoLine(_))
        ));
    }

    #[tokio::test]
    async fn when_the_store_refuses_the_switch_change_is_undone() {
        let (p, handle, store, _dir) = service().await;
        // A store that refuses every write from now on.
        store.close().await;
        let before = snapshot(&handle).await;
        let refused = |r: Result<_, ProvisionError>| matches!(r, Err(ProvisionError::Store(_)));

        assert!(refused(p.create_line(line("1003")).await.map(|_| ())));
        assert_eq!(line_of(&handle, "1003").await, None);
        assert!(p.line_of_address("1003").is_none());
        assert_eq!(p.books.credentials.get("1003"), None);

        let renamed = p
            .replace_line("1001", |old| {
                let mut e = old.clone();
                e.name = Some("Alice".into());
                e.more_addresses = vec!["1011".into()];
                e.password = Some("changed".into());
                Ok(e)
            })
            .await;
        assert!(refused(renamed.map(|_| ())));
        assert_eq!(line_of(&handle, "1011").await, None);
        let kept = p.line_of_address("1001").unwrap();
        assert_eq!(kept.entry.name, None);
        assert_eq!(p.books.credentials.get("1001").as_deref(), Some("pw-1001"));

        assert!(refused(
            p.set_group("sales", &["1001".into(), "1002".into()])
                .await
                .map(|_| ())
        ));
        assert!(p.groups().is_empty());

        assert!(refused(
            p.set_park("8001-8005", Some(1000)).await.map(|_| ())
        ));
        assert_eq!(p.park().await.slots, ParkConfig::default().slots);

        let app: AppEntry =
            serde_json::from_value(json!({"name": "wallboard", "lines": ["1001"]})).unwrap();
        assert!(refused(p.create_app(app, None).await.map(|_| ())));
        assert!(p.app("wallboard").is_none());
        let mut crm = p.app("crm").unwrap().entry.clone();
        crm.priority = 7;
        assert!(refused(p.replace_app(crm, None).await.map(|_| ())));
        assert_eq!(p.app("crm").unwrap().entry.priority, 0);

        // Everything the switch was asked to do was taken back.
        assert_eq!(snapshot(&handle).await, before);

        // A removed line comes back with its addresses (under a new id).
        assert!(refused(p.delete_line("1002").await));
        assert!(line_of(&handle, "1002").await.is_some());
        let back = p.line_of_address("1002").unwrap();
        assert_eq!(line_of(&handle, "1002").await, Some(back.id));
        assert_eq!(p.books.credentials.get("1002").as_deref(), Some("pw-1002"));

        // Store-first changes never reach the switch or the books.
        assert!(refused(p.delete_app("crm").await));
        let crm_id = p.app("crm").unwrap().id;
        let named = handle.with(|sw, _| sw.app_named("crm")).await.unwrap();
        assert_eq!(named, Some(crm_id));
        let trunk: TrunkEntry =
            serde_json::from_value(json!({"name": "carrier", "host": "192.0.2.1", "port": 5060}))
                .unwrap();
        assert!(refused(p.create_trunk(trunk).await.map(|_| ())));
        assert!(p.trunks().await.is_empty());
        let caps = p.translate();
        let refused_locations = p
            .set_locations("home".into(), vec![Location::new("home", 44, "20")])
            .await;
        assert!(refused(refused_locations.map(|_| ())));
        assert_eq!(p.translate().current, caps.current);
    }
}
