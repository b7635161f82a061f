//! Registrar tests with a simulated clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::auth::{Algorithm, AuthConfig, DigestInput};
use crate::msg::{Contacts, HeaderName, Message};

struct Register<'a> {
    user: &'a str,
    call_id: &'a str,
    cseq: u32,
    contacts: &'a [&'a str],
    expires: Option<&'a str>,
    extra: &'a str,
}

impl Default for Register<'_> {
    fn default() -> Self {
        Register {
            user: "1001",
            call_id: "reg-1",
            cseq: 1,
            contacts: &["<sip:1001@192.0.2.10:5070>"],
            expires: None,
            extra: "",
        }
    }
}

impl Register<'_> {
    fn build(&self) -> Message {
        let mut text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-{}-{}\r\n\
             From: <sip:{user}@127.0.0.1>;tag=f1\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             Max-Forwards: 70\r\n",
            self.call_id,
            self.cseq,
            self.call_id,
            self.cseq,
            user = self.user
        );
        for contact in self.contacts {
            text.push_str(&format!("Contact: {contact}\r\n"));
        }
        if let Some(expires) = self.expires {
            text.push_str(&format!("Expires: {expires}\r\n"));
        }
        text.push_str(self.extra);
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse_datagram(Bytes::from(text)).unwrap()
    }
}

fn phone() -> SocketAddr {
    "192.0.2.10:5070".parse().unwrap()
}

fn send(registrar: &mut Registrar, now: Instant, register: &Register<'_>) -> RegisterOutcome {
    registrar.handle_register(
        now,
        &register.build(),
        phone(),
        Transport::Udp,
        register.user,
    )
}

/// (contact URI, expires) pairs of a 200 OK.
fn listed(response: &Message) -> Vec<(String, u32)> {
    match response.contacts().unwrap() {
        None => Vec::new(),
        Some(Contacts::Wildcard) => panic!("wildcard in a response"),
        Some(Contacts::Addresses(list)) => list
            .iter()
            .map(|c| (c.uri_text.to_owned(), c.expires().unwrap()))
            .collect(),
    }
}

#[test]
fn add_one_contact_with_default_expiry() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let outcome = send(&mut registrar, now, &Register::default());
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.aor.as_deref(), Some("1001"));
    assert_eq!(outcome.changes.added, 1);
    assert_eq!(
        listed(&outcome.response),
        [("sip:1001@192.0.2.10:5070".to_owned(), 3600)]
    );
    assert!(
        outcome
            .response
            .to_header()
            .unwrap()
            .unwrap()
            .tag()
            .is_some()
    );
    let contacts = registrar.contacts("1001", now);
    assert_eq!(contacts.len(), 1);
    let binding = &contacts[0];
    assert_eq!(binding.contact, "sip:1001@192.0.2.10:5070");
    assert_eq!(binding.source, phone());
    assert_eq!(binding.transport, Transport::Udp);
    assert_eq!(binding.remaining_seconds(now), 3600);
    assert!(registrar.is_registered("1001", now));
    assert!(!registrar.is_registered("1002", now));
    assert_eq!(
        registrar.aor_for_source(phone().ip(), phone().port(), now),
        Some("1001")
    );
}

#[test]
fn several_contacts_with_expires_header_param_and_q() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            contacts: &[
                "<sip:1001@192.0.2.10:5070>;q=0.5",
                "<sip:1001@192.0.2.11:5070>;expires=120;q=1.0",
                "sip:1001@192.0.2.12",
            ],
            expires: Some("600"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.changes.added, 3);
    assert_eq!(outcome.bindings, 3);
    let contacts = registrar.contacts("1001", now);
    let summary: Vec<_> = contacts
        .iter()
        .map(|b| (b.contact.as_str(), b.q, b.remaining_seconds(now)))
        .collect();
    // Highest q first; no q counts as 1 and the later binding wins ties.
    assert_eq!(
        summary,
        [
            ("sip:1001@192.0.2.11:5070", Some(1000), 120),
            ("sip:1001@192.0.2.12", None, 600),
            ("sip:1001@192.0.2.10:5070", Some(500), 600),
        ]
    );
    let text = String::from_utf8(outcome.response.to_bytes().to_vec()).unwrap();
    assert!(text.contains("Contact: <sip:1001@192.0.2.10:5070>;q=0.5;expires=600"));
}

#[test]
fn refresh_updates_expiry_and_source() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            expires: Some("300"),
            ..Register::default()
        },
    );
    let later = now + Duration::from_secs(200);
    let request = Register {
        cseq: 2,
        expires: Some("300"),
        ..Register::default()
    }
    .build();
    let moved: SocketAddr = "192.0.2.10:6000".parse().unwrap();
    let outcome = registrar.handle_register(later, &request, moved, Transport::Tcp, "1001");
    assert_eq!(outcome.changes.refreshed, 1);
    assert_eq!(outcome.changes.added, 0);
    let contacts = registrar.contacts("1001", later);
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].remaining_seconds(later), 300);
    assert_eq!(contacts[0].source, moved);
    assert_eq!(contacts[0].transport, Transport::Tcp);
    // Alive past the first expiry.
    assert!(registrar.is_registered("1001", now + Duration::from_secs(400)));
}

#[test]
fn an_equivalent_contact_uri_is_the_same_binding() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(&mut registrar, now, &Register::default());
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            contacts: &["<sip:%31001@192.0.2.10:5070>"],
            ..Register::default()
        },
    );
    assert_eq!(outcome.changes.refreshed, 1);
    assert_eq!(registrar.contacts("1001", now).len(), 1);
}

#[test]
fn remove_one_contact_with_expires_zero() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            contacts: &["<sip:1001@192.0.2.10:5070>", "<sip:1001@192.0.2.11:5070>"],
            ..Register::default()
        },
    );
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            contacts: &["<sip:1001@192.0.2.10:5070>;expires=0"],
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.changes.removed, 1);
    assert_eq!(
        listed(&outcome.response),
        [("sip:1001@192.0.2.11:5070".to_owned(), 3600)]
    );
    // The Expires header unregisters too.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 3,
            contacts: &["<sip:1001@192.0.2.11:5070>"],
            expires: Some("0"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.changes.removed, 1);
    assert!(listed(&outcome.response).is_empty());
    assert!(!registrar.is_registered("1001", now));
    assert!(registrar.is_empty());
    // Removing what is not there is fine.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 4,
            expires: Some("0"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert!(outcome.changes.is_empty());
}

#[test]
fn wildcard_removes_every_binding() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            contacts: &["<sip:1001@192.0.2.10:5070>"],
            ..Register::default()
        },
    );
    send(
        &mut registrar,
        now,
        &Register {
            call_id: "other-phone",
            contacts: &["<sip:1001@192.0.2.20:5060>"],
            ..Register::default()
        },
    );
    assert_eq!(registrar.contacts("1001", now).len(), 2);
    // Without Expires: 0 it is malformed.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            contacts: &["*"],
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(400));
    assert_eq!(registrar.contacts("1001", now).len(), 2);
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            contacts: &["*"],
            expires: Some("0"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.changes.removed, 2);
    assert!(registrar.contacts("1001", now).is_empty());
}

#[test]
fn wildcard_out_of_order_is_refused() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            cseq: 5,
            ..Register::default()
        },
    );
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 5,
            contacts: &["*"],
            expires: Some("0"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(500));
    assert!(registrar.is_registered("1001", now));
}

#[test]
fn bindings_expire_with_time() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            contacts: &[
                "<sip:1001@192.0.2.10:5070>;expires=60",
                "<sip:1001@192.0.2.11>;expires=120",
            ],
            ..Register::default()
        },
    );
    assert_eq!(registrar.next_expiry(), Some(now + Duration::from_secs(60)));
    let at_60 = now + Duration::from_secs(60);
    assert_eq!(
        registrar
            .contacts("1001", at_60 - Duration::from_millis(1))
            .len(),
        2
    );
    assert_eq!(registrar.contacts("1001", at_60).len(), 1);
    // Unpurged, still held; purged, reported once.
    assert_eq!(registrar.len(), 2);
    let expired = registrar.purge(at_60);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0, "1001");
    assert_eq!(expired[0].1.contact, "sip:1001@192.0.2.10:5070");
    assert!(registrar.purge(at_60).is_empty());
    assert_eq!(
        registrar.next_expiry(),
        Some(now + Duration::from_secs(120))
    );
    let at_120 = now + Duration::from_secs(120);
    assert!(!registrar.is_registered("1001", at_120));
    assert_eq!(registrar.purge(at_120).len(), 1);
    assert!(registrar.is_empty());
    assert_eq!(registrar.next_expiry(), None);
}

#[test]
fn an_expired_binding_is_added_again_not_refreshed() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            expires: Some("60"),
            ..Register::default()
        },
    );
    let later = now + Duration::from_secs(61);
    let outcome = send(
        &mut registrar,
        later,
        &Register {
            cseq: 2,
            expires: Some("60"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.changes.added, 1);
}

#[test]
fn interval_too_brief_and_ceiling() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig {
        min_expires: 60,
        max_expires: 600,
        ..RegistrarConfig::default()
    });
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            expires: Some("30"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(423));
    assert_eq!(outcome.response.header(&HeaderName::MinExpires), Some("60"));
    assert!(registrar.is_empty());
    // One brief contact fails the whole request.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            contacts: &[
                "<sip:1001@192.0.2.10:5070>",
                "<sip:1001@192.0.2.11>;expires=5",
            ],
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(423));
    assert!(registrar.is_empty());
    // Longer than the ceiling: granted the ceiling.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            expires: Some("86400"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(listed(&outcome.response)[0].1, 600);
}

#[test]
fn call_id_and_cseq_ordering() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            cseq: 10,
            ..Register::default()
        },
    );
    // Same Call-ID, same or lower CSeq: out of order, nothing changes.
    for cseq in [10, 9] {
        let outcome = send(
            &mut registrar,
            now,
            &Register {
                cseq,
                expires: Some("0"),
                ..Register::default()
            },
        );
        assert_eq!(outcome.response.status_code(), Some(500), "{cseq}");
        assert!(registrar.is_registered("1001", now));
    }
    // Another Call-ID (the phone restarted) may update with any CSeq.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            call_id: "reg-after-reboot",
            cseq: 1,
            expires: Some("120"),
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.changes.refreshed, 1);
    let binding = &registrar.contacts("1001", now)[0];
    assert_eq!(binding.call_id, "reg-after-reboot");
    assert_eq!(binding.cseq, 1);
    // A higher CSeq with the new Call-ID works.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            call_id: "reg-after-reboot",
            cseq: 2,
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
}

#[test]
fn a_failed_contact_commits_nothing() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            cseq: 3,
            ..Register::default()
        },
    );
    // Adds a new contact and re-sends the old one out of order.
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            cseq: 3,
            contacts: &["<sip:1001@192.0.2.99>", "<sip:1001@192.0.2.10:5070>"],
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(500));
    assert_eq!(registrar.contacts("1001", now).len(), 1);
}

#[test]
fn query_lists_bindings_without_changing_them() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    send(
        &mut registrar,
        now,
        &Register {
            expires: Some("300"),
            ..Register::default()
        },
    );
    let later = now + Duration::from_secs(100);
    let outcome = send(
        &mut registrar,
        later,
        &Register {
            cseq: 2,
            contacts: &[],
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert!(outcome.changes.is_empty());
    assert_eq!(
        listed(&outcome.response),
        [("sip:1001@192.0.2.10:5070".to_owned(), 200)]
    );
}

#[test]
fn another_users_address_of_record_is_forbidden() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let request = Register {
        user: "1002",
        ..Register::default()
    }
    .build();
    let outcome = registrar.handle_register(now, &request, phone(), Transport::Udp, "1001");
    assert_eq!(outcome.response.status_code(), Some(403));
    assert!(registrar.is_empty());
}

#[test]
fn foreign_domain_and_bad_contacts() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig {
        domains: vec!["pbx.example".to_owned()],
        ..RegistrarConfig::default()
    });
    let outcome = send(&mut registrar, now, &Register::default());
    assert_eq!(outcome.response.status_code(), Some(404));

    let mut registrar = Registrar::new(RegistrarConfig::default());
    for contact in [
        "<mailto:a@b.example>",
        "<sip:1001@192.0.2.10>;q=2",
        "<sip:1001@x>;expires=soon",
    ] {
        let outcome = send(
            &mut registrar,
            now,
            &Register {
                contacts: &[contact],
                ..Register::default()
            },
        );
        assert_eq!(outcome.response.status_code(), Some(400), "{contact}");
    }
    assert!(registrar.is_empty());
}

#[test]
fn an_ipv6_phone_registers_to_a_domain_configured_as_a_bare_ipv6_address() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig {
        domains: vec!["::1".to_owned()],
        ..RegistrarConfig::default()
    });
    let text = "REGISTER sip:[::1]:5070 SIP/2.0\r\n\
                Via: SIP/2.0/UDP [::1]:40000;rport;branch=z9hG4bK-v6\r\n\
                From: <sip:1001@[::1]>;tag=f1\r\n\
                To: <sip:1001@[::1]>\r\n\
                Call-ID: reg-v6\r\n\
                CSeq: 1 REGISTER\r\n\
                Max-Forwards: 70\r\n\
                Contact: <sip:1001@[::1]:40000;transport=udp>\r\n\
                Content-Length: 0\r\n\r\n";
    let request = Message::parse_datagram(Bytes::from(text)).unwrap();
    let source: SocketAddr = "[::1]:40000".parse().unwrap();
    let outcome = registrar.handle_register(now, &request, source, Transport::Udp, "1001");
    assert_eq!(outcome.response.status_code(), Some(200));
    let bindings = registrar.contacts("1001", now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].contact, "sip:1001@[::1]:40000;transport=udp");
    assert_eq!(bindings[0].source, source);
}

#[test]
fn too_many_contacts_replace_the_least_recently_updated() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig {
        max_bindings_per_aor: 2,
        ..RegistrarConfig::default()
    });
    for (step, contact) in [
        "<sip:1001@192.0.2.1>",
        "<sip:1001@192.0.2.2>",
        "<sip:1001@192.0.2.3>",
    ]
    .into_iter()
    .enumerate()
    {
        let at = now + Duration::from_secs(step as u64);
        let call_id = format!("phone-{step}");
        let outcome = send(
            &mut registrar,
            at,
            &Register {
                call_id: &call_id,
                contacts: &[contact],
                ..Register::default()
            },
        );
        assert_eq!(outcome.response.status_code(), Some(200));
    }
    let at = now + Duration::from_secs(3);
    let contacts: Vec<_> = registrar
        .contacts("1001", at)
        .into_iter()
        .map(|b| b.contact)
        .collect();
    assert_eq!(contacts, ["sip:1001@192.0.2.3", "sip:1001@192.0.2.2"]);
}

#[test]
fn q_values() {
    assert_eq!(parse_q("1"), Some(1000));
    assert_eq!(parse_q("1.000"), Some(1000));
    assert_eq!(parse_q("0.5"), Some(500));
    assert_eq!(parse_q("0.125"), Some(125));
    assert_eq!(parse_q("0"), Some(0));
    assert_eq!(parse_q("1.5"), None);
    assert_eq!(parse_q("0.1234"), None);
    assert_eq!(parse_q("x"), None);
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(1000), "1");
    assert_eq!(format_q(0), "0");
    assert_eq!(format_q(125), "0.125");
}

#[test]
fn register_end_to_end_with_digest() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let mut authenticator = Authenticator::with_secret(AuthConfig::new("tapir"), now, [1; 32]);
    let passwords = |user: &str| (user == "1001").then(|| "pw".to_owned());
    let first = Register::default().build();
    let outcome = registrar.register(
        now,
        &first,
        phone(),
        Transport::Udp,
        &mut authenticator,
        &passwords,
    );
    assert_eq!(outcome.response.status_code(), Some(401));
    assert!(registrar.is_empty());
    let challenge = outcome
        .response
        .auth_headers(&HeaderName::WwwAuthenticate)
        .unwrap()
        .first()
        .unwrap()
        .param("nonce")
        .unwrap()
        .into_owned();
    let authorization = |user: &str, nc: &str| {
        let response = DigestInput {
            algorithm: Algorithm::Sha256,
            username: user,
            realm: "tapir",
            password: "pw",
            method: "REGISTER",
            uri: "sip:127.0.0.1",
            nonce: &challenge,
            nonce_count: nc,
            cnonce: "abc",
            qop: "auth",
        }
        .response();
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"tapir\", nonce=\"{challenge}\", \
             uri=\"sip:127.0.0.1\", response=\"{response}\", algorithm=SHA-256, qop=auth, \
             nc={nc}, cnonce=\"abc\"\r\n"
        )
    };
    let header = authorization("1001", "00000001");
    let second = Register {
        cseq: 2,
        extra: &header,
        ..Register::default()
    }
    .build();
    let outcome = registrar.register(
        now,
        &second,
        phone(),
        Transport::Udp,
        &mut authenticator,
        &passwords,
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert!(registrar.is_registered("1001", now));
    // 1001's credentials cannot register 1002's address-of-record.
    let header = authorization("1001", "00000002");
    let third = Register {
        user: "1002",
        cseq: 3,
        extra: &header,
        ..Register::default()
    }
    .build();
    let outcome = registrar.register(
        now,
        &third,
        phone(),
        Transport::Udp,
        &mut authenticator,
        &passwords,
    );
    assert_eq!(outcome.response.status_code(), Some(403));
    assert!(!registrar.is_registered("1002", now));
}

#[test]
fn a_register_through_proxies_keeps_its_path_and_the_200_echoes_it() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            extra: "Path: <sip:edge.example.net;lr;ob>\r\n\
                    Path: \"core\" <sip:192.0.2.50:5060;lr>, <sip:192.0.2.51;lr>\r\n\
                    Supported: outbound, path\r\n",
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    let path = [
        "<sip:edge.example.net;lr;ob>",
        "<sip:192.0.2.50:5060;lr>",
        "<sip:192.0.2.51;lr>",
    ];
    assert_eq!(registrar.contacts("1001", now)[0].path, path);
    let echoed: Vec<String> = outcome
        .response
        .paths()
        .unwrap()
        .iter()
        .map(|p| format!("<{}>{}", p.uri_text, p.params.as_str()))
        .collect();
    assert_eq!(echoed, path, "the 200 echoes the Path");
    // A refresh that came straight from the phone drops the Path.
    send(
        &mut registrar,
        now,
        &Register {
            cseq: 2,
            ..Register::default()
        },
    );
    assert!(registrar.contacts("1001", now)[0].path.is_empty());
}

#[test]
fn a_path_is_kept_but_not_echoed_to_a_phone_without_path_support() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            extra: "Path: <sip:192.0.2.50;lr>\r\n",
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(200));
    assert_eq!(outcome.response.header(&HeaderName::Path), None);
    assert_eq!(
        registrar.contacts("1001", now)[0].path,
        ["<sip:192.0.2.50;lr>"]
    );
}

#[test]
fn an_overlong_path_gets_400_and_changes_nothing() {
    let now = Instant::now();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let many = "Path: <sip:192.0.2.50;lr>\r\n".repeat(MAX_PATH + 1);
    let outcome = send(
        &mut registrar,
        now,
        &Register {
            extra: &many,
            ..Register::default()
        },
    );
    assert_eq!(outcome.response.status_code(), Some(400));
    assert!(registrar.is_empty());
    // A Path that does not parse never reaches the registrar: the codec
    // refuses the message.
    let text = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1\r\n\
                From: <sip:1001@127.0.0.1>;tag=f1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: p\r\n\
                CSeq: 1 REGISTER\r\nPath: <sip:192.0.2.50;lr\r\nContent-Length: 0\r\n\r\n";
    assert!(Message::parse_datagram(Bytes::from(text)).is_err());
}
