//! The HTTP API and event stream, driven over real HTTP and WebSocket against
//! a server on 127.0.0.1 port 0. Route points need no SIP.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Api, connected_pair, server};

#[tokio::test]
async fn make_answer_hold_unhold_drop_between_route_points() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_a = alpha.events(0).await;
    let mut ev_b = beta.events(0).await;

    let (status, call) = alpha
        .post("/v1/calls", json!({"from": "2001", "to": "2002"}))
        .await;
    assert_eq!(status, 201, "{call}");
    let a = call["id"].as_str().unwrap().to_string();
    assert!(a.starts_with("call-"));
    for field in [
        "id",
        "address",
        "line",
        "state",
        "state_mode",
        "reason",
        "origin",
        "caller",
        "called",
        "connected",
        "redirecting",
        "privilege",
        "bridge",
        "related_calls",
        "secure",
        "created_at",
    ] {
        assert!(
            call.get(field).is_some(),
            "call object lacks {field}: {call}"
        );
    }
    assert_eq!(call["address"], "2001");
    assert_eq!(call["privilege"], "owner");
    assert!(call["line"].as_str().unwrap().starts_with("line-"));
    assert!(call["created_at"].as_str().unwrap().ends_with('Z'));

    let new = ev_b.until("call.new", |v| v["type"] == "call.new").await;
    assert_eq!(new["address"], "2002");
    assert_eq!(new["privilege"], "owner");
    let b = new["call"].as_str().unwrap().to_string();
    assert_eq!(beta.call(&b).await["state"], "offering");

    let answered = beta.ok(&format!("/v1/calls/{b}/answer"), json!({})).await;
    assert_eq!(answered["state"], "connected");
    ev_a.state(&a, "connected").await;
    assert_eq!(alpha.call(&a).await["state"], "connected");

    let held = alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    assert_eq!(held["state"], "onhold");
    ev_a.state(&a, "onhold").await;
    // Hold is idempotent: holding a held call succeeds and it stays on hold.
    let again = alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    assert_eq!(again["state"], "onhold");
    // Unhold too: unholding the other side's talking call changes nothing.
    let (status, body) = beta.post(&format!("/v1/calls/{b}/unhold"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "connected");
    let back = alpha.ok(&format!("/v1/calls/{a}/unhold"), json!({})).await;
    assert_eq!(back["state"], "connected");
    ev_a.state(&a, "connected").await;

    let dropped = alpha.ok(&format!("/v1/calls/{a}/drop"), json!({})).await;
    assert_eq!(dropped["state"], "idle", "{dropped}");
    ev_b.state(&b, "disconnected").await;
    let (status, _) = alpha.delete(&format!("/v1/calls/{a}")).await;
    assert_eq!(status, 204);
    let (status, err) = alpha.get(&format!("/v1/calls/{a}")).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "invalcallhandle");

    // Replies come on the stream too, named by the tapir-request header.
    let (status, _, request) = alpha
        .post_full(&format!("/v1/calls/{a}/hold"), json!({}))
        .await;
    assert_eq!(status, 404);
    let request = request.expect("a tapir-request header");
    assert!(request.starts_with("req-"));
    let reply = ev_a
        .until("the reply", |v| {
            v["type"] == "reply" && v["request"] == request.as_str()
        })
        .await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "invalcallhandle");
    ev_a.close().await;
    ev_b.close().await;
    s.shutdown().await;
}

#[tokio::test]
async fn tokens_and_privileges() {
    let s = server().await;
    let anon = Api::new(&s, None);
    let wrong = Api::new(&s, Some("nope"));
    let alpha = Api::new(&s, Some("tok-alpha"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    let admin = Api::new(&s, Some("admin-secret"));

    for api in [&anon, &wrong] {
        let (status, err) = api.get("/v1/lines").await;
        assert_eq!(status, 401);
        assert_eq!(err["error"]["code"], "unauthorized");
        assert!(err["error"]["message"].is_string());
        let (status, _) = api.post("/v1/calls", json!({"from": "2001"})).await;
        assert_eq!(status, 401);
    }
    // The admin token is not an app token.
    assert_eq!(admin.get("/v1/lines").await.0, 401);
    assert_eq!(admin.get("/v1/admin/lines").await.0, 200);
    assert_eq!(admin.get("/v1/admin/nothing").await.0, 404);
    assert_eq!(alpha.get("/v1/admin/lines").await.0, 403);
    assert_eq!(anon.get("/v1/admin/lines").await.0, 401);

    // Lines: only the allowed ones are listed and may be opened.
    let (status, lines) = alpha.get("/v1/lines").await;
    assert_eq!(status, 200);
    let addrs: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["2001", "2003"]);
    assert_eq!(lines[0]["kind"], "routepoint");
    assert_eq!(
        watcher.get("/v1/lines").await.1.as_array().unwrap().len(),
        5
    );

    let (status, err) = alpha
        .post("/v1/lines/2002/open", json!({"privileges": ["owner"]}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["code"], "noprivilege");
    let (status, err) = watcher
        .post("/v1/lines/2002/open", json!({"privileges": ["owner"]}))
        .await;
    assert_eq!(status, 403, "a monitor-only app cannot open as owner");
    assert_eq!(err["error"]["code"], "noprivilege");
    watcher.open("2002", &["monitor"]).await;
    let (status, err) = alpha.post("/v1/lines/line-999/open", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "invallinehandle");
    // By id as well as by address; the listing shows what is open.
    let id = lines[0]["id"].as_str().unwrap();
    assert_eq!(lines[0]["open"], serde_json::Value::Null);
    let (status, opened) = alpha.post(&format!("/v1/lines/{id}/open"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(opened["open"], json!(["owner"]));
    let (_, lines) = alpha.get("/v1/lines").await;
    assert_eq!(lines[0]["open"], json!(["owner"]));
    assert_eq!(lines[1]["open"], serde_json::Value::Null);
    assert_eq!(
        alpha
            .post(&format!("/v1/lines/{id}/close"), json!({}))
            .await
            .0,
        204
    );
    let (status, err) = alpha
        .post(&format!("/v1/lines/{id}/close"), json!({}))
        .await;
    assert_eq!(status, 404, "closing a closed line: {err}");
    assert_eq!(err["error"]["code"], "invallinehandle");
    assert_eq!(
        alpha.get("/v1/lines").await.1[0]["open"],
        serde_json::Value::Null
    );
    alpha.open(id, &["owner"]).await;
    // Browsers cannot set headers on a WebSocket: ?access_token= works too.
    let url = format!(
        "ws://{}/v1/events?since=0&access_token=tok-alpha",
        s.http_addr
    );
    let (mut ws, _) = tokio::time::timeout(support::WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    use futures_util::StreamExt;
    let first = tokio::time::timeout(support::WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.to_text().unwrap().contains("line.state"), "{first}");

    // An app cannot touch a call it has no handle to; a monitor cannot control.
    let beta = Api::new(&s, Some("tok-beta"));
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let mut ev_w = watcher.events(0).await;
    let (a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let (status, err) = beta.post(&format!("/v1/calls/{a}/hold"), json!({})).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["code"], "invalcallhandle");
    let seen = ev_w
        .until("watcher sees the call", |v| {
            v["type"] == "call.new" && v["call"] == b.as_str()
        })
        .await;
    assert_eq!(seen["privilege"], "monitor");
    let (status, err) = watcher
        .post(&format!("/v1/calls/{b}/drop"), json!({}))
        .await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "notowner");
    // Addresses of other apps' lines are out of reach.
    assert_eq!(alpha.get("/v1/addresses/2002").await.0, 403);
    assert_eq!(alpha.get("/v1/addresses/9999").await.0, 404);

    // No token needed for health and metrics.
    assert_eq!(anon.get("/healthz").await, (200, json!({"status": "ok"})));
    let (status, text) = anon.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.as_str().unwrap().contains("tapir_operations_total")
            && text.as_str().unwrap().contains("tapir_events_total")
            && text.as_str().unwrap().contains("tapir_calls")
            && text.as_str().unwrap().contains("tapir_http_requests_total"),
        "{text}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn events_are_ordered_and_replayed_after_since() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_a = alpha.events(0).await;
    let mut ev_b = beta.events(0).await;
    let (a, _b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    alpha.ok(&format!("/v1/calls/{a}/unhold"), json!({})).await;
    // The reply of unhold comes before its state change: read up to the last connected.
    ev_a.until("on hold", |v| {
        v["type"] == "call.state" && v["state"] == "onhold"
    })
    .await;
    ev_a.state(&a, "connected").await;
    let seqs: Vec<u64> = ev_a
        .seen
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "seq grows by one: {:#?}", ev_a.seen);
    assert_eq!(ev_a.seen[0]["type"], "line.state");
    for v in &ev_a.seen {
        assert!(v["type"].is_string());
    }
    let all = ev_a.seen.clone();
    ev_a.close().await;

    // Reconnect from the middle: exactly the rest, in order.
    let mid = all.len() as u64 / 2;
    let mut again = alpha.events(mid).await;
    for expected in &all[mid as usize..] {
        assert_eq!(&again.next().await, expected);
    }
    // Then live events continue the same numbering.
    alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    let next = again.next().await;
    assert_eq!(next["seq"].as_u64().unwrap(), all.len() as u64 + 1);

    // A `since` from the future means "from now on".
    let mut future = alpha.events(u64::MAX).await;
    let now = alpha.get("/v1/calls").await.1["seq"].as_u64().unwrap();
    alpha.ok(&format!("/v1/calls/{a}/unhold"), json!({})).await;
    assert_eq!(future.next().await["seq"].as_u64().unwrap(), now + 1);
    future.close().await;
    alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;

    // The snapshot carries the seq it is consistent with.
    let (status, list) = alpha.get("/v1/calls").await;
    assert_eq!(status, 200);
    assert!(list["seq"].as_u64().unwrap() > all.len() as u64);
    assert_eq!(list["calls"][0]["id"], a.as_str());
    assert_eq!(list["calls"][0]["state"], "onhold");
    again.close().await;

    // A plain GET is not a WebSocket.
    let (status, err) = alpha.get("/v1/events").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "invalparam");
    assert_eq!(Api::new(&s, None).get("/v1/events").await.0, 401);
    s.shutdown().await;
}

#[tokio::test]
async fn blind_and_consultation_transfer() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    beta.open("2004", &["owner"]).await;
    let mut ev_a = alpha.events(0).await;
    let mut ev_b = beta.events(0).await;

    // Blind: alpha sends the far party (2002) on to 2004.
    let (a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let (status, v) = beta
        .post(
            &format!("/v1/calls/{b}/blind-transfer"),
            json!({"to": "2004"}),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {v}");
    let new = ev_a
        .until("a call from the transfer", |v| {
            v["type"] == "call.state" && v["call"] == a.as_str()
        })
        .await;
    assert!(new["state"].is_string());
    let at_2004 = ev_b
        .until("call.new at 2004", |v| {
            v["type"] == "call.new" && v["address"] == "2004"
        })
        .await;
    assert_eq!(at_2004["reason"], "transfer");
    let c = at_2004["call"].as_str().unwrap().to_string();
    beta.ok(&format!("/v1/calls/{c}/answer"), json!({})).await;
    ev_a.state(&a, "connected").await;
    alpha.ok(&format!("/v1/calls/{a}/drop"), json!({})).await;
    alpha.delete(&format!("/v1/calls/{a}")).await;

    // Consultation: alpha holds 2001↔2002, consults 2003 (its own route
    // point), and completes the transfer.
    let (a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let setup = alpha
        .ok(&format!("/v1/calls/{a}/setup-transfer"), json!({}))
        .await;
    let x = setup["consult_call"].as_str().unwrap().to_string();
    assert_eq!(setup["calls"][0]["id"], x.as_str());
    assert_eq!(setup["calls"][0]["state"], "dialtone");
    assert_eq!(alpha.call(&a).await["state"], "onholdpendtransfer");
    let dialed = alpha
        .ok(&format!("/v1/calls/{x}/dial"), json!({"digits": "2003"}))
        .await;
    assert_eq!(dialed["id"], x.as_str());
    let offered = ev_a
        .until("call.new at 2003", |v| {
            v["type"] == "call.new" && v["address"] == "2003"
        })
        .await;
    let y = offered["call"].as_str().unwrap().to_string();
    alpha.ok(&format!("/v1/calls/{y}/answer"), json!({})).await;
    ev_a.state(&x, "connected").await;
    let (status, v) = alpha
        .post(
            &format!("/v1/calls/{a}/complete-transfer"),
            json!({"consult_call": x, "mode": "transfer"}),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {v}");
    // 2002 now talks to 2003.
    let y_info = alpha.call(&y).await;
    assert_eq!(y_info["state"], "connected");
    assert_eq!(y_info["bridge"], beta.call(&b).await["bridge"]);
    let (status, err) = alpha
        .post(
            &format!("/v1/calls/{a}/complete-transfer"),
            json!({"consult_call": "not-a-call"}),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    s.shutdown().await;
}

#[tokio::test]
async fn park_and_unpark() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let (a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;

    let parked = alpha.ok(&format!("/v1/calls/{a}/park"), json!({})).await;
    let slot = parked["parked_at"].as_str().unwrap().to_string();
    assert_eq!(slot, "7001");
    let ev = ev_b
        .until("park.parked", |v| v["type"] == "park.parked")
        .await;
    assert_eq!(ev["call"], b.as_str());
    assert_eq!(ev["slot"], "7001");
    // The parker's call is over; the parked party waits in the slot.
    let mine = alpha.get(&format!("/v1/calls/{a}")).await.1;
    assert!(
        mine["state"] == "idle" || mine["error"]["code"] == "invalcallhandle",
        "{mine}"
    );

    // Directed park into an occupied slot fails clearly.
    let (a2, _b2) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let (status, err) = alpha
        .post(&format!("/v1/calls/{a2}/park"), json!({"to": "7001"}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invaladdress");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("occupied")
    );

    let (status, err) = alpha
        .post("/v1/addresses/2003/unpark", json!({"from": "7002"}))
        .await;
    assert!((400..500).contains(&status), "{status} {err}");

    let (status, call) = alpha
        .post("/v1/addresses/2003/unpark", json!({"from": slot}))
        .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["address"], "2003");
    assert_eq!(call["reason"], "unpark");
    let ev = ev_b
        .until("park.unparked", |v| v["type"] == "park.unparked")
        .await;
    assert_eq!(ev["by"], call["id"]);
    let (status, status_2003) = alpha.get("/v1/addresses/2003").await;
    assert_eq!(status, 200);
    assert_eq!(status_2003["calls"][0]["id"], call["id"]);
    let (status, err) = alpha.post("/v1/addresses/2003/unpark", json!({})).await;
    assert_eq!(status, 400, "missing field: {err}");
    assert_eq!(err["error"]["code"], "invalparam");
    s.shutdown().await;
}

#[tokio::test]
async fn three_party_conference() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    beta.open("2004", &["owner"]).await;
    let mut ev_a = alpha.events(0).await;
    let mut ev_b = beta.events(0).await;
    let (a, _b) = connected_pair(&alpha, &beta, &mut ev_b).await;

    let conf = alpha
        .ok(
            &format!("/v1/calls/{a}/setup-conference"),
            json!({"parties": 3}),
        )
        .await;
    let conf_call = conf["conference_call"].as_str().unwrap().to_string();
    let x = conf["consult_call"].as_str().unwrap().to_string();
    assert_eq!(conf["calls"].as_array().unwrap().len(), 2);
    alpha
        .ok(&format!("/v1/calls/{x}/dial"), json!({"digits": "2004"}))
        .await;
    let at_2004 = ev_b
        .until("call.new at 2004", |v| {
            v["type"] == "call.new" && v["address"] == "2004"
        })
        .await;
    let c = at_2004["call"].as_str().unwrap().to_string();
    beta.ok(&format!("/v1/calls/{c}/answer"), json!({})).await;
    ev_a.state(&x, "connected").await;
    let added = alpha
        .ok(
            &format!("/v1/calls/{conf_call}/add"),
            json!({"consult_call": x}),
        )
        .await;
    assert_eq!(added["id"], conf_call.as_str());
    ev_a.state(&x, "conferenced").await;

    let (status, related) = alpha.get(&format!("/v1/calls/{a}/related")).await;
    assert_eq!(status, 200, "{related}");
    let calls: Vec<&str> = related["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(calls[0], conf_call);
    assert!(
        calls.contains(&a.as_str()) && calls.contains(&x.as_str()),
        "{related}"
    );

    let removed = alpha
        .ok(&format!("/v1/calls/{x}/remove-from-conference"), json!({}))
        .await;
    assert!(
        removed.is_null() || removed["id"] == x.as_str(),
        "{removed}"
    );
    let (status, err) = alpha
        .post(&format!("/v1/calls/{a}/add"), json!({"consult_call": x}))
        .await;
    assert!((400..500).contains(&status), "{status} {err}");
    s.shutdown().await;
}

#[tokio::test]
async fn error_shapes_and_statuses() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2001", &["owner"]).await;
    let check = |status: u16, body: &serde_json::Value, want: u16, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
    };
    let (st, b) = alpha.post("/v1/calls/call-424242/answer", json!({})).await;
    check(st, &b, 404, "invalcallhandle");
    let (st, b) = alpha.post("/v1/calls/garbage/answer", json!({})).await;
    check(st, &b, 404, "invalcallhandle");
    let (st, b) = alpha.post_raw("/v1/calls", "{not json").await;
    check(st, &b, 400, "invalparam");
    let (st, b) = alpha.post("/v1/calls", json!({"to": "2002"})).await;
    check(st, &b, 400, "invalparam");
    let (st, b) = alpha
        .post(
            "/v1/calls",
            json!({"from": "2001", "to": "2002", "colour": "red"}),
        )
        .await;
    check(st, &b, 400, "invalparam");
    let (st, b) = alpha
        .post("/v1/calls", json!({"from": "2001", "to": "x!y"}))
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = alpha
        .post("/v1/calls", json!({"from": "2001", "to": "+1 (425) 8"}))
        .await;
    check(st, &b, 400, "invaladdress");
    let (st, b) = alpha.delete("/v1/completions/compl-99").await;
    check(st, &b, 404, "invalcompletionid");
    let (st, b) = alpha.get("/v1/nothing-here").await;
    assert_eq!(st, 404, "{b}");
    assert!(b["error"]["code"].is_string());

    // Dial tone call, then a state error.
    let (st, call) = alpha.post("/v1/calls", json!({"from": "2001"})).await;
    assert_eq!(st, 201, "{call}");
    assert_eq!(call["state"], "dialtone");
    let id = call["id"].as_str().unwrap();
    let (st, b) = alpha
        .post(&format!("/v1/calls/{id}/answer"), json!({}))
        .await;
    check(st, &b, 409, "invalcallstate");
    // A mode that does not exist answers the mode's own error (issue 18).
    // The return values TAPI lists for each operation
    // (shared/tapi/README.md): lineCompleteCall "invalcallcomplmode,
    // invalcallstate"; lineCompleteTransfer "invaltransfermode,
    // invalconsultcallhandle, invalcallstate"; linePark "invalparkmode,
    // invaladdress, invalcallstate"; lineHandoff "targetnotfound,
    // targetself, invalmediamode"; LINEERR_INVALMEDIAMODE 0x8000002F
    // (reference.md). Forwarding's mode error is tapir's invalforwardmode.
    let (st, b) = alpha
        .post(
            &format!("/v1/calls/{id}/complete"),
            json!({"mode": "sometimes"}),
        )
        .await;
    check(st, &b, 400, "invalcallcomplmode");
    for (op, body, code) in [
        (
            "complete-transfer",
            json!({"consult_call": id, "mode": "sideways"}),
            "invaltransfermode",
        ),
        ("finish", json!({"mode": "sideways"}), "invaltransfermode"),
        ("park", json!({"mode": "somewhere"}), "invalparkmode"),
        ("park", json!({"mode": "directed"}), "invalparkmode"),
        (
            "handoff",
            json!({"media_mode": "telepathy"}),
            "invalmediamode",
        ),
        (
            "media-mode",
            json!({"media_mode": "telepathy"}),
            "invalmediamode",
        ),
    ] {
        let (st, b) = alpha.post(&format!("/v1/calls/{id}/{op}"), body).await;
        assert_eq!(st, 400, "{op}: {b}");
        assert_eq!(b["error"]["code"], code, "{op}: {b}");
    }
    let (st, b) = alpha
        .put(
            "/v1/addresses/2001/forwarding",
            json!({"rules": [{"mode": "whenever", "to": "2002"}]}),
        )
        .await;
    check(st, &b, 400, "invalforwardmode");
    let (st, b) = alpha
        .post(&format!("/v1/calls/{id}/handoff"), json!({}))
        .await;
    check(st, &b, 400, "invalparam");
    // The server keeps serving.
    assert_eq!(alpha.get("/healthz").await.0, 200);
    s.shutdown().await;
}

#[tokio::test]
async fn translate_locations_and_cards() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let (st, out) = alpha
        .post("/v1/translate", json!({"address": "+1 (206) 555-1212"}))
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["country_code"], 1);
    assert!(
        out["dialable"].as_str().unwrap().contains("2065551212"),
        "{out}"
    );
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "longdistance"),
        "{out}"
    );
    let (st, b) = alpha
        .post("/v1/translate", json!({"address": "+1 (2"}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["code"], "invaladdress");
    let (st, b) = alpha
        .post(
            "/v1/translate",
            json!({"address": "+1 206 555 1212", "location": "mars"}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["code"], "invallocation");

    let locations = json!({
        "current": "paris",
        "locations": [
            {"id": "paris", "name": "Paris", "country_code": 33, "area_code": "1", "local_access": "0"},
            {"id": "seattle", "name": "Seattle", "country_code": 1, "area_code": "206"}
        ]
    });
    let (st, b) = alpha.put("/v1/locations", locations).await;
    assert_eq!(st, 200, "{b}");
    let (st, got) = alpha.get("/v1/locations").await;
    assert_eq!(st, 200);
    assert_eq!(got["current"], "paris");
    assert_eq!(got["locations"].as_array().unwrap().len(), 2);
    let (st, out) = alpha
        .post("/v1/translate", json!({"address": "+1 (206) 555-1212"}))
        .await;
    assert_eq!(st, 200);
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "international"),
        "{out}"
    );

    let (st, b) = alpha
        .put("/v1/cards", json!({"cards": [{"id": "c1", "name": "Card", "pin": "1234", "rules": {"international": "0W1234HEFG"}}]}))
        .await;
    assert_eq!(st, 200, "{b}");
    let (_, cards) = alpha.get("/v1/cards").await;
    assert_eq!(cards["cards"][0]["id"], "c1");
    assert!(
        cards["cards"][0].get("pin").is_none(),
        "the PIN is write-only: {cards}"
    );
    let (st, _) = alpha
        .put(
            "/v1/locations",
            json!({"current": "nowhere", "locations": []}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        Api::new(&s, None)
            .post("/v1/translate", json!({"address": "1"}))
            .await
            .0,
        401
    );
    s.shutdown().await;
}

#[tokio::test]
async fn openapi_lists_every_path() {
    let s = server().await;
    let anon = Api::new(&s, None);
    let (status, doc) = anon.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let want: &[(&str, &str)] = &[
        ("/v1/lines", "get"),
        ("/v1/lines/{line}/open", "post"),
        ("/v1/lines/{line}/close", "post"),
        ("/v1/addresses/{address}", "get"),
        ("/v1/addresses/{address}/forwarding", "put"),
        ("/v1/lines/{line}/forwarding", "put"),
        ("/v1/addresses/{address}/pickup", "post"),
        ("/v1/addresses/{address}/unpark", "post"),
        ("/v1/calls", "post"),
        ("/v1/calls", "get"),
        ("/v1/calls/{call}", "get"),
        ("/v1/calls/{call}", "delete"),
        ("/v1/calls/{call}/answer", "post"),
        ("/v1/calls/{call}/accept", "post"),
        ("/v1/calls/{call}/dial", "post"),
        ("/v1/calls/{call}/drop", "post"),
        ("/v1/calls/{call}/hold", "post"),
        ("/v1/calls/{call}/unhold", "post"),
        ("/v1/calls/{call}/swap-hold", "post"),
        ("/v1/calls/{call}/blind-transfer", "post"),
        ("/v1/calls/{call}/setup-transfer", "post"),
        ("/v1/calls/{call}/complete-transfer", "post"),
        ("/v1/calls/{call}/finish", "post"),
        ("/v1/calls/{call}/setup-conference", "post"),
        ("/v1/calls/{call}/prepare-add", "post"),
        ("/v1/calls/{call}/add", "post"),
        ("/v1/calls/{call}/remove-from-conference", "post"),
        ("/v1/calls/{call}/related", "get"),
        ("/v1/calls/{call}/redirect", "post"),
        ("/v1/calls/{call}/park", "post"),
        ("/v1/calls/{call}/complete", "post"),
        ("/v1/completions/{id}", "delete"),
        ("/v1/calls/{call}/secure", "post"),
        ("/v1/calls/{call}/handoff", "post"),
        ("/v1/calls/{call}/media-mode", "post"),
        ("/v1/calls/{call}/digits", "post"),
        ("/v1/calls/{call}/privilege", "post"),
        ("/v1/calls/{call}/play", "post"),
        ("/v1/calls/{call}/stop-media", "post"),
        ("/v1/translate", "post"),
        ("/v1/locations", "get"),
        ("/v1/locations", "put"),
        ("/v1/cards", "get"),
        ("/v1/cards", "put"),
        ("/v1/events", "get"),
        ("/v1/calls/{call}/media", "get"),
        ("/v1/calls/{call}/record", "post"),
        ("/v1/recordings", "get"),
        ("/v1/recordings/{id}", "get"),
        ("/v1/recordings/{id}", "delete"),
        ("/v1/recordings/{id}/audio", "get"),
        ("/v1/openapi.json", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/v1/admin/lines", "post"),
        ("/v1/admin/lines/{address}", "delete"),
        ("/v1/admin/apps/{name}", "put"),
        ("/v1/admin/trunks", "get"),
        ("/v1/admin/pickup-groups/{name}", "put"),
        ("/v1/admin/park", "put"),
        ("/v1/admin/cdr", "get"),
        ("/v1/admin/cdr/{id}", "get"),
        ("/v1/admin/calls/{call}/quality", "get"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks/{id}", "put"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/admin/webhooks", "post"),
        ("/v1/admin/webhooks/{id}", "get"),
        ("/v1/admin/subscriptions", "get"),
        ("/v1/calls/{call}/gather", "post"),
        ("/v1/calls/{call}/tone", "post"),
        ("/v1/calls/{call}/monitor", "put"),
    ];
    for (path, method) in want {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        paths.len(),
        69,
        "paths: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["schemas"]["CallObject"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(
        doc["paths"]["/v1/calls/{call}/hold"]["post"]["responses"]["200"]["headers"]
            ["tapir-request"]
            .is_object(),
        "the request header is documented"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_reader_whose_events_fell_out_of_the_journal_is_told_to_resync() {
    let s = support::server_with(|c| c.http.journal_capacity = 4).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let (a, _) = connected_pair(&alpha, &beta, &mut ev_b).await;
    for op in ["hold", "unhold", "hold", "unhold"] {
        alpha.ok(&format!("/v1/calls/{a}/{op}"), json!({})).await;
    }
    let mut late = alpha.events(0).await;
    let msg = late.next().await;
    assert_eq!(msg["type"], "stream.resync", "{msg}");
    assert_eq!(msg["last_seq"], 0);
    // The snapshot's seq is a valid place to resume from.
    let (_, list) = alpha.get("/v1/calls").await;
    let seq = list["seq"].as_u64().unwrap();
    let mut resumed = alpha.events(seq).await;
    alpha.ok(&format!("/v1/calls/{a}/hold"), json!({})).await;
    let next = resumed.next().await;
    assert_eq!(next["seq"].as_u64().unwrap(), seq + 1, "{next}");
    s.shutdown().await;
}

#[tokio::test]
async fn every_event_once_in_order_across_a_reconnect_during_a_transfer() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let mut first = alpha.events(0).await;
    let (a, _b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let setup = alpha
        .ok(&format!("/v1/calls/{a}/setup-transfer"), json!({}))
        .await;
    let x = setup["consult_call"].as_str().unwrap().to_string();
    first.state(&a, "onholdpendtransfer").await;
    // Drop the socket in the middle of the transfer.
    let last = first.seen.last().unwrap()["seq"].as_u64().unwrap();
    let before = first.seen.clone();
    first.close().await;
    alpha
        .ok(&format!("/v1/calls/{x}/dial"), json!({"digits": "2003"}))
        .await;
    let (_, status) = alpha.get("/v1/addresses/2003").await;
    let y = status["calls"][0]["id"].as_str().unwrap().to_string();
    alpha.ok(&format!("/v1/calls/{y}/answer"), json!({})).await;
    alpha
        .ok(
            &format!("/v1/calls/{a}/complete-transfer"),
            json!({"consult_call": x}),
        )
        .await;
    // Reconnect: the rest arrives once, in order, up to the last event.
    let (_, list) = alpha.get("/v1/calls").await;
    let end = list["seq"].as_u64().unwrap();
    let mut second = alpha.events(last).await;
    let mut seqs: Vec<u64> = before.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    while seqs.last() != Some(&end) {
        seqs.push(second.next().await["seq"].as_u64().unwrap());
    }
    let want: Vec<u64> = (1..=end).collect();
    assert_eq!(seqs, want);
    assert!(
        second.seen.iter().any(|v| v["type"] == "call.state"
            && v["call"] == y.as_str()
            && v["state"] == "connected"),
        "{:#?}",
        second.seen
    );
    s.shutdown().await;
}

/// lineForward with bAllAddresses TRUE: "all addresses on the line are
/// forwarded".
#[tokio::test]
async fn forwarding_every_address_of_a_line() {
    // Beta's line 2004 has a second address, 2005.
    let s = support::server_with(|c| {
        let l = c.lines.iter_mut().find(|l| l.address == "2004").unwrap();
        l.more_addresses = vec!["2005".into()];
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    beta.open("2004", &["owner"]).await;
    let mut ev = beta.events(0).await;
    let rules = json!({"rules": [{"mode": "unconditional", "to": "2002"}], "no_answer_rings": 4});
    let (st, v) = beta.put("/v1/lines/2004/forwarding", rules.clone()).await;
    assert_eq!(st, 200, "{v}");
    let addresses: Vec<&str> = v["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["2004", "2005"], "{v}");
    for a in v["addresses"].as_array().unwrap() {
        assert_eq!(a["forwarding"]["rules"][0]["to"], "2002", "{v}");
        assert_eq!(a["forwarding"]["no_answer_rings"], 4, "{v}");
    }
    for address in ["2004", "2005"] {
        ev.until(address, |e| {
            e["type"] == "address.forwarding" && e["address"] == address
        })
        .await;
        let (_, status) = beta.get(&format!("/v1/addresses/{address}")).await;
        assert_eq!(status["forwarding"]["rules"][0]["mode"], "unconditional");
    }
    // One address cannot forward to itself, so the line keeps its rules.
    let (st, v) = beta
        .put(
            "/v1/lines/2004/forwarding",
            json!({"rules": [{"mode": "busy", "to": "2005"}]}),
        )
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("invalparam")));
    let (_, status) = beta.get("/v1/addresses/2005").await;
    assert_eq!(status["forwarding"]["rules"][0]["mode"], "unconditional");
    // Another app's line, a monitor-only app, an unknown line.
    let (st, v) = alpha.put("/v1/lines/2004/forwarding", rules.clone()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("noprivilege"))
    );
    let (st, v) = watcher
        .put("/v1/lines/2004/forwarding", rules.clone())
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("noprivilege"))
    );
    let (st, _) = beta.put("/v1/lines/nosuch/forwarding", rules).await;
    assert_eq!(st, 404);
    // An empty list cancels forwarding everywhere.
    let (st, v) = beta
        .put("/v1/lines/2004/forwarding", json!({"rules": []}))
        .await;
    assert_eq!(st, 200, "{v}");
    for a in v["addresses"].as_array().unwrap() {
        assert_eq!(a["forwarding"]["rules"], json!([]), "{v}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn the_other_operations_over_http() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner", "monitor"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    beta.open("2004", &["owner"]).await;
    let mut ev_a = alpha.events(0).await;
    let mut ev_b = beta.events(0).await;

    // Forwarding: set, read back, event, cancel.
    let (st, v) = beta
        .put(
            "/v1/addresses/2004/forwarding",
            json!({"rules": [{"mode": "unconditional", "to": "2002"}], "no_answer_rings": 3}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["forwarding"]["rules"][0]["mode"], "unconditional");
    assert_eq!(v["forwarding"]["no_answer_rings"], 3);
    ev_b.until("address.forwarding", |v| v["type"] == "address.forwarding")
        .await;
    let (st, v) = beta
        .put("/v1/addresses/2004/forwarding", json!({"rules": []}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["forwarding"]["rules"], json!([]));
    let (st, v) = beta
        .put(
            "/v1/addresses/2004/forwarding",
            json!({"rules": [{"mode": "sometimes"}]}),
        )
        .await;
    assert_eq!(st, 400, "{v}");

    // Pickup naming neither target nor group is call-waiting pickup at the
    // address itself: nothing waits at 2001.
    let (st, v) = alpha.post("/v1/addresses/2001/pickup", json!({})).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invaladdress"))
    );

    // Accept, then redirect an offered call.
    let first = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "2002"}))
        .await;
    let first = first["id"].as_str().unwrap().to_string();
    let offered = ev_b
        .until("call.new at 2002", |v| {
            v["type"] == "call.new" && v["address"] == "2002"
        })
        .await;
    let b = offered["call"].as_str().unwrap().to_string();
    let accepted = beta.ok(&format!("/v1/calls/{b}/accept"), json!({})).await;
    assert_eq!(accepted["state"], "accepted", "{accepted}");
    let (st, v) = beta
        .post(&format!("/v1/calls/{b}/redirect"), json!({"to": "2004"}))
        .await;
    assert!(st == 200 || st == 204, "{st} {v}");
    let at_2004 = ev_b
        .until("call.new at 2004", |v| {
            v["type"] == "call.new" && v["address"] == "2004"
        })
        .await;
    assert_eq!(at_2004["reason"], "redirect");
    let c = at_2004["call"].as_str().unwrap().to_string();

    // Pickup: 2003 takes the call ringing at 2004.
    let (st, picked) = alpha
        .post("/v1/addresses/2003/pickup", json!({"target": "2004"}))
        .await;
    assert_eq!(st, 200, "{picked}");
    assert_eq!(picked["address"], "2003");
    assert_eq!(picked["reason"], "pickup");
    let p = picked["id"].as_str().unwrap().to_string();
    ev_b.state(&c, "idle").await;
    let p_now = alpha.call(&p).await;
    assert!(
        p_now["state"] == "connected" || p_now["state"] == "offering",
        "{p_now}"
    );
    if p_now["state"] == "offering" {
        alpha.ok(&format!("/v1/calls/{p}/answer"), json!({})).await;
    }
    ev_a.state(&p, "connected").await;

    // Digits, secure, privilege and handoff on the picked-up call.
    let d = alpha
        .ok(&format!("/v1/calls/{p}/digits"), json!({"digits": "12#"}))
        .await;
    assert_eq!(d["id"], p.as_str());
    let secured = alpha.ok(&format!("/v1/calls/{p}/secure"), json!({})).await;
    assert_eq!(secured["secure"], true);
    let (st, v) = alpha
        .post(&format!("/v1/calls/{p}/handoff"), json!({"app": "nobody"}))
        .await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "targetnotfound");
    let (st, v) = alpha
        .post(
            &format!("/v1/calls/{p}/privilege"),
            json!({"privilege": "monitor"}),
        )
        .await;
    assert!((200..500).contains(&st), "{st} {v}");

    // Swap hold between two calls of 2001.
    let (a1, _) = connected_pair(&alpha, &beta, &mut ev_b).await;
    alpha.ok(&format!("/v1/calls/{a1}/hold"), json!({})).await;
    let (a2, _) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let swapped = alpha
        .ok(&format!("/v1/calls/{a2}/swap-hold"), json!({"with": a1}))
        .await;
    assert_eq!(swapped["state"], "onhold", "{swapped}");
    assert_eq!(alpha.call(&a1).await["state"], "connected");

    // Finish a consultation as a conference.
    let setup = alpha
        .ok(&format!("/v1/calls/{a1}/setup-transfer"), json!({}))
        .await;
    let x = setup["consult_call"].as_str().unwrap().to_string();
    alpha
        .ok(&format!("/v1/calls/{x}/dial"), json!({"digits": "2004"}))
        .await;
    let at = ev_b
        .until("call.new at 2004", |v| {
            v["type"] == "call.new" && v["address"] == "2004"
        })
        .await;
    let y = at["call"].as_str().unwrap().to_string();
    beta.ok(&format!("/v1/calls/{y}/answer"), json!({})).await;
    ev_a.state(&x, "connected").await;
    let (st, fin) = alpha
        .post(
            &format!("/v1/calls/{x}/finish"),
            json!({"mode": "conference"}),
        )
        .await;
    assert_eq!(st, 200, "{fin}");
    let conf = fin["conference_call"].as_str().unwrap().to_string();
    let (_, related) = alpha.get(&format!("/v1/calls/{conf}/related")).await;
    assert_eq!(related["calls"][0], conf.as_str(), "{related}");

    // Every call appearance of 2001 is in use: 503 with TAPI's code.
    let (st, v) = alpha
        .post(&format!("/v1/calls/{conf}/prepare-add"), json!({}))
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "callunavail");
    for call in [&a2, &first] {
        alpha.ok(&format!("/v1/calls/{call}/drop"), json!({})).await;
        assert_eq!(alpha.delete(&format!("/v1/calls/{call}")).await.0, 204);
    }
    // Now prepare-add gives a consultation call on the conference.
    let prep = alpha
        .ok(&format!("/v1/calls/{conf}/prepare-add"), json!({}))
        .await;
    assert!(prep["consult_call"].as_str().unwrap().starts_with("call-"));
    s.shutdown().await;
}

#[tokio::test]
async fn call_completion_and_cancel() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let a = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "2002"}))
        .await;
    let a = a["id"].as_str().unwrap().to_string();
    ev_b.until("call.new", |v| v["type"] == "call.new").await;
    let (st, v) = alpha
        .post(
            &format!("/v1/calls/{a}/complete"),
            json!({"mode": "callback"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["completion_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("compl-"), "{v}");
    let (st, _) = alpha.delete(&format!("/v1/completions/{id}")).await;
    assert_eq!(st, 204);
    let (st, v) = alpha.delete(&format!("/v1/completions/{id}")).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "invalcompletionid");
    s.shutdown().await;
}

#[tokio::test]
async fn make_call_translates_a_canonical_destination_from_the_location() {
    let s = support::server_with(|c| {
        let mut line = c.lines[0].clone();
        line.address = "5552002".into();
        c.lines.push(line);
        c.apps[1].lines.push("5552002".into());
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("5552002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    // From the default location (country 1, area 425) this is a local call.
    let (st, call) = alpha
        .post(
            "/v1/calls",
            json!({"from": "2001", "to": "+1 (425) 555-2002", "location": "default"}),
        )
        .await;
    assert_eq!(st, 201, "{call}");
    assert_eq!(call["called"]["address"], "5552002", "{call}");
    let new = ev_b.until("call.new", |v| v["type"] == "call.new").await;
    assert_eq!(new["address"], "5552002");
    let (st, err) = alpha
        .post(
            "/v1/calls",
            json!({"from": "2001", "to": "+1 (425) 555-2002", "location": "nowhere"}),
        )
        .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(err["error"]["code"], "invallocation");
    s.shutdown().await;
}
