//! The typed operations: one method per application [`Command`], each
//! sending that command through [`Switch::request`] and unwrapping its
//! reply. They are for tests, benches and simulations (the `test-util`
//! feature); the server enters the switch only with `Command`s, so each
//! operation has one way in.

use super::{Command, Switch};
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId, CompletionId, LineId, Timestamp};
use crate::output::Reply;
use crate::types::{
    CompletionMode, ForwardRule, HandoffTarget, MediaMode, ParkMode, PickupTarget, Privilege,
    TransferMode,
};
use std::sync::Arc;

/// Unwrap the reply variant a typed method expects.
macro_rules! expect_reply {
    ($result:expr, $pat:pat => $out:expr) => {
        match $result {
            Ok($pat) => Ok($out),
            Ok(other) => Err(TapiError::new(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            )),
            Err(e) => Err(e),
        }
    };
}

/// TAPI's operations as typed methods on a [`Switch`] (import the trait to
/// call them): `sw.make_call(now, app, "1001", Some("1002"))` is
/// `sw.request(now, app, Command::MakeCall { .. })` with the new call's id
/// taken out of the reply. What each operation does is documented on its
/// [`Command`] variant.
pub trait TypedOps {
    /// The switch the operations run on.
    fn switch_mut(&mut self) -> &mut Switch;

    /// [`Command::MakeCall`] through [`Switch::request`], its reply unwrapped.
    fn make_call(
        &mut self,
        now: Timestamp,
        app: AppId,
        from: &str,
        to: Option<&str>,
    ) -> Result<CallId, TapiError> {
        let cmd = Command::MakeCall {
            from: from.to_string(),
            to: to.map(str::to_string),
        };
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Call { call } => call)
    }

    /// [`Command::Answer`] through [`Switch::request`], its reply unwrapped.
    fn answer(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Answer(call)).1, Reply::Done => ())
    }

    /// [`Command::Accept`] through [`Switch::request`], its reply unwrapped.
    fn accept(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Accept(call)).1, Reply::Done => ())
    }

    /// [`Command::Dial`] through [`Switch::request`], its reply unwrapped.
    fn dial(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        digits: &str,
    ) -> Result<(), TapiError> {
        let cmd = Command::Dial(call, digits.to_string());
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::Drop`] through [`Switch::request`], its reply unwrapped.
    fn drop_call(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Drop(call)).1, Reply::Done => ())
    }

    /// [`Command::Deallocate`] through [`Switch::request`], its reply unwrapped.
    fn deallocate_call(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
    ) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Deallocate(call)).1, Reply::Done => ())
    }

    /// [`Command::Hold`] through [`Switch::request`], its reply unwrapped.
    fn hold(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Hold(call)).1, Reply::Done => ())
    }

    /// [`Command::Unhold`] through [`Switch::request`], its reply unwrapped.
    fn unhold(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::Unhold(call)).1, Reply::Done => ())
    }

    /// [`Command::SwapHold`] through [`Switch::request`], its reply unwrapped.
    fn swap_hold(
        &mut self,
        now: Timestamp,
        app: AppId,
        active: CallId,
        held: CallId,
    ) -> Result<(), TapiError> {
        let cmd = Command::SwapHold(active, held);
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::BlindTransfer`] through [`Switch::request`], its reply unwrapped.
    fn blind_transfer(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        to: &str,
    ) -> Result<(), TapiError> {
        let cmd = Command::BlindTransfer(call, to.to_string());
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::SetupTransfer`] through [`Switch::request`], its reply unwrapped.
    fn setup_transfer(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
    ) -> Result<CallId, TapiError> {
        let cmd = Command::SetupTransfer(call);
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Consult { consult_call } => consult_call)
    }

    /// [`Command::CompleteTransfer`] through [`Switch::request`], its reply unwrapped.
    fn complete_transfer(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        consult: CallId,
        mode: TransferMode,
    ) -> Result<Option<CallId>, TapiError> {
        let cmd = Command::CompleteTransfer(call, consult, mode);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::ConferenceCall { conference_call } => Ok(Some(conference_call)),
            _ => Ok(None),
        }
    }

    /// [`Command::Finish`] through [`Switch::request`], its reply unwrapped.
    fn finish(
        &mut self,
        now: Timestamp,
        app: AppId,
        consult: CallId,
        mode: TransferMode,
    ) -> Result<Option<CallId>, TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::Finish(consult, mode))
            .1?
        {
            Reply::ConferenceCall { conference_call } => Ok(Some(conference_call)),
            _ => Ok(None),
        }
    }

    /// [`Command::Redirect`] through [`Switch::request`], its reply unwrapped.
    fn redirect(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        to: &str,
    ) -> Result<(), TapiError> {
        let cmd = Command::Redirect(call, to.to_string());
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::SecureCall`] through [`Switch::request`], its reply unwrapped.
    fn secure_call(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        expect_reply!(self.switch_mut().request(now, app, Command::SecureCall(call)).1, Reply::Done => ())
    }

    /// [`Command::Handoff`] through [`Switch::request`], its reply unwrapped.
    fn handoff(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        target: HandoffTarget,
    ) -> Result<(), TapiError> {
        let cmd = Command::Handoff(call, target);
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::SetMediaMode`] through [`Switch::request`], its reply unwrapped.
    fn set_media_mode(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        mode: MediaMode,
    ) -> Result<(), TapiError> {
        let cmd = Command::SetMediaMode(call, mode);
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::GenerateDigits`] through [`Switch::request`], its reply unwrapped.
    fn generate_digits(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        digits: &str,
    ) -> Result<(), TapiError> {
        let cmd = Command::GenerateDigits(call, digits.to_string());
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::SetCallPrivilege`] through [`Switch::request`], its reply unwrapped.
    fn set_call_privilege(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        privilege: Privilege,
    ) -> Result<(), TapiError> {
        let cmd = Command::SetCallPrivilege(call, privilege);
        expect_reply!(self.switch_mut().request(now, app, cmd).1, Reply::Done => ())
    }

    /// [`Command::SetupConference`] through [`Switch::request`], its reply unwrapped.
    fn setup_conference(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        parties: Option<usize>,
    ) -> Result<(CallId, CallId), TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::SetupConference(call, parties))
            .1?
        {
            Reply::Conference {
                conference_call,
                consult_call,
            } => Ok((conference_call, consult_call)),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::PrepareAddToConference`] through [`Switch::request`], its reply unwrapped.
    fn prepare_add_to_conference(
        &mut self,
        now: Timestamp,
        app: AppId,
        conference: CallId,
    ) -> Result<CallId, TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::PrepareAddToConference(conference))
            .1?
        {
            Reply::Consult { consult_call } => Ok(consult_call),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::AddToConference`] through [`Switch::request`], its reply unwrapped.
    fn add_to_conference(
        &mut self,
        now: Timestamp,
        app: AppId,
        conference: CallId,
        consult: CallId,
    ) -> Result<(), TapiError> {
        let cmd = Command::AddToConference(conference, consult);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Done => Ok(()),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::RemoveFromConference`] through [`Switch::request`], its reply unwrapped.
    fn remove_from_conference(
        &mut self,
        now: Timestamp,
        app: AppId,
        member: CallId,
    ) -> Result<(), TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::RemoveFromConference(member))
            .1?
        {
            Reply::Done => Ok(()),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::ConfRelatedCalls`] through [`Switch::request`], its reply unwrapped.
    fn conf_related_calls(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
    ) -> Result<Vec<CallId>, TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::ConfRelatedCalls(call))
            .1?
        {
            Reply::Related { calls } => Ok(calls),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::Park`] through [`Switch::request`], its reply unwrapped.
    fn park(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        mode: ParkMode,
    ) -> Result<Arc<str>, TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::Park(call, mode))
            .1?
        {
            Reply::Parked { parked_at } => Ok(parked_at),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::Unpark`] through [`Switch::request`], its reply unwrapped.
    fn unpark(
        &mut self,
        now: Timestamp,
        app: AppId,
        address: &str,
        slot: &str,
    ) -> Result<CallId, TapiError> {
        let cmd = Command::Unpark(address.to_string(), slot.to_string());
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Call { call } => Ok(call),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::Pickup`] through [`Switch::request`], its reply unwrapped.
    fn pickup(
        &mut self,
        now: Timestamp,
        app: AppId,
        address: &str,
        target: PickupTarget,
    ) -> Result<CallId, TapiError> {
        let cmd = Command::Pickup(address.to_string(), target);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Call { call } => Ok(call),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::Forward`] through [`Switch::request`], its reply unwrapped.
    fn forward(
        &mut self,
        now: Timestamp,
        app: AppId,
        address: &str,
        rules: Vec<ForwardRule>,
        no_answer_rings: Option<u32>,
    ) -> Result<(), TapiError> {
        let cmd = Command::Forward(address.to_string(), rules, no_answer_rings);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Done => Ok(()),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::ForwardLine`] through [`Switch::request`], its reply unwrapped.
    fn forward_line(
        &mut self,
        now: Timestamp,
        app: AppId,
        line: LineId,
        rules: Vec<ForwardRule>,
        no_answer_rings: Option<u32>,
    ) -> Result<(), TapiError> {
        let cmd = Command::ForwardLine(line, rules, no_answer_rings);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Done => Ok(()),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::CompleteCall`] through [`Switch::request`], its reply unwrapped.
    fn complete_call(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        mode: CompletionMode,
        message_id: Option<u32>,
    ) -> Result<CompletionId, TapiError> {
        let cmd = Command::CompleteCall(call, mode, message_id);
        match self.switch_mut().request(now, app, cmd).1? {
            Reply::Completion { completion_id } => Ok(completion_id),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::UncompleteCall`] through [`Switch::request`], its reply unwrapped.
    fn uncomplete_call(
        &mut self,
        now: Timestamp,
        app: AppId,
        completion: CompletionId,
    ) -> Result<(), TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::UncompleteCall(completion))
            .1?
        {
            Reply::Done => Ok(()),
            other => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
        }
    }

    /// [`Command::PlayPrompt`] through [`Switch::request`], its reply unwrapped.
    fn play_prompt(
        &mut self,
        now: Timestamp,
        app: AppId,
        call: CallId,
        name: &str,
        looping: bool,
    ) -> Result<(), TapiError> {
        let cmd = Command::PlayPrompt(call, name.to_string(), looping);
        self.switch_mut().request(now, app, cmd).1.map(|_| ())
    }

    /// [`Command::StopMedia`] through [`Switch::request`], its reply unwrapped.
    fn stop_media(&mut self, now: Timestamp, app: AppId, call: CallId) -> Result<(), TapiError> {
        match self
            .switch_mut()
            .request(now, app, Command::StopMedia(call))
            .1
        {
            Ok(Reply::Done) => Ok(()),
            Ok(other) => fail(
                ErrorCode::OperationFailed,
                format!("unexpected reply {other:?}"),
            ),
            Err(e) => Err(e),
        }
    }
}

impl TypedOps for Switch {
    fn switch_mut(&mut self) -> &mut Switch {
        self
    }
}
