//! `tapir`: the telephony call-control server. `tapir serve` runs the switch
//! and its HTTP API; the other subcommands of issue 7 (CLI, admin) come later.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tapir_server::Config;

/// tapir: a SIP PBX whose calls applications drive with TAPI operations.
#[derive(Debug, Parser)]
#[command(name = "tapir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the switch and its HTTP API.
    Serve {
        /// Configuration file (TOML); the embedded default without it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override `[http] listen`.
        #[arg(long)]
        http_listen: Option<String>,
        /// Override `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
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
        Cmd::Serve {
            config,
            http_listen,
            data_dir,
        } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("tapir: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(config, http_listen, data_dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tapir: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(
    config_path: Option<PathBuf>,
    http_listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default(),
    };
    if let Some(l) = http_listen {
        config.http.listen = l;
    }
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    let generated = config.fill_secrets()?;
    let server = tapir_server::start(config).await?;
    print_screen(&server, config_path.as_deref(), &generated);
    wait_for_stop().await?;
    eprintln!("tapir: stopping");
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what service managers send) on Unix.
async fn wait_for_stop() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

fn print_screen(
    server: &tapir_server::RunningServer,
    config_path: Option<&std::path::Path>,
    generated: &[String],
) {
    let c = &server.config;
    let base = format!("http://{}", server.http_addr);
    println!("tapir {} is running", env!("CARGO_PKG_VERSION"));
    println!();
    match config_path {
        Some(p) => println!("  configuration  {}", p.display()),
        None => println!("  configuration  embedded default (no --config)"),
    }
    println!("  data dir       {}", c.data_dir.display());
    println!(
        "  secrets        {} (generated tokens and passwords; SQLite store comes later)",
        c.data_dir
            .join(tapir_server::config::SECRETS_FILE)
            .display()
    );
    println!("  HTTP API       {base}/v1");
    println!(
        "  events         ws://{}/v1/events?since=0",
        server.http_addr
    );
    println!("  OpenAPI        {base}/v1/openapi.json");
    println!("  health         {base}/healthz    metrics {base}/metrics");
    match server.sip_addr {
        Some(addr) => {
            let tcp = server
                .sip_tcp_addr
                .map(|t| format!(", tcp:{t}"))
                .unwrap_or_default()
                + &server
                    .sip_tls_addr
                    .map(|t| format!(", tls:{t}"))
                    .unwrap_or_default();
            println!(
                "  SIP            udp:{addr}{tcp} (realm {}; phones register with their line's password)",
                c.sip.domain
            )
        }
        None => println!("  SIP            off (no udp: entry in [sip] listen)"),
    }
    println!("  park slots     {}", c.park.slots);
    println!("  lines          {}", c.lines.len());
    for l in &c.lines {
        let kind = serde_json::to_value(l.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "    {:<8} {:<10} {}",
            l.address,
            kind,
            l.name.as_deref().unwrap_or("")
        );
    }
    println!("  apps");
    for a in &c.apps {
        println!("    {:<10} lines {}", a.name, a.lines.join(","));
    }
    if generated.is_empty() {
        println!();
        println!("  (secrets were generated at first start; see the secrets file)");
    } else {
        println!();
        println!("  generated now, shown once (kept in the secrets file):");
        for g in generated {
            println!("    {g}");
        }
    }
    println!();
    println!("  try: curl -H 'Authorization: Bearer <app token>' {base}/v1/lines");
}
