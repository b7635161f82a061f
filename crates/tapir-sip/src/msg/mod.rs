//! The SIP message codec: zero-copy parsing of requests and responses from
//! datagrams and streams, typed header views, URIs, validation that maps
//! RFC 4475 failures to 400/505/drop, serialisation and response builders,
//! and the Via stamping and response routing of RFC 3261 §18 / RFC 3581.
//!
//! ```
//! use bytes::Bytes;
//! use tapir_sip::msg::Message;
//!
//! let wire = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!             Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK776\r\n\
//!             From: <sip:alice@example.com>;tag=1928\r\n\
//!             To: <sip:bob@example.com>\r\n\
//!             Call-ID: a84b4c76e66710\r\n\
//!             CSeq: 63104 OPTIONS\r\n\
//!             Content-Length: 0\r\n\r\n";
//! let message = Message::parse_datagram(Bytes::from_static(wire.as_bytes())).unwrap();
//! assert_eq!(message.top_via().unwrap().unwrap().branch(), Some("z9hG4bK776"));
//! let response = message.response_builder(200, None, Some("x1")).build();
//! assert_eq!(response.to_header().unwrap().unwrap().tag(), Some("x1"));
//! ```

mod error;
mod headers;
mod message;
mod scan;
mod transport;
mod uri;
mod validate;
mod write;

pub use error::{Disposition, ParseError, disposition_for};
pub use headers::{AuthHeader, CSeq, Contacts, Event, MediaType, NameAddr, Replaces, Via};
pub use message::{
    Header, HeaderName, Limits, Message, Method, StartLine, StreamFrame, StreamFramer, Text,
    frame_stream,
};
pub use scan::{Param, Params, first_list_element, percent_decode, percent_encode_user};
pub use transport::{ResponseTarget, response_target};
pub use uri::{AbsoluteUri, Host, SipUri, TelUri, Uri, UriParams};
pub use validate::{Rejection, check_request};
pub use write::{MessageBuilder, default_reason_phrase, stateless_rejection};
