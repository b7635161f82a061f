//! Calls: make, list, get, and every TAPI call operation.

use super::{ApiJson, AppState, AuthApp, call_id, exec, reply_response};
use crate::error::{ApiError, ErrorBody};
use crate::wire::{self, CallObject};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tapir_core::{CallId, Command};
use tapir_core::{CompletionMode, HandoffTarget, MediaMode, ParkMode, Privilege, TransferMode};
use utoipa::ToSchema;

/// Body of `POST /v1/calls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeCallBody {
    /// The calling address.
    pub from: String,
    /// Dialable or canonical (`+1 (425) 555-1212`) destination; none for dial tone.
    #[serde(default)]
    pub to: Option<String>,
    /// Location to translate a canonical `to` from (the current one if absent).
    #[serde(default)]
    pub location: Option<String>,
}

/// Strip what a dialable string carries for a modem (tone/pulse, pauses,
/// waits) and keep what the switch routes on.
fn routable(dialable: &str) -> String {
    dialable
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
        .collect()
}

/// `lineMakeCall`: a call from an address to a destination (or dial tone).
#[utoipa::path(post, path = "/v1/calls", tag = "calls",
    request_body = MakeCallBody,
    responses((status = 201, description = "the new call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn make_call(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    ApiJson(body): ApiJson<MakeCallBody>,
) -> Result<Response, ApiError> {
    let to = match body.to {
        Some(to) if to.trim_start().starts_with('+') || body.location.is_some() => {
            let caps = st.provisioning.translate();
            let out = caps.translate_address(
                &to,
                body.location.as_deref(),
                None,
                tapir_translate::TranslateOptions::NONE,
            )?;
            Some(routable(&out.dialable))
        }
        other => other,
    };
    let cmd = Command::MakeCall {
        from: body.from,
        to,
    };
    let done = exec(&st, &app, cmd, None).await?;
    Ok(reply_response(done, None, StatusCode::CREATED))
}

/// `GET /v1/calls`: the snapshot to resync from.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallList {
    /// The last event `seq` of this app the snapshot is consistent with:
    /// reconnect the event stream with `since` = this.
    pub seq: u64,
    /// Every call this app has a handle to, oldest first.
    pub calls: Vec<CallObject>,
}

/// Every call this app has a handle to, with the event `seq` it matches.
#[utoipa::path(get, path = "/v1/calls", tag = "calls",
    responses((status = 200, description = "the calls", body = CallList),
              (status = 401, description = "no valid token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_calls(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
) -> Result<Json<CallList>, ApiError> {
    let id = app.id;
    let journal = st.handle.journal().clone();
    let (seq, infos) = st
        .handle
        .with(move |sw, _| {
            let infos: Vec<_> = sw
                .calls_of(id)
                .into_iter()
                .filter_map(|c| sw.call_info(id, c).ok())
                .collect();
            (journal.last_seq(id), infos)
        })
        .await
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(CallList {
        seq,
        calls: infos.iter().map(CallObject::from).collect(),
    }))
}

/// `lineGetCallInfo` / `lineGetCallStatus`.
#[utoipa::path(get, path = "/v1/calls/{call}", tag = "calls",
    params(("call" = String, Path, description = "call id")),
    responses((status = 200, description = "the call", body = CallObject),
              (status = 404, description = "no such call for this app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_call(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
) -> Result<Json<CallObject>, ApiError> {
    let call = call_id(&call)?;
    let id = app.id;
    let info = st
        .handle
        .with(move |sw, _| sw.call_info(id, call))
        .await
        .map_err(|_| ApiError::unavailable())??;
    Ok(Json(CallObject::from(&info)))
}

/// `lineDeallocateCall`: release this app's handle to the call.
#[utoipa::path(delete, path = "/v1/calls/{call}", tag = "calls",
    params(("call" = String, Path, description = "call id")),
    responses((status = 204, description = "released"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deallocate(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let done = exec(&st, &app, Command::Deallocate(call), None).await?;
    Ok(done.no_content())
}

async fn run(
    st: &AppState,
    app: &super::AppCtx,
    call: CallId,
    cmd: Command,
) -> Result<Response, ApiError> {
    let done = exec(st, app, cmd, Some(call)).await?;
    Ok(reply_response(done, Some(call), StatusCode::OK))
}

/// Operations on one call that take no body and answer with the call.
macro_rules! plain_op {
    ($(#[$doc:meta])* $name:ident, $path:tt, $variant:ident, $resp:tt, $what:tt) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "calls",
            params(("call" = String, Path, description = "call id")),
            responses((status = 200, description = $what, body = $resp),
                      (status = "4XX", description = "TAPI error", body = ErrorBody)),
            security(("bearer" = [])))]
        pub async fn $name(
            State(st): State<AppState>,
            AuthApp(app): AuthApp,
            Path(call): Path<String>,
        ) -> Result<Response, ApiError> {
            let call = call_id(&call)?;
            run(&st, &app, call, Command::$variant(call)).await
        }
    };
}

plain_op!(
    /// `lineAnswer`.
    answer, "/v1/calls/{call}/answer", Answer, CallObject, "the call"
);
plain_op!(
    /// `lineAccept`: take responsibility for an offered call; it keeps ringing.
    accept, "/v1/calls/{call}/accept", Accept, CallObject, "the call"
);
plain_op!(
    /// `lineDrop`.
    drop_call, "/v1/calls/{call}/drop", Drop, CallObject, "the call"
);
plain_op!(
    /// `lineHold` (idempotent).
    hold, "/v1/calls/{call}/hold", Hold, CallObject, "the call"
);
plain_op!(
    /// `lineUnhold` (idempotent).
    unhold, "/v1/calls/{call}/unhold", Unhold, CallObject, "the call"
);
plain_op!(
    /// `lineSetupTransfer`: hold the call and return a consultation call at dial tone.
    setup_transfer, "/v1/calls/{call}/setup-transfer", SetupTransfer,
    ConsultResponse, "the consultation call"
);
plain_op!(
    /// `linePrepareAddToConference`: hold the conference and return a consultation call.
    prepare_add, "/v1/calls/{call}/prepare-add", PrepareAddToConference, ConsultResponse, "the consultation call"
);
plain_op!(
    /// `lineRemoveFromConference`.
    remove_from_conference, "/v1/calls/{call}/remove-from-conference",
    RemoveFromConference, CallObject, "the call"
);
plain_op!(
    /// `lineSecureCall`.
    secure, "/v1/calls/{call}/secure", SecureCall, CallObject, "the call"
);

/// A consultation call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsultResponse {
    /// Its id.
    pub consult_call: String,
    /// Its call object.
    pub calls: Vec<CallObject>,
}

/// A new conference.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConferenceResponse {
    /// The conference call.
    pub conference_call: String,
    /// The consultation call to dial the next party on.
    pub consult_call: String,
    /// Both call objects.
    pub calls: Vec<CallObject>,
}

/// `{"digits":"…"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigitsBody {
    /// Digits (`0-9 * # A-D`).
    pub digits: String,
}

/// `lineDial`: complete the address of a dialtone/dialing call, or DTMF on a
/// connected one.
#[utoipa::path(post, path = "/v1/calls/{call}/dial", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = DigitsBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dial(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<DigitsBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::Dial(call, b.digits)).await
}

/// `lineGenerateDigits`: send DTMF on the call.
#[utoipa::path(post, path = "/v1/calls/{call}/digits", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = DigitsBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn digits(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<DigitsBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::GenerateDigits(call, b.digits)).await
}

/// `{"with":"<held call>"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapHoldBody {
    /// The held call to swap with.
    pub with: String,
}

/// `lineSwapHold`: hold this call and retrieve `with`.
#[utoipa::path(post, path = "/v1/calls/{call}/swap-hold", tag = "calls",
    params(("call" = String, Path, description = "the active call")), request_body = SwapHoldBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn swap_hold(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<SwapHoldBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let with = call_id(&b.with)?;
    run(&st, &app, call, Command::SwapHold(call, with)).await
}

/// `{"to":"…"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToBody {
    /// Destination address.
    pub to: String,
}

/// `lineBlindTransfer`.
#[utoipa::path(post, path = "/v1/calls/{call}/blind-transfer", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = ToBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = 204, description = "done; the call left this app"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn blind_transfer(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<ToBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::BlindTransfer(call, b.to)).await
}

/// `lineRedirect`: send an offered call elsewhere.
#[utoipa::path(post, path = "/v1/calls/{call}/redirect", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = ToBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = 204, description = "done; the call left this app"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn redirect(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<ToBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::Redirect(call, b.to)).await
}

/// Body of `complete-transfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTransferBody {
    /// The consultation call.
    pub consult_call: String,
    /// `transfer` (default) or `conference`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub mode: Option<TransferMode>,
}

/// `lineCompleteTransfer`.
#[utoipa::path(post, path = "/v1/calls/{call}/complete-transfer", tag = "calls",
    params(("call" = String, Path, description = "the held call")), request_body = CompleteTransferBody,
    responses((status = 200, description = "the call, or `{conference_call, calls}` in conference mode", body = CallObject),
              (status = 204, description = "done; the call left this app"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn complete_transfer(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<CompleteTransferBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let consult = call_id(&b.consult_call)?;
    let mode = b.mode.unwrap_or(TransferMode::Transfer);
    run(
        &st,
        &app,
        call,
        Command::CompleteTransfer(call, consult, mode),
    )
    .await
}

/// Body of `finish`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FinishBody {
    /// `transfer` (default) or `conference`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<TransferMode>,
}

/// TAPI 3 `Finish` on a consultation call.
#[utoipa::path(post, path = "/v1/calls/{call}/finish", tag = "calls",
    params(("call" = String, Path, description = "the consultation call")), request_body = FinishBody,
    responses((status = 200, description = "the call, or `{conference_call, calls}` in conference mode", body = CallObject),
              (status = 204, description = "done; the call left this app"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn finish(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<FinishBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let mode = b.mode.unwrap_or(TransferMode::Transfer);
    run(&st, &app, call, Command::Finish(call, mode)).await
}

/// Body of `setup-conference`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SetupConferenceBody {
    /// Expected parties, controller included.
    pub parties: Option<usize>,
}

/// `lineSetupConference`: make the call a conference and return a
/// consultation call for the next party.
#[utoipa::path(post, path = "/v1/calls/{call}/setup-conference", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = SetupConferenceBody,
    responses((status = 200, description = "the conference and consultation calls", body = ConferenceResponse),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn setup_conference(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<SetupConferenceBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::SetupConference(call, b.parties)).await
}

/// Body of `add`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// The consultation call to add.
    pub consult_call: String,
}

/// `lineAddToConference`.
#[utoipa::path(post, path = "/v1/calls/{call}/add", tag = "calls",
    params(("call" = String, Path, description = "the conference call")), request_body = AddBody,
    responses((status = 200, description = "the conference call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<AddBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let consult = call_id(&b.consult_call)?;
    run(&st, &app, call, Command::AddToConference(call, consult)).await
}

/// Conference-related calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedResponse {
    /// The conference call first, then its members.
    pub calls: Vec<String>,
}

/// `lineGetConfRelatedCalls`.
#[utoipa::path(get, path = "/v1/calls/{call}/related", tag = "calls",
    params(("call" = String, Path, description = "call id")),
    responses((status = 200, description = "related calls", body = RelatedResponse),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn related(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::ConfRelatedCalls(call)).await
}

/// Body of `park`: `{"to":"<slot>"}` (directed) or `{}` (tapir picks a slot).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ParkBody {
    /// The slot for a directed park.
    pub to: Option<String>,
    /// `directed` (needs `to`) or `nondirected` (no `to`); when absent, `to`
    /// decides. Any other name answers `invalparkmode`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<ParkModeName>,
}

/// The park modes by name (`LINEPARKMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParkModeName {
    /// `LINEPARKMODE_DIRECTED`: park at `to`.
    Directed,
    /// `LINEPARKMODE_NONDIRECTED`: tapir picks a slot.
    Nondirected,
}

/// Where a call was parked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkResponse {
    /// The park slot.
    pub parked_at: String,
}

/// `linePark`.
#[utoipa::path(post, path = "/v1/calls/{call}/park", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = ParkBody,
    responses((status = 200, description = "the slot", body = ParkResponse),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn park(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<ParkBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let mode = match (b.mode, b.to) {
        (None | Some(ParkModeName::Directed), Some(slot)) => ParkMode::Directed(slot),
        (None | Some(ParkModeName::Nondirected), None) => ParkMode::NonDirected,
        (Some(ParkModeName::Directed), None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalparkmode",
                "a directed park needs `to`, the park address",
            ));
        }
        (Some(ParkModeName::Nondirected), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalparkmode",
                "a non-directed park takes no `to`: tapir picks the slot",
            ));
        }
    };
    run(&st, &app, call, Command::Park(call, mode)).await
}

/// Body of `complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// `campon`, `callback`, `intrude` or `message`.
    #[schema(value_type = String)]
    pub mode: CompletionMode,
    /// For `message`: which message.
    #[serde(default)]
    pub message_id: Option<u32>,
}

/// A completion request.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionResponse {
    /// Its id (`compl-7`), for `DELETE /v1/completions/{id}`.
    pub completion_id: String,
}

/// `lineCompleteCall`.
#[utoipa::path(post, path = "/v1/calls/{call}/complete", tag = "calls",
    params(("call" = String, Path, description = "a busy or unanswered call")), request_body = CompleteBody,
    responses((status = 200, description = "the completion request", body = CompletionResponse),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn complete(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<CompleteBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(
        &st,
        &app,
        call,
        Command::CompleteCall(call, b.mode, b.message_id),
    )
    .await
}

/// `lineUncompleteCall`.
#[utoipa::path(delete, path = "/v1/completions/{id}", tag = "calls",
    params(("id" = String, Path, description = "completion id")),
    responses((status = 204, description = "cancelled"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn uncomplete(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = wire::parse_completion(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalcompletionid",
            format!("{id:?} is not a completion id"),
        )
    })?;
    let done = exec(&st, &app, Command::UncompleteCall(c), None).await?;
    Ok(done.no_content())
}

/// Body of `handoff`: one of `app`, `media_mode`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffBody {
    /// Directed: the target app's name.
    pub app: Option<String>,
    /// Indirect: the media mode.
    #[schema(value_type = Option<String>)]
    pub media_mode: Option<MediaMode>,
}

/// `lineHandoff`.
#[utoipa::path(post, path = "/v1/calls/{call}/handoff", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = HandoffBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn handoff(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<HandoffBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let target = match (b.app, b.media_mode) {
        (Some(a), None) => HandoffTarget::App(a),
        (None, Some(m)) => HandoffTarget::MediaMode(m),
        _ => return Err(ApiError::param("give exactly one of app and media_mode")),
    };
    run(&st, &app, call, Command::Handoff(call, target)).await
}

/// Body of `media-mode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaModeBody {
    /// The call's new media mode (`interactivevoice`, `automatedvoice`,
    /// `datamodem`, `g3fax`, `tdd`, `video` or `unknown`).
    #[schema(value_type = String)]
    pub media_mode: MediaMode,
}

/// `lineSetMediaMode`: set the call's media mode (any call state; owner).
#[utoipa::path(post, path = "/v1/calls/{call}/media-mode", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = MediaModeBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn media_mode(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<MediaModeBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(&st, &app, call, Command::SetMediaMode(call, b.media_mode)).await
}

/// Body of `privilege`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeBody {
    /// `owner` or `monitor`.
    #[schema(value_type = String)]
    pub privilege: Privilege,
}

/// `lineSetCallPrivilege`.
#[utoipa::path(post, path = "/v1/calls/{call}/privilege", tag = "calls",
    params(("call" = String, Path, description = "call id")), request_body = PrivilegeBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = 204, description = "done; the call left this app"),
              (status = "4XX", description = "TAPI error", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn privilege(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<PrivilegeBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    run(
        &st,
        &app,
        call,
        Command::SetCallPrivilege(call, b.privilege),
    )
    .await
}

/// Body of `play`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayBody {
    /// The prompt: a file `<data_dir>/prompts/<name>.wav`, or a built-in
    /// (`beep`, `dialtone`, `ringback`, `busy`, `reorder`, `tone-<hz>`).
    pub prompt: String,
    /// Repeat until `stop-media` instead of ending with `call.media` `done`.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

/// Play a prompt to the party connected to a route point call (TAPI 3's
/// media playback terminal on a call tapir terminates): the caller hears it
/// instead of silence; a prompt that plays to its end sends `call.media`
/// `{"media":"prompt","state":"done"}` to the call's apps.
#[utoipa::path(post, path = "/v1/calls/{call}/play", tag = "calls",
    params(("call" = String, Path, description = "a connected route point call")), request_body = PlayBody,
    responses((status = 200, description = "the call", body = CallObject),
              (status = "4XX", description = "TAPI error (`invalparam` for an unknown prompt)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn play(
    State(st): State<AppState>,
    AuthApp(app): AuthApp,
    Path(call): Path<String>,
    ApiJson(b): ApiJson<PlayBody>,
) -> Result<Response, ApiError> {
    let call = call_id(&call)?;
    let catalog = st.prompts.clone();
    let name = b.prompt.clone();
    tokio::task::spawn_blocking(move || catalog.load(&name))
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| ApiError::param(e.to_string()))?;
    run(
        &st,
        &app,
        call,
        Command::PlayPrompt(call, b.prompt, b.looping),
    )
    .await
}

plain_op!(
    /// Stop the prompt playing on a route point call (`call.media`
    /// `stopped`); nothing playing is not an error.
    stop_media, "/v1/calls/{call}/stop-media", StopMedia, CallObject, "the call"
);
