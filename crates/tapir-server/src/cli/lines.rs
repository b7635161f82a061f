//! Line and address commands (`lines`, `address`, `pickup`, `forward`),
//! translation (`translate`, `locations`, `cards`) and `events`.

use super::table::{Table, opt};
use super::{CliError, Output, calls, to_json};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tapir_client::{
    AddressStatus, Client, EventKind, ForwardRule, LineInfo, MediaMode, PickupTarget, Privilege,
    TranslateRequest,
};

/// `tapir lines …`.
#[derive(Debug, Subcommand)]
pub enum LineCmd {
    /// List the lines (the default).
    List,
    /// Open a line (lineOpen); as owner unless told otherwise.
    Open {
        /// Line id (`line-3`) or address.
        line: String,
        /// Open as monitor.
        #[arg(long)]
        monitor: bool,
        /// Open as owner (the default; with --monitor: both).
        #[arg(long)]
        owner: bool,
        /// Media modes handled as owner (`interactivevoice`, `automatedvoice`, …).
        #[arg(long = "media-mode", value_parser = parse_media_mode)]
        media_modes: Vec<MediaMode>,
    },
    /// Close a line (lineClose).
    Close {
        /// Line id (`line-3`) or address.
        line: String,
    },
}

/// A media mode named on the command line. `unknown` is one (an app that
/// handles calls of unknown media mode: TAPI's media-probing apps, the
/// target of a handoff to `unknown`); the client's catch-all for names it
/// does not know is not.
fn parse_media_mode(s: &str) -> Result<MediaMode, String> {
    match serde_json::from_value::<MediaMode>(json!(s)) {
        Ok(MediaMode::Unknown) if s != "unknown" => Err(not_a_media_mode(s)),
        Err(_) => Err(not_a_media_mode(s)),
        Ok(m) => Ok(m),
    }
}

fn not_a_media_mode(s: &str) -> String {
    format!(
        "{s:?} is not a media mode (interactivevoice, automatedvoice, datamodem, g3fax, tdd, video, unknown)"
    )
}

fn privileges_text(p: &[Privilege]) -> String {
    p.iter()
        .map(|p| to_json(p).as_str().unwrap_or("?").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn line_table(lines: &[&LineInfo]) -> String {
    let mut t = Table::new(&["LINE", "ADDRESS", "KIND", "NAME", "REGISTRATION", "OPEN"]);
    for l in lines {
        t.row(vec![
            l.id.clone(),
            l.addresses.join(","),
            to_json(&l.kind).as_str().unwrap_or("?").to_string(),
            opt(l.name.as_deref()),
            l.registration.clone(),
            l.open
                .as_deref()
                .map_or_else(|| "-".into(), privileges_text),
        ]);
    }
    t.render()
}

/// `tapir lines [list|open|close]`.
pub async fn lines(client: &Client, action: Option<LineCmd>) -> Result<Output, CliError> {
    match action.unwrap_or(LineCmd::List) {
        LineCmd::List => {
            let lines = client.lines().await?;
            let infos: Vec<&LineInfo> = lines.iter().map(|l| l.info()).collect();
            Ok(Output::new(to_json(&infos), line_table(&infos)))
        }
        LineCmd::Open {
            line,
            monitor,
            owner,
            media_modes,
        } => {
            let mut privileges = Vec::new();
            if owner || !monitor {
                privileges.push(Privilege::Owner);
            }
            if monitor {
                privileges.push(Privilege::Monitor);
            }
            let mut l = client.line(&line).await?;
            let info = l.open(&privileges, &media_modes).await?.clone();
            Ok(Output::new(to_json(&info), line_table(&[&info])))
        }
        LineCmd::Close { line } => {
            let mut l = client.line(&line).await?;
            l.close().await?;
            Ok(Output::new(
                json!({"closed": l.id()}),
                format!("closed {} ({})\n", l.id(), l.address()),
            ))
        }
    }
}

fn status_output(st: &AddressStatus) -> Output {
    Output::new(to_json(st), status_text(st))
}

fn status_text(st: &AddressStatus) -> String {
    let mut text = format!("address {}  line {}\n", st.address, st.line);
    if st.forwarding.rules.is_empty() {
        text.push_str("forwarding: none\n");
    } else {
        text.push_str(&format!(
            "forwarding (no-answer after {} rings):\n",
            st.forwarding.no_answer_rings
        ));
        let mut t = Table::new(&["MODE", "TO", "CALLER"]);
        for r in &st.forwarding.rules {
            t.row(vec![
                r.mode.clone(),
                opt(r.to.as_deref()),
                opt(r.caller.as_deref()),
            ]);
        }
        text.push_str(&t.render());
    }
    if st.calls.is_empty() {
        text.push_str("calls: none\n");
    } else {
        let mut t = Table::new(&["CALL", "STATE"]);
        for c in &st.calls {
            t.row(vec![c.id.clone(), c.state.to_string()]);
        }
        text.push_str(&t.render());
    }
    text
}

/// `tapir address ADDRESS`.
pub async fn address(client: &Client, address: &str) -> Result<Output, CliError> {
    Ok(status_output(&client.address(address).status().await?))
}

/// `tapir pickup`.
#[derive(Debug, Args)]
pub struct PickupArgs {
    /// The address that takes the call.
    address: String,
    /// The ringing address to pick up from.
    #[arg(required_unless_present_any = ["group", "waiting"])]
    target: Option<String>,
    /// Pick up any call ringing in this pickup group instead (with a
    /// target: the target must be in this group).
    #[arg(long)]
    group: Option<String>,
    /// Pick up the call waiting at ADDRESS itself (linePickup naming
    /// neither); the address's current call goes on hold.
    #[arg(long, conflicts_with_all = ["target", "group"])]
    waiting: bool,
}

/// `tapir pickup ADDRESS (TARGET | --group G | --waiting)`.
pub async fn pickup(client: &Client, a: PickupArgs) -> Result<Output, CliError> {
    let target = match (a.target, a.group) {
        (Some(t), None) => PickupTarget::Address(t),
        (None, Some(g)) => PickupTarget::Group(g),
        (Some(t), Some(g)) => PickupTarget::AddressInGroup(t, g),
        (None, None) if a.waiting => PickupTarget::CallWaiting,
        (None, None) => {
            return Err(CliError::Usage(
                "give a target address, --group or --waiting".into(),
            ));
        }
    };
    let call = client.address(a.address).pickup(&target).await?;
    Ok(calls::one(&call))
}

/// `tapir forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The address whose forwarding to set (with `--line`: a line id or
    /// one of its addresses).
    address: String,
    /// Forward every address of the line at once (lineForward with
    /// bAllAddresses); every address takes the rules or none does.
    #[arg(long)]
    line: bool,
    /// Rules `MODE=TO` (`unconditional=1002`, `busy=1003`, `noanswer=1004`,
    /// `busynoanswer=…`, `unconditionalinternal=…`, …); `MODE=` forwards
    /// nowhere (do not disturb).
    #[arg(value_name = "MODE=TO", required_unless_present = "off")]
    rules: Vec<String>,
    /// The caller, for the `…specific` modes.
    #[arg(long)]
    caller: Option<String>,
    /// Rings before no-answer forwarding.
    #[arg(long)]
    rings: Option<u32>,
    /// Cancel every forwarding rule of the address.
    #[arg(long, conflicts_with = "rules")]
    off: bool,
}

/// `tapir forward [--line] ADDRESS MODE=TO… | --off`.
pub async fn forward(client: &Client, a: ForwardArgs) -> Result<Output, CliError> {
    let mut rules = Vec::new();
    for r in &a.rules {
        let (mode, to) = r.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "{r:?} is not MODE=TO (for example unconditional=1002)"
            ))
        })?;
        rules.push(ForwardRule {
            mode: mode.trim().to_string(),
            to: Some(to.trim().to_string()).filter(|t| !t.is_empty()),
            caller: a.caller.clone(),
        });
    }
    if a.line {
        let line = client.line(&a.address).await?;
        let all = line.forward(&rules, a.rings).await?;
        let mut text = String::new();
        for st in &all.addresses {
            text.push_str(&status_text(st));
        }
        return Ok(Output::new(to_json(&all), text));
    }
    let st = client.address(a.address).forward(&rules, a.rings).await?;
    Ok(status_output(&st))
}

/// `tapir translate`.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Canonical (`+1 (425) 555-1212`) or dialable address.
    address: String,
    /// Location id (the current location when absent).
    #[arg(long)]
    location: Option<String>,
    /// Calling card id.
    #[arg(long)]
    card: Option<String>,
    /// Options: `cardoverride`, `cancelcallwaiting`, `forcelocal`, `forceld`.
    #[arg(long = "option")]
    options: Vec<String>,
}

/// `tapir translate ADDRESS`.
pub async fn translate(client: &Client, a: TranslateArgs) -> Result<Output, CliError> {
    let t = client
        .translate_with(&TranslateRequest {
            address: a.address,
            location: a.location,
            card: a.card,
            options: a.options,
        })
        .await?;
    let text = format!(
        "dialable     {}\ndisplayable  {}\ncountry      {}\nresults      {}\n",
        t.dialable,
        t.displayable,
        t.country_code,
        t.results.join(",")
    );
    Ok(Output::new(to_json(&t), text))
}

/// `tapir locations`.
pub async fn locations(client: &Client) -> Result<Output, CliError> {
    let l = client.locations().await?;
    let mut t = Table::new(&[
        "", "LOCATION", "NAME", "COUNTRY", "AREA", "LOCAL", "LD", "CARD",
    ]);
    for loc in &l.locations {
        t.row(vec![
            if loc.id == l.current { "*" } else { "" }.into(),
            loc.id.clone(),
            loc.name.clone(),
            loc.country_code.to_string(),
            opt(Some(&loc.area_code)),
            opt(Some(&loc.local_access)),
            opt(Some(&loc.long_distance_access)),
            opt(loc.card.as_deref()),
        ]);
    }
    Ok(Output::new(to_json(&l), t.render()))
}

/// `tapir cards`.
pub async fn cards(client: &Client) -> Result<Output, CliError> {
    let cards = client.cards().await?;
    let mut t = Table::new(&["CARD", "NAME", "NUMBER"]);
    for c in &cards {
        t.row(vec![
            c.id.clone(),
            c.name.clone(),
            opt(Some(&c.card_number)),
        ]);
    }
    Ok(Output::new(json!({ "cards": to_json(&cards) }), t.render()))
}

/// `tapir events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the events after this sequence number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Keep printing new events until interrupted (otherwise stop at the
    /// last event there is now).
    #[arg(long, short)]
    follow: bool,
}

/// One event as a line of text: `SEQ TYPE key=value …`.
fn event_line(raw: &Value) -> String {
    let seq = raw.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let ty = raw.get("type").and_then(Value::as_str).unwrap_or("?");
    let mut fields = Vec::new();
    if let Value::Object(map) = raw {
        for (k, v) in map {
            if k == "seq" || k == "type" {
                continue;
            }
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.push(format!("{k}={v}"));
        }
    }
    format!("{seq:>6}  {ty:<18} {}", fields.join(" "))
}

/// `tapir events [--since N] [--follow]`: prints as events come (one JSON
/// object per line with `--json`).
pub async fn events(client: &Client, a: EventsArgs, json: bool) -> Result<(), CliError> {
    use std::io::Write;
    let (now, _) = client.calls().await?;
    if !a.follow && now <= a.since {
        return Ok(());
    }
    let mut stream = client.events(a.since);
    let mut stdout = std::io::stdout();
    while let Some(item) = stream.next().await {
        let ev = item?;
        let raw = match &ev.kind {
            EventKind::Resync { message, calls } => json!({
                "seq": ev.seq, "type": "stream.resync", "message": message,
                "calls": calls.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            }),
            _ => ev.raw.clone(),
        };
        let line = if json {
            raw.to_string()
        } else {
            event_line(&raw)
        };
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(()); // stdout closed (`| head`)
        }
        if !a.follow && ev.seq >= now {
            return Ok(());
        }
    }
    Ok(())
}
