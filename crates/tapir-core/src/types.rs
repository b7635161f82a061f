//! TAPI's vocabulary as Rust types: call states and their modes, reasons,
//! privileges, media modes, forwarding, park and completion modes.
//!
//! Names follow `tapi.h` (`LINECALLSTATE_*`, `LINEDISCONNECTMODE_*`, …) in lower
//! case without prefix, which is also how the HTTP API spells them.

use serde::{Deserialize, Serialize};

/// Detail of the `dialtone` state (`LINEDIALTONEMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialtoneMode {
    /// Steady dial tone.
    Normal,
    /// Interrupted tone signalling a condition (e.g. message waiting).
    Special,
    /// The switch's own (internal) dial tone.
    Internal,
    /// Dial tone of the public network.
    External,
}

/// Detail of the `busy` state (`LINEBUSYMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusyMode {
    /// The called station is busy.
    Station,
    /// No circuit (fast busy).
    Trunk,
}

/// Detail of the `specialinfo` state (`LINESPECIALINFO_*`): which special
/// information condition the network signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecialInfoMode {
    /// No circuit (`LINESPECIALINFO_NOCIRCUIT`): the network has no way
    /// through (a carrier's 503).
    NoCircuit,
    /// Customer irregularity (`LINESPECIALINFO_CUSTIRREG`): "vacant number,
    /// number change, access code error" (a carrier's 404, 410, 484, 485 or
    /// 604).
    CustIrreg,
    /// Equipment irregularity (`LINESPECIALINFO_REORDER`): the network failed
    /// (a carrier's 500, 502 or 504).
    Reorder,
}

/// Detail of the `offering` state (`LINEOFFERINGMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfferingMode {
    /// Alerting at this station.
    Active,
    /// Offered but not alerting here (e.g. camped on, waiting for the line).
    Inactive,
}

/// Detail of the `connected` state (`LINECONNECTEDMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectedMode {
    /// This station takes part in the call.
    Active,
    /// Taking part, but the remote side has put the call on hold (or parked it).
    ActiveHeld,
}

/// Why a call was disconnected (`LINEDISCONNECTMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisconnectMode {
    /// The remote party hung up.
    Normal,
    /// The remote party rejected the call.
    Reject,
    /// The call was picked up at another station.
    Pickup,
    /// The switch forwarded the call elsewhere.
    Forwarded,
    /// The remote station was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The destination address is not valid.
    BadAddress,
    /// The destination could not be reached.
    Unreachable,
    /// The network is congested.
    Congestion,
    /// The destination is not available (no owner, out of service).
    Unavail,
    /// The call was cancelled before it was answered.
    Cancelled,
    /// The switch refused the destination: the line may not dial it
    /// (`LINEDISCONNECTMODE_BLOCKED`).
    Blocked,
}

/// A call's TAPI state (`LINECALLSTATE_*`) together with its mode.
///
/// Keeping the mode inside the state makes "exactly one state, with a mode
/// that belongs to it" a property of the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// No activity; the handle lives on until every app deallocates it.
    Idle,
    /// A new incoming call is being presented.
    Offering(OfferingMode),
    /// An owner accepted the offered call.
    Accepted,
    /// Ready for digits.
    Dialtone(DialtoneMode),
    /// Digits are being collected or sent.
    Dialing,
    /// Dialing complete; the switch is routing the call.
    Proceeding,
    /// The far end is alerting.
    Ringback,
    /// The far end is busy.
    Busy(BusyMode),
    /// The network answered with a special information condition (a vacant
    /// number, no circuit, a failure) instead of reaching the far end; like
    /// `busy`, the call stays until dropped (its caller hears reorder).
    SpecialInfo(SpecialInfoMode),
    /// Talking.
    Connected(ConnectedMode),
    /// Held by this address.
    OnHold,
    /// A member of a conference (the conference call is its parent).
    Conferenced,
    /// Held while a party is being added to a conference.
    OnHoldPendConf,
    /// Held while a transfer is being set up.
    OnHoldPendTransfer,
    /// The far end or the network ended the call.
    Disconnected(DisconnectMode),
    /// The state is not known. tapir places and tracks every call itself,
    /// so no call rests in it: it is only a monitor's first notice of a call
    /// another app created, before the call's real state (as TAPI gives it).
    Unknown,
}

/// The name of a call state alone, as TAPI and the HTTP API spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStateKind {
    /// See [`CallState::Idle`].
    Idle,
    /// See [`CallState::Offering`].
    Offering,
    /// See [`CallState::Accepted`].
    Accepted,
    /// See [`CallState::Dialtone`].
    Dialtone,
    /// See [`CallState::Dialing`].
    Dialing,
    /// See [`CallState::Proceeding`].
    Proceeding,
    /// See [`CallState::Ringback`].
    Ringback,
    /// See [`CallState::Busy`].
    Busy,
    /// See [`CallState::SpecialInfo`].
    SpecialInfo,
    /// See [`CallState::Connected`].
    Connected,
    /// See [`CallState::OnHold`].
    OnHold,
    /// See [`CallState::Conferenced`].
    Conferenced,
    /// See [`CallState::OnHoldPendConf`].
    OnHoldPendConf,
    /// See [`CallState::OnHoldPendTransfer`].
    OnHoldPendTransfer,
    /// See [`CallState::Disconnected`].
    Disconnected,
    /// See [`CallState::Unknown`].
    Unknown,
}

/// A state's mode, whichever state it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateMode {
    /// Mode of `dialtone`.
    Dialtone(DialtoneMode),
    /// Mode of `busy`.
    Busy(BusyMode),
    /// Mode of `specialinfo`.
    SpecialInfo(SpecialInfoMode),
    /// Mode of `offering`.
    Offering(OfferingMode),
    /// Mode of `connected`.
    Connected(ConnectedMode),
    /// Mode of `disconnected`.
    Disconnected(DisconnectMode),
}

impl CallState {
    /// The state's name without its mode.
    pub fn kind(self) -> CallStateKind {
        match self {
            CallState::Idle => CallStateKind::Idle,
            CallState::Offering(_) => CallStateKind::Offering,
            CallState::Accepted => CallStateKind::Accepted,
            CallState::Dialtone(_) => CallStateKind::Dialtone,
            CallState::Dialing => CallStateKind::Dialing,
            CallState::Proceeding => CallStateKind::Proceeding,
            CallState::Ringback => CallStateKind::Ringback,
            CallState::Busy(_) => CallStateKind::Busy,
            CallState::SpecialInfo(_) => CallStateKind::SpecialInfo,
            CallState::Connected(_) => CallStateKind::Connected,
            CallState::OnHold => CallStateKind::OnHold,
            CallState::Conferenced => CallStateKind::Conferenced,
            CallState::OnHoldPendConf => CallStateKind::OnHoldPendConf,
            CallState::OnHoldPendTransfer => CallStateKind::OnHoldPendTransfer,
            CallState::Disconnected(_) => CallStateKind::Disconnected,
            CallState::Unknown => CallStateKind::Unknown,
        }
    }

    /// The state's mode, for the states that have one.
    pub fn mode(self) -> Option<StateMode> {
        match self {
            CallState::Offering(m) => Some(StateMode::Offering(m)),
            CallState::Dialtone(m) => Some(StateMode::Dialtone(m)),
            CallState::Busy(m) => Some(StateMode::Busy(m)),
            CallState::SpecialInfo(m) => Some(StateMode::SpecialInfo(m)),
            CallState::Connected(m) => Some(StateMode::Connected(m)),
            CallState::Disconnected(m) => Some(StateMode::Disconnected(m)),
            _ => None,
        }
    }

    /// True for `idle`.
    pub fn is_idle(self) -> bool {
        matches!(self, CallState::Idle)
    }

    /// True while the call is still alive: neither idle nor disconnected.
    pub fn is_live(self) -> bool {
        !matches!(self, CallState::Idle | CallState::Disconnected(_))
    }

    /// True for `connected` in any mode.
    pub fn is_connected(self) -> bool {
        matches!(self, CallState::Connected(_))
    }

    /// True for `offering` or `accepted`: an incoming call not yet answered.
    pub fn is_alerting(self) -> bool {
        matches!(self, CallState::Offering(_) | CallState::Accepted)
    }

    /// True for the three held states.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            CallState::OnHold | CallState::OnHoldPendConf | CallState::OnHoldPendTransfer
        )
    }
}

/// Why a call arrived (`LINECALLREASON_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallReason {
    /// Dialled directly.
    Direct,
    /// Forwarded because the first address was busy.
    FwdBusy,
    /// Forwarded because the first address did not answer.
    FwdNoAnswer,
    /// Forwarded unconditionally.
    FwdUncond,
    /// Picked up from another station.
    Pickup,
    /// Retrieved from a park slot.
    Unpark,
    /// Redirected by an application before it was answered.
    Redirect,
    /// The result of a call-completion request (callback).
    CallCompletion,
    /// Transferred here.
    Transfer,
    /// A parked call coming back after its park time ran out.
    Reminder,
    /// An intruding call.
    Intrude,
    /// A call camped on to a busy address.
    CampedOn,
}

/// Where a call came from, seen from its address (`LINECALLORIGIN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOrigin {
    /// Placed from this address.
    Outbound,
    /// From another address of this switch.
    Internal,
    /// From outside the switch (a trunk).
    External,
    /// A conference call (the parent of conference members).
    Conference,
}

/// An application's privilege on one call (`LINECALLPRIVILEGE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// May watch the call.
    Monitor,
    /// May watch and control the call.
    Owner,
}

/// A media mode (`LINEMEDIAMODE_*`); owners open a line for some of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Not yet classified.
    Unknown,
    /// A person talking.
    InteractiveVoice,
    /// A machine talking (IVR, announcements).
    AutomatedVoice,
    /// Data modem.
    DataModem,
    /// Group 3 fax.
    G3Fax,
    /// Telecommunications device for the deaf.
    Tdd,
    /// Video.
    Video,
}

/// The kind of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// A SIP phone that registers with credentials; its calls have device legs.
    Phone,
    /// A virtual line: tapir itself terminates the call, an application drives it.
    RoutePoint,
    /// A SIP peer for numbers outside the switch.
    Trunk,
}

/// A forwarding condition (`LINEFORWARDMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// Every call, at once.
    Unconditional,
    /// Calls from inside the switch, at once.
    UnconditionalInternal,
    /// Calls from outside the switch, at once.
    UnconditionalExternal,
    /// Calls from one caller, at once.
    UnconditionalSpecific,
    /// Every call when busy.
    Busy,
    /// Internal calls when busy.
    BusyInternal,
    /// External calls when busy.
    BusyExternal,
    /// Calls from one caller when busy.
    BusySpecific,
    /// Every call when not answered.
    NoAnswer,
    /// Internal calls when not answered.
    NoAnswerInternal,
    /// External calls when not answered.
    NoAnswerExternal,
    /// Calls from one caller when not answered.
    NoAnswerSpecific,
    /// Every call when busy or not answered.
    BusyNoAnswer,
    /// Internal calls when busy or not answered.
    BusyNoAnswerInternal,
    /// External calls when busy or not answered.
    BusyNoAnswerExternal,
    /// Calls from one caller when busy or not answered.
    BusyNoAnswerSpecific,
}

/// Which callers a forwarding rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerFilter {
    /// Everybody.
    All,
    /// Callers on this switch.
    Internal,
    /// Callers from outside (trunks).
    External,
    /// One caller address, given in the rule.
    Specific,
}

/// The condition under which a forwarding rule fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardCondition {
    /// Always.
    Unconditional,
    /// When the address is busy.
    Busy,
    /// When the address does not answer.
    NoAnswer,
    /// When the address is busy or does not answer.
    BusyNoAnswer,
}

impl ForwardMode {
    /// Every forwarding mode, in TAPI's order.
    pub const ALL: [ForwardMode; 16] = [
        ForwardMode::Unconditional,
        ForwardMode::UnconditionalInternal,
        ForwardMode::UnconditionalExternal,
        ForwardMode::UnconditionalSpecific,
        ForwardMode::Busy,
        ForwardMode::BusyInternal,
        ForwardMode::BusyExternal,
        ForwardMode::BusySpecific,
        ForwardMode::NoAnswer,
        ForwardMode::NoAnswerInternal,
        ForwardMode::NoAnswerExternal,
        ForwardMode::NoAnswerSpecific,
        ForwardMode::BusyNoAnswer,
        ForwardMode::BusyNoAnswerInternal,
        ForwardMode::BusyNoAnswerExternal,
        ForwardMode::BusyNoAnswerSpecific,
    ];

    /// The condition part of the mode.
    pub fn condition(self) -> ForwardCondition {
        use ForwardMode::*;
        match self {
            Unconditional
            | UnconditionalInternal
            | UnconditionalExternal
            | UnconditionalSpecific => ForwardCondition::Unconditional,
            Busy | BusyInternal | BusyExternal | BusySpecific => ForwardCondition::Busy,
            NoAnswer | NoAnswerInternal | NoAnswerExternal | NoAnswerSpecific => {
                ForwardCondition::NoAnswer
            }
            BusyNoAnswer | BusyNoAnswerInternal | BusyNoAnswerExternal | BusyNoAnswerSpecific => {
                ForwardCondition::BusyNoAnswer
            }
        }
    }

    /// The caller part of the mode.
    pub fn callers(self) -> CallerFilter {
        use ForwardMode::*;
        match self {
            Unconditional | Busy | NoAnswer | BusyNoAnswer => CallerFilter::All,
            UnconditionalInternal | BusyInternal | NoAnswerInternal | BusyNoAnswerInternal => {
                CallerFilter::Internal
            }
            UnconditionalExternal | BusyExternal | NoAnswerExternal | BusyNoAnswerExternal => {
                CallerFilter::External
            }
            UnconditionalSpecific | BusySpecific | NoAnswerSpecific | BusyNoAnswerSpecific => {
                CallerFilter::Specific
            }
        }
    }
}

/// One forwarding rule of an address (`LINEFORWARD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRule {
    /// When the rule fires and for which callers.
    pub mode: ForwardMode,
    /// Where calls go; `None` means do-not-disturb for that condition.
    pub to: Option<String>,
    /// The caller address, for the `*specific` modes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

/// How to park a call (`LINEPARKMODE_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParkMode {
    /// Park at this address (a park slot).
    Directed(String),
    /// The switch picks a free slot and returns it.
    NonDirected,
}

/// What a call-completion request asks for (`LINECALLCOMPLMODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompletionMode {
    /// Wait until the busy address frees, then ring it.
    CampOn,
    /// Ring the caller back when the called address frees, then call it.
    Callback,
    /// Join the busy address's call.
    Intrude,
    /// Leave a canned message for the called address.
    Message,
}

/// How a consultation call is finished (`LINETRANSFERMODE_*`, 3.x `FINISH_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// Join the two far parties; both of this address's calls go idle.
    Transfer,
    /// Make a three-way conference.
    Conference,
}

/// Whom a call is handed off to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandoffTarget {
    /// The application with this name.
    App(String),
    /// The highest-priority application that opened the line as owner for this media mode.
    MediaMode(MediaMode),
}

/// Where a pickup looks for a ringing call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PickupTarget {
    /// The call alerting at this address.
    Address(String),
    /// Any call alerting in this pickup group.
    Group(String),
    /// linePickup naming both: the call alerting at this address (first),
    /// which must be in this pickup group (second; `invalgroupid` if not).
    AddressInGroup(String, String),
    /// linePickup naming neither: the call waiting at the picking address
    /// itself, alerting there while the address has another call ("If both
    /// are NULL, the pickup is of a call-waiting call on the address").
    CallWaiting,
}

/// A party of a call: its address and, when known, a display name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// Directory number or external number.
    pub address: String,
    /// Display name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Party {
    /// A party with an address and no name.
    pub fn new(address: impl Into<String>) -> Party {
        Party {
            address: address.into(),
            name: None,
        }
    }
}
