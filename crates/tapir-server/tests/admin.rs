//! The operator endpoints (`/v1/admin/*`) against a real server: each
//! endpoint's success, its refusals (401, 403, bad input with a TAPI code and
//! a sentence, and nothing changed), and that what it changes reaches the
//! running switch and the store.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Api, WAIT, connected_pair, server};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn sentence(v: &Value) -> bool {
    v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.len() > 10 && m.contains(' '))
}

#[tokio::test]
async fn only_the_admin_token_may_call_the_operator_endpoints() {
    let s = server().await;
    let anon = Api::new(&s, None);
    let wrong = Api::new(&s, Some("not-a-token"));
    let app = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    for path in [
        "/v1/admin/lines",
        "/v1/admin/lines/1001",
        "/v1/admin/apps",
        "/v1/admin/apps/alpha",
        "/v1/admin/trunks",
        "/v1/admin/pickup-groups",
        "/v1/admin/park",
        "/v1/admin/cdr",
    ] {
        for api in [&anon, &wrong] {
            let (status, body) = api.get(path).await;
            assert_eq!(status, 401, "{path}");
            assert_eq!(code(&body), "unauthorized");
        }
        let (status, body) = app.get(path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(code(&body), "noprivilege");
        assert!(sentence(&body));
        assert_eq!(admin.get(path).await.0, 200, "{path}");
    }
    // Writes are refused the same way and change nothing.
    let (status, body) = app
        .post("/v1/admin/lines", json!({"address": "3001"}))
        .await;
    assert_eq!((status, code(&body)), (403, "noprivilege"));
    let (status, _) = anon.delete("/v1/admin/apps/alpha").await;
    assert_eq!(status, 401);
    assert_eq!(admin.get("/v1/admin/lines/3001").await.0, 404);
    assert_eq!(admin.get("/v1/admin/apps/alpha").await.0, 200);
}

#[tokio::test]
async fn lines_are_added_changed_and_removed_at_run_time() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    let (_, before) = admin.get("/v1/admin/lines").await;
    assert_eq!(before["lines"].as_array().unwrap().len(), 5);
    assert_eq!(before["lines"][4]["address"], "1001");
    assert_eq!(before["lines"][4]["has_password"], true);
    assert!(before["lines"][4].get("password").is_none(), "write-only");

    // A new phone without a password gets one, shown once.
    let (status, line) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3001", "name": "Carol", "more_addresses": ["3002"]}),
        )
        .await;
    assert_eq!(status, 201, "{line}");
    assert_eq!(line["kind"], "phone");
    assert_eq!(line["has_password"], true);
    let password = line["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 20);
    let (_, got) = admin.get("/v1/admin/lines/3002").await;
    assert_eq!(got["address"], "3001");
    assert!(got.get("password").is_none());
    // It works at once: an app allowed every line sees it and opens it.
    let (_, lines) = watcher.get("/v1/lines").await;
    assert!(
        lines
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["address"] == "3001" && l["name"] == "Carol")
    );
    watcher.open("3001", &["monitor"]).await;
    // And it is stored, password included (SIP digest needs it).
    let stored = s.store.lines().await.unwrap();
    let doc = stored.iter().find(|d| d.key == "3001").unwrap();
    assert_eq!(doc.data["password"], password.as_str());

    // Refusals: an address in use, a bad number, unknown keys, no address.
    let (status, body) = admin
        .post("/v1/admin/lines", json!({"address": "3002"}))
        .await;
    assert_eq!((status, code(&body)), (409, "invalparam"), "{body}");
    assert!(sentence(&body));
    let (status, body) = admin
        .post("/v1/admin/lines", json!({"address": "7001"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (409, "invalparam"),
        "a park slot: {body}"
    );
    let (status, body) = admin
        .post("/v1/admin/lines", json!({"address": "12ab"}))
        .await;
    assert_eq!((status, code(&body)), (400, "invaladdress"), "{body}");
    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3005", "colour": "red"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"), "{body}");
    let (status, body) = admin.post("/v1/admin/lines", json!({"name": "x"})).await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3005", "max_calls": 0}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    assert!(sentence(&body));
    let (_, after) = admin.get("/v1/admin/lines").await;
    assert_eq!(after["lines"].as_array().unwrap().len(), 6, "nothing added");

    // Replace: new name and group; the password stays when left out.
    let (status, line) = admin
        .put(
            "/v1/admin/lines/3001",
            json!({"address": "3001", "name": "Carol B", "pickup_group": "sales", "more_addresses": ["3002"]}),
        )
        .await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["name"], "Carol B");
    assert_eq!(line["has_password"], true);
    let doc = s.store.lines().await.unwrap();
    let doc = doc.iter().find(|d| d.key == "3001").unwrap();
    assert_eq!(doc.data["password"], password.as_str());
    assert_eq!(doc.data["pickup_group"], "sales");
    let (status, body) = admin
        .put("/v1/admin/lines/3001", json!({"address": "3009"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (400, "invalparam"),
        "address mismatch"
    );
    let (status, body) = admin
        .put("/v1/admin/lines/3001", json!({"more_addresses": ["1001"]}))
        .await;
    assert_eq!((status, code(&body)), (409, "invalparam"), "{body}");
    let (status, body) = admin.put("/v1/admin/lines/3999", json!({})).await;
    assert_eq!((status, code(&body)), (404, "invallinehandle"));
    let (_, got) = admin.get("/v1/admin/lines/3001").await;
    assert_eq!(got["more_addresses"], json!(["3002"]), "unchanged");

    // Remove: gone from the switch, the API and the store.
    assert_eq!(admin.delete("/v1/admin/lines/3001").await.0, 204);
    let (status, body) = admin.get("/v1/admin/lines/3001").await;
    assert_eq!((status, code(&body)), (404, "invallinehandle"));
    assert_eq!(admin.delete("/v1/admin/lines/3001").await.0, 404);
    assert!(
        !s.store
            .lines()
            .await
            .unwrap()
            .iter()
            .any(|d| d.key == "3001")
    );
    let (_, lines) = watcher.get("/v1/lines").await;
    assert!(
        !lines
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["address"] == "3001")
    );
    // Its address is free again.
    let (status, _) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "3002", "kind": "routepoint"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_line_with_calls_keeps_its_addresses_and_cannot_be_removed() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut beta_events = beta.events(0).await;
    connected_pair(&alpha, &beta, &mut beta_events).await;
    let (status, body) = admin.delete("/v1/admin/lines/2001").await;
    assert_eq!((status, code(&body)), (409, "invalcallstate"), "{body}");
    assert!(sentence(&body));
    let (status, body) = admin
        .put(
            "/v1/admin/lines/2001",
            json!({"kind": "routepoint", "more_addresses": ["2009"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "invalcallstate"), "{body}");
    // A new name is fine while calls go on.
    let (status, body) = admin
        .put(
            "/v1/admin/lines/2001",
            json!({"kind": "routepoint", "name": "Queue A2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        admin.get("/v1/admin/lines/2001").await.1["name"],
        "Queue A2"
    );
}

#[tokio::test]
async fn apps_get_tokens_that_work_at_once_and_are_stored_hashed() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, app) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "crm", "lines": ["2001"], "privileges": ["owner"]}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_string();
    assert_eq!(app["media_modes"], json!(["interactivevoice"]));
    let crm = Api::new(&s, Some(&token));
    let (status, lines) = crm.get("/v1/lines").await;
    assert_eq!(status, 200);
    assert_eq!(lines.as_array().unwrap().len(), 1);
    crm.open("2001", &["owner"]).await;
    let (_, got) = admin.get("/v1/admin/apps/crm").await;
    assert!(got.get("token").is_none(), "shown once");
    let stored = s.store.apps().await.unwrap();
    let row = stored.iter().find(|a| a.name == "crm").unwrap();
    assert!(row.data.get("token").is_none());
    assert_eq!(row.token_hash.len(), 64);
    assert!(!row.token_hash.contains(&token));

    // Refusals change nothing.
    let (status, body) = admin.post("/v1/admin/apps", json!({"name": "crm"})).await;
    assert_eq!((status, code(&body)), (409, "invalparam"));
    let (status, body) = admin
        .post("/v1/admin/apps", json!({"name": "x", "token": "short"}))
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    assert!(sentence(&body));
    let (status, body) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "x", "token": "tok-alpha-is-taken", "privileges": []}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    let (status, body) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "y", "token": "admin-secret-xxxxxx"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "z", "token": "admin-secret-xxxxxx"}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "invalparam"), "token in use");
    let (status, body) = admin
        .post(
            "/v1/admin/apps",
            json!({"name": "z", "privileges": ["boss"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    let (_, apps) = admin.get("/v1/admin/apps").await;
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "watcher", "crm", "y"]);

    // Rotating the token: the old one stops working.
    let (status, body) = admin
        .put(
            "/v1/admin/apps/crm",
            json!({"lines": ["2001", "2003"], "token": "a-new-crm-token-1234"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], "a-new-crm-token-1234");
    assert_eq!(crm.get("/v1/lines").await.0, 401);
    let crm2 = Api::new(&s, Some("a-new-crm-token-1234"));
    assert_eq!(crm2.get("/v1/lines").await.1.as_array().unwrap().len(), 2);
    let (status, body) = admin
        .put("/v1/admin/apps/crm", json!({"name": "other"}))
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    let (status, body) = admin.put("/v1/admin/apps/nobody", json!({})).await;
    assert_eq!((status, code(&body)), (404, "invalparam"));

    // Removing it: its token no longer works, its lines are closed.
    assert_eq!(admin.delete("/v1/admin/apps/crm").await.0, 204);
    assert_eq!(crm2.get("/v1/lines").await.0, 401);
    assert_eq!(admin.get("/v1/admin/apps/crm").await.0, 404);
    assert_eq!(admin.delete("/v1/admin/apps/crm").await.0, 404);
    assert!(
        !s.store
            .apps()
            .await
            .unwrap()
            .iter()
            .any(|a| a.name == "crm")
    );
}

#[tokio::test]
async fn trunks_are_stored_configuration() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, t) = admin
        .post(
            "/v1/admin/trunks",
            json!({"name": "carrier", "host": "127.0.0.1", "username": "u", "password": "p", "prefix": "9"}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["port"], 5060);
    assert_eq!(t["transport"], "udp");
    assert_eq!(t["has_password"], true);
    assert!(t.get("password").is_none());
    for (bad, why) in [
        (json!({"name": "b", "host": "h", "port": 0}), "port 0"),
        (json!({"name": "b", "host": "h", "prefix": "9x"}), "prefix"),
        (json!({"name": "b"}), "no host"),
        (
            json!({"name": "b", "host": "h", "transport": "sctp"}),
            "transport",
        ),
        (
            json!({"name": "b", "host": "h", "address": "2001"}),
            "not a trunk line",
        ),
    ] {
        let (status, body) = admin.post("/v1/admin/trunks", bad).await;
        assert_eq!((status, code(&body)), (400, "invalparam"), "{why}: {body}");
        assert!(sentence(&body), "{why}");
    }
    let (status, body) = admin
        .post("/v1/admin/trunks", json!({"name": "carrier", "host": "h"}))
        .await;
    assert_eq!((status, code(&body)), (409, "invalparam"));
    let (status, t) = admin
        .put(
            "/v1/admin/trunks/carrier",
            json!({"host": "127.0.0.2", "port": 5080, "transport": "tcp"}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["has_password"], true, "password kept");
    let (_, list) = admin.get("/v1/admin/trunks").await;
    assert_eq!(list["trunks"].as_array().unwrap().len(), 1);
    assert_eq!(list["trunks"][0]["port"], 5080);
    let stored = s.store.trunks().await.unwrap();
    assert_eq!(stored[0].data["host"], "127.0.0.2");
    assert_eq!(stored[0].data["password"], "p");
    assert_eq!(admin.delete("/v1/admin/trunks/carrier").await.0, 204);
    let (status, body) = admin.get("/v1/admin/trunks/carrier").await;
    assert_eq!((status, code(&body)), (404, "invalparam"));
    assert!(s.store.trunks().await.unwrap().is_empty());
}

#[tokio::test]
async fn pickup_groups_are_the_lines_group_field() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, g) = admin
        .put(
            "/v1/admin/pickup-groups/sales",
            json!({"members": ["2001", "2003"]}),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    let (_, groups) = admin.get("/v1/admin/pickup-groups").await;
    assert_eq!(
        groups["groups"],
        json!([{"name": "sales", "members": ["2001", "2003"]}])
    );
    assert_eq!(
        admin.get("/v1/admin/lines/2003").await.1["pickup_group"],
        "sales"
    );
    // Members change: 2001 leaves, 2004 joins.
    admin
        .put(
            "/v1/admin/pickup-groups/sales",
            json!({"members": ["2003", "2004"]}),
        )
        .await;
    assert_eq!(
        admin.get("/v1/admin/lines/2001").await.1["pickup_group"],
        Value::Null
    );
    // An unknown address changes nothing.
    let (status, body) = admin
        .put(
            "/v1/admin/pickup-groups/sales",
            json!({"members": ["2001", "9999"]}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "invalparam"));
    assert!(sentence(&body));
    assert_eq!(
        admin.get("/v1/admin/lines/2004").await.1["pickup_group"],
        "sales"
    );
    let stored = s.store.lines().await.unwrap();
    let doc = stored.iter().find(|d| d.key == "2004").unwrap();
    assert_eq!(doc.data["pickup_group"], "sales");
    assert_eq!(admin.delete("/v1/admin/pickup-groups/sales").await.0, 204);
    let (status, body) = admin.delete("/v1/admin/pickup-groups/sales").await;
    assert_eq!((status, code(&body)), (404, "invalgroupid"));
    assert_eq!(
        admin.get("/v1/admin/pickup-groups").await.1["groups"],
        json!([])
    );
}

#[tokio::test]
async fn park_slots_change_but_an_occupied_slot_stays() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let (_, park) = admin.get("/v1/admin/park").await;
    assert_eq!(park["slots"], "7001-7005");
    assert_eq!(park["parked"], json!([]));
    let (status, park) = admin
        .put(
            "/v1/admin/park",
            json!({"slots": "7001-7010", "reminder_ms": 60000}),
        )
        .await;
    assert_eq!(status, 200, "{park}");
    assert_eq!(park["reminder_ms"], 60000);
    assert_eq!(
        s.store.setting("park").await.unwrap().unwrap()["slots"],
        "7001-7010"
    );
    for (bad, want) in [
        (json!({"slots": "7010-7001"}), (400, "invalparam")),
        (json!({"slots": "x"}), (400, "invaladdress")),
        (json!({"slots": "2001"}), (400, "invaladdress")),
        (json!({"slots": ""}), (400, "invalparam")),
        (json!({}), (400, "invalparam")),
    ] {
        let (status, body) = admin.put("/v1/admin/park", bad.clone()).await;
        assert_eq!((status, code(&body)), want, "{bad}: {body}");
        assert!(sentence(&body));
    }
    assert_eq!(admin.get("/v1/admin/park").await.1["slots"], "7001-7010");
    // Park a call, then try to drop its slot.
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut beta_events = beta.events(0).await;
    let (a, _) = connected_pair(&alpha, &beta, &mut beta_events).await;
    let (status, parked) = alpha
        .post(&format!("/v1/calls/{a}/park"), json!({"to": "7008"}))
        .await;
    assert_eq!(status, 200, "{parked}");
    let (_, park) = admin.get("/v1/admin/park").await;
    assert_eq!(park["parked"][0]["slot"], "7008");
    let (status, body) = admin
        .put("/v1/admin/park", json!({"slots": "7001-7005"}))
        .await;
    assert_eq!((status, code(&body)), (409, "invalcallstate"), "{body}");
    let (status, _) = admin
        .put("/v1/admin/park", json!({"slots": "7006-7009"}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_finished_call_leaves_one_record_with_its_operations() {
    let s = server().await;
    let admin = Api::new(&s, Some("admin-secret"));
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut beta_events = beta.events(0).await;
    let (a, b) = connected_pair(&alpha, &beta, &mut beta_events).await;
    alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    let (status, body) = alpha.post(&format!("/v1/calls/{b}/drop"), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (404, "invalcallhandle"),
        "not its call"
    );
    beta.ok(&format!("/v1/calls/{b}/drop"), json!({})).await;
    alpha.ok(&format!("/v1/calls/{a}/drop"), json!({})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let cdrs = loop {
        let (_, list) = admin.get("/v1/admin/cdr").await;
        if !list["cdrs"].as_array().unwrap().is_empty() {
            break list["cdrs"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no CDR written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(cdrs.as_array().unwrap().len(), 1, "{cdrs}");
    // Later steps (the idle calls are still held by the apps) add none.
    for _ in 0..5 {
        assert_eq!(admin.get("/healthz").await.0, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(admin.get("/v1/admin/cdr").await.1["cdrs"], cdrs);
    let c = &cdrs[0];
    let parties: Vec<(&str, &str)> = c["parties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["address"].as_str().unwrap(), p["role"].as_str().unwrap()))
        .collect();
    assert_eq!(parties, [("2001", "caller"), ("2002", "called")]);
    assert_eq!(c["parties"][0]["call"], a.as_str());
    assert_eq!(c["origin"], "outbound");
    assert!(c["answered_at"].is_string());
    assert!(c["ended_at"].as_str().unwrap().ends_with('Z'));
    let ops: Vec<(&str, &str)> = c["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["op"].as_str().unwrap(), o["result"].as_str().unwrap()))
        .collect();
    assert!(ops.contains(&("makecall", "ok")), "{ops:?}");
    assert!(ops.contains(&("answer", "ok")), "{ops:?}");
    assert!(ops.contains(&("hold", "ok")), "{ops:?}");
    assert!(ops.contains(&("drop", "invalcallhandle")), "{ops:?}");
    assert!(ops.contains(&("drop", "ok")), "{ops:?}");
    let id = c["id"].as_str().unwrap();
    let (status, one) = admin.get(&format!("/v1/admin/cdr/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(&one, c);
    // Filters and refusals.
    assert_eq!(
        admin.get("/v1/admin/cdr?address=2002").await.1["cdrs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        admin.get("/v1/admin/cdr?address=2004").await.1["cdrs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        admin.get(&format!("/v1/admin/cdr?before={id}")).await.1["cdrs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for bad in ["limit=0", "limit=x", "before=abc", "colour=red"] {
        let (status, body) = admin.get(&format!("/v1/admin/cdr?{bad}")).await;
        assert_eq!((status, code(&body)), (400, "invalparam"), "{bad}");
        assert!(sentence(&body));
    }
    let (status, body) = admin.get("/v1/admin/cdr/999999").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(admin.get("/v1/admin/cdr/nope").await.0, 404);
}

#[tokio::test]
async fn locations_and_cards_are_stored_with_their_pins() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let (status, body) = alpha
        .put(
            "/v1/cards",
            json!({"cards": [{"id": "c1", "name": "Card", "card_number": "123", "pin": "9876"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = s.store.setting("translate").await.unwrap().unwrap();
    assert_eq!(stored["cards"][0]["pin"], "9876");
    assert!(
        body["cards"][0].get("pin").is_none(),
        "the API never shows it"
    );
}
