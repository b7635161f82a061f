//! SIP dialogs (RFC 3261 §12), sans-IO.
//!
//! This module owns dialog state: the identifiers (Call-ID, local and
//! remote tag), the local and remote CSeq, the remote target and the route
//! set; creating a dialog from a 1xx-with-tag or 2xx (UAC) or from a
//! dialog-creating request (UAS); building in-dialog requests (BYE,
//! re-INVITE, ACK for 2xx, INFO, REFER, NOTIFY, UPDATE, …) with the right
//! Request-URI, Route set and CSeq (§12.2.1.1, loose and strict routers);
//! matching incoming in-dialog requests, with 481 when nothing matches and
//! 500 for a CSeq that is not above the peer's last one (§12.2.2); target refresh on
//! re-INVITE and UPDATE; and finding the dialog a `Replaces` header names
//! (RFC 3891).
//!
//! Dialogs never send anything: the caller adds the requests they build to
//! a client transaction (with a Via of its own transport) and the
//! responses they return to the server transaction.

use std::collections::HashMap;

use crate::msg::{HeaderName, Message, MessageBuilder, Method, NameAddr, StartLine, Uri};

/// A fresh tag for From or To: 128 bits from a CSPRNG, 32 hex digits.
pub fn new_tag() -> String {
    crate::auth::random_tag()
}

/// A fresh RFC 3261 branch: the `z9hG4bK` magic cookie and 128 bits from a
/// CSPRNG (32 hex digits).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", crate::auth::random_tag())
}

/// A fresh Call-ID at `host`: 128 bits from a CSPRNG (32 hex digits), so
/// that nobody can guess another call's Call-ID from one they saw.
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", crate::auth::random_tag())
}

/// Which side of the dialog we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogRole {
    /// We sent the request that created the dialog.
    Uac,
    /// We received it.
    Uas,
}

/// Where a dialog is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended (BYE, a final error to the INVITE, 481/408 to a request).
    Terminated,
}

/// The identity of a dialog, from our side (§12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Why a dialog could not be created or a request built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header the dialog needs does not parse.
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    /// The From (UAS) or To (UAC) header has no tag.
    #[error("the {0} header has no tag")]
    MissingTag(&'static str),
    /// The response does not create a dialog (100, or a final error).
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(u16),
    /// The message is a response where a request was expected, or the
    /// other way round.
    #[error("expected a {0}")]
    WrongKind(&'static str),
}

/// Why [`Dialog::check_remote_cseq`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CseqError {
    /// The CSeq header is missing or does not parse (400).
    #[error("malformed CSeq header")]
    Malformed,
    /// The number is not above the last one the peer used (500).
    #[error("CSeq {number} is not above the peer's last one, {last}")]
    OutOfOrder {
        /// The request's CSeq number.
        number: u32,
        /// The last CSeq number the peer used in the dialog.
        last: u32,
    },
}

impl CseqError {
    /// The status code to answer with: 400, or 500 as RFC 3261 §12.2.2 says.
    pub fn status_code(self) -> u16 {
        match self {
            CseqError::Malformed => 400,
            CseqError::OutOfOrder { .. } => 500,
        }
    }
}

/// Why a `Replaces` header (RFC 3891 §3) cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplacesError {
    /// The header does not parse or lacks `to-tag`/`from-tag` (400).
    #[error("malformed Replaces header")]
    Malformed,
    /// No dialog has these identifiers (481).
    #[error("no dialog matches the Replaces header")]
    NoMatch,
    /// The dialog is an early dialog that this side did not initiate (481).
    #[error("the named early dialog was not initiated here")]
    EarlyNotInitiatedHere,
    /// `early-only` was given but the dialog is confirmed (486).
    #[error("the dialog named with early-only is already confirmed")]
    AlreadyConfirmed,
    /// The dialog has ended (603).
    #[error("the named dialog has ended")]
    Terminated,
}

impl ReplacesError {
    /// The status code RFC 3891 §3 gives for this case.
    pub fn status_code(self) -> u16 {
        match self {
            ReplacesError::Malformed => 400,
            ReplacesError::NoMatch | ReplacesError::EarlyNotInitiatedHere => 481,
            ReplacesError::AlreadyConfirmed => 486,
            ReplacesError::Terminated => 603,
        }
    }
}

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    role: DialogRole,
    state: DialogState,
    /// Our From value in the requests we send (with our tag).
    local_header: String,
    /// Our To value in the requests we send (with the peer's tag).
    remote_header: String,
    /// Last CSeq we used; 0 before the first.
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    /// Route values (`<uri>;params`) in the order requests carry them.
    route_set: Vec<String>,
    local_contact: String,
    secure: bool,
}

/// `<uri>;params` of a name-addr, without the display name.
fn route_value(address: &NameAddr<'_>) -> String {
    format!("<{}>{}", address.uri_text, address.params.as_str())
}

fn request_uri_text(message: &Message) -> Option<&str> {
    match message.start_line() {
        StartLine::Request { uri, .. } => Some(uri.as_str()),
        StartLine::Response { .. } => None,
    }
}

fn first_contact_uri(message: &Message) -> Result<Option<String>, DialogError> {
    match message
        .contacts()
        .map_err(|_| DialogError::MalformedHeader("Contact"))?
    {
        Some(crate::msg::Contacts::Addresses(list)) => {
            Ok(list.first().map(|address| address.uri_text.to_owned()))
        }
        Some(crate::msg::Contacts::Wildcard) => Err(DialogError::MalformedHeader("Contact")),
        None => Ok(None),
    }
}

fn call_id_of(message: &Message) -> Result<String, DialogError> {
    message
        .call_id()
        .map_err(|_| DialogError::MalformedHeader("Call-ID"))?
        .map(str::to_owned)
        .ok_or(DialogError::MissingHeader("Call-ID"))
}

fn cseq_of(message: &Message) -> Result<(u32, Method), DialogError> {
    let cseq = message
        .cseq()
        .map_err(|_| DialogError::MalformedHeader("CSeq"))?
        .ok_or(DialogError::MissingHeader("CSeq"))?;
    Ok((cseq.number, Method::from_token(cseq.method)))
}

/// Tag of the From or To header, and the header's value.
fn tagged_header(
    message: &Message,
    name: &HeaderName,
    label: &'static str,
) -> Result<(Option<String>, String), DialogError> {
    let value = message
        .header(name)
        .ok_or(DialogError::MissingHeader(label))?;
    let parsed = NameAddr::parse(value, label).map_err(|_| DialogError::MalformedHeader(label))?;
    Ok((parsed.tag().map(str::to_owned), value.to_owned()))
}

/// The dialog a request addresses from the receiver's side: Call-ID, To
/// tag (ours), From tag (theirs). `None` when the request has no To tag.
fn incoming_id(request: &Message) -> Result<Option<DialogId>, DialogError> {
    let call_id = call_id_of(request)?;
    let (to_tag, _) = tagged_header(request, &HeaderName::To, "To")?;
    let (from_tag, _) = tagged_header(request, &HeaderName::From, "From")?;
    let Some(local_tag) = to_tag else {
        return Ok(None);
    };
    Ok(Some(DialogId {
        call_id,
        local_tag,
        remote_tag: from_tag.unwrap_or_default(),
    }))
}

/// The route set of a dialog whose creating request we received (the
/// UAS side, RFC 3261 §12.1.1): the request's Record-Route values, in
/// order, as `<uri>;params` without display names.
pub fn uas_route_set(request: &Message) -> Result<Vec<String>, DialogError> {
    Ok(request
        .record_routes()
        .map_err(|_| DialogError::MalformedHeader("Record-Route"))?
        .iter()
        .map(route_value)
        .collect())
}

/// The route set of a dialog created by a response to our request (the
/// UAC side, RFC 3261 §12.1.2): the response's Record-Route values in
/// reverse order.
pub fn uac_route_set(response: &Message) -> Result<Vec<String>, DialogError> {
    let mut routes = uas_route_set(response)?;
    routes.reverse();
    Ok(routes)
}

/// The Request-URI and Route values of a request inside a dialog whose
/// peer is at `remote_target` behind `route_set` (RFC 3261 §12.2.1.1).
/// With no route set, the target and no Route. When the first route is a
/// loose router (`lr`), the target stays the Request-URI and the route set
/// becomes the Route headers; a strict router's URI becomes the
/// Request-URI and the target goes last in the Route headers.
pub fn request_target(remote_target: &str, route_set: &[String]) -> (String, Vec<String>) {
    let Some(first) = route_set.first() else {
        return (remote_target.to_owned(), Vec::new());
    };
    let first_parsed = NameAddr::parse(first, "Route").ok();
    let loose = first_parsed
        .as_ref()
        .and_then(|route| route.uri.as_sip().map(|uri| uri.params.has_lr()))
        .unwrap_or(true);
    if loose {
        return (remote_target.to_owned(), route_set.to_vec());
    }
    let request_uri = first_parsed
        .map(|route| route.uri_text.to_owned())
        .unwrap_or_else(|| remote_target.to_owned());
    let mut routes: Vec<String> = route_set.iter().skip(1).cloned().collect();
    routes.push(format!("<{remote_target}>"));
    (request_uri, routes)
}

/// The URI a request inside the dialog is sent to first (RFC 3261 §8.1.2,
/// §12.2.1.1): the first route's URI, loose or strict, else the remote
/// target. Its host and port say where the datagram goes.
pub fn first_hop(remote_target: &str, route_set: &[String]) -> String {
    route_set
        .first()
        .and_then(|first| NameAddr::parse(first, "Route").ok())
        .map(|route| route.uri_text.to_owned())
        .unwrap_or_else(|| remote_target.to_owned())
}

fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

impl Dialog {
    /// The UAC side of a dialog created by `response` (101–299 with a To
    /// tag) to our `request` (an INVITE). `local_contact` is the Contact
    /// value we send in target-refresh requests (e.g. `<sip:tapir@host>`).
    pub fn from_response(
        request: &Message,
        response: &Message,
        local_contact: &str,
    ) -> Result<Dialog, DialogError> {
        let status = response
            .status_code()
            .ok_or(DialogError::WrongKind("response"))?;
        if !(101..=299).contains(&status) {
            return Err(DialogError::NotDialogCreating(status));
        }
        let request_uri = request_uri_text(request).ok_or(DialogError::WrongKind("request"))?;
        let (local_tag, local_header) = tagged_header(request, &HeaderName::From, "From")?;
        let local_tag = local_tag.ok_or(DialogError::MissingTag("From"))?;
        let (remote_tag, remote_header) = tagged_header(response, &HeaderName::To, "To")?;
        let remote_tag = remote_tag.ok_or(DialogError::MissingTag("To"))?;
        let (local_cseq, _) = cseq_of(request)?;
        let route_set = uac_route_set(response)?;
        let remote_target = match first_contact_uri(response)? {
            Some(target) => target,
            None if status < 200 => request_uri.to_owned(),
            None => return Err(DialogError::MissingHeader("Contact")),
        };
        let secure = matches!(Uri::parse(request_uri), Ok(Uri::Sip(uri)) if uri.secure);
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(request)?,
                local_tag,
                remote_tag,
            },
            role: DialogRole::Uac,
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_header,
            remote_header,
            local_cseq,
            remote_cseq: None,
            remote_target,
            route_set,
            local_contact: local_contact.to_owned(),
            secure,
        })
    }

    /// The UAS side of a dialog created by a received `request` (an
    /// INVITE) that we answer with `local_tag` in the To header: `Early`
    /// when answering with a provisional response, `Confirmed` with a 2xx.
    pub fn from_request(
        request: &Message,
        local_tag: &str,
        local_contact: &str,
        state: DialogState,
    ) -> Result<Dialog, DialogError> {
        let request_uri = request_uri_text(request).ok_or(DialogError::WrongKind("request"))?;
        let (remote_tag, remote_header) = tagged_header(request, &HeaderName::From, "From")?;
        let remote_tag = remote_tag.ok_or(DialogError::MissingTag("From"))?;
        let (existing_to_tag, to_value) = tagged_header(request, &HeaderName::To, "To")?;
        let local_header = match existing_to_tag {
            Some(_) => to_value,
            None => format!("{to_value};tag={local_tag}"),
        };
        let (remote_cseq, _) = cseq_of(request)?;
        let route_set = uas_route_set(request)?;
        let remote_target =
            first_contact_uri(request)?.ok_or(DialogError::MissingHeader("Contact"))?;
        let secure = matches!(Uri::parse(request_uri), Ok(Uri::Sip(uri)) if uri.secure);
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(request)?,
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            role: DialogRole::Uas,
            state,
            local_header,
            remote_header,
            local_cseq: 0,
            remote_cseq: Some(remote_cseq),
            remote_target,
            route_set,
            local_contact: local_contact.to_owned(),
            secure,
        })
    }

    /// The UAC side of a dialog whose initial INVITE (`request`) we are
    /// sending, before any response: early, no peer tag yet (an empty
    /// `remote_tag`), the Request-URI as remote target and no route set.
    /// The first 1xx with a To tag or the 2xx gives the peer's tag, target
    /// and route set ([`Dialog::handle_response`]). Its id changes then,
    /// so such a dialog is kept outside [`Dialogs`]. An INVITE sent again
    /// (after a challenge, 422, or with another offer: same Call-ID and
    /// From tag, next CSeq) starts a new one.
    pub fn outgoing(request: &Message, local_contact: &str) -> Result<Dialog, DialogError> {
        let request_uri = request_uri_text(request).ok_or(DialogError::WrongKind("request"))?;
        let (local_tag, local_header) = tagged_header(request, &HeaderName::From, "From")?;
        let local_tag = local_tag.ok_or(DialogError::MissingTag("From"))?;
        let (_, remote_header) = tagged_header(request, &HeaderName::To, "To")?;
        let (local_cseq, _) = cseq_of(request)?;
        let secure = matches!(Uri::parse(request_uri), Ok(Uri::Sip(uri)) if uri.secure);
        Ok(Dialog {
            id: DialogId {
                call_id: call_id_of(request)?,
                local_tag,
                remote_tag: String::new(),
            },
            role: DialogRole::Uac,
            state: DialogState::Early,
            local_header,
            remote_header,
            local_cseq,
            remote_cseq: None,
            remote_target: request_uri.to_owned(),
            route_set: Vec::new(),
            local_contact: local_contact.to_owned(),
            secure,
        })
    }

    /// The dialog's identifiers.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The peer's tag, `None` while a dialog made with
    /// [`Dialog::outgoing`] has none yet (or from a peer that gave none,
    /// as RFC 2543 allowed).
    pub fn remote_tag(&self) -> Option<&str> {
        (!self.id.remote_tag.is_empty()).then_some(self.id.remote_tag.as_str())
    }

    /// Whether these identifiers of an incoming request (or a Replaces
    /// header) name this dialog (RFC 3261 §12.2.2): the Call-ID, our tag
    /// and the peer's tag all match; a peer that gave no tag must give none.
    pub fn is_named(&self, call_id: &str, local_tag: &str, remote_tag: Option<&str>) -> bool {
        self.id.call_id == call_id
            && self.id.local_tag == local_tag
            && self.id.remote_tag == remote_tag.unwrap_or_default()
    }

    /// UAC or UAS.
    pub fn role(&self) -> DialogRole {
        self.role
    }

    /// Early, confirmed or terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The last CSeq number we used (0 before the first request).
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// The last CSeq number the peer used, once it sent a request.
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// The peer's Contact URI: where in-dialog requests go.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order requests carry it.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// The URI in-dialog requests are sent to first: see [`first_hop`].
    pub fn first_hop(&self) -> String {
        first_hop(&self.remote_target, &self.route_set)
    }

    /// True when the dialog was set up with a `sips:` Request-URI.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Marks an early dialog confirmed (UAS: when sending the 2xx).
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Marks the dialog ended.
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// The CSeq rule for a request the peer sent in this dialog (RFC 3261
    /// §12.2.2): its number must be above the last one the peer used, or
    /// the request is out of order (an old request replayed, or a stale
    /// one) and gets `500` without effect; the dialog then keeps its
    /// remote CSeq. A request that passes becomes the last one. ACK and
    /// CANCEL reuse the CSeq of the INVITE they belong to and are not
    /// checked. Call this only for a request that matched the dialog and
    /// comes from its peer, so that nobody else can move the CSeq.
    pub fn check_remote_cseq(&mut self, request: &Message) -> Result<(), CseqError> {
        let (number, method) = cseq_of(request).map_err(|_| CseqError::Malformed)?;
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_cseq
            && number <= last
        {
            return Err(CseqError::OutOfOrder { number, last });
        }
        self.remote_cseq = Some(number);
        Ok(())
    }

    /// Takes the Contact of a target-refresh request or of a 2xx to one as
    /// the new remote target (§12.2.1.2, §12.2.2). No Contact: no change.
    pub fn refresh_target(&mut self, message: &Message) -> Result<(), DialogError> {
        if let Some(target) = first_contact_uri(message)? {
            self.remote_target = target;
        }
        Ok(())
    }

    /// Applies a response to a request we sent in this dialog: a 2xx to
    /// the INVITE confirms an early dialog (taking the 2xx's route set and
    /// target), a 2xx to a re-INVITE or UPDATE refreshes the target, a
    /// later 1xx with a Contact refreshes an early dialog's target, a
    /// final error to the initial INVITE ends an early dialog, and 481 or
    /// 408 to any request ends the dialog (§12.2.1.2).
    ///
    /// A dialog made with [`Dialog::outgoing`] takes the peer's tag (and
    /// its To header, route set and target) from the first 1xx with a tag,
    /// and from the 2xx that confirms it.
    pub fn handle_response(&mut self, request: &Message, response: &Message) {
        if let Some(method) = request.method() {
            self.handle_response_to(method, response);
        }
    }

    /// [`Dialog::handle_response`] for a response to a request of `method`.
    pub fn handle_response_to(&mut self, method: &Method, response: &Message) {
        let Some(status) = response.status_code() else {
            return;
        };
        if status == 481 || status == 408 {
            self.terminate();
            return;
        }
        let invite = *method == Method::Invite;
        match status {
            200..=299 if invite && self.state == DialogState::Early => {
                self.state = DialogState::Confirmed;
                if self.role == DialogRole::Uac {
                    self.take_peer(response);
                    if let Ok(routes) = uac_route_set(response) {
                        self.route_set = routes;
                    }
                }
                let _ = self.refresh_target(response);
            }
            200..=299 if is_target_refresh(method) => {
                let _ = self.refresh_target(response);
            }
            101..=199 if invite && self.state == DialogState::Early => {
                if self.role == DialogRole::Uac
                    && self.id.remote_tag.is_empty()
                    && self.take_peer(response)
                    && let Ok(routes) = uac_route_set(response)
                {
                    self.route_set = routes;
                }
                let _ = self.refresh_target(response);
            }
            300..=699 if invite && self.state == DialogState::Early => {
                self.terminate();
            }
            _ => {}
        }
    }

    /// The peer's tag and To header from a response to our INVITE; false
    /// when it has no tag.
    fn take_peer(&mut self, response: &Message) -> bool {
        match tagged_header(response, &HeaderName::To, "To") {
            Ok((Some(tag), header)) => {
                self.id.remote_tag = tag;
                self.remote_header = header;
                true
            }
            _ => false,
        }
    }

    /// Takes the next local CSeq number, for a request of this dialog not
    /// built by [`Dialog::request`] (one sent again with credentials).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
        self.local_cseq
    }

    /// The Request-URI and Route values of a request in this dialog
    /// (§12.2.1.1): loose routing keeps the target as Request-URI; a
    /// strict first route becomes the Request-URI and the target goes last.
    pub fn request_target(&self) -> (String, Vec<String>) {
        request_target(&self.remote_target, &self.route_set)
    }

    /// A new request in this dialog with the next local CSeq: Request-URI,
    /// Via (`via`, including its branch), Route, Max-Forwards, From, To,
    /// Call-ID, CSeq, and Contact for target-refresh methods (INVITE,
    /// UPDATE, SUBSCRIBE, NOTIFY, REFER). Add a body or other headers
    /// (Refer-To, Event, …) to the builder. Use [`Dialog::ack`] for ACK;
    /// CANCEL is built from the INVITE, not from the dialog.
    pub fn request(&mut self, method: Method, via: &str) -> MessageBuilder {
        let number = self.next_cseq();
        self.build(method, number, via)
    }

    /// The ACK for a 2xx to an INVITE of this dialog (§13.2.2.4): same
    /// CSeq number as the INVITE, a new Via branch, the dialog's route.
    pub fn ack(&self, response: &Message, via: &str) -> Result<MessageBuilder, DialogError> {
        let (number, method) = cseq_of(response)?;
        if method != Method::Invite {
            return Err(DialogError::MalformedHeader("CSeq"));
        }
        Ok(self.build(Method::Ack, number, via))
    }

    fn build(&self, method: Method, number: u32, via: &str) -> MessageBuilder {
        let (request_uri, routes) = self.request_target();
        let mut builder = MessageBuilder::request(method.clone(), request_uri)
            .header(HeaderName::Via, via)
            .header(HeaderName::MaxForwards, "70");
        for route in routes {
            builder = builder.header(HeaderName::Route, route);
        }
        builder = builder
            .header(HeaderName::From, self.local_header.as_str())
            .header(HeaderName::To, self.remote_header.as_str())
            .header(HeaderName::CallId, self.id.call_id.as_str())
            .header(HeaderName::CSeq, format!("{number} {method}"));
        if is_target_refresh(&method) {
            builder = builder.header(HeaderName::Contact, self.local_contact.as_str());
        }
        builder
    }
}

/// What [`Dialogs::handle_request`] made of a received request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestMatch {
    /// No To tag (or CANCEL): not a mid-dialog request; the transaction
    /// user treats it as a new request.
    OutOfDialog,
    /// It belongs to this dialog, whose remote CSeq (and, for a re-INVITE
    /// or UPDATE with a Contact, remote target) have been updated.
    InDialog(DialogId),
    /// Answer with this response and stop: 481 (no such dialog), 500
    /// (CSeq lower than the last one), or 400 (malformed headers).
    Reject(Message),
    /// An ACK that matches no dialog: drop it (ACK gets no response).
    StrayAck,
}

/// The dialogs of one user agent (the B2BUA), found by their ids.
#[derive(Debug, Default)]
pub struct Dialogs {
    dialogs: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// No dialogs.
    pub fn new() -> Self {
        Dialogs::default()
    }

    /// Adds (or replaces) a dialog; returns its id.
    pub fn insert(&mut self, dialog: Dialog) -> DialogId {
        let id = dialog.id.clone();
        self.dialogs.insert(id.clone(), dialog);
        id
    }

    /// The dialog with this id.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// The dialog with this id, to change it.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    /// Number of dialogs held.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Every dialog.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs.values()
    }

    /// Removes every terminated dialog and returns how many there were.
    pub fn remove_terminated(&mut self) -> usize {
        let before = self.dialogs.len();
        self.dialogs
            .retain(|_, dialog| dialog.state != DialogState::Terminated);
        before - self.dialogs.len()
    }

    /// Applies a response to a request we sent: creates the UAC dialog on
    /// the first 1xx-with-tag or 2xx to an initial INVITE (one per To tag,
    /// so forked early dialogs each get theirs), updates an existing one,
    /// and on a final error to the initial INVITE ends its early dialogs.
    /// Returns the dialog the response belongs to, if any.
    pub fn handle_response(
        &mut self,
        request: &Message,
        response: &Message,
        local_contact: &str,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response
            .status_code()
            .ok_or(DialogError::WrongKind("response"))?;
        let call_id = call_id_of(request)?;
        let (local_tag, _) = tagged_header(request, &HeaderName::From, "From")?;
        let local_tag = local_tag.ok_or(DialogError::MissingTag("From"))?;
        let (request_to_tag, _) = tagged_header(request, &HeaderName::To, "To")?;
        let (remote_tag, _) = tagged_header(response, &HeaderName::To, "To")?;
        let initial_invite = request.method() == Some(&Method::Invite) && request_to_tag.is_none();
        if status >= 300 && initial_invite {
            for dialog in self.dialogs.values_mut() {
                if dialog.id.call_id == call_id
                    && dialog.id.local_tag == local_tag
                    && dialog.state == DialogState::Early
                {
                    dialog.terminate();
                }
            }
            return Ok(None);
        }
        let Some(remote_tag) = remote_tag else {
            return Ok(None);
        };
        let id = DialogId {
            call_id,
            local_tag,
            remote_tag,
        };
        if let Some(dialog) = self.dialogs.get_mut(&id) {
            dialog.handle_response(request, response);
            return Ok(Some(id));
        }
        if initial_invite && (101..=299).contains(&status) {
            let dialog = Dialog::from_response(request, response, local_contact)?;
            return Ok(Some(self.insert(dialog)));
        }
        Ok(None)
    }

    /// Matches a received request to its dialog (§12.2.2): requests
    /// without a To tag are out of dialog; a To tag naming no dialog (or an
    /// ended one) gets 481; a CSeq not above the last one gets 500
    /// ([`Dialog::check_remote_cseq`]). A match
    /// updates the remote CSeq and, for re-INVITE and UPDATE, the target.
    pub fn handle_request(&mut self, request: &Message) -> RequestMatch {
        let is_ack = request.method() == Some(&Method::Ack);
        let reject = |code: u16, reason: Option<&str>| {
            if is_ack {
                RequestMatch::StrayAck
            } else {
                RequestMatch::Reject(request.response_builder(code, reason, None).build())
            }
        };
        if request.method() == Some(&Method::Cancel) {
            return RequestMatch::OutOfDialog;
        }
        let id = match incoming_id(request) {
            Ok(Some(id)) => id,
            Ok(None) => return RequestMatch::OutOfDialog,
            Err(_) => return reject(400, None),
        };
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            return reject(481, None);
        };
        if dialog.state == DialogState::Terminated {
            return reject(481, None);
        }
        if is_ack {
            return RequestMatch::InDialog(id);
        }
        match dialog.check_remote_cseq(request) {
            Ok(()) => {}
            Err(CseqError::Malformed) => return reject(400, None),
            Err(CseqError::OutOfOrder { .. }) => {
                return reject(500, Some("Server Internal Error (CSeq out of order)"));
            }
        }
        if matches!(request.method(), Some(Method::Invite | Method::Update))
            && dialog.refresh_target(request).is_err()
        {
            return reject(400, Some("Bad Request (Contact)"));
        }
        RequestMatch::InDialog(id)
    }

    /// The dialog a `Replaces` header (RFC 3891 §3) of `request` names:
    /// `Ok(None)` without the header. `to-tag` is compared with our tag and
    /// `from-tag` with the peer's. An early dialog can only be replaced if
    /// we initiated it; `early-only` refuses a confirmed dialog.
    pub fn find_replaced(&self, request: &Message) -> Result<Option<&Dialog>, ReplacesError> {
        let replaces = match request.replaces() {
            Ok(None) => return Ok(None),
            Ok(Some(replaces)) => replaces,
            Err(_) => return Err(ReplacesError::Malformed),
        };
        let (Some(to_tag), Some(from_tag)) = (replaces.to_tag(), replaces.from_tag()) else {
            return Err(ReplacesError::Malformed);
        };
        let id = DialogId {
            call_id: replaces.call_id.to_owned(),
            local_tag: to_tag.to_owned(),
            remote_tag: from_tag.to_owned(),
        };
        let dialog = self.dialogs.get(&id).ok_or(ReplacesError::NoMatch)?;
        match dialog.state {
            DialogState::Terminated => Err(ReplacesError::Terminated),
            DialogState::Confirmed if replaces.early_only() => Err(ReplacesError::AlreadyConfirmed),
            DialogState::Early if dialog.role == DialogRole::Uas => {
                Err(ReplacesError::EarlyNotInitiatedHere)
            }
            DialogState::Early | DialogState::Confirmed => Ok(Some(dialog)),
        }
    }
}

#[cfg(test)]
mod tests;
