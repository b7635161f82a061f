//! Clearing legs whose device vanished: the `Reason` (RFC 3326) of the BYE
//! tapir sends when it releases such a leg.

use tapir_core::ReleaseCause;
use tapir_sip::msg::{HeaderName, Message};

/// Add `Reason: SIP;cause=408;text="…"` to a BYE that ends a leg whose
/// device vanished (no RTP, session expired, no ACK), so the device (or a
/// proxy's log) can tell why; other causes need none.
pub(crate) fn add_reason(bye: &mut Message, cause: ReleaseCause) {
    let text = match cause {
        ReleaseCause::RtpTimeout => "RTP timeout",
        ReleaseCause::SessionExpired => "Session expired",
        ReleaseCause::NoAck => "No ACK",
        _ => return,
    };
    bye.push_header(
        HeaderName::from_wire("Reason"),
        format!("SIP;cause=408;text=\"{text}\""),
    );
}
