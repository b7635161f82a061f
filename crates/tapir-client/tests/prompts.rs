//! `Call::play` and `Call::stop_media` against a real tapir server on
//! 127.0.0.1 port 0 (in this process): requests reach the server and its
//! refusals carry TAPI's code. Playing to a real phone, and the `call.media`
//! event it ends with, are in tests/interop/test_route_point.py.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;
use tapir_client::{CallState, Client, ClientError, EventKind, Privilege};
use tapir_server::Config;

const WAIT: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
[[lines]]
address = "2001"
kind = "routepoint"
[[lines]]
address = "2002"
kind = "routepoint"
[[apps]]
name = "alpha"
token = "tok-alpha"
lines = ["2001", "2002"]
"#;

fn code(e: &ClientError) -> &str {
    e.code()
        .unwrap_or_else(|| panic!("not an API error: {e:?}"))
}

#[tokio::test]
async fn play_and_stop_media_reach_the_server() {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.data_dir = std::env::temp_dir().join("tapir-client-prompt-tests");
    config.store.url = Some("sqlite::memory:".into());
    let s = tokio::time::timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let alpha = tokio::time::timeout(
        WAIT,
        Client::connect(format!("http://{}", s.http_addr), "tok-alpha"),
    )
    .await
    .unwrap()
    .unwrap();
    for mut l in alpha.lines().await.unwrap() {
        l.open(&[Privilege::Owner], &[]).await.unwrap();
    }
    let mut events = alpha.events(0);
    let _a = alpha.address("2001").create_call("2002").await.unwrap();
    let b_id = loop {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let EventKind::CallNew { call, address, .. } = &e.kind
            && address == "2002"
        {
            break call.clone();
        }
    };
    let mut b = alpha.call(&b_id).await.unwrap();
    b.answer().await.unwrap();
    assert_eq!(b.state(), CallState::Connected);
    // An unknown prompt; a known one nobody would hear (the far party is
    // another route point, with no device).
    let e = b.play("no-such-prompt", false).await.unwrap_err();
    assert_eq!(code(&e), "invalparam");
    assert!(e.to_string().contains("no-such-prompt"), "{e}");
    let e = b.play("beep", true).await.unwrap_err();
    assert_eq!(code(&e), "operationunavail");
    // Nothing playing: stop succeeds and the call stays connected.
    b.stop_media().await.unwrap();
    assert_eq!(b.state(), CallState::Connected);
    s.shutdown().await;
}
