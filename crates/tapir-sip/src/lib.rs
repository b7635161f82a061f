//! tapir's SIP stack. Its protocol logic is sans-IO: it never touches a
//! socket or the clock; drivers feed it bytes and the current time.
//!
//! * [`msg`]: the message codec (parse, validate, serialise, build).
//! * [`auth`]: server-side digest authentication (challenges, nonces,
//!   replay protection, lock-out).
//! * [`dialog`]: dialog state, in-dialog requests, matching, Replaces.
//! * [`event`]: bodies of the dialog and presence event packages.
//! * [`registrar`]: REGISTER processing and the location service.
//! * [`transaction`]: the RFC 3261 §17 transaction state machines, driven
//!   by `handle_*(now, ..)` calls and drained with `poll_output()`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod capacity;
pub mod dialog;
pub mod event;
pub mod msg;
pub mod registrar;
pub mod transaction;
