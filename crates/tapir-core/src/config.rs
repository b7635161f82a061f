//! What the operator configures: lines with their addresses, applications,
//! park slots and the switch's timing rules.

use crate::types::{LineKind, MediaMode, Privilege};
use serde::{Deserialize, Serialize};

/// A line as the operator configures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineConfig {
    /// The line's addresses (directory numbers); the first is its main address.
    pub addresses: Vec<String>,
    /// Phone, route point or trunk.
    pub kind: LineKind,
    /// Display name, used as the caller name of its calls.
    #[serde(default)]
    pub name: Option<String>,
    /// The pickup group the line belongs to, if any.
    #[serde(default)]
    pub pickup_group: Option<String>,
    /// The phone answers INVITEs from tapir that carry an auto-answer hint
    /// (used for make call, consultation calls, pickup and unpark).
    #[serde(default)]
    pub auto_answer: bool,
    /// The phone can be made to answer a ringing call remotely (intercom
    /// re-INVITE or a "talk" event); without it, answer is `operationunavail`.
    #[serde(default)]
    pub remote_answer: bool,
    /// How many live calls an address of this line may have (call appearances);
    /// one more makes the address busy.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// Trunk lines only: the dialled prefix that selects this trunk (an
    /// access code such as `9`, or a carrier's code). An external number
    /// goes out on the trunk whose prefix is the longest one it starts with,
    /// the prefix removed; numbers no prefix matches use the first trunk
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What the line may dial: its own calls, and where it forwards,
    /// redirects and transfers calls to (phones and route points; a trunk
    /// line's calls follow `allow_hairpin` instead).
    #[serde(default)]
    pub outbound: Outbound,
    /// Trunk lines only: calls that come in from this trunk's carrier may be
    /// routed back out of a trunk (a hairpin). Off by default: a carrier's
    /// call to an external number is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_hairpin: bool,
}

/// What a line may dial (`[[lines]] outbound`): each class includes the
/// ones before it. "International" is decided by the switch's location
/// (see `tapir_translate::dialled`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Outbound {
    /// Nothing: the line only receives calls.
    None,
    /// Addresses of this switch and park slots only.
    Internal,
    /// Also numbers outside the switch within the location's country (the
    /// default: no international calls, the first thing toll fraud uses).
    #[default]
    National,
    /// Every number, international ones included.
    All,
}

impl Outbound {
    /// The value as configured (`none`, `internal`, `national`, `all`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outbound::None => "none",
            Outbound::Internal => "internal",
            Outbound::National => "national",
            Outbound::All => "all",
        }
    }
}

fn default_max_calls() -> usize {
    4
}

impl LineConfig {
    /// Checks the sizes and characters of the line's text (see
    /// [`crate::limits`]): addresses, prefix, name and pickup group;
    /// `invalparam` with a sentence otherwise. The switch checks every line
    /// it is given with it.
    pub fn check_text(&self) -> Result<(), crate::TapiError> {
        use crate::limits::{TextKind, check_text};
        for address in &self.addresses {
            check_text("the address", address, TextKind::Address)?;
        }
        if let Some(prefix) = &self.prefix {
            check_text("the prefix", prefix, TextKind::Address)?;
        }
        if let Some(name) = &self.name {
            check_text("the name", name, TextKind::Name)?;
        }
        if let Some(group) = &self.pickup_group {
            check_text("the pickup group", group, TextKind::Name)?;
        }
        Ok(())
    }

    /// A phone with one address and the defaults for everything else.
    pub fn phone(address: &str) -> LineConfig {
        LineConfig {
            addresses: vec![address.to_string()],
            kind: LineKind::Phone,
            name: None,
            pickup_group: None,
            auto_answer: true,
            remote_answer: false,
            max_calls: default_max_calls(),
            prefix: None,
            outbound: Outbound::default(),
            allow_hairpin: false,
        }
    }

    /// A route point with one address.
    pub fn route_point(address: &str) -> LineConfig {
        LineConfig {
            kind: LineKind::RoutePoint,
            auto_answer: false,
            ..LineConfig::phone(address)
        }
    }

    /// A trunk whose own address is `address`, without a prefix: numbers no
    /// line owns (and no prefixed trunk selects) go out on it.
    pub fn trunk(address: &str) -> LineConfig {
        LineConfig {
            kind: LineKind::Trunk,
            auto_answer: false,
            max_calls: 1000,
            ..LineConfig::phone(address)
        }
    }
}

/// A right of an application beyond call control on its own lines: the
/// operations that reach past one call (`[[apps]] permissions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppPermission {
    /// `lineMakeCall`: place new calls from the addresses of its open lines
    /// (the app owns them, so it also needs the `owner` privilege).
    MakeCall,
    /// `lineForward`: set or cancel the forwarding of its lines' addresses.
    Forward,
    /// Switch-wide settings no line scopes: the locations and calling cards
    /// of address translation (`PUT /v1/locations`, `PUT /v1/cards`).
    Settings,
}

impl AppPermission {
    /// Every permission.
    pub const ALL: [AppPermission; 3] = [
        AppPermission::MakeCall,
        AppPermission::Forward,
        AppPermission::Settings,
    ];

    /// The permissions of an app whose configuration names none: an app
    /// that may own calls may make calls and set forwarding; switch-wide
    /// settings also need every line (`lines = ["*"]`). A monitor-only app
    /// gets none.
    pub fn defaults(privileges: &[Privilege], all_lines: bool) -> Vec<AppPermission> {
        if !privileges.contains(&Privilege::Owner) {
            return Vec::new();
        }
        let mut out = vec![AppPermission::MakeCall, AppPermission::Forward];
        if all_lines {
            out.push(AppPermission::Settings);
        }
        out
    }

    /// The name of the permission in the configuration (`make_call`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AppPermission::MakeCall => "make_call",
            AppPermission::Forward => "forward",
            AppPermission::Settings => "settings",
        }
    }
}

/// An application as the operator configures it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    /// Unique name (TAPI's application name, the target of a directed handoff).
    pub name: String,
    /// Priority for new incoming calls and indirect handoff: lower wins; ties
    /// go to the app that opened the line first.
    #[serde(default)]
    pub priority: u32,
    /// The first addresses of the lines it may open; `"*"` for every line.
    #[serde(default = "every_line")]
    pub lines: Vec<String>,
    /// The most it may hold: `lineOpen` and `lineSetCallPrivilege` are
    /// refused (`noprivilege`) beyond them, and so is every operation that
    /// would make it the owner of a new call without `owner`.
    #[serde(default = "every_privilege")]
    pub privileges: Vec<Privilege>,
    /// Its rights beyond call control (see [`AppPermission`]).
    #[serde(default = "every_permission")]
    pub permissions: Vec<AppPermission>,
}

fn every_line() -> Vec<String> {
    vec!["*".to_string()]
}

fn every_privilege() -> Vec<Privilege> {
    vec![Privilege::Owner, Privilege::Monitor]
}

fn every_permission() -> Vec<AppPermission> {
    AppPermission::ALL.to_vec()
}

impl AppConfig {
    /// An app with this name, the default priority, and every line,
    /// privilege and permission.
    pub fn named(name: &str) -> AppConfig {
        AppConfig {
            name: name.to_string(),
            priority: 0,
            lines: every_line(),
            privileges: every_privilege(),
            permissions: every_permission(),
        }
    }

    /// Whether it may open the line whose first address is `first_address`.
    pub fn may_open(&self, first_address: &str) -> bool {
        self.lines.iter().any(|l| l == "*" || l == first_address)
    }
}

/// Switch-wide settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchConfig {
    /// Park slot addresses for non-directed park (and the only addresses
    /// directed park accepts).
    pub park_slots: Vec<String>,
    /// How long one ring lasts, for no-answer forwarding ring counts.
    pub ring_ms: u64,
    /// Ring count for no-answer forwarding when the app gives none.
    pub default_no_answer_rings: u32,
    /// How long an unanswered call rings where no no-answer forwarding
    /// applies before the caller is told `disconnected`/`noanswer` (its
    /// phone gets 480); 0 rings for ever.
    pub ring_timeout_ms: u64,
    /// How long a call stays parked before it rings back at the address that
    /// parked it (reason `reminder`); 0 keeps it parked for ever.
    pub park_reminder_ms: u64,
    /// How long a callback or camp-on request waits before it expires.
    pub completion_expiry_ms: u64,
    /// Most parties of one conference, the conference call's controller included.
    pub max_conference_parties: usize,
    /// Most outstanding completion requests per target address.
    pub max_completions_per_address: usize,
    /// How many forwarding hops a call may take before it is refused.
    pub max_forward_hops: u8,
    /// Highest message id for `complete_call` in message mode.
    pub completion_messages: u32,
    /// The location the switch dials from: its country tells a line's
    /// national calls from international ones (`outbound = "national"`).
    pub location: tapir_translate::Location,
    /// Numbers every phone and route point may dial whatever its
    /// `outbound` class (emergency services); empty: the location's
    /// country's ([`tapir_translate::emergency_numbers`]).
    pub emergency_numbers: Vec<String>,
}

impl Default for SwitchConfig {
    fn default() -> SwitchConfig {
        SwitchConfig {
            park_slots: (7001..=7020).map(|n| n.to_string()).collect(),
            ring_ms: 6000,
            default_no_answer_rings: 4,
            ring_timeout_ms: 120_000,
            park_reminder_ms: 120_000,
            completion_expiry_ms: 30 * 60 * 1000,
            max_conference_parties: 16,
            max_completions_per_address: 8,
            max_forward_hops: 5,
            completion_messages: 4,
            location: tapir_translate::Location::new("default", 1, "425"),
            emergency_numbers: Vec::new(),
        }
    }
}

/// The media modes a line is opened for when the app names none.
pub fn default_media_modes() -> Vec<MediaMode> {
    vec![MediaMode::InteractiveVoice]
}
