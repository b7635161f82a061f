//! tapir's media plane: every call's audio is anchored here.
//!
//! - [`sdp`]: SDP parsing and RFC 3264 offer/answer per leg (PCMU, PCMA,
//!   telephone-event; hold via `sendonly`/`inactive`/`c=0.0.0.0`).
//! - [`g711`]: µ-law / A-law companding and transcoding.
//! - [`tone`]: dial tone, ringback, busy, reorder and generated hold music at
//!   8 kHz, plus a Goertzel filter.
//! - [`dtmf`]: RFC 4733 telephone-event encode/decode and in-band DTMF.
//! - [`rtp`]: the RTP header.
//! - [`wav`]: hold music from a WAV file.
//! - [`engine`]: the tokio media plane (sockets, relay, mixer, generators).
//!
//! The crate does not depend on `tapir-core`: it has its own small types so
//! the server maps the core's media effects onto them.

pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod rtp;
pub mod sdp;
pub mod tone;
pub mod wav;

pub use engine::{
    EngineStats, LegId, MediaConfig, MediaEngine, MediaError, MediaEvent, MediaEvents, RemoteMedia,
    Source,
};
pub use sdp::{Codec, Direction, Negotiated, SdpSession, SessionDescription};
pub use tone::ToneKind;
