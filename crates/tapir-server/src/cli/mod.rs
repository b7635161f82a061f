//! The `tapir` command line: `serve` and `openapi`, and the client
//! commands that drive a running server through `tapir-client` — lines,
//! calls and every call operation, pickup, unpark, forwarding, translation,
//! the event stream, webhooks, recordings, and the operator's `admin` and `cdr`
//! commands.
//!
//! Output is a plain table for people, or the server's JSON with `--json`.
//! A refused request prints TAPI's error code and sentence on stderr and
//! exits 1; a server that cannot be reached exits 3; bad usage exits 2.
//!
//! Where the server and token come from: `--server` / `TAPIR_SERVER`
//! (default `http://127.0.0.1:8080`); `--token` / `TAPIR_TOKEN` for app
//! commands and `--admin-token` / `TAPIR_ADMIN_TOKEN` (else `--token`) for
//! operator commands; without them, a `secrets.toml` in the data directory
//! (`./tapir-data`, or `--secrets FILE`).

mod admin;
mod calls;
mod lines;
mod recordings;
mod serve;
mod table;
mod webhooks;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use tapir_client::{Client, ClientError};

/// tapir: a SIP PBX whose calls applications drive with TAPI operations.
#[derive(Debug, Parser)]
#[command(name = "tapir", version)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

/// Options of every client command.
#[derive(Debug, Args)]
pub struct Global {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "TAPIR_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// An app's token (for lines, calls, events, translation).
    #[arg(long, global = true, env = "TAPIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The operator's token (for `admin` and `cdr`); `--token` when absent.
    #[arg(long, global = true, env = "TAPIR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Act as this app: take its token from the secrets file.
    #[arg(long = "as", id = "as_app", value_name = "APP", global = true)]
    app: Option<String>,
    /// Secrets file to take tokens from when none is given.
    #[arg(long, global = true, default_value = "tapir-data/secrets.toml")]
    secrets: PathBuf,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the switch and its HTTP API.
    Serve(serve::ServeArgs),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// List the lines this app may open, or open and close them.
    Lines {
        #[command(subcommand)]
        action: Option<lines::LineCmd>,
    },
    /// List this app's calls.
    Calls,
    /// Make a call, or apply a call operation to one.
    Call {
        #[command(subcommand)]
        op: calls::CallCmd,
    },
    /// Show an address's status: forwarding and calls (lineGetAddressStatus).
    Address {
        /// The address (directory number).
        address: String,
    },
    /// Pick up a call ringing at another address or in a group (linePickup).
    Pickup(lines::PickupArgs),
    /// Retrieve a parked call to an address (lineUnpark).
    Unpark {
        /// The address that takes the call.
        address: String,
        /// The park slot.
        slot: String,
    },
    /// Set or cancel an address's forwarding (lineForward).
    Forward(lines::ForwardArgs),
    /// Translate an address for dialing (lineTranslateAddress).
    Translate(lines::TranslateArgs),
    /// List the dialing locations.
    Locations,
    /// List the calling cards.
    Cards,
    /// Print this app's events.
    Events(lines::EventsArgs),
    /// This app's webhooks: its events POSTed to its HTTP endpoints.
    Webhooks {
        #[command(subcommand)]
        action: Option<webhooks::WebhooksCmd>,
    },
    /// Call recordings this app may see: list, show, download, delete.
    Recordings {
        #[command(subcommand)]
        action: Option<recordings::RecordingsCmd>,
    },
    /// Operator commands: lines, apps, trunks, pickup groups, park (admin token).
    Admin {
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
    /// List call detail records, or show one (admin token).
    Cdr(admin::CdrArgs),
    /// Show the media quality so far of a call in progress (admin token).
    Quality(admin::QualityArgs),
}

/// What a command prints: the JSON for `--json` and the text for people.
#[derive(Debug)]
pub struct Output {
    json: Value,
    human: String,
}

impl Output {
    /// An output.
    pub fn new(json: Value, human: impl Into<String>) -> Output {
        Output {
            json,
            human: human.into(),
        }
    }
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client failed (the server refused, or could not be reached).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The command cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
}

/// Run the `tapir` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Cmd::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Cmd::Serve(args) => serve::run(args),
        Cmd::Openapi => match tapir_server::openapi().to_pretty_json() {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tapir: {e}");
                ExitCode::FAILURE
            }
        },
        command => client_command(&cli.global, command),
    }
}

fn client_command(global: &Global, command: Cmd) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tapir: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = global.json;
    // `events --follow` prints as it goes; everything else prints once.
    match runtime.block_on(dispatch(global, command)) {
        Ok(Some(out)) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).unwrap_or_default()
                );
            } else {
                print!("{}", out.human);
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => report(&e, json, &global.server),
    }
}

/// Print an error on stderr; the exit code says what kind it was.
fn report(e: &CliError, json: bool, server: &str) -> ExitCode {
    let (code, status, message, exit) = match e {
        CliError::Client(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (code.clone(), Some(*status), message.clone(), 1),
        CliError::Client(ClientError::Http(err)) => (
            "unreachable".to_string(),
            None,
            format!("cannot reach the tapir server at {server}: {err}"),
            3,
        ),
        CliError::Client(other) => ("operationfailed".to_string(), None, other.to_string(), 3),
        CliError::Usage(m) => ("invalparam".to_string(), None, m.clone(), 2),
    };
    if json {
        eprintln!(
            "{}",
            serde_json::json!({"error": {"code": code, "message": message, "status": status}})
        );
    } else {
        match status {
            Some(s) => eprintln!("tapir: {code}: {message} (HTTP {s})"),
            None => eprintln!("tapir: {message}"),
        }
    }
    ExitCode::from(exit)
}

async fn dispatch(g: &Global, command: Cmd) -> Result<Option<Output>, CliError> {
    Ok(Some(match command {
        Cmd::Serve(_) | Cmd::Openapi => return Ok(None),
        Cmd::Lines { action } => lines::lines(&app_client(g)?, action).await?,
        Cmd::Calls => calls::list(&app_client(g)?).await?,
        Cmd::Call { op } => calls::run(&app_client(g)?, op).await?,
        Cmd::Address { address } => lines::address(&app_client(g)?, &address).await?,
        Cmd::Pickup(a) => lines::pickup(&app_client(g)?, a).await?,
        Cmd::Unpark { address, slot } => {
            let call = app_client(g)?.address(address).unpark(&slot).await?;
            calls::one(&call)
        }
        Cmd::Forward(a) => lines::forward(&app_client(g)?, a).await?,
        Cmd::Translate(a) => lines::translate(&app_client(g)?, a).await?,
        Cmd::Locations => lines::locations(&app_client(g)?).await?,
        Cmd::Cards => lines::cards(&app_client(g)?).await?,
        Cmd::Events(a) => {
            lines::events(&app_client(g)?, a, g.json).await?;
            return Ok(None);
        }
        Cmd::Webhooks { action } => {
            let cmd = action.unwrap_or(webhooks::WebhooksCmd::List);
            webhooks::run(&app_client(g)?, cmd, false).await?
        }
        Cmd::Recordings { action } => {
            let cmd = action.unwrap_or(recordings::RecordingsCmd::List);
            recordings::run(&app_client(g)?, cmd).await?
        }
        Cmd::Admin { cmd } => admin::run(&admin_client(g)?, cmd).await?,
        Cmd::Cdr(a) => admin::cdr(&admin_client(g)?, a).await?,
        Cmd::Quality(a) => admin::quality(&admin_client(g)?, a).await?,
    }))
}

/// Tokens a `secrets.toml` holds (the file `tapir serve` kept in its data
/// directory): `admin_token` and `[apps] name = token`.
#[derive(Debug, Default, serde::Deserialize)]
struct Secrets {
    admin_token: Option<String>,
    #[serde(default)]
    apps: std::collections::BTreeMap<String, String>,
}

fn secrets(g: &Global) -> Result<Option<Secrets>, CliError> {
    match std::fs::read_to_string(&g.secrets) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("{}: {e}", g.secrets.display()))),
        Err(_) => Ok(None),
    }
}

fn no_token(what: &str, flag: &str, env: &str, g: &Global) -> CliError {
    CliError::Usage(format!(
        "no {what} token: pass {flag} or set {env} (no usable {} either)",
        g.secrets.display()
    ))
}

/// A client with an app's token.
fn app_client(g: &Global) -> Result<Client, CliError> {
    let token = match &g.token {
        Some(t) => t.clone(),
        None => {
            let s = secrets(g)?.unwrap_or_default();
            match &g.app {
                Some(name) => s.apps.get(name).cloned().ok_or_else(|| {
                    CliError::Usage(format!(
                        "{} has no token of app {name}",
                        g.secrets.display()
                    ))
                })?,
                None if s.apps.len() == 1 => s.apps.into_values().next().unwrap_or_default(),
                None if s.apps.len() > 1 => {
                    return Err(CliError::Usage(format!(
                        "{} holds tokens of several apps ({}); choose one with --as APP",
                        g.secrets.display(),
                        s.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                None => return Err(no_token("app", "--token", "TAPIR_TOKEN", g)),
            }
        }
    };
    Ok(Client::new(&g.server, token)?)
}

/// A client with the operator's token.
fn admin_client(g: &Global) -> Result<Client, CliError> {
    let token = match g.admin_token.as_ref().or(g.token.as_ref()) {
        Some(t) => t.clone(),
        None => secrets(g)?
            .and_then(|s| s.admin_token)
            .ok_or_else(|| no_token("admin", "--admin-token", "TAPIR_ADMIN_TOKEN", g))?,
    };
    Ok(Client::new(&g.server, token)?)
}

/// A value as JSON (for `--json`); `null` if it cannot be.
fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
