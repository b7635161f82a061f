//! `POST /v1/calls/{call}/play` and `stop-media` over real HTTP: how bad
//! requests are refused (unknown or malformed prompt, unreadable file,
//! calls tapir does not terminate, monitors). Playing to a real phone is in
//! tests/interop/test_route_point.py.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Api, connected_pair, server_with};

#[tokio::test]
async fn play_refuses_what_it_cannot_play_and_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("tapir-prompt-api-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::write(dir.join("prompts").join("broken.wav"), b"RIFF0000WAVEjunk").unwrap();
    let d = dir.clone();
    let s = server_with(move |c| c.data_dir = d).await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    watcher.open("2002", &["monitor"]).await;
    let mut ev_b = beta.events(0).await;
    let (_a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let play = format!("/v1/calls/{b}/play");

    let refused = |status: u16, body: &serde_json::Value, code: &str| {
        assert_eq!(body["error"]["code"], code, "{status} {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "a sentence: {body}"
        );
    };
    // Unknown, malformed and unreadable prompts: 400 invalparam.
    let (status, body) = beta.post(&play, json!({"prompt": "nothing"})).await;
    assert_eq!(status, 400);
    refused(status, &body, "invalparam");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing")
    );
    for bad in ["../secret", "", "x.wav", "broken"] {
        let (status, body) = beta.post(&play, json!({"prompt": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        refused(status, &body, "invalparam");
    }
    let (status, _) = beta
        .post(&play, json!({"prompt": "beep", "volume": 3}))
        .await;
    assert_eq!(status, 400);
    // A built-in prompt exists, but the far party is another route point:
    // nobody would hear it.
    let (status, body) = beta.post(&play, json!({"prompt": "beep"})).await;
    assert_eq!(status, 409, "{body}");
    refused(status, &body, "operationunavail");
    // A monitor may not play or stop; a call of another app is not a handle.
    let (status, body) = watcher.post(&play, json!({"prompt": "beep"})).await;
    assert_eq!(status, 403, "{body}");
    refused(status, &body, "notowner");
    let (status, body) = watcher
        .post(&format!("/v1/calls/{b}/stop-media"), json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = alpha.post(&play, json!({"prompt": "beep"})).await;
    assert_eq!(status, 404, "{body}");
    refused(status, &body, "invalcallhandle");
    // Stopping with nothing playing succeeds and leaves the call as it was.
    let after = beta
        .ok(&format!("/v1/calls/{b}/stop-media"), json!({}))
        .await;
    assert_eq!(after["state"], "connected");
    // No call.media event came of any of it.
    let (status, _) = beta.post(&format!("/v1/calls/{b}/hold"), json!({})).await;
    assert_eq!(status, 200);
    ev_b.until("onhold, with no call.media before it", |v| {
        assert_ne!(v["type"], "call.media", "{v}");
        v["type"] == "call.state" && v["call"] == b.as_str() && v["state"] == "onhold"
    })
    .await;
    ev_b.close().await;
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
