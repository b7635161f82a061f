//! What the transport layer needs from a message: stamping `received` and
//! `rport` into the top Via of a received request (RFC 3261 §18.2.1,
//! RFC 3581 §4), and choosing where a response goes (RFC 3261 §18.2.2,
//! RFC 3581 §4).

use std::net::{IpAddr, SocketAddr};

use super::error::ParseError;
use super::headers::Via;
use super::message::{HeaderName, Message, Text};
use super::scan::split_commas;
use super::uri::Host;

/// Where to send a response, from the top Via of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseTarget {
    /// Reliable transport: back over the connection the request came on.
    SameConnection,
    /// This address and port.
    Address(SocketAddr),
    /// A host name to resolve (RFC 3263 §5), with the port to use.
    Resolve {
        /// Host name from `maddr` or sent-by.
        host: String,
        /// Port from sent-by, or 5060.
        port: u16,
    },
}

/// RFC 3261 §18.2.2 with RFC 3581: reliable → the same connection;
/// `maddr` → there; otherwise the `received` address (or sent-by host) at
/// the `rport` value (or sent-by port, or 5060).
pub fn response_target(via: &Via<'_>, reliable: bool) -> ResponseTarget {
    if reliable {
        return ResponseTarget::SameConnection;
    }
    let sent_by_port = via.port.unwrap_or(5060);
    if let Some(maddr) = via.maddr() {
        return match Host::parse(maddr).ok().and_then(|host| host.ip()) {
            Some(ip) => ResponseTarget::Address(SocketAddr::new(ip, sent_by_port)),
            None => ResponseTarget::Resolve {
                host: maddr.to_owned(),
                port: sent_by_port,
            },
        };
    }
    let port = via.rport().flatten().unwrap_or(sent_by_port);
    match via.received().or_else(|| via.host.ip()) {
        Some(ip) => ResponseTarget::Address(SocketAddr::new(ip, port)),
        None => ResponseTarget::Resolve {
            host: via.host.to_string(),
            port,
        },
    }
}

impl Message {
    /// Stamps the top Via of a received request with the packet's source:
    /// `received=<ip>` when the sent-by host differs from it (or when rport
    /// is requested), and the `rport` value when the client asked for it.
    pub fn stamp_top_via(&mut self, source: SocketAddr) -> Result<(), ParseError> {
        let Some(index) = self.headers.iter().position(|h| h.name == HeaderName::Via) else {
            return Err(ParseError::InvalidHeader {
                header: "Via",
                reason: "missing",
            });
        };
        let Some(header) = self.headers.get(index) else {
            return Ok(());
        };
        let value = header.value.as_str();
        let top = split_commas(value)
            .next()
            .and_then(Result::ok)
            .unwrap_or(value);
        let via = Via::parse(top)?;
        let wants_rport = matches!(via.rport(), Some(None));
        let same_host = via.host.ip() == Some(source.ip());
        if same_host && !wants_rport {
            return Ok(());
        }
        let mut stamped = String::with_capacity(value.len() + 40);
        for param in via.params.iter() {
            if param.name.eq_ignore_ascii_case("received")
                || (wants_rport && param.name.eq_ignore_ascii_case("rport"))
            {
                continue;
            }
            stamped.push(';');
            stamped.push_str(param.name);
            if let Some(param_value) = param.value {
                stamped.push('=');
                stamped.push_str(param_value);
            }
        }
        stamped.push_str(";received=");
        match source.ip() {
            IpAddr::V4(ip) => crate::msg::uri::push_ipv4(&mut stamped, ip),
            IpAddr::V6(ip) => {
                stamped.push('[');
                stamped.push_str(&ip.to_string());
                stamped.push(']');
            }
        }
        if wants_rport {
            stamped.push_str(";rport=");
            stamped.push_str(itoa::Buffer::new().format(source.port()));
        }
        let rest = value.get(top.len()..).unwrap_or("");
        let mut new_value = String::with_capacity(value.len() + stamped.len() + 16);
        for (part, separator) in [
            (via.protocol, '/'),
            (via.version, '/'),
            (via.transport, ' '),
        ] {
            new_value.push_str(part);
            new_value.push(separator);
        }
        via.host.push_to(&mut new_value);
        if let Some(port) = via.port {
            new_value.push(':');
            new_value.push_str(itoa::Buffer::new().format(port));
        }
        new_value.push_str(&stamped);
        new_value.push_str(rest);
        if let Some(header) = self.headers.get_mut(index) {
            header.value = Text::from(new_value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn request(via: &str) -> Message {
        let text = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse_datagram(Bytes::from(text)).unwrap()
    }

    #[test]
    fn rport_and_received_are_stamped_and_used() {
        let mut m = request(
            "SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP x;branch=z9hG4bK0",
        );
        m.stamp_top_via("192.0.2.7:40000".parse().unwrap()).unwrap();
        let vias = m.vias().unwrap();
        assert_eq!(vias.len(), 2);
        let top = &vias[0];
        assert_eq!(top.branch(), Some("z9hG4bK1"));
        assert_eq!(top.port, Some(5062));
        assert_eq!(top.received(), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(top.rport(), Some(Some(40000)));
        assert_eq!(
            response_target(top, false),
            ResponseTarget::Address("192.0.2.7:40000".parse().unwrap())
        );
        assert_eq!(response_target(top, true), ResponseTarget::SameConnection);
    }

    #[test]
    fn same_host_without_rport_is_left_alone() {
        let mut m = request("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1");
        let before = m.clone();
        m.stamp_top_via("192.0.2.7:5060".parse().unwrap()).unwrap();
        assert_eq!(m, before);
        let top = m.top_via().unwrap().unwrap();
        assert_eq!(
            response_target(&top, false),
            ResponseTarget::Address("192.0.2.7:5060".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_source_and_hostname_targets() {
        let mut m = request("SIP/2.0/UDP host.example.com;branch=z9hG4bK1");
        m.stamp_top_via("[2001:db8::5]:5070".parse().unwrap())
            .unwrap();
        let top = m.top_via().unwrap().unwrap();
        assert_eq!(top.received(), Some("2001:db8::5".parse().unwrap()));
        assert_eq!(
            response_target(&top, false),
            ResponseTarget::Address("[2001:db8::5]:5060".parse().unwrap())
        );
        let m =
            request("SIP/2.0/UDP host.example.com:5080;branch=z9hG4bK1;maddr=proxy.example.com");
        let top = m.top_via().unwrap().unwrap();
        assert_eq!(
            response_target(&top, false),
            ResponseTarget::Resolve {
                host: "proxy.example.com".to_owned(),
                port: 5080
            }
        );
    }
}
