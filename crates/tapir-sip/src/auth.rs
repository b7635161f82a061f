//! Server-side SIP digest authentication (RFC 3261 §22, RFC 7616 digest
//! computation, RFC 8760 algorithms for SIP), sans-IO.
//!
//! This module owns everything between "a request arrived" and "this user
//! is who they say": building challenges (`401` + `WWW-Authenticate` for
//! REGISTER, `407` + `Proxy-Authenticate` for every other request, each
//! offering SHA-256 and MD5 with `qop=auth`), checking the answer, nonce
//! life and replay protection, and the lock-out of guessers (see
//! [`LockoutPolicy`]): a user at a source address that keeps failing is
//! locked at that address only, and a source that fails for many users
//! (password spraying) is locked as a whole.
//!
//! The client side (answering a carrier's challenge) is [`client`].
//!
//! Nonces need no table to be checked: each carries its issue time and a
//! random part, signed with HMAC-SHA-256 under a per-process secret. Only
//! nonces that were actually *used* are remembered, with the highest `nc`
//! seen, so that a replayed `nc` is refused; that table is bounded, and a
//! nonce that was evicted from it is treated as stale rather than fresh, so
//! eviction can never reopen a replay.
//!
//! Time only enters as the `now` argument; the [`Authenticator`] never
//! reads the clock.
//!
//! ```
//! use std::time::Instant;
//! use tapir_sip::auth::{AuthConfig, AuthOutcome, Authenticator};
//! # use bytes::Bytes;
//! # use tapir_sip::msg::Message;
//! # let register = Message::parse_datagram(Bytes::from_static(
//! #     b"REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
//! #       From: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>\r\nCall-ID: c1\r\n\
//! #       CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")).unwrap();
//! let now = Instant::now();
//! let mut authenticator = Authenticator::new(AuthConfig::new("tapir"), now);
//! let passwords = |user: &str| (user == "1001").then(|| "secret".to_owned());
//! let source = "127.0.0.1".parse().unwrap();
//! match authenticator.authenticate(now, &register, source, &passwords) {
//!     AuthOutcome::Authenticated(identity) => println!("hello {}", identity.user),
//!     AuthOutcome::Rejected(rejection) => {
//!         // First contact: a 401 with two challenges to send back.
//!         assert_eq!(rejection.response.status_code(), Some(401));
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::msg::{AuthHeader, HeaderName, Message, Method, SipUri, StartLine};

pub mod client;

/// A digest hash algorithm (RFC 7616 §3.2, RFC 8760 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, kept for the phones that know nothing better.
    Md5,
    /// `SHA-256`, preferred.
    Sha256,
}

impl Algorithm {
    /// The token used in `algorithm=` parameters.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm named by an `algorithm=` value (case-insensitive);
    /// `-sess` variants and anything else are not supported.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex_hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 => to_hex(&sha2::Sha256::digest(data)),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let high = char::from(*pair.first()?).to_digit(16)?;
        let low = char::from(*pair.get(1)?).to_digit(16)?;
        out.push(u8::try_from(high * 16 + low).ok()?);
    }
    Some(out)
}

/// The inputs of one digest `response` computation with `qop=auth`
/// (RFC 7616 §3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestInput<'a> {
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `username`.
    pub username: &'a str,
    /// `realm`.
    pub realm: &'a str,
    /// The user's password.
    pub password: &'a str,
    /// The request method (`REGISTER`, `INVITE`, …).
    pub method: &'a str,
    /// The `uri` parameter (digest-uri).
    pub uri: &'a str,
    /// `nonce`.
    pub nonce: &'a str,
    /// `nc`, as its eight hex digits.
    pub nonce_count: &'a str,
    /// `cnonce`.
    pub cnonce: &'a str,
    /// `qop`, `auth`.
    pub qop: &'a str,
}

impl DigestInput<'_> {
    /// The expected `response` value, lower-case hex:
    /// `H(H(user:realm:password):nonce:nc:cnonce:qop:H(method:uri))`.
    pub fn response(&self) -> String {
        let algorithm = self.algorithm;
        let ha1 = algorithm
            .hex_hash(format!("{}:{}:{}", self.username, self.realm, self.password).as_bytes());
        let ha2 = algorithm.hex_hash(format!("{}:{}", self.method, self.uri).as_bytes());
        algorithm.hex_hash(
            format!(
                "{ha1}:{}:{}:{}:{}:{ha2}",
                self.nonce, self.nonce_count, self.cnonce, self.qop
            )
            .as_bytes(),
        )
    }
}

/// True for the methods a server may challenge: everything but ACK and
/// CANCEL, which cannot be resubmitted with credentials (RFC 3261 §22.1);
/// they are trusted as far as the INVITE they belong to was.
pub fn challengeable(method: &Method) -> bool {
    !matches!(method, Method::Ack | Method::Cancel)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// Where passwords come from. Implemented for every
/// `Fn(&str) -> Option<String>` closure (user → password).
pub trait CredentialStore {
    /// The password of `user`, `None` when there is no such user.
    fn password(&self, user: &str) -> Option<String>;
}

impl<F> CredentialStore for F
where
    F: Fn(&str) -> Option<String>,
{
    fn password(&self, user: &str) -> Option<String> {
        self(user)
    }
}

/// Settings of an [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The realm offered in challenges and required in credentials.
    pub realm: String,
    /// Algorithms offered, most preferred first (RFC 8760 §2.4: one
    /// challenge header per algorithm, in this order).
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce may be used after it was issued (default 5 min).
    pub nonce_lifetime: Duration,
    /// Most nonces whose `nc` is remembered at once (default 65 536).
    pub max_tracked_nonces: usize,
    /// Who is locked out after failed attempts, and for how long.
    pub lockout: LockoutPolicy,
}

impl AuthConfig {
    /// Defaults for `realm`: SHA-256 then MD5, nonces valid 5 minutes, and
    /// the default [`LockoutPolicy`].
    pub fn new(realm: impl Into<String>) -> Self {
        AuthConfig {
            realm: realm.into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            max_tracked_nonces: 65_536,
            lockout: LockoutPolicy::default(),
        }
    }
}

/// The lock-out of guessers, tuned like fail2ban's SIP jails (5 failures in
/// 10 minutes ban for 10 minutes), but aimed at the guesser rather than at
/// everybody behind its address:
///
/// - failures are counted per (source address, user); `max_user_failures`
///   of them within `window` lock that user *at that address* for
///   `duration`; the same user elsewhere, and other users at that address,
///   are not affected;
/// - failures are also counted per source address whatever user they name;
///   `max_source_failures` of them (set well above `max_user_failures`, so
///   that a few phones with stale passwords behind one NAT do not reach
///   it) lock the whole address: a password sprayer;
/// - addresses in `exempt` are never counted nor locked;
/// - a success clears the failures of its (source, user) pair, never those
///   of the source;
/// - the table of counters holds at most `max_tracked` entries: a flood of
///   forged source addresses evicts the oldest counters that lock nothing
///   rather than growing memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failed attempts for one user from one source address within
    /// `window` that lock that pair (default 5).
    pub max_user_failures: u32,
    /// Failed attempts from one source address, for any users, within
    /// `window` that lock the whole address (default 30).
    pub max_source_failures: u32,
    /// The window in which failures are counted (default 10 min).
    pub window: Duration,
    /// How long a locked pair or address gets 403 (default 10 min).
    pub duration: Duration,
    /// Source networks never locked out (default none).
    pub exempt: Vec<IpNetwork>,
    /// Most counters (pairs plus addresses) remembered (default 65 536).
    pub max_tracked: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_user_failures: 5,
            max_source_failures: 30,
            window: Duration::from_secs(600),
            duration: Duration::from_secs(600),
            exempt: Vec::new(),
            max_tracked: 65_536,
        }
    }
}

impl LockoutPolicy {
    /// True when `source` is in one of the exempt networks.
    pub fn is_exempt(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        self.exempt.iter().any(|network| network.contains(source))
    }
}

/// An IP network: an address and a prefix length, written `10.0.0.0/8`,
/// `2001:db8::/32`, or a bare address for just that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

/// Why a text is not an [`IpNetwork`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or network (a.b.c.d, a.b.c.d/n, IPv6[/n]): {0:?}")]
pub struct IpNetworkError(String);

impl IpNetwork {
    /// The network of `address` with `prefix` leading bits, `None` when the
    /// prefix is longer than the address.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then_some(IpNetwork { address, prefix })
    }

    /// True when `ip` is in this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || IpNetworkError(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| error())?;
        let address = address.to_canonical();
        let full = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| error())?,
            None => full,
        };
        IpNetwork::new(address, prefix).ok_or_else(error)
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A request whose credentials were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The authenticated user name (the digest `username`).
    pub user: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No credentials for our realm: a first challenge.
    NoCredentials,
    /// The digest was right but the nonce expired, was not ours any more
    /// (e.g. from before a restart) or was forgotten: challenged with
    /// `stale=true`, so the phone retries without asking its user.
    StaleNonce,
    /// The `nc` was not above the last one seen with this nonce: a replay.
    Replayed,
    /// Unknown user or wrong password (deliberately indistinguishable).
    BadCredentials,
    /// The credentials were not a well-formed digest answer (400).
    Malformed,
    /// The digest-uri names another target than the Request-URI: a fresh
    /// challenge. RFC 7616 §3.4.6 suggests 400, but a SIP phone following a
    /// 3xx re-sends the credentials of its earlier request (PJSIP does), and
    /// a challenge lets it answer for the new target while granting nothing.
    UriMismatch,
    /// The algorithm is not one we offer.
    UnsupportedAlgorithm,
    /// The user is locked out at this source address, or the whole source
    /// address is, after too many failures (403).
    LockedOut,
}

/// A request that was not authenticated, with the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What went wrong.
    pub reason: RejectReason,
    /// The response: 401/407 with challenges, 400, or 403.
    pub response: Message,
}

/// The result of [`Authenticator::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are valid.
    Authenticated(Identity),
    /// Send `response` back and stop processing the request.
    Rejected(Rejection),
}

/// What the authenticator remembers of a nonce that has been used.
#[derive(Debug, Clone, Copy)]
struct NonceUse {
    issued_millis: u64,
    highest_count: u32,
}

/// Longest user name a failure counter keeps (a longer one is cut): the
/// names come from strangers, and the table must stay small.
const MAX_COUNTED_USER_BYTES: usize = 128;

/// What failures are counted for: a source address, or one user at one
/// source address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Source(IpAddr),
    User(IpAddr, String),
}

impl FailureKey {
    fn user(source: IpAddr, user: &str) -> Self {
        let mut end = user.len().min(MAX_COUNTED_USER_BYTES);
        while !user.is_char_boundary(end) {
            end -= 1;
        }
        FailureKey::User(source, user.get(..end).unwrap_or_default().to_owned())
    }
}

/// Failures counted for one key.
#[derive(Debug, Clone, Copy)]
struct FailureRecord {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl FailureRecord {
    fn fresh(now: Instant) -> Self {
        FailureRecord {
            window_start: now,
            failures: 0,
            locked_until: None,
        }
    }

    fn locked_at(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// Length of the random part of a nonce, in bytes (128 bits).
const NONCE_RANDOM_BYTES: usize = 16;
/// Length of the truncated HMAC in a nonce, in bytes.
const NONCE_MAC_BYTES: usize = 16;

/// The digest authenticator: issues challenges and checks credentials.
/// Its `Debug` output never shows the secret.
pub struct Authenticator {
    config: AuthConfig,
    secret: [u8; 32],
    epoch: Instant,
    used_nonces: HashMap<String, NonceUse>,
    /// Nonces issued at or before this many milliseconds after `epoch`
    /// that are not in `used_nonces` may have been evicted: they are stale.
    evicted_up_to: Option<u64>,
    failures: HashMap<FailureKey, FailureRecord>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("secret", &"<redacted>")
            .field("used_nonces", &self.used_nonces.len())
            .field("evicted_up_to", &self.evicted_up_to)
            .field("failures", &self.failures.len())
            .finish()
    }
}

/// The parsed parameters of one Digest credentials header.
struct Credentials {
    username: String,
    nonce: String,
    uri: String,
    response: String,
    algorithm: Algorithm,
    qop: String,
    nonce_count: String,
    cnonce: String,
}

impl Authenticator {
    /// An authenticator with a fresh random secret; `now` anchors the
    /// times carried in nonces.
    pub fn new(config: AuthConfig, now: Instant) -> Self {
        Self::with_secret(config, now, rand::random())
    }

    /// An authenticator with a given secret (tests, or several processes
    /// that must accept each other's nonces).
    pub fn with_secret(config: AuthConfig, now: Instant, secret: [u8; 32]) -> Self {
        Authenticator {
            config,
            secret,
            epoch: now,
            used_nonces: HashMap::new(),
            evicted_up_to: None,
            failures: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Number of nonces whose `nc` is currently remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.used_nonces.len()
    }

    /// Replaces the lock-out policy; counters already kept stay.
    pub fn set_lockout_policy(&mut self, policy: LockoutPolicy) {
        self.config.lockout = policy;
    }

    /// Number of failure counters (pairs and addresses) remembered.
    pub fn tracked_failures(&self) -> usize {
        self.failures.len()
    }

    /// True while the whole of `source` is locked out (every user).
    pub fn is_locked_out(&self, now: Instant, source: IpAddr) -> bool {
        self.locked(now, &FailureKey::Source(source.to_canonical()))
    }

    /// True while `user` is locked out at `source` (by its own failures
    /// there, or because the whole address is).
    pub fn is_user_locked_out(&self, now: Instant, source: IpAddr, user: &str) -> bool {
        let source = source.to_canonical();
        self.locked(now, &FailureKey::Source(source))
            || self.locked(now, &FailureKey::user(source, user))
    }

    fn locked(&self, now: Instant, key: &FailureKey) -> bool {
        self.failures
            .get(key)
            .is_some_and(|record| record.locked_at(now))
    }

    /// Checks the credentials of `request`, received from `source`.
    /// Call it only for methods that can be challenged ([`challengeable`]).
    ///
    /// REGISTER is answered with `401` + `WWW-Authenticate` and read from
    /// `Authorization`; every other method with `407` +
    /// `Proxy-Authenticate`, read from `Proxy-Authorization`. A locked-out
    /// source address gets `403` whatever it sends; a user locked out at
    /// the source gets `403` for credentials naming that user, before they
    /// are checked.
    pub fn authenticate(
        &mut self,
        now: Instant,
        request: &Message,
        source: IpAddr,
        credentials: &impl CredentialStore,
    ) -> AuthOutcome {
        let source = source.to_canonical();
        if self.is_locked_out(now, source) {
            return self.reject(request, RejectReason::LockedOut, now);
        }
        let Some(method) = request.method() else {
            return self.reject(request, RejectReason::Malformed, now);
        };
        let header_name = if *method == Method::Register {
            HeaderName::Authorization
        } else {
            HeaderName::ProxyAuthorization
        };
        let Ok(headers) = request.auth_headers(&header_name) else {
            return self.reject(request, RejectReason::Malformed, now);
        };
        let ours = headers.iter().find(|header| {
            header.is_digest()
                && header
                    .param("realm")
                    .is_some_and(|realm| realm == self.config.realm)
        });
        let Some(header) = ours else {
            return self.reject(request, RejectReason::NoCredentials, now);
        };
        let parsed = match parse_credentials(header) {
            Ok(parsed) => parsed,
            Err(reason) => return self.reject(request, reason, now),
        };
        if !self.config.algorithms.contains(&parsed.algorithm) {
            return self.reject(request, RejectReason::UnsupportedAlgorithm, now);
        }
        if self.is_user_locked_out(now, source, &parsed.username) {
            return self.reject(request, RejectReason::LockedOut, now);
        }
        if !uri_matches_request(&parsed.uri, request) {
            return self.reject(request, RejectReason::UriMismatch, now);
        }
        // Unknown users are checked against a password nobody has, so the
        // work done and the answer are those of a wrong password.
        let password = credentials.password(&parsed.username);
        let known_user = password.is_some();
        let expected = DigestInput {
            algorithm: parsed.algorithm,
            username: &parsed.username,
            realm: &self.config.realm,
            password: password.as_deref().unwrap_or("\u{0}no such user\u{0}"),
            method: method.as_str(),
            uri: &parsed.uri,
            nonce: &parsed.nonce,
            nonce_count: &parsed.nonce_count,
            cnonce: &parsed.cnonce,
            qop: &parsed.qop,
        }
        .response();
        let given = parsed.response.to_ascii_lowercase();
        let digest_ok = constant_time_eq(expected.as_bytes(), given.as_bytes());
        if !(digest_ok && known_user) {
            return self.fail(now, source, &parsed.username, request);
        }
        // The digest is right: from here on problems are about the nonce.
        let Some(issued_millis) = self.verify_nonce(&parsed.nonce) else {
            return self.reject(request, RejectReason::StaleNonce, now);
        };
        let age = self.millis_since_epoch(now).saturating_sub(issued_millis);
        if issued_millis > self.millis_since_epoch(now)
            || u128::from(age) > self.config.nonce_lifetime.as_millis()
        {
            return self.reject(request, RejectReason::StaleNonce, now);
        }
        let Some(count) = u32::from_str_radix(&parsed.nonce_count, 16).ok() else {
            return self.reject(request, RejectReason::Malformed, now);
        };
        match self.used_nonces.get_mut(&parsed.nonce) {
            Some(used) if count <= used.highest_count => {
                return self.reject(request, RejectReason::Replayed, now);
            }
            Some(used) => used.highest_count = count,
            None => {
                if self
                    .evicted_up_to
                    .is_some_and(|limit| issued_millis <= limit)
                {
                    return self.reject(request, RejectReason::StaleNonce, now);
                }
                self.remember_nonce(now, parsed.nonce.clone(), issued_millis, count);
            }
        }
        // A success clears the failures of its own pair only. The source's
        // stay: otherwise one valid account would let a source guess
        // others' passwords without ever being locked out. Failures age out
        // of the window.
        self.failures
            .remove(&FailureKey::user(source, &parsed.username));
        AuthOutcome::Authenticated(Identity {
            user: parsed.username,
            algorithm: parsed.algorithm,
        })
    }

    /// Forgets used nonces that have expired and failure records that no
    /// longer matter. Called on its own when a table is full; a driver may
    /// also call it from a periodic timer.
    pub fn purge(&mut self, now: Instant) {
        let now_millis = self.millis_since_epoch(now);
        let lifetime = u64::try_from(self.config.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        self.used_nonces
            .retain(|_, used| now_millis.saturating_sub(used.issued_millis) <= lifetime);
        let window = self.config.lockout.window;
        self.failures.retain(|_, record| {
            record.locked_at(now) || now.saturating_duration_since(record.window_start) < window
        });
    }

    /// A fresh nonce: hex of issue time (ms since the epoch), random bytes
    /// and the truncated HMAC of both.
    pub fn issue_nonce(&self, now: Instant) -> String {
        let issued = self.millis_since_epoch(now).to_be_bytes();
        let random: [u8; NONCE_RANDOM_BYTES] = rand::random();
        let mac = self.nonce_mac(&issued, &random);
        let mut nonce = String::with_capacity(2 * (8 + NONCE_RANDOM_BYTES + NONCE_MAC_BYTES));
        nonce.push_str(&to_hex(&issued));
        nonce.push_str(&to_hex(&random));
        nonce.push_str(&to_hex(mac.get(..NONCE_MAC_BYTES).unwrap_or(&mac)));
        nonce
    }

    /// The challenge response (401 for REGISTER, 407 otherwise) to
    /// `request`, with one header per configured algorithm.
    pub fn challenge(&self, now: Instant, request: &Message, stale: bool) -> Message {
        let register = request.method() == Some(&Method::Register);
        let (code, header) = if register {
            (401, HeaderName::WwwAuthenticate)
        } else {
            (407, HeaderName::ProxyAuthenticate)
        };
        let nonce = self.issue_nonce(now);
        let mut builder = request.response_builder(code, None, Some(&random_tag()));
        for algorithm in &self.config.algorithms {
            let mut value = format!(
                "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                escape_quoted(&self.config.realm),
                algorithm.token()
            );
            if stale {
                value.push_str(", stale=true");
            }
            builder = builder.header(header.clone(), value);
        }
        builder.build()
    }

    fn reject(&self, request: &Message, reason: RejectReason, now: Instant) -> AuthOutcome {
        let response = match reason {
            RejectReason::LockedOut => request
                .response_builder(
                    403,
                    Some("Forbidden (too many failed attempts)"),
                    Some(&random_tag()),
                )
                .build(),
            RejectReason::Malformed => request
                .response_builder(
                    400,
                    Some("Bad Request (malformed credentials)"),
                    Some(&random_tag()),
                )
                .build(),
            RejectReason::StaleNonce | RejectReason::Replayed => self.challenge(now, request, true),
            RejectReason::NoCredentials
            | RejectReason::BadCredentials
            | RejectReason::UriMismatch
            | RejectReason::UnsupportedAlgorithm => self.challenge(now, request, false),
        };
        AuthOutcome::Rejected(Rejection { reason, response })
    }

    /// Counts a failure for `user` at `source` and for `source`; the
    /// failure that reaches either limit is answered 403 at once. Exempt
    /// sources are not counted.
    fn fail(&mut self, now: Instant, source: IpAddr, user: &str, request: &Message) -> AuthOutcome {
        if self.config.lockout.is_exempt(source) {
            return self.reject(request, RejectReason::BadCredentials, now);
        }
        let policy = &self.config.lockout;
        let (user_limit, source_limit) = (policy.max_user_failures, policy.max_source_failures);
        let pair_locked = self.count_failure(now, FailureKey::user(source, user), user_limit);
        let source_locked = self.count_failure(now, FailureKey::Source(source), source_limit);
        if pair_locked || source_locked {
            tracing::warn!(
                %source,
                user = %user.chars().take(64).collect::<String>(),
                whole_source = source_locked,
                "SIP digest failures: locked out"
            );
            return self.reject(request, RejectReason::LockedOut, now);
        }
        self.reject(request, RejectReason::BadCredentials, now)
    }

    /// Adds one failure to `key`'s counter; true when that locks it.
    fn count_failure(&mut self, now: Instant, key: FailureKey, limit: u32) -> bool {
        if !self.failures.contains_key(&key) {
            self.make_room(now);
        }
        let window = self.config.lockout.window;
        let duration = self.config.lockout.duration;
        let record = self
            .failures
            .entry(key)
            .or_insert_with(|| FailureRecord::fresh(now));
        if record.locked_until.is_some_and(|until| now >= until)
            || now.saturating_duration_since(record.window_start) >= window
        {
            *record = FailureRecord::fresh(now);
        }
        record.failures = record.failures.saturating_add(1);
        if record.failures >= limit.max(1) {
            record.locked_until = Some(now + duration);
            return true;
        }
        false
    }

    /// Keeps the failure table under its bound before an insertion: first
    /// forgets what no longer matters, then, when still full, the oldest
    /// eighth of the counters (unlocked ones first), so that the cost of a
    /// flood of new sources stays amortised O(log n) per failure.
    fn make_room(&mut self, now: Instant) {
        let cap = self.config.lockout.max_tracked.max(1);
        if self.failures.len() < cap {
            return;
        }
        self.purge(now);
        if self.failures.len() < cap {
            return;
        }
        let mut oldest: Vec<(bool, Instant, FailureKey)> = self
            .failures
            .iter()
            .map(|(key, record)| (record.locked_at(now), record.window_start, key.clone()))
            .collect();
        let evict = (cap / 8).max(1).min(oldest.len());
        if evict < oldest.len() {
            oldest.select_nth_unstable_by_key(evict, |(locked, start, _)| (*locked, *start));
        }
        for (_, _, key) in oldest.into_iter().take(evict) {
            self.failures.remove(&key);
        }
    }

    fn millis_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn nonce_mac(&self, issued: &[u8], random: &[u8]) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return Vec::new();
        };
        mac.update(self.config.realm.as_bytes());
        mac.update(b"\0");
        mac.update(issued);
        mac.update(random);
        mac.finalize().into_bytes().to_vec()
    }

    /// The issue time of a nonce we signed, `None` when it is not ours.
    fn verify_nonce(&self, nonce: &str) -> Option<u64> {
        let bytes = from_hex(nonce)?;
        if bytes.len() != 8 + NONCE_RANDOM_BYTES + NONCE_MAC_BYTES {
            return None;
        }
        let issued = bytes.get(..8)?;
        let random = bytes.get(8..8 + NONCE_RANDOM_BYTES)?;
        let given_mac = bytes.get(8 + NONCE_RANDOM_BYTES..)?;
        let mac = self.nonce_mac(issued, random);
        let expected = mac.get(..NONCE_MAC_BYTES)?;
        if !constant_time_eq(expected, given_mac) {
            return None;
        }
        Some(u64::from_be_bytes(issued.try_into().ok()?))
    }

    fn remember_nonce(&mut self, now: Instant, nonce: String, issued_millis: u64, count: u32) {
        if self.used_nonces.len() >= self.config.max_tracked_nonces {
            self.purge(now);
        }
        while self.used_nonces.len() >= self.config.max_tracked_nonces.max(1) {
            let Some((oldest, issued)) = self
                .used_nonces
                .iter()
                .min_by_key(|(_, used)| used.issued_millis)
                .map(|(nonce, used)| (nonce.clone(), used.issued_millis))
            else {
                break;
            };
            self.used_nonces.remove(&oldest);
            self.evicted_up_to = Some(self.evicted_up_to.map_or(issued, |up| up.max(issued)));
        }
        if self
            .evicted_up_to
            .is_some_and(|limit| issued_millis <= limit)
        {
            return;
        }
        self.used_nonces.insert(
            nonce,
            NonceUse {
                issued_millis,
                highest_count: count,
            },
        );
    }
}

fn parse_credentials(header: &AuthHeader<'_>) -> Result<Credentials, RejectReason> {
    let params = header.params().ok_or(RejectReason::Malformed)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|param| param.name.eq_ignore_ascii_case(name))
            .and_then(|param| param.unquoted_value())
            .map(|value| value.into_owned())
    };
    let username = get("username").ok_or(RejectReason::Malformed)?;
    let nonce = get("nonce").ok_or(RejectReason::Malformed)?;
    let uri = get("uri").ok_or(RejectReason::Malformed)?;
    let response = get("response").ok_or(RejectReason::Malformed)?;
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(token) => Algorithm::from_token(&token).ok_or(RejectReason::UnsupportedAlgorithm)?,
    };
    // qop=auth is required: without it there is no nc, and so no replay
    // protection.
    let qop = get("qop").ok_or(RejectReason::Malformed)?;
    if !qop.eq_ignore_ascii_case("auth") {
        return Err(RejectReason::Malformed);
    }
    let nonce_count = get("nc").ok_or(RejectReason::Malformed)?;
    if nonce_count.len() != 8 || !nonce_count.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RejectReason::Malformed);
    }
    let cnonce = get("cnonce").ok_or(RejectReason::Malformed)?;
    if cnonce.is_empty() || username.is_empty() {
        return Err(RejectReason::Malformed);
    }
    Ok(Credentials {
        username,
        nonce,
        uri,
        response,
        algorithm,
        qop,
        nonce_count,
        cnonce,
    })
}

/// RFC 7616 §3.4.6: the digest-uri must name the request's target. Equal
/// text, or equivalent SIP URIs (RFC 3261 §19.1.4).
fn uri_matches_request(digest_uri: &str, request: &Message) -> bool {
    let StartLine::Request { uri, .. } = request.start_line() else {
        return false;
    };
    if digest_uri == uri.as_str() {
        return true;
    }
    match (SipUri::parse(digest_uri), SipUri::parse(uri.as_str())) {
        (Ok(left), Ok(right)) => left.equivalent(&right),
        _ => false,
    }
}

fn escape_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if character == '"' || character == '\\' {
            out.push('\\');
        }
        out.push(character);
    }
    out
}

/// A random tag (To/From tag): 128 bits from the thread's CSPRNG
/// (`rand`'s ChaCha-based `ThreadRng`, seeded by the OS), 32 hex digits.
pub(crate) fn random_tag() -> String {
    let bytes: [u8; 16] = rand::random();
    to_hex(&bytes)
}

#[cfg(test)]
mod tests;
