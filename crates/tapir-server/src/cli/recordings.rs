//! `tapir recordings …`: the recordings this app may see (every one with
//! the admin token as `--token`), a recording's metadata, its WAV file, and
//! deletion. Recording a call is `tapir call record CALL start|pause|resume|stop`.

use super::table::{Table, opt};
use super::{CliError, Output, to_json};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use tapir_client::{Client, Recording};

/// `tapir recordings …`.
#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// List recordings, newest first (the default).
    List,
    /// Show one recording's metadata.
    Show {
        /// Its id (`rec-…`).
        id: String,
    },
    /// Write a finished recording's WAV file.
    Download {
        /// Its id.
        id: String,
        /// Where to write it (default `<id>.wav`).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a finished recording (file and metadata).
    Delete {
        /// Its id.
        id: String,
    },
}

fn table(recs: &[Recording]) -> String {
    let mut t = Table::new(&[
        "ID", "CALL", "ADDRESS", "CHANNELS", "STATE", "STARTED", "SECONDS", "BYTES", "END",
    ]);
    for r in recs {
        t.row(vec![
            r.id.clone(),
            r.call.clone(),
            r.address.clone(),
            r.channels.clone(),
            r.state.clone(),
            r.started_at.clone(),
            format!("{:.1}", r.duration_ms as f64 / 1000.0),
            r.size.to_string(),
            opt(r.end_reason.as_deref()),
        ]);
    }
    t.render()
}

/// Run a recordings command.
pub async fn run(client: &Client, cmd: RecordingsCmd) -> Result<Output, CliError> {
    Ok(match cmd {
        RecordingsCmd::List => {
            let recs = client.recordings().await?;
            Output::new(json!({ "recordings": to_json(&recs) }), table(&recs))
        }
        RecordingsCmd::Show { id } => {
            let r = client.recording(&id).await?;
            Output::new(to_json(&r), table(std::slice::from_ref(&r)))
        }
        RecordingsCmd::Download { id, output } => {
            let wav = client.recording_audio(&id).await?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{id}.wav")));
            std::fs::write(&path, &wav)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
            Output::new(
                json!({ "recording": id, "file": path.display().to_string(), "bytes": wav.len() }),
                format!("wrote {} ({} bytes)\n", path.display(), wav.len()),
            )
        }
        RecordingsCmd::Delete { id } => {
            client.delete_recording(&id).await?;
            Output::new(
                json!({ "deleted": id }),
                format!("deleted recording {id}\n"),
            )
        }
    })
}
