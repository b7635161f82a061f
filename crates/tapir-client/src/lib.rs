//! # tapir-client — a typed client of the tapir API
//!
//! The HTTP API of `shared/API.md` and its WebSocket event stream, as TAPI 3
//! style objects:
//!
//! * [`Client`]: one server and one token; lists [`Line`]s and [`Call`]s,
//!   makes calls, translates addresses, and opens the [`EventStream`];
//! * [`Line`] (`lineOpen` / `lineClose`), [`Address`] (forwarding, pickup,
//!   unpark, `CreateCall`), [`Call`] (every call operation);
//! * [`Admin`]: the operator endpoints (`/v1/admin/*`, admin token);
//! * [`ClientError`]: TAPI's error code and sentence, or the transport's error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tapir_client::ClientError> {
//! use tapir_client::{Client, Privilege};
//! let client = Client::connect("http://127.0.0.1:8080", "app_…").await?;
//! let mut lines = client.lines().await?;
//! lines[0].open(&[Privilege::Owner], &[]).await?;
//! let mut call = client.address("1001").create_call("1002").await?;
//! call.hold(true).await?;
//! call.drop().await?;
//! # Ok(()) }
//! ```
//!
//! The crate mirrors the server's JSON in [`wire`] and does not depend on
//! the server.

mod admin;
mod call;
mod error;
mod events;
mod line;
mod media;
mod recordings;
mod tapi_media;
mod webhooks;
pub mod wire;

pub use admin::Admin;
pub use call::{Call, Completion, Conference};
pub use error::{ClientError, Result};
pub use events::{EventStream, EventsOptions};
pub use line::{Address, Line};
pub use media::{MediaFormat, MediaMessage, MediaStream};
pub use recordings::{RecordAction, RecordChannels, Recording};
pub use tapi_media::{Gather, Monitor, ToneWatch};
pub use wire::{
    AddressStatus, AdminApp, AdminLine, AdminTrunk, CallInfo, CallList, CallOrigin, CallReason,
    CallState, CallingCard, Cdr, CdrLegQuality, CdrQuery, CompletionMode, ErrorDetail, Event,
    EventKind, ForwardRule, Forwarding, HandoffTarget, LineForwarding, LineInfo, LineKind,
    Location, Locations, MakeCall, MediaMode, ParkSettings, PickupGroup, PickupTarget, Privilege,
    TransferMode, TranslateRequest, Translation, Webhook, WebhookRequest,
};

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The response header naming the switch request of a command (`req-N`).
pub const REQUEST_HEADER: &str = "tapir-request";

/// A connection to one tapir server with one token (an app's, or the
/// operator's for [`Client::admin`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
}

/// Builds a [`Client`] with more than a URL and a token.
#[derive(Debug)]
pub struct ClientBuilder {
    base: String,
    token: Option<String>,
    timeout: Duration,
    roots: Vec<Vec<u8>>,
}

impl ClientBuilder {
    /// The bearer token (an app's, or the operator's).
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.token = Some(token.into());
        self
    }

    /// How long one HTTP request may take (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// Trust this PEM certificate for `https://` and `wss://` besides the
    /// public roots (a server behind a TLS proxy with its own CA).
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.roots.push(pem.into());
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(&self.base)
            .map_err(|e| ClientError::Invalid(format!("server URL {:?}: {e}", self.base)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Invalid(format!(
                "server URL {:?} is not an http:// or https:// URL",
                self.base
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tapir-client/", env!("CARGO_PKG_VERSION")));
        let mut store = rustls::RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in &self.roots {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Invalid(format!("root certificate: {e}")))?;
            http = http.add_root_certificate(cert);
            for der in pem_certificates(pem)? {
                store
                    .add(der)
                    .map_err(|e| ClientError::Invalid(format!("root certificate: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Invalid(format!("TLS: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        let http = http.build()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: self.token,
                tls: Arc::new(tls),
            }),
        })
    }
}

/// The DER certificates of a PEM text.
fn pem_certificates(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Invalid(format!("root certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Invalid(
            "root certificate: no CERTIFICATE block in the PEM text".into(),
        ));
    }
    Ok(certs)
}

/// A response of the server: its status, JSON body (none for 204) and
/// `tapir-request` header.
#[derive(Debug)]
pub(crate) struct Answer {
    pub body: Option<Value>,
}

impl Answer {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(self) -> Result<T> {
        let body = self
            .body
            .ok_or_else(|| ClientError::Protocol("an empty answer where a body was due".into()))?;
        serde_json::from_value(body).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

impl Client {
    /// A builder for `base_url` (`http://127.0.0.1:8080`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            token: None,
            timeout: Duration::from_secs(30),
            roots: Vec::new(),
        }
    }

    /// A client of `base_url` with `token`; sends nothing yet.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).token(token).build()
    }

    /// A client of `base_url` with `token`, after checking that the server
    /// answers (`GET /healthz`).
    pub async fn connect(base_url: impl Into<String>, token: impl Into<String>) -> Result<Client> {
        let client = Client::new(base_url, token)?;
        client.health().await?;
        Ok(client)
    }

    /// The server's URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// `GET /healthz`: Ok while the switch answers.
    pub async fn health(&self) -> Result<()> {
        self.request(Method::GET, &["healthz"], None::<&()>, None::<&()>)
            .await
            .map(|_| ())
    }

    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// One request; a non-2xx answer becomes [`ClientError::Api`].
    pub(crate) async fn request<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<Answer> {
        let mut rb = self.inner.http.request(method, self.url(segments));
        if let Some(t) = &self.inner.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(q) = query {
            rb = rb.query(q);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await?;
        let status = resp.status();
        let request = resp
            .headers()
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await?;
        if status.is_success() {
            let body = if bytes.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(serde_json::from_slice(&bytes).map_err(|e| {
                    ClientError::Protocol(format!("{status}: the body is not JSON: {e}"))
                })?)
            };
            return Ok(Answer { body });
        }
        Err(api_error(status.as_u16(), &bytes, request))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.request(Method::GET, segments, None::<&()>, None::<&()>)
            .await?
            .json()
    }

    pub(crate) async fn post(&self, segments: &[&str], body: &impl Serialize) -> Result<Answer> {
        self.request(Method::POST, segments, None::<&()>, Some(body))
            .await
    }

    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> Result<T> {
        self.request(Method::PUT, segments, None::<&()>, Some(body))
            .await?
            .json()
    }

    pub(crate) async fn delete(&self, segments: &[&str]) -> Result<()> {
        self.request(Method::DELETE, segments, None::<&()>, None::<&()>)
            .await
            .map(|_| ())
    }

    /// The lines this app may open (`lineGetDevCaps`).
    pub async fn lines(&self) -> Result<Vec<Line>> {
        let infos: Vec<LineInfo> = self.get(&["v1", "lines"]).await?;
        Ok(infos
            .into_iter()
            .map(|info| Line::new(self.clone(), info))
            .collect())
    }

    /// The line with this id (`line-3`) or address, among [`Client::lines`].
    pub async fn line(&self, id_or_address: &str) -> Result<Line> {
        self.lines()
            .await?
            .into_iter()
            .find(|l| {
                l.id() == id_or_address
                    || l.info().addresses.iter().any(|a| a == id_or_address)
                    || l.address() == id_or_address
            })
            .ok_or_else(|| ClientError::Api {
                status: 404,
                code: "invallinehandle".into(),
                message: format!("this app has no line {id_or_address:?}"),
                request: None,
            })
    }

    /// An address (directory number); sends nothing.
    pub fn address(&self, address: impl Into<String>) -> Address {
        Address::new(self.clone(), address.into())
    }

    /// Every call this app has a handle to, and the event `seq` they match.
    pub async fn calls(&self) -> Result<(u64, Vec<Call>)> {
        let list: CallList = self.get(&["v1", "calls"]).await?;
        Ok((
            list.seq,
            list.calls
                .into_iter()
                .map(|info| Call::new(self.clone(), info))
                .collect(),
        ))
    }

    /// The call with this id (`lineGetCallInfo`).
    pub async fn call(&self, id: &str) -> Result<Call> {
        let info: CallInfo = self.get(&["v1", "calls", id]).await?;
        Ok(Call::new(self.clone(), info))
    }

    /// `lineMakeCall`: a call from an address (to a destination, or at dial
    /// tone without one).
    pub async fn make_call(&self, request: &MakeCall) -> Result<Call> {
        let info: CallInfo = self.post(&["v1", "calls"], request).await?.json()?;
        Ok(Call::new(self.clone(), info))
    }

    /// `lineUncompleteCall`: cancel a completion request.
    pub async fn uncomplete(&self, completion_id: &str) -> Result<()> {
        self.delete(&["v1", "completions", completion_id]).await
    }

    /// `lineTranslateAddress` from the current location.
    pub async fn translate(&self, address: &str) -> Result<Translation> {
        self.translate_with(&TranslateRequest {
            address: address.into(),
            ..TranslateRequest::default()
        })
        .await
    }

    /// `lineTranslateAddress` with a location, card and options.
    pub async fn translate_with(&self, request: &TranslateRequest) -> Result<Translation> {
        self.post(&["v1", "translate"], request).await?.json()
    }

    /// The locations and the current one.
    pub async fn locations(&self) -> Result<Locations> {
        self.get(&["v1", "locations"]).await
    }

    /// Replace the locations; returns what is now in force.
    pub async fn set_locations(&self, locations: &Locations) -> Result<Locations> {
        self.put(&["v1", "locations"], locations).await
    }

    /// The calling cards (PINs are never returned).
    pub async fn cards(&self) -> Result<Vec<CallingCard>> {
        let c: wire::Cards = self.get(&["v1", "cards"]).await?;
        Ok(c.cards)
    }

    /// Replace the calling cards; returns what is now in force.
    pub async fn set_cards(&self, cards: &[CallingCard]) -> Result<Vec<CallingCard>> {
        let c: wire::Cards = self
            .put(
                &["v1", "cards"],
                &wire::Cards {
                    cards: cards.to_vec(),
                },
            )
            .await?;
        Ok(c.cards)
    }

    /// This app's events after `since`, then live; reconnects by itself and
    /// resumes after the last event it delivered.
    pub fn events(&self, since: u64) -> EventStream {
        EventStream::start(self.clone(), since, EventsOptions::default())
    }

    /// [`Client::events`] with options.
    pub fn events_with(&self, since: u64, options: EventsOptions) -> EventStream {
        EventStream::start(self.clone(), since, options)
    }

    /// The audio of `call` (`GET /v1/calls/{call}/media`): 20 ms frames
    /// at `rate` (8000 or 16000) of what its address hears and, with
    /// `both`, what it says; an owner may send audio back. Refusals (an
    /// unknown rate, a call this app has no handle to, a call without
    /// media) are [`ClientError::Api`].
    pub async fn media(&self, call: &str, rate: u32, both: bool) -> Result<MediaStream> {
        media::open(self, call, rate, both).await
    }

    /// The operator endpoints (needs the admin token).
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    pub(crate) fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.inner.tls.clone()
    }
}

/// The [`ClientError::Api`] of an error answer (the API's error body, or a
/// sentence built from the status when the body is not one).
pub(crate) fn api_error(status: u16, body: &[u8], request: Option<String>) -> ClientError {
    match serde_json::from_slice::<wire::ErrorBody>(body) {
        Ok(b) => ClientError::Api {
            status,
            code: b.error.code,
            message: b.error.message,
            request,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let code = match status {
                401 => "unauthorized",
                403 => "noprivilege",
                503 => "resourceunavail",
                _ => "operationfailed",
            };
            ClientError::Api {
                status,
                code: code.into(),
                message: format!("HTTP {status}: {}", text.trim()),
                request,
            }
        }
    }
}
