//! The switch: its model (lines, addresses, calls, bridges, legs, park slots,
//! completion requests, timers), the plumbing every operation shares (handles
//! and privileges, state changes and their events, legs and what they hear),
//! and the dispatch of inputs.
//!
//! The operations themselves live in the sibling modules: `ops` (call
//! control), `conference`, `features` (park, pickup, forward, completion),
//! `signal` (what devices report) and `route` (where a dialled call goes).

mod admin;
mod cluster;
mod conference;
mod features;
mod media;
mod mediaops;
mod ops;
mod rights;
mod route;
mod signal;
#[cfg(any(test, feature = "test-util"))]
mod typed;

use crate::config::{AppConfig, LineConfig, SwitchConfig};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, BridgeId, CallId, CompletionId, LegId, LineId, RequestId, Timestamp};
use crate::output::{
    AppEvent, CallInfo, Direction, Effect, EventBody, InfoField, MediaSource, Output, PromptPlay,
    ReleaseCause, Reply, Tone,
};
use crate::types::{
    CallOrigin, CallReason, CallState, CallStateKind, CompletionMode, ConnectedMode, ForwardRule,
    HandoffTarget, LineKind, MediaMode, ParkMode, Party, PickupTarget, Privilege, SpecialInfoMode,
    TransferMode,
};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

pub use admin::{CallSummary, CompletionView};
pub use signal::LegEvent;
#[cfg(any(test, feature = "test-util"))]
pub use typed::TypedOps;

/// One input to the switch.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// An application's request.
    Command {
        /// The requesting application.
        app: AppId,
        /// What it asks for.
        command: Command,
    },
    /// A device reported something about one of its legs.
    Leg {
        /// The leg.
        leg: LegId,
        /// What happened.
        event: LegEvent,
    },
    /// A device started a call by itself (an INVITE from a phone or a trunk).
    /// `leg` comes from [`Switch::allocate_leg`].
    DeviceCall {
        /// The new inbound leg.
        leg: LegId,
        /// The calling address (a phone's address, or a trunk's).
        from: String,
        /// For calls from a trunk: the external caller's number.
        external_caller: Option<String>,
        /// What the device dialled.
        to: String,
    },
    /// Another node of the cluster offers a call from one of its addresses
    /// to one of this node's (ADR 0002, "calls between nodes"): the calling
    /// address's own node has already checked and counted its side, so this
    /// node only routes to `to` by its own rules, as for a call from a phone
    /// of the same switch. `leg` comes from [`Switch::allocate_leg`].
    NodeCall {
        /// The new inbound leg (the other node's call).
        leg: LegId,
        /// The calling address, served by the other node.
        from: String,
        /// For a carrier's call (`from` is a trunk line's address): the
        /// external caller's number.
        external_caller: Option<String>,
        /// The address called.
        to: String,
        /// Times the call was forwarded before it reached this node.
        forward_hops: u8,
    },
    /// A device sent an INVITE that replaces another leg's dialog (RFC 3891):
    /// a pickup when that leg is ringing, taking the call over when it is
    /// established. `leg` comes from [`Switch::allocate_leg`].
    DeviceReplaces {
        /// The new inbound leg.
        leg: LegId,
        /// The address of the device that sent the INVITE.
        from: String,
        /// The leg whose dialog it replaces.
        replaces: LegId,
    },
    /// Time passed: fire every timer due at `now`.
    Timeout,
}

/// An application's request: one variant per TAPI operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `lineMakeCall` / `ITAddress::CreateCall` + `Connect`: place a call from
    /// `from` (an address on a line the app has open) to `to`, or with no
    /// destination get dial tone. The app becomes the call's sole owner.
    ///
    /// From a phone line this is third-party call control: tapir first rings
    /// (or, with auto-answer, silently connects) the phone, and only when it
    /// answers calls the destination. From a route point tapir itself calls.
    /// Destinations are checked before anything happens (`invaladdress`);
    /// busy and unanswered destinations show up later as call states. A
    /// destination ending in `;` is partial: the call is placed with the
    /// digits so far and stays `dialing` until `Dial` completes the number.
    MakeCall {
        /// Calling address.
        from: String,
        /// Destination, or none for dial tone.
        to: Option<String>,
    },
    /// `lineAnswer` / `Answer`: answer an offering or accepted call. On a route
    /// point tapir answers at once; a phone must support remote answer
    /// (`operationunavail` otherwise) and the call connects when it does.
    Answer(CallId),
    /// `lineAccept`: claim an offering call (state `accepted`); stops the
    /// no-answer forwarding timer, so the call keeps ringing here.
    Accept(CallId),
    /// `lineDial` / `Dial`: on a call at dial tone or dialing, add digits (a
    /// trailing `;` means more will follow) and route the number when
    /// complete; on a connected call the digits are sent as DTMF.
    Dial(CallId, String),
    /// `lineDrop` / `Disconnect`: end the call (reject it when offering). The
    /// call goes idle; the far party sees `disconnected`. Dropping a
    /// consultation call reconnects the call it consulted for (TAPI's
    /// auto-reconnect); dropping a conference call ends every member.
    Drop(CallId),
    /// `lineDeallocateCall`: give up the app's handle, in any call state (TAPI
    /// 2.0 and later, even for the sole owner). The physical call is
    /// unaffected and may become ownerless; a live route-point call that no
    /// application has a handle to any more is dropped, since nobody else
    /// could end it.
    Deallocate(CallId),
    /// `lineHold` / `Hold(TRUE)`: put a connected call on hold; the far party
    /// hears music on hold. Holding a held call succeeds and changes nothing
    /// (tapir's choice: hold never toggles, and there is one hold state
    /// whether the phone's key or an app held the call).
    Hold(CallId),
    /// `lineUnhold` / `Hold(FALSE)`: retrieve a held call. Retrieving a call
    /// held for a transfer or a conference abandons the consultation call.
    /// Unholding a call that is already talking succeeds and changes nothing.
    Unhold(CallId),
    /// `lineSwapHold` / `SwapHold`: swap the active call and a held one. Between
    /// a consultation call and the call held for its transfer, the roles swap
    /// too, so `complete_transfer` works from either side.
    ///
    /// Its fields: active, held.
    SwapHold(CallId, CallId),
    /// `lineBlindTransfer` / `BlindTransfer`: send the far party of a connected
    /// (or held) call to `to`; this call goes idle and the destination sees
    /// reason `transfer`.
    BlindTransfer(CallId, String),
    /// `lineSetupTransfer`: hold a connected call pending transfer and return a
    /// new consultation call at dial tone (app sole owner).
    SetupTransfer(CallId),
    /// `lineCompleteTransfer`: in transfer mode join the two far parties (both
    /// calls go idle); in conference mode make a three-way conference and
    /// return the new conference call.
    ///
    /// Its fields: call, consultation call, mode.
    CompleteTransfer(CallId, CallId, TransferMode),
    /// 3.x `Finish` on a consultation call: complete its transfer, or add it
    /// to its conference.
    ///
    /// Its fields: the consultation call, mode.
    Finish(CallId, TransferMode),
    /// `lineSetupConference` / `Conference`: turn a connected two-party call
    /// into a conference. Returns the conference call (`onholdpendconf`) and a
    /// consultation call at dial tone; the original call becomes
    /// `conferenced`. `parties` is the most parties the app expects (the
    /// controller included); more than the switch allows is `conferencefull`.
    ///
    /// Its fields: call, parties.
    SetupConference(CallId, Option<usize>),
    /// `linePrepareAddToConference`: hold a connected conference pending an
    /// addition and return a new consultation call at dial tone. The other
    /// parties keep talking to each other meanwhile.
    PrepareAddToConference(CallId),
    /// `lineAddToConference` / `Conference`: add a consultation call (or any
    /// two-party call of the same line) to the conference. The consultation
    /// call becomes `conferenced`, the conference `connected`. A call still
    /// ringing may be added; its party joins when it answers.
    ///
    /// Its fields: conference, consultation call.
    AddToConference(CallId, CallId),
    /// `lineRemoveFromConference` / `RemoveFromConference`: remove any member
    /// (TAPI's `LINEREMOVEFROMCONF_ANY`). The member goes idle and its remote
    /// party is disconnected; with one member left, the conference collapses
    /// into a two-party call (conference call idle, last member connected).
    RemoveFromConference(CallId),
    /// `lineGetConfRelatedCalls`: the conference call first, then its members.
    /// The app receives monitor handles to the ones it did not know (except
    /// on a secure call, which admits no new monitors).
    ConfRelatedCalls(CallId),
    /// `lineRedirect`: send an offering call elsewhere before it is answered;
    /// it goes idle here. While the caller's own INVITE is unanswered (a
    /// phone or a carrier called in) the caller gets a 302 to `to` and calls
    /// again; otherwise tapir re-targets the caller's call, which arrives at
    /// `to` with reason `redirect`.
    Redirect(CallId, String),
    /// `linePark` / `ParkDirect`, `ParkIndirect`: park the far party of a
    /// connected call in a park slot (directed: the slot given, which must be
    /// free; non-directed: the first free slot) and return the slot. This call
    /// goes idle; the parked party hears music on hold (`connected`,
    /// mode `activeheld`) until someone unparks it, or until the park time
    /// runs out and it rings back at this address with reason `reminder`.
    Park(CallId, ParkMode),
    /// `lineUnpark` / `Unpark`: retrieve the call parked in `slot` to
    /// `address`. Returns the new call (app sole owner, reason `unpark`).
    ///
    /// Its fields: address, park slot.
    Unpark(String, String),
    /// `linePickup` / `Pickup`: answer at `address` a call ringing elsewhere —
    /// at one address, or anywhere in a pickup group (the oldest ringing call
    /// first). Returns the new call (app sole owner, reason `pickup`); the
    /// ringing call is `disconnected` with mode `pickup`. Secure calls cannot
    /// be picked up.
    ///
    /// Its fields: address, target.
    Pickup(String, PickupTarget),
    /// `lineForward` / `ITAddress::Forward`: replace the forwarding rules of
    /// an address (an empty list cancels forwarding). A rule without a
    /// destination is do-not-disturb for its condition. `no_answer_rings` is
    /// clamped to 1–20. Every app with the line open gets `address.forwarding`.
    ///
    /// Its fields: address, rules, no-answer rings.
    Forward(String, Vec<ForwardRule>, Option<u32>),
    /// `lineForward` with `bAllAddresses` TRUE: the same rules for every
    /// address of the line ("forward requests on all addresses on the
    /// line"). All addresses take the list or none does; each one's
    /// `address.forwarding` goes to every app with the line open.
    ///
    /// Its fields: line, rules, no-answer rings.
    ForwardLine(LineId, Vec<ForwardRule>, Option<u32>),
    /// `lineCompleteCall`: on a busy (or, for callback and message, ringing)
    /// call to an address of this switch:
    /// camp-on keeps the caller waiting with ringback and offers the call
    /// (reason `campedon`) when the address is free; callback ends this call
    /// and, when the address is free, rings the caller (reason
    /// `callcompletion`) and calls the address once the caller answers;
    /// intrude joins the busy address's two-party call at once; message
    /// leaves canned message `message_id` for the address. Returns the
    /// completion id; `completion.done` reports the outcome.
    ///
    /// Its fields: call, mode, message id.
    CompleteCall(CallId, CompletionMode, Option<u32>),
    /// `lineUncompleteCall`: cancel a pending camp-on or callback. A camped-on
    /// caller goes back to busy.
    UncompleteCall(CompletionId),
    /// `lineSecureCall`: protect the call from interruptions for the rest of
    /// its life: no call waiting (the address reads busy), no intrusion, no
    /// pickup, no new monitor handles; encrypted media where the legs allow.
    SecureCall(CallId),
    /// `lineHandoff` / `HandoffDirect` / `HandoffIndirect`: make another app an
    /// owner, in any call state. The requesting app keeps its own privilege,
    /// and the call keeps its media mode (`SetMediaMode` changes that). By
    /// media mode, `unknown` names the app that handles calls of unknown
    /// media mode.
    Handoff(CallId, HandoffTarget),
    /// `lineSetMediaMode`: set the call's media mode (its `media_mode` in the
    /// call's info); every app with a handle gets `call.info` `mediamode`.
    /// Any call state; the app must own the call ("The call state of hCall
    /// can be any state").
    SetMediaMode(CallId, MediaMode),
    /// `lineGenerateDigits` / `GenerateDigits`: send DTMF in-band to the far
    /// parties of a connected call. Characters that are not digits are
    /// skipped, as TAPI says.
    GenerateDigits(CallId, String),
    /// `lineSetCallPrivilege`: become owner or monitor of a call the app has a
    /// handle to. The sole owner of a live call cannot step down.
    SetCallPrivilege(CallId, Privilege),
    /// Play prompt `name` to the party connected to route point call `call`
    /// (instead of the silence it hears otherwise); `looping` repeats it
    /// until stopped, else a `call.media` `done` event follows its end. A
    /// prompt already playing is replaced (`call.media` `stopped`). Fails
    /// with `operationunavail` on a call tapir does not terminate (a phone's
    /// or a trunk's), `invalparam` for a malformed name, `invalcallstate`
    /// unless the call is connected.
    ///
    /// Its fields: route point call, prompt name, loop.
    PlayPrompt(CallId, String, bool),
    /// Stop the prompt playing on route point call `call` (`call.media`
    /// `stopped`); nothing playing is not an error.
    StopMedia(CallId),
    /// `lineGatherDigits`: collect the digits that reach the call until
    /// the count, a termination digit or a timeout; `digits.gathered` says
    /// which. A new gathering of the same app replaces the one before
    /// (`cancelled`), as does the call's end. Owners only; connected calls.
    GatherDigits(CallId, crate::mediaops::GatherSpec),
    /// `lineGenerateTone`: play a tone to the far parties of a connected
    /// call, over what they hear. Owners only.
    GenerateTone(CallId, crate::mediaops::ToneRequest),
    /// `lineMonitorDigits`, `lineMonitorTones` and `lineMonitorMedia`
    /// together: what this app is told of the call's media
    /// (`digits.received`, `tone.detected`, `media.detected`), replacing
    /// what it asked before. Owners and monitors. A detected `g3fax` sets
    /// the call's media mode and hands the call to the line's owner for
    /// `g3fax`, if another app is one.
    Monitor(CallId, crate::mediaops::MonitorSpec),
}

impl Command {
    /// The operation's name in TAPI: the TAPI 2.x function (`lineMakeCall`),
    /// or the TAPI 3.x method where 2.x has none (`Finish`); the two
    /// operations on a route point call's prompt, which TAPI leaves to wave
    /// devices, are named `PlayPrompt` and `StopMedia`.
    pub fn tapi_name(&self) -> &'static str {
        use Command::*;
        match self {
            MakeCall { .. } => "lineMakeCall",
            Answer(_) => "lineAnswer",
            Accept(_) => "lineAccept",
            Dial(..) => "lineDial",
            Drop(_) => "lineDrop",
            Deallocate(_) => "lineDeallocateCall",
            Hold(_) => "lineHold",
            Unhold(_) => "lineUnhold",
            SwapHold(..) => "lineSwapHold",
            BlindTransfer(..) => "lineBlindTransfer",
            SetupTransfer(_) => "lineSetupTransfer",
            CompleteTransfer(..) => "lineCompleteTransfer",
            Finish(..) => "Finish",
            SetupConference(..) => "lineSetupConference",
            PrepareAddToConference(_) => "linePrepareAddToConference",
            AddToConference(..) => "lineAddToConference",
            RemoveFromConference(_) => "lineRemoveFromConference",
            ConfRelatedCalls(_) => "lineGetConfRelatedCalls",
            Redirect(..) => "lineRedirect",
            Park(..) => "linePark",
            Unpark(..) => "lineUnpark",
            Pickup(..) => "linePickup",
            Forward(..) | ForwardLine(..) => "lineForward",
            CompleteCall(..) => "lineCompleteCall",
            UncompleteCall(_) => "lineUncompleteCall",
            SecureCall(_) => "lineSecureCall",
            Handoff(..) => "lineHandoff",
            SetMediaMode(..) => "lineSetMediaMode",
            GenerateDigits(..) => "lineGenerateDigits",
            SetCallPrivilege(..) => "lineSetCallPrivilege",
            PlayPrompt(..) => "PlayPrompt",
            StopMedia(_) => "StopMedia",
            GatherDigits(..) => "lineGatherDigits",
            GenerateTone(..) => "lineGenerateTone",
            Monitor(..) => "lineMonitorMedia",
        }
    }

    /// The operation's name in a call detail record's `operations` and in
    /// the `op` label of the `tapir_operations_total` metric (`makecall`,
    /// `blindtransfer`, `play`): short lower-case names that API.md fixes.
    pub fn label(&self) -> &'static str {
        use Command::*;
        match self {
            MakeCall { .. } => "makecall",
            Answer(_) => "answer",
            Accept(_) => "accept",
            Dial(..) => "dial",
            Drop(_) => "drop",
            Deallocate(_) => "deallocate",
            Hold(_) => "hold",
            Unhold(_) => "unhold",
            SwapHold(..) => "swaphold",
            BlindTransfer(..) => "blindtransfer",
            SetupTransfer(_) => "setuptransfer",
            CompleteTransfer(..) => "completetransfer",
            Finish(..) => "finish",
            SetupConference(..) => "setupconference",
            PrepareAddToConference(_) => "prepareaddtoconference",
            AddToConference(..) => "addtoconference",
            RemoveFromConference(_) => "removefromconference",
            ConfRelatedCalls(_) => "confrelatedcalls",
            Redirect(..) => "redirect",
            Park(..) => "park",
            Unpark(..) => "unpark",
            Pickup(..) => "pickup",
            Forward(..) | ForwardLine(..) => "forward",
            CompleteCall(..) => "completecall",
            UncompleteCall(_) => "uncompletecall",
            SecureCall(_) => "securecall",
            Handoff(..) => "handoff",
            SetMediaMode(..) => "setmediamode",
            GenerateDigits(..) => "generatedigits",
            SetCallPrivilege(..) => "setcallprivilege",
            PlayPrompt(..) => "play",
            StopMedia(_) => "stopmedia",
            GatherDigits(..) => "gather",
            GenerateTone(..) => "tone",
            Monitor(..) => "monitor",
        }
    }
}

/// Which operation a consultation call was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsultPurpose {
    Transfer,
    Conference,
}

/// What a call waits for its own device to answer before doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Nothing: the call is not waiting for its device.
    None,
    /// Route the call to this destination (make call from a phone).
    Route(Arc<str>, CallReason),
    /// Give dial tone.
    Dialtone,
    /// Join the call already waiting in the call's bridge (pickup, unpark).
    Join,
}

/// One address's view of a call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Call {
    pub id: CallId,
    pub line: LineId,
    pub address: Arc<str>,
    pub state: CallState,
    pub reason: CallReason,
    pub origin: CallOrigin,
    pub caller: Party,
    pub called: Party,
    pub connected: Option<Party>,
    pub redirecting: Option<Party>,
    pub bridge: Option<BridgeId>,
    pub leg: Option<LegId>,
    /// Every app's handle and privilege, in the order they were given.
    pub handles: Vec<(AppId, Privilege)>,
    /// The consultation call this call waits on (transfer or conference).
    pub consult: Option<CallId>,
    /// For a consultation call: the call (or conference) it consults for.
    pub consult_of: Option<(CallId, ConsultPurpose)>,
    /// For a conference call: its members.
    pub members: Option<Vec<CallId>>,
    /// For a conference member: its conference call.
    pub member_of: Option<CallId>,
    /// For a conference member: the remote party's call it stands for.
    pub remote: Option<CallId>,
    pub secure: bool,
    pub created_at: Timestamp,
    pub media_mode: MediaMode,
    pub completion: Option<CompletionId>,
    /// Digits dialled so far.
    pub dialed: String,
    pub pending: Pending,
    pub no_answer_timer: Option<(Timestamp, u64)>,
    pub forward_hops: u8,
    /// For a route point call tapir terminates: the prompt it plays to the caller.
    pub prompt: Option<PromptPlay>,
    /// The call is at an address another node of the cluster serves: this
    /// node's half of a call between nodes, whose address's rules
    /// (forwarding, busy, ring time) the serving node applies.
    pub served_elsewhere: bool,
}

/// The set of calls that hear each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bridge {
    pub calls: Vec<CallId>,
    /// The conference call, when this bridge is a conference.
    pub conference: Option<CallId>,
}

/// The wire endpoint of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leg {
    pub call: CallId,
    /// The INVITE came from the device (else tapir sent it).
    pub inbound: bool,
    pub answered: bool,
    /// The device put the call on hold by itself.
    pub device_held: bool,
    /// The hold state tapir last asked a remote-controlled device to take
    /// (`Some(true)`: hold), until the device reports its own state.
    pub remote_asked: Option<bool>,
    pub direction: Direction,
    pub media: MediaSource,
}

/// How one app opened one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LineOpen {
    pub app: AppId,
    pub owner: bool,
    pub monitor: bool,
    pub media_modes: Vec<MediaMode>,
    pub order: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub kind: LineKind,
    pub addresses: Vec<Arc<str>>,
    pub name: Option<String>,
    pub pickup_group: Option<String>,
    pub auto_answer: bool,
    pub remote_answer: bool,
    pub max_calls: usize,
    /// A trunk line's dialled prefix (see [`LineConfig::prefix`]).
    pub prefix: Option<Arc<str>>,
    /// What the line may dial (see [`LineConfig::outbound`]).
    pub outbound: crate::config::Outbound,
    /// A trunk line's calls may go back out of a trunk.
    pub allow_hairpin: bool,
    pub opens: Vec<LineOpen>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub line: LineId,
    pub forwarding: Vec<ForwardRule>,
    pub no_answer_rings: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct App {
    pub name: String,
    pub priority: u32,
    /// First addresses of the lines it may open (`*`: all).
    pub lines: Vec<String>,
    /// The privileges it may hold.
    pub privileges: Vec<Privilege>,
    /// Its permissions beyond call control.
    pub permissions: Vec<crate::config::AppPermission>,
}

/// A call waiting in a park slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parked {
    /// The parked party's call.
    pub call: CallId,
    /// The address that parked it (where a reminder rings).
    pub parker: Arc<str>,
    pub timer: Option<(Timestamp, u64)>,
}

/// A pending call-completion request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub app: AppId,
    pub mode: CompletionMode,
    /// The address that asked.
    pub from: Arc<str>,
    /// The address it waits for.
    pub to: Arc<str>,
    /// Camp-on: the waiting caller's call.
    pub caller_call: Option<CallId>,
    /// Callback after no answer: wait until the target has been busy once.
    pub needs_activity: bool,
    pub timer: (Timestamp, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    NoAnswer(CallId),
    ParkReminder,
    CompletionExpiry(CompletionId),
    Gather(CallId, AppId),
}

/// Everything that is telephony state, kept apart from counters and queues so
/// a test can compare it before and after a rejected request.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Model {
    pub lines: BTreeMap<LineId, Line>,
    pub addresses: BTreeMap<Arc<str>, Address>,
    pub apps: BTreeMap<AppId, App>,
    pub calls: BTreeMap<CallId, Box<Call>>,
    /// Every call at each address, oldest first: an index over `calls`, so
    /// that call limits and busy checks need not scan every call.
    pub by_address: BTreeMap<Arc<str>, Vec<CallId>>,
    pub bridges: BTreeMap<BridgeId, Bridge>,
    pub legs: BTreeMap<LegId, Leg>,
    pub parks: BTreeMap<Arc<str>, Parked>,
    pub completions: BTreeMap<CompletionId, Completion>,
    pub timers: BTreeMap<(Timestamp, u64), Timer>,
    /// Gatherings in progress, per call and app (`lineGatherDigits`).
    pub gathers: BTreeMap<(CallId, AppId), mediaops::Gather>,
    /// What each app monitors on each call, when not the default.
    pub monitors: BTreeMap<(CallId, AppId), crate::mediaops::MonitorSpec>,
    /// What the media plane detects on each leg, as last told.
    pub detecting: BTreeMap<LegId, mediaops::Detecting>,
    /// A monitor changed since what is detected was last worked out.
    pub detect_dirty: bool,
}

/// The switch. See the crate documentation for how to drive it.
#[derive(Clone, Debug)]
pub struct Switch {
    pub(crate) cfg: SwitchConfig,
    pub(crate) m: Model,
    pub(crate) now: Timestamp,
    out: VecDeque<Output>,
    /// Events of the request being handled; flushed after its reply.
    staging: Option<Vec<(AppId, EventBody)>>,
    /// Calls whose media may have changed since the last flush.
    touched: Vec<CallId>,
    seqs: BTreeMap<AppId, u64>,
    next_id: u64,
    next_timer: u64,
    next_open: u64,
    reported_timeout: Option<Timestamp>,
    /// In a cluster, the addresses this node serves (see
    /// [`Switch::set_served`]); `None` on a single node, which serves all.
    pub(crate) served: Option<HashSet<Arc<str>>>,
}

impl Default for Switch {
    fn default() -> Self {
        Switch::new(SwitchConfig::default())
    }
}

impl Switch {
    /// A switch with no lines and no apps.
    pub fn new(cfg: SwitchConfig) -> Switch {
        Switch {
            cfg,
            m: Model::default(),
            now: Timestamp(0),
            out: VecDeque::new(),
            staging: None,
            touched: Vec::new(),
            seqs: BTreeMap::new(),
            next_id: 1,
            next_timer: 1,
            next_open: 1,
            reported_timeout: None,
            served: None,
        }
    }

    /// The switch-wide settings.
    pub fn config(&self) -> &SwitchConfig {
        &self.cfg
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ------------------------------------------------------------------
    // Configuration
    // ------------------------------------------------------------------

    /// Add a line. Fails with `invaladdress` when an address is empty or
    /// already belongs to another line or a park slot, `invalparam` for a
    /// prefix on a line that is not a trunk or one that is not dialable, and
    /// for text too long or holding control characters
    /// ([`LineConfig::check_text`]).
    pub fn add_line(&mut self, cfg: LineConfig) -> Result<LineId, TapiError> {
        if cfg.addresses.is_empty() {
            return fail(ErrorCode::InvalAddress, "a line needs at least one address");
        }
        cfg.check_text()?;
        let prefix = route::check_prefix(&cfg)?;
        route::check_hairpin(&cfg)?;
        for a in &cfg.addresses {
            if route::normalize(a).as_deref() != Some(a.as_str()) {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("'{a}' is not a valid directory number"),
                );
            }
            if self.m.addresses.contains_key(a.as_str()) || self.cfg.park_slots.contains(a) {
                return fail(
                    ErrorCode::InvalAddress,
                    format!("address {a} is already in use"),
                );
            }
        }
        let id = LineId(self.id());
        let addresses: Vec<Arc<str>> = cfg
            .addresses
            .iter()
            .map(|a| Arc::from(a.as_str()))
            .collect();
        for a in &addresses {
            self.m.addresses.insert(
                a.clone(),
                Address {
                    line: id,
                    forwarding: Vec::new(),
                    no_answer_rings: self.cfg.default_no_answer_rings,
                },
            );
        }
        self.m.lines.insert(
            id,
            Line {
                kind: cfg.kind,
                addresses,
                name: cfg.name,
                pickup_group: cfg.pickup_group,
                auto_answer: cfg.auto_answer,
                remote_answer: cfg.remote_answer,
                max_calls: cfg.max_calls.max(1),
                prefix,
                outbound: cfg.outbound,
                allow_hairpin: cfg.allow_hairpin,
                opens: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Register an application; it then opens lines to see and control calls.
    pub fn register_app(&mut self, cfg: AppConfig) -> AppId {
        let id = AppId(self.id());
        self.m.apps.insert(id, App::from_config(cfg));
        self.seqs.insert(id, 0);
        id
    }

    /// The line that owns `address`.
    pub fn line_of(&self, address: &str) -> Option<LineId> {
        self.m.addresses.get(address).map(|a| a.line)
    }

    /// The app registered under `name`.
    pub fn app_named(&self, name: &str) -> Option<AppId> {
        self.m
            .apps
            .iter()
            .find(|(_, a)| a.name == name)
            .map(|(id, _)| *id)
    }

    /// A fresh leg id for an inbound leg, to pass with [`Input::DeviceCall`].
    pub fn allocate_leg(&mut self) -> LegId {
        LegId(self.id())
    }

    // ------------------------------------------------------------------
    // Driving
    // ------------------------------------------------------------------

    /// Feed one input in at time `now`. Returns the request id for commands;
    /// the reply comes out as an event (and from the typed methods directly).
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Option<RequestId> {
        self.advance(now);
        match input {
            Input::Command { app, command } => Some(self.request(now, app, command).0),
            Input::Leg { leg, event } => {
                self.leg_event(leg, event);
                self.flush();
                None
            }
            Input::DeviceCall {
                leg,
                from,
                external_caller,
                to,
            } => {
                self.device_call(leg, &from, external_caller, &to);
                self.flush();
                None
            }
            Input::NodeCall {
                leg,
                from,
                external_caller,
                to,
                forward_hops,
            } => {
                self.node_call(leg, &from, external_caller, &to, forward_hops);
                self.flush();
                None
            }
            Input::DeviceReplaces {
                leg,
                from,
                replaces,
            } => {
                self.device_replaces(leg, &from, replaces);
                self.flush();
                None
            }
            Input::Timeout => {
                self.fire_timers();
                self.flush();
                None
            }
        }
    }

    /// The next output, until it returns `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When the switch next wants [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.m.timers.keys().next().map(|(t, _)| *t)
    }

    fn advance(&mut self, now: Timestamp) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Carry out one app command and reply to it: the reply event comes before
    /// the events the command caused, as TAPI's `LINE_REPLY` does.
    pub fn request(
        &mut self,
        now: Timestamp,
        app: AppId,
        command: Command,
    ) -> (RequestId, Result<Reply, TapiError>) {
        self.advance(now);
        let request = RequestId(self.id());
        self.staging = Some(Vec::new());
        let result = if self.m.apps.contains_key(&app) {
            self.dispatch(app, command)
        } else {
            fail(
                ErrorCode::InvalParam,
                format!("{app} is not a registered application"),
            )
        };
        let staged = self.staging.take().unwrap_or_default();
        if self.m.apps.contains_key(&app) {
            self.emit(
                app,
                EventBody::Reply {
                    request,
                    result: result.clone(),
                },
            );
        }
        for (a, body) in staged {
            self.emit(a, body);
        }
        self.flush();
        (request, result)
    }

    fn dispatch(&mut self, app: AppId, command: Command) -> Result<Reply, TapiError> {
        use Command::*;
        match command {
            MakeCall { from, to } => self
                .op_make_call(app, &from, to.as_deref())
                .map(|call| Reply::Call { call }),
            Answer(c) => self.op_answer(app, c).map(|_| Reply::Done),
            Accept(c) => self.op_accept(app, c).map(|_| Reply::Done),
            Dial(c, d) => self.op_dial(app, c, &d).map(|_| Reply::Done),
            Drop(c) => self.op_drop(app, c).map(|_| Reply::Done),
            Deallocate(c) => self.op_deallocate(app, c).map(|_| Reply::Done),
            Hold(c) => self.op_hold(app, c).map(|_| Reply::Done),
            Unhold(c) => self.op_unhold(app, c).map(|_| Reply::Done),
            SwapHold(a, h) => self.op_swap_hold(app, a, h).map(|_| Reply::Done),
            BlindTransfer(c, to) => self.op_blind_transfer(app, c, &to).map(|_| Reply::Done),
            SetupTransfer(c) => self
                .op_setup_transfer(app, c)
                .map(|consult_call| Reply::Consult { consult_call }),
            CompleteTransfer(c, x, mode) => self.op_complete_transfer(app, c, x, mode),
            Finish(x, mode) => self.op_finish(app, x, mode),
            SetupConference(c, n) => {
                self.op_setup_conference(app, c, n)
                    .map(|(conference_call, consult_call)| Reply::Conference {
                        conference_call,
                        consult_call,
                    })
            }
            PrepareAddToConference(c) => self
                .op_prepare_add(app, c)
                .map(|consult_call| Reply::Consult { consult_call }),
            AddToConference(c, x) => self.op_add_to_conference(app, c, x).map(|_| Reply::Done),
            RemoveFromConference(c) => self.op_remove_from_conference(app, c).map(|_| Reply::Done),
            ConfRelatedCalls(c) => self
                .op_conf_related_calls(app, c)
                .map(|calls| Reply::Related { calls }),
            Redirect(c, to) => self.op_redirect(app, c, &to).map(|_| Reply::Done),
            Park(c, mode) => self
                .op_park(app, c, mode)
                .map(|parked_at| Reply::Parked { parked_at }),
            Unpark(address, slot) => self
                .op_unpark(app, &address, &slot)
                .map(|call| Reply::Call { call }),
            Pickup(address, target) => self
                .op_pickup(app, &address, target)
                .map(|call| Reply::Call { call }),
            Forward(address, rules, rings) => self
                .op_forward(app, &address, rules, rings)
                .map(|_| Reply::Done),
            ForwardLine(line, rules, rings) => self
                .op_forward_line(app, line, rules, rings)
                .map(|_| Reply::Done),
            CompleteCall(c, mode, msg) => self
                .op_complete_call(app, c, mode, msg)
                .map(|completion_id| Reply::Completion { completion_id }),
            UncompleteCall(id) => self.op_uncomplete_call(app, id).map(|_| Reply::Done),
            SecureCall(c) => self.op_secure_call(app, c).map(|_| Reply::Done),
            Handoff(c, target) => self.op_handoff(app, c, target).map(|_| Reply::Done),
            SetMediaMode(c, mode) => self.op_set_media_mode(app, c, mode).map(|_| Reply::Done),
            GenerateDigits(c, d) => self.op_generate_digits(app, c, &d).map(|_| Reply::Done),
            SetCallPrivilege(c, p) => self.op_set_call_privilege(app, c, p).map(|_| Reply::Done),
            PlayPrompt(c, name, looping) => self
                .op_play_prompt(app, c, &name, looping)
                .map(|_| Reply::Done),
            StopMedia(c) => self.op_stop_media(app, c).map(|_| Reply::Done),
            GatherDigits(c, spec) => self.op_gather(app, c, spec).map(|_| Reply::Done),
            GenerateTone(c, req) => self.op_generate_tone(app, c, &req).map(|_| Reply::Done),
            Monitor(c, spec) => self.op_monitor(app, c, spec).map(|_| Reply::Done),
        }
    }

    // ------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------

    /// Queue an event for one app (staged while a request is being handled).
    pub(crate) fn emit(&mut self, app: AppId, body: EventBody) {
        if let Some(staged) = self.staging.as_mut() {
            staged.push((app, body));
            return;
        }
        let Some(seq) = self.seqs.get_mut(&app) else {
            return;
        };
        *seq += 1;
        let seq = *seq;
        self.out
            .push_back(Output::Event(AppEvent { app, seq, body }));
    }

    /// Send an event to every app with a handle to `call`.
    fn notify(&mut self, call: CallId, body: impl Fn() -> EventBody) {
        let Some(c) = self.m.calls.get(&call) else {
            return;
        };
        let apps: Vec<AppId> = c.handles.iter().map(|(a, _)| *a).collect();
        for app in apps {
            self.emit(app, body());
        }
    }

    pub(crate) fn effect(&mut self, effect: Effect) {
        self.out.push_back(Output::Effect(effect));
    }

    /// Finish an input: settle what every touched leg hears and report the next
    /// timer deadline when it changed.
    fn flush(&mut self) {
        self.check_completions();
        let mut touched = std::mem::take(&mut self.touched);
        let mut extra = Vec::new();
        for c in &touched {
            if let Some(b) = self.m.calls.get(c).and_then(|c| c.bridge)
                && let Some(bridge) = self.m.bridges.get(&b)
            {
                extra.extend(bridge.calls.iter().copied());
            }
        }
        touched.extend(extra);
        touched.sort_unstable();
        touched.dedup();
        for c in &touched {
            self.settle_media(*c);
        }
        self.settle_media_ops(&touched);
        let next = self.poll_timeout();
        if next != self.reported_timeout {
            self.reported_timeout = next;
            if let Some(at) = next {
                self.out.push_back(Output::Timeout(at));
            }
        }
    }

    // ------------------------------------------------------------------
    // Calls, handles and states
    // ------------------------------------------------------------------

    pub(crate) fn call(&self, id: CallId) -> Option<&Call> {
        self.m.calls.get(&id).map(|c| &**c)
    }

    pub(crate) fn call_mut(&mut self, id: CallId) -> Option<&mut Call> {
        self.m.calls.get_mut(&id).map(|c| &mut **c)
    }

    pub(crate) fn state(&self, id: CallId) -> CallState {
        self.call(id).map(|c| c.state).unwrap_or(CallState::Idle)
    }

    pub(crate) fn line_kind(&self, line: LineId) -> LineKind {
        self.m
            .lines
            .get(&line)
            .map(|l| l.kind)
            .unwrap_or(LineKind::RoutePoint)
    }

    /// The app's privilege on a call, or `invalcallhandle` when it has no handle.
    pub(crate) fn privilege(&self, app: AppId, call: CallId) -> Result<Privilege, TapiError> {
        self.call(call)
            .and_then(|c| c.handles.iter().find(|(a, _)| *a == app))
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                TapiError::new(
                    ErrorCode::InvalCallHandle,
                    format!("{call} is not a call this application has a handle to"),
                )
            })
    }

    /// Check that `app` owns `call`.
    pub(crate) fn owned(&self, app: AppId, call: CallId) -> Result<&Call, TapiError> {
        match self.privilege(app, call)? {
            Privilege::Owner => self.call(call).ok_or_else(|| {
                TapiError::new(ErrorCode::InvalCallHandle, format!("{call} does not exist"))
            }),
            Privilege::Monitor => fail(
                ErrorCode::NotOwner,
                format!("this application only monitors {call}; it must own it to control it"),
            ),
        }
    }

    /// Check that the call is in one of the allowed states.
    pub(crate) fn expect_state(
        &self,
        call: CallId,
        allowed: &[CallStateKind],
        op: &str,
    ) -> Result<(), TapiError> {
        let kind = self.state(call).kind();
        if allowed.contains(&kind) {
            Ok(())
        } else {
            fail(
                ErrorCode::InvalCallState,
                format!("cannot {op} {call}: it is {}", state_name(kind)),
            )
        }
    }

    /// The app's open of a line, or `invallinehandle`.
    pub(crate) fn line_open_by(&self, app: AppId, line: LineId) -> Result<&LineOpen, TapiError> {
        self.m
            .lines
            .get(&line)
            .and_then(|l| l.opens.iter().find(|o| o.app == app))
            .ok_or_else(|| {
                TapiError::new(
                    ErrorCode::InvalLineHandle,
                    format!("this application has not opened {line}"),
                )
            })
    }

    /// The line of an address the app has open, or `invaladdress` / `invallinehandle`.
    pub(crate) fn open_address(&self, app: AppId, address: &str) -> Result<LineId, TapiError> {
        let line = self.line_of(address).ok_or_else(|| {
            TapiError::new(
                ErrorCode::InvalAddress,
                format!("'{address}' is not an address of this switch"),
            )
        })?;
        self.line_open_by(app, line)?;
        Ok(line)
    }

    /// Create a call at `address` and give out handles. `creator` becomes sole
    /// owner; otherwise the highest-priority owner app of the line for the
    /// media mode does. Apps that opened the line as monitor get monitor handles.
    pub(crate) fn new_call(&mut self, spec: NewCall) -> CallId {
        let id = CallId(self.id());
        let line = self
            .m
            .addresses
            .get(&spec.address)
            .map(|a| a.line)
            .unwrap_or(LineId(0));
        let mut handles: Vec<(AppId, Privilege)> = Vec::new();
        let owner = match spec.creator {
            Some(app) => Some(app),
            None => self.owner_app_for(line, MediaMode::InteractiveVoice),
        };
        if let Some(o) = owner {
            handles.push((o, Privilege::Owner));
        }
        if let Some(l) = self.m.lines.get(&line) {
            for open in &l.opens {
                if open.monitor && !handles.iter().any(|(a, _)| *a == open.app) {
                    handles.push((open.app, Privilege::Monitor));
                }
            }
        }
        let call = Call {
            id,
            line,
            address: spec.address.clone(),
            state: spec.state,
            reason: spec.reason,
            origin: spec.origin,
            caller: spec.caller,
            called: spec.called,
            connected: None,
            redirecting: spec.redirecting,
            bridge: None,
            leg: None,
            handles: handles.clone(),
            consult: None,
            consult_of: None,
            members: None,
            member_of: None,
            remote: None,
            secure: false,
            created_at: self.now,
            media_mode: MediaMode::InteractiveVoice,
            completion: spec.completion,
            dialed: String::new(),
            pending: Pending::None,
            no_answer_timer: None,
            forward_hops: spec.forward_hops,
            prompt: None,
            served_elsewhere: self.is_served_elsewhere(&spec.address),
        };
        self.m
            .by_address
            .entry(call.address.clone())
            .or_default()
            .push(id);
        self.m.calls.insert(id, Box::new(call));
        self.note_activity(&spec.address);
        // A call an app asked for (make call, a consultation or conference
        // call, pickup, unpark; not a callback's offering call): TAPI's
        // monitors first learn of it in state unknown, "and the real state
        // follows".
        let requested = spec.creator.is_some() && spec.completion.is_none();
        for (app, privilege) in handles {
            if requested && privilege == Privilege::Monitor {
                self.announce_unknown_first(app, id);
            } else {
                self.announce(app, id, privilege);
            }
        }
        self.touched.push(id);
        id
    }

    /// Tell an app about its new handle: `call.new`, then the current state
    /// carrying the privilege (TAPI's first `LINE_CALLSTATE`).
    fn announce(&mut self, app: AppId, call: CallId, privilege: Privilege) {
        let Some(c) = self.call(call) else { return };
        let new = EventBody::CallNew {
            call,
            line: c.line,
            address: c.address.clone(),
            privilege,
            reason: c.reason,
            origin: c.origin,
        };
        let state = state_event(c, Some(privilege));
        self.emit(app, new);
        self.emit(app, state);
    }

    /// Tell a monitor about a call another app just created: `call.new`, then
    /// `unknown` carrying the privilege, then the call's real state.
    fn announce_unknown_first(&mut self, app: AppId, call: CallId) {
        let Some(c) = self.call(call) else { return };
        let new = EventBody::CallNew {
            call,
            line: c.line,
            address: c.address.clone(),
            privilege: Privilege::Monitor,
            reason: c.reason,
            origin: c.origin,
        };
        let unknown = EventBody::CallState {
            call,
            state: CallStateKind::Unknown,
            state_mode: None,
            privilege: Some(Privilege::Monitor),
            conference: None,
        };
        let state = state_event(c, None);
        self.emit(app, new);
        self.emit(app, unknown);
        self.emit(app, state);
    }

    /// Give `app` a handle with `privilege` (or raise its privilege).
    pub(crate) fn grant(&mut self, app: AppId, call: CallId, privilege: Privilege) {
        let Some(c) = self.call_mut(call) else { return };
        if let Some(h) = c.handles.iter_mut().find(|(a, _)| *a == app) {
            let before = h.1;
            h.1 = privilege;
            let c = &*c;
            if !c.state.is_idle() {
                let ev = state_event(c, Some(privilege));
                self.emit(app, ev);
            }
            let field = match (before, privilege) {
                (Privilege::Monitor, Privilege::Owner) => Some(InfoField::NumOwnerIncr),
                (Privilege::Owner, Privilege::Monitor) => Some(InfoField::NumOwnerDecr),
                _ => None,
            };
            if let Some(f) = field {
                self.info_changed(call, &[f, InfoField::NumMonitors]);
            }
        } else {
            c.handles.push((app, privilege));
            self.announce(app, call, privilege);
            let field = match privilege {
                Privilege::Owner => InfoField::NumOwnerIncr,
                Privilege::Monitor => InfoField::NumMonitors,
            };
            self.info_changed_except(call, &[field], Some(app));
        }
    }

    pub(crate) fn info_changed(&mut self, call: CallId, fields: &[InfoField]) {
        self.info_changed_except(call, fields, None);
    }

    fn info_changed_except(&mut self, call: CallId, fields: &[InfoField], except: Option<AppId>) {
        let Some(c) = self.call(call) else { return };
        let apps: Vec<AppId> = c
            .handles
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| Some(*a) != except)
            .collect();
        for app in apps {
            self.emit(
                app,
                EventBody::CallInfo {
                    call,
                    changed: fields.to_vec(),
                },
            );
        }
    }

    /// The highest-priority app that opened `line` as owner for `mode`.
    pub(crate) fn owner_app_for(&self, line: LineId, mode: MediaMode) -> Option<AppId> {
        let l = self.m.lines.get(&line)?;
        l.opens
            .iter()
            .filter(|o| o.owner && o.media_modes.contains(&mode))
            .min_by_key(|o| {
                (
                    self.m
                        .apps
                        .get(&o.app)
                        .map(|a| a.priority)
                        .unwrap_or(u32::MAX),
                    o.order,
                )
            })
            .map(|o| o.app)
    }

    /// Change a call's state and tell every app with a handle. A call never
    /// leaves `idle`.
    pub(crate) fn set_state(&mut self, call: CallId, state: CallState) {
        let Some(c) = self.call_mut(call) else { return };
        if c.state == state || c.state.is_idle() {
            return;
        }
        c.state = state;
        let c = &*c;
        let ev_apps: Vec<AppId> = c.handles.iter().map(|(a, _)| *a).collect();
        let ev = state_event(c, None);
        for app in ev_apps {
            self.emit(app, ev.clone());
        }
        self.touched.push(call);
    }

    /// Record a connected party and tell the apps.
    pub(crate) fn set_connected(&mut self, call: CallId, party: Option<Party>) {
        let Some(c) = self.call_mut(call) else { return };
        if c.connected != party {
            c.connected = party;
            self.info_changed(call, &[InfoField::Connected]);
        }
    }

    /// The party a call shows to others.
    pub(crate) fn party_of(&self, call: CallId) -> Party {
        let Some(c) = self.call(call) else {
            return Party::default();
        };
        if c.origin == CallOrigin::External {
            return c.caller.clone();
        }
        if self.line_kind(c.line) == LineKind::Trunk {
            return c.called.clone();
        }
        let name = self.m.lines.get(&c.line).and_then(|l| l.name.clone());
        Party {
            address: c.address.to_string(),
            name,
        }
    }

    /// Free a call once it is idle and no app holds a handle to it.
    pub(crate) fn maybe_free(&mut self, call: CallId) {
        let free = self
            .call(call)
            .is_some_and(|c| c.state.is_idle() && c.handles.is_empty());
        if free
            && let Some(c) = self.m.calls.remove(&call)
            && let Some(at) = self.m.by_address.get_mut(&c.address)
        {
            at.retain(|x| *x != call);
            if at.is_empty() {
                self.m.by_address.remove(&c.address);
            }
        }
    }

    /// The calls at `address`, oldest first (idle ones apps still hold
    /// included).
    pub(crate) fn calls_at_address<'a>(&'a self, address: &str) -> impl Iterator<Item = &'a Call> {
        self.m
            .by_address
            .get(address)
            .into_iter()
            .flatten()
            .filter_map(|id| self.m.calls.get(id).map(|c| &**c))
    }

    /// Take a call to `idle`: end its leg, leave its bridge, cancel its timers
    /// and undo its consultation links. Bridges left with fewer parties are the
    /// caller's business.
    pub(crate) fn go_idle(&mut self, call: CallId, cause: ReleaseCause) {
        if self.state(call).is_idle() {
            return;
        }
        self.set_state(call, CallState::Idle);
        self.release_parked(call);
        self.release_leg(call, cause);
        self.leave_bridge(call);
        self.cancel_no_answer(call);
        let Some(c) = self.call_mut(call) else { return };
        let consult = c.consult.take();
        let member_of = c.member_of.take();
        c.pending = Pending::None;
        if let Some(x) = consult
            && let Some(xc) = self.call_mut(x)
        {
            xc.consult_of = None;
        }
        self.unlink_consultation(call);
        if let Some(conf) = member_of
            && let Some(cc) = self.call_mut(conf)
            && let Some(members) = cc.members.as_mut()
        {
            members.retain(|m| *m != call);
        }
        self.cancel_completions_of(call);
        self.maybe_free(call);
    }

    /// Cut a consultation call loose from the call it consults for. The
    /// original stays held, now plainly (no transfer or addition is pending
    /// any more), for its user to retrieve; a conference with one member
    /// left collapses.
    pub(crate) fn unlink_consultation(&mut self, consult: CallId) {
        let Some((o, _)) = self.call_mut(consult).and_then(|c| c.consult_of.take()) else {
            return;
        };
        let Some(oc) = self.call_mut(o) else { return };
        if oc.consult != Some(consult) {
            return;
        }
        oc.consult = None;
        match self.state(o) {
            CallState::OnHoldPendTransfer => self.set_state(o, CallState::OnHold),
            CallState::OnHoldPendConf => {
                self.set_state(o, CallState::OnHold);
                self.collapse_if_needed(o);
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------
    // Bridges
    // ------------------------------------------------------------------

    /// A new bridge holding these calls (taken out of their old bridges).
    pub(crate) fn new_bridge(&mut self, calls: &[CallId], conference: Option<CallId>) -> BridgeId {
        let id = BridgeId(self.id());
        for c in calls {
            self.leave_bridge(*c);
        }
        self.m.bridges.insert(
            id,
            Bridge {
                calls: calls.to_vec(),
                conference,
            },
        );
        for c in calls {
            if let Some(call) = self.call_mut(*c) {
                call.bridge = Some(id);
            }
            self.touched.push(*c);
        }
        id
    }

    /// Put a call into an existing bridge.
    pub(crate) fn join_bridge(&mut self, call: CallId, bridge: BridgeId) {
        if self.call(call).and_then(|c| c.bridge) == Some(bridge) {
            return;
        }
        self.leave_bridge(call);
        if let Some(b) = self.m.bridges.get_mut(&bridge) {
            b.calls.push(call);
            if let Some(c) = self.m.calls.get_mut(&call) {
                c.bridge = Some(bridge);
            }
            let calls = b.calls.clone();
            self.touched.extend(calls);
        }
    }

    /// Take a call out of its bridge; an empty bridge is freed.
    pub(crate) fn leave_bridge(&mut self, call: CallId) {
        let Some(b) = self.call_mut(call).and_then(|c| c.bridge.take()) else {
            return;
        };
        self.touched.push(call);
        if let Some(bridge) = self.m.bridges.get_mut(&b) {
            bridge.calls.retain(|c| *c != call);
            let rest = bridge.calls.clone();
            self.touched.extend(rest.iter().copied());
            if rest.is_empty() {
                self.m.bridges.remove(&b);
            }
        }
    }

    /// The other calls in a call's bridge.
    pub(crate) fn others_in_bridge(&self, call: CallId) -> Vec<CallId> {
        self.call(call)
            .and_then(|c| c.bridge)
            .and_then(|b| self.m.bridges.get(&b))
            .map(|b| b.calls.iter().copied().filter(|c| *c != call).collect())
            .unwrap_or_default()
    }

    /// The conference call of the bridge a call is in, if that bridge is a
    /// conference.
    pub(crate) fn bridge_conference(&self, call: CallId) -> Option<CallId> {
        self.call(call)
            .and_then(|c| c.bridge)
            .and_then(|b| self.m.bridges.get(&b))
            .and_then(|b| b.conference)
    }

    /// Whether a call takes part in a conference: as its conference call, a
    /// member, or a remote party in its bridge.
    pub(crate) fn in_conference(&self, call: CallId) -> bool {
        self.call(call)
            .is_some_and(|c| c.members.is_some() || c.member_of.is_some())
            || self.bridge_conference(call).is_some()
    }

    /// The calls that called `b`: its single partner in a two-party bridge, or
    /// in a conference the member that stands for it.
    pub(crate) fn callers_of(&self, b: CallId) -> Vec<CallId> {
        match self.bridge_conference(b) {
            Some(conf) => self
                .call(conf)
                .and_then(|c| c.members.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|m| self.call(*m).and_then(|c| c.remote) == Some(b))
                .collect(),
            None => self.others_in_bridge(b),
        }
    }

    /// The one far party of a two-party connection, if the call has exactly one.
    /// Conference members' far party is the remote call they stand for.
    pub(crate) fn peer(&self, call: CallId) -> Option<CallId> {
        let c = self.call(call)?;
        let bridge = self.m.bridges.get(&c.bridge?)?;
        if c.members.is_some() {
            return None;
        }
        if let Some(conf) = bridge.conference {
            // In a conference, a member call is paired with the remote call
            // recorded as its peer.
            return self
                .call(call)
                .filter(|c| c.member_of == Some(conf))
                .and_then(|c| c.remote);
        }
        let others: Vec<CallId> = bridge
            .calls
            .iter()
            .copied()
            .filter(|c| *c != call)
            .collect();
        if others.len() == 1 {
            Some(others[0])
        } else {
            None
        }
    }

    // ------------------------------------------------------------------
    // Legs and media
    // ------------------------------------------------------------------

    /// Invite the device of the call's line to carry the call.
    pub(crate) fn create_leg(&mut self, call: CallId, target: Arc<str>, caller: Party, auto: bool) {
        let leg = LegId(self.id());
        let Some(c) = self.call_mut(call) else { return };
        c.leg = Some(leg);
        let line = c.line;
        self.m.legs.insert(
            leg,
            Leg {
                call,
                inbound: false,
                answered: false,
                device_held: false,
                remote_asked: None,
                direction: Direction::SendRecv,
                media: MediaSource::Silence,
            },
        );
        let auto_answer = auto && self.m.lines.get(&line).is_some_and(|l| l.auto_answer);
        let via_node =
            self.call(call)
                .filter(|c| c.served_elsewhere)
                .map(|c| crate::output::NodeLeg {
                    // The call it is offered for (the calling side).
                    from: self
                        .others_in_bridge(call)
                        .first()
                        .and_then(|a| self.call(*a))
                        .map_or_else(|| Arc::from(&*caller.address), |a| a.address.clone()),
                    forward_hops: c.forward_hops,
                });
        self.effect(Effect::CreateLeg {
            leg,
            call,
            line,
            target,
            caller,
            auto_answer,
            via_node,
        });
    }

    /// Invite the call's own device (the phone of its line).
    pub(crate) fn invite_own_device(&mut self, call: CallId, auto: bool) {
        let Some(c) = self.call(call) else { return };
        let target = c.address.clone();
        let caller = c.called.clone();
        self.create_leg(call, target, caller, auto);
    }

    /// End a call's leg, if it has one.
    pub(crate) fn release_leg(&mut self, call: CallId, cause: ReleaseCause) {
        let Some(leg) = self.call_mut(call).and_then(|c| c.leg.take()) else {
            return;
        };
        self.m.legs.remove(&leg);
        self.effect(Effect::ReleaseLeg { leg, cause });
    }

    /// Move a leg from one call to another (a conference call takes over its
    /// controller's device leg, and gives it back when the conference collapses).
    pub(crate) fn move_leg(&mut self, from: CallId, to: CallId) {
        let Some(leg) = self.call_mut(from).and_then(|c| c.leg.take()) else {
            return;
        };
        if let Some(l) = self.m.legs.get_mut(&leg) {
            l.call = to;
        }
        if let Some(c) = self.call_mut(to) {
            c.leg = Some(leg);
        }
        self.touched.push(to);
    }

    /// Whether a call takes part in its bridge's audio (has a device leg, or is
    /// a route point's own end).
    fn is_participant(&self, call: &Call) -> bool {
        call.leg.is_some()
            || (self.line_kind(call.line) == LineKind::RoutePoint && call.member_of.is_none())
    }

    /// Whether a participant currently talks into its bridge.
    fn is_talking(call: &Call) -> bool {
        matches!(
            call.state,
            CallState::Connected(ConnectedMode::Active) | CallState::Conferenced
        )
    }

    /// Work out what a call's leg should hear and which direction it should be
    /// offered with, and emit the effects when that changed.
    fn settle_media(&mut self, call: CallId) {
        let Some(c) = self.call(call) else { return };
        let Some(leg_id) = c.leg else { return };
        let Some(leg) = self.m.legs.get(&leg_id) else {
            return;
        };
        let (source, direction) = match c.state {
            CallState::Dialtone(_) => (MediaSource::Tone(Tone::Dialtone), Direction::SendRecv),
            CallState::Ringback => (MediaSource::Tone(Tone::Ringback), Direction::SendRecv),
            CallState::Busy(_) => (MediaSource::Tone(Tone::Busy), Direction::SendRecv),
            // A production PBX plays the special information tone where
            // the network signals one, and reorder for an equipment failure.
            CallState::SpecialInfo(mode) => {
                let tone = match mode {
                    SpecialInfoMode::CustIrreg => Tone::SitIntercept,
                    SpecialInfoMode::NoCircuit => Tone::SitNoCircuit,
                    SpecialInfoMode::Reorder => Tone::Reorder,
                };
                (MediaSource::Tone(tone), Direction::SendRecv)
            }
            CallState::Disconnected(_) => (MediaSource::Tone(Tone::Reorder), Direction::SendRecv),
            CallState::OnHold | CallState::OnHoldPendConf | CallState::OnHoldPendTransfer => {
                (MediaSource::Silence, Direction::Inactive)
            }
            CallState::Connected(ConnectedMode::ActiveHeld) => {
                (MediaSource::Tone(Tone::HoldMusic), Direction::SendOnly)
            }
            CallState::Connected(ConnectedMode::Active) | CallState::Conferenced => {
                let bridge = c
                    .bridge
                    .and_then(|b| self.m.bridges.get(&b).map(|br| (b, br)));
                match bridge {
                    Some((b, br)) => {
                        let others: Vec<&Call> = br
                            .calls
                            .iter()
                            .filter(|o| **o != call)
                            .filter_map(|o| self.m.calls.get(o).map(|c| &**c))
                            .filter(|o| self.is_participant(o))
                            .collect();
                        let prompt = match others.as_slice() {
                            [o] if Self::is_talking(o) && o.leg.is_none() => o.prompt.clone(),
                            _ => None,
                        };
                        if let Some(p) = prompt {
                            // The route point's app plays a prompt to its caller.
                            (MediaSource::Prompt(p), Direction::SendRecv)
                        } else if others.iter().any(|o| Self::is_talking(o)) {
                            (MediaSource::Bridge(b), Direction::SendRecv)
                        } else if others.iter().any(|o| o.state.is_held()) {
                            (MediaSource::Tone(Tone::HoldMusic), Direction::SendOnly)
                        } else {
                            (MediaSource::Silence, Direction::SendRecv)
                        }
                    }
                    None => (MediaSource::Silence, Direction::SendRecv),
                }
            }
            _ => (MediaSource::Silence, Direction::SendRecv),
        };
        // A phone under remote control holds and resumes its own call when
        // asked (its screen stays truthful); tapir re-offers only the others.
        let own_hold = matches!(
            c.state,
            CallState::OnHold | CallState::OnHoldPendConf | CallState::OnHoldPendTransfer
        );
        let remote_control =
            leg.answered && self.m.lines.get(&c.line).is_some_and(|l| l.remote_answer);
        let phone_holds = leg.remote_asked.unwrap_or(leg.device_held);
        let remote_effect = match (remote_control, own_hold, phone_holds) {
            (true, true, false) => Some(Effect::RemoteHold { leg: leg_id }),
            (true, false, true) => Some(Effect::RemoteRetrieve { leg: leg_id }),
            _ => None,
        };
        let change_dir = leg.answered
            && !leg.device_held
            && leg.direction != direction
            && !(remote_control && own_hold);
        let change_media = leg.media != source;
        if let Some(l) = self.m.legs.get_mut(&leg_id) {
            if change_dir {
                l.direction = direction;
            }
            if remote_effect.is_some() {
                l.remote_asked = Some(own_hold);
            }
            l.media = source.clone();
        }
        if let Some(e) = remote_effect {
            self.effect(e);
        }
        if change_dir {
            self.effect(Effect::Reoffer {
                leg: leg_id,
                direction,
            });
        }
        if change_media {
            self.effect(Effect::Media {
                leg: leg_id,
                source,
            });
        }
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    pub(crate) fn start_timer(&mut self, after_ms: u64, timer: Timer) -> (Timestamp, u64) {
        let key = (self.now.plus_ms(after_ms), self.next_timer);
        self.next_timer += 1;
        self.m.timers.insert(key, timer);
        key
    }

    pub(crate) fn cancel_timer(&mut self, key: Option<(Timestamp, u64)>) {
        if let Some(k) = key {
            self.m.timers.remove(&k);
        }
    }

    pub(crate) fn cancel_no_answer(&mut self, call: CallId) {
        let key = self.call_mut(call).and_then(|c| c.no_answer_timer.take());
        self.cancel_timer(key);
    }

    fn fire_timers(&mut self) {
        while let Some((&key, &timer)) = self.m.timers.iter().next() {
            if key.0 > self.now {
                break;
            }
            self.m.timers.remove(&key);
            match timer {
                Timer::NoAnswer(call) => self.no_answer_expired(call),
                Timer::ParkReminder => self.park_reminder_expired(key),
                Timer::CompletionExpiry(id) => self.completion_expired(id),
                Timer::Gather(call, app) => self.gather_expired(call, app, key),
            }
        }
    }

    // ------------------------------------------------------------------
    // Queries
    // ------------------------------------------------------------------

    /// A call's state as this switch knows it (any app's view).
    pub fn call_state(&self, call: CallId) -> Option<CallStateKind> {
        self.call(call).map(|c| c.state.kind())
    }

    /// A call's full state with its mode.
    pub fn call_state_full(&self, call: CallId) -> Option<CallState> {
        self.call(call).map(|c| c.state)
    }

    /// `lineGetCallInfo` / `lineGetCallStatus`: what `app` may read about `call`.
    pub fn call_info(&self, app: AppId, call: CallId) -> Result<CallInfo, TapiError> {
        let privilege = self.privilege(app, call)?;
        let c = self.call(call).ok_or_else(|| {
            TapiError::new(ErrorCode::InvalCallHandle, format!("{call} does not exist"))
        })?;
        let mut related = Vec::new();
        if let Some(x) = c.consult {
            related.push(x);
        }
        if let Some((o, _)) = c.consult_of {
            related.push(o);
        }
        if let Some(conf) = c.member_of {
            related.push(conf);
        }
        if let Some(members) = &c.members {
            related.extend(members.iter().copied());
        }
        Ok(CallInfo {
            id: call,
            address: c.address.clone(),
            line: c.line,
            state: c.state.kind(),
            state_mode: c.state.mode(),
            reason: c.reason,
            origin: c.origin,
            caller: c.caller.clone(),
            called: c.called.clone(),
            connected: c.connected.clone(),
            redirecting: c.redirecting.clone(),
            privilege,
            bridge: c.bridge,
            related_calls: related,
            secure: c.secure,
            created_at: c.created_at,
            completion: c.completion,
            num_owners: c
                .handles
                .iter()
                .filter(|(_, p)| *p == Privilege::Owner)
                .count(),
            num_monitors: c
                .handles
                .iter()
                .filter(|(_, p)| *p == Privilege::Monitor)
                .count(),
            media_mode: c.media_mode,
        })
    }

    /// Every call `app` has a handle to, oldest first.
    pub fn calls_of(&self, app: AppId) -> Vec<CallId> {
        self.m
            .calls
            .values()
            .filter(|c| c.handles.iter().any(|(a, _)| *a == app))
            .map(|c| c.id)
            .collect()
    }

    /// Every call the switch holds (including idle ones apps still hold).
    pub fn all_calls(&self) -> Vec<CallId> {
        self.m.calls.keys().copied().collect()
    }

    /// The live calls at an address.
    pub fn calls_at(&self, address: &str) -> Vec<CallId> {
        self.calls_at_address(address)
            .filter(|c| !c.state.is_idle())
            .map(|c| c.id)
            .collect()
    }

    /// The call carried by a leg.
    pub fn call_of_leg(&self, leg: LegId) -> Option<CallId> {
        self.m.legs.get(&leg).map(|l| l.call)
    }

    /// The leg carrying a call.
    pub fn leg_of(&self, call: CallId) -> Option<LegId> {
        self.call(call).and_then(|c| c.leg)
    }

    /// The leg whose audio is a call's, for taps (media streams,
    /// recordings): the call's own leg, with `false`; for a call tapir
    /// itself ends (a route point's), which has none, the leg of the one
    /// party it talks to, with `true` (its audio is then seen from the
    /// other side). `None` when there is no such single leg.
    pub fn audio_leg_of(&self, call: CallId) -> Option<(LegId, bool)> {
        if let Some(leg) = self.leg_of(call) {
            return Some((leg, false));
        }
        let peers: Vec<LegId> = self
            .bridge_calls(call)
            .into_iter()
            .filter(|c| *c != call)
            .filter_map(|c| self.leg_of(c))
            .collect();
        match peers.as_slice() {
            [leg] => Some((*leg, true)),
            _ => None,
        }
    }

    /// The calls in a call's bridge (itself included).
    pub fn bridge_calls(&self, call: CallId) -> Vec<CallId> {
        self.call(call)
            .and_then(|c| c.bridge)
            .and_then(|b| self.m.bridges.get(&b))
            .map(|b| b.calls.clone())
            .unwrap_or_default()
    }

    /// The forwarding rules of an address and its no-answer ring count.
    pub fn forwarding(&self, address: &str) -> Option<(Vec<ForwardRule>, u32)> {
        self.m
            .addresses
            .get(address)
            .map(|a| (a.forwarding.clone(), a.no_answer_rings))
    }

    /// The pending completion requests (camp-on, callback), oldest first.
    pub fn pending_completions(&self) -> Vec<CompletionId> {
        self.m.completions.keys().copied().collect()
    }

    /// The call parked in a slot.
    pub fn parked_at(&self, slot: &str) -> Option<CallId> {
        self.m.parks.get(slot).map(|p| p.call)
    }

    /// Every occupied park slot and the leg of the call parked in it.
    pub fn parked_legs(&self) -> impl Iterator<Item = (&Arc<str>, LegId)> + '_ {
        self.m
            .parks
            .iter()
            .filter_map(|(slot, p)| self.call(p.call).and_then(|c| c.leg).map(|leg| (slot, leg)))
    }

    /// The party the call on `leg` is with, as the switch knows it now:
    /// its connected party once it has one (after an answer, a transfer, a
    /// pickup), else whom it calls (a call placed from its address) or who
    /// calls it. `None` for a leg the switch does not have.
    pub fn far_party_of_leg(&self, leg: LegId) -> Option<Party> {
        let c = self.call(self.m.legs.get(&leg)?.call)?;
        if let Some(p) = &c.connected {
            return Some(p.clone());
        }
        Some(match c.origin {
            CallOrigin::Outbound => c.called.clone(),
            _ => c.caller.clone(),
        })
    }

    /// Whether the call on `leg` was placed from its address (a phone
    /// dialling, or an app's make call from it), as opposed to one that
    /// arrived there. `None` for a leg the switch does not have.
    pub fn leg_places_call(&self, leg: LegId) -> Option<bool> {
        let c = self.call(self.m.legs.get(&leg)?.call)?;
        Some(c.origin == CallOrigin::Outbound)
    }

    /// Number of bridges, legs, park slots in use, completions and timers: all
    /// zero when the switch is quiet.
    pub fn resources_in_use(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.m.bridges.len(),
            self.m.legs.len(),
            self.m.parks.len(),
            self.m.completions.len(),
            self.m.timers.len(),
        )
    }

    /// A copy of the telephony state, for comparing before and after a request.
    #[doc(hidden)]
    pub fn model_snapshot(&self) -> impl PartialEq + std::fmt::Debug + use<> {
        self.m.clone()
    }

    /// Gatherings, monitors and legs with detectors (TAPI's media
    /// operations): all zero when no call has any.
    pub fn media_ops_in_use(&self) -> (usize, usize, usize) {
        (
            self.m.gathers.len(),
            self.m.monitors.len(),
            self.m.detecting.len(),
        )
    }

    /// Check the switch's internal consistency; returns a description of the
    /// first broken rule. Used by the property tests after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (call, app) in self.m.gathers.keys().chain(self.m.monitors.keys()) {
            let held = self
                .call(*call)
                .is_some_and(|c| c.state.is_live() && c.handles.iter().any(|(a, _)| a == app));
            if !held {
                return Err(format!(
                    "{app} gathers or monitors on {call}, which it has no live handle to"
                ));
            }
        }
        if let Some(leg) = self
            .m
            .detecting
            .keys()
            .find(|l| !self.m.legs.contains_key(l))
        {
            return Err(format!("detectors on {leg}, which does not exist"));
        }
        let indexed: usize = self.m.by_address.values().map(Vec::len).sum();
        if indexed != self.m.calls.len() {
            return Err(format!(
                "{indexed} calls indexed by address, {} calls held",
                self.m.calls.len()
            ));
        }
        for (id, c) in &self.m.calls {
            if c.id != *id {
                return Err(format!("{id} stored under the wrong key"));
            }
            if !self
                .m
                .by_address
                .get(&c.address)
                .is_some_and(|at| at.contains(id))
            {
                return Err(format!("{id} is missing from the index of {}", c.address));
            }
            if let Some(b) = c.bridge {
                let Some(br) = self.m.bridges.get(&b) else {
                    return Err(format!("{id} is in {b}, which does not exist"));
                };
                if !br.calls.contains(id) {
                    return Err(format!("{id} says it is in {b}, which does not list it"));
                }
            }
            if c.state.is_idle() {
                if c.bridge.is_some() || c.leg.is_some() {
                    return Err(format!("idle {id} still has a bridge or a leg"));
                }
                if c.handles.is_empty() {
                    return Err(format!("idle {id} has no handles but was not freed"));
                }
            }
            if let Some(leg) = c.leg {
                match self.m.legs.get(&leg) {
                    Some(l) if l.call == *id => {}
                    _ => return Err(format!("{id}'s {leg} does not point back to it")),
                }
            }
            if let Some(x) = c.consult
                && self.call(x).and_then(|xc| xc.consult_of).map(|(o, _)| o) != Some(*id)
            {
                return Err(format!("{id}'s consultation call {x} does not point back"));
            }
            if let Some(members) = &c.members {
                for m in members {
                    if self.call(*m).and_then(|mc| mc.member_of) != Some(*id) {
                        return Err(format!(
                            "conference {id} lists {m}, which is not its member"
                        ));
                    }
                }
            }
            if let Some(conf) = c.member_of {
                let listed = self
                    .call(conf)
                    .and_then(|cc| cc.members.as_ref())
                    .is_some_and(|ms| ms.contains(id));
                if !listed {
                    return Err(format!(
                        "{id} is a member of {conf}, which does not list it"
                    ));
                }
                if c.state.kind() != CallStateKind::Conferenced {
                    return Err(format!("member {id} is not conferenced but {:?}", c.state));
                }
            }
            let mut apps: Vec<AppId> = c.handles.iter().map(|(a, _)| *a).collect();
            apps.sort_unstable();
            apps.dedup();
            if apps.len() != c.handles.len() {
                return Err(format!("{id} has two handles for one app"));
            }
        }
        for (b, br) in &self.m.bridges {
            if br.calls.is_empty() {
                return Err(format!("{b} is empty but was not freed"));
            }
            for c in &br.calls {
                if self.call(*c).and_then(|cc| cc.bridge) != Some(*b) {
                    return Err(format!("{b} lists {c}, which is not in it"));
                }
            }
            if let Some(conf) = br.conference {
                let Some(members) = self.call(conf).and_then(|c| c.members.as_ref()) else {
                    return Err(format!("{b}'s conference {conf} is not a conference call"));
                };
                for m in members {
                    if !br.calls.contains(m) {
                        return Err(format!("conference {conf}'s member {m} is not in {b}"));
                    }
                }
                for c in &br.calls {
                    let cc = self.call(*c);
                    let is_member = cc.and_then(|x| x.member_of) == Some(conf);
                    if is_member && !members.contains(c) {
                        return Err(format!("{c} in {b} is not listed by {conf}"));
                    }
                }
            }
        }
        for (leg, l) in &self.m.legs {
            if self.call(l.call).and_then(|c| c.leg) != Some(*leg) {
                return Err(format!(
                    "{leg} belongs to {}, which does not carry it",
                    l.call
                ));
            }
        }
        for (slot, p) in &self.m.parks {
            if !self.state(p.call).is_live() {
                return Err(format!(
                    "slot {slot} holds {}, which is no longer live",
                    p.call
                ));
            }
        }
        Ok(())
    }
}

/// How to create a call.
pub(crate) struct NewCall {
    pub address: Arc<str>,
    pub state: CallState,
    pub reason: CallReason,
    pub origin: CallOrigin,
    pub caller: Party,
    pub called: Party,
    pub redirecting: Option<Party>,
    pub creator: Option<AppId>,
    pub completion: Option<CompletionId>,
    pub forward_hops: u8,
}

/// The `call.state` event of a call's current state.
fn state_event(c: &Call, privilege: Option<Privilege>) -> EventBody {
    EventBody::CallState {
        call: c.id,
        state: c.state.kind(),
        state_mode: c.state.mode(),
        privilege,
        conference: if c.state.kind() == CallStateKind::Conferenced {
            c.member_of
        } else {
            None
        },
    }
}

/// A state's name as people read it in an error message.
pub(crate) fn state_name(kind: CallStateKind) -> &'static str {
    match kind {
        CallStateKind::Idle => "idle",
        CallStateKind::Offering => "offering",
        CallStateKind::Accepted => "accepted",
        CallStateKind::Dialtone => "at dial tone",
        CallStateKind::Dialing => "dialing",
        CallStateKind::Proceeding => "proceeding",
        CallStateKind::Ringback => "in ringback",
        CallStateKind::Busy => "busy",
        CallStateKind::SpecialInfo => "at a special information tone",
        CallStateKind::Connected => "connected",
        CallStateKind::OnHold => "on hold",
        CallStateKind::Conferenced => "conferenced",
        CallStateKind::OnHoldPendConf => "on hold pending a conference",
        CallStateKind::OnHoldPendTransfer => "on hold pending a transfer",
        CallStateKind::Disconnected => "disconnected",
        CallStateKind::Unknown => "in an unknown state",
    }
}
