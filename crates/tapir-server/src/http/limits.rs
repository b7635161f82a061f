//! Every string of every JSON request body is checked here before a
//! handler sees it: its size by what its field is (an address, a dial
//! string, a name, or other text) and no control characters, with
//! [`tapir_core::limits`], the same rule the switch applies to line
//! configurations. A failure is `400 invalparam` naming the field.

use crate::error::ApiError;
use serde_json::Value;
use tapir_core::limits::{TextKind, check_text};

/// What the strings of the field `key` are. Fields not listed are
/// [`TextKind::Text`].
fn kind_of(key: &str) -> TextKind {
    match key {
        // Addresses: a line's, a park slot, a pickup target, members.
        "address"
        | "more_addresses"
        | "members"
        | "from"
        | "with"
        | "target"
        | "slot"
        | "prefix"
        | "lines"
        | "area_code"
        | "local_access"
        | "long_distance_access"
        | "cancel_call_waiting"
        | "toll_prefixes"
        | "long_distance_carrier"
        | "addresses" => TextKind::Address,
        // Dial strings: where a call goes, digits to send.
        "to" | "digits" | "caller" | "card_number" | "pin" => TextKind::Dial,
        // Names.
        "name" | "pickup_group" | "group" | "app" | "location" | "card" | "prompt" | "id"
        | "username" => TextKind::Name,
        _ => TextKind::Text,
    }
}

/// Checks every string (and object key) of a request body.
pub fn check_body(value: &Value) -> Result<(), ApiError> {
    check_value("the body", TextKind::Text, value, 0)
}

/// Nesting deeper than this is refused (serde_json stops at 128 anyway).
const MAX_DEPTH: usize = 32;

fn check_value(field: &str, kind: TextKind, value: &Value, depth: usize) -> Result<(), ApiError> {
    if depth > MAX_DEPTH {
        return Err(ApiError::param("the body is nested too deeply"));
    }
    match value {
        Value::String(text) => check_text(&format!("\"{field}\""), text, kind).map_err(Into::into),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_value(field, kind, item, depth + 1)),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            check_text("a field name", key, TextKind::Name)?;
            check_value(key, kind_of(key), item, depth + 1)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_by_field_and_no_control_characters() {
        assert!(check_body(&json!({"from": "1001", "to": "+1 (425) 882-8080"})).is_ok());
        let e = check_body(&json!({"address": "1".repeat(100_000)})).unwrap_err();
        assert_eq!(e.code, "invalparam");
        assert!(e.message.contains("\"address\""), "{}", e.message);
        assert!(check_body(&json!({"to": "1".repeat(1 << 20)})).is_err());
        assert!(check_body(&json!({"to": "1".repeat(128)})).is_ok());
        assert!(check_body(&json!({"name": "Evil\r\nX-Injected: yes"})).is_err());
        // Nested: forwarding rules, arrays of addresses, locations.
        assert!(check_body(&json!({"rules": [{"mode": "busy", "to": "1\n2"}]})).is_err());
        assert!(check_body(&json!({"more_addresses": ["1002", "1".repeat(65)]})).is_err());
        assert!(check_body(&json!([{"id": "home", "name": "x".repeat(129)}])).is_err());
        assert!(check_body(&json!({"url": "https://example.com/".repeat(40)})).is_ok());
        assert!(check_body(&json!({"url": "x".repeat(1025)})).is_err());
        assert!(check_body(&json!({"bad\u{0}key": 1})).is_err());
    }
}
