//! Validation in two tiers.
//!
//! * [`validate_core_headers`] runs inside parsing: the fields every layer
//!   relies on (Request-URI, Via, From, To, Call-ID, CSeq, Max-Forwards,
//!   Contact, Route, Record-Route, Date) must be well formed, and a
//!   request's CSeq method must match its method (RFC 4475 §3.1.2).
//! * [`check_request`] is the element-level check of a well-formed request
//!   (RFC 3261 §8.2, RFC 4475 §3.3): mandatory fields present, single-value
//!   fields not repeated, one Content-Length.

use super::error::ParseError;
use super::headers::{CSeq, NameAddr, Via, is_call_id};
use super::message::{HeaderName, Message, StartLine};
use super::scan::{parse_decimal_u64, split_commas};
use super::uri::Uri;

fn invalid(header: &'static str, reason: &'static str) -> ParseError {
    ParseError::InvalidHeader { header, reason }
}

/// Checks the grammar of the fields the stack depends on.
pub(crate) fn validate_core_headers(message: &Message) -> Result<(), ParseError> {
    let request_method = match &message.start {
        StartLine::Request { method, uri } => {
            match Uri::parse(uri.as_str())? {
                Uri::Sip(sip) if sip.headers.is_some() => {
                    return Err(ParseError::InvalidUri(
                        "headers are not allowed in a Request-URI",
                    ));
                }
                _ => {}
            }
            Some(method.as_str())
        }
        StartLine::Response { .. } => None,
    };
    for header in &message.headers {
        let value = header.value.as_str();
        match &header.name {
            HeaderName::Via => {
                for element in split_commas(value) {
                    Via::parse(element.map_err(|_| invalid("Via", "unbalanced quotes"))?)?;
                }
            }
            HeaderName::From | HeaderName::To => {
                NameAddr::parse(value, header.name.static_name())?;
            }
            HeaderName::Contact if value == "*" => {}
            HeaderName::Contact
            | HeaderName::Route
            | HeaderName::RecordRoute
            | HeaderName::Path => {
                let name = header.name.static_name();
                let mut count = 0;
                for element in split_commas(value) {
                    NameAddr::parse(
                        element.map_err(|_| invalid(name, "unbalanced quotes or brackets"))?,
                        name,
                    )?;
                    count += 1;
                }
                if count == 0 {
                    return Err(invalid(name, "empty"));
                }
            }
            HeaderName::CallId if !is_call_id(value) => {
                return Err(invalid("Call-ID", "not word[@word]"));
            }
            HeaderName::CSeq => {
                let cseq = CSeq::parse(value)?;
                if let Some(method) = request_method
                    && cseq.method != method
                {
                    return Err(ParseError::CSeqMethodMismatch);
                }
            }
            HeaderName::MaxForwards if parse_decimal_u64(value).is_none_or(|v| v > 255) => {
                return Err(invalid("Max-Forwards", "not a number in 0..=255"));
            }
            HeaderName::Date if !is_rfc1123_gmt_date(value) => {
                return Err(invalid("Date", "not an RFC 1123 date in GMT"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `wkday "," SP 2DIGIT SP month SP 4DIGIT SP 2DIGIT ":" 2DIGIT ":" 2DIGIT SP "GMT"`.
fn is_rfc1123_gmt_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split(' ').collect();
    let [weekday, day, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    const WEEKDAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = time.split(':').count() == 3 && time.split(':').all(|t| digits(t, 2));
    WEEKDAYS.contains(weekday)
        && digits(day, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && time_ok
        && *zone == "GMT"
}

/// Why a well-formed request must still be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct Rejection {
    /// Status code to answer with.
    pub status: u16,
    /// Reason phrase that says what is wrong.
    pub reason: &'static str,
}

/// Element-level checks of a request (RFC 3261 §8.2.2 and RFC 4475 §3.3.1,
/// §3.3.8, §3.3.9): the mandatory fields To, From, CSeq, Call-ID and Via are
/// present, single-value fields appear once, Content-Length appears once.
/// Max-Forwards is not required, for RFC 2543 peers.
pub fn check_request(message: &Message) -> Result<(), Rejection> {
    let mandatory = [
        (HeaderName::Via, "Bad Request (Missing Via)"),
        (HeaderName::From, "Bad Request (Missing From)"),
        (HeaderName::To, "Bad Request (Missing To)"),
        (HeaderName::CallId, "Bad Request (Missing Call-ID)"),
        (HeaderName::CSeq, "Bad Request (Missing CSeq)"),
    ];
    for (name, reason) in &mandatory {
        if message.header_count(name) == 0 {
            return Err(Rejection {
                status: 400,
                reason,
            });
        }
    }
    let single = [
        (HeaderName::From, "Bad Request (Multiple From)"),
        (HeaderName::To, "Bad Request (Multiple To)"),
        (HeaderName::CallId, "Bad Request (Multiple Call-ID)"),
        (HeaderName::CSeq, "Bad Request (Multiple CSeq)"),
        (
            HeaderName::MaxForwards,
            "Bad Request (Multiple Max-Forwards)",
        ),
        (
            HeaderName::ContentLength,
            "Bad Request (Multiple Content-Length)",
        ),
        (
            HeaderName::ContentType,
            "Bad Request (Multiple Content-Type)",
        ),
    ];
    for (name, reason) in &single {
        if message.header_count(name) > 1 {
            return Err(Rejection {
                status: 400,
                reason,
            });
        }
    }
    Ok(())
}
