//! Webhooks: an app's own (`/v1/webhooks`, [`Client`]) and every app's
//! (`/v1/admin/webhooks`, [`Admin`]). A webhook's secret comes back only
//! in the answer that set it.

use crate::wire::{Webhook, WebhookRequest};
use crate::{Admin, Client, Result};

#[derive(serde::Deserialize)]
struct Webhooks {
    webhooks: Vec<Webhook>,
}

impl Client {
    /// This app's webhooks.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let w: Webhooks = self.get(&["v1", "webhooks"]).await?;
        Ok(w.webhooks)
    }

    /// Register a webhook for this app (the answer carries its secret).
    pub async fn create_webhook(&self, request: &WebhookRequest) -> Result<Webhook> {
        self.post(&["v1", "webhooks"], request).await?.json()
    }

    /// One of this app's webhooks.
    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        self.get(&["v1", "webhooks", id]).await
    }

    /// Change what `request` names of a webhook; resumes it if suspended.
    pub async fn set_webhook(&self, id: &str, request: &WebhookRequest) -> Result<Webhook> {
        self.put(&["v1", "webhooks", id], request).await
    }

    /// Remove one of this app's webhooks.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        self.delete(&["v1", "webhooks", id]).await
    }
}

impl Admin {
    /// Every app's webhooks.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let w: Webhooks = self.client.get(&["v1", "admin", "webhooks"]).await?;
        Ok(w.webhooks)
    }

    /// Register a webhook for the app `request.app` names.
    pub async fn create_webhook(&self, request: &WebhookRequest) -> Result<Webhook> {
        self.client
            .post(&["v1", "admin", "webhooks"], request)
            .await?
            .json()
    }

    /// Any webhook.
    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        self.client.get(&["v1", "admin", "webhooks", id]).await
    }

    /// Change any webhook; resumes it if suspended.
    pub async fn set_webhook(&self, id: &str, request: &WebhookRequest) -> Result<Webhook> {
        self.client
            .put(&["v1", "admin", "webhooks", id], request)
            .await
    }

    /// Remove any webhook.
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        self.client.delete(&["v1", "admin", "webhooks", id]).await
    }
}
