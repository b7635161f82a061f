//! Property tests of the authenticator, registrar and dialog layer on
//! hostile input: nothing panics, garbage credentials never authenticate,
//! and a registrar only ever holds bindings it was asked for.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use tapir_sip::auth::{AuthConfig, AuthOutcome, Authenticator};
use tapir_sip::dialog::{Dialog, DialogState, Dialogs};
use tapir_sip::msg::Message;
use tapir_sip::registrar::{Registrar, RegistrarConfig, Transport};

fn request(method: &str, extra_headers: &str) -> Option<Message> {
    let text = format!(
        "{method} sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp1\r\n\
         From: <sip:1001@127.0.0.1>;tag=f\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: prop\r\n\
         CSeq: 5 {method}\r\n\
         {extra_headers}Content-Length: 0\r\n\r\n"
    );
    Message::parse_datagram(Bytes::from(text)).ok()
}

/// Header values made of the characters digest credentials are made of.
fn header_value() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r#"Digest( [a-z]{1,9}=("[a-zA-Z0-9:/@.=-]{0,40}"|[a-zA-Z0-9-]{1,20}),?){0,10}"#,
    )
    .unwrap()
}

proptest! {
    #[test]
    fn garbage_credentials_never_authenticate(value in header_value(), register in any::<bool>()) {
        let now = Instant::now();
        let mut auth = Authenticator::new(AuthConfig::new("tapir"), now);
        let passwords = |user: &str| (user == "1001").then(|| "pw".to_owned());
        let (method, header) = if register {
            ("REGISTER", "Authorization")
        } else {
            ("INVITE", "Proxy-Authorization")
        };
        let parsed = request(method, &format!("{header}: {value}\r\n"));
        // Messages the codec refuses never reach the registrar or the
        // authenticator; counting them as passes keeps the case budget
        // independent of PROPTEST_CASES (no global-reject limit).
        if let Some(message) = parsed {
            let source = "127.0.0.1".parse().unwrap();
            let outcome = auth.authenticate(now, &message, source, &passwords);
            let authenticated = matches!(outcome, AuthOutcome::Authenticated(_));
            prop_assert!(!authenticated);
        }
    }

    #[test]
    fn registrar_is_total_on_arbitrary_contacts(
        contacts in proptest::collection::vec(
            proptest::string::string_regex(r"<sip:[a-z0-9]{1,6}@[a-z0-9]{1,8}(:[0-9]{1,5})?>(;(expires|q|x)=[0-9.a-z]{1,6}){0,3}").unwrap(),
            0..5,
        ),
        expires in proptest::option::of(0u32..100_000),
        seconds in 0u64..10_000,
    ) {
        let mut extra = String::new();
        for contact in &contacts {
            extra.push_str(&format!("Contact: {contact}\r\n"));
        }
        if let Some(expires) = expires {
            extra.push_str(&format!("Expires: {expires}\r\n"));
        }
        let config = RegistrarConfig::default();
        let mut registrar = Registrar::new(config.clone());
        let start = Instant::now();
        let parsed = request("REGISTER", &extra);
        // Messages the codec refuses never reach the registrar or the
        // authenticator; counting them as passes keeps the case budget
        // independent of PROPTEST_CASES (no global-reject limit).
        if let Some(message) = parsed {
            let source: SocketAddr = "127.0.0.1:5070".parse().unwrap();
            let now = start + Duration::from_secs(seconds);
            let outcome = registrar.handle_register(now, &message, source, Transport::Udp, "1001");
            let code = outcome.response.status_code().unwrap();
            prop_assert!(matches!(code, 200 | 400 | 423 | 500), "{}", code);
            prop_assert!(registrar.len() <= contacts.len().min(config.max_bindings_per_aor));
            for binding in registrar.contacts("1001", now) {
                prop_assert!(binding.remaining_seconds(now) <= config.max_expires);
                prop_assert!(binding.remaining_seconds(now) >= config.min_expires);
                prop_assert_eq!(binding.cseq, 5);
            }
        }
    }

    #[test]
    fn dialog_matching_is_total(
        to_tag in proptest::option::of("[a-z0-9]{1,8}"),
        cseq in 0u32..(1 << 31),
        method in prop::sample::select(vec!["BYE", "ACK", "INFO", "INVITE", "UPDATE", "CANCEL", "NOTIFY"]),
        replaces in proptest::option::of("[a-z0-9@.]{1,10}(;(to-tag|from-tag|early-only)(=[a-z0-9]{1,6})?){0,3}"),
    ) {
        let invite = Message::parse_datagram(Bytes::from_static(
            b"INVITE sip:1002@127.0.0.1 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKi\r\n\
              From: <sip:1001@127.0.0.1>;tag=a\r\n\
              To: <sip:1002@127.0.0.1>\r\n\
              Call-ID: d1\r\n\
              CSeq: 1 INVITE\r\n\
              Contact: <sip:1001@127.0.0.1:5070>\r\n\
              Content-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let mut dialogs = Dialogs::new();
        dialogs.insert(Dialog::from_request(&invite, "b", "<sip:t@127.0.0.1>", DialogState::Confirmed).unwrap());
        let to = match &to_tag {
            Some(tag) => format!("<sip:1002@127.0.0.1>;tag={tag}"),
            None => "<sip:1002@127.0.0.1>".to_owned(),
        };
        let replaces_header = replaces
            .as_ref()
            .map(|value| format!("Replaces: {value}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "{method} sip:t@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
             From: <sip:1001@127.0.0.1>;tag=a\r\n\
             To: {to}\r\n\
             Call-ID: d1\r\n\
             CSeq: {cseq} {method}\r\n\
             {replaces_header}Content-Length: 0\r\n\r\n"
        );
        let parsed = Message::parse_datagram(Bytes::from(text));
        prop_assume!(parsed.is_ok());
        if let Ok(message) = parsed {
            let _ = dialogs.handle_request(&message);
            let _ = dialogs.find_replaced(&message);
        }
    }
}
