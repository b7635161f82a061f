//! SIP INFO within a dialog (RFC 6086, legacy usage of RFC 2976): DTMF
//! digits a phone sends as `application/dtmf-relay` (`Signal=5`,
//! `Duration=160`) or `application/dtmf` (`5`) bodies are reported to the
//! switch as [`LegEvent::SignalledDigits`]: apps hear them as they hear RFC
//! 4733 digits, and the switch has them sent on to the far party.
//!
//! Answers: 200 for a digit, for a flash (`Signal=16`, nothing to report)
//! and for an INFO without a body (a keep-alive); 400 for a DTMF body that
//! names no digit; 415 with `Accept` for any other body type; 469 Bad Info
//! Package for an `Info-Package` tapir does not take (RFC 6086 §4.2.2: tapir
//! advertises no `Recv-Info`, so every package is one it did not ask for).

use crate::{B2bua, Out};
use std::time::Instant;
use tapir_core::{Input, LegEvent, LegId};
use tapir_sip::msg::{HeaderName, Message};
use tapir_sip::transaction::TransactionKey;

/// The body types tapir reads digits from, for the `Accept` of a 415.
pub const ACCEPTED_INFO_BODIES: &str = "application/dtmf-relay, application/dtmf";

/// What an INFO request asks of tapir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoVerdict {
    /// A DTMF digit (`0-9 * # A-D`): 200, report it.
    Digit(char),
    /// Nothing to report (no body, or a flash): 200.
    Nothing,
    /// A DTMF body naming no digit: 400 with this reason.
    BadDigit(&'static str),
    /// A body type tapir does not read: 415 with `Accept`.
    UnsupportedBody,
    /// An `Info-Package` tapir did not ask for: 469.
    BadPackage,
}

impl InfoVerdict {
    /// The status code of the answer.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            InfoVerdict::Digit(_) | InfoVerdict::Nothing => 200,
            InfoVerdict::BadDigit(_) => 400,
            InfoVerdict::UnsupportedBody => 415,
            InfoVerdict::BadPackage => 469,
        }
    }
}

/// Reads an INFO request: its `Info-Package`, `Content-Type` and body.
#[must_use]
pub fn classify(request: &Message) -> InfoVerdict {
    if request
        .header(&HeaderName::from_wire("Info-Package"))
        .is_some()
    {
        return InfoVerdict::BadPackage;
    }
    let body = request.body();
    if body.iter().all(u8::is_ascii_whitespace) {
        return InfoVerdict::Nothing;
    }
    let Ok(Some(ctype)) = request.content_type() else {
        return InfoVerdict::UnsupportedBody;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return InfoVerdict::BadDigit("the DTMF body is not text");
    };
    if ctype.is("application", "dtmf-relay") {
        dtmf_relay(text)
    } else if ctype.is("application", "dtmf") {
        signal(text.trim())
    } else {
        InfoVerdict::UnsupportedBody
    }
}

/// An `application/dtmf-relay` body: `Signal=<digit>` and an optional
/// `Duration=<ms>` line, names case-insensitive, in either order.
fn dtmf_relay(text: &str) -> InfoVerdict {
    let mut found = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Signal") {
            found = Some(value);
        } else if name.eq_ignore_ascii_case("Duration") && value.parse::<u32>().is_err() {
            return InfoVerdict::BadDigit("Duration is not a number of milliseconds");
        }
    }
    match found {
        Some(v) => signal(v),
        None => InfoVerdict::BadDigit("no Signal= line"),
    }
}

/// One signal: a DTMF character, or the RFC 4733 event number some phones
/// write instead (10 = `*`, 11 = `#`, 12-15 = `A`-`D`, 16 = flash).
fn signal(value: &str) -> InfoVerdict {
    let mut chars = value.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') {
            return InfoVerdict::Digit(c);
        }
    }
    match value.parse::<u8>() {
        Ok(10) => InfoVerdict::Digit('*'),
        Ok(11) => InfoVerdict::Digit('#'),
        Ok(n @ 12..=15) => InfoVerdict::Digit(char::from(b'A' + (n - 12))),
        Ok(16) => InfoVerdict::Nothing,
        _ => InfoVerdict::BadDigit("the signal is not a DTMF digit"),
    }
}

impl B2bua {
    /// An INFO in the dialog of `leg`: answered per [`classify`], a digit
    /// reported to the switch.
    pub(crate) fn info_received(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        request: &Message,
    ) {
        let verdict = classify(request);
        let tag = self.dialogs.get(&leg).map(|d| d.local_tag().to_owned());
        let reason = match verdict {
            InfoVerdict::BadDigit(r) => Some(r),
            _ => None,
        };
        let mut b = request.response_builder(verdict.status(), reason, tag.as_deref());
        b = b.header(HeaderName::Contact, self.contact(self.leg_transport(leg)));
        match verdict {
            InfoVerdict::UnsupportedBody => b = b.header(HeaderName::Accept, ACCEPTED_INFO_BODIES),
            // RFC 6086 §4.2.2: a 469 lists the packages tapir takes (none).
            InfoVerdict::BadPackage => b = b.header(HeaderName::from_wire("Recv-Info"), ""),
            _ => {}
        }
        self.respond(now, key, b.build());
        if let InfoVerdict::Digit(d) = verdict {
            self.out.push_back(Out::Switch(Input::Leg {
                leg,
                event: LegEvent::SignalledDigits(d.to_string()),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn info(ctype: Option<&str>, body: &str, extra: &str) -> Message {
        let ct = ctype.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
        let text = format!(
            "INFO sip:tapir@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5001;branch=z9hG4bKi1\r\n\
             From: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1002@127.0.0.1>;tag=b\r\nCall-ID: c1\r\n\
             CSeq: 3 INFO\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Message::parse_datagram(Bytes::from(text)).unwrap()
    }

    #[test]
    fn dtmf_relay_bodies() {
        let relay = Some("application/dtmf-relay");
        assert_eq!(
            classify(&info(relay, "Signal=5\r\nDuration=160\r\n", "")),
            InfoVerdict::Digit('5')
        );
        assert_eq!(
            classify(&info(relay, "Duration= 250\nsignal = #\n", "")),
            InfoVerdict::Digit('#')
        );
        assert_eq!(
            classify(&info(relay, "Signal=11\r\n", "")),
            InfoVerdict::Digit('#')
        );
        assert_eq!(
            classify(&info(relay, "Signal=d\r\n", "")),
            InfoVerdict::Digit('D')
        );
        assert_eq!(
            classify(&info(relay, "Signal=16\r\n", "")),
            InfoVerdict::Nothing
        );
        assert_eq!(classify(&info(relay, "Duration=160\r\n", "")).status(), 400);
        assert_eq!(classify(&info(relay, "Signal=X\r\n", "")).status(), 400);
        assert_eq!(classify(&info(relay, "Signal=\r\n", "")).status(), 400);
        assert_eq!(
            classify(&info(relay, "Signal=1\r\nDuration=long\r\n", "")).status(),
            400
        );
    }

    #[test]
    fn dtmf_bodies_and_others() {
        assert_eq!(
            classify(&info(Some("application/dtmf"), "7", "")),
            InfoVerdict::Digit('7')
        );
        assert_eq!(
            classify(&info(Some("Application/DTMF"), "10\r\n", "")),
            InfoVerdict::Digit('*')
        );
        assert_eq!(
            classify(&info(Some("application/dtmf"), "17", "")).status(),
            400
        );
        assert_eq!(
            classify(&info(Some("application/media_control+xml"), "<x/>", "")),
            InfoVerdict::UnsupportedBody
        );
        assert_eq!(
            classify(&info(None, "Signal=1", "")),
            InfoVerdict::UnsupportedBody
        );
        assert_eq!(classify(&info(None, "", "")), InfoVerdict::Nothing);
        assert_eq!(
            classify(&info(
                Some("application/dtmf-relay"),
                "Signal=1",
                "Info-Package: foo\r\n"
            )),
            InfoVerdict::BadPackage
        );
    }

    #[test]
    fn any_body_is_answered_without_panic() {
        for body in [
            "\u{0}",
            "=",
            "Signal",
            "Signal==",
            "é",
            "Signal=1\nSignal=2",
        ] {
            for ct in ["application/dtmf-relay", "application/dtmf"] {
                let v = classify(&info(Some(ct), body, ""));
                assert!([200, 400].contains(&v.status()), "{ct} {body:?} {v:?}");
            }
        }
    }
}
