//! Operator commands (`tapir admin …`, `tapir cdr`): list, add, change and
//! delete lines, apps, trunks, pickup groups and webhooks, set the park
//! slots, read call detail records. They use the admin token.

use super::table::{Table, opt};
use super::{CliError, Output, to_json};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tapir_client::{AdminApp, AdminLine, AdminTrunk, Cdr, CdrQuery, Client, MediaMode, Privilege};

/// `tapir admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Lines of the switch.
    Lines {
        #[command(subcommand)]
        action: Option<LinesCmd>,
    },
    /// Applications and their tokens.
    Apps {
        #[command(subcommand)]
        action: Option<AppsCmd>,
    },
    /// SIP trunks.
    Trunks {
        #[command(subcommand)]
        action: Option<TrunksCmd>,
    },
    /// Pickup groups.
    PickupGroups {
        #[command(subcommand)]
        action: Option<GroupsCmd>,
    },
    /// Park slots and parked calls.
    Park {
        #[command(subcommand)]
        action: Option<ParkCmd>,
    },
    /// Every app's webhooks: state, pending events, suspension.
    Webhooks {
        #[command(subcommand)]
        action: Option<super::webhooks::WebhooksCmd>,
    },
}

/// `tapir admin lines …`.
#[derive(Debug, Subcommand)]
pub enum LinesCmd {
    /// List every line (the default).
    List,
    /// Show one line.
    Show {
        /// Its address.
        address: String,
    },
    /// Add a line.
    Add {
        /// Its (first) address.
        address: String,
        #[command(flatten)]
        fields: LineFields,
    },
    /// Change a line (the options given; the rest stays).
    Set {
        /// Its address.
        address: String,
        #[command(flatten)]
        fields: LineFields,
    },
    /// Delete a line.
    Delete {
        /// Its address.
        address: String,
    },
}

/// Settings of a line.
#[derive(Debug, Args)]
pub struct LineFields {
    /// `phone`, `routepoint` or `trunk`.
    #[arg(long, value_parser = ["phone", "routepoint", "trunk"])]
    kind: Option<String>,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// SIP digest password.
    #[arg(long)]
    password: Option<String>,
    /// Pickup group (empty to leave the group).
    #[arg(long)]
    pickup_group: Option<String>,
    /// More addresses of the line (replaces the list).
    #[arg(long = "more-address")]
    more_addresses: Option<Vec<String>>,
    /// Honour auto-answer hints.
    #[arg(long)]
    auto_answer: Option<bool>,
    /// `none` or `broadsoft`.
    #[arg(long, value_parser = ["none", "broadsoft"])]
    remote_control: Option<String>,
    /// Call appearances per address.
    #[arg(long)]
    max_calls: Option<u32>,
    /// What the line may dial.
    #[arg(long, value_parser = ["none", "internal", "national", "all"])]
    outbound: Option<String>,
}

impl LineFields {
    fn apply(self, l: &mut AdminLine) {
        if let Some(v) = self.outbound {
            l.outbound = Some(v);
        }
        if let Some(v) = self.kind {
            l.kind = Some(v);
        }
        if let Some(v) = self.name {
            l.name = Some(v);
        }
        if let Some(v) = self.password {
            l.password = Some(v);
        }
        if let Some(v) = self.pickup_group {
            l.pickup_group = Some(v).filter(|g| !g.is_empty());
        }
        if let Some(v) = self.more_addresses {
            l.more_addresses = v;
        }
        if let Some(v) = self.auto_answer {
            l.auto_answer = v;
        }
        if let Some(v) = self.remote_control {
            l.remote_control = Some(v);
        }
        if let Some(v) = self.max_calls {
            l.max_calls = Some(v);
        }
    }
}

/// `tapir admin apps …`.
#[derive(Debug, Subcommand)]
pub enum AppsCmd {
    /// List every app (the default).
    List,
    /// Show one app.
    Show {
        /// Its name.
        name: String,
    },
    /// Add an app; prints its token once when tapir generates it.
    Add {
        /// Its name.
        name: String,
        #[command(flatten)]
        fields: AppFields,
    },
    /// Change an app (the options given; `--app-token` rotates the token).
    Set {
        /// Its name.
        name: String,
        #[command(flatten)]
        fields: AppFields,
    },
    /// Delete an app (its lines are closed).
    Delete {
        /// Its name.
        name: String,
    },
}

/// Settings of an app.
#[derive(Debug, Args)]
pub struct AppFields {
    /// Addresses of the lines it may open (`*` for all); replaces the list.
    #[arg(long = "line")]
    lines: Option<Vec<String>>,
    /// The most it may ask for: `owner`, `monitor` (replaces the list).
    #[arg(long = "privilege", value_parser = ["owner", "monitor"])]
    privileges: Option<Vec<String>>,
    /// Media modes it may open lines for (replaces the list).
    #[arg(long = "media-mode")]
    media_modes: Option<Vec<String>>,
    /// Priority (lower wins).
    #[arg(long)]
    priority: Option<u32>,
    /// Its permissions beyond call control, replacing the list: `make_call`,
    /// `forward`, `settings`, or `none` for none at all.
    #[arg(long = "permission", value_parser = ["make_call", "forward", "settings", "none"])]
    permissions: Option<Vec<String>>,
    /// Back to the default permissions of its privileges and lines.
    #[arg(long = "default-permissions", conflicts_with = "permissions")]
    default_permissions: bool,
    /// Its bearer token (generated when adding without one; setting it
    /// rotates the token).
    #[arg(long = "app-token", id = "app_token")]
    token: Option<String>,
}

impl AppFields {
    fn apply(self, a: &mut AdminApp) -> Result<(), CliError> {
        if let Some(v) = self.lines {
            a.lines = v;
        }
        if let Some(v) = self.privileges {
            a.privileges = v
                .iter()
                .map(|p| enum_of::<Privilege>(p))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.media_modes {
            a.media_modes = v
                .iter()
                .map(|m| match enum_of::<MediaMode>(m)? {
                    MediaMode::Unknown => {
                        Err(CliError::Usage(format!("{m:?} is not a media mode")))
                    }
                    m => Ok(m),
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = self.priority {
            a.priority = v;
        }
        if let Some(v) = self.permissions {
            a.permissions = Some(v.into_iter().filter(|p| p != "none").collect());
        }
        if self.default_permissions {
            a.permissions = None;
        }
        if let Some(v) = self.token {
            a.token = Some(v);
        }
        Ok(())
    }
}

/// `tapir admin trunks …`.
#[derive(Debug, Subcommand)]
pub enum TrunksCmd {
    /// List every trunk (the default).
    List,
    /// Show one trunk.
    Show {
        /// Its name.
        name: String,
    },
    /// Add a trunk.
    Add {
        /// Its name.
        name: String,
        #[command(flatten)]
        fields: TrunkFields,
    },
    /// Change a trunk (the options given).
    Set {
        /// Its name.
        name: String,
        #[command(flatten)]
        fields: TrunkFields,
    },
    /// Delete a trunk.
    Delete {
        /// Its name.
        name: String,
    },
}

/// Settings of a trunk.
#[derive(Debug, Args)]
pub struct TrunkFields {
    /// The peer's host.
    #[arg(long)]
    host: Option<String>,
    /// The peer's SIP port.
    #[arg(long)]
    port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    #[arg(long, value_parser = ["udp", "tcp", "tls"])]
    transport: Option<String>,
    /// Digest user name.
    #[arg(long)]
    username: Option<String>,
    /// Digest password.
    #[arg(long)]
    password: Option<String>,
    /// Dialled prefix that selects the trunk.
    #[arg(long)]
    prefix: Option<String>,
    /// The trunk line's address.
    #[arg(long)]
    address: Option<String>,
    /// Route the carrier's calls back out of a trunk (hairpin).
    #[arg(long)]
    allow_hairpin: Option<bool>,
}

impl TrunkFields {
    fn apply(self, t: &mut AdminTrunk) {
        if let Some(v) = self.allow_hairpin {
            t.allow_hairpin = v;
        }
        if let Some(v) = self.host {
            t.host = v;
        }
        if let Some(v) = self.port {
            t.port = Some(v);
        }
        if let Some(v) = self.transport {
            t.transport = Some(v);
        }
        if let Some(v) = self.username {
            t.username = Some(v);
        }
        if let Some(v) = self.password {
            t.password = Some(v);
        }
        if let Some(v) = self.prefix {
            t.prefix = Some(v);
        }
        if let Some(v) = self.address {
            t.address = Some(v);
        }
    }
}

/// `tapir admin pickup-groups …`.
#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// List every group (the default).
    List,
    /// Set a group's members (creates it).
    Set {
        /// The group's name.
        name: String,
        /// Member addresses.
        members: Vec<String>,
    },
    /// Delete a group.
    Delete {
        /// The group's name.
        name: String,
    },
}

/// `tapir admin park …`.
#[derive(Debug, Subcommand)]
pub enum ParkCmd {
    /// Show the slots and the parked calls (the default).
    Show,
    /// Set the slot range.
    Set {
        /// Slot range (`7001-7020`) or comma-separated list.
        slots: String,
        /// Milliseconds before a parked call rings back.
        #[arg(long)]
        reminder_ms: Option<u64>,
    },
}

/// `tapir cdr`.
#[derive(Debug, Args)]
pub struct CdrArgs {
    /// Show this record (all its parties and operations).
    id: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Records older than this id (paging).
    #[arg(long)]
    before: Option<String>,
    /// Records with a party at this address.
    #[arg(long)]
    address: Option<String>,
}

/// `tapir quality`.
#[derive(Debug, Args)]
pub struct QualityArgs {
    /// The call in progress (`call-N`); its connected parties are shown too.
    call: String,
}

fn enum_of<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, CliError> {
    serde_json::from_value(json!(text))
        .map_err(|_| CliError::Usage(format!("{text:?} is not valid here")))
}

fn line_json(l: &AdminLine) -> Value {
    let mut v = to_json(l);
    v["has_password"] = json!(l.has_password);
    v
}

fn lines_table(lines: &[AdminLine]) -> String {
    let mut t = Table::new(&[
        "ADDRESS", "KIND", "NAME", "PICKUP", "PASSWORD", "AUTO", "MAX",
    ]);
    for l in lines {
        let mut addr = l.address.clone();
        if !l.more_addresses.is_empty() {
            addr = format!("{addr},{}", l.more_addresses.join(","));
        }
        t.row(vec![
            addr,
            opt(l.kind.as_deref()),
            opt(l.name.as_deref()),
            opt(l.pickup_group.as_deref()),
            if l.has_password { "set" } else { "-" }.into(),
            if l.auto_answer { "yes" } else { "no" }.into(),
            l.max_calls.map_or_else(|| "-".into(), |n| n.to_string()),
        ]);
    }
    t.render()
}

fn apps_table(apps: &[AdminApp]) -> String {
    let mut t = Table::new(&[
        "APP",
        "LINES",
        "PRIVILEGES",
        "PERMISSIONS",
        "MEDIA",
        "PRIORITY",
    ]);
    for a in apps {
        let list = |v: Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        t.row(vec![
            a.name.clone(),
            a.lines.join(","),
            list(to_json(&a.privileges)),
            match a.effective_permissions.join(",") {
                p if p.is_empty() => "-".into(),
                p => p,
            },
            list(to_json(&a.media_modes)),
            a.priority.to_string(),
        ]);
    }
    t.render()
}

/// An app's JSON with the permissions in force (which the client never
/// sends back, so does not serialize).
fn app_json(a: &AdminApp) -> Value {
    let mut v = to_json(a);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "effective_permissions".into(),
            to_json(&a.effective_permissions),
        );
    }
    v
}

fn app_output(a: &AdminApp) -> Output {
    let mut text = apps_table(std::slice::from_ref(a));
    if let Some(t) = &a.token {
        text.push_str(&format!("token: {t}   (shown once; keep it)\n"));
    }
    Output::new(app_json(a), text)
}

fn trunk_json(t: &AdminTrunk) -> Value {
    let mut v = to_json(t);
    v["has_password"] = json!(t.has_password);
    v
}

fn trunks_table(trunks: &[AdminTrunk]) -> String {
    let mut t = Table::new(&[
        "TRUNK",
        "HOST",
        "PORT",
        "TRANSPORT",
        "USER",
        "PREFIX",
        "ADDRESS",
    ]);
    for x in trunks {
        t.row(vec![
            x.name.clone(),
            x.host.clone(),
            x.port.map_or_else(|| "-".into(), |p| p.to_string()),
            opt(x.transport.as_deref()),
            opt(x.username.as_deref()),
            opt(x.prefix.as_deref()),
            opt(x.address.as_deref()),
        ]);
    }
    t.render()
}

fn deleted(what: &str, name: &str) -> Output {
    Output::new(
        json!({ "deleted": name }),
        format!("deleted {what} {name}\n"),
    )
}

/// `tapir admin …`.
pub async fn run(client: &Client, cmd: AdminCmd) -> Result<Output, CliError> {
    let admin = client.admin();
    Ok(match cmd {
        AdminCmd::Lines { action } => match action.unwrap_or(LinesCmd::List) {
            LinesCmd::List => {
                let lines = admin.lines().await?;
                Output::new(
                    json!({ "lines": lines.iter().map(line_json).collect::<Vec<_>>() }),
                    lines_table(&lines),
                )
            }
            LinesCmd::Show { address } => {
                let l = admin.line(&address).await?;
                Output::new(line_json(&l), lines_table(std::slice::from_ref(&l)))
            }
            LinesCmd::Add { address, fields } => {
                let mut l = AdminLine {
                    address,
                    ..AdminLine::default()
                };
                fields.apply(&mut l);
                let l = admin.add_line(&l).await?;
                Output::new(line_json(&l), lines_table(std::slice::from_ref(&l)))
            }
            LinesCmd::Set { address, fields } => {
                let mut l = admin.line(&address).await?;
                fields.apply(&mut l);
                let l = admin.set_line(&l).await?;
                Output::new(line_json(&l), lines_table(std::slice::from_ref(&l)))
            }
            LinesCmd::Delete { address } => {
                admin.delete_line(&address).await?;
                deleted("line", &address)
            }
        },
        AdminCmd::Apps { action } => match action.unwrap_or(AppsCmd::List) {
            AppsCmd::List => {
                let apps = admin.apps().await?;
                let list: Vec<Value> = apps.iter().map(app_json).collect();
                Output::new(json!({ "apps": list }), apps_table(&apps))
            }
            AppsCmd::Show { name } => app_output(&admin.app(&name).await?),
            AppsCmd::Add { name, fields } => {
                let mut a = AdminApp {
                    name,
                    ..AdminApp::default()
                };
                fields.apply(&mut a)?;
                app_output(&admin.add_app(&a).await?)
            }
            AppsCmd::Set { name, fields } => {
                let mut a = admin.app(&name).await?;
                a.token = None;
                fields.apply(&mut a)?;
                app_output(&admin.set_app(&a).await?)
            }
            AppsCmd::Delete { name } => {
                admin.delete_app(&name).await?;
                deleted("app", &name)
            }
        },
        AdminCmd::Trunks { action } => match action.unwrap_or(TrunksCmd::List) {
            TrunksCmd::List => {
                let trunks = admin.trunks().await?;
                Output::new(
                    json!({ "trunks": trunks.iter().map(trunk_json).collect::<Vec<_>>() }),
                    trunks_table(&trunks),
                )
            }
            TrunksCmd::Show { name } => {
                let t = admin.trunk(&name).await?;
                Output::new(trunk_json(&t), trunks_table(std::slice::from_ref(&t)))
            }
            TrunksCmd::Add { name, fields } => {
                let mut t = AdminTrunk {
                    name,
                    ..AdminTrunk::default()
                };
                fields.apply(&mut t);
                if t.host.is_empty() {
                    return Err(CliError::Usage("a trunk needs --host".into()));
                }
                let t = admin.add_trunk(&t).await?;
                Output::new(trunk_json(&t), trunks_table(std::slice::from_ref(&t)))
            }
            TrunksCmd::Set { name, fields } => {
                let mut t = admin.trunk(&name).await?;
                fields.apply(&mut t);
                let t = admin.set_trunk(&t).await?;
                Output::new(trunk_json(&t), trunks_table(std::slice::from_ref(&t)))
            }
            TrunksCmd::Delete { name } => {
                admin.delete_trunk(&name).await?;
                deleted("trunk", &name)
            }
        },
        AdminCmd::PickupGroups { action } => match action.unwrap_or(GroupsCmd::List) {
            GroupsCmd::List => {
                let groups = admin.pickup_groups().await?;
                let mut t = Table::new(&["GROUP", "MEMBERS"]);
                for g in &groups {
                    t.row(vec![g.name.clone(), g.members.join(",")]);
                }
                Output::new(json!({ "groups": to_json(&groups) }), t.render())
            }
            GroupsCmd::Set { name, members } => {
                let g = admin.set_pickup_group(&name, &members).await?;
                Output::new(
                    to_json(&g),
                    format!("{}: {}\n", g.name, g.members.join(",")),
                )
            }
            GroupsCmd::Delete { name } => {
                admin.delete_pickup_group(&name).await?;
                deleted("pickup group", &name)
            }
        },
        AdminCmd::Webhooks { action } => {
            let cmd = action.unwrap_or(super::webhooks::WebhooksCmd::List);
            super::webhooks::run(client, cmd, true).await?
        }
        AdminCmd::Park { action } => {
            let p = match action.unwrap_or(ParkCmd::Show) {
                ParkCmd::Show => admin.park().await?,
                ParkCmd::Set { slots, reminder_ms } => admin.set_park(&slots, reminder_ms).await?,
            };
            let mut text = format!(
                "slots     {}\nreminder  {}\n",
                p.slots,
                p.reminder_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms} ms"))
            );
            if !p.parked.is_empty() {
                let mut t = Table::new(&["SLOT", "CALL"]);
                for x in &p.parked {
                    t.row(vec![x.slot.clone(), x.call.clone()]);
                }
                text.push_str(&t.render());
            }
            let mut v = to_json(&p);
            v["parked"] = to_json(&p.parked);
            Output::new(v, text)
        }
    })
}

fn cdr_table(cdrs: &[Cdr]) -> String {
    let mut t = Table::new(&[
        "CDR", "STARTED", "ANSWERED", "DURATION", "ORIGIN", "PARTIES", "END",
    ]);
    for c in cdrs {
        t.row(vec![
            c.id.clone(),
            c.started_at.clone(),
            opt(c.answered_at.as_deref()),
            format!("{:.1}s", c.duration_ms as f64 / 1000.0),
            c.origin.clone(),
            c.parties
                .iter()
                .map(|p| format!("{}:{}", p.role, p.address))
                .collect::<Vec<_>>()
                .join(" "),
            c.end_reason.clone(),
        ]);
    }
    t.render()
}

/// Each leg's media quality: what tapir received from the phone, and the
/// phone's own report on tapir's stream.
fn quality_table(legs: &[tapir_client::CdrLegQuality]) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}ms"));
    let mut t = Table::new(&[
        "ADDRESS",
        "CALL",
        "RECEIVED",
        "LOST",
        "LOSS",
        "JITTER",
        "RTT",
        "PEER LOSS",
    ]);
    for q in legs {
        t.row(vec![
            q.address.clone(),
            opt(q.call.as_deref()),
            q.packets_received.to_string(),
            q.packets_lost.to_string(),
            format!("{:.2}%", q.loss_percent),
            ms(Some(q.jitter_ms)),
            ms(q.round_trip_ms),
            q.peer_fraction_lost
                .map_or_else(|| "-".to_string(), |f| format!("{:.1}%", f * 100.0)),
        ]);
    }
    t.render()
}

/// `tapir quality CALL`: the media quality so far of a call in progress.
pub async fn quality(client: &Client, a: QualityArgs) -> Result<Output, CliError> {
    let legs = client.admin().call_quality(&a.call).await?;
    let text = if legs.is_empty() {
        "no media on this call yet\n".to_string()
    } else {
        quality_table(&legs)
    };
    Ok(Output::new(
        json!({ "call": a.call, "quality": to_json(&legs) }),
        text,
    ))
}

/// `tapir cdr [ID] [--limit N] [--before ID] [--address A]`.
pub async fn cdr(client: &Client, a: CdrArgs) -> Result<Output, CliError> {
    let admin = client.admin();
    if let Some(id) = a.id {
        let c = admin.cdr(&id).await?;
        let mut text = cdr_table(std::slice::from_ref(&c));
        if !c.operations.is_empty() {
            let mut t = Table::new(&["AT", "OP", "APP", "CALL", "RESULT"]);
            for o in &c.operations {
                t.row(vec![
                    o.at.clone(),
                    o.op.clone(),
                    opt(o.app.as_deref()),
                    opt(o.call.as_deref()),
                    o.result.clone(),
                ]);
            }
            text.push_str(&t.render());
        }
        if !c.quality.is_empty() {
            text.push_str(&quality_table(&c.quality));
        }
        return Ok(Output::new(to_json(&c), text));
    }
    let cdrs = admin
        .cdrs(&CdrQuery {
            limit: Some(a.limit),
            before: a.before,
            address: a.address,
        })
        .await?;
    Ok(Output::new(
        json!({ "cdrs": to_json(&cdrs) }),
        cdr_table(&cdrs),
    ))
}
