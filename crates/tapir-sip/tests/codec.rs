//! Codec behaviour beyond the torture suite: stream framing, compact and
//! folded headers, builders, serialisation and typed accessors.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tapir_sip::msg::{
    Contacts, HeaderName, Limits, Message, MessageBuilder, Method, ParseError, StreamFrame,
    StreamFramer, Uri, frame_stream,
};

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;rport\r\n\
Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2, \
SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-x\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@biloxi.example.com>\r\n\
f: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.example.com;transport=tcp>;expires=3600;q=0.7, sip:alice@backup.example.com\r\n\
Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:rr.example.com;lr>\r\n\
k: replaces, timer\r\n\
Require: 100rel\r\n\
Expires: 120\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\",\r\n  nonce=\"84a4cc6f3082121f32b42a2187831a9e\", uri=\"sip:bob@biloxi.example.com\",\r\n  response=\"7587245234b3434cc3412213e5f113a5\", algorithm=MD5\r\n\
r: <sip:carol@chicago.example.com?Replaces=12345%40atlanta.example.com%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>\r\n\
Replaces: 98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only\r\n\
o: refer;id=93809824\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\n";

fn invite() -> Message {
    Message::parse_datagram(Bytes::from_static(INVITE.as_bytes())).unwrap()
}

#[test]
fn compact_forms_and_multi_value_headers() {
    let m = invite();
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].rport(), Some(None));
    assert_eq!(vias[1].received(), Some("192.0.2.2".parse().unwrap()));
    assert_eq!(vias[2].port, Some(5070));
    assert_eq!(
        m.from_header()
            .unwrap()
            .unwrap()
            .display_name_unquoted()
            .unwrap(),
        "Alice \"A\""
    );
    assert_eq!(
        m.call_id().unwrap(),
        Some("a84b4c76e66710@pc33.atlanta.example.com")
    );
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].expires(), Some(3600));
    assert!(!contacts[1].bracketed);
    let routes = m.routes().unwrap();
    assert_eq!(routes.len(), 2);
    assert!(routes[1].uri.as_sip().unwrap().params.has_lr());
    assert_eq!(m.record_routes().unwrap().len(), 1);
    assert_eq!(
        m.option_tags(&HeaderName::Supported).unwrap(),
        ["replaces", "timer"]
    );
    assert_eq!(m.option_tags(&HeaderName::Require).unwrap(), ["100rel"]);
    assert_eq!(m.expires().unwrap(), Some(120));
    assert_eq!(m.body().as_ref(), b"v=0\n");
}

#[test]
fn authentication_refer_replaces_event() {
    let m = invite();
    let auth = m.auth_headers(&HeaderName::ProxyAuthorization).unwrap();
    assert!(auth[0].is_digest());
    assert_eq!(
        auth[0].param("nonce").as_deref(),
        Some("84a4cc6f3082121f32b42a2187831a9e")
    );
    assert_eq!(auth[0].param("ALGORITHM").as_deref(), Some("MD5"));
    let refer_to = m.refer_to().unwrap().unwrap();
    assert!(
        refer_to
            .uri
            .as_sip()
            .unwrap()
            .headers
            .unwrap()
            .starts_with("Replaces=")
    );
    let replaces = m.replaces().unwrap().unwrap();
    assert_eq!(replaces.call_id, "98732@sip.example.com");
    assert_eq!(replaces.to_tag(), Some("ff87ff"));
    assert_eq!(replaces.from_tag(), Some("r33th4x0r"));
    assert!(replaces.early_only());
    let event = m.event().unwrap().unwrap();
    assert_eq!((event.package, event.id()), ("refer", Some("93809824")));
}

#[test]
fn tel_and_sips_uris() {
    let tel = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
    let Uri::Tel(tel) = tel else { panic!() };
    assert!(tel.is_global());
    assert_eq!(tel.params.get("phone-context"), Some(Some("example.com")));
    let sips = Uri::parse("SIPS:alice@atlanta.example.com").unwrap();
    assert!(sips.as_sip().unwrap().secure);
}

#[test]
fn response_builder_copies_dialog_fields_and_adds_to_tag_once() {
    let m = invite();
    let ringing = m.response_builder(180, None, Some("as7d8")).build();
    assert_eq!(ringing.reason_phrase(), Some("Ringing"));
    assert_eq!(ringing.vias().unwrap().len(), 3);
    assert_eq!(ringing.to_header().unwrap().unwrap().tag(), Some("as7d8"));
    assert_eq!(ringing.header(&HeaderName::ContentLength), Some("0"));
    assert_eq!(ringing.cseq().unwrap().unwrap().number, 314159);
    assert!(
        ringing.contacts().unwrap().is_none(),
        "Contact is the TU's to add"
    );
    // A response to a response that already has a tag keeps it.
    let again = Message::parse_datagram(ringing.to_bytes()).unwrap();
    let ok = again.response_builder(200, None, Some("other")).build();
    assert_eq!(ok.to_header().unwrap().unwrap().tag(), Some("as7d8"));
    // 100 Trying never gets a tag.
    let trying = m.response_builder(100, None, Some("x")).build();
    assert_eq!(trying.to_header().unwrap().unwrap().tag(), None);
}

#[test]
fn request_builder_round_trips() {
    let body = Bytes::from_static(b"v=0\r\n");
    let built = MessageBuilder::request(Method::Options, "sip:bob@example.com")
        .header(HeaderName::Via, "SIP/2.0/TCP h.example.com;branch=z9hG4bK1")
        .header(HeaderName::From, "<sip:a@example.com>;tag=1")
        .header(HeaderName::To, "<sip:bob@example.com>")
        .header(HeaderName::CallId, "c1")
        .header(HeaderName::CSeq, "1 OPTIONS")
        .header(HeaderName::from_wire("X-Custom"), "yes")
        .body("application/sdp", body.clone())
        .build();
    let wire = built.to_bytes();
    assert_eq!(wire.len(), built.encoded_len());
    let parsed = Message::parse_datagram(wire).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(
        parsed.header(&HeaderName::from_wire("x-custom")),
        Some("yes")
    );
    assert_eq!(parsed.body(), &body);
}

#[test]
fn serialiser_uses_long_names_and_unfolds() {
    let wire = invite().to_bytes();
    let text = std::str::from_utf8(&wire).unwrap();
    assert!(text.contains("\r\nVia: SIP/2.0/UDP pc33"));
    assert!(text.contains("\r\nContent-Length: 4\r\n"));
    assert!(text.contains("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"));
}

#[test]
fn stream_framing_needs_more_then_cuts_messages() {
    let limits = Limits::default();
    let bytes = INVITE.as_bytes();
    assert_eq!(
        frame_stream(&bytes[..40], &limits),
        Ok(StreamFrame::NeedMore)
    );
    assert_eq!(
        frame_stream(&bytes[..bytes.len() - 1], &limits),
        Ok(StreamFrame::NeedMore)
    );
    assert_eq!(
        frame_stream(bytes, &limits),
        Ok(StreamFrame::Message {
            length: bytes.len()
        })
    );
    assert_eq!(
        frame_stream(b"\r\n\r\nINV", &limits),
        Ok(StreamFrame::KeepAlive { consumed: 4 })
    );

    let mut framer = StreamFramer::default();
    framer.push(b"\r\n\r\n");
    framer.push(bytes);
    framer.push(bytes);
    framer.push(&bytes[..10]);
    assert!(framer.next_message().unwrap().is_some());
    assert!(framer.next_message().unwrap().is_some());
    assert_eq!(framer.next_message(), Ok(None));
    assert_eq!(framer.buffered(), 10);
}

#[test]
fn stream_requires_content_length_and_bounds_sizes() {
    let no_length = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n";
    assert_eq!(
        frame_stream(no_length.as_bytes(), &Limits::default()),
        Err(ParseError::MissingContentLength)
    );
    let limits = Limits {
        max_head_bytes: 64,
        max_body_bytes: 10,
    };
    assert!(matches!(
        frame_stream(&[b'a'; 100], &limits),
        Err(ParseError::HeadersTooLong { .. })
    ));
    let big_body = "OPTIONS sip:a@b SIP/2.0\r\nl: 11\r\n\r\n";
    assert!(matches!(
        frame_stream(big_body.as_bytes(), &limits),
        Err(ParseError::BodyTooLong { .. })
    ));
}

#[test]
fn strict_line_endings_and_start_lines() {
    let bare_lf = "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n";
    assert!(Message::parse_datagram(Bytes::from_static(bare_lf.as_bytes())).is_err());
    for bad in [
        "OPTIONS sip:a@b SIP/2.0 \r\n\r\n",
        "OPTIONS  sip:a@b SIP/2.0\r\n\r\n",
        "OPTIONS sip:a@b\r\n\r\n",
        "SIP/2.0 20 OK\r\n\r\n",
        "SIP/2.0 700 Huh\r\n\r\n",
        "OPTIONS sip:a@b HTTP/1.1\r\n\r\n",
        "OPT<IONS sip:a@b SIP/2.0\r\n\r\n",
        "OPTIONS sip:a@b SIP/2.0\r\n: no name\r\n\r\n",
        "OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\n\r\n",
    ] {
        assert!(
            Message::parse_datagram(Bytes::from_static(bad.as_bytes())).is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(
        Message::parse_datagram(Bytes::from_static(b"OPTIONS sip:a@b SIP/3.0\r\n\r\n")),
        Err(ParseError::UnsupportedVersion)
    );
}

#[test]
fn errors_never_embed_the_input() {
    let secret =
        "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 99999999999999999999 OPTIONS-secret-token\r\n\r\n";
    let error = Message::parse_datagram(Bytes::from_static(secret.as_bytes())).unwrap_err();
    assert!(!format!("{error} {error:?}").contains("secret"));
}

#[test]
fn editing_a_received_message() {
    let mut m = invite();
    m.prepend_header(
        HeaderName::Via,
        "SIP/2.0/UDP tapir.example.com;branch=z9hG4bKtapir1",
    );
    assert_eq!(
        m.top_via().unwrap().unwrap().branch(),
        Some("z9hG4bKtapir1")
    );
    assert_eq!(m.vias().unwrap().len(), 4);
    assert_eq!(m.remove_headers(&HeaderName::Route), 1);
    assert!(m.routes().unwrap().is_empty());
    m.set_request_uri("sip:bob@192.0.2.4:5060");
    m.set_body(None, Bytes::new());
    assert!(m.content_type().unwrap().is_none());
    let reparsed = Message::parse_datagram(m.to_bytes()).unwrap();
    assert_eq!(reparsed, m);
    assert_eq!(reparsed.header(&HeaderName::ContentLength), Some("0"));
    let uri = reparsed.request_uri().unwrap().unwrap();
    assert_eq!(uri.as_sip().unwrap().port, Some(5060));
}
