//! Busy lamps under attack (issue 14), raw SIP over UDP against a real
//! server: the `[subscriptions]` limits of the TOML bound what one phone
//! and all phones may hold and for how long; a stranger without the
//! watcher's credentials or its address can neither subscribe, take over a
//! subscription's NOTIFYs nor end it; and tapir keeps serving.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;
use support::server_with;
use support::sip::{Peer, digest, header, status, tag_of};
use tapir_server::{Config, RunningServer};

/// tapir on UDP with phones 1001 (`pw`) and 1002 (`pw2`) and the
/// subscription limits of `limits` (a `[subscriptions]` table).
async fn tapir(limits: &str) -> RunningServer {
    let limits = limits.to_owned();
    server_with(move |c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        let extra = Config::from_toml(&format!(
            "[[lines]]\naddress = \"1002\"\nkind = \"phone\"\npassword = \"pw2\"\n{limits}"
        ))
        .unwrap();
        c.lines.extend(extra.lines);
        c.subscriptions = extra.subscriptions;
    })
    .await
}

struct Sub<'a> {
    user: &'a str,
    target: &'a str,
    n: u32,
    expires: &'a str,
}

fn subscribe(peer: &Peer, s: &Sub, auth: &str) -> String {
    let local = peer.addr();
    let Sub {
        user,
        target,
        n,
        expires,
    } = s;
    format!(
        "SUBSCRIBE sip:{target}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-sec-{user}-{target}-{n}-{a}\n\
         Max-Forwards: 70\n\
         From: <sip:{user}@127.0.0.1>;tag=w{n}\n\
         To: <sip:{target}@127.0.0.1>\n\
         Call-ID: sec-{user}-{target}-{n}\n\
         CSeq: {cseq} SUBSCRIBE\n\
         Contact: <sip:{user}@{local}>\n\
         Event: dialog\n\
         Expires: {expires}\n{auth}Content-Length: 0\n\n",
        a = !auth.is_empty() as u8,
        cseq = 1 + !auth.is_empty() as u32,
    )
}

/// `s.user` SUBSCRIBEs with its digest: the final response.
async fn subscribed(peer: &Peer, password: &str, s: &Sub<'_>) -> String {
    let challenge = peer.request(&subscribe(peer, s, "")).await;
    assert_eq!(status(&challenge), 407, "{challenge}");
    let uri = format!("sip:{}@127.0.0.1", s.target);
    let auth = digest(&challenge, s.user, password, "SUBSCRIBE", &uri);
    peer.request(&subscribe(
        peer,
        s,
        &format!("Proxy-Authorization: {auth}\n"),
    ))
    .await
}

fn sub<'a>(user: &'a str, target: &'a str, n: u32, expires: &'a str) -> Sub<'a> {
    Sub {
        user,
        target,
        n,
        expires,
    }
}

#[tokio::test]
async fn the_toml_limits_bound_subscriptions_per_phone_in_all_and_in_time() {
    let server = tapir(
        "[subscriptions]\nmin_expires = 30\nmax_expires = 120\nmax_per_watcher = 3\nmax_total = 4\n",
    )
    .await;
    let sip = server.sip_addr.unwrap();
    let phone = Peer::bind(sip).await;
    // A huge Expires is shortened to max_expires (3600 without the key).
    let r = subscribed(&phone, "pw", &sub("1001", "1002", 1, "4294967295")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Expires"), "120");
    // Too short: 423 with this server's Min-Expires; not a number: 400
    // (both before the challenge: the request is refused as it stands).
    let r = phone
        .request(&subscribe(&phone, &sub("1001", "1002", 2, "20"), ""))
        .await;
    assert_eq!(status(&r), 423, "{r}");
    assert_eq!(header(&r, "Min-Expires"), "30");
    let r = phone
        .request(&subscribe(&phone, &sub("1001", "1002", 3, "-5"), ""))
        .await;
    assert_eq!(status(&r), 400, "{r}");
    // Beyond 32 bits: read as the largest value (RFC 3261 §20.19), so
    // shortened too.
    let r = subscribed(
        &phone,
        "pw",
        &sub("1001", "1002", 13, "99999999999999999999"),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Expires"), "120");
    // max_per_watcher = 3: the fourth of one phone is refused.
    for n in 4..5 {
        let r = subscribed(&phone, "pw", &sub("1001", "7001", n, "60")).await;
        assert_eq!(status(&r), 200, "{r}");
    }
    for n in 6..20 {
        let r = subscribed(&phone, "pw", &sub("1001", "7002", n, "60")).await;
        assert_eq!(status(&r), 403, "{r}");
    }
    // max_total = 4: another phone gets one, then 503 with Retry-After.
    let other = Peer::bind(sip).await;
    let r = subscribed(&other, "pw2", &sub("1002", "1001", 1, "60")).await;
    assert_eq!(status(&r), 200, "{r}");
    let r = subscribed(&other, "pw2", &sub("1002", "1001", 2, "60")).await;
    assert_eq!(status(&r), 503, "{r}");
    assert!(!header(&r, "Retry-After").is_empty(), "{r}");
    let api = support::Api::new(&server, Some("admin-secret"));
    let (code, body) = api.get("/v1/admin/subscriptions").await;
    assert_eq!(code, 200);
    let list = body["subscriptions"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{body}");
    assert!(
        list.iter()
            .all(|s| s["expires_in"].as_u64().unwrap() <= 120),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stranger_can_neither_subscribe_nor_take_over_nor_end_a_subscription() {
    let server = tapir("").await;
    let sip = server.sip_addr.unwrap();
    let stranger = Peer::bind(sip).await;
    // Without credentials: a challenge and nothing else.
    let r = stranger
        .request(&subscribe(&stranger, &sub("1001", "1002", 1, "600"), ""))
        .await;
    assert_eq!(status(&r), 407);
    assert!(
        stranger
            .next_within(Duration::from_millis(500), |t| t.starts_with("NOTIFY"))
            .await
            .is_none(),
        "no lamp state before authentication"
    );
    // 1001 subscribes to 1002.
    let phone = Peer::bind(sip).await;
    let ok = subscribed(&phone, "pw", &sub("1001", "1002", 2, "600")).await;
    assert_eq!(status(&ok), 200, "{ok}");
    let notify = phone
        .next("the first NOTIFY", |t| t.starts_with("NOTIFY"))
        .await;
    phone.respond(&notify, 200, "", "").await;
    let tapir_tag = tag_of(&header(&ok, "To"));
    // The stranger knows the dialog (Call-ID and both tags) and refreshes
    // it, then unsubscribes it, from its own address: 403 both times.
    for (n, expires) in [(3, "600"), (4, "0")] {
        let hijack = format!(
            "SUBSCRIBE sip:1002@127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {s};branch=z9hG4bK-hijack-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:1001@127.0.0.1>;tag=w2\n\
             To: <sip:1002@127.0.0.1>;tag={tapir_tag}\n\
             Call-ID: sec-1001-1002-2\n\
             CSeq: {n} SUBSCRIBE\n\
             Contact: <sip:evil@{s}>\n\
             Event: dialog\n\
             Expires: {expires}\n\n",
            s = stranger.addr()
        );
        let r = stranger.request(&hijack).await;
        assert_eq!(status(&r), 403, "{r}");
    }
    assert!(
        stranger
            .next_within(Duration::from_millis(500), |t| t.starts_with("NOTIFY"))
            .await
            .is_none(),
        "the stranger gets no NOTIFY"
    );
    let api = support::Api::new(&server, Some("admin-secret"));
    let (_, body) = api.get("/v1/admin/subscriptions").await;
    let list = body["subscriptions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "still subscribed: {body}");
    assert_eq!(list[0]["contact"], phone.addr().to_string(), "{body}");
    // tapir keeps serving the real watcher: its refresh works.
    let refresh = format!(
        "SUBSCRIBE sip:1002@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {p};branch=z9hG4bK-refresh-5\n\
         Max-Forwards: 70\n\
         From: <sip:1001@127.0.0.1>;tag=w2\n\
         To: <sip:1002@127.0.0.1>;tag={tapir_tag}\n\
         Call-ID: sec-1001-1002-2\n\
         CSeq: 5 SUBSCRIBE\n\
         Contact: <sip:1001@{p}>\n\
         Event: dialog\n\
         Expires: 600\n\n",
        p = phone.addr()
    );
    assert_eq!(status(&phone.request(&refresh).await), 200);
    server.shutdown().await;
}

/// An in-dialog SUBSCRIBE (refresh) of `user`'s subscription `n`.
fn refresh(peer: &Peer, user: &str, target: &str, n: u32, tapir_tag: &str, cseq: u32) -> String {
    let p = peer.addr();
    format!(
        "SUBSCRIBE sip:{target}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {p};branch=z9hG4bK-refresh-{user}-{n}-{cseq}\n\
         Max-Forwards: 70\n\
         From: <sip:{user}@127.0.0.1>;tag=w{n}\n\
         To: <sip:{target}@127.0.0.1>;tag={tapir_tag}\n\
         Call-ID: sec-{user}-{target}-{n}\n\
         CSeq: {cseq} SUBSCRIBE\n\
         Contact: <sip:{user}@{p}>\n\
         Event: dialog\n\
         Expires: 600\n\n"
    )
}

#[tokio::test]
async fn a_watcher_whose_right_is_taken_away_loses_its_lamps() {
    let server = tapir("").await;
    let sip = server.sip_addr.unwrap();
    let api = support::Api::new(&server, Some("admin-secret"));
    // 1001 watches 1002, 1002 watches 1001.
    let phone = Peer::bind(sip).await;
    let ok = subscribed(&phone, "pw", &sub("1001", "1002", 1, "600")).await;
    assert_eq!(status(&ok), 200, "{ok}");
    let n = phone
        .next("the first NOTIFY", |t| t.starts_with("NOTIFY"))
        .await;
    phone.respond(&n, 200, "", "").await;
    let tag_1001 = tag_of(&header(&ok, "To"));
    let other = Peer::bind(sip).await;
    let ok = subscribed(&other, "pw2", &sub("1002", "1001", 2, "600")).await;
    assert_eq!(status(&ok), 200, "{ok}");
    let n = other
        .next("the first NOTIFY", |t| t.starts_with("NOTIFY"))
        .await;
    other.respond(&n, 200, "", "").await;
    let tag_1002 = tag_of(&header(&ok, "To"));

    // The operator narrows 1001's watch list: its refresh is refused, and a
    // last NOTIFY without state ends the subscription.
    let (code, body) = api
        .put(
            "/v1/admin/lines/1001",
            serde_json::json!({"address": "1001", "kind": "phone", "watch": ["7001"]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let r = phone
        .request(&refresh(&phone, "1001", "1002", 1, &tag_1001, 3))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    let last = phone
        .next("the last NOTIFY", |t| t.starts_with("NOTIFY"))
        .await;
    assert_eq!(
        header(&last, "Subscription-State"),
        "terminated;reason=rejected"
    );
    assert!(!last.contains("dialog-info"), "no state: {last}");

    // The operator removes line 1002: its phone's subscription ends too.
    let (code, body) = api.delete("/v1/admin/lines/1002").await;
    assert!(code == 200 || code == 204, "{code} {body}");
    let r = other
        .request(&refresh(&other, "1002", "1001", 2, &tag_1002, 3))
        .await;
    assert_eq!(status(&r), 403, "{r}");
    let (_, body) = api.get("/v1/admin/subscriptions").await;
    assert_eq!(body["subscriptions"], serde_json::json!([]), "{body}");
    server.shutdown().await;
}
