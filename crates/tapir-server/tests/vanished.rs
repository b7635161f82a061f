//! Calls whose far end vanished are cleared, over real sockets: a phone (a
//! plain UDP socket on loopback speaking SIP) registers, is called from a
//! route point, answers, and then sends nothing at all — no RTP, no RTCP,
//! no BYE. Within the short configured RTP timeout tapir sends it a BYE,
//! no call is left at either address, and the call's CDR names the reason
//! (`rtp_timeout`). A second phone that talks for a while and then falls
//! silent is cleared the same way.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::media_phone::MediaPhone;
use support::sip::header;
use support::{Api, WAIT, server_with};
use tokio::time::{Instant, timeout};

/// The calls at `address` the watcher sees.
async fn calls_at(watcher: &Api, address: &str) -> Vec<Value> {
    let (code, v) = watcher.get("/v1/calls").await;
    assert_eq!(code, 200, "{v}");
    v.as_array()
        .or_else(|| v["calls"].as_array())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["address"] == address && c["state"] != "idle")
        .collect()
}

/// The first CDR naming `address`, within the bound.
async fn cdr_of(admin: &Api, address: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, list) = admin.get(&format!("/v1/admin/cdr?address={address}")).await;
        if let Some(c) = list["cdrs"].as_array().and_then(|a| a.first()) {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "no CDR for {address}: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_phone_that_answers_and_vanishes_is_released_with_its_reason() {
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        c.media.rtp_timeout = 0.5;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    alpha.open("2001", &["owner"]).await;
    watcher.open("1001", &["monitor"]).await;
    watcher.open("2001", &["monitor"]).await;
    let mut events = alpha.events(0).await;
    let phone = MediaPhone::new(s.sip_addr.unwrap(), "gone1001").await;
    phone.register_with("pw").await;

    // Route point 2001 calls the phone; the phone answers.
    let call = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let rp_call = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer(&invite).await;
    events.state(&rp_call, "connected").await;
    assert_eq!(calls_at(&watcher, "1001").await.len(), 1);

    // Then nothing from the phone: within the timeout (0.5 s; bounded at
    // 10 s here) tapir hangs up on it.
    let bye = phone.request("BYE", Duration::from_secs(10)).await;
    assert!(
        header(&bye, "Call-ID") == header(&invite, "Call-ID"),
        "{bye}"
    );
    assert!(
        header(&bye, "Reason").contains("cause=408")
            && header(&bye, "Reason").contains("RTP timeout"),
        "{bye}"
    );
    events.state(&rp_call, "disconnected").await;
    alpha
        .ok(&format!("/v1/calls/{rp_call}/drop"), json!({}))
        .await;
    let deadline = Instant::now() + WAIT;
    while !calls_at(&watcher, "1001").await.is_empty() {
        assert!(Instant::now() < deadline, "a call stayed at 1001");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(calls_at(&watcher, "2001").await.is_empty());
    let cdr = cdr_of(&admin, "1001").await;
    assert_eq!(cdr["end_reason"], "rtp_timeout", "{cdr}");
    assert!(cdr["answered_at"].is_string(), "{cdr}");
    events.close().await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_phone_whose_media_stops_is_released_with_its_reason() {
    // Generous against a loaded machine pausing the talking phone.
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        c.media.rtp_timeout = 2.0;
    })
    .await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let admin = Api::new(&s, Some("admin-secret"));
    alpha.open("2001", &["owner"]).await;
    let mut events = alpha.events(0).await;
    let phone = MediaPhone::new(s.sip_addr.unwrap(), "gone1001").await;
    phone.register_with("pw").await;
    let call = alpha
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let rp_call = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer(&invite).await;
    events.state(&rp_call, "connected").await;
    let ack = phone.request("ACK", WAIT).await;
    assert!(ack.starts_with("ACK "));
    // tapir's RTP address, from its offer in the INVITE.
    let port: u16 = invite
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("tapir's SDP names its RTP port");
    let tapir_rtp = SocketAddr::from(([127, 0, 0, 1], port));
    // The phone talks for 3 s (longer than the timeout): no BYE meanwhile.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 8192];
    for seq in 0..150u16 {
        tick.tick().await;
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1001_u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0xff, 160));
        phone.media.send_to(&p, tapir_rtp).await.unwrap();
        if let Ok(Ok((n, _))) = timeout(Duration::ZERO, phone.sip.recv_from(&mut buf)).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(!text.starts_with("BYE "), "BYE while talking: {text}");
        }
    }
    // Then it falls silent and is released.
    phone.request("BYE", Duration::from_secs(15)).await;
    events.state(&rp_call, "disconnected").await;
    alpha
        .ok(&format!("/v1/calls/{rp_call}/drop"), json!({}))
        .await;
    let cdr = cdr_of(&admin, "1001").await;
    assert_eq!(cdr["end_reason"], "rtp_timeout", "{cdr}");
    events.close().await;
    s.shutdown().await;
}
