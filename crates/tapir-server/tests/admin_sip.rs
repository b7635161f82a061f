//! Lines changed through `/v1/admin/lines` take effect in SIP at once: a
//! phone of a line added at run time registers with its password, a new
//! password replaces the old one, and a removed line can no longer register.
//! A plain SIP client over UDP on loopback computes the digest (RFC 8760).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::{Api, Phone, server_with};

#[tokio::test]
async fn sip_credentials_follow_admin_changes_at_once() {
    let s = server_with(|c| c.sip.listen = vec!["udp:127.0.0.1:0".into()]).await;
    let sip = s.sip_addr.unwrap();
    let admin = Api::new(&s, Some("admin-secret"));
    let mut phone = Phone::at("127.0.0.1", sip).await;
    // Before the line exists its phone cannot register.
    assert_ne!(phone.register_with("3001", "first-pass-3001").await, 200);

    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3001", "password": "first-pass-3001"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(phone.register_with("3001", "first-pass-3001").await, 200);
    assert_ne!(phone.register_with("3001", "a-wrong-password").await, 200);

    // A new password works at once; the old one no longer does.
    let (status, _) = admin
        .put(
            "/v1/admin/lines/3001",
            json!({"password": "second-pass-3001"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(phone.register_with("3001", "second-pass-3001").await, 200);
    assert_ne!(phone.register_with("3001", "first-pass-3001").await, 200);
    // The line shows as registered.
    let watcher = Api::new(&s, Some("tok-watcher"));
    let (_, lines) = watcher.get("/v1/lines").await;
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"] == "3001")
        .unwrap()
        .clone();
    assert_eq!(line["registration"], "registered", "{line}");

    // Removed: it cannot register any more.
    assert_eq!(admin.delete("/v1/admin/lines/3001").await.0, 204);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_ne!(phone.register_with("3001", "second-pass-3001").await, 200);
}
