//! [`Call`]: one call as this app sees it, with every TAPI call operation
//! (TAPI 3's `ITBasicCallControl`, `ITCallInfo`), and [`Completion`].
//!
//! An operation sends its request and, when the server answers with the
//! call object, keeps it as [`Call::info`]; [`Call::refresh`] reads it anew.

use crate::wire::{
    CallInfo, CallState, CompletionMode, CompletionResponse, ConferenceResponse, ConsultResponse,
    HandoffTarget, MediaMode, ParkResponse, Privilege, RelatedResponse, TransferMode,
};
use crate::{Answer, Client, ClientError, Result};
use reqwest::Method;
use serde_json::{Value, json};

/// A call (an id plus the last call object the server sent).
#[derive(Clone, Debug)]
pub struct Call {
    pub(crate) client: Client,
    info: CallInfo,
    released: bool,
}

/// A new conference: the conference call and the consultation call on which
/// to dial the next party.
#[derive(Clone, Debug)]
pub struct Conference {
    /// The conference call (the parent).
    pub conference: Call,
    /// The consultation call.
    pub consult: Call,
}

/// A call completion request (`lineCompleteCall`).
#[derive(Clone, Debug)]
pub struct Completion {
    client: Client,
    id: String,
}

impl Completion {
    /// Its id (`compl-7`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `lineUncompleteCall`.
    pub async fn cancel(self) -> Result<()> {
        self.client.uncomplete(&self.id).await
    }
}

impl Call {
    pub(crate) fn new(client: Client, info: CallInfo) -> Call {
        Call {
            client,
            info,
            released: false,
        }
    }

    /// The call's audio over a WebSocket ([`Client::media`]).
    pub async fn media(&self, rate: u32, both: bool) -> Result<crate::MediaStream> {
        self.client.media(self.id(), rate, both).await
    }

    /// Start, pause, resume or stop recording the call
    /// ([`Client::record`]); the recording's id.
    pub async fn record(
        &self,
        action: crate::RecordAction,
        channels: Option<crate::RecordChannels>,
    ) -> Result<String> {
        self.client.record(self.id(), action, channels).await
    }

    /// Its id (`call-12`).
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The call object as last read.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// The call state as last read.
    pub fn state(&self) -> CallState {
        self.info.state
    }

    /// Whether the server answered the last operation without the call
    /// (`204`): the call has left this app (transferred away, parked, handed
    /// off) and [`Call::info`] is what it was before.
    pub fn is_released(&self) -> bool {
        self.released
    }

    /// `lineGetCallInfo`: read the call object anew.
    pub async fn refresh(&mut self) -> Result<&CallInfo> {
        self.info = self.client.get(&["v1", "calls", &self.info.id]).await?;
        self.released = false;
        Ok(&self.info)
    }

    /// Another call of the same client, from a call object in an answer.
    fn sibling(&self, id: &str, calls: &[CallInfo]) -> Result<Call> {
        let info = calls.iter().find(|c| c.id == id).cloned().ok_or_else(|| {
            ClientError::Protocol(format!("the answer names {id} without its call object"))
        })?;
        Ok(Call::new(self.client.clone(), info))
    }

    /// POST an operation on this call.
    async fn post(&self, op: &str, body: Value) -> Result<Answer> {
        self.client
            .request(
                Method::POST,
                &["v1", "calls", &self.info.id, op],
                None::<&()>,
                Some(&body),
            )
            .await
    }

    /// POST an operation answered by this call's object (or 204 when the
    /// call left this app); keep the object.
    pub(crate) async fn op(&mut self, op: &str, body: Value) -> Result<()> {
        let answer = self.post(op, body).await?;
        self.keep(answer);
        Ok(())
    }

    pub(crate) fn keep(&mut self, answer: Answer) {
        self.released = answer.body.is_none();
        if let Some(body) = answer.body
            && body.get("id").and_then(Value::as_str) == Some(self.info.id.as_str())
            && let Ok(info) = serde_json::from_value::<CallInfo>(body)
        {
            self.info = info;
        }
    }

    /// `lineAnswer` / `Answer`.
    pub async fn answer(&mut self) -> Result<()> {
        self.op("answer", json!({})).await
    }

    /// `lineAccept`: take responsibility for an offered call.
    pub async fn accept(&mut self) -> Result<()> {
        self.op("accept", json!({})).await
    }

    /// `lineDial` / `Dial`: digits on a call at dial tone (or DTMF once connected).
    pub async fn dial(&mut self, digits: &str) -> Result<()> {
        self.op("dial", json!({ "digits": digits })).await
    }

    /// `lineDrop` / `Disconnect`.
    pub async fn drop(&mut self) -> Result<()> {
        self.op("drop", json!({})).await
    }

    /// `lineHold` (true) / `lineUnhold` (false); idempotent.
    pub async fn hold(&mut self, hold: bool) -> Result<()> {
        self.op(if hold { "hold" } else { "unhold" }, json!({}))
            .await
    }

    /// `lineSwapHold`: hold this call and retrieve `held`.
    pub async fn swap_hold(&mut self, held: &Call) -> Result<()> {
        self.op("swap-hold", json!({ "with": held.id() })).await
    }

    /// `lineBlindTransfer` / `BlindTransfer`.
    pub async fn blind_transfer(&mut self, to: &str) -> Result<()> {
        self.op("blind-transfer", json!({ "to": to })).await
    }

    /// `lineSetupTransfer`: hold this call; returns the consultation call at
    /// dial tone.
    pub async fn setup_transfer(&mut self) -> Result<Call> {
        let r: ConsultResponse = self.post("setup-transfer", json!({})).await?.json()?;
        self.sibling(&r.consult_call, &r.calls)
    }

    /// `lineCompleteTransfer`: join this (held) call with `consult`. In
    /// conference mode the answer is the new conference call.
    pub async fn complete_transfer(
        &mut self,
        consult: &Call,
        mode: TransferMode,
    ) -> Result<Option<Call>> {
        let answer = self
            .post(
                "complete-transfer",
                json!({ "consult_call": consult.id(), "mode": mode }),
            )
            .await?;
        self.conference_or_keep(answer)
    }

    /// TAPI 3 `ITBasicCallControl::Transfer`: start a consultation transfer
    /// of this call to `to`. This call is held pending transfer
    /// (`onholdpendtransfer`), a consultation call is set up on the same
    /// address and dials `to`, and the transfer stays pending: the returned
    /// consultation call's `Finish(FM_ASTRANSFER)` ([`Call::finish`] with
    /// [`TransferMode::Transfer`]) completes it, dropping it gives this call
    /// back. In TAPI 3 the consultation call comes from `CreateCall(to)` and
    /// `Transfer` dials it when it is not connected; a tapir call exists
    /// only once placed, so `to` is given here instead.
    pub async fn transfer(&mut self, to: &str) -> Result<Call> {
        let mut consult = self.setup_transfer().await?;
        self.info.state = CallState::OnHoldPendTransfer;
        if let Err(e) = consult.dial(to).await {
            // Leave nothing half done: abandoning the consultation call gives
            // this call back.
            consult.drop().await.ok();
            self.refresh().await.ok();
            return Err(e);
        }
        Ok(consult)
    }

    /// TAPI 3 `ITBasicCallControl::Conference`: start adding `to` to the
    /// conference of this call. On a two-party call a conference is set up
    /// first (`lineSetupConference`); on a conference call a consultation
    /// call is prepared (`linePrepareAddToConference`; from a member, on its
    /// conference call). The consultation
    /// call dials `to` and is returned; its `Finish(FM_ASCONFERENCE)`
    /// ([`Call::finish`] with [`TransferMode::Conference`]) adds it.
    pub async fn conference(&mut self, to: &str) -> Result<Call> {
        let mut consult = if self.info.origin == crate::wire::CallOrigin::Conference {
            self.prepare_add().await?
        } else if self.info.state == CallState::Conferenced {
            // A member: the conference call comes first among the related.
            let related = self.related().await?;
            let parent = related.first().ok_or_else(|| {
                ClientError::Protocol("a conferenced call without its conference".into())
            })?;
            self.client.call(parent).await?.prepare_add().await?
        } else {
            self.setup_conference(None).await?.consult
        };
        if let Err(e) = consult.dial(to).await {
            consult.drop().await.ok();
            self.refresh().await.ok();
            return Err(e);
        }
        self.refresh().await.ok();
        Ok(consult)
    }

    /// TAPI 3 `Finish` on a consultation call: `FM_ASTRANSFER` completes the
    /// pending transfer, `FM_ASCONFERENCE` adds the call to its conference
    /// (or, for a transfer's consultation call, makes a three-way
    /// conference, whose conference call is the answer).
    pub async fn finish(&mut self, mode: TransferMode) -> Result<Option<Call>> {
        let answer = self.post("finish", json!({ "mode": mode })).await?;
        self.conference_or_keep(answer)
    }

    fn conference_or_keep(&mut self, answer: Answer) -> Result<Option<Call>> {
        if let Some(body) = &answer.body
            && body.get("conference_call").is_some()
        {
            let r: ConferenceResponse = answer.json()?;
            return self.sibling(&r.conference_call, &r.calls).map(Some);
        }
        self.keep(answer);
        Ok(None)
    }

    /// `lineSetupConference`: make this call a conference; returns the
    /// conference call and a consultation call for the next party.
    pub async fn setup_conference(&mut self, parties: Option<usize>) -> Result<Conference> {
        let body = match parties {
            Some(n) => json!({ "parties": n }),
            None => json!({}),
        };
        let r: ConferenceResponse = self.post("setup-conference", body).await?.json()?;
        let consult = r.consult_call.as_deref().ok_or_else(|| {
            ClientError::Protocol("setup-conference answered without consult_call".into())
        })?;
        Ok(Conference {
            conference: self.sibling(&r.conference_call, &r.calls)?,
            consult: self.sibling(consult, &r.calls)?,
        })
    }

    /// `linePrepareAddToConference` on a conference call: returns a
    /// consultation call.
    pub async fn prepare_add(&mut self) -> Result<Call> {
        let r: ConsultResponse = self.post("prepare-add", json!({})).await?.json()?;
        self.sibling(&r.consult_call, &r.calls)
    }

    /// `lineAddToConference`: add `consult` to this conference call.
    pub async fn add(&mut self, consult: &Call) -> Result<()> {
        self.op("add", json!({ "consult_call": consult.id() }))
            .await
    }

    /// `lineRemoveFromConference` / `RemoveFromConference`.
    pub async fn remove_from_conference(&mut self) -> Result<()> {
        self.op("remove-from-conference", json!({})).await
    }

    /// `lineGetConfRelatedCalls`: the conference call first, then its members.
    pub async fn related(&self) -> Result<Vec<String>> {
        let r: RelatedResponse = self
            .client
            .get(&["v1", "calls", &self.info.id, "related"])
            .await?;
        Ok(r.calls)
    }

    /// `lineRedirect`: send an offered call elsewhere.
    pub async fn redirect(&mut self, to: &str) -> Result<()> {
        self.op("redirect", json!({ "to": to })).await
    }

    /// `linePark`: directed to a slot, or (none) to a slot tapir picks;
    /// returns the slot.
    pub async fn park(&mut self, to: Option<&str>) -> Result<String> {
        let body = match to {
            Some(slot) => json!({ "to": slot }),
            None => json!({}),
        };
        let r: ParkResponse = self.post("park", body).await?.json()?;
        Ok(r.parked_at)
    }

    /// `lineCompleteCall` on a busy or unanswered call.
    pub async fn complete(
        &mut self,
        mode: CompletionMode,
        message_id: Option<u32>,
    ) -> Result<Completion> {
        let mut body = json!({ "mode": mode });
        if let Some(m) = message_id {
            body["message_id"] = json!(m);
        }
        let r: CompletionResponse = self.post("complete", body).await?.json()?;
        Ok(Completion {
            client: self.client.clone(),
            id: r.completion_id,
        })
    }

    /// `lineSecureCall`.
    pub async fn secure(&mut self) -> Result<()> {
        self.op("secure", json!({})).await
    }

    /// `lineHandoff`: to an app by name, or to the app that handles a media mode.
    pub async fn handoff(&mut self, target: &HandoffTarget) -> Result<()> {
        let body = serde_json::to_value(target).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.op("handoff", body).await
    }

    /// `lineSetMediaMode`: set the call's media mode (in any call state; the
    /// app must own the call). Every app with a handle gets `call.info`.
    pub async fn set_media_mode(&mut self, media_mode: MediaMode) -> Result<()> {
        self.op("media-mode", json!({ "media_mode": media_mode }))
            .await
    }

    /// `lineGenerateDigits` / `GenerateDigits`: DTMF on the call.
    pub async fn generate_digits(&mut self, digits: &str) -> Result<()> {
        self.op("digits", json!({ "digits": digits })).await
    }

    /// `lineSetCallPrivilege`.
    pub async fn set_privilege(&mut self, privilege: Privilege) -> Result<()> {
        self.op("privilege", json!({ "privilege": privilege }))
            .await
    }

    /// Play prompt `prompt` to the party connected to this route point call
    /// (TAPI 3's media playback terminal; `looping` repeats it until
    /// [`Call::stop_media`]). Its end arrives as a `call.media` event
    /// ([`crate::EventKind::CallMedia`]).
    pub async fn play(&mut self, prompt: &str, looping: bool) -> Result<()> {
        self.op("play", json!({ "prompt": prompt, "loop": looping }))
            .await
    }

    /// Stop the prompt playing on this route point call.
    pub async fn stop_media(&mut self) -> Result<()> {
        self.op("stop-media", json!({})).await
    }

    /// `lineDeallocateCall`: release this app's handle.
    pub async fn deallocate(self) -> Result<()> {
        self.client.delete(&["v1", "calls", &self.info.id]).await
    }
}
