//! Lines and addresses: list, open, close, address status, forwarding,
//! pickup, unpark.

use super::{ApiJson, AppState, AuthApp, LineView, exec, reply_response};
use crate::error::{ApiError, ErrorBody};
use crate::wire::CallObject;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tapir_core::{Command, ForwardRule, LineKind, MediaMode, PickupTarget, Privilege};
use utoipa::ToSchema;

/// A line an app may open (`lineGetDevCaps`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LineObject {
    /// Opaque id (`line-3`).
    pub id: String,
    /// Its first address.
    pub address: String,
    /// All its addresses.
    pub addresses: Vec<String>,
    /// `phone`, `routepoint` or `trunk`.
    #[schema(value_type = String)]
    pub kind: LineKind,
    /// Display name.
    pub name: Option<String>,
    /// Pickup group.
    pub pickup_group: Option<String>,
    /// Registration state of a phone: `registered` while at least one of its
    /// contacts has not expired, else `unregistered`; route points and
    /// trunks need none (`notapplicable`).
    pub registration: String,
    /// The phone's registered contacts (empty when unregistered).
    pub contacts: Vec<ContactObject>,
    /// The privileges this app may open it with.
    #[schema(value_type = Vec<String>)]
    pub privileges: Vec<Privilege>,
    /// The privileges this app has it open with; none while closed.
    #[schema(value_type = Option<Vec<String>>)]
    pub open: Option<Vec<Privilege>>,
}

/// One registered contact of a phone line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactObject {
    /// The Contact URI the phone registered.
    pub uri: String,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// The address the REGISTER came from.
    pub source: String,
    /// Seconds until the binding expires unless refreshed.
    pub expires_in: u64,
}

fn line_object(
    st: &AppState,
    l: &LineView,
    privileges: &[Privilege],
    open: Option<Vec<Privilege>>,
) -> LineObject {
    let now = std::time::Instant::now();
    let contacts: Vec<ContactObject> = match l.entry.kind {
        LineKind::Phone => l
            .entry
            .addresses()
            .iter()
            .flat_map(|a| st.registrations.contacts(a, now))
            .map(|b| ContactObject {
                uri: b.contact.clone(),
                transport: b.transport.token().to_ascii_lowercase(),
                source: b.source.to_string(),
                expires_in: b.remaining(now).as_secs(),
            })
            .collect(),
        LineKind::RoutePoint | LineKind::Trunk => Vec::new(),
    };
    LineObject {
        id: l.id.to_string(),
        address: l.entry.address.clone(),
        addresses: l.entry.addresses(),
        kind: l.entry.kind,
        name: l.entry.name.clone(),
        pickup_group: l.entry.pickup_group.clone(),
        registration: match l.entry.kind {
            LineKind::Phone if contacts.is_empty() => "unregistered".into(),
            LineKind::Phone => "registered".into(),
            LineKind::RoutePoint | LineKind::Trunk => "notapplicable".into(),
        },
        contacts,
        privileges: privileges.to_vec(),
        open,
    }
}

/// The lines this app may open.
#[utoipa::path(get, path = "/v1/lines", tag = "lines",
    responses((status = 200, description = "lines this app may open", body = Vec<LineObject>),
              (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_lines(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
) -> Result<Json<Vec<LineObject>>, ApiError> {
    let lines: Vec<LineView> = st
        .provisioning
        .lines()
        .into_iter()
        .filter(|l| app.entry.may_open(&l.entry.address))
        .collect();
    // How this app has each open: the switch's answer.
    let (id, ids) = (app.id, lines.iter().map(|l| l.id).collect::<Vec<_>>());
    let opened = st
        .handle
        .with(move |sw, _| {
            ids.into_iter()
                .map(|l| sw.opened_with(id, l))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(
        lines
            .iter()
            .zip(opened)
            .map(|(l, open)| line_object(&st, l, &app.entry.privileges, open))
            .collect(),
    ))
}

/// Body of `POST /v1/lines/{line}/open`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OpenLineBody {
    /// `owner` and/or `monitor` (default: `owner`, or what the app is
    /// allowed when that is less).
    #[schema(value_type = Vec<String>)]
    pub privileges: Vec<Privilege>,
    /// Media modes handled as owner (default: `interactivevoice`).
    #[schema(value_type = Vec<String>)]
    pub media_modes: Vec<MediaMode>,
}

fn find_line(st: &AppState, line: &str) -> Result<LineView, ApiError> {
    st.provisioning.line(line).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invallinehandle",
            format!("there is no line {line:?}"),
        )
    })
}

/// `lineOpen`: receive events for calls on the line, as owner and/or monitor.
#[utoipa::path(post, path = "/v1/lines/{line}/open", tag = "lines",
    params(("line" = String, Path, description = "line id (or its address)")),
    request_body = OpenLineBody,
    responses((status = 200, description = "the line, now open (`open` holds the privileges)", body = LineObject),
              (status = 403, description = "the app may not open this line so", body = ErrorBody),
              (status = 404, description = "unknown line", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open_line(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(line): Path<String>,
    ApiJson(body): ApiJson<OpenLineBody>,
) -> Result<Json<LineObject>, ApiError> {
    let l = find_line(&st, &line)?;
    // The switch refuses (`noprivilege`) a line not in the app's `lines`
    // and privileges beyond its `privileges`.
    let privileges = if !body.privileges.is_empty() {
        body.privileges
    } else if app.entry.privileges.contains(&Privilege::Owner) {
        vec![Privilege::Owner]
    } else {
        app.entry.privileges.clone()
    };
    if let Some(m) = body
        .media_modes
        .iter()
        .find(|m| !app.entry.media_modes.contains(m))
    {
        return Err(ApiError::no_privilege(format!(
            "app {} may not handle the media mode {m:?}",
            app.entry.name
        )));
    }
    let (id, line_id, modes) = (app.id, l.id, body.media_modes);
    let open = st
        .handle
        .with(move |sw, _| {
            sw.open_line(id, line_id, &privileges, &modes)
                .map(|()| sw.opened_with(id, line_id))
        })
        .await
        .map_err(|_| ApiError::unavailable())??;
    Ok(Json(line_object(&st, &l, &app.entry.privileges, open)))
}

/// `lineClose`: stop seeing the line; handles to its calls become invalid.
#[utoipa::path(post, path = "/v1/lines/{line}/close", tag = "lines",
    params(("line" = String, Path, description = "line id (or its address)")),
    responses((status = 204, description = "closed"),
              (status = 404, description = "unknown line, or not open by this app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close_line(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(line): Path<String>,
) -> Result<StatusCode, ApiError> {
    let l = find_line(&st, &line)?;
    let (id, line_id) = (app.id, l.id);
    st.handle
        .with(move |sw, now| sw.close_line(now, id, line_id))
        .await
        .map_err(|_| ApiError::unavailable())??;
    Ok(StatusCode::NO_CONTENT)
}

/// Forwarding of an address.
#[derive(Debug, Serialize, ToSchema)]
pub struct Forwarding {
    /// Rules in force: `{"mode","to","caller"?}`.
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<ForwardRule>,
    /// Rings before no-answer forwarding.
    pub no_answer_rings: u32,
}

/// A live call at an address.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressCall {
    /// Call id.
    pub id: String,
    /// Its state.
    #[schema(value_type = String)]
    pub state: tapir_core::CallStateKind,
}

/// `lineGetAddressStatus`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressStatus {
    /// The address.
    pub address: String,
    /// Its line.
    pub line: String,
    /// Forwarding in force.
    pub forwarding: Forwarding,
    /// Live calls at the address.
    pub calls: Vec<AddressCall>,
}

fn check_address(st: &AppState, app: &super::AppCtx, address: &str) -> Result<LineView, ApiError> {
    let l = st.provisioning.line_of_address(address).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invaladdress",
            format!("there is no address {address:?}"),
        )
    })?;
    if !app.entry.may_open(&l.entry.address) {
        return Err(ApiError::no_privilege(format!(
            "app {} has no access to address {address}",
            app.entry.name
        )));
    }
    Ok(l)
}

async fn status_of(
    st: &AppState,
    l: &LineView,
    address: String,
) -> Result<AddressStatus, ApiError> {
    let a = address.clone();
    let (fwd, calls) = st
        .handle
        .with(move |sw, _| {
            let calls: Vec<AddressCall> = sw
                .calls_at(&a)
                .into_iter()
                .filter_map(|c| {
                    sw.call_state(c).map(|state| AddressCall {
                        id: c.to_string(),
                        state,
                    })
                })
                .collect();
            (sw.forwarding(&a), calls)
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    let (rules, no_answer_rings) = fwd.unwrap_or_default();
    Ok(AddressStatus {
        address,
        line: l.id.to_string(),
        forwarding: Forwarding {
            rules,
            no_answer_rings,
        },
        calls,
    })
}

/// `lineGetAddressStatus`: forwarding and calls of an address.
#[utoipa::path(get, path = "/v1/addresses/{address}", tag = "lines",
    params(("address" = String, Path, description = "directory number")),
    responses((status = 200, description = "status", body = AddressStatus),
              (status = 403, description = "not one of this app's lines", body = ErrorBody),
              (status = 404, description = "unknown address", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn address_status(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(address): Path<String>,
) -> Result<Json<AddressStatus>, ApiError> {
    let l = check_address(&st, &app, &address)?;
    Ok(Json(status_of(&st, &l, address).await?))
}

/// Body of `PUT /v1/addresses/{address}/forwarding`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardingBody {
    /// Rules `{"mode","to","caller"?}`; an empty list cancels forwarding.
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<ForwardRule>,
    /// Rings before no-answer forwarding.
    pub no_answer_rings: Option<u32>,
}

/// `lineForward`: set (or with no rules, cancel) an address's forwarding.
#[utoipa::path(put, path = "/v1/addresses/{address}/forwarding", tag = "lines",
    params(("address" = String, Path, description = "directory number")),
    request_body = ForwardingBody,
    responses((status = 200, description = "the address's status", body = AddressStatus),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_forwarding(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(address): Path<String>,
    ApiJson(body): ApiJson<ForwardingBody>,
) -> Result<Response, ApiError> {
    let l = check_address(&st, &app, &address)?;
    let done = exec(
        &st,
        &app,
        Command::Forward(address.clone(), body.rules, body.no_answer_rings),
        None,
    )
    .await?;
    let status = Json(status_of(&st, &l, address).await?).into_response();
    Ok(super::with_request(status, done.request))
}

/// The forwarding of every address of a line (`PUT /v1/lines/{line}/forwarding`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LineForwarding {
    /// The line id.
    pub line: String,
    /// Each address's status, forwarding now in force.
    pub addresses: Vec<AddressStatus>,
}

/// `lineForward` with `bAllAddresses` TRUE: set (or with no rules, cancel)
/// the forwarding of every address of the line at once. Every address takes
/// the rules or none does.
#[utoipa::path(put, path = "/v1/lines/{line}/forwarding", tag = "lines",
    params(("line" = String, Path, description = "line id (or its address)")),
    request_body = ForwardingBody,
    responses((status = 200, description = "every address's status", body = LineForwarding),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_line_forwarding(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(line): Path<String>,
    ApiJson(body): ApiJson<ForwardingBody>,
) -> Result<Response, ApiError> {
    let l = find_line(&st, &line)?;
    if !app.entry.may_open(&l.entry.address) {
        return Err(ApiError::no_privilege(format!(
            "app {} has no access to line {line}",
            app.entry.name
        )));
    }
    let done = exec(
        &st,
        &app,
        Command::ForwardLine(l.id, body.rules, body.no_answer_rings),
        None,
    )
    .await?;
    let mut addresses = Vec::new();
    for a in l.entry.addresses() {
        addresses.push(status_of(&st, &l, a).await?);
    }
    let body = Json(LineForwarding {
        line: l.id.to_string(),
        addresses,
    })
    .into_response();
    Ok(super::with_request(body, done.request))
}

/// Body of `POST /v1/addresses/{address}/pickup`: `target`, `group`, both
/// (the target must be in the group), or neither (`{}`: the call waiting at
/// this address).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PickupBody {
    /// The ringing address to pick up from.
    pub target: Option<String>,
    /// A pickup group.
    pub group: Option<String>,
}

/// `linePickup`: take a call ringing elsewhere to this address, or with
/// neither `target` nor `group` the call waiting at this address while it
/// has another call (which goes on hold).
#[utoipa::path(post, path = "/v1/addresses/{address}/pickup", tag = "lines",
    params(("address" = String, Path, description = "the picking address")),
    request_body = PickupBody,
    responses((status = 200, description = "the new call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pickup(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(address): Path<String>,
    ApiJson(body): ApiJson<PickupBody>,
) -> Result<Response, ApiError> {
    let target = match (body.target, body.group) {
        (Some(t), None) => PickupTarget::Address(t),
        (None, Some(g)) => PickupTarget::Group(g),
        (Some(t), Some(g)) => PickupTarget::AddressInGroup(t, g),
        (None, None) => PickupTarget::CallWaiting,
    };
    let done = exec(&st, &app, Command::Pickup(address, target), None).await?;
    Ok(reply_response(done, None, StatusCode::OK))
}

/// Body of `POST /v1/addresses/{address}/unpark`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnparkBody {
    /// The park slot.
    pub from: String,
}

/// `lineUnpark`: retrieve a parked call to this address.
#[utoipa::path(post, path = "/v1/addresses/{address}/unpark", tag = "lines",
    params(("address" = String, Path, description = "the retrieving address")),
    request_body = UnparkBody,
    responses((status = 200, description = "the new call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unpark(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(address): Path<String>,
    ApiJson(body): ApiJson<UnparkBody>,
) -> Result<Response, ApiError> {
    let done = exec(&st, &app, Command::Unpark(address, body.from), None).await?;
    Ok(reply_response(done, None, StatusCode::OK))
}
