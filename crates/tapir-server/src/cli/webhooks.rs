//! Webhook commands: `tapir webhooks …` manages the app's own (app token),
//! `tapir admin webhooks …` every app's (admin token). A secret is printed
//! once, by the command that set it.

use super::table::{Table, opt};
use super::{CliError, Output, to_json};
use clap::{Args, Subcommand};
use serde_json::json;
use tapir_client::{Client, Webhook, WebhookRequest};

/// `tapir webhooks …` and `tapir admin webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// List webhooks (the default) with their state and pending events.
    List,
    /// Show one webhook.
    Show {
        /// Its id.
        id: String,
    },
    /// Register a webhook: events journalled from now on are POSTed to URL.
    Add {
        /// Where events are POSTed (https://, unless the operator allows http).
        url: String,
        /// The app whose events it delivers (`tapir admin webhooks` only).
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// Change a webhook (the options given; the rest stays); a suspended
    /// webhook resumes.
    Set {
        /// Its id.
        id: String,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        fields: WebhookFields,
    },
    /// Resume a suspended webhook where it stopped.
    Resume {
        /// Its id.
        id: String,
    },
    /// Remove a webhook.
    Delete {
        /// Its id.
        id: String,
    },
}

/// Filters, secret and batch of a webhook.
#[derive(Debug, Args)]
pub struct WebhookFields {
    /// An event type to deliver (`call.state`, `call.*`); repeat for more.
    /// All types when none is given on `add`.
    #[arg(long = "event")]
    events: Vec<String>,
    /// An address whose events to deliver; repeat for more.
    #[arg(long = "address")]
    addresses: Vec<String>,
    /// The signing secret (16 to 256 characters); generated on `add` when
    /// absent.
    #[arg(long)]
    secret: Option<String>,
    /// Most events per POST (above 1, bodies are JSON arrays).
    #[arg(long)]
    batch: Option<u32>,
}

impl WebhookFields {
    fn request(self) -> WebhookRequest {
        WebhookRequest {
            events: (!self.events.is_empty()).then_some(self.events),
            addresses: (!self.addresses.is_empty()).then_some(self.addresses),
            secret: self.secret,
            batch: self.batch,
            ..WebhookRequest::default()
        }
    }
}

fn table(hooks: &[Webhook]) -> String {
    let mut t = Table::new(&[
        "ID",
        "APP",
        "STATE",
        "ACKED",
        "PENDING",
        "URL",
        "EVENTS",
        "ADDRESSES",
        "ERROR",
    ]);
    for w in hooks {
        t.row(vec![
            w.id.clone(),
            w.app.clone(),
            w.state.clone(),
            w.acked.to_string(),
            w.pending.to_string(),
            w.url.clone(),
            if w.events.is_empty() {
                "*".into()
            } else {
                w.events.join(",")
            },
            if w.addresses.is_empty() {
                "*".into()
            } else {
                w.addresses.join(",")
            },
            opt(w.last_error.as_deref()),
        ]);
    }
    t.render()
}

fn one(w: &Webhook) -> Output {
    let mut text = table(std::slice::from_ref(w));
    if let Some(s) = &w.secret {
        text.push_str(&format!(
            "secret (shown once; the receiver checks Tapir-Signature with it): {s}\n"
        ));
    }
    Output::new(to_json(w), text)
}

/// Run a webhook command: the app's own (`admin` false) or any app's.
pub async fn run(client: &Client, cmd: WebhooksCmd, admin: bool) -> Result<Output, CliError> {
    let a = client.admin();
    Ok(match cmd {
        WebhooksCmd::List => {
            let hooks = if admin {
                a.webhooks().await?
            } else {
                client.webhooks().await?
            };
            Output::new(json!({ "webhooks": to_json(&hooks) }), table(&hooks))
        }
        WebhooksCmd::Show { id } => one(&if admin {
            a.webhook(&id).await?
        } else {
            client.webhook(&id).await?
        }),
        WebhooksCmd::Add { url, app, fields } => {
            let mut r = fields.request();
            r.url = Some(url);
            if admin {
                r.app = Some(app.ok_or_else(|| {
                    CliError::Usage("name the app whose events it delivers: --app APP".into())
                })?);
                one(&a.create_webhook(&r).await?)
            } else {
                r.app = app;
                one(&client.create_webhook(&r).await?)
            }
        }
        WebhooksCmd::Set { id, url, fields } => {
            let mut r = fields.request();
            r.url = url;
            one(&if admin {
                a.set_webhook(&id, &r).await?
            } else {
                client.set_webhook(&id, &r).await?
            })
        }
        WebhooksCmd::Resume { id } => {
            let r = WebhookRequest::default();
            one(&if admin {
                a.set_webhook(&id, &r).await?
            } else {
                client.set_webhook(&id, &r).await?
            })
        }
        WebhooksCmd::Delete { id } => {
            if admin {
                a.delete_webhook(&id).await?;
            } else {
                client.delete_webhook(&id).await?;
            }
            Output::new(json!({ "deleted": id }), format!("deleted webhook {id}\n"))
        }
    })
}
