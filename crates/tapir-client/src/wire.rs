//! Every JSON shape of the tapir API, as the server sends and takes it
//! (`shared/API.md`, the operator shapes, and the server's `wire.rs` and
//! `http/*.rs`). This crate does not depend on the server: these structs
//! mirror its field names and are kept in this one module.
//!
//! Reading is lenient: unknown fields are ignored and enums the server may
//! grow have an `Unknown` variant, so a newer server does not break an older
//! client. Writing sends only the fields the server accepts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An application's privilege on a line or call (`LINECALLPRIVILEGE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// May watch and control.
    Owner,
    /// May watch.
    Monitor,
    /// A privilege this client does not know.
    #[serde(other)]
    Unknown,
}

/// A media mode (`LINEMEDIAMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// A person talking.
    InteractiveVoice,
    /// A machine talking.
    AutomatedVoice,
    /// Data modem.
    DataModem,
    /// Group 3 fax.
    G3Fax,
    /// Telecommunications device for the deaf.
    Tdd,
    /// Video.
    Video,
    /// Not classified (or a mode this client does not know).
    #[serde(other)]
    Unknown,
}

/// The kind of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// A SIP phone.
    Phone,
    /// A virtual line an application drives.
    RoutePoint,
    /// A SIP peer for numbers outside the switch.
    Trunk,
    /// A kind this client does not know.
    #[serde(other)]
    Unknown,
}

/// A call's TAPI state (`LINECALLSTATE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// No activity.
    Idle,
    /// A new incoming call.
    Offering,
    /// An owner accepted the offered call.
    Accepted,
    /// Ready for digits.
    Dialtone,
    /// Digits are being collected.
    Dialing,
    /// The switch is routing the call.
    Proceeding,
    /// The far end is alerting.
    Ringback,
    /// The far end is busy.
    Busy,
    /// The network signalled a special information condition (mode
    /// `nocircuit`, `custirreg` or `reorder`).
    SpecialInfo,
    /// Talking.
    Connected,
    /// Held by this address.
    OnHold,
    /// A member of a conference.
    Conferenced,
    /// Held while a party is being added to a conference.
    OnHoldPendConf,
    /// Held while a transfer is being set up.
    OnHoldPendTransfer,
    /// The far end or the network ended the call.
    Disconnected,
    /// TAPI's `unknown` (a monitor's first notice of a call another app
    /// created, before its real state), or a state this client does not
    /// know.
    #[serde(other)]
    Unknown,
}

impl CallState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Offering => "offering",
            CallState::Accepted => "accepted",
            CallState::Dialtone => "dialtone",
            CallState::Dialing => "dialing",
            CallState::Proceeding => "proceeding",
            CallState::Ringback => "ringback",
            CallState::Busy => "busy",
            CallState::SpecialInfo => "specialinfo",
            CallState::Connected => "connected",
            CallState::OnHold => "onhold",
            CallState::Conferenced => "conferenced",
            CallState::OnHoldPendConf => "onholdpendconf",
            CallState::OnHoldPendTransfer => "onholdpendtransfer",
            CallState::Disconnected => "disconnected",
            CallState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for CallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call arrived (`LINECALLREASON_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallReason {
    /// Dialled directly.
    Direct,
    /// Forwarded on busy.
    FwdBusy,
    /// Forwarded on no answer.
    FwdNoAnswer,
    /// Forwarded unconditionally.
    FwdUncond,
    /// Picked up.
    Pickup,
    /// Retrieved from a park slot.
    Unpark,
    /// Redirected by an application.
    Redirect,
    /// The result of call completion.
    CallCompletion,
    /// Transferred here.
    Transfer,
    /// A parked call coming back.
    Reminder,
    /// An intruding call.
    Intrude,
    /// Camped on.
    CampedOn,
    /// A reason this client does not know.
    #[serde(other)]
    Unknown,
}

/// Where a call came from (`LINECALLORIGIN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOrigin {
    /// Placed from this address.
    Outbound,
    /// From another address of the switch.
    Internal,
    /// From outside (a trunk).
    External,
    /// A conference call.
    Conference,
    /// An origin this client does not know.
    #[serde(other)]
    Unknown,
}

/// A forwarding condition (`LINEFORWARDMODE_*`), as the API spells it
/// (`unconditional`, `busy`, `noanswer`, `busynoanswer`,
/// `unconditionalinternal`, …, `busynoanswerspecific`).
pub type ForwardMode = String;

/// How a consultation call is finished (`LINETRANSFERMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// Join the two far parties.
    Transfer,
    /// Make a three-way conference.
    Conference,
}

/// What a completion request asks for (`LINECALLCOMPLMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletionMode {
    /// Wait until the busy address frees, then ring it.
    CampOn,
    /// Ring the caller back when the called address frees.
    Callback,
    /// Join the busy address's call.
    Intrude,
    /// Leave a canned message.
    Message,
}

/// A party of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyInfo {
    /// Address or number.
    pub address: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A call as this app sees it (`LINECALLINFO` + `LINECALLSTATUS`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Opaque id (`call-12`), the same for every app.
    pub id: String,
    /// The address the call is on.
    pub address: String,
    /// The line's id.
    pub line: String,
    /// TAPI call state.
    pub state: CallState,
    /// The state's mode (`active`, `busy`, `normal`, …).
    #[serde(default)]
    pub state_mode: Option<String>,
    /// Why the call arrived.
    pub reason: CallReason,
    /// Where it came from.
    pub origin: CallOrigin,
    /// Caller id.
    pub caller: PartyInfo,
    /// Called id.
    pub called: PartyInfo,
    /// Connected id.
    #[serde(default)]
    pub connected: Option<PartyInfo>,
    /// Redirecting id.
    #[serde(default)]
    pub redirecting: Option<PartyInfo>,
    /// This app's privilege.
    pub privilege: Privilege,
    /// The bridge the call is in.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Consultation partner, conference parent or members.
    #[serde(default)]
    pub related_calls: Vec<String>,
    /// Whether the call is secure.
    #[serde(default)]
    pub secure: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// The completion request that produced the call.
    #[serde(default)]
    pub completion: Option<String>,
    /// How many apps own the call.
    #[serde(default)]
    pub num_owners: usize,
    /// How many apps monitor the call.
    #[serde(default)]
    pub num_monitors: usize,
    /// The call's media mode (`LINECALLINFO`'s `dwMediaMode`).
    #[serde(default = "unknown_media")]
    pub media_mode: MediaMode,
}

fn unknown_media() -> MediaMode {
    MediaMode::Unknown
}

/// `GET /v1/calls`: every call of this app and the event `seq` it matches.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallList {
    /// Reconnect the event stream with `since` = this.
    pub seq: u64,
    /// The calls, oldest first.
    pub calls: Vec<CallInfo>,
}

/// A line this app may open (`lineGetDevCaps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineInfo {
    /// Opaque id (`line-3`).
    pub id: String,
    /// Its first address.
    pub address: String,
    /// All its addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Its kind.
    pub kind: LineKind,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Pickup group.
    #[serde(default)]
    pub pickup_group: Option<String>,
    /// Registration state (`unknown`, `notapplicable`, …).
    #[serde(default)]
    pub registration: String,
    /// The privileges this app may open it with.
    #[serde(default)]
    pub privileges: Vec<Privilege>,
    /// The privileges this app has it open with; none while closed.
    #[serde(default)]
    pub open: Option<Vec<Privilege>>,
}

/// Body of `POST /v1/lines/{line}/open`.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct OpenLineBody<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub privileges: &'a [Privilege],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub media_modes: &'a [MediaMode],
}

/// One forwarding rule of an address (`LINEFORWARD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRule {
    /// When it fires and for which callers (`unconditional`, `busy`, …).
    pub mode: ForwardMode,
    /// Where calls go; none is do-not-disturb for that condition.
    #[serde(default)]
    pub to: Option<String>,
    /// The caller, for the `*specific` modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

impl ForwardRule {
    /// A rule sending calls matching `mode` to `to`.
    pub fn new(mode: impl Into<String>, to: impl Into<String>) -> ForwardRule {
        ForwardRule {
            mode: mode.into(),
            to: Some(to.into()),
            caller: None,
        }
    }
}

/// Forwarding in force at an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// The rules.
    #[serde(default)]
    pub rules: Vec<ForwardRule>,
    /// Rings before no-answer forwarding.
    #[serde(default)]
    pub no_answer_rings: u32,
}

/// A live call at an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressCall {
    /// Call id.
    pub id: String,
    /// Its state.
    pub state: CallState,
}

/// `lineGetAddressStatus`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// The address.
    pub address: String,
    /// Its line.
    pub line: String,
    /// Forwarding in force.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Live calls at the address.
    #[serde(default)]
    pub calls: Vec<AddressCall>,
}

/// The forwarding of every address of a line (`PUT /v1/lines/{line}/forwarding`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineForwarding {
    /// The line id.
    pub line: String,
    /// Each address's status, with the forwarding now in force.
    pub addresses: Vec<AddressStatus>,
}

/// Body of `PUT /v1/addresses/{address}/forwarding`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ForwardingBody<'a> {
    pub rules: &'a [ForwardRule],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_answer_rings: Option<u32>,
}

/// Where a pickup looks for a ringing call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PickupTarget {
    /// The call alerting at this address (`{"target":…}`).
    Address(String),
    /// Any call alerting in this pickup group (`{"group":…}`).
    Group(String),
    /// The call alerting at this address, which is in this pickup group
    /// (`{"target":…,"group":…}`).
    AddressInGroup(String, String),
    /// The call waiting at the picking address itself while it has another
    /// call (`{}`: linePickup naming neither); that other call goes on hold.
    CallWaiting,
}

impl Serialize for PickupTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (target, group) = match self {
            PickupTarget::Address(t) => (Some(t), None),
            PickupTarget::Group(g) => (None, Some(g)),
            PickupTarget::AddressInGroup(t, g) => (Some(t), Some(g)),
            PickupTarget::CallWaiting => (None, None),
        };
        let mut m = s.serialize_map(None)?;
        if let Some(t) = target {
            m.serialize_entry("target", t)?;
        }
        if let Some(g) = group {
            m.serialize_entry("group", g)?;
        }
        m.end()
    }
}

/// Whom a call is handed off to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffTarget {
    /// The application with this name (`{"app":…}`).
    App(String),
    /// The highest-priority app owning the line for this media mode.
    MediaMode(MediaMode),
}

/// Body of `POST /v1/calls`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MakeCall {
    /// The calling address.
    pub from: String,
    /// Dialable or canonical destination; none for dial tone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Location to translate a canonical `to` from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `setup-transfer` / `prepare-add`: the consultation call.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConsultResponse {
    pub consult_call: String,
    #[serde(default)]
    pub calls: Vec<CallInfo>,
}

/// `setup-conference` (and a transfer finished as a conference): the
/// conference call and the consultation call.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConferenceResponse {
    pub conference_call: String,
    #[serde(default)]
    pub consult_call: Option<String>,
    #[serde(default)]
    pub calls: Vec<CallInfo>,
}

/// `GET /v1/calls/{call}/related`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RelatedResponse {
    pub calls: Vec<String>,
}

/// `park`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ParkResponse {
    pub parked_at: String,
}

/// `complete`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct CompletionResponse {
    pub completion_id: String,
}

/// Body of `POST /v1/translate`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TranslateRequest {
    /// Canonical (`+1 (425) 555-1212`) or dialable address.
    pub address: String,
    /// Location id (the current one when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Calling card id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// `cardoverride`, `cancelcallwaiting`, `forcelocal`, `forceld`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `lineTranslateAddress`'s output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    /// What to dial.
    pub dialable: String,
    /// What to show.
    pub displayable: String,
    /// Destination country code.
    pub country_code: u16,
    /// The location's country code.
    #[serde(default)]
    pub current_country_code: u16,
    /// Result flags (`international`, `longdistance`, `local`, …).
    #[serde(default)]
    pub results: Vec<String>,
}

/// Dialing rules (TAPI's rule strings: `G`, `1FG`, `011EFG`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialingRules {
    /// Same area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_area: Option<String>,
    /// Long distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_distance: Option<String>,
    /// International.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub international: Option<String>,
}

impl DialingRules {
    fn is_empty(&self) -> bool {
        self.same_area.is_none() && self.long_distance.is_none() && self.international.is_none()
    }
}

/// A dialing location (`LINELOCATIONENTRY`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Permanent id.
    pub id: String,
    /// Friendly name.
    #[serde(default)]
    pub name: String,
    /// Country calling code.
    pub country_code: u16,
    /// Area code.
    #[serde(default)]
    pub area_code: String,
    /// Access code for local calls.
    #[serde(default)]
    pub local_access: String,
    /// Access code for long-distance calls.
    #[serde(default)]
    pub long_distance_access: String,
    /// Code that disables call waiting.
    #[serde(default)]
    pub cancel_call_waiting: String,
    /// Tone (true) or pulse dialing.
    #[serde(default = "yes")]
    pub tone_dialing: bool,
    /// Local prefixes dialed as long distance.
    #[serde(default)]
    pub toll_prefixes: Vec<String>,
    /// Rules overriding the country's defaults.
    #[serde(default, skip_serializing_if = "DialingRules::is_empty")]
    pub rules: DialingRules,
    /// Preferred calling card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Long-distance carrier code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_distance_carrier: Option<String>,
    /// International carrier code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub international_carrier: Option<String>,
}

fn yes() -> bool {
    true
}

impl Location {
    /// A location with a country and area code and nothing else.
    pub fn new(id: impl Into<String>, country_code: u16, area_code: impl Into<String>) -> Location {
        Location {
            id: id.into(),
            name: String::new(),
            country_code,
            area_code: area_code.into(),
            local_access: String::new(),
            long_distance_access: String::new(),
            cancel_call_waiting: String::new(),
            tone_dialing: true,
            toll_prefixes: Vec::new(),
            rules: DialingRules::default(),
            card: None,
            long_distance_carrier: None,
            international_carrier: None,
        }
    }
}

/// `GET/PUT /v1/locations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locations {
    /// Id of the current location.
    pub current: String,
    /// Every location.
    pub locations: Vec<Location>,
}

/// Access numbers of a calling card's service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessNumbers {
    /// Same area.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub same_area: String,
    /// Long distance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub long_distance: String,
    /// International.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub international: String,
}

impl AccessNumbers {
    fn is_empty(&self) -> bool {
        self.same_area.is_empty() && self.long_distance.is_empty() && self.international.is_empty()
    }
}

/// A calling card (`LINECARDENTRY`); the PIN is write-only (never read back).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingCard {
    /// Permanent id.
    pub id: String,
    /// Friendly name.
    #[serde(default)]
    pub name: String,
    /// Card (account) number.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub card_number: String,
    /// PIN (write-only: the server never returns it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Access numbers.
    #[serde(default, skip_serializing_if = "AccessNumbers::is_empty")]
    pub access_numbers: AccessNumbers,
    /// The card's rules.
    #[serde(default, skip_serializing_if = "DialingRules::is_empty")]
    pub rules: DialingRules,
}

/// `GET/PUT /v1/cards`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cards {
    pub cards: Vec<CallingCard>,
}

/// The error body of every failed request.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// TAPI error code and sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// TAPI's `LINEERR_` name, lower case (`invalcallstate`, …).
    pub code: String,
    /// A human sentence.
    pub message: String,
}

// ---- events --------------------------------------------------------------

/// What an event says (its `type` and fields).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The app has a new handle to a call.
    #[serde(rename = "call.new")]
    CallNew {
        /// The call.
        call: String,
        /// Its line.
        line: String,
        /// Its address.
        address: String,
        /// The app's privilege.
        privilege: Privilege,
        /// Why it arrived.
        reason: CallReason,
        /// Where it came from.
        origin: CallOrigin,
    },
    /// A call changed state (`LINE_CALLSTATE`).
    #[serde(rename = "call.state")]
    CallState {
        /// The call.
        call: String,
        /// The new state.
        state: CallState,
        /// Its mode.
        #[serde(default)]
        state_mode: Option<String>,
        /// The app's new privilege, when it changed.
        #[serde(default)]
        privilege: Option<Privilege>,
        /// For `conferenced`, the conference call.
        #[serde(default)]
        conference: Option<String>,
    },
    /// Call information changed (`LINE_CALLINFO`).
    #[serde(rename = "call.info")]
    CallInfo {
        /// The call.
        call: String,
        /// What changed (`caller`, `connected`, `numownerincr`, …).
        #[serde(default)]
        changed: Vec<String>,
    },
    /// The outcome of one request (`LINE_REPLY`).
    #[serde(rename = "reply")]
    Reply {
        /// The request (`req-N`, as in the `tapir-request` header).
        request: String,
        /// Success?
        #[serde(default)]
        ok: bool,
        /// The reply's data on success.
        #[serde(default)]
        result: Option<Value>,
        /// The error on failure.
        #[serde(default)]
        error: Option<ErrorDetail>,
    },
    /// A line was opened or closed.
    #[serde(rename = "line.state")]
    LineState {
        /// The line.
        line: String,
        /// `open` or `closed`.
        state: String,
    },
    /// An address's forwarding changed.
    #[serde(rename = "address.forwarding")]
    AddressForwarding {
        /// The address.
        address: String,
        /// The rules now in force.
        #[serde(default)]
        rules: Vec<ForwardRule>,
        /// Rings before no-answer forwarding.
        #[serde(default)]
        no_answer_rings: u32,
    },
    /// A completion request finished.
    #[serde(rename = "completion.done")]
    CompletionDone {
        /// The completion request.
        completion: String,
        /// Its mode.
        mode: CompletionMode,
        /// The call it produced.
        #[serde(default)]
        call: Option<String>,
        /// For message mode: the message id.
        #[serde(default)]
        message_id: Option<u32>,
        /// The address that asked for it.
        from: String,
        /// The address it was about.
        to: String,
        /// False when it expired or was cancelled.
        completed: bool,
    },
    /// A call was parked.
    #[serde(rename = "park.parked")]
    Parked {
        /// The call that stays parked.
        call: String,
        /// The park slot.
        slot: String,
    },
    /// A parked call left its slot.
    #[serde(rename = "park.unparked")]
    Unparked {
        /// The call that was parked.
        call: String,
        /// The slot.
        slot: String,
        /// The call that retrieved it.
        #[serde(default)]
        by: Option<String>,
    },
    /// DTMF digits arrived on a call.
    #[serde(rename = "digits.received")]
    DigitsReceived {
        /// The call.
        call: String,
        /// The digits.
        digits: String,
    },
    /// A gathering ended (`lineGatherDigits`).
    #[serde(rename = "digits.gathered")]
    DigitsGathered {
        /// The call.
        call: String,
        /// The digits gathered (a termination digit last).
        digits: String,
        /// `maxdigits`, `terminator`, `firsttimeout`, `intertimeout` or
        /// `cancelled`.
        reason: String,
    },
    /// A watched tone was heard (`lineMonitorTones`).
    #[serde(rename = "tone.detected")]
    ToneDetected {
        /// The call.
        call: String,
        /// The tone's frequencies.
        frequencies: Vec<u32>,
        /// The watch's duration (ms).
        duration_ms: u32,
    },
    /// A watched media mode was detected (`lineMonitorMedia`).
    #[serde(rename = "media.detected")]
    MediaDetected {
        /// The call.
        call: String,
        /// The media mode.
        media_mode: MediaMode,
    },
    /// Digit generation finished.
    #[serde(rename = "digits.generated")]
    DigitsGenerated {
        /// The call.
        call: String,
    },
    /// Media tapir played on a route point call ended.
    #[serde(rename = "call.media")]
    CallMedia {
        /// The route point call.
        call: String,
        /// What was played (`prompt`).
        media: String,
        /// `done` (played to its end) or `stopped`.
        state: String,
        /// The prompt's name.
        #[serde(default)]
        prompt: Option<String>,
    },
    /// Made by this client, not sent by the server as such: the server said
    /// the stream lost events (`stream.resync`); the client took the
    /// `GET /v1/calls` snapshot (these calls, consistent with the event's
    /// `seq`) and goes on after it.
    #[serde(skip_deserializing)]
    Resync {
        /// The server's sentence.
        message: String,
        /// Every call of the app now.
        calls: Vec<CallInfo>,
    },
    /// An event type this client does not know (see [`Event::raw`]).
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// The call the event is about, if it is about one.
    pub fn call(&self) -> Option<&str> {
        match self {
            EventKind::CallNew { call, .. }
            | EventKind::CallState { call, .. }
            | EventKind::CallInfo { call, .. }
            | EventKind::Parked { call, .. }
            | EventKind::Unparked { call, .. }
            | EventKind::DigitsReceived { call, .. }
            | EventKind::DigitsGenerated { call }
            | EventKind::DigitsGathered { call, .. }
            | EventKind::ToneDetected { call, .. }
            | EventKind::MediaDetected { call, .. }
            | EventKind::CallMedia { call, .. } => Some(call),
            EventKind::CompletionDone { call, .. } => call.as_deref(),
            _ => None,
        }
    }
}

/// One event of the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Sequence number (grows by one per app).
    pub seq: u64,
    /// The event's `type` as sent.
    pub event_type: String,
    /// What it says.
    pub kind: EventKind,
    /// The JSON message as received.
    pub raw: Value,
}

impl Event {
    /// Parse one message of the stream; `None` for a message that is not an
    /// event (no `seq`).
    pub(crate) fn parse(raw: Value) -> Result<Option<Event>, serde_json::Error> {
        let Some(seq) = raw.get("seq").and_then(Value::as_u64) else {
            return Ok(None);
        };
        let event_type = raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let kind = EventKind::deserialize(&raw)?;
        Ok(Some(Event {
            seq,
            event_type,
            kind,
            raw,
        }))
    }
}

// ---- operator (/v1/admin) ------------------------------------------------

/// A line of the configuration (`/v1/admin/lines`, the keys of `[[lines]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLine {
    /// The line's first address.
    pub address: String,
    /// More addresses of the line.
    #[serde(default)]
    pub more_addresses: Vec<String>,
    /// `phone`, `routepoint` or `trunk` (the server's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// SIP digest password (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Whether a password is set (read-only).
    #[serde(default, skip_serializing)]
    pub has_password: bool,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pickup group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_group: Option<String>,
    /// The phone honours an auto-answer hint.
    #[serde(default)]
    pub auto_answer: bool,
    /// `none` or `broadsoft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_control: Option<String>,
    /// Call appearances per address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// What the line may dial: `none`, `internal`, `national` or `all`
    /// (the server's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<String>,
}

/// An application of the configuration (`/v1/admin/apps`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminApp {
    /// Unique name.
    pub name: String,
    /// Addresses of the lines it may open (`*` for all).
    #[serde(default)]
    pub lines: Vec<String>,
    /// The most it may ask for (server default when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<Privilege>,
    /// Media modes (server default when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_modes: Vec<MediaMode>,
    /// Priority (lower wins).
    #[serde(default)]
    pub priority: u32,
    /// Configured permissions (`make_call`, `forward`, `settings`); none
    /// for the server's defaults (from the privileges and lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// The permissions in force, as the server reports them (never sent).
    #[serde(default, skip_serializing)]
    pub effective_permissions: Vec<String>,
    /// The token: sent to set or rotate it; returned once when generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A SIP trunk (`/v1/admin/trunks`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTrunk {
    /// Unique name.
    pub name: String,
    /// Peer host.
    pub host: String,
    /// Peer port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Digest user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Digest password (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Whether a password is set (read-only).
    #[serde(default, skip_serializing)]
    pub has_password: bool,
    /// Dial prefix routed to this trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The trunk line's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Calls from its carrier may be routed back out of a trunk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hairpin: bool,
}

/// A pickup group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickupGroup {
    /// Its name.
    pub name: String,
    /// Member addresses.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A call in a park slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedCall {
    /// The slot.
    pub slot: String,
    /// The parked call.
    pub call: String,
}

/// Park settings and what is parked (`/v1/admin/park`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkSettings {
    /// Slot range (`7001-7020`) or list.
    pub slots: String,
    /// Milliseconds before a parked call rings back.
    #[serde(default)]
    pub reminder_ms: Option<u64>,
    /// The calls parked now (read-only).
    #[serde(default, skip_serializing)]
    pub parked: Vec<ParkedCall>,
}

/// A party of a call detail record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrParty {
    /// Its address.
    pub address: String,
    /// Its call id.
    #[serde(default)]
    pub call: Option<String>,
    /// `caller`, `called` or `party`.
    #[serde(default)]
    pub role: String,
}

/// An operation recorded in a call detail record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrOperation {
    /// When (RFC 3339).
    pub at: String,
    /// The operation (`hold`, `blindtransfer`, …).
    pub op: String,
    /// The app that asked.
    #[serde(default)]
    pub app: Option<String>,
    /// The call.
    #[serde(default)]
    pub call: Option<String>,
    /// `ok` or the TAPI error code.
    #[serde(default)]
    pub result: String,
}

/// The media quality of one leg of a call detail record (from RTCP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CdrLegQuality {
    /// The address of the party on the leg.
    pub address: String,
    /// The leg's call.
    #[serde(default)]
    pub call: Option<String>,
    /// RTP packets tapir received from the phone.
    #[serde(default)]
    pub packets_received: u64,
    /// Packets of the phone's stream lost (expected − received).
    #[serde(default)]
    pub packets_lost: i64,
    /// `packets_lost` as a percentage of the packets expected.
    #[serde(default)]
    pub loss_percent: f64,
    /// Interarrival jitter of the phone's stream, milliseconds.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Round trip to the phone, milliseconds, when known.
    #[serde(default)]
    pub round_trip_ms: Option<f64>,
    /// The phone's last report: fraction of tapir's packets it lost (0–1).
    #[serde(default)]
    pub peer_fraction_lost: Option<f64>,
    /// The phone's last report: tapir's packets it lost in all.
    #[serde(default)]
    pub peer_packets_lost: Option<i64>,
    /// The phone's last report: its jitter on tapir's stream, milliseconds.
    #[serde(default)]
    pub peer_jitter_ms: Option<f64>,
}

/// A call detail record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// Its id.
    pub id: String,
    /// When the call started.
    pub started_at: String,
    /// When it was answered.
    #[serde(default)]
    pub answered_at: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Length in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// The parties.
    #[serde(default)]
    pub parties: Vec<CdrParty>,
    /// `internal`, `external`, `outbound`, …
    #[serde(default)]
    pub origin: String,
    /// Why it ended.
    #[serde(default)]
    pub end_reason: String,
    /// The operations applied to it.
    #[serde(default)]
    pub operations: Vec<CdrOperation>,
    /// The media quality of each leg that had media.
    #[serde(default)]
    pub quality: Vec<CdrLegQuality>,
}

/// Filters of `GET /v1/admin/cdr`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CdrQuery {
    /// At most this many records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Records older than this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Records with a party at this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `{"lines":[…]}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AdminLines {
    pub lines: Vec<AdminLine>,
}

/// `{"apps":[…]}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AdminApps {
    pub apps: Vec<AdminApp>,
}

/// `{"trunks":[…]}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AdminTrunks {
    pub trunks: Vec<AdminTrunk>,
}

/// `{"groups":[…]}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PickupGroups {
    pub groups: Vec<PickupGroup>,
}

/// `{"cdrs":[…]}`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Cdrs {
    pub cdrs: Vec<Cdr>,
}

/// A webhook as the server shows it (`/v1/webhooks`, `/v1/admin/webhooks`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The app whose events it delivers.
    pub app: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types delivered (all when empty).
    #[serde(default)]
    pub events: Vec<String>,
    /// Addresses whose events are delivered (all when empty).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Most events per POST.
    pub batch: u32,
    /// `active`, `failing` or `suspended`.
    pub state: String,
    /// The last `seq` acknowledged (or skipped by the filters).
    pub acked: u64,
    /// Events journalled after `acked`.
    pub pending: u64,
    /// Failing since (ms since the epoch).
    #[serde(default)]
    pub failing_since: Option<u64>,
    /// The last failure.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Events delivered since the server started.
    #[serde(default)]
    pub delivered: u64,
    /// The secret: only in the answer that set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What to register or change of a webhook (absent fields: the server's
/// default on creation, unchanged on change).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WebhookRequest {
    /// The app (operator requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Where events are POSTed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Event types (`call.state`, `call.*`, `*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// The signing secret (16 to 256 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Most events per POST.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_event_types_and_states_parse() {
        let e = Event::parse(json!({"seq": 3, "type": "call.teleport", "call": "call-1"}))
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, EventKind::Unknown);
        assert_eq!(e.event_type, "call.teleport");
        let e = Event::parse(
            json!({"seq": 4, "type": "call.state", "call": "call-1", "state": "levitating"}),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            e.kind,
            EventKind::CallState {
                state: CallState::Unknown,
                ..
            }
        ));
        assert_eq!(e.kind.call(), Some("call-1"));
        assert!(
            Event::parse(json!({"type": "stream.resync"}))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pickup_and_handoff_bodies() {
        assert_eq!(
            serde_json::to_value(PickupTarget::Address("1002".into())).unwrap(),
            json!({"target": "1002"})
        );
        assert_eq!(
            serde_json::to_value(PickupTarget::Group("sales".into())).unwrap(),
            json!({"group": "sales"})
        );
        assert_eq!(
            serde_json::to_value(PickupTarget::AddressInGroup("1002".into(), "sales".into()))
                .unwrap(),
            json!({"target": "1002", "group": "sales"})
        );
        assert_eq!(
            serde_json::to_value(HandoffTarget::MediaMode(MediaMode::InteractiveVoice)).unwrap(),
            json!({"media_mode": "interactivevoice"})
        );
    }

    #[test]
    fn read_only_fields_are_not_written() {
        let line = AdminLine {
            address: "1001".into(),
            has_password: true,
            ..AdminLine::default()
        };
        let v = serde_json::to_value(&line).unwrap();
        assert!(v.get("has_password").is_none(), "{v}");
        assert!(v.get("password").is_none(), "{v}");
    }
}
