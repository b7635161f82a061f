//! Why a message was refused, and what the element should do about it
//! (answer 400 or 505, or drop a response silently).
//!
//! Errors name the offending field and the rule it broke; they never carry
//! the input itself, so logging them cannot leak or amplify a hostile message.

/// A message that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input is empty or holds only line breaks.
    #[error("empty message")]
    Empty,
    /// No empty line ends the header section.
    #[error("header section is not terminated by an empty line")]
    UnterminatedHeaders,
    /// The header section exceeds the configured limit.
    #[error("header section longer than {limit} bytes")]
    HeadersTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A line of the header section does not end with CRLF.
    #[error("line {line} does not end with CRLF")]
    BareLineBreak {
        /// 1-based line number.
        line: usize,
    },
    /// The header section is not UTF-8.
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    /// The request line or status line is malformed.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The protocol version is not `SIP/2.0`.
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    /// The status code is not three digits in 100..=699.
    #[error("invalid status code")]
    StatusCode,
    /// A header line has no colon or an invalid name.
    #[error("malformed header line {line}")]
    HeaderLine {
        /// 1-based line number.
        line: usize,
    },
    /// A header field value breaks its grammar.
    #[error("malformed {header} header: {reason}")]
    InvalidHeader {
        /// Canonical header name.
        header: &'static str,
        /// The rule that was broken.
        reason: &'static str,
    },
    /// A URI is malformed.
    #[error("malformed URI: {0}")]
    InvalidUri(&'static str),
    /// Content-Length is not a non-negative decimal number in range.
    #[error("invalid Content-Length")]
    ContentLength,
    /// Content-Length is absent on a stream transport.
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
    /// Several Content-Length values disagree on a stream transport.
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// The datagram ends before the body announced by Content-Length.
    #[error("body shorter than Content-Length ({declared} declared, {available} present)")]
    BodyTooShort {
        /// Bytes announced.
        declared: usize,
        /// Bytes present.
        available: usize,
    },
    /// The announced body exceeds the configured limit.
    #[error("body longer than {limit} bytes")]
    BodyTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
}

impl ParseError {
    /// A short reason phrase suffix saying what is wrong, for a 400.
    pub fn reason_phrase(&self) -> String {
        match self {
            ParseError::UnsupportedVersion => "Version Not Supported".to_owned(),
            ParseError::InvalidHeader { header, .. } => format!("Bad Request (Malformed {header})"),
            ParseError::InvalidUri(_) => "Bad Request (Malformed URI)".to_owned(),
            ParseError::StartLine(_) => "Bad Request (Malformed Request-Line)".to_owned(),
            ParseError::ContentLength
            | ParseError::BodyTooShort { .. }
            | ParseError::ConflictingContentLength
            | ParseError::MissingContentLength => "Bad Request (Bad Content-Length)".to_owned(),
            ParseError::CSeqMethodMismatch => "Bad Request (CSeq Method Mismatch)".to_owned(),
            ParseError::HeaderLine { .. } => "Bad Request (Malformed Header Line)".to_owned(),
            _ => "Bad Request".to_owned(),
        }
    }

    /// The status code a request with this error deserves (400 or 505).
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::UnsupportedVersion => 505,
            ParseError::HeadersTooLong { .. } | ParseError::BodyTooLong { .. } => 513,
            _ => 400,
        }
    }
}

/// What to do with a message that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Answer the request statelessly with this status and reason phrase.
    Respond {
        /// Status code (400, 505, …).
        status: u16,
        /// Reason phrase that says what is wrong.
        reason: String,
    },
    /// Discard silently (responses, or input too broken to answer).
    Drop,
}

/// Decides how to react to `error` raised while parsing `input`: responses
/// are dropped (RFC 3261 §18.1.2), requests are answered with 400 (505 for
/// an unknown version) when they look like a request at all.
pub fn disposition_for(input: &[u8], error: &ParseError) -> Disposition {
    let start = input
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(input.len());
    let first = input.get(start..).unwrap_or(&[]);
    let looks_like_response = first.len() >= 4
        && first
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    let looks_like_request = first.first().is_some_and(|b| b.is_ascii_graphic());
    if looks_like_response || !looks_like_request || matches!(error, ParseError::Empty) {
        Disposition::Drop
    } else {
        Disposition::Respond {
            status: error.status_code(),
            reason: error.reason_phrase(),
        }
    }
}
