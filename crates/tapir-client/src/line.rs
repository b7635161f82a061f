//! [`Line`] (`lineOpen`, `lineClose`, TAPI 3's `ITAddress` capabilities) and
//! [`Address`] (status, forwarding, pickup, unpark, `CreateCall`).

use crate::wire::{
    AddressStatus, CallInfo, ForwardRule, ForwardingBody, LineForwarding, LineInfo, MakeCall,
    MediaMode, OpenLineBody, PickupTarget, Privilege,
};
use crate::{Call, Client, Result};
use serde_json::json;

/// A line this app may open.
#[derive(Clone, Debug)]
pub struct Line {
    client: Client,
    info: LineInfo,
}

impl Line {
    pub(crate) fn new(client: Client, info: LineInfo) -> Line {
        Line { client, info }
    }

    /// Its id (`line-3`).
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Its first address.
    pub fn address(&self) -> &str {
        &self.info.address
    }

    /// What the server said about it last.
    pub fn info(&self) -> &LineInfo {
        &self.info
    }

    /// `lineOpen`: receive events for its calls, as owner and/or monitor,
    /// for these media modes (the server's defaults for empty lists).
    pub async fn open(
        &mut self,
        privileges: &[Privilege],
        media_modes: &[MediaMode],
    ) -> Result<&LineInfo> {
        self.info = self
            .client
            .post(
                &["v1", "lines", &self.info.id, "open"],
                &OpenLineBody {
                    privileges,
                    media_modes,
                },
            )
            .await?
            .json()?;
        Ok(&self.info)
    }

    /// `lineClose`: stop seeing the line.
    pub async fn close(&mut self) -> Result<()> {
        self.client
            .post(&["v1", "lines", &self.info.id, "close"], &json!({}))
            .await?;
        self.info.open = None;
        Ok(())
    }

    /// `lineForward` with `bAllAddresses` TRUE: set these rules on every
    /// address of the line at once (none cancels forwarding); every address
    /// takes them or none does. Returns each address's status.
    pub async fn forward(
        &self,
        rules: &[ForwardRule],
        no_answer_rings: Option<u32>,
    ) -> Result<LineForwarding> {
        self.client
            .put(
                &["v1", "lines", &self.info.id, "forwarding"],
                &ForwardingBody {
                    rules,
                    no_answer_rings,
                },
            )
            .await
    }

    /// Its first address, to call from.
    pub fn first_address(&self) -> Address {
        self.client.address(self.info.address.clone())
    }
}

/// An address (directory number).
#[derive(Clone, Debug)]
pub struct Address {
    client: Client,
    address: String,
}

impl Address {
    pub(crate) fn new(client: Client, address: String) -> Address {
        Address { client, address }
    }

    /// The directory number.
    pub fn number(&self) -> &str {
        &self.address
    }

    /// `lineGetAddressStatus`: forwarding and calls.
    pub async fn status(&self) -> Result<AddressStatus> {
        self.client.get(&["v1", "addresses", &self.address]).await
    }

    /// `lineForward`: set these rules (none cancels forwarding); returns the
    /// status with the forwarding now in force.
    pub async fn forward(
        &self,
        rules: &[ForwardRule],
        no_answer_rings: Option<u32>,
    ) -> Result<AddressStatus> {
        self.client
            .put(
                &["v1", "addresses", &self.address, "forwarding"],
                &ForwardingBody {
                    rules,
                    no_answer_rings,
                },
            )
            .await
    }

    /// `linePickup`: take a call ringing at another address or in a group,
    /// or ([`PickupTarget::CallWaiting`]) the call waiting at this address.
    pub async fn pickup(&self, target: &PickupTarget) -> Result<Call> {
        let info: CallInfo = self
            .client
            .post(&["v1", "addresses", &self.address, "pickup"], target)
            .await?
            .json()?;
        Ok(Call::new(self.client.clone(), info))
    }

    /// `lineUnpark`: retrieve the call parked at `slot`.
    pub async fn unpark(&self, slot: &str) -> Result<Call> {
        let info: CallInfo = self
            .client
            .post(
                &["v1", "addresses", &self.address, "unpark"],
                &json!({ "from": slot }),
            )
            .await?
            .json()?;
        Ok(Call::new(self.client.clone(), info))
    }

    /// `CreateCall` + `Connect`: call `to` from this address.
    pub async fn create_call(&self, to: &str) -> Result<Call> {
        self.client
            .make_call(&MakeCall {
                from: self.address.clone(),
                to: Some(to.into()),
                location: None,
            })
            .await
    }

    /// A call at dial tone (`lineMakeCall` without a destination); dial it
    /// with [`Call::dial`].
    pub async fn dialtone(&self) -> Result<Call> {
        self.client
            .make_call(&MakeCall {
                from: self.address.clone(),
                to: None,
                location: None,
            })
            .await
    }
}
