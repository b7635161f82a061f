//! Busy lamp subscriptions against a real server (issue 14): raw SIP over
//! UDP. A SUBSCRIBE is challenged and admitted by digest like an INVITE;
//! the address must exist (a line's or a park slot's) and the watcher's
//! line's `watch` list must allow it; one phone's flood of subscriptions
//! meets its limit and tapir keeps serving.

#![allow(clippy::unwrap_used)]

mod support;

use support::server_with;
use support::sip::{Peer, digest, header, status};
use tapir_server::{Config, RunningServer};

/// tapir on UDP with phones 1001 (`pw`, watches anything) and 1002
/// (`pw2`, may watch only 1001 and park slot 7001).
async fn tapir() -> RunningServer {
    server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        let extra = Config::from_toml(
            "[[lines]]\naddress = \"1002\"\nkind = \"phone\"\npassword = \"pw2\"\n\
             watch = [\"1001\", \"7001\"]\n",
        )
        .unwrap();
        c.lines.extend(extra.lines);
    })
    .await
}

fn subscribe(peer: &Peer, user: &str, target: &str, n: u32, auth: &str) -> String {
    let local = peer.addr();
    format!(
        "SUBSCRIBE sip:{target}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-sub-{user}-{target}-{n}-{a}\n\
         Max-Forwards: 70\n\
         From: <sip:{user}@127.0.0.1>;tag=w{n}\n\
         To: <sip:{target}@127.0.0.1>\n\
         Call-ID: sub-{user}-{target}-{n}\n\
         CSeq: {cseq} SUBSCRIBE\n\
         Contact: <sip:{user}@{local}>\n\
         Event: dialog\n\
         Expires: 600\n{auth}Content-Length: 0\n\n",
        a = !auth.is_empty() as u8,
        cseq = 1 + !auth.is_empty() as u32,
    )
}

/// `user` SUBSCRIBEs to `target` with its digest: the final status.
async fn subscribed(peer: &Peer, user: &str, password: &str, target: &str, n: u32) -> u16 {
    let challenge = peer.request(&subscribe(peer, user, target, n, "")).await;
    assert_eq!(status(&challenge), 407, "{challenge}");
    let uri = format!("sip:{target}@127.0.0.1");
    let auth = digest(&challenge, user, password, "SUBSCRIBE", &uri);
    let text = subscribe(
        peer,
        user,
        target,
        n,
        &format!("Proxy-Authorization: {auth}\n"),
    );
    status(&peer.request(&text).await)
}

#[tokio::test]
async fn a_subscription_is_digest_admitted_and_judged_by_the_watch_list() {
    let server = tapir().await;
    let sip = server.sip_addr.unwrap();
    let phone = Peer::bind(sip).await;
    assert_eq!(subscribed(&phone, "1001", "pw", "1002", 1).await, 200);
    let notify = phone
        .next("the first NOTIFY", |t| t.starts_with("NOTIFY "))
        .await;
    assert_eq!(header(&notify, "Event"), "dialog");
    assert!(notify.contains("<dialog-info") && notify.contains("entity=\"sip:1002@"));
    // A park slot, an unknown address, one outside 1002's watch list.
    assert_eq!(subscribed(&phone, "1001", "pw", "7003", 2).await, 200);
    assert_eq!(subscribed(&phone, "1001", "pw", "9999", 3).await, 404);
    let other = Peer::bind(sip).await;
    assert_eq!(subscribed(&other, "1002", "pw2", "1001", 4).await, 200);
    assert_eq!(subscribed(&other, "1002", "pw2", "7001", 5).await, 200);
    assert_eq!(subscribed(&other, "1002", "pw2", "2001", 6).await, 403);
    // A wrong password never subscribes.
    let challenge = other
        .request(&subscribe(&other, "1002", "1001", 7, ""))
        .await;
    let auth = digest(
        &challenge,
        "1002",
        "wrong",
        "SUBSCRIBE",
        "sip:1001@127.0.0.1",
    );
    let text = subscribe(
        &other,
        "1002",
        "1001",
        7,
        &format!("Proxy-Authorization: {auth}\n"),
    );
    assert_eq!(status(&other.request(&text).await), 407, "challenged again");
    // The operator sees who watches whom.
    let api = support::Api::new(&server, Some("admin-secret"));
    let (code, body) = api.get("/v1/admin/subscriptions").await;
    assert_eq!(code, 200, "{body}");
    let list = body["subscriptions"].as_array().unwrap();
    let pairs: Vec<(String, String)> = list
        .iter()
        .map(|s| {
            (
                s["watcher"].as_str().unwrap().to_string(),
                s["address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("1002", "1001"),
            ("1001", "1002"),
            ("1002", "7001"),
            ("1001", "7003")
        ]
        .map(|(w, a)| (w.to_string(), a.to_string()))
    );
    assert_eq!(list[0]["event"], "dialog");
    assert!(list[0]["expires_in"].as_u64().unwrap() > 500);
    // The watchers of one address; one phone's subscriptions.
    let (code, body) = api.get("/v1/admin/subscriptions?address=1001").await;
    assert_eq!(code, 200, "{body}");
    let watchers: Vec<&str> = body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["watcher"].as_str().unwrap())
        .collect();
    assert_eq!(watchers, ["1002"]);
    let (_, body) = api.get("/v1/admin/subscriptions?watcher=1001").await;
    assert_eq!(body["subscriptions"].as_array().unwrap().len(), 2, "{body}");
    let (code, _) = api.get("/v1/admin/subscriptions?adress=1001").await;
    assert_eq!(code, 400, "a misspelt filter is not ignored");
    let (code, _) = support::Api::new(&server, Some("tok-alpha"))
        .get("/v1/admin/subscriptions")
        .await;
    assert_eq!(code, 403);
    server.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_subscriptions_from_one_phone_meet_its_limit() {
    let server = tapir().await;
    let sip = server.sip_addr.unwrap();
    let phone = Peer::bind(sip).await;
    let mut codes = std::collections::BTreeMap::<u16, u32>::new();
    for n in 0..10_000u32 {
        let target = if n % 2 == 0 { "1002" } else { "7002" };
        *codes
            .entry(subscribed(&phone, "1001", "pw", target, n).await)
            .or_default() += 1;
    }
    assert_eq!(codes.get(&200), Some(&200), "{codes:?}");
    assert_eq!(codes.get(&403), Some(&9_800), "{codes:?}");
    // tapir keeps serving: another phone still subscribes.
    let other = Peer::bind(sip).await;
    assert_eq!(subscribed(&other, "1002", "pw2", "1001", 1).await, 200);
    server.shutdown().await;
}
