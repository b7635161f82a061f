//! Serialisation of a [`Message`] back to bytes, and builders for new
//! requests and for responses to a received request (RFC 3261 §8.2.6).

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{Header, HeaderName, Message, Method, StartLine, Text};

impl Message {
    /// Number of bytes [`Message::write_to`] will produce.
    pub fn encoded_len(&self) -> usize {
        let start = match &self.start {
            // "METHOD URI SIP/2.0\r\n"
            StartLine::Request { method, uri } => method.as_str().len() + uri.as_str().len() + 11,
            // "SIP/2.0 CODE REASON\r\n"
            StartLine::Response { code, reason } => {
                11 + code.checked_ilog10().unwrap_or(0) as usize + 1 + reason.as_str().len()
            }
        };
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.name.as_str().len() + h.value.as_str().len() + 4)
            .sum();
        start + headers + 2 + self.body.len()
    }

    /// Appends the wire form: start line, one line per header field (known
    /// names in their canonical long form), an empty line, the body. A CR or
    /// LF in the start line or a header is written as a space: whatever text
    /// reached a field, it can never end the field or add a header.
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        match &self.start {
            StartLine::Request { method, uri } => {
                put_field(out, method.as_str());
                out.put_u8(b' ');
                put_field(out, uri.as_str());
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                out.put_slice(itoa::Buffer::new().format(*code).as_bytes());
                out.put_u8(b' ');
                put_field(out, reason.as_str());
                out.put_slice(b"\r\n");
            }
        }
        for header in &self.headers {
            put_field(out, header.name.as_str());
            out.put_slice(b": ");
            put_field(out, header.value.as_str());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    /// The wire form as `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }

    /// Appends a header field.
    pub fn push_header(&mut self, name: HeaderName, value: impl Into<Text>) {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a header field before every other field of the same name
    /// (e.g. a new top Via), or last when there is none.
    pub fn prepend_header(&mut self, name: HeaderName, value: impl Into<Text>) {
        let index = self
            .headers
            .iter()
            .position(|header| header.name == name)
            .unwrap_or(self.headers.len());
        self.headers.insert(
            index,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove_headers(&mut self, name: &HeaderName) -> usize {
        let before = self.headers.len();
        self.headers.retain(|header| header.name != *name);
        before - self.headers.len()
    }

    /// Replaces the body, its Content-Type (removed when `None`) and
    /// Content-Length.
    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) {
        self.remove_headers(&HeaderName::ContentType);
        self.remove_headers(&HeaderName::ContentLength);
        if let Some(content_type) = content_type {
            self.push_header(HeaderName::ContentType, content_type);
        }
        self.push_header(HeaderName::ContentLength, body.len().to_string());
        self.body = body;
    }

    /// Replaces the Request-URI of a request (no effect on a response).
    pub fn set_request_uri(&mut self, new_uri: impl Into<Text>) {
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = new_uri.into();
        }
    }

    /// A builder for a response to this request: copies every Via, From,
    /// To, Call-ID and CSeq, and Content-Length 0 unless a body is set.
    /// For any status above 100 the To header gets `to_tag` when it has no
    /// tag yet (RFC 3261 §8.2.6.2).
    pub fn response_builder(
        &self,
        code: u16,
        reason: Option<&str>,
        to_tag: Option<&str>,
    ) -> MessageBuilder {
        let mut builder =
            MessageBuilder::response(code, reason.unwrap_or(default_reason_phrase(code)));
        for header in &self.headers {
            match header.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    builder.headers.push(header.clone());
                }
                HeaderName::To => {
                    let has_tag = self
                        .to_header()
                        .ok()
                        .flatten()
                        .is_some_and(|to| to.tag().is_some());
                    let value = match to_tag {
                        Some(tag) if code > 100 && !has_tag => {
                            Text::from(format!("{};tag={tag}", header.value))
                        }
                        _ => header.value.clone(),
                    };
                    builder.headers.push(Header {
                        name: HeaderName::To,
                        value,
                    });
                }
                _ => {}
            }
        }
        builder
    }
}

/// True for the bytes that would end a start line or header field and let
/// the rest start a new one: CR and LF. Other control characters are left
/// as they are: RFC 3261 allows them in a quoted-pair (`"\\\0"` in a display
/// name, as in the RFC 4475 torture messages), the parser never hands out a
/// field with CR or LF, so what tapir relays is written back unchanged, and
/// text from the API is refused with control characters before it gets here.
fn is_field_breaking(byte: u8) -> bool {
    byte == b'\r' || byte == b'\n'
}

/// Writes `text` into a start line or header field, each byte that could
/// break the field replaced by a space (same length, so
/// [`Message::encoded_len`] stays exact).
fn put_field(out: &mut BytesMut, text: &str) {
    let bytes = text.as_bytes();
    if memchr::memchr2(b'\r', b'\n', bytes).is_none() {
        out.put_slice(bytes);
        return;
    }
    for byte in bytes {
        out.put_u8(if is_field_breaking(*byte) {
            b' '
        } else {
            *byte
        });
    }
}

/// Builds a message field by field; `build` adds Content-Length.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    start: StartLine,
    headers: Vec<Header>,
    body: Bytes,
}

impl MessageBuilder {
    /// A request with this method and Request-URI.
    pub fn request(method: Method, uri: impl Into<Text>) -> Self {
        MessageBuilder {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A response with this status and reason phrase.
    pub fn response(code: u16, reason: impl Into<Text>) -> Self {
        MessageBuilder {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Appends a header field.
    pub fn header(mut self, name: HeaderName, value: impl Into<Text>) -> Self {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
        self.headers.retain(|h| h.name != HeaderName::ContentType);
        self.headers.push(Header {
            name: HeaderName::ContentType,
            value: Text::from(content_type),
        });
        self.body = body;
        self
    }

    /// The message, with a Content-Length matching the body.
    pub fn build(mut self) -> Message {
        self.headers.retain(|h| h.name != HeaderName::ContentLength);
        self.headers.push(Header {
            name: HeaderName::ContentLength,
            value: Text::from(self.body.len().to_string()),
        });
        Message {
            start: self.start,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// The RFC 3261 §21 reason phrase of a status code ("" when unknown).
pub fn default_reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

/// The stateless answer to a request that failed to parse (RFC 3261
/// §8.2.6, §16.3): status and reason from [`super::disposition_for`], with Via,
/// From, To, Call-ID and CSeq copied leniently from the raw input and
/// `to_tag` added to a To without a tag. `None` when the input deserves no
/// answer (a response, or too broken to carry those five fields).
pub fn stateless_rejection(
    input: &[u8],
    error: &super::ParseError,
    to_tag: &str,
) -> Option<Message> {
    let super::Disposition::Respond { status, reason } = super::disposition_for(input, error)
    else {
        return None;
    };
    let head_end = memchr::memmem::find(input, b"\r\n\r\n").unwrap_or(input.len());
    let head = input.get(..head_end)?;
    // (name, value) of each field, continuation lines joined.
    let mut fields: Vec<(HeaderName, String)> = Vec::new();
    let mut current: Option<(Option<HeaderName>, String)> = None;
    for raw_line in head.split(|b| *b == b'\n').skip(1) {
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                value.push_str(&text);
            }
            continue;
        }
        if let Some((Some(name), value)) = current.take() {
            fields.push((name, value.trim().to_owned()));
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = HeaderName::from_wire(name.trim());
        let wanted = matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        );
        current = Some((wanted.then_some(name), value.to_owned()));
    }
    if let Some((Some(name), value)) = current.take() {
        fields.push((name, value.trim().to_owned()));
    }
    let mut builder = MessageBuilder::response(status, reason);
    for required in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let mut found = false;
        for (name, value) in fields.iter().filter(|(name, _)| *name == required) {
            let value = if required == HeaderName::To && !value.contains(";tag=") {
                format!("{value};tag={to_tag}")
            } else {
                value.clone()
            };
            builder = builder.header(name.clone(), value);
            found = true;
            if required != HeaderName::Via {
                break;
            }
        }
        if !found {
            return None;
        }
    }
    Some(builder.build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_header_value_can_never_break_its_line() {
        let message = MessageBuilder::request(Method::Invite, "sip:1002@pbx\r\nX-Uri: 1")
            .header(
                HeaderName::From,
                "\"Evil\r\nX-Injected: yes\" <sip:1001@pbx>;tag=a",
            )
            .header(HeaderName::Subject, "tab\tkept, nul\0 and del\u{7f} kept")
            .build();
        let bytes = message.to_bytes();
        assert_eq!(bytes.len(), message.encoded_len());
        let text = std::str::from_utf8(&bytes).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "INVITE sip:1002@pbx  X-Uri: 1 SIP/2.0");
        assert_eq!(
            lines[1],
            "From: \"Evil  X-Injected: yes\" <sip:1001@pbx>;tag=a"
        );
        // Other control characters are legal in a quoted-pair and kept.
        assert_eq!(lines[2], "Subject: tab\tkept, nul\0 and del\u{7f} kept");
        assert!(!text.lines().any(|l| l.starts_with("X-")), "{text}");
        // The receiving side sees one From and no injected header.
        let message = MessageBuilder::request(Method::Invite, "sip:1002@pbx")
            .header(
                HeaderName::From,
                "\"Evil\r\nX-Injected: yes\" <sip:1001@pbx>;tag=a",
            )
            .header(HeaderName::CallId, "c1")
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::To, "<sip:1002@pbx>")
            .header(
                HeaderName::Via,
                "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx",
            )
            .build();
        let parsed = Message::parse_datagram(message.to_bytes()).unwrap();
        assert_eq!(
            parsed.header(&HeaderName::From),
            Some("\"Evil  X-Injected: yes\" <sip:1001@pbx>;tag=a")
        );
        assert!(
            parsed
                .header(&HeaderName::from_wire("X-Injected"))
                .is_none()
        );
    }
}
