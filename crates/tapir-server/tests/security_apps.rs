//! Issue 12, finding 3: what an app's configuration allows holds over HTTP.
//! A monitor-only app cannot make itself owner (and so cannot transfer),
//! place calls or set forwarding; an app limited to some lines cannot
//! rewrite the switch-wide locations; narrowing an app closes the lines it
//! may no longer hold; the admin API and the store carry the permissions.
//! Each refusal is `403` with the TAPI-style code `noprivilege` and a
//! sentence naming the missing right. The test server is
//! `support::CONFIG`: `watcher` is `privileges = ["monitor"]` on every line
//! with no `permissions` key; `beta` owns 2002 and 2004 with none either.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use support::{Api, connected_pair, server};

/// A 403 `noprivilege` whose sentence names `right`.
fn refused(status: u16, body: &Value, right: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "noprivilege", "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(right), "the sentence names {right:?}: {msg}");
}

#[tokio::test]
async fn a_monitor_only_app_cannot_raise_itself_to_owner_and_transfer() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    watcher.open("2002", &["monitor"]).await;
    let mut ev_b = beta.events(0).await;
    let mut ev_w = watcher.events(0).await;
    let (_, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    ev_w.until("the watcher's handle", |v| {
        v["type"] == "call.new" && v["call"] == b.as_str()
    })
    .await;

    let (status, body) = watcher
        .post(
            &format!("/v1/calls/{b}/privilege"),
            json!({"privilege": "owner"}),
        )
        .await;
    refused(status, &body, "owner");
    assert_eq!(watcher.call(&b).await["privilege"], "monitor");
    let (status, body) = watcher
        .post(
            &format!("/v1/calls/{b}/blind-transfer"),
            json!({"to": "2004"}),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("notowner")));
    assert_eq!(beta.call(&b).await["state"], "connected");
    // Stepping down to what it already is stays allowed.
    let (status, body) = watcher
        .post(
            &format!("/v1/calls/{b}/privilege"),
            json!({"privilege": "monitor"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn a_monitor_only_app_cannot_place_calls_pick_up_or_unpark() {
    let s = server().await;
    let watcher = Api::new(&s, Some("tok-watcher"));
    let beta = Api::new(&s, Some("tok-beta"));
    watcher.open("2002", &["monitor"]).await;
    let (status, body) = watcher
        .post("/v1/calls", json!({"from": "2002", "to": "2001"}))
        .await;
    refused(status, &body, "make_call");
    let (status, body) = watcher
        .post("/v1/addresses/2002/pickup", json!({"target": "2004"}))
        .await;
    refused(status, &body, "owner");
    let (status, body) = watcher
        .post("/v1/addresses/2002/unpark", json!({"from": "7001"}))
        .await;
    refused(status, &body, "owner");
    assert_eq!(watcher.get("/v1/calls").await.1["calls"], json!([]));
    // An owner app whose permissions leave out make_call is refused too;
    // with the default permissions (beta has none configured) it may.
    beta.open("2002", &["owner"]).await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, body) = admin
        .put(
            "/v1/admin/apps/beta",
            json!({"lines": ["2002", "2004"], "permissions": ["forward"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = beta
        .post("/v1/calls", json!({"from": "2002", "to": "2001"}))
        .await;
    refused(status, &body, "make_call");
    let (status, body) = admin
        .put("/v1/admin/apps/beta", json!({"lines": ["2002", "2004"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = beta
        .post("/v1/calls", json!({"from": "2002", "to": "2001"}))
        .await;
    assert_eq!(status, 201, "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn a_monitor_only_app_cannot_set_forwarding() {
    let s = server().await;
    let watcher = Api::new(&s, Some("tok-watcher"));
    let beta = Api::new(&s, Some("tok-beta"));
    watcher.open("2002", &["monitor"]).await;
    let rules = json!({"rules": [{"mode": "unconditional", "to": "2001"}]});
    let (status, body) = watcher.put("/v1/addresses/2002/forwarding", rules).await;
    refused(status, &body, "forward");
    let (_, status_now) = watcher.get("/v1/addresses/2002").await;
    assert_eq!(status_now["forwarding"]["rules"], json!([]), "{status_now}");
    // The line's owner app (default permissions) still forwards.
    beta.open("2002", &["owner"]).await;
    let rules = json!({"rules": [{"mode": "unconditional", "to": "2004"}]});
    let (status, body) = beta.put("/v1/addresses/2002/forwarding", rules).await;
    assert_eq!(status, 200, "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn an_app_limited_to_some_lines_cannot_rewrite_the_locations() {
    let s = server().await;
    let beta = Api::new(&s, Some("tok-beta"));
    let (_, before) = beta.get("/v1/locations").await;
    let evil = json!({
        "current": "evil",
        "locations": [{"id": "evil", "name": "Evil", "country_code": 1,
                       "area_code": "206", "local_access": "9"}]
    });
    let (status, body) = beta.put("/v1/locations", evil.clone()).await;
    refused(status, &body, "settings");
    let (status, body) = beta.put("/v1/cards", json!({"cards": []})).await;
    refused(status, &body, "settings");
    assert_eq!(beta.get("/v1/locations").await.1, before);
    // The operator, and an app granted `settings`, may.
    let (status, body) = Api::new(&s, Some("admin-secret"))
        .put("/v1/locations", evil.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = Api::new(&s, Some("tok-alpha"))
        .put("/v1/locations", before)
        .await;
    assert_eq!(status, 200, "{body}");
    s.shutdown().await;
}

#[tokio::test]
async fn narrowing_an_app_closes_the_lines_it_may_no_longer_hold() {
    let s = server().await;
    let beta = Api::new(&s, Some("tok-beta"));
    let admin = Api::new(&s, Some("admin-secret"));
    beta.open("2002", &["owner"]).await;
    beta.open("2004", &["owner"]).await;
    let mut ev = beta.events(0).await;
    let (status, body) = admin
        .put("/v1/admin/apps/beta", json!({"lines": ["2004"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    ev.until("2002 closed", |v| {
        v["type"] == "line.state" && v["state"] == "closed"
    })
    .await;
    let (_, lines) = beta.get("/v1/lines").await;
    let addrs: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["2004"]);
    let (status, body) = beta
        .post("/v1/calls", json!({"from": "2002", "to": "2001"}))
        .await;
    assert!(
        status == 403 || status == 404,
        "a line no longer its own: {status} {body}"
    );
    let (status, body) = beta
        .post("/v1/lines/2002/open", json!({"privileges": ["owner"]}))
        .await;
    refused(status, &body, "2002");
    // Owner taken away: the owner open of 2004 closes too.
    let (status, body) = admin
        .put(
            "/v1/admin/apps/beta",
            json!({"lines": ["2004"], "privileges": ["monitor"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, lines) = beta.get("/v1/lines").await;
    assert_eq!(lines[0]["open"], Value::Null, "{lines}");
    s.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_and_the_store_carry_the_permissions() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, app) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "dialer", "lines": ["2003"], "permissions": ["make_call"],
                   "token": "tok-dialer-0123456789"}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["permissions"], json!(["make_call"]));
    assert_eq!(app["effective_permissions"], json!(["make_call"]));
    let (_, watcher) = admin.get("/v1/admin/apps/watcher").await;
    assert!(watcher.get("permissions").is_none(), "{watcher}");
    assert_eq!(watcher["effective_permissions"], json!([]));
    let (_, beta) = admin.get("/v1/admin/apps/beta").await;
    assert_eq!(
        beta["effective_permissions"],
        json!(["make_call", "forward"])
    );
    let (status, body) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "bad", "lines": ["*"], "permissions": ["everything"]}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalparam"))
    );
    let stored = s.store.apps().await.unwrap();
    let dialer = stored.iter().find(|a| a.name == "dialer").unwrap();
    assert_eq!(dialer.data["permissions"], json!(["make_call"]));
    // The new app's rights hold: it dials from 2003, it may not forward.
    let dialer = Api::new(&s, Some("tok-dialer-0123456789"));
    dialer.open("2003", &["owner"]).await;
    let (status, body) = dialer
        .post("/v1/calls", json!({"from": "2003", "to": "2004"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = dialer
        .put("/v1/addresses/2003/forwarding", json!({"rules": []}))
        .await;
    refused(status, &body, "forward");
    s.shutdown().await;
}
