//! The HTTP API of `shared/API.md` on axum: shared state, bearer-token
//! authentication, the JSON body extractor, the router with its OpenAPI
//! document (utoipa), and the operational endpoints (`/healthz`, `/metrics`).
//!
//! Handlers only translate between HTTP and the switch: every telephony rule
//! is the core's.

mod admin;
mod calls;
mod console;
mod events;
mod limits;
mod lines;
mod listener;
mod media;
mod recordings;
mod tapi_media;
mod translate;
mod webhooks;

use crate::actor::SwitchHandle;
use crate::error::{ApiError, ErrorBody, ErrorDetail, REQUEST_HEADER};
use crate::wire::{self, CallObject};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tapir_core::{AppPermission, CallId, CallInfo, Command, Reply, RequestId};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::provisioning::{AppCtx, LineView};
pub use listener::{BoundedListener, BoundedStream};
pub use media::{
    LATENCY_BUCKETS as MEDIA_STREAM_LATENCY_BUCKETS, describe_metrics as describe_media_metrics,
};

/// What every handler shares. It holds no copy of the switch's state:
/// handlers read that through the loop ([`SwitchHandle::with`]), and the
/// configuration from [`Shared::provisioning`].
#[derive(Debug)]
pub struct Shared {
    /// The switch.
    pub handle: SwitchHandle,
    /// The prompts route point calls play.
    pub prompts: tapir_media::prompt::PromptCatalog,
    /// Lines, apps (by token), trunks, park, locations and cards: read
    /// here, and changed only through it.
    pub provisioning: Arc<crate::provisioning::Provisioning>,
    /// The Prometheus exporter, when this process could install it.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Phones' registrations, as the SIP registrar last published them.
    pub registrations: tapir_b2bua::directory::RegistrationTable,
    /// Busy lamp and presence subscriptions, as the B2BUA last published them.
    pub subscriptions: tapir_b2bua::subscription::SubscriptionTable,
    /// The store, read for call detail records (writes go through
    /// [`Shared::provisioning`] and the journal).
    pub store: tapir_store::Store,
    /// Open call detail records.
    pub cdr: Arc<std::sync::Mutex<crate::cdr::Tracker>>,
    /// Apps' webhooks and their delivery.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// This node's cluster membership, with `[cluster]`.
    pub cluster: Option<Arc<crate::cluster::Membership>>,
    /// The media engine, when SIP runs (apps' media streams tap it).
    pub media: Option<Arc<tapir_media::MediaEngine>>,
    /// Call recordings (`/v1/calls/{call}/record`, `/v1/recordings`).
    pub recordings: Arc<crate::recording::Recordings>,
}

/// The state of the router.
pub type AppState = Arc<Shared>;

/// SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The bearer token of a request: the `Authorization` header, or — on a
/// WebSocket upgrade only, since browsers cannot set headers there (the web
/// console's event stream) — the percent-encoded `access_token` query
/// parameter. Tokens are never logged.
fn bearer(parts: &Parts) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim().into());
    }
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    let axum::extract::Query(mut q) =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri).ok()?;
    q.remove("access_token").map(Into::into)
}

/// The authenticated app of a request: `401` without a valid app token.
#[derive(Debug)]
pub struct AuthApp(pub Arc<AppCtx>);

impl FromRequestParts<AppState> for AuthApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        st.provisioning
            .app_by_hash(&token_hash(&token))
            .map(AuthApp)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Any valid token: an app's or the operator's.
#[derive(Debug)]
pub enum AnyToken {
    /// An app.
    App(Arc<AppCtx>),
    /// The operator.
    Admin,
}

impl AnyToken {
    /// `403 noprivilege` unless this is the operator or an app whose
    /// configuration grants `permission`; `what` names the refused
    /// operation ("change the locations").
    pub fn require(&self, permission: AppPermission, what: &str) -> Result<(), ApiError> {
        match self {
            AnyToken::Admin => Ok(()),
            AnyToken::App(a) if a.entry.may(permission) => Ok(()),
            AnyToken::App(a) => Err(ApiError::no_privilege(format!(
                "application {} may not {what}: its configuration does not grant the permission '{}'",
                a.entry.name,
                permission.as_str()
            ))),
        }
    }
}

impl FromRequestParts<AppState> for AnyToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let h = token_hash(&token);
        if st.provisioning.is_admin(&h) {
            return Ok(AnyToken::Admin);
        }
        st.provisioning
            .app_by_hash(&h)
            .map(AnyToken::App)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A JSON body; malformed JSON, missing or unknown fields, and strings too
/// long for their field or holding control characters ([`limits`]) are
/// `400 invalparam` in the API's error shape. An empty body reads as `{}`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, st)
            .await
            .map_err(|e| ApiError::param(format!("the body could not be read: {e}")))?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(slice) {
            limits::check_body(&value)?;
        }
        serde_json::from_slice(slice).map(ApiJson).map_err(|e| {
            let message = format!("the body is not valid: {e}");
            match mode_error(&e.to_string()) {
                Some(code) => ApiError::new(StatusCode::BAD_REQUEST, code, message),
                None => ApiError::param(message),
            }
        })
    }
}

/// The TAPI error for a body that names a mode which does not exist: a
/// transfer, completion, park, forward or media mode answers its own
/// `inval…mode` code, not `invalparam`. The mode is known by the names the
/// parser expected instead (serde's "unknown variant `x`, expected one of
/// `a`, `b`").
pub fn mode_error(message: &str) -> Option<&'static str> {
    let (_, rest) = message.split_once("unknown variant")?;
    let (_, expected) = rest.split_once("expected")?;
    let has = |name: &str| expected.contains(&format!("`{name}`"));
    if has("interactivevoice") {
        Some("invalmediamode")
    } else if has("campon") {
        Some("invalcallcomplmode")
    } else if has("nondirected") {
        Some("invalparkmode")
    } else if has("unconditional") {
        Some("invalforwardmode")
    } else if has("transfer") && has("conference") {
        Some("invaltransfermode")
    } else {
        None
    }
}

/// Parse a call id of a path; unknown shapes are `404 invalcallhandle`.
pub fn call_id(text: &str) -> Result<CallId, ApiError> {
    wire::parse_call(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalcallhandle",
            format!("{text:?} is not a call id"),
        )
    })
}

/// Calls a reply names.
fn reply_calls(reply: &Reply) -> Vec<CallId> {
    match reply {
        Reply::Call { call } => vec![*call],
        Reply::Consult { consult_call } => vec![*consult_call],
        Reply::Conference {
            conference_call,
            consult_call,
        } => vec![*conference_call, *consult_call],
        Reply::ConferenceCall { conference_call } => vec![*conference_call],
        _ => Vec::new(),
    }
}

/// What a command produced: the switch's reply, the call objects fetched
/// in the same step, and the request id (the `reply` event's).
#[derive(Debug)]
pub struct Executed {
    /// The reply.
    pub reply: Reply,
    /// Call objects of the focus call and of the calls the reply names.
    pub infos: Vec<CallInfo>,
    /// The switch's request id.
    pub request: RequestId,
}

impl Executed {
    /// A bodiless success naming the request.
    pub fn no_content(&self) -> Response {
        with_request((StatusCode::NO_CONTENT).into_response(), self.request)
    }
}

/// Add the request-id header to a response.
pub fn with_request(mut resp: Response, request: RequestId) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&request.to_string()) {
        resp.headers_mut().insert(REQUEST_HEADER, v);
    }
    resp
}

/// Run one app command on the switch and fetch, in the same step, the call
/// objects of `focus` and of the calls the reply names. The command names
/// itself in the call detail records and the metrics ([`Command::label`]).
pub async fn exec(
    st: &AppState,
    app: &AppCtx,
    cmd: Command,
    focus: Option<CallId>,
) -> Result<Executed, ApiError> {
    let id = app.id;
    let op = cmd.label();
    // Forwarding a command sets is persisted: one address's, or every
    // address of a line's.
    let (forwarded_address, forwarded_line) = match &cmd {
        Command::Forward(address, ..) => (Some(address.clone()), None),
        Command::ForwardLine(line, ..) => (None, Some(*line)),
        _ => (None, None),
    };
    let cdr = st.cdr.clone();
    let app_name = app.entry.name.clone();
    let (request, result, infos, forwarding) = st
        .handle
        .with(move |sw, now| {
            let (request, r) = sw.request(now, id, cmd);
            let mut infos = Vec::new();
            let outcome = match &r {
                Ok(_) => "ok",
                Err(e) => e.code.as_str(),
            };
            let named = r.as_ref().map(reply_calls).unwrap_or_default();
            {
                // Into the call detail record, before the step's observer
                // may close it.
                let mut t = cdr.lock().unwrap_or_else(|e| e.into_inner());
                for c in focus.into_iter().chain(named.iter().copied()) {
                    t.operation(c, op, Some(&app_name), outcome, now, r.is_ok());
                }
            }
            if r.is_ok() {
                for c in focus.into_iter().chain(named) {
                    if let Ok(i) = sw.call_info(id, c) {
                        infos.push(i);
                    }
                }
            }
            let forwarding: Vec<_> = if r.is_ok() {
                forwarded_address
                    .into_iter()
                    .chain(
                        forwarded_line
                            .and_then(|l| sw.line_config(l))
                            .map(|c| c.addresses)
                            .unwrap_or_default(),
                    )
                    .collect()
            } else {
                Vec::new()
            }
            .into_iter()
            .filter_map(|a| sw.forwarding(&a).map(|f| (a, f)))
            .collect();
            (request, r, infos, forwarding)
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    for (address, (rules, rings)) in forwarding {
        st.provisioning
            .save_forwarding(&address, &rules, rings)
            .await?;
    }
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    metrics::counter!("tapir_operations_total", "op" => op, "result" => outcome).increment(1);
    match result {
        Ok(reply) => Ok(Executed {
            reply,
            infos,
            request,
        }),
        Err(e) => Err(ApiError::from(e).with_request(request)),
    }
}

fn objects(infos: &[CallInfo], ids: &[CallId]) -> Vec<CallObject> {
    ids.iter()
        .filter_map(|c| infos.iter().find(|i| i.id == *c))
        .map(CallObject::from)
        .collect()
}

/// The response of a command: the focus call after a plain success, the new
/// call for a reply naming one call, and the reply's data otherwise.
pub fn reply_response(done: Executed, focus: Option<CallId>, status: StatusCode) -> Response {
    let request = done.request;
    with_request(reply_body(done.reply, &done.infos, focus, status), request)
}

fn reply_body(
    reply: Reply,
    infos: &[CallInfo],
    focus: Option<CallId>,
    status: StatusCode,
) -> Response {
    use serde_json::json;
    let body = match reply {
        Reply::Done => {
            return match focus.and_then(|f| infos.iter().find(|i| i.id == f)) {
                Some(i) => (status, Json(CallObject::from(i))).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            };
        }
        Reply::Call { call } => {
            return match infos.iter().find(|i| i.id == call) {
                Some(i) => (status, Json(CallObject::from(i))).into_response(),
                None => (status, Json(json!({ "id": call.to_string() }))).into_response(),
            };
        }
        Reply::Consult { consult_call } => json!({
            "consult_call": consult_call.to_string(),
            "calls": objects(infos, &[consult_call]),
        }),
        Reply::Conference {
            conference_call,
            consult_call,
        } => json!({
            "conference_call": conference_call.to_string(),
            "consult_call": consult_call.to_string(),
            "calls": objects(infos, &[conference_call, consult_call]),
        }),
        Reply::ConferenceCall { conference_call } => json!({
            "conference_call": conference_call.to_string(),
            "calls": objects(infos, &[conference_call]),
        }),
        Reply::Parked { parked_at } => json!({ "parked_at": parked_at }),
        Reply::Completion { completion_id } => {
            json!({ "completion_id": completion_id.to_string() })
        }
        Reply::Related { calls } => json!({
            "calls": calls.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    };
    (status, Json(body)).into_response()
}

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Documents the `tapir-request` header on every response of a command
/// (the operations under `/v1/calls`, `/v1/addresses` and `/v1/completions`
/// that reach the switch as a request).
struct RequestHeaderAddon;

impl Modify for RequestHeaderAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let commands = path.starts_with("/v1/calls")
                || path.starts_with("/v1/completions")
                || (path.starts_with("/v1/addresses/") && path.matches('/').count() == 4);
            if !commands {
                continue;
            }
            let ops = [&mut item.post, &mut item.put, &mut item.delete];
            for op in ops.into_iter().flatten() {
                for resp in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = resp {
                        r.headers.insert(
                            REQUEST_HEADER.to_string(),
                            HeaderBuilder::new()
                                .schema(ObjectBuilder::new().schema_type(Type::String))
                                .description(Some(
                                    "The switch request (`req-N`); its `reply` event carries the same id.",
                                ))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tapir",
        description = "Telephony call control: TAPI session operations over HTTP + WebSocket."
    ),
    modifiers(&SecurityAddon),
    paths(openapi_json),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "lines", description = "Lines and addresses"),
        (name = "calls", description = "Call control"),
        (name = "translate", description = "Address translation"),
        (name = "events", description = "The event stream"),
        (name = "media", description = "Call audio for applications"),
        (name = "webhooks", description = "Events POSTed to an app's endpoints"),
        (name = "admin", description = "Operator endpoints (admin token)"),
        (name = "ops", description = "Health, metrics, this document")
    )
)]
struct ApiDoc;

/// The OpenAPI document of every path.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    let mut api = api_routes().into_openapi();
    RequestHeaderAddon.modify(&mut api);
    api
}

/// The router of the whole API and its OpenAPI document.
pub fn router(st: AppState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, mut api) = api_routes().split_for_parts();
    RequestHeaderAddon.modify(&mut api);
    let doc: Arc<str> = Arc::from(api.to_json().unwrap_or_else(|_| "{}".into()));
    let router = router
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .merge(console::routes())
        .route("/v1/admin", any(admin_placeholder))
        .route("/v1/admin/{*rest}", any(admin_placeholder))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(track_requests))
        .with_state(st);
    (router, api)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(lines::list_lines))
        .routes(routes!(lines::open_line))
        .routes(routes!(lines::close_line))
        .routes(routes!(lines::address_status))
        .routes(routes!(lines::set_forwarding))
        .routes(routes!(lines::set_line_forwarding))
        .routes(routes!(lines::pickup))
        .routes(routes!(lines::unpark))
        .routes(routes!(calls::make_call, calls::list_calls))
        .routes(routes!(calls::get_call, calls::deallocate))
        .routes(routes!(calls::answer))
        .routes(routes!(calls::accept))
        .routes(routes!(calls::dial))
        .routes(routes!(calls::drop_call))
        .routes(routes!(calls::hold))
        .routes(routes!(calls::unhold))
        .routes(routes!(calls::swap_hold))
        .routes(routes!(calls::blind_transfer))
        .routes(routes!(calls::setup_transfer))
        .routes(routes!(calls::complete_transfer))
        .routes(routes!(calls::finish))
        .routes(routes!(calls::setup_conference))
        .routes(routes!(calls::prepare_add))
        .routes(routes!(calls::add))
        .routes(routes!(calls::remove_from_conference))
        .routes(routes!(calls::related))
        .routes(routes!(calls::redirect))
        .routes(routes!(calls::park))
        .routes(routes!(calls::complete))
        .routes(routes!(calls::uncomplete))
        .routes(routes!(calls::secure))
        .routes(routes!(calls::handoff))
        .routes(routes!(calls::media_mode))
        .routes(routes!(calls::digits))
        .routes(routes!(calls::privilege))
        .routes(routes!(calls::play))
        .routes(routes!(calls::stop_media))
        .routes(routes!(tapi_media::gather))
        .routes(routes!(tapi_media::tone))
        .routes(routes!(tapi_media::monitor))
        .routes(routes!(translate::translate))
        .routes(routes!(translate::get_locations, translate::put_locations))
        .routes(routes!(translate::get_cards, translate::put_cards))
        .routes(routes!(events::events))
        .routes(routes!(media::media))
        .routes(routes!(recordings::record))
        .routes(routes!(recordings::list_recordings))
        .routes(routes!(
            recordings::get_recording,
            recordings::delete_recording
        ))
        .routes(routes!(recordings::recording_audio))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::put_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(
            webhooks::admin_list_webhooks,
            webhooks::admin_create_webhook
        ))
        .routes(routes!(
            webhooks::admin_get_webhook,
            webhooks::admin_put_webhook,
            webhooks::admin_delete_webhook
        ))
        .routes(routes!(admin::list_lines, admin::create_line))
        .routes(routes!(admin::list_subscriptions))
        .routes(routes!(
            admin::get_line,
            admin::put_line,
            admin::delete_line
        ))
        .routes(routes!(admin::list_apps, admin::create_app))
        .routes(routes!(admin::get_app, admin::put_app, admin::delete_app))
        .routes(routes!(admin::list_trunks, admin::create_trunk))
        .routes(routes!(
            admin::get_trunk,
            admin::put_trunk,
            admin::delete_trunk
        ))
        .routes(routes!(admin::list_groups))
        .routes(routes!(admin::put_group, admin::delete_group))
        .routes(routes!(admin::get_park, admin::put_park))
        .routes(routes!(admin::list_cdrs))
        .routes(routes!(admin::get_cdr))
        .routes(routes!(admin::call_quality))
        .routes(routes!(healthz))
        .routes(routes!(metrics_text))
}

/// Liveness: `{"status":"ok"}` while the switch task answers; a cluster
/// member adds `"cluster": {"node", "serving", "lines"}` (the lines whose
/// lease it holds, and whether its lease fence lets it serve them).
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "the switch answers"),
              (status = 503, description = "the switch task has stopped", body = ErrorBody)))]
async fn healthz(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    st.handle
        .with(|_, _| ())
        .await
        .map_err(|_| ApiError::unavailable())?;
    let Some(cluster) = &st.cluster else {
        return Ok(Json(serde_json::json!({"status": "ok"})));
    };
    let serving = cluster.serving();
    Ok(Json(serde_json::json!({
        "status": "ok",
        "cluster": {
            "node": cluster.node().as_str(),
            "serving": serving.may_serve,
            "lines": serving.lines.keys().collect::<Vec<_>>(),
        }
    })))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics_text(State(st): State<AppState>) -> Response {
    if let Ok((calls, (bridges, legs, parked, completions, timers))) = st
        .handle
        .with(|sw, _| (sw.all_calls().len(), sw.resources_in_use()))
        .await
    {
        metrics::gauge!("tapir_calls").set(calls as f64);
        metrics::gauge!("tapir_bridges").set(bridges as f64);
        metrics::gauge!("tapir_legs").set(legs as f64);
        metrics::gauge!("tapir_parked_calls").set(parked as f64);
        metrics::gauge!("tapir_pending_completions").set(completions as f64);
        metrics::gauge!("tapir_timers").set(timers as f64);
    }
    st.webhooks.export_metrics();
    if let Some(engine) = &st.media {
        metrics::gauge!("tapir_media_streams").set(engine.stream_count() as f64);
    }
    export_heap_metrics();
    metrics::gauge!("tapir_registrations")
        .set(st.registrations.registered_count(std::time::Instant::now()) as f64);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The heap as jemalloc (the `tapir` binary's allocator) counts it: bytes
/// the program holds, and bytes resident for the allocator (held, cached and
/// its own). Both are jemalloc's own counts, refreshed at each scrape; in a
/// program on another allocator they are jemalloc's share only.
fn export_heap_metrics() {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return;
    }
    if let Ok(allocated) = stats::allocated::read() {
        metrics::gauge!("tapir_heap_allocated_bytes").set(allocated as f64);
    }
    if let Ok(resident) = stats::resident::read() {
        metrics::gauge!("tapir_heap_resident_bytes").set(resident as f64);
    }
}

/// This document (OpenAPI 3.1, generated from the code).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
#[allow(dead_code)] // Documents the route served by `router`.
async fn openapi_json() -> StatusCode {
    StatusCode::OK
}

/// Counts requests by route and status (`tapir_http_requests_total`) and
/// times them (`tapir_http_request_seconds`).
async fn track_requests(req: Request, next: axum::middleware::Next) -> Response {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!("tapir_http_request_seconds", "method" => method.clone(), "path" => path.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("tapir_http_requests_total", "method" => method, "path" => path, "status" => status)
        .increment(1);
    resp
}

/// Paths under `/v1/admin` that name no operator endpoint: 404 for the
/// operator, 403 for an app (it may call none of them).
async fn admin_placeholder(token: AnyToken) -> ApiError {
    match token {
        AnyToken::Admin => ApiError::new(
            StatusCode::NOT_FOUND,
            "operationunavail",
            "there is no such operator endpoint",
        ),
        AnyToken::App(_) => ApiError::no_privilege("only the admin token may call /v1/admin"),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "operationunavail",
        "there is no such endpoint",
    )
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_header_wins_and_the_query_token_is_for_websockets_only() {
        let p = parts("/v1/calls", &[("authorization", "Bearer  tok-1 ")]);
        assert_eq!(bearer(&p).as_deref(), Some("tok-1"));
        let p = parts("/v1/calls", &[("authorization", "Basic dTpw")]);
        assert_eq!(bearer(&p), None);
        // A plain request does not take its token from the URL.
        let p = parts("/v1/calls?access_token=tok-1", &[]);
        assert_eq!(bearer(&p), None);
        let ws = [("upgrade", "WebSocket"), ("connection", "upgrade")];
        let p = parts("/v1/events?since=3&access_token=tok-1", &ws);
        assert_eq!(bearer(&p).as_deref(), Some("tok-1"));
        // Percent-encoded as a browser's encodeURIComponent writes it.
        let p = parts("/v1/events?access_token=a%2Bb%26c%3D%20d&since=0", &ws);
        assert_eq!(bearer(&p).as_deref(), Some("a+b&c= d"));
        let p = parts("/v1/events?since=0", &ws);
        assert_eq!(bearer(&p), None);
    }
}
