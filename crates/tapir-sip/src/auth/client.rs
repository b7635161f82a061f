//! Client-side digest authentication (RFC 3261 §22.2 and §22.3, RFC 2617,
//! RFC 7616 computation, RFC 8760 algorithms): what tapir does when a SIP
//! server it calls (a carrier behind a trunk) challenges one of its requests
//! with `401` + `WWW-Authenticate` or `407` + `Proxy-Authenticate`.
//!
//! This module reads the challenges of such a response, picks the strongest
//! one tapir supports (SHA-256 before MD5) and writes the matching
//! `Authorization` / `Proxy-Authorization` header value. Whether to answer
//! a challenge at all (once per request, only with credentials) is the
//! caller's rule. Nothing here reads the clock or the network; the client
//! nonce is the caller's, so that tests can use the RFCs' example values.

use std::fmt::Write as _;

use super::{Algorithm, DigestInput, escape_quoted};
use crate::msg::{AuthHeader, HeaderName, Message};

/// A fresh client nonce (`cnonce`): 16 random bytes in hex.
pub fn cnonce() -> String {
    let bytes: [u8; 16] = rand::random();
    super::to_hex(&bytes)
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The response is not a 401 or 407.
    #[error("not a challenge: status {0}")]
    NotAChallenge(u16),
    /// No challenge header, or only ones of other schemes (Basic, …).
    #[error("no Digest challenge in the response")]
    NoDigest,
    /// A Digest challenge whose parameters cannot be read, or without
    /// realm or nonce.
    #[error("malformed Digest challenge: {0}")]
    Malformed(&'static str),
    /// Only algorithms tapir does not implement (`-sess` variants,
    /// SHA-512-256, …).
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// A `qop` list without `auth` (only `auth-int`).
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
}

/// One Digest challenge, read from a `WWW-Authenticate` or
/// `Proxy-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back when present.
    pub opaque: Option<String>,
    /// The hash algorithm (`MD5` when the challenge names none).
    pub algorithm: Algorithm,
    /// The server offered `qop=auth` (else the RFC 2069 computation
    /// without `nc` and `cnonce` is used).
    pub qop_auth: bool,
    /// `stale=true`: the previous nonce expired, the credentials were right.
    pub stale: bool,
}

impl Challenge {
    /// Read one challenge header.
    pub fn parse(header: &AuthHeader<'_>) -> Result<Challenge, ChallengeError> {
        if !header.is_digest() {
            return Err(ChallengeError::NoDigest);
        }
        let params = header
            .params()
            .ok_or(ChallengeError::Malformed("parameters"))?;
        let get = |name: &str| {
            params
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name))
                .and_then(|p| p.unquoted_value())
                .map(|v| v.into_owned())
        };
        let realm = get("realm").ok_or(ChallengeError::Malformed("no realm"))?;
        let nonce = get("nonce")
            .filter(|n| !n.is_empty())
            .ok_or(ChallengeError::Malformed("no nonce"))?;
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(token) => {
                Algorithm::from_token(&token).ok_or(ChallengeError::UnsupportedAlgorithm(token))?
            }
        };
        let qop_auth = match get("qop") {
            None => false,
            Some(list) => {
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    true
                } else {
                    return Err(ChallengeError::UnsupportedQop(list));
                }
            }
        };
        let stale = get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Ok(Challenge {
            realm,
            nonce,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The best challenge of a 401 or 407 response, with the header its
    /// answer goes in (`Authorization` for 401, `Proxy-Authorization` for
    /// 407). SHA-256 is preferred to MD5 (RFC 8760 §2.4); challenges tapir
    /// cannot answer are skipped, and the error of the first one is
    /// returned when none is left.
    pub fn from_response(response: &Message) -> Result<(HeaderName, Challenge), ChallengeError> {
        let code = response.status_code().unwrap_or(0);
        let (challenge_header, answer_header) = match code {
            401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            407 => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
            other => return Err(ChallengeError::NotAChallenge(other)),
        };
        let mut first_error = None;
        let mut best: Option<Challenge> = None;
        for value in response.header_values(&challenge_header) {
            let parsed = AuthHeader::parse(value, challenge_header.static_name())
                .map_err(|_| ChallengeError::Malformed("header"))
                .and_then(|h| Challenge::parse(&h));
            match parsed {
                Ok(c) => {
                    let better = best.as_ref().is_none_or(|b| {
                        b.algorithm == Algorithm::Md5 && c.algorithm == Algorithm::Sha256
                    });
                    if better {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        best.map(|c| (answer_header, c))
            .ok_or(first_error.unwrap_or(ChallengeError::NoDigest))
    }

    /// The value of the `Authorization` (or `Proxy-Authorization`) header
    /// answering this challenge for `method` on `uri` (the Request-URI),
    /// with client nonce `cnonce` and nonce count `nc`.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let nonce_count = format!("{nc:08x}");
        let response = if self.qop_auth {
            DigestInput {
                algorithm: self.algorithm,
                username,
                realm: &self.realm,
                password,
                method,
                uri,
                nonce: &self.nonce,
                nonce_count: &nonce_count,
                cnonce,
                qop: "auth",
            }
            .response()
        } else {
            // RFC 2069 (kept by RFC 2617 §3.2.2.1 for servers without qop).
            let a = self.algorithm;
            let ha1 = a.hex_hash(format!("{username}:{}:{password}", self.realm).as_bytes());
            let ha2 = a.hex_hash(format!("{method}:{uri}").as_bytes());
            a.hex_hash(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes())
        };
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            escape_quoted(username),
            escape_quoted(&self.realm),
            escape_quoted(&self.nonce),
            escape_quoted(uri),
            self.algorithm.token(),
        );
        if self.qop_auth {
            let _ = write!(
                value,
                ", qop=auth, nc={nonce_count}, cnonce=\"{}\"",
                escape_quoted(cnonce)
            );
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(value, ", opaque=\"{}\"", escape_quoted(opaque));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::auth::{AuthConfig, AuthOutcome, Authenticator};
    use bytes::Bytes;
    use std::time::Instant;

    fn challenge(text: &str) -> Result<Challenge, ChallengeError> {
        Challenge::parse(&AuthHeader::parse(text, "WWW-Authenticate").unwrap())
    }

    fn param(value: &str, name: &str) -> String {
        let h = AuthHeader::parse(value, "Authorization").unwrap();
        h.params()
            .unwrap()
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .unquoted_value()
            .unwrap()
            .into_owned()
    }

    /// RFC 2617 §3.5: the example with qop=auth.
    #[test]
    fn rfc_2617_example() {
        let c = challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop_auth);
        let v = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(param(&v, "response"), "6629fae49393a05397450978507c4ef1");
        assert_eq!(param(&v, "nc"), "00000001");
        assert_eq!(param(&v, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
    }

    /// RFC 7616 §3.9.1: the same request with MD5 and with SHA-256.
    #[test]
    fn rfc_7616_examples() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algorithm, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let c = challenge(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={algorithm}, nonce=\"{nonce}\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap();
            let v = c.answer(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                cnonce,
                1,
            );
            assert_eq!(param(&v, "response"), expected, "{algorithm}");
            assert_eq!(param(&v, "algorithm"), algorithm);
        }
    }

    #[test]
    fn without_qop_the_rfc_2069_digest_is_used() {
        // RFC 2069 §2.4's example, whose published digest has a known
        // erratum; this checks the formula H(H(A1):nonce:H(A2)) itself.
        let c = challenge("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!c.qop_auth);
        let v = c.answer("u", "p", "INVITE", "sip:1@x", "ignored", 1);
        let a = Algorithm::Md5;
        let expected = a.hex_hash(
            format!(
                "{}:n:{}",
                a.hex_hash(b"u:r:p"),
                a.hex_hash(b"INVITE:sip:1@x")
            )
            .as_bytes(),
        );
        assert_eq!(param(&v, "response"), expected);
        assert!(!v.contains("cnonce") && !v.contains("qop"), "{v}");
    }

    #[test]
    fn unusable_challenges_are_errors() {
        assert_eq!(
            challenge("Basic realm=\"x\"").unwrap_err(),
            ChallengeError::NoDigest
        );
        assert_eq!(
            challenge("Digest realm=\"x\"").unwrap_err(),
            ChallengeError::Malformed("no nonce")
        );
        assert!(matches!(
            challenge("Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess").unwrap_err(),
            ChallengeError::UnsupportedAlgorithm(_)
        ));
        assert!(matches!(
            challenge("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"").unwrap_err(),
            ChallengeError::UnsupportedQop(_)
        ));
        assert!(
            challenge("Digest realm=\"x\", nonce=\"n\", stale=TRUE")
                .unwrap()
                .stale
        );
    }

    fn invite() -> Message {
        Message::parse_datagram(Bytes::from_static(
            b"INVITE sip:0049301234@carrier.example SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc1\r\n\
              From: <sip:1001@tapir>;tag=t1\r\nTo: <sip:0049301234@carrier.example>\r\n\
              Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap()
    }

    /// tapir's own server side accepts what the client side writes: a 407
    /// with SHA-256 and MD5 challenges is answered with SHA-256.
    #[test]
    fn tapirs_authenticator_accepts_the_answer_to_its_407() {
        let now = Instant::now();
        let mut server = Authenticator::new(AuthConfig::new("carrier"), now);
        let request = invite();
        let challenge_response = server.challenge(now, &request, false);
        assert_eq!(challenge_response.status_code(), Some(407));
        let (header, c) = Challenge::from_response(&challenge_response).unwrap();
        assert_eq!(header, HeaderName::ProxyAuthorization);
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let value = c.answer(
            "trunk-user",
            "trunk-pw",
            "INVITE",
            "sip:0049301234@carrier.example",
            "abcdef",
            1,
        );
        let mut retried = request.clone();
        retried.push_header(header, value);
        let passwords = |u: &str| (u == "trunk-user").then(|| "trunk-pw".to_string());
        match server.authenticate(now, &retried, "127.0.0.1".parse().unwrap(), &passwords) {
            AuthOutcome::Authenticated(id) => assert_eq!(id.user, "trunk-user"),
            AuthOutcome::Rejected(r) => panic!("rejected: {:?}", r.reason),
        }
    }

    #[test]
    fn responses_that_are_not_challenges() {
        let ok = invite().response_builder(200, None, Some("x")).build();
        assert_eq!(
            Challenge::from_response(&ok).unwrap_err(),
            ChallengeError::NotAChallenge(200)
        );
        let bare = invite().response_builder(407, None, Some("x")).build();
        assert_eq!(
            Challenge::from_response(&bare).unwrap_err(),
            ChallengeError::NoDigest
        );
        let broken = invite()
            .response_builder(407, None, Some("x"))
            .header(HeaderName::ProxyAuthenticate, "Digest nonce=")
            .build();
        assert!(Challenge::from_response(&broken).is_err());
    }
}
