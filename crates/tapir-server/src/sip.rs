//! Sets SIP and media up for the loop ([`crate::actor`]): binds the sockets
//! of `[sip] listen`, starts the media engine and builds the B2BUA
//! ([`start`] gives them as [`SipParts`]); the [`MediaPlane`] applies the
//! B2BUA's media work to the engine, and [`media_input`] turns what the
//! engine hears into the switch's inputs; a leg's media
//! closes through the [`QualityBook`], which keeps its final RTCP figures
//! for the call's CDR and the metrics. It also resolves
//! the configured trunks into the B2BUA's [`TrunkTable`] ([`trunk_bindings`]).
//! No SIP or telephony rule lives here.

use crate::config::{Config, MediaSettings};
use crate::quality::QualityBook;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tapir_b2bua::directory::{RegistrationTable, SipDirectory, TrunkBinding, TrunkTable};
use tapir_b2bua::{B2bua, MediaCommand, MediaPorts, SipTransport, TrunkRoute};
use tapir_core::{Input, LegEvent, LegId, MediaSource, ReleaseCause, Tone};
use tapir_media::engine::{MediaConfig, MediaEngine, MediaEvent, MediaEvents, Source};
use tapir_media::sdp::Direction as MediaDirection;
use tapir_media::tone::ToneKind;
use tapir_sip::auth::Algorithm;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

/// The prompts of `config`: `<data_dir>/prompts/<name>.wav`, then the
/// built-in ones (route point calls play them, see `POST /v1/calls/{call}/play`).
pub fn prompt_catalog(config: &Config) -> tapir_media::prompt::PromptCatalog {
    tapir_media::prompt::PromptCatalog::new(config.data_dir.join("prompts"))
}

/// The running SIP side.
#[derive(Debug)]
pub struct SipRunning {
    /// The address the SIP UDP socket is bound to.
    pub addr: SocketAddr,
    /// The address SIP over TCP listens on, when configured.
    pub tcp_addr: Option<SocketAddr>,
    /// The address SIP over TLS listens on, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// With `[cluster]`: the addresses this node serves, which the cluster
    /// driver keeps (the registrar and new requests are held to them).
    pub served: Option<tapir_b2bua::directory::ServedTable>,
}

/// What the loop runs SIP with: the bound sockets, the B2BUA and the media
/// plane.
pub struct SipParts {
    /// The B2BUA.
    pub b2b: B2bua,
    /// The SIP UDP socket.
    pub udp: UdpSocket,
    /// SIP over TCP, when served.
    pub tcp: Option<TcpListener>,
    /// SIP over TLS (listener and acceptor), when served.
    pub tls: Option<(TcpListener, TlsAcceptor)>,
    /// The media engine and what the B2BUA's media work needs.
    pub media: MediaPlane,
    /// What the media engine reports.
    pub media_events: MediaEvents,
    /// The process's file descriptors against their limit (admission
    /// control; the SIP acceptors keep its margin free too).
    pub fds: Arc<crate::admission::FdGauge>,
    /// The bounds on SIP's TCP and TLS connections.
    pub stream_limits: crate::transport::StreamLimits,
}

impl std::fmt::Debug for SipParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipParts").finish_non_exhaustive()
    }
}

/// The media engine, as the loop applies the B2BUA's media work to it.
pub struct MediaPlane {
    engine: Arc<MediaEngine>,
    quality: Arc<QualityBook>,
    prompts: tapir_media::prompt::PromptCatalog,
    /// How many legs the RTP port range serves (`None`: no range).
    rtp_pairs: Option<usize>,
}

impl MediaPlane {
    /// Free RTP port pairs in the configured range (`None`: no range, the
    /// system picks ports).
    pub fn free_rtp_ports(&self) -> Option<usize> {
        self.rtp_pairs
            .map(|pairs| pairs.saturating_sub(self.engine.leg_count()))
    }

    /// The engine (apps' media streams tap it).
    pub fn engine(&self) -> Arc<MediaEngine> {
        self.engine.clone()
    }

    /// Apply one of the B2BUA's media commands (see [`apply_media`]). The
    /// engine's calls take a short lock and never wait.
    pub fn apply(&self, command: MediaCommand) {
        apply_media(&self.engine, &self.quality, &self.prompts, command);
    }
}

/// The switch's input for what the media engine reports, if it has one.
pub fn media_input(event: MediaEvent) -> Option<Input> {
    match event {
        MediaEvent::DigitsReceived { leg, digits } => Some(Input::Leg {
            leg: LegId(leg.0),
            event: LegEvent::Digits(digits),
        }),
        MediaEvent::PromptDone { leg, play } => Some(Input::Leg {
            leg: LegId(leg.0),
            event: LegEvent::PromptDone(play),
        }),
        MediaEvent::ToneDetected { leg, tone } => Some(Input::Leg {
            leg: LegId(leg.0),
            event: LegEvent::ToneDetected(tapir_core::mediaops::ToneWatch {
                frequencies: tone.frequencies,
                duration_ms: tone.duration_ms,
            }),
        }),
        MediaEvent::FaxDetected { leg } => Some(Input::Leg {
            leg: LegId(leg.0),
            event: LegEvent::MediaDetected(tapir_core::MediaMode::G3Fax),
        }),
        MediaEvent::RtpTimeout { leg } => Some(Input::Leg {
            leg: LegId(leg.0),
            event: LegEvent::Lost(ReleaseCause::RtpTimeout),
        }),
    }
}

/// Why SIP could not start.
#[derive(Debug, thiserror::Error)]
pub enum SipStartError {
    /// A `[sip] listen` entry is not `udp:HOST:PORT`, `tcp:…` or `tls:…`.
    #[error("bad [sip] listen entry '{0}': expected udp:, tcp: or tls:HOST:PORT")]
    Listen(String),
    /// The socket could not be bound.
    #[error("cannot bind SIP on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The TLS certificate could not be made or loaded.
    #[error("SIP over TLS: {0}")]
    Tls(String),
    /// A digest algorithm name is unknown.
    #[error("unknown digest algorithm '{0}' in [sip] digest_algorithms (SHA-256 or MD5)")]
    Algorithm(String),
    /// The media engine could not start.
    #[error("cannot start the media engine: {0}")]
    Media(String),
    /// The digest lock-out settings are not valid.
    #[error("{0}")]
    Lockout(String),
}

/// The UDP, TCP and TLS addresses of `[sip] listen`.
fn listen_addresses(config: &Config) -> Result<Listen, SipStartError> {
    let mut udp = None;
    let mut tcp = None;
    let mut tls = None;
    for entry in &config.sip.listen {
        let parse = |addr: &str| {
            addr.parse::<SocketAddr>()
                .map_err(|_| SipStartError::Listen(entry.clone()))
        };
        match entry.split_once(':') {
            Some(("udp", addr)) => udp = udp.or(Some(parse(addr)?)),
            Some(("tcp", addr)) => tcp = tcp.or(Some(parse(addr)?)),
            Some(("tls", addr)) => tls = tls.or(Some(parse(addr)?)),
            _ => return Err(SipStartError::Listen(entry.clone())),
        }
    }
    Ok((udp, tcp, tls))
}

/// `[sip] listen`: UDP, TCP and TLS addresses.
type Listen = (Option<SocketAddr>, Option<SocketAddr>, Option<SocketAddr>);

/// The TLS certificate of `data_dir/tls/` (DER files), generated self-signed
/// for 127.0.0.1 and localhost at first start.
fn tls_acceptor(data_dir: &Path) -> Result<TlsAcceptor, SipStartError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    let tls_err = |e: &dyn std::fmt::Display| SipStartError::Tls(e.to_string());
    if !cert_path.exists() || !key_path.exists() {
        let generated = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| tls_err(&e))?;
        // Created owner-only, so that a first start has nothing to tighten
        // (and no warning to give) in `keep_private` below.
        let mut new_dir = std::fs::DirBuilder::new();
        new_dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut new_dir, 0o700);
        new_dir.create(&dir).map_err(|e| tls_err(&e))?;
        std::fs::write(&cert_path, generated.cert.der()).map_err(|e| tls_err(&e))?;
        write_private_key(&key_path, &generated.key_pair.serialize_der())
            .map_err(|e| tls_err(&e))?;
        tracing::info!(path = %cert_path.display(), "generated a self-signed SIP TLS certificate");
    }
    keep_private(&dir, &key_path).map_err(|e| tls_err(&e))?;
    let cert = std::fs::read(&cert_path).map_err(|e| tls_err(&e))?;
    let key = std::fs::read(&key_path).map_err(|e| tls_err(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| tls_err(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Writes a private key readable by its owner only: created with mode
/// 0600 (never world-readable, not even for a moment), then filled.
fn write_private_key(path: &Path, der: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(der)?;
    file.sync_all()
}

/// The TLS directory 0700 and the key 0600, also for files an older tapir
/// wrote world-readable (fixed at every start, with a warning).
fn keep_private(dir: &Path, key: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(dir, 0o700), (key, 0o600)] {
            let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if current & !mode != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{current:o}"), "TLS key material was readable by others: restricting it");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, key);
    Ok(())
}

/// The trunks of the configuration bound to their trunk lines, each
/// carrier's host resolved now (once: at start, and again whenever the
/// operator changes trunks or lines). A trunk belongs to the trunk line
/// whose address its `address` names, else to the one whose address is its
/// name. A trunk with no such line, or whose host does not resolve, is
/// left out with a warning (calls cannot use it).
pub async fn trunk_bindings(
    trunks: &[crate::config::TrunkEntry],
    lines: &[(tapir_core::LineId, crate::config::LineEntry)],
) -> Vec<TrunkBinding> {
    let mut out = Vec::new();
    for t in trunks {
        let wanted = t.address.as_deref().unwrap_or(&t.name);
        let Some((line, entry)) = lines.iter().find(|(_, e)| {
            e.kind == tapir_core::LineKind::Trunk && e.addresses().iter().any(|a| a == wanted)
        }) else {
            tracing::warn!(trunk = %t.name, address = %wanted, "trunk not used: no trunk line has this address");
            continue;
        };
        // An IPv4 address when the name has one (`localhost` may list ::1
        // first, while SIP listens on IPv4 addresses in practice).
        let resolved = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .ok()
            .and_then(|addrs| {
                let all: Vec<SocketAddr> = addrs.collect();
                all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
            });
        let Some(addr) = resolved else {
            tracing::warn!(trunk = %t.name, host = %t.host, "trunk not used: its host does not resolve");
            continue;
        };
        let transport = match t.transport {
            crate::config::TrunkTransport::Udp => SipTransport::Udp,
            crate::config::TrunkTransport::Tcp => SipTransport::Tcp,
            crate::config::TrunkTransport::Tls => SipTransport::Tls,
        };
        let credentials = match (&t.username, &t.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        tracing::info!(trunk = %t.name, line = %entry.address, %addr, "trunk bound");
        out.push(TrunkBinding {
            line: *line,
            address: entry.address.clone(),
            route: TrunkRoute {
                addr,
                host: t.host.clone(),
                transport,
                credentials,
            },
        });
    }
    out
}

/// RTP endpoints from the media engine.
struct EnginePorts {
    engine: Arc<MediaEngine>,
}

impl MediaPorts for EnginePorts {
    fn open(&mut self, leg: LegId) -> Option<SocketAddr> {
        let id = tapir_media::engine::LegId(leg.0);
        if let Some(addr) = self.engine.local_addr(id) {
            return Some(addr);
        }
        match self.engine.allocate(id) {
            Ok(addr) => Some(addr),
            Err(e) => {
                tracing::error!(%leg, error = %e, "no RTP port for the leg");
                None
            }
        }
    }
}

/// Bind SIP's sockets (when `[sip] listen` names a UDP address), start the
/// media engine and build the B2BUA, for the loop to run;
/// the registrar publishes phones' registrations into `registrations` and
/// authenticates phones with the passwords of `credentials` and judges
/// their subscriptions by `watch` (publishing them into `subscriptions`);
/// calls to and
/// from trunks use the carriers of `trunks`; `quality` reads the media
/// engine's figures and gets each leg's final ones when its media closes.
pub async fn start(
    config: &Config,
    registrations: RegistrationTable,
    credentials: tapir_b2bua::directory::CredentialTable,
    trunks: TrunkTable,
    watch: tapir_b2bua::directory::WatchTable,
    subscriptions: tapir_b2bua::subscription::SubscriptionTable,
    quality: Arc<QualityBook>,
) -> Result<Option<(SipRunning, SipParts)>, SipStartError> {
    let (Some(listen), tcp_listen, tls_listen) = listen_addresses(config)? else {
        return Ok(None);
    };
    let socket = UdpSocket::bind(listen)
        .await
        .map_err(|e| SipStartError::Bind(listen, e))?;
    let addr = socket
        .local_addr()
        .map_err(|e| SipStartError::Bind(listen, e))?;
    let tcp = match tcp_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| SipStartError::Bind(at, e))?,
        ),
        None => None,
    };
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let tls = match tls_listen {
        Some(at) => {
            let acceptor = tls_acceptor(&config.data_dir)?;
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| SipStartError::Bind(at, e))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
    let (engine, media_events) = MediaEngine::new(MediaConfig {
        bind_ip: addr.ip(),
        port_range: config.media.rtp_ports(),
        rtp_timeout: MediaSettings::timeout(config.media.rtp_timeout),
        rtp_hold_timeout: MediaSettings::timeout(config.media.rtp_hold_timeout),
        ..MediaConfig::default()
    })
    .map_err(|e| SipStartError::Media(e.to_string()))?;
    let engine = Arc::new(engine);
    quality.attach(engine.clone());
    let mut algorithms = Vec::new();
    for name in &config.sip.digest_algorithms {
        match Algorithm::from_token(name) {
            Some(a) => algorithms.push(a),
            None => return Err(SipStartError::Algorithm(name.clone())),
        }
    }
    let directory = SipDirectory::new(
        Instant::now(),
        &config.sip.domain,
        HashMap::new(),
        algorithms,
    )
    .with_registration_table(registrations)
    .with_credential_table(credentials)
    .with_trunk_table(trunks)
    .with_watch_table(watch)
    .with_lockout_policy(
        config
            .sip
            .lockout_policy()
            .map_err(|e| SipStartError::Lockout(e.to_string()))?,
    );
    // A cluster member serves only the lines whose lease it holds.
    let served = config
        .cluster
        .as_ref()
        .map(|_| tapir_b2bua::directory::ServedTable::none_yet());
    let directory = match &served {
        Some(table) => directory.with_served_table(table.clone()),
        None => directory,
    };
    // A cluster member believes its edge about where requests came from.
    let directory = match config.cluster.as_ref().and_then(|c| c.edge.as_deref()) {
        Some(edge) => match edge.parse::<SocketAddr>() {
            Ok(edge) => directory.with_trusted_edge(edge),
            Err(_) => {
                tracing::warn!(%edge, "[cluster] edge is not ip:port: its X-Tapir-Source is not believed");
                directory
            }
        },
        None => directory,
    };
    // Calls between nodes go through the edge, marked with the secret.
    let directory = match config.cluster.as_ref().map(|c| c.node_mark()) {
        Some(Ok(Some(mark))) => directory.with_node_mark(mark),
        Some(Ok(None)) => {
            tracing::warn!("[cluster] without a secret: calls between nodes are not possible");
            directory
        }
        Some(Err(e)) => {
            tracing::warn!("{e}");
            directory
        }
        None => directory,
    };
    let ports = EnginePorts {
        engine: engine.clone(),
    };
    let fds = crate::admission::FdGauge::new(config.sip.admission_margin_fds);
    // By default the descriptors bound the dialogs: a dialog with media
    // holds two, so the descriptor margin is reached at about half this
    // many, and the other half leaves room for ended dialogs that linger
    // (without sockets) until their transactions finish.
    let max_dialogs = config
        .sip
        .max_dialogs
        .unwrap_or_else(|| fds.limit().map_or(100_000, |limit| limit.max(1)));
    let retry_after = std::time::Duration::from_secs(config.sip.retry_after.max(1));
    let mut b2b = B2bua::new(
        tapir_b2bua::Config {
            tls: tls_addr,
            max_dialogs,
            retry_after,
            session_timer: tapir_b2bua::session_timer::SessionTimerConfig {
                expires: config.sip.session_expires,
                min_se: config.sip.min_se,
            },
            subscriptions: config.subscriptions.to_b2bua(),
            ..tapir_b2bua::Config::new(addr, config.sip.domain.clone())
        },
        Box::new(directory),
        Box::new(ports),
    );
    b2b.publish_subscriptions_to(subscriptions);
    b2b.admission_mut()
        .set_config(tapir_b2bua::admission::AdmissionConfig {
            max_dialogs,
            margin_fds: config.sip.admission_margin_fds,
            margin_rtp_ports: config.sip.admission_margin_rtp_ports,
            retry_after,
        });
    tracing::info!(
        max_dialogs,
        margin_fds = config.sip.admission_margin_fds,
        fd_limit = ?fds.limit(),
        rtp_ports = ?config.media.rtp_ports(),
        "admission control"
    );
    let parts = SipParts {
        b2b,
        udp: socket,
        tcp,
        tls,
        media: MediaPlane {
            engine,
            quality,
            prompts: prompt_catalog(config),
            rtp_pairs: config.media.rtp_port_pairs(),
        },
        media_events,
        fds,
        stream_limits: crate::transport::StreamLimits::of(&config.sip),
    };
    tracing::info!(%addr, ?tcp_addr, ?tls_addr, "SIP listening");
    Ok(Some((
        SipRunning {
            addr,
            tcp_addr,
            tls_addr,
            served,
        },
        parts,
    )))
}

/// Carry one of the B2BUA's media commands to the engine; a prompt is read
/// from `prompts` (a prompt that cannot be read plays as an empty one, which
/// ends at once and is reported done); a leg closes through `quality`.
fn apply_media(
    engine: &MediaEngine,
    quality: &QualityBook,
    prompts: &tapir_media::prompt::PromptCatalog,
    command: MediaCommand,
) {
    let result = match command {
        // The offer/answer outcome: SRTP keys first (a secured leg never
        // goes back to plain RTP: the engine refuses), then the far end's
        // address, codec, telephone-event and tapir's direction.
        MediaCommand::Remote { leg, negotiated } => {
            engine.apply(tapir_media::engine::LegId(leg.0), &negotiated)
        }
        MediaCommand::Source {
            leg,
            source: MediaSource::Prompt(p),
        } => {
            let samples = prompts.load(&p.name).unwrap_or_else(|e| {
                tracing::warn!(prompt = %p.name, "prompt not played: {e}");
                Arc::from(Vec::new())
            });
            engine.play_prompt(
                tapir_media::engine::LegId(leg.0),
                p.play,
                samples,
                p.looping,
            )
        }
        MediaCommand::Source { leg, source } => {
            let source = match source {
                MediaSource::Silence => Source::Silence,
                MediaSource::Bridge(b) => Source::Bridge(b.0),
                MediaSource::Tone(t) => Source::Tone(match t {
                    Tone::Dialtone => ToneKind::Dialtone,
                    Tone::Ringback => ToneKind::Ringback,
                    Tone::Busy => ToneKind::Busy,
                    Tone::Reorder => ToneKind::Reorder,
                    Tone::SitIntercept => ToneKind::SitIntercept,
                    Tone::SitNoCircuit => ToneKind::SitNoCircuit,
                    Tone::HoldMusic => ToneKind::HoldMusic,
                }),
                MediaSource::Prompt(_) => Source::Silence,
            };
            engine.set_source(tapir_media::engine::LegId(leg.0), source)
        }
        MediaCommand::Direction {
            leg,
            sends,
            receives,
        } => engine.set_direction(
            tapir_media::engine::LegId(leg.0),
            match (sends, receives) {
                (true, true) => MediaDirection::SendRecv,
                (true, false) => MediaDirection::SendOnly,
                (false, true) => MediaDirection::RecvOnly,
                (false, false) => MediaDirection::Inactive,
            },
        ),
        MediaCommand::Digits { leg, digits } => engine
            .send_digits(tapir_media::engine::LegId(leg.0), &digits)
            .map(|_| ()),
        // Bounded by the switch (tapir_core::mediaops): a few frequencies,
        // at most 10 s.
        MediaCommand::Tone { leg, plan } => engine.generate_tone(
            tapir_media::engine::LegId(leg.0),
            &tapir_media::tone::render_tone(
                &plan.frequencies,
                plan.on_ms,
                plan.off_ms,
                plan.duration_ms,
            ),
        ),
        MediaCommand::Detect { leg, tones, fax } => engine.detect(
            tapir_media::engine::LegId(leg.0),
            tones
                .into_iter()
                .map(|t| tapir_media::detect::ToneSpec {
                    frequencies: t.frequencies,
                    duration_ms: t.duration_ms,
                })
                .collect(),
            fax,
        ),
        MediaCommand::Close { leg } => {
            quality.close(leg);
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "media command not applied");
    }
}
