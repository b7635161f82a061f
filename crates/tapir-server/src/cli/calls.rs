//! `tapir calls` and `tapir call …`: make calls and apply every TAPI call
//! operation to a call named by its id.

use super::table::{Table, opt};
use super::{CliError, Output, to_json};
use clap::Subcommand;
use serde_json::json;
use tapir_client::{
    Call, CallInfo, Client, CompletionMode, HandoffTarget, MakeCall, MediaMode, Privilege,
    TransferMode,
};

/// `tapir call …`.
#[derive(Debug, Subcommand)]
pub enum CallCmd {
    /// Show a call (lineGetCallInfo).
    Show {
        /// Call id (`call-12`).
        call: String,
    },
    /// Make a call from an address (lineMakeCall); without TO, a call at dial tone.
    Make {
        /// The calling address.
        from: String,
        /// Dialable or canonical (`+1 (425) 555-1212`) destination.
        to: Option<String>,
        /// Location to translate a canonical destination from.
        #[arg(long)]
        location: Option<String>,
    },
    /// Answer an offered call (lineAnswer).
    Answer {
        /// Call id.
        call: String,
    },
    /// Accept an offered call; it keeps ringing (lineAccept).
    Accept {
        /// Call id.
        call: String,
    },
    /// Dial digits on a call at dial tone (lineDial).
    Dial {
        /// Call id.
        call: String,
        /// Digits.
        digits: String,
    },
    /// Disconnect a call (lineDrop).
    Drop {
        /// Call id.
        call: String,
    },
    /// Release this app's handle to a call (lineDeallocateCall).
    Deallocate {
        /// Call id.
        call: String,
    },
    /// Put a call on hold (lineHold).
    Hold {
        /// Call id.
        call: String,
    },
    /// Take a call off hold (lineUnhold).
    Unhold {
        /// Call id.
        call: String,
    },
    /// Hold a call and retrieve a held one (lineSwapHold).
    SwapHold {
        /// The active call.
        call: String,
        /// The held call.
        with: String,
    },
    /// Blind transfer (lineBlindTransfer).
    Transfer {
        /// Call id.
        call: String,
        /// Destination address.
        to: String,
    },
    /// Hold a call and get a consultation call at dial tone (lineSetupTransfer).
    SetupTransfer {
        /// Call id.
        call: String,
    },
    /// Join a held call with its consultation call (lineCompleteTransfer).
    CompleteTransfer {
        /// The held call.
        call: String,
        /// The consultation call.
        consult: String,
        /// Make a three-way conference instead of transferring.
        #[arg(long)]
        conference: bool,
    },
    /// Finish a consultation call: transfer, or conference (TAPI 3 Finish).
    Finish {
        /// The consultation call.
        consult: String,
        /// Make a three-way conference instead of transferring.
        #[arg(long)]
        conference: bool,
    },
    /// Make a call a conference and get a consultation call (lineSetupConference).
    Conference {
        /// Call id.
        call: String,
        /// Expected parties, this one included.
        #[arg(long)]
        parties: Option<usize>,
    },
    /// Get a consultation call to add to a conference (linePrepareAddToConference).
    PrepareAdd {
        /// The conference call.
        conference: String,
    },
    /// Add a consultation call to a conference (lineAddToConference).
    Add {
        /// The conference call.
        conference: String,
        /// The consultation call.
        consult: String,
    },
    /// Remove a party from its conference (lineRemoveFromConference).
    Remove {
        /// The member call.
        call: String,
    },
    /// List a conference's calls, the conference first (lineGetConfRelatedCalls).
    Related {
        /// A call of the conference.
        call: String,
    },
    /// Send an offered call elsewhere (lineRedirect).
    Redirect {
        /// Call id.
        call: String,
        /// Destination address.
        to: String,
    },
    /// Park a call, at a slot or where tapir finds room (linePark).
    Park {
        /// Call id.
        call: String,
        /// The slot for a directed park.
        slot: Option<String>,
    },
    /// Ask for call completion on a busy or unanswered call (lineCompleteCall).
    Complete {
        /// Call id.
        call: String,
        /// `campon`, `callback`, `intrude` or `message`.
        #[arg(value_parser = ["campon", "callback", "intrude", "message"])]
        mode: String,
        /// For `message`: which message.
        #[arg(long)]
        message_id: Option<u32>,
    },
    /// Cancel a completion request (lineUncompleteCall).
    Uncomplete {
        /// Completion id (`compl-7`).
        completion: String,
    },
    /// Start, pause, resume or stop recording a call (a WAV file per call;
    /// see `tapir recordings`).
    Record {
        /// Call id.
        call: String,
        /// What to do.
        #[arg(value_parser = ["start", "pause", "resume", "stop"])]
        action: String,
        /// With `start`: `stereo` (channel 1 what the call's address hears,
        /// channel 2 what it says; the default) or `mixed`.
        #[arg(long, value_parser = ["stereo", "mixed"])]
        channels: Option<String>,
    },
    /// Secure a call (lineSecureCall).
    Secure {
        /// Call id.
        call: String,
    },
    /// Hand a call off to another app (lineHandoff).
    Handoff {
        /// Call id.
        call: String,
        /// The target app's name.
        #[arg(
            long,
            required_unless_present = "media_mode",
            conflicts_with = "media_mode"
        )]
        app: Option<String>,
        /// The media mode whose app should take it.
        #[arg(long)]
        media_mode: Option<String>,
    },
    /// Send DTMF digits on a call (lineGenerateDigits).
    Digits {
        /// Call id.
        call: String,
        /// Digits (`0-9 * # A-D`).
        digits: String,
    },
    /// Set this app's privilege on a call (lineSetCallPrivilege).
    Privilege {
        /// Call id.
        call: String,
        /// `owner` or `monitor`.
        #[arg(value_parser = ["owner", "monitor"])]
        privilege: String,
    },
    /// Set a call's media mode (lineSetMediaMode).
    MediaMode {
        /// Call id.
        call: String,
        /// `interactivevoice`, `automatedvoice`, `datamodem`, `g3fax`,
        /// `tdd`, `video` or `unknown`.
        media_mode: String,
    },
    /// Gather the digits that reach a call (lineGatherDigits); the event
    /// `digits.gathered` ends it.
    Gather {
        /// Call id.
        call: String,
        /// Stop after this many digits (1-64).
        #[arg(long)]
        max_digits: Option<u32>,
        /// Digits that end it (e.g. `#`).
        #[arg(long)]
        terminators: Option<String>,
        /// Stop when no digit came this long after the start (ms).
        #[arg(long)]
        first_timeout_ms: Option<u64>,
        /// Stop when no further digit came this long (ms).
        #[arg(long)]
        inter_timeout_ms: Option<u64>,
    },
    /// Play a tone to a call's far parties (lineGenerateTone).
    Tone {
        /// Call id.
        call: String,
        /// `beep`, `billing`, `busy`, `ringback` or `custom`.
        #[arg(value_parser = ["beep", "billing", "busy", "ringback", "custom"])]
        tone: String,
        /// For `custom`: a frequency in Hz (up to three times).
        #[arg(long = "hz")]
        frequencies: Vec<u32>,
        /// How long (ms).
        #[arg(long)]
        duration_ms: Option<u32>,
    },
    /// Say what this app is told of a call's media (lineMonitorDigits,
    /// lineMonitorTones, lineMonitorMedia); replaces what was asked before.
    Monitor {
        /// Call id.
        call: String,
        /// No `digits.received` events.
        #[arg(long)]
        no_digits: bool,
        /// A tone to report, `HZ[+HZ…]:MS` (e.g. `1100:500`), up to four times.
        #[arg(long = "tone")]
        tones: Vec<String>,
        /// A media mode to report (`g3fax`).
        #[arg(long = "media-mode")]
        media_modes: Vec<String>,
    },
}

/// A watched tone written `HZ[+HZ…]:MS`.
fn tone_watch_of(text: &str) -> Result<tapir_client::ToneWatch, CliError> {
    let bad = || CliError::Usage(format!("{text:?} is not a tone written HZ[+HZ...]:MS"));
    let (hz, ms) = text.split_once(':').ok_or_else(bad)?;
    let frequencies = hz
        .split('+')
        .map(|f| f.trim().parse::<u32>().map_err(|_| bad()))
        .collect::<Result<Vec<u32>, CliError>>()?;
    let duration_ms = ms.trim().parse().map_err(|_| bad())?;
    Ok(tapir_client::ToneWatch {
        frequencies,
        duration_ms,
    })
}

/// A media mode named on the command line (`unknown` included; the client's
/// enum reads any other name it does not know as unknown, so that is checked
/// here).
fn media_mode_of(text: &str) -> Result<MediaMode, CliError> {
    match enum_of::<MediaMode>(text)? {
        MediaMode::Unknown if text != "unknown" => {
            Err(CliError::Usage(format!("{text:?} is not a media mode")))
        }
        m => Ok(m),
    }
}

fn party(p: &tapir_client::wire::PartyInfo) -> String {
    match &p.name {
        Some(n) => format!("{} ({n})", p.address),
        None => p.address.clone(),
    }
}

fn call_table(calls: &[&CallInfo]) -> String {
    let mut t = Table::new(&[
        "CALL",
        "ADDRESS",
        "STATE",
        "MODE",
        "ORIGIN",
        "REASON",
        "CALLER",
        "CALLED",
        "PRIVILEGE",
        "MEDIA",
    ]);
    for c in calls {
        t.row(vec![
            c.id.clone(),
            c.address.clone(),
            c.state.to_string(),
            opt(c.state_mode.as_deref()),
            to_json(&c.origin).as_str().unwrap_or("?").to_string(),
            to_json(&c.reason).as_str().unwrap_or("?").to_string(),
            party(&c.caller),
            party(&c.called),
            to_json(&c.privilege).as_str().unwrap_or("?").to_string(),
            to_json(&c.media_mode).as_str().unwrap_or("?").to_string(),
        ]);
    }
    t.render()
}

/// One call as output.
pub fn one(call: &Call) -> Output {
    Output::new(to_json(call.info()), call_table(&[call.info()]))
}

/// After an operation on `call`: the call, or a note that it left this app.
fn after(call: &Call, what: &str) -> Output {
    if call.is_released() {
        Output::new(
            json!({ "id": call.id(), "released": true }),
            format!("{} {what}; it has left this app\n", call.id()),
        )
    } else {
        one(call)
    }
}

/// `tapir calls`.
pub async fn list(client: &Client) -> Result<Output, CliError> {
    let (seq, calls) = client.calls().await?;
    let infos: Vec<&CallInfo> = calls.iter().map(Call::info).collect();
    Ok(Output::new(
        json!({ "seq": seq, "calls": to_json(&infos) }),
        call_table(&infos),
    ))
}

fn enum_of<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, CliError> {
    serde_json::from_value(json!(text))
        .map_err(|_| CliError::Usage(format!("{text:?} is not valid here")))
}

fn transfer_mode(conference: bool) -> TransferMode {
    if conference {
        TransferMode::Conference
    } else {
        TransferMode::Transfer
    }
}

/// Either the conference call a transfer produced, or the call itself.
fn conference_or(result: Option<Call>, call: &Call, what: &str) -> Output {
    match result {
        Some(conf) => one(&conf),
        None => after(call, what),
    }
}

/// `tapir call OP …`.
pub async fn run(client: &Client, op: CallCmd) -> Result<Output, CliError> {
    use CallCmd as C;
    Ok(match op {
        C::Show { call } => one(&client.call(&call).await?),
        C::Make { from, to, location } => {
            one(&client.make_call(&MakeCall { from, to, location }).await?)
        }
        C::Answer { call } => {
            let mut c = client.call(&call).await?;
            c.answer().await?;
            after(&c, "answered")
        }
        C::Accept { call } => {
            let mut c = client.call(&call).await?;
            c.accept().await?;
            after(&c, "accepted")
        }
        C::Dial { call, digits } => {
            let mut c = client.call(&call).await?;
            c.dial(&digits).await?;
            after(&c, "dialled")
        }
        C::Drop { call } => {
            let mut c = client.call(&call).await?;
            c.drop().await?;
            after(&c, "dropped")
        }
        C::Deallocate { call } => {
            client.call(&call).await?.deallocate().await?;
            Output::new(
                json!({ "id": call, "deallocated": true }),
                format!("{call} deallocated\n"),
            )
        }
        C::Hold { call } => {
            let mut c = client.call(&call).await?;
            c.hold(true).await?;
            after(&c, "held")
        }
        C::Unhold { call } => {
            let mut c = client.call(&call).await?;
            c.hold(false).await?;
            after(&c, "unheld")
        }
        C::SwapHold { call, with } => {
            let mut c = client.call(&call).await?;
            let w = client.call(&with).await?;
            c.swap_hold(&w).await?;
            after(&c, "swapped")
        }
        C::Transfer { call, to } => {
            let mut c = client.call(&call).await?;
            c.blind_transfer(&to).await?;
            after(&c, &format!("transferred to {to}"))
        }
        C::SetupTransfer { call } => one(&client.call(&call).await?.setup_transfer().await?),
        C::CompleteTransfer {
            call,
            consult,
            conference,
        } => {
            let mut c = client.call(&call).await?;
            let x = client.call(&consult).await?;
            let r = c.complete_transfer(&x, transfer_mode(conference)).await?;
            conference_or(r, &c, "transferred")
        }
        C::Finish {
            consult,
            conference,
        } => {
            let mut x = client.call(&consult).await?;
            let r = x.finish(transfer_mode(conference)).await?;
            conference_or(r, &x, "finished")
        }
        C::Conference { call, parties } => {
            let conf = client.call(&call).await?.setup_conference(parties).await?;
            let infos = [conf.conference.info(), conf.consult.info()];
            Output::new(
                json!({
                    "conference_call": conf.conference.id(),
                    "consult_call": conf.consult.id(),
                    "calls": to_json(&infos),
                }),
                call_table(&infos),
            )
        }
        C::PrepareAdd { conference } => one(&client.call(&conference).await?.prepare_add().await?),
        C::Add {
            conference,
            consult,
        } => {
            let mut c = client.call(&conference).await?;
            let x = client.call(&consult).await?;
            c.add(&x).await?;
            after(&c, "extended")
        }
        C::Remove { call } => {
            let mut c = client.call(&call).await?;
            c.remove_from_conference().await?;
            after(&c, "removed")
        }
        C::Related { call } => {
            let related = client.call(&call).await?.related().await?;
            let mut text = related.join("\n");
            text.push('\n');
            Output::new(json!({ "calls": related }), text)
        }
        C::Redirect { call, to } => {
            let mut c = client.call(&call).await?;
            c.redirect(&to).await?;
            after(&c, &format!("redirected to {to}"))
        }
        C::Park { call, slot } => {
            let at = client.call(&call).await?.park(slot.as_deref()).await?;
            Output::new(
                json!({ "parked_at": at }),
                format!("{call} parked at {at}\n"),
            )
        }
        C::Complete {
            call,
            mode,
            message_id,
        } => {
            let mode: CompletionMode = enum_of(&mode)?;
            let c = client.call(&call).await?.complete(mode, message_id).await?;
            Output::new(
                json!({ "completion_id": c.id() }),
                format!("completion request {}\n", c.id()),
            )
        }
        C::Uncomplete { completion } => {
            client.uncomplete(&completion).await?;
            Output::new(
                json!({ "completion_id": completion, "cancelled": true }),
                format!("{completion} cancelled\n"),
            )
        }
        C::Record {
            call,
            action,
            channels,
        } => {
            let action: tapir_client::RecordAction = enum_of(&action)?;
            let channels = channels
                .as_deref()
                .map(enum_of::<tapir_client::RecordChannels>)
                .transpose()?;
            let id = client.record(&call, action, channels).await?;
            Output::new(
                json!({ "recording": id }),
                format!("{call}: recording {id}\n"),
            )
        }
        C::Secure { call } => {
            let mut c = client.call(&call).await?;
            c.secure().await?;
            after(&c, "secured")
        }
        C::Handoff {
            call,
            app,
            media_mode,
        } => {
            let target = match (app, media_mode) {
                (Some(a), _) => HandoffTarget::App(a),
                // `unknown` is a target too: the app that handles calls of
                // unknown media mode.
                (None, Some(m)) => HandoffTarget::MediaMode(media_mode_of(&m)?),
                (None, None) => return Err(CliError::Usage("give --app or --media-mode".into())),
            };
            let mut c = client.call(&call).await?;
            c.handoff(&target).await?;
            after(&c, "handed off")
        }
        C::Digits { call, digits } => {
            let mut c = client.call(&call).await?;
            c.generate_digits(&digits).await?;
            after(&c, "sent digits")
        }
        C::MediaMode { call, media_mode } => {
            let m = media_mode_of(&media_mode)?;
            let mut c = client.call(&call).await?;
            c.set_media_mode(m).await?;
            after(&c, "media mode set")
        }
        C::Privilege { call, privilege } => {
            let p: Privilege = enum_of(&privilege)?;
            let mut c = client.call(&call).await?;
            c.set_privilege(p).await?;
            after(&c, "privilege set")
        }
        C::Gather {
            call,
            max_digits,
            terminators,
            first_timeout_ms,
            inter_timeout_ms,
        } => {
            let mut c = client.call(&call).await?;
            c.gather_digits(&tapir_client::Gather {
                max_digits,
                terminators,
                first_timeout_ms,
                inter_timeout_ms,
            })
            .await?;
            after(&c, "gathering digits")
        }
        C::Tone {
            call,
            tone,
            frequencies,
            duration_ms,
        } => {
            let mut c = client.call(&call).await?;
            c.generate_tone(&tone, &frequencies, duration_ms).await?;
            after(&c, "tone generated")
        }
        C::Monitor {
            call,
            no_digits,
            tones,
            media_modes,
        } => {
            let tones = tones
                .iter()
                .map(|t| tone_watch_of(t))
                .collect::<Result<Vec<_>, _>>()?;
            let media_modes = media_modes
                .iter()
                .map(|m| media_mode_of(m))
                .collect::<Result<Vec<_>, _>>()?;
            let mut c = client.call(&call).await?;
            c.monitor(&tapir_client::Monitor {
                digits: !no_digits,
                tones,
                media_modes,
            })
            .await?;
            after(&c, "monitoring set")
        }
    })
}
