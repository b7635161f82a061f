//! Media on route point calls, where tapir itself terminates the call (the
//! call-centre IVR flow): prompts an application plays to the connected
//! party (TAPI 3's media playback terminal), their end reported by the media
//! plane, and the party's digits reported on the route point's call
//! (`LINE_MONITORDIGITS` there).

use super::Switch;
use crate::error::{ErrorCode, TapiError, fail};
use crate::ids::{AppId, CallId};
use crate::output::{EventBody, MediaKind, MediaPlayState, PromptPlay};
use crate::types::{CallStateKind as K, LineKind};

/// Longest prompt name accepted.
pub const MAX_PROMPT_NAME: usize = 64;

/// Whether `name` can name a prompt: 1–64 ASCII letters, digits, `-` or `_`
/// (a prompt is a file in one directory; no path can be smuggled in).
pub fn valid_prompt_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROMPT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Switch {
    /// The prompt playing on a call, if any.
    pub fn prompt_of(&self, call: CallId) -> Option<&PromptPlay> {
        self.call(call).and_then(|c| c.prompt.as_ref())
    }

    /// Check that `app` owns `call` and that it is a route point's call.
    fn route_point_call(&self, app: AppId, call: CallId) -> Result<(), TapiError> {
        let line = self.owned(app, call)?.line;
        if self.line_kind(line) != LineKind::RoutePoint {
            return fail(
                ErrorCode::OperationUnavail,
                format!(
                    "{call} is not a route point call: tapir plays media only on calls it terminates"
                ),
            );
        }
        Ok(())
    }

    pub(crate) fn op_play_prompt(
        &mut self,
        app: AppId,
        call: CallId,
        name: &str,
        looping: bool,
    ) -> Result<(), TapiError> {
        self.route_point_call(app, call)?;
        if !valid_prompt_name(name) {
            return fail(
                ErrorCode::InvalParam,
                format!(
                    "'{name}' is not a prompt name: use 1 to {MAX_PROMPT_NAME} letters, digits, '-' or '_'"
                ),
            );
        }
        self.expect_state(call, &[K::Connected], "play a prompt on")?;
        let heard = self
            .peer(call)
            .and_then(|p| self.call(p))
            .is_some_and(|p| p.leg.is_some());
        if !heard {
            return fail(
                ErrorCode::OperationUnavail,
                format!("nobody on {call} hears tapir's media: its far party has no device leg"),
            );
        }
        self.end_prompt(call, MediaPlayState::Stopped);
        let play = PromptPlay {
            name: name.into(),
            play: self.id(),
            looping,
        };
        if let Some(c) = self.call_mut(call) {
            c.prompt = Some(play);
        }
        self.touched.push(call);
        Ok(())
    }

    pub(crate) fn op_stop_media(&mut self, app: AppId, call: CallId) -> Result<(), TapiError> {
        self.route_point_call(app, call)?;
        self.end_prompt(call, MediaPlayState::Stopped);
        Ok(())
    }

    /// Take a call's prompt away and tell the call's apps how it ended.
    fn end_prompt(&mut self, call: CallId, how: MediaPlayState) {
        let Some(p) = self.call_mut(call).and_then(|c| c.prompt.take()) else {
            return;
        };
        self.touched.push(call);
        self.notify(call, || EventBody::CallMedia {
            call,
            media: MediaKind::Prompt,
            state: how,
            prompt: p.name.clone(),
        });
    }

    /// The media plane played prompt `play` to the device of `call` to its
    /// end: the route point call that played it goes back to silence and
    /// its apps hear `done`. A report of an earlier playing is ignored.
    pub(crate) fn prompt_done(&mut self, call: CallId, play: u64) {
        let player = self.others_in_bridge(call).into_iter().find(|o| {
            self.prompt_of(*o)
                .is_some_and(|p| p.play == play && !p.looping)
        });
        if let Some(rp) = player {
            self.end_prompt(rp, MediaPlayState::Done);
        }
    }

    /// Digits from the device of `call` also reach the apps of the route
    /// point call it is connected to (tapir terminates that call, so the
    /// route point's app collects them as an IVR).
    pub(crate) fn route_point_digits(&mut self, call: CallId, digits: &str) {
        let ends: Vec<CallId> = self
            .others_in_bridge(call)
            .into_iter()
            .filter(|o| {
                self.call(*o).is_some_and(|c| {
                    c.leg.is_none()
                        && c.member_of.is_none()
                        && c.state.is_connected()
                        && self.line_kind(c.line) == LineKind::RoutePoint
                })
            })
            .collect();
        for rp in ends {
            self.digits_reached(rp, digits);
        }
    }
}
