//! Typed views of the header fields the SIP layers read: Via, From/To and
//! other name-addr headers, Call-ID, CSeq, Max-Forwards, Contact, Route,
//! Content-Type, Expires, the authentication headers, Refer-To, Replaces,
//! Event and option-tag lists. Each view borrows from its [`Message`].

use std::borrow::Cow;
use std::net::IpAddr;

use super::error::ParseError;
use super::message::{HeaderName, Message, StartLine};
use super::scan::{
    Param, Params, is_token, is_token_byte, is_word_byte, is_wsp, parse_decimal_u64,
    parse_header_params, quoted_string_end, scan_header_params, skip_wsp, split_commas, trim_wsp,
    unquote,
};
use super::uri::{Host, Uri, parse_host_port};

fn invalid(header: &'static str, reason: &'static str) -> ParseError {
    ParseError::InvalidHeader { header, reason }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, `SIP`.
    pub protocol: &'a str,
    /// Protocol version, `2.0`.
    pub version: &'a str,
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …).
    pub transport: &'a str,
    /// Host of sent-by.
    pub host: Host<'a>,
    /// Port of sent-by, when given.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (no commas).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        const H: &str = "Via";
        let bytes = text.as_bytes();
        let mut index = skip_wsp(text, 0);
        let mut fields = [""; 3];
        for (position, field) in fields.iter_mut().enumerate() {
            if position > 0 {
                index = skip_wsp(text, index);
                if bytes.get(index) != Some(&b'/') {
                    return Err(invalid(H, "malformed sent-protocol"));
                }
                index = skip_wsp(text, index + 1);
            }
            let start = index;
            while bytes.get(index).is_some_and(|b| is_token_byte(*b)) {
                index += 1;
            }
            *field = text.get(start..index).unwrap_or("");
            if field.is_empty() {
                return Err(invalid(H, "malformed sent-protocol"));
            }
        }
        let [protocol, version, transport] = fields;
        if !protocol.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(invalid(H, "unsupported protocol version"));
        }
        let after_protocol = skip_wsp(text, index);
        if after_protocol == index {
            return Err(invalid(H, "missing sent-by"));
        }
        index = after_protocol;
        let sent_by_start = index;
        if bytes.get(index) == Some(&b'[') {
            while bytes.get(index).is_some_and(|b| *b != b']') {
                index += 1;
            }
            index += 1;
        }
        while bytes.get(index).is_some_and(|b| !is_wsp(*b) && *b != b';') {
            index += 1;
        }
        let sent_by = text.get(sent_by_start..index.min(text.len())).unwrap_or("");
        let (host, port) = parse_host_port(sent_by).map_err(|_| invalid(H, "malformed sent-by"))?;
        let (params, end) =
            scan_header_params(text, index).map_err(|_| invalid(H, "malformed parameter"))?;
        if skip_wsp(text, end) != text.len() {
            return Err(invalid(H, "junk after parameters"));
        }
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch carries the RFC 3261 magic cookie and something
    /// after it (otherwise RFC 2543 transaction matching applies).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|branch| branch.len() > 7 && branch.starts_with("z9hG4bK"))
    }

    /// The `received` parameter as an address (IPv6 with or without brackets).
    pub fn received(&self) -> Option<IpAddr> {
        let value = self.params.get("received").flatten()?;
        let bare = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        bare.parse().ok()
    }

    /// The `rport` parameter: `Some(None)` when requested without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|value| value.and_then(|v| v.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact,
/// Route, Record-Route, Refer-To, Referred-By (RFC 3261 §20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept), when present.
    pub display_name: Option<&'a str>,
    /// The URI text.
    pub uri_text: &'a str,
    /// The parsed URI.
    pub uri: Uri<'a>,
    /// True when the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// Header parameters after the address (tag, expires, q, …).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value; `header` names the field in errors.
    pub fn parse(text: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bytes = text.as_bytes();
        let mut index = skip_wsp(text, 0);
        let mut display_name = None;
        let bracket_start = if bytes.get(index) == Some(&b'"') {
            let end = quoted_string_end(text, index)
                .ok_or(invalid(header, "unterminated quoted string"))?;
            display_name = text.get(index..end);
            let after = skip_wsp(text, end);
            if bytes.get(after) != Some(&b'<') {
                return Err(invalid(header, "display name without <URI>"));
            }
            Some(after)
        } else if let Some(open) = memchr::memchr(b'<', bytes) {
            let name = trim_wsp(text.get(index..open).unwrap_or(""));
            if !name.is_empty() {
                if !name.bytes().all(|b| is_token_byte(b) || is_wsp(b)) {
                    return Err(invalid(
                        header,
                        "display name is neither token nor quoted string",
                    ));
                }
                display_name = Some(name);
            }
            Some(open)
        } else {
            None
        };
        let (uri_text, after_uri, bracketed) = match bracket_start {
            Some(open) => {
                let close = memchr::memchr(b'>', bytes.get(open..).unwrap_or(&[]))
                    .map(|offset| offset + open)
                    .ok_or(invalid(header, "missing >"))?;
                (text.get(open + 1..close).unwrap_or(""), close + 1, true)
            }
            None => {
                let start = index;
                while bytes
                    .get(index)
                    .is_some_and(|b| !is_wsp(*b) && *b != b';' && *b != b',')
                {
                    index += 1;
                }
                (text.get(start..index).unwrap_or(""), index, false)
            }
        };
        let uri = Uri::parse(uri_text).map_err(|_| invalid(header, "malformed URI"))?;
        if !bracketed && matches!(uri, Uri::Sip(_)) && uri_text.contains('?') {
            return Err(invalid(header, "URI with headers must be enclosed in <>"));
        }
        let (params, end) = scan_header_params(text, after_uri)
            .map_err(|_| invalid(header, "malformed parameter"))?;
        if skip_wsp(text, end) != text.len() {
            return Err(invalid(header, "junk after address"));
        }
        Ok(NameAddr {
            display_name,
            uri_text,
            uri,
            bracketed,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name without quotes and escapes.
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(unquote)
    }

    /// The `expires` contact parameter, saturated at `u32::MAX`.
    pub fn expires(&self) -> Option<u32> {
        let value = self.params.get("expires").flatten()?;
        parse_delta_seconds(value)
    }

    /// The `q` contact parameter as written.
    pub fn q(&self) -> Option<&'a str> {
        self.params.get("q").flatten()
    }
}

/// delta-seconds, saturating at `u32::MAX` (RFC 3261 §20.19 reads larger
/// values as the largest one).
fn parse_delta_seconds(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(parse_decimal_u64(text).map_or(u32::MAX, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// The Contact header field: `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *` (remove all bindings, REGISTER only).
    Wildcard,
    /// One or more addresses.
    Addresses(Vec<NameAddr<'a>>),
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number, below 2^31.
    pub number: u32,
    /// Method token.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses `number LWS method`.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        const H: &str = "CSeq";
        let text = trim_wsp(text);
        let split = text.find([' ', '\t']).ok_or(invalid(H, "missing method"))?;
        let number = text.get(..split).unwrap_or("");
        let method = trim_wsp(text.get(split..).unwrap_or(""));
        let number =
            parse_decimal_u64(number).ok_or(invalid(H, "sequence number is not a number"))?;
        if number >= 1 << 31 {
            return Err(invalid(H, "sequence number out of range"));
        }
        if !is_token(method) {
            return Err(invalid(H, "method is not a token"));
        }
        Ok(CSeq {
            number: u32::try_from(number)
                .map_err(|_| invalid(H, "sequence number out of range"))?,
            method,
        })
    }
}

/// A media type (Content-Type, RFC 3261 §20.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Type, e.g. `application`.
    pub kind: &'a str,
    /// Subtype, e.g. `sdp`.
    pub subtype: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type/subtype *(;param)`.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        const H: &str = "Content-Type";
        let bytes = text.as_bytes();
        let mut index = skip_wsp(text, 0);
        let kind_start = index;
        while bytes.get(index).is_some_and(|b| is_token_byte(*b)) {
            index += 1;
        }
        let kind = text.get(kind_start..index).unwrap_or("");
        index = skip_wsp(text, index);
        if kind.is_empty() || bytes.get(index) != Some(&b'/') {
            return Err(invalid(H, "malformed media type"));
        }
        index = skip_wsp(text, index + 1);
        let subtype_start = index;
        while bytes.get(index).is_some_and(|b| is_token_byte(*b)) {
            index += 1;
        }
        let subtype = text.get(subtype_start..index).unwrap_or("");
        if subtype.is_empty() {
            return Err(invalid(H, "malformed media type"));
        }
        let params = parse_header_params(text.get(index..).unwrap_or(""))
            .map_err(|_| invalid(H, "malformed parameter"))?;
        Ok(MediaType {
            kind,
            subtype,
            params,
        })
    }

    /// True when this is `kind/subtype` (case-insensitive).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Credentials or a challenge: Authorization, Proxy-Authorization,
/// WWW-Authenticate, Proxy-Authenticate (RFC 3261 §20.7, §25.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader<'a> {
    /// Scheme as written (`Digest`, or anything else).
    pub scheme: &'a str,
    /// Everything after the scheme.
    pub data: &'a str,
}

impl<'a> AuthHeader<'a> {
    /// Parses `scheme LWS data`; the data is split into parameters on demand.
    pub fn parse(text: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let text = trim_wsp(text);
        let (scheme, data) = match text.find([' ', '\t']) {
            Some(split) => (
                text.get(..split).unwrap_or(""),
                trim_wsp(text.get(split..).unwrap_or("")),
            ),
            None => (text, ""),
        };
        if !is_token(scheme) {
            return Err(invalid(header, "malformed auth scheme"));
        }
        Ok(AuthHeader { scheme, data })
    }

    /// True for the Digest scheme.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// The `name=value` parameters; `None` when the data is not a
    /// comma-separated parameter list (e.g. a token68).
    pub fn params(&self) -> Option<Vec<Param<'a>>> {
        let mut params = Vec::new();
        for element in split_commas(self.data) {
            let element = element.ok()?;
            let (name, value) = element.split_once('=')?;
            let name = trim_wsp(name);
            let value = trim_wsp(value);
            if !is_token(name) {
                return None;
            }
            let value_ok = if value.starts_with('"') {
                quoted_string_end(value, 0) == Some(value.len())
            } else {
                is_token(value)
            };
            if !value_ok {
                return None;
            }
            params.push(Param {
                name,
                value: Some(value),
            });
        }
        Some(params)
    }

    /// The value of parameter `name` (case-insensitive), unquoted.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()?
            .into_iter()
            .find(|param| param.name.eq_ignore_ascii_case(name))
            .and_then(|param| param.unquoted_value())
    }
}

/// The Replaces header (RFC 3891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    /// The Call-ID of the dialog to replace.
    pub call_id: &'a str,
    /// Parameters (`to-tag`, `from-tag`, `early-only`).
    pub params: Params<'a>,
}

impl<'a> Replaces<'a> {
    /// Parses `callid *(;param)`.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        const H: &str = "Replaces";
        let text = trim_wsp(text);
        let end = text.find([';', ' ', '\t']).unwrap_or(text.len());
        let call_id = text.get(..end).unwrap_or("");
        if !is_call_id(call_id) {
            return Err(invalid(H, "malformed Call-ID"));
        }
        let params = parse_header_params(text.get(end..).unwrap_or(""))
            .map_err(|_| invalid(H, "malformed parameter"))?;
        Ok(Replaces { call_id, params })
    }

    /// The `to-tag` parameter.
    pub fn to_tag(&self) -> Option<&'a str> {
        self.params.get("to-tag").flatten()
    }

    /// The `from-tag` parameter.
    pub fn from_tag(&self) -> Option<&'a str> {
        self.params.get("from-tag").flatten()
    }

    /// True with the `early-only` flag.
    pub fn early_only(&self) -> bool {
        self.params.contains("early-only")
    }
}

/// The Event header (RFC 6665).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Event package, e.g. `refer`.
    pub package: &'a str,
    /// Parameters (`id`, …).
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// Parses `event-type *(;param)`.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        const H: &str = "Event";
        let text = trim_wsp(text);
        let end = text.find([';', ' ', '\t']).unwrap_or(text.len());
        let package = text.get(..end).unwrap_or("");
        if !is_token(package) {
            return Err(invalid(H, "malformed event type"));
        }
        let params = parse_header_params(text.get(end..).unwrap_or(""))
            .map_err(|_| invalid(H, "malformed parameter"))?;
        Ok(Event { package, params })
    }

    /// The `id` parameter.
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// True for `word ["@" word]` (RFC 3261 callid).
pub(crate) fn is_call_id(text: &str) -> bool {
    let (left, right) = match text.split_once('@') {
        Some((left, right)) => (left, Some(right)),
        None => (text, None),
    };
    let is_word = |w: &str| !w.is_empty() && w.bytes().all(is_word_byte);
    is_word(left) && right.is_none_or(is_word)
}

/// Typed accessors. Each returns `Ok(None)` when the header is absent and
/// an error when it is present but malformed.
impl Message {
    /// The Request-URI, parsed.
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, ParseError>> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(Uri::parse(uri.as_str())),
            StartLine::Response { .. } => None,
        }
    }

    /// Every Via value, top first, across all Via lines.
    pub fn vias(&self) -> Result<Vec<Via<'_>>, ParseError> {
        let mut vias = Vec::new();
        for value in self.header_values(&HeaderName::Via) {
            for element in split_commas(value) {
                let element = element.map_err(|_| invalid("Via", "unbalanced quotes"))?;
                vias.push(Via::parse(element)?);
            }
        }
        Ok(vias)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Option<Via<'_>>, ParseError> {
        let Some(value) = self.header(&HeaderName::Via) else {
            return Ok(None);
        };
        let first = split_commas(value)
            .next()
            .unwrap_or(Ok(""))
            .map_err(|_| invalid("Via", "unbalanced quotes"))?;
        Via::parse(first).map(Some)
    }

    fn single_name_addr(&self, name: &HeaderName) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.header(name)
            .map(|value| NameAddr::parse(value, name.static_name()))
            .transpose()
    }

    fn name_addr_list(&self, name: &HeaderName) -> Result<Vec<NameAddr<'_>>, ParseError> {
        let mut list = Vec::new();
        let header = name.static_name();
        for value in self.header_values(name) {
            for element in split_commas(value) {
                let element =
                    element.map_err(|_| invalid(header, "unbalanced quotes or brackets"))?;
                list.push(NameAddr::parse(element, header)?);
            }
        }
        Ok(list)
    }

    /// The From header.
    pub fn from_header(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.single_name_addr(&HeaderName::From)
    }

    /// The To header.
    pub fn to_header(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.single_name_addr(&HeaderName::To)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<Option<&str>, ParseError> {
        match self.header(&HeaderName::CallId) {
            None => Ok(None),
            Some(value) if is_call_id(value) => Ok(Some(value)),
            Some(_) => Err(invalid("Call-ID", "not word[@word]")),
        }
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<Option<CSeq<'_>>, ParseError> {
        self.header(&HeaderName::CSeq).map(CSeq::parse).transpose()
    }

    /// Max-Forwards (0..=255).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.header(&HeaderName::MaxForwards)
            .map(|value| {
                parse_decimal_u64(value)
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or(invalid("Max-Forwards", "not a number in 0..=255"))
            })
            .transpose()
    }

    /// The Contact header fields.
    pub fn contacts(&self) -> Result<Option<Contacts<'_>>, ParseError> {
        let mut values = self.header_values(&HeaderName::Contact).peekable();
        let Some(first) = values.peek() else {
            return Ok(None);
        };
        if *first == "*" {
            if self.header_count(&HeaderName::Contact) > 1 {
                return Err(invalid("Contact", "* must be the only contact"));
            }
            return Ok(Some(Contacts::Wildcard));
        }
        let list = self.name_addr_list(&HeaderName::Contact)?;
        if list.is_empty() {
            return Err(invalid("Contact", "empty"));
        }
        Ok(Some(Contacts::Addresses(list)))
    }

    /// The Route set, top first.
    pub fn routes(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.name_addr_list(&HeaderName::Route)
    }

    /// The Path set (RFC 3327) of a REGISTER, top first: the proxy
    /// nearest the registrar first.
    pub fn paths(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.name_addr_list(&HeaderName::Path)
    }

    /// The Record-Route set, top first.
    pub fn record_routes(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.name_addr_list(&HeaderName::RecordRoute)
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, ParseError> {
        self.header(&HeaderName::ContentType)
            .map(MediaType::parse)
            .transpose()
    }

    /// Accept: the listed media types (`Ok(None)` when absent).
    pub fn accept(&self) -> Result<Option<Vec<MediaType<'_>>>, ParseError> {
        if self.header_count(&HeaderName::Accept) == 0 {
            return Ok(None);
        }
        let mut types = Vec::new();
        for value in self.header_values(&HeaderName::Accept) {
            for element in split_commas(value) {
                let element = element.map_err(|_| invalid("Accept", "unbalanced quotes"))?;
                if !element.is_empty() {
                    types.push(MediaType::parse(element)?);
                }
            }
        }
        Ok(Some(types))
    }

    /// Expires, in seconds (saturated at `u32::MAX`).
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.header(&HeaderName::Expires)
            .map(|value| parse_delta_seconds(value).ok_or(invalid("Expires", "not delta-seconds")))
            .transpose()
    }

    /// Authorization / Proxy-Authorization / WWW-Authenticate /
    /// Proxy-Authenticate values of the given header, one per line.
    pub fn auth_headers(&self, name: &HeaderName) -> Result<Vec<AuthHeader<'_>>, ParseError> {
        self.header_values(name)
            .map(|value| AuthHeader::parse(value, name.static_name()))
            .collect()
    }

    /// Refer-To (RFC 3515).
    pub fn refer_to(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.single_name_addr(&HeaderName::ReferTo)
    }

    /// Replaces (RFC 3891).
    pub fn replaces(&self) -> Result<Option<Replaces<'_>>, ParseError> {
        self.header(&HeaderName::Replaces)
            .map(Replaces::parse)
            .transpose()
    }

    /// Event (RFC 6665).
    pub fn event(&self) -> Result<Option<Event<'_>>, ParseError> {
        self.header(&HeaderName::Event)
            .map(Event::parse)
            .transpose()
    }

    /// Option tags of Require, Proxy-Require, Supported or Unsupported.
    pub fn option_tags(&self, name: &HeaderName) -> Result<Vec<&str>, ParseError> {
        let mut tags = Vec::new();
        for value in self.header_values(name) {
            for element in value.split(',') {
                let tag = trim_wsp(element);
                if tag.is_empty() {
                    continue;
                }
                if !is_token(tag) {
                    return Err(invalid(name.static_name(), "option tag is not a token"));
                }
                tags.push(tag);
            }
        }
        Ok(tags)
    }
}
