//! URIs as they appear in SIP messages: `sip:`/`sips:` (RFC 3261 §19.1),
//! `tel:` (RFC 3966) and any other scheme kept as an opaque absolute URI so
//! that an element can still parse the message and answer 416.
//!
//! All values borrow from the message text; escapes are kept as received
//! and decoded on request ([`percent_decode`]).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::scan::{is_token_byte, percent_decode};

/// A parsed URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque.
    Absolute(AbsoluteUri<'a>),
}

impl<'a> Uri<'a> {
    /// Parses a URI with no surrounding whitespace or brackets.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let colon = text
            .find(':')
            .ok_or(ParseError::InvalidUri("missing scheme"))?;
        let scheme = text.get(..colon).unwrap_or("");
        let rest = text.get(colon + 1..).unwrap_or("");
        if !is_scheme(scheme) {
            return Err(ParseError::InvalidUri("malformed scheme"));
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || matches!(b, b'<' | b'>' | b'"') || b < 0x20)
        {
            return Err(ParseError::InvalidUri("forbidden character"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(scheme, false, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(scheme, true, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_after_scheme(scheme, rest).map(Uri::Tel)
        } else if rest.is_empty() {
            Err(ParseError::InvalidUri("empty absolute URI"))
        } else {
            Ok(Uri::Absolute(AbsoluteUri { scheme, rest }))
        }
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(uri) => uri.scheme,
            Uri::Tel(uri) => uri.scheme,
            Uri::Absolute(uri) => uri.scheme,
        }
    }

    /// The SIP URI, when it is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(uri) => Some(uri),
            _ => None,
        }
    }
}

fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A URI of a scheme this stack does not interpret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    /// Scheme as written.
    pub scheme: &'a str,
    /// Everything after the first `:`.
    pub rest: &'a str,
}

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name (case-insensitive).
    Domain(&'a str),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// A bracketed IPv6 reference.
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses a host: `[v6]`, dotted IPv4 or hostname.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(ParseError::InvalidUri("unterminated IPv6 reference"))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| ParseError::InvalidUri("malformed IPv6 reference"));
        }
        if text.is_empty() {
            return Err(ParseError::InvalidUri("empty host"));
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return text
                .parse::<Ipv4Addr>()
                .map(Host::V4)
                .map_err(|_| ParseError::InvalidUri("malformed IPv4 address"));
        }
        let valid_label_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid_label_chars || text.starts_with('.') || text.contains("..") {
            return Err(ParseError::InvalidUri("malformed host name"));
        }
        Ok(Host::Domain(text))
    }

    /// Parses a host as an operator writes it in a setting (a SIP domain):
    /// like [`Host::parse`], and a bare IPv6 address (`::1`) too, which a
    /// URI only takes bracketed. Display then writes it bracketed, so
    /// `format!("sip:{user}@{host}")` is a valid URI for every family.
    pub fn from_name(text: &'a str) -> Result<Self, ParseError> {
        match text.parse::<Ipv6Addr>() {
            Ok(address) => Ok(Host::V6(address)),
            Err(_) => Host::parse(text),
        }
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(address) => Some(IpAddr::V4(*address)),
            Host::V6(address) => Some(IpAddr::V6(*address)),
        }
    }

    /// True for the IPv4 limited broadcast address (RFC 4475 §3.3.10: never
    /// send to it).
    pub fn is_broadcast(&self) -> bool {
        matches!(self, Host::V4(address) if address.is_broadcast())
    }

    /// Case-insensitive equality for domains, address equality otherwise.
    pub fn same_as(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::V4(a), Host::V4(b)) => a == b,
            (Host::V6(a), Host::V6(b)) => a == b,
            _ => false,
        }
    }
}

impl Host<'_> {
    /// Appends the host as [`Display`](std::fmt::Display) writes it, without
    /// the formatting machinery (this runs for every message's Via).
    pub fn push_to(&self, out: &mut String) {
        match self {
            Host::Domain(name) => out.push_str(name),
            Host::V4(address) => push_ipv4(out, *address),
            Host::V6(address) => {
                use std::fmt::Write as _;
                let _ = write!(out, "[{address}]");
            }
        }
    }
}

/// Appends a dotted IPv4 address (what `Ipv4Addr`'s `Display` writes).
pub fn push_ipv4(out: &mut String, address: Ipv4Addr) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in address.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(digits.format(octet));
    }
}

impl std::fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::V4(address) => write!(f, "{address}"),
            Host::V6(address) => write!(f, "[{address}]"),
        }
    }
}

/// Splits `host[:port]` where host may be an IPv6 reference.
pub(crate) fn parse_host_port(text: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    let (host_text, port_text) = if text.starts_with('[') {
        let close = text
            .find(']')
            .ok_or(ParseError::InvalidUri("unterminated IPv6 reference"))?;
        let host = text.get(..=close).unwrap_or("");
        let after = text.get(close + 1..).unwrap_or("");
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(ParseError::InvalidUri("junk after IPv6 reference")),
        }
    } else {
        match split_at_byte(text, b':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host = Host::parse(host_text)?;
    let port = match port_text {
        None => None,
        Some(port) => Some(parse_port(port)?),
    };
    Ok((host, port))
}

/// `text` split around the first `delimiter` (an ASCII byte, so both sides
/// stay `str`), found with memchr: these splits run several times for every
/// URI of every message.
fn split_at_byte(text: &str, delimiter: u8) -> Option<(&str, &str)> {
    let at = memchr::memchr(delimiter, text.as_bytes())?;
    Some((text.get(..at)?, text.get(at + 1..)?))
}

fn parse_port(text: &str) -> Result<u16, ParseError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::InvalidUri("malformed port"));
    }
    text.parse()
        .map_err(|_| ParseError::InvalidUri("port out of range"))
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// Scheme as written (`sip` or `sips`, any case).
    pub scheme: &'a str,
    /// True for `sips:`.
    pub secure: bool,
    /// User part, escapes kept.
    pub user: Option<&'a str>,
    /// Password, escapes kept.
    pub password: Option<&'a str>,
    /// Host.
    pub host: Host<'a>,
    /// Port, when given.
    pub port: Option<u16>,
    /// URI parameters, starting with `;` (e.g. `;transport=tcp;lr`).
    pub params: UriParams<'a>,
    /// Headers after `?`, escapes kept (e.g. `Route=%3Csip:x%3E`).
    pub headers: Option<&'a str>,
}

impl<'a> SipUri<'a> {
    /// Parses a SIP or SIPS URI.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        match Uri::parse(text)? {
            Uri::Sip(uri) => Ok(uri),
            _ => Err(ParseError::InvalidUri("not a SIP URI")),
        }
    }

    fn parse_after_scheme(
        scheme: &'a str,
        secure: bool,
        rest: &'a str,
    ) -> Result<Self, ParseError> {
        let (userinfo, host_and_more) = match memchr::memchr(b'@', rest.as_bytes()) {
            Some(at) => (
                Some(rest.get(..at).unwrap_or("")),
                rest.get(at + 1..).unwrap_or(""),
            ),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match split_at_byte(info, b':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                if user.is_empty() {
                    return Err(ParseError::InvalidUri("empty user part"));
                }
                (Some(user), password)
            }
        };
        let (before_headers, headers) = match split_at_byte(host_and_more, b'?') {
            Some((before, headers)) => (before, Some(headers)),
            None => (host_and_more, None),
        };
        let (host_port, params) = match memchr::memchr(b';', before_headers.as_bytes()) {
            Some(semi) => (
                before_headers.get(..semi).unwrap_or(""),
                before_headers.get(semi..).unwrap_or(""),
            ),
            None => (before_headers, ""),
        };
        let (host, port) = parse_host_port(host_port)?;
        let params = UriParams::parse(params)?;
        if let Some(headers) = headers
            && !headers.split('&').all(|header| {
                header
                    .split_once('=')
                    .is_some_and(|(name, _)| !name.is_empty())
            })
        {
            return Err(ParseError::InvalidUri("malformed URI headers"));
        }
        Ok(SipUri {
            scheme,
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The user part with escapes decoded (may contain any byte).
    pub fn user_decoded(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(percent_decode)
    }

    /// RFC 3261 §19.1.4 equivalence: escapes decoded in the user part,
    /// case-insensitive host, same port, the parameters `user`, `ttl`,
    /// `method`, `maddr` and `transport` must match when either side has
    /// them, other parameters when both have them; headers must match.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        if self.secure != other.secure
            || self.user_decoded() != other.user_decoded()
            || self.password.map(percent_decode) != other.password.map(percent_decode)
            || !self.host.same_as(&other.host)
            || self.port != other.port
        {
            return false;
        }
        for name in ["user", "ttl", "method", "maddr", "transport"] {
            let left = self.params.get(name).map(|v| v.map(percent_decode));
            let right = other.params.get(name).map(|v| v.map(percent_decode));
            if !params_equal(left, right) {
                return false;
            }
        }
        for (name, value) in self.params.iter() {
            if let Some(theirs) = other.params.get(name) {
                let left = Some(value.map(percent_decode));
                let right = Some(theirs.map(percent_decode));
                if !params_equal(left, right) {
                    return false;
                }
            }
        }
        self.headers.map(percent_decode) == other.headers.map(percent_decode)
    }
}

fn params_equal(left: Option<Option<Cow<'_, [u8]>>>, right: Option<Option<Cow<'_, [u8]>>>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(None), Some(None)) => true,
        (Some(Some(a)), Some(Some(b))) => a.eq_ignore_ascii_case(&b),
        _ => false,
    }
}

/// URI parameters (`;name[=value]` without whitespace), kept as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriParams<'a> {
    raw: &'a str,
}

fn is_uri_param_byte(byte: u8) -> bool {
    is_token_byte(byte)
        || matches!(
            byte,
            b'[' | b']' | b'/' | b':' | b'&' | b'$' | b'(' | b')' | b'%'
        )
}

impl<'a> UriParams<'a> {
    fn parse(raw: &'a str) -> Result<Self, ParseError> {
        let params = UriParams { raw };
        if raw.is_empty() {
            return Ok(params);
        }
        let Some(body) = raw.strip_prefix(';') else {
            return Err(ParseError::InvalidUri("malformed URI parameters"));
        };
        for param in body.split(';') {
            let (name, value) = match split_at_byte(param, b'=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            };
            let name_ok = !name.is_empty() && name.bytes().all(is_uri_param_byte);
            let value_ok = value.is_none_or(|v| !v.is_empty() && v.bytes().all(is_uri_param_byte));
            if !name_ok || !value_ok {
                return Err(ParseError::InvalidUri("malformed URI parameter"));
            }
        }
        Ok(params)
    }

    /// The parameter text as received, starting with `;` (may be empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Iterates over `(name, value)` pairs, escapes kept.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.raw
            .strip_prefix(';')
            .unwrap_or("")
            .split(';')
            .filter(|param| !param.is_empty())
            .map(|param| match param.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            })
    }

    /// The first parameter named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// True when the URI carries the `lr` flag (loose routing).
    pub fn has_lr(&self) -> bool {
        self.get("lr").is_some()
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// Scheme as written.
    pub scheme: &'a str,
    /// The number, visual separators kept (`+1-201-555-0123`).
    pub number: &'a str,
    /// Parameters, starting with `;`.
    pub params: UriParams<'a>,
}

impl<'a> TelUri<'a> {
    fn parse_after_scheme(scheme: &'a str, rest: &'a str) -> Result<Self, ParseError> {
        let (number, params) = match rest.find(';') {
            Some(semi) => (
                rest.get(..semi).unwrap_or(""),
                rest.get(semi..).unwrap_or(""),
            ),
            None => (rest, ""),
        };
        let valid_number = number
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            && number.bytes().all(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
            });
        if !valid_number {
            return Err(ParseError::InvalidUri("malformed telephone number"));
        }
        Ok(TelUri {
            scheme,
            number,
            params: UriParams::parse(params)?,
        })
    }

    /// True for a global number (`+` followed by digits).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_pushed_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.45",
            "255.255.255.255",
            "[2001:db8::1]",
            "example.com",
        ] {
            let host = Host::parse(text).unwrap();
            let mut pushed = String::new();
            host.push_to(&mut pushed);
            assert_eq!(pushed, host.to_string());
            assert_eq!(pushed, text);
        }
    }

    #[test]
    fn sip_uri_with_everything() {
        let uri = SipUri::parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi")
            .unwrap();
        assert!(uri.secure);
        assert_eq!(uri.user, Some("alice"));
        assert_eq!(uri.password, Some("secret"));
        assert_eq!(uri.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(uri.port, Some(5061));
        assert_eq!(uri.params.get("transport"), Some(Some("tcp")));
        assert!(uri.params.has_lr());
        assert_eq!(uri.headers, Some("Subject=hi"));
    }

    #[test]
    fn ipv6_port_ambiguity() {
        let uri = SipUri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(uri.port, None);
        let uri = SipUri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(uri.port, Some(5070));
        assert!(SipUri::parse("sip:2001:db8::10").is_err());
        assert!(SipUri::parse("sip:user@[2001:db8:::192.0.2.1]").is_err());
    }

    #[test]
    fn a_configured_ipv6_domain_is_bracketed_in_uris() {
        let host = Host::from_name("::1").unwrap();
        assert_eq!(host, Host::V6("::1".parse().unwrap()));
        assert_eq!(format!("sip:1002@{host}"), "sip:1002@[::1]");
        assert!(SipUri::parse(&format!("sip:1002@{host}")).is_ok());
        assert_eq!(Host::from_name("[::1]").unwrap(), host);
        assert!(host.same_as(&Host::from_name("0:0::1").unwrap()));
        assert_eq!(
            Host::from_name("127.0.0.1").unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(
            Host::from_name("pbx.example.com").unwrap().to_string(),
            "pbx.example.com"
        );
        assert!(Host::from_name("::1]").is_err());
    }

    #[test]
    fn escaped_user_compares_equal() {
        let a = SipUri::parse("sip:%75se%72@example.com").unwrap();
        let b = SipUri::parse("sip:user@EXAMPLE.com").unwrap();
        assert!(a.equivalent(&b));
        let c = SipUri::parse("sip:user@example.com;transport=tcp").unwrap();
        assert!(!b.equivalent(&c));
    }

    #[test]
    fn unknown_schemes_stay_opaque() {
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Absolute(_))
        ));
        assert!(matches!(
            Uri::parse("tel:+1-201-555-0123;phone-context=x"),
            Ok(Uri::Tel(_))
        ));
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
    }
}
