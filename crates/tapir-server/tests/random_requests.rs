//! Random API requests against a running server: every answer has a
//! documented status, every error has the API's error shape, and the server
//! keeps serving. A fixed-seed generator keeps failures reproducible.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use support::{Api, server};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const OPS: &[&str] = &[
    "answer",
    "accept",
    "dial",
    "drop",
    "hold",
    "unhold",
    "swap-hold",
    "blind-transfer",
    "setup-transfer",
    "complete-transfer",
    "finish",
    "setup-conference",
    "prepare-add",
    "add",
    "remove-from-conference",
    "redirect",
    "park",
    "complete",
    "secure",
    "handoff",
    "digits",
    "privilege",
];

#[tokio::test]
async fn random_requests_get_documented_answers() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let anon = Api::new(&s, None);
    alpha.open("2001", &["owner", "monitor"]).await;
    alpha.open("2003", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    beta.open("2004", &["owner"]).await;

    let mut rng = Lcg(0x7a91_5eed);
    let addresses = [
        "2001", "2002", "2003", "2004", "1001", "7001", "9999", "", "x",
    ];
    let values = [
        json!("2002"),
        json!("2004"),
        json!("7001"),
        json!("call-1"),
        json!("call-9999"),
        json!(""),
        json!(3),
        json!(null),
        json!("transfer"),
        json!("conference"),
        json!("callback"),
        json!("owner"),
        json!("monitor"),
        json!("alpha"),
        json!("123#"),
        json!(["owner"]),
    ];
    let keys = [
        "to",
        "from",
        "digits",
        "with",
        "consult_call",
        "mode",
        "parties",
        "app",
        "media_mode",
        "privilege",
        "message_id",
        "target",
        "group",
        "rules",
    ];
    let documented = [200, 201, 204, 400, 401, 403, 404, 409, 500, 503];
    let mut calls: Vec<String> = vec!["call-1".into(), "garbage".into()];
    let mut seen = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..1500 {
        let api = *rng.pick(&[&alpha, &alpha, &beta, &anon]);
        let mut body = serde_json::Map::new();
        for _ in 0..rng.next() % 3 {
            body.insert((*rng.pick(&keys)).to_string(), rng.pick(&values).clone());
        }
        let body = Value::Object(body);
        let call = rng.pick(&calls).clone();
        let (what, (status, resp)) = match rng.next() % 8 {
            0 => {
                let from = *rng.pick(&addresses);
                let to = *rng.pick(&addresses);
                let b = json!({"from": from, "to": to});
                ("make call", api.post("/v1/calls", b).await)
            }
            1 => ("get call", api.get(&format!("/v1/calls/{call}")).await),
            2 => ("deallocate", api.delete(&format!("/v1/calls/{call}")).await),
            3 => {
                let a = *rng.pick(&addresses);
                let op = *rng.pick(&["pickup", "unpark"]);
                (op, api.post(&format!("/v1/addresses/{a}/{op}"), body).await)
            }
            4 => ("list", api.get("/v1/calls").await),
            _ => {
                let op = *rng.pick(OPS);
                (op, api.post(&format!("/v1/calls/{call}/{op}"), body).await)
            }
        };
        *seen.entry(status).or_default() += 1;
        assert!(
            documented.contains(&status),
            "request {i} ({what}): undocumented status {status}: {resp}"
        );
        if status >= 400 {
            assert!(
                resp["error"]["code"].is_string() && resp["error"]["message"].is_string(),
                "request {i} ({what}): error without the API's shape: {resp}"
            );
        } else {
            let listed = resp["calls"].as_array().cloned().unwrap_or_default();
            for id in listed
                .iter()
                .chain(std::iter::once(&resp))
                .filter_map(|c| c["id"].as_str())
            {
                if !calls.iter().any(|c| c == id) {
                    calls.push(id.to_string());
                }
            }
        }
        if status == 500 {
            panic!("request {i} ({what}): 500 {resp}");
        }
    }
    eprintln!("statuses: {seen:?}, calls: {}", calls.len());
    let ok: u32 = seen.range(200..300).map(|(_, n)| n).sum();
    assert!(ok > 50, "too few successes to mean anything: {seen:?}");
    for status in [400, 401, 404, 409] {
        assert!(seen.contains_key(&status), "no {status}: {seen:?}");
    }
    // Beta's new calls come from alpha's; pick them up from the snapshot.
    let (status, list) = beta.get("/v1/calls").await;
    assert_eq!(status, 200);
    assert!(list["calls"].is_array());
    assert_eq!(anon.get("/healthz").await.0, 200);
    let invariants = s.switch.with(|sw, _| sw.check_invariants()).await.unwrap();
    assert_eq!(invariants, Ok(()));
    s.shutdown().await;
}
