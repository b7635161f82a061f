//! Errors: the API's error body (`{"error":{"code","message"}}`) with the
//! HTTP status rules of `shared/API.md`, and the library's own errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;
use tapir_core::{ErrorCode, TapiError};
use utoipa::ToSchema;

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("i/o error: {0}")]
    Io(String),
    /// The TOML could not be parsed.
    #[error("configuration does not parse: {0}")]
    Parse(String),
    /// A value is not acceptable.
    #[error("configuration is not valid: {0}")]
    Invalid(String),
}

/// Why [`crate::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The switch refused a configured line.
    #[error("line {address}: {error}")]
    Line {
        /// The line's address.
        address: String,
        /// The switch's reason.
        error: TapiError,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        error: std::io::Error,
    },
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// TAPI error code and sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// TAPI's `LINEERR_` name, lower case, no prefix (`invalcallstate`, …),
    /// or `noprivilege` / `unauthorized`.
    pub code: String,
    /// A human sentence.
    pub message: String,
}

/// An error response of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// TAPI code.
    pub code: Cow<'static, str>,
    /// Sentence.
    pub message: String,
    /// The switch request that failed, when the switch saw one (its `reply`
    /// event carries the same id).
    pub request: Option<tapir_core::RequestId>,
}

/// Response header naming the switch request of a command (`req-N`), the id
/// its `reply` event on the stream carries.
pub const REQUEST_HEADER: &str = "tapir-request";

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            request: None,
        }
    }

    /// The same error, naming the switch request it answers.
    pub fn with_request(mut self, request: tapir_core::RequestId) -> ApiError {
        self.request = Some(request);
        self
    }

    /// 400 `invalparam`.
    pub fn param(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalparam", message)
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403 `noprivilege`.
    pub fn no_privilege(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "noprivilege", message)
    }

    /// 503: the switch is not running.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "operationfailed",
            "the switch is not running",
        )
    }
}

/// The HTTP status of a TAPI error: 400 bad parameters, 403 privilege, 404
/// unknown ids, 409 wrong state, 503 exhausted resources.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalParam
        | InvalAddress
        | InvalCallComplMode
        | InvalCallPrivilege
        | InvalMediaMode
        | InvalMessageId
        | InvalParkMode
        | InvalTransferMode
        | InvalConsultCallHandle
        | TargetSelf => StatusCode::BAD_REQUEST,
        NotOwner | NoPrivilege | AddressBlocked => StatusCode::FORBIDDEN,
        InvalCallHandle | InvalLineHandle | InvalCompletionId | InvalGroupId | TargetNotFound => {
            StatusCode::NOT_FOUND
        }
        InvalCallState | InvalConfCallHandle | NoConference | OperationUnavail => {
            StatusCode::CONFLICT
        }
        CallUnavail | CompletionOverrun | ConferenceFull | ResourceUnavail => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OperationFailed => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<TapiError> for ApiError {
    fn from(e: TapiError) -> ApiError {
        ApiError {
            status: status_of(e.code),
            code: Cow::Borrowed(e.code.as_str()),
            message: e.message,
            request: None,
        }
    }
}

impl From<tapir_translate::TranslateError> for ApiError {
    fn from(e: tapir_translate::TranslateError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: Cow::Borrowed(e.code()),
            message: e.to_string(),
            request: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(r) = self.request
            && let Ok(v) = axum::http::HeaderValue::from_str(&r.to_string())
        {
            resp.headers_mut().insert(REQUEST_HEADER, v);
        }
        resp
    }
}
