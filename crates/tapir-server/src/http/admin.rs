//! The operator endpoints (`/v1/admin/*`): lines, apps, trunks, pickup
//! groups, park settings, call detail records and the live media quality
//! of a call.
//!
//! Every call needs the admin token (an app token gets `403 noprivilege`).
//! A write is checked first, applied to the running switch, then stored; if
//! the store refuses, the switch change is undone, so what the API shows,
//! what the switch does and what a restart finds stay the same. Writes are
//! serialized by [`Shared::operator`](super::Shared::operator). Bad input is
//! `400 invalparam` (or the switch's code) with a sentence, and changes
//! nothing.

use super::{ApiJson, AppCtx, AppState, LineView, token_hash};
use crate::cdr::Cdr;
use crate::config::{
    AppEntry, LineEntry, ParkConfig, RemoteControl, TrunkEntry, TrunkTransport, random_secret,
};
use crate::error::{ApiError, ErrorBody};
use crate::persist;
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tapir_core::{AppPermission, ForwardRule, LineKind, MediaMode, Outbound, Privilege, TapiError};
use tapir_store::{CdrQuery, StoreError};
use utoipa::ToSchema;

/// The operator: `401` without a valid token, `403 noprivilege` for an app.
#[derive(Debug)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        match super::AnyToken::from_request_parts(parts, st).await? {
            super::AnyToken::Admin => Ok(AdminAuth),
            super::AnyToken::App(_) => Err(ApiError::no_privilege(
                "only the admin token may call /v1/admin",
            )),
        }
    }
}

fn store_failed(e: StoreError) -> ApiError {
    tracing::error!("store write failed: {e}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "operationfailed",
        format!("the store refused the change, nothing was changed: {e}"),
    )
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalparam", message)
}

async fn on_switch<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&mut tapir_core::Switch, tapir_core::Timestamp) -> T + Send + 'static,
) -> Result<T, ApiError> {
    st.handle.with(f).await.map_err(|_| ApiError::unavailable())
}

/// Store an address's forwarding after an app changed it.
pub(super) async fn save_forwarding(
    st: &AppState,
    address: &str,
    rules: &[ForwardRule],
    no_answer_rings: u32,
) -> Result<(), ApiError> {
    st.store
        .put_forwarding(&tapir_store::StoredForwarding {
            address: address.to_string(),
            rules: serde_json::to_value(rules).unwrap_or_default(),
            no_answer_rings,
        })
        .await
        .map_err(store_failed)
}

/// Store the locations and calling cards after a `PUT /v1/locations` or
/// `/v1/cards`.
pub(super) async fn save_translate(
    st: &AppState,
    caps: &tapir_translate::TranslateCaps,
) -> Result<(), ApiError> {
    let entry = crate::config::TranslateEntry {
        current: caps.current.clone(),
        locations: caps.locations.clone(),
        cards: caps.cards.clone(),
    };
    st.store
        .put_setting("translate", &persist::translate_doc(&entry))
        .await
        .map_err(store_failed)
}

// ----------------------------------------------------------------------
// Lines
// ----------------------------------------------------------------------

/// A line as the operator sees it (the keys of the TOML `[[lines]]`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdminLine {
    /// Its first address.
    pub address: String,
    /// More addresses.
    pub more_addresses: Vec<String>,
    /// `phone`, `routepoint` or `trunk`.
    #[schema(value_type = String)]
    pub kind: LineKind,
    /// A SIP password is set (the password itself is never shown).
    pub has_password: bool,
    /// Display name.
    pub name: Option<String>,
    /// Pickup group.
    pub pickup_group: Option<String>,
    /// The phone honours an auto-answer hint.
    pub auto_answer: bool,
    /// `none` or `broadsoft`.
    #[schema(value_type = String)]
    pub remote_control: RemoteControl,
    /// Call appearances per address.
    pub max_calls: Option<usize>,
    /// What the line may dial: `none`, `internal`, `national` or `all`.
    #[schema(value_type = String)]
    pub outbound: Outbound,
    /// The password generated for a new phone line; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl From<&LineEntry> for AdminLine {
    fn from(l: &LineEntry) -> AdminLine {
        AdminLine {
            address: l.address.clone(),
            more_addresses: l.more_addresses.clone(),
            kind: l.kind,
            has_password: l.password.is_some(),
            name: l.name.clone(),
            pickup_group: l.pickup_group.clone(),
            auto_answer: l.auto_answer,
            remote_control: l.remote_control,
            max_calls: l.max_calls,
            outbound: l.outbound,
            password: None,
        }
    }
}

/// `{"lines":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminLines {
    /// Every line, in the order they were added.
    pub lines: Vec<AdminLine>,
}

/// A line to create or replace. `password` is write-only; on replace,
/// leaving it out keeps the current one.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// Its first address (required to create; on replace, must match the path).
    pub address: Option<String>,
    /// More addresses.
    #[serde(default)]
    pub more_addresses: Vec<String>,
    /// `phone` (default), `routepoint` or `trunk`.
    #[schema(value_type = Option<String>)]
    pub kind: Option<LineKind>,
    /// SIP digest password (phones; generated when a new phone has none).
    pub password: Option<String>,
    /// Ignored (what `GET` shows).
    #[allow(dead_code)] // Accepted so a GET body can be sent back.
    pub has_password: Option<bool>,
    /// Display name.
    pub name: Option<String>,
    /// Pickup group.
    pub pickup_group: Option<String>,
    /// The phone honours an auto-answer hint.
    #[serde(default)]
    pub auto_answer: bool,
    /// `none` (default) or `broadsoft`.
    #[schema(value_type = Option<String>)]
    pub remote_control: Option<RemoteControl>,
    /// Call appearances per address (1–100).
    pub max_calls: Option<usize>,
    /// What the line may dial: `none`, `internal`, `national` (default) or `all`.
    #[schema(value_type = Option<String>)]
    pub outbound: Option<Outbound>,
}

impl LineBody {
    fn entry(self, address: String, old_password: Option<String>) -> Result<LineEntry, ApiError> {
        if let Some(n) = self.max_calls
            && !(1..=100).contains(&n)
        {
            return Err(ApiError::param(format!(
                "max_calls {n} is not between 1 and 100"
            )));
        }
        if self.password.as_deref() == Some("") {
            return Err(ApiError::param("an empty password is not allowed"));
        }
        if let Some(g) = &self.pickup_group
            && g.trim().is_empty()
        {
            return Err(ApiError::param("a pickup group needs a name"));
        }
        Ok(LineEntry {
            address,
            more_addresses: self.more_addresses,
            kind: self.kind.unwrap_or(LineKind::Phone),
            password: self.password.or(old_password),
            name: self.name,
            pickup_group: self.pickup_group,
            auto_answer: self.auto_answer,
            remote_control: self.remote_control.unwrap_or_default(),
            max_calls: self.max_calls,
            outbound: self.outbound.unwrap_or_default(),
        })
    }
}

fn no_line(address: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invallinehandle",
        format!("there is no line {address:?}"),
    )
}

fn find_line(st: &AppState, address: &str) -> Result<LineView, ApiError> {
    st.lines()
        .iter()
        .find(|l| l.entry.addresses().iter().any(|a| a == address))
        .cloned()
        .ok_or_else(|| no_line(address))
}

/// A switch refusal of a line change, as the API says it.
fn line_refused(e: TapiError) -> ApiError {
    let taken = e.message.contains("already in use");
    let mut err = ApiError::from(e);
    if taken {
        err.status = StatusCode::CONFLICT;
        err.code = "invalparam".into();
    }
    err
}

fn set_credentials(st: &AppState, old: Option<&LineEntry>, new: Option<&LineEntry>) {
    if let Some(o) = old {
        st.credentials.remove(&o.address);
    }
    if let Some(n) = new
        && n.kind == LineKind::Phone
        && let Some(p) = &n.password
    {
        st.credentials.set(&n.address, p);
    }
}

/// Every line.
#[utoipa::path(get, path = "/v1/admin/lines", tag = "admin",
    responses((status = 200, description = "every line", body = AdminLines),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_lines(State(st): State<AppState>, _: AdminAuth) -> Json<AdminLines> {
    Json(AdminLines {
        lines: st
            .lines()
            .iter()
            .map(|l| AdminLine::from(&l.entry))
            .collect(),
    })
}

/// One line, by any of its addresses.
#[utoipa::path(get, path = "/v1/admin/lines/{address}", tag = "admin",
    params(("address" = String, Path, description = "an address of the line")),
    responses((status = 200, description = "the line", body = AdminLine),
              (status = 404, description = "no such line", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_line(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(address): Path<String>,
) -> Result<Json<AdminLine>, ApiError> {
    Ok(Json(AdminLine::from(&find_line(&st, &address)?.entry)))
}

/// Add a line; it works at once (phones may register with its password).
#[utoipa::path(post, path = "/v1/admin/lines", tag = "admin",
    request_body = LineBody,
    responses((status = 201, description = "the new line (with a generated `password` shown once)", body = AdminLine),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 409, description = "an address is in use", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_line(
    State(st): State<AppState>,
    _: AdminAuth,
    ApiJson(body): ApiJson<LineBody>,
) -> Result<Response, ApiError> {
    let address = body
        .address
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::param("a line needs an \"address\""))?;
    let mut entry = body.entry(address, None)?;
    let mut generated = None;
    if entry.kind == LineKind::Phone && entry.password.is_none() {
        let p = random_secret("").map_err(|e| ApiError::param(e.to_string()))?;
        entry.password = Some(p.clone());
        generated = Some(p);
    }
    let _w = st.operator.lock().await;
    for a in entry.addresses() {
        if find_line(&st, &a).is_ok() {
            return Err(conflict(format!("address {a} belongs to a line already")));
        }
    }
    let cfg = entry.to_core_with(&_w.trunks);
    let id = on_switch(&st, move |sw, _| sw.add_line(cfg))
        .await?
        .map_err(line_refused)?;
    if let Err(e) = st.store.put_line(&persist::line_doc(&entry)).await {
        let _ = on_switch(&st, move |sw, _| sw.remove_line(id)).await;
        return Err(store_failed(e));
    }
    set_credentials(&st, None, Some(&entry));
    st.lines
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(LineView {
            id,
            entry: entry.clone(),
        });
    refresh_trunks(&st, &_w.trunks).await;
    let mut out = AdminLine::from(&entry);
    out.password = generated;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Replace a line. Its addresses may change only while it has no calls.
#[utoipa::path(put, path = "/v1/admin/lines/{address}", tag = "admin",
    params(("address" = String, Path, description = "an address of the line")),
    request_body = LineBody,
    responses((status = 200, description = "the line now", body = AdminLine),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such line", body = ErrorBody),
              (status = 409, description = "an address is in use, or the line has calls", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_line(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(address): Path<String>,
    ApiJson(body): ApiJson<LineBody>,
) -> Result<Json<AdminLine>, ApiError> {
    let _w = st.operator.lock().await;
    let old = find_line(&st, &address)?;
    let first = match &body.address {
        Some(a) if a != &address && a != &old.entry.address => {
            return Err(ApiError::param(format!(
                "the body's address {a:?} is not the line's ({address:?})"
            )));
        }
        Some(a) => a.clone(),
        None => old.entry.address.clone(),
    };
    let entry = body.entry(first, old.entry.password.clone())?;
    for a in entry.addresses() {
        if st
            .lines()
            .iter()
            .any(|l| l.id != old.id && l.entry.addresses().contains(&a))
        {
            return Err(conflict(format!("address {a} belongs to another line")));
        }
    }
    let (id, cfg, undo) = (
        old.id,
        entry.to_core_with(&_w.trunks),
        old.entry.to_core_with(&_w.trunks),
    );
    on_switch(&st, move |sw, _| sw.update_line(id, cfg))
        .await?
        .map_err(line_refused)?;
    let dropped: Vec<String> = old
        .entry
        .addresses()
        .into_iter()
        .filter(|a| !entry.addresses().contains(a))
        .collect();
    if let Err(e) = st
        .store
        .replace_line(&old.entry.address, &persist::line_doc(&entry), &dropped)
        .await
    {
        let _ = on_switch(&st, move |sw, _| sw.update_line(id, undo)).await;
        return Err(store_failed(e));
    }
    set_credentials(&st, Some(&old.entry), Some(&entry));
    if let Some(l) = st
        .lines
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .iter_mut()
        .find(|l| l.id == id)
    {
        l.entry = entry.clone();
    }
    refresh_trunks(&st, &_w.trunks).await;
    Ok(Json(AdminLine::from(&entry)))
}

/// Remove a line that has no calls; apps that had it open are told
/// `line.state` `closed`.
#[utoipa::path(delete, path = "/v1/admin/lines/{address}", tag = "admin",
    params(("address" = String, Path, description = "an address of the line")),
    responses((status = 204, description = "removed"),
              (status = 404, description = "no such line", body = ErrorBody),
              (status = 409, description = "the line has calls", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_line(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _w = st.operator.lock().await;
    let old = find_line(&st, &address)?;
    let id = old.id;
    let cfg = on_switch(&st, move |sw, _| sw.remove_line(id))
        .await?
        .map_err(ApiError::from)?;
    if let Err(e) = st
        .store
        .delete_line(&old.entry.address, &old.entry.addresses())
        .await
    {
        // Put it back as it was (same addresses, a new id).
        if let Ok(Ok(new_id)) = on_switch(&st, move |sw, _| sw.add_line(cfg)).await
            && let Some(l) = st
                .lines
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .iter_mut()
                .find(|l| l.id == id)
        {
            l.id = new_id;
        }
        return Err(store_failed(e));
    }
    set_credentials(&st, Some(&old.entry), None);
    st.lines
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|l| l.id != id);
    st.opened
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(_, l), _| *l != id);
    refresh_trunks(&st, &_w.trunks).await;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------
// Apps
// ----------------------------------------------------------------------

/// An app as the operator sees it (the keys of `[[apps]]`; never its token
/// except once, when created or rotated).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdminApp {
    /// Unique name.
    pub name: String,
    /// Addresses of the lines it may open, or `["*"]`.
    pub lines: Vec<String>,
    /// The most it may ask for: `owner`, `monitor`.
    #[schema(value_type = Vec<String>)]
    pub privileges: Vec<Privilege>,
    /// Media modes it may open lines for.
    #[schema(value_type = Vec<String>)]
    pub media_modes: Vec<MediaMode>,
    /// Priority (lower wins).
    pub priority: u32,
    /// Its configured permissions (`make_call`, `forward`, `settings`);
    /// absent when it has the defaults of its privileges and lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<AppPermission>>,
    /// The permissions in force: the configured ones or the defaults.
    #[schema(value_type = Vec<String>)]
    pub effective_permissions: Vec<AppPermission>,
    /// The bearer token, only in the reply that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&AppEntry> for AdminApp {
    fn from(a: &AppEntry) -> AdminApp {
        AdminApp {
            name: a.name.clone(),
            lines: a.lines.clone(),
            privileges: a.privileges.clone(),
            media_modes: a.media_modes.clone(),
            priority: a.priority,
            permissions: a.permissions.clone(),
            effective_permissions: a.permissions(),
            token: None,
        }
    }
}

/// `{"apps":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminApps {
    /// Every app.
    pub apps: Vec<AdminApp>,
}

/// An app to create or replace; `token` sets (or rotates) its token, and a
/// new app without one gets a generated token.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppBody {
    /// Unique name (required to create; on replace, must match the path).
    pub name: Option<String>,
    /// Addresses of the lines it may open, or `["*"]`.
    #[serde(default)]
    pub lines: Vec<String>,
    /// The most it may ask for (default both).
    #[schema(value_type = Option<Vec<String>>)]
    pub privileges: Option<Vec<Privilege>>,
    /// Media modes (default `interactivevoice`).
    #[schema(value_type = Option<Vec<String>>)]
    pub media_modes: Option<Vec<MediaMode>>,
    /// Priority (lower wins).
    #[serde(default)]
    pub priority: u32,
    /// `make_call`, `forward`, `settings` (default: `make_call` and
    /// `forward` with the `owner` privilege, `settings` too with every
    /// line; none for a monitor-only app).
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<AppPermission>>,
    /// Bearer token (at least 16 characters).
    pub token: Option<String>,
}

impl AppBody {
    fn entry(self, name: String) -> Result<(AppEntry, Option<String>), ApiError> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(ApiError::param("an app needs a name of 1 to 64 characters"));
        }
        if let Some(t) = &self.token
            && t.len() < 16
        {
            return Err(ApiError::param("a token needs at least 16 characters"));
        }
        if self.lines.iter().any(|l| l.is_empty()) {
            return Err(ApiError::param("an empty line address is not allowed"));
        }
        let privileges = self
            .privileges
            .unwrap_or_else(|| vec![Privilege::Owner, Privilege::Monitor]);
        if privileges.is_empty() {
            return Err(ApiError::param("an app needs at least one privilege"));
        }
        let media_modes = self
            .media_modes
            .unwrap_or_else(tapir_core::default_media_modes);
        Ok((
            AppEntry {
                name,
                token: None,
                lines: self.lines,
                privileges,
                media_modes,
                priority: self.priority,
                permissions: self.permissions,
            },
            self.token,
        ))
    }
}

fn no_app(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalparam",
        format!("there is no app {name:?}"),
    )
}

/// The app named `name` and its token hash.
fn find_app(st: &AppState, name: &str) -> Option<([u8; 32], Arc<AppCtx>)> {
    st.apps
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(_, a)| a.entry.name == name)
        .map(|(h, a)| (*h, a.clone()))
}

fn apps_sorted(st: &AppState) -> Vec<AppEntry> {
    let mut apps: Vec<(u64, AppEntry)> = st
        .apps
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|a| (a.id.0, a.entry.clone()))
        .collect();
    apps.sort_by_key(|(id, _)| *id);
    apps.into_iter().map(|(_, a)| a).collect()
}

/// Every app.
#[utoipa::path(get, path = "/v1/admin/apps", tag = "admin",
    responses((status = 200, description = "every app", body = AdminApps),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_apps(State(st): State<AppState>, _: AdminAuth) -> Json<AdminApps> {
    Json(AdminApps {
        apps: apps_sorted(&st).iter().map(AdminApp::from).collect(),
    })
}

/// One app.
#[utoipa::path(get, path = "/v1/admin/apps/{name}", tag = "admin",
    params(("name" = String, Path, description = "the app's name")),
    responses((status = 200, description = "the app", body = AdminApp),
              (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_app(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<AdminApp>, ApiError> {
    let (_, app) = find_app(&st, &name).ok_or_else(|| no_app(&name))?;
    Ok(Json(AdminApp::from(&app.entry)))
}

/// Add an app; its token works at once.
#[utoipa::path(post, path = "/v1/admin/apps", tag = "admin",
    request_body = AppBody,
    responses((status = 201, description = "the new app with its `token` (shown once)", body = AdminApp),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 409, description = "the name or token is in use", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_app(
    State(st): State<AppState>,
    _: AdminAuth,
    ApiJson(body): ApiJson<AppBody>,
) -> Result<Response, ApiError> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::param("an app needs a \"name\""))?;
    let (entry, token) = body.entry(name)?;
    let token = match token {
        Some(t) => t,
        None => random_secret("app").map_err(|e| ApiError::param(e.to_string()))?,
    };
    let hash = token_hash(&token);
    let _w = st.operator.lock().await;
    if find_app(&st, &entry.name).is_some() {
        return Err(conflict(format!("an app named {} exists", entry.name)));
    }
    if st.app_by_hash(&hash).is_some() || st.admin == Some(hash) {
        return Err(conflict("that token is in use"));
    }
    let cfg = entry.to_core();
    let id = on_switch(&st, move |sw, _| sw.register_app(cfg)).await?;
    if let Err(e) = st.store.put_app(&persist::app_row(&entry, &hash)).await {
        let _ = on_switch(&st, move |sw, now| sw.remove_app(now, id)).await;
        return Err(store_failed(e));
    }
    st.handle.journal().name_app(id, &entry.name);
    st.apps.write().unwrap_or_else(|e| e.into_inner()).insert(
        hash,
        Arc::new(AppCtx {
            id,
            entry: entry.clone(),
        }),
    );
    let mut out = AdminApp::from(&entry);
    out.token = Some(token);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Replace an app's settings; `token` rotates its token (the old one stops
/// working at once). Lines it has open stay open, except those it may no
/// longer open or has open with a privilege it may no longer hold: they
/// are closed (`line.state` `closed`).
#[utoipa::path(put, path = "/v1/admin/apps/{name}", tag = "admin",
    params(("name" = String, Path, description = "the app's name")),
    request_body = AppBody,
    responses((status = 200, description = "the app now (with `token` when rotated)", body = AdminApp),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such app", body = ErrorBody),
              (status = 409, description = "the token is in use", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_app(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AppBody>,
) -> Result<Json<AdminApp>, ApiError> {
    if let Some(n) = &body.name
        && n != &name
    {
        return Err(ApiError::param(format!(
            "the body's name {n:?} is not the app's ({name:?})"
        )));
    }
    let (entry, token) = body.entry(name.clone())?;
    let _w = st.operator.lock().await;
    let (old_hash, old) = find_app(&st, &name).ok_or_else(|| no_app(&name))?;
    let hash = match &token {
        Some(t) => {
            let h = token_hash(t);
            if (h != old_hash && st.app_by_hash(&h).is_some()) || st.admin == Some(h) {
                return Err(conflict("that token is in use"));
            }
            h
        }
        None => old_hash,
    };
    let id = old.id;
    let cfg = entry.to_core();
    let closed = on_switch(&st, move |sw, _| sw.update_app(id, cfg))
        .await?
        .map_err(ApiError::from)?;
    // Lines it may no longer hold were closed by the switch.
    st.opened
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(a, l), _| *a != id || !closed.contains(l));
    if let Err(e) = st.store.put_app(&persist::app_row(&entry, &hash)).await {
        let undo = old.entry.to_core();
        let _ = on_switch(&st, move |sw, _| sw.update_app(id, undo)).await;
        return Err(store_failed(e));
    }
    {
        let mut apps = st.apps.write().unwrap_or_else(|e| e.into_inner());
        apps.remove(&old_hash);
        apps.insert(
            hash,
            Arc::new(AppCtx {
                id,
                entry: entry.clone(),
            }),
        );
    }
    let mut out = AdminApp::from(&entry);
    out.token = token;
    Ok(Json(out))
}

/// Remove an app: it closes its lines, loses its calls' handles and its
/// pending completion requests; its token stops working.
#[utoipa::path(delete, path = "/v1/admin/apps/{name}", tag = "admin",
    params(("name" = String, Path, description = "the app's name")),
    responses((status = 204, description = "removed"),
              (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_app(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _w = st.operator.lock().await;
    let (hash, app) = find_app(&st, &name).ok_or_else(|| no_app(&name))?;
    // The store first: a failure leaves everything as it was.
    st.store.delete_app(&name).await.map_err(store_failed)?;
    st.apps
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&hash);
    let id = app.id;
    on_switch(&st, move |sw, now| sw.remove_app(now, id))
        .await?
        .map_err(ApiError::from)?;
    st.opened
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(a, _), _| *a != id);
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------
// Trunks
// ----------------------------------------------------------------------

/// A trunk as the operator sees it (password never shown).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AdminTrunk {
    /// Unique name.
    pub name: String,
    /// Host name or IP address.
    pub host: String,
    /// SIP port.
    pub port: u16,
    /// `udp`, `tcp` or `tls`.
    pub transport: TrunkTransport,
    /// Digest user name.
    pub username: Option<String>,
    /// A password is set.
    pub has_password: bool,
    /// Dialled prefix that selects it.
    pub prefix: Option<String>,
    /// Its trunk line's address.
    pub address: Option<String>,
    /// Calls from its carrier may be routed back out of a trunk.
    pub allow_hairpin: bool,
}

impl From<&TrunkEntry> for AdminTrunk {
    fn from(t: &TrunkEntry) -> AdminTrunk {
        AdminTrunk {
            name: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            transport: t.transport,
            username: t.username.clone(),
            has_password: t.password.is_some(),
            prefix: t.prefix.clone(),
            address: t.address.clone(),
            allow_hairpin: t.allow_hairpin,
        }
    }
}

/// `{"trunks":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTrunks {
    /// Every trunk.
    pub trunks: Vec<AdminTrunk>,
}

/// A trunk to create or replace (`password` write-only: left out on replace,
/// the current one stays).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkBody {
    /// Unique name (required to create; on replace, must match the path).
    pub name: Option<String>,
    /// Host name or IP address.
    pub host: Option<String>,
    /// SIP port (default 5060).
    pub port: Option<u16>,
    /// `udp` (default), `tcp` or `tls`.
    pub transport: Option<TrunkTransport>,
    /// Digest user name.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// Ignored (what `GET` shows).
    #[allow(dead_code)] // Accepted so a GET body can be sent back.
    pub has_password: Option<bool>,
    /// Dialled prefix that selects it (digits, `*`, `#`).
    pub prefix: Option<String>,
    /// Its trunk line's address.
    pub address: Option<String>,
    /// Calls from its carrier may be routed back out of a trunk (default false).
    #[serde(default)]
    pub allow_hairpin: bool,
}

impl TrunkBody {
    fn entry(self, name: String, old_password: Option<String>) -> Result<TrunkEntry, ApiError> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(ApiError::param(
                "a trunk needs a name of 1 to 64 characters",
            ));
        }
        let host = self
            .host
            .filter(|h| !h.trim().is_empty() && !h.contains(char::is_whitespace))
            .ok_or_else(|| ApiError::param("a trunk needs a \"host\" (name or IP address)"))?;
        let port = self.port.unwrap_or(5060);
        if port == 0 {
            return Err(ApiError::param("port 0 is not a SIP port"));
        }
        if let Some(p) = &self.prefix
            && (p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#'))
        {
            return Err(ApiError::param(format!(
                "prefix {p:?} is not made of digits, * and #"
            )));
        }
        Ok(TrunkEntry {
            name,
            host,
            port,
            transport: self.transport.unwrap_or_default(),
            username: self.username,
            password: self.password.or(old_password),
            prefix: self.prefix,
            address: self.address,
            allow_hairpin: self.allow_hairpin,
        })
    }
}

/// Bind the trunks to their lines again, hosts resolved anew, after the
/// operator changed trunks or lines (the B2BUA reads the table at once),
/// and give every trunk line of the switch its trunk's dialled prefix and
/// hairpin setting.
async fn refresh_trunks(st: &AppState, trunks: &[TrunkEntry]) {
    let lines: Vec<_> = st.lines().iter().map(|l| (l.id, l.entry.clone())).collect();
    let settings: Vec<_> = lines
        .iter()
        .filter(|(_, e)| e.kind == LineKind::Trunk)
        .map(|(id, e)| {
            let trunk = e.bound_trunk(trunks);
            (
                *id,
                trunk.and_then(|t| t.prefix.clone()),
                trunk.is_some_and(|t| t.allow_hairpin),
            )
        })
        .collect();
    let refused = on_switch(st, move |sw, _| {
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
    st.trunks
        .replace(crate::sip::trunk_bindings(trunks, &lines).await);
}

fn no_trunk(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalparam",
        format!("there is no trunk {name:?}"),
    )
}

/// Every trunk.
#[utoipa::path(get, path = "/v1/admin/trunks", tag = "admin",
    responses((status = 200, description = "every trunk", body = AdminTrunks),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_trunks(State(st): State<AppState>, _: AdminAuth) -> Json<AdminTrunks> {
    let op = st.operator.lock().await;
    Json(AdminTrunks {
        trunks: op.trunks.iter().map(AdminTrunk::from).collect(),
    })
}

/// One trunk.
#[utoipa::path(get, path = "/v1/admin/trunks/{name}", tag = "admin",
    params(("name" = String, Path, description = "the trunk's name")),
    responses((status = 200, description = "the trunk", body = AdminTrunk),
              (status = 404, description = "no such trunk", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_trunk(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<AdminTrunk>, ApiError> {
    let op = st.operator.lock().await;
    op.trunks
        .iter()
        .find(|t| t.name == name)
        .map(|t| Json(AdminTrunk::from(t)))
        .ok_or_else(|| no_trunk(&name))
}

fn check_trunk_address(st: &AppState, t: &TrunkEntry) -> Result<(), ApiError> {
    if let Some(a) = &t.address {
        let line = find_line(st, a)
            .map_err(|_| ApiError::param(format!("address {a} is not a line's")))?;
        if line.entry.kind != LineKind::Trunk {
            return Err(ApiError::param(format!(
                "address {a} is not a trunk line's"
            )));
        }
    }
    Ok(())
}

/// Add a trunk (stored configuration of a SIP peer).
#[utoipa::path(post, path = "/v1/admin/trunks", tag = "admin",
    request_body = TrunkBody,
    responses((status = 201, description = "the new trunk", body = AdminTrunk),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 409, description = "the name is in use", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_trunk(
    State(st): State<AppState>,
    _: AdminAuth,
    ApiJson(body): ApiJson<TrunkBody>,
) -> Result<Response, ApiError> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::param("a trunk needs a \"name\""))?;
    let entry = body.entry(name, None)?;
    check_trunk_address(&st, &entry)?;
    let mut op = st.operator.lock().await;
    if op.trunks.iter().any(|t| t.name == entry.name) {
        return Err(conflict(format!("a trunk named {} exists", entry.name)));
    }
    st.store
        .put_trunk(&persist::trunk_doc(&entry))
        .await
        .map_err(store_failed)?;
    op.trunks.push(entry.clone());
    refresh_trunks(&st, &op.trunks).await;
    Ok((StatusCode::CREATED, Json(AdminTrunk::from(&entry))).into_response())
}

/// Replace a trunk.
#[utoipa::path(put, path = "/v1/admin/trunks/{name}", tag = "admin",
    params(("name" = String, Path, description = "the trunk's name")),
    request_body = TrunkBody,
    responses((status = 200, description = "the trunk now", body = AdminTrunk),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such trunk", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_trunk(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TrunkBody>,
) -> Result<Json<AdminTrunk>, ApiError> {
    if let Some(n) = &body.name
        && n != &name
    {
        return Err(ApiError::param(format!(
            "the body's name {n:?} is not the trunk's ({name:?})"
        )));
    }
    let mut op = st.operator.lock().await;
    let Some(i) = op.trunks.iter().position(|t| t.name == name) else {
        return Err(no_trunk(&name));
    };
    let entry = body.entry(name, op.trunks[i].password.clone())?;
    check_trunk_address(&st, &entry)?;
    st.store
        .put_trunk(&persist::trunk_doc(&entry))
        .await
        .map_err(store_failed)?;
    op.trunks[i] = entry.clone();
    refresh_trunks(&st, &op.trunks).await;
    Ok(Json(AdminTrunk::from(&entry)))
}

/// Remove a trunk.
#[utoipa::path(delete, path = "/v1/admin/trunks/{name}", tag = "admin",
    params(("name" = String, Path, description = "the trunk's name")),
    responses((status = 204, description = "removed"),
              (status = 404, description = "no such trunk", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_trunk(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut op = st.operator.lock().await;
    if !op.trunks.iter().any(|t| t.name == name) {
        return Err(no_trunk(&name));
    }
    st.store.delete_trunk(&name).await.map_err(store_failed)?;
    op.trunks.retain(|t| t.name != name);
    refresh_trunks(&st, &op.trunks).await;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------
// Pickup groups
// ----------------------------------------------------------------------

/// A pickup group: the lines whose `pickup_group` is its name.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PickupGroup {
    /// Its name.
    pub name: String,
    /// The first addresses of its lines.
    pub members: Vec<String>,
}

/// `{"groups":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PickupGroups {
    /// Every group with at least one line.
    pub groups: Vec<PickupGroup>,
}

/// The members of a group.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// Addresses of its lines (each line's first address or any other).
    pub members: Vec<String>,
}

fn groups(st: &AppState) -> Vec<PickupGroup> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in st.lines().iter() {
        if let Some(g) = &l.entry.pickup_group {
            by.entry(g.clone())
                .or_default()
                .push(l.entry.address.clone());
        }
    }
    by.into_iter()
        .map(|(name, members)| PickupGroup { name, members })
        .collect()
}

/// Set the group of each line in `changes` (line id → new group), in the
/// switch and the store; undone in the switch when the store refuses.
async fn regroup(
    st: &AppState,
    trunks: &[TrunkEntry],
    changes: Vec<(LineView, Option<String>)>,
) -> Result<(), ApiError> {
    let mut done: Vec<LineView> = Vec::new();
    for (old, group) in changes {
        let mut entry = old.entry.clone();
        entry.pickup_group = group;
        let (id, cfg) = (old.id, entry.to_core_with(trunks));
        let applied = on_switch(st, move |sw, _| sw.update_line(id, cfg))
            .await
            .and_then(|r| r.map_err(ApiError::from));
        let stored = match applied {
            Ok(()) => st
                .store
                .replace_line(&old.entry.address, &persist::line_doc(&entry), &[])
                .await
                .map_err(store_failed),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            // Undo this line and the ones before it.
            for prev in done.iter().chain(std::iter::once(&old)) {
                let (id, cfg) = (prev.id, prev.entry.to_core_with(trunks));
                let _ = on_switch(st, move |sw, _| sw.update_line(id, cfg)).await;
                let _ = st
                    .store
                    .replace_line(&prev.entry.address, &persist::line_doc(&prev.entry), &[])
                    .await;
            }
            return Err(e);
        }
        if let Some(l) = st
            .lines
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .find(|l| l.id == old.id)
        {
            l.entry = entry;
        }
        done.push(old);
    }
    Ok(())
}

/// Every pickup group.
#[utoipa::path(get, path = "/v1/admin/pickup-groups", tag = "admin",
    responses((status = 200, description = "every group", body = PickupGroups),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_groups(State(st): State<AppState>, _: AdminAuth) -> Json<PickupGroups> {
    Json(PickupGroups {
        groups: groups(&st),
    })
}

/// Set a group's members (lines leaving it get no group; lines joining it
/// leave their old one).
#[utoipa::path(put, path = "/v1/admin/pickup-groups/{name}", tag = "admin",
    params(("name" = String, Path, description = "the group's name")),
    request_body = GroupBody,
    responses((status = 200, description = "the group now", body = PickupGroup),
              (status = 400, description = "an unknown address or a bad name", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_group(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<Json<PickupGroup>, ApiError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(ApiError::param(
            "a pickup group needs a name of 1 to 64 characters",
        ));
    }
    let _w = st.operator.lock().await;
    let mut members = Vec::new();
    for a in &body.members {
        let l = find_line(&st, a)
            .map_err(|_| ApiError::param(format!("{a} is not a line's address")))?;
        if !members.iter().any(|m: &LineView| m.id == l.id) {
            members.push(l);
        }
    }
    let mut changes: Vec<(LineView, Option<String>)> = Vec::new();
    for l in st.lines().iter() {
        let member = members.iter().any(|m| m.id == l.id);
        let now_in = l.entry.pickup_group.as_deref() == Some(name.as_str());
        if member && !now_in {
            changes.push((l.clone(), Some(name.clone())));
        } else if !member && now_in {
            changes.push((l.clone(), None));
        }
    }
    regroup(&st, &_w.trunks, changes).await?;
    Ok(Json(PickupGroup {
        members: members.iter().map(|m| m.entry.address.clone()).collect(),
        name,
    }))
}

/// Dissolve a group: its lines get no group.
#[utoipa::path(delete, path = "/v1/admin/pickup-groups/{name}", tag = "admin",
    params(("name" = String, Path, description = "the group's name")),
    responses((status = 204, description = "dissolved"),
              (status = 404, description = "no line is in that group", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _w = st.operator.lock().await;
    let changes: Vec<(LineView, Option<String>)> = st
        .lines()
        .iter()
        .filter(|l| l.entry.pickup_group.as_deref() == Some(name.as_str()))
        .map(|l| (l.clone(), None))
        .collect();
    if changes.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalgroupid",
            format!("there is no pickup group {name:?}"),
        ));
    }
    regroup(&st, &_w.trunks, changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------
// Park
// ----------------------------------------------------------------------

/// A call waiting in a park slot.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ParkedCall {
    /// The slot.
    pub slot: String,
    /// The parked call (`call-N`).
    pub call: String,
}

/// Park settings and what is parked now.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ParkSettings {
    /// Slot range (`7001-7020`) or list.
    pub slots: String,
    /// Milliseconds before a parked call rings back (0: never; null: the default).
    pub reminder_ms: Option<u64>,
    /// Calls parked now.
    pub parked: Vec<ParkedCall>,
}

/// New park settings.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParkBody {
    /// Slot range (`7001-7030`) or comma-separated list.
    pub slots: String,
    /// Milliseconds before a parked call rings back (0: never); left out,
    /// the current setting stays.
    pub reminder_ms: Option<u64>,
    /// Ignored (what `GET` shows).
    #[allow(dead_code)] // Accepted so a GET body can be sent back.
    #[schema(value_type = Option<Object>)]
    pub parked: Option<serde_json::Value>,
}

async fn park_settings(st: &AppState, park: &ParkConfig) -> Result<ParkSettings, ApiError> {
    let slots = park.slot_list().unwrap_or_default();
    let parked = on_switch(st, move |sw, _| {
        slots
            .iter()
            .filter_map(|s| {
                sw.parked_at(s).map(|c| ParkedCall {
                    slot: s.clone(),
                    call: c.to_string(),
                })
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(ParkSettings {
        slots: park.slots.clone(),
        reminder_ms: park.reminder_ms,
        parked,
    })
}

/// The park slots, the reminder and the parked calls.
#[utoipa::path(get, path = "/v1/admin/park", tag = "admin",
    responses((status = 200, description = "park settings", body = ParkSettings),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_park(
    State(st): State<AppState>,
    _: AdminAuth,
) -> Result<Json<ParkSettings>, ApiError> {
    let park = st.operator.lock().await.park.clone();
    Ok(Json(park_settings(&st, &park).await?))
}

/// Change the park slots (a slot holding a call must stay) and the reminder.
#[utoipa::path(put, path = "/v1/admin/park", tag = "admin",
    request_body = ParkBody,
    responses((status = 200, description = "park settings now", body = ParkSettings),
              (status = 400, description = "a bad range or a slot that is a line's address", body = ErrorBody),
              (status = 409, description = "a slot that would go holds a call", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_park(
    State(st): State<AppState>,
    _: AdminAuth,
    ApiJson(body): ApiJson<ParkBody>,
) -> Result<Json<ParkSettings>, ApiError> {
    let mut op = st.operator.lock().await;
    let new = ParkConfig {
        slots: body.slots.trim().to_string(),
        reminder_ms: body.reminder_ms.or(op.park.reminder_ms),
    };
    let slots = new
        .slot_list()
        .map_err(|e| ApiError::param(e.to_string()))?;
    if slots.is_empty() {
        return Err(ApiError::param("park needs at least one slot"));
    }
    let (old_slots, old_reminder) = (op.park.slot_list().unwrap_or_default(), op.park.reminder_ms);
    let reminder = new.reminder_ms;
    on_switch(&st, move |sw, _| {
        sw.set_park_slots(slots)?;
        if let Some(ms) = reminder {
            sw.set_park_reminder_ms(ms);
        }
        Ok::<(), TapiError>(())
    })
    .await?
    .map_err(ApiError::from)?;
    if let Err(e) = st
        .store
        .put_setting("park", &serde_json::to_value(&new).unwrap_or_default())
        .await
    {
        let _ = on_switch(&st, move |sw, _| {
            let _ = sw.set_park_slots(old_slots);
            if let Some(ms) = old_reminder {
                sw.set_park_reminder_ms(ms);
            }
        })
        .await;
        return Err(store_failed(e));
    }
    op.park = new.clone();
    drop(op);
    Ok(Json(park_settings(&st, &new).await?))
}

// ----------------------------------------------------------------------
// CDRs
// ----------------------------------------------------------------------

/// `{"cdrs":[…]}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cdrs {
    /// The records.
    pub cdrs: Vec<Cdr>,
}

fn cdr_of(c: tapir_store::StoredCdr) -> Option<Cdr> {
    let mut data = c.data;
    data.as_object_mut()?
        .insert("id".into(), serde_json::Value::String(c.id.to_string()));
    serde_json::from_value(data).ok()
}

/// Call detail records, newest first.
#[utoipa::path(get, path = "/v1/admin/cdr", tag = "admin",
    params(("limit" = Option<u32>, Query, description = "at most this many (1–1000, default 50)"),
           ("before" = Option<String>, Query, description = "only records older than this id (paging)"),
           ("address" = Option<String>, Query, description = "only records with this party address")),
    responses((status = 200, description = "records", body = Cdrs),
              (status = 400, description = "a bad parameter", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_cdrs(
    State(st): State<AppState>,
    _: AdminAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Cdrs>, ApiError> {
    for k in q.keys() {
        if !matches!(k.as_str(), "limit" | "before" | "address") {
            return Err(ApiError::param(format!("unknown parameter {k:?}")));
        }
    }
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::param(format!("limit={l:?} is not between 1 and 1000")))?,
    };
    let before = match q.get("before") {
        None => None,
        Some(b) => Some(
            b.parse::<u64>()
                .map_err(|_| ApiError::param(format!("before={b:?} is not a CDR id")))?,
        ),
    };
    let rows = st
        .store
        .cdrs(&CdrQuery {
            limit,
            before,
            address: q.get("address").cloned(),
        })
        .await
        .map_err(store_failed)?;
    Ok(Json(Cdrs {
        cdrs: rows.into_iter().filter_map(cdr_of).collect(),
    }))
}

/// One call detail record.
#[utoipa::path(get, path = "/v1/admin/cdr/{id}", tag = "admin",
    params(("id" = String, Path, description = "the record's id")),
    responses((status = 200, description = "the record", body = Cdr),
              (status = 404, description = "no such record", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_cdr(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Cdr>, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalparam",
            format!("there is no call detail record {id:?}"),
        )
    };
    let n = id.parse::<u64>().map_err(|_| missing())?;
    let row = st.store.cdr(n).await.map_err(store_failed)?;
    row.and_then(cdr_of).map(Json).ok_or_else(missing)
}

// ----------------------------------------------------------------------
// Live call quality
// ----------------------------------------------------------------------

/// The media quality so far of a call in progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallQuality {
    /// The call asked about (`call-N`).
    pub call: String,
    /// Every leg of the calls sharing its call detail record (the call and
    /// the parties it is connected with), in the shape of the CDR's
    /// `quality`.
    pub quality: Vec<crate::quality::LegQuality>,
}

/// The RTCP figures so far of a call in progress and of the calls it is
/// connected with (those of its CDR once it ends).
#[utoipa::path(get, path = "/v1/admin/calls/{call}/quality", tag = "admin",
    params(("call" = String, Path, description = "call id (`call-N`)")),
    responses((status = 200, description = "figures so far", body = CallQuality),
              (status = 404, description = "no call in progress with this id", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn call_quality(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(call): Path<String>,
) -> Result<Json<CallQuality>, ApiError> {
    let id = super::call_id(&call)?;
    let quality = st
        .cdr
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .live_quality(id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalcallhandle",
                format!("there is no call in progress {call:?}"),
            )
        })?;
    Ok(Json(CallQuality {
        call: id.to_string(),
        quality,
    }))
}
