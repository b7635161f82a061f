//! SIP trunks as the B2BUA sees them: where a carrier is reached
//! ([`TrunkRoute`], given by the [`crate::Directory`] for a trunk line),
//! how an external number is written into a Request-URI, and which numbers
//! an INVITE from a carrier carries (called, calling). The telephony rules
//! (which trunk a number leaves on, what an inbound call rings) stay in
//! the core; the server resolves the configured trunks into routes.

use crate::SipTransport;
use std::net::SocketAddr;
use tapir_sip::msg::{HeaderName, Message, NameAddr};

/// How calls reach one trunk's carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRoute {
    /// The carrier's SIP address (its host resolved once, when the trunk
    /// was configured).
    pub addr: SocketAddr,
    /// The carrier's host as configured (host part of Request-URI and To).
    pub host: String,
    /// The transport to the carrier.
    pub transport: SipTransport,
    /// Digest user name and password tapir answers one challenge with.
    pub credentials: Option<(String, String)>,
}

impl TrunkRoute {
    /// `host:port` of the carrier for URIs (an IPv6 host in brackets).
    pub fn host_port(&self) -> String {
        let port = self.addr.port();
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// The Request-URI of a call to `number` through this trunk.
    pub fn request_uri(&self, number: &str) -> String {
        format!(
            "sip:{}@{}{}",
            number_user(number),
            self.host_port(),
            self.transport.uri_param()
        )
    }
}

/// An external number as the user part of a SIP URI.
///
/// Visual separators (space, `-`, `.`, `(`, `)`: RFC 3966 §5.1.1) are
/// stripped rather than escaped: they carry no meaning when dialling, and
/// carriers match the digits, so `+1 (425) 882-8080` goes out as
/// `+14258828080`. Whatever else RFC 3261's `user` rule does not allow
/// (`#`, `%`, `@`, non-ASCII) is percent-encoded, so the number can never
/// break the URI; `*` and `+` are allowed as they are.
pub fn number_user(number: &str) -> String {
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\t'))
        .collect();
    tapir_sip::msg::percent_encode_user(&digits).into_owned()
}

/// The external caller's number of an INVITE from a carrier: the user of
/// the first P-Asserted-Identity (RFC 3325, what carriers assert), else of
/// From; `None` when neither names one. Only for a request already known to
/// come from a configured trunk's carrier (RFC 3325's trust domain): from
/// anyone else the header is never read.
pub fn calling_number(request: &Message) -> Option<String> {
    let asserted = HeaderName::from_wire("P-Asserted-Identity");
    let from_pai = request
        .header_values(&asserted)
        .flat_map(|v| v.split(','))
        .find_map(|v| {
            NameAddr::parse(v.trim(), "P-Asserted-Identity")
                .ok()
                .and_then(|n| crate::uri_user(&n.uri))
        })
        .filter(|u| !u.is_empty());
    from_pai.or_else(|| {
        request
            .from_header()
            .ok()
            .flatten()
            .and_then(|f| crate::uri_user(&f.uri))
            .filter(|u| !u.is_empty())
    })
}

/// The number a carrier calls: the Request-URI's user (where carriers put
/// the DID), else To's.
pub fn called_number(request: &Message) -> Option<String> {
    request
        .request_uri()
        .and_then(Result::ok)
        .and_then(|u| crate::uri_user(&u))
        .filter(|u| !u.is_empty())
        .or_else(|| {
            request
                .to_header()
                .ok()
                .flatten()
                .and_then(|t| crate::uri_user(&t.uri))
                .filter(|u| !u.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn numbers_lose_visual_separators_and_escape_the_rest() {
        assert_eq!(number_user("+1 (425) 882-8080"), "+14258828080");
        assert_eq!(number_user("0049.30.1234"), "0049301234");
        assert_eq!(number_user("*72#"), "*72%23");
        assert_eq!(number_user("1@2%"), "1%402%25");
        assert_eq!(number_user("ä"), "%C3%A4");
    }

    #[test]
    fn request_uris() {
        let route = TrunkRoute {
            addr: "127.0.0.1:5070".parse().unwrap(),
            host: "127.0.0.1".into(),
            transport: SipTransport::Tcp,
            credentials: None,
        };
        assert_eq!(
            route.request_uri("+1 425 555"),
            "sip:+1425555@127.0.0.1:5070;transport=tcp"
        );
        let v6 = TrunkRoute {
            addr: "[::1]:5060".parse().unwrap(),
            host: "::1".into(),
            transport: SipTransport::Udp,
            credentials: None,
        };
        assert_eq!(v6.request_uri("1"), "sip:1@[::1]:5060");
    }

    fn invite(extra: &str, via: &str) -> Message {
        Message::parse_datagram(Bytes::from(format!(
            "INVITE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bKx\r\n\
             From: \"Carrier\" <sip:+4930555@carrier>;tag=a\r\nTo: <sip:1002@tapir>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn numbers_of_a_carriers_invite() {
        let plain = invite("", "UDP 127.0.0.1:5099");
        assert_eq!(calling_number(&plain).as_deref(), Some("+4930555"));
        assert_eq!(called_number(&plain).as_deref(), Some("1002"));
        let asserted = invite(
            "P-Asserted-Identity: <tel:+4930666>, <sip:+4930777@carrier>\r\n",
            "UDP 127.0.0.1:5099",
        );
        assert_eq!(calling_number(&asserted).as_deref(), Some("+4930666"));
    }
}
