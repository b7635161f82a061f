//! The [`Directory`] of a real server: `tapir_sip`'s digest authenticator and
//! registrar over the passwords of the configured phone lines, and the
//! trunks' carriers ([`TrunkTable`]).

use crate::{ContactTarget, Directory, NodeCaller, NodeRoute, PathRoute, SipTransport, TrunkRoute};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tapir_core::LineId;
use tapir_sip::auth::{Algorithm, AuthConfig, AuthOutcome, Authenticator, LockoutPolicy};
use tapir_sip::msg::{HeaderName, Message};

/// The header a cluster's edge adds to each request from outside: the
/// address (`ip:port`, IPv6 in brackets) it came from.
pub const EDGE_SOURCE_HEADER: &str = "X-Tapir-Source";
use tapir_sip::registrar::{Binding, Registrar, RegistrarConfig, Transport};

/// Phones' passwords, registrations and the authentication of their requests.
#[derive(Debug)]
pub struct SipDirectory {
    auth: Authenticator,
    registrar: Registrar,
    passwords: CredentialTable,
    published: RegistrationTable,
    trunks: TrunkTable,
    watch: Option<WatchTable>,
    /// The addresses served here (a cluster member's leases).
    served: ServedTable,
    /// A cluster's SIP edge: requests from it carry the address they came
    /// from in [`EDGE_SOURCE_HEADER`], and that address (not the edge's) is
    /// who digest failures are counted against.
    edge: Option<SocketAddr>,
    /// A cluster's shared secret, as this node's signer and checker of
    /// the marks on calls between nodes.
    node_mark: Option<tapir_cluster::NodeMark>,
}

/// Who may SUBSCRIBE to whose busy lamps and presence: the addresses that
/// exist (every line's, every park slot) and each line's `watch` list
/// (`None`: every address; `["*"]` too), by the line's first address,
/// which is its phone's digest user. It also says which registration a
/// line's other addresses are reached by (the first address's). The server
/// keeps it up to date with the configuration. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WatchTable(Arc<RwLock<WatchBook>>);

#[derive(Debug, Default)]
struct WatchBook {
    /// Each line's addresses and watch list, by its first address.
    lines: HashMap<String, (Vec<String>, Option<Vec<String>>)>,
    /// Every line address, with its line's first address.
    addresses: HashMap<String, String>,
    slots: HashSet<String>,
}

impl WatchTable {
    /// Set (or replace) the line whose first address is `address`.
    pub fn set_line(&self, address: &str, addresses: Vec<String>, watch: Option<Vec<String>>) {
        let mut book = self.0.write().unwrap_or_else(|e| e.into_inner());
        book.remove_line(address);
        for a in &addresses {
            book.addresses.insert(a.clone(), address.to_string());
        }
        book.lines.insert(address.to_string(), (addresses, watch));
    }

    /// Forget the line whose first address is `address`.
    pub fn remove_line(&self, address: &str) {
        let mut book = self.0.write().unwrap_or_else(|e| e.into_inner());
        book.remove_line(address);
    }

    /// The park slots now.
    pub fn set_slots(&self, slots: Vec<String>) {
        let mut book = self.0.write().unwrap_or_else(|e| e.into_inner());
        book.slots = slots.into_iter().collect();
    }

    /// The first address of the line that has `address`: the user its
    /// phone registers as. `None` when no line has the address.
    pub fn first_address_of(&self, address: &str) -> Option<String> {
        let book = self.0.read().unwrap_or_else(|e| e.into_inner());
        book.addresses.get(address).cloned()
    }

    /// Whether `watcher` (a digest user) may watch `address`: `Err(404)`
    /// when no line or park slot has it, `Err(403)` when the watcher's
    /// line lists addresses and not this one, or when the watcher has no
    /// line any more (removed while it watched).
    pub fn check(&self, watcher: &str, address: &str) -> Result<(), u16> {
        let book = self.0.read().unwrap_or_else(|e| e.into_inner());
        if !book.addresses.contains_key(address) && !book.slots.contains(address) {
            return Err(404);
        }
        match book.lines.get(watcher) {
            None => Err(403),
            Some((_, Some(list))) if !list.iter().any(|w| w == "*" || w == address) => Err(403),
            Some(_) => Ok(()),
        }
    }
}

impl WatchBook {
    fn remove_line(&mut self, address: &str) {
        if let Some((addresses, _)) = self.lines.remove(address) {
            for a in addresses {
                if self.addresses.get(&a).is_some_and(|first| first == address) {
                    self.addresses.remove(&a);
                }
            }
        }
    }
}

/// One configured trunk, resolved: the trunk line it belongs to and how
/// its carrier is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkBinding {
    /// The trunk line (the switch's id).
    pub line: LineId,
    /// The trunk line's address (what calls from the carrier come from).
    pub address: String,
    /// The carrier.
    pub route: TrunkRoute,
}

/// The trunks' carriers by trunk line (outbound) and by carrier address
/// (inbound, IP-authenticated), shared with the server, which replaces
/// the whole table when the operator changes trunks or lines. Cheap to
/// clone.
#[derive(Clone, Debug, Default)]
pub struct TrunkTable(Arc<RwLock<Vec<TrunkBinding>>>);

impl TrunkTable {
    /// Replace every binding.
    pub fn replace(&self, bindings: Vec<TrunkBinding>) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        *table = bindings;
    }

    /// The carrier of trunk line `line` (the first trunk bound to it).
    pub fn route(&self, line: LineId) -> Option<TrunkRoute> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .find(|b| b.line == line)
            .map(|b| b.route.clone())
    }

    /// The trunk line whose carrier sends from `carrier` over `transport`:
    /// the carrier's configured address, port and transport must all match
    /// (a request from the carrier's host on another port or transport is
    /// a stranger's). Over TCP and TLS that is the connection tapir opened
    /// to the carrier, whose peer is the carrier's own address.
    pub fn line_from(&self, carrier: SocketAddr, transport: SipTransport) -> Option<String> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .find(|b| same_peer(b.route.addr, carrier) && b.route.transport == transport)
            .map(|b| b.address.clone())
    }

    /// How many trunks are bound.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No trunk is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The phones' digest passwords (address → password), shared with the rest
/// of the server so that lines the operator adds, changes or removes at run
/// time authenticate at once. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct CredentialTable(Arc<RwLock<HashMap<String, String>>>);

impl CredentialTable {
    /// A table holding `passwords`.
    pub fn new(passwords: HashMap<String, String>) -> CredentialTable {
        CredentialTable(Arc::new(RwLock::new(passwords)))
    }

    /// The password of `address`.
    pub fn get(&self, address: &str) -> Option<String> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table.get(address).cloned()
    }

    /// Set (or replace) the password of `address`.
    pub fn set(&self, address: &str, password: &str) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        table.insert(address.to_string(), password.to_string());
    }

    /// Forget `address`: it can no longer register or call.
    pub fn remove(&self, address: &str) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        table.remove(address);
    }
}

/// A read-only view of the registrar for the rest of the server (the HTTP
/// API's line registration state, metrics): the bindings of each address as
/// of its last REGISTER. Cheap to clone; readers filter out expired bindings
/// with [`RegistrationTable::contacts`].
#[derive(Clone, Debug, Default)]
pub struct RegistrationTable(Arc<RwLock<HashMap<String, Vec<Binding>>>>);

impl RegistrationTable {
    /// The bindings of `address` that have not expired at `now`.
    pub fn contacts(&self, address: &str, now: Instant) -> Vec<Binding> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table
            .get(address)
            .map(|b| b.iter().filter(|b| !b.is_expired(now)).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a binding that has not expired at `now` was registered over
    /// a TCP or TLS connection with `peer` (that connection reaches it).
    pub fn has_stream_binding_from(&self, peer: SocketAddr, now: Instant) -> bool {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table
            .values()
            .flatten()
            .any(|b| b.source == peer && b.transport != Transport::Udp && !b.is_expired(now))
    }

    /// How many addresses have at least one binding that has not expired.
    pub fn registered_count(&self, now: Instant) -> usize {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        table
            .values()
            .filter(|b| b.iter().any(|b| !b.is_expired(now)))
            .count()
    }

    /// Put bindings another node of a cluster registered for `address`
    /// (read back from the cluster's store when this node took the line
    /// over). They reach the phone until it registers here, which replaces
    /// them, or until they expire; they never replace this registrar's own.
    pub fn restore(&self, address: &str, bindings: Vec<Binding>) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        if bindings.is_empty() || table.contains_key(address) {
            return;
        }
        table.insert(address.to_string(), bindings);
    }

    fn publish(&self, address: &str, bindings: Vec<Binding>) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        if bindings.is_empty() {
            table.remove(address);
        } else {
            table.insert(address.to_string(), bindings);
        }
    }
}

/// The addresses this node serves, in a cluster: a node takes
/// registrations and new requests only for the lines whose lease it holds
/// (and none while its lease fence has stopped it). Written by the cluster
/// driver each round; without a cluster it stays unset and every address
/// is served. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ServedTable(Arc<RwLock<Option<HashSet<String>>>>);

impl ServedTable {
    /// A table for a cluster member, serving nothing until its first round.
    pub fn none_yet() -> ServedTable {
        ServedTable(Arc::new(RwLock::new(Some(HashSet::new()))))
    }

    /// Serve exactly `addresses`.
    pub fn set(&self, addresses: HashSet<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(addresses);
    }

    /// True for a cluster member (its addresses are limited); a single
    /// node serves every address and need not look at a request's user.
    pub fn is_limited(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Whether this node serves `address` now.
    pub fn serves(&self, address: &str) -> bool {
        match &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            Some(set) => set.contains(address),
            None => true,
        }
    }
}

/// The seconds a phone is told to wait (`Retry-After`) when its line is
/// served by no node at the moment (a lease moving between nodes).
const NOT_SERVED_RETRY_SECS: &str = "2";

/// `503` with `Retry-After` for a request about a line this node does not
/// serve now.
fn not_served(request: &Message) -> Message {
    request
        .response_builder(
            503,
            Some("Line Served Elsewhere"),
            Some(&tapir_sip::dialog::new_tag()),
        )
        .header(HeaderName::RetryAfter, NOT_SERVED_RETRY_SECS)
        .build()
}

/// The user part of the To header's SIP URI (a REGISTER's address of record).
fn to_user(request: &Message) -> Option<String> {
    let to = request.to_header().ok()??;
    let tapir_sip::msg::Uri::Sip(uri) = &to.uri else {
        return None;
    };
    String::from_utf8(uri.user_decoded()?.into_owned()).ok()
}

impl SipDirectory {
    /// A directory for `realm` whose users are `passwords` (address →
    /// password), challenging with `algorithms` in that order (the
    /// authenticator's default order when empty).
    pub fn new(
        now: Instant,
        realm: &str,
        passwords: HashMap<String, String>,
        algorithms: Vec<Algorithm>,
    ) -> SipDirectory {
        let mut config = AuthConfig::new(realm);
        if !algorithms.is_empty() {
            config.algorithms = algorithms;
        }
        SipDirectory {
            auth: Authenticator::new(config, now),
            registrar: Registrar::new(RegistrarConfig::default()),
            passwords: CredentialTable::new(passwords),
            published: RegistrationTable::default(),
            trunks: TrunkTable::default(),
            watch: None,
            served: ServedTable::default(),
            edge: None,
            node_mark: None,
        }
    }

    /// Publish every registration change into `table` (shared with readers).
    pub fn with_registration_table(mut self, table: RegistrationTable) -> SipDirectory {
        self.published = table;
        self
    }

    /// Take passwords from `table` (shared with readers and writers) instead
    /// of the ones given to [`SipDirectory::new`].
    pub fn with_credential_table(mut self, table: CredentialTable) -> SipDirectory {
        self.passwords = table;
        self
    }

    /// Judge subscriptions by `table` (the server keeps it up to date);
    /// without one every address may be watched.
    pub fn with_watch_table(mut self, table: WatchTable) -> SipDirectory {
        self.watch = Some(table);
        self
    }

    /// Take trunks from `table` (the server keeps it up to date).
    pub fn with_trunk_table(mut self, table: TrunkTable) -> SipDirectory {
        self.trunks = table;
        self
    }

    /// Take registrations and new requests only for the addresses of
    /// `table` (a cluster member's leases); others get `503` with
    /// `Retry-After`.
    pub fn with_served_table(mut self, table: ServedTable) -> SipDirectory {
        self.served = table;
        self
    }

    /// Believe [`EDGE_SOURCE_HEADER`] on requests from `edge` (a cluster's
    /// Kamailio, which removes it from what arrives from outside and adds
    /// its own): digest failures, lock-outs and UDP bindings then belong to
    /// the phone's address, so one guesser behind the edge cannot lock every
    /// phone out. From any other source the header is ignored.
    pub fn with_trusted_edge(mut self, edge: SocketAddr) -> SipDirectory {
        self.edge = Some(edge);
        self
    }

    /// Sign calls to the other nodes of the cluster with `mark`, and take
    /// a call from the edge that carries a mark `mark` believes as another
    /// node's (no digest: the calling address's own node authenticated
    /// it). Needs [`SipDirectory::with_trusted_edge`] too.
    pub fn with_node_mark(mut self, mark: tapir_cluster::NodeMark) -> SipDirectory {
        self.node_mark = Some(mark);
        self
    }

    /// Who sent `request`: `source`, or, when `source` is the trusted edge,
    /// the address the edge says the request came from.
    fn client_of(&self, request: &Message, source: SocketAddr) -> SocketAddr {
        match self.edge {
            Some(edge) if same_peer(edge, source) => request
                .header(&HeaderName::Other(EDGE_SOURCE_HEADER.into()))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(source),
            _ => source,
        }
    }

    /// Lock out digest guessers by `policy` (per source and user, per
    /// source, exempt networks) instead of the authenticator's default.
    pub fn with_lockout_policy(mut self, policy: LockoutPolicy) -> SipDirectory {
        self.auth.set_lockout_policy(policy);
        self
    }

    /// The live bindings that reach `address`: this registrar's own, or,
    /// when it has none, those restored into the published table from
    /// another node of a cluster ([`RegistrationTable::restore`]).
    fn bindings(&self, now: Instant, address: &str) -> Vec<Binding> {
        let aor = self.registered_as(address);
        let own = self.registrar.contacts(&aor, now);
        if own.is_empty() {
            self.published.contacts(&aor, now)
        } else {
            own
        }
    }

    /// The table this directory publishes its registrations into.
    pub fn registration_table(&self) -> RegistrationTable {
        self.published.clone()
    }

    /// The address of the registrations that reach `address`'s phone: a
    /// line's phone registers as the line's first address, so a call to
    /// any address of the line rings it. `address` itself without a watch
    /// table or when no line has it.
    fn registered_as<'a>(&self, address: &'a str) -> std::borrow::Cow<'a, str> {
        match self
            .watch
            .as_ref()
            .and_then(|t| t.first_address_of(address))
        {
            Some(first) => std::borrow::Cow::Owned(first),
            None => std::borrow::Cow::Borrowed(address),
        }
    }
}

impl Directory for SipDirectory {
    fn register(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
        transport: SipTransport,
    ) -> Message {
        if self.served.is_limited()
            && let Some(user) = to_user(request)
            && !self.served.serves(&user)
        {
            return not_served(request);
        }
        let passwords = &self.passwords;
        let credentials = |user: &str| passwords.get(user);
        let transport = match transport {
            SipTransport::Udp => Transport::Udp,
            SipTransport::Tcp => Transport::Tcp,
            SipTransport::Tls => Transport::Tls,
        };
        // Through the edge (UDP, with its Path) the binding is reached
        // through the Path, so its source may be the phone's own address.
        let source = match transport {
            Transport::Udp => self.client_of(request, source),
            _ => source,
        };
        let outcome = self.registrar.register(
            now,
            request,
            source,
            transport,
            &mut self.auth,
            &credentials,
        );
        if let Some(aor) = &outcome.aor
            && !outcome.changes.is_empty()
        {
            self.published
                .publish(aor, self.registrar.contacts(aor, now));
        }
        outcome.response
    }

    fn admit(
        &mut self,
        now: Instant,
        request: &Message,
        source: SocketAddr,
    ) -> Result<String, Box<Message>> {
        let passwords = &self.passwords;
        let credentials = |user: &str| passwords.get(user);
        let client = self.client_of(request, source);
        match self
            .auth
            .authenticate(now, request, client.ip(), &credentials)
        {
            AuthOutcome::Authenticated(identity) if !self.served.serves(&identity.user) => {
                Err(Box::new(not_served(request)))
            }
            AuthOutcome::Authenticated(identity) => Ok(identity.user),
            AuthOutcome::Rejected(rejection) => Err(Box::new(rejection.response)),
        }
    }

    /// Where to send INVITEs: see [`target_of`]. Any address of a line
    /// reaches the phone registered as the line's first address.
    fn contacts(&self, now: Instant, address: &str) -> Vec<ContactTarget> {
        self.bindings(now, address).iter().map(target_of).collect()
    }

    fn trunk(&self, line: LineId) -> Option<TrunkRoute> {
        self.trunks.route(line)
    }

    fn trunk_from(&self, carrier: SocketAddr, transport: SipTransport) -> Option<String> {
        self.trunks.line_from(carrier, transport)
    }

    fn registered_over(&self, now: Instant, peer: SocketAddr) -> bool {
        self.published.has_stream_binding_from(peer, now)
    }

    fn registered_until(&self, now: Instant, address: &str) -> Option<Instant> {
        self.bindings(now, address)
            .iter()
            .map(|b| b.expires_at)
            .max()
    }

    fn may_watch(&self, watcher: &str, address: &str) -> Result<(), u16> {
        match &self.watch {
            Some(table) => table.check(watcher, address),
            None => Ok(()),
        }
    }

    fn node_route(&self) -> Option<NodeRoute> {
        self.node_mark.as_ref()?;
        Some(NodeRoute { addr: self.edge? })
    }

    fn sign_node_request(&self, call_id: &str, from: &str, hops: u8) -> Option<String> {
        self.node_mark
            .as_ref()?
            .sign(call_id, from, hops, unix_secs_now())
    }

    fn admit_node(
        &mut self,
        _now: Instant,
        request: &Message,
        source: SocketAddr,
    ) -> Option<Result<NodeCaller, Box<Message>>> {
        let (edge, mark) = (self.edge?, self.node_mark.as_ref()?);
        if !same_peer(edge, source) {
            // Only the edge passes marks on (it removes them from what
            // arrives from outside): anywhere else it is a device's request.
            return None;
        }
        let value = request.header(&HeaderName::Other(tapir_cluster::NODE_MARK_HEADER.into()))?;
        let call_id = request.call_id().ok().flatten().unwrap_or_default();
        let marked = match mark.verify(value, call_id, unix_secs_now()) {
            Ok(marked) => marked,
            Err(e) => {
                tracing::warn!(error = %e, "a call with a node mark that is not believed; 403");
                return Some(Err(Box::new(
                    request
                        .response_builder(
                            403,
                            Some("Node Mark Not Believed"),
                            Some(&tapir_sip::dialog::new_tag()),
                        )
                        .build(),
                )));
            }
        };
        let to = request
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| crate::uri_user(&u));
        if !to.is_some_and(|to| self.served.serves(&to)) {
            // The edge's view of the leases is a round ahead or behind.
            return Some(Err(Box::new(not_served(request))));
        }
        Some(Ok(NodeCaller {
            from: marked.from,
            forward_hops: marked.hops,
        }))
    }
}

/// The wall clock in whole seconds since 1970, for node marks (0 if the
/// clock is before 1970: every mark is then stale, never believed wrongly).
fn unix_secs_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The same IP address and port, an IPv4 address and its IPv4-mapped IPv6
/// form (a dual-stack socket's view of it) counting as one.
fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    let canonical = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

/// Where to send INVITEs for a binding: for UDP, the registered Contact
/// when it names an IP address and port, else the address the REGISTER
/// came from (a phone behind NAT, or one that registered a host name); for
/// TCP, the connection the REGISTER came on. A binding registered through
/// proxies with a Path (RFC 3327) is reached through them: over UDP the
/// first Path entry when it names an IP address and port, else the proxy
/// the REGISTER came from, with the Contact as Request-URI and the Path as
/// Route.
fn target_of(b: &Binding) -> ContactTarget {
    let path = (!b.path.is_empty()).then(|| PathRoute {
        contact: b.contact.clone(),
        route: b.path.clone(),
    });
    let (addr, transport) = match b.transport {
        Transport::Udp => {
            let direct = match &path {
                Some(_) => b.path.first().and_then(|first| {
                    let hop = tapir_sip::msg::NameAddr::parse(first, "Path").ok()?;
                    contact_address(hop.uri_text)
                }),
                None => contact_address(&b.contact),
            };
            (direct.unwrap_or(b.source), SipTransport::Udp)
        }
        // Reach a phone registered over TCP or TLS through its connection.
        Transport::Tls | Transport::Wss => (b.source, SipTransport::Tls),
        Transport::Tcp | Transport::Ws => (b.source, SipTransport::Tcp),
    };
    ContactTarget {
        addr,
        transport,
        path,
    }
}

/// The IP address and port of a SIP contact URI, when it names both.
fn contact_address(contact: &str) -> Option<SocketAddr> {
    let uri = tapir_sip::msg::SipUri::parse(contact).ok()?;
    Some(SocketAddr::new(uri.host.ip()?, uri.port.unwrap_or(5060)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_watch_table_judges_watchers_and_forgets_removed_lines() {
        let table = WatchTable::default();
        table.set_line("1001", vec!["1001".into()], None);
        table.set_line("1002", vec!["1002".into()], Some(vec!["1001".into()]));
        table.set_slots(vec!["7001".into()]);
        assert_eq!(table.check("1001", "1002"), Ok(()));
        assert_eq!(table.check("1001", "7001"), Ok(()));
        assert_eq!(table.check("1001", "9999"), Err(404));
        assert_eq!(table.check("1002", "1001"), Ok(()));
        assert_eq!(table.check("1002", "7001"), Err(403));
        // A line's second address is reached by its first address's
        // registration.
        table.set_line("1006", vec!["1006".into(), "1007".into()], None);
        assert_eq!(table.first_address_of("1007").as_deref(), Some("1006"));
        assert_eq!(table.first_address_of("1006").as_deref(), Some("1006"));
        assert_eq!(table.first_address_of("7001"), None);
        let dir = SipDirectory::new(Instant::now(), "tapir", HashMap::new(), Vec::new())
            .with_watch_table(table.clone());
        assert_eq!(dir.registered_as("1007"), "1006");
        assert_eq!(dir.registered_as("9999"), "9999");
        // A line removed: its phone watches nothing any more.
        table.remove_line("1001");
        assert_eq!(table.check("1001", "1002"), Err(403));
        assert_eq!(table.check("1002", "1001"), Err(404));
    }

    #[test]
    fn bindings_restored_from_a_cluster_reach_the_phone_until_it_registers_here() {
        let now = Instant::now();
        let dir = SipDirectory::new(now, "tapir", HashMap::new(), Vec::new());
        let table = dir.registration_table();
        let edge: SocketAddr = "127.0.0.1:5999".parse().unwrap();
        let restored = Binding {
            contact: "sip:1001@192.0.2.7:5062".into(),
            source: edge,
            transport: Transport::Udp,
            q: None,
            expires_at: now + Duration::from_secs(60),
            call_id: "reg-1".into(),
            cseq: 3,
            updated_at: now,
            path: vec!["<sip:127.0.0.1:5999;lr>".into()],
        };
        assert!(dir.contacts(now, "1001").is_empty());
        table.restore("1001", vec![restored.clone()]);
        let targets = dir.contacts(now, "1001");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].addr, edge, "reached through the Path's proxy");
        assert!(targets[0].path.is_some());
        assert_eq!(
            dir.registered_until(now, "1001"),
            Some(now + Duration::from_secs(60))
        );
        // Never over this registrar's own: a second restore is ignored.
        let mut other = restored.clone();
        other.contact = "sip:1001@192.0.2.8:5062".into();
        table.restore("1001", vec![other]);
        assert_eq!(table.contacts("1001", now)[0].contact, restored.contact);
        // Expired, it reaches nothing.
        assert!(
            dir.contacts(now + Duration::from_secs(61), "1001")
                .is_empty()
        );
    }

    fn carrier_table() -> TrunkTable {
        let table = TrunkTable::default();
        table.replace(vec![TrunkBinding {
            line: LineId(7),
            address: "9000".into(),
            route: TrunkRoute {
                addr: "127.0.0.1:5070".parse().unwrap(),
                host: "127.0.0.1".into(),
                transport: SipTransport::Udp,
                credentials: None,
            },
        }]);
        table
    }

    #[test]
    fn a_carrier_is_its_address_port_and_transport_together() {
        let t = carrier_table();
        let carrier: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        assert_eq!(
            t.line_from(carrier, SipTransport::Udp).as_deref(),
            Some("9000")
        );
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5070".parse().unwrap();
        assert_eq!(
            t.line_from(mapped, SipTransport::Udp).as_deref(),
            Some("9000")
        );
        // The carrier's port over another transport, its host on another
        // port, another host on its port: strangers.
        assert_eq!(t.line_from(carrier, SipTransport::Tcp), None);
        assert_eq!(t.line_from(carrier, SipTransport::Tls), None);
        assert_eq!(
            t.line_from("127.0.0.1:5071".parse().unwrap(), SipTransport::Udp),
            None
        );
        assert_eq!(
            t.line_from("127.0.0.2:5070".parse().unwrap(), SipTransport::Udp),
            None
        );
    }

    fn binding(transport: Transport, path: &[&str]) -> Binding {
        let now = Instant::now();
        Binding {
            contact: "sip:2001@10.0.0.7:5062".into(),
            source: "127.0.0.1:5070".parse().unwrap(),
            transport,
            q: None,
            expires_at: now + std::time::Duration::from_secs(60),
            call_id: "c".into(),
            cseq: 1,
            updated_at: now,
            path: path.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_binding_with_a_path_is_reached_through_its_proxies() {
        // Straight: the Contact's address, no Route.
        let direct = target_of(&binding(Transport::Udp, &[]));
        assert_eq!(direct.addr, "10.0.0.7:5062".parse().unwrap());
        assert_eq!(direct.path, None);
        // Through a Path: its first entry, the Contact as Request-URI.
        let proxied = target_of(&binding(
            Transport::Udp,
            &["<sip:127.0.0.1:5080;lr>", "<sip:edge.example;lr>"],
        ));
        assert_eq!(proxied.addr, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(
            proxied.path,
            Some(PathRoute {
                contact: "sip:2001@10.0.0.7:5062".into(),
                route: vec![
                    "<sip:127.0.0.1:5080;lr>".into(),
                    "<sip:edge.example;lr>".into()
                ],
            })
        );
        // A Path by host name: the proxy the REGISTER came from.
        let named = target_of(&binding(Transport::Udp, &["<sip:edge.example;lr>"]));
        assert_eq!(named.addr, "127.0.0.1:5070".parse().unwrap());
        // Over TCP: the connection, whatever the Path says.
        let tcp = target_of(&binding(Transport::Tcp, &["<sip:127.0.0.1:5080;lr>"]));
        assert_eq!(tcp.addr, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(tcp.transport, SipTransport::Tcp);
        assert!(tcp.path.is_some());
    }

    #[test]
    fn contact_addresses() {
        assert_eq!(
            contact_address("sip:2001@127.0.0.1:5080;ob"),
            Some("127.0.0.1:5080".parse().unwrap())
        );
        assert_eq!(
            contact_address("sip:2001@127.0.0.1"),
            Some("127.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(contact_address("sip:2001@phone.example"), None);
        assert_eq!(contact_address("garbage"), None);
    }
}
