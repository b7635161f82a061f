//! The configuration file of `tapir serve` (the TOML of `shared/API.md`), its
//! defaults, the embedded default configuration, and the generated secrets
//! (admin token, app tokens, phone passwords) kept in the data directory.
//!
//! The configuration seeds the store (`tapir-store`) at first start; later
//! starts take lines, apps, trunks, park and translation settings from the
//! store (see [`crate::persist`] and `docs/operations.md`). Secrets generated
//! at first start are printed once and recorded for the operator in
//! `<data_dir>/secrets.toml` (mode 0600); the store keeps app and admin
//! tokens only as hashes.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tapir_core::{AppPermission, LineKind, MediaMode, Outbound, Privilege};

/// Name of the file in the data directory that records generated secrets.
pub const SECRETS_FILE: &str = "secrets.toml";

/// Name of the SQLite database in the data directory (the default store).
pub const STORE_FILE: &str = "tapir.db";

/// The whole configuration file. Every key is optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database and generated files live.
    pub data_dir: PathBuf,
    /// SIP settings (used by the SIP driver).
    pub sip: SipConfig,
    /// HTTP API settings.
    pub http: HttpConfig,
    /// The lines of the switch.
    pub lines: Vec<LineEntry>,
    /// The applications allowed to connect.
    pub apps: Vec<AppEntry>,
    /// Park settings.
    pub park: ParkConfig,
    /// Address translation: locations and calling cards (`/v1/locations`).
    pub translate: Option<TranslateEntry>,
    /// SIP peers (other servers, carriers).
    pub trunks: Vec<TrunkEntry>,
    /// Where the store lives and how much of the journal it keeps.
    pub store: StoreConfig,
    /// Media plane settings.
    pub media: MediaSettings,
    /// Emergency numbers.
    pub emergency: EmergencyConfig,
    /// Webhooks: what their URLs may be, and how delivery retries.
    pub webhooks: WebhooksConfig,
    /// Busy lamp and presence subscriptions (SUBSCRIBE): their limits.
    pub subscriptions: SubscriptionsConfig,
    /// Call recording: its limits and retention.
    pub recording: RecordingConfig,
    /// Membership of a cluster (ADR 0002); without it the node is the
    /// single switch it always was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: this node's membership of a cluster of tapir nodes that act
/// as one switch (ADR 0002). Times are in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name: 1 to 32 of `a-z`, `0-9`, `-`, unique in the
    /// cluster (`tapir serve --node` overrides it).
    pub node: String,
    /// The PostgreSQL server holding the cluster's shared tables (nodes,
    /// line leases, addresses).
    pub postgres: String,
    /// The NATS server (JetStream) for commands and events between nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<String>,
    /// The SIP edge (Kamailio) in front of the nodes, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// The secret nodes share to trust each other's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How long a line's lease lasts without renewal (default 10): a dead
    /// node's lines wait this long, plus one round, before another node
    /// serves them.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: f64,
    /// How often a node renews its leases and claims lines (default 2).
    #[serde(default = "default_round_secs")]
    pub round_secs: f64,
}

fn default_lease_secs() -> f64 {
    10.0
}

fn default_round_secs() -> f64 {
    2.0
}

impl ClusterConfig {
    /// This node's signer of calls to the other nodes: `None` without a
    /// secret (calls between nodes are then impossible), an error for a
    /// name or secret that cannot sign.
    pub fn node_mark(&self) -> Result<Option<tapir_cluster::NodeMark>, ConfigError> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let node = tapir_cluster::NodeName::new(&self.node)
            .map_err(|e| ConfigError::Invalid(format!("[cluster] node {:?}: {e}", self.node)))?;
        tapir_cluster::NodeMark::new(node, secret.as_bytes())
            .map(Some)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "[cluster] secret: at least {} characters",
                    tapir_cluster::MIN_SECRET_LEN
                ))
            })
    }

    /// Check the node name and the times: a round must fit at least three
    /// times in a lease, so one lost round never costs a lease.
    pub fn validate(&self) -> Result<(), ConfigError> {
        tapir_cluster::NodeName::new(&self.node)
            .map_err(|e| ConfigError::Invalid(format!("[cluster] node {:?}: {e}", self.node)))?;
        if !(self.postgres.starts_with("postgres://") || self.postgres.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "[cluster] postgres must be a postgres:// URL".into(),
            ));
        }
        self.node_mark()?;
        let ok = |v: f64| v.is_finite() && v > 0.0 && v <= 3600.0;
        if !ok(self.lease_secs) || !ok(self.round_secs) || self.round_secs * 3.0 > self.lease_secs {
            return Err(ConfigError::Invalid(format!(
                "[cluster] round_secs ({}) must be positive and at most a third of lease_secs ({})",
                self.round_secs, self.lease_secs
            )));
        }
        Ok(())
    }
}

/// `[subscriptions]`: the limits of phones' busy lamp and presence
/// subscriptions (`SUBSCRIBE` to `Event: dialog` or `presence`). Times are
/// in seconds unless named otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// The shortest `Expires` granted: a shorter non-zero one gets `423`
    /// with `Min-Expires` (default 60).
    pub min_expires: u32,
    /// The longest `Expires` granted; a longer one is shortened to it
    /// (default 3600).
    pub max_expires: u32,
    /// The interval granted to a SUBSCRIBE without `Expires` (default 3600;
    /// kept between `min_expires` and `max_expires`).
    pub default_expires: u32,
    /// Live subscriptions one phone (digest user) may hold; one more gets
    /// `403` (default 200).
    pub max_per_watcher: usize,
    /// Live subscriptions in all; one more gets `503` with `Retry-After`
    /// (default 100000).
    pub max_total: usize,
    /// The shortest time between two NOTIFYs of one subscription, in
    /// milliseconds: changes in between are merged (default 250).
    pub coalesce_ms: u64,
}

impl Default for SubscriptionsConfig {
    fn default() -> SubscriptionsConfig {
        let d = tapir_b2bua::subscription::SubscriptionConfig::default();
        SubscriptionsConfig {
            min_expires: d.min_expires,
            max_expires: d.max_expires,
            default_expires: d.default_expires,
            max_per_watcher: d.max_per_watcher,
            max_total: d.max_total,
            coalesce_ms: d.coalesce.as_millis() as u64,
        }
    }
}

impl SubscriptionsConfig {
    /// The B2BUA's settings: a zero `min_expires` counts as 1, a
    /// `max_expires` below it as `min_expires`, the default interval is
    /// kept between the two, and the coalescing window is at most 60 s.
    pub fn to_b2bua(&self) -> tapir_b2bua::subscription::SubscriptionConfig {
        let min_expires = self.min_expires.max(1);
        let max_expires = self.max_expires.max(min_expires);
        tapir_b2bua::subscription::SubscriptionConfig {
            min_expires,
            max_expires,
            default_expires: self.default_expires.clamp(min_expires, max_expires),
            max_per_watcher: self.max_per_watcher,
            max_total: self.max_total,
            coalesce: std::time::Duration::from_millis(self.coalesce_ms.min(60_000)),
        }
    }
}

/// `[webhooks]`: the rules every webhook's delivery follows (the webhooks
/// themselves belong to apps: `[[apps]] webhooks`, `/v1/webhooks`,
/// `/v1/admin/webhooks`). Times are in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `http://` URLs are accepted (otherwise only `https://`).
    pub allow_http: bool,
    /// Loopback, private, link-local and other non-public targets are
    /// accepted (checked on registration and on every connection).
    pub allow_private: bool,
    /// A webhook failing without a 2xx for this long is suspended (default
    /// 86400: a day).
    pub suspend_after: f64,
    /// One POST, connection and response included, may take this long
    /// (default 10).
    pub timeout: f64,
    /// The first retry waits about this long (default 1); each failure
    /// doubles it, with jitter.
    pub retry_min: f64,
    /// The most a retry waits (default 300).
    pub retry_max: f64,
    /// Bytes of a receiver's response read at most (default 65536); the rest
    /// is not read.
    pub max_response_bytes: usize,
    /// Webhooks one app may have (default 16).
    pub max_per_app: usize,
}

impl Default for WebhooksConfig {
    fn default() -> WebhooksConfig {
        WebhooksConfig {
            allow_http: false,
            allow_private: false,
            suspend_after: 86_400.0,
            timeout: 10.0,
            retry_min: 1.0,
            retry_max: 300.0,
            max_response_bytes: 65_536,
            max_per_app: 16,
        }
    }
}

/// `[recording]`: call recordings (`POST /v1/calls/{call}/record`), WAV
/// files in `<data_dir>/recordings`: how many may run at once, the free
/// space they leave, and how long they are kept. A periodic sweep deletes
/// finished recordings (file and row) older than `max_age_days`, then the
/// oldest until all of them take at most `max_total_mb`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Recordings running at once (default 100); one more is refused with
    /// `resourceunavail`.
    pub max_concurrent: usize,
    /// A recording does not start while the file system of `<data_dir>`
    /// has less free space than this, in MiB (default 1024); a running one
    /// stops when it falls under half of it.
    pub min_free_mb: u64,
    /// Finished recordings older than this many days are deleted (default
    /// 90; 0 keeps them whatever their age).
    pub max_age_days: f64,
    /// The most all recordings may take together, in MiB (default 10240;
    /// 0: no limit): the oldest finished ones are deleted beyond it.
    pub max_total_mb: u64,
    /// Seconds between two retention sweeps (default 60).
    pub sweep_interval: f64,
}

impl Default for RecordingConfig {
    fn default() -> RecordingConfig {
        RecordingConfig {
            max_concurrent: 100,
            min_free_mb: 1024,
            max_age_days: 90.0,
            max_total_mb: 10_240,
            sweep_interval: 60.0,
        }
    }
}

/// One webhook of an `[[apps]]` entry (`webhooks = [{ url = "…" }]`): it
/// seeds the store once, at the first start that knows webhooks; later it
/// is managed through the API.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered (`call.state`, or a family `call.*`); all when
    /// empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// Addresses whose events are delivered; all when empty.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The signing secret; generated (and printed once) when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Most events per POST (default 1: one event, not an array).
    #[serde(default)]
    pub batch: Option<usize>,
}

impl std::fmt::Debug for WebhookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEntry")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("addresses", &self.addresses)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("batch", &self.batch)
            .finish()
    }
}

/// `[emergency]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmergencyConfig {
    /// The numbers (as the carrier gets them) that every phone and route
    /// point may dial whatever its `outbound` class; empty (the default):
    /// the location's country's (`911` and `112` in country 1).
    pub numbers: Vec<String>,
}

impl EmergencyConfig {
    /// The numbers, each checked to be digits (with `*` and `#`).
    pub fn number_list(&self) -> Result<Vec<String>, ConfigError> {
        for n in &self.numbers {
            let dialable = !n.is_empty()
                && n.len() <= 32
                && n.chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
            if !dialable {
                return Err(ConfigError::Invalid(format!(
                    "[emergency] numbers: {n:?} is not a number as the carrier gets it (digits, * and #)"
                )));
            }
        }
        Ok(self.numbers.clone())
    }
}

/// `[media]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Seconds without RTP or RTCP from an answered phone in full flow
    /// (`sendrecv`) before tapir releases its call (BYE, CDR reason
    /// `rtp_timeout`); counted from the answer when no packet ever came.
    /// `0` never releases. Default 60 (rtpengine's `timeout`).
    pub rtp_timeout: f64,
    /// The same for a call on hold (either side holds, or the phone gave
    /// no address): a held phone may send nothing. `0` never releases.
    /// Default 3600 (rtpengine's `silent-timeout`).
    pub rtp_hold_timeout: f64,
    /// The lowest port of the RTP range (each leg takes an even port and
    /// the next one for RTCP); `0` with `rtp_port_max = 0` (the default)
    /// lets the system pick ephemeral ports.
    pub rtp_port_min: u16,
    /// The highest port of the RTP range (inclusive).
    pub rtp_port_max: u16,
}

impl Default for MediaSettings {
    fn default() -> MediaSettings {
        MediaSettings {
            rtp_timeout: 60.0,
            rtp_hold_timeout: 3600.0,
            rtp_port_min: 0,
            rtp_port_max: 0,
        }
    }
}

impl MediaSettings {
    /// The RTP port range (`None`: the system picks).
    pub fn rtp_ports(&self) -> Option<(u16, u16)> {
        (self.rtp_port_min != 0 || self.rtp_port_max != 0).then(|| {
            let (lo, hi) = (self.rtp_port_min, self.rtp_port_max);
            (lo.min(hi), lo.max(hi))
        })
    }

    /// How many legs the RTP range can serve at once: its even ports whose
    /// next port is in the range too (`None`: not bounded by a range).
    pub fn rtp_port_pairs(&self) -> Option<usize> {
        self.rtp_ports()
            .map(|(lo, hi)| (lo..hi).filter(|p| p % 2 == 0 && *p != 0).count())
    }

    /// `seconds` as the media engine's timeout (`None` for 0, negative or
    /// not a number).
    pub fn timeout(seconds: f64) -> Option<std::time::Duration> {
        (seconds.is_finite() && seconds > 0.0)
            .then(|| std::time::Duration::try_from_secs_f64(seconds).ok())
            .flatten()
    }
}

/// `[store]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://USER@HOST:PORT/DB`;
    /// `sqlite://<data_dir>/tapir.db` when absent.
    pub url: Option<String>,
    /// Events kept in the store per app (the oldest are deleted); the
    /// journal's in-memory capacity (`[http] journal_capacity`) when absent.
    pub journal_retention: Option<u64>,
}

/// SIP transport of a trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    /// UDP.
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

/// One `[[trunks]]` entry: a SIP peer for calls to and from other servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkEntry {
    /// Unique name.
    pub name: String,
    /// Host name or IP address of the peer.
    pub host: String,
    /// Its SIP port.
    #[serde(default = "default_sip_port")]
    pub port: u16,
    /// Transport.
    #[serde(default)]
    pub transport: TrunkTransport,
    /// Digest user name tapir authenticates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Digest password (write-only in the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Dialled prefix that selects this trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The address of the trunk line its calls use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Calls from this trunk's carrier may be routed back out of a trunk
    /// (a hairpin); off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hairpin: bool,
}

fn default_sip_port() -> u16 {
    5060
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./tapir-data"),
            sip: SipConfig::default(),
            http: HttpConfig::default(),
            lines: Vec::new(),
            apps: Vec::new(),
            park: ParkConfig::default(),
            translate: None,
            trunks: Vec::new(),
            store: StoreConfig::default(),
            media: MediaSettings::default(),
            emergency: EmergencyConfig::default(),
            webhooks: WebhooksConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            recording: RecordingConfig::default(),
            cluster: None,
        }
    }
}

/// `[sip]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Transports and addresses, as `udp:HOST:PORT`, `tcp:…`, `tls:…`.
    pub listen: Vec<String>,
    /// Realm of digest authentication.
    pub domain: String,
    /// Digest algorithms offered in challenges, most preferred first
    /// (`SHA-256`, `MD5`). Clients that read only the first challenge (SIPp,
    /// some older phones) need `MD5` first.
    pub digest_algorithms: Vec<String>,
    /// Wrong digests for one user from one source address, within
    /// `lockout_window_secs`, that lock that user at that address only
    /// (default 5).
    pub lockout_user_failures: u32,
    /// Wrong digests from one source address for any users (password
    /// spraying), within the window, that lock the whole address (default 30).
    pub lockout_source_failures: u32,
    /// The window in which failures are counted, in seconds (default 600).
    pub lockout_window_secs: u64,
    /// How long a locked user or address gets 403, in seconds (default 600).
    pub lockout_secs: u64,
    /// Source addresses or networks (`"10.0.0.0/8"`, `"192.0.2.7"`,
    /// `"2001:db8::/32"`) never locked out (default none).
    pub lockout_exempt: Vec<String>,
    /// Most failure counters (user at address, and address) remembered; the
    /// oldest that lock nothing are forgotten first (default 65 536).
    pub lockout_max_tracked: usize,
    /// RFC 4028 session interval (seconds) tapir asks for in its INVITEs
    /// and grants in its answers; a call not refreshed within it is
    /// released (BYE, CDR reason `session_expired`). `0` turns session
    /// timers off. Default 1800 (Asterisk, Kamailio).
    pub session_expires: u32,
    /// RFC 4028 `Min-SE` (seconds): a shorter interval asked by a device
    /// gets `422 Session Interval Too Small`. At least 90 (the RFC's
    /// floor); default 90.
    pub min_se: u32,
    /// Most SIP TCP and TLS connections open at once (accepted, and opened
    /// to carriers); one more accepted is closed at once (default 1024).
    pub tcp_max_connections: usize,
    /// Most SIP TCP and TLS connections accepted from one IP address at
    /// once; one more is closed at once (default 128).
    pub tcp_max_connections_per_source: usize,
    /// Seconds a SIP TCP or TLS connection may carry no complete message
    /// before tapir closes it, unless a dialog, a transaction or a
    /// registration still uses it; bytes that never complete a message do
    /// not count (default 120).
    pub tcp_idle_timeout: u64,
    /// Seconds a SIP TLS handshake may take (default 10).
    pub tls_handshake_timeout: u64,
    /// Most SIP dialogs (call legs) at once; a new call beyond it gets
    /// `503` with `Retry-After`. Absent: the process's file descriptor
    /// limit (a leg with media holds two RTP sockets, so the descriptor
    /// margin is reached first; ended dialogs that linger for their
    /// transactions hold none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dialogs: Option<usize>,
    /// File descriptors kept free below the process's limit: a new call
    /// that would leave fewer gets `503`, and a new TCP/TLS connection is
    /// closed when only these are left (default 256).
    pub admission_margin_fds: usize,
    /// Free RTP port pairs kept in `[media] rtp_port_min`–`rtp_port_max`
    /// for calls already accepted: a new call that would leave fewer gets
    /// `503` (default 4).
    pub admission_margin_rtp_ports: usize,
    /// The `Retry-After` seconds of every `503` tapir gives a device
    /// (default 5).
    pub retry_after: u64,
}

impl SipConfig {
    /// The digest lock-out policy of these settings; an entry of
    /// `lockout_exempt` that is not an address or network is an error.
    pub fn lockout_policy(&self) -> Result<tapir_sip::auth::LockoutPolicy, ConfigError> {
        let exempt = self
            .lockout_exempt
            .iter()
            .map(|entry| {
                entry
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("[sip] lockout_exempt: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tapir_sip::auth::LockoutPolicy {
            max_user_failures: self.lockout_user_failures.max(1),
            max_source_failures: self.lockout_source_failures.max(1),
            window: std::time::Duration::from_secs(self.lockout_window_secs),
            duration: std::time::Duration::from_secs(self.lockout_secs),
            exempt,
            max_tracked: self.lockout_max_tracked.max(1),
        })
    }
}

impl Default for SipConfig {
    fn default() -> SipConfig {
        SipConfig {
            listen: vec![
                "udp:127.0.0.1:5060".into(),
                "tcp:127.0.0.1:5060".into(),
                "tls:127.0.0.1:5061".into(),
            ],
            domain: "127.0.0.1".into(),
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
            lockout_user_failures: 5,
            lockout_source_failures: 30,
            lockout_window_secs: 600,
            lockout_secs: 600,
            lockout_exempt: Vec::new(),
            lockout_max_tracked: 65_536,
            session_expires: 1800,
            min_se: 90,
            tcp_max_connections: 1024,
            tcp_max_connections_per_source: 128,
            tcp_idle_timeout: 120,
            tls_handshake_timeout: 10,
            max_dialogs: None,
            admission_margin_fds: 256,
            admission_margin_rtp_ports: 4,
            retry_after: 5,
        }
    }
}

/// `[http]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of the HTTP API (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The operator's token; generated and printed at first start when absent.
    pub admin_token: Option<String>,
    /// How many events the journal keeps per app.
    pub journal_capacity: usize,
    /// How many events a WebSocket may fall behind before it is told to resync.
    pub stream_buffer: usize,
    /// Most HTTP connections open at once; one more is answered 503 and
    /// closed (default 512).
    pub max_connections: usize,
    /// A connection on which tapir has written nothing for this many seconds
    /// is closed: idle keep-alive connections and clients that never finish
    /// their request (default 60; event streams are pinged every 30 s).
    pub idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            journal_capacity: 10_000,
            stream_buffer: 1024,
            max_connections: 512,
            idle_timeout_secs: 60,
        }
    }
}

/// How a phone lets tapir drive it remotely.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteControl {
    /// Not at all.
    #[default]
    None,
    /// BroadSoft-style `Event: talk` / `Event: hold` NOTIFYs.
    Broadsoft,
}

/// One `[[lines]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineEntry {
    /// The line's first address.
    pub address: String,
    /// More addresses of the same line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_addresses: Vec<String>,
    /// phone | routepoint | trunk.
    #[serde(default = "default_kind")]
    pub kind: LineKind,
    /// SIP digest password (phones); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pickup group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_group: Option<String>,
    /// The phone honours an auto-answer hint.
    #[serde(default)]
    pub auto_answer: bool,
    /// How tapir drives the phone's own screen.
    #[serde(default)]
    pub remote_control: RemoteControl,
    /// Call appearances per address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<usize>,
    /// What the line may dial: `none`, `internal`, `national` (the default:
    /// no international numbers) or `all`.
    #[serde(default)]
    pub outbound: Outbound,
    /// Whose busy lamps and presence the line's phone may SUBSCRIBE to:
    /// `["*"]` or a list of addresses (and park slots); every address when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<String>>,
}

fn default_kind() -> LineKind {
    LineKind::Phone
}

impl LineEntry {
    /// Every address of the line, first one first.
    pub fn addresses(&self) -> Vec<String> {
        std::iter::once(self.address.clone())
            .chain(self.more_addresses.iter().cloned())
            .collect()
    }

    /// The core's view of this line.
    pub fn to_core(&self) -> tapir_core::LineConfig {
        let mut cfg = match self.kind {
            LineKind::Phone => tapir_core::LineConfig::phone(&self.address),
            LineKind::RoutePoint => tapir_core::LineConfig::route_point(&self.address),
            LineKind::Trunk => tapir_core::LineConfig::trunk(&self.address),
        };
        cfg.addresses = self.addresses();
        cfg.name = self.name.clone();
        cfg.pickup_group = self.pickup_group.clone();
        cfg.auto_answer = self.auto_answer;
        cfg.remote_answer = self.remote_control == RemoteControl::Broadsoft;
        if let Some(n) = self.max_calls {
            cfg.max_calls = n;
        }
        cfg.outbound = self.outbound;
        cfg
    }

    /// The core's view of this line with its trunk's settings: a trunk
    /// line takes the `prefix` and `allow_hairpin` of the first of `trunks`
    /// bound to it (the same binding rule as [`crate::sip::trunk_bindings`]:
    /// the trunk's `address`, else its name, is one of the line's
    /// addresses).
    pub fn to_core_with(&self, trunks: &[TrunkEntry]) -> tapir_core::LineConfig {
        let mut cfg = self.to_core();
        let trunk = self.bound_trunk(trunks);
        cfg.prefix = trunk.and_then(|t| t.prefix.clone());
        cfg.allow_hairpin = trunk.is_some_and(|t| t.allow_hairpin);
        cfg
    }

    /// The dialled prefix of the trunk bound to this line, if it is a trunk
    /// line and that trunk has one.
    pub fn trunk_prefix(&self, trunks: &[TrunkEntry]) -> Option<String> {
        self.bound_trunk(trunks).and_then(|t| t.prefix.clone())
    }

    /// The first of `trunks` bound to this line, if it is a trunk line.
    pub fn bound_trunk<'t>(&self, trunks: &'t [TrunkEntry]) -> Option<&'t TrunkEntry> {
        if self.kind != LineKind::Trunk {
            return None;
        }
        let addresses = self.addresses();
        trunks.iter().find(|t| {
            let wanted = t.address.as_deref().unwrap_or(&t.name);
            addresses.iter().any(|a| a == wanted)
        })
    }
}

/// One `[[apps]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    /// Unique name.
    pub name: String,
    /// Bearer token; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Addresses of the lines it may open; `"*"` for all.
    #[serde(default)]
    pub lines: Vec<String>,
    /// The most it may ask for when opening a line.
    #[serde(default = "all_privileges")]
    pub privileges: Vec<Privilege>,
    /// Media modes it may open lines for.
    #[serde(default = "tapir_core::default_media_modes")]
    pub media_modes: Vec<MediaMode>,
    /// Priority for new calls and indirect handoff (lower wins).
    #[serde(default)]
    pub priority: u32,
    /// Rights beyond call control on its lines: `make_call` (`POST
    /// /v1/calls`), `forward` (`PUT /v1/addresses/{a}/forwarding`),
    /// `settings` (`PUT /v1/locations`, `PUT /v1/cards`). When absent: an
    /// app with the `owner` privilege may make calls and forward, and with
    /// `lines = ["*"]` too change settings; a monitor-only app may do none
    /// (see [`AppEntry::permissions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<AppPermission>>,
    /// Its webhooks; they seed the store (never written into the app's own
    /// document, so their secrets stay in the webhooks table).
    #[serde(default, skip_serializing)]
    pub webhooks: Vec<WebhookEntry>,
}

fn all_privileges() -> Vec<Privilege> {
    vec![Privilege::Owner, Privilege::Monitor]
}

impl AppEntry {
    /// Whether the app may open the line whose first address is `address`.
    pub fn may_open(&self, address: &str) -> bool {
        self.lines.iter().any(|l| l == "*" || l == address)
    }

    /// Its permissions: the configured ones, or the defaults of its
    /// privileges and lines ([`AppPermission::defaults`]).
    pub fn permissions(&self) -> Vec<AppPermission> {
        match &self.permissions {
            Some(p) => p.clone(),
            None => AppPermission::defaults(&self.privileges, self.lines.iter().any(|l| l == "*")),
        }
    }

    /// Whether it has `permission`.
    pub fn may(&self, permission: AppPermission) -> bool {
        self.permissions().contains(&permission)
    }

    /// The core's view of this app: its name, priority and rights (the
    /// switch enforces the privileges, lines and call permissions).
    pub fn to_core(&self) -> tapir_core::AppConfig {
        tapir_core::AppConfig {
            name: self.name.clone(),
            priority: self.priority,
            lines: self.lines.clone(),
            privileges: self.privileges.clone(),
            permissions: self.permissions(),
        }
    }
}

/// `[park]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParkConfig {
    /// Slot range (`7001-7020`) or a comma-separated list.
    pub slots: String,
    /// Milliseconds before a parked call rings back (0: never).
    pub reminder_ms: Option<u64>,
}

impl Default for ParkConfig {
    fn default() -> ParkConfig {
        ParkConfig {
            slots: "7001-7020".into(),
            reminder_ms: None,
        }
    }
}

impl ParkConfig {
    /// The slot addresses.
    pub fn slot_list(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for part in self
            .slots
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if let Some((a, b)) = part.split_once('-') {
                let bad = || ConfigError::Invalid(format!("park slot range {part:?} is not N-M"));
                let a: u64 = a.trim().parse().map_err(|_| bad())?;
                let b: u64 = b.trim().parse().map_err(|_| bad())?;
                if b < a || b - a > 10_000 {
                    return Err(bad());
                }
                out.extend((a..=b).map(|n| n.to_string()));
            } else {
                out.push(part.to_string());
            }
        }
        Ok(out)
    }
}

/// `[translate]`: the locations and calling cards, in the JSON shapes of
/// `/v1/locations` and `/v1/cards`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateEntry {
    /// Id of the current location.
    pub current: String,
    /// Locations.
    #[serde(default)]
    pub locations: Vec<tapir_translate::Location>,
    /// Calling cards.
    #[serde(default)]
    pub cards: Vec<tapir_translate::CallingCard>,
}

impl Config {
    /// Parse a configuration file's text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io(format!("{}: {e}", path.display())))?;
        Config::from_toml(&text)
    }

    /// The embedded default: phones 1001–1010 and one app `demo` allowed all
    /// lines (secrets are filled in by [`Config::fill_secrets`]).
    pub fn embedded_default() -> Config {
        Config {
            lines: (1001..=1010)
                .map(|n| LineEntry {
                    address: n.to_string(),
                    more_addresses: Vec::new(),
                    kind: LineKind::Phone,
                    password: None,
                    name: Some(format!("Phone {n}")),
                    pickup_group: None,
                    auto_answer: true,
                    remote_control: RemoteControl::None,
                    max_calls: None,
                    outbound: Outbound::default(),
                    watch: None,
                })
                .collect(),
            apps: vec![AppEntry {
                name: "demo".into(),
                token: None,
                lines: vec!["*".into()],
                privileges: all_privileges(),
                media_modes: tapir_core::default_media_modes(),
                priority: 0,
                permissions: None,
                webhooks: Vec::new(),
            }],
            ..Config::default()
        }
    }

    /// The store's URL: `[store] url`, or the SQLite file
    /// `<data_dir>/tapir.db`.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join(STORE_FILE).display()),
        }
    }

    /// Fill every absent secret (admin token, app tokens, phone passwords)
    /// from `<data_dir>/secrets.toml`, generating and persisting (mode 0600)
    /// the ones it does not hold yet. Returns what was generated now (to
    /// print once). The file is the operator's record of what was generated;
    /// the store keeps tokens only as hashes, and tokens set through the
    /// admin API are written nowhere in clear.
    pub fn fill_secrets(&mut self) -> Result<Vec<String>, ConfigError> {
        let path = self.data_dir.join(SECRETS_FILE);
        let mut secrets: Secrets = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Secrets::default(),
            Err(e) => return Err(ConfigError::Io(format!("{}: {e}", path.display()))),
        };
        let mut generated = Vec::new();
        let mut changed = false;
        if self.http.admin_token.is_none() {
            let t = match &secrets.admin_token {
                Some(t) => t.clone(),
                None => {
                    let t = random_secret("adm")?;
                    secrets.admin_token = Some(t.clone());
                    generated.push(format!("admin token: {t}"));
                    changed = true;
                    t
                }
            };
            self.http.admin_token = Some(t);
        }
        for app in &mut self.apps {
            if app.token.is_none() {
                let t = match secrets.apps.get(&app.name) {
                    Some(t) => t.clone(),
                    None => {
                        let t = random_secret("app")?;
                        secrets.apps.insert(app.name.clone(), t.clone());
                        generated.push(format!("app {} token: {t}", app.name));
                        changed = true;
                        t
                    }
                };
                app.token = Some(t);
            }
        }
        for line in &mut self.lines {
            if line.kind == LineKind::Phone && line.password.is_none() {
                let p = match secrets.passwords.get(&line.address) {
                    Some(p) => p.clone(),
                    None => {
                        let p = random_secret("")?;
                        secrets.passwords.insert(line.address.clone(), p.clone());
                        generated.push(format!("phone {} password: {p}", line.address));
                        changed = true;
                        p
                    }
                };
                line.password = Some(p);
            }
        }
        if changed {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| ConfigError::Io(format!("{}: {e}", self.data_dir.display())))?;
            let text =
                toml::to_string(&secrets).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            write_private(&path, &text)
                .map_err(|e| ConfigError::Io(format!("{}: {e}", path.display())))?;
        }
        Ok(generated)
    }
}

/// What `secrets.toml` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Secrets {
    admin_token: Option<String>,
    apps: BTreeMap<String, String>,
    passwords: BTreeMap<String, String>,
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

/// A random secret: 20 bytes from the OS as hex, with an optional prefix.
pub fn random_secret(prefix: &str) -> Result<String, ConfigError> {
    let mut buf = [0u8; 20];
    getrandom::fill(&mut buf).map_err(|e| ConfigError::Io(format!("random source: {e}")))?;
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    Ok(if prefix.is_empty() {
        hex
    } else {
        format!("{prefix}_{hex}")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn emergency_numbers_are_digits_as_the_carrier_gets_them() {
        let cfg = Config::from_toml("[emergency]\nnumbers = [\"911\", \"933\"]").unwrap();
        assert_eq!(cfg.emergency.number_list().unwrap(), ["911", "933"]);
        assert!(
            Config::default()
                .emergency
                .number_list()
                .unwrap()
                .is_empty()
        );
        for bad in ["9-1-1", "", "911\r\nVia: x"] {
            let cfg = Config {
                emergency: EmergencyConfig {
                    numbers: vec![bad.into()],
                },
                ..Config::default()
            };
            assert!(cfg.emergency.number_list().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_md_example_parses() {
        let cfg = Config::from_toml(
            r#"
data_dir = "./tapir-data"
[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
domain = "127.0.0.1"
[http]
listen = "127.0.0.1:8080"
admin_token = "x"
[[lines]]
address = "1001"
kind = "phone"
password = "p"
name = "Alice"
pickup_group = "sales"
auto_answer = false
remote_control = "none"
[[apps]]
name = "crm"
token = "t"
lines = ["1001", "1002"]
privileges = ["owner", "monitor"]
media_modes = ["interactivevoice"]
[park]
slots = "7001-7020"
"#,
        )
        .unwrap();
        assert_eq!(cfg.lines[0].name.as_deref(), Some("Alice"));
        assert_eq!(cfg.park.slot_list().unwrap().len(), 20);
        assert!(cfg.apps[0].may_open("1002"));
        assert!(!cfg.apps[0].may_open("1003"));
        // No `permissions`: an owner app limited to some lines may make
        // calls and forward, not change switch-wide settings.
        assert!(cfg.apps[0].may(AppPermission::MakeCall));
        assert!(cfg.apps[0].may(AppPermission::Forward));
        assert!(!cfg.apps[0].may(AppPermission::Settings));
    }

    #[test]
    fn app_permissions_are_configured_or_derived() {
        let cfg = Config::from_toml(
            r#"
[[apps]]
name = "wall"
lines = ["*"]
privileges = ["monitor"]
[[apps]]
name = "all"
lines = ["*"]
[[apps]]
name = "dialer"
lines = ["1001"]
permissions = ["make_call"]
"#,
        )
        .unwrap();
        assert!(cfg.apps[0].permissions().is_empty());
        assert_eq!(cfg.apps[1].permissions(), AppPermission::ALL);
        assert_eq!(cfg.apps[2].permissions(), [AppPermission::MakeCall]);
        assert_eq!(cfg.apps[2].to_core().permissions, [AppPermission::MakeCall]);
        assert!(Config::from_toml("[[apps]]\nname = \"x\"\npermissions = [\"admin\"]\n").is_err());
    }

    #[test]
    fn subscription_keys_set_the_b2bua_limits() {
        let cfg = Config::from_toml(
            "[subscriptions]\nmin_expires = 30\nmax_expires = 120\nmax_per_watcher = 3\n\
             max_total = 10\ncoalesce_ms = 100\n",
        )
        .unwrap();
        let b = cfg.subscriptions.to_b2bua();
        assert_eq!((b.min_expires, b.max_expires), (30, 120));
        assert_eq!(b.default_expires, 120, "kept within the bounds");
        assert_eq!((b.max_per_watcher, b.max_total), (3, 10));
        assert_eq!(b.coalesce, std::time::Duration::from_millis(100));
        assert_eq!(
            Config::default().subscriptions.to_b2bua(),
            tapir_b2bua::subscription::SubscriptionConfig::default()
        );
        let odd = Config::from_toml("[subscriptions]\nmin_expires = 0\nmax_expires = 0\n")
            .unwrap()
            .subscriptions
            .to_b2bua();
        assert_eq!((odd.min_expires, odd.max_expires), (1, 1));
        assert!(Config::from_toml("[subscriptions]\nmax_watchers = 3\n").is_err());
    }

    #[test]
    fn lockout_keys_make_the_policy() {
        let cfg = Config::from_toml(
            "[sip]\nlockout_user_failures = 3\nlockout_exempt = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let policy = cfg.sip.lockout_policy().unwrap();
        assert_eq!(policy.max_user_failures, 3);
        assert_eq!(policy.max_source_failures, 30);
        assert!(policy.is_exempt("10.1.2.3".parse().unwrap()));
        assert!(policy.is_exempt("::1".parse().unwrap()));
        assert!(!policy.is_exempt("192.0.2.1".parse().unwrap()));
        let defaults = Config::default().sip.lockout_policy().unwrap();
        assert_eq!(defaults, tapir_sip::auth::LockoutPolicy::default());
        let bad = Config::from_toml("[sip]\nlockout_exempt = [\"office\"]\n").unwrap();
        assert!(bad.sip.lockout_policy().is_err());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn secrets_persist_across_restarts() {
        let dir = std::env::temp_dir().join(format!("tapir-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut a = Config::embedded_default();
        a.data_dir = dir.clone();
        let generated = a.fill_secrets().unwrap();
        assert_eq!(generated.len(), 12);
        let mut b = Config::embedded_default();
        b.data_dir = dir.clone();
        assert!(b.fill_secrets().unwrap().is_empty());
        assert_eq!(a, b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_store_defaults_to_sqlite_in_the_data_dir() {
        let cfg =
            Config::from_toml("data_dir = \"/var/lib/tapir\"\n[store]\njournal_retention = 5\n")
                .unwrap();
        assert_eq!(cfg.store_url(), "sqlite:///var/lib/tapir/tapir.db");
        assert_eq!(cfg.store.journal_retention, Some(5));
        let cfg = Config::from_toml("[store]\nurl = \"postgres://u@h/db\"\n[[trunks]]\nname = \"c\"\nhost = \"127.0.0.1\"\n").unwrap();
        assert_eq!(cfg.store_url(), "postgres://u@h/db");
        assert_eq!(cfg.trunks[0].port, 5060);
    }
}
