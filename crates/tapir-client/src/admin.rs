//! [`Admin`]: the operator endpoints (`/v1/admin/*`) — lines, apps, trunks,
//! pickup groups, park settings, call detail records and the live media
//! quality of calls in progress. They need the
//! operator's admin token; an app token gets `noprivilege`.

use crate::wire::{
    AdminApp, AdminApps, AdminLine, AdminLines, AdminTrunk, AdminTrunks, Cdr, CdrLegQuality,
    CdrQuery, Cdrs, ParkSettings, PickupGroup, PickupGroups,
};
use crate::{Client, Result};
use reqwest::Method;
use serde_json::json;

/// The operator API of one server.
#[derive(Clone, Debug)]
pub struct Admin {
    pub(crate) client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Every configured line.
    pub async fn lines(&self) -> Result<Vec<AdminLine>> {
        let l: AdminLines = self.client.get(&["v1", "admin", "lines"]).await?;
        Ok(l.lines)
    }

    /// One line by its address.
    pub async fn line(&self, address: &str) -> Result<AdminLine> {
        self.client.get(&["v1", "admin", "lines", address]).await
    }

    /// Add a line.
    pub async fn add_line(&self, line: &AdminLine) -> Result<AdminLine> {
        self.client
            .post(&["v1", "admin", "lines"], line)
            .await?
            .json()
    }

    /// Replace a line's settings.
    pub async fn set_line(&self, line: &AdminLine) -> Result<AdminLine> {
        self.client
            .put(&["v1", "admin", "lines", &line.address], line)
            .await
    }

    /// Delete a line (refused while it has calls).
    pub async fn delete_line(&self, address: &str) -> Result<()> {
        self.client.delete(&["v1", "admin", "lines", address]).await
    }

    /// Every application.
    pub async fn apps(&self) -> Result<Vec<AdminApp>> {
        let a: AdminApps = self.client.get(&["v1", "admin", "apps"]).await?;
        Ok(a.apps)
    }

    /// One application.
    pub async fn app(&self, name: &str) -> Result<AdminApp> {
        self.client.get(&["v1", "admin", "apps", name]).await
    }

    /// Add an application; without a token the server generates one and
    /// returns it (once) in [`AdminApp::token`].
    pub async fn add_app(&self, app: &AdminApp) -> Result<AdminApp> {
        self.client
            .post(&["v1", "admin", "apps"], app)
            .await?
            .json()
    }

    /// Replace an application's settings (a token in it rotates the token).
    pub async fn set_app(&self, app: &AdminApp) -> Result<AdminApp> {
        self.client
            .put(&["v1", "admin", "apps", &app.name], app)
            .await
    }

    /// Delete an application (its lines are closed).
    pub async fn delete_app(&self, name: &str) -> Result<()> {
        self.client.delete(&["v1", "admin", "apps", name]).await
    }

    /// Every trunk.
    pub async fn trunks(&self) -> Result<Vec<AdminTrunk>> {
        let t: AdminTrunks = self.client.get(&["v1", "admin", "trunks"]).await?;
        Ok(t.trunks)
    }

    /// One trunk.
    pub async fn trunk(&self, name: &str) -> Result<AdminTrunk> {
        self.client.get(&["v1", "admin", "trunks", name]).await
    }

    /// Add a trunk.
    pub async fn add_trunk(&self, trunk: &AdminTrunk) -> Result<AdminTrunk> {
        self.client
            .post(&["v1", "admin", "trunks"], trunk)
            .await?
            .json()
    }

    /// Replace a trunk's settings.
    pub async fn set_trunk(&self, trunk: &AdminTrunk) -> Result<AdminTrunk> {
        self.client
            .put(&["v1", "admin", "trunks", &trunk.name], trunk)
            .await
    }

    /// Delete a trunk.
    pub async fn delete_trunk(&self, name: &str) -> Result<()> {
        self.client.delete(&["v1", "admin", "trunks", name]).await
    }

    /// Every pickup group.
    pub async fn pickup_groups(&self) -> Result<Vec<PickupGroup>> {
        let g: PickupGroups = self.client.get(&["v1", "admin", "pickup-groups"]).await?;
        Ok(g.groups)
    }

    /// Set a pickup group's members (creates the group).
    pub async fn set_pickup_group(&self, name: &str, members: &[String]) -> Result<PickupGroup> {
        self.client
            .put(
                &["v1", "admin", "pickup-groups", name],
                &json!({ "members": members }),
            )
            .await
    }

    /// Delete a pickup group.
    pub async fn delete_pickup_group(&self, name: &str) -> Result<()> {
        self.client
            .delete(&["v1", "admin", "pickup-groups", name])
            .await
    }

    /// Park slots, reminder and the calls parked now.
    pub async fn park(&self) -> Result<ParkSettings> {
        self.client.get(&["v1", "admin", "park"]).await
    }

    /// Change the park slots (and reminder).
    pub async fn set_park(&self, slots: &str, reminder_ms: Option<u64>) -> Result<ParkSettings> {
        let mut body = json!({ "slots": slots });
        if let Some(ms) = reminder_ms {
            body["reminder_ms"] = json!(ms);
        }
        self.client.put(&["v1", "admin", "park"], &body).await
    }

    /// Call detail records, newest first.
    pub async fn cdrs(&self, query: &CdrQuery) -> Result<Vec<Cdr>> {
        let c: Cdrs = self
            .client
            .request(
                Method::GET,
                &["v1", "admin", "cdr"],
                Some(query),
                None::<&()>,
            )
            .await?
            .json()?;
        Ok(c.cdrs)
    }

    /// One call detail record.
    pub async fn cdr(&self, id: &str) -> Result<Cdr> {
        self.client.get(&["v1", "admin", "cdr", id]).await
    }

    /// The media quality so far of call `call` (in progress) and of the
    /// calls it is connected with, one entry per leg in the shape of a
    /// CDR's `quality`; `invalcallhandle` when no such call is in progress.
    pub async fn call_quality(&self, call: &str) -> Result<Vec<CdrLegQuality>> {
        #[derive(serde::Deserialize)]
        struct CallQuality {
            quality: Vec<CdrLegQuality>,
        }
        let q: CallQuality = self
            .client
            .get(&["v1", "admin", "calls", call, "quality"])
            .await?;
        Ok(q.quality)
    }
}
