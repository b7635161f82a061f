//! Tests of digest authentication with a simulated clock.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::msg::{HeaderName, Message, Method};

const REALM: &str = "tapir";
const SECRET: [u8; 32] = [7; 32];

fn passwords(user: &str) -> Option<String> {
    match user {
        "1001" => Some("secret-1001".to_owned()),
        "1002" => Some("secret-1002".to_owned()),
        _ => None,
    }
}

fn source() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

fn request(method: &str, authorization: Option<(&str, &str)>) -> Message {
    let mut text = format!(
        "{method} sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-{method}-1\r\n\
         From: <sip:1001@127.0.0.1>;tag=f1\r\n\
         To: <sip:1001@127.0.0.1>\r\n\
         Call-ID: call-1\r\n\
         CSeq: 2 {method}\r\n\
         Max-Forwards: 70\r\n"
    );
    if let Some((header, value)) = authorization {
        text.push_str(&format!("{header}: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Message::parse_datagram(Bytes::from(text)).unwrap()
}

/// What a phone would send: parses the challenge for `algorithm` and
/// computes the answer with `password`, `nc` and a cnonce.
fn answer(
    challenge: &Message,
    algorithm: Algorithm,
    user: &str,
    password: &str,
    method: &str,
    nc: u32,
) -> String {
    let header_name = if challenge.status_code() == Some(401) {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let headers = challenge.auth_headers(&header_name).unwrap();
    let header = headers
        .iter()
        .find(|h| h.param("algorithm").as_deref() == Some(algorithm.token()))
        .expect("challenge for the algorithm");
    let nonce = header.param("nonce").unwrap();
    let realm = header.param("realm").unwrap();
    let nc = format!("{nc:08x}");
    let response = DigestInput {
        algorithm,
        username: user,
        realm: &realm,
        password,
        method,
        uri: "sip:127.0.0.1",
        nonce: &nonce,
        nonce_count: &nc,
        cnonce: "0a4f113b",
        qop: "auth",
    }
    .response();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", \
         response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"0a4f113b\"",
        algorithm.token()
    )
}

fn authenticator(now: Instant) -> Authenticator {
    Authenticator::with_secret(AuthConfig::new(REALM), now, SECRET)
}

fn rejected(outcome: AuthOutcome) -> Rejection {
    match outcome {
        AuthOutcome::Rejected(rejection) => rejection,
        AuthOutcome::Authenticated(identity) => panic!("unexpectedly authenticated {identity:?}"),
    }
}

fn first_challenge(auth: &mut Authenticator, now: Instant, method: &str) -> Message {
    let rejection = rejected(auth.authenticate(now, &request(method, None), source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);
    rejection.response
}

fn authorization_header(method: &str) -> &'static str {
    if method == "REGISTER" {
        "Authorization"
    } else {
        "Proxy-Authorization"
    }
}

#[test]
fn rfc7616_known_answers() {
    // RFC 7616 §3.9.1: the same request answered with MD5 and SHA-256.
    let mut input = DigestInput {
        algorithm: Algorithm::Md5,
        username: "Mufasa",
        realm: "http-auth@example.org",
        password: "Circle of Life",
        method: "GET",
        uri: "/dir/index.html",
        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nonce_count: "00000001",
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop: "auth",
    };
    assert_eq!(input.response(), "8ca523f5e9506fed4657c9700eebdbec");
    input.algorithm = Algorithm::Sha256;
    assert_eq!(
        input.response(),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn register_is_challenged_with_401_offering_sha256_then_md5() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    assert_eq!(challenge.status_code(), Some(401));
    assert!(challenge.to_header().unwrap().unwrap().tag().is_some());
    let headers = challenge
        .auth_headers(&HeaderName::WwwAuthenticate)
        .unwrap();
    assert_eq!(headers.len(), 2);
    let algorithms: Vec<_> = headers
        .iter()
        .map(|h| h.param("algorithm").unwrap().into_owned())
        .collect();
    assert_eq!(algorithms, ["SHA-256", "MD5"]);
    for header in &headers {
        assert!(header.is_digest());
        assert_eq!(header.param("realm").as_deref(), Some(REALM));
        assert_eq!(header.param("qop").as_deref(), Some("auth"));
        assert!(header.param("stale").is_none());
    }
    // Round trip through the wire form.
    let reparsed = Message::parse_datagram(challenge.to_bytes()).unwrap();
    assert_eq!(reparsed, challenge);
}

#[test]
fn invite_is_challenged_with_407() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "INVITE");
    assert_eq!(challenge.status_code(), Some(407));
    assert_eq!(
        challenge
            .auth_headers(&HeaderName::ProxyAuthenticate)
            .unwrap()
            .len(),
        2
    );
    assert!(
        challenge
            .auth_headers(&HeaderName::WwwAuthenticate)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn correct_credentials_pass_with_both_algorithms_and_methods() {
    for method in ["REGISTER", "INVITE", "MESSAGE"] {
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let now = Instant::now();
            let mut auth = authenticator(now);
            let challenge = first_challenge(&mut auth, now, method);
            let credentials = answer(&challenge, algorithm, "1001", "secret-1001", method, 1);
            let retry = request(method, Some((authorization_header(method), &credentials)));
            let outcome =
                auth.authenticate(now + Duration::from_secs(1), &retry, source(), &passwords);
            assert_eq!(
                outcome,
                AuthOutcome::Authenticated(Identity {
                    user: "1001".to_owned(),
                    algorithm
                }),
                "{method} {algorithm:?}"
            );
        }
    }
}

#[test]
fn credentials_in_the_wrong_header_are_not_read() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "INVITE");
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "INVITE",
        1,
    );
    let retry = request("INVITE", Some(("Authorization", &credentials)));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);
}

#[test]
fn wrong_password_and_unknown_user_are_rechallenged_alike() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    for (user, password) in [
        ("1001", "guess"),
        ("9999", "secret-1001"),
        ("1002", "secret-1001"),
    ] {
        let credentials = answer(&challenge, Algorithm::Sha256, user, password, "REGISTER", 1);
        let retry = request("REGISTER", Some(("Authorization", &credentials)));
        let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
        assert_eq!(rejection.reason, RejectReason::BadCredentials, "{user}");
        assert_eq!(rejection.response.status_code(), Some(401));
        let headers = rejection
            .response
            .auth_headers(&HeaderName::WwwAuthenticate)
            .unwrap();
        assert!(headers.iter().all(|h| h.param("stale").is_none()));
    }
}

#[test]
fn a_digest_for_another_method_or_uri_fails() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "INVITE");
    // Computed for BYE, sent with INVITE.
    let credentials = answer(&challenge, Algorithm::Md5, "1001", "secret-1001", "BYE", 1);
    let retry = request("INVITE", Some(("Proxy-Authorization", &credentials)));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::BadCredentials);
    // A uri that is not the Request-URI.
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "INVITE",
        1,
    )
    .replace("uri=\"sip:127.0.0.1\"", "uri=\"sip:elsewhere.example\"");
    let retry = request("INVITE", Some(("Proxy-Authorization", &credentials)));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::UriMismatch);
    // A fresh challenge (a phone following a 302 re-sends its old
    // credentials), not a failure that counts towards a lock-out.
    assert_eq!(rejection.response.status_code(), Some(407));
    assert!(
        rejection
            .response
            .header(&HeaderName::ProxyAuthenticate)
            .is_some()
    );
}

#[test]
fn stale_nonce_gets_a_new_challenge_with_stale_true() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let credentials = answer(
        &challenge,
        Algorithm::Sha256,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let retry = request("REGISTER", Some(("Authorization", &credentials)));
    let later = now + Duration::from_secs(301);
    let rejection = rejected(auth.authenticate(later, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::StaleNonce);
    assert_eq!(rejection.response.status_code(), Some(401));
    let headers = rejection
        .response
        .auth_headers(&HeaderName::WwwAuthenticate)
        .unwrap();
    assert!(
        headers
            .iter()
            .all(|h| h.param("stale").as_deref() == Some("true"))
    );
    // The new nonce works, and a stale nonce is not a failure.
    let credentials = answer(
        &rejection.response,
        Algorithm::Sha256,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let retry = request("REGISTER", Some(("Authorization", &credentials)));
    assert!(matches!(
        auth.authenticate(later, &retry, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
}

#[test]
fn nonce_lifetime_is_configurable() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.nonce_lifetime = Duration::from_secs(10);
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let retry = request("REGISTER", Some(("Authorization", &credentials)));
    let rejection =
        rejected(auth.authenticate(now + Duration::from_secs(11), &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::StaleNonce);
}

#[test]
fn a_nonce_from_another_secret_is_stale_when_the_digest_is_right() {
    // A phone re-registering after a restart of the server.
    let now = Instant::now();
    let mut before_restart = authenticator(now);
    let challenge = first_challenge(&mut before_restart, now, "REGISTER");
    let mut after_restart = Authenticator::with_secret(AuthConfig::new(REALM), now, [9; 32]);
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let retry = request("REGISTER", Some(("Authorization", &credentials)));
    let rejection = rejected(after_restart.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::StaleNonce);
    // A forged nonce with a digest computed for it is still only stale,
    // never accepted.
    let forged = credentials.replace("nonce=\"", "nonce=\"00");
    let retry = request("REGISTER", Some(("Authorization", &forged)));
    let rejection = rejected(after_restart.authenticate(now, &retry, source(), &passwords));
    assert_ne!(rejection.reason, RejectReason::NoCredentials);
}

#[test]
fn replayed_nonce_count_is_refused_and_a_higher_one_passes() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "INVITE");
    let first = answer(
        &challenge,
        Algorithm::Sha256,
        "1001",
        "secret-1001",
        "INVITE",
        1,
    );
    let request_one = request("INVITE", Some(("Proxy-Authorization", &first)));
    assert!(matches!(
        auth.authenticate(now, &request_one, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
    let rejection = rejected(auth.authenticate(now, &request_one, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::Replayed);
    assert_eq!(rejection.response.status_code(), Some(407));
    let third = answer(
        &challenge,
        Algorithm::Sha256,
        "1001",
        "secret-1001",
        "INVITE",
        3,
    );
    let request_three = request("INVITE", Some(("Proxy-Authorization", &third)));
    assert!(matches!(
        auth.authenticate(now, &request_three, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
    // Going back to 2 after 3 is a replay as well.
    let second = answer(
        &challenge,
        Algorithm::Sha256,
        "1001",
        "secret-1001",
        "INVITE",
        2,
    );
    let request_two = request("INVITE", Some(("Proxy-Authorization", &second)));
    let rejection = rejected(auth.authenticate(now, &request_two, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::Replayed);
    assert_eq!(auth.tracked_nonces(), 1);
}

#[test]
fn nonce_table_is_bounded_and_eviction_never_reopens_a_replay() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.max_tracked_nonces = 3;
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let mut used = Vec::new();
    for step in 0..6u64 {
        let at = now + Duration::from_millis(step * 10);
        let challenge = first_challenge(&mut auth, at, "REGISTER");
        let credentials = answer(
            &challenge,
            Algorithm::Md5,
            "1001",
            "secret-1001",
            "REGISTER",
            1,
        );
        let retry = request("REGISTER", Some(("Authorization", &credentials)));
        assert!(matches!(
            auth.authenticate(at, &retry, source(), &passwords),
            AuthOutcome::Authenticated(_)
        ));
        used.push(retry);
        assert!(auth.tracked_nonces() <= 3);
    }
    let at = now + Duration::from_secs(1);
    for retry in &used {
        let rejection = rejected(auth.authenticate(at, retry, source(), &passwords));
        assert!(
            matches!(
                rejection.reason,
                RejectReason::Replayed | RejectReason::StaleNonce
            ),
            "{:?}",
            rejection.reason
        );
    }
}

#[test]
fn purge_forgets_expired_nonces() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let retry = request("REGISTER", Some(("Authorization", &credentials)));
    assert!(matches!(
        auth.authenticate(now, &retry, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
    assert_eq!(auth.tracked_nonces(), 1);
    auth.purge(now + Duration::from_secs(301));
    assert_eq!(auth.tracked_nonces(), 0);
    // Forgotten, but expired: still refused.
    let rejection =
        rejected(auth.authenticate(now + Duration::from_secs(301), &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::StaleNonce);
}

#[test]
fn lock_out_after_repeated_failures_and_its_expiry() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.lockout.max_user_failures = 3;
    config.lockout.window = Duration::from_secs(60);
    config.lockout.duration = Duration::from_secs(120);
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let wrong = answer(&challenge, Algorithm::Md5, "1001", "wrong", "REGISTER", 1);
    let wrong_request = request("REGISTER", Some(("Authorization", &wrong)));
    for attempt in 1..=2 {
        let rejection = rejected(auth.authenticate(now, &wrong_request, source(), &passwords));
        assert_eq!(rejection.reason, RejectReason::BadCredentials, "{attempt}");
    }
    let rejection = rejected(auth.authenticate(now, &wrong_request, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::LockedOut);
    assert_eq!(rejection.response.status_code(), Some(403));
    assert!(auth.is_user_locked_out(now, source(), "1001"));
    assert!(!auth.is_locked_out(now, source()));

    // Even the right password gets 403 while locked.
    let right = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let right_request = request("REGISTER", Some(("Authorization", &right)));
    let at = now + Duration::from_secs(119);
    let rejection = rejected(auth.authenticate(at, &right_request, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::LockedOut);
    // Another address is not affected.
    let other: IpAddr = "192.0.2.11".parse().unwrap();
    assert!(!auth.is_user_locked_out(at, other, "1001"));
    let rejection = rejected(auth.authenticate(at, &request("REGISTER", None), other, &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);

    // After the lock-out the source may try again.
    let after = now + Duration::from_secs(120);
    assert!(!auth.is_user_locked_out(after, source(), "1001"));
    let challenge = first_challenge(&mut auth, after, "REGISTER");
    let right = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let right_request = request("REGISTER", Some(("Authorization", &right)));
    assert!(matches!(
        auth.authenticate(after, &right_request, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.lockout.max_user_failures = 3;
    config.lockout.window = Duration::from_secs(60);
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let wrong = answer(&challenge, Algorithm::Md5, "1001", "wrong", "REGISTER", 1);
    let wrong_request = request("REGISTER", Some(("Authorization", &wrong)));
    for minute in 0..6u64 {
        let at = now + Duration::from_secs(minute * 61);
        let rejection = rejected(auth.authenticate(at, &wrong_request, source(), &passwords));
        assert_eq!(rejection.reason, RejectReason::BadCredentials);
        let at = at + Duration::from_secs(1);
        let rejection = rejected(auth.authenticate(at, &wrong_request, source(), &passwords));
        assert_eq!(rejection.reason, RejectReason::BadCredentials);
    }
}

#[test]
fn malformed_or_unsupported_credentials() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let good = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let cases = [
        (good.replace(", qop=auth", ""), RejectReason::Malformed),
        (good.replace("nc=00000001", "nc=1"), RejectReason::Malformed),
        (
            good.replace("algorithm=MD5", "algorithm=MD5-sess"),
            RejectReason::UnsupportedAlgorithm,
        ),
        (good.replace("response=", "reply="), RejectReason::Malformed),
        (
            "Digest realm=\"tapir\", username=\"1001\"".to_owned(),
            RejectReason::Malformed,
        ),
    ];
    for (value, expected) in cases {
        let retry = request("REGISTER", Some(("Authorization", &value)));
        let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
        assert_eq!(rejection.reason, expected, "{value}");
    }
    // Credentials for another realm are ignored: a first challenge.
    let other_realm = good.replace("realm=\"tapir\"", "realm=\"elsewhere\"");
    let retry = request("REGISTER", Some(("Authorization", &other_realm)));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);
    // Unparseable data is not ours either.
    let retry = request("REGISTER", Some(("Authorization", "Digest garbage")));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);
    // Basic is not digest.
    let retry = request(
        "REGISTER",
        Some(("Authorization", "Basic MTAwMTpzZWNyZXQ=")),
    );
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::NoCredentials);
}

#[test]
fn an_algorithm_not_offered_is_refused() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.algorithms = vec![Algorithm::Sha256];
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    assert_eq!(
        challenge
            .auth_headers(&HeaderName::WwwAuthenticate)
            .unwrap()
            .len(),
        1
    );
    let nonce_header = challenge
        .auth_headers(&HeaderName::WwwAuthenticate)
        .unwrap()
        .first()
        .unwrap()
        .param("nonce")
        .unwrap()
        .into_owned();
    let nc = "00000001";
    let response = DigestInput {
        algorithm: Algorithm::Md5,
        username: "1001",
        realm: REALM,
        password: "secret-1001",
        method: "REGISTER",
        uri: "sip:127.0.0.1",
        nonce: &nonce_header,
        nonce_count: nc,
        cnonce: "c",
        qop: "auth",
    }
    .response();
    let value = format!(
        "Digest username=\"1001\", realm=\"tapir\", nonce=\"{nonce_header}\", uri=\"sip:127.0.0.1\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c\""
    );
    let retry = request("REGISTER", Some(("Authorization", &value)));
    let rejection = rejected(auth.authenticate(now, &retry, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::UnsupportedAlgorithm);
}

#[test]
fn upper_case_response_hex_is_accepted() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let credentials = answer(
        &challenge,
        Algorithm::Md5,
        "1001",
        "secret-1001",
        "REGISTER",
        1,
    );
    let start = credentials.find("response=\"").unwrap() + 10;
    let end = start + 32;
    let upper = format!(
        "{}{}{}",
        &credentials[..start],
        credentials[start..end].to_ascii_uppercase(),
        &credentials[end..]
    );
    let retry = request("REGISTER", Some(("Authorization", &upper)));
    assert!(matches!(
        auth.authenticate(now, &retry, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
}

#[test]
fn a_success_does_not_reset_the_failure_count_of_the_source() {
    // One valid account must not let a source guess others' passwords
    // for ever.
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.lockout.max_user_failures = 3;
    config.lockout.max_source_failures = 3;
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let mut outcomes = Vec::new();
    for (nc, user) in (1..=3).zip(["1002", "9001", "9002"]) {
        let guess = answer(&challenge, Algorithm::Md5, user, "guess", "REGISTER", 1);
        let guess_request = request("REGISTER", Some(("Authorization", &guess)));
        let rejection = rejected(auth.authenticate(now, &guess_request, source(), &passwords));
        outcomes.push(rejection.reason);
        let own = answer(
            &challenge,
            Algorithm::Md5,
            "1001",
            "secret-1001",
            "REGISTER",
            nc,
        );
        let own_request = request("REGISTER", Some(("Authorization", &own)));
        auth.authenticate(now, &own_request, source(), &passwords);
    }
    assert_eq!(
        outcomes,
        [
            RejectReason::BadCredentials,
            RejectReason::BadCredentials,
            RejectReason::LockedOut
        ]
    );
}

/// A REGISTER from `user` answering `challenge` with `password`.
fn register_as(challenge: &Message, user: &str, password: &str, nc: u32) -> Message {
    let credentials = answer(challenge, Algorithm::Md5, user, password, "REGISTER", nc);
    request("REGISTER", Some(("Authorization", &credentials)))
}

#[test]
fn a_user_locked_at_a_source_does_not_lock_other_users_there() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let wrong = register_as(&challenge, "1001", "stale-password", 1);
    let reasons: Vec<_> = (0..5)
        .map(|_| rejected(auth.authenticate(now, &wrong, source(), &passwords)).reason)
        .collect();
    assert_eq!(
        reasons.last(),
        Some(&RejectReason::LockedOut),
        "{reasons:?}"
    );
    assert!(auth.is_user_locked_out(now, source(), "1001"));
    assert!(!auth.is_locked_out(now, source()));
    // 1001 at this address gets 403 even with the right password...
    let right = register_as(&challenge, "1001", "secret-1001", 1);
    let rejection = rejected(auth.authenticate(now, &right, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::LockedOut);
    assert_eq!(rejection.response.status_code(), Some(403));
    // ...while 1002 at the same address, and 1001 elsewhere, go on.
    let other_user = register_as(&challenge, "1002", "secret-1002", 1);
    assert!(matches!(
        auth.authenticate(now, &other_user, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
    let elsewhere: IpAddr = "192.0.2.77".parse().unwrap();
    let right = register_as(&challenge, "1001", "secret-1001", 2);
    assert!(matches!(
        auth.authenticate(now, &right, elsewhere, &passwords),
        AuthOutcome::Authenticated(_)
    ));
}

#[test]
fn spraying_many_users_from_one_source_locks_the_source() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let limit = auth.config().lockout.max_source_failures;
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let mut reasons = Vec::new();
    for guess in 0..limit {
        let user = format!("9{guess:03}");
        let spray = register_as(&challenge, &user, "123456", 1);
        reasons.push(rejected(auth.authenticate(now, &spray, source(), &passwords)).reason);
    }
    assert!(
        reasons[..reasons.len() - 1]
            .iter()
            .all(|r| *r == RejectReason::BadCredentials),
        "{reasons:?}"
    );
    assert_eq!(reasons.last(), Some(&RejectReason::LockedOut));
    assert!(auth.is_locked_out(now, source()));
    // Every user at that address is refused now, even with no credentials.
    let right = register_as(&challenge, "1002", "secret-1002", 1);
    let rejection = rejected(auth.authenticate(now, &right, source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::LockedOut);
    let rejection =
        rejected(auth.authenticate(now, &request("REGISTER", None), source(), &passwords));
    assert_eq!(rejection.reason, RejectReason::LockedOut);
    // Until the lock-out ends.
    let after = now + auth.config().lockout.duration;
    assert!(!auth.is_locked_out(after, source()));
}

#[test]
fn an_exempt_source_is_never_locked() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.lockout.exempt = vec!["192.0.2.0/24".parse().unwrap()];
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let wrong = register_as(&challenge, "1001", "wrong", 1);
    for _ in 0..100 {
        let rejection = rejected(auth.authenticate(now, &wrong, source(), &passwords));
        assert_eq!(rejection.reason, RejectReason::BadCredentials);
    }
    assert!(!auth.is_user_locked_out(now, source(), "1001"));
    assert_eq!(auth.tracked_failures(), 0);
    let right = register_as(&challenge, "1001", "secret-1001", 1);
    assert!(matches!(
        auth.authenticate(now, &right, source(), &passwords),
        AuthOutcome::Authenticated(_)
    ));
}

#[test]
fn a_success_clears_its_own_pair() {
    let now = Instant::now();
    let mut auth = authenticator(now);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    let wrong = register_as(&challenge, "1001", "typo", 1);
    for nc in 1..=3 {
        for _ in 0..4 {
            let rejection = rejected(auth.authenticate(now, &wrong, source(), &passwords));
            assert_eq!(rejection.reason, RejectReason::BadCredentials);
        }
        let right = register_as(&challenge, "1001", "secret-1001", nc);
        assert!(matches!(
            auth.authenticate(now, &right, source(), &passwords),
            AuthOutcome::Authenticated(_)
        ));
    }
}

#[test]
fn forged_sources_cannot_grow_the_failure_table() {
    let now = Instant::now();
    let mut config = AuthConfig::new(REALM);
    config.lockout.max_tracked = 64;
    config.lockout.max_user_failures = 2;
    let mut auth = Authenticator::with_secret(config, now, SECRET);
    let challenge = first_challenge(&mut auth, now, "REGISTER");
    // A guesser locks itself first.
    let wrong = register_as(&challenge, "1001", "wrong", 1);
    for _ in 0..2 {
        rejected(auth.authenticate(now, &wrong, source(), &passwords));
    }
    assert!(auth.is_user_locked_out(now, source(), "1001"));
    for n in 0..5_000u32 {
        let forged = IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        let long_user = format!("{n}{}", "x".repeat(1000));
        let spray = register_as(&challenge, &long_user, "guess", 1);
        rejected(auth.authenticate(now, &spray, forged, &passwords));
        assert!(auth.tracked_failures() <= 64, "{}", auth.tracked_failures());
    }
    // Locked counters are evicted last: the guesser is still locked.
    assert!(auth.is_user_locked_out(now, source(), "1001"));
}

#[test]
fn ip_networks() {
    let lan: IpNetwork = "10.0.0.0/8".parse().unwrap();
    assert!(lan.contains("10.200.1.2".parse().unwrap()));
    assert!(lan.contains("::ffff:10.1.1.1".parse().unwrap()));
    assert!(!lan.contains("11.0.0.1".parse().unwrap()));
    let host: IpNetwork = "192.0.2.5".parse().unwrap();
    assert!(host.contains("192.0.2.5".parse().unwrap()));
    assert!(!host.contains("192.0.2.6".parse().unwrap()));
    let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("203.0.113.9".parse().unwrap()));
    assert!(!all.contains("::1".parse().unwrap()));
    let v6: IpNetwork = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
    assert!(!v6.contains("2001:db9::5".parse().unwrap()));
    assert!(
        "[::1]"
            .parse::<IpNetwork>()
            .unwrap()
            .contains("::1".parse().unwrap())
    );
    for bad in ["10.0.0.0/33", "::/129", "pbx.example", "10.0.0.0/x", ""] {
        assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
    }
    assert_eq!(lan.to_string(), "10.0.0.0/8");
}

#[test]
fn ack_and_cancel_are_not_challengeable() {
    assert!(!challengeable(&Method::Ack));
    assert!(!challengeable(&Method::Cancel));
    assert!(challengeable(&Method::Invite));
    assert!(challengeable(&Method::Register));
    assert!(challengeable(&Method::Bye));
}

#[test]
fn debug_output_hides_the_secret() {
    let auth = Authenticator::with_secret(AuthConfig::new(REALM), Instant::now(), [0xAB; 32]);
    let text = format!("{auth:?}");
    assert!(text.contains("redacted"));
    assert!(!text.contains("171"), "{text}");
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(constant_time_eq(b"", b""));
}
