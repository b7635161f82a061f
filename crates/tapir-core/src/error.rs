//! TAPI's errors (`LINEERR_*`) as returned by every switch operation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The TAPI error code of a failed request, named as in `tapi.h` without the
/// `LINEERR_` prefix and in lower case (the HTTP API's `error.code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorCode {
    /// The destination is barred for this line (its `outbound` permission,
    /// or a trunk that does not allow hairpins).
    AddressBlocked,
    /// Every call appearance of the address is in use.
    CallUnavail,
    /// Too many call-completion requests are outstanding.
    CompletionOverrun,
    /// The conference is full.
    ConferenceFull,
    /// The address is malformed, unknown or not allowed.
    InvalAddress,
    /// The call completion mode is not valid.
    InvalCallComplMode,
    /// The call handle is unknown, or the app has no handle to it.
    InvalCallHandle,
    /// The privilege value is not valid.
    InvalCallPrivilege,
    /// The call is not in a state that permits the operation.
    InvalCallState,
    /// The completion id is unknown.
    InvalCompletionId,
    /// The call is not a conference call.
    InvalConfCallHandle,
    /// The consultation call is not valid for this operation.
    InvalConsultCallHandle,
    /// The pickup group is unknown.
    InvalGroupId,
    /// The line is unknown or not open by this app.
    InvalLineHandle,
    /// The media mode is not valid.
    InvalMediaMode,
    /// The message id is not valid.
    InvalMessageId,
    /// A parameter is not valid.
    InvalParam,
    /// The park mode is not valid.
    InvalParkMode,
    /// The transfer mode is not valid.
    InvalTransferMode,
    /// The call is neither a conference call nor a member of one.
    NoConference,
    /// The app is not an owner of the call.
    NotOwner,
    /// The operator's configuration does not allow this app the operation
    /// (a privilege beyond its `privileges`, a permission it lacks, a line
    /// not in its `lines`). TAPI has no `LINEERR_` for a right the provider
    /// withholds; the HTTP API's contract names it `noprivilege`.
    NoPrivilege,
    /// The operation failed for an unspecified reason.
    OperationFailed,
    /// The operation is not available on this line or device.
    OperationUnavail,
    /// A resource (park slot, conference seat…) is exhausted.
    ResourceUnavail,
    /// No application matches the handoff target.
    TargetNotFound,
    /// The handoff target is the requesting application itself.
    TargetSelf,
}

impl ErrorCode {
    /// The code as the HTTP API spells it (`invalcallstate`, …).
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AddressBlocked => "addressblocked",
            CallUnavail => "callunavail",
            CompletionOverrun => "completionoverrun",
            ConferenceFull => "conferencefull",
            InvalAddress => "invaladdress",
            InvalCallComplMode => "invalcallcomplmode",
            InvalCallHandle => "invalcallhandle",
            InvalCallPrivilege => "invalcallprivilege",
            InvalCallState => "invalcallstate",
            InvalCompletionId => "invalcompletionid",
            InvalConfCallHandle => "invalconfcallhandle",
            InvalConsultCallHandle => "invalconsultcallhandle",
            InvalGroupId => "invalgroupid",
            InvalLineHandle => "invallinehandle",
            InvalMediaMode => "invalmediamode",
            InvalMessageId => "invalmessageid",
            InvalParam => "invalparam",
            InvalParkMode => "invalparkmode",
            InvalTransferMode => "invaltransfermode",
            NoConference => "noconference",
            NotOwner => "notowner",
            NoPrivilege => "noprivilege",
            OperationFailed => "operationfailed",
            OperationUnavail => "operationunavail",
            ResourceUnavail => "resourceunavail",
            TargetNotFound => "targetnotfound",
            TargetSelf => "targetself",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: TAPI's code plus a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TapiError {
    /// TAPI's error code.
    pub code: ErrorCode,
    /// What went wrong, in one human sentence.
    pub message: String,
}

impl TapiError {
    /// An error with this code and sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TapiError {
        TapiError {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand for building an `Err(TapiError)`.
pub(crate) fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, TapiError> {
    Err(TapiError::new(code, message))
}
