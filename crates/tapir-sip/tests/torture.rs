//! RFC 4475 and RFC 5118 torture messages, one test per file, asserting the
//! class listed in `tests/torture/index.tsv` (a byte-exact copy of the
//! team's `shared/sip-torture/`).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use tapir_sip::msg::{
    Contacts, Disposition, HeaderName, Host, Message, ParseError, Uri, check_request,
    disposition_for,
};

fn load(name: &str) -> Bytes {
    let path = format!("{}/tests/torture/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// What an element does with the datagram, as far as the codec can tell.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Respond(u16),
    Drop,
}

fn outcome(datagram: &Bytes) -> Outcome {
    match Message::parse_datagram(datagram.clone()) {
        Err(error) => match disposition_for(datagram, &error) {
            Disposition::Respond { status, .. } => Outcome::Respond(status),
            Disposition::Drop => Outcome::Drop,
        },
        Ok(message) if message.is_request() => match check_request(&message) {
            Ok(()) => Outcome::Accepted,
            Err(rejection) => Outcome::Respond(rejection.status),
        },
        Ok(_) => Outcome::Accepted,
    }
}

/// Parses a message that must be accepted and checks that the fields a
/// transaction layer needs are readable.
fn valid(name: &str) -> Message {
    let datagram = load(name);
    let message =
        Message::parse_datagram(datagram.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outcome(&datagram), Outcome::Accepted, "{name}");
    assert!(!message.vias().unwrap().is_empty(), "{name}: Via");
    message.top_via().unwrap().unwrap();
    message.from_header().unwrap().unwrap();
    message.to_header().unwrap().unwrap();
    message.call_id().unwrap().unwrap();
    message.cseq().unwrap().unwrap();
    // Round trip: what we write parses again to the same thing.
    let reparsed = Message::parse_datagram(message.to_bytes()).unwrap();
    assert_eq!(
        reparsed.to_bytes(),
        message.to_bytes(),
        "{name}: round trip"
    );
    message
}

fn rejected(name: &str, expected: Outcome) -> ParseError {
    let datagram = load(name);
    assert_eq!(outcome(&datagram), expected, "{name}");
    Message::parse_datagram(datagram).expect_err(name)
}

// ---- RFC 4475 §3.1.1: valid messages ----

#[test]
fn wsinv_short_tortuous_invite() {
    let m = valid("wsinv.dat");
    assert_eq!(m.to_header().unwrap().unwrap().tag(), Some("1918181833n"));
    let from = m.from_header().unwrap().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name_unquoted().unwrap(), "J Rosenberg \\\"");
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.cseq().unwrap().unwrap().number, 9);
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, Host::V4(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert_eq!(contacts[0].q(), Some("0.33"));
    assert_eq!(contacts[0].params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(m.header(&HeaderName::Subject), Some(""));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = valid("intmeth.dat");
    assert_eq!(
        m.method().unwrap().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let uri = m.request_uri().unwrap().unwrap();
    let sip = uri.as_sip().unwrap();
    assert_eq!(
        sip.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        sip.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert!(
        m.from_header()
            .unwrap()
            .unwrap()
            .params
            .contains("fromParam''~+*_!.-%")
    );
}

#[test]
fn esc01_escapes_compare_equal() {
    let m = valid("esc01.dat");
    let to = m.to_header().unwrap().unwrap();
    let unescaped = tapir_sip::msg::SipUri::parse("sip:user@example.com").unwrap();
    assert!(to.uri.as_sip().unwrap().equivalent(&unescaped));
    let from = m.from_header().unwrap().unwrap();
    assert_eq!(
        from.uri.as_sip().unwrap().user_decoded().unwrap().as_ref(),
        b"I have spaces"
    );
}

#[test]
fn escnull_escaped_nulls_do_not_truncate() {
    let m = valid("escnull.dat");
    let to = m.to_header().unwrap().unwrap();
    assert_eq!(
        to.uri.as_sip().unwrap().user_decoded().unwrap().as_ref(),
        b"null-\0-null"
    );
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        contacts[1]
            .uri
            .as_sip()
            .unwrap()
            .user_decoded()
            .unwrap()
            .as_ref(),
        b"\0\0"
    );
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let m = valid("esc02.dat");
    assert_eq!(m.method().unwrap().as_str(), "RE%47IST%45R");
    // C%6Fntact is an extension header, not a Contact.
    assert_eq!(m.header_count(&HeaderName::Contact), 2);
}

#[test]
fn lwsdisp_no_space_before_angle() {
    let m = valid("lwsdisp.dat");
    assert_eq!(
        m.from_header().unwrap().unwrap().display_name,
        Some("caller")
    );
}

#[test]
fn longreq_long_values() {
    let m = valid("longreq.dat");
    assert_eq!(m.vias().unwrap().len(), 34);
    assert!(m.to_header().unwrap().unwrap().display_name.unwrap().len() > 100);
}

#[test]
fn dblreq_trailing_octets_ignored() {
    let m = valid("dblreq.dat");
    assert_eq!(m.method().unwrap().as_str(), "REGISTER");
    assert!(m.body().is_empty());
}

#[test]
fn semiuri_semicolon_in_user_part() {
    let m = valid("semiuri.dat");
    let uri = m.request_uri().unwrap().unwrap();
    let sip = uri.as_sip().unwrap();
    assert_eq!(sip.user, Some("user;par=u%40example.net"));
    assert_eq!(sip.host, Host::Domain("example.com"));
}

#[test]
fn transports_varied_and_unknown() {
    let m = valid("transports.dat");
    let transports: Vec<_> = m.vias().unwrap().iter().map(|v| v.transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_binary_multipart_body() {
    let m = valid("mpart01.dat");
    let media = m.content_type().unwrap().unwrap();
    assert!(media.is("multipart", "mixed"));
    assert_eq!(media.params.get("boundary"), Some(Some("7a9cbec02ceef655")));
    assert!(m.body().contains(&0));
    let declared: usize = m
        .header(&HeaderName::ContentLength)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(m.body().len(), declared);
}

#[test]
fn unreason_unusual_reason_phrase() {
    let m = valid("unreason.dat");
    assert_eq!(m.status_code(), Some(200));
    assert!(m.reason_phrase().unwrap().starts_with("= 2**3 * 5**2 "));
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = valid("noreason.dat");
    assert_eq!(m.status_code(), Some(100));
    assert_eq!(m.reason_phrase(), Some(""));
}

// ---- RFC 4475 §3.1.2: invalid messages ----

#[test]
fn badinv01_extraneous_separators() {
    rejected("badinv01.dat", Outcome::Respond(400));
}

#[test]
fn clerr_content_length_larger_than_message() {
    let error = rejected("clerr.dat", Outcome::Respond(400));
    assert!(matches!(
        error,
        ParseError::BodyTooShort { declared: 9999, .. }
    ));
    // On a stream the framer waits for more bytes instead.
    let mut framer = tapir_sip::msg::StreamFramer::default();
    framer.push(&load("clerr.dat"));
    assert_eq!(framer.next_message(), Ok(None));
}

#[test]
fn ncl_negative_content_length() {
    let error = rejected("ncl.dat", Outcome::Respond(400));
    assert_eq!(error, ParseError::ContentLength);
    let mut framer = tapir_sip::msg::StreamFramer::default();
    framer.push(&load("ncl.dat"));
    assert_eq!(framer.next_message(), Err(ParseError::ContentLength));
}

#[test]
fn scalar02_overlarge_request_scalars() {
    let error = rejected("scalar02.dat", Outcome::Respond(400));
    assert!(matches!(
        error,
        ParseError::InvalidHeader { header: "CSeq", .. }
    ));
}

#[test]
fn scalarlg_overlarge_response_scalars_dropped() {
    rejected("scalarlg.dat", Outcome::Drop);
}

#[test]
fn quotbal_unterminated_quote() {
    rejected("quotbal.dat", Outcome::Respond(400));
}

#[test]
fn ltgtruri_angle_brackets_around_request_uri() {
    rejected("ltgtruri.dat", Outcome::Respond(400));
}

#[test]
fn lwsruri_whitespace_in_request_uri() {
    rejected("lwsruri.dat", Outcome::Respond(400));
}

#[test]
fn lwsstart_multiple_spaces_in_request_line() {
    rejected("lwsstart.dat", Outcome::Respond(400));
}

#[test]
fn trws_trailing_spaces_after_version() {
    rejected("trws.dat", Outcome::Respond(400));
}

#[test]
fn escruri_headers_in_request_uri() {
    rejected("escruri.dat", Outcome::Respond(400));
}

#[test]
fn baddate_non_gmt_date() {
    let error = rejected("baddate.dat", Outcome::Respond(400));
    assert!(matches!(
        error,
        ParseError::InvalidHeader { header: "Date", .. }
    ));
}

#[test]
fn regbadct_addr_spec_with_headers() {
    let error = rejected("regbadct.dat", Outcome::Respond(400));
    assert!(matches!(
        error,
        ParseError::InvalidHeader {
            header: "Contact",
            ..
        }
    ));
}

#[test]
fn badaspec_spaces_inside_angle_brackets() {
    let error = rejected("badaspec.dat", Outcome::Respond(400));
    assert!(matches!(
        error,
        ParseError::InvalidHeader { header: "To", .. }
    ));
}

#[test]
fn baddn_non_token_display_name() {
    rejected("baddn.dat", Outcome::Respond(400));
}

#[test]
fn badvers_unknown_version_gets_505() {
    let error = rejected("badvers.dat", Outcome::Respond(505));
    assert_eq!(error, ParseError::UnsupportedVersion);
}

#[test]
fn mismatch01_cseq_method_mismatch() {
    let error = rejected("mismatch01.dat", Outcome::Respond(400));
    assert_eq!(error, ParseError::CSeqMethodMismatch);
}

#[test]
fn mismatch02_unknown_method_with_cseq_mismatch() {
    let error = rejected("mismatch02.dat", Outcome::Respond(400));
    assert_eq!(error, ParseError::CSeqMethodMismatch);
}

#[test]
fn bigcode_overlarge_status_code_dropped() {
    let error = rejected("bigcode.dat", Outcome::Drop);
    assert_eq!(error, ParseError::StatusCode);
}

// ---- RFC 4475 §3.2, §3.3: semantic tests ----

fn parsed(name: &str) -> Message {
    Message::parse_datagram(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn badbranch_missing_transaction_identifier() {
    let m = parsed("badbranch.dat");
    let via = m.top_via().unwrap().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
}

#[test]
fn insuf_missing_required_headers() {
    let m = parsed("insuf.dat");
    let rejection = check_request(&m).unwrap_err();
    assert_eq!(rejection.status, 400);
}

#[test]
fn unkscm_unknown_request_uri_scheme() {
    let m = parsed("unkscm.dat");
    let Uri::Absolute(uri) = m.request_uri().unwrap().unwrap() else {
        panic!("absolute")
    };
    assert_eq!(uri.scheme, "nobodyKnowsThisScheme");
    assert_eq!(check_request(&m), Ok(()));
}

#[test]
fn novelsc_atypical_scheme() {
    let m = parsed("novelsc.dat");
    let uri = m.request_uri().unwrap().unwrap();
    assert!(matches!(uri, Uri::Absolute(_)));
    assert_eq!(uri.scheme(), "soap.beep");
}

#[test]
fn unksm2_unknown_schemes_in_headers() {
    let m = parsed("unksm2.dat");
    assert_eq!(m.to_header().unwrap().unwrap().uri.scheme(), "isbn");
    assert_eq!(m.from_header().unwrap().unwrap().uri.scheme(), "http");
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert_eq!(contacts[0].uri.scheme(), "name");
}

#[test]
fn bext01_unknown_required_extensions() {
    let m = parsed("bext01.dat");
    assert_eq!(
        m.option_tags(&HeaderName::Require).unwrap(),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert_eq!(
        m.option_tags(&HeaderName::ProxyRequire).unwrap(),
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
}

#[test]
fn invut_unknown_content_type() {
    let m = parsed("invut.dat");
    let media = m.content_type().unwrap().unwrap();
    assert!(media.is("application", "unknownformat"));
}

#[test]
fn regaut01_unknown_authorization_scheme() {
    let m = parsed("regaut01.dat");
    let auth = m.auth_headers(&HeaderName::Authorization).unwrap();
    assert_eq!(auth[0].scheme, "NoOneKnowsThisScheme");
    assert!(!auth[0].is_digest());
    assert_eq!(auth[0].param("opaque-data").as_deref(), Some("here"));
}

#[test]
fn multi01_multiple_single_value_headers() {
    let m = parsed("multi01.dat");
    assert_eq!(check_request(&m).unwrap_err().status, 400);
}

#[test]
fn mcl01_multiple_content_lengths() {
    let m = parsed("mcl01.dat");
    let rejection = check_request(&m).unwrap_err();
    assert_eq!(rejection.status, 400);
    assert!(rejection.reason.contains("Content-Length"));
    // On a stream the framing is lost.
    let mut framer = tapir_sip::msg::StreamFramer::default();
    framer.push(&load("mcl01.dat"));
    assert_eq!(
        framer.next_message(),
        Err(ParseError::ConflictingContentLength)
    );
}

#[test]
fn bcast_broadcast_via_is_visible() {
    let m = parsed("bcast.dat");
    let vias = m.vias().unwrap();
    assert!(vias[1].host.is_broadcast());
}

#[test]
fn zeromf_max_forwards_zero() {
    let m = parsed("zeromf.dat");
    assert_eq!(m.max_forwards().unwrap(), Some(0));
    assert_eq!(check_request(&m), Ok(()));
}

#[test]
fn cparam01_contact_parameter() {
    let m = parsed("cparam01.dat");
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert!(contacts[0].params.contains("unknownparam"));
    assert!(
        contacts[0]
            .uri
            .as_sip()
            .unwrap()
            .params
            .get("unknownparam")
            .is_none()
    );
}

#[test]
fn cparam02_uri_parameter() {
    let m = parsed("cparam02.dat");
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert!(!contacts[0].params.contains("unknownparam"));
    assert_eq!(
        contacts[0].uri.as_sip().unwrap().params.get("unknownparam"),
        Some(None)
    );
}

#[test]
fn regescrt_escaped_header_in_contact() {
    let m = parsed("regescrt.dat");
    let Contacts::Addresses(contacts) = m.contacts().unwrap().unwrap() else {
        panic!("contact")
    };
    assert_eq!(
        contacts[0].uri.as_sip().unwrap().headers,
        Some("Route=%3Csip:sip.example.com%3E")
    );
    assert_eq!(check_request(&m), Ok(()));
}

#[test]
fn sdp01_unacceptable_accept() {
    let m = parsed("sdp01.dat");
    let accept = m.accept().unwrap().unwrap();
    assert!(accept[0].is("text", "nobodyKnowsThis"));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
}

#[test]
fn inv2543_rfc2543_syntax_accepted() {
    let m = valid("inv2543.dat");
    assert_eq!(m.top_via().unwrap().unwrap().branch(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
}

// ---- RFC 5118: IPv6 ----

#[test]
fn rfc5118_ipv6_good() {
    let m = valid("rfc5118/ipv6-good.dat");
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        uri.as_sip().unwrap().host,
        Host::V6("2001:db8::10".parse::<Ipv6Addr>().unwrap())
    );
}

#[test]
fn rfc5118_ipv6_bad() {
    rejected("rfc5118/ipv6-bad.dat", Outcome::Respond(400));
}

#[test]
fn rfc5118_port_ambiguous() {
    let m = valid("rfc5118/port-ambiguous.dat");
    let uri = m.request_uri().unwrap().unwrap();
    let sip = uri.as_sip().unwrap();
    assert_eq!(sip.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
    assert_eq!(sip.port, None);
}

#[test]
fn rfc5118_port_unambiguous() {
    let m = valid("rfc5118/port-unambiguous.dat");
    let uri = m.request_uri().unwrap().unwrap();
    let sip = uri.as_sip().unwrap();
    assert_eq!(sip.host, Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(sip.port, Some(5070));
}

#[test]
fn rfc5118_via_received_with_delimiters() {
    let m = valid("rfc5118/via-received-param-with-delim.dat");
    let expected: IpAddr = "2001:db8::9:255".parse().unwrap();
    assert_eq!(m.top_via().unwrap().unwrap().received(), Some(expected));
}

#[test]
fn rfc5118_via_received_without_delimiters() {
    let m = valid("rfc5118/via-received-param-no-delim.dat");
    let expected: IpAddr = "2001:db8::9:255".parse().unwrap();
    assert_eq!(m.top_via().unwrap().unwrap().received(), Some(expected));
}

#[test]
fn rfc5118_ipv6_in_sdp() {
    // Content-Length is shorter than the CRLF body: the datagram rule cuts the body.
    let m = valid("rfc5118/ipv6-in-sdp.dat");
    assert_eq!(m.body().len(), 241);
    let fixed = valid("rfc5118/ipv6-in-sdp.clfixed.dat");
    assert_eq!(fixed.body().len(), 251);
}

#[test]
fn rfc5118_multiple_ip_in_headers() {
    let m = valid("rfc5118/mult-ip-in-header.dat");
    let vias = m.vias().unwrap();
    assert_eq!(vias[0].port, Some(6050));
    assert!(matches!(vias[1].host, Host::V4(_)));
    assert_eq!(
        vias[2].received(),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)))
    );
}

#[test]
fn rfc5118_multiple_ip_in_sdp() {
    valid("rfc5118/mult-ip-in-sdp.dat");
    let fixed = valid("rfc5118/mult-ip-in-sdp.clfixed.dat");
    assert_eq!(fixed.body().len(), 189);
}

#[test]
fn rfc5118_ipv4_mapped_ipv6() {
    valid("rfc5118/ipv4-mapped-ipv6.dat");
    let m = valid("rfc5118/ipv4-mapped-ipv6.clfixed.dat");
    let via = m.top_via().unwrap().unwrap();
    assert_eq!(via.host, Host::V6("::ffff:192.0.2.10".parse().unwrap()));
    assert_eq!(via.port, Some(19823));
}

/// Policy: the three-colon form comes from the RFC 3261 ABNF bug (fixed by
/// RFC 5954); it is not an IPv6 address, so the request is refused with 400.
#[test]
fn rfc5118_three_colons_rejected_by_policy() {
    rejected("rfc5118/ipv6-bug-abnf-3-colons.dat", Outcome::Respond(400));
}

#[test]
fn rfc5118_two_colons_accepted() {
    let m = valid("rfc5118/ipv6-correct-abnf-2-colons.dat");
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(
        uri.as_sip().unwrap().host,
        Host::V6("2001:db8::192.0.2.1".parse().unwrap())
    );
}

// ---- the index as a whole ----

/// Every row of index.tsv is covered and classified as listed; prints the tally.
#[test]
fn index_tally() {
    let index = std::fs::read_to_string(format!(
        "{}/tests/torture/index.tsv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut tally = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for row in index.lines().skip(1) {
        let columns: Vec<&str> = row.split('\t').collect();
        let (file, class) = (columns[0], columns[4]);
        let datagram = load(file);
        let parses = Message::parse_datagram(datagram.clone()).is_ok();
        let ok = match class {
            "valid" | "backward-compat" => outcome(&datagram) == Outcome::Accepted,
            "invalid" | "ambiguous" => outcome(&datagram) != Outcome::Accepted,
            // Semantic messages parse; whether they are refused is decided above the codec.
            "semantic" => parses,
            other => panic!("unknown class {other}"),
        };
        let entry = tally.entry(class.to_owned()).or_default();
        entry.1 += 1;
        if ok {
            entry.0 += 1;
        } else {
            eprintln!("MISMATCH {file} ({class})");
        }
    }
    for (class, (passed, total)) in &tally {
        eprintln!("torture {class}: {passed}/{total}");
    }
    assert!(tally.values().all(|(passed, total)| passed == total));
}

/// Every rejected request can be answered statelessly with its own Via,
/// From, To, Call-ID and CSeq; rejected responses are never answered.
#[test]
fn stateless_answers_to_rejected_messages() {
    use tapir_sip::msg::stateless_rejection;
    let answer = |name: &str| {
        let datagram = load(name);
        let error = Message::parse_datagram(datagram.clone()).unwrap_err();
        stateless_rejection(&datagram, &error, "tapir1")
    };
    let reply = answer("badaspec.dat").unwrap();
    assert_eq!(reply.status_code(), Some(400));
    assert_eq!(reply.reason_phrase(), Some("Bad Request (Malformed To)"));
    assert_eq!(
        reply.header(&HeaderName::CallId),
        Some("badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3")
    );
    assert!(
        reply
            .header(&HeaderName::To)
            .unwrap()
            .ends_with(";tag=tapir1")
    );
    let reply = answer("badvers.dat").unwrap();
    assert_eq!(reply.status_code(), Some(505));
    // A CSeq out of range still leaves the five fields copyable.
    let reply = answer("scalar02.dat").unwrap();
    assert_eq!(reply.header_count(&HeaderName::Via), 1);
    assert!(answer("bigcode.dat").is_none());
    assert!(answer("scalarlg.dat").is_none());
}
