//! The operator endpoints (`/v1/admin/*`): lines, apps, trunks, pickup
//! groups, park settings, call detail records and the live media quality
//! of a call.
//!
//! Every call needs the admin token (an app token gets `403 noprivilege`).
//! The handlers parse the request, call the [`Provisioning`] service (which
//! applies a write to the switch and the store together, undoing the one
//! when the other refuses, see [`crate::provisioning`]) and say its answer
//! in HTTP. Bad input is `400 invalparam` (or the switch's code) with a
//! sentence, and changes nothing.

use super::{ApiJson, AppState};
use crate::cdr::Cdr;
use crate::config::{AppEntry, LineEntry, ParkConfig, RemoteControl, TrunkEntry, TrunkTransport};
use crate::error::{ApiError, ErrorBody};
use crate::provisioning::{ProvisionError, Provisioning};
use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tapir_core::{AppPermission, LineKind, MediaMode, Outbound, Privilege};
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

fn store_failed(e: &StoreError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "operationfailed",
        format!("the store refused the change, nothing was changed: {e}"),
    )
}

fn read_failed(e: StoreError) -> ApiError {
    tracing::error!("store read failed: {e}");
    store_failed(&e)
}

/// A provisioning refusal as the API says it.
impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> ApiError {
        let message = e.to_string();
        match e {
            ProvisionError::NoLine(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "invallinehandle", message)
            }
            ProvisionError::NoApp(_) | ProvisionError::NoTrunk(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "invalparam", message)
            }
            ProvisionError::NoGroup(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "invalgroupid", message)
            }
            ProvisionError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "invalparam", m),
            ProvisionError::Invalid(m) => ApiError::param(m),
            ProvisionError::Refused(e) => ApiError::from(e),
            ProvisionError::Translate(e) => ApiError::from(e),
            ProvisionError::Store(e) => store_failed(&e),
            ProvisionError::Stopped => ApiError::unavailable(),
        }
    }
}

/// Bad input found while building a change, as the service takes it.
fn invalid(e: ApiError) -> ProvisionError {
    ProvisionError::Invalid(e.message)
}

fn prov(st: &AppState) -> &Provisioning {
    &st.provisioning
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
    /// Whose busy lamps the line's phone may watch (absent: every address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<String>>,
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
            watch: l.watch.clone(),
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

/// One busy lamp or presence subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSubscription {
    /// The watching phone (its digest user, its line's first address).
    pub watcher: String,
    /// The watched address (a line's address or a park slot).
    pub address: String,
    /// `dialog` (busy lamp) or `presence`.
    pub event: String,
    /// Seconds until it expires unless the phone refreshes it.
    pub expires_in: u64,
    /// Where its NOTIFYs go (`ip:port`).
    pub contact: String,
}

/// `{"subscriptions":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSubscriptions {
    /// Every live subscription, by address then watcher.
    pub subscriptions: Vec<AdminSubscription>,
}

/// Every live SUBSCRIBE of phones to busy lamps (`Event: dialog`) and
/// presence: who watches whom; `?address=` keeps the watchers of one
/// address, `?watcher=` the subscriptions of one phone.
#[utoipa::path(get, path = "/v1/admin/subscriptions", tag = "admin",
    params(("address" = Option<String>, Query, description = "only the watchers of this address"),
           ("watcher" = Option<String>, Query, description = "only this phone's subscriptions")),
    responses((status = 200, description = "every live subscription", body = AdminSubscriptions),
              (status = 400, description = "an unknown parameter", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_subscriptions(
    State(st): State<AppState>,
    _: AdminAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AdminSubscriptions>, ApiError> {
    for k in q.keys() {
        if !matches!(k.as_str(), "address" | "watcher") {
            return Err(ApiError::param(format!("unknown parameter {k:?}")));
        }
    }
    let (address, watcher) = (q.get("address"), q.get("watcher"));
    Ok(Json(AdminSubscriptions {
        subscriptions: st
            .subscriptions
            .list(std::time::Instant::now())
            .into_iter()
            .filter(|s| address.is_none_or(|a| *a == s.address))
            .filter(|s| watcher.is_none_or(|w| *w == s.watcher))
            .map(|s| AdminSubscription {
                watcher: s.watcher,
                address: s.address,
                event: s.package.to_string(),
                expires_in: s.expires_in,
                contact: s.contact.to_string(),
            })
            .collect(),
    }))
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
    /// Whose busy lamps the line's phone may watch: `["*"]` or addresses
    /// (every address when absent).
    pub watch: Option<Vec<String>>,
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
            watch: self.watch,
        })
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
        lines: prov(&st)
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
    let line = prov(&st)
        .line_of_address(&address)
        .ok_or(ProvisionError::NoLine(address))?;
    Ok(Json(AdminLine::from(&line.entry)))
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
    let entry = body.entry(address, None)?;
    let (line, generated) = prov(&st).create_line(entry).await?;
    let mut out = AdminLine::from(&line.entry);
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
    let path = address.clone();
    let entry = prov(&st)
        .replace_line(&address, move |old| {
            let first = match &body.address {
                Some(a) if a != &path && a != &old.address => {
                    return Err(ProvisionError::Invalid(format!(
                        "the body's address {a:?} is not the line's ({path:?})"
                    )));
                }
                Some(a) => a.clone(),
                None => old.address.clone(),
            };
            body.entry(first, old.password.clone()).map_err(invalid)
        })
        .await?;
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
    prov(&st).delete_line(&address).await?;
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
    /// The webhooks created with the app (with their secrets), only in the
    /// reply that created it; `/v1/admin/webhooks` lists them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<crate::webhooks::WebhookView>>,
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
            webhooks: None,
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
    /// Webhooks to register with a new app (as `POST /v1/admin/webhooks`
    /// takes them, without `app`); a replace refuses them (change them
    /// under `/v1/admin/webhooks`).
    pub webhooks: Option<Vec<crate::webhooks::WebhookBody>>,
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
                webhooks: Vec::new(),
            },
            self.token,
        ))
    }
}

/// Every app.
#[utoipa::path(get, path = "/v1/admin/apps", tag = "admin",
    responses((status = 200, description = "every app", body = AdminApps),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_apps(State(st): State<AppState>, _: AdminAuth) -> Json<AdminApps> {
    Json(AdminApps {
        apps: prov(&st).apps().iter().map(AdminApp::from).collect(),
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
    let app = prov(&st).app(&name).ok_or(ProvisionError::NoApp(name))?;
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
    let mut body = body;
    let hooks = body.webhooks.take().unwrap_or_default();
    if hooks.iter().any(|h| h.app.is_some()) {
        return Err(ApiError::param(
            "a webhook given with its app names no \"app\"",
        ));
    }
    // Bad webhooks refuse the whole request before the app exists.
    st.webhooks.check(&hooks).await?;
    let (entry, token) = body.entry(name)?;
    let (entry, token) = prov(&st).create_app(entry, token).await?;
    let mut out = AdminApp::from(&entry);
    out.token = Some(token);
    if !hooks.is_empty() {
        let mut views = Vec::new();
        for h in hooks {
            views.push(st.webhooks.create(&entry.name, h).await?);
        }
        out.webhooks = Some(views);
    }
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
    if body.webhooks.is_some() {
        return Err(ApiError::param(
            "an app's webhooks are changed under /v1/admin/webhooks, not with the app",
        ));
    }
    let (entry, token) = body.entry(name)?;
    let entry = prov(&st).replace_app(entry, token.as_deref()).await?;
    let mut out = AdminApp::from(&entry);
    out.token = token;
    Ok(Json(out))
}

/// Remove an app: it closes its lines, loses its calls' handles, its
/// pending completion requests and its webhooks; its token stops working.
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
    prov(&st).delete_app(&name).await?;
    st.webhooks.forget_app(&name);
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

/// Every trunk.
#[utoipa::path(get, path = "/v1/admin/trunks", tag = "admin",
    responses((status = 200, description = "every trunk", body = AdminTrunks),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_trunks(State(st): State<AppState>, _: AdminAuth) -> Json<AdminTrunks> {
    Json(AdminTrunks {
        trunks: prov(&st)
            .trunks()
            .await
            .iter()
            .map(AdminTrunk::from)
            .collect(),
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
    let trunks = prov(&st).trunks().await;
    let trunk = trunks
        .iter()
        .find(|t| t.name == name)
        .ok_or(ProvisionError::NoTrunk(name))?;
    Ok(Json(AdminTrunk::from(trunk)))
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
    let entry = prov(&st).create_trunk(body.entry(name, None)?).await?;
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
    let path = name.clone();
    let entry = prov(&st)
        .replace_trunk(&name, move |old| {
            body.entry(path, old.password.clone()).map_err(invalid)
        })
        .await?;
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
    prov(&st).delete_trunk(&name).await?;
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

/// Every pickup group.
#[utoipa::path(get, path = "/v1/admin/pickup-groups", tag = "admin",
    responses((status = 200, description = "every group", body = PickupGroups),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_groups(State(st): State<AppState>, _: AdminAuth) -> Json<PickupGroups> {
    Json(PickupGroups {
        groups: prov(&st)
            .groups()
            .into_iter()
            .map(|(name, members)| PickupGroup { name, members })
            .collect(),
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
    let members = prov(&st).set_group(&name, &body.members).await?;
    Ok(Json(PickupGroup { members, name }))
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
    prov(&st).dissolve_group(&name).await?;
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
    let parked = st
        .handle
        .with(move |sw, _| {
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
        .await
        .map_err(|_| ApiError::unavailable())?;
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
    let park = prov(&st).park().await;
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
    let new = prov(&st).set_park(&body.slots, body.reminder_ms).await?;
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
        .map_err(read_failed)?;
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
    let row = st.store.cdr(n).await.map_err(read_failed)?;
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
