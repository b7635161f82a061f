//! # tapir-core — the switch
//!
//! The telephony truth of tapir: lines, addresses, calls, bridges, apps, park
//! slots, completion requests and forwarding, and every TAPI session operation
//! on them. It does no I/O and has no clock: inputs go in with
//! [`Switch::handle`] (or the typed method of each operation, such as
//! [`Switch::make_call`]) together with the current time, and
//! [`Switch::poll_output`] drains what came out — effects for the SIP and media
//! drivers, events for applications, and the next timer deadline. This is the
//! sans-IO style of `str0m` and `quinn-proto`: the whole switch runs in a test,
//! step by step, with a simulated clock (see [`sim`]).
//!
//! ```
//! use tapir_core::{AppConfig, LineConfig, Switch, Timestamp, sim::Sim};
//!
//! let mut sim = Sim::new();
//! sim.add_phone("1001");
//! sim.add_phone("1002");
//! let app = sim.switch.register_app(AppConfig::named("crm"));
//! let line = sim.switch.line_of("1001").unwrap();
//! sim.switch.open_line(app, line, &[tapir_core::Privilege::Owner], &[]).unwrap();
//! let call = sim.make_call(app, "1001", Some("1002")).unwrap();
//! sim.phone("1002").answer();
//! sim.run();
//! assert_eq!(sim.switch.call_state(call), Some(tapir_core::CallStateKind::Connected));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod error;
mod ids;
pub mod limits;
pub mod mediaops;
mod output;
pub mod sim;
mod switch;
mod types;

pub use config::{
    AppConfig, AppPermission, LineConfig, Outbound, SwitchConfig, default_media_modes,
};
pub use error::{ErrorCode, TapiError};
pub use ids::{AppId, BridgeId, CallId, CompletionId, LegId, LineId, RequestId, Timestamp};
pub use output::{
    AppEvent, CallInfo, Direction, Effect, EventBody, InfoField, LineStateKind, MediaKind,
    MediaPlayState, MediaSource, NodeLeg, Output, PromptPlay, ReleaseCause, Reply, Tone,
};
#[cfg(any(test, feature = "test-util"))]
pub use switch::TypedOps;
pub use switch::{CallSummary, Command, CompletionView, Input, LegEvent, Switch};
pub use types::{
    BusyMode, CallOrigin, CallReason, CallState, CallStateKind, CallerFilter, CompletionMode,
    ConnectedMode, DialtoneMode, DisconnectMode, ForwardCondition, ForwardMode, ForwardRule,
    HandoffTarget, LineKind, MediaMode, OfferingMode, ParkMode, Party, PickupTarget, Privilege,
    SpecialInfoMode, StateMode, TransferMode,
};
