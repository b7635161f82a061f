//! tapir's SIP stack. Its protocol logic is sans-IO: it never touches a
//! socket or the clock; drivers feed it bytes and the current time.
//!
//! * [`msg`]: the message codec (parse, validate, serialise, build).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod msg;
