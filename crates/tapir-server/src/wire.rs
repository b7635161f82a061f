//! The JSON shapes of the API: opaque string ids (`call-12`, `line-3`,
//! `compl-7`, `req-40`), RFC 3339 times, call objects and event messages.

use serde::Serialize;
use serde_json::{Map, Value};
use tapir_core::{AppEvent, CallId, CallInfo, CompletionId, LineId, Party, Timestamp};
use utoipa::ToSchema;

/// Parse an opaque id of the form `prefix-N`.
fn parse_prefixed(text: &str, prefix: &str) -> Option<u64> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// `call-12` → the call id.
pub fn parse_call(text: &str) -> Option<CallId> {
    parse_prefixed(text, "call").map(CallId)
}

/// `line-3` → the line id.
pub fn parse_line(text: &str) -> Option<LineId> {
    parse_prefixed(text, "line").map(LineId)
}

/// `compl-7` → the completion id.
pub fn parse_completion(text: &str) -> Option<CompletionId> {
    parse_prefixed(text, "compl").map(CompletionId)
}

/// A timestamp as an RFC 3339 UTC string with milliseconds.
pub fn rfc3339(t: Timestamp) -> String {
    let secs = t.0 / 1000;
    let ms = t.0 % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Written digit by digit: every event and CDR carries timestamps, and
    // `format!` with padding cost ten times as much.
    let mut out = String::with_capacity(24);
    let mut push = |value: u64, width: u32, after: char| {
        for place in (0..width).rev() {
            let digit = (value / 10u64.pow(place) % 10) as u8;
            out.push(char::from(b'0' + digit));
        }
        if after != '\0' {
            out.push(after);
        }
    };
    push(u64::try_from(y).unwrap_or(0), 4, '-');
    push(m as u64, 2, '-');
    push(d as u64, 2, 'T');
    push(rem / 3600, 2, ':');
    push(rem % 3600 / 60, 2, ':');
    push(rem % 60, 2, '.');
    push(ms, 3, 'Z');
    out
}

/// A party of a call.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PartyObject {
    /// Address or number.
    pub address: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Party> for PartyObject {
    fn from(p: &Party) -> PartyObject {
        PartyObject {
            address: p.address.clone(),
            name: p.name.clone(),
        }
    }
}

/// A call as one app sees it (`LINECALLINFO` + `LINECALLSTATUS`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CallObject {
    /// Opaque id (`call-12`), the same for every app.
    pub id: String,
    /// The address the call is on.
    pub address: String,
    /// The line's id.
    pub line: String,
    /// TAPI call state (`offering`, `connected`, `onhold`, …).
    #[schema(value_type = String, example = "connected")]
    pub state: tapir_core::CallStateKind,
    /// The state's mode (`active`, `busy`, …), if it has one.
    #[schema(value_type = Option<String>)]
    pub state_mode: Option<tapir_core::StateMode>,
    /// Why the call arrived (`direct`, `transfer`, `unpark`, …).
    #[schema(value_type = String)]
    pub reason: tapir_core::CallReason,
    /// `outbound`, `internal`, `external` or `conference`.
    #[schema(value_type = String)]
    pub origin: tapir_core::CallOrigin,
    /// Caller id.
    pub caller: PartyObject,
    /// Called id.
    pub called: PartyObject,
    /// Connected id.
    pub connected: Option<PartyObject>,
    /// Redirecting id.
    pub redirecting: Option<PartyObject>,
    /// This app's privilege: `owner` or `monitor`.
    #[schema(value_type = String)]
    pub privilege: tapir_core::Privilege,
    /// The bridge the call is in (`bridge-4`).
    pub bridge: Option<String>,
    /// Consultation partner, conference parent or members.
    pub related_calls: Vec<String>,
    /// Whether the call is secure.
    pub secure: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// The completion request that produced the call.
    pub completion: Option<String>,
    /// How many apps own the call.
    pub num_owners: usize,
    /// How many apps monitor the call.
    pub num_monitors: usize,
    /// The call's media mode (`interactivevoice`, `g3fax`, `unknown`, …),
    /// changed by `POST /v1/calls/{call}/media-mode`.
    #[schema(value_type = String, example = "interactivevoice")]
    pub media_mode: tapir_core::MediaMode,
}

impl From<&CallInfo> for CallObject {
    fn from(c: &CallInfo) -> CallObject {
        CallObject {
            id: c.id.to_string(),
            address: c.address.to_string(),
            line: c.line.to_string(),
            state: c.state,
            state_mode: c.state_mode,
            reason: c.reason,
            origin: c.origin,
            caller: (&c.caller).into(),
            called: (&c.called).into(),
            connected: c.connected.as_ref().map(Into::into),
            redirecting: c.redirecting.as_ref().map(Into::into),
            privilege: c.privilege,
            bridge: c.bridge.map(|b| b.to_string()),
            related_calls: c.related_calls.iter().map(ToString::to_string).collect(),
            secure: c.secure,
            created_at: rfc3339(c.created_at),
            completion: c.completion.map(|x| x.to_string()),
            num_owners: c.num_owners,
            num_monitors: c.num_monitors,
            media_mode: c.media_mode,
        }
    }
}

/// The prefix of the opaque id carried under a JSON key of the core's
/// serialization, where the core writes plain numbers.
fn id_prefix(key: &str) -> Option<&'static str> {
    Some(match key {
        "call" | "conference" | "by" | "consult_call" | "conference_call" => "call",
        "calls" | "related_calls" => "call",
        "line" => "line",
        "completion" | "completion_id" => "compl",
        "request" => "req",
        "bridge" => "bridge",
        _ => return None,
    })
}

fn rewrite_ids(v: &mut Value) {
    if let Value::Object(map) = v {
        for (k, child) in map.iter_mut() {
            match (id_prefix(k), &mut *child) {
                (Some(p), Value::Number(n)) => *child = Value::String(format!("{p}-{n}")),
                (Some(p), Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Value::Number(n) = item {
                            *item = Value::String(format!("{p}-{n}"));
                        }
                    }
                }
                _ => rewrite_ids(child),
            }
        }
    }
}

/// An event as the stream sends it: `{"seq":N,"type":"…",…}` with string ids.
/// A `reply` carries `ok` and either `result` (the reply's data) or `error`
/// (`{code, message}`).
pub fn event_json(ev: &AppEvent) -> String {
    let mut body = serde_json::to_value(&ev.body).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body
        && let Some(result) = map.remove("result")
    {
        reshape_result(map, result);
    }
    rewrite_ids(&mut body);
    let text = body.to_string();
    match text.strip_prefix('{') {
        Some(rest) if rest != "}" => format!("{{\"seq\":{},{rest}", ev.seq),
        _ => format!("{{\"seq\":{},\"type\":\"unknown\"}}", ev.seq),
    }
}

fn reshape_result(map: &mut Map<String, Value>, result: Value) {
    match result {
        Value::Object(mut r) => {
            if let Some(ok) = r.remove("Ok") {
                map.insert("ok".into(), Value::Bool(true));
                map.insert("result".into(), ok);
            } else if let Some(err) = r.remove("Err") {
                map.insert("ok".into(), Value::Bool(false));
                map.insert("error".into(), err);
            }
        }
        other => {
            map.insert("result".into(), other);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tapir_core::{AppId, ErrorCode, EventBody, Reply, RequestId, TapiError};

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_call("call-12"), Some(CallId(12)));
        assert_eq!(parse_call("call-"), None);
        assert_eq!(parse_call("call-1x"), None);
        assert_eq!(parse_call("12"), None);
        assert_eq!(parse_line("line-3"), Some(LineId(3)));
        assert_eq!(parse_completion("compl-7"), Some(CompletionId(7)));
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn events_have_seq_type_and_string_ids() {
        let ev = AppEvent {
            app: AppId(1),
            seq: 5,
            body: EventBody::Reply {
                request: RequestId(9),
                result: Ok(Reply::Conference {
                    conference_call: CallId(3),
                    consult_call: CallId(4),
                }),
            },
        };
        let v: Value = serde_json::from_str(&event_json(&ev)).unwrap();
        assert_eq!(v["seq"], 5);
        assert_eq!(v["type"], "reply");
        assert_eq!(v["request"], "req-9");
        assert_eq!(v["ok"], true);
        assert_eq!(v["result"]["conference_call"], "call-3");
        assert!(event_json(&ev).starts_with("{\"seq\":5,"));
        let ev = AppEvent {
            app: AppId(1),
            seq: 6,
            body: EventBody::Reply {
                request: RequestId(10),
                result: Err(TapiError::new(ErrorCode::InvalCallState, "no")),
            },
        };
        let v: Value = serde_json::from_str(&event_json(&ev)).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "invalcallstate");
    }
}
