//! Busy lamps and presence: RFC 6665 subscriptions to the dialog package
//! (RFC 4235, `Event: dialog`) and presence (RFC 3856, `Event: presence`)
//! of an address — a line's address or a park slot — served in the same
//! sans-IO machine, and so in the same loop, as the calls they show.
//!
//! - A `SUBSCRIBE` to `sip:<address>@<domain>` is admitted with digest like
//!   an INVITE ([`crate::Directory::admit`]), then the directory says
//!   whether the watcher may watch the address
//!   ([`crate::Directory::may_watch`]: 404, 403). An unknown package gets
//!   `489 Bad Event` with `Allow-Events`, a body (tapir has no filters)
//!   `415`, an `Expires` below [`SubscriptionConfig::min_expires`] `423`
//!   with `Min-Expires`; a longer one than
//!   [`SubscriptionConfig::max_expires`] is shortened. A watcher with
//!   [`SubscriptionConfig::max_per_watcher`] subscriptions gets `403` for
//!   one more, and when [`SubscriptionConfig::max_total`] are live a new
//!   one gets `503` with `Retry-After`.
//! - tapir answers `200` and NOTIFYs the full state at once, then on every
//!   change, with `Subscription-State: active;expires=N`. The dialog
//!   package's `version` counts up per subscription; each dialog shows
//!   `trying`, `early`, `confirmed`, once `terminated`, its direction, the
//!   far party, and the Call-ID and tags of the phone's dialog with tapir,
//!   with which another phone picks the ringing call up by an INVITE with
//!   `Replaces` (`to-tag` = the `local-tag`, tapir's, `from-tag` = the
//!   `remote-tag`, the phone's: the dialog as tapir holds it, as PBXes
//!   such as Asterisk show theirs). The far party is the switch's (after
//!   a transfer, the party the phone talks to now). A call parked in a
//!   slot shows the slot `confirmed`. A TAPI-secure call shows no party,
//!   Call-ID or tags. Unconditional forwarding and do-not-disturb show as
//!   a steady `confirmed` dialog (`forwarded`, naming the destination, or
//!   `dnd`). Presence is `open` (available), `open` with the
//!   `on-the-phone` activity while the address has a call, `busy` for
//!   do-not-disturb, `away` when forwarded, `closed` while it is not
//!   registered (looked at again when its registration runs out).
//! - NOTIFYs of one subscription are coalesced: after one, the next waits
//!   at least [`SubscriptionConfig::coalesce`] and then carries the state
//!   as it is by then; only one is in flight at a time.
//! - A refresh (`SUBSCRIBE` in the dialog) restarts the interval and
//!   NOTIFYs the state; `Expires: 0` ends the subscription with a last
//!   NOTIFY `terminated;reason=timeout`, as expiry does. A NOTIFY answered
//!   with an error (481, …) or not at all ends the subscription.
//!
//! Cost: while an address has no watcher, the B2BUA's only work for a
//! change of one of its legs is one check that no subscription exists at
//! all, or one hash lookup when some do. The state is worked out once the
//! loop's step has settled ([`crate::pump::pump`] calls
//! [`B2bua::lamps_changed`]).

use crate::{B2bua, LegState, SipTransport, reliability, uri_address, uri_user};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tapir_core::{Effect, ForwardMode, Input, LegId, Party, Switch};
use tapir_sip::dialog::{Dialog as SipDialog, DialogState};
use tapir_sip::event::{
    ALLOW_EVENTS, Availability, DialogEntry, DialogPhase, Package, dialog_info, pidf,
};
use tapir_sip::msg::{HeaderName, Message, Method};
use tapir_sip::transaction::{TransactionEvent, TransactionKey};

/// Limits and timing of subscriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// The shortest `Expires` tapir grants (seconds): a shorter non-zero
    /// one gets `423 Interval Too Brief`.
    pub min_expires: u32,
    /// The longest `Expires` tapir grants (seconds); longer ones are
    /// shortened to it.
    pub max_expires: u32,
    /// The interval granted to a SUBSCRIBE without `Expires` (seconds).
    pub default_expires: u32,
    /// Most live subscriptions of one watcher (its digest user).
    pub max_per_watcher: usize,
    /// Most live subscriptions in all.
    pub max_total: usize,
    /// The shortest time between two NOTIFYs of one subscription.
    pub coalesce: Duration,
}

impl Default for SubscriptionConfig {
    /// 60 s to 3600 s (default 3600 s, RFC 4235's), 200 subscriptions per
    /// watcher, 100,000 in all, 250 ms between NOTIFYs.
    fn default() -> Self {
        SubscriptionConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_per_watcher: 200,
            max_total: 100_000,
            coalesce: Duration::from_millis(250),
        }
    }
}

/// One live subscription, as `GET /v1/admin/subscriptions` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionView {
    /// The watcher (its digest user).
    pub watcher: String,
    /// The watched address.
    pub address: String,
    /// `dialog` or `presence`.
    pub package: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Where its NOTIFYs go.
    pub contact: SocketAddr,
}

/// The live subscriptions as the B2BUA last published them, for readers
/// outside the loop (`GET /v1/admin/subscriptions`). Written only when a
/// subscription starts, is refreshed or ends. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionTable(Arc<RwLock<HashMap<u64, Published>>>);

#[derive(Clone, Debug)]
struct Published {
    watcher: String,
    address: String,
    package: &'static str,
    expires_at: Instant,
    contact: SocketAddr,
}

impl SubscriptionTable {
    /// Every live subscription at `now`, by address then watcher.
    pub fn list(&self, now: Instant) -> Vec<SubscriptionView> {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<SubscriptionView> = table
            .values()
            .filter(|p| p.expires_at > now)
            .map(|p| SubscriptionView {
                watcher: p.watcher.clone(),
                address: p.address.clone(),
                package: p.package,
                expires_in: p.expires_at.saturating_duration_since(now).as_secs(),
                contact: p.contact,
            })
            .collect();
        list.sort_by(|a, b| (&a.address, &a.watcher).cmp(&(&b.address, &b.watcher)));
        list
    }

    fn put(&self, id: u64, s: &Subscription) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        table.insert(
            id,
            Published {
                watcher: s.watcher.clone(),
                address: s.address.to_string(),
                package: s.package.name(),
                expires_at: s.expires_at,
                contact: s.remote_addr,
            },
        );
    }

    fn remove(&self, id: u64) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        table.remove(&id);
    }
}

/// Why a subscription ends (`Subscription-State: terminated;reason=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndReason {
    Timeout,
    Deactivated,
    /// The watcher may no longer watch the address (its line's `watch`
    /// changed, or its line is gone): the last NOTIFY carries no state.
    Rejected,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Deactivated => "deactivated",
            EndReason::Rejected => "rejected",
        }
    }
}

#[derive(Debug)]
struct Subscription {
    package: Package,
    /// The `id` parameter of the SUBSCRIBE's Event header.
    event_id: Option<String>,
    /// A fetch (`Expires: 0`): it ends with its first NOTIFY.
    fetch: bool,
    /// Presence: when the address's registration runs out unless the
    /// phone registers again (the state is looked at again then).
    recheck_at: Option<Instant>,
    watcher: String,
    address: Arc<str>,
    sip: SipDialog,
    remote_addr: SocketAddr,
    transport: SipTransport,
    expires_at: Instant,
    version: u32,
    /// A NOTIFY waits to be sent at this time.
    notify_at: Option<Instant>,
    last_notify: Option<Instant>,
    in_flight: bool,
    /// The entry in [`Subscriptions::due`].
    scheduled: Option<Instant>,
    /// What the last NOTIFY showed (dialog package: the live dialogs).
    shown: Option<Shown>,
}

/// What an address's forwarding shows on its lamps, besides its calls
/// (rules for every caller or for callers on this switch, the watchers'
/// colleagues; busy, no-answer and external-only rules do not show).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    /// Calls are refused: a `confirmed` lamp, presence `busy`.
    DoNotDisturb,
    /// Calls go at once to this destination: a `confirmed` lamp showing
    /// it (as Kazoo and FusionPBX light a forwarded line's key), presence
    /// `away`.
    Forwarded(String),
}

impl Standing {
    /// What the switch's forwarding rules of `address` show.
    fn of(switch: &Switch, address: &str) -> Option<Standing> {
        let (rules, _) = switch.forwarding(address)?;
        let mut shown = None;
        for rule in rules {
            if !matches!(
                rule.mode,
                ForwardMode::Unconditional | ForwardMode::UnconditionalInternal
            ) {
                continue;
            }
            match rule.to {
                None => return Some(Standing::DoNotDisturb),
                Some(to) => shown = Some(Standing::Forwarded(to)),
            }
        }
        shown
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Shown {
    Dialogs(Vec<DialogEntry>),
    Presence(Availability),
}

/// The subscriptions of a B2BUA (part of [`B2bua`]).
#[derive(Debug)]
pub(crate) struct Subscriptions {
    cfg: SubscriptionConfig,
    subs: HashMap<u64, Subscription>,
    /// Each subscription by tapir's tag in its dialog.
    by_tag: HashMap<String, u64>,
    /// The subscriptions of each watched address.
    watchers: HashMap<Arc<str>, Vec<u64>>,
    /// The legs of each watched address.
    legs_at: HashMap<Arc<str>, Vec<LegId>>,
    /// The address each leg in `legs_at` belongs to.
    leg_lamp: HashMap<LegId, Arc<str>>,
    /// The leg parked in each watched park slot.
    parked: HashMap<Arc<str>, LegId>,
    /// The far party of each leg in `legs_at` as the switch last told
    /// (it changes with a transfer, a pickup, a park), and whether the
    /// call was placed from the address (the dialog's `direction`).
    parties: HashMap<LegId, (Party, bool)>,
    /// The watched addresses whose forwarding shows on their lamps.
    standing: HashMap<Arc<str>, Standing>,
    /// New subscriptions whose first NOTIFY goes once the step has settled
    /// (with the switch's view of their address).
    fresh: Vec<u64>,
    per_watcher: HashMap<String, usize>,
    /// NOTIFY client transactions: the subscription and where they go.
    clients: HashMap<TransactionKey, (u64, SocketAddr)>,
    /// When each subscription is due (a NOTIFY or its expiry).
    due: BTreeSet<(Instant, u64)>,
    /// Legs changed in this step, looked at once it has settled.
    touched: Vec<LegId>,
    /// Addresses whose state changed otherwise (a registration).
    touched_addresses: Vec<Arc<str>>,
    /// Where the live subscriptions are published.
    table: SubscriptionTable,
    next_id: u64,
}

impl Subscriptions {
    pub(crate) fn new(cfg: SubscriptionConfig) -> Subscriptions {
        Subscriptions {
            cfg,
            subs: HashMap::new(),
            by_tag: HashMap::new(),
            watchers: HashMap::new(),
            legs_at: HashMap::new(),
            leg_lamp: HashMap::new(),
            parked: HashMap::new(),
            parties: HashMap::new(),
            standing: HashMap::new(),
            fresh: Vec::new(),
            per_watcher: HashMap::new(),
            clients: HashMap::new(),
            due: BTreeSet::new(),
            touched: Vec::new(),
            touched_addresses: Vec::new(),
            table: SubscriptionTable::default(),
            next_id: 1,
        }
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Where a NOTIFY's client transaction sends.
    pub(crate) fn destination(&self, key: &TransactionKey) -> Option<SocketAddr> {
        self.clients.get(key).map(|(_, to)| *to)
    }

    fn schedule(&mut self, id: u64) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if let Some(at) = s.scheduled.take() {
            self.due.remove(&(at, id));
        }
        // While a NOTIFY is in flight the next one waits for its answer.
        let mut at = match s.notify_at {
            Some(n) if !s.in_flight => n.min(s.expires_at),
            _ => s.expires_at,
        };
        if let Some(recheck) = s.recheck_at {
            at = at.min(recheck);
        }
        s.scheduled = Some(at);
        self.due.insert((at, id));
    }

    fn remove(&mut self, id: u64) -> Option<Subscription> {
        let s = self.subs.remove(&id)?;
        self.table.remove(id);
        if let Some(at) = s.scheduled {
            self.due.remove(&(at, id));
        }
        self.by_tag.remove(&s.sip.id().local_tag);
        if let Some(n) = self.per_watcher.get_mut(&s.watcher) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_watcher.remove(&s.watcher);
            }
        }
        if let Some(list) = self.watchers.get_mut(&s.address) {
            list.retain(|x| *x != id);
            if list.is_empty() {
                self.watchers.remove(&s.address);
                for leg in self.legs_at.remove(&s.address).unwrap_or_default() {
                    self.leg_lamp.remove(&leg);
                    self.parties.remove(&leg);
                }
                self.parked.remove(&s.address);
                self.standing.remove(&s.address);
            }
        }
        Some(s)
    }

    /// A change of `address`'s state: each subscription of it NOTIFYs
    /// as soon as its coalescing window allows.
    fn address_changed(&mut self, now: Instant, address: &str) -> Vec<u64> {
        let Some(ids) = self.watchers.get(address) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        for id in ids.clone() {
            let Some(s) = self.subs.get_mut(&id) else {
                continue;
            };
            if s.notify_at.is_some() {
                continue;
            }
            let at = s
                .last_notify
                .map_or(now, |last| (last + self.cfg.coalesce).max(now));
            s.notify_at = Some(at);
            if at <= now && !s.in_flight {
                ready.push(id);
            } else {
                self.schedule(id);
            }
        }
        ready
    }
}

/// The leg an effect acts on.
fn effect_leg(effect: &Effect) -> LegId {
    match effect {
        Effect::CreateLeg { leg, .. }
        | Effect::Alert { leg }
        | Effect::AnswerLeg { leg }
        | Effect::RemoteAnswer { leg }
        | Effect::RemoteHold { leg }
        | Effect::RemoteRetrieve { leg }
        | Effect::Reoffer { leg, .. }
        | Effect::Media { leg, .. }
        | Effect::Redirect { leg, .. }
        | Effect::ReleaseLeg { leg, .. }
        | Effect::SendDigits { leg, .. }
        | Effect::GenerateTone { leg, .. }
        | Effect::Detect { leg, .. }
        | Effect::SecureMedia { leg } => *leg,
    }
}

/// The leg a switch input from the B2BUA concerns.
fn input_leg(input: &Input) -> Option<LegId> {
    match input {
        Input::Leg { leg, .. }
        | Input::DeviceCall { leg, .. }
        | Input::DeviceReplaces { leg, .. } => Some(*leg),
        _ => None,
    }
}

impl B2bua {
    /// Whether any subscription is live (the pump then hands the B2BUA
    /// the settled state with [`B2bua::lamps_changed`]).
    pub fn watches_lamps(&self) -> bool {
        !self.subs.subs.is_empty()
    }

    /// How many legs the lamps keep track of (a leak check for tests).
    pub fn lamp_legs(&self) -> usize {
        self.subs.leg_lamp.len()
    }

    /// How many subscriptions are live.
    pub fn subscription_count(&self) -> usize {
        self.subs.subs.len()
    }

    /// The table the live subscriptions are published to (for readers
    /// outside the loop).
    pub fn subscription_table(&self) -> SubscriptionTable {
        self.subs.table.clone()
    }

    /// Publish the live subscriptions into `table` from now on (before
    /// any subscription starts).
    pub fn publish_subscriptions_to(&mut self, table: SubscriptionTable) {
        self.subs.table = table;
    }

    /// The live subscriptions.
    pub fn subscriptions(&self, now: Instant) -> Vec<SubscriptionView> {
        let mut list: Vec<SubscriptionView> = self
            .subs
            .subs
            .values()
            .map(|s| SubscriptionView {
                watcher: s.watcher.clone(),
                address: s.address.to_string(),
                package: s.package.name(),
                expires_in: s.expires_at.saturating_duration_since(now).as_secs(),
                contact: s.remote_addr,
            })
            .collect();
        list.sort_by(|a, b| (&a.address, &a.watcher).cmp(&(&b.address, &b.watcher)));
        list
    }

    /// Whether new subscriptions wait for their first NOTIFY (the pump
    /// then calls [`B2bua::lamps_changed`] even when nothing else moved).
    pub fn lamps_pending(&self) -> bool {
        !self.subs.fresh.is_empty()
    }

    /// The step has settled: the legs it changed, and the switch as it is
    /// now (the park slots, each leg's far party, each address's
    /// forwarding), give each watched address its new state, and its
    /// watchers their NOTIFYs; new subscriptions get their first.
    pub fn lamps_changed(&mut self, now: Instant, switch: &Switch) {
        if self.subs.subs.is_empty() {
            self.subs.touched.clear();
            self.subs.touched_addresses.clear();
            self.subs.fresh.clear();
            return;
        }
        let mut changed: HashSet<Arc<str>> = HashSet::new();
        let fresh = std::mem::take(&mut self.subs.fresh);
        for id in &fresh {
            if let Some(s) = self.subs.subs.get(id) {
                changed.insert(s.address.clone());
            }
        }
        // Park slots that are watched.
        let mut now_parked: HashMap<Arc<str>, LegId> = HashMap::new();
        for (slot, leg) in switch.parked_legs() {
            if self.subs.watchers.contains_key(slot) {
                now_parked.insert(slot.clone(), leg);
            }
        }
        if now_parked != self.subs.parked {
            for (slot, leg) in &now_parked {
                if self.subs.parked.get(slot) != Some(leg) {
                    changed.insert(slot.clone());
                }
            }
            for slot in self.subs.parked.keys() {
                if !now_parked.contains_key(slot) {
                    changed.insert(slot.clone());
                }
            }
            self.subs.parked = now_parked;
        }
        for leg in std::mem::take(&mut self.subs.touched) {
            let lamp = match self.dialogs.get(&leg).and_then(|d| d.lamp.clone()) {
                Some(lamp) => lamp,
                None => match self.subs.leg_lamp.get(&leg) {
                    Some(lamp) => lamp.clone(),
                    None => continue,
                },
            };
            if !self.subs.watchers.contains_key(&lamp) {
                continue;
            }
            if self.subs.leg_lamp.insert(leg, lamp.clone()).is_none() {
                self.subs.legs_at.entry(lamp.clone()).or_default().push(leg);
            }
            changed.insert(lamp);
        }
        for address in std::mem::take(&mut self.subs.touched_addresses) {
            changed.insert(address);
        }
        for address in changed {
            // Legs whose dialogs are gone leave the address's list (their
            // NOTIFYs show them `terminated` from what they showed); the
            // others' far parties are the switch's now.
            if let Some(legs) = self.subs.legs_at.get_mut(&address) {
                let dialogs = &self.dialogs;
                let leg_lamp = &mut self.subs.leg_lamp;
                let parties = &mut self.subs.parties;
                legs.retain(|leg| {
                    let live = dialogs.contains_key(leg);
                    if !live {
                        leg_lamp.remove(leg);
                        parties.remove(leg);
                    } else if let (Some(party), Some(placed)) =
                        (switch.far_party_of_leg(*leg), switch.leg_places_call(*leg))
                    {
                        parties.insert(*leg, (party, placed));
                    }
                    live
                });
            }
            match Standing::of(switch, &address) {
                Some(standing) => {
                    self.subs.standing.insert(address.clone(), standing);
                }
                None => {
                    self.subs.standing.remove(&address);
                }
            }
            for id in self.subs.address_changed(now, &address) {
                self.send_notify(now, id, None);
            }
        }
        // New subscriptions: their first NOTIFY, at once (RFC 6665
        // §4.2.1.2); a fetch (`Expires: 0`) ends with it.
        for id in fresh {
            let Some(s) = self.subs.subs.get(&id) else {
                continue;
            };
            if s.fetch {
                self.send_notify(now, id, Some(EndReason::Timeout));
                self.subs.remove(id);
            } else {
                self.send_notify(now, id, None);
            }
        }
        self.drain_transactions(now);
    }

    /// An address's forwarding changed (the switch's `address.forwarding`):
    /// its lamps may show it.
    pub(crate) fn lamp_forwarding(&mut self, address: &str) {
        if let Some((address, _)) = self.subs.watchers.get_key_value(address) {
            let address = address.clone();
            self.subs.touched_addresses.push(address);
        }
    }

    /// A switch input leaving the B2BUA: its leg may have changed state.
    pub(crate) fn lamp_input(&mut self, input: &Input) {
        if self.subs.subs.is_empty() {
            return;
        }
        if let Some(leg) = input_leg(input) {
            self.subs.touched.push(leg);
        }
    }

    /// An effect the B2BUA carried out: its leg may have changed state.
    pub(crate) fn lamp_effect(&mut self, effect: &Effect) {
        if !self.subs.subs.is_empty() {
            self.subs.touched.push(effect_leg(effect));
        }
    }

    /// A REGISTER was answered: presence of its address may have changed.
    pub(crate) fn lamp_registered(&mut self, request: &Message) {
        if self.subs.subs.is_empty() {
            return;
        }
        let user = request
            .to_header()
            .ok()
            .flatten()
            .and_then(|to| uri_user(&to.uri));
        if let Some(user) = user
            && let Some((address, _)) = self.subs.watchers.get_key_value(user.as_str())
        {
            let address = address.clone();
            self.subs.touched_addresses.push(address);
        }
    }

    /// End every subscription with a NOTIFY `terminated;reason=deactivated`
    /// (tapir shuts down: the phones subscribe again to the next one).
    pub fn end_subscriptions(&mut self, now: Instant) {
        let ids: Vec<u64> = self.subs.subs.keys().copied().collect();
        for id in ids {
            self.send_notify(now, id, Some(EndReason::Deactivated));
            self.subs.remove(id);
        }
        self.drain_transactions(now);
    }

    /// Expiries and coalesced NOTIFYs that fell due.
    pub(crate) fn subscriptions_due(&mut self, now: Instant) {
        for _ in 0..100_000 {
            let Some(&(at, id)) = self.subs.due.first() else {
                return;
            };
            if at > now {
                return;
            }
            self.subs.due.remove(&(at, id));
            let Some(s) = self.subs.subs.get_mut(&id) else {
                continue;
            };
            s.scheduled = None;
            if s.recheck_at.is_some_and(|r| r <= now) {
                // The address's registration ran out: presence may change.
                s.recheck_at = None;
                if s.notify_at.is_none() {
                    let at = s
                        .last_notify
                        .map_or(now, |last| (last + self.subs.cfg.coalesce).max(now));
                    s.notify_at = Some(at);
                }
            }
            if s.expires_at <= now {
                tracing::debug!(watcher = %s.watcher, address = %s.address, "subscription expired");
                self.send_notify(now, id, Some(EndReason::Timeout));
                self.subs.remove(id);
            } else if s.notify_at.is_some_and(|n| n <= now) && !s.in_flight {
                self.send_notify(now, id, None);
            } else {
                self.subs.schedule(id);
            }
        }
    }

    /// A response (or the end) of a NOTIFY's client transaction.
    pub(crate) fn notify_event(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        event: TransactionEvent,
    ) {
        let Some(&(id, _)) = self.subs.clients.get(key) else {
            return;
        };
        match event {
            TransactionEvent::Response(response) => {
                let code = response.status_code().unwrap_or(0);
                if code < 200 {
                    return;
                }
                let Some(s) = self.subs.subs.get_mut(&id) else {
                    return;
                };
                s.in_flight = false;
                if code >= 300 {
                    tracing::info!(code, watcher = %s.watcher, address = %s.address, "a NOTIFY was refused; the subscription ends");
                    self.subs.remove(id);
                    return;
                }
                if s.notify_at.is_some_and(|n| n <= now) {
                    self.send_notify(now, id, None);
                } else {
                    self.subs.schedule(id);
                }
            }
            TransactionEvent::Timeout | TransactionEvent::TransportError => {
                self.subs.clients.remove(key);
                if let Some(s) = self.subs.remove(id) {
                    tracing::info!(watcher = %s.watcher, address = %s.address, "a NOTIFY went unanswered; the subscription ends");
                }
            }
            TransactionEvent::Terminated => {
                self.subs.clients.remove(key);
            }
            TransactionEvent::Ack(_) => {}
        }
    }

    /// A SUBSCRIBE: a new subscription (no To tag), or a refresh or
    /// unsubscribe in one of tapir's subscription dialogs.
    pub(crate) fn subscribe_received(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
        to_tag: Option<String>,
    ) {
        let package = match request.event() {
            Ok(Some(event)) => match Package::from_event(event.package) {
                Some(p) => (p, event.id().map(str::to_owned)),
                None => {
                    self.reply_with(
                        now,
                        &key,
                        &request,
                        489,
                        &[(HeaderName::AllowEvents, ALLOW_EVENTS)],
                    );
                    return;
                }
            },
            Ok(None) => {
                self.reply_with(
                    now,
                    &key,
                    &request,
                    489,
                    &[(HeaderName::AllowEvents, ALLOW_EVENTS)],
                );
                return;
            }
            Err(_) => {
                self.reply(now, &key, &request, 400);
                return;
            }
        };
        let expires = match request.expires() {
            Ok(e) => e.unwrap_or(self.subs.cfg.default_expires),
            Err(_) => {
                self.reply(now, &key, &request, 400);
                return;
            }
        };
        if expires != 0 && expires < self.subs.cfg.min_expires {
            let min = self.subs.cfg.min_expires.to_string();
            self.reply_with(now, &key, &request, 423, &[(HeaderName::MinExpires, &min)]);
            return;
        }
        let expires = expires.min(self.subs.cfg.max_expires);
        match to_tag {
            Some(tag) => match self.subs.by_tag.get(&tag).copied() {
                Some(id) => self.resubscribe(now, source, key, request, id, package.0, expires),
                None => self.in_dialog(now, source, key, request, Method::Subscribe),
            },
            None => self.subscribe(now, source, key, request, package, expires),
        }
    }

    fn reply_with(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Message,
        code: u16,
        headers: &[(HeaderName, &str)],
    ) {
        let tag = self.unique("t");
        let mut b = request.response_builder(code, None, Some(&tag));
        for (name, value) in headers {
            b = b.header(name.clone(), (*value).to_owned());
        }
        let r = b.build();
        self.respond(now, key, r);
    }

    fn subscribe(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
        (package, event_id): (Package, Option<String>),
        expires: u32,
    ) {
        if !request.body().is_empty() {
            // tapir has no event filters (RFC 4660).
            self.reply(now, &key, &request, 415);
            return;
        }
        if let Ok(Some(accept)) = request.accept() {
            let (kind, sub) = package
                .content_type()
                .split_once('/')
                .unwrap_or(("application", ""));
            if !accept.is_empty() && !accept.iter().any(|m| m.is(kind, sub) || m.is("*", "*")) {
                self.reply(now, &key, &request, 406);
                return;
            }
        }
        let watcher = match self.directory.admit(now, &request, source) {
            Ok(user) => user,
            Err(response) => {
                self.respond(now, &key, *response);
                return;
            }
        };
        let Some(address) = request
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| uri_user(&u))
        else {
            self.reply(now, &key, &request, 404);
            return;
        };
        if let Err(code) = self.directory.may_watch(&watcher, &address) {
            tracing::info!(%watcher, %address, code, "a subscription refused");
            self.reply(now, &key, &request, code);
            return;
        }
        let cfg = self.subs.cfg;
        if self.subs.per_watcher.get(&watcher).copied().unwrap_or(0) >= cfg.max_per_watcher {
            tracing::info!(%watcher, "too many subscriptions of one watcher; 403");
            self.reply(now, &key, &request, 403);
            return;
        }
        if self.subs.subs.len() >= cfg.max_total {
            tracing::warn!(
                total = self.subs.subs.len(),
                "the subscription limit is reached; 503"
            );
            self.reply_unavailable(now, &key, &request);
            return;
        }
        let transport = self.transport_of(&key);
        let local_tag = self.unique("ts");
        let sip = match SipDialog::from_request(
            &request,
            &local_tag,
            &self.contact(transport),
            DialogState::Confirmed,
        ) {
            Ok(sip) => sip,
            Err(e) => {
                tracing::info!(error = %e, "a SUBSCRIBE that cannot create a dialog; 400");
                self.reply(now, &key, &request, 400);
                return;
            }
        };
        let response = request
            .response_builder(200, None, Some(&local_tag))
            .header(HeaderName::Expires, expires.to_string())
            .header(HeaderName::Contact, self.contact(transport))
            .build();
        self.respond(now, &key, response);
        let id = self.subs.next_id;
        self.subs.next_id += 1;
        let address: Arc<str> = match self.subs.watchers.get_key_value(address.as_str()) {
            Some((a, _)) => a.clone(),
            None => Arc::from(address.as_str()),
        };
        if !self.subs.watchers.contains_key(&address) {
            // The first watcher of the address: its legs so far.
            let legs: Vec<LegId> = self
                .dialogs
                .iter()
                .filter(|(_, d)| d.lamp.as_deref() == Some(&*address))
                .map(|(leg, _)| *leg)
                .collect();
            for leg in &legs {
                self.subs.leg_lamp.insert(*leg, address.clone());
            }
            self.subs.legs_at.insert(address.clone(), legs);
        }
        self.subs
            .watchers
            .entry(address.clone())
            .or_default()
            .push(id);
        *self.subs.per_watcher.entry(watcher.clone()).or_default() += 1;
        self.subs.by_tag.insert(local_tag, id);
        tracing::debug!(%watcher, %address, package = package.name(), expires, "subscription");
        self.subs.subs.insert(
            id,
            Subscription {
                package,
                event_id,
                fetch: expires == 0,
                recheck_at: None,
                watcher,
                address,
                sip,
                remote_addr: source,
                transport,
                expires_at: now + Duration::from_secs(u64::from(expires)),
                version: 0,
                notify_at: Some(now),
                last_notify: None,
                in_flight: false,
                scheduled: None,
                shown: None,
            },
        );
        if let Some(s) = self.subs.subs.get(&id) {
            self.subs.table.put(id, s);
        }
        // The first NOTIFY goes once this step has settled, with the
        // switch's view of the address (B2bua::lamps_changed).
        self.subs.fresh.push(id);
    }

    #[allow(clippy::too_many_arguments)]
    fn resubscribe(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Message,
        id: u64,
        package: Package,
        expires: u32,
    ) {
        let transport = self.transport_of(&key);
        let Some(s) = self.subs.subs.get_mut(&id) else {
            return;
        };
        let call_id = request.call_id().ok().flatten().unwrap_or("");
        let from_tag = request
            .from_header()
            .ok()
            .flatten()
            .and_then(|f| f.tag().map(str::to_owned));
        let named = s
            .sip
            .is_named(call_id, &s.sip.id().local_tag, from_tag.as_deref());
        if !named {
            self.reply(now, &key, &request, 481);
            return;
        }
        let peer = transport == s.transport
            && match transport {
                SipTransport::Udp => source == s.remote_addr,
                SipTransport::Tcp | SipTransport::Tls => source.ip() == s.remote_addr.ip(),
            };
        if !peer {
            tracing::warn!(%source, "a SUBSCRIBE refresh from outside the subscription's peer; 403");
            self.reply(now, &key, &request, 403);
            return;
        }
        if package != s.package {
            self.reply_with(
                now,
                &key,
                &request,
                489,
                &[(HeaderName::AllowEvents, ALLOW_EVENTS)],
            );
            return;
        }
        if let Err(e) = s.sip.check_remote_cseq(&request) {
            let code = e.status_code();
            self.reply(now, &key, &request, code);
            return;
        }
        if expires != 0
            && let Err(code) = self.directory.may_watch(&s.watcher, &s.address)
        {
            // Judged again at each refresh: a watcher whose line may no
            // longer watch the address (or is gone) loses it now, not when
            // the subscription would have run out.
            tracing::info!(watcher = %s.watcher, address = %s.address, code, "a subscription refresh refused; it ends");
            self.reply(now, &key, &request, code);
            self.send_notify(now, id, Some(EndReason::Rejected));
            self.subs.remove(id);
            return;
        }
        let tag = s.sip.id().local_tag.clone();
        let response = request
            .response_builder(200, None, Some(&tag))
            .header(HeaderName::Expires, expires.to_string())
            .header(HeaderName::Contact, self.contact(transport))
            .build();
        self.respond(now, &key, response);
        if expires == 0 {
            self.send_notify(now, id, Some(EndReason::Timeout));
            self.subs.remove(id);
            return;
        }
        if let Some(s) = self.subs.subs.get_mut(&id) {
            s.expires_at = now + Duration::from_secs(u64::from(expires));
            self.subs.table.put(id, s);
            // A refresh gets a NOTIFY with the full state (RFC 6665
            // §4.2.1.2), even when nothing changed.
            s.shown = None;
            if s.notify_at.is_none() {
                s.notify_at = Some(now);
            }
            if !s.in_flight {
                self.send_notify(now, id, None);
            } else {
                self.subs.schedule(id);
            }
        }
    }

    /// The dialogs `address` shows now.
    fn lamp_dialogs(&self, address: &str) -> Vec<DialogEntry> {
        let domain = self.cfg.domain_host();
        let local = format!("sip:{address}@{domain}");
        let mut entries = Vec::new();
        for leg in self.subs.legs_at.get(address).into_iter().flatten() {
            let Some(d) = self.dialogs.get(leg) else {
                continue;
            };
            let phase = match d.state {
                LegState::Ending => continue,
                LegState::Confirmed => DialogPhase::Confirmed,
                LegState::Early if d.inbound && d.alerted => DialogPhase::Early,
                LegState::Early if !d.inbound && d.sip.remote_tag().is_some() => DialogPhase::Early,
                LegState::Early => DialogPhase::Trying,
            };
            let known = self.subs.parties.get(leg);
            let (remote, remote_name) = match known {
                Some((party, _)) => switch_party(party, d, &domain),
                None => far_party(d, &domain),
            };
            // The switch's view of who placed the call (an app's make
            // call rings the phone first, yet the phone is the caller).
            let initiator = known.map_or(d.inbound, |(_, placed)| *placed);
            let shown = !d.tapi_secure;
            entries.push(DialogEntry {
                id: format!("leg{}", leg.0),
                call_id: shown.then(|| d.sip.id().call_id.clone()),
                // The dialog as tapir holds it, as PBXes show theirs: a
                // pickup's `Replaces: <call-id>;to-tag=<local-tag>;
                // from-tag=<remote-tag>` names it (RFC 3891 §3).
                local_tag: shown.then(|| d.local_tag().to_owned()),
                remote_tag: if shown {
                    d.sip.remote_tag().map(str::to_owned)
                } else {
                    None
                },
                initiator: Some(initiator),
                phase,
                remote: if shown { remote } else { None },
                remote_name: if shown { remote_name } else { None },
                local: Some(local.clone()),
            });
        }
        if let Some(standing) = self.subs.standing.get(address) {
            // Forwarding and do-not-disturb light the key steadily, as a
            // call in progress does (Kazoo, FusionPBX).
            let (id, remote) = match standing {
                Standing::DoNotDisturb => ("dnd", None),
                Standing::Forwarded(to) => ("forwarded", Some(format!("sip:{to}@{domain}"))),
            };
            entries.push(DialogEntry {
                id: id.to_owned(),
                call_id: None,
                local_tag: None,
                remote_tag: None,
                initiator: None,
                phase: DialogPhase::Confirmed,
                remote,
                remote_name: None,
                local: Some(local.clone()),
            });
        }
        if let Some(leg) = self.subs.parked.get(address)
            && let Some(d) = self.dialogs.get(leg)
        {
            let (remote, remote_name) = own_party(d, &domain);
            let shown = !d.tapi_secure;
            entries.push(DialogEntry {
                id: format!("park{}", leg.0),
                call_id: None,
                local_tag: None,
                remote_tag: None,
                initiator: Some(false),
                phase: DialogPhase::Confirmed,
                remote: if shown { remote } else { None },
                remote_name: if shown { remote_name } else { None },
                local: Some(local),
            });
        }
        entries
    }

    /// Send subscription `id` its NOTIFY now: the state as it is, or the
    /// last one (`end`). Nothing when the state is the one it last showed.
    /// The watcher's right is judged again first: one that may no longer
    /// watch the address gets a last NOTIFY without state
    /// (`terminated;reason=rejected`, whatever ended it) and the
    /// subscription ends.
    fn send_notify(&mut self, now: Instant, id: u64, mut end: Option<EndReason>) {
        let Some(s) = self.subs.subs.get(&id) else {
            return;
        };
        let mut revoked = false;
        if end != Some(EndReason::Rejected)
            && let Err(code) = self.directory.may_watch(&s.watcher, &s.address)
        {
            // Even a last NOTIFY (unsubscribe, expiry, shutdown) shows a
            // watcher without the right no state.
            tracing::info!(watcher = %s.watcher, address = %s.address, code, "a watcher lost its right; its subscription ends");
            revoked = end.is_none();
            end = Some(EndReason::Rejected);
        }
        let (package, address, s_transport) = (s.package, s.address.clone(), s.transport);
        let domain = self.cfg.domain_host();
        let entity = format!("sip:{address}@{domain}");
        let state = if end == Some(EndReason::Rejected) {
            None
        } else {
            Some(self.shown_state(now, id, package, &address))
        };
        let branch = self.unique("z9hG4bK");
        let via = self.via(s_transport, &branch);
        let Some(s) = self.subs.subs.get_mut(&id) else {
            return;
        };
        s.notify_at = None;
        if end.is_none() && s.shown.as_ref() == state.as_ref() {
            self.subs.schedule(id);
            return;
        }
        let body = match &state {
            None => None,
            Some(Shown::Dialogs(entries)) => {
                let mut all = entries.clone();
                if let Some(Shown::Dialogs(before)) = &s.shown {
                    for old in before {
                        if !entries.iter().any(|e| e.id == old.id) {
                            all.push(DialogEntry {
                                phase: DialogPhase::Terminated,
                                ..old.clone()
                            });
                        }
                    }
                }
                let doc = dialog_info(&entity, s.version, &all);
                s.version = s.version.wrapping_add(1);
                Some(doc)
            }
            Some(Shown::Presence(availability)) => Some(pidf(&entity, *availability)),
        };
        if state.is_some() {
            s.shown = state;
        }
        let subscription_state = match end {
            Some(reason) => format!("terminated;reason={}", reason.as_str()),
            None => format!(
                "active;expires={}",
                s.expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        let event = match &s.event_id {
            Some(eid) => format!("{};id={eid}", package.name()),
            None => package.name().to_owned(),
        };
        let mut notify = s.sip.request(Method::Notify, &via).build();
        notify.push_header(HeaderName::Event, event);
        notify.push_header(HeaderName::SubscriptionState, subscription_state);
        if let Some(body) = body {
            notify.set_body(Some(package.content_type()), bytes::Bytes::from(body));
        }
        let to = match s.sip.route_set().is_empty() {
            false if s.transport == SipTransport::Udp => {
                uri_address(&s.sip.first_hop()).unwrap_or(s.remote_addr)
            }
            _ => s.remote_addr,
        };
        let transport = s.transport;
        s.in_flight = true;
        s.last_notify = Some(now);
        match self.tx.start_client(now, notify, reliability(transport)) {
            Ok(key) => {
                self.subs.clients.insert(key, (id, to));
            }
            Err(e) => {
                tracing::debug!(error = %e, "a NOTIFY could not be sent");
                if let Some(s) = self.subs.subs.get_mut(&id) {
                    s.in_flight = false;
                }
            }
        }
        self.subs.schedule(id);
        if revoked {
            self.subs.remove(id);
        }
    }

    /// What subscription `id` (of `package`, to `address`) shows now.
    fn shown_state(&mut self, now: Instant, id: u64, package: Package, address: &str) -> Shown {
        match package {
            Package::Dialog => Shown::Dialogs(self.lamp_dialogs(address)),
            Package::Presence => {
                let live = self
                    .subs
                    .legs_at
                    .get(address)
                    .into_iter()
                    .flatten()
                    .any(|leg| {
                        self.dialogs
                            .get(leg)
                            .is_some_and(|d| d.state != LegState::Ending)
                    });
                let registered_until = self.directory.registered_until(now, address);
                let offline = self.directory.contacts(now, address).is_empty();
                if let Some(s) = self.subs.subs.get_mut(&id) {
                    // Registered: the state changes when the registration
                    // runs out, unless the phone registers again.
                    s.recheck_at = registered_until.filter(|at| !offline && *at > now);
                }
                Shown::Presence(if live || self.subs.parked.contains_key(address) {
                    Availability::Busy
                } else if let Some(standing) = self.subs.standing.get(address) {
                    match standing {
                        Standing::DoNotDisturb => Availability::DoNotDisturb,
                        Standing::Forwarded(_) => Availability::Forwarded,
                    }
                } else if offline {
                    Availability::Offline
                } else {
                    Availability::Available
                })
            }
        }
    }
}

/// The far party of a phone's dialog: whom it called (an inbound leg),
/// or who calls it (tapir's INVITE's From).
fn far_party(d: &crate::Dialog, domain: &str) -> (Option<String>, Option<String>) {
    if d.inbound {
        let user = d
            .invite
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| uri_user(&u));
        (user.map(|u| format!("sip:{u}@{domain}")), None)
    } else {
        let from = d.invite.from_header().ok().flatten();
        let user = from.as_ref().and_then(|f| uri_user(&f.uri));
        let name = from
            .as_ref()
            .and_then(|f| f.display_name_unquoted())
            .map(|n| n.into_owned());
        (user.map(|u| format!("sip:{u}@{domain}")), name)
    }
}

/// The far party as the switch knows it (`party`), with the display name
/// of the leg's INVITE when the switch has none for the same address.
fn switch_party(
    party: &Party,
    d: &crate::Dialog,
    domain: &str,
) -> (Option<String>, Option<String>) {
    if party.address.is_empty() {
        return far_party(d, domain);
    }
    let uri = format!("sip:{}@{domain}", party.address);
    let name = match &party.name {
        Some(name) => Some(name.clone()),
        None => {
            let (sip_uri, sip_name) = far_party(d, domain);
            sip_name.filter(|_| sip_uri.as_deref() == Some(uri.as_str()))
        }
    };
    (Some(uri), name)
}

/// The party of the phone at the end of a leg (a parked call's).
fn own_party(d: &crate::Dialog, domain: &str) -> (Option<String>, Option<String>) {
    if d.inbound {
        let from = d.invite.from_header().ok().flatten();
        let user = from.as_ref().and_then(|f| uri_user(&f.uri));
        let name = from
            .as_ref()
            .and_then(|f| f.display_name_unquoted())
            .map(|n| n.into_owned());
        (user.map(|u| format!("sip:{u}@{domain}")), name)
    } else {
        (d.lamp.as_ref().map(|a| format!("sip:{a}@{domain}")), None)
    }
}
