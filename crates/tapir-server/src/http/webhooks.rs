//! Webhook endpoints: an app's own under `/v1/webhooks` (app token), every
//! app's under `/v1/admin/webhooks` (admin token). Bad input is `400
//! invalparam` with a sentence and changes nothing; a webhook's secret is in
//! the reply that set it and never again.

use super::admin::AdminAuth;
use super::{ApiJson, AppState, AuthApp};
use crate::error::{ApiError, ErrorBody};
use crate::webhooks::{WebhookBody, WebhookError, WebhookView};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> ApiError {
        let message = e.to_string();
        match e {
            WebhookError::Invalid(_) => ApiError::param(message),
            WebhookError::NotFound(_) | WebhookError::NoApp(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "invalparam", message)
            }
            WebhookError::TooMany { .. } => {
                ApiError::new(StatusCode::CONFLICT, "resourceunavail", message)
            }
            WebhookError::Store(_) | WebhookError::Random(_) => {
                tracing::error!("webhook change failed: {message}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "operationfailed",
                    message,
                )
            }
        }
    }
}

/// `{"webhooks":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhooks {
    /// The webhooks.
    pub webhooks: Vec<WebhookView>,
}

fn own(app: &AuthApp, body: &WebhookBody) -> Result<(), ApiError> {
    match &body.app {
        Some(a) if a != &app.0.entry.name => Err(ApiError::no_privilege(format!(
            "application {} may only manage its own webhooks, not {a:?}'s",
            app.0.entry.name
        ))),
        _ => Ok(()),
    }
}

/// The app's webhooks.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "the app's webhooks", body = Webhooks),
              (status = 401, description = "no valid app token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(State(st): State<AppState>, app: AuthApp) -> Json<Webhooks> {
    Json(Webhooks {
        webhooks: st.webhooks.list(Some(&app.0.entry.name)),
    })
}

/// Register a webhook: the app's events journalled from now on are POSTed
/// to `url`, signed with the secret (`Tapir-Signature`), in `seq` order.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    responses((status = 201, description = "the webhook with its `secret` (shown once)", body = WebhookView),
              (status = 400, description = "bad URL, filter, secret or batch", body = ErrorBody),
              (status = 409, description = "the app has as many webhooks as it may", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(st): State<AppState>,
    app: AuthApp,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Response, ApiError> {
    own(&app, &body)?;
    let view = st.webhooks.create(&app.0.entry.name, body).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// One of the app's webhooks.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 200, description = "the webhook", body = WebhookView),
              (status = 404, description = "no such webhook of this app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(st): State<AppState>,
    app: AuthApp,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(st.webhooks.get(&id, Some(&app.0.entry.name))?))
}

/// Change what the body names (URL, filters, batch, secret) and resume the
/// webhook if it was suspended; delivery goes on after the last
/// acknowledged `seq`.
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    request_body = WebhookBody,
    responses((status = 200, description = "the webhook now (with `secret` when it was changed)", body = WebhookView),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such webhook of this app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_webhook(
    State(st): State<AppState>,
    app: AuthApp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Json<WebhookView>, ApiError> {
    own(&app, &body)?;
    Ok(Json(
        st.webhooks
            .replace(&id, Some(&app.0.entry.name), body)
            .await?,
    ))
}

/// Remove one of the app's webhooks.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 204, description = "removed"),
              (status = 404, description = "no such webhook of this app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(st): State<AppState>,
    app: AuthApp,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.webhooks.delete(&id, Some(&app.0.entry.name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every app's webhooks, with their state (`active`, `failing`,
/// `suspended`), acknowledged `seq` and pending events.
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin",
    responses((status = 200, description = "every webhook", body = Webhooks),
              (status = 403, description = "not the admin token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn admin_list_webhooks(State(st): State<AppState>, _: AdminAuth) -> Json<Webhooks> {
    Json(Webhooks {
        webhooks: st.webhooks.list(None),
    })
}

/// Register a webhook for the app named by `app`.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin",
    request_body = WebhookBody,
    responses((status = 201, description = "the webhook with its `secret` (shown once)", body = WebhookView),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such app", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn admin_create_webhook(
    State(st): State<AppState>,
    _: AdminAuth,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Response, ApiError> {
    let app = body
        .app
        .clone()
        .ok_or_else(|| ApiError::param("a webhook needs the \"app\" whose events it delivers"))?;
    let view = st.webhooks.create(&app, body).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Any webhook.
#[utoipa::path(get, path = "/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 200, description = "the webhook", body = WebhookView),
              (status = 404, description = "no such webhook", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn admin_get_webhook(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(st.webhooks.get(&id, None)?))
}

/// Change any webhook (and resume it when suspended).
#[utoipa::path(put, path = "/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "the webhook's id")),
    request_body = WebhookBody,
    responses((status = 200, description = "the webhook now", body = WebhookView),
              (status = 400, description = "bad input", body = ErrorBody),
              (status = 404, description = "no such webhook", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn admin_put_webhook(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(st.webhooks.replace(&id, None, body).await?))
}

/// Remove any webhook.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 204, description = "removed"),
              (status = 404, description = "no such webhook", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn admin_delete_webhook(
    State(st): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.webhooks.delete(&id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
