//! [`ClientError`]: what a call to the tapir API can fail with — TAPI's error
//! code and sentence from the server, or the transport.

/// An error of the tapir client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request: TAPI's error code (`invalcallstate`,
    /// `notowner`, …, or `unauthorized` / `noprivilege`) and its sentence.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status (400, 401, 403, 404, 409, 503, …).
        status: u16,
        /// TAPI's `LINEERR_` name, lower case, without prefix.
        code: String,
        /// The server's human sentence.
        message: String,
        /// The switch request that failed (`req-N`), when the switch saw one.
        request: Option<String>,
    },
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach the tapir server: {0}")]
    Http(#[from] reqwest::Error),
    /// The event stream's WebSocket failed.
    #[error("event stream: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The server answered something this client cannot read.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A URL or an argument given to the client is not usable.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// TAPI's error code when the server refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status when the server refused the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
        ClientError::WebSocket(Box::new(e))
    }
}

/// Result of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
