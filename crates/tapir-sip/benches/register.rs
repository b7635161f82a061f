//! Cost of the registrar's work per REGISTER: the first challenge, and an
//! authenticated SHA-256 / MD5 REGISTER (digest check, nonce HMAC, nc
//! table, binding refresh, 200 OK listing the contact).
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tapir_sip::auth::{Algorithm, AuthConfig, Authenticator, DigestInput};
use tapir_sip::msg::{HeaderName, Message};
use tapir_sip::registrar::{Registrar, RegistrarConfig, Transport};

fn register(cseq: u32, authorization: Option<&str>) -> Message {
    let mut text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1001@127.0.0.1>;tag=ph1\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: bench@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:1001@127.0.0.1:5070>\r\n\
         Expires: 300\r\n"
    );
    if let Some(value) = authorization {
        text.push_str(&format!("Authorization: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Message::parse_datagram(Bytes::from(text)).expect("valid REGISTER")
}

fn authorization(algorithm: Algorithm, nonce: &str, nc: u32) -> String {
    let nc = format!("{nc:08x}");
    let response = DigestInput {
        algorithm,
        username: "1001",
        realm: "tapir",
        password: "pw",
        method: "REGISTER",
        uri: "sip:127.0.0.1",
        nonce,
        nonce_count: &nc,
        cnonce: "c0ffee",
        qop: "auth",
    }
    .response();
    format!(
        "Digest username=\"1001\", realm=\"tapir\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", \
         response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\"",
        algorithm.token()
    )
}

fn registrations(c: &mut Criterion) {
    let start = Instant::now();
    let source: SocketAddr = "127.0.0.1:5070".parse().expect("address");
    let passwords = |user: &str| (user == "1001").then(|| "pw".to_owned());

    c.bench_function("REGISTER without credentials -> 401", |b| {
        let mut auth = Authenticator::new(AuthConfig::new("tapir"), start);
        let mut registrar = Registrar::new(RegistrarConfig::default());
        let request = register(1, None);
        b.iter(|| {
            registrar.register(
                start,
                black_box(&request),
                source,
                Transport::Udp,
                &mut auth,
                &passwords,
            )
        })
    });

    for algorithm in [Algorithm::Sha256, Algorithm::Md5] {
        let name = format!("authenticated REGISTER ({}) -> 200", algorithm.token());
        c.bench_function(&name, |b| {
            let mut auth = Authenticator::new(AuthConfig::new("tapir"), start);
            let mut registrar = Registrar::new(RegistrarConfig::default());
            let challenge = registrar
                .register(
                    start,
                    &register(1, None),
                    source,
                    Transport::Udp,
                    &mut auth,
                    &passwords,
                )
                .response;
            let nonce = challenge
                .auth_headers(&HeaderName::WwwAuthenticate)
                .expect("challenge")
                .first()
                .and_then(|h| h.param("nonce"))
                .expect("nonce")
                .into_owned();
            let mut count = 1u32;
            b.iter_batched(
                || {
                    count += 1;
                    register(count, Some(&authorization(algorithm, &nonce, count)))
                },
                |request| {
                    let outcome = registrar.register(
                        start + Duration::from_secs(1),
                        &request,
                        source,
                        Transport::Udp,
                        &mut auth,
                        &passwords,
                    );
                    assert_eq!(outcome.response.status_code(), Some(200));
                    outcome
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, registrations);
criterion_main!(benches);
