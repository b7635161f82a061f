//! The sizes and characters tapir accepts in the text it is given
//! (addresses, dial strings, names and every other free-text field), in one
//! place: the switch checks line configurations with it (so configuration
//! files are covered), and the HTTP API checks every string of every
//! request body with it before a handler sees it.
//!
//! Control characters (CR, LF, NUL, TAB, DEL, the C1 range and the Unicode
//! line and paragraph separators) are refused everywhere: such text could
//! end up in a SIP header, a log line or a CDR, and no address or name
//! needs one.

use crate::error::{ErrorCode, TapiError, fail};

/// Longest address (directory number, park slot, trunk prefix), in
/// characters. Asterisk allows 80 for an extension; E.164 numbers have 15
/// digits.
pub const MAX_ADDRESS_LEN: usize = 64;
/// Longest dial string (a number with a prefix, calling-card digits, a
/// canonical `+1 (425) 882-8080`, DTMF digits to send), in characters.
pub const MAX_DIAL_LEN: usize = 128;
/// Longest name (display name, pickup group, app, location, card, prompt),
/// in characters.
pub const MAX_NAME_LEN: usize = 128;
/// Longest of any other text (host names, URLs, tokens, passwords), in
/// characters.
pub const MAX_TEXT_LEN: usize = 1024;

/// What a piece of text is, for its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// An address: [`MAX_ADDRESS_LEN`].
    Address,
    /// A dial string: [`MAX_DIAL_LEN`].
    Dial,
    /// A name: [`MAX_NAME_LEN`].
    Name,
    /// Anything else: [`MAX_TEXT_LEN`].
    Text,
}

impl TextKind {
    /// The most characters text of this kind may have.
    pub fn max_len(self) -> usize {
        match self {
            TextKind::Address => MAX_ADDRESS_LEN,
            TextKind::Dial => MAX_DIAL_LEN,
            TextKind::Name => MAX_NAME_LEN,
            TextKind::Text => MAX_TEXT_LEN,
        }
    }
}

/// True for the characters no text tapir accepts may hold.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Checks `value`, the `field` of a request or configuration: at most
/// `kind.max_len()` characters and no control characters; `invalparam`
/// with a sentence naming the field otherwise.
pub fn check_text(field: &str, value: &str, kind: TextKind) -> Result<(), TapiError> {
    let max = kind.max_len();
    // Counting characters of a huge string is pointless: a char is at most
    // four bytes.
    if value.len() > 4 * max || value.chars().count() > max {
        return fail(
            ErrorCode::InvalParam,
            format!(
                "{field} is too long: at most {max} characters ({} bytes given)",
                value.len()
            ),
        );
    }
    if let Some(c) = value.chars().find(|c| is_forbidden_char(*c)) {
        return fail(
            ErrorCode::InvalParam,
            format!(
                "{field} holds a control character ({:?}); line breaks and other control characters are not allowed",
                c
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_and_control_characters() {
        assert!(check_text("name", "Zoë Müller", TextKind::Name).is_ok());
        assert!(check_text("address", &"1".repeat(64), TextKind::Address).is_ok());
        let long = check_text("address", &"1".repeat(65), TextKind::Address).unwrap_err();
        assert_eq!(long.code, ErrorCode::InvalParam);
        assert!(long.message.contains("at most 64"), "{}", long.message);
        assert!(check_text("to", &"1".repeat(1 << 20), TextKind::Dial).is_err());
        // 128 two-byte characters are 128 characters.
        assert!(check_text("name", &"é".repeat(128), TextKind::Name).is_ok());
        for bad in [
            "a\r\nb",
            "a\nb",
            "a\0b",
            "a\tb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{2028}b",
        ] {
            let e = check_text("name", bad, TextKind::Name).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalParam, "{bad:?}");
            assert!(e.message.contains("control character"), "{}", e.message);
        }
    }
}
