//! The registrar (RFC 3261 §10.3), sans-IO.
//!
//! This module owns the location service: which contacts each
//! address-of-record is reachable at, until when, and from which source
//! address and transport each contact registered (tapir sends to that
//! address, so phones behind no NAT on loopback and phones whose Contact is
//! not routable both work). It processes REGISTER requests — add, refresh,
//! remove, `Contact: *`, query — with the `expires` rules (Min-Expires /
//! 423, a ceiling), the Call-ID/CSeq ordering rules, and answers with the
//! current bindings. Authentication goes through [`crate::auth`]: the
//! authenticated user must be the user of the address-of-record.
//!
//! tapir serves one domain (with aliases), so an address-of-record is
//! identified by the user part of its URI: `sip:1001@127.0.0.1` and
//! `sip:1001@pbx.example` are the same line. [`Registrar::contacts`] is the
//! lookup the B2BUA uses to INVITE a line's phones.
//!
//! Time only enters as `now`; bindings expire when [`Registrar::purge`] is
//! called (at [`Registrar::next_expiry`]) and are never returned by
//! lookups once expired, purged or not.
//!
//! Path (RFC 3327): a REGISTER relayed by a proxy (an edge proxy such as
//! Kamailio) may carry `Path` headers naming the proxies that must stay on
//! the way to the phone. Each binding keeps the Path of the REGISTER that
//! last added or refreshed it ([`Binding::path`]); requests to the contact
//! go through it as pre-loaded Route headers. When the REGISTER says
//! `Supported: path`, the 200 OK echoes the Path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::auth::{AuthOutcome, Authenticator, CredentialStore, random_tag};
use crate::msg::{
    Contacts, HeaderName, Host, Message, MessageBuilder, Method, NameAddr, SipUri, Uri,
};

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl Transport {
    /// The token used in Via and `transport=` parameters.
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// True when the transport retransmits by itself.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// Registrar settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest accepted non-zero expiry; shorter ones get 423 (default 60 s).
    pub min_expires: u32,
    /// Longest granted expiry; longer requests are cut to it (default 3600 s).
    pub max_expires: u32,
    /// Expiry when the request gives none (default 3600 s).
    pub default_expires: u32,
    /// Most contacts one address-of-record may have (default 10); a new
    /// contact beyond it replaces the least recently updated one.
    pub max_bindings_per_aor: usize,
    /// Host names and addresses this registrar is responsible for; an
    /// address-of-record in another domain gets 404. Empty: any domain.
    pub domains: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_aor: 10,
            domains: Vec::new(),
        }
    }
}

/// One contact of an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered (without `<>` and header parameters).
    pub contact: String,
    /// The source address the REGISTER came from.
    pub source: SocketAddr,
    /// The transport the REGISTER came on.
    pub transport: Transport,
    /// The `q` preference in thousandths (1000 = `q=1`), when given.
    pub q: Option<u16>,
    /// When the binding expires.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that last updated the binding.
    pub call_id: String,
    /// CSeq of the REGISTER that last updated the binding.
    pub cseq: u32,
    /// When the binding was last added or refreshed.
    pub updated_at: Instant,
    /// The REGISTER's Path (RFC 3327), as `<uri>;params` values, the proxy
    /// nearest the registrar first: requests to the contact carry it as
    /// their pre-loaded Route set, in this order. Empty when the phone
    /// registered directly.
    pub path: Vec<String>,
}

impl Binding {
    /// Time left before the binding expires (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// Whole seconds left, rounded up, as written in `expires=`.
    pub fn remaining_seconds(&self, now: Instant) -> u32 {
        let remaining = self.remaining(now);
        let seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        u32::try_from(seconds).unwrap_or(u32::MAX)
    }

    /// True once the binding has expired.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }

    fn contact_uri(&self) -> Option<SipUri<'_>> {
        SipUri::parse(&self.contact).ok()
    }

    /// The `Contact` value for a 200 OK: URI, q and remaining expiry.
    fn contact_value(&self, now: Instant) -> String {
        let mut value = format!("<{}>", self.contact);
        if let Some(q) = self.q {
            value.push_str(";q=");
            value.push_str(&format_q(q));
        }
        value.push_str(&format!(";expires={}", self.remaining_seconds(now)));
        value
    }
}

/// What a REGISTER did to the location service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindingChanges {
    /// New contacts.
    pub added: usize,
    /// Existing contacts whose expiry (or source) was updated.
    pub refreshed: usize,
    /// Contacts removed (`expires=0`, `Contact: *`, or replaced because
    /// the address-of-record had too many).
    pub removed: usize,
}

impl BindingChanges {
    /// True when nothing changed (a query, or a failed request).
    pub fn is_empty(&self) -> bool {
        *self == BindingChanges::default()
    }
}

/// The result of processing one REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// The response to send (200, 400, 401, 403, 404, 423, 500).
    pub response: Message,
    /// The address-of-record (its user part) when the request got that far.
    pub aor: Option<String>,
    /// What changed; empty unless the response is 200.
    pub changes: BindingChanges,
    /// Contacts of the address-of-record after the request.
    pub bindings: usize,
}

/// The registrar: bindings per address-of-record.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
}

/// Where a REGISTER came from: its source, transport and Path.
struct Origin {
    source: SocketAddr,
    transport: Transport,
    path: Vec<String>,
}

/// Most Path values a binding keeps; a REGISTER with more gets 400.
pub const MAX_PATH: usize = 8;

/// The Path of a REGISTER (RFC 3327) as `<uri>;params` values, top first.
fn path_of(request: &Message) -> Result<Vec<String>, Refusal> {
    let paths = request
        .paths()
        .map_err(|_| refuse(400, "Bad Request (Path)"))?;
    if paths.len() > MAX_PATH {
        return Err(refuse(400, "Bad Request (too many Path values)"));
    }
    Ok(paths
        .iter()
        .map(|p| format!("<{}>{}", p.uri_text, p.params.as_str()))
        .collect())
}

/// True when a header lists `token` (case-insensitive, comma-separated).
fn lists_token(request: &Message, name: &HeaderName, token: &str) -> bool {
    request
        .header_values(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A REGISTER refused before any binding changed.
struct Refusal {
    code: u16,
    reason: &'static str,
    min_expires: Option<u32>,
}

fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal {
        code,
        reason,
        min_expires: None,
    }
}

impl Registrar {
    /// A registrar with no bindings.
    pub fn new(config: RegistrarConfig) -> Self {
        Registrar {
            config,
            bindings: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Authenticates a REGISTER with `authenticator`, then processes it.
    /// Unauthenticated requests get the authenticator's 401/403/400.
    pub fn register(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
        transport: Transport,
        authenticator: &mut Authenticator,
        credentials: &impl CredentialStore,
    ) -> RegisterOutcome {
        match authenticator.authenticate(now, request, source.ip(), credentials) {
            AuthOutcome::Authenticated(identity) => {
                self.handle_register(now, request, source, transport, &identity.user)
            }
            AuthOutcome::Rejected(rejection) => RegisterOutcome {
                response: rejection.response,
                aor: None,
                changes: BindingChanges::default(),
                bindings: 0,
            },
        }
    }

    /// Processes a REGISTER whose sender was authenticated as
    /// `authenticated_user` (RFC 3261 §10.3 steps 4–8).
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
        transport: Transport,
        authenticated_user: &str,
    ) -> RegisterOutcome {
        let mut aor = None;
        let result = self.apply(
            now,
            request,
            source,
            transport,
            authenticated_user,
            &mut aor,
        );
        let tag = random_tag();
        match result {
            Ok(changes) => {
                let current = aor
                    .as_deref()
                    .map(|aor| self.contacts(aor, now))
                    .unwrap_or_default();
                let mut builder = request.response_builder(200, None, Some(&tag));
                for binding in &current {
                    builder = builder.header(HeaderName::Contact, binding.contact_value(now));
                }
                // RFC 3327 §5.3: the Path goes back to a phone that
                // supports it (it learns the way tapir reaches it).
                if lists_token(request, &HeaderName::Supported, "path") {
                    for value in request.header_values(&HeaderName::Path) {
                        builder = builder.header(HeaderName::Path, value.to_owned());
                    }
                }
                RegisterOutcome {
                    response: builder.build(),
                    aor,
                    changes,
                    bindings: current.len(),
                }
            }
            Err(refusal) => {
                let mut builder: MessageBuilder =
                    request.response_builder(refusal.code, Some(refusal.reason), Some(&tag));
                if let Some(min) = refusal.min_expires {
                    builder = builder.header(HeaderName::MinExpires, min.to_string());
                }
                let bindings = aor
                    .as_deref()
                    .map_or(0, |aor| self.contacts(aor, now).len());
                RegisterOutcome {
                    response: builder.build(),
                    aor,
                    changes: BindingChanges::default(),
                    bindings,
                }
            }
        }
    }

    fn apply(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
        transport: Transport,
        authenticated_user: &str,
        aor_out: &mut Option<String>,
    ) -> Result<BindingChanges, Refusal> {
        if request.method() != Some(&Method::Register) {
            return Err(refuse(405, "Method Not Allowed"));
        }
        let to = request
            .to_header()
            .map_err(|_| refuse(400, "Bad Request (malformed To)"))?
            .ok_or(refuse(400, "Bad Request (missing To)"))?;
        let aor = self.address_of_record(&to)?;
        *aor_out = Some(aor.clone());
        if aor != authenticated_user {
            return Err(refuse(403, "Forbidden (not your address-of-record)"));
        }
        let call_id = request
            .call_id()
            .ok()
            .flatten()
            .ok_or(refuse(400, "Bad Request (Call-ID)"))?
            .to_owned();
        let cseq = request
            .cseq()
            .ok()
            .flatten()
            .ok_or(refuse(400, "Bad Request (CSeq)"))?
            .number;
        let header_expires = request
            .expires()
            .map_err(|_| refuse(400, "Bad Request (Expires)"))?;
        let contacts = request
            .contacts()
            .map_err(|_| refuse(400, "Bad Request (Contact)"))?;
        let path = path_of(request)?;

        self.drop_expired(&aor, now);
        let existing = self.bindings.get(&aor).cloned().unwrap_or_default();
        let (updated, changes) = match contacts {
            None => (existing, BindingChanges::default()),
            Some(Contacts::Wildcard) => {
                if header_expires != Some(0) {
                    return Err(refuse(400, "Bad Request (Contact: * needs Expires: 0)"));
                }
                for binding in &existing {
                    if binding.call_id == call_id && cseq <= binding.cseq {
                        return Err(refuse(500, "Server Internal Error (out of order REGISTER)"));
                    }
                }
                let removed = existing.len();
                (
                    Vec::new(),
                    BindingChanges {
                        removed,
                        ..BindingChanges::default()
                    },
                )
            }
            Some(Contacts::Addresses(addresses)) => {
                let mut requested = Vec::with_capacity(addresses.len());
                for address in &addresses {
                    requested.push(self.requested_binding(address, header_expires)?);
                }
                let origin = Origin {
                    source,
                    transport,
                    path,
                };
                self.merge(now, existing, requested, &call_id, cseq, &origin)?
            }
        };
        if updated.is_empty() {
            self.bindings.remove(&aor);
        } else {
            self.bindings.insert(aor, updated);
        }
        Ok(changes)
    }

    /// The address-of-record of a To header: its user part, decoded.
    fn address_of_record(&self, to: &NameAddr<'_>) -> Result<String, Refusal> {
        let Uri::Sip(uri) = &to.uri else {
            return Err(refuse(404, "Not Found (not a SIP address-of-record)"));
        };
        let Some(user) = uri.user_decoded() else {
            return Err(refuse(404, "Not Found (address-of-record without user)"));
        };
        if !self.config.domains.is_empty() {
            // Compared as hosts, so that a domain configured as `::1`
            // serves `sip:1002@[::1]`.
            let ours = self.config.domains.iter().any(|domain| {
                Host::from_name(domain).is_ok_and(|domain| domain.same_as(&uri.host))
            });
            if !ours {
                return Err(refuse(404, "Not Found (domain not served here)"));
            }
        }
        let user = String::from_utf8(user.into_owned())
            .map_err(|_| refuse(404, "Not Found (user is not UTF-8)"))?;
        Ok(user)
    }

    /// The contact URI, q and granted expiry of one Contact value.
    fn requested_binding(
        &self,
        address: &NameAddr<'_>,
        header_expires: Option<u32>,
    ) -> Result<(String, Option<u16>, u32), Refusal> {
        if address.uri.as_sip().is_none() {
            return Err(refuse(400, "Bad Request (contact is not a SIP URI)"));
        }
        let q = match address.q() {
            None => None,
            Some(text) => Some(parse_q(text).ok_or(refuse(400, "Bad Request (q)"))?),
        };
        if address.params.contains("expires") && address.expires().is_none() {
            return Err(refuse(400, "Bad Request (contact expires)"));
        }
        let requested = address
            .expires()
            .or(header_expires)
            .unwrap_or(self.config.default_expires);
        if requested != 0 && requested < self.config.min_expires {
            return Err(Refusal {
                code: 423,
                reason: "Interval Too Brief",
                min_expires: Some(self.config.min_expires),
            });
        }
        Ok((
            address.uri_text.to_owned(),
            q,
            requested.min(self.config.max_expires),
        ))
    }

    /// Applies the requested contacts to a copy of the existing bindings
    /// (RFC 3261 §10.3 step 7); nothing is committed unless every one
    /// succeeds.
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &self,
        now: Instant,
        mut bindings: Vec<Binding>,
        requested: Vec<(String, Option<u16>, u32)>,
        call_id: &str,
        cseq: u32,
        origin: &Origin,
    ) -> Result<(Vec<Binding>, BindingChanges), Refusal> {
        let mut changes = BindingChanges::default();
        for (contact, q, expires) in requested {
            let Ok(uri) = SipUri::parse(&contact) else {
                return Err(refuse(400, "Bad Request (contact URI)"));
            };
            let position = bindings.iter().position(|binding| {
                binding
                    .contact_uri()
                    .is_some_and(|existing| existing.equivalent(&uri))
            });
            match position {
                Some(index) => {
                    let Some(binding) = bindings.get_mut(index) else {
                        continue;
                    };
                    if binding.call_id == call_id && cseq <= binding.cseq {
                        return Err(refuse(500, "Server Internal Error (out of order REGISTER)"));
                    }
                    if expires == 0 {
                        bindings.remove(index);
                        changes.removed += 1;
                    } else {
                        *binding = Binding {
                            contact,
                            source: origin.source,
                            transport: origin.transport,
                            q,
                            expires_at: now + Duration::from_secs(u64::from(expires)),
                            call_id: call_id.to_owned(),
                            cseq,
                            updated_at: now,
                            path: origin.path.clone(),
                        };
                        changes.refreshed += 1;
                    }
                }
                None if expires == 0 => {}
                None => {
                    while bindings.len() >= self.config.max_bindings_per_aor.max(1) {
                        let oldest = bindings
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, binding)| binding.updated_at)
                            .map(|(index, _)| index);
                        let Some(oldest) = oldest else { break };
                        bindings.remove(oldest);
                        changes.removed += 1;
                    }
                    bindings.push(Binding {
                        contact,
                        source: origin.source,
                        transport: origin.transport,
                        q,
                        expires_at: now + Duration::from_secs(u64::from(expires)),
                        call_id: call_id.to_owned(),
                        cseq,
                        updated_at: now,
                        path: origin.path.clone(),
                    });
                    changes.added += 1;
                }
            }
        }
        Ok((bindings, changes))
    }

    fn drop_expired(&mut self, aor: &str, now: Instant) {
        if let Some(bindings) = self.bindings.get_mut(aor) {
            bindings.retain(|binding| !binding.is_expired(now));
            if bindings.is_empty() {
                self.bindings.remove(aor);
            }
        }
    }

    /// The live contacts of an address-of-record (its user part), highest
    /// `q` first (no `q` counts as 1), then most recently updated first.
    pub fn contacts(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let mut live: Vec<Binding> = self
            .bindings
            .get(aor)
            .map(|bindings| {
                bindings
                    .iter()
                    .filter(|binding| !binding.is_expired(now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        live.sort_by(|a, b| {
            b.q.unwrap_or(1000)
                .cmp(&a.q.unwrap_or(1000))
                .then(b.updated_at.cmp(&a.updated_at))
        });
        live
    }

    /// True when the address-of-record has at least one live contact.
    pub fn is_registered(&self, aor: &str, now: Instant) -> bool {
        self.bindings
            .get(aor)
            .is_some_and(|bindings| bindings.iter().any(|binding| !binding.is_expired(now)))
    }

    /// The address-of-record whose binding registered from `source`, if
    /// any (to recognise which line an INVITE from a phone comes from).
    pub fn aor_for_source(&self, source: IpAddr, port: u16, now: Instant) -> Option<&str> {
        self.bindings.iter().find_map(|(aor, bindings)| {
            bindings
                .iter()
                .any(|binding| {
                    !binding.is_expired(now)
                        && binding.source.ip() == source
                        && binding.source.port() == port
                })
                .then_some(aor.as_str())
        })
    }

    /// Removes expired bindings and returns them with their
    /// address-of-record (so the switch can learn a line went away).
    pub fn purge(&mut self, now: Instant) -> Vec<(String, Binding)> {
        let mut expired = Vec::new();
        self.bindings.retain(|aor, bindings| {
            bindings.retain(|binding| {
                if binding.is_expired(now) {
                    expired.push((aor.clone(), binding.clone()));
                    false
                } else {
                    true
                }
            });
            !bindings.is_empty()
        });
        expired
    }

    /// When the next binding expires: when to call [`Registrar::purge`].
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings
            .values()
            .flatten()
            .map(|binding| binding.expires_at)
            .min()
    }

    /// Number of bindings held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// True when no binding is held.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

/// `q` as thousandths: `1`, `1.0`, `0.5`, `0.125`, at most three decimals.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut scale = 100;
    for digit in fraction.bytes() {
        thousandths = thousandths.checked_add(u16::from(digit - b'0') * scale)?;
        scale /= 10;
    }
    (thousandths <= 1000).then_some(thousandths)
}

fn format_q(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    let text = format!("0.{q:03}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests;
