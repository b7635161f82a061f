//! `tapir serve`: run the switch and its HTTP API until Ctrl-C or SIGTERM,
//! after printing one screen that says where everything is.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tapir_server::Config;

/// Options of `tapir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); the embedded default without it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override `[http] listen`.
    #[arg(long)]
    http_listen: Option<String>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override `[sip] listen` (repeat for several transports).
    #[arg(long)]
    sip_listen: Vec<String>,
    /// Override `[cluster] node` (several nodes share one file).
    #[arg(long)]
    node: Option<String>,
}

/// Run `tapir serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tapir: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapir: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config_path = args.config;
    let mut config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default(),
    };
    if let Some(l) = args.http_listen {
        config.http.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if !args.sip_listen.is_empty() {
        config.sip.listen = args.sip_listen;
    }
    if let Some(node) = args.node {
        match config.cluster.as_mut() {
            Some(cluster) => cluster.node = node,
            None => return Err("--node needs a [cluster] section in the configuration".into()),
        }
    }
    // RTP takes two descriptors per leg: use all the system allows.
    tapir_server::admission::raise_fd_limit();
    // The store keeps the secrets; `start` generates the absent ones at
    // first start and returns them in clear once.
    let server = tapir_server::start(config).await?;
    print_screen(&server, config_path.as_deref(), &server.generated);
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
        "  store          {} (configuration, hashed tokens, journal, CDRs)",
        without_password(&c.store_url())
    );
    println!("  HTTP API       {base}/v1");
    println!(
        "  events         ws://{}/v1/events?since=0",
        server.http_addr
    );
    println!("  OpenAPI        {base}/v1/openapi.json");
    println!("  health         {base}/healthz    metrics {base}/metrics");
    if let Some(cluster) = &server.cluster {
        println!(
            "  cluster        node {} (line leases in [cluster] postgres)",
            cluster.node()
        );
    }
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
        println!(
            "  (secrets were generated and shown at first start; the store keeps tokens only as hashes)"
        );
    } else {
        println!();
        println!("  generated now, shown once (the store keeps tokens only as hashes):");
        for g in generated {
            println!("    {g}");
        }
    }
    println!();
    println!("  try: curl -H 'Authorization: Bearer <app token>' {base}/v1/lines");
}

/// A store URL without the password of its user part
/// (`postgres://user:secret@host/db` → `postgres://user:…@host/db`).
fn without_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((user, host)) = rest.split_once('@')
        && let Some((name, _)) = user.split_once(':')
    {
        return format!("{scheme}://{name}:…@{host}");
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn store_passwords_are_not_printed() {
        assert_eq!(
            without_password("postgres://tapir:secret@127.0.0.1:5432/tapir"),
            "postgres://tapir:…@127.0.0.1:5432/tapir"
        );
        assert_eq!(
            without_password("sqlite://data/tapir.db"),
            "sqlite://data/tapir.db"
        );
    }
}
