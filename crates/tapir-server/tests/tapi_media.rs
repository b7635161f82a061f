//! TAPI's media operations over real sockets: `POST /v1/calls/{call}/gather`
//! (lineGatherDigits), `POST …/tone` (lineGenerateTone) and `PUT …/monitor`
//! (lineMonitorDigits, lineMonitorTones, lineMonitorMedia).
//!
//! A stranger's token, a monitor asking for an owner's operation and bad
//! input each get their TAPI error with a sentence. A phone written by hand
//! (SIP and RTP on plain UDP sockets) answers a route point's call: its
//! RFC 4733 and SIP INFO digits end gatherings by terminator, count and
//! timeouts; the fax calling tone it sends (1100 Hz, 0.5 s on, 3 s off) is
//! reported as a tone and as `g3fax`, and the call is handed to the app that
//! opened the line for `g3fax`; a tone the app generates reaches the phone;
//! when the phone hangs up, a gathering in progress ends `cancelled`.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::media_phone::MediaPhone;
use support::sip::sdp_port;
use support::{Api, WAIT, connected_pair, server};
use tapir_media::tone::goertzel_amplitude;
use tapir_server::Config;
use tokio::time::timeout;

/// Every refusal carries a TAPI code and a sentence.
fn refused(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap_or("").len() > 10,
        "a sentence: {body}"
    );
}

#[tokio::test]
async fn strangers_monitors_and_bad_input_get_tapi_errors() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    let watcher = Api::new(&s, Some("tok-watcher"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    watcher.open("2002", &["monitor"]).await;
    let mut ev_b = beta.events(0).await;
    let (_a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let gather = format!("/v1/calls/{b}/gather");
    let tone = format!("/v1/calls/{b}/tone");
    let monitor = format!("/v1/calls/{b}/monitor");

    // A stranger (no handle to beta's call) gets invalcallhandle.
    let (st, body) = alpha.post(&gather, json!({"max_digits": 4})).await;
    refused(st, &body, 404, "invalcallhandle");
    let (st, body) = alpha.post(&tone, json!({"tone": "beep"})).await;
    refused(st, &body, 404, "invalcallhandle");
    let (st, body) = alpha.put(&monitor, json!({"digits": false})).await;
    refused(st, &body, 404, "invalcallhandle");
    // A monitor may monitor, not gather or generate.
    let (st, body) = watcher.post(&gather, json!({"max_digits": 4})).await;
    refused(st, &body, 403, "notowner");
    let (st, body) = watcher.post(&tone, json!({"tone": "beep"})).await;
    refused(st, &body, 403, "notowner");
    let (st, body) = watcher
        .put(&monitor, json!({"media_modes": ["g3fax"]}))
        .await;
    assert_eq!(st, 200, "{body}");

    // Bad gathers.
    for bad in [
        json!({"max_digits": 0}),
        json!({"max_digits": 65}),
        json!({"max_digits": 1_000_000_000_000u64}),
        json!({"max_digits": -1}),
        json!({"first_timeout_ms": -5}),
        json!({"inter_timeout_ms": 300_001}),
        json!({"first_timeout_ms": 1e30}),
        json!({"terminators": "x"}),
        json!({"terminators": "#".repeat(17)}),
        json!({"digits": 3}),
    ] {
        let (st, body) = beta.post(&gather, bad.clone()).await;
        refused(st, &body, 400, "invalparam");
    }
    // Bad tones.
    for bad in [
        json!({"tone": "siren"}),
        json!({"tone": "custom"}),
        json!({"tone": "custom", "frequencies": [0]}),
        json!({"tone": "custom", "frequencies": [4001]}),
        json!({"tone": "custom", "frequencies": [400, 500, 600, 700]}),
        json!({"tone": "custom", "frequencies": [1000], "duration_ms": 0}),
        json!({"tone": "custom", "frequencies": [1000], "duration_ms": 10_001}),
        json!({"tone": "custom", "frequencies": [-1000]}),
        json!({"tone": "beep", "frequencies": [1000]}),
    ] {
        let (st, body) = beta.post(&tone, bad.clone()).await;
        refused(st, &body, 400, "invalparam");
    }
    // Bad monitors: too many tones, out-of-range frequencies and durations.
    let many: Vec<Value> = (0..5)
        .map(|i| json!({"frequencies": [500 + i], "duration_ms": 100}))
        .collect();
    for bad in [
        json!({ "tones": many }),
        json!({"tones": [{"frequencies": [10], "duration_ms": 100}]}),
        json!({"tones": [{"frequencies": [], "duration_ms": 100}]}),
        json!({"tones": [{"frequencies": [1100], "duration_ms": 0}]}),
        json!({"tones": [{"frequencies": [1100], "duration_ms": 60_001}]}),
        json!({"tones": [{"frequencies": [1100]}]}),
    ] {
        let (st, body) = beta.put(&monitor, bad.clone()).await;
        refused(st, &body, 400, "invalparam");
    }
    for bad in ["datamodem", "g4fax"] {
        let (st, body) = beta.put(&monitor, json!({ "media_modes": [bad] })).await;
        refused(st, &body, 400, "invalmediamode");
    }
    // The far party is another route point: no leg hears a tone.
    let (st, body) = beta.post(&tone, json!({"tone": "beep"})).await;
    refused(st, &body, 409, "operationunavail");

    // A gathering with only a first-digit timeout ends by it (the
    // switch's timers), and a new one replaces the old (`cancelled`).
    beta.ok(&gather, json!({"first_timeout_ms": 100})).await;
    let done = ev_b
        .until("digits.gathered", |v| v["type"] == "digits.gathered")
        .await;
    assert_eq!(done["reason"], "firsttimeout", "{done}");
    assert_eq!(done["digits"], "", "{done}");
    beta.ok(&gather, json!({"max_digits": 3})).await;
    beta.ok(&gather, json!({"max_digits": 4})).await;
    let done = ev_b
        .until("digits.gathered", |v| v["type"] == "digits.gathered")
        .await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    // The call's end cancels the one in progress.
    beta.ok(&format!("/v1/calls/{b}/drop"), json!({})).await;
    let done = ev_b
        .until("digits.gathered", |v| v["type"] == "digits.gathered")
        .await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    assert_eq!(done["call"], b.as_str());
    // Gathering on an idle call: invalcallstate.
    let (st, body) = beta.post(&gather, json!({"max_digits": 4})).await;
    assert!(
        body["error"]["code"] == "invalcallstate" || body["error"]["code"] == "invalcallhandle",
        "{st} {body}"
    );
    ev_b.close().await;
    s.shutdown().await;
}

/// `tapir --server … --token … ARGS`: exit code, stdout, stderr (off the
/// async runtime, bounded in time).
async fn cli(s: &tapir_server::RunningServer, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "--server".to_string(),
        format!("http://{}", s.http_addr),
        "--token".into(),
        token.to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tapir"))
            .args(&all)
            .env_remove("TAPIR_SERVER")
            .env_remove("TAPIR_TOKEN")
            .env("RUST_LOG", "off")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "tapir {all:?} did not finish"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gathers_generates_and_monitors() {
    let s = server().await;
    let alpha = Api::new(&s, Some("tok-alpha"));
    let beta = Api::new(&s, Some("tok-beta"));
    alpha.open("2001", &["owner"]).await;
    beta.open("2002", &["owner"]).await;
    let mut ev_b = beta.events(0).await;
    let (_a, b) = connected_pair(&alpha, &beta, &mut ev_b).await;
    let (code, out, err) = cli(
        &s,
        "tok-beta",
        &[
            "--json",
            "call",
            "gather",
            &b,
            "--terminators",
            "#",
            "--first-timeout-ms",
            "50",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&b), "{out}");
    let done = gathered(&mut ev_b).await;
    assert_eq!(done["reason"], "firsttimeout", "{done}");
    let (code, _, err) = cli(
        &s,
        "tok-beta",
        &[
            "call",
            "monitor",
            &b,
            "--no-digits",
            "--tone",
            "1100+1300:500",
            "--media-mode",
            "g3fax",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // TAPI errors exit 1 with the code; what the CLI cannot read, 2.
    let (code, _, err) = cli(&s, "tok-beta", &["call", "gather", &b, "--max-digits", "0"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalparam"), "{err}");
    let (code, _, err) = cli(&s, "tok-beta", &["call", "tone", &b, "beep"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("operationunavail"), "{err}");
    let (code, _, err) = cli(
        &s,
        "tok-alpha",
        &["call", "tone", &b, "custom", "--hz", "700"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalcallhandle"), "{err}");
    let (code, _, err) = cli(&s, "tok-beta", &["call", "monitor", &b, "--tone", "loud"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = cli(&s, "tok-beta", &["call", "tone", &b, "siren"]).await;
    assert_eq!(code, 2);
    ev_b.close().await;
    s.shutdown().await;
}

const CONFIG: &str = r#"
[sip]
listen = ["udp:127.0.0.1:0"]
[http]
listen = "127.0.0.1:0"
admin_token = "admin-secret"
[[lines]]
address = "2001"
kind = "routepoint"
[[lines]]
address = "1001"
kind = "phone"
password = "pw"
[[apps]]
name = "voice"
token = "tok-voice"
lines = ["2001"]
[[apps]]
name = "fax"
token = "tok-fax"
lines = ["2001"]
media_modes = ["g3fax"]
"#;

async fn gathered(ev: &mut support::Events) -> Value {
    ev.until("digits.gathered", |v| v["type"] == "digits.gathered")
        .await
}

#[tokio::test]
async fn a_phones_digits_and_fax_tone_reach_the_app_and_fax_is_handed_off() {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.data_dir = std::env::temp_dir().join("tapir-server-tests");
    config.store.url = Some("sqlite::memory:".into());
    let s = timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let voice = Api::new(&s, Some("tok-voice"));
    let fax = Api::new(&s, Some("tok-fax"));
    voice.open("2001", &["owner"]).await;
    let (st, body) = fax
        .post(
            "/v1/lines/2001/open",
            json!({"privileges": ["owner"], "media_modes": ["g3fax"]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let mut ev = voice.events(0).await;
    let mut ev_fax = fax.events(0).await;
    let mut phone = MediaPhone::new(s.sip_addr.unwrap(), "ph1001").await;
    phone.register_with("pw").await;

    // The route point calls the phone; the phone answers.
    let call = voice
        .ok("/v1/calls", json!({"from": "2001", "to": "1001"}))
        .await;
    let rp = call["id"].as_str().unwrap().to_string();
    let invite = phone.request("INVITE", WAIT).await;
    phone.answer_with_events(&invite).await;
    ev.state(&rp, "connected").await;
    phone.request("ACK", WAIT).await;
    let tapir_rtp = SocketAddr::from(([127, 0, 0, 1], sdp_port(&invite)));
    let gather = format!("/v1/calls/{rp}/gather");

    // RFC 4733: 1 2 # ends on the terminator, which is kept.
    voice
        .ok(
            &gather,
            json!({"terminators": "#", "inter_timeout_ms": 5000}),
        )
        .await;
    for (i, d) in [1u8, 2, 11].into_iter().enumerate() {
        phone.rfc4733(tapir_rtp, d, 1000 + i as u32 * 800).await;
    }
    let done = gathered(&mut ev).await;
    assert_eq!(
        (done["digits"].as_str(), done["reason"].as_str()),
        (Some("12#"), Some("terminator")),
        "{done}"
    );

    // SIP INFO, with digit events turned off for this app: a count of two.
    voice
        .put(&format!("/v1/calls/{rp}/monitor"), json!({"digits": false}))
        .await;
    voice.ok(&gather, json!({"max_digits": 2})).await;
    for d in ["7", "8"] {
        let code = phone
            .in_dialog(
                &invite,
                "INFO",
                "Content-Type: application/dtmf-relay\r\n",
                &format!("Signal={d}\r\nDuration=160\r\n"),
            )
            .await;
        assert_eq!(code, 200);
    }
    let done = ev
        .until("digits.gathered", |v| {
            assert_ne!(v["type"], "digits.received", "monitoring is off: {v}");
            v["type"] == "digits.gathered"
        })
        .await;
    assert_eq!(done["digits"], "78", "{done}");
    assert_eq!(done["reason"], "maxdigits", "{done}");

    // An inter-digit timeout after one digit (application/dtmf).
    voice
        .ok(&gather, json!({"max_digits": 5, "inter_timeout_ms": 200}))
        .await;
    phone
        .in_dialog(&invite, "INFO", "Content-Type: application/dtmf\r\n", "4")
        .await;
    let done = gathered(&mut ev).await;
    assert_eq!(done["digits"], "4", "{done}");
    assert_eq!(done["reason"], "intertimeout", "{done}");

    // A tone the app generates reaches the phone.
    voice
        .ok(
            &format!("/v1/calls/{rp}/tone"),
            json!({"tone": "custom", "frequencies": [1400], "duration_ms": 1500}),
        )
        .await;
    let heard = phone.hear(800).await;
    assert!(heard.len() >= 1600, "{} samples", heard.len());
    let tail = &heard[heard.len() - 1600..];
    assert!(
        goertzel_amplitude(tail, 1400.0, 8000.0) > 500.0,
        "the phone hears 1400 Hz: {}",
        goertzel_amplitude(tail, 1400.0, 8000.0)
    );

    // Monitoring for the fax tone and for 1100 Hz itself; the phone plays
    // CNG: 0.5 s on, 3 s off, on again.
    voice
        .put(
            &format!("/v1/calls/{rp}/monitor"),
            json!({"tones": [{"frequencies": [1100], "duration_ms": 400}],
                   "media_modes": ["g3fax"]}),
        )
        .await;
    let mut ts = 50_000u32;
    phone.audio(tapir_rtp, 0, 200, &mut ts).await;
    phone.audio(tapir_rtp, 1100, 500, &mut ts).await;
    let tone = ev
        .until("tone.detected", |v| v["type"] == "tone.detected")
        .await;
    assert_eq!(tone["frequencies"], json!([1100]), "{tone}");
    assert_eq!(tone["call"], rp.as_str());
    phone.audio(tapir_rtp, 0, 3000, &mut ts).await;
    phone.audio(tapir_rtp, 1100, 500, &mut ts).await;
    let media = ev
        .until("media.detected", |v| v["type"] == "media.detected")
        .await;
    assert_eq!(media["media_mode"], "g3fax", "{media}");
    // The call is handed to the fax app, as owner, in g3fax.
    let new = ev_fax
        .until("call.new for the fax app", |v| v["type"] == "call.new")
        .await;
    assert_eq!(new["call"], rp.as_str(), "{new}");
    assert_eq!(new["privilege"], "owner", "{new}");
    let info = fax.call(&rp).await;
    assert_eq!(info["media_mode"], "g3fax", "{info}");

    // The fax app gathers; the phone hangs up: the gathering is cancelled.
    fax.ok(&gather, json!({"max_digits": 3})).await;
    let code = phone.in_dialog(&invite, "BYE", "", "").await;
    assert_eq!(code, 200);
    let done = gathered(&mut ev_fax).await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    // The call has ended: no tone, gathering or monitoring on it any more.
    ev.state(&rp, "disconnected").await;
    let (st, body) = fax
        .post(&format!("/v1/calls/{rp}/tone"), json!({"tone": "beep"}))
        .await;
    refused(st, &body, 409, "invalcallstate");
    let (st, body) = fax.post(&gather, json!({"max_digits": 2})).await;
    refused(st, &body, 409, "invalcallstate");
    let (st, body) = voice
        .put(
            &format!("/v1/calls/{rp}/monitor"),
            json!({"media_modes": ["g3fax"]}),
        )
        .await;
    refused(st, &body, 409, "invalcallstate");
    ev.close().await;
    ev_fax.close().await;
    s.shutdown().await;
}
