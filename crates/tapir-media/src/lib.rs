//! tapir's media plane: every call's audio is anchored here.
//!
//! - [`sdp`]: SDP parsing and RFC 3264 offer/answer per leg (PCMU, PCMA,
//!   telephone-event; hold via `sendonly`/`inactive`/`c=0.0.0.0`).
//! - [`g711`]: µ-law / A-law companding and transcoding.
//! - [`tone`]: dial tone, ringback, busy, reorder, the special information
//!   tones and generated hold music at 8 kHz, plus a Goertzel filter.
//! - [`dtmf`]: RFC 4733 telephone-event encode/decode and in-band DTMF.
//! - [`rtp`]: the RTP header.
//! - [`rtcp`]: RTCP reports tapir generates per leg and reads from phones.
//! - [`srtp`]: SDES-keyed SRTP (`a=crypto`, protect/unprotect).
//! - [`playout`]: the mixer's per-participant playout queue.
//! - [`prompt`]: prompts played on route point calls (WAV files and built-ins).
//! - [`wav`]: hold music from a WAV file.
//! - [`record`]: call recording's WAV files (channel layout, mixing, a
//!   writer whose header stays valid), without I/O of its own.
//! - [`stream`]: call audio for applications (the media WebSocket's
//!   framing, 8/16 kHz PCM, frames sent back), without I/O.
//! - [`engine`]: the media plane on a thread of its own (sockets, relay, mixer, generators).
//!
//! The crate does not depend on `tapir-core`: it has its own small types so
//! the server maps the core's media effects onto them:
//!
//! | `tapir_core` effect | call here |
//! |---|---|
//! | leg created / INVITE received | [`MediaEngine::allocate`], then [`SdpSession::new`] with the returned address |
//! | `AnswerLeg` (peer offered) | [`SdpSession::answer`] → 200 OK body, then [`MediaEngine::apply`] |
//! | `Reoffer { direction }` | [`SdpSession::offer`] → re-INVITE body; on the 200 OK [`SdpSession::accept_answer`] then [`MediaEngine::apply`] |
//! | `Media { source }` | [`MediaEngine::set_source`] (`Silence`, `Bridge(id)`, `Tone(kind)`); a `Prompt` with [`MediaEngine::play_prompt`] |
//! | `SendDigits { digits }` | [`MediaEngine::send_digits`] |
//! | `ReleaseLeg` | [`MediaEngine::release`] |
//! | an app's media stream (`GET /v1/calls/{call}/media`) | [`MediaEngine::tap`], [`MediaEngine::play`] |
//! | [`MediaEvent::DigitsReceived`] / [`MediaEvent::RtpTimeout`] / [`MediaEvent::PromptDone`] | inputs back to the switch |
//!
//! An SDP error ([`sdp::SdpError`]) is answered with 488 Not Acceptable Here.
//!
//! ```no_run
//! use tapir_media::{Direction, LegId, MediaConfig, MediaEngine, SdpSession, SessionDescription, Source, ToneKind};
//! # async fn demo(invite_body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let (engine, mut events) = MediaEngine::new(MediaConfig::default())?;
//! let leg = LegId(1);
//! let local = engine.allocate(leg)?;
//! let mut sdp = SdpSession::new(local, 4711);
//! let offer = SessionDescription::parse_bytes(invite_body)?; // Err -> 488
//! let (answer_body, negotiated) = sdp.answer(&offer, Direction::SendRecv)?;
//! engine.apply(leg, &negotiated)?;
//! engine.set_source(leg, Source::Tone(ToneKind::Ringback))?;
//! // ... later: engine.set_source(leg, Source::Bridge(7))?;
//! while let Some(event) = events.recv().await {
//!     // feed DigitsReceived / RtpTimeout to the switch
//!     # let _ = (event, &answer_body);
//! }
//! # Ok(()) }
//! ```

pub mod detect;
pub mod dtmf;
#[cfg(feature = "engine")]
pub mod engine;
pub mod g711;
pub mod playout;
pub mod prompt;
pub mod record;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod stream;
pub mod tone;
pub mod wav;

#[cfg(feature = "engine")]
pub use engine::{
    EngineStats, LegId, MediaConfig, MediaEngine, MediaError, MediaEvent, MediaEvents, MediaPlay,
    MediaTap, RemoteMedia, RtcpStats, Source,
};
pub use sdp::{Codec, Direction, Negotiated, SdpSession, SessionDescription};
pub use tone::ToneKind;
