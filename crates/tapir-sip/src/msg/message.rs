//! The message model (start line, header fields, body) and the framing
//! parser that builds it from a datagram or from a stream buffer.
//!
//! A [`Message`] keeps the received `Bytes`: header values are slices of the
//! datagram (only folded values are copied, once, to remove the line breaks)
//! and typed views ([`super::headers`]) are parsed on demand from them.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::error::ParseError;
use super::scan::{is_token, is_token_byte, parse_decimal_u64, trim_wsp};
use super::validate::validate_core_headers;

/// UTF-8 text held in shared `Bytes` (a slice of the received datagram, or
/// owned text for built and unfolded values).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Text(ByteString);

impl Text {
    /// Text from a static string, without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Text(ByteString::from_static(text))
    }

    /// The text as `&str` (UTF-8 was checked once, when the text was made).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Slice of `source` at `range`, if it is UTF-8.
    fn from_slice(source: &Bytes, range: std::ops::Range<usize>) -> Option<Self> {
        source.get(range.clone())?;
        ByteString::try_from(source.slice(range)).ok().map(Text)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(ByteString::from(text))
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text(ByteString::from(text))
    }
}

/// A SIP method. Extension methods are kept verbatim (methods are
/// case-sensitive, RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// REGISTER.
    Register,
    /// OPTIONS.
    Options,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other token.
    Extension(Text),
}

impl Method {
    /// The method from its token (case-sensitive).
    pub fn from_token(token: &str) -> Self {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(Text::from(other)),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(text) => text.as_str(),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ; )*) => {
        /// A header field name; known names are recognised in any case and
        /// in their compact form (`v`, `f`, `t`, `i`, `m`, `l`, …).
        #[derive(Debug, Clone)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canonical, "`")]
                $variant,
            )*
            /// Any other header, name as received.
            Other(Text),
        }

        impl HeaderName {
            /// Recognises a header name as received on the wire.
            pub fn from_wire(name: &str) -> Self {
                Self::known(name).unwrap_or_else(|| HeaderName::Other(Text::from(name)))
            }

            /// The known header with this long or compact name, if any.
            fn known(name: &str) -> Option<Self> {
                if name.len() == 1 {
                    let compact = name.as_bytes().first().map(u8::to_ascii_lowercase);
                    $( $( if compact == Some($compact) { return Some(HeaderName::$variant); } )? )*
                }
                $( if name.eq_ignore_ascii_case($canonical) { return Some(HeaderName::$variant); } )*
                None
            }

            /// The canonical (long) name, or the name as received for others.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(text) => text.as_str(),
                }
            }

            /// The canonical name of a known header, `"extension"` otherwise.
            pub fn static_name(&self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(_) => "extension",
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", b'm';
    Route => "Route";
    RecordRoute => "Record-Route";
    Path => "Path";
    ContentType => "Content-Type", b'c';
    ContentLength => "Content-Length", b'l';
    ContentEncoding => "Content-Encoding", b'e';
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    AuthenticationInfo => "Authentication-Info";
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    ReferSub => "Refer-Sub";
    Replaces => "Replaces";
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    SubscriptionState => "Subscription-State";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", b'k';
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    Subject => "Subject", b's';
    Date => "Date";
    RetryAfter => "Retry-After";
    UserAgent => "User-Agent";
    Server => "Server";
    RSeq => "RSeq";
    RAck => "RAck";
    SessionExpires => "Session-Expires", b'x';
    MinSe => "Min-SE";
    CallInfo => "Call-Info";
    AcceptContact => "Accept-Contact", b'a';
    RejectContact => "Reject-Contact", b'j';
    RequestDisposition => "Request-Disposition", b'd';
    Identity => "Identity", b'y';
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => {
                a.as_str().eq_ignore_ascii_case(b.as_str())
            }
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl Eq for HeaderName {}

/// One header field line (a comma-separated value list stays in one field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name.
    pub name: HeaderName,
    /// The value, unfolded and trimmed.
    pub value: Text,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI text (parse it with [`Message::request_uri`]).
        uri: Text,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase (may be empty).
        reason: Text,
    },
}

/// A parsed SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<Header>,
    pub(crate) body: Bytes,
}

/// Size limits applied while framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted start line + header section, in bytes.
    pub max_head_bytes: usize,
    /// Longest accepted body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// How the body length is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The datagram ends the message; Content-Length may be absent and
    /// trailing octets beyond it are ignored.
    Datagram,
    /// The message is exactly this buffer, as cut by [`frame_stream`].
    Stream,
}

impl Message {
    /// Parses one UDP datagram (RFC 3261 §18.3: Content-Length, when
    /// present, says how much of the rest is body; extra octets are ignored).
    pub fn parse_datagram(datagram: Bytes) -> Result<Message, ParseError> {
        parse_message(datagram, Framing::Datagram, &Limits::default())
    }

    /// Parses one UDP datagram with explicit limits.
    pub fn parse_datagram_with(datagram: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        parse_message(datagram, Framing::Datagram, limits)
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// All header fields in received order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The body (possibly empty).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Request { .. } => None,
            StartLine::Response { code, .. } => Some(*code),
        }
    }

    /// The reason phrase of a response.
    pub fn reason_phrase(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { .. } => None,
            StartLine::Response { reason, .. } => Some(reason.as_str()),
        }
    }

    /// Values of every field named `name`, in order (one per header line).
    pub fn header_values<'m, 'n>(
        &'m self,
        name: &'n HeaderName,
    ) -> impl Iterator<Item = &'m str> + use<'m, 'n> {
        self.headers
            .iter()
            .filter(move |header| header.name == *name)
            .map(|header| header.value.as_str())
    }

    /// The value of the first field named `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Number of header lines named `name`.
    pub fn header_count(&self, name: &HeaderName) -> usize {
        self.header_values(name).count()
    }
}

/// Offset of the first byte after any leading CRLFs (RFC 3261 §7.5).
fn skip_leading_line_breaks(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len())
}

/// End of the header section: index of the `\r\n\r\n`, searched from `from`.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let haystack = bytes.get(from..)?;
    memchr::memmem::find(haystack, b"\r\n\r\n").map(|index| index + from)
}

fn parse_message(buffer: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
    let start = skip_leading_line_breaks(&buffer);
    if start == buffer.len() {
        return Err(ParseError::Empty);
    }
    let head_end = match find_head_end(&buffer, start) {
        Some(end) => end,
        None if buffer.len() - start > limits.max_head_bytes => {
            return Err(ParseError::HeadersTooLong {
                limit: limits.max_head_bytes,
            });
        }
        None => return Err(ParseError::UnterminatedHeaders),
    };
    if head_end - start > limits.max_head_bytes {
        return Err(ParseError::HeadersTooLong {
            limit: limits.max_head_bytes,
        });
    }
    // The head including the CRLF of its last line.
    let head_bytes = buffer
        .get(start..head_end + 2)
        .ok_or(ParseError::UnterminatedHeaders)?;
    let head = std::str::from_utf8(head_bytes).map_err(|_| ParseError::NotUtf8)?;

    let mut lines = Lines::new(head);
    let (first_line_offset, first_line) = lines.next().ok_or(ParseError::Empty)??;
    debug_assert_eq!(first_line_offset, 0);
    let start_line = parse_start_line(&buffer, start, first_line)?;

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut pending: Option<PendingHeader> = None;
    for (line_number, item) in (2..).zip(lines) {
        let (offset, line) = item?;
        if line
            .as_bytes()
            .first()
            .is_some_and(|b| *b == b' ' || *b == b'\t')
        {
            let header = pending
                .as_mut()
                .ok_or(ParseError::HeaderLine { line: line_number })?;
            header.value_end = offset + line.len();
            header.folded = true;
            continue;
        }
        if let Some(header) = pending.take() {
            headers.push(header.finish(&buffer, start, head)?);
        }
        let colon = memchr::memchr(b':', line.as_bytes())
            .ok_or(ParseError::HeaderLine { line: line_number })?;
        let name = trim_wsp(line.get(..colon).unwrap_or(""));
        if !is_token(name) || line.as_bytes().first().is_some_and(|b| !is_token_byte(*b)) {
            return Err(ParseError::HeaderLine { line: line_number });
        }
        let name = match HeaderName::known(name) {
            Some(known) => known,
            None => {
                let begin = start + offset + (name.as_ptr() as usize - line.as_ptr() as usize);
                HeaderName::Other(
                    Text::from_slice(&buffer, begin..begin + name.len())
                        .ok_or(ParseError::NotUtf8)?,
                )
            }
        };
        pending = Some(PendingHeader {
            name,
            value_start: offset + colon + 1,
            value_end: offset + line.len(),
            folded: false,
        });
    }
    if let Some(header) = pending.take() {
        headers.push(header.finish(&buffer, start, head)?);
    }

    let body_start = head_end + 4;
    let available = buffer.len().saturating_sub(body_start);
    let mut declared: Option<usize> = None;
    let mut conflicting = false;
    for header in headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        let value = parse_decimal_u64(header.value.as_str())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(ParseError::ContentLength)?;
        match declared {
            Some(previous) if previous != value => conflicting = true,
            _ => declared = Some(value),
        }
    }
    let body_length = match (framing, declared, conflicting) {
        (Framing::Stream, None, _) => return Err(ParseError::MissingContentLength),
        (Framing::Stream, Some(_), true) => return Err(ParseError::ConflictingContentLength),
        // Disagreeing values in a datagram: keep everything, validation answers 400.
        (Framing::Datagram, Some(_), true) | (Framing::Datagram, None, _) => available,
        (_, Some(length), false) => {
            if length > limits.max_body_bytes {
                return Err(ParseError::BodyTooLong {
                    limit: limits.max_body_bytes,
                });
            }
            if length > available {
                return Err(ParseError::BodyTooShort {
                    declared: length,
                    available,
                });
            }
            length
        }
    };
    if body_length > limits.max_body_bytes {
        return Err(ParseError::BodyTooLong {
            limit: limits.max_body_bytes,
        });
    }
    let body = buffer.slice(body_start..body_start + body_length);
    let message = Message {
        start: start_line,
        headers,
        body,
    };
    validate_core_headers(&message)?;
    Ok(message)
}

struct PendingHeader {
    name: HeaderName,
    value_start: usize,
    value_end: usize,
    folded: bool,
}

impl PendingHeader {
    /// Builds the header; offsets are relative to `head`, which starts at
    /// `head_start` in `buffer`.
    fn finish(self, buffer: &Bytes, head_start: usize, head: &str) -> Result<Header, ParseError> {
        let raw = head
            .get(self.value_start..self.value_end)
            .ok_or(ParseError::UnterminatedHeaders)?;
        let value = if self.folded {
            let unfolded: String = raw.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            Text::from(trim_wsp(&unfolded))
        } else {
            let trimmed = trim_wsp(raw);
            let leading = raw.len() - raw.trim_start_matches([' ', '\t']).len();
            let begin = head_start + self.value_start + leading;
            Text::from_slice(buffer, begin..begin + trimmed.len()).ok_or(ParseError::NotUtf8)?
        };
        Ok(Header {
            name: self.name,
            value,
        })
    }
}

/// Iterator over the CRLF-terminated lines of a head, yielding the offset
/// and text of each line without its CRLF; a bare CR or LF is an error.
struct Lines<'a> {
    head: &'a str,
    position: usize,
    line_number: usize,
}

impl<'a> Lines<'a> {
    fn new(head: &'a str) -> Self {
        Lines {
            head,
            position: 0,
            line_number: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<(usize, &'a str), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.head.get(self.position..)?;
        if rest.is_empty() {
            return None;
        }
        self.line_number += 1;
        let bytes = rest.as_bytes();
        let Some(line_feed) = memchr::memchr(b'\n', bytes) else {
            self.position = self.head.len();
            return Some(Err(ParseError::BareLineBreak {
                line: self.line_number,
            }));
        };
        let line = match line_feed.checked_sub(1).and_then(|cr| bytes.get(cr)) {
            Some(b'\r') => rest.get(..line_feed - 1).unwrap_or(""),
            _ => {
                self.position = self.head.len();
                return Some(Err(ParseError::BareLineBreak {
                    line: self.line_number,
                }));
            }
        };
        if memchr::memchr(b'\r', line.as_bytes()).is_some() {
            self.position = self.head.len();
            return Some(Err(ParseError::BareLineBreak {
                line: self.line_number,
            }));
        }
        let offset = self.position;
        self.position += line_feed + 1;
        Some(Ok((offset, line)))
    }
}

fn parse_start_line(
    buffer: &Bytes,
    head_start: usize,
    line: &str,
) -> Result<StartLine, ParseError> {
    let mut parts = line.split(' ');
    let first = parts.next().unwrap_or("");
    let second = parts
        .next()
        .ok_or(ParseError::StartLine("too few elements"))?;
    let slice = |part: &str| -> Result<Text, ParseError> {
        let offset = part.as_ptr() as usize - line.as_ptr() as usize;
        Text::from_slice(
            buffer,
            head_start + offset..head_start + offset + part.len(),
        )
        .ok_or(ParseError::NotUtf8)
    };
    if first.len() >= 4
        && first
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line: the reason phrase is everything after the second SP.
        check_version(first)?;
        if second.len() != 3 || !second.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let code: u16 = second.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        let reason_start = first.len() + 1 + second.len() + 1;
        let reason = line.get(reason_start..).unwrap_or("");
        if reason.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        let reason = if reason.is_empty() {
            Text::default()
        } else {
            slice(reason)?
        };
        return Ok(StartLine::Response { code, reason });
    }
    let version = parts
        .next()
        .ok_or(ParseError::StartLine("too few elements"))?;
    if parts.next().is_some() {
        return Err(ParseError::StartLine("extra whitespace or elements"));
    }
    if !is_token(first) {
        return Err(ParseError::StartLine("method is not a token"));
    }
    if second.is_empty() || version.is_empty() {
        return Err(ParseError::StartLine("extra whitespace"));
    }
    check_version(version)?;
    let method = Method::from_token(first);
    let uri = slice(second)?;
    Ok(StartLine::Request { method, uri })
}

fn check_version(version: &str) -> Result<(), ParseError> {
    let Some(number) = version.get(4..) else {
        return Err(ParseError::StartLine("malformed version"));
    };
    if !version
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return Err(ParseError::StartLine("malformed version"));
    }
    if number == "2.0" {
        return Ok(());
    }
    let well_formed = number.split_once('.').is_some_and(|(major, minor)| {
        parse_decimal_u64(major).is_some() && parse_decimal_u64(minor).is_some()
    });
    if well_formed {
        Err(ParseError::UnsupportedVersion)
    } else {
        Err(ParseError::StartLine("malformed version"))
    }
}

/// What [`frame_stream`] found at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrame {
    /// Not enough bytes yet for a complete message.
    NeedMore,
    /// Keep-alive line breaks (RFC 5626 §4.4.1) to consume and discard.
    KeepAlive {
        /// Bytes to discard.
        consumed: usize,
    },
    /// A complete message occupies the first `length` bytes.
    Message {
        /// Length of the message, head and body.
        length: usize,
    },
}

/// Decides where the first message of a stream buffer ends (RFC 3261 §18.3:
/// Content-Length is mandatory on streams). An error means the framing is
/// lost and the connection should be closed.
pub fn frame_stream(buffer: &[u8], limits: &Limits) -> Result<StreamFrame, ParseError> {
    let start = skip_leading_line_breaks(buffer);
    if start > 0 {
        return Ok(StreamFrame::KeepAlive { consumed: start });
    }
    if buffer.is_empty() {
        return Ok(StreamFrame::NeedMore);
    }
    let Some(head_end) = find_head_end(buffer, 0) else {
        if buffer.len() > limits.max_head_bytes {
            return Err(ParseError::HeadersTooLong {
                limit: limits.max_head_bytes,
            });
        }
        return Ok(StreamFrame::NeedMore);
    };
    if head_end > limits.max_head_bytes {
        return Err(ParseError::HeadersTooLong {
            limit: limits.max_head_bytes,
        });
    }
    let head = buffer.get(..head_end).unwrap_or(&[]);
    let mut declared: Option<usize> = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue; // a folded continuation, not a field of its own
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line.get(..colon).unwrap_or(&[]);
        let name = trim_ascii_wsp(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(line.get(colon + 1..).unwrap_or(&[]))
            .map_err(|_| ParseError::ContentLength)?;
        let value = parse_decimal_u64(trim_wsp(value))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(ParseError::ContentLength)?;
        match declared {
            Some(previous) if previous != value => {
                return Err(ParseError::ConflictingContentLength);
            }
            _ => declared = Some(value),
        }
    }
    let body_length = declared.ok_or(ParseError::MissingContentLength)?;
    if body_length > limits.max_body_bytes {
        return Err(ParseError::BodyTooLong {
            limit: limits.max_body_bytes,
        });
    }
    let length = head_end + 4 + body_length;
    if buffer.len() < length {
        Ok(StreamFrame::NeedMore)
    } else {
        Ok(StreamFrame::Message { length })
    }
}

fn trim_ascii_wsp(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or(&[])
}

/// Accumulates bytes read from a TCP or TLS connection and cuts them into
/// messages. After an error the connection must be closed: framing is lost.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: BytesMut,
    limits: Limits,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buffer: BytesMut::new(),
            limits,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ParseError> {
        loop {
            match frame_stream(&self.buffer, &self.limits)? {
                StreamFrame::NeedMore => return Ok(None),
                StreamFrame::KeepAlive { consumed } => {
                    let _ = self.buffer.split_to(consumed);
                }
                StreamFrame::Message { length } => {
                    let bytes = self.buffer.split_to(length).freeze();
                    return parse_message(bytes, Framing::Stream, &self.limits).map(Some);
                }
            }
        }
    }
}
